//! Whether the API server streams initial lists (`sendInitialEvents`, the WatchList feature).
//!
//! Streaming lists keep the operator's memory low after a restart (see the DepartmentCloud
//! caches), but WatchList is off by default on several versions the chart supports (1.30, 1.31,
//! 1.33), and there a watch asking for it is refused with 422 Invalid: a watcher configured for it
//! would retry that refusal forever and never list. So the server is asked once, at start-up,
//! with a watch of one namespace; anything but a stream that answers means paged lists.

use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use kube::Client;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher::InitialListStrategy;

/// How long the probe waits for the server's first answer.
const PROBE_TIMEOUT: Duration = Duration::from_secs(10);

/// The initial-list strategy this API server supports: streaming when a watch with
/// `sendInitialEvents` answers with an event, paged lists otherwise.
pub async fn initial_list_strategy(client: &Client) -> InitialListStrategy {
    match tokio::time::timeout(PROBE_TIMEOUT, streams_initial_events(client)).await {
        Ok(Ok(())) => {
            tracing::info!("the API server streams initial lists (WatchList); watches use them");
            InitialListStrategy::StreamingList
        }
        Ok(Err(reason)) => {
            tracing::info!(%reason, "the API server does not stream initial lists; watches list in pages");
            InitialListStrategy::ListWatch
        }
        Err(_) => {
            tracing::warn!(
                timeout = ?PROBE_TIMEOUT,
                "the API server did not answer a streaming-list watch in time; watches list in pages"
            );
            InitialListStrategy::ListWatch
        }
    }
}

/// Why a streaming-list watch did not stream.
#[derive(Debug, thiserror::Error)]
enum NotStreamed {
    /// The request was refused (422 Invalid where WatchList is off).
    #[error("{}", crate::error::api_message(.0))]
    Refused(#[source] kube::Error),
    /// The watch answered with an error event.
    #[error("{0}")]
    ErrorEvent(String),
    /// The first event was neither an object nor a bookmark.
    #[error("unexpected first event {0}")]
    UnexpectedEvent(&'static str),
    /// The watch ended without an event.
    #[error("the watch ended without an event")]
    Ended,
}

/// Ok when a streaming-list watch of `kube-system` yields an object or a bookmark.
async fn streams_initial_events(client: &Client) -> Result<(), NotStreamed> {
    let params = WatchParams::default()
        .initial_events()
        .fields("metadata.name=kube-system")
        .timeout(5);
    let mut stream = Api::<Namespace>::all(client.clone())
        .watch(&params, "")
        .await
        .map_err(NotStreamed::Refused)?
        .boxed();
    match stream.next().await {
        Some(Ok(WatchEvent::Added(_) | WatchEvent::Bookmark(_))) => Ok(()),
        Some(Ok(WatchEvent::Error(status))) => Err(NotStreamed::ErrorEvent(status.message)),
        Some(Ok(WatchEvent::Modified(_))) => Err(NotStreamed::UnexpectedEvent("MODIFIED")),
        Some(Ok(WatchEvent::Deleted(_))) => Err(NotStreamed::UnexpectedEvent("DELETED")),
        Some(Err(e)) => Err(NotStreamed::Refused(e)),
        None => Err(NotStreamed::Ended),
    }
}
