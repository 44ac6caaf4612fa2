//! The portal's one search, shared by CKAN's `package_search` ([`super::ckan`]) and the website's
//! `/datasets` ([`super::web`]), so that the same query finds the same datasets on both.
//!
//! A query is free text (every word must occur, case-insensitively, in the id, title, description
//! or a tag) and filters on facet fields, all of which must hold. Facet counts are taken over the
//! hits, as CKAN's `search_facets` are.

use std::collections::BTreeMap;

use super::Entry;
use super::http::openness_name;

/// A field a search can filter on and count by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Facet {
    /// The plan's category (CKAN `groups`).
    Category,
    /// The publishing department, by its CKAN organization name (the lower-cased credit code).
    Department,
    /// A file format, lower-case (`csv`, `json`; CKAN `res_format`).
    Format,
    /// The licence identifier (CKAN `license_id`).
    License,
    /// `unconditional` (无条件开放) or `conditional` (有条件开放).
    Openness,
    /// A tag, exactly.
    Tag,
    /// The dataset id, exactly (CKAN `name`, `id`).
    Id,
}

/// The facets the website shows, in the order it shows them.
pub const SHOWN_FACETS: &[Facet] = &[
    Facet::Category,
    Facet::Department,
    Facet::Format,
    Facet::License,
    Facet::Openness,
];

/// The order of the hits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Sort {
    /// Newest publication first, then by id: CKAN's `metadata_modified desc`, and a stable
    /// order, so paging never repeats or skips a dataset while nothing is published.
    #[default]
    Newest,
    /// Most query words in the title first, then in tags, then in the description; ties newest
    /// first. Without a query, the same as [`Sort::Newest`].
    Relevance,
}

/// A search.
#[derive(Clone, Debug, Default)]
pub struct Query {
    /// Free text; empty (or Solr's `*:*`) matches everything.
    pub text: String,
    /// Filters that must all hold.
    pub filters: Vec<(Facet, String)>,
    /// The order of the hits.
    pub sort: Sort,
}

/// The CKAN organization name of an entry's publisher: its credit code, lower-cased.
pub fn department(entry: &Entry) -> String {
    let code = entry.metadata.organization_credit_code.to_lowercase();
    if code.is_empty() {
        "unknown".to_owned()
    } else {
        code
    }
}

/// The values an entry has for `facet` (several for formats and tags).
pub fn values(entry: &Entry, facet: Facet) -> Vec<String> {
    let m = &entry.metadata;
    match facet {
        Facet::Category => vec![m.category.clone()],
        Facet::Department => vec![department(entry)],
        Facet::Format => entry
            .files
            .iter()
            .map(|f| f.format.to_lowercase())
            .collect(),
        Facet::License => vec![m.license.clone()],
        Facet::Openness => vec![openness_name(entry).to_owned()],
        Facet::Tag => m.tags.clone(),
        Facet::Id => vec![m.id.clone()],
    }
}

fn words(text: &str) -> Vec<String> {
    let text = text.trim().to_lowercase();
    if text == "*:*" {
        return Vec::new();
    }
    text.split_whitespace().map(str::to_owned).collect()
}

/// Whether `entry` matches free text `text`: every word a case-insensitive substring of its id,
/// title, description or a tag. An empty text matches everything.
pub fn matches_text(entry: &Entry, text: &str) -> bool {
    matches_words(entry, &words(text))
}

fn matches_words(entry: &Entry, words: &[String]) -> bool {
    let m = &entry.metadata;
    let (id, title, description) = (
        m.id.to_lowercase(),
        m.title.to_lowercase(),
        m.description.to_lowercase(),
    );
    let tags: Vec<String> = m.tags.iter().map(|t| t.to_lowercase()).collect();
    words.iter().all(|word| {
        id.contains(word.as_str())
            || title.contains(word.as_str())
            || description.contains(word.as_str())
            || tags.iter().any(|t| t.contains(word.as_str()))
    })
}

fn filter_holds(entry: &Entry, facet: Facet, value: &str) -> bool {
    match facet {
        // Credit codes are case-insensitive; so are format names.
        Facet::Department | Facet::Format => values(entry, facet)
            .iter()
            .any(|v| v.eq_ignore_ascii_case(value)),
        _ => values(entry, facet).iter().any(|v| v == value),
    }
}

