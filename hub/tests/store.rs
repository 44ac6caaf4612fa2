//! The store: a tampered audit record is detected and named; a second process on the same store
//! is refused; a store keeps its node's identity.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use govdc_hub_api::v1::{ListAuditRecordsRequest, ShareType, VerifyAuditRequest};
use govdc_test_support::free_port;
use govdc_test_support::hub::{HubOptions, HubProcess};

#[tokio::test(flavor = "multi_thread")]
async fn a_tampered_audit_record_is_detected_and_named() {
    bounded(Duration::from_secs(90), async {
        let mut hub = HubProcess::start(
            &bin(),
            HubOptions::new("national", "national", "extranet").env("GOVDC_HUB_AUDIT_ALGORITHM", "sm3"),
        )
        .unwrap();
        let mut admin = Clients::admin(&hub);
        for n in 41..45 {
            join(&mut admin, &credit_code(n), "dept").await;
        }
        let mut provider = Clients::member(&hub, &credit_code(41));
        register(&mut provider, &format!("{}-0001", credit_code(41)), ShareType::Unconditional).await;
        let records = admin
            .audit
            .list_audit_records(ListAuditRecordsRequest { after_seq: 0, limit: 100 })
            .await
            .unwrap()
            .into_inner()
            .records;
        assert_eq!(records.len(), 5);
        assert!(records.iter().all(|r| r.algorithm == "sm3"), "{records:?}");
        assert_eq!(records[2].subject, credit_code(43));
        hub.stop().unwrap();
        assert!(hub.audit_verify().unwrap().status.success());

        // Someone with the file rewrites who joined in record 3. The table refuses updates, so
        // they drop the trigger first.
        {
            let db = rusqlite::Connection::open(hub.data_dir.join("hub.db")).unwrap();
            let refused = db.execute("UPDATE audit SET subject = 'forged' WHERE seq = 3", []);
            assert!(refused.is_err(), "the audit table accepted an UPDATE");
            db.execute_batch("DROP TRIGGER audit_no_update; UPDATE audit SET subject = '91330100000000999X' WHERE seq = 3")
                .unwrap();
        }
        let output = hub.audit_verify().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(output.status.code(), Some(1), "{stdout}");
        assert!(stdout.contains("BROKEN at record 3"), "{stdout}");

        // The node itself says so too.
        hub.restart().unwrap();
        let verified = admin.audit.verify_audit(VerifyAuditRequest::default()).await.unwrap().into_inner();
        assert!(!verified.intact);
        assert_eq!(verified.first_broken_seq, 3, "{verified:?}");
        assert_eq!(verified.records_checked, 2);
        assert!(verified.reason.contains("altered"), "{verified:?}");
        hub.stop().unwrap();

        // A forger who also recomputes the forged record's hash breaks the next record's link.
        {
            use sm3::Digest;
            let db = rusqlite::Connection::open(hub.data_dir.join("hub.db")).unwrap();
            let record = db
                .query_row(
                    "SELECT seq, time, actor, action, subject, detail, prev_hash, hash, algorithm FROM audit WHERE seq = 3",
                    [],
                    |row| {
                        Ok(govdc_hub::audit::Record {
                            seq: row.get(0)?,
                            time_micros: row.get(1)?,
                            actor: row.get(2)?,
                            action: row.get(3)?,
                            subject: row.get(4)?,
                            detail: row.get(5)?,
                            prev_hash: row.get(6)?,
                            hash: row.get(7)?,
                            algorithm: row.get(8)?,
                        })
                    },
                )
                .unwrap();
            let rehashed = hex::encode(sm3::Sm3::digest(govdc_hub::audit::canonical_bytes(&record)));
            db.execute("UPDATE audit SET hash = ?1 WHERE seq = 3", [rehashed]).unwrap();
        }
        let output = hub.audit_verify().unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.contains("BROKEN at record 4"), "{stdout}");
        assert!(stdout.contains("does not link to record 3"), "{stdout}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_second_process_on_the_same_store_is_refused() {
    bounded(Duration::from_secs(60), async {
        let mut hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        let mut second = hub
            .command_on(free_port(), free_port())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let status = loop {
            if let Some(status) = second.try_wait().unwrap() {
                break status;
            }
            if started.elapsed() > Duration::from_secs(20) {
                let _ = second.kill();
                panic!("a second govdc-hub on the same store kept running");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let output = second.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!status.success());
        assert!(
            stderr.contains("another govdc-hub process holds the store"),
            "{stderr}"
        );
        // The first one is unharmed.
        assert!(hub.is_running());
        let mut admin = Clients::admin(&hub);
        join(&mut admin, &credit_code(51), "dept").await;
        // Once it is gone, the store can be opened again.
        hub.stop().unwrap();
        hub.restart().unwrap();
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_store_belongs_to_one_node() {
    bounded(Duration::from_secs(60), async {
        let mut hub =
            HubProcess::start(&bin(), HubOptions::new("national", "national", "extranet")).unwrap();
        hub.stop().unwrap();
        let output = hub
            .command_on(free_port(), free_port())
            .env("GOVDC_HUB_NAME", "zhejiang")
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success());
        assert!(stderr.contains("belongs to node national"), "{stderr}");
    })
    .await;
}
