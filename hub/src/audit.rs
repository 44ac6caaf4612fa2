//! The audit log (行为留痕): an append-only chain of records, each hashed over its canonical bytes
//! and the previous record's hash, so that editing, deleting or reordering any record breaks the
//! chain at that record.
//!
//! Records are appended inside the same SQLite transaction as the change they describe: a change
//! without its record, or a record without its change, is never committed. SQLite triggers refuse
//! `UPDATE` and `DELETE` on the table; the chain is what catches someone who edits the file
//! directly.

use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;
use sha2::Digest;

use crate::store::{cached_exec, cached_row};

/// The digest a record's hash is computed with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// SHA-256 (the default).
    #[default]
    Sha256,
    /// SM3 (GM/T 0004-2012), the national standard hash, for deployments that require 国密.
    Sm3,
}

impl Algorithm {
    /// The name stored in each record and accepted in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha256 => "sha256",
            Algorithm::Sm3 => "sm3",
        }
    }

    /// The algorithm called `name`, if known.
    pub fn from_name(name: &str) -> Option<Algorithm> {
        match name {
            "sha256" => Some(Algorithm::Sha256),
            "sm3" => Some(Algorithm::Sm3),
            _ => None,
        }
    }

    fn digest_hex(self, bytes: &[u8]) -> String {
        match self {
            Algorithm::Sha256 => hex::encode(sha2::Sha256::digest(bytes)),
            Algorithm::Sm3 => hex::encode(sm3::Sm3::digest(bytes)),
        }
    }
}

/// The `prev_hash` of the first record: both algorithms give 32-byte digests.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One record of the log, as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// When it was appended, microseconds since the Unix epoch.
    pub time_micros: i64,
    /// Who acted: a credit code, a node name or `operator`.
    pub actor: String,
    /// What was done, e.g. `member.join`.
    pub action: String,
    /// What it was done to.
    pub subject: String,
    /// Details as JSON.
    pub detail: String,
    /// Hash of the previous record.
    pub prev_hash: String,
    /// Hash of this record.
    pub hash: String,
    /// Name of the digest algorithm.
    pub algorithm: String,
}

/// The bytes a record's hash covers: a version tag, then every field, each length-prefixed so
/// that no two different records share an encoding (moving text from `action` to `subject`
/// changes the bytes). The stored hash itself is not covered.
pub fn canonical_bytes(record: &Record) -> Vec<u8> {
    let fields = [
        &record.actor,
        &record.action,
        &record.subject,
        &record.detail,
        &record.algorithm,
        &record.prev_hash,
    ];
    let mut out = Vec::with_capacity(96 + fields.iter().map(|f| f.len()).sum::<usize>());
    out.extend_from_slice(b"govdc-audit-v1\0");
    out.extend_from_slice(&record.seq.to_be_bytes());
    out.extend_from_slice(&record.time_micros.to_be_bytes());
    for field in fields {
        out.extend_from_slice(&(field.len() as u64).to_be_bytes());
        out.extend_from_slice(field.as_bytes());
    }
    out
}

fn record_hash(record: &Record, algorithm: Algorithm) -> String {
    algorithm.digest_hex(&canonical_bytes(record))
}

/// Appends a record in the caller's transaction and returns its sequence number.
pub fn append(
    conn: &Connection,
    algorithm: Algorithm,
    actor: &str,
    action: &str,
    subject: &str,
    detail: &serde_json::Value,
) -> rusqlite::Result<i64> {
    let tip: Option<(i64, String)> = cached_row(
        conn,
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |row| Ok((row.get(0)?, row.get(1)?)),
    )
    .optional()?;
    let (seq, prev_hash) = match tip {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_owned()),
    };
    let mut record = Record {
        seq,
        time_micros: jiff::Timestamp::now().as_microsecond(),
        actor: actor.to_owned(),
        action: action.to_owned(),
        subject: subject.to_owned(),
        detail: detail.to_string(),
        prev_hash,
        hash: String::new(),
        algorithm: algorithm.as_str().to_owned(),
    };
    record.hash = record_hash(&record, algorithm);
    cached_exec(
        conn,
        "INSERT INTO audit (seq, time, actor, action, subject, detail, prev_hash, hash, algorithm)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            record.seq,
            record.time_micros,
            record.actor,
            record.action,
            record.subject,
            record.detail,
            record.prev_hash,
            record.hash,
            record.algorithm
        ],
    )?;
    Ok(seq)
}

