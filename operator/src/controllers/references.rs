//! Watches of the objects govdc resources name, mapped back to the resources that name them, so
//! that a referrer is reconciled as soon as what it names appears, changes or goes away: an
//! ExchangeNode its parent and the Secrets of its parent's key or remote CA and token; a
//! DepartmentCloud its peers; an OpenDataset its owner, portal, source and keys.
//!
//! The watches are metadata-only (no Secret's or ConfigMap's data reaches the operator through
//! them) and keep no cache: an event is mapped to referrers through the controller's own watch
//! cache of the referring resources and dropped. The mapping functions are pure.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures::{Stream, StreamExt, TryStreamExt};
use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use kube::Client;
use kube::api::{Api, ListParams};
use kube::core::error_boundary::DeserializeGuard;
use kube::core::{NamespaceResourceScope, PartialObjectMeta};
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Resource, ResourceExt};

use crate::hub_client::key;

/// A trigger stream for `watches_stream`.
pub type Changes<K> =
    futures::stream::BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>>;

/// Changes that matter to referrers of a govdc resource: it appeared, its spec changed (a new
/// generation) or it went away. Status writes, which are most of its events, are dropped here.
pub fn spec_changes<K>(client: Client, config: watcher::Config) -> Changes<K>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let stream = spec_events::<K>(client, config).map_ok(|change| change.object);
    until_forbidden(stream, K::kind(&Default::default()).into_owned())
}

/// [`spec_changes`] for a controller whose passes read what changed from `store`, its own watch
/// cache of the same kind: each change is held back until the store has seen it too (for at
/// most [`STORE_CATCH_UP`]). The trigger and the controller's own watch are separate streams with
/// no order between them; without the wait, a pass triggered by a peer's deletion could still
/// find the peer in the store, report it present, and have nothing left to trigger it again.
pub fn spec_changes_seen_by<K>(
    client: Client,
    config: watcher::Config,
    store: Store<DeserializeGuard<K>>,
) -> Changes<K>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let stream = spec_events::<K>(client, config).and_then(move |change| {
        let store = store.clone();
        async move {
            let deadline = tokio::time::Instant::now() + STORE_CATCH_UP;
            while !store_has_seen(&store, &change) && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(STORE_POLL).await;
            }
            Ok(change.object)
        }
    });
    until_forbidden(stream, K::kind(&()).into_owned())
}

/// The longest a change is held back waiting for the controller's store to see it. Past it the
/// trigger goes through anyway: a pass on a stale view is still better than none.
const STORE_CATCH_UP: Duration = Duration::from_secs(2);

/// How often the store is looked at while a change waits for it.
const STORE_POLL: Duration = Duration::from_millis(5);

/// One change of a referenced object, and whether it went away.
struct SpecChange<K> {
    object: PartialObjectMeta<K>,
    deleted: bool,
}

/// The watch behind [`spec_changes`]: appearances, new generations and deletions.
fn spec_events<K>(
    client: Client,
    config: watcher::Config,
) -> impl Stream<Item = Result<SpecChange<K>, watcher::Error>> + Send + 'static
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
{
    let mut generations: HashMap<String, Option<i64>> = HashMap::new();
    watcher(Api::<PartialObjectMeta<K>>::all(client), config)
        .default_backoff()
        .try_filter_map(move |event| {
            let changed = match event {
                watcher::Event::Apply(object) | watcher::Event::InitApply(object) => {
                    let uid = object.uid().unwrap_or_default();
                    let generation = object.meta().generation;
                    (generations.insert(uid, generation) != Some(generation)).then_some(
                        SpecChange {
                            object,
                            deleted: false,
                        },
                    )
                }
                watcher::Event::Delete(object) => {
                    generations.remove(&object.uid().unwrap_or_default());
                    Some(SpecChange {
                        object,
                        deleted: true,
                    })
                }
                watcher::Event::Init | watcher::Event::InitDone => None,
            };
            futures::future::ready(Ok(changed))
        })
}

