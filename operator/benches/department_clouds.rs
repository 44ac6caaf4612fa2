//! Benchmark: N DepartmentClouds (default 1,000, two environments each) on the local control
//! plane, beside a floor measured in the same run — a bare client writing the same objects at the
//! same concurrency.
//!
//! ```sh
//! cargo bench -p govdc-operator --bench department_clouds -- [--tenants N] [--concurrency C]
//! ```
//!
//! Prints a table: time to all Ready against the floor, writes made by a full resync of converged
//! state (from the API server's own `apiserver_request_total`), the operator's peak RSS, the time
//! from a spec change to the operator's first write, and the time to repair a deleted object.
//! It runs on a cluster of its own (`bench`), started fresh and stopped at the end.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use govdc_crds::DepartmentCloud;
use govdc_operator::controllers::FIELD_MANAGER;
use govdc_operator::controllers::department_cloud::{build, quotas};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, govdc_cluster_bin, install_crds, repo_root,
};
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");

struct Options {
    tenants: usize,
    concurrency: usize,
    samples: usize,
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
        tenants: value("--tenants", 1000),
        concurrency: value("--concurrency", 8),
        samples: value("--samples", 100),
    }
}

fn department_cloud(label: &str, name: &str) -> DepartmentCloud {
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name, "labels": {TEST_LABEL: label}},
        "spec": {
            "department": {"name": "基准测试局", "creditCode": govdc_crds::validation::credit_code::complete("11330000MB000000"),
                           "level": "provincial", "regionCode": "330000"},
            "networkZone": "extranet", "protectionLevel": 3,
            "environments": [{"name": "prod"}, {"name": "test"}],
            "quota": {"requests.cpu": "4", "requests.memory": "8Gi"},
            "admins": [{"kind": "User", "name": format!("{name}-admin")}],
        }
    }))
    .expect("fixture")
}

