//! What the monitor's pages show, worked out from the store's rows and `GetSharingStats`' answer
//! (pure functions, tested without a server): the rows of the 共享率 tables and their order, the
//! national overview, request timeliness, federation health.

use std::collections::{BTreeMap, BTreeSet};

use govdc_hub_api::v1::{GrantState, Level, NodeSharingStats, SharingStats};

/// One department's row of the 共享率 table.
#[derive(Clone, Debug, PartialEq)]
pub struct DepartmentRow {
    /// Its credit code.
    pub code: String,
    /// Its name where this node knows it (its own members), else empty.
    pub name: String,
    /// The node it is on.
    pub node: String,
    /// Resources it provides.
    pub resources: i64,
    /// Of those, shared (unconditionally or on conditions).
    pub shared: i64,
    /// `shared / resources`, 0 without resources.
    pub rate: f64,
    /// Grants approved on its resources.
    pub grants: i64,
    /// Records served from its resources.
    pub served: i64,
}

/// One node's (a province's, a city's) row.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeRow {
    /// The node.
    pub node: String,
    /// Its level.
    pub level: Level,
    /// Its GB/T 2260 region code.
    pub region: String,
    /// The node it reports to; empty for this node.
    pub via: String,
    /// Departments on it.
    pub departments: i64,
    /// See [`DepartmentRow`], summed over its departments.
    pub resources: i64,
    /// Summed.
    pub shared: i64,
    /// `shared / resources`.
    pub rate: f64,
    /// Summed.
    pub grants: i64,
    /// Summed.
    pub served: i64,
    /// When the node computed its figures, microseconds since the Unix epoch.
    pub as_of: i64,
}

fn rate(shared: i64, resources: i64) -> f64 {
    if resources == 0 {
        0.0
    } else {
        shared as f64 / resources as f64
    }
}

/// Microseconds of a protobuf timestamp.
pub fn micros(t: Option<&prost_types::Timestamp>) -> i64 {
    t.map_or(0, |t| t.seconds * 1_000_000 + i64::from(t.nanos) / 1000)
}

/// Every department of every node in `stats.nodes`, in the answer's order.
pub fn department_rows(
    stats: &SharingStats,
    names: &BTreeMap<String, String>,
) -> Vec<DepartmentRow> {
    stats
        .nodes
        .iter()
        .flat_map(|node| {
            node.departments.iter().map(|d| DepartmentRow {
                code: d.credit_code.clone(),
                name: if node.via.is_empty() {
                    names.get(&d.credit_code).cloned().unwrap_or_default()
                } else {
                    String::new()
                },
                node: node.node.clone(),
                resources: d.resources,
                shared: d.shared_resources,
                rate: d.share_rate,
                grants: d.grants_approved,
                served: d.records_served,
            })
        })
        .collect()
}

/// One row per node in `stats.nodes`.
pub fn node_rows(stats: &SharingStats) -> Vec<NodeRow> {
    stats.nodes.iter().map(node_row).collect()
}

fn node_row(node: &NodeSharingStats) -> NodeRow {
    let sum = |f: fn(&govdc_hub_api::v1::DepartmentStats) -> i64| -> i64 {
        node.departments.iter().map(f).sum()
    };
    let (resources, shared) = (sum(|d| d.resources), sum(|d| d.shared_resources));
    NodeRow {
        node: node.node.clone(),
        level: Level::try_from(node.level).unwrap_or(Level::Unspecified),
        region: node.region_code.clone(),
        via: node.via.clone(),
        departments: node.departments.len() as i64,
        resources,
        shared,
        rate: rate(shared, resources),
        grants: sum(|d| d.grants_approved),
        served: sum(|d| d.records_served),
        as_of: micros(node.as_of.as_ref()),
    }
}

/// A column the 共享率 tables sort by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    /// The department's code (departments) or the node's name (nodes).
    Name,
    /// The node (departments) or the region code (nodes).
    Node,
    /// Resources.
    Resources,
    /// Shared resources.
    Shared,
    /// The rate.
    Rate,
    /// Approved grants.
    Grants,
    /// Records served.
    Served,
}

impl Column {
    /// Every column, as `?sort=` names them.
    pub const ALL: &[(&'static str, Column)] = &[
        ("name", Column::Name),
        ("node", Column::Node),
        ("resources", Column::Resources),
        ("shared", Column::Shared),
        ("rate", Column::Rate),
        ("grants", Column::Grants),
        ("served", Column::Served),
    ];

    /// Its `?sort=` name.
    pub fn name(self) -> &'static str {
        Column::ALL
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("name", |(n, _)| n)
    }

