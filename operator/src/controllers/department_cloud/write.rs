//! The apply and prune steps of a DepartmentCloud pass, decided from what the pass read: the
//! caches ([`super::cache`]) or, for the periodic comparison and after a refusal, the API server.
//!
//! Every object is written with a digest of its desired content ([`DIGEST_ANNOTATION`]), so
//! that the caches need no content to know an object still holds what a pass wants: its digest
//! is the desired one and nobody but the operator wrote it since. An object someone else also
//! wrote is read back before it is left alone. New namespaces are created, not applied (see
//! [`super::claim`]). Namespaces and cluster roles go first, then everything inside the
//! namespaces and the cluster role bindings (RBAC refuses a binding to a role that does not
//! exist yet), each wave's writes concurrently. A prune deletes under the uid and
//! resourceVersion the pass saw, so a stale view cannot delete what it did not mean to.

use std::collections::BTreeSet;

use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, Preconditions};
use kube::{Api, Client, ResourceExt};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::cache::{Caches, DIGEST_ANNOTATION, Key, Kind, Seen};
use super::claim;
use super::read::Inputs;
use crate::error::{Error, Result};
use crate::pipeline::apply::{Applied, DesiredObject, describe, holds, settle_all};
use crate::pipeline::ownership::Owner;

/// An object's fields without apiVersion and kind, which items of a LIST do not carry.
pub fn content(object: &DynamicObject) -> Value {
    let mut value = serde_json::to_value(object).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("apiVersion");
        map.remove("kind");
    }
    value
}

/// The digest of a desired object's content (sha-256, the first 16 hex digits).
pub fn digest(object: &DynamicObject) -> String {
    let bytes = serde_json::to_vec(&content(object)).unwrap_or_default();
    let hash = Sha256::digest(&bytes);
    hex::encode(&hash[..8])
}

/// A desired object with its digest, as it is written.
struct Planned {
    /// The object as written, the digest annotation included.
    object: DesiredObject,
    /// The content the object must hold (without the annotation, which objects written before
    /// digests existed lack).
    wanted: Value,
    digest: String,
    kind: Option<Kind>,
}

fn plan(desired: &DesiredObject) -> Planned {
    let digest = digest(&desired.object);
    let wanted = content(&desired.object);
    let mut object = desired.clone();
    object
        .object
        .metadata
        .annotations
        .get_or_insert_default()
        .insert(DIGEST_ANNOTATION.to_owned(), digest.clone());
    Planned {
        kind: Kind::of(&object.resource),
        object,
        wanted,
        digest,
    }
}

fn key_of(planned: &Planned) -> Option<Key> {
    Some((
        planned.kind?,
        planned.object.object.namespace(),
        planned.object.object.name_any(),
    ))
}

/// Whether `seen` provably holds `planned` without reading it: from its content when the pass
/// read it from the API server, else by its digest when only the operator wrote it since (or
/// its content was read back and found to hold at this resourceVersion).
fn holds_already(seen: &Seen, planned: &Planned, in_flight: Option<&str>) -> Option<bool> {
    if let Some(content) = &seen.content {
        return Some(holds(content, &planned.wanted));
    }
    // The operator's last write, which the cache has not caught up with, is what the object
    // holds (unless someone else wrote since, which the cache will show and reconcile).
    if let Some(last) = in_flight {
        if last != planned.digest {
            return Some(false);
        }
        return if seen.ours_last { Some(true) } else { None };
    }
    if seen.digest.as_deref() != Some(planned.digest.as_str()) {
        return Some(false);
    }
    if seen.ours_last || seen.verified.as_deref() == Some(planned.digest.as_str()) {
        return Some(true);
    }
    None
}

/// Whether the operator's last write of an object the caches have not seen yet (created by an
/// earlier pass whose watch event has not arrived) is exactly `planned`. Namespaces and quotas
/// are written again instead: the report step reads their state (phase, quota status), which
/// only the caches or the write's answer carry.
fn written_not_seen(caches: &Caches, planned: &Planned) -> bool {
    if matches!(
        planned.kind,
        None | Some(Kind::Namespace | Kind::ResourceQuota)
    ) {
        return false;
    }
    key_of(planned).is_some_and(|key| caches.index().in_flight(&key) == Some(&planned.digest))
}

