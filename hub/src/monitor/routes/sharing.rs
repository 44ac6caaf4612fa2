//! The national overview and the 共享率 tables (by department, by node), their CSV and trend.

use super::*;

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
        Err(e) => return frame.unavailable(e.message()),
    };
    let (audit, _) = match audit_status(&state, frame.lang).await {
        Ok(audit) => audit,
        Err(e) => return frame.unavailable(e.message()),
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

pub(super) fn level_key(level: Level) -> &'static str {
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
        Err(e) => return frame.unavailable(e.message()),
    };
    let lang = frame.lang;
    let points = trend::with_current(points, trend::point_of(&trend::today(), &stats));
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
        Err(e) => return frame.unavailable(e.message()),
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
