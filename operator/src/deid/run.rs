//! A run of a plan over a CSV source: one pass, or two when k-anonymity needs the group sizes
//! before anything is written.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::io::{self, Read, Write};

use govdc_crds::open_dataset::{FieldAction, SourceEncoding};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::decode::{Gb18030Reader, NotGb18030, is_gb18030};
use super::gate::{Finding, Gate};
use super::plan::{KRule, Plan};
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
#[derive(Debug, Clone, PartialEq, Serialize)]
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
    /// The l required, when l-diversity is set.
    pub l: Option<u64>,
    /// The re-identification risk of the published records; `None` without quasi-identifiers
    /// or published records.
    pub risk: Option<Risk>,
    /// Identifiers the content gate found in fields that declare them (published on purpose).
    pub declared_identifiers: Vec<Finding>,
}

/// The prosecutor re-identification risk of the published records, as ARX reports it: a
/// record's risk is 1 / the size of its group of quasi-identifiers.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Risk {
    /// Records in the smallest published group.
    pub smallest_group: u64,
    /// Published groups.
    pub groups: u64,
    /// The highest record risk, in percent (100 / the smallest group).
    pub highest_percent: f64,
    /// The average record risk, in percent (100 × groups / records).
    pub average_percent: f64,
    /// The threshold, in percent.
    pub threshold_percent: f64,
    /// Records whose risk is above the threshold.
    pub records_at_risk: u64,
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
/// records met so far in the second; with l-diversity, the distinct values of each sensitive
/// field met in the first pass (up to l, 64-bit hashes: a collision undercounts, which errs
/// towards refusing); and whether its records are left out.
#[derive(Default)]
struct Group {
    count: u64,
    seen: u64,
    distinct: Vec<Vec<u64>>,
    rare: bool,
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
    /// The source is read in the plan's encoding; a UTF-8 source that is not UTF-8 but reads
    /// as GB 18030 is refused with a message that names `spec.source.encoding`.
    ///
    /// Every published value passes the content gate: a field holding a personal identifier it
    /// does not declare refuses the run (`PersonalDataDetected`) once every record was scanned,
    /// so that the refusal counts them all.
    ///
    /// Refuses: `SourceFieldMissing`, `SourceMalformed`, `KAnonymityNotMet`,
    /// `LDiversityNotMet`, `SuppressionLimitExceeded`, `SourceChanged`, `PersonalDataDetected`.
    pub fn run<R: Read>(
        &self,
        mut open: impl FnMut() -> io::Result<R>,
        outputs: Outputs<'_>,
    ) -> Result<Report, RunError> {
        let result = self.run_decoded(&mut || open().map(|r| self.decoded(r)), outputs);
        match result {
            Err(RunError::Refused(Refusal::SourceMalformed { line, problem }))
                if problem == NOT_UTF8 && self.encoding == SourceEncoding::Utf8 =>
            {
                let problem = if is_gb18030(open()?) {
                    "the source is not UTF-8, but all of it reads as GB 18030 (GBK, GB2312): set spec.source.encoding to gb18030".to_owned()
                } else {
                    "the source is not UTF-8, nor GB 18030 (the other encoding spec.source.encoding offers)".to_owned()
                };
                Err(Refusal::SourceMalformed { line, problem }.into())
            }
            other => other,
        }
    }

    fn decoded<R: Read>(&self, source: R) -> Decoded<R> {
        match self.encoding {
            SourceEncoding::Utf8 => Decoded::Utf8(source),
            SourceEncoding::Gb18030 => Decoded::Gb18030(Box::new(Gb18030Reader::new(source))),
        }
    }

    fn run_decoded<R: Read>(
        &self,
        open: &mut dyn FnMut() -> io::Result<R>,
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
            let (rows, mut groups) = self.count_groups(open()?, &mut work, k)?;
            self.mark_rare(&mut groups, rows, k)?;
            counted = Some((rows, groups));
        }

