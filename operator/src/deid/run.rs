//! A run of a plan over a CSV source: one pass, or two when k-anonymity needs the group sizes
//! before anything is written.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Read, Write};

use govdc_crds::open_dataset::FieldAction;
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::MAX_SUPPRESSED_PERCENT;
use super::plan::Plan;
use super::refusal::Refusal;
use super::rules::{self, Rule};
use super::sink::{CsvSink, FileDigest, JsonSink};

/// Where a run writes its files. A sink left `None` is not written. On an error, whatever was
/// written is incomplete and must be thrown away; a refusal found before writing (all but
/// `SourceChanged`) leaves the sinks untouched.
#[derive(Default)]
pub struct Outputs<'a> {
    /// The gzip-compressed CSV file.
    pub csv: Option<&'a mut dyn Write>,
    /// The gzip-compressed JSON file.
    pub json: Option<&'a mut dyn Write>,
}

/// Why a run did not finish.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The dataset may not be published as it is.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Reading the source or writing a sink failed.
    #[error("de-identification: {0}")]
    Io(#[from] io::Error),
}

/// What a run did, for the controller's status and events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// What was done to each declared field, in declared order.
    pub fields: Vec<FieldReport>,
    /// Records in the source.
    pub rows_read: u64,
    /// Records published.
    pub rows_written: u64,
    /// Records left out because their group of quasi-identifiers was smaller than k.
    pub rows_suppressed: u64,
    /// Groups left out.
    pub groups_suppressed: u64,
    /// Distinct combinations of quasi-identifiers among the published records; 0 without
    /// quasi-identifiers.
    pub groups: u64,
    /// Records in the smallest published group (at least k when k is set); `None` without
    /// quasi-identifiers or records.
    pub smallest_group: Option<u64>,
    /// The k required, when k-anonymity is set.
    pub k: Option<u64>,
    /// The CSV file, when written.
    pub csv: Option<FileDigest>,
    /// The JSON file, when written.
    pub json: Option<FileDigest>,
}

/// What was done to one field, counted over the published records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FieldReport {
    /// The field.
    pub name: String,
    /// Its action.
    pub action: FieldAction,
    /// Values published differently from the source (for `drop`: non-empty values left out).
    pub changed: u64,
    /// Values published empty because a `generalize` or `dateShift` field could not parse them.
    pub blanked: u64,
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} of {} records published",
            self.rows_written, self.rows_read
        )?;
        if let Some(k) = self.k {
            write!(
                f,
                ", {} suppressed in {} groups below k = {k}",
                self.rows_suppressed, self.groups_suppressed
            )?;
        }
        if let Some(smallest) = self.smallest_group {
            write!(f, ", smallest group {smallest} of {} groups", self.groups)?;
        }
        let blanked: Vec<String> = self
            .fields
            .iter()
            .filter(|r| r.blanked > 0)
            .map(|r| format!("{} {}", r.name, r.blanked))
            .collect();
        if !blanked.is_empty() {
            write!(f, ", unparseable values blanked: {}", blanked.join(", "))?;
        }
        Ok(())
    }
}

/// A group of records sharing their quasi-identifiers: its size from the first pass and the
/// records met so far in the second.
#[derive(Default)]
struct Group {
    count: u64,
    seen: u64,
}

/// A group's key: 128 bits of SHA-256 over its quasi-identifier values. A fixed-size key keeps the
/// memory per group at a few dozen bytes whatever the values; 128 bits make a collision (which
/// would merge two groups) out of reach.
type GroupKey = u128;

/// The buffers of one record, reused for every record so that a run allocates per field, not
/// per value.
struct Work {
    record: csv::StringRecord,
    /// The published value of each declared field.
    values: Vec<String>,
    /// Whether each declared field's value was blanked as unparseable.
    blanked: Vec<bool>,
    scratch: Vec<u8>,
}

/// Bytes the CSV reader gathers from the source per read.
const READ_BUFFER: usize = 64 * 1024;

