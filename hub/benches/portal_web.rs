//! The open-data website under load beside the JSON API answering the same question, on the
//! hub's release binary with many datasets (issue 16's target: p99 ≤ 50 ms and at least 0.8× the
//! API's rate), and the dataset page of a 1,000,000-row dataset (its preview reads ten rows).
//!
//! ```sh
//! cargo bench -p govdc-hub --bench portal_web                         # 10,000 datasets
//! cargo bench -p govdc-hub --bench portal_web -- --datasets 2000 --clients 8 --seconds 5
//! ```
//!
//! | website | API |
//! | --- | --- |
//! | `GET /` (HTML, five newest) | `package_search?rows=5` |
//! | `GET /datasets?q=…&category=…` | `package_search?q=…&fq=groups:…&rows=10` |
//! | `GET /datasets?category=…&sort=downloads` | `package_search?fq=groups:…&rows=10` |
//! | `GET /departments` (ranking) | `organization_list?all_fields=true` |
//! | `GET /datasets/{id}` (with its preview) | `package_show?id=…` |
//!
//! Each client loops over a fixed list of URLs for the given time; latency is per request. A
//! dataset page keeps the preview of each version it read, so in the loop only the first view of
//! each dataset reads its file.
#![allow(clippy::unwrap_used)]

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{DatasetMetadata, FileChunk, FileEnd, Openness, PublishDatasetRequest};
use govdc_test_support::hub::{HubOptions, HubProcess};
use sha2::Digest;

struct Args {
    datasets: usize,
    clients: usize,
    seconds: usize,
}

fn args() -> Args {
    let mut args = Args {
        datasets: 10_000,
        clients: 8,
        seconds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--datasets" => args.datasets = value().unwrap_or(args.datasets).max(1),
            "--clients" => args.clients = value().unwrap_or(args.clients).max(1),
            "--seconds" => args.seconds = value().unwrap_or(args.seconds).max(1),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    args
}

const CATEGORIES: &[&str] = &["transport", "health", "education", "credit", "weather"];
const WORDS: &[&str] = &["公交", "医院", "学校", "企业", "气象", "站点", "名录"];

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn metadata(i: usize, rows: i64) -> DatasetMetadata {
    DatasetMetadata {
        id: format!("bench-{}.dataset-{i}", i % 40),
        title: format!(
            "{}{}数据集 {i}",
            WORDS[i % WORDS.len()],
            WORDS[(i / 7) % WORDS.len()]
        ),
        description: format!("第 {i} 个基准数据集，{}。", WORDS[(i / 3) % WORDS.len()]),
        category: CATEGORIES[i % CATEGORIES.len()].to_owned(),
        openness: Openness::Unconditional as i32,
        license: "CC-BY-4.0".to_owned(),
        tags: vec![WORDS[i % WORDS.len()].to_owned(), format!("tag{}", i % 50)],
        organization_credit_code: format!("11330000{:09}K", i % 40),
        organization_name: format!("部门 {}", i % 40),
        version: 1,
        record_count: rows,
        content_sha256: format!("c{i}"),
        ..Default::default()
    }
}

async fn publish(
    client: &mut PortalClient<
        tonic::service::interceptor::InterceptedService<tonic::transport::Channel, BearerToken>,
    >,
    metadata: DatasetMetadata,
    csv: &[u8],
) {
    let part = |part| PublishDatasetRequest { part: Some(part) };
    let mut parts = vec![part(Part::Metadata(metadata))];
    for chunk in csv.chunks(256 * 1024) {
        parts.push(part(Part::Chunk(FileChunk {
            format: "csv".to_owned(),
            data: chunk.to_vec(),
        })));
    }
    parts.push(part(Part::End(FileEnd {
        format: "csv".to_owned(),
        sha256: sha256(csv),
        size: csv.len() as i64,
    })));
    client
        .publish_dataset(tokio_stream::iter(parts))
        .await
        .unwrap();
}

/// URLs to GET in turn, each with whether to ask for HTML.
type Urls = Vec<(String, bool)>;

struct Measured {
    p50: Duration,
    p99: Duration,
    per_second: f64,
    /// The hub's CPU time per request, microseconds (less sensitive to a loaded machine than
    /// the rates: it counts the work, not the waiting).
    cpu_us: f64,
}

/// `clients` clients each GET the `urls` in turn for `seconds`.
async fn load(urls: Arc<Urls>, clients: usize, seconds: usize, pid: u32) -> Measured {
    let ticks = cpu_ticks(pid);
    let started = Instant::now();
    let until = started + Duration::from_secs(seconds as u64);
    let tasks: Vec<_> = (0..clients)
        .map(|c| {
            let urls = urls.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut times = Vec::new();
                let mut n = c;
                while Instant::now() < until {
                    let (url, html) = &urls[n % urls.len()];
                    n += 1;
                    let t = Instant::now();
                    let mut request = http.get(url);
                    if *html {
                        request = request.header("Accept", "text/html");
                    }
                    let response = request.send().await.unwrap();
                    assert_eq!(response.status(), 200, "{url}");
                    response.bytes().await.unwrap();
                    times.push(t.elapsed());
                }
                times
            })
        })
        .collect();
    let mut times = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu_us = (cpu_ticks(pid) - ticks) as f64 * 10_000.0 / times.len().max(1) as f64;
    times.sort();
    let at = |q: f64| times[((times.len() as f64 * q) as usize).min(times.len() - 1)];
    Measured {
        p50: at(0.5),
        p99: at(0.99),
        per_second: times.len() as f64 / elapsed,
        cpu_us,
    }
}

