//! Pure construction of what an ExchangeNode becomes: the hub's ConfigMap, ServiceAccount,
//! Service, StatefulSet, NetworkPolicy and PodDisruptionBudget, and the plan for talking to the
//! running hub (its endpoint, its parent, its members).

use std::collections::BTreeMap;
use std::time::Duration;

use govdc_crds::ExchangeNode;
use govdc_crds::common::{DEPARTMENT_LABEL, NETWORK_ZONE_LABEL};
use govdc_hub_api::auth::{Claims, Role, TokenKey};
use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource,
    GRPCAction, HTTPGetAction, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, ResourceRequirements, SeccompProfile,
    SecretVolumeSource, SecurityContext, Service, ServiceAccount, ServicePort, ServiceSpec, Volume,
    VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::networking::v1::{
    IPBlock, NetworkPolicy, NetworkPolicyEgressRule, NetworkPolicyIngressRule, NetworkPolicyPeer,
    NetworkPolicyPort, NetworkPolicySpec,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{
    LabelSelector, LabelSelectorRequirement, ObjectMeta,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::{Resource, ResourceExt};
use serde_json::json;

use super::HubSettings;
use super::read::Inputs;
use crate::error::{Error, Result};
use crate::hub_client::REDACTED;
use crate::hub_client::key;
use crate::pipeline::apply::DesiredObject;
use crate::pipeline::ownership::Owner;

/// The hub's gRPC port.
pub const GRPC_PORT: i32 = 50051;
/// The hub's metrics and health port.
pub const METRICS_PORT: i32 = 9090;
/// The open-data portal's HTTP port, on nodes that serve it.
pub const PORTAL_PORT: i32 = 8080;
/// The sharing-monitor website's HTTP port (every node; internal).
pub const MONITOR_PORT: i32 = 8081;
/// The file name of the hub's configuration in its ConfigMap.
pub const CONFIG_FILE: &str = "config.yaml";

const CONFIG_DIR: &str = "/etc/govdc-hub";
const KEY_DIR: &str = "/var/run/govdc-hub/key";
const DATA_DIR: &str = "/var/lib/govdc-hub";
/// The non-root user of the hub image.
const HUB_UID: i64 = 65532;

/// How long a child node's federation token lives; the child holds it until the parent moves.
const NODE_TOKEN_TTL: Duration = Duration::from_secs(365 * 24 * 3600);

/// The owner labels of everything made for `node`.
pub fn owner(node: &ExchangeNode) -> Owner {
    Owner {
        kind: "ExchangeNode",
        name: node.name_any(),
        namespace: node.namespace(),
    }
}

/// The name shared by the hub's objects.
pub fn base_name(node: &ExchangeNode) -> String {
    format!("{}-hub", node.name_any())
}

/// The in-cluster gRPC endpoint of the hub of `namespace/name`.
pub fn service_endpoint(namespace: &str, name: &str) -> String {
    format!("http://{name}-hub.{namespace}.svc:{GRPC_PORT}")
}

/// Labels that select the hub's pods.
fn selector_labels(node: &ExchangeNode) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "govdc-hub".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), node.name_any()),
    ])
}

/// Labels of the hub's objects and pods: the selector, ownership and the network zone (which
/// other hubs' NetworkPolicies match on).
fn labels(node: &ExchangeNode) -> BTreeMap<String, String> {
    let mut labels = owner(node).labels();
    labels.extend(selector_labels(node));
    labels.insert(
        "app.kubernetes.io/component".to_owned(),
        "exchange-node".to_owned(),
    );
    labels.insert(
        NETWORK_ZONE_LABEL.to_owned(),
        node.spec.network_zone.as_str().to_owned(),
    );
    labels
}

/// The portal's base URL: the public one when the spec names it, else the Service's.
pub fn portal_url(node: &ExchangeNode) -> String {
    node.spec.portal_url.clone().unwrap_or_else(|| {
        format!(
            "http://{}.{}.svc:{PORTAL_PORT}",
            base_name(node),
            node.namespace().unwrap_or_default()
        )
    })
}

/// The hub's configuration file (see the hub's README section for the keys).
pub fn hub_config(node: &ExchangeNode) -> String {
    let mut config = json!({
        "name": node.name_any(),
        "level": node.spec.level.as_str(),
        "network": node.spec.network_zone.as_str(),
        "regionCode": node.spec.region_code,
        "listen": format!("0.0.0.0:{GRPC_PORT}"),
        "metricsListen": format!("0.0.0.0:{METRICS_PORT}"),
        "dataDir": DATA_DIR,
        "authKeyFile": format!("{KEY_DIR}/{}", key::KEY_FIELD),
        "auditAlgorithm": node.spec.audit_algorithm.as_str(),
        "monitorListen": format!("0.0.0.0:{MONITOR_PORT}"),
    });
    if node.spec.open_data_portal {
        config["portalListen"] = json!(format!("0.0.0.0:{PORTAL_PORT}"));
        // Every absolute link the portal serves starts here, never at a request's Host.
        config["portalPublicUrl"] = json!(portal_url(node));
    }
    serde_norway::to_string(&config).unwrap_or_default()
}

