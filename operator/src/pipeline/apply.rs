//! Server-side apply of desired objects, with the operator's field manager and `force`: the
//! operator owns the fields it sets, and a conflicting manual edit is drift to repair. An object
//! whose current state already holds every desired field is not written, so a resync of
//! converged state makes no writes.

use std::future::Future;

use futures::{StreamExt, stream};
use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;
use serde_json::Value;

use super::ownership::Owned;
use super::prune::{ObjectKey, key};
use crate::error::{Error, Result};
use crate::quantity;

/// One object a controller wants to exist, in a form any kind can take.
#[derive(Clone, Debug)]
pub struct DesiredObject {
    /// The object's API resource (group, version, kind, plural).
    pub resource: ApiResource,
    /// The object as JSON, apiVersion and kind included.
    pub object: DynamicObject,
}

impl DesiredObject {
    /// Wraps a typed object.
    pub fn from_typed<K>(object: &K) -> Result<DesiredObject>
    where
        K: Resource<DynamicType = ()> + Serialize,
    {
        let resource = ApiResource::erase::<K>(&());
        let what = || format!("{} {}", K::kind(&()), object.name_any());
        let value = serde_json::to_value(object).map_err(|source| Error::Serialize {
            what: what(),
            source,
        })?;
        let object: DynamicObject =
            serde_json::from_value(value).map_err(|source| Error::Serialize {
                what: what(),
                source,
            })?;
        Ok(DesiredObject { resource, object })
    }

    /// The object's identity.
    pub fn key(&self) -> ObjectKey {
        key(&self.resource, &self.object)
    }

    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        describe(&self.resource, &self.object)
    }

    /// The API through which the object is written.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        super::dynamic_api(client, self.object.namespace().as_deref(), &self.resource)
    }
}

/// `Kind namespace/name`, for messages.
pub fn describe(resource: &ApiResource, object: &DynamicObject) -> String {
    match object.namespace() {
        Some(ns) => format!("{} {ns}/{}", resource.kind, object.name_any()),
        None => format!("{} {}", resource.kind, object.name_any()),
    }
}

/// What an apply pass did.
#[derive(Debug, Default)]
pub struct Applied {
    /// Every desired object as it now stands on the server.
    pub objects: Vec<(ApiResource, DynamicObject)>,
    /// The objects that had to be written (created, or repaired after drift).
    pub written: Vec<String>,
}

/// How many writes one apply pass has in flight at once.
const APPLY_CONCURRENCY: usize = 8;

