//! The served datasets, decoded once and reused while the store's portal tables have not
//! changed, so that a page or a CKAN search over ten thousand datasets does not decode ten
//! thousand rows each time; with them, what every request would otherwise work out again over
//! the whole catalogue: the search [`Index`] (folded text, newest-first order), the facet
//! counts of the whole catalogue (the home page and an unfiltered search show them) and the
//! departments' names.
//!
//! Whether they changed is asked of the store on every read, not told by the writers. Every
//! write to the portal's datasets (publish, unpublish) appends a row to `portal_history` in the
//! same transaction ([`super::history`]), so the head of that history (its sequence number, time
//! and dataset) changes whenever they do; an imported state brings its own history, whose head
//! is another. With the number of served datasets (a store imported from before the history
//! existed has none), that is the stamp: two lookups, and unlike the audit chain's head it does
//! not move with every exchange the node audits, so a busy hub does not rebuild its catalogue
//! per page.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OptionalExtension};

use super::history::current_quality;
use super::quality::{Quality, assess};
use super::search::{Facet, Index, SHOWN_FACETS, department};
use super::timeliness::{Timeliness, judge};
use super::{Entry, load_all};
use crate::store::{SqlResult, StorageError};

/// What identifies a state of the portal's datasets: the head of their history and how many
/// there are.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Stamp {
    head: Option<(i64, i64, String)>,
    datasets: i64,
}

fn stamp(conn: &Connection) -> Result<Stamp, StorageError> {
    let head = conn
        .prepare_cached("SELECT seq, at, dataset_id FROM portal_history ORDER BY seq DESC LIMIT 1")
        .sql()?
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .optional()
        .sql()?;
    let datasets = conn
        .prepare_cached("SELECT count(*) FROM portal_datasets")
        .sql()?
        .query_row([], |r| r.get(0))
        .sql()?;
    Ok(Stamp { head, datasets })
}

/// One state of the served catalogue and what is worked out from it once.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Every served dataset, by id (what [`load_all`] answers).
    pub entries: Vec<Entry>,
    /// The search structures of `entries`.
    pub index: Index,
    /// The facet counts over every entry, in [`SHOWN_FACETS`] order.
    pub totals: Vec<(Facet, Vec<(String, usize)>)>,
    /// Each department's name by its CKAN organization name (the code when it has none).
    pub names: BTreeMap<String, String>,
    /// Each entry's metadata quality (as stored when its version was published), by position.
    pub quality: Vec<Quality>,
    /// The departments, by CKAN organization name.
    pub departments: BTreeMap<String, Department>,
}

/// A department's part of the catalogue.
#[derive(Debug, Default)]
pub struct Department {
    /// Its name (its code when it has none).
    pub name: String,
    /// Positions of its datasets, newest first.
    pub datasets: Vec<usize>,
    /// The mean metadata quality score of its datasets' current versions.
    pub quality: u32,
}

impl Snapshot {
    /// The snapshot of `entries`, with the quality stored for their versions (by id; worked out
    /// again for a version published before the store kept it).
    pub fn new(entries: Vec<Entry>, stored: &HashMap<String, Quality>) -> Snapshot {
        let index = Index::new(&entries);
        let all: Vec<usize> = (0..entries.len()).collect();
        let totals = SHOWN_FACETS
            .iter()
            .map(|facet| (*facet, index.counts(&entries, &all, *facet)))
            .collect();
        let names: BTreeMap<String, String> = entries
            .iter()
            .map(|e| {
                let code = department(e);
                let name = &e.metadata.organization_name;
                let label = if name.is_empty() {
                    code.clone()
                } else {
                    name.clone()
                };
                (code, label)
            })
            .collect();
        let quality: Vec<Quality> = entries
            .iter()
            .map(|e| {
                stored
                    .get(&e.metadata.id)
                    .cloned()
                    .unwrap_or_else(|| assess(e))
            })
            .collect();
        let mut departments: BTreeMap<String, Department> = BTreeMap::new();
        for &i in index.newest() {
            let code = department(&entries[i]);
            let d = departments.entry(code.clone()).or_default();
            if d.name.is_empty() {
                d.name = names.get(&code).cloned().unwrap_or(code);
            }
            d.datasets.push(i);
        }
        for d in departments.values_mut() {
            let sum: u64 = d
                .datasets
                .iter()
                .map(|&i| u64::from(quality[i].score))
                .sum();
            d.quality = u32::try_from(sum / d.datasets.len().max(1) as u64).unwrap_or(u32::MAX);
        }
        Snapshot {
            entries,
            index,
            totals,
            names,
            quality,
            departments,
        }
    }

    /// How many of `positions` have an update schedule, and how many of those are on time at
    /// `now` (microseconds since the epoch).
    pub fn on_time(&self, positions: &[usize], now: i64) -> (usize, usize) {
        positions.iter().fold((0, 0), |(scheduled, on_time), &i| {
            let e = &self.entries[i];
            match judge(e.published_at, e.metadata.update_interval_seconds, now) {
                Timeliness::Irregular => (scheduled, on_time),
                Timeliness::OnTime { .. } => (scheduled + 1, on_time + 1),
                Timeliness::Overdue { .. } => (scheduled + 1, on_time),
            }
        })
    }

    /// The counts of `facet` over the whole catalogue.
    pub fn total(&self, facet: Facet) -> &[(String, usize)] {
        self.totals
            .iter()
            .find(|(f, _)| *f == facet)
            .map(|(_, counts)| counts.as_slice())
            .unwrap_or_default()
    }

    /// The position of dataset `id` in `entries` (which are in id order, as [`load_all`] reads
    /// them), if it is served.
    pub fn position(&self, id: &str) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.metadata.id.as_str().cmp(id))
            .ok()
    }

    /// The entries at `positions`.
    pub fn at<'a>(&'a self, positions: &'a [usize]) -> impl Iterator<Item = &'a Entry> + 'a {
        positions.iter().map(|&i| &self.entries[i])
    }
}

/// The decoded datasets of the last state read.
#[derive(Debug, Default)]
pub struct Catalogue {
    cached: Mutex<Option<(Stamp, Arc<Snapshot>)>>,
    /// Held while a snapshot is built: requests that find the cache stale at once wait for one
    /// build instead of each building the same snapshot (on two cores, eight builds of ten
    /// thousand datasets at once took seconds).
    building: Mutex<()>,
}

impl Catalogue {
    /// The served catalogue, decoded and indexed again only when the portal's rows changed
    /// since the last call.
    pub fn snapshot(&self, conn: &Connection) -> Result<Arc<Snapshot>, StorageError> {
        // The stamp is read before the rows: rows newer than their stamp only cost one more
        // decode at the next call, never a stale answer.
        let now = stamp(conn)?;
        let cached = |now: &Stamp| {
            self.cached
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .as_ref()
                .filter(|(seen, _)| seen == now)
                .map(|(_, snapshot)| snapshot.clone())
        };
        if let Some(snapshot) = cached(&now) {
            return Ok(snapshot);
        }
        // Readers run on the blocking pool: waiting here holds no async thread.
        let _building = self.building.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(snapshot) = cached(&now) {
            return Ok(snapshot);
        }
        let started = std::time::Instant::now();
        let snapshot = Arc::new(Snapshot::new(load_all(conn)?, &current_quality(conn)?));
        tracing::debug!(
            datasets = snapshot.entries.len(),
            ms = started.elapsed().as_secs_f64() * 1000.0,
            "built the portal's catalogue snapshot"
        );
        *self.cached.lock().unwrap_or_else(|p| p.into_inner()) = Some((now, snapshot.clone()));
        Ok(snapshot)
    }
}
