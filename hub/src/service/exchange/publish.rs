//! Publishing: a stream's batches appended in order, committed in groups, each acknowledged
//! once it is on disk; the deliveries to caught-up following streams recorded in the same
//! transaction.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::stream::FuturesOrdered;
use futures::{FutureExt, StreamExt};
use govdc_hub_api::v1::{PublishRequest, PublishResponse};
use prost::Message;
use rusqlite::{Connection, params};
use serde_json::json;
use tokio::sync::mpsc;
use tonic::{Status, Streaming};

use super::fetch::record_delivery_alone;
use super::lanes::{Lane, Recorded, Segment};
use super::local_resource_facts;
use crate::audit::Algorithm;
use crate::service::{HubService, record};
use crate::store::{DbResult, cached_exec};

/// Publish batches already waiting on a stream are committed together up to this many records.
const MAX_GROUP_RECORDS: usize = 20_000;
/// Groups of one stream queued for the writer at once: the next group is queued while one
/// commits, so the writer never waits for a stream's round trip between two commits.
const GROUPS_IN_FLIGHT: usize = 2;

/// What [`append_batches`] did.
pub(super) struct Appended {
    /// One acknowledgement per batch appended.
    acks: Vec<PublishResponse>,
    /// Per resource, its new last offset.
    last_offsets: HashMap<String, i64>,
    /// Why the batch after the appended ones was refused, if one was.
    refusal: Option<Status>,
    /// The runs of resources that streams follow, for their lanes' tails.
    followed: Vec<(Arc<Lane>, Segment)>,
}

/// Consecutive batches of one resource appended in one commit: stored as one row and
/// recorded as one audit record (with the batch count and the offsets they cover), so that many
/// small batches cost one row each, not one row and one audit record each.
struct Run {
    code: String,
    first: i64,
    last: i64,
    batches: usize,
    bytes: usize,
    records: Vec<Vec<u8>>,
}

/// Stores a run and its audit record; gives its records back.
fn flush(
    conn: &Connection,
    algorithm: Algorithm,
    provider: &str,
    run: Run,
) -> Result<Vec<Vec<u8>>, Status> {
    let stored = PublishRequest {
        resource_code: String::new(),
        records: run.records,
    };
    cached_exec(
        conn,
        "INSERT INTO batches (resource_code, first_offset, last_offset, records) VALUES (?1, ?2, ?3, ?4)",
        params![run.code, run.first, run.last, stored.encode_to_vec()],
    )
    .db()?;
    cached_exec(
        conn,
        "UPDATE resources SET record_count = ?2 WHERE code = ?1 AND origin = ''",
        params![run.code, run.last],
    )
    .db()?;
    record(
        conn,
        algorithm,
        provider,
        "records.publish",
        &run.code,
        json!({
            "first": run.first,
            "last": run.last,
            "count": run.last - run.first + 1,
            "batches": run.batches,
            "bytes": run.bytes,
        }),
    )?;
    Ok(stored.records)
}

/// A stored run of a resource that streams follow: kept for its lane's tail, and its delivery
/// recorded, in this transaction, to each stream that is caught up.
fn deliver_run(
    conn: &Connection,
    hub: &HubService,
    recorded: &Recorded,
    lane: Arc<Lane>,
    code: &str,
    segment: Segment,
    followed: &mut Vec<(Arc<Lane>, Segment)>,
) {
    let last = segment.first + segment.records.len() as i64 - 1;
    for follower in lane.followers() {
        let Some(upto) = follower.joins_run(segment.first, last) else {
            continue;
        };
        match record_delivery_alone(conn, hub, &follower, code, segment.first, upto) {
            Ok(()) => recorded.record(&follower, upto),
            Err(status) => follower.refuse(status),
        }
    }
    followed.push((lane, segment));
}

/// Appends publish batches in order; stops at the first invalid one and returns what was
/// appended, the resources' new last offsets, and the refusal.
fn append_batches(
    conn: &Connection,
    hub: &HubService,
    recorded: &Recorded,
    provider: &str,
    batches: Vec<PublishRequest>,
) -> Result<Appended, Status> {
    let algorithm = hub.algorithm();
    let generation = hub.store.generation();
    let mut acks = Vec::with_capacity(batches.len());
    let mut last_offsets: HashMap<String, i64> = HashMap::new();
    let mut followed = Vec::new();
    let mut run: Option<Run> = None;
    let mut refusal = None;
    let store_run = |run: Run, followed: &mut Vec<(Arc<Lane>, Segment)>| -> Result<(), Status> {
        let (code, first, bytes) = (run.code.clone(), run.first, run.bytes);
        let records = flush(conn, algorithm, provider, run)?;
        if let Some(lane) = hub.lanes.get(&code, generation) {
            let segment = Segment {
                first,
                records: Arc::new(records),
                bytes,
            };
            deliver_run(conn, hub, recorded, lane, &code, segment, followed);
        }
        Ok(())
    };
    for batch in batches {
        let code = batch.resource_code;
        let count = match last_offsets.get(&code) {
            Some(last) => *last,
            None => match local_resource_facts(conn, &code) {
                Ok((owner, _, _)) if owner != provider => {
                    refusal = Some(Status::permission_denied(format!(
                        "{provider} may not publish to {code}: its provider is {owner}"
                    )));
                    break;
                }
                Ok((_, _, count)) => count,
                Err(status) => {
                    refusal = Some(status);
                    break;
                }
            },
        };
        if batch.records.is_empty() {
            refusal = Some(Status::invalid_argument(format!(
                "a batch for {code} has no records"
            )));
            break;
        }
        let first = count + 1;
        let last = count + batch.records.len() as i64;
        let bytes: usize = batch.records.iter().map(Vec::len).sum();
        match &mut run {
            Some(current) if current.code == code => {
                current.last = last;
                current.batches += 1;
                current.bytes += bytes;
                current.records.extend(batch.records);
            }
            _ => {
                if let Some(done) = run.take() {
                    store_run(done, &mut followed)?;
                }
                run = Some(Run {
                    code: code.clone(),
                    first,
                    last,
                    batches: 1,
                    bytes,
                    records: batch.records,
                });
            }
        }
        last_offsets.insert(code, last);
        acks.push(PublishResponse {
            first_offset: first,
            last_offset: last,
        });
    }
    if let Some(done) = run {
        store_run(done, &mut followed)?;
    }
    Ok(Appended {
        acks,
        last_offsets,
        refusal,
        followed,
    })
}

