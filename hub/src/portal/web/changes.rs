//! `/changes`: the changelog of the portal, every publication and withdrawal newest first,
//! from the store's history ([`crate::portal::history`]), [`ROWS`] a page; `?before=` (a
//! history sequence number) pages back. Its Atom feed is `/feed.atom` ([`crate::portal::bulk`]).

use askama::Template;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;

use super::pages::{ChangeRow, Changes, grouped, when};
use super::query::{self, BadParameter};
use super::routes::{Frame, html, language, snapshot};
use crate::portal::history::{self, Change};
use crate::portal::http::PortalHttp;

/// Rows of a page of the changelog.
pub const ROWS: usize = 30;

/// `GET /changes?before=&lang=`.
pub async fn changes(
    State(state): State<PortalHttp>,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    let params = query::parameters(raw.as_deref(), &["lang", "before"]);
    let explicit = params
        .as_ref()
        .ok()
        .and_then(|p| query::lang(p).ok().flatten());
    let frame = Frame {
        state: &state,
        lang: language(explicit, &headers),
        explicit,
        path: "/changes",
        query: raw.as_deref(),
    };
    let before =
        match params.and_then(|p| {
            query::lang(&p)?;
            p.get("before")
                .map(|value| {
                    value.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        BadParameter::Invalid {
                            name: "before".to_owned(),
                            value: value.clone(),
                            allowed: "1 … 9223372036854775807".to_owned(),
                        }
                    })
                })
                .transpose()
        }) {
            Ok(before) => before,
            Err(bad) => return frame.bad_request(&bad),
        };
    let events = match state
        .hub
        .store
        .read(move |conn| Ok(history::latest(conn, ROWS + 1, before)?))
        .await
    {
        Ok(events) => events,
        Err(status) => return frame.unavailable(status.message()),
    };
    let snapshot = match snapshot(&state).await {
        Ok(snapshot) => snapshot,
        Err(status) => return frame.unavailable(status.message()),
    };
    let lang = frame.lang;
    let more = events.len() > ROWS;
    let rows: Vec<ChangeRow> = events
        .iter()
        .take(ROWS)
        .map(|e| {
            let code = e.organization_credit_code.to_lowercase();
            let served = snapshot
                .entries
                .binary_search_by(|x| x.metadata.id.as_str().cmp(&e.dataset_id))
                .is_ok();
            ChangeRow {
                at: when(e.at),
                change: lang.t(match e.change {
                    Change::Publish => "change.publish",
                    Change::Unpublish => "change.unpublish",
                }),
                withdrawn: e.change == Change::Unpublish,
                title: e.title.clone(),
                url: served.then(|| frame.dataset_url(&e.dataset_id)),
                version: e.version,
                department: snapshot
                    .names
                    .get(&code)
                    .cloned()
                    .unwrap_or_else(|| e.organization_credit_code.clone()),
                records: grouped(e.record_count),
            }
        })
        .collect();
    let older_url = more
        .then(|| events.get(ROWS - 1).map(|e| e.seq))
        .flatten()
        .map(|seq| {
            let mut url = query::link("/changes", explicit);
            url.push(if url.contains('?') { '&' } else { '?' });
            url.push_str(&format!("before={seq}"));
            url
        });
    let page = Changes {
        layout: frame.layout(lang.t("changes.title").to_owned(), "changes"),
        rows,
        older_url,
        newest_url: before.map(|_| query::link("/changes", explicit)),
    };
    html(StatusCode::OK, lang, page.render())
}
