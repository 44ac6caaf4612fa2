//! Crash anywhere: while DepartmentClouds converge (and some are deleted), beside two
//! ExchangeNodes (a national portal node and a provincial child, their hubs run by the test as
//! their pods would run them), OpenDatasets published to the portal and a continuous
//! BackupPolicy copying some tenants to the `dr` cluster, the operator is SIGKILLed at seeded
//! random moments and started again; the state it leaves is then compared, object by object,
//! with what an undisturbed operator makes of the same specs: the same objects (spec, labels,
//! owner references, finalizers; on the standby too), the same settled conditions, each dataset
//! published once, nothing orphaned, nothing missing, no finalizer left behind.
//!
//! The short form runs in `cargo test` (one run, 200 tenants, three kills). The full form:
//! `GOVDC_CRASH_RUNS=20 cargo test -p govdc-operator --test crash -- --nocapture`; the seed of each
//! run is printed, and `GOVDC_CRASH_SEED=<seed>` repeats one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use govdc_crds::{BackupPolicy, DepartmentCloud, ExchangeNode, OpenDataset};
use govdc_operator::controllers::backup_policy::clean::{POLICY_LABEL, SOURCE_HASH_ANNOTATION};
use govdc_test_support::fixtures;
use govdc_test_support::hub::{HubProcess, NodeHub};
use govdc_test_support::seeded::{self, Seeded};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, install_crds,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{
    ConfigMap, LimitRange, Namespace, ResourceQuota, Secret, Service, ServiceAccount,
};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const TENANTS: usize = 200;
/// Tenants deleted while the kills go on: every fifth, alternately retained and deleted.
const DELETED_EVERY: usize = 5;
const SETTLE: Duration = Duration::from_secs(300);
/// The exchange nodes of each run: a national portal node and a provincial node under it.
const NODES: [&str; 2] = ["national", "zhejiang"];
/// Tenants with an OpenDataset on the portal (extranet ones that stay).
const DATASET_TENANTS: [usize; 3] = [1, 2, 7];
/// The label of the tenants the run's BackupPolicy protects.
const PROTECTED_LABEL: &str = "crash.govdc.io/protected";

/// Whether the BackupPolicy protects tenant `i`: a few that stay, the dataset tenants among them.
fn protected(i: usize) -> bool {
    i < 20 && !i.is_multiple_of(DELETED_EVERY) && !i.is_multiple_of(3)
}

/// One run's place: its cluster view, lease, hub namespace and the hubs' ports (the operator is
/// told them with `--hub-endpoint`, the same on every restart).
struct Run {
    env: TestEnv,
    standby: TestEnv,
    lease: String,
    hubs: String,
    ports: Vec<u16>,
}

impl Run {
    async fn new(test: &str) -> Run {
        let env = TestEnv::new("primary", test).await;
        let standby = TestEnv::new("dr", test).await;
        install_crds(&standby.client)
            .await
            .expect("CRDs on the standby");
        let lease = env.namespace("lease").await;
        let hubs = env.namespace("hub").await;
        Run {
            env,
            standby,
            lease,
            hubs,
            ports: NODES.iter().map(|_| free_port()).collect(),
        }
    }

    fn flags(&self) -> Vec<String> {
        let mut flags: Vec<String> = NODES
            .iter()
            .zip(&self.ports)
            .map(|(name, port)| {
                format!(
                    "--hub-endpoint={}/{name}=http://127.0.0.1:{port}",
                    self.hubs
                )
            })
            .collect();
        flags.extend(
            [
                // A short lease, so that a restarted operator takes over from its killed self soon.
                "--lease-duration-seconds",
                "3",
                "--hub-image",
                "registry.test/govdc-hub:crash",
                "--dataset-poll-seconds",
                "1",
            ]
            .map(str::to_owned),
        );
        flags
    }
}

