//! One controller per govdc resource. Each is a pipeline of small modules — `read` what the
//! resource refers to, `validate` it (pure), `build` the desired objects (pure), then the shared
//! [`crate::pipeline`] steps apply, prune and report — wired together in the controller's
//! `mod.rs`. This module holds what they share: the context, instrumentation and the handling of
//! objects that do not deserialize.

use std::fmt::Debug;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::ApiResource;
use kube::core::error_boundary::{DeserializeGuard, InvalidObject};
use kube::runtime::controller::{Action, Config as ControllerConfig};
use kube::runtime::events::{EventType, Recorder};
use kube::runtime::reflector::{self, Store};
use kube::runtime::{Controller, WatchStreamExt, predicates, watcher};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio_util::sync::CancellationToken;

use crate::error::{Error, Result};
use crate::pipeline::conditions::{self, Observed};
use crate::pipeline::report::{ResourceStatus, report};
use crate::pipeline::{events, status};
use crate::runtime::metrics::Metrics;

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "govdc-operator";

/// How often a converged object is looked at again, to repair drift no watch reported.
pub const RESYNC_INTERVAL: Duration = Duration::from_secs(300);

/// What every reconcile gets.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// How watches that list many objects list them first: streamed when the API server can
    /// (see [`crate::runtime::watch_list`]), in pages otherwise.
    pub initial_lists: kube::runtime::watcher::InitialListStrategy,
    /// Publishes events.
    pub recorder: Recorder,
    /// The operator's metrics.
    pub metrics: Metrics,
    /// The data center's capacity and the tenants holding it.
    pub capacity: Arc<department_cloud::capacity::CapacityLedger>,
    /// How hub nodes are deployed and reached.
    pub hub: exchange_node::HubSettings,
    /// How datasets are published.
    pub datasets: open_dataset::DatasetSettings,
    /// Who the operator is, for the binding it makes for itself in each tenant namespace; None
    /// when it runs without one.
    pub tenant_access: Option<department_cloud::build::OperatorAccess>,
}

/// A govdc resource whose status records the generation it describes.
pub trait Reconciled:
    Resource<DynamicType = ()> + Clone + DeserializeOwned + Debug + Send + Sync + 'static
{
    /// The resource's status type.
    type Status: ResourceStatus;
    /// The generation the status describes.
    fn observed_generation(&self) -> Option<i64>;
    /// The status as last read.
    fn current_status(&self) -> Option<&Self::Status>;
}

impl<K> Reconciled for K
where
    K: kube::core::object::HasStatus
        + Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    K::Status: ResourceStatus,
{
    type Status = K::Status;
    fn observed_generation(&self) -> Option<i64> {
        self.status().and_then(ResourceStatus::observed_generation)
    }
    fn current_status(&self) -> Option<&K::Status> {
        self.status()
    }
}

/// A handle on a running controller: its watch cache, for readiness and the queue-depth gauge.
pub struct Running {
    /// Resolves once the controller's watch has listed everything.
    pub synced: futures::future::BoxFuture<'static, ()>,
    /// Runs the controller until shutdown.
    pub task: futures::future::BoxFuture<'static, ()>,
}

