//! Download throughput of the open-data portal beside a floor measured in the same run: nginx
//! (Debian's package) serving the same file from a temp directory, on 127.0.0.1, with a
//! generated configuration (`sendfile on`, one worker, no access log).
//!
//! ```sh
//! cargo bench -p govdc-hub --bench portal                      # a 100 MB file, 5 rounds
//! cargo bench -p govdc-hub --bench portal -- --mb 100 --rounds 5 --concurrency 4
//! ```
//!
//! The hub is its release binary with the portal enabled; the file is published over gRPC like
//! the operator does, then downloaded over HTTP by a plain client (HTTP/1.1 over a TCP socket,
//! 1 MiB reads, bytes counted and thrown away) that is the same for both servers. Rounds
//! alternate between the two; the table shows the median and best MB/s of each and the ratio
//! portal / nginx (target ≥ 0.8×). Without nginx on the PATH the bench tries
//! `apt-get install -y nginx-light`, then `nginx`; when that fails it prints why and reports the
//! portal alone.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{DatasetMetadata, FileChunk, FileEnd, Openness, PublishDatasetRequest};
use govdc_test_support::hub::{HubOptions, HubProcess};
use govdc_test_support::{free_port, repo_root};
use sha2::Digest;

struct Args {
    mb: usize,
    rounds: usize,
    concurrency: usize,
}

fn args() -> Args {
    let mut args = Args {
        mb: 100,
        rounds: 5,
        concurrency: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut value = || it.next().and_then(|v| v.parse().ok());
        match arg.as_str() {
            "--mb" => args.mb = value().unwrap_or(args.mb),
            "--rounds" => args.rounds = value().unwrap_or(args.rounds),
            "--concurrency" => args.concurrency = value().unwrap_or(args.concurrency).max(1),
            // cargo bench passes --bench; anything else is ignored.
            _ => {}
        }
    }
    args
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `mb` MiB of incompressible bytes (like a gzip file) and returns their SHA-256.
fn write_file(path: &Path, mb: usize) -> String {
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    let mut hasher = sha2::Sha256::new();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut block = vec![0u8; 1 << 20];
    for _ in 0..mb {
        for chunk in block.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        hasher.update(&block);
        file.write_all(&block).unwrap();
    }
    file.flush().unwrap();
    hex(&hasher.finalize())
}

async fn publish(hub: &HubProcess, path: &Path, sha256: &str, size: u64) -> String {
    let token = hub.token("admin", "operator").unwrap();
    let channel = tonic::transport::Endpoint::from_shared(hub.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = PortalClient::with_interceptor(channel, BearerToken::new(&token).unwrap());
    let (sender, receiver) = tokio::sync::mpsc::channel(8);
    let (path, sha256) = (path.to_owned(), sha256.to_owned());
    let reader = tokio::task::spawn_blocking(move || {
        let send = |part| {
            sender
                .blocking_send(PublishDatasetRequest { part: Some(part) })
                .unwrap()
        };
        send(Part::Metadata(DatasetMetadata {
            id: "bench.download".to_owned(),
            title: "Benchmark file".to_owned(),
            openness: Openness::Unconditional as i32,
            license: "CC-BY-4.0".to_owned(),
            version: 1,
            content_sha256: sha256.clone(),
            ..Default::default()
        }));
        let mut file = std::fs::File::open(&path).unwrap();
        let mut buffer = vec![0u8; 256 * 1024];
        loop {
            let n = file.read(&mut buffer).unwrap();
            if n == 0 {
                break;
            }
            send(Part::Chunk(FileChunk {
                format: "csv".to_owned(),
                data: buffer[..n].to_vec(),
            }));
        }
        send(Part::End(FileEnd {
            format: "csv".to_owned(),
            sha256,
            size: size as i64,
        }));
    });
    let published = client
        .publish_dataset(tokio_stream::wrappers::ReceiverStream::new(receiver))
        .await
        .unwrap()
        .into_inner();
    reader.await.unwrap();
    published.files[0].path.clone()
}

/// GETs `path` from `address`; the body's length, and its SHA-256 when `hash`.
fn download(address: &str, path: &str, hash: bool) -> (u64, Option<String>) {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buffer = vec![0u8; 1 << 20];
    let mut head = Vec::new();
    let mut body = 0u64;
    let mut hasher = hash.then(sha2::Sha256::new);
    let mut in_body = false;
    loop {
        let n = stream.read(&mut buffer).unwrap();
        if n == 0 {
            break;
        }
        let mut data = &buffer[..n];
        if !in_body {
            head.extend_from_slice(data);
            let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
                continue;
            };
            let status = String::from_utf8_lossy(&head[..head.len().min(12)]).to_string();
            assert!(status.contains(" 200"), "GET {path}: {status}");
            let consumed = n - (head.len() - end - 4);
            data = &buffer[consumed..n];
            in_body = true;
        }
        body += data.len() as u64;
        if let Some(h) = &mut hasher {
            h.update(data);
        }
    }
    (body, hasher.map(|h| hex(&h.finalize())))
}

/// Seconds for `concurrency` clients to each download the file once.
fn round(address: &str, path: &str, size: u64, concurrency: usize) -> f64 {
    let started = Instant::now();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency)
            .map(|_| scope.spawn(|| download(address, path, false).0))
            .collect();
        for handle in handles {
            assert_eq!(handle.join().unwrap(), size, "a short download");
        }
    });
    started.elapsed().as_secs_f64()
}