/// The floor: a bare client creating the DepartmentCloud and applying the same objects the
/// operator makes, then writing a status, at the same concurrency.
async fn floor(client: &Client, label: &str, options: &Options) -> anyhow::Result<Duration> {
    let clouds: Api<DepartmentCloud> = Api::all(client.clone());
    let started = Instant::now();
    stream::iter(0..options.tenants)
        .map(|i| {
            let clouds = clouds.clone();
            let client = client.clone();
            async move {
                let cloud = department_cloud(label, &format!("floor-{label}-{i}"));
                let created = clouds.create(&PostParams::default(), &cloud).await?;
                let desired = build::build(&created, &quotas::plan(&created.spec)?)?;
                let params = PatchParams::apply(FIELD_MANAGER).force();
                for object in &desired {
                    object.api(&client).patch(&object.object.metadata.name.clone().unwrap_or_default(), &params, &Patch::Apply(&object.object)).await?;
                }
                let status = json!({"apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
                    "status": {"observedGeneration": 1, "conditions": [{"type": "Ready", "status": "True", "reason": "Provisioned",
                    "message": "", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}});
                clouds.patch_status(&created.metadata.name.clone().unwrap_or_default(), &params, &Patch::Apply(&status)).await?;
                anyhow::Ok(())
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    Ok(started.elapsed())
}

/// Write requests the API server counted for the resources the operator touches.
async fn operator_writes(client: &Client) -> anyhow::Result<f64> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
    let resources = [
        "namespaces",
        "resourcequotas",
        "limitranges",
        "networkpolicies",
        "rolebindings",
        "clusterroles",
        "clusterrolebindings",
        "departmentclouds",
        "events",
    ];
    Ok(scrape
        .samples
        .iter()
        .filter(|s| s.metric == "apiserver_request_total")
        .filter(|s| {
            matches!(
                s.labels.get("verb"),
                Some("POST" | "PUT" | "PATCH" | "APPLY" | "DELETE")
            )
        })
        .filter(|s| {
            s.labels
                .get("resource")
                .is_some_and(|r| resources.contains(&r))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
            _ => 0.0,
        })
        .sum())
}

fn peak_rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map(|kib| kib / 1024.0)
        .unwrap_or(f64::NAN)
}

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    // A fresh cluster of its own, so other work does not skew the figures.
    let cluster = govdc_cluster_bin();
    let _ = std::process::Command::new(&cluster)
        .args(["down", "bench", "--purge"])
        .current_dir(repo_root())
        .status();
    let env = TestEnv::new("bench", "bench").await;
    install_crds(&env.client).await?;
    let lease_namespace = env.namespace("lease").await;
    eprintln!(
        "bench: {} tenants x 2 environments, concurrency {}",
        options.tenants, options.concurrency
    );

    let floor_time = floor(&env.client, &format!("{}-floor", env.prefix), &options).await?;
    eprintln!("bench: floor {floor_time:?}");

    let concurrency = options.concurrency.to_string();
    let mut operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "bench",
        &[
            "--department-cloud-concurrency",
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
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let selector = env.selector();
    let started = Instant::now();
    stream::iter(0..options.tenants)
        .map(|i| {
            let clouds = clouds.clone();
            let cloud = department_cloud(&env.prefix, &format!("{}-{i}", env.prefix));
            async move {
                clouds
                    .create(&PostParams::default(), &cloud)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect::<Vec<()>>()
        .await?;
    // Watch rather than poll, so that measuring adds no load of its own.
    let mut ready = std::collections::HashSet::new();
    let mut changes = std::pin::pin!(
        kube::runtime::watcher(
            clouds.clone(),
            kube::runtime::watcher::Config::default().labels(&selector)
        )
        .default_backoff()
        .applied_objects()
    );
    while ready.len() < options.tenants {
        let cloud = tokio::time::timeout(Duration::from_secs(600), changes.try_next())
            .await??
            .ok_or_else(|| anyhow::anyhow!("the watch ended"))?;
        if cloud.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        }) {
            ready.insert(cloud.metadata.name.clone().unwrap_or_default());
        }
    }
    let converge_time = started.elapsed();
    eprintln!("bench: operator converged in {converge_time:?}");
    // Let the quota controller's status updates and their reconciles settle.
    tokio::time::sleep(Duration::from_secs(10)).await;

    // A full resync of converged state: a fresh operator process lists and reconciles everything.
    assert!(
        operator.terminate(Duration::from_secs(30)),
        "operator did not stop"
    );
    let before = operator_writes(&env.client).await?;
    let mut operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "bench2",
        &[
            "--department-cloud-concurrency",
            &concurrency,
            "--log-filter",
            "warn",
        ],
    );
    eventually(
        "the restarted operator to be ready",
        Duration::from_secs(120),
        || async { operator.get("/readyz").filter(|(c, _)| *c == 200) },
    )
    .await?;
    // Every tenant reconciled once: wait until the reconcile counter reaches N and stays.
    eventually("a full resync", Duration::from_secs(600), || async {
        let (_, body) = operator.get("/metrics")?;
        let count: f64 = body
            .lines()
            .find(|l| l.starts_with("govdc_reconcile_total{controller=\"department_cloud\"}"))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()?;
        (count >= options.tenants as f64).then_some(())
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resync_writes = operator_writes(&env.client).await? - before;

    // Spec change to first write: raise one tenant's quota, time until its ResourceQuota changes.
    let mut reactions = Vec::new();
    for i in 0..options.samples.min(options.tenants) {
        let name = format!("{}-{i}", env.prefix);
        let quotas: Api<ResourceQuota> =
            Api::namespaced(env.client.clone(), &format!("{name}-prod"));
        let patch = json!({"spec": {"quota": {"requests.cpu": "6", "requests.memory": "8Gi"}}});
        let t0 = Instant::now();
        clouds
            .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
            .await?;
        loop {
            let hard = quotas
                .get("govdc-quota")
                .await?
                .spec
                .and_then(|s| s.hard)
                .unwrap_or_default();
            if hard.get("requests.cpu").is_some_and(|q| q.0 == "3") {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("no reaction to a spec change of {name} in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        reactions.push(t0.elapsed());
    }

    // Drift: delete a NetworkPolicy, time until it is back.
    let mut repairs = Vec::new();
    for i in 0..20.min(options.tenants) {
        let policies: Api<NetworkPolicy> =
            Api::namespaced(env.client.clone(), &format!("{}-{i}-test", env.prefix));
        let t0 = Instant::now();
        policies
            .delete("govdc-default-deny", &DeleteParams::default())
            .await?;
        loop {
            if policies
                .get_opt("govdc-default-deny")
                .await?
                .is_some_and(|p| p.metadata.deletion_timestamp.is_none())
            {
                break;
            }
            if t0.elapsed() > Duration::from_secs(10) {
                anyhow::bail!("a deleted NetworkPolicy was not repaired in 10 s");
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        repairs.push(t0.elapsed());
    }
    let rss = peak_rss_mib(operator.pid());
    assert!(operator.terminate(Duration::from_secs(30)));

    let ratio = converge_time.as_secs_f64() / floor_time.as_secs_f64();
    let rows: BTreeMap<usize, [String; 4]> = BTreeMap::from([
        (
            1,
            [
                format!("time to {} tenants Ready", options.tenants),
                format!("{:.1} s", converge_time.as_secs_f64()),
                format!("{:.1} s (bare client)", floor_time.as_secs_f64()),
                format!("{ratio:.2}x (target <= 1.25x)"),
            ],
        ),
        (
            2,
            [
                "writes in a full resync of converged state".into(),
                format!("{resync_writes}"),
                "0".into(),
                "target 0".into(),
            ],
        ),
        (
            3,
            [
                "operator peak RSS (after resync)".into(),
                format!("{rss:.1} MiB"),
                "-".into(),
                "target < 64 MiB".into(),
            ],
        ),
        (
            4,
            [
                "spec change -> first write, p50".into(),
                ms(percentile(&mut reactions, 0.5)),
                "-".into(),
                String::new(),
            ],
        ),
        (
            5,
            [
                "spec change -> first write, p99".into(),
                ms(percentile(&mut reactions, 0.99)),
                "-".into(),
                "target < 50 ms".into(),
            ],
        ),
        (
            6,
            [
                "deleted object repaired, p50".into(),
                ms(percentile(&mut repairs, 0.5)),
                "-".into(),
                String::new(),
            ],
        ),
        (
            7,
            [
                "deleted object repaired, max".into(),
                ms(percentile(&mut repairs, 1.0)),
                "-".into(),
                "target < 1 s".into(),
            ],
        ),
    ]);
    println!("\n| measure | govdc | floor | verdict |\n| --- | --- | --- | --- |");
    for [what, ours, floor, verdict] in rows.values() {
        println!("| {what} | {ours} | {floor} | {verdict} |");
    }
    drop(env);
    let _ = std::process::Command::new(&cluster)
        .args(["down", "bench", "--purge"])
        .current_dir(repo_root())
        .status();
    Ok(())
}
