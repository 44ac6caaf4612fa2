//! Deletes what an earlier pass made and the current one did not: objects carrying the owner's
//! labels that are not in the applied set. A controller decides per object whether it may go
//! (a namespace holding government data, for one, only under an explicit Delete policy).

use std::collections::BTreeSet;

use kube::api::{ApiResource, DeleteParams, DynamicObject};
use kube::{Api, Client, ResourceExt};

use super::apply::describe;
use super::ownership::Owned;
use crate::error::{Error, Result};

/// Identity of an object for set membership: kind, namespace, name.
pub type ObjectKey = (String, Option<String>, String);

/// The key of an object of the given resource.
pub fn key(resource: &ApiResource, object: &DynamicObject) -> ObjectKey {
    (resource.kind.clone(), object.namespace(), object.name_any())
}

/// Deletes every object of `existing` that is not in `keep` and that `may_delete` lets go.
/// Returns what was deleted, as `Kind namespace/name`.
pub async fn prune(
    client: &Client,
    existing: &[Owned],
    keep: &BTreeSet<ObjectKey>,
    may_delete: impl Fn(&Owned) -> bool,
) -> Result<Vec<String>> {
    let mut deleted = Vec::new();
    for owned in existing {
        if keep.contains(&key(&owned.resource, &owned.object)) || !may_delete(owned) {
            continue;
        }
        // Already on its way out: asking again changes nothing, and may be refused. A
        // terminating tenant namespace loses the operator's RoleBinding in it (through which
        // alone the operator may delete it) while it empties.
        if owned.object.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let what = describe(&owned.resource, &owned.object);
        match owned
            .api(client)
            .delete(&owned.object.name_any(), &DeleteParams::background())
            .await
        {
            Ok(_) => deleted.push(what),
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => return Err(Error::Prune { what, source }),
        }
    }
    Ok(deleted)
}

/// Deletes every object of `existing`, for cleanup; objects already gone are fine.
pub async fn delete_all(client: &Client, existing: &[Owned]) -> Result<Vec<String>> {
    prune(client, existing, &BTreeSet::new(), |_| true).await
}

/// The API through which an existing object is written.
impl Owned {
    /// The object's API.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        super::dynamic_api(client, self.object.namespace().as_deref(), &self.resource)
    }
}
