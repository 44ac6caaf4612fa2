//! Publishing and unpublishing: an upload streams to a staging directory, each file's size and
//! SHA-256 are checked against its `FileEnd`, the files are fsynced and the directory renamed
//! into place, and one transaction then makes the version current with its audit record. Until
//! that transaction commits the previous version is the one served; if anything fails first,
//! the staging or version directory is removed and nothing changed.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use futures::{Stream, StreamExt};
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{DatasetMetadata, Openness, PublishDatasetRequest, PublishedDataset};
use prost::Message;
use rusqlite::{OptionalExtension, params};
use serde_json::json;
use sha2::Digest;
use tonic::Status;

use super::{Entry, FORMATS, Portal, PortalError, StoredFile, file_name, load_one, valid_id};
use crate::service::{Hub, now_micros, record};
use crate::store::{SqlResult, StorageError};

/// What a publish call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// A new version is current.
    Published,
    /// The same version and content were already current, its files there: nothing changed.
    Unchanged,
    /// The current version's files, which an imported state did not bring (or which are gone),
    /// were stored again: the version is downloadable ([`super::restore`]).
    Restored,
}

impl Outcome {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Published => "published",
            Outcome::Unchanged => "unchanged",
            Outcome::Restored => "restored",
        }
    }
}

fn invalid(message: impl Into<String>) -> PortalError {
    PortalError::Invalid(message.into())
}

/// A file-system error of an upload: a storage error (RESOURCE_EXHAUSTED when the disk is full).
fn disk(what: &str, e: std::io::Error) -> PortalError {
    StorageError::io(what, e).into()
}

/// A failure of an upload's blocking task or an encoder, logged where it happened.
fn io(
    what: &str,
    e: impl std::fmt::Display + Into<Box<dyn std::error::Error + Send + Sync>>,
) -> PortalError {
    tracing::error!(error = %e, "{what}");
    PortalError::internal(what, e)
}

fn check_metadata(metadata: &DatasetMetadata) -> Result<(), PortalError> {
    if !valid_id(&metadata.id) {
        return Err(invalid(format!(
            "dataset id {:?} must be lower-case letters, digits, '-', '.' or '_' \
             (`<namespace>.<name>`), not starting with '.'",
            metadata.id
        )));
    }
    if metadata.version < 1 {
        return Err(invalid(format!(
            "version {} of {}: versions start at 1",
            metadata.version, metadata.id
        )));
    }
    if !matches!(
        Openness::try_from(metadata.openness),
        Ok(Openness::Unconditional | Openness::Conditional)
    ) {
        return Err(invalid(format!(
            "dataset {}: openness must be unconditional or conditional",
            metadata.id
        )));
    }
    Ok(())
}

/// Removes a directory when dropped, unless disarmed: an upload that fails, or whose caller
/// goes away mid-stream (the handler's future is then dropped), leaves nothing behind.
struct Cleanup(Option<PathBuf>);

impl Cleanup {
    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take()
            && let Err(e) = std::fs::remove_dir_all(&dir)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %dir.display(), error = %e, "removing an abandoned upload");
        }
    }
}

/// A file being received.
struct Receiving {
    file: std::fs::File,
    hasher: sha2::Sha256,
    size: u64,
}

