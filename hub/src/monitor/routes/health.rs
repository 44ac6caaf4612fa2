//! Request timeliness, federation health and the audit chain.

use super::sharing::level_key;
use super::*;

/// Every grant on this node, with whether its resource is shared on conditions.
pub(super) fn grant_rows(
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

pub(super) fn grant_view(
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
        Err(e) => return frame.unavailable(e.message()),
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

/// Microseconds since the epoch to the second (a push is due every few seconds), for people
/// and as RFC 3339.
fn when_exact(micros: i64) -> (String, String) {
    match jiff::Timestamp::from_microsecond(micros) {
        Ok(t) => (
            t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
            t.to_string(),
        ),
        Err(_) => (String::new(), String::new()),
    }
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
        Err(e) => return frame.unavailable(e.message()),
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
            let (last_sync, last_sync_iso) = last
                .map(when_exact)
                .unwrap_or((never.clone(), String::new()));
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
            last_sync: status
                .last_sync_micros
                .map_or(never.clone(), |m| when_exact(m).0),
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
        Err(e) => return frame.unavailable(e.message()),
    };
    let page = AuditPage {
        layout: frame.layout(t(lang, "audit.title").to_owned(), "audit"),
        audit,
        anchors,
    };
    html(StatusCode::OK, lang, page.render())
}
