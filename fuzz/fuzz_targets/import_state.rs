//! `ImportState` input: a node's state copy as the admin streams it, to a real hub served in this
//! process (`govdc_hub::server::run` on 127.0.0.1, its store in a scratch directory), through
//! its gRPC API.
//!
//! Input: one byte of options (bit 0: import without `replace`; bit 1: a wrong SHA-256; bits
//! 2-4: how many chunks), then either a whole SQLite file (starting `SQLite format 3\0`), or
//! changes to the node's own exported state, three bytes each (see `change`): a record of the
//! audit chain altered or removed, the schema version set, the owner changed, a table emptied
//! or dropped, a cell of any table set to another value.
//!
//! Checks:
//! - a refused copy is refused with `INVALID_ARGUMENT`, `DATA_LOSS` or `FAILED_PRECONDITION`
//!   (what the copy's sender can act on; never `INTERNAL` or a panic), and leaves the node as it
//!   was: the same audit head and records, an intact chain, the same members and catalog;
//! - an accepted copy leaves a node that works: its chain verifies intact, GetNodeInfo,
//!   ListMembers and ExportState answer, and it counts the audit records the import said;
//! - after an accepted copy, the node's first state imports back (so every input starts
//!   from the same node).
//!
//! `GOVDC_FUZZ_WRITE_SEED=<file>` writes the node's first exported state to `<file>` and
//! exits: how `corpus/import_state/` got its whole-file seed.
#![no_main]

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use govdc_hub::config::Config;
use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::node_client::NodeClient;
use govdc_hub_api::v1::{
    ExportStateRequest, GetNodeInfoRequest, ImportStateChunk, JoinRequest, ListMembersRequest,
    NodeInfo, VerifyAuditRequest,
};
use libfuzzer_sys::fuzz_target;
use sha2::Digest;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

const NODE: &str = "fuzz-node";
const SQLITE: &[u8] = b"SQLite format 3\0";

type Intercepted = InterceptedService<Channel, BearerToken>;

struct Fixture {
    runtime: tokio::runtime::Runtime,
    node: NodeClient<Intercepted>,
    audit: AuditClient<Intercepted>,
    members: MembershipClient<Intercepted>,
    /// The node's state after a few joins: what every input starts from.
    baseline: Vec<u8>,
    /// Its tables and their columns, for the changes.
    tables: Vec<(String, Vec<String>)>,
    scratch: PathBuf,
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap_or_else(|e| panic!("no free port on 127.0.0.1: {e}"))
}

/// A valid unified social credit code (GB 32100 check character) numbered `n`.
fn credit_code(n: u32) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHJKLMNPQRTUWXY";
    const WEIGHTS: [usize; 17] = [
        1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
    ];
    let body = format!("91330100{n:09}");
    let sum: usize = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(b, w)| ALPHABET.iter().position(|a| *a == b).unwrap_or(0) * w)
        .sum();
    format!("{body}{}", char::from(ALPHABET[(31 - sum % 31) % 31]))
}

