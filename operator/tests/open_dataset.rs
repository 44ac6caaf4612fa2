//! OpenDatasets on the real API server with a real portal hub: a dataset with resident identity
//! numbers, names, phone numbers, birth dates and region codes is published de-identified (the
//! downloaded file is scanned for valid identity checksums and phone numbers, not read by eye);
//! every refusal gets its condition and publishes nothing; a changed source makes a new version;
//! a conditional dataset needs a token; deleting the OpenDataset unpublishes it.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use govdc_crds::{DepartmentCloud, ExchangeNode, OpenDataset};
use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::ListDatasetsRequest;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_test_support::fixtures::{self, credit_code};
use govdc_test_support::hub::{HubOptions, HubProcess, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, install_crds,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(90);

/// A resident identity number (GB 11643) with a valid check character.
fn resident_id(region: &str, birth: &str, serial: u32) -> String {
    let first = format!("{region}{}{serial:03}", birth.replace('-', ""));
    let check = govdc_crds::validation::resident_id::check_character(first.as_bytes());
    format!("{first}{check}")
}

/// A CSV of `rows` residents: identity number, name, phone, birth date, region, sex, visits.
fn residents_csv(rows: u32, salt: u32) -> String {
    let mut csv = String::from("id_number,name,phone,birth_date,region,sex,visits\n");
    let names = ["张伟", "王芳", "李娜", "刘洋", "陈静", "杨磊"];
    for i in 0..rows {
        let region = ["330102", "330106", "330108"][(i % 3) as usize];
        let birth = format!(
            "19{:02}-{:02}-{:02}",
            60 + (i % 4),
            1 + (i % 12),
            1 + (i % 28)
        );
        let phone = format!("13{}{:08}", 8 + (i % 2), 10_000_000 + i * 7919 + salt);
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            resident_id(region, &birth, 100 + i),
            names[(i % 6) as usize],
            phone,
            birth,
            region,
            ["M", "F"][(i % 2) as usize],
            i % 9
        ));
    }
    csv
}

/// An independent scanner of published files, written for these tests (not the operator's
/// content gate): regular expressions with ASCII word boundaries, then each identifier's own
/// check. Returns (kind, what matched) for every identifier in `text`.
fn identifiers_in(text: &str) -> Vec<(&'static str, String)> {
    use regex::Regex;
    use std::sync::LazyLock;
    static PATTERNS: LazyLock<Vec<(&'static str, Regex)>> = LazyLock::new(|| {
        [
            ("residentId", r"(?-u:\b)[0-9]{17}[0-9Xx](?-u:\b)"),
            ("legacyResidentId", r"(?-u:\b)[0-9]{15}(?-u:\b)"),
            (
                "mobilePhone",
                r"(?-u:\b)(?:(?:00)?86[ ()-]{0,2})?1[3-9](?:[ ()-]{0,2}[0-9]){9}(?-u:\b)",
            ),
            ("bankCard", r"(?-u:\b)[0-9](?:[ -]?[0-9]){15,18}(?-u:\b)"),
            (
                "email",
                r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}",
            ),
            (
                "passport",
                r"(?-u:\b)(?:[EGDSP][0-9]{8}|E[A-Z][0-9]{7})(?-u:\b)",
            ),
            (
                "travelPermit",
                r"(?-u:\b)(?:[CLHM][0-9]{8}|[HM][0-9]{10}|C[A-Z][0-9]{7})(?-u:\b)",
            ),
        ]
        .into_iter()
        .map(|(kind, pattern)| (kind, Regex::new(pattern).expect("a pattern")))
        .collect()
    });
    let digits = |m: &str| -> Vec<u32> { m.chars().filter_map(|c| c.to_digit(10)).collect() };
    let mut found = Vec::new();
    for (kind, pattern) in PATTERNS.iter() {
        for m in pattern.find_iter(text) {
            let m = m.as_str();
            let d = digits(m);
            let valid = match *kind {
                "residentId" => {
                    let weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
                    let sum: u32 = d.iter().zip(weights).map(|(a, w)| a * w).sum();
                    let expected = ['1', '0', 'X', '9', '8', '7', '6', '5', '4', '3', '2']
                        [(sum % 11) as usize];
                    m.chars().last().map(|c| c.to_ascii_uppercase()) == Some(expected)
                }
                "legacyResidentId" => {
                    let province = d[0] * 10 + d[1];
                    let (month, day) = (d[8] * 10 + d[9], d[10] * 10 + d[11]);
                    (11..=82).contains(&province)
                        && (1..=12).contains(&month)
                        && (1..=31).contains(&day)
                }
                "bankCard" => {
                    let sum: u32 = d
                        .iter()
                        .rev()
                        .enumerate()
                        .map(|(i, &v)| match (i % 2, v * 2) {
                            (1, doubled) if doubled > 9 => doubled - 9,
                            (1, doubled) => doubled,
                            _ => v,
                        })
                        .sum();
                    sum.is_multiple_of(10)
                }
                _ => true,
            };
            if valid {
                found.push((*kind, m.to_owned()));
            }
        }
    }
    found
}

/// Every valid resident identity number in `text`, by the independent scanner.
fn identity_numbers_in(text: &str) -> Vec<String> {
    identifiers_in(text)
        .into_iter()
        .filter(|(kind, _)| *kind == "residentId" || *kind == "legacyResidentId")
        .map(|(_, m)| m)
        .collect()
}

/// Every mainland mobile number in `text`, by the independent scanner.
fn phone_numbers_in(text: &str) -> Vec<String> {
    identifiers_in(text)
        .into_iter()
        .filter(|(kind, _)| *kind == "mobilePhone")
        .map(|(_, m)| m)
        .collect()
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip file of UTF-8 text");
    text
}

struct Fixture {
    env: TestEnv,
    operator: OperatorProcess,
    portal: HubProcess,
    portal_key: TokenKey,
    portal_http: String,
    namespace: String,
    intranet_namespace: String,
    hub_namespace: String,
    /// `--hub-endpoint` of the portal, for the operator's commands.
    hub_endpoint: String,
}

