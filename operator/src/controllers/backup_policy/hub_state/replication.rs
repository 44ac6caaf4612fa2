//! The periodic task of a policy that keeps its hubs' state in the store, and the condition it
//! reports (`HubStateReplicated`).

use super::layout::{continuous_dir, prune};
use super::*;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use kube::Client;
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};

use super::super::clean::map_namespace;
use super::super::metrics::BackupMetrics;
use super::super::store::{RestorePointStore, Retention};
use crate::pipeline::conditions::Observed;

/// What the policy's status says of one node.
#[derive(Clone, Debug, Default)]
pub(super) struct NodeState {
    /// When the stored copy was taken.
    pub(super) copied_at: Option<Timestamp>,
    /// The last failure, cleared by a success.
    pub(super) error: Option<(&'static str, String)>,
}

/// The running export of a policy's hubs, as the replicator holds it: dropping it stops the
/// exports (after the one in flight, so no upload is cut short).
pub struct Replication {
    nodes: Vec<NodeRef>,
    states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>>,
    trigger: Arc<Notify>,
    /// Cancelled by [`Replication::stop`], and when this is dropped.
    stop: DropGuard,
}

/// How a [`Replication`] runs.
pub struct ReplicationSettings {
    /// The policy.
    pub policy: String,
    /// What to export.
    pub source: HubStateSource,
    /// The primary, for the nodes' keys.
    pub primary: Client,
    /// Where the copies go.
    pub store: RestorePointStore,
    /// Which copies are kept.
    pub retention: Retention,
    /// Every this long (continuous mode); None: on [`Replication::trigger`] (scheduled mode).
    pub interval: Option<Duration>,
    /// The metrics.
    pub metrics: BackupMetrics,
}

impl Replication {
    /// Starts exporting; the first round runs at once.
    pub fn start(settings: ReplicationSettings) -> Replication {
        let nodes = settings.source.nodes.clone();
        let states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>> = Arc::default();
        let trigger = Arc::new(Notify::new());
        let stopped = CancellationToken::new();
        tokio::spawn(run(
            settings,
            states.clone(),
            trigger.clone(),
            stopped.clone(),
        ));
        Replication {
            nodes,
            states,
            trigger,
            stop: stopped.drop_guard(),
        }
    }

    /// Asks for a round now (a scheduled pass).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    /// Stops exporting: the target was promoted.
    pub fn stop(&self) {
        self.stop.token().cancel();
    }

