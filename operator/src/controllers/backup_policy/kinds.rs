//! The kinds a BackupPolicy can replicate, and the order a restore writes them in. Pure.
//!
//! The catalog is fixed rather than discovered: every kind here has cleaning rules in
//! [`super::clean`], and a kind the operator does not know how to clean (an Endpoints object, a
//! Pod) would replicate cluster-generated state that must not reach the standby.

use kube::api::ApiResource;

/// One replicable kind.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Kind {
    /// `Deployment`.
    pub kind: &'static str,
    /// `apps`; empty for the core group.
    pub group: &'static str,
    /// `v1`.
    pub version: &'static str,
    /// `deployments`.
    pub plural: &'static str,
    /// Restore waves run in ascending rank: namespaces, then RBAC, then configuration, then
    /// services, then workloads, then govdc's own resources.
    pub rank: u8,
    /// Replicated when `includeKinds` is unset.
    pub default: bool,
}

impl Kind {
    /// The kube API resource.
    pub fn api_resource(&self) -> ApiResource {
        let api_version = if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        };
        ApiResource {
            group: self.group.to_owned(),
            version: self.version.to_owned(),
            api_version,
            kind: self.kind.to_owned(),
            plural: self.plural.to_owned(),
        }
    }

    /// `Kind` for the core group, `Kind.group` otherwise, as the spec names kinds.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.kind.to_owned()
        } else {
            format!("{}.{}", self.kind, self.group)
        }
    }

    /// Whether `name` (`Deployment` or `Deployment.apps`, any case) names this kind.
    pub fn is_named(&self, name: &str) -> bool {
        match name.split_once('.') {
            Some((kind, group)) => {
                kind.eq_ignore_ascii_case(self.kind) && group.eq_ignore_ascii_case(self.group)
            }
            None => name.eq_ignore_ascii_case(self.kind),
        }
    }
}

/// The rank of namespaces in a restore: before everything they hold.
pub const NAMESPACE_RANK: u8 = 0;

const fn kind(
    kind: &'static str,
    group: &'static str,
    version: &'static str,
    plural: &'static str,
    rank: u8,
    default: bool,
) -> Kind {
    Kind {
        kind,
        group,
        version,
        plural,
        rank,
        default,
    }
}

/// Every namespaced kind the operator can replicate.
pub const CATALOG: &[Kind] = &[
    kind("ServiceAccount", "", "v1", "serviceaccounts", 1, true),
    kind("Role", "rbac.authorization.k8s.io", "v1", "roles", 1, true),
    kind(
        "RoleBinding",
        "rbac.authorization.k8s.io",
        "v1",
        "rolebindings",
        2,
        true,
    ),
    kind("ResourceQuota", "", "v1", "resourcequotas", 3, true),
    kind("LimitRange", "", "v1", "limitranges", 3, true),
    kind(
        "NetworkPolicy",
        "networking.k8s.io",
        "v1",
        "networkpolicies",
        3,
        true,
    ),
    kind("ConfigMap", "", "v1", "configmaps", 3, true),
    kind("Secret", "", "v1", "secrets", 3, true),
    kind(
        "PersistentVolumeClaim",
        "",
        "v1",
        "persistentvolumeclaims",
        3,
        true,
    ),
    kind("Service", "", "v1", "services", 4, true),
    kind("Deployment", "apps", "v1", "deployments", 5, true),
    kind("StatefulSet", "apps", "v1", "statefulsets", 5, true),
    kind("CronJob", "batch", "v1", "cronjobs", 5, true),
    kind("Job", "batch", "v1", "jobs", 5, false),
    kind(
        "OpenDataset",
        "govdc.io",
        "v1alpha1",
        "opendatasets",
        6,
        true,
    ),
    kind(
        "ExchangeNode",
        "govdc.io",
        "v1alpha1",
        "exchangenodes",
        6,
        true,
    ),
];

