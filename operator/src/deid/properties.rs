//! Property tests of de-identification over random tables: whatever the data and the settings,
//! a published version has every group of quasi-identifiers at least k records strong (and l
//! distinct sensitive values in each when asked), suppresses no more than its cap, and holds no
//! source identifier. The checks read the published CSV back and group it themselves.

use std::collections::{HashMap, HashSet};
use std::io::Read;

use govdc_crds::open_dataset::{DatasetField, KAnonymity};
use proptest::prelude::*;
use serde_json::json;

use super::identifiers::{is_legacy_resident_id, resident_check, upgrade_legacy};
use super::*;

const KEY: &[u8] = b"property tests key of 32 bytes!!";

/// One resident: an identity number (18-digit, or its legacy 15-digit form), a phone, an age,
/// a district, a sex and a diagnosis.
#[derive(Debug, Clone)]
struct Resident {
    id: String,
    phone: String,
    age: u32,
    district: &'static str,
    sex: &'static str,
    diagnosis: &'static str,
}

const DISTRICTS: [&str; 4] = ["330102", "330106", "330108", "110105"];
const DIAGNOSES: [&str; 4] = ["J45.9", "I10", "E11.9", "K29.7"];

fn resident() -> impl Strategy<Value = Resident> {
    (
        0usize..4,
        1940u32..2000,
        1u32..13,
        1u32..29,
        0u32..1000,
        any::<bool>(),
        0u64..1_000_000_000,
        0u32..90,
        0usize..2,
        0usize..4,
    )
        .prop_map(
            |(district, year, month, day, serial, legacy, phone, age, sex, diagnosis)| {
                let district = DISTRICTS[district];
                let id = if legacy {
                    format!("{district}{:02}{month:02}{day:02}{serial:03}", year % 100)
                } else {
                    let first = format!("{district}{year}{month:02}{day:02}{serial:03}");
                    let check = char::from(resident_check(first.as_bytes()));
                    format!("{first}{check}")
                };
                Resident {
                    id,
                    phone: format!("13{}{:08}", phone % 10, phone % 100_000_000),
                    age,
                    district,
                    sex: ["M", "F"][sex],
                    diagnosis: DIAGNOSES[diagnosis],
                }
            },
        )
}

fn table(residents: &[Resident]) -> String {
    let mut csv = String::from("id,phone,age,district,sex,diagnosis\n");
    for r in residents {
        csv.push_str(&format!(
            "{},{},{},{},{},{}\n",
            r.id, r.phone, r.age, r.district, r.sex, r.diagnosis
        ));
    }
    csv
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip of UTF-8");
    text
}

