//! Exchange: access requests and grants, publishing records, fetching and acknowledging them.
//!
//! Delivery is at least once: a consumer's cursor moves only when it acknowledges, so records
//! fetched and not acknowledged (the consumer crashed, the node restarted) are delivered again.
//!
//! - [`publish`]: appending batches in commit groups, acknowledged once on disk.
//! - [`fetch`]: streams sending what is recorded as delivered to them.
//! - [`lanes`]: the in-memory tail of followed resources and their streams.

mod fetch;
mod lanes;
mod publish;

pub(crate) use lanes::Lanes;

use std::pin::Pin;
use std::sync::Arc;

use futures::Stream;
use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::exchange_server::Exchange;
use govdc_hub_api::v1::{
    AccessGrant, AckRequest, AckResponse, DecideAccessRequest, FetchRequest, FetchResponse,
    GrantState, ListGrantsRequest, ListGrantsResponse, OpenType, Openness, PublishRequest,
    PublishResponse, RequestAccessRequest, ShareType,
};
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::json;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use fetch::{DEFAULT_FETCH_BATCH, MAX_FETCH_BATCH};
use lanes::Follower;

use super::{HubService, now_micros, record, timestamp};
use crate::service::DbResult;
use crate::store::{cached_exec, cached_row};

const GRANT_COLUMNS: &str =
    "id, resource_code, consumer, provider, purpose, state, reason, requested_at, decided_at";

fn grant_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AccessGrant> {
    Ok(AccessGrant {
        id: row.get::<_, i64>(0)?.to_string(),
        resource_code: row.get(1)?,
        consumer: row.get(2)?,
        provider: row.get(3)?,
        purpose: row.get(4)?,
        state: row.get(5)?,
        reason: row.get(6)?,
        requested_at: Some(timestamp(row.get(7)?)),
        decided_at: row.get::<_, Option<i64>>(8)?.map(timestamp),
    })
}

fn grant_by_id(conn: &Connection, id: i64) -> Result<Option<AccessGrant>, Status> {
    cached_row(
        conn,
        &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE id = ?1"),
        [id],
        grant_from_row,
    )
    .optional()
    .db()
}

fn grant_of(
    conn: &Connection,
    consumer: &str,
    resource: &str,
) -> Result<Option<AccessGrant>, Status> {
    cached_row(
        conn,
        &format!("SELECT {GRANT_COLUMNS} FROM grants WHERE consumer = ?1 AND resource_code = ?2"),
        [consumer, resource],
        grant_from_row,
    )
    .optional()
    .db()
}

/// Fails unless `consumer` holds an approved grant on `resource`.
fn require_approved(conn: &Connection, consumer: &str, resource: &str) -> Result<(), Status> {
    // A provider reads its own resource without a grant (RequestAccess refuses it one).
    let (provider, _, _) = local_resource_facts(conn, resource)?;
    if provider == consumer {
        return Ok(());
    }
    match grant_of(conn, consumer, resource)? {
        Some(grant) if grant.state == GrantState::Approved as i32 => Ok(()),
        Some(grant) => Err(Status::permission_denied(format!(
            "{consumer} has no approved grant on {resource}: its request {} is {}",
            grant.id,
            state_name(grant.state)
        ))),
        None => Err(Status::permission_denied(format!(
            "{consumer} has no grant on {resource}: ask with Exchange.RequestAccess first"
        ))),
    }
}

/// Fails unless `consumer` may publish `resource` on an open-data portal with `publication`
/// openness: its provider may; another department only when the provider marked the resource
/// openable (无条件开放 for any openness, 有条件开放 for conditional datasets only). Shared
/// among departments is not open to the public.
fn require_openable(
    conn: &Connection,
    consumer: &str,
    code: &str,
    publication: Openness,
) -> Result<(), Status> {
    if publication == Openness::Unspecified {
        return Ok(());
    }
    let resource = crate::service::catalog::local_resource(conn, code)?
        .ok_or_else(|| Status::not_found(format!("no resource {code} on this node")))?;
    if resource.provider == consumer {
        return Ok(());
    }
    let open_type = OpenType::try_from(resource.open_type).unwrap_or(OpenType::Unspecified);
    match (open_type, publication) {
        (OpenType::Unconditional, _) | (OpenType::Conditional, Openness::Conditional) => Ok(()),
        (OpenType::Conditional, _) => Err(Status::permission_denied(format!(
            "{code} is open on conditions only (有条件开放): {consumer} may publish it as a \
             conditional dataset, not an unconditional one"
        ))),
        (OpenType::NotOpen | OpenType::Unspecified, _) => Err(Status::permission_denied(format!(
            "{code} is not open to the public (不予开放): {}, its provider, has not marked it \
             openable, so only the provider may publish it on an open-data portal; sharing it \
             among departments does not open it",
            resource.provider
        ))),
    }
}

fn state_name(state: i32) -> &'static str {
    match GrantState::try_from(state) {
        Ok(GrantState::Pending) => "pending",
        Ok(GrantState::Approved) => "approved",
        Ok(GrantState::Refused) => "refused",
        Ok(GrantState::Revoked) => "revoked",
        _ => "unspecified",
    }
}

