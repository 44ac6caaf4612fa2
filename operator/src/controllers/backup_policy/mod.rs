//! The BackupPolicy controller: disaster-recovery replication of tenant clouds to a standby
//! cluster (容灾备份).
//!
//! A reconcile **read**s the target's kubeconfig Secret (and storage credentials), **validate**s
//! the spec into a plan (pure), and makes sure one [`replicator`] task runs that plan; a changed
//! spec or Secret restarts it, a problem stops it and is reported. The replicator does the work
//! off the reconcile path — [`source`] (what is protected) -> [`clean`] (the copy for the
//! standby, pure) -> [`target`] (server-side apply, deletion marks, deletes) — and reports status
//! and the [`metrics`]. Restore points live in [`store`]; restore and failover are the
//! `govdc-operator backup` commands, beside them in [`crate::backup_commands`]. [`hub_state`]
//! copies the exchange hub's own database of the listed ExchangeNodes into the same store, and
//! back into the hubs on failover and restore.

pub mod clean;
pub mod hub_state;
pub mod kinds;
pub mod metrics;
pub mod preflight;
pub mod read;
pub mod references;
pub mod replicator;
pub mod report;
pub mod schedule;
pub mod source;
pub mod store;
pub mod target;
pub mod validate;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use govdc_crds::BackupPolicy;
use kube::ResourceExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::{Context, Running, instrumented};
use crate::error::Result;
use crate::pipeline::report::Problem;
use clean::CleanOptions;
use hub_state::{HubStateSource, Replication, ReplicationSettings};
use metrics::BackupMetrics;
use replicator::{Mode, Settings};
use store::{RestorePointShelf, RestorePointStore, Retention};
use validate::Plan;

/// The controller's label in metrics and logs.
pub const NAME: &str = "backup_policy";

/// Where restore points go when a policy names no object storage.
pub const DEFAULT_RESTORE_POINT_DIR: &str = "/var/lib/govdc/restore-points";

/// Operator-wide settings of replication.
#[derive(Clone, Debug)]
pub struct BackupSettings {
    /// Directory of restore points of policies without object storage.
    pub restore_point_dir: PathBuf,
    /// Writes to a target in flight at once, per policy.
    pub apply_concurrency: usize,
    /// How often a continuous policy exports the hub state of its ExchangeNodes.
    pub hub_state_interval: std::time::Duration,
}

impl Default for BackupSettings {
    fn default() -> Self {
        BackupSettings {
            restore_point_dir: PathBuf::from(DEFAULT_RESTORE_POINT_DIR),
            apply_concurrency: 16,
            hub_state_interval: hub_state::DEFAULT_INTERVAL,
        }
    }
}

/// A running replicator and what it was started from.
struct RunningReplicator {
    fingerprint: String,
    task: JoinHandle<()>,
    restore_points: Option<JoinHandle<()>>,
}

impl RunningReplicator {
    fn stop(self) {
        self.task.abort();
        if let Some(task) = self.restore_points {
            task.abort();
        }
    }
}

/// The replicators of every policy, by name.
struct Replicators {
    running: Mutex<HashMap<String, RunningReplicator>>,
    settings: BackupSettings,
    metrics: BackupMetrics,
    /// Cancelled when the operator stops: every replicator and the Secret watch end with it.
    shutdown: CancellationToken,
}

impl Replicators {
    fn stop(&self, name: &str) {
        if let Ok(mut running) = self.running.lock()
            && let Some(replicator) = running.remove(name)
        {
            replicator.stop();
        }
    }

    /// Whether a replicator for exactly this fingerprint runs.
    fn runs(&self, name: &str, fingerprint: &str) -> bool {
        self.running.lock().is_ok_and(|running| {
            running
                .get(name)
                .is_some_and(|r| r.fingerprint == fingerprint && !r.task.is_finished())
        })
    }
}

