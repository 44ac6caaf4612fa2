//! The monitor's pages as plain values that the askama templates in `hub/templates/monitor/`
//! lay out (askama escapes every value it writes; the trend's SVG is the one value written as
//! is, and [`super::trend::chart`] escapes its texts itself).

use askama::Template;

use super::i18n;
use crate::portal::web::i18n::Lang;

/// A navigation item.
#[derive(Clone, Debug)]
pub struct NavItem {
    /// Its link (keeping a language the URL chose).
    pub url: String,
    /// Its text.
    pub label: &'static str,
    /// Whether it is this page.
    pub current: bool,
}

/// What every page has around its content.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The page's language (the portal's type: the same tags, `?lang=` and negotiation).
    pub lang: Lang,
    /// `<title>`, before the site's name.
    pub title: String,
    /// "Hub node {node}".
    pub node_label: String,
    /// The footer's line.
    pub footer_about: String,
    /// This page in the other language.
    pub switch_url: String,
    /// The overview.
    pub home_url: String,
    /// The sign-in page.
    pub signin_url: String,
    /// The signed-in department's page.
    pub mine_url: String,
    /// `?lang=` as the URL gave it, for forms' hidden fields.
    pub lang_param: Option<&'static str>,
    /// The navigation.
    pub nav: Vec<NavItem>,
    /// The signed-in department's credit code.
    pub signed_in: Option<String>,
}

impl Layout {
    /// The monitor's text of `key` in the page's language.
    pub fn t(&self, key: &str) -> &'static str {
        i18n::t(self.lang, key)
    }
}

/// A 400, 403, 404 or 503 page.
#[derive(Template)]
#[template(path = "monitor/error.html")]
pub struct ErrorPage {
    /// The frame.
    pub layout: Layout,
    /// Its heading.
    pub heading: &'static str,
    /// What went wrong.
    pub message: String,
    /// The parameter at fault.
    pub parameter: Option<String>,
}

/// A figure of the overview.
#[derive(Clone, Debug)]
pub struct Figure {
    /// A stable name (`data-figure`), for tests and scrapers.
    pub key: &'static str,
    /// What it is.
    pub label: &'static str,
    /// Its value.
    pub value: String,
    /// A note beside it (a share's "n of m").
    pub detail: String,
    /// When it was taken, for people and as RFC 3339.
    pub as_of: String,
    /// See `as_of`.
    pub as_of_iso: String,
}

/// The audit chain's badge.
#[derive(Clone, Debug, Default)]
pub struct AuditBadge {
    /// "verified up to record N (SHA-256)" or what failed.
    pub label: String,
    /// `badge-ok` or `badge-alert`.
    pub class: &'static str,
    /// The reason, when it failed.
    pub detail: String,
    /// `SHA-256` or `SM3`.
    pub algorithm: &'static str,
    /// Records checked.
    pub records: i64,
    /// When it was checked.
    pub checked: String,
    /// See `checked`.
    pub checked_iso: String,
}

/// `GET /`.
#[derive(Template)]
#[template(path = "monitor/overview.html")]
pub struct OverviewPage {
    /// The frame.
    pub layout: Layout,
    /// The figures.
    pub figures: Vec<Figure>,
    /// The audit chain.
    pub audit: AuditBadge,
    /// The audit page.
    pub audit_url: String,
}

/// A column heading of a sortable table.
#[derive(Clone, Debug)]
pub struct ColumnHead {
    /// Its text.
    pub label: &'static str,
    /// The table sorted by it (the other way when it already is).
    pub url: String,
    /// `ascending`/`descending` on the sorted column.
    pub aria_sort: Option<&'static str>,
    /// For screen readers: what following the link does.
    pub hint: &'static str,
    /// Whether it holds numbers (right-aligned).
    pub numeric: bool,
}

/// A cell.
#[derive(Clone, Debug, Default)]
pub struct Cell {
    /// Its text.
    pub text: String,
    /// A smaller note after it (a department's name).
    pub note: String,
    /// Right-aligned.
    pub numeric: bool,
    /// Shows the stale badge (a node whose figures are old).
    pub stale: bool,
}

/// A trend point for the table beside the chart.
#[derive(Clone, Debug)]
pub struct TrendRow {
    /// The day.
    pub day: String,
    /// Resources.
    pub resources: i64,
    /// Shared.
    pub shared: i64,
    /// The rate, as a percentage.
    pub rate: String,
    /// Grants.
    pub grants: i64,
    /// Records served.
    pub served: i64,
}

/// `GET /sharing/departments` and `/sharing/provinces`.
#[derive(Template)]
#[template(path = "monitor/sharing.html")]
pub struct SharingPage {
    /// The frame.
    pub layout: Layout,
    /// The heading.
    pub heading: &'static str,
    /// The line under it.
    pub intro: String,
    /// The table's caption.
    pub caption: String,
    /// When the oldest figure was taken.
    pub as_of: String,
    /// See `as_of`.
    pub as_of_iso: String,
    /// The CSV of the table in the same order.
    pub csv_url: String,
    /// The headings.
    pub columns: Vec<ColumnHead>,
    /// The rows.
    pub rows: Vec<Vec<Cell>>,
    /// The trend chart (SVG).
    pub chart: String,
    /// The trend's points.
    pub trend: Vec<TrendRow>,
}

/// A facet value.
#[derive(Clone, Debug)]
pub struct FacetOption {
    /// Its name.
    pub label: String,
    /// Hits with it.
    pub count: usize,
    /// The search with it added.
    pub url: String,
    /// Whether it is a filter already.
    pub selected: bool,
}

/// A facet.
#[derive(Clone, Debug)]
pub struct FacetView {
    /// Its name.
    pub title: &'static str,
    /// Its values.
    pub options: Vec<FacetOption>,
}

