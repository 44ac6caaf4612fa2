//! The monitor's handlers: [`sharing`] (the overview and the 共享率 tables), [`catalogue`],
//! [`health`] (timeliness, federation, audit), [`account`] (sign-in and a department's own page),
//! and what they share here (the page frame, headers, strict queries, the audit status). Each reads its query strictly (the portal's
//! [`crate::portal::web::query::parameters`]: an unknown, repeated, oversized or invalid
//! parameter is a 400 page that names it), reads what it shows from the store, works it out
//! ([`super::figures`]) and renders it ([`super::pages`]).

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use govdc_hub_api::v1::{GrantState, Level, OpenType, Resource, ShareType, SharingStats};
use rusqlite::Connection;

use super::MonitorHttp;
use super::figures::{self, Column, DepartmentRow, GrantRow, NodeRow, Order};
use super::i18n::{fill, t};
use super::pages::*;
use super::session::{self, CSRF_COOKIE, SESSION_COOKIE, Session};
use super::trend;
use crate::anchor::{self, Anchor, Source};
use crate::portal::search::{self, Facet};
use crate::portal::web::i18n::Lang;
use crate::portal::web::pages::{grouped, summary, when};
use crate::portal::web::query::{self, BadParameter, link, with_lang};
use crate::portal::{Entry, StoredFile};
use crate::service::{DbResult, now_micros, tree_sharing_stats};

const PORTAL_CSS: &str = include_str!("../../portal/web/portal.css");
const MONITOR_CSS: &str = include_str!("../monitor.css");

/// Resources on a page of the catalogue.
pub const CATALOGUE_PAGE: usize = 20;
/// The largest form the monitor reads (a token is under 1 KiB).
const MAX_FORM: usize = 8 * 1024;

/// What a page's request says about its language: `?lang=` if given, else `Accept-Language`.
fn language(explicit: Option<Lang>, headers: &HeaderMap) -> Lang {
    explicit.unwrap_or_else(|| {
        Lang::from_accept_language(
            headers
                .get(header::ACCEPT_LANGUAGE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default(),
        )
    })
}

/// The navigation: path, message key, page name.
const NAV: &[(&str, &str, &str)] = &[
    ("/", "nav.overview", "overview"),
    ("/sharing/departments", "nav.departments", "departments"),
    ("/sharing/provinces", "nav.provinces", "provinces"),
    ("/catalogue", "nav.catalogue", "catalogue"),
    ("/timeliness", "nav.timeliness", "timeliness"),
    ("/federation", "nav.federation", "federation"),
    ("/audit", "nav.audit", "audit"),
];

/// One request's frame: who asks, in which language, for which page.
struct Frame<'a> {
    state: &'a MonitorHttp,
    lang: Lang,
    explicit: Option<Lang>,
    path: &'a str,
    query: Option<&'a str>,
    session: Option<(String, Session)>,
}

impl<'a> Frame<'a> {
    fn new(
        state: &'a MonitorHttp,
        headers: &HeaderMap,
        path: &'a str,
        query: Option<&'a str>,
        explicit: Option<Lang>,
    ) -> Frame<'a> {
        // A session of a department that has since left the node is over.
        let session = session::cookie(headers, SESSION_COOKIE).and_then(|id| {
            let s = state.sessions.get(&id)?;
            if state.hub.auth.is_member(&s.department) {
                Some((id, s))
            } else {
                state.sessions.end(&id);
                None
            }
        });
        Frame {
            state,
            lang: language(explicit, headers),
            explicit,
            path,
            query,
            session,
        }
    }

    fn layout(&self, title: String, current: &str) -> Layout {
        let node = self.state.hub.config.name.as_str();
        Layout {
            lang: self.lang,
            title,
            node_label: fill(self.lang, "site.node", &[("node", node)]),
            footer_about: fill(self.lang, "footer.about", &[("node", node)]),
            switch_url: with_lang(self.path, self.query, self.lang.other()),
            home_url: link("/", self.explicit),
            signin_url: link("/signin", self.explicit),
            mine_url: link("/mine", self.explicit),
            lang_param: self.explicit.map(Lang::tag),
            nav: NAV
                .iter()
                .map(|(path, key, name)| NavItem {
                    url: link(path, self.explicit),
                    label: t(self.lang, key),
                    current: *name == current,
                })
                .collect(),
            signed_in: self.session.as_ref().map(|(_, s)| s.department.clone()),
        }
    }

    fn link(&self, path: &str) -> String {
        link(path, self.explicit)
    }

    fn error(
        &self,
        status: StatusCode,
        heading: &'static str,
        message: String,
        parameter: Option<String>,
    ) -> Response {
        let page = ErrorPage {
            layout: self.layout(t(self.lang, heading).to_owned(), ""),
            heading: t(self.lang, heading),
            message,
            parameter,
        };
        html(status, self.lang, page.render())
    }

    fn bad_request(&self, bad: &BadParameter) -> Response {
        self.error(
            StatusCode::BAD_REQUEST,
            "error.title",
            bad.message(self.lang),
            Some(bad.name().to_owned()),
        )
    }

    fn unavailable(&self, cause: &str) -> Response {
        tracing::warn!(error = cause, "a monitor page cannot read the store");
        self.error(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable.title",
            t(self.lang, "unavailable.body").to_owned(),
            None,
        )
    }
}

