//! Pure validation of a DepartmentCloud beyond its schema: what CEL cannot check (the credit
//! code's check characters, the region's level, quantities adding up) and what depends on other
//! objects (peers, namespaces that exist already, quota already in use). A problem stops the
//! pass before anything is applied, so nothing is half-applied.

use govdc_crds::department_cloud::MemberKind;
use govdc_crds::validation::validate_department_identity;
use govdc_crds::{DepartmentCloud, DepartmentCloudSpec};
use kube::ResourceExt;

use super::build::namespace_name;
use super::quotas::QuotaPlan;
use super::read::Inputs;
use super::resources;
use crate::pipeline::report::Problem;
use crate::quantity::{self, Amounts};

/// The problems the API server would find in the quotas and the LimitRange the spec becomes,
/// and in its RoleBindings' subjects: checked before anything is written, so that a spec the
/// API server would refuse in any object stops the pass before a namespace exists.
pub fn resources(spec: &DepartmentCloudSpec) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Some(quota) = &spec.quota {
        problems.extend(resources::check_quota("spec.quota", quota));
    }
    for environment in &spec.environments {
        if let Some(quota) = &environment.quota {
            let field = format!("spec.environments[{}].quota", environment.name);
            problems.extend(resources::check_quota(&field, quota));
        }
    }
    if let Some(defaults) = &spec.container_defaults {
        problems.extend(resources::check_container_defaults(defaults));
    }
    for (field, members) in [
        ("spec.admins", &spec.admins),
        ("spec.viewers", &spec.viewers),
    ] {
        for member in members
            .iter()
            .filter(|m| m.kind == MemberKind::ServiceAccount)
        {
            if !is_dns_subdomain(&member.name) {
                problems.push(Problem::new(
                    "InvalidMember",
                    format!(
                        "{field}: ServiceAccount '{}' is not a valid ServiceAccount name (lower-case letters, digits, '-' and '.')",
                        member.name
                    ),
                ));
            }
        }
    }
    problems
}

/// An RFC 1123 subdomain, as ServiceAccount names are.
fn is_dns_subdomain(name: &str) -> bool {
    name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        })
}

/// An environment's namespace that exists and is not this tenant's.
pub fn namespace_conflict(namespace: &str) -> Problem {
    Problem::new(
        "NamespaceConflict",
        format!(
            "spec.environments: namespace {namespace} already exists and does not belong to this DepartmentCloud"
        ),
    )
}

