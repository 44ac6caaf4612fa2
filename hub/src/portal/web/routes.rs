//! The website's handlers: `GET /` for browsers, `/datasets`, `/datasets/{id}` and the style
//! sheet. Each reads its query strictly ([`super::query`]), loads what it shows from the store,
//! builds a page ([`super::pages`]) and renders it; a bad parameter is a 400 page naming it, an
//! unknown dataset a 404 page, a store that cannot answer a 503 page.

use std::collections::BTreeMap;
use std::sync::Arc;

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::i18n::{CATEGORIES, Lang};
use super::pages::{
    Badge, Card, Counted, Dataset, Datasets, DeclaredView, ErrorPage, FacetView, FieldView,
    FileView, HistoryRow, Home, Layout, PreviewView, QualityView, SortLink, grouped, human_size,
    json_ld, summary, when,
};
use super::preview;
use super::query::{self, BadParameter, PAGE_SIZE, SearchState, link, with_lang};
use crate::portal::catalogue::Snapshot;
use crate::portal::history::{self, Change};
use crate::portal::http::{PortalHttp, rfc3339};
use crate::portal::quality::{CHECKS, DIMENSIONS, Quality, rating};
use crate::portal::search::{self, Facet, Sort};
use crate::portal::timeliness::{Timeliness, frequency, judge};
use crate::portal::{Entry, valid_id};
use crate::service::now_micros;

/// The style sheet, served from the hub (no third-party host, and a `style-src 'self'` policy).
const CSS: &str = include_str!("portal.css");

/// Datasets the home page lists as recently updated.
const RECENT: usize = 5;

/// What a page's request says about its language: `?lang=` if given, else `Accept-Language`.
pub(super) fn language(explicit: Option<Lang>, headers: &HeaderMap) -> Lang {
    explicit.unwrap_or_else(|| {
        Lang::from_accept_language(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        )
    })
}

/// Whether a request to `/` is from a browser: its `Accept` names `text/html` (browsers send
/// it first); API clients that send nothing or `application/json` keep the JSON index.
pub fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|item| {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or_default().trim();
            let refused = parts.any(|p| {
                p.trim()
                    .strip_prefix("q=")
                    .and_then(|q| q.trim().parse::<f32>().ok())
                    == Some(0.0)
            });
            range.eq_ignore_ascii_case("text/html") && !refused
        })
}

/// The page frame of a request for `path?query`.
pub(super) struct Frame<'a> {
    pub(super) state: &'a PortalHttp,
    pub(super) lang: Lang,
    pub(super) explicit: Option<Lang>,
    pub(super) path: &'a str,
    pub(super) query: Option<&'a str>,
}

impl Frame<'_> {
    pub(super) fn layout(&self, title: String, current: &'static str) -> Layout {
        let node = self.state.hub.config.name.as_str();
        Layout {
            lang: self.lang,
            title,
            node_label: self.lang.fill("site.node", &[("node", node)]),
            footer_about: self.lang.fill("footer.about", &[("node", node)]),
            switch_url: with_lang(self.path, self.query, self.lang.other()),
            home_url: link("/", self.explicit),
            datasets_url: link("/datasets", self.explicit),
            departments_url: link("/departments", self.explicit),
            changes_url: link("/changes", self.explicit),
            lang_param: self.explicit.map(Lang::tag),
            alternates: Vec::new(),
            json_ld: None,
            base: self.state.portal.public_url.clone(),
            current,
        }
    }

    pub(super) fn dataset_url(&self, id: &str) -> String {
        link(&format!("/datasets/{id}"), self.explicit)
    }

    pub(super) fn card(&self, entry: &Entry) -> Card {
        let m = &entry.metadata;
        let downloads = self.state.portal.downloads.count(&m.id);
        let (updated, updated_iso) = when(entry.published_at);
        Card {
            title: m.title.clone(),
            url: self.dataset_url(&m.id),
            summary: summary(&m.description, 200),
            publisher: m.organization_name.clone(),
            category: self.lang.category(&m.category),
            openness: badge(self.lang, entry),
            updated,
            updated_iso,
            formats: entry
                .files
                .iter()
                .map(|f| f.format.to_uppercase())
                .collect::<Vec<_>>()
                .join(", "),
            downloads: self.lang.fill(
                "card.downloads",
                &[("n", &grouped(i64::try_from(downloads).unwrap_or(i64::MAX)))],
            ),
        }
    }

    /// A 400 page naming the parameter.
    pub(super) fn bad_request(&self, bad: &BadParameter) -> Response {
        let page = ErrorPage {
            layout: self.layout(self.lang.t("error.title").to_owned(), ""),
            heading: self.lang.t("error.title"),
            message: bad.message(self.lang),
            parameter: Some(bad.name().to_owned()),
        };
        html(StatusCode::BAD_REQUEST, self.lang, page.render())
    }

    /// The 503 page when the store cannot answer; `cause` is logged, not shown.
    pub(super) fn unavailable(&self, cause: &str) -> Response {
        tracing::warn!(error = cause, "a portal page cannot read the store");
        let page = ErrorPage {
            layout: self.layout(self.lang.t("unavailable.title").to_owned(), ""),
            heading: self.lang.t("unavailable.title"),
            message: self.lang.t("unavailable.body").to_owned(),
            parameter: None,
        };
        html(StatusCode::SERVICE_UNAVAILABLE, self.lang, page.render())
    }
}

