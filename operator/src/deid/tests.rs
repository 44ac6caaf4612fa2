//! Fixture tests of runs: every rule end to end, every refusal, and a scan of de-identified
//! personal data for identifiers left in the clear.

use std::collections::HashSet;
use std::io::{self, Read};

use flate2::read::GzDecoder;
use govdc_crds::open_dataset::{DatasetField, IdentifierKind, KAnonymity};
use govdc_crds::validation::resident_id;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::*;

const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

fn fields(value: Value) -> Vec<DatasetField> {
    serde_json::from_value(value).expect("fixture fields")
}

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

fn k(min_k: i32, suppress: bool) -> KAnonymity {
    KAnonymity {
        min_k,
        suppress_rare_groups: suppress,
        max_suppressed_percent: None,
        min_l: None,
    }
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("gzip of UTF-8");
    text
}

/// Runs `plan` over `source`, returning the report and the decompressed CSV and JSON.
fn run(plan: &Plan, source: &str) -> Result<(Report, String, Value), RunError> {
    let (mut csv, mut json) = (Vec::new(), Vec::new());
    let report = plan.run(
        || Ok(source.as_bytes()),
        Outputs {
            csv: Some(&mut csv),
            json: Some(&mut json),
        },
    )?;
    for (digest, bytes) in [(&report.csv, &csv), (&report.json, &json)] {
        let digest = digest.as_ref().expect("a digest for each file written");
        assert_eq!(digest.bytes, bytes.len() as u64);
        assert_eq!(digest.sha256, format!("{:x}", Sha256::digest(bytes)));
    }
    let json: Value = serde_json::from_str(&gunzip(&json)).expect("the JSON file parses");
    Ok((report, gunzip(&csv), json))
}

fn refusal(result: Result<Plan, Refusal>) -> Refusal {
    result.expect_err("refused")
}

fn run_refusal(plan: &Plan, source: &str) -> Refusal {
    match run(plan, source) {
        Err(RunError::Refused(refusal)) => refusal,
        Err(other) => panic!("not a refusal: {other}"),
        Ok((report, _, _)) => panic!("published: {report}"),
    }
}

