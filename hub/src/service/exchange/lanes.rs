//! The in-memory side of the exchange, per resource that following fetch streams read: the tail
//! of its recently committed batches, and the streams with how far each was recorded and sent.
//!
//! Why: a following consumer reads what was just published. Reading it back from SQLite, and
//! committing an audit record of its own for each response, cost more than publishing it did.
//! Here the transaction that commits a publish also records its delivery to every stream that is
//! caught up (the audit record is on disk before the records leave the node), and the streams
//! then send it from memory.
//!
//! Order: the tail, a lane's committed offset and a stream's recorded offset change only in the
//! store's settle hooks, which run on the writer thread after the commit, in commit order (see
//! [`crate::store::Store::queue`]). So the tail is contiguous and holds only committed records,
//! and a stream never sends a record whose delivery is not on disk. A stream's `tentative`
//! offset is what the transactions queued so far recorded for it; only the writer thread touches
//! it.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use govdc_hub_api::v1::{Openness, Record};
use tokio::sync::watch;
use tonic::Status;

/// Most bytes of records one resource's tail holds; a stream further behind reads the store.
const LANE_BYTES: usize = 32 << 20;
/// Most bytes of records all tails together hold (the hub's pod is limited to 512 MiB).
const ALL_LANES_BYTES: usize = 96 << 20;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Records committed together: offsets `first..first + records.len()`.
#[derive(Clone, Debug)]
pub(crate) struct Segment {
    /// The offset of the first record.
    pub first: i64,
    /// The records' data.
    pub records: Arc<Vec<Vec<u8>>>,
    /// Their size in bytes.
    pub bytes: usize,
}

impl Segment {
    fn last(&self) -> i64 {
        self.first + self.records.len() as i64 - 1
    }
}

/// Every lane of the node.
#[derive(Debug, Default)]
pub(crate) struct Lanes {
    lanes: Mutex<HashMap<String, Arc<Lane>>>,
    /// Bytes in all tails.
    cached: Arc<AtomicUsize>,
}

impl Lanes {
    /// The lane of `code` for the store's content `generation`, made if there is none (or only
    /// one of an older content), with `follower` joined to it.
    pub fn join(&self, code: &str, generation: u64, follower: Arc<Follower>) -> Arc<Lane> {
        let mut lanes = lock(&self.lanes);
        let lane = match lanes.get(code) {
            Some(lane) if lane.generation == generation => lane.clone(),
            _ => {
                let lane = Arc::new(Lane {
                    generation,
                    state: Mutex::default(),
                    changed: watch::channel(0).0,
                    cached: self.cached.clone(),
                });
                if let Some(old) = lanes.insert(code.to_owned(), lane.clone()) {
                    old.clear_tail();
                }
                lane
            }
        };
        lock(&lane.state).followers.push(follower);
        lane
    }

    /// Takes `follower` off `lane` of `code`; the lane goes once it has no stream left.
    pub fn leave(&self, code: &str, lane: &Arc<Lane>, follower: &Arc<Follower>) {
        let mut lanes = lock(&self.lanes);
        let empty = {
            let mut state = lock(&lane.state);
            state.followers.retain(|f| !Arc::ptr_eq(f, follower));
            state.followers.is_empty()
        };
        if empty {
            if lanes
                .get(code)
                .is_some_and(|current| Arc::ptr_eq(current, lane))
            {
                lanes.remove(code);
            }
            lane.clear_tail();
        }
    }

    /// The lane of `code` for content `generation`, if a stream follows it.
    pub fn get(&self, code: &str, generation: u64) -> Option<Arc<Lane>> {
        lock(&self.lanes)
            .get(code)
            .filter(|lane| lane.generation == generation)
            .cloned()
    }
}

/// One followed resource.
#[derive(Debug)]
pub(crate) struct Lane {
    generation: u64,
    state: Mutex<LaneState>,
    /// Bumped after every settle that changed the lane or one of its streams.
    changed: watch::Sender<u64>,
    cached: Arc<AtomicUsize>,
}

#[derive(Debug, Default)]
struct LaneState {
    /// The last offset known committed.
    committed: i64,
    tail: VecDeque<Segment>,
    tail_bytes: usize,
    followers: Vec<Arc<Follower>>,
}

