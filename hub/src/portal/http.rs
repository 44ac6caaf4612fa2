//! The portal's public HTTP side, on `portalListen`:
//!
//! - `GET /api/datasets[?q=&category=&organization=&tag=]`, `GET /api/datasets/{id}`: JSON;
//! - `GET /download/{id}/{version}/data.{csv,json}.gz`: the files, with `Content-Length`,
//!   `ETag` (the SHA-256), `Digest: sha-256=<base64>`, `X-Checksum-Sha256`, `Accept-Ranges` and
//!   single-range requests; conditional datasets need `Authorization: Bearer <token>` (a browser
//!   without one is sent to the dataset's application form, [`super::web::apply`]);
//! - `GET /download/{id}/{version}/SHA256SUMS`: the files' checksums, `sha256sum -c` format;
//! - `/api/3/action/...` and `/api/action/...`: the CKAN subset ([`super::ckan`]);
//! - `GET /catalog.jsonld`: the DCAT-AP catalog ([`super::dcat`]);
//! - `GET /` with `Accept: text/html`, `/datasets`, `/datasets/{id}`: the website
//!   ([`super::web`]); `/` without it is a JSON index.
//!
//! Files are streamed from disk in fixed-size chunks: memory does not grow with the file or
//! with a slow client (the body waits for the socket before reading on).

use std::io::SeekFrom;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio_util::io::ReaderStream;

use super::{Entry, Portal, StoredFile, load_one, load_version, token_valid, valid_id};
use crate::service::{Hub, now_micros};

/// Bytes read from disk per body chunk: large enough that a 100 MB file costs a few hundred
/// reads, small enough that a thousand slow downloads hold a quarter of a gigabyte at most.
const CHUNK: usize = 256 * 1024;

/// What the handlers share.
#[derive(Clone, Debug)]
pub struct PortalHttp {
    /// The node.
    pub hub: Arc<Hub>,
    /// Its portal.
    pub portal: Arc<Portal>,
}

/// The portal's HTTP app.
pub fn router(hub: Arc<Hub>, portal: Arc<Portal>) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/api/datasets", get(list))
        .route("/api/datasets/{id}", get(show))
        .route("/download/{id}/{version}/{file}", get(download))
        .route("/catalog.jsonld", get(catalog))
        .route(
            "/api/3/action/{action}",
            get(super::ckan::action).post(super::ckan::action),
        )
        // ckanapi's RemoteCKAN calls this unversioned path.
        .route(
            "/api/action/{action}",
            get(super::ckan::action).post(super::ckan::action),
        )
        .merge(super::web::routes())
        .layer(axum::middleware::from_fn(limits))
        .with_state(PortalHttp { hub, portal })
}

/// Longest query string the portal reads: its searches are words and filters, not documents.
pub const MAX_QUERY_BYTES: usize = 8 * 1024;
/// Most bytes of request headers (names and values) the portal reads.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Refuses what no client of the portal needs before any handler parses it: an oversized query
/// string (414) or oversized headers (431).
async fn limits(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    if let Some(query) = request.uri().query()
        && query.len() > MAX_QUERY_BYTES
    {
        return text(
            StatusCode::URI_TOO_LONG,
            format!(
                "the query string has {} bytes; the portal reads at most {MAX_QUERY_BYTES}",
                query.len()
            ),
        );
    }
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len())
        .sum();
    if header_bytes > MAX_HEADER_BYTES {
        return text(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            format!(
                "the request headers have {header_bytes} bytes; the portal reads at most {MAX_HEADER_BYTES}"
            ),
        );
    }
    next.run(request).await
}

/// A JSON response.
pub fn json_response(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    (
        status,
        [(header::CONTENT_TYPE, "application/json; charset=utf-8")],
        body,
    )
        .into_response()
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.into()),
    )
        .into_response()
}

fn internal(cause: &str) -> Response {
    text(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("the portal cannot answer now: {cause}"),
    )
}

/// The base of absolute URLs: the configured public URL. Never the request's `Host`: a client
/// (or a cache poisoned by one) would otherwise choose where the links it is served point.
pub fn base_url(portal: &Portal, _headers: &HeaderMap) -> String {
    portal.public_url.clone()
}

/// RFC 3339 of microseconds since the epoch.
pub fn rfc3339(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.to_string())
        .unwrap_or_default()
}