    /// The column `?sort=` names.
    pub fn from_name(name: &str) -> Option<Column> {
        Column::ALL
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| *c)
    }
}

/// An order of a table: a column and a direction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Order {
    /// The column.
    pub column: Column,
    /// Largest (or last) first.
    pub descending: bool,
}

impl Default for Order {
    /// The lowest rate first: the departments that share least are what the monitor is for.
    fn default() -> Self {
        Order {
            column: Column::Rate,
            descending: false,
        }
    }
}

/// Sorts department rows; ties by code, then node, so the order is stable.
pub fn sort_departments(rows: &mut [DepartmentRow], order: Order) {
    rows.sort_by(|a, b| {
        let primary = match order.column {
            Column::Name => a.code.cmp(&b.code),
            Column::Node => a.node.cmp(&b.node),
            Column::Resources => a.resources.cmp(&b.resources),
            Column::Shared => a.shared.cmp(&b.shared),
            Column::Rate => a.rate.total_cmp(&b.rate),
            Column::Grants => a.grants.cmp(&b.grants),
            Column::Served => a.served.cmp(&b.served),
        };
        let primary = if order.descending {
            primary.reverse()
        } else {
            primary
        };
        primary
            .then_with(|| a.code.cmp(&b.code))
            .then_with(|| a.node.cmp(&b.node))
    });
}

/// Sorts node rows; ties by node name.
pub fn sort_nodes(rows: &mut [NodeRow], order: Order) {
    rows.sort_by(|a, b| {
        let primary = match order.column {
            Column::Name => a.node.cmp(&b.node),
            Column::Node => a.region.cmp(&b.region),
            Column::Resources => a.resources.cmp(&b.resources),
            Column::Shared => a.shared.cmp(&b.shared),
            Column::Rate => a.rate.total_cmp(&b.rate),
            Column::Grants => a.grants.cmp(&b.grants),
            Column::Served => a.served.cmp(&b.served),
        };
        let primary = if order.descending {
            primary.reverse()
        } else {
            primary
        };
        primary.then_with(|| a.node.cmp(&b.node))
    });
}

/// A rate as people read it: `66.7%`.
pub fn percent(rate: f64) -> String {
    format!("{:.1}%", rate * 100.0)
}

/// The national overview's figures.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Overview {
    /// Distinct departments (credit codes) on this node and below.
    pub departments: usize,
    /// Distinct provinces: provincial nodes' region codes (or names, without a code).
    pub provinces: usize,
    /// Nodes, this one included.
    pub nodes: usize,
    /// The oldest of the nodes' "as of" times: every figure from them is at least this fresh.
    pub nodes_as_of: i64,
    /// Resources in this node's catalogue (its own and everything forwarded to it).
    pub catalogue: usize,
    /// Of those, shared unconditionally or on conditions.
    pub shared: usize,
    /// Of those, openable (unconditionally or on conditions) on an open-data portal.
    pub openable: usize,
    /// Records served, summed over every node's departments.
    pub records_served: i64,
    /// Grants approved, summed likewise.
    pub grants: i64,
}

/// The overview from the tree's statistics and the catalogue's (share type, open type) pairs.
pub fn overview(stats: &SharingStats, catalogue: &[(i32, i32)]) -> Overview {
    use govdc_hub_api::v1::{OpenType, ShareType};
    let mut departments = BTreeSet::new();
    let mut provinces = BTreeSet::new();
    let mut out = Overview {
        nodes: stats.nodes.len(),
        nodes_as_of: stats
            .nodes
            .iter()
            .map(|n| micros(n.as_of.as_ref()))
            .min()
            .unwrap_or(0),
        catalogue: catalogue.len(),
        ..Overview::default()
    };
    for node in &stats.nodes {
        if node.level == Level::Provincial as i32 {
            provinces.insert(if node.region_code.is_empty() {
                node.node.clone()
            } else {
                node.region_code.clone()
            });
        }
        for d in &node.departments {
            departments.insert(d.credit_code.clone());
            out.records_served += d.records_served;
            out.grants += d.grants_approved;
        }
    }
    out.departments = departments.len();
    out.provinces = provinces.len();
    for (share, open) in catalogue {
        if *share == ShareType::Unconditional as i32 || *share == ShareType::Conditional as i32 {
            out.shared += 1;
        }
        if *open == OpenType::Unconditional as i32 || *open == OpenType::Conditional as i32 {
            out.openable += 1;
        }
    }
    out
}

