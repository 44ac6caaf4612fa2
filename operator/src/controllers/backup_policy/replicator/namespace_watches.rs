//! Watches of the kinds the operator may read only namespace by namespace (Secrets, see
//! [`super::super::source::read_per_namespace`]): one watch per kind and protected namespace,
//! started when a namespace becomes protected and stopped when it no longer is.
//!
//! The operator's right to read Secrets in a tenant namespace comes from the RoleBinding the
//! DepartmentCloud controller makes there with the namespace itself, so a watch started the moment
//! a namespace appears can be refused for a moment. A refusal within [`ACCESS_GRACE`] of the
//! watch's start is waited out quietly; a longer one is reported on the policy
//! (`SecretsForbidden`) and no longer holds up the first sync.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use futures::StreamExt;
use kube::api::DynamicObject;
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
                let events = watcher(api, watcher::Config::default().any_semantic())
                    .map(with_types(resource));
                let handle = watches.spawn(forward(
                    events,
                    tx.clone(),
                    index,
                    namespace.clone(),
                    kinds[index].plural,
                ));
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

/// Whether a watch error is the API server refusing access (HTTP 403).
fn forbidden(error: &watcher::Error) -> bool {
    match error {
        watcher::Error::InitialListFailed(kube::Error::Api(status))
        | watcher::Error::WatchStartFailed(kube::Error::Api(status)) => status.code == 403,
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

/// Forwards one namespace's watch to the engine, as [`Change::InNamespace`], until the engine
/// goes away or the watch is aborted. Errors are retried by the watcher's back-off.
async fn forward<S>(
    events: S,
    tx: mpsc::Sender<Change>,
    kind: usize,
    namespace: String,
    plural: &'static str,
) where
    S: futures::Stream<Item = Result<watcher::Event<DynamicObject>, watcher::Error>> + Send,
{
    let started = Instant::now();
    let mut reported = false;
    let mut events = std::pin::pin!(events.default_backoff());
    while let Some(event) = events.next().await {
        let change = match event {
            Ok(event) => Change::InNamespace(kind, namespace.clone(), event),
            Err(error) if forbidden(&error) && started.elapsed() < ACCESS_GRACE => {
                // The operator's binding in a new namespace is made with it; wait for it.
                tracing::debug!(%namespace, kind = plural, "no access yet to this namespace's objects; retrying");
                continue;
            }
            Err(error) if forbidden(&error) => {
                if reported {
                    continue;
                }
                reported = true;
                Change::Refused(kind, namespace.clone(), error.to_string())
            }
            Err(error) => {
                tracing::debug!(%namespace, %error, "a replication watch failed; retrying");
                continue;
            }
        };
        if tx.send(change).await.is_err() {
            return;
        }
    }
}