/// Everything `node` becomes in its namespace.
pub fn objects(
    node: &ExchangeNode,
    inputs: &Inputs,
    settings: &HubSettings,
) -> Result<Vec<DesiredObject>> {
    let name = base_name(node);
    let meta = || ObjectMeta {
        name: Some(name.clone()),
        namespace: node.namespace(),
        labels: Some(labels(node)),
        owner_references: node.controller_owner_ref(&()).map(|r| vec![r]),
        ..ObjectMeta::default()
    };
    let config = hub_config(node);
    let service_port = |name: &str, port: i32| ServicePort {
        name: Some(name.to_owned()),
        port,
        target_port: Some(IntOrString::String(name.to_owned())),
        ..ServicePort::default()
    };
    let mut service_ports = vec![
        ServicePort {
            app_protocol: Some("kubernetes.io/h2c".to_owned()),
            ..service_port("grpc", GRPC_PORT)
        },
        service_port("metrics", METRICS_PORT),
    ];
    if node.spec.open_data_portal {
        service_ports.push(service_port("portal", PORTAL_PORT));
    }
    service_ports.push(service_port("monitor", MONITOR_PORT));
    let mut objects = vec![
        DesiredObject::from_typed(&ConfigMap {
            metadata: meta(),
            data: Some(BTreeMap::from([(CONFIG_FILE.to_owned(), config.clone())])),
            ..ConfigMap::default()
        })?,
        DesiredObject::from_typed(&ServiceAccount {
            metadata: meta(),
            // The hub never calls the Kubernetes API.
            automount_service_account_token: Some(false),
            ..ServiceAccount::default()
        })?,
        DesiredObject::from_typed(&Service {
            metadata: meta(),
            spec: Some(ServiceSpec {
                selector: Some(selector_labels(node)),
                ports: Some(service_ports),
                ..ServiceSpec::default()
            }),
            ..Service::default()
        })?,
        DesiredObject::from_typed(&StatefulSet {
            metadata: meta(),
            spec: Some(stateful_set_spec(node, settings, &name, &config)),
            ..StatefulSet::default()
        })?,
        DesiredObject::from_typed(&NetworkPolicy {
            metadata: meta(),
            spec: Some(network_policy_spec(node, inputs, settings)),
        })?,
    ];
    if node.spec.replicas > 0 {
        // One writer per node: evicting it is an outage, so a drain waits for an explicit step
        // (scaling the node to 0) instead of taking the exchange down by surprise.
        objects.push(DesiredObject::from_typed(&PodDisruptionBudget {
            metadata: meta(),
            spec: Some(PodDisruptionBudgetSpec {
                min_available: Some(IntOrString::Int(1)),
                selector: Some(match_labels(selector_labels(node))),
                ..PodDisruptionBudgetSpec::default()
            }),
            ..PodDisruptionBudget::default()
        })?);
    }
    Ok(objects)
}

/// A selector of exactly `labels`.
fn match_labels(labels: BTreeMap<String, String>) -> LabelSelector {
    LabelSelector {
        match_labels: Some(labels),
        ..LabelSelector::default()
    }
}