/// An HTML answer with the headers every page has: no script may run (the pages have none),
/// no framing, no sniffing, nothing cached by shared caches (the pages are internal).
fn html(status: StatusCode, lang: Lang, rendered: askama::Result<String>) -> Response {
    let body = match rendered {
        Ok(body) => body,
        Err(e) => {
            tracing::error!(error = %e, "rendering a monitor page");
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "the page cannot be rendered\n",
            )
                .into_response();
        }
    };
    let mut response = (status, body).into_response();
    secure(response.headers_mut(), "text/html; charset=utf-8");
    response.headers_mut().insert(
        header::CONTENT_LANGUAGE,
        HeaderValue::from_static(lang.tag()),
    );
    response
}

fn secure(headers: &mut HeaderMap, content_type: &'static str) {
    let mut put = |name: header::HeaderName, value: &'static str| {
        headers.insert(name, HeaderValue::from_static(value));
    };
    put(header::CONTENT_TYPE, content_type);
    put(
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
         base-uri 'none'; frame-ancestors 'none'",
    );
    put(header::X_CONTENT_TYPE_OPTIONS, "nosniff");
    put(header::REFERRER_POLICY, "same-origin");
    put(header::VARY, "Accept-Language, Cookie");
    put(header::CACHE_CONTROL, "private, no-cache");
}

/// `GET /assets/portal.css`: the portal's style sheet, shared.
pub async fn portal_css() -> Response {
    css(PORTAL_CSS)
}

/// `GET /assets/monitor.css`: what the monitor adds to it.
pub async fn monitor_css() -> Response {
    css(MONITOR_CSS)
}

fn css(text: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        text,
    )
        .into_response()
}

/// Any other path: a 404 page.
pub async fn not_found(State(state): State<MonitorHttp>, headers: HeaderMap) -> Response {
    let frame = Frame::new(&state, &headers, "/", None, None);
    frame.error(
        StatusCode::NOT_FOUND,
        "notfound.title",
        t(frame.lang, "notfound.body").to_owned(),
        None,
    )
}

/// The parameters of `raw`, only `allowed` ones, and the language they name.
fn read_query(
    raw: Option<&str>,
    allowed: &[&str],
) -> Result<(BTreeMap<String, String>, Option<Lang>), BadParameter> {
    let params = query::parameters(raw, allowed)?;
    let lang = query::lang(&params)?;
    Ok((params, lang))
}

/// Parses `raw` for a page with `allowed` parameters, or answers the 400 page.
macro_rules! frame_or_400 {
    ($state:expr, $headers:expr, $path:expr, $raw:expr, $allowed:expr) => {{
        match read_query($raw, $allowed) {
            Ok((params, lang)) => (Frame::new($state, $headers, $path, $raw, lang), params),
            Err(bad) => {
                let lang = query::parameters($raw, &["lang"])
                    .ok()
                    .and_then(|p| query::lang(&p).ok().flatten());
                return Frame::new($state, $headers, $path, None, lang).bad_request(&bad);
            }
        }
    }};
}

