//! The sharing-monitor website on real hub processes, over real HTTP: its tables are
//! `GetSharingStats`' answer (on the national node, with a provincial child's figures sent up
//! with its catalogue); a child that stops pushing turns stale; a tampered store turns the audit
//! badge red; a department signs in with its member token by form (CSRF-checked, a session
//! cookie) and sees its own requests; what departments wrote is escaped; bad parameters get a
//! 400 page.
#![allow(clippy::unwrap_used)]

mod common;
mod monitor_fixtures;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{GetSharingStatsRequest, SharingStats};
use monitor_fixtures::{HOSTILE, Tree, seed, start_with_monitor};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, String) {
    let response = http().get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

/// The text of an HTML fragment: tags removed, the five escapes undone, spaces collapsed.
fn text(html: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => {
                in_tag = false;
                out.push(' ');
            }
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    unescape(&out)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// HTML's named escapes of the five and numeric ones (`&#60;`) undone.
fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let end = rest.find(';').filter(|e| *e <= 8);
        let decoded = end.and_then(|end| {
            let name = &rest[1..end];
            let c = match name {
                "lt" => Some('<'),
                "gt" => Some('>'),
                "amp" => Some('&'),
                "quot" => Some('"'),
                "apos" => Some('\''),
                _ => name.strip_prefix('#').and_then(|n| {
                    n.strip_prefix('x')
                        .map_or_else(|| n.parse().ok(), |h| u32::from_str_radix(h, 16).ok())
                        .and_then(char::from_u32)
                }),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The rows of the `<table id="{id}">`'s body, each a list of its cells' texts.
fn table(html: &str, id: &str) -> Vec<Vec<String>> {
    let start = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no table {id}"));
    let body = &html[start..];
    let body = &body[body.find("<tbody>").unwrap()..body.find("</tbody>").unwrap()];
    body.split("<tr")
        .skip(1)
        .map(|row| {
            let mut cells = Vec::new();
            let mut rest = row;
            while let Some(at) = rest.find(['<']) {
                rest = &rest[at..];
                let is_cell = rest.starts_with("<td") || rest.starts_with("<th");
                if !is_cell {
                    rest = &rest[1..];
                    continue;
                }
                let close = if rest.starts_with("<td") {
                    "</td>"
                } else {
                    "</th>"
                };
                let end = rest.find(close).unwrap();
                let open_end = rest.find('>').unwrap() + 1;
                cells.push(text(&rest[open_end..end]));
                rest = &rest[end + close.len()..];
            }
            cells
        })
        .collect()
}

async fn stats(tree: &Tree) -> SharingStats {
    Clients::admin(&tree.national)
        .stats
        .get_sharing_stats(GetSharingStatsRequest {})
        .await
        .unwrap()
        .into_inner()
}

fn csv_rows(body: &str) -> Vec<BTreeMap<String, String>> {
    let mut reader = csv::Reader::from_reader(body.as_bytes());
    let headers = reader.headers().unwrap().clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap();
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.to_owned()))
                .collect()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_monitor_shows_the_tree_as_get_sharing_stats_answers_and_escapes_what_departments_wrote()
 {
    bounded(Duration::from_secs(150), async {
        let tree = seed().await;
        let m = &tree.national_monitor;
        let stats = stats(&tree).await;
        assert_eq!(stats.nodes.len(), 2, "{stats:?}");

        // By department: one row per department of every node, the answer's figures, sorted
        // by code (?sort=name&order=asc).
        let (status, page) = get(&format!("{m}/sharing/departments?sort=name&order=asc")).await;
        assert_eq!(status, 200, "{page}");
        let rows = table(&page, "stats");
        let mut expected: Vec<Vec<String>> = stats
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
        expected.sort();
        let shown: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                // The first cell holds the code and, for this node's members, the name.
                let mut r = r.clone();
                r[0] = r[0].split(' ').next().unwrap().to_owned();
                r
            })
            .collect();
        assert_eq!(shown, expected);
        assert_eq!(expected.len(), 4);
        // The hostile department's name is in its row as text.
        let hostile_row = rows
            .iter()
            .find(|r| r[0].starts_with(&tree.hostile))
            .unwrap();
        assert!(hostile_row[0].contains(HOSTILE), "{hostile_row:?}");
        assert!(
            !page.contains("<script>window"),
            "unescaped script on the page"
        );
        assert!(
            page.contains("&#60;script&#62;"),
            "the name is not shown escaped"
        );
        // Sorting by rate, highest first, is the order of the answer's rates.
        let (_, by_rate) = get(&format!("{m}/sharing/departments?sort=rate&order=desc")).await;
        let rates: Vec<f64> = table(&by_rate, "stats")
            .iter()
            .map(|r| r[4].trim_end_matches('%').parse().unwrap())
            .collect();
        assert!(rates.windows(2).all(|w| w[0] >= w[1]), "{rates:?}");
        assert!(by_rate.contains("aria-sort=\"descending\""));

        // The CSV holds the same figures, in the same order as the page.
        let response = http()
            .get(format!("{m}/sharing/departments.csv?sort=name&order=asc"))
            .send()
            .await
            .unwrap();
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/csv")
        );
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("attachment")
        );
        let csv = csv_rows(&response.text().await.unwrap());
        let from_csv: Vec<Vec<String>> = csv
            .iter()
            .map(|r| {
                let rate: f64 = r["share_rate"].parse().unwrap();
                vec![
                    r["credit_code"].clone(),
                    r["node"].clone(),
                    r["resources"].clone(),
                    r["shared_resources"].clone(),
                    format!("{:.1}%", rate * 100.0),
                    r["grants_approved"].clone(),
                    r["records_served"].clone(),
                ]
            })
            .collect();
        assert_eq!(from_csv, expected);

        // By node: the national node and the province, each its departments' sums.
        let (_, page) = get(&format!(
            "{m}/sharing/provinces?sort=name&order=asc&lang=en"
        ))
        .await;
        let rows = table(&page, "stats");
        let expected: Vec<(String, String, i64, i64)> = {
            let mut v: Vec<_> = stats
                .nodes
                .iter()
                .map(|n| {
                    (
                        n.node.clone(),
                        n.region_code.clone(),
                        n.departments.iter().map(|d| d.resources).sum(),
                        n.departments.iter().map(|d| d.records_served).sum(),
                    )
                })
                .collect();
            v.sort();
            v
        };
        let shown: Vec<(String, String, i64, i64)> = rows
            .iter()
            .map(|r| {
                (
                    r[0].split(' ').next().unwrap().to_owned(),
                    r[1].clone(),
                    r[2].parse().unwrap(),
                    r[6].split(' ').next().unwrap().parse().unwrap(),
                )
            })
            .collect();
        assert_eq!(shown, expected);
        assert!(rows[1][0].contains("Provincial"), "{rows:?}");
        // The trend: today's point, as a dot in the SVG and a row of the table beside it.
        assert!(page.contains("<svg class=\"trend\""), "no chart");
        assert!(page.matches("<circle").count() >= 1);
        let trend = table(&page, "trend");
        assert!(!trend.is_empty(), "no trend point");
        assert_eq!(
            trend.last().unwrap()[0],
            jiff::Timestamp::now().strftime("%Y-%m-%d").to_string()
        );
        // Today's point is the figures now: every node's resources summed.
        let resources: i64 = stats
            .nodes
            .iter()
            .flat_map(|n| &n.departments)
            .map(|d| d.resources)
            .sum();
        assert_eq!(trend.last().unwrap()[1], resources.to_string());

        // The overview's figures.
        let (_, overview) = get(&format!("{m}/?lang=en")).await;
        let figure = |key: &str| {
            let at = overview.find(&format!("data-figure=\"{key}\">")).unwrap();
            let rest = &overview[at..];
            text(&rest[rest.find('>').unwrap() + 1..rest.find("</span>").unwrap()])
        };
        assert_eq!(figure("departments"), "4");
        assert_eq!(figure("provinces"), "1");
        // 5 national resources and 2 forwarded by the province.
        assert_eq!(figure("catalogue"), "7");
        assert_eq!(figure("shared"), "57.1%");
        assert_eq!(figure("openable"), "42.9%");
        let served: i64 = stats
            .nodes
            .iter()
            .flat_map(|n| &n.departments)
            .map(|d| d.records_served)
            .sum();
        assert_eq!(figure("served"), served.to_string());
        assert_eq!(served, 2);
        assert!(overview.contains("As of"));

        // The catalogue: the portal's search, facets, and the reason a resource is not shared.
        let (_, catalogue) = get(&format!("{m}/catalogue?share=not-shared&lang=en")).await;
        assert!(
            catalogue.contains("3 resources found"),
            "{}",
            text(&catalogue)
        );
        assert!(catalogue.contains("保守国家秘密法"));
        assert!(catalogue.contains("涉及个人信息"));
        assert!(!catalogue.contains("<script>window") && !catalogue.contains("<img src=x"));
        let (_, found) = get(&format!(
            "{m}/catalogue?q=%E4%BC%81%E4%B8%9A%20%E4%BF%A1%E7%94%A8"
        ))
        .await;
        assert!(found.contains("找到 1 项资源"), "{}", text(&found));
        let (_, by_dept) = get(&format!(
            "{m}/catalogue?department={}",
            tree.province_dept.to_lowercase()
        ))
        .await;
        assert!(by_dept.contains("找到 2 项资源"), "{}", text(&by_dept));

        // Timeliness: the waiting request turns overdue after the 2 s deadline.
        let provider = tree.provider.clone();
        eventually(Duration::from_secs(10), "an overdue request", || async {
            let (_, page) = get(&format!("{m}/timeliness")).await;
            page.contains("id=\"overdue\"").then_some(())
        })
        .await;
        let (_, page) = get(&format!("{m}/timeliness")).await;
        let providers = table(&page, "providers");
        assert_eq!(providers.len(), 1, "{providers:?}");
        assert_eq!(providers[0][0], provider);
        assert_eq!(providers[0][1], "1", "one conditional request decided");
        assert_eq!(providers[0][4], "1", "one waiting");
        assert_eq!(providers[0][5], "1", "one overdue");
        let overdue = table(&page, "overdue");
        assert_eq!(overdue[0][1], format!("{provider}-0003"));

        // The province's own monitor shows its parent link.
        let (_, federation) = get(&format!("{}/federation?lang=en", tree.zhejiang_monitor)).await;
        assert!(federation.contains("Connected"), "{}", text(&federation));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_child_that_stops_pushing_turns_stale() {
    bounded(Duration::from_secs(120), async {
        let mut tree = seed().await;
        let m = tree.national_monitor.clone();
        let child_state = |page: &str| {
            table(page, "children")
                .into_iter()
                .find(|r| r[0] == "zhejiang")
                .map(|r| r[4].clone())
        };
        let (_, page) = get(&format!("{m}/federation?lang=en")).await;
        assert_eq!(
            child_state(&page).as_deref(),
            Some("Current"),
            "{}",
            text(&page)
        );
        tree.zhejiang.kill();
        let started = std::time::Instant::now();
        eventually(Duration::from_secs(15), "zhejiang marked stale", || async {
            let (_, page) = get(&format!("{m}/federation?lang=en")).await;
            (child_state(&page).as_deref() == Some("Stale")).then_some(())
        })
        .await;
        // Three intervals of 1 s: not before, and soon after.
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(1500),
            "stale after {waited:?}"
        );
        println!("stale {waited:?} after the child stopped");
        // Its figures on the regions page carry the badge too.
        let (_, page) = get(&format!("{m}/sharing/provinces?lang=en")).await;
        let rows = table(&page, "stats");
        let row = rows.iter().find(|r| r[0].starts_with("zhejiang")).unwrap();
        assert!(row[6].contains("Stale"), "{row:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_store_turns_the_audit_badge_red() {
    bounded(Duration::from_secs(90), async {
        let (mut hub, m) = start_with_monitor(
            "audited",
            "national",
            &[("GOVDC_HUB_AUDIT_ALGORITHM", "sm3")],
        );
        let mut admin = Clients::admin(&hub);
        for n in 81..85 {
            join(&mut admin, &credit_code(n), "dept").await;
        }
        let (_, page) = get(&format!("{m}/audit?lang=en")).await;
        assert!(
            page.contains("Verified up to record 4 (SM3)"),
            "{}",
            text(&page)
        );
        assert!(page.contains("badge-ok"));
        let (_, overview) = get(&format!("{m}/")).await;
        assert!(
            overview.contains("已验证至第 4 条记录（SM3）"),
            "{}",
            text(&overview)
        );

        // Someone with the file rewrites record 3 while the node runs.
        {
            let db = rusqlite::Connection::open(hub.data_dir.join("hub.db")).unwrap();
            db.busy_timeout(Duration::from_secs(5)).unwrap();
            db.execute_batch(&format!(
                "DROP TRIGGER audit_no_update; UPDATE audit SET subject = '{}' WHERE seq = 3",
                credit_code(99)
            ))
            .unwrap();
        }
        // A verification is shown for up to 5 s (each one recomputes the whole chain).
        let tampered = std::time::Instant::now();
        let page = eventually(Duration::from_secs(10), "the red badge", || async {
            let (status, page) = get(&format!("{m}/audit?lang=en")).await;
            assert_eq!(status, 200);
            page.contains("Verification failed at record 3")
                .then_some(page)
        })
        .await;
        println!(
            "red {:?} after the record was rewritten",
            tampered.elapsed()
        );
        assert!(tampered.elapsed() < Duration::from_secs(6));
        assert!(page.contains("audit-status badge-alert"), "{}", text(&page));
        assert!(page.contains("ALTERED"), "{}", text(&page));
        let (_, overview) = get(&format!("{m}/?lang=en")).await;
        assert!(
            overview.contains("badge audit-badge badge-alert"),
            "{}",
            text(&overview)
        );
        hub.stop().unwrap();
    })
    .await;
}

/// The sign-in form's CSRF token and its cookie.
async fn signin_form(m: &str) -> (String, String) {
    let response = http().get(format!("{m}/signin")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("govdc_monitor_csrf="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let page = response.text().await.unwrap();
    let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
    let csrf = page[at..at + 64].to_owned();
    let cookie = cookie.split(';').next().unwrap().to_owned();
    (csrf, cookie)
}

async fn post(url: &str, cookie: &str, form: &[(&str, &str)]) -> reqwest::Response {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish();
    http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .header("cookie", cookie)
        .body(body)
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_department_signs_in_with_its_member_token_and_sees_its_own_requests() {
    bounded(Duration::from_secs(120), async {
        let tree = seed().await;
        let m = &tree.national_monitor;
        let token = tree.national.token("member", &tree.consumer).unwrap();

        // Without the form's CSRF token, or with another, nothing happens.
        let (csrf, cookie) = signin_form(m).await;
        let refused = post(
            &format!("{m}/signin"),
            "",
            &[("csrf", &csrf), ("token", &token)],
        )
        .await;
        assert_eq!(refused.status().as_u16(), 403);
        assert!(refused.headers().get("set-cookie").is_none());
        let refused = post(
            &format!("{m}/signin"),
            &cookie,
            &[("csrf", &"0".repeat(64)), ("token", &token)],
        )
        .await;
        assert_eq!(refused.status().as_u16(), 403);
        // An admin token, a token of another node, a node token: refused with the form again.
        for bad in [
            tree.national.token("admin", "operator").unwrap(),
            tree.zhejiang.token("member", &tree.province_dept).unwrap(),
            "not-a-token".to_owned(),
        ] {
            let (csrf, cookie) = signin_form(m).await;
            let response = post(
                &format!("{m}/signin"),
                &cookie,
                &[("csrf", &csrf), ("token", &bad)],
            )
            .await;
            assert_eq!(response.status().as_u16(), 401);
            assert!(response.text().await.unwrap().contains("role=\"alert\""));
        }
        // The token is never taken from a URL.
        let (status, page) = get(&format!("{m}/signin?token={token}")).await;
        assert_eq!(status, 400, "{page}");
        // Oversized form.
        let (csrf, cookie) = signin_form(m).await;
        let huge = "x".repeat(20_000);
        let response = post(
            &format!("{m}/signin"),
            &cookie,
            &[("csrf", &csrf), ("token", &huge)],
        )
        .await;
        assert_eq!(response.status().as_u16(), 400);

        // Signed in: a session cookie, and its own requests.
        let (csrf, cookie) = signin_form(m).await;
        let response = post(
            &format!("{m}/signin"),
            &cookie,
            &[("csrf", &csrf), ("token", &token)],
        )
        .await;
        assert_eq!(response.status().as_u16(), 303);
        assert_eq!(response.headers()["location"], "/mine");
        let session = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("govdc_monitor_session="))
            .unwrap();
        assert!(
            session.contains("HttpOnly") && session.contains("SameSite=Strict"),
            "{session}"
        );
        assert!(!session.contains(&token));
        let session = session.split(';').next().unwrap().to_owned();
        let mine = http()
            .get(format!("{m}/mine?lang=en"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(mine.status().as_u16(), 200);
        let page = mine.text().await.unwrap();
        let requests = table(&page, "my-requests");
        assert_eq!(requests.len(), 3, "{requests:?}");
        assert!(requests.iter().all(|r| r[2] == tree.provider));
        let states: Vec<&str> = requests
            .iter()
            .map(|r| r[4].split(' ').next().unwrap())
            .collect();
        assert_eq!(states, ["Approved", "Approved", "Waiting"]);
        // The purpose it wrote is text.
        assert!(requests[0][3].contains(HOSTILE));
        assert!(!page.contains("<script>window"));
        assert!(
            !page.contains("id=\"my-grants\""),
            "the consumer provides nothing"
        );

        // The provider signed in sees the requests made to it instead.
        let (csrf, cookie) = signin_form(m).await;
        let provider_token = tree.national.token("member", &tree.provider).unwrap();
        let response = post(
            &format!("{m}/signin"),
            &cookie,
            &[("csrf", &csrf), ("token", &provider_token)],
        )
        .await;
        let provider_session = response
            .headers()
            .get_all("set-cookie")
            .iter()
            .map(|v| v.to_str().unwrap().to_owned())
            .find(|c| c.starts_with("govdc_monitor_session="))
            .unwrap();
        let provider_session = provider_session.split(';').next().unwrap().to_owned();
        let page = http()
            .get(format!("{m}/mine"))
            .header("cookie", &provider_session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let grants = table(&page, "my-grants");
        assert_eq!(grants.len(), 3);
        assert!(grants.iter().all(|r| r[2] == tree.consumer));

        // Each sign-in is in the audit log.
        let records = Clients::admin(&tree.national)
            .audit
            .list_audit_records(govdc_hub_api::v1::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let signins: Vec<&str> = records
            .iter()
            .filter(|r| r.action == "monitor.signin")
            .map(|r| r.actor.as_str())
            .collect();
        assert_eq!(signins, [tree.consumer.as_str(), tree.provider.as_str()]);

        // Signing out takes the session's CSRF token; then /mine sends to the sign-in page.
        let refused = post(&format!("{m}/signout"), &session, &[("csrf", "forged")]).await;
        assert_eq!(refused.status().as_u16(), 403);
        let page = http()
            .get(format!("{m}/mine"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let at = page.find("name=\"csrf\" value=\"").unwrap() + "name=\"csrf\" value=\"".len();
        let csrf = page[at..at + 64].to_owned();
        let out = post(&format!("{m}/signout"), &session, &[("csrf", &csrf)]).await;
        assert_eq!(out.status().as_u16(), 303);
        let after = http()
            .get(format!("{m}/mine"))
            .header("cookie", &session)
            .send()
            .await
            .unwrap();
        assert_eq!(after.status().as_u16(), 303);
        assert_eq!(after.headers()["location"], "/signin");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_parameters_get_a_400_page_that_names_them() {
    bounded(Duration::from_secs(60), async {
        let (_hub, m) = start_with_monitor("params", "national", &[]);
        let long = "长".repeat(201);
        for (path, name) in [
            ("/sharing/departments?sort=bogus".to_owned(), "sort"),
            ("/sharing/departments?order=sideways".to_owned(), "order"),
            (
                "/sharing/provinces.csv?sort=rate&sort=name".to_owned(),
                "sort",
            ),
            ("/?debug=1".to_owned(), "debug"),
            ("/catalogue?page=0".to_owned(), "page"),
            ("/catalogue?page=99999999999999999999".to_owned(), "page"),
            ("/catalogue?share=sometimes".to_owned(), "share"),
            (format!("/catalogue?q={long}"), "q"),
            (
                format!("/catalogue?department={}", "x".repeat(300)),
                "department",
            ),
            ("/audit?lang=fr".to_owned(), "lang"),
            ("/timeliness?lang=en&lang=en".to_owned(), "lang"),
        ] {
            let (status, page) = get(&format!("{m}{path}")).await;
            assert_eq!(status, 400, "{path}: {page}");
            assert!(
                page.contains(&format!("<code class=\"parameter\">{name}</code>")),
                "{path}: {page}"
            );
            assert!(page.contains("role=\"alert\""));
        }
        // A malformed percent-encoding reaches the page as text, and is escaped there.
        let (status, page) = get(&format!("{m}/catalogue?q=%3Cscript%3E%ZZ")).await;
        assert_eq!(status, 200);
        assert!(!page.contains("<script>"));
        let (status, _) = get(&format!("{m}/no/such/page")).await;
        assert_eq!(status, 404);
        // Every page answers with a policy that lets no script run.
        let response = http().get(format!("{m}/")).send().await.unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
    })
    .await;
}