async fn export(node: &mut NodeClient<Intercepted>) -> Result<Vec<u8>, tonic::Status> {
    let mut stream = node.export_state(ExportStateRequest {}).await?.into_inner();
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.message().await? {
        bytes.extend_from_slice(&chunk.data);
    }
    Ok(bytes)
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let scratch =
            std::env::temp_dir().join(format!("govdc-fuzz-import-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&scratch);
        std::fs::create_dir_all(scratch.join("data"))
            .unwrap_or_else(|e| panic!("creating {}: {e}", scratch.display()));
        let secret = b"the fuzzed node's signing key, 32+ bytes".to_vec();
        std::fs::write(scratch.join("key"), &secret).unwrap_or_else(|e| panic!("key file: {e}"));
        let (grpc, metrics) = (free_port(), free_port());
        let vars = [
            ("GOVDC_HUB_NAME", NODE.to_owned()),
            ("GOVDC_HUB_LEVEL", "national".to_owned()),
            ("GOVDC_HUB_NETWORK", "extranet".to_owned()),
            ("GOVDC_HUB_LISTEN", grpc.to_string()),
            ("GOVDC_HUB_METRICS_LISTEN", metrics.to_string()),
            (
                "GOVDC_HUB_DATA_DIR",
                scratch.join("data").display().to_string(),
            ),
            (
                "GOVDC_HUB_AUTH_KEY_FILE",
                scratch.join("key").display().to_string(),
            ),
        ];
        let env = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.clone())
        };
        let (config, _) = Config::load(None, env).unwrap_or_else(|e| panic!("{e:#}"));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap_or_else(|e| panic!("a tokio runtime: {e}"));
        runtime.spawn(async move {
            if let Err(e) = govdc_hub::server::run(config, std::future::pending()).await {
                eprintln!("the fuzzed hub stopped: {e:#}");
                std::process::exit(1);
            }
        });
        let key = TokenKey::new(secret).unwrap_or_else(|e| panic!("{e}"));
        let token = key
            .issue(&Claims::new(
                "operator",
                Role::Admin,
                NODE,
                Duration::from_secs(86_400 * 365),
            ))
            .unwrap_or_else(|e| panic!("{e}"));
        let interceptor = BearerToken::new(&token).unwrap_or_else(|e| panic!("{e}"));
        let (node, audit, members, baseline) = runtime.block_on(async {
            let endpoint = format!("http://{grpc}");
            let mut channel = None;
            for _ in 0..300 {
                if let Ok(c) = Channel::from_shared(endpoint.clone())
                    .unwrap_or_else(|e| panic!("{e}"))
                    .connect()
                    .await
                {
                    channel = Some(c);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let channel =
                channel.unwrap_or_else(|| panic!("the hub did not listen on {grpc} in 30 s"));
            let mut node = NodeClient::with_interceptor(channel.clone(), interceptor.clone())
                .max_decoding_message_size(64 << 20);
            let audit = AuditClient::with_interceptor(channel.clone(), interceptor.clone());
            let mut members = MembershipClient::with_interceptor(channel, interceptor);
            for n in 1..=3 {
                members
                    .join(JoinRequest {
                        credit_code: credit_code(n),
                        name: format!("委办局 {n}"),
                    })
                    .await
                    .unwrap_or_else(|e| panic!("join: {e}"));
            }
            let baseline = export(&mut node)
                .await
                .unwrap_or_else(|e| panic!("export: {e}"));
            (node, audit, members, baseline)
        });
        if let Ok(seed) = std::env::var("GOVDC_FUZZ_WRITE_SEED") {
            std::fs::write(&seed, &baseline).unwrap_or_else(|e| panic!("{seed}: {e}"));
            std::process::exit(0);
        }
        let path = scratch.join("baseline.db");
        std::fs::write(&path, &baseline).unwrap_or_else(|e| panic!("{e}"));
        let tables = {
            let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
            let names: Vec<String> = conn
                .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .unwrap_or_else(|e| panic!("{e}"));
            names
                .into_iter()
                .map(|t| {
                    let columns: Vec<String> = conn
                        .prepare(&format!("SELECT name FROM pragma_table_info('{t}')"))
                        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                        .unwrap_or_else(|e| panic!("{e}"));
                    (t, columns)
                })
                .collect()
        };
        Fixture {
            runtime,
            node,
            audit,
            members,
            baseline,
            tables,
            scratch,
        }
    })
}

const VALUES: [&str; 8] = [
    "NULL",
    "''",
    "0",
    "-1",
    "9223372036854775807",
    "'x'",
    "X'00ff'",
    "'fuzz-node'",
];

/// One change to the copy, as SQL on it.
fn change(fixture: &Fixture, op: &[u8]) -> String {
    let (kind, a, b) = (op[0], op[1], op[2]);
    let (table, columns) = &fixture.tables[usize::from(a) % fixture.tables.len()];
    let column = &columns[usize::from(b) % columns.len().max(1)];
    let value = VALUES[usize::from(b >> 5)];
    match kind % 8 {
        0 => format!(
            "UPDATE \"{table}\" SET \"{column}\" = {value} WHERE rowid = (SELECT rowid FROM \"{table}\" LIMIT 1 OFFSET {})",
            b % 4
        ),
        1 => format!("DELETE FROM audit WHERE seq = {}", 1 + a % 8),
        2 => format!("PRAGMA user_version = {}", i16::from_le_bytes([a, b])),
        3 => format!("INSERT OR REPLACE INTO settings (key, value) VALUES ('node.name', {value})"),
        4 => format!("DELETE FROM \"{table}\""),
        5 => format!("DROP TABLE \"{table}\""),
        6 => format!(
            "UPDATE audit SET \"{column}\" = {value} WHERE seq = {}",
            1 + a % 8
        ),
        _ => format!("DELETE FROM \"{table}\" WHERE rowid = (SELECT max(rowid) FROM \"{table}\")"),
    }
}

