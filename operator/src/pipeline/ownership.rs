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

/// The label keys that mark an object as made by govdc for one owner.
const OWNERSHIP_KEYS: [&str; 4] = [MANAGED_BY, OWNER_KIND, OWNER_NAME, OWNER_NAMESPACE];

/// Whether `found` carries every ownership label `desired` carries, with the same values: it was
/// made by govdc for the same owner (pure).
pub fn same_owner(found: &BTreeMap<String, String>, desired: &BTreeMap<String, String>) -> bool {
    OWNERSHIP_KEYS
        .iter()
        .filter_map(|key| desired.get(*key).map(|value| (key, value)))
        .all(|(key, value)| found.get(*key) == Some(value))
}

/// The desired objects that are not among `existing` (what the owner's labels found) but exist
/// all the same, made by someone else: writing them would take over what govdc did not make.
/// One GET per such object, so a converged pass, whose objects are all in `existing`, reads
/// nothing here. Returned as `Kind namespace/name`.
pub async fn made_by_others(
    client: &kube::Client,
    desired: &[super::apply::DesiredObject],
    existing: &[Owned],
) -> crate::error::Result<Vec<String>> {
    use kube::ResourceExt;
    let mut others = Vec::new();
    for object in desired {
        let key = object.key();
        if existing
            .iter()
            .any(|o| super::prune::key(&o.resource, &o.object) == key)
        {
            continue;
        }
        let found = object
            .api(client)
            .get_opt(&object.object.name_any())
            .await
            .map_err(|source| crate::error::Error::Read {
                what: object.describe(),
                source,
            })?;
        if let Some(found) = found
            && !same_owner(found.labels(), object.object.labels())
        {
            others.push(object.describe());
        }
    }
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_same_owners_labels_make_an_object_ours() {
        let mine = Owner {
            kind: "ExchangeNode",
            name: "national".into(),
            namespace: Some("hub".into()),
        }
        .labels();
        let mut found = mine.clone();
        found.insert("app".into(), "hub".into());
        assert!(same_owner(&found, &mine));
        assert!(!same_owner(&BTreeMap::new(), &mine));
        found.insert(OWNER_NAME.into(), "zhejiang".into());
        assert!(!same_owner(&found, &mine), "another owner's object");
    }

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
