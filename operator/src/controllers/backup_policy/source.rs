//! The primary's side: which namespaces a policy protects, and the objects in them.
//!
//! A namespace is protected when it belongs (label `govdc.io/department`) to a DepartmentCloud the
//! policy's `departmentSelector` selects, or when it holds an ExchangeNode of `exchangeNodes`:
//! a node's hub state is useless on the standby without its StatefulSet, Service and key Secret,
//! which live beside it ([`Scope`]). Objects are listed and watched cluster-wide per kind and
//! filtered here: one watch per kind, rather than one per kind and namespace, keeps a thousand
//! tenants at a dozen watches. Secrets are the exception ([`read_per_namespace`]): the operator
//! may read them only in the namespaces where govdc works, so they are listed and watched in each
//! protected namespace.

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt, stream};
use govdc_crds::DepartmentCloud;
use govdc_crds::common::DEPARTMENT_LABEL;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{ApiResource, DynamicObject, ListParams};
use kube::core::{ParseExpressionError, Selector, SelectorExt};
use kube::{Api, Client};
use serde_json::Value;

use super::clean::replicable;
use super::kinds::{self, Kind};
use super::read::Inputs;

/// Why the primary could not be read.
#[derive(Debug, thiserror::Error)]
#[error("listing {what} on the primary")]
pub struct SourceError {
    /// What was listed.
    pub what: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// What a policy protects.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    /// The DepartmentClouds whose namespaces are protected.
    pub departments: Selector,
    /// The namespaces of the ExchangeNodes the policy lists, protected whatever their labels.
    pub node_namespaces: BTreeSet<String>,
}

impl Scope {
    /// Whether the namespace `name`, of department `department` (its `govdc.io/department`
    /// label) when it has one, is protected, given the selected DepartmentClouds.
    pub fn protects(
        &self,
        name: &str,
        department: Option<&str>,
        selected: &BTreeSet<String>,
    ) -> bool {
        self.node_namespaces.contains(name) || department.is_some_and(|d| selected.contains(d))
    }
}

/// Whether an ExchangeNode's namespace may be protected: never one of the system's (`kube-*`)
/// nor the operator's own (it holds the targets' credentials), since a node's namespace is
/// replicated whole.
pub fn protectable_node_namespace(namespace: &str, operator_namespace: &str) -> bool {
    !namespace.is_empty() && !namespace.starts_with("kube-") && namespace != operator_namespace
}

/// The protected namespaces of the ExchangeNodes a policy lists: those of the nodes that exist,
/// so that a misspelt entry protects no namespace it happens to name.
pub fn node_namespaces(inputs: &Inputs) -> BTreeSet<String> {
    inputs
        .exchange_nodes
        .iter()
        .filter(|(_, uid)| uid.is_some())
        .filter_map(|(node, _)| node.split_once('/').map(|(namespace, _)| namespace))
        .filter(|namespace| protectable_node_namespace(namespace, &inputs.operator_namespace))
        .map(str::to_owned)
        .collect()
}

/// Why a policy's `departmentSelector` is not a label selector. The parser's reason is part of
/// the message, not a [`std::error::Error::source`], so that a chain of causes does not tell it
/// twice.
#[derive(Debug, thiserror::Error)]
#[error("spec.departmentSelector: {0}")]
pub struct SelectorError(ParseExpressionError);

/// The department selector as a label selector string, or why it is not one.
pub fn department_selector(selector: &LabelSelector) -> Result<Selector, SelectorError> {
    Selector::try_from(selector.clone()).map_err(SelectorError)
}

/// Whether the DepartmentCloud with these labels is selected.
pub fn selects(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    selector.matches(labels)
}

/// Everything a policy protects, as the primary holds it now.
#[derive(Debug, Default)]
pub struct SourceSet {
    /// The protected namespaces' objects (kind Namespace).
    pub namespaces: Vec<Value>,
    /// The objects in them, with their kind.
    pub objects: Vec<(Kind, Value)>,
}

impl SourceSet {
    /// How many objects, namespaces included.
    pub fn len(&self) -> usize {
        self.namespaces.len() + self.objects.len()
    }