/// A grant as the timeliness page reads it from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrantRow {
    /// Its id.
    pub id: i64,
    /// The resource.
    pub resource: String,
    /// Who asked.
    pub consumer: String,
    /// Who decides.
    pub provider: String,
    /// Its state.
    pub state: i32,
    /// When it was asked, microseconds.
    pub requested_at: i64,
    /// When it was decided, if it was.
    pub decided_at: Option<i64>,
    /// Whether its resource is shared on conditions (the provider decides; the others are
    /// decided by the node at once and say nothing about a provider's timeliness).
    pub conditional: bool,
}

/// One provider's timeliness.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderTimes {
    /// The provider.
    pub provider: String,
    /// Conditional requests it decided.
    pub decided: usize,
    /// Median time from request to decision, microseconds.
    pub median: Option<i64>,
    /// 95th percentile (nearest rank), microseconds.
    pub p95: Option<i64>,
    /// Requests waiting.
    pub pending: usize,
    /// Of those, waiting longer than the deadline.
    pub overdue: usize,
}

/// The nearest-rank percentile `p` (0-100) of sorted `values`.
pub fn percentile(sorted: &[i64], p: u32) -> Option<i64> {
    if sorted.is_empty() {
        return None;
    }
    let rank = (u64::from(p) * sorted.len() as u64).div_ceil(100).max(1) as usize;
    sorted.get(rank - 1).copied()
}

/// Per provider, the time its conditional requests took to decide, and the requests waiting
/// longer than `deadline` (microseconds) at `now`, oldest first.
pub fn timeliness(
    grants: &[GrantRow],
    now: i64,
    deadline: i64,
) -> (Vec<ProviderTimes>, Vec<GrantRow>) {
    let mut waits: BTreeMap<&str, (Vec<i64>, usize, usize)> = BTreeMap::new();
    let mut overdue = Vec::new();
    for grant in grants.iter().filter(|g| g.conditional) {
        let entry = waits.entry(grant.provider.as_str()).or_default();
        if grant.state == GrantState::Pending as i32 {
            entry.1 += 1;
            if now - grant.requested_at > deadline {
                entry.2 += 1;
                overdue.push(grant.clone());
            }
        } else if let Some(decided) = grant.decided_at {
            entry.0.push((decided - grant.requested_at).max(0));
        }
    }
    overdue.sort_by_key(|g| (g.requested_at, g.id));
    let providers = waits
        .into_iter()
        .map(|(provider, (mut times, pending, late))| {
            times.sort_unstable();
            ProviderTimes {
                provider: provider.to_owned(),
                decided: times.len(),
                median: percentile(&times, 50),
                p95: percentile(&times, 95),
                pending,
                overdue: late,
            }
        })
        .collect();
    (providers, overdue)
}

/// A span of time for people: `42 s`, `3 min`, `5.2 h`, `2.5 d`.
pub fn span(micros: i64) -> String {
    let seconds = micros as f64 / 1e6;
    if seconds < 60.0 {
        format!("{seconds:.1} s")
    } else if seconds < 3600.0 {
        format!("{:.1} min", seconds / 60.0)
    } else if seconds < 86_400.0 {
        format!("{:.1} h", seconds / 3600.0)
    } else {
        format!("{:.1} d", seconds / 86_400.0)
    }
}

/// Whether a child that last synced at `last` is stale at `now`: older than three federation
/// intervals (a push is due every interval; three missed is no hiccup).
pub fn stale(last: Option<i64>, now: i64, interval_micros: i64) -> bool {
    last.is_none_or(|last| now - last > 3 * interval_micros)
}

