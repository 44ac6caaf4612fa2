//! `govdc-operator backup ...`: the disaster-recovery commands an operator of the data center
//! runs by hand — take a restore point, list them, restore one, fail over to the standby. Each
//! carries the hub state of the policy's ExchangeNodes along (see
//! [`crate::controllers::backup_policy::hub_state`]). What only these commands do lives beside
//! them: [`restore`] a point into a cluster, [`failover`] to the standby.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, bail};
use govdc_crds::BackupPolicy;
use govdc_crds::backup_policy::NamespaceMapping;
use kube::{Api, Client};

use crate::controllers::backup_policy::hub_state::{self, HubStateManifest, HubStateSource};
use crate::controllers::backup_policy::store::{RestorePointStore, StoreError, take};
use crate::controllers::backup_policy::{
    DEFAULT_RESTORE_POINT_DIR, kinds, preflight, read, source,
};
use crate::controllers::exchange_node::HubSettings;
use restore::{RestoreOptions, restore};

pub mod failover;
pub mod restore;

/// `govdc-operator backup`.
#[derive(clap::Args, Debug)]
pub struct BackupArgs {
    /// What to do.
    #[command(subcommand)]
    pub command: BackupCommand,
}

/// Where a policy's restore points are.
#[derive(clap::Args, Debug, Clone)]
pub struct StoreArgs {
    /// The BackupPolicy.
    #[arg(long)]
    pub policy: String,
    /// Directory of restore points (the operator's `--restore-point-dir`).
    #[arg(long, env = "GOVDC_RESTORE_POINT_DIR", default_value = DEFAULT_RESTORE_POINT_DIR)]
    pub restore_point_dir: PathBuf,
}

/// Where the hubs of ExchangeNodes are reached.
#[derive(clap::Args, Debug, Clone)]
pub struct HubArgs {
    /// Where a hub node is reached, as `NAMESPACE/NAME=URL` (the namespace in the cluster the
    /// command talks to: the primary for snapshot, the target's mapped namespace for restore and
    /// failover), instead of its Service's cluster DNS name. For a command run outside the
    /// cluster. Repeatable.
    #[arg(long = "hub-endpoint", value_parser = crate::config::parse_hub_endpoint)]
    pub hub_endpoints: Vec<(String, String)>,
}

impl HubArgs {
    /// The hub settings these flags make.
    pub(crate) fn settings(&self) -> HubSettings {
        HubSettings {
            endpoints: self.hub_endpoints.iter().cloned().collect(),
            ..HubSettings::default()
        }
    }
}

/// The backup commands.
#[derive(clap::Subcommand, Debug)]
pub enum BackupCommand {
    /// Take a restore point of what a policy protects, now.
    Snapshot {
        /// The policy and its restore points.
        #[command(flatten)]
        store: StoreArgs,
        /// Kubeconfig of the primary cluster (default: inferred).
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Where the policy's hubs are reached.
        #[command(flatten)]
        hubs: HubArgs,
    },
    /// List a policy's restore points, newest first.
    List {
        /// The policy and its restore points.
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Restore a restore point into a cluster, in dependency order, reporting conflicts.
    Restore {
        /// The policy and its restore points.
        #[command(flatten)]
        store: StoreArgs,
        /// The restore point's name, or `latest`.
        #[arg(long, default_value = "latest")]
        point: String,
        /// Kubeconfig of the cluster to restore into.
        #[arg(long)]
        target_kubeconfig: PathBuf,
        /// Prepended to every namespace's name.
        #[arg(long, default_value = "")]
        namespace_prefix: String,
        /// Appended to every namespace's name.
        #[arg(long, default_value = "")]
        namespace_suffix: String,
        /// Restore namespace FROM as TO (`--map-namespace zj-prod=zj-prod-copy`); repeatable.
        #[arg(long = "map-namespace", value_parser = parse_rename)]
        renames: Vec<(String, String)>,
        /// Replace objects that exist and differ instead of reporting them as conflicts.
        #[arg(long)]
        overwrite: bool,
        /// Writes in flight at once.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Where the restored ExchangeNodes' hubs are reached, to import their state.
        #[command(flatten)]
        hubs: HubArgs,
        /// How long to wait for a hub that does not answer yet (a pod starting).
        #[arg(long, default_value_t = 120)]
        hub_wait_seconds: u64,
    },
    /// Promote the standby: scale its workloads to their recorded counts, stop replication into
    /// it, and import the newest hub state of each ExchangeNode into its hub there, checking the
    /// audit chain. Safe to run twice.
    Failover {
        /// The policy and its restore points (where its hub state is kept).
        #[command(flatten)]
        store: StoreArgs,
        /// Kubeconfig of the standby cluster.
        #[arg(long)]
        target_kubeconfig: PathBuf,
        /// Kubeconfig of the primary, to record the failover in the policy's status when the
        /// primary still answers.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
        /// Where the standby's hubs are reached, to import their state.
        #[command(flatten)]
        hubs: HubArgs,
        /// How long to wait for a hub that does not answer yet (its pod starting after the
        /// scale-up).
        #[arg(long, default_value_t = 120)]
        hub_wait_seconds: u64,
    },
}

fn parse_rename(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{text:?} is not FROM=TO"))
}

pub(crate) async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default()).await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(Client::try_from(config)?)
}

