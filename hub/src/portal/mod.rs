//! The open-data portal (国家公共数据开放网站) a node serves when `portalListen` is set.
//!
//! The operator uploads de-identified datasets over gRPC ([`publish`], behind the `Portal`
//! service); the public reads them over HTTP ([`http`]): a JSON listing, downloads with ranges
//! and checksums, a CKAN-compatible Action API subset ([`ckan`]) and a DCAT-AP catalog
//! ([`dcat`]).
//!
//! **Storage.** Metadata and versions are rows of the node's store (`portal_datasets`,
//! `portal_versions`, `portal_tokens`, with the website's `portal_history` ([`history`]),
//! `portal_downloads` ([`downloads`]) and `portal_applications` ([`applications`])); files
//! live under `<dataDir>/portal/<id>/<version>/`. An upload is written to `<dataDir>/portal/.staging/`, checked (size and SHA-256), fsynced and
//! renamed into place, and only then does one transaction make it current, with its audit
//! record. A crash at any point leaves the previous version current; whatever an interrupted
//! upload left on disk is swept at the next start ([`Portal::sweep`]).
//!
//! **Old versions.** The version that was current before the last publish stays downloadable at
//! its own path until the next publish replaces it, so a client that resolved a URL just before
//! the flip, or resumes with `Range`, still gets the bytes it started with. Older versions are
//! deleted at the flip; downloads of them already under way still finish, because an open file
//! outlives its unlink.

pub mod applications;
pub mod bulk;
pub mod catalogue;
pub mod ckan;
pub mod dcat;
pub mod downloads;
mod error;
pub mod history;
pub mod http;
pub mod publish;
pub mod quality;
pub mod restore;
pub mod search;
pub mod timeliness;
pub mod web;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use govdc_hub_api::v1::{DatasetFile, DatasetMetadata, Openness, PublishedDataset};
use prometheus::{IntCounterVec, Opts, Registry};
use prost::Message;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::Digest;
use tonic::Status;

pub use error::PortalError;

use crate::config::Config;
use crate::service::timestamp;
use crate::store::{SqlResult, StorageError, Store};

/// The portal's directory inside the data directory.
pub const DIR: &str = "portal";
/// Where uploads are written before they are complete, inside [`DIR`].
const STAGING: &str = ".staging";
/// The formats a dataset may have (each a gzip file).
pub const FORMATS: &[&str] = &["csv", "json"];

/// A file of a stored version.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredFile {
    /// `csv` or `json`.
    pub format: String,
    /// SHA-256 of the compressed file, lower-case hex.
    pub sha256: String,
    /// Its size in bytes.
    pub size: i64,
}

/// A served dataset: its current version's metadata and files.
#[derive(Clone, Debug)]
pub struct Entry {
    /// The metadata of the current version.
    pub metadata: DatasetMetadata,
    /// Its files.
    pub files: Vec<StoredFile>,
    /// When the current version was published, microseconds since the Unix epoch.
    pub published_at: i64,
}

impl Entry {
    /// Whether downloads need a token (有条件开放).
    pub fn conditional(&self) -> bool {
        self.metadata.openness == Openness::Conditional as i32
    }

    /// The API's view of it.
    pub fn to_api(&self) -> PublishedDataset {
        PublishedDataset {
            metadata: Some(self.metadata.clone()),
            files: self
                .files
                .iter()
                .map(|f| DatasetFile {
                    format: f.format.clone(),
                    sha256: f.sha256.clone(),
                    size: f.size,
                    path: download_path(&self.metadata.id, self.metadata.version, &f.format),
                })
                .collect(),
            published_at: Some(timestamp(self.published_at)),
            awaiting_files: false,
        }
    }
}

/// The download path of a file: `/download/{id}/{version}/data.{format}.gz`.
pub fn download_path(id: &str, version: i64, format: &str) -> String {
    format!("/download/{id}/{version}/{}", file_name(format))
}