/// The openness's name.
pub fn openness_name(entry: &Entry) -> &'static str {
    if entry.conditional() {
        "conditional"
    } else {
        "unconditional"
    }
}

/// Whether `entry` matches a free-text query: a case-insensitive substring of its id, title,
/// description or a tag. An empty query matches everything.
pub fn matches_query(entry: &Entry, query: &str) -> bool {
    super::search::matches_text(entry, query)
}

/// A field as the portal documents it; with the identifiers it publishes on purpose and the
/// publisher's justification, when it declares any.
pub fn field_json(f: &govdc_hub_api::v1::DatasetField) -> Value {
    let mut field = json!({
        "name": f.name, "treatment": f.treatment, "description": f.description,
    });
    if !f.declared_identifiers.is_empty() {
        field["declaredIdentifiers"] = json!({
            "kinds": f.declared_identifiers,
            "justification": f.identifier_justification,
        });
    }
    field
}

/// A version's re-identification risk as the portal documents it.
pub fn risk_json(r: &govdc_hub_api::v1::ReidentificationRisk) -> Value {
    json!({
        "smallestGroup": r.smallest_group,
        "groups": r.groups,
        "highestProsecutorRiskPercent": r.highest_prosecutor_risk_percent,
        "averageProsecutorRiskPercent": r.average_prosecutor_risk_percent,
        "thresholdPercent": r.threshold_percent,
        "recordsAtRisk": r.records_at_risk,
    })
}

fn dataset_json(entry: &Entry, base: &str) -> Value {
    let m = &entry.metadata;
    let api = entry.to_api();
    json!({
        "id": m.id,
        "title": m.title,
        "description": m.description,
        "category": m.category,
        "openness": openness_name(entry),
        "license": m.license,
        "tags": m.tags,
        "organization": { "creditCode": m.organization_credit_code, "name": m.organization_name },
        "version": m.version,
        "recordCount": m.record_count,
        "contentSha256": m.content_sha256,
        "fields": m.fields.iter().map(field_json).collect::<Vec<_>>(),
        "reidentificationRisk": m.risk.as_ref().map(risk_json),
        "publishedAt": rfc3339(entry.published_at),
        "files": api.files.iter().map(|f| json!({
            "format": f.format,
            "size": f.size,
            "sha256": f.sha256,
            "path": f.path,
            "url": format!("{base}{}", f.path),
        })).collect::<Vec<_>>(),
        "checksums": format!("{base}/download/{}/{}/SHA256SUMS", m.id, m.version),
    })
}

async fn index(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    // Browsers get the website's home page; API clients keep this JSON index.
    if super::web::routes::wants_html(&headers) {
        return super::web::routes::home(&state, &headers, query.as_deref()).await;
    }
    let base = base_url(&state.portal, &headers);
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "portal": state.hub.config.name,
            "datasets": format!("{base}/api/datasets"),
            "ckan": format!("{base}/api/3/action/package_search"),
            "dcat": format!("{base}/catalog.jsonld"),
            "website": format!("{base}/datasets"),
        }),
    );
    // The same URL answers HTML to browsers: a cache must keep the two apart.
    response
        .headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    response
}

fn query_pairs(query: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .into_owned()
        .collect()
}

async fn list(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return internal(status.message()),
    };
    let entries = &snapshot.entries;
    let pairs = query_pairs(query.as_deref());
    let param = |key: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let base = base_url(&state.portal, &headers);
    // The catalogue's index finds the text; the listing stays in id order.
    let mut found = snapshot.index.search(
        entries,
        &super::search::Query {
            text: param("q").unwrap_or_default().to_owned(),
            ..Default::default()
        },
    );
    found.sort_unstable();
    let datasets: Vec<Value> = snapshot
        .at(&found)
        .filter(|e| param("category").is_none_or(|c| e.metadata.category == c))
        .filter(|e| {
            param("organization").is_none_or(|o| {
                e.metadata.organization_credit_code.eq_ignore_ascii_case(o)
                    || e.metadata.organization_name == o
            })
        })
        .filter(|e| param("tag").is_none_or(|t| e.metadata.tags.iter().any(|x| x == t)))
        .map(|e| dataset_json(e, &base))
        .collect();
    json_response(
        StatusCode::OK,
        &json!({ "count": datasets.len(), "datasets": datasets }),
    )
}

