//! Random specs generated from the CRD schemas, applied to the real API server with the operator
//! running: each one is either refused at admission with a message naming a field, or ends with
//! a `Ready` condition and a reason for its generation; none panics the operator or leaves it
//! without an answer. The specs are mutations of a valid one, guided by the schema the API
//! server itself enforces (enums, bounds, lengths, types, quantities), so most land near the
//! edges where mistakes hide. Seeded: the seed is printed, `GOVDC_SPECS_SEED=<seed>` repeats a
//! run and `GOVDC_SPECS=<n>` sets how many of each kind.

use std::path::Path;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode};
use govdc_test_support::seeded::{self, Seeded};
use govdc_test_support::{OperatorProcess, TEST_LABEL, TestEnv, eventually, install_crds};
use kube::api::{ApiResource, DynamicObject, PostParams};
use kube::{Api, CustomResourceExt};
use serde_json::{Map, Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(90);

/// Values people get wrong in a quantity.
const QUANTITIES: &[&str] = &[
    "1",
    "500m",
    "0",
    "-1",
    "2Gi",
    "0.5",
    "1e3",
    "1.5Ti",
    "abc",
    "",
    "1Gb",
    "99999999999999Ei",
    "-0.001",
    "+4",
    "1e-3",
    "01",
    ".5",
];

/// Strings that break naive assumptions: empty, long, unicode, markup, separators.
fn odd_string(random: &mut Seeded) -> Value {
    let long = "x".repeat(300);
    let strings = [
        "",
        "prod",
        "a-b",
        "-bad",
        "UPPER",
        "浙江省",
        "<script>alert(1)</script>",
        "a.b",
        "a/b",
        "  ",
        long.as_str(),
        "0",
        "null",
    ];
    Value::String((*random.pick(&strings)).to_owned())
}

/// A value for `schema` near `base` (the valid spec's value at the same place, when there is
/// one): usually `base` itself, sometimes a neighbour the schema allows or forbids.
fn mutate(schema: &Value, base: Option<&Value>, random: &mut Seeded, depth: usize) -> Value {
    let mutate_here = random.chance(5) || base.is_none();
    let types = schema["type"].as_str().unwrap_or("");
    if schema["x-kubernetes-int-or-string"] == true && mutate_here {
        return json!(random.pick(QUANTITIES));
    }
    match types {
        "object" if depth < 6 => {
            let mut out = Map::new();
            let base_map = base.and_then(Value::as_object);
            if let Some(properties) = schema["properties"].as_object() {
                for (name, property) in properties {
                    let current = base_map.and_then(|m| m.get(name));
                    // Fields the valid spec leaves out are added now and then.
                    if current.is_none() && !random.chance(15) {
                        continue;
                    }
                    // A field the valid spec has is dropped now and then.
                    if current.is_some() && random.chance(4) {
                        continue;
                    }
                    out.insert(name.clone(), mutate(property, current, random, depth + 1));
                }
            }
            if schema["additionalProperties"].is_object() {
                let values = &schema["additionalProperties"];
                if let Some(map) = base_map {
                    for (key, value) in map {
                        out.insert(key.clone(), mutate(values, Some(value), random, depth + 1));
                    }
                }
                if random.chance(20) {
                    let keys = [
                        "requests.cpu",
                        "limits.memory",
                        "pods",
                        "cpu",
                        "memory",
                        "count/secrets",
                        "nvidia.com/gpu",
                        "bogus",
                        "requests.storage",
                    ];
                    out.insert(
                        (*random.pick(&keys)).to_owned(),
                        mutate(values, None, random, depth + 1),
                    );
                }
            }
            Value::Object(out)
        }
        "array" if depth < 6 => {
            let items = &schema["items"];
            let mut out: Vec<Value> = base
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .map(|v| mutate(items, Some(v), random, depth + 1))
                        .collect()
                })
                .unwrap_or_default();
            if random.chance(15) {
                let copy = out.first().cloned();
                out.push(copy.unwrap_or_else(|| mutate(items, None, random, depth + 1)));
            }
            if random.chance(5) {
                out.clear();
            }
            Value::Array(out)
        }
        _ if !mutate_here => base.cloned().unwrap_or(Value::Null),
        "string" => {
            if let Some(choices) = schema["enum"].as_array()
                && random.chance(80)
            {
                return random.pick(choices).clone();
            }
            odd_string(random)
        }
        "integer" | "number" => {
            let min = schema["minimum"].as_i64().unwrap_or(0);
            let max = schema["maximum"].as_i64().unwrap_or(1000);
            let candidates = [min, max, min - 1, max + 1, 0, -1, i64::from(i32::MAX)];
            json!(random.pick(&candidates))
        }
        "boolean" => json!(random.chance(50)),
        _ => base.cloned().unwrap_or(Value::Null),
    }
}

