//! Statistics: sharing statistics (共享率) per department and per resource registered here.

use std::collections::BTreeMap;

use base64::Engine;
use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::statistics_server::Statistics;
use govdc_hub_api::v1::{
    DepartmentStats, GetSharingStatsRequest, GrantState, NodeSharingStats, ResourceStats,
    ShareType, SharingStats,
};
use prost::Message;
use rusqlite::Connection;
use tonic::{Request, Response, Status};

use super::{Hub, HubService, now_micros, set_setting, setting, timestamp};
use crate::service::DbResult;

fn child_stats_key(child: &str) -> String {
    format!("child.{child}.sharingStats")
}

/// Keeps the statistics `child` sent to node `own` with its catalog (its node and those below
/// it), each with the node it reports to.
pub fn keep_child_stats(
    conn: &Connection,
    own: &str,
    child: &str,
    stats: Option<&SharingStats>,
) -> Result<(), Status> {
    let nodes: Vec<NodeSharingStats> = stats
        .map(|s| s.nodes.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|n| !n.node.is_empty())
        .map(|mut n| {
            if n.node == child {
                n.via = own.to_owned();
            } else if n.via.is_empty() {
                n.via = child.to_owned();
            }
            n
        })
        .collect();
    let encoded = SharingStats {
        nodes,
        ..Default::default()
    }
    .encode_to_vec();
    let text = base64::engine::general_purpose::STANDARD.encode(encoded);
    Ok(set_setting(conn, &child_stats_key(child), Some(&text))?)
}

/// The statistics of the nodes below this one, as their children last sent them.
pub fn forwarded_stats(conn: &Connection) -> Result<Vec<NodeSharingStats>, Status> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT value FROM settings WHERE key LIKE 'child.%.sharingStats' ORDER BY key",
        )
        .db()?;
    let texts = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let mut nodes = Vec::new();
    for text in texts {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| Status::internal(format!("stored child statistics: {e}")))?;
        let stats = SharingStats::decode(bytes.as_slice())
            .map_err(|e| Status::internal(format!("stored child statistics: {e}")))?;
        nodes.extend(stats.nodes);
    }
    Ok(nodes)
}

/// This node's figures as a [`NodeSharingStats`], now.
pub fn own_node_stats(hub: &Hub, stats: &SharingStats) -> NodeSharingStats {
    NodeSharingStats {
        node: hub.config.name.clone(),
        level: hub.level() as i32,
        region_code: hub.config.region_code.clone(),
        as_of: Some(timestamp(now_micros())),
        departments: stats.departments.clone(),
        via: String::new(),
    }
}

/// Everything `GetSharingStats` answers: this node's departments and resources, and the
/// per-node figures of this node and every node below it.
pub fn tree_sharing_stats(hub: &Hub, conn: &Connection) -> Result<SharingStats, Status> {
    let mut stats = sharing_stats(conn)?;
    let mut nodes = vec![own_node_stats(hub, &stats)];
    nodes.extend(forwarded_stats(conn)?);
    stats.nodes = nodes;
    Ok(stats)
}

/// When `child` last synced here, microseconds since the Unix epoch.
pub fn child_last_sync(conn: &Connection, child: &str) -> Result<Option<i64>, Status> {
    Ok(setting(conn, &format!("child.{child}.lastSync"))?.and_then(|v| v.parse().ok()))
}

/// The node's sharing statistics: every member and provider, every resource registered here.
pub fn sharing_stats(conn: &Connection) -> Result<SharingStats, Status> {
    let approved = GrantState::Approved as i32;
    let mut stmt = conn
        .prepare_cached(
            "SELECT r.code, r.provider, r.share_type, r.record_count, r.records_served,
                    (SELECT count(*) FROM grants g WHERE g.resource_code = r.code AND g.state = ?1),
                    (SELECT count(*) FROM grants g WHERE g.resource_code = r.code)
             FROM resources r WHERE r.origin = '' ORDER BY r.code",
        )
        .db()?;
    let rows = stmt
        .query_map([approved], |row| {
            Ok((
                ResourceStats {
                    code: row.get(0)?,
                    provider: row.get(1)?,
                    records_published: row.get(3)?,
                    records_served: row.get(4)?,
                    consumers: row.get(5)?,
                    requests: row.get(6)?,
                },
                row.get::<_, i32>(2)?,
            ))
        })
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?;
    let mut departments: BTreeMap<String, DepartmentStats> = BTreeMap::new();
    let mut members = conn
        .prepare_cached("SELECT credit_code FROM members")
        .db()?;
    for code in members
        .query_map([], |row| row.get::<_, String>(0))
        .db()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .db()?
    {
        departments.insert(
            code.clone(),
            DepartmentStats {
                credit_code: code,
                ..Default::default()
            },
        );
    }
    let mut resources = Vec::with_capacity(rows.len());
    for (stats, share_type) in rows {
        let department = departments
            .entry(stats.provider.clone())
            .or_insert_with(|| DepartmentStats {
                credit_code: stats.provider.clone(),
                ..Default::default()
            });
        department.resources += 1;
        if share_type == ShareType::Unconditional as i32
            || share_type == ShareType::Conditional as i32
        {
            department.shared_resources += 1;
        }
        department.grants_approved += stats.consumers;
        department.records_served += stats.records_served;
        resources.push(stats);
    }
    let departments = departments
        .into_values()
        .map(|mut d| {
            d.share_rate = if d.resources == 0 {
                0.0
            } else {
                d.shared_resources as f64 / d.resources as f64
            };
            d
        })
        .collect();
    Ok(SharingStats {
        departments,
        resources,
        nodes: Vec::new(),
    })
}

#[tonic::async_trait]
impl Statistics for HubService {
    async fn get_sharing_stats(
        &self,
        request: Request<GetSharingStatsRequest>,
    ) -> Result<Response<SharingStats>, Status> {
        self.auth.caller(
            &request,
            "Statistics.GetSharingStats",
            &[Role::Admin, Role::Member],
        )?;
        let hub = self.0.clone();
        Ok(Response::new(
            self.store
                .read(move |conn| tree_sharing_stats(&hub, conn))
                .await?,
        ))
    }
}
