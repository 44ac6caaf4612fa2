//! What the replicator makes sure of before it writes to the target, and what stops it: the
//! target is not the source (by identity), serves the replicated kinds (govdc's own CRDs
//! installed where the credentials allow), and holds nothing the policy did not make where a
//! copy would go.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use kube::runtime::events::EventType;
use serde_json::Value;

use super::super::kinds::Kind;
use super::super::preflight;
use super::super::target::{self, Failure, Holder};
use super::{Action, Engine, FRESH_LISTING, Key, PREFLIGHT_BACKOFF, bounded};

impl Engine {
    /// Whether the target was found to be the source: no later check can change that.
    pub(super) fn refused_for_good(&self) -> bool {
        self.refusal
            .as_ref()
            .is_some_and(|(reason, _)| *reason == "TargetIsSource")
    }

    pub(super) fn retry_preflight_later(&mut self) {
        self.next_preflight = Instant::now() + self.preflight_backoff;
        self.preflight_backoff = (self.preflight_backoff * 2).min(PREFLIGHT_BACKOFF.1);
    }

    /// The checks made before anything is written to the target: that it is not the source
    /// cluster, and which replicated kinds it serves (installing govdc's CRDs it lacks, when its
    /// credentials allow). Until they pass, nothing is written.
    pub(super) async fn preflight(&mut self) {
        let source = match &self.source_identity {
            Some(uid) => uid.clone(),
            None => match preflight::cluster_identity(&self.primary).await {
                Ok(uid) => {
                    self.source_identity = Some(uid.clone());
                    uid
                }
                Err(failure) => {
                    self.record_error("SourceIdentityUnknown", failure.message().to_owned());
                    self.retry_preflight_later();
                    return;
                }
            },
        };
        match preflight::cluster_identity(&self.target).await {
            Err(Failure::Unreachable(message)) => {
                self.mark_unreachable(message);
                return;
            }
            Err(failure) => {
                self.refusal = Some((
                    "TargetIdentityUnknown",
                    format!(
                        "{}: the target's {} namespace cannot be read ({}); nothing is written until the policy can tell the target from the source",
                        self.settings.target,
                        preflight::IDENTITY_NAMESPACE,
                        failure.message()
                    ),
                ));
                self.retry_preflight_later();
                return;
            }
            Ok(uid) if preflight::same_cluster(&source, &uid) => {
                tracing::warn!(policy = %self.settings.policy, target = %self.settings.target, "the target is the source cluster; nothing is written");
                self.refusal = Some((
                    "TargetIsSource",
                    format!(
                        "{} is the source cluster itself (its {} namespace has uid {uid}, as the primary's does); a policy never writes into its own source: point spec.target at another cluster",
                        self.settings.target,
                        preflight::IDENTITY_NAMESPACE
                    ),
                ));
                return;
            }
            Ok(_) => self.refusal = None,
        }
        let kinds: Vec<Kind> = self.index.kinds.clone();
        let mut missing = match preflight::unserved(&self.target, &kinds).await {
            Ok(missing) => missing,
            Err(Failure::Unreachable(message)) => {
                self.mark_unreachable(message);
                return;
            }
            Err(failure) => {
                self.record_error(failure.reason(), failure.message().to_owned());
                self.retry_preflight_later();
                return;
            }
        };
        let mut install_error = None;
        let carried = preflight::carried_crds(missing.iter().map(|i| &kinds[*i]));
        if !carried.is_empty() {
            match preflight::install(&self.target, &carried).await {
                Ok(()) => {
                    let names: Vec<String> = carried
                        .iter()
                        .filter_map(|c| c.metadata.name.clone())
                        .collect();
                    tracing::info!(policy = %self.settings.policy, crds = ?names, "installed govdc's CRDs on the target");
                    self.publish(
                        EventType::Normal,
                        "CRDsInstalled",
                        format!(
                            "installed on the target, which lacked them: {}",
                            names.join(", ")
                        ),
                    )
                    .await;
                    match preflight::unserved(&self.target, &kinds).await {
                        Ok(now_missing) => missing = now_missing,
                        Err(Failure::Unreachable(message)) => {
                            self.mark_unreachable(message);
                            return;
                        }
                        Err(failure) => install_error = Some(failure.message().to_owned()),
                    }
                }
                Err(Failure::Unreachable(message)) => {
                    self.mark_unreachable(message);
                    return;
                }
                Err(failure) => install_error = Some(failure.message().to_owned()),
            }
        }
        let lacking: Vec<&Kind> = missing.iter().map(|i| &kinds[*i]).collect();
        self.unserved_message = preflight::not_served_message(&lacking, install_error.as_deref());
        if missing != self.index.unserved {
            // Kinds came or went: compare the whole target again.
            self.target_state.unlist();
        }
        if !missing.is_empty() {
            self.record_error("KindNotServed", self.unserved_message.clone());
        }
        self.index.unserved = missing;
        self.preflighted = true;
        if self.index.unserved.is_empty() {
            self.preflight_backoff = PREFLIGHT_BACKOFF.0;
        } else {
            self.retry_preflight_later();
        }
    }