/// Whether `store` holds the state `change` describes: for a deletion, no object of that uid;
/// otherwise the same object at the change's resource version or later.
fn store_has_seen<K>(store: &Store<DeserializeGuard<K>>, change: &SpecChange<K>) -> bool
where
    K: Resource<DynamicType = ()> + Clone,
{
    let meta = change.object.meta();
    let mut key = ObjectRef::new(&change.object.name_any());
    if let Some(namespace) = &meta.namespace {
        key = key.within(namespace);
    }
    let held = store.get(&key);
    let same_object = held
        .as_ref()
        .is_some_and(|held| held.meta().uid == meta.uid);
    if change.deleted {
        return !same_object;
    }
    same_object
        && held.is_some_and(|held| {
            at_or_after(
                held.meta().resource_version.as_deref(),
                meta.resource_version.as_deref(),
            )
        })
}

/// Whether resource version `held` is `wanted` or later. Resource versions are opaque to
/// clients; every API server in use writes them as etcd revisions, so they are compared as
/// numbers when both parse, and otherwise only an equal one counts.
fn at_or_after(held: Option<&str>, wanted: Option<&str>) -> bool {
    match (held, wanted) {
        (Some(held), Some(wanted)) => match (held.parse::<u64>(), wanted.parse::<u64>()) {
            (Ok(held), Ok(wanted)) => held >= wanted,
            _ => held == wanted,
        },
        _ => false,
    }
}

/// Every change of a Secret or ConfigMap: their content has no generation, and they change
/// seldom. Where the operator may not watch the kind cluster-wide (the chart grants Secrets only
/// in the namespaces where govdc works), it watches each namespace that `namespaces` names (the
/// namespaces the referrers' references point into), started and stopped as referrers come and
/// go.
pub fn any_changes<K>(
    client: Client,
    namespaces: impl Fn() -> BTreeSet<String> + Send + 'static,
) -> Changes<K>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let kind = K::kind(&()).into_owned();
    // Asked first: a refused watch is logged as an error by the watcher itself.
    let stream = futures::stream::once(async move {
        if may_watch_cluster_wide::<K>(client.clone()).await {
            watcher(
                Api::<PartialObjectMeta<K>>::all(client),
                watcher::Config::default(),
            )
            .default_backoff()
            .touched_objects()
            .boxed()
        } else {
            tracing::info!(
                kind = %K::kind(&()),
                "not watched cluster-wide (the operator may read them only where govdc works): watched in each namespace that resources name"
            );
            per_namespace_changes::<K>(client, namespaces)
        }
    })
    .flatten();
    until_forbidden(stream, kind)
}

/// How often the namespaces to watch are worked out again from the referrers.
const NAMESPACE_RESCAN: Duration = Duration::from_secs(2);

/// How long a namespace whose objects the operator may not read is left before it is tried again.
const REFUSED_RETRY: Duration = Duration::from_secs(15);

/// Changes of `K` in each namespace `namespaces` names, one metadata watch per namespace. The
/// set is worked out again every [`NAMESPACE_RESCAN`]; a namespace no longer named stops its
/// watch. The task ends when the stream is dropped (the controller stopped).
fn per_namespace_changes<K>(
    client: Client,
    namespaces: impl Fn() -> BTreeSet<String> + Send + 'static,
) -> futures::stream::BoxStream<'static, Result<PartialObjectMeta<K>, watcher::Error>>
where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    let (sender, receiver) = futures::channel::mpsc::channel(64);
    tokio::spawn(async move {
        let mut running: HashMap<String, tokio::task::AbortHandle> = HashMap::new();
        let mut watches = tokio::task::JoinSet::new();
        let mut rescan = tokio::time::interval(NAMESPACE_RESCAN);
        while !sender.is_closed() {
            rescan.tick().await;
            let wanted = namespaces();
            running.retain(|namespace, watch| {
                let keep = wanted.contains(namespace);
                if !keep {
                    watch.abort();
                }
                keep
            });
            for namespace in wanted {
                if let std::collections::hash_map::Entry::Vacant(entry) = running.entry(namespace) {
                    let watch =
                        watch_namespace::<K>(client.clone(), entry.key().clone(), sender.clone());
                    entry.insert(watches.spawn(watch));
                }
            }
            while watches.try_join_next().is_some() {}
        }
    });
    receiver.map(Ok).boxed()
}

