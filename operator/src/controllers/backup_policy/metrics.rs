//! The BackupPolicy gauges, served on the operator's /metrics beside the controller metrics:
//! the replication lag (the RPO) and the last time the target held everything are what an alert
//! on disaster-recovery readiness watches.

use prometheus::{CounterVec, GaugeVec, HistogramOpts, HistogramVec, IntGaugeVec, Opts};

use crate::runtime::metrics::Metrics;

/// Replication metrics, by policy.
#[derive(Clone)]
pub struct BackupMetrics {
    rpo: GaugeVec,
    last_sync: GaugeVec,
    objects: IntGaugeVec,
    pending_deletions: IntGaugeVec,
    errors: CounterVec,
    lag: HistogramVec,
    hub_state: GaugeVec,
}

impl BackupMetrics {
    /// Creates the metrics and registers them with the operator's registry; a registration that
    /// fails is logged, and the metrics still work unserved.
    pub fn new(metrics: &Metrics) -> BackupMetrics {
        let backup = BackupMetrics::unregistered();
        let collectors: [Box<dyn prometheus::core::Collector>; 7] = [
            Box::new(backup.rpo.clone()),
            Box::new(backup.last_sync.clone()),
            Box::new(backup.objects.clone()),
            Box::new(backup.pending_deletions.clone()),
            Box::new(backup.errors.clone()),
            Box::new(backup.lag.clone()),
            Box::new(backup.hub_state.clone()),
        ];
        for collector in collectors {
            if let Err(error) = metrics.register(collector) {
                tracing::error!(%error, "registering a backup metric failed; it is not served");
            }
        }
        backup
    }

    /// The metrics without a registry, for commands and tests.
    pub fn unregistered() -> BackupMetrics {
        BackupMetrics::build().expect("the backup metrics' names and labels are valid constants")
    }

    fn build() -> prometheus::Result<BackupMetrics> {
        Ok(BackupMetrics {
            rpo: GaugeVec::new(
                Opts::new(
                    "govdc_backup_rpo_seconds",
                    "Replication lag of a BackupPolicy: how much would be lost if the primary failed now.",
                ),
                &["policy"],
            )?,
            last_sync: GaugeVec::new(
                Opts::new(
                    "govdc_backup_last_successful_sync_timestamp_seconds",
                    "When the target last held every protected object (Unix time).",
                ),
                &["policy"],
            )?,
            objects: IntGaugeVec::new(
                Opts::new(
                    "govdc_backup_objects_replicated",
                    "Copies of protected objects on the target.",
                ),
                &["policy"],
            )?,
            pending_deletions: IntGaugeVec::new(
                Opts::new(
                    "govdc_backup_pending_deletions",
                    "Copies whose source was deleted, waiting for the grace period.",
                ),
                &["policy"],
            )?,
            errors: CounterVec::new(
                Opts::new(
                    "govdc_backup_errors_total",
                    "Replication errors, by policy and reason.",
                ),
                &["policy", "reason"],
            )?,
            lag: HistogramVec::new(
                HistogramOpts::new(
                    "govdc_backup_sync_lag_seconds",
                    "Time from a change seen on the primary to its copy written on the target.",
                )
                .buckets(vec![0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 15.0, 60.0]),
                &["policy"],
            )?,
            hub_state: GaugeVec::new(
                Opts::new(
                    "govdc_backup_hub_state_last_export_timestamp_seconds",
                    "When the restore-point store last held an ExchangeNode hub's current state: its last export, or the last check that found the hub unchanged since (Unix time).",
                ),
                &["policy", "node"],
            )?,
        })
    }

    /// Sets the current replication lag.
    pub fn rpo(&self, policy: &str, seconds: f64) {
        self.rpo.with_label_values(&[policy]).set(seconds);
    }

    /// Sets when the target last held everything.
    pub fn last_sync(&self, policy: &str, unix_seconds: f64) {
        self.last_sync
            .with_label_values(&[policy])
            .set(unix_seconds);
    }

    /// Sets the number of copies on the target.
    pub fn objects(&self, policy: &str, count: i64) {
        self.objects.with_label_values(&[policy]).set(count);
    }

    /// Sets the number of copies waiting for their grace period.
    pub fn pending_deletions(&self, policy: &str, count: i64) {
        self.pending_deletions
            .with_label_values(&[policy])
            .set(count);
    }

    /// Counts an error.
    pub fn error(&self, policy: &str, reason: &str) {
        self.errors.with_label_values(&[policy, reason]).inc();
    }

    /// Records the lag of one sync.
    pub fn observe_lag(&self, policy: &str, seconds: f64) {
        self.lag.with_label_values(&[policy]).observe(seconds);
    }

    /// Sets when the store last held the current state of hub `node` (`namespace/name`).
    pub fn hub_state_exported(&self, policy: &str, node: &str, unix_seconds: f64) {
        self.hub_state
            .with_label_values(&[policy, node])
            .set(unix_seconds);
    }

    /// Drops a hub's gauge once its policy stops exporting it.
    pub fn forget_hub_node(&self, policy: &str, node: &str) {
        let _ = self.hub_state.remove_label_values(&[policy, node]);
    }

    /// Drops a stopped policy's gauges, so a deleted policy does not report a frozen lag.
    pub fn forget(&self, policy: &str) {
        let _ = self.rpo.remove_label_values(&[policy]);
        let _ = self.last_sync.remove_label_values(&[policy]);
        let _ = self.objects.remove_label_values(&[policy]);
        let _ = self.pending_deletions.remove_label_values(&[policy]);
    }
}
