//! Helpers shared by the hub's tests: clients with tokens, credit codes, time bounds.
#![allow(dead_code, clippy::unwrap_used)]

use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::exchange_client::ExchangeClient;
use govdc_hub_api::v1::federation_client::FederationClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::statistics_client::StatisticsClient;
use govdc_hub_api::v1::{
    FetchRequest, Field, JoinRequest, PublishRequest, PublishResponse, Record,
    RegisterResourceRequest, Resource, ShareType, UpdateFrequency,
};
use govdc_test_support::hub::HubProcess;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

/// The hub binary cargo built for these tests.
pub fn bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_govdc-hub"))
}

/// Runs `test` and fails it if it takes longer than `limit`.
pub async fn bounded<F: Future<Output = ()>>(limit: Duration, test: F) {
    tokio::time::timeout(limit, test)
        .await
        .unwrap_or_else(|_| panic!("the test took longer than {limit:?}"));
}

/// A channel to the hub (connected lazily, so it survives the hub's restarts).
pub fn channel(hub: &HubProcess) -> Channel {
    Endpoint::from_shared(hub.endpoint())
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .connect_lazy()
}

type Authed = InterceptedService<Channel, BearerToken>;

/// Every client, with one caller's token.
#[derive(Clone)]
pub struct Clients {
    pub node: NodeClient<Authed>,
    pub membership: MembershipClient<Authed>,
    pub catalog: CatalogClient<Authed>,
    pub exchange: ExchangeClient<Authed>,
    pub audit: AuditClient<Authed>,
    pub stats: StatisticsClient<Authed>,
    pub federation: FederationClient<Authed>,
}

impl Clients {
    pub fn new(hub: &HubProcess, token: &str) -> Clients {
        let channel = channel(hub);
        let auth = BearerToken::new(token).unwrap();
        Clients {
            node: NodeClient::with_interceptor(channel.clone(), auth.clone()),
            membership: MembershipClient::with_interceptor(channel.clone(), auth.clone()),
            catalog: CatalogClient::with_interceptor(channel.clone(), auth.clone()),
            exchange: ExchangeClient::with_interceptor(channel.clone(), auth.clone()),
            audit: AuditClient::with_interceptor(channel.clone(), auth.clone()),
            stats: StatisticsClient::with_interceptor(channel.clone(), auth.clone()),
            federation: FederationClient::with_interceptor(channel, auth),
        }
    }

    pub fn admin(hub: &HubProcess) -> Clients {
        Clients::new(hub, &hub.token("admin", "operator").unwrap())
    }

    pub fn member(hub: &HubProcess, credit_code: &str) -> Clients {
        Clients::new(hub, &hub.token("member", credit_code).unwrap())
    }
}

const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
const WEIGHTS: [usize; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];

/// A valid unified social credit code (GB 32100 check character) numbered `n`.
pub fn credit_code(n: u32) -> String {
    let body = format!("91330100{n:09}");
    let sum: usize = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| ALPHABET.iter().position(|a| *a == b).unwrap() * w)
        .sum();
    let check = ALPHABET[(31 - sum % 31) % 31] as char;
    format!("{body}{check}")
}

/// Joins `code` to the hub as admin.
pub async fn join(admin: &mut Clients, code: &str, name: &str) {
    admin
        .membership
        .join(JoinRequest {
            credit_code: code.to_owned(),
            name: name.to_owned(),
        })
        .await
        .unwrap();
}

/// A resource of `share_type` called `code`.
pub fn resource(code: &str, share_type: ShareType) -> Resource {
    Resource {
        code: code.to_owned(),
        name: format!("resource {code}"),
        description: "test data".to_owned(),
        fields: vec![
            Field {
                name: "company".to_owned(),
                r#type: "string".to_owned(),
                description: "company name".to_owned(),
                personal: false,
            },
            Field {
                name: "founded".to_owned(),
                r#type: "date".to_owned(),
                description: String::new(),
                personal: false,
            },
        ],
        share_type: share_type as i32,
        update_frequency: UpdateFrequency::Daily as i32,
        ..Default::default()
    }
}

/// Registers a resource as `provider`.
pub async fn register(provider: &mut Clients, code: &str, share_type: ShareType) -> Resource {
    provider
        .catalog
        .register_resource(RegisterResourceRequest {
            resource: Some(resource(code, share_type)),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Publishes `batches` on one stream and returns the acknowledgements.
pub async fn publish(
    provider: &mut Clients,
    code: &str,
    batches: Vec<Vec<Vec<u8>>>,
) -> Result<Vec<PublishResponse>, tonic::Status> {
    let requests: Vec<PublishRequest> = batches
        .into_iter()
        .map(|records| PublishRequest {
            resource_code: code.to_owned(),
            records,
        })
        .collect();
    let mut acks = provider
        .exchange
        .publish(tokio_stream::iter(requests))
        .await?
        .into_inner();
    let mut out = Vec::new();
    while let Some(ack) = acks.message().await? {
        out.push(ack);
    }
    Ok(out)
}

/// Fetches every available record (no follow).
pub async fn fetch_all(consumer: &mut Clients, code: &str) -> Result<Vec<Record>, tonic::Status> {
    let mut stream = consumer
        .exchange
        .fetch(FetchRequest {
            resource_code: code.to_owned(),
            max_records: 0,
            batch_size: 0,
            follow: false,
            from_start: false,
            ..Default::default()
        })
        .await?
        .into_inner();
    let mut records = Vec::new();
    while let Some(response) = stream.message().await? {
        records.extend(response.records);
    }
    Ok(records)
}

/// Polls `check` every 100 ms until it returns Some, or panics after `limit` saying `what`.
pub async fn eventually<T, F, Fut>(limit: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = std::time::Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            started.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
