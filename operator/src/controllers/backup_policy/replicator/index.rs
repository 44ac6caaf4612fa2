//! The replicator's pure state, in the way linkerd's policy controller keeps its index apart
//! from the task that writes status: what is protected (the selected DepartmentClouds, their
//! namespaces, the cleaned copy of every protected object), what the target holds, and which
//! keys need a look. The watches feed it events; it decides what each key needs on the target
//! ([`Index::plan`]: apply, unmark, mark as deleted, or nothing) and where a copy's place is
//! taken. No client: the driver (`replicator.rs`) makes the requests, and the tests here feed
//! events by hand.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Instant;

use govdc_crds::backup_policy::TargetConflict;
use govdc_crds::common::DEPARTMENT_LABEL;
use jiff::Timestamp;
use kube::api::DynamicObject;
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::Value;

use super::super::clean::{CleanOptions, clean, map_namespace, replicable, source_hash};
use super::super::kinds::Kind;
use super::super::source::{Scope, selects};

/// One protected object, as the standby should hold it. The copy is shared with the writes
/// planned from it, so that planning ten thousand writes copies no object.
#[derive(Clone, Debug)]
pub(super) struct Desired {
    pub(super) copy: Arc<Value>,
    pub(super) hash: String,
}

/// A copy on the target.
#[derive(Clone, Debug, Default)]
pub(super) struct Held {
    /// The content hash the copy carries.
    pub(super) hash: Option<String>,
    /// When it was marked as having lost its source.
    pub(super) marked: Option<Timestamp>,
}

/// Identity of a protected object: its kind (index into the replicator's kinds, 0 being
/// Namespace), source namespace and name. A namespace's key has its own name as namespace.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(super) struct Key {
    pub(super) kind: usize,
    pub(super) namespace: String,
    pub(super) name: String,
}

/// A listing whose initial pass finished: nothing is written before every one did, since a
/// copy of a half-listed source would delete what was not listed yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum Listed {
    /// The DepartmentClouds (in scheduled mode: the whole source).
    Departments,
    /// The tenant namespaces.
    Namespaces,
    /// A replicated kind (index into the replicator's kinds).
    Kind(usize),
}

/// One write to the target.
pub(super) enum Action {
    /// Apply the copy (with its hash), clearing a deletion mark it carries when the flag is set.
    Apply(Arc<Value>, String, bool),
    /// Clear the deletion mark of a copy whose source is back unchanged.
    Unmark(Arc<Value>),
    /// Mark the copy (named by its reference): its source is gone.
    Mark(Arc<Value>),
}

/// What is protected and what the target holds.
pub(super) struct Index {
    /// Namespace first, then the replicated kinds.
    pub(super) kinds: Vec<Kind>,
    clean: CleanOptions,
    scope: Scope,
    /// Watch-driven (else a scheduled pass lists the source).
    continuous: bool,
    /// Selected DepartmentClouds.
    pub(super) departments: BTreeSet<String>,
    /// Every tenant namespace, protected or not, and the listed ExchangeNodes' namespaces:
    /// name -> department (its `govdc.io/department` label; a node's namespace may have none).
    pub(super) namespaces: BTreeMap<String, Option<String>>,
    pub(super) desired: HashMap<Key, Desired>,
    pub(super) held: HashMap<Key, Held>,
    /// Keys to look at, with when their change was first seen.
    pub(super) dirty: BTreeMap<Key, Instant>,
    /// Keys the target refused, retried at the next full resync.
    pub(super) rejected: BTreeSet<Key>,
    /// Listings whose initial pass finished.
    pub(super) initialised: BTreeSet<Listed>,
    /// Tenant namespaces first seen since the last loop, to list.
    pub(super) new_namespaces: Vec<String>,
    /// Kinds (indices) the target does not serve.
    pub(super) unserved: BTreeSet<usize>,
    /// Objects on the target this policy did not make, where one of its copies would go (keys
    /// by source namespace, as the desired objects'): conflicts, never written.
    pub(super) foreign: BTreeSet<Key>,
}

