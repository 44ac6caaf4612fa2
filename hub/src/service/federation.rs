//! Federation, the parent's side: a child node replaces what it forwarded before with its
//! current catalog, and its audit head is recorded in this node's chain (an anchor outside the
//! child, see [`crate::anchor`]).

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::federation_server::Federation;
use govdc_hub_api::v1::{
    GetAuditAnchorRequest, GetAuditAnchorResponse, Level, Network, SyncCatalogRequest,
    SyncCatalogResponse,
};
use prost::Message;
use rusqlite::params;
use serde_json::json;
use sha2::Digest;
use tonic::{Request, Response, Status};

use super::{HubService, now_micros, record, set_setting, setting};
use crate::anchor::Anchor;
use crate::audit::Algorithm;
use crate::service::DbResult;

fn anchor_key(child: &str) -> String {
    format!("child.{child}.auditAnchor")
}

fn disputed_key(child: &str) -> String {
    format!("child.{child}.auditAnchorsDisputed")
}

/// Disputed anchors kept per child: enough for a history of incidents, bounded.
const MAX_DISPUTED: usize = 16;

/// The anchors `child`'s head diverged from, oldest first.
fn disputed_anchors(conn: &rusqlite::Connection, child: &str) -> Result<Vec<Anchor>, Status> {
    setting(conn, &disputed_key(child))?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Status::internal(format!("stored anchors do not parse: {e}")))
        })
        .transpose()
        .map(Option::unwrap_or_default)
}

/// Keeps `anchor` as disputed: a head of `child` diverged from it. It stays, so that a chain
/// that later grows past it is still checked against it.
fn dispute(conn: &rusqlite::Connection, child: &str, anchor: &Anchor) -> Result<(), Status> {
    let mut disputed = disputed_anchors(conn, child)?;
    if disputed
        .iter()
        .any(|d| d.seq == anchor.seq && d.hash == anchor.hash)
    {
        return Ok(());
    }
    disputed.push(anchor.clone());
    if disputed.len() > MAX_DISPUTED {
        disputed.remove(0);
    }
    let text = serde_json::to_string(&disputed)
        .map_err(|e| Status::internal(format!("encoding anchors: {e}")))?;
    Ok(set_setting(conn, &disputed_key(child), Some(&text))?)
}

/// The newest anchor of `child`'s head recorded here.
fn stored_anchor(conn: &rusqlite::Connection, child: &str) -> Result<Option<Anchor>, Status> {
    setting(conn, &anchor_key(child))?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Status::internal(format!("a stored anchor does not parse: {e}")))
        })
        .transpose()
}

/// Records `child`'s head in this node's chain, unless it is the head seen last. The anchor
/// kept (and answered by GetAuditAnchor) only moves forward: a head at or below it that differs
/// (the child's log was cut, rewritten or replaced) is recorded as a divergence, and the higher
/// anchor stays, as the evidence the child's verification is held against.
fn record_anchor(
    conn: &rusqlite::Connection,
    algorithm: Algorithm,
    own: &str,
    child: &str,
    seq: i64,
    hash: &str,
) -> Result<Anchor, Status> {
    let previous = stored_anchor(conn, child)?;
    let seen_key = format!("child.{child}.auditHeadSeen");
    let seen = format!("{seq}:{hash}");
    if let Some(previous) = &previous
        && setting(conn, &seen_key)?.as_deref() == Some(seen.as_str())
    {
        return Ok(previous.clone());
    }
    set_setting(conn, &seen_key, Some(&seen))?;
    if let Some(previous) = previous.filter(|p| seq <= p.seq) {
        if previous.seq != seq || previous.hash != hash {
            tracing::warn!(
                child,
                seq,
                anchored = previous.seq,
                "a child's audit head went back"
            );
            record(
                conn,
                algorithm,
                child,
                "audit.anchor",
                child,
                json!({
                    "seq": seq,
                    "hash": hash,
                    "diverged": {"seq": previous.seq, "hash": previous.hash},
                    "kept": previous.seq,
                }),
            )?;
            dispute(conn, child, &previous)?;
        }
        return Ok(previous);
    }
    let now = now_micros();
    let recorded_seq = record(
        conn,
        algorithm,
        child,
        "audit.anchor",
        child,
        json!({"seq": seq, "hash": hash}),
    )?;
    let anchor = Anchor {
        node: child.to_owned(),
        seq,
        hash: hash.to_owned(),
        recorded_by: own.to_owned(),
        recorded_seq,
        recorded_at_micros: now,
    };
    let text = serde_json::to_string(&anchor)
        .map_err(|e| Status::internal(format!("encoding an anchor: {e}")))?;
    set_setting(conn, &anchor_key(child), Some(&text))?;
    Ok(anchor)
}

fn network_name(network: i32) -> &'static str {
    match Network::try_from(network) {
        Ok(Network::Intranet) => "intranet (政务内网)",
        Ok(Network::Extranet) => "extranet (政务外网)",
        _ => "unspecified network",
    }
}

fn level_name(level: i32) -> &'static str {
    match Level::try_from(level) {
        Ok(Level::National) => "national",
        Ok(Level::Provincial) => "provincial",
        Ok(Level::Municipal) => "municipal",
        _ => "unspecified",
    }
}

