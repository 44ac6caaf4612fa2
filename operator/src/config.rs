//! The operator's command line: everything `govdc-operator run` can be told, each flag also
//! settable from the environment (which is how the Helm chart passes them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How log lines are written.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines, for a terminal.
    Text,
}

/// Flags of `govdc-operator run`.
#[derive(clap::Args, Clone, Debug)]
pub struct RunArgs {
    /// Kubeconfig to use; without it, $KUBECONFIG, ~/.kube/config or the in-cluster
    /// ServiceAccount, in that order.
    #[arg(long, env = "GOVDC_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Address of the HTTP server for /metrics, /livez and /readyz.
    #[arg(long, env = "GOVDC_METRICS_ADDRESS", default_value = "127.0.0.1:8080")]
    pub metrics_address: SocketAddr,

    /// Log format: json (the default) or text for a terminal.
    #[arg(long, env = "GOVDC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Json)]
    pub log_format: LogFormat,

    /// Log filter in tracing's EnvFilter syntax, e.g. `info,govdc_operator=debug`.
    #[arg(long, env = "GOVDC_LOG", default_value = "info")]
    pub log_filter: String,

    /// Concurrent reconciles of DepartmentClouds.
    #[arg(long, env = "GOVDC_DEPARTMENT_CLOUD_CONCURRENCY", default_value_t = 8)]
    pub department_cloud_concurrency: u16,

    /// Concurrent reconciles of ExchangeNodes.
    #[arg(long, env = "GOVDC_EXCHANGE_NODE_CONCURRENCY", default_value_t = 2)]
    pub exchange_node_concurrency: u16,

    /// Concurrent reconciles of OpenDatasets.
    #[arg(long, env = "GOVDC_OPEN_DATASET_CONCURRENCY", default_value_t = 2)]
    pub open_dataset_concurrency: u16,

    /// Concurrent reconciles of BackupPolicies.
    #[arg(long, env = "GOVDC_BACKUP_POLICY_CONCURRENCY", default_value_t = 2)]
    pub backup_policy_concurrency: u16,

    /// Writes to a BackupPolicy's target cluster in flight at once, per policy.
    #[arg(long, env = "GOVDC_BACKUP_APPLY_CONCURRENCY", default_value_t = 16)]
    pub backup_apply_concurrency: usize,

    /// Directory of the restore points of BackupPolicies that name no object storage.
    #[arg(long, env = "GOVDC_RESTORE_POINT_DIR", default_value = crate::controllers::backup_policy::DEFAULT_RESTORE_POINT_DIR)]
    pub restore_point_dir: PathBuf,

    /// The data center's capacity, as ResourceQuota resources and quantities
    /// (`requests.cpu=1000,requests.memory=4Ti`). DepartmentClouds that do not fit in what is
    /// left wait, in order of creation. Unset: unlimited.
    #[arg(long, env = "GOVDC_CAPACITY", value_parser = parse_capacity)]
    pub capacity: Option<crate::quantity::Amounts>,

    /// Only reconcile govdc resources carrying these labels (a label selector such as
    /// `shard=a`); for sharding and for tests that share a cluster.
    #[arg(long, env = "GOVDC_OBJECT_SELECTOR")]
    pub object_selector: Option<String>,

    /// Take part in leader election, so that of several replicas exactly one reconciles.
    #[arg(long, env = "GOVDC_LEADER_ELECT", default_value_t = true, action = clap::ArgAction::Set)]
    pub leader_elect: bool,

    /// Name of the Lease used for leader election.
    #[arg(long, env = "GOVDC_LEASE_NAME", default_value = "govdc-operator")]
    pub lease_name: String,

    /// Namespace of the Lease; the chart sets it to the release namespace.
    #[arg(long, env = "GOVDC_LEASE_NAMESPACE", default_value = "govdc-system")]
    pub lease_namespace: String,

    /// How long a leader's lease lasts without renewal, in seconds; a standby takes over at most
    /// this long after a leader dies without releasing it.
    #[arg(long, env = "GOVDC_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,

