//! Pure validation of a DepartmentCloud beyond its schema: what CEL cannot check (the credit
//! code's check characters, the region's level) and what depends on other objects (peers).

use govdc_crds::DepartmentCloud;
use govdc_crds::validation::validate_department_identity;
use kube::ResourceExt;

use super::read::Inputs;
use crate::controllers::Problem;

/// The problems found; empty when the spec can be provisioned.
pub fn validate(cloud: &DepartmentCloud, inputs: &Inputs) -> Vec<Problem> {
    let mut problems = Vec::new();
    if let Err(problem) = validate_department_identity(&cloud.spec.department) {
        problems.push(Problem {
            reason: problem.reason(),
            message: problem.to_string(),
        });
    }
    for name in &cloud.spec.peer_departments {
        if name == &cloud.name_any() {
            problems.push(Problem {
                reason: "InvalidPeer",
                message: format!("spec.peerDepartments: {name} is this department itself"),
            });
            continue;
        }
        match inputs.peers.iter().find(|p| &p.name_any() == name) {
            None => problems.push(Problem {
                reason: "PeerNotFound",
                message: format!("spec.peerDepartments: DepartmentCloud {name} does not exist"),
            }),
            Some(peer) if peer.spec.network_zone != cloud.spec.network_zone => problems.push(Problem {
                reason: "PeerInOtherZone",
                message: format!(
                    "spec.peerDepartments: {name} is on the {} and this department on the {}; the networks never mix",
                    peer.spec.network_zone.as_str(),
                    cloud.spec.network_zone.as_str()
                ),
            }),
            Some(_) => {}
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use govdc_crds::NetworkZone;

    fn cloud(name: &str, code: &str, zone: NetworkZone, peers: &[&str]) -> DepartmentCloud {
        let mut cloud: DepartmentCloud = serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1",
            "kind": "DepartmentCloud",
            "metadata": {"name": name},
            "spec": {
                "department": {"name": "浙江省数据局", "creditCode": code, "level": "provincial", "regionCode": "330000"},
                "networkZone": zone.as_str(),
                "protectionLevel": 3,
                "environments": [{"name": "prod"}],
                "peerDepartments": peers,
            }
        }))
        .expect("fixture deserializes");
        cloud.spec.network_zone = zone;
        cloud
    }

    fn valid_code() -> String {
        govdc_crds::validation::credit_code::complete("11330000MB000000")
    }

    #[test]
    fn a_valid_department_has_no_problems() {
        let c = cloud("zj-data", &valid_code(), NetworkZone::Extranet, &[]);
        assert!(validate(&c, &Inputs::default()).is_empty());
    }

    #[test]
    fn a_wrong_credit_code_check_character_is_a_problem_naming_the_field() {
        let mut code = valid_code();
        let last = code.pop().expect("non-empty");
        code.push(if last == '0' { '1' } else { '0' });
        let problems = validate(
            &cloud("zj-data", &code, NetworkZone::Extranet, &[]),
            &Inputs::default(),
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
        };
        let reasons: Vec<_> = validate(&c, &inputs).iter().map(|p| p.reason).collect();
        assert_eq!(reasons, ["PeerNotFound", "PeerInOtherZone"]);
    }
}
