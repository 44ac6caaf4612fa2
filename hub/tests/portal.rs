//! The open-data portal on the real hub process: publishing over gRPC, downloads over HTTP
//! (checksums, ranges, atomic replacement, conditional tokens), restart, unpublish, and real
//! clients the project did not write (ckanapi, rdflib) in a Python venv under `target/`.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{bin, bounded, channel};
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{
    DatasetField, DatasetMetadata, FileChunk, FileEnd, IssueDownloadTokenRequest,
    ListDatasetsRequest, Openness, PublishDatasetRequest, PublishedDataset,
    UnpublishDatasetRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use govdc_test_support::repo_root;
use sha2::Digest;
use tokio::sync::mpsc;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

type Client = PortalClient<InterceptedService<Channel, BearerToken>>;

const ORG: &str = "11330000002482118K";

fn client(hub: &HubProcess, role: &str, subject: &str) -> Client {
    let token = hub.token(role, subject).unwrap();
    PortalClient::with_interceptor(channel(hub), BearerToken::new(&token).unwrap())
}

fn portal_hub(name: &str) -> HubProcess {
    HubProcess::start(
        &bin(),
        HubOptions::new(name, "provincial", "extranet").portal(),
    )
    .unwrap()
}

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Deterministic pseudo-random bytes (gzip data does not compress further, nor do these).
fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn metadata(id: &str, version: i64, content: &str, openness: Openness) -> DatasetMetadata {
    DatasetMetadata {
        id: id.to_owned(),
        title: format!("Licensed clinics of Hangzhou ({id})"),
        description: "Medical institutions with their licence numbers, de-identified.".to_owned(),
        category: "health".to_owned(),
        openness: openness as i32,
        license: "CC-BY-4.0".to_owned(),
        tags: vec!["health".to_owned(), "clinics".to_owned()],
        organization_credit_code: ORG.to_owned(),
        organization_name: "Zhejiang Health Commission".to_owned(),
        version,
        record_count: 1000 + version,
        fields: vec![DatasetField {
            name: "licence".to_owned(),
            treatment: "keep".to_owned(),
            description: "licence number".to_owned(),
            ..Default::default()
        }],
        content_sha256: content.to_owned(),
        ..Default::default()
    }
}

fn part(part: Part) -> PublishDatasetRequest {
    PublishDatasetRequest { part: Some(part) }
}

/// The messages of an upload: metadata, then each file in 64 KiB chunks and its end.
fn upload(metadata: DatasetMetadata, files: &[(&str, &[u8])]) -> Vec<PublishDatasetRequest> {
    let mut parts = vec![part(Part::Metadata(metadata))];
    for (format, data) in files {
        for chunk in data.chunks(64 * 1024) {
            parts.push(part(Part::Chunk(FileChunk {
                format: (*format).to_owned(),
                data: chunk.to_vec(),
            })));
        }
        parts.push(part(Part::End(FileEnd {
            format: (*format).to_owned(),
            sha256: sha256(data),
            size: data.len() as i64,
        })));
    }
    parts
}

async fn publish(
    client: &mut Client,
    parts: Vec<PublishDatasetRequest>,
) -> Result<PublishedDataset, tonic::Status> {
    client
        .publish_dataset(tokio_stream::iter(parts))
        .await
        .map(|r| r.into_inner())
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn get(url: &str) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    get_with(url, &[]).await
}

async fn get_with(
    url: &str,
    headers: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Vec<u8>) {
    let mut request = http().get(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    (status, headers, response.bytes().await.unwrap().to_vec())
}

async fn json(url: &str) -> (u16, serde_json::Value) {
    let (status, _, body) = get(url).await;
    (status, serde_json::from_slice(&body).unwrap())
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {headers:?}"))
        .to_str()
        .unwrap()
}

fn current_version(list: &[PublishedDataset], id: &str) -> Option<i64> {
    list.iter()
        .filter_map(|d| d.metadata.as_ref())
        .find(|m| m.id == id)
        .map(|m| m.version)
}

async fn listed(client: &mut Client) -> Vec<PublishedDataset> {
    client
        .list_datasets(ListDatasetsRequest {})
        .await
        .unwrap()
        .into_inner()
        .datasets
}

fn staging_is_empty(hub: &HubProcess) -> bool {
    let staging = hub.data_dir.join("portal/.staging");
    std::fs::read_dir(&staging).map_or(true, |mut d| d.next().is_none())
}

#[tokio::test(flavor = "multi_thread")]
async fn a_version_is_published_downloaded_replaced_atomically_kept_and_unpublished() {
    bounded(Duration::from_secs(120), async {
        let mut hub = portal_hub("portal-main");
        let url = hub.portal_url().unwrap();
        let mut admin = client(&hub, "admin", "operator");
        let id = "hz-health.clinics";

        // Version 1: a 3 MiB CSV and a small JSON file.
        let csv1 = bytes(1, 3 << 20);
        let json1 = bytes(2, 10_000);
        let published = publish(
            &mut admin,
            upload(
                metadata(id, 1, "c1", Openness::Unconditional),
                &[("csv", &csv1), ("json", &json1)],
            ),
        )
        .await
        .unwrap();
        let paths: Vec<&str> = published.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            vec![
                "/download/hz-health.clinics/1/data.csv.gz",
                "/download/hz-health.clinics/1/data.json.gz"
            ]
        );
        assert_eq!(published.files[0].sha256, sha256(&csv1));
        assert_eq!(published.files[0].size, csv1.len() as i64);
        assert!(published.published_at.is_some());
        assert_eq!(current_version(&listed(&mut admin).await, id), Some(1));

        // The download: bytes, length, checksums, validators.
        let csv_url = format!("{url}/download/{id}/1/data.csv.gz");
        let (status, headers, body) = get(&csv_url).await;
        assert_eq!(status, 200);
        assert!(body == csv1, "the downloaded bytes differ");
        assert_eq!(header(&headers, "content-length"), csv1.len().to_string());
        assert_eq!(header(&headers, "x-checksum-sha256"), sha256(&csv1));
        assert_eq!(header(&headers, "etag"), format!("\"{}\"", sha256(&csv1)));
        assert_eq!(header(&headers, "accept-ranges"), "bytes");
        assert_eq!(header(&headers, "content-type"), "application/gzip");
        use base64::Engine;
        let digest = base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&csv1));
        assert_eq!(header(&headers, "digest"), format!("sha-256={digest}"));
        let (status, _, sums) = get(&format!("{url}/download/{id}/1/SHA256SUMS")).await;
        assert_eq!(status, 200);
        assert_eq!(
            String::from_utf8(sums).unwrap(),
            format!(
                "{}  data.csv.gz\n{}  data.json.gz\n",
                sha256(&csv1),
                sha256(&json1)
            )
        );
        let etag = format!("\"{}\"", sha256(&csv1));
        let (status, _, body) = get_with(&csv_url, &[("if-none-match", &etag)]).await;
        assert_eq!((status, body.len()), (304, 0));

        // Ranges: a middle, a suffix, an open end, one past the end, a stale If-Range.
        let (status, headers, body) = get_with(&csv_url, &[("range", "bytes=100-199")]).await;
        assert_eq!(status, 206);
        assert_eq!(body, csv1[100..200]);
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes 100-199/{}", csv1.len())
        );
        assert_eq!(header(&headers, "content-length"), "100");
        let (status, _, body) = get_with(&csv_url, &[("range", "bytes=-10")]).await;
        assert_eq!((status, body.as_slice()), (206, &csv1[csv1.len() - 10..]));
        let from = format!("bytes={}-", csv1.len() - 5);
        let (status, _, body) = get_with(&csv_url, &[("range", &from)]).await;
        assert_eq!((status, body.as_slice()), (206, &csv1[csv1.len() - 5..]));
        let past = format!("bytes={}-", csv1.len());
        let (status, headers, _) = get_with(&csv_url, &[("range", &past)]).await;
        assert_eq!(status, 416);
        assert_eq!(
            header(&headers, "content-range"),
            format!("bytes */{}", csv1.len())
        );
        let (status, _, body) = get_with(
            &csv_url,
            &[("range", "bytes=0-9"), ("if-range", "\"stale\"")],
        )
        .await;
        assert_eq!((status, body.len()), (200, csv1.len()));

        // The JSON API.
        let (status, shown) = json(&format!("{url}/api/datasets/{id}")).await;
        assert_eq!(status, 200);
        assert_eq!(shown["version"], 1);
        assert_eq!(shown["files"][0]["sha256"], sha256(&csv1));
        assert_eq!(shown["files"][0]["url"], csv_url);
        let (_, found) = json(&format!("{url}/api/datasets?q=CLINICS")).await;
        assert_eq!(found["count"], 1);
        let (_, none) = json(&format!("{url}/api/datasets?q=weather")).await;
        assert_eq!(none["count"], 0);
        let (status, _) = json(&format!("{url}/api/datasets/no.such")).await;
        assert_eq!(status, 404);

        // The same version and content again: a no-op answering the current state.
        let again = publish(
            &mut admin,
            upload(
                metadata(id, 1, "c1", Openness::Unconditional),
                &[("csv", &csv1), ("json", &json1)],
            ),
        )
        .await
        .unwrap();
        assert_eq!(again.published_at, published.published_at);
        // A version that is not newer, with other content: refused.
        let stale = publish(
            &mut admin,
            upload(
                metadata(id, 1, "other", Openness::Unconditional),
                &[("csv", b"x")],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(stale.code(), Code::FailedPrecondition, "{stale:?}");

        // Failed uploads of version 2 leave version 1 current: a wrong checksum, a missing
        // FileEnd, and a caller that goes away mid-stream.
        let csv2 = bytes(3, 2 << 20);
        let mut corrupt = upload(
            metadata(id, 2, "c2", Openness::Unconditional),
            &[("csv", &csv2)],
        );
        if let Some(Part::End(end)) = corrupt.last_mut().and_then(|p| p.part.as_mut()) {
            end.sha256 = sha256(b"something else");
        }
        let error = publish(&mut admin, corrupt).await.unwrap_err();
        assert_eq!(error.code(), Code::InvalidArgument, "{error:?}");
        let mut truncated = upload(
            metadata(id, 2, "c2", Openness::Unconditional),
            &[("csv", &csv2)],
        );
        truncated.pop();
        let error = publish(&mut admin, truncated).await.unwrap_err();
        assert!(error.message().contains("no FileEnd"), "{error:?}");
        let (sender, receiver) = mpsc::channel::<PublishDatasetRequest>(4);
        let mut abandoned = admin.clone();
        let call = tokio::spawn(async move {
            abandoned
                .publish_dataset(tokio_stream::wrappers::ReceiverStream::new(receiver))
                .await
        });
        let parts = upload(
            metadata(id, 2, "c2", Openness::Unconditional),
            &[("csv", &csv2)],
        );
        for p in parts.into_iter().take(10) {
            sender.send(p).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        call.abort();
        drop(sender);
        common::eventually(
            Duration::from_secs(10),
            "the abandoned upload's cleanup",
            || async { staging_is_empty(&hub).then_some(()) },
        )
        .await;
        assert_eq!(current_version(&listed(&mut admin).await, id), Some(1));
        let (_, _, body) = get(&csv_url).await;
        assert!(body == csv1, "version 1 is still served whole");

        // Version 2 replaces version 1 atomically: downloads of version 1 that started before
        // the flip finish with version 1's bytes, and nobody sees a half version.
        let mut readers = Vec::new();
        for _ in 0..4 {
            let response = http().get(&csv_url).send().await.unwrap();
            assert_eq!(response.status().as_u16(), 200);
            readers.push(response);
        }
        let mut firsts = Vec::new();
        for r in &mut readers {
            firsts.push(r.chunk().await.unwrap().unwrap().to_vec());
        }
        let (sender, receiver) = mpsc::channel::<PublishDatasetRequest>(4);
        let mut uploader = admin.clone();
        let call = tokio::spawn(async move {
            uploader
                .publish_dataset(tokio_stream::wrappers::ReceiverStream::new(receiver))
                .await
        });
        let mut parts = upload(
            metadata(id, 2, "c2", Openness::Unconditional),
            &[("csv", &csv2)],
        )
        .into_iter();
        for p in parts.by_ref().take(12) {
            sender.send(p).await.unwrap();
        }
        // Half uploaded: the listing, the JSON and the files are all still version 1.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(current_version(&listed(&mut admin).await, id), Some(1));
        let (_, shown) = json(&format!("{url}/api/datasets/{id}")).await;
        assert_eq!(shown["version"], 1);
        let (status, _, _) = get(&format!("{url}/download/{id}/2/data.csv.gz")).await;
        assert_eq!(status, 404);
        for p in parts {
            sender.send(p).await.unwrap();
        }
        drop(sender);
        let v2 = call.await.unwrap().unwrap().into_inner();
        assert_eq!(v2.metadata.as_ref().unwrap().version, 2);
        assert_eq!(v2.files.len(), 1, "version 2 has only CSV");
        for (mut reader, first) in readers.into_iter().zip(firsts) {
            let mut body = first;
            while let Some(chunk) = reader.chunk().await.unwrap() {
                body.extend_from_slice(&chunk);
            }
            assert!(
                body == csv1,
                "a download begun before the flip got version 1 whole"
            );
        }
        let (_, shown) = json(&format!("{url}/api/datasets/{id}")).await;
        assert_eq!(shown["version"], 2);
        let (_, _, body) = get(&format!("{url}/download/{id}/2/data.csv.gz")).await;
        assert!(body == csv2);
        // The previous version stays downloadable until the next one.
        let (status, _, body) = get(&csv_url).await;
        assert!(status == 200 && body == csv1);

        // Version 3 prunes version 1; version 2 stays as the previous one.
        let csv3 = bytes(4, 1 << 20);
        publish(
            &mut admin,
            upload(
                metadata(id, 3, "c3", Openness::Unconditional),
                &[("csv", &csv3)],
            ),
        )
        .await
        .unwrap();
        assert_eq!(get(&csv_url).await.0, 404);
        assert!(!hub.data_dir.join("portal").join(id).join("1").exists());
        assert_eq!(
            get(&format!("{url}/download/{id}/2/data.csv.gz")).await.0,
            200
        );

        // A restart keeps it all.
        hub.stop().unwrap();
        hub.restart().unwrap();
        assert_eq!(current_version(&listed(&mut admin).await, id), Some(3));
        let (status, _, body) = get(&format!("{url}/download/{id}/3/data.csv.gz")).await;
        assert!(status == 200 && body == csv3);

        // Metrics count downloads and bytes per dataset, and publishes.
        let (_, metrics) = hub.get("/metrics").unwrap();
        assert!(
            metrics.contains(&format!(
                "govdc_hub_portal_downloads_total{{dataset=\"{id}\"}}"
            )),
            "{metrics}"
        );
        assert!(metrics.contains(&format!(
            "govdc_hub_portal_bytes_served_total{{dataset=\"{id}\"}} {}",
            csv3.len()
        )));

        // Unpublish: rows, files and downloads go; again is a no-op.
        let removed = admin
            .unpublish_dataset(UnpublishDatasetRequest { id: id.to_owned() })
            .await
            .unwrap()
            .into_inner();
        assert!(removed.removed);
        assert_eq!(current_version(&listed(&mut admin).await, id), None);
        assert_eq!(json(&format!("{url}/api/datasets/{id}")).await.0, 404);
        assert_eq!(
            get(&format!("{url}/download/{id}/3/data.csv.gz")).await.0,
            404
        );
        assert!(!hub.data_dir.join("portal").join(id).exists());
        let again = admin
            .unpublish_dataset(UnpublishDatasetRequest { id: id.to_owned() })
            .await
            .unwrap()
            .into_inner();
        assert!(!again.removed);

        // Every change is in the audit chain, which still verifies.
        let verify = hub.audit_verify().unwrap();
        assert!(verify.status.success(), "{verify:?}");
        let mut audit = common::Clients::admin(&hub).audit;
        let records = audit
            .list_audit_records(govdc_hub_api::v1::ListAuditRecordsRequest {
                after_seq: 0,
                limit: 100,
            })
            .await
            .unwrap()
            .into_inner()
            .records;
        let actions: Vec<&str> = records.iter().map(|r| r.action.as_str()).collect();
        assert_eq!(
            actions
                .iter()
                .filter(|a| a.starts_with("portal."))
                .copied()
                .collect::<Vec<_>>(),
            vec![
                "portal.publish",
                "portal.publish",
                "portal.publish",
                "portal.unpublish"
            ]
        );
        hub.stop().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_conditional_dataset_downloads_only_with_its_token() {
    bounded(Duration::from_secs(60), async {
        let hub = portal_hub("portal-conditional");
        let url = hub.portal_url().unwrap();
        let mut admin = client(&hub, "admin", "operator");
        let data = bytes(5, 100_000);
        for id in ["hz-social.pensions", "hz-social.benefits"] {
            publish(
                &mut admin,
                upload(
                    metadata(id, 1, id, Openness::Conditional),
                    &[("csv", &data)],
                ),
            )
            .await
            .unwrap();
        }
        publish(
            &mut admin,
            upload(
                metadata("hz-open.parks", 1, "p", Openness::Unconditional),
                &[("csv", &data)],
            ),
        )
        .await
        .unwrap();
        let file = format!("{url}/download/hz-social.pensions/1/data.csv.gz");

        // Metadata stays public; the data does not.
        let (status, shown) = json(&format!("{url}/api/datasets/hz-social.pensions")).await;
        assert_eq!(
            (status, shown["openness"].as_str()),
            (200, Some("conditional"))
        );
        let (status, headers, _) = get(&file).await;
        assert_eq!(status, 401);
        assert!(header(&headers, "www-authenticate").starts_with("Bearer"));
        let (status, _, _) = get_with(&file, &[("authorization", "Bearer gdt_guess")]).await;
        assert_eq!(status, 403);

        let issue = |id: &str, ttl: i64| IssueDownloadTokenRequest {
            dataset_id: id.to_owned(),
            applicant: "91330100MA27XL0Q2N research institute".to_owned(),
            ttl_seconds: ttl,
        };
        let token = admin
            .issue_download_token(issue("hz-social.pensions", 0))
            .await
            .unwrap()
            .into_inner();
        assert!(token.expires_at.unwrap().seconds > 29 * 86_400);
        let bearer = format!("Bearer {}", token.token);
        let (status, _, body) = get_with(&file, &[("authorization", &bearer)]).await;
        assert!(status == 200 && body == data);
        // A token opens its own dataset only.
        let other = format!("{url}/download/hz-social.benefits/1/data.csv.gz");
        assert_eq!(get_with(&other, &[("authorization", &bearer)]).await.0, 403);
        // An expired token opens nothing.
        let short = admin
            .issue_download_token(issue("hz-social.pensions", 1))
            .await
            .unwrap()
            .into_inner();
        tokio::time::sleep(Duration::from_millis(1500)).await;
        let expired = format!("Bearer {}", short.token);
        assert_eq!(get_with(&file, &[("authorization", &expired)]).await.0, 403);
        // Unconditional datasets have no tokens; unknown ones neither.
        let error = admin
            .issue_download_token(issue("hz-open.parks", 0))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition);
        let error = admin
            .issue_download_token(issue("no.such", 0))
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::NotFound);
        assert_eq!(
            get(&format!("{url}/download/hz-open.parks/1/data.csv.gz"))
                .await
                .0,
            200
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn portal_calls_need_an_admin_and_a_portal() {
    bounded(Duration::from_secs(60), async {
        let hub = portal_hub("portal-auth");
        let mut member = client(&hub, "member", ORG);
        let error = member
            .list_datasets(ListDatasetsRequest {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
        let mut node = client(&hub, "node", "child");
        let error = publish(
            &mut node,
            upload(
                metadata("a.b", 1, "x", Openness::Unconditional),
                &[("csv", b"x")],
            ),
        )
        .await
        .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied, "{error:?}");
        let mut anonymous = PortalClient::new(channel(&hub));
        let error = anonymous
            .unpublish_dataset(UnpublishDatasetRequest {
                id: "a.b".to_owned(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::Unauthenticated, "{error:?}");

        let plain = HubProcess::start(
            &bin(),
            HubOptions::new("no-portal", "provincial", "extranet"),
        )
        .unwrap();
        let mut admin = client(&plain, "admin", "operator");
        let error = admin
            .list_datasets(ListDatasetsRequest {})
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::FailedPrecondition, "{error:?}");

        let refused = HubProcess::start(
            &bin(),
            HubOptions::new("intranet-portal", "provincial", "intranet").portal(),
        );
        let message = format!(
            "{:#}",
            refused.err().expect("an intranet portal is refused")
        );
        assert!(message.contains("intranet"), "{message}");
    })
    .await;
}

/// A venv under `target/` with the pinned requirements, made once per requirements file.
fn python_venv() -> PathBuf {
    let requirements = repo_root().join("hub/tests/python/requirements.txt");
    let text = std::fs::read(&requirements).unwrap();
    let key = &sha256(&text)[..16];
    let venv = repo_root().join(format!("target/python/portal-{key}"));
    let ready = venv.join(".installed");
    if ready.exists() {
        return venv;
    }
    let _ = std::fs::remove_dir_all(&venv);
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .expect("python3 (with venv) is needed for the portal's client tests");
    assert!(status.success(), "python3 -m venv failed");
    let output = Command::new(venv.join("bin/pip"))
        .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
        .arg(&requirements)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "pip install -r {} failed:\n{}",
        requirements.display(),
        String::from_utf8_lossy(&output.stderr)
    );
    std::fs::write(&ready, "").unwrap();
    venv
}

fn run_python(venv: &Path, args: &[&str]) -> std::process::Output {
    Command::new(venv.join("bin/python"))
        .arg(repo_root().join("hub/tests/python/portal_clients.py"))
        .args(args)
        .output()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn ckanapi_and_rdflib_read_the_portal() {
    let venv = tokio::task::spawn_blocking(python_venv).await.unwrap();
    bounded(Duration::from_secs(120), async {
        let hub = portal_hub("portal-clients");
        let url = hub.portal_url().unwrap();
        let mut admin = client(&hub, "admin", "operator");
        let id = "hz-health.clinics";
        publish(
            &mut admin,
            upload(
                metadata(id, 1, "c", Openness::Unconditional),
                &[("csv", &bytes(6, 50_000)), ("json", &bytes(7, 70_000))],
            ),
        )
        .await
        .unwrap();
        let mut other = metadata("hz-transport.buses", 1, "b", Openness::Conditional);
        other.title = "Bus lines".to_owned();
        other.description = "Routes and stops.".to_owned();
        other.tags = vec!["transport".to_owned()];
        other.organization_credit_code = "11330000002482119G".to_owned();
        publish(&mut admin, upload(other, &[("csv", &bytes(8, 1000))]))
            .await
            .unwrap();
        let org = ORG.to_lowercase();
        let output = tokio::task::spawn_blocking(move || {
            run_python(&venv, &[&url, id, "clinics", &org, "health"])
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "the Python clients failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&output.stdout).trim(), "OK");
    })
    .await;
}