/// Starts the controller.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    settings: BackupSettings,
    token: CancellationToken,
) -> Running {
    let metrics = BackupMetrics::new(&ctx.metrics);
    let replicators = Arc::new(Replicators {
        running: Mutex::default(),
        settings,
        metrics,
        shutdown: token.clone(),
    });
    let stopping = replicators.clone();
    let stop = token.clone();
    let client = ctx.client.clone();
    let references_stop = token.clone();
    tokio::spawn(async move {
        stop.cancelled().await;
        if let Ok(mut running) = stopping.running.lock() {
            for (_, replicator) in running.drain() {
                replicator.stop();
            }
        }
    });
    super::start(
        NAME,
        ctx,
        selector,
        concurrency,
        token,
        move |controller| references::watch(controller, &client, references_stop),
        move |guard, ctx| reconcile(guard, ctx, replicators.clone()),
    )
}

async fn reconcile(
    guard: Arc<DeserializeGuard<BackupPolicy>>,
    ctx: Arc<Context>,
    replicators: Arc<Replicators>,
) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |policy| {
        reconcile_valid(policy, ctx.clone(), replicators)
    })
    .await
}

#[tracing::instrument(skip_all, fields(backup_policy = %super::display_name(policy.as_ref())))]
async fn reconcile_valid(
    policy: Arc<BackupPolicy>,
    ctx: Arc<Context>,
    replicators: Arc<Replicators>,
) -> Result<Action> {
    let name = policy.name_any();
    let inputs = read::read(&ctx.client, &policy, &ctx.hub.operator_namespace).await?;
    let plan = match validate::validate(&policy, &inputs) {
        Ok(plan) => plan,
        Err(problems) => {
            replicators.stop(&name);
            report::write(&ctx, &policy, &problems, Vec::new()).await?;
            return Ok(Action::requeue(super::RESYNC_INTERVAL));
        }
    };
    let fingerprint = fingerprint(&policy, &plan, &inputs);
    if replicators.runs(&name, &fingerprint) {
        return Ok(Action::requeue(super::RESYNC_INTERVAL));
    }
    match launch(&policy, plan, &ctx, &replicators).await {
        Ok(running) => {
            replicators.stop(&name);
            if let Ok(mut all) = replicators.running.lock() {
                all.insert(
                    name,
                    RunningReplicator {
                        fingerprint,
                        ..running
                    },
                );
            }
            if policy.status.as_ref().and_then(|s| s.observed_generation)
                != policy.metadata.generation
            {
                report::write(&ctx, &policy, &[], report::starting()).await?;
            }
        }
        Err(problem) => {
            replicators.stop(&name);
            report::write(&ctx, &policy, &[problem], Vec::new()).await?;
        }
    }
    Ok(Action::requeue(super::RESYNC_INTERVAL))
}

/// What a replicator is started from: a change of any of it restarts the replicator.
fn fingerprint(policy: &BackupPolicy, plan: &Plan, inputs: &read::Inputs) -> String {
    let spec = serde_json::to_string(&policy.spec).unwrap_or_default();
    let s3 = plan
        .restore_points
        .as_ref()
        .and_then(|r| r.s3.as_ref())
        .map(|(_, id, key)| format!("{id}:{key}"))
        .unwrap_or_default();
    clean::content_hash(&serde_json::json!([
        policy.uid(),
        spec,
        plan.kubeconfig,
        s3,
        inputs.exchange_nodes
    ]))
}

