//! Durability and the order of audit and delivery, on the real hub process and its real store:
//! a batch acknowledged right before a SIGKILL is there after the restart, with its audit
//! record; a fetch response that reached the consumer right before a SIGKILL has its delivery in
//! the audit log after the restart, whether the stream was caught up (its delivery recorded with
//! the publish) or behind (recorded by the stream itself); a following stream open while the
//! node's state is replaced ends instead of serving the old records.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::*;
use govdc_hub_api::v1::{
    AuditRecord, ExportStateRequest, FetchRequest, ImportStateChunk, ListAuditRecordsRequest,
    PublishRequest, PublishResponse, RequestAccessRequest, ShareType, VerifyAuditRequest,
};
use govdc_test_support::hub::{HubOptions, HubProcess};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;

fn data(round: usize, i: usize, size: usize) -> Vec<u8> {
    let mut record =
        format!(r#"{{"round":{round},"i":{i},"company":"杭州某某科技有限公司"}}"#).into_bytes();
    record.resize(size.max(record.len()), b' ');
    record
}

/// A provider and an approved consumer of one unconditional resource on a fresh hub.
async fn exchange(n: u32) -> (HubProcess, Clients, Clients, Clients, String, String) {
    let hub =
        HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
    let mut admin = Clients::admin(&hub);
    let (provider_code, consumer_code) = (credit_code(n), credit_code(n + 1));
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
            purpose: "durability".to_owned(),
        })
        .await
        .unwrap();
    (hub, admin, provider, consumer, code, consumer_code)
}

async fn audit_log(admin: &mut Clients) -> Vec<AuditRecord> {
    let mut all = Vec::new();
    loop {
        let after_seq = all.last().map_or(0, |r: &AuditRecord| r.seq);
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
        if page.is_empty() {
            return all;
        }
        all.extend(page);
    }
}

/// The offsets `action` records by `actor` on `code` cover, as (first, last) pairs.
fn ranges(log: &[AuditRecord], action: &str, actor: &str, code: &str) -> Vec<(i64, i64)> {
    log.iter()
        .filter(|r| r.action == action && r.actor == actor && r.subject == code)
        .map(|r| {
            let detail: serde_json::Value = serde_json::from_str(&r.detail).unwrap();
            (
                detail["first"].as_i64().unwrap(),
                detail["last"].as_i64().unwrap(),
            )
        })
        .collect()
}

