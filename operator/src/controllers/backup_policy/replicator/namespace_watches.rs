//! Watches of the kinds the operator may read only namespace by namespace (Secrets, see
//! [`super::super::source::read_per_namespace`]): one watch per kind and protected namespace,
//! started when a namespace becomes protected and stopped when it no longer is.
//!
//! The operator's right to read Secrets in a tenant namespace comes from the RoleBinding the
//! DepartmentCloud controller makes there with the namespace itself, so a namespace that has just
//! appeared can refuse the operator for a moment. Each watch therefore starts with a probe (a
//! one-item list) that waits a refusal out quietly, and starts the watch once access is there; a
//! refusal longer than [`ACCESS_GRACE`] is reported on the policy (`SourceForbidden`) and no
//! longer holds up the first sync.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tokio::task::{AbortHandle, JoinSet};

use super::{Change, with_types};
use crate::controllers::backup_policy::kinds::Kind;

/// How long a refused watch of a namespace is waited out before the refusal is reported.
pub(super) const ACCESS_GRACE: Duration = Duration::from_secs(20);

/// The running per-namespace watches of one replicator.
#[derive(Default)]
pub(super) struct NamespaceWatches {
    /// Indices (into the replicator's kinds) of the kinds watched per namespace.
    kinds: Vec<usize>,
    /// Running watches by (kind index, namespace).
    running: HashMap<(usize, String), AbortHandle>,
    /// Watches whose initial listing has not finished yet.
    pending: BTreeSet<(usize, String)>,
}

impl NamespaceWatches {
    /// Watches of `kinds` (the indices of the per-namespace kinds among the replicator's).
    pub(super) fn new(kinds: Vec<usize>) -> NamespaceWatches {
        NamespaceWatches {
            kinds,
            ..NamespaceWatches::default()
        }
    }

    /// Whether `kind` is watched per namespace.
    pub(super) fn covers(&self, kind: usize) -> bool {
        self.kinds.contains(&kind)
    }

    /// Starts a watch for each kind in each namespace of `wanted` not yet watched and stops the
    /// watches of namespaces no longer wanted. Returns the namespaces whose watches stopped, whose
    /// objects the replicator should forget (a later watch lists them anew).
    pub(super) fn reconcile(
        &mut self,
        client: &Client,
        kinds: &[Kind],
        wanted: &BTreeSet<String>,
        tx: &mpsc::Sender<Change>,
        watches: &mut JoinSet<()>,
    ) -> BTreeSet<String> {
        let mut stopped = BTreeSet::new();
        self.running.retain(|(kind, namespace), handle| {
            let keep = wanted.contains(namespace);
            if !keep {
                handle.abort();
                stopped.insert(namespace.clone());
                self.pending.remove(&(*kind, namespace.clone()));
            }
            keep
        });
        for namespace in wanted {
            for &index in &self.kinds {
                let key = (index, namespace.clone());
                if self.running.contains_key(&key) {
                    continue;
                }
                let resource = kinds[index].api_resource();
                let api: Api<DynamicObject> =
                    Api::namespaced_with(client.clone(), namespace, &resource);
                let handle =
                    watches.spawn(forward(api, resource, tx.clone(), index, namespace.clone()));
                self.running.insert(key.clone(), handle);
                self.pending.insert(key);
            }
        }
        stopped
    }

    /// Records that the watch of `kind` in `namespace` listed everything (or was refused past its
    /// grace).
    pub(super) fn listed(&mut self, kind: usize, namespace: &str) {
        self.pending.remove(&(kind, namespace.to_owned()));
    }

    /// Whether no watch of `kind` still waits for its initial listing.
    pub(super) fn listed_all(&self, kind: usize) -> bool {
        !self.pending.iter().any(|(k, _)| *k == kind)
    }
}

/// How long the probe waits between tries while access is refused, at most.
const PROBE_INTERVAL_MAX: Duration = Duration::from_secs(5);

/// Waits until the operator may list `api`'s objects: a refused watch would be logged as an error
/// by the watcher on every retry, a refused probe only here. Past [`ACCESS_GRACE`], says so once
/// (`Change::Refused`) and keeps waiting. Returns false when the engine went away.
async fn wait_for_access(
    api: &Api<DynamicObject>,
    tx: &mpsc::Sender<Change>,
    kind: usize,
    namespace: &str,
) -> bool {
    let started = Instant::now();
    let mut interval = Duration::from_millis(100);
    let mut reported = false;
    loop {
        match api.list_metadata(&ListParams::default().limit(1)).await {
            Err(kube::Error::Api(status)) if status.code == 403 => {
                if started.elapsed() < ACCESS_GRACE {
                    // The operator's binding in a new namespace is made with it; wait for it.
                    tracing::debug!(%namespace, "no access yet to this namespace's objects; waiting");
                } else if !reported {
                    reported = true;
                    let change = Change::Refused(kind, namespace.to_owned(), status.message);
                    if tx.send(change).await.is_err() {
                        return false;
                    }
                }
            }
            // Access, or an error the watcher's own retries deal with.
            _ => return true,
        }
        tokio::time::sleep(interval).await;
        interval = (interval * 2).min(PROBE_INTERVAL_MAX);
    }
}

/// Forwards one namespace's watch to the engine, as [`Change::InNamespace`], until the engine
/// goes away or the watch is aborted. Errors are retried by the watcher's back-off.
async fn forward(
    api: Api<DynamicObject>,
    resource: ApiResource,
    tx: mpsc::Sender<Change>,
    kind: usize,
    namespace: String,
) {
    if !wait_for_access(&api, &tx, kind, &namespace).await {
        return;
    }
    let events = watcher(api, watcher::Config::default().any_semantic())
        .map(with_types(resource))
        .default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        match event {
            Ok(event) => {
                if tx
                    .send(Change::InNamespace(kind, namespace.clone(), event))
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(%namespace, %error, "a replication watch failed; retrying")
            }
        }
    }
}
