//! A fence on the operator's writes: they go out only while this replica's hold on the leader
//! Lease is fresh. A leader frozen past its lease (SIGSTOP, a paused VM, a stalled node) resumes
//! believing it leads until its lease manager next looks; whatever its controllers write in that
//! moment would race the replica that took over. So every mutating request through the
//! controllers' clients is refused unless this replica was seen renewing the Lease so recently
//! that no standby can have taken it over yet.
//!
//! The fence is kept by a watch on the Lease itself: each renewal by this identity, as the API
//! server reports it, keeps the fence open until a margin before the lease could expire. Time is
//! measured on the monotonic clock, which runs on while the process is stopped.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::coordination::v1::Lease;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};

/// Until when this replica may write, as milliseconds since the fence was made (0: not at all).
#[derive(Debug)]
pub struct Fence {
    epoch: Instant,
    open_until_ms: AtomicU64,
}

impl Fence {
    /// A closed fence.
    pub fn new() -> Arc<Fence> {
        Arc::new(Fence {
            epoch: Instant::now(),
            open_until_ms: AtomicU64::new(0),
        })
    }

    /// A fence that is always open: for an operator run without leader election.
    pub fn always_open() -> Arc<Fence> {
        let fence = Fence::new();
        fence.open_until_ms.store(u64::MAX, Ordering::SeqCst);
        fence
    }

    /// Keeps the fence open until `until`.
    pub fn open_until(&self, until: Instant) {
        let ms = u64::try_from(until.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        self.open_until_ms.store(ms.max(1), Ordering::SeqCst);
    }

    /// Closes the fence at once (the lease went to another replica).
    pub fn close(&self) {
        self.open_until_ms.store(0, Ordering::SeqCst);
    }

    /// Whether a write may go out now.
    pub fn is_open(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.open_until_ms.load(Ordering::SeqCst)
    }
}

/// The fence of this process: the leader election's once the operator runs with it, else always
/// open (the command-line tools, an operator without leader election). Every client the
/// controllers make, for the DR targets too, goes behind it.
static PROCESS_FENCE: std::sync::OnceLock<Arc<Fence>> = std::sync::OnceLock::new();

/// Makes `fence` the process's fence; the first call wins.
pub fn install(fence: Arc<Fence>) -> Arc<Fence> {
    PROCESS_FENCE.get_or_init(|| fence).clone()
}

/// The process's fence (see [`install`]).
pub fn current() -> Arc<Fence> {
    PROCESS_FENCE.get_or_init(Fence::always_open).clone()
}

/// A client for `config` whose writes go behind the process's fence.
pub fn client(config: kube::Config) -> Result<Client, kube::Error> {
    Ok(kube::client::ClientBuilder::try_from(config)?
        .with_layer(&FenceLayer(current()))
        .build())
}

/// How long after an observed renewal this replica may still write: the lease's duration less a
/// margin of half the renewal grace (the time from the renewal to this replica seeing it, and
/// more). A renewal comes `grace` before expiry, so in steady state the fence never closes.
pub fn open_for(duration: Duration, grace: Duration) -> Duration {
    duration.saturating_sub(grace / 2)
}

/// Watches the Lease `namespace/name` and keeps `fence` open for [`open_for`] after each
/// renewal by `identity`; closes it when another replica holds it. Runs until dropped.
pub async fn keep(
    client: Client,
    namespace: String,
    name: String,
    identity: String,
    open: Duration,
    fence: Arc<Fence>,
) {
    let leases: Api<Lease> = Api::namespaced(client, &namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut changes = watcher(leases, config)
        .default_backoff()
        .applied_objects()
        .boxed();
    while let Some(change) = changes.next().await {
        match change {
            Ok(lease) => {
                let spec = lease.spec.unwrap_or_default();
                if spec.holder_identity.as_deref() == Some(identity.as_str()) {
                    fence.open_until(Instant::now() + open);
                } else {
                    fence.close();
                }
            }
            Err(error) => tracing::debug!(%error, "watching the leader lease; resuming"),
        }
    }
}

/// The error of a write refused by the fence.
#[derive(Debug, thiserror::Error)]
#[error(
    "not written: this replica's leader lease was not seen renewed in time (it was stopped or cut off, and another replica may lead)"
)]
pub struct NotLeader;

/// A tower layer refusing mutating requests while the fence is closed.
#[derive(Clone)]
pub struct FenceLayer(pub Arc<Fence>);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = Fenced<S>;

    fn layer(&self, inner: S) -> Fenced<S> {
        Fenced {
            inner,
            fence: self.0.clone(),
        }
    }
}

/// A client service behind the fence.
#[derive(Clone)]
pub struct Fenced<S> {
    inner: S,
    fence: Arc<Fence>,
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl<S, B> tower::Service<http::Request<B>> for Fenced<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<BoxError>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let reads = matches!(
            *request.method(),
            http::Method::GET | http::Method::HEAD | http::Method::OPTIONS
        );
        if !reads && !self.fence.is_open() {
            tracing::warn!(method = %request.method(), path = %request.uri().path(), "a write refused: the leader lease is not fresh");
            return Box::pin(async { Err(Box::new(NotLeader) as BoxError) });
        }
        let response = self.inner.call(request);
        Box::pin(async move { response.await.map_err(Into::into) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fence_opens_until_its_deadline_and_closes_at_once() {
        let fence = Fence::new();
        assert!(!fence.is_open(), "closed until a renewal is seen");
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(fence.is_open());
        fence.close();
        assert!(!fence.is_open());
        fence.open_until(Instant::now());
        std::thread::sleep(Duration::from_millis(5));
        assert!(!fence.is_open(), "a deadline passed is closed");
        assert!(Fence::always_open().is_open());
    }

    #[test]
    fn a_renewal_keeps_the_fence_open_past_the_next_renewal_but_not_past_expiry() {
        // kube-lease-manager renews `grace` before expiry.
        let (duration, grace) = (Duration::from_secs(15), Duration::from_secs(5));
        let open = open_for(duration, grace);
        assert!(open > duration - grace, "closed between two renewals");
        assert!(open < duration, "open while a standby may take over");
    }
}