/// The file name of a format on disk and in URLs.
pub fn file_name(format: &str) -> String {
    format!("data.{format}.gz")
}

/// Whether `id` is a dataset id the portal accepts: it becomes a directory name and a URL path
/// segment, so only `<namespace>.<name>` characters (lower-case letters, digits, `-`, `.`, `_`),
/// not starting with a dot.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 253
        && !id.starts_with('.')
        && !id.contains("..")
        && id.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'-' | b'.' | b'_')
        })
}

/// The portal's counters, registered on the node's `/metrics`.
#[derive(Clone, Debug)]
pub struct PortalMetrics {
    /// Downloads started (200 or 206), by dataset.
    pub downloads: IntCounterVec,
    /// Bytes of files sent, by dataset.
    pub bytes_served: IntCounterVec,
    /// Publish calls, by dataset and outcome (`published`, `unchanged`, `restored`, `failed`).
    pub publishes: IntCounterVec,
}

impl PortalMetrics {
    fn new() -> prometheus::Result<PortalMetrics> {
        Ok(PortalMetrics {
            downloads: IntCounterVec::new(
                Opts::new(
                    "govdc_hub_portal_downloads_total",
                    "Downloads of open-data files started (full or ranged), by dataset.",
                ),
                &["dataset"],
            )?,
            bytes_served: IntCounterVec::new(
                Opts::new(
                    "govdc_hub_portal_bytes_served_total",
                    "Bytes of open-data files sent to clients, by dataset.",
                ),
                &["dataset"],
            )?,
            publishes: IntCounterVec::new(
                Opts::new(
                    "govdc_hub_portal_publishes_total",
                    "PublishDataset calls, by dataset and outcome (published, unchanged, restored, failed).",
                ),
                &["dataset", "outcome"],
            )?,
        })
    }

    /// Registers the counters in `registry`.
    pub fn register(&self, registry: &Registry) -> prometheus::Result<()> {
        registry.register(Box::new(self.downloads.clone()))?;
        registry.register(Box::new(self.bytes_served.clone()))?;
        registry.register(Box::new(self.publishes.clone()))?;
        Ok(())
    }
}

/// The portal of a node.
#[derive(Debug)]
pub struct Portal {
    root: PathBuf,
    /// The base of every absolute link, without a trailing slash: the configured public URL
    /// (see [`Config::portal_base_url`]), never a request's `Host`.
    pub public_url: String,
    /// Datasets with an upload in progress: one at a time per dataset, so two uploads never
    /// race for the same version directory.
    uploads: Mutex<HashSet<String>>,
    /// Its counters.
    pub metrics: PortalMetrics,
    /// The served datasets, decoded once per change.
    pub catalogue: catalogue::Catalogue,
    /// Download counts, counted on the server.
    pub downloads: downloads::Downloads,
    /// The dataset pages' previews already read.
    pub previews: web::preview::Cache,
}

/// Marks a dataset's upload in progress until dropped.
#[derive(Debug)]
pub struct UploadGuard<'a> {
    portal: &'a Portal,
    id: String,
}

impl Drop for UploadGuard<'_> {
    fn drop(&mut self) {
        self.portal
            .uploads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.id);
    }
}

impl Portal {
    /// The portal of the node configured by `config`, if it serves one.
    pub fn from_config(config: &Config) -> anyhow::Result<Option<Portal>> {
        let Some(listen) = config.portal_listen else {
            return Ok(None);
        };
        Ok(Some(Portal {
            root: config.data_dir.join(DIR),
            public_url: config.portal_base_url(listen)?,
            uploads: Mutex::default(),
            metrics: PortalMetrics::new()?,
            catalogue: catalogue::Catalogue::default(),
            downloads: downloads::Downloads::default(),
            previews: web::preview::Cache::default(),
        }))
    }

    /// The served catalogue, from the store (decoded and indexed again only after a change).
    pub async fn snapshot(
        self: &std::sync::Arc<Self>,
        store: &Store<Status>,
    ) -> Result<std::sync::Arc<catalogue::Snapshot>, Status> {
        let portal = self.clone();
        store
            .read(move |conn| Ok(portal.catalogue.snapshot(conn)?))
            .await
    }