impl Index {
    /// Nothing known yet of `kinds` (Namespace first), copied with `clean`, of what `scope`
    /// protects.
    pub(super) fn new(
        kinds: Vec<Kind>,
        clean: CleanOptions,
        scope: Scope,
        continuous: bool,
    ) -> Index {
        Index {
            kinds,
            clean,
            scope,
            continuous,
            departments: BTreeSet::new(),
            namespaces: BTreeMap::new(),
            desired: HashMap::new(),
            held: HashMap::new(),
            dirty: BTreeMap::new(),
            rejected: BTreeSet::new(),
            initialised: BTreeSet::new(),
            new_namespaces: Vec::new(),
            unserved: BTreeSet::new(),
            foreign: BTreeSet::new(),
        }
    }

    /// Whether every listing the copies depend on finished once.
    pub(super) fn initial_listing_done(&self) -> bool {
        if self.continuous {
            self.initialised.contains(&Listed::Departments)
                && self.initialised.contains(&Listed::Namespaces)
                && (1..self.kinds.len()).all(|k| self.initialised.contains(&Listed::Kind(k)))
        } else {
            // A scheduled pass lists the whole source at once.
            self.initialised.contains(&Listed::Departments)
        }
    }

    /// Whether `namespace` is protected: a tenant namespace of a selected DepartmentCloud, or
    /// a listed ExchangeNode's.
    pub(super) fn protected(&self, namespace: &str) -> bool {
        self.namespaces.get(namespace).is_some_and(|department| {
            self.scope
                .protects(namespace, department.as_deref(), &self.departments)
        })
    }

    /// The protected namespaces.
    pub(super) fn protected_namespaces(&self) -> impl Iterator<Item = &String> {
        self.namespaces.keys().filter(|n| self.protected(n))
    }

    /// Whether the namespace watch must see every namespace, not only the labelled tenant ones:
    /// the policy lists ExchangeNodes, whose namespaces need no label.
    pub(super) fn watches_unlabelled_namespaces(&self) -> bool {
        !self.scope.node_namespaces.is_empty()
    }

    /// Marks `key` to be looked at, keeping when its first unwritten change was seen.
    pub(super) fn touch(&mut self, key: Key) {
        self.dirty.entry(key).or_insert_with(Instant::now);
    }

    /// Marks every key of a namespace dirty: its protection changed.
    pub(super) fn touch_namespace(&mut self, namespace: &str) {
        let keys: Vec<Key> = self
            .desired
            .keys()
            .chain(self.held.keys())
            .filter(|k| k.namespace == namespace)
            .cloned()
            .collect();
        for key in keys {
            self.touch(key);
        }
    }

    /// Takes an event of the DepartmentCloud watch: what is selected.
    pub(super) fn handle_department(&mut self, event: watcher::Event<DynamicObject>) {
        let before = self.departments.clone();
        match event {
            watcher::Event::Init => self.departments.clear(),
            watcher::Event::InitDone => {
                self.initialised.insert(Listed::Departments);
            }
            watcher::Event::Apply(d) | watcher::Event::InitApply(d) => {
                let name = d.name_any();
                if selects(&self.scope.departments, d.labels()) {
                    self.departments.insert(name);
                } else {
                    self.departments.remove(&name);
                }
            }
            watcher::Event::Delete(d) => {
                self.departments.remove(&d.name_any());
            }
        }
        if before != self.departments {
            let changed: Vec<String> = self
                .namespaces
                .iter()
                .filter(|(_, d)| {
                    d.as_ref()
                        .is_some_and(|d| before.contains(d) != self.departments.contains(d))
                })
                .map(|(n, _)| n.clone())
                .collect();
            for namespace in changed {
                self.touch_namespace(&namespace);
            }
        }
    }