async fn show(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if !valid_id(&id) {
        return json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no dataset {id}") }),
        );
    }
    let lookup = id.clone();
    match state
        .hub
        .store
        .read(move |conn| Ok(load_one(conn, &lookup)?))
        .await
    {
        Ok(Some(entry)) => json_response(
            StatusCode::OK,
            &dataset_json(&entry, &base_url(&state.portal, &headers)),
        ),
        Ok(None) => json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no dataset {id}") }),
        ),
        Err(status) => internal(status.message()),
    }
}

async fn catalog(State(state): State<PortalHttp>, headers: HeaderMap) -> Response {
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return internal(status.message()),
    };
    let base = base_url(&state.portal, &headers);
    let body = super::dcat::catalog(&state.hub.config.name, &base, &snapshot.entries);
    let mut response = json_response(StatusCode::OK, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/ld+json; charset=utf-8"),
    );
    response
}

/// The token of `Authorization: Bearer <token>`, if any (public for the fuzz targets, `fuzz/`).
pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_owned())
        .filter(|t| !t.is_empty())
}

/// What a `Range` header asks of a file of `size` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ranged {
    /// The whole file (no range, one we do not serve, or one to ignore).
    Whole,
    /// Bytes `start..=end`.
    Part(u64, u64),
    /// A range entirely past the end, or a `bytes=` range that does not parse: 416.
    Unsatisfiable,
}

/// Parses a single `bytes=` range (RFC 9110 §14.1.2). Several ranges are answered with the whole
/// file, which the RFC allows, rather than a multipart body; another unit is ignored, as the RFC
/// requires; a `bytes=` range that does not parse is rejected (416), which the RFC allows, so
/// that a client with a broken range learns it instead of silently getting the whole file.
pub fn parse_range(value: &str, size: u64) -> Ranged {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ranged::Whole;
    };
    if spec.contains(',') {
        return Ranged::Whole;
    }
    let Some((first, last)) = spec.split_once('-') else {
        return Ranged::Unsatisfiable;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        // A suffix: the last n bytes.
        let Some(n) = position(last) else {
            return Ranged::Unsatisfiable;
        };
        if n == 0 || size == 0 {
            return Ranged::Unsatisfiable;
        }
        return Ranged::Part(size.saturating_sub(n), size - 1);
    }
    let Some(start) = position(first) else {
        return Ranged::Unsatisfiable;
    };
    let end = if last.is_empty() {
        u64::MAX
    } else {
        match position(last) {
            Some(end) if end >= start => end,
            _ => return Ranged::Unsatisfiable,
        }
    };
    if start >= size {
        return Ranged::Unsatisfiable;
    }
    Ranged::Part(start, end.min(size - 1))
}

/// A byte position or length of a range, RFC 9110's `1*DIGIT`: digits only (`u64::from_str`
/// also takes a `+`), and one too large for a u64 saturates, since it is past the end of any
/// file all the same (a last position or suffix past the end means the end, not a 416; found by
/// the `range` fuzz target).
fn position(text: &str) -> Option<u64> {
    (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())).then(|| {
        text.bytes().fold(0u64, |n, b| {
            n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
        })
    })
}