/// Builds the target client and the restore point store and spawns the replicator.
async fn launch(
    policy: &BackupPolicy,
    plan: Plan,
    ctx: &Arc<Context>,
    replicators: &Replicators,
) -> std::result::Result<RunningReplicator, Problem> {
    let name = policy.name_any();
    let target = target::client_from_kubeconfig(&plan.kubeconfig)
        .await
        .map_err(|e| {
            Problem::new(
                "InvalidKubeconfig",
                format!("spec.target.kubeconfigSecretRef: {}", e.chain()),
            )
        })?;
    let hubs = HubStateSource {
        nodes: hub_state::nodes(&policy.spec.exchange_nodes),
        mapping: policy.spec.namespace_mapping.clone(),
        hubs: ctx.hub.clone(),
    };
    // Hub state needs the store even when the policy takes no restore points.
    let store = if plan.restore_points.is_some() || !hubs.nodes.is_empty() {
        let store = match plan.restore_points.as_ref().and_then(|p| p.s3.as_ref()) {
            None => RestorePointStore::local(&replicators.settings.restore_point_dir, &name),
            #[cfg(feature = "s3")]
            Some((storage, id, key)) => RestorePointStore::s3(storage, id, key, &name),
            #[cfg(not(feature = "s3"))]
            Some(_) => unreachable_s3(),
        }
        .map_err(|e| {
            Problem::new(
                "ObjectStorageUnusable",
                format!("spec.restorePoints: {}", e.chain()),
            )
        })?;
        Some(store)
    } else {
        None
    };
    let shelf = plan
        .restore_points
        .as_ref()
        .and(store.clone())
        .map(RestorePointShelf::new);
    let hub_replication = match &store {
        Some(store) if !hubs.nodes.is_empty() => {
            // Copies between points follow the points' retention, keeping a few at least.
            let retention =
                plan.restore_points
                    .as_ref()
                    .map(|p| p.retention)
                    .unwrap_or(Retention {
                        last: 0,
                        daily: 0,
                        weekly: 0,
                    });
            Some(Replication::start(ReplicationSettings {
                policy: name.clone(),
                source: hubs.clone(),
                primary: ctx.client.clone(),
                store: store.clone(),
                retention: Retention {
                    last: retention.last.max(hub_state::KEEP_AT_LEAST),
                    ..retention
                },
                interval: match plan.schedule {
                    None => Some(replicators.settings.hub_state_interval),
                    Some(_) => None,
                },
                metrics: replicators.metrics.clone(),
            }))
        }
        _ => None,
    };
    let restore_points = match (&shelf, &plan.restore_points) {
        (Some(shelf), Some(points)) => Some(tokio::spawn(shelf.clone().run(
            ctx.client.clone(),
            points.schedule.clone(),
            points.retention,
            plan.scope.clone(),
            plan.kinds.clone(),
            hubs,
        ))),
        _ => None,
    };
    let settings = Settings {
        policy: name.clone(),
        uid: policy.uid().unwrap_or_default(),
        kinds: plan.kinds,
        clean: CleanOptions {
            policy: name.clone(),
            mapping: policy.spec.namespace_mapping.clone(),
            warm_standby: policy.spec.warm_standby,
        },
        mode: match plan.schedule {
            Some(schedule) => Mode::Scheduled(Box::new(schedule)),
            None => Mode::Continuous,
        },
        rpo_objective: plan.rpo,
        grace: plan.grace,
        scope: plan.scope,
        apply_concurrency: replicators.settings.apply_concurrency,
        target: target::describe(&policy.spec.target.kubeconfig_secret_ref, &plan.kubeconfig),
        last_synced: policy
            .status
            .as_ref()
            .and_then(|s| {
                s.last_successful_sync_time
                    .as_ref()
                    .or(s.last_sync_time.as_ref())
            })
            .map(|t| t.0),
    };
    tracing::info!(policy = %name, "starting replication");
    let task = tokio::spawn(replicator::run(
        settings,
        ctx.clone(),
        target,
        replicators.metrics.clone(),
        shelf,
        hub_replication,
        replicators.shutdown.clone(),
    ));
    Ok(RunningReplicator {
        fingerprint: String::new(),
        task,
        restore_points,
    })
}

/// Validation refuses S3 storage when the feature is off, so a plan never carries it here.
#[cfg(not(feature = "s3"))]
fn unreachable_s3() -> std::result::Result<RestorePointStore, store::StoreError> {
    Err(store::StoreError::Corrupt {
        name: "storage".into(),
        message: "S3 support is not built in".into(),
    })
}