impl Lane {
    /// A receiver that changes when the lane or one of its streams moved.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes the lane's streams.
    pub fn wake(&self) {
        self.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// The streams following the lane now.
    pub fn followers(&self) -> Vec<Arc<Follower>> {
        lock(&self.state).followers.clone()
    }

    /// The last offset known committed.
    pub fn committed(&self) -> i64 {
        lock(&self.state).committed
    }

    /// Records that offsets up to `last` are committed.
    pub fn note_committed(&self, last: i64) {
        let mut state = lock(&self.state);
        state.committed = state.committed.max(last);
    }

    /// Appends a committed segment to the tail (a settle hook, so in commit order), dropping
    /// what every stream has sent and whatever exceeds the byte limits.
    pub fn push(&self, segment: Segment) {
        let mut state = lock(&self.state);
        state.committed = state.committed.max(segment.last());
        let contiguous = state
            .tail
            .back()
            .is_none_or(|back| back.last() + 1 == segment.first);
        if !contiguous {
            self.drop_front(&mut state, usize::MAX);
        }
        let sent = state
            .followers
            .iter()
            .map(|f| f.sent())
            .min()
            .unwrap_or(i64::MAX);
        while state.tail.front().is_some_and(|front| front.last() <= sent) {
            self.drop_front(&mut state, 1);
        }
        while !state.tail.is_empty() && state.tail_bytes + segment.bytes > LANE_BYTES {
            self.drop_front(&mut state, 1);
        }
        if segment.bytes > LANE_BYTES
            || self.cached.load(Ordering::Relaxed) + segment.bytes > ALL_LANES_BYTES
        {
            // Not kept: the streams read it from the store; what follows starts a new tail.
            self.drop_front(&mut state, usize::MAX);
            return;
        }
        self.cached.fetch_add(segment.bytes, Ordering::Relaxed);
        state.tail_bytes += segment.bytes;
        state.tail.push_back(segment);
    }

    fn drop_front(&self, state: &mut LaneState, mut count: usize) {
        while count > 0 {
            let Some(front) = state.tail.pop_front() else {
                return;
            };
            state.tail_bytes -= front.bytes;
            self.cached.fetch_sub(front.bytes, Ordering::Relaxed);
            count -= 1;
        }
    }

    fn clear_tail(&self) {
        let mut state = lock(&self.state);
        self.drop_front(&mut state, usize::MAX);
    }

    /// Up to `want` records after offset `after` from the tail (fewer past `max_bytes`), or
    /// None when the tail does not hold the record after `after`.
    pub fn records(&self, after: i64, want: i64, max_bytes: usize) -> Option<Vec<Record>> {
        // The segments are taken under the lock; the copying is done outside it, so the writer
        // thread's settle hooks never wait for a large copy.
        let segments: Vec<Segment> = {
            let state = lock(&self.state);
            let start = state.tail.partition_point(|s| s.last() <= after);
            let front = state.tail.get(start)?;
            if front.first > after + 1 {
                return None;
            }
            let mut records = 0;
            state
                .tail
                .range(start..)
                .take_while(|s| {
                    let take = records < want;
                    records += s.records.len() as i64;
                    take
                })
                .cloned()
                .collect()
        };
        let mut out = Vec::new();
        let mut bytes = 0;
        for segment in segments {
            let skip = (after + 1 - segment.first).max(0) as usize;
            for (i, data) in segment.records.iter().enumerate().skip(skip) {
                bytes += data.len();
                out.push(Record {
                    offset: segment.first + i as i64,
                    data: data.clone(),
                });
                if out.len() as i64 >= want || bytes >= max_bytes {
                    return Some(out);
                }
            }
        }
        Some(out)
    }
}

/// One fetch stream: what was recorded as delivered to it and what it sent.
#[derive(Debug)]
pub(crate) struct Follower {
    /// Who reads.
    pub consumer: String,
    /// The openness it reads for, if for an open-data portal.
    pub publication: Openness,
    /// The last offset it may be given (its `max_records` after its start).
    pub end: i64,
    /// Most records one delivery (one audit record) covers, and most recorded ahead of sent.
    pub window: i64,
    state: Mutex<FollowState>,
}

#[derive(Debug)]
struct FollowState {
    /// Recorded by the transactions queued so far (the writer thread's view).
    tentative: i64,
    /// Recorded and committed: the stream may send up to here.
    recorded: i64,
    /// Sent.
    sent: i64,
    /// Why the next delivery was refused (a revoked grant, say).
    refused: Option<Status>,
}

impl Follower {
    /// A stream that starts after offset `start`, may be given `limit` records, and has
    /// deliveries of up to `window` records recorded at a time.
    pub fn new(
        consumer: String,
        publication: Openness,
        start: i64,
        limit: i64,
        window: i64,
    ) -> Follower {
        Follower {
            consumer,
            publication,
            end: start.saturating_add(limit),
            window,
            state: Mutex::new(FollowState {
                tentative: start,
                recorded: start,
                sent: start,
                refused: None,
            }),
        }
    }

