//! Benchmark: N DepartmentClouds (default 1,000, two environments each) on the local control
//! plane, beside a floor: a bare client writing the same objects at the same concurrency.
//!
//! ```sh
//! cargo bench -p govdc-operator --bench department_clouds -- [--tenants N] [--concurrency C] \
//!     [--rounds R] [--samples S] [--cluster NAME]
//! ```
//!
//! The floor and the operator are measured alternately, R rounds each (default 3), each
//! measurement on a cluster of its own (`bench-dc`, or `--cluster`'s, started fresh, so every
//! round begins from the same empty etcd), and the table gives the median with its spread. Per operator round: time to
//! all Ready, the API requests it took (from the API server's own `apiserver_request_total`),
//! the writes and reads of a full resync of converged state by a restarted operator, its peak
//! RSS, the time from a spec change to the operator's first write, and the time to repair a
//! deleted object. The spec changes are made in the floor's rounds too, answered by a bare
//! reactor (a watch of DepartmentClouds and one write per change), so the latency has a floor of
//! its own: what the API server, etcd and the watches cost on this machine.

use std::collections::BTreeMap;
use std::mem::ManuallyDrop;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use futures::{StreamExt, TryStreamExt, stream};
use govdc_crds::DepartmentCloud;
use govdc_operator::controllers::FIELD_MANAGER;
use govdc_operator::controllers::department_cloud::{build, quotas};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, client_for, eventually, govdc_cluster_bin, install_crds,
    repo_root,
};
use k8s_openapi::api::core::v1::{Namespace, ResourceQuota};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");

/// The cluster the benchmark starts, uses and purges (`--cluster`, default `bench-dc`); no other
/// work runs on it.
fn cluster_name() -> String {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--cluster")
        .and_then(|i| args.get(i + 1))
        .cloned()
        .unwrap_or_else(|| "bench-dc".to_owned())
}

/// The label value of the benchmark's DepartmentClouds (the operator's `--object-selector`).
const PREFIX: &str = "dcbench";

struct Options {
    tenants: usize,
    concurrency: usize,
    samples: usize,
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
        tenants: value("--tenants", 1000),
        concurrency: value("--concurrency", 8),
        samples: value("--samples", 100),
        rounds: value("--rounds", 3).max(1),
    }
}

fn department_cloud(name: &str) -> DepartmentCloud {
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name, "labels": {TEST_LABEL: PREFIX}},
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

fn tenant_name(i: usize) -> String {
    format!("{PREFIX}-{i}")
}

/// A fresh cluster: stopped and purged if it ran, started, CRDs installed.
async fn fresh_cluster() -> anyhow::Result<(PathBuf, Client)> {
    let cluster = govdc_cluster_bin();
    purge_cluster();
    let output = std::process::Command::new(&cluster)
        .args(["up", &cluster_name()])
        .current_dir(repo_root())
        .output()?;
    anyhow::ensure!(
        output.status.success(),
        "govdc-cluster up {} failed: {}",
        cluster_name(),
        String::from_utf8_lossy(&output.stderr)
    );
    let kubeconfig = PathBuf::from(
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .last()
            .unwrap_or_default()
            .trim(),
    );
    let client = client_for(&kubeconfig).await?;
    install_crds(&client).await?;
    Ok((kubeconfig, client))
}

fn purge_cluster() {
    let _ = std::process::Command::new(govdc_cluster_bin())
        .args(["down", &cluster_name(), "--purge"])
        .current_dir(repo_root())
        .stderr(std::process::Stdio::null())
        .status();
}

/// API requests the API server counted, by (verb, resource).
#[derive(Clone, Default)]
struct Requests(BTreeMap<(String, String), f64>);

