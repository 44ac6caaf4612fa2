//! The operator process: configuration, the HTTP endpoints, the start-up CRD check, leader
//! election, the four controllers and a graceful shutdown.
//!
//! Sequence: serve /livez, /readyz and /metrics at once -> wait for the CRDs -> campaign for the
//! lease -> as leader, run the controllers until SIGTERM or until the lease is lost -> drain
//! in-flight reconciles -> release the lease -> stop serving. A replica that loses its lease
//! exits with an error so that it restarts as a fresh standby, never writing next to the new
//! leader.

pub mod crds;
pub mod fence;
pub mod http;
pub mod leader;
pub mod metrics;
pub mod telemetry;
pub mod watch_list;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures::future::join_all;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::events::{Recorder, Reporter};
use kube::{Client, Config};
use tokio_util::sync::CancellationToken;

use crate::config::RunArgs;
use crate::controllers::{self, Context};
use http::{Phase, Readiness};
use metrics::Metrics;

/// Builds the Kubernetes client from `--kubeconfig`, or infers it.
pub async fn client(args: &RunArgs) -> anyhow::Result<Client> {
    Ok(Client::try_from(config(args).await?)?)
}

/// The client configuration from `--kubeconfig`, or inferred (in a pod, its ServiceAccount).
async fn config(args: &RunArgs) -> anyhow::Result<Config> {
    let config = match &args.kubeconfig {
        Some(path) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .with_context(|| format!("reading kubeconfig {}", path.display()))?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?
        }
        None => Config::infer()
            .await
            .context("no kubeconfig given and none could be inferred")?,
    };
    Ok(config)
}

