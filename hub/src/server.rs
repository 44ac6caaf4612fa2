//! Running a node: open the store, serve gRPC (with health and reflection) and HTTP (metrics),
//! push the catalog to the parent, and shut down gracefully.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use govdc_hub_api::FILE_DESCRIPTOR_SET;
use govdc_hub_api::auth::TokenKey;
use govdc_hub_api::v1::audit_server::AuditServer;
use govdc_hub_api::v1::catalog_server::CatalogServer;
use govdc_hub_api::v1::exchange_server::ExchangeServer;
use govdc_hub_api::v1::federation_server::FederationServer;
use govdc_hub_api::v1::membership_server::MembershipServer;
use govdc_hub_api::v1::node_server::NodeServer;
use govdc_hub_api::v1::portal_server::PortalServer;
use govdc_hub_api::v1::statistics_server::StatisticsServer;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Identity, Server, ServerTlsConfig};
use tonic_health::ServingStatus;

use crate::auth::Authenticator;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::service::{DbResult, Hub, HubService, set_setting, setting};
use crate::store::Store;

/// How long in-flight calls get to finish after a shutdown signal before the node closes anyway.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Largest message a node accepts: a publish batch or an import chunk.
const MAX_MESSAGE: usize = 16 << 20;

/// Reads the signing key: the file's bytes, exactly (the operator mounts its Secret there).
pub fn read_key(path: &std::path::Path) -> anyhow::Result<TokenKey> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("reading the auth key file {}", path.display()))?;
    TokenKey::new(bytes).with_context(|| format!("the auth key in {}", path.display()))
}

