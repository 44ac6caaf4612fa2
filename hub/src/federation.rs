//! Federation, the child's side: a node with a parent pushes its whole catalog (its own resources
//! and everything its descendants forwarded) to the parent's `Federation.SyncCatalog`, at once
//! when the catalog or the parent changes and every `federationInterval` otherwise, so that a
//! parent that lost its state or was unreachable converges without anyone's help.
//!
//! Each push carries the node's audit head; the parent records it in its own chain and answers
//! with the anchor it holds, which the node keeps beside its store (see [`crate::anchor`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::federation_client::FederationClient;
use govdc_hub_api::v1::{AuditHead, GetAuditAnchorRequest, SharingStats, SyncCatalogRequest};
use rusqlite::Connection;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tonic::Status;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use crate::anchor::{self, Anchor};
use crate::service::{DbResult, Hub, now_micros, set_setting, setting};

/// How this node reaches its parent (persisted in the store's settings).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Link {
    /// `http://host:port` or `https://host:port`.
    pub endpoint: String,
    /// The token the parent issued for this node (role `node`).
    pub token: String,
    /// PEM CA bundle for https.
    pub ca_pem: String,
}

/// How the last push to the parent went.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ParentStatus {
    /// The last push succeeded.
    pub connected: bool,
    /// When a push last succeeded, microseconds since the Unix epoch.
    pub last_sync_micros: Option<i64>,
    /// The last push's error; empty after a success.
    pub error: String,
}

#[derive(Debug, Default)]
struct Inner {
    link: Option<Link>,
    status: ParentStatus,
    // Bumped on each new link, so that a push to the old parent does not report on the new one.
    generation: u64,
}

/// The parent link and its status, shared by the services and the push loop.
#[derive(Debug, Default)]
pub struct Parent {
    inner: Mutex<Inner>,
    wake: Notify,
}

impl Parent {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the link (or clears it), forgets the old status and pushes at once.
    pub fn set_link(&self, link: Option<Link>) {
        let mut inner = self.lock();
        inner.link = link;
        inner.status = ParentStatus::default();
        inner.generation += 1;
        drop(inner);
        self.wake.notify_one();
    }

    /// The current link.
    pub fn link(&self) -> Option<Link> {
        self.lock().link.clone()
    }

    /// How the last push went.
    pub fn status(&self) -> ParentStatus {
        self.lock().status.clone()
    }

    /// Pushes soon: the catalog changed.
    pub fn catalog_changed(&self) {
        self.wake.notify_one();
    }

    fn snapshot(&self) -> (Option<Link>, u64) {
        let inner = self.lock();
        (inner.link.clone(), inner.generation)
    }

    fn report(&self, generation: u64, result: Result<(), String>) {
        let mut inner = self.lock();
        if inner.generation != generation {
            return;
        }
        match result {
            Ok(()) => {
                inner.status = ParentStatus {
                    connected: true,
                    last_sync_micros: Some(now_micros()),
                    error: String::new(),
                }
            }
            Err(error) => {
                inner.status.connected = false;
                inner.status.error = error;
            }
        }
    }
}

const ENDPOINT: &str = "parent.endpoint";
const TOKEN: &str = "parent.token";
const CA: &str = "parent.caPem";

/// The persisted link, if any.
pub fn load_link(conn: &Connection) -> Result<Option<Link>, Status> {
    let Some(endpoint) = setting(conn, ENDPOINT)? else {
        return Ok(None);
    };
    Ok(Some(Link {
        endpoint,
        token: setting(conn, TOKEN)?.unwrap_or_default(),
        ca_pem: setting(conn, CA)?.unwrap_or_default(),
    }))
}

/// Persists (or clears) the link.
pub fn save_link(conn: &Connection, link: Option<&Link>) -> Result<(), Status> {
    set_setting(conn, ENDPOINT, link.map(|l| l.endpoint.as_str()))?;
    set_setting(conn, TOKEN, link.map(|l| l.token.as_str()))?;
    set_setting(
        conn,
        CA,
        link.map(|l| l.ca_pem.as_str()).filter(|c| !c.is_empty()),
    )?;
    Ok(())
}

/// A channel to `link`'s endpoint (connected lazily, so an unreachable parent is an error of the
/// push, not of SetParent).
pub fn channel(link: &Link) -> Result<Channel, String> {
    let mut endpoint = Endpoint::from_shared(link.endpoint.clone())
        .map_err(|e| format!("{:?} is not an endpoint: {e}", link.endpoint))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));
    if link.endpoint.starts_with("https://") {
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&link.ca_pem));
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| format!("TLS for {}: {e}", link.endpoint))?;
    }
    Ok(endpoint.connect_lazy())
}

