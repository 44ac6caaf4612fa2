//! Reads what a BackupPolicy refers to: the Secret holding the target cluster's kubeconfig, the
//! object storage credentials of its restore points, and which of its ExchangeNodes exist.

use govdc_crds::{BackupPolicy, ExchangeNode};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};

use crate::error::{Error, Result};

/// Everything outside the BackupPolicy itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The target's kubeconfig Secret, if it exists.
    pub kubeconfig_secret: Option<Secret>,
    /// The restore point storage's credentials Secret, if the policy names one and it exists.
    pub storage_secret: Option<Secret>,
    /// The listed ExchangeNodes (`namespace/name`) with their uid, None for one that does not
    /// exist: a node that appears or is made anew starts the replication of its hub afresh.
    pub exchange_nodes: Vec<(String, Option<String>)>,
    /// The namespace the operator runs in (its Lease's): it holds the targets' credentials, so
    /// no policy protects it.
    pub operator_namespace: String,
}

async fn secret(client: &Client, namespace: &str, name: &str) -> Result<Option<Secret>> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|source| Error::Read {
            what: format!("Secret {namespace}/{name}"),
            source,
        })
}

/// Reads the inputs of `policy`, for an operator running in `operator_namespace`.
pub async fn read(
    client: &Client,
    policy: &BackupPolicy,
    operator_namespace: &str,
) -> Result<Inputs> {
    let reference = &policy.spec.target.kubeconfig_secret_ref;
    let namespace = reference.namespace.clone().unwrap_or_default();
    let kubeconfig_secret = secret(client, &namespace, &reference.name).await?;
    let storage_secret = match policy
        .spec
        .restore_points
        .as_ref()
        .and_then(|r| r.storage.as_ref())
    {
        Some(storage) => {
            let reference = &storage.credentials_secret_ref;
            let namespace = reference.namespace.clone().unwrap_or(namespace);
            secret(client, &namespace, &reference.name).await?
        }
        None => None,
    };
    let mut exchange_nodes = Vec::new();
    for node in &policy.spec.exchange_nodes {
        let namespace = node.namespace.clone().unwrap_or_default();
        if namespace.is_empty() {
            // Refused by validation.
            continue;
        }
        let uid = Api::<ExchangeNode>::namespaced(client.clone(), &namespace)
            .get_metadata_opt(&node.name)
            .await
            .map_err(|source| Error::Read {
                what: format!("ExchangeNode {namespace}/{}", node.name),
                source,
            })?
            .and_then(|n| n.metadata.uid);
        exchange_nodes.push((format!("{namespace}/{}", node.name), uid));
    }
    Ok(Inputs {
        kubeconfig_secret,
        storage_secret,
        exchange_nodes,
        operator_namespace: operator_namespace.to_owned(),
    })
}

/// A key of a Secret's data as text.
pub fn secret_text(secret: Option<&Secret>, key: &str) -> Option<String> {
    secret?
        .data
        .as_ref()?
        .get(key)
        .and_then(|bytes| String::from_utf8(bytes.0.clone()).ok())
}
