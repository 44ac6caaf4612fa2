//! DepartmentCloud: a government department's tenant cloud (部门私有云) on the shared data center.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{
    AdministrativeLevel, CREDIT_CODE_PATTERN, DNS_LABEL_PATTERN, NetworkZone, REGION_CODE_PATTERN,
    ResourceQuantities,
};

/// A department's tenant cloud: one namespace per environment, with quotas, default container
/// limits, network isolation, RBAC and security labels, admitted within the data center's capacity.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "govdc.io",
    version = "v1alpha1",
    kind = "DepartmentCloud",
    plural = "departmentclouds",
    shortname = "dc",
    category = "govdc",
    status = "DepartmentCloudStatus",
    doc = "A government department's tenant cloud: namespaces, quotas, limits, network isolation, RBAC and security labels on the shared data center.",
    printcolumn(name = "Department", type_ = "string", json_path = ".spec.department.name"),
    printcolumn(name = "Zone", type_ = "string", json_path = ".spec.networkZone"),
    printcolumn(name = "Level", type_ = "integer", json_path = ".spec.protectionLevel"),
    printcolumn(name = "Envs", type_ = "integer", json_path = ".status.namespaceCount"),
    printcolumn(name = "Ready", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].status"),
    printcolumn(name = "Reason", type_ = "string", json_path = ".status.conditions[?(@.type==\"Ready\")].reason", priority = 1),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$') && size(self.metadata.name) <= 52")
        .message("metadata.name must be a DNS label of at most 52 characters, since it prefixes every environment's namespace"),
    validation = Rule::new("self.spec.environments.all(e, size(self.metadata.name) + 1 + size(e.name) <= 63)")
        .message("each environment's namespace '<name>-<environment>' must fit in 63 characters")
        .field_path(".spec.environments"),
)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentCloudSpec {
    /// Who the department is.
    pub department: DepartmentIdentity,

    /// The network the tenant lives on: `extranet` (unclassified) or `intranet` (classified).
    /// Intranet tenants get no egress outside the cluster. Cannot change after creation.
    #[x_kube(validation = Rule::new("self == oldSelf").message("networkZone cannot change after creation"))]
    pub network_zone: NetworkZone,

    /// Multi-level protection grade (等级保护), 1 to 4. Level 3 and above run under the
    /// `restricted` Pod Security Standard, lower levels under `baseline`.
    #[schemars(range(min = 1, max = 4))]
    pub protection_level: i32,

    /// The department's environments; each becomes the namespace `<name>-<environment>`.
    #[schemars(length(min = 1, max = 16))]
    #[x_kube(validation = Rule::new("self.all(e, self.exists_one(f, f.name == e.name))").message("environment names must be unique"))]
    pub environments: Vec<Environment>,

    /// Tenant-wide hard quota: all environments together never exceed it. The data center's
    /// capacity is checked against it. Keys are ResourceQuota resource names (`requests.cpu`,
    /// `limits.memory`, `pods`, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::requested_quantities_schema")]
    pub quota: Option<ResourceQuantities>,

    /// Default requests and limits given to containers that declare none (a LimitRange).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container_defaults: Option<ContainerDefaults>,

    /// Who administers the tenant: the `admin` ClusterRole in every environment, and read access
    /// to this DepartmentCloud.
    #[serde(default)]
    pub admins: Vec<TenantMember>,

    /// Who may look: the `view` ClusterRole in every environment.
    #[serde(default)]
    pub viewers: Vec<TenantMember>,

    /// Names of other DepartmentClouds whose workloads may reach this tenant, for
    /// cross-department collaboration (业务协同). Must be in the same network zone.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(max = 52), regex(pattern = DNS_LABEL_PATTERN)))]
    pub peer_departments: Vec<String>,

    /// What happens to the namespaces when this DepartmentCloud is deleted: `Retain` (the
    /// default: namespaces and workloads stay, no longer managed) or `Delete`.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

/// The identity of a government department.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.level != 'central' || self.regionCode == '100000'").message("a central department's regionCode is 100000").field_path(".regionCode"))]
pub struct DepartmentIdentity {
    /// The department's official name, e.g. 国家发展和改革委员会.
    #[schemars(length(min = 1, max = 128))]
    pub name: String,

    /// Unified social credit code (统一社会信用代码, GB 32100): 18 characters. The operator
    /// verifies the check characters and reports a wrong one in the Ready condition.
    #[schemars(regex(pattern = CREDIT_CODE_PATTERN))]
    pub credit_code: String,

    /// Administrative level: `central`, `provincial`, `municipal` or `county`.
    pub level: AdministrativeLevel,

    /// Six-digit administrative division code (GB/T 2260) of the department's region, e.g.
    /// 110000 for Beijing; 100000 for central departments.
    #[schemars(regex(pattern = REGION_CODE_PATTERN))]
    pub region_code: String,
}

/// One environment of a tenant: a namespace with its own quota.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Environment {
    /// Environment name, a DNS label such as `prod` or `test`.
    #[schemars(length(min = 1, max = 20), regex(pattern = DNS_LABEL_PATTERN))]
    pub name: String,

    /// Hard quota of this environment's namespace (a ResourceQuota). Together the environments'
    /// quotas must fit in the tenant-wide quota.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::requested_quantities_schema")]
    pub quota: Option<ResourceQuantities>,
}