/// The problems found; empty when the spec can be provisioned. `capacity` is the data center's,
/// when configured.
pub fn validate(
    cloud: &DepartmentCloud,
    inputs: &Inputs,
    quotas: &QuotaPlan,
    capacity: Option<&Amounts>,
) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(problem) = validate_department_identity(&cloud.spec.department) {
        problems.push(Problem::new(problem.reason(), problem.to_string()));
    }
    for name in &cloud.spec.peer_departments {
        if name == &cloud.name_any() {
            problems.push(Problem::new(
                "InvalidPeer",
                format!("spec.peerDepartments: {name} is this department itself"),
            ));
            continue;
        }
        match inputs.peers.iter().find(|p| &p.name_any() == name) {
            None => problems.push(Problem::new(
                "PeerNotFound",
                format!("spec.peerDepartments: DepartmentCloud {name} does not exist"),
            )),
            Some(peer) if peer.spec.network_zone != cloud.spec.network_zone => problems.push(Problem::new(
                "PeerInOtherZone",
                format!(
                    "spec.peerDepartments: {name} is on the {} and this department on the {}; the networks never mix",
                    peer.spec.network_zone.as_str(),
                    cloud.spec.network_zone.as_str()
                ),
            )),
            Some(_) => {}
        }
    }
    for namespace in &inputs.foreign_namespaces {
        problems.push(namespace_conflict(namespace));
    }
    if !quotas.overshoot.is_empty() {
        problems.push(Problem::new(
            "EnvironmentQuotasExceedTenant",
            format!(
                "spec.environments: the environments' quotas exceed spec.quota by {}",
                quantity::describe(&quotas.overshoot)
            ),
        ));
    }
    for environment in &cloud.spec.environments {
        let namespace = namespace_name(cloud, &environment.name);
        let Some(Some(hard)) = quotas.environments.get(&environment.name) else {
            continue;
        };
        let Some((_, used)) = inputs.quota_used.iter().find(|(ns, _)| ns == &namespace) else {
            continue;
        };
        let below = quantity::excess(used, hard);
        if !below.is_empty() {
            problems.push(Problem::new(
                "QuotaBelowUsage",
                format!(
                    "spec.environments[{}]: the quota of {namespace} would be below what is in use, by {}",
                    environment.name,
                    quantity::describe(&below)
                ),
            ));
        }
    }
    if let Some(capacity) = capacity {
        let demand = super::capacity::demand(&cloud.spec).unwrap_or_default();
        let beyond = super::capacity::beyond_capacity(&demand, capacity);
        if !beyond.is_empty() {
            let whole: Amounts = beyond
                .keys()
                .filter_map(|r| Some((r.clone(), *capacity.get(r)?)))
                .collect();
            problems.push(Problem::new(
                super::capacity::EXCEEDS_CAPACITY,
                format!(
                    "spec.quota: the tenant asks for {} but the whole data center has {}; it could never be admitted",
                    quantity::describe(&beyond),
                    quantity::describe(&whole)
                ),
            ));
        }
        let tenant: Amounts =
            quotas
                .environments
                .values()
                .flatten()
                .fold(Amounts::new(), |mut total, q| {
                    quantity::add(&mut total, q);
                    total
                });
        let unbounded: Vec<&str> = capacity
            .keys()
            .filter(|r| !tenant.contains_key(*r))
            .map(String::as_str)
            .collect();
        if !unbounded.is_empty() {
            problems.push(Problem::new(
                "QuotaRequired",
                format!(
                    "spec.quota: the data center's capacity is limited in {}; the tenant must set a quota for it",
                    unbounded.join(", ")
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::department_cloud::quotas;
    use govdc_crds::NetworkZone;
    use govdc_crds::department_cloud::TenantMember;
    use k8s_openapi::apimachinery::pkg::api::resource::Quantity;

    fn cloud(name: &str, code: &str, zone: NetworkZone, peers: &[&str]) -> DepartmentCloud {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1",
            "kind": "DepartmentCloud",
            "metadata": {"name": name},
            "spec": {
                "department": {"name": "浙江省数据局", "creditCode": code, "level": "provincial", "regionCode": "330000"},
                "networkZone": zone.as_str(),
                "protectionLevel": 3,
                "environments": [{"name": "prod", "quota": {"requests.cpu": "2"}}],
                "peerDepartments": peers,
            }
        }))
        .expect("fixture deserializes")
    }

    fn valid_code() -> String {
        govdc_crds::validation::credit_code::complete("11330000MB000000")
    }

    fn check(
        cloud: &DepartmentCloud,
        inputs: &Inputs,
        capacity: Option<&Amounts>,
    ) -> Vec<&'static str> {
        validate(
            cloud,
            inputs,
            &quotas::plan(&cloud.spec).expect("plan"),
            capacity,
        )
        .iter()
        .map(|p| p.reason)
        .collect()
    }

    #[test]
    fn a_valid_department_has_no_problems() {
        let c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        assert!(check(&c, &Inputs::default(), None).is_empty());
    }

    #[test]
    fn a_wrong_credit_code_check_character_is_a_problem_naming_the_field() {
        let mut code = valid_code();
        let last = code.pop().expect("non-empty");
        code.push(if last == '0' { '1' } else { '0' });
        let c = cloud("zj-data", &code, NetworkZone::Extranet, &[]);
        let problems = validate(
            &c,
            &Inputs::default(),
            &quotas::plan(&c.spec).expect("plan"),
            None,
        );
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].reason, "InvalidCreditCode");
        assert!(problems[0].message.contains("spec.department.creditCode"));
    }

    #[test]
    fn peers_must_exist_and_share_the_zone() {
        let c = cloud(
            "zj-data",
            &valid_code(),
            NetworkZone::Extranet,
            &["missing", "classified"],
        );
        let inputs = Inputs {
            peers: vec![cloud(
                "classified",
                &valid_code(),
                NetworkZone::Intranet,
                &[],
            )],
            ..Default::default()
        };
        assert_eq!(
            check(&c, &inputs, None),
            ["PeerNotFound", "PeerInOtherZone"]
        );
    }

    #[test]
    fn a_namespace_that_is_not_ours_is_a_conflict() {
        let c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        let inputs = Inputs {
            foreign_namespaces: vec!["zj-data-prod".into()],
            ..Default::default()
        };
        assert_eq!(check(&c, &inputs, None), ["NamespaceConflict"]);
    }

    #[test]
    fn a_quota_below_usage_is_refused() {
        let c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        let inputs = Inputs {
            quota_used: vec![(
                "zj-data-prod".into(),
                Amounts::from([("requests.cpu".into(), 3000)]),
            )],
            ..Default::default()
        };
        assert_eq!(check(&c, &inputs, None), ["QuotaBelowUsage"]);
    }

    #[test]
    fn a_demand_larger_than_the_whole_data_center_is_refused_at_once() {
        let mut c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        c.spec.quota = Some(
            [("requests.cpu".to_owned(), Quantity("20".into()))]
                .into_iter()
                .collect(),
        );
        let capacity = Amounts::from([("requests.cpu".into(), 10_000)]);
        let problems = validate(
            &c,
            &Inputs::default(),
            &quotas::plan(&c.spec).expect("plan"),
            Some(&capacity),
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].reason, "ExceedsCapacity");
        assert!(
            problems[0].message.contains("requests.cpu 20")
                && problems[0].message.contains("requests.cpu 10"),
            "{}",
            problems[0].message
        );
    }

    #[test]
    fn quantities_the_api_server_would_refuse_are_problems_before_any_write() {
        let mut c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        c.spec.quota = Some(
            [("requests.cpu".to_owned(), Quantity("-1".into()))]
                .into_iter()
                .collect(),
        );
        c.spec.environments[0].quota = Some(
            [("pods".to_owned(), Quantity("2.5".into()))]
                .into_iter()
                .collect(),
        );
        let reasons: Vec<_> = resources(&c.spec).iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["NegativeQuantity", "InvalidQuantity"]);
    }

    #[test]
    fn a_service_account_member_needs_a_valid_name() {
        let mut c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        c.spec.admins = vec![TenantMember {
            kind: MemberKind::ServiceAccount,
            name: "Deploy_Bot".into(),
            namespace: Some("ci".into()),
        }];
        let problems = resources(&c.spec);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].reason, "InvalidMember");
        assert!(problems[0].message.starts_with("spec.admins"));
    }

    #[test]
    fn a_capacity_limited_resource_needs_a_tenant_quota() {
        let c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        let capacity = Amounts::from([
            ("requests.cpu".into(), 100_000),
            ("requests.memory".into(), 1),
        ]);
        assert_eq!(
            check(&c, &Inputs::default(), Some(&capacity)),
            ["QuotaRequired"]
        );
    }
}
