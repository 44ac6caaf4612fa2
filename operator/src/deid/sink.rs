//! The output files: gzip-compressed CSV and JSON written record by record to the caller's
//! sinks, with the SHA-256 and size of the compressed bytes taken on the way out.

use std::io::{self, BufWriter, Write};

use flate2::Compression;
use flate2::write::GzEncoder;
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Bytes the CSV and JSON writers gather before handing them to the compressor: large enough
/// that the compressor sees few calls, small enough not to matter in memory.
const BUFFER: usize = 64 * 1024;

/// The SHA-256 and length of a written (compressed) file, what the portal publishes beside it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FileDigest {
    /// SHA-256 of the gzip bytes, lower-case hex.
    pub sha256: String,
    /// Length of the gzip bytes.
    pub bytes: u64,
}

/// Passes bytes on while hashing and counting them.
struct Digesting<W> {
    inner: W,
    hasher: Sha256,
    bytes: u64,
}

impl<W: Write> Write for Digesting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<W: Write> Digesting<W> {
    fn finish(mut self) -> io::Result<FileDigest> {
        self.inner.flush()?;
        let digest = self.hasher.finalize();
        Ok(FileDigest {
            sha256: hex::encode(digest),
            bytes: self.bytes,
        })
    }
}

type Gz<W> = GzEncoder<Digesting<W>>;

/// A gzip stream whose header carries no name and a zero modification time, so that the same
/// records always make the same bytes and the same SHA-256: a refresh that changes nothing
/// publishes an identical file.
fn gzip<W: Write>(inner: W) -> Gz<W> {
    GzEncoder::new(
        Digesting {
            inner,
            hasher: Sha256::new(),
            bytes: 0,
        },
        Compression::default(),
    )
}

/// CSV with a header row, RFC 4180 quoting.
pub(super) struct CsvSink<W: Write> {
    writer: csv::Writer<Gz<W>>,
}

impl<W: Write> CsvSink<W> {
    /// A CSV file with its header, after a UTF-8 byte-order mark when `bom` (which spreadsheet
    /// programs need to read the file as UTF-8).
    pub(super) fn new<'a>(
        inner: W,
        columns: impl IntoIterator<Item = &'a str>,
        bom: bool,
    ) -> io::Result<Self> {
        let mut gz = gzip(inner);
        if bom {
            gz.write_all("\u{feff}".as_bytes())?;
        }
        let mut writer = csv::WriterBuilder::new()
            .buffer_capacity(BUFFER)
            .from_writer(gz);
        writer.write_record(columns)?;
        Ok(CsvSink { writer })
    }

    pub(super) fn write<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<()> {
        Ok(self.writer.write_record(values)?)
    }

    pub(super) fn finish(self) -> io::Result<FileDigest> {
        let gz = self.writer.into_inner().map_err(|e| e.into_error())?;
        gz.finish()?.finish()
    }
}

/// A JSON array of objects, one per record, every value a string (a CSV source has no types);
/// one record per line, so that the file also reads well in a terminal.
pub(super) struct JsonSink<W: Write> {
    out: BufWriter<Gz<W>>,
    /// `{"column":` for the first column and `,"column":` for the others, escaped once.
    keys: Vec<Vec<u8>>,
    records: u64,
}

impl<W: Write> JsonSink<W> {
    pub(super) fn new<'a>(
        inner: W,
        columns: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<Self> {
        let mut keys = Vec::new();
        for (i, column) in columns.into_iter().enumerate() {
            let mut key = if i == 0 { b"{".to_vec() } else { b",".to_vec() };
            serde_json::to_writer(&mut key, column)?;
            key.push(b':');
            keys.push(key);
        }
        let mut out = BufWriter::with_capacity(BUFFER, gzip(inner));
        out.write_all(b"[")?;
        Ok(JsonSink {
            out,
            keys,
            records: 0,
        })
    }

    pub(super) fn write<'a>(
        &mut self,
        values: impl IntoIterator<Item = &'a str>,
    ) -> io::Result<()> {
        self.out
            .write_all(if self.records == 0 { b"\n" } else { b",\n" })?;
        for (key, value) in self.keys.iter().zip(values) {
            self.out.write_all(key)?;
            serde_json::to_writer(&mut self.out, value)?;
        }
        self.out.write_all(b"}")?;
        self.records += 1;
        Ok(())
    }

    pub(super) fn finish(mut self) -> io::Result<FileDigest> {
        self.out
            .write_all(if self.records == 0 { b"]\n" } else { b"\n]\n" })?;
        let gz = self.out.into_inner().map_err(|e| e.into_error())?;
        gz.finish()?.finish()
    }
}