/// Sends every change of `K` in `namespace` to `sender`. A namespace the operator may not read
/// (yet: its RoleBinding there comes a moment after the namespace) is tried again quietly every
/// [`REFUSED_RETRY`]; the refusal is the expected answer outside govdc's namespaces, not a fault.
async fn watch_namespace<K>(
    client: Client,
    namespace: String,
    mut sender: futures::channel::mpsc::Sender<PartialObjectMeta<K>>,
) where
    K: Resource<DynamicType = (), Scope = NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
{
    use futures::SinkExt;
    let probe = Api::<K>::namespaced(client.clone(), &namespace);
    loop {
        match probe.list_metadata(&ListParams::default().limit(1)).await {
            Ok(_) => {}
            Err(error) => {
                tracing::debug!(%namespace, kind = %K::kind(&()), %error, "not readable here; trying again later");
                tokio::time::sleep(REFUSED_RETRY).await;
                continue;
            }
        }
        let mut changes = watcher(
            Api::<PartialObjectMeta<K>>::namespaced(client.clone(), &namespace),
            watcher::Config::default(),
        )
        .default_backoff()
        .touched_objects()
        .boxed();
        while let Some(change) = changes.next().await {
            match change {
                Ok(object) => {
                    if sender.send(object).await.is_err() {
                        return;
                    }
                }
                Err(
                    watcher::Error::InitialListFailed(kube::Error::Api(status))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(status)),
                ) if status.code == 403 => break,
                Err(error) => {
                    tracing::debug!(%namespace, kind = %K::kind(&()), %error, "watch interrupted; resuming");
                }
            }
        }
    }
}

/// Whether the operator may watch `K` cluster-wide, by a SelfSubjectAccessReview; true when the
/// review itself fails, so that the watch tries and says why.
async fn may_watch_cluster_wide<K>(client: Client) -> bool
where
    K: Resource,
    K::DynamicType: Default,
{
    use k8s_openapi::api::authorization::v1::{
        ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    };
    let types = K::DynamicType::default();
    let review = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                group: Some(K::group(&types).into_owned()),
                resource: Some(K::plural(&types).into_owned()),
                verb: Some("watch".to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    match Api::<SelfSubjectAccessReview>::all(client)
        .create(&kube::api::PostParams::default(), &review)
        .await
    {
        Ok(answer) => answer.status.is_some_and(|status| status.allowed),
        Err(error) => {
            tracing::debug!(%error, "asking whether a watch is allowed failed; watching");
            true
        }
    }
}

/// Ends a trigger stream the operator may not list (its RBAC withholds the kind cluster-wide):
/// the referrers then notice a change at their next periodic pass, and the log says so once
/// instead of a retry every few seconds.
fn until_forbidden<K, S>(stream: S, kind: String) -> Changes<K>
where
    K: Resource + Send + 'static,
    S: Stream<Item = Result<PartialObjectMeta<K>, watcher::Error>> + Send + 'static,
{
    stream
        .take_while(move |item| {
            let forbidden = matches!(
                item,
                Err(watcher::Error::InitialListFailed(kube::Error::Api(status))
                    | watcher::Error::WatchStartFailed(kube::Error::Api(status)))
                    if status.code == 403
            );
            if forbidden {
                tracing::warn!(
                    %kind,
                    "the operator may not watch {kind} cluster-wide; resources naming one notice its changes at their next periodic pass"
                );
            }
            futures::future::ready(!forbidden)
        })
        .boxed()
}

/// The objects of a watch cache's state (`store.state()`) that deserialized, read in place: the
/// mappers run on the controller's trigger path for every event, and a copy of each of a
/// thousand DepartmentClouds per event held up every trigger queued behind it by tens of
/// milliseconds.
fn objects<K>(state: &[Arc<DeserializeGuard<K>>]) -> impl Iterator<Item = &K> {
    state.iter().filter_map(|guard| guard.0.as_ref().ok())
}

/// `namespace/name` of what a reference names, defaulting to the referrer's namespace.
fn resolve(own_namespace: &str, namespace: Option<&String>, name: &str) -> (String, String) {
    (
        namespace
            .cloned()
            .unwrap_or_else(|| own_namespace.to_owned()),
        name.to_owned(),
    )
}

/// The namespace and name of a changed object.
fn target<K: Resource>(object: &PartialObjectMeta<K>) -> (String, String) {
    (object.namespace().unwrap_or_default(), object.name_any())
}

/// The DepartmentClouds naming `peer` among their peer departments.
pub fn peer_referrers<'a>(
    clouds: impl IntoIterator<Item = &'a DepartmentCloud>,
    peer: &str,
) -> Vec<String> {
    clouds
        .into_iter()
        .filter(|c| c.spec.peer_departments.iter().any(|p| p == peer))
        .map(ResourceExt::name_any)
        .collect()
}

