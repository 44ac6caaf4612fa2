//! Anchors of the audit chain outside the node.
//!
//! A hash chain proves that no record was edited in place, but not that the chain is whole: cut
//! its tail, or rewrite a record and re-hash every record after it, or put back an older copy of
//! the whole database, and it verifies again. So the chain's head (sequence, hash) is recorded
//! where whoever edits this node's files cannot reach:
//!
//! - by the **parent**, in its own chain (an `audit.anchor` record), with every federation sync;
//!   the parent's anchor only moves forward, and one the head later diverged from stays disputed
//!   (see `service::federation`), so a cut chain that grows again is still caught;
//! - by the **operator**, in the ExchangeNode's status (the national node has no parent);
//! - in a **local copy** of the last anchor the parent acknowledged, a file beside the database
//!   (not in it: a database put back from a backup does not bring back this file's past).
//!
//! [`verify`] checks the chain against all anchors known and names what it finds: an anchored
//! record with another hash is a rewrite; a chain that ends before an anchored head is a
//! truncation when the store itself knows it was anchored that far, else an older copy of the
//! whole database. An anchor recorded before an administrator's state import, of a record the
//! import replaced, is superseded by that import, not a break.

use std::io::Write;
use std::path::{Path, PathBuf};

use govdc_hub_api::v1;
use rusqlite::Connection;
use serde::{Deserialize, Serialize};

use crate::audit::{self, Verification};

/// The local copy of the last acknowledged anchor, in the data directory.
pub const LOCAL_FILE: &str = "audit-anchor.json";

/// The setting, in the store, of the last head the parent acknowledged (its seq): a store that
/// knows it was anchored past its own end was cut, one that does not is an older copy.
pub const ANCHORED_SETTING: &str = "audit.anchoredSeq";

/// A record of a node's head made outside the node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Anchor {
    /// The node whose head it is.
    pub node: String,
    /// The head's sequence number.
    pub seq: i64,
    /// The head's hash.
    pub hash: String,
    /// Who recorded it: the parent's name or `operator`.
    pub recorded_by: String,
    /// The recorder's own audit record that holds it; 0 when none.
    #[serde(default)]
    pub recorded_seq: i64,
    /// When it was recorded, microseconds since the Unix epoch; 0 when unknown.
    #[serde(default)]
    pub recorded_at_micros: i64,
}

/// Where an anchor came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Passed in by the caller (the operator's copy of the head).
    Caller,
    /// Fetched from the parent.
    Parent,
    /// The local copy beside the store.
    Local,
}

impl Source {
    /// Its name in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Caller => "caller",
            Source::Parent => "parent",
            Source::Local => "local",
        }
    }
}

/// What a verification found, worst first when several anchors disagree.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Finding {
    /// The chain verifies and matches every anchor.
    Intact,
    /// A record no longer matches its hash, or a link is broken.
    Altered,
    /// A record is missing in the middle.
    Gap,
    /// Records were removed from the end.
    Truncated,
    /// Records were rewritten and the chain re-computed after them.
    Rewritten,
    /// The whole database is an older copy.
    OlderCopy,
}

impl Finding {
    /// How the CLI names it.
    pub fn as_str(self) -> &'static str {
        match self {
            Finding::Intact => "intact",
            Finding::Altered => "ALTERED",
            Finding::Gap => "GAP",
            Finding::Truncated => "TRUNCATED",
            Finding::Rewritten => "REWRITTEN",
            Finding::OlderCopy => "OLDER COPY",
        }
    }
}

/// How one anchor compared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Check {
    /// The anchor; None when its source could not be read.
    pub anchor: Option<Anchor>,
    /// Where it came from.
    pub source: Source,
    /// `matches`, `superseded ...`, `unavailable: ...` or what is wrong.
    pub outcome: String,
}

/// The outcome of checking a chain and its anchors.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Report {
    /// Records whose hash and link verified.
    pub records_checked: i64,
    /// What was found.
    pub finding: Finding,
    /// The first record broken, missing or rewritten, with the reason; None when intact.
    pub first_broken: Option<(i64, String)>,
    /// Each anchor, compared.
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether the chain verified and matched every anchor.
    pub fn intact(&self) -> bool {
        self.finding == Finding::Intact
    }
}

/// The path of the local copy in `data_dir`.
pub fn local_path(data_dir: &Path) -> PathBuf {
    data_dir.join(LOCAL_FILE)
}

