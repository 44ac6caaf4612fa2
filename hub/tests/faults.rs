//! The hub under faults, on the real hub process and its real store (issue 17):
//!
//! - SIGKILL at seeded moments of a portal `PublishDataset` of a large file (mid-upload and
//!   mid-replace) and of an `ImportState`: after the restart the previous version is served
//!   whole (or the new one, when its publish had committed), staging and scratch files are
//!   gone, the version directories on disk are exactly the catalogue's, and an import replaced
//!   all of the state (with its audit record) or none of it.
//! - A flipped byte in the store (a b-tree page's header, the file header) or a truncated
//!   published file at start-up: the hub exits non-zero with a message naming the file and the
//!   check, and starts again once the store is good.
//! - A full disk (a tmpfs of the test's own under the hub's data directory): exchange commits
//!   and portal publishes fail with RESOURCE_EXHAUSTED, the hub stays up, every acknowledged
//!   record is still there, and publishing works again once space is freed, without a restart.
//!
//! Random choices are seeded (`FAULTS_SEED`, printed); rounds: `FAULTS_ROUNDS` (default 4).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{
    DatasetMetadata, ExportStateRequest, FileChunk, FileEnd, ImportStateChunk,
    ListAuditRecordsRequest, ListDatasetsRequest, ListMembersRequest, Openness,
    PublishDatasetRequest, PublishedDataset, RequestAccessRequest, ShareType, StateChunk,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use govdc_test_support::seeded::{Seeded, env_number, seed};
use sha2::Digest;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Portal = PortalClient<InterceptedService<Channel, BearerToken>>;

const ORG: &str = "11330000002482118K";
const CHUNK: usize = 256 * 1024;

fn rounds() -> u64 {
    env_number("FAULTS_ROUNDS", 4)
}

fn portal_client(hub: &HubProcess) -> Portal {
    let token = hub.token("admin", "operator").unwrap();
    PortalClient::with_interceptor(channel(hub), BearerToken::new(&token).unwrap())
        .max_decoding_message_size(64 << 20)
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Bytes that do not compress (like the gzip files the portal serves), from `seed`.
fn content(seed: u64, len: usize) -> Vec<u8> {
    let mut random = Seeded::new(seed);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        out.extend_from_slice(&random.bits().to_le_bytes());
    }
    out.truncate(len);
    out
}

/// The messages of a one-file (csv) upload of `version`.
fn upload(id: &str, version: i64, csv: &[u8]) -> Vec<PublishDatasetRequest> {
    let part = |part| PublishDatasetRequest { part: Some(part) };
    let metadata = DatasetMetadata {
        id: id.to_owned(),
        title: format!("Faults dataset {id}"),
        description: "Bytes for the fault tests.".to_owned(),
        category: "health".to_owned(),
        openness: Openness::Unconditional as i32,
        license: "CC-BY-4.0".to_owned(),
        organization_credit_code: ORG.to_owned(),
        organization_name: "Zhejiang Health Commission".to_owned(),
        version,
        record_count: 1000,
        content_sha256: sha256(csv),
        ..Default::default()
    };
    let mut parts = vec![part(Part::Metadata(metadata))];
    for chunk in csv.chunks(CHUNK) {
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
    parts
}

async fn publish_dataset(
    portal: &mut Portal,
    parts: Vec<PublishDatasetRequest>,
) -> Result<PublishedDataset, tonic::Status> {
    portal
        .publish_dataset(tokio_stream::iter(parts))
        .await
        .map(|r| r.into_inner())
}

async fn listed(portal: &mut Portal) -> Vec<PublishedDataset> {
    portal
        .list_datasets(ListDatasetsRequest {})
        .await
        .unwrap()
        .into_inner()
        .datasets
}

async fn download(hub: &HubProcess, path: &str) -> (u16, Vec<u8>) {
    let url = format!("{}{path}", hub.portal_url().unwrap());
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(&url)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.bytes().await.unwrap().to_vec())
}

