//! Watch caches of what DepartmentClouds made, so that a pass reads nothing from the API server:
//! a converged pass and a spec change's first write are decided from here.
//!
//! What is kept is small on purpose (a thousand tenants make some twenty thousand objects): per
//! object its identity, resourceVersion, the digest of what the operator last wrote into it
//! (an annotation), whether anyone but the operator wrote it since, and a ResourceQuota's amounts;
//! per namespace of the cluster whose it is. Every kind but ResourceQuota is watched
//! metadata-only. The index ([`OwnedIndex`]) is pure and tested without a client; the watches
//! that feed it ([`Caches::triggers`]) also say which tenants to reconcile: the owner of an
//! object deleted or changed by someone else, or whose quota got its status.
//!
//! The caches never decide alone that a write may be skipped when they could be wrong: an object
//! someone else wrote last is read from the API server before it is left alone; a prune deletes
//! under the uid and resourceVersion the cache saw, and a refusal re-reads the tenant from the
//! API server ([`super::write`]); and every tenant's periodic pass reads from the API server
//! (the resync compares against the truth, not against the caches).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use govdc_crds::DepartmentCloud;
use govdc_crds::common::RETAINED_FROM_LABEL;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{ApiResource, DynamicObject};
use kube::core::PartialObjectMeta;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde_json::{Value, json};

use crate::pipeline::ownership::{MANAGED_BY, MANAGER, OWNER_KIND, OWNER_NAME};

/// The annotation holding the digest of what the operator last wrote into an object.
pub const DIGEST_ANNOTATION: &str = "govdc.io/applied-digest";

/// The kinds a DepartmentCloud makes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// Its environments' namespaces.
    Namespace,
    /// Their quotas.
    ResourceQuota,
    /// Their container defaults.
    LimitRange,
    /// Their network isolation.
    NetworkPolicy,
    /// Its members' access in them.
    RoleBinding,
    /// The role letting members read the DepartmentCloud.
    ClusterRole,
    /// Its binding.
    ClusterRoleBinding,
}

impl Kind {
    /// Every kind, each watched once.
    pub const ALL: [Kind; 7] = [
        Kind::Namespace,
        Kind::ResourceQuota,
        Kind::LimitRange,
        Kind::NetworkPolicy,
        Kind::RoleBinding,
        Kind::ClusterRole,
        Kind::ClusterRoleBinding,
    ];

    /// The kind of an API resource, if a DepartmentCloud makes it.
    pub fn of(resource: &ApiResource) -> Option<Kind> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.resource().kind == resource.kind)
    }

    /// Its API resource.
    pub fn resource(self) -> ApiResource {
        match self {
            Kind::Namespace => ApiResource::erase::<Namespace>(&()),
            Kind::ResourceQuota => ApiResource::erase::<ResourceQuota>(&()),
            Kind::LimitRange => ApiResource::erase::<LimitRange>(&()),
            Kind::NetworkPolicy => ApiResource::erase::<NetworkPolicy>(&()),
            Kind::RoleBinding => ApiResource::erase::<RoleBinding>(&()),
            Kind::ClusterRole => ApiResource::erase::<ClusterRole>(&()),
            Kind::ClusterRoleBinding => ApiResource::erase::<ClusterRoleBinding>(&()),
        }
    }
}

/// A ResourceQuota's amounts: what it asks (spec) and what the quota controller reports.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct QuotaAmounts {
    /// `spec.hard`.
    pub spec_hard: BTreeMap<String, Quantity>,
    /// `status.hard`; None until the quota controller has seen the quota (and it is enforced).
    pub status_hard: Option<BTreeMap<String, Quantity>>,
    /// `status.used`.
    pub status_used: Option<BTreeMap<String, Quantity>>,
}

/// What the operator knows of one object it made.
#[derive(Clone, Debug, PartialEq)]
pub struct Seen {
    /// Its kind.
    pub kind: Kind,
    /// Its namespace, for namespaced kinds.
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// Its uid, for deleting exactly it.
    pub uid: String,
    /// Its resourceVersion.
    pub resource_version: String,
    /// The digest the operator wrote with its last write ([`DIGEST_ANNOTATION`]).
    pub digest: Option<String>,
    /// Nobody but the operator has written its content since the operator's last write.
    pub ours_last: bool,
    /// A digest whose content was read back from the API server and found to hold at this
    /// resourceVersion (an object someone else also wrote).
    pub verified: Option<String>,
    /// It is being deleted.
    pub deleting: bool,
    /// A ResourceQuota's amounts.
    pub quota: Option<Box<QuotaAmounts>>,
    /// The content as the API server holds it, when this was read from the API server rather
    /// than from the caches.
    pub content: Option<Value>,
}

/// Identity of an object: kind, namespace, name.
pub type Key = (Kind, Option<String>, String);