/// Receives a version from `parts` (the `DatasetMetadata` first) and makes it current.
pub async fn publish<S>(
    hub: &Hub,
    portal: &Portal,
    actor: &str,
    mut parts: S,
) -> Result<(PublishedDataset, Outcome), PortalError>
where
    S: Stream<Item = Result<PublishDatasetRequest, Status>> + Unpin,
{
    let metadata = match parts.next().await {
        Some(Ok(PublishDatasetRequest {
            part: Some(Part::Metadata(metadata)),
        })) => metadata,
        Some(Err(status)) => return Err(status.into()),
        Some(Ok(_)) => {
            return Err(invalid(
                "the first message of PublishDataset must be the dataset's metadata",
            ));
        }
        None => return Err(invalid("PublishDataset received no message")),
    };
    check_metadata(&metadata)?;
    let id = metadata.id.clone();
    let version = metadata.version;
    let _guard = portal.begin_upload(&id)?;

    let (current, awaiting) = {
        let id = id.clone();
        hub.store
            .read(move |conn| {
                let current = load_one(conn, &id)?;
                let awaiting = super::restore::awaiting(conn, &id, version)?;
                Ok((current, awaiting))
            })
            .await?
    };
    let previous = current.as_ref().map(|c| c.metadata.version);
    // The current version again, whose files are not here: stored as the version's files.
    let mut restoring = None;
    if let Some(current) = &current {
        if current.metadata.version == version
            && current.metadata.content_sha256 == metadata.content_sha256
        {
            let dir = portal.version_dir(&id, version);
            let files = current.files.clone();
            let present =
                tokio::task::spawn_blocking(move || super::restore::present(&dir, &files))
                    .await
                    .map_err(|e| io("looking at the version's files", e))?;
            if present && !awaiting {
                // Idempotent: an operator that lost the answer of a publish that did commit
                // tries again with the same version, and learns it is served.
                return Ok((current.to_api(), Outcome::Unchanged));
            }
            restoring = Some(current.clone());
        } else if version <= current.metadata.version {
            return Err(PortalError::Precondition(format!(
                "dataset {id}: version {version} is not newer than the current version {}",
                current.metadata.version
            )));
        }
    }

    let staging = portal
        .staging()
        .join(format!("{id}.{version}.{}", &super::new_token()?[4..16]));
    std::fs::create_dir_all(&staging).map_err(|e| disk("creating the staging directory", e))?;
    let mut cleanup = Cleanup(Some(staging.clone()));
    let files = receive(&staging, &mut parts).await?;
    if let Some(current) = &restoring {
        // A version's URLs are immutable (cached as such, the SHA-256 their ETag): only the
        // recorded bytes may come back under them.
        let (mut got, mut recorded) = (files.clone(), current.files.clone());
        got.sort_by(|a, b| a.format.cmp(&b.format));
        recorded.sort_by(|a, b| a.format.cmp(&b.format));
        if got != recorded {
            return Err(PortalError::Precondition(format!(
                "dataset {id}: version {version} is recorded with files {}; the upload has {}: \
                 the same version must bring the same bytes, publish other bytes as a new version",
                describe(&recorded),
                describe(&got)
            )));
        }
    }

    // Into place: fsync the directory entries too, so that after a crash either the whole
    // version directory is there or none of it.
    let target = portal.version_dir(&id, version);
    {
        let (staging, target) = (staging.clone(), target.clone());
        tokio::task::spawn_blocking(move || move_into_place(&staging, &target))
            .await
            .map_err(|e| io("moving the upload into place", e))?
            .map_err(|e| disk("moving the upload into place", e))?;
    }
    cleanup.disarm();
    let mut cleanup = Cleanup(Some(target));
    if let Some(current) = restoring {
        restore_version(hub, portal, actor, current).await?;
        cleanup.disarm();
        let entry = {
            let id = id.clone();
            hub.store.read(move |conn| Ok(load_one(conn, &id)?)).await?
        };
        let entry =
            entry.ok_or_else(|| PortalError::Conflict(format!("dataset {id} was unpublished")))?;
        return Ok((entry.to_api(), Outcome::Restored));
    }

    let published_at = now_micros();
    let entry = Entry {
        metadata: metadata.clone(),
        files: files.clone(),
        published_at,
    };
    // Assessed once, now, and kept with the version (history and audit record).
    let quality = super::quality::assess(&entry);
    let algorithm = hub.algorithm();
    let actor = actor.to_owned();
    {
        let id = id.clone();
        let entry = entry.clone();
        let files_json =
            serde_json::to_string(&files).map_err(|e| io("encoding the file list", e))?;
        let body = metadata.encode_to_vec();
        let detail = json!({
            "version": version,
            "previousVersion": previous,
            "recordCount": metadata.record_count,
            "contentSha256": metadata.content_sha256,
            "openness": metadata.openness().as_str_name(),
            "files": files,
            // Identifiers published on purpose, and why: the publisher answers for them.
            "declaredIdentifiers": metadata.fields.iter()
                .filter(|f| !f.declared_identifiers.is_empty())
                .map(super::http::field_json).collect::<Vec<_>>(),
            "quality": { "score": quality.score, "max": quality.max, "missing": quality.missing },
        });
        hub.store
            .write(move |conn| {
                // Checked again inside the transaction: the read above was outside it.
                let now: Option<i64> = conn
                    .query_row(
                        "SELECT version FROM portal_datasets WHERE id = ?1",
                        [&id],
                        |r| r.get(0),
                    )
                    .optional()
                    .sql()?;
                if now.is_some_and(|v| v >= version) {
                    return Err(PortalError::Precondition(format!(
                        "dataset {id}: version {version} is not newer than the current one"
                    ))
                    .into());
                }
                conn.execute(
                    "INSERT INTO portal_datasets (id, version, openness, metadata, published_at)
                     VALUES (?1, ?2, ?3, ?4, ?5)
                     ON CONFLICT (id) DO UPDATE SET version = excluded.version,
                        openness = excluded.openness, metadata = excluded.metadata,
                        published_at = excluded.published_at",
                    params![id, version, metadata.openness, body, published_at],
                )
                .sql()?;
                conn.execute(
                    "INSERT INTO portal_versions (dataset_id, version, files, published_at)
                     VALUES (?1, ?2, ?3, ?4)",
                    params![id, version, files_json, published_at],
                )
                .sql()?;
                conn.execute(
                    "DELETE FROM portal_versions
                     WHERE dataset_id = ?1 AND version <> ?2 AND version <> ?3",
                    params![id, version, now.unwrap_or(-1)],
                )
                .sql()?;
                super::history::record_publish(conn, &entry, &quality)?;
                record(conn, algorithm, &actor, "portal.publish", &id, detail)?;
                Ok(())
            })
            .await?;
    }
    cleanup.disarm();
    let mut keep = vec![version];
    keep.extend(previous);
    portal.prune(&id, keep).await;
    tracing::info!(dataset = %id, version, previous = ?previous, "published a dataset version");
    Ok((entry.to_api(), Outcome::Published))
}

