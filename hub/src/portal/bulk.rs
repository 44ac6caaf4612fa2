//! The portal's machine-readable bulk answers (可机读批量下载):
//!
//! - `GET /feed.atom`: an Atom 1.0 feed (RFC 4287) of the latest publications, newest first;
//! - `GET /catalogue.csv`, `GET /catalogue.json`: the whole catalogue's metadata in one file
//!   (one row or object per dataset: id, title, department, category, openness, licence,
//!   version, records, when, update interval, quality score, downloads, files with their URLs
//!   and SHA-256);
//! - `GET /downloads.txt`: every file anyone may download, one absolute URL a line with each
//!   version's `SHA256SUMS`, for `wget -x -nH -i downloads.txt` (`-x` keeps each dataset's
//!   files in its own `download/<id>/<version>/` directory, where `sha256sum -c SHA256SUMS`
//!   checks them). Files of conditional datasets need a token and are left out.
//!
//! All are built from the catalogue's snapshot ([`super::catalogue`]) and the history
//! ([`super::history`]); absolute URLs come from the configured public URL, never the request.

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::catalogue::Snapshot;
use super::history::{self, Change};
use super::http::{PortalHttp, json_response, openness_name, rfc3339};
use super::{Entry, download_path};

/// Publications the feed carries.
pub const FEED_ENTRIES: usize = 50;

/// `text` with XML's five special characters as references, for text and attribute values.
pub fn xml_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot hold at all, even as references.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

fn unavailable(cause: &str) -> Response {
    tracing::warn!(error = cause, "a portal bulk answer cannot read the store");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        "the portal cannot answer now\n",
    )
        .into_response()
}

fn with_type(mut response: Response, content_type: &'static str, file: Option<&str>) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Some(file) = file
        && let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{file}\""))
    {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}

/// `GET /feed.atom`.
pub async fn feed(State(state): State<PortalHttp>) -> Response {
    let events = state
        .hub
        .store
        .read(|conn| {
            // Withdrawals are not publications; read enough rows to fill the feed with these.
            let rows = history::latest(conn, FEED_ENTRIES * 4, None)?;
            Ok(rows
                .into_iter()
                .filter(|e| e.change == Change::Publish)
                .take(FEED_ENTRIES)
                .collect::<Vec<_>>())
        })
        .await;
    let events = match events {
        Ok(events) => events,
        Err(status) => return unavailable(status.message()),
    };
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return unavailable(status.message()),
    };
    let base = &state.portal.public_url;
    let node = &state.hub.config.name;
    // The feed changes when a publication is added: its newest entry's time.
    let updated = rfc3339(events.first().map_or(0, |e| e.at));
    let mut xml = format!(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n\
         <feed xmlns=\"http://www.w3.org/2005/Atom\" xml:lang=\"zh-CN\">\n\
         <title>国家公共数据开放网站 · {node} · 数据发布</title>\n\
         <subtitle>Publications of open datasets on govdc hub node {node}</subtitle>\n\
         <id>{base}/feed.atom</id>\n\
         <link rel=\"self\" type=\"application/atom+xml\" href=\"{base}/feed.atom\"/>\n\
         <link rel=\"alternate\" type=\"text/html\" href=\"{base}/changes\"/>\n\
         <updated>{updated}</updated>\n\
         <author><name>{node}</name></author>\n\
         <generator>govdc-hub</generator>\n",
        node = xml_escape(node),
        base = xml_escape(base),
    );
    for e in &events {
        let code = e.organization_credit_code.to_lowercase();
        let department = snapshot
            .names
            .get(&code)
            .cloned()
            .unwrap_or_else(|| e.organization_credit_code.clone());
        let page = format!("{base}/datasets/{}", e.dataset_id);
        let files: String = e
            .files
            .iter()
            .map(|f| {
                format!(
                    "<link rel=\"enclosure\" type=\"application/gzip\" length=\"{}\" href=\"{}\"/>\n",
                    f.size,
                    xml_escape(&format!(
                        "{base}{}",
                        download_path(&e.dataset_id, e.version, &f.format)
                    ))
                )
            })
            .collect();
        xml.push_str(&format!(
            "<entry>\n<title>{title} (v{version})</title>\n\
             <id>{id}</id>\n\
             <link rel=\"alternate\" type=\"text/html\" href=\"{page}\"/>\n{files}\
             <updated>{at}</updated>\n<published>{at}</published>\n\
             <author><name>{department}</name></author>\n\
             <summary>{summary}</summary>\n</entry>\n",
            title = xml_escape(&e.title),
            version = e.version,
            // One id per publication, stable: the dataset page and the version.
            id = xml_escape(&format!("{page}#v{}", e.version)),
            page = xml_escape(&page),
            at = rfc3339(e.at),
            department = xml_escape(&department),
            summary = xml_escape(&format!(
                "{} · v{} · {} records · SHA-256 {}",
                e.dataset_id, e.version, e.record_count, e.content_sha256
            )),
        ));
    }
    xml.push_str("</feed>\n");
    with_type(
        (StatusCode::OK, xml).into_response(),
        "application/atom+xml; charset=utf-8",
        None,
    )
}

/// The columns of `/catalogue.csv`, in order.
pub const CSV_COLUMNS: &[&str] = &[
    "id",
    "title",
    "description",
    "department_code",
    "department",
    "category",
    "openness",
    "license",
    "tags",
    "version",
    "record_count",
    "published_at",
    "update_interval_seconds",
    "quality_score",
    "downloads",
    "page_url",
    "csv_url",
    "csv_sha256",
    "json_url",
    "json_sha256",
];