impl Plan {
    /// Reads the CSV source (UTF-8, a header row naming the columns; columns not declared are
    /// ignored), de-identifies every record and writes the published ones to `outputs`.
    ///
    /// `open` opens the source from its start; it is called twice when k-anonymity is set: the
    /// first pass counts the groups of quasi-identifiers, the second writes, leaving out the
    /// records of groups below k when `suppressRareGroups` allows and refusing otherwise. The
    /// second pass checks that it read the same groups as the first.
    ///
    /// Memory: records are read and written one at a time through fixed buffers, so it does not
    /// grow with the number of records, only with the longest record and, when quasi-identifiers
    /// are declared, with the number of distinct groups (about 50 bytes each).
    ///
    /// Refuses: `SourceFieldMissing`, `SourceMalformed`, `KAnonymityNotMet`,
    /// `SuppressionLimitExceeded`, `SourceChanged`.
    pub fn run<R: Read>(
        &self,
        mut open: impl FnMut() -> io::Result<R>,
        outputs: Outputs<'_>,
    ) -> Result<Report, RunError> {
        let mut work = Work {
            record: csv::StringRecord::new(),
            values: vec![String::new(); self.fields.len()],
            blanked: vec![false; self.fields.len()],
            scratch: Vec::new(),
        };

        // The first pass, when k-anonymity needs the group sizes before anything is written.
        let mut counted = None;
        if let Some(k) = self.k {
            let (rows, groups) = self.count_groups(open()?, &mut work)?;
            let (mut below, mut records_below, mut smallest) = (0, 0, u64::MAX);
            for group in groups.values() {
                smallest = smallest.min(group.count);
                if group.count < k.k {
                    below += 1;
                    records_below += group.count;
                }
            }
            if records_below > 0 && !k.suppress {
                return Err(Refusal::KAnonymityNotMet {
                    quasi_identifiers: self.quasi_names.clone(),
                    smallest,
                    k: k.k,
                    groups_below: below,
                    records_below,
                }
                .into());
            }
            if records_below * 100 > rows * MAX_SUPPRESSED_PERCENT {
                return Err(Refusal::SuppressionLimitExceeded {
                    quasi_identifiers: self.quasi_names.clone(),
                    k: k.k,
                    suppressed: records_below,
                    rows,
                }
                .into());
            }
            counted = Some((rows, groups));
        }

        let mut reader = reader(open()?);
        let columns = self.columns_of(&mut reader)?;
        let mut csv = outputs
            .csv
            .map(|w| CsvSink::new(w, self.columns()))
            .transpose()?;
        let mut json = outputs
            .json
            .map(|w| JsonSink::new(w, self.columns()))
            .transpose()?;
        let mut report = Report {
            fields: self
                .fields
                .iter()
                .map(|f| FieldReport {
                    name: f.name.clone(),
                    action: f.action,
                    changed: 0,
                    blanked: 0,
                })
                .collect(),
            rows_read: 0,
            rows_written: 0,
            rows_suppressed: 0,
            groups_suppressed: 0,
            groups: 0,
            smallest_group: None,
            k: self.k.map(|k| k.k),
            csv: None,
            json: None,
        };
        // Without k, the groups are only counted for the report, in this one pass.
        let mut groups = counted
            .as_mut()
            .map(|(_, groups)| std::mem::take(groups))
            .unwrap_or_default();

        // With k set, every record belongs to a group even when no quasi-identifier is
        // published (then all records make one group), as in the first pass.
        let grouping = self.k.is_some() || !self.quasi.is_empty();
        while reader.read_record(&mut work.record).map_err(source_error)? {
            report.rows_read += 1;
            self.transform(&self.published, &columns, &mut work);
            if grouping {
                let key = self.group_key(&work);
                let group = match (self.k, groups.entry(key)) {
                    (None, entry) => {
                        let group = entry.or_default();
                        group.count += 1;
                        group
                    }
                    (Some(_), Entry::Occupied(group)) => group.into_mut(),
                    (Some(_), Entry::Vacant(_)) => {
                        return Err(Refusal::SourceChanged {
                            problem: format!(
                                "record {} has quasi-identifiers the first pass did not see",
                                report.rows_read
                            ),
                        }
                        .into());
                    }
                };
                group.seen += 1;
                if let Some(k) = self.k
                    && group.count < k.k
                {
                    report.rows_suppressed += 1;
                    continue;
                }
            }
            let published = || self.published.iter().map(|&i| work.values[i].as_str());
            if let Some(csv) = csv.as_mut() {
                csv.write(published())?;
            }
            if let Some(json) = json.as_mut() {
                json.write(published())?;
            }
            report.rows_written += 1;
            for (i, field) in self.fields.iter().enumerate() {
                let source = &work.record[columns[i]];
                let changed = match field.rule {
                    Rule::Drop => !source.is_empty(),
                    _ => work.values[i] != source,
                };
                report.fields[i].changed += u64::from(changed);
                report.fields[i].blanked += u64::from(work.blanked[i]);
            }
        }

        if let Some((rows, _)) = counted {
            let changed = groups.values().any(|g| g.seen != g.count);
            if rows != report.rows_read || changed {
                return Err(Refusal::SourceChanged {
                    problem: format!(
                        "the first pass read {rows} records and the second {}{}",
                        report.rows_read,
                        if changed {
                            ", with different quasi-identifiers"
                        } else {
                            ""
                        }
                    ),
                }
                .into());
            }
        }
        let k = self.k.map_or(0, |k| k.k);
        for group in groups.values() {
            if group.count < k {
                report.groups_suppressed += 1;
            } else {
                report.groups += 1;
                report.smallest_group = Some(
                    report
                        .smallest_group
                        .map_or(group.count, |s| s.min(group.count)),
                );
            }
        }
        report.csv = csv.map(CsvSink::finish).transpose()?;
        report.json = json.map(JsonSink::finish).transpose()?;
        Ok(report)
    }