impl Fixture {
    async fn new() -> Fixture {
        Fixture::polling_every("1").await
    }

    /// The fixture with the operator's source polling (and a refused dataset's next look) every
    /// `seconds`.
    async fn polling_every(seconds: &str) -> Fixture {
        let env = TestEnv::new("primary", "open-dataset").await;
        install_crds(&env.client).await.expect("install CRDs");
        let lease_namespace = env.namespace("lease").await;
        let hub_namespace = env.namespace("hub").await;
        let grpc_port = free_port();
        let endpoint =
            format!("--hub-endpoint={hub_namespace}/national=http://127.0.0.1:{grpc_port}");
        let operator = OperatorProcess::start(
            Path::new(OPERATOR),
            &env,
            &lease_namespace,
            "operator",
            &[&endpoint, "--dataset-poll-seconds", seconds],
        );
        for (name, zone, code) in [
            ("hl", "extranet", credit_code("11330100MB000011")),
            ("sec", "intranet", credit_code("11330100MB000012")),
        ] {
            let cloud = fixtures::department_cloud(
                &env,
                &format!("{}-{name}", env.prefix),
                json!({
                    "department": {"name": format!("{name} 卫生健康委员会"), "creditCode": code, "level": "municipal", "regionCode": "330100"},
                    "networkZone": zone, "protectionLevel": 2,
                    "quota": {"cpu": "1", "memory": "1Gi"},
                }),
            );
            Api::<DepartmentCloud>::all(env.client.clone())
                .create(&PostParams::default(), &cloud)
                .await
                .expect("create DepartmentCloud");
        }
        let node: ExchangeNode = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
            "metadata": {"name": "national", "namespace": hub_namespace, "labels": {TEST_LABEL: env.prefix}},
            "spec": {"level": "national", "regionCode": "100000", "networkZone": "extranet", "openDataPortal": true},
        }))
        .expect("ExchangeNode fixture");
        Api::<ExchangeNode>::namespaced(env.client.clone(), &hub_namespace)
            .create(&PostParams::default(), &node)
            .await
            .expect("create ExchangeNode");

        // Run the portal hub from what the operator made, as its pod would.
        let hub = NodeHub::start(
            &env.client,
            &hub_namespace,
            "national",
            grpc_port,
            HubOptions::portal,
            WAIT,
        )
        .await
        .unwrap_or_else(|e| panic!("the portal hub: {e:#}\n{}", operator.logs()));
        assert!(
            std::fs::read_to_string(&hub.process.config_file)
                .is_ok_and(|config| config.contains("portalListen")),
            "the operator enables the portal in the node's configuration"
        );

        let namespace = format!("{}-hl-prod", env.prefix);
        let intranet_namespace = format!("{}-sec-prod", env.prefix);
        for ns in [&namespace, &intranet_namespace] {
            let namespaces: Api<k8s_openapi::api::core::v1::Namespace> =
                Api::all(env.client.clone());
            eventually(&format!("namespace {ns}"), WAIT, || {
                let namespaces = namespaces.clone();
                let ns = ns.clone();
                async move { namespaces.get_opt(&ns).await.ok()? }
            })
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
        }
        Fixture {
            portal_http: hub.process.portal_url().expect("the portal listens"),
            portal_key: TokenKey::new(hub.key).expect("a strong key"),
            env,
            operator,
            portal: hub.process,
            namespace,
            intranet_namespace,
            hub_endpoint: endpoint,
            hub_namespace,
        }
    }

    async fn secret(&self, namespace: &str, name: &str, key: &str, value: &[u8]) {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            data: Some([(key.to_owned(), ByteString(value.to_vec()))].into()),
            ..Default::default()
        };
        Api::<Secret>::namespaced(self.env.client.clone(), namespace)
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(&secret),
            )
            .await
            .expect("apply Secret");
    }

    fn dataset(&self, namespace: &str, name: &str, spec: Value) -> OpenDataset {
        let mut full = json!({
            "title": "杭州市居民就诊统计",
            "description": "De-identified visits per resident",
            "category": "health",
            "openness": "unconditional",
            "source": {"secretRef": {"name": "residents", "key": "residents.csv"}},
            "portal": {"name": "national", "namespace": self.hub_namespace},
            "pseudonymKeyRef": {"name": "pseudonym-key", "key": "key"},
            "fields": [
                {"name": "id_number", "personal": true, "action": "pseudonymize", "pseudonymize": {"algorithm": "hmac-sm3"}},
                {"name": "name", "personal": true, "action": "drop"},
                {"name": "phone", "personal": true, "action": "mask", "mask": {"keepFirst": 3, "keepLast": 2}},
                {"name": "birth_date", "personal": true, "action": "generalize", "generalize": {"date": "year"}},
                {"name": "region", "action": "generalize", "generalize": {"regionPrefix": 4}},
                {"name": "sex", "action": "keep"},
                {"name": "visits", "action": "keep"},
            ],
            "quasiIdentifiers": ["birth_date", "region", "sex"],
            "kAnonymity": {"minK": 2, "suppressRareGroups": true},
        });
        if let (Value::Object(full), Value::Object(overrides)) = (&mut full, spec) {
            full.extend(overrides);
        }
        serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset",
            "metadata": {"name": name, "namespace": namespace, "labels": {TEST_LABEL: self.env.prefix}},
            "spec": full,
        }))
        .expect("OpenDataset fixture")
    }

    async fn create(&self, dataset: &OpenDataset) {
        let namespace = dataset.metadata.namespace.clone().unwrap_or_default();
        Api::<OpenDataset>::namespaced(self.env.client.clone(), &namespace)
            .create(&PostParams::default(), dataset)
            .await
            .expect("create OpenDataset");
    }

    /// The ids the portal serves, asked over its own gRPC API.
    async fn published_ids(&self) -> Vec<String> {
        let token = self
            .portal_key
            .issue(&Claims::new(
                "operator",
                Role::Admin,
                "national",
                Duration::from_secs(60),
            ))
            .expect("token");
        let channel = tonic::transport::Channel::from_shared(self.portal.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        PortalClient::with_interceptor(channel, BearerToken::new(&token).expect("token"))
            .list_datasets(ListDatasetsRequest {})
            .await
            .expect("ListDatasets")
            .into_inner()
            .datasets
            .into_iter()
            .filter_map(|d| d.metadata.map(|m| m.id))
            .collect()
    }

    /// GETs a path of the portal's HTTP address.
    async fn download(&self, url_or_path: &str, token: Option<&str>) -> (u16, Vec<u8>) {
        let path = url_or_path
            .find("/download/")
            .map_or(url_or_path, |i| &url_or_path[i..]);
        let client = reqwest::Client::new();
        let mut request = client.get(format!("{}{path}", self.portal_http));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET the portal");
        let status = response.status().as_u16();
        (status, response.bytes().await.expect("body").to_vec())
    }
}