fn plan(k: i32, l: Option<i32>, cap: i32, band: i64, prefix: i32) -> Plan {
    let fields: Vec<DatasetField> = serde_json::from_value(json!([
        {"name": "id", "personal": true, "action": "pseudonymize"},
        {"name": "phone", "personal": true, "action": "mask", "mask": {"keepFirst": 3, "keepLast": 2}},
        {"name": "age", "action": "generalize", "generalize": {"numberBand": band}},
        {"name": "district", "action": "generalize", "generalize": {"regionPrefix": prefix}},
        {"name": "sex", "action": "keep"},
        {"name": "diagnosis", "action": "keep"},
    ]))
    .expect("fields");
    let quasi = ["age", "district", "sex"].map(str::to_owned);
    let sensitive = ["diagnosis".to_owned()];
    let k = KAnonymity {
        min_k: k,
        suppress_rare_groups: true,
        max_suppressed_percent: Some(cap),
        min_l: l,
    };
    Plan::new(&fields, &quasi, &sensitive, Some(&k), Some(KEY)).expect("a valid plan")
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn published_groups_reach_k_and_l_within_the_cap_and_no_identifier_is_published(
        residents in proptest::collection::vec(resident(), 1..400),
        k in 2i32..6,
        l in proptest::option::of(2i32..4),
        cap in 0i32..51,
        band in prop_oneof![Just(10i64), Just(30), Just(100)],
        prefix in 2i32..5,
    ) {
        let plan = plan(k, l, cap, band, prefix);
        let source = table(&residents);
        let mut csv = Vec::new();
        let result = plan.run(|| Ok(source.as_bytes()), Outputs { csv: Some(&mut csv), json: None });
        let report = match result {
            Ok(report) => report,
            Err(RunError::Refused(Refusal::SuppressionLimitExceeded { suppressed, rows, .. })) => {
                // Refused only when the cap really is exceeded.
                prop_assert!(suppressed * 100 > rows * u64::from(cap.unsigned_abs()));
                return Ok(());
            }
            Err(other) => return Err(TestCaseError::fail(format!("unexpected: {other}"))),
        };
        let published = gunzip(&csv);
        let mut lines = published.lines();
        prop_assert_eq!(lines.next(), Some("id,phone,age,district,sex,diagnosis"));
        let mut groups: HashMap<(String, String, String), (u64, HashSet<String>)> = HashMap::new();
        let source_ids: HashSet<String> = residents.iter().flat_map(|r| {
            let mut forms = vec![r.id.clone(), r.phone.clone()];
            if is_legacy_resident_id(r.id.as_bytes()) {
                let mut upgraded = Vec::new();
                upgrade_legacy(r.id.as_bytes(), &mut upgraded);
                forms.push(String::from_utf8(upgraded).expect("ASCII"));
            }
            forms
        }).collect();
        let mut rows = 0u64;
        for line in lines {
            let values: Vec<&str> = line.split(',').collect();
            prop_assert_eq!(values.len(), 6);
            for value in &values {
                prop_assert!(!source_ids.contains(*value), "a source identifier was published");
                for id in &source_ids {
                    prop_assert!(!value.contains(id.as_str()), "a source identifier inside a value");
                }
            }
            let group = groups
                .entry((values[2].to_owned(), values[3].to_owned(), values[4].to_owned()))
                .or_default();
            group.0 += 1;
            group.1.insert(values[5].to_owned());
            rows += 1;
        }
        prop_assert_eq!(rows, report.rows_written);
        prop_assert_eq!(report.rows_written + report.rows_suppressed, residents.len() as u64);
        prop_assert!(report.rows_suppressed * 100 <= residents.len() as u64 * u64::from(cap.unsigned_abs()));
        for (count, diagnoses) in groups.values() {
            prop_assert!(*count >= u64::from(k.unsigned_abs()), "a group of {} below k = {}", count, k);
            if let Some(l) = l {
                prop_assert!(diagnoses.len() >= usize::try_from(l).unwrap_or(0), "a group below l");
            }
        }
        if rows > 0 {
            let risk = report.risk.expect("a risk for published groups");
            prop_assert_eq!(risk.groups, groups.len() as u64);
            let smallest = groups.values().map(|g| g.0).min().unwrap_or(0);
            prop_assert_eq!(risk.smallest_group, smallest);
            prop_assert!((risk.highest_percent - 100.0 / smallest as f64).abs() < 1e-9);
        }
    }

    #[test]
    fn one_person_has_one_pseudonym_in_both_forms_of_their_number(
        residents in proptest::collection::vec(resident(), 1..50),
    ) {
        let fields: Vec<DatasetField> = serde_json::from_value(json!([
            {"name": "id", "personal": true, "action": "pseudonymize"},
            {"name": "masked", "personal": true, "action": "mask", "mask": {"keepFirst": 6, "keepLast": 1}},
        ])).expect("fields");
        let plan = Plan::new(&fields, &[], &[], None, Some(KEY)).expect("plan");
        let mut source = String::from("id,masked\n");
        for r in &residents {
            // Each person twice: as given, and in the other form when legacy.
            let mut upgraded = Vec::new();
            let full = if is_legacy_resident_id(r.id.as_bytes()) {
                upgrade_legacy(r.id.as_bytes(), &mut upgraded);
                String::from_utf8(upgraded).expect("ASCII")
            } else {
                r.id.clone()
            };
            source.push_str(&format!("{},{}\n{full},{full}\n", r.id, r.id));
        }
        let mut csv = Vec::new();
        plan.run(|| Ok(source.as_bytes()), Outputs { csv: Some(&mut csv), json: None })
            .expect("published");
        let published = gunzip(&csv);
        let lines: Vec<&str> = published.lines().skip(1).collect();
        prop_assert_eq!(lines.len(), residents.len() * 2);
        for pair in lines.chunks(2) {
            prop_assert_eq!(pair[0], pair[1], "one person, one pseudonym and one mask");
        }
    }

    #[test]
    fn an_identifier_in_free_text_refuses_the_version(
        before in "[a-z 诊断复查]{0,12}",
        after in "[a-z 。，]{0,12}",
        which in 0usize..7,
        resident in resident(),
    ) {
        let written = [
            resident.id.clone(),
            format!("+86 {} {} {}", &resident.phone[..3], &resident.phone[3..7], &resident.phone[7..]),
            format!("0086-{}", resident.phone),
            "6222 0212 3456 7890 128".to_owned(),
            "li.si@hospital.gov.cn".to_owned(),
            "E12345678".to_owned(),
            "C12345678".to_owned(),
        ][which].clone();
        // Separated from the text around it, as a person would write it.
        let note = format!("{before} {written} {after}");
        let fields: Vec<DatasetField> = serde_json::from_value(json!([
            {"name": "note", "action": "keep"},
        ])).expect("fields");
        let plan = Plan::new(&fields, &[], &[], None, None).expect("plan");
        let source = format!("note\n\"{note}\"\n");
        match plan.run(|| Ok(source.as_bytes()), Outputs::default()) {
            Err(RunError::Refused(Refusal::PersonalDataDetected { findings, .. })) => {
                prop_assert_eq!(findings.len(), 1);
                prop_assert_eq!(findings[0].records, 1);
                prop_assert!(!format!("{findings:?}").contains(&written), "a value in the finding");
            }
            other => return Err(TestCaseError::fail(format!("not refused: {other:?}"))),
        }
    }
}
