//! A CKAN-compatible subset of the Action API, so that existing CKAN clients (ckanapi, harvesters)
//! work unchanged: `package_search` (q, fq, rows, start), `package_show` (id), `organization_list`,
//! `tag_list` and `license_list`, at `/api/3/action/{name}` and `/api/action/{name}`.
//!
//! Parameters come from the query string (GET) or a JSON object body (POST, what ckanapi sends);
//! the body wins. Answers are CKAN's envelope: `{"help", "success": true, "result"}`, or
//! `{"success": false, "error": {"__type", "message"}}` with 404 (Not Found Error), 409
//! (Validation Error, Search Query Error) or 400 (unknown action, bad JSON), which ckanapi turns
//! into its `NotFound`, `ValidationError` and `SearchQueryError` exceptions.

use std::collections::{BTreeMap, BTreeSet};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde_json::{Map, Value, json};

use super::Entry;
use super::catalogue::Snapshot;
use super::http::{PortalHttp, base_url, json_response, openness_name};
use super::search::{Facet, Query, Sort};

/// `rows` when not given (CKAN's default).
const DEFAULT_ROWS: usize = 10;
/// Largest `rows` (CKAN's `ckan.search.rows_max`); more is cut, as CKAN does.
const MAX_ROWS: usize = 1000;

/// Licences `license_list` always names (with what the datasets use).
const LICENSES: &[(&str, &str, &str)] = &[
    (
        "CC-BY-4.0",
        "Creative Commons Attribution 4.0",
        "https://creativecommons.org/licenses/by/4.0/",
    ),
    (
        "CC-BY-SA-4.0",
        "Creative Commons Attribution Share-Alike 4.0",
        "https://creativecommons.org/licenses/by-sa/4.0/",
    ),
    (
        "CC0-1.0",
        "Creative Commons CCZero",
        "https://creativecommons.org/publicdomain/zero/1.0/",
    ),
    (
        "ODC-By-1.0",
        "Open Data Commons Attribution License",
        "https://opendatacommons.org/licenses/by/1-0/",
    ),
    (
        "ODbL-1.0",
        "Open Data Commons Open Database License",
        "https://opendatacommons.org/licenses/odbl/1-0/",
    ),
];

struct Failure {
    status: StatusCode,
    error: Value,
}

fn failure(status: StatusCode, kind: &str, message: impl Into<String>) -> Failure {
    Failure {
        status,
        error: json!({ "__type": kind, "message": message.into() }),
    }
}

fn validation(field: &str, message: &str) -> Failure {
    Failure {
        status: StatusCode::CONFLICT,
        error: json!({ "__type": "Validation Error", field: [message] }),
    }
}

/// The handler of every action.
pub async fn action(
    State(state): State<PortalHttp>,
    Path(action): Path<String>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    body: Bytes,
) -> Response {
    let base = base_url(&state.portal, &headers);
    let help = format!("{base}/api/3/action/help_show?name={action}");
    let answer = match params(query.as_deref(), &body) {
        Ok(params) => match state.portal.snapshot(&state.hub.store).await {
            Ok(snapshot) => run(&action, &params, &snapshot, &base),
            Err(status) => Err(failure(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Internal Server Error",
                status.message(),
            )),
        },
        Err(failure) => Err(failure),
    };
    match answer {
        Ok(result) => json_response(
            StatusCode::OK,
            &json!({ "help": help, "success": true, "result": result }),
        ),
        Err(Failure { status, error }) => json_response(
            status,
            &json!({ "help": help, "success": false, "error": error }),
        ),
    }
}

