//! The ExchangeNode controller: one node of the data sharing and exchange hub.
//!
//! Each pass: **read** the parent chain, the node's key, the departments allowed to join and the
//! objects already made -> **validate** (pure: networks never mix, the parent sits above its
//! child, no cycle) -> make the node's signing key once -> **build** the hub's ConfigMap,
//! ServiceAccount, Service, StatefulSet, NetworkPolicy and PodDisruptionBudget (pure) -> **apply**
//! what differs -> **prune** what the spec no longer asks for -> **sync** the running hub over
//! gRPC (parent, membership) -> **report** status and events.
//!
//! The objects carry owner references, so deleting the ExchangeNode deletes them; the
//! StatefulSet's volume claims are kept (the node's data outlives the resource).

pub mod build;
pub mod read;
pub mod report;
pub mod signing_key;
pub mod sync;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use govdc_crds::ExchangeNode;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use kube::runtime::watcher;
use kube::{Api, ResourceExt};
use tokio_util::sync::CancellationToken;

use super::{Context, Running, instrumented, references};
use crate::error::Result;
use crate::hub_client::HubError;
use crate::pipeline::ownership::{MANAGED_BY, MANAGER, OWNER_KIND};
use crate::pipeline::report::Problem;
use crate::pipeline::{apply, ownership, prune};

/// The controller's label in metrics and logs.
pub const NAME: &str = "exchange_node";

/// How often a node is looked at again: the heartbeat, the parent connection and the catalog
/// size live in the hub, which no watch reports.
const HUB_POLL_INTERVAL: Duration = Duration::from_secs(10);

/// How the operator deploys and reaches hub nodes.
#[derive(Clone, Debug, Default)]
pub struct HubSettings {
    /// The govdc-hub image.
    pub image: String,
    /// Endpoints that replace a node's cluster DNS name, by `namespace/name`.
    pub endpoints: BTreeMap<String, String>,
    /// The operator's namespace, allowed through every hub's NetworkPolicy.
    pub operator_namespace: String,
}

impl HubSettings {
    /// Where the operator (and the node's children) reach the hub of `namespace/name`.
    pub fn endpoint(&self, namespace: &str, name: &str) -> String {
        self.endpoints
            .get(&format!("{namespace}/{name}"))
            .cloned()
            .unwrap_or_else(|| build::service_endpoint(namespace, name))
    }
}

/// Starts the controller, watching the objects ExchangeNodes make so drift is repaired and the
/// StatefulSet's readiness shows in the status.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: CancellationToken,
) -> Running {
    let client = ctx.client.clone();
    let scope = selector.map_or_else(watcher::Config::default, |s| {
        watcher::Config::default().labels(s)
    });
    super::start(
        NAME,
        ctx,
        selector,
        concurrency,
        shutdown,
        move |controller| {
            let owned = watcher::Config::default()
                .labels(&format!("{MANAGED_BY}={MANAGER},{OWNER_KIND}=ExchangeNode"));
            let nodes = controller.store();
            controller
                .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
                .owns(Api::<Service>::all(client.clone()), owned.clone())
                .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
                .owns(Api::<ServiceAccount>::all(client.clone()), owned.clone())
                .owns(Api::<NetworkPolicy>::all(client.clone()), owned.clone())
                .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned)
                // A parent that appears, changes or goes away, and the Secrets of its key or of a
                // remote parent's CA and token, reconcile the children at once.
                .watches_stream(
                    references::spec_changes::<ExchangeNode>(client.clone(), scope),
                    references::exchange_node_children(nodes.clone()),
                )
                .watches_stream(
                    references::any_changes::<Secret>(
                        client,
                        references::exchange_node_secret_namespaces(nodes.clone()),
                    ),
                    references::exchange_node_secrets(nodes),
                )
        },
        reconcile,
    )
}

async fn reconcile(
    guard: Arc<DeserializeGuard<ExchangeNode>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |node| {
        reconcile_valid(node, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(exchange_node = %super::display_name(node.as_ref())))]
async fn reconcile_valid(node: Arc<ExchangeNode>, ctx: Arc<Context>) -> Result<Action> {
    if node.metadata.deletion_timestamp.is_some() {
        // Owner references hand the objects to the garbage collector.
        return Ok(Action::await_change());
    }
    let inputs = read::read(&ctx.client, &node).await?;
    let problems = validate::validate(&node, &inputs);
    if !problems.is_empty() {
        report::write(&ctx, &node, &inputs, report::Outcome::Invalid(&problems)).await?;
        // A missing Secret is seen at once through the Secret watch, but that watch needs to
        // list Secrets cluster-wide, which the chart's least-privilege RBAC withholds: look
        // again soon rather than in five minutes.
        let waits_for_a_secret = problems
            .iter()
            .any(|p| matches!(p.reason, "CaSecretNotFound" | "TokenSecretNotFound"));
        return Ok(Action::requeue(if waits_for_a_secret {
            HUB_POLL_INTERVAL
        } else {
            super::RESYNC_INTERVAL
        }));
    }
    let desired = build::objects(&node, &inputs, &ctx.hub)?;
    let taken = ownership::made_by_others(&ctx.client, &desired, &inputs.existing).await?;
    if !taken.is_empty() {
        let problems = [Problem::new(
            "OwnershipConflict",
            format!(
                "{} exist without govdc's ownership mark for this ExchangeNode; nothing was written (move them away, or name the node differently)",
                taken.join(", ")
            ),
        )];
        report::write(&ctx, &node, &inputs, report::Outcome::Invalid(&problems)).await?;
        // Objects without govdc's labels are not watched: look again soon for them to go.
        return Ok(Action::requeue(HUB_POLL_INTERVAL));
    }
    let signing_key = signing_key::ensure(&ctx.client, &node, inputs.key_secret.as_ref()).await?;
    let applied = apply::apply_changed(
        &ctx.client,
        super::FIELD_MANAGER,
        &desired,
        &inputs.existing,
    )
    .await?;
    let keep: BTreeSet<_> = desired.iter().map(apply::DesiredObject::key).collect();
    let pruned = prune::prune(&ctx.client, &inputs.existing, &keep, |_| true).await?;
    let plan = build::hub_plan(&node, &inputs, &ctx.hub, &signing_key)?;
    let observed = if node.spec.replicas == 0 {
        // A stopped node has no hub to talk to; the status says so.
        Err(HubError::Stopped)
    } else {
        match sync::sync(&plan).await {
            // A hub that does not answer is often a pod that cannot run: say why.
            Err(error) => {
                let pod = format!("{}-0", build::base_name(&node));
                let namespace = node.namespace().unwrap_or_default();
                Err(
                    match read::hub_pod_problem(&ctx.client, &namespace, &pod).await {
                        Some(state) => HubError::PodNotRunning {
                            pod,
                            state,
                            source: Box::new(error),
                        },
                        None => error,
                    },
                )
            }
            synced => synced,
        }
    };
    if let Some(error) = observed
        .as_ref()
        .err()
        .filter(|e| !matches!(e, HubError::Stopped))
    {
        tracing::info!(endpoint = %plan.endpoint, %error, "hub did not answer");
    }
    report::write(
        &ctx,
        &node,
        &inputs,
        report::Outcome::Deployed {
            applied: &applied,
            pruned: &pruned,
            plan: &plan,
            hub: observed.as_ref(),
        },
    )
    .await?;
    tracing::debug!(node = %node.name_any(), "hub node reconciled");
    Ok(Action::requeue(HUB_POLL_INTERVAL))
}
