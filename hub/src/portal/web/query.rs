//! The website's query strings: read strictly (an unknown, repeated or invalid parameter is a
//! [`BadParameter`], answered with a 400 page that names it, never silently ignored) and written
//! back, so that every state of a page is a shareable URL.

use std::collections::BTreeMap;

use super::i18n::Lang;
use crate::portal::search::{Facet, Query, Sort};

/// Results on a page of search.
pub const PAGE_SIZE: usize = 10;
/// The longest free-text query, in characters.
pub const MAX_TEXT_CHARS: usize = 200;
/// The longest filter value, in characters (ids, credit codes, licences, tags are short).
pub const MAX_VALUE_CHARS: usize = 253;
/// The last page anyone can ask for: deeper is a crawler's loop, not a reader.
pub const MAX_PAGE: usize = 10_000;

/// A parameter the website refuses, and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BadParameter {
    /// Not a parameter of the page.
    #[error("{name} is not a parameter of this page")]
    Unknown {
        /// The parameter.
        name: String,
    },
    /// Given more than once.
    #[error("{name} is given more than once")]
    Repeated {
        /// The parameter.
        name: String,
    },
    /// A value the parameter cannot take.
    #[error("{name} cannot be {value:?}; the values are {allowed}")]
    Invalid {
        /// The parameter.
        name: String,
        /// What was given.
        value: String,
        /// What it may be.
        allowed: String,
    },
    /// Longer than the parameter can be.
    #[error("{name} is longer than {max} characters")]
    TooLong {
        /// The parameter.
        name: String,
        /// Its limit.
        max: usize,
    },
}

impl BadParameter {
    /// The parameter it is about.
    pub fn name(&self) -> &str {
        match self {
            BadParameter::Unknown { name }
            | BadParameter::Repeated { name }
            | BadParameter::Invalid { name, .. }
            | BadParameter::TooLong { name, .. } => name,
        }
    }

    /// What is wrong, in `lang`.
    pub fn message(&self, lang: Lang) -> String {
        match self {
            BadParameter::Unknown { name } => lang.fill("error.unknown", &[("name", name)]),
            BadParameter::Repeated { name } => lang.fill("error.repeated", &[("name", name)]),
            BadParameter::Invalid {
                name,
                value,
                allowed,
            } => lang.fill(
                "error.invalid",
                &[("name", name), ("value", value), ("allowed", allowed)],
            ),
            BadParameter::TooLong { name, max } => lang.fill(
                "error.too_long",
                &[("name", name), ("max", &max.to_string())],
            ),
        }
    }
}

/// The parameters of a query string, each at most once and each one `allowed`; empty values
/// (what a form sends for an empty field) count as absent.
pub fn parameters(
    query: Option<&str>,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, BadParameter> {
    let mut out = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !allowed.contains(&name.as_ref()) {
            return Err(BadParameter::Unknown {
                name: name.into_owned(),
            });
        }
        if out.contains_key(name.as_ref()) {
            return Err(BadParameter::Repeated {
                name: name.into_owned(),
            });
        }
        let limit = if name == "q" {
            MAX_TEXT_CHARS
        } else {
            MAX_VALUE_CHARS
        };
        if value.chars().count() > limit {
            return Err(BadParameter::TooLong {
                name: name.into_owned(),
                max: limit,
            });
        }
        out.insert(name.into_owned(), value.trim().to_owned());
    }
    out.retain(|_, v| !v.is_empty());
    Ok(out)
}

/// `?lang=`, if given: the language it names.
pub fn lang(params: &BTreeMap<String, String>) -> Result<Option<Lang>, BadParameter> {
    params
        .get("lang")
        .map(|value| {
            Lang::from_param(value).ok_or_else(|| BadParameter::Invalid {
                name: "lang".to_owned(),
                value: value.clone(),
                allowed: "zh-CN, en".to_owned(),
            })
        })
        .transpose()
}

/// The parameters of pages without their own (home, dataset).
pub const PLAIN: &[&str] = &["lang"];

/// The parameters of `/datasets`.
pub const SEARCH: &[&str] = &[
    "lang",
    "q",
    "category",
    "department",
    "format",
    "license",
    "openness",
    "sort",
    "page",
];