/// Maps a changed DepartmentCloud to the DepartmentClouds naming it as a peer.
pub fn department_cloud_peers(
    store: Store<DeserializeGuard<DepartmentCloud>>,
) -> impl Fn(PartialObjectMeta<DepartmentCloud>) -> Vec<ObjectRef<DeserializeGuard<DepartmentCloud>>>
+ Send
+ Sync
+ 'static {
    move |changed| {
        peer_referrers(objects(&store.state()), &changed.name_any())
            .iter()
            .map(|name| ObjectRef::new(name))
            .collect()
    }
}

/// The ExchangeNodes whose in-cluster parent is `parent` (`namespace`, `name`).
pub fn child_referrers<'a>(
    nodes: impl IntoIterator<Item = &'a ExchangeNode>,
    parent: &(String, String),
) -> Vec<(String, String)> {
    nodes
        .into_iter()
        .filter(|node| {
            let own = node.namespace().unwrap_or_default();
            node.spec
                .parent
                .as_ref()
                .and_then(|p| p.node_ref.as_ref())
                .is_some_and(|r| resolve(&own, r.namespace.as_ref(), &r.name) == *parent)
        })
        .map(|node| (node.namespace().unwrap_or_default(), node.name_any()))
        .collect()
}

/// The ExchangeNodes that read the Secret `secret` (`namespace`, `name`): their remote parent's
/// CA or token, or their in-cluster parent's signing key (which issues their federation token).
pub fn secret_readers_among_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a ExchangeNode>,
    secret: &(String, String),
) -> Vec<(String, String)> {
    nodes
        .into_iter()
        .filter(|node| {
            let own = node.namespace().unwrap_or_default();
            let Some(parent) = &node.spec.parent else {
                return false;
            };
            let parent_key = parent.node_ref.as_ref().is_some_and(|r| {
                resolve(&own, r.namespace.as_ref(), &key::secret_name_of(&r.name)) == *secret
            });
            let remote = parent.remote.as_ref().is_some_and(|remote| {
                [&remote.ca_secret_ref, &remote.token_secret_ref]
                    .iter()
                    .any(|s| resolve(&own, s.namespace.as_ref(), &s.name) == *secret)
            });
            parent_key || remote
        })
        .map(|node| (node.namespace().unwrap_or_default(), node.name_any()))
        .collect()
}

/// The namespaces of the Secrets ExchangeNodes read (see [`secret_readers_among_nodes`]).
pub fn secret_namespaces_of_nodes<'a>(
    nodes: impl IntoIterator<Item = &'a ExchangeNode>,
) -> BTreeSet<String> {
    let mut namespaces = BTreeSet::new();
    for node in nodes {
        let own = node.namespace().unwrap_or_default();
        let Some(parent) = &node.spec.parent else {
            continue;
        };
        if let Some(r) = &parent.node_ref {
            namespaces.insert(r.namespace.clone().unwrap_or_else(|| own.clone()));
        }
        if let Some(remote) = &parent.remote {
            for secret in [&remote.ca_secret_ref, &remote.token_secret_ref] {
                namespaces.insert(secret.namespace.clone().unwrap_or_else(|| own.clone()));
            }
        }
    }
    namespaces
}

/// The namespaces whose Secrets the ExchangeNodes in `store` read, for [`any_changes`].
pub fn exchange_node_secret_namespaces(
    store: Store<DeserializeGuard<ExchangeNode>>,
) -> impl Fn() -> BTreeSet<String> + Send + 'static {
    move || secret_namespaces_of_nodes(objects(&store.state()))
}

fn node_refs(pairs: Vec<(String, String)>) -> Vec<ObjectRef<DeserializeGuard<ExchangeNode>>> {
    pairs
        .into_iter()
        .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
        .collect()
}