/// `format: size bytes, SHA-256 sha256` of each file, for messages.
fn describe(files: &[StoredFile]) -> String {
    files
        .iter()
        .map(|f| format!("{}: {} bytes, SHA-256 {}", f.format, f.size, f.sha256))
        .collect::<Vec<_>>()
        .join("; ")
}

/// Makes the files just moved into place the current version's again, in one transaction with
/// its audit record (`portal.restore`): its mark cleared, and the versions before it that still
/// await files forgotten (only the current version can be published again, so theirs never
/// come; their URLs answer 404 as after any later publish). The metadata, publication time and
/// history stay the imported ones: this is the same version.
async fn restore_version(
    hub: &Hub,
    portal: &Portal,
    actor: &str,
    current: Entry,
) -> Result<(), PortalError> {
    let id = current.metadata.id.clone();
    let version = current.metadata.version;
    let algorithm = hub.algorithm();
    let (actor, owned) = (actor.to_owned(), id.clone());
    let files_json =
        serde_json::to_string(&current.files).map_err(|e| io("encoding the file list", e))?;
    let detail = json!({ "version": version, "files": current.files });
    let kept = hub
        .store
        .write(move |conn| {
            let now: Option<(i64, Vec<u8>)> = conn
                .query_row(
                    "SELECT version, metadata FROM portal_datasets WHERE id = ?1",
                    [&owned],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .sql()?;
            let same = now.as_ref().is_some_and(|(v, body)| {
                *v == version
                    && DatasetMetadata::decode(body.as_slice())
                        .is_ok_and(|m| m.content_sha256 == current.metadata.content_sha256)
            });
            if !same {
                return Err(PortalError::Conflict(format!(
                    "dataset {owned} changed while its files were uploaded; try again"
                ))
                .into());
            }
            conn.execute(
                "UPDATE portal_versions SET files = ?3, awaiting_files = 0
                 WHERE dataset_id = ?1 AND version = ?2",
                params![owned, version, files_json],
            )
            .sql()?;
            conn.execute(
                "DELETE FROM portal_versions
                 WHERE dataset_id = ?1 AND version <> ?2 AND awaiting_files <> 0",
                params![owned, version],
            )
            .sql()?;
            record(conn, algorithm, &actor, "portal.restore", &owned, detail)?;
            let kept = conn
                .prepare("SELECT version FROM portal_versions WHERE dataset_id = ?1")
                .sql()?
                .query_map([&owned], |r| r.get::<_, i64>(0))
                .sql()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .sql()?;
            Ok(kept)
        })
        .await?;
    portal.prune(&id, kept).await;
    tracing::info!(dataset = %id, version, "stored the files of a restored dataset version");
    Ok(())
}

/// Receives the chunks and ends of every file into `dir`, checking each against its end.
async fn receive<S>(dir: &Path, parts: &mut S) -> Result<Vec<StoredFile>, PortalError>
where
    S: Stream<Item = Result<PublishDatasetRequest, Status>> + Unpin,
{
    let mut open: BTreeMap<String, Receiving> = BTreeMap::new();
    let mut done: BTreeMap<String, StoredFile> = BTreeMap::new();
    while let Some(part) = parts.next().await {
        match part?.part {
            Some(Part::Chunk(chunk)) => {
                let format = known_format(&chunk.format)?;
                if done.contains_key(format) {
                    return Err(invalid(format!(
                        "a chunk of the {format} file arrived after its FileEnd"
                    )));
                }
                let receiving = match open.remove(format) {
                    Some(r) => r,
                    None => start_file(dir, format)?,
                };
                // Writing and hashing together on the blocking pool: one hop per chunk, and
                // the runtime's threads never wait on the disk.
                let receiving = tokio::task::spawn_blocking(move || {
                    let mut r = receiving;
                    r.file.write_all(&chunk.data)?;
                    r.hasher.update(&chunk.data);
                    r.size += chunk.data.len() as u64;
                    Ok::<_, std::io::Error>(r)
                })
                .await
                .map_err(|e| io("writing an upload", e))?
                .map_err(|e| disk("writing an upload", e))?;
                open.insert(format.to_owned(), receiving);
            }
            Some(Part::End(end)) => {
                let format = known_format(&end.format)?;
                if done.contains_key(format) {
                    return Err(invalid(format!("the {format} file ended twice")));
                }
                let receiving = match open.remove(format) {
                    Some(r) => r,
                    None => start_file(dir, format)?,
                };
                let stored = tokio::task::spawn_blocking(move || finish(receiving, format))
                    .await
                    .map_err(|e| io("finishing an upload", e))?
                    .map_err(|e| disk("finishing an upload", e))?;
                let expected = end.sha256.to_ascii_lowercase();
                if stored.size != end.size || stored.sha256 != expected {
                    return Err(invalid(format!(
                        "the {format} file arrived with {} bytes and SHA-256 {}; its FileEnd says \
                         {} bytes and {}: the upload is incomplete or corrupt, nothing was \
                         published",
                        stored.size, stored.sha256, end.size, end.sha256
                    )));
                }
                done.insert(format.to_owned(), stored);
            }
            Some(Part::Metadata(_)) => {
                return Err(invalid("DatasetMetadata may only be the first message"));
            }
            None => return Err(invalid("an empty PublishDatasetRequest")),
        }
    }
    if let Some(format) = open.keys().next() {
        return Err(invalid(format!(
            "the {format} file has no FileEnd: the upload ended early, nothing was published"
        )));
    }
    if done.is_empty() {
        return Err(invalid("the upload has no file"));
    }
    Ok(done.into_values().collect())
}

fn known_format(format: &str) -> Result<&'static str, PortalError> {
    FORMATS
        .iter()
        .copied()
        .find(|f| *f == format)
        .ok_or_else(|| invalid(format!("format {format:?} is not one of {FORMATS:?}")))
}