fn stateful_set_spec(
    node: &ExchangeNode,
    settings: &HubSettings,
    name: &str,
    config: &str,
) -> StatefulSetSpec {
    let mut template_labels = labels(node);
    template_labels.retain(|k, _| k != "app.kubernetes.io/managed-by");
    let storage = &node.spec.storage;
    let container_port = |name: &str, port: i32| ContainerPort {
        name: Some(name.to_owned()),
        container_port: port,
        ..ContainerPort::default()
    };
    let mut container_ports = vec![
        container_port("grpc", GRPC_PORT),
        container_port("metrics", METRICS_PORT),
    ];
    if node.spec.open_data_portal {
        container_ports.push(container_port("portal", PORTAL_PORT));
    }
    container_ports.push(container_port("monitor", MONITOR_PORT));
    let mount = |name: &str, path: &str, read_only: Option<bool>| VolumeMount {
        name: name.to_owned(),
        mount_path: path.to_owned(),
        read_only,
        ..VolumeMount::default()
    };
    let quantities = |pairs: &[(&str, &str)]| {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), Quantity((*v).to_owned())))
            .collect::<BTreeMap<_, _>>()
    };
    let container = Container {
        name: "hub".to_owned(),
        image: Some(settings.image.clone()),
        args: Some(vec![
            "serve".to_owned(),
            "--config".to_owned(),
            format!("{CONFIG_DIR}/{CONFIG_FILE}"),
        ]),
        ports: Some(container_ports),
        readiness_probe: Some(Probe {
            grpc: Some(GRPCAction {
                port: GRPC_PORT,
                ..GRPCAction::default()
            }),
            period_seconds: Some(5),
            ..Probe::default()
        }),
        liveness_probe: Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some("/healthz".to_owned()),
                port: IntOrString::String("metrics".to_owned()),
                ..HTTPGetAction::default()
            }),
            period_seconds: Some(10),
            failure_threshold: Some(6),
            ..Probe::default()
        }),
        resources: Some(ResourceRequirements {
            requests: Some(quantities(&[("cpu", "100m"), ("memory", "128Mi")])),
            limits: Some(quantities(&[("memory", "512Mi")])),
            ..ResourceRequirements::default()
        }),
        security_context: Some(SecurityContext {
            allow_privilege_escalation: Some(false),
            read_only_root_filesystem: Some(true),
            capabilities: Some(Capabilities {
                drop: Some(vec!["ALL".to_owned()]),
                ..Capabilities::default()
            }),
            ..SecurityContext::default()
        }),
        volume_mounts: Some(vec![
            mount("config", CONFIG_DIR, Some(true)),
            mount("key", KEY_DIR, Some(true)),
            mount("data", DATA_DIR, None),
            // The root filesystem is read-only; SQLite spills large sorts to /tmp.
            mount("tmp", "/tmp", None),
        ]),
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(name.to_owned()),
        automount_service_account_token: Some(false),
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(HUB_UID),
            run_as_group: Some(HUB_UID),
            fs_group: Some(HUB_UID),
            seccomp_profile: Some(SeccompProfile {
                type_: "RuntimeDefault".to_owned(),
                ..SeccompProfile::default()
            }),
            ..PodSecurityContext::default()
        }),
        termination_grace_period_seconds: Some(30),
        containers: vec![container],
        volumes: Some(vec![
            Volume {
                name: "config".to_owned(),
                config_map: Some(ConfigMapVolumeSource {
                    name: name.to_owned(),
                    ..ConfigMapVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "key".to_owned(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(key::secret_name_of(&node.name_any())),
                    default_mode: Some(0o400),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            },
            Volume {
                name: "tmp".to_owned(),
                empty_dir: Some(EmptyDirVolumeSource {
                    size_limit: Some(Quantity("1Gi".to_owned())),
                    ..EmptyDirVolumeSource::default()
                }),
                ..Volume::default()
            },
        ]),
        ..PodSpec::default()
    };
    StatefulSetSpec {
        replicas: Some(node.spec.replicas),
        service_name: Some(name.to_owned()),
        selector: match_labels(selector_labels(node)),
        // The data is the node's: scaling to 0 or deleting the node keeps the volume.
        persistent_volume_claim_retention_policy: Some(
            StatefulSetPersistentVolumeClaimRetentionPolicy {
                when_deleted: Some("Retain".to_owned()),
                when_scaled: Some("Retain".to_owned()),
            },
        ),
        template: PodTemplateSpec {
            metadata: Some(ObjectMeta {
                labels: Some(template_labels),
                // A new configuration restarts the hub.
                annotations: Some(BTreeMap::from([(
                    "govdc.io/config-sha256".to_owned(),
                    crate::digest::sha256_hex(config.as_bytes()),
                )])),
                ..ObjectMeta::default()
            }),
            spec: Some(pod),
        },
        volume_claim_templates: Some(vec![PersistentVolumeClaim {
            metadata: ObjectMeta {
                name: Some("data".to_owned()),
                ..ObjectMeta::default()
            },
            spec: Some(PersistentVolumeClaimSpec {
                access_modes: Some(vec!["ReadWriteOnce".to_owned()]),
                resources: Some(VolumeResourceRequirements {
                    requests: Some(BTreeMap::from([(
                        "storage".to_owned(),
                        storage.size.clone(),
                    )])),
                    ..VolumeResourceRequirements::default()
                }),
                storage_class_name: storage.storage_class_name.clone(),
                ..PersistentVolumeClaimSpec::default()
            }),
            ..PersistentVolumeClaim::default()
        }]),
        ..StatefulSetSpec::default()
    }
}

/// Who may reach the hub: allowed departments' namespaces of the node's network zone and hubs of
/// the same zone on the gRPC port, the operator on every port, monitoring namespaces on the metrics
/// port, member departments' namespaces (those of the zone, or the allowed ones) on the
/// sharing-monitor port. The hub reaches DNS and its parent only.
fn network_policy_spec(
    node: &ExchangeNode,
    inputs: &Inputs,
    settings: &HubSettings,
) -> NetworkPolicySpec {
    let zone = node.spec.network_zone.as_str();
    let labelled = |pairs: &[(&str, &str)]| {
        match_labels(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        )
    };
    let ports = |ports: &[(i32, &str)]| {
        Some(
            ports
                .iter()
                .map(|(port, protocol)| NetworkPolicyPort {
                    port: Some(IntOrString::Int(*port)),
                    protocol: Some((*protocol).to_owned()),
                    ..NetworkPolicyPort::default()
                })
                .collect::<Vec<_>>(),
        )
    };
    let grpc = || ports(&[(GRPC_PORT, "TCP")]);
    let namespace_named = |name: &str| NetworkPolicyPeer {
        namespace_selector: Some(labelled(&[("kubernetes.io/metadata.name", name)])),
        ..NetworkPolicyPeer::default()
    };
    let namespaces = |selector: LabelSelector| NetworkPolicyPeer {
        namespace_selector: Some(selector),
        ..NetworkPolicyPeer::default()
    };
    let departments_in =
        |selector: &mut LabelSelector, operator: &str, values: Option<&[String]>| {
            selector
                .match_expressions
                .get_or_insert_with(Vec::new)
                .push(LabelSelectorRequirement {
                    key: DEPARTMENT_LABEL.to_owned(),
                    operator: operator.to_owned(),
                    values: values.map(<[String]>::to_vec),
                });
        };
    let allowed = &node.spec.allowed_departments;
    let mut ingress = vec![
        NetworkPolicyIngressRule {
            from: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(LabelSelector::default()),
                pod_selector: Some(labelled(&[
                    ("app.kubernetes.io/name", "govdc-hub"),
                    (NETWORK_ZONE_LABEL, zone),
                ])),
                ..NetworkPolicyPeer::default()
            }]),
            ports: grpc(),
        },
        NetworkPolicyIngressRule {
            from: Some(vec![namespace_named(&settings.operator_namespace)]),
            ports: None,
        },
        NetworkPolicyIngressRule {
            from: Some(vec![namespaces(labelled(&[(
                "govdc.io/monitoring",
                "true",
            )]))]),
            ports: ports(&[(METRICS_PORT, "TCP")]),
        },
    ];
    if node.spec.open_data_portal {
        // The portal is public.
        ingress.push(NetworkPolicyIngressRule {
            from: None,
            ports: ports(&[(PORTAL_PORT, "TCP")]),
        });
    }
    if !allowed.is_empty() {
        // Only the allowed departments' namespaces of the node's own network: an intranet
        // department named on an extranet node (which never joins it) must not reach its port,
        // and an intranet tenant's egress policy lets it reach any pod in the cluster.
        let mut selector = labelled(&[(NETWORK_ZONE_LABEL, zone)]);
        departments_in(&mut selector, "In", Some(allowed));
        ingress.insert(
            0,
            NetworkPolicyIngressRule {
                from: Some(vec![namespaces(selector)]),
                ports: grpc(),
            },
        );
    }
    // The sharing-monitor website is internal: the departments that may be members (tenant
    // namespaces of the node's zone, and of the allowed departments when the spec names them).
    let mut members = labelled(&[(NETWORK_ZONE_LABEL, zone)]);
    departments_in(&mut members, "Exists", None);
    if !allowed.is_empty() {
        departments_in(&mut members, "In", Some(allowed));
    }
    ingress.push(NetworkPolicyIngressRule {
        from: Some(vec![namespaces(members)]),
        ports: ports(&[(MONITOR_PORT, "TCP")]),
    });
    let mut egress = vec![NetworkPolicyEgressRule {
        to: Some(vec![namespace_named("kube-system")]),
        ports: ports(&[(53, "UDP"), (53, "TCP")]),
    }];
    if let Some(parent) = &inputs.parent {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                namespace_selector: Some(match_labels(BTreeMap::from([(
                    "kubernetes.io/metadata.name".to_owned(),
                    parent.namespace().unwrap_or_default(),
                )]))),
                pod_selector: Some(match_labels(selector_labels(parent))),
                ..NetworkPolicyPeer::default()
            }]),
            ports: grpc(),
        });
    }
    if let Some(remote) = node.spec.parent.as_ref().and_then(|p| p.remote.as_ref()) {
        egress.push(NetworkPolicyEgressRule {
            to: Some(vec![NetworkPolicyPeer {
                ip_block: Some(IPBlock {
                    cidr: "0.0.0.0/0".to_owned(),
                    ..IPBlock::default()
                }),
                ..NetworkPolicyPeer::default()
            }]),
            ports: ports(&[(i32::from(remote_port(&remote.endpoint)), "TCP")]),
        });
    }
    NetworkPolicySpec {
        pod_selector: Some(match_labels(selector_labels(node))),
        policy_types: Some(vec!["Ingress".to_owned(), "Egress".to_owned()]),
        ingress: Some(ingress),
        egress: Some(egress),
    }
}