fn row_to_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<Record> {
    Ok(Record {
        seq: row.get(0)?,
        time_micros: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        subject: row.get(4)?,
        detail: row.get(5)?,
        prev_hash: row.get(6)?,
        hash: row.get(7)?,
        algorithm: row.get(8)?,
    })
}

const SELECT: &str =
    "SELECT seq, time, actor, action, subject, detail, prev_hash, hash, algorithm FROM audit";

/// Up to `limit` records after `after_seq`, in order.
pub fn list(conn: &Connection, after_seq: i64, limit: i64) -> rusqlite::Result<Vec<Record>> {
    let mut stmt =
        conn.prepare_cached(&format!("{SELECT} WHERE seq > ?1 ORDER BY seq LIMIT ?2"))?;
    let rows = stmt.query_map(params![after_seq, limit], row_to_record)?;
    rows.collect()
}

/// The number of records.
pub fn count(conn: &Connection) -> rusqlite::Result<i64> {
    cached_row(conn, "SELECT count(*) FROM audit", [], |row| row.get(0))
}

/// The last record's position and hash: what anchors record of a chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Head {
    /// Its sequence number.
    pub seq: i64,
    /// Its hash.
    pub hash: String,
}

/// The chain's head, None while the log is empty.
pub fn head(conn: &Connection) -> rusqlite::Result<Option<Head>> {
    cached_row(
        conn,
        "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1",
        [],
        |row| {
            Ok(Head {
                seq: row.get(0)?,
                hash: row.get(1)?,
            })
        },
    )
    .optional()
}

/// The record at `seq`, if there is one.
pub fn record_at(conn: &Connection, seq: i64) -> rusqlite::Result<Option<Record>> {
    cached_row(
        conn,
        &format!("{SELECT} WHERE seq = ?1"),
        [seq],
        row_to_record,
    )
    .optional()
}

/// Every record of `action`, in order (a scan: for verification, not for hot paths).
pub fn records_of(conn: &Connection, action: &str) -> rusqlite::Result<Vec<Record>> {
    let mut stmt = conn.prepare(&format!("{SELECT} WHERE action = ?1 ORDER BY seq"))?;
    let rows = stmt.query_map([action], row_to_record)?;
    rows.collect()
}

/// The outcome of checking the chain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verification {
    /// Records checked before the first broken one (all of them when intact).
    pub records_checked: i64,
    /// The first record whose hash or link does not match, with the reason.
    pub first_broken: Option<(i64, String)>,
    /// Whether the break is a missing record (a gap), not an altered one.
    pub gap: bool,
}

impl Verification {
    /// Whether every record checked out.
    pub fn intact(&self) -> bool {
        self.first_broken.is_none()
    }
}

