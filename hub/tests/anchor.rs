//! The audit chain anchored outside the node, on real hub processes: a child's head rides along
//! with every federation sync and the parent records it in its own chain; a tail cut off, a
//! rewrite re-chained from the middle, and a database put back from an older copy all verify as
//! a chain, and are each caught and named against the anchors, by `govdc-hub audit verify` and
//! by `Audit.VerifyAudit`. A national node is checked against the head the operator recorded.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub::anchor;
use govdc_hub_api::v1::{
    AuditAnchor, AuditFinding, AuditHead, GetNodeInfoRequest, ListAuditRecordsRequest,
    SetParentRequest, VerifyAuditRequest, VerifyAuditResponse,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use sha2::Digest;

const WAIT: Duration = Duration::from_secs(30);

fn db(hub: &HubProcess) -> rusqlite::Connection {
    rusqlite::Connection::open(hub.data_dir.join("hub.db")).unwrap()
}

async fn head(hub: &HubProcess) -> AuditHead {
    Clients::admin(hub)
        .node
        .get_node_info(GetNodeInfoRequest {})
        .await
        .unwrap()
        .into_inner()
        .audit_head
        .unwrap()
}

/// Joins `count` departments on the child (each an audit record), then waits until the parent
/// acknowledged the child's new head; returns it.
async fn write_and_anchor(child: &HubProcess, first: u32, count: u32) -> AuditHead {
    let mut admin = Clients::admin(child);
    for n in first..first + count {
        join(&mut admin, &credit_code(n), "dept").await;
    }
    let head = head(child).await;
    let dir = child.data_dir.clone();
    let seq = head.seq;
    eventually(WAIT, "the parent's anchor of the child's head", || {
        let dir = dir.clone();
        async move {
            anchor::read_local(&dir)
                .ok()
                .flatten()
                .filter(|a| a.seq == seq)
        }
    })
    .await;
    head
}

/// A national parent and a provincial child that syncs every second, anchored.
async fn anchored_pair() -> (HubProcess, HubProcess, AuditHead) {
    let parent =
        HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
    let child = HubProcess::start(
        &bin(),
        HubOptions::new("zhejiang", "provincial", "extranet")
            .env("GOVDC_HUB_FEDERATION_INTERVAL", "1s"),
    )
    .unwrap();
    Clients::admin(&child)
        .node
        .set_parent(SetParentRequest {
            endpoint: parent.endpoint(),
            token: parent.token("node", "zhejiang").unwrap(),
            ca_pem: String::new(),
        })
        .await
        .unwrap();
    let head = write_and_anchor(&child, 100, 6).await;
    (parent, child, head)
}

fn cli(hub: &HubProcess, extra: &[&str]) -> (Option<i32>, String) {
    let output = std::process::Command::new(bin())
        .args(["audit", "verify", "--data-dir"])
        .arg(&hub.data_dir)
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ),
    )
}

