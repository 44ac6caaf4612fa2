//! The DepartmentCloud controller: a department's tenant cloud.
//!
//! Each pass: **read** the peers, the objects already made and the quota in use ->
//! **validate** (pure) -> decide **capacity** (tenants queue in order of creation) -> **build**
//! the namespaces, quotas, limits, network policies and RBAC (pure) -> **apply** what differs ->
//! **prune** what the spec no longer asks for (a namespace only under `deletionPolicy: Delete`)
//! -> **report** status and events. A problem or a wait stops the pass before anything is
//! applied. Objects it made are watched into [`cache`], so that a pass reads nothing from the
//! API server and an edit or deletion is repaired at once; each tenant's periodic pass compares
//! against the API server itself. Deletion of the DepartmentCloud runs [`cleanup`] behind a
//! finalizer.

pub mod build;
pub mod cache;
pub mod capacity;
pub mod claim;
pub mod cleanup;
pub mod quotas;
pub mod read;
pub mod report;
pub mod resources;
pub mod validate;
pub mod write;

use std::sync::Arc;
use std::time::Duration;

use govdc_crds::DepartmentCloud;
use govdc_crds::department_cloud::DeletionPolicy;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::{Context, Running, instrumented};
use crate::error::Result;
use crate::pipeline::{events, finalizer};
use cache::{Caches, Kind, Source};
use capacity::Decision;
use report::Outcome;

/// The controller's label in metrics and logs.
pub const NAME: &str = "department_cloud";

/// The finalizer that runs [`cleanup`] before a DepartmentCloud goes.
pub const FINALIZER: &str = "govdc.io/department-cloud";

/// How soon a tenant whose new quotas have no status yet looks again.
const QUOTA_STATUS_RETRY: Duration = Duration::from_secs(2);

/// How often a tenant waiting for capacity looks again, in case a change went unnoticed: the
/// ledger already reconciles every waiting tenant whenever the queue or the held capacity moves.
const CAPACITY_RETRY: Duration = Duration::from_secs(30);

/// How old a tenant's last comparison against the API server may be before its next pass makes
/// one: less than the shortest [`periodic`] requeue, so that every periodic pass compares.
const COMPARE_EVERY: Duration = Duration::from_secs(super::RESYNC_INTERVAL.as_secs() * 3 / 4);

/// How soon a pass whose due comparison was put off looks again (see [`cache::Caches::source`]).
const COMPARE_SOON: Duration = Duration::from_secs(2);

/// `interval` less up to a fifth of it, at random. Tenants made or listed together would
/// otherwise all come due at once, every interval, and a spec change arriving then would queue
/// behind a thousand passes; spread, they come due a few at a time.
fn jittered(interval: Duration) -> Duration {
    let random = getrandom::u64().unwrap_or_default();
    interval.mul_f64(1.0 - 0.2 * (random as f64 / u64::MAX as f64))
}

/// When a converged tenant looks again, to repair drift no watch reported.
fn periodic() -> Duration {
    jittered(super::RESYNC_INTERVAL)
}

/// Starts the controller, watching the objects DepartmentClouds make so drift is repaired.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: CancellationToken,
) -> Running {
    let client = ctx.client.clone();
    let ledger = ctx.capacity.clone();
    // Listed as a stream of objects (watch-list) where the server can: see the caches' watches.
    let scope = watcher::Config {
        initial_list_strategy: ctx.initial_lists.clone(),
        ..selector.map_or_else(watcher::Config::default, |s| {
            watcher::Config::default().labels(s)
        })
    };
    let caches = Caches::new(concurrency, ctx.initial_lists.clone());
    let feeding = caches.clone();
    super::start(
        NAME,
        ctx,
        selector,
        concurrency,
        shutdown,
        move |controller| {
            ledger.attach(controller.store());
            feeding.attach(controller.store());
            let controller = controller.reconcile_on(ledger.rechecks());
            // A peer that appears or goes away reconciles the departments naming it at once.
            // Passes read peers from the controller's own cache, so each change waits for it.
            let clouds = controller.store();
            let controller = controller.watches_stream(
                super::references::spec_changes_seen_by::<DepartmentCloud>(
                    client.clone(),
                    scope,
                    clouds.clone(),
                ),
                super::references::department_cloud_peers(clouds),
            );
            // The objects tenants made, cached; a deletion or someone else's write reconciles
            // the owner. The operator's own writes trigger nothing: each pass already reports
            // what it wrote, and at a thousand tenants those echoes would outnumber the work.
            controller.reconcile_on(feeding.triggers(&client))
        },
        move |guard, ctx| reconcile(guard, ctx, caches.clone()),
    )
}

