//! The website's pages: what each shows, as plain values the templates (`hub/templates/portal/`,
//! compiled with askama, which escapes every value it writes into HTML) render.
//!
//! Everything is worked out here, not in the templates: the templates only lay out text, links
//! and tables, so a page's content can be tested without parsing HTML.

use askama::Template;

use super::i18n::Lang;

/// What every page has around its content: language, title, navigation, language switch.
#[derive(Clone, Debug)]
pub struct Layout {
    /// The page's language.
    pub lang: Lang,
    /// `<title>`, before the site's name.
    pub title: String,
    /// "Hub node {node}", under the site's name.
    pub node_label: String,
    /// "Served by govdc hub node {node}.", in the footer.
    pub footer_about: String,
    /// The same page in the other language (path and query kept).
    pub switch_url: String,
    /// Links to the home page and the datasets, keeping a language the URL chose.
    pub home_url: String,
    /// See `home_url`.
    pub datasets_url: String,
    /// See `home_url`.
    pub departments_url: String,
    /// See `home_url`.
    pub changes_url: String,
    /// `?lang=` as the URL gave it, for the search form's hidden field.
    pub lang_param: Option<&'static str>,
    /// `<link rel=alternate>`s: media type and absolute URL.
    pub alternates: Vec<(&'static str, String)>,
    /// A schema.org JSON-LD object, already safe inside `<script>` (see [`json_ld`]).
    pub json_ld: Option<String>,
    /// The portal's base URL, for the footer's machine-readable links.
    pub base: String,
    /// Which navigation item is this page (`home`, `datasets`).
    pub current: &'static str,
}

/// JSON made safe to write inside `<script type="application/ld+json">`: `<`, `>` and `&` as
/// JSON escapes, so that a title holding `</script>` cannot end the element.
pub fn json_ld(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

/// A dataset in a list.
#[derive(Clone, Debug)]
pub struct Card {
    /// Its title.
    pub title: String,
    /// Its page.
    pub url: String,
    /// The start of its description.
    pub summary: String,
    /// The publishing department.
    pub publisher: String,
    /// Its category's name.
    pub category: String,
    /// Its openness, as a badge.
    pub openness: Badge,
    /// When its current version was published, for people.
    pub updated: String,
    /// The same, RFC 3339, for `<time datetime>`.
    pub updated_iso: String,
    /// Its formats, upper-case, comma-separated.
    pub formats: String,
    /// "N downloads".
    pub downloads: String,
}

/// An openness badge.
#[derive(Clone, Debug)]
pub struct Badge {
    /// 无条件开放 / 有条件开放.
    pub label: &'static str,
    /// Its CSS class: `open` or `conditional`.
    pub class: &'static str,
}

/// A link with a count: a category, a department, a facet value.
#[derive(Clone, Debug)]
pub struct Counted {
    /// What it is called.
    pub label: String,
    /// Where it goes.
    pub url: String,
    /// How many datasets.
    pub count: usize,
    /// Whether the current page is filtered by it.
    pub selected: bool,
}

/// `/` for browsers.
#[derive(Template)]
#[template(path = "portal/home.html")]
pub struct Home {
    /// The frame.
    pub layout: Layout,
    /// The plan's categories with their counts.
    pub categories: Vec<Counted>,
    /// The departments with their counts.
    pub departments: Vec<Counted>,
    /// The most recently updated datasets.
    pub recent: Vec<Card>,
    /// The most downloaded datasets (those downloaded at all).
    pub popular: Vec<Card>,
    /// "See all N datasets".
    pub all_label: String,
    /// The search form's text: empty on the home page.
    pub text: String,
    /// The search form's hidden filters: none on the home page.
    pub hidden: Vec<(&'static str, String)>,
    /// How many datasets there are.
    pub total: usize,
}

/// A facet of a search page.
#[derive(Clone, Debug)]
pub struct FacetView {
    /// Its heading.
    pub title: &'static str,
    /// Its values among the hits.
    pub options: Vec<Counted>,
}

/// A way to sort a search.
#[derive(Clone, Debug)]
pub struct SortLink {
    /// Its name.
    pub label: &'static str,
    /// The search sorted so.
    pub url: String,
    /// Whether the page is sorted so.
    pub current: bool,
}

/// `/datasets`.
#[derive(Template)]
#[template(path = "portal/datasets.html")]
pub struct Datasets {
    /// The frame.
    pub layout: Layout,
    /// The search text.
    pub text: String,
    /// The current filters as hidden fields of the search form: name and value.
    pub hidden: Vec<(&'static str, String)>,
    /// "N datasets found".
    pub count_label: String,
    /// The hits on this page.
    pub results: Vec<Card>,
    /// The facets.
    pub facets: Vec<FacetView>,
    /// The active filters: label and the link that removes it.
    pub active: Vec<(String, String)>,
    /// The search without filters.
    pub clear_url: String,
    /// The orders.
    pub sorts: Vec<SortLink>,
    /// "Page 2 of 5", when there is more than one.
    pub page_label: Option<String>,
    /// The previous page.
    pub prev_url: Option<String>,
    /// The next page.
    pub next_url: Option<String>,
}

/// A file of a dataset.
#[derive(Clone, Debug)]
pub struct FileView {
    /// Upper-case format.
    pub format: String,
    /// Its size for people.
    pub size: String,
    /// Its size in bytes.
    pub bytes: i64,
    /// Its SHA-256.
    pub sha256: String,
    /// Its absolute URL.
    pub url: String,
    /// "Download the CSV file".
    pub download_label: String,
}

/// A field's documentation.
#[derive(Clone, Debug)]
pub struct FieldView {
    /// Its name.
    pub name: String,
    /// Its de-identification treatment.
    pub treatment: String,
    /// What it holds.
    pub description: String,
}

/// Identifiers a field publishes on purpose.
#[derive(Clone, Debug)]
pub struct DeclaredView {
    /// The field.
    pub field: String,
    /// The kinds of identifier, comma-separated.
    pub kinds: String,
    /// Why.
    pub justification: String,
}

/// What the preview section shows.
#[derive(Clone, Debug)]
pub enum PreviewView {
    /// The first rows.
    Rows {
        /// The table's caption.
        caption: String,
        /// Header.
        columns: Vec<String>,
        /// Rows.
        rows: Vec<Vec<String>>,
    },
    /// No preview, and why.
    Note(&'static str),
}

/// `/datasets/{id}`.
#[derive(Template)]
#[template(path = "portal/dataset.html")]
pub struct Dataset {
    /// The frame.
    pub layout: Layout,
    /// Its id.
    pub id: String,
    /// Its title.
    pub title: String,
    /// Its description, in paragraphs.
    pub paragraphs: Vec<String>,
    /// The publishing department and its search link.
    pub publisher: Counted,
    /// Its category and its search link.
    pub category: Counted,
    /// Its tags.
    pub tags: Vec<String>,
    /// Its licence id and its text's URL, if known.
    pub license: (String, Option<String>),
    /// Its openness.
    pub openness: Badge,
    /// How to obtain it.
    pub how: &'static str,
    /// Its application form, when it is conditional.
    pub apply_url: Option<String>,
    /// Its version.
    pub version: i64,
    /// Its record count, grouped for reading.
    pub records: String,
    /// When it was last updated, for people and RFC 3339.
    pub updated: (String, String),
    /// Its files.
    pub files: Vec<FileView>,
    /// The `SHA256SUMS` URL.
    pub sums_url: String,
    /// Its fields.
    pub fields: Vec<FieldView>,
    /// Identifiers it publishes on purpose.
    pub declared: Vec<DeclaredView>,
    /// Its re-identification risk: label and value.
    pub risk: Vec<(&'static str, String)>,
    /// The preview.
    pub preview: PreviewView,
    /// The snippets: heading and code.
    pub snippets: Vec<(&'static str, String)>,
    /// How often it was downloaded, grouped for reading.
    pub downloads: String,
    /// Its update frequency's name.
    pub frequency: &'static str,
    /// Its timeliness: CSS class (`on-time`, `overdue`, `irregular`) and text.
    pub timeliness: (&'static str, String),
    /// Its metadata quality.
    pub quality: QualityView,
    /// Its versions and withdrawals, newest first.
    pub history: Vec<HistoryRow>,
}

/// A version's metadata quality as a page shows it.
#[derive(Clone, Debug)]
pub struct QualityView {
    /// "312 of 405 points (Good)".
    pub summary: String,
    /// Its rating (`excellent`, `good`, `sufficient`, `bad`), for the badge's CSS class.
    pub rating: &'static str,
    /// Each dimension: name, "50 / 100", and the names of the checks it misses.
    pub dimensions: Vec<(&'static str, String, Vec<&'static str>)>,
}

/// A row of a version history.
#[derive(Clone, Debug)]
pub struct HistoryRow {
    /// The version.
    pub version: i64,
    /// "Published" or "Withdrawn".
    pub change: &'static str,
    /// When, for people and RFC 3339.
    pub at: (String, String),
    /// Its record count, grouped.
    pub records: String,
    /// Its content digest's first 16 hex digits (the full one in `content_full`).
    pub content: String,
    /// Its whole content digest.
    pub content_full: String,
    /// Its quality score ("312 / 405"), empty for a withdrawal.
    pub quality: String,
}

/// A row of the changelog.
#[derive(Clone, Debug)]
pub struct ChangeRow {
    /// When, for people and RFC 3339.
    pub at: (String, String),
    /// "Published" or "Withdrawn".
    pub change: &'static str,
    /// Whether it is a withdrawal.
    pub withdrawn: bool,
    /// The dataset's title then.
    pub title: String,
    /// Its page, while it is served.
    pub url: Option<String>,
    /// The version.
    pub version: i64,
    /// The publishing department.
    pub department: String,
    /// Its record count then, grouped.
    pub records: String,
}

/// `/changes`.
#[derive(Template)]
#[template(path = "portal/changes.html")]
pub struct Changes {
    /// The frame.
    pub layout: Layout,
    /// The rows, newest first.
    pub rows: Vec<ChangeRow>,
    /// The page of older changes, if any.
    pub older_url: Option<String>,
    /// The newest changes, on an older page.
    pub newest_url: Option<String>,
}

/// A department in the ranking.
#[derive(Clone, Debug)]
pub struct DepartmentRow {
    /// Its place, from 1.
    pub rank: usize,
    /// Its name.
    pub name: String,
    /// Its page.
    pub url: String,
    /// How many datasets it publishes.
    pub datasets: usize,
    /// Its mean quality score and rating.
    pub quality: String,
    /// Its rating, for the CSS class.
    pub rating: &'static str,
    /// Its on-time rate ("75 %", or "—" without scheduled datasets).
    pub on_time: String,
    /// Downloads of its datasets, grouped.
    pub downloads: String,
}

/// `/departments`: every department, ranked by the metadata quality of its datasets.
#[derive(Template)]
#[template(path = "portal/departments.html")]
pub struct Departments {
    /// The frame.
    pub layout: Layout,
    /// The ranking.
    pub rows: Vec<DepartmentRow>,
}

/// `/departments/{code}`.
#[derive(Template)]
#[template(path = "portal/department.html")]
pub struct DepartmentPage {
    /// The frame.
    pub layout: Layout,
    /// Its name.
    pub name: String,
    /// Its credit code.
    pub code: String,
    /// Its figures: label and value.
    pub figures: Vec<(&'static str, String)>,
    /// Its mean quality's rating, for the badge.
    pub rating: &'static str,
    /// Its datasets on this page, newest first.
    pub results: Vec<Card>,
    /// "Page 2 of 5", when there is more than one.
    pub page_label: Option<String>,
    /// The previous page.
    pub prev_url: Option<String>,
    /// The next page.
    pub next_url: Option<String>,
    /// The catalogue filtered by the department.
    pub search_url: String,
}

/// A page that says what went wrong (400, 404, 503).
#[derive(Template)]
#[template(path = "portal/error.html")]
pub struct ErrorPage {
    /// The frame.
    pub layout: Layout,
    /// The heading.
    pub heading: &'static str,
    /// What happened.
    pub message: String,
    /// The parameter at fault, for a bad request.
    pub parameter: Option<String>,
}

/// A size in bytes for people: `980 B`, `12.3 KB`, `3.1 MB`, `1.2 GB` (powers of 1024).
pub fn human_size(bytes: i64) -> String {
    let units = ["B", "KB", "MB", "GB", "TB"];
    let mut value = bytes.max(0) as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < units.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", units[unit])
    }
}

/// A count with thousands separators: `1,234,567`.
pub fn grouped(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// Microseconds since the epoch as `2026-12-01 22:40 UTC` and as RFC 3339.
pub fn when(micros: i64) -> (String, String) {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(t) => (t.strftime("%Y-%m-%d %H:%M UTC").to_string(), t.to_string()),
        Err(_) => (String::new(), String::new()),
    }
}

/// The first `chars` characters of `text` on one line, with `…` when cut.
pub fn summary(text: &str, chars: usize) -> String {
    let flat: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if flat.chars().count() > chars {
        let mut short: String = flat.chars().take(chars).collect();
        short.push('…');
        short
    } else {
        flat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_for_people() {
        assert_eq!(human_size(980), "980 B");
        assert_eq!(human_size(3 << 20), "3.0 MB");
        assert_eq!(grouped(1_234_567), "1,234,567");
        assert_eq!(grouped(12), "12");
        assert_eq!(summary("a  b\nc", 10), "a b c");
        assert_eq!(summary("西湖西湖西湖", 2), "西湖…");
        assert_eq!(when(0).0, "1970-01-01 00:00 UTC");
    }

    #[test]
    fn json_ld_cannot_end_its_script_element() {
        let text = json_ld(&serde_json::json!({ "name": "</script><script>alert(1)</script>&" }));
        assert!(!text.contains('<') && !text.contains('>') && !text.contains('&'));
        let back: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        assert_eq!(back["name"], "</script><script>alert(1)</script>&");
    }
}
