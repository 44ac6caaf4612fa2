//! ExchangeNodes on the real API server with real hub processes: a national node and two
//! provincial nodes federate through the operator, the national catalog shows the provinces'
//! resources, members follow `allowedDepartments`, and a link across networks is refused.
//!
//! No kubelet runs here, so the test plays its part: it runs each hub from the ConfigMap and the
//! key Secret the operator made, as the StatefulSet's pod would, and tells the operator where
//! the hubs listen with `--hub-endpoint`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode};
use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::{
    Field, ListMembersRequest, ListResourcesRequest, RegisterResourceRequest, Resource, ShareType,
};
use govdc_test_support::fixtures::{self, credit_code};
use govdc_test_support::hub::{HubProcess, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, install_crds,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};
use tonic::transport::Channel;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

async fn create_department(env: &TestEnv, name: &str, zone: &str, code: &str) {
    let cloud = fixtures::department_cloud(
        env,
        name,
        json!({
            "department": fixtures::department(&format!("{name} 大数据局"), code),
            "networkZone": zone, "protectionLevel": 2,
            "quota": {"cpu": "1", "memory": "1Gi"},
        }),
    );
    Api::<DepartmentCloud>::all(env.client.clone())
        .create(&PostParams::default(), &cloud)
        .await
        .expect("create DepartmentCloud");
}

fn exchange_node(env: &TestEnv, namespace: &str, name: &str, spec: Value) -> ExchangeNode {
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": name, "namespace": namespace, "labels": {TEST_LABEL: env.prefix}},
        "spec": spec,
    }))
    .expect("ExchangeNode fixture")
}

/// A hub run from the operator's ConfigMap and key Secret, as the StatefulSet's pod would run it.
struct RunningHub {
    process: HubProcess,
    key: TokenKey,
    name: String,
}

impl RunningHub {
    async fn start(env: &TestEnv, namespace: &str, name: &str, port: u16) -> RunningHub {
        // Catalogs are forwarded every second so the test need not wait for the default interval.
        let hub = NodeHub::start(
            &env.client,
            namespace,
            name,
            port,
            |options| options.env("GOVDC_HUB_FEDERATION_INTERVAL", "1s"),
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("hub {name}: {e:#}"));
        RunningHub {
            process: hub.process,
            key: TokenKey::new(hub.key).expect("a strong key"),
            name: name.to_owned(),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.process.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to hub")
    }

    fn token(&self, subject: &str, role: Role) -> BearerToken {
        let token = self
            .key
            .issue(&Claims::new(
                subject,
                role,
                &self.name,
                Duration::from_secs(600),
            ))
            .expect("issue");
        BearerToken::new(&token).expect("token")
    }
}

fn resource(code: &str, name: &str) -> Resource {
    Resource {
        code: code.to_owned(),
        name: name.to_owned(),
        description: format!("{name}, for the federation test"),
        fields: vec![Field {
            name: "licence_no".into(),
            r#type: "string".into(),
            description: "licence number".into(),
            personal: false,
        }],
        share_type: ShareType::Unconditional as i32,
        ..Resource::default()
    }
}

#[tokio::test]
async fn a_national_and_two_provincial_nodes_federate_through_the_operator() {
    let env = TestEnv::new("primary", "exchange-node").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let (dept_national, dept_zhejiang, dept_intranet) = (
        format!("{}-ndrc", env.prefix),
        format!("{}-zj", env.prefix),
        format!("{}-sec", env.prefix),
    );
    let codes = (
        credit_code("11100000MB000001"),
        credit_code("11330000MB000002"),
        credit_code("11330000MB000003"),
    );
    create_department(&env, &dept_national, "extranet", &codes.0).await;
    create_department(&env, &dept_zhejiang, "extranet", &codes.1).await;
    create_department(&env, &dept_intranet, "intranet", &codes.2).await;

    let ports: BTreeMap<&str, u16> = [
        ("national", free_port()),
        ("zhejiang", free_port()),
        ("jiangsu", free_port()),
    ]
    .into();
    let endpoint_flags: Vec<String> = ports
        .iter()
        .map(|(name, port)| {
            format!("--hub-endpoint={hub_namespace}/{name}=http://127.0.0.1:{port}")
        })
        .collect();
    let mut flags: Vec<&str> = endpoint_flags.iter().map(String::as_str).collect();
    flags.extend(["--hub-image", "registry.test/govdc-hub:e2e"]);
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        &flags,
    );

    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    let parent = json!({"nodeRef": {"name": "national"}});
    for node in [
        exchange_node(
            &env,
            &hub_namespace,
            "national",
            json!({
                "level": "national", "regionCode": "100000", "networkZone": "extranet",
                "allowedDepartments": [dept_national],
            }),
        ),
        exchange_node(
            &env,
            &hub_namespace,
            "zhejiang",
            json!({
                "level": "provincial", "regionCode": "330000", "networkZone": "extranet", "parent": parent,
                // The intranet department and a missing one cannot join an extranet node.
                "allowedDepartments": [dept_zhejiang, dept_intranet, "no-such-department"],
            }),
        ),
        exchange_node(
            &env,
            &hub_namespace,
            "jiangsu",
            json!({
                "level": "provincial", "regionCode": "320000", "networkZone": "extranet", "parent": parent,
                "auditAlgorithm": "sm3",
            }),
        ),
        // An intranet node under the extranet national node: refused, nothing deployed.
        exchange_node(
            &env,
            &hub_namespace,
            "classified",
            json!({
                "level": "provincial", "regionCode": "330000", "networkZone": "intranet", "parent": parent,
            }),
        ),
    ] {
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("create ExchangeNode");
    }

