//! Federation, the parent's side: a child node replaces what it forwarded before with its
//! current catalog.

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::federation_server::Federation;
use govdc_hub_api::v1::{Level, Network, SyncCatalogRequest, SyncCatalogResponse};
use prost::Message;
use rusqlite::params;
use serde_json::json;
use sha2::Digest;
use tonic::{Request, Response, Status};

use super::{HubService, now_micros, record, set_setting, setting};
use crate::audit::hex;
use crate::store::DbResult;

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
        let own_network = self.network() as i32;
        if network != own_network {
            return Err(Status::failed_precondition(format!(
                "node {node} is on the {} and node {} on the {}: intranet and extranet nodes never federate",
                network_name(network),
                self.config.name,
                network_name(own_network)
            )));
        }
        let own_level = self.level() as i32;
        // Levels count down from national (1): a child is strictly below its parent.
        if level <= own_level {
            return Err(Status::failed_precondition(format!(
                "node {node} is {} and node {} is {}: a parent must be of a higher level than its child",
                level_name(level),
                self.config.name,
                level_name(own_level)
            )));
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
        let digest = hex(&digest.finalize());
        let algorithm = self.algorithm();
        let child = node.clone();
        let changed = self
            .store
            .write(move |conn| {
                let key = format!("child.{child}.catalogSha256");
                // A periodic push of an unchanged catalog changes nothing and records nothing.
                if setting(conn, &key)?.as_deref() == Some(digest.as_str()) {
                    return Ok(false);
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
                Ok(true)
            })
            .await?;
        if changed {
            tracing::info!(child = %node, resources = accepted, "child catalog replaced");
            self.parent.catalog_changed();
        }
        Ok(Response::new(SyncCatalogResponse {
            accepted,
            parent: self.config.name.clone(),
        }))
    }
}