/// The 503 page of a download at `path` whose files are being restored
/// ([`crate::portal::restore`]), in the language the browser asks for.
pub fn restoring(state: &PortalHttp, headers: &HeaderMap, path: &str) -> Response {
    let frame = Frame {
        state,
        lang: language(None, headers),
        explicit: None,
        path,
        query: None,
    };
    let page = ErrorPage {
        layout: frame.layout(frame.lang.t("restoring.title").to_owned(), ""),
        heading: frame.lang.t("restoring.title"),
        message: frame.lang.t("restoring.body").to_owned(),
        parameter: None,
    };
    html(StatusCode::SERVICE_UNAVAILABLE, frame.lang, page.render())
}

pub(super) fn badge(lang: Lang, entry: &Entry) -> Badge {
    if entry.conditional() {
        Badge {
            label: lang.t("openness.conditional"),
            class: "conditional",
        }
    } else {
        Badge {
            label: lang.t("openness.unconditional"),
            class: "open",
        }
    }
}

/// An HTML answer with the headers every page has.
pub(super) fn html(status: StatusCode, lang: Lang, rendered: askama::Result<String>) -> Response {
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "rendering a portal page");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page cannot be rendered\n",
            )
                .into_response();
        }
    };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    let mut put = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    put(header::CONTENT_TYPE, "text/html; charset=utf-8");
    // No script runs on these pages (JSON-LD is data): nothing injected could run either.
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
    );
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::REFERRER_POLICY, "same-origin");
    put(header::VARY, "Accept, Accept-Language");
    put(header::CACHE_CONTROL, "no-cache");
    put(
        header::CONTENT_LANGUAGE,
        match lang {
            Lang::Zh => "zh-CN",
            Lang::En => "en",
        },
    );
    response
}

/// `GET /assets/portal.css`.
pub async fn css() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        CSS,
    )
        .into_response()
}

pub(super) async fn snapshot(state: &PortalHttp) -> Result<Arc<Snapshot>, tonic::Status> {
    state.portal.snapshot(&state.hub.store).await
}

