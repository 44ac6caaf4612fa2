//! The portal's HTTP side under hostile requests, on the real hub process and over raw TCP (an
//! HTTP client library would normalise the paths and headers these tests need to send as they
//! are): every absolute link comes from the configured public URL whatever `Host` says; encoded
//! path traversal, oversized query strings and headers, `rows`/`start` abuse and garbage or
//! conflicting `Range` headers each get a clear 4xx (or 416), never a 500, a hang, a dropped
//! connection or a byte of a file outside the portal's store.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{bin, bounded, channel};
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{
    DatasetField, DatasetMetadata, FileChunk, FileEnd, Openness, PublishDatasetRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use sha2::Digest;

const ID: &str = "hz-transport.stops";
const PUBLIC: &str = "https://data.example.gov.cn";
const FORGED: &str = "evil.example";

fn sha256(bytes: &[u8]) -> String {
    hex::encode(sha2::Sha256::digest(bytes))
}

/// A portal node with one unconditional dataset of `data` (csv), published over gRPC.
async fn portal_with_dataset(options: HubOptions, data: &[u8]) -> HubProcess {
    let hub = HubProcess::start(&bin(), options.portal()).unwrap();
    let token = hub.token("admin", "operator").unwrap();
    let mut client =
        PortalClient::with_interceptor(channel(&hub), BearerToken::new(&token).unwrap());
    let part = |part| PublishDatasetRequest { part: Some(part) };
    let parts = vec![
        part(Part::Metadata(DatasetMetadata {
            id: ID.to_owned(),
            title: "Bus stops of Hangzhou".to_owned(),
            category: "transport".to_owned(),
            openness: Openness::Unconditional as i32,
            license: "CC-BY-4.0".to_owned(),
            organization_credit_code: "11330000002482118K".to_owned(),
            organization_name: "Hangzhou Transport".to_owned(),
            version: 1,
            record_count: 3,
            fields: vec![DatasetField {
                name: "stop".to_owned(),
                treatment: "keep".to_owned(),
                ..Default::default()
            }],
            content_sha256: "c1".to_owned(),
            ..Default::default()
        })),
        part(Part::Chunk(FileChunk {
            format: "csv".to_owned(),
            data: data.to_vec(),
        })),
        part(Part::End(FileEnd {
            format: "csv".to_owned(),
            sha256: sha256(data),
            size: data.len() as i64,
        })),
    ];
    client
        .publish_dataset(tokio_stream::iter(parts))
        .await
        .unwrap();
    hub
}

/// One raw HTTP/1.1 exchange: the status code and the whole response (head and body).
fn raw(hub: &HubProcess, head: &str) -> (u16, String) {
    let address = hub.portal_url().unwrap().replace("http://", "");
    let mut stream = std::net::TcpStream::connect(&address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(head.as_bytes()).unwrap();
    let mut response = Vec::new();
    // The server may close once it answered a request it refused: what it sent counts.
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response).into_owned();
    let code = response
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status in {response:?} for {head:?}"));
    (code, response)
}

fn get(hub: &HubProcess, target: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut head = format!("GET {target} HTTP/1.1\r\nHost: {FORGED}\r\nConnection: close\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    raw(hub, &head)
}

fn body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

#[tokio::test(flavor = "multi_thread")]
async fn links_come_from_the_public_url_never_from_a_forged_host() {
    bounded(Duration::from_secs(60), async {
        let hub = portal_with_dataset(
            HubOptions::new("portal-links", "provincial", "extranet")
                .env("GOVDC_HUB_PORTAL_PUBLIC_URL", &format!("{PUBLIC}/")),
            b"stop\nWest Lake\n",
        )
        .await;
        let pages = [
            "/".to_owned(),
            "/api/datasets".to_owned(),
            format!("/api/datasets/{ID}"),
            "/catalog.jsonld".to_owned(),
            format!("/api/3/action/package_show?id={ID}"),
            "/api/3/action/package_search".to_owned(),
        ];
        for page in &pages {
            for host in [FORGED, "evil.example:443", "", "127.0.0.1@evil.example"] {
                let head =
                    format!("GET {page} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
                let (code, response) = raw(&hub, &head);
                assert_eq!(code, 200, "{page} with Host {host:?}: {response}");
                let text = body(&response);
                assert!(
                    !text.contains("evil.example"),
                    "{page} with Host {host:?}: {text}"
                );
                assert!(text.contains(PUBLIC), "{page}: no link to {PUBLIC}: {text}");
            }
            // X-Forwarded-Host is no more trusted than Host.
            let (_, response) = get(&hub, page, &[("X-Forwarded-Host", FORGED)]);
            assert!(!body(&response).contains(FORGED), "{page}: {response}");
        }
        let (_, response) = get(&hub, &format!("/api/datasets/{ID}"), &[]);
        let shown: serde_json::Value = serde_json::from_str(body(&response)).unwrap();
        assert_eq!(
            shown["files"][0]["url"],
            format!("{PUBLIC}/download/{ID}/1/data.csv.gz")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_without_a_usable_public_url_links_to_its_own_address_or_refuses_to_start() {
    bounded(Duration::from_secs(60), async {
        // Listening on one address, that address is the base.
        let hub = portal_with_dataset(
            HubOptions::new("portal-own", "provincial", "extranet"),
            b"stop\nWest Lake\n",
        )
        .await;
        let own = hub.portal_url().unwrap();
        let (_, response) = get(&hub, &format!("/api/datasets/{ID}"), &[]);
        let shown: serde_json::Value = serde_json::from_str(body(&response)).unwrap();
        assert_eq!(
            shown["files"][0]["url"],
            format!("{own}/download/{ID}/1/data.csv.gz")
        );

        // Binding every address without a public URL, or with one that is not a URL: the node
        // does not start, and says why (it never gets as far as binding).
        for (env, why) in [
            (
                vec![("GOVDC_HUB_PORTAL_LISTEN", "0.0.0.0:1")],
                "portalPublicUrl is required",
            ),
            (
                vec![("GOVDC_HUB_PORTAL_PUBLIC_URL", "javascript:alert(1)")],
                "must be an http:// or https:// URL",
            ),
            (
                vec![(
                    "GOVDC_HUB_PORTAL_PUBLIC_URL",
                    "https://data.gov.cn/?next=evil",
                )],
                "no query",
            ),
        ] {
            let mut options = HubOptions::new("portal-bad", "provincial", "extranet");
            let portal = !env.iter().any(|(k, _)| *k == "GOVDC_HUB_PORTAL_LISTEN");
            for (k, v) in env {
                options = options.env(k, v);
            }
            if portal {
                options = options.portal();
            }
            let error = match HubProcess::start(&bin(), options) {
                Ok(_) => panic!("the hub started with a bad portal URL ({why})"),
                Err(error) => format!("{error:#}"),
            };
            assert!(error.contains(why), "{error}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_requests_get_a_clear_4xx_and_nothing_outside_the_store() {
    bounded(Duration::from_secs(90), async {
        let data = b"stop,line\nWest Lake,K7\nBroken Bridge,Y2\n".repeat(50);
        let hub = portal_with_dataset(
            HubOptions::new("portal-hostile", "provincial", "extranet"),
            &data,
        )
        .await;
        // The store's own files sit two and three levels above a download's file.
        let secrets = [
            "SQLite format 3",
            "node.name",
            &std::fs::read_to_string(&hub.key_file).unwrap_or_default(),
        ];
        let file = format!("/download/{ID}/1/data.csv.gz");

        // Encoded path traversal, in every segment, single and double encoded.
        for target in [
            "/download/%2e%2e/%2e%2e/hub.db".to_owned(),
            "/download/..%2f..%2fhub.db/1/data.csv.gz".to_owned(),
            format!("/download/{ID}/1/..%2f..%2f..%2fhub.db"),
            format!("/download/{ID}/..%2f..%2f/data.csv.gz"),
            format!("/download/{ID}/1/%2e%2e%2f%2e%2e%2fLOCK"),
            format!("/download/{ID}%2f..%2f..%2f/1/data.csv.gz"),
            "/download/%252e%252e/%252e%252e/hub.db".to_owned(),
            "/download/../../hub.db".to_owned(),
            "/api/datasets/..%2f..%2fhub.db".to_owned(),
            "/api/datasets/%2e%2e".to_owned(),
            "/%2e%2e/%2e%2e/etc/passwd".to_owned(),
            format!("/download/{ID}/1/data.csv.gz%00.txt"),
            format!("/download/{ID}/1/data.csv.gz%2f"),
            "/download/%00/1/data.csv.gz".to_owned(),
        ] {
            let (code, response) = get(&hub, &target, &[]);
            assert!((400..500).contains(&code), "{target}: {code} {response}");
            for secret in secrets.iter().filter(|s| !s.is_empty()) {
                assert!(!response.contains(secret), "{target} leaked {secret:?}");
            }
        }

        // Oversized query strings and headers.
        let long = "x".repeat(20 * 1024);
        for target in [
            format!("/api/datasets?q={long}"),
            format!("/api/3/action/package_search?q={long}"),
            format!("{file}?{long}"),
        ] {
            let (code, response) = get(&hub, &target, &[]);
            assert_eq!(
                code,
                414,
                "{}: {}",
                &target[..40],
                &response[..response.len().min(300)]
            );
        }
        let (code, _) = get(
            &hub,
            &format!("/api/datasets?q={}", "x".repeat(300 * 1024)),
            &[],
        );
        assert_eq!(code, 414, "a 300 KiB URI");
        let big = "y".repeat(40 * 1024);
        let (code, _) = get(&hub, "/api/datasets", &[("X-Padding", &big)]);
        assert_eq!(code, 431, "a 40 KiB header");
        let many: Vec<(String, String)> = (0..200)
            .map(|i| (format!("X-H{i}"), "v".to_owned()))
            .collect();
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let (code, _) = get(&hub, "/api/datasets", &many);
        assert_eq!(code, 431, "200 headers");
        let (code, _) = get(
            &hub,
            "/api/datasets",
            &[("X-Padding", &"z".repeat(600 * 1024))],
        );
        assert_eq!(code, 431, "a 600 KiB header");

        // rows and start: negative, huge, not numbers, several; each a CKAN validation error
        // (409, as CKAN answers) or an empty page, never a 500.
        for query in [
            "rows=-1",
            "rows=abc",
            "rows=1e9",
            "rows=99999999999999999999999",
            "start=-5",
            "start=18446744073709551616",
            "rows=0x10",
            "rows=%00",
        ] {
            let (code, response) = get(&hub, &format!("/api/3/action/package_search?{query}"), &[]);
            assert_eq!(code, 409, "{query}: {response}");
            assert!(
                body(&response).contains("\"success\":false"),
                "{query}: {response}"
            );
        }
        for query in [
            "rows=1000000000",
            "start=1000000000",
            "start=18446744073709551615&rows=18446744073709551615",
        ] {
            let (code, response) = get(&hub, &format!("/api/3/action/package_search?{query}"), &[]);
            assert_eq!(code, 200, "{query}: {response}");
        }
        let (_, response) = get(&hub, "/api/3/action/package_search?start=1000000000", &[]);
        assert!(body(&response).contains("\"results\":[]"), "{response}");

        // Range: garbage and conflicting headers.
        for range in [
            "bytes=abc",
            "bytes=5-1",
            "bytes=--1",
            "bytes=",
            "bytes=99999999999999999999-",
            "bytes=1-2-3",
        ] {
            let (code, response) = get(&hub, &file, &[("Range", range)]);
            assert_eq!(code, 416, "Range {range}: {response}");
            assert!(
                response.to_lowercase().contains("content-range: bytes */"),
                "{response}"
            );
        }
        let (code, response) = get(
            &hub,
            &file,
            &[("Range", "bytes=0-9"), ("Range", "bytes=10-19")],
        );
        assert_eq!(code, 400, "{response}");
        // The same range twice is no conflict; another unit is ignored, as RFC 9110 says.
        let (code, _) = get(
            &hub,
            &file,
            &[("Range", "bytes=0-9"), ("Range", "bytes=0-9")],
        );
        assert_eq!(code, 206);
        let (code, _) = get(&hub, &file, &[("Range", "items=0-9")]);
        assert_eq!(code, 200);
        let (code, _) = get(&hub, &file, &[("Range", "bytes=\u{00e9}-1")]);
        assert!(code == 416 || code == 400, "a non-ASCII range: {code}");

        // Still serving, and nothing panicked.
        let (code, _) = get(&hub, &file, &[]);
        assert_eq!(code, 200);
        assert!(!hub.logs().contains("panicked"), "{}", hub.logs());
    })
    .await;
}
