//! The CSV source reader and the de-identification run: `govdc_operator::deid::Plan::run`.
//!
//! Input: 18 bytes choosing the plan (see `plan`), then the CSV source. Six fields are
//! declared (`id`, `phone`, `name`, `birth`, `district`, `age`), each with an action, its
//! settings, `personal` and `declaredIdentifiers` taken from the bytes; k-anonymity, l-diversity,
//! the encoding and the byte-order mark likewise. Plans the operator refuses end the input.
//!
//! Checks, on a run that publishes:
//! - both files are gzip; the CSV reads back with the plan's columns and `rowsWritten` records
//!   (after a byte-order mark when asked for), the JSON is an array of as many objects, and the
//!   two hold the same values;
//! - `rowsRead = rowsWritten + rowsSuppressed`;
//! - every published value holds only identifier kinds its field declares (the content gate);
//! - no identifier found in a `personal` field's source value (which the rule de-identifies)
//!   appears anywhere in either file, unless that field declares its kinds or the same text
//!   also stands in a field that publishes it (not personal, or declaring its kinds);
//! - a `pseudonymize` value is 64 lower-case hex digits (empty for an empty source value), and
//!   a `mask` value keeps its length in characters with no more than `keepFirst + keepLast` of
//!   them unmasked.
//!
//! A run that refuses must say why with a reason (never a panic), and an I/O error cannot
//! happen on bytes in memory.
#![no_main]

use std::io::Read;

use govdc_crds::open_dataset::{DatasetField, IdentifierKind, KAnonymity, SourceEncoding};
use govdc_operator::deid::identifiers::{KINDS, Kinds, scan};
use govdc_operator::deid::{Gb18030Reader, Outputs, Plan, RunError};
use libfuzzer_sys::fuzz_target;
use serde_json::{Value, json};

const KEY: &[u8] = b"fuzzing key, 32 bytes of secret!";
const NAMES: [&str; 6] = ["id", "phone", "name", "birth", "district", "age"];
const PLAN_BYTES: usize = 6 + 2 * NAMES.len();

/// One declared field as the bytes choose it, with what the checks need to know of it.
struct Field {
    spec: Value,
    personal: bool,
    declared: Kinds,
    /// `(keepFirst, keepLast)` of a mask.
    mask: Option<(usize, usize)>,
    pseudonymized: bool,
}