#[tokio::test]
async fn a_dataset_with_personal_data_is_published_de_identified_and_versioned() {
    let fx = Fixture::new().await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    let source = residents_csv(60, 0);
    assert!(
        identity_numbers_in(&source).len() == 60,
        "the fixture holds real-looking IDs"
    );
    assert!(phone_numbers_in(&source).len() >= 60, "and phone numbers");
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        source.as_bytes(),
    )
    .await;
    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    fx.create(&fx.dataset(&fx.namespace, "visits", json!({})))
        .await;

    let ready = fx
        .operator
        .condition(&datasets, "visits", "Ready", "True", WAIT)
        .await;
    assert_eq!(ready.reason, "Published", "{ready:?}");
    let status = datasets
        .get("visits")
        .await
        .expect("GET")
        .status
        .expect("status");
    assert_eq!(status.published_version, Some(1));
    assert_eq!(status.download_urls.len(), 2, "{:?}", status.download_urls);
    let csv_url = status
        .download_urls
        .iter()
        .find(|u| u.ends_with(".csv.gz"))
        .expect("a CSV download")
        .clone();
    let (code, body) = fx.download(&csv_url, None).await;
    assert_eq!(code, 200);
    use sha2::Digest;
    let digest: String = sha2::Sha256::digest(&body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    assert_eq!(
        Some(digest),
        status.checksum,
        "the status names the file's SHA-256"
    );
    let published = gunzip(&body);
    let rows = published.lines().count() - 1;
    assert_eq!(Some(rows as i64), status.record_count);
    assert!(rows > 0 && rows <= 60);
    assert!(
        identity_numbers_in(&published).is_empty(),
        "identity numbers leaked:\n{published}"
    );
    assert!(
        phone_numbers_in(&published).is_empty(),
        "phone numbers leaked:\n{published}"
    );
    assert_eq!(
        identifiers_in(&published),
        Vec::new(),
        "no identifier of any kind:\n{published}"
    );
    assert!(
        !published.contains("张伟") && !published.contains("王芳"),
        "names leaked"
    );
    assert!(
        published
            .lines()
            .next()
            .is_some_and(|h| !h.contains("name")),
        "the dropped column is gone"
    );
    let (_, json_body) = fx
        .download(
            status
                .download_urls
                .iter()
                .find(|u| u.ends_with(".json.gz"))
                .expect("JSON"),
            None,
        )
        .await;
    let records: Vec<Value> = serde_json::from_str(&gunzip(&json_body)).expect("a JSON array");
    assert_eq!(records.len(), rows);

    // A changed source becomes version 2, served in place of version 1.
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        residents_csv(80, 3).as_bytes(),
    )
    .await;
    let second = eventually("version 2", WAIT, || {
        let datasets = datasets.clone();
        async move {
            let status = datasets.get("visits").await.ok()?.status?;
            (status.published_version == Some(2)).then_some(status)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));
    assert_ne!(second.checksum, status.checksum);
    let (code, body) = fx
        .download(
            second
                .download_urls
                .iter()
                .find(|u| u.ends_with(".csv.gz"))
                .expect("CSV"),
            None,
        )
        .await;
    assert_eq!(code, 200);
    assert!(identity_numbers_in(&gunzip(&body)).is_empty());

    // A conditional dataset needs an approved application's token.
    fx.create(&fx.dataset(
        &fx.namespace,
        "restricted",
        json!({"openness": "conditional"}),
    ))
    .await;
    fx.operator
        .condition(&datasets, "restricted", "Ready", "True", WAIT)
        .await;
    let restricted = datasets
        .get("restricted")
        .await
        .expect("GET")
        .status
        .expect("status");
    let (code, _) = fx.download(&restricted.download_urls[0], None).await;
    assert_eq!(code, 401, "no token, no download");
    // The platform operator approves an application: the command prints its download token.
    let output = std::process::Command::new(OPERATOR)
        .args(["dataset", "token", "--kubeconfig"])
        .arg(&fx.env.kubeconfig)
        .args(["--namespace", &fx.namespace, "--name", "restricted"])
        .args([
            "--applicant",
            "浙江大学公共卫生学院",
            "--days",
            "7",
            &fx.hub_endpoint,
        ])
        .output()
        .expect("run govdc-operator dataset token");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout)
        .expect("UTF-8")
        .trim()
        .to_owned();
    let (code, body) = fx
        .download(&restricted.download_urls[0], Some(&token))
        .await;
    assert_eq!(code, 200, "the approved applicant downloads");
    assert!(identity_numbers_in(&gunzip(&body)).is_empty());
    let (code, _) = fx
        .download(&restricted.download_urls[0], Some("not-a-token"))
        .await;
    assert_eq!(code, 403, "a wrong token is refused");

    // Deleting the OpenDataset unpublishes it.
    datasets
        .delete("visits", &DeleteParams::default())
        .await
        .expect("delete");
    let id = format!("{}.visits", fx.namespace);
    eventually("visits unpublished", WAIT, || {
        let fx = &fx;
        let id = id.clone();
        async move { (!fx.published_ids().await.contains(&id)).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));
    let (code, _) = fx.download(&csv_url, None).await;
    assert_eq!(code, 404, "an unpublished dataset is not served");
}

