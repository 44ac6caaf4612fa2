//! `govdc-operator dataset applications|approve|reject` against a real portal hub: a person
//! applies on the website, the platform operator lists and decides with the CLI (its admin
//! token signed with the portal node's key, read from the node's Secret on the real API
//! server), and the applicant then collects the token from the status page and downloads.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::process::Output;
use std::time::Duration;

use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::publish_dataset_request::Part;
use govdc_hub_api::v1::{DatasetMetadata, FileChunk, FileEnd, Openness, PublishDatasetRequest};
use govdc_test_support::hub::{HubOptions, HubProcess, hub_bin};
use govdc_test_support::{TestEnv, repo_root, unique_prefix};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::PostParams;
use sha2::Digest;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const DATASET: &str = "hz-health.clinics";

fn sha256(bytes: &[u8]) -> String {
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    gz.finish().unwrap()
}

/// `application/x-www-form-urlencoded` of a value: every byte but letters and digits escaped.
fn urlencode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

struct Cli {
    kubeconfig: std::path::PathBuf,
    portal: String,
    endpoint: String,
}

impl Cli {
    fn run(&self, args: &[&str]) -> Output {
        std::process::Command::new(OPERATOR)
            .arg("dataset")
            .args(args)
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(["--portal", &self.portal, &self.endpoint])
            .output()
            .unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "govdc-operator dataset {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn refused(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(!output.status.success(), "{args:?} succeeded");
        String::from_utf8(output.stderr).unwrap()
    }
}

/// Applies on the website as a browser would; the status page's URL.
async fn apply(portal: &str, applicant: &str) -> String {
    let form = http()
        .get(format!("{portal}/datasets/{DATASET}/apply"))
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let cookie = form.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let csrf = cookie.split_once('=').unwrap().1.to_owned();
    let body = [
        ("csrf", csrf.as_str()),
        ("applicant", applicant),
        ("organisation", "浙江大学公共卫生学院"),
        ("purpose", "研究杭州市医疗机构分布，仅用于学术研究。"),
        ("contact", "+86 571 8888 1234"),
    ]
    .iter()
    .map(|(k, v)| format!("{k}={}", urlencode(v)))
    .collect::<Vec<_>>()
    .join("&");
    let submitted = http()
        .post(format!("{portal}/datasets/{DATASET}/apply"))
        .header("Accept", "text/html")
        .header("Content-Type", "application/x-www-form-urlencoded")
        .header("Cookie", &cookie)
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(submitted.status(), 303);
    format!(
        "{portal}{}",
        submitted.headers()["location"].to_str().unwrap()
    )
}

