//! Builds the objects a DepartmentCloud becomes (pure): per environment a namespace with its
//! security labels, a ResourceQuota, a LimitRange, NetworkPolicies and RoleBindings; and a
//! ClusterRole and binding that let the department's members read their own DepartmentCloud.

use std::collections::BTreeMap;

use govdc_crds::common::{
    ADMINISTRATIVE_LEVEL_LABEL, DEPARTMENT_LABEL, ENVIRONMENT_LABEL, EXCHANGE_HUB_LABEL,
    NETWORK_ZONE_LABEL, PROTECTION_LEVEL_LABEL,
};
use govdc_crds::department_cloud::{MemberKind, TenantMember};
use govdc_crds::{DepartmentCloud, NetworkZone};
use k8s_openapi::api::core::v1::{
    LimitRange, LimitRangeItem, LimitRangeSpec, Namespace, ResourceQuota, ResourceQuotaSpec,
};
use k8s_openapi::api::networking::v1::{
    NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicySpec,
};
use k8s_openapi::api::rbac::v1::{
    ClusterRole, ClusterRoleBinding, PolicyRule, RoleBinding, RoleRef, Subject,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use kube::{Resource, ResourceExt};

use super::quotas::QuotaPlan;
use crate::error::Result;
use crate::pipeline::apply::DesiredObject;
use crate::pipeline::ownership::Owner;
use crate::quantity::{self, Amounts};

/// Name of the ResourceQuota in each environment.
pub const QUOTA_NAME: &str = "govdc-quota";
/// Name of the LimitRange in each environment.
pub const LIMIT_RANGE_NAME: &str = "govdc-container-defaults";

/// The owner labels of everything a DepartmentCloud makes.
pub fn owner(cloud: &DepartmentCloud) -> Owner {
    Owner {
        kind: "DepartmentCloud",
        name: cloud.name_any(),
        namespace: None,
    }
}

/// The namespace of an environment: `<name>-<environment>`.
pub fn namespace_name(cloud: &DepartmentCloud, environment: &str) -> String {
    format!("{}-{environment}", cloud.name_any())
}

/// The Pod Security Standard a protection level runs under: `restricted` from level 3 up.
pub fn pod_security_level(protection_level: i32) -> &'static str {
    if protection_level >= 3 {
        "restricted"
    } else {
        "baseline"
    }
}

/// The name of the ClusterRole (and its binding) that lets members read the DepartmentCloud.
pub fn reader_role_name(cloud: &DepartmentCloud) -> String {
    format!("govdc:department-cloud:{}", cloud.name_any())
}

/// Every object the DepartmentCloud should have.
pub fn build(cloud: &DepartmentCloud, quotas: &QuotaPlan) -> Result<Vec<DesiredObject>> {
    let mut desired = Vec::new();
    for environment in &cloud.spec.environments {
        let namespace = namespace_name(cloud, &environment.name);
        desired.push(DesiredObject::from_typed(&tenant_namespace(
            cloud,
            &environment.name,
        ))?);
        if let Some(Some(hard)) = quotas.environments.get(&environment.name) {
            desired.push(DesiredObject::from_typed(&resource_quota(
                cloud, &namespace, hard,
            ))?);
        }
        if let Some(limit_range) = limit_range(cloud, &namespace) {
            desired.push(DesiredObject::from_typed(&limit_range)?);
        }
        for policy in network_policies(cloud, &namespace) {
            desired.push(DesiredObject::from_typed(&policy)?);
        }
        for binding in role_bindings(cloud, &namespace) {
            desired.push(DesiredObject::from_typed(&binding)?);
        }
    }
    if let Some((role, binding)) = reader_role(cloud) {
        desired.push(DesiredObject::from_typed(&role)?);
        desired.push(DesiredObject::from_typed(&binding)?);
    }
    Ok(desired)
}

fn metadata(cloud: &DepartmentCloud, name: &str, namespace: Option<&str>) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_owned()),
        namespace: namespace.map(str::to_owned),
        labels: Some(owner(cloud).labels()),
        ..Default::default()
    }
}

