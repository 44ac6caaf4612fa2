//! Who may call what: every RPC of the hub, tried on a real hub process by every kind of
//! caller (no token, a member that provides the resource, another member, a child node, the
//! operator), each answer's code asserted against one table. A new RPC without a row here fails
//! the count at the end.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use futures::future::BoxFuture;
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::exchange_client::ExchangeClient;
use govdc_hub_api::v1::federation_client::FederationClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::portal_client::PortalClient;
use govdc_hub_api::v1::statistics_client::StatisticsClient;
use govdc_hub_api::v1::*;
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::Code;
use tonic::metadata::AsciiMetadataValue;
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

/// Adds the caller's token, or nothing for an anonymous caller.
#[derive(Clone)]
struct Token(Option<AsciiMetadataValue>);

impl Interceptor for Token {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

type Authed = InterceptedService<Channel, Token>;

#[derive(Clone)]
struct Caller {
    node: NodeClient<Authed>,
    membership: MembershipClient<Authed>,
    catalog: CatalogClient<Authed>,
    exchange: ExchangeClient<Authed>,
    audit: AuditClient<Authed>,
    stats: StatisticsClient<Authed>,
    federation: FederationClient<Authed>,
    portal: PortalClient<Authed>,
}

impl Caller {
    fn new(hub: &HubProcess, token: Option<String>) -> Caller {
        let channel = channel(hub);
        let token = Token(token.map(|t| format!("Bearer {t}").parse().unwrap()));
        Caller {
            node: NodeClient::with_interceptor(channel.clone(), token.clone()),
            membership: MembershipClient::with_interceptor(channel.clone(), token.clone()),
            catalog: CatalogClient::with_interceptor(channel.clone(), token.clone()),
            exchange: ExchangeClient::with_interceptor(channel.clone(), token.clone()),
            audit: AuditClient::with_interceptor(channel.clone(), token.clone()),
            stats: StatisticsClient::with_interceptor(channel.clone(), token.clone()),
            federation: FederationClient::with_interceptor(channel.clone(), token.clone()),
            portal: PortalClient::with_interceptor(channel, token),
        }
    }
}

/// The code of an answer; a stream's code is its first error, else OK.
fn code_of<T>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

async fn drain<T>(
    result: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
) -> Result<(), tonic::Status> {
    let mut stream = result?.into_inner();
    while stream.message().await?.is_some() {}
    Ok(())
}

type Call = Box<dyn Fn(Caller) -> BoxFuture<'static, Code> + Send + Sync>;

use Code::{
    InvalidArgument as IA, NotFound as NF, Ok as OK, PermissionDenied as PD, Unauthenticated as UA,
};

#[tokio::test(flavor = "multi_thread")]
async fn every_rpc_answers_every_caller_role_as_the_table_says() {
    bounded(Duration::from_secs(180), async {
        let hub = HubProcess::start(
            &bin(),
            HubOptions::new("national", "national", "extranet").portal(),
        )
        .unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, other_code) = (credit_code(501), credit_code(502));
        join(&mut admin, &provider_code, "provider").await;
        join(&mut admin, &other_code, "other").await;
        let code = format!("{provider_code}-0001");
        register(
            &mut Clients::member(&hub, &provider_code),
            &code,
            ShareType::Unconditional,
        )
        .await;
        let grant = Clients::member(&hub, &other_code)
            .exchange
            .request_access(RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "the table".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();

        let callers = [
            ("none", Caller::new(&hub, None)),
            (
                "member",
                Caller::new(&hub, Some(hub.token("member", &provider_code).unwrap())),
            ),
            (
                "other member",
                Caller::new(&hub, Some(hub.token("member", &other_code).unwrap())),
            ),
            (
                "node",
                Caller::new(&hub, Some(hub.token("node", "zhejiang").unwrap())),
            ),
            (
                "admin",
                Caller::new(&hub, Some(hub.token("admin", "operator").unwrap())),
            ),
        ];

        let c = code.clone();
        let g = grant.id.clone();
        let joined = credit_code(503);
        let stranger = credit_code(504);
        // (rpc, call, [none, member (the provider), other member, node, admin])
        let table: Vec<(&str, Call, [Code; 5])> = vec![
            (
                "Node.GetNodeInfo",
                Box::new(|mut k: Caller| {
                    Box::pin(
                        async move { code_of(k.node.get_node_info(GetNodeInfoRequest {}).await) },
                    )
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Node.SetParent",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.node.set_parent(SetParentRequest::default()).await)
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Node.ExportState",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(drain(k.node.export_state(ExportStateRequest {}).await).await)
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            // The operator's copy without a checksum replaces nothing: INVALID_ARGUMENT.
            (
                "Node.ImportState",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        let chunks = tokio_stream::iter(vec![ImportStateChunk {
                            data: b"not a database".to_vec(),
                            sha256: String::new(),
                            replace: true,
                        }]);
                        code_of(k.node.import_state(chunks).await)
                    })
                }),
                [UA, PD, PD, PD, IA],
            ),
            (
                "Membership.Join",
                Box::new(move |mut k: Caller| {
                    let joined = joined.clone();
                    Box::pin(async move {
                        code_of(
                            k.membership
                                .join(JoinRequest {
                                    credit_code: joined,
                                    name: "joined".into(),
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Membership.Leave",
                Box::new(move |mut k: Caller| {
                    let stranger = stranger.clone();
                    Box::pin(async move {
                        code_of(
                            k.membership
                                .leave(LeaveRequest {
                                    credit_code: stranger,
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Membership.ListMembers",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.membership.list_members(ListMembersRequest {}).await)
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Membership.WhoAmI",
                Box::new(|mut k: Caller| {
                    Box::pin(async move { code_of(k.membership.who_am_i(WhoAmIRequest {}).await) })
                }),
                [UA, OK, OK, OK, OK],
            ),
            // Only the provider may update its resource; another member is refused it.
            (
                "Catalog.RegisterResource",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(
                                k.catalog
                                    .register_resource(RegisterResourceRequest {
                                        resource: Some(resource(&c, ShareType::Unconditional)),
                                    })
                                    .await,
                            )
                        })
                    }
                }),
                [UA, OK, PD, PD, PD],
            ),
            (
                "Catalog.ListResources",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.catalog
                                .list_resources(ListResourcesRequest::default())
                                .await,
                        )
                    })
                }),
                [UA, OK, OK, PD, OK],
            ),
            (
                "Catalog.GetResource",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(k.catalog.get_resource(GetResourceRequest { code: c }).await)
                        })
                    }
                }),
                [UA, OK, OK, PD, OK],
            ),
            // A provider needs no grant on its own resource: it is told so.
            (
                "Exchange.RequestAccess",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(
                                k.exchange
                                    .request_access(RequestAccessRequest {
                                        resource_code: c,
                                        purpose: "x".into(),
                                    })
                                    .await,
                            )
                        })
                    }
                }),
                [UA, IA, OK, PD, PD],
            ),
            (
                "Exchange.DecideAccess",
                Box::new({
                    let g = g.clone();
                    move |mut k: Caller| {
                        let g = g.clone();
                        Box::pin(async move {
                            code_of(
                                k.exchange
                                    .decide_access(DecideAccessRequest {
                                        grant_id: g,
                                        approve: true,
                                        reason: String::new(),
                                    })
                                    .await,
                            )
                        })
                    }
                }),
                [UA, OK, PD, PD, PD],
            ),
            (
                "Exchange.ListGrants",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.exchange.list_grants(ListGrantsRequest::default()).await)
                    })
                }),
                [UA, OK, OK, PD, OK],
            ),
            // Another member's records refused on the stream: only the provider publishes.
            (
                "Exchange.Publish",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            let batch = PublishRequest {
                                resource_code: c,
                                records: vec![br#"{"company":"a"}"#.to_vec()],
                            };
                            code_of(
                                drain(k.exchange.publish(tokio_stream::iter(vec![batch])).await)
                                    .await,
                            )
                        })
                    }
                }),
                [UA, OK, PD, PD, PD],
            ),
            (
                "Exchange.Fetch",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(
                                drain(
                                    k.exchange
                                        .fetch(FetchRequest {
                                            resource_code: c,
                                            ..Default::default()
                                        })
                                        .await,
                                )
                                .await,
                            )
                        })
                    }
                }),
                [UA, OK, OK, PD, PD],
            ),
            // The same read declared for the public portal: the provider has not opened it.
            (
                "Exchange.Fetch (publication)",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(
                                drain(
                                    k.exchange
                                        .fetch(FetchRequest {
                                            resource_code: c,
                                            from_start: true,
                                            publication: Openness::Unconditional as i32,
                                            ..Default::default()
                                        })
                                        .await,
                                )
                                .await,
                            )
                        })
                    }
                }),
                [UA, OK, PD, PD, PD],
            ),
            // A cursor belongs to a grant; the provider holds none on its own resource.
            (
                "Exchange.Ack",
                Box::new({
                    let c = c.clone();
                    move |mut k: Caller| {
                        let c = c.clone();
                        Box::pin(async move {
                            code_of(
                                k.exchange
                                    .ack(AckRequest {
                                        resource_code: c,
                                        offset: 0,
                                    })
                                    .await,
                            )
                        })
                    }
                }),
                [UA, PD, OK, PD, PD],
            ),
            (
                "Audit.ListAuditRecords",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.audit
                                .list_audit_records(ListAuditRecordsRequest::default())
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Audit.VerifyAudit",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.audit.verify_audit(VerifyAuditRequest::default()).await)
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Statistics.GetSharingStats",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.stats.get_sharing_stats(GetSharingStatsRequest {}).await)
                    })
                }),
                [UA, OK, OK, PD, OK],
            ),
            (
                "Federation.SyncCatalog",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.federation
                                .sync_catalog(SyncCatalogRequest {
                                    node: "zhejiang".into(),
                                    level: Level::Provincial as i32,
                                    network: Network::Extranet as i32,
                                    audit_head: Some(AuditHead {
                                        seq: 1,
                                        hash: "0".repeat(64),
                                    }),
                                    ..Default::default()
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, OK, PD],
            ),
            // Runs after the node's sync above recorded its head.
            (
                "Federation.GetAuditAnchor",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.federation
                                .get_audit_anchor(GetAuditAnchorRequest {})
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, OK, PD],
            ),
            // An upload that ends before its metadata publishes nothing.
            (
                "Portal.PublishDataset",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.portal
                                .publish_dataset(tokio_stream::iter(
                                    Vec::<PublishDatasetRequest>::new(),
                                ))
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, IA],
            ),
            (
                "Portal.UnpublishDataset",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.portal
                                .unpublish_dataset(UnpublishDatasetRequest {
                                    id: "no.such".into(),
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Portal.ListDatasets",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(k.portal.list_datasets(ListDatasetsRequest {}).await)
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Portal.IssueDownloadToken",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.portal
                                .issue_download_token(IssueDownloadTokenRequest {
                                    dataset_id: "no.such".into(),
                                    applicant: "someone".into(),
                                    ttl_seconds: 0,
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, NF],
            ),
            (
                "Portal.ListApplications",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.portal
                                .list_applications(ListApplicationsRequest::default())
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, OK],
            ),
            (
                "Portal.DecideApplication",
                Box::new(|mut k: Caller| {
                    Box::pin(async move {
                        code_of(
                            k.portal
                                .decide_application(DecideApplicationRequest {
                                    application_id: "app-0000000000000000".into(),
                                    approve: true,
                                    ..Default::default()
                                })
                                .await,
                        )
                    })
                }),
                [UA, PD, PD, PD, NF],
            ),
        ];

        let mut wrong = Vec::new();
        for (rpc, call, expected) in &table {
            for ((role, caller), want) in callers.iter().zip(expected) {
                let got = call(caller.clone()).await;
                if got != *want {
                    wrong.push(format!("{rpc} as {role}: expected {want:?}, got {got:?}"));
                }
            }
        }
        assert!(
            wrong.is_empty(),
            "answers that differ from the table:\n{}",
            wrong.join("\n")
        );

        // Every method of the API has a row (the publication fetch is a second row of Fetch).
        let descriptors = <prost_types::FileDescriptorSet as prost::Message>::decode(
            govdc_hub_api::FILE_DESCRIPTOR_SET,
        )
        .unwrap();
        let methods: usize = descriptors
            .file
            .iter()
            .flat_map(|f| &f.service)
            .map(|s| s.method.len())
            .sum();
        assert_eq!(
            table.len() - 1,
            methods,
            "an RPC without a row in the table"
        );
    })
    .await;
}
