//! The department pages: `/departments`, every publishing department ranked by the mean
//! metadata quality of its datasets (then its on-time update rate), and
//! `/departments/{code}`, one department (by its CKAN organization name, the lower-cased credit
//! code) with its figures and its datasets, newest first, ten a page.
//!
//! What does not change between publications (each department's datasets and mean quality) is
//! worked out once per state of the catalogue ([`crate::portal::catalogue`]); the on-time rate
//! depends on the clock and the download counts change all the time, so they are counted per
//! request, over the department's datasets only.

use askama::Template;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::i18n::Lang;
use super::pages::{DepartmentPage, DepartmentRow, Departments, ErrorPage, grouped};
use super::query::{self, BadParameter, MAX_PAGE, PAGE_SIZE, SearchState, link};
use super::routes::{Frame, html, language, quality_summary, snapshot};
use crate::portal::catalogue::{Department, Snapshot};
use crate::portal::http::PortalHttp;
use crate::portal::quality::rating;
use crate::portal::search::Facet;
use crate::service::now_micros;

/// A department's on-time rate as a page shows it: `75 %`, or `—` without scheduled datasets.
fn rate(on: usize, of: usize) -> String {
    (on * 100)
        .checked_div(of)
        .map_or_else(|| "—".to_owned(), |p| format!("{p} %"))
}

fn downloads_of(state: &PortalHttp, snapshot: &Snapshot, department: &Department) -> u64 {
    state
        .portal
        .downloads
        .counts(
            department
                .datasets
                .iter()
                .map(|&i| snapshot.entries[i].metadata.id.as_str()),
        )
        .iter()
        .sum()
}

fn count(n: u64) -> String {
    grouped(i64::try_from(n).unwrap_or(i64::MAX))
}

/// The URL of a department's page.
pub fn department_url(code: &str, lang: Option<Lang>) -> String {
    let code: String = form_urlencoded::byte_serialize(code.as_bytes()).collect();
    link(&format!("/departments/{code}"), lang)
}

/// `GET /departments`.
pub async fn departments(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query::parameters(raw.as_deref(), query::PLAIN).and_then(|p| query::lang(&p));
    let explicit = params.as_ref().ok().copied().flatten();
    let frame = Frame {
        state: &state,
        lang: language(explicit, &headers),
        explicit,
        path: "/departments",
        query: raw.as_deref(),
    };
    if let Err(bad) = params {
        return frame.bad_request(&bad);
    }
    let snapshot = match snapshot(&state).await {
        Ok(snapshot) => snapshot,
        Err(status) => return frame.unavailable(status.message()),
    };
    let lang = frame.lang;
    let now = now_micros();
    let mut ranked: Vec<(&String, &Department, (usize, usize))> = snapshot
        .departments
        .iter()
        .map(|(code, d)| (code, d, snapshot.on_time(&d.datasets, now)))
        .collect();
    // Quality first, then the on-time rate (departments without a schedule after those with
    // one), then size, then name: a stable, explainable order.
    ranked.sort_by(|(_, a, (a_of, a_on)), (_, b, (b_of, b_on))| {
        let share = |on: usize, of: usize| (of > 0, (on * 10_000).checked_div(of).unwrap_or(0));
        b.quality
            .cmp(&a.quality)
            .then_with(|| share(*b_on, *b_of).cmp(&share(*a_on, *a_of)))
            .then_with(|| b.datasets.len().cmp(&a.datasets.len()))
            .then_with(|| a.name.cmp(&b.name))
    });
    let rows = ranked
        .into_iter()
        .enumerate()
        .map(|(i, (code, d, (of, on)))| DepartmentRow {
            rank: i + 1,
            name: d.name.clone(),
            url: department_url(code, explicit),
            datasets: d.datasets.len(),
            quality: quality_summary(lang, d.quality, crate::portal::quality::MAX),
            rating: rating(d.quality),
            on_time: rate(on, of),
            downloads: count(downloads_of(&state, &snapshot, d)),
        })
        .collect();
    let page = Departments {
        layout: frame.layout(lang.t("departments.title").to_owned(), "departments"),
        rows,
    };
    html(StatusCode::OK, lang, page.render())
}

