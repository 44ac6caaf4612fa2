//! The website's side of applications for conditional datasets ([`crate::portal::applications`]):
//!
//! - `GET /datasets/{id}/apply`: the form (applicant, organisation, purpose, contact);
//! - `POST /datasets/{id}/apply`: stores and audits it, then 303 to its status page;
//! - `GET /applications/{number}/{secret}`: the status page the applicant returns to;
//! - `POST /applications/{number}/{secret}/collect`: shows the download token, once.
//!
//! Both forms carry a CSRF token that must equal the one in the form's cookie (a double submit,
//! as the monitor's sign-in; the cookie is `HttpOnly` and `SameSite=Strict`). A body larger than
//! [`MAX_FORM_BYTES`], not a urlencoded form, with an unknown or repeated field, or with a field
//! the form refuses is answered with a 400 page; everything the applicant wrote is shown
//! through askama's escaping.

use std::collections::BTreeMap;

use askama::Template;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::i18n::Lang;
use super::pages::{ErrorPage, Layout, when};
use super::query::{self, BadParameter, link};
use super::routes::{Frame, html, language};
use crate::monitor::session::{cookie, random_token, see_other, set_cookie};
use crate::portal::applications::{
    self, Application, Collected, FIELDS, MAX_FORM_BYTES, Problem, State as AppState, Submitted,
};
use crate::portal::http::PortalHttp;
use crate::portal::{Entry, load_one, valid_id};
use crate::service::now_micros;

/// The forms' CSRF cookie.
pub const CSRF_COOKIE: &str = "govdc_portal_csrf";
/// How long a form's CSRF cookie lasts, seconds: a purpose takes a while to write.
const CSRF_SECONDS: u64 = 4 * 3600;

/// A field of the application form as the page shows it.
#[derive(Clone, Debug)]
pub struct FieldView {
    /// The form field's name (and the input's id).
    pub name: &'static str,
    /// Its label.
    pub label: &'static str,
    /// Its hint.
    pub hint: &'static str,
    /// What the applicant wrote, when the form comes back with problems.
    pub value: String,
    /// What is wrong with it.
    pub error: Option<String>,
    /// A textarea rather than a line.
    pub multiline: bool,
    /// Its most characters.
    pub max: usize,
    /// The input's `autocomplete` token.
    pub autocomplete: &'static str,
}

/// `/datasets/{id}/apply`.
#[derive(Template)]
#[template(path = "portal/apply.html")]
pub struct ApplyPage {
    /// The frame.
    pub layout: Layout,
    /// "Apply for: {title}".
    pub heading: String,
    /// The dataset's title.
    pub dataset_title: String,
    /// Its page.
    pub dataset_url: String,
    /// Where the form posts.
    pub action: String,
    /// The form's CSRF token.
    pub csrf: String,
    /// The fields.
    pub fields: Vec<FieldView>,
    /// The problems, in the form's order: field and message.
    pub problems: Vec<(&'static str, String)>,
}

/// `/applications/{number}/{secret}`, and the collected token.
#[derive(Template)]
#[template(path = "portal/application.html")]
pub struct ApplicationPage {
    /// The frame.
    pub layout: Layout,
    /// Its number.
    pub number: String,
    /// The dataset's title (its id once it is no longer served).
    pub dataset_title: String,
    /// The dataset's page, while it is served.
    pub dataset_url: Option<String>,
    /// Who applied.
    pub applicant: String,
    /// When it was submitted, for people and RFC 3339.
    pub submitted: (String, String),
    /// Its state's name.
    pub state_label: &'static str,
    /// Its state's CSS class.
    pub state_class: &'static str,
    /// What the state means for the applicant.
    pub message: String,
    /// A rejection's reason.
    pub reason: Option<String>,
    /// The token collect form's action, while there is a token to collect.
    pub collect_action: Option<String>,
    /// The collect form's CSRF token.
    pub csrf: String,
    /// The token, on the one answer that shows it.
    pub token: Option<String>,
    /// "Valid until ...".
    pub token_expires: String,
    /// How to download with it.
    pub snippet: String,
}

/// A CSRF token for a form page: the one the browser holds already (so that two open forms
/// both stay valid), else a new one; and whether it is new.
fn csrf_of(headers: &HeaderMap) -> std::io::Result<(String, bool)> {
    match cookie(headers, CSRF_COOKIE) {
        Some(held) if held.len() == 64 && held.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok((held, false))
        }
        _ => Ok((random_token()?, true)),
    }
}

