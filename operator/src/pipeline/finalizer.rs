//! Finalizers: a controller that must act before its resource goes (clean up, unpublish) holds
//! one until it has.

use kube::api::{ApiResource, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};

use crate::error::{Error, Result};

/// Adds or removes `finalizer` on `object`, guarded by the resourceVersion it was read at so
/// that no other finalizer is lost to a concurrent change.
pub async fn set<K>(client: &Client, object: &K, finalizer: &str, present: bool) -> Result<()>
where
    K: Resource<DynamicType = ()>,
{
    let mut finalizers: Vec<String> = object
        .finalizers()
        .iter()
        .filter(|f| *f != finalizer)
        .cloned()
        .collect();
    if present {
        finalizers.push(finalizer.to_owned());
    }
    let patch = serde_json::json!({
        "metadata": {"resourceVersion": object.resource_version(), "finalizers": finalizers}
    });
    let resource = ApiResource::erase::<K>(&());
    let api = super::dynamic_api(client, object.namespace().as_deref(), &resource);
    api.patch(
        &object.name_any(),
        &PatchParams::default(),
        &Patch::Merge(&patch),
    )
    .await
    .map_err(|source| Error::Apply {
        what: format!(
            "finalizer of {} {}",
            K::kind(&()),
            crate::controllers::display_name(object)
        ),
        source,
    })?;
    Ok(())
}
