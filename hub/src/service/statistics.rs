//! Statistics: sharing statistics (共享率) per department and per resource registered here.

use std::collections::BTreeMap;

use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::statistics_server::Statistics;
use govdc_hub_api::v1::{
    DepartmentStats, GetSharingStatsRequest, GrantState, ResourceStats, ShareType, SharingStats,
};
use rusqlite::Connection;
use tonic::{Request, Response, Status};

use super::HubService;
use crate::store::DbResult;

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
        Ok(Response::new(self.store.read(sharing_stats).await?))
    }
}