/// Whether the operator's apply is the latest write to an object's content: no other manager
/// changed more than its status at the same second or later (managedFields times have second
/// precision, so ties count as drift). Status written by others (a quota's usage) is not drift;
/// the tenant's status picks it up on the next pass.
pub fn last_written_by_operator(meta: &ObjectMeta) -> bool {
    let entries = meta.managed_fields.as_deref().unwrap_or_default();
    let ours = entries
        .iter()
        .filter(|e| {
            // Its applies, and the create that claims a new namespace.
            e.manager.as_deref() == Some(super::FIELD_MANAGER)
                && matches!(e.operation.as_deref(), Some("Apply" | "Update"))
                && e.subresource.as_deref() != Some("status")
        })
        .filter_map(|e| e.time.as_ref().map(|t| t.0))
        .max();
    let Some(ours) = ours else { return false };
    !entries
        .iter()
        .filter(|e| {
            e.manager.as_deref() != Some(super::FIELD_MANAGER)
                && e.subresource.as_deref() != Some("status")
        })
        .any(|e| e.time.as_ref().is_none_or(|t| t.0 >= ours))
}

async fn reconcile(
    guard: Arc<DeserializeGuard<DepartmentCloud>>,
    ctx: Arc<Context>,
    caches: Arc<Caches>,
) -> Result<Action> {
    let handle = ctx.clone();
    instrumented(NAME, &ctx, &guard, |cloud| async move {
        let ctx = handle;
        let finalized = cloud.finalizers().iter().any(|f| f == FINALIZER);
        if cloud.metadata.deletion_timestamp.is_some() {
            if finalized {
                cleanup::cleanup(&ctx, &cloud).await?;
                finalizer::set(&ctx.client, cloud.as_ref(), FINALIZER, false).await?;
            }
            caches.forget(&cloud.name_any());
            return Ok(Action::await_change());
        }
        if !finalized {
            // In the same pass as provisioning: the finalizer's write is no new generation and
            // would trigger nothing.
            finalizer::set(&ctx.client, cloud.as_ref(), FINALIZER, true).await?;
        }
        provision(cloud, ctx, caches).await
    })
    .await
}

/// Reports a spec that cannot be provisioned. A refused tenant holds no place in the queue, and
/// no capacity unless quotas of an earlier generation stand in its namespaces (a refused pass
/// changes nothing).
async fn refuse(
    ctx: &Context,
    cloud: &DepartmentCloud,
    inputs: &read::Inputs,
    problems: &[crate::pipeline::report::Problem],
) -> Result<Action> {
    ctx.capacity
        .refuse(&cloud.name_any(), inputs.standing_quotas());
    let holds_capacity = ctx
        .capacity
        .capacity()
        .map(|_| ctx.capacity.holds(&cloud.name_any()));
    report::write(
        ctx,
        cloud,
        &Outcome::Invalid {
            problems,
            holds_capacity,
        },
    )
    .await?;
    Ok(Action::requeue(periodic()))
}