    /// This replica's identity in leader election and events; defaults to the pod name
    /// ($POD_NAME) or the host name and process id.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// How long to wait for in-flight reconciles on shutdown before giving up.
    #[arg(long, env = "GOVDC_SHUTDOWN_GRACE_SECONDS", default_value_t = 20)]
    pub shutdown_grace_seconds: u64,

    /// The govdc-hub image that ExchangeNodes run.
    #[arg(long, env = "GOVDC_HUB_IMAGE", default_value = concat!("govdc/govdc-hub:", env!("CARGO_PKG_VERSION")))]
    pub hub_image: String,

    /// Where the operator reaches a hub node, as `NAMESPACE/NAME=URL`, instead of its Service's
    /// cluster DNS name. For an operator running outside the cluster (a laptop, the tests), where
    /// Service DNS does not resolve. Repeatable; comma-separated in the environment.
    #[arg(long = "hub-endpoint", env = "GOVDC_HUB_ENDPOINTS", value_delimiter = ',', value_parser = parse_hub_endpoint)]
    pub hub_endpoints: Vec<(String, String)>,

    /// Seconds between exports of the hub state of the ExchangeNodes a continuous BackupPolicy
    /// lists (scheduled policies export with each pass). A hub unchanged since its last export is
    /// only checked, not exported again.
    #[arg(long, env = "GOVDC_HUB_STATE_INTERVAL_SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    pub hub_state_interval_seconds: u64,

    /// The ClusterRole that the operator binds to its own ServiceAccount in each namespace it
    /// provisions for a DepartmentCloud (reading its Secrets, deleting it), so that it holds
    /// those rights only where govdc works. Set with `--service-account`; the chart sets both.
    /// Unset: no such binding (the operator's credentials must grant them some other way).
    #[arg(long, env = "GOVDC_TENANT_ROLE", requires = "service_account")]
    pub tenant_role: Option<String>,

    /// The operator's own ServiceAccount, as `NAMESPACE/NAME`: the subject of the bindings it
    /// makes for itself.
    #[arg(long, env = "GOVDC_SERVICE_ACCOUNT", value_parser = parse_service_account, requires = "tenant_role")]
    pub service_account: Option<(String, String)>,

    /// Seconds between looks at a published dataset's source for changes.
    #[arg(long, env = "GOVDC_DATASET_POLL_SECONDS", default_value_t = 30)]
    pub dataset_poll_seconds: u64,
}

impl RunArgs {
    /// This replica's identity, derived when not given.
    pub fn identity(&self) -> String {
        self.identity.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_owned())
                .unwrap_or_else(|_| "govdc-operator".to_owned());
            format!("{host}-{}", std::process::id())
        })
    }

    /// The lease duration.
    pub fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.lease_duration_seconds)
    }
}

/// Parses `--hub-endpoint`: `NAMESPACE/NAME=URL`.
pub(crate) fn parse_hub_endpoint(text: &str) -> Result<(String, String), String> {
    let (node, url) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not NAMESPACE/NAME=URL"))?;
    let (namespace, name) = node
        .split_once('/')
        .ok_or_else(|| format!("{node:?} is not NAMESPACE/NAME"))?;
    if namespace.is_empty() || name.is_empty() {
        return Err(format!("{node:?} is not NAMESPACE/NAME"));
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(format!("{url:?} is not an http:// or https:// URL"));
    }
    Ok((node.to_owned(), url.to_owned()))
}

/// Parses `--service-account`: `NAMESPACE/NAME`.
fn parse_service_account(text: &str) -> Result<(String, String), String> {
    match text.split_once('/') {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains('/') =>
        {
            Ok((namespace.to_owned(), name.to_owned()))
        }
        _ => Err(format!("{text:?} is not NAMESPACE/NAME")),
    }
}

/// Parses `--capacity`: comma-separated `resource=quantity` pairs.
fn parse_capacity(text: &str) -> Result<crate::quantity::Amounts, String> {
    text.split(',')
        .filter(|pair| !pair.trim().is_empty())
        .map(|pair| {
            let (resource, amount) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not resource=quantity"))?;
            let amount = crate::quantity::parse(amount.trim()).map_err(|e| e.to_string())?;
            Ok((resource.trim().to_owned(), amount))
        })
        .collect()
}
