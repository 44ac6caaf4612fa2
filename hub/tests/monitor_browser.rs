//! The sharing-monitor website in a real browser: Debian's headless `chromium` driven by
//! playwright-core, with axe-core checking WCAG 2.1 A/AA on every page, against a real hub
//! tree (`hub/tests/web/monitor.mjs` says what it checks): the tables are `GetSharingStats`'
//! answer, a child that stopped pushing is stale, a tampered store's badge is red, a department
//! signs in and sees its own requests. It also takes the README's screenshots, into
//! `$GOVDC_SCREENSHOTS_DIR` (by default `target/screenshots`; `docs/screenshots` to refresh the
//! committed ones).
#![allow(clippy::unwrap_used)]

mod browser_support;
mod common;
mod monitor_fixtures;

use std::time::Duration;

use browser_support::{ensure_chromium, run_script, screenshots_dir, web_dir};
use common::*;
use govdc_hub_api::v1::{GetSharingStatsRequest, SetParentRequest};
use monitor_fixtures::{HOSTILE, seed, start_with_monitor};

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_works_in_a_browser_and_has_no_wcag_violation() {
    ensure_chromium();
    web_dir();
    bounded(Duration::from_secs(300), async {
        let tree = seed().await;

        // A second province that pushed once and then stopped.
        let (mut jiangsu, _) = start_with_monitor("jiangsu", "provincial", &[]);
        Clients::admin(&jiangsu)
            .node
            .set_parent(SetParentRequest {
                endpoint: tree.national.endpoint(),
                token: tree.national.token("node", "jiangsu").unwrap(),
                ca_pem: String::new(),
            })
            .await
            .unwrap();
        let mut admin = Clients::admin(&tree.national);
        eventually(
            Duration::from_secs(20),
            "jiangsu's figures on the national node",
            || {
                let mut stats = admin.stats.clone();
                async move {
                    let s = stats
                        .get_sharing_stats(GetSharingStatsRequest {})
                        .await
                        .ok()?
                        .into_inner();
                    s.nodes.iter().any(|n| n.node == "jiangsu").then_some(())
                }
            },
        )
        .await;
        jiangsu.kill();
        // Three federation intervals of 1 s, and a margin.
        tokio::time::sleep(Duration::from_millis(3500)).await;

        // A node whose audit record 3 was rewritten.
        let (broken, broken_url) = start_with_monitor("tampered", "national", &[]);
        let mut broken_admin = Clients::admin(&broken);
        for n in 91..95 {
            join(&mut broken_admin, &credit_code(n), "dept").await;
        }
        {
            let db = rusqlite::Connection::open(broken.data_dir.join("hub.db")).unwrap();
            db.busy_timeout(Duration::from_secs(5)).unwrap();
            db.execute_batch(
                "DROP TRIGGER audit_no_update; UPDATE audit SET subject = 'forged' WHERE seq = 3",
            )
            .unwrap();
        }

        // What the tables must show: GetSharingStats' departments, by code.
        let stats = admin
            .stats
            .get_sharing_stats(GetSharingStatsRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut departments: Vec<Vec<String>> = stats
            .nodes
            .iter()
            .flat_map(|n| {
                n.departments.iter().map(|d| {
                    vec![
                        d.credit_code.clone(),
                        n.node.clone(),
                        d.resources.to_string(),
                        d.shared_resources.to_string(),
                        format!("{:.1}%", d.share_rate * 100.0),
                        d.grants_approved.to_string(),
                        d.records_served.to_string(),
                    ]
                })
            })
            .collect();
        departments.sort();
        assert!(departments.len() >= 4);
        let expected = serde_json::json!({
            "departments": departments,
            "current_child": "zhejiang",
            "stale_child": "jiangsu",
            "token": tree.national.token("member", &tree.consumer).unwrap(),
            "consumer": tree.consumer,
            "provider": tree.provider,
            "own_requests": 3,
            "hostile": HOSTILE,
        });
        let file = tree.national.dir.join("monitor-expected.json");
        std::fs::write(&file, expected.to_string()).unwrap();

        let (ok, out, err) = run_script(
            "monitor.mjs",
            &[
                ("MONITOR_URL", tree.national_monitor.clone()),
                ("BROKEN_URL", broken_url.clone()),
                ("EXPECTED", file.display().to_string()),
                ("SCREENSHOTS_DIR", screenshots_dir().display().to_string()),
            ],
            Duration::from_secs(200),
        )
        .await;
        println!("{out}");
        eprintln!("{err}");
        assert!(ok, "the browser test failed:\n{out}\n{err}");
        assert!(out.contains("0 failed"), "{out}");
        let _ = &mut admin;
    })
    .await;
}