/// The local copy, if there is one. A file that does not parse is an error: it is evidence,
/// and evidence that cannot be read is not silently dropped.
pub fn read_local(data_dir: &Path) -> std::io::Result<Option<Anchor>> {
    let path = local_path(data_dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("{} is not an anchor: {e}", path.display()),
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Replaces the local copy, atomically (a crash leaves the old one or the new one).
pub fn write_local(data_dir: &Path, anchor: &Anchor) -> std::io::Result<()> {
    let path = local_path(data_dir);
    let scratch = data_dir.join(format!("{LOCAL_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(anchor).map_err(std::io::Error::other)?;
    let mut file = std::fs::File::create(&scratch)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    std::fs::rename(&scratch, &path)
}

/// Removes the local copy (after a state import: the anchors of the replaced history no
/// longer describe this store).
pub fn remove_local(data_dir: &Path) -> std::io::Result<()> {
    match std::fs::remove_file(local_path(data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Anchor {
    /// The anchor in the API's terms.
    pub fn to_api(&self) -> v1::AuditAnchor {
        v1::AuditAnchor {
            node: self.node.clone(),
            head: Some(v1::AuditHead {
                seq: self.seq,
                hash: self.hash.clone(),
            }),
            recorded_by: self.recorded_by.clone(),
            recorded_seq: self.recorded_seq,
            recorded_at: (self.recorded_at_micros > 0)
                .then(|| crate::service::timestamp(self.recorded_at_micros)),
        }
    }

    /// An anchor from the API's terms; None without a head.
    pub fn from_api(anchor: &v1::AuditAnchor) -> Option<Anchor> {
        let head = anchor.head.as_ref()?;
        Some(Anchor {
            node: anchor.node.clone(),
            seq: head.seq,
            hash: head.hash.clone(),
            recorded_by: anchor.recorded_by.clone(),
            recorded_seq: anchor.recorded_seq,
            recorded_at_micros: anchor
                .recorded_at
                .as_ref()
                .map(|t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
                .unwrap_or_default(),
        })
    }
}

impl Finding {
    /// The finding in the API's terms.
    pub fn to_api(self) -> v1::AuditFinding {
        match self {
            Finding::Intact => v1::AuditFinding::Intact,
            Finding::Altered => v1::AuditFinding::Altered,
            Finding::Gap => v1::AuditFinding::Gap,
            Finding::Truncated => v1::AuditFinding::Truncated,
            Finding::Rewritten => v1::AuditFinding::Rewritten,
            Finding::OlderCopy => v1::AuditFinding::OlderCopy,
        }
    }
}

fn anchored_seq(conn: &Connection) -> rusqlite::Result<i64> {
    use rusqlite::OptionalExtension;
    let value: Option<String> = conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            [ANCHORED_SETTING],
            |row| row.get(0),
        )
        .optional()?;
    Ok(value.and_then(|v| v.parse().ok()).unwrap_or(0))
}

fn when(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "an unknown time".to_owned())
}

fn who(anchor: &Anchor, source: Source) -> String {
    let at = if anchor.recorded_at_micros > 0 {
        format!(" at {}", when(anchor.recorded_at_micros))
    } else {
        String::new()
    };
    let record = if anchor.recorded_seq > 0 {
        format!(" (its record {})", anchor.recorded_seq)
    } else {
        String::new()
    };
    match source {
        Source::Local => format!(
            "the local copy of {}'s anchor{record}{at}",
            anchor.recorded_by
        ),
        _ => format!("{}{record}{at}", anchor.recorded_by),
    }
}

/// Checks the chain in `conn` of node `node` against `anchors` (each with its source; a None
/// anchor is a source that could not be read, with why).
pub fn verify(
    conn: &Connection,
    node: &str,
    anchors: Vec<(Source, Result<Anchor, String>)>,
) -> rusqlite::Result<Report> {
    let Verification {
        records_checked,
        first_broken,
        gap,
    } = audit::verify(conn)?;
    let mut checks = Vec::with_capacity(anchors.len());
    if let Some(broken) = first_broken {
        for (source, anchor) in anchors {
            checks.push(Check {
                anchor: anchor.ok(),
                source,
                outcome: "not compared: the chain itself is broken".to_owned(),
            });
        }
        return Ok(Report {
            records_checked,
            finding: if gap { Finding::Gap } else { Finding::Altered },
            first_broken: Some(broken),
            checks,
        });
    }
    // An intact chain has records 1..=records_checked.
    let end = records_checked;
    let known = anchored_seq(conn)?;
    let imports = audit::records_of(conn, "state.import")?;
    let mut worst: Option<(Finding, i64, String)> = None;
    for (source, anchor) in anchors {
        let anchor = match anchor {
            Ok(anchor) => anchor,
            Err(why) => {
                checks.push(Check {
                    anchor: None,
                    source,
                    outcome: format!("unavailable: {why}"),
                });
                continue;
            }
        };
        let by = who(&anchor, source);
        let (outcome, problem) = if anchor.node != node {
            (
                format!(
                    "ignored: it anchors node {}, this is node {node}",
                    anchor.node
                ),
                None,
            )
        } else if let Some(import) = imports.iter().rev().find(|i| {
            anchor.seq >= i.seq
                && anchor.recorded_at_micros > 0
                && anchor.recorded_at_micros < i.time_micros
        }) {
            (
                format!(
                    "superseded: record {} is past the copy the state import at record {} ({} by {}) put in place",
                    anchor.seq,
                    import.seq,
                    when(import.time_micros),
                    import.actor
                ),
                None,
            )
        } else if anchor.seq > end {
            let (finding, reason) = if known >= anchor.seq {
                (
                    Finding::Truncated,
                    format!(
                        "the log was truncated: it ends at record {end}, but {by} anchored record {} \
                         and the store itself records that record {known} was anchored; records {}..{} were removed",
                        anchor.seq,
                        end + 1,
                        anchor.seq
                    ),
                )
            } else {
                (
                    Finding::OlderCopy,
                    format!(
                        "the database is an older copy: it ends at record {end} and knows of no anchor past \
                         record {known}, but {by} anchored record {}; records {}..{} are not in it",
                        anchor.seq,
                        end + 1,
                        anchor.seq
                    ),
                )
            };
            (reason.clone(), Some((finding, end + 1, reason)))
        } else {
            match audit::record_at(conn, anchor.seq)? {
                Some(record) if record.hash == anchor.hash => ("matches".to_owned(), None),
                Some(record) => {
                    let reason = format!(
                        "the log was rewritten: record {} ({} by {} on {}) hashes to {}, but {by} anchored it as {}; \
                         records up to {} were changed and the chain re-computed after them",
                        record.seq,
                        record.action,
                        record.actor,
                        record.subject,
                        record.hash,
                        anchor.hash,
                        record.seq
                    );
                    (
                        reason.clone(),
                        Some((Finding::Rewritten, record.seq, reason)),
                    )
                }
                None => {
                    let reason = format!("record {} is missing", anchor.seq);
                    (reason.clone(), Some((Finding::Gap, anchor.seq, reason)))
                }
            }
        };
        if let Some(problem) = problem
            && worst.is_none()
        {
            worst = Some(problem);
        }
        checks.push(Check {
            anchor: Some(anchor),
            source,
            outcome,
        });
    }
    Ok(match worst {
        None => Report {
            records_checked,
            finding: Finding::Intact,
            first_broken: None,
            checks,
        },
        Some((finding, seq, reason)) => Report {
            records_checked,
            finding,
            first_broken: Some((seq, reason)),
            checks,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::{Algorithm, append, head};

    fn db(records: usize) -> Connection {
        let conn = Connection::open_in_memory().expect("opens");
        crate::store::migrate(&conn).expect("migrates");
        for i in 0..records {
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
        conn
    }

    fn anchor_of(conn: &Connection) -> Anchor {
        let head = head(conn).expect("reads").expect("a head");
        Anchor {
            node: "n".into(),
            seq: head.seq,
            hash: head.hash,
            recorded_by: "parent".into(),
            recorded_seq: 7,
            recorded_at_micros: 1,
        }
    }

    #[test]
    fn a_chain_that_matches_its_anchor_is_intact() {
        let conn = db(3);
        let report = verify(&conn, "n", vec![(Source::Parent, Ok(anchor_of(&conn)))]).expect("v");
        assert_eq!(report.finding, Finding::Intact, "{report:?}");
        assert_eq!(report.checks[0].outcome, "matches");
    }

    #[test]
    fn a_cut_tail_is_a_truncation_when_the_store_knew_its_anchor() {
        let conn = db(5);
        let anchor = anchor_of(&conn);
        conn.execute_batch(
            "INSERT INTO settings VALUES ('audit.anchoredSeq', '5');
             DROP TRIGGER audit_no_delete; DELETE FROM audit WHERE seq > 3",
        )
        .expect("cuts");
        let report = verify(&conn, "n", vec![(Source::Parent, Ok(anchor.clone()))]).expect("v");
        assert_eq!(report.finding, Finding::Truncated, "{report:?}");
        assert_eq!(report.first_broken.as_ref().map(|b| b.0), Some(4));
        // Without the store's own knowledge, the same state reads as an older copy.
        conn.execute_batch("DELETE FROM settings").expect("forgets");
        let report = verify(&conn, "n", vec![(Source::Local, Ok(anchor))]).expect("v");
        assert_eq!(report.finding, Finding::OlderCopy, "{report:?}");
    }

    #[test]
    fn an_unreadable_source_is_reported_and_does_not_break_the_chain() {
        let conn = db(2);
        let report =
            verify(&conn, "n", vec![(Source::Parent, Err("no answer".into()))]).expect("v");
        assert!(report.intact());
        assert_eq!(report.checks[0].outcome, "unavailable: no answer");
    }
}
