//! The Helm chart with the real helm on the real API server: it lints clean, renders objects the
//! API server accepts, installs, gives the operator enough RBAC (the operator runs with the
//! chart's own ServiceAccount token) for a department, a portal hub node and an open dataset to
//! become Ready, upgrades, and uninstalls without touching departments' namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use govdc_test_support::hub::{HubOptions, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, helm_bin, install_crds,
    output_text, repo_root,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use kube::api::PostParams;
use kube::config::{AuthInfo, Kubeconfig};
use kube::{Api, ResourceExt};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

fn chart() -> PathBuf {
    repo_root().join("charts/govdc")
}

fn helm(env: &TestEnv, args: &[&str]) -> std::process::Output {
    Command::new(helm_bin())
        .args(args)
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .output()
        .unwrap_or_else(|e| panic!("running helm: {e}"))
}

/// A kubeconfig acting as the chart's ServiceAccount, with a token from the TokenRequest API.
async fn service_account_kubeconfig(env: &TestEnv, namespace: &str, account: &str) -> PathBuf {
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(3600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = Api::<ServiceAccount>::namespaced(env.client.clone(), namespace)
        .create_subresource("token", account, &PostParams::default(), &request)
        .await
        .expect("TokenRequest for the chart's ServiceAccount");
    let token = issued.status.and_then(|s| s.token).expect("token");
    let mut kubeconfig = Kubeconfig::read_from(&env.kubeconfig).expect("admin kubeconfig");
    // Same cluster and context, the ServiceAccount's token instead of the admin's certificate.
    for named in &mut kubeconfig.auth_infos {
        named.auth_info = Some(AuthInfo {
            token: Some(token.clone().into_boxed_str().into()),
            ..Default::default()
        });
    }
    let path = repo_root().join(format!(
        "target/test-users/{}-operator-sa.kubeconfig",
        env.prefix
    ));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
    std::fs::write(
        &path,
        serde_norway::to_string(&kubeconfig).expect("kubeconfig yaml"),
    )
    .expect("write kubeconfig");
    path
}

#[tokio::test]
async fn the_chart_lints_clean_and_renders_what_the_api_server_accepts() {
    let env = TestEnv::new("primary", "chartrender").await;
    let output = helm(&env, &["lint", "--strict", &chart().to_string_lossy()]);
    assert!(
        output.status.success(),
        "helm lint: {}",
        output_text(&output)
    );
    let namespace = env.namespace("render").await;
    let rendered = helm(
        &env,
        &[
            "template",
            &env.prefix,
            &chart().to_string_lossy(),
            "--namespace",
            &namespace,
            "--include-crds",
            "--set",
            "capacity.requests\\.cpu=100",
        ],
    );
    assert!(
        rendered.status.success(),
        "helm template: {}",
        output_text(&rendered)
    );
    let output = env.kubectl_with_input(
        &["apply", "--server-side", "--dry-run=server", "-f", "-"],
        &String::from_utf8_lossy(&rendered.stdout),
    );
    assert!(
        output.status.success(),
        "the API server refused the rendered chart: {}",
        output_text(&output)
    );
    for kind in [
        "deployment.apps",
        "clusterrole.rbac.authorization.k8s.io",
        "serviceaccount",
        "customresourcedefinition",
    ] {
        assert!(
            String::from_utf8_lossy(&output.stdout).contains(kind),
            "{kind} missing from the rendered chart"
        );
    }
    let bad = helm(
        &env,
        &[
            "template",
            &env.prefix,
            &chart().to_string_lossy(),
            "--set",
            "logging.format=xml",
        ],
    );
    assert!(
        !bad.status.success(),
        "values.schema.json let a wrong log format through"
    );
    assert!(
        output_text(&bad).contains("logging/format"),
        "{}",
        output_text(&bad)
    );
}

#[tokio::test]
async fn the_operator_runs_with_the_charts_rbac_and_uninstall_keeps_the_departments() {
    let env = TestEnv::new("primary", "chartinstall").await;
    install_crds(&env.client).await.expect("CRDs");
    let namespace = env.namespace("system").await;
    let release = env.prefix.clone();
    let output = helm(
        &env,
        &[
            "install",
            &release,
            &chart().to_string_lossy(),
            "--namespace",
            &namespace,
            "--set",
            "capacity.requests\\.cpu=100",
        ],
    );
    assert!(
        output.status.success(),
        "helm install: {}",
        output_text(&output)
    );
    let fullname = format!("{release}-govdc");

    let kubeconfig = service_account_kubeconfig(&env, &namespace, &fullname).await;
    let hub_namespace = env.namespace("hub").await;
    let hub_port = free_port();
    let hub_endpoint =
        format!("--hub-endpoint={hub_namespace}/national=http://127.0.0.1:{hub_port}");
    let operator = OperatorProcess::start_as(
        Path::new(OPERATOR),
        &env,
        &kubeconfig,
        &namespace,
        "chart-operator",
        &[
            "--lease-name",
            &fullname,
            "--capacity",
            "requests.cpu=100",
            &hub_endpoint,
            "--dataset-poll-seconds",
            "1",
        ],
    );

    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let name = format!("{}-dept", env.prefix);
    let cloud: DepartmentCloud = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
        "spec": {
            "department": {"name": "浙江省大数据发展管理局", "creditCode": govdc_crds::validation::credit_code::complete("11330000MB000000"),
                           "level": "provincial", "regionCode": "330000"},
            "networkZone": "extranet", "protectionLevel": 3,
            "environments": [{"name": "prod"}, {"name": "test"}],
            "quota": {"requests.cpu": "4"},
            "containerDefaults": {"defaultRequest": {"cpu": "100m"}},
            "admins": [{"kind": "User", "name": "chart-admin"}],
            "viewers": [{"kind": "Group", "name": "chart-auditors"}],
            "peerDepartments": [],
        }
    }))
    .expect("fixture");
    clouds
        .create(&PostParams::default(), &cloud)
        .await
        .expect("create");
    eventually(
        "the DepartmentCloud Ready under the chart's RBAC",
        WAIT,
        || {
            let clouds = clouds.clone();
            let name = name.clone();
            async move {
                let cloud = clouds.get(&name).await.ok()?;
                cloud
                    .status?
                    .conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.status == "True")
                    .then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));

    // A portal hub node and an open dataset of the department, under the same RBAC.
    let node: ExchangeNode = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": "national", "namespace": hub_namespace, "labels": {TEST_LABEL: env.prefix}},
        "spec": {"level": "national", "regionCode": "100000", "networkZone": "extranet",
                 "openDataPortal": true, "allowedDepartments": [name]},
    }))
    .expect("ExchangeNode fixture");
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hub_namespace);
    nodes
        .create(&PostParams::default(), &node)
        .await
        .expect("create ExchangeNode");
    let _hub = NodeHub::start(
        &env.client,
        &hub_namespace,
        "national",
        hub_port,
        HubOptions::portal,
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the hub: {e:#}\n{}", operator.logs()));
    let tenant = format!("{name}-prod");
    let source = ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some("stations".into()),
            ..Default::default()
        },
        data: Some(
            [(
                "stations.csv".to_owned(),
                "station,district,chargers\n西湖站,330106,12\n滨江站,330108,8\n".to_owned(),
            )]
            .into(),
        ),
        ..Default::default()
    };
    Api::<ConfigMap>::namespaced(env.client.clone(), &tenant)
        .create(&PostParams::default(), &source)
        .await
        .expect("create the dataset's source");
    let dataset: OpenDataset = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
        "metadata": {"name": "chargers", "namespace": tenant, "labels": {TEST_LABEL: env.prefix}},
        "spec": {
            "title": "充电站", "category": "transport", "openness": "unconditional",
            "source": {"configMapRef": {"name": "stations", "key": "stations.csv"}},
            "portal": {"name": "national", "namespace": hub_namespace},
            "fields": [{"name": "station", "action": "keep"}, {"name": "district", "action": "keep"},
                       {"name": "chargers", "action": "keep"}],
        },
    }))
    .expect("OpenDataset fixture");
    let datasets: Api<OpenDataset> = Api::namespaced(env.client.clone(), &tenant);
    datasets
        .create(&PostParams::default(), &dataset)
        .await
        .expect("create OpenDataset");
    eventually(
        "the ExchangeNode and the OpenDataset Ready under the chart's RBAC",
        WAIT,
        || {
            let (nodes, datasets) = (nodes.clone(), datasets.clone());
            async move {
                let node = nodes.get("national").await.ok()?.status?.conditions;
                let dataset = datasets.get("chargers").await.ok()?.status?.conditions;
                (ready_condition(&node) && ready_condition(&dataset)).then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));

    // API refusals read "... is forbidden: ..."; a bare "403" would also match timestamps.
    let logs = operator.logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the chart's RBAC is not enough:\n{logs}"
    );

    let output = helm(
        &env,
        &[
            "upgrade",
            &release,
            &chart().to_string_lossy(),
            "--namespace",
            &namespace,
            "--reuse-values",
            "--set",
            "replicaCount=3",
            "--set",
            "capacity.requests\\.cpu=200",
        ],
    );
    assert!(
        output.status.success(),
        "helm upgrade: {}",
        output_text(&output)
    );
    let deployment = Api::<Deployment>::namespaced(env.client.clone(), &namespace)
        .get(&fullname)
        .await
        .expect("deployment");
    let spec = deployment.spec.expect("spec");
    assert_eq!(spec.replicas, Some(3));
    let env_vars = spec.template.spec.expect("pod spec").containers[0]
        .env
        .clone()
        .unwrap_or_default();
    let capacity = env_vars
        .iter()
        .find(|e| e.name == "GOVDC_CAPACITY")
        .and_then(|e| e.value.clone());
    assert_eq!(capacity.as_deref(), Some("requests.cpu=200"));

    let output = helm(&env, &["uninstall", &release, "--namespace", &namespace]);
    assert!(
        output.status.success(),
        "helm uninstall: {}",
        output_text(&output)
    );
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for environment in ["prod", "test"] {
        let tenant = namespaces
            .get(&format!("{name}-{environment}"))
            .await
            .expect("the department's namespace survives uninstall");
        assert!(tenant.metadata.deletion_timestamp.is_none());
        assert_eq!(tenant.labels().get("govdc.io/department"), Some(&name));
    }
    assert!(
        clouds.get_opt(&name).await.expect("GET").is_some(),
        "uninstall deleted a DepartmentCloud"
    );
}

