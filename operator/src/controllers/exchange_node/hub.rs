//! The sync step: the operator talks to the running hub over gRPC with its admin token, points
//! it at its parent and keeps its membership in line with the departments allowed to join.

use std::collections::BTreeMap;
use std::time::Duration;

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{
    GetNodeInfoRequest, JoinRequest, LeaveRequest, ListMembersRequest, NodeInfo, ParentConnection,
    SetParentRequest,
};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

use super::build::HubPlan;

/// How long the operator waits for a hub to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one call to a hub may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Why the hub could not be synced.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// The node is scaled to zero: no hub runs.
    #[error("the node is stopped (replicas: 0)")]
    Stopped,
    /// The endpoint is not a valid URI.
    #[error("endpoint {0:?} is not a valid URI")]
    Endpoint(String),
    /// The hub did not accept a connection.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The hub's endpoint.
        endpoint: String,
        /// The transport error.
        #[source]
        source: tonic::transport::Error,
    },
    /// The hub did not answer and its pod says why (not scheduled, an image no node has, a
    /// container that keeps crashing).
    #[error("{source}; its pod {pod} is not running: {state}")]
    PodNotRunning {
        /// The hub's pod.
        pod: String,
        /// What the pod's status says.
        state: String,
        /// Why the hub did not answer.
        #[source]
        source: Box<HubError>,
    },
    /// A call was refused or failed.
    #[error("{call} failed: {} ({:?})", .status.message(), .status.code())]
    Call {
        /// The RPC.
        call: &'static str,
        /// The hub's answer.
        status: tonic::Status,
    },
}

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

/// A channel that presents a bearer token on every call.
pub type Authenticated = InterceptedService<Channel, BearerToken>;

/// A channel to the hub at `endpoint`, with the operator's timeouts (`call_timeout` per call).
pub async fn connect(endpoint: &str, call_timeout: Duration) -> Result<Channel, HubError> {
    Endpoint::from_shared(endpoint.to_owned())
        .map_err(|_| HubError::Endpoint(endpoint.to_owned()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(call_timeout)
        .connect()
        .await
        .map_err(|source| HubError::Connect {
            endpoint: endpoint.to_owned(),
            source,
        })
}

/// The interceptor that presents `token`.
pub fn bearer(token: &str) -> Result<BearerToken, HubError> {
    BearerToken::new(token).map_err(|status| HubError::Call {
        call: "authenticate",
        status,
    })
}

/// Brings the running hub in line with `plan`.
pub async fn sync(plan: &HubPlan) -> Result<HubObservation, HubError> {
    let channel = connect(&plan.endpoint, CALL_TIMEOUT).await?;
    let token = bearer(&plan.admin_token)?;
    let mut node: NodeClient<Authenticated> =
        NodeClient::with_interceptor(channel.clone(), token.clone());
    let mut membership: MembershipClient<Authenticated> =
        MembershipClient::with_interceptor(channel, token);

    let call = |call: &'static str| move |status| HubError::Call { call, status };
    let info = node
        .get_node_info(GetNodeInfoRequest {})
        .await
        .map_err(call("Node.GetNodeInfo"))?
        .into_inner();

    let parent_set = match &plan.parent {
        Some(parent) if needs_parent(&info, &parent.endpoint) => {
            node.set_parent(SetParentRequest {
                endpoint: parent.endpoint.clone(),
                token: parent.token.clone(),
                ca_pem: parent.ca_pem.clone(),
            })
            .await
            .map_err(call("Node.SetParent"))?;
            true
        }
        _ => false,
    };

    let current: BTreeMap<String, String> = membership
        .list_members(ListMembersRequest {})
        .await
        .map_err(call("Membership.ListMembers"))?
        .into_inner()
        .members
        .into_iter()
        .map(|m| (m.credit_code, m.name))
        .collect();
    let (join, leave) = membership_changes(&current, &plan.members);
    for (credit_code, name) in &join {
        membership
            .join(JoinRequest {
                credit_code: credit_code.clone(),
                name: name.clone(),
            })
            .await
            .map_err(call("Membership.Join"))?;
    }
    for credit_code in &leave {
        membership
            .leave(LeaveRequest {
                credit_code: credit_code.clone(),
            })
            .await
            .map_err(call("Membership.Leave"))?;
    }

    let info = if parent_set || !join.is_empty() || !leave.is_empty() {
        node.get_node_info(GetNodeInfoRequest {})
            .await
            .map_err(call("Node.GetNodeInfo"))?
            .into_inner()
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
