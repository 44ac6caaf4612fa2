//! The daily trend of 共享率: one point per day (the day's latest figures, kept in the node's
//! settings as `monitor.trend.YYYY-MM-DD`, the last [`KEEP_DAYS`] days), and its chart, an SVG
//! drawn on the server (no script) beside a table of the same points.

use std::fmt::Write as _;

use govdc_hub_api::v1::SharingStats;
use serde::{Deserialize, Serialize};
use tonic::Status;

use crate::service::{DbResult, Hub, set_setting, tree_sharing_stats};
use crate::store::{SqlResult, StorageError};

/// Days of trend kept.
pub const KEEP_DAYS: i64 = 90;

const PREFIX: &str = "monitor.trend.";

/// One day's figures for this node and everything below it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// `YYYY-MM-DD`, UTC.
    pub day: String,
    /// Resources.
    pub resources: i64,
    /// Shared resources.
    pub shared: i64,
    /// Approved grants.
    pub grants: i64,
    /// Records served.
    pub served: i64,
}

impl Point {
    /// `shared / resources`.
    pub fn rate(&self) -> f64 {
        if self.resources == 0 {
            0.0
        } else {
            self.shared as f64 / self.resources as f64
        }
    }
}

/// Today's date, `YYYY-MM-DD` (UTC).
pub fn today() -> String {
    jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
}

/// The point of `day` from the tree's statistics (every node's departments summed).
pub fn point_of(day: &str, stats: &SharingStats) -> Point {
    let mut point = Point {
        day: day.to_owned(),
        ..Point::default()
    };
    for node in &stats.nodes {
        for d in &node.departments {
            point.resources += d.resources;
            point.shared += d.shared_resources;
            point.grants += d.grants_approved;
            point.served += d.records_served;
        }
    }
    point
}

/// `points` with today's replaced by `current` (the figures now, which a page shows rather
/// than those of the last snapshot, up to a minute old).
pub fn with_current(mut points: Vec<Point>, current: Point) -> Vec<Point> {
    match points.last_mut() {
        Some(last) if last.day == current.day => *last = current,
        _ => points.push(current),
    }
    points
}

/// Writes today's point from the tree's statistics now, and forgets points past [`KEEP_DAYS`].
pub async fn snapshot(hub: &std::sync::Arc<Hub>) -> Result<(), Status> {
    let now = jiff::Timestamp::now();
    let day = now.strftime("%Y-%m-%d").to_string();
    let oldest = now
        .checked_sub(jiff::SignedDuration::from_hours(24 * KEEP_DAYS))
        .map(|t| t.strftime("%Y-%m-%d").to_string())
        .unwrap_or_default();
    let reader = hub.clone();
    let stats = hub
        .store
        .read(move |conn| tree_sharing_stats(&reader, conn))
        .await?;
    let point = point_of(&day, &stats);
    let text = serde_json::to_string(&point)
        .map_err(|e| Status::internal(format!("encoding the trend: {e}")))?;
    hub.store
        .write(move |conn| {
            set_setting(conn, &format!("{PREFIX}{day}"), Some(&text))?;
            conn.execute(
                "DELETE FROM settings WHERE key LIKE 'monitor.trend.%' AND key < ?1",
                [format!("{PREFIX}{oldest}")],
            )
            .db()?;
            Ok(())
        })
        .await
}

/// The kept points, oldest first.
pub fn points(conn: &rusqlite::Connection) -> Result<Vec<Point>, StorageError> {
    let mut stmt = conn
        .prepare_cached("SELECT value FROM settings WHERE key LIKE 'monitor.trend.%' ORDER BY key")
        .sql()?;
    let texts = stmt
        .query_map([], |row| row.get::<_, String>(0))
        .sql()?
        .collect::<rusqlite::Result<Vec<_>>>()
        .sql()?;
    Ok(texts
        .iter()
        .filter_map(|t| serde_json::from_str(t).ok())
        .collect())
}

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 36.0;

/// The chart of the rate over `points`: an `<svg>` with `role="img"`, named by `title` and
/// described by `description` (the table beside it holds every value). Only numbers and the
/// two texts (escaped here) go into it.
pub fn chart(points: &[Point], title: &str, description: &str) -> String {
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if points.len() <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (points.len() - 1) as f64
        }
    };
    let y = |rate: f64| TOP + plot_h * (1.0 - rate.clamp(0.0, 1.0));
    let mut svg = String::new();
    let _ = write!(
        svg,
        "<svg class=\"trend\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-labelledby=\"trend-title trend-desc\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title id=\"trend-title\">{}</title><desc id=\"trend-desc\">{}</desc>",
        escape(title),
        escape(description)
    );
    for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
        let ty = y(tick);
        let _ = write!(
            svg,
            "<line class=\"grid\" x1=\"{LEFT}\" x2=\"{}\" y1=\"{ty:.1}\" y2=\"{ty:.1}\"/>\
             <text class=\"axis\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}%</text>",
            WIDTH - RIGHT,
            LEFT - 6.0,
            ty + 4.0,
            tick * 100.0
        );
    }
    let path: Vec<String> = points
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{:.1},{:.1}", x(i), y(p.rate())))
        .collect();
    if points.len() > 1 {
        let _ = write!(
            svg,
            "<polyline class=\"line\" points=\"{}\"/>",
            path.join(" ")
        );
    }
    for (i, p) in points.iter().enumerate() {
        let _ = write!(
            svg,
            "<circle class=\"dot\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\"/>",
            x(i),
            y(p.rate())
        );
    }
    // The first and last days under the axis.
    if let (Some(first), Some(last)) = (points.first(), points.last()) {
        let _ = write!(
            svg,
            "<text class=\"axis\" x=\"{LEFT}\" y=\"{}\">{}</text>",
            HEIGHT - 10.0,
            escape(&first.day)
        );
        if points.len() > 1 {
            let _ = write!(
                svg,
                "<text class=\"axis\" x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
                WIDTH - RIGHT,
                HEIGHT - 10.0,
                escape(&last.day)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// Text made safe inside SVG (XML) content and attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_chart_has_a_dot_per_day_and_escapes_its_texts() {
        let points = vec![
            Point {
                day: "2026-12-01".to_owned(),
                resources: 4,
                shared: 1,
                ..Point::default()
            },
            Point {
                day: "2026-12-02".to_owned(),
                resources: 4,
                shared: 3,
                ..Point::default()
            },
        ];
        let svg = chart(&points, "<script>", "a & b");
        assert_eq!(svg.matches("<circle").count(), 2);
        assert!(svg.contains("&lt;script&gt;") && svg.contains("a &amp; b"));
        assert!(!svg.contains("<script"));
        assert!(svg.contains("<polyline"));
        assert_eq!(chart(&points[..1], "t", "d").matches("<circle").count(), 1);
    }

    #[test]
    fn today_is_replaced_by_the_current_figures_or_added() {
        let day = |d: &str, resources| Point {
            day: d.to_owned(),
            resources,
            ..Point::default()
        };
        let kept = vec![day("2026-12-01", 1), day("2026-12-02", 2)];
        let replaced = with_current(kept.clone(), day("2026-12-02", 5));
        assert_eq!(replaced, vec![day("2026-12-01", 1), day("2026-12-02", 5)]);
        let added = with_current(kept, day("2026-12-03", 7));
        assert_eq!(added.len(), 3);
    }
}