/// The resources the operator (or the floor) writes, and so the ones counted.
const RESOURCES: [&str; 9] = [
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

impl Requests {
    async fn scrape(client: &Client) -> anyhow::Result<Requests> {
        let request = http::Request::get("/metrics").body(Vec::new())?;
        let text = client.request_text(request).await?;
        let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))?;
        let mut counts = BTreeMap::new();
        for sample in scrape
            .samples
            .iter()
            .filter(|s| s.metric == "apiserver_request_total")
        {
            let (Some(verb), Some(resource)) =
                (sample.labels.get("verb"), sample.labels.get("resource"))
            else {
                continue;
            };
            if !RESOURCES.contains(&resource) {
                continue;
            }
            let value = match sample.value {
                prometheus_parse::Value::Counter(v) | prometheus_parse::Value::Untyped(v) => v,
                _ => 0.0,
            };
            *counts
                .entry((verb.to_owned(), resource.to_owned()))
                .or_insert(0.0) += value;
        }
        Ok(Requests(counts))
    }

    fn since(&self, before: &Requests) -> Requests {
        Requests(
            self.0
                .iter()
                .map(|(key, value)| (key.clone(), value - before.0.get(key).unwrap_or(&0.0)))
                .filter(|(_, value)| *value > 0.0)
                .collect(),
        )
    }

    fn sum(&self, verbs: &[&str]) -> f64 {
        self.0
            .iter()
            .filter(|((verb, _), _)| verbs.contains(&verb.as_str()))
            .map(|(_, value)| value)
            .sum::<f64>()
            // An empty sum is -0.0.
            + 0.0
    }

    fn writes(&self) -> f64 {
        self.sum(&["POST", "PUT", "PATCH", "APPLY", "DELETE"])
    }

    fn reads(&self) -> f64 {
        self.sum(&["GET", "LIST"])
    }
}