fn tenant_namespace(cloud: &DepartmentCloud, environment: &str) -> Namespace {
    let spec = &cloud.spec;
    let pss = pod_security_level(spec.protection_level);
    let mut meta = metadata(cloud, &namespace_name(cloud, environment), None);
    meta.labels.get_or_insert_default().extend([
        (DEPARTMENT_LABEL.to_owned(), cloud.name_any()),
        (ENVIRONMENT_LABEL.to_owned(), environment.to_owned()),
        (
            NETWORK_ZONE_LABEL.to_owned(),
            spec.network_zone.as_str().to_owned(),
        ),
        (
            PROTECTION_LEVEL_LABEL.to_owned(),
            spec.protection_level.to_string(),
        ),
        (
            ADMINISTRATIVE_LEVEL_LABEL.to_owned(),
            spec.department.level.as_str().to_owned(),
        ),
        (
            "pod-security.kubernetes.io/enforce".to_owned(),
            pss.to_owned(),
        ),
        (
            "pod-security.kubernetes.io/enforce-version".to_owned(),
            "latest".to_owned(),
        ),
        (
            "pod-security.kubernetes.io/audit".to_owned(),
            pss.to_owned(),
        ),
        ("pod-security.kubernetes.io/warn".to_owned(), pss.to_owned()),
    ]);
    Namespace {
        metadata: meta,
        ..Default::default()
    }
}

fn quantities(amounts: &Amounts) -> BTreeMap<String, Quantity> {
    amounts
        .iter()
        .map(|(name, amount)| (name.clone(), Quantity(quantity::format(*amount))))
        .collect()
}

