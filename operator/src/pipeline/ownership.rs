//! Labels that mark the objects the operator made, and for which resource: prune and drift
//! repair find them by these labels. Owner references cannot span namespaces or reach
//! cluster-scoped tenants' namespaces, so labels carry ownership everywhere.

use std::collections::BTreeMap;

use kube::api::{ApiResource, DynamicObject};

/// Label naming the operator as the manager of an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`MANAGED_BY`].
pub const MANAGER: &str = "govdc-operator";
/// Label naming the kind of the govdc resource an object belongs to.
pub const OWNER_KIND: &str = "govdc.io/owner-kind";
/// Label naming the govdc resource an object belongs to.
pub const OWNER_NAME: &str = "govdc.io/owner-name";
/// Label naming the namespace of a namespaced govdc resource an object belongs to.
pub const OWNER_NAMESPACE: &str = "govdc.io/owner-namespace";

/// The govdc resource that owns an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Kind, e.g. `DepartmentCloud`.
    pub kind: &'static str,
    /// Name.
    pub name: String,
    /// Namespace, for namespaced kinds.
    pub namespace: Option<String>,
}

impl Owner {
    /// The labels every object this owner makes carries.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::from([
            (MANAGED_BY.to_owned(), MANAGER.to_owned()),
            (OWNER_KIND.to_owned(), self.kind.to_owned()),
            (OWNER_NAME.to_owned(), self.name.clone()),
        ]);
        if let Some(namespace) = &self.namespace {
            labels.insert(OWNER_NAMESPACE.to_owned(), namespace.clone());
        }
        labels
    }

    /// The label selector matching every object this owner made.
    pub fn selector(&self) -> String {
        self.labels()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join(",")
    }
}

/// An object the operator made, as the API server holds it.
#[derive(Clone, Debug)]
pub struct Owned {
    /// Its API resource.
    pub resource: ApiResource,
    /// The object.
    pub object: DynamicObject,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selector_matches_exactly_the_owner_labels() {
        let owner = Owner {
            kind: "ExchangeNode",
            name: "national".into(),
            namespace: Some("hub".into()),
        };
        assert_eq!(
            owner.selector(),
            "app.kubernetes.io/managed-by=govdc-operator,govdc.io/owner-kind=ExchangeNode,govdc.io/owner-name=national,govdc.io/owner-namespace=hub"
        );
    }
}