/// What a node looks like from outside, for "nothing changed".
#[derive(Debug, PartialEq)]
struct Seen {
    info: NodeInfo,
    members: Vec<String>,
    head: (bool, i64),
}

async fn seen(fixture: &Fixture) -> Seen {
    let (mut node, mut audit, mut members) = (
        fixture.node.clone(),
        fixture.audit.clone(),
        fixture.members.clone(),
    );
    let info = node
        .get_node_info(GetNodeInfoRequest {})
        .await
        .unwrap_or_else(|e| panic!("GetNodeInfo: {e}"))
        .into_inner();
    let mut listed: Vec<String> = members
        .list_members(ListMembersRequest {})
        .await
        .unwrap_or_else(|e| panic!("ListMembers: {e}"))
        .into_inner()
        .members
        .into_iter()
        .map(|m| m.credit_code)
        .collect();
    listed.sort();
    let verified = audit
        .verify_audit(VerifyAuditRequest {
            anchors: Vec::new(),
        })
        .await
        .unwrap_or_else(|e| panic!("VerifyAudit: {e}"))
        .into_inner();
    Seen {
        info,
        members: listed,
        head: (verified.intact, verified.records_checked),
    }
}

async fn import(
    fixture: &Fixture,
    bytes: &[u8],
    replace: bool,
    wrong_sum: bool,
    chunks: usize,
) -> Result<i64, tonic::Status> {
    let mut sum = format!("{:x}", sha2::Sha256::digest(bytes));
    if wrong_sum {
        sum = sum.replace('0', "1").replace('a', "b");
    }
    let size = bytes.len().div_ceil(chunks).max(1);
    let mut requests: Vec<ImportStateChunk> = bytes
        .chunks(size)
        .map(|data| ImportStateChunk {
            data: data.to_vec(),
            sha256: String::new(),
            replace: false,
        })
        .collect();
    if requests.is_empty() {
        requests.push(ImportStateChunk::default());
    }
    requests[0].replace = replace;
    if let Some(last) = requests.last_mut() {
        last.sha256 = sum;
    }
    let mut node = fixture.node.clone();
    Ok(node
        .import_state(tokio_stream::iter(requests))
        .await?
        .into_inner()
        .audit_records)
}

fn copy(fixture: &Fixture, ops: &[u8]) -> Vec<u8> {
    let path = fixture.scratch.join("copy.db");
    let _ = std::fs::remove_file(&path);
    std::fs::write(&path, &fixture.baseline).unwrap_or_else(|e| panic!("{e}"));
    {
        let conn = rusqlite::Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        for op in ops.chunks_exact(3).take(16) {
            // A change SQLite refuses (a dropped table's row, a constraint) is skipped.
            let _ = conn.execute_batch(&change(fixture, op));
        }
    }
    std::fs::read(&path).unwrap_or_else(|e| panic!("{e}"))
}

fuzz_target!(|data: &[u8]| {
    let fixture = fixture();
    let Some((&options, rest)) = data.split_first() else {
        return;
    };
    let bytes = if rest.starts_with(SQLITE) {
        rest.to_vec()
    } else {
        copy(fixture, rest)
    };
    let (replace, wrong_sum) = (options & 1 == 0, options & 2 != 0);
    let chunks = 1 + usize::from((options >> 2) & 7);
    fixture.runtime.block_on(async {
        let before = seen(fixture).await;
        match import(fixture, &bytes, replace, wrong_sum, chunks).await {
            Err(status) => {
                assert!(
                    matches!(
                        status.code(),
                        Code::InvalidArgument | Code::DataLoss | Code::FailedPrecondition
                    ),
                    "a bad copy was refused with {:?}: {}",
                    status.code(),
                    status.message()
                );
                assert!(
                    !wrong_sum
                        || status.code() == Code::DataLoss
                        || status.code() == Code::InvalidArgument
                );
                let after = seen(fixture).await;
                assert_eq!(after, before, "a refused import changed the node");
            }
            Ok(records) => {
                assert!(!wrong_sum, "a copy with a wrong SHA-256 was imported");
                let after = seen(fixture).await;
                assert!(
                    after.head.0,
                    "an accepted copy left a broken audit chain: {after:?}"
                );
                assert_eq!(after.info.audit_records, records);
                let mut node = fixture.node.clone();
                export(&mut node)
                    .await
                    .unwrap_or_else(|e| panic!("ExportState after an accepted import: {e}"));
                import(fixture, &fixture.baseline, true, false, 1)
                    .await
                    .unwrap_or_else(|e| panic!("the first state does not import back: {e}"));
            }
        }
    });
});
