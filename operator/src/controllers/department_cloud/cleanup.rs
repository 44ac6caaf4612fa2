//! What deleting a DepartmentCloud does, behind its finalizer. Government data is never deleted
//! by accident:
//!
//! - `Retain` (the default): the namespaces and everything in them stay — workloads, data, and
//!   the quota, limits, network policies and role bindings that keep them isolated and usable —
//!   but they are no longer managed: the owner labels are replaced by `govdc.io/retained-from`,
//!   so nothing will prune them, and a new DepartmentCloud of the same name adopts them. The
//!   operator-only objects (the cluster role letting members read the DepartmentCloud) go.
//! - `Delete`: everything goes, namespaces included.

use govdc_crds::DepartmentCloud;
use govdc_crds::common::RETAINED_FROM_LABEL;
use govdc_crds::department_cloud::DeletionPolicy;
use kube::ResourceExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::EventType;

use super::read::owned_objects;
use crate::controllers::Context;
use crate::error::{Error, Result};
use crate::pipeline::ownership::{MANAGED_BY, OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE, Owned};
use crate::pipeline::{events, prune};

/// Cleans up after a deleted DepartmentCloud according to its deletion policy.
pub async fn cleanup(ctx: &Context, cloud: &DepartmentCloud) -> Result<()> {
    let owned = owned_objects(&ctx.client, cloud).await?;
    let (note, count) = match cloud.spec.deletion_policy {
        DeletionPolicy::Delete => {
            let deleted = prune::delete_all(&ctx.client, &owned).await?;
            ("deleted", deleted.len())
        }
        DeletionPolicy::Retain => {
            let (namespaced, cluster_scoped): (Vec<Owned>, Vec<Owned>) =
                owned.into_iter().partition(|o| {
                    o.resource.kind == "Namespace"
                        || (o.object.namespace().is_some()
                            && !super::build::is_operator_binding(
                                &o.resource.kind,
                                &o.object.name_any(),
                            ))
                });
            // The namespaces last: a clean-up interrupted half-way lists the tenant's objects
            // again through its labelled namespaces, and would not find the objects inside one
            // it had released already (they stayed labelled as managed, found by the crash
            // test's undisturbed run under load).
            let (namespaces, inside): (Vec<&Owned>, Vec<&Owned>) = namespaced
                .iter()
                .partition(|o| o.resource.kind == "Namespace");
            for object in inside.into_iter().chain(namespaces) {
                release(ctx, cloud, object).await?;
            }
            prune::delete_all(&ctx.client, &cluster_scoped).await?;
            (
                "retained, no longer managed",
                namespaced
                    .iter()
                    .filter(|o| o.resource.kind == "Namespace")
                    .count(),
            )
        }
    };
    ctx.capacity.release(&cloud.name_any());
    let message = match cloud.spec.deletion_policy {
        DeletionPolicy::Delete => format!("{count} object(s) {note}, namespaces included"),
        DeletionPolicy::Retain => format!("{count} namespace(s) {note}"),
    };
    events::publish(
        &ctx.recorder,
        &kube::Resource::object_ref(cloud, &()),
        EventType::Normal,
        "Cleanup",
        "Delete",
        message,
    )
    .await;
    Ok(())
}

/// Replaces an object's owner labels by `govdc.io/retained-from`.
async fn release(ctx: &Context, cloud: &DepartmentCloud, object: &Owned) -> Result<()> {
    let patch = serde_json::json!({
        "metadata": {"labels": {
            MANAGED_BY: null, OWNER_KIND: null, OWNER_NAME: null, OWNER_NAMESPACE: null,
            RETAINED_FROM_LABEL: cloud.name_any(),
        }}
    });
    match object
        .api(&ctx.client)
        .patch(
            &object.object.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(source) => Err(Error::Apply {
            what: crate::pipeline::apply::describe(&object.resource, &object.object),
            source,
        }),
    }
}
