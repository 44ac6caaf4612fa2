//! Reads what an OpenDataset refers to: the DepartmentCloud owning its namespace, the portal node
//! and its signing key, the pseudonym key, and the source (the CSV text of a ConfigMap or Secret,
//! or the exchange node holding a catalog resource and its key).

use govdc_crds::common::DEPARTMENT_LABEL;
use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};
use crate::hub_client::key;

/// Where the records come from, as read.
#[derive(Debug)]
pub enum Source {
    /// CSV text from a ConfigMap or Secret.
    Inline(Vec<u8>),
    /// A resource of an exchange node's catalog, read through the node's API.
    Exchange {
        /// The node holding the resource.
        node: Box<ExchangeNode>,
        /// Its signing key Secret, to issue the owning department's member token.
        key_secret: Option<Box<Secret>>,
        /// The resource's code.
        code: String,
    },
    /// The source does not exist; the message says what is missing.
    Missing(String),
}

impl Default for Source {
    fn default() -> Self {
        Source::Missing("spec.source: no source is set".to_owned())
    }
}

/// Everything outside the OpenDataset itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The DepartmentCloud whose tenant namespace holds the dataset.
    pub owner: Option<DepartmentCloud>,
    /// The portal node.
    pub portal: Option<ExchangeNode>,
    /// The portal node's signing key Secret, for the operator's admin token.
    pub portal_key_secret: Option<Secret>,
    /// The pseudonym key's bytes, when the spec names one and it exists.
    pub pseudonym_key: Option<Vec<u8>>,
    /// The source.
    pub source: Source,
}

fn read_error(what: String) -> impl FnOnce(kube::Error) -> Error {
    move |source| Error::Read { what, source }
}

/// Reads the inputs of `dataset`.
pub async fn read(client: &Client, dataset: &OpenDataset) -> Result<Inputs> {
    let namespace = dataset.namespace().unwrap_or_default();
    let tenant_namespace = Api::<Namespace>::all(client.clone())
        .get_opt(&namespace)
        .await
        .map_err(read_error(format!("Namespace {namespace}")))?;
    let owner = match tenant_namespace
        .as_ref()
        .and_then(|ns| ns.labels().get(DEPARTMENT_LABEL).cloned())
    {
        Some(department) => Api::<DepartmentCloud>::all(client.clone())
            .get_opt(&department)
            .await
            .map_err(read_error(format!("DepartmentCloud {department}")))?,
        None => None,
    };

    let portal = exchange_node(client, &namespace, &dataset.spec.portal).await?;
    let portal_key_secret = match &portal {
        Some(node) => {
            let node_namespace = node.namespace().unwrap_or_default();
            Api::<Secret>::namespaced(client.clone(), &node_namespace)
                .get_opt(&key::secret_name_of(&node.name_any()))
                .await
                .map_err(read_error(format!("the key of portal {}", node.name_any())))?
        }
        None => None,
    };

    let pseudonym_key = match &dataset.spec.pseudonym_key_ref {
        Some(reference) => {
            let key_namespace = reference.namespace.as_deref().unwrap_or(&namespace);
            Api::<Secret>::namespaced(client.clone(), key_namespace)
                .get_opt(&reference.name)
                .await
                .map_err(read_error(format!(
                    "Secret {key_namespace}/{}",
                    reference.name
                )))?
                .and_then(|s| s.data)
                .and_then(|d| d.get(&reference.key).map(|v| v.0.clone()))
        }
        None => None,
    };

    let source = read_source(client, dataset, &namespace).await?;
    Ok(Inputs {
        owner,
        portal,
        portal_key_secret,
        pseudonym_key,
        source,
    })
}

async fn exchange_node(
    client: &Client,
    own_namespace: &str,
    reference: &govdc_crds::common::ObjectReference,
) -> Result<Option<ExchangeNode>> {
    let namespace = reference.namespace.as_deref().unwrap_or(own_namespace);
    Api::<ExchangeNode>::namespaced(client.clone(), namespace)
        .get_opt(&reference.name)
        .await
        .map_err(read_error(format!(
            "ExchangeNode {namespace}/{}",
            reference.name
        )))
}

async fn read_source(client: &Client, dataset: &OpenDataset, namespace: &str) -> Result<Source> {
    let source = &dataset.spec.source;
    if let Some(reference) = &source.config_map_ref {
        let map = Api::<ConfigMap>::namespaced(client.clone(), namespace)
            .get_opt(&reference.name)
            .await
            .map_err(read_error(format!(
                "ConfigMap {namespace}/{}",
                reference.name
            )))?;
        let text = map.and_then(|m| {
            m.data
                .and_then(|d| d.get(&reference.key).map(|t| t.clone().into_bytes()))
                .or_else(|| {
                    m.binary_data
                        .and_then(|d| d.get(&reference.key).map(|b| b.0.clone()))
                })
        });
        return Ok(match text {
            Some(bytes) => Source::Inline(bytes),
            None => Source::Missing(format!(
                "spec.source.configMapRef: ConfigMap {} with key {} does not exist",
                reference.name, reference.key
            )),
        });
    }
    if let Some(reference) = &source.secret_ref {
        let secret = Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt(&reference.name)
            .await
            .map_err(read_error(format!("Secret {namespace}/{}", reference.name)))?;
        let bytes = secret
            .and_then(|s| s.data)
            .and_then(|d| d.get(&reference.key).map(|b| b.0.clone()));
        return Ok(match bytes {
            Some(bytes) => Source::Inline(bytes),
            None => Source::Missing(format!(
                "spec.source.secretRef: Secret {} with key {} does not exist",
                reference.name, reference.key
            )),
        });
    }
    if let Some(reference) = &source.exchange_resource {
        let Some(node) = exchange_node(client, namespace, &reference.node).await? else {
            return Ok(Source::Missing(format!(
                "spec.source.exchangeResource.node: ExchangeNode {} does not exist",
                reference.node.name
            )));
        };
        let node_namespace = node.namespace().unwrap_or_default();
        let key_secret = Api::<Secret>::namespaced(client.clone(), &node_namespace)
            .get_opt(&key::secret_name_of(&node.name_any()))
            .await
            .map_err(read_error(format!(
                "the key of ExchangeNode {}",
                node.name_any()
            )))?;
        return Ok(Source::Exchange {
            node: Box::new(node),
            key_secret: key_secret.map(Box::new),
            code: reference.resource_code.clone(),
        });
    }
    Ok(Source::default())
}
