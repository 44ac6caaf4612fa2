//! The sync step: the operator talks to the running hub over gRPC with its admin token, points
//! it at its parent and keeps its membership in line with the departments allowed to join.

use std::collections::BTreeMap;
use std::time::Duration;

use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{
    GetNodeInfoRequest, JoinRequest, LeaveRequest, ListMembersRequest, NodeInfo, ParentConnection,
    SetParentRequest,
};

use super::build::HubPlan;
use crate::hub_client::{self, HubError, call};

/// How long one call to a hub may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the hub said after the sync.
#[derive(Clone, Debug)]
pub struct HubObservation {
    /// The node's own account of itself.
    pub info: NodeInfo,
    /// Departments that joined in this pass.
    pub joined: Vec<String>,
    /// Departments that left in this pass.
    pub left: Vec<String>,
    /// Whether the parent was (re)set in this pass.
    pub parent_set: bool,
}

/// Brings the running hub in line with `plan`.
pub async fn sync(plan: &HubPlan) -> Result<HubObservation, HubError> {
    let channel = hub_client::channel(&plan.endpoint, CALL_TIMEOUT, &plan.admin_token).await?;
    let mut node = NodeClient::new(channel.clone());
    let mut membership = MembershipClient::new(channel);

    let info = call(
        "Node.GetNodeInfo",
        node.get_node_info(GetNodeInfoRequest {}),
    )
    .await?;

    let parent_set = match &plan.parent {
        Some(parent) if needs_parent(&info, &parent.endpoint) => {
            let request = SetParentRequest {
                endpoint: parent.endpoint.clone(),
                token: parent.token.clone(),
                ca_pem: parent.ca_pem.clone(),
            };
            call("Node.SetParent", node.set_parent(request)).await?;
            true
        }
        _ => false,
    };

    let listed = call(
        "Membership.ListMembers",
        membership.list_members(ListMembersRequest {}),
    )
    .await?;
    let current: BTreeMap<String, String> = listed
        .members
        .into_iter()
        .map(|m| (m.credit_code, m.name))
        .collect();
    let (join, leave) = membership_changes(&current, &plan.members);
    for (credit_code, name) in &join {
        let request = JoinRequest {
            credit_code: credit_code.clone(),
            name: name.clone(),
        };
        call("Membership.Join", membership.join(request)).await?;
    }
    for credit_code in &leave {
        let request = LeaveRequest {
            credit_code: credit_code.clone(),
        };
        call("Membership.Leave", membership.leave(request)).await?;
    }

    let info = if parent_set || !join.is_empty() || !leave.is_empty() {
        call(
            "Node.GetNodeInfo",
            node.get_node_info(GetNodeInfoRequest {}),
        )
        .await?
    } else {
        info
    };
    Ok(HubObservation {
        info,
        joined: join.into_iter().map(|(code, _)| code).collect(),
        left: leave,
        parent_set,
    })
}

/// Whether the hub must be told its parent: it has another one, or it lost the connection (the
/// parent may have a new key, and a fresh token costs nothing).
fn needs_parent(info: &NodeInfo, endpoint: &str) -> bool {
    info.parent_endpoint != endpoint || info.parent_connection() == ParentConnection::Disconnected
}

/// The members to add (or rename) and the ones to remove.
fn membership_changes(
    current: &BTreeMap<String, String>,
    desired: &BTreeMap<String, String>,
) -> (Vec<(String, String)>, Vec<String>) {
    let join = desired
        .iter()
        .filter(|(code, name)| current.get(*code) != Some(name))
        .map(|(code, name)| (code.clone(), name.clone()))
        .collect();
    let leave = current
        .keys()
        .filter(|code| !desired.contains_key(*code))
        .cloned()
        .collect();
    (join, leave)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn membership_changes_add_rename_and_remove() {
        let current = BTreeMap::from([
            ("A".to_owned(), "old name".to_owned()),
            ("B".to_owned(), "b".to_owned()),
            ("C".to_owned(), "c".to_owned()),
        ]);
        let desired = BTreeMap::from([
            ("A".to_owned(), "new name".to_owned()),
            ("B".to_owned(), "b".to_owned()),
            ("D".to_owned(), "d".to_owned()),
        ]);
        let (join, leave) = membership_changes(&current, &desired);
        assert_eq!(
            join,
            vec![("A".into(), "new name".into()), ("D".into(), "d".into())]
        );
        assert_eq!(leave, vec!["C".to_owned()]);
        assert_eq!(
            membership_changes(&desired, &desired),
            (vec![], vec![]),
            "in line: nothing to do"
        );
    }

    #[test]
    fn the_parent_is_set_when_it_moved_or_the_link_is_down() {
        let mut info = NodeInfo {
            parent_endpoint: "http://a".into(),
            ..NodeInfo::default()
        };
        info.set_parent_connection(ParentConnection::Connected);
        assert!(!needs_parent(&info, "http://a"));
        assert!(needs_parent(&info, "http://b"));
        info.set_parent_connection(ParentConnection::Disconnected);
        assert!(needs_parent(&info, "http://a"));
    }
}