#[test]
fn every_rule_end_to_end() {
    let plan = Plan::new(
        &fields(json!([
            {"name": "name", "personal": true, "action": "mask", "mask": {"keepFirst": 1}},
            {"name": "id", "personal": true, "action": "pseudonymize"},
            {"name": "id_sm3", "personal": true, "action": "pseudonymize", "pseudonymize": {"algorithm": "hmac-sm3"}},
            {"name": "phone", "personal": true, "action": "drop"},
            {"name": "born", "personal": true, "action": "generalize", "generalize": {"date": "month"}},
            {"name": "region", "action": "generalize", "generalize": {"regionPrefix": 2}},
            {"name": "age", "action": "generalize", "generalize": {"numberBand": 10}},
            {"name": "visit", "action": "dateShift", "dateShift": {"maxDays": 10}},
            {"name": "note", "action": "keep"},
        ])),
        &[], &[],
        None,
        Some(KEY),
    )
    .expect("a valid plan");
    assert_eq!(
        plan.columns().collect::<Vec<_>>(),
        [
            "name", "id", "id_sm3", "born", "region", "age", "visit", "note"
        ]
    );
    // A byte-order mark, an undeclared column (secret) and columns in another order than declared.
    let source = "\u{feff}note,secret,id,id_sm3,name,phone,born,region,age,visit\n\
        \"a, \"\"quoted\"\" note\",s1,11010519491231002X,11010519491231002X,欧阳修,13812348000,1949-12-31,110105,35,2024-01-15\n\
        ,s2,11010519491231002x,,张三,13912348000,not a date,11010,abc,2024-02-30\n";
    let (report, csv, json) = run(&plan, source).expect("published");

    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("name,id,id_sm3,born,region,age,visit,note")
    );
    let first: Vec<&str> = lines.next().expect("a first record").split(',').collect();
    assert_eq!(first[0], "欧**");
    assert_eq!(first[1].len(), 64);
    assert_ne!(first[1], first[2], "SM3 and SHA-256 pseudonyms differ");
    assert_eq!(&first[3..6], ["1949-12", "110000", "30-39"]);
    let visit = rules::parse_date(first[6]).expect("a shifted date");
    let moved = visit
        .since(rules::parse_date("2024-01-15").expect("date"))
        .expect("span")
        .get_days();
    assert!((-10..=10).contains(&moved) && moved != 0, "{moved}");
    assert!(csv.contains("\"a, \"\"quoted\"\" note\""));
    assert!(!csv.contains("s1") && !csv.contains("1381234"));

    let records = json.as_array().expect("an array");
    assert_eq!(records.len(), 2);
    assert_eq!(records[0]["note"], "a, \"quoted\" note");
    assert_eq!(records[0]["id"], first[1]);
    assert_eq!(
        records[1]["id"], first[1],
        "the same identity number gets the same pseudonym"
    );
    assert_eq!(records[1]["id_sm3"], "", "empty stays empty");
    assert_eq!(records[1]["name"], "张*");
    for blank in ["born", "region", "age", "visit"] {
        assert_eq!(records[1][blank], "", "unparseable {blank} is blanked");
    }
    assert!(records[0].get("phone").is_none() && records[0].get("secret").is_none());

    assert_eq!((report.rows_read, report.rows_written), (2, 2));
    assert_eq!(
        (report.rows_suppressed, report.k, report.smallest_group),
        (0, None, None)
    );
    let by_name = |n: &str| {
        report
            .fields
            .iter()
            .find(|f| f.name == n)
            .map(|f| (f.changed, f.blanked))
    };
    assert_eq!(by_name("name"), Some((2, 0)));
    assert_eq!(by_name("id_sm3"), Some((1, 0)));
    assert_eq!(by_name("phone"), Some((2, 0)));
    assert_eq!(by_name("born"), Some((2, 1)));
    assert_eq!(by_name("region"), Some((2, 1)));
    assert_eq!(by_name("note"), Some((0, 0)));
    assert!(report.to_string().contains("born 1"), "{report}");

    // The same source and key make the same files, byte for byte.
    let (again, _, _) = run(&plan, source).expect("published");
    assert_eq!(again.csv, report.csv);
    assert_eq!(again.json, report.json);
}

#[test]
fn date_shift_moves_all_dates_of_a_subject_together() {
    let plan = Plan::new(
        &fields(json!([
            {"name": "patient", "personal": true, "action": "pseudonymize"},
            {"name": "admitted", "action": "dateShift", "dateShift": {"maxDays": 365}},
            {"name": "discharged", "action": "dateShift", "dateShift": {"maxDays": 365}},
        ])),
        &[],
        &[],
        None,
        Some(KEY),
    )
    .expect("a valid plan");
    let mut source = String::from("patient,admitted,discharged\n");
    for p in 0..50 {
        source.push_str(&format!(
            "P{p},2024-01-01,2024-01-11\nP{p},2024-03-01,2024-03-04\n"
        ));
    }
    let (_, _, json) = run(&plan, &source).expect("published");
    let date = |v: &Value| rules::parse_date(v.as_str().unwrap_or_default()).expect("a date");
    let mut offsets = HashSet::new();
    for pair in json.as_array().expect("an array").chunks(2) {
        let (a, b) = (&pair[0], &pair[1]);
        assert_eq!(a["patient"], b["patient"]);
        let span = |x: &Value, y: &Value| date(y).since(date(x)).expect("span").get_days();
        // Intervals within and across the subject's records survive.
        assert_eq!(span(&a["admitted"], &a["discharged"]), 10);
        assert_eq!(span(&b["admitted"], &b["discharged"]), 3);
        assert_eq!(span(&a["admitted"], &b["admitted"]), 60);
        offsets.insert(
            date(&a["admitted"])
                .since(rules::parse_date("2024-01-01").expect("date"))
                .expect("span")
                .get_days(),
        );
    }
    assert!(
        offsets.len() > 40,
        "subjects get different offsets: {offsets:?}"
    );
}

