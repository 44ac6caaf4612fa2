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
    /// Most downloaded first, ties newest first. The counts are the caller's
    /// ([`super::downloads`]): [`Index::search`] gives newest first, and [`by_downloads`]
    /// reorders.
    Downloads,
}

/// Reorders `hits` most downloaded first (`count` of each), keeping the order of equals.
pub fn by_downloads(hits: &mut Vec<usize>, counts: &[u64]) {
    let mut ranked: Vec<(usize, u64)> = hits.iter().copied().zip(counts.iter().copied()).collect();
    ranked.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    *hits = ranked.into_iter().map(|(i, _)| i).collect();
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
    let words = words(text);
    words.is_empty() || Folded::new(entry).matches(&words)
}

/// An entry's searchable text, lower-cased once per state of the catalogue instead of once per
/// request: `id \n title \n description \n tag \n tag …`. The separator is whitespace, which no
/// query word holds, so a word never matches across two fields.
#[derive(Clone, Debug)]
struct Folded {
    text: String,
    /// Where the title, the description and the tags are in `text`.
    title: std::ops::Range<usize>,
    description: std::ops::Range<usize>,
    tags: std::ops::Range<usize>,
    /// The department's CKAN name ([`department`]).
    department: String,
}

impl Folded {
    fn new(entry: &Entry) -> Folded {
        let m = &entry.metadata;
        let mut text = m.id.to_lowercase();
        let field = |value: &str, text: &mut String| {
            text.push('\n');
            let start = text.len();
            text.push_str(&value.to_lowercase());
            start..text.len()
        };
        let title = field(&m.title, &mut text);
        let description = field(&m.description, &mut text);
        let tags_start = text.len();
        for tag in &m.tags {
            field(tag, &mut text);
        }
        let tags = tags_start..text.len();
        Folded {
            text,
            title,
            description,
            tags,
            department: department(entry),
        }
    }

    fn matches(&self, words: &[String]) -> bool {
        words.iter().all(|w| self.text.contains(w.as_str()))
    }

    fn relevance(&self, words: &[String]) -> u32 {
        let part = |range: &std::ops::Range<usize>| &self.text[range.clone()];
        words
            .iter()
            .map(|w| {
                let mut score = 0;
                if part(&self.title).contains(w.as_str()) {
                    score += 4;
                }
                if part(&self.tags).contains(w.as_str()) {
                    score += 2;
                }
                if part(&self.description).contains(w.as_str()) {
                    score += 1;
                }
                score
            })
            .sum()
    }
}