/// Resolves on SIGTERM or SIGINT.
async fn termination_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
                _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
            }
        }
        _ => {
            tracing::error!("installing signal handlers failed; only ctrl-c stops the operator");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Runs the operator until it is told to stop.
pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let identity = args.identity();
    // The lease is campaigned for, and watched, with a client of its own: the fence on the
    // controllers' writes must not stand in the way of the renewals that keep it open.
    let lease_client = client(&args).await?;
    let fence = if args.leader_elect {
        let fence = fence::Fence::new();
        tokio::spawn(fence::keep(
            lease_client.clone(),
            args.lease_namespace.clone(),
            args.lease_name.clone(),
            identity.clone(),
            fence::open_for(args.lease_duration(), leader::grace(args.lease_duration())),
            fence.clone(),
        ));
        fence
    } else {
        fence::Fence::always_open()
    };
    fence::install(fence);
    let client = fence::client(config(&args).await?)?;
    let metrics = Metrics::new()?;
    let readiness = Readiness::new(Phase::WaitingForCrds(crds::required_crd_names()));

    let terminated = CancellationToken::new();
    let terminate = terminated.clone();
    tokio::spawn(async move {
        termination_signal().await;
        terminate.cancel();
    });

    let listener = tokio::net::TcpListener::bind(args.metrics_address)
        .await
        .with_context(|| format!("binding the metrics address {}", args.metrics_address))?;
    tracing::info!(address = %listener.local_addr()?, %identity, "serving /metrics, /livez and /readyz");
    let server_done = CancellationToken::new();
    let router = http::router(metrics.clone(), readiness.clone());
    let done = server_done.clone();
    let server = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(done.cancelled_owned())
            .await
    });

    tokio::select! {
        _ = crds::wait_for_crds(&client, &readiness) => {}
        _ = terminated.cancelled() => return finish(&readiness, server_done, server).await,
    }

    let mut campaign = if args.leader_elect {
        let mut campaign = leader::Campaign::start(
            lease_client.clone(),
            &args.lease_namespace,
            &args.lease_name,
            &identity,
            args.lease_duration(),
        )
        .await
        .with_context(|| {
            format!(
                "starting leader election on Lease {}/{}",
                args.lease_namespace, args.lease_name
            )
        })?;
        readiness.set(Phase::Standby);
        tokio::select! {
            acquired = campaign.acquired() => if !acquired {
                anyhow::bail!("leader election ended before this replica led");
            },
            _ = terminated.cancelled() => {
                campaign.resign().await;
                return finish(&readiness, server_done, server).await;
            }
        }
        tracing::info!(lease = %args.lease_name, %identity, "acquired the leader lease");
        Some(campaign)
    } else {
        None
    };
    metrics.leader.set(1);
    readiness.set(Phase::Syncing);

    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: "govdc-operator".into(),
            instance: Some(identity.clone()),
        },
    );
    let capacity =
        controllers::department_cloud::capacity::CapacityLedger::new(args.capacity.clone());
    let initial_lists = watch_list::initial_list_strategy(&client).await;
    let ctx = Arc::new(Context {
        client,
        initial_lists,
        recorder,
        metrics: metrics.clone(),
        capacity,
        hub: controllers::exchange_node::HubSettings {
            image: args.hub_image.clone(),
            endpoints: args.hub_endpoints.iter().cloned().collect(),
            operator_namespace: args.lease_namespace.clone(),
        },
        datasets: controllers::open_dataset::DatasetSettings {
            poll_interval: std::time::Duration::from_secs(args.dataset_poll_seconds.max(1)),
        },
        tenant_access: args
            .tenant_role
            .clone()
            .zip(args.service_account.clone())
            .map(|(role, (namespace, name))| {
                controllers::department_cloud::build::OperatorAccess {
                    role,
                    namespace,
                    name,
                }
            }),
    });
    // Stopped only once readiness says so (below), not at the signal itself.
    let controllers_stop = CancellationToken::new();
    let selector = args.object_selector.as_deref();
    let running = vec![
        controllers::department_cloud::start(
            ctx.clone(),
            selector,
            args.department_cloud_concurrency,
            controllers_stop.clone(),
        ),
        controllers::exchange_node::start(
            ctx.clone(),
            selector,
            args.exchange_node_concurrency,
            controllers_stop.clone(),
        ),
        controllers::open_dataset::start(
            ctx.clone(),
            selector,
            args.open_dataset_concurrency,
            controllers_stop.clone(),
        ),
        controllers::backup_policy::start(
            ctx.clone(),
            selector,
            args.backup_policy_concurrency,
            controllers::backup_policy::BackupSettings {
                restore_point_dir: args.restore_point_dir.clone(),
                apply_concurrency: args.backup_apply_concurrency,
                hub_state_interval: std::time::Duration::from_secs(args.hub_state_interval_seconds),
            },
            controllers_stop.clone(),
        ),
    ];
    let (synced, tasks): (Vec<_>, Vec<_>) = running.into_iter().map(|r| (r.synced, r.task)).unzip();
    let mut controllers = tokio::spawn(join_all(tasks));
    let sync_readiness = readiness.clone();
    let sync_watcher = tokio::spawn(async move {
        join_all(synced).await;
        sync_readiness.set(Phase::Ready);
    });

    let mut lost_lease = false;
    tokio::select! {
        _ = &mut controllers => tracing::error!("the controllers stopped on their own"),
        _ = terminated.cancelled() => {}
        _ = async { match campaign.as_mut() { Some(c) => c.lost().await, None => std::future::pending().await } } => {
            tracing::error!("lost the leader lease; stopping the controllers");
            lost_lease = true;
        }
    }
    sync_watcher.abort();
    readiness.set(Phase::ShuttingDown);
    controllers_stop.cancel();
    let grace = Duration::from_secs(args.shutdown_grace_seconds);
    if !controllers.is_finished() && tokio::time::timeout(grace, &mut controllers).await.is_err() {
        tracing::warn!(
            seconds = args.shutdown_grace_seconds,
            "in-flight reconciles did not finish in time"
        );
        controllers.abort();
    }
    metrics.leader.set(0);
    if let Some(campaign) = campaign {
        campaign.resign().await;
    }
    finish(&readiness, server_done, server).await?;
    if lost_lease {
        anyhow::bail!("lost the leader lease");
    }
    Ok(())
}

/// Stops the HTTP server last, so probes see the shutdown.
async fn finish(
    readiness: &Readiness,
    server_done: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
) -> anyhow::Result<()> {
    readiness.set(Phase::ShuttingDown);
    server_done.cancel();
    server
        .await
        .context("the HTTP server task failed")?
        .context("the HTTP server failed")?;
    tracing::info!("stopped");
    Ok(())
}
