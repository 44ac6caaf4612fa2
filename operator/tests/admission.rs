//! govdc's CRDs on a real API server: they install and become Established, kubectl explains
//! them, `kubectl get govdc` lists every kind, and invalid objects are refused at admission with
//! a message naming the offending field.

use govdc_test_support::fixtures;
use govdc_test_support::{TestEnv, install_crds, output_text};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, Resource};
use serde_json::{Value, json};

/// A DepartmentCloud for admission: the shared valid base with a quota, container defaults and
/// an admin, so that each of their rules can be broken one at a time.
fn department_cloud(name: &str) -> Value {
    json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name},
        "spec": fixtures::department_cloud_spec(json!({
            "environments": [{"name": "prod", "quota": {"requests.cpu": "4", "requests.memory": "8Gi"}}],
            "quota": {"requests.cpu": "8"},
            "containerDefaults": {"defaultRequest": {"cpu": "100m"}, "max": {"cpu": "2"}},
            "admins": [{"kind": "User", "name": "zhang.wei"}]
        })),
    })
}

fn exchange_node(name: &str) -> Value {
    json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": name},
        "spec": {"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                 "parent": {"nodeRef": {"name": "national"}}, "openDataPortal": true}
    })
}

fn open_dataset(name: &str) -> Value {
    json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
        "metadata": {"name": name},
        "spec": {
            "title": "企业登记信息", "category": "enterprise-registration", "openness": "unconditional",
            "source": {"configMapRef": {"name": "registrations", "key": "data.csv"}},
            "portal": {"name": "zhejiang"},
            "fields": [
                {"name": "company", "action": "keep"},
                {"name": "legal_person_id", "personal": true, "action": "pseudonymize"},
                {"name": "age", "action": "generalize", "generalize": {"numberBand": 10}}
            ],
            "quasiIdentifiers": ["age"],
            "kAnonymity": {"minK": 5},
            "pseudonymKeyRef": {"name": "pseudonym-key", "key": "key"}
        }
    })
}

fn backup_policy(name: &str) -> Value {
    json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": name},
        "spec": {"target": {"kubeconfigSecretRef": {"namespace": "govdc-system", "name": "dr-kubeconfig", "key": "kubeconfig"}}}
    })
}

/// Sets the value at a JSON pointer, creating nothing: the parent must exist.
fn set(mut object: Value, pointer: &str, value: Value) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    let target = object
        .pointer_mut(parent)
        .unwrap_or_else(|| panic!("no {parent} in fixture"));
    match target {
        Value::Object(map) => {
            map.insert(key.to_owned(), value);
        }
        Value::Array(items) => items[key.parse::<usize>().expect("index")] = value,
        _ => panic!("{parent} is not a container"),
    }
    object
}

fn remove(mut object: Value, pointer: &str) -> Value {
    let (parent, key) = pointer.rsplit_once('/').expect("pointer has a parent");
    if let Some(Value::Object(map)) = object.pointer_mut(parent) {
        map.remove(key);
    }
    object
}