fn filter_holds(entry: &Entry, folded: &Folded, facet: Facet, value: &str) -> bool {
    let m = &entry.metadata;
    match facet {
        Facet::Category => m.category == value,
        // Credit codes are case-insensitive; so are format names.
        Facet::Department => folded.department.eq_ignore_ascii_case(value),
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

/// The search structures of a set of entries, built once per state of the catalogue
/// ([`super::catalogue`]): each entry's folded text, and the newest-first order. A search then
/// costs one substring scan per word and entry, and no sort without a query.
#[derive(Clone, Debug, Default)]
pub struct Index {
    folded: Vec<Folded>,
    /// Positions of the entries, newest publication first, then by id.
    newest: Vec<usize>,
    /// For each shown facet and value (its [`posting_key`]), the positions that have it, newest
    /// first: a filtered search scans only the entries of its narrowest filter.
    postings: BTreeMap<(Facet, String), Vec<usize>>,
    /// For each shown facet, its values numbered, and each entry's value numbers: counting a
    /// facet over the hits is then adding up array cells, not hashing strings.
    interned: BTreeMap<Facet, Interned>,
}

/// A facet's values, numbered, and the numbers each entry has.
#[derive(Clone, Debug, Default)]
struct Interned {
    values: Vec<String>,
    of: Vec<Vec<u32>>,
}

impl Interned {
    fn new(entries: &[Entry], folded: &[Folded], facet: Facet) -> Interned {
        let mut numbers: std::collections::HashMap<String, u32> = Default::default();
        let mut interned = Interned::default();
        for (entry, folded) in entries.iter().zip(folded) {
            let mut mine: Vec<u32> = Vec::new();
            for value in facet_values(entry, folded, facet) {
                if value.is_empty() {
                    continue;
                }
                let next = u32::try_from(interned.values.len()).unwrap_or(u32::MAX);
                let number = *numbers.entry(value.clone()).or_insert_with(|| {
                    interned.values.push(value);
                    next
                });
                if !mine.contains(&number) {
                    mine.push(number);
                }
            }
            interned.of.push(mine);
        }
        interned
    }
}

/// The values an entry has for `facet`, as facet counts name them (formats lower-case,
/// departments by [`department`]).
fn facet_values(entry: &Entry, folded: &Folded, facet: Facet) -> Vec<String> {
    match facet {
        Facet::Department => vec![folded.department.clone()],
        _ => values(entry, facet),
    }
}

/// The key a filter value is found under: department codes and formats compare without case.
fn posting_key(facet: Facet, value: &str) -> String {
    match facet {
        Facet::Department | Facet::Format => value.to_ascii_lowercase(),
        _ => value.to_owned(),
    }
}

impl Index {
    /// The index of `entries`.
    pub fn new(entries: &[Entry]) -> Index {
        let mut newest: Vec<usize> = (0..entries.len()).collect();
        newest.sort_by(|&a, &b| {
            let (a, b) = (&entries[a], &entries[b]);
            b.published_at
                .cmp(&a.published_at)
                .then_with(|| a.metadata.id.cmp(&b.metadata.id))
        });
        let folded: Vec<Folded> = entries.iter().map(Folded::new).collect();
        let mut postings: BTreeMap<(Facet, String), Vec<usize>> = BTreeMap::new();
        for &i in &newest {
            let (entry, folded) = (&entries[i], &folded[i]);
            let m = &entry.metadata;
            let mut keys: Vec<(Facet, String)> = vec![
                (Facet::Category, m.category.clone()),
                (Facet::Department, folded.department.to_ascii_lowercase()),
                (Facet::License, m.license.clone()),
                (Facet::Openness, openness_name(entry).to_owned()),
            ];
            keys.extend(
                entry
                    .files
                    .iter()
                    .map(|f| (Facet::Format, f.format.to_ascii_lowercase())),
            );
            keys.sort();
            keys.dedup();
            for key in keys {
                postings.entry(key).or_default().push(i);
            }
        }
        let interned = SHOWN_FACETS
            .iter()
            .map(|facet| (*facet, Interned::new(entries, &folded, *facet)))
            .collect();
        Index {
            folded,
            newest,
            postings,
            interned,
        }
    }

    /// Every position, newest publication first.
    pub fn newest(&self) -> &[usize] {
        &self.newest
    }

    /// The positions in `entries` (the entries this index was built from) that `query` finds,
    /// in its order.
    pub fn search(&self, entries: &[Entry], query: &Query) -> Vec<usize> {
        let words = words(&query.text);
        // The narrowest filter that has postings gives the candidates (already newest first);
        // the other filters, then the text, are checked on them only.
        let mut candidates: &[usize] = &self.newest;
        for (facet, value) in &query.filters {
            if SHOWN_FACETS.contains(facet) {
                let list = self
                    .postings
                    .get(&(*facet, posting_key(*facet, value)))
                    .map_or(&[][..], Vec::as_slice);
                if list.len() < candidates.len() {
                    candidates = list;
                }
            }
        }
        let mut hits: Vec<usize> = candidates
            .iter()
            .copied()
            .filter(|&i| {
                query
                    .filters
                    .iter()
                    .all(|(f, v)| filter_holds(&entries[i], &self.folded[i], *f, v))
            })
            .filter(|&i| words.is_empty() || self.folded[i].matches(&words))
            .collect();
        if query.sort == Sort::Relevance && !words.is_empty() {
            // Stable: equal scores stay newest first.
            hits.sort_by_cached_key(|&i| std::cmp::Reverse(self.folded[i].relevance(&words)));
        }
        hits
    }

    /// How many of the entries at `hits` have each value of `facet`, most first, then by value.
    pub fn counts(&self, entries: &[Entry], hits: &[usize], facet: Facet) -> Vec<(String, usize)> {
        if let Some(interned) = self.interned.get(&facet) {
            let mut cells = vec![0usize; interned.values.len()];
            for &i in hits {
                for &v in &interned.of[i] {
                    cells[v as usize] += 1;
                }
            }
            let mut counted: Vec<(String, usize)> = cells
                .into_iter()
                .enumerate()
                .filter(|(_, n)| *n > 0)
                .map(|(v, n)| (interned.values[v].clone(), n))
                .collect();
            counted.sort_by(|(va, a), (vb, b)| b.cmp(a).then_with(|| va.cmp(vb)));
            return counted;
        }
        let mut by_value: std::collections::HashMap<&str, usize> = Default::default();
        let mut seen: Vec<&str> = Vec::new();
        for &i in hits {
            let (entry, folded) = (&entries[i], &self.folded[i]);
            let m = &entry.metadata;
            seen.clear();
            match facet {
                Facet::Category => seen.push(&m.category),
                Facet::Department => seen.push(&folded.department),
                Facet::Format => seen.extend(entry.files.iter().map(|f| f.format.as_str())),
                Facet::License => seen.push(&m.license),
                Facet::Openness => seen.push(openness_name(entry)),
                Facet::Tag => seen.extend(m.tags.iter().map(String::as_str)),
                Facet::Id => seen.push(&m.id),
            }
            seen.sort_unstable();
            seen.dedup();
            for value in seen.iter().filter(|v| !v.is_empty()) {
                *by_value.entry(value).or_default() += 1;
            }
        }
        let mut counted: Vec<(String, usize)> = by_value
            .into_iter()
            .map(|(value, n)| {
                // Formats are counted as stored and shown lower-case, as `values` gives them.
                let value = if facet == Facet::Format {
                    value.to_lowercase()
                } else {
                    value.to_owned()
                };
                (value, n)
            })
            .collect();
        if facet == Facet::Format {
            // Two spellings of one format (as stored) are one value.
            let mut merged: BTreeMap<String, usize> = BTreeMap::new();
            for (v, n) in counted {
                *merged.entry(v).or_default() += n;
            }
            counted = merged.into_iter().collect();
        }
        counted.sort_by(|(va, a), (vb, b)| b.cmp(a).then_with(|| va.cmp(vb)));
        counted
    }
}

/// The entries `query` finds, in its order (building an [`Index`] for this one search; the
/// portal's pages use the catalogue's).
pub fn search<'a>(entries: &'a [Entry], query: &Query) -> Vec<&'a Entry> {
    Index::new(entries)
        .search(entries, query)
        .into_iter()
        .map(|i| &entries[i])
        .collect()
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
    fn the_index_counts_as_the_plain_count_does() {
        let mut entries = vec![
            entry("a", "x", &["bus", "city"], 1),
            entry("b", "x", &["bus"], 2),
            entry("c", "x", &[], 3),
        ];
        entries[1].metadata.category = "health".to_owned();
        entries[1].files.push(StoredFile {
            format: "JSON".to_owned(),
            sha256: String::new(),
            size: 1,
        });
        entries[2].metadata.license = String::new();
        entries[2].metadata.organization_credit_code = "91330000MA2ABCDE0X".to_owned();
        let index = Index::new(&entries);
        for hits in [vec![0, 1, 2], vec![1], vec![2, 0], vec![]] {
            let plain: Vec<&Entry> = hits.iter().map(|&i| &entries[i]).collect();
            for facet in SHOWN_FACETS.iter().chain([Facet::Tag, Facet::Id].iter()) {
                assert_eq!(
                    index.counts(&entries, &hits, *facet),
                    counts(&plain, *facet),
                    "{facet:?} over {hits:?}"
                );
            }
        }
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