/// `GET /` for a browser.
pub async fn home(state: &PortalHttp, headers: &HeaderMap, raw: Option<&str>) -> Response {
    let params = query::parameters(raw, query::PLAIN).and_then(|p| query::lang(&p));
    let explicit = params.as_ref().ok().copied().flatten();
    let frame = Frame {
        state,
        lang: language(explicit, headers),
        explicit,
        path: "/",
        query: raw,
    };
    if let Err(bad) = params {
        return frame.bad_request(&bad);
    }
    let snapshot = match snapshot(state).await {
        Ok(snapshot) => snapshot,
        Err(status) => return frame.unavailable(status.message()),
    };
    let lang = frame.lang;
    let browse = SearchState {
        lang: explicit,
        page: 1,
        ..SearchState::default()
    };
    // Counted once per state of the catalogue, not per request.
    let category_counts: BTreeMap<&str, usize> = snapshot
        .total(Facet::Category)
        .iter()
        .map(|(c, n)| (c.as_str(), *n))
        .collect();
    // The plan's categories in its order, then any other a dataset names.
    let mut categories: Vec<Counted> = CATEGORIES
        .iter()
        .map(|(id, _, _)| (*id).to_owned())
        .chain(
            category_counts
                .keys()
                .filter(|c| !CATEGORIES.iter().any(|(id, _, _)| id == *c))
                .map(|c| (*c).to_owned()),
        )
        .map(|id| Counted {
            label: lang.category(&id),
            url: browse.with_filter(Facet::Category, &id).url(),
            count: category_counts
                .get(id.as_str())
                .copied()
                .unwrap_or_default(),
            selected: false,
        })
        .collect();
    categories.sort_by_key(|c| c.count == 0);
    let departments = snapshot
        .total(Facet::Department)
        .iter()
        .map(|(code, count)| Counted {
            label: snapshot
                .names
                .get(code)
                .cloned()
                .unwrap_or_else(|| code.clone()),
            url: browse.with_filter(Facet::Department, code).url(),
            count: *count,
            selected: false,
        })
        .collect();
    let total = snapshot.entries.len();
    let counts = state
        .portal
        .downloads
        .counts(snapshot.entries.iter().map(|e| e.metadata.id.as_str()));
    let mut popular: Vec<usize> = snapshot
        .index
        .newest()
        .iter()
        .copied()
        .filter(|&i| counts[i] > 0)
        .collect();
    popular.sort_by_key(|&i| std::cmp::Reverse(counts[i]));
    let page = Home {
        layout: frame.layout(lang.t("nav.home").to_owned(), "home"),
        categories,
        departments,
        recent: snapshot
            .at(snapshot.index.newest())
            .take(RECENT)
            .map(|e| frame.card(e))
            .collect(),
        popular: snapshot
            .at(&popular)
            .take(RECENT)
            .map(|e| frame.card(e))
            .collect(),
        all_label: lang.fill("home.all", &[("n", &total.to_string())]),
        text: String::new(),
        hidden: Vec::new(),
        total,
    };
    html(StatusCode::OK, lang, page.render())
}

fn facet_title(lang: Lang, facet: Facet) -> &'static str {
    lang.t(match facet {
        Facet::Category => "facet.category",
        Facet::Department => "facet.department",
        Facet::Format => "facet.format",
        Facet::License => "facet.license",
        _ => "facet.openness",
    })
}

fn facet_label(lang: Lang, facet: Facet, value: &str, names: &BTreeMap<String, String>) -> String {
    match facet {
        Facet::Category => lang.category(value),
        Facet::Department => names
            .get(&value.to_lowercase())
            .cloned()
            .unwrap_or_else(|| value.to_owned()),
        Facet::Format => value.to_uppercase(),
        Facet::Openness if value == "conditional" => lang.t("openness.conditional").to_owned(),
        Facet::Openness if value == "unconditional" => lang.t("openness.unconditional").to_owned(),
        _ => value.to_owned(),
    }
}