    let refused = operator
        .condition(&nodes, "classified", "Ready", "False", WAIT)
        .await;
    assert_eq!(refused.reason, "NetworkZoneMismatch", "{refused:?}");
    assert!(
        refused.message.contains("never federates"),
        "{}",
        refused.message
    );
    let stateful_sets: Api<StatefulSet> = Api::namespaced(env.client.clone(), &hub_namespace);
    assert!(
        stateful_sets
            .get_opt("classified-hub")
            .await
            .expect("GET")
            .is_none(),
        "a refused node must not be deployed"
    );

    // Until its pod runs, a node says it cannot reach its hub.
    let waiting = operator
        .condition(&nodes, "national", "Ready", "False", WAIT)
        .await;
    assert_eq!(waiting.reason, "HubUnreachable", "{waiting:?}");

    let national = RunningHub::start(&env, &hub_namespace, "national", ports["national"]).await;
    let zhejiang = RunningHub::start(&env, &hub_namespace, "zhejiang", ports["zhejiang"]).await;
    let jiangsu = RunningHub::start(&env, &hub_namespace, "jiangsu", ports["jiangsu"]).await;

    for name in ["national", "zhejiang", "jiangsu"] {
        operator
            .condition(&nodes, name, "Ready", "True", WAIT)
            .await;
    }
    let connected = operator
        .condition(&nodes, "zhejiang", "ParentConnected", "True", WAIT)
        .await;
    assert_eq!(connected.reason, "Connected");
    let degraded = operator
        .condition(&nodes, "zhejiang", "Degraded", "True", WAIT)
        .await;
    assert_eq!(degraded.reason, "DepartmentsNotJoined");
    assert!(
        degraded
            .message
            .contains("no-such-department does not exist"),
        "{}",
        degraded.message
    );
    assert!(
        degraded.message.contains("is on the intranet"),
        "{}",
        degraded.message
    );