fn open(store: &StoreArgs) -> anyhow::Result<RestorePointStore> {
    RestorePointStore::local(&store.restore_point_dir, &store.policy).map_err(told)
}

/// A store error as the CLI prints it: with its causes, an API error in the server's words,
/// never the client's dump of the response (which `{:#}` of the error itself would print).
fn told(error: StoreError) -> anyhow::Error {
    anyhow::Error::msg(error.chain())
}

/// Imports `states` into the target's hubs, each into the namespace `namespace_of` names,
/// printing what happened; the failures, each with why.
async fn import_hub_states(
    target: &Client,
    store: &RestorePointStore,
    states: &[HubStateManifest],
    namespace_of: impl Fn(&HubStateManifest) -> String,
    hubs: &HubSettings,
    wait: Duration,
) -> Vec<String> {
    let mut failures = Vec::new();
    for state in states {
        let namespace = namespace_of(state);
        let endpoint = hubs.endpoint(&namespace, &state.name);
        let what = format!(
            "{}/{} -> {namespace}/{}",
            state.namespace, state.name, state.name
        );
        let result = async {
            let access = hub_state::access(target, &namespace, &state.name, endpoint).await?;
            hub_state::import(&access, store, state, wait).await
        }
        .await;
        match result {
            Ok(imported) => println!(
                "hub state {what}: {} the copy of {} (sha256 {}); audit chain intact, {} records",
                if imported.imported {
                    "imported"
                } else {
                    "already holds"
                },
                state.taken_at,
                state.sha256,
                imported.records_verified
            ),
            Err(error) => {
                eprintln!("hub state {what}: {} ({error})", error.reason());
                failures.push(format!("{what}: {error}"));
            }
        }
    }
    failures
}