/// The provider, share type and record count of a resource registered on this node; a
/// forwarded or unknown code is refused with a message saying where to go.
fn local_resource_facts(conn: &Connection, code: &str) -> Result<(String, i32, i64), Status> {
    let local: Option<(String, i32, i64)> = cached_row(
        conn,
        "SELECT provider, share_type, record_count FROM resources WHERE code = ?1 AND origin = ''",
        [code],
        |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
    )
    .optional()
    .db()?;
    if let Some(facts) = local {
        return Ok(facts);
    }
    let elsewhere: Option<String> = cached_row(
        conn,
        "SELECT node FROM resources WHERE code = ?1 LIMIT 1",
        [code],
        |row| row.get(0),
    )
    .optional()
    .db()?;
    Err(match elsewhere {
        Some(node) => Status::failed_precondition(format!(
            "resource {code} is registered on node {node}; exchange it there"
        )),
        None => Status::not_found(format!("no resource {code} on this node")),
    })
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Exchange for HubService {
    async fn request_access(
        &self,
        request: Request<RequestAccessRequest>,
    ) -> Result<Response<AccessGrant>, Status> {
        let caller = self
            .auth
            .caller(&request, "Exchange.RequestAccess", &[Role::Member])?;
        let RequestAccessRequest {
            resource_code,
            purpose,
        } = request.into_inner();
        let algorithm = self.algorithm();
        let grant = self
            .store
            .write(move |conn| {
                let (provider, share_type, _) = local_resource_facts(conn, &resource_code)?;
                if provider == caller.subject {
                    return Err(Status::invalid_argument(format!(
                        "{} provides {resource_code}; a provider needs no grant on its own resource",
                        caller.subject
                    )));
                }
                if let Some(existing) = grant_of(conn, &caller.subject, &resource_code)?
                    && (existing.state == GrantState::Pending as i32
                        || existing.state == GrantState::Approved as i32)
                {
                    return Ok(existing);
                }
                let now = now_micros();
                let (state, reason, decided) = match ShareType::try_from(share_type) {
                    Ok(ShareType::Unconditional) => {
                        (GrantState::Approved, "shared unconditionally (无条件共享)".to_owned(), Some(now))
                    }
                    Ok(ShareType::Conditional) => (GrantState::Pending, String::new(), None),
                    _ => (
                        GrantState::Refused,
                        format!("{resource_code} is not shared (不予共享)"),
                        Some(now),
                    ),
                };
                cached_exec(conn,
                    "INSERT INTO grants (resource_code, consumer, provider, purpose, state, reason, requested_at, decided_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                     ON CONFLICT (consumer, resource_code) DO UPDATE SET
                       purpose = excluded.purpose, state = excluded.state, reason = excluded.reason,
                       requested_at = excluded.requested_at, decided_at = excluded.decided_at",
                    params![resource_code, caller.subject, provider, purpose, state as i32, reason, now, decided],
                )
                .db()?;
                let grant = grant_of(conn, &caller.subject, &resource_code)?
                    .ok_or_else(|| Status::internal("the grant vanished"))?;
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "grant.request",
                    &resource_code,
                    json!({"grant": grant.id, "purpose": purpose, "state": state_name(grant.state)}),
                )?;
                Ok(grant)
            })
            .await?;
        Ok(Response::new(grant))
    }

    async fn decide_access(
        &self,
        request: Request<DecideAccessRequest>,
    ) -> Result<Response<AccessGrant>, Status> {
        let caller = self
            .auth
            .caller(&request, "Exchange.DecideAccess", &[Role::Member])?;
        let DecideAccessRequest {
            grant_id,
            approve,
            reason,
        } = request.into_inner();
        let id: i64 = grant_id
            .parse()
            .map_err(|_| Status::invalid_argument(format!("{grant_id:?} is not a grant id")))?;
        let algorithm = self.algorithm();
        let grant = self
            .store
            .write(move |conn| {
                let grant = grant_by_id(conn, id)?
                    .ok_or_else(|| Status::not_found(format!("no grant {grant_id}")))?;
                if grant.provider != caller.subject {
                    return Err(Status::permission_denied(format!(
                        "only {}, the provider of {}, may decide grant {grant_id}",
                        grant.provider, grant.resource_code
                    )));
                }
                let current = GrantState::try_from(grant.state).unwrap_or(GrantState::Unspecified);
                let next = match (current, approve) {
                    (GrantState::Pending, true) => GrantState::Approved,
                    (GrantState::Pending, false) => GrantState::Refused,
                    (GrantState::Approved, false) => GrantState::Revoked,
                    (GrantState::Approved, true) | (GrantState::Refused | GrantState::Revoked, false) => {
                        return Ok(grant);
                    }
                    _ => {
                        return Err(Status::failed_precondition(format!(
                            "grant {grant_id} is {}; the consumer must ask again before it can be approved",
                            state_name(grant.state)
                        )));
                    }
                };
                cached_exec(conn,
                    "UPDATE grants SET state = ?2, reason = ?3, decided_at = ?4 WHERE id = ?1",
                    params![id, next as i32, reason, now_micros()],
                )
                .db()?;
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "grant.decide",
                    &grant.resource_code,
                    json!({"grant": grant.id, "consumer": grant.consumer, "state": state_name(next as i32), "reason": reason}),
                )?;
                grant_by_id(conn, id)?.ok_or_else(|| Status::internal("the grant vanished"))
            })
            .await?;
        Ok(Response::new(grant))
    }

    async fn list_grants(
        &self,
        request: Request<ListGrantsRequest>,
    ) -> Result<Response<ListGrantsResponse>, Status> {
        let caller = self.auth.caller(
            &request,
            "Exchange.ListGrants",
            &[Role::Admin, Role::Member],
        )?;
        let resource = request.into_inner().resource_code;
        let everyone = caller.role == Role::Admin;
        let grants = self
            .store
            .read(move |conn| {
                let mut stmt = conn
                    .prepare(&format!(
                        "SELECT {GRANT_COLUMNS} FROM grants
                         WHERE (?1 OR consumer = ?2 OR provider = ?2) AND (?3 = '' OR resource_code = ?3)
                         ORDER BY id"
                    ))
                    .db()?;
                stmt.query_map(params![everyone, caller.subject, resource], grant_from_row)
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()
            })
            .await?;
        Ok(Response::new(ListGrantsResponse { grants }))
    }

    type PublishStream = BoxStream<PublishResponse>;

    async fn publish(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let caller = self
            .auth
            .caller(&request, "Exchange.Publish", &[Role::Member])?;
        let inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(256);
        tokio::spawn(publish::serve(self.clone(), caller.subject, inbound, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchStream = BoxStream<FetchResponse>;

    async fn fetch(
        &self,
        request: Request<FetchRequest>,
    ) -> Result<Response<Self::FetchStream>, Status> {
        let caller = self
            .auth
            .caller(&request, "Exchange.Fetch", &[Role::Member])?;
        let FetchRequest {
            resource_code,
            max_records,
            batch_size,
            follow,
            from_start,
            publication,
        } = request.into_inner();
        let publication = Openness::try_from(publication).map_err(|_| {
            Status::invalid_argument(format!("publication {publication} is no openness"))
        })?;
        let batch = match i64::from(batch_size) {
            n if n <= 0 => DEFAULT_FETCH_BATCH,
            n => n.min(MAX_FETCH_BATCH),
        };
        let limit = if max_records <= 0 {
            i64::MAX
        } else {
            max_records
        };
        let consumer = caller.subject.clone();
        let code = resource_code.clone();
        let acked = self
            .store
            .read(move |conn| {
                local_resource_facts(conn, &code)?;
                require_approved(conn, &consumer, &code)?;
                require_openable(conn, &consumer, &code, publication)?;
                if from_start {
                    return Ok(0);
                }
                cached_row(
                    conn,
                    "SELECT acked FROM cursors WHERE consumer = ?1 AND resource_code = ?2",
                    [&consumer, &code],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .db()
                .map(Option::unwrap_or_default)
            })
            .await?;
        let reading = fetch::Reading {
            follower: Arc::new(Follower::new(
                caller.subject,
                publication,
                acked,
                limit,
                fetch::window(batch),
            )),
            code: resource_code,
            batch,
            follow,
        };
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(fetch::serve(self.clone(), reading, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Exchange.Ack", &[Role::Member])?;
        let AckRequest {
            resource_code,
            offset,
        } = request.into_inner();
        if offset < 0 {
            return Err(Status::invalid_argument(
                "offsets start at 1; an ack offset cannot be negative",
            ));
        }
        let algorithm = self.algorithm();
        let acked = self
            .store
            .write(move |conn| {
                let (_, _, count) = local_resource_facts(conn, &resource_code)?;
                if grant_of(conn, &caller.subject, &resource_code)?.is_none() {
                    return Err(Status::permission_denied(format!(
                        "{} has no grant on {resource_code}",
                        caller.subject
                    )));
                }
                if offset > count {
                    return Err(Status::invalid_argument(format!(
                        "offset {offset} is past the last record of {resource_code} ({count})"
                    )));
                }
                let current: i64 = cached_row(
                    conn,
                    "SELECT acked FROM cursors WHERE consumer = ?1 AND resource_code = ?2",
                    [&caller.subject, &resource_code],
                    |row| row.get(0),
                )
                .optional()
                .db()?
                .unwrap_or_default();
                if offset <= current {
                    return Ok(current);
                }
                cached_exec(
                    conn,
                    "INSERT INTO cursors (consumer, resource_code, acked) VALUES (?1, ?2, ?3)
                     ON CONFLICT (consumer, resource_code) DO UPDATE SET acked = excluded.acked",
                    params![caller.subject, resource_code, offset],
                )
                .db()?;
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "records.ack",
                    &resource_code,
                    json!({"from": current, "to": offset}),
                )?;
                Ok(offset)
            })
            .await?;
        Ok(Response::new(AckResponse {
            acked_offset: acked,
        }))
    }
}