/// (what the case shows, the object, a text the API server's refusal must contain).
fn invalid_objects(prefix: &str) -> Vec<(&'static str, Value, &'static str)> {
    let dc = || department_cloud(&format!("{prefix}-dc"));
    let xn = || exchange_node(&format!("{prefix}-xn"));
    let od = || open_dataset(&format!("{prefix}-od"));
    let bp = || backup_policy(&format!("{prefix}-bp"));
    vec![
        (
            "protection level above 4",
            set(dc(), "/spec/protectionLevel", json!(5)),
            "spec.protectionLevel",
        ),
        (
            "protection level below 1",
            set(dc(), "/spec/protectionLevel", json!(0)),
            "spec.protectionLevel",
        ),
        (
            "unknown network zone",
            set(dc(), "/spec/networkZone", json!("internet")),
            "spec.networkZone",
        ),
        (
            "unknown administrative level",
            set(dc(), "/spec/department/level", json!("village")),
            "spec.department.level",
        ),
        (
            "credit code too short",
            set(dc(), "/spec/department/creditCode", json!("123")),
            "spec.department.creditCode",
        ),
        (
            "credit code with letters outside the alphabet",
            set(
                dc(),
                "/spec/department/creditCode",
                json!("11330000MB00000O0Z"),
            ),
            "spec.department.creditCode",
        ),
        (
            "region code of five digits",
            set(dc(), "/spec/department/regionCode", json!("33000")),
            "spec.department.regionCode",
        ),
        (
            "central department outside region 100000",
            set(dc(), "/spec/department/level", json!("central")),
            "spec.department.regionCode",
        ),
        (
            "no environments",
            set(dc(), "/spec/environments", json!([])),
            "spec.environments",
        ),
        (
            "environment name not a DNS label",
            set(dc(), "/spec/environments/0/name", json!("Prod_1")),
            "spec.environments[0].name",
        ),
        (
            "duplicate environment names",
            set(
                dc(),
                "/spec/environments",
                json!([{"name": "prod"}, {"name": "prod"}]),
            ),
            "spec.environments",
        ),
        (
            "namespace name longer than 63 characters",
            set(
                set(
                    dc(),
                    "/metadata/name",
                    json!(format!("{prefix}-{}", "x".repeat(44 - prefix.len()))),
                ),
                "/spec/environments/0/name",
                json!("integration-testing"),
            ),
            "spec.environments",
        ),
        (
            "tenant quota that is no quantity",
            set(dc(), "/spec/quota", json!({"requests.cpu": "lots"})),
            "spec.quota",
        ),
        (
            "environment quota that is no quantity",
            set(
                dc(),
                "/spec/environments/0/quota",
                json!({"requests.memory": "1Qi"}),
            ),
            "spec.environments[0].quota",
        ),
        (
            "container max that is no quantity",
            set(dc(), "/spec/containerDefaults/max", json!({"cpu": "x"})),
            "spec.containerDefaults.max",
        ),
        (
            "negative tenant quota",
            set(dc(), "/spec/quota", json!({"requests.cpu": "-1"})),
            "spec.quota[requests.cpu]: Invalid value: \"-1\": must not be negative",
        ),
        (
            "negative environment quota given as a bare integer",
            set(
                dc(),
                "/spec/environments/0/quota",
                json!({"requests.cpu": -2}),
            ),
            "spec.environments[0].quota[requests.cpu]: Invalid value: -2: must not be negative",
        ),
        (
            "negative container default",
            set(
                dc(),
                "/spec/containerDefaults/max",
                json!({"memory": "-1Gi"}),
            ),
            "spec.containerDefaults.max[memory]: Invalid value: \"-1Gi\": must not be negative",
        ),
        (
            "default request above the default limit",
            set(
                dc(),
                "/spec/containerDefaults",
                json!({"defaultRequest": {"cpu": "2"}, "defaultLimit": {"cpu": "1500m"}}),
            ),
            "spec.containerDefaults.defaultRequest: Invalid value: a defaultRequest may not exceed the defaultLimit",
        ),
        (
            "default limit above max",
            set(
                dc(),
                "/spec/containerDefaults",
                json!({"defaultLimit": {"memory": "2Gi"}, "max": {"memory": "1024Mi"}}),
            ),
            "spec.containerDefaults.defaultLimit: Invalid value: a defaultLimit may not exceed the max",
        ),
        (
            "default request above max without a default limit",
            set(
                dc(),
                "/spec/containerDefaults",
                json!({"defaultRequest": {"cpu": "3"}, "max": {"cpu": 2}}),
            ),
            "spec.containerDefaults.defaultRequest: Invalid value: a defaultRequest may not exceed the max",
        ),
        (
            "name that cannot prefix a namespace",
            set(dc(), "/metadata/name", json!(format!("{prefix}.dc"))),
            "metadata.name",
        ),
        (
            "ServiceAccount admin without namespace",
            set(
                dc(),
                "/spec/admins",
                json!([{"kind": "ServiceAccount", "name": "ci"}]),
            ),
            "spec.admins[0].namespace",
        ),
        (
            "admin of an unknown kind",
            set(
                dc(),
                "/spec/admins",
                json!([{"kind": "Robot", "name": "r2"}]),
            ),
            "spec.admins[0].kind",
        ),
        (
            "unknown deletion policy",
            set(dc(), "/spec/deletionPolicy", json!("Destroy")),
            "spec.deletionPolicy",
        ),
        (
            "missing department",
            remove(dc(), "/spec/department"),
            "spec.department",
        ),
        (
            "open-data portal on the intranet",
            set(xn(), "/spec/networkZone", json!("intranet")),
            "spec.openDataPortal",
        ),
        (
            "national node with a parent",
            set(xn(), "/spec/level", json!("national")),
            "spec.parent",
        ),
        (
            "provincial node without a parent",
            remove(xn(), "/spec/parent"),
            "spec.parent",
        ),
        (
            "two replicas on one embedded store",
            set(xn(), "/spec/replicas", json!(2)),
            "spec.replicas",
        ),
        (
            "parent both in-cluster and remote",
            set(
                xn(),
                "/spec/parent/remote",
                json!({"endpoint": "https://hub.gov.cn:443", "caSecretRef": {"name": "ca", "key": "ca.crt"}, "tokenSecretRef": {"name": "t", "key": "token"}}),
            ),
            "spec.parent",
        ),
        (
            "remote parent over plain HTTP",
            set(
                xn(),
                "/spec/parent",
                json!({"remote": {"endpoint": "http://hub.gov.cn", "caSecretRef": {"name": "ca", "key": "ca.crt"}, "tokenSecretRef": {"name": "t", "key": "token"}}}),
            ),
            "spec.parent.remote.endpoint",
        ),
        (
            "remote parent without a federation token",
            set(
                xn(),
                "/spec/parent",
                json!({"remote": {"endpoint": "https://hub.gov.cn", "caSecretRef": {"name": "ca", "key": "ca.crt"}}}),
            ),
            "spec.parent.remote.tokenSecretRef",
        ),
        (
            "unknown audit digest",
            set(xn(), "/spec/auditAlgorithm", json!("md5")),
            "spec.auditAlgorithm",
        ),
        (
            "negative storage size",
            set(xn(), "/spec/storage", json!({"size": "-1Gi"})),
            "spec.storage.size",
        ),
        (
            "unknown hub level",
            set(xn(), "/spec/level", json!("village")),
            "spec.level",
        ),
        (
            "unknown dataset category",
            set(od(), "/spec/category", json!("gossip")),
            "spec.category",
        ),
        (
            "unknown openness",
            set(od(), "/spec/openness", json!("sometimes")),
            "spec.openness",
        ),
        (
            "two sources at once",
            set(
                od(),
                "/spec/source/secretRef",
                json!({"name": "s", "key": "k"}),
            ),
            "spec.source",
        ),
        (
            "quasi-identifier that is no field",
            set(od(), "/spec/quasiIdentifiers", json!(["birthplace"])),
            "spec.quasiIdentifiers",
        ),
        (
            "mask without its settings",
            set(od(), "/spec/fields/0/action", json!("mask")),
            "spec.fields[0].mask",
        ),
        (
            "pseudonyms without a key",
            remove(od(), "/spec/pseudonymKeyRef"),
            "spec.pseudonymKeyRef",
        ),
        (
            "k below 2",
            set(od(), "/spec/kAnonymity/minK", json!(1)),
            "spec.kAnonymity.minK",
        ),
        (
            "duplicate field names",
            set(od(), "/spec/fields/1/name", json!("company")),
            "spec.fields",
        ),
        (
            "scheduled backup without a schedule",
            set(bp(), "/spec/mode", json!("scheduled")),
            "spec.schedule",
        ),
        (
            "recovery point objective that is no duration",
            set(bp(), "/spec/recoveryPointObjective", json!("soon")),
            "spec.recoveryPointObjective",
        ),
        (
            "target Secret without a namespace",
            remove(bp(), "/spec/target/kubeconfigSecretRef/namespace"),
            "spec.target.kubeconfigSecretRef",
        ),
        (
            "unknown replication mode",
            set(bp(), "/spec/mode", json!("sometimes")),
            "spec.mode",
        ),
        (
            "exchange node without a namespace",
            set(bp(), "/spec/exchangeNodes", json!([{"name": "national"}])),
            "spec.exchangeNodes",
        ),
        (
            "kind both included and excluded",
            set(
                set(bp(), "/spec/includeKinds", json!(["Secret", "ConfigMap"])),
                "/spec/excludeKinds",
                json!(["Secret"]),
            ),
            "spec.excludeKinds",
        ),
    ]
}

