//! Claiming a tenant's new namespaces before anything is applied to them. Two tenants can name
//! the same namespace (`x-a` with environment `b` and `x` with environment `a-b` both make
//! `x-a-b`), and server-side apply with `force` would let the second take the first's namespace
//! over, both then reporting Ready. A namespace that does not exist yet is therefore created,
//! not applied: the API server lets exactly one creator win, and the tenant that loses finds
//! the namespace is someone else's and is refused with `NamespaceConflict`.

use std::collections::BTreeMap;

use govdc_crds::common::RETAINED_FROM_LABEL;
use k8s_openapi::api::core::v1::Namespace;
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Client, ResourceExt};

use crate::error::{Error, Result};
use crate::pipeline::apply::DesiredObject;
use crate::pipeline::ownership::Owner;

/// Whose an existing namespace is, seen from one DepartmentCloud.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Whose {
    /// It carries this tenant's ownership labels.
    Ours,
    /// An earlier DepartmentCloud of this name retained it; this one adopts it.
    Retained,
    /// Somebody else's: another tenant's, or made by hand.
    Foreign,
}

/// Whose a namespace with these labels is, to the tenant `owner` (pure).
pub fn whose(labels: &BTreeMap<String, String>, owner: &Owner) -> Whose {
    if owner
        .labels()
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
    {
        Whose::Ours
    } else if labels.get(RETAINED_FROM_LABEL) == Some(&owner.name) {
        Whose::Retained
    } else {
        Whose::Foreign
    }
}

/// What claiming came to: per namespace asked for, the namespace as created, or None when it
/// existed and is this tenant's (the caches lagged) or retained for it, to be applied like the
/// rest; and the namespaces that turned out to be someone else's.
#[derive(Debug, Default)]
pub struct Claimed {
    /// Per namespace, in the order asked: the created namespace, or None.
    pub outcomes: Vec<Option<DynamicObject>>,
    /// Namespaces another writer created since they were read.
    pub foreign: Vec<String>,
}

/// Creates each of `namespaces` (desired namespaces not known to exist), with all their desired
/// content so that no apply has to follow (the labels of a tenant namespace are always the same
/// keys, so the create's field ownership never has to give one up).
pub async fn claim_new_namespaces(
    client: &Client,
    owner: &Owner,
    field_manager: &str,
    namespaces: &[DesiredObject],
) -> Result<Claimed> {
    let api: Api<DynamicObject> =
        Api::all_with(client.clone(), &ApiResource::erase::<Namespace>(&()));
    let params = PostParams {
        field_manager: Some(field_manager.to_owned()),
        ..PostParams::default()
    };
    let mut claimed = Claimed::default();
    for namespace in namespaces {
        let name = namespace.object.name_any();
        let apply_error = |source| Error::Apply {
            what: format!("Namespace {name}"),
            source,
        };
        match api.create(&params, &namespace.object).await {
            Ok(created) => claimed.outcomes.push(Some(created)),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                // Taken since it was read: by this tenant's own earlier pass (a watch cache that
                // lags), or by someone else.
                let taken = api.get(&name).await.map_err(apply_error)?;
                if whose(taken.labels(), owner) == Whose::Foreign {
                    claimed.foreign.push(name);
                }
                claimed.outcomes.push(None);
            }
            Err(source) => return Err(apply_error(source)),
        }
    }
    Ok(claimed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(name: &str) -> Owner {
        Owner {
            kind: "DepartmentCloud",
            name: name.to_owned(),
            namespace: None,
        }
    }

    #[test]
    fn a_namespace_is_ours_only_with_all_our_labels() {
        let ours = owner("x");
        assert_eq!(whose(&ours.labels(), &ours), Whose::Ours);
        // Another tenant's namespace of the same name carries the other owner's name.
        assert_eq!(whose(&owner("x-a").labels(), &ours), Whose::Foreign);
        assert_eq!(whose(&BTreeMap::new(), &ours), Whose::Foreign);
        let retained = BTreeMap::from([(RETAINED_FROM_LABEL.to_owned(), "x".to_owned())]);
        assert_eq!(whose(&retained, &ours), Whose::Retained);
        assert_eq!(whose(&retained, &owner("y")), Whose::Foreign);
    }
}