/// Default container resources, applied through a LimitRange in every environment. Per resource,
/// `defaultRequest <= defaultLimit <= max`, as the API server requires of a LimitRange (which
/// takes a missing `defaultLimit` from `max`).
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new(crate::common::cel_quantities_ordered("defaultRequest", "defaultLimit"))
        .message("a defaultRequest may not exceed the defaultLimit of the same resource")
        .field_path(".defaultRequest"),
    validation = Rule::new(crate::common::cel_quantities_ordered("defaultRequest", "max"))
        .message("a defaultRequest may not exceed the max of the same resource")
        .field_path(".defaultRequest"),
    validation = Rule::new(crate::common::cel_quantities_ordered("defaultLimit", "max"))
        .message("a defaultLimit may not exceed the max of the same resource")
        .field_path(".defaultLimit"),
)]
pub struct ContainerDefaults {
    /// Requests given to a container that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::requested_quantities_schema")]
    pub default_request: Option<ResourceQuantities>,

    /// Limits given to a container that declares none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::requested_quantities_schema")]
    pub default_limit: Option<ResourceQuantities>,

    /// The most any one container may ask for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::requested_quantities_schema")]
    pub max: Option<ResourceQuantities>,
}

/// A user, group or ServiceAccount given a role in the tenant.
#[derive(Serialize, Deserialize, KubeSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("self.kind == 'ServiceAccount' ? has(self.__namespace__) : !has(self.__namespace__)").message("namespace is required for a ServiceAccount and not allowed otherwise").field_path(".namespace"))]
pub struct TenantMember {
    /// `User`, `Group` or `ServiceAccount`.
    pub kind: MemberKind,
    /// The user's or group's name as the API server authenticates it, or the ServiceAccount's name.
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
    /// Namespace of a ServiceAccount.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// The kind of an RBAC subject.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq)]
pub enum MemberKind {
    /// A user, as named by the API server's authenticator.
    User,
    /// A group, as named by the API server's authenticator.
    Group,
    /// A ServiceAccount.
    ServiceAccount,
}

/// What deleting a DepartmentCloud does to its namespaces.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum DeletionPolicy {
    /// Keep the namespaces and everything in them, marked as no longer managed. Government data
    /// is never deleted by accident.
    #[default]
    Retain,
    /// Delete the namespaces and everything in them.
    Delete,
}

/// What the operator observed and did for a DepartmentCloud.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct DepartmentCloudStatus {
    /// The generation of the spec this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,

    /// `Ready`, `Progressing`, `Degraded` and `CapacityAvailable`, per the Kubernetes API
    /// conventions.
    #[serde(default)]
    pub conditions: Vec<Condition>,

    /// How many environment namespaces exist.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace_count: Option<i32>,

    /// The state of each environment's namespace.
    #[serde(default)]
    pub namespaces: Vec<NamespaceStatus>,

    /// Quota hard limits summed over the tenant's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::quantities_schema")]
    pub quota_hard: Option<ResourceQuantities>,

    /// Quota usage summed over the tenant's namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::common::quantities_schema")]
    pub quota_used: Option<ResourceQuantities>,
}

/// The state of one environment's namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Default)]
#[serde(rename_all = "camelCase")]
pub struct NamespaceStatus {
    /// The environment.
    pub environment: String,
    /// The namespace's name.
    pub name: String,
    /// The namespace's phase: `Active`, `Terminating`, or `Missing` when it does not exist.
    pub phase: String,
}