/// The names in `dir` (none when it does not exist).
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// Scratch files of exports and imports, and journals of them, in a data directory.
fn scratch_files(data_dir: &Path) -> Vec<String> {
    names(data_dir)
        .into_iter()
        .filter(|n| n.contains(".tmp"))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_mid_upload_or_mid_replace_leaves_the_previous_version_served_whole() {
    bounded(Duration::from_secs(420), async {
        let seed = seed("FAULTS_SEED");
        let mut random = Seeded::new(seed);
        let mut hub = HubProcess::start(
            &bin(),
            HubOptions::new("faults-publish", "provincial", "extranet").portal(),
        )
        .unwrap();
        let id = "faults.big";
        let size = 24 << 20;
        let mut portal = portal_client(&hub);
        // Version 1, and how long a whole publish's tail takes (last message to answer): the
        // kills "mid-replace" fall inside it.
        let csv1 = content(seed ^ 1, size);
        let tail = {
            let (sender, receiver) = mpsc::channel::<PublishDatasetRequest>(2);
            let mut uploader = portal.clone();
            let call = tokio::spawn(async move {
                let result = uploader
                    .publish_dataset(ReceiverStream::new(receiver))
                    .await;
                (result, Instant::now())
            });
            for p in upload(id, 1, &csv1) {
                sender.send(p).await.unwrap();
            }
            let last_sent = Instant::now();
            drop(sender);
            let (result, answered) = call.await.unwrap();
            result.unwrap();
            answered - last_sent
        };
        eprintln!("a publish's tail (last message to answer): {tail:?}");
        let mut committed: Vec<(i64, Vec<u8>)> = vec![(1, csv1)];
        let first_kind = random.chance(50);

        for round in 0..rounds() {
            let version = committed.last().unwrap().0 + 1;
            let csv = content(seed ^ version as u64, size);
            let parts = upload(id, version, &csv);
            let total = parts.len();
            // Both kinds in every run; which comes when, seeded.
            let mid_upload = match round {
                0 => first_kind,
                1 => !first_kind,
                2 => false,
                _ => random.chance(50),
            };
            let (sender, receiver) = mpsc::channel::<PublishDatasetRequest>(2);
            let mut uploader = portal.clone();
            let call = tokio::spawn(async move {
                let started = Instant::now();
                let result = uploader
                    .publish_dataset(ReceiverStream::new(receiver))
                    .await;
                (result, started.elapsed())
            });
            let (sent, pause) = if mid_upload {
                (1 + random.below(total - 2), random.millis(0..200))
            } else {
                (total, after_the_last(&mut random, round, tail))
            };
            let mut parts = parts.into_iter();
            for p in parts.by_ref().take(sent) {
                sender.send(p).await.unwrap();
            }
            // Mid-upload the stream stays open (the client is still sending); mid-replace it has
            // ended, so the hub checks, moves into place and commits.
            let sender = mid_upload.then_some(sender);
            if round == 2 {
                // Once, the kill right after the answer: what was acknowledged stays.
                wait_finished(&call).await;
            }
            tokio::time::sleep(pause).await;
            let answered = call.is_finished();
            hub.kill();
            drop(sender);
            let (result, _) = call.await.unwrap();
            let acked = answered && result.is_ok();
            eprintln!(
                "round {round}: version {version}, {} {sent}/{total} messages then {pause:?}; \
                 answered before the kill: {answered} ({:?})",
                if mid_upload {
                    "mid-upload:"
                } else {
                    "mid-replace: all"
                },
                result.as_ref().map(|_| "ok").map_err(|s| s.code())
            );

            hub.restart().unwrap();
            let mut portal_now = portal_client(&hub);
            let list = listed(&mut portal_now).await;
            assert_eq!(list.len(), 1, "{list:?}");
            let current = list[0].metadata.as_ref().unwrap().version;
            if acked {
                assert_eq!(
                    current, version,
                    "an acknowledged publish survives the SIGKILL"
                );
            }
            assert!(
                current == version || current == version - 1,
                "round {round}: version {current} served, expected {} or {version}",
                version - 1
            );
            if current == version {
                committed.push((version, csv));
            }
            let expected = &committed.last().unwrap().1;
            let file = &list[0].files[0];
            assert_eq!(
                file.sha256,
                sha256(expected),
                "the recorded SHA-256 is the version's"
            );
            assert_eq!(file.size, expected.len() as i64);
            let (status, body) = download(&hub, &file.path).await;
            assert_eq!(status, 200);
            assert!(
                body.len() == expected.len() && sha256(&body) == file.sha256,
                "round {round}: version {current} is served whole ({} bytes, SHA-256 {})",
                body.len(),
                sha256(&body)
            );
            // The catalogue and the disk agree: staging is empty, and the version directories
            // are the current version and the one before (still downloadable), byte for byte.
            let root = hub.data_dir.join("portal");
            assert!(
                names(&root.join(".staging")).is_empty(),
                "round {round}: staging left: {:?}",
                names(&root.join(".staging"))
            );
            let kept: Vec<&(i64, Vec<u8>)> = committed.iter().rev().take(2).collect();
            let mut expected_dirs: Vec<String> = kept.iter().map(|(v, _)| v.to_string()).collect();
            expected_dirs.sort();
            assert_eq!(names(&root.join(id)), expected_dirs, "round {round}");
            for (v, bytes) in kept {
                let on_disk =
                    std::fs::read(root.join(id).join(v.to_string()).join("data.csv.gz")).unwrap();
                assert!(
                    on_disk == *bytes,
                    "round {round}: version {v} on disk is whole"
                );
                let (status, body) =
                    download(&hub, &format!("/download/{id}/{v}/data.csv.gz")).await;
                assert!(
                    status == 200 && body == *bytes,
                    "round {round}: version {v} served"
                );
            }
            portal = portal_now;
        }
        let output = hub.audit_verify().unwrap();
        assert!(output.status.success(), "{output:?}");
    })
    .await;
}

/// How long after the last message a kill comes: in the first rounds within the first half of
/// the call's measured tail (while the hub checks, moves and commits), later up to twice it, so
/// that some kills land after the commit.
fn after_the_last(random: &mut Seeded, round: u64, tail: Duration) -> Duration {
    let tail = tail.as_millis() as u64;
    if round < 2 {
        random.millis(0..(tail / 2).max(2))
    } else {
        random.millis(0..(tail * 2).max(2))
    }
}

/// Waits (at most 60 s) until a spawned call has its answer.
async fn wait_finished<T>(call: &tokio::task::JoinHandle<T>) {
    let started = Instant::now();
    while !call.is_finished() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the call did not end"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

async fn export(hub: &HubProcess) -> Vec<StateChunk> {
    let mut stream = Clients::admin(hub)
        .node
        .export_state(ExportStateRequest {})
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    chunks
}

async fn members(admin: &mut Clients) -> Vec<String> {
    let mut codes: Vec<String> = admin
        .membership
        .list_members(ListMembersRequest::default())
        .await
        .unwrap()
        .into_inner()
        .members
        .into_iter()
        .map(|m| m.credit_code)
        .collect();
    codes.sort();
    codes
}

/// The newest audit record: (seq, action, detail).
async fn last_audit(admin: &mut Clients) -> (i64, String, String) {
    let mut after_seq = 0;
    let mut last = None;
    loop {
        let page = admin
            .audit
            .list_audit_records(ListAuditRecordsRequest {
                after_seq,
                limit: 1000,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let Some(end) = page.last() else {
            let r: govdc_hub_api::v1::AuditRecord = last.unwrap();
            return (r.seq, r.action, r.detail);
        };
        after_seq = end.seq;
        last = page.into_iter().last();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sigkill_during_an_import_leaves_the_old_state_or_all_of_the_new_one() {
    bounded(Duration::from_secs(420), async {
        let seed = seed("FAULTS_SEED");
        let mut random = Seeded::new(seed);
        // The source: members and 16 MiB of records, so the copy is 16 chunks and its
        // replacement takes a while.
        let source = HubProcess::start(
            &bin(),
            HubOptions::new("faults-import", "national", "extranet"),
        )
        .unwrap();
        let mut admin = Clients::admin(&source);
        let provider_code = credit_code(1701);
        join(&mut admin, &provider_code, "provider").await;
        join(&mut admin, &credit_code(1702), "another").await;
        let mut provider = Clients::member(&source, &provider_code);
        let code = format!("{provider_code}-0001");
        register(&mut provider, &code, ShareType::Unconditional).await;
        for batch in 0..16 {
            let records = (0..1024).map(|i| content(batch * 4096 + i, 1024)).collect();
            publish(&mut provider, &code, vec![records]).await.unwrap();
        }
        let copy = export(&source).await;
        let copy_sha = copy.last().unwrap().sha256.clone();
        let source_members = members(&mut admin).await;
        eprintln!("the copy: {} chunks, SHA-256 {copy_sha}", copy.len());

        // The standby: the same node name, its own (different) state.
        let mut standby = HubProcess::start(
            &bin(),
            HubOptions::new("faults-import", "national", "extranet"),
        )
        .unwrap();
        let mut standby_admin = Clients::admin(&standby);
        join(&mut standby_admin, &credit_code(1703), "standby only").await;
        let mut before = (
            members(&mut standby_admin).await,
            last_audit(&mut standby_admin).await,
        );

        // How long an uninterrupted import takes here from its last chunk (into a third node,
        // so that the standby keeps its own state): the kills after the last chunk fall within
        // twice that.
        let tail = {
            let third = HubProcess::start(
                &bin(),
                HubOptions::new("faults-import", "national", "extranet"),
            )
            .unwrap();
            let chunks: Vec<ImportStateChunk> = copy
                .iter()
                .map(|c| ImportStateChunk {
                    data: c.data.clone(),
                    sha256: c.sha256.clone(),
                    replace: false,
                })
                .collect();
            // Through a channel like the rounds below: from the last chunk handed over to the
            // answer.
            let (sender, receiver) = mpsc::channel::<ImportStateChunk>(2);
            let mut node = Clients::admin(&third).node;
            let call = tokio::spawn(async move {
                let result = node.import_state(ReceiverStream::new(receiver)).await;
                (result, Instant::now())
            });
            for chunk in chunks {
                sender.send(chunk).await.unwrap();
            }
            let last_sent = Instant::now();
            drop(sender);
            let (result, answered) = call.await.unwrap();
            result.unwrap();
            answered - last_sent
        };
        eprintln!("an import's tail (last chunk to answer): {tail:?}");
        let first_kind = random.chance(50);

        for round in 0..rounds() {
            let total = copy.len();
            let mid_stream = match round {
                0 => first_kind,
                1 => !first_kind,
                2 => false,
                _ => random.chance(40),
            };
            let (sent, pause) = if mid_stream {
                (1 + random.below(total - 1), random.millis(0..100))
            } else {
                (total, after_the_last(&mut random, round, tail))
            };
            let (sender, receiver) = mpsc::channel::<ImportStateChunk>(2);
            let mut node = Clients::admin(&standby).node;
            let call =
                tokio::spawn(async move { node.import_state(ReceiverStream::new(receiver)).await });
            for (i, chunk) in copy.iter().take(sent).enumerate() {
                sender
                    .send(ImportStateChunk {
                        data: chunk.data.clone(),
                        sha256: chunk.sha256.clone(),
                        replace: i == 0,
                    })
                    .await
                    .unwrap();
            }
            // Mid-stream the stream stays open; after the last chunk it has ended, so the hub
            // checks the copy and replaces the state.
            let sender = mid_stream.then_some(sender);
            if round == 2 {
                // Once, the kill right after the answer: what was acknowledged stays.
                wait_finished(&call).await;
            }
            tokio::time::sleep(pause).await;
            let answered = call.is_finished();
            standby.kill();
            drop(sender);
            let result = call.await.unwrap();
            let acked = answered && result.is_ok();
            eprintln!(
                "round {round}: {} {sent}/{total} chunks then {pause:?}; answered before the \
                 kill: {answered} ({:?})",
                if mid_stream {
                    "mid-stream:"
                } else {
                    "after the last chunk: all"
                },
                result.as_ref().map(|_| "ok").map_err(|s| s.code())
            );

            standby.restart().unwrap();
            assert_eq!(
                scratch_files(&standby.data_dir),
                Vec::<String>::new(),
                "round {round}: scratch files of the import are swept at start"
            );
            let mut standby_admin = Clients::admin(&standby);
            let now = (
                members(&mut standby_admin).await,
                last_audit(&mut standby_admin).await,
            );
            let imported =
                now.0 == source_members && now.1.1 == "state.import" && now.1.2.contains(&copy_sha);
            if acked {
                assert!(
                    imported,
                    "round {round}: an acknowledged import survives: {now:?}"
                );
            }
            assert!(
                imported || now == before,
                "round {round}: the state is neither the old one {before:?} nor all of the new \
                 one (members {source_members:?}, a state.import of {copy_sha} last): {now:?}"
            );
            eprintln!(
                "round {round}: after the restart the {} state",
                if imported { "imported" } else { "old" }
            );
            let output = standby.audit_verify().unwrap();
            assert!(output.status.success(), "round {round}: {output:?}");
            if imported {
                let mut consumer = Clients::member(&standby, &provider_code);
                let records = fetch_all(&mut consumer, &code).await.unwrap();
                assert_eq!(
                    records.len(),
                    16 * 1024,
                    "round {round}: the imported records"
                );
            }
            // What this round read (the fetch above is audited) is the next round's old state.
            before = (
                members(&mut standby_admin).await,
                last_audit(&mut standby_admin).await,
            );
        }
    })
    .await;
}

/// The b-tree pages of a SQLite file (their first header byte is a b-tree page type), with the
/// offset of their header.
fn btree_pages(db: &[u8]) -> Vec<usize> {
    let page_size = match u16::from_be_bytes([db[16], db[17]]) {
        1 => 65536,
        n => n as usize,
    };
    (0..db.len() / page_size)
        .map(|page| page * page_size + if page == 0 { 100 } else { 0 })
        .filter(|&header| matches!(db[header], 2 | 5 | 10 | 13))
        .collect()
}

/// Copies the files of `from` into `to` (a data directory has no subdirectories but the
/// portal's, which the flips leave alone and the test restores by hand).
fn copy_files(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for name in names(from) {
        let path = from.join(&name);
        if path.is_file() {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

fn assert_refused(started: anyhow::Result<()>, what: &str, needles: &[&str]) -> String {
    let error = format!("{:#}", started.expect_err(what));
    // The hub's own last words: the line `govdc-hub: ...` it printed on stderr.
    let said = error
        .lines()
        .rev()
        .find(|l| l.starts_with("govdc-hub: "))
        .unwrap_or_else(|| panic!("{what}: no `govdc-hub:` line in {error}"))
        .to_owned();
    assert!(error.contains("exit status: 2"), "{what}: exits 2: {error}");
    for needle in needles {
        assert!(said.contains(needle), "{what}: {needle:?} not in {said}");
    }
    for dump in ["SqliteFailure", "Error {", "Os {", "kind:", "ErrorCode"] {
        assert!(
            !said.contains(dump),
            "{what}: a Debug dump ({dump}) in {said}"
        );
    }
    said
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flipped_byte_in_the_store_or_a_damaged_file_is_refused_at_start() {
    bounded(Duration::from_secs(300), async {
        let seed = seed("FAULTS_SEED");
        let mut random = Seeded::new(seed);
        let mut hub = HubProcess::start(
            &bin(),
            HubOptions::new("faults-flip", "provincial", "extranet").portal(),
        )
        .unwrap();
        let mut admin = Clients::admin(&hub);
        for n in 0..50 {
            join(&mut admin, &credit_code(1800 + n), "member").await;
        }
        let provider_code = credit_code(1800);
        let mut provider = Clients::member(&hub, &provider_code);
        let code = format!("{provider_code}-0001");
        register(&mut provider, &code, ShareType::Unconditional).await;
        for batch in 0..4 {
            let records = (0..256).map(|i| content(batch * 1000 + i, 512)).collect();
            publish(&mut provider, &code, vec![records]).await.unwrap();
        }
        let csv = content(seed, 1 << 20);
        publish_dataset(&mut portal_client(&hub), upload("faults.flip", 1, &csv))
            .await
            .unwrap();
        let members_before = members(&mut admin).await;
        // A graceful stop checkpoints the WAL: everything is in hub.db.
        assert!(hub.stop().unwrap().success());
        let pristine = hub.dir.join("pristine");
        copy_files(&hub.data_dir, &pristine);
        let db_path = hub.data_dir.join("hub.db");
        let db = std::fs::read(&db_path).unwrap();
        let pages = btree_pages(&db);
        eprintln!("hub.db: {} bytes, {} b-tree pages", db.len(), pages.len());
        assert!(pages.len() > 10, "a store of some size");

        for round in 0..rounds() + 2 {
            let mut damaged = db.clone();
            // The first round hits the file header, the others a seeded b-tree page's header
            // (page type, first freeblock, cell count, content start, fragmented bytes).
            let offset = if round == 0 {
                random.below(16)
            } else {
                random.pick(&pages) + random.below(8)
            };
            let mask = 1 + random.below(255) as u8;
            damaged[offset] ^= mask;
            std::fs::write(&db_path, &damaged).unwrap();
            eprintln!("round {round}: byte {offset} of hub.db xor {mask:#04x}");
            let said = assert_refused(
                hub.restart(),
                &format!("round {round}: a hub on a store with byte {offset} flipped"),
                &["hub.db", "damaged", "quick_check"],
            );
            eprintln!("round {round}: refused: {said}");
            std::fs::copy(pristine.join("hub.db"), &db_path).unwrap();
        }

        // A published file one byte short is refused too, naming the file.
        let file = hub.data_dir.join("portal/faults.flip/1/data.csv.gz");
        std::fs::write(&file, &csv[..csv.len() - 1]).unwrap();
        let said = assert_refused(
            hub.restart(),
            "a hub whose published file is truncated",
            &["data.csv.gz", "faults.flip", &sha256(&csv)],
        );
        eprintln!("truncated file: refused: {said}");
        std::fs::write(&file, &csv).unwrap();

        // The good store starts and serves what it served.
        hub.restart().unwrap();
        let mut admin = Clients::admin(&hub);
        assert_eq!(members(&mut admin).await, members_before);
        let mut consumer = Clients::member(&hub, &provider_code);
        assert_eq!(fetch_all(&mut consumer, &code).await.unwrap().len(), 1024);
        let (status, body) = download(&hub, "/download/faults.flip/1/data.csv.gz").await;
        assert!(status == 200 && body == csv);
    })
    .await;
}

/// A tmpfs of `size` mounted on `dir`, unmounted when dropped (after the hub on it is killed:
/// declare it before the hub).
struct SmallDisk(PathBuf);

impl SmallDisk {
    fn mount(dir: &Path, size: &str) -> SmallDisk {
        std::fs::create_dir_all(dir).unwrap();
        let status = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs on {} (needs root)",
            dir.display()
        );
        SmallDisk(dir.to_owned())
    }

    /// Free bytes on it.
    fn available(&self) -> u64 {
        let output = std::process::Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&self.0)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse()
            .unwrap()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let unmounted = std::process::Command::new("umount")
            .arg(&self.0)
            .status()
            .is_ok_and(|s| s.success());
        if !unmounted {
            // Busy (a process still has a file open): detach it now, freed when closed.
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
}

/// Fills the rest of the disk but `leave` bytes with a file, as another process would.
fn fill(disk: &SmallDisk, leave: u64) -> PathBuf {
    let filler = disk.0.join("filler");
    let size = disk.available().saturating_sub(leave);
    let file = std::fs::File::create(&filler).unwrap();
    use std::io::Write;
    let mut writer = std::io::BufWriter::new(file);
    let block = vec![0x5au8; 64 * 1024];
    let mut written = 0;
    while written < size {
        let n = block.len().min((size - written) as usize);
        if writer.write_all(&block[..n]).is_err() {
            break;
        }
        written += n as u64;
    }
    let _ = writer.flush();
    filler
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_disk_fails_commits_and_publishes_cleanly_and_the_node_recovers_when_space_returns()
{
    bounded(Duration::from_secs(300), async {
        let seed = seed("FAULTS_SEED");
        let mut random = Seeded::new(seed);
        let root = govdc_test_support::repo_root()
            .join("target/tmp")
            .join(govdc_test_support::unique_prefix("faults-disk"));
        let disk = SmallDisk::mount(&root.join("disk"), "16m");
        let data_dir = disk.0.join("data");
        let mut hub = HubProcess::start(
            &bin(),
            HubOptions::new("faults-disk", "national", "extranet")
                .portal()
                .env("GOVDC_HUB_DATA_DIR", data_dir.to_str().unwrap()),
        )
        .unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code) = (credit_code(1901), credit_code(1902));
        join(&mut admin, &provider_code, "provider").await;
        join(&mut admin, &consumer_code, "consumer").await;
        let mut provider = Clients::member(&hub, &provider_code);
        let mut consumer = Clients::member(&hub, &consumer_code);
        let code = format!("{provider_code}-0001");
        register(&mut provider, &code, ShareType::Unconditional).await;
        consumer
            .exchange
            .request_access(RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "faults".to_owned(),
            })
            .await
            .unwrap();
        let mut portal = portal_client(&hub);
        let csv1 = content(seed, 512 * 1024);
        publish_dataset(&mut portal, upload("faults.disk", 1, &csv1))
            .await
            .unwrap();

        // Fill the disk, leaving a little, and publish until it is full.
        let leave = 256 * 1024 + random.below(256 * 1024) as u64;
        let filler = fill(&disk, leave);
        eprintln!("filled: {} bytes left", disk.available());
        let mut acked: Vec<Vec<u8>> = Vec::new();
        let mut refused = None;
        for batch in 0..400u64 {
            let records: Vec<Vec<u8>> = (0..16)
                .map(|i| content(seed ^ (batch << 8 | i), 1024))
                .collect();
            match publish(&mut provider, &code, vec![records.clone()]).await {
                Ok(acks) => {
                    assert_eq!(acks.len(), 1);
                    assert_eq!(acks[0].last_offset, (acked.len() + records.len()) as i64);
                    acked.extend(records);
                }
                Err(status) => {
                    refused = Some(status);
                    break;
                }
            }
        }
        let refused = refused.expect("the disk filled up");
        eprintln!("after {} acknowledged records: {refused:?}", acked.len());
        assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
        assert!(refused.message().contains("disk is full"), "{refused:?}");
        // Still full: more commits and a publish fail the same way, and the node stays up.
        let records: Vec<Vec<u8>> = (0..16)
            .map(|i| content(seed ^ (999 << 8 | i), 1024))
            .collect();
        let again = publish(&mut provider, &code, vec![records])
            .await
            .unwrap_err();
        assert_eq!(again.code(), Code::ResourceExhausted, "{again:?}");
        let csv2 = content(seed ^ 2, 2 << 20);
        let failed = publish_dataset(&mut portal, upload("faults.disk", 2, &csv2))
            .await
            .unwrap_err();
        assert_eq!(failed.code(), Code::ResourceExhausted, "{failed:?}");
        assert!(failed.message().contains("disk is full"), "{failed:?}");
        assert!(hub.is_running(), "the hub stays up on a full disk");
        assert_eq!(hub.get("/healthz").map(|(code, _)| code), Some(200));
        let list = listed(&mut portal).await;
        assert_eq!(
            list[0].metadata.as_ref().unwrap().version,
            1,
            "version 1 still current"
        );
        let (status, body) = download(&hub, &list[0].files[0].path).await;
        assert!(
            status == 200 && body == csv1,
            "version 1 still served whole"
        );
        assert!(
            names(&data_dir.join("portal/.staging")).is_empty(),
            "the failed upload's staging is removed"
        );

        // Space returns: the same calls succeed, without a restart.
        std::fs::remove_file(&filler).unwrap();
        let records: Vec<Vec<u8>> = (0..16)
            .map(|i| content(seed ^ (1000 << 8 | i), 1024))
            .collect();
        let acks = publish(&mut provider, &code, vec![records.clone()])
            .await
            .unwrap();
        assert_eq!(
            acks[0].last_offset,
            (acked.len() + 16) as i64,
            "no offset lost or reused"
        );
        acked.extend(records);
        let published = publish_dataset(&mut portal, upload("faults.disk", 2, &csv2))
            .await
            .unwrap();
        let (status, body) = download(&hub, &published.files[0].path).await;
        assert!(
            status == 200 && body == csv2,
            "version 2 served after the disk recovered"
        );

        // Every acknowledged record is there, in order, now and after a SIGKILL.
        let check = |fetched: Vec<govdc_hub_api::v1::Record>, when: &str| {
            assert_eq!(fetched.len(), acked.len(), "{when}");
            for (record, data) in fetched.iter().zip(&acked) {
                assert!(
                    &record.data == data,
                    "{when}: record {} intact",
                    record.offset
                );
            }
        };
        check(
            fetch_all(&mut consumer, &code).await.unwrap(),
            "after recovery",
        );
        hub.kill();
        hub.restart().unwrap();
        let mut consumer = Clients::member(&hub, &consumer_code);
        check(
            fetch_all(&mut consumer, &code).await.unwrap(),
            "after a SIGKILL and restart",
        );
        let output = std::process::Command::new(bin())
            .args(["audit", "verify", "--no-parent", "--data-dir"])
            .arg(&data_dir)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        hub.kill();
        drop(hub);
        drop(disk);
        let _ = std::fs::remove_dir_all(&root);
    })
    .await;
}

/// A download of `path` with `Accept` and `Accept-Language`: status, headers and body.
async fn download_as(
    hub: &HubProcess,
    path: &str,
    accept: &str,
    language: &str,
) -> (u16, reqwest::header::HeaderMap, String) {
    let url = format!("{}{path}", hub.portal_url().unwrap());
    let response = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
        .get(&url)
        .header("accept", accept)
        .header("accept-language", language)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.text().await.unwrap_or_default())
}

/// Asserts that `path` answers 200 with `bytes` and their SHA-256 in `X-Checksum-Sha256`.
async fn serves(hub: &HubProcess, path: &str, bytes: &[u8]) {
    let url = format!("{}{path}", hub.portal_url().unwrap());
    let response = reqwest::get(&url).await.unwrap();
    assert_eq!(response.status().as_u16(), 200, "{path}");
    let header = response.headers()["x-checksum-sha256"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = response.bytes().await.unwrap();
    assert_eq!(header, sha256(bytes));
    assert_eq!(sha256(&body), sha256(bytes));
    assert!(body == bytes, "the same bytes");
}

/// Disaster recovery of a portal node: `ImportState` carries the store, not the published
/// files. The imported versions whose files are not on the new node are marked at import: the
/// node still starts (a missing file of such a version is not damage), their downloads answer
/// 503 "being restored" (text, or a page in zh-CN or English), and a `PublishDataset` of the
/// same version with the same bytes stores them (not `Unchanged`) and they are served byte for
/// byte; other bytes under the same version are refused; once restored, a truncated file is
/// refused at start again.
#[tokio::test(flavor = "multi_thread")]
async fn an_imported_portal_state_starts_answers_503_and_takes_its_files_back_from_a_republish() {
    bounded(Duration::from_secs(180), async {
        let options = || HubOptions::new("faults-dr", "national", "extranet").portal();
        let primary = HubProcess::start(&bin(), options()).unwrap();
        let seed = seed("FAULTS_SEED");
        let (csv1, csv2) = (content(seed, 300_000), content(seed + 1, 700_000));
        let mut portal = portal_client(&primary);
        publish_dataset(&mut portal, upload("faults.dr", 1, &csv1))
            .await
            .unwrap();
        publish_dataset(&mut portal, upload("faults.dr", 2, &csv2))
            .await
            .unwrap();
        let chunks = export(&primary).await;
        let recorded = listed(&mut portal).await;
        assert!(!recorded[0].awaiting_files, "the primary has its files");

        // Imported back into a node that has the files (the primary itself): nothing awaited.
        let requests = |replace: bool| -> Vec<ImportStateChunk> {
            chunks
                .iter()
                .enumerate()
                .map(|(i, c)| ImportStateChunk {
                    data: c.data.clone(),
                    sha256: c.sha256.clone(),
                    replace: replace && i == 0,
                })
                .collect()
        };
        Clients::admin(&primary)
            .node
            .import_state(tokio_stream::iter(requests(true)))
            .await
            .unwrap();
        assert!(!listed(&mut portal).await[0].awaiting_files);
        let (status, body) = download(&primary, "/download/faults.dr/2/data.csv.gz").await;
        assert!(status == 200 && body == csv2, "{status}");

        // The DR node: a fresh hub of the same name, without the files.
        let mut standby = HubProcess::start(&bin(), options()).unwrap();
        Clients::admin(&standby)
            .node
            .import_state(tokio_stream::iter(requests(false)))
            .await
            .unwrap();
        let (_, action, detail) = last_audit(&mut Clients::admin(&standby)).await;
        assert_eq!(action, "state.import");
        assert!(
            detail.contains("faults.dr/1") && detail.contains("faults.dr/2"),
            "{detail}"
        );
        let path = "/download/faults.dr/2/data.csv.gz";
        for when in ["after the import", "after a restart"] {
            let mut standby_portal = portal_client(&standby);
            let listed_now = listed(&mut standby_portal).await;
            assert_eq!(
                listed_now.len(),
                1,
                "{when}: the dataset stays in the catalogue"
            );
            assert!(listed_now[0].awaiting_files, "{when}: {listed_now:?}");
            assert_eq!(listed_now[0].files, recorded[0].files, "{when}");
            let (status, headers, body) = download_as(&standby, path, "*/*", "en").await;
            assert_eq!(status, 503, "{when}: {body}");
            assert!(body.contains("being restored"), "{when}: {body}");
            assert_eq!(headers["cache-control"], "no-store", "{when}");
            assert!(headers.contains_key("retry-after"), "{when}");
            let (status, headers, page) = download_as(&standby, path, "text/html", "en").await;
            assert_eq!(status, 503, "{when}");
            assert!(
                headers["content-type"]
                    .to_str()
                    .unwrap()
                    .starts_with("text/html")
            );
            assert!(
                page.contains("The files are being restored"),
                "{when}: {page}"
            );
            assert!(page.contains("lang=\"en\""), "{when}");
            let (status, _, page) = download_as(&standby, path, "text/html", "zh-CN").await;
            assert_eq!(status, 503, "{when}");
            assert!(page.contains("数据文件正在恢复"), "{when}: {page}");
            assert!(page.contains("lang=\"zh-CN\""), "{when}");
            // The previous version's files are awaited too.
            let (status, _, _) =
                download_as(&standby, "/download/faults.dr/1/data.csv.gz", "*/*", "en").await;
            assert_eq!(status, 503, "{when}: version 1");
            if when == "after the import" {
                // Before the fix, the start-up check refused this node (exit 2).
                assert!(standby.stop().unwrap().success());
                standby.restart().unwrap();
            }
        }

        // Other bytes under the same version are refused: its URL is immutable.
        let mut standby_portal = portal_client(&standby);
        let mut other = upload("faults.dr", 2, &csv1);
        if let Some(Part::Metadata(m)) = &mut other[0].part {
            m.content_sha256 = sha256(&csv2);
        }
        let refused = publish_dataset(&mut standby_portal, other)
            .await
            .unwrap_err();
        assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
        assert!(refused.message().contains("same bytes"), "{refused:?}");
        assert!(listed(&mut standby_portal).await[0].awaiting_files);

        // The operator's republish of the same version brings the files.
        let (before, _, _) = last_audit(&mut Clients::admin(&standby)).await;
        let restored = publish_dataset(&mut standby_portal, upload("faults.dr", 2, &csv2))
            .await
            .unwrap();
        assert_eq!(restored.files, recorded[0].files);
        assert!(!restored.awaiting_files);
        let (seq, action, _) = last_audit(&mut Clients::admin(&standby)).await;
        assert_eq!((seq, action.as_str()), (before + 1, "portal.restore"));
        let listed_now = listed(&mut standby_portal).await;
        assert!(!listed_now[0].awaiting_files, "{listed_now:?}");
        assert_eq!(
            listed_now[0].published_at, recorded[0].published_at,
            "the same version"
        );
        serves(&standby, path, &csv2).await;
        // Version 1 cannot be published again: it is forgotten (404), not awaited forever.
        let (status, _, _) =
            download_as(&standby, "/download/faults.dr/1/data.csv.gz", "*/*", "en").await;
        assert_eq!(status, 404);
        // Now the files are there: the same publish again is `Unchanged` (nothing audited).
        publish_dataset(&mut standby_portal, upload("faults.dr", 2, &csv2))
            .await
            .unwrap();
        assert_eq!(last_audit(&mut Clients::admin(&standby)).await.0, seq);

        // It starts and serves after a restart, and damage is still refused at start.
        assert!(standby.stop().unwrap().success());
        standby.restart().unwrap();
        serves(&standby, path, &csv2).await;
        assert!(standby.stop().unwrap().success());
        let file = standby.data_dir.join("portal/faults.dr/2/data.csv.gz");
        std::fs::write(&file, &csv2[..csv2.len() - 1]).unwrap();
        let said = assert_refused(
            standby.restart(),
            "a restored hub whose published file is truncated",
            &["data.csv.gz", "faults.dr", &sha256(&csv2)],
        );
        eprintln!("truncated restored file: refused: {said}");
        std::fs::write(&file, &csv2).unwrap();
        standby.restart().unwrap();
        serves(&standby, path, &csv2).await;
    })
    .await;
}
