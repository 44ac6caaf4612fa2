//! govdc's custom resources, group `govdc.io`, version `v1alpha1`:
//!
//! - [`DepartmentCloud`]: a department's tenant cloud (cluster-scoped, `dc`);
//! - [`ExchangeNode`]: a node of the data sharing and exchange hub (namespaced, `xn`);
//! - [`OpenDataset`]: a de-identified dataset on the open-data portal (namespaced, `od`);
//! - [`BackupPolicy`]: disaster-recovery replication to another cluster (cluster-scoped, `bp`).
//!
//! The schema each type derives, CEL rules included, is what the API server enforces at
//! admission; [`validation`] holds what CEL cannot express.

// Each `printcolumn(name = .., type_ = ..)` of kube-derive repeats the same keys, which this lint
// mistakes for duplicated attributes.
#![allow(clippy::duplicated_attributes)]

pub mod backup_policy;
pub mod common;
pub mod department_cloud;
pub mod exchange_node;
pub mod open_dataset;
pub mod validation;

pub use backup_policy::{BackupPolicy, BackupPolicySpec, BackupPolicyStatus};
pub use common::{AdministrativeLevel, CATEGORY, GROUP, NetworkZone};
pub use department_cloud::{DepartmentCloud, DepartmentCloudSpec, DepartmentCloudStatus};
pub use exchange_node::{ExchangeNode, ExchangeNodeSpec, ExchangeNodeStatus};
pub use open_dataset::{OpenDataset, OpenDatasetSpec, OpenDatasetStatus};

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::CustomResourceExt;

/// The CustomResourceDefinitions of every govdc resource, in a stable order.
pub fn custom_resource_definitions() -> Vec<CustomResourceDefinition> {
    vec![
        DepartmentCloud::crd(),
        ExchangeNode::crd(),
        OpenDataset::crd(),
        BackupPolicy::crd(),
    ]
}

/// The file name a CRD is written to: `<plural>.<group>.yaml`, as kubebuilder names them.
pub fn crd_file_name(crd: &CustomResourceDefinition) -> String {
    format!("{}.yaml", crd.metadata.name.as_deref().unwrap_or("unnamed"))
}

/// Renders a CRD as the YAML committed under `crds/` and in the Helm chart.
pub fn crd_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    let body = serde_norway::to_string(crd)?;
    Ok(format!(
        "# Generated from the Rust types in crds/src by `cargo run -p govdc-operator --bin crdgen`; do not edit.\n{body}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_crd_is_in_the_govdc_category_and_group() {
        for crd in custom_resource_definitions() {
            assert_eq!(crd.spec.group, GROUP);
            assert_eq!(
                crd.spec.names.categories.as_deref(),
                Some(&[CATEGORY.to_owned()][..])
            );
            assert!(crd.spec.names.short_names.is_some_and(|s| !s.is_empty()));
            let version = &crd.spec.versions[0];
            assert!(
                version
                    .subresources
                    .as_ref()
                    .is_some_and(|s| s.status.is_some())
            );
        }
    }

    #[test]
    fn every_schema_property_is_documented() {
        fn walk(path: &str, schema: &serde_json::Value, missing: &mut Vec<String>) {
            if let Some(props) = schema.get("properties").and_then(|p| p.as_object()) {
                for (name, prop) in props {
                    let here = format!("{path}.{name}");
                    let inherited = path.ends_with(".metadata") || here.ends_with(".metadata");
                    if !inherited && prop.get("description").is_none() {
                        missing.push(here.clone());
                    }
                    walk(&here, prop, missing);
                }
            }
            if let Some(items) = schema.get("items") {
                walk(&format!("{path}[]"), items, missing);
            }
        }
        let mut missing = Vec::new();
        for crd in custom_resource_definitions() {
            let schema =
                serde_json::to_value(&crd.spec.versions[0].schema).expect("schema serializes");
            walk(
                &crd.spec.names.kind,
                &schema["openAPIV3Schema"],
                &mut missing,
            );
        }
        assert!(missing.is_empty(), "undocumented fields: {missing:#?}");
    }
}
