//! The Helm chart with the real helm on the real API server: it lints clean, renders objects the
//! API server accepts, installs, gives the operator enough RBAC (the operator runs with the
//! chart's own ServiceAccount token) for a department, a portal hub node and an open dataset to
//! become Ready, upgrades, and uninstalls without touching departments' namespaces.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use govdc_test_support::fixtures;
use govdc_test_support::hub::{HubOptions, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, helm_bin, install_crds, kube_bin,
    output_text, repo_root,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::RoleBinding;
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
            // The hubs' namespace must exist before the chart is installed: the test's own,
            // rather than a `govdc-hub` some other test may or may not have left on the cluster.
            "--set",
            &format!("hubNamespaces[0]={namespace}"),
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
    // The images the chart runs are the ones the operator defaults to (and build-oci.sh names).
    let rendered = String::from_utf8_lossy(&rendered.stdout);
    let help = Command::new(OPERATOR)
        .args(["run", "--help"])
        .output()
        .expect("govdc-operator run --help");
    let help = String::from_utf8_lossy(&help.stdout);
    let default_hub_image = help
        .split("--hub-image")
        .nth(1)
        .and_then(|rest| rest.split("[default: ").nth(1))
        .and_then(|rest| rest.split(']').next())
        .expect("--hub-image has a default");
    assert!(
        rendered.contains(&format!("value: \"{default_hub_image}\"")),
        "the chart's hub image is not the operator's default {default_hub_image}"
    );
    let version = env!("CARGO_PKG_VERSION");
    assert_eq!(default_hub_image, format!("govdc/govdc-hub:{version}"));
    assert!(
        rendered.contains(&format!("image: \"govdc/govdc-operator:{version}\"")),
        "the chart does not run govdc/govdc-operator:{version}"
    );

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
    // The hubs' namespace exists before the chart, which binds the operator there.
    let hub_namespace = env.namespace("hub").await;
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
            "--set",
            &format!("hubNamespaces={{{hub_namespace}}}"),
        ],
    );
    assert!(
        output.status.success(),
        "helm install: {}",
        output_text(&output)
    );
    let fullname = format!("{release}-govdc");

    let kubeconfig = service_account_kubeconfig(&env, &namespace, &fullname).await;
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
            // What the chart's Deployment sets: the operator binds itself in each tenant namespace.
            &format!("--tenant-role={fullname}-tenant"),
            &format!("--service-account={namespace}/{fullname}"),
        ],
    );

    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let name = format!("{}-dept", env.prefix);
    let cloud = fixtures::department_cloud(
        &env,
        &name,
        json!({
            "environments": [{"name": "prod"}, {"name": "test"}],
            "quota": {"requests.cpu": "4"},
            "containerDefaults": {"defaultRequest": {"cpu": "100m"}},
            "admins": [{"kind": "User", "name": "chart-admin"}],
            "viewers": [{"kind": "Group", "name": "chart-auditors"}],
            "peerDepartments": [],
        }),
    );
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

    // The operator bound its tenant role to itself in each environment, and to no one else.
    for environment in ["prod", "test"] {
        let binding =
            Api::<RoleBinding>::namespaced(env.client.clone(), &format!("{name}-{environment}"))
                .get("govdc-operator")
                .await
                .expect("the operator's own RoleBinding");
        assert_eq!(binding.role_ref.name, format!("{fullname}-tenant"));
        let subjects = binding.subjects.unwrap_or_default();
        assert_eq!(subjects.len(), 1, "{subjects:?}");
        assert_eq!(
            (subjects[0].name.as_str(), subjects[0].namespace.as_deref()),
            (fullname.as_str(), Some(namespace.as_str()))
        );
    }

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

    // Under these rules the operator may not watch Secrets cluster-wide: it watches them in the
    // namespaces that resources name, so a remote parent's CA Secret created after its node is
    // still seen at once.
    let child: ExchangeNode = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": "remote-child", "namespace": hub_namespace, "labels": {TEST_LABEL: env.prefix}},
        "spec": {"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                 "parent": {"remote": {
                     "endpoint": "https://national.hub.example:8443",
                     "caSecretRef": {"name": "national-ca", "key": "ca.crt"},
                     "tokenSecretRef": {"name": "national-token", "key": "token"}}}},
    }))
    .expect("ExchangeNode fixture");
    nodes
        .create(&PostParams::default(), &child)
        .await
        .expect("create the remote child");
    let waiting = operator
        .condition(&nodes, "remote-child", "Ready", "False", WAIT)
        .await;
    assert_eq!(waiting.reason, "CaSecretNotFound", "{waiting:?}");
    // The per-namespace watch starts within a rescan of the node's appearance.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let ca: k8s_openapi::api::core::v1::Secret = serde_json::from_value(json!({
        "metadata": {"name": "national-ca", "labels": {TEST_LABEL: env.prefix}},
        "stringData": {"ca.crt": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"},
    }))
    .expect("Secret fixture");
    let created = std::time::Instant::now();
    Api::<k8s_openapi::api::core::v1::Secret>::namespaced(env.client.clone(), &hub_namespace)
        .create(&PostParams::default(), &ca)
        .await
        .expect("create the CA Secret");
    eventually(
        "the remote child past CaSecretNotFound",
        Duration::from_secs(10),
        || {
            let nodes = nodes.clone();
            async move {
                let conditions = nodes.get("remote-child").await.ok()?.status?.conditions;
                conditions
                    .iter()
                    .any(|c| c.type_ == "Ready" && c.reason == "TokenSecretNotFound")
                    .then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let took = created.elapsed();
    eprintln!("the CA Secret was seen under the chart's RBAC after {took:?}");
    // A node waiting for a Secret also looks again every 10 s; a watch sees it well within 2 s.
    assert!(
        took < Duration::from_secs(2),
        "the CA Secret was seen only after {took:?}: a periodic pass, not a watch"
    );

    // Deleting departments under these rules: Retain releases the namespaces (a relabel, which
    // the admission policy allows on namespaces the operator manages) and removes the operator's
    // own binding; Delete deletes them through the tenant role bound inside each.
    for (suffix, policy, code) in [
        ("kept", "Retain", "11330000MB000001"),
        ("gone", "Delete", "11330000MB000002"),
    ] {
        let cloud = fixtures::department_cloud(
            &env,
            &format!("{name}-{suffix}"),
            json!({
                "department": fixtures::department("浙江省大数据发展管理局", &fixtures::credit_code(code)),
                "quota": {"requests.cpu": "1"},
                "admins": [{"kind": "User", "name": "chart-admin"}],
                "deletionPolicy": policy,
            }),
        );
        clouds
            .create(&PostParams::default(), &cloud)
            .await
            .expect("create");
    }
    for suffix in ["kept", "gone"] {
        let cloud = format!("{name}-{suffix}");
        operator
            .condition(&clouds, &cloud, "Ready", "True", WAIT)
            .await;
        clouds
            .delete(&cloud, &Default::default())
            .await
            .expect("delete");
    }
    for suffix in ["kept", "gone"] {
        let cloud = format!("{name}-{suffix}");
        eventually(&format!("DepartmentCloud {cloud} gone"), WAIT, || {
            let clouds = clouds.clone();
            let cloud = cloud.clone();
            async move { clouds.get_opt(&cloud).await.ok()?.is_none().then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    }
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let kept = namespaces
        .get(&format!("{name}-kept-prod"))
        .await
        .expect("the retained namespace");
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert_eq!(
        kept.labels().get("govdc.io/retained-from"),
        Some(&format!("{name}-kept"))
    );
    assert!(!kept.labels().contains_key("app.kubernetes.io/managed-by"));
    let bindings = Api::<RoleBinding>::namespaced(env.client.clone(), &format!("{name}-kept-prod"));
    assert!(
        bindings
            .get_opt("govdc-operator")
            .await
            .expect("GET")
            .is_none(),
        "the operator kept its binding in a namespace it released"
    );
    assert!(
        bindings
            .get_opt("govdc-admins")
            .await
            .expect("GET")
            .is_some(),
        "the department's admins lost their binding with Retain"
    );
    let gone = namespaces
        .get_opt(&format!("{name}-gone-prod"))
        .await
        .expect("GET");
    assert!(
        gone.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
        "the Delete policy's namespace is still there"
    );

    assert_no_refusals(&operator.logs());

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
    // The hub nodes' namespace, as the demo makes it (departments' policies let hubs in), before
    // the chart, which binds the operator there (hubNamespaces defaults to govdc-hub).
    let _ = env.kubectl(&["create", "namespace", "govdc-hub"]);
    let _ = env.kubectl(&[
        "label",
        "namespace",
        "govdc-hub",
        "govdc.io/exchange-hub=true",
        &format!("{TEST_LABEL}={}", env.prefix),
        "--overwrite",
    ]);
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
        "--tenant-role=govdc-tenant".to_owned(),
        "--service-account=govdc-system/govdc".to_owned(),
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
    assert_no_refusals(&operator.logs());
    drop(running);
    drop(dr);
}

/// Fails naming the log lines in which the API server refused the operator something: its RBAC is
/// not enough. API refusals read "... is forbidden: ..."; a bare "403" would also match
/// timestamps. The refusing lines come first, so that a shortened CI excerpt still shows them.
fn assert_no_refusals(logs: &str) {
    let refused: Vec<&str> = logs
        .lines()
        .filter(|line| line.to_lowercase().contains("forbidden"))
        .collect();
    assert!(
        refused.is_empty(),
        "the chart's RBAC is not enough: {} refusals:\n{}\n\nthe whole log:\n{logs}",
        refused.len(),
        refused.join("\n")
    );
}

/// `kubectl auth can-i` (a SubjectAccessReview through impersonation) for `user`: whether RBAC
/// lets it do `args`.
fn can_i(env: &TestEnv, user: &str, args: &[String]) -> bool {
    let mut full: Vec<String> = vec!["auth".into(), "can-i".into()];
    full.extend(args.iter().cloned());
    full.push(format!("--as={user}"));
    let refs: Vec<&str> = full.iter().map(String::as_str).collect();
    let output = env.kubectl(&refs);
    let answer = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    assert!(
        answer == "yes" || answer == "no",
        "kubectl auth can-i {args:?}: {}",
        output_text(&output)
    );
    answer == "yes"
}

/// The real kubectl with the ServiceAccount's own token (not impersonation), `stdin` as input.
fn kubectl_as(kubeconfig: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write;
    let mut child = Command::new(kube_bin())
        .arg("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("kubectl");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or_default().as_bytes())
            .expect("kubectl stdin");
    }
    child.wait_with_output().expect("kubectl output")
}

/// A binding as the operator would write it (govdc's ownership labels), as JSON for kubectl.
fn binding(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    role: &str,
    subject: serde_json::Value,
) -> String {
    let mut metadata = json!({"name": name, "labels": {
        "app.kubernetes.io/managed-by": "govdc-operator",
        "govdc.io/owner-kind": "DepartmentCloud",
        "govdc.io/owner-name": name,
    }});
    if let Some(namespace) = namespace {
        metadata["namespace"] = json!(namespace);
    }
    json!({
        "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": metadata,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    })
    .to_string()
}

/// The chart's ServiceAccount holds exactly what the controllers need: RBAC (asked with
/// `kubectl auth can-i`, and by a server-side dry run with the account's own token) refuses it
/// cluster-admin, Secrets outside govdc's namespaces and deleting a namespace it does not manage;
/// the chart's ValidatingAdmissionPolicies refuse, even where RBAC would allow, relabelling or
/// deleting an unmanaged namespace and any binding other than those the operator hands out.
#[tokio::test]
async fn the_charts_service_account_cannot_make_itself_cluster_admin_nor_touch_what_govdc_does_not_manage()
 {
    let env = TestEnv::new("primary", "chartfence").await;
    let namespace = env.namespace("system").await;
    let hub_namespace = env.namespace("hub").await;
    let unmanaged = env.namespace("unmanaged").await;
    let release = env.prefix.clone();
    let output = helm(
        &env,
        &[
            "install",
            &release,
            &chart().to_string_lossy(),
            "--namespace",
            &namespace,
            // Only RBAC and admission are under test; the CRDs are other tests' business.
            "--skip-crds",
            "--set",
            "replicaCount=0",
            "--set",
            &format!("hubNamespaces={{{hub_namespace}}}"),
        ],
    );
    assert!(
        output.status.success(),
        "helm install: {}",
        output_text(&output)
    );
    // The release's cluster-scoped objects (roles, admission policies) go even if the test fails.
    let _release = Uninstall {
        kubeconfig: env.kubeconfig.clone(),
        release: release.clone(),
        namespace: namespace.clone(),
    };
    let fullname = format!("{release}-govdc");
    let user = format!("system:serviceaccount:{namespace}:{fullname}");
    let strings = |args: &[&str]| args.iter().map(|a| (*a).to_owned()).collect::<Vec<_>>();
    let refused = [
        strings(&["bind", "clusterrole/cluster-admin"]),
        strings(&["escalate", "clusterroles"]),
        strings(&["get", "secret/anything", "-n", "kube-system"]),
        strings(&["list", "secrets", "--all-namespaces"]),
        // The API server authorizes a request on namespace X as one in namespace X: ask so.
        strings(&["delete", "namespace/kube-system", "-n", "kube-system"]),
        strings(&[
            "delete",
            &format!("namespace/{unmanaged}"),
            "-n",
            &unmanaged,
        ]),
        strings(&["create", "statefulsets.apps", "-n", "kube-system"]),
        strings(&["create", "pods", "-n", "kube-system"]),
        strings(&["create", "serviceaccounts/token", "-n", "kube-system"]),
        strings(&["impersonate", "users"]),
    ];
    for args in &refused {
        assert!(
            !can_i(&env, &user, args),
            "RBAC lets the chart's ServiceAccount {args:?}"
        );
    }
    // What the controllers need, so that the noes above are not an impersonation gone wrong.
    let granted = [
        strings(&["bind", "clusterrole/admin"]),
        strings(&["bind", "clusterrole/view"]),
        strings(&["bind", &format!("clusterrole/{fullname}-tenant")]),
        strings(&["get", "secret/anything", "-n", &hub_namespace]),
        strings(&["create", "secrets", "-n", &hub_namespace]),
        strings(&["create", "statefulsets.apps", "-n", &hub_namespace]),
        strings(&["get", "secret/anything", "-n", &namespace]),
        strings(&["create", "namespaces"]),
        strings(&["create", "clusterrolebindings"]),
    ];
    for args in &granted {
        assert!(
            can_i(&env, &user, args),
            "RBAC refuses the chart's ServiceAccount {args:?}"
        );
    }

    let kubeconfig = service_account_kubeconfig(&env, &namespace, &fullname).await;
    // As the operator writes: server-side apply, forcing conflicts.
    let apply = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "-f",
        "-",
    ];
    let itself = json!({"kind": "ServiceAccount", "name": fullname, "namespace": namespace});
    // RBAC's own escalation check: the account does not hold cluster-admin's permissions.
    let output = kubectl_as(
        &kubeconfig,
        &apply,
        Some(&binding(
            "ClusterRoleBinding",
            &format!("{release}-escalate"),
            None,
            "cluster-admin",
            itself.clone(),
        )),
    );
    assert!(
        !output.status.success(),
        "a ClusterRoleBinding to cluster-admin was accepted"
    );
    assert!(
        output_text(&output).contains("attempting to grant RBAC permissions not currently held"),
        "{}",
        output_text(&output)
    );

    // The admission policy: RBAC alone would allow each of these. The policy starts to be
    // enforced a moment after it is created; wait for it with dry runs only.
    let mallory =
        json!({"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "mallory"});
    let own_role = binding(
        "ClusterRoleBinding",
        &format!("{release}-copy"),
        None,
        &fullname,
        mallory.clone(),
    );
    let output = eventually("the admission policy enforced", WAIT, || {
        let output = kubectl_as(&kubeconfig, &apply, Some(&own_role));
        async move { (!output.status.success()).then_some(output) }
    })
    .await
    .unwrap_or_else(|e| panic!("the operator handed out its own ClusterRole: {e}"));
    assert!(
        output_text(&output).contains("ValidatingAdmissionPolicy"),
        "{}",
        output_text(&output)
    );
    for (what, object) in [
        (
            "admin in kube-system",
            binding(
                "RoleBinding",
                "govdc-admins",
                Some("kube-system"),
                "admin",
                mallory.clone(),
            ),
        ),
        (
            "admin in a namespace govdc does not manage",
            binding(
                "RoleBinding",
                "govdc-admins",
                Some(&unmanaged),
                "admin",
                mallory.clone(),
            ),
        ),
        (
            "its hub role to someone else, in the hub namespace where it holds that role",
            binding(
                "RoleBinding",
                "govdc-hub",
                Some(&hub_namespace),
                &format!("{fullname}-hub"),
                mallory.clone(),
            ),
        ),
    ] {
        let output = kubectl_as(&kubeconfig, &apply, Some(&object));
        assert!(!output.status.success(), "the operator could bind {what}");
        assert!(
            output_text(&output).contains("ValidatingAdmissionPolicy"),
            "{what}: {}",
            output_text(&output)
        );
    }

    // Guardrails only in govdc's namespaces: a network policy the operator could write anywhere
    // under RBAC would cut kube-system off.
    let deny_all = |namespace: &str| {
        json!({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "govdc-default-deny", "namespace": namespace, "labels": {
                "app.kubernetes.io/managed-by": "govdc-operator",
                "govdc.io/owner-kind": "ExchangeNode", "govdc.io/owner-name": "national"}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]},
        })
        .to_string()
    };
    let output = kubectl_as(&kubeconfig, &apply, Some(&deny_all("kube-system")));
    assert!(
        !output.status.success(),
        "the operator wrote a network policy into kube-system"
    );
    assert!(
        output_text(&output).contains("only in namespaces it manages or runs hubs in"),
        "{}",
        output_text(&output)
    );
    let output = kubectl_as(&kubeconfig, &apply, Some(&deny_all(&hub_namespace)));
    assert!(output.status.success(), "{}", output_text(&output));

    // A namespace govdc does not manage, where RBAC (an over-broad grant an administrator made)
    // would let the operator delete it: the policy still refuses, for real, not in a dry run.
    let grant = env.kubectl(&[
        "-n",
        &unmanaged,
        "create",
        "rolebinding",
        "over-broad",
        &format!("--clusterrole={fullname}-tenant"),
        &format!("--serviceaccount={namespace}:{fullname}"),
    ]);
    assert!(grant.status.success(), "{}", output_text(&grant));
    eventually(
        "RBAC lets the operator delete the unmanaged namespace",
        WAIT,
        || {
            let allowed = can_i(
                &env,
                &user,
                &strings(&[
                    "delete",
                    &format!("namespace/{unmanaged}"),
                    "-n",
                    &unmanaged,
                ]),
            );
            async move { allowed.then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let output = kubectl_as(
        &kubeconfig,
        &["delete", "namespace", &unmanaged, "--wait=false"],
        None,
    );
    assert!(
        !output.status.success(),
        "the operator deleted an unmanaged namespace"
    );
    assert!(
        output_text(&output).contains("may delete only namespaces it manages"),
        "{}",
        output_text(&output)
    );
    let output = kubectl_as(
        &kubeconfig,
        &[
            "label",
            "namespace",
            &unmanaged,
            "govdc.io/department=stolen",
        ],
        None,
    );
    assert!(
        !output.status.success(),
        "the operator relabelled an unmanaged namespace"
    );
    assert!(
        output_text(&output).contains("may relabel only namespaces it manages"),
        "{}",
        output_text(&output)
    );
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let kept = namespaces
        .get(&unmanaged)
        .await
        .expect("the namespace is still there");
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert!(!kept.labels().contains_key("govdc.io/department"));

    // The same requests on a namespace govdc manages pass (dry runs: nothing to clean up).
    let managed = env.namespace("managed").await;
    let output = env.kubectl(&[
        "label",
        "namespace",
        &managed,
        "app.kubernetes.io/managed-by=govdc-operator",
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    let grant = env.kubectl(&[
        "-n",
        &managed,
        "create",
        "rolebinding",
        "govdc-operator",
        &format!("--clusterrole={fullname}-tenant"),
        &format!("--serviceaccount={namespace}:{fullname}"),
    ]);
    assert!(grant.status.success(), "{}", output_text(&grant));
    let allowed = eventually(
        "the operator may change the namespace it manages",
        WAIT,
        || {
            let output = kubectl_as(
                &kubeconfig,
                &[
                    "label",
                    "namespace",
                    &managed,
                    "govdc.io/environment=prod",
                    "--dry-run=server",
                ],
                None,
            );
            async move { output.status.success().then_some(()) }
        },
    )
    .await;
    allowed.unwrap_or_else(|e| panic!("{e}"));
    let output = kubectl_as(
        &kubeconfig,
        &["delete", "namespace", &managed, "--dry-run=server"],
        None,
    );
    assert!(output.status.success(), "{}", output_text(&output));
    // A namespace a DepartmentCloud retained when it was deleted may be adopted (relabelled) by
    // a new one of the same name.
    let retained = env.namespace("retained").await;
    let output = env.kubectl(&[
        "label",
        "namespace",
        &retained,
        "govdc.io/retained-from=zj-data",
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    let output = kubectl_as(
        &kubeconfig,
        &[
            "label",
            "namespace",
            &retained,
            "app.kubernetes.io/managed-by=govdc-operator",
            "--dry-run=server",
        ],
        None,
    );
    assert!(output.status.success(), "{}", output_text(&output));
    let output = kubectl_as(
        &kubeconfig,
        &apply,
        Some(&binding(
            "RoleBinding",
            "govdc-admins",
            Some(&managed),
            "admin",
            mallory.clone(),
        )),
    );
    assert!(output.status.success(), "{}", output_text(&output));
    // The tenant role goes to the operator itself, and to no one else.
    let output = kubectl_as(
        &kubeconfig,
        &apply,
        Some(&binding(
            "RoleBinding",
            "tenant-for-mallory",
            Some(&managed),
            &format!("{fullname}-tenant"),
            mallory,
        )),
    );
    assert!(
        !output.status.success(),
        "the operator handed its Secret access to someone else"
    );
    assert!(
        output_text(&output).contains("only to its own ServiceAccount"),
        "{}",
        output_text(&output)
    );
}

/// Uninstalls a release when dropped, whether the test passed or not.
struct Uninstall {
    kubeconfig: PathBuf,
    release: String,
    namespace: String,
}

impl Drop for Uninstall {
    fn drop(&mut self) {
        let _ = Command::new(helm_bin())
            .args(["uninstall", &self.release, "--namespace", &self.namespace])
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .output();
    }
}