/// A search page's state: everything in its URL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SearchState {
    /// `?lang=`, when the URL chose the language.
    pub lang: Option<Lang>,
    /// `?q=`.
    pub text: String,
    /// The facet filters, by facet (at most one value each).
    pub filters: BTreeMap<Facet, String>,
    /// `?sort=`, when given; otherwise relevance with a query and newest without.
    pub sort: Option<Sort>,
    /// `?page=`, from 1.
    pub page: usize,
}

/// The URL parameter of a facet the website filters by.
pub fn facet_param(facet: Facet) -> &'static str {
    match facet {
        Facet::Category => "category",
        Facet::Department => "department",
        Facet::Format => "format",
        Facet::License => "license",
        Facet::Openness => "openness",
        Facet::Tag => "tag",
        Facet::Id => "id",
    }
}

/// The URL value of a sort.
pub fn sort_param(sort: Sort) -> &'static str {
    match sort {
        Sort::Relevance => "relevance",
        Sort::Newest => "newest",
        Sort::Downloads => "downloads",
    }
}

impl SearchState {
    /// Reads `/datasets?...`.
    pub fn parse(query: Option<&str>) -> Result<SearchState, BadParameter> {
        let params = parameters(query, SEARCH)?;
        let mut state = SearchState {
            lang: lang(&params)?,
            text: params.get("q").cloned().unwrap_or_default(),
            page: 1,
            ..SearchState::default()
        };
        for facet in crate::portal::search::SHOWN_FACETS {
            if let Some(value) = params.get(facet_param(*facet)) {
                state.filters.insert(*facet, value.clone());
            }
        }
        let choice = |name: &str, value: &str, allowed: &[&str]| BadParameter::Invalid {
            name: name.to_owned(),
            value: value.to_owned(),
            allowed: allowed.join(", "),
        };
        if let Some(openness) = state.filters.get(&Facet::Openness)
            && !["unconditional", "conditional"].contains(&openness.as_str())
        {
            return Err(choice(
                "openness",
                openness,
                &["unconditional", "conditional"],
            ));
        }
        if let Some(format) = state.filters.get(&Facet::Format)
            && !crate::portal::FORMATS.contains(&format.to_lowercase().as_str())
        {
            return Err(choice("format", format, crate::portal::FORMATS));
        }
        state.sort = match params.get("sort").map(String::as_str) {
            None => None,
            Some("relevance") => Some(Sort::Relevance),
            Some("newest") => Some(Sort::Newest),
            Some("downloads") => Some(Sort::Downloads),
            Some(other) => {
                return Err(choice("sort", other, &["relevance", "newest", "downloads"]));
            }
        };
        if let Some(page) = params.get("page") {
            state.page = page
                .parse::<usize>()
                .ok()
                .filter(|p| (1..=MAX_PAGE).contains(p))
                .ok_or_else(|| BadParameter::Invalid {
                    name: "page".to_owned(),
                    value: page.clone(),
                    allowed: format!("1 … {MAX_PAGE}"),
                })?;
        }
        Ok(state)
    }

    /// The order the hits are in.
    pub fn effective_sort(&self) -> Sort {
        self.sort.unwrap_or(if self.text.trim().is_empty() {
            Sort::Newest
        } else {
            Sort::Relevance
        })
    }

    /// The shared search this page runs.
    pub fn query(&self) -> Query {
        Query {
            text: self.text.clone(),
            filters: self.filters.iter().map(|(f, v)| (*f, v.clone())).collect(),
            sort: self.effective_sort(),
        }
    }

    /// Its URL, `/datasets?...`, parameters in a fixed order and absent when empty or default.
    pub fn url(&self) -> String {
        let mut query = form_urlencoded::Serializer::new(String::new());
        if let Some(lang) = self.lang {
            query.append_pair("lang", lang.tag());
        }
        if !self.text.is_empty() {
            query.append_pair("q", &self.text);
        }
        for (facet, value) in &self.filters {
            query.append_pair(facet_param(*facet), value);
        }
        if let Some(sort) = self.sort {
            query.append_pair("sort", sort_param(sort));
        }
        if self.page > 1 {
            query.append_pair("page", &self.page.to_string());
        }
        let query = query.finish();
        if query.is_empty() {
            "/datasets".to_owned()
        } else {
            format!("/datasets?{query}")
        }
    }