async fn rpc(hub: &HubProcess, anchors: Vec<AuditAnchor>) -> VerifyAuditResponse {
    Clients::admin(hub)
        .audit
        .verify_audit(VerifyAuditRequest { anchors })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_parent_records_the_childs_head_and_an_untouched_chain_matches_it() {
    bounded(Duration::from_secs(120), async {
        let (parent, child, head) = anchored_pair().await;
        let records = Clients::admin(&parent)
            .audit
            .list_audit_records(ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let anchored = records
            .iter()
            .rev()
            .find(|r| r.action == "audit.anchor" && r.subject == "zhejiang")
            .unwrap_or_else(|| panic!("no anchor record on the parent: {records:?}"));
        let detail: serde_json::Value = serde_json::from_str(&anchored.detail).unwrap();
        assert_eq!(detail["seq"], head.seq, "{detail}");
        assert_eq!(detail["hash"], head.hash, "{detail}");

        let verified = rpc(&child, Vec::new()).await;
        assert!(verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::Intact);
        let sources: Vec<&str> = verified.anchors.iter().map(|c| c.source.as_str()).collect();
        assert_eq!(sources, ["parent", "local"], "{verified:?}");
        assert!(
            verified.anchors.iter().all(|c| c.outcome == "matches"),
            "{verified:?}"
        );
        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("anchor (parent, record"), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_truncated_tail_is_named_by_the_cli_and_the_rpc() {
    bounded(Duration::from_secs(120), async {
        let (_parent, mut child, head) = anchored_pair().await;
        child.stop().unwrap();
        let keep = head.seq - 3;
        db(&child)
            .execute_batch(&format!(
                "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > {keep}"
            ))
            .unwrap();
        // What is left is a chain that verifies on its own.
        assert!(
            govdc_hub::audit::verify(&db(&child)).unwrap().intact(),
            "the cut chain should verify on its own"
        );
        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(": TRUNCATED ("), "{out}");
        assert!(
            out.contains(&format!("records {}..{} were removed", keep + 1, head.seq)),
            "{out}"
        );

        child.restart().unwrap();
        let verified = rpc(&child, Vec::new()).await;
        assert!(!verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::Truncated, "{verified:?}");
        assert_eq!(verified.first_broken_seq, keep + 1, "{verified:?}");
        // The child pushed its shorter head since; the parent kept the higher anchor.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let verified = rpc(&child, Vec::new()).await;
        assert_eq!(verified.finding(), AuditFinding::Truncated, "{verified:?}");
        let parent = verified
            .anchors
            .iter()
            .find(|c| c.source == "parent")
            .unwrap();
        assert_eq!(
            parent.anchor.as_ref().unwrap().head.as_ref().unwrap().seq,
            head.seq
        );

        // The cut node writes on past the anchored head, and the parent anchors its new head:
        // the anchor it diverged from stays disputed, and the rewrite behind it is still named.
        let regrown = write_and_anchor(&child, 700, 6).await;
        assert!(regrown.seq > head.seq);
        let verified = rpc(&child, Vec::new()).await;
        assert!(!verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::Rewritten, "{verified:?}");
        assert_eq!(verified.first_broken_seq, head.seq, "{verified:?}");
        let parent_anchors: Vec<i64> = verified
            .anchors
            .iter()
            .filter(|c| c.source == "parent")
            .map(|c| c.anchor.as_ref().unwrap().head.as_ref().unwrap().seq)
            .collect();
        assert_eq!(parent_anchors, [regrown.seq, head.seq], "{verified:?}");
        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(": REWRITTEN ("), "{out}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_rewrite_rechained_from_the_middle_is_named_by_the_cli_and_the_rpc() {
    bounded(Duration::from_secs(120), async {
        let (_parent, mut child, head) = anchored_pair().await;
        child.stop().unwrap();
        {
            // Who joined in record 3 is changed, and every record from there re-hashed and
            // re-linked, as a careful forger with the file would.
            let conn = db(&child);
            conn.execute_batch("DROP TRIGGER audit_no_update").unwrap();
            let mut records = govdc_hub::audit::list(&conn, 0, 10_000).unwrap();
            let mut prev = records[1].hash.clone();
            for record in records.iter_mut().skip(2) {
                if record.seq == 3 {
                    record.subject = "91330100000000999X".to_owned();
                }
                record.prev_hash = prev.clone();
                record.hash = hex::encode(sha2::Sha256::digest(govdc_hub::audit::canonical_bytes(
                    record,
                )));
                conn.execute(
                    "UPDATE audit SET subject = ?2, prev_hash = ?3, hash = ?4 WHERE seq = ?1",
                    rusqlite::params![record.seq, record.subject, record.prev_hash, record.hash],
                )
                .unwrap();
                prev = record.hash.clone();
            }
            assert!(govdc_hub::audit::verify(&conn).unwrap().intact());
            assert_ne!(prev, head.hash);
        }
        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(": REWRITTEN ("), "{out}");
        assert!(
            out.contains(&format!("anchored it as {}", head.hash)),
            "{out}"
        );

        child.restart().unwrap();
        let verified = rpc(&child, Vec::new()).await;
        assert!(!verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::Rewritten, "{verified:?}");
        assert_eq!(verified.first_broken_seq, head.seq, "{verified:?}");
        assert!(verified.reason.contains("rewritten"), "{verified:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_database_replaced_by_an_older_copy_is_named_by_the_cli_and_the_rpc() {
    bounded(Duration::from_secs(150), async {
        let (_parent, mut child, first) = anchored_pair().await;
        child.stop().unwrap();
        let backup = child.dir.join("hub.db.older");
        std::fs::copy(child.data_dir.join("hub.db"), &backup).unwrap();
        child.restart().unwrap();
        let second = write_and_anchor(&child, 200, 4).await;
        assert!(second.seq > first.seq);
        child.stop().unwrap();
        std::fs::copy(&backup, child.data_dir.join("hub.db")).unwrap();
        for leftover in ["hub.db-wal", "hub.db-shm"] {
            let _ = std::fs::remove_file(child.data_dir.join(leftover));
        }
        assert!(govdc_hub::audit::verify(&db(&child)).unwrap().intact());

        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(": OLDER COPY ("), "{out}");
        // Without the parent, the copy beside the store still catches it.
        let (code, out) = cli(&child, &["--no-parent"]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains("anchor (local"), "{out}");
        assert!(out.contains("OLDER COPY"), "{out}");

        child.restart().unwrap();
        let verified = rpc(&child, Vec::new()).await;
        assert!(!verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::OlderCopy, "{verified:?}");
        assert!(verified.reason.contains("older copy"), "{verified:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_national_node_is_checked_against_the_head_the_operator_recorded() {
    bounded(Duration::from_secs(120), async {
        let mut national =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&national);
        for n in 300..305 {
            join(&mut admin, &credit_code(n), "dept").await;
        }
        // What the operator copies into the ExchangeNode's status.auditHead.
        let head = head(&national).await;
        let anchor = AuditAnchor {
            node: "national".to_owned(),
            head: Some(head.clone()),
            recorded_by: "operator".to_owned(),
            ..Default::default()
        };
        let verified = rpc(&national, vec![anchor.clone()]).await;
        assert!(verified.intact, "{verified:?}");
        assert_eq!(verified.anchors[0].source, "caller");
        assert_eq!(verified.anchors[0].outcome, "matches");
        // An anchor without a head is a bad request, not a pass.
        let status = Clients::admin(&national)
            .audit
            .verify_audit(VerifyAuditRequest {
                anchors: vec![AuditAnchor::default()],
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument, "{status:?}");

        national.stop().unwrap();
        db(&national)
            .execute_batch(&format!(
                "DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > {}",
                head.seq - 2
            ))
            .unwrap();
        let given = format!("{}:{}", head.seq, head.hash);
        let (code, out) = cli(&national, &["--anchor", &given]);
        assert_eq!(code, Some(1), "{out}");
        assert!(out.contains(": OLDER COPY ("), "{out}");
        let (code, out) = cli(&national, &["--anchor", "12:nothex"]);
        assert_eq!(code, Some(2), "a malformed anchor is a usage error: {out}");
        national.restart().unwrap();
        let verified = rpc(&national, vec![anchor]).await;
        assert!(!verified.intact, "{verified:?}");
        assert_eq!(verified.finding(), AuditFinding::OlderCopy, "{verified:?}");
        assert_eq!(verified.first_broken_seq, head.seq - 1, "{verified:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_imported_copy_supersedes_the_anchors_of_the_history_it_replaced() {
    bounded(Duration::from_secs(120), async {
        use govdc_hub_api::v1::{ExportStateRequest, ImportStateChunk};
        let (_parent, child, _first) = anchored_pair().await;
        let mut admin = Clients::admin(&child);
        let mut stream = admin
            .node
            .export_state(ExportStateRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = stream.message().await.unwrap() {
            chunks.push(chunk);
        }
        // The node goes on, and its parent anchors the newer history.
        let newer = write_and_anchor(&child, 400, 3).await;
        // The operator restores the older copy (disaster recovery), an audited admin act.
        let requests: Vec<ImportStateChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| ImportStateChunk {
                data: c.data.clone(),
                sha256: c.sha256.clone(),
                replace: i == 0,
            })
            .collect();
        let imported = admin
            .node
            .import_state(tokio_stream::iter(requests))
            .await
            .unwrap()
            .into_inner();
        assert!(imported.audit_records < newer.seq, "{imported:?} {newer:?}");
        // Its next syncs carry the older head; the parent keeps its anchor of the newer one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let verified = rpc(&child, Vec::new()).await;
        assert!(verified.intact, "{verified:?}");
        let parent = verified
            .anchors
            .iter()
            .find(|c| c.source == "parent")
            .unwrap();
        assert!(parent.outcome.starts_with("superseded"), "{verified:?}");
        assert!(parent.outcome.contains("state import"), "{verified:?}");
        let (code, out) = cli(&child, &[]);
        assert_eq!(code, Some(0), "{out}");
        assert!(out.contains("superseded"), "{out}");
        // Once the restored node's chain grows past the anchored head, anchoring moves on.
        let moved = write_and_anchor(&child, 500, newer.seq as u32).await;
        assert!(moved.seq > newer.seq);
        let verified = rpc(&child, Vec::new()).await;
        assert!(verified.intact, "{verified:?}");
        assert!(
            verified
                .anchors
                .iter()
                .any(|c| c.source == "parent" && c.outcome == "matches"),
            "{verified:?}"
        );
    })
    .await;
}
