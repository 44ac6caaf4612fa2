//! End to end on the real hub process and its real store: register, request, approve, publish,
//! fetch, ack, audit verify; restarts (graceful and SIGKILL) in the middle lose nothing.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{
    AckRequest, DecideAccessRequest, FetchRequest, GetSharingStatsRequest, GrantState,
    ListAuditRecordsRequest, PublishRequest, RequestAccessRequest, ShareType, VerifyAuditRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tonic::Code;

fn record_data(batch: usize, i: usize) -> Vec<u8> {
    format!(r#"{{"batch":{batch},"i":{i},"company":"杭州某某科技有限公司"}}"#).into_bytes()
}

#[tokio::test(flavor = "multi_thread")]
async fn register_request_approve_publish_fetch_ack_and_audit_across_restarts() {
    bounded(Duration::from_secs(180), async {
        let mut hub = HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code) = (credit_code(1), credit_code(2));
        join(&mut admin, &provider_code, "浙江省市场监督管理局").await;
        join(&mut admin, &consumer_code, "浙江省税务局").await;
        let mut provider = Clients::member(&hub, &provider_code);
        let mut consumer = Clients::member(&hub, &consumer_code);

        let open = format!("{provider_code}-0001");
        let conditional = format!("{provider_code}-0002");
        let closed = format!("{provider_code}-0003");
        let registered = register(&mut provider, &open, ShareType::Unconditional).await;
        assert_eq!(registered.provider, provider_code);
        assert_eq!(registered.node, "national");
        register(&mut provider, &conditional, ShareType::Conditional).await;
        register(&mut provider, &closed, ShareType::NotShared).await;

        // The share type decides the request's fate.
        let ask = |code: &str| RequestAccessRequest {
            resource_code: code.to_owned(),
            purpose: "企业登记信息核验".to_owned(),
        };
        let g = consumer.exchange.request_access(ask(&open)).await.unwrap().into_inner();
        assert_eq!(g.state, GrantState::Approved as i32);
        let g = consumer.exchange.request_access(ask(&closed)).await.unwrap().into_inner();
        assert_eq!(g.state, GrantState::Refused as i32);
        let pending = consumer.exchange.request_access(ask(&conditional)).await.unwrap().into_inner();
        assert_eq!(pending.state, GrantState::Pending as i32);
        // Asking again is idempotent.
        let again = consumer.exchange.request_access(ask(&conditional)).await.unwrap().into_inner();
        assert_eq!(again.id, pending.id);

        let acks = publish(
            &mut provider,
            &conditional,
            vec![(0..3).map(|i| record_data(0, i)).collect(), (0..2).map(|i| record_data(1, i)).collect()],
        )
        .await
        .unwrap();
        assert_eq!(
            acks.iter().map(|a| (a.first_offset, a.last_offset)).collect::<Vec<_>>(),
            vec![(1, 3), (4, 5)]
        );

        // Pending is not approved.
        let refused = fetch_all(&mut consumer, &conditional).await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");

        let approved = provider
            .exchange
            .decide_access(DecideAccessRequest {
                grant_id: pending.id.clone(),
                approve: true,
                reason: "用于税务登记核验".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(approved.state, GrantState::Approved as i32);

        let records = fetch_all(&mut consumer, &conditional).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![1, 2, 3, 4, 5]);
        assert_eq!(records[3].data, record_data(1, 0));
        // Not acknowledged: delivered again (at least once).
        let records = fetch_all(&mut consumer, &conditional).await.unwrap();
        assert_eq!(records.len(), 5);
        let acked = consumer
            .exchange
            .ack(AckRequest {
                resource_code: conditional.clone(),
                offset: 2,
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(acked.acked_offset, 2);
        let records = fetch_all(&mut consumer, &conditional).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4, 5]);

        // A graceful restart in the middle: the cursor, the grant and the records survive.
        let status = hub.stop().unwrap();
        assert!(status.success(), "SIGTERM should exit cleanly: {status}\n{}", hub.logs());
        hub.restart().unwrap();
        let records = fetch_all(&mut consumer, &conditional).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4, 5]);
        assert_eq!(records[2].data, record_data(1, 1));

        // SIGKILL right after an acknowledged publish: the acknowledged batch is there.
        let acks = publish(&mut provider, &conditional, vec![vec![record_data(2, 0)]]).await.unwrap();
        assert_eq!(acks[0].last_offset, 6);
        hub.kill();
        hub.restart().unwrap();
        let records = fetch_all(&mut consumer, &conditional).await.unwrap();
        assert_eq!(records.iter().map(|r| r.offset).collect::<Vec<_>>(), vec![3, 4, 5, 6]);

        // Statistics in the API and in /metrics.
        let stats = admin.stats.get_sharing_stats(GetSharingStatsRequest {}).await.unwrap().into_inner();
        let dept = stats.departments.iter().find(|d| d.credit_code == provider_code).unwrap();
        assert_eq!((dept.resources, dept.shared_resources), (3, 2));
        assert!((dept.share_rate - 2.0 / 3.0).abs() < 1e-9);
        let res = stats.resources.iter().find(|r| r.code == conditional).unwrap();
        assert_eq!((res.consumers, res.requests, res.records_published), (1, 1, 6));
        assert!(res.records_served >= 5 + 5 + 3 + 3 + 4, "{res:?}");
        let (code, metrics) = hub.get("/metrics").unwrap();
        assert_eq!(code, 200);
        let published = format!(
            "govdc_hub_resource_records_published{{provider=\"{provider_code}\",resource=\"{conditional}\"}} 6"
        );
        assert!(metrics.contains(&published), "{published} missing from\n{metrics}");
        assert!(metrics.contains(&format!(
            "govdc_hub_department_share_rate{{department=\"{provider_code}\"}} 0.6666666666666666"
        )));

        // Every change was recorded, and the chain is intact.
        let audit = admin
            .audit
            .list_audit_records(ListAuditRecordsRequest { after_seq: 0, limit: 1000 })
            .await
            .unwrap()
            .into_inner()
            .records;
        let actions: BTreeSet<&str> = audit.iter().map(|r| r.action.as_str()).collect();
        for action in [
            "member.join",
            "resource.register",
            "grant.request",
            "grant.decide",
            "records.publish",
            "records.fetch",
            "records.ack",
        ] {
            assert!(actions.contains(action), "no {action} in the audit log: {actions:?}");
        }
        let decide = audit.iter().find(|r| r.action == "grant.decide").unwrap();
        assert_eq!(decide.actor, provider_code);
        assert!(decide.detail.contains(&consumer_code), "{}", decide.detail);
        let verified = admin.audit.verify_audit(VerifyAuditRequest::default()).await.unwrap().into_inner();
        assert!(verified.intact, "{verified:?}");
        assert_eq!(verified.records_checked, audit.len() as i64);
        // The CLI reads the store while the hub runs.
        let output = hub.audit_verify().unwrap();
        assert!(output.status.success(), "{output:?}");
        assert!(String::from_utf8_lossy(&output.stdout).contains("intact"));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_crash_during_publishing_loses_no_acknowledged_batch_and_leaves_no_gap() {
    bounded(Duration::from_secs(120), async {
        let mut hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code) = (credit_code(11), credit_code(12));
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
                purpose: "crash test".to_owned(),
            })
            .await
            .unwrap();

        // A publisher that never waits for acknowledgements, killed while it streams.
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
        let mut acks = provider
            .exchange
            .publish(stream)
            .await
            .unwrap()
            .into_inner();
        let sender = {
            let code = code.clone();
            tokio::spawn(async move {
                for batch in 0..10_000 {
                    let records = (0..10).map(|i| record_data(batch, i)).collect();
                    let request = PublishRequest {
                        resource_code: code.clone(),
                        records,
                    };
                    if tx.send(request).await.is_err() {
                        return;
                    }
                }
            })
        };
        let mut last_acked = 0;
        while let Ok(Some(ack)) = acks.message().await {
            assert_eq!(ack.first_offset, last_acked + 1, "offsets are contiguous");
            last_acked = ack.last_offset;
            if last_acked >= 500 {
                hub.kill();
            }
        }
        sender.abort();
        assert!(last_acked >= 500);

        hub.restart().unwrap();
        let records = fetch_all(&mut consumer, &code).await.unwrap();
        assert!(
            records.len() as i64 >= last_acked,
            "{last_acked} records were acknowledged, {} survived the crash",
            records.len()
        );
        for (n, record) in records.iter().enumerate() {
            assert_eq!(record.offset, n as i64 + 1, "no gap, no duplicate");
            assert_eq!(
                record.data,
                record_data(n / 10, n % 10),
                "record {} intact",
                record.offset
            );
        }
        let verified = admin
            .audit
            .verify_audit(VerifyAuditRequest::default())
            .await
            .unwrap()
            .into_inner();
        assert!(verified.intact, "{verified:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_following_fetch_delivers_new_records_and_ends_on_revocation() {
    bounded(Duration::from_secs(60), async {
        let hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code) = (credit_code(21), credit_code(22));
        join(&mut admin, &provider_code, "provider").await;
        join(&mut admin, &consumer_code, "consumer").await;
        let mut provider = Clients::member(&hub, &provider_code);
        let mut consumer = Clients::member(&hub, &consumer_code);
        let code = format!("{provider_code}-0001");
        register(&mut provider, &code, ShareType::Conditional).await;
        let grant = consumer
            .exchange
            .request_access(RequestAccessRequest {
                resource_code: code.clone(),
                purpose: "follow".to_owned(),
            })
            .await
            .unwrap()
            .into_inner();
        let decide = |approve| DecideAccessRequest {
            grant_id: grant.id.clone(),
            approve,
            reason: String::new(),
        };
        provider.exchange.decide_access(decide(true)).await.unwrap();

        let mut stream = consumer
            .exchange
            .fetch(FetchRequest {
                resource_code: code.clone(),
                max_records: 0,
                batch_size: 10,
                follow: true,
                from_start: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        publish(&mut provider, &code, vec![vec![b"one".to_vec()]])
            .await
            .unwrap();
        let first = stream.message().await.unwrap().unwrap();
        assert_eq!(first.records[0].data, b"one");
        publish(&mut provider, &code, vec![vec![b"two".to_vec()]])
            .await
            .unwrap();
        let second = stream.message().await.unwrap().unwrap();
        assert_eq!(second.records[0].offset, 2);

        // Revoked while the stream is open: the next delivery is refused.
        let revoked = provider
            .exchange
            .decide_access(decide(false))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(revoked.state, GrantState::Revoked as i32);
        publish(&mut provider, &code, vec![vec![b"three".to_vec()]])
            .await
            .unwrap();
        let refused = stream.message().await.unwrap_err();
        assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ends_following_streams_and_the_hub_exits_cleanly_and_promptly() {
    bounded(Duration::from_secs(60), async {
        let mut hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut admin = Clients::admin(&hub);
        let (provider_code, consumer_code) = (credit_code(91), credit_code(92));
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
                purpose: "shutdown".to_owned(),
            })
            .await
            .unwrap();
        let mut stream = consumer
            .exchange
            .fetch(FetchRequest {
                resource_code: code.clone(),
                max_records: 0,
                batch_size: 0,
                follow: true,
                from_start: false,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        publish(&mut provider, &code, vec![vec![b"before".to_vec()]])
            .await
            .unwrap();
        assert_eq!(stream.message().await.unwrap().unwrap().records.len(), 1);

        let started = std::time::Instant::now();
        let status = hub.stop().unwrap();
        assert!(status.success(), "{status}\n{}", hub.logs());
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "an open following fetch held the shutdown for {:?}",
            started.elapsed()
        );
        let ended = stream.message().await.unwrap_err();
        assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");
        assert!(hub.logs().contains("store closed"), "{}", hub.logs());
    })
    .await;
}