fn field(name: &str, how: u8, setting: u8) -> Field {
    let personal = how & 0x08 != 0;
    let declared_kinds: Vec<IdentifierKind> = KINDS
        .iter()
        .enumerate()
        .filter(|(i, _)| how & 0x10 != 0 && setting & (1 << i) != 0)
        .map(|(_, k)| *k)
        .collect();
    let mut spec = json!({ "name": name, "personal": personal });
    let mut mask = None;
    match how % 6 {
        0 => spec["action"] = json!("keep"),
        1 => spec["action"] = json!("drop"),
        2 => {
            let (first, last) = (usize::from(setting % 5), usize::from((setting / 5) % 4));
            let character = ["*", "#", "x", "×"][usize::from(setting >> 6)];
            spec["action"] = json!("mask");
            spec["mask"] = json!({ "keepFirst": first, "keepLast": last, "character": character });
            mask = Some((first, last));
        }
        3 => {
            spec["action"] = json!("pseudonymize");
            spec["pseudonymize"] =
                json!({ "algorithm": if setting & 1 == 0 { "hmac-sha256" } else { "hmac-sm3" } });
        }
        4 => {
            spec["action"] = json!("generalize");
            spec["generalize"] = match setting % 3 {
                0 => json!({ "date": if setting & 4 == 0 { "year" } else { "month" } }),
                1 => json!({ "regionPrefix": 1 + (setting / 3) % 5 }),
                _ => {
                    let band = [1, 2, 5, 10, 100, 1000][usize::from(setting / 3) % 6];
                    json!({ "numberBand": band })
                }
            };
        }
        _ => {
            spec["action"] = json!("dateShift");
            spec["dateShift"] = json!({ "maxDays": 1 + u32::from(setting) * 7 });
        }
    }
    if !declared_kinds.is_empty() {
        spec["declaredIdentifiers"] =
            json!({ "kinds": declared_kinds, "justification": "fuzzing" });
    }
    Field {
        pseudonymized: how % 6 == 3,
        declared: declared_kinds.iter().copied().collect(),
        spec,
        personal,
        mask,
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .unwrap_or_else(|e| panic!("a published file is not gzip of UTF-8: {e}"));
    text
}

fn rows(text: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader
        .headers()
        .unwrap_or_else(|e| panic!("the published CSV has no header: {e}"))
        .iter()
        .map(str::to_owned)
        .collect();
    let records = reader
        .records()
        .map(|r| {
            r.unwrap_or_else(|e| panic!("the published CSV does not read back: {e}"))
                .iter()
                .map(str::to_owned)
                .collect()
        })
        .collect();
    (header, records)
}

/// The header and records of a UTF-8 source, each field decoded on its own; None when one does
/// not decode or the CSV does not read.
fn utf8_rows(source: &[u8]) -> Option<(Vec<String>, Vec<Vec<String>>)> {
    let mut bytes = source;
    while let Some(rest) = bytes.strip_prefix("\u{feff}".as_bytes()) {
        bytes = rest;
    }
    let text = |field: &[u8]| String::from_utf8(field.to_vec()).ok();
    let mut reader = csv::Reader::from_reader(bytes);
    let header = reader
        .byte_headers()
        .ok()?
        .iter()
        .map(text)
        .collect::<Option<_>>()?;
    let records = reader
        .byte_records()
        .map(|record| record.ok()?.iter().map(text).collect::<Option<_>>())
        .collect::<Option<_>>()?;
    Some((header, records))
}

fuzz_target!(|data: &[u8]| {
    if data.len() < PLAN_BYTES {
        return;
    }
    let (choice, source) = data.split_at(PLAN_BYTES);
    let flags = choice[0];
    let fields: Vec<Field> = NAMES
        .iter()
        .enumerate()
        .map(|(i, name)| field(name, choice[6 + 2 * i], choice[7 + 2 * i]))
        .collect();
    let pick = |mask: u8| -> Vec<String> {
        NAMES
            .iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, n)| (*n).to_owned())
            .collect()
    };
    let quasi = pick(choice[3]);
    let sensitive = pick(choice[4] & !choice[3]);
    let k = (flags & 0x04 != 0).then(|| KAnonymity {
        min_k: 2 + i32::from(choice[1] % 4),
        suppress_rare_groups: flags & 0x08 != 0,
        max_suppressed_percent: Some(i32::from(choice[2] % 51)),
        min_l: (flags & 0x10 != 0).then(|| 2 + i32::from(choice[5] % 2)),
    });
    let declared: Vec<DatasetField> = match fields
        .iter()
        .map(|f| serde_json::from_value(f.spec.clone()))
        .collect()
    {
        Ok(declared) => declared,
        Err(e) => panic!("the target built a field the CRD type does not read: {e}"),
    };
    let encoding = if flags & 0x01 != 0 {
        SourceEncoding::Gb18030
    } else {
        SourceEncoding::Utf8
    };
    let bom = flags & 0x02 != 0;
    let Ok(plan) = Plan::new(&declared, &quasi, &sensitive, k.as_ref(), Some(KEY)) else {
        return;
    };
    let plan = plan.with_encoding(encoding).with_csv_byte_order_mark(bom);

    let (mut csv_out, mut json_out) = (Vec::new(), Vec::new());
    let result = plan.run(
        || Ok(source),
        Outputs {
            csv: Some(&mut csv_out),
            json: Some(&mut json_out),
        },
    );
    let report = match result {
        Ok(report) => report,
        Err(RunError::Refused(refusal)) => {
            assert!(!refusal.reason().is_empty());
            return;
        }
        Err(RunError::Io(e)) => panic!("an I/O error reading bytes in memory: {e}"),
    };

    // The files.
    let csv_text = gunzip(&csv_out);
    let csv_text = match csv_text.strip_prefix('\u{feff}') {
        Some(rest) => {
            assert!(bom, "a byte-order mark that was not asked for");
            rest
        }
        None => {
            assert!(!bom, "the byte-order mark asked for is missing");
            &csv_text
        }
    };
    let columns: Vec<String> = plan.columns().map(str::to_owned).collect();
    let (header, published) = rows(csv_text);
    assert_eq!(header, columns);
    assert_eq!(published.len() as u64, report.rows_written);
    assert_eq!(
        report.rows_read,
        report.rows_written + report.rows_suppressed,
        "{report:?}"
    );
    let json_text = gunzip(&json_out);
    let json: Vec<serde_json::Map<String, Value>> = serde_json::from_str(&json_text)
        .unwrap_or_else(|e| panic!("the published JSON is not an array of objects: {e}"));
    assert_eq!(json.len(), published.len());
    for (object, row) in json.iter().zip(&published) {
        let values: Vec<&str> = columns
            .iter()
            .map(|c| {
                object
                    .get(c)
                    .and_then(Value::as_str)
                    .unwrap_or("\u{0}missing")
            })
            .collect();
        assert_eq!(values, row.iter().map(String::as_str).collect::<Vec<_>>());
    }

    // Each published value: the gate, pseudonyms, masks.
    let by_name = |name: &str| NAMES.iter().position(|n| *n == name).map(|i| &fields[i]);
    for row in &published {
        for (column, value) in columns.iter().zip(row) {
            let Some(f) = by_name(column) else {
                panic!("published column {column} was not declared");
            };
            let found = scan(value);
            assert!(
                found.without(f.declared).is_empty(),
                "{column} published {value:?}, holding {found:?} it does not declare"
            );
            if f.pseudonymized && !value.is_empty() {
                assert!(
                    value.len() == 64
                        && value
                            .bytes()
                            .all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                    "{column}'s pseudonym {value:?} is not 64 hex digits"
                );
            }
            if let Some((first, last)) = f.mask {
                let unmasked = value
                    .chars()
                    .filter(|c| !['*', '#', 'x', '×'].contains(c))
                    .count();
                assert!(
                    unmasked <= first + last,
                    "{column}'s mask {value:?} shows {unmasked} characters, more than {first}+{last}"
                );
            }
        }
    }

    // No identifier of a personal field's source value is published (unless declared, or it
    // stands in a field that is not personal, where it is published as that field's own).
    // Decoded as the operator decodes it: GB 18030 as a stream before the CSV is split, UTF-8
    // field by field after it (csv's StringRecord), so a UTF-8 sequence that a closing quote
    // splits in two is whole again in its field (a fuzzing finding of a wrong check, not of
    // the operator: nothing but valid UTF-8 values is scanned or published).
    let source_rows = match encoding {
        SourceEncoding::Utf8 => utf8_rows(source),
        SourceEncoding::Gb18030 => {
            let mut text = String::new();
            Gb18030Reader::new(source)
                .read_to_string(&mut text)
                .ok()
                .map(|_| rows(text.trim_start_matches('\u{feff}')))
        }
    };
    let Some((source_header, source_rows)) = source_rows else {
        panic!("a source that does not decode was published");
    };
    let mut open = Vec::new();
    let mut secret = Vec::new();
    for record in &source_rows {
        for (name, value) in source_header.iter().zip(record) {
            match by_name(name) {
                Some(f) if f.personal => {
                    let value = value.trim();
                    let kinds = scan(value);
                    if !kinds.is_empty() && !kinds.without(f.declared).is_empty() {
                        secret.push(value.to_owned());
                    } else {
                        // Declared: published on purpose, by this field.
                        open.push(value.to_owned());
                    }
                }
                _ => open.push(value.clone()),
            }
        }
    }
    for value in secret {
        if open.iter().any(|o| o.contains(&value)) {
            continue;
        }
        assert!(
            !csv_text.contains(&value),
            "the personal identifier {value:?} is in the published CSV"
        );
        assert!(
            !json_text.contains(&value),
            "the personal identifier {value:?} is in the published JSON"
        );
    }
});