/// Maps a changed ExchangeNode to its children.
pub fn exchange_node_children(
    store: Store<DeserializeGuard<ExchangeNode>>,
) -> impl Fn(PartialObjectMeta<ExchangeNode>) -> Vec<ObjectRef<DeserializeGuard<ExchangeNode>>>
+ Send
+ Sync
+ 'static {
    move |changed| node_refs(child_referrers(objects(&store.state()), &target(&changed)))
}

/// Maps a changed Secret to the ExchangeNodes reading it.
pub fn exchange_node_secrets(
    store: Store<DeserializeGuard<ExchangeNode>>,
) -> impl Fn(
    PartialObjectMeta<k8s_openapi::api::core::v1::Secret>,
) -> Vec<ObjectRef<DeserializeGuard<ExchangeNode>>>
+ Send
+ Sync
+ 'static {
    move |changed| {
        node_refs(secret_readers_among_nodes(
            objects(&store.state()),
            &target(&changed),
        ))
    }
}

/// What an OpenDataset names, as `(kind, namespace, name)`.
pub fn dataset_references(dataset: &OpenDataset) -> Vec<(&'static str, String, String)> {
    let own = dataset.namespace().unwrap_or_default();
    let spec = &dataset.spec;
    let node = |kind, r: &govdc_crds::common::ObjectReference| {
        let (namespace, name) = resolve(&own, r.namespace.as_ref(), &r.name);
        (kind, namespace, name)
    };
    let mut references = vec![node("ExchangeNode", &spec.portal)];
    let (namespace, name) = resolve(
        &own,
        spec.portal.namespace.as_ref(),
        &key::secret_name_of(&spec.portal.name),
    );
    references.push(("Secret", namespace, name));
    if let Some(source) = &spec.source.config_map_ref {
        references.push(("ConfigMap", own.clone(), source.name.clone()));
    }
    if let Some(source) = &spec.source.secret_ref {
        references.push(("Secret", own.clone(), source.name.clone()));
    }
    if let Some(resource) = &spec.source.exchange_resource {
        references.push(node("ExchangeNode", &resource.node));
        let (namespace, name) = resolve(
            &own,
            resource.node.namespace.as_ref(),
            &key::secret_name_of(&resource.node.name),
        );
        references.push(("Secret", namespace, name));
    }
    if let Some(reference) = &spec.pseudonym_key_ref {
        let (namespace, name) = resolve(&own, reference.namespace.as_ref(), &reference.name);
        references.push(("Secret", namespace, name));
    }
    references
}

/// The OpenDatasets naming the object `kind` `namespace/name`. A DepartmentCloud owns the
/// datasets in its environments' namespaces, `<name>-<environment>`: they are matched by that
/// prefix, which may now and then wake a dataset of a department whose name extends this one's
/// (a harmless extra pass).
pub fn dataset_referrers<'a>(
    datasets: impl IntoIterator<Item = &'a OpenDataset>,
    kind: &str,
    changed: &(String, String),
) -> Vec<(String, String)> {
    datasets
        .into_iter()
        .filter(|dataset| {
            if kind == "DepartmentCloud" {
                let prefix = format!("{}-", changed.1);
                return dataset
                    .namespace()
                    .is_some_and(|ns| ns.starts_with(&prefix));
            }
            dataset_references(dataset)
                .iter()
                .any(|(k, namespace, name)| {
                    *k == kind && (namespace, name) == (&changed.0, &changed.1)
                })
        })
        .map(|dataset| (dataset.namespace().unwrap_or_default(), dataset.name_any()))
        .collect()
}

/// The namespaces of the objects of kind `kind` that the OpenDatasets in `store` name, for
/// [`any_changes`].
pub fn dataset_reference_namespaces(
    store: Store<DeserializeGuard<OpenDataset>>,
    kind: &'static str,
) -> impl Fn() -> BTreeSet<String> + Send + 'static {
    move || {
        objects(&store.state())
            .flat_map(dataset_references)
            .filter(|(k, _, _)| *k == kind)
            .map(|(_, namespace, _)| namespace)
            .collect()
    }
}

