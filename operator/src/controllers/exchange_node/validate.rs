//! Pure validation of an ExchangeNode against its parent: the two networks never mix, a parent
//! sits above its child in the hub tree, and the parent chain has no cycle.

use govdc_crds::ExchangeNode;

use super::read::Inputs;
use crate::pipeline::report::Problem;

/// The problems found; empty when the node can be deployed.
pub fn validate(node: &ExchangeNode, inputs: &Inputs) -> Vec<Problem> {
    let mut problems = Vec::new();
    let Some(parent_spec) = &node.spec.parent else {
        return problems;
    };
    if let Some(chain) = &inputs.cycle {
        problems.push(Problem::new(
            "ParentCycle",
            format!(
                "spec.parent.nodeRef: the parent chain comes back to itself: {}",
                chain.join(" -> ")
            ),
        ));
        return problems;
    }
    if let Some(reference) = &parent_spec.node_ref {
        match &inputs.parent {
            None => problems.push(Problem::new(
                "ParentNotFound",
                format!(
                    "spec.parent.nodeRef: ExchangeNode {} does not exist",
                    reference.name
                ),
            )),
            Some(parent) => {
                if parent.spec.network_zone != node.spec.network_zone {
                    problems.push(Problem::new(
                        "NetworkZoneMismatch",
                        format!(
                            "spec.parent.nodeRef: {} is an {} node and this one is on the {}; an intranet node never federates with an extranet node",
                            reference.name,
                            parent.spec.network_zone.as_str(),
                            node.spec.network_zone.as_str()
                        ),
                    ));
                }
                if parent.spec.level.depth() >= node.spec.level.depth() {
                    problems.push(Problem::new(
                        "InvalidParentLevel",
                        format!("spec.parent.nodeRef: a parent must sit above its child in the hub tree, and {} does not", reference.name),
                    ));
                }
            }
        }
    }
    if let Some(remote) = &parent_spec.remote {
        if inputs.remote_ca.is_none() {
            problems.push(Problem::new(
                "CaSecretNotFound",
                format!(
                    "spec.parent.remote.caSecretRef: Secret {} with key {} does not exist",
                    remote.ca_secret_ref.name, remote.ca_secret_ref.key
                ),
            ));
        }
        if inputs.remote_token.is_none() {
            problems.push(Problem::new(
                "TokenSecretNotFound",
                format!(
                    "spec.parent.remote.tokenSecretRef: Secret {} with key {} does not exist",
                    remote.token_secret_ref.name, remote.token_secret_ref.key
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(level: &str, zone: &str, parent: Option<&str>) -> ExchangeNode {
        let mut spec =
            serde_json::json!({"level": level, "regionCode": "330000", "networkZone": zone});
        if let Some(p) = parent {
            spec["parent"] = serde_json::json!({"nodeRef": {"name": p}});
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": "n", "namespace": "hub"}, "spec": spec
        }))
        .expect("fixture deserializes")
    }

    #[test]
    fn a_provincial_node_under_a_national_node_of_its_zone_is_valid() {
        let inputs = Inputs {
            parent: Some(node("national", "extranet", None)),
            ..Inputs::default()
        };
        assert!(validate(&node("provincial", "extranet", Some("national")), &inputs).is_empty());
    }

    #[test]
    fn an_intranet_node_never_federates_with_an_extranet_node() {
        let inputs = Inputs {
            parent: Some(node("national", "extranet", None)),
            ..Inputs::default()
        };
        let problems = validate(&node("provincial", "intranet", Some("national")), &inputs);
        assert_eq!(problems[0].reason, "NetworkZoneMismatch");
    }

    #[test]
    fn a_parent_must_be_above_its_child() {
        let inputs = Inputs {
            parent: Some(node("municipal", "extranet", Some("x"))),
            ..Inputs::default()
        };
        let problems = validate(&node("provincial", "extranet", Some("city")), &inputs);
        assert_eq!(problems[0].reason, "InvalidParentLevel");
    }

    #[test]
    fn a_cycle_is_refused_before_anything_else() {
        let inputs = Inputs {
            parent: Some(node("municipal", "intranet", Some("n"))),
            cycle: Some(vec!["hub/n".into(), "hub/m".into(), "hub/n".into()]),
            ..Inputs::default()
        };
        let problems = validate(&node("municipal", "extranet", Some("m")), &inputs);
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].reason, "ParentCycle");
        assert!(problems[0].message.contains("hub/n -> hub/m -> hub/n"));
    }

    #[test]
    fn a_missing_parent_is_reported() {
        let problems = validate(
            &node("provincial", "extranet", Some("gone")),
            &Inputs::default(),
        );
        assert_eq!(problems[0].reason, "ParentNotFound");
    }
}