/// Builds a controller for `K` with the shared settings (label selector, concurrency, graceful
/// shutdown, a watch that survives objects that fail to deserialize) and the queue-depth gauge.
pub fn start<K, F, Fut>(
    name: &'static str,
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: CancellationToken,
    configure: impl FnOnce(Controller<DeserializeGuard<K>>) -> Controller<DeserializeGuard<K>>,
    reconcile: F,
) -> Running
where
    K: Reconciled,
    F: FnMut(Arc<DeserializeGuard<K>>, Arc<Context>) -> Fut + Send + 'static,
    Fut: Future<Output = Result<Action>> + Send + 'static,
{
    let api: Api<DeserializeGuard<K>> = Api::all(ctx.client.clone());
    let mut config = watcher::Config::default().any_semantic();
    if let Some(selector) = selector {
        config = config.labels(selector);
    }
    let (store, writer) = reflector::store();
    // Only a new generation (a spec change, or deletion starting) triggers a reconcile: the
    // operator's own status and finalizer writes would otherwise each bring one more pass.
    let changes = watcher(api, config)
        .default_backoff()
        // The store keeps every object for the operator's lifetime, and no pass reads their
        // managedFields, which are often larger than the rest of the object.
        .modify(|guard: &mut DeserializeGuard<K>| guard.meta_mut().managed_fields = None)
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let controller = configure(Controller::for_stream(changes, store.clone()))
        .with_config(ControllerConfig::default().concurrency(concurrency));
    // Retries back off per object; a success forgets its failures.
    let backoff = Arc::new(backoff::Backoff::default());
    let forget = backoff.clone();
    let mut reconcile = reconcile;
    let reconcile = move |guard: Arc<DeserializeGuard<K>>, ctx: Arc<Context>| {
        let (key, _) = backoff::identity(guard.as_ref());
        let pass = reconcile(guard, ctx);
        let forget = forget.clone();
        async move {
            let result = pass.await;
            if result.is_ok() {
                forget.succeeded(&key);
            }
            result
        }
    };
    let error_policy = move |guard: Arc<DeserializeGuard<K>>, error: &Error, _: Arc<Context>| {
        let (key, generation) = backoff::identity(guard.as_ref());
        Action::requeue(backoff.failed(key, generation, error))
    };
    let synced_store = store.clone();
    let synced = Box::pin(async move {
        // The store's readiness is a oneshot that remembers only the last waker, and the
        // controller waits on it too: poll again now and then instead of trusting one wake-up.
        while tokio::time::timeout(Duration::from_millis(200), synced_store.wait_until_ready())
            .await
            .is_err()
        {}
    });
    let gauge_task = watch_queue_depth(name, store, ctx.metrics.clone(), shutdown.clone());
    let task = Box::pin(async move {
        let gauges = tokio::spawn(gauge_task);
        controller
            .graceful_shutdown_on(shutdown.cancelled_owned())
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                match result {
                    Ok((object, _)) => {
                        tracing::debug!(controller = name, object = %object, "reconciled")
                    }
                    // A reconcile's own error, told with its causes (its `Display` is only the
                    // summary); the text is what kube-runtime's `Display` gave before.
                    Err(kube::runtime::controller::Error::ReconcilerFailed(error, object)) => {
                        tracing::debug!(
                            controller = name,
                            error =
                                format!("reconciler for object {object} failed: {}", error.chain()),
                            "reconcile did not finish"
                        )
                    }
                    Err(error) => {
                        tracing::debug!(controller = name, %error, "reconcile did not finish")
                    }
                }
            })
            .await;
        gauges.abort();
        tracing::info!(controller = name, "controller stopped");
    });
    Running { synced, task }
}

/// Keeps `govdc_queue_depth` and `govdc_watched_objects` up to date from the watch cache.
async fn watch_queue_depth<K: Reconciled>(
    name: &'static str,
    store: Store<DeserializeGuard<K>>,
    metrics: Metrics,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => return,
        }
        let objects = store.state();
        let pending = objects
            .iter()
            .filter(|guard| match &guard.0 {
                Ok(object) => object.meta().generation != object.observed_generation(),
                Err(_) => false,
            })
            .count();
        metrics
            .queue_depth
            .with_label_values(&[name])
            .set(i64::try_from(pending).unwrap_or(i64::MAX));
        metrics
            .watched_objects
            .with_label_values(&[name])
            .set(i64::try_from(objects.len()).unwrap_or(i64::MAX));
    }
}

