//! Hub state: the exchange hub's own database (members, catalog, grants, offsets, the audit
//! chain) of each ExchangeNode a BackupPolicy lists, copied through the hub's gRPC API so that it
//! survives the loss of the primary.
//!
//! **Export.** `Node.ExportState` streams a consistent SQLite copy with its SHA-256 on the last
//! chunk; the copy goes straight into the policy's restore-point store by multipart upload, a
//! chunk at a time (memory stays flat whatever the size), and is kept only when the hash computed
//! on the way matches the hub's. Each copy is a directory holding `state.db` and `state.json`
//! (a [`HubStateManifest`], written last: a copy without one is incomplete and never used):
//! `<policy>/hub-state/<namespace>/<name>/<stamp>/` for the copies taken every
//! `--hub-state-interval-seconds` (continuous mode) or with each pass (scheduled mode), pruned
//! by the policy's restore-point retention (the newest three at least); and
//! `<policy>/<point>/hub/<namespace>/<name>/` for the copy taken with a restore point.
//!
//! A hub whose audit chain ends where it ended after the last export has not changed (every
//! write to a hub is audited), so it is not exported again: an idle hub's audit log does not fill
//! with `state.export` records every 30 s. A copy is forced once an hour all the same.
//!
//! **Import.** `backup failover` and `backup restore` stream a stored copy into the node's hub on
//! the target through `Node.ImportState` (the hub checks the SHA-256 and the chain before it
//! replaces anything), then call `Audit.VerifyAudit` and fail when the chain does not verify or
//! holds fewer records than the copy. Running it twice imports nothing the second time: the
//! hub's own audit log records each import with the copy's SHA-256, and when its last
//! `state.import` is of the same copy, the hub already holds it — together with whatever was
//! written to the promoted hub since, which a second import would throw away.
//!
//! **Keys.** Calls carry an `admin` token signed with the node's key, read from the Secret
//! `<name>-hub-key` of the cluster being talked to: on the primary for exports, on the target
//! for imports. The key Secret is replicated with the namespace's other Secrets (and kept in
//! restore points), so the target's copy is the key the node's hub runs with there.

use std::time::Duration;

use govdc_crds::backup_policy::NamespaceMapping;
use jiff::Timestamp;
use object_store::path::Path as StorePath;
use serde::{Deserialize, Serialize};

use crate::controllers::exchange_node::HubSettings;

mod layout;
mod replication;
mod transfer;

pub use layout::{latest, stored, take_with_point};
pub use replication::{Replication, ReplicationSettings};
pub use transfer::{Exported, HubAccess, Imported, access, export, import};

/// Condition type: whether the hub state of the protected ExchangeNodes is kept in the store.
pub const HUB_STATE_REPLICATED: &str = "HubStateReplicated";

/// How often a continuous policy exports its hubs, unless `--hub-state-interval-seconds` says.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(30);

/// Copies of each node kept between restore points, at least.
pub const KEEP_AT_LEAST: usize = 3;

/// An unchanged hub is exported again after this long all the same, in case a change escaped
/// the audit log.
const MAX_AGE: Duration = Duration::from_secs(3600);
/// A unary call to a hub.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// A whole export or import: generous, the hub answers an import only once it is done.
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(1800);
/// The longest wait for the next chunk of an export before it is given up as stalled.
const STALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes per ImportState message; the hub sends ExportState in 1 MiB chunks too.
const CHUNK: usize = 1 << 20;
/// Parts of a multipart upload: 5 MiB is the smallest part S3 accepts.
const PART: usize = 5 << 20;
/// Audit records read per page while looking for the last import (the hub's maximum).
const AUDIT_PAGE: i64 = 1000;

/// An ExchangeNode a policy protects, by its namespace and name on the primary.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NodeRef {
    /// Namespace on the primary.
    pub namespace: String,
    /// Name, also the hub node's name (the audience of its tokens) on every cluster.
    pub name: String,
}

impl std::fmt::Display for NodeRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// The ExchangeNodes of `spec.exchangeNodes`; entries without a namespace are refused by
/// validation and left out here.
pub fn nodes(references: &[govdc_crds::common::ObjectReference]) -> Vec<NodeRef> {
    let mut nodes: Vec<NodeRef> = references
        .iter()
        .filter_map(|r| {
            Some(NodeRef {
                namespace: r.namespace.clone().filter(|n| !n.is_empty())?,
                name: r.name.clone(),
            })
        })
        .collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// What to export and where the hubs are: the policy's nodes, its namespace mapping (which names
/// the node's namespace on the target), and the hub endpoints.
#[derive(Clone, Debug, Default)]
pub struct HubStateSource {
    /// The protected nodes.
    pub nodes: Vec<NodeRef>,
    /// The policy's namespace mapping.
    pub mapping: NamespaceMapping,
    /// Hub endpoints (`--hub-endpoint`, else the Service DNS name).
    pub hubs: HubSettings,
}

/// One stored copy of a hub's database: `state.json` beside `state.db` in `dir`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HubStateManifest {
    /// The ExchangeNode's namespace on the primary.
    pub namespace: String,
    /// The ExchangeNode's name.
    pub name: String,
    /// Its namespace on the policy's target, by the policy's mapping when the copy was taken.
    pub target_namespace: String,
    /// When the export started.
    pub taken_at: Timestamp,
    /// SHA-256 of `state.db`, hex, as the hub computed it and as checked on the way in.
    pub sha256: String,
    /// Size of `state.db`.
    pub size_bytes: u64,
    /// Audit records the copy holds, at least (the hub's count before the export, plus the
    /// export's own record).
    pub audit_records: i64,
    /// The store directory of the copy.
    pub dir: String,
    /// The head of the copy's audit chain (the export's own record), an anchor of the hub's
    /// log outside the node; absent when another write raced the export.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<ChainEnd>,
}

