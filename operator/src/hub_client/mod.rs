//! The operator's client of the exchange hub's gRPC API, used by the ExchangeNode sync, the
//! OpenDataset source and publish steps, BackupPolicy's hub state and the `dataset` commands: a
//! channel with the operator's timeouts and a bearer token on every call ([`channel`]), one
//! wrapper that names the RPC a failure came from ([`call`], [`streaming`]), and [`key`], each
//! node's signing key and the operator's admin token.

pub mod key;

use std::future::Future;
use std::time::Duration;

use futures::{Stream, TryStreamExt};
use govdc_hub_api::auth::BearerToken;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// How long the operator waits for a hub to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// What debug output shows in place of a credential.
pub const REDACTED: &str = "<redacted>";

/// Why a hub could not be reached or did not do what it was asked.
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

/// A channel to the hub at `endpoint` (`call_timeout` per call) that presents `token`: what
/// every generated client is made from (`PortalClient::new(channel)`).
pub async fn channel(
    endpoint: &str,
    call_timeout: Duration,
    token: &str,
) -> Result<Authenticated, HubError> {
    let channel = connect(endpoint, call_timeout).await?;
    Ok(InterceptedService::new(channel, bearer(token)?))
}

/// Runs one call of RPC `rpc` (`Service.Method`): its answer, or an error that names it.
pub async fn call<T>(
    rpc: &'static str,
    request: impl Future<Output = Result<tonic::Response<T>, tonic::Status>>,
) -> Result<T, HubError> {
    request
        .await
        .map(tonic::Response::into_inner)
        .map_err(|status| HubError::Call { call: rpc, status })
}

/// Runs one call of the server-streaming RPC `rpc`: its messages, each failure named as in
/// [`call`].
pub async fn streaming<T>(
    rpc: &'static str,
    request: impl Future<Output = Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>>,
) -> Result<impl Stream<Item = Result<T, HubError>> + Unpin, HubError> {
    Ok(call(rpc, request)
        .await?
        .map_err(move |status| HubError::Call { call: rpc, status }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_failed_call_names_its_rpc_and_the_hubs_message() {
        let refused = call::<()>("Portal.ListDatasets", async {
            Err(tonic::Status::permission_denied("not an admin"))
        })
        .await
        .expect_err("refused");
        assert!(matches!(
            refused,
            HubError::Call {
                call: "Portal.ListDatasets",
                ..
            }
        ));
        assert_eq!(
            refused.to_string(),
            "Portal.ListDatasets failed: not an admin (PermissionDenied)"
        );
    }

    #[tokio::test]
    async fn a_bad_endpoint_is_named() {
        let error = channel("not a uri", Duration::from_secs(1), "t")
            .await
            .expect_err("refused");
        assert_eq!(
            error.to_string(),
            "endpoint \"not a uri\" is not a valid URI"
        );
    }
}
