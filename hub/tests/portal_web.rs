//! The open-data website on the real hub process, read with a real HTTP client: the pages in
//! both languages, content negotiation on `/`, escaping of what departments wrote, 400 pages
//! that name the parameter, search that finds what CKAN's `package_search` finds, dataset
//! pages whose files equal the API's, and previews equal to the files' first rows.
#![allow(clippy::unwrap_used)]

mod common;
mod web_fixtures;

use std::time::{Duration, Instant};

use common::{bin, bounded};
use govdc_hub_api::v1::{DatasetMetadata, Openness};
use govdc_test_support::hub::{HubOptions, HubProcess};
use web_fixtures::{BUS, CLINICS, HOSTILE, HOSTILE_TITLE, PENALTIES, seed};

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Page {
    status: u16,
    content_type: String,
    body: String,
}

async fn page(url: &str, headers: &[(&str, &str)]) -> Page {
    let mut request = http().get(url).header("Accept", "text/html,*/*;q=0.8");
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    Page {
        status: response.status().as_u16(),
        content_type: response
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default(),
        body: response.text().await.unwrap(),
    }
}

async fn json(url: &str) -> serde_json::Value {
    let response = http().get(url).send().await.unwrap();
    assert_eq!(response.status(), 200, "{url}");
    serde_json::from_slice(&response.bytes().await.unwrap()).unwrap()
}

/// HTML text back to what it says.
fn unescape(text: &str) -> String {
    // askama writes numeric references; named ones are read too.
    text.replace("&#60;", "<")
        .replace("&lt;", "<")
        .replace("&#62;", ">")
        .replace("&gt;", ">")
        .replace("&#34;", "\"")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// The texts between each `open` and the next `close` in `html`.
fn between<'a>(html: &'a str, open: &str, close: &str) -> Vec<&'a str> {
    let mut out = Vec::new();
    let mut rest = html;
    while let Some(at) = rest.find(open) {
        let after = &rest[at + open.len()..];
        let Some(end) = after.find(close) else { break };
        out.push(&after[..end]);
        rest = &after[end + close.len()..];
    }
    out
}

/// The dataset ids a results page lists, in order.
fn listed(html: &str) -> Vec<String> {
    between(html, "<h3 class=\"card-title\"><a href=\"/datasets/", "\"")
        .into_iter()
        .map(|id| id.split('?').next().unwrap().to_owned())
        .collect()
}

/// The preview table: header and rows, unescaped.
fn preview_table(html: &str) -> (Vec<String>, Vec<Vec<String>>) {
    let table = between(html, "<table class=\"table preview\">", "</table>")
        .first()
        .copied()
        .unwrap_or_else(|| panic!("no preview table in {html}"));
    let header = between(table, "<th scope=\"col\">", "</th>")
        .into_iter()
        .map(unescape)
        .collect();
    let body = between(table, "<tbody>", "</tbody>")[0];
    let rows = between(body, "<tr>", "</tr>")
        .into_iter()
        .map(|row| {
            between(row, "<td>", "</td>")
                .into_iter()
                .map(unescape)
                .collect()
        })
        .collect();
    (header, rows)
}

