//! BackupPolicy: disaster-recovery replication (容灾备份) of tenant clouds to another cluster.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{CRON_PATTERN, DURATION_PATTERN, ObjectReference, SecretKeyReference};

/// Replicates the selected DepartmentClouds (and ExchangeNodes) into a standby cluster,
/// continuously or on a schedule, with point-in-time restore points.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "govdc.io",
    version = "v1alpha1",
    kind = "BackupPolicy",
    plural = "backuppolicies",
    shortname = "bp",
    category = "govdc",
    status = "BackupPolicyStatus",
    doc = "Disaster-recovery replication of tenant clouds to another cluster, with failover and point-in-time restore.",
    printcolumn(name = "Mode", type_ = "string", json_path = ".spec.mode"),
    printcolumn(
        name = "RPO",
        type_ = "string",
        json_path = ".spec.recoveryPointObjective"
    ),
    printcolumn(name = "Last Sync", type_ = "date", json_path = ".status.lastSyncTime"),
    printcolumn(
        name = "Objects",
        type_ = "integer",
        json_path = ".status.objectsReplicated"
    ),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.mode != 'scheduled' || has(self.schedule)")
        .message("a scheduled policy needs a schedule")
        .field_path(".schedule"),
    validation = Rule::new("!(has(self.includeKinds) && has(self.excludeKinds)) || !self.includeKinds.exists(k, k in self.excludeKinds)")
        .message("a kind cannot be both included and excluded")
        .field_path(".excludeKinds"),
)]
pub struct BackupPolicySpec {
    /// Which DepartmentClouds to protect, by label. An empty selector selects all of them.
    #[serde(default)]
    pub department_selector: LabelSelector,

    /// ExchangeNodes whose hub state is replicated too, each with its namespace (the policy is
    /// cluster-scoped: there is no namespace to default to). A node's namespace is protected
    /// whole, like a selected department's, whatever its labels: the node's StatefulSet,
    /// Service and key Secret must be on the standby for a failover to start it there. The
    /// system's namespaces (`kube-*`) are refused here, the operator's own by the operator; a
    /// listed node that does not exist protects nothing.
    #[serde(default)]
    #[schemars(length(max = 64))]
    #[x_kube(
        validation = Rule::new("self.all(n, has(n.__namespace__) && n.__namespace__ != '')").message("an ExchangeNode is namespaced; name its namespace"),
        validation = Rule::new("self.all(n, !has(n.__namespace__) || !n.__namespace__.startsWith('kube-'))").message("a node's namespace is replicated whole, so it cannot be one of the system's (kube-*)")
    )]
    pub exchange_nodes: Vec<ObjectReference>,

    /// The standby cluster.
    pub target: BackupTarget,

    /// How a protected namespace is named in the target cluster.
    #[serde(default)]
    pub namespace_mapping: NamespaceMapping,

    /// `continuous` (changes replicated as they are watched) or `scheduled` (a full pass on
    /// `schedule`).
    #[serde(default)]
    pub mode: ReplicationMode,

    /// Cron schedule (five fields, UTC) of a `scheduled` policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub schedule: Option<String>,

    /// The most data the policy may lose, as a duration (`2s`, `15m`); measured against the
    /// replication lag and reported in status.
    #[serde(default = "default_rpo")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub recovery_point_objective: String,

    /// Kinds replicated, as `Kind` or `Kind.group` (`Deployment.apps`). Unset means the defaults:
    /// ConfigMaps, Secrets, Services, Deployments, StatefulSets, CronJobs, PVC specs,
    /// ServiceAccounts, Roles, RoleBindings and govdc's own resources.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub include_kinds: Option<Vec<String>>,

    /// Kinds never replicated, even when included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 64), inner(length(max = 63)))]
    pub exclude_kinds: Option<Vec<String>>,

    /// Replicate workloads at zero replicas, to be scaled up by failover.
    #[serde(default = "default_true")]
    pub warm_standby: bool,

    /// Point-in-time restore points kept in object storage.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_points: Option<RestorePointPolicy>,

    /// What happens in the target when an object is deleted in the source.
    #[serde(default)]
    pub deletions: DeletionMirroring,
}

fn default_rpo() -> String {
    "2s".to_owned()
}

fn default_true() -> bool {
    true
}

/// The standby cluster of a BackupPolicy.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct BackupTarget {
    /// A Secret holding a kubeconfig for the target cluster. Its namespace is required.
    #[x_kube(validation = Rule::new("has(self.__namespace__)").message("the kubeconfig Secret's namespace is required"))]
    pub kubeconfig_secret_ref: SecretKeyReference,
}

/// How protected namespaces are named in the target cluster: `<prefix><name><suffix>`.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceMapping {
    /// Prepended to each namespace name.
    #[serde(default)]
    #[schemars(length(max = 16), regex(pattern = r"^([a-z0-9][-a-z0-9]*)?$"))]
    pub prefix: String,
    /// Appended to each namespace name.
    #[serde(default)]
    #[schemars(length(max = 16), regex(pattern = r"^([-a-z0-9]*[a-z0-9])?$"))]
    pub suffix: String,
}