#[tokio::test]
async fn every_refusal_has_its_condition_and_publishes_nothing() {
    let fx = Fixture::new().await;
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        residents_csv(30, 0).as_bytes(),
    )
    .await;
    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    fx.secret(
        &fx.intranet_namespace,
        "residents",
        "residents.csv",
        residents_csv(30, 0).as_bytes(),
    )
    .await;
    fx.secret(
        &fx.intranet_namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;

    let mut in_clear = fx.dataset(&fx.namespace, "in-clear", json!({}));
    in_clear.spec.fields[2] =
        serde_json::from_value(json!({"name": "phone", "personal": true, "action": "keep"}))
            .expect("field");
    let cases = [
        (
            fx.namespace.clone(),
            in_clear,
            "PersonalFieldInClear",
            "phone",
        ),
        (
            fx.namespace.clone(),
            fx.dataset(
                &fx.namespace,
                "rare",
                json!({"kAnonymity": {"minK": 50, "suppressRareGroups": false}}),
            ),
            "KAnonymityNotMet",
            "50",
        ),
        (
            fx.namespace.clone(),
            fx.dataset(
                &fx.namespace,
                "not-diverse",
                json!({"sensitiveFields": ["visits"], "kAnonymity": {"minK": 2, "minL": 10}}),
            ),
            "LDiversityNotMet",
            "l = 10",
        ),
        (
            fx.namespace.clone(),
            fx.dataset(
                &fx.namespace,
                "capped",
                json!({"kAnonymity": {"minK": 50, "suppressRareGroups": true, "maxSuppressedPercent": 10}}),
            ),
            "SuppressionLimitExceeded",
            "more than the 10%",
        ),
        (
            fx.namespace.clone(),
            fx.dataset(
                &fx.namespace,
                "no-source",
                json!({"source": {"configMapRef": {"name": "missing", "key": "data.csv"}}}),
            ),
            "SourceNotFound",
            "missing",
        ),
        (
            fx.intranet_namespace.clone(),
            fx.dataset(&fx.intranet_namespace, "classified", json!({})),
            "OwnerOnIntranet",
            "intranet",
        ),
    ];
    for (_, dataset, _, _) in &cases {
        fx.create(dataset).await;
    }
    for (namespace, dataset, reason, mention) in &cases {
        let api: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), namespace);
        let name = dataset.metadata.name.clone().unwrap_or_default();
        let ready = fx
            .operator
            .condition(&api, &name, "Ready", "False", WAIT)
            .await;
        assert_eq!(&ready.reason, reason, "{name}: {ready:?}");
        assert!(ready.message.contains(mention), "{name}: {}", ready.message);
    }
    let ids = fx.published_ids().await;
    assert!(ids.is_empty(), "a refused dataset was published: {ids:?}");
}

/// What a dataset names is watched: a dataset created before its source Secret is published as
/// soon as the Secret appears, not at its next periodic look (ten minutes away here).
#[tokio::test]
async fn a_dataset_created_before_its_source_is_published_when_the_source_appears() {
    let fx = Fixture::polling_every("600").await;
    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    fx.create(&fx.dataset(&fx.namespace, "late-source", json!({})))
        .await;
    let api: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    let missing = fx
        .operator
        .condition(&api, "late-source", "Ready", "False", WAIT)
        .await;
    assert_eq!(missing.reason, "SourceNotFound", "{missing:?}");
    // Under RBAC that withholds Secrets cluster-wide the watch of this namespace starts within a
    // rescan (2 s); with these admin credentials it is cluster-wide from the start.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let created = std::time::Instant::now();
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        residents_csv(30, 0).as_bytes(),
    )
    .await;
    fx.operator
        .condition(&api, "late-source", "Ready", "True", WAIT)
        .await;
    let took = created.elapsed();
    eprintln!("the source Secret was seen and the dataset published after {took:?}");
    assert!(
        took < Duration::from_secs(15),
        "published only after {took:?}: the Secret's appearance was not seen"
    );
}

/// A resource of the exchange catalog as the source: the department publishes records on the
/// hub, and the dataset holds all of them, de-identified.
#[tokio::test]
async fn a_catalog_resource_is_published_from_the_exchange() {
    use govdc_hub_api::v1::catalog_client::CatalogClient;
    use govdc_hub_api::v1::exchange_client::ExchangeClient;
    use govdc_hub_api::v1::{PublishRequest, RegisterResourceRequest, Resource, ShareType};

    let fx = Fixture::new().await;
    let department = format!("{}-hl", fx.env.prefix);
    let code = credit_code("11330100MB000011");
    let nodes: Api<ExchangeNode> = Api::namespaced(fx.env.client.clone(), &fx.hub_namespace);
    nodes
        .patch(
            "national",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowedDepartments": [department]}})),
        )
        .await
        .expect("allow the department on the node");
    eventually("the department joined the node", WAIT, || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get("national")
                .await
                .ok()?
                .status?
                .member_count
                .filter(|n| *n >= 1)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));

    let token = fx
        .portal_key
        .issue(&Claims::new(
            &code,
            Role::Member,
            "national",
            Duration::from_secs(600),
        ))
        .expect("a member token");
    let channel = tonic::transport::Channel::from_shared(fx.portal.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let bearer = BearerToken::new(&token).expect("token");
    let resource_code = format!("{code}-0042");
    CatalogClient::with_interceptor(channel.clone(), bearer.clone())
        .register_resource(RegisterResourceRequest {
            resource: Some(Resource {
                code: resource_code.clone(),
                name: "门诊就诊记录".into(),
                share_type: ShareType::Unconditional as i32,
                ..Resource::default()
            }),
        })
        .await
        .expect("register the resource");
    let source = residents_csv(40, 7);
    let mut lines = source.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let records: Vec<Vec<u8>> = lines
        .map(|line| {
            let object: serde_json::Map<String, Value> = header
                .iter()
                .zip(line.split(','))
                .map(|(k, v)| ((*k).to_owned(), json!(v)))
                .collect();
            serde_json::to_vec(&object).expect("JSON record")
        })
        .collect();
    let mut exchange = ExchangeClient::with_interceptor(channel, bearer);
    let mut acks = exchange
        .publish(futures::stream::iter(vec![PublishRequest {
            resource_code: resource_code.clone(),
            records,
        }]))
        .await
        .expect("publish")
        .into_inner();
    let ack = acks.message().await.expect("ack").expect("an ack");
    assert_eq!(ack.last_offset, 40);

    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    fx.create(&fx.dataset(
        &fx.namespace,
        "from-exchange",
        json!({"source": {"exchangeResource": {
            "node": {"name": "national", "namespace": fx.hub_namespace},
            "resourceCode": resource_code,
        }}}),
    ))
    .await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    fx.operator
        .condition(&datasets, "from-exchange", "Ready", "True", WAIT)
        .await;
    let status = datasets
        .get("from-exchange")
        .await
        .expect("GET")
        .status
        .expect("status");
    assert_eq!(
        status.record_count,
        Some(40),
        "every record published on the hub"
    );
    let csv_url = status
        .download_urls
        .iter()
        .find(|u| u.ends_with(".csv.gz"))
        .expect("CSV");
    let (code, body) = fx.download(csv_url, None).await;
    assert_eq!(code, 200);
    let published = gunzip(&body);
    assert_eq!(published.lines().count(), 41);
    assert!(
        identity_numbers_in(&published).is_empty(),
        "identity numbers leaked"
    );
    assert!(
        phone_numbers_in(&published).is_empty(),
        "phone numbers leaked"
    );
}