fn api_for(env: &TestEnv, namespace: &str, object: &Value) -> Api<DynamicObject> {
    let resource = match object["kind"].as_str() {
        Some("DepartmentCloud") => ApiResource::erase::<govdc_crds::DepartmentCloud>(&()),
        Some("BackupPolicy") => ApiResource::erase::<govdc_crds::BackupPolicy>(&()),
        Some("ExchangeNode") => ApiResource::erase::<govdc_crds::ExchangeNode>(&()),
        Some("OpenDataset") => ApiResource::erase::<govdc_crds::OpenDataset>(&()),
        other => panic!("unknown kind {other:?}"),
    };
    if object["kind"] == "DepartmentCloud" || object["kind"] == "BackupPolicy" {
        Api::all_with(env.client.clone(), &resource)
    } else {
        Api::namespaced_with(env.client.clone(), namespace, &resource)
    }
}

async fn dry_run_create(env: &TestEnv, namespace: &str, object: &Value) -> Result<(), String> {
    let dynamic: DynamicObject =
        serde_json::from_value(object.clone()).expect("fixture is an object");
    match api_for(env, namespace, object)
        .create(
            &PostParams {
                dry_run: true,
                ..Default::default()
            },
            &dynamic,
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(status.message),
        Err(other) => panic!("dry run failed for another reason than admission: {other}"),
    }
}