    // What the StatefulSet's pod would be: config, key, volume, probes, owner references.
    let set = stateful_sets
        .get("zhejiang-hub")
        .await
        .expect("StatefulSet");
    let pod = set
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .clone()
        .expect("pod spec");
    assert_eq!(
        pod.containers[0].image.as_deref(),
        Some("registry.test/govdc-hub:e2e")
    );
    assert!(
        set.metadata
            .owner_references
            .is_some_and(|r| r[0].kind == "ExchangeNode")
    );
    for (kind, present) in [
        (
            "Service",
            Api::<Service>::namespaced(env.client.clone(), &hub_namespace)
                .get_opt("zhejiang-hub")
                .await
                .expect("GET")
                .is_some(),
        ),
        (
            "NetworkPolicy",
            Api::<NetworkPolicy>::namespaced(env.client.clone(), &hub_namespace)
                .get_opt("zhejiang-hub")
                .await
                .expect("GET")
                .is_some(),
        ),
        (
            "PodDisruptionBudget",
            Api::<PodDisruptionBudget>::namespaced(env.client.clone(), &hub_namespace)
                .get_opt("zhejiang-hub")
                .await
                .expect("GET")
                .is_some(),
        ),
    ] {
        assert!(present, "{kind} zhejiang-hub missing");
    }

    // Members follow allowedDepartments: only the extranet department that exists joined.
    let mut members = MembershipClient::with_interceptor(
        zhejiang.channel().await,
        zhejiang.token("operator", Role::Admin),
    );
    let listed: Vec<String> = members
        .list_members(ListMembersRequest {})
        .await
        .expect("ListMembers")
        .into_inner()
        .members
        .into_iter()
        .map(|m| m.credit_code)
        .collect();
    assert_eq!(listed, vec![codes.1.clone()]);

    // A province registers a resource; the national catalog shows it, and the other's.
    let mut zj_catalog = CatalogClient::with_interceptor(
        zhejiang.channel().await,
        zhejiang.token(&codes.1, Role::Member),
    );
    zj_catalog
        .register_resource(RegisterResourceRequest {
            resource: Some(resource(&format!("{}-0001", codes.1), "浙江省企业登记信息")),
        })
        .await
        .expect("a member registers a resource on its node");
    // jiangsu has no members: its operator-issued member token is refused (deny by default).
    let mut js_catalog = CatalogClient::with_interceptor(
        jiangsu.channel().await,
        jiangsu.token(&codes.1, Role::Member),
    );
    let refused = js_catalog
        .register_resource(RegisterResourceRequest {
            resource: Some(resource(&format!("{}-0002", codes.1), "江苏")),
        })
        .await
        .expect_err("a department that is not a member is refused");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");

