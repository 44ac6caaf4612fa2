//! ExportState and ImportState: a consistent copy with its SHA-256 moves a node's state to a
//! fresh node (disaster recovery), and bad copies are refused before anything is replaced.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{
    ExportStateRequest, GetNodeInfoRequest, ImportStateChunk, ListMembersRequest, ShareType,
    StateChunk, VerifyAuditRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::Code;

async fn export(hub: &HubProcess) -> Vec<StateChunk> {
    let mut stream = Clients::admin(hub)
        .node
        .export_state(ExportStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    chunks
}

async fn import(
    hub: &HubProcess,
    chunks: &[StateChunk],
    replace: bool,
) -> Result<(i64, i64), tonic::Status> {
    let requests: Vec<ImportStateChunk> = chunks
        .iter()
        .enumerate()
        .map(|(i, c)| ImportStateChunk {
            data: c.data.clone(),
            sha256: c.sha256.clone(),
            replace: replace && i == 0,
        })
        .collect();
    let response = Clients::admin(hub)
        .node
        .import_state(tokio_stream::iter(requests))
        .await?
        .into_inner();
    Ok((response.bytes, response.audit_records))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_node_state_moves_to_a_fresh_node_and_bad_copies_are_refused() {
    bounded(Duration::from_secs(90), async {
        let primary =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&primary);
        let dept = credit_code(81);
        join(&mut admin, &dept, "dept").await;
        let mut provider = Clients::member(&primary, &dept);
        let code = format!("{dept}-0001");
        register(&mut provider, &code, ShareType::Unconditional).await;
        publish(&mut provider, &code, vec![vec![vec![7u8; 200]; 1000]])
            .await
            .unwrap();

        let chunks = export(&primary).await;
        let last = chunks.last().unwrap();
        assert_eq!(last.sha256.len(), 64, "the last chunk carries the SHA-256");
        assert!(
            chunks[..chunks.len() - 1]
                .iter()
                .all(|c| c.sha256.is_empty())
        );
        let size: usize = chunks.iter().map(|c| c.data.len()).sum();
        assert!(
            size > 200_000,
            "{size} bytes cannot hold 1000 records of 200 bytes"
        );
        let source = admin
            .node
            .get_node_info(GetNodeInfoRequest {})
            .await
            .unwrap()
            .into_inner();

        // The DR node: same name, its own key and store.
        let standby =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        // A corrupted copy is refused.
        let mut corrupted = chunks.clone();
        corrupted[0].data[5000] ^= 0xff;
        assert_eq!(
            import(&standby, &corrupted, false)
                .await
                .unwrap_err()
                .code(),
            Code::DataLoss
        );
        // So is another node's state.
        let other = HubProcess::start(&bin(), HubOptions::new("beijing", "provincial", "extranet"))
            .unwrap();
        let refused = import(&other, &chunks, false).await.unwrap_err();
        assert_eq!(refused.code(), Code::InvalidArgument);
        assert!(refused.message().contains("node national"), "{refused:?}");

        let (bytes, audit_records) = import(&standby, &chunks, false).await.unwrap();
        assert_eq!(bytes as usize, size);
        assert_eq!(
            audit_records,
            source.audit_records + 1,
            "the import is recorded on top"
        );
        let mut standby_admin = Clients::admin(&standby);
        let members = standby_admin
            .membership
            .list_members(ListMembersRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(members.members.len(), 1);
        assert_eq!(members.members[0].credit_code, dept);
        // The member mirror was reloaded: the department's token works on the standby at once.
        let mut consumer_admin = standby_admin.clone();
        let consumer = credit_code(82);
        join(&mut consumer_admin, &consumer, "consumer").await;
        let mut consumer = Clients::member(&standby, &consumer);
        consumer
            .exchange
            .request_access(govdc_hub_api::v1::RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "dr".to_owned(),
            })
            .await
            .unwrap();
        assert_eq!(fetch_all(&mut consumer, &code).await.unwrap().len(), 1000);
        let verified = standby_admin
            .audit
            .verify_audit(VerifyAuditRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verified.intact, "{verified:?}");

        // Now it has state of its own: replacing it takes `replace`.
        let refused = import(&standby, &chunks, false).await.unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        import(&standby, &chunks, true).await.unwrap();
        let members = standby_admin
            .membership
            .list_members(ListMembersRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(members.members.len(), 1, "back to the primary's members");
    })
    .await;
}
