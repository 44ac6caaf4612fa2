//! Unauthenticated and unauthorized callers are refused; health and reflection need no token.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub_api::auth::{Claims, Role, TokenKey};
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{
    DecideAccessRequest, GetNodeInfoRequest, LeaveRequest, ListResourcesRequest,
    RequestAccessRequest, ShareType, SyncCatalogRequest, VerifyAuditRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess, issue_token};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

fn assert_code<T: std::fmt::Debug>(
    result: Result<T, tonic::Status>,
    code: Code,
    what: &str,
) -> tonic::Status {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: {status:?}");
            status
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn callers_without_a_valid_token_or_the_right_are_refused() {
    bounded(Duration::from_secs(120), async {
        let hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code, other_code) =
            (credit_code(31), credit_code(32), credit_code(33));
        for code in [&provider_code, &consumer_code, &other_code] {
            join(&mut admin, code, "dept").await;
        }
        let mut provider = Clients::member(&hub, &provider_code);
        let code = format!("{provider_code}-0001");
        register(&mut provider, &code, ShareType::Conditional).await;

        // Health and reflection are open; everything else is not.
        let mut health = HealthClient::new(channel(&hub));
        let serving = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serving.status, ServingStatus::Serving as i32);
        let serving = health
            .check(HealthCheckRequest {
                service: "govdc.hub.v1.Exchange".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(serving.status, ServingStatus::Serving as i32);

        let mut anonymous = NodeClient::new(channel(&hub));
        let status = assert_code(
            anonymous.get_node_info(GetNodeInfoRequest {}).await,
            Code::Unauthenticated,
            "no token",
        );
        assert!(status.message().contains("bearer token"), "{status:?}");

        // Signed with another key.
        let other_key = hub.dir.join("other-key");
        std::fs::write(&other_key, [9u8; 32]).unwrap();
        let forged =
            issue_token(&bin(), &other_key, "national", "admin", "operator", "1h").unwrap();
        assert_code(
            Clients::new(&hub, &forged)
                .node
                .get_node_info(GetNodeInfoRequest {})
                .await,
            Code::Unauthenticated,
            "bad signature",
        );
        // Issued for another node.
        let elsewhere =
            issue_token(&bin(), &hub.key_file, "zhejiang", "admin", "operator", "1h").unwrap();
        assert_code(
            Clients::new(&hub, &elsewhere)
                .node
                .get_node_info(GetNodeInfoRequest {})
                .await,
            Code::Unauthenticated,
            "wrong audience",
        );
        // Expired an hour ago.
        let key = TokenKey::new(std::fs::read(&hub.key_file).unwrap()).unwrap();
        let mut claims = Claims::new("operator", Role::Admin, "national", Duration::ZERO);
        claims.exp = claims.iat - 3600;
        let expired = key.issue(&claims).unwrap();
        let status = assert_code(
            Clients::new(&hub, &expired)
                .node
                .get_node_info(GetNodeInfoRequest {})
                .await,
            Code::Unauthenticated,
            "expired",
        );
        assert!(
            status.message().to_lowercase().contains("expired"),
            "{status:?}"
        );
        // Garbage.
        assert_code(
            Clients::new(&hub, "not-a-jwt")
                .catalog
                .list_resources(ListResourcesRequest::default())
                .await,
            Code::Unauthenticated,
            "garbage token",
        );

        // Valid tokens, wrong role.
        assert_code(
            provider.node.get_node_info(GetNodeInfoRequest {}).await,
            Code::PermissionDenied,
            "member calling an admin method",
        );
        assert_code(
            provider
                .audit
                .verify_audit(VerifyAuditRequest::default())
                .await,
            Code::PermissionDenied,
            "member verifying the audit log",
        );
        assert_code(
            admin
                .federation
                .sync_catalog(SyncCatalogRequest {
                    node: "zhejiang".to_owned(),
                    ..Default::default()
                })
                .await,
            Code::PermissionDenied,
            "admin calling a node-only method",
        );
        let node = Clients::new(&hub, &hub.token("node", "zhejiang").unwrap());
        assert_code(
            node.clone()
                .catalog
                .list_resources(ListResourcesRequest::default())
                .await,
            Code::PermissionDenied,
            "node browsing the catalog",
        );
        // A member token for a department that never joined.
        let stranger = Clients::member(&hub, &credit_code(39));
        let status = assert_code(
            stranger
                .clone()
                .catalog
                .list_resources(ListResourcesRequest::default())
                .await,
            Code::PermissionDenied,
            "non-member",
        );
        assert!(status.message().contains("not a member"), "{status:?}");

        // Consumer without a grant.
        let mut consumer = Clients::member(&hub, &consumer_code);
        assert_code(
            fetch_all(&mut consumer, &code).await,
            Code::PermissionDenied,
            "fetch without grant",
        );
        // Consumer publishing to someone else's resource.
        assert_code(
            publish(&mut consumer, &code, vec![vec![b"x".to_vec()]]).await,
            Code::PermissionDenied,
            "publishing as a non-provider",
        );
        // Somebody other than the provider deciding.
        let grant = consumer
            .exchange
            .request_access(RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "test".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut other = Clients::member(&hub, &other_code);
        let decide = DecideAccessRequest {
            grant_id: grant.id.clone(),
            approve: true,
            reason: String::new(),
        };
        assert_code(
            other.exchange.decide_access(decide.clone()).await,
            Code::PermissionDenied,
            "non-provider deciding",
        );
        assert_code(
            consumer.exchange.decide_access(decide.clone()).await,
            Code::PermissionDenied,
            "consumer approving itself",
        );
        provider.exchange.decide_access(decide).await.unwrap();
        assert!(fetch_all(&mut consumer, &code).await.is_ok());

        // A member that left: its still-unexpired token stops working at once.
        admin
            .membership
            .leave(LeaveRequest {
                credit_code: consumer_code.clone(),
            })
            .await
            .unwrap();
        let status = assert_code(
            fetch_all(&mut consumer, &code).await,
            Code::PermissionDenied,
            "member that left",
        );
        assert!(status.message().contains("not a member"), "{status:?}");
    })
    .await;
}