impl HubService {
    /// Why a sync from `node` on `network` at `level` is refused, if it is.
    fn refusal(&self, node: &str, network: i32, level: i32) -> Option<Status> {
        let own_network = self.network() as i32;
        if network != own_network {
            return Some(Status::failed_precondition(format!(
                "node {node} is on the {} and node {} on the {}: intranet and extranet nodes never federate",
                network_name(network),
                self.config.name,
                network_name(own_network)
            )));
        }
        let own_level = self.level() as i32;
        // Levels count down from national (1): a child is strictly below its parent.
        if level <= own_level {
            return Some(Status::failed_precondition(format!(
                "node {node} is {} and node {} is {}: a parent must be of a higher level than its child",
                level_name(level),
                self.config.name,
                level_name(own_level)
            )));
        }
        None
    }
}

#[tonic::async_trait]
impl Federation for HubService {
    async fn sync_catalog(
        &self,
        request: Request<SyncCatalogRequest>,
    ) -> Result<Response<SyncCatalogResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Federation.SyncCatalog", &[Role::Node])?;
        let SyncCatalogRequest {
            node,
            level,
            network,
            region_code,
            resources,
            audit_head,
            sharing_stats,
        } = request.into_inner();
        if caller.subject != node {
            return Err(Status::permission_denied(format!(
                "the token is for node {}, the catalog claims to come from node {node}",
                caller.subject
            )));
        }
        if node == self.config.name {
            return Err(Status::invalid_argument(format!(
                "node {node} cannot be its own parent"
            )));
        }
        if let Some(refusal) = self.refusal(&node, network, level) {
            // The monitor shows why a child's catalog is not taken (the child's own log says it
            // too, but nobody watching this node reads that).
            let key = format!("child.{node}.lastError");
            let message = refusal.message().to_owned();
            self.store
                .write(move |conn| Ok(set_setting(conn, &key, Some(&message))?))
                .await?;
            return Err(refusal);
        }
        // Entries registered here that came back up the tree would mean a cycle; they are not
        // forwarded copies of anything.
        let own = self.config.name.clone();
        let resources: Vec<_> = resources.into_iter().filter(|r| r.node != own).collect();
        let accepted = resources.len() as i64;
        let mut digest = sha2::Sha256::new();
        for resource in &resources {
            digest.update(resource.encode_to_vec());
        }
        let digest = hex::encode(digest.finalize());
        let algorithm = self.algorithm();
        let child = node.clone();
        let (changed, anchor) = self
            .store
            .write(move |conn| {
                // Every sync, changed or not: the monitor's federation health and 共享率 by
                // province read these.
                set_setting(
                    conn,
                    &format!("child.{child}.lastSync"),
                    Some(&now_micros().to_string()),
                )?;
                set_setting(conn, &format!("child.{child}.lastError"), None)?;
                super::statistics::keep_child_stats(conn, &own, &child, sharing_stats.as_ref())?;
                let anchor = match &audit_head {
                    Some(head) if head.seq > 0 => Some(record_anchor(
                        conn, algorithm, &own, &child, head.seq, &head.hash,
                    )?),
                    _ => None,
                };
                let key = format!("child.{child}.catalogSha256");
                // A periodic push of an unchanged catalog changes nothing and records nothing
                // (but its audit head, when that moved).
                if setting(conn, &key)?.as_deref() == Some(digest.as_str()) {
                    return Ok((false, anchor));
                }
                conn.execute("DELETE FROM resources WHERE origin = ?1", [&child]).db()?;
                let mut insert = conn
                    .prepare_cached(
                        "INSERT OR REPLACE INTO resources
                           (code, origin, provider, node, share_type, updated_at, record_count, body)
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                    )
                    .db()?;
                for resource in &resources {
                    let updated = resource
                        .updated_at
                        .as_ref()
                        .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
                        .unwrap_or_else(now_micros);
                    insert
                        .execute(params![
                            resource.code,
                            child,
                            resource.provider,
                            resource.node,
                            resource.share_type,
                            updated,
                            resource.record_count,
                            resource.encode_to_vec()
                        ])
                        .db()?;
                }
                set_setting(conn, &key, Some(&digest))?;
                record(
                    conn,
                    algorithm,
                    &child,
                    "federation.sync",
                    &child,
                    json!({"resources": resources.len(), "level": level_name(level), "regionCode": region_code, "sha256": digest}),
                )?;
                Ok((true, anchor))
            })
            .await?;
        if changed {
            tracing::info!(child = %node, resources = accepted, "child catalog replaced");
            self.parent.catalog_changed();
        }
        Ok(Response::new(SyncCatalogResponse {
            accepted,
            parent: self.config.name.clone(),
            anchor: anchor.map(|a| a.to_api()),
        }))
    }

    async fn get_audit_anchor(
        &self,
        request: Request<GetAuditAnchorRequest>,
    ) -> Result<Response<GetAuditAnchorResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Federation.GetAuditAnchor", &[Role::Node])?;
        let child = caller.subject.clone();
        let (newest, disputed) = self
            .store
            .read(move |conn| {
                Ok((
                    stored_anchor(conn, &child)?,
                    disputed_anchors(conn, &child)?,
                ))
            })
            .await?;
        let newest = newest.ok_or_else(|| {
            Status::not_found(format!(
                "node {} has recorded no audit head of node {}: it has not synced here yet",
                self.config.name, caller.subject
            ))
        })?;
        Ok(Response::new(GetAuditAnchorResponse {
            disputed: disputed
                .iter()
                // The newest is answered once.
                .filter(|d| d.seq != newest.seq || d.hash != newest.hash)
                .map(Anchor::to_api)
                .collect(),
            newest: Some(newest.to_api()),
        }))
    }
}