enum Wanted {
    File(&'static str),
    Sums,
}

async fn download(
    State(state): State<PortalHttp>,
    method: axum::http::Method,
    headers: HeaderMap,
    Path((id, version, name)): Path<(String, String, String)>,
) -> Response {
    let not_found = || text(StatusCode::NOT_FOUND, "no such file on this portal");
    let wanted = match name.as_str() {
        "data.csv.gz" => Wanted::File("csv"),
        "data.json.gz" => Wanted::File("json"),
        "SHA256SUMS" => Wanted::Sums,
        _ => return not_found(),
    };
    let Ok(version) = version.parse::<i64>() else {
        return not_found();
    };
    if !valid_id(&id) {
        return not_found();
    }
    let token = bearer(&headers);
    let lookup = id.clone();
    let found = state
        .hub
        .store
        .read(move |conn| {
            let Some((files, conditional)) = load_version(conn, &lookup, version)? else {
                return Ok(None);
            };
            let token_ok = match (&token, conditional) {
                (Some(token), true) => Some(token_valid(conn, &lookup, token, now_micros())?),
                (None, true) => None,
                (_, false) => Some(true),
            };
            let awaiting = super::restore::awaiting(conn, &lookup, version)?;
            Ok(Some((files, conditional, token_ok, awaiting)))
        })
        .await;
    let (files, conditional, token_ok, awaiting) = match found {
        Ok(Some(found)) => found,
        Ok(None) => return not_found(),
        Err(status) => return internal(status.message()),
    };
    let format = match wanted {
        // Checksums are not the data: they stay public, like the metadata.
        Wanted::Sums => {
            let sums: String = files
                .iter()
                .map(|f| format!("{}  {}\n", f.sha256, super::file_name(&f.format)))
                .collect();
            return (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                sums,
            )
                .into_response();
        }
        Wanted::File(format) => format,
    };
    match token_ok {
        None => return anonymous_conditional(&state, &headers, &id),
        Some(false) => {
            return text(
                StatusCode::FORBIDDEN,
                format!(
                    "the token is not valid for dataset {id} (unknown, expired or for another dataset)"
                ),
            );
        }
        Some(true) => {}
    }
    let Some(file) = files.into_iter().find(|f| f.format == format) else {
        return not_found();
    };
    if awaiting {
        return restoring(&state, &headers, &id, version, &name);
    }
    let counted = method == axum::http::Method::GET;
    serve_file(&state, &id, version, file, conditional, &headers, counted).await
}

/// A download whose files an imported state did not bring ([`super::restore`]): 503, a page in
/// the browser's language or the reason as text, never cached (the file's answer will be).
fn restoring(
    state: &PortalHttp,
    headers: &HeaderMap,
    id: &str,
    version: i64,
    name: &str,
) -> Response {
    let mut response = if super::web::routes::wants_html(headers) {
        super::web::routes::restoring(state, headers, &format!("/download/{id}/{version}/{name}"))
    } else {
        text(StatusCode::SERVICE_UNAVAILABLE, super::restore::MESSAGE)
    };
    let headers = response.headers_mut();
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("300"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// What an anonymous download of a conditional file gets: a browser is sent to the dataset's
/// application form; a program asking for JSON gets a JSON 401, any other a text 401; both
/// name the form, and carry `WWW-Authenticate` as the API always did.
fn anonymous_conditional(state: &PortalHttp, headers: &HeaderMap, id: &str) -> Response {
    let apply = super::web::apply::apply_path(id, None);
    if super::web::routes::wants_html(headers) {
        return crate::monitor::session::see_other(&apply);
    }
    let apply_url = format!("{}{apply}", state.portal.public_url);
    let message = format!(
        "dataset {id} is open on conditions (有条件开放): download it with \
         `Authorization: Bearer <token>` from an approved application ({apply_url})"
    );
    let wants_json = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/json"));
    let mut response = if wants_json {
        json_response(
            StatusCode::UNAUTHORIZED,
            &json!({ "error": message, "dataset": id, "apply": apply_url }),
        )
    } else {
        text(StatusCode::UNAUTHORIZED, message)
    };
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"govdc-portal\""),
    );
    response
}

async fn serve_file(
    state: &PortalHttp,
    id: &str,
    version: i64,
    stored: StoredFile,
    conditional: bool,
    headers: &HeaderMap,
    counted: bool,
) -> Response {
    let path = state.portal.file_path(id, version, &stored.format);
    // Opened before anything is answered: once open, the bytes are this version's even if a
    // newer publish prunes the file meanwhile.
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return text(StatusCode::NOT_FOUND, "no such file on this portal");
        }
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "opening a portal file");
            return text(StatusCode::INTERNAL_SERVER_ERROR, "the file cannot be read");
        }
    };
    let size = u64::try_from(stored.size).unwrap_or_default();
    let etag = format!("\"{}\"", stored.sha256);
    let mut response_headers = HeaderMap::new();
    let mut put = |name: header::HeaderName, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            response_headers.insert(name, value);
        }
    };
    put(header::ETAG, etag.clone());
    put(header::ACCEPT_RANGES, "bytes".to_owned());
    put(header::CONTENT_TYPE, "application/gzip".to_owned());
    put(
        header::CONTENT_DISPOSITION,
        format!(
            "attachment; filename=\"{id}-v{version}.{}.gz\"",
            stored.format
        ),
    );
    // A version's path never changes content: caches may keep it, except conditional data.
    put(
        header::CACHE_CONTROL,
        if conditional {
            "private, no-store".to_owned()
        } else {
            "public, max-age=31536000, immutable".to_owned()
        },
    );
    if let Ok(bytes) = hex::decode(&stored.sha256) {
        put(
            header::HeaderName::from_static("digest"),
            format!(
                "sha-256={}",
                base64::engine::general_purpose::STANDARD.encode(bytes)
            ),
        );
    }
    put(
        header::HeaderName::from_static("x-checksum-sha256"),
        stored.sha256.clone(),
    );

    let if_none_match = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if if_none_match.is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*")) {
        return (StatusCode::NOT_MODIFIED, response_headers).into_response();
    }
    // If-Range with another validator: the client's partial copy is stale, send it all.
    let range_applies = headers
        .get(header::IF_RANGE)
        .and_then(|v| v.to_str().ok())
        .is_none_or(|v| v.trim() == etag);
    // Two Range fields that disagree: which one the client meant is anyone's guess.
    let mut ranges = headers.get_all(header::RANGE).iter();
    if let Some(first) = ranges.next()
        && ranges.any(|other| other != first)
    {
        return text(
            StatusCode::BAD_REQUEST,
            "the request has several Range headers that disagree; send one",
        );
    }
    let ranged = match headers.get(header::RANGE).map(|v| v.to_str()) {
        Some(Ok(range)) if range_applies => parse_range(range, size),
        Some(Err(_)) if range_applies => Ranged::Unsatisfiable,
        _ => Ranged::Whole,
    };
    let (status, start, length) = match ranged {
        Ranged::Whole => (StatusCode::OK, 0, size),
        Ranged::Part(start, end) => {
            response_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
                    .unwrap_or(HeaderValue::from_static("")),
            );
            (StatusCode::PARTIAL_CONTENT, start, end - start + 1)
        }
        Ranged::Unsatisfiable => {
            response_headers.insert(
                header::CONTENT_RANGE,
                HeaderValue::from_str(&format!("bytes */{size}"))
                    .unwrap_or(HeaderValue::from_static("")),
            );
            return (StatusCode::RANGE_NOT_SATISFIABLE, response_headers).into_response();
        }
    };
    if start > 0
        && let Err(e) = file.seek(SeekFrom::Start(start)).await
    {
        tracing::error!(path = %path.display(), error = %e, "seeking in a portal file");
        return text(StatusCode::INTERNAL_SERVER_ERROR, "the file cannot be read");
    }
    response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    // A download is one that starts at the first byte; resuming it with a range is the same one.
    if counted && start == 0 {
        state.portal.downloads.record(id);
    }
    let metrics = &state.portal.metrics;
    metrics.downloads.with_label_values(&[id]).inc();
    let served = metrics.bytes_served.with_label_values(&[id]);
    let stream = ReaderStream::with_capacity(file.take(length), CHUNK).inspect(move |chunk| {
        if let Ok(chunk) = chunk {
            served.inc_by(chunk.len() as u64);
        }
    });
    (status, response_headers, Body::from_stream(stream)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100), Ranged::Part(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Ranged::Part(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Ranged::Part(90, 99));
        assert_eq!(parse_range("bytes=-1000", 100), Ranged::Part(0, 99));
        assert_eq!(parse_range("bytes=50-1000", 100), Ranged::Part(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ranged::Whole);
        assert_eq!(parse_range("items=0-1", 100), Ranged::Whole);
        assert_eq!(parse_range("bytes=9-1", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=x-", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=--5", 100), Ranged::Unsatisfiable);
        assert_eq!(
            parse_range("bytes=99999999999999999999-", 100),
            Ranged::Unsatisfiable
        );
    }

    /// What the `range` fuzz target found (`fuzz/artifacts/range/`): a last position or suffix
    /// too large for a u64 was answered 416 instead of to the end of the file, and a `+` sign,
    /// which RFC 9110's `1*DIGIT` does not allow, was taken.
    #[test]
    fn ranges_past_a_u64_mean_the_end_and_signs_are_refused() {
        let huge = "99999999999999999999999";
        assert_eq!(
            parse_range(&format!("bytes=80-{huge}"), 100),
            Ranged::Part(80, 99)
        );
        assert_eq!(
            parse_range(&format!("bytes=-{huge}"), 100),
            Ranged::Part(0, 99)
        );
        assert_eq!(parse_range("bytes=+5-9", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=5-+9", 100), Ranged::Unsatisfiable);
        assert_eq!(parse_range("bytes=-+9", 100), Ranged::Unsatisfiable);
    }
}
