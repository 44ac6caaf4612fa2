//! Reads what an ExchangeNode refers to and what it already made: its parent chain (for cycles),
//! the parent's key or the remote parent's CA and token, its own key, the DepartmentClouds
//! allowed to join, and the objects labelled as its own.

use std::collections::BTreeMap;

use govdc_crds::common::SecretKeyReference;
use govdc_crds::{DepartmentCloud, ExchangeNode};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::{Api, Client, ResourceExt};

use super::build;
use crate::error::{Error, Result};
use crate::hub_client::key;
use crate::pipeline::ownership::Owned;

/// How far up the parent chain a cycle is looked for; the hub tree is three levels deep.
const MAX_CHAIN: usize = 8;

/// Everything outside the ExchangeNode itself that validation, build and sync need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The in-cluster parent, when `parent.nodeRef` names one that exists.
    pub parent: Option<ExchangeNode>,
    /// The chain of in-cluster parents as `namespace/name`, starting with this node, when it
    /// comes back to a node already in it (a cycle).
    pub cycle: Option<Vec<String>>,
    /// The in-cluster parent's signing key Secret, to issue this node's federation token.
    pub parent_key_secret: Option<Secret>,
    /// The remote parent's CA certificate (PEM), when its Secret and key exist.
    pub remote_ca: Option<String>,
    /// The federation token for the remote parent, when its Secret and key exist.
    pub remote_token: Option<String>,
    /// This node's signing key Secret, once made.
    pub key_secret: Option<Secret>,
    /// The DepartmentClouds named in `allowedDepartments`, `None` for those that do not exist.
    pub departments: BTreeMap<String, Option<DepartmentCloud>>,
    /// The objects labelled as made for this node.
    pub existing: Vec<Owned>,
}

impl Inputs {
    /// The hub StatefulSet's ready pods, from the object as last read.
    pub fn ready_replicas(&self) -> Option<i32> {
        self.existing
            .iter()
            .find(|o| o.resource.kind == "StatefulSet")
            .map(|o| {
                o.object.data["status"]["readyReplicas"]
                    .as_i64()
                    .and_then(|n| i32::try_from(n).ok())
                    .unwrap_or(0)
            })
    }
}

/// The kinds an ExchangeNode makes in its namespace.
pub fn owned_resources() -> [ApiResource; 6] {
    [
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
    ]
}

/// Reads the inputs of `node`.
pub async fn read(client: &Client, node: &ExchangeNode) -> Result<Inputs> {
    let namespace = node.namespace().unwrap_or_default();
    let mut inputs = Inputs {
        key_secret: get_opt::<Secret>(client, &namespace, &key::secret_name_of(&node.name_any()))
            .await?,
        existing: owned_objects(client, node).await?,
        ..Inputs::default()
    };
    for name in &node.spec.allowed_departments {
        let cloud = Api::<DepartmentCloud>::all(client.clone())
            .get_opt(name)
            .await
            .map_err(|source| Error::Read {
                what: format!("DepartmentCloud {name}"),
                source,
            })?;
        inputs.departments.insert(name.clone(), cloud);
    }
    let Some(parent) = &node.spec.parent else {
        return Ok(inputs);
    };
    if let Some(reference) = &parent.node_ref {
        let parent_namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.clone());
        inputs.parent = get_opt(client, &parent_namespace, &reference.name).await?;
        if let Some(found) = &inputs.parent {
            inputs.parent_key_secret = get_opt::<Secret>(
                client,
                &parent_namespace,
                &key::secret_name_of(&found.name_any()),
            )
            .await?;
            inputs.cycle = find_cycle(client, node).await?;
        }
    }
    if let Some(remote) = &parent.remote {
        inputs.remote_ca = secret_text(client, &namespace, &remote.ca_secret_ref).await?;
        inputs.remote_token = secret_text(client, &namespace, &remote.token_secret_ref).await?;
    }
    Ok(inputs)
}

/// Why the hub's pod `namespace/name` does not run, as its status says, when it says so; `None`
/// when the pod runs, is only starting, is missing or cannot be read (this only explains a hub
/// that did not answer, so a read error is no reason to fail the pass).
pub async fn hub_pod_problem(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let pod = Api::<Pod>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    pod_problem(&pod)
}