fn portal_hub(name: &str) -> HubProcess {
    HubProcess::start(
        &bin(),
        HubOptions::new(name, "provincial", "extranet").portal(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_website_speaks_chinese_and_english_and_keeps_json_for_programs() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-lang");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;

        // A browser gets HTML, in Chinese by default.
        let home = page(&format!("{url}/"), &[]).await;
        assert_eq!(home.status, 200);
        assert_eq!(home.content_type, "text/html; charset=utf-8");
        assert!(home.body.starts_with("<!DOCTYPE html>\n<html lang=\"zh-CN\">"), "{}", home.body);
        assert!(home.body.contains("国家公共数据开放网站"));
        assert!(home.body.contains("企业登记"), "the plan's categories");
        assert!(home.body.contains("杭州市市场监督管理局"), "the departments");
        // Counts: the market regulator published two datasets.
        assert!(
            home.body.contains(&format!(
                "<a href=\"/datasets?department={}\">杭州市市场监督管理局</a> <span class=\"count\">2</span>",
                common::credit_code(3).to_lowercase()
            )),
            "{}",
            home.body
        );
        // Recently updated: the newest first.
        assert_eq!(listed(&home.body)[0], BUS);

        // Accept-Language chooses English; ?lang= overrides it.
        let english = page(&format!("{url}/"), &[("Accept-Language", "en-GB,en;q=0.9")]).await;
        assert!(english.body.contains("<html lang=\"en\">"));
        assert!(english.body.contains("National Public Open Data Portal"));
        assert!(english.body.contains("Enterprise registration"));
        let chosen = page(&format!("{url}/?lang=zh-CN"), &[("Accept-Language", "en")]).await;
        assert!(chosen.body.contains("<html lang=\"zh-CN\">"));

        // The switch keeps the path and the query.
        let search = page(&format!("{url}/datasets?q=%E5%85%AC%E4%BA%A4&page=1"), &[]).await;
        assert!(
            search.body.contains("href=\"/datasets?lang=en&#38;q=%E5%85%AC%E4%BA%A4&#38;page=1\""),
            "{}",
            search.body
        );
        let switched = page(&format!("{url}/datasets?lang=en&q=%E5%85%AC%E4%BA%A4&page=1"), &[]).await;
        assert!(switched.body.contains("<html lang=\"en\">"));
        assert!(switched.body.contains("1 datasets found"));
        assert_eq!(listed(&switched.body), [BUS]);
        // Links on an English page stay English.
        assert!(switched.body.contains(&format!("href=\"/datasets/{BUS}?lang=en\"")));

        let dataset = page(&format!("{url}/datasets/{BUS}?lang=en"), &[]).await;
        assert_eq!(dataset.status, 200);
        assert!(dataset.body.contains("<html lang=\"en\">"));
        assert!(dataset.body.contains("Open to all"));
        let dataset_zh = page(&format!("{url}/datasets/{BUS}"), &[]).await;
        assert!(dataset_zh.body.contains("无条件开放"));

        // Programs keep the JSON index.
        let index = json(&format!("{url}/")).await;
        assert!(index["ckan"].as_str().unwrap().ends_with("/api/3/action/package_search"));
        let response = http()
            .get(format!("{url}/"))
            .header("Accept", "application/json")
            .send()
            .await
            .unwrap();
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with("application/json"));
        assert_eq!(response.headers()["vary"], "Accept");

        // The style sheet is served by the hub.
        let css = http().get(format!("{url}/assets/portal.css")).send().await.unwrap();
        assert_eq!(css.status(), 200);
        assert!(css.text().await.unwrap().contains(".skip"));

        // Links come from the public URL, never from a forged Host.
        for target in ["/", "/datasets", &format!("/datasets/{BUS}")] {
            let response = http()
                .get(format!("{url}{target}"))
                .header("Accept", "text/html")
                .header("Host", "evil.example")
                .header("X-Forwarded-Host", "evil.example")
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{target}");
            let body = response.text().await.unwrap();
            assert!(!body.contains("evil.example"), "{target}: {body}");
            // Home and search link relatively; a dataset page's downloads are absolute.
            if target.starts_with("/datasets/") {
                assert!(body.contains(&format!("href=\"{url}/download/")), "{target}: no link to {url}");
            }
        }

        // An unknown dataset is a 404 page.
        let missing = page(&format!("{url}/datasets/no.such"), &[]).await;
        assert_eq!(missing.status, 404);
        assert!(missing.body.contains("no.such"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn what_departments_wrote_is_shown_as_text_never_as_markup() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-escape");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        for target in [
            format!("/datasets/{HOSTILE}"),
            "/datasets?q=Bold".to_owned(),
            "/datasets?category=statistics&lang=en".to_owned(),
        ] {
            let shown = page(&format!("{url}{target}"), &[]).await;
            assert_eq!(shown.status, 200, "{target}");
            let body = &shown.body;
            for raw in [
                "<script>window",
                "<b>Bold</b>",
                "<img",
                "onerror=\"",
                "</textarea>",
                "href=\"javascript:",
                "<i>测试部门</i>",
                "<script>tag",
                "\" onmouseover=\"",
                "<em>name</em>",
            ] {
                assert!(
                    !body.contains(raw),
                    "{target} holds {raw:?} unescaped:\n{body}"
                );
            }
            assert!(
                body.contains(
                    "&#60;script&#62;window.__xss = 1&#60;/script&#62;&#60;b&#62;Bold&#60;/b&#62;"
                ),
                "{target}: the title is not shown as text:\n{body}"
            );
        }
        // The JSON-LD keeps the title exactly, and cannot close its script element.
        let shown = page(&format!("{url}/datasets/{HOSTILE}"), &[]).await;
        let data = between(
            &shown.body,
            "<script type=\"application/ld+json\">",
            "</script>",
        );
        assert_eq!(data.len(), 1, "{}", shown.body);
        let ld: serde_json::Value = serde_json::from_str(data[0]).unwrap();
        assert_eq!(ld["name"], HOSTILE_TITLE);
        assert_eq!(ld["@type"], "Dataset");
        // The search form echoes a hostile query as text too.
        let echoed = page(
            &format!("{url}/datasets?q=%22%3E%3Cscript%3Ealert(1)%3C%2Fscript%3E"),
            &[],
        )
        .await;
        assert_eq!(echoed.status, 200);
        assert!(!echoed.body.contains("<script>alert"));
        assert!(
            echoed
                .body
                .contains("value=\"&#34;&#62;&#60;script&#62;alert(1)&#60;/script&#62;\""),
            "{}",
            echoed.body
        );
        // No script may run: the policy says so.
        let response = http()
            .get(format!("{url}/datasets/{HOSTILE}"))
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        let csp = response.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(csp.starts_with("default-src 'none'"), "{csp}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_parameter_gets_a_400_page_naming_it() {
    bounded(Duration::from_secs(60), async {
        let hub = portal_hub("web-bad");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        for (target, parameter, says) in [
            ("/datasets?page=0", "page", "“0”"),
            ("/datasets?page=abc", "page", "abc"),
            ("/datasets?sort=popular", "sort", "relevance, newest"),
            (
                "/datasets?openness=secret",
                "openness",
                "unconditional, conditional",
            ),
            ("/datasets?format=xlsx", "format", "csv, json"),
            ("/datasets?colour=red", "colour", "colour"),
            ("/datasets?q=a&q=b", "q", "q"),
            ("/datasets?lang=fr", "lang", "zh-CN, en"),
            ("/?lang=fr", "lang", "zh-CN, en"),
            ("/?q=bus", "q", "q"),
            ("/datasets/hz-transport.bus-stops?rows=1000", "rows", "rows"),
        ] {
            let shown = page(&format!("{url}{target}"), &[]).await;
            assert_eq!(shown.status, 400, "{target}: {}", shown.body);
            assert_eq!(shown.content_type, "text/html; charset=utf-8", "{target}");
            assert!(
                shown
                    .body
                    .contains(&format!("<code class=\"parameter\">{parameter}</code>")),
                "{target}: {}",
                shown.body
            );
            assert!(shown.body.contains(says), "{target}: {}", shown.body);
        }
        // In the language the URL asked for, when that part was good.
        let english = page(&format!("{url}/datasets?lang=en&page=-1"), &[]).await;
        assert_eq!(english.status, 400);
        assert!(
            english.body.contains("page cannot be “-1”"),
            "{}",
            english.body
        );
        let long = page(&format!("{url}/datasets?q={}", "长".repeat(201)), &[]).await;
        assert_eq!(long.status, 400);
        assert!(long.body.contains("<code class=\"parameter\">q</code>"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn search_finds_what_package_search_finds() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-search");
        let url = hub.portal_url().unwrap();
        let published = seed(&hub).await;
        let code = |n: u32| common::credit_code(n).to_lowercase();
        let cases: Vec<(String, String, String)> = vec![
            (String::new(), String::new(), String::new()),
            ("q=杭州".into(), "杭州".into(), String::new()),
            ("q=杭州+名录".into(), "杭州 名录".into(), String::new()),
            ("q=BUS".into(), "BUS".into(), String::new()),
            ("category=statistics".into(), String::new(), "groups:statistics".into()),
            (format!("department={}", code(3)), String::new(), format!("organization:{}", code(3))),
            ("format=json&q=杭州".into(), "杭州".into(), "res_format:json".into()),
            ("license=CC0-1.0".into(), String::new(), "license_id:CC0-1.0".into()),
            ("openness=conditional".into(), String::new(), "openness:conditional".into()),
            ("q=nothing-matches-this".into(), "nothing-matches-this".into(), String::new()),
        ];
        for (web, q, fq) in &cases {
            let ckan = json(&format!(
                "{url}/api/3/action/package_search?rows=1000&q={}&fq={}",
                urlencode(q),
                urlencode(fq)
            ))
            .await;
            let expected: Vec<String> = ckan["result"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["name"].as_str().unwrap().to_owned())
                .collect();
            // Every page of the website's newest-first search, in order.
            let mut found = Vec::new();
            for number in 1..=5 {
                let shown = page(&format!("{url}/datasets?{web}&sort=newest&page={number}&lang=en"), &[]).await;
                assert_eq!(shown.status, 200, "{web}: {}", shown.body);
                assert!(shown.body.contains(&format!("{} datasets found", expected.len())), "{web}");
                let ids = listed(&shown.body);
                if ids.is_empty() {
                    break;
                }
                assert!(ids.len() <= 10, "a page holds at most 10");
                found.extend(ids);
            }
            assert_eq!(found, expected, "{web} against package_search q={q:?} fq={fq:?}");
            // Relevance finds the same set, in its own order.
            let shown = page(&format!("{url}/datasets?{web}&lang=en"), &[]).await;
            let mut relevant = listed(&shown.body);
            relevant.sort();
            let mut first_page: Vec<String> = expected.iter().take(10).cloned().collect();
            first_page.sort();
            if expected.len() <= 10 {
                assert_eq!(relevant, first_page, "{web}");
            }
        }
        assert_eq!(published.len(), 12);
        // Paging: twelve datasets are two pages, and the second links back.
        let second = page(&format!("{url}/datasets?page=2&lang=en"), &[]).await;
        assert_eq!(listed(&second.body).len(), 2);
        assert!(second.body.contains("Page 2 of 2"));
        assert!(second.body.contains("rel=\"prev\" href=\"/datasets?lang=en\""), "{}", second.body);
        // Facets count over the hits, and a facet link narrows the search.
        let all = page(&format!("{url}/datasets?lang=en"), &[]).await;
        assert!(all.body.contains("<a href=\"/datasets?lang=en&#38;openness=conditional\">Open on conditions</a> <span class=\"count\">1</span>"), "{}", all.body);
        assert!(all.body.contains("<a href=\"/datasets?lang=en&#38;format=csv\">CSV</a> <span class=\"count\">12</span>"));
        let narrowed = page(&format!("{url}/datasets?lang=en&openness=conditional"), &[]).await;
        assert_eq!(listed(&narrowed.body), [CLINICS]);
        assert!(narrowed.body.contains("Openness: Open on conditions"), "the active filter");
    })
    .await;
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dataset_page_shows_the_apis_files_and_its_first_rows() {
    bounded(Duration::from_secs(180), async {
        let hub = portal_hub("web-dataset");
        let url = hub.portal_url().unwrap();
        let published = seed(&hub).await;

        for id in [BUS, "hz-market.enterprises", "zj-weather.daily"] {
            let shown = page(&format!("{url}/datasets/{id}"), &[]).await;
            assert_eq!(shown.status, 200);
            let body = &shown.body;
            // Files, sizes and checksums are the API's.
            let api = json(&format!("{url}/api/datasets/{id}")).await;
            for file in api["files"].as_array().unwrap() {
                let link = format!("href=\"{}\"", file["url"].as_str().unwrap());
                assert!(body.contains(&link), "{id}: no {link}");
                let sha = file["sha256"].as_str().unwrap();
                assert!(body.contains(&format!("<code class=\"sha256\">{sha}</code>")), "{id}: {sha}");
                assert!(body.contains(&format!("title=\"{} B\"", file["size"])), "{id}: size");
            }
            assert!(body.contains(&format!("href=\"{}\"", api["checksums"].as_str().unwrap())));
            // Alternates and snippets.
            assert!(body.contains(&format!(
                "<link rel=\"alternate\" type=\"application/json\" href=\"{url}/api/datasets/{id}\">"
            )));
            assert!(body.contains(&format!(
                "<link rel=\"alternate\" type=\"application/ld+json\" href=\"{url}/datasets/{id}/dcat.jsonld\">"
            )));
            // That DCAT-AP document is the catalog's node of the dataset, with its context.
            let mut dcat = json(&format!("{url}/datasets/{id}/dcat.jsonld")).await;
            let catalog = json(&format!("{url}/catalog.jsonld")).await;
            assert_eq!(dcat["@context"], catalog["@context"]);
            dcat.as_object_mut().unwrap().remove("@context");
            let node = catalog["dcat:dataset"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["dct:identifier"] == id)
                .unwrap();
            assert_eq!(&dcat, node, "{id}");
            assert!(body.contains(&format!("ckanapi action package_show id={id} -r {url}")));
            let ld: serde_json::Value = serde_json::from_str(
                between(body, "<script type=\"application/ld+json\">", "</script>")[0],
            )
            .unwrap();
            assert_eq!(ld["name"], api["title"]);
            assert_eq!(ld["distribution"][0]["contentUrl"], api["files"][0]["url"]);

            // The preview is the file's first ten rows, parsed by another CSV reader.
            let csv_text = &published.iter().find(|p| p.id == id).unwrap().csv;
            let mut reader = csv::Reader::from_reader(csv_text.trim_start_matches('\u{feff}').as_bytes());
            let header: Vec<String> = reader.headers().unwrap().iter().map(str::to_owned).collect();
            let rows: Vec<Vec<String>> = reader
                .records()
                .take(10)
                .map(|r| r.unwrap().iter().map(str::to_owned).collect())
                .collect();
            let (shown_header, shown_rows) = preview_table(body);
            assert_eq!(shown_header, header, "{id}");
            assert_eq!(shown_rows, rows, "{id}");
        }

        // A conditional dataset has no preview, and says how to obtain it.
        let clinics = page(&format!("{url}/datasets/{CLINICS}?lang=en"), &[]).await;
        assert!(clinics.body.contains("Data open on conditions has no preview."));
        assert!(clinics.body.contains("Apply to the platform"));
        assert!(clinics.body.contains("Authorization: Bearer $GOVDC_TOKEN"));
        assert!(!clinics.body.contains("<table class=\"table preview\">"));

        // Declared identifiers and risk figures, as the portal has them.
        let penalties = page(&format!("{url}/datasets/{PENALTIES}?lang=en"), &[]).await;
        let declared = between(&penalties.body, "<table class=\"table declared\">", "</table>")[0];
        assert!(declared.contains("<code>联系电话</code>") && declared.contains("mobilePhone"));
        assert!(declared.contains("企业登记的联系电话依法公示"));
        assert!(penalties.body.contains("<dt>Smallest group</dt><dd>5</dd>"), "{}", penalties.body);
        assert!(penalties.body.contains("<dt>Average prosecutor risk</dt><dd>4.25 %</dd>"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_million_row_file_previews_as_fast_as_a_small_one() {
    bounded(Duration::from_secs(240), async {
        let hub = portal_hub("web-preview");
        let url = hub.portal_url().unwrap();
        let metadata = |id: &str, rows: i64| DatasetMetadata {
            id: id.to_owned(),
            title: format!("{rows} rows"),
            category: "statistics".to_owned(),
            openness: Openness::Unconditional as i32,
            license: "CC-BY-4.0".to_owned(),
            organization_credit_code: common::credit_code(1),
            organization_name: "统计局".to_owned(),
            version: 1,
            record_count: rows,
            content_sha256: format!("c{rows}"),
            ..Default::default()
        };
        let row = |i: usize| format!("{i},西湖区第{i}号观测点,{}", i % 97);
        let big = web_fixtures::csv("编号,名称,数值", 1_000_000, row);
        let small = web_fixtures::csv("编号,名称,数值", 20, row);
        web_fixtures::publish(&hub, metadata("t.big", 1_000_000), &big, false).await;
        web_fixtures::publish(&hub, metadata("t.small", 20), &small, false).await;
        // The first view reads the file; the page keeps the preview of that version, so the
        // later ones (their median) do not.
        let timed = |id: &'static str| {
            let url = url.clone();
            async move {
                let mut times = Vec::new();
                for _ in 0..7 {
                    let started = Instant::now();
                    let shown = page(&format!("{url}/datasets/{id}"), &[]).await;
                    times.push(started.elapsed());
                    assert_eq!(shown.status, 200);
                    let (_, rows) = preview_table(&shown.body);
                    assert_eq!(rows.len(), 10);
                    assert_eq!(rows[9], ["9", "西湖区第9号观测点", "9"]);
                }
                let first = times[0];
                times.sort();
                (first, times[3])
            }
        };
        let (small_first, small_time) = timed("t.small").await;
        let (big_first, big_time) = timed("t.big").await;
        println!(
            "dataset page with preview: first view (reading the file) 20 rows {small_first:?}, \
             1,000,000 rows {big_first:?}; median of 7: {small_time:?}, {big_time:?}"
        );
        // Reading the whole file (about 35 MB of CSV) would take seconds in a debug build.
        assert!(
            big_first < small_first * 3 + Duration::from_millis(50),
            "first view: 1M rows {big_first:?} against 20 rows {small_first:?}"
        );
        assert!(
            big_time < small_time * 3 + Duration::from_millis(50),
            "1M rows {big_time:?} against 20 rows {small_time:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pages_and_ckan_follow_every_publish_and_unpublish_at_once() {
    bounded(Duration::from_secs(60), async {
        let hub = portal_hub("web-fresh");
        let url = hub.portal_url().unwrap();
        let metadata = |version: i64, title: &str| DatasetMetadata {
            id: "t.fresh".to_owned(),
            title: title.to_owned(),
            category: "culture".to_owned(),
            openness: Openness::Unconditional as i32,
            license: "CC-BY-4.0".to_owned(),
            organization_credit_code: common::credit_code(1),
            organization_name: "文化局".to_owned(),
            version,
            record_count: 1,
            content_sha256: format!("c{version}"),
            ..Default::default()
        };
        let ckan_titles = || async {
            json(&format!("{url}/api/3/action/package_search?q=fresh")).await["result"]["results"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["title"].as_str().unwrap().to_owned())
                .collect::<Vec<_>>()
        };
        let csv = "a\n1\n";
        web_fixtures::publish(&hub, metadata(1, "First fresh title"), csv, false).await;
        let first = page(&format!("{url}/datasets?q=fresh"), &[]).await;
        assert!(first.body.contains("First fresh title"));
        assert_eq!(ckan_titles().await, ["First fresh title"]);
        // Read twice (the second from the decoded catalogue), then a new version.
        page(&format!("{url}/datasets?q=fresh"), &[]).await;
        web_fixtures::publish(&hub, metadata(2, "Second fresh title"), csv, false).await;
        let second = page(&format!("{url}/datasets?q=fresh"), &[]).await;
        assert!(
            second.body.contains("Second fresh title"),
            "{}",
            second.body
        );
        assert!(!second.body.contains("First fresh title"));
        assert_eq!(ckan_titles().await, ["Second fresh title"]);
        // Unpublished: gone from the pages and from CKAN.
        let token = hub.token("admin", "operator").unwrap();
        let mut client = govdc_hub_api::v1::portal_client::PortalClient::with_interceptor(
            common::channel(&hub),
            govdc_hub_api::auth::BearerToken::new(&token).unwrap(),
        );
        client
            .unpublish_dataset(govdc_hub_api::v1::UnpublishDatasetRequest {
                id: "t.fresh".to_owned(),
            })
            .await
            .unwrap();
        let gone = page(&format!("{url}/datasets?q=fresh&lang=en"), &[]).await;
        assert!(gone.body.contains("0 datasets found"), "{}", gone.body);
        assert!(ckan_titles().await.is_empty());
        assert_eq!(
            page(&format!("{url}/datasets/t.fresh"), &[]).await.status,
            404
        );
    })
    .await;
}

/// The count a dataset page shows.
fn downloads_shown(html: &str) -> String {
    between(html, "<dd class=\"downloads\">", "</dd>")
        .first()
        .map(|s| (*s).to_owned())
        .unwrap_or_else(|| panic!("no download count in {html}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn downloads_are_counted_on_the_server_and_outlive_a_restart_and_a_crash() {
    bounded(Duration::from_secs(120), async {
        let mut hub = portal_hub("web-downloads");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        let api = json(&format!("{url}/api/datasets/{BUS}")).await;
        let file = api["files"][0]["url"].as_str().unwrap().to_owned();
        let other =
            json(&format!("{url}/api/datasets/hz-market.enterprises")).await["files"][0]["url"]
                .as_str()
                .unwrap()
                .to_owned();
        assert_eq!(
            downloads_shown(&page(&format!("{url}/datasets/{BUS}"), &[]).await.body),
            "0"
        );
        let home = page(&format!("{url}/?lang=en"), &[]).await;
        assert!(home.body.contains("Nothing has been downloaded yet."));

        let get = |target: String, range: Option<&'static str>| async move {
            let mut request = http().get(&target);
            if let Some(range) = range {
                request = request.header("Range", range);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            response.bytes().await.unwrap();
            status
        };
        // Three whole downloads and one that starts with a range from byte 0: four.
        for _ in 0..3 {
            assert_eq!(get(file.clone(), None).await, 200);
        }
        assert_eq!(get(file.clone(), Some("bytes=0-9")).await, 206);
        // Not downloads: resuming, a HEAD, a 304, a missing file.
        assert_eq!(get(file.clone(), Some("bytes=10-")).await, 206);
        assert_eq!(http().head(&file).send().await.unwrap().status(), 200);
        let etag = format!("\"{}\"", api["files"][0]["sha256"].as_str().unwrap());
        let unchanged = http()
            .get(&file)
            .header("If-None-Match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(unchanged.status(), 304);
        assert_eq!(
            get(format!("{url}/download/{BUS}/99/data.csv.gz"), None).await,
            404
        );
        assert_eq!(get(other.clone(), None).await, 200);

        assert_eq!(
            downloads_shown(&page(&format!("{url}/datasets/{BUS}"), &[]).await.body),
            "4"
        );
        // Most downloaded: on the home page and as the search's order.
        let home = page(&format!("{url}/?lang=en"), &[]).await;
        let popular = between(&home.body, "<h2 id=\"popular\">", "</section>")[0];
        assert_eq!(listed(popular), [BUS, "hz-market.enterprises"], "{popular}");
        assert!(popular.contains("4 downloads"), "{popular}");
        let sorted = page(&format!("{url}/datasets?sort=downloads&lang=en"), &[]).await;
        assert_eq!(sorted.status, 200);
        let ids = listed(&sorted.body);
        assert_eq!(&ids[..2], [BUS, "hz-market.enterprises"]);
        assert!(
            sorted
                .body
                .contains("<strong aria-current=\"true\">Most downloaded</strong>")
        );
        // Ties keep the newest-first order: the rest are as sort=newest lists them.
        let newest = listed(
            &page(&format!("{url}/datasets?sort=newest&lang=en"), &[])
                .await
                .body,
        );
        let rest: Vec<&String> = newest
            .iter()
            .filter(|id| !ids[..2].contains(id))
            .take(8)
            .collect();
        assert_eq!(ids[2..].iter().collect::<Vec<_>>(), rest);

        // A graceful stop writes the counts; they are read back at start.
        hub.stop().unwrap();
        hub.restart().unwrap();
        assert_eq!(
            downloads_shown(&page(&format!("{url}/datasets/{BUS}"), &[]).await.body),
            "4"
        );
        // A crash loses at most the last interval: counts written every two seconds.
        assert_eq!(get(file.clone(), None).await, 200);
        tokio::time::sleep(Duration::from_millis(3500)).await;
        hub.kill();
        hub.restart().unwrap();
        assert_eq!(
            downloads_shown(&page(&format!("{url}/datasets/{BUS}"), &[]).await.body),
            "5"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dataset_page_shows_timeliness_version_history_and_metadata_quality() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-timely");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        let weather = page(&format!("{url}/datasets/zj-weather.daily?lang=en"), &[]).await;
        assert!(
            weather
                .body
                .contains("<dt>Update frequency</dt><dd>Daily</dd>"),
            "{}",
            weather.body
        );
        assert!(
            weather
                .body
                .contains("timeliness-on-time\">On time: the next version is due by")
        );
        let bus = page(&format!("{url}/datasets/{BUS}"), &[]).await;
        assert!(
            bus.body.contains("<dt>更新频率</dt><dd>每周</dd>"),
            "{}",
            bus.body
        );
        let irregular = page(&format!("{url}/datasets/{CLINICS}?lang=en"), &[]).await;
        assert!(
            irregular
                .body
                .contains("Updated irregularly: no schedule to keep")
        );

        // A dataset promised every second is overdue two seconds after its version.
        let metadata = |version: i64, tags: Vec<String>| DatasetMetadata {
            id: "t.late".to_owned(),
            title: "Late dataset".to_owned(),
            description: "A dataset whose publisher promised a new version every second."
                .to_owned(),
            category: "statistics".to_owned(),
            openness: Openness::Unconditional as i32,
            license: "my-own-terms".to_owned(),
            tags,
            organization_credit_code: common::credit_code(1),
            organization_name: "统计局".to_owned(),
            version,
            record_count: version * 10,
            content_sha256: format!("{version:064x}"),
            update_interval_seconds: 1,
            ..Default::default()
        };
        web_fixtures::publish(&hub, metadata(1, Vec::new()), "a\n1\n", false).await;
        web_fixtures::publish(
            &hub,
            metadata(2, vec!["统计".to_owned()]),
            "a\n1\n2\n",
            false,
        )
        .await;
        tokio::time::sleep(Duration::from_millis(2000)).await;
        let late = page(&format!("{url}/datasets/t.late?lang=en"), &[]).await;
        assert!(
            late.body
                .contains("timeliness-overdue\">Overdue: a new version was due by"),
            "{}",
            late.body
        );

        // Both versions, newest first, with their digests and quality scores.
        let history = between(&late.body, "<table class=\"table history\">", "</table>")[0];
        let rows = between(history, "<tr><td>", "</tr>");
        assert_eq!(rows.len(), 2, "{history}");
        assert!(rows[0].starts_with("2</td><td>Published"), "{}", rows[0]);
        assert!(rows[0].contains(&format!("title=\"{:064x}\"", 2)));
        assert!(rows[0].contains("<td>20</td>"));
        assert!(rows[1].starts_with("1</td><td>Published"));
        // Version 1 had no tags; version 2 has one, and scores 30 points more.
        // Missing in v2: an SPDX licence (10), field documentation (20): 375, excellent.
        assert!(rows[0].contains("<td>375 / 405</td>"), "{}", rows[0]);
        assert!(rows[1].contains("<td>345 / 405</td>"), "{}", rows[1]);
        let quality = between(&late.body, "<table class=\"table quality\">", "</table>")[0];
        assert!(late.body.contains("375 of 405 points (Excellent)"));
        assert!(
            quality.contains("<th scope=\"row\">Reusability</th><td>45 / 75</td>"),
            "{quality}"
        );
        assert!(quality.contains("<li>Licence from the SPDX vocabulary</li>"));
        assert!(quality.contains("<li>Every field documented</li>"));
        assert!(quality.contains(
            "<th scope=\"row\">Findability</th><td>100 / 100</td><td>Nothing missing</td>"
        ));
        // The same quality is in the version's audit record, written when it was published.
        let token = hub.token("admin", "operator").unwrap();
        let mut audit = govdc_hub_api::v1::audit_client::AuditClient::with_interceptor(
            common::channel(&hub),
            govdc_hub_api::auth::BearerToken::new(&token).unwrap(),
        );
        let records = audit
            .list_audit_records(govdc_hub_api::v1::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let published: Vec<serde_json::Value> = records
            .iter()
            .filter(|r| r.action == "portal.publish" && r.subject == "t.late")
            .map(|r| serde_json::from_str(&r.detail).unwrap())
            .collect();
        assert_eq!(published.len(), 2);
        assert_eq!(published[0]["quality"]["score"], 345);
        assert_eq!(published[1]["quality"]["score"], 375);
        assert_eq!(
            published[1]["quality"]["missing"],
            serde_json::json!(["license_vocabulary", "field_documentation"])
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn departments_are_ranked_by_metadata_quality_with_their_on_time_rate() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-departments");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        let ranking = page(&format!("{url}/departments?lang=en"), &[]).await;
        assert_eq!(ranking.status, 200);
        let table = between(&ranking.body, "<table class=\"table ranking\">", "</table>")[0];
        let rows = between(table, "<tr><td>", "</tr>");
        let organizations = json(&format!("{url}/api/3/action/organization_list")).await;
        assert_eq!(
            rows.len(),
            organizations["result"].as_array().unwrap().len(),
            "{table}"
        );
        // The quality column never rises down the ranking.
        let scores: Vec<u32> = rows
            .iter()
            .map(|r| {
                let cell = between(r, "<span class=\"rating rating-", " of 405")[0];
                cell.rsplit('>').next().unwrap().parse().unwrap()
            })
            .collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        for (i, row) in rows.iter().enumerate() {
            assert!(row.starts_with(&format!("{}</td>", i + 1)), "{row}");
        }
        // What departments wrote is text.
        assert!(!ranking.body.contains("<i>测试部门</i>"));
        assert!(ranking.body.contains("&#60;i&#62;测试部门&#60;/i&#62;"));

        // The market regulator: two datasets, one scheduled (monthly, on time).
        let code = common::credit_code(3).to_lowercase();
        let market = page(&format!("{url}/departments/{code}?lang=en"), &[]).await;
        assert_eq!(market.status, 200);
        assert!(market.body.contains("<h1>杭州市市场监督管理局</h1>"));
        assert!(market.body.contains("<dt>Datasets</dt><dd>2</dd>"));
        assert!(
            market.body.contains(
                "<dt>On-time update rate</dt><dd>100 % (1 of 1 scheduled datasets on time)</dd>"
            ),
            "{}",
            market.body
        );
        let mut listed_here = listed(&market.body);
        listed_here.sort();
        assert_eq!(
            listed_here,
            ["hz-credit.penalties", "hz-market.enterprises"]
        );
        assert!(
            market
                .body
                .contains(&format!("href=\"/datasets?lang=en&#38;department={code}\""))
        );
        // It is linked from the ranking, and its datasets equal the search's department filter.
        assert!(table.contains(&format!("href=\"/departments/{code}?lang=en\"")));
        let filtered = page(
            &format!("{url}/datasets?department={code}&sort=newest"),
            &[],
        )
        .await;
        assert_eq!(listed(&filtered.body), listed(&market.body));

        // Unknown departments are 404 pages; bad parameters 400 pages naming them.
        assert_eq!(
            page(&format!("{url}/departments/91330000000000000x"), &[])
                .await
                .status,
            404
        );
        for (target, parameter) in [
            ("/departments?page=2", "page"),
            (&format!("/departments/{code}?page=0") as &str, "page"),
            (&format!("/departments/{code}?sort=x"), "sort"),
        ] {
            let shown = page(&format!("{url}{target}"), &[]).await;
            assert_eq!(shown.status, 400, "{target}");
            assert!(
                shown
                    .body
                    .contains(&format!("<code class=\"parameter\">{parameter}</code>")),
                "{target}"
            );
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_changelog_and_the_atom_feed_list_every_publication_newest_first() {
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("web-changes");
        let url = hub.portal_url().unwrap();
        let published = seed(&hub).await;
        // A withdrawal, and more publications than a page holds.
        let token = hub.token("admin", "operator").unwrap();
        let mut client = govdc_hub_api::v1::portal_client::PortalClient::with_interceptor(
            common::channel(&hub),
            govdc_hub_api::auth::BearerToken::new(&token).unwrap(),
        );
        client
            .unpublish_dataset(govdc_hub_api::v1::UnpublishDatasetRequest {
                id: "zj-nr.parcels".to_owned(),
            })
            .await
            .unwrap();
        for i in 0..25 {
            let metadata = DatasetMetadata {
                id: format!("t.series-{i}"),
                title: format!("Series {i} & <b>more</b>"),
                category: "statistics".to_owned(),
                openness: Openness::Unconditional as i32,
                license: "CC-BY-4.0".to_owned(),
                organization_credit_code: common::credit_code(1),
                organization_name: "统计局".to_owned(),
                version: 1,
                record_count: 1,
                content_sha256: format!("s{i}"),
                ..Default::default()
            };
            web_fixtures::publish(&hub, metadata, "a\n1\n", false).await;
        }
        let first = page(&format!("{url}/changes?lang=en"), &[]).await;
        assert_eq!(first.status, 200);
        let table = between(&first.body, "<tbody>", "</tbody>")[0];
        let rows = between(table, "<tr", "</tr>");
        assert_eq!(rows.len(), 30);
        assert!(
            rows[0].contains("Series 24 &#38; &#60;b&#62;more&#60;/b&#62;"),
            "{}",
            rows[0]
        );
        assert!(rows[0].contains("href=\"/datasets/t.series-24?lang=en\""));
        // The withdrawal, after the series, and without a link: the dataset is gone.
        let withdrawn = rows[25];
        assert!(withdrawn.starts_with(" class=\"withdrawn\""), "{withdrawn}");
        assert!(withdrawn.contains("Withdrawn") && withdrawn.contains("浙江省自然资源地块公示"));
        assert!(!withdrawn.contains("href="));
        // The older page holds the rest: 12 fixtures + 1 withdrawal + 25 = 38 rows in all.
        let older = between(&first.body, "rel=\"next\" href=\"", "\"")[0].replace("&#38;", "&");
        let second = page(&format!("{url}{older}"), &[]).await;
        assert_eq!(second.status, 200, "{older}");
        let rest = between(
            between(&second.body, "<tbody>", "</tbody>")[0],
            "<tr",
            "</tr>",
        );
        assert_eq!(rest.len(), 12 + 1 + 25 - 30);
        assert!(!second.body.contains("rel=\"next\""));
        assert!(
            rest.last().unwrap().contains(&published.last().unwrap().id),
            "the oldest is the first fixture"
        );
        for (target, parameter) in [
            ("/changes?before=abc", "before"),
            ("/changes?before=0", "before"),
            ("/changes?page=2", "page"),
        ] {
            let shown = page(&format!("{url}{target}"), &[]).await;
            assert_eq!(shown.status, 400, "{target}");
            assert!(
                shown
                    .body
                    .contains(&format!("<code class=\"parameter\">{parameter}</code>"))
            );
        }

        // The feed: Atom, read by Python's XML parser (not ours).
        let response = http().get(format!("{url}/feed.atom")).send().await.unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "application/atom+xml; charset=utf-8"
        );
        let feed = response.text().await.unwrap();
        let script = r#"
import sys, xml.etree.ElementTree as ET
A = '{http://www.w3.org/2005/Atom}'
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == A + 'feed', root.tag
for required in ('id', 'title', 'updated', 'author'):
    assert root.find(A + required) is not None, required
entries = root.findall(A + 'entry')
for e in entries:
    for required in ('id', 'title', 'updated', 'link'):
        assert e.find(A + required) is not None, required
print(len(entries))
for e in entries[:2]:
    print(e.find(A + 'title').text)
    print(e.find(A + 'link').get('href'))
ids = [e.find(A + 'id').text for e in entries]
assert len(set(ids)) == len(ids), ids
print(sum(1 for e in entries if e.find(A + 'link[@rel="enclosure"]') is not None))
"#;
        let mut python = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        python
            .stdin
            .take()
            .unwrap()
            .write_all(feed.as_bytes())
            .unwrap();
        let out = python.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{}\n{feed}",
            String::from_utf8_lossy(&out.stderr)
        );
        let lines: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        // Publications only (the withdrawal is not one): 12 + 25 = 37.
        assert_eq!(lines[0], "37");
        assert_eq!(lines[1], "Series 24 & <b>more</b> (v1)");
        assert_eq!(lines[2], format!("{url}/datasets/t.series-24"));
        assert_eq!(lines[3], "Series 23 & <b>more</b> (v1)");
        assert_eq!(lines[5], "37", "every publication links its files");
        // Browsers find it from any page.
        assert!(
            first.body.contains(
                "<link rel=\"alternate\" type=\"application/atom+xml\" href=\"/feed.atom\""
            )
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_bulk_dumps_equal_the_api_and_wget_fetches_the_manifest_with_its_checksums() {
    bounded(Duration::from_secs(180), async {
        let hub = portal_hub("web-bulk");
        let url = hub.portal_url().unwrap();
        seed(&hub).await;
        let api = json(&format!("{url}/api/datasets")).await;
        let datasets = api["datasets"].as_array().unwrap();

        // JSON: every dataset, its files' URLs and checksums the API's.
        let dump = json(&format!("{url}/catalogue.json")).await;
        assert_eq!(dump["count"], datasets.len());
        for (dumped, listed) in dump["datasets"].as_array().unwrap().iter().zip(datasets) {
            assert_eq!(dumped["id"], listed["id"]);
            assert_eq!(dumped["title"], listed["title"]);
            assert_eq!(dumped["version"], listed["version"]);
            let urls = |d: &serde_json::Value| {
                d["files"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|f| (f["url"].clone(), f["sha256"].clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(urls(dumped), urls(listed), "{}", listed["id"]);
            assert_eq!(dumped["checksums"], listed["checksums"]);
            assert!(dumped["quality"]["score"].as_u64().unwrap() > 200);
        }

        // CSV: a BOM, a header and a row per dataset, read by the csv crate.
        let response = http()
            .get(format!("{url}/catalogue.csv"))
            .send()
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "text/csv; charset=utf-8"
        );
        assert!(
            response.headers()["content-disposition"]
                .to_str()
                .unwrap()
                .contains("catalogue.csv")
        );
        let bytes = response.bytes().await.unwrap();
        assert!(bytes.starts_with("\u{feff}".as_bytes()));
        let mut reader = csv::Reader::from_reader(&bytes[3..]);
        let header: Vec<String> = reader
            .headers()
            .unwrap()
            .iter()
            .map(str::to_owned)
            .collect();
        assert_eq!(header[0], "id");
        let column = |name: &str| header.iter().position(|h| h == name).unwrap();
        let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
        assert_eq!(rows.len(), datasets.len());
        for (row, listed) in rows.iter().zip(datasets) {
            assert_eq!(row[column("id")], listed["id"]);
            assert_eq!(
                row[column("title")],
                listed["title"],
                "titles with HTML and quotes survive"
            );
            assert_eq!(row[column("department")], listed["organization"]["name"]);
            let csv_file = listed["files"]
                .as_array()
                .unwrap()
                .iter()
                .find(|f| f["format"] == "csv")
                .unwrap();
            assert_eq!(row[column("csv_url")], csv_file["url"]);
            assert_eq!(row[column("csv_sha256")], csv_file["sha256"]);
        }

        // The manifest: wget fetches every open file, and each version's SHA256SUMS checks them.
        let manifest = http()
            .get(format!("{url}/downloads.txt"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(
            !manifest.contains(CLINICS),
            "conditional files need a token: not in the manifest"
        );
        let open: Vec<&serde_json::Value> = datasets
            .iter()
            .filter(|d| d["openness"] == "unconditional")
            .collect();
        let files: usize = open
            .iter()
            .map(|d| d["files"].as_array().unwrap().len())
            .sum();
        assert_eq!(manifest.lines().count(), files + open.len());
        let dir = std::env::temp_dir().join(format!("govdc-wget-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("downloads.txt"), &manifest).unwrap();
        let wget = tokio::process::Command::new("wget")
            .args(["-q", "-x", "-nH", "-i", "downloads.txt"])
            .current_dir(&dir)
            .status()
            .await
            .unwrap_or_else(|e| panic!("running wget: {e} (apt-get install wget)"));
        assert!(wget.success(), "wget -i failed");
        for d in &open {
            let version_dir = dir.join(format!(
                "download/{}/{}",
                d["id"].as_str().unwrap(),
                d["version"]
            ));
            let check = std::process::Command::new("sha256sum")
                .args(["-c", "--strict", "SHA256SUMS"])
                .current_dir(&version_dir)
                .output()
                .unwrap();
            assert!(
                check.status.success(),
                "{}: {}",
                version_dir.display(),
                String::from_utf8_lossy(&check.stdout)
            );
        }
        // The downloads were counted, as any other: one per file.
        let bus = page(&format!("{url}/datasets/{BUS}"), &[]).await;
        let bus_files = datasets.iter().find(|d| d["id"] == BUS).unwrap()["files"]
            .as_array()
            .unwrap()
            .len();
        assert_eq!(downloads_shown(&bus.body), bus_files.to_string());
        let _ = std::fs::remove_dir_all(&dir);
    })
    .await;
}