    /// Takes an event of the tenant namespace watch.
    pub(super) fn handle_namespace(&mut self, event: watcher::Event<DynamicObject>) {
        match event {
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                self.initialised.insert(Listed::Namespaces);
            }
            watcher::Event::Apply(ns) | watcher::Event::InitApply(ns) => {
                let name = ns.name_any();
                let department = ns.labels().get(DEPARTMENT_LABEL).cloned();
                let was_protected = self.protected(&name);
                let value = serde_json::to_value(&ns).unwrap_or(Value::Null);
                let key = Key {
                    kind: 0,
                    namespace: name.clone(),
                    name: name.clone(),
                };
                let known = department.is_some() || self.scope.node_namespaces.contains(&name);
                if known && ns.meta().deletion_timestamp.is_none() {
                    if self.namespaces.insert(name.clone(), department).is_none()
                        && self.initialised.contains(&Listed::Namespaces)
                    {
                        self.new_namespaces.push(name.clone());
                    }
                    self.set_desired(key, &value);
                } else {
                    let was_known = self.namespaces.remove(&name).is_some();
                    let was_desired = self.desired.remove(&key).is_some();
                    // A namespace no longer a tenant's (or being deleted) needs a look; an
                    // unrelated one, seen when the watch covers every namespace, nothing.
                    if was_known || was_desired || self.held.contains_key(&key) {
                        self.touch(key);
                    }
                }
                if was_protected != self.protected(&name) {
                    self.touch_namespace(&name);
                }
            }
            watcher::Event::Delete(ns) => {
                let name = ns.name_any();
                self.namespaces.remove(&name);
                self.touch_namespace(&name);
                let key = Key {
                    kind: 0,
                    namespace: name.clone(),
                    name,
                };
                self.desired.remove(&key);
                self.touch(key);
            }
        }
    }

    /// Takes an event of the watch of replicated kind `kind`.
    pub(super) fn handle_object(&mut self, kind: usize, event: watcher::Event<DynamicObject>) {
        let key_of = |o: &DynamicObject| Key {
            kind,
            namespace: o.namespace().unwrap_or_default(),
            name: o.name_any(),
        };
        match event {
            watcher::Event::Init => {}
            watcher::Event::InitDone => {
                self.initialised.insert(Listed::Kind(kind));
            }
            watcher::Event::Apply(o) | watcher::Event::InitApply(o) => {
                let key = key_of(&o);
                if !self.namespaces.contains_key(&key.namespace) {
                    return;
                }
                let value = serde_json::to_value(&o).unwrap_or(Value::Null);
                if replicable(&self.kinds[kind], &value) {
                    self.set_desired(key, &value);
                } else if self.desired.remove(&key).is_some() {
                    self.touch(key);
                }
            }
            watcher::Event::Delete(o) => {
                let key = key_of(&o);
                if self.desired.remove(&key).is_some() || self.held.contains_key(&key) {
                    self.touch(key);
                }
            }
        }
    }

    /// Keeps the copy of `source` for `key`, marking it dirty when it changed.
    pub(super) fn set_desired(&mut self, key: Key, source: &Value) {
        let copy = clean(&self.kinds[key.kind], source, &self.clean);
        let hash = source_hash(&copy).unwrap_or_default().to_owned();
        let unchanged = self.desired.get(&key).is_some_and(|d| d.hash == hash);
        if !unchanged {
            self.desired.insert(
                key.clone(),
                Desired {
                    copy: Arc::new(copy),
                    hash,
                },
            );
            self.touch(key);
        }
    }

    /// What the target needs for `key`, if anything.
    pub(super) fn plan(&self, key: &Key) -> Option<Action> {
        if self.foreign.contains(key) || self.unserved.contains(&key.kind) {
            // Not this policy's to write (a conflict), or nowhere to write it (reported).
            return None;
        }
        let desired = self
            .desired
            .get(key)
            .filter(|_| self.protected(&key.namespace));
        let held = self.held.get(key);
        match (desired, held) {
            (Some(d), Some(h)) if h.hash.as_deref() == Some(&d.hash) && h.marked.is_none() => None,
            (Some(d), Some(h)) if h.hash.as_deref() == Some(&d.hash) => {
                Some(Action::Unmark(d.copy.clone()))
            }
            (Some(d), held) => Some(Action::Apply(
                d.copy.clone(),
                d.hash.clone(),
                held.is_some_and(|h| h.marked.is_some()),
            )),
            (None, Some(h)) if h.marked.is_none() => {
                Some(Action::Mark(Arc::new(self.reference(key))))
            }
            _ => None,
        }
    }

    /// Whether the target needs a write for `key`.
    pub(super) fn needs_work(&self, key: &Key) -> bool {
        self.plan(key).is_some()
    }

    /// A copy's identity on the target, for marks and deletes.
    pub(super) fn reference(&self, key: &Key) -> Value {
        let namespace = map_namespace(&self.clean.mapping, &key.namespace);
        if key.kind == 0 {
            serde_json::json!({"metadata": {"name": namespace}})
        } else {
            serde_json::json!({"metadata": {"name": key.name, "namespace": namespace}})
        }
    }

    /// Copies on the target not marked for deletion.
    pub(super) fn copies(&self) -> usize {
        self.held.values().filter(|h| h.marked.is_none()).count()
    }

    /// Copies on the target marked for deletion, waiting out the grace period.
    pub(super) fn pending_deletions(&self) -> usize {
        self.held.values().filter(|h| h.marked.is_some()).count()
    }

    /// Target namespaces the mapping would write into that this policy did not make.
    pub(super) fn namespace_conflicts(&self) -> Vec<String> {
        self.foreign
            .iter()
            .filter(|k| k.kind == 0 && self.protected(&k.namespace) && self.desired.contains_key(k))
            .map(|k| map_namespace(&self.clean.mapping, &k.namespace))
            .collect()
    }

    /// Whether any protected object's place on the target is taken (see [`Index::conflicts`]).
    pub(super) fn has_conflicts(&self) -> bool {
        self.foreign
            .iter()
            .any(|k| self.protected(&k.namespace) && self.desired.contains_key(k))
    }

    /// Every protected object whose place on the target is taken by one the policy did not
    /// make, as status lists it.
    pub(super) fn conflicts(&self) -> Vec<TargetConflict> {
        self.foreign
            .iter()
            .filter(|k| self.protected(&k.namespace) && self.desired.contains_key(k))
            .map(|k| {
                let namespace = map_namespace(&self.clean.mapping, &k.namespace);
                TargetConflict {
                    kind: self.kinds[k.kind].qualified(),
                    namespace: (k.kind != 0).then(|| namespace.clone()),
                    name: if k.kind == 0 {
                        namespace
                    } else {
                        k.name.clone()
                    },
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).expect("object")
    }

    /// An empty index of Namespaces and ConfigMaps of what `scope` protects.
    fn config_maps_of(scope: Scope) -> Index {
        let kinds = vec![
            super::super::super::kinds::namespace(),
            super::super::super::kinds::find("v1", "ConfigMap").expect("ConfigMap"),
        ];
        let clean = CleanOptions {
            policy: "dr".into(),
            mapping: Default::default(),
            warm_standby: false,
        };
        Index::new(kinds, clean, scope, true)
    }

    /// An index of ConfigMaps of every DepartmentCloud, its namespace `tax` of department
    /// `finance` selected and listed.
    fn listed() -> Index {
        let mut index = config_maps_of(Scope::default());
        index.handle_department(watcher::Event::Apply(object(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
            "metadata": {"name": "finance"}}))));
        index.handle_namespace(watcher::Event::Apply(object(json!({
            "apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "tax", "labels": {DEPARTMENT_LABEL: "finance"}}}))));
        for listing in [Listed::Departments, Listed::Namespaces, Listed::Kind(1)] {
            index.initialised.insert(listing);
        }
        index
    }

    fn config_map() -> DynamicObject {
        object(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "rates", "namespace": "tax"}, "data": {"vat": "13"}}))
    }

    fn key() -> Key {
        Key {
            kind: 1,
            namespace: "tax".into(),
            name: "rates".into(),
        }
    }

    #[test]
    fn a_new_object_is_applied_and_once_held_needs_nothing() {
        let mut index = listed();
        assert!(index.initial_listing_done());
        index.handle_object(1, watcher::Event::Apply(config_map()));
        assert!(index.dirty.contains_key(&key()));
        let Some(Action::Apply(_, hash, false)) = index.plan(&key()) else {
            panic!("a new copy is applied");
        };
        index.held.insert(
            key(),
            Held {
                hash: Some(hash),
                marked: None,
            },
        );
        assert!(index.plan(&key()).is_none(), "the target holds it");
        assert_eq!(index.copies(), 1);
    }

    #[test]
    fn a_deleted_source_is_marked_never_deleted_at_once_and_unmarked_when_it_returns() {
        let mut index = listed();
        index.handle_object(1, watcher::Event::Apply(config_map()));
        let hash = index.desired[&key()].hash.clone();
        index.held.insert(
            key(),
            Held {
                hash: Some(hash.clone()),
                marked: None,
            },
        );
        index.handle_object(1, watcher::Event::Delete(config_map()));
        assert!(matches!(index.plan(&key()), Some(Action::Mark(_))));
        index.held.insert(
            key(),
            Held {
                hash: Some(hash),
                marked: Some(Timestamp::now()),
            },
        );
        assert!(index.plan(&key()).is_none(), "marked: the sweep decides");
        assert_eq!(index.pending_deletions(), 1);
        index.handle_object(1, watcher::Event::Apply(config_map()));
        assert!(matches!(index.plan(&key()), Some(Action::Unmark(_))));
    }

    #[test]
    fn a_listed_exchange_nodes_namespace_is_protected_without_a_label_and_others_are_not() {
        let mut index = config_maps_of(Scope {
            departments: Default::default(),
            node_namespaces: BTreeSet::from(["govdc-hub".to_owned()]),
        });
        assert!(index.watches_unlabelled_namespaces());
        for name in ["govdc-hub", "kube-system"] {
            index.handle_namespace(watcher::Event::InitApply(object(json!({
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}))));
        }
        for listing in [Listed::Departments, Listed::Namespaces, Listed::Kind(1)] {
            index.initialised.insert(listing);
        }
        let in_namespace = |namespace: &str| {
            object(json!({"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "hub-config", "namespace": namespace}}))
        };
        index.handle_object(1, watcher::Event::Apply(in_namespace("govdc-hub")));
        index.handle_object(1, watcher::Event::Apply(in_namespace("kube-system")));
        assert_eq!(
            index.protected_namespaces().collect::<Vec<_>>(),
            ["govdc-hub"]
        );
        let node_key = Key {
            kind: 1,
            namespace: "govdc-hub".into(),
            name: "hub-config".into(),
        };
        assert!(matches!(index.plan(&node_key), Some(Action::Apply(..))));
        let system_key = Key {
            namespace: "kube-system".into(),
            ..node_key.clone()
        };
        assert!(index.plan(&system_key).is_none());
        assert!(
            !index.dirty.keys().any(|k| k.namespace == "kube-system"),
            "an unrelated namespace needs no look"
        );
        // Deleting the node's namespace drops its copies' sources.
        index.handle_namespace(watcher::Event::Delete(object(json!({
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "govdc-hub"}}))));
        assert!(index.plan(&node_key).is_none());
    }

    #[test]
    fn a_place_taken_on_the_target_is_a_conflict_and_not_written() {
        let mut index = listed();
        index.handle_object(1, watcher::Event::Apply(config_map()));
        index.foreign.insert(key());
        assert!(index.plan(&key()).is_none());
        assert!(index.has_conflicts());
        assert_eq!(index.conflicts().len(), 1);
        assert!(index.namespace_conflicts().is_empty());
    }
}
