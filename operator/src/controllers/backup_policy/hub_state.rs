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

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt, TryStreamExt};
use govdc_crds::backup_policy::NamespaceMapping;
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{
    ExportStateRequest, GetNodeInfoRequest, ImportStateChunk, ListAuditRecordsRequest, NodeInfo,
    VerifyAuditRequest,
};
use jiff::Timestamp;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tokio::sync::{Notify, watch};

use super::clean::map_namespace;
use super::metrics::BackupMetrics;
use super::store::{RestorePointStore, Retention, StoreError, point_name};
use crate::controllers::exchange_node::hub::{Authenticated, HubError, bearer, connect};
use crate::controllers::exchange_node::{HubSettings, key};
use crate::digest::hex;
use crate::pipeline::conditions::Observed;

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

/// How to reach one hub node as its admin.
#[derive(Clone)]
pub struct HubAccess {
    /// The node's name: the audience of the token, and what the hub must call itself.
    pub node: String,
    /// The hub's gRPC endpoint.
    pub endpoint: String,
    token: String,
}

impl std::fmt::Debug for HubAccess {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The token is a credential.
        f.debug_struct("HubAccess")
            .field("node", &self.node)
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// Access to the hub of node `name` at `endpoint`, with an admin token signed with the key in
/// the Secret `<name>-hub-key` of `namespace` in the cluster of `client`.
pub async fn access(
    client: &Client,
    namespace: &str,
    name: &str,
    endpoint: String,
) -> Result<HubAccess, HubStateError> {
    let secret_name = key::secret_name_of(name);
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secret = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|e| {
            HubStateError::Cluster(format!(
                "Secret {namespace}/{secret_name}: {}",
                crate::error::api_message(&e)
            ))
        })?
        .ok_or_else(|| {
            HubStateError::KeyMissing(format!(
                "the key Secret {namespace}/{secret_name} does not exist"
            ))
        })?;
    let what = format!("ExchangeNode {namespace}/{name}");
    let key = key::from_secret(&secret, &what)
        .map_err(|e| HubStateError::KeyMissing(e.to_string()))?
        .ok_or_else(|| {
            HubStateError::KeyMissing(format!(
                "Secret {namespace}/{secret_name} has no {:?}",
                key::KEY_FIELD
            ))
        })?;
    let token = key::admin_token(&key, name)
        .map_err(|e| HubStateError::KeyMissing(format!("signing a token: {e}")))?;
    Ok(HubAccess {
        node: name.to_owned(),
        endpoint,
        token,
    })
}

/// The Node and Audit clients of a hub.
struct Clients {
    node: NodeClient<Authenticated>,
    audit: AuditClient<Authenticated>,
}

async fn clients(access: &HubAccess) -> Result<Clients, HubStateError> {
    let map = |e: HubError| match e {
        HubError::Call { status, .. } => HubStateError::from_status("authenticate", &status),
        other => HubStateError::Unreachable(other.to_string()),
    };
    let channel = connect(&access.endpoint, TRANSFER_TIMEOUT)
        .await
        .map_err(map)?;
    let token = bearer(&access.token).map_err(map)?;
    Ok(Clients {
        node: NodeClient::with_interceptor(channel.clone(), token.clone()),
        audit: AuditClient::with_interceptor(channel, token),
    })
}