#[tokio::test]
async fn valid_objects_of_every_kind_are_admitted() {
    let env = TestEnv::new("primary", "admitvalid").await;
    install_crds(&env.client)
        .await
        .expect("CRDs install and become Established");
    let namespace = env.namespace("valid").await;
    for object in [
        department_cloud(&format!("{}-dc", env.prefix)),
        exchange_node("zhejiang"),
        open_dataset("registrations"),
        backup_policy(&format!("{}-bp", env.prefix)),
    ] {
        let kind = object["kind"].clone();
        if let Err(message) = dry_run_create(&env, &namespace, &object).await {
            panic!("a valid {kind} was refused: {message}");
        }
    }
}

#[tokio::test]
async fn invalid_objects_are_refused_naming_the_offending_field() {
    let env = TestEnv::new("primary", "admitinvalid").await;
    install_crds(&env.client)
        .await
        .expect("CRDs install and become Established");
    let namespace = env.namespace("invalid").await;
    let cases = invalid_objects(&env.prefix);
    assert!(cases.len() >= 30, "the table holds {} cases", cases.len());
    let mut failures = Vec::new();
    for (case, object, field) in &cases {
        match dry_run_create(&env, &namespace, object).await {
            Ok(()) => failures.push(format!("{case}: admitted")),
            Err(message) if !message.contains(field) => {
                failures.push(format!("{case}: refused without naming {field}: {message}"))
            }
            Err(_) => {}
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[tokio::test]
async fn quantities_are_compared_as_quantities_and_kubectl_shows_the_refusal() {
    let env = TestEnv::new("primary", "admitquantity").await;
    install_crds(&env.client).await.expect("CRDs install");
    // Equal amounts in other notations, zero and bare integers are in order.
    let in_order = set(
        set(
            department_cloud(&format!("{}-dc", env.prefix)),
            "/spec/containerDefaults",
            json!({
                "defaultRequest": {"cpu": "500m", "memory": "1Gi"},
                "defaultLimit": {"cpu": "0.5", "memory": "1024Mi"},
                "max": {"cpu": 1, "memory": "2Gi"},
            }),
        ),
        "/spec/quota",
        json!({"requests.cpu": 0, "limits.memory": "+8Gi"}),
    );
    if let Err(message) = dry_run_create(&env, "", &in_order).await {
        panic!("defaults in order were refused: {message}");
    }
    // A user applying the wrong spec with kubectl reads the API server's message, naming the
    // field, and nothing is stored.
    for (object, expected) in [
        (
            set(
                department_cloud(&format!("{}-neg", env.prefix)),
                "/spec/quota",
                json!({"requests.cpu": "-4", "pods": "10"}),
            ),
            "spec.quota[requests.cpu]: Invalid value: \"-4\": must not be negative",
        ),
        (
            set(
                department_cloud(&format!("{}-order", env.prefix)),
                "/spec/containerDefaults",
                json!({"defaultRequest": {"memory": "2Gi"}, "defaultLimit": {"memory": "1Gi"}}),
            ),
            "spec.containerDefaults.defaultRequest: Invalid value: a defaultRequest may not exceed the defaultLimit of the same resource",
        ),
    ] {
        let name = object["metadata"]["name"]
            .as_str()
            .expect("name")
            .to_owned();
        // Labelled for cleanup, should the API server ever admit it.
        let object = set(
            object,
            "/metadata/labels",
            json!({govdc_test_support::TEST_LABEL: env.prefix}),
        );
        let output = env.kubectl_with_input(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "govdc-tests",
                "-f",
                "-",
            ],
            &object.to_string(),
        );
        let text = output_text(&output);
        assert!(!output.status.success(), "kubectl applied {name}: {text}");
        assert!(text.contains(expected), "kubectl said: {text}");
        let stored = env.kubectl(&[
            "get",
            "departmentcloud",
            &name,
            "--ignore-not-found",
            "-o",
            "name",
        ]);
        assert!(
            String::from_utf8_lossy(&stored.stdout).trim().is_empty(),
            "{name} was stored"
        );
    }
}

#[tokio::test]
async fn network_zone_cannot_change_after_creation() {
    let env = TestEnv::new("primary", "zoneimmutable").await;
    install_crds(&env.client).await.expect("CRDs install");
    let mut object = department_cloud(&format!("{}-dc", env.prefix));
    object["metadata"]["labels"] = json!({govdc_test_support::TEST_LABEL: env.prefix});
    let api = api_for(&env, "", &object);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).expect("object"),
        )
        .await
        .expect("create a valid DepartmentCloud");
    assert_immutable(&api, &created, "networkZone", json!("intranet")).await;
}