    /// Before the first write of objects the last listing did not show as this policy's, reads
    /// who holds their place on the target now (when the listing is no longer fresh): what
    /// someone else made there since is a conflict, never written. Returns false, with every
    /// key back in `dirty`, when the sync must not start: the target stopped answering, or a
    /// protected namespace would land in a namespace this policy did not make.
    pub(super) async fn check_first_writes(
        &mut self,
        waves: &mut BTreeMap<u8, Vec<(Key, Instant, Action)>>,
    ) -> bool {
        if self
            .target_state
            .listed_at()
            .is_some_and(|at| at.elapsed() < FRESH_LISTING)
        {
            return true;
        }
        let policy = self.settings.policy.clone();
        let checks: Vec<(Key, kube::api::ApiResource, Arc<Value>)> = waves
            .values()
            .flatten()
            .filter(|(key, _, action)| {
                matches!(action, Action::Apply(..)) && !self.index.held.contains_key(key)
            })
            .map(|(key, _, action)| {
                let copy = match action {
                    Action::Apply(copy, ..) | Action::Unmark(copy) | Action::Mark(copy) => {
                        copy.clone()
                    }
                };
                (key.clone(), self.index.kinds[key.kind].api_resource(), copy)
            })
            .collect();
        if checks.is_empty() {
            return true;
        }
        let began = Instant::now();
        let count = checks.len();
        let target = self.target.clone();
        let pass =
            bounded::until_unreachable(checks.len(), self.settings.apply_concurrency, |index| {
                let (_, resource, copy) = &checks[index];
                let target = target.clone();
                let policy = policy.clone();
                async move { target::holder_of(&target, resource, copy, &policy).await }
            })
            .await;
        self.phases.step("first-write checks", count, began);
        let mut skipped = BTreeSet::new();
        // A silent target stops the pass: every key goes back to dirty below.
        let mut unreachable = pass.unreachable;
        let results = pass
            .answered
            .into_iter()
            .map(|(index, result)| (checks[index].0.clone(), result));
        for (key, result) in results {
            match result {
                Ok(Holder::Nobody | Holder::ThisPolicy) => {}
                Ok(Holder::Other) => {
                    tracing::warn!(policy = %self.settings.policy, kind = %self.index.kinds[key.kind].kind,
                        namespace = %key.namespace, name = %key.name, "the target holds an object this policy did not make; it is left alone");
                    self.index.foreign.insert(key.clone());
                    skipped.insert(key);
                }
                Err(Failure::Unreachable(message)) => unreachable = Some(message),
                Err(failure) => {
                    self.record_error(failure.reason(), failure.message().to_owned());
                    self.index.rejected.insert(key.clone());
                    skipped.insert(key);
                }
            }
        }
        let stop = unreachable.is_some() || !self.index.namespace_conflicts().is_empty();
        for wave in waves.values_mut() {
            wave.retain(|(key, _, _)| !skipped.contains(key));
        }
        if stop {
            for (key, seen, _) in std::mem::take(waves).into_values().flatten() {
                self.index.dirty.entry(key).or_insert(seen);
            }
            if let Some(message) = unreachable {
                self.mark_unreachable(message);
            }
            return false;
        }
        true
    }
}