/// What `action` answers for a query string and a body over `snapshot`, as [`action`] does but
/// without HTTP: the status and CKAN's envelope without `help`. Public for the fuzz targets
/// (`fuzz/`), which call it with untrusted bytes.
pub fn answer(
    action: &str,
    query: Option<&str>,
    body: &[u8],
    snapshot: &Snapshot,
    base: &str,
) -> (StatusCode, Value) {
    match params(query, body).and_then(|params| run(action, &params, snapshot, base)) {
        Ok(result) => (StatusCode::OK, json!({ "success": true, "result": result })),
        Err(Failure { status, error }) => (status, json!({ "success": false, "error": error })),
    }
}

/// The filters of a `package_search` `fq` as the search applies them, each a facet and the value
/// it must have, or the Search Query Error's message. Public for the fuzz targets (`fuzz/`).
pub fn filter_query(fq: &str) -> Result<Vec<(Facet, String)>, String> {
    let message = |f: Failure| f.error["message"].as_str().unwrap_or_default().to_owned();
    filters(fq)
        .map_err(message)?
        .into_iter()
        .map(|f| Ok((facet(&f.field).map_err(message)?, f.value)))
        .collect()
}

fn params(query: Option<&str>, body: &[u8]) -> Result<Map<String, Value>, Failure> {
    let mut params: Map<String, Value> =
        form_urlencoded::parse(query.unwrap_or_default().as_bytes())
            .into_owned()
            .map(|(k, v)| (k, Value::String(v)))
            .collect();
    if !body.iter().all(u8::is_ascii_whitespace) {
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(fields)) => params.extend(fields),
            Ok(_) => {
                return Err(failure(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "Bad request - JSON Error: Request data JSON decoded to a non-object",
                ));
            }
            Err(e) => {
                return Err(failure(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("Bad request - JSON Error: {e}"),
                ));
            }
        }
    }
    Ok(params)
}

fn run(
    action: &str,
    params: &Map<String, Value>,
    snapshot: &Snapshot,
    base: &str,
) -> Result<Value, Failure> {
    let entries = &snapshot.entries;
    match action {
        "package_search" => package_search(params, snapshot, base),
        "package_show" => {
            let id = string(params, "id").filter(|s| !s.is_empty());
            let Some(id) = id else {
                return Err(validation("id", "Missing value"));
            };
            entries
                .iter()
                .find(|e| e.metadata.id == id)
                .map(|e| package(e, base))
                .ok_or_else(|| failure(StatusCode::NOT_FOUND, "Not Found Error", "Not found"))
        }
        "organization_list" => {
            let mut organizations: BTreeMap<String, &Entry> = BTreeMap::new();
            for e in entries {
                organizations.entry(organization_name(e)).or_insert(e);
            }
            let all_fields = boolean(params, "all_fields");
            Ok(Value::Array(
                organizations
                    .iter()
                    .map(|(name, e)| {
                        if all_fields {
                            organization(e)
                        } else {
                            Value::String(name.clone())
                        }
                    })
                    .collect(),
            ))
        }
        "tag_list" => {
            let query = string(params, "query").unwrap_or_default().to_lowercase();
            let tags: BTreeSet<&str> = entries
                .iter()
                .flat_map(|e| e.metadata.tags.iter().map(String::as_str))
                .filter(|t| t.to_lowercase().contains(&query))
                .collect();
            Ok(json!(tags))
        }
        "license_list" => {
            let mut licenses: Vec<Value> = LICENSES
                .iter()
                .map(|(id, title, url)| json!({ "id": id, "title": title, "url": url }))
                .collect();
            let used: BTreeSet<&str> = entries
                .iter()
                .map(|e| e.metadata.license.as_str())
                .filter(|l| !l.is_empty() && !LICENSES.iter().any(|(id, _, _)| id == l))
                .collect();
            licenses.extend(
                used.into_iter()
                    .map(|id| json!({ "id": id, "title": id, "url": "" })),
            );
            Ok(Value::Array(licenses))
        }
        other => Err(failure(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            format!(
                "Bad request - Action name not known: {other} (this portal serves package_search, \
                 package_show, organization_list, tag_list and license_list)"
            ),
        )),
    }
}

