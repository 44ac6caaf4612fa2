//! How soon a failed reconcile is retried, per object. An error that only a change can heal (the
//! API server refused the request as invalid or forbidden) backs off from seconds to minutes, so
//! a bad spec does not hammer the API server every few seconds forever; an outage (no answer, a
//! conflict, throttling) is retried at a steady short interval. The count starts again when the
//! object reconciles successfully or its spec changes (a new generation).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use kube::core::error_boundary::DeserializeGuard;
use kube::{Resource, ResourceExt};

use crate::error::Error;

/// The retry interval of errors that may pass by themselves.
pub const TRANSIENT_RETRY: Duration = Duration::from_secs(5);

/// The first retry of an error that needs a change; each further failure doubles it.
pub const FIRST_BACKOFF: Duration = Duration::from_secs(5);

/// The longest wait between retries of an error that needs a change.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// The wait before retry number `failures` (1 for the first failure) of an error that needs a
/// change: 5 s, 10 s, 20 s, ... up to ten minutes.
pub fn delay(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FIRST_BACKOFF
        .saturating_mul(1 << doublings)
        .min(MAX_BACKOFF)
}

/// An object's identity for back-off: namespace and name.
type Key = (Option<String>, String);

/// Consecutive failures per object, with the generation they were counted for.
#[derive(Debug, Default)]
pub struct Backoff {
    failures: Mutex<HashMap<Key, (Option<i64>, u32)>>,
}

/// The key and generation of a watched object, whether it deserialized or not.
pub fn identity<K: Resource>(guard: &DeserializeGuard<K>) -> (Key, Option<i64>) {
    match &guard.0 {
        Ok(object) => (
            (object.namespace(), object.name_any()),
            object.meta().generation,
        ),
        Err(invalid) => (
            (
                invalid.metadata.namespace.clone(),
                invalid.metadata.name.clone().unwrap_or_default(),
            ),
            invalid.metadata.generation,
        ),
    }
}

impl Backoff {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, (Option<i64>, u32)>> {
        self.failures
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a failure of the object `key` at `generation` and returns how long to wait.
    pub fn failed(&self, key: Key, generation: Option<i64>, error: &Error) -> Duration {
        let mut failures = self.lock();
        let entry = failures.entry(key).or_insert((generation, 0));
        if entry.0 != generation {
            *entry = (generation, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        if error.needs_a_change() {
            delay(entry.1)
        } else {
            TRANSIENT_RETRY
        }
    }

    /// Forgets the failures of `key`: it reconciled.
    pub fn succeeded(&self, key: &Key) {
        let mut failures = self.lock();
        if !failures.is_empty() {
            failures.remove(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn refused() -> Error {
        Error::Apply {
            what: "ResourceQuota t-prod/govdc-quota".into(),
            source: kube::Error::Api(Box::new(
                Status::failure("invalid", "Invalid").with_code(422),
            )),
        }
    }

    fn unreachable() -> Error {
        Error::Read {
            what: "namespaces".into(),
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        }
    }

    fn key(name: &str) -> Key {
        (None, name.to_owned())
    }

    #[test]
    fn the_delay_doubles_from_seconds_to_a_ceiling_of_minutes() {
        let delays: Vec<u64> = (1..=10).map(|n| delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(delay(u32::MAX), MAX_BACKOFF);
    }

    #[test]
    fn a_refusal_backs_off_per_object() {
        let backoff = Backoff::default();
        let waits: Vec<u64> = (0..4)
            .map(|_| backoff.failed(key("a"), Some(1), &refused()).as_secs())
            .collect();
        assert_eq!(waits, [5, 10, 20, 40]);
        // Another object has its own count.
        assert_eq!(backoff.failed(key("b"), Some(1), &refused()).as_secs(), 5);
    }

    #[test]
    fn success_or_a_new_generation_starts_the_count_again() {
        let backoff = Backoff::default();
        for _ in 0..5 {
            backoff.failed(key("a"), Some(1), &refused());
        }
        assert_eq!(backoff.failed(key("a"), Some(2), &refused()).as_secs(), 5);
        backoff.failed(key("a"), Some(2), &refused());
        backoff.succeeded(&key("a"));
        assert_eq!(backoff.failed(key("a"), Some(2), &refused()).as_secs(), 5);
    }

    #[test]
    fn an_outage_is_retried_steadily() {
        let backoff = Backoff::default();
        for _ in 0..6 {
            assert_eq!(
                backoff.failed(key("a"), Some(1), &unreachable()),
                TRANSIENT_RETRY
            );
        }
    }
}
