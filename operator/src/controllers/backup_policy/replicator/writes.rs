//! The writes to the target in flight, each a task of its own, so that a change waits only for
//! its own write: written wave by wave, every change that arrived during a wave waited for the
//! wave's slowest request (a loaded standby answers one in a hundred writes in 200 ms), and the
//! continuous RPO's p99 was those waits. At most `concurrency` requests are out at once; a key is
//! never written twice at the same time (a change to a key being written is written after).
//!
//! The first request that finds the target silent ends every other (see [`bounded`]'s reasons):
//! [`Writes::abandon`] hands their keys back to be written once the target answers again.
//!
//! [`bounded`]: super::bounded

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use kube::Client;
use kube::api::ApiResource;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::super::target::{self, Failure};
use super::{Action, Key};

/// A finished write: its key, when its change was seen, what was written (a deletion mark with
/// the time `marked_at`), and the answer.
pub(super) struct Written {
    pub(super) key: Key,
    pub(super) seen: Instant,
    pub(super) action: Action,
    pub(super) marked_at: Arc<str>,
    pub(super) result: Result<(), Failure>,
}

/// The writes in flight.
pub(super) struct Writes {
    tasks: JoinSet<Written>,
    /// Keys being written, with when their change was seen and their restore rank.
    keys: HashMap<Key, (Instant, u8)>,
    /// The same by when the change was seen, for the oldest (the RPO).
    by_age: BTreeSet<(Instant, Key)>,
    permits: Arc<Semaphore>,
    /// When the writes now in flight began (the first of them), and how many were started since.
    busy: Option<(Instant, usize)>,
}

impl Writes {
    /// No writes, at most `concurrency` requests at once when there are.
    pub(super) fn new(concurrency: usize) -> Writes {
        Writes {
            tasks: JoinSet::new(),
            keys: HashMap::new(),
            by_age: BTreeSet::new(),
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            busy: None,
        }
    }

    /// Whether `key` is being written.
    pub(super) fn writing(&self, key: &Key) -> bool {
        self.keys.contains_key(key)
    }

    /// Whether nothing is in flight.
    pub(super) fn idle(&self) -> bool {
        self.keys.is_empty()
    }

    /// The lowest restore rank being written: nothing of a higher rank goes out before.
    pub(super) fn lowest_rank(&self) -> Option<u8> {
        self.keys.values().map(|(_, rank)| *rank).min()
    }

    /// When the oldest change being written was seen.
    pub(super) fn oldest(&self) -> Option<Instant> {
        self.by_age.first().map(|(seen, _)| *seen)
    }

    /// Starts writing `action` for `key` (rank `rank`, change seen at `seen`); `now` is the
    /// deletion mark's time.
    pub(super) fn start(
        &mut self,
        target: &Client,
        resource: ApiResource,
        (key, seen, action): (Key, Instant, Action),
        rank: u8,
        now: &Arc<str>,
    ) {
        let busy = self.busy.get_or_insert((Instant::now(), 0));
        busy.1 += 1;
        self.keys.insert(key.clone(), (seen, rank));
        self.by_age.insert((seen, key.clone()));
        let (target, permits, now) = (target.clone(), self.permits.clone(), now.clone());
        self.tasks.spawn(async move {
            // The semaphore is never closed; a failed acquire would only mean no limit.
            let _permit = permits.acquire_owned().await;
            let result = write(&target, &resource, &action, &now).await;
            Written {
                key,
                seen,
                action,
                marked_at: now,
                result,
            }
        });
    }

    /// The next finished write; pending forever while nothing is in flight (for `select!`).
    pub(super) async fn next(&mut self) -> Written {
        loop {
            match self.tasks.join_next().await {
                Some(Ok(written)) => {
                    self.finished(&written.key);
                    return written;
                }
                // A write task cannot panic short of a bug; its key is written again.
                Some(Err(_)) => continue,
                None => std::future::pending::<()>().await,
            }
        }
    }

    /// The writes that finished meanwhile, without waiting.
    pub(super) fn ready(&mut self) -> Vec<Written> {
        let mut done = Vec::new();
        while let Some(joined) = self.tasks.try_join_next() {
            if let Ok(written) = joined {
                self.finished(&written.key);
                done.push(written);
            }
        }
        done
    }

    /// When the writes that just drained began and how many there were, once nothing is in
    /// flight any more.
    pub(super) fn drained(&mut self) -> Option<(Instant, usize)> {
        if self.keys.is_empty() {
            self.busy.take()
        } else {
            None
        }
    }

    /// Stops every write in flight; returns their keys with when their change was seen.
    pub(super) fn abandon(&mut self) -> Vec<(Key, Instant)> {
        self.tasks.abort_all();
        self.tasks.detach_all();
        self.by_age.clear();
        self.busy = None;
        self.keys
            .drain()
            .map(|(key, (seen, _))| (key, seen))
            .collect()
    }

    fn finished(&mut self, key: &Key) {
        if let Some((seen, _)) = self.keys.remove(key) {
            self.by_age.remove(&(seen, key.clone()));
        }
    }
}

/// One write to the target.
async fn write(
    target: &Client,
    resource: &ApiResource,
    action: &Action,
    now: &str,
) -> Result<(), Failure> {
    match action {
        Action::Apply(copy, _, unmark) => {
            target::apply(target, resource, copy).await?;
            if *unmark {
                target::mark_deleted(target, resource, copy, None).await?;
            }
            Ok(())
        }
        Action::Unmark(copy) => target::mark_deleted(target, resource, copy, None).await,
        Action::Mark(reference) => {
            target::mark_deleted(target, resource, reference, Some(now)).await
        }
    }
}
