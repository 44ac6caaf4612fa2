//! Reads what a DepartmentCloud refers to and what it already made: its peers, the objects
//! labelled as its own, namespaces of its environments that exist but are not its own, and the
//! quota already in use.

use govdc_crds::DepartmentCloud;
use govdc_crds::common::RETAINED_FROM_LABEL;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::ApiResource;
use kube::{Api, Client, ResourceExt};

use super::build::{self, QUOTA_NAME};
use crate::error::{Error, Result};
use crate::pipeline::ownership::{Owned, list_owned};
use crate::quantity::{self, Amounts};

/// The kinds a DepartmentCloud makes.
pub fn owned_resources() -> Vec<ApiResource> {
    vec![
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
    ]
}

/// Everything outside the DepartmentCloud itself that validation, build and prune need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The peer departments that exist.
    pub peers: Vec<DepartmentCloud>,
    /// Every object labelled as made for this DepartmentCloud.
    pub owned: Vec<Owned>,
    /// Environment namespaces that exist but belong to someone else.
    pub foreign_namespaces: Vec<String>,
    /// Namespaces retained from an earlier DepartmentCloud of this name, to adopt.
    pub retained_namespaces: Vec<String>,
    /// Quota in use, by environment namespace.
    pub quota_used: Vec<(String, Amounts)>,
}

/// Reads the inputs of `cloud`.
pub async fn read(client: &Client, cloud: &DepartmentCloud) -> Result<Inputs> {
    let api: Api<DepartmentCloud> = Api::all(client.clone());
    let mut peers = Vec::new();
    for name in &cloud.spec.peer_departments {
        let peer = api.get_opt(name).await.map_err(|source| Error::Read {
            what: format!("peer DepartmentCloud {name}"),
            source,
        })?;
        peers.extend(peer);
    }

    let owned = list_owned(client, &build::owner(cloud), &owned_resources()).await?;
    let is_owned_namespace = |name: &str| {
        owned
            .iter()
            .any(|o| o.resource.kind == "Namespace" && o.object.name_any() == name)
    };

    let namespaces: Api<Namespace> = Api::all(client.clone());
    let mut foreign_namespaces = Vec::new();
    let mut retained_namespaces = Vec::new();
    for environment in &cloud.spec.environments {
        let name = build::namespace_name(cloud, &environment.name);
        if is_owned_namespace(&name) {
            continue;
        }
        let existing = namespaces
            .get_opt(&name)
            .await
            .map_err(|source| Error::Read {
                what: format!("Namespace {name}"),
                source,
            })?;
        match existing {
            None => {}
            Some(ns) if ns.labels().get(RETAINED_FROM_LABEL) == Some(&cloud.name_any()) => {
                retained_namespaces.push(name)
            }
            Some(_) => foreign_namespaces.push(name),
        }
    }

    let quota_used = owned
        .iter()
        .filter(|o| o.resource.kind == "ResourceQuota" && o.object.name_any() == QUOTA_NAME)
        .filter_map(|o| {
            let used: ResourceQuota =
                serde_json::from_value(serde_json::to_value(&o.object).ok()?).ok()?;
            let used = quantity::parse_all(&used.status?.used?).ok()?;
            Some((o.object.namespace()?, used))
        })
        .collect();
    Ok(Inputs {
        peers,
        owned,
        foreign_namespaces,
        retained_namespaces,
        quota_used,
    })
}
