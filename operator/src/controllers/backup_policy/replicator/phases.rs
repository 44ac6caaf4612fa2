//! Where a replicator's time goes: each step of its work (the sources listed, the target checked
//! and listed, the checks before first writes, each wave of writes) is logged at debug level as a
//! `replication phase` event with how long it took and the time since the replicator started, so
//! that a person reading the log — or the benchmark, which reads it — tells listing from checking
//! from writing. At the default log level the events cost nothing.

use std::time::{Duration, Instant};

/// A step of the loop this long or longer is logged: changes wait behind it.
const SLOW_STEP: Duration = Duration::from_millis(15);

/// The clock of one replicator's phases.
pub(super) struct Phases {
    policy: String,
    started: Instant,
    /// Whether the first full sync was reported (`in sync` is logged once).
    in_sync: bool,
    /// Whether the sources' initial listing was reported.
    listed: bool,
}

impl Phases {
    /// Starts the clock of `policy`'s replicator.
    pub(super) fn start(policy: &str) -> Phases {
        Phases {
            policy: policy.to_owned(),
            started: Instant::now(),
            in_sync: false,
            listed: false,
        }
    }

    /// Logs a step of `objects` objects that began at `began`.
    pub(super) fn step(&self, phase: &'static str, objects: usize, began: Instant) {
        self.log(phase, objects, began.elapsed());
    }

    /// Logs, once, that the sources' initial listing finished (`objects` desired copies).
    pub(super) fn sources_listed(&mut self, objects: usize) {
        if !self.listed {
            self.listed = true;
            self.log("sources listed", objects, self.started.elapsed());
        }
    }

    /// Logs, once, that the target first held every copy (`objects` of them).
    pub(super) fn in_sync(&mut self, objects: usize) {
        if !self.in_sync {
            self.in_sync = true;
            self.log("in sync", objects, self.started.elapsed());
        }
    }

    /// Logs a step of the replicator's loop that held it for `SLOW_STEP` or more (debug).
    pub(super) fn slow(&self, step: &'static str, began: Instant) {
        let took = began.elapsed();
        if took >= SLOW_STEP {
            tracing::debug!(
                policy = %self.policy,
                step,
                took_ms = took.as_secs_f64() * 1000.0,
                "replication loop step"
            );
        }
    }

    fn log(&self, phase: &'static str, objects: usize, took: Duration) {
        tracing::debug!(
            policy = %self.policy,
            phase,
            objects,
            took_ms = took.as_secs_f64() * 1000.0,
            since_start_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            "replication phase"
        );
    }
}