    /// The first pass: the number of records and the size of each group.
    fn count_groups<R: Read>(
        &self,
        source: R,
        work: &mut Work,
    ) -> Result<(u64, HashMap<GroupKey, Group>), RunError> {
        let mut reader = reader(source);
        let columns = self.columns_of(&mut reader)?;
        let mut groups: HashMap<GroupKey, Group> = HashMap::new();
        let mut rows = 0;
        while reader.read_record(&mut work.record).map_err(source_error)? {
            rows += 1;
            // Only the quasi-identifiers are needed here.
            self.transform(&self.quasi, &columns, work);
            groups.entry(self.group_key(work)).or_default().count += 1;
        }
        Ok((rows, groups))
    }

    /// The source column of each declared field, from the header.
    fn columns_of<R: Read>(&self, reader: &mut csv::Reader<R>) -> Result<Vec<usize>, RunError> {
        let header = reader.headers().map_err(source_error)?;
        let mut index: HashMap<&str, Option<usize>> = HashMap::new();
        for (i, name) in header.iter().enumerate() {
            // A UTF-8 byte-order mark, which spreadsheet programs write, is not part of the
            // first column's name.
            let name = if i == 0 {
                name.trim_start_matches('\u{feff}')
            } else {
                name
            };
            index
                .entry(name)
                .and_modify(|seen| *seen = None)
                .or_insert(Some(i));
        }
        self.fields
            .iter()
            .map(|field| match index.get(field.name.as_str()) {
                Some(Some(i)) => Ok(*i),
                Some(None) => Err(Refusal::SourceMalformed {
                    line: 1,
                    problem: format!("the header names column {} more than once", field.name),
                }
                .into()),
                None => Err(Refusal::SourceFieldMissing {
                    field: field.name.clone(),
                }
                .into()),
            })
            .collect()
    }