/// Maps a changed object of kind `K` to the OpenDatasets naming it.
pub fn open_dataset_referrers<K>(
    store: Store<DeserializeGuard<OpenDataset>>,
) -> impl Fn(PartialObjectMeta<K>) -> Vec<ObjectRef<DeserializeGuard<OpenDataset>>> + Send + Sync + 'static
where
    K: Resource<DynamicType = ()> + 'static,
{
    move |changed| {
        let kind = K::kind(&());
        dataset_referrers(objects(&store.state()), &kind, &target(&changed))
            .into_iter()
            .map(|(namespace, name)| ObjectRef::new(&name).within(&namespace))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(namespace: &str, name: &str, parent: serde_json::Value) -> ExchangeNode {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"level": "provincial", "regionCode": "330000", "networkZone": "extranet", "parent": parent},
        }))
        .expect("fixture deserializes")
    }

    fn pair(namespace: &str, name: &str) -> (String, String) {
        (namespace.to_owned(), name.to_owned())
    }

    #[test]
    fn a_parent_maps_to_the_children_naming_it_in_their_namespace_or_another() {
        let nodes = [
            node(
                "hubs",
                "zhejiang",
                serde_json::json!({"nodeRef": {"name": "national"}}),
            ),
            node(
                "prov",
                "jiangsu",
                serde_json::json!({"nodeRef": {"name": "national", "namespace": "hubs"}}),
            ),
            node(
                "other",
                "anhui",
                serde_json::json!({"nodeRef": {"name": "national"}}),
            ),
        ];
        assert_eq!(
            child_referrers(&nodes, &pair("hubs", "national")),
            [pair("hubs", "zhejiang"), pair("prov", "jiangsu")]
        );
    }

    #[test]
    fn a_secret_maps_to_the_nodes_reading_it() {
        let nodes = [
            node(
                "hubs",
                "zhejiang",
                serde_json::json!({"nodeRef": {"name": "national"}}),
            ),
            node(
                "hubs",
                "remote-child",
                serde_json::json!({"remote": {
                    "endpoint": "https://hub.example:8443",
                    "caSecretRef": {"name": "national-ca", "key": "ca.crt"},
                    "tokenSecretRef": {"name": "national-token", "key": "token", "namespace": "tokens"},
                }}),
            ),
        ];
        assert_eq!(
            secret_readers_among_nodes(&nodes, &pair("hubs", "national-hub-key")),
            [pair("hubs", "zhejiang")]
        );
        assert_eq!(
            secret_readers_among_nodes(&nodes, &pair("hubs", "national-ca")),
            [pair("hubs", "remote-child")]
        );
        assert_eq!(
            secret_readers_among_nodes(&nodes, &pair("tokens", "national-token")),
            [pair("hubs", "remote-child")]
        );
        assert!(secret_readers_among_nodes(&nodes, &pair("hubs", "national-token")).is_empty());
        // Where a per-namespace watch must look for them.
        assert_eq!(
            secret_namespaces_of_nodes(&nodes),
            BTreeSet::from(["hubs".to_owned(), "tokens".to_owned()])
        );
    }

    /// A change of `name` (uid `uid`) at resource version `version`.
    fn change(name: &str, uid: &str, version: &str, deleted: bool) -> SpecChange<DepartmentCloud> {
        use kube::core::{ObjectMeta, PartialObjectMetaExt};
        let object = ObjectMeta {
            name: Some(name.to_owned()),
            uid: Some(uid.to_owned()),
            resource_version: Some(version.to_owned()),
            ..ObjectMeta::default()
        }
        .into_response_partial::<DepartmentCloud>();
        SpecChange { object, deleted }
    }

    #[test]
    fn a_change_waits_until_the_store_holds_it_or_has_dropped_it() {
        let (store, mut writer) =
            kube::runtime::reflector::store::<DeserializeGuard<DepartmentCloud>>();
        let held = |uid: &str, version: &str| {
            let mut cloud = cloud("b", &[]);
            cloud.metadata.uid = Some(uid.to_owned());
            cloud.metadata.resource_version = Some(version.to_owned());
            DeserializeGuard(Ok(cloud))
        };
        // Created, but the store has not seen it yet.
        assert!(!store_has_seen(&store, &change("b", "u1", "10", false)));
        writer.apply_watcher_event(&watcher::Event::Apply(held("u1", "10")));
        assert!(store_has_seen(&store, &change("b", "u1", "10", false)));
        // A later version is not seen until the store has it; an earlier one already is.
        assert!(!store_has_seen(&store, &change("b", "u1", "12", false)));
        assert!(store_has_seen(&store, &change("b", "u1", "9", false)));
        // Deleted: seen only once the store no longer holds that object.
        assert!(!store_has_seen(&store, &change("b", "u1", "13", true)));
        writer.apply_watcher_event(&watcher::Event::Delete(held("u1", "10")));
        assert!(store_has_seen(&store, &change("b", "u1", "13", true)));
        // Re-created under the same name: the old one's deletion counts as seen.
        writer.apply_watcher_event(&watcher::Event::Apply(held("u2", "20")));
        assert!(store_has_seen(&store, &change("b", "u1", "13", true)));
        assert!(!store_has_seen(&store, &change("b", "u1", "9", false)));
    }

    #[test]
    fn resource_versions_compare_as_numbers_and_otherwise_only_when_equal() {
        assert!(at_or_after(Some("100"), Some("99")));
        assert!(!at_or_after(Some("99"), Some("100")));
        assert!(at_or_after(Some("opaque"), Some("opaque")));
        assert!(!at_or_after(Some("opaque-2"), Some("opaque-1")));
        assert!(!at_or_after(None, Some("1")));
    }

    fn cloud(name: &str, peers: &[&str]) -> DepartmentCloud {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
            "metadata": {"name": name},
            "spec": {
                "department": {"name": "d", "creditCode": "11330000MB00256383", "level": "provincial", "regionCode": "330000"},
                "networkZone": "extranet", "protectionLevel": 3,
                "environments": [{"name": "prod"}], "peerDepartments": peers,
            }
        }))
        .expect("fixture deserializes")
    }

    #[test]
    fn a_department_maps_to_the_departments_naming_it_as_a_peer() {
        let clouds = [cloud("a", &["b"]), cloud("c", &["b", "a"]), cloud("d", &[])];
        assert_eq!(peer_referrers(&clouds, "b"), ["a", "c"]);
        assert_eq!(peer_referrers(&clouds, "a"), ["c"]);
        assert!(peer_referrers(&clouds, "d").is_empty());
    }

    fn dataset(namespace: &str, name: &str, source: serde_json::Value) -> OpenDataset {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "title": "t", "category": "transport", "openness": "unconditional",
                "source": source,
                "portal": {"name": "portal", "namespace": "hubs"},
                "fields": [{"name": "x", "action": "keep"}],
                "pseudonymKeyRef": {"name": "pseudonym", "key": "key"},
            }
        }))
        .expect("fixture deserializes")
    }

    #[test]
    fn a_dataset_maps_from_its_owner_portal_source_and_keys() {
        let datasets = [
            dataset(
                "zj-prod",
                "roads",
                serde_json::json!({"configMapRef": {"name": "roads", "key": "data.csv"}}),
            ),
            dataset(
                "js-prod",
                "bridges",
                serde_json::json!({"secretRef": {"name": "bridges", "key": "data.csv"}}),
            ),
        ];
        let find = |kind: &str, namespace: &str, name: &str| {
            dataset_referrers(&datasets, kind, &pair(namespace, name))
        };
        assert_eq!(
            find("DepartmentCloud", "", "zj"),
            [pair("zj-prod", "roads")]
        );
        assert_eq!(find("ExchangeNode", "hubs", "portal").len(), 2);
        assert_eq!(find("Secret", "hubs", "portal-hub-key").len(), 2);
        assert_eq!(
            find("ConfigMap", "zj-prod", "roads"),
            [pair("zj-prod", "roads")]
        );
        assert_eq!(
            find("Secret", "js-prod", "bridges"),
            [pair("js-prod", "bridges")]
        );
        assert_eq!(
            find("Secret", "js-prod", "pseudonym"),
            [pair("js-prod", "bridges")]
        );
        // A ConfigMap of the same name elsewhere, or a Secret named like a ConfigMap source, wakes
        // nobody.
        assert!(find("ConfigMap", "js-prod", "roads").is_empty());
        assert!(find("Secret", "zj-prod", "roads").is_empty());
    }
}
