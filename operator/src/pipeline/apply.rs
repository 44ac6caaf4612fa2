//! Server-side apply of desired objects, with the operator's field manager and `force`: the
//! operator owns the fields it sets, and a conflicting manual edit is drift to repair.

use kube::api::{ApiResource, DynamicObject, Patch, PatchParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;

use crate::error::{Error, Result};

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
        let value = serde_json::to_value(object).map_err(|source| Error::Serialize {
            what: format!("{} {}", K::kind(&()), object.name_any()),
            source,
        })?;
        let object: DynamicObject =
            serde_json::from_value(value).map_err(|source| Error::Serialize {
                what: format!("{} {}", K::kind(&()), object.name_any()),
                source,
            })?;
        Ok(DesiredObject { resource, object })
    }

    /// `Kind namespace/name`, for messages.
    pub fn describe(&self) -> String {
        match self.object.namespace() {
            Some(ns) => format!("{} {ns}/{}", self.resource.kind, self.object.name_any()),
            None => format!("{} {}", self.resource.kind, self.object.name_any()),
        }
    }

    /// The API through which the object is written.
    pub fn api(&self, client: &Client) -> Api<DynamicObject> {
        match self.object.namespace() {
            Some(ns) => Api::namespaced_with(client.clone(), &ns, &self.resource),
            None => Api::all_with(client.clone(), &self.resource),
        }
    }
}

/// Applies every desired object and returns them as the API server stored them.
pub async fn apply_all(
    client: &Client,
    field_manager: &str,
    desired: &[DesiredObject],
) -> Result<Vec<DynamicObject>> {
    let params = PatchParams::apply(field_manager).force();
    let mut applied = Vec::with_capacity(desired.len());
    for object in desired {
        let stored = object
            .api(client)
            .patch(
                &object.object.name_any(),
                &params,
                &Patch::Apply(&object.object),
            )
            .await
            .map_err(|source| Error::Apply {
                what: object.describe(),
                source,
            })?;
        applied.push(stored);
    }
    Ok(applied)
}
