//! ExchangeNode: one node of the national data sharing and exchange hub (国家数据共享交换枢纽).

use k8s_openapi::apimachinery::pkg::{api::resource::Quantity, apis::meta::v1::Condition};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    DNS_LABEL_PATTERN, NetworkZone, ObjectReference, REGION_CODE_PATTERN, SecretKeyReference,
};

/// A hosted node of the data sharing and exchange hub, federated with its parent node.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "govdc.io",
    version = "v1alpha1",
    kind = "ExchangeNode",
    plural = "exchangenodes",
    shortname = "xn",
    category = "govdc",
    namespaced,
    status = "ExchangeNodeStatus",
    doc = "A node of the national data sharing and exchange hub: the govdc-hub service, federated with its parent node.",
    printcolumn(name = "Level", type_ = "string", json_path = ".spec.level"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.networkZone"),
    printcolumn(name = "Portal", type_ = "boolean", json_path = ".spec.openDataPortal"),
    printcolumn(
        name = "Parent",
        type_ = "string",
        json_path = ".status.parentConnection"
    ),
    printcolumn(name = "Catalog", type_ = "integer", json_path = ".status.catalogSize"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Endpoint",
        type_ = "string",
        json_path = ".status.endpoint",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(self.networkZone == 'intranet' && self.openDataPortal)")
        .message("the open-data portal is public and never runs on the intranet")
        .field_path(".openDataPortal"),
    validation = Rule::new("self.level == 'national' ? !has(self.parent) : has(self.parent)")
        .message("a national node has no parent; provincial and municipal nodes federate with one")
        .field_path(".parent"),
)]
pub struct ExchangeNodeSpec {
    /// Where the node sits in the hub tree: `national`, `provincial` or `municipal`.
    pub level: HubLevel,

    /// Six-digit administrative division code (GB/T 2260) of the region the node serves.
    #[schemars(regex(pattern = REGION_CODE_PATTERN))]
    pub region_code: String,

    /// The network the node serves. An intranet node never federates with an extranet node.
    /// Cannot change after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("networkZone cannot change after creation"))]
    pub network_zone: NetworkZone,

    /// The node this one registers with and forwards its catalog to. Required below national.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ParentNode>,

    /// Hub pods. A node keeps its store in an embedded database with a single writer, so a node
    /// runs at most one replica; 0 stops it and keeps its data.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 1))]
    pub replicas: i32,

    /// Persistent storage of the node's database. Cannot change after creation: a
    /// StatefulSet's volume claims are immutable.
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("storage cannot change after creation"))]
    pub storage: HubStorage,

    /// Whether the node also serves the public open-data portal (extranet only).
    #[serde(default)]
    pub open_data_portal: bool,

    /// The portal's public base URL, as the public reaches it (an Ingress or load balancer in
    /// front of the node's Service), used in OpenDatasets' download URLs. Defaults to the
    /// Service's in-cluster address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://[^\s]+$"), length(max = 2048))]
    pub portal_url: Option<String>,

    /// Names of the DepartmentClouds allowed to join this node; empty admits none (deny by
    /// default). Only departments on the node's network zone join.
    #[serde(default)]
    #[schemars(length(max = 1000), inner(length(max = 52), regex(pattern = DNS_LABEL_PATTERN)))]
    pub allowed_departments: Vec<String>,

    /// Digest that chains the node's audit log: `sha256` (default) or `sm3` (GB/T 32905).
    #[serde(default)]
    pub audit_algorithm: AuditAlgorithm,
}

/// The digest of a hub node's hash-chained audit log.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum AuditAlgorithm {
    /// SHA-256.
    #[default]
    Sha256,
    /// SM3, the Chinese national standard hash (GB/T 32905-2016).
    Sm3,
}

impl AuditAlgorithm {
    /// The name in the hub's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AuditAlgorithm::Sha256 => "sha256",
            AuditAlgorithm::Sm3 => "sm3",
        }
    }
}

fn default_replicas() -> i32 {
    1
}

/// A level of the hub tree.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum HubLevel {
    /// The national hub (国家级).
    National,
    /// A provincial hub (省级).
    Provincial,
    /// A municipal hub (市级).
    Municipal,
}

impl HubLevel {
    /// The name in the spec and in the hub's configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            HubLevel::National => "national",
            HubLevel::Provincial => "provincial",
            HubLevel::Municipal => "municipal",
        }
    }

    /// Depth in the hub tree: 0 for national. A parent is always shallower than its child.
    pub fn depth(self) -> u8 {
        match self {
            HubLevel::National => 0,
            HubLevel::Provincial => 1,
            HubLevel::Municipal => 2,
        }
    }
}

/// The parent of a hub node: another ExchangeNode in this cluster, or a remote hub.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.nodeRef) != has(self.remote)").message("set exactly one of nodeRef and remote"))]
pub struct ParentNode {
    /// An ExchangeNode in this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_ref: Option<ObjectReference>,

    /// A hub node in another cluster, reached over TLS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<RemoteHub>,
}

/// A hub node outside this cluster.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RemoteHub {
    /// The remote node's gRPC endpoint, `https://host:port`.
    #[schemars(regex(pattern = r"^https://[^\s/]+(:[0-9]{1,5})?/?$"))]
    pub endpoint: String,

    /// The CA certificate (PEM) that the remote node's serving certificate chains to.
    pub ca_secret_ref: SecretKeyReference,

    /// A token the remote node's operator issued for this node (`govdc-hub token issue --role
    /// node --subject <this node's name>`), presented on every federation call.
    pub token_secret_ref: SecretKeyReference,
}

/// Persistent storage of a hub node.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HubStorage {
    /// Size of the volume, a non-negative Kubernetes quantity such as `10Gi`.
    #[schemars(schema_with = "crate::common::positive_quantity_schema")]
    pub size: Quantity,

    /// StorageClass of the volume; the cluster's default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for HubStorage {
    fn default() -> Self {
        HubStorage {
            size: Quantity("10Gi".to_owned()),
            storage_class_name: None,
        }
    }
}

/// What the operator observed and did for an ExchangeNode.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ExchangeNodeStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing`, `Degraded` and `ParentConnected`.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// The node's in-cluster gRPC endpoint.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,

    /// Hub pods that are ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ready_replicas: Option<i32>,

    /// State of the connection to the parent node: `Connected`, `Disconnected`, or `None` for a
    /// national node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent_connection: Option<String>,

    /// Resources in the node's shared catalog, its children's included.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub catalog_size: Option<i64>,

    /// Departments that are members of the node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member_count: Option<i32>,

    /// When the node last answered the operator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_heartbeat: Option<k8s_openapi::apimachinery::pkg::apis::meta::v1::Time>,

    /// The head of the hub's audit chain as the operator last observed it (refreshed with the
    /// heartbeat): an anchor of the log outside the node. A national node has no parent to
    /// anchor it, so this is what `govdc-hub audit verify --anchor SEQ:HASH` checks it against.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audit_head: Option<AuditHeadStatus>,
}

/// The last record of a hub's audit chain, as observed.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AuditHeadStatus {
    /// The record's sequence number (the chain's length).
    pub seq: i64,
    /// The record's hash, hex (SHA-256 or SM3, the node's audit algorithm).
    pub hash: String,
    /// When the operator read it.
    pub observed_at: k8s_openapi::apimachinery::pkg::apis::meta::v1::Time,
}