#[tokio::test]
async fn hub_storage_cannot_change_after_creation() {
    let env = TestEnv::new("primary", "storageimmutable").await;
    install_crds(&env.client).await.expect("CRDs install");
    let namespace = env.namespace("hub").await;
    let mut object = exchange_node(&format!("{}-xn", env.prefix));
    object["metadata"]["namespace"] = json!(namespace);
    object = remove(object, "/spec/parent");
    object["spec"]["level"] = json!("national");
    object["spec"]["regionCode"] = json!("100000");
    let api = api_for(&env, &namespace, &object);
    let created = api
        .create(
            &PostParams::default(),
            &serde_json::from_value(object).expect("object"),
        )
        .await
        .expect("create a valid ExchangeNode");
    assert_immutable(&api, &created, "storage", json!({"size": "20Gi"})).await;
}

/// Asserts that changing `spec.<field>` of `created` to `value` is refused, naming the field.
async fn assert_immutable(
    api: &Api<DynamicObject>,
    created: &DynamicObject,
    field: &str,
    value: Value,
) {
    let mut changed = created.clone();
    changed.data["spec"][field] = value;
    let name = created.meta().name.clone().unwrap_or_default();
    match api.replace(&name, &PostParams::default(), &changed).await {
        Err(kube::Error::Api(status)) => {
            assert!(
                status.message.contains(&format!("spec.{field}")),
                "{}",
                status.message
            );
            assert!(
                status.message.contains("cannot change"),
                "{}",
                status.message
            );
        }
        other => panic!("spec.{field} changed: {other:?}"),
    }
}