    /// Whether there is nothing to protect.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Lists every object of `kind` cluster-wide, in pages, as JSON.
pub async fn list_all(
    client: &Client,
    resource: &ApiResource,
    params: &ListParams,
) -> Result<Vec<Value>, kube::Error> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let mut params = params.clone().limit(500);
    let mut items = Vec::new();
    loop {
        let page = api.list(&params).await?;
        for mut object in page.items {
            // Items of a LIST carry no apiVersion and kind; the cleaners expect them.
            object.types = Some(kube::api::TypeMeta {
                api_version: resource.api_version.clone(),
                kind: resource.kind.clone(),
            });
            items.push(serde_json::to_value(object).unwrap_or(Value::Null));
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(items)
}

/// Whether objects of `kind` are read namespace by namespace rather than cluster-wide: the
/// operator may read Secrets only where govdc works (the chart grants them per namespace, through
/// the binding the DepartmentCloud controller makes in each tenant namespace), so a cluster-wide
/// list or watch of Secrets is refused.
pub fn read_per_namespace(kind: &Kind) -> bool {
    kind.kind == "Secret" && kind.group.is_empty()
}

/// Lists every object of `resource` in each of `namespaces`, in pages, as JSON.
pub async fn list_in_namespaces(
    client: &Client,
    resource: &ApiResource,
    namespaces: &BTreeSet<String>,
) -> Result<Vec<Value>, kube::Error> {
    let mut items = Vec::new();
    for namespace in namespaces {
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, resource);
        let mut params = ListParams::default().limit(500);
        loop {
            let page = api.list(&params).await?;
            for mut object in page.items {
                object.types = Some(kube::api::TypeMeta {
                    api_version: resource.api_version.clone(),
                    kind: resource.kind.clone(),
                });
                items.push(serde_json::to_value(object).unwrap_or(Value::Null));
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => params = params.continue_token(&token),
                _ => break,
            }
        }
    }
    Ok(items)
}

/// The names of the selected DepartmentClouds.
pub async fn selected_departments(
    client: &Client,
    selector: &Selector,
) -> Result<BTreeSet<String>, SourceError> {
    let api: Api<DepartmentCloud> = Api::all(client.clone());
    let params = ListParams::default().labels_from(selector);
    let list = api
        .list_metadata(&params)
        .await
        .map_err(|source| SourceError {
            what: "DepartmentClouds".into(),
            source,
        })?;
    Ok(list
        .items
        .into_iter()
        .filter_map(|d| d.metadata.name)
        .collect())
}

/// Lists what a policy protects: the selected tenants' namespaces, the listed ExchangeNodes'
/// namespaces, and their objects of `kinds`. Kinds the primary does not serve (a CRD not
/// installed) are skipped.
pub async fn list_source(
    client: &Client,
    scope: &Scope,
    kinds: &[Kind],
    concurrency: usize,
) -> Result<SourceSet, SourceError> {
    let departments = selected_departments(client, &scope.departments).await?;
    let namespace_error = |source| SourceError {
        what: "namespaces".into(),
        source,
    };
    let mut namespaces = list_all(
        client,
        &kinds::namespace().api_resource(),
        &ListParams::default().labels(DEPARTMENT_LABEL),
    )
    .await
    .map_err(namespace_error)?;
    let namespace_api: Api<DynamicObject> =
        Api::all_with(client.clone(), &kinds::namespace().api_resource());
    for name in &scope.node_namespaces {
        let labelled = namespaces
            .iter()
            .any(|ns| ns["metadata"]["name"].as_str() == Some(name));
        if !labelled
            && let Some(mut ns) = namespace_api.get_opt(name).await.map_err(namespace_error)?
        {
            ns.types = Some(kube::api::TypeMeta {
                api_version: "v1".into(),
                kind: "Namespace".into(),
            });
            namespaces.push(serde_json::to_value(ns).unwrap_or(Value::Null));
        }
    }
    let namespaces: Vec<Value> = namespaces
        .into_iter()
        .filter(|ns| {
            let name = ns["metadata"]["name"].as_str().unwrap_or_default();
            let department = ns["metadata"]["labels"][DEPARTMENT_LABEL].as_str();
            scope.protects(name, department, &departments)
                && ns["metadata"]["deletionTimestamp"].is_null()
        })
        .collect();
    let protected: BTreeSet<String> = namespaces
        .iter()
        .filter_map(|ns| ns["metadata"]["name"].as_str().map(str::to_owned))
        .collect();
    let protected = std::sync::Arc::new(protected);
    let objects: Vec<Vec<(Kind, Value)>> = stream::iter(kinds.to_vec())
        .map(|kind| {
            let protected = protected.clone();
            let client = client.clone();
            async move {
                let listed = if read_per_namespace(&kind) {
                    list_in_namespaces(&client, &kind.api_resource(), &protected).await
                } else {
                    list_all(&client, &kind.api_resource(), &ListParams::default()).await
                };
                let items = match listed {
                    Ok(items) => items,
                    Err(kube::Error::Api(status)) if status.code == 404 => Vec::new(),
                    Err(source) => {
                        return Err(SourceError {
                            what: kind.qualified(),
                            source,
                        });
                    }
                };
                Ok(items
                    .into_iter()
                    .filter(|o| {
                        o["metadata"]["namespace"]
                            .as_str()
                            .is_some_and(|ns| protected.contains(ns))
                            && replicable(&kind, o)
                    })
                    .map(|o| (kind.clone(), o))
                    .collect())
            }
        })
        .buffer_unordered(concurrency.max(1))
        .try_collect()
        .await?;
    Ok(SourceSet {
        namespaces,
        objects: objects.into_iter().flatten().collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selected_departments_namespaces_and_the_listed_nodes_namespaces_are_protected() {
        let scope = Scope {
            departments: Selector::default(),
            node_namespaces: BTreeSet::from(["govdc-hub".to_owned()]),
        };
        let selected = BTreeSet::from(["zj".to_owned()]);
        assert!(scope.protects("zj-prod", Some("zj"), &selected));
        assert!(!scope.protects("hz-prod", Some("hz"), &selected));
        assert!(!scope.protects("kube-system", None, &selected));
        // A node's namespace whatever its labels: the node's objects live there.
        assert!(scope.protects("govdc-hub", None, &selected));
        assert!(scope.protects("govdc-hub", Some("hz"), &selected));
    }

    #[test]
    fn an_empty_department_selector_selects_every_department() {
        let selector = department_selector(&LabelSelector::default()).expect("valid");
        assert!(selects(&selector, &BTreeMap::new()));
        let selector = department_selector(&LabelSelector {
            match_labels: Some(BTreeMap::from([("tier".into(), "gold".into())])),
            ..Default::default()
        })
        .expect("valid");
        assert!(!selects(&selector, &BTreeMap::new()));
        assert!(selects(
            &selector,
            &BTreeMap::from([("tier".into(), "gold".into())])
        ));
    }
}