#[test]
fn k_anonymity_refuses_or_suppresses_rare_groups() {
    let declared = fields(json!([
        {"name": "born", "action": "generalize", "generalize": {"date": "year"}},
        {"name": "region", "action": "generalize", "generalize": {"regionPrefix": 4}},
        {"name": "value", "action": "keep"},
    ]));
    let quasi = names(&["born", "region"]);
    // 60 records in 3 groups of 20 (years 1980-1982, city 3301), and one group of 2.
    let mut source = String::from("born,region,value\n");
    for i in 0..60 {
        source.push_str(&format!(
            "198{}-0{}-1{},33010{},{i}\n",
            i % 3,
            i % 9 + 1,
            i % 10,
            i % 7
        ));
    }
    source.push_str("1931-05-05,330106,rare\n1931-07-07,330108,rare\n");

    let strict = Plan::new(&declared, &quasi, &[], Some(&k(5, false)), None).expect("a valid plan");
    let refused = run_refusal(&strict, &source);
    assert_eq!(refused.reason(), "KAnonymityNotMet");
    assert_eq!(
        refused,
        Refusal::KAnonymityNotMet {
            quasi_identifiers: "born, region".to_owned(),
            smallest: 2,
            k: 5,
            groups_below: 1,
            records_below: 2,
        }
    );
    assert!(refused.to_string().contains("has 2 records, below k = 5"));

    let suppressing =
        Plan::new(&declared, &quasi, &[], Some(&k(5, true)), None).expect("a valid plan");
    let (report, csv, _) = run(&suppressing, &source).expect("published");
    assert_eq!(
        (
            report.rows_read,
            report.rows_written,
            report.rows_suppressed
        ),
        (62, 60, 2)
    );
    assert_eq!(
        (
            report.groups,
            report.groups_suppressed,
            report.smallest_group,
            report.k
        ),
        (3, 1, Some(20), Some(5))
    );
    assert!(!csv.contains("rare") && !csv.contains("1931"));

    // Suppressing 2 of 22 records is more than 5%.
    let small: String =
        source
            .lines()
            .take(21)
            .chain(source.lines().skip(61))
            .fold(String::new(), |mut s, l| {
                s.push_str(l);
                s.push('\n');
                s
            });
    let refused = run_refusal(&suppressing, &small);
    assert_eq!(refused.reason(), "SuppressionLimitExceeded");
    assert!(
        refused.to_string().contains("suppress 2 of 22 records"),
        "{refused}"
    );

    // Without k, the groups are reported, not enforced.
    let reporting = Plan::new(&declared, &quasi, &[], None, None).expect("a valid plan");
    let (report, _, _) = run(&reporting, &source).expect("published");
    assert_eq!((report.groups, report.smallest_group), (4, Some(2)));
}