/// Runs the node until `signal` resolves, then drains and closes the store.
pub async fn run(
    config: Config,
    signal: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let key = read_key(&config.auth_key_file)?;
    let dir = config.data_dir.clone();
    let store = tokio::task::spawn_blocking(move || Store::<Status>::open(&dir))
        .await
        .context("opening the store")??;
    // A data directory belongs to one node: mounting another node's volume is a mistake that
    // would mix two nodes' members and audit logs.
    let name = config.name.clone();
    let claimed = store
        .write(move |conn| match setting(conn, "node.name")? {
            Some(owner) if owner != name => Ok(Some(owner)),
            Some(_) => Ok(None),
            None => {
                set_setting(conn, "node.name", Some(&name))?;
                Ok(None)
            }
        })
        .await
        .map_err(|s| anyhow::anyhow!("{}", s.message()))?;
    if let Some(owner) = claimed {
        store.close().await;
        bail!(
            "the store in {} belongs to node {owner}; this configuration names node {}",
            config.data_dir.display(),
            config.name
        );
    }

    // Cancelled on the shutdown signal: long-lived streams, the federation loop and the web
    // servers end on it.
    let shutdown = CancellationToken::new();
    let auth = Authenticator::new(key, config.name.clone());
    let hub = Arc::new(
        Hub::new(config.clone(), store, auth, shutdown.clone())
            .await
            .context("loading the node's state")?,
    );

    let grpc = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening for gRPC on {}", config.listen))?;
    let http = TcpListener::bind(config.metrics_listen)
        .await
        .with_context(|| format!("listening for metrics on {}", config.metrics_listen))?;

    let (health, health_service) = tonic_health::server::health_reporter();
    health.set_serving::<NodeServer<HubService>>().await;
    health.set_serving::<MembershipServer<HubService>>().await;
    health.set_serving::<CatalogServer<HubService>>().await;
    health.set_serving::<ExchangeServer<HubService>>().await;
    health.set_serving::<AuditServer<HubService>>().await;
    health.set_serving::<StatisticsServer<HubService>>().await;
    health.set_serving::<FederationServer<HubService>>().await;
    health.set_serving::<PortalServer<HubService>>().await;
    health.set_service_status("", ServingStatus::Serving).await;
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection().build_v1().context("building reflection v1")?;
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .context("building reflection v1alpha")?;

    let mut builder = Server::builder();
    if let Some(tls) = &config.tls {
        let cert = std::fs::read(&tls.cert_file)
            .with_context(|| format!("reading the TLS certificate {}", tls.cert_file.display()))?;
        let key = std::fs::read(&tls.key_file)
            .with_context(|| format!("reading the TLS key {}", tls.key_file.display()))?;
        builder = builder
            .tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
            .context("configuring TLS")?;
    }
    let service = HubService(hub.clone());
    let router = builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(NodeServer::new(service.clone()).max_decoding_message_size(MAX_MESSAGE))
        .add_service(MembershipServer::new(service.clone()))
        .add_service(CatalogServer::new(service.clone()))
        .add_service(ExchangeServer::new(service.clone()).max_decoding_message_size(MAX_MESSAGE))
        .add_service(AuditServer::new(service.clone()))
        .add_service(StatisticsServer::new(service.clone()))
        .add_service(PortalServer::new(service.clone()).max_decoding_message_size(MAX_MESSAGE))
        .add_service(FederationServer::new(service).max_decoding_message_size(MAX_MESSAGE));

    let metrics = Metrics::new()?;
    let portal = match &hub.portal {
        Some(portal) => Some(start_portal(&hub, portal, &config, &metrics, &shutdown).await?),
        None => None,
    };
    let monitor = match config.monitor_listen {
        Some(address) => Some(start_monitor(&hub, address, &shutdown).await?),
        None => None,
    };
    let app = crate::metrics::router(hub.clone(), metrics);
    let http_server = tokio::spawn(
        axum::serve(http, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    );
    let federation = tokio::spawn(crate::federation::run(
        hub.clone(),
        config.federation_interval,
        shutdown.clone(),
    ));

    tracing::info!(
        node = %config.name,
        grpc = %config.listen,
        metrics = %config.metrics_listen,
        data_dir = %config.data_dir.display(),
        tls = config.tls.is_some(),
        audit = config.audit_algorithm.as_str(),
        "govdc-hub serving"
    );

    let signalled = shutdown.clone();
    let stop = async move {
        signal.await;
        tracing::info!("shutdown signal: refusing new calls, finishing in-flight ones");
        health
            .set_service_status("", ServingStatus::NotServing)
            .await;
        signalled.cancel();
    };
    // TCP_NODELAY: acknowledgements and fetched records are small writes that Nagle's
    // algorithm would hold back until the peer's delayed ACK (tens of milliseconds).
    let incoming = TcpIncoming::from(grpc).with_nodelay(Some(true));
    let server = router.serve_with_incoming_shutdown(incoming, stop);
    let drained = tokio::select! {
        result = server => {
            result.context("serving gRPC")?;
            true
        }
        _ = async {
            shutdown.cancelled().await;
            tokio::time::sleep(DRAIN).await;
        } => false,
    };
    if !drained {
        tracing::warn!(after = ?DRAIN, "in-flight calls did not finish; closing anyway");
    }
    let _ = federation.await;
    if let Some(portal) = portal {
        match tokio::time::timeout(Duration::from_secs(5), portal).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "portal server"),
            Err(_) => tracing::warn!("portal server did not stop in time"),
            _ => {}
        }
    }
    if let Some(monitor) = monitor {
        match tokio::time::timeout(Duration::from_secs(5), monitor).await {
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "monitor server"),
            Err(_) => tracing::warn!("monitor server did not stop in time"),
            _ => {}
        }
    }
    match tokio::time::timeout(Duration::from_secs(5), http_server).await {
        Ok(Ok(Err(e))) => tracing::warn!(error = %e, "metrics server"),
        Err(_) => tracing::warn!("metrics server did not stop in time"),
        _ => {}
    }
    hub.store.close().await;
    tracing::info!("store closed; govdc-hub stopped");
    Ok(())
}