/// Serves one publish stream: reads the batches the client sent, queues them for the writer in
/// groups (up to [`GROUPS_IN_FLIGHT`] at once), and sends each batch's acknowledgement once its
/// group committed, in order.
pub(super) async fn serve(
    hub: HubService,
    provider: String,
    mut inbound: Streaming<PublishRequest>,
    tx: mpsc::Sender<Result<PublishResponse, Status>>,
) {
    // Set once a group was refused or failed: the groups queued after it must not be appended
    // (a stream stops at its first failure), and they see it since the writer runs them later.
    let failed = Arc::new(AtomicBool::new(false));
    let mut in_flight = FuturesOrdered::new();
    let mut ended = false;
    // The error that ends the stream once what is in flight is acknowledged.
    let mut last_word: Option<Status> = None;
    loop {
        if ended && in_flight.is_empty() {
            if let Some(status) = last_word {
                let _ = tx.send(Err(status)).await;
            }
            return;
        }
        tokio::select! {
            biased;
            Some(result) = in_flight.next(), if !in_flight.is_empty() => {
                let result: Result<Appended, Status> = result;
                match result {
                    Ok(Appended { acks, last_offsets, refusal, .. }) => {
                        for (code, last) in &last_offsets {
                            hub.notify_published(code, *last);
                        }
                        for ack in acks {
                            if tx.send(Ok(ack)).await.is_err() {
                                return;
                            }
                        }
                        if let Some(status) = refusal {
                            let _ = tx.send(Err(status)).await;
                            return;
                        }
                    }
                    Err(status) => {
                        let _ = tx.send(Err(status)).await;
                        return;
                    }
                }
            }
            next = inbound.next(), if !ended && in_flight.len() < GROUPS_IN_FLIGHT => {
                let first = match next {
                    Some(Ok(batch)) => batch,
                    Some(Err(status)) => {
                        tracing::debug!(%status, "publish stream broke");
                        ended = true;
                        continue;
                    }
                    None => {
                        ended = true;
                        continue;
                    }
                };
                // Batches the client already sent are committed with this one: one fsync for
                // all, each still acknowledged on its own.
                let mut records = first.records.len();
                let mut group = vec![first];
                while records < MAX_GROUP_RECORDS {
                    match inbound.next().now_or_never() {
                        Some(Some(Ok(batch))) => {
                            records += batch.records.len();
                            group.push(batch);
                        }
                        Some(_) => {
                            ended = true;
                            break;
                        }
                        None => break,
                    }
                }
                if !hub.auth.is_member(&provider) {
                    last_word = Some(Status::permission_denied(format!(
                        "{provider} is no longer a member of node {}",
                        hub.config.name
                    )));
                    ended = true;
                    continue;
                }
                match queue_group(&hub, &provider, &failed, group).await {
                    Ok(committed) => in_flight.push_back(committed),
                    Err(status) => {
                        last_word = Some(status);
                        ended = true;
                    }
                }
            }
        }
    }
}

/// Queues one group of batches for the writer; the future resolves once it committed.
async fn queue_group(
    hub: &HubService,
    provider: &str,
    failed: &Arc<AtomicBool>,
    group: Vec<PublishRequest>,
) -> Result<futures::future::BoxFuture<'static, Result<Appended, Status>>, Status> {
    let recorded = Recorded::default();
    let (writer_hub, provider, writer_failed, writer_recorded) = (
        hub.clone(),
        provider.to_owned(),
        failed.clone(),
        recorded.clone(),
    );
    let settle_failed = failed.clone();
    let committed = hub
        .store
        .queue(
            move |conn| {
                if writer_failed.load(Ordering::SeqCst) {
                    return Err(Status::aborted(
                        "an earlier batch on this stream was not appended; nothing after it is",
                    ));
                }
                let appended =
                    append_batches(conn, &writer_hub, &writer_recorded, &provider, group);
                match &appended {
                    Ok(appended) if appended.refusal.is_some() => {
                        writer_failed.store(true, Ordering::SeqCst)
                    }
                    Ok(_) => {}
                    Err(_) => writer_recorded.undo(),
                }
                appended
            },
            move |result: Result<&Appended, &Status>| match result {
                Ok(appended) => {
                    // The tail first, then the streams' recorded offsets: a stream woken by
                    // either finds its records in memory.
                    for (lane, segment) in &appended.followed {
                        lane.push(segment.clone());
                    }
                    recorded.settle(true);
                    for (lane, _) in &appended.followed {
                        lane.wake();
                    }
                }
                Err(_) => {
                    settle_failed.store(true, Ordering::SeqCst);
                    recorded.settle(false);
                }
            },
        )
        .await?;
    Ok(committed.boxed())
}
