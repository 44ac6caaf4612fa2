//! Crash anywhere: while DepartmentClouds converge (and some are deleted), the operator is
//! SIGKILLed at seeded random moments and started again; the state it leaves is then compared,
//! object by object, with what an undisturbed operator makes of the same specs: the same
//! objects (spec, labels, owner references, finalizers), the same settled conditions, nothing
//! orphaned, nothing missing, no finalizer left behind.
//!
//! The short form runs in `cargo test` (one run, 200 tenants, three kills). The full form:
//! `GOVDC_CRASH_RUNS=20 cargo test -p govdc-operator --test crash -- --nocapture`; the seed of each
//! run is printed, and `GOVDC_CRASH_SEED=<seed>` repeats one.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::seeded::{self, Seeded};
use govdc_test_support::{OperatorProcess, TEST_LABEL, TestEnv, eventually, install_crds};
use k8s_openapi::api::core::v1::{LimitRange, Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, RoleBinding};
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const TENANTS: usize = 200;
/// Tenants deleted while the kills go on: every fifth, alternately retained and deleted.
const DELETED_EVERY: usize = 5;
const SETTLE: Duration = Duration::from_secs(300);

/// Tenant `i`'s DepartmentCloud: a spread of shapes (one or two environments, tenant or
/// environment quotas, container defaults, both deletion policies).
fn tenant(env: &TestEnv, i: usize) -> DepartmentCloud {
    let code = govdc_crds::validation::credit_code::complete(&format!("11330000MB{i:06}"));
    let environments = if i.is_multiple_of(2) {
        json!([{"name": "prod", "quota": {"requests.cpu": "2"}}, {"name": "test"}])
    } else {
        json!([{"name": "prod"}])
    };
    let mut spec = json!({
        "department": {"name": "浙江省大数据发展管理局", "creditCode": code, "level": "provincial", "regionCode": "330000"},
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
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": format!("{}-t{i:03}", env.prefix), "labels": {TEST_LABEL: env.prefix}},
        "spec": spec,
    }))
    .expect("fixture deserializes")
}

fn operator(env: &TestEnv, lease: &str) -> OperatorProcess {
    OperatorProcess::start(
        Path::new(OPERATOR),
        env,
        lease,
        "operator",
        // A short lease, so that a restarted operator takes over from its killed self soon.
        &["--lease-duration-seconds", "3"],
    )
}

/// Creates every tenant, then deletes every fifth one, while `disturb` runs beside: the same
/// workload for the undisturbed and the crashing run.
async fn workload(env: &TestEnv) {
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    for i in 0..TENANTS {
        clouds
            .create(&PostParams::default(), &tenant(env, i))
            .await
            .expect("create DepartmentCloud");
    }
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
}

/// Waits until every remaining tenant is Ready for its generation and every deleted one gone.
async fn settled(env: &TestEnv, operator: &OperatorProcess) {
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
async fn snapshot(env: &TestEnv) -> BTreeMap<String, Value> {
    let resources = [
        ApiResource::erase::<Namespace>(&()),
        ApiResource::erase::<ResourceQuota>(&()),
        ApiResource::erase::<LimitRange>(&()),
        ApiResource::erase::<NetworkPolicy>(&()),
        ApiResource::erase::<RoleBinding>(&()),
        ApiResource::erase::<ClusterRole>(&()),
        ApiResource::erase::<ClusterRoleBinding>(&()),
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
            if !mine || object.labels().get(TEST_LABEL).is_some() {
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
    objects
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
    }
}

/// SIGKILLs the operator `kills` times at seeded moments, starting it again each time, while
/// the workload runs; returns the operator left running.
async fn crashing(env: &TestEnv, lease: &str, seed: u64, kills: u64) -> OperatorProcess {
    let mut random = Seeded::new(seed);
    let mut running = operator(env, lease);
    let work = workload(env);
    tokio::pin!(work);
    let mut done = false;
    for kill in 0..kills {
        let wait = random.millis(500..6000);
        tokio::select! {
            () = &mut work, if !done => { done = true; }
            () = tokio::time::sleep(wait) => {}
        }
        // SIGKILL (dropping the process kills it), then a new process at once.
        let pid = running.pid();
        drop(running);
        eprintln!(
            "kill {} of {kills}: operator {pid} killed after {wait:?}",
            kill + 1
        );
        running = operator(env, lease);
    }
    if !done {
        work.await;
    }
    running
}

#[tokio::test]
async fn the_state_after_random_kills_equals_an_undisturbed_run() {
    let runs = seeded::env_number("GOVDC_CRASH_RUNS", 1);
    let kills = seeded::env_number("GOVDC_CRASH_KILLS", 3);
    let first_seed = seeded::seed("GOVDC_CRASH_SEED");

    let calm = TestEnv::new("primary", "crashcalm").await;
    install_crds(&calm.client).await.expect("install CRDs");
    let lease = calm.namespace("lease").await;
    let started = Instant::now();
    let undisturbed = operator(&calm, &lease);
    workload(&calm).await;
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

    let mut differences_total = 0;
    for run in 0..runs {
        let seed = first_seed.wrapping_add(run);
        eprintln!(
            "run {} of {runs}: seed {seed} (GOVDC_CRASH_SEED={seed})",
            run + 1
        );
        let env = TestEnv::new("primary", "crashkill").await;
        let lease = env.namespace("lease").await;
        let started = Instant::now();
        let survivor = crashing(&env, &lease, seed, kills).await;
        settled(&env, &survivor).await;
        let got = snapshot(&env).await;
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
        cleanup_released(&env.client, &env.prefix).await;
    }
    eprintln!("{runs} crash run(s) of {kills} kill(s): {differences_total} differences");
    cleanup_released(&calm.client, &calm.prefix).await;
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