/// The floor: a bare client creating the DepartmentCloud and applying the same objects the
/// operator makes, then writing a status, at the same concurrency.
async fn floor(client: &Client, options: &Options) -> anyhow::Result<(Duration, Requests)> {
    let clouds: Api<DepartmentCloud> = Api::all(client.clone());
    let before = Requests::scrape(client).await?;
    let started = Instant::now();
    stream::iter(0..options.tenants)
        .map(|i| {
            let clouds = clouds.clone();
            let client = client.clone();
            async move {
                let cloud = department_cloud(&tenant_name(i));
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
    let elapsed = started.elapsed();
    let requests = Requests::scrape(client).await?.since(&before);
    Ok((elapsed, requests))
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

fn percentile(samples: &[Duration], p: f64) -> Duration {
    let mut samples = samples.to_vec();
    samples.sort();
    let index = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples.get(index).copied().unwrap_or_default()
}

/// One operator round's figures.
struct OperatorRound {
    converge: Duration,
    converge_requests: Requests,
    resync: Requests,
    rss_converged: f64,
    rss_after: f64,
    reactions: Vec<Duration>,
    reaction_requests: Requests,
    /// The operator's DepartmentCloud passes during the spec changes, by duration.
    reaction_passes: PassDurations,
    repairs: Vec<Duration>,
}

/// Counts of the operator's DepartmentCloud passes by duration, from its
/// `govdc_reconcile_duration_seconds` histogram: (bucket's upper bound in seconds, passes at most
/// that long), cumulative as Prometheus gives them.
#[derive(Default)]
struct PassDurations(Vec<(f64, f64)>);

impl PassDurations {
    fn scrape(operator: &OperatorProcess) -> PassDurations {
        let prefix =
            "govdc_reconcile_duration_seconds_bucket{controller=\"department_cloud\",le=\"";
        let Some((_, body)) = operator.get("/metrics") else {
            return PassDurations::default();
        };
        PassDurations(
            body.lines()
                .filter_map(|line| {
                    let rest = line.strip_prefix(prefix)?;
                    let (le, count) = rest.split_once("\"} ")?;
                    Some((le.parse().unwrap_or(f64::INFINITY), count.parse().ok()?))
                })
                .collect(),
        )
    }

    fn since(&self, before: &PassDurations) -> PassDurations {
        PassDurations(
            self.0
                .iter()
                .map(|(le, count)| {
                    let earlier = before
                        .0
                        .iter()
                        .find(|(b, _)| b == le)
                        .map_or(0.0, |(_, c)| *c);
                    (*le, count - earlier)
                })
                .collect(),
        )
    }

    /// `N passes: ≤ 10 ms a, ≤ 25 ms b, ≤ 50 ms c, ≤ 100 ms d, longer e`.
    fn describe(&self) -> String {
        let at_most = |bound: f64| {
            self.0
                .iter()
                .find(|(le, _)| (*le - bound).abs() < 1e-9)
                .map_or(0.0, |(_, c)| *c)
        };
        let total = self.0.last().map_or(0.0, |(_, c)| *c);
        format!(
            "{total:.0} passes: <= 10 ms {:.0}, <= 25 ms {:.0}, <= 50 ms {:.0}, <= 100 ms {:.0}, longer {:.0}",
            at_most(0.01),
            at_most(0.025) - at_most(0.01),
            at_most(0.05) - at_most(0.025),
            at_most(0.1) - at_most(0.05),
            total - at_most(0.1),
        )
    }
}

fn start_operator(
    env: &TestEnv,
    lease_namespace: &str,
    identity: &str,
    concurrency: &str,
) -> OperatorProcess {
    OperatorProcess::start(
        Path::new(OPERATOR),
        env,
        lease_namespace,
        identity,
        &[
            "--department-cloud-concurrency",
            concurrency,
            "--log-filter",
            "warn",
        ],
    )
}

fn reconciles(operator: &OperatorProcess) -> Option<f64> {
    let (_, body) = operator.get("/metrics")?;
    body.lines()
        .find(|l| l.starts_with("govdc_reconcile_total{controller=\"department_cloud\"}"))?
        .rsplit(' ')
        .next()?
        .parse()
        .ok()
}

/// Waits until `object` (watched through `api`) satisfies `done`, after `change` ran; returns the
/// time from just before `change` until then. The watch is established first, so the time does
/// not include a poll interval, and waiting adds no load of its own.
async fn time_until<K, C, Fut>(
    api: Api<K>,
    name: &str,
    change: C,
    done: impl Fn(&K) -> bool,
) -> anyhow::Result<Duration>
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
    C: FnOnce() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = std::pin::pin!(watcher(api, config).default_backoff());
    // The initial listing ends with InitDone: from then on every change arrives as it happens.
    loop {
        match tokio::time::timeout(Duration::from_secs(30), events.try_next()).await?? {
            Some(watcher::Event::InitDone) => break,
            Some(_) => {}
            None => anyhow::bail!("the watch of {name} ended"),
        }
    }
    let t0 = Instant::now();
    change().await?;
    loop {
        let event = tokio::time::timeout(Duration::from_secs(10), events.try_next())
            .await
            .map_err(|_| anyhow::anyhow!("no change of {name} within 10 s"))??;
        match event {
            Some(watcher::Event::Apply(object)) if done(&object) => return Ok(t0.elapsed()),
            Some(_) => {}
            None => anyhow::bail!("the watch of {name} ended"),
        }
    }
}

/// Raises the quota of the first `--samples` tenants one after another and times each until
/// the tenant's production ResourceQuota carries the new share: a spec change to its first
/// write, as the bench's own watch sees it.
async fn reactions(client: &Client, options: &Options) -> anyhow::Result<Vec<Duration>> {
    let clouds: Api<DepartmentCloud> = Api::all(client.clone());
    let mut reactions = Vec::new();
    for i in 0..options.samples.min(options.tenants) {
        let name = tenant_name(i);
        let quotas: Api<ResourceQuota> = Api::namespaced(client.clone(), &format!("{name}-prod"));
        let clouds = clouds.clone();
        let reaction = time_until(
            quotas,
            build::QUOTA_NAME,
            || async move {
                let patch =
                    json!({"spec": {"quota": {"requests.cpu": "6", "requests.memory": "8Gi"}}});
                clouds
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await?;
                Ok(())
            },
            |quota: &ResourceQuota| {
                quota
                    .spec
                    .as_ref()
                    .and_then(|s| s.hard.as_ref())
                    .and_then(|h| h.get("requests.cpu"))
                    .is_some_and(|q| q.0 == "3")
            },
        )
        .await?;
        reactions.push(reaction);
    }
    Ok(reactions)
}

/// The floor of a spec change's reaction: a bare controller that watches DepartmentClouds and
/// answers every change with one write, the production ResourceQuota that `build` makes from
/// the new spec. What it leaves out is the operator's own work before its first write: the
/// work queue, the caches' lookups, validation, the capacity ledger and the build of every
/// other object.
async fn bare_reactor(client: Client) -> anyhow::Result<()> {
    let clouds: Api<DepartmentCloud> = Api::all(client.clone());
    let mut events = std::pin::pin!(watcher(clouds, watcher::Config::default()).default_backoff());
    let params = PatchParams::apply(FIELD_MANAGER).force();
    while let Some(event) = events.try_next().await? {
        let watcher::Event::Apply(cloud) = event else {
            continue;
        };
        let prod = format!("{}-prod", cloud.metadata.name.clone().unwrap_or_default());
        let desired = build::build(&cloud, &quotas::plan(&cloud.spec)?)?;
        for object in desired.iter().filter(|o| {
            o.resource.kind == "ResourceQuota"
                && o.object.metadata.namespace.as_deref() == Some(&prod)
        }) {
            let name = object.object.metadata.name.clone().unwrap_or_default();
            object
                .api(&client)
                .patch(&name, &params, &Patch::Apply(&object.object))
                .await?;
        }
    }
    Ok(())
}

async fn operator_round(
    kubeconfig: &Path,
    client: &Client,
    options: &Options,
) -> anyhow::Result<OperatorRound> {
    // Built by hand rather than by TestEnv::new, which remembers one kubeconfig per cluster name
    // while this cluster is new each round; never dropped, since its cleanup would delete
    // thousands of objects one by one from a cluster that is purged right after.
    let env = ManuallyDrop::new(TestEnv {
        cluster: cluster_name(),
        kubeconfig: kubeconfig.to_owned(),
        client: client.clone(),
        prefix: PREFIX.to_owned(),
    });
    let lease_namespace = "dcbench-lease";
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(json!({"metadata": {"name": lease_namespace}}))?,
        )
        .await?;
    let concurrency = options.concurrency.to_string();
    let mut operator = start_operator(&env, lease_namespace, "bench", &concurrency);
    eventually(
        "the operator to be ready",
        Duration::from_secs(60),
        || async { operator.get("/readyz").filter(|(c, _)| *c == 200) },
    )
    .await?;
    let clouds: Api<DepartmentCloud> = Api::all(client.clone());
    let before = Requests::scrape(client).await?;
    // Watch rather than poll, so that measuring adds no load of its own.
    let mut changes = std::pin::pin!(
        watcher(
            clouds.clone(),
            watcher::Config::default().labels(&env.selector())
        )
        .default_backoff()
        .applied_objects()
    );
    let started = Instant::now();
    let create = stream::iter(0..options.tenants)
        .map(|i| {
            let clouds = clouds.clone();
            let cloud = department_cloud(&tenant_name(i));
            async move {
                clouds
                    .create(&PostParams::default(), &cloud)
                    .await
                    .map(|_| ())
            }
        })
        .buffer_unordered(options.concurrency)
        .try_collect::<Vec<()>>();
    let mut ready = std::collections::HashSet::new();
    let wait_ready = async {
        while ready.len() < options.tenants {
            let cloud = tokio::time::timeout(Duration::from_secs(900), changes.try_next())
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
        anyhow::Ok(())
    };
    futures::future::try_join(
        async { create.await.map_err(anyhow::Error::from) },
        wait_ready,
    )
    .await?;
    let converge = started.elapsed();
    eprintln!("bench: operator converged in {converge:?}");
    // Let the quota controller's status updates and the follow-up passes that sum them settle.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let converge_requests = Requests::scrape(client).await?.since(&before);
    let rss_converged = peak_rss_mib(operator.pid());
    eprintln!(
        "bench: operator peak RSS {rss_converged:.1} MiB converged; requests per tenant: {:.2} writes, {:.2} reads",
        converge_requests.writes() / options.tenants as f64,
        converge_requests.reads() / options.tenants as f64
    );

    // A full resync of converged state: a fresh operator process lists and reconciles everything.
    anyhow::ensure!(
        operator.terminate(Duration::from_secs(30)),
        "operator did not stop"
    );
    let before = Requests::scrape(client).await?;
    let mut operator = start_operator(&env, lease_namespace, "bench2", &concurrency);
    eventually(
        "the restarted operator to be ready",
        Duration::from_secs(120),
        || async { operator.get("/readyz").filter(|(c, _)| *c == 200) },
    )
    .await?;
    // Every tenant reconciled once: wait until the reconcile counter reaches N.
    eventually("a full resync", Duration::from_secs(900), || async {
        reconciles(&operator).filter(|count| *count >= options.tenants as f64)
    })
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let resync = Requests::scrape(client).await?.since(&before);

    // Spec change to first write: raise one tenant's quota, time until its ResourceQuota changes.
    let before = Requests::scrape(client).await?;
    let passes_before = PassDurations::scrape(&operator);
    let reactions = reactions(client, options).await?;
    let reaction_passes = PassDurations::scrape(&operator).since(&passes_before);
    let reaction_requests = Requests::scrape(client).await?.since(&before);

    // Drift: delete a NetworkPolicy, time until it is back.
    let mut repairs = Vec::new();
    for i in 0..20.min(options.tenants) {
        let policies: Api<NetworkPolicy> =
            Api::namespaced(client.clone(), &format!("{}-test", tenant_name(i)));
        let delete = policies.clone();
        let repair = time_until(
            policies,
            "govdc-default-deny",
            || async move {
                delete
                    .delete("govdc-default-deny", &DeleteParams::default())
                    .await?;
                Ok(())
            },
            |policy: &NetworkPolicy| policy.metadata.deletion_timestamp.is_none(),
        )
        .await?;
        repairs.push(repair);
    }
    let rss_after = peak_rss_mib(operator.pid());
    anyhow::ensure!(
        operator.terminate(Duration::from_secs(30)),
        "operator did not stop"
    );
    Ok(OperatorRound {
        converge,
        converge_requests,
        resync,
        rss_converged,
        rss_after,
        reactions,
        reaction_requests,
        reaction_passes,
        repairs,
    })
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `median (min–max)` of a figure over the rounds.
fn spread(values: &[f64], unit: &str, decimals: usize) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if values.len() == 1 {
        return format!("{:.decimals$}{unit}", values[0]);
    }
    format!(
        "{:.decimals$}{unit} ({min:.decimals$}–{max:.decimals$})",
        median(values)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options();
    eprintln!(
        "bench: {} tenants x 2 environments, concurrency {}, {} round(s) of floor and operator",
        options.tenants, options.concurrency, options.rounds
    );
    let mut floors = Vec::new();
    let mut rounds = Vec::new();
    for round in 1..=options.rounds {
        let (kubeconfig, client) = fresh_cluster().await?;
        let (floor_time, floor_requests) = floor(&client, &options).await?;
        eprintln!("bench: round {round}: floor {floor_time:?}");
        // A client of its own, as the operator has: its watch and writes wait for no
        // connection of the bench's.
        let reactor = tokio::spawn(bare_reactor(client_for(&kubeconfig).await?));
        let floor_reactions = reactions(&client, &options).await;
        reactor.abort();
        let floor_reactions = match reactor.await {
            Ok(Err(error)) => anyhow::bail!("the bare reactor failed: {error:#}"),
            _ => floor_reactions?,
        };
        floors.push((floor_time, floor_requests, floor_reactions));
        let (kubeconfig, client) = fresh_cluster().await?;
        let measured = operator_round(&kubeconfig, &client, &options).await?;
        eprintln!(
            "bench: round {round}: operator {:?} ({:.2}x)",
            measured.converge,
            measured.converge.as_secs_f64() / floor_time.as_secs_f64()
        );
        rounds.push(measured);
    }
    purge_cluster();

    let seconds = |d: &Duration| d.as_secs_f64();
    let floor_times: Vec<f64> = floors.iter().map(|(d, _, _)| seconds(d)).collect();
    let floor_reaction = |p: f64| -> Vec<f64> {
        floors
            .iter()
            .map(|(_, _, reactions)| percentile(reactions, p).as_secs_f64() * 1000.0)
            .collect()
    };
    let converge_times: Vec<f64> = rounds.iter().map(|r| seconds(&r.converge)).collect();
    let ratios: Vec<f64> = converge_times
        .iter()
        .zip(&floor_times)
        .map(|(ours, floor)| ours / floor)
        .collect();
    let resync_writes: Vec<f64> = rounds.iter().map(|r| r.resync.writes()).collect();
    let resync_reads: Vec<f64> = rounds.iter().map(|r| r.resync.reads()).collect();
    let rss: Vec<f64> = rounds
        .iter()
        .map(|r| r.rss_converged.max(r.rss_after))
        .collect();
    let quantile = |p: f64, pick: fn(&OperatorRound) -> &Vec<Duration>| -> Vec<f64> {
        rounds
            .iter()
            .map(|r| percentile(pick(r), p).as_secs_f64() * 1000.0)
            .collect()
    };
    let reaction_reads: Vec<f64> = rounds.iter().map(|r| r.reaction_requests.reads()).collect();
    let n = options.tenants;
    println!(
        "\n{n} tenants, concurrency {}, {} round(s); median (min–max) over the rounds\n",
        options.concurrency, options.rounds
    );
    println!("| measure | govdc | floor | verdict |\n| --- | --- | --- | --- |");
    println!(
        "| time to {n} tenants Ready | {} | {} (bare client) | {} (target <= 1.15x) |",
        spread(&converge_times, " s", 1),
        spread(&floor_times, " s", 1),
        spread(&ratios, "x", 2),
    );
    println!(
        "| writes in a full resync of converged state | {} | 0 | target 0 |",
        spread(&resync_writes, "", 0)
    );
    println!(
        "| reads in a full resync of converged state | {} | - | |",
        spread(&resync_reads, "", 0)
    );
    println!(
        "| operator peak RSS | {} | - | target < 64 MiB |",
        spread(&rss, " MiB", 1)
    );
    println!(
        "| spec change -> first write, p50 | {} | {} (bare reactor) | |",
        spread(&quantile(0.5, |r| &r.reactions), " ms", 1),
        spread(&floor_reaction(0.5), " ms", 1)
    );
    println!(
        "| spec change -> first write, p99 | {} | {} (bare reactor) | target < 30 ms |",
        spread(&quantile(0.99, |r| &r.reactions), " ms", 1),
        spread(&floor_reaction(0.99), " ms", 1)
    );
    println!(
        "| API reads during {} spec changes | {} | - | target 0 |",
        options.samples.min(n),
        spread(&reaction_reads, "", 0)
    );
    println!(
        "| deleted object repaired, p50 | {} | - | |",
        spread(&quantile(0.5, |r| &r.repairs), " ms", 1)
    );
    println!(
        "| deleted object repaired, max | {} | - | target < 1 s |",
        spread(&quantile(1.0, |r| &r.repairs), " ms", 1)
    );
    println!("\nThe operator's DepartmentCloud passes during the spec changes, by duration:\n");
    for (round, r) in rounds.iter().enumerate() {
        println!("- round {}: {}", round + 1, r.reaction_passes.describe());
    }
    for r in &rounds {
        eprintln!(
            "bench: RSS {:.1} MiB converged, {:.1} MiB after the resync; reactions {}",
            r.rss_converged,
            r.rss_after,
            ms(percentile(&r.reactions, 0.99))
        );
    }

    // Where the requests went, per tenant, in the last round.
    let (Some((_, floor_requests, _)), Some(last)) = (floors.last(), rounds.last()) else {
        return Ok(());
    };
    println!(
        "\nAPI requests per tenant while converging (last round; includes the kube-controller-manager's)\n"
    );
    println!("| verb | resource | govdc | floor |\n| --- | --- | ---: | ---: |");
    let mut keys: Vec<&(String, String)> = last.converge_requests.0.keys().collect();
    keys.extend(floor_requests.0.keys());
    keys.sort();
    keys.dedup();
    let per = |requests: &Requests, key: &(String, String)| {
        requests.0.get(key).copied().unwrap_or(0.0) / n as f64
    };
    for key in keys {
        println!(
            "| {} | {} | {:.2} | {:.2} |",
            key.0,
            key.1,
            per(&last.converge_requests, key),
            per(floor_requests, key)
        );
    }
    println!(
        "| all writes | | {:.2} | {:.2} |",
        last.converge_requests.writes() / n as f64,
        floor_requests.writes() / n as f64
    );
    println!(
        "| all reads (GET, LIST) | | {:.2} | {:.2} |",
        last.converge_requests.reads() / n as f64,
        floor_requests.reads() / n as f64
    );
    if !last.resync.0.is_empty() {
        println!("\nRequests of the last round's resync: {:?}", last.resync.0);
    }
    Ok(())
}
