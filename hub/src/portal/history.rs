//! The portal's history: one row of the store's `portal_history` per publication and
//! unpublication, written in the same transaction as the change itself (and its audit record),
//! so the history is exactly what was served. Dataset pages show a dataset's versions from it,
//! the changelog and the Atom feed its latest rows; each publication carries the metadata
//! quality worked out when it was published ([`super::quality`]).

use std::collections::HashMap;

use rusqlite::{Connection, params};

use super::quality::Quality;
use super::{Entry, StoredFile};
use crate::store::{SqlResult, StorageError};

/// What happened to a dataset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    /// A version became current.
    Publish,
    /// The dataset stopped being served.
    Unpublish,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Change::Publish => "publish",
            Change::Unpublish => "unpublish",
        }
    }
}

/// A row of the history.
#[derive(Clone, Debug)]
pub struct Event {
    /// Its place in the history (increasing).
    pub seq: i64,
    /// The dataset.
    pub dataset_id: String,
    /// The version published, or the one that was current when it was unpublished.
    pub version: i64,
    /// What happened.
    pub change: Change,
    /// When, microseconds since the Unix epoch.
    pub at: i64,
    /// The dataset's title then.
    pub title: String,
    /// Its publisher's credit code.
    pub organization_credit_code: String,
    /// Its record count then.
    pub record_count: i64,
    /// The digest of its de-identified content then.
    pub content_sha256: String,
    /// Its files (none for an unpublication).
    pub files: Vec<StoredFile>,
    /// Its metadata quality (a publication's).
    pub quality: Option<Quality>,
}

/// Records the publication of `entry` with its `quality` (inside the publish transaction).
pub fn record_publish(
    conn: &Connection,
    entry: &Entry,
    quality: &Quality,
) -> Result<(), StorageError> {
    let m = &entry.metadata;
    let files = serde_json::to_string(&entry.files).map_err(|source| StorageError::Encoding {
        what: "encoding a version's files",
        source,
    })?;
    let quality = serde_json::to_string(quality).map_err(|source| StorageError::Encoding {
        what: "encoding a version's quality",
        source,
    })?;
    insert(
        conn,
        params![
            m.id,
            m.version,
            Change::Publish.as_str(),
            entry.published_at,
            m.title,
            m.organization_credit_code,
            m.record_count,
            m.content_sha256,
            files,
            quality,
        ],
    )
}

/// Records that `entry` (the version served until now) stopped being served at `at`.
pub fn record_unpublish(conn: &Connection, entry: &Entry, at: i64) -> Result<(), StorageError> {
    let m = &entry.metadata;
    insert(
        conn,
        params![
            m.id,
            m.version,
            Change::Unpublish.as_str(),
            at,
            m.title,
            m.organization_credit_code,
            m.record_count,
            m.content_sha256,
            "[]",
            "null",
        ],
    )
}

fn insert(conn: &Connection, values: impl rusqlite::Params) -> Result<(), StorageError> {
    conn.prepare_cached(
        "INSERT INTO portal_history (dataset_id, version, change, at, title,
             organization_credit_code, record_count, content_sha256, files, quality)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
    )
    .sql()?
    .execute(values)
    .sql()?;
    Ok(())
}

const COLUMNS: &str = "seq, dataset_id, version, change, at, title, organization_credit_code,
     record_count, content_sha256, files, quality";

fn event(row: &rusqlite::Row<'_>) -> rusqlite::Result<Event> {
    let change: String = row.get(3)?;
    let files: String = row.get(9)?;
    let quality: String = row.get(10)?;
    Ok(Event {
        seq: row.get(0)?,
        dataset_id: row.get(1)?,
        version: row.get(2)?,
        change: if change == "unpublish" {
            Change::Unpublish
        } else {
            Change::Publish
        },
        at: row.get(4)?,
        title: row.get(5)?,
        organization_credit_code: row.get(6)?,
        record_count: row.get(7)?,
        content_sha256: row.get(8)?,
        // Written by this module from these types: a row that does not read back shows as
        // having no files or quality rather than failing the page.
        files: serde_json::from_str(&files).unwrap_or_default(),
        quality: serde_json::from_str(&quality).unwrap_or_default(),
    })
}

/// The history of dataset `id`, newest first, at most `limit` rows.
pub fn of_dataset(conn: &Connection, id: &str, limit: usize) -> Result<Vec<Event>, StorageError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM portal_history WHERE dataset_id = ?1 ORDER BY seq DESC LIMIT ?2"
        ))
        .sql()?;
    let rows = stmt
        .query_map(params![id, i64::try_from(limit).unwrap_or(i64::MAX)], event)
        .sql()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    Ok(rows)
}

/// The latest `limit` rows of the whole history, newest first, before `before` (a `seq`) when
/// given.
pub fn latest(
    conn: &Connection,
    limit: usize,
    before: Option<i64>,
) -> Result<Vec<Event>, StorageError> {
    let mut stmt = conn
        .prepare_cached(&format!(
            "SELECT {COLUMNS} FROM portal_history WHERE seq < ?1 ORDER BY seq DESC LIMIT ?2"
        ))
        .sql()?;
    let rows = stmt
        .query_map(
            params![
                before.unwrap_or(i64::MAX),
                i64::try_from(limit).unwrap_or(i64::MAX)
            ],
            event,
        )
        .sql()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    Ok(rows)
}

/// The stored quality of every dataset's current version, by dataset id (datasets published
/// before the history existed have none).
pub fn current_quality(conn: &Connection) -> Result<HashMap<String, Quality>, StorageError> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT h.dataset_id, h.quality FROM portal_history h
             JOIN portal_datasets d ON d.id = h.dataset_id AND d.version = h.version
             WHERE h.change = 'publish'",
        )
        .sql()?;
    let rows = stmt
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
        .sql()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    Ok(rows
        .into_iter()
        .filter_map(|(id, q)| Some((id, serde_json::from_str::<Quality>(&q).ok()?)))
        .collect())
}