/// The namespace kind, replicated for every protected namespace whatever the kind lists say.
pub fn namespace() -> Kind {
    kind("Namespace", "", "v1", "namespaces", NAMESPACE_RANK, true)
}

/// Kind names a policy gives that are not in the catalog.
#[derive(Debug, thiserror::Error)]
#[error("{} not replicable; the kinds are {}", .unknown.join(", "), .known.join(", "))]
pub struct UnknownKinds {
    /// The names given that no kind of the catalog answers to.
    pub unknown: Vec<String>,
    /// The catalog's kinds, qualified (`Deployment.apps`), for the person fixing the spec.
    pub known: Vec<String>,
}

/// The kinds a policy replicates, in restore order, or the names it gives that are not in the
/// catalog.
pub fn select(
    include: Option<&[String]>,
    exclude: Option<&[String]>,
) -> Result<Vec<Kind>, UnknownKinds> {
    let unknown: Vec<String> = include
        .unwrap_or_default()
        .iter()
        .chain(exclude.unwrap_or_default())
        .filter(|name| !CATALOG.iter().any(|k| k.is_named(name)))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        let known = CATALOG.iter().map(Kind::qualified).collect();
        return Err(UnknownKinds { unknown, known });
    }
    let mut kinds: Vec<Kind> = CATALOG
        .iter()
        .filter(|k| match include {
            Some(names) => names.iter().any(|n| k.is_named(n)),
            None => k.default,
        })
        .filter(|k| !exclude.unwrap_or_default().iter().any(|n| k.is_named(n)))
        .cloned()
        .collect();
    kinds.sort_by_key(|k| k.rank);
    Ok(kinds)
}

/// The catalog entry for an apiVersion and kind, namespaces included.
pub fn find(api_version: &str, kind_name: &str) -> Option<Kind> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    std::iter::once(namespace())
        .chain(CATALOG.iter().cloned())
        .find(|k| k.kind == kind_name && k.group == group && k.version == version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(kinds: &[Kind]) -> Vec<String> {
        kinds.iter().map(Kind::qualified).collect()
    }

    #[test]
    fn the_defaults_are_the_tenant_kinds_in_restore_order() {
        let kinds = select(None, None).expect("defaults");
        let names = names(&kinds);
        assert!(names.contains(&"Deployment.apps".to_owned()));
        assert!(names.contains(&"OpenDataset.govdc.io".to_owned()));
        assert!(
            !names.contains(&"Job.batch".to_owned()),
            "Jobs are run by CronJobs"
        );
        let position = |n: &str| names.iter().position(|x| x == n).expect(n);
        assert!(position("Role.rbac.authorization.k8s.io") < position("ConfigMap"));
        assert!(position("ConfigMap") < position("Deployment.apps"));
        assert!(position("Deployment.apps") < position("OpenDataset.govdc.io"));
    }

    #[test]
    fn kinds_are_named_with_or_without_their_group_in_any_case() {
        let kinds = select(Some(&["deployment".into(), "ConfigMap".into()]), None).expect("ok");
        assert_eq!(names(&kinds), ["ConfigMap", "Deployment.apps"]);
        let kinds = select(None, Some(&["Secret".into(), "Service".into()])).expect("ok");
        assert!(!names(&kinds).contains(&"Secret".to_owned()));
        assert!(names(&kinds).contains(&"ConfigMap".to_owned()));
    }

    #[test]
    fn an_unknown_kind_is_refused_with_the_list_of_known_ones() {
        let error = select(Some(&["Pod".into()]), None)
            .expect_err("Pod is not replicable")
            .to_string();
        assert!(error.starts_with("Pod not replicable"), "{error}");
        assert!(error.contains("Deployment.apps"));
    }

    #[test]
    fn find_resolves_api_versions() {
        assert_eq!(
            find("apps/v1", "Deployment").map(|k| k.plural),
            Some("deployments")
        );
        assert_eq!(
            find("v1", "Namespace").map(|k| k.rank),
            Some(NAMESPACE_RANK)
        );
        assert!(find("v1", "Pod").is_none());
    }
}
