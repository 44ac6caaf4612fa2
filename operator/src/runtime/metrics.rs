//! Prometheus metrics of the operator, served on /metrics.

use prometheus::{
    HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

/// The operator's metrics. Every series carries the controller (`department_cloud`, ...) it
/// belongs to.
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by controller.
    pub reconciles: IntCounterVec,
    /// Reconciles that failed, by controller and error reason.
    pub reconcile_errors: IntCounterVec,
    /// Time one reconcile took, by controller.
    pub reconcile_duration: HistogramVec,
    /// Objects whose latest generation has not been reconciled yet, by controller: the work
    /// still queued.
    pub queue_depth: IntGaugeVec,
    /// Objects watched, by controller.
    pub watched_objects: IntGaugeVec,
    /// 1 while this replica holds the leader lease.
    pub leader: IntGauge,
}

impl Metrics {
    /// Creates and registers every metric, with the process collector (RSS, CPU, file
    /// descriptors) alongside.
    pub fn new() -> prometheus::Result<Metrics> {
        let registry = Registry::new();
        let reconciles = IntCounterVec::new(
            Opts::new("govdc_reconcile_total", "Reconciles run, by controller."),
            &["controller"],
        )?;
        let reconcile_errors = IntCounterVec::new(
            Opts::new(
                "govdc_reconcile_errors_total",
                "Reconciles that failed, by controller and error reason.",
            ),
            &["controller", "reason"],
        )?;
        let reconcile_duration = HistogramVec::new(
            HistogramOpts::new(
                "govdc_reconcile_duration_seconds",
                "Time one reconcile took, by controller.",
            )
            .buckets(vec![
                0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
            ]),
            &["controller"],
        )?;
        let queue_depth = IntGaugeVec::new(
            Opts::new(
                "govdc_queue_depth",
                "Objects whose latest generation has not been reconciled yet, by controller.",
            ),
            &["controller"],
        )?;
        let watched_objects = IntGaugeVec::new(
            Opts::new(
                "govdc_watched_objects",
                "Objects in the controller's watch cache, by controller.",
            ),
            &["controller"],
        )?;
        let leader = IntGauge::new(
            "govdc_leader",
            "1 while this replica holds the leader lease.",
        )?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(reconcile_errors.clone()))?;
        registry.register(Box::new(reconcile_duration.clone()))?;
        registry.register(Box::new(queue_depth.clone()))?;
        registry.register(Box::new(watched_objects.clone()))?;
        registry.register(Box::new(leader.clone()))?;
        registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        Ok(Metrics {
            registry,
            reconciles,
            reconcile_errors,
            reconcile_duration,
            queue_depth,
            watched_objects,
            leader,
        })
    }

    /// Registers a controller's own collector (the BackupPolicy gauges, say) beside these.
    pub fn register(
        &self,
        collector: Box<dyn prometheus::core::Collector>,
    ) -> prometheus::Result<()> {
        self.registry.register(collector)
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut text = String::new();
        if let Err(error) =
            prometheus::TextEncoder::new().encode_utf8(&self.registry.gather(), &mut text)
        {
            tracing::warn!(%error, "encoding metrics failed");
        }
        text
    }
}
