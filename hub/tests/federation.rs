//! Federation between real hub processes: a child's catalog (and its descendants') appears on
//! the parent; an intranet node is refused by an extranet parent with a clear message.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{
    GetNodeInfoRequest, ListResourcesRequest, NodeInfo, ParentConnection, SetParentRequest,
    ShareType, SyncCatalogRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::Code;

fn options(name: &str, level: &str, network: &str) -> HubOptions {
    HubOptions::new(name, level, network).env("GOVDC_HUB_FEDERATION_INTERVAL", "1s")
}

async fn set_parent(child: &HubProcess, parent: &HubProcess) -> NodeInfo {
    Clients::admin(child)
        .node
        .set_parent(SetParentRequest {
            endpoint: parent.endpoint(),
            token: parent.token("node", child.name()).unwrap(),
            ca_pem: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
}

async fn codes_on(hub: &HubProcess, node: &str) -> Vec<String> {
    let mut codes = Vec::new();
    let mut token = String::new();
    // Small pages, so that paging is exercised too.
    loop {
        let page = Clients::admin(hub)
            .catalog
            .list_resources(ListResourcesRequest {
                provider: String::new(),
                node: node.to_owned(),
                page_size: 2,
                page_token: token,
            })
            .await
            .unwrap()
            .into_inner();
        codes.extend(page.resources.into_iter().map(|r| r.code));
        if page.next_page_token.is_empty() {
            return codes;
        }
        token = page.next_page_token;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_province_and_a_city_federate_up_to_the_national_node() {
    bounded(Duration::from_secs(120), async {
        let national =
            HubProcess::start(&bin(), options("national", "national", "extranet")).unwrap();
        let mut zhejiang =
            HubProcess::start(&bin(), options("zhejiang", "provincial", "extranet")).unwrap();
        let hangzhou =
            HubProcess::start(&bin(), options("hangzhou", "municipal", "extranet")).unwrap();

        let (zj_dept, hz_dept) = (credit_code(61), credit_code(62));
        join(
            &mut Clients::admin(&zhejiang),
            &zj_dept,
            "浙江省大数据发展管理局",
        )
        .await;
        join(
            &mut Clients::admin(&hangzhou),
            &hz_dept,
            "杭州市数据资源管理局",
        )
        .await;
        let mut zj = Clients::member(&zhejiang, &zj_dept);
        for i in 1..=3 {
            register(
                &mut zj,
                &format!("{zj_dept}-000{i}"),
                ShareType::Conditional,
            )
            .await;
        }
        register(
            &mut Clients::member(&hangzhou, &hz_dept),
            &format!("{hz_dept}-0001"),
            ShareType::Unconditional,
        )
        .await;

        let info = set_parent(&zhejiang, &national).await;
        assert_eq!(info.parent_endpoint, national.endpoint());
        set_parent(&hangzhou, &zhejiang).await;

        // The national node sees the province's resources and the city's, forwarded by the
        // province.
        let expected = vec![
            format!("{zj_dept}-0001"),
            format!("{zj_dept}-0002"),
            format!("{zj_dept}-0003"),
        ];
        eventually(
            Duration::from_secs(20),
            "zhejiang's catalog on the national node",
            || async { (codes_on(&national, "zhejiang").await == expected).then_some(()) },
        )
        .await;
        eventually(
            Duration::from_secs(20),
            "hangzhou's catalog on the national node",
            || async {
                (codes_on(&national, "hangzhou").await == vec![format!("{hz_dept}-0001")])
                    .then_some(())
            },
        )
        .await;
        let on_national = Clients::admin(&national)
            .catalog
            .get_resource(govdc_hub_api::v1::GetResourceRequest {
                code: format!("{hz_dept}-0001"),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            (on_national.provider.as_str(), on_national.node.as_str()),
            (hz_dept.as_str(), "hangzhou")
        );

        let info = Clients::admin(&zhejiang)
            .node
            .get_node_info(GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            info.parent_connection,
            ParentConnection::Connected as i32,
            "{info:?}"
        );
        assert!(info.last_parent_sync.is_some());
        assert!(info.parent_error.is_empty());
        assert_eq!(info.catalog_size, 4, "own three and hangzhou's one");
        let info = Clients::admin(&national)
            .node
            .get_node_info(GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.parent_connection, ParentConnection::None as i32);
        assert_eq!(info.catalog_size, 4);

        // A new registration travels up on its own; the parent link survives a restart.
        zhejiang.stop().unwrap();
        zhejiang.restart().unwrap();
        let info = Clients::admin(&zhejiang)
            .node
            .get_node_info(GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(info.parent_endpoint, national.endpoint());
        register(
            &mut Clients::member(&zhejiang, &zj_dept),
            &format!("{zj_dept}-0004"),
            ShareType::NotShared,
        )
        .await;
        eventually(
            Duration::from_secs(20),
            "the new resource on the national node",
            || async { (codes_on(&national, "zhejiang").await.len() == 4).then_some(()) },
        )
        .await;
        let audit = Clients::admin(&national)
            .audit
            .list_audit_records(govdc_hub_api::v1::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 100,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let syncs = audit
            .iter()
            .filter(|r| r.action == "federation.sync")
            .count();
        // Changes are recorded; the periodic pushes of an unchanged catalog are not.
        assert!(
            (2..=8).contains(&syncs),
            "{syncs} federation.sync records: {audit:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn intranet_and_extranet_nodes_never_federate() {
    bounded(Duration::from_secs(60), async {
        let national =
            HubProcess::start(&bin(), options("national", "national", "extranet")).unwrap();
        let secret = HubProcess::start(
            &bin(),
            options("zhejiang-intranet", "provincial", "intranet"),
        )
        .unwrap();
        let dept = credit_code(71);
        join(&mut Clients::admin(&secret), &dept, "dept").await;
        register(
            &mut Clients::member(&secret, &dept),
            &format!("{dept}-0001"),
            ShareType::Conditional,
        )
        .await;

        set_parent(&secret, &national).await;
        let info = eventually(
            Duration::from_secs(20),
            "the refusal in NodeInfo",
            || async {
                let info = Clients::admin(&secret)
                    .node
                    .get_node_info(GetNodeInfoRequest {})
                    .await
                    .unwrap()
                    .into_inner();
                (!info.parent_error.is_empty()).then_some(info)
            },
        )
        .await;
        assert_eq!(
            info.parent_connection,
            ParentConnection::Disconnected as i32
        );
        assert!(
            info.parent_error.contains("FailedPrecondition"),
            "{}",
            info.parent_error
        );
        assert!(
            info.parent_error.contains("never federate"),
            "{}",
            info.parent_error
        );
        assert!(codes_on(&national, "").await.is_empty(), "nothing crossed");

        // The same, asked directly with the node's token.
        let refusal = Clients::new(
            &national,
            &national.token("node", "zhejiang-intranet").unwrap(),
        )
        .federation
        .sync_catalog(SyncCatalogRequest {
            node: "zhejiang-intranet".to_owned(),
            level: govdc_hub_api::v1::Level::Provincial as i32,
            network: govdc_hub_api::v1::Network::Intranet as i32,
            region_code: "330000".to_owned(),
            resources: vec![resource("x-1", ShareType::Conditional)],
            ..Default::default()
        })
        .await
        .unwrap_err();
        assert_eq!(refusal.code(), Code::FailedPrecondition);
        assert!(refusal.message().contains("intranet"), "{refusal:?}");
        // A node token speaks only for its own node.
        let refusal = Clients::new(&national, &national.token("node", "zhejiang").unwrap())
            .federation
            .sync_catalog(SyncCatalogRequest {
                node: "jiangsu".to_owned(),
                level: govdc_hub_api::v1::Level::Provincial as i32,
                network: govdc_hub_api::v1::Network::Extranet as i32,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(refusal.code(), Code::PermissionDenied);
    })
    .await;
}