/// Whether the conditions hold `Ready=True`.
fn ready_condition(
    conditions: &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition],
) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == "Ready" && c.status == "True")
}

/// The demo samples, each labelled for the test so that the test's operator (which only sees
/// labelled objects) takes them, as one `List` for `kubectl apply`.
fn labelled_samples(env: &TestEnv, dir: &Path) -> PathBuf {
    let mut items = Vec::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("the samples directory")
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("a sample");
        for document in serde_norway::Deserializer::from_str(&text) {
            let mut object: serde_json::Value =
                serde::Deserialize::deserialize(document).expect("a YAML document");
            if object.is_null() {
                continue;
            }
            object["metadata"]["labels"][TEST_LABEL] = json!(env.prefix);
            items.push(object);
        }
    }
    let path = repo_root().join(format!(
        "target/tmp/{}-{}.json",
        env.prefix,
        dir.file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("samples")
    ));
    std::fs::create_dir_all(path.parent().expect("parent")).expect("directory");
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    std::fs::write(&path, serde_json::to_vec(&list).expect("JSON")).expect("write the samples");
    path
}

/// What `deploy/demo.sh` shows, checked: on a cluster of its own, the chart installed, the
/// operator run as the chart's ServiceAccount, the samples applied (departments across levels
/// and zones, a national and two provincial hub nodes run from their ConfigMaps, a DR policy to
/// another cluster, then two open datasets with personal fields), and every one of them Ready.
#[tokio::test]
async fn the_demo_samples_become_ready_under_the_charts_rbac() {
    let env = TestEnv::new("samples", "samples").await;
    let dr = TestEnv::new("dr", "samples-dr").await;
    let output = helm(
        &env,
        &[
            "upgrade",
            "--install",
            "govdc",
            &chart().to_string_lossy(),
            "--namespace",
            "govdc-system",
            "--create-namespace",
            "--set",
            "replicaCount=0",
            "--set",
            "capacity.requests\\.cpu=64",
            "--set",
            "capacity.requests\\.memory=256Gi",
        ],
    );
    assert!(
        output.status.success(),
        "helm install: {}",
        output_text(&output)
    );
    let kubeconfig = service_account_kubeconfig(&env, "govdc-system", "govdc").await;
    // The samples have fixed names: on a cluster kept from an earlier run, wait until that run's
    // cleanup has finished deleting them.
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for namespace in [
        "govdc-hub",
        "ndrc-prod",
        "zj-data-prod",
        "hz-health-prod",
        "gd-security-prod",
    ] {
        eventually(
            &format!("namespace {namespace} from an earlier run gone"),
            WAIT,
            || {
                let namespaces = namespaces.clone();
                async move {
                    let existing = namespaces.get_opt(namespace).await.ok()?;
                    existing
                        .is_none_or(|ns| ns.metadata.deletion_timestamp.is_none())
                        .then_some(())
                }
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    // The hub nodes' namespace, as the demo makes it (departments' policies let hubs in).
    let _ = env.kubectl(&["create", "namespace", "govdc-hub"]);
    let _ = env.kubectl(&[
        "label",
        "namespace",
        "govdc-hub",
        "govdc.io/exchange-hub=true",
        &format!("{TEST_LABEL}={}", env.prefix),
    ]);
    let dr_kubeconfig = govdc_test_support::cluster_kubeconfig("dr");
    let _ = env.kubectl(&[
        "-n",
        "govdc-system",
        "delete",
        "secret",
        "dr-kubeconfig",
        "--ignore-not-found",
    ]);
    let output = env.kubectl(&[
        "-n",
        "govdc-system",
        "create",
        "secret",
        "generic",
        "dr-kubeconfig",
        &format!("--from-file=kubeconfig={}", dr_kubeconfig.display()),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));

    let hubs = ["national", "zhejiang", "guangdong"].map(|name| (name, free_port()));
    let mut flags: Vec<String> = hubs
        .iter()
        .map(|(name, port)| format!("--hub-endpoint=govdc-hub/{name}=http://127.0.0.1:{port}"))
        .collect();
    let restore_points = repo_root().join(format!("target/tmp/{}-restore-points", env.prefix));
    flags.extend([
        "--lease-name=govdc".to_owned(),
        "--capacity=requests.cpu=64,requests.memory=256Gi".to_owned(),
        "--dataset-poll-seconds=1".to_owned(),
        format!("--restore-point-dir={}", restore_points.display()),
    ]);
    let flag_refs: Vec<&str> = flags.iter().map(String::as_str).collect();
    let operator = OperatorProcess::start_as(
        Path::new(OPERATOR),
        &env,
        &kubeconfig,
        "govdc-system",
        "samples-operator",
        &flag_refs,
    );
    let samples = repo_root().join("deploy/samples");
    let output = env.kubectl(&[
        "apply",
        "--server-side",
        "-f",
        &labelled_samples(&env, &samples).to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));

    let mut running = Vec::new();
    for (name, port) in hubs {
        // Only the national node serves the portal (its configuration says so).
        let portal = name == "national";
        running.push(
            NodeHub::start(
                &env.client,
                "govdc-hub",
                name,
                port,
                |options| if portal { options.portal() } else { options },
                WAIT,
            )
            .await
            .unwrap_or_else(|e| panic!("hub {name}: {e:#}\n{}", operator.logs())),
        );
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for namespace in ["hz-health-prod", "zj-data-prod"] {
        eventually(&format!("namespace {namespace}"), WAIT, || {
            let namespaces = namespaces.clone();
            async move { namespaces.get_opt(namespace).await.ok()? }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    }
    let datasets = labelled_samples(&env, &samples.join("datasets"));
    let output = env.kubectl(&["apply", "--server-side", "-f", &datasets.to_string_lossy()]);
    assert!(output.status.success(), "{}", output_text(&output));

    let output = eventually("every sample Ready", Duration::from_secs(120), || {
        let env = &env;
        async move {
            let output = env.kubectl(&[
                "get",
                "govdc",
                "-A",
                "-l",
                &format!("{TEST_LABEL}={}", env.prefix),
                "-o",
                "json",
            ]);
            let list: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            let items = list["items"].as_array()?.clone();
            let ready = |item: &serde_json::Value| {
                item["status"]["conditions"]
                    .as_array()
                    .is_some_and(|conditions| {
                        conditions
                            .iter()
                            .any(|c| c["type"] == "Ready" && c["status"] == "True")
                    })
            };
            (items.len() == 10 && items.iter().all(ready)).then_some(output)
        }
    })
    .await
    .unwrap_or_else(|e| {
        let table = env.kubectl(&["get", "govdc", "-A", "-o", "wide"]);
        panic!("{e}\n{}\n{}", output_text(&table), operator.logs())
    });
    assert!(output.status.success());
    let logs = operator.logs();
    assert!(
        !logs.to_lowercase().contains("forbidden"),
        "the chart's RBAC is not enough:\n{logs}"
    );
    drop(running);
    drop(dr);
}
