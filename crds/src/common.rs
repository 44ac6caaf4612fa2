//! Types shared by more than one govdc resource.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The API group of every govdc resource.
pub const GROUP: &str = "govdc.io";

/// The CRD category that lists every govdc resource: `kubectl get govdc`.
pub const CATEGORY: &str = "govdc";

/// Label on a tenant namespace naming the DepartmentCloud it belongs to. Resources in that
/// namespace (an OpenDataset, say) belong to that department.
pub const DEPARTMENT_LABEL: &str = "govdc.io/department";

/// Label on a tenant namespace naming its environment.
pub const ENVIRONMENT_LABEL: &str = "govdc.io/environment";

/// Label naming the network zone (`extranet` or `intranet`) of a tenant namespace.
pub const NETWORK_ZONE_LABEL: &str = "govdc.io/network-zone";

/// Label carrying the multi-level protection grade (1-4) of a tenant namespace.
pub const PROTECTION_LEVEL_LABEL: &str = "govdc.io/protection-level";

/// Label carrying the administrative level of a tenant namespace's department.
pub const ADMINISTRATIVE_LEVEL_LABEL: &str = "govdc.io/administrative-level";

/// Label (value `"true"`) on namespaces running exchange hub nodes; tenant namespaces accept
/// traffic from them.
pub const EXCHANGE_HUB_LABEL: &str = "govdc.io/exchange-hub";

/// Label left on a namespace kept after its DepartmentCloud was deleted under the `Retain`
/// policy, naming that DepartmentCloud. A new DepartmentCloud of the same name adopts it.
pub const RETAINED_FROM_LABEL: &str = "govdc.io/retained-from";

/// Which of the two government networks, which never mix, a resource belongs to.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum NetworkZone {
    /// The unclassified government extranet (政务外网, 非涉密).
    Extranet,
    /// The classified government intranet (政务内网, 涉密): no egress outside the cluster, no
    /// open-data portal, no federation with extranet nodes.
    Intranet,
}

impl NetworkZone {
    /// The value used in labels and CEL rules.
    pub fn as_str(self) -> &'static str {
        match self {
            NetworkZone::Extranet => "extranet",
            NetworkZone::Intranet => "intranet",
        }
    }
}

/// The four administrative levels of Chinese government (中央、省、市、县).
#[derive(Serialize, Deserialize, JsonSchema, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum AdministrativeLevel {
    /// Central government (中央).
    Central,
    /// Province, autonomous region or municipality directly under the central government (省).
    Provincial,
    /// Prefecture-level city (市).
    Municipal,
    /// County or district (县).
    County,
}

impl AdministrativeLevel {
    /// The value used in labels.
    pub fn as_str(self) -> &'static str {
        match self {
            AdministrativeLevel::Central => "central",
            AdministrativeLevel::Provincial => "provincial",
            AdministrativeLevel::Municipal => "municipal",
            AdministrativeLevel::County => "county",
        }
    }
}

/// Compute resources by name (`cpu`, `memory`, `requests.storage`, `pods`, ...), each a Kubernetes
/// quantity such as `500m` or `4Gi`.
pub type ResourceQuantities = BTreeMap<String, Quantity>;

/// A reference to one key of a Secret.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyReference {
    /// Namespace of the Secret. Required for cluster-scoped resources; namespaced resources
    /// default to their own namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
    /// Name of the Secret.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Key inside the Secret's data.
    #[schemars(length(min = 1))]
    pub key: String,
}

/// A reference to another object of a known kind by name, optionally in another namespace.
#[derive(Serialize, Deserialize, JsonSchema, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference {
    /// Name of the object.
    #[schemars(length(min = 1, max = 253), regex(pattern = DNS_SUBDOMAIN_PATTERN))]
    pub name: String,
    /// Namespace of the object; defaults to the referring object's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 63), regex(pattern = DNS_LABEL_PATTERN))]
    pub namespace: Option<String>,
}

/// The schema of a [`ResourceQuantities`] map: quantities as int-or-string, without repeating
/// k8s-openapi's page-long description of Quantity in every field `kubectl explain` shows.
pub(crate) fn quantities_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": quantity_value_schema(),
    })
}