fn file_of<'a>(entry: &'a Entry, format: &str) -> Option<&'a super::StoredFile> {
    entry.files.iter().find(|f| f.format == format)
}

fn record(snapshot: &Snapshot, i: usize, downloads: u64, base: &str) -> Value {
    let e = &snapshot.entries[i];
    let m = &e.metadata;
    json!({
        "id": m.id,
        "title": m.title,
        "description": m.description,
        "department": { "creditCode": m.organization_credit_code, "name": m.organization_name },
        "category": m.category,
        "openness": openness_name(e),
        "license": m.license,
        "tags": m.tags,
        "version": m.version,
        "recordCount": m.record_count,
        "publishedAt": rfc3339(e.published_at),
        "updateIntervalSeconds": m.update_interval_seconds,
        "quality": {
            "score": snapshot.quality[i].score,
            "max": snapshot.quality[i].max,
            "missing": snapshot.quality[i].missing,
        },
        "downloads": downloads,
        "page": format!("{base}/datasets/{}", m.id),
        "files": e.files.iter().map(|f| json!({
            "format": f.format,
            "size": f.size,
            "sha256": f.sha256,
            "url": format!("{base}{}", download_path(&m.id, m.version, &f.format)),
        })).collect::<Vec<_>>(),
        "checksums": format!("{base}/download/{}/{}/SHA256SUMS", m.id, m.version),
    })
}

/// `GET /catalogue.json`.
pub async fn catalogue_json(State(state): State<PortalHttp>) -> Response {
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return unavailable(status.message()),
    };
    let base = &state.portal.public_url;
    let counts = state
        .portal
        .downloads
        .counts(snapshot.entries.iter().map(|e| e.metadata.id.as_str()));
    let datasets: Vec<Value> = (0..snapshot.entries.len())
        .map(|i| record(&snapshot, i, counts[i], base))
        .collect();
    let body = json!({
        "portal": state.hub.config.name,
        "count": datasets.len(),
        "datasets": datasets,
    });
    with_type(
        json_response(StatusCode::OK, &body),
        "application/json; charset=utf-8",
        Some("catalogue.json"),
    )
}

/// `GET /catalogue.csv`: UTF-8 with a byte-order mark, so that spreadsheet programs read the
/// Chinese text right; tags joined by `;`.
pub async fn catalogue_csv(State(state): State<PortalHttp>) -> Response {
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return unavailable(status.message()),
    };
    let base = &state.portal.public_url;
    let counts = state
        .portal
        .downloads
        .counts(snapshot.entries.iter().map(|e| e.metadata.id.as_str()));
    let mut out = csv::Writer::from_writer(Vec::from("\u{feff}".as_bytes()));
    let mut rows = Vec::with_capacity(snapshot.entries.len() + 1);
    rows.push(
        CSV_COLUMNS
            .iter()
            .map(|c| (*c).to_owned())
            .collect::<Vec<_>>(),
    );
    for (i, e) in snapshot.entries.iter().enumerate() {
        let m = &e.metadata;
        let file = |format: &str| {
            file_of(e, format).map_or((String::new(), String::new()), |f| {
                (
                    format!("{base}{}", download_path(&m.id, m.version, &f.format)),
                    f.sha256.clone(),
                )
            })
        };
        let (csv_url, csv_sha) = file("csv");
        let (json_url, json_sha) = file("json");
        rows.push(vec![
            m.id.clone(),
            m.title.clone(),
            m.description.clone(),
            m.organization_credit_code.clone(),
            m.organization_name.clone(),
            m.category.clone(),
            openness_name(e).to_owned(),
            m.license.clone(),
            m.tags.join(";"),
            m.version.to_string(),
            m.record_count.to_string(),
            rfc3339(e.published_at),
            m.update_interval_seconds.to_string(),
            snapshot.quality[i].score.to_string(),
            counts[i].to_string(),
            format!("{base}/datasets/{}", m.id),
            csv_url,
            csv_sha,
            json_url,
            json_sha,
        ]);
    }
    for row in rows {
        if let Err(e) = out.write_record(&row) {
            tracing::error!(error = %e, "writing the catalogue CSV");
            return unavailable(&e.to_string());
        }
    }
    let body = match out.into_inner() {
        Ok(body) => body,
        Err(e) => return unavailable(&e.to_string()),
    };
    with_type(
        (StatusCode::OK, body).into_response(),
        "text/csv; charset=utf-8",
        Some("catalogue.csv"),
    )
}

/// `GET /downloads.txt`.
pub async fn manifest(State(state): State<PortalHttp>) -> Response {
    let snapshot = match state.portal.snapshot(&state.hub.store).await {
        Ok(snapshot) => snapshot,
        Err(status) => return unavailable(status.message()),
    };
    let base = &state.portal.public_url;
    let mut text = String::new();
    for e in snapshot.entries.iter().filter(|e| !e.conditional()) {
        let m = &e.metadata;
        for f in &e.files {
            text.push_str(&format!(
                "{base}{}\n",
                download_path(&m.id, m.version, &f.format)
            ));
        }
        text.push_str(&format!(
            "{base}/download/{}/{}/SHA256SUMS\n",
            m.id, m.version
        ));
    }
    with_type(
        (StatusCode::OK, text).into_response(),
        "text/plain; charset=utf-8",
        None,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xml_text_is_escaped_and_forbidden_characters_dropped() {
        assert_eq!(
            xml_escape("<a href=\"x\">&'</a>\u{1}\n"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&apos;&lt;/a&gt;\n"
        );
    }
}
