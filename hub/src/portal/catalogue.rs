//! The served datasets, decoded once and reused while the store's portal tables have not
//! changed, so that a page or a CKAN search over ten thousand datasets does not decode ten
//! thousand rows each time.
//!
//! Whether they changed is asked of the store on every read, not told by the writers: every
//! write to the portal's rows (publish, unpublish) is audited in the same transaction, and an
//! imported state brings its own chain, so the head of the audit chain (its sequence number and
//! hash, one lookup by primary key) changes whenever they may have. Other audited actions (an
//! exchange, a token) change it too and cost one decode more; never a stale answer.

use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};
use tonic::Status;

use super::{Entry, load_all};
use crate::store::DbResult;

/// What identifies a state of the store: the head of its audit chain.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    seq: i64,
    hash: String,
}

fn stamp(conn: &Connection) -> Result<Stamp, Status> {
    let head = conn
        .prepare_cached("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        .db()?
        .query_row([], |r| {
            Ok(Stamp {
                seq: r.get(0)?,
                hash: r.get(1)?,
            })
        })
        .optional()
        .db()?;
    Ok(head.unwrap_or(Stamp {
        seq: 0,
        hash: String::new(),
    }))
}

/// The decoded datasets of the last state read.
#[derive(Debug, Default)]
pub struct Catalogue {
    cached: Mutex<Option<(Stamp, Arc<Vec<Entry>>)>>,
}

impl Catalogue {
    /// Every served dataset, by id (what [`load_all`] answers), decoded again only when the
    /// portal's rows changed since the last call.
    pub fn entries(&self, conn: &Connection) -> Result<Arc<Vec<Entry>>, Status> {
        // The stamp is read before the rows: rows newer than their stamp only cost one more
        // decode at the next call, never a stale answer.
        let now = stamp(conn)?;
        if let Some((seen, entries)) = &*self.cached.lock().unwrap_or_else(|p| p.into_inner())
            && seen == &now
        {
            return Ok(entries.clone());
        }
        let entries = Arc::new(load_all(conn)?);
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, entries.clone()));
        Ok(entries)
    }
}
