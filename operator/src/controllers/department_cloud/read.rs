//! Reads what a DepartmentCloud refers to and what it already made: its peers, the objects
//! labelled as its own, namespaces of its environments that exist but are not its own, and the
//! quota already in use.

use govdc_crds::DepartmentCloud;
use govdc_crds::common::RETAINED_FROM_LABEL;
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

use super::build::{self, QUOTA_NAME};
use super::cache::{Caches, Kind, Seen};
use crate::error::{Error, Result};
use crate::pipeline::ownership::Owned;
use crate::quantity::{self, Amounts};

/// The namespaced kinds a DepartmentCloud makes in its environments' namespaces.
fn namespaced_resources() -> [ApiResource; 4] {
    [
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<RoleBinding>(&()),
    ]
}

/// Every object labelled as made for `cloud`. Reads are kept cheap at a thousand tenants: one
/// label-selected list of namespaces, lists inside the tenant's own namespaces (which the API
/// server's watch cache indexes), and the cluster role by its name, all concurrently.
///
/// The lists are consistent reads, never "any version": the clean-up after a deletion and the
/// periodic comparison act on what they list, and a lagging watch cache once hid the role
/// bindings and network policies a pass had just written, so a retained tenant's clean-up
/// released the rest and left those labelled as managed (found by the crash test under load).
pub async fn owned_objects(client: &Client, cloud: &DepartmentCloud) -> Result<Vec<Owned>> {
    let owner = build::owner(cloud);
    let params = ListParams::default().labels(&owner.selector());
    let read_error = |what: String| move |source| Error::Read { what, source };
    let namespace_resource = ApiResource::erase::<Namespace>(&());
    let namespaces = Api::<DynamicObject>::all_with(client.clone(), &namespace_resource)
        .list(&params)
        .await
        .map_err(read_error(format!(
            "namespaces of DepartmentCloud {}",
            owner.name
        )))?
        .items;
    // Objects inside the tenant's namespaces can only exist where one of its namespaces does; a
    // new tenant has none, and its first pass lists nothing more.
    let mut namespace_names: Vec<String> = namespaces.iter().map(ResourceExt::name_any).collect();
    if !namespace_names.is_empty() {
        for environment in &cloud.spec.environments {
            let name = build::namespace_name(cloud, &environment.name);
            if !namespace_names.contains(&name) {
                namespace_names.push(name);
            }
        }
    }
    let params = &params;
    let namespaced = namespace_names.iter().flat_map(|namespace| {
        namespaced_resources().into_iter().map(move |resource| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            let what = format!("{} in {namespace}", resource.plural);
            async move {
                let items = api.list(params).await.map_err(read_error(what))?.items;
                Ok::<_, Error>(
                    items
                        .into_iter()
                        .map(|object| Owned {
                            resource: resource.clone(),
                            object,
                        })
                        .collect::<Vec<_>>(),
                )
            }
        })
    });
    let role_name = build::reader_role_name(cloud);
    let cluster_scoped = [
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
    ]
    .map(|resource| {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let role_name = role_name.clone();
        let owner_labels = owner.labels();
        async move {
            let object = api
                .get_opt(&role_name)
                .await
                .map_err(read_error(format!("{} {role_name}", resource.kind)))?;
            // Only what carries our labels is ours to change or delete.
            let ours = object.filter(|o| {
                owner_labels
                    .iter()
                    .all(|(k, v)| o.labels().get(k) == Some(v))
            });
            Ok::<_, Error>(
                ours.into_iter()
                    .map(|object| Owned {
                        resource: resource.clone(),
                        object,
                    })
                    .collect::<Vec<_>>(),
            )
        }
    });
    let (namespaced, cluster_scoped) = futures::future::try_join(
        futures::future::try_join_all(namespaced),
        futures::future::try_join_all(cluster_scoped),
    )
    .await?;
    let mut owned: Vec<Owned> = namespaces
        .into_iter()
        .map(|object| Owned {
            resource: namespace_resource.clone(),
            object,
        })
        .collect();
    owned.extend(namespaced.into_iter().flatten());
    owned.extend(cluster_scoped.into_iter().flatten());
    Ok(owned)
}

/// Everything outside the DepartmentCloud itself that validation, build and prune need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The peer departments that exist.
    pub peers: Vec<DepartmentCloud>,
    /// Every object labelled as made for this DepartmentCloud.
    pub owned: Vec<Seen>,
    /// Environment namespaces that exist but belong to someone else.
    pub foreign_namespaces: Vec<String>,
    /// Namespaces retained from an earlier DepartmentCloud of this name, to adopt.
    pub retained_namespaces: Vec<String>,
    /// Quota in use, by environment namespace.
    pub quota_used: Vec<(String, Amounts)>,
    /// Whether this was read from the API server (not from the caches).
    pub from_api_server: bool,
}

impl Inputs {
    /// The hard limits of the tenant's ResourceQuotas that exist, summed: what an earlier
    /// generation reserved and still holds. None when it has no quota.
    pub fn standing_quotas(&self) -> Option<Amounts> {
        let mut total = Amounts::new();
        let mut any = false;
        for quota in self.owned.iter().filter_map(|o| o.quota.as_ref()) {
            any = true;
            if let Ok(hard) = quantity::parse_all(&quota.spec_hard) {
                quantity::add(&mut total, &hard);
            }
        }
        any.then_some(total)
    }

    fn with_quota_used(mut self) -> Inputs {
        self.quota_used = self
            .owned
            .iter()
            .filter(|o| o.kind == Kind::ResourceQuota && o.name == QUOTA_NAME)
            .filter_map(|o| {
                let used = quantity::parse_all(o.quota.as_ref()?.status_used.as_ref()?).ok()?;
                Some((o.namespace.clone()?, used))
            })
            .collect();
        self
    }
}

/// Reads the inputs of `cloud` from the API server.
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

    let owned: Vec<Seen> = owned_objects(client, cloud)
        .await?
        .iter()
        .filter_map(|o| Some(Seen::from_object(Kind::of(&o.resource)?, &o.object)))
        .collect();
    let is_owned_namespace = |name: &str| {
        owned
            .iter()
            .any(|o| o.kind == Kind::Namespace && o.name == name)
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
    Ok(Inputs {
        peers,
        owned,
        foreign_namespaces,
        retained_namespaces,
        quota_used: Vec::new(),
        from_api_server: true,
    }
    .with_quota_used())
}

/// Reads the inputs of `cloud` from the caches: no request to the API server.
pub fn read_cached(caches: &Caches, cloud: &DepartmentCloud) -> Inputs {
    let peers = cloud
        .spec
        .peer_departments
        .iter()
        .filter_map(|name| caches.cloud(name))
        .collect();
    let name = cloud.name_any();
    let index = caches.index();
    let owned = index.owned_by(&name);
    let mut foreign_namespaces = Vec::new();
    let mut retained_namespaces = Vec::new();
    for environment in &cloud.spec.environments {
        let namespace = build::namespace_name(cloud, &environment.name);
        match index.namespace(&namespace) {
            None => {}
            Some(mark) if mark.owner.as_ref() == Some(&name) => {}
            Some(mark) if mark.owner.is_none() && mark.retained_from.as_ref() == Some(&name) => {
                retained_namespaces.push(namespace)
            }
            Some(_) => foreign_namespaces.push(namespace),
        }
    }
    drop(index);
    Inputs {
        peers,
        owned,
        foreign_namespaces,
        retained_namespaces,
        quota_used: Vec::new(),
        from_api_server: false,
    }
    .with_quota_used()
}
