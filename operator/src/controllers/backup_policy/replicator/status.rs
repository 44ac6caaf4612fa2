//! The replicator's report: the conditions for the state it is in, the status it writes from
//! what it holds, and the Warning events of the states a person must act on.

use std::sync::Arc;

use govdc_crds::BackupPolicy;
use govdc_crds::backup_policy::{BackupPolicyStatus, ReplicationErrorCount};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::events::EventType;
use kube::{Api, ResourceExt};

use super::super::clean::POLICY_LABEL;
use super::{
    Engine, FAILED_OVER, MAX_LISTED_CONFLICTS, Mode, NOTHING_SELECTED, TARGET_REACHABLE,
    WARNING_REASONS,
};
use crate::controllers::Context;
use crate::pipeline::conditions::{DEGRADED, Observed, PROGRESSING, READY};

impl Engine {
    /// The conditions for the state the replicator is in.
    pub(super) fn conditions(&self) -> Vec<Observed> {
        let rpo = self.current_rpo();
        if self.failed_over {
            return vec![
                Observed::no(
                    READY,
                    "FailedOver",
                    "the target was promoted by failover; replication stopped",
                ),
                Observed::yes(
                    FAILED_OVER,
                    "FailedOver",
                    "the target runs the protected workloads",
                ),
                Observed::no(PROGRESSING, "FailedOver", "replication stopped"),
                Observed::no(DEGRADED, "FailedOver", "replication stopped by failover"),
            ];
        }
        let mut observed = vec![Observed::no(
            FAILED_OVER,
            "NotFailedOver",
            "the primary runs the protected workloads",
        )];
        if let Some((reason, message)) = &self.refusal {
            let progressing = if self.refused_for_good() {
                "nothing is written to the target until spec.target or its kubeconfig Secret changes"
            } else {
                "nothing is written to the target; checked again with back-off"
            };
            observed.extend([
                Observed::no(READY, *reason, message.clone()),
                Observed::yes(DEGRADED, *reason, message.clone()),
                Observed::no(PROGRESSING, *reason, progressing),
            ]);
            return observed;
        }
        if !self.target_state.answers() {
            let message = format!(
                "{} does not answer ({}); changes wait and are written once it does",
                self.settings.target,
                self.target_state.reason()
            );
            observed.extend([
                Observed::no(READY, "TargetUnreachable", message.clone()),
                Observed::yes(DEGRADED, "TargetUnreachable", message.clone()),
                Observed::no(TARGET_REACHABLE, "TargetUnreachable", message),
                Observed::yes(
                    PROGRESSING,
                    "WaitingForTarget",
                    "changes are queued for the target",
                ),
            ]);
            return observed;
        }
        observed.push(Observed::yes(
            TARGET_REACHABLE,
            "TargetAnswers",
            "the target cluster answers",
        ));
        if self.index.initial_listing_done() {
            observed.push(self.nothing_selected());
        }
        let namespaces = self.index.namespace_conflicts();
        if !namespaces.is_empty() {
            let message = format!(
                "the namespace mapping would write into target namespaces this policy did not create (they lack the label {POLICY_LABEL}={}): {}; nothing is written until they are gone or spec.namespaceMapping changes",
                self.settings.policy,
                namespaces.join(", ")
            );
            observed.extend([
                Observed::no(READY, "NamespaceMappingConflict", message.clone()),
                Observed::yes(DEGRADED, "NamespaceMappingConflict", message),
                Observed::no(
                    PROGRESSING,
                    "NamespaceMappingConflict",
                    "waiting for the spec or the target to change",
                ),
            ]);
            return observed;
        }
        if !self.index.initial_listing_done()
            || !self.preflighted
            || !self.target_state.listed()
            || self.in_sync_at.is_none()
        {
            observed.extend([
                Observed::no(
                    READY,
                    "InitialSync",
                    "the first copy of the protected objects is being written",
                ),
                Observed::yes(PROGRESSING, "InitialSync", "writing the first copy"),
                Observed::no(DEGRADED, "AsExpected", "nothing failed"),
            ]);
            return observed;
        }
        // What keeps part of the protected objects off the target, each in its own words.
        let mut gaps: Vec<(&'static str, String)> = Vec::new();
        let conflicts = self.index.conflicts();
        if !conflicts.is_empty() {
            let named: Vec<String> = conflicts
                .iter()
                .take(10)
                .map(|c| match &c.namespace {
                    Some(ns) => format!("{} {ns}/{}", c.kind, c.name),
                    None => format!("{} {}", c.kind, c.name),
                })
                .collect();
            let more = match conflicts.len().saturating_sub(named.len()) {
                0 => String::new(),
                n => format!(" and {n} more (status.conflicts)"),
            };
            gaps.push((
                "TargetConflict",
                format!(
                    "the target holds objects this policy did not make where its copies would go, left untouched and not replicated: {}{more}",
                    named.join(", ")
                ),
            ));
        }
        if !self.index.unserved.is_empty() {
            gaps.push(("KindNotServed", self.unserved_message.clone()));
        }
        if !self.index.rejected.is_empty() {
            let reasons: Vec<String> = self
                .errors
                .iter()
                .filter(|(r, _)| {
                    !matches!(
                        **r,
                        "TargetUnreachable" | "KindNotServed" | "SourceIdentityUnknown"
                    )
                })
                .map(|(r, (_, m))| format!("{r}: {m}"))
                .collect();
            gaps.push((
                "ObjectsRejected",
                format!(
                    "the target refused {} objects ({}); retried at the next full resync",
                    self.index.rejected.len(),
                    reasons.join("; ")
                ),
            ));
        }
        if let Some((reason, _)) = gaps.first() {
            let message = gaps
                .iter()
                .map(|(_, m)| m.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            observed.extend([
                Observed::no(READY, *reason, message.clone()),
                Observed::yes(DEGRADED, *reason, message),
                Observed::no(
                    PROGRESSING,
                    "Replicating",
                    "the rest of the protected objects is replicated",
                ),
            ]);
            return observed;
        }
        let objective = self.settings.rpo_objective;
        match rpo {
            Some(rpo) if rpo > objective => observed.push(Observed::yes(
                DEGRADED,
                "RecoveryPointObjectiveMissed",
                format!(
                    "replication lag {:.1}s exceeds the objective of {:.1}s",
                    rpo.as_secs_f64(),
                    objective.as_secs_f64()
                ),
            )),
            _ => observed.push(Observed::no(
                DEGRADED,
                "AsExpected",
                "replication keeps within the objective",
            )),
        }
        let reason = match self.settings.mode {
            Mode::Continuous => "Replicating",
            Mode::Scheduled(_) => "Synced",
        };
        observed.extend([
            Observed::yes(
                READY,
                reason,
                format!(
                    "{} objects replicated from {} namespaces",
                    self.index.copies(),
                    self.index.protected_namespaces().count()
                ),
            ),
            Observed::no(
                PROGRESSING,
                reason,
                "the target holds the protected objects",
            ),
        ]);
        observed
    }

    /// The `NothingSelected` condition (see [`NOTHING_SELECTED`]).
    pub(super) fn nothing_selected(&self) -> Observed {
        let protected = self.index.protected_namespaces().count();
        if protected == 0 {
            Observed::yes(
                NOTHING_SELECTED,
                "NoNamespaceProtected",
                format!(
                    "spec.departmentSelector selects {} DepartmentClouds with no namespace between them; nothing is protected",
                    self.index.departments.len()
                ),
            )
        } else {
            Observed::no(
                NOTHING_SELECTED,
                "NamespacesProtected",
                format!("{protected} namespaces are protected"),
            )
        }
    }

    /// Writes the status if it changed. Returns false when the policy is gone and the replicator
    /// should stop.
    pub(super) async fn report(&mut self) -> bool {
        let api: Api<BackupPolicy> = Api::all(self.primary.clone());
        let read = api.get_opt(&self.settings.policy).await;
        self.report_with(read).await
    }

    /// [`Engine::report`] from a read of the policy made a moment ago.
    pub(super) async fn report_with(
        &mut self,
        read: Result<Option<BackupPolicy>, kube::Error>,
    ) -> bool {
        let policy = match read {
            Ok(Some(policy)) if policy.uid().as_deref() == Some(&self.settings.uid) => policy,
            Ok(_) => return false,
            Err(error) => {
                tracing::debug!(%error, "reading the policy failed; status waits");
                return true;
            }
        };
        let current = policy.status.clone().unwrap_or_default();
        if current.failover.is_some() {
            self.failed_over = true;
            if let Some(hub_state) = &self.hub_state {
                hub_state.stop();
            }
        }
        if self
            .status_write
            .as_ref()
            .is_some_and(|write| !write.is_finished())
        {
            // The last status is still being written: the next report follows it, so that
            // two writes never cross.
            return true;
        }
        let was_reachable = !current
            .conditions
            .iter()
            .any(|c| c.type_ == TARGET_REACHABLE && c.status == "False");
        let mut next = BackupPolicyStatus {
            observed_generation: current.observed_generation,
            conditions: current.conditions.clone(),
            failover: current.failover.clone(),
            restore_points: match &self.shelf {
                Some(shelf) => shelf.listed(),
                None => Vec::new(),
            },
            ..BackupPolicyStatus::default()
        };
        // A replicator not yet in sync keeps what a previous one recorded: the target still
        // holds that.
        next.last_sync_time = self
            .last_sync_time
            .or(self.in_sync_at.map(|in_sync| in_sync.time))
            .or(self.previous_sync)
            .map(|t| Time(jiff::Timestamp::from_second(t.as_second()).unwrap_or(t)));
        // Keep a recent enough stored time rather than writing the status for every sync.
        if let (Some(stored), Some(new)) = (&current.last_sync_time, &next.last_sync_time)
            && new.0.duration_since(stored.0).as_secs_f64() < 30.0
            && new.0 >= stored.0
        {
            next.last_sync_time = Some(stored.clone());
        }
        next.last_successful_sync_time = next.last_sync_time.clone();
        next.measured_rpo_seconds = self
            .current_rpo()
            .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
            .map(|rpo| match current.measured_rpo_seconds {
                // Small wobbles of a healthy lag are not worth a status write.
                Some(stored)
                    if (stored - rpo).abs() < 0.5
                        && rpo < self.settings.rpo_objective.as_secs_f64() =>
                {
                    stored
                }
                _ => rpo,
            });
        next.objects_replicated = Some(self.index.copies() as i64);
        next.pending_deletions = Some(self.index.pending_deletions() as i64);
        next.protected_namespaces = Some(self.index.protected_namespaces().count() as i64);
        next.conflicts = self.index.conflicts();
        next.conflicts.truncate(MAX_LISTED_CONFLICTS);
        next.errors = self
            .errors
            .iter()
            .map(|(reason, (count, message))| ReplicationErrorCount {
                reason: (*reason).to_owned(),
                count: *count,
                message: message.chars().take(300).collect(),
            })
            .collect();
        let mut observed = self.conditions();
        if let Some(hub_state) = &self.hub_state {
            observed.push(hub_state.condition());
        }
        let write = StatusWrite {
            ctx: self.ctx.clone(),
            uid: self.settings.uid.clone(),
            policy,
            current,
            next,
            observed,
            newly_unreachable: (was_reachable && !self.target_state.answers())
                .then(|| self.target_state.reason().to_owned()),
        };
        // The gauges are refreshed less often than the loop turns: never older than the status,
        // so that whoever reads the status and then the metrics sees one state.
        self.update_gauges();
        // Written by a task of its own: a status PATCH awaited here held up every change that
        // arrived meanwhile (up to half a second on a loaded primary).
        self.status_write = Some(tokio::spawn(write.run()));
        true
    }
}

/// A status write and the Warning events of the states it enters, made off the replicator's
/// loop.
struct StatusWrite {
    ctx: Arc<Context>,
    uid: String,
    policy: BackupPolicy,
    current: BackupPolicyStatus,
    next: BackupPolicyStatus,
    observed: Vec<Observed>,
    /// Why the target does not answer, when it answered at the last status write.
    newly_unreachable: Option<String>,
}

impl StatusWrite {
    async fn run(self) {
        let StatusWrite {
            ctx,
            uid,
            policy,
            current,
            next,
            observed,
            newly_unreachable,
        } = self;
        let name = policy.name_any();
        let condition = |type_: &str| {
            current
                .conditions
                .iter()
                .find(|c| c.type_ == type_)
                .cloned()
        };
        let (was_ready, was_nothing) = (condition(READY), condition(NOTHING_SELECTED));
        match crate::pipeline::report::report(&ctx, &policy, Some(&current), next, &observed, &[])
            .await
        {
            Ok(_) => {
                // A Warning event when the policy enters a state a person must act on.
                for now in &observed {
                    let before = if now.type_ == READY {
                        &was_ready
                    } else if now.type_ == NOTHING_SELECTED {
                        &was_nothing
                    } else {
                        continue;
                    };
                    let warns = (now.type_ == READY
                        && now.status == "False"
                        && WARNING_REASONS.contains(&now.reason.as_str()))
                        || (now.type_ == NOTHING_SELECTED && now.status == "True");
                    let entered = before
                        .as_ref()
                        .is_none_or(|b| b.status != now.status || b.reason != now.reason);
                    if warns && entered {
                        let reason = if now.type_ == NOTHING_SELECTED {
                            NOTHING_SELECTED
                        } else {
                            WARNING_REASONS
                                .iter()
                                .find(|r| **r == now.reason)
                                .copied()
                                .unwrap_or("ReplicationProblem")
                        };
                        super::publish(
                            &ctx,
                            &name,
                            &uid,
                            EventType::Warning,
                            reason,
                            now.message.clone(),
                        )
                        .await;
                    }
                }
                if let Some(reason) = newly_unreachable {
                    super::publish(
                        &ctx,
                        &name,
                        &uid,
                        EventType::Warning,
                        "TargetUnreachable",
                        format!("the target cluster does not answer: {reason}"),
                    )
                    .await;
                }
            }
            Err(error) => {
                tracing::debug!(error = %error.chain(), "writing the policy's status failed")
            }
        }
    }
}