/// The port of an `https://host[:port]` endpoint; 443 when it names none.
fn remote_port(endpoint: &str) -> u16 {
    endpoint
        .trim_end_matches('/')
        .rsplit_once(':')
        .and_then(|(_, port)| port.parse().ok())
        .unwrap_or(443)
}

/// What the operator does on the running hub.
#[derive(Clone)]
pub struct HubPlan {
    /// The node's name in the hub tree (the ExchangeNode's name).
    pub node: String,
    /// Where the operator reaches the hub.
    pub endpoint: String,
    /// The operator's admin token for this node.
    pub admin_token: String,
    /// The parent the hub should forward its catalog to; `None` for a national node.
    pub parent: Option<ParentPlan>,
    /// Why the parent cannot be set yet (its key does not exist, a Secret is missing).
    pub parent_waiting: Option<String>,
    /// The members the hub should have: credit code -> department name.
    pub members: BTreeMap<String, String>,
    /// Allowed departments that cannot join, with the reason.
    pub not_joined: Vec<String>,
}

/// The parent a hub forwards its catalog to.
#[derive(Clone, PartialEq, Eq)]
pub struct ParentPlan {
    /// The parent's gRPC endpoint.
    pub endpoint: String,
    /// The token the parent accepts from this node.
    pub token: String,
    /// The CA of a remote parent's serving certificate (PEM), empty in the cluster.
    pub ca_pem: String,
}