impl Seen {
    /// From an object's metadata (and, for a quota, its amounts).
    pub fn from_meta(kind: Kind, meta: &ObjectMeta, quota: Option<QuotaAmounts>) -> Seen {
        let quota = quota.map(Box::new);
        Seen {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone().unwrap_or_default(),
            uid: meta.uid.clone().unwrap_or_default(),
            resource_version: meta.resource_version.clone().unwrap_or_default(),
            digest: meta
                .annotations
                .as_ref()
                .and_then(|a| a.get(DIGEST_ANNOTATION))
                .cloned(),
            ours_last: super::last_written_by_operator(meta),
            verified: None,
            deleting: meta.deletion_timestamp.is_some(),
            quota,
            content: None,
        }
    }

    /// From an object read from the API server, keeping its content.
    pub fn from_object(kind: Kind, object: &DynamicObject) -> Seen {
        let quota = (kind == Kind::ResourceQuota).then(|| quota_amounts(&object.data));
        let mut seen = Seen::from_meta(kind, &object.metadata, quota);
        seen.content = Some(super::write::content(object));
        seen
    }

    /// Its identity.
    pub fn key(&self) -> Key {
        (self.kind, self.namespace.clone(), self.name.clone())
    }

    /// The object as far as the report step reads it: a namespace's phase, a quota's amounts.
    pub fn reported(&self) -> DynamicObject {
        let resource = self.kind.resource();
        let mut object = DynamicObject::new(&self.name, &resource);
        object.metadata.namespace = self.namespace.clone();
        object.metadata.uid = Some(self.uid.clone());
        object.metadata.resource_version = Some(self.resource_version.clone());
        if let Some(Value::Object(content)) = &self.content {
            for (field, value) in content {
                if field != "metadata" {
                    object.data[field] = value.clone();
                }
            }
            return object;
        }
        match (self.kind, &self.quota) {
            (Kind::Namespace, _) => {
                let phase = if self.deleting {
                    "Terminating"
                } else {
                    "Active"
                };
                object.data = json!({"status": {"phase": phase}});
            }
            (Kind::ResourceQuota, Some(quota)) => {
                let mut status = serde_json::Map::new();
                if let Some(hard) = &quota.status_hard {
                    status.insert("hard".into(), json!(hard));
                }
                if let Some(used) = &quota.status_used {
                    status.insert("used".into(), json!(used));
                }
                object.data = json!({"spec": {"hard": quota.spec_hard}, "status": status});
            }
            _ => {}
        }
        object
    }
}

/// A quota's amounts from its JSON.
pub fn quota_amounts(data: &Value) -> QuotaAmounts {
    let amounts = |value: &Value| -> Option<BTreeMap<String, Quantity>> {
        serde_json::from_value(value.clone()).ok()
    };
    QuotaAmounts {
        spec_hard: amounts(&data["spec"]["hard"]).unwrap_or_default(),
        status_hard: amounts(&data["status"]["hard"]),
        status_used: amounts(&data["status"]["used"]),
    }
}

/// Whose a namespace is, by its labels: the DepartmentCloud owning it, the one that retained it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NamespaceMark {
    /// The DepartmentCloud whose ownership labels it carries.
    pub owner: Option<String>,
    /// The DepartmentCloud that released it under `deletionPolicy: Retain`.
    pub retained_from: Option<String>,
}

/// The DepartmentCloud whose ownership labels an object carries.
pub fn owner_of(meta: &ObjectMeta) -> Option<String> {
    let labels = meta.labels.as_ref()?;
    (labels.get(MANAGED_BY).map(String::as_str) == Some(MANAGER)
        && labels.get(OWNER_KIND).map(String::as_str) == Some("DepartmentCloud"))
    .then(|| labels.get(OWNER_NAME).cloned())
    .flatten()
}

/// One event of a watch, reduced to what the index keeps.
#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    /// A relist starts.
    Init,
    /// An object of the relist.
    InitApply(Entry),
    /// The relist is complete: what it did not list is gone.
    InitDone,
    /// An object was created or changed.
    Apply(Entry),
    /// An object was deleted.
    Delete(Entry),
}

/// An object as the index keeps it: for namespaces also those nobody owns (so that a tenant
/// knows a namespace it wants is someone else's before it writes anything).
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    /// The DepartmentCloud owning it.
    pub owner: Option<String>,
    /// For a namespace, whose it is.
    pub mark: Option<NamespaceMark>,
    /// What is known of it.
    pub seen: Seen,
}

/// One tenant's objects: a dozen or two, so a list (its keys are in its entries) rather than a
/// map that would keep every name twice.
#[derive(Debug, Default)]
struct Objects(Vec<Seen>);

impl Objects {
    fn position(&self, key: &Key) -> Option<usize> {
        self.0
            .iter()
            .position(|seen| seen.kind == key.0 && seen.namespace == key.1 && seen.name == key.2)
    }

    fn get(&self, key: &Key) -> Option<&Seen> {
        self.position(key).map(|index| &self.0[index])
    }

    fn get_mut(&mut self, key: &Key) -> Option<&mut Seen> {
        self.position(key).map(|index| &mut self.0[index])
    }