fn resource_quota(cloud: &DepartmentCloud, namespace: &str, hard: &Amounts) -> ResourceQuota {
    ResourceQuota {
        metadata: metadata(cloud, QUOTA_NAME, Some(namespace)),
        spec: Some(ResourceQuotaSpec {
            hard: Some(quantities(hard)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn limit_range(cloud: &DepartmentCloud, namespace: &str) -> Option<LimitRange> {
    let defaults = cloud.spec.container_defaults.as_ref()?;
    Some(LimitRange {
        metadata: metadata(cloud, LIMIT_RANGE_NAME, Some(namespace)),
        spec: Some(LimitRangeSpec {
            limits: vec![LimitRangeItem {
                type_: "Container".to_owned(),
                default: defaults.default_limit.clone(),
                default_request: defaults.default_request.clone(),
                max: defaults.max.clone(),
                ..Default::default()
            }],
        }),
    })
}

fn namespaces_labelled(key: &str, value: &str) -> NetworkPolicyPeer {
    NetworkPolicyPeer {
        namespace_selector: Some(LabelSelector {
            match_labels: Some(BTreeMap::from([(key.to_owned(), value.to_owned())])),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn policy(
    cloud: &DepartmentCloud,
    namespace: &str,
    name: &str,
    spec: NetworkPolicySpec,
) -> NetworkPolicy {
    NetworkPolicy {
        metadata: metadata(cloud, name, Some(namespace)),
        spec: Some(spec),
    }
}

fn ingress_from(peers: Vec<NetworkPolicyPeer>) -> NetworkPolicySpec {
    NetworkPolicySpec {
        pod_selector: Some(LabelSelector::default()),
        policy_types: Some(vec!["Ingress".to_owned()]),
        ingress: Some(vec![NetworkPolicyIngressRule {
            from: Some(peers),
            ports: None,
        }]),
        ..Default::default()
    }
}

/// Default deny; the department's own namespaces, the exchange hub and named peers allowed in;
/// on the intranet, no egress beyond the cluster.
fn network_policies(cloud: &DepartmentCloud, namespace: &str) -> Vec<NetworkPolicy> {
    let intranet = cloud.spec.network_zone == NetworkZone::Intranet;
    let mut denied = vec!["Ingress".to_owned()];
    if intranet {
        denied.push("Egress".to_owned());
    }
    let mut policies = vec![
        policy(
            cloud,
            namespace,
            "govdc-default-deny",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(denied),
                ..Default::default()
            },
        ),
        policy(
            cloud,
            namespace,
            "govdc-allow-same-department",
            ingress_from(vec![namespaces_labelled(
                DEPARTMENT_LABEL,
                &cloud.name_any(),
            )]),
        ),
        policy(
            cloud,
            namespace,
            "govdc-allow-exchange-hub",
            ingress_from(vec![namespaces_labelled(EXCHANGE_HUB_LABEL, "true")]),
        ),
    ];
    if !cloud.spec.peer_departments.is_empty() {
        let peers = NetworkPolicyPeer {
            namespace_selector: Some(LabelSelector {
                match_expressions: Some(vec![LabelSelectorRequirement {
                    key: DEPARTMENT_LABEL.to_owned(),
                    operator: "In".to_owned(),
                    values: Some(cloud.spec.peer_departments.clone()),
                }]),
                ..Default::default()
            }),
            ..Default::default()
        };
        policies.push(policy(
            cloud,
            namespace,
            "govdc-allow-peer-departments",
            ingress_from(vec![peers]),
        ));
    }
    if intranet {
        policies.push(policy(
            cloud,
            namespace,
            "govdc-allow-in-cluster-egress",
            NetworkPolicySpec {
                pod_selector: Some(LabelSelector::default()),
                policy_types: Some(vec!["Egress".to_owned()]),
                // Any pod in any namespace: the cluster, and nothing outside it.
                egress: Some(vec![NetworkPolicyEgressRule {
                    to: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector::default()),
                        ..Default::default()
                    }]),
                    ports: None,
                }]),
                ..Default::default()
            },
        ));
    }
    policies
}

fn subject(member: &TenantMember) -> Subject {
    let (kind, api_group) = match member.kind {
        MemberKind::User => ("User", Some("rbac.authorization.k8s.io".to_owned())),
        MemberKind::Group => ("Group", Some("rbac.authorization.k8s.io".to_owned())),
        MemberKind::ServiceAccount => ("ServiceAccount", None),
    };
    Subject {
        kind: kind.to_owned(),
        name: member.name.clone(),
        namespace: member.namespace.clone(),
        api_group,
    }
}

fn cluster_role_ref(name: &str) -> RoleRef {
    RoleRef {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: "ClusterRole".to_owned(),
        name: name.to_owned(),
    }
}

fn role_bindings(cloud: &DepartmentCloud, namespace: &str) -> Vec<RoleBinding> {
    [
        ("govdc-admins", "admin", &cloud.spec.admins),
        ("govdc-viewers", "view", &cloud.spec.viewers),
    ]
    .into_iter()
    .filter(|(_, _, members)| !members.is_empty())
    .map(|(name, role, members)| RoleBinding {
        metadata: metadata(cloud, name, Some(namespace)),
        role_ref: cluster_role_ref(role),
        subjects: Some(members.iter().map(subject).collect()),
    })
    .collect()
}

/// Lets the department's admins and viewers read this DepartmentCloud and its status, and no
/// other. Owned by the DepartmentCloud, so the garbage collector removes it with it.
fn reader_role(cloud: &DepartmentCloud) -> Option<(ClusterRole, ClusterRoleBinding)> {
    let members: Vec<Subject> = cloud
        .spec
        .admins
        .iter()
        .chain(&cloud.spec.viewers)
        .map(subject)
        .collect();
    if members.is_empty() {
        return None;
    }
    let name = reader_role_name(cloud);
    let mut meta = metadata(cloud, &name, None);
    meta.owner_references = cloud.controller_owner_ref(&()).map(|r| vec![r]);
    let role = ClusterRole {
        metadata: meta.clone(),
        // Only permissions the operator holds itself, or RBAC refuses to let it grant them.
        rules: Some(vec![
            PolicyRule {
                api_groups: Some(vec![govdc_crds::GROUP.to_owned()]),
                resources: Some(vec!["departmentclouds".to_owned()]),
                resource_names: Some(vec![cloud.name_any()]),
                verbs: vec!["get".to_owned(), "list".to_owned(), "watch".to_owned()],
                ..Default::default()
            },
            PolicyRule {
                api_groups: Some(vec![govdc_crds::GROUP.to_owned()]),
                resources: Some(vec!["departmentclouds/status".to_owned()]),
                resource_names: Some(vec![cloud.name_any()]),
                verbs: vec!["get".to_owned()],
                ..Default::default()
            },
        ]),
        ..Default::default()
    };
    let binding = ClusterRoleBinding {
        metadata: meta,
        role_ref: cluster_role_ref(&name),
        subjects: Some(members),
    };
    Some((role, binding))
}

/// Name of the RoleBinding through which the operator reads Secrets in each environment (and may
/// delete it).
pub const OPERATOR_BINDING_NAME: &str = "govdc-operator";

/// The operator's own identity, for the binding it makes for itself in each tenant namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OperatorAccess {
    /// The ClusterRole granted (reading Secrets, deleting the namespace); the chart lets the
    /// operator bind it by name.
    pub role: String,
    /// Namespace of the operator's ServiceAccount.
    pub namespace: String,
    /// Name of the operator's ServiceAccount.
    pub name: String,
}

/// The RoleBindings that let the operator read Secrets in the DepartmentCloud's namespaces
/// (OpenDataset sources, BackupPolicy replication) and delete them (deletionPolicy Delete), and
/// no others: the chart grants neither cluster-wide. None without `access` (an operator run
/// with other credentials).
pub fn operator_bindings(
    cloud: &DepartmentCloud,
    access: Option<&OperatorAccess>,
) -> Result<Vec<DesiredObject>> {
    let Some(access) = access else {
        return Ok(Vec::new());
    };
    cloud
        .spec
        .environments
        .iter()
        .map(|environment| {
            let namespace = namespace_name(cloud, &environment.name);
            DesiredObject::from_typed(&RoleBinding {
                metadata: metadata(cloud, OPERATOR_BINDING_NAME, Some(&namespace)),
                role_ref: cluster_role_ref(&access.role),
                subjects: Some(vec![Subject {
                    kind: "ServiceAccount".to_owned(),
                    name: access.name.clone(),
                    namespace: Some(access.namespace.clone()),
                    api_group: None,
                }]),
            })
        })
        .collect()
}

/// Whether an object is the operator's own binding, which goes with the DepartmentCloud even
/// when its namespaces are retained: the operator has no business in a namespace it released.
pub fn is_operator_binding(resource_kind: &str, name: &str) -> bool {
    resource_kind == "RoleBinding" && name == OPERATOR_BINDING_NAME
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::department_cloud::quotas;

    fn cloud(zone: &str, level: i32, peers: &[&str]) -> DepartmentCloud {
        let mut cloud: DepartmentCloud = serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
            "metadata": {"name": "zj-data", "uid": "0000-1111"},
            "spec": {
                "department": {"name": "浙江省大数据发展管理局", "creditCode": "11330000MB00256383", "level": "provincial", "regionCode": "330000"},
                "networkZone": zone, "protectionLevel": level,
                "environments": [{"name": "prod"}, {"name": "test"}],
                "quota": {"requests.cpu": "8"},
                "admins": [{"kind": "User", "name": "wang"}],
                "peerDepartments": peers,
            }
        }))
        .expect("fixture");
        cloud.metadata.uid = Some("0000-1111".into());
        cloud
    }

    fn built(cloud: &DepartmentCloud) -> Vec<DesiredObject> {
        build(cloud, &quotas::plan(&cloud.spec).expect("plan")).expect("build")
    }

    fn names_of(desired: &[DesiredObject], kind: &str) -> Vec<String> {
        desired
            .iter()
            .filter(|d| d.resource.kind == kind)
            .map(|d| d.describe())
            .collect()
    }

    #[test]
    fn each_environment_becomes_a_labelled_namespace_with_its_guardrails() {
        let desired = built(&cloud("extranet", 3, &[]));
        assert_eq!(
            names_of(&desired, "Namespace"),
            ["Namespace zj-data-prod", "Namespace zj-data-test"]
        );
        assert_eq!(names_of(&desired, "ResourceQuota").len(), 2);
        let namespace = &desired[0].object.metadata;
        let labels = namespace.labels.as_ref().expect("labels");
        assert_eq!(labels["govdc.io/department"], "zj-data");
        assert_eq!(labels["govdc.io/network-zone"], "extranet");
        assert_eq!(labels["pod-security.kubernetes.io/enforce"], "restricted");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "govdc-operator");
    }

    #[test]
    fn protection_below_level_3_runs_under_baseline() {
        assert_eq!(pod_security_level(2), "baseline");
        assert_eq!(pod_security_level(3), "restricted");
        assert_eq!(pod_security_level(4), "restricted");
    }

    #[test]
    fn the_tenant_quota_is_split_between_environments() {
        let desired = built(&cloud("extranet", 3, &[]));
        let quota = desired
            .iter()
            .find(|d| d.resource.kind == "ResourceQuota")
            .expect("a quota");
        assert_eq!(quota.object.data["spec"]["hard"]["requests.cpu"], "4");
    }

    #[test]
    fn intranet_tenants_get_no_egress_outside_the_cluster() {
        let desired = built(&cloud("intranet", 4, &[]));
        let deny = desired
            .iter()
            .find(|d| d.object.metadata.name.as_deref() == Some("govdc-default-deny"))
            .expect("deny");
        assert_eq!(
            deny.object.data["spec"]["policyTypes"],
            serde_json::json!(["Ingress", "Egress"])
        );
        assert!(desired.iter().any(|d| d.object.metadata.name.as_deref() == Some("govdc-allow-in-cluster-egress")));
        let extranet = built(&cloud("extranet", 3, &[]));
        assert!(!extranet.iter().any(|d| d.object.metadata.name.as_deref() == Some("govdc-allow-in-cluster-egress")));
    }

    #[test]
    fn peers_are_allowed_in_only_when_named() {
        let with = built(&cloud("extranet", 3, &["hz-health"]));
        let peers = with
            .iter()
            .find(|d| d.object.metadata.name.as_deref() == Some("govdc-allow-peer-departments"))
            .expect("peers");
        assert_eq!(
            peers.object.data["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"]
                [0]["values"],
            serde_json::json!(["hz-health"])
        );
        assert!(
            !built(&cloud("extranet", 3, &[]))
                .iter()
                .any(|d| d.object.metadata.name.as_deref() == Some("govdc-allow-peer-departments"))
        );
    }

    #[test]
    fn the_operator_binds_itself_to_read_secrets_in_each_environment_only_when_told_who_it_is() {
        let cloud = cloud("extranet", 3, &[]);
        assert!(operator_bindings(&cloud, None).expect("build").is_empty());
        let access = OperatorAccess {
            role: "govdc-tenant".into(),
            namespace: "govdc-system".into(),
            name: "govdc".into(),
        };
        let bindings = operator_bindings(&cloud, Some(&access)).expect("build");
        assert_eq!(
            bindings
                .iter()
                .map(DesiredObject::describe)
                .collect::<Vec<_>>(),
            [
                "RoleBinding zj-data-prod/govdc-operator",
                "RoleBinding zj-data-test/govdc-operator"
            ]
        );
        let data = &bindings[0].object.data;
        assert_eq!(data["roleRef"]["name"], "govdc-tenant");
        assert_eq!(
            data["subjects"],
            serde_json::json!([{"kind": "ServiceAccount", "name": "govdc", "namespace": "govdc-system"}])
        );
        let labels = bindings[0].object.metadata.labels.as_ref().expect("labels");
        assert_eq!(labels["app.kubernetes.io/managed-by"], "govdc-operator");
    }

    #[test]
    fn members_may_read_only_their_own_department_cloud() {
        let desired = built(&cloud("extranet", 3, &[]));
        let role = desired
            .iter()
            .find(|d| d.resource.kind == "ClusterRole")
            .expect("role");
        assert_eq!(
            role.object.data["rules"][0]["resourceNames"],
            serde_json::json!(["zj-data"])
        );
        assert_eq!(
            role.object.metadata.owner_references.as_ref().map(Vec::len),
            Some(1)
        );
        let bindings = names_of(&desired, "RoleBinding");
        assert_eq!(
            bindings,
            [
                "RoleBinding zj-data-prod/govdc-admins",
                "RoleBinding zj-data-test/govdc-admins"
            ]
        );
    }
}