fn string(params: &Map<String, Value>, key: &str) -> Option<String> {
    match params.get(key)? {
        Value::String(s) => Some(s.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

fn boolean(params: &Map<String, Value>, key: &str) -> bool {
    match params.get(key) {
        Some(Value::Bool(b)) => *b,
        Some(Value::String(s)) => matches!(s.to_lowercase().as_str(), "true" | "1" | "yes"),
        _ => false,
    }
}

fn integer(params: &Map<String, Value>, key: &str, default: usize) -> Result<usize, Failure> {
    match params.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX))
            .ok_or_else(|| validation(key, "Must be a natural number")),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(default),
        Some(Value::String(s)) => s
            .trim()
            .parse()
            .map_err(|_| validation(key, "Invalid integer")),
        Some(_) => Err(validation(key, "Invalid integer")),
    }
}

/// One `field:value` filter of `fq`.
struct Filter {
    field: String,
    value: String,
}

/// Parses the Solr filter subset: `field:value` terms, optionally `+`-prefixed, quoted, or
/// joined by `AND`.
fn filters(fq: &str) -> Result<Vec<Filter>, Failure> {
    let mut out = Vec::new();
    let mut rest = fq.trim();
    while !rest.is_empty() {
        rest = rest.trim_start_matches('+');
        let Some((field, after)) = rest.split_once(':') else {
            return Err(failure(
                StatusCode::CONFLICT,
                "Search Query Error",
                format!("Search Query Error: fq term {rest:?} is not field:value"),
            ));
        };
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.split_once('"') {
                Some((value, next)) => (value, next),
                None => (quoted, ""),
            }
        } else {
            match after.split_once(char::is_whitespace) {
                Some((value, next)) => (value, next),
                None => (after, ""),
            }
        };
        out.push(Filter {
            field: field.trim().to_owned(),
            value: value.to_owned(),
        });
        rest = next.trim_start();
        if let Some(after_and) = rest.strip_prefix("AND ") {
            rest = after_and.trim_start();
        }
    }
    Ok(out)
}

/// The shared search's facet a CKAN `fq` field names.
fn facet(field: &str) -> Result<Facet, Failure> {
    Ok(match field {
        "organization" | "owner_org" => Facet::Department,
        "tags" => Facet::Tag,
        "res_format" => Facet::Format,
        "license_id" => Facet::License,
        "name" | "id" => Facet::Id,
        "groups" | "category" => Facet::Category,
        "openness" => Facet::Openness,
        other => {
            return Err(failure(
                StatusCode::CONFLICT,
                "Search Query Error",
                format!(
                    "Search Query Error: fq field {other:?} is not supported here (organization, \
                     tags, res_format, license_id, name, groups, openness are)"
                ),
            ));
        }
    })
}

fn package_search(
    params: &Map<String, Value>,
    snapshot: &Snapshot,
    base: &str,
) -> Result<Value, Failure> {
    let q = string(params, "q").unwrap_or_default();
    let rows = integer(params, "rows", DEFAULT_ROWS)?.min(MAX_ROWS);
    let start = integer(params, "start", 0)?;
    let mut fq = filters(&string(params, "fq").unwrap_or_default())?;
    if let Some(Value::Array(list)) = params.get("fq_list") {
        for item in list {
            if let Value::String(s) = item {
                fq.extend(filters(s)?);
            }
        }
    }
    let query = Query {
        text: q,
        filters: fq
            .into_iter()
            .map(|f| Ok((facet(&f.field)?, f.value)))
            .collect::<Result<_, Failure>>()?,
        // Newest first, then by id (what the website calls "newest").
        sort: Sort::Newest,
    };
    let hits = snapshot.index.search(&snapshot.entries, &query);
    let results: Vec<Value> = snapshot
        .at(&hits)
        .skip(start)
        .take(rows)
        .map(|e| package(e, base))
        .collect();
    Ok(json!({
        "count": hits.len(),
        "results": results,
        "sort": "metadata_modified desc",
        "facets": {},
        "search_facets": {},
    }))
}