    /// What the transactions queued so far recorded (writer thread).
    pub fn tentative(&self) -> i64 {
        lock(&self.state).tentative
    }

    /// How far a delivery of the committed run `first..=last` may be recorded for this stream
    /// in the transaction that commits the run: to a stream that is caught up (recorded up to
    /// `first - 1`), not refused, not ended, and not more than its window behind in sending;
    /// None otherwise (the stream records its own deliveries when it gets there).
    pub fn joins_run(&self, first: i64, last: i64) -> Option<i64> {
        let state = lock(&self.state);
        (state.refused.is_none()
            && state.tentative == first - 1
            && state.tentative - state.sent <= self.window
            && state.tentative < self.end)
            .then(|| last.min(self.end))
    }

    /// Records (writer thread) that a queued transaction delivers up to `offset`.
    fn set_tentative(&self, offset: i64) {
        lock(&self.state).tentative = offset;
    }

    /// The transaction that recorded up to `offset` committed: it may be sent.
    fn committed(&self, offset: i64) {
        let mut state = lock(&self.state);
        state.recorded = state.recorded.max(offset);
        state.tentative = state.tentative.max(state.recorded);
    }

    /// The transaction failed: back to what is committed.
    fn rolled_back(&self) {
        let mut state = lock(&self.state);
        state.tentative = state.recorded;
    }

    /// The next delivery was refused.
    pub fn refuse(&self, status: Status) {
        lock(&self.state).refused.get_or_insert(status);
    }

    /// What may be sent (recorded and committed), and the refusal that comes after it.
    pub fn deliverable(&self) -> (i64, Option<Status>) {
        let state = lock(&self.state);
        (state.recorded, state.refused.clone())
    }

    /// The stream sent up to `offset`.
    pub fn sent_to(&self, offset: i64) {
        lock(&self.state).sent = offset;
    }

    fn sent(&self) -> i64 {
        lock(&self.state).sent
    }
}

/// The deliveries one queued transaction recorded, to make visible once it commits or to undo.
#[derive(Clone, Debug, Default)]
pub(crate) struct Recorded(Arc<Mutex<Vec<Delivery>>>);

#[derive(Debug)]
struct Delivery {
    follower: Arc<Follower>,
    /// Its tentative offset before this transaction.
    before: i64,
    upto: i64,
}

impl Recorded {
    /// The transaction (on the writer thread) recorded `follower`'s delivery up to `upto`.
    pub fn record(&self, follower: &Arc<Follower>, upto: i64) {
        let before = follower.tentative();
        follower.set_tentative(upto);
        lock(&self.0).push(Delivery {
            follower: follower.clone(),
            before,
            upto,
        });
    }

    /// The transaction's own work failed (its savepoint is rolled back, the others' in the
    /// group are not): its streams go back to where it found them.
    pub fn undo(&self) {
        let mut deliveries = lock(&self.0);
        while let Some(delivery) = deliveries.pop() {
            delivery.follower.set_tentative(delivery.before);
        }
    }

    /// The settle hook: the deliveries may be sent (`committed`), or the whole group failed and
    /// each stream goes back to what is committed.
    pub fn settle(&self, committed: bool) {
        for delivery in lock(&self.0).drain(..) {
            if committed {
                delivery.follower.committed(delivery.upto);
            } else {
                delivery.follower.rolled_back();
            }
        }
    }
}
