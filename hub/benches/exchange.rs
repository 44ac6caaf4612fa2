//! Exchange throughput and latency: records per second and publish -> fetch latency (p50, p99)
//! at several batch sizes, for the real hub (its release binary, its SQLite store with
//! `synchronous=FULL`, tokens, grants, audit records and acknowledgements) beside a floor
//! measured in the same run: a bare tonic server of the same Exchange API that relays each
//! published batch straight to the fetch stream (no auth, no storage), also in a process of its
//! own.
//!
//! ```sh
//! cargo bench -p govdc-hub --bench exchange            # batch sizes 1, 100, 1000, 3 rounds
//! cargo bench -p govdc-hub --bench exchange -- --seconds 5 --batches 1,10,100,1000 --rounds 5
//! cargo bench -p govdc-hub --bench exchange -- --hub-bin /tmp/govdc-hub-before   # another build
//! ```
//!
//! One publisher stream keeps up to `--window` batches unacknowledged (default 32); one consumer
//! follows the resource and acknowledges as it goes (coalesced). Each record is ~200 bytes and
//! carries the time it was sent, so the consumer measures latency from publish to fetch. Each
//! run stops after `--seconds` (default 6) or its record budget, whichever comes first.
//!
//! The machine is shared and its load moves, so the floor and the hub run alternately,
//! `--rounds` times each (default 3), and the summary gives the median of the rounds' ratios
//! with their range: one noisy round cannot decide the verdict. Each round also prints the CPU
//! time per record of the floor's process and the hub's (its store writer and checkpoint
//! threads apart), read from /proc: a loaded machine disturbs it less than it disturbs a rate.
#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use futures::{Stream, StreamExt};
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::exchange_client::ExchangeClient;
use govdc_hub_api::v1::exchange_server::{Exchange, ExchangeServer};
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::{
    AccessGrant, AckRequest, AckResponse, DecideAccessRequest, FetchRequest, FetchResponse,
    JoinRequest, ListGrantsRequest, ListGrantsResponse, PublishRequest, PublishResponse, Record,
    RegisterResourceRequest, RequestAccessRequest, Resource, ShareType,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tokio::sync::{broadcast, mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

/// Batches in flight on the publish stream, unless `--window` says otherwise.
const WINDOW: usize = 32;
/// Rounds of bare and hub runs per batch size, unless `--rounds` says otherwise.
const ROUNDS: usize = 3;
const RECORD_BYTES: usize = 200;

// ---------------------------------------------------------------------------------------------
// The floor: a bare tonic server of the same API.

#[derive(Clone)]
struct Bare {
    records: broadcast::Sender<Arc<Vec<Record>>>,
    next: Arc<AtomicI64>,
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Exchange for Bare {
    async fn request_access(
        &self,
        _: Request<RequestAccessRequest>,
    ) -> Result<Response<AccessGrant>, Status> {
        Err(Status::unimplemented("bare"))
    }
    async fn decide_access(
        &self,
        _: Request<DecideAccessRequest>,
    ) -> Result<Response<AccessGrant>, Status> {
        Err(Status::unimplemented("bare"))
    }
    async fn list_grants(
        &self,
        _: Request<ListGrantsRequest>,
    ) -> Result<Response<ListGrantsResponse>, Status> {
        Err(Status::unimplemented("bare"))
    }

    type PublishStream = BoxStream<PublishResponse>;

    async fn publish(
        &self,
        request: Request<Streaming<PublishRequest>>,
    ) -> Result<Response<Self::PublishStream>, Status> {
        let mut inbound = request.into_inner();
        let (tx, rx) = mpsc::channel(256);
        let bare = self.clone();
        tokio::spawn(async move {
            while let Some(Ok(batch)) = inbound.next().await {
                let n = batch.records.len() as i64;
                let first = bare.next.fetch_add(n, Ordering::SeqCst) + 1;
                let records = batch
                    .records
                    .into_iter()
                    .enumerate()
                    .map(|(i, data)| Record {
                        offset: first + i as i64,
                        data,
                    })
                    .collect();
                let _ = bare.records.send(Arc::new(records));
                let ack = PublishResponse {
                    first_offset: first,
                    last_offset: first + n - 1,
                };
                if tx.send(Ok(ack)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    type FetchStream = BoxStream<FetchResponse>;

    async fn fetch(&self, _: Request<FetchRequest>) -> Result<Response<Self::FetchStream>, Status> {
        let mut records = self.records.subscribe();
        let (tx, rx) = mpsc::channel(4);
        tokio::spawn(async move {
            while let Ok(batch) = records.recv().await {
                let response = FetchResponse {
                    records: batch.as_ref().clone(),
                };
                if tx.send(Ok(response)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn ack(&self, request: Request<AckRequest>) -> Result<Response<AckResponse>, Status> {
        Ok(Response::new(AckResponse {
            acked_offset: request.into_inner().offset,
        }))
    }
}

async fn serve_bare() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    println!("{}", listener.local_addr().unwrap().port());
    let bare = Bare {
        records: broadcast::channel(1 << 16).0,
        next: Arc::default(),
    };
    tonic::transport::Server::builder()
        .add_service(ExchangeServer::new(bare).max_decoding_message_size(16 << 20))
        .serve_with_incoming(
            tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true)),
        )
        .await
        .unwrap();
}

// ---------------------------------------------------------------------------------------------
// The load.

#[derive(Clone)]
struct Token(Option<BearerToken>);

impl Interceptor for Token {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match &mut self.0 {
            Some(token) => token.call(request),
            None => Ok(request),
        }
    }
}

/// The shape of one run.
#[derive(Clone, Copy)]
struct Load {
    /// Records per published batch.
    batch: usize,
    /// Most records to publish.
    budget: usize,
    /// Longest the publisher publishes.
    limit: Duration,
    /// Batches in flight.
    window: usize,
}

struct Outcome {
    records: usize,
    seconds: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn record(sent_nanos: u64, n: usize) -> Vec<u8> {
    let mut data = sent_nanos.to_be_bytes().to_vec();
    let filler = format!(
        r#"{{"seq":{n},"company":"杭州某某科技有限公司","region":"330100","capital":1000000,"founded":"2015-06-01"}}"#
    );
    data.extend_from_slice(filler.as_bytes());
    data.resize(RECORD_BYTES, b' ');
    data
}

async fn run_load(
    channel: Channel,
    publisher: Token,
    consumer: Token,
    code: &str,
    load: Load,
) -> Outcome {
    let Load {
        batch,
        budget,
        limit,
        window,
    } = load;
    let epoch = Instant::now();
    let mut fetch_client = ExchangeClient::with_interceptor(channel.clone(), consumer.clone());
    let mut fetched = fetch_client
        .fetch(FetchRequest {
            resource_code: code.to_owned(),
            max_records: 0,
            batch_size: 10_000,
            follow: true,
            from_start: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();

    // Acknowledgements, coalesced: the consumer's cursor follows the latest offset received.
    let (acked_tx, mut acked_rx) = watch::channel(0i64);
    let ack_code = code.to_owned();
    let mut ack_client = ExchangeClient::with_interceptor(channel.clone(), consumer);
    let acker = tokio::spawn(async move {
        while acked_rx.changed().await.is_ok() {
            let offset = *acked_rx.borrow_and_update();
            let _ = ack_client
                .ack(AckRequest {
                    resource_code: ack_code.clone(),
                    offset,
                })
                .await;
        }
    });

    let started = Instant::now();
    let deadline = started + limit;
    let (tx, rx) = mpsc::channel::<PublishRequest>(window);
    let mut publish_client = ExchangeClient::with_interceptor(channel, publisher);
    let mut acks = publish_client
        .publish(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let code_owned = code.to_owned();
    let producer = tokio::spawn(async move {
        let mut in_flight: VecDeque<usize> = VecDeque::new();
        let mut sent = 0;
        loop {
            while in_flight.len() < window && sent < budget && Instant::now() < deadline {
                let now = epoch.elapsed().as_nanos() as u64;
                let records = (0..batch).map(|i| record(now, sent + i)).collect();
                if tx
                    .send(PublishRequest {
                        resource_code: code_owned.clone(),
                        records,
                    })
                    .await
                    .is_err()
                {
                    return sent;
                }
                in_flight.push_back(batch);
                sent += batch;
            }
            if in_flight.is_empty() {
                return sent;
            }
            match acks.message().await {
                Ok(Some(_)) => {
                    in_flight.pop_front();
                }
                _ => return sent,
            }
        }
    });

    let mut latencies = Vec::new();
    let mut received = 0usize;
    let mut last = started;
    let mut producer = producer;
    let mut sent: Option<usize> = None;
    let hard_stop = tokio::time::Instant::from_std(deadline + Duration::from_secs(30));
    loop {
        if sent.is_some_and(|sent| received >= sent) {
            break;
        }
        tokio::select! {
            count = &mut producer, if sent.is_none() => sent = Some(count.unwrap_or_default()),
            message = fetched.message() => {
                let Ok(Some(response)) = message else { break };
                let now = epoch.elapsed().as_nanos() as u64;
                for r in &response.records {
                    let mut stamp = [0u8; 8];
                    stamp.copy_from_slice(&r.data[..8]);
                    latencies.push(now.saturating_sub(u64::from_be_bytes(stamp)));
                }
                received += response.records.len();
                last = Instant::now();
                if let Some(r) = response.records.last() {
                    let _ = acked_tx.send(r.offset);
                }
            }
            _ = tokio::time::sleep_until(hard_stop) => break,
        }
    }
    assert_eq!(Some(received), sent, "every published record fetched");
    drop(acked_tx);
    let _ = acker.await;
    latencies.sort_unstable();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|n| *n as f64 / 1e6)
            .unwrap_or_default()
    };
    Outcome {
        records: received,
        seconds: (last - started).as_secs_f64(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    }
}

/// The command line.
struct Args {
    batches: Vec<usize>,
    limit: Duration,
    window: usize,
    rounds: usize,
    serve_bare: bool,
    /// The hub binary (another build, to compare two in the same conditions).
    hub_bin: std::path::PathBuf,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().collect();
    let mut parsed = Args {
        batches: vec![1, 100, 1000],
        limit: Duration::from_secs(6),
        window: WINDOW,
        rounds: ROUNDS,
        serve_bare: false,
        hub_bin: env!("CARGO_BIN_EXE_govdc-hub").into(),
    };
    let mut i = 1;
    while i < args.len() {
        match args[i].as_str() {
            "--batches" => {
                parsed.batches = args[i + 1].split(',').map(|b| b.parse().unwrap()).collect();
                i += 1;
            }
            "--seconds" => {
                parsed.limit = Duration::from_secs_f64(args[i + 1].parse().unwrap());
                i += 1;
            }
            "--window" => {
                parsed.window = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--rounds" => {
                parsed.rounds = args[i + 1].parse().unwrap();
                i += 1;
            }
            "--hub-bin" => {
                parsed.hub_bin = args[i + 1].clone().into();
                i += 1;
            }
            "--serve-bare" => parsed.serve_bare = true,
            _ => {}
        }
        i += 1;
    }
    parsed
}

fn main() {
    let args = parse_args();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    if args.serve_bare {
        runtime.block_on(serve_bare());
        return;
    }
    runtime.block_on(bench(args));
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    if n == 0 {
        0.0
    } else if n % 2 == 1 {
        values[n / 2]
    } else {
        (values[n / 2 - 1] + values[n / 2]) / 2.0
    }
}

async fn bench(args: Args) {
    let Args {
        batches,
        limit,
        window,
        rounds,
        hub_bin,
        ..
    } = args;
    // The floor, in a process of its own like the hub.
    let mut bare_process = std::process::Command::new(std::env::current_exe().unwrap())
        .arg("--serve-bare")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let port = {
        use std::io::BufRead;
        let mut line = String::new();
        std::io::BufReader::new(bare_process.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        line.trim().to_owned()
    };
    let bare = Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();

    let hub = HubProcess::start(
        &hub_bin,
        HubOptions::new("national", "national", "extranet").env("GOVDC_HUB_LOG", "warn"),
    )
    .unwrap();
    let bare_pid = bare_process.id();
    let hub_pid = hub.pid().unwrap();
    let channel = Endpoint::from_shared(hub.endpoint())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let token = |role: &str, subject: &str| {
        Token(Some(
            BearerToken::new(&hub.token(role, subject).unwrap()).unwrap(),
        ))
    };
    let (provider, consumer) = ("91330100000000001X", "91330100000000002X");
    // Valid GB 32100 check characters for the two codes above.
    let provider = fix_check(provider);
    let consumer = fix_check(consumer);
    let mut membership =
        MembershipClient::with_interceptor(channel.clone(), token("admin", "operator"));
    for code in [&provider, &consumer] {
        membership
            .join(JoinRequest {
                credit_code: code.clone(),
                name: "bench".to_owned(),
            })
            .await
            .unwrap();
    }
    let (publisher, reader) = (token("member", &provider), token("member", &consumer));

    println!(
        "\nexchange benchmark: one publisher ({window} batches in flight), one following consumer, {RECORD_BYTES}-byte records, up to {:.0} s per run; {rounds} rounds, bare and hub alternating\n",
        limit.as_secs_f64()
    );
    println!(
        "| batch | round | server | records | records/s | p50 publish->fetch | p99 publish->fetch | hub / bare |"
    );
    println!("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    let rate = |o: &Outcome| o.records as f64 / o.seconds.max(1e-9);
    let mut summary = Vec::new();
    for &batch in &batches {
        let budget = (batch * 5_000).clamp(100_000, 500_000);
        let load = Load {
            batch,
            budget,
            limit,
            window,
        };
        // Per round: the floor, the hub, and each one's CPU time per record in us.
        let mut runs: Vec<(Outcome, Outcome, f64, f64)> = Vec::new();
        for round in 1..=rounds {
            let (sync_p50, sync_p99) = fsync_latency(&hub.data_dir);
            println!(
                "| {batch} | {round} | (disk) | fdatasync of 4 KiB in the hub's data directory: p50 {sync_p50:.3} ms, p99 {sync_p99:.3} ms | | | | |"
            );
            let bare_cpu = Cpu::of(bare_pid);
            let floor = run_load(bare.clone(), Token(None), Token(None), "bare", load).await;
            let bare_cpu = Cpu::of(bare_pid).since(&bare_cpu);
            // A resource of its own per round: each hub run starts at offset 1.
            let code = format!("{provider}-b{batch}-r{round}");
            govdc_hub_api::v1::catalog_client::CatalogClient::with_interceptor(
                channel.clone(),
                publisher.clone(),
            )
            .register_resource(RegisterResourceRequest {
                resource: Some(Resource {
                    code: code.clone(),
                    name: "bench".to_owned(),
                    share_type: ShareType::Unconditional as i32,
                    ..Default::default()
                }),
            })
            .await
            .unwrap();
            ExchangeClient::with_interceptor(channel.clone(), reader.clone())
                .request_access(RequestAccessRequest {
                    resource_code: code.clone(),
                    purpose: "bench".to_owned(),
                })
                .await
                .unwrap();
            let hub_cpu = Cpu::of(hub_pid);
            let measured = run_load(
                channel.clone(),
                publisher.clone(),
                reader.clone(),
                &code,
                load,
            )
            .await;
            let hub_cpu = Cpu::of(hub_pid).since(&hub_cpu);
            let per_record = |s: f64, o: &Outcome| s * 1e6 / o.records.max(1) as f64;
            println!(
                "| {batch} | {round} | (cpu) | bare {:.2} us/record; hub {:.2} us/record: writer {:.2}, checkpoints {:.2}, the rest (gRPC, runtime) {:.2} | | | | |",
                per_record(bare_cpu.total, &floor),
                per_record(hub_cpu.total, &measured),
                per_record(hub_cpu.writer, &measured),
                per_record(hub_cpu.checkpoint, &measured),
                per_record(
                    hub_cpu.total - hub_cpu.writer - hub_cpu.checkpoint,
                    &measured
                ),
            );
            for (name, o) in [("bare tonic", &floor), ("govdc-hub", &measured)] {
                let ratio = if name == "govdc-hub" {
                    format!("{:.2}x", rate(&measured) / rate(&floor))
                } else {
                    String::new()
                };
                println!(
                    "| {batch} | {round} | {name} | {} | {:.0} | {:.2} ms | {:.2} ms | {ratio} |",
                    o.records,
                    rate(o),
                    o.p50_ms,
                    o.p99_ms
                );
            }
            let cpu = (
                per_record(bare_cpu.total, &floor),
                per_record(hub_cpu.total, &measured),
            );
            runs.push((floor, measured, cpu.0, cpu.1));
        }
        summary.push((batch, runs));
    }
    println!(
        "\nmedians over the rounds (the ratio is each round's hub / bare, its median and range):\n"
    );
    println!(
        "| batch | bare records/s | hub records/s | hub / bare (min-max) | bare p99 publish->fetch | hub p99 publish->fetch | CPU per record, bare / hub |"
    );
    println!("| ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (batch, runs) in &summary {
        let mut ratios: Vec<f64> = runs.iter().map(|(f, h, ..)| rate(h) / rate(f)).collect();
        let (low, high) = ratios
            .iter()
            .fold((f64::MAX, f64::MIN), |(l, h), r| (l.min(*r), h.max(*r)));
        let ratio = median(&mut ratios);
        let mut floor_rates: Vec<f64> = runs.iter().map(|(f, ..)| rate(f)).collect();
        let mut hub_rates: Vec<f64> = runs.iter().map(|(_, h, ..)| rate(h)).collect();
        let mut floor_p99: Vec<f64> = runs.iter().map(|(f, ..)| f.p99_ms).collect();
        let mut hub_p99: Vec<f64> = runs.iter().map(|(_, h, ..)| h.p99_ms).collect();
        let mut floor_cpu: Vec<f64> = runs.iter().map(|(_, _, f, _)| *f).collect();
        let mut hub_cpu: Vec<f64> = runs.iter().map(|(_, _, _, h)| *h).collect();
        println!(
            "| {batch} | {:.0} | {:.0} | {ratio:.2}x ({low:.2}-{high:.2}) | {:.2} ms | {:.2} ms | {:.2} / {:.2} us |",
            median(&mut floor_rates),
            median(&mut hub_rates),
            median(&mut floor_p99),
            median(&mut hub_p99),
            median(&mut floor_cpu),
            median(&mut hub_cpu),
        );
    }
    println!("\ntarget: govdc-hub at least 0.6x the bare server's records/s at every batch size");
    // The hub's store holds every record of every run: not kept.
    let dir = hub.dir.clone();
    drop(hub);
    let _ = std::fs::remove_dir_all(dir);
    let _ = bare_process.kill();
    let _ = bare_process.wait();
}

/// The disk's commit latency, which bounds the hub and not the floor: p50 and p99 in ms of
/// 100 writes of 4 KiB, each followed by `fdatasync`, in `dir`. A publisher with `window`
/// batches in flight gets at most `window` batches acknowledged per commit.
fn fsync_latency(dir: &std::path::Path) -> (f64, f64) {
    use std::io::{Seek, Write};
    let path = dir.join("fsync-probe");
    let mut file = std::fs::File::create(&path).unwrap();
    let mut times: Vec<f64> = (0..100)
        .map(|i| {
            file.seek(std::io::SeekFrom::Start((i % 16) * 4096))
                .unwrap();
            file.write_all(&[i as u8; 4096]).unwrap();
            let started = Instant::now();
            file.sync_data().unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    drop(file);
    let _ = std::fs::remove_file(path);
    times.sort_by(f64::total_cmp);
    (times[50], times[99])
}

/// CPU time a process used, in seconds: all its threads (ended ones too, from
/// `/proc/<pid>/stat`, in clock ticks of 10 ms), and the store's writer and checkpoint threads
/// (from their `schedstat`, in ns). Read from /proc, it is less disturbed by a loaded machine
/// than a rate is.
struct Cpu {
    total: f64,
    writer: f64,
    checkpoint: f64,
}

impl Cpu {
    fn of(pid: u32) -> Cpu {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
        // After the command's name in parentheses: state is field 3, utime 14 and stime 15.
        let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        let mut cpu = Cpu {
            total: ticks / 100.0,
            writer: 0.0,
            checkpoint: 0.0,
        };
        for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
            let dir = task.unwrap().path();
            let (Ok(comm), Ok(schedstat)) = (
                std::fs::read_to_string(dir.join("comm")),
                std::fs::read_to_string(dir.join("schedstat")),
            ) else {
                continue;
            };
            let seconds = schedstat
                .split(' ')
                .next()
                .and_then(|ns| ns.parse::<f64>().ok())
                .unwrap_or_default()
                / 1e9;
            match comm.trim() {
                "govdc-hub-write" => cpu.writer += seconds,
                "govdc-hub-check" => cpu.checkpoint += seconds,
                _ => {}
            }
        }
        cpu
    }

    fn since(&self, before: &Cpu) -> Cpu {
        Cpu {
            total: self.total - before.total,
            writer: self.writer - before.writer,
            checkpoint: self.checkpoint - before.checkpoint,
        }
    }
}

/// `code` with its GB 32100 check character recomputed.
fn fix_check(code: &str) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let body = &code[..17];
    let sum: usize = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| ALPHABET.iter().position(|a| *a == b).unwrap() * w)
        .sum();
    format!("{body}{}", ALPHABET[(31 - sum % 31) % 31] as char)
}