fn start_file(dir: &Path, format: &str) -> Result<Receiving, PortalError> {
    let path = dir.join(file_name(format));
    let file = std::fs::File::create(&path).map_err(|e| disk("creating an upload file", e))?;
    Ok(Receiving {
        file,
        hasher: sha2::Sha256::new(),
        size: 0,
    })
}

fn finish(receiving: Receiving, format: &str) -> std::io::Result<StoredFile> {
    receiving.file.sync_all()?;
    Ok(StoredFile {
        format: format.to_owned(),
        sha256: hex::encode(receiving.hasher.finalize()),
        size: i64::try_from(receiving.size).unwrap_or(i64::MAX),
    })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn move_into_place(staging: &Path, target: &Path) -> std::io::Result<()> {
    sync_dir(staging)?;
    let parent = target
        .parent()
        .ok_or_else(|| std::io::Error::other("a version directory has no parent"))?;
    std::fs::create_dir_all(parent)?;
    // A directory for this version can only be the remains of an upload that crashed after its
    // rename and before its commit: nothing references it.
    if target.exists() {
        std::fs::remove_dir_all(target)?;
    }
    std::fs::rename(staging, target)?;
    sync_dir(parent)?;
    if let Some(root) = parent.parent() {
        sync_dir(root)?;
    }
    Ok(())
}

/// Stops serving `id`: deletes its rows (versions and tokens with it) and audit-records it in one
/// transaction, then its files. Whether it was served.
pub async fn unpublish(
    hub: &Hub,
    portal: &Portal,
    actor: &str,
    id: &str,
) -> Result<bool, PortalError> {
    if !valid_id(id) {
        return Err(invalid(format!("{id:?} is not a dataset id")));
    }
    let _guard = portal.begin_upload(id)?;
    let algorithm = hub.algorithm();
    let (actor, owned) = (actor.to_owned(), id.to_owned());
    let removed = hub
        .store
        .write(move |conn| {
            let Some(served) = load_one(conn, &owned)? else {
                return Ok(false);
            };
            let version = served.metadata.version;
            conn.execute("DELETE FROM portal_datasets WHERE id = ?1", [&owned])
                .sql()?;
            super::history::record_unpublish(conn, &served, now_micros())?;
            record(
                conn,
                algorithm,
                &actor,
                "portal.unpublish",
                &owned,
                json!({ "version": version }),
            )?;
            Ok(true)
        })
        .await?;
    // Also when nothing was served: files of a crashed upload may be there.
    portal.prune(id, Vec::new()).await;
    if removed {
        tracing::info!(dataset = %id, "unpublished a dataset");
    }
    Ok(removed)
}

/// Issues a download token of dataset `id` for `applicant`, valid `ttl_seconds` (30 days when
/// 0, at most a year). Only conditional datasets have tokens.
pub async fn issue_token(
    hub: &Hub,
    actor: &str,
    id: &str,
    applicant: &str,
    ttl_seconds: i64,
) -> Result<(String, i64), PortalError> {
    const DAY: i64 = 86_400;
    if applicant.trim().is_empty() {
        return Err(invalid(
            "applicant is required: the audit log records who may download",
        ));
    }
    let ttl = match ttl_seconds {
        0 => 30 * DAY,
        t if t < 0 => return Err(invalid("ttl_seconds must not be negative")),
        t => t.min(366 * DAY),
    };
    let now = now_micros();
    let expires_at = now.saturating_add(ttl.saturating_mul(1_000_000));
    let algorithm = hub.algorithm();
    let (actor, id, applicant) = (actor.to_owned(), id.to_owned(), applicant.to_owned());
    let token = hub
        .store
        .write(move |conn| {
            let openness: Option<i32> = conn
                .query_row(
                    "SELECT openness FROM portal_datasets WHERE id = ?1",
                    [&id],
                    |r| r.get(0),
                )
                .optional()
                .sql()?;
            match openness {
                None => {
                    return Err(PortalError::NotFound(format!(
                        "dataset {id} is not on this portal"
                    ))
                    .into());
                }
                Some(o) if o != Openness::Conditional as i32 => {
                    return Err(PortalError::Precondition(format!(
                        "dataset {id} is open unconditionally: anyone may download it without a \
                         token"
                    ))
                    .into());
                }
                Some(_) => {}
            }
            Ok(grant_token(
                conn, algorithm, &actor, &id, &applicant, expires_at, None,
            )?)
        })
        .await?;
    Ok((token, expires_at))
}

/// Issues a download token of conditional dataset `id` (checked by the caller) to `applicant`,
/// valid until `expires_at`, inside the caller's write: its digest goes into `portal_tokens`
/// and the audit log (`portal.token.issue`, with the website's application when it came from
/// one); the token itself is never stored or logged.
pub(crate) fn grant_token(
    conn: &rusqlite::Connection,
    algorithm: crate::audit::Algorithm,
    actor: &str,
    id: &str,
    applicant: &str,
    expires_at: i64,
    application: Option<&str>,
) -> Result<String, PortalError> {
    let token = super::new_token()?;
    let digest = super::token_digest(&token);
    conn.execute(
        "INSERT INTO portal_tokens (token_sha256, dataset_id, applicant, issued_at,
             expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![digest, id, applicant, now_micros(), expires_at],
    )
    .sql()?;
    let mut detail = json!({
        "applicant": applicant,
        "tokenSha256": digest,
        "expiresAt": expires_at,
    });
    if let Some(application) = application {
        detail["application"] = json!(application);
    }
    record(conn, algorithm, actor, "portal.token.issue", id, detail)?;
    Ok(token)
}