/// Another department's resource, shared unconditionally among departments but not marked
/// openable by its provider: a department cannot put it on the public portal (the operator says
/// why, the hub would refuse the read too, and nothing is published).
#[tokio::test]
async fn another_departments_shared_but_not_openable_resource_is_not_published() {
    use govdc_hub_api::v1::catalog_client::CatalogClient;
    use govdc_hub_api::v1::exchange_client::ExchangeClient;
    use govdc_hub_api::v1::membership_client::MembershipClient;
    use govdc_hub_api::v1::{
        JoinRequest, PublishRequest, RegisterResourceRequest, Resource, ShareType,
    };

    let fx = Fixture::new().await;
    let department = format!("{}-hl", fx.env.prefix);
    let nodes: Api<ExchangeNode> = Api::namespaced(fx.env.client.clone(), &fx.hub_namespace);
    nodes
        .patch(
            "national",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"allowedDepartments": [department]}})),
        )
        .await
        .expect("allow the department on the node");
    eventually("the department joined the node", WAIT, || {
        let nodes = nodes.clone();
        async move {
            nodes
                .get("national")
                .await
                .ok()?
                .status?
                .member_count
                .filter(|n| *n >= 1)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));

    // The provider: another department, joined to the node for the time it takes to register
    // and publish (the operator may take it out again: its resource stays in the catalogue).
    let provider = credit_code("11330100MB000099");
    let issue = |subject: &str, role: Role| {
        fx.portal_key
            .issue(&Claims::new(
                subject,
                role,
                "national",
                Duration::from_secs(600),
            ))
            .expect("a token")
    };
    let channel = tonic::transport::Channel::from_shared(fx.portal.endpoint())
        .expect("endpoint")
        .connect()
        .await
        .expect("connect");
    let admin = BearerToken::new(&issue("operator", Role::Admin)).expect("token");
    let member = BearerToken::new(&issue(&provider, Role::Member)).expect("token");
    let resource_code = format!("{provider}-0007");
    let records: Vec<Vec<u8>> = residents_csv(10, 3)
        .lines()
        .skip(1)
        .map(|line| {
            serde_json::to_vec(&json!({"id_number": line.split(',').next()})).expect("JSON")
        })
        .collect();
    eventually(
        "the provider's resource registered and published",
        WAIT,
        || {
            let (channel, admin, member) = (channel.clone(), admin.clone(), member.clone());
            let (provider, resource_code, records) =
                (provider.clone(), resource_code.clone(), records.clone());
            async move {
                MembershipClient::with_interceptor(channel.clone(), admin)
                    .join(JoinRequest {
                        credit_code: provider,
                        name: "another department".into(),
                    })
                    .await
                    .ok()?;
                CatalogClient::with_interceptor(channel.clone(), member.clone())
                    .register_resource(RegisterResourceRequest {
                        resource: Some(Resource {
                            code: resource_code.clone(),
                            name: "企业登记信息".into(),
                            // Shared with every department, open type left at its default.
                            share_type: ShareType::Unconditional as i32,
                            ..Resource::default()
                        }),
                    })
                    .await
                    .ok()?;
                let mut acks = ExchangeClient::with_interceptor(channel, member)
                    .publish(futures::stream::iter(vec![PublishRequest {
                        resource_code,
                        records,
                    }]))
                    .await
                    .ok()?
                    .into_inner();
                acks.message().await.ok()?
            }
        },
    )
    .await
    .expect("the provider publishes");

    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    fx.create(&fx.dataset(
        &fx.namespace,
        "not-ours",
        json!({"source": {"exchangeResource": {
            "node": {"name": "national", "namespace": fx.hub_namespace},
            "resourceCode": resource_code,
        }}}),
    ))
    .await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    let refused = fx
        .operator
        .condition(&datasets, "not-ours", "Ready", "False", WAIT)
        .await;
    let refused = eventually("the not-openable refusal", WAIT, || {
        let datasets = datasets.clone();
        async move {
            let ready = datasets
                .get("not-ours")
                .await
                .ok()?
                .status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready")?;
            ready.message.contains("不予开放").then_some(ready)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}: last {refused:?}\n{}", fx.operator.logs()));
    assert_eq!(refused.reason, "SourceUnreadable", "{refused:?}");
    assert!(refused.message.contains(&provider), "{refused:?}");
    assert!(
        refused.message.contains("only its provider may publish it"),
        "{refused:?}"
    );
    let ids: Vec<String> = fx.json("/api/datasets").await["datasets"]
        .as_array()
        .expect("datasets")
        .iter()
        .filter_map(|d| d["id"].as_str().map(str::to_owned))
        .collect();
    assert!(
        !ids.iter().any(|id| id.ends_with(".not-ours")),
        "another department's resource was published: {ids:?}"
    );
}

impl Fixture {
    /// GETs a JSON document of the portal's HTTP address.
    async fn json(&self, path: &str) -> Value {
        let response = reqwest::get(format!("{}{path}", self.portal_http))
            .await
            .expect("GET the portal");
        assert_eq!(response.status().as_u16(), 200, "{path}");
        serde_json::from_slice(&response.bytes().await.expect("body")).expect("JSON")
    }

    /// The portal's audit records, asked over its own gRPC API.
    async fn audit_records(&self) -> Vec<govdc_hub_api::v1::AuditRecord> {
        use govdc_hub_api::v1::ListAuditRecordsRequest;
        use govdc_hub_api::v1::audit_client::AuditClient;
        let token = self
            .portal_key
            .issue(&Claims::new(
                "operator",
                Role::Admin,
                "national",
                Duration::from_secs(60),
            ))
            .expect("token");
        let channel = tonic::transport::Channel::from_shared(self.portal.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect");
        AuditClient::with_interceptor(channel, BearerToken::new(&token).expect("token"))
            .list_audit_records(ListAuditRecordsRequest {
                after_seq: 0,
                limit: 1000,
            })
            .await
            .expect("ListAuditRecords")
            .into_inner()
            .records
    }

    async fn status(&self, name: &str) -> govdc_crds::OpenDatasetStatus {
        Api::<OpenDataset>::namespaced(self.env.client.clone(), &self.namespace)
            .get(name)
            .await
            .expect("GET")
            .status
            .expect("status")
    }
}

/// Residents with a free-text note and an old identity number column, both `keep` and not
/// marked personal: the spec forgets them. `notes` gives each row's note.
fn residents_with_notes(notes: &[String], old_ids: &[String]) -> String {
    let base = residents_csv(notes.len() as u32, 0);
    let mut lines = base.lines();
    let mut csv = format!("{},note,old_id\n", lines.next().expect("header"));
    for (i, line) in lines.enumerate() {
        csv.push_str(&format!(
            "{line},\"{}\",{}\n",
            notes[i],
            old_ids.get(i).map_or("", String::as_str)
        ));
    }
    csv
}

/// A 15-digit identity number of before 1999 (region, YYMMDD, sequence).
fn legacy_id(region: &str, birth: &str, serial: u32) -> String {
    format!("{region}{}{serial:03}", &birth.replace('-', "")[2..])
}

#[tokio::test]
async fn identifiers_a_spec_forgot_refuse_the_version_and_the_served_one_stays() {
    let fx = Fixture::new().await;
    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    let plain: Vec<String> = (0..40).map(|i| format!("第{i}次复诊，情况稳定")).collect();
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        residents_with_notes(&plain, &[]).as_bytes(),
    )
    .await;
    let mut dataset = fx.dataset(&fx.namespace, "notes", json!({}));
    for name in ["note", "old_id"] {
        dataset
            .spec
            .fields
            .push(serde_json::from_value(json!({"name": name, "action": "keep"})).expect("field"));
    }
    fx.create(&dataset).await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    fx.operator
        .condition(&datasets, "notes", "Ready", "True", WAIT)
        .await;
    let served = fx.status("notes").await;
    assert_eq!(served.published_version, Some(1));
    let risk = served
        .reidentification_risk
        .clone()
        .expect("the status reports the re-identification risk");
    assert!(
        risk.smallest_group >= 2 && risk.highest_prosecutor_risk_percent <= 50.0,
        "{risk:?}"
    );

    // Every kind, in every written form, hidden in free text; and a column of legacy numbers.
    let written = [
        ("residentId", resident_id("110105", "1949-12-31", 2)),
        (
            "residentId",
            resident_id("330106", "1985-02-03", 17).to_lowercase(),
        ),
        ("mobilePhone", "13810001000".to_owned()),
        ("mobilePhone", "+86 138 1000 2000".to_owned()),
        ("mobilePhone", "0086-139-1000-3000".to_owned()),
        ("mobilePhone", "(+86) 13710004000".to_owned()),
        ("mobilePhone", "(0086)136 1000 5000".to_owned()),
        ("mobilePhone", "135-1000-6000".to_owned()),
        ("bankCard", "6222021234567890128".to_owned()),
        ("bankCard", "4111 1111 1111 1111".to_owned()),
        ("email", "zhang.wei@example.com.cn".to_owned()),
        ("passport", "E12345678".to_owned()),
        ("passport", "EA1234567".to_owned()),
        ("travelPermit", "C98765432".to_owned()),
        ("travelPermit", "H1234567890".to_owned()),
        ("travelPermit", "L12345678".to_owned()),
        ("legacyResidentId", legacy_id("330102", "1962-07-15", 31)),
    ];
    let notes: Vec<String> = (0..40)
        .map(|i| match written.get(i) {
            Some((_, id)) => format!("患者自述联系方式{id}，请回访"),
            None => format!("第{i}次复诊"),
        })
        .collect();
    let old_ids: Vec<String> = (0..40)
        .map(|i| legacy_id("330106", "1958-03-09", i))
        .collect();
    let changed = residents_with_notes(&notes, &old_ids);
    // The test's own scanner sees what it is meant to catch.
    for (kind, id) in &written {
        assert!(
            identifiers_in(&format!(" {id} "))
                .iter()
                .any(|(k, _)| k == kind),
            "the test scanner finds {kind} {id}"
        );
    }
    fx.secret(
        &fx.namespace,
        "residents",
        "residents.csv",
        changed.as_bytes(),
    )
    .await;
    let ready = fx
        .operator
        .condition(&datasets, "notes", "Ready", "False", WAIT)
        .await;
    assert_eq!(ready.reason, "PersonalDataDetected", "{ready:?}");
    let expected_counts = [
        ("residentId", 2),
        ("legacyResidentId", 1),
        ("mobilePhone", 6),
        ("bankCard", 2),
        ("email", 1),
        ("passport", 2),
        ("travelPermit", 3),
    ];
    for (kind, records) in expected_counts {
        assert!(
            ready
                .message
                .contains(&format!("note {kind} in {records} records")),
            "{kind}: {}",
            ready.message
        );
    }
    assert!(
        ready
            .message
            .contains("old_id legacyResidentId in 40 records"),
        "{}",
        ready.message
    );
    assert!(
        ready.message.contains("version 1 stays served"),
        "{}",
        ready.message
    );
    for (_, id) in &written {
        assert!(
            !ready.message.contains(id.as_str()),
            "a value in the message: {id}"
        );
    }
    assert!(!ready.message.contains(&old_ids[0]));
    let refused = fx.status("notes").await;
    assert_eq!(refused.published_version, Some(1), "nothing new published");
    let mut findings: Vec<(String, String, i64)> = refused
        .personal_data_findings
        .iter()
        .map(|f| {
            (
                f.field.clone(),
                serde_json::to_value(f.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                f.records,
            )
        })
        .collect();
    findings.sort();
    let mut expected: Vec<(String, String, i64)> = expected_counts
        .iter()
        .map(|(kind, n)| ("note".to_owned(), (*kind).to_owned(), *n))
        .chain([("old_id".to_owned(), "legacyResidentId".to_owned(), 40)])
        .collect();
    expected.sort();
    assert_eq!(
        findings, expected,
        "the status names fields, kinds and counts"
    );
    // The previous version is still what the portal serves, and it is clean.
    let api = fx
        .json(&format!("/api/datasets/{}.notes", fx.namespace))
        .await;
    assert_eq!(api["version"], 1, "{api}");
    let csv_url = refused
        .download_urls
        .iter()
        .find(|u| u.ends_with(".csv.gz"))
        .expect("CSV");
    let (code, body) = fx.download(csv_url, None).await;
    assert_eq!(code, 200);
    let published = gunzip(&body);
    assert!(published.contains("复诊"));
    assert_eq!(identifiers_in(&published), Vec::new(), "{published}");
    // A Warning event, which follows the status write.
    let events = eventually("a PersonalDataDetected event", WAIT, || {
        let events = fx.env.kubectl(&[
            "get",
            "events",
            "-n",
            &fx.namespace,
            "--field-selector",
            "reason=PersonalDataDetected,type=Warning",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        let text = String::from_utf8_lossy(&events.stdout).to_string();
        async move { text.contains("content gate").then_some(text) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));
    for (_, id) in &written {
        assert!(!events.contains(id.as_str()), "a value in an event");
    }
}

#[tokio::test]
async fn a_declared_identifier_is_published_with_its_justification_and_audited() {
    let fx = Fixture::new().await;
    fx.secret(
        &fx.namespace,
        "pseudonym-key",
        "key",
        b"a dataset key of thirty-two bytes!",
    )
    .await;
    let switchboards: Vec<String> = (0..40)
        .map(|i| format!("+86 138 0571 {:04}", i % 4))
        .collect();
    let mut csv = String::new();
    for (i, line) in residents_csv(40, 0).lines().enumerate() {
        let extra = if i == 0 {
            "switchboard"
        } else {
            &switchboards[i - 1]
        };
        csv.push_str(&format!("{line},{extra}\n"));
    }
    fx.secret(&fx.namespace, "residents", "residents.csv", csv.as_bytes())
        .await;
    let justification = "医院总机号码，依《医疗机构管理条例》向社会公开";
    let switchboard = json!({
        "name": "switchboard", "action": "keep",
        "declaredIdentifiers": {"kinds": ["mobilePhone"], "justification": justification},
    });

    // Admission: a declaration needs a justification that says something.
    for blank in [json!("   "), json!("")] {
        let mut field = switchboard.clone();
        field["declaredIdentifiers"]["justification"] = blank;
        let mut dataset = fx.dataset(&fx.namespace, "blank", json!({}));
        dataset
            .spec
            .fields
            .push(serde_json::from_value(field).expect("field"));
        let error = Api::<OpenDataset>::namespaced(fx.env.client.clone(), &fx.namespace)
            .create(&PostParams::default(), &dataset)
            .await
            .expect_err("admission refuses a blank justification");
        assert!(error.to_string().contains("justification"), "{error}");
    }

    let mut dataset = fx.dataset(&fx.namespace, "hospitals", json!({}));
    dataset
        .spec
        .fields
        .push(serde_json::from_value(switchboard).expect("field"));
    fx.create(&dataset).await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);
    let ready = fx
        .operator
        .condition(&datasets, "hospitals", "Ready", "True", WAIT)
        .await;
    assert_eq!(ready.reason, "Published", "{ready:?}");
    let status = fx.status("hospitals").await;
    let csv_url = status
        .download_urls
        .iter()
        .find(|u| u.ends_with(".csv.gz"))
        .expect("CSV");
    let (_, body) = fx.download(csv_url, None).await;
    let published = gunzip(&body);
    let mut reader = csv::Reader::from_reader(published.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .expect("header")
        .iter()
        .map(str::to_owned)
        .collect();
    let mut switchboard_phones = 0;
    for record in reader.records() {
        let record = record.expect("a record");
        for (column, value) in header.iter().zip(record.iter()) {
            let found = identifiers_in(value);
            if column == "switchboard" {
                assert_eq!(found.len(), 1, "{value}: {found:?}");
                assert_eq!(found[0].0, "mobilePhone");
                switchboard_phones += 1;
            } else {
                assert_eq!(found, Vec::new(), "{column}: {value}");
            }
        }
    }
    assert_eq!(Some(i64::from(switchboard_phones)), status.record_count);
    // The event follows the status write.
    let said = format!(
        "identifiers published as declared: switchboard mobilePhone in {switchboard_phones} records"
    );
    eventually(
        "the Published event names the declared identifiers",
        WAIT,
        || {
            let events = fx.env.kubectl(&[
                "get",
                "events",
                "-n",
                &fx.namespace,
                "--field-selector",
                "reason=Published,involvedObject.name=hospitals",
                "-o",
                "jsonpath={.items[*].message}",
            ]);
            let found = String::from_utf8_lossy(&events.stdout).contains(&said);
            async move { found.then_some(()) }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", fx.operator.logs()));

    // The portal says so, with the justification, in its own API and in CKAN's.
    let id = format!("{}.hospitals", fx.namespace);
    let api = fx.json(&format!("/api/datasets/{id}")).await;
    let field = api["fields"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["name"] == "switchboard"))
        .expect("the switchboard field")
        .clone();
    assert_eq!(
        field["declaredIdentifiers"],
        json!({"kinds": ["mobilePhone"], "justification": justification}),
        "{api}"
    );
    assert!(api["fields"].as_array().is_some_and(|f| {
        f.iter()
            .filter(|f| f.get("declaredIdentifiers").is_some())
            .count()
            == 1
    }));
    let risk = &api["reidentificationRisk"];
    assert!(
        risk["smallestGroup"].as_i64().is_some_and(|n| n >= 2),
        "{api}"
    );
    let ckan = fx
        .json(&format!("/api/3/action/package_show?id={id}"))
        .await;
    let extras = ckan["result"]["extras"].as_array().expect("extras").clone();
    let declared = extras
        .iter()
        .find(|e| e["key"] == "declared_identifiers")
        .and_then(|e| e["value"].as_str())
        .expect("a declared_identifiers extra");
    let declared: Value = serde_json::from_str(declared).expect("JSON text");
    assert_eq!(declared[0]["name"], "switchboard");
    assert_eq!(
        declared[0]["declaredIdentifiers"]["justification"],
        justification
    );
    // And its audit log recorded it with the publication.
    let records = fx.audit_records().await;
    let publish = records
        .iter()
        .find(|r| r.action == "portal.publish" && r.subject == id)
        .expect("a portal.publish record");
    let detail: Value = serde_json::from_str(&publish.detail).expect("JSON detail");
    assert_eq!(
        detail["declaredIdentifiers"][0]["declaredIdentifiers"]["justification"], justification,
        "{detail}"
    );
}

#[tokio::test]
async fn a_gb18030_source_round_trips_its_rare_characters() {
    let fx = Fixture::new().await;
    // Python's own GB 18030 codec over this text (𠮷 is four bytes, 95 34 b2 35; 䶮 is fe 9f).
    let text = "hospital,district,beds\n𠮷䶮中医院,330106,120\n龘靐齉齾社区卫生服务中心,330108,30\n杭州市第一人民医院,330102,900\n";
    let hex = "686f73706974616c2c64697374726963742c626564730a9534b235fe9fd6d0d2bdd4ba2c3333303130362c3132300afd93ec68fd51fd85c9e7c7f8cec0c9fab7fecef1d6d0d0c42c3333303130382c33300ababcd6ddcad0b5dad2bbc8cbc3f1d2bdd4ba2c3333303130322c3930300a";
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
        .collect();
    assert!(
        std::str::from_utf8(&bytes).is_err(),
        "the source is not UTF-8"
    );
    fx.secret(&fx.namespace, "hospitals-gbk", "hospitals.csv", &bytes)
        .await;
    let spec = |encoding: Option<&str>| {
        let mut source = json!({"secretRef": {"name": "hospitals-gbk", "key": "hospitals.csv"}});
        if let Some(encoding) = encoding {
            source["encoding"] = json!(encoding);
        }
        json!({
            "source": source,
            "fields": [
                {"name": "hospital", "action": "keep"},
                {"name": "district", "action": "keep"},
                {"name": "beds", "action": "keep"},
            ],
            "quasiIdentifiers": [],
            "kAnonymity": null,
            "pseudonymKeyRef": null,
            "csvByteOrderMark": true,
        })
    };
    // Admission: an exchange resource's records are UTF-8 JSON; GB 18030 applies to CSV text.
    let mut exchange = spec(Some("gb18030"));
    exchange["source"] = json!({"encoding": "gb18030", "exchangeResource": {
        "node": {"name": "national", "namespace": fx.hub_namespace}, "resourceCode": "x"}});
    let error = Api::<OpenDataset>::namespaced(fx.env.client.clone(), &fx.namespace)
        .create(
            &PostParams::default(),
            &fx.dataset(&fx.namespace, "exchange-gbk", exchange),
        )
        .await
        .expect_err("admission refuses an encoding on an exchange resource");
    assert!(error.to_string().contains("always UTF-8"), "{error}");

    fx.create(&fx.dataset(&fx.namespace, "gbk", spec(Some("gb18030"))))
        .await;
    fx.create(&fx.dataset(&fx.namespace, "undeclared", spec(None)))
        .await;
    let datasets: Api<OpenDataset> = Api::namespaced(fx.env.client.clone(), &fx.namespace);

    let refused = fx
        .operator
        .condition(&datasets, "undeclared", "Ready", "False", WAIT)
        .await;
    assert_eq!(refused.reason, "SourceMalformed", "{refused:?}");
    assert!(
        refused.message.contains("spec.source.encoding") && refused.message.contains("gb18030"),
        "the message says which field to set: {}",
        refused.message
    );

    fx.operator
        .condition(&datasets, "gbk", "Ready", "True", WAIT)
        .await;
    let status = fx.status("gbk").await;
    let url = |ext: &str| {
        status
            .download_urls
            .iter()
            .find(|u| u.ends_with(ext))
            .expect("a download")
            .clone()
    };
    let (_, csv) = fx.download(&url(".csv.gz"), None).await;
    let published = gunzip(&csv);
    assert_eq!(
        published,
        format!("\u{feff}{text}"),
        "UTF-8 with a byte-order mark, every character as it was"
    );
    let (_, json_body) = fx.download(&url(".json.gz"), None).await;
    let records: Vec<Value> = serde_json::from_str(&gunzip(&json_body)).expect("JSON");
    assert_eq!(records[0]["hospital"], "𠮷䶮中医院");
    assert_eq!(records[1]["hospital"], "龘靐齉齾社区卫生服务中心");
}