/// `GET /datasets?q=&category=&department=&format=&license=&openness=&sort=&page=&lang=`.
pub async fn datasets(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let parsed = SearchState::parse(raw.as_deref());
    // A bad page still speaks the language its URL asked for, if that part was good.
    let explicit = match &parsed {
        Ok(s) => s.lang,
        Err(_) => query::parameters(raw.as_deref(), query::SEARCH)
            .ok()
            .and_then(|p| query::lang(&p).ok().flatten()),
    };
    let frame = Frame {
        state: &state,
        lang: language(explicit, &headers),
        explicit,
        path: "/datasets",
        query: raw.as_deref(),
    };
    let search_state = match parsed {
        Ok(s) => s,
        Err(bad) => return frame.bad_request(&bad),
    };
    let snapshot = match snapshot(&state).await {
        Ok(snapshot) => snapshot,
        Err(status) => return frame.unavailable(status.message()),
    };
    let lang = frame.lang;
    let names = &snapshot.names;
    let query = search_state.query();
    let mut hits = snapshot.index.search(&snapshot.entries, &query);
    if query.sort == Sort::Downloads {
        let counts = state.portal.downloads.counts(
            hits.iter()
                .map(|&i| snapshot.entries[i].metadata.id.as_str()),
        );
        search::by_downloads(&mut hits, &counts);
    }
    let pages = hits.len().div_ceil(PAGE_SIZE).max(1);
    let page = search_state.page;
    let results = snapshot
        .at(&hits)
        .skip((page - 1) * PAGE_SIZE)
        .take(PAGE_SIZE)
        .map(|e| frame.card(e))
        .collect();
    // Browsing everything shows the catalogue's counts, worked out once per state of it.
    let everything = query.text.trim().is_empty() && query.filters.is_empty();
    let facets = search::SHOWN_FACETS
        .iter()
        .map(|facet| FacetView {
            title: facet_title(lang, *facet),
            options: if everything {
                snapshot.total(*facet).to_vec()
            } else {
                snapshot.index.counts(&snapshot.entries, &hits, *facet)
            }
            .into_iter()
            .map(|(value, count)| Counted {
                label: facet_label(lang, *facet, &value, names),
                url: search_state.with_filter(*facet, &value).url(),
                selected: search_state
                    .filters
                    .get(facet)
                    .is_some_and(|v| v.eq_ignore_ascii_case(&value)),
                count,
            })
            .collect(),
        })
        .collect();
    let active = search_state
        .filters
        .iter()
        .map(|(facet, value)| {
            (
                format!(
                    "{}: {}",
                    facet_title(lang, *facet),
                    facet_label(lang, *facet, value, names)
                ),
                search_state.without_filter(*facet).url(),
            )
        })
        .collect();
    let clear = SearchState {
        lang: search_state.lang,
        text: search_state.text.clone(),
        page: 1,
        ..SearchState::default()
    };
    let current = search_state.effective_sort();
    let sorts = [
        (Sort::Relevance, "sort.relevance"),
        (Sort::Newest, "sort.newest"),
        (Sort::Downloads, "sort.downloads"),
    ]
    .into_iter()
    .map(|(sort, key)| SortLink {
        label: lang.t(key),
        url: search_state.sorted(sort).url(),
        current: sort == current,
    })
    .collect();
    let mut hidden: Vec<(&'static str, String)> = search_state
        .filters
        .iter()
        .map(|(f, v)| (query::facet_param(*f), v.clone()))
        .collect();
    if let Some(sort) = search_state.sort {
        hidden.push(("sort", query::sort_param(sort).to_owned()));
    }
    let title = if search_state.text.is_empty() {
        lang.t("datasets.title").to_owned()
    } else {
        format!("“{}” · {}", search_state.text, lang.t("datasets.title"))
    };
    let page_view = Datasets {
        layout: frame.layout(title, "datasets"),
        text: search_state.text.clone(),
        hidden,
        count_label: lang.fill("results.count", &[("n", &hits.len().to_string())]),
        results,
        facets,
        active,
        clear_url: clear.url(),
        sorts,
        page_label: (pages > 1 || page > 1).then(|| {
            lang.fill(
                "results.page",
                &[("page", &page.to_string()), ("pages", &pages.to_string())],
            )
        }),
        prev_url: (page > 1).then(|| search_state.on_page((page - 1).min(pages)).url()),
        next_url: (page < pages).then(|| search_state.on_page(page + 1).url()),
    };
    html(StatusCode::OK, lang, page_view.render())
}

fn license_url(id: &str) -> Option<String> {
    (!id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.+".contains(&b)))
    .then(|| format!("https://spdx.org/licenses/{id}.html"))
}

/// schema.org's `Dataset` of an entry, for search engines.
fn schema_org(entry: &Entry, base: &str) -> serde_json::Value {
    let m = &entry.metadata;
    let api = entry.to_api();
    json!({
        "@context": "https://schema.org/",
        "@type": "Dataset",
        "@id": format!("{base}/datasets/{}", m.id),
        "url": format!("{base}/datasets/{}", m.id),
        "identifier": m.id,
        "name": m.title,
        "description": m.description,
        "keywords": m.tags,
        "license": license_url(&m.license),
        "version": m.version.to_string(),
        "dateModified": rfc3339(entry.published_at),
        "isAccessibleForFree": true,
        "conditionsOfAccess": entry.conditional().then_some(
            "有条件开放: download with the token of an approved application"),
        "publisher": {
            "@type": "Organization",
            "name": m.organization_name,
            "identifier": m.organization_credit_code,
        },
        "creator": {
            "@type": "Organization",
            "name": m.organization_name,
            "identifier": m.organization_credit_code,
        },
        "distribution": api.files.iter().map(|f| json!({
            "@type": "DataDownload",
            "encodingFormat": if f.format == "csv" { "text/csv" } else { "application/json" },
            "contentUrl": format!("{base}{}", f.path),
            "contentSize": f.size.to_string(),
            "sha256": f.sha256,
        })).collect::<Vec<_>>(),
        "includedInDataCatalog": { "@type": "DataCatalog", "url": format!("{base}/catalog.jsonld") },
    })
}

async fn preview_of(state: &PortalHttp, entry: &Entry, lang: Lang) -> PreviewView {
    if entry.conditional() {
        return PreviewView::Note(lang.t("preview.conditional"));
    }
    let Some(csv) = entry.files.iter().find(|f| f.format == "csv") else {
        return PreviewView::Note(lang.t("preview.none"));
    };
    let key = (
        entry.metadata.id.clone(),
        entry.metadata.version,
        csv.sha256.clone(),
    );
    let read = match state.portal.previews.get(&key) {
        Some(read) => Ok(read),
        None => {
            let path = state
                .portal
                .file_path(&entry.metadata.id, entry.metadata.version, "csv");
            match tokio::task::spawn_blocking(move || preview::read(&path, preview::ROWS)).await {
                Ok(Ok(read)) => {
                    let read = Arc::new(read);
                    state.portal.previews.put(key, read.clone());
                    Ok(read)
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
    };
    match read {
        Ok(p) if p.rows.is_empty() => PreviewView::Note(lang.t("preview.empty")),
        Ok(p) => PreviewView::Rows {
            caption: lang.fill("preview.caption", &[("n", &p.rows.len().to_string())]),
            columns: p.columns.clone(),
            rows: p.rows.clone(),
        },
        Err(e) => {
            // A newer version may have replaced the file since the entry was read.
            tracing::warn!(dataset = entry.metadata.id, error = %e, "previewing a dataset");
            PreviewView::Note(lang.t("preview.unavailable"))
        }
    }
}

fn snippets(entry: &Entry, base: &str, lang: Lang) -> Vec<(&'static str, String)> {
    let m = &entry.metadata;
    let auth = if entry.conditional() {
        " -H \"Authorization: Bearer $GOVDC_TOKEN\""
    } else {
        ""
    };
    let mut curl = String::new();
    for f in &entry.to_api().files {
        curl.push_str(&format!("curl -fLO{auth} {base}{}\n", f.path));
    }
    curl.push_str(&format!(
        "curl -fLO {base}/download/{}/{}/SHA256SUMS\nsha256sum -c --ignore-missing SHA256SUMS",
        m.id, m.version
    ));
    vec![
        (lang.t("snippet.curl"), curl),
        (
            lang.t("snippet.ckanapi"),
            format!("ckanapi action package_show id={} -r {base}", m.id),
        ),
        (
            lang.t("snippet.json"),
            format!("curl -fL {base}/api/datasets/{}", m.id),
        ),
        (
            lang.t("snippet.dcat"),
            format!(
                "curl -fL {base}{}\n# the whole catalogue: {base}/catalog.jsonld",
                super::alternates::dcat_path(&m.id)
            ),
        ),
    ]
}

/// Rows of version history a dataset page shows (the newest).
const HISTORY_ROWS: usize = 20;

/// A quality as a page shows it, in `lang`.
pub(super) fn quality_view(lang: Lang, quality: &Quality) -> QualityView {
    QualityView {
        summary: quality_summary(lang, quality.score, quality.max),
        rating: quality.rating(),
        dimensions: DIMENSIONS
            .iter()
            .map(|d| {
                let (met, max) = quality.dimension(d);
                let missing = CHECKS
                    .iter()
                    .filter(|c| c.dimension == *d && quality.missing.iter().any(|m| m == c.key))
                    .map(|c| lang.t(&format!("quality.check.{}", c.key)))
                    .collect();
                (
                    lang.t(&format!("quality.{d}")),
                    format!("{met} / {max}"),
                    missing,
                )
            })
            .collect(),
    }
}

/// "312 of 405 points (Good)".
pub(super) fn quality_summary(lang: Lang, score: u32, max: u32) -> String {
    lang.fill(
        "quality.score",
        &[
            ("score", &score.to_string()),
            ("max", &max.to_string()),
            ("rating", lang.t(&format!("rating.{}", rating(score)))),
        ],
    )
}

/// `GET /datasets/{id}`.
pub async fn dataset(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query::parameters(raw.as_deref(), query::PLAIN).and_then(|p| query::lang(&p));
    let explicit = params.as_ref().ok().copied().flatten();
    // Encoded: the language switch links back to this path, whatever the id holds.
    let path = format!(
        "/datasets/{}",
        form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
    );
    let frame = Frame {
        state: &state,
        lang: language(explicit, &headers),
        explicit,
        path: &path,
        query: raw.as_deref(),
    };
    if let Err(bad) = params {
        return frame.bad_request(&bad);
    }
    let lang = frame.lang;
    // One read for the catalogue's snapshot (already decoded, as the API answers from it) and
    // the dataset's history: no row decoded per view.
    let found = if valid_id(&id) {
        let (lookup, portal) = (id.clone(), state.portal.clone());
        state
            .hub
            .store
            .read(move |conn| {
                let snapshot = portal.catalogue.snapshot(conn)?;
                let Some(at) = snapshot.position(&lookup) else {
                    return Ok(None);
                };
                let history = history::of_dataset(conn, &lookup, HISTORY_ROWS)?;
                Ok(Some((snapshot, at, history)))
            })
            .await
    } else {
        Ok(None)
    };
    let (snapshot, at, events) = match found {
        Ok(Some(found)) => found,
        Ok(None) => {
            let page = ErrorPage {
                layout: frame.layout(lang.t("notfound.title").to_owned(), "datasets"),
                heading: lang.t("notfound.title"),
                message: lang.fill("notfound.body", &[("id", &id)]),
                parameter: None,
            };
            return html(StatusCode::NOT_FOUND, lang, page.render());
        }
        Err(status) => return frame.unavailable(status.message()),
    };
    let entry = &snapshot.entries[at];
    let base = state.portal.public_url.clone();
    let m = &entry.metadata;
    let browse = SearchState {
        lang: explicit,
        page: 1,
        ..SearchState::default()
    };
    let mut layout = frame.layout(m.title.clone(), "datasets");
    layout.alternates = vec![
        ("application/json", format!("{base}/api/datasets/{}", m.id)),
        (
            "application/ld+json",
            format!("{base}{}", super::alternates::dcat_path(&m.id)),
        ),
    ];
    layout.json_ld = Some(json_ld(&schema_org(entry, &base)));
    let risk = m
        .risk
        .as_ref()
        .map(|r| {
            vec![
                (lang.t("risk.smallest_group"), grouped(r.smallest_group)),
                (lang.t("risk.groups"), grouped(r.groups)),
                (
                    lang.t("risk.highest"),
                    format!("{:.2} %", r.highest_prosecutor_risk_percent),
                ),
                (
                    lang.t("risk.average"),
                    format!("{:.2} %", r.average_prosecutor_risk_percent),
                ),
                (
                    lang.t("risk.threshold"),
                    format!("{:.2} %", r.threshold_percent),
                ),
                (lang.t("risk.at_risk"), grouped(r.records_at_risk)),
            ]
        })
        .unwrap_or_default();
    let preview = preview_of(&state, entry, lang).await;
    // The quality stored with this version; worked out again for one published before the
    // store kept it.
    // The quality stored with this version (worked out again by the snapshot for one published
    // before the store kept it).
    let quality = &snapshot.quality[at];
    let timeliness = match judge(entry.published_at, m.update_interval_seconds, now_micros()) {
        Timeliness::Irregular => ("irregular", lang.t("timeliness.irregular").to_owned()),
        Timeliness::OnTime { due } => (
            "on-time",
            lang.fill("timeliness.on_time", &[("due", &when(due).0)]),
        ),
        Timeliness::Overdue { due } => (
            "overdue",
            lang.fill("timeliness.overdue", &[("due", &when(due).0)]),
        ),
    };
    let history_rows = events
        .iter()
        .map(|e| HistoryRow {
            version: e.version,
            change: lang.t(match e.change {
                Change::Publish => "change.publish",
                Change::Unpublish => "change.unpublish",
            }),
            at: when(e.at),
            records: grouped(e.record_count),
            content: e.content_sha256.chars().take(16).collect(),
            content_full: e.content_sha256.clone(),
            quality: e
                .quality
                .as_ref()
                .map(|q| format!("{} / {}", q.score, q.max))
                .unwrap_or_default(),
        })
        .collect();
    let downloads = state.portal.downloads.count(&m.id);
    let page = Dataset {
        downloads: grouped(i64::try_from(downloads).unwrap_or(i64::MAX)),
        frequency: lang.t(&format!(
            "frequency.{}",
            frequency(m.update_interval_seconds)
        )),
        timeliness,
        quality: quality_view(lang, quality),
        history: history_rows,
        id: m.id.clone(),
        title: m.title.clone(),
        paragraphs: m
            .description
            .split("\n\n")
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .collect(),
        publisher: Counted {
            label: m.organization_name.clone(),
            url: browse
                .with_filter(Facet::Department, &search::department(entry))
                .url(),
            count: 0,
            selected: false,
        },
        category: Counted {
            label: lang.category(&m.category),
            url: browse.with_filter(Facet::Category, &m.category).url(),
            count: 0,
            selected: false,
        },
        tags: m.tags.clone(),
        license: (m.license.clone(), license_url(&m.license)),
        openness: badge(lang, entry),
        how: lang.t(if entry.conditional() {
            "openness.conditional.how"
        } else {
            "openness.unconditional.how"
        }),
        apply_url: entry
            .conditional()
            .then(|| super::apply::apply_path(&m.id, explicit)),
        version: m.version,
        records: grouped(m.record_count),
        updated: when(entry.published_at),
        files: entry
            .to_api()
            .files
            .into_iter()
            .map(|f| FileView {
                format: f.format.to_uppercase(),
                size: human_size(f.size),
                bytes: f.size,
                download_label: lang.fill(
                    "file.download_named",
                    &[("format", &f.format.to_uppercase())],
                ),
                url: format!("{base}{}", f.path),
                sha256: f.sha256,
            })
            .collect(),
        sums_url: format!("{base}/download/{}/{}/SHA256SUMS", m.id, m.version),
        fields: m
            .fields
            .iter()
            .map(|f| FieldView {
                name: f.name.clone(),
                treatment: lang.treatment(&f.treatment),
                description: f.description.clone(),
            })
            .collect(),
        declared: m
            .fields
            .iter()
            .filter(|f| !f.declared_identifiers.is_empty())
            .map(|f| DeclaredView {
                field: f.name.clone(),
                kinds: f.declared_identifiers.join(", "),
                justification: f.identifier_justification.clone(),
            })
            .collect(),
        risk,
        preview,
        snippets: snippets(entry, &base, lang),
        layout,
    };
    html(StatusCode::OK, lang, page.render())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn browsers_get_html_api_clients_json() {
        let accept = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::ACCEPT,
                HeaderValue::from_str(v).unwrap_or(HeaderValue::from_static("")),
            );
            wants_html(&h)
        };
        assert!(accept(
            "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
        ));
        assert!(!accept("application/json"));
        assert!(!accept("*/*"));
        assert!(!accept("text/html;q=0, application/json"));
        assert!(!wants_html(&HeaderMap::new()));
    }
}
