//! Benchmark: BackupPolicy replication between two local clusters (`bench` and `bench-dr`,
//! started fresh and stopped at the end), beside a floor measured in the same run — a bare copy
//! client that lists the same objects and server-side applies them to the standby at the same
//! concurrency.
//!
//! ```sh
//! cargo bench -p govdc-operator --bench backup_policy -- [--objects N] [--concurrency C] [--rate R] [--seconds S]
//! ```
//!
//! Prints a table: time to replicate N objects (default 10,000) against the floor, and the
//! continuous-mode RPO — from a write on the primary to its copy seen by a watch on the standby —
//! at p50 and p99 under R changes per second (default 50) for S seconds (default 20).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt, stream};
use govdc_crds::{BackupPolicy, DepartmentCloud};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, govdc_cluster_bin, install_crds, repo_root,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const NAMESPACES: usize = 10;

struct Options {
    objects: usize,
    concurrency: usize,
    rate: usize,
    seconds: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    Options {
        objects: value("--objects", 10_000),
        concurrency: value("--concurrency", 16),
        rate: value("--rate", 50),
        seconds: value("--seconds", 20),
    }
}

fn fresh(cluster: &str) {
    let _ = std::process::Command::new(govdc_cluster_bin())
        .args(["down", cluster, "--purge"])
        .current_dir(repo_root())
        .status();
}

/// N objects over ten tenant namespaces: ConfigMaps and Secrets, alternating.
async fn seed(env: &TestEnv, department: &str, options: &Options) -> anyhow::Result<Vec<String>> {
    let namespaces: Vec<String> = (0..NAMESPACES)
        .map(|i| format!("{department}-ns{i}"))
        .collect();
    for name in &namespaces {
        let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": name,
            "labels": {"govdc.io/department": department, TEST_LABEL: env.prefix}}}))?;
        Api::<Namespace>::all(env.client.clone())
            .create(&PostParams::default(), &namespace)
            .await?;
    }
    let params = PatchParams::apply("bench-seed").force();
    stream::iter(0..options.objects)
        .map(|i| {
            let client = env.client.clone();
            let namespace = namespaces[i % NAMESPACES].clone();
            let params = params.clone();
            async move {
                let name = format!("obj-{i}");
                if i % 2 == 0 {
                    let object: ConfigMap = serde_json::from_value(
                        json!({"metadata": {"name": name, "labels": {"app": "bench"}},
                        "data": {"index": i.to_string(), "payload": "x".repeat(256)}}),
                    )?;
                    Api::<ConfigMap>::namespaced(client, &namespace)
                        .patch(&name, &params, &Patch::Apply(&object))
                        .await?;
                } else {
                    let object: Secret = serde_json::from_value(
                        json!({"metadata": {"name": name, "labels": {"app": "bench"}},
                        "stringData": {"index": i.to_string(), "payload": "y".repeat(256)}}),
                    )?;
                    Api::<Secret>::namespaced(client, &namespace)
                        .patch(&name, &params, &Patch::Apply(&object))
                        .await?;
                }
                anyhow::Ok(())
            }
        })
        .buffer_unordered(32)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(namespaces)
}