    fn insert(&mut self, key: Key, seen: Seen) {
        match self.position(&key) {
            Some(index) => self.0[index] = seen,
            None => self.0.push(seen),
        }
    }

    fn remove(&mut self, key: &Key) {
        if let Some(index) = self.position(key) {
            self.0.swap_remove(index);
        }
    }

    fn values(&self) -> impl Iterator<Item = &Seen> {
        self.0.iter()
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl IntoIterator for Objects {
    type Item = (Key, Seen);
    type IntoIter = std::iter::Map<std::vec::IntoIter<Seen>, fn(Seen) -> (Key, Seen)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter().map(|seen| (seen.key(), seen))
    }
}

impl Extend<(Key, Seen)> for Objects {
    fn extend<T: IntoIterator<Item = (Key, Seen)>>(&mut self, items: T) {
        self.0.extend(items.into_iter().map(|(_, seen)| seen));
    }
}

/// What the watches have seen of every DepartmentCloud's objects, by owner (pure).
#[derive(Debug, Default)]
pub struct OwnedIndex {
    owners: HashMap<String, Objects>,
    /// The digest of the operator's last write of an object whose watch event has not arrived
    /// yet: until it does, the cache shows an older state, which may even carry the digest a
    /// pass wants (written, changed, and changed back).
    in_flight: HashMap<Key, String>,
    namespaces: HashMap<String, NamespaceMark>,
    relisting: HashMap<Kind, Vec<Entry>>,
    ready: BTreeSet<Kind>,
}

impl OwnedIndex {
    /// Whether every kind has been listed.
    pub fn ready(&self) -> bool {
        self.ready.len() == Kind::ALL.len()
    }