#[tokio::test]
async fn kubectl_explains_documented_fields_and_lists_the_govdc_category() {
    let env = TestEnv::new("primary", "explain").await;
    install_crds(&env.client).await.expect("CRDs install");
    // The API server publishes a new CRD's OpenAPI schema a few seconds after it is Established.
    let text = govdc_test_support::eventually(
        "kubectl explain to know the CRD",
        std::time::Duration::from_secs(60),
        || async {
            let output = env.kubectl(&["explain", "departmentcloud.spec"]);
            output.status.success().then(|| output_text(&output))
        },
    )
    .await
    .expect("kubectl explain departmentcloud.spec");
    for expected in [
        "protectionLevel",
        "Multi-level protection grade",
        "environments",
        "deletionPolicy",
        "Retain",
    ] {
        assert!(
            text.contains(expected),
            "kubectl explain lacks {expected:?}:\n{text}"
        );
    }
    let output = env.kubectl(&["explain", "opendataset.spec.fields.action"]);
    assert!(
        output.status.success() && output_text(&output).contains("pseudonymize"),
        "{}",
        output_text(&output)
    );

    let output = env.kubectl(&["get", "govdc", "-A"]);
    assert!(
        output.status.success(),
        "kubectl get govdc: {}",
        output_text(&output)
    );
    let output = env.kubectl(&["api-resources", "--categories", "govdc", "-o", "name"]);
    let names = output_text(&output);
    for plural in [
        "departmentclouds",
        "exchangenodes",
        "opendatasets",
        "backuppolicies",
    ] {
        assert!(
            names.contains(plural),
            "category govdc lacks {plural}: {names}"
        );
    }
    let output = env.kubectl(&["get", "dc"]);
    assert!(
        output.status.success(),
        "short name dc: {}",
        output_text(&output)
    );
}

#[tokio::test]
async fn the_demo_samples_are_admitted() {
    let env = TestEnv::new("primary", "samples").await;
    install_crds(&env.client).await.expect("CRDs install");
    // The samples' own namespace; a dry run creates nothing in it.
    let _ = env.kubectl(&["create", "namespace", "govdc-hub"]);
    let samples = govdc_test_support::repo_root().join("deploy/samples");
    let output = env.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        &samples.to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).lines().count(),
        8,
        "{}",
        output_text(&output)
    );
    // The datasets live in tenant namespaces the DepartmentClouds make; stand in for them.
    for namespace in ["hz-health-prod", "zj-data-prod"] {
        let _ = env.kubectl(&["create", "namespace", namespace]);
    }
    let output = env.kubectl(&[
        "apply",
        "--server-side",
        "--dry-run=server",
        "-f",
        &samples.join("datasets").to_string_lossy(),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    let applied = String::from_utf8_lossy(&output.stdout);
    assert_eq!(
        applied.matches("opendataset.govdc.io/").count(),
        2,
        "{applied}"
    );
}