/// Tenant `i`'s DepartmentCloud: a spread of shapes (one or two environments, tenant or
/// environment quotas, container defaults, both deletion policies).
fn tenant(env: &TestEnv, i: usize) -> DepartmentCloud {
    let code = fixtures::credit_code(&format!("11330000MB{i:06}"));
    let environments = if i.is_multiple_of(2) {
        json!([{"name": "prod", "quota": {"requests.cpu": "2"}}, {"name": "test"}])
    } else {
        json!([{"name": "prod"}])
    };
    let mut spec = json!({
        "department": fixtures::department("浙江省大数据发展管理局", &code),
        "networkZone": if i.is_multiple_of(3) { "intranet" } else { "extranet" },
        "protectionLevel": 2 + (i % 3),
        "environments": environments,
        "quota": {"requests.cpu": "4", "pods": "20"},
        "admins": [{"kind": "User", "name": format!("admin-{i}")}],
        "deletionPolicy": if (i / DELETED_EVERY).is_multiple_of(2) { "Delete" } else { "Retain" },
    });
    if i.is_multiple_of(4) {
        spec["containerDefaults"] =
            json!({"defaultRequest": {"cpu": "100m"}, "defaultLimit": {"cpu": "500m"}});
    }
    let mut cloud = fixtures::department_cloud(env, &format!("{}-t{i:03}", env.prefix), spec);
    if protected(i) {
        cloud
            .labels_mut()
            .insert(PROTECTED_LABEL.into(), "yes".into());
    }
    cloud
}

fn operator(run: &Run) -> OperatorProcess {
    let flags = run.flags();
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    OperatorProcess::start(
        Path::new(OPERATOR),
        &run.env,
        &run.lease,
        "operator",
        &flags,
    )
}

/// The ExchangeNodes, and the hubs run from what the operator made for them (as their pods
/// would run them); the hubs are returned to live as long as the run.
async fn exchange(run: &Run) -> Vec<HubProcess> {
    let env = &run.env;
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &run.hubs);
    for (name, spec) in [
        (
            NODES[0],
            json!({"level": "national", "regionCode": "100000", "networkZone": "extranet", "openDataPortal": true}),
        ),
        (
            NODES[1],
            json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet", "parent": {"nodeRef": {"name": NODES[0]}}}),
        ),
    ] {
        let node: ExchangeNode = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": name, "namespace": run.hubs, "labels": {TEST_LABEL: env.prefix}},
            "spec": spec,
        }))
        .expect("ExchangeNode fixture");
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("create ExchangeNode");
    }
    let mut hubs = Vec::new();
    for (index, (name, port)) in NODES.iter().zip(&run.ports).enumerate() {
        let portal = index == 0;
        let hub = NodeHub::start(
            &env.client,
            &run.hubs,
            name,
            *port,
            |options| {
                let options = options.env("GOVDC_HUB_FEDERATION_INTERVAL", "1s");
                if portal { options.portal() } else { options }
            },
            SETTLE,
        )
        .await
        .unwrap_or_else(|e| panic!("hub {name}: {e:#}"));
        hubs.push(hub.process);
    }
    hubs
}

/// The BackupPolicy copying the protected tenants to the standby, and its kubeconfig Secret.
async fn backup_policy(run: &Run) {
    let env = &run.env;
    let system = env.namespace("sys").await;
    let kubeconfig = std::fs::read_to_string(&run.standby.kubeconfig).expect("standby kubeconfig");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "standby-kubeconfig", "labels": {TEST_LABEL: env.prefix}},
        "stringData": {"kubeconfig": kubeconfig},
    }))
    .expect("Secret fixture");
    Api::<Secret>::namespaced(env.client.clone(), &system)
        .create(&PostParams::default(), &secret)
        .await
        .expect("kubeconfig Secret");
    let policy: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": format!("{}-bp", env.prefix), "labels": {TEST_LABEL: env.prefix}},
        "spec": {
            "departmentSelector": {"matchLabels": {TEST_LABEL: env.prefix, PROTECTED_LABEL: "yes"}},
            "target": {"kubeconfigSecretRef": {"namespace": system, "name": "standby-kubeconfig", "key": "kubeconfig"}},
            "namespaceMapping": {"suffix": "-dr"},
            "mode": "continuous",
            "recoveryPointObjective": "5s",
        }
    }))
    .expect("BackupPolicy fixture");
    Api::<BackupPolicy>::all(env.client.clone())
        .create(&PostParams::default(), &policy)
        .await
        .expect("create BackupPolicy");
}