/// Runs one reconcile of `guard` with metrics, a span, and a Warning event carrying the whole
/// error chain when it fails. An object that does not deserialize is told so in its status and
/// waits for a change.
pub async fn instrumented<K, Fut>(
    name: &'static str,
    ctx: &Context,
    guard: &DeserializeGuard<K>,
    reconcile: impl FnOnce(Arc<K>) -> Fut,
) -> Result<Action>
where
    K: Reconciled,
    Fut: Future<Output = Result<Action>>,
{
    let started = Instant::now();
    ctx.metrics.reconciles.with_label_values(&[name]).inc();
    let result = match &guard.0 {
        Ok(object) => reconcile(Arc::new(object.clone())).await,
        Err(invalid) => report_invalid::<K>(ctx, invalid).await,
    };
    ctx.metrics
        .reconcile_duration
        .with_label_values(&[name])
        .observe(started.elapsed().as_secs_f64());
    if let Err(error) = &result {
        ctx.metrics
            .reconcile_errors
            .with_label_values(&[name, error.reason()])
            .inc();
        let reference = match &guard.0 {
            Ok(object) => object.object_ref(&()),
            Err(invalid) => invalid_reference::<K>(invalid),
        };
        tracing::warn!(controller = name, object = ?reference.name, error = %error.chain(), "reconcile failed");
        events::publish(
            &ctx.recorder,
            &reference,
            EventType::Warning,
            error.reason(),
            "Reconcile",
            error.chain(),
        )
        .await;
        if let Ok(object) = &guard.0
            && !REPORT_THEIR_OWN_FAILURES.contains(&name)
            && !matches!(error, Error::Status { .. })
        {
            // The failure shows in the status too, in the API server's words; a status that
            // cannot be written is told by the event and log above.
            if let Err(status_error) = report_failure(ctx, object, error).await {
                tracing::warn!(controller = name, error = %status_error.chain(), "the failure could not be reported in status");
            }
        }
    }
    result
}

/// Controllers that write a failed pass's conditions themselves (DepartmentCloud), or whose
/// status has one writer of its own (BackupPolicy's replicator).
const REPORT_THEIR_OWN_FAILURES: [&str; 2] = [department_cloud::NAME, backup_policy::NAME];

/// Marks the object `Ready=False` and `Degraded=True` with the error's reason and message, the
/// rest of its status unchanged.
async fn report_failure<K: Reconciled>(ctx: &Context, object: &K, error: &Error) -> Result<()> {
    let current = object.current_status();
    let observed = [
        Observed::no(conditions::READY, error.reason(), error.chain()),
        Observed::yes(conditions::DEGRADED, error.reason(), error.chain()),
        Observed::yes(
            conditions::PROGRESSING,
            "Retrying",
            "the last pass failed; retrying with back-off",
        ),
    ];
    let next = current.cloned().unwrap_or_default();
    report(ctx, object, current, next, &observed, &[]).await?;
    Ok(())
}

fn invalid_reference<K: Reconciled>(
    invalid: &InvalidObject,
) -> k8s_openapi::api::core::v1::ObjectReference {
    k8s_openapi::api::core::v1::ObjectReference {
        api_version: Some(K::api_version(&()).into_owned()),
        kind: Some(K::kind(&()).into_owned()),
        name: invalid.metadata.name.clone(),
        namespace: invalid.metadata.namespace.clone(),
        uid: invalid.metadata.uid.clone(),
        ..Default::default()
    }
}

/// Tells an object that does not deserialize why, in its Ready condition, and waits for a change.
async fn report_invalid<K: Reconciled>(ctx: &Context, invalid: &InvalidObject) -> Result<Action> {
    let name = invalid.metadata.name.clone().unwrap_or_default();
    tracing::warn!(kind = %K::kind(&()), %name, error = %invalid.error, "object does not match the govdc schema");
    let conditions = conditions::merge(
        &[],
        &[Observed::no(
            conditions::READY,
            "InvalidSpec",
            format!("the object does not match the schema: {}", invalid.error),
        )],
        invalid.metadata.generation,
        &conditions::now(),
    );
    status::write(
        &ctx.client,
        FIELD_MANAGER,
        &ApiResource::erase::<K>(&()),
        invalid.metadata.namespace.as_deref(),
        &name,
        serde_json::json!({ "conditions": conditions, "observedGeneration": invalid.metadata.generation }),
    )
    .await?;
    events::publish(
        &ctx.recorder,
        &invalid_reference::<K>(invalid),
        EventType::Warning,
        "InvalidSpec",
        "Validate",
        invalid.error.clone(),
    )
    .await;
    Ok(Action::await_change())
}

/// The name of an object, with its namespace when it has one.
pub fn display_name<K: Resource>(object: &K) -> String {
    match object.namespace() {
        Some(ns) => format!("{ns}/{}", object.name_any()),
        None => object.name_any(),
    }
}

pub mod backoff;
pub mod backup_policy;
pub mod department_cloud;
pub mod exchange_node;
pub mod open_dataset;
pub mod references;
