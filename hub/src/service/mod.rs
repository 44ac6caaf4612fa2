//! The gRPC services of a node. One [`HubService`] implements all of them over the shared
//! [`Hub`] state; each service's methods are in their own module.

mod audit;
pub(crate) mod catalog;
mod exchange;
mod federation;
mod membership;
mod node;
mod portal;
pub(crate) mod statistics;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use govdc_hub_api::v1;
use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::audit::Algorithm;
use crate::auth::Authenticator;
use crate::config::{Config, Level, Network};
use crate::federation::Parent;
use crate::store::{SqlResult, StorageError, Store};

pub use catalog::all_resources as catalog_for_parent;
pub use membership::valid_credit_code;
pub use statistics::{child_last_sync, forwarded_stats, sharing_stats, tree_sharing_stats};

/// The gRPC answer to a storage error: RESOURCE_EXHAUSTED when the disk is full, UNAVAILABLE
/// when the store is closed, else INTERNAL; the detail logged.
impl From<StorageError> for Status {
    fn from(e: StorageError) -> Status {
        let message = e.report();
        match e {
            StorageError::Full { .. } => {
                tracing::warn!(error = %message, "the data directory is full");
                Status::resource_exhausted(message)
            }
            StorageError::Failed { .. } => {
                tracing::error!(error = %message, "storage error");
                Status::internal(message)
            }
            StorageError::Closed => Status::unavailable(message),
            StorageError::ReadTask(_)
            | StorageError::Encoding { .. }
            | StorageError::Corrupt { .. } => Status::internal(message),
        }
    }
}

/// Maps storage errors to a status (RESOURCE_EXHAUSTED when the disk is full, else INTERNAL),
/// logging the detail.
pub trait DbResult<T> {
    /// The value, or the status of its error.
    fn db(self) -> Result<T, Status>;
}

impl<T> DbResult<T> for rusqlite::Result<T> {
    fn db(self) -> Result<T, Status> {
        self.sql().map_err(Status::from)
    }
}

/// A file-system error met while doing `what`, as a status (RESOURCE_EXHAUSTED when the disk
/// is full, else INTERNAL).
pub fn io_status(what: &str, e: std::io::Error) -> Status {
    StorageError::io(what, e).into()
}

/// Everything the services share.
#[derive(Debug)]
pub struct Hub {
    /// The node's configuration.
    pub config: Config,
    /// Its store.
    pub store: Store<Status>,
    /// Its token checks.
    pub auth: Authenticator,
    /// The parent link, its status, and the signal that the catalog changed.
    pub parent: Parent,
    /// Per resource, the last published offset, for fetches that follow new records.
    published: Mutex<HashMap<String, watch::Sender<i64>>>,
    /// Followed resources: their tails of committed records and their fetch streams.
    pub(crate) lanes: exchange::Lanes,
    /// Cancelled when the node starts shutting down; long-lived streams end on it.
    pub shutdown: CancellationToken,
    /// The open-data portal, when the node serves one (`portalListen`).
    pub portal: Option<Arc<crate::portal::Portal>>,
}

impl Hub {
    /// A hub over an open store. Loads the membership mirror and the parent link.
    pub async fn new(
        config: Config,
        store: Store<Status>,
        auth: Authenticator,
        shutdown: CancellationToken,
    ) -> anyhow::Result<Hub> {
        let portal = crate::portal::Portal::from_config(&config)?.map(Arc::new);
        let hub = Hub {
            portal,
            config,
            store,
            auth,
            parent: Parent::default(),
            published: Mutex::default(),
            lanes: exchange::Lanes::default(),
            shutdown,
        };
        hub.reload().await?;
        Ok(hub)
    }

    /// Reloads what is mirrored in memory from the store (at start and after an import).
    pub async fn reload(&self) -> Result<(), Status> {
        let (members, parent) = self
            .store
            .read(|conn| {
                let mut stmt = conn.prepare("SELECT credit_code FROM members").db()?;
                let members = stmt
                    .query_map([], |row| row.get::<_, String>(0))
                    .db()?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .db()?;
                let parent = crate::federation::load_link(conn)?;
                Ok((members, parent))
            })
            .await?;
        self.auth.set_members(members);
        self.parent.set_link(parent);
        Ok(())
    }

    /// The audit algorithm for new records.
    pub fn algorithm(&self) -> Algorithm {
        self.config.audit_algorithm
    }

    /// Tells fetches following `resource` that records up to `last_offset` exist.
    pub fn notify_published(&self, resource: &str, last_offset: i64) {
        let published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(sender) = published.get(resource) {
            sender.send_replace(last_offset);
        }
    }

    /// A receiver that changes when `resource` gets new records.
    pub fn subscribe(&self, resource: &str) -> watch::Receiver<i64> {
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        published
            .entry(resource.to_owned())
            .or_insert_with(|| watch::channel(0).0)
            .subscribe()
    }

    /// The node's level in the API's terms.
    pub fn level(&self) -> v1::Level {
        api_level(self.config.level)
    }

    /// The node's network in the API's terms.
    pub fn network(&self) -> v1::Network {
        api_network(self.config.network)
    }
}

/// The API's name for a level.
pub fn api_level(level: Level) -> v1::Level {
    match level {
        Level::National => v1::Level::National,
        Level::Provincial => v1::Level::Provincial,
        Level::Municipal => v1::Level::Municipal,
    }
}

/// The API's name for a network.
pub fn api_network(network: Network) -> v1::Network {
    match network {
        Network::Intranet => v1::Network::Intranet,
        Network::Extranet => v1::Network::Extranet,
    }
}

/// All gRPC services of a node, over one shared [`Hub`].
#[derive(Clone, Debug)]
pub struct HubService(pub Arc<Hub>);

impl std::ops::Deref for HubService {
    type Target = Hub;
    fn deref(&self) -> &Hub {
        &self.0
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_micros() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// A protobuf timestamp from microseconds since the Unix epoch.
pub fn timestamp(micros: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: micros.div_euclid(1_000_000),
        nanos: (micros.rem_euclid(1_000_000) * 1000) as i32,
    }
}

/// A setting of the node, if set.
pub fn setting(conn: &Connection, key: &str) -> Result<Option<String>, StorageError> {
    conn.query_row("SELECT value FROM settings WHERE key = ?1", [key], |row| {
        row.get(0)
    })
    .optional()
    .sql()
}

/// Sets (or, with `None`, removes) a setting.
pub fn set_setting(conn: &Connection, key: &str, value: Option<&str>) -> Result<(), StorageError> {
    match value {
        Some(value) => conn
            .execute(
                "INSERT INTO settings (key, value) VALUES (?1, ?2)
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                params![key, value],
            )
            .sql()?,
        None => conn
            .execute("DELETE FROM settings WHERE key = ?1", [key])
            .sql()?,
    };
    Ok(())
}

/// Appends an audit record in the current transaction.
pub fn record(
    conn: &Connection,
    algorithm: Algorithm,
    actor: &str,
    action: &str,
    subject: &str,
    detail: serde_json::Value,
) -> Result<i64, Status> {
    crate::audit::append(conn, algorithm, actor, action, subject, &detail).db()
}