/// A resource in the catalogue.
#[derive(Clone, Debug)]
pub struct ResourceView {
    /// Its code.
    pub code: String,
    /// Its name.
    pub name: String,
    /// Its description, shortened.
    pub description: String,
    /// The provider (name and code where known).
    pub provider: String,
    /// The node it is registered on.
    pub node: String,
    /// Its share type.
    pub share: &'static str,
    /// The share type's badge class.
    pub share_class: &'static str,
    /// Its open type.
    pub open: &'static str,
    /// Why it is not shared, for a resource that is not.
    pub reason: Option<String>,
    /// When it was last updated.
    pub updated: String,
    /// See `updated`.
    pub updated_iso: String,
}

/// `GET /catalogue`.
#[derive(Template)]
#[template(path = "monitor/catalogue.html")]
pub struct CataloguePage {
    /// The frame.
    pub layout: Layout,
    /// The search box's text.
    pub text: String,
    /// The filters the search form keeps.
    pub hidden: Vec<(&'static str, String)>,
    /// Active filters: label and the URL without it.
    pub active: Vec<(String, String)>,
    /// The search without filters.
    pub clear_url: String,
    /// The facets.
    pub facets: Vec<FacetView>,
    /// "n resources found".
    pub count_label: String,
    /// This page's resources.
    pub results: Vec<ResourceView>,
    /// "Page p of n", when there is more than one.
    pub page_label: Option<String>,
    /// The previous page.
    pub prev_url: Option<String>,
    /// The next page.
    pub next_url: Option<String>,
}

/// A provider's row.
#[derive(Clone, Debug)]
pub struct ProviderView {
    /// The provider.
    pub provider: String,
    /// Decided requests.
    pub decided: usize,
    /// The median, for people (`–` without decisions).
    pub median: String,
    /// The 95th percentile.
    pub p95: String,
    /// Waiting.
    pub pending: usize,
    /// Overdue.
    pub overdue: usize,
    /// Whether any is overdue.
    pub late: bool,
}

/// A request or grant row.
#[derive(Clone, Debug)]
pub struct GrantView {
    /// Its id.
    pub id: i64,
    /// The resource.
    pub resource: String,
    /// The consumer (on the timeliness page).
    pub consumer: String,
    /// The provider.
    pub provider: String,
    /// The other party (on a department's page).
    pub other: String,
    /// Why it was asked for.
    pub purpose: String,
    /// Its state.
    pub state: &'static str,
    /// The decision's reason.
    pub reason: String,
    /// When it was asked.
    pub requested: String,
    /// See `requested`.
    pub requested_iso: String,
    /// How long it has waited.
    pub waiting: String,
}

/// `GET /timeliness`.
#[derive(Template)]
#[template(path = "monitor/timeliness.html")]
pub struct TimelinessPage {
    /// The frame.
    pub layout: Layout,
    /// The line under the heading (with the deadline).
    pub intro: String,
    /// When it was computed.
    pub as_of: String,
    /// See `as_of`.
    pub as_of_iso: String,
    /// Per provider.
    pub providers: Vec<ProviderView>,
    /// Overdue requests.
    pub overdue: Vec<GrantView>,
}

/// The parent link.
#[derive(Clone, Debug)]
pub struct ParentView {
    /// Its endpoint.
    pub endpoint: String,
    /// Connected or not.
    pub state: &'static str,
    /// The badge class.
    pub class: &'static str,
    /// The last successful push.
    pub last_sync: String,
    /// The last push's error.
    pub error: String,
}

/// A child node.
#[derive(Clone, Debug)]
pub struct ChildView {
    /// Its name.
    pub name: String,
    /// Its level.
    pub level: &'static str,
    /// Its region code.
    pub region: String,
    /// Its last sync here.
    pub last_sync: String,
    /// See `last_sync`.
    pub last_sync_iso: String,
    /// Current or stale.
    pub state: &'static str,
    /// The badge class: `badge-ok` or `badge-stale`.
    pub class: &'static str,
    /// Why its last sync was refused, if it was.
    pub error: String,
}

/// `GET /federation`.
#[derive(Template)]
#[template(path = "monitor/federation.html")]
pub struct FederationPage {
    /// The frame.
    pub layout: Layout,
    /// The line under the heading (with the interval).
    pub intro: String,
    /// The parent link, if there is one.
    pub parent: Option<ParentView>,
    /// The children.
    pub children: Vec<ChildView>,
}

/// `GET /audit`.
#[derive(Template)]
#[template(path = "monitor/audit.html")]
pub struct AuditPage {
    /// The frame.
    pub layout: Layout,
    /// The chain's status.
    pub audit: AuditBadge,
    /// The anchors compared: source, anchor, outcome.
    pub anchors: Vec<(&'static str, String, String)>,
}

/// `GET /signin`.
#[derive(Template)]
#[template(path = "monitor/signin.html")]
pub struct SigninPage {
    /// The frame.
    pub layout: Layout,
    /// Where the form posts (keeping the language).
    pub action: String,
    /// The form's CSRF token.
    pub csrf: String,
    /// Why the last attempt failed.
    pub problem: Option<String>,
}

/// `GET /mine`.
#[derive(Template)]
#[template(path = "monitor/mine.html")]
pub struct MinePage {
    /// The frame.
    pub layout: Layout,
    /// "Department X".
    pub heading: String,
    /// Where the sign-out form posts.
    pub signout_action: String,
    /// The sign-out form's CSRF token.
    pub csrf: String,
    /// Requests it made.
    pub requests: Vec<GrantView>,
    /// Requests made to it.
    pub grants: Vec<GrantView>,
}
