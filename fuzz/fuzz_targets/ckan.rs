//! The CKAN Action API's parameters and its `q`/`fq` parser:
//! `govdc_hub::portal::ckan::{answer, filter_query}` over a small catalogue.
//!
//! Input: one byte choosing the action (`package_search` mostly), then the query string, a
//! newline, and the body (a JSON object, as ckanapi POSTs it).
//!
//! Checks:
//! - every answer is CKAN's envelope with a status CKAN clients know (200, 400, 404, 409),
//!   `success` true exactly on 200, and an error with a `__type`;
//! - a `package_search` that succeeds has `count` at least its results, at most 1000 results, and
//!   only datasets of the catalogue;
//! - an `fq` the parser accepts (the query string and the `fq` parameter, each tried as one)
//!   re-renders, canonically (`organization:"v" AND tags:"w"`), to an `fq` that parses to the
//!   same filters; and the catalogue's index (its postings) finds for it exactly the datasets
//!   the filters mean, each checked on its own.
#![no_main]

use std::sync::OnceLock;

use govdc_hub::portal::catalogue::Snapshot;
use govdc_hub::portal::ckan::{answer, filter_query};
use govdc_hub::portal::http::openness_name;
use govdc_hub::portal::search::{self, Facet, Index, Query, Sort};
use govdc_hub::portal::{Entry, StoredFile};
use govdc_hub_api::v1::{DatasetMetadata, Openness};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const ACTIONS: [&str; 6] = [
    "package_search",
    "package_show",
    "organization_list",
    "tag_list",
    "license_list",
    "help_show",
];

fn entry(id: &str, title: &str, tags: &[&str], code: &str, category: &str, at: i64) -> Entry {
    Entry {
        metadata: DatasetMetadata {
            id: id.to_owned(),
            title: title.to_owned(),
            description: format!("{title}：每月更新 records of the city"),
            category: category.to_owned(),
            openness: if at % 2 == 0 {
                Openness::Unconditional as i32
            } else {
                Openness::Conditional as i32
            },
            license: if at % 3 == 0 { "CC-BY-4.0" } else { "ODbL-1.0" }.to_owned(),
            tags: tags.iter().map(|t| (*t).to_owned()).collect(),
            organization_credit_code: code.to_owned(),
            organization_name: format!("{category} 局"),
            version: at,
            ..Default::default()
        },
        files: ["csv", "json"]
            .iter()
            .take(1 + (at % 2) as usize)
            .map(|f| StoredFile {
                format: (*f).to_owned(),
                sha256: "0".repeat(64),
                size: 100 + at,
            })
            .collect(),
        published_at: 1_700_000_000_000_000 + at * 1_000_000,
    }
}

fn snapshot() -> &'static Snapshot {
    static SNAPSHOT: OnceLock<Snapshot> = OnceLock::new();
    SNAPSHOT.get_or_init(|| {
        let entries = vec![
            entry(
                "hz-transport.bus-stops",
                "公交站点 Bus stops",
                &["bus", "transport"],
                "11330100002482118K",
                "transport",
                1,
            ),
            entry(
                "hz-transport.metro",
                "地铁客流 Metro ridership",
                &["metro", "public health"],
                "11330100002482118K",
                "transport",
                2,
            ),
            entry(
                "hz-health.clinics",
                "社区卫生服务中心 Clinics",
                &["health", "clinics"],
                "12330100470116614F",
                "health",
                3,
            ),
            entry(
                "hz-health.vaccination",
                "疫苗接种点",
                &["health", "vaccination"],
                "12330100470116614F",
                "health",
                4,
            ),
            entry(
                "zj-env.air",
                "空气质量 Air quality",
                &["air", "PM2.5"],
                "11330000002482100X",
                "environment",
                5,
            ),
            entry(
                "zj-env.water",
                "Water quality",
                &[],
                "11330000002482100X",
                "environment",
                6,
            ),
        ];
        Snapshot {
            index: Index::new(&entries),
            entries,
            ..Default::default()
        }
    })
}

