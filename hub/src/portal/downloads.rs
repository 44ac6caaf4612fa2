//! Download counts, counted on the server: a download is a `GET` of a dataset's file answered
//! with its bytes from the first one (a whole `200`, or a `206` from byte 0); a resumed range, a
//! `HEAD`, a `304` or a refused request is no download.
//!
//! **Where they live.** The counts are kept in memory, where pages and the "most downloaded"
//! order read them without touching the store, and written to the store's `portal_downloads`
//! table every [`FLUSH_INTERVAL`] and when the node stops, in one transaction of the store's
//! group commit: a download never waits for an `fsync`, and a crash (not a stop) loses at most
//! the last interval's counts. They are loaded again at start.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::params;
use tonic::Status;

use crate::service::{DbResult, now_micros};
use crate::store::Store;

/// How often counted downloads are written to the store.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(2);

/// The portal's download counts.
#[derive(Debug, Default)]
pub struct Downloads {
    /// Every dataset's count: what the store holds plus what is not written yet.
    totals: Mutex<HashMap<String, u64>>,
    /// Downloads counted since the last write, by dataset.
    pending: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Downloads {
    /// Counts one download of `id`.
    pub fn record(&self, id: &str) {
        *lock(&self.totals).entry(id.to_owned()).or_default() += 1;
        *lock(&self.pending).entry(id.to_owned()).or_default() += 1;
    }

    /// How often `id` was downloaded.
    pub fn count(&self, id: &str) -> u64 {
        lock(&self.totals).get(id).copied().unwrap_or_default()
    }

    /// The counts of `ids`, in their order (one lock for all).
    pub fn counts<'a>(&self, ids: impl Iterator<Item = &'a str>) -> Vec<u64> {
        let totals = lock(&self.totals);
        ids.map(|id| totals.get(id).copied().unwrap_or_default())
            .collect()
    }

    /// Reads the counts the store holds (at start, before serving).
    pub async fn load(&self, store: &Store<Status>) -> Result<(), Status> {
        let stored: HashMap<String, u64> = store
            .read(|conn| {
                let mut stmt = conn
                    .prepare("SELECT dataset_id, downloads FROM portal_downloads")
                    .db()?;
                let rows = stmt
                    .query_map([], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?.max(0) as u64))
                    })
                    .db()?
                    .collect::<rusqlite::Result<HashMap<_, _>>>()
                    .db()?;
                Ok(rows)
            })
            .await?;
        let mut totals = lock(&self.totals);
        for (id, n) in stored {
            *totals.entry(id).or_default() += n;
        }
        Ok(())
    }

    /// Writes the downloads counted since the last write; on failure they stay pending.
    pub async fn flush(&self, store: &Store<Status>) -> Result<(), Status> {
        let batch = std::mem::take(&mut *lock(&self.pending));
        if batch.is_empty() {
            return Ok(());
        }
        let written = batch.clone();
        let result = store
            .write(move |conn| {
                let now = now_micros();
                let mut stmt = conn
                    .prepare_cached(
                        "INSERT INTO portal_downloads (dataset_id, downloads, updated_at)
                         VALUES (?1, ?2, ?3)
                         ON CONFLICT (dataset_id) DO UPDATE SET
                            downloads = downloads + excluded.downloads,
                            updated_at = excluded.updated_at",
                    )
                    .db()?;
                for (id, n) in &written {
                    stmt.execute(params![id, i64::try_from(*n).unwrap_or(i64::MAX), now])
                        .db()?;
                }
                Ok(())
            })
            .await;
        if result.is_err() {
            let mut pending = lock(&self.pending);
            for (id, n) in batch {
                *pending.entry(id).or_default() += n;
            }
        }
        result
    }

    /// Writes the counts every [`FLUSH_INTERVAL`] until `stop` is cancelled, then once more.
    pub async fn run(&self, store: &Store<Status>, stop: tokio_util::sync::CancellationToken) {
        loop {
            let stopping = tokio::select! {
                _ = tokio::time::sleep(FLUSH_INTERVAL) => false,
                _ = stop.cancelled() => true,
            };
            if let Err(e) = self.flush(store).await {
                tracing::warn!(error = e.message(), "writing the portal's download counts");
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up_per_dataset() {
        let downloads = Downloads::default();
        downloads.record("a.x");
        downloads.record("a.x");
        downloads.record("b.y");
        assert_eq!(downloads.count("a.x"), 2);
        assert_eq!(downloads.counts(["b.y", "c.z"].into_iter()), [1, 0]);
    }
}
