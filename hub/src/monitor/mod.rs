//! The sharing-monitor website (全国政务信息共享网站) on `monitorListen`, an internal listener that
//! the ExchangeNode's NetworkPolicy opens to member departments' namespaces and the operator only.
//! It shows this node and every node federated below it (their figures ride up with the catalog
//! each child pushes, see [`crate::federation`]), server-rendered, in Chinese and English, without
//! JavaScript, in the portal website's language type, layout and style sheet
//! ([`crate::portal::web`]).
//!
//! - `GET /`: the national overview, each figure with the time it was taken;
//! - `GET /sharing/departments`, `/sharing/provinces` (and `.csv`): 共享率 per department and per
//!   node (province), sortable, with a daily trend as SVG beside its table ([`trend`]);
//! - `GET /catalogue`: the shared-resource catalogue, searched by the portal's search
//!   ([`crate::portal::search`]) and the reason where a resource is not shared;
//! - `GET /timeliness`: request to decision per provider, overdue requests;
//! - `GET /federation`: the parent link and each child's last sync, error and staleness;
//! - `GET /audit`: the audit chain's verification;
//! - `GET|POST /signin`, `POST /signout`, `GET /mine`: a department signs in with its member
//!   token (a session cookie; CSRF-checked forms) and sees its own requests and grants
//!   ([`session`]).
//!
//! [`figures`] works out what the pages show (pure, over the store's rows), [`pages`] holds the
//! page values the askama templates in `hub/templates/monitor/` render, [`routes`] the handlers.

pub mod figures;
pub mod i18n;
pub mod pages;
pub mod routes;
pub mod session;
pub mod trend;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::service::Hub;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct MonitorHttp {
    /// The node.
    pub hub: Arc<Hub>,
    /// Signed-in departments.
    pub sessions: Arc<session::Sessions>,
    /// The last verification of the audit chain and when it ran (see [`AUDIT_FRESH`]).
    pub audit: Arc<std::sync::Mutex<Option<(std::time::Instant, routes::AuditStatus)>>>,
}

/// How long a verification of the audit chain is shown before the chain is verified again: it
/// recomputes every record's digest, which a page polled by many departments should not do on
/// every request; an alteration shows within this time.
pub const AUDIT_FRESH: Duration = Duration::from_secs(5);

/// The website's routes.
pub fn router(hub: Arc<Hub>) -> Router {
    let state = MonitorHttp {
        hub,
        sessions: Arc::new(session::Sessions::default()),
        audit: Arc::default(),
    };
    Router::new()
        .route("/", get(routes::overview))
        .route("/sharing/departments", get(routes::departments))
        .route("/sharing/departments.csv", get(routes::departments_csv))
        .route("/sharing/provinces", get(routes::provinces))
        .route("/sharing/provinces.csv", get(routes::provinces_csv))
        .route("/catalogue", get(routes::catalogue))
        .route("/timeliness", get(routes::timeliness))
        .route("/federation", get(routes::federation))
        .route("/audit", get(routes::audit))
        .route("/signin", get(routes::signin_form).post(routes::signin))
        .route("/signout", axum::routing::post(routes::signout))
        .route("/mine", get(routes::mine))
        .route("/assets/portal.css", get(routes::portal_css))
        .route("/assets/monitor.css", get(routes::monitor_css))
        .fallback(routes::not_found)
        .with_state(state)
}

/// How often today's figures are written to the trend.
const SNAPSHOT_EVERY: Duration = Duration::from_secs(60);

/// Keeps today's point of the daily trend current until `shutdown` is cancelled.
pub async fn snapshots(hub: Arc<Hub>, shutdown: CancellationToken) {
    loop {
        if let Err(e) = trend::snapshot(&hub).await {
            tracing::warn!(error = e.message(), "writing the sharing trend");
        }
        tokio::select! {
            _ = tokio::time::sleep(SNAPSHOT_EVERY) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