/// The members' names, by credit code.
fn member_names(conn: &Connection) -> Result<BTreeMap<String, String>, tonic::Status> {
    let mut stmt = conn
        .prepare_cached("SELECT credit_code, name FROM members")
        .db()?;
    stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
        .db()?
        .collect::<rusqlite::Result<BTreeMap<_, _>>>()
        .db()
}

/// A verification of the audit chain and when it ran.
#[derive(Clone, Debug)]
pub struct AuditStatus {
    report: anchor::Report,
    checked_at: i64,
}

/// The audit chain checked against the copy of the anchor beside the store (the parent's
/// anchors are asked for by `VerifyAudit` and `govdc-hub audit verify`; a page does not wait
/// on another node).
async fn verify_audit(state: &MonitorHttp) -> Result<AuditStatus, tonic::Status> {
    let dir = state.hub.store.dir().to_owned();
    let local = tokio::task::spawn_blocking(move || anchor::read_local(&dir))
        .await
        .map_err(|e| tonic::Status::internal(e.to_string()))?;
    let anchors: Vec<(Source, Result<Anchor, String>)> = match local {
        Ok(Some(a)) => vec![(Source::Local, Ok(a))],
        Ok(None) => Vec::new(),
        Err(e) => vec![(Source::Local, Err(e.to_string()))],
    };
    let node = state.hub.config.name.clone();
    let report = state
        .hub
        .store
        .read(move |conn| anchor::verify(conn, &node, anchors).db())
        .await?;
    Ok(AuditStatus {
        report,
        checked_at: now_micros(),
    })
}

/// The chain's status, verified at most [`super::AUDIT_FRESH`] ago, in `lang`.
async fn audit_status(
    state: &MonitorHttp,
    lang: Lang,
) -> Result<(AuditBadge, Vec<(&'static str, String, String)>), tonic::Status> {
    let cached = {
        let cache = state.audit.lock().unwrap_or_else(|p| p.into_inner());
        cache
            .as_ref()
            .filter(|(at, _)| at.elapsed() < super::AUDIT_FRESH)
            .map(|(_, status)| status.clone())
    };
    let status = match cached {
        Some(status) => status,
        None => {
            let status = verify_audit(state).await?;
            *state.audit.lock().unwrap_or_else(|p| p.into_inner()) =
                Some((std::time::Instant::now(), status.clone()));
            status
        }
    };
    let report = status.report;
    let algorithm = match state.hub.algorithm() {
        crate::audit::Algorithm::Sha256 => "SHA-256",
        crate::audit::Algorithm::Sm3 => "SM3",
    };
    let (checked, checked_iso) = when(status.checked_at);
    let records = report.records_checked;
    let mut badge = AuditBadge {
        algorithm,
        records,
        checked,
        checked_iso,
        ..AuditBadge::default()
    };
    match &report.first_broken {
        None if report.intact() => {
            badge.label = fill(
                lang,
                "audit.verified",
                &[("n", &records.to_string()), ("algorithm", algorithm)],
            );
            badge.class = "badge-ok";
        }
        broken => {
            let (seq, reason) = broken.clone().unwrap_or_default();
            badge.label = fill(
                lang,
                "audit.failed",
                &[
                    ("seq", &seq.to_string()),
                    ("finding", report.finding.as_str()),
                    ("algorithm", algorithm),
                ],
            );
            badge.class = "badge-alert";
            badge.detail = reason;
        }
    }
    let anchors = report
        .checks
        .iter()
        .map(|c| {
            (
                c.source.as_str(),
                c.anchor
                    .as_ref()
                    .map(|a| format!("{} · {}", a.seq, a.recorded_by))
                    .unwrap_or_default(),
                c.outcome.clone(),
            )
        })
        .collect();
    Ok((badge, anchors))
}

pub mod account;
pub mod catalogue;
pub mod health;
pub mod sharing;

pub use account::{mine, signin, signin_form, signout};
pub use catalogue::catalogue;
pub use health::{audit, federation, timeliness};
pub use sharing::{departments, departments_csv, overview, provinces, provinces_csv};