fn relevance(entry: &Entry, words: &[String]) -> u32 {
    let m = &entry.metadata;
    let (title, description) = (m.title.to_lowercase(), m.description.to_lowercase());
    words
        .iter()
        .map(|w| {
            let mut score = 0;
            if title.contains(w.as_str()) {
                score += 4;
            }
            if m.tags.iter().any(|t| t.to_lowercase().contains(w.as_str())) {
                score += 2;
            }
            if description.contains(w.as_str()) {
                score += 1;
            }
            score
        })
        .sum()
}

/// The entries `query` finds, in its order.
pub fn search<'a>(entries: &'a [Entry], query: &Query) -> Vec<&'a Entry> {
    let words = words(&query.text);
    let mut hits: Vec<(&Entry, u32)> = entries
        .iter()
        .filter(|e| matches_words(e, &words))
        .filter(|e| query.filters.iter().all(|(f, v)| filter_holds(e, *f, v)))
        .map(|e| (e, relevance(e, &words)))
        .collect();
    let newest = |a: &Entry, b: &Entry| {
        b.published_at
            .cmp(&a.published_at)
            .then_with(|| a.metadata.id.cmp(&b.metadata.id))
    };
    match query.sort {
        Sort::Newest => hits.sort_by(|(a, _), (b, _)| newest(a, b)),
        Sort::Relevance => hits.sort_by(|(a, sa), (b, sb)| sb.cmp(sa).then_with(|| newest(a, b))),
    }
    hits.into_iter().map(|(e, _)| e).collect()
}

/// How many of `hits` have each value of `facet`, most first, then by value.
pub fn counts(hits: &[&Entry], facet: Facet) -> Vec<(String, usize)> {
    let mut by_value: BTreeMap<String, usize> = BTreeMap::new();
    for entry in hits {
        let mut seen = values(entry, facet);
        seen.sort();
        seen.dedup();
        for value in seen.into_iter().filter(|v| !v.is_empty()) {
            *by_value.entry(value).or_default() += 1;
        }
    }
    let mut counted: Vec<(String, usize)> = by_value.into_iter().collect();
    counted.sort_by(|(va, a), (vb, b)| b.cmp(a).then_with(|| va.cmp(vb)));
    counted
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::portal::StoredFile;
    use govdc_hub_api::v1::{DatasetMetadata, Openness};

    fn entry(id: &str, title: &str, tags: &[&str], published_at: i64) -> Entry {
        Entry {
            metadata: DatasetMetadata {
                id: id.to_owned(),
                title: title.to_owned(),
                description: "records of the city".to_owned(),
                category: "transport".to_owned(),
                openness: Openness::Unconditional as i32,
                license: "CC-BY-4.0".to_owned(),
                tags: tags.iter().map(|t| (*t).to_owned()).collect(),
                organization_credit_code: "11330000002482118K".to_owned(),
                ..Default::default()
            },
            files: vec![StoredFile {
                format: "csv".to_owned(),
                sha256: String::new(),
                size: 1,
            }],
            published_at,
        }
    }

    fn ids(hits: &[&Entry]) -> Vec<String> {
        hits.iter().map(|e| e.metadata.id.clone()).collect()
    }

    #[test]
    fn every_word_must_occur_and_relevance_ranks_titles_first() {
        let entries = vec![
            entry("a.bus", "Bus stops", &["bus"], 1),
            entry("b.metro", "Metro lines", &["bus"], 3),
            entry("c.roads", "Roads", &[], 2),
        ];
        let query = |text: &str, sort| Query {
            text: text.to_owned(),
            filters: Vec::new(),
            sort,
        };
        assert_eq!(
            ids(&search(&entries, &query("bus", Sort::Newest))),
            ["b.metro", "a.bus"]
        );
        assert_eq!(
            ids(&search(&entries, &query("BUS", Sort::Relevance))),
            ["a.bus", "b.metro"]
        );
        assert_eq!(
            ids(&search(&entries, &query("bus stops", Sort::Newest))),
            ["a.bus"]
        );
        assert_eq!(search(&entries, &query("*:*", Sort::Newest)).len(), 3);
        let filtered = Query {
            filters: vec![(Facet::Department, "11330000002482118k".to_owned())],
            ..query("", Sort::Newest)
        };
        assert_eq!(search(&entries, &filtered).len(), 3);
    }

    #[test]
    fn facet_counts_are_over_the_hits_most_first() {
        let entries = vec![
            entry("a", "x", &["bus", "city"], 1),
            entry("b", "x", &["bus"], 2),
        ];
        let hits = search(&entries, &Query::default());
        assert_eq!(
            counts(&hits, Facet::Tag),
            [("bus".to_owned(), 2), ("city".to_owned(), 1)]
        );
    }
}