/// The pid of the hub process serving `config` (found by its `--config` argument in /proc).
fn hub_pid(config: &Path) -> Option<u32> {
    let config = config.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.find_map(|entry| {
        let entry = entry.ok()?;
        let pid: u32 = entry.file_name().to_str()?.parse().ok()?;
        let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        (args.contains(&b"serve".as_slice()) && args.contains(&config.as_bytes())).then_some(pid)
    })
}

/// CPU time (user and system) the process has used, in clock ticks of 10 ms.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // After the command's parenthesised name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or_default();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(14) + field(15)
}

fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let args = args();
    let hub = HubProcess::start(
        Path::new(env!("CARGO_BIN_EXE_govdc-hub")),
        HubOptions::new("bench-web", "national", "extranet")
            .portal()
            .env("GOVDC_HUB_LOG", "warn"),
    )
    .unwrap();
    let base = hub.portal_url().unwrap();
    let pid = hub_pid(&hub.config_file).expect("the hub's process");
    let token = hub.token("admin", "operator").unwrap();
    let channel = tonic::transport::Endpoint::from_shared(hub.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let client = PortalClient::with_interceptor(channel, BearerToken::new(&token).unwrap());

    eprintln!("publishing {} datasets", args.datasets);
    let started = Instant::now();
    let small = gzip("编号,名称\n1,西湖\n2,钱塘\n");
    let publishers: Vec<_> = (0..8)
        .map(|p| {
            let (mut client, small) = (client.clone(), small.clone());
            let n = args.datasets;
            tokio::spawn(async move {
                for i in (p..n).step_by(8) {
                    publish(&mut client, metadata(i, 2), &small).await;
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    eprintln!("published in {:.1} s", started.elapsed().as_secs_f64());

    let ids: Vec<String> = (0..200)
        .map(|i| metadata(i * 37 % args.datasets, 0).id)
        .collect();
    let searches: Vec<(String, String)> = (0..20)
        .map(|i| {
            (
                WORDS[i % WORDS.len()].to_owned(),
                CATEGORIES[i % CATEGORIES.len()].to_owned(),
            )
        })
        .collect();
    let enc = |s: &str| form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
    let pairs: Vec<(&str, Urls, Urls)> = vec![
        (
            "home",
            vec![(format!("{base}/"), true)],
            vec![(format!("{base}/api/3/action/package_search?rows=5"), false)],
        ),
        (
            "search",
            searches
                .iter()
                .map(|(q, c)| (format!("{base}/datasets?q={}&category={c}", enc(q)), true))
                .collect(),
            searches
                .iter()
                .map(|(q, c)| {
                    (
                        format!(
                            "{base}/api/3/action/package_search?q={}&fq=groups:{c}&rows=10",
                            enc(q)
                        ),
                        false,
                    )
                })
                .collect(),
        ),
        (
            "search, most downloaded",
            searches
                .iter()
                .map(|(_, c)| (format!("{base}/datasets?category={c}&sort=downloads"), true))
                .collect(),
            searches
                .iter()
                .map(|(_, c)| {
                    (
                        format!("{base}/api/3/action/package_search?fq=groups:{c}&rows=10"),
                        false,
                    )
                })
                .collect(),
        ),
        (
            "departments",
            vec![(format!("{base}/departments"), true)],
            vec![(
                format!("{base}/api/3/action/organization_list?all_fields=true"),
                false,
            )],
        ),
        (
            "dataset",
            ids.iter()
                .map(|id| (format!("{base}/datasets/{id}"), true))
                .collect(),
            ids.iter()
                .map(|id| (format!("{base}/api/3/action/package_show?id={id}"), false))
                .collect(),
        ),
    ];
    // The first page after a change builds the catalogue's snapshot (decode, index, counts);
    // every later one reads it. Timed once here, then each row below starts warm.
    let cold = Instant::now();
    let first = reqwest::Client::new()
        .get(format!("{base}/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(first.status(), 200);
    first.bytes().await.unwrap();
    let cold = cold.elapsed();
    println!(
        "\n{} datasets, {} clients, {} s each (release hub on 127.0.0.1); the first page after \
         the last publish (building the catalogue snapshot) took {} ms\n",
        args.datasets,
        args.clients,
        args.seconds,
        ms(cold)
    );
    println!(
        "| page | p50 ms | p99 ms | pages/s | hub CPU µs/page | API p50 ms | API p99 ms | API req/s | hub CPU µs/req | pages/s ÷ API |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    for (name, web, api) in pairs {
        let w = load(Arc::new(web), args.clients, args.seconds, pid).await;
        let a = load(Arc::new(api), args.clients, args.seconds, pid).await;
        println!(
            "| {name} | {} | {} | {:.0} | {:.0} | {} | {} | {:.0} | {:.0} | {:.2} |",
            ms(w.p50),
            ms(w.p99),
            w.per_second,
            w.cpu_us,
            ms(a.p50),
            ms(a.p99),
            a.per_second,
            a.cpu_us,
            w.per_second / a.per_second
        );
    }

    // The preview of a million rows: ten are read, whatever the file holds.
    let mut client = client.clone();
    let mut big = String::from("编号,名称,数值\n");
    for i in 0..1_000_000 {
        big.push_str(&format!("{i},西湖区第{i}号观测点,{}\n", i % 97));
    }
    let big = gzip(&big);
    let mut meta = metadata(usize::MAX / 2, 1_000_000);
    meta.id = "bench.million".to_owned();
    publish(&mut client, meta, &big).await;
    // Its first view reads the file; later ones use the preview the page kept for the version.
    // The catalogue's snapshot is built again first (by the home page), so that the first view
    // times the file.
    let warm = reqwest::Client::new()
        .get(format!("{base}/"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(warm.status(), 200);
    warm.bytes().await.unwrap();
    let first = Instant::now();
    let response = reqwest::Client::new()
        .get(format!("{base}/datasets/bench.million"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.bytes().await.unwrap();
    let first = first.elapsed();
    let one = load(
        Arc::new(vec![(format!("{base}/datasets/bench.million"), true)]),
        1,
        2,
        pid,
    )
    .await;
    println!(
        "\ndataset page of a 1,000,000-row dataset ({:.1} MB gzip): first view (reading the file) \
         {} ms; then p50 {} ms, p99 {} ms (one client)",
        big.len() as f64 / 1e6,
        ms(first),
        ms(one.p50),
        ms(one.p99)
    );
}
