//! No secret value reaches a log, an event or a status: recognisable bytes are seeded where the
//! operator and the hubs hold credentials — a hub's signing key, a remote parent's federation
//! token, a BackupPolicy target's bearer token (in a kubeconfig that works and in one that does
//! not parse) — and the operator's log, both hubs' logs, every event and the status of every
//! resource involved (and the hubs' ConfigMaps) are scanned for them, in the encodings a leak
//! would take: as is, base64 (Secret data, a serialized Secret), hex, and a Rust byte-list dump.

use std::path::Path;
use std::time::Duration;

use govdc_crds::{BackupPolicy, ExchangeNode};
use govdc_test_support::hub::{HubOptions, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, install_crds, output_text,
    repo_root,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{ObjectMeta, PostParams};
use kube::config::Kubeconfig;
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

/// Every seeded value starts with this, so that one set of patterns finds them all.
const CANARY: &str = "LEAKCANARY";

/// A recognisable value: the canary, what it is, and the test's prefix.
fn canary(env: &TestEnv, what: &str) -> String {
    format!("{CANARY}-{what}-{}-0123456789abcdef", env.prefix)
}

/// `LEAKCANAR` in base64: nine bytes are three whole base64 groups, so the base64 of any value
/// starting with them starts with this. The scan of the seeded Secret itself checks it.
const CANARY_BASE64: &str = "TEVBS0NBTkFS";

/// What a leak of a canary-prefixed value looks like in each encoding: as is, base64, hex, and
/// `Debug` of the bytes.
fn leak_patterns() -> Vec<(String, &'static str)> {
    let prefix = CANARY.as_bytes();
    let base64 = CANARY_BASE64.to_owned();
    let hex: String = prefix.iter().map(|b| format!("{b:02x}")).collect();
    let bytes = prefix
        .iter()
        .map(u8::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        (CANARY.to_owned(), "as is"),
        (base64, "base64"),
        (hex, "hex"),
        (bytes, "a byte list"),
    ]
}

/// Where in `text` (from `source`) any of `patterns` occurs, as readable findings.
fn findings(source: &str, text: &str, patterns: &[(String, &str)]) -> Vec<String> {
    patterns
        .iter()
        .filter_map(|(pattern, encoding)| {
            let at = text.find(pattern.as_str())?;
            let start = text[..at]
                .char_indices()
                .rev()
                .nth(80)
                .map_or(0, |(i, _)| i);
            let end = text[at..]
                .char_indices()
                .nth(120)
                .map_or(text.len(), |(i, _)| at + i);
            Some(format!("{source} ({encoding}): …{}…", &text[start..end]))
        })
        .collect()
}

fn secret(env: &TestEnv, namespace: &str, name: &str, key: &str, value: &[u8]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(env.labels()),
            ..Default::default()
        },
        data: Some([(key.to_owned(), ByteString(value.to_vec()))].into()),
        ..Default::default()
    }
}

/// Whether the resource's status has a condition of `type_` (any status).
fn has_condition(status: &serde_json::Value, type_: &str) -> bool {
    status["conditions"]
        .as_array()
        .is_some_and(|conditions| conditions.iter().any(|c| c["type"] == type_))
}