/// One CSV line of `fields`, each quoted when it needs to be (RFC 4180), and a cell that a
/// spreadsheet would run as a formula (`=`, `+`, `-`, `@`) prefixed with `'`.
pub fn csv_line(fields: &[String]) -> String {
    let mut line = fields
        .iter()
        .map(|f| {
            let f = if f.starts_with(['=', '+', '-', '@', '\t', '\r']) {
                format!("'{f}")
            } else {
                f.clone()
            };
            if f.contains([',', '"', '\n', '\r']) {
                format!("\"{}\"", f.replace('"', "\"\""))
            } else {
                f
            }
        })
        .collect::<Vec<_>>()
        .join(",");
    line.push_str("\r\n");
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use govdc_hub_api::v1::DepartmentStats;

    fn dept(code: &str, resources: i64, shared: i64) -> DepartmentStats {
        DepartmentStats {
            credit_code: code.to_owned(),
            resources,
            shared_resources: shared,
            share_rate: rate(shared, resources),
            grants_approved: 1,
            records_served: 10,
        }
    }

    fn tree() -> SharingStats {
        SharingStats {
            nodes: vec![
                NodeSharingStats {
                    node: "national".to_owned(),
                    level: Level::National as i32,
                    departments: vec![dept("A", 2, 1)],
                    as_of: Some(prost_types::Timestamp {
                        seconds: 20,
                        nanos: 0,
                    }),
                    ..Default::default()
                },
                NodeSharingStats {
                    node: "zhejiang".to_owned(),
                    level: Level::Provincial as i32,
                    region_code: "330000".to_owned(),
                    via: "national".to_owned(),
                    departments: vec![dept("B", 4, 4), dept("C", 0, 0)],
                    as_of: Some(prost_types::Timestamp {
                        seconds: 10,
                        nanos: 0,
                    }),
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn rows_cover_every_node_and_sort_stably() {
        let names = BTreeMap::from([("A".to_owned(), "Dept A".to_owned())]);
        let mut rows = department_rows(&tree(), &names);
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].name, "Dept A");
        sort_departments(&mut rows, Order::default());
        let codes: Vec<&str> = rows.iter().map(|r| r.code.as_str()).collect();
        assert_eq!(codes, ["C", "A", "B"]);
        sort_departments(
            &mut rows,
            Order {
                column: Column::Rate,
                descending: true,
            },
        );
        assert_eq!(rows[0].code, "B");
        let nodes = node_rows(&tree());
        assert_eq!(nodes[1].resources, 4);
        assert_eq!(nodes[1].departments, 2);
        assert_eq!(percent(nodes[0].rate), "50.0%");
    }

    #[test]
    fn the_overview_counts_distinct_departments_and_provinces() {
        let o = overview(&tree(), &[(1, 1), (2, 0), (3, 2)]);
        assert_eq!((o.departments, o.provinces, o.nodes), (3, 1, 2));
        assert_eq!((o.catalogue, o.shared, o.openable), (3, 2, 2));
        assert_eq!(o.nodes_as_of, 10_000_000);
        assert_eq!(o.records_served, 30);
    }

    #[test]
    fn timeliness_takes_conditional_requests_only() {
        let g =
            |id, provider: &str, state: GrantState, req, dec: Option<i64>, conditional| GrantRow {
                id,
                resource: "r".to_owned(),
                consumer: "c".to_owned(),
                provider: provider.to_owned(),
                state: state as i32,
                requested_at: req,
                decided_at: dec,
                conditional,
            };
        let grants = vec![
            g(1, "P", GrantState::Approved, 0, Some(10), true),
            g(2, "P", GrantState::Refused, 0, Some(30), true),
            g(3, "P", GrantState::Approved, 0, Some(20), true),
            g(4, "P", GrantState::Pending, 5, None, true),
            g(5, "P", GrantState::Pending, 95, None, true),
            g(6, "Q", GrantState::Approved, 0, Some(0), false),
        ];
        let (providers, overdue) = timeliness(&grants, 100, 50);
        assert_eq!(providers.len(), 1);
        let p = &providers[0];
        assert_eq!((p.decided, p.median, p.p95), (3, Some(20), Some(30)));
        assert_eq!((p.pending, p.overdue), (2, 1));
        assert_eq!(overdue.iter().map(|g| g.id).collect::<Vec<_>>(), [4]);
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[], 95), None);
    }

    #[test]
    fn staleness_is_three_intervals() {
        assert!(!stale(Some(0), 30, 10));
        assert!(stale(Some(0), 31, 10));
        assert!(stale(None, 0, 10));
    }

    #[test]
    fn csv_quotes_and_defuses_formulas() {
        let line = csv_line(&["a,b".to_owned(), "=1+1".to_owned(), "say \"x\"".to_owned()]);
        assert_eq!(line, "\"a,b\",'=1+1,\"say \"\"x\"\"\"\r\n");
    }
}
