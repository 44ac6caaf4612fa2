//! Reads what an OpenDataset refers to: the DepartmentCloud owning its namespace, the portal
//! node, and the ConfigMap or Secret holding its source.

use govdc_crds::common::DEPARTMENT_LABEL;
use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};

/// Everything outside the OpenDataset itself that validation and build need.
#[derive(Debug, Default)]
pub struct Inputs {
    /// The DepartmentCloud whose tenant namespace holds the dataset.
    pub owner: Option<DepartmentCloud>,
    /// The portal node.
    pub portal: Option<ExchangeNode>,
    /// Whether the ConfigMap or Secret source holds its key (None for a catalog source).
    pub source_present: Option<bool>,
}

/// Reads the inputs of `dataset`.
pub async fn read(client: &Client, dataset: &OpenDataset) -> Result<Inputs> {
    let namespace = dataset.namespace().unwrap_or_default();
    let read_error = |what: String| move |source| Error::Read { what, source };

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

    let portal_namespace = dataset
        .spec
        .portal
        .namespace
        .clone()
        .unwrap_or_else(|| namespace.clone());
    let portal = Api::<ExchangeNode>::namespaced(client.clone(), &portal_namespace)
        .get_opt(&dataset.spec.portal.name)
        .await
        .map_err(read_error(format!(
            "portal ExchangeNode {portal_namespace}/{}",
            dataset.spec.portal.name
        )))?;

    let source = &dataset.spec.source;
    let source_present = if let Some(reference) = &source.config_map_ref {
        let map = Api::<ConfigMap>::namespaced(client.clone(), &namespace)
            .get_opt(&reference.name)
            .await
            .map_err(read_error(format!(
                "ConfigMap {namespace}/{}",
                reference.name
            )))?;
        Some(map.is_some_and(|m| m.data.is_some_and(|d| d.contains_key(&reference.key))))
    } else if let Some(reference) = &source.secret_ref {
        let secret = Api::<Secret>::namespaced(client.clone(), &namespace)
            .get_opt(&reference.name)
            .await
            .map_err(read_error(format!("Secret {namespace}/{}", reference.name)))?;
        Some(secret.is_some_and(|s| s.data.is_some_and(|d| d.contains_key(&reference.key))))
    } else {
        None
    };
    Ok(Inputs {
        owner,
        portal,
        source_present,
    })
}