/// `GET /departments/{code}?page=&lang=`.
pub async fn department(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path(code): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query::parameters(raw.as_deref(), &["lang", "page"]);
    let explicit = params
        .as_ref()
        .ok()
        .and_then(|p| query::lang(p).ok().flatten());
    let path = format!(
        "/departments/{}",
        form_urlencoded::byte_serialize(code.as_bytes()).collect::<String>()
    );
    let frame = Frame {
        state: &state,
        lang: language(explicit, &headers),
        explicit,
        path: &path,
        query: raw.as_deref(),
    };
    let page_number = match params.and_then(|p| {
        query::lang(&p)?;
        p.get("page")
            .map(|value| {
                value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=MAX_PAGE).contains(n))
                    .ok_or_else(|| BadParameter::Invalid {
                        name: "page".to_owned(),
                        value: value.clone(),
                        allowed: format!("1 … {MAX_PAGE}"),
                    })
            })
            .transpose()
    }) {
        Ok(page) => page.unwrap_or(1),
        Err(bad) => return frame.bad_request(&bad),
    };
    let snapshot = match snapshot(&state).await {
        Ok(snapshot) => snapshot,
        Err(status) => return frame.unavailable(status.message()),
    };
    let lang = frame.lang;
    let Some(department) = snapshot.departments.get(&code.to_lowercase()) else {
        let page = ErrorPage {
            layout: frame.layout(lang.t("department.notfound").to_owned(), "departments"),
            heading: lang.t("department.notfound"),
            message: lang.fill("department.notfound.body", &[("code", &code)]),
            parameter: None,
        };
        return html(StatusCode::NOT_FOUND, lang, page.render());
    };
    let code = code.to_lowercase();
    let (of, on) = snapshot.on_time(&department.datasets, now_micros());
    let pages = department.datasets.len().div_ceil(PAGE_SIZE).max(1);
    let at_page = |n: usize| {
        let mut url = department_url(&code, explicit);
        if n > 1 {
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("page={n}"));
        }
        url
    };
    let browse = SearchState {
        lang: explicit,
        page: 1,
        ..SearchState::default()
    };
    let on_time = if of == 0 {
        lang.t("department.no_schedule").to_owned()
    } else {
        lang.fill(
            "department.on_time",
            &[
                ("rate", &rate(on, of)),
                ("on", &on.to_string()),
                ("of", &of.to_string()),
            ],
        )
    };
    let page = DepartmentPage {
        layout: frame.layout(department.name.clone(), "departments"),
        name: department.name.clone(),
        code: code.to_uppercase(),
        figures: vec![
            (
                lang.t("departments.datasets"),
                department.datasets.len().to_string(),
            ),
            (
                lang.t("departments.quality"),
                quality_summary(lang, department.quality, crate::portal::quality::MAX),
            ),
            (lang.t("departments.on_time"), on_time),
            (
                lang.t("departments.downloads"),
                count(downloads_of(&state, &snapshot, department)),
            ),
        ],
        rating: rating(department.quality),
        results: snapshot
            .at(&department.datasets)
            .skip((page_number - 1) * PAGE_SIZE)
            .take(PAGE_SIZE)
            .map(|e| frame.card(e))
            .collect(),
        page_label: (pages > 1 || page_number > 1).then(|| {
            lang.fill(
                "results.page",
                &[
                    ("page", &page_number.to_string()),
                    ("pages", &pages.to_string()),
                ],
            )
        }),
        prev_url: (page_number > 1).then(|| at_page((page_number - 1).min(pages))),
        next_url: (page_number < pages).then(|| at_page(page_number + 1)),
        search_url: browse.with_filter(Facet::Department, &code).url(),
    };
    html(StatusCode::OK, lang, page.render())
}