fn fq_param(name: &Facet) -> &'static str {
    match name {
        Facet::Category => "groups",
        Facet::Department => "organization",
        Facet::Format => "res_format",
        Facet::License => "license_id",
        Facet::Openness => "openness",
        Facet::Tag => "tags",
        Facet::Id => "name",
    }
}

/// The canonical `fq` of `filters`, or None when a value cannot be written in the syntax
/// (a `"` in a value with whitespace, or a value starting with `"`).
fn render(filters: &[(Facet, String)]) -> Option<String> {
    let terms: Option<Vec<String>> = filters
        .iter()
        .map(|(facet, value)| {
            if !value.contains('"') {
                Some(format!("{}:\"{value}\"", fq_param(facet)))
            } else if !value.is_empty()
                && !value.starts_with('"')
                && !value.contains(char::is_whitespace)
            {
                Some(format!("{}:{value}", fq_param(facet)))
            } else {
                None
            }
        })
        .collect();
    Some(terms?.join(" AND "))
}

fn check_fq(fq: &str) {
    let Ok(filters) = filter_query(fq) else {
        return;
    };
    if let Some(canonical) = render(&filters) {
        assert_eq!(
            filter_query(&canonical).as_ref(),
            Ok(&filters),
            "fq {fq:?} re-rendered as {canonical:?} reads differently"
        );
    }
    let snapshot = snapshot();
    let query = Query {
        text: String::new(),
        filters: filters.clone(),
        sort: Sort::Newest,
    };
    let mut indexed: Vec<&str> = snapshot
        .index
        .search(&snapshot.entries, &query)
        .into_iter()
        .map(|i| snapshot.entries[i].metadata.id.as_str())
        .collect();
    // What the filters mean, entry by entry, without the index's postings.
    let mut plain: Vec<&str> = snapshot
        .entries
        .iter()
        .filter(|e| filters.iter().all(|(facet, value)| holds(e, *facet, value)))
        .map(|e| e.metadata.id.as_str())
        .collect();
    indexed.sort_unstable();
    plain.sort_unstable();
    assert_eq!(
        indexed, plain,
        "fq {fq:?}: the index finds what the filters do not mean"
    );
}

fn holds(entry: &Entry, facet: Facet, value: &str) -> bool {
    let m = &entry.metadata;
    match facet {
        Facet::Category => m.category == value,
        Facet::Department => search::department(entry).eq_ignore_ascii_case(value),
        Facet::Format => entry
            .files
            .iter()
            .any(|f| f.format.eq_ignore_ascii_case(value)),
        Facet::License => m.license == value,
        Facet::Openness => openness_name(entry) == value,
        Facet::Tag => m.tags.iter().any(|t| t == value),
        Facet::Id => m.id == value,
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let action = if which < 128 {
        ACTIONS[0]
    } else {
        ACTIONS[usize::from(which) % ACTIONS.len()]
    };
    let (query, body) = match rest.iter().position(|b| *b == b'\n') {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &[][..]),
    };
    let Ok(query) = std::str::from_utf8(query) else {
        return;
    };
    let snapshot = snapshot();
    let (status, envelope) = answer(
        action,
        Some(query),
        body,
        snapshot,
        "https://data.example.gov.cn",
    );
    assert!(
        [200, 400, 404, 409].contains(&status.as_u16()),
        "{action}?{query}: status {status}"
    );
    assert_eq!(envelope["success"], Value::Bool(status == 200));
    if status == 200 {
        let result = &envelope["result"];
        if action == "package_search" {
            let count = result["count"].as_u64().unwrap_or(u64::MAX);
            let results = result["results"].as_array().map_or(usize::MAX, Vec::len);
            assert!(results <= 1000 && results as u64 <= count, "{result}");
            assert!(count as usize <= snapshot.entries.len());
            for package in result["results"].as_array().into_iter().flatten() {
                let name = package["name"].as_str().unwrap_or_default();
                assert!(snapshot.entries.iter().any(|e| e.metadata.id == name));
            }
        }
    } else {
        assert!(
            envelope["error"]["__type"]
                .as_str()
                .is_some_and(|t| !t.is_empty()),
            "{envelope}"
        );
    }
    check_fq(query);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key == "fq" {
            check_fq(&value);
        }
    }
});