/// An OpenDataset in tenant `i`'s namespace, from a ConfigMap of the test's, on the portal.
async fn dataset(run: &Run, i: usize) {
    let env = &run.env;
    let namespace = format!("{}-t{i:03}-prod", env.prefix);
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    eventually(&format!("namespace {namespace}"), SETTLE, || {
        let (namespaces, namespace) = (namespaces.clone(), namespace.clone());
        async move { namespaces.get_opt(&namespace).await.ok()? }
    })
    .await
    .expect("the dataset's namespace");
    let rows: String = (0..20)
        .map(|r| format!("3301{:02},{}\n", r % 5, r * 7 + i))
        .collect();
    let source: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "visits", "labels": {TEST_LABEL: env.prefix}},
        "data": {"visits.csv": format!("district,visits\n{rows}")},
    }))
    .expect("ConfigMap fixture");
    Api::<ConfigMap>::namespaced(env.client.clone(), &namespace)
        .create(&PostParams::default(), &source)
        .await
        .expect("the dataset's source");
    let dataset: OpenDataset = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
        "metadata": {"name": "visits", "namespace": namespace, "labels": {TEST_LABEL: env.prefix}},
        "spec": {
            "title": format!("区县就诊统计 {i}"),
            "description": "Visits per district",
            "category": "health",
            "openness": "unconditional",
            "source": {"configMapRef": {"name": "visits", "key": "visits.csv"}},
            "portal": {"name": NODES[0], "namespace": run.hubs},
            "fields": [
                {"name": "district", "action": "keep"},
                {"name": "visits", "action": "keep"},
            ],
        }
    }))
    .expect("OpenDataset fixture");
    Api::<OpenDataset>::namespaced(env.client.clone(), &namespace)
        .create(&PostParams::default(), &dataset)
        .await
        .expect("create OpenDataset");
}

/// Creates the exchange nodes and the BackupPolicy, every tenant and the datasets, then deletes
/// every fifth tenant, while `disturb` runs beside: the same workload for the undisturbed and the
/// crashing run. Returns the running hubs.
async fn workload(run: &Run) -> Vec<HubProcess> {
    let env = &run.env;
    backup_policy(run).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let tenants = async {
        for i in 0..TENANTS {
            clouds
                .create(&PostParams::default(), &tenant(env, i))
                .await
                .expect("create DepartmentCloud");
        }
        for i in DATASET_TENANTS {
            dataset(run, i).await;
        }
    };
    let (hubs, ()) = tokio::join!(exchange(run), tenants);
    // Deleted once they are provisioned, so that cleanup, not creation, is interrupted.
    for i in (0..TENANTS).step_by(DELETED_EVERY) {
        let name = format!("{}-t{i:03}", env.prefix);
        govdc_test_support::condition(&clouds, &name, "Ready", "True", SETTLE)
            .await
            .expect("provisioned before its deletion");
        clouds
            .delete(&name, &DeleteParams::default())
            .await
            .expect("delete DepartmentCloud");
    }
    hubs
}