fn with_csrf_cookie(mut response: Response, csrf: &str, new: bool) -> Response {
    if new
        && let Ok(value) = HeaderValue::from_str(&set_cookie(CSRF_COOKIE, csrf, "/", CSRF_SECONDS))
    {
        response.headers_mut().append(header::SET_COOKIE, value);
    }
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

impl Frame<'_> {
    fn error(&self, status: StatusCode, heading: &'static str, message: String) -> Response {
        let page = ErrorPage {
            layout: self.layout(heading.to_owned(), "datasets"),
            heading,
            message,
            parameter: None,
        };
        html(status, self.lang, page.render())
    }

    fn csrf_refused(&self) -> Response {
        self.error(
            StatusCode::FORBIDDEN,
            self.lang.t("csrf.title"),
            self.lang.t("csrf.body").to_owned(),
        )
    }

    fn no_dataset(&self, id: &str) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            self.lang.t("notfound.title"),
            self.lang.fill("notfound.body", &[("id", id)]),
        )
    }

    fn no_application(&self) -> Response {
        self.error(
            StatusCode::NOT_FOUND,
            self.lang.t("application.notfound.title"),
            self.lang.t("application.notfound.body").to_owned(),
        )
    }
}

/// The fields of a posted form: at most [`MAX_FORM_BYTES`], urlencoded, each field at most
/// once and one of `allowed`.
async fn read_form(
    headers: &HeaderMap,
    body: Body,
    allowed: &[&str],
) -> Result<BTreeMap<String, String>, BadParameter> {
    let urlencoded = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !urlencoded {
        return Err(BadParameter::Invalid {
            name: "Content-Type".to_owned(),
            value: headers
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .chars()
                .take(100)
                .collect(),
            allowed: "application/x-www-form-urlencoded".to_owned(),
        });
    }
    let bytes = axum::body::to_bytes(body, MAX_FORM_BYTES)
        .await
        .map_err(|_| BadParameter::TooLong {
            name: "form".to_owned(),
            max: MAX_FORM_BYTES,
        })?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(BadParameter::Invalid {
            name: "form".to_owned(),
            value: String::new(),
            allowed: "UTF-8 text".to_owned(),
        });
    }
    let mut out = BTreeMap::new();
    for (name, value) in form_urlencoded::parse(&bytes) {
        if !allowed.contains(&name.as_ref()) {
            return Err(BadParameter::Unknown {
                name: name.chars().take(100).collect(),
            });
        }
        // Percent-escapes that decode to invalid UTF-8 come back as U+FFFD: not what was sent.
        if value.contains('\u{FFFD}') {
            return Err(BadParameter::Invalid {
                name: name.into_owned(),
                value: String::new(),
                allowed: "UTF-8 text".to_owned(),
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

/// The frame of a page of this module, or the 400 page of its query (only `?lang=`).
fn frame<'a>(
    state: &'a PortalHttp,
    headers: &HeaderMap,
    path: &'a str,
    raw: Option<&'a str>,
) -> Result<Frame<'a>, Box<Response>> {
    let params = query::parameters(raw, query::PLAIN).and_then(|p| query::lang(&p));
    let explicit = params.as_ref().ok().copied().flatten();
    let frame = Frame {
        state,
        lang: language(explicit, headers),
        explicit,
        path,
        query: raw,
    };
    match params {
        Ok(_) => Ok(frame),
        Err(bad) => Err(Box::new(frame.bad_request(&bad))),
    }
}

async fn conditional_entry(state: &PortalHttp, id: &str) -> Result<Option<Entry>, tonic::Status> {
    if !valid_id(id) {
        return Ok(None);
    }
    let lookup = id.to_owned();
    state
        .hub
        .store
        .read(move |conn| Ok(load_one(conn, &lookup)?))
        .await
}

fn form_page(
    frame: &Frame,
    entry: &Entry,
    csrf: &str,
    values: &BTreeMap<String, String>,
    problems: &[Problem],
) -> ApplyPage {
    let lang = frame.lang;
    let m = &entry.metadata;
    let message = |p: &Problem| {
        let rule = FIELDS.iter().find(|r| r.name == p.field);
        lang.fill(
            p.key,
            &[
                ("field", lang.t(&format!("apply.field.{}", p.field))),
                ("min", &rule.map_or(0, |r| r.min).to_string()),
                ("max", &rule.map_or(0, |r| r.max).to_string()),
            ],
        )
    };
    ApplyPage {
        layout: frame.layout(lang.t("apply.title").to_owned(), "datasets"),
        heading: lang.fill("apply.heading", &[("title", &m.title)]),
        dataset_title: m.title.clone(),
        dataset_url: frame.dataset_url(&m.id),
        action: link(&format!("/datasets/{}/apply", m.id), frame.explicit),
        csrf: csrf.to_owned(),
        fields: FIELDS
            .iter()
            .map(|rule| FieldView {
                name: rule.name,
                label: lang.t(&format!("apply.field.{}", rule.name)),
                hint: lang.t(&format!("apply.hint.{}", rule.name)),
                value: values.get(rule.name).cloned().unwrap_or_default(),
                error: problems.iter().find(|p| p.field == rule.name).map(&message),
                multiline: rule.multiline,
                max: rule.max,
                autocomplete: match rule.name {
                    "applicant" => "name",
                    "organisation" => "organization",
                    _ => "off",
                },
            })
            .collect(),
        problems: problems.iter().map(|p| (p.field, message(p))).collect(),
    }
}

/// `GET /datasets/{id}/apply`.
pub async fn form(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/datasets/{}/apply", encoded(&id));
    let frame = match frame(&state, &headers, &path, raw.as_deref()) {
        Ok(frame) => frame,
        Err(response) => return *response,
    };
    let entry = match conditional_entry(&state, &id).await {
        Ok(Some(entry)) => entry,
        Ok(None) => return frame.no_dataset(&id),
        Err(status) => return frame.unavailable(status.message()),
    };
    if !entry.conditional() {
        return frame.error(
            StatusCode::CONFLICT,
            frame.lang.t("apply.title"),
            frame.lang.t("apply.unconditional").to_owned(),
        );
    }
    let (csrf, new) = match csrf_of(&headers) {
        Ok(csrf) => csrf,
        Err(e) => return frame.unavailable(&e.to_string()),
    };
    let page = form_page(&frame, &entry, &csrf, &BTreeMap::new(), &[]);
    with_csrf_cookie(
        no_store(html(StatusCode::OK, frame.lang, page.render())),
        &csrf,
        new,
    )
}

fn encoded(segment: &str) -> String {
    form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

fn csrf_matches(headers: &HeaderMap, fields: &BTreeMap<String, String>) -> bool {
    let expected = cookie(headers, CSRF_COOKIE).unwrap_or_default();
    let given = fields.get("csrf").map(String::as_str).unwrap_or_default();
    crate::monitor::session::same(&expected, given)
}

/// `POST /datasets/{id}/apply`.
pub async fn submit(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path(id): Path<String>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Response {
    let path = format!("/datasets/{}/apply", encoded(&id));
    let frame = match frame(&state, &headers, &path, raw.as_deref()) {
        Ok(frame) => frame,
        Err(response) => return *response,
    };
    let mut allowed = vec!["csrf"];
    allowed.extend(FIELDS.iter().map(|f| f.name));
    let fields = match read_form(&headers, body, &allowed).await {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    if !csrf_matches(&headers, &fields) {
        return frame.csrf_refused();
    }
    let entry = match conditional_entry(&state, &id).await {
        Ok(Some(entry)) if entry.conditional() => entry,
        Ok(Some(_)) => {
            return frame.error(
                StatusCode::CONFLICT,
                frame.lang.t("apply.title"),
                frame.lang.t("apply.unconditional").to_owned(),
            );
        }
        Ok(None) => return frame.no_dataset(&id),
        Err(status) => return frame.unavailable(status.message()),
    };
    let form = match applications::validate(&fields) {
        Ok(form) => form,
        Err(problems) => {
            let csrf = fields.get("csrf").cloned().unwrap_or_default();
            let page = form_page(&frame, &entry, &csrf, &fields, &problems);
            return no_store(html(StatusCode::BAD_REQUEST, frame.lang, page.render()));
        }
    };
    match applications::submit(&state.hub, &id, form).await {
        Ok(Submitted::Stored { id: number, secret }) => {
            tracing::info!(application = %number, dataset = %id, "an application was submitted");
            see_other(&link(
                &format!("/applications/{number}/{secret}"),
                frame.explicit,
            ))
        }
        Ok(Submitted::NoSuchDataset) => frame.no_dataset(&id),
        Ok(Submitted::Unconditional) => frame.error(
            StatusCode::CONFLICT,
            frame.lang.t("apply.title"),
            frame.lang.t("apply.unconditional").to_owned(),
        ),
        Ok(Submitted::Full) => frame.error(
            StatusCode::SERVICE_UNAVAILABLE,
            frame.lang.t("apply.title"),
            frame.lang.t("apply.full").to_owned(),
        ),
        Err(e) => frame.unavailable(&e.report()),
    }
}

/// The status page of `application`, with the token when it was just collected.
async fn status_page(
    frame: &Frame<'_>,
    application: &Application,
    secret: &str,
    csrf: &str,
    token: Option<String>,
) -> Response {
    let lang = frame.lang;
    let state = frame.state;
    let lookup = application.dataset_id.clone();
    let entry = match state
        .hub
        .store
        .read(move |conn| Ok(load_one(conn, &lookup)?))
        .await
    {
        Ok(entry) => entry,
        Err(status) => return frame.unavailable(status.message()),
    };
    let served = entry.as_ref().is_some_and(Entry::conditional);
    let now = now_micros();
    let expires = application
        .expires_at
        .map(|at| when(at).0)
        .unwrap_or_default();
    let (state_key, state_class, message, collectable) = match application.state {
        AppState::Pending => (
            "application.state.pending",
            "pending",
            lang.t("application.pending").to_owned(),
            false,
        ),
        AppState::Rejected => (
            "application.state.rejected",
            "rejected",
            lang.t("application.rejected").to_owned(),
            false,
        ),
        AppState::Approved if token.is_some() => (
            "application.state.collected",
            "collected",
            lang.fill("token.expires", &[("expires", &expires)]),
            false,
        ),
        AppState::Approved => match application.collected_at {
            Some(at) => (
                "application.state.collected",
                "collected",
                lang.fill("application.collected", &[("at", &when(at).0)]),
                false,
            ),
            None if application.expires_at.is_none_or(|at| at <= now) => (
                "application.state.expired",
                "expired",
                lang.fill("application.expired", &[("at", &expires)]),
                false,
            ),
            None if !served => (
                "application.state.approved",
                "approved",
                lang.t("application.gone").to_owned(),
                false,
            ),
            None => (
                "application.state.approved",
                "approved",
                lang.fill("application.approved", &[("expires", &expires)]),
                true,
            ),
        },
    };
    let base = state.portal.public_url.clone();
    let snippet = entry
        .as_ref()
        .map(|e| {
            e.to_api()
                .files
                .iter()
                .map(|f| {
                    format!(
                        "curl -fLO -H \"Authorization: Bearer $GOVDC_TOKEN\" {base}{}",
                        f.path
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default();
    let page = ApplicationPage {
        layout: frame.layout(lang.t("application.title").to_owned(), "datasets"),
        number: application.id.clone(),
        dataset_title: entry.as_ref().map_or_else(
            || application.dataset_id.clone(),
            |e| e.metadata.title.clone(),
        ),
        dataset_url: entry.as_ref().map(|e| frame.dataset_url(&e.metadata.id)),
        applicant: format!(
            "{} · {}",
            application.form.applicant, application.form.organisation
        ),
        submitted: when(application.submitted_at),
        state_label: lang.t(state_key),
        state_class,
        message,
        reason: (application.state == AppState::Rejected).then(|| application.reason.clone()),
        collect_action: collectable.then(|| {
            link(
                &format!("/applications/{}/{secret}/collect", application.id),
                frame.explicit,
            )
        }),
        csrf: csrf.to_owned(),
        token_expires: lang.fill("token.expires", &[("expires", &expires)]),
        snippet: format!(
            "export GOVDC_TOKEN='{}'\n{snippet}",
            token.as_deref().unwrap_or("…")
        ),
        token,
    };
    no_store(html(StatusCode::OK, lang, page.render()))
}

/// `GET /applications/{number}/{secret}`.
pub async fn status(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path((number, secret)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Response {
    let path = format!("/applications/{}/{}", encoded(&number), encoded(&secret));
    let frame = match frame(&state, &headers, &path, raw.as_deref()) {
        Ok(frame) => frame,
        Err(response) => return *response,
    };
    let (lookup, key) = (number.clone(), secret.clone());
    let found = state
        .hub
        .store
        .read(move |conn| Ok(applications::by_link(conn, &lookup, &key)?))
        .await;
    let application = match found {
        Ok(Some(application)) => application,
        Ok(None) => return no_store(frame.no_application()),
        Err(status) => return frame.unavailable(status.message()),
    };
    let (csrf, new) = match csrf_of(&headers) {
        Ok(csrf) => csrf,
        Err(e) => return frame.unavailable(&e.to_string()),
    };
    let response = status_page(&frame, &application, &secret, &csrf, None).await;
    with_csrf_cookie(response, &csrf, new)
}

/// `POST /applications/{number}/{secret}/collect`.
pub async fn collect(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path((number, secret)): Path<(String, String)>,
    RawQuery(raw): RawQuery,
    body: Body,
) -> Response {
    let path = format!("/applications/{}/{}", encoded(&number), encoded(&secret));
    let frame = match frame(&state, &headers, &path, raw.as_deref()) {
        Ok(frame) => frame,
        Err(response) => return *response,
    };
    let fields = match read_form(&headers, body, &["csrf"]).await {
        Ok(fields) => fields,
        Err(bad) => return frame.bad_request(&bad),
    };
    if !csrf_matches(&headers, &fields) {
        return frame.csrf_refused();
    }
    let csrf = fields.get("csrf").cloned().unwrap_or_default();
    match applications::collect(&state.hub, &number, &secret).await {
        Ok(Collected::Token { token, application }) => {
            tracing::info!(application = %number, "a download token was collected");
            status_page(&frame, &application, &secret, &csrf, Some(token)).await
        }
        Ok(Collected::Nothing(application)) => {
            status_page(&frame, &application, &secret, &csrf, None).await
        }
        Ok(Collected::Unknown) => no_store(frame.no_application()),
        Err(e) => frame.unavailable(&e.report()),
    }
}

/// Where a browser's anonymous download of a conditional file goes: the dataset's application
/// form, in the language the download's URL chose, if any.
pub fn apply_path(id: &str, lang: Option<Lang>) -> String {
    link(&format!("/datasets/{id}/apply"), lang)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_built_key_is_in_both_languages() {
        let mut keys: Vec<String> = Vec::new();
        for rule in FIELDS {
            keys.push(format!("apply.field.{}", rule.name));
            keys.push(format!("apply.hint.{}", rule.name));
        }
        for key in [
            "apply.problem.missing",
            "apply.problem.too_long",
            "apply.problem.too_short",
            "apply.problem.control",
            "apply.problem.contact",
        ] {
            keys.push(key.to_owned());
        }
        for key in &keys {
            for lang in [Lang::Zh, Lang::En] {
                assert!(!lang.t(key).is_empty(), "{key} has no {lang:?} text");
            }
        }
    }
}
