//! The report step of ExchangeNodes: status from what the API server accepted and what the hub
//! answered, conditions, and events for what changed on the hub.

use govdc_crds::{ExchangeNode, ExchangeNodeStatus};
use govdc_hub_api::v1::ParentConnection;
use jiff::Timestamp;
use kube::Resource;
use kube::runtime::events::EventType;

use super::build::{self, HubPlan};
use super::read::Inputs;
use super::sync::HubObservation;
use crate::controllers::Context;
use crate::error::Result;
use crate::hub_client::HubError;
use crate::pipeline::apply::Applied;
use crate::pipeline::conditions::{self, DEGRADED, Observed, PROGRESSING, READY};
use crate::pipeline::events;
use crate::pipeline::report::{Problem, problem_conditions, report, resource_status};

resource_status!(ExchangeNodeStatus);

/// `ParentConnected`: the hub forwards its catalog to its parent.
pub const PARENT_CONNECTED: &str = "ParentConnected";

/// A heartbeat younger than this is not rewritten, so a healthy node costs a status write only
/// now and then.
const HEARTBEAT_REFRESH_SECONDS: i64 = 60;

/// What a pass came to.
pub enum Outcome<'a> {
    /// The spec cannot be carried out; nothing was applied.
    Invalid(&'a [Problem]),
    /// The objects were applied and the hub was (or could not be) synced.
    Deployed {
        /// What apply did.
        applied: &'a Applied,
        /// What prune deleted.
        pruned: &'a [String],
        /// The plan for the hub.
        plan: &'a HubPlan,
        /// What the hub answered.
        hub: std::result::Result<&'a HubObservation, &'a HubError>,
    },
}

/// The conditions for an outcome.
pub fn conditions_for(node: &ExchangeNode, outcome: &Outcome<'_>) -> Vec<Observed> {
    let (plan, hub) = match outcome {
        Outcome::Invalid(problems) => return problem_conditions(problems).unwrap_or_default(),
        Outcome::Deployed { plan, hub, .. } => (plan, hub),
    };
    let mut observed = Vec::new();
    observed.push(if plan.not_joined.is_empty() {
        Observed::no(
            DEGRADED,
            "AsExpected",
            "every allowed department is a member",
        )
    } else {
        Observed::yes(DEGRADED, "DepartmentsNotJoined", plan.not_joined.join("; "))
    });
    if node.spec.replicas == 0 {
        let message = "the node is stopped (replicas: 0); its data is kept on its volume";
        observed.push(Observed::no(READY, "ScaledToZero", message));
        observed.push(Observed::no(PROGRESSING, "ScaledToZero", message));
        observed.push(Observed {
            type_: PARENT_CONNECTED,
            status: "Unknown",
            reason: "ScaledToZero".into(),
            message: message.into(),
        });
        return observed;
    }
    let info = match hub {
        Err(error) => {
            let message = format!("the hub at {} does not answer: {error}", plan.endpoint);
            observed.push(Observed::no(READY, "HubUnreachable", message.clone()));
            observed.push(Observed::yes(PROGRESSING, "WaitingForHub", message));
            observed.push(Observed {
                type_: PARENT_CONNECTED,
                status: "Unknown",
                reason: "HubUnreachable".into(),
                message: "the hub does not answer".into(),
            });
            return observed;
        }
        Ok(observation) => &observation.info,
    };
    let parent = if node.spec.parent.is_none() {
        Observed::yes(
            PARENT_CONNECTED,
            "NationalNode",
            "a national node has no parent",
        )
    } else if let Some(waiting) = &plan.parent_waiting {
        Observed::no(PARENT_CONNECTED, "ParentNotReady", waiting.clone())
    } else if info.parent_connection() == ParentConnection::Connected {
        Observed::yes(
            PARENT_CONNECTED,
            "Connected",
            format!("forwarding the catalog to {}", info.parent_endpoint),
        )
    } else {
        let detail = if info.parent_error.is_empty() {
            "no catalog sync has succeeded yet".to_owned()
        } else {
            info.parent_error.clone()
        };
        Observed::no(
            PARENT_CONNECTED,
            "Disconnected",
            format!("{}: {detail}", info.parent_endpoint),
        )
    };
    if parent.status == "True" {
        observed.push(Observed::yes(
            READY,
            "HubServing",
            format!(
                "the hub serves {} members and {} catalog resources",
                info.member_count, info.catalog_size
            ),
        ));
        observed.push(Observed::no(
            PROGRESSING,
            "Reconciled",
            "the hub is in line with the spec",
        ));
    } else {
        observed.push(Observed::no(
            READY,
            "ParentDisconnected",
            parent.message.clone(),
        ));
        observed.push(Observed::yes(
            PROGRESSING,
            "WaitingForParent",
            parent.message.clone(),
        ));
    }
    observed.push(parent);
    observed
}