fn number_of(status_url: &str) -> String {
    status_url.rsplit('/').nth(1).unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_operator_lists_approves_and_rejects_applications_with_the_cli() {
    tokio::time::timeout(Duration::from_secs(240), async {
        let env = TestEnv::new("primary", "dataset-apps").await;
        let namespace = env.namespace("hub").await;
        // The portal node's key, in the Secret the operator would have made for it.
        let mut key = vec![0u8; 32];
        std::fs::File::open("/dev/urandom")
            .unwrap()
            .read_exact(&mut key)
            .unwrap();
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some("national-hub-key".to_owned()),
                namespace: Some(namespace.clone()),
                ..Default::default()
            },
            data: Some([("key".to_owned(), ByteString(key.clone()))].into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(env.client.clone(), &namespace)
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
        let dir = repo_root()
            .join("target/tmp")
            .join(unique_prefix("dataset-apps-key"));
        std::fs::create_dir_all(&dir).unwrap();
        let key_file = dir.join("key");
        std::fs::write(&key_file, &key).unwrap();
        let bin = hub_bin();
        let hub = tokio::task::spawn_blocking(move || {
            HubProcess::start(
                &bin,
                HubOptions::new("national", "national", "extranet")
                    .portal()
                    .key_file(&key_file),
            )
        })
        .await
        .unwrap()
        .unwrap();
        let portal_url = hub.portal_url().unwrap();

        // A conditional dataset on the portal.
        let csv = "name,district\n城东诊所,上城区\n西湖卫生院,西湖区\n";
        let file = gzip(csv);
        let admin = TokenKey::new(key.clone())
            .unwrap()
            .issue(&Claims::new(
                "operator",
                Role::Admin,
                "national",
                Duration::from_secs(60),
            ))
            .unwrap();
        let channel = tonic::transport::Channel::from_shared(hub.endpoint())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let metadata = DatasetMetadata {
            id: DATASET.into(),
            title: "杭州市诊所名录".into(),
            description: "有条件开放的测试数据".into(),
            category: "medical".into(),
            openness: Openness::Conditional as i32,
            license: "CC-BY-4.0".into(),
            version: 1,
            record_count: 2,
            content_sha256: sha256(csv.as_bytes()),
            ..Default::default()
        };
        let parts = vec![
            Part::Metadata(metadata),
            Part::Chunk(FileChunk {
                format: "csv".into(),
                data: file.clone(),
            }),
            Part::End(FileEnd {
                format: "csv".into(),
                sha256: sha256(&file),
                size: file.len() as i64,
            }),
        ]
        .into_iter()
        .map(|part| PublishDatasetRequest { part: Some(part) })
        .collect::<Vec<_>>();
        PortalClient::with_interceptor(channel, BearerToken::new(&admin).unwrap())
            .publish_dataset(futures::stream::iter(parts))
            .await
            .unwrap();

        let cli = Cli {
            kubeconfig: env.kubeconfig.clone(),
            portal: format!("{namespace}/national"),
            endpoint: format!("--hub-endpoint={namespace}/national={}", hub.endpoint()),
        };
        // Nothing yet.
        let empty = cli.ok(&["applications"]);
        assert_eq!(empty.lines().count(), 1, "{empty}");
        assert!(empty.starts_with("ID"), "{empty}");

        let first = apply(&portal_url, "张三").await;
        let second = apply(&portal_url, "李四").await;
        let (first_number, second_number) = (number_of(&first), number_of(&second));

        // The table lists both, newest first, with what the applicants wrote.
        let listed = cli.ok(&["applications"]);
        let rows: Vec<&str> = listed.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{listed}");
        assert!(rows[0].starts_with(&second_number), "{listed}");
        assert!(rows[1].starts_with(&first_number), "{listed}");
        for row in &rows {
            assert!(row.contains("pending") && row.contains(DATASET), "{row}");
            assert!(row.contains("浙江大学公共卫生学院") && row.contains("+86 571 8888 1234"));
            assert!(row.contains("研究杭州市医疗机构分布"), "{row}");
        }
        assert!(rows[1].contains("张三") && rows[0].contains("李四"));
        // JSON for programs, and the filters.
        let json: Vec<serde_json::Value> = cli
            .ok(&["applications", "--output", "json", "--dataset", DATASET])
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(json.len(), 2);
        assert_eq!(json[1]["id"], first_number.as_str());
        assert_eq!(json[1]["applicant"], "张三");
        assert_eq!(json[1]["state"], "pending");
        let other = cli.ok(&["applications", "--dataset", "no.such"]);
        assert_eq!(other.lines().count(), 1, "{other}");

        // Approve the first, reject the second.
        let approved = cli.ok(&["approve", "--application", &first_number, "--days", "7"]);
        assert!(
            approved.contains(&format!("application {first_number} approved")),
            "{approved}"
        );
        let twice = cli.refused(&["approve", "--application", &first_number]);
        assert!(twice.contains("already approved"), "{twice}");
        let no_reason = cli.refused(&["reject", "--application", &second_number, "--reason", " "]);
        assert!(no_reason.contains("--reason must say why"), "{no_reason}");
        let rejected = cli.ok(&[
            "reject",
            "--application",
            &second_number,
            "--reason",
            "用途需进一步说明",
        ]);
        assert!(rejected.contains("rejected"), "{rejected}");
        let unknown = cli.refused(&["approve", "--application", "app-0000000000000000"]);
        assert!(unknown.contains("no application"), "{unknown}");
        let pending = cli.ok(&["applications", "--state", "pending"]);
        assert_eq!(pending.lines().count(), 1, "nothing pending: {pending}");
        let decided = cli.ok(&["applications", "--state", "approved"]);
        assert!(
            decided.contains(&first_number) && decided.contains("approved"),
            "{decided}"
        );
        assert!(!decided.contains(&second_number));

        // The applicant collects the token from the status page, and downloads with it.
        let page = http()
            .get(&first)
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap();
        let cookie = page.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        let csrf = cookie.split_once('=').unwrap().1.to_owned();
        let collected = http()
            .post(format!("{first}/collect"))
            .header("Accept", "text/html")
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", &cookie)
            .body(format!("csrf={csrf}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let marker = "id=\"token\" value=\"";
        let token = collected[collected.find(marker).unwrap() + marker.len()..]
            .split('"')
            .next()
            .unwrap()
            .to_owned();
        let download = http()
            .get(format!("{portal_url}/download/{DATASET}/1/data.csv.gz"))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(download.status(), 200);
        assert_eq!(download.bytes().await.unwrap().as_ref(), file.as_slice());
        let after = cli.ok(&["applications", "--state", "approved"]);
        assert!(after.contains("collected"), "{after}");
        let rejected_page = http()
            .get(&second)
            .header("Accept", "text/html")
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(rejected_page.contains("用途需进一步说明"));

        // A portal whose key the CLI cannot read says so.
        let wrong = Cli {
            portal: format!("{namespace}/elsewhere"),
            ..cli
        };
        let refused = wrong.refused(&["applications"]);
        assert!(
            refused.contains(&format!("reading the key of portal {namespace}/elsewhere")),
            "{refused}"
        );
        drop(hub);
    })
    .await
    .expect("the test took longer than 240 s");
}