/// What keeps `pod` from running: a container waiting for a reason other than starting (an
/// image no node has, a crash loop), or the scheduler's refusal (no node fits, a claim no volume
/// binds).
pub fn pod_problem(pod: &Pod) -> Option<String> {
    let status = pod.status.as_ref()?;
    let waiting = status
        .container_statuses
        .iter()
        .flatten()
        .filter_map(|c| Some((c.name.as_str(), c.state.as_ref()?.waiting.as_ref()?)))
        .find(|(_, w)| {
            !matches!(
                w.reason.as_deref(),
                None | Some("ContainerCreating" | "PodInitializing")
            )
        });
    if let Some((container, waiting)) = waiting {
        let reason = waiting.reason.as_deref().unwrap_or_default();
        return Some(match waiting.message.as_deref() {
            Some(message) if !message.is_empty() => {
                format!("container {container} waiting: {reason}: {message}")
            }
            _ => format!("container {container} waiting: {reason}"),
        });
    }
    let unscheduled = status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == "PodScheduled" && c.status == "False")?;
    Some(format!(
        "not scheduled: {}: {}",
        unscheduled.reason.as_deref().unwrap_or("Unschedulable"),
        unscheduled.message.as_deref().unwrap_or_default()
    ))
}

/// Follows `parent.nodeRef` upwards; returns the chain when it meets a node twice.
async fn find_cycle(client: &Client, node: &ExchangeNode) -> Result<Option<Vec<String>>> {
    let mut chain = vec![key_of(node)];
    let mut current = node.clone();
    for _ in 0..MAX_CHAIN {
        let Some(reference) = current
            .spec
            .parent
            .as_ref()
            .and_then(|p| p.node_ref.as_ref())
        else {
            return Ok(None);
        };
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| current.namespace().unwrap_or_default());
        let next_key = format!("{namespace}/{}", reference.name);
        let seen = chain.contains(&next_key);
        chain.push(next_key);
        if seen {
            return Ok(Some(chain));
        }
        match get_opt::<ExchangeNode>(client, &namespace, &reference.name).await? {
            Some(next) => current = next,
            None => return Ok(None),
        }
    }
    Ok(None)
}

fn key_of(node: &ExchangeNode) -> String {
    format!(
        "{}/{}",
        node.namespace().unwrap_or_default(),
        node.name_any()
    )
}

/// Every object labelled as made for `node`, in its namespace.
async fn owned_objects(client: &Client, node: &ExchangeNode) -> Result<Vec<Owned>> {
    let namespace = node.namespace().unwrap_or_default();
    let params = ListParams::default().labels(&build::owner(node).selector());
    let mut owned = Vec::new();
    for resource in owned_resources() {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
        let items = api
            .list(&params)
            .await
            .map_err(|source| Error::Read {
                what: format!("{} in {namespace}", resource.plural),
                source,
            })?
            .items;
        owned.extend(items.into_iter().map(|object| Owned {
            resource: resource.clone(),
            object,
        }));
    }
    Ok(owned)
}

async fn get_opt<K>(client: &Client, namespace: &str, name: &str) -> Result<Option<K>>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| Error::Read {
            what: format!("{} {namespace}/{name}", K::kind(&())),
            source,
        })
}

/// The text under a Secret key, `None` when the Secret or the key is missing.
async fn secret_text(
    client: &Client,
    own_namespace: &str,
    reference: &SecretKeyReference,
) -> Result<Option<String>> {
    let namespace = reference.namespace.as_deref().unwrap_or(own_namespace);
    let secret = get_opt::<Secret>(client, namespace, &reference.name).await?;
    Ok(secret
        .and_then(|s| s.data)
        .and_then(|data| data.get(&reference.key).cloned())
        .and_then(|bytes| String::from_utf8(bytes.0).ok()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(status: serde_json::Value) -> Pod {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "n-hub-0"}, "status": status,
        }))
        .expect("pod")
    }

    #[test]
    fn a_pod_that_cannot_run_says_why_and_a_starting_one_does_not() {
        let absent = pod(
            serde_json::json!({"phase": "Pending", "containerStatuses": [{
                "name": "hub", "image": "govdc/govdc-hub:x", "imageID": "", "ready": false, "restartCount": 0,
                "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "Container image \"govdc/govdc-hub:x\" is not present with pull policy of Never"}},
            }]}),
        );
        assert_eq!(
            pod_problem(&absent).as_deref(),
            Some(
                "container hub waiting: ErrImageNeverPull: Container image \"govdc/govdc-hub:x\" is not present with pull policy of Never"
            )
        );
        let unscheduled = pod(serde_json::json!({"phase": "Pending", "conditions": [{
            "type": "PodScheduled", "status": "False", "reason": "Unschedulable",
            "message": "0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims.",
        }]}));
        assert_eq!(
            pod_problem(&unscheduled).as_deref(),
            Some(
                "not scheduled: Unschedulable: 0/1 nodes are available: pod has unbound immediate PersistentVolumeClaims."
            )
        );
        let starting = pod(serde_json::json!({"phase": "Pending",
            "conditions": [{"type": "PodScheduled", "status": "True"}],
            "containerStatuses": [{"name": "hub", "image": "i", "imageID": "", "ready": false,
                "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(pod_problem(&starting), None);
        // A cluster without a scheduler leaves the pod without conditions: nothing to tell.
        assert_eq!(
            pod_problem(&pod(serde_json::json!({"phase": "Pending"}))),
            None
        );
    }
}