/// How changes reach the target.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum ReplicationMode {
    /// Every change is replicated as the operator watches it.
    #[default]
    Continuous,
    /// A full pass on the policy's schedule.
    Scheduled,
}

/// Point-in-time restore points.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RestorePointPolicy {
    /// Cron schedule (five fields, UTC) on which a restore point is taken.
    #[schemars(regex(pattern = CRON_PATTERN))]
    pub schedule: String,
    /// How many of the newest restore points are kept.
    #[schemars(range(min = 1, max = 1000))]
    pub keep: i32,
    /// Besides the newest `keep`, the newest restore point of each of this many most recent days
    /// (UTC) is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 1000))]
    pub keep_daily: Option<i32>,
    /// Besides those, the newest restore point of each of this many most recent ISO weeks is
    /// kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 520))]
    pub keep_weekly: Option<i32>,
    /// Where restore points are stored. Unset: the operator's local directory
    /// (`--restore-point-dir`, a volume in the Helm chart).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<ObjectStorage>,
}

/// An S3-compatible object store.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStorage {
    /// The store's URL, `https://host[:port]`.
    #[schemars(regex(pattern = r"^https?://\S+$"))]
    pub endpoint: String,
    /// The bucket.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// The region to sign requests for; S3-compatible stores usually accept the default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63))]
    pub region: Option<String>,
    /// A Secret with the access key (`accessKeyId`, `secretAccessKey`).
    pub credentials_secret_ref: ObjectReference,
}

/// What happens in the target to objects deleted in the source.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DeletionMirroring {
    /// `mirror` deletes the copy after the grace period; `retain` keeps it.
    #[serde(default)]
    pub policy: DeletionMirrorPolicy,
    /// How long a deleted object's copy stays in the target before it is deleted there too.
    #[serde(default = "default_grace_period")]
    #[schemars(regex(pattern = DURATION_PATTERN))]
    pub grace_period: String,
}

impl Default for DeletionMirroring {
    fn default() -> Self {
        DeletionMirroring {
            policy: DeletionMirrorPolicy::default(),
            grace_period: default_grace_period(),
        }
    }
}

fn default_grace_period() -> String {
    "24h".to_owned()
}

/// Whether deletions reach the target.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeletionMirrorPolicy {
    /// Delete the copy after the grace period.
    #[default]
    Mirror,
    /// Never delete copies.
    Retain,
}

/// What the operator observed and did for a BackupPolicy.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupPolicyStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing`, `Degraded` and `TargetReachable`; `FailedOver` once promoted.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// When the target last matched the source.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_time: Option<Time>,

    /// The replication lag last measured, in seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measured_rpo_seconds: Option<f64>,

    /// Objects present in the target.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub objects_replicated: Option<i64>,

    /// Restore points available, newest first.
    #[serde(default)]
    pub restore_points: Vec<RestorePoint>,

    /// When the last change reached the target with nothing left to replicate.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_successful_sync_time: Option<Time>,

    /// Namespaces of the primary being protected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_namespaces: Option<i64>,

    /// Copies in the target whose source object is gone, waiting for the deletion grace period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_deletions: Option<i64>,

    /// Replication errors since the operator started, by reason, with the latest message.
    #[serde(default)]
    pub errors: Vec<ReplicationErrorCount>,

    /// Objects on the target that this policy did not make (they lack its
    /// `govdc.io/backup-policy` label) standing where a copy would go: never overwritten, scaled
    /// or deleted, and the protected object they block is not replicated (at most 100 listed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conflicts: Vec<TargetConflict>,

    /// Set by `govdc-operator backup failover`: the target was promoted and replication stopped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failover: Option<FailoverRecord>,
}

/// How many replication errors of one reason occurred.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ReplicationErrorCount {
    /// CamelCase reason (`TargetUnreachable`, `ApplyRejected`, `KindNotServed`, ...).
    pub reason: String,
    /// How many times it occurred.
    pub count: i64,
    /// The latest error's message.
    pub message: String,
}

/// An object on the target in the place of a copy, which the policy did not make.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TargetConflict {
    /// `Kind` or `Kind.group` (`Deployment.apps`).
    pub kind: String,
    /// Its namespace on the target; unset for a Namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Its name on the target.
    pub name: String,
}

/// A failover of the policy's target.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct FailoverRecord {
    /// When the target was promoted.
    pub time: Time,
    /// Standby workloads scaled to their recorded replica counts.
    pub workloads_scaled: i64,
}

/// One point-in-time restore point.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RestorePoint {
    /// The restore point's name, used by the restore command.
    pub name: String,
    /// When it was taken.
    pub taken_at: Time,
    /// Objects it holds.
    pub objects: i64,
    /// SHA-256 of its content, verified before a restore.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}