impl HubStateManifest {
    /// The node.
    pub fn node(&self) -> NodeRef {
        NodeRef {
            namespace: self.namespace.clone(),
            name: self.name.clone(),
        }
    }

    fn database(&self) -> StorePath {
        StorePath::from(format!("{}/state.db", self.dir))
    }
}

/// Why a hub state could not be exported or imported.
#[derive(Debug, thiserror::Error)]
pub enum HubStateError {
    /// The node's key Secret is missing or holds no usable key.
    #[error("{0}")]
    KeyMissing(String),
    /// The cluster holding the key did not answer.
    #[error("reading the node's key: {0}")]
    Cluster(String),
    /// The hub did not answer.
    #[error("{0}")]
    Unreachable(String),
    /// The hub refused the operator's token.
    #[error("{0}")]
    Unauthorized(String),
    /// The hub refused the call (a copy of another node, a broken chain, a bad checksum).
    #[error("{0}")]
    Refused(String),
    /// A copy's bytes do not hash to its SHA-256.
    #[error("{0}")]
    Checksum(String),
    /// The store failed.
    #[error("restore-point store: {0}")]
    Storage(String),
    /// The target hub's audit chain does not verify after the import.
    #[error("{0}")]
    AuditNotIntact(String),
}

impl HubStateError {
    /// The reason, for conditions and the errors metric.
    pub fn reason(&self) -> &'static str {
        match self {
            HubStateError::KeyMissing(_) => "HubKeyMissing",
            HubStateError::Cluster(_) => "ClusterUnreachable",
            HubStateError::Unreachable(_) => "HubUnreachable",
            HubStateError::Unauthorized(_) => "HubUnauthorized",
            HubStateError::Refused(_) => "HubRefused",
            HubStateError::Checksum(_) => "ChecksumMismatch",
            HubStateError::Storage(_) => "StorageFailed",
            HubStateError::AuditNotIntact(_) => "AuditChainBroken",
        }
    }

    fn from_status(call: &str, status: &tonic::Status) -> HubStateError {
        use tonic::Code;
        let message = format!("{call}: {} ({:?})", status.message(), status.code());
        match status.code() {
            Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled | Code::Unknown => {
                HubStateError::Unreachable(message)
            }
            Code::Unauthenticated | Code::PermissionDenied => HubStateError::Unauthorized(message),
            Code::DataLoss => HubStateError::Checksum(message),
            _ => HubStateError::Refused(message),
        }
    }
}

impl From<object_store::Error> for HubStateError {
    fn from(error: object_store::Error) -> Self {
        HubStateError::Storage(error.to_string())
    }
}

/// The end of a hub's audit chain after an export: the export's own record. While the hub's
/// chain still ends there, nothing was written to it since.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainEnd {
    /// The record's sequence number.
    pub seq: i64,
    /// Its hash, hex.
    pub hash: String,
}

#[cfg(test)]
mod tests {
    use super::super::store::{RestorePointStore, Retention};
    use super::layout::{continuous_dir, prune};
    use super::replication::{NodeState, condition};
    use super::transfer::import_chunks;
    use super::*;
    use futures::StreamExt;
    use govdc_hub_api::v1::ImportStateChunk;
    use object_store::{ObjectStoreExt, PutPayload};
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    fn node(name: &str) -> NodeRef {
        NodeRef {
            namespace: "zj-prod".into(),
            name: name.into(),
        }
    }

    #[test]
    fn the_condition_is_true_once_every_node_is_exported_and_says_why_not_otherwise() {
        let nodes = vec![node("a"), node("b")];
        let mut states = BTreeMap::new();
        let pending = condition(&nodes, &states);
        assert_eq!(
            (pending.status, pending.reason.as_str()),
            ("False", "ExportPending")
        );
        let at: Timestamp = "2026-03-10T12:00:00.4Z".parse().expect("time");
        states.insert(
            node("a"),
            NodeState {
                copied_at: Some(at),
                error: None,
            },
        );
        states.insert(
            node("b"),
            NodeState {
                copied_at: Some(at + jiff::SignedDuration::from_secs(30)),
                error: Some(("HubUnreachable", "cannot connect".into())),
            },
        );
        let failing = condition(&nodes, &states);
        assert_eq!(
            (failing.status, failing.reason.as_str()),
            ("False", "HubUnreachable")
        );
        assert!(
            failing.message.contains("zj-prod/b: cannot connect"),
            "{}",
            failing.message
        );
        if let Some(b) = states.get_mut(&node("b")) {
            b.error = None;
        }
        let ok = condition(&nodes, &states);
        assert_eq!((ok.status, ok.reason.as_str()), ("True", "Exported"));
        assert!(
            ok.message.contains("2026-03-10T12:00:00Z"),
            "{}",
            ok.message
        );
    }

