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
use govdc_test_support::hub::{HubOptions, HubProcess, NodeHub};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, free_port, install_crds,
};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::Api;
use kube::api::{DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(90);

fn credit_code(base: &str) -> String {
    govdc_crds::validation::credit_code::complete(base)
}

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

/// Every 18-character run that is a valid resident identity number.
fn identity_numbers_in(text: &str) -> Vec<String> {
    let chars: Vec<char> = text.chars().collect();
    let mut found = Vec::new();
    for start in 0..chars.len().saturating_sub(17) {
        let window: String = chars[start..start + 18].iter().collect();
        if window.chars().take(17).all(|c| c.is_ascii_digit())
            && govdc_crds::validation::resident_id::validate(&window).is_ok()
        {
            found.push(window);
        }
    }
    found
}

/// Every 11-digit run that looks like a mainland mobile number (1[3-9] and nine digits).
fn phone_numbers_in(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found = Vec::new();
    let mut start = 0;
    while start < bytes.len() {
        if !bytes[start].is_ascii_digit() {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !bytes[i].is_ascii_digit())
            .unwrap_or(bytes.len());
        for offset in start..end.saturating_sub(10) {
            let digits = &text[offset..offset + 11];
            if digits.starts_with('1') && (b'3'..=b'9').contains(&digits.as_bytes()[1]) {
                found.push(digits.to_owned());
            }
        }
        start = end;
    }
    found
}

fn gunzip(bytes: &[u8]) -> String {
    let mut text = String::new();
    flate2::read::GzDecoder::new(bytes)
        .read_to_string(&mut text)
        .expect("a gzip file of UTF-8 text");
    text
}

async fn condition(
    api: &Api<OpenDataset>,
    operator: &OperatorProcess,
    name: &str,
    type_: &str,
    status: &str,
) -> Condition {
    govdc_test_support::condition(api, name, type_, status, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()))
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
            &[&endpoint, "--dataset-poll-seconds", "1"],
        );
        for (name, zone, code) in [
            ("hl", "extranet", credit_code("11330100MB000011")),
            ("sec", "intranet", credit_code("11330100MB000012")),
        ] {
            let cloud: DepartmentCloud = serde_json::from_value(json!({
                "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
                "metadata": {"name": format!("{}-{name}", env.prefix), "labels": {TEST_LABEL: env.prefix}},
                "spec": {
                    "department": {"name": format!("{name} 卫生健康委员会"), "creditCode": code, "level": "municipal", "regionCode": "330100"},
                    "networkZone": zone, "protectionLevel": 2, "environments": [{"name": "prod"}],
                    "quota": {"cpu": "1", "memory": "1Gi"},
                },
            }))
            .expect("DepartmentCloud fixture");
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

    let ready = condition(&datasets, &fx.operator, "visits", "Ready", "True").await;
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
    condition(&datasets, &fx.operator, "restricted", "Ready", "True").await;
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
        let ready = condition(&api, &fx.operator, &name, "Ready", "False").await;
        assert_eq!(&ready.reason, reason, "{name}: {ready:?}");
        assert!(ready.message.contains(mention), "{name}: {}", ready.message);
    }
    let ids = fx.published_ids().await;
    assert!(ids.is_empty(), "a refused dataset was published: {ids:?}");
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
    condition(&datasets, &fx.operator, "from-exchange", "Ready", "True").await;
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