    /// `<dataDir>/portal`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of a version's files.
    pub fn version_dir(&self, id: &str, version: i64) -> PathBuf {
        self.root.join(id).join(version.to_string())
    }

    /// The path of a version's file.
    pub fn file_path(&self, id: &str, version: i64, format: &str) -> PathBuf {
        self.version_dir(id, version).join(file_name(format))
    }

    fn staging(&self) -> PathBuf {
        self.root.join(STAGING)
    }

    /// Claims the right to upload `id`; a conflict (ABORTED) while another upload of it is in
    /// progress.
    pub fn begin_upload(&self, id: &str) -> Result<UploadGuard<'_>, PortalError> {
        let mut uploads = self.uploads.lock().unwrap_or_else(|p| p.into_inner());
        if !uploads.insert(id.to_owned()) {
            return Err(PortalError::Conflict(format!(
                "another upload of dataset {id} is in progress; try again when it ends"
            )));
        }
        Ok(UploadGuard {
            portal: self,
            id: id.to_owned(),
        })
    }

    /// Removes what interrupted uploads left: the staging directory, and version directories
    /// (and dataset directories) the store does not reference. Run at start, before serving.
    pub async fn sweep(&self, store: &Store<Status>) -> anyhow::Result<()> {
        let kept: HashSet<(String, i64)> = store
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT dataset_id, version FROM portal_versions")
                    .sql()?;
                let rows = stmt
                    .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))
                    .sql()?
                    .collect::<rusqlite::Result<HashSet<_>>>()
                    .sql()?;
                Ok(rows)
            })
            .await
            .map_err(|s| anyhow::anyhow!("reading the portal's versions: {}", s.message()))?;
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || sweep_dirs(&root, &kept)).await??;
        Ok(())
    }

    /// Deletes the version directories of `id` other than `keep` (after a flip or an unpublish).
    pub async fn prune(&self, id: &str, keep: Vec<i64>) {
        let dir = self.root.join(id);
        let result = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let entries = match std::fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                let version = entry
                    .file_name()
                    .to_str()
                    .and_then(|n| n.parse::<i64>().ok());
                if version.is_none_or(|v| !keep.contains(&v)) {
                    std::fs::remove_dir_all(entry.path())?;
                }
            }
            if keep.is_empty() {
                std::fs::remove_dir(&dir)?;
            }
            Ok(())
        })
        .await;
        match result {
            Ok(Ok(())) => {}
            // Left for the sweep at the next start: nothing references the files any more.
            Ok(Err(e)) => tracing::warn!(dataset = id, error = %e, "removing old portal files"),
            Err(e) => tracing::warn!(dataset = id, error = %e, "removing old portal files"),
        }
    }
}

fn sweep_dirs(root: &Path, kept: &HashSet<(String, i64)>) -> anyhow::Result<()> {
    std::fs::create_dir_all(root)?;
    let staging = root.join(STAGING);
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    for dataset in std::fs::read_dir(root)? {
        let dataset = dataset?;
        let Some(id) = dataset.file_name().to_str().map(str::to_owned) else {
            continue;
        };
        if !dataset.file_type()?.is_dir() {
            continue;
        }
        let mut any = false;
        for version in std::fs::read_dir(dataset.path())? {
            let version = version?;
            let number = version
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<i64>().ok());
            match number {
                Some(v) if kept.contains(&(id.clone(), v)) => any = true,
                _ => {
                    tracing::info!(path = %version.path().display(), "removing unreferenced portal files");
                    std::fs::remove_dir_all(version.path())?;
                }
            }
        }
        if !any {
            std::fs::remove_dir(dataset.path())?;
        }
    }
    Ok(())
}

fn entry_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(Vec<u8>, String, i64)> {
    Ok((row.get(0)?, row.get(1)?, row.get(2)?))
}