/// Applies what differs among `desired` from the objects the pass read (`inputs.owned`, from the
/// caches or the API server). Retained namespaces exist and are adopted; any other desired
/// namespace not among the objects read is claimed. Returns what was applied, or the
/// namespaces that turned out to be someone else's (nothing was applied then but the claims
/// before them).
pub async fn apply(
    client: &Client,
    caches: &Caches,
    owner: &Owner,
    field_manager: &str,
    desired: &[DesiredObject],
    inputs: &Inputs,
) -> Result<std::result::Result<Applied, Vec<String>>> {
    let owned = &inputs.owned;
    let retained = &inputs.retained_namespaces;
    // The caches may not have seen the operator's latest writes yet; the API server has.
    let from_caches = !inputs.from_api_server;
    let planned: Vec<Planned> = desired.iter().map(plan).collect();
    let mut stored: Vec<Option<DynamicObject>> = vec![None; planned.len()];
    let mut pending: Vec<usize> = Vec::new();
    let mut unclaimed: Vec<usize> = Vec::new();
    for (index, planned) in planned.iter().enumerate() {
        let current = key_of(planned).and_then(|key| owned.iter().find(|o| o.key() == key));
        let Some(current) = current else {
            if from_caches && written_not_seen(caches, planned) {
                stored[index] = Some(planned.object.object.clone());
                continue;
            }
            let name = planned.object.object.name_any();
            if planned.kind == Some(Kind::Namespace) && !retained.contains(&name) {
                unclaimed.push(index);
            } else {
                pending.push(index);
            }
            continue;
        };
        let in_flight =
            key_of(planned).and_then(|key| caches.index().in_flight(&key).map(str::to_owned));
        match holds_already(current, planned, in_flight.as_deref()) {
            Some(true) => {
                if current.content.is_some()
                    && let Some(key) = key_of(planned)
                {
                    // Read from the API server and found to hold (perhaps written before
                    // digests existed): the caches may trust this resourceVersion.
                    caches.index().verify(
                        &owner.name,
                        &key,
                        &current.resource_version,
                        &planned.digest,
                    );
                }
                stored[index] = Some(current.reported());
            }
            Some(false) => pending.push(index),
            None => {
                // Someone else wrote it after the operator: read it back.
                let object = planned.object.clone();
                let read = object
                    .api(client)
                    .get(&object.object.name_any())
                    .await
                    .map_err(|source| Error::Read {
                        what: object.describe(),
                        source,
                    })?;
                let fresh = Seen::from_object(current.kind, &read);
                if holds_already(&fresh, planned, None) == Some(true) {
                    if let Some(key) = key_of(planned) {
                        caches.index().verify(
                            &owner.name,
                            &key,
                            &fresh.resource_version,
                            &planned.digest,
                        );
                    }
                    stored[index] = Some(fresh.reported());
                } else {
                    pending.push(index);
                }
            }
        }
    }

    // Claims first: a namespace someone else has stops the pass before anything else is written.
    let claims: Vec<DesiredObject> = unclaimed
        .iter()
        .map(|&index| planned[index].object.clone())
        .collect();
    let claimed = claim::claim_new_namespaces(client, owner, field_manager, &claims).await?;
    if !claimed.foreign.is_empty() {
        return Ok(Err(claimed.foreign));
    }
    let mut written: Vec<usize> = Vec::new();
    for (position, outcome) in claimed.outcomes.into_iter().enumerate() {
        let index = unclaimed[position];
        match outcome {
            Some(created) => {
                stored[index] = Some(created);
                written.push(index);
            }
            // Ours already (the caches lagged) or retained: applied like the rest.
            None => pending.push(index),
        }
    }

    let params = PatchParams::apply(field_manager).force();
    let (first, second): (Vec<usize>, Vec<usize>) = pending.iter().partition(|&&index| {
        matches!(
            planned[index].kind,
            Some(Kind::Namespace | Kind::ClusterRole)
        )
    });
    for wave in [first, second] {
        let writes: Vec<(usize, DynamicObject)> = settle_all(wave.into_iter().map(|index| {
            let object = &planned[index].object;
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
        for (index, object) in writes {
            stored[index] = Some(object);
            written.push(index);
        }
    }
    written.sort_unstable();
    {
        let mut index = caches.index();
        for &index_of in &written {
            if let Some(key) = key_of(&planned[index_of]) {
                index.wrote(&owner.name, key, &planned[index_of].digest);
            }
        }
    }
    let mut applied = Applied {
        written: written
            .iter()
            .map(|&index| planned[index].object.describe())
            .collect(),
        ..Applied::default()
    };
    for (planned, stored) in planned.iter().zip(stored) {
        if let Some(stored) = stored {
            applied
                .objects
                .push((planned.object.resource.clone(), stored));
        }
    }
    Ok(Ok(applied))
}

/// Whether an error is the API server refusing a write because the object is not as the pass
/// saw it (a precondition failed): the pass is to be made again from the API server's view.
pub fn is_stale(error: &Error) -> bool {
    matches!(
        error,
        Error::Prune { source: kube::Error::Api(status), .. } if status.code == 409
    )
}

/// Deletes every object of `owned` not in `keep` that `may_delete` lets go, each only if it is
/// still the object the pass saw (same uid and resourceVersion). Returns what was deleted.
pub async fn prune(
    client: &Client,
    owned: &[Seen],
    keep: &BTreeSet<Key>,
    may_delete: impl Fn(&Seen) -> bool,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for seen in owned {
        // Already on its way out: asking again changes nothing, and may be refused (a
        // terminating namespace loses the operator's RoleBinding in it while it empties).
        if keep.contains(&seen.key()) || seen.deleting || !may_delete(seen) {
            continue;
        }
        let resource = seen.kind.resource();
        let api: Api<DynamicObject> = match &seen.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let object = DynamicObject::new(&seen.name, &resource).within_opt(seen.namespace.clone());
        let what = describe(&resource, &object);
        let params = DeleteParams::background().preconditions(Preconditions {
            uid: Some(seen.uid.clone()),
            resource_version: Some(seen.resource_version.clone()),
        });
        match api.delete(&seen.name, &params).await {
            Ok(_) => deleted.push(what),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(Error::Prune { what, source }),
        }
    }
    Ok(deleted)
}

/// The keys of the desired objects, for [`prune`].
pub fn keys(desired: &[DesiredObject]) -> BTreeSet<Key> {
    desired
        .iter()
        .filter_map(|d| {
            Some((
                Kind::of(&d.resource)?,
                d.object.namespace(),
                d.object.name_any(),
            ))
        })
        .collect()
}

trait WithinOpt {
    fn within_opt(self, namespace: Option<String>) -> Self;
}

impl WithinOpt for DynamicObject {
    fn within_opt(mut self, namespace: Option<String>) -> Self {
        self.metadata.namespace = namespace;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::ConfigMap;
    use kube::api::ObjectMeta;

    fn config_map(value: &str) -> DesiredObject {
        DesiredObject::from_typed(&ConfigMap {
            metadata: ObjectMeta {
                name: Some("a".into()),
                namespace: Some("ns".into()),
                ..Default::default()
            },
            data: Some([("k".to_owned(), value.to_owned())].into()),
            ..Default::default()
        })
        .expect("object")
    }

    #[test]
    fn the_digest_follows_the_content() {
        assert_eq!(
            digest(&config_map("1").object),
            digest(&config_map("1").object)
        );
        assert_ne!(
            digest(&config_map("1").object),
            digest(&config_map("2").object)
        );
        assert_eq!(digest(&config_map("1").object).len(), 16);
    }

    fn seen(digest: Option<&str>, ours_last: bool) -> Seen {
        Seen {
            kind: Kind::NetworkPolicy,
            namespace: Some("ns".into()),
            name: "a".into(),
            uid: "u".into(),
            resource_version: "1".into(),
            digest: digest.map(str::to_owned),
            ours_last,
            verified: None,
            deleting: false,
            quota: None,
            content: None,
        }
    }

    #[test]
    fn a_cached_object_holds_only_with_the_desired_digest_and_no_later_writer() {
        let planned = plan(&config_map("1"));
        let d = planned.digest.clone();
        assert_eq!(
            holds_already(&seen(Some(&d), true), &planned, None),
            Some(true)
        );
        assert_eq!(
            holds_already(&seen(Some("other"), true), &planned, None),
            Some(false)
        );
        assert_eq!(
            holds_already(&seen(None, true), &planned, None),
            Some(false)
        );
        // Someone else wrote it since: unknown until read back.
        assert_eq!(holds_already(&seen(Some(&d), false), &planned, None), None);
        let mut verified = seen(Some(&d), false);
        verified.verified = Some(d.clone());
        assert_eq!(holds_already(&verified, &planned, None), Some(true));
    }

    #[test]
    fn a_cache_behind_the_operators_own_last_write_is_not_trusted() {
        // Written with 1, then 2, and now 1 is wanted again while the cache still shows the
        // first write: the object holds 2.
        let planned = plan(&config_map("1"));
        let one = planned.digest.clone();
        let two = plan(&config_map("2")).digest;
        let stale = seen(Some(&one), true);
        assert_eq!(holds_already(&stale, &planned, Some(&two)), Some(false));
        assert_eq!(holds_already(&stale, &planned, Some(&one)), Some(true));
    }

    #[test]
    fn an_object_read_from_the_api_server_is_compared_by_content() {
        let planned = plan(&config_map("1"));
        let mut read = seen(None, false);
        read.content = Some(
            serde_json::json!({"metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "1"}}),
        );
        assert_eq!(holds_already(&read, &planned, None), Some(true));
        read.content = Some(
            serde_json::json!({"metadata": {"name": "a", "namespace": "ns"}, "data": {"k": "2"}}),
        );
        assert_eq!(holds_already(&read, &planned, None), Some(false));
    }
}