async fn assert_chain_intact(hub: &HubProcess, admin: &mut Clients) {
    let verified = admin
        .audit
        .verify_audit(VerifyAuditRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(verified.intact, "{verified:?}");
    let output = hub.audit_verify().unwrap();
    assert!(output.status.success(), "{output:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_batch_acknowledged_right_before_a_sigkill_survives_with_its_audit_record() {
    bounded(Duration::from_secs(180), async {
        let (mut hub, mut admin, mut provider, mut consumer, code, _) = exchange(301).await;
        let provider_code = credit_code(301);
        let mut expected: Vec<Vec<u8>> = Vec::new();
        // One record, a hundred, and a thousand of 1 KiB (a batch of overflow pages).
        for (round, (count, size)) in [(1, 64), (100, 200), (1000, 1024)].into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(4);
            let mut acks = provider
                .exchange
                .publish(ReceiverStream::new(rx))
                .await
                .unwrap()
                .into_inner();
            let records: Vec<Vec<u8>> = (0..count).map(|i| data(round, i, size)).collect();
            tx.send(PublishRequest {
                resource_code: code.clone(),
                records: records.clone(),
            })
            .await
            .unwrap();
            let ack: PublishResponse = acks.message().await.unwrap().unwrap();
            // SIGKILL the moment the acknowledgement arrived, the stream still open.
            hub.kill();
            expected.extend(records);
            assert_eq!(ack.last_offset, expected.len() as i64, "round {round}");
            assert_eq!(ack.first_offset, ack.last_offset - count as i64 + 1);

            hub.restart().unwrap();
            let fetched = fetch_all(&mut consumer, &code).await.unwrap();
            assert_eq!(fetched.len(), expected.len(), "round {round}");
            for (record, data) in fetched.iter().zip(&expected) {
                assert_eq!(&record.data, data, "record {} intact", record.offset);
            }
            let log = audit_log(&mut admin).await;
            let published = ranges(&log, "records.publish", &provider_code, &code);
            assert!(
                published.contains(&(ack.first_offset, ack.last_offset)),
                "no records.publish of {}..={} in {published:?}",
                ack.first_offset,
                ack.last_offset
            );
        }
        assert_chain_intact(&hub, &mut admin).await;
    })
    .await;
}

/// Whether `ranges` cover every offset in `offsets`.
fn covered(ranges: &[(i64, i64)], offsets: &[i64]) -> Result<(), i64> {
    match offsets.iter().find(|o| {
        !ranges
            .iter()
            .any(|(first, last)| (first..=last).contains(o))
    }) {
        Some(missing) => Err(*missing),
        None => Ok(()),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_delivery_is_in_the_audit_log_before_its_fetch_response_arrives() {
    bounded(Duration::from_secs(180), async {
        let (mut hub, mut admin, mut provider, mut consumer, code, consumer_code) =
            exchange(311).await;

        // Caught up: a following stream waits, a batch is published, the response arrives
        // (its delivery recorded in the publish's own transaction) and the node dies at once.
        let mut stream = consumer
            .exchange
            .fetch(FetchRequest {
                resource_code: code.clone(),
                batch_size: 10,
                follow: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let (tx, rx) = mpsc::channel(4);
        let acks = provider
            .exchange
            .publish(ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        tx.send(PublishRequest {
            resource_code: code.clone(),
            records: (0..5).map(|i| data(0, i, 100)).collect(),
        })
        .await
        .unwrap();
        let response = stream.message().await.unwrap().unwrap();
        hub.kill();
        let received: Vec<i64> = response.records.iter().map(|r| r.offset).collect();
        assert_eq!(received, vec![1, 2, 3, 4, 5]);
        drop((tx, acks));
        hub.restart().unwrap();
        let log = audit_log(&mut admin).await;
        let fetched = ranges(&log, "records.fetch", &consumer_code, &code);
        covered(&fetched, &received)
            .unwrap_or_else(|o| panic!("offset {o} was received, its delivery not audited: {fetched:?}"));

        // Behind: 500 more records are there before the stream opens, so the stream records its
        // own deliveries, a window at a time; the node dies right after the first response.
        let acks = publish(
            &mut provider,
            &code,
            (0..5).map(|b| (0..100).map(|i| data(b + 1, i, 100)).collect()).collect(),
        )
        .await
        .unwrap();
        assert_eq!(acks.last().unwrap().last_offset, 505);
        for follow in [true, false] {
            let mut stream = consumer
                .exchange
                .fetch(FetchRequest {
                    resource_code: code.clone(),
                    batch_size: 7,
                    follow,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let first = stream.message().await.unwrap().unwrap();
            hub.kill();
            // Not acknowledged, so delivered again from the start.
            let received: Vec<i64> = first.records.iter().map(|r| r.offset).collect();
            assert_eq!(received, (1..=7).collect::<Vec<_>>(), "follow {follow}");
            hub.restart().unwrap();
            let log = audit_log(&mut admin).await;
            let fetched = ranges(&log, "records.fetch", &consumer_code, &code);
            covered(&fetched, &received).unwrap_or_else(|o| {
                panic!("follow {follow}: offset {o} was received, its delivery not audited: {fetched:?}")
            });
        }

        // And a whole read: every record received is covered, by few records (a window each).
        let before = ranges(&audit_log(&mut admin).await, "records.fetch", &consumer_code, &code).len();
        let all = fetch_all(&mut consumer, &code).await.unwrap();
        assert_eq!(all.len(), 505);
        let log = audit_log(&mut admin).await;
        let fetched = ranges(&log, "records.fetch", &consumer_code, &code);
        let offsets: Vec<i64> = all.iter().map(|r| r.offset).collect();
        covered(&fetched[before..], &offsets).unwrap_or_else(|o| panic!("offset {o} not audited"));
        // fetch_all asks for the default 100 records a response: 505 records in 6 responses,
        // recorded in one window of 16 responses.
        assert_eq!(fetched.len() - before, 1, "{:?}", &fetched[before..]);
        assert_chain_intact(&hub, &mut admin).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_following_stream_ends_when_the_state_is_replaced_and_serves_no_old_record() {
    bounded(Duration::from_secs(120), async {
        let (hub, mut admin, mut provider, mut consumer, code, _) = exchange(321).await;
        publish(&mut provider, &code, vec![vec![b"kept".to_vec()]])
            .await
            .unwrap();
        // The copy holds one record.
        let mut export = admin
            .node
            .export_state(ExportStateRequest {})
            .await
            .unwrap()
            .into_inner();
        let mut chunks = Vec::new();
        while let Some(chunk) = export.message().await.unwrap() {
            chunks.push(chunk);
        }
        let mut stream = consumer
            .exchange
            .fetch(FetchRequest {
                resource_code: code.clone(),
                batch_size: 10,
                follow: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(stream.message().await.unwrap().unwrap().records.len(), 1);
        // Two more, in the following stream's tail, then the copy replaces them.
        publish(
            &mut provider,
            &code,
            vec![vec![b"lost".to_vec(), b"lost too".to_vec()]],
        )
        .await
        .unwrap();
        assert_eq!(stream.message().await.unwrap().unwrap().records.len(), 2);
        let requests: Vec<ImportStateChunk> = chunks
            .iter()
            .enumerate()
            .map(|(i, c)| ImportStateChunk {
                data: c.data.clone(),
                sha256: c.sha256.clone(),
                replace: i == 0,
            })
            .collect();
        admin
            .node
            .import_state(tokio_stream::iter(requests))
            .await
            .unwrap();
        let ended = stream.message().await.unwrap_err();
        assert_eq!(ended.code(), Code::Unavailable, "{ended:?}");

        // A new record takes offset 2 again; a following stream gets the copy's, never the
        // replaced ones.
        publish(&mut provider, &code, vec![vec![b"after".to_vec()]])
            .await
            .unwrap();
        let mut stream = consumer
            .exchange
            .fetch(FetchRequest {
                resource_code: code.clone(),
                batch_size: 10,
                follow: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let mut data = Vec::new();
        while data.len() < 2 {
            let response = stream.message().await.unwrap().unwrap();
            data.extend(response.records.into_iter().map(|r| (r.offset, r.data)));
        }
        assert_eq!(data, vec![(1, b"kept".to_vec()), (2, b"after".to_vec())]);
        drop(hub);
    })
    .await;
}
