//! Versions whose files an imported state did not bring.
//!
//! `Node.ImportState` carries the store, not the files under `<dataDir>/portal/`: a portal
//! node's state imported into another node (disaster recovery) lists versions whose files are
//! not there. The import marks them (`portal_versions.awaiting_files`, in the copy, in the same
//! transaction as its `state.import` record, [`mark_imported`]), and then:
//!
//! - the start-up check does not hold them against the node (it still refuses a file of any
//!   other version that is missing or of the wrong size: that is damage);
//! - their downloads answer 503 "being restored" (never a 500, never bytes that are not the
//!   recorded ones);
//! - a `PublishDataset` of the same version and content stores the files and clears the mark
//!   ([`super::publish`]); `Unchanged` is only answered when the files are really there.
//!
//! A file already at a version's path on the importing node counts as there only when its size
//! and SHA-256 are the ones the imported state records: a file of the node's own earlier state
//! at the same path may be other bytes.

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

use rusqlite::{Connection, params};
use sha2::Digest;

use super::{PortalError, StoredFile, file_name};
use crate::store::{SqlResult, StorageError};

/// What a client is told while a version's files are awaited.
pub const MESSAGE: &str = "this dataset's files are being restored on this portal (its state was \
     recovered from another node); try again later";

/// Whether `file` is at `dir` with the recorded size and SHA-256.
fn intact(dir: &Path, file: &StoredFile) -> std::io::Result<bool> {
    let path = dir.join(file_name(&file.format));
    let mut opened = match std::fs::File::open(&path) {
        Ok(opened) => opened,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if i64::try_from(opened.metadata()?.len()).ok() != Some(file.size) {
        return Ok(false);
    }
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let n = opened.read(&mut buffer)?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()) == file.sha256)
}

/// Marks, in `conn` (an imported copy, inside the caller's transaction), every version whose
/// files are not all under `portal_root` as it records them, and unmarks the others; the
/// marked versions as `id/version`.
pub fn mark_imported(conn: &Connection, portal_root: &Path) -> Result<Vec<String>, PortalError> {
    let versions: Vec<(String, i64, String)> = conn
        .prepare(
            "SELECT dataset_id, version, files FROM portal_versions ORDER BY dataset_id, version",
        )
        .sql()?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()?;
    let mut awaiting = Vec::new();
    for (id, version, files) in versions {
        let files: Vec<StoredFile> = serde_json::from_str(&files).map_err(|e| {
            PortalError::Invalid(format!(
                "the imported state's file list of dataset {id} version {version} is corrupt: {e}"
            ))
        })?;
        let dir = portal_root.join(&id).join(version.to_string());
        let mut there = true;
        for file in &files {
            if !intact(&dir, file)
                .map_err(|e| StorageError::io(format!("reading {}", dir.display()), e))?
            {
                there = false;
                break;
            }
        }
        conn.execute(
            "UPDATE portal_versions SET awaiting_files = ?3 WHERE dataset_id = ?1 AND version = ?2",
            params![id, version, !there],
        )
        .sql()?;
        if !there {
            awaiting.push(format!("{id}/{version}"));
        }
    }
    Ok(awaiting)
}

/// Whether version `version` of `id` awaits its files.
pub fn awaiting(conn: &Connection, id: &str, version: i64) -> Result<bool, StorageError> {
    conn.prepare_cached(
        "SELECT 1 FROM portal_versions WHERE dataset_id = ?1 AND version = ?2 AND awaiting_files <> 0",
    )
    .sql()?
    .exists(params![id, version])
    .sql()
}

/// Every version that awaits its files, as (dataset, version).
pub fn all_awaiting(conn: &Connection) -> Result<HashSet<(String, i64)>, StorageError> {
    conn.prepare_cached("SELECT dataset_id, version FROM portal_versions WHERE awaiting_files <> 0")
        .sql()?
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .sql()?
        .collect::<rusqlite::Result<_>>()
        .sql()
}

/// Whether every file of a version is in `dir` with its recorded size (what the start-up check
/// looks at: one `stat` per file).
pub fn present(dir: &Path, files: &[StoredFile]) -> bool {
    files.iter().all(|f| {
        std::fs::metadata(dir.join(file_name(&f.format)))
            .is_ok_and(|m| i64::try_from(m.len()).ok() == Some(f.size))
    })
}
