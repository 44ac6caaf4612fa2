//! The calls to a hub: access as its admin (a token signed with the node's key), the streamed
//! export into the store with its checksum, and the import into a hub with its audit check.

use super::*;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
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
use sha2::{Digest, Sha256};

use super::super::store::RestorePointStore;
use crate::hub_client::{Authenticated, HubError, bearer, connect, key};

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
        .map_err(|e| HubStateError::KeyMissing(e.chain()))?
        .ok_or_else(|| {
            HubStateError::KeyMissing(format!(
                "Secret {namespace}/{secret_name} has no {:?}",
                key::KEY_FIELD
            ))
        })?;
    let token = key::admin_token(&key, name)
        .map_err(|e| HubStateError::KeyMissing(format!("signing a token: {}", e.chain())))?;
    Ok(HubAccess {
        node: name.to_owned(),
        endpoint,
        token,
    })
}

/// The Node and Audit clients of a hub.
pub(super) struct Clients {
    node: NodeClient<Authenticated>,
    audit: AuditClient<Authenticated>,
}

pub(super) async fn clients(access: &HubAccess) -> Result<Clients, HubStateError> {
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
pub(super) async fn unary<T>(
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
pub(super) async fn node_info(
    clients: &mut Clients,
    access: &HubAccess,
) -> Result<NodeInfo, HubStateError> {
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

pub(super) async fn chain_record(
    clients: &mut Clients,
    seq: i64,
) -> Result<Option<ChainEnd>, HubStateError> {
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
pub(super) async fn copy_export(
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
    let actual = hex::encode(hasher.finalize());
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
pub(super) async fn last_import(
    clients: &mut Clients,
    count: i64,
) -> Result<Option<String>, HubStateError> {
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
pub(super) fn import_chunks<S, B>(
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