/// The floor: list the objects on the primary, strip what the server set, and apply them to the
/// standby at the same concurrency.
async fn floor(
    primary: &Client,
    standby: &Client,
    namespaces: &[String],
    concurrency: usize,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let params = PatchParams::apply("bench-floor").force();
    for namespace in namespaces {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{namespace}-floor")}});
        Api::<DynamicObject>::all_with(
            standby.clone(),
            &kube::api::ApiResource::erase::<Namespace>(&()),
        )
        .patch(
            &format!("{namespace}-floor"),
            &params,
            &Patch::Apply(&object),
        )
        .await?;
    }
    let mut objects: Vec<(kube::api::ApiResource, Value)> = Vec::new();
    for resource in [
        kube::api::ApiResource::erase::<ConfigMap>(&()),
        kube::api::ApiResource::erase::<Secret>(&()),
    ] {
        let api: Api<DynamicObject> = Api::all_with(primary.clone(), &resource);
        let mut list = ListParams::default().limit(500);
        loop {
            let page = api.list(&list).await?;
            for item in page.items {
                let namespace = item.metadata.namespace.clone().unwrap_or_default();
                if !namespaces.contains(&namespace)
                    || item.metadata.name.as_deref() == Some("kube-root-ca.crt")
                {
                    continue;
                }
                let mut value = serde_json::to_value(&item)?;
                value["apiVersion"] = json!(resource.api_version);
                value["kind"] = json!(resource.kind);
                value["metadata"] = json!({"name": item.metadata.name, "namespace": format!("{namespace}-floor"),
                    "labels": item.metadata.labels});
                objects.push((resource.clone(), value));
            }
            match page.metadata.continue_ {
                Some(token) if !token.is_empty() => list = list.continue_token(&token),
                _ => break,
            }
        }
    }
    let count = objects.len();
    stream::iter(objects)
        .map(|(resource, value)| {
            let standby = standby.clone();
            let params = params.clone();
            async move {
                let namespace = value["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                let name = value["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                Api::<DynamicObject>::namespaced_with(standby, &namespace, &resource)
                    .patch(&name, &params, &Patch::Apply(&value))
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok((started.elapsed(), count))
}

fn gauge(operator: &OperatorProcess, metric: &str, policy: &str) -> Option<f64> {
    let (_, body) = operator.get("/metrics")?;
    let prefix = format!("{metric}{{policy=\"{policy}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

fn micros_now() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros())
        .unwrap_or_default()
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    fresh("bench");
    fresh("bench-dr");
    let primary = TestEnv::new("bench", "bpbench").await;
    let standby = TestEnv::new("bench-dr", "bpbench").await;
    install_crds(&primary.client).await?;
    install_crds(&standby.client).await?;
    let department = format!("{}-dept", primary.prefix);
    let cloud: DepartmentCloud = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": department, "labels": {TEST_LABEL: primary.prefix}},
        "spec": {"department": {"name": "基准测试局", "creditCode": govdc_crds::validation::credit_code::complete("11330000MB000000"),
                 "level": "provincial", "regionCode": "330000"}, "networkZone": "extranet", "protectionLevel": 2,
                 "environments": [{"name": "prod"}]}
    }))?;
    Api::<DepartmentCloud>::all(primary.client.clone())
        .create(&PostParams::default(), &cloud)
        .await?;
    eprintln!("bench: seeding {} objects", options.objects);
    let namespaces = seed(&primary, &department, &options).await?;

    let (floor_time, floor_count) = floor(
        &primary.client,
        &standby.client,
        &namespaces,
        options.concurrency,
    )
    .await?;
    eprintln!("bench: floor copied {floor_count} objects in {floor_time:?}");

    // The operator, with only the backup controller's work to do: no DepartmentCloud controller
    // work is triggered because the tenant namespaces already exist and the DepartmentCloud's
    // environments are not among them.
    let system = primary.namespace("sys").await;
    let kubeconfig = std::fs::read_to_string(&standby.kubeconfig)?;
    let secret: Secret =
        serde_json::from_value(json!({"metadata": {"name": "dr", "namespace": system},
        "stringData": {"kubeconfig": kubeconfig}}))?;
    Api::<Secret>::namespaced(primary.client.clone(), &system)
        .create(&PostParams::default(), &secret)
        .await?;
    let concurrency = options.concurrency.to_string();
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &primary,
        &system,
        "bench",
        &[
            "--backup-apply-concurrency",
            &concurrency,
            "--log-filter",
            "warn",
        ],
    );
    eventually(
        "the operator to be ready",
        Duration::from_secs(60),
        || async { operator.get("/readyz").filter(|(c, _)| *c == 200) },
    )
    .await?;
    let policy_name = format!("{}-bp", primary.prefix);
    let policy: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": policy_name, "labels": {TEST_LABEL: primary.prefix}},
        "spec": {"departmentSelector": {"matchLabels": {TEST_LABEL: primary.prefix}},
                 "target": {"kubeconfigSecretRef": {"namespace": system, "name": "dr", "key": "kubeconfig"}},
                 "namespaceMapping": {"suffix": "-dr"}, "mode": "continuous",
                 "includeKinds": ["ConfigMap", "Secret"]}
    }))?;
    let started = Instant::now();
    Api::<BackupPolicy>::all(primary.client.clone())
        .create(&PostParams::default(), &policy)
        .await?;
    // Every object and its namespace, besides the namespaces' own kube-root-ca.crt (not copied).
    let expected = (floor_count + NAMESPACES) as f64;
    eventually("the operator's copy", Duration::from_secs(900), || async {
        let copied = gauge(&operator, "govdc_backup_objects_replicated", &policy_name)?;
        let rpo = gauge(&operator, "govdc_backup_rpo_seconds", &policy_name)?;
        (copied >= expected && rpo == 0.0).then_some(())
    })
    .await?;
    let replicate_time = started.elapsed();
    eprintln!("bench: operator replicated in {replicate_time:?}");

    // RPO under load: R changes per second to probe ConfigMaps, each carrying the time it was
    // written; a watch on the standby sees each copy arrive.
    let probe_namespace = namespaces[0].clone();
    let mapped = format!("{probe_namespace}-dr");
    let watch_api: Api<ConfigMap> = Api::namespaced(standby.client.clone(), &mapped);
    let total = options.rate * options.seconds;
    let watcher_task = tokio::spawn(async move {
        let mut lags = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut events = std::pin::pin!(
            watcher(
                watch_api,
                watcher::Config::default().labels("app=rpo-probe")
            )
            .default_backoff()
            .applied_objects()
        );
        let deadline = Instant::now() + Duration::from_secs(120);
        while seen.len() < total && Instant::now() < deadline {
            let Ok(Some(Ok(object))) =
                tokio::time::timeout(Duration::from_secs(5), events.next()).await
            else {
                continue;
            };
            let data = object.data.unwrap_or_default();
            let (Some(sent), Some(seq)) = (data.get("sent"), data.get("seq")) else {
                continue;
            };
            if let Ok(sent) = sent.parse::<u128>()
                && seen.insert(seq.clone())
            {
                lags.push(Duration::from_micros(
                    micros_now().saturating_sub(sent) as u64
                ));
            }
        }
        lags
    });
    let configmaps: Api<ConfigMap> = Api::namespaced(primary.client.clone(), &probe_namespace);
    let params = PatchParams::apply("bench-probe").force();
    let interval = Duration::from_secs_f64(1.0 / options.rate as f64);
    let mut tick = tokio::time::interval(interval);
    for seq in 0..total {
        tick.tick().await;
        let name = format!("rpo-probe-{}", seq % 20);
        let object: ConfigMap = serde_json::from_value(
            json!({"metadata": {"name": name, "labels": {"app": "rpo-probe"}},
            "data": {"sent": micros_now().to_string(), "seq": seq.to_string()}}),
        )?;
        let configmaps = configmaps.clone();
        let params = params.clone();
        tokio::spawn(async move {
            configmaps
                .patch(&name, &params, &Patch::Apply(&object))
                .await
        });
    }
    let mut lags = watcher_task.await?;
    let received = lags.len();
    drop(operator);

    let ratio = replicate_time.as_secs_f64() / floor_time.as_secs_f64();
    let p50 = percentile(&mut lags, 0.5);
    let p99 = percentile(&mut lags, 0.99);
    let rows: BTreeMap<usize, [String; 4]> = BTreeMap::from([
        (
            1,
            [
                format!(
                    "replicate {} objects (+{NAMESPACES} namespaces)",
                    floor_count
                ),
                format!("{:.1} s", replicate_time.as_secs_f64()),
                format!("{:.1} s (bare copy client)", floor_time.as_secs_f64()),
                format!("{ratio:.2}x (target <= 1.3x)"),
            ],
        ),
        (
            2,
            [
                format!("continuous RPO p50, {} changes/s", options.rate),
                format!("{:.0} ms", p50.as_secs_f64() * 1000.0),
                "-".into(),
                format!("{received}/{total} changes seen on the standby"),
            ],
        ),
        (
            3,
            [
                format!("continuous RPO p99, {} changes/s", options.rate),
                format!("{:.0} ms", p99.as_secs_f64() * 1000.0),
                "-".into(),
                "target < 2 s".into(),
            ],
        ),
    ]);
    println!("\n| measure | govdc | floor | verdict |\n| --- | --- | --- | --- |");
    for [what, ours, floor, verdict] in rows.values() {
        println!("| {what} | {ours} | {floor} | {verdict} |");
    }
    drop(primary);
    drop(standby);
    fresh("bench");
    fresh("bench-dr");
    Ok(())
}
