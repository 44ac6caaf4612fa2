//! Publishing: a stream's batches appended in order, committed in groups, each acknowledged
//! once it is on disk; the deliveries to caught-up following streams recorded in the same
//! transaction.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

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
use crate::service::{DbResult, HubService, record};
use crate::store::cached_exec;

/// Publish batches waiting on a stream are committed together up to this many records; past it
/// the stream is not read until a commit takes them.
const MAX_GROUP_RECORDS: usize = 20_000;
/// Commits of one stream queued for the writer at once: one in progress and one behind it,
/// which takes what arrives meanwhile ([`Pending`]), so the writer never waits for a stream's
/// round trip between two commits.
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

/// Batches read from a publish stream that no commit has taken yet.
///
/// Why: a stream's next commit used to be formed from what had arrived when the one before was
/// queued, and batches arriving after that waited for a commit more. With a window of small
/// batches that doubled their wait (the acknowledgement, and so the publisher's next batch,
/// waits for it). Now the commit queued behind the one in progress takes, when the writer runs
/// it, everything that arrived until then.
#[derive(Debug, Default)]
struct Pending {
    batches: VecDeque<PublishRequest>,
    records: usize,
    /// A commit is queued that has not started: it takes what is pending when it starts.
    queued: bool,
}

impl Pending {
    /// The batches the starting commit takes, in order: all that are pending, up to
    /// [`MAX_GROUP_RECORDS`] records (at least one batch).
    fn take(&mut self) -> Vec<PublishRequest> {
        self.queued = false;
        let mut taken = Vec::new();
        let mut records = 0;
        while let Some(batch) = self.batches.front() {
            if !taken.is_empty() && records + batch.records.len() > MAX_GROUP_RECORDS {
                break;
            }
            records += batch.records.len();
            taken.extend(self.batches.pop_front());
        }
        self.records -= records;
        taken
    }
}

fn lock(pending: &Mutex<Pending>) -> MutexGuard<'_, Pending> {
    pending
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Serves one publish stream: reads the batches the client sent into [`Pending`], keeps a
/// commit queued for them behind the one in progress (up to [`GROUPS_IN_FLIGHT`] at once), and
/// sends each batch's acknowledgement once its commit is on disk, in order.
pub(super) async fn serve(
    hub: HubService,
    provider: String,
    mut inbound: Streaming<PublishRequest>,
    tx: mpsc::Sender<Result<PublishResponse, Status>>,
) {
    // Set once a group was refused or failed: the groups queued after it must not be appended
    // (a stream stops at its first failure), and they see it since the writer runs them later.
    let failed = Arc::new(AtomicBool::new(false));
    let pending = Arc::new(Mutex::new(Pending::default()));
    let mut in_flight = FuturesOrdered::new();
    let mut ended = false;
    // The error that ends the stream once what is in flight is acknowledged.
    let mut last_word: Option<Status> = None;
    loop {
        // A commit for what is pending, unless one queued already takes it when it starts.
        let queue_now = last_word.is_none() && in_flight.len() < GROUPS_IN_FLIGHT && {
            let mut pending = lock(&pending);
            let due = !pending.queued && !pending.batches.is_empty();
            pending.queued |= due;
            due
        };
        if queue_now {
            let queued = if hub.auth.is_member(&provider) {
                queue_group(&hub, &provider, &failed, &pending).await
            } else {
                Err(Status::permission_denied(format!(
                    "{provider} is no longer a member of node {}",
                    hub.config.name
                )))
            };
            match queued {
                Ok(committed) => in_flight.push_back(committed),
                Err(status) => {
                    *lock(&pending) = Pending::default();
                    last_word = Some(status);
                    ended = true;
                }
            }
        }
        if ended && in_flight.is_empty() {
            if let Some(status) = last_word {
                let _ = tx.send(Err(status)).await;
            }
            return;
        }
        let room = lock(&pending).records < MAX_GROUP_RECORDS;
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
            next = inbound.next(), if !ended && room => {
                let mut next = next;
                // Batches the client already sent are taken together: one fsync for all, each
                // still acknowledged on its own.
                let mut waiting = lock(&pending);
                loop {
                    match next {
                        Some(Ok(batch)) => {
                            waiting.records += batch.records.len();
                            waiting.batches.push_back(batch);
                        }
                        Some(Err(status)) => {
                            tracing::debug!(%status, "publish stream broke");
                            ended = true;
                            break;
                        }
                        None => {
                            ended = true;
                            break;
                        }
                    }
                    if waiting.records >= MAX_GROUP_RECORDS {
                        break;
                    }
                    match inbound.next().now_or_never() {
                        Some(more) => next = more,
                        None => break,
                    }
                }
            }
        }
    }
}

/// Queues a commit of what is pending on the stream (taken when the writer starts it); the
/// future resolves once it committed.
async fn queue_group(
    hub: &HubService,
    provider: &str,
    failed: &Arc<AtomicBool>,
    pending: &Arc<Mutex<Pending>>,
) -> Result<futures::future::BoxFuture<'static, Result<Appended, Status>>, Status> {
    let recorded = Recorded::default();
    let (writer_hub, provider, writer_failed, writer_recorded, writer_pending) = (
        hub.clone(),
        provider.to_owned(),
        failed.clone(),
        recorded.clone(),
        pending.clone(),
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
                let group = lock(&writer_pending).take();
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

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(records: usize) -> PublishRequest {
        PublishRequest {
            resource_code: "r".to_owned(),
            records: vec![vec![0u8; 8]; records],
        }
    }

    #[test]
    fn a_starting_commit_takes_what_is_pending_in_order_up_to_the_group_limit() {
        let mut pending = Pending {
            queued: true,
            ..Pending::default()
        };
        for records in [MAX_GROUP_RECORDS - 10, 5, 20, 3] {
            pending.records += records;
            pending.batches.push_back(batch(records));
        }
        let first: Vec<usize> = pending.take().iter().map(|b| b.records.len()).collect();
        assert_eq!(
            first,
            [MAX_GROUP_RECORDS - 10, 5],
            "in order, within the limit"
        );
        assert!(
            !pending.queued,
            "the next arrival queues a commit of its own"
        );
        assert_eq!(pending.records, 23);
        let second: Vec<usize> = pending.take().iter().map(|b| b.records.len()).collect();
        assert_eq!(second, [20, 3]);
        assert_eq!(pending.records, 0);
        // A batch larger than the limit is taken alone, never left behind.
        pending.records += MAX_GROUP_RECORDS + 1;
        pending.batches.push_back(batch(MAX_GROUP_RECORDS + 1));
        assert_eq!(pending.take().len(), 1);
        assert!(pending.take().is_empty());
    }
}