    /// The `HubStateReplicated` condition.
    pub fn condition(&self) -> Observed {
        let states = self.states.lock().map(|s| s.clone()).unwrap_or_default();
        condition(&self.nodes, &states)
    }
}

pub(super) fn condition(nodes: &[NodeRef], states: &BTreeMap<NodeRef, NodeState>) -> Observed {
    let failing: Vec<(&NodeRef, &(&'static str, String))> = nodes
        .iter()
        .filter_map(|n| Some((n, states.get(n)?.error.as_ref()?)))
        .collect();
    if let Some((_, (reason, _))) = failing.first() {
        let message = failing
            .iter()
            .map(|(node, (_, message))| format!("{node}: {message}"))
            .collect::<Vec<_>>()
            .join("; ");
        return Observed::no(
            HUB_STATE_REPLICATED,
            *reason,
            format!(
                "the hub state of {} of {} ExchangeNodes is not exported: {message}",
                failing.len(),
                nodes.len()
            ),
        );
    }
    let copied: Vec<Timestamp> = nodes
        .iter()
        .filter_map(|n| states.get(n)?.copied_at)
        .collect();
    if copied.len() < nodes.len() {
        return Observed::no(
            HUB_STATE_REPLICATED,
            "ExportPending",
            format!(
                "{} of {} ExchangeNodes' hub state exported so far",
                copied.len(),
                nodes.len()
            ),
        );
    }
    let oldest = copied.iter().min().copied().unwrap_or_else(Timestamp::now);
    let oldest = oldest.round(jiff::Unit::Second).unwrap_or(oldest);
    Observed::yes(
        HUB_STATE_REPLICATED,
        "Exported",
        format!(
            "the hub state of {} ExchangeNodes is in the restore-point store; last export at {oldest} (later rounds found no change)",
            nodes.len()
        ),
    )
}

pub(super) async fn run(
    settings: ReplicationSettings,
    states: Arc<Mutex<BTreeMap<NodeRef, NodeState>>>,
    trigger: Arc<Notify>,
    stopped: CancellationToken,
) {
    let policy = settings.policy.clone();
    let mut ends: BTreeMap<NodeRef, (ChainEnd, Instant)> = BTreeMap::new();
    loop {
        for node in &settings.source.nodes {
            if stopped.is_cancelled() {
                break;
            }
            round(&settings, node, &states, &mut ends).await;
        }
        let wait = async {
            match settings.interval {
                Some(interval) => tokio::time::sleep(interval).await,
                None => trigger.notified().await,
            }
        };
        tokio::select! {
            _ = stopped.cancelled() => break,
            _ = wait => {}
        }
    }
    for node in &settings.source.nodes {
        settings.metrics.forget_hub_node(&policy, &node.to_string());
    }
    tracing::info!(%policy, "hub state export stopped");
}

/// One node's export, its bookkeeping and its retention.
pub(super) async fn round(
    settings: &ReplicationSettings,
    node: &NodeRef,
    states: &Mutex<BTreeMap<NodeRef, NodeState>>,
    ends: &mut BTreeMap<NodeRef, (ChainEnd, Instant)>,
) {
    let policy = &settings.policy;
    let since = ends
        .get(node)
        .filter(|(_, at)| at.elapsed() < MAX_AGE)
        .map(|(end, _)| end.clone());
    let now = Timestamp::now();
    let dir = continuous_dir(policy, node, now);
    let target_namespace = map_namespace(&settings.source.mapping, &node.namespace);
    let endpoint = settings.source.hubs.endpoint(&node.namespace, &node.name);
    let result = async {
        let access = access(&settings.primary, &node.namespace, &node.name, endpoint).await?;
        export(
            &access,
            &settings.store,
            &dir,
            node,
            &target_namespace,
            since.as_ref(),
        )
        .await
    }
    .await;
    let update = |f: &dyn Fn(&mut NodeState)| {
        if let Ok(mut states) = states.lock() {
            f(states.entry(node.clone()).or_default());
        }
    };
    match result {
        Ok(exported) => {
            if let Exported::Copied(manifest, end) = exported {
                tracing::info!(%policy, %node, sha256 = %manifest.sha256, bytes = manifest.size_bytes,
                    audit_records = manifest.audit_records, "exported a hub's state");
                match end {
                    Some(end) => {
                        ends.insert(node.clone(), (end, Instant::now()));
                    }
                    None => {
                        ends.remove(node);
                    }
                }
                let taken_at = manifest.taken_at;
                update(&|s| s.copied_at = Some(taken_at));
                match prune(&settings.store, node, &settings.retention).await {
                    Ok(0) => {}
                    Ok(deleted) => {
                        tracing::debug!(%policy, %node, deleted, "deleted hub state copies past retention")
                    }
                    Err(error) => {
                        tracing::warn!(%policy, %node, error = error.chain(), "applying retention to hub state copies failed")
                    }
                }
            }
            // Unchanged means unchanged since a copy this task made, whose time it already holds.
            update(&|s| s.error = None);
            settings.metrics.hub_state_exported(
                policy,
                &node.to_string(),
                Timestamp::now().as_millisecond() as f64 / 1000.0,
            );
        }
        Err(error) => {
            let reason = error.reason();
            let message = error.to_string();
            let first = states
                .lock()
                .map(|s| s.get(node).and_then(|s| s.error.clone()).map(|e| e.0) != Some(reason))
                .unwrap_or(true);
            if first {
                tracing::warn!(%policy, %node, reason, error = %message, "exporting a hub's state failed");
            }
            settings.metrics.error(policy, reason);
            update(&|s| s.error = Some((reason, message.clone())));
        }
    }
}