    /// The same search filtered by `facet` = `value`, from its first page.
    pub fn with_filter(&self, facet: Facet, value: &str) -> SearchState {
        let mut next = self.clone();
        next.filters.insert(facet, value.to_owned());
        next.page = 1;
        next
    }

    /// The same search without the filter on `facet`, from its first page.
    pub fn without_filter(&self, facet: Facet) -> SearchState {
        let mut next = self.clone();
        next.filters.remove(&facet);
        next.page = 1;
        next
    }

    /// The same search in another order, from its first page.
    pub fn sorted(&self, sort: Sort) -> SearchState {
        SearchState {
            sort: Some(sort),
            page: 1,
            ..self.clone()
        }
    }

    /// The same search on page `page`.
    pub fn on_page(&self, page: usize) -> SearchState {
        SearchState {
            page,
            ..self.clone()
        }
    }
}

/// `path` with its query's `lang` set to `lang`, the rest of the query as it was: the language
/// switch's link.
pub fn with_lang(path: &str, query: Option<&str>, lang: Lang) -> String {
    let mut out = form_urlencoded::Serializer::new(String::new());
    out.append_pair("lang", lang.tag());
    for (name, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if name != "lang" {
            out.append_pair(&name, &value);
        }
    }
    format!("{path}?{}", out.finish())
}

/// A link to `path` that keeps the language the URL chose, if it chose one.
pub fn link(path: &str, lang: Option<Lang>) -> String {
    match lang {
        Some(lang) => format!("{path}?lang={}", lang.tag()),
        None => path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_search_url_reads_back_as_the_same_state() {
        let state = SearchState::parse(Some(
            "q=%E5%85%AC%E4%BA%A4+bus&category=transport&format=csv&sort=newest&page=2&lang=en",
        ))
        .unwrap_or_default();
        assert_eq!(state.text, "公交 bus");
        assert_eq!(state.page, 2);
        assert_eq!(state.lang, Some(Lang::En));
        let url = state.url();
        let again = SearchState::parse(url.split_once('?').map(|(_, q)| q)).unwrap_or_default();
        assert_eq!(again, state);
        assert_eq!(
            state.with_filter(Facet::Openness, "conditional").page,
            1,
            "a new filter starts from the first page"
        );
        assert_eq!(
            SearchState::parse(Some("q=&category=")).map(|s| s.url()),
            Ok("/datasets".to_owned())
        );
    }

    #[test]
    fn bad_parameters_are_named() {
        let name = |q: &str| {
            SearchState::parse(Some(q))
                .err()
                .map(|e| e.name().to_owned())
        };
        assert_eq!(name("page=0"), Some("page".to_owned()));
        assert_eq!(name("page=x"), Some("page".to_owned()));
        assert_eq!(name("page=10001"), Some("page".to_owned()));
        assert_eq!(name("sort=popular"), Some("sort".to_owned()));
        assert_eq!(name("openness=secret"), Some("openness".to_owned()));
        assert_eq!(name("format=xlsx"), Some("format".to_owned()));
        assert_eq!(name("lang=fr"), Some("lang".to_owned()));
        assert_eq!(name("colour=red"), Some("colour".to_owned()));
        assert_eq!(name("q=a&q=b"), Some("q".to_owned()));
        assert_eq!(
            name(&format!("q={}", "长".repeat(201))),
            Some("q".to_owned())
        );
        assert_eq!(name("q=bus&category=transport"), None);
    }

    #[test]
    fn the_language_switch_keeps_path_and_query() {
        assert_eq!(
            with_lang("/datasets", Some("q=bus&lang=zh-CN&page=2"), Lang::En),
            "/datasets?lang=en&q=bus&page=2"
        );
        assert_eq!(with_lang("/", None, Lang::Zh), "/?lang=zh-CN");
    }
}