    #[test]
    fn nodes_without_a_namespace_are_left_out_and_duplicates_once() {
        let references = vec![
            govdc_crds::common::ObjectReference {
                name: "hub".into(),
                namespace: Some("zj-prod".into()),
            },
            govdc_crds::common::ObjectReference {
                name: "hub".into(),
                namespace: Some("zj-prod".into()),
            },
            govdc_crds::common::ObjectReference {
                name: "orphan".into(),
                namespace: None,
            },
        ];
        assert_eq!(nodes(&references), vec![node("hub")]);
    }

    #[test]
    fn hub_errors_map_to_reasons() {
        let unreachable =
            HubStateError::from_status("c", &tonic::Status::unavailable("connection refused"));
        assert_eq!(unreachable.reason(), "HubUnreachable");
        let denied = HubStateError::from_status("c", &tonic::Status::unauthenticated("bad token"));
        assert_eq!(denied.reason(), "HubUnauthorized");
        let refused =
            HubStateError::from_status("c", &tonic::Status::invalid_argument("other node"));
        assert_eq!(refused.reason(), "HubRefused");
        let lost = HubStateError::from_status("c", &tonic::Status::data_loss("sha"));
        assert_eq!(lost.reason(), "ChecksumMismatch");
    }

    #[tokio::test]
    async fn import_chunks_carry_the_checksum_on_the_last_and_stop_without_it_on_a_read_error() {
        let parts: Vec<Result<Vec<u8>, object_store::Error>> =
            vec![Ok(vec![1u8; CHUNK - 1]), Ok(vec![2u8; 2]), Ok(vec![3u8; 5])];
        let failure = Arc::new(Mutex::new(None));
        let chunks: Vec<ImportStateChunk> =
            import_chunks(futures::stream::iter(parts), "abc".into(), failure.clone())
                .collect()
                .await;
        assert_eq!(chunks.len(), 2);
        assert_eq!(chunks[0].data.len(), CHUNK + 1);
        assert!(chunks[0].sha256.is_empty());
        assert_eq!(chunks[1].data, vec![3u8; 5]);
        assert_eq!(chunks[1].sha256, "abc");
        assert!(chunks.iter().all(|c| c.replace));

        let broken: Vec<Result<Vec<u8>, object_store::Error>> = vec![
            Ok(vec![1u8; 10]),
            Err(object_store::Error::NotFound {
                path: "x".into(),
                source: "gone".into(),
            }),
        ];
        let chunks: Vec<ImportStateChunk> =
            import_chunks(futures::stream::iter(broken), "abc".into(), failure.clone())
                .collect()
                .await;
        assert!(chunks.iter().all(|c| c.sha256.is_empty()));
        assert!(failure.lock().expect("lock").is_some());
    }

    #[tokio::test]
    async fn latest_takes_the_newest_copy_of_each_node_before_a_time() {
        let dir = std::env::temp_dir().join(format!("govdc-hub-state-test-{}", std::process::id()));
        let store = RestorePointStore::local(&dir, "p").expect("store");
        let at = |s: &str| -> Timestamp { s.parse().expect("time") };
        for (name, time) in [
            ("a", "2026-03-10T12:00:00Z"),
            ("a", "2026-03-10T12:01:00Z"),
            ("a", "2026-03-10T12:02:00Z"),
            ("b", "2026-03-10T12:00:30Z"),
        ] {
            let taken_at = at(time);
            let manifest = HubStateManifest {
                namespace: "zj-prod".into(),
                name: name.into(),
                target_namespace: "zj-prod-dr".into(),
                taken_at,
                sha256: String::new(),
                size_bytes: 0,
                audit_records: 1,
                dir: continuous_dir("p", &node(name), taken_at),
                audit_head: None,
            };
            let bytes = serde_json::to_vec(&manifest).expect("json");
            store
                .objects()
                .put(
                    &StorePath::from(format!("{}/state.json", manifest.dir)),
                    PutPayload::from(bytes),
                )
                .await
                .expect("put");
        }
        let latest = latest(&store, Some(at("2026-03-10T12:01:30Z")))
            .await
            .expect("latest");
        let picked: Vec<(String, Timestamp)> = latest
            .iter()
            .map(|m| (m.name.clone(), m.taken_at))
            .collect();
        assert_eq!(
            picked,
            vec![
                ("a".to_owned(), at("2026-03-10T12:01:00Z")),
                ("b".to_owned(), at("2026-03-10T12:00:30Z"))
            ]
        );
        let kept = prune(
            &store,
            &node("a"),
            &Retention {
                last: 1,
                daily: 0,
                weekly: 0,
            },
        )
        .await
        .expect("prune");
        assert_eq!(kept, 2);
        assert_eq!(stored(&store).await.expect("stored").len(), 2);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