/// Recomputes the whole chain, in order, and stops at the first record that does not match:
/// a changed field (its hash no longer matches), a replaced hash (the next record's link no
/// longer matches), or a missing record (a gap in the sequence).
pub fn verify(conn: &Connection) -> rusqlite::Result<Verification> {
    let mut stmt = conn.prepare(&format!("{SELECT} ORDER BY seq"))?;
    let mut rows = stmt.query([])?;
    let mut expected_seq = 1;
    let mut prev_hash = GENESIS.to_owned();
    let mut checked = 0;
    while let Some(row) = rows.next()? {
        let record = row_to_record(row)?;
        let broken = |reason: String| {
            Ok(Verification {
                records_checked: checked,
                first_broken: Some((record.seq.min(expected_seq), reason)),
                gap: false,
            })
        };
        if record.seq != expected_seq {
            return Ok(Verification {
                records_checked: checked,
                first_broken: Some((
                    expected_seq,
                    format!(
                        "record {expected_seq} is missing: the next record is {}",
                        record.seq
                    ),
                )),
                gap: true,
            });
        }
        if record.prev_hash != prev_hash {
            return broken(format!(
                "record {} does not link to record {}: its prev_hash is {}, the previous hash is {}",
                record.seq,
                record.seq - 1,
                record.prev_hash,
                prev_hash
            ));
        }
        let Some(algorithm) = Algorithm::from_name(&record.algorithm) else {
            return broken(format!(
                "record {} names an unknown algorithm {:?}",
                record.seq, record.algorithm
            ));
        };
        let computed = record_hash(&record, algorithm);
        if computed != record.hash {
            return broken(format!(
                "record {} ({} by {} on {}) was altered: its {} hash is {}, the stored hash is {}",
                record.seq,
                record.action,
                record.actor,
                record.subject,
                record.algorithm,
                computed,
                record.hash
            ));
        }
        checked += 1;
        expected_seq += 1;
        prev_hash = record.hash;
    }
    Ok(Verification {
        records_checked: checked,
        first_broken: None,
        gap: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        crate::store::migrate(&conn).expect("migrates");
        conn
    }

    #[test]
    fn an_untouched_chain_verifies_with_either_algorithm() {
        let conn = db();
        append(
            &conn,
            Algorithm::Sha256,
            "operator",
            "member.join",
            "a",
            &serde_json::json!({}),
        )
        .expect("appends");
        append(
            &conn,
            Algorithm::Sm3,
            "operator",
            "member.join",
            "b",
            &serde_json::json!({"x": 1}),
        )
        .expect("appends");
        let v = verify(&conn).expect("verifies");
        assert!(v.intact(), "{v:?}");
        assert_eq!(v.records_checked, 2);
        let records = list(&conn, 0, 10).expect("lists");
        assert_eq!(records[1].prev_hash, records[0].hash);
        assert_eq!(records[1].algorithm, "sm3");
    }

    #[test]
    fn sm3_matches_the_standard_test_vector() {
        // GM/T 0004-2012, appendix A.1: SM3("abc").
        assert_eq!(
            Algorithm::Sm3.digest_hex(b"abc"),
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
    }

    #[test]
    fn an_edited_record_is_named() {
        let conn = db();
        for i in 0..5 {
            append(
                &conn,
                Algorithm::Sha256,
                "operator",
                "member.join",
                &format!("m{i}"),
                &serde_json::json!({}),
            )
            .expect("appends");
        }
        conn.execute_batch(
            "DROP TRIGGER audit_no_update; UPDATE audit SET subject = 'forged' WHERE seq = 3",
        )
        .expect("tampers");
        let v = verify(&conn).expect("verifies");
        assert_eq!(v.first_broken.as_ref().map(|b| b.0), Some(3), "{v:?}");
        assert_eq!(v.records_checked, 2);
    }

    #[test]
    fn the_log_refuses_updates_and_deletes() {
        let conn = db();
        append(
            &conn,
            Algorithm::Sha256,
            "operator",
            "member.join",
            "a",
            &serde_json::json!({}),
        )
        .expect("appends");
        assert!(conn.execute("UPDATE audit SET actor = 'x'", []).is_err());
        assert!(conn.execute("DELETE FROM audit", []).is_err());
    }

    #[test]
    fn a_deleted_record_is_named() {
        let conn = db();
        for i in 0..3 {
            append(
                &conn,
                Algorithm::Sha256,
                "operator",
                "member.join",
                &format!("m{i}"),
                &serde_json::json!({}),
            )
            .expect("appends");
        }
        conn.execute_batch("DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq = 2")
            .expect("tampers");
        let v = verify(&conn).expect("verifies");
        assert_eq!(v.first_broken.map(|b| b.0), Some(2));
    }
}
