//! A small hub tree for the sharing-monitor website's tests: a national node and a provincial
//! child (each serving the monitor on a free port, pushing every second), with departments,
//! resources of every share type, access requests in every state, records exchanged, and text
//! that departments wrote holding HTML and script.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use govdc_hub_api::v1::{
    DecideAccessRequest, OpenType, RegisterResourceRequest, RequestAccessRequest, SetParentRequest,
    ShareType,
};
use govdc_test_support::hub::{HubOptions, HubProcess};

use crate::common::*;

/// Text a department wrote that must stay text.
pub const HOSTILE: &str =
    "<script>window.__xss=1</script><img src=x onerror=\"window.__xss=2\"> & '引号'";

/// The tree.
pub struct Tree {
    /// The national node.
    pub national: HubProcess,
    /// Its monitor, `http://127.0.0.1:port`.
    pub national_monitor: String,
    /// The provincial child.
    pub zhejiang: HubProcess,
    /// Its monitor.
    pub zhejiang_monitor: String,
    /// The national node's departments: a provider, a consumer, one with a hostile name.
    pub provider: String,
    /// See `provider`.
    pub consumer: String,
    /// See `provider`.
    pub hostile: String,
    /// The province's department.
    pub province_dept: String,
}

/// A hub of `level` called `name` with its monitor on a free port.
pub fn start_with_monitor(name: &str, level: &str, extra: &[(&str, &str)]) -> (HubProcess, String) {
    let mut options = HubOptions::new(name, level, "extranet")
        .env("GOVDC_HUB_FEDERATION_INTERVAL", "1s")
        .monitor();
    for (k, v) in extra {
        options = options.env(k, v);
    }
    let hub = HubProcess::start(&bin(), options).unwrap();
    let url = hub.monitor_url().unwrap();
    (hub, url)
}

async fn register_full(
    provider: &mut Clients,
    code: &str,
    name: &str,
    share: ShareType,
    open: OpenType,
    reason: &str,
) {
    let mut r = resource(code, share);
    r.name = name.to_owned();
    r.open_type = open as i32;
    r.not_shared_reason = reason.to_owned();
    provider
        .catalog
        .register_resource(RegisterResourceRequest { resource: Some(r) })
        .await
        .unwrap();
}

/// Starts and seeds the tree, and waits until the national node has the province's figures.
pub async fn seed() -> Tree {
    let (national, national_monitor) = start_with_monitor(
        "national",
        "national",
        &[("GOVDC_HUB_MONITOR_REQUEST_DEADLINE", "2s")],
    );
    let (zhejiang, zhejiang_monitor) = start_with_monitor("zhejiang", "provincial", &[]);
    let (provider, consumer, hostile, province_dept) = (
        credit_code(71),
        credit_code(72),
        credit_code(73),
        credit_code(74),
    );
    let mut admin = Clients::admin(&national);
    join(&mut admin, &provider, "国家市场监督管理总局").await;
    join(&mut admin, &consumer, "国家税务总局").await;
    join(&mut admin, &hostile, HOSTILE).await;
    join(
        &mut Clients::admin(&zhejiang),
        &province_dept,
        "浙江省大数据发展管理局",
    )
    .await;

    let mut p = Clients::member(&national, &provider);
    let open = format!("{provider}-0001");
    let conditional = format!("{provider}-0002");
    let slow = format!("{provider}-0003");
    register_full(
        &mut p,
        &open,
        "企业登记信息",
        ShareType::Unconditional,
        OpenType::Unconditional,
        "",
    )
    .await;
    register_full(
        &mut p,
        &conditional,
        "企业信用信息",
        ShareType::Conditional,
        OpenType::Conditional,
        "",
    )
    .await;
    register_full(
        &mut p,
        &slow,
        "企业年报信息",
        ShareType::Conditional,
        OpenType::NotOpen,
        "",
    )
    .await;
    register_full(
        &mut p,
        &format!("{provider}-0004"),
        "涉密执法记录",
        ShareType::NotShared,
        OpenType::NotOpen,
        "依据《中华人民共和国保守国家秘密法》第二十八条不予共享。",
    )
    .await;
    let mut h = Clients::member(&national, &hostile);
    register_full(
        &mut h,
        &format!("{hostile}-0001"),
        HOSTILE,
        ShareType::NotShared,
        OpenType::NotOpen,
        HOSTILE,
    )
    .await;
    publish(
        &mut p,
        &open,
        vec![vec![b"{\"a\":1}".to_vec(), b"{\"a\":2}".to_vec()]],
    )
    .await
    .unwrap();

    // The consumer: one unconditional grant (fetched), one conditional approved, one waiting.
    let mut c = Clients::member(&national, &consumer);
    let ask = |code: &str| RequestAccessRequest {
        resource_code: code.to_owned(),
        purpose: HOSTILE.to_owned(),
    };
    c.exchange.request_access(ask(&open)).await.unwrap();
    assert_eq!(fetch_all(&mut c, &open).await.unwrap().len(), 2);
    let pending = c
        .exchange
        .request_access(ask(&conditional))
        .await
        .unwrap()
        .into_inner();
    p.exchange
        .decide_access(DecideAccessRequest {
            grant_id: pending.id,
            approve: true,
            reason: "用于税务登记核验".to_owned(),
        })
        .await
        .unwrap();
    c.exchange.request_access(ask(&slow)).await.unwrap();

    let mut zp = Clients::member(&zhejiang, &province_dept);
    register_full(
        &mut zp,
        &format!("{province_dept}-0001"),
        "浙江省企业名录",
        ShareType::Unconditional,
        OpenType::Unconditional,
        "",
    )
    .await;
    register_full(
        &mut zp,
        &format!("{province_dept}-0002"),
        "浙江省社保缴纳",
        ShareType::NotShared,
        OpenType::NotOpen,
        "涉及个人信息",
    )
    .await;

    Clients::admin(&zhejiang)
        .node
        .set_parent(SetParentRequest {
            endpoint: national.endpoint(),
            token: national.token("node", "zhejiang").unwrap(),
            ca_pem: String::new(),
        })
        .await
        .unwrap();
    let mut stats = Clients::admin(&national).stats;
    eventually(
        Duration::from_secs(20),
        "zhejiang's figures on the national node",
        || {
            let mut stats = stats.clone();
            async move {
                let s = stats
                    .get_sharing_stats(govdc_hub_api::v1::GetSharingStatsRequest {})
                    .await
                    .ok()?
                    .into_inner();
                s.nodes
                    .iter()
                    .any(|n| n.node == "zhejiang" && n.departments.iter().any(|d| d.resources == 2))
                    .then_some(())
            }
        },
    )
    .await;
    let _ = &mut stats;
    Tree {
        national,
        national_monitor,
        zhejiang,
        zhejiang_monitor,
        provider,
        consumer,
        hostile,
        province_dept,
    }
}
