//! Benchmark: BackupPolicy replication between two local clusters of its own (`bench-backup` and
//! `bench-backup-dr`, started fresh and stopped at the end; not `bench`, which the DepartmentCloud
//! benchmark uses), beside a floor measured in the same run — a bare copy client that lists the
//! same objects and server-side applies them to the standby at the same concurrency.
//!
//! ```sh
//! cargo bench -p govdc-operator --bench backup_policy -- [--objects N] [--concurrency C] [--rate R] [--seconds S] [--rounds K]
//! ```
//!
//! The floor and the operator alternate, K rounds each (default 3), each round into namespaces of
//! its own on the standby (emptied before the next round, so that no round lists another's
//! copies): each round's operator run is a new BackupPolicy replicating N objects (default
//! 10,000) from scratch. Prints each round, the median ratio with its spread, the API requests
//! each side made of the standby and the primary (the API servers' own counters), and where the
//! operator's time went (its `replication phase` debug events). Then the continuous-mode RPO —
//! from a write on the primary to its copy seen by a watch on the standby — at p50 and p99 under
//! R changes per second (default 50) for S seconds (default 20).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt, stream};
use govdc_crds::{BackupPolicy, DepartmentCloud};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, condition, eventually, govdc_cluster_bin, install_crds,
    repo_root,
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
    rounds: usize,
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
        rounds: value("--rounds", 3).max(1),
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
    suffix: &str,
) -> anyhow::Result<(Duration, usize)> {
    let started = Instant::now();
    let params = PatchParams::apply("bench-floor").force();
    for namespace in namespaces {
        let object = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": format!("{namespace}{suffix}")}});
        Api::<DynamicObject>::all_with(
            standby.clone(),
            &kube::api::ApiResource::erase::<Namespace>(&()),
        )
        .patch(
            &format!("{namespace}{suffix}"),
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
                value["metadata"] = json!({"name": item.metadata.name, "namespace": format!("{namespace}{suffix}"),
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

/// The requests an API server has served so far, by verb (its `apiserver_request_total`
/// counter), leaving out its own /metrics.
async fn served(client: &Client) -> anyhow::Result<BTreeMap<String, f64>> {
    let request = http::Request::get("/metrics").body(Vec::new())?;
    let text = client.request_text(request).await?;
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
    let mut by_verb = BTreeMap::new();
    for sample in scrape.samples {
        if sample.metric != "apiserver_request_total" || sample.labels.get("resource").is_none() {
            continue;
        }
        let verb = sample.labels.get("verb").unwrap_or_default().to_owned();
        if let prometheus_parse::Value::Counter(count) = sample.value {
            *by_verb.entry(verb).or_insert(0.0) += count;
        }
    }
    Ok(by_verb)
}

/// The requests served between two counts, as `LIST 21, PATCH 10010`.
fn requests_between(before: &BTreeMap<String, f64>, after: &BTreeMap<String, f64>) -> String {
    let parts: Vec<String> = after
        .iter()
        .map(|(verb, n)| (verb, n - before.get(verb).copied().unwrap_or_default()))
        .filter(|(_, n)| *n >= 1.0)
        .map(|(verb, n)| format!("{verb} {n:.0}"))
        .collect();
    parts.join(", ")
}

/// Deletes the standby's namespaces of a round and waits until they (and all they held) are gone,
/// so that the next round neither lists them nor shares the API server with their deletion.
async fn empty_standby(standby: &Client, namespaces: &[String]) -> anyhow::Result<()> {
    let api: Api<Namespace> = Api::all(standby.clone());
    for name in namespaces {
        let _ = api.delete(name, &Default::default()).await;
    }
    eventually(
        "the round's namespaces to be gone",
        Duration::from_secs(300),
        || async {
            for name in namespaces {
                if !matches!(api.get_opt(name).await, Ok(None)) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await
}

/// CPU seconds (user and system) process `pid` has used so far, from /proc (clock ticks of
/// 1/100 s, Linux's USER_HZ).
fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name, in parentheses, may hold spaces: count fields after it.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_default()
    };
    (ticks(11) + ticks(12)) / 100.0
}

/// The processes whose CPU a round is charged with: each cluster's etcd, API server and
/// controller-manager (from the launcher's pid files beside the kubeconfig), and the client.
fn processes(envs: &[&TestEnv], client: (&str, u32)) -> Vec<(String, u32)> {
    let mut all = Vec::new();
    for env in envs {
        let dir = env
            .kubeconfig
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default();
        for component in ["etcd", "kube-apiserver", "kube-controller-manager"] {
            let pid = std::fs::read_to_string(dir.join(format!("{component}.pid")))
                .ok()
                .and_then(|p| p.trim().parse().ok());
            if let Some(pid) = pid {
                all.push((format!("{} {component}", env.cluster), pid));
            }
        }
    }
    all.push((client.0.to_owned(), client.1));
    all
}

/// CPU seconds of each process.
fn cpu(processes: &[(String, u32)]) -> Vec<f64> {
    processes.iter().map(|(_, pid)| cpu_seconds(*pid)).collect()
}

/// The CPU each process used between two readings, as `bench-backup-dr kube-apiserver 20.1, ...`.
fn cpu_between(processes: &[(String, u32)], before: &[f64], after: &[f64]) -> String {
    let parts: Vec<String> = processes
        .iter()
        .zip(before.iter().zip(after))
        .map(|((name, _), (b, a))| (name, a - b))
        .filter(|(_, used)| *used >= 0.05)
        .map(|(name, used)| format!("{name} {used:.1}"))
        .collect();
    let total: f64 = before.iter().zip(after).map(|(b, a)| a - b).sum();
    format!("{} (total {total:.1})", parts.join(", "))
}

/// One `replication phase` event of the operator's log.
struct Phase {
    phase: String,
    objects: u64,
    took_ms: f64,
    since_start_ms: f64,
}

/// The `replication phase` events the operator logged for `policy`.
fn phases(log: &str, policy: &str) -> Vec<Phase> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|v| v["message"] == "replication phase" && v["policy"] == policy)
        .map(|v| Phase {
            phase: v["phase"].as_str().unwrap_or_default().to_owned(),
            objects: v["objects"].as_u64().unwrap_or_default(),
            took_ms: v["took_ms"].as_f64().unwrap_or_default(),
            since_start_ms: v["since_start_ms"].as_f64().unwrap_or_default(),
        })
        .collect()
}

/// The phases up to the first `in sync`, as `preflight 12 ms @40; ...`: what the first sync of
/// a new policy spent its time on.
fn first_sync(phases: &[Phase]) -> String {
    let mut steps = Vec::new();
    for phase in phases {
        steps.push(format!(
            "{} {} ({:.0} ms, at {:.0} ms)",
            phase.phase, phase.objects, phase.took_ms, phase.since_start_ms
        ));
        if phase.phase == "in sync" {
            break;
        }
    }
    steps.join("; ")
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n == 0 {
        return 0.0;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// One round's measurements.
struct Round {
    floor: Duration,
    govdc: Duration,
    floor_requests: (String, String),
    govdc_requests: (String, String),
    floor_cpu: String,
    govdc_cpu: String,
    phases: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    let (primary_cluster, standby_cluster) = ("bench-backup", "bench-backup-dr");
    fresh(primary_cluster);
    fresh(standby_cluster);
    let primary = TestEnv::new(primary_cluster, "bpbench").await;
    let standby = TestEnv::new(standby_cluster, "bpbench").await;
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
    let clouds = Api::<DepartmentCloud>::all(primary.client.clone());
    clouds.create(&PostParams::default(), &cloud).await?;
    eprintln!("bench: seeding {} objects", options.objects);
    let namespaces = seed(&primary, &department, &options).await?;

    // The operator, with only the backup controller's work to do once the DepartmentCloud is
    // Ready (its one environment namespace, protected too, holds nothing that is copied).
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
            "warn,govdc_operator::controllers::backup_policy::replicator::phases=debug",
        ],
    );
    eventually(
        "the operator to be ready",
        Duration::from_secs(60),
        || async { operator.get("/readyz").filter(|(c, _)| *c == 200) },
    )
    .await?;
    condition(
        &clouds,
        &department,
        "Ready",
        "True",
        Duration::from_secs(120),
    )
    .await?;

    let policies = Api::<BackupPolicy>::all(primary.client.clone());
    let floor_processes = processes(&[&primary, &standby], ("client", std::process::id()));
    let operator_processes = processes(&[&primary, &standby], ("client", operator.pid()));
    let mut rounds = Vec::new();
    let mut floor_count = 0;
    for round in 1..=options.rounds {
        let last = round == options.rounds;
        let (primary_before, standby_before) = (
            served(&primary.client).await?,
            served(&standby.client).await?,
        );
        let cpu_before = cpu(&floor_processes);
        let suffix = format!("-floor{round}");
        let (floor_time, count) = floor(
            &primary.client,
            &standby.client,
            &namespaces,
            options.concurrency,
            &suffix,
        )
        .await?;
        floor_count = count;
        let floor_cpu = cpu_between(&floor_processes, &cpu_before, &cpu(&floor_processes));
        let floor_requests = (
            requests_between(&standby_before, &served(&standby.client).await?),
            requests_between(&primary_before, &served(&primary.client).await?),
        );
        eprintln!("bench: round {round}: the floor copied {count} objects in {floor_time:?}");
        let copies: Vec<String> = namespaces.iter().map(|n| format!("{n}{suffix}")).collect();
        empty_standby(&standby.client, &copies).await?;

        let policy_name = format!("{}-bp{round}", primary.prefix);
        let suffix = format!("-dr{round}");
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": policy_name, "labels": {TEST_LABEL: primary.prefix}},
            "spec": {"departmentSelector": {"matchLabels": {TEST_LABEL: primary.prefix}},
                     "target": {"kubeconfigSecretRef": {"namespace": system, "name": "dr", "key": "kubeconfig"}},
                     "namespaceMapping": {"suffix": suffix}, "mode": "continuous",
                     "includeKinds": ["ConfigMap", "Secret"]}
        }))?;
        let (primary_before, standby_before) = (
            served(&primary.client).await?,
            served(&standby.client).await?,
        );
        let cpu_before = cpu(&operator_processes);
        let started = Instant::now();
        policies.create(&PostParams::default(), &policy).await?;
        // Every object and its namespace, besides the namespaces' own kube-root-ca.crt (not
        // copied).
        let expected = (count + NAMESPACES) as f64;
        eventually("the operator's copy", Duration::from_secs(900), || async {
            let copied = gauge(&operator, "govdc_backup_objects_replicated", &policy_name)?;
            let rpo = gauge(&operator, "govdc_backup_rpo_seconds", &policy_name)?;
            (copied >= expected && rpo == 0.0).then_some(())
        })
        .await?;
        let govdc_time = started.elapsed();
        let govdc_cpu = cpu_between(&operator_processes, &cpu_before, &cpu(&operator_processes));
        let govdc_requests = (
            requests_between(&standby_before, &served(&standby.client).await?),
            requests_between(&primary_before, &served(&primary.client).await?),
        );
        eprintln!("bench: round {round}: the operator replicated in {govdc_time:?}");
        rounds.push(Round {
            floor: floor_time,
            govdc: govdc_time,
            floor_requests,
            govdc_requests,
            floor_cpu,
            govdc_cpu,
            phases: first_sync(&phases(&operator.logs(), &policy_name)),
        });
        if !last {
            // The next round is a new policy from scratch: this one's replicator stops (its
            // gauges go) before its copies are emptied away.
            policies.delete(&policy_name, &Default::default()).await?;
            eventually(
                "the replicator to stop",
                Duration::from_secs(60),
                || async {
                    gauge(&operator, "govdc_backup_objects_replicated", &policy_name)
                        .is_none()
                        .then_some(())
                },
            )
            .await?;
            let mut copies: Vec<String> =
                namespaces.iter().map(|n| format!("{n}{suffix}")).collect();
            copies.push(format!("{department}-prod{suffix}"));
            empty_standby(&standby.client, &copies).await?;
        }
    }

    // RPO under load, on the last round's policy: R changes per second to probe ConfigMaps, each
    // carrying the time it was written; a watch on the standby sees each copy arrive.
    let probe_namespace = namespaces[0].clone();
    let mapped = format!("{probe_namespace}-dr{}", options.rounds);
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
    let log = operator.log.clone();
    drop(operator);

    println!("\n| round | floor (bare copy client) | govdc | ratio |\n| --- | --- | --- | --- |");
    let mut ratios = Vec::new();
    for (index, round) in rounds.iter().enumerate() {
        let ratio = round.govdc.as_secs_f64() / round.floor.as_secs_f64();
        ratios.push(ratio);
        println!(
            "| {} | {:.1} s | {:.1} s | {ratio:.2}x |",
            index + 1,
            round.floor.as_secs_f64(),
            round.govdc.as_secs_f64()
        );
    }
    let spread = |values: &[f64]| {
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        (min, max)
    };
    let floors: Vec<f64> = rounds.iter().map(|r| r.floor.as_secs_f64()).collect();
    let ours: Vec<f64> = rounds.iter().map(|r| r.govdc.as_secs_f64()).collect();
    let (low, high) = spread(&ratios);
    let p50 = percentile(&mut lags, 0.5);
    let p99 = percentile(&mut lags, 0.99);
    println!("\n| measure | govdc | floor | verdict |\n| --- | --- | --- | --- |");
    println!(
        "| replicate {floor_count} objects (+{NAMESPACES} namespaces), median of {} rounds | {:.1} s | {:.1} s (bare copy client) | {:.2}x, spread {low:.2}x–{high:.2}x (target <= 1.2x) |",
        rounds.len(),
        median(&ours),
        median(&floors),
        median(&ratios),
    );
    println!(
        "| continuous RPO p50, {} changes/s | {:.0} ms | - | {received}/{total} changes seen on the standby |",
        options.rate,
        p50.as_secs_f64() * 1000.0
    );
    println!(
        "| continuous RPO p99, {} changes/s | {:.0} ms | - | target < 100 ms (the README's bound: 2 s) |",
        options.rate,
        p99.as_secs_f64() * 1000.0
    );
    println!(
        "\nAPI requests per round (the API servers' counters; the controller-manager's own included):\n"
    );
    println!("| round | side | to the standby | to the primary |\n| --- | --- | --- | --- |");
    for (index, round) in rounds.iter().enumerate() {
        println!(
            "| {} | floor | {} | {} |",
            index + 1,
            round.floor_requests.0,
            round.floor_requests.1
        );
        println!(
            "| {} | govdc | {} | {} |",
            index + 1,
            round.govdc_requests.0,
            round.govdc_requests.1
        );
    }
    println!(
        "\nCPU seconds per round (user + system, from /proc; the client is the bench itself for the floor, the operator for govdc):\n"
    );
    println!("| round | side | CPU s |\n| --- | --- | --- |");
    for (index, round) in rounds.iter().enumerate() {
        println!("| {} | floor | {} |", index + 1, round.floor_cpu);
        println!("| {} | govdc | {} |", index + 1, round.govdc_cpu);
    }
    println!(
        "\nThe operator's first sync, by phase (from {}):\n",
        log.display()
    );
    for (index, round) in rounds.iter().enumerate() {
        println!("- round {}: {}", index + 1, round.phases);
    }
    drop(primary);
    drop(standby);
    fresh(primary_cluster);
    fresh(standby_cluster);
    Ok(())
}
