//! Fetching: a stream sends the records whose delivery to it is recorded and committed, from
//! its lane's tail when it holds them, else from the store.
//!
//! A delivery is recorded (grant and membership checked again, the cursor's `served` and the
//! resource's `records_served` counted, a `records.fetch` audit record appended) in a
//! transaction that commits before the records are sent: either the publish that committed the
//! records, for a stream that is caught up (see [`super::lanes`]), or the stream's own, one per
//! window of up to `window` records.

use std::sync::Arc;

use govdc_hub_api::v1::{FetchResponse, Openness, PublishRequest, Record};
use prost::Message;
use rusqlite::{Connection, params};
use serde_json::json;
use tokio::sync::mpsc;
use tonic::Status;

use super::lanes::{Follower, Lane, Recorded};
use super::{local_resource_facts, require_approved, require_openable};
use crate::service::{DbResult, HubService, record};
use crate::store::cached_exec;

/// Records per fetch response when the consumer does not say.
pub(super) const DEFAULT_FETCH_BATCH: i64 = 100;
/// Most records per fetch response.
pub(super) const MAX_FETCH_BATCH: i64 = 10_000;
/// A fetch response stops growing past this many bytes (gRPC's default limit is 4 MiB).
const MAX_FETCH_BYTES: usize = 2 << 20;
/// A stream's window, in responses: one audit record covers up to this many responses' worth
/// of records, and a stream is recorded at most this far ahead of what it sent.
const WINDOW_RESPONSES: i64 = 16;

/// Up to `want` records of `code` after offset `position` (fewer past [`MAX_FETCH_BYTES`]).
fn read_records(
    conn: &Connection,
    code: &str,
    position: i64,
    want: i64,
) -> Result<Vec<Record>, Status> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT first_offset, records FROM batches
             WHERE resource_code = ?1 AND last_offset > ?2 ORDER BY last_offset",
        )
        .db()?;
    let mut rows = stmt.query(params![code, position]).db()?;
    let mut records = Vec::new();
    let mut bytes = 0;
    while let Some(row) = rows.next().db()? {
        let first: i64 = row.get(0).db()?;
        let blob = row
            .get_ref(1)
            .db()?
            .as_blob()
            .map_err(|e| Status::internal(format!("a stored batch: {e}")))?;
        let batch = PublishRequest::decode(blob)
            .map_err(|e| Status::internal(format!("a stored batch does not decode: {e}")))?;
        for (i, data) in batch.records.into_iter().enumerate() {
            let offset = first + i as i64;
            if offset <= position {
                continue;
            }
            bytes += data.len();
            records.push(Record { offset, data });
            if records.len() as i64 >= want || bytes >= MAX_FETCH_BYTES {
                return Ok(records);
            }
        }
    }
    Ok(records)
}

/// Records in the current transaction that `follower` is given `first..=last` of `code`,
/// after checking again that it may be (its grant may have been revoked while it read).
fn record_delivery(
    conn: &Connection,
    hub: &HubService,
    follower: &Follower,
    code: &str,
    first: i64,
    last: i64,
) -> Result<(), Status> {
    let consumer = &follower.consumer;
    if !hub.auth.is_member(consumer) {
        return Err(Status::permission_denied(format!(
            "{consumer} is no longer a member of node {}",
            hub.config.name
        )));
    }
    require_approved(conn, consumer, code)?;
    require_openable(conn, consumer, code, follower.publication)?;
    let count = last - first + 1;
    cached_exec(
        conn,
        "INSERT INTO cursors (consumer, resource_code, served) VALUES (?1, ?2, ?3)
         ON CONFLICT (consumer, resource_code) DO UPDATE SET served = served + excluded.served",
        params![consumer, code, count],
    )
    .db()?;
    cached_exec(
        conn,
        "UPDATE resources SET records_served = records_served + ?2 WHERE code = ?1 AND origin = ''",
        params![code, count],
    )
    .db()?;
    let publication = follower.publication;
    record(
        conn,
        hub.algorithm(),
        consumer,
        "records.fetch",
        code,
        json!({
            "first": first,
            "last": last,
            "count": count,
            "publication": (publication != Openness::Unspecified)
                .then(|| publication.as_str_name()),
        }),
    )?;
    Ok(())
}