/// One pass: from the caches, unless the tenant's periodic comparison against the API server is
/// due (or the caches are not listed yet); a pass from the caches that the API server refuses
/// because an object is not as the caches saw it is made again from the API server. A spec
/// change is written from the caches even when the comparison is due, and the comparison
/// follows in a pass of its own: the first write does not wait for a dozen reads.
#[tracing::instrument(skip_all, fields(department_cloud = %cloud.name_any()))]
async fn provision(
    cloud: Arc<DepartmentCloud>,
    ctx: Arc<Context>,
    caches: Arc<Caches>,
) -> Result<Action> {
    let name = cloud.name_any();
    let spec_change =
        cloud.status.as_ref().and_then(|s| s.observed_generation) != cloud.metadata.generation;
    let permit = match caches.source(&name, COMPARE_EVERY, spec_change).await {
        Source::Caches { compare_soon } => {
            let inputs = read::read_cached(&caches, &cloud);
            match provision_from(&cloud, &ctx, &caches, inputs).await {
                Err(error) if write::is_stale(&error) => {
                    tracing::debug!(error = %error.chain(), "the caches were behind; reading from the API server");
                    None
                }
                // The comparison's own pass says when to look next.
                Ok(_) if compare_soon => return Ok(Action::requeue(jittered(COMPARE_SOON))),
                result => return result,
            }
        }
        Source::ApiServer(permit) => permit,
    };
    let inputs = read::read(&ctx.client, &cloud).await?;
    let result = provision_from(&cloud, &ctx, &caches, inputs).await;
    drop(permit);
    if result.is_ok() {
        caches.compared(&name);
    }
    result
}

