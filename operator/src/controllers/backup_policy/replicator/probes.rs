//! The replicator's periodic reads — the failover fence on the target, and its own policy on the
//! primary for the status report — made by tasks of their own and answered through the engine's
//! channel, so that a change waiting to be copied never waits behind them: made in line, each
//! held up every change that arrived meanwhile, and they were the continuous RPO's worst cases.
//! At most one read of each is in flight. While the target is unreachable, the probe that tells
//! when it answers again is made the same way: a target that hangs holds a probe for the client's
//! timeout, and the status and the RPO gauge must not wait that long.

use std::time::{Duration, Instant};

use govdc_crds::BackupPolicy;
use kube::{Api, Client};
use tokio::sync::mpsc;

use super::super::target::{self, Failure};
use super::Change;

/// How old a read of the policy may be when the report uses it: the status is written from it,
/// and an older one (the engine was busy writing) is read again, in line, as it was before.
pub(super) const FRESH_POLICY: Duration = Duration::from_secs(1);

/// A read of the policy, and when it was made.
pub(super) type PolicyRead = (Instant, Result<Option<BackupPolicy>, kube::Error>);

/// The longest a probe of an unreachable target waits for its answer, whatever the client's own
/// timeouts: a probe stuck on a connection the target accepted and never answers must not keep
/// the next one from being made.
pub(super) const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

/// An answer of the target (or its silence, as a message), and when the request was made: an
/// answer to a request made before the target was last seen answering is out of date.
pub(super) type TargetAnswer<T> = (Instant, Result<T, Failure>);

/// Which reads are in flight, and whether the fence was ever read.
#[derive(Default)]
pub(super) struct Probes {
    fence_in_flight: bool,
    policy_in_flight: bool,
    target_in_flight: bool,
    /// Whether the fence was read once: nothing is written to the target before, since a
    /// promoted target must never be written by replication again.
    pub(super) fence_read: bool,
}

impl Probes {
    /// Reads whether the target was promoted by a failover of `policy`; answered by
    /// [`Change::Fence`].
    pub(super) fn read_fence(&mut self, target: &Client, policy: &str, tx: &mpsc::Sender<Change>) {
        if std::mem::replace(&mut self.fence_in_flight, true) {
            return;
        }
        let (target, policy, tx) = (target.clone(), policy.to_owned(), tx.clone());
        tokio::spawn(async move {
            let asked = Instant::now();
            let answer = target::failed_over(&target, &policy).await;
            let _ = tx.send(Change::Fence((asked, answer))).await;
        });
    }

    /// Asks the target for its version, to tell when an unreachable target answers again;
    /// answered by [`Change::TargetProbe`] within [`PROBE_TIMEOUT`].
    pub(super) fn probe_target(&mut self, target: &Client, tx: &mpsc::Sender<Change>) {
        if std::mem::replace(&mut self.target_in_flight, true) {
            return;
        }
        let (target, tx) = (target.clone(), tx.clone());
        tokio::spawn(async move {
            let asked = Instant::now();
            let answer = match tokio::time::timeout(PROBE_TIMEOUT, target.apiserver_version()).await
            {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(target::classify(&error)),
                Err(_) => Err(Failure::Unreachable(format!(
                    "no answer within {}s",
                    PROBE_TIMEOUT.as_secs()
                ))),
            };
            let _ = tx.send(Change::TargetProbe((asked, answer))).await;
        });
    }

    /// Takes the probe's answer.
    pub(super) fn target_answered(&mut self) {
        self.target_in_flight = false;
    }

    /// Takes the fence's answer.
    pub(super) fn fence_answered(&mut self, answer: &Result<bool, Failure>) {
        self.fence_in_flight = false;
        if answer.is_ok() {
            self.fence_read = true;
        }
    }

    /// Reads the policy from the primary; answered by [`Change::Policy`].
    pub(super) fn read_policy(
        &mut self,
        primary: &Client,
        policy: &str,
        tx: &mpsc::Sender<Change>,
    ) {
        if std::mem::replace(&mut self.policy_in_flight, true) {
            return;
        }
        let api: Api<BackupPolicy> = Api::all(primary.clone());
        let (policy, tx) = (policy.to_owned(), tx.clone());
        tokio::spawn(async move {
            let read = api.get_opt(&policy).await;
            let _ = tx
                .send(Change::Policy(Box::new((Instant::now(), read))))
                .await;
        });
    }

    /// Takes a read of the policy.
    pub(super) fn policy_answered(&mut self) {
        self.policy_in_flight = false;
    }
}