/// The schema of `spec` as the CRD carries it.
fn spec_schema(
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> Value {
    let crd = serde_json::to_value(crd).expect("CRD JSON");
    crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"].clone()
}

fn department_cloud_base(i: usize) -> Value {
    json!({
        "department": {"name": "浙江省大数据发展管理局", "creditCode": govdc_crds::validation::credit_code::complete(&format!("11330000ME{i:06}")), "level": "provincial", "regionCode": "330000"},
        "networkZone": "extranet",
        "protectionLevel": 3,
        "environments": [{"name": "prod", "quota": {"requests.cpu": "2"}}, {"name": "test"}],
        "quota": {"requests.cpu": "4", "requests.memory": "8Gi"},
        "containerDefaults": {"defaultRequest": {"cpu": "100m"}, "defaultLimit": {"cpu": "500m"}},
        "admins": [{"kind": "User", "name": "admin"}],
        "viewers": [{"kind": "Group", "name": "auditors"}],
        "deletionPolicy": "Delete",
    })
}

fn exchange_node_base() -> Value {
    json!({
        "level": "provincial", "regionCode": "330000", "networkZone": "extranet",
        "parent": {"nodeRef": {"name": "national"}},
        "allowedDepartments": ["zj-data"],
        "replicas": 1,
    })
}

/// What became of one generated object.
enum Outcome {
    Refused(String),
    Decided { reason: String, message: String },
}

async fn apply_and_wait(
    api: &Api<DynamicObject>,
    object: &DynamicObject,
    name: &str,
) -> Result<Outcome, String> {
    match api.create(&PostParams::default(), object).await {
        Err(kube::Error::Api(status)) if status.code == 422 || status.code == 400 => {
            return Ok(Outcome::Refused(status.message));
        }
        Err(error) => return Err(format!("{name}: {error}")),
        Ok(_) => {}
    }
    let found = eventually(&format!("{name} decided"), WAIT, || async {
        let object = api.get(name).await.ok()?;
        let status = object.data.get("status")?;
        (status["observedGeneration"]
            == object.metadata.generation.map_or(Value::Null, |g| json!(g)))
        .then_some(())?;
        let ready = status["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == "Ready")?
            .clone();
        let text = |key: &str| ready[key].as_str().unwrap_or_default().to_owned();
        Some((text("reason"), text("message")))
    })
    .await
    .map_err(|e| format!("{e}: {}", serde_json::to_string(object).unwrap_or_default()))?;
    let (reason, message) = found;
    Ok(Outcome::Decided { reason, message })
}

#[tokio::test]
async fn every_generated_spec_is_refused_naming_a_field_or_decided_with_a_reason() {
    let count = seeded::env_number("GOVDC_SPECS", 40) as usize;
    let seed = seeded::seed("GOVDC_SPECS_SEED");
    let mut random = Seeded::new(seed);

    let env = TestEnv::new("primary", "randspec").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease = env.namespace("lease").await;
    let hub_namespace = env.namespace("hub").await;
    let mut operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease,
        "operator",
        &["--hub-image", "registry.test/govdc-hub:e2e"],
    );

    let kinds: [(ApiResource, Value, Option<&str>); 2] = [
        (
            ApiResource::erase::<DepartmentCloud>(&()),
            spec_schema(&DepartmentCloud::crd()),
            None,
        ),
        (
            ApiResource::erase::<ExchangeNode>(&()),
            spec_schema(&ExchangeNode::crd()),
            Some(hub_namespace.as_str()),
        ),
    ];
    let (mut refused, mut decided) = (0, 0);
    let mut failures = Vec::new();
    let mut reasons = std::collections::BTreeMap::<String, usize>::new();
    for (resource, schema, namespace) in &kinds {
        for i in 0..count {
            let base = match resource.kind.as_str() {
                "DepartmentCloud" => department_cloud_base(i),
                _ => exchange_node_base(),
            };
            let spec = mutate(schema, Some(&base), &mut random, 0);
            let name = format!(
                "{}-{}{i:02}",
                env.prefix,
                resource.kind.to_lowercase().chars().next().unwrap_or('x')
            );
            let object: DynamicObject = serde_json::from_value(json!({
                "apiVersion": resource.api_version, "kind": resource.kind,
                "metadata": {"name": name, "namespace": namespace, "labels": {TEST_LABEL: env.prefix}},
                "spec": spec,
            }))
            .expect("a dynamic object");
            let api: Api<DynamicObject> = match namespace {
                Some(ns) => Api::namespaced_with(env.client.clone(), ns, resource),
                None => Api::all_with(env.client.clone(), resource),
            };
            match apply_and_wait(&api, &object, &name).await {
                Ok(Outcome::Refused(message)) => {
                    refused += 1;
                    if !message.contains("spec") {
                        failures.push(format!("{name}: refused without naming a field: {message}"));
                    }
                }
                Ok(Outcome::Decided { reason, message }) => {
                    decided += 1;
                    if reason.ends_with("Failed") {
                        eprintln!("{name}: {reason}: {message}");
                    }
                    // A name the API server cannot even route got past admission.
                    if message.contains("invalid uri") {
                        failures.push(format!(
                            "{name}: admitted a name no object can have: {message}"
                        ));
                    }
                    for dump in ["Status {", "ApiError", "Some(", "ErrorResponse"] {
                        if message.contains(dump) {
                            failures.push(format!("{name}: a Rust dump in the message: {message}"));
                        }
                    }
                    if reason.is_empty() || reason.contains(' ') {
                        failures.push(format!(
                            "{name}: Ready without a CamelCase reason: {reason:?}"
                        ));
                    }
                    *reasons
                        .entry(format!("{} {reason}", resource.kind))
                        .or_default() += 1;
                }
                Err(error) => failures.push(error),
            }
            assert!(
                operator.is_running(),
                "the operator died on {name}:\n{}",
                operator.logs()
            );
        }
    }
    eprintln!("{refused} refused at admission, {decided} decided: {reasons:?}");
    let logs = operator.logs();
    assert!(!logs.contains("panicked"), "the operator panicked:\n{logs}");
    for dump in ["Status {", "ApiError", "ErrorResponse {"] {
        assert!(
            !logs.contains(&format!("\"message\":\"{dump}")),
            "{dump} in a log message"
        );
    }
    assert!(
        failures.is_empty(),
        "seed {seed}: {} of {} specs misbehaved:\n{}",
        failures.len(),
        count * kinds.len(),
        failures.join("\n")
    );
    assert!(
        refused > 0 && decided > 0,
        "the generator explored one side only: {refused} refused, {decided} decided"
    );
}