async fn provision_from(
    cloud: &DepartmentCloud,
    ctx: &Context,
    caches: &Caches,
    inputs: read::Inputs,
) -> Result<Action> {
    // Quantities and resource names first: the quota plan is computed from them.
    let mut problems = validate::resources(&cloud.spec);
    let quota_plan = match quotas::plan(&cloud.spec) {
        Ok(plan) if problems.is_empty() => Some(plan),
        Ok(_) => None,
        Err(error) => {
            problems.push(crate::pipeline::report::Problem::new(
                "InvalidQuantity",
                format!("spec: {error}"),
            ));
            None
        }
    };
    if let Some(plan) = &quota_plan {
        problems = validate::validate(cloud, &inputs, plan, ctx.capacity.capacity());
    }
    let Some(quota_plan) = quota_plan.filter(|_| problems.is_empty()) else {
        return refuse(ctx, cloud, &inputs, &problems).await;
    };

    let demand = capacity::demand(&cloud.spec).unwrap_or_default();
    let decision = ctx
        .capacity
        .decide(cloud, &demand, inputs.standing_quotas());
    if let Decision::Waiting { .. } = decision {
        report::write(ctx, cloud, &Outcome::Waiting(&decision)).await?;
        return Ok(Action::requeue(jittered(CAPACITY_RETRY)));
    }

    let mut desired = build::build(cloud, &quota_plan)?;
    desired.extend(build::operator_bindings(cloud, ctx.tenant_access.as_ref())?);
    let owner = build::owner(cloud);
    let applied = match write::apply(
        &ctx.client,
        caches,
        &owner,
        super::FIELD_MANAGER,
        &desired,
        &inputs,
    )
    .await
    {
        Ok(Ok(applied)) => applied,
        Ok(Err(taken)) => {
            let problems: Vec<_> = taken
                .iter()
                .map(|namespace| validate::namespace_conflict(namespace))
                .collect();
            return refuse(ctx, cloud, &inputs, &problems).await;
        }
        Err(error) => {
            report::write(ctx, cloud, &Outcome::Failed(error.chain())).await?;
            return Err(error);
        }
    };
    let keep = write::keys(&desired);
    let may_delete_namespaces = cloud.spec.deletion_policy == DeletionPolicy::Delete;
    let pruned = write::prune(&ctx.client, &inputs.owned, &keep, |owned| {
        owned.kind != Kind::Namespace || may_delete_namespaces
    })
    .await?;

    let reference = cloud.object_ref(&());
    let was_provisioned = cloud.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
    });
    if was_provisioned && !applied.written.is_empty() {
        events::publish(
            &ctx.recorder,
            &reference,
            EventType::Normal,
            "Applied",
            "Reconcile",
            format!("wrote {}", applied.written.join(", ")),
        )
        .await;
    }
    if !pruned.is_empty() {
        events::publish(
            &ctx.recorder,
            &reference,
            EventType::Normal,
            "Pruned",
            "Reconcile",
            format!("deleted {}", pruned.join(", ")),
        )
        .await;
    }
    // A quota just written is enforced once the quota controller has computed its status (until
    // then the API server refuses what it limits), a moment later; the caches see that and
    // reconcile the tenant, which then reports Ready with the sums. So the status is written
    // once, when it is true, instead of Ready now and the sums a moment later. The retry is for
    // a quota controller that is slow or absent: a pass that writes nothing reports as it is.
    let quotas_written = applied
        .written
        .iter()
        .any(|what| what.starts_with("ResourceQuota "));
    if !quotas_written {
        report::write(
            ctx,
            cloud,
            &Outcome::Provisioned {
                decision: &decision,
                objects: &applied.objects,
            },
        )
        .await?;
    }
    let quota_status_pending = quotas_written
        || applied.objects.iter().any(|(resource, object)| {
            resource.kind == "ResourceQuota" && object.data["status"]["hard"].is_null()
        });
    Ok(Action::requeue(if quota_status_pending {
        QUOTA_STATUS_RETRY
    } else {
        periodic()
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn entry(manager: &str, operation: &str, second: i64) -> ManagedFieldsEntry {
        ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            time: Some(Time(jiff::Timestamp::from_second(second).expect("time"))),
            ..Default::default()
        }
    }

    fn meta(entries: Vec<ManagedFieldsEntry>) -> ObjectMeta {
        ObjectMeta {
            managed_fields: Some(entries),
            ..Default::default()
        }
    }

    #[test]
    fn periodic_passes_are_spread_over_the_last_fifth_of_the_interval() {
        let interval = Duration::from_secs(300);
        let passes: Vec<Duration> = (0..200).map(|_| jittered(interval)).collect();
        assert!(
            passes
                .iter()
                .all(|d| *d <= interval && *d >= interval.mul_f64(0.8))
        );
        let spread = passes.iter().max().copied().unwrap_or_default()
            - passes.iter().min().copied().unwrap_or_default();
        assert!(spread > Duration::from_secs(30), "spread {spread:?}");
        assert!(COMPARE_EVERY < interval.mul_f64(0.8));
    }

    #[test]
    fn the_operators_own_apply_triggers_nothing() {
        assert!(last_written_by_operator(&meta(vec![
            entry("kube-controller-manager", "Update", 5),
            entry("govdc-operator", "Apply", 10)
        ])));
    }

    #[test]
    fn a_later_or_simultaneous_write_by_someone_else_is_drift() {
        assert!(!last_written_by_operator(&meta(vec![
            entry("govdc-operator", "Apply", 10),
            entry("kubectl-edit", "Update", 11)
        ])));
        assert!(!last_written_by_operator(&meta(vec![
            entry("govdc-operator", "Apply", 10),
            entry("kubectl-edit", "Update", 10)
        ])));
    }

    #[test]
    fn a_status_update_by_a_controller_is_not_drift() {
        let mut usage = entry("kube-controller-manager", "Update", 12);
        usage.subresource = Some("status".into());
        assert!(last_written_by_operator(&meta(vec![
            entry("govdc-operator", "Apply", 10),
            usage
        ])));
    }

    #[test]
    fn an_object_the_operator_never_applied_is_not_its_own_write() {
        assert!(!last_written_by_operator(&meta(vec![entry(
            "kubectl", "Update", 1
        )])));
        assert!(!last_written_by_operator(&ObjectMeta::default()));
    }
}