struct Nginx {
    child: Child,
    address: String,
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_nginx() -> Option<PathBuf> {
    let candidates = ["nginx", "/usr/sbin/nginx", "/usr/local/sbin/nginx"];
    candidates.iter().map(PathBuf::from).find(|c| {
        Command::new(c)
            .arg("-v")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

fn nginx_binary() -> Result<PathBuf, String> {
    if let Some(found) = find_nginx() {
        return Ok(found);
    }
    eprintln!("nginx is not installed; trying apt-get install -y nginx-light (then nginx)");
    for package in ["nginx-light", "nginx"] {
        let installed = Command::new("apt-get")
            .args(["install", "-y", "-q", package])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdout(Stdio::null())
            .status();
        if installed.is_ok_and(|s| s.success())
            && let Some(found) = find_nginx()
        {
            return Ok(found);
        }
    }
    Err(
        "nginx is not installed and apt-get install -y nginx-light / nginx failed \
         (not root, or no package source); install it to measure the floor"
            .to_owned(),
    )
}

fn start_nginx(binary: &Path, dir: &Path, file: &Path) -> Result<Nginx, String> {
    let www = dir.join("www/download/bench.download/1");
    std::fs::create_dir_all(&www).map_err(|e| e.to_string())?;
    std::fs::create_dir_all(dir.join("temp")).map_err(|e| e.to_string())?;
    let served = www.join("data.csv.gz");
    if std::fs::hard_link(file, &served).is_err() {
        std::fs::copy(file, &served).map_err(|e| e.to_string())?;
    }
    let port = free_port();
    let address = format!("127.0.0.1:{port}");
    let temp = dir.join("temp");
    let config = format!(
        "daemon off;\n\
         worker_processes 1;\n\
         pid {pid};\n\
         error_log {log} warn;\n\
         events {{ worker_connections 256; }}\n\
         http {{\n\
           access_log off;\n\
           sendfile on;\n\
           tcp_nopush on;\n\
           types {{ application/gzip gz; }}\n\
           client_body_temp_path {temp}/body;\n\
           proxy_temp_path {temp}/proxy;\n\
           fastcgi_temp_path {temp}/fastcgi;\n\
           uwsgi_temp_path {temp}/uwsgi;\n\
           scgi_temp_path {temp}/scgi;\n\
           server {{ listen {address}; root {root}; }}\n\
         }}\n",
        pid = dir.join("nginx.pid").display(),
        log = dir.join("error.log").display(),
        temp = temp.display(),
        root = dir.join("www").display(),
    );
    // As root, nginx's workers drop to `nobody`, who may not traverse target/: run them as the
    // current user (the directive is ignored, with a notice, when not root).
    let config = if is_root() {
        format!("user root;\n{config}")
    } else {
        config
    };
    let config_file = dir.join("nginx.conf");
    std::fs::write(&config_file, config).map_err(|e| e.to_string())?;
    let child = Command::new(binary)
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&config_file)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("starting nginx: {e}"))?;
    let nginx = Nginx { child, address };
    let started = Instant::now();
    while TcpStream::connect(&nginx.address).is_err() {
        if started.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "nginx did not listen on {} within 10 s; its log: {}",
                nginx.address,
                std::fs::read_to_string(dir.join("error.log")).unwrap_or_default()
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(nginx)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn resident_mib(hub: &HubProcess) -> Option<f64> {
    let (_, metrics) = hub.get("/metrics")?;
    let line = metrics
        .lines()
        .find(|l| l.starts_with("process_resident_memory_bytes "))?;
    let bytes: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(bytes / (1024.0 * 1024.0))
}

#[tokio::main]
async fn main() {
    let args = args();
    let dir = repo_root()
        .join("target/tmp")
        .join(format!("portal-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("file.gz");
    eprintln!("writing a {} MiB file", args.mb);
    let sha256 = write_file(&file, args.mb);
    let size = std::fs::metadata(&file).unwrap().len();

    let hub = HubProcess::start(
        Path::new(env!("CARGO_BIN_EXE_govdc-hub")),
        HubOptions::new("bench-portal", "national", "extranet")
            .portal()
            .env("GOVDC_HUB_LOG", "warn"),
    )
    .unwrap();
    eprintln!("publishing it to the portal");
    let path = publish(&hub, &file, &sha256, size).await;
    let portal = hub
        .portal_url()
        .unwrap()
        .trim_start_matches("http://")
        .to_owned();
    let rss_before = resident_mib(&hub);

    let nginx =
        match nginx_binary().and_then(|binary| start_nginx(&binary, &dir.join("nginx"), &file)) {
            Ok(nginx) => Some(nginx),
            Err(why) => {
                eprintln!("no floor: {why}");
                None
            }
        };

    // Correctness first, outside the timing: both serve the same bytes.
    let (bytes, digest) = download(&portal, &path, true);
    assert_eq!((bytes, digest.as_deref()), (size, Some(sha256.as_str())));
    if let Some(nginx) = &nginx {
        let (bytes, digest) = download(&nginx.address, &path, true);
        assert_eq!((bytes, digest.as_deref()), (size, Some(sha256.as_str())));
    }

    let (address, path2) = (portal.clone(), path.clone());
    let concurrency = args.concurrency;
    let rounds = args.rounds;
    let nginx_address = nginx.as_ref().map(|n| n.address.clone());
    let (portal_times, nginx_times) = tokio::task::spawn_blocking(move || {
        let (mut p, mut n) = (Vec::new(), Vec::new());
        // One warm-up each (page cache, connections), then alternate.
        round(&address, &path2, size, concurrency);
        if let Some(a) = &nginx_address {
            round(a, &path2, size, concurrency);
        }
        for _ in 0..rounds {
            p.push(round(&address, &path2, size, concurrency));
            if let Some(a) = &nginx_address {
                n.push(round(a, &path2, size, concurrency));
            }
        }
        (p, n)
    })
    .await
    .unwrap();
    let rss_after = resident_mib(&hub);

    let mb = (size as f64 * concurrency as f64) / 1e6;
    let rates = |times: &[f64]| -> (f64, f64) {
        let mut rates: Vec<f64> = times.iter().map(|t| mb / t).collect();
        let best = rates.iter().copied().fold(0.0, f64::max);
        (median(&mut rates), best)
    };
    let (portal_median, portal_best) = rates(&portal_times);
    println!();
    println!(
        "download of a {:.0} MB file, {} client(s) at once, {} rounds (after one warm-up)",
        size as f64 / 1e6,
        concurrency,
        rounds
    );
    println!();
    println!("| server | median MB/s | best MB/s | ratio (median) |");
    println!("| --- | ---: | ---: | ---: |");
    if nginx_times.is_empty() {
        println!("| portal (govdc-hub) | {portal_median:.0} | {portal_best:.0} | no floor |");
    } else {
        let (nginx_median, nginx_best) = rates(&nginx_times);
        let ratio = portal_median / nginx_median;
        println!("| nginx (sendfile) | {nginx_median:.0} | {nginx_best:.0} | 1.00 |");
        println!(
            "| portal (govdc-hub) | {portal_median:.0} | {portal_best:.0} | {ratio:.2} {} |",
            if ratio >= 0.8 {
                "(target ≥ 0.8: met)"
            } else {
                "(target ≥ 0.8: MISSED)"
            }
        );
    }
    if let (Some(before), Some(after)) = (rss_before, rss_after) {
        println!();
        println!("hub resident memory: {before:.1} MiB before the downloads, {after:.1} MiB after");
    }
    drop(nginx);
    drop(hub);
    let _ = std::fs::remove_dir_all(&dir);
}