    /// Everything `owner` is known to have made.
    pub fn owned_by(&self, owner: &str) -> Vec<Seen> {
        self.owners
            .get(owner)
            .map(|objects| objects.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Whose the namespace `name` is, if it exists.
    pub fn namespace(&self, name: &str) -> Option<&NamespaceMark> {
        self.namespaces.get(name)
    }

    /// Records that the operator wrote `digest` into the object `key` (unless the cache has seen
    /// that already).
    pub fn wrote(&mut self, owner: &str, key: Key, digest: &str) {
        let seen = self.owners.get(owner).and_then(|o| o.get(&key));
        if seen.is_some_and(|s| s.digest.as_deref() == Some(digest) && s.ours_last) {
            return;
        }
        self.in_flight.insert(key, digest.to_owned());
    }

    /// The digest of the operator's last write of `key`, while the cache has not seen it.
    pub fn in_flight(&self, key: &Key) -> Option<&str> {
        self.in_flight.get(key).map(String::as_str)
    }

    /// Records that the content of an object was read back and holds `digest` at
    /// `resource_version`.
    pub fn verify(&mut self, owner: &str, key: &Key, resource_version: &str, digest: &str) {
        if let Some(seen) = self.owners.get_mut(owner).and_then(|o| o.get_mut(key))
            && seen.resource_version == resource_version
        {
            seen.verified = Some(digest.to_owned());
        }
    }

    /// Applies one watch event of `kind`; returns the tenants to reconcile because of it.
    pub fn apply(&mut self, kind: Kind, change: Change) -> Vec<String> {
        match change {
            Change::Init => {
                self.relisting.insert(kind, Vec::new());
                Vec::new()
            }
            Change::InitApply(entry) => {
                self.relisting.entry(kind).or_default().push(entry);
                Vec::new()
            }
            Change::InitDone => self.relisted(kind),
            Change::Apply(entry) => {
                let trigger = self.insert(entry);
                trigger.into_iter().collect()
            }
            Change::Delete(entry) => {
                self.in_flight.remove(&entry.seen.key());
                if entry.seen.kind == Kind::Namespace {
                    self.namespaces.remove(&entry.seen.name);
                }
                let Some(owner) = entry.owner else {
                    return Vec::new();
                };
                if let Some(objects) = self.owners.get_mut(&owner) {
                    objects.remove(&entry.seen.key());
                    if objects.is_empty() {
                        self.owners.remove(&owner);
                    }
                }
                vec![owner]
            }
        }
    }

    /// Stores one object; returns its owner when the change calls for a pass: someone else wrote
    /// it, or a quota got (new) status.
    fn insert(&mut self, entry: Entry) -> Option<String> {
        let key = entry.seen.key();
        if self.in_flight.get(&key) == entry.seen.digest.as_ref() {
            self.in_flight.remove(&key);
        }
        if let Some(mark) = &entry.mark {
            // A namespace that changed hands (released by cleanup, relabelled by hand) leaves
            // its former owner's objects.
            let former = self
                .namespaces
                .insert(entry.seen.name.clone(), mark.clone())
                .and_then(|m| m.owner);
            if let Some(former) = former.filter(|f| Some(f) != entry.owner.as_ref()) {
                self.remove(&former, &key);
            }
        }
        let owner = entry.owner?;
        let objects = self.owners.entry(owner.clone()).or_default();
        let mut seen = entry.seen;
        let before = objects.get(&key);
        if let Some(before) = before
            && before.resource_version == seen.resource_version
        {
            seen.verified.clone_from(&before.verified);
        }
        // A quota the quota controller has just seen (or whose hard limits it recomputed): the
        // tenant's status sums them, once all its quotas have status.
        let status_hard = |s: &Seen| s.quota.as_ref().and_then(|q| q.status_hard.clone());
        let quota_status_changed = seen.kind == Kind::ResourceQuota
            && status_hard(&seen).is_some()
            && before.and_then(status_hard) != status_hard(&seen);
        let someone_else = !seen.ours_last;
        objects.insert(key, seen);
        let all_quotas_have_status = objects
            .values()
            .filter(|s| s.kind == Kind::ResourceQuota)
            .all(|s| status_hard(s).is_some());
        (someone_else || (quota_status_changed && all_quotas_have_status)).then_some(owner)
    }

    fn remove(&mut self, owner: &str, key: &Key) {
        if let Some(objects) = self.owners.get_mut(owner) {
            objects.remove(key);
            if objects.is_empty() {
                self.owners.remove(owner);
            }
        }
    }

    /// Replaces everything of `kind` by what its relist found. After the first listing, the
    /// owners of what changed or went away meanwhile are returned, so that a change missed while
    /// the watch was down still reaches its tenant.
    fn relisted(&mut self, kind: Kind) -> Vec<String> {
        let listed = self.relisting.remove(&kind).unwrap_or_default();
        let first = self.ready.insert(kind);
        // The listing is the truth now: a write remembered as in flight either shows in it or
        // was undone meanwhile (a deletion the interrupted watch missed).
        self.in_flight.retain(|key, _| key.0 != kind);
        let mut previous: BTreeMap<(String, Key), Seen> = BTreeMap::new();
        for (owner, objects) in &mut self.owners {
            let (gone, kept): (Objects, Objects) = std::mem::take(objects)
                .into_iter()
                .partition(|(key, _)| key.0 == kind);
            *objects = kept;
            previous.extend(
                gone.into_iter()
                    .map(|(key, seen)| ((owner.clone(), key), seen)),
            );
        }
        self.owners.retain(|_, objects| !objects.is_empty());
        if kind == Kind::Namespace {
            self.namespaces.clear();
        }
        let mut current: BTreeMap<(String, Key), String> = BTreeMap::new();
        for entry in listed {
            if let Some(mark) = entry.mark {
                self.namespaces.insert(entry.seen.name.clone(), mark);
            }
            let Some(owner) = entry.owner else { continue };
            let key = entry.seen.key();
            let mut seen = entry.seen;
            if let Some(before) = previous.get(&(owner.clone(), key.clone()))
                && before.resource_version == seen.resource_version
            {
                seen.verified.clone_from(&before.verified);
            }
            current.insert((owner.clone(), key.clone()), seen.resource_version.clone());
            self.owners.entry(owner).or_default().insert(key, seen);
        }
        if first {
            return Vec::new();
        }
        let mut triggered = BTreeSet::new();
        for (key, seen) in &previous {
            if current.get(key) != Some(&seen.resource_version) {
                triggered.insert(key.0.clone());
            }
        }
        for key in current.keys().filter(|key| !previous.contains_key(*key)) {
            triggered.insert(key.0.clone());
        }
        triggered.into_iter().collect()
    }
}

/// How long a pass waits for the caches to be listed (after a start) before it reads from the
/// API server instead.
const READY_WAIT: Duration = Duration::from_secs(10);

/// Where a pass reads its inputs from, as [`Caches::source`] decides.
pub enum Source {
    /// From the caches; `compare_soon` when the tenant's comparison against the API server is
    /// due but waits (for a spec change to be written first, or for a free comparison), so the
    /// pass asks to be made again a moment later.
    Caches {
        /// The comparison is due and was put off.
        compare_soon: bool,
    },
    /// From the API server: the caches are not listed, or the tenant's periodic comparison is
    /// due. The comparison's permit is held for the pass.
    ApiServer(Option<tokio::sync::OwnedSemaphorePermit>),
}

/// The caches of the DepartmentCloud controller: the index of what tenants made, the
/// controller's own cache of DepartmentClouds (for peers), and when each tenant was last
/// compared against the API server.
pub struct Caches {
    index: Mutex<OwnedIndex>,
    ready: tokio::sync::Notify,
    clouds: OnceLock<Store<DeserializeGuard<DepartmentCloud>>>,
    compared: Mutex<HashMap<String, Instant>>,
    /// Passes reading from the API server at once: a quarter of the controller's concurrency,
    /// so that comparisons falling due together never take every slot from the passes a change
    /// asks for (a spec change would wait behind all of them).
    comparisons: Arc<tokio::sync::Semaphore>,
    /// Streamed initial lists where the API server can (see the watches), else pages.
    initial_lists: watcher::InitialListStrategy,
}

impl Caches {
    /// Empty caches, filled by [`Caches::triggers`], for a controller running `concurrency`
    /// passes at once, listing as `initial_lists` says.
    pub fn new(concurrency: u16, initial_lists: watcher::InitialListStrategy) -> Arc<Caches> {
        Arc::new(Caches {
            index: Mutex::default(),
            ready: tokio::sync::Notify::new(),
            clouds: OnceLock::new(),
            compared: Mutex::default(),
            comparisons: Arc::new(tokio::sync::Semaphore::new(usize::from(
                (concurrency / 4).max(1),
            ))),
            initial_lists,
        })
    }

    /// Connects the controller's cache of DepartmentClouds.
    pub fn attach(&self, clouds: Store<DeserializeGuard<DepartmentCloud>>) {
        let _ = self.clouds.set(clouds);
    }

    /// The index, locked.
    pub fn index(&self) -> MutexGuard<'_, OwnedIndex> {
        self.index
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The DepartmentCloud `name`, as the controller's cache holds it.
    pub fn cloud(&self, name: &str) -> Option<DepartmentCloud> {
        let store = self.clouds.get()?;
        let guard = store.get(&ObjectRef::new(name))?;
        guard.0.as_ref().ok().cloned()
    }

    /// Where a pass of `tenant` reads from. The caches serve it once they are listed (waiting a
    /// little for that after a start) unless the tenant's comparison against the API server is
    /// due, that is, its last one is `every` old. A tenant first seen now counts as compared: the
    /// caches were just listed. A due comparison is put off, the pass served from the caches,
    /// when the pass is for a spec change (`spec_change`: its first write comes first) or when
    /// as many comparisons as allowed run already.
    pub async fn source(&self, tenant: &str, every: Duration, spec_change: bool) -> Source {
        let deadline = tokio::time::Instant::now() + READY_WAIT;
        loop {
            let notified = self.ready.notified();
            if self.index().ready() {
                break;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                // Nothing to serve from: wait for a comparison's place (this is a start, when
                // nothing else is waiting either).
                return Source::ApiServer(self.comparisons.clone().acquire_owned().await.ok());
            }
        }
        let due = {
            let mut compared = self
                .compared
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            let last = *compared
                .entry(tenant.to_owned())
                .or_insert_with(Instant::now);
            last.elapsed() >= every
        };
        if !due {
            return Source::Caches {
                compare_soon: false,
            };
        }
        if !spec_change && let Ok(permit) = self.comparisons.clone().try_acquire_owned() {
            return Source::ApiServer(Some(permit));
        }
        Source::Caches { compare_soon: true }
    }

    /// Records that `tenant` was just compared against the API server.
    pub fn compared(&self, tenant: &str) {
        self.compared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(tenant.to_owned(), Instant::now());
    }

    /// Forgets a tenant that went away.
    pub fn forget(&self, tenant: &str) {
        self.compared
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(tenant);
    }

    /// Starts the watches that fill the index, and returns the tenants to reconcile because of
    /// what they see (for `Controller::reconcile_on`).
    pub fn triggers(
        self: &Arc<Self>,
        client: &Client,
    ) -> impl Stream<Item = ObjectRef<DeserializeGuard<DepartmentCloud>>> + Send + 'static {
        let owned = format!("{MANAGED_BY}={MANAGER},{OWNER_KIND}=DepartmentCloud");
        let owned = || watcher::Config::default().labels(&owned);
        let streams = vec![
            // Every namespace, so that one a tenant wants is known to be someone else's.
            self.feed(
                Kind::Namespace,
                Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
                watcher::Config::default(),
                |meta: &PartialObjectMeta<Namespace>| meta_entry(Kind::Namespace, &meta.metadata),
            ),
            self.feed(
                Kind::ResourceQuota,
                Api::<ResourceQuota>::all(client.clone()),
                owned(),
                |quota: &ResourceQuota| {
                    let amounts = QuotaAmounts {
                        spec_hard: quota
                            .spec
                            .as_ref()
                            .and_then(|s| s.hard.clone())
                            .unwrap_or_default(),
                        status_hard: quota.status.as_ref().and_then(|s| s.hard.clone()),
                        status_used: quota.status.as_ref().and_then(|s| s.used.clone()),
                    };
                    Entry {
                        owner: owner_of(&quota.metadata),
                        mark: None,
                        seen: Seen::from_meta(Kind::ResourceQuota, &quota.metadata, Some(amounts)),
                    }
                },
            ),
            self.feed_meta::<LimitRange>(Kind::LimitRange, client, owned()),
            self.feed_meta::<NetworkPolicy>(Kind::NetworkPolicy, client, owned()),
            self.feed_meta::<RoleBinding>(Kind::RoleBinding, client, owned()),
            self.feed_meta::<ClusterRole>(Kind::ClusterRole, client, owned()),
            self.feed_meta::<ClusterRoleBinding>(Kind::ClusterRoleBinding, client, owned()),
        ];
        futures::stream::select_all(streams)
    }

    fn feed_meta<K>(
        self: &Arc<Self>,
        kind: Kind,
        client: &Client,
        config: watcher::Config,
    ) -> futures::stream::BoxStream<'static, ObjectRef<DeserializeGuard<DepartmentCloud>>>
    where
        K: Resource<DynamicType = ()>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug
            + Send
            + Sync
            + 'static,
    {
        self.feed(
            kind,
            Api::<PartialObjectMeta<K>>::all(client.clone()),
            config,
            move |meta: &PartialObjectMeta<K>| meta_entry(kind, &meta.metadata),
        )
    }

    fn feed<K>(
        self: &Arc<Self>,
        kind: Kind,
        api: Api<K>,
        config: watcher::Config,
        entry: impl Fn(&K) -> Entry + Send + 'static,
    ) -> futures::stream::BoxStream<'static, ObjectRef<DeserializeGuard<DepartmentCloud>>>
    where
        K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    {
        let caches = self.clone();
        // Listed as a stream of single objects (the API server's watch-list) where it can, not
        // in pages of 500: after a restart the seven watches list some twenty thousand objects
        // at once, and their pages, with every object's managedFields decoded, were the
        // operator's peak memory; an object here is reduced to its entry as it arrives.
        let config = watcher::Config {
            initial_list_strategy: self.initial_lists.clone(),
            ..config
        };
        watcher(api, config)
            .default_backoff()
            .filter_map(move |event| {
                let owners = match event {
                    Ok(event) => {
                        let change = match event {
                            watcher::Event::Init => Change::Init,
                            watcher::Event::InitApply(object) => Change::InitApply(entry(&object)),
                            watcher::Event::InitDone => Change::InitDone,
                            watcher::Event::Apply(object) => Change::Apply(entry(&object)),
                            watcher::Event::Delete(object) => Change::Delete(entry(&object)),
                        };
                        let done = change == Change::InitDone;
                        let owners = caches.index().apply(kind, change);
                        if done {
                            caches.ready.notify_waiters();
                        }
                        owners
                    }
                    Err(error) => {
                        tracing::debug!(kind = ?kind, %error, "watch of owned objects interrupted; resuming");
                        Vec::new()
                    }
                };
                futures::future::ready(Some(futures::stream::iter(
                    owners.into_iter().map(|owner| ObjectRef::new(&owner)),
                )))
            })
            .flatten()
            .boxed()
    }
}

/// The index's entry for an object known by its metadata.
fn meta_entry(kind: Kind, meta: &ObjectMeta) -> Entry {
    let owner = owner_of(meta);
    let mark = (kind == Kind::Namespace).then(|| NamespaceMark {
        owner: owner.clone(),
        retained_from: meta
            .labels
            .as_ref()
            .and_then(|l| l.get(RETAINED_FROM_LABEL))
            .cloned(),
    });
    Entry {
        owner,
        mark,
        seen: Seen::from_meta(kind, meta, None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ManagedFieldsEntry, Time};

    fn meta(
        kind: Kind,
        owner: Option<&str>,
        name: &str,
        version: &str,
        writer: &str,
    ) -> ObjectMeta {
        let mut labels = BTreeMap::new();
        if let Some(owner) = owner {
            labels.insert(MANAGED_BY.to_owned(), MANAGER.to_owned());
            labels.insert(OWNER_KIND.to_owned(), "DepartmentCloud".to_owned());
            labels.insert(OWNER_NAME.to_owned(), owner.to_owned());
        }
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: (kind != Kind::Namespace).then(|| "ns".to_owned()),
            uid: Some(format!("uid-{name}")),
            resource_version: Some(version.to_owned()),
            labels: Some(labels),
            managed_fields: Some(vec![ManagedFieldsEntry {
                manager: Some(writer.to_owned()),
                operation: Some("Apply".to_owned()),
                time: Some(Time(jiff::Timestamp::from_second(10).expect("time"))),
                ..Default::default()
            }]),
            ..Default::default()
        }
    }

    fn entry(kind: Kind, owner: &str, name: &str, version: &str, writer: &str) -> Entry {
        meta_entry(kind, &meta(kind, Some(owner), name, version, writer))
    }

    const OPERATOR: &str = crate::controllers::FIELD_MANAGER;

    fn listed(kinds: &[Kind]) -> OwnedIndex {
        let mut index = OwnedIndex::default();
        for kind in kinds {
            index.apply(*kind, Change::Init);
            index.apply(*kind, Change::InitDone);
        }
        index
    }

    #[test]
    fn the_index_is_ready_once_every_kind_is_listed() {
        let mut index = listed(&Kind::ALL[..6]);
        assert!(!index.ready());
        index.apply(Kind::ClusterRoleBinding, Change::InitDone);
        assert!(index.ready());
    }

    #[test]
    fn only_a_deletion_or_someone_elses_write_reconciles_the_owner() {
        let mut index = listed(&Kind::ALL);
        let ours = entry(Kind::NetworkPolicy, "a", "deny", "1", OPERATOR);
        assert_eq!(
            index.apply(Kind::NetworkPolicy, Change::Apply(ours.clone())),
            Vec::<String>::new()
        );
        assert_eq!(index.owned_by("a").len(), 1);
        let edited = entry(Kind::NetworkPolicy, "a", "deny", "2", "kubectl-edit");
        assert_eq!(
            index.apply(Kind::NetworkPolicy, Change::Apply(edited)),
            ["a"]
        );
        assert!(!index.owned_by("a")[0].ours_last);
        assert_eq!(
            index.apply(Kind::NetworkPolicy, Change::Delete(ours)),
            ["a"]
        );
        assert!(index.owned_by("a").is_empty());
    }

    #[test]
    fn a_change_missed_while_a_watch_was_down_reaches_its_owner_at_the_relist() {
        let mut index = listed(&Kind::ALL);
        let kept = entry(Kind::RoleBinding, "a", "admins", "1", OPERATOR);
        let lost = entry(Kind::RoleBinding, "b", "admins", "1", OPERATOR);
        for e in [&kept, &lost] {
            index.apply(Kind::RoleBinding, Change::Apply((*e).clone()));
        }
        // Relisted: b's binding went away meanwhile, a's is unchanged, c's is new.
        index.apply(Kind::RoleBinding, Change::Init);
        index.apply(Kind::RoleBinding, Change::InitApply(kept));
        index.apply(
            Kind::RoleBinding,
            Change::InitApply(entry(Kind::RoleBinding, "c", "admins", "5", OPERATOR)),
        );
        assert_eq!(index.apply(Kind::RoleBinding, Change::InitDone), ["b", "c"]);
        assert!(index.owned_by("b").is_empty());
        assert_eq!(index.owned_by("a").len(), 1);
    }

    #[test]
    fn the_first_listing_reconciles_nobody() {
        let mut index = OwnedIndex::default();
        index.apply(Kind::LimitRange, Change::Init);
        index.apply(
            Kind::LimitRange,
            Change::InitApply(entry(Kind::LimitRange, "a", "defaults", "1", "kubectl")),
        );
        assert_eq!(
            index.apply(Kind::LimitRange, Change::InitDone),
            Vec::<String>::new()
        );
        assert_eq!(index.owned_by("a").len(), 1);
    }

    #[test]
    fn every_namespace_is_known_and_a_released_one_leaves_its_owner() {
        let mut index = listed(&Kind::ALL);
        index.apply(
            Kind::Namespace,
            Change::Apply(entry(Kind::Namespace, "a", "a-prod", "1", OPERATOR)),
        );
        let foreign = meta_entry(
            Kind::Namespace,
            &meta(Kind::Namespace, None, "b-prod", "1", "kubectl"),
        );
        assert_eq!(
            index.apply(Kind::Namespace, Change::Apply(foreign)),
            Vec::<String>::new()
        );
        assert_eq!(index.namespace("b-prod"), Some(&NamespaceMark::default()));
        assert_eq!(
            index.namespace("a-prod").and_then(|m| m.owner.as_deref()),
            Some("a")
        );
        // Cleanup releases a's namespace: owner labels off, retained-from on.
        let mut released = meta(Kind::Namespace, None, "a-prod", "2", "govdc-operator");
        released
            .labels
            .get_or_insert_default()
            .insert(RETAINED_FROM_LABEL.to_owned(), "a".to_owned());
        index.apply(
            Kind::Namespace,
            Change::Apply(meta_entry(Kind::Namespace, &released)),
        );
        assert!(index.owned_by("a").is_empty());
        assert_eq!(
            index
                .namespace("a-prod")
                .and_then(|m| m.retained_from.as_deref()),
            Some("a")
        );
    }

    fn quota(owner: &str, name: &str, version: &str, status: bool) -> Entry {
        let hard: BTreeMap<String, Quantity> = [("pods".to_owned(), Quantity("5".into()))].into();
        Entry {
            owner: Some(owner.to_owned()),
            mark: None,
            seen: Seen::from_meta(
                Kind::ResourceQuota,
                &meta(Kind::ResourceQuota, Some(owner), name, version, OPERATOR),
                Some(QuotaAmounts {
                    spec_hard: hard.clone(),
                    status_hard: status.then(|| hard.clone()),
                    status_used: None,
                }),
            ),
        }
    }

    #[test]
    fn a_tenant_is_reconciled_once_all_its_new_quotas_have_status() {
        let mut index = listed(&Kind::ALL);
        let mut prod = quota("a", "q", "1", false);
        prod.seen.namespace = Some("a-prod".into());
        let mut test = quota("a", "q", "1", false);
        test.seen.namespace = Some("a-test".into());
        assert!(
            index
                .apply(Kind::ResourceQuota, Change::Apply(prod.clone()))
                .is_empty()
        );
        assert!(
            index
                .apply(Kind::ResourceQuota, Change::Apply(test.clone()))
                .is_empty()
        );
        let mut prod_status = quota("a", "q", "2", true);
        prod_status.seen.namespace = prod.seen.namespace.clone();
        assert!(
            index
                .apply(Kind::ResourceQuota, Change::Apply(prod_status))
                .is_empty()
        );
        let mut test_status = quota("a", "q", "2", true);
        test_status.seen.namespace = test.seen.namespace.clone();
        assert_eq!(
            index.apply(Kind::ResourceQuota, Change::Apply(test_status.clone())),
            ["a"]
        );
        // The same status again (a usage update elsewhere) is no reason.
        let mut again = test_status;
        again.seen.resource_version = "3".into();
        assert!(
            index
                .apply(Kind::ResourceQuota, Change::Apply(again))
                .is_empty()
        );
    }

    #[test]
    fn an_own_write_not_seen_yet_is_remembered_until_its_event_arrives() {
        let mut index = listed(&Kind::ALL);
        let mut first = entry(Kind::NetworkPolicy, "a", "deny", "1", OPERATOR);
        first.seen.digest = Some("d1".into());
        let key = first.seen.key();
        index.apply(Kind::NetworkPolicy, Change::Apply(first));
        // Seen already: nothing to remember.
        index.wrote("a", key.clone(), "d1");
        assert_eq!(index.in_flight(&key), None);
        index.wrote("a", key.clone(), "d2");
        assert_eq!(index.in_flight(&key), Some("d2"));
        let mut second = entry(Kind::NetworkPolicy, "a", "deny", "2", OPERATOR);
        second.seen.digest = Some("d2".into());
        index.apply(Kind::NetworkPolicy, Change::Apply(second));
        assert_eq!(index.in_flight(&key), None);
    }

    #[test]
    fn a_relist_forgets_the_writes_in_flight_of_its_kind() {
        let mut index = listed(&Kind::ALL);
        let policy = entry(Kind::NetworkPolicy, "a", "deny", "1", OPERATOR)
            .seen
            .key();
        let binding = entry(Kind::RoleBinding, "a", "admins", "1", OPERATOR)
            .seen
            .key();
        index.wrote("a", policy.clone(), "d1");
        index.wrote("a", binding.clone(), "d1");
        index.apply(Kind::NetworkPolicy, Change::Init);
        index.apply(Kind::NetworkPolicy, Change::InitDone);
        assert_eq!(index.in_flight(&policy), None);
        assert_eq!(index.in_flight(&binding), Some("d1"));
    }

    fn listed_caches(concurrency: u16) -> Arc<Caches> {
        let caches = Caches::new(concurrency, watcher::InitialListStrategy::ListWatch);
        *caches.index() = listed(&Kind::ALL);
        caches
    }

    #[tokio::test]
    async fn a_due_comparison_waits_for_a_spec_change_and_for_a_free_place() {
        // Concurrency 4: one comparison at a time.
        let caches = listed_caches(4);
        let due = Duration::ZERO;
        assert!(matches!(
            caches.source("a", Duration::from_secs(60), false).await,
            Source::Caches {
                compare_soon: false
            }
        ));
        assert!(matches!(
            caches.source("a", due, true).await,
            Source::Caches { compare_soon: true }
        ));
        let Source::ApiServer(Some(permit)) = caches.source("a", due, false).await else {
            panic!("a due comparison with a free place reads from the API server");
        };
        assert!(matches!(
            caches.source("b", due, false).await,
            Source::Caches { compare_soon: true }
        ));
        drop(permit);
        assert!(matches!(
            caches.source("b", due, false).await,
            Source::ApiServer(Some(_))
        ));
    }

    #[test]
    fn a_verified_digest_lasts_only_as_long_as_its_resource_version() {
        let mut index = listed(&Kind::ALL);
        let edited = entry(Kind::NetworkPolicy, "a", "deny", "1", "kubectl");
        let key = edited.seen.key();
        index.apply(Kind::NetworkPolicy, Change::Apply(edited));
        index.verify("a", &key, "1", "d1");
        assert_eq!(index.owned_by("a")[0].verified.as_deref(), Some("d1"));
        index.apply(
            Kind::NetworkPolicy,
            Change::Apply(entry(Kind::NetworkPolicy, "a", "deny", "1", "kubectl")),
        );
        assert_eq!(index.owned_by("a")[0].verified.as_deref(), Some("d1"));
        index.apply(
            Kind::NetworkPolicy,
            Change::Apply(entry(Kind::NetworkPolicy, "a", "deny", "2", "kubectl")),
        );
        assert_eq!(index.owned_by("a")[0].verified, None);
        // A stale verification (another resourceVersion) is not recorded.
        index.verify("a", &key, "1", "d1");
        assert_eq!(index.owned_by("a")[0].verified, None);
    }
}