/// Waits until every remaining tenant is Ready for its generation and every deleted one gone,
/// the nodes and datasets Ready, and the BackupPolicy Ready with the standby holding the same
/// number of copies for a while.
async fn settled(run: &Run, operator: &OperatorProcess) {
    let env = &run.env;
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &run.hubs);
    for name in NODES {
        govdc_test_support::condition(&nodes, name, "Ready", "True", SETTLE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&operator.logs())));
    }
    for i in DATASET_TENANTS {
        let datasets: Api<OpenDataset> =
            Api::namespaced(env.client.clone(), &format!("{}-t{i:03}-prod", env.prefix));
        govdc_test_support::condition(&datasets, "visits", "Ready", "True", SETTLE)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", tail(&operator.logs())));
    }
    let policies: Api<BackupPolicy> = Api::all(env.client.clone());
    let policy = format!("{}-bp", env.prefix);
    let deadline = Instant::now() + SETTLE;
    let mut steady = None;
    loop {
        if let Some(status) = policies.get(&policy).await.ok().and_then(|p| p.status) {
            let ready = status
                .conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let copies = (status.objects_replicated, status.pending_deletions);
            match steady {
                Some((before, since)) if ready && before == copies => {
                    if Instant::elapsed(&since) >= Duration::from_secs(5) {
                        break;
                    }
                }
                _ => steady = ready.then(|| (copies, Instant::now())),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the BackupPolicy did not settle in {SETTLE:?}\n{}",
            tail(&operator.logs())
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let selector = env.selector();
    let remaining = TENANTS - TENANTS.div_ceil(DELETED_EVERY);
    eventually("the tenants settled", SETTLE, || {
        let clouds = clouds.clone();
        let selector = selector.clone();
        async move {
            let list = clouds
                .list(&ListParams::default().labels(&selector))
                .await
                .ok()?;
            let ready = list
                .items
                .iter()
                .filter(|c| {
                    c.status.as_ref().is_some_and(|s| {
                        s.observed_generation == c.metadata.generation
                            && s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                    })
                })
                .count();
            (list.items.len() == remaining && ready == remaining).then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    // The Delete policy's namespaces empty and go a moment after their tenant.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let prefix = format!("{}-", env.prefix);
    eventually("the deleted tenants' namespaces gone", SETTLE, || {
        let (namespaces, prefix) = (namespaces.clone(), prefix.clone());
        async move {
            let list = namespaces
                .list_metadata(&ListParams::default())
                .await
                .ok()?;
            let terminating: Vec<String> = list
                .items
                .iter()
                .filter(|n| {
                    n.name_any().starts_with(&prefix) && n.metadata.deletion_timestamp.is_some()
                })
                .map(ResourceExt::name_any)
                .collect();
            terminating.is_empty().then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// Everything govdc made for the run's tenants, normalized for comparison across runs: the
/// run's prefix replaced, server-set fields (uid, resourceVersion, timestamps, managed fields,
/// status other than conditions' type/status/reason) left out.
async fn snapshot(run: &Run) -> BTreeMap<String, Value> {
    let env = &run.env;
    let resources = [
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
        // What the exchange nodes become.
        ApiResource::erase::<StatefulSet>(&()),
        ApiResource::erase::<Service>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<PodDisruptionBudget>(&()),
    ];
    let mut objects = BTreeMap::new();
    let prefix = format!("{}-", env.prefix);
    let normalize = |text: &str| text.replace(&env.prefix, "PREFIX");
    for resource in &resources {
        let api: Api<DynamicObject> = Api::all_with(env.client.clone(), resource);
        // Released namespaces keep no govdc labels; they are found by name below.
        for object in api.list(&ListParams::default()).await.expect("list").items {
            let mine = object.name_any().starts_with(&prefix)
                || object.namespace().is_some_and(|n| n.starts_with(&prefix))
                || object.name_any().contains(&format!(":{prefix}"));
            if !mine
                || object.labels().get(TEST_LABEL).is_some()
                || made_by_kubernetes(&resource.kind, &object)
            {
                continue;
            }
            let key = normalize(&format!(
                "{} {}/{}",
                resource.kind,
                object.namespace().unwrap_or_default(),
                object.name_any()
            ));
            let mut value = serde_json::to_value(&object).expect("JSON");
            strip(&mut value);
            strip_kind(&resource.kind, &mut value);
            objects.insert(
                key,
                serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
            );
        }
    }
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    for cloud in clouds
        .list(&ListParams::default().labels(&env.selector()))
        .await
        .expect("list")
        .items
    {
        let conditions: Vec<Value> = cloud
            .status
            .iter()
            .flat_map(|s| s.conditions.iter())
            .map(|c| json!([c.type_, c.status, c.reason]))
            .collect();
        let value = json!({
            "finalizers": cloud.finalizers(),
            "conditions": conditions,
            "namespaceCount": cloud.status.as_ref().and_then(|s| s.namespace_count),
        });
        objects.insert(
            normalize(&format!("DepartmentCloud {}", cloud.name_any())),
            serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
        );
    }
    let conditions = |status: &Value| -> Vec<Value> {
        status["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| json!([c["type"], c["status"], c["reason"]]))
            .collect()
    };
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &run.hubs);
    for node in nodes
        .list(&ListParams::default())
        .await
        .expect("list")
        .items
    {
        let status = serde_json::to_value(&node.status).expect("JSON");
        let value = json!({"finalizers": node.finalizers(), "conditions": conditions(&status)});
        objects.insert(
            format!("ExchangeNode {}", node.name_any()),
            serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
        );
    }
    let datasets: Api<OpenDataset> = Api::all(env.client.clone());
    for dataset in datasets
        .list(&ListParams::default().labels(&env.selector()))
        .await
        .expect("list")
        .items
    {
        let status = serde_json::to_value(&dataset.status).expect("JSON");
        // Published once: a second version would be a duplicate publication.
        let value = json!({
            "finalizers": dataset.finalizers(),
            "conditions": conditions(&status),
            "publishedVersion": status["publishedVersion"],
            "recordCount": status["recordCount"],
            "checksum": status["checksum"],
        });
        objects.insert(
            normalize(&format!(
                "OpenDataset {}/{}",
                dataset.namespace().unwrap_or_default(),
                dataset.name_any()
            )),
            serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
        );
    }
    let policies: Api<BackupPolicy> = Api::all(env.client.clone());
    for policy in policies
        .list(&ListParams::default().labels(&env.selector()))
        .await
        .expect("list")
        .items
    {
        let status = serde_json::to_value(&policy.status).expect("JSON");
        let value = json!({
            "finalizers": policy.finalizers(),
            "conditions": conditions(&status),
            "objectsReplicated": status["objectsReplicated"],
            "pendingDeletions": status["pendingDeletions"],
            "protectedNamespaces": status["protectedNamespaces"],
        });
        objects.insert(
            normalize(&format!("BackupPolicy {}", policy.name_any())),
            serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
        );
    }
    // The standby's copies of the protected tenants.
    let standby_resources = [
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<Role>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ServiceAccount>(&()),
        ApiResource::erase::<ConfigMap>(&()),
        ApiResource::erase::<Secret>(&()),
        ApiResource::erase::<OpenDataset>(&()),
    ];
    for resource in &standby_resources {
        let api: Api<DynamicObject> = Api::all_with(run.standby.client.clone(), resource);
        for object in api
            .list(&ListParams::default().labels(POLICY_LABEL))
            .await
            .expect("list the standby")
            .items
        {
            let mine = object.name_any().starts_with(&prefix)
                || object.namespace().is_some_and(|n| n.starts_with(&prefix));
            if !mine {
                continue;
            }
            let key = normalize(&format!(
                "standby {} {}/{}",
                resource.kind,
                object.namespace().unwrap_or_default(),
                object.name_any()
            ));
            let mut value = serde_json::to_value(&object).expect("JSON");
            strip(&mut value);
            strip_kind(&resource.kind, &mut value);
            if let Some(Value::Object(annotations)) = value.pointer_mut("/metadata/annotations") {
                // A hash of the copy, over names that hold the run's prefix.
                annotations.remove(SOURCE_HASH_ANNOTATION);
            }
            objects.insert(
                key,
                serde_json::from_str(&normalize(&value.to_string())).expect("JSON"),
            );
        }
    }
    objects
}

/// What Kubernetes itself puts in every namespace: the root CA's ConfigMap and the `default`
/// ServiceAccount.
fn made_by_kubernetes(kind: &str, object: &DynamicObject) -> bool {
    matches!(
        (kind, object.name_any().as_str()),
        ("ConfigMap", "kube-root-ca.crt") | ("ServiceAccount", "default")
    )
}

/// Leaves out what differs between two correct runs of a kind: a Secret's data (a hub's signing
/// key and tokens are drawn at random, each run has its own).
fn strip_kind(kind: &str, value: &mut Value) {
    if kind == "Secret"
        && let Some(object) = value.as_object_mut()
    {
        object.remove("data");
    }
}

/// Leaves out what the API server sets and what differs between two correct runs.
fn strip(value: &mut Value) {
    if let Some(metadata) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        // A digest of what was applied is computed over names that hold the run's prefix.
        if let Some(Value::Object(annotations)) = metadata.get_mut("annotations") {
            annotations.remove("govdc.io/applied-digest");
            if annotations.is_empty() {
                metadata.remove("annotations");
            }
        }
        for field in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "deletionTimestamp",
        ] {
            metadata.remove(field);
        }
        if let Some(Value::Array(references)) = metadata.get_mut("ownerReferences") {
            for reference in references {
                if let Some(reference) = reference.as_object_mut() {
                    reference.remove("uid");
                }
            }
        }
    }
    if let Some(object) = value.as_object_mut() {
        // Quota usage and namespace phase are the API server's; the spec is what was made.
        object.remove("status");
        // A Service's cluster IPs are the API server's pick.
        if let Some(Value::Object(spec)) = object.get_mut("spec") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
    }
    // A hub's pod template carries a digest of its configuration, over names that hold the run's
    // prefix; the configuration itself (its ConfigMap) is compared.
    if let Some(Value::Object(annotations)) =
        value.pointer_mut("/spec/template/metadata/annotations")
    {
        annotations.remove("govdc.io/config-sha256");
    }
}

/// SIGKILLs the operator `kills` times at seeded moments, starting it again each time, while
/// the workload runs; returns the operator left running and the hubs.
async fn crashing(run: &Run, seed: u64, kills: u64) -> (OperatorProcess, Vec<HubProcess>) {
    let mut random = Seeded::new(seed);
    let mut running = operator(run);
    let work = workload(run);
    tokio::pin!(work);
    let mut hubs = None;
    for kill in 0..kills {
        let wait = random.millis(500..6000);
        tokio::select! {
            done = &mut work, if hubs.is_none() => { hubs = Some(done); }
            () = tokio::time::sleep(wait) => {}
        }
        // SIGKILL (dropping the process kills it), then a new process at once.
        let pid = running.pid();
        drop(running);
        eprintln!(
            "kill {} of {kills}: operator {pid} killed after {wait:?}",
            kill + 1
        );
        running = operator(run);
    }
    let hubs = match hubs {
        Some(hubs) => hubs,
        None => work.await,
    };
    (running, hubs)
}

#[tokio::test]
async fn the_state_after_random_kills_equals_an_undisturbed_run() {
    let runs = seeded::env_number("GOVDC_CRASH_RUNS", 1);
    let kills = seeded::env_number("GOVDC_CRASH_KILLS", 3);
    let first_seed = seeded::seed("GOVDC_CRASH_SEED");

    let calm = Run::new("crashcalm").await;
    install_crds(&calm.env.client).await.expect("install CRDs");
    let started = Instant::now();
    let undisturbed = operator(&calm);
    let calm_hubs = workload(&calm).await;
    settled(&calm, &undisturbed).await;
    let expected = snapshot(&calm).await;
    eprintln!(
        "undisturbed: {} objects in {:?}",
        expected.len(),
        started.elapsed()
    );
    assert!(
        expected.len() > TENANTS * 5,
        "the snapshot found too little to compare: {}",
        expected.len()
    );
    drop(undisturbed);
    drop(calm_hubs);

    let mut differences_total = 0;
    for run in 0..runs {
        let seed = first_seed.wrapping_add(run);
        eprintln!(
            "run {} of {runs}: seed {seed} (GOVDC_CRASH_SEED={seed})",
            run + 1
        );
        let run_env = Run::new("crashkill").await;
        let started = Instant::now();
        let (survivor, hubs) = crashing(&run_env, seed, kills).await;
        settled(&run_env, &survivor).await;
        let got = snapshot(&run_env).await;
        eprintln!("run {}: settled in {:?}", run + 1, started.elapsed());
        let mut differences = Vec::new();
        for (key, want) in &expected {
            match got.get(key) {
                None => differences.push(format!("missing: {key}")),
                Some(have) if have != want => {
                    differences.push(format!("differs: {key}\n  want {want}\n  have {have}"))
                }
                Some(_) => {}
            }
        }
        for key in got.keys().filter(|k| !expected.contains_key(*k)) {
            differences.push(format!("extra (orphan or duplicate): {key}"));
        }
        differences_total += differences.len();
        assert!(
            differences.is_empty(),
            "seed {seed}: {} difference(s) from the undisturbed run:\n{}\n\nthe operator's last lines:\n{}",
            differences.len(),
            differences
                .iter()
                .take(20)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n"),
            tail(&survivor.logs())
        );
        drop(survivor);
        drop(hubs);
        cleanup_released(&run_env.env.client, &run_env.env.prefix).await;
        cleanup_released(&run_env.standby.client, &run_env.env.prefix).await;
    }
    eprintln!("{runs} crash run(s) of {kills} kill(s): {differences_total} differences");
    cleanup_released(&calm.env.client, &calm.env.prefix).await;
    cleanup_released(&calm.standby.client, &calm.env.prefix).await;
}

/// Retained namespaces carry no test label (a released namespace keeps only what its
/// department needs), so the test deletes them itself.
async fn cleanup_released(client: &Client, prefix: &str) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    if let Ok(list) = namespaces.list_metadata(&ListParams::default()).await {
        for namespace in list
            .items
            .into_iter()
            .filter(|n| n.name_any().starts_with(&format!("{prefix}-")))
        {
            let _ = namespaces
                .delete(&namespace.name_any(), &DeleteParams::background())
                .await;
        }
    }
}