/// The status fields besides conditions.
fn next_status(
    node: &ExchangeNode,
    inputs: &Inputs,
    outcome: &Outcome<'_>,
    now: Timestamp,
) -> ExchangeNodeStatus {
    let mut next = node.status.clone().unwrap_or_default();
    let Outcome::Deployed { hub, .. } = outcome else {
        return next;
    };
    let namespace = node.meta().namespace.clone().unwrap_or_default();
    let name = node.meta().name.clone().unwrap_or_default();
    next.endpoint = Some(build::service_endpoint(&namespace, &name));
    next.ready_replicas = inputs.ready_replicas();
    if let Ok(observation) = hub {
        let info = &observation.info;
        next.parent_connection = Some(
            match info.parent_connection() {
                ParentConnection::Connected => "Connected",
                ParentConnection::Disconnected => "Disconnected",
                _ => "None",
            }
            .to_owned(),
        );
        next.catalog_size = Some(info.catalog_size);
        next.member_count = i32::try_from(info.member_count).ok();
        let stale = next
            .last_heartbeat
            .as_ref()
            .is_none_or(|t| now.as_second() - t.0.as_second() >= HEARTBEAT_REFRESH_SECONDS);
        if stale {
            next.last_heartbeat = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now));
        }
        // The head moves with every audited write: it is refreshed with the heartbeat, so a
        // busy node costs no more status writes than an idle one.
        if let Some(head) = &info.audit_head
            && (stale || next.audit_head.is_none())
        {
            next.audit_head = Some(govdc_crds::exchange_node::AuditHeadStatus {
                seq: head.seq,
                hash: head.hash.clone(),
                observed_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(now),
            });
        }
    }
    next
}