async fn push(hub: &Hub, link: &Link, channel: &Channel) -> Result<(), String> {
    let (resources, head, stats, below) = hub
        .store
        .read(|conn| {
            let resources = crate::service::catalog_for_parent(conn)?;
            let head = crate::audit::head(conn).db()?;
            let stats = crate::service::sharing_stats(conn)?;
            let below = crate::service::forwarded_stats(conn)?;
            Ok((resources, head, stats, below))
        })
        .await
        .map_err(|s| format!("reading the catalog: {}", s.message()))?;
    // The statistics ride with the catalog: this node's figures and those of the nodes below.
    let nodes = std::iter::once(crate::service::statistics::own_node_stats(hub, &stats))
        .chain(below)
        .collect();
    let interceptor = BearerToken::new(&link.token).map_err(|s| s.message().to_owned())?;
    let mut client = FederationClient::with_interceptor(channel.clone(), interceptor);
    let request = SyncCatalogRequest {
        node: hub.config.name.clone(),
        level: hub.level() as i32,
        network: hub.network() as i32,
        region_code: hub.config.region_code.clone(),
        resources,
        audit_head: head.map(|h| AuditHead {
            seq: h.seq,
            hash: h.hash,
        }),
        sharing_stats: Some(SharingStats {
            nodes,
            ..Default::default()
        }),
    };
    let response = client.sync_catalog(request).await.map_err(|s| {
        format!(
            "parent {} refused the catalog: {:?}: {}",
            link.endpoint,
            s.code(),
            s.message()
        )
    })?;
    if let Some(anchor) = response
        .into_inner()
        .anchor
        .as_ref()
        .and_then(Anchor::from_api)
    {
        keep_anchor(hub, anchor).await?;
    }
    Ok(())
}

/// Keeps the anchor the parent acknowledged: its seq in the store (so that a store cut below it
/// knows it was cut) and the whole anchor in the file beside the store (so that a store put back
/// from an older copy is told apart).
async fn keep_anchor(hub: &Hub, anchor: Anchor) -> Result<(), String> {
    if anchor.node != hub.config.name {
        return Err(format!(
            "the parent answered with an anchor of node {}, this is node {}",
            anchor.node, hub.config.name
        ));
    }
    let dir = hub.store.dir().to_owned();
    let current = anchor::read_local(&dir).ok().flatten();
    if current.as_ref() == Some(&anchor) {
        return Ok(());
    }
    // The copy is evidence: it never moves back (after a state import it was removed).
    if let Some(current) = current
        && current.seq >= anchor.seq
    {
        tracing::warn!(
            kept = current.seq,
            answered = anchor.seq,
            "the parent answered an anchor below the one kept beside the store"
        );
        return Ok(());
    }
    let seq = anchor.seq;
    hub.store
        .write(move |conn| {
            Ok(set_setting(
                conn,
                anchor::ANCHORED_SETTING,
                Some(&seq.to_string()),
            )?)
        })
        .await
        .map_err(|s| format!("keeping the parent's anchor: {}", s.message()))?;
    tokio::task::spawn_blocking(move || anchor::write_local(&dir, &anchor))
        .await
        .map_err(|e| format!("keeping the parent's anchor: {e}"))?
        .map_err(|e| format!("writing {}: {e}", anchor::LOCAL_FILE))
}

/// The anchors of this node's head that the parent holds (the newest first, then the disputed
/// ones); None without a parent.
pub async fn parent_anchors(hub: &Hub) -> Option<Result<Vec<Anchor>, String>> {
    let link = hub.parent.link()?;
    Some(fetch_anchors(&link).await)
}

/// Asks the parent behind `link` for its anchors of the caller's head.
pub async fn fetch_anchors(link: &Link) -> Result<Vec<Anchor>, String> {
    let channel = channel(link)?;
    let interceptor = BearerToken::new(&link.token).map_err(|s| s.message().to_owned())?;
    let mut client = FederationClient::with_interceptor(channel, interceptor);
    let call = client.get_audit_anchor(GetAuditAnchorRequest {});
    let answer = tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| format!("parent {} did not answer within 10 s", link.endpoint))?
        .map_err(|s| {
            format!(
                "parent {} answered {:?}: {}",
                link.endpoint,
                s.code(),
                s.message()
            )
        })?
        .into_inner();
    let newest = answer
        .newest
        .as_ref()
        .and_then(Anchor::from_api)
        .ok_or_else(|| format!("parent {} answered an anchor without a head", link.endpoint))?;
    Ok(std::iter::once(newest)
        .chain(answer.disputed.iter().filter_map(Anchor::from_api))
        .collect())
}

/// Pushes the catalog to the parent until `shutdown` is cancelled.
pub async fn run(hub: Arc<Hub>, interval: Duration, shutdown: CancellationToken) {
    let mut cached: Option<(Link, Channel)> = None;
    loop {
        let (link, generation) = hub.parent.snapshot();
        if let Some(link) = link {
            let channel = match &cached {
                Some((l, c)) if *l == link => Ok(c.clone()),
                _ => channel(&link).inspect(|c| cached = Some((link.clone(), c.clone()))),
            };
            let result = match channel {
                Ok(channel) => push(&hub, &link, &channel).await,
                Err(e) => Err(e),
            };
            match &result {
                Ok(()) => tracing::debug!(parent = %link.endpoint, "catalog pushed to the parent"),
                Err(error) => {
                    tracing::warn!(parent = %link.endpoint, %error, "pushing the catalog")
                }
            }
            hub.parent.report(generation, result);
        }
        tokio::select! {
            _ = hub.parent.wake.notified() => {
                // Let a burst of changes settle into one push.
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.cancelled() => return,
        }
    }
}