/// Runs a unary call with [`CALL_TIMEOUT`].
async fn unary<T>(
    call: &str,
    future: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, HubStateError> {
    match tokio::time::timeout(CALL_TIMEOUT, future).await {
        Ok(Ok(response)) => Ok(response.into_inner()),
        Ok(Err(status)) => Err(HubStateError::from_status(call, &status)),
        Err(_) => Err(HubStateError::Unreachable(format!(
            "{call}: no answer within {}s",
            CALL_TIMEOUT.as_secs()
        ))),
    }
}

/// The node's account of itself, checked to be the node the token was made for: an endpoint
/// override pointing at the wrong hub must not be exported from, or imported into.
async fn node_info(clients: &mut Clients, access: &HubAccess) -> Result<NodeInfo, HubStateError> {
    let info = unary(
        "Node.GetNodeInfo",
        clients.node.get_node_info(GetNodeInfoRequest {}),
    )
    .await?;
    if info.name != access.node {
        return Err(HubStateError::Refused(format!(
            "the hub at {} is node {:?}, not {:?}",
            access.endpoint, info.name, access.node
        )));
    }
    Ok(info)
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

async fn chain_record(clients: &mut Clients, seq: i64) -> Result<Option<ChainEnd>, HubStateError> {
    let records = unary(
        "Audit.ListAuditRecords",
        clients.audit.list_audit_records(ListAuditRecordsRequest {
            after_seq: seq - 1,
            limit: 1,
        }),
    )
    .await?
    .records;
    Ok(records.into_iter().next().and_then(|r| {
        (r.seq == seq && r.action == "state.export").then_some(ChainEnd {
            seq: r.seq,
            hash: r.hash,
        })
    }))
}

/// What an export did.
#[derive(Debug)]
pub enum Exported {
    /// A new copy is stored; the chain end identifies the state it holds (None when another
    /// write raced the export, so the next round exports again).
    Copied(Box<HubStateManifest>, Option<ChainEnd>),
    /// The hub's chain still ends at `since`: the stored copy is current.
    Unchanged,
}

/// Exports the hub of `node` into the store directory `dir`, unless its chain still ends at
/// `since`.
pub async fn export(
    access: &HubAccess,
    store: &RestorePointStore,
    dir: &str,
    node: &NodeRef,
    target_namespace: &str,
    since: Option<&ChainEnd>,
) -> Result<Exported, HubStateError> {
    let mut clients = clients(access).await?;
    let info = node_info(&mut clients, access).await?;
    if let Some(since) = since
        && info.audit_records == since.seq
        && chain_record(&mut clients, since.seq).await?.as_ref() == Some(since)
    {
        return Ok(Exported::Unchanged);
    }
    let taken_at = Timestamp::now();
    let objects = store.objects();
    let database = StorePath::from(format!("{dir}/state.db"));
    let stream = tokio::time::timeout(
        CALL_TIMEOUT,
        clients.node.export_state(ExportStateRequest {}),
    )
    .await
    .map_err(|_| HubStateError::Unreachable("Node.ExportState: no answer".into()))?
    .map_err(|s| HubStateError::from_status("Node.ExportState", &s))?
    .into_inner();
    let upload = objects.put_multipart(&database).await?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART);
    let (sha256, size_bytes) = match copy_export(stream, &mut writer).await {
        Ok(done) => done,
        Err(error) => {
            // Nothing half-written is left behind, and no manifest points at it.
            let _ = writer.abort().await;
            return Err(error);
        }
    };
    writer.finish().await?;
    let end = chain_record(&mut clients, info.audit_records + 1).await?;
    let manifest = HubStateManifest {
        namespace: node.namespace.clone(),
        name: node.name.clone(),
        target_namespace: target_namespace.to_owned(),
        taken_at,
        sha256,
        size_bytes,
        audit_records: info.audit_records + 1,
        dir: dir.to_owned(),
        audit_head: end.clone(),
    };
    let bytes = serde_json::to_vec_pretty(&manifest)
        .map_err(|e| HubStateError::Storage(format!("state.json: {e}")))?;
    objects
        .put(
            &StorePath::from(format!("{dir}/state.json")),
            PutPayload::from(bytes),
        )
        .await?;
    Ok(Exported::Copied(Box::new(manifest), end))
}

/// Streams an export into `writer`, hashing on the way; the SHA-256 and size when the hub's
/// checksum on the last chunk matches.
async fn copy_export(
    mut stream: tonic::Streaming<govdc_hub_api::v1::StateChunk>,
    writer: &mut WriteMultipart,
) -> Result<(String, u64), HubStateError> {
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut announced: Option<String> = None;
    loop {
        let next = tokio::time::timeout(STALL_TIMEOUT, stream.message())
            .await
            .map_err(|_| {
                HubStateError::Unreachable(format!(
                    "Node.ExportState: no data for {}s",
                    STALL_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|s| HubStateError::from_status("Node.ExportState", &s))?;
        let Some(chunk) = next else { break };
        if announced.is_some() && !chunk.data.is_empty() {
            return Err(HubStateError::Refused(
                "Node.ExportState: data after the chunk that carried the checksum".into(),
            ));
        }
        hasher.update(&chunk.data);
        size += chunk.data.len() as u64;
        writer.write(&chunk.data);
        // Bounded parts in flight: the export's memory stays flat.
        writer.wait_for_capacity(2).await?;
        if !chunk.sha256.is_empty() {
            announced = Some(chunk.sha256.to_ascii_lowercase());
        }
    }
    let actual = hex(&hasher.finalize());
    match announced {
        None => Err(HubStateError::Unreachable(
            "Node.ExportState ended without its checksum; the copy is incomplete".into(),
        )),
        Some(announced) if announced != actual => Err(HubStateError::Checksum(format!(
            "the export hashes to {actual}, the hub said {announced}"
        ))),
        Some(_) => Ok((actual, size)),
    }
}

/// What an import did.
#[derive(Debug)]
pub struct Imported {
    /// The copy imported (or found already imported).
    pub manifest: HubStateManifest,
    /// False when the hub's last import was already this copy.
    pub imported: bool,
    /// Audit records the target's chain holds, all verified.
    pub records_verified: i64,
}

/// Imports a stored copy into the hub behind `access` (unless its last import was this very
/// copy), then verifies the hub's audit chain. Waits up to `wait` for a hub that does not answer
/// yet (its pod starting after failover).
pub async fn import(
    access: &HubAccess,
    store: &RestorePointStore,
    manifest: &HubStateManifest,
    wait: Duration,
) -> Result<Imported, HubStateError> {
    let started = Instant::now();
    let (mut clients, info) = loop {
        let attempt = async {
            let mut clients = clients(access).await?;
            let info = node_info(&mut clients, access).await?;
            Ok::<_, HubStateError>((clients, info))
        }
        .await;
        match attempt {
            Ok(ready) => break ready,
            Err(HubStateError::Unreachable(why)) if started.elapsed() < wait => {
                tracing::info!(endpoint = %access.endpoint, %why, "waiting for the hub");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(error) => return Err(error),
        }
    };
    let already =
        last_import(&mut clients, info.audit_records).await? == Some(manifest.sha256.clone());
    if !already {
        let source = store
            .objects()
            .get(&manifest.database())
            .await?
            .into_stream();
        let failure = Arc::new(Mutex::new(None));
        let chunks = import_chunks(source, manifest.sha256.clone(), failure.clone());
        let sent = clients.node.import_state(chunks).await;
        if let Some(why) = failure.lock().ok().and_then(|mut f| f.take()) {
            // The stream ended without its checksum, so the hub replaced nothing.
            return Err(HubStateError::Storage(format!(
                "reading {}: {why}",
                manifest.database()
            )));
        }
        sent.map_err(|s| HubStateError::from_status("Node.ImportState", &s))?;
    }
    let verified = unary(
        "Audit.VerifyAudit",
        clients.audit.verify_audit(VerifyAuditRequest::default()),
    )
    .await?;
    if !verified.intact {
        return Err(HubStateError::AuditNotIntact(format!(
            "the audit chain of node {} on {} is broken at record {}: {}",
            access.node, access.endpoint, verified.first_broken_seq, verified.reason
        )));
    }
    if verified.records_checked < manifest.audit_records {
        return Err(HubStateError::AuditNotIntact(format!(
            "node {} on {} holds {} audit records, the copy of {} holds at least {}",
            access.node,
            access.endpoint,
            verified.records_checked,
            manifest.taken_at,
            manifest.audit_records
        )));
    }
    Ok(Imported {
        manifest: manifest.clone(),
        imported: !already,
        records_verified: verified.records_checked,
    })
}

/// The SHA-256 of the copy the hub last imported, from its newest `state.import` audit record;
/// read backwards a page at a time, so the cost is what was written since that import.
async fn last_import(clients: &mut Clients, count: i64) -> Result<Option<String>, HubStateError> {
    let mut end = count;
    while end > 0 {
        let start = (end - AUDIT_PAGE).max(0);
        let records = unary(
            "Audit.ListAuditRecords",
            clients.audit.list_audit_records(ListAuditRecordsRequest {
                after_seq: start,
                limit: i32::try_from(end - start).unwrap_or(1000),
            }),
        )
        .await?
        .records;
        if let Some(record) = records
            .iter()
            .rev()
            .find(|r| r.action == "state.import" && r.seq <= end)
        {
            let detail: serde_json::Value =
                serde_json::from_str(&record.detail).unwrap_or_default();
            return Ok(detail["sha256"].as_str().map(str::to_ascii_lowercase));
        }
        end = start;
    }
    Ok(None)
}

/// The ImportState messages for a stored copy: 1 MiB at a time, the SHA-256 on the last one. A
/// read error ends the stream early without the checksum, which the hub refuses — nothing is
/// replaced — and is kept in `failure` for the report.
fn import_chunks<S, B>(
    source: S,
    sha256: String,
    failure: Arc<Mutex<Option<String>>>,
) -> impl Stream<Item = ImportStateChunk> + Send + 'static
where
    S: Stream<Item = Result<B, object_store::Error>> + Send + Unpin + 'static,
    B: AsRef<[u8]> + Send + 'static,
{
    futures::stream::unfold(
        (source, Vec::with_capacity(CHUNK), false),
        move |(mut source, mut buffer, done)| {
            let sha256 = sha256.clone();
            let failure = failure.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    match source.next().await {
                        Some(Ok(bytes)) => {
                            buffer.extend_from_slice(bytes.as_ref());
                            if buffer.len() >= CHUNK {
                                let data =
                                    std::mem::replace(&mut buffer, Vec::with_capacity(CHUNK));
                                let chunk = ImportStateChunk {
                                    data,
                                    sha256: String::new(),
                                    replace: true,
                                };
                                return Some((chunk, (source, buffer, false)));
                            }
                        }
                        Some(Err(error)) => {
                            if let Ok(mut failure) = failure.lock() {
                                *failure = Some(error.to_string());
                            }
                            return None;
                        }
                        None => {
                            let chunk = ImportStateChunk {
                                data: std::mem::take(&mut buffer),
                                sha256,
                                // The target's own state is replaced: a standby hub holds
                                // nothing of its own that the primary's copy should not win over.
                                replace: true,
                            };
                            return Some((chunk, (source, buffer, true)));
                        }
                    }
                }
            }
        },
    )
}

/// The store directory of a copy taken between restore points.
fn continuous_dir(policy: &str, node: &NodeRef, taken_at: Timestamp) -> String {
    format!(
        "{policy}/hub-state/{}/{}/{}",
        node.namespace,
        node.name,
        point_name(taken_at)
    )
}

/// The store directory of the copy taken with restore point `point`.
fn point_dir(policy: &str, point: &str, node: &NodeRef) -> String {
    format!("{policy}/{point}/hub/{}/{}", node.namespace, node.name)
}

async fn read_manifests(
    store: &RestorePointStore,
    prefix: &str,
) -> Result<Vec<HubStateManifest>, StoreError> {
    let objects = store.objects();
    let files: Vec<object_store::ObjectMeta> = objects
        .list(Some(&StorePath::from(prefix)))
        .try_collect()
        .await?;
    let mut manifests = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.location.filename() == Some("state.json"))
    {
        let bytes = objects.get(&file.location).await?.bytes().await?;
        match serde_json::from_slice::<HubStateManifest>(&bytes) {
            Ok(manifest) => manifests.push(manifest),
            Err(error) => {
                tracing::warn!(file = %file.location, %error, "skipping an unreadable hub state manifest")
            }
        }
    }
    manifests.sort_by_key(|m| std::cmp::Reverse(m.taken_at));
    Ok(manifests)
}

/// The copies taken between restore points, of every node, newest first.
pub async fn stored(store: &RestorePointStore) -> Result<Vec<HubStateManifest>, StoreError> {
    read_manifests(store, &format!("{}/hub-state", store.policy())).await
}

/// The newest copy of each node taken no later than `until` (the failover's time, so that a
/// second failover never prefers a copy the primary took after the first): the copies taken
/// between restore points and with them, whichever is newer.
pub async fn latest(
    store: &RestorePointStore,
    until: Option<Timestamp>,
) -> Result<Vec<HubStateManifest>, StoreError> {
    let mut all = stored(store).await?;
    for point in store.list().await? {
        all.extend(point.hub_states);
    }
    let mut newest: BTreeMap<NodeRef, HubStateManifest> = BTreeMap::new();
    for manifest in all
        .into_iter()
        .filter(|m| until.is_none_or(|until| m.taken_at <= until))
    {
        let node = manifest.node();
        if newest
            .get(&node)
            .is_none_or(|kept| kept.taken_at < manifest.taken_at)
        {
            newest.insert(node, manifest);
        }
    }
    Ok(newest.into_values().collect())
}

/// Deletes a copy, manifest first so that it is never used half-deleted. A file already gone
/// (a deletion cut short earlier) is no error.
async fn delete(store: &RestorePointStore, manifest: &HubStateManifest) -> Result<(), StoreError> {
    let objects = store.objects();
    for path in [
        StorePath::from(format!("{}/state.json", manifest.dir)),
        manifest.database(),
    ] {
        match objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Deletes the copies of `node` taken between restore points that `retention` does not keep.
async fn prune(
    store: &RestorePointStore,
    node: &NodeRef,
    retention: &Retention,
) -> Result<usize, StoreError> {
    let prefix = format!(
        "{}/hub-state/{}/{}",
        store.policy(),
        node.namespace,
        node.name
    );
    let manifests = read_manifests(store, &prefix).await?;
    let points: Vec<(String, Timestamp)> = manifests
        .iter()
        .map(|m| (m.dir.clone(), m.taken_at))
        .collect();
    let keep = retention.keep(&points);
    let mut deleted = 0;
    for manifest in manifests.iter().filter(|m| !keep.contains(&m.dir)) {
        delete(store, manifest).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Exports every hub of `source` into restore point `point` (before its manifest is written).
/// A hub that cannot be exported now is represented by its newest copy taken between points, if
/// any; the second list says which hubs were not exported now, and why.
pub async fn take_with_point(
    primary: &Client,
    store: &RestorePointStore,
    source: &HubStateSource,
    point: &str,
) -> (Vec<HubStateManifest>, Vec<String>) {
    let mut states = Vec::new();
    let mut failures = Vec::new();
    for node in &source.nodes {
        let dir = point_dir(store.policy(), point, node);
        let target_namespace = map_namespace(&source.mapping, &node.namespace);
        let endpoint = source.hubs.endpoint(&node.namespace, &node.name);
        let exported = async {
            let access = access(primary, &node.namespace, &node.name, endpoint).await?;
            export(&access, store, &dir, node, &target_namespace, None).await
        }
        .await;
        match exported {
            Ok(Exported::Copied(manifest, _)) => states.push(*manifest),
            Ok(Exported::Unchanged) => {}
            Err(error) => match copy_latest(store, node, &dir).await {
                Ok(Some(manifest)) => {
                    failures.push(format!(
                        "{node}: {error}; the point holds its copy of {}",
                        manifest.taken_at
                    ));
                    states.push(manifest);
                }
                Ok(None) => failures.push(format!("{node}: {error}; no earlier copy exists")),
                Err(store_error) => failures.push(format!(
                    "{node}: {error}; copying its earlier copy failed: {store_error}"
                )),
            },
        }
    }
    (states, failures)
}

/// Copies the newest copy of `node` taken between points into `dir`.
async fn copy_latest(
    store: &RestorePointStore,
    node: &NodeRef,
    dir: &str,
) -> Result<Option<HubStateManifest>, StoreError> {
    let Some(latest) = stored(store).await?.into_iter().find(|m| m.node() == *node) else {
        return Ok(None);
    };
    let objects = store.objects();
    objects
        .copy(
            &latest.database(),
            &StorePath::from(format!("{dir}/state.db")),
        )
        .await?;
    let manifest = HubStateManifest {
        dir: dir.to_owned(),
        ..latest
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
        name: dir.to_owned(),
        message: e.to_string(),
    })?;
    objects
        .put(
            &StorePath::from(format!("{dir}/state.json")),
            PutPayload::from(bytes),
        )
        .await?;
    Ok(Some(manifest))
}

/// What the policy's status says of one node.
#[derive(Clone, Debug, Default)]
struct NodeState {
    /// When the stored copy was taken.
    copied_at: Option<Timestamp>,
    /// The last failure, cleared by a success.
    error: Option<(&'static str, String)>,
}

/// The running export of a policy's hubs, as the replicator holds it: dropping it stops the
/// exports (after the one in flight, so no upload is cut short).
pub struct Replication {
    nodes: Vec<NodeRef>,
    states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>>,
    trigger: Arc<Notify>,
    stop: watch::Sender<bool>,
}

/// How a [`Replication`] runs.
pub struct ReplicationSettings {
    /// The policy.
    pub policy: String,
    /// What to export.
    pub source: HubStateSource,
    /// The primary, for the nodes' keys.
    pub primary: Client,
    /// Where the copies go.
    pub store: RestorePointStore,
    /// Which copies are kept.
    pub retention: Retention,
    /// Every this long (continuous mode); None: on [`Replication::trigger`] (scheduled mode).
    pub interval: Option<Duration>,
    /// The metrics.
    pub metrics: BackupMetrics,
}

impl Replication {
    /// Starts exporting; the first round runs at once.
    pub fn start(settings: ReplicationSettings) -> Replication {
        let nodes = settings.source.nodes.clone();
        let states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>> = Arc::default();
        let trigger = Arc::new(Notify::new());
        let (stop, stopped) = watch::channel(false);
        tokio::spawn(run(settings, states.clone(), trigger.clone(), stopped));
        Replication {
            nodes,
            states,
            trigger,
            stop,
        }
    }

    /// Asks for a round now (a scheduled pass).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    /// Stops exporting: the target was promoted.
    pub fn stop(&self) {
        let _ = self.stop.send(true);
    }

    /// The `HubStateReplicated` condition.
    pub fn condition(&self) -> Observed {
        let states = self.states.lock().map(|s| s.clone()).unwrap_or_default();
        condition(&self.nodes, &states)
    }
}

fn condition(nodes: &[NodeRef], states: &BTreeMap<NodeRef, NodeState>) -> Observed {
    let failing: Vec<(&NodeRef, &(&'static str, String))> = nodes
        .iter()
        .filter_map(|n| Some((n, states.get(n)?.error.as_ref()?)))
        .collect();
    if let Some((_, (reason, _))) = failing.first() {
        let message = failing
            .iter()
            .map(|(node, (_, message))| format!("{node}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Observed::no(
            HUB_STATE_REPLICATED,
            *reason,
            format!(
                "the hub state of {} of {} ExchangeNodes is not exported: {message}",
                failing.len(),
                nodes.len()
            ),
        );
    }
    let copied: Vec<Timestamp> = nodes
        .iter()
        .filter_map(|n| states.get(n)?.copied_at)
        .collect();
    if copied.len() < nodes.len() {
        return Observed::no(
            HUB_STATE_REPLICATED,
            "ExportPending",
            format!(
                "{} of {} ExchangeNodes' hub state exported so far",
                copied.len(),
                nodes.len()
            ),
        );
    }
    let oldest = copied.iter().min().copied().unwrap_or_else(Timestamp::now);
    let oldest = oldest.round(jiff::Unit::Second).unwrap_or(oldest);
    Observed::yes(
        HUB_STATE_REPLICATED,
        "Exported",
        format!(
            "the hub state of {} ExchangeNodes is in the restore-point store; last export at {oldest} (later rounds found no change)",
            nodes.len()
        ),
    )
}

async fn run(
    settings: ReplicationSettings,
    states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>>,
    trigger: Arc<Notify>,
    mut stopped: watch::Receiver<bool>,
) {
    let policy = settings.policy.clone();
    let mut ends: BTreeMap<NodeRef, (ChainEnd, Instant)> = BTreeMap::new();
    loop {
        for node in &settings.source.nodes {
            if *stopped.borrow() {
                break;
            }
            round(&settings, node, &states, &mut ends).await;
        }
        let wait = async {
            match settings.interval {
                Some(interval) => tokio::time::sleep(interval).await,
                None => trigger.notified().await,
            }
        };
        tokio::select! {
            changed = stopped.changed() => if changed.is_err() || *stopped.borrow() { break },
            _ = wait => {}
        }
    }
    for node in &settings.source.nodes {
        settings.metrics.forget_hub_node(&policy, &node.to_string());
    }
    tracing::info!(%policy, "hub state export stopped");
}

/// One node's export, its bookkeeping and its retention.
async fn round(
    settings: &ReplicationSettings,
    node: &NodeRef,
    states: &Mutex<BTreeMap<NodeRef, NodeState>>,
    ends: &mut BTreeMap<NodeRef, (ChainEnd, Instant)>,
) {
    let policy = &settings.policy;
    let since = ends
        .get(node)
        .filter(|(_, at)| at.elapsed() < MAX_AGE)
        .map(|(end, _)| end.clone());
    let now = Timestamp::now();
    let dir = continuous_dir(policy, node, now);
    let target_namespace = map_namespace(&settings.source.mapping, &node.namespace);
    let endpoint = settings.source.hubs.endpoint(&node.namespace, &node.name);
    let result = async {
        let access = access(&settings.primary, &node.namespace, &node.name, endpoint).await?;
        export(
            &access,
            &settings.store,
            &dir,
            node,
            &target_namespace,
            since.as_ref(),
        )
        .await
    }
    .await;
    let update = |f: &dyn Fn(&mut NodeState)| {
        if let Ok(mut states) = states.lock() {
            f(states.entry(node.clone()).or_default());
        }
    };
    match result {
        Ok(exported) => {
            if let Exported::Copied(manifest, end) = exported {
                tracing::info!(%policy, %node, sha256 = %manifest.sha256, bytes = manifest.size_bytes,
                    audit_records = manifest.audit_records, "exported a hub's state");
                match end {
                    Some(end) => {
                        ends.insert(node.clone(), (end, Instant::now()));
                    }
                    None => {
                        ends.remove(node);
                    }
                }
                let taken_at = manifest.taken_at;
                update(&|s| s.copied_at = Some(taken_at));
                match prune(&settings.store, node, &settings.retention).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::debug!(%policy, %node, deleted, "deleted hub state copies past retention")
                    }
                    Err(error) => {
                        tracing::warn!(%policy, %node, %error, "applying retention to hub state copies failed")
                    }
                }
            }
            // Unchanged means unchanged since a copy this task made, whose time it already holds.
            update(&|s| s.error = None);
            settings.metrics.hub_state_exported(
                policy,
                &node.to_string(),
                Timestamp::now().as_millisecond() as f64 / 1000.0,
            );
        }
        Err(error) => {
            let reason = error.reason();
            let message = error.to_string();
            let first = states
                .lock()
                .map(|s| s.get(node).and_then(|s| s.error.clone()).map(|e| e.0) != Some(reason))
                .unwrap_or(true);
            if first {
                tracing::warn!(%policy, %node, reason, error = %message, "exporting a hub's state failed");
            }
            settings.metrics.error(policy, reason);
            update(&|s| s.error = Some((reason, message.clone())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