fn corrupt(what: &'static str, e: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Corrupt {
        what,
        source: Box::new(e),
    }
}

fn decode_entry(
    (body, files, published_at): (Vec<u8>, String, i64),
) -> Result<Entry, StorageError> {
    let metadata = DatasetMetadata::decode(body.as_slice())
        .map_err(|e| corrupt("a stored dataset's metadata is corrupt", e))?;
    let files = serde_json::from_str(&files)
        .map_err(|e| corrupt("a stored dataset's files are corrupt", e))?;
    Ok(Entry {
        metadata,
        files,
        published_at,
    })
}

const ENTRY_SQL: &str = "SELECT d.metadata, v.files, d.published_at FROM portal_datasets d
     JOIN portal_versions v ON v.dataset_id = d.id AND v.version = d.version";

/// Every served dataset, by id.
pub fn load_all(conn: &Connection) -> Result<Vec<Entry>, StorageError> {
    let mut stmt = conn
        .prepare_cached(&format!("{ENTRY_SQL} ORDER BY d.id"))
        .sql()?;
    let rows = stmt
        .query_map([], entry_from_row)
        .sql()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    rows.into_iter().map(decode_entry).collect()
}

/// The served dataset `id`, if any.
pub fn load_one(conn: &Connection, id: &str) -> Result<Option<Entry>, StorageError> {
    let row = conn
        .prepare_cached(&format!("{ENTRY_SQL} WHERE d.id = ?1"))
        .sql()?
        .query_row([id], entry_from_row)
        .optional()
        .sql()?;
    row.map(decode_entry).transpose()
}

/// The files of version `version` of `id`, if it is still downloadable, and whether the dataset
/// is conditional.
pub fn load_version(
    conn: &Connection,
    id: &str,
    version: i64,
) -> Result<Option<(Vec<StoredFile>, bool)>, StorageError> {
    let row: Option<(String, i32)> = conn
        .prepare_cached(
            "SELECT v.files, d.openness FROM portal_versions v
             JOIN portal_datasets d ON d.id = v.dataset_id
             WHERE v.dataset_id = ?1 AND v.version = ?2",
        )
        .sql()?
        .query_row(params![id, version], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()
        .sql()?;
    row.map(|(files, openness)| {
        let files: Vec<StoredFile> = serde_json::from_str(&files)
            .map_err(|e| corrupt("a stored version's files are corrupt", e))?;
        Ok((files, openness == Openness::Conditional as i32))
    })
    .transpose()
}

/// The SHA-256 (hex) of a download token, as stored.
pub fn token_digest(token: &str) -> String {
    hex::encode(sha2::Sha256::digest(token.as_bytes()))
}

/// Whether `token` is a valid download token for dataset `id` now.
pub fn token_valid(
    conn: &Connection,
    id: &str,
    token: &str,
    now_micros: i64,
) -> Result<bool, StorageError> {
    conn.prepare_cached(
        "SELECT 1 FROM portal_tokens WHERE token_sha256 = ?1 AND dataset_id = ?2 AND expires_at > ?3",
    )
    .sql()?
    .exists(params![token_digest(token), id, now_micros])
    .sql()
}

/// A new random download token: `gdt_` and 32 bytes from the kernel's CSPRNG, in hex.
pub fn new_token() -> Result<String, PortalError> {
    use std::io::Read;
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .map_err(|e| PortalError::internal("reading /dev/urandom", e))?;
    Ok(format!("gdt_{}", hex::encode(bytes)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_safe_path_segments() {
        assert!(valid_id("hz-health.clinics"));
        assert!(valid_id("ns.name_1"));
        for bad in ["", ".hidden", "a/b", "a..b", "UPPER", "a b", "..", "a\\b"] {
            assert!(!valid_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn paths_follow_the_contract() {
        assert_eq!(
            download_path("hz.health", 3, "csv"),
            "/download/hz.health/3/data.csv.gz"
        );
    }
}