/// The admin token is a credential: debug output shows everything else.
impl std::fmt::Debug for HubPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubPlan")
            .field("node", &self.node)
            .field("endpoint", &self.endpoint)
            .field("admin_token", &REDACTED)
            .field("parent", &self.parent)
            .field("parent_waiting", &self.parent_waiting)
            .field("members", &self.members)
            .field("not_joined", &self.not_joined)
            .finish()
    }
}

/// The token the parent accepts is a credential.
impl std::fmt::Debug for ParentPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ParentPlan")
            .field("endpoint", &self.endpoint)
            .field("token", &REDACTED)
            .field("ca_pem", &self.ca_pem)
            .finish()
    }
}

/// The plan for the running hub of `node`.
pub fn hub_plan(
    node: &ExchangeNode,
    inputs: &Inputs,
    settings: &HubSettings,
    signing_key: &TokenKey,
) -> Result<HubPlan> {
    let name = node.name_any();
    let namespace = node.namespace().unwrap_or_default();
    let token_error = |e: govdc_hub_api::auth::TokenError| Error::HubKey {
        what: format!("ExchangeNode {namespace}/{name}"),
        reason: e.to_string(),
    };
    let admin_token = key::admin_token(signing_key, &name)?;
    let mut parent = None;
    let mut parent_waiting = None;
    if let Some(parent_spec) = &node.spec.parent {
        if let Some(parent_node) = &inputs.parent {
            let parent_name = parent_node.name_any();
            let parent_namespace = parent_node.namespace().unwrap_or_default();
            match inputs
                .parent_key_secret
                .as_ref()
                .map(|s| key::from_secret(s, &parent_name))
                .transpose()?
                .flatten()
            {
                Some(parent_key) => {
                    let token = parent_key
                        .issue(&Claims::new(
                            &name,
                            Role::Node,
                            &parent_name,
                            NODE_TOKEN_TTL,
                        ))
                        .map_err(token_error)?;
                    parent = Some(ParentPlan {
                        endpoint: settings.endpoint(&parent_namespace, &parent_name),
                        token,
                        ca_pem: String::new(),
                    });
                }
                None => {
                    parent_waiting = Some(format!(
                        "the parent {parent_namespace}/{parent_name} has no signing key yet"
                    ))
                }
            }
        } else if let Some(remote) = &parent_spec.remote {
            match (&inputs.remote_ca, &inputs.remote_token) {
                (Some(ca_pem), Some(token)) => {
                    parent = Some(ParentPlan {
                        endpoint: remote.endpoint.trim_end_matches('/').to_owned(),
                        token: token.trim().to_owned(),
                        ca_pem: ca_pem.clone(),
                    })
                }
                _ => {
                    parent_waiting = Some(format!(
                        "Secret {} with key {} (the remote parent's token) does not exist",
                        remote.token_secret_ref.name, remote.token_secret_ref.key
                    ))
                }
            }
        }
    }
    let mut members = BTreeMap::new();
    let mut not_joined = Vec::new();
    for (department, cloud) in &inputs.departments {
        match cloud {
            None => not_joined.push(format!("DepartmentCloud {department} does not exist")),
            Some(cloud) if cloud.spec.network_zone != node.spec.network_zone => {
                not_joined.push(format!(
                    "DepartmentCloud {department} is on the {} and this node on the {}",
                    cloud.spec.network_zone.as_str(),
                    node.spec.network_zone.as_str()
                ))
            }
            Some(cloud) => {
                members.insert(
                    cloud.spec.department.credit_code.clone(),
                    cloud.spec.department.name.clone(),
                );
            }
        }
    }
    Ok(HubPlan {
        node: name.clone(),
        endpoint: settings.endpoint(&namespace, &name),
        admin_token,
        parent,
        parent_waiting,
        members,
        not_joined,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use govdc_crds::DepartmentCloud;

    fn node(spec: serde_json::Value) -> ExchangeNode {
        serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": "zhejiang", "namespace": "hub", "uid": "u-1"}, "spec": spec
        }))
        .expect("fixture deserializes")
    }

    fn provincial() -> ExchangeNode {
        node(json!({
            "level": "provincial", "regionCode": "330000", "networkZone": "extranet",
            "parent": {"nodeRef": {"name": "national"}},
            "allowedDepartments": ["health", "secret-police", "gone"],
        }))
    }

    fn cloud(name: &str, zone: &str, code: &str) -> DepartmentCloud {
        serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
            "metadata": {"name": name},
            "spec": {
                "department": {"name": format!("{name} department"), "creditCode": code, "level": "provincial", "regionCode": "330000"},
                "networkZone": zone, "protectionLevel": 2,
                "environments": [{"name": "prod"}],
                "quota": {"cpu": "1"},
            }
        }))
        .expect("cloud fixture deserializes")
    }

    fn settings() -> HubSettings {
        HubSettings {
            image: "hub:test".into(),
            endpoints: BTreeMap::from([("hub/national".into(), "http://127.0.0.1:1".into())]),
            operator_namespace: "govdc-system".into(),
        }
    }

    fn key() -> TokenKey {
        TokenKey::new(vec![3u8; 32]).expect("key")
    }

    fn find<'a>(objects: &'a [DesiredObject], kind: &str) -> &'a serde_json::Value {
        &objects
            .iter()
            .find(|o| o.resource.kind == kind)
            .unwrap_or_else(|| panic!("no {kind}"))
            .object
            .data
    }

    #[test]
    fn the_hub_runs_from_its_config_with_its_key_and_keeps_its_volume() {
        let objects = objects(&provincial(), &Inputs::default(), &settings()).expect("builds");
        let kinds: Vec<&str> = objects.iter().map(|o| o.resource.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "ConfigMap",
                "ServiceAccount",
                "Service",
                "StatefulSet",
                "NetworkPolicy",
                "PodDisruptionBudget"
            ]
        );
        let config: serde_json::Value = serde_norway::from_str(
            find(&objects, "ConfigMap")["data"][CONFIG_FILE]
                .as_str()
                .expect("config"),
        )
        .expect("config is YAML");
        assert_eq!(config["name"], "zhejiang");
        assert_eq!(config["network"], "extranet");
        assert_eq!(config["authKeyFile"], "/var/run/govdc-hub/key/key");
        let spec = &find(&objects, "StatefulSet")["spec"];
        assert_eq!(spec["replicas"], 1);
        assert_eq!(
            spec["persistentVolumeClaimRetentionPolicy"]["whenDeleted"],
            "Retain"
        );
        assert_eq!(
            spec["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
            "10Gi"
        );
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["containers"][0]["image"], "hub:test");
        assert_eq!(
            pod["volumes"][1]["secret"]["secretName"],
            "zhejiang-hub-key"
        );
        assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    }

    #[test]
    fn a_portal_node_listens_for_the_public_on_its_portal_port() {
        let mut portal = provincial();
        portal.spec.open_data_portal = true;
        let built = objects(&portal, &Inputs::default(), &settings()).expect("builds");
        let config: serde_json::Value = serde_norway::from_str(
            find(&built, "ConfigMap")["data"][CONFIG_FILE]
                .as_str()
                .expect("config"),
        )
        .expect("config is YAML");
        assert_eq!(config["portalListen"], "0.0.0.0:8080");
        assert_eq!(
            config["portalPublicUrl"],
            "http://zhejiang-hub.hub.svc:8080"
        );
        let ports = &find(&built, "Service")["spec"]["ports"];
        assert_eq!(ports[2]["name"], "portal");
        let ingress = find(&built, "NetworkPolicy")["spec"]["ingress"]
            .as_array()
            .expect("ingress");
        assert!(
            ingress
                .iter()
                .any(|rule| rule.get("from").is_none() && rule["ports"][0]["port"] == PORTAL_PORT)
        );
        assert_eq!(portal_url(&portal), "http://zhejiang-hub.hub.svc:8080");
        let plain = objects(&provincial(), &Inputs::default(), &settings()).expect("builds");
        let ingress = find(&plain, "NetworkPolicy")["spec"]["ingress"]
            .as_array()
            .expect("ingress");
        assert!(
            ingress.iter().all(|rule| rule.get("from").is_some()),
            "no open rule without the portal"
        );
    }

    #[test]
    fn a_stopped_node_has_no_disruption_budget() {
        let mut stopped = provincial();
        stopped.spec.replicas = 0;
        let objects = objects(&stopped, &Inputs::default(), &settings()).expect("builds");
        assert!(
            objects
                .iter()
                .all(|o| o.resource.kind != "PodDisruptionBudget")
        );
    }

    #[test]
    fn member_departments_and_same_zone_hubs_reach_the_grpc_port() {
        let objects = objects(&provincial(), &Inputs::default(), &settings()).expect("builds");
        let policy = &find(&objects, "NetworkPolicy")["spec"];
        let departments =
            &policy["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(departments["key"], DEPARTMENT_LABEL);
        assert_eq!(
            departments["values"],
            json!(["health", "secret-police", "gone"])
        );
        // Of the node's zone only: an intranet department named here never reaches the port.
        assert_eq!(
            policy["ingress"][0]["from"][0]["namespaceSelector"]["matchLabels"],
            json!({NETWORK_ZONE_LABEL: "extranet"})
        );
        let hubs = &policy["ingress"][1]["from"][0]["podSelector"]["matchLabels"];
        assert_eq!(hubs[NETWORK_ZONE_LABEL], "extranet");
        assert_eq!(policy["policyTypes"], json!(["Ingress", "Egress"]));
    }

    #[test]
    fn the_monitor_port_is_open_to_member_departments_of_the_zone_and_the_operator_only() {
        let built = objects(&provincial(), &Inputs::default(), &settings()).expect("builds");
        let config: serde_json::Value = serde_norway::from_str(
            find(&built, "ConfigMap")["data"][CONFIG_FILE]
                .as_str()
                .expect("config"),
        )
        .expect("yaml");
        assert_eq!(config["monitorListen"], "0.0.0.0:8081");
        let service = &find(&built, "Service")["spec"]["ports"];
        assert!(
            service
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == "monitor" && p["port"] == MONITOR_PORT)
        );
        let container =
            &find(&built, "StatefulSet")["spec"]["template"]["spec"]["containers"][0]["ports"];
        assert!(
            container
                .as_array()
                .expect("ports")
                .iter()
                .any(|p| p["name"] == "monitor" && p["containerPort"] == MONITOR_PORT)
        );
        let ingress = find(&built, "NetworkPolicy")["spec"]["ingress"]
            .as_array()
            .expect("ingress")
            .clone();
        let to_monitor: Vec<&serde_json::Value> = ingress
            .iter()
            .filter(|rule| {
                rule.get("ports").is_none_or(|ports| {
                    ports
                        .as_array()
                        .is_some_and(|p| p.iter().any(|p| p["port"] == MONITOR_PORT))
                })
            })
            .collect();
        // The operator's rule (every port) and the departments' rule, nothing else.
        assert_eq!(to_monitor.len(), 2, "{to_monitor:#?}");
        assert_eq!(
            to_monitor[0]["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"],
            settings().operator_namespace
        );
        let departments = &to_monitor[1]["from"][0]["namespaceSelector"];
        assert_eq!(departments["matchLabels"][NETWORK_ZONE_LABEL], "extranet");
        assert_eq!(
            departments["matchExpressions"],
            json!([
                {"key": DEPARTMENT_LABEL, "operator": "Exists"},
                {"key": DEPARTMENT_LABEL, "operator": "In", "values": ["health", "secret-police", "gone"]},
            ])
        );
        // No podSelector-less open rule: the monitor is never public, portal or not.
        let mut portal = provincial();
        portal.spec.open_data_portal = true;
        let with_portal = objects(&portal, &Inputs::default(), &settings()).expect("builds");
        for rule in find(&with_portal, "NetworkPolicy")["spec"]["ingress"]
            .as_array()
            .expect("ingress")
        {
            if rule.get("from").is_none() {
                assert_eq!(
                    rule["ports"],
                    json!([{"port": PORTAL_PORT, "protocol": "TCP"}])
                );
            }
        }
    }

    #[test]
    fn the_plan_joins_existing_departments_of_the_zone_and_names_the_others() {
        let mut inputs = Inputs::default();
        inputs.departments.insert(
            "health".into(),
            Some(cloud("health", "extranet", "11330000002482196M")),
        );
        inputs.departments.insert(
            "secret-police".into(),
            Some(cloud("secret-police", "intranet", "11330000002482200Y")),
        );
        inputs.departments.insert("gone".into(), None);
        let plan = hub_plan(&provincial(), &inputs, &settings(), &key()).expect("plans");
        assert_eq!(
            plan.members,
            BTreeMap::from([(
                "11330000002482196M".to_owned(),
                "health department".to_owned()
            )])
        );
        assert_eq!(plan.not_joined.len(), 2);
        assert!(
            plan.not_joined
                .iter()
                .any(|m| m.contains("gone does not exist"))
        );
        assert!(
            plan.not_joined
                .iter()
                .any(|m| m.contains("secret-police is on the intranet"))
        );
    }

    #[test]
    fn the_parent_token_is_signed_with_the_parent_key_for_the_parent() {
        let parent_key = TokenKey::new(vec![b'p'; 32]).expect("key");
        let mut inputs = Inputs {
            parent: Some(node(
                json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
            )),
            ..Inputs::default()
        };
        inputs.parent.as_mut().expect("parent").metadata.name = Some("national".into());
        let plan = hub_plan(&provincial(), &inputs, &settings(), &key()).expect("plans");
        assert!(plan.parent.is_none());
        assert!(
            plan.parent_waiting
                .expect("waits")
                .contains("no signing key")
        );

        inputs.parent_key_secret = Some(k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([(
                key::KEY_FIELD.to_owned(),
                k8s_openapi::ByteString(vec![b'p'; 32]),
            )])),
            ..Default::default()
        });
        let plan = hub_plan(&provincial(), &inputs, &settings(), &key()).expect("plans");
        let parent = plan.parent.expect("parent planned");
        assert_eq!(
            parent.endpoint, "http://127.0.0.1:1",
            "the endpoint override applies"
        );
        let claims = parent_key
            .verify(&parent.token, "national")
            .expect("parent accepts");
        assert_eq!((claims.sub.as_str(), claims.role), ("zhejiang", Role::Node));
        assert!(key().verify(&plan.admin_token, "zhejiang").is_ok());
        assert_eq!(plan.endpoint, "http://zhejiang-hub.hub.svc:50051");
    }

    #[test]
    fn debug_output_of_keys_and_hub_plans_shows_no_credential() {
        let secret = k8s_openapi::api::core::v1::Secret {
            data: Some(BTreeMap::from([(
                key::KEY_FIELD.to_owned(),
                k8s_openapi::ByteString(b"recognisable-key-bytes-0123456789abcdef".to_vec()),
            )])),
            ..Default::default()
        };
        let key = key::from_secret(&secret, "n")
            .expect("key")
            .expect("present");
        let plan = HubPlan {
            node: "zhejiang".into(),
            endpoint: "http://hub".into(),
            admin_token: key::admin_token(&key, "zhejiang").expect("token"),
            parent: Some(ParentPlan {
                endpoint: "https://parent".into(),
                token: "recognisable-parent-token".into(),
                ca_pem: String::new(),
            }),
            parent_waiting: None,
            members: Default::default(),
            not_joined: Vec::new(),
        };
        let printed = format!("{key:?} {plan:?} {plan:#?}");
        assert!(!printed.contains("recognisable"), "{printed}");
        assert!(!printed.contains(&plan.admin_token), "{printed}");
        assert!(printed.contains("<redacted>") && printed.contains("https://parent"));
    }

    #[test]
    fn remote_ports_default_to_443() {
        assert_eq!(remote_port("https://hub.gov.cn"), 443);
        assert_eq!(remote_port("https://hub.gov.cn:8443/"), 8443);
    }
}