/// [`record_delivery`] inside another job's transaction (a publish's), in a savepoint of its
/// own: a refused or failed delivery leaves nothing behind and does not fail the publish.
pub(super) fn record_delivery_alone(
    conn: &Connection,
    hub: &HubService,
    follower: &Follower,
    code: &str,
    first: i64,
    last: i64,
) -> Result<(), Status> {
    cached_exec(conn, "SAVEPOINT delivery", []).db()?;
    let delivered = record_delivery(conn, hub, follower, code, first, last);
    let end = match delivered {
        Ok(()) => cached_exec(conn, "RELEASE delivery", []),
        Err(_) => cached_exec(conn, "ROLLBACK TO delivery", [])
            .and_then(|_| cached_exec(conn, "RELEASE delivery", [])),
    };
    end.db()?;
    delivered
}

fn replaced() -> Status {
    Status::unavailable(
        "the node's state was replaced (an imported state) while the stream was open; fetch again",
    )
}

/// The stream's own delivery of the next window of what is committed, in a transaction of its
/// own; whether it recorded anything.
async fn deliver_window(
    hub: &HubService,
    follower: &Arc<Follower>,
    lane: Option<&Arc<Lane>>,
    code: &str,
    generation: u64,
) -> Result<bool, Status> {
    let recorded = Recorded::default();
    let (writer_hub, writer_follower, writer_code, writer_recorded) = (
        hub.clone(),
        follower.clone(),
        code.to_owned(),
        recorded.clone(),
    );
    let lane = lane.cloned();
    let committed = hub
        .store
        .queue(
            move |conn| {
                if writer_hub.store.generation() != generation {
                    return Err(replaced());
                }
                let (_, _, count) = local_resource_facts(conn, &writer_code)?;
                let from = writer_follower.tentative();
                let upto = count
                    .min(from.saturating_add(writer_follower.window))
                    .min(writer_follower.end);
                if upto > from {
                    record_delivery(
                        conn,
                        &writer_hub,
                        &writer_follower,
                        &writer_code,
                        from + 1,
                        upto,
                    )?;
                    writer_recorded.record(&writer_follower, upto);
                }
                Ok((count, upto > from))
            },
            move |result: Result<&(i64, bool), &Status>| {
                recorded.settle(result.is_ok());
                if let (Ok((count, _)), Some(lane)) = (result, lane) {
                    lane.note_committed(*count);
                    lane.wake();
                }
            },
        )
        .await?;
    let (_, moved) = committed.await?;
    Ok(moved)
}

/// What a stream sends with.
struct Sending<'a> {
    hub: &'a HubService,
    tx: &'a mpsc::Sender<Result<FetchResponse, Status>>,
    lane: Option<&'a Arc<Lane>>,
    follower: &'a Follower,
    code: &'a str,
    batch: i64,
}

/// Sends what is recorded for the stream after `sent`, up to `recorded`, in responses of up
/// to `batch` records; the new `sent`, or None when the consumer is gone.
async fn send_recorded(sending: &Sending<'_>, mut sent: i64, recorded: i64) -> Option<i64> {
    let Sending {
        hub,
        tx,
        lane,
        follower,
        code,
        batch,
    } = *sending;
    while sent < recorded {
        let want = batch.min(recorded - sent);
        let records = match lane.and_then(|lane| lane.records(sent, want, MAX_FETCH_BYTES)) {
            Some(records) if !records.is_empty() => Ok(records),
            _ => {
                let code = code.to_owned();
                let position = sent;
                hub.store
                    .read(move |conn| read_records(conn, &code, position, want))
                    .await
            }
        };
        let records = match records {
            Ok(records) if !records.is_empty() => records,
            Ok(_) => {
                let status = Status::internal(format!(
                    "records {} to {recorded} of {code} are recorded as delivered but not stored",
                    sent + 1
                ));
                let _ = tx.send(Err(status)).await;
                return None;
            }
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return None;
            }
        };
        let last = records.last().map_or(sent, |r| r.offset);
        tx.send(Ok(FetchResponse { records })).await.ok()?;
        sent = last;
        follower.sent_to(sent);
    }
    Some(sent)
}

