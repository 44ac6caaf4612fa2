//! Writes a resource's status through the status subresource by server-side apply, and only
//! when it changed, so that a resync of converged state writes nothing.

use kube::api::{ApiResource, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;

use crate::error::{Error, Result};

/// Applies `status` to the resource unless it equals `current`. Returns whether it wrote.
pub async fn write_if_changed<K, S>(
    client: &Client,
    field_manager: &str,
    resource: &K,
    current: Option<&S>,
    status: &S,
) -> Result<bool>
where
    K: Resource<DynamicType = ()>,
    S: Serialize + PartialEq,
{
    if current == Some(status) {
        return Ok(false);
    }
    let value = serde_json::to_value(status).map_err(|source| Error::Serialize {
        what: format!("status of {} {}", K::kind(&()), resource.name_any()),
        source,
    })?;
    write(
        client,
        field_manager,
        &ApiResource::erase::<K>(&()),
        resource.namespace().as_deref(),
        &resource.name_any(),
        value,
    )
    .await?;
    Ok(true)
}

/// Applies a status given as JSON to any resource, typed or not (also one whose spec no longer
/// deserializes, so that it can still be told why).
pub async fn write(
    client: &Client,
    field_manager: &str,
    resource: &ApiResource,
    namespace: Option<&str>,
    name: &str,
    status: serde_json::Value,
) -> Result<()> {
    let api = super::dynamic_api(client, namespace, resource);
    let patch = serde_json::json!({
        "apiVersion": resource.api_version,
        "kind": resource.kind,
        "status": status,
    });
    api.patch_status(
        name,
        &PatchParams::apply(field_manager).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(|source| Error::Status {
        what: format!("{} {name}", resource.kind),
        source,
    })?;
    Ok(())
}