/// Runs a backup command.
pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Snapshot {
            store,
            kubeconfig,
            hubs,
        } => {
            let primary = client(kubeconfig.as_ref()).await?;
            let policy = Api::<BackupPolicy>::all(primary.clone())
                .get(&store.policy)
                .await
                .with_context(|| format!("reading BackupPolicy {}", store.policy))?;
            let scope = source::Scope {
                departments: source::department_selector(&policy.spec.department_selector)?,
                node_namespaces: source::node_namespaces(
                    &read::read(&primary, &policy, &hubs.settings().operator_namespace).await?,
                ),
            };
            let kinds = kinds::select(
                policy.spec.include_kinds.as_deref(),
                policy.spec.exclude_kinds.as_deref(),
            )?;
            let source = HubStateSource {
                nodes: hub_state::nodes(&policy.spec.exchange_nodes),
                mapping: policy.spec.namespace_mapping.clone(),
                hubs: hubs.settings(),
            };
            let taken = take(&primary, &open(&store)?, &scope, &kinds, &source)
                .await
                .map_err(told)?;
            let manifest = &taken.manifest;
            println!(
                "restore point {} of {}: {} objects, sha256 {}",
                manifest.name, store.policy, manifest.objects, manifest.sha256
            );
            for state in &manifest.hub_states {
                println!(
                    "hub state {}/{}: taken at {}, {} bytes, sha256 {}",
                    state.namespace, state.name, state.taken_at, state.size_bytes, state.sha256
                );
            }
            for failure in &taken.hub_failures {
                eprintln!("hub state {failure}");
            }
            if manifest.hub_states.len() < source.nodes.len() {
                bail!(
                    "the restore point was written, without the hub state of {} ExchangeNodes",
                    source.nodes.len() - manifest.hub_states.len()
                );
            }
        }
        BackupCommand::List { store } => {
            println!("NAME\tTAKEN AT\tOBJECTS\tHUB STATES\tSHA256");
            let store = open(&store)?;
            for manifest in store.list().await.map_err(told)? {
                println!(
                    "{}\t{}\t{}\t{}\t{}",
                    manifest.name,
                    manifest.taken_at,
                    manifest.objects,
                    manifest.hub_states.len(),
                    manifest.sha256
                );
            }
            let between = hub_state::latest(&store, None).await.map_err(told)?;
            for state in between {
                println!(
                    "newest hub state of {}/{}: {} (sha256 {})",
                    state.namespace, state.name, state.taken_at, state.sha256
                );
            }
        }
        BackupCommand::Restore {
            store,
            point,
            target_kubeconfig,
            namespace_prefix,
            namespace_suffix,
            renames,
            overwrite,
            concurrency,
            hubs,
            hub_wait_seconds,
        } => {
            let points = open(&store)?;
            let (manifest, objects) = points.get(&point).await.map_err(told)?;
            let target = client(Some(&target_kubeconfig)).await?;
            let options = RestoreOptions {
                mapping: NamespaceMapping {
                    prefix: namespace_prefix,
                    suffix: namespace_suffix,
                },
                renames: renames.into_iter().collect::<BTreeMap<_, _>>(),
                overwrite,
                concurrency,
            };
            println!(
                "restoring {} ({} objects, checksum verified) into {}",
                manifest.name,
                manifest.objects,
                target_kubeconfig.display()
            );
            let report = restore(&target, &objects, &options).await;
            for (label, items) in [
                ("created", &report.created),
                ("overwritten", &report.overwritten),
                ("conflict", &report.conflicts),
                ("failed", &report.failed),
            ] {
                for item in items {
                    println!("{label}: {item}");
                }
            }
            println!(
                "{} created, {} unchanged, {} overwritten, {} conflicts, {} failed",
                report.created.len(),
                report.unchanged.len(),
                report.overwritten.len(),
                report.conflicts.len(),
                report.failed.len()
            );
            if !report.failed.is_empty() {
                bail!("{} objects could not be restored", report.failed.len());
            }
            // The objects first: the node's key Secret is among them.
            let failures = import_hub_states(
                &target,
                &points,
                &manifest.hub_states,
                |state| options.namespace(&state.namespace),
                &hubs.settings(),
                Duration::from_secs(hub_wait_seconds),
            )
            .await;
            if !failures.is_empty() {
                bail!(
                    "the hub state of {} ExchangeNodes was not restored:\n{}",
                    failures.len(),
                    failures.join("\n")
                );
            }
        }
        BackupCommand::Failover {
            store,
            target_kubeconfig,
            kubeconfig,
            hubs,
            hub_wait_seconds,
        } => {
            let policy = store.policy.clone();
            let target = client(Some(&target_kubeconfig)).await?;
            // Failover promotes a standby: never the source itself, however its kubeconfig
            // names it. A primary that does not answer (the disaster failover is for) is no
            // reason to wait.
            if let Some(path) = &kubeconfig
                && let Ok(primary) = client(Some(path)).await
                && let (Ok(source), Ok(standby)) = (
                    preflight::cluster_identity(&primary).await,
                    preflight::cluster_identity(&target).await,
                )
                && preflight::same_cluster(&source, &standby)
            {
                bail!(
                    "--target-kubeconfig {} reaches the primary itself (its {} namespace has uid {standby}, as the primary's does): failover promotes a standby, never the source",
                    target_kubeconfig.display(),
                    preflight::IDENTITY_NAMESPACE
                );
            }
            let report = failover::failover(&target, &policy)
                .await
                .with_context(|| format!("failing over policy {policy}"))?;
            for item in &report.scaled {
                println!("scaled: {item}");
            }
            for item in &report.resumed {
                println!("resumed: {item}");
            }
            println!(
                "failed over at {}: {} workloads scaled now, {} already running",
                report.time,
                report.scaled.len(),
                report.already_running.len()
            );
            if let Some(path) = kubeconfig {
                match client(Some(&path)).await {
                    Ok(primary) => match failover::mark_policy(&primary, &policy, &report).await {
                        Ok(()) => println!("recorded in BackupPolicy {policy}'s status"),
                        Err(error) => eprintln!(
                            "the primary did not record the failover ({error}); the fence on the target stops replication all the same"
                        ),
                    },
                    Err(error) => eprintln!("the primary is not reachable ({error:#})"),
                }
            }
            // The copies taken before the first failover only: the primary's operator stops
            // exporting once it sees the fence, and a copy it finished after the fence must not
            // replace a promoted hub on a second run.
            let points = open(&store)?;
            // The fence's time is rounded to the second: a second of slack keeps a copy taken
            // in the same second.
            let fenced_at = report
                .time
                .parse::<jiff::Timestamp>()
                .ok()
                .map(|t| t + jiff::SignedDuration::from_secs(1));
            let states = hub_state::latest(&points, fenced_at).await.map_err(told)?;
            if states.is_empty() {
                println!(
                    "no hub state of policy {policy} in {}: no ExchangeNode hub is restored",
                    store.restore_point_dir.display()
                );
            }
            let failures = import_hub_states(
                &target,
                &points,
                &states,
                |state| state.target_namespace.clone(),
                &hubs.settings(),
                Duration::from_secs(hub_wait_seconds),
            )
            .await;
            if !failures.is_empty() {
                bail!(
                    "failed over, but the hub state of {} ExchangeNodes was not restored (run the command again once fixed):\n{}",
                    failures.len(),
                    failures.join("\n")
                );
            }
        }
    }
    Ok(())
}