#[test]
fn a_source_that_changes_between_passes_is_refused() {
    let plan = Plan::new(
        &fields(json!([{"name": "born", "action": "generalize", "generalize": {"date": "year"}}])),
        &names(&["born"]),
        &[],
        Some(&k(2, false)),
        None,
    )
    .expect("a valid plan");
    let sources = [
        "born\n1980-01-01\n1980-02-02\n",
        "born\n1980-01-01\n1990-02-02\n",
    ];
    let mut calls = 0;
    let mut csv = Vec::new();
    let result = plan.run(
        || {
            calls += 1;
            Ok(sources[calls - 1].as_bytes())
        },
        Outputs {
            csv: Some(&mut csv),
            json: None,
        },
    );
    match result {
        Err(RunError::Refused(refusal)) => assert_eq!(refusal.reason(), "SourceChanged"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn plans_refuse_what_must_not_be_published() {
    let plan = |f: Value, quasi: &[&str], k: Option<KAnonymity>, key: Option<&[u8]>| {
        refusal(Plan::new(&fields(f), &names(quasi), &[], k.as_ref(), key))
    };
    let kept = plan(
        json!([{"name": "id", "personal": true, "action": "keep"}]),
        &[],
        None,
        None,
    );
    assert_eq!(kept.reason(), "PersonalFieldInClear");
    assert!(kept.to_string().contains("spec.fields[id]"));

    for action in [
        json!({"action": "pseudonymize"}),
        json!({"action": "dateShift", "dateShift": {"maxDays": 5}}),
    ] {
        let mut field = json!({"name": "x"});
        field
            .as_object_mut()
            .expect("object")
            .extend(action.as_object().expect("object").clone());
        let missing = plan(json!([field]), &[], None, None);
        assert_eq!(missing.reason(), "PseudonymKeyMissing");
        assert!(missing.to_string().contains("field x"), "{missing}");
    }
    assert_eq!(
        plan(
            json!([{"name": "x", "action": "pseudonymize"}]),
            &[],
            None,
            Some(b"short")
        )
        .reason(),
        "PseudonymKeyTooShort"
    );
    // A key nobody needs is fine, whatever its length.
    assert!(
        Plan::new(
            &fields(json!([{"name": "x", "action": "keep"}])),
            &[],
            &[],
            None,
            Some(b"")
        )
        .is_ok()
    );

    for (field, problem) in [
        (
            json!({"name": "x", "action": "mask"}),
            "action mask needs mask settings",
        ),
        (
            json!({"name": "x", "action": "keep", "mask": {"keepFirst": 1}}),
            "mask settings are given but the action is keep",
        ),
        (
            json!({"name": "x", "action": "mask", "mask": {"keepFirst": -1}}),
            "mask.keepFirst -1",
        ),
        (
            json!({"name": "x", "action": "mask", "mask": {"character": "**"}}),
            "not one character",
        ),
        (
            json!({"name": "x", "action": "generalize", "generalize": {}}),
            "exactly one of",
        ),
        (
            json!({"name": "x", "action": "generalize", "generalize": {"date": "year", "numberBand": 5}}),
            "exactly one of",
        ),
        (
            json!({"name": "x", "action": "generalize", "generalize": {"regionPrefix": 6}}),
            "regionPrefix 6",
        ),
        (
            json!({"name": "x", "action": "generalize", "generalize": {"numberBand": 0}}),
            "numberBand 0",
        ),
        (
            json!({"name": "x", "action": "dateShift", "dateShift": {"maxDays": 0}}),
            "maxDays 0",
        ),
        (
            json!({"name": "x", "action": "dateShift"}),
            "needs dateShift settings",
        ),
    ] {
        let invalid = plan(json!([field]), &[], None, Some(KEY));
        assert_eq!(invalid.reason(), "FieldRuleInvalid", "{field}");
        assert!(invalid.to_string().contains(problem), "{invalid}");
        assert!(
            invalid.to_string().starts_with("spec.fields[x]"),
            "{invalid}"
        );
    }

    assert_eq!(
        plan(
            json!([{"name": "x", "action": "keep"}, {"name": "x", "action": "drop"}]),
            &[],
            None,
            None
        )
        .reason(),
        "DuplicateField"
    );
    assert_eq!(
        plan(json!([{"name": "x", "action": "drop"}]), &[], None, None).reason(),
        "NoPublishedFields"
    );
    assert_eq!(
        plan(json!([{"name": "x", "action": "keep"}]), &["y"], None, None).reason(),
        "UnknownQuasiIdentifier"
    );
    assert_eq!(
        plan(
            json!([{"name": "x", "action": "keep"}]),
            &[],
            Some(k(5, true)),
            None
        )
        .reason(),
        "KAnonymityInvalid"
    );
    assert_eq!(
        plan(
            json!([{"name": "x", "action": "keep"}]),
            &["x"],
            Some(k(1, true)),
            None
        )
        .reason(),
        "KAnonymityInvalid"
    );
}

#[test]
fn runs_refuse_sources_they_cannot_read_faithfully() {
    let plan = Plan::new(
        &fields(json!([{"name": "a", "action": "keep"}, {"name": "b", "action": "drop"}])),
        &[],
        &[],
        None,
        None,
    )
    .expect("a valid plan");
    let missing = run_refusal(&plan, "a,c\n1,2\n");
    assert_eq!(
        missing,
        Refusal::SourceFieldMissing {
            field: "b".to_owned()
        }
    );
    let uneven = run_refusal(&plan, "a,b\n1,2\n3\n");
    assert_eq!(uneven.reason(), "SourceMalformed");
    assert!(uneven.to_string().starts_with("source: line 3"), "{uneven}");
    assert_eq!(
        run_refusal(&plan, "a,b,a\n1,2,3\n").reason(),
        "SourceMalformed"
    );

    let mut csv = Vec::new();
    let not_utf8 = plan.run(
        || Ok(b"a,b\n\xff\xfe,1\n".as_slice()),
        Outputs {
            csv: Some(&mut csv),
            json: None,
        },
    );
    assert_eq!(not_utf8.err().map(|e| e.reason()), Some("SourceMalformed"));

    let unreadable = plan.run(
        || Err::<&[u8], _>(io::Error::other("gone")),
        Outputs::default(),
    );
    assert_eq!(unreadable.err().map(|e| e.reason()), Some("IoError"));

    // An empty source publishes a header and an empty array.
    let (report, csv, json) = run(&plan, "a,b\n").expect("published");
    assert_eq!(
        (report.rows_read, csv.as_str(), json),
        (0, "a\n", json!([]))
    );
}

/// GB/T 2260 county codes used for generated people.
const REGIONS: [&str; 8] = [
    "110105", "310104", "330106", "330108", "440305", "510107", "420111", "320102",
];
const SURNAMES: [&str; 10] = ["王", "李", "张", "刘", "陈", "杨", "欧阳", "赵", "黄", "周"];
const GIVEN: [&str; 8] = ["伟", "芳", "娜", "秀英", "敏", "静", "强", "磊"];

/// A small deterministic generator (SplitMix64), so the test needs no random source.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A valid 18-digit identity number for a birth date and region.
fn resident_id(region: &str, born: &str, sequence: u64) -> String {
    let mut id = format!("{region}{}{sequence:03}", born.replace('-', ""));
    let check = resident_id::check_character(id.as_bytes());
    id.push(check);
    id
}

/// Every 18-character window that is a valid identity number (format, birth date, check).
fn identity_numbers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    (0..bytes.len().saturating_sub(17))
        .filter_map(|i| std::str::from_utf8(&bytes[i..i + 18]).ok())
        .filter(|w| resident_id::validate(w).is_ok())
        .map(str::to_owned)
        .collect()
}

/// Every mobile number pattern 1[3-9]xxxxxxxxx standing alone (not inside a longer run of
/// letters or digits, which is how a pseudonym's hex can contain one by chance).
fn phone_numbers(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let alnum = |i: usize| bytes.get(i).is_some_and(u8::is_ascii_alphanumeric);
    (0..bytes.len().saturating_sub(10))
        .filter(|&i| {
            bytes[i] == b'1'
                && (b'3'..=b'9').contains(&bytes[i + 1])
                && bytes[i + 2..i + 11].iter().all(u8::is_ascii_digit)
                && (i == 0 || !alnum(i - 1))
                && !alnum(i + 11)
        })
        .map(|i| text[i..i + 11].to_owned())
        .collect()
}

#[test]
fn no_identifier_survives_de_identification() {
    let mut rng = Rng(20_240_601);
    let mut source = String::from("id,name,phone,birth_date,region,sex,visit_date,amount\n");
    let (mut ids, mut phones, mut full_names) = (HashSet::new(), HashSet::new(), HashSet::new());
    for _ in 0..2000 {
        let region = REGIONS[rng.below(REGIONS.len() as u64) as usize];
        let born = format!(
            "{}-{:02}-{:02}",
            1960 + rng.below(10),
            1 + rng.below(12),
            1 + rng.below(28)
        );
        let sequence = rng.below(1000);
        let id = resident_id(region, &born, sequence);
        resident_id::validate(&id).expect("a valid generated identity number");
        let name = format!(
            "{}{}",
            SURNAMES[rng.below(SURNAMES.len() as u64) as usize],
            GIVEN[rng.below(GIVEN.len() as u64) as usize]
        );
        let phone = format!("1{}{:09}", 3 + rng.below(7), rng.below(1_000_000_000));
        let sex = if sequence % 2 == 1 { "M" } else { "F" };
        let visit = format!("2024-{:02}-{:02}", 1 + rng.below(12), 1 + rng.below(28));
        source.push_str(&format!(
            "{id},{name},{phone},{born},{region},{sex},{visit},{}\n",
            rng.below(100_000)
        ));
        ids.insert(id);
        phones.insert(phone);
        full_names.insert(name);
    }
    // The scanners find what was put in.
    assert!(identity_numbers(&source).len() >= 2000);
    assert!(phone_numbers(&source).len() >= 2000);

    let plan = Plan::new(
        &fields(json!([
            {"name": "id", "personal": true, "action": "pseudonymize", "pseudonymize": {"algorithm": "hmac-sm3"}},
            {"name": "name", "personal": true, "action": "mask", "mask": {"keepFirst": 1}},
            {"name": "phone", "personal": true, "action": "mask", "mask": {"keepFirst": 3, "keepLast": 4}},
            {"name": "birth_date", "personal": true, "action": "generalize", "generalize": {"date": "year"}},
            {"name": "region", "action": "generalize", "generalize": {"regionPrefix": 2}},
            {"name": "sex", "action": "keep"},
            {"name": "visit_date", "action": "dateShift", "dateShift": {"maxDays": 30}},
            {"name": "amount", "action": "generalize", "generalize": {"numberBand": 1000}},
        ])),
        &names(&["birth_date", "region", "sex"]), &[],
        Some(&k(3, true)),
        Some(KEY),
    )
    .expect("a valid plan");
    let (report, csv, json) = run(&plan, &source).expect("published");
    assert!(report.rows_written >= 1900, "{report}");
    let json = json.to_string();
    for (format, text) in [("csv", csv.as_str()), ("json", json.as_str())] {
        assert_eq!(identity_numbers(text), Vec::<String>::new(), "{format}");
        assert_eq!(phone_numbers(text), Vec::<String>::new(), "{format}");
        // Nor any of the generated values by exact match, anywhere.
        let windows = |n: usize| {
            text.char_indices()
                .filter_map(move |(i, _)| text.get(i..).and_then(|t| t.get(..n)))
        };
        assert!(!windows(18).any(|w| ids.contains(w)), "{format}");
        assert!(!windows(11).any(|w| phones.contains(w)), "{format}");
        assert!(
            !full_names.iter().any(|n| text.contains(n.as_str())),
            "{format}: a full name"
        );
    }
}

#[test]
fn l_diversity_refuses_or_suppresses_groups_that_share_one_sensitive_value() {
    let declared = fields(json!([
        {"name": "born", "action": "generalize", "generalize": {"date": "year"}},
        {"name": "diagnosis", "action": "keep"},
    ]));
    // Two groups of 10: 1980 with three diagnoses, 1981 all "I10"; and 1982, 4 records of one.
    let mut source = String::from("born,diagnosis\n");
    for i in 0..10 {
        source.push_str(&format!(
            "1980-01-0{},{}\n",
            i % 9 + 1,
            ["J45", "I10", "E11"][i % 3]
        ));
        source.push_str(&format!("1981-02-0{},I10\n", i % 9 + 1));
    }
    for i in 0..4 {
        source.push_str(&format!("1982-03-0{},K29\n", i + 1));
    }
    let quasi = names(&["born"]);
    let sensitive = names(&["diagnosis"]);
    let with_l = |suppress: bool, cap: Option<i32>| KAnonymity {
        min_l: Some(2),
        max_suppressed_percent: cap,
        ..k(2, suppress)
    };
    let strict = Plan::new(
        &declared,
        &quasi,
        &sensitive,
        Some(&with_l(false, None)),
        None,
    )
    .expect("a valid plan");
    let refused = run_refusal(&strict, &source);
    assert_eq!(
        refused,
        Refusal::LDiversityNotMet {
            quasi_identifiers: "born".to_owned(),
            field: "diagnosis".to_owned(),
            least: 1,
            l: 2,
            groups_below: 2,
            records_below: 14,
        }
    );
    // Suppressing 14 of 24 records is past the default 5% and past a 50% cap too.
    let capped = Plan::new(
        &declared,
        &quasi,
        &sensitive,
        Some(&with_l(true, Some(50))),
        None,
    )
    .expect("a valid plan");
    let refused = run_refusal(&capped, &source);
    assert_eq!(refused.reason(), "SuppressionLimitExceeded");
    assert!(
        refused
            .to_string()
            .contains("k = 2 and l = 2 would suppress 14 of 24 records, more than the 50%"),
        "{refused}"
    );
    // With fewer non-diverse records, suppression within the cap publishes the diverse group.
    let few: String = source
        .lines()
        .filter(|l| !l.starts_with("1981"))
        .fold(String::new(), |s, l| s + l + "\n");
    let suppressing = Plan::new(
        &declared,
        &quasi,
        &sensitive,
        Some(&with_l(true, Some(30))),
        None,
    )
    .expect("a valid plan");
    let (report, csv, _) = run(&suppressing, &few).expect("published");
    assert_eq!((report.rows_written, report.rows_suppressed), (10, 4));
    assert_eq!(report.l, Some(2));
    assert!(!csv.contains("1982") && !csv.contains("K29"));
    let risk = report.risk.expect("a risk");
    assert_eq!((risk.smallest_group, risk.groups), (10, 1));
    assert!(
        (risk.highest_percent - 10.0).abs() < 1e-9 && (risk.average_percent - 10.0).abs() < 1e-9
    );
    assert_eq!(risk.records_at_risk, 0);

    assert_eq!(
        refusal(Plan::new(
            &declared,
            &quasi,
            &[],
            Some(&with_l(true, None)),
            None
        ))
        .reason(),
        "KAnonymityInvalid"
    );
    assert_eq!(
        refusal(Plan::new(
            &declared,
            &quasi,
            &names(&["born"]),
            Some(&with_l(true, None)),
            None
        ))
        .reason(),
        "KAnonymityInvalid"
    );
    assert_eq!(
        refusal(Plan::new(&declared, &quasi, &names(&["nope"]), None, None)).reason(),
        "UnknownSensitiveField"
    );
}

#[test]
fn risk_counts_records_above_the_threshold() {
    let declared = fields(json!([{"name": "sex", "action": "keep"}]));
    // Groups of 1, 3 and 6: risks 100%, 33% and 17%.
    let source = "sex\nX\nF\nF\nF\nM\nM\nM\nM\nM\nM\n";
    let plan = Plan::new(&declared, &names(&["sex"]), &[], None, None).expect("plan");
    let (report, _, _) = run(&plan, source).expect("published");
    let risk = report.risk.expect("a risk");
    assert_eq!((risk.smallest_group, risk.groups), (1, 3));
    assert!((risk.highest_percent - 100.0).abs() < 1e-9);
    assert!((risk.average_percent - 30.0).abs() < 1e-9);
    assert_eq!((risk.threshold_percent, risk.records_at_risk), (20.0, 4));
    let (report, _, _) = run(&plan.clone().with_risk_threshold_percent(50), source).expect("ok");
    assert_eq!(report.risk.map(|r| r.records_at_risk), Some(1));
}

#[test]
fn the_content_gate_refuses_undeclared_identifiers_and_lets_declared_ones_through() {
    let declared = fields(json!([
        {"name": "hospital", "action": "keep"},
        {"name": "switchboard", "action": "keep", "declaredIdentifiers": {
            "kinds": ["mobilePhone"], "justification": "the hospital's public number"}},
        {"name": "note", "action": "keep"},
    ]));
    let plan = Plan::new(&declared, &[], &[], None, None).expect("plan");
    let clean = "hospital,switchboard,note\n协和,+86 138 1000 1000,复诊\n华西,13910002000,\n";
    let (report, csv, _) = run(&plan, clean).expect("the declared kind is published");
    assert!(csv.contains("+86 138 1000 1000"));
    assert_eq!(
        report.declared_identifiers,
        vec![Finding {
            field: "switchboard".to_owned(),
            kind: IdentifierKind::MobilePhone,
            records: 2
        }]
    );
    // Another kind in the declared field, and identifiers in a field that declares none.
    let leaking = "hospital,switchboard,note\n\
        协和,11010519491231002X,联系 li@a.cn 或 13810001000\n\
        华西,13910002000,复诊\n\
        同济,13910002000,旧证 110105491231002\n";
    let mut files = (Vec::new(), Vec::new());
    let refused = plan.run(
        || Ok(leaking.as_bytes()),
        Outputs {
            csv: Some(&mut files.0),
            json: Some(&mut files.1),
        },
    );
    let Err(RunError::Refused(refused)) = refused else {
        panic!("published: {refused:?}");
    };
    assert_eq!(refused.reason(), "PersonalDataDetected");
    let message = refused.to_string();
    for expected in [
        "switchboard residentId in 1 records",
        "note mobilePhone in 1 records",
        "note email in 1 records",
        "note legacyResidentId in 1 records",
    ] {
        assert!(message.contains(expected), "{expected}: {message}");
    }
    for value in [
        "11010519491231002X",
        "li@a.cn",
        "13810001000",
        "110105491231002",
    ] {
        assert!(!message.contains(value), "a value in the message: {value}");
    }
    assert!(
        !message.contains("switchboard mobilePhone"),
        "declared: {message}"
    );

    assert_eq!(
        refusal(Plan::new(
            &fields(
                json!([{"name": "x", "action": "keep", "declaredIdentifiers": {
                "kinds": ["email"], "justification": "  "}}])
            ),
            &[],
            &[],
            None,
            None
        ))
        .reason(),
        "FieldRuleInvalid"
    );
}

#[test]
fn gb18030_sources_are_decoded_and_utf8_ones_that_are_not_are_told_the_field() {
    let declared = fields(json!([{"name": "hospital", "action": "keep"}]));
    // Python: "hospital\n𠮷䶮中医院\n".encode("gb18030").
    let gb: &[u8] = b"hospital\n\x95\x34\xb2\x35\xfe\x9f\xd6\xd0\xd2\xbd\xd4\xba\n";
    let plan = Plan::new(&declared, &[], &[], None, None).expect("plan");
    let refused = match plan.run(|| Ok(gb), Outputs::default()) {
        Err(RunError::Refused(refusal)) => refusal,
        other => panic!("{other:?}"),
    };
    assert_eq!(refused.reason(), "SourceMalformed");
    assert!(
        refused
            .to_string()
            .contains("set spec.source.encoding to gb18030"),
        "{refused}"
    );
    let decoding = plan
        .clone()
        .with_encoding(govdc_crds::open_dataset::SourceEncoding::Gb18030)
        .with_csv_byte_order_mark(true);
    let mut csv = Vec::new();
    decoding
        .run(
            || Ok(gb),
            Outputs {
                csv: Some(&mut csv),
                json: None,
            },
        )
        .expect("published");
    assert_eq!(gunzip(&csv), "\u{feff}hospital\n𠮷䶮中医院\n");
    let broken = match decoding.run(|| Ok(&b"hospital\n\x81\x20\n"[..]), Outputs::default()) {
        Err(RunError::Refused(refusal)) => refusal,
        other => panic!("{other:?}"),
    };
    assert!(
        broken
            .to_string()
            .contains("is not part of a GB 18030 character"),
        "{broken}"
    );
}
