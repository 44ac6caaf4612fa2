//! The objects a BackupPolicy names — its target's kubeconfig Secret, its restore points'
//! credentials Secret, its ExchangeNodes — watched and mapped back to the policies naming them,
//! so that a policy is reconciled within a second when one of them appears, changes or goes
//! away (a policy created before its Secret starts as soon as the Secret exists).
//!
//! Both watches are metadata-only: the operator never holds Secret values it does not use.
//! Secrets are watched namespace by namespace, only in the namespaces policies name, because the
//! operator may read Secrets only where govdc works.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::{SinkExt, StreamExt, TryStreamExt};
use govdc_crds::{BackupPolicy, ExchangeNode};
use k8s_openapi::api::core::v1::Secret;
use kube::api::PartialObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{Controller, WatchStreamExt, watcher};
use kube::{Api, Client, ResourceExt};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// How often the set of namespaces whose Secrets are watched is brought in line with the
/// policies.
const NAMESPACES_INTERVAL: Duration = Duration::from_millis(500);

/// How long a namespace whose Secrets the operator may not watch waits before it is tried again:
/// RBAC rarely changes, and its policies still see their Secrets at each periodic pass.
const REFUSED_RETRY: Duration = Duration::from_secs(300);

type Policy = DeserializeGuard<BackupPolicy>;

/// The Secrets (namespace, name) a policy names.
pub fn secrets(policy: &BackupPolicy) -> Vec<(String, String)> {
    let target = &policy.spec.target.kubeconfig_secret_ref;
    let namespace = target.namespace.clone().unwrap_or_default();
    let mut names = vec![(namespace.clone(), target.name.clone())];
    if let Some(storage) = policy
        .spec
        .restore_points
        .as_ref()
        .and_then(|r| r.storage.as_ref())
    {
        let reference = &storage.credentials_secret_ref;
        names.push((
            reference.namespace.clone().unwrap_or(namespace),
            reference.name.clone(),
        ));
    }
    names
}

/// The ExchangeNodes (namespace, name) a policy lists.
pub fn exchange_nodes(policy: &BackupPolicy) -> Vec<(String, String)> {
    policy
        .spec
        .exchange_nodes
        .iter()
        .map(|n| (n.namespace.clone().unwrap_or_default(), n.name.clone()))
        .collect()
}

/// The policies in `store` for which `names` yields `(namespace, name)`.
fn referring(
    store: &Store<Policy>,
    names: fn(&BackupPolicy) -> Vec<(String, String)>,
    namespace: &str,
    name: &str,
) -> Vec<ObjectRef<Policy>> {
    store
        .state()
        .iter()
        .filter_map(|guard| guard.0.as_ref().ok())
        .filter(|policy| {
            names(policy)
                .iter()
                .any(|(ns, n)| ns == namespace && n == name)
        })
        .map(|policy| ObjectRef::new(&policy.name_any()))
        .collect()
}

/// Adds the watches of what policies name to the controller.
pub fn watch(
    controller: Controller<Policy>,
    client: &Client,
    shutdown: CancellationToken,
) -> Controller<Policy> {
    let store = controller.store();
    // What a policy takes from its ExchangeNodes is whether each exists (its uid): a node that
    // appears, goes or is made anew. Their status, rewritten with every heartbeat, is not.
    let mut known: BTreeSet<String> = BTreeSet::new();
    let nodes = watcher(
        Api::<PartialObjectMeta<ExchangeNode>>::all(client.clone()),
        watcher::Config::default().any_semantic(),
    )
    .default_backoff()
    .try_filter_map(move |event| {
        let changed = match event {
            watcher::Event::Apply(node) | watcher::Event::InitApply(node) => {
                known.insert(node.uid().unwrap_or_default()).then_some(node)
            }
            watcher::Event::Delete(node) => {
                known.remove(&node.uid().unwrap_or_default());
                Some(node)
            }
            watcher::Event::Init | watcher::Event::InitDone => None,
        };
        futures::future::ready(Ok(changed))
    });
    let node_store = store.clone();
    let controller =
        controller.watches_stream(nodes, move |node: PartialObjectMeta<ExchangeNode>| {
            referring(
                &node_store,
                exchange_nodes,
                &node.namespace().unwrap_or_default(),
                &node.name_any(),
            )
        });
    let (tx, rx) = futures::channel::mpsc::channel(256);
    tokio::spawn(watch_secrets(client.clone(), store, tx, shutdown));
    controller.reconcile_on(rx)
}

/// Keeps one metadata watch of Secrets in each namespace a policy names a Secret in, and sends
/// the policies naming a Secret that changed.
async fn watch_secrets(
    client: Client,
    store: Store<Policy>,
    tx: futures::channel::mpsc::Sender<ObjectRef<Policy>>,
    shutdown: CancellationToken,
) {
    let store = Arc::new(store);
    let mut watches: BTreeMap<String, JoinHandle<bool>> = BTreeMap::new();
    let mut refused: BTreeMap<String, std::time::Instant> = BTreeMap::new();
    let mut tick = tokio::time::interval(NAMESPACES_INTERVAL);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.cancelled() => break,
        }
        let wanted: BTreeSet<String> = store
            .state()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .flat_map(secrets)
            .map(|(namespace, _)| namespace)
            .filter(|namespace| !namespace.is_empty())
            .collect();
        let mut finished = Vec::new();
        watches.retain(|namespace, task| {
            if task.is_finished() {
                finished.push(namespace.clone());
                return false;
            }
            let keep = wanted.contains(namespace);
            if !keep {
                task.abort();
            }
            keep
        });
        for namespace in finished {
            // A watch ends only when the operator may not list the namespace's Secrets.
            refused.insert(namespace, std::time::Instant::now() + REFUSED_RETRY);
        }
        refused.retain(|_, until| *until > std::time::Instant::now());
        for namespace in wanted {
            if watches.contains_key(&namespace) || refused.contains_key(&namespace) {
                continue;
            }
            let api: Api<PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), &namespace);
            let store = store.clone();
            let mut tx = tx.clone();
            let watched = namespace.clone();
            let task = tokio::spawn(async move {
                let namespace = watched;
                let changes = watcher(api, watcher::Config::default().any_semantic())
                    .default_backoff()
                    .touched_objects();
                let mut changes = std::pin::pin!(changes);
                while let Some(change) = changes.next().await {
                    let secret: PartialObjectMeta<Secret> = match change {
                        Ok(secret) => secret,
                        Err(
                            watcher::Error::InitialListFailed(kube::Error::Api(status))
                            | watcher::Error::WatchStartFailed(kube::Error::Api(status)),
                        ) if status.code == 403 => {
                            tracing::warn!(%namespace, error = %status.message,
                                "the operator may not watch the Secrets BackupPolicies name here; they are read at each periodic pass instead");
                            return true;
                        }
                        Err(error) => {
                            tracing::debug!(%namespace, error = %error, "watching Secrets named by BackupPolicies; retrying");
                            continue;
                        }
                    };
                    let secret_namespace = secret.namespace().unwrap_or_default();
                    for policy in referring(&store, secrets, &secret_namespace, &secret.name_any())
                    {
                        if tx.send(policy).await.is_err() {
                            return false;
                        }
                    }
                }
                false
            });
            watches.insert(namespace, task);
        }
    }
    for (_, task) in watches {
        task.abort();
    }
}
