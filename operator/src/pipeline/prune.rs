//! Deletes what an earlier pass made and the current one did not: objects carrying the owner's
//! labels that are not in the applied set. A controller decides per object whether it may go
//! (a namespace holding government data, for one, only under an explicit Delete policy).

use std::collections::BTreeSet;

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

use super::ownership::Owner;
use crate::error::{Error, Result};

/// Identity of an object for set membership: kind, namespace, name.
pub type ObjectKey = (String, Option<String>, String);

/// The key of an object of the given resource.
pub fn key(resource: &ApiResource, object: &DynamicObject) -> ObjectKey {
    (resource.kind.clone(), object.namespace(), object.name_any())
}

/// Lists every object of `resources` that `owner` made, across namespaces, and deletes those not
/// in `keep` for which `may_delete` agrees. Returns what was deleted, as `Kind namespace/name`.
pub async fn prune(
    client: &Client,
    owner: &Owner,
    resources: &[ApiResource],
    keep: &BTreeSet<ObjectKey>,
    may_delete: impl Fn(&ApiResource, &DynamicObject) -> bool,
) -> Result<Vec<String>> {
    let selector = owner.selector();
    let mut deleted = Vec::new();
    for resource in resources {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
        let list = api
            .list_metadata(&ListParams::default().labels(&selector))
            .await
            .map_err(|source| Error::Read {
                what: format!("{} owned by {}", resource.plural, owner.name),
                source,
            })?;
        for meta in list.items {
            let object = DynamicObject {
                types: None,
                metadata: meta.metadata,
                data: serde_json::Value::Null,
            };
            if keep.contains(&key(resource, &object)) || !may_delete(resource, &object) {
                continue;
            }
            let what = match object.namespace() {
                Some(ns) => format!("{} {ns}/{}", resource.kind, object.name_any()),
                None => format!("{} {}", resource.kind, object.name_any()),
            };
            let api: Api<DynamicObject> = match object.namespace() {
                Some(ns) => Api::namespaced_with(client.clone(), &ns, resource),
                None => Api::all_with(client.clone(), resource),
            };
            match api
                .delete(&object.name_any(), &DeleteParams::background())
                .await
            {
                Ok(_) => deleted.push(what),
                Err(kube::Error::Api(status)) if status.code == 404 => {}
                Err(source) => return Err(Error::Prune { what, source }),
            }
        }
    }
    Ok(deleted)
}
