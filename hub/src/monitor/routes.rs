//! The monitor's handlers. Each reads its query strictly (the portal's
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
use crate::service::{now_micros, tree_sharing_stats};
use crate::store::DbResult;

const PORTAL_CSS: &str = include_str!("../portal/web/portal.css");
const MONITOR_CSS: &str = include_str!("monitor.css");

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

    fn unavailable(&self, status: &tonic::Status) -> Response {
        tracing::warn!(
            error = status.message(),
            "a monitor page cannot read the store"
        );
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

/// The audit chain checked against the copy of the anchor beside the store (the parent's
/// anchors are asked for by `VerifyAudit` and `govdc-hub audit verify`; a page does not wait
/// on another node).
async fn audit_status(
    state: &MonitorHttp,
    lang: Lang,
) -> Result<(AuditBadge, Vec<(&'static str, String, String)>), tonic::Status> {
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
    let algorithm = match state.hub.algorithm() {
        crate::audit::Algorithm::Sha256 => "SHA-256",
        crate::audit::Algorithm::Sm3 => "SM3",
    };
    let (checked, checked_iso) = when(now_micros());
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

/// `GET /`.
pub async fn overview(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/", raw.as_deref(), &["lang"]);
    let hub = state.hub.clone();
    let read = state
        .hub
        .store
        .read(move |conn| {
            let stats = tree_sharing_stats(&hub, conn)?;
            let catalogue: Vec<(i32, i32)> = crate::service::catalog_for_parent(conn)?
                .iter()
                .map(|r| (r.share_type, r.open_type))
                .collect();
            Ok((stats, catalogue))
        })
        .await;
    let (stats, catalogue) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    let (audit, _) = match audit_status(&state, frame.lang).await {
        Ok(audit) => audit,
        Err(e) => return frame.unavailable(&e),
    };
    let o = figures::overview(&stats, &catalogue);
    let lang = frame.lang;
    let (nodes_at, nodes_iso) = when(o.nodes_as_of);
    let (now, now_iso) = when(now_micros());
    let share = |n: usize, of: usize| {
        let rate = if of == 0 { 0.0 } else { n as f64 / of as f64 };
        (
            figures::percent(rate),
            fill(
                lang,
                "figure.of",
                &[("n", &n.to_string()), ("m", &of.to_string())],
            ),
        )
    };
    let figure = |key, label, value: String, detail: String, fresh: bool| Figure {
        key,
        label: t(lang, label),
        value,
        detail,
        as_of: if fresh { now.clone() } else { nodes_at.clone() },
        as_of_iso: if fresh {
            now_iso.clone()
        } else {
            nodes_iso.clone()
        },
    };
    let (shared, shared_of) = share(o.shared, o.catalogue);
    let (openable, openable_of) = share(o.openable, o.catalogue);
    let figures = vec![
        figure(
            "departments",
            "figure.departments",
            o.departments.to_string(),
            String::new(),
            false,
        ),
        figure(
            "provinces",
            "figure.provinces",
            o.provinces.to_string(),
            fill(lang, "figure.nodes", &[("n", &o.nodes.to_string())]),
            false,
        ),
        figure(
            "catalogue",
            "figure.catalogue",
            o.catalogue.to_string(),
            String::new(),
            true,
        ),
        figure("shared", "figure.shared", shared, shared_of, true),
        figure("openable", "figure.openable", openable, openable_of, true),
        figure(
            "served",
            "figure.served",
            grouped(o.records_served),
            fill(lang, "figure.grants", &[("n", &grouped(o.grants))]),
            false,
        ),
    ];
    let page = OverviewPage {
        layout: frame.layout(t(lang, "overview.title").to_owned(), "overview"),
        figures,
        audit,
        audit_url: frame.link("/audit"),
    };
    html(StatusCode::OK, lang, page.render())
}

/// The order `?sort=&order=` ask for.
fn order(params: &BTreeMap<String, String>) -> Result<Order, BadParameter> {
    let mut order = Order::default();
    if let Some(sort) = params.get("sort") {
        order.column = Column::from_name(sort).ok_or_else(|| BadParameter::Invalid {
            name: "sort".to_owned(),
            value: sort.clone(),
            allowed: Column::ALL
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
        // A column chosen without a direction: numbers largest first, names from A.
        order.descending = !matches!(order.column, Column::Name | Column::Node);
    }
    match params.get("order").map(String::as_str) {
        None => {}
        Some("asc") => order.descending = false,
        Some("desc") => order.descending = true,
        Some(other) => {
            return Err(BadParameter::Invalid {
                name: "order".to_owned(),
                value: other.to_owned(),
                allowed: "asc, desc".to_owned(),
            });
        }
    }
    Ok(order)
}

/// Which of the two 共享率 tables.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Table {
    Departments,
    Provinces,
}

impl Table {
    fn path(self) -> &'static str {
        match self {
            Table::Departments => "/sharing/departments",
            Table::Provinces => "/sharing/provinces",
        }
    }
}

const SORT_PARAMS: &[&str] = &["lang", "sort", "order"];

/// A column of a 共享率 table: its message key, the column it sorts by, whether it is numeric.
type Heading = (&'static str, Column, bool);

async fn tree(
    state: &MonitorHttp,
) -> Result<(SharingStats, BTreeMap<String, String>, Vec<trend::Point>), tonic::Status> {
    let hub = state.hub.clone();
    state
        .hub
        .store
        .read(move |conn| {
            Ok((
                tree_sharing_stats(&hub, conn)?,
                member_names(conn)?,
                trend::points(conn)?,
            ))
        })
        .await
}

/// The department rows and node rows of the tree, in `order`.
fn sorted_rows(
    stats: &SharingStats,
    names: &BTreeMap<String, String>,
    order: Order,
) -> (Vec<DepartmentRow>, Vec<NodeRow>) {
    let mut departments = figures::department_rows(stats, names);
    figures::sort_departments(&mut departments, order);
    let mut nodes = figures::node_rows(stats);
    figures::sort_nodes(&mut nodes, order);
    (departments, nodes)
}

fn level_key(level: Level) -> &'static str {
    match level {
        Level::National => "level.national",
        Level::Provincial => "level.provincial",
        Level::Municipal => "level.municipal",
        Level::Unspecified => "level.unspecified",
    }
}

async fn sharing(
    state: MonitorHttp,
    headers: HeaderMap,
    raw: Option<String>,
    table: Table,
) -> Response {
    let (frame, params) =
        frame_or_400!(&state, &headers, table.path(), raw.as_deref(), SORT_PARAMS);
    let order = match order(&params) {
        Ok(order) => order,
        Err(bad) => return frame.bad_request(&bad),
    };
    let (stats, names, points) = match tree(&state).await {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    let lang = frame.lang;
    let (departments, nodes) = sorted_rows(&stats, &names, order);
    let now = now_micros();
    let interval = state.hub.config.federation_interval.as_micros() as i64;
    let num = |n: i64| Cell {
        text: n.to_string(),
        numeric: true,
        ..Cell::default()
    };
    let text = |s: String| Cell {
        text: s,
        ..Cell::default()
    };
    let (labels, rows): (Vec<Heading>, Vec<Vec<Cell>>) = match table {
        Table::Departments => (
            vec![
                ("col.department", Column::Name, false),
                ("col.node", Column::Node, false),
                ("col.resources", Column::Resources, true),
                ("col.shared", Column::Shared, true),
                ("col.rate", Column::Rate, true),
                ("col.grants", Column::Grants, true),
                ("col.served", Column::Served, true),
            ],
            departments
                .into_iter()
                .map(|d| {
                    vec![
                        Cell {
                            text: d.code,
                            note: d.name,
                            ..Cell::default()
                        },
                        text(d.node),
                        num(d.resources),
                        num(d.shared),
                        Cell {
                            text: figures::percent(d.rate),
                            numeric: true,
                            ..Cell::default()
                        },
                        num(d.grants),
                        num(d.served),
                    ]
                })
                .collect(),
        ),
        Table::Provinces => (
            vec![
                ("col.node", Column::Name, false),
                ("col.region", Column::Node, false),
                ("col.resources", Column::Resources, true),
                ("col.shared", Column::Shared, true),
                ("col.rate", Column::Rate, true),
                ("col.grants", Column::Grants, true),
                ("col.served", Column::Served, true),
            ],
            nodes
                .into_iter()
                .map(|n| {
                    let (as_of, _) = when(n.as_of);
                    // A node's figures are as old as its last push up the tree.
                    let stale = !n.via.is_empty() && figures::stale(Some(n.as_of), now, interval);
                    vec![
                        Cell {
                            text: n.node,
                            note: t(lang, level_key(n.level)).to_owned(),
                            ..Cell::default()
                        },
                        text(n.region),
                        num(n.resources),
                        num(n.shared),
                        Cell {
                            text: figures::percent(n.rate),
                            numeric: true,
                            ..Cell::default()
                        },
                        num(n.grants),
                        Cell {
                            text: n.served.to_string(),
                            numeric: true,
                            note: fill(lang, "sharing.node_as_of", &[("time", &as_of)]),
                            stale,
                        },
                    ]
                })
                .collect(),
        ),
    };
    let columns = labels
        .into_iter()
        .map(|(key, column, numeric)| {
            let sorted = order.column == column;
            let next = Order {
                column,
                descending: if sorted { !order.descending } else { numeric },
            };
            ColumnHead {
                label: t(lang, key),
                url: sort_url(table.path(), frame.explicit, next),
                aria_sort: sorted.then_some(if order.descending {
                    "descending"
                } else {
                    "ascending"
                }),
                hint: if next.descending {
                    t(lang, "sort.desc")
                } else {
                    t(lang, "sort.asc")
                },
                numeric,
            }
        })
        .collect();
    let oldest = stats
        .nodes
        .iter()
        .map(|n| figures::micros(n.as_of.as_ref()))
        .min()
        .unwrap_or(now);
    let (as_of, as_of_iso) = when(oldest);
    let (heading, intro, caption) = match table {
        Table::Departments => (
            "departments.title",
            "departments.intro",
            "departments.caption",
        ),
        Table::Provinces => ("provinces.title", "provinces.intro", "provinces.caption"),
    };
    let trend_rows = points
        .iter()
        .map(|p| TrendRow {
            day: p.day.clone(),
            resources: p.resources,
            shared: p.shared,
            rate: figures::percent(p.rate()),
            grants: p.grants,
            served: p.served,
        })
        .collect();
    let csv_path = format!("{}.csv", table.path());
    let page = SharingPage {
        layout: frame.layout(
            t(lang, heading).to_owned(),
            match table {
                Table::Departments => "departments",
                Table::Provinces => "provinces",
            },
        ),
        heading: t(lang, heading),
        intro: t(lang, intro).to_owned(),
        caption: fill(lang, caption, &[("n", &rows.len().to_string())]),
        as_of,
        as_of_iso,
        csv_url: sort_url(&csv_path, None, order),
        columns,
        rows,
        chart: trend::chart(
            &points,
            t(lang, "trend.chart_title"),
            t(lang, "trend.chart_desc"),
        ),
        trend: trend_rows,
    };
    html(StatusCode::OK, lang, page.render())
}

fn sort_url(path: &str, lang: Option<Lang>, order: Order) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    query.append_pair("sort", order.column.name());
    query.append_pair("order", if order.descending { "desc" } else { "asc" });
    if let Some(lang) = lang {
        query.append_pair("lang", lang.tag());
    }
    format!("{path}?{}", query.finish())
}

/// `GET /sharing/departments`.
pub async fn departments(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    sharing(state, headers, raw, Table::Departments).await
}

/// `GET /sharing/provinces`.
pub async fn provinces(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    sharing(state, headers, raw, Table::Provinces).await
}

async fn sharing_csv(
    state: MonitorHttp,
    headers: HeaderMap,
    raw: Option<String>,
    table: Table,
) -> Response {
    let (frame, params) =
        frame_or_400!(&state, &headers, table.path(), raw.as_deref(), SORT_PARAMS);
    let order = match order(&params) {
        Ok(order) => order,
        Err(bad) => return frame.bad_request(&bad),
    };
    let (stats, names, _) = match tree(&state).await {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    let (departments, nodes) = sorted_rows(&stats, &names, order);
    let s = |v: &str| v.to_owned();
    let mut body = String::new();
    match table {
        Table::Departments => {
            body.push_str(&figures::csv_line(&[
                s("credit_code"),
                s("name"),
                s("node"),
                s("resources"),
                s("shared_resources"),
                s("share_rate"),
                s("grants_approved"),
                s("records_served"),
            ]));
            for d in departments {
                body.push_str(&figures::csv_line(&[
                    d.code,
                    d.name,
                    d.node,
                    d.resources.to_string(),
                    d.shared.to_string(),
                    format!("{:.4}", d.rate),
                    d.grants.to_string(),
                    d.served.to_string(),
                ]));
            }
        }
        Table::Provinces => {
            body.push_str(&figures::csv_line(&[
                s("node"),
                s("level"),
                s("region_code"),
                s("reports_to"),
                s("departments"),
                s("resources"),
                s("shared_resources"),
                s("share_rate"),
                s("grants_approved"),
                s("records_served"),
                s("as_of"),
            ]));
            for n in nodes {
                body.push_str(&figures::csv_line(&[
                    n.node.clone(),
                    t(Lang::En, level_key(n.level)).to_lowercase(),
                    n.region,
                    n.via,
                    n.departments.to_string(),
                    n.resources.to_string(),
                    n.shared.to_string(),
                    format!("{:.4}", n.rate),
                    n.grants.to_string(),
                    n.served.to_string(),
                    crate::portal::http::rfc3339(n.as_of),
                ]));
            }
        }
    }
    let name = match table {
        Table::Departments => "sharing-departments.csv",
        Table::Provinces => "sharing-provinces.csv",
    };
    let mut response = (StatusCode::OK, body).into_response();
    secure(
        response.headers_mut(),
        "text/csv; charset=utf-8; header=present",
    );
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        response
            .headers_mut()
            .insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /sharing/departments.csv`.
pub async fn departments_csv(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    sharing_csv(state, headers, raw, Table::Departments).await
}

/// `GET /sharing/provinces.csv`.
pub async fn provinces_csv(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    sharing_csv(state, headers, raw, Table::Provinces).await
}

/// A share type as the catalogue's facet value.
fn share_slug(share: i32) -> &'static str {
    match ShareType::try_from(share) {
        Ok(ShareType::Unconditional) => "unconditional",
        Ok(ShareType::Conditional) => "conditional",
        _ => "not-shared",
    }
}

/// An open type as the catalogue's facet value (unset is not open).
fn open_slug(open: i32) -> &'static str {
    match OpenType::try_from(open) {
        Ok(OpenType::Unconditional) => "unconditional",
        Ok(OpenType::Conditional) => "conditional",
        _ => "not-open",
    }
}

/// A catalogue resource as an entry of the portal's search, so that the catalogue is searched
/// by the same words and facets as the portal's datasets: code as id, name as title, field
/// names as tags, provider as department; the share type in the category's place and the open
/// type in the licence's (resources have neither category nor licence).
fn as_entry(resource: &Resource) -> Entry {
    Entry {
        metadata: govdc_hub_api::v1::DatasetMetadata {
            id: resource.code.clone(),
            title: resource.name.clone(),
            description: resource.description.clone(),
            tags: resource.fields.iter().map(|f| f.name.clone()).collect(),
            organization_credit_code: resource.provider.clone(),
            category: share_slug(resource.share_type).to_owned(),
            license: open_slug(resource.open_type).to_owned(),
            ..Default::default()
        },
        files: Vec::<StoredFile>::new(),
        published_at: figures::micros(resource.updated_at.as_ref()),
    }
}

/// The catalogue's facets: parameter, the search's facet, title key, the values it may take.
const CATALOGUE_FACETS: &[(&str, Facet, &str, Option<&[&str]>)] = &[
    ("department", Facet::Department, "facet.department", None),
    (
        "share",
        Facet::Category,
        "facet.share",
        Some(&["unconditional", "conditional", "not-shared"]),
    ),
    (
        "open",
        Facet::License,
        "facet.open",
        Some(&["unconditional", "conditional", "not-open"]),
    ),
];

fn facet_label(lang: Lang, param: &str, value: &str, names: &BTreeMap<String, String>) -> String {
    match param {
        "share" => t(lang, &format!("share.{value}")).to_owned(),
        "open" => t(lang, &format!("open.{value}")).to_owned(),
        _ => names
            .iter()
            .find(|(code, _)| code.eq_ignore_ascii_case(value))
            .map_or_else(
                || value.to_uppercase(),
                |(code, name)| format!("{name} ({code})"),
            ),
    }
}

fn catalogue_url(
    frame: &Frame,
    text: &str,
    filters: &BTreeMap<&'static str, String>,
    page: usize,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if !text.is_empty() {
        query.append_pair("q", text);
    }
    for (name, value) in filters {
        query.append_pair(name, value);
    }
    if page > 1 {
        query.append_pair("page", &page.to_string());
    }
    if let Some(lang) = frame.explicit {
        query.append_pair("lang", lang.tag());
    }
    let query = query.finish();
    if query.is_empty() {
        "/catalogue".to_owned()
    } else {
        format!("/catalogue?{query}")
    }
}

/// `GET /catalogue?q=&department=&share=&open=&page=`.
pub async fn catalogue(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, params) = frame_or_400!(
        &state,
        &headers,
        "/catalogue",
        raw.as_deref(),
        &["lang", "q", "department", "share", "open", "page"]
    );
    let lang = frame.lang;
    let text = params.get("q").cloned().unwrap_or_default();
    let mut filters: BTreeMap<&'static str, String> = BTreeMap::new();
    for (param, _, _, allowed) in CATALOGUE_FACETS {
        if let Some(value) = params.get(*param) {
            if let Some(allowed) = allowed
                && !allowed.contains(&value.as_str())
            {
                return frame.bad_request(&BadParameter::Invalid {
                    name: (*param).to_owned(),
                    value: value.clone(),
                    allowed: allowed.join(", "),
                });
            }
            filters.insert(param, value.clone());
        }
    }
    let page = match params.get("page").map(|p| p.parse::<usize>()) {
        None => 1,
        Some(Ok(n)) if (1..=query::MAX_PAGE).contains(&n) => n,
        Some(_) => {
            return frame.bad_request(&BadParameter::Invalid {
                name: "page".to_owned(),
                value: params.get("page").cloned().unwrap_or_default(),
                allowed: format!("1 … {}", query::MAX_PAGE),
            });
        }
    };
    let read = state
        .hub
        .store
        .read(|conn| {
            Ok((
                crate::service::catalog_for_parent(conn)?,
                member_names(conn)?,
            ))
        })
        .await;
    let (resources, names) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    let entries: Vec<Entry> = resources.iter().map(as_entry).collect();
    let search_query = search::Query {
        text: text.clone(),
        filters: CATALOGUE_FACETS
            .iter()
            .filter_map(|(param, facet, _, _)| filters.get(param).map(|v| (*facet, v.clone())))
            .collect(),
        sort: if text.is_empty() {
            search::Sort::Newest
        } else {
            search::Sort::Relevance
        },
    };
    let hits = search::search(&entries, &search_query);
    let facets = CATALOGUE_FACETS
        .iter()
        .map(|(param, facet, title, _)| FacetView {
            title: t(lang, title),
            options: search::counts(&hits, *facet)
                .into_iter()
                .map(|(value, count)| {
                    let mut with = filters.clone();
                    with.insert(param, value.clone());
                    FacetOption {
                        label: facet_label(lang, param, &value, &names),
                        count,
                        url: catalogue_url(&frame, &text, &with, 1),
                        selected: filters
                            .get(param)
                            .is_some_and(|v| v.eq_ignore_ascii_case(&value)),
                    }
                })
                .collect(),
        })
        .collect();
    let active = filters
        .iter()
        .map(|(param, value)| {
            let mut without = filters.clone();
            without.remove(param);
            (
                facet_label(lang, param, value, &names),
                catalogue_url(&frame, &text, &without, 1),
            )
        })
        .collect();
    let pages = hits.len().div_ceil(CATALOGUE_PAGE).max(1);
    // Codes are unique in the hub tree (the first row of one wins, as in the catalogue's order).
    let mut by_code: BTreeMap<&str, &Resource> = BTreeMap::new();
    for r in &resources {
        by_code.entry(r.code.as_str()).or_insert(r);
    }
    let results = hits
        .iter()
        .skip((page - 1) * CATALOGUE_PAGE)
        .take(CATALOGUE_PAGE)
        .filter_map(|entry| {
            let r = *by_code.get(entry.metadata.id.as_str())?;
            let (updated, updated_iso) = when(figures::micros(r.updated_at.as_ref()));
            let not_shared = share_slug(r.share_type) == "not-shared";
            Some(ResourceView {
                code: r.code.clone(),
                name: r.name.clone(),
                description: summary(&r.description, 240),
                provider: facet_label(lang, "department", &r.provider, &names),
                node: r.node.clone(),
                share: t(lang, &format!("share.{}", share_slug(r.share_type))),
                share_class: match share_slug(r.share_type) {
                    "unconditional" => "badge-open",
                    "conditional" => "badge-conditional",
                    _ => "badge-alert",
                },
                open: t(lang, &format!("open.{}", open_slug(r.open_type))),
                reason: not_shared.then(|| {
                    if r.not_shared_reason.trim().is_empty() {
                        t(lang, "catalogue.no_reason").to_owned()
                    } else {
                        r.not_shared_reason.clone()
                    }
                }),
                updated,
                updated_iso,
            })
        })
        .collect();
    let page = CataloguePage {
        layout: frame.layout(t(lang, "catalogue.title").to_owned(), "catalogue"),
        hidden: filters.iter().map(|(k, v)| (*k, v.clone())).collect(),
        active,
        clear_url: catalogue_url(&frame, &text, &BTreeMap::new(), 1),
        facets,
        count_label: fill(lang, "catalogue.count", &[("n", &hits.len().to_string())]),
        results,
        page_label: (pages > 1).then(|| {
            fill(
                lang,
                "page.of",
                &[("page", &page.to_string()), ("pages", &pages.to_string())],
            )
        }),
        prev_url: (page > 1).then(|| catalogue_url(&frame, &text, &filters, page - 1)),
        next_url: (page < pages).then(|| catalogue_url(&frame, &text, &filters, page + 1)),
        text,
    };
    html(StatusCode::OK, lang, page.render())
}

/// Every grant on this node, with whether its resource is shared on conditions.
fn grant_rows(
    conn: &Connection,
    department: Option<&str>,
) -> Result<Vec<(GrantRow, String, String)>, tonic::Status> {
    let mut stmt = conn
        .prepare_cached(
            "SELECT g.id, g.resource_code, g.consumer, g.provider, g.state, g.requested_at,
                    g.decided_at, g.purpose, g.reason,
                    EXISTS (SELECT 1 FROM resources r WHERE r.code = g.resource_code
                            AND r.origin = '' AND r.share_type = ?1)
             FROM grants g
             WHERE ?2 IS NULL OR g.consumer = ?2 OR g.provider = ?2
             ORDER BY g.id",
        )
        .db()?;
    stmt.query_map(
        rusqlite::params![ShareType::Conditional as i32, department],
        |row| {
            Ok((
                GrantRow {
                    id: row.get(0)?,
                    resource: row.get(1)?,
                    consumer: row.get(2)?,
                    provider: row.get(3)?,
                    state: row.get(4)?,
                    requested_at: row.get(5)?,
                    decided_at: row.get(6)?,
                    conditional: row.get(9)?,
                },
                row.get(7)?,
                row.get(8)?,
            ))
        },
    )
    .db()?
    .collect::<rusqlite::Result<Vec<_>>>()
    .db()
}

fn state_key(state: i32) -> &'static str {
    match GrantState::try_from(state) {
        Ok(GrantState::Pending) => "state.pending",
        Ok(GrantState::Approved) => "state.approved",
        Ok(GrantState::Refused) => "state.refused",
        Ok(GrantState::Revoked) => "state.revoked",
        _ => "state.unspecified",
    }
}

fn grant_view(
    lang: Lang,
    g: &GrantRow,
    purpose: String,
    reason: String,
    other: &str,
    now: i64,
) -> GrantView {
    let (requested, requested_iso) = when(g.requested_at);
    GrantView {
        id: g.id,
        resource: g.resource.clone(),
        consumer: g.consumer.clone(),
        provider: g.provider.clone(),
        other: other.to_owned(),
        purpose,
        state: t(lang, state_key(g.state)),
        reason,
        requested,
        requested_iso,
        waiting: figures::span(now - g.requested_at),
    }
}

/// `GET /timeliness`.
pub async fn timeliness(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/timeliness", raw.as_deref(), &["lang"]);
    let lang = frame.lang;
    let rows = match state.hub.store.read(|conn| grant_rows(conn, None)).await {
        Ok(rows) => rows,
        Err(e) => return frame.unavailable(&e),
    };
    let now = now_micros();
    let deadline = state.hub.config.monitor_request_deadline;
    let grants: Vec<GrantRow> = rows.iter().map(|(g, _, _)| g.clone()).collect();
    let (providers, overdue) = figures::timeliness(&grants, now, deadline.as_micros() as i64);
    let dash = || "–".to_owned();
    let (as_of, as_of_iso) = when(now);
    let page = TimelinessPage {
        layout: frame.layout(t(lang, "timeliness.title").to_owned(), "timeliness"),
        intro: fill(
            lang,
            "timeliness.intro",
            &[("deadline", &figures::span(deadline.as_micros() as i64))],
        ),
        as_of,
        as_of_iso,
        providers: providers
            .into_iter()
            .map(|p| ProviderView {
                late: p.overdue > 0,
                provider: p.provider,
                decided: p.decided,
                median: p.median.map_or_else(dash, figures::span),
                p95: p.p95.map_or_else(dash, figures::span),
                pending: p.pending,
                overdue: p.overdue,
            })
            .collect(),
        overdue: overdue
            .iter()
            .map(|g| grant_view(lang, g, String::new(), String::new(), "", now))
            .collect(),
    };
    html(StatusCode::OK, lang, page.render())
}

/// `GET /federation`.
pub async fn federation(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/federation", raw.as_deref(), &["lang"]);
    let lang = frame.lang;
    let read = state
        .hub
        .store
        .read(|conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT key, value FROM settings
                     WHERE key LIKE 'child.%.lastSync' OR key LIKE 'child.%.lastError'",
                )
                .db()?;
            let pairs = stmt
                .query_map([], |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .db()?
                .collect::<rusqlite::Result<Vec<_>>>()
                .db()?;
            Ok((pairs, crate::service::forwarded_stats(conn)?))
        })
        .await;
    let (pairs, below) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    // child -> (last sync, last error)
    let mut children: BTreeMap<String, (Option<i64>, String)> = BTreeMap::new();
    for (key, value) in pairs {
        let Some(rest) = key.strip_prefix("child.") else {
            continue;
        };
        if let Some(child) = rest.strip_suffix(".lastSync") {
            children.entry(child.to_owned()).or_default().0 = value.parse().ok();
        } else if let Some(child) = rest.strip_suffix(".lastError") {
            children.entry(child.to_owned()).or_default().1 = value;
        }
    }
    let now = now_micros();
    let interval = state.hub.config.federation_interval;
    let interval_micros = interval.as_micros() as i64;
    let never = t(lang, "federation.never").to_owned();
    let children = children
        .into_iter()
        .map(|(name, (last, error))| {
            let info = below.iter().find(|n| n.node == name);
            let stale = figures::stale(last, now, interval_micros);
            let (last_sync, last_sync_iso) =
                last.map(when).unwrap_or((never.clone(), String::new()));
            ChildView {
                level: t(
                    lang,
                    level_key(
                        info.and_then(|n| Level::try_from(n.level).ok())
                            .unwrap_or(Level::Unspecified),
                    ),
                ),
                region: info.map(|n| n.region_code.clone()).unwrap_or_default(),
                last_sync,
                last_sync_iso,
                state: if stale {
                    t(lang, "federation.stale")
                } else {
                    t(lang, "federation.current")
                },
                class: if stale { "badge-stale" } else { "badge-ok" },
                error,
                name,
            }
        })
        .collect();
    let parent = state.hub.parent.link().map(|link| {
        let status = state.hub.parent.status();
        ParentView {
            endpoint: link.endpoint,
            state: if status.connected {
                t(lang, "federation.connected")
            } else {
                t(lang, "federation.disconnected")
            },
            class: if status.connected {
                "badge-ok"
            } else {
                "badge-alert"
            },
            last_sync: status.last_sync_micros.map_or(never.clone(), |m| when(m).0),
            error: status.error,
        }
    });
    let page = FederationPage {
        layout: frame.layout(t(lang, "federation.title").to_owned(), "federation"),
        intro: fill(
            lang,
            "federation.intro",
            &[
                ("interval", &figures::span(interval_micros)),
                ("stale", &figures::span(3 * interval_micros)),
            ],
        ),
        parent,
        children,
    };
    html(StatusCode::OK, lang, page.render())
}

/// `GET /audit`.
pub async fn audit(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/audit", raw.as_deref(), &["lang"]);
    let lang = frame.lang;
    let (audit, anchors) = match audit_status(&state, lang).await {
        Ok(status) => status,
        Err(e) => return frame.unavailable(&e),
    };
    let page = AuditPage {
        layout: frame.layout(t(lang, "audit.title").to_owned(), "audit"),
        audit,
        anchors,
    };
    html(StatusCode::OK, lang, page.render())
}

/// The sign-in form with a fresh CSRF token (also set as its cookie).
fn signin_page(frame: &Frame, status: StatusCode, problem: Option<String>) -> Response {
    let csrf = match session::random_token() {
        Ok(csrf) => csrf,
        Err(e) => return frame.unavailable(&tonic::Status::internal(e.to_string())),
    };
    let page = SigninPage {
        layout: frame.layout(t(frame.lang, "signin.title").to_owned(), "signin"),
        action: frame.link("/signin"),
        csrf: csrf.clone(),
        problem,
    };
    let mut response = html(status, frame.lang, page.render());
    if let Ok(value) =
        HeaderValue::from_str(&session::set_cookie(CSRF_COOKIE, &csrf, "/signin", 3600))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /signin`.
pub async fn signin_form(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signin", raw.as_deref(), &["lang"]);
    signin_page(&frame, StatusCode::OK, None)
}

/// The fields of a posted form, each at most once and each one of `allowed`.
fn form(body: &Bytes, allowed: &[&str]) -> Result<BTreeMap<String, String>, BadParameter> {
    if body.len() > MAX_FORM {
        return Err(BadParameter::TooLong {
            name: "form".to_owned(),
            max: MAX_FORM,
        });
    }
    let mut out = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(body) {
        if !allowed.contains(&name.as_ref()) {
            return Err(BadParameter::Unknown {
                name: name.into_owned(),
            });
        }
        if out
            .insert(name.clone().into_owned(), value.into_owned())
            .is_some()
        {
            return Err(BadParameter::Repeated {
                name: name.into_owned(),
            });
        }
    }
    Ok(out)
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /signin`: `csrf` must equal the form's cookie; `token` must be a member token of this
/// node. Then a session cookie, and on to `/mine`.
pub async fn signin(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signin", raw.as_deref(), &["lang"]);
    let fields = match form(&body, &["csrf", "token"]) {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    let expected = session::cookie(&headers, CSRF_COOKIE).unwrap_or_default();
    let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
    if !session::same(&expected, given) {
        return frame.error(
            StatusCode::FORBIDDEN,
            "csrf.title",
            t(frame.lang, "csrf.body").to_owned(),
            None,
        );
    }
    let token = fields.get("token").map(String::as_str).unwrap_or_default();
    let (department, expires) = match state.hub.auth.member_of_token(token) {
        Ok(found) => found,
        Err(why) => {
            tracing::info!(reason = %why, "a monitor sign-in was refused");
            return signin_page(
                &frame,
                StatusCode::UNAUTHORIZED,
                Some(t(frame.lang, "signin.refused").to_owned()),
            );
        }
    };
    let (id, session) = match state.sessions.start(&department, expires) {
        Ok(started) => started,
        Err(e) => return frame.unavailable(&tonic::Status::internal(e.to_string())),
    };
    tracing::info!(department = %department, "a department signed in to the monitor");
    let max_age = session
        .expires_at
        .saturating_sub(jiff::Timestamp::now().as_second().max(0) as u64);
    let mut response = see_other(&frame.link("/mine"));
    for cookie in [
        session::set_cookie(SESSION_COOKIE, &id, "/", max_age),
        session::set_cookie(CSRF_COOKIE, "", "/signin", 0),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(header::SET_COOKIE, value);
        }
    }
    response
}

/// `POST /signout`: `csrf` must be the session's.
pub async fn signout(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
    body: Bytes,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/signout", raw.as_deref(), &["lang"]);
    let fields = match form(&body, &["csrf"]) {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    let Some((id, session)) = &frame.session else {
        return see_other(&frame.link("/signin"));
    };
    if !session::same(
        &session.csrf,
        fields.get("csrf").map(String::as_str).unwrap_or_default(),
    ) {
        return frame.error(
            StatusCode::FORBIDDEN,
            "csrf.title",
            t(frame.lang, "csrf.body").to_owned(),
            None,
        );
    }
    state.sessions.end(id);
    let mut response = see_other(&frame.link("/"));
    if let Ok(value) = HeaderValue::from_str(&session::set_cookie(SESSION_COOKIE, "", "/", 0)) {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

/// `GET /mine`: the signed-in department's requests (as consumer) and the requests made to it
/// (as provider).
pub async fn mine(
    State(state): State<MonitorHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let (frame, _) = frame_or_400!(&state, &headers, "/mine", raw.as_deref(), &["lang"]);
    let lang = frame.lang;
    let Some((_, session)) = frame.session.clone() else {
        return see_other(&frame.link("/signin"));
    };
    let department = session.department.clone();
    let read = state
        .hub
        .store
        .read(move |conn| Ok((grant_rows(conn, Some(&department))?, member_names(conn)?)))
        .await;
    let (rows, names) = match read {
        Ok(read) => read,
        Err(e) => return frame.unavailable(&e),
    };
    let now = now_micros();
    let code = session.department.as_str();
    let requests = rows
        .iter()
        .filter(|(g, _, _)| g.consumer == code)
        .map(|(g, purpose, reason)| {
            grant_view(lang, g, purpose.clone(), reason.clone(), &g.provider, now)
        })
        .collect();
    let grants = rows
        .iter()
        .filter(|(g, _, _)| g.provider == code)
        .map(|(g, purpose, reason)| {
            grant_view(lang, g, purpose.clone(), reason.clone(), &g.consumer, now)
        })
        .collect();
    let name = names.get(code).cloned().unwrap_or_default();
    let page = MinePage {
        layout: frame.layout(t(lang, "mine.title").to_owned(), "mine"),
        heading: fill(lang, "mine.heading", &[("name", &name), ("code", code)]),
        signout_action: frame.link("/signout"),
        csrf: session.csrf.clone(),
        requests,
        grants,
    };
    let mut response = html(StatusCode::OK, lang, page.render());
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