/// CKAN's timestamp form: UTC without an offset, microseconds.
fn ckan_time(micros: i64) -> String {
    jiff::Timestamp::from_microsecond(micros)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S%.6f").to_string())
        .unwrap_or_default()
}

/// A CKAN organization name (lower-case, URL-safe): the publisher's credit code, lower-cased.
fn organization_name(entry: &Entry) -> String {
    super::search::department(entry)
}

fn organization(entry: &Entry) -> Value {
    let name = organization_name(entry);
    json!({
        "id": name,
        "name": name,
        "title": entry.metadata.organization_name,
        "type": "organization",
        "is_organization": true,
        "state": "active",
        "approval_status": "approved",
    })
}

fn package(entry: &Entry, base: &str) -> Value {
    let m = &entry.metadata;
    let modified = ckan_time(entry.published_at);
    let resources: Vec<Value> = entry
        .to_api()
        .files
        .iter()
        .enumerate()
        .map(|(position, f)| {
            json!({
                "id": format!("{}-{}-{}", m.id, m.version, f.format),
                "package_id": m.id,
                "name": format!("{} ({})", m.title, f.format.to_uppercase()),
                "url": format!("{base}{}", f.path),
                "format": f.format.to_uppercase(),
                "mimetype": "application/gzip",
                "size": f.size,
                "hash": f.sha256,
                "position": position,
                "state": "active",
                "created": modified,
                "last_modified": modified,
                "url_type": null,
            })
        })
        .collect();
    json!({
        "id": m.id,
        "name": m.id,
        "title": m.title,
        "notes": m.description,
        "type": "dataset",
        "state": "active",
        "private": false,
        "version": m.version.to_string(),
        "license_id": m.license,
        "license_title": LICENSES.iter().find(|(id, _, _)| *id == m.license).map_or(m.license.as_str(), |l| l.1),
        "owner_org": organization_name(entry),
        "organization": organization(entry),
        "groups": if m.category.is_empty() { json!([]) } else {
            json!([{ "name": m.category, "title": m.category, "display_name": m.category }])
        },
        "tags": m.tags.iter().map(|t| json!({ "name": t, "display_name": t, "state": "active" })).collect::<Vec<_>>(),
        "num_tags": m.tags.len(),
        "resources": resources,
        "num_resources": entry.files.len(),
        "metadata_created": modified,
        "metadata_modified": modified,
        "extras": [
            { "key": "version", "value": m.version.to_string() },
            { "key": "record_count", "value": m.record_count.to_string() },
            { "key": "openness", "value": openness_name(entry) },
            { "key": "category", "value": m.category },
            { "key": "content_sha256", "value": m.content_sha256 },
            // CKAN extras are strings: the declarations and the risk as JSON text.
            { "key": "declared_identifiers", "value": serde_json::to_string(
                &m.fields.iter().filter(|f| !f.declared_identifiers.is_empty())
                    .map(super::http::field_json).collect::<Vec<_>>()).unwrap_or_default() },
            { "key": "reidentification_risk", "value": m.risk.as_ref()
                .map(|r| super::http::risk_json(r).to_string()).unwrap_or_default() },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_queries() {
        let f = filters("organization:abc +tags:\"public health\" AND res_format:CSV")
            .unwrap_or_else(|_| Vec::new());
        let pairs: Vec<(&str, &str)> = f
            .iter()
            .map(|f| (f.field.as_str(), f.value.as_str()))
            .collect();
        assert_eq!(
            pairs,
            vec![
                ("organization", "abc"),
                ("tags", "public health"),
                ("res_format", "CSV")
            ]
        );
        assert!(filters("nocolon").is_err());
        assert!(filters("").map(|f| f.is_empty()).unwrap_or(false));
    }
}