/// Writes the status if it changed, and events for what changed on the hub.
pub async fn write(
    ctx: &Context,
    node: &ExchangeNode,
    inputs: &Inputs,
    outcome: Outcome<'_>,
) -> Result<()> {
    let next = next_status(node, inputs, &outcome, conditions::now().0);
    let problems = match &outcome {
        Outcome::Invalid(problems) => *problems,
        Outcome::Deployed { .. } => &[],
    };
    report(
        ctx,
        node,
        node.status.as_ref(),
        next,
        &conditions_for(node, &outcome),
        problems,
    )
    .await?;
    if let Outcome::Deployed {
        applied,
        pruned,
        hub: Ok(observation),
        ..
    } = &outcome
    {
        let reference = node.object_ref(&());
        let mut notes = Vec::new();
        if !applied.written.is_empty() {
            notes.push(("Applied", format!("wrote {}", applied.written.join(", "))));
        }
        if !pruned.is_empty() {
            notes.push(("Pruned", format!("deleted {}", pruned.join(", "))));
        }
        if observation.parent_set {
            notes.push((
                "ParentSet",
                format!(
                    "pointed the hub at its parent {}",
                    observation.info.parent_endpoint
                ),
            ));
        }
        if !observation.joined.is_empty() {
            notes.push(("MembersJoined", observation.joined.join(", ")));
        }
        if !observation.left.is_empty() {
            notes.push(("MembersLeft", observation.left.join(", ")));
        }
        for (reason, note) in notes {
            events::publish(
                &ctx.recorder,
                &reference,
                EventType::Normal,
                reason,
                "Reconcile",
                note,
            )
            .await;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use govdc_hub_api::v1::NodeInfo;
    use std::collections::BTreeMap;

    fn node(parent: bool) -> ExchangeNode {
        let mut spec = serde_json::json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet"});
        if parent {
            spec["parent"] = serde_json::json!({"nodeRef": {"name": "national"}});
        } else {
            spec["level"] = "national".into();
        }
        serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": "n", "namespace": "hub"}, "spec": spec
        }))
        .expect("fixture")
    }

    fn plan() -> HubPlan {
        HubPlan {
            node: "n".into(),
            endpoint: "http://127.0.0.1:1".into(),
            admin_token: String::new(),
            parent: None,
            parent_waiting: None,
            members: BTreeMap::new(),
            not_joined: vec![],
        }
    }

    fn find<'a>(observed: &'a [Observed], type_: &str) -> &'a Observed {
        observed
            .iter()
            .find(|c| c.type_ == type_)
            .expect("condition present")
    }

    fn observation(connection: ParentConnection) -> HubObservation {
        let mut info = NodeInfo {
            parent_endpoint: "http://parent".into(),
            parent_error: "connection refused".into(),
            ..NodeInfo::default()
        };
        info.set_parent_connection(connection);
        HubObservation {
            info,
            joined: vec![],
            left: vec![],
            parent_set: false,
        }
    }

    #[test]
    fn the_audit_head_is_recorded_and_refreshed_with_the_heartbeat() {
        let applied = Applied::default();
        let mut observed_hub = observation(ParentConnection::None);
        observed_hub.info.audit_head = Some(govdc_hub_api::v1::AuditHead {
            seq: 7,
            hash: "a7".into(),
        });
        let plan = plan();
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Ok(&observed_hub),
        };
        let start = Timestamp::from_second(1_800_000_000).expect("a time");
        let mut national = node(false);
        let first = next_status(&national, &Inputs::default(), &outcome, start);
        let head = first
            .audit_head
            .clone()
            .expect("the head is recorded at once");
        assert_eq!((head.seq, head.hash.as_str()), (7, "a7"));

        // A newer head while the heartbeat is fresh costs no status write...
        observed_hub.info.audit_head = Some(govdc_hub_api::v1::AuditHead {
            seq: 9,
            hash: "a9".into(),
        });
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Ok(&observed_hub),
        };
        national.status = Some(first);
        let soon = start + jiff::SignedDuration::from_secs(10);
        let second = next_status(&national, &Inputs::default(), &outcome, soon);
        assert_eq!(second.audit_head.as_ref().map(|h| h.seq), Some(7));
        // ...and is recorded with the next heartbeat.
        national.status = Some(second);
        let later = start + jiff::SignedDuration::from_secs(61);
        let third = next_status(&national, &Inputs::default(), &outcome, later);
        assert_eq!(third.audit_head.as_ref().map(|h| h.seq), Some(9));
    }

    #[test]
    fn a_national_node_that_answers_is_ready() {
        let applied = Applied::default();
        let observed_hub = observation(ParentConnection::None);
        let plan = plan();
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Ok(&observed_hub),
        };
        let observed = conditions_for(&node(false), &outcome);
        assert_eq!(find(&observed, READY).status, "True");
        assert_eq!(find(&observed, PARENT_CONNECTED).reason, "NationalNode");
        assert_eq!(find(&observed, DEGRADED).status, "False");
    }

    #[test]
    fn a_child_without_its_parent_is_not_ready_and_says_why() {
        let applied = Applied::default();
        let observed_hub = observation(ParentConnection::Disconnected);
        let plan = plan();
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Ok(&observed_hub),
        };
        let observed = conditions_for(&node(true), &outcome);
        let ready = find(&observed, READY);
        assert_eq!(
            (ready.status, ready.reason.as_str()),
            ("False", "ParentDisconnected")
        );
        assert!(ready.message.contains("connection refused"));
    }

    #[test]
    fn a_stopped_node_says_so_rather_than_unreachable() {
        let applied = Applied::default();
        let plan = plan();
        let error = HubError::Endpoint("bad".into());
        let mut stopped = node(true);
        stopped.spec.replicas = 0;
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Err(&error),
        };
        let observed = conditions_for(&stopped, &outcome);
        assert_eq!(find(&observed, READY).reason, "ScaledToZero");
    }

    #[test]
    fn an_unreachable_hub_is_not_ready_and_departments_left_out_degrade() {
        let applied = Applied::default();
        let mut plan = plan();
        plan.not_joined
            .push("DepartmentCloud x does not exist".into());
        let error = HubError::Endpoint("bad".into());
        let outcome = Outcome::Deployed {
            applied: &applied,
            pruned: &[],
            plan: &plan,
            hub: Err(&error),
        };
        let observed = conditions_for(&node(true), &outcome);
        assert_eq!(find(&observed, READY).reason, "HubUnreachable");
        assert_eq!(find(&observed, PARENT_CONNECTED).status, "Unknown");
        let degraded = find(&observed, DEGRADED);
        assert_eq!(
            (degraded.status, degraded.reason.as_str()),
            ("True", "DepartmentsNotJoined")
        );
    }
}
