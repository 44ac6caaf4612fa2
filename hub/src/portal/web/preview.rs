//! The preview of a dataset: its first rows, read from the published gzip CSV itself (no
//! separate data store) and only as far as they go, so that a file of a million rows previews
//! as fast as one of ten.

use std::collections::HashMap;
use std::io::{BufReader, Read};
use std::path::Path;
use std::sync::{Arc, Mutex};

/// Rows a preview shows.
pub const ROWS: usize = 10;
/// Columns a preview shows; wider tables are cut, the rest is in the file.
pub const MAX_COLUMNS: usize = 40;
/// Characters of a cell a preview shows.
pub const MAX_CELL_CHARS: usize = 120;
/// Decompressed bytes a preview reads at most, whatever the rows hold: a single enormous row
/// (or a file crafted to expand) cannot make a page read the whole file.
pub const MAX_BYTES: u64 = 1 << 20;

/// The first rows of a CSV file.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Preview {
    /// The header row.
    pub columns: Vec<String>,
    /// Up to [`ROWS`] records.
    pub rows: Vec<Vec<String>>,
    /// Whether columns or cells were cut to fit.
    pub cut: bool,
}

/// Why there is no preview.
#[derive(Debug, thiserror::Error)]
pub enum PreviewError {
    /// The file cannot be opened or decompressed.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// What failed.
        source: std::io::Error,
    },
    /// The file is not CSV (within the bytes read).
    #[error("parsing {path} as CSV: {source}")]
    Csv {
        /// The file.
        path: String,
        /// What failed.
        source: csv::Error,
    },
}

fn cut_cell(value: &str, cut: &mut bool) -> String {
    if value.chars().count() > MAX_CELL_CHARS {
        *cut = true;
        let mut short: String = value.chars().take(MAX_CELL_CHARS).collect();
        short.push('…');
        short
    } else {
        value.to_owned()
    }
}

fn cut_record(record: &csv::StringRecord, cut: &mut bool) -> Vec<String> {
    if record.len() > MAX_COLUMNS {
        *cut = true;
    }
    record
        .iter()
        .take(MAX_COLUMNS)
        .map(|v| cut_cell(v, cut))
        .collect()
}

/// The first `rows` records of the gzip CSV at `path` (blocking: run it off the async threads).
/// A UTF-8 byte-order mark before the header is not part of the first column's name.
pub fn read(path: &Path, rows: usize) -> Result<Preview, PreviewError> {
    let shown = path.display().to_string();
    let file = std::fs::File::open(path).map_err(|source| PreviewError::Read {
        path: shown.clone(),
        source,
    })?;
    let decoded = flate2::read::MultiGzDecoder::new(BufReader::new(file)).take(MAX_BYTES);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(true)
        .from_reader(decoded);
    let csv_error = |source: csv::Error| {
        if let csv::ErrorKind::Io(_) = source.kind() {
            // The gzip stream itself is broken: say so as a read error.
            let message = source.to_string();
            PreviewError::Read {
                path: shown.clone(),
                source: std::io::Error::other(message),
            }
        } else {
            PreviewError::Csv {
                path: shown.clone(),
                source,
            }
        }
    };
    let mut preview = Preview::default();
    let header = reader.headers().map_err(csv_error)?.clone();
    preview.columns = cut_record(&header, &mut preview.cut);
    if let Some(first) = preview.columns.first_mut()
        && let Some(rest) = first.strip_prefix('\u{feff}')
    {
        *first = rest.to_owned();
    }
    let mut record = csv::StringRecord::new();
    while preview.rows.len() < rows {
        match reader.read_record(&mut record) {
            Ok(true) => preview.rows.push(cut_record(&record, &mut preview.cut)),
            Ok(false) => break,
            // Cut off by MAX_BYTES in the middle of a record: show what was whole.
            Err(_) if !preview.rows.is_empty() => break,
            Err(e) => return Err(csv_error(e)),
        }
    }
    Ok(preview)
}

/// Previews held at most by a [`Cache`].
pub const CACHED: usize = 1024;

/// Which file a preview is of: dataset, version and the file's SHA-256. A version's files never
/// change (a new publish is a new version, an imported state with other bytes another digest),
/// so a preview read once stays right.
pub type Key = (String, i64, String);

/// The previews already read, so that a dataset page does not open and decompress its file on
/// every view: bounded to [`CACHED`] (an arbitrary one gives way when it is full).
#[derive(Debug, Default)]
pub struct Cache {
    inner: Mutex<HashMap<Key, Arc<Preview>>>,
}

impl Cache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Arc<Preview>>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The preview of `key`, if read before.
    pub fn get(&self, key: &Key) -> Option<Arc<Preview>> {
        self.lock().get(key).cloned()
    }

    /// Keeps `preview` for `key`.
    pub fn put(&self, key: Key, preview: Arc<Preview>) {
        let mut previews = self.lock();
        if previews.len() >= CACHED
            && !previews.contains_key(&key)
            && let Some(old) = previews.keys().next().cloned()
        {
            previews.remove(&old);
        }
        previews.insert(key, preview);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(path: &Path, text: &str) {
        let file = std::fs::File::create(path).unwrap_or_else(|e| panic!("{e}"));
        let mut gz = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        gz.write_all(text.as_bytes())
            .and_then(|()| gz.finish().map(drop))
            .unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn reads_only_the_first_rows_and_drops_the_bom() {
        let dir = std::env::temp_dir().join(format!("govdc-preview-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("data.csv.gz");
        let mut text = "\u{feff}站点,\"name, with comma\"\n".to_owned();
        for i in 0..50_000 {
            text.push_str(&format!("西湖{i},\"line\nbreak {i}\"\n"));
        }
        gzip(&path, &text);
        let preview = read(&path, 3).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(preview.columns, ["站点", "name, with comma"]);
        assert_eq!(
            preview.rows,
            [
                ["西湖0", "line\nbreak 0"],
                ["西湖1", "line\nbreak 1"],
                ["西湖2", "line\nbreak 2"]
            ]
        );
        assert!(!preview.cut);

        gzip(&path, &format!("a\n{}\n", "x".repeat(500)));
        let preview = read(&path, 3).unwrap_or_else(|e| panic!("{e}"));
        assert!(preview.cut);
        assert_eq!(preview.rows[0][0].chars().count(), MAX_CELL_CHARS + 1);

        std::fs::write(&path, b"not gzip").unwrap_or_else(|e| panic!("{e}"));
        let cache = Cache::default();
        for i in 0..CACHED + 10 {
            cache.put(
                ("d".into(), i as i64, String::new()),
                Arc::new(preview.clone()),
            );
        }
        assert_eq!(cache.lock().len(), CACHED, "bounded");
        assert!(
            cache
                .get(&("d".into(), (CACHED + 9) as i64, String::new()))
                .is_some()
        );
        assert!(matches!(read(&path, 3), Err(PreviewError::Read { .. })));
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
}