/// The schema of a [`ResourceQuantities`] map a user asks for (a quota, container defaults): as
/// [`quantities_schema`], and no quantity may be negative, checked by the API server with CEL's
/// Kubernetes quantity library (the pattern alone admits `-1`, and a bare integer is not matched
/// against a pattern at all). The rule sits on each value, so the refusal names the resource:
/// `spec.quota[requests.cpu]: Invalid value: "string": must not be negative`.
pub(crate) fn requested_quantities_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let mut value = quantity_value_schema();
    value["x-kubernetes-validations"] = serde_json::json!([{
        "rule": format!(
            "!isQuantity(string(self)) || !{}.isLessThan(quantity('0'))",
            cel_quantity("self")
        ),
        "message": "must not be negative",
    }]);
    schemars::json_schema!({
        "type": "object",
        "maxProperties": 32,
        "additionalProperties": value,
    })
}

/// The CEL quantity of an int-or-string value: `quantity(string(value))`, since CEL's
/// `quantity()` takes a string and the API server hands a bare integer (`cpu: 2`) to CEL as an
/// int.
pub fn cel_quantity(value: &str) -> String {
    format!("quantity(string({value}))")
}

/// A CEL rule, over an object holding the quantity maps `low` and `high`, that every resource in
/// both has `low[r] <= high[r]`. Values that are no quantity pass here: the field's pattern
/// refuses them.
pub fn cel_quantities_ordered(low: &str, high: &str) -> String {
    let (lo, hi) = (format!("self.{low}[r]"), format!("self.{high}[r]"));
    format!(
        "!has(self.{low}) || !has(self.{high}) || self.{low}.all(r, !(r in self.{high}) || !isQuantity(string({lo})) || !isQuantity(string({hi})) || !{}.isLessThan({}))",
        cel_quantity(&hi),
        cel_quantity(&lo)
    )
}

/// The longest quantity text: far more than any real amount, and a bound that keeps the cost of
/// CEL rules over quantities within the API server's budget.
const QUANTITY_MAX_LENGTH: u32 = 64;

fn quantity_value_schema() -> serde_json::Value {
    serde_json::json!({
        "x-kubernetes-int-or-string": true,
        "pattern": QUANTITY_PATTERN,
        "maxLength": QUANTITY_MAX_LENGTH,
    })
}

/// The grammar of a Kubernetes quantity (`500m`, `2`, `4Gi`, `1e3`), as the API server parses it.
pub(crate) const QUANTITY_PATTERN: &str = r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$";

/// The schema of a quantity that cannot be negative (a volume size).
pub(crate) fn positive_quantity_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "x-kubernetes-int-or-string": true,
        "pattern": r"^\+?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$",
    })
}

/// Pattern of an RFC 1123 DNS label (namespace names, environment names).
pub(crate) const DNS_LABEL_PATTERN: &str = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// Pattern of an RFC 1123 DNS subdomain (the names of most objects). A name outside it can
/// never exist, and a reference to one would only fail later, as a request the API server
/// cannot even route.
pub(crate) const DNS_SUBDOMAIN_PATTERN: &str =
    r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$";

/// Pattern of a six-digit administrative division code (GB/T 2260).
pub(crate) const REGION_CODE_PATTERN: &str = r"^[1-8][0-9]{5}$";

/// Pattern of a unified social credit code (GB 32100): 18 characters from the code's alphabet.
/// The check character is verified by the operator, since CEL cannot compute it.
pub(crate) const CREDIT_CODE_PATTERN: &str =
    r"^[0-9A-HJ-NPQRTUWXY]{2}[0-9]{6}[0-9A-HJ-NPQRTUWXY]{10}$";

/// Pattern of a Go-style duration with seconds, minutes or hours (`500ms`, `2s`, `15m`, `1h30m`).
pub(crate) const DURATION_PATTERN: &str = r"^([0-9]+(ms|s|m|h))+$";

/// Pattern of a five-field cron schedule (`*/5 * * * *`); the operator parses it fully.
pub(crate) const CRON_PATTERN: &str = r"^(\S+\s+){4}\S+$";
