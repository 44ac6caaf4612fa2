//! `/metrics` (Prometheus text format) and `/healthz` on their own HTTP port.
//!
//! The sharing gauges are computed from the store at scrape time, so they are never stale and
//! cost nothing between scrapes.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus::{Encoder, GaugeVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::service::{Hub, sharing_stats};

/// The hub's metrics.
#[derive(Clone, Debug)]
pub struct Metrics {
    registry: Registry,
    members: IntGauge,
    catalog: IntGaugeVec,
    audit_records: IntGauge,
    parent_connected: IntGauge,
    last_parent_sync: IntGauge,
    department_resources: IntGaugeVec,
    department_shared: IntGaugeVec,
    department_share_rate: GaugeVec,
    department_served: IntGaugeVec,
    resource_published: IntGaugeVec,
    resource_served: IntGaugeVec,
    resource_consumers: IntGaugeVec,
    resource_requests: IntGaugeVec,
}

fn gauge(registry: &Registry, name: &str, help: &str) -> anyhow::Result<IntGauge> {
    let g = IntGauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauges(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> anyhow::Result<IntGaugeVec> {
    let g = IntGaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

impl Metrics {
    /// Registers every metric, and the process collector (RSS, CPU, open files).
    pub fn new() -> anyhow::Result<Metrics> {
        let registry = Registry::new();
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        let department_share_rate = GaugeVec::new(
            Opts::new(
                "govdc_hub_department_share_rate",
                "Share of a department's resources that are shared (共享率), 0 to 1.",
            ),
            &["department"],
        )?;
        registry.register(Box::new(department_share_rate.clone()))?;
        Ok(Metrics {
            members: gauge(
                &registry,
                "govdc_hub_members",
                "Departments in the node's membership.",
            )?,
            catalog: gauges(
                &registry,
                "govdc_hub_catalog_resources",
                "Resources in the catalog, by origin (local: registered here; forwarded: from child nodes).",
                &["origin"],
            )?,
            audit_records: gauge(
                &registry,
                "govdc_hub_audit_records",
                "Records in the audit log.",
            )?,
            parent_connected: gauge(
                &registry,
                "govdc_hub_parent_connected",
                "1 when the last catalog push to the parent succeeded.",
            )?,
            last_parent_sync: gauge(
                &registry,
                "govdc_hub_last_parent_sync_timestamp_seconds",
                "When the catalog was last pushed to the parent.",
            )?,
            department_resources: gauges(
                &registry,
                "govdc_hub_department_resources",
                "Resources a department registered on this node.",
                &["department"],
            )?,
            department_shared: gauges(
                &registry,
                "govdc_hub_department_shared_resources",
                "Resources a department shares (unconditionally or conditionally).",
                &["department"],
            )?,
            department_share_rate,
            department_served: gauges(
                &registry,
                "govdc_hub_department_records_served",
                "Records of a department's resources delivered to consumers.",
                &["department"],
            )?,
            resource_published: gauges(
                &registry,
                "govdc_hub_resource_records_published",
                "Records published to a resource.",
                &["resource", "provider"],
            )?,
            resource_served: gauges(
                &registry,
                "govdc_hub_resource_records_served",
                "Records of a resource delivered to consumers (at least once: redeliveries count).",
                &["resource", "provider"],
            )?,
            resource_consumers: gauges(
                &registry,
                "govdc_hub_resource_consumers",
                "Consumers with an approved grant on a resource.",
                &["resource", "provider"],
            )?,
            resource_requests: gauges(
                &registry,
                "govdc_hub_resource_requests",
                "Access requests made for a resource, whatever their outcome.",
                &["resource", "provider"],
            )?,
            registry,
        })
    }

    /// The registry, for collectors kept elsewhere (the portal's counters).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    async fn refresh(&self, hub: &Hub) -> Result<(), tonic::Status> {
        let info = hub.node_info().await?;
        let (stats, local) = hub
            .store
            .read(|conn| {
                let local: i64 = conn
                    .query_row(
                        "SELECT count(*) FROM resources WHERE origin = ''",
                        [],
                        |r| r.get(0),
                    )
                    .map_err(|e| tonic::Status::internal(e.to_string()))?;
                Ok((sharing_stats(conn)?, local))
            })
            .await?;
        self.members.set(info.member_count);
        self.catalog.with_label_values(&["local"]).set(local);
        self.catalog
            .with_label_values(&["forwarded"])
            .set(info.catalog_size - local);
        self.audit_records.set(info.audit_records);
        let status = hub.parent.status();
        self.parent_connected.set(i64::from(status.connected));
        self.last_parent_sync.set(
            status
                .last_sync_micros
                .map(|m| m / 1_000_000)
                .unwrap_or_default(),
        );
        // Reset first, so that a department or resource that went away leaves no series behind.
        for v in [
            &self.department_resources,
            &self.department_shared,
            &self.department_served,
        ] {
            v.reset();
        }
        self.department_share_rate.reset();
        for v in [
            &self.resource_published,
            &self.resource_served,
            &self.resource_consumers,
            &self.resource_requests,
        ] {
            v.reset();
        }
        for d in &stats.departments {
            let l = [d.credit_code.as_str()];
            self.department_resources
                .with_label_values(&l)
                .set(d.resources);
            self.department_shared
                .with_label_values(&l)
                .set(d.shared_resources);
            self.department_share_rate
                .with_label_values(&l)
                .set(d.share_rate);
            self.department_served
                .with_label_values(&l)
                .set(d.records_served);
        }
        for r in &stats.resources {
            let l = [r.code.as_str(), r.provider.as_str()];
            self.resource_published
                .with_label_values(&l)
                .set(r.records_published);
            self.resource_served
                .with_label_values(&l)
                .set(r.records_served);
            self.resource_consumers
                .with_label_values(&l)
                .set(r.consumers);
            self.resource_requests.with_label_values(&l).set(r.requests);
        }
        Ok(())
    }
}

#[derive(Clone)]
struct AppState {
    hub: Arc<Hub>,
    metrics: Metrics,
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    if let Err(status) = state.metrics.refresh(&state.hub).await {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("metrics unavailable: {}\n", status.message()).into_bytes(),
        );
    }
    let mut body = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&state.metrics.registry.gather(), &mut body) {
        return (
            StatusCode::INTERNAL_SERVER_ERROR,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("encoding metrics: {e}\n").into_bytes(),
        );
    }
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)],
        body,
    )
}

async fn healthz(State(state): State<AppState>) -> impl IntoResponse {
    if !state.hub.shutdown.is_cancelled() {
        (StatusCode::OK, "SERVING\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "NOT_SERVING\n")
    }
}

/// The HTTP app: `/metrics` and `/healthz` (200 until the node starts shutting down, when the
/// gRPC health service turns NOT_SERVING too).
pub fn router(hub: Arc<Hub>, metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .with_state(AppState { hub, metrics })
}
