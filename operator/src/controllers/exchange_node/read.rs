//! Reads what an ExchangeNode refers to: its in-cluster parent node, or the CA Secret of a remote
//! one.

use govdc_crds::ExchangeNode;
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

/// Everything outside the ExchangeNode itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The in-cluster parent, when `parent.nodeRef` names one that exists.
    pub parent: Option<ExchangeNode>,
    /// The remote parent's CA Secret, when `parent.remote` names one that exists.
    pub remote_ca: Option<Secret>,
}

/// Reads the inputs of `node`.
pub async fn read(client: &Client, node: &ExchangeNode) -> Result<Inputs> {
    let own_namespace = node.namespace().unwrap_or_default();
    let mut inputs = Inputs::default();
    let Some(parent) = &node.spec.parent else {
        return Ok(inputs);
    };
    if let Some(reference) = &parent.node_ref {
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| own_namespace.clone());
        let api: Api<ExchangeNode> = Api::namespaced(client.clone(), &namespace);
        inputs.parent = api
            .get_opt(&reference.name)
            .await
            .map_err(|source| Error::Read {
                what: format!("parent ExchangeNode {namespace}/{}", reference.name),
                source,
            })?;
    }
    if let Some(remote) = &parent.remote {
        let namespace = remote
            .ca_secret_ref
            .namespace
            .clone()
            .unwrap_or_else(|| own_namespace.clone());
        let api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
        inputs.remote_ca = api
            .get_opt(&remote.ca_secret_ref.name)
            .await
            .map_err(|source| Error::Read {
                what: format!("CA Secret {namespace}/{}", remote.ca_secret_ref.name),
                source,
            })?;
    }
    Ok(inputs)
}
