//! The operator's HTTP endpoints: `/metrics`, `/livez` and `/readyz`.

use std::sync::{Arc, RwLock};

use axum::{Router, extract::State, http::StatusCode, routing::get};

use super::metrics::Metrics;

/// Where the operator is in its life, as /readyz reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Waiting for these CRDs to be installed and Established.
    WaitingForCrds(Vec<String>),
    /// Another replica holds the lease; this one stands by to take over.
    Standby,
    /// Leading; the controllers' watches are still listing.
    Syncing,
    /// Leading, with every watch synced.
    Ready,
    /// Shutting down.
    ShuttingDown,
}

impl Phase {
    /// Whether the replica counts as ready: a synced leader, or a standby able to take over.
    pub fn is_ready(&self) -> bool {
        matches!(self, Phase::Ready | Phase::Standby)
    }

    fn describe(&self) -> String {
        match self {
            Phase::WaitingForCrds(missing) => {
                format!(
                    "waiting for CRDs to be installed and Established: {}",
                    missing.join(", ")
                )
            }
            Phase::Standby => "standby: another replica holds the leader lease".to_owned(),
            Phase::Syncing => "leader: waiting for the controllers' watches to sync".to_owned(),
            Phase::Ready => "ready: leader with every watch synced".to_owned(),
            Phase::ShuttingDown => "shutting down".to_owned(),
        }
    }
}

/// The operator's phase, shared between the runtime that sets it and /readyz that reads it.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<RwLock<Phase>>);

impl Readiness {
    /// Starts in the given phase.
    pub fn new(phase: Phase) -> Readiness {
        Readiness(Arc::new(RwLock::new(phase)))
    }

    /// Moves to a new phase.
    pub fn set(&self, phase: Phase) {
        tracing::info!(phase = %phase.describe(), "operator phase");
        match self.0.write() {
            Ok(mut guard) => *guard = phase,
            Err(poisoned) => *poisoned.into_inner() = phase,
        }
    }

    /// The current phase.
    pub fn get(&self) -> Phase {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Metrics,
    readiness: Readiness,
}

/// The router serving the three endpoints.
pub fn router(metrics: Metrics, readiness: Readiness) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/livez", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz_handler))
        .with_state(AppState { metrics, readiness })
}

async fn metrics_handler(
    State(state): State<AppState>,
) -> ([(&'static str, &'static str); 1], String) {
    (
        [("content-type", "text/plain; version=0.0.4; charset=utf-8")],
        state.metrics.render(),
    )
}

async fn readyz_handler(State(state): State<AppState>) -> (StatusCode, String) {
    let phase = state.readiness.get();
    let code = if phase.is_ready() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, format!("{}\n", phase.describe()))
}