        let mut reader = reader(open()?);
        let columns = self.columns_of(&mut reader)?;
        let mut csv = outputs
            .csv
            .map(|w| CsvSink::new(w, self.columns(), self.csv_bom))
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
            l: self.k.and_then(|k| k.l),
            csv: None,
            json: None,
            risk: None,
            declared_identifiers: Vec::new(),
        };
        let mut gate = Gate::new(self.published.iter().map(|&i| self.fields[i].declared));
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
                if group.rare {
                    report.rows_suppressed += 1;
                    continue;
                }
            }
            let published = || self.published.iter().map(|&i| work.values[i].as_str());
            if self.gated {
                gate.scan(published());
            }
            // Once the version is refused its files are thrown away: the rest of the records
            // are only scanned, so that the refusal counts every finding.
            if !gate.refused() {
                if let Some(csv) = csv.as_mut() {
                    csv.write(published())?;
                }
                if let Some(json) = json.as_mut() {
                    json.write(published())?;
                }
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
        let findings = gate.undeclared(self.columns());
        if !findings.is_empty() {
            return Err(Refusal::PersonalDataDetected {
                findings,
                rows: report.rows_written,
            }
            .into());
        }
        report.declared_identifiers = gate.declared(self.columns());
        let threshold = f64::from(self.risk_threshold_percent) / 100.0;
        let mut at_risk = 0;
        for group in groups.values() {
            if group.rare {
                report.groups_suppressed += 1;
            } else if group.count > 0 {
                report.groups += 1;
                report.smallest_group = Some(
                    report
                        .smallest_group
                        .map_or(group.count, |s| s.min(group.count)),
                );
                if 1.0 / group.count as f64 > threshold {
                    at_risk += group.count;
                }
            }
        }
        if let Some(smallest) = report.smallest_group
            && report.rows_written > 0
        {
            report.risk = Some(Risk {
                smallest_group: smallest,
                groups: report.groups,
                highest_percent: 100.0 / smallest as f64,
                average_percent: 100.0 * report.groups as f64 / report.rows_written as f64,
                threshold_percent: f64::from(self.risk_threshold_percent),
                records_at_risk: at_risk,
            });
        }
        report.csv = csv.map(CsvSink::finish).transpose()?;
        report.json = json.map(JsonSink::finish).transpose()?;
        Ok(report)
    }

    /// The first pass: the number of records and the size of each group (with l-diversity,
    /// the distinct sensitive values of each).
    fn count_groups<R: Read>(
        &self,
        source: R,
        work: &mut Work,
        k: KRule,
    ) -> Result<(u64, HashMap<GroupKey, Group>), RunError> {
        let mut reader = reader(source);
        let columns = self.columns_of(&mut reader)?;
        let mut groups: HashMap<GroupKey, Group> = HashMap::new();
        let mut rows = 0;
        // Only the quasi-identifiers are needed here, and the sensitive fields for l.
        let l = k.l.and_then(|l| usize::try_from(l).ok());
        let mut needed = self.quasi.clone();
        if l.is_some() {
            needed.extend(&self.sensitive);
        }
        while reader.read_record(&mut work.record).map_err(source_error)? {
            rows += 1;
            self.transform(&needed, &columns, work);
            let group = groups.entry(self.group_key(work)).or_default();
            group.count += 1;
            if let Some(l) = l {
                if group.distinct.is_empty() {
                    group.distinct = vec![Vec::new(); self.sensitive.len()];
                }
                for (distinct, &i) in group.distinct.iter_mut().zip(&self.sensitive) {
                    if distinct.len() < l {
                        let hash = value_hash(&work.values[i]);
                        if !distinct.contains(&hash) {
                            distinct.push(hash);
                        }
                    }
                }
            }
        }
        Ok((rows, groups))
    }

    /// Marks the groups whose records are left out (fewer than k records, fewer than l distinct
    /// values of a sensitive field), or refuses: without suppression, or past its cap.
    fn mark_rare(
        &self,
        groups: &mut HashMap<GroupKey, Group>,
        rows: u64,
        k: KRule,
    ) -> Result<(), Refusal> {
        let (mut k_groups, mut k_records, mut smallest) = (0, 0, u64::MAX);
        let (mut l_groups, mut l_records) = (0, 0);
        // The first sensitive field below l, and the fewest distinct values of it.
        let mut least: Option<(usize, u64)> = None;
        let mut suppressed = 0;
        for group in groups.values_mut() {
            smallest = smallest.min(group.count);
            let below_k = group.count < k.k;
            if below_k {
                k_groups += 1;
                k_records += group.count;
            }
            let mut below_l = false;
            if let Some(l) = k.l {
                for (field, distinct) in group.distinct.iter().enumerate() {
                    let n = distinct.len() as u64;
                    if n < l {
                        below_l = true;
                        least = Some(match least {
                            Some((f, m)) if f < field => (f, m),
                            Some((f, m)) if f == field => (f, m.min(n)),
                            _ => (field, n),
                        });
                    }
                }
                if below_l {
                    l_groups += 1;
                    l_records += group.count;
                }
            }
            group.rare = below_k || below_l;
            if group.rare {
                suppressed += group.count;
            }
            // The values are not needed past the first pass.
            group.distinct = Vec::new();
        }
        if k_records > 0 && !k.suppress {
            return Err(Refusal::KAnonymityNotMet {
                quasi_identifiers: self.quasi_names.clone(),
                smallest,
                k: k.k,
                groups_below: k_groups,
                records_below: k_records,
            });
        }
        if let (Some((field, least)), Some(l), false) = (least, k.l, k.suppress) {
            return Err(Refusal::LDiversityNotMet {
                quasi_identifiers: self.quasi_names.clone(),
                field: self.fields[self.sensitive[field]].name.clone(),
                least,
                l,
                groups_below: l_groups,
                records_below: l_records,
            });
        }
        if suppressed * 100 > rows * k.max_suppressed_percent {
            return Err(Refusal::SuppressionLimitExceeded {
                quasi_identifiers: self.quasi_names.clone(),
                requirement: match k.l {
                    Some(l) => format!("k = {} and l = {l}", k.k),
                    None => format!("k = {}", k.k),
                },
                max_percent: k.max_suppressed_percent,
                suppressed,
                rows,
            });
        }
        Ok(())
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
                    // A legacy 15-digit identity number is masked in its 18-digit form, so
                    // that one person's two numbers are masked alike.
                    if rules::upgrade_identity(source, &mut work.scratch) {
                        let upgraded = std::str::from_utf8(&work.scratch).unwrap_or(source);
                        rules::mask(upgraded, first, last, character, out);
                    } else {
                        rules::mask(source, first, last, character, out);
                    }
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

/// The problem of a source that is not UTF-8, before [`Plan::run`] looks at whether it is
/// GB 18030.
const NOT_UTF8: &str = "the source is not UTF-8";

/// A source as read: UTF-8 as it is, or GB 18030 decoded to UTF-8.
enum Decoded<R> {
    Utf8(R),
    Gb18030(Box<Gb18030Reader<R>>),
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Decoded::Utf8(r) => r.read(buf),
            Decoded::Gb18030(r) => r.read(buf),
        }
    }
}

/// 64 bits of SHA-256 of a sensitive value, for counting distinct values without keeping them.
fn value_hash(value: &str) -> u64 {
    let digest = Sha256::digest(value.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
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
        csv::ErrorKind::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<NotGb18030>()) {
            Some(not) => Refusal::SourceMalformed {
                line,
                problem: format!("{not}, although spec.source.encoding is gb18030"),
            }
            .into(),
            None => RunError::Io(io),
        },
        csv::ErrorKind::Utf8 { .. } => Refusal::SourceMalformed {
            line,
            problem: NOT_UTF8.to_owned(),
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
