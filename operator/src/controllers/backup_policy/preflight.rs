//! What must hold of the target before replication writes anything there: it is another cluster
//! than the source — told by identity, not by address — and it serves every kind the policy
//! replicates (govdc's own CRDs are installed there when the target's credentials allow it).
//!
//! A cluster's identity is the uid of its `kube-system` namespace: it is made once when the
//! cluster is created and cannot be deleted, so two kubeconfigs that reach one API server — under
//! two addresses, through a proxy, by a DNS alias — read the same uid, and two clusters never do.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Patch, PatchParams};
use kube::{Api, Client};

use super::kinds::Kind;
use super::target::{FIELD_MANAGER, Failure, classify};

/// The namespace whose uid names a cluster.
pub const IDENTITY_NAMESPACE: &str = "kube-system";

/// How long an installed CRD may take to become Established.
const ESTABLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The identity (uid of `kube-system`) of the cluster a client reaches.
pub async fn cluster_identity(client: &Client) -> Result<String, Failure> {
    let namespace = Api::<Namespace>::all(client.clone())
        .get_metadata(IDENTITY_NAMESPACE)
        .await
        .map_err(|e| classify(&e))?;
    Ok(namespace.metadata.uid.unwrap_or_default())
}

/// Whether two identities name one cluster. An empty uid names nothing: it is never equal, and
/// the caller refuses it on its own.
pub fn same_cluster(source: &str, target: &str) -> bool {
    !source.is_empty() && source == target
}

/// The kinds among `kinds` (indices) that the cluster does not serve, found by discovery: the
/// group/version is not there, or does not list the kind's resource.
pub async fn unserved(client: &Client, kinds: &[Kind]) -> Result<BTreeSet<usize>, Failure> {
    let versions: BTreeSet<String> = kinds.iter().map(|k| k.api_resource().api_version).collect();
    let mut missing = BTreeSet::new();
    for api_version in versions {
        let listed = if api_version.contains('/') {
            client.list_api_group_resources(&api_version).await
        } else {
            client.list_core_api_resources(&api_version).await
        };
        let resources: BTreeSet<String> = match listed {
            Ok(list) => list.resources.into_iter().map(|r| r.name).collect(),
            Err(kube::Error::Api(status)) if status.code == 404 => BTreeSet::new(),
            Err(error) => return Err(classify(&error)),
        };
        for (index, kind) in kinds.iter().enumerate() {
            if kind.api_resource().api_version == api_version && !resources.contains(kind.plural) {
                missing.insert(index);
            }
        }
    }
    Ok(missing)
}

/// The CRDs the operator carries for `kinds`: govdc's own, the only ones it can install.
pub fn carried_crds<'a>(
    kinds: impl IntoIterator<Item = &'a Kind>,
) -> Vec<CustomResourceDefinition> {
    let wanted: Vec<&Kind> = kinds.into_iter().collect();
    govdc_crds::custom_resource_definitions()
        .into_iter()
        .filter(|crd| {
            wanted
                .iter()
                .any(|k| crd.spec.group == k.group && crd.spec.names.plural == k.plural)
        })
        .collect()
}

/// Installs (server-side apply) the given CRDs on the target and waits until each is
/// Established. Only CRDs for kinds the target does not serve are passed here: a CRD that
/// already serves the kind is the target's own business, and is never rewritten.
pub async fn install(client: &Client, crds: &[CustomResourceDefinition]) -> Result<(), Failure> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(crd))
            .await
            .map_err(|e| classify(&e))?;
    }
    let deadline = Instant::now() + ESTABLISH_TIMEOUT;
    for crd in crds {
        let name = crd.metadata.name.clone().unwrap_or_default();
        loop {
            let established = api
                .get_opt(&name)
                .await
                .map_err(|e| classify(&e))?
                .and_then(|c| c.status?.conditions)
                .is_some_and(|conditions| {
                    conditions
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                });
            if established {
                break;
            }
            if Instant::now() > deadline {
                return Err(Failure::Rejected {
                    reason: "KindNotServed",
                    message: format!(
                        "CustomResourceDefinition {name} was installed but is not Established after {}s",
                        ESTABLISH_TIMEOUT.as_secs()
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    Ok(())
}

/// What to tell a user whose target lacks `kinds`, given why govdc's CRDs could not be installed
/// (if it tried).
pub fn not_served_message(kinds: &[&Kind], install_error: Option<&str>) -> String {
    let names: Vec<String> = kinds.iter().map(|k| k.qualified()).collect();
    let carried = carried_crds(kinds.iter().copied());
    let mut message = format!(
        "the target does not serve {}; objects of these kinds are not replicated, the other kinds are",
        names.join(", ")
    );
    if !carried.is_empty() {
        let files: Vec<String> = carried
            .iter()
            .map(|c| format!("crds/{}", govdc_crds::crd_file_name(c)))
            .collect();
        message.push_str(&format!(
            "; install govdc's CRDs there ({}) or let the target kubeconfig's user create CustomResourceDefinitions",
            files.join(", ")
        ));
        if let Some(error) = install_error {
            message.push_str(&format!(" (installing them failed: {error})"));
        }
    }
    let foreign: Vec<String> = kinds
        .iter()
        .filter(|k| carried_crds([**k]).is_empty())
        .map(|k| k.qualified())
        .collect();
    if !foreign.is_empty() {
        message.push_str(&format!(
            "; install the CRDs or APIs serving {} on the target",
            foreign.join(", ")
        ));
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::backup_policy::kinds::CATALOG;

    fn kind(name: &str) -> &'static Kind {
        CATALOG
            .iter()
            .find(|k| k.kind == name)
            .expect("catalog kind")
    }

    #[test]
    fn one_cluster_is_one_kube_system_uid_and_an_unknown_uid_matches_nothing() {
        assert!(same_cluster("5f0c", "5f0c"));
        assert!(!same_cluster("5f0c", "77aa"));
        assert!(!same_cluster("", ""));
    }

    #[test]
    fn the_operator_carries_the_crds_of_govdc_kinds_only() {
        let crds = carried_crds([kind("OpenDataset"), kind("ConfigMap"), kind("ExchangeNode")]);
        let names: Vec<String> = crds
            .iter()
            .filter_map(|c| c.metadata.name.clone())
            .collect();
        assert_eq!(names, ["exchangenodes.govdc.io", "opendatasets.govdc.io"]);
    }

    #[test]
    fn the_message_names_the_kinds_and_what_to_install() {
        let message = not_served_message(
            &[kind("OpenDataset")],
            Some("customresourcedefinitions.apiextensions.k8s.io is forbidden"),
        );
        assert!(message.contains("OpenDataset.govdc.io"), "{message}");
        assert!(
            message.contains("crds/opendatasets.govdc.io.yaml"),
            "{message}"
        );
        assert!(message.contains("is forbidden"), "{message}");
    }
}