/// Runs `writes` a few at a time and waits for every one of them before answering with the
/// first error, if any. A pass must not end while one of its writes is still in flight: a
/// request dropped after it was sent is still carried out by the API server, and it could land
/// after the next pass (a deletion's clean-up releasing the objects) and undo it.
pub async fn settle_all<T>(
    writes: impl IntoIterator<Item = impl Future<Output = Result<T>>>,
) -> Result<Vec<T>> {
    let results: Vec<Result<T>> = stream::iter(writes)
        .buffer_unordered(APPLY_CONCURRENCY)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Applies every desired object whose current state (from `existing`) differs from it. Objects
/// without a namespace (namespaces themselves, cluster roles) go first, then cluster role
/// bindings, then the namespaced objects; within each wave the writes run concurrently.
pub async fn apply_changed(
    client: &Client,
    field_manager: &str,
    desired: &[DesiredObject],
    existing: &[Owned],
) -> Result<Applied> {
    let params = PatchParams::apply(field_manager).force();
    let mut stored: Vec<Option<DynamicObject>> = vec![None; desired.len()];
    let mut pending: Vec<usize> = Vec::new();
    for (index, object) in desired.iter().enumerate() {
        let wanted_key = object.key();
        let current = existing
            .iter()
            .find(|o| key(&o.resource, &o.object) == wanted_key);
        match current {
            Some(current) if holds(&content(&current.object), &content(&object.object)) => {
                stored[index] = Some(current.object.clone());
            }
            _ => pending.push(index),
        }
    }
    let (cluster_wave, namespaced_wave): (Vec<usize>, Vec<usize>) = pending
        .iter()
        .partition(|&&index| desired[index].object.namespace().is_none());
    // A ClusterRoleBinding goes after the ClusterRoles: RBAC reads the role a binding names
    // (unless the binder may `bind` it by name) and refuses the binding while it does not exist.
    let (binding_wave, cluster_wave): (Vec<usize>, Vec<usize>) = cluster_wave
        .into_iter()
        .partition(|&index| desired[index].resource.kind == "ClusterRoleBinding");
    for wave in [cluster_wave, binding_wave, namespaced_wave] {
        let writes: Vec<(usize, DynamicObject)> = settle_all(wave.into_iter().map(|index| {
            let object = &desired[index];
            let params = &params;
            async move {
                object
                    .api(client)
                    .patch(
                        &object.object.name_any(),
                        params,
                        &Patch::Apply(&object.object),
                    )
                    .await
                    .map(|written| (index, written))
                    .map_err(|source| Error::Apply {
                        what: object.describe(),
                        source,
                    })
            }
        }))
        .await?;
        for (index, written) in writes {
            stored[index] = Some(written);
        }
    }
    let mut applied = Applied {
        written: pending
            .iter()
            .map(|&index| desired[index].describe())
            .collect(),
        ..Applied::default()
    };
    for (object, stored) in desired.iter().zip(stored) {
        if let Some(stored) = stored {
            applied.objects.push((object.resource.clone(), stored));
        }
    }
    Ok(applied)
}

/// An object's fields without apiVersion and kind, which items of a LIST do not carry.
fn content(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("apiVersion");
        map.remove("kind");
    }
    value
}

/// Whether `current` holds every field of `desired` with the same value: objects key by key,
/// arrays element by element, quantities by amount (`0.5` and `500m` are the same).
pub fn holds(current: &Value, desired: &Value) -> bool {
    match (current, desired) {
        (Value::Object(current), Value::Object(desired)) => desired
            .iter()
            .all(|(k, v)| v.is_null() || current.get(k).is_some_and(|c| holds(c, v))),
        (Value::Array(current), Value::Array(desired)) => {
            current.len() == desired.len() && current.iter().zip(desired).all(|(c, d)| holds(c, d))
        }
        (Value::String(current), Value::String(desired)) => quantity::same(current, desired),
        (Value::String(current), Value::Number(desired))
        | (Value::Number(desired), Value::String(current)) => {
            quantity::same(current, &desired.to_string())
        }
        (current, desired) => current == desired,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_superset_holds_the_desired_fields() {
        let current = json!({"metadata": {"name": "a", "uid": "1", "labels": {"x": "1", "y": "2"}}, "spec": {"hard": {"cpu": "500m"}}});
        let desired = json!({"metadata": {"name": "a", "labels": {"x": "1"}}, "spec": {"hard": {"cpu": "0.5"}}});
        assert!(holds(&current, &desired));
    }

    #[test]
    fn a_changed_or_missing_field_does_not_hold() {
        let current = json!({"spec": {"hard": {"cpu": "1"}}});
        assert!(!holds(&current, &json!({"spec": {"hard": {"cpu": "2"}}})));
        assert!(!holds(
            &current,
            &json!({"spec": {"hard": {"memory": "1Gi"}}})
        ));
    }

    #[test]
    fn arrays_must_match_in_length_and_order() {
        let current =
            json!({"subjects": [{"kind": "User", "name": "a"}, {"kind": "User", "name": "b"}]});
        assert!(!holds(
            &current,
            &json!({"subjects": [{"kind": "User", "name": "a"}]})
        ));
        assert!(holds(
            &current,
            &json!({"subjects": [{"name": "a"}, {"name": "b"}]})
        ));
    }
}
