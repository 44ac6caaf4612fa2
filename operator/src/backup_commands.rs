//! `govdc-operator backup ...`: the disaster-recovery commands an operator of the data center
//! runs by hand — take a restore point, list them, restore one, fail over to the standby.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use govdc_crds::BackupPolicy;
use govdc_crds::backup_policy::NamespaceMapping;
use kube::{Api, Client};

use crate::controllers::backup_policy::restore::{RestoreOptions, restore};
use crate::controllers::backup_policy::store::{RestorePointStore, take};
use crate::controllers::backup_policy::{DEFAULT_RESTORE_POINT_DIR, failover, kinds, source};

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
    },
    /// Promote the standby: scale its workloads to their recorded counts and stop replication
    /// into it. Safe to run twice.
    Failover {
        /// The BackupPolicy.
        #[arg(long)]
        policy: String,
        /// Kubeconfig of the standby cluster.
        #[arg(long)]
        target_kubeconfig: PathBuf,
        /// Kubeconfig of the primary, to record the failover in the policy's status when the
        /// primary still answers.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

fn parse_rename(text: &str) -> Result<(String, String), String> {
    text.split_once('=')
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{text:?} is not FROM=TO"))
}

async fn client(kubeconfig: Option<&PathBuf>) -> anyhow::Result<Client> {
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
    Ok(RestorePointStore::local(
        &store.restore_point_dir,
        &store.policy,
    )?)
}

/// Runs a backup command.
pub async fn run(args: BackupArgs) -> anyhow::Result<()> {
    match args.command {
        BackupCommand::Snapshot { store, kubeconfig } => {
            let primary = client(kubeconfig.as_ref()).await?;
            let policy = Api::<BackupPolicy>::all(primary.clone())
                .get(&store.policy)
                .await
                .with_context(|| format!("reading BackupPolicy {}", store.policy))?;
            let selector = source::department_selector(&policy.spec.department_selector)
                .map_err(anyhow::Error::msg)?;
            let kinds = kinds::select(
                policy.spec.include_kinds.as_deref(),
                policy.spec.exclude_kinds.as_deref(),
            )
            .map_err(anyhow::Error::msg)?;
            let manifest = take(&primary, &open(&store)?, &selector, &kinds).await?;
            println!(
                "restore point {} of {}: {} objects, sha256 {}",
                manifest.name, store.policy, manifest.objects, manifest.sha256
            );
        }
        BackupCommand::List { store } => {
            println!("NAME\tTAKEN AT\tOBJECTS\tSHA256");
            for manifest in open(&store)?.list().await? {
                println!(
                    "{}\t{}\t{}\t{}",
                    manifest.name, manifest.taken_at, manifest.objects, manifest.sha256
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
        } => {
            let (manifest, objects) = open(&store)?.get(&point).await?;
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
        }
        BackupCommand::Failover {
            policy,
            target_kubeconfig,
            kubeconfig,
        } => {
            let target = client(Some(&target_kubeconfig)).await?;
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
        }
    }
    Ok(())
}
