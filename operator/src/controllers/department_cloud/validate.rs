//! Pure validation of a DepartmentCloud beyond its schema: what CEL cannot check (the credit
//! code's check characters, the region's level, quantities adding up) and what depends on other
//! objects (peers, namespaces that exist already, quota already in use). A problem stops the
//! pass before anything is applied, so nothing is half-applied.

use govdc_crds::DepartmentCloud;
use govdc_crds::validation::validate_department_identity;
use kube::ResourceExt;

use super::build::namespace_name;
use super::quotas::QuotaPlan;
use super::read::Inputs;
use crate::controllers::Problem;
use crate::quantity::{self, Amounts};

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
        problems.push(Problem::new(
            "NamespaceConflict",
            format!("spec.environments: namespace {namespace} already exists and does not belong to this DepartmentCloud"),
        ));
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