    let national_catalog = CatalogClient::with_interceptor(
        national.channel().await,
        national.token("operator", Role::Admin),
    );
    let code = format!("{}-0001", codes.1);
    let forwarded = eventually(
        "the national catalog shows zhejiang's resource",
        WAIT,
        || {
            let mut client = national_catalog.clone();
            let code = code.clone();
            async move {
                let listed = client
                    .list_resources(ListResourcesRequest::default())
                    .await
                    .ok()?
                    .into_inner();
                listed.resources.into_iter().find(|r| r.code == code)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert_eq!(forwarded.node, "zhejiang");
    assert_eq!(forwarded.provider, codes.1);

    let size = eventually(
        "national status.catalogSize counts the forwarded resource",
        WAIT,
        || {
            let nodes = nodes.clone();
            async move {
                nodes
                    .get("national")
                    .await
                    .ok()?
                    .status?
                    .catalog_size
                    .filter(|n| *n >= 1)
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(size >= 1);

    // The national node's audit head is kept in its status, outside the node; its chain checks
    // out against it. A province's chain checks out against what its parent anchored.
    let head = eventually("national status.auditHead", WAIT, || {
        let nodes = nodes.clone();
        async move { nodes.get("national").await.ok()?.status?.audit_head }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(head.seq >= 1 && head.hash.len() == 64, "{head:?}");
    use govdc_hub_api::v1::audit_client::AuditClient;
    use govdc_hub_api::v1::{AuditAnchor, AuditHead, VerifyAuditRequest};
    let verified = AuditClient::with_interceptor(
        national.channel().await,
        national.token("operator", Role::Admin),
    )
    .verify_audit(VerifyAuditRequest {
        anchors: vec![AuditAnchor {
            node: "national".into(),
            head: Some(AuditHead {
                seq: head.seq,
                hash: head.hash.clone(),
            }),
            recorded_by: "operator".into(),
            ..AuditAnchor::default()
        }],
    })
    .await
    .expect("VerifyAudit")
    .into_inner();
    assert!(verified.intact, "{verified:?}");
    assert_eq!(verified.anchors[0].outcome, "matches", "{verified:?}");
    let anchored = eventually("zhejiang anchored by its parent", WAIT, || {
        let zhejiang = &zhejiang;
        async move {
            let verified = AuditClient::with_interceptor(
                zhejiang.channel().await,
                zhejiang.token("operator", Role::Admin),
            )
            .verify_audit(VerifyAuditRequest::default())
            .await
            .ok()?
            .into_inner();
            verified
                .anchors
                .iter()
                .any(|c| c.source == "parent" && c.outcome == "matches")
                .then_some(verified)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(anchored.intact, "{anchored:?}");

    // Removing a department from allowedDepartments makes it leave the hub.
    nodes
        .patch(
            "zhejiang",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowedDepartments": []}})),
        )
        .await
        .expect("patch allowedDepartments");
    eventually("the department left zhejiang", WAIT, || {
        let mut members = members.clone();
        async move {
            let listed = members
                .list_members(ListMembersRequest {})
                .await
                .ok()?
                .into_inner();
            listed.members.is_empty().then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let gone = zj_catalog
        .register_resource(RegisterResourceRequest {
            resource: Some(resource(&format!("{}-0003", codes.1), "after leaving")),
        })
        .await
        .expect_err("a department that left is refused at once");
    assert_eq!(gone.code(), tonic::Code::PermissionDenied);

    // The national hub going away shows on its children as a lost parent connection.
    drop(national);
    let lost = operator
        .condition(&nodes, "jiangsu", "Ready", "False", WAIT)
        .await;
    assert_eq!(lost.reason, "ParentDisconnected", "{lost:?}");
    drop(jiangsu);
}

/// Polls the node's Ready condition, for its latest generation, until `accept` takes it; returns
/// it with how long that took.
async fn ready_within(
    nodes: &Api<ExchangeNode>,
    operator: &OperatorProcess,
    name: &str,
    timeout: Duration,
    accept: impl Fn(&Condition) -> bool,
) -> (Condition, Duration) {
    let started = std::time::Instant::now();
    let found = eventually(&format!("{name} Ready"), timeout, || {
        let accept = &accept;
        async move {
            let node = nodes.get(name).await.ok()?;
            let status = node.status?;
            (status.observed_generation == node.metadata.generation).then_some(())?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && accept(c))
        }
    })
    .await;
    match found {
        Ok(condition) => (condition, started.elapsed()),
        Err(error) => {
            let status = nodes
                .get(name)
                .await
                .ok()
                .and_then(|n| serde_json::to_string(&n.status).ok());
            panic!("{error}; status {status:?}\n{}", operator.logs())
        }
    }
}

#[tokio::test]
async fn a_child_created_before_its_parent_federates_as_soon_as_the_parent_appears() {
    let env = TestEnv::new("primary", "xnorder").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let (national_port, child_port) = (free_port(), free_port());
    let flags = [
        format!("--hub-endpoint={hub_namespace}/national=http://127.0.0.1:{national_port}"),
        format!("--hub-endpoint={hub_namespace}/zhejiang=http://127.0.0.1:{child_port}"),
        "--hub-image=registry.test/govdc-hub:e2e".to_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        &flags,
    );
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    nodes
        .create(
            &PostParams::default(),
            &exchange_node(
                &env,
                &hub_namespace,
                "zhejiang",
                json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                       "parent": {"nodeRef": {"name": "national"}}}),
            ),
        )
        .await
        .expect("create the child");
    let orphan = operator
        .condition(&nodes, "zhejiang", "Ready", "False", WAIT)
        .await;
    assert_eq!(orphan.reason, "ParentNotFound", "{orphan:?}");

    // A refused node looks again only every five minutes: what brings it along is the watch on
    // its parent.
    nodes
        .create(
            &PostParams::default(),
            &exchange_node(
                &env,
                &hub_namespace,
                "national",
                json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
            ),
        )
        .await
        .expect("create the parent");
    let (moved_on, took) = ready_within(
        &nodes,
        &operator,
        "zhejiang",
        Duration::from_secs(15),
        |c| c.reason != "ParentNotFound",
    )
    .await;
    eprintln!(
        "the child left ParentNotFound {took:?} after its parent was created: {}",
        moved_on.reason
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");

    // With both hubs running, the child federates with the parent it once lacked.
    let _national = RunningHub::start(&env, &hub_namespace, "national", national_port).await;
    let _child = RunningHub::start(&env, &hub_namespace, "zhejiang", child_port).await;
    operator
        .condition(&nodes, "zhejiang", "Ready", "True", WAIT)
        .await;
    eventually("the child connected to its parent", WAIT, || {
        let nodes = nodes.clone();
        async move {
            let status = nodes.get("zhejiang").await.ok()?.status?;
            (status.parent_connection.as_deref() == Some("Connected")).then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
}

#[tokio::test]
async fn a_remote_parents_ca_and_token_are_seen_as_soon_as_their_secrets_appear() {
    let env = TestEnv::new("primary", "xnremote").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let flags = [
        format!(
            "--hub-endpoint={hub_namespace}/zhejiang=http://127.0.0.1:{}",
            free_port()
        ),
        "--hub-image=registry.test/govdc-hub:e2e".to_owned(),
    ];
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        &flags,
    );
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    nodes
        .create(
            &PostParams::default(),
            &exchange_node(
                &env,
                &hub_namespace,
                "zhejiang",
                json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                "parent": {"remote": {
                    "endpoint": "https://national.hub.example:8443",
                    "caSecretRef": {"name": "national-ca", "key": "ca.crt"},
                    "tokenSecretRef": {"name": "national-token", "key": "token"},
                }}}),
            ),
        )
        .await
        .expect("create the node");
    let missing = operator
        .condition(&nodes, "zhejiang", "Ready", "False", WAIT)
        .await;
    assert_eq!(missing.reason, "CaSecretNotFound", "{missing:?}");

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &hub_namespace);
    let secret = |name: &str, key: &str, value: &str| -> Secret {
        serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
            "stringData": {key: value},
        }))
        .expect("Secret fixture")
    };
    secrets
        .create(
            &PostParams::default(),
            &secret(
                "national-ca",
                "ca.crt",
                "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
            ),
        )
        .await
        .expect("create the CA Secret");
    let (next, took) = ready_within(
        &nodes,
        &operator,
        "zhejiang",
        Duration::from_secs(15),
        |c| c.reason != "CaSecretNotFound",
    )
    .await;
    assert_eq!(next.reason, "TokenSecretNotFound", "{next:?}");
    eprintln!("the CA Secret was seen after {took:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");

    secrets
        .create(
            &PostParams::default(),
            &secret("national-token", "token", "not-a-real-token"),
        )
        .await
        .expect("create the token Secret");
    let (moved_on, took) = ready_within(
        &nodes,
        &operator,
        "zhejiang",
        Duration::from_secs(15),
        |c| c.reason != "TokenSecretNotFound",
    )
    .await;
    eprintln!(
        "the token Secret was seen after {took:?}: {}",
        moved_on.reason
    );
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// What the test's admission policy says when it refuses a PodDisruptionBudget.
const PDB_REFUSED: &str = "disruption budgets are refused here by the test's policy";

#[tokio::test]
async fn a_refused_apply_shows_in_the_nodes_status_in_the_api_servers_words() {
    let env = TestEnv::new("primary", "xnrefused").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let policy = govdc_test_support::RefusingPolicy::install(
        &env,
        "no-pdb",
        "policy",
        "poddisruptionbudgets",
        json!({"matchLabels": {TEST_LABEL: env.prefix}}),
        PDB_REFUSED,
    );
    // The policy takes effect once the API server has loaded it: probe with a dry run.
    let budgets: Api<PodDisruptionBudget> = Api::namespaced(env.client.clone(), &hub_namespace);
    eventually("the policy to refuse disruption budgets", WAIT, || {
        let budgets = budgets.clone();
        async move {
            let budget: PodDisruptionBudget = serde_json::from_value(
                json!({"metadata": {"name": "probe"}, "spec": {"maxUnavailable": 1}}),
            )
            .ok()?;
            let dry_run = PostParams {
                dry_run: true,
                ..Default::default()
            };
            budgets
                .create(&dry_run, &budget)
                .await
                .is_err()
                .then_some(())
        }
    })
    .await
    .expect("policy active");

    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        &["--hub-image", "registry.test/govdc-hub:e2e"],
    );
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    nodes
        .create(
            &PostParams::default(),
            &exchange_node(
                &env,
                &hub_namespace,
                "national",
                // A running node (one replica by default) gets a PodDisruptionBudget.
                json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
            ),
        )
        .await
        .expect("create the node");
    let ready = operator
        .condition(&nodes, "national", "Ready", "False", WAIT)
        .await;
    eprintln!("Ready=False {}: {}", ready.reason, ready.message);
    assert_eq!(ready.reason, "ApplyFailed", "{ready:?}");
    assert!(
        ready.message.starts_with("applying PodDisruptionBudget ")
            && ready.message.ends_with(&format!(
                "is forbidden: ValidatingAdmissionPolicy '{0}' with binding '{0}' denied request: {1}",
                policy.name,
                PDB_REFUSED
            )),
        "{}",
        ready.message
    );
    for dump in ["Status {", "ApiError", "Some(", "code:", "reason:"] {
        assert!(!ready.message.contains(dump), "{dump} in {}", ready.message);
    }
    let degraded = operator
        .condition(&nodes, "national", "Degraded", "True", WAIT)
        .await;
    assert_eq!(degraded.message, ready.message);
}

/// A Service of the namespace's own where the node's hub Service would go (made by hand, no
/// govdc mark): the node is refused with `OwnershipConflict` naming it, and nothing is written:
/// the Service keeps its spec and labels, and no StatefulSet appears. Once it is moved away, the
/// node proceeds.
#[tokio::test]
async fn an_unmarked_object_where_the_hub_would_go_is_a_conflict_not_a_takeover() {
    let env = TestEnv::new("primary", "xnforeign").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let services: Api<Service> = Api::namespaced(env.client.clone(), &hub_namespace);
    let theirs: Service = serde_json::from_value(json!({
        "metadata": {"name": "national-hub", "labels": {TEST_LABEL: env.prefix, "app": "theirs"}},
        "spec": {"ports": [{"name": "web", "port": 8080}], "selector": {"app": "theirs"}},
    }))
    .expect("fixture");
    services
        .create(&PostParams::default(), &theirs)
        .await
        .expect("their Service");

    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        &["--hub-image", "registry.test/govdc-hub:e2e"],
    );
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    nodes
        .create(
            &PostParams::default(),
            &exchange_node(
                &env,
                &hub_namespace,
                "national",
                json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
            ),
        )
        .await
        .expect("create the node");
    let ready = operator
        .condition(&nodes, "national", "Ready", "False", WAIT)
        .await;
    assert_eq!(ready.reason, "OwnershipConflict", "{ready:?}");
    assert!(
        ready
            .message
            .contains(&format!("Service {hub_namespace}/national-hub")),
        "{}",
        ready.message
    );
    let service = services.get("national-hub").await.expect("their Service");
    let labels = service.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("app").map(String::as_str), Some("theirs"));
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "{labels:?}"
    );
    let ports: Vec<i32> = service
        .spec
        .and_then(|s| s.ports)
        .unwrap_or_default()
        .iter()
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [8080], "their Service was rewritten");
    let statefulsets: Api<StatefulSet> = Api::namespaced(env.client.clone(), &hub_namespace);
    assert!(
        statefulsets
            .get_opt("national-hub")
            .await
            .expect("GET")
            .is_none(),
        "written beside a conflict"
    );

    services
        .delete("national-hub", &Default::default())
        .await
        .expect("move theirs away");
    eventually("the node's own hub Service", WAIT, || {
        let services = services.clone();
        async move {
            let service = services.get_opt("national-hub").await.ok()??;
            service
                .metadata
                .labels?
                .get("app.kubernetes.io/managed-by")
                .filter(|v| *v == "govdc-operator")
                .map(|_| ())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
}
