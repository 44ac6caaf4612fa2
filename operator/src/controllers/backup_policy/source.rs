//! The primary's side: which namespaces a policy protects, and the objects in them.
//!
//! A namespace is protected when it belongs (label `govdc.io/department`) to a DepartmentCloud the
//! policy's `departmentSelector` selects. Objects are listed and watched cluster-wide per kind and
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
use kube::core::{Selector, SelectorExt};
use kube::{Api, Client};
use serde_json::Value;

use super::clean::replicable;
use super::kinds::{self, Kind};

/// Why the primary could not be read.
#[derive(Debug, thiserror::Error)]
#[error("listing {what} on the primary: {}", crate::error::api_message(.source))]
pub struct SourceError {
    /// What was listed.
    pub what: String,
    /// The API error.
    #[source]
    pub source: kube::Error,
}

/// The department selector as a label selector string, or why it is not one.
pub fn department_selector(selector: &LabelSelector) -> Result<Selector, String> {
    Selector::try_from(selector.clone()).map_err(|e| format!("spec.departmentSelector: {e}"))
}

/// Whether the DepartmentCloud with these labels is selected.
pub fn selects(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    selector.matches(labels)
}

/// The protected namespaces among `namespaces` (name -> department), given the selected
/// DepartmentClouds.
pub fn protected_namespaces(
    namespaces: &BTreeMap<String, String>,
    departments: &BTreeSet<String>,
) -> BTreeSet<String> {
    namespaces
        .iter()
        .filter(|(_, department)| departments.contains(*department))
        .map(|(name, _)| name.clone())
        .collect()
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

/// Lists what a policy protects: the selected tenants' namespaces and their objects of `kinds`.
/// Kinds the primary does not serve (a CRD not installed) are skipped.
pub async fn list_source(
    client: &Client,
    selector: &Selector,
    kinds: &[Kind],
    concurrency: usize,
) -> Result<SourceSet, SourceError> {
    let departments = selected_departments(client, selector).await?;
    let namespaces = list_all(
        client,
        &kinds::namespace().api_resource(),
        &ListParams::default().labels(DEPARTMENT_LABEL),
    )
    .await
    .map_err(|source| SourceError {
        what: "namespaces".into(),
        source,
    })?;
    let namespaces: Vec<Value> = namespaces
        .into_iter()
        .filter(|ns| {
            ns["metadata"]["labels"][DEPARTMENT_LABEL]
                .as_str()
                .is_some_and(|d| departments.contains(d))
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
    fn only_namespaces_of_selected_departments_are_protected() {
        let namespaces = BTreeMap::from([
            ("zj-prod".to_owned(), "zj".to_owned()),
            ("zj-test".to_owned(), "zj".to_owned()),
            ("hz-prod".to_owned(), "hz".to_owned()),
        ]);
        let selected = BTreeSet::from(["zj".to_owned()]);
        assert_eq!(
            protected_namespaces(&namespaces, &selected),
            BTreeSet::from(["zj-prod".to_owned(), "zj-test".to_owned()])
        );
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
