//! Who may open whose data, on the real hub process: a read declared for publication on the
//! open-data portal is the provider's right, or another department's only when the provider
//! marked the resource openable, and only for the openness it allows. Shared is not open.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{
    FetchRequest, ListAuditRecordsRequest, OpenType, Openness, RegisterResourceRequest,
    RequestAccessRequest, ShareType,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::Code;

async fn publication_fetch(
    consumer: &mut Clients,
    code: &str,
    openness: Openness,
) -> Result<usize, tonic::Status> {
    let mut stream = consumer
        .exchange
        .fetch(FetchRequest {
            resource_code: code.to_owned(),
            from_start: true,
            publication: openness as i32,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut records = 0;
    while let Some(response) = stream.message().await? {
        records += response.records.len();
    }
    Ok(records)
}

async fn register_open(provider: &mut Clients, code: &str, open_type: OpenType) {
    let mut resource = resource(code, ShareType::Unconditional);
    resource.open_type = open_type as i32;
    provider
        .catalog
        .register_resource(RegisterResourceRequest {
            resource: Some(resource),
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn only_the_provider_or_an_openable_resource_may_be_read_for_publication() {
    bounded(Duration::from_secs(60), async {
        let hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, other_code) = (credit_code(601), credit_code(602));
        join(&mut admin, &provider_code, "provider").await;
        join(&mut admin, &other_code, "publisher").await;
        let mut provider = Clients::member(&hub, &provider_code);
        let mut other = Clients::member(&hub, &other_code);
        let code = format!("{provider_code}-0001");
        // Shared with every department, open type left at its default (not open).
        let registered = register(&mut provider, &code, ShareType::Unconditional).await;
        assert_eq!(registered.open_type(), OpenType::Unspecified);
        publish(
            &mut provider,
            &code,
            vec![vec![br#"{"company":"a"}"#.to_vec(); 3]],
        )
        .await
        .unwrap();
        other
            .exchange
            .request_access(RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "our own analysis".into(),
            })
            .await
            .unwrap();

        // Shared: the other department reads it for its own use...
        assert_eq!(fetch_all(&mut other, &code).await.unwrap().len(), 3);
        // ...but not to publish it, whatever openness it asks for.
        for openness in [Openness::Unconditional, Openness::Conditional] {
            let refused = publication_fetch(&mut other, &code, openness)
                .await
                .unwrap_err();
            assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
            assert!(refused.message().contains("不予开放"), "{refused:?}");
            assert!(refused.message().contains(&provider_code), "{refused:?}");
        }
        // The provider publishes its own.
        assert_eq!(
            publication_fetch(&mut provider, &code, Openness::Unconditional)
                .await
                .unwrap(),
            3
        );

        // Marked 不予开放 explicitly: the same.
        register_open(&mut provider, &code, OpenType::NotOpen).await;
        let refused = publication_fetch(&mut other, &code, Openness::Conditional)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);

        // 有条件开放: a conditional dataset may be made of it, an unconditional one not.
        register_open(&mut provider, &code, OpenType::Conditional).await;
        assert_eq!(
            publication_fetch(&mut other, &code, Openness::Conditional)
                .await
                .unwrap(),
            3
        );
        let refused = publication_fetch(&mut other, &code, Openness::Unconditional)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains("有条件开放"), "{refused:?}");

        // 无条件开放: either.
        register_open(&mut provider, &code, OpenType::Unconditional).await;
        assert_eq!(
            publication_fetch(&mut other, &code, Openness::Unconditional)
                .await
                .unwrap(),
            3
        );

        // A shared resource opened does not skip the grant: a department without one is refused.
        let third_code = credit_code(603);
        join(&mut admin, &third_code, "third").await;
        let refused = publication_fetch(
            &mut Clients::member(&hub, &third_code),
            &code,
            Openness::Unconditional,
        )
        .await
        .unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied);
        assert!(refused.message().contains("no grant"), "{refused:?}");

        // An open type the API does not know is refused at registration.
        let mut bad = resource(&code, ShareType::Unconditional);
        bad.open_type = 42;
        let refused = provider
            .catalog
            .register_resource(RegisterResourceRequest {
                resource: Some(bad),
            })
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);

        // The publication use is on the record, and the open type of each registration.
        let records = admin
            .audit
            .list_audit_records(ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert!(
            records.iter().any(|r| r.action == "records.fetch"
                && r.actor == other_code
                && r.detail.contains("OPENNESS_CONDITIONAL")),
            "{records:?}"
        );
        assert!(
            records
                .iter()
                .any(|r| r.action == "resource.register"
                    && r.detail.contains("OPEN_TYPE_CONDITIONAL")),
            "{records:?}"
        );
    })
    .await;
}