/// Sweeps what interrupted uploads left, registers the portal's counters and serves its HTTP
/// app on `portalListen` until shutdown.
async fn start_portal(
    hub: &Arc<Hub>,
    portal: &Arc<crate::portal::Portal>,
    config: &Config,
    metrics: &Metrics,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let address = config
        .portal_listen
        .context("the portal is enabled without portalListen")?;
    portal
        .sweep(&hub.store)
        .await
        .context("sweeping the portal's files")?;
    check_published_files(&hub.store, portal).await?;
    portal
        .metrics
        .register(metrics.registry())
        .context("registering the portal's metrics")?;
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for the portal on {address}"))?;
    portal
        .downloads
        .load(&hub.store)
        .await
        .map_err(|s| anyhow::anyhow!("reading the portal's download counts: {}", s.message()))?;
    let app = crate::portal::http::router(hub.clone(), portal.clone());
    let stop = shutdown.clone();
    tracing::info!(portal = %address, "serving the open-data portal");
    let (hub, portal, counts_stop) = (hub.clone(), portal.clone(), shutdown.clone());
    Ok(tokio::spawn(async move {
        // Download counts are written every few seconds, and once more after the last request.
        let counts = async { portal.downloads.run(&hub.store, counts_stop).await };
        let serve = axum::serve(listener, app).with_graceful_shutdown(stop.cancelled_owned());
        let (served, ()) = tokio::join!(serve.into_future(), counts);
        if let Err(e) = portal.downloads.flush(&hub.store).await {
            tracing::warn!(error = e.message(), "writing the portal's download counts");
        }
        served
    }))
}

/// Refuses to serve a portal whose files do not match the store: every file of every
/// downloadable version must be there with the size the store records, except the versions an
/// import marked as awaiting their files (`crate::portal::restore`).
///
/// A size is one `stat` per file, so this costs nothing at start whatever the datasets weigh;
/// the SHA-256 of every file would read every published byte (minutes for a portal of large
/// datasets) and is not checked here: a crash cannot change a file's bytes (an upload is
/// fsynced and renamed into place before the transaction that makes it current), and each
/// download carries the recorded SHA-256 for the client to check.
async fn check_published_files(
    store: &Store<Status>,
    portal: &Arc<crate::portal::Portal>,
) -> anyhow::Result<()> {
    let versions = store
        .read(|conn| {
            let mut stmt = conn
                .prepare("SELECT dataset_id, version, files, awaiting_files FROM portal_versions")
                .db()?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, bool>(3)?,
                    ))
                })
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            Ok(rows)
        })
        .await
        .map_err(|s| anyhow::anyhow!("reading the portal's versions: {}", s.message()))?;
    let portal = portal.clone();
    tokio::task::spawn_blocking(move || {
        for (id, version, files, awaiting) in versions {
            let files: Vec<crate::portal::StoredFile> = serde_json::from_str(&files)
                .with_context(|| format!("the store's file list of dataset {id} version {version}"))?;
            // Files an imported state did not bring are not damage: they are served (503 until
            // then) once the version is published again (`crate::portal::restore`).
            if awaiting {
                tracing::warn!(
                    dataset = %id,
                    version,
                    "this version's files did not come with the imported state: its downloads \
                     answer 503 until it is published again"
                );
                continue;
            }
            for file in files {
                let path = portal.file_path(&id, version, &file.format);
                let found = match std::fs::metadata(&path) {
                    Ok(meta) => format!("{} bytes", meta.len()),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => "no file".to_owned(),
                    Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
                };
                if found != format!("{} bytes", file.size) {
                    bail!(
                        "the portal's file {} (dataset {id} version {version}, {}) does not match \
                         the store: the store records {} bytes with SHA-256 {}, the disk has {found}. \
                         govdc-hub will not serve a catalogue whose files are damaged. Put the \
                         file back from a backup (its SHA-256 above names the right bytes), or \
                         restore the whole data directory",
                        path.display(),
                        file.format,
                        file.size,
                        file.sha256,
                    );
                }
            }
        }
        Ok(())
    })
    .await
    .context("checking the portal's files")?
}

/// Serves the sharing-monitor website on `monitorListen` until shutdown, and keeps its daily
/// trend.
async fn start_monitor(
    hub: &Arc<Hub>,
    address: std::net::SocketAddr,
    shutdown: &CancellationToken,
) -> anyhow::Result<tokio::task::JoinHandle<std::io::Result<()>>> {
    let listener = TcpListener::bind(address)
        .await
        .with_context(|| format!("listening for the monitor on {address}"))?;
    tokio::spawn(crate::monitor::snapshots(hub.clone(), shutdown.clone()));
    let app = crate::monitor::router(hub.clone());
    tracing::info!(monitor = %address, "serving the sharing-monitor website");
    Ok(tokio::spawn(
        axum::serve(listener, app)
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .into_future(),
    ))
}