/// How a fetch stream reads.
pub(super) struct Reading {
    /// The resource.
    pub code: String,
    /// Records per response.
    pub batch: i64,
    /// Keep the stream open for new records.
    pub follow: bool,
    /// The stream, starting after its cursor.
    pub follower: Arc<Follower>,
}

/// Takes a following stream off its lane however its task ends.
struct Leave<'a> {
    hub: &'a HubService,
    code: &'a str,
    lane: Arc<Lane>,
    follower: Arc<Follower>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        self.hub.lanes.leave(self.code, &self.lane, &self.follower);
    }
}

/// The window of a stream reading `batch` records per response.
pub(super) fn window(batch: i64) -> i64 {
    batch * WINDOW_RESPONSES
}

/// Serves one fetch stream until it sent its records (or all there are, without `follow`),
/// the consumer left, a delivery was refused, or the node shuts down.
pub(super) async fn serve(
    hub: HubService,
    reading: Reading,
    tx: mpsc::Sender<Result<FetchResponse, Status>>,
) {
    let Reading {
        code,
        batch,
        follow,
        follower,
    } = reading;
    let generation = hub.store.generation();
    let mut replacements = hub.store.replaced();
    let lane = follow.then(|| hub.lanes.join(&code, generation, follower.clone()));
    let _leave = lane.clone().map(|lane| Leave {
        hub: &hub,
        code: &code,
        lane,
        follower: follower.clone(),
    });
    let mut changed = lane.as_ref().map(|lane| lane.subscribe());
    let shutdown = hub.shutdown.clone();
    let (start, _) = follower.deliverable();
    let mut sent = start;
    let mut looked = false;
    loop {
        if let Some(changed) = &mut changed {
            changed.borrow_and_update();
        }
        if hub.store.generation() != generation {
            let _ = tx.send(Err(replaced())).await;
            return;
        }
        let (recorded, refused) = follower.deliverable();
        if sent < recorded {
            let sending = Sending {
                hub: &hub,
                tx: &tx,
                lane: lane.as_ref(),
                follower: &follower,
                code: &code,
                batch,
            };
            match send_recorded(&sending, sent, recorded).await {
                Some(now) => sent = now,
                None => return,
            }
            continue;
        }
        if let Some(status) = refused {
            let _ = tx.send(Err(status)).await;
            return;
        }
        if sent >= follower.end {
            return;
        }
        // What is committed past what was recorded for this stream (the publishes that did not
        // record it: the stream was behind) is recorded by the stream itself.
        let behind = match &lane {
            Some(lane) => !looked || lane.committed() > recorded,
            None => true,
        };
        if behind {
            looked = true;
            match deliver_window(&hub, &follower, lane.as_ref(), &code, generation).await {
                Ok(true) => continue,
                Ok(false) if !follow => return,
                Ok(false) => {}
                Err(status) => {
                    let _ = tx.send(Err(status)).await;
                    return;
                }
            }
        }
        // A following stream ends with UNAVAILABLE on shutdown, not a clean end: the consumer
        // is to fetch again (from its acknowledged offset) once the node is back.
        let stopping = || {
            Status::unavailable(
                "the node is shutting down; fetch again from the acknowledged offset",
            )
        };
        if shutdown.is_cancelled() {
            let _ = tx.send(Err(stopping())).await;
            return;
        }
        let Some(changed) = &mut changed else {
            return;
        };
        tokio::select! {
            moved = changed.changed() => if moved.is_err() { return },
            _ = shutdown.cancelled() => {
                let _ = tx.send(Err(stopping())).await;
                return;
            }
            _ = replacements.changed() => {}
            _ = tx.closed() => return,
        }
    }
}