#[tokio::test]
async fn no_key_token_or_kubeconfig_reaches_a_log_an_event_or_a_status() {
    let env = TestEnv::new("primary", "leaks").await;
    install_crds(&env.client).await.expect("CRDs");
    let lease_namespace = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let system = env.namespace("system").await;

    // The cluster's own server and CA (public), for a kubeconfig and a remote parent's CA.
    let admin = Kubeconfig::read_from(&env.kubeconfig).expect("admin kubeconfig");
    let cluster = admin.clusters[0].cluster.clone().expect("a cluster");
    let server = cluster.server.clone().expect("a server");
    let ca_data = cluster
        .certificate_authority_data
        .clone()
        .expect("the cluster's CA");
    // ByteString deserializes from base64, as the API sends Secret data.
    let ca_pem: ByteString = serde_json::from_value(json!(ca_data)).expect("CA data is base64");

    let hub_key = canary(&env, "hubkey");
    let parent_token = canary(&env, "parenttoken");
    let bearer = canary(&env, "bearertoken");
    let broken_bearer = canary(&env, "brokenkubeconfig");
    let working_kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: [{{name: dr, cluster: {{server: '{server}', certificate-authority-data: '{}'}}}}]\nusers: [{{name: dr, user: {{token: '{bearer}'}}}}]\ncontexts: [{{name: dr, context: {{cluster: dr, user: dr}}}}]\ncurrent-context: dr\n",
        ca_data
    );
    // Parses as YAML, not as a kubeconfig: the parser's message must not quote the value.
    let broken_kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters: '{broken_bearer}'\nusers: [{{name: dr, user: {{token: {{nested: '{broken_bearer}'}}}}}}]\n"
    );

    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), &hub_namespace);
    for object in [
        // The operator uses a key Secret that already exists rather than make one.
        secret(
            &env,
            &hub_namespace,
            "national-hub-key",
            "key",
            hub_key.as_bytes(),
        ),
        secret(&env, &hub_namespace, "parent-ca", "ca.crt", &ca_pem.0),
        secret(
            &env,
            &hub_namespace,
            "parent-token",
            "token",
            parent_token.as_bytes(),
        ),
    ] {
        secrets
            .create(&PostParams::default(), &object)
            .await
            .expect("create a hub Secret");
    }
    let system_secrets: Api<Secret> = Api::namespaced(env.client.clone(), &system);
    for object in [
        secret(
            &env,
            &system,
            "dr-kubeconfig",
            "kubeconfig",
            working_kubeconfig.as_bytes(),
        ),
        secret(
            &env,
            &system,
            "broken-kubeconfig",
            "kubeconfig",
            broken_kubeconfig.as_bytes(),
        ),
    ] {
        system_secrets
            .create(&PostParams::default(), &object)
            .await
            .expect("create a kubeconfig Secret");
    }

    let (national_port, child_port) = (free_port(), free_port());
    let restore_points = repo_root().join(format!("target/tmp/{}-restore-points", env.prefix));
    let flags = [
        format!("--hub-endpoint={hub_namespace}/national=http://127.0.0.1:{national_port}"),
        format!("--hub-endpoint={hub_namespace}/remote-child=http://127.0.0.1:{child_port}"),
        format!("--restore-point-dir={}", restore_points.display()),
        "--hub-state-interval-seconds=1".to_owned(),
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
    // Nothing listens on the remote parent's port: the child's hub fails to reach it, and says so.
    let unreachable_parent = format!("https://127.0.0.1:{}", free_port());
    for (name, spec) in [
        (
            "national",
            json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
        ),
        (
            "remote-child",
            json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                   "parent": {"remote": {"endpoint": unreachable_parent,
                                         "caSecretRef": {"name": "parent-ca", "key": "ca.crt"},
                                         "tokenSecretRef": {"name": "parent-token", "key": "token"}}}}),
        ),
    ] {
        let node: ExchangeNode = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": name, "namespace": hub_namespace, "labels": {TEST_LABEL: env.prefix}},
            "spec": spec,
        }))
        .expect("ExchangeNode fixture");
        nodes
            .create(&PostParams::default(), &node)
            .await
            .expect("create an ExchangeNode");
    }
    let policies: Api<BackupPolicy> = Api::all(env.client.clone());
    for (name, secret_name) in [
        (format!("{}-token", env.prefix), "dr-kubeconfig"),
        (format!("{}-broken", env.prefix), "broken-kubeconfig"),
    ] {
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
            "spec": {
                "departmentSelector": {"matchLabels": {TEST_LABEL: env.prefix}},
                "exchangeNodes": [{"name": "national", "namespace": hub_namespace}],
                "target": {"kubeconfigSecretRef": {"namespace": system, "name": secret_name, "key": "kubeconfig"}},
                "mode": "continuous", "recoveryPointObjective": "2s",
            },
        }))
        .expect("BackupPolicy fixture");
        policies
            .create(&PostParams::default(), &policy)
            .await
            .expect("create a BackupPolicy");
    }

    let national = NodeHub::start(
        &env.client,
        &hub_namespace,
        "national",
        national_port,
        |options| options,
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the national hub: {e:#}\n{}", operator.logs()));
    assert_eq!(
        national.key,
        hub_key.as_bytes(),
        "the hub does not run with the seeded key"
    );
    let child = NodeHub::start(
        &env.client,
        &hub_namespace,
        "remote-child",
        child_port,
        |options: HubOptions| options.env("GOVDC_HUB_FEDERATION_INTERVAL", "1s"),
        WAIT,
    )
    .await
    .unwrap_or_else(|e| panic!("the child hub: {e:#}\n{}", operator.logs()));

    // Every credential in use: the national node Ready (the operator signs admin tokens with the
    // seeded key), the child told its remote parent and token (and failing to reach it), both
    // policies reporting on their targets.
    let statuses = eventually("every resource reporting", WAIT, || {
        let env = &env;
        async move {
            let output = env.kubectl(&[
                "get",
                "exchangenodes,backuppolicies",
                "-A",
                "-l",
                &env.selector(),
                "-o",
                "json",
            ]);
            let list: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
            let items = list["items"].as_array()?.clone();
            let status = |name: &str| {
                items
                    .iter()
                    .find(|i| i["metadata"]["name"] == name)
                    .map(|i| i["status"].clone())
                    .unwrap_or_default()
            };
            let national_ready = status("national")["conditions"]
                .as_array()
                .is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                });
            let child_told = status("remote-child")["parentConnection"].is_string();
            let policies_report = has_condition(&status(&format!("{}-token", env.prefix)), "Ready")
                && has_condition(&status(&format!("{}-broken", env.prefix)), "Ready");
            (items.len() == 4 && national_ready && child_told && policies_report)
                .then_some(String::from_utf8_lossy(&output.stdout).into_owned())
        }
    })
    .await
    .unwrap_or_else(|e| {
        let table = env.kubectl(&["get", "govdc", "-A", "-o", "yaml", "-l", &env.selector()]);
        panic!("{e}\n{}\n{}", output_text(&table), operator.logs())
    });
    // A few more rounds of federation retries, hub-state copies and status writes.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let broken = policies
        .get(&format!("{}-broken", env.prefix))
        .await
        .expect("the broken policy");
    let refused = broken
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| (c.reason.clone(), c.message.clone()));
    assert!(
        refused
            .as_ref()
            .is_some_and(|(reason, _)| reason == "InvalidKubeconfig"),
        "the unparseable kubeconfig was not refused as such: {refused:?}"
    );

    let patterns = leak_patterns();
    // The scanner finds the values where they belong, so that finding nothing elsewhere means
    // something: the Secrets themselves hold them base64-encoded.
    let seeded = env.kubectl(&[
        "-n",
        &hub_namespace,
        "get",
        "secret",
        "national-hub-key",
        "-o",
        "json",
    ]);
    assert!(
        !findings(
            "the key Secret",
            &String::from_utf8_lossy(&seeded.stdout),
            &patterns
        )
        .is_empty(),
        "the scan does not find the seeded key in its own Secret"
    );

    let mut leaks = Vec::new();
    let statuses: serde_json::Value = serde_json::from_str(&statuses).expect("JSON");
    for item in statuses["items"].as_array().into_iter().flatten() {
        let source = format!(
            "status of {} {}",
            item["kind"].as_str().unwrap_or_default(),
            item["metadata"]["name"].as_str().unwrap_or_default()
        );
        leaks.extend(findings(&source, &item["status"].to_string(), &patterns));
    }
    let latest = env.kubectl(&[
        "get",
        "exchangenodes,backuppolicies",
        "-A",
        "-l",
        &env.selector(),
        "-o",
        "json",
    ]);
    let latest: serde_json::Value = serde_json::from_slice(&latest.stdout).expect("JSON");
    for item in latest["items"].as_array().into_iter().flatten() {
        leaks.extend(findings(
            "latest status",
            &item["status"].to_string(),
            &patterns,
        ));
    }
    // This run's events: about its objects, whose names or namespaces carry its prefix (events
    // of an earlier run linger for an hour).
    let events = env.kubectl(&["get", "events.events.k8s.io", "-A", "-o", "json"]);
    assert!(events.status.success(), "{}", output_text(&events));
    let events: serde_json::Value = serde_json::from_slice(&events.stdout).expect("JSON");
    let ours = |event: &&serde_json::Value| {
        ["name", "namespace"].iter().any(|field| {
            event["regarding"][*field]
                .as_str()
                .is_some_and(|value| value.contains(&env.prefix))
        })
    };
    let events: Vec<&serde_json::Value> = events["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(ours)
        .collect();
    assert!(!events.is_empty(), "no event of this run to scan");
    for event in events {
        leaks.extend(findings("an event", &event.to_string(), &patterns));
    }
    let made = env.kubectl(&[
        "-n",
        &hub_namespace,
        "get",
        "configmaps,services,statefulsets,serviceaccounts",
        "-o",
        "json",
    ]);
    leaks.extend(findings(
        "the hubs' objects",
        &String::from_utf8_lossy(&made.stdout),
        &patterns,
    ));
    leaks.extend(findings("the operator's log", &operator.logs(), &patterns));
    leaks.extend(findings(
        "the national hub's log",
        &national.process.logs(),
        &patterns,
    ));
    leaks.extend(findings(
        "the child hub's log",
        &child.process.logs(),
        &patterns,
    ));
    assert!(
        leaks.is_empty(),
        "secret values leaked:\n{}",
        leaks.join("\n")
    );
    // The child hub did try its parent with the token, so its log had the chance to leak it.
    assert!(
        child.process.logs().contains(&unreachable_parent),
        "the child hub never tried its remote parent:\n{}",
        child.process.logs()
    );
}