    /// Computes the published values of the fields `which` (indexes into the declared fields)
    /// from the record in `work`.
    fn transform(&self, which: &[usize], columns: &[usize], work: &mut Work) {
        let mut seed = None;
        for &i in which {
            let source = &work.record[columns[i]];
            let out = &mut work.values[i];
            out.clear();
            let parsed = match self.fields[i].rule {
                Rule::Keep => {
                    out.push_str(source);
                    true
                }
                Rule::Drop => true,
                Rule::Mask {
                    first,
                    last,
                    character,
                } => {
                    rules::mask(source, first, last, character, out);
                    true
                }
                Rule::Pseudonymize(algorithm) => {
                    if let Some(keys) = &self.keys {
                        keys.pseudonym(algorithm, source, &mut work.scratch, out);
                    }
                    true
                }
                Rule::GeneralizeDate(precision) => {
                    source.is_empty() || rules::generalize_date(source, precision, out)
                }
                Rule::GeneralizeRegion { prefix } => {
                    source.is_empty() || rules::generalize_region(source, prefix, out)
                }
                Rule::GeneralizeNumber { width } => {
                    source.is_empty() || rules::generalize_number(source, width, out)
                }
                Rule::DateShift { max_days } => {
                    let seed = *seed.get_or_insert_with(|| {
                        self.shift_seed(&work.record, columns, &mut work.scratch)
                    });
                    source.is_empty()
                        || rules::shift_date(source, rules::shift_days(seed, max_days), out)
                }
            };
            if !parsed {
                // Whatever a rule wrote before failing goes too: nothing of an unparseable
                // value is published.
                out.clear();
            }
            work.blanked[i] = !parsed;
        }
    }

    /// The record's date-shift seed: from the key and the record's subject, the source value of
    /// the first pseudonymized field (so that every record of one person moves by the same
    /// offset, keeping the intervals between their dates); without one, or with it empty, from
    /// all the record's declared source values (so that the record moves the same way on every
    /// publication while it is unchanged).
    fn shift_seed(
        &self,
        record: &csv::StringRecord,
        columns: &[usize],
        scratch: &mut Vec<u8>,
    ) -> u64 {
        let Some(keys) = &self.keys else {
            return 0;
        };
        if let Some(subject) = self.subject {
            rules::normalize(&record[columns[subject]], scratch);
            if !scratch.is_empty() {
                return keys.shift_seed([b"subject".as_slice(), scratch.as_slice()]);
            }
        }
        keys.shift_seed(
            std::iter::once(b"record".as_slice())
                .chain(columns.iter().map(|&c| record[c].as_bytes())),
        )
    }

    fn group_key(&self, work: &Work) -> GroupKey {
        let mut hasher = Sha256::new();
        for &i in &self.quasi {
            let value = work.values[i].as_bytes();
            hasher.update((value.len() as u64).to_le_bytes());
            hasher.update(value);
        }
        let digest = hasher.finalize();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        GroupKey::from_le_bytes(key)
    }
}

fn reader<R: Read>(source: R) -> csv::Reader<R> {
    csv::ReaderBuilder::new()
        .buffer_capacity(READ_BUFFER)
        .from_reader(source)
}

/// A CSV error as a refusal naming the line, or as the I/O error it is. csv's messages name
/// positions and lengths, never the content, so nothing of the source reaches a condition.
fn source_error(error: csv::Error) -> RunError {
    let line = error.position().map_or(0, |p| p.line());
    let problem = error.to_string();
    match error.into_kind() {
        csv::ErrorKind::Io(io) => RunError::Io(io),
        csv::ErrorKind::Utf8 { .. } => Refusal::SourceMalformed {
            line,
            problem: "the source is not UTF-8".to_owned(),
        }
        .into(),
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => Refusal::SourceMalformed {
            line,
            problem: format!("a record of {len} fields where the header has {expected_len}"),
        }
        .into(),
        _ => Refusal::SourceMalformed { line, problem }.into(),
    }
}
