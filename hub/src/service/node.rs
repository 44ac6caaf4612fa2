//! Node: identity, parent link, and state export and import for disaster recovery. Admin only.

use std::path::{Path, PathBuf};
use std::pin::Pin;

use futures::{Stream, StreamExt};
use govdc_hub_api::auth::Role;
use govdc_hub_api::v1::node_server::Node;
use govdc_hub_api::v1::{
    AuditHead, ExportStateRequest, GetNodeInfoRequest, ImportStateChunk, ImportStateResponse,
    NodeInfo, ParentConnection, SetParentRequest, StateChunk,
};
use rusqlite::Connection;
use serde_json::json;
use sha2::Digest;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::{Hub, HubService, record, setting, timestamp};
use crate::audit;
use crate::federation::{self, Link};
use crate::service::{DbResult, io_status};
use crate::store;

const CHUNK: usize = 1 << 20;

impl Hub {
    /// What GetNodeInfo reports.
    pub async fn node_info(&self) -> Result<NodeInfo, Status> {
        let (catalog_size, member_count, audit_records, head) = self
            .store
            .read(|conn| {
                let count = |sql: &str| conn.query_row(sql, [], |row| row.get::<_, i64>(0)).db();
                Ok((
                    count("SELECT count(*) FROM resources")?,
                    count("SELECT count(*) FROM members")?,
                    audit::count(conn).db()?,
                    audit::head(conn).db()?,
                ))
            })
            .await?;
        let link = self.parent.link();
        let status = self.parent.status();
        let parent_connection = match (&link, status.connected) {
            (None, _) => ParentConnection::None,
            (Some(_), true) => ParentConnection::Connected,
            (Some(_), false) => ParentConnection::Disconnected,
        };
        Ok(NodeInfo {
            name: self.config.name.clone(),
            level: self.level() as i32,
            network: self.network() as i32,
            region_code: self.config.region_code.clone(),
            parent_endpoint: link.map(|l| l.endpoint).unwrap_or_default(),
            parent_connection: parent_connection as i32,
            last_parent_sync: status.last_sync_micros.map(timestamp),
            parent_error: status.error,
            catalog_size,
            member_count,
            audit_records,
            audit_head: head.map(|h| AuditHead {
                seq: h.seq,
                hash: h.hash,
            }),
        })
    }
}

/// A scratch file in the data directory (same file system as the store), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(dir: &Path, what: &str) -> Scratch {
        let nanos = jiff::Timestamp::now().as_nanosecond();
        Scratch(dir.join(format!("{what}-{nanos}.db.tmp")))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        for journal in ["-journal", "-wal", "-shm"] {
            let mut path = self.0.clone().into_os_string();
            path.push(journal);
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Checks a copy before it replaces the store: a SQLite database that is intact, of a schema
/// this build knows, of this node, with an unbroken audit chain.
fn check_copy(path: &Path, node: &str) -> Result<i64, Status> {
    let bad =
        |why: String| Status::invalid_argument(format!("the imported state is refused: {why}"));
    let conn = store::open_reader(path).map_err(|e| bad(format!("not a database: {e}")))?;
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .map_err(|e| bad(format!("not a database: {e}")))?;
    if integrity != "ok" {
        return Err(bad(format!("SQLite integrity check: {integrity}")));
    }
    let version: i64 = conn
        .query_row("PRAGMA user_version", [], |row| row.get(0))
        .map_err(|e| bad(format!("its schema version cannot be read: {e}")))?;
    if version < 1 || version > store::schema_version() {
        return Err(bad(format!(
            "schema version {version}, this govdc-hub reads 1 to {}",
            store::schema_version()
        )));
    }
    // A copy that passed SQLite's check can still lack the node's tables or columns: the copy's
    // fault, not this node's, told before any query trips over it (the import_state fuzz
    // target found copies without `settings`, then without `members`).
    let missing = store::missing_schema(&conn, version)
        .map_err(|e| bad(format!("its tables cannot be read: {e}")))?;
    if !missing.is_empty() {
        return Err(bad(format!(
            "it lacks what schema version {version} has: {}",
            missing.join(", ")
        )));
    }
    // Whatever else cannot be read from it is the copy's fault as well.
    let owner = setting(&conn, "node.name").map_err(|e| {
        bad(format!(
            "its settings cannot be read: {}",
            Status::from(e).message()
        ))
    })?;
    if let Some(owner) = owner
        && owner != node
    {
        return Err(bad(format!(
            "it is the state of node {owner}, this is node {node}"
        )));
    }
    let verification =
        audit::verify(&conn).map_err(|e| bad(format!("its audit log cannot be read: {e}")))?;
    if let Some((seq, reason)) = verification.first_broken {
        return Err(bad(format!(
            "its audit chain is broken at record {seq}: {reason}"
        )));
    }
    Ok(verification.records_checked)
}

/// Brings a checked copy up to this build's schema, marks the portal versions whose files are not
/// on this node (under `portal_root`, [`crate::portal::restore`]) and appends the import's audit
/// record (naming them) to its chain, in one transaction of the copy; the number of audit
/// records it then holds.
fn complete_copy(
    path: &Path,
    portal_root: &Path,
    algorithm: audit::Algorithm,
    actor: &str,
    mut detail: serde_json::Value,
) -> Result<i64, Status> {
    let mut conn = Connection::open(path).db()?;
    // A rollback journal: nothing of the copy's is left beside it once it is closed.
    conn.pragma_update(None, "journal_mode", "DELETE").db()?;
    store::migrate(&conn).map_err(migration_refused)?;
    let tx = conn.transaction().db()?;
    // The state does not carry the portal's files: the versions it lists whose files are not
    // here are recorded as awaited, so the node still starts and answers 503 for them until
    // they are published again, instead of refusing to start as if they were damaged.
    let awaiting = crate::portal::restore::mark_imported(&tx, portal_root)?;
    if !awaiting.is_empty() {
        tracing::warn!(versions = ?awaiting, "the imported state's portal files are not on this node; they are served once published again");
    }
    detail["portalAwaitingFiles"] = json!(awaiting);
    record(&tx, algorithm, actor, "state.import", "", detail)?;
    tx.commit().db()?;
    let count = audit::count(&conn).db()?;
    drop(conn);
    Ok(count)
}

/// The status of a copy that passed [`check_copy`] but does not migrate. A copy whose tables are
/// not those of the schema version it claims (a table of a later version already there, one
/// missing) is the sender's mistake, INVALID_ARGUMENT; a full disk or an I/O error is this
/// node's (found by the import_state fuzz target: such a copy was INTERNAL).
fn migration_refused(e: anyhow::Error) -> Status {
    use rusqlite::ErrorCode;
    // A statement SQLite refuses comes as SqlInputError (with the whole statement, which the
    // message leaves out), which `sqlite_error_code` does not look into.
    let sqlite = e
        .chain()
        .find_map(|cause| match cause.downcast_ref::<rusqlite::Error>()? {
            rusqlite::Error::SqliteFailure(error, message) => Some((
                error.code,
                message.clone().unwrap_or_else(|| error.to_string()),
            )),
            rusqlite::Error::SqlInputError { error, msg, .. } => Some((error.code, msg.clone())),
            _ => None,
        });
    let (code, message) = sqlite.unzip();
    let what = "migrating the copy".to_owned();
    match code {
        // SQLITE_ERROR (Unknown): the SQL of a migration does not fit the copy's tables.
        Some(
            ErrorCode::Unknown
            | ErrorCode::ConstraintViolation
            | ErrorCode::TypeMismatch
            | ErrorCode::DatabaseCorrupt,
        ) => Status::invalid_argument(format!(
            "the imported state is refused: its tables are not those of its schema version ({e}: {})",
            message.unwrap_or_default()
        )),
        Some(ErrorCode::DiskFull) => store::StorageError::Full {
            what,
            source: e.into(),
        }
        .into(),
        _ => store::StorageError::Failed {
            what,
            source: e.into(),
        }
        .into(),
    }
}

type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl Node for HubService {
    async fn get_node_info(
        &self,
        request: Request<GetNodeInfoRequest>,
    ) -> Result<Response<NodeInfo>, Status> {
        self.auth
            .caller(&request, "Node.GetNodeInfo", &[Role::Admin])?;
        Ok(Response::new(self.node_info().await?))
    }

    async fn set_parent(
        &self,
        request: Request<SetParentRequest>,
    ) -> Result<Response<NodeInfo>, Status> {
        let caller = self
            .auth
            .caller(&request, "Node.SetParent", &[Role::Admin])?;
        let SetParentRequest {
            endpoint,
            token,
            ca_pem,
        } = request.into_inner();
        let link = if endpoint.is_empty() {
            None
        } else {
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(Status::invalid_argument(format!(
                    "parent endpoint {endpoint:?} must be http://host:port or https://host:port"
                )));
            }
            if token.is_empty() {
                return Err(Status::invalid_argument(
                    "a parent needs the token it issued for this node (role node)",
                ));
            }
            if endpoint.starts_with("https://") && ca_pem.is_empty() {
                return Err(Status::invalid_argument(
                    "an https parent needs ca_pem, the CA its serving certificate chains to",
                ));
            }
            let link = Link {
                endpoint,
                token,
                ca_pem,
            };
            federation::channel(&link).map_err(Status::invalid_argument)?;
            Some(link)
        };
        let algorithm = self.algorithm();
        let saved = link.clone();
        self.store
            .write(move |conn| {
                if federation::load_link(conn)? == saved {
                    return Ok(());
                }
                federation::save_link(conn, saved.as_ref())?;
                let endpoint = saved
                    .as_ref()
                    .map(|l| l.endpoint.clone())
                    .unwrap_or_default();
                // The token is a credential: the log says that it changed, not what it is.
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "node.parent",
                    &endpoint,
                    json!({"endpoint": endpoint}),
                )?;
                Ok(())
            })
            .await?;
        if self.parent.link() != link {
            self.parent.set_link(link);
        }
        Ok(Response::new(self.node_info().await?))
    }

    type ExportStateStream = BoxStream<StateChunk>;

    async fn export_state(
        &self,
        request: Request<ExportStateRequest>,
    ) -> Result<Response<Self::ExportStateStream>, Status> {
        let caller = self
            .auth
            .caller(&request, "Node.ExportState", &[Role::Admin])?;
        let algorithm = self.algorithm();
        // The export is itself recorded, in the copy it produces.
        self.store
            .write(move |conn| {
                record(
                    conn,
                    algorithm,
                    &caller.subject,
                    "state.export",
                    "",
                    json!({}),
                )
            })
            .await?;
        let scratch = Scratch::new(self.store.dir(), "export");
        let target = scratch.0.to_string_lossy().into_owned();
        // VACUUM INTO writes a consistent snapshot while the writer goes on.
        self.store
            .read(move |conn| conn.execute("VACUUM INTO ?1", [target]).map(|_| ()).db())
            .await?;
        let mut file = tokio::fs::File::open(&scratch.0)
            .await
            .map_err(|e| Status::internal(format!("reading the snapshot: {e}")))?;
        let (tx, rx) = mpsc::channel(2);
        tokio::spawn(async move {
            let _scratch = scratch;
            let mut hasher = sha2::Sha256::new();
            loop {
                let mut data = vec![0u8; CHUNK];
                let n = match file.read(&mut data).await {
                    Ok(n) => n,
                    Err(e) => {
                        let _ = tx
                            .send(Err(Status::internal(format!("reading the snapshot: {e}"))))
                            .await;
                        return;
                    }
                };
                if n == 0 {
                    let sha256 = hex::encode(hasher.finalize());
                    let _ = tx
                        .send(Ok(StateChunk {
                            data: Vec::new(),
                            sha256,
                        }))
                        .await;
                    return;
                }
                data.truncate(n);
                hasher.update(&data);
                if tx
                    .send(Ok(StateChunk {
                        data,
                        sha256: String::new(),
                    }))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn import_state(
        &self,
        request: Request<Streaming<ImportStateChunk>>,
    ) -> Result<Response<ImportStateResponse>, Status> {
        let caller = self
            .auth
            .caller(&request, "Node.ImportState", &[Role::Admin])?;
        let mut chunks = request.into_inner();
        let scratch = Scratch::new(self.store.dir(), "import");
        let io = |e: std::io::Error| io_status("writing the imported copy", e);
        let mut file = tokio::fs::File::create(&scratch.0).await.map_err(io)?;
        let mut hasher = sha2::Sha256::new();
        let mut bytes = 0i64;
        let mut replace = false;
        let mut expected = String::new();
        let mut first = true;
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk?;
            if first {
                replace = chunk.replace;
                first = false;
            }
            if !expected.is_empty() {
                return Err(Status::invalid_argument(
                    "data after the chunk that carried the sha256",
                ));
            }
            hasher.update(&chunk.data);
            bytes += chunk.data.len() as i64;
            file.write_all(&chunk.data).await.map_err(io)?;
            expected = chunk.sha256;
        }
        file.sync_all().await.map_err(io)?;
        drop(file);
        if expected.is_empty() {
            return Err(Status::invalid_argument(
                "the stream ended without a sha256 on its last chunk; nothing was replaced",
            ));
        }
        let actual = hex::encode(hasher.finalize());
        if actual != expected.to_ascii_lowercase() {
            return Err(Status::data_loss(format!(
                "the copy's SHA-256 is {actual}, the sender said {expected}; nothing was replaced"
            )));
        }
        let path = scratch.0.clone();
        let node = self.config.name.clone();
        let checked = tokio::task::spawn_blocking(move || check_copy(&path, &node))
            .await
            .map_err(|e| Status::internal(format!("checking the copy: {e}")))??;
        // The copy is made complete before it replaces anything: migrated to this build's
        // schema and with its `state.import` record appended to its own chain. The copy then
        // replaces the store in one SQLite transaction (the backup), so a crash at any moment
        // leaves either the old state or the new one with its import record, never a mix.
        let path = scratch.0.clone();
        let algorithm = self.algorithm();
        let subject = caller.subject.clone();
        let detail =
            json!({"bytes": bytes, "sha256": actual, "records": checked, "replace": replace});
        let portal_root = self.store.dir().join(crate::portal::DIR);
        let audit_records = tokio::task::spawn_blocking(move || {
            complete_copy(&path, &portal_root, algorithm, &subject, detail)
        })
        .await
        .map_err(|e| Status::internal(format!("preparing the copy: {e}")))??;
        let path = scratch.0.clone();
        let dir = self.store.dir().to_owned();
        self.store
            .exclusive(move |conn: &mut Connection| {
                if !replace && audit::count(conn).db()? > 0 {
                    return Err(Status::failed_precondition(
                        "this node has state (its audit log is not empty); set replace on the first chunk to overwrite it",
                    ));
                }
                // The local copy of the parent's last anchor describes the history about to be
                // replaced; the copy brings its own knowledge of how far it was anchored.
                // Removed first: a crash after the replacement must not leave it to contradict
                // the new history (it is only a copy of what the parent holds).
                crate::anchor::remove_local(&dir)
                    .map_err(|e| io_status("removing the local anchor copy", e))?;
                let source = store::open_reader(&path).db()?;
                rusqlite::backup::Backup::new(&source, conn)
                    .db()?
                    .run_to_completion(256, std::time::Duration::ZERO, None)
                    .db()?;
                drop(source);
                // The copy's header carries its own journal mode; the store stays in WAL.
                conn.pragma_update(None, "journal_mode", "WAL").db()?;
                Ok(())
            })
            .await?;
        self.reload().await?;
        self.parent.catalog_changed();
        tracing::info!(bytes, audit_records, "state imported");
        Ok(Response::new(ImportStateResponse {
            bytes,
            audit_records,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A copy SQLite finds sound but without the node's tables is refused as the sender's
    /// mistake, never as this node's INTERNAL error (the import_state fuzz target's finding).
    #[test]
    fn a_copy_without_the_nodes_tables_is_an_invalid_argument() {
        let dir = std::env::temp_dir().join(format!("govdc-check-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join("copy.db");
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).expect("a scratch database");
        conn.execute_batch("PRAGMA user_version = 1; CREATE TABLE unrelated (a INTEGER);")
            .expect("an unrelated table");
        drop(conn);
        let refused = check_copy(&path, "national").expect_err("a copy without the node's tables");
        std::fs::remove_dir_all(&dir).expect("the scratch directory removed");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert!(
            refused.message().starts_with(
                "the imported state is refused: it lacks what schema version 1 has: table audit, "
            ) && refused.message().contains("table settings"),
            "{}",
            refused.message()
        );
    }

    /// A copy of the current schema with one table dropped (the import_state fuzz target's
    /// second finding: `members` gone, refused with INTERNAL "no such table"; its reproducer is
    /// `fuzz/artifacts/import_state/crash-ca97b482…`) and one with a column gone.
    #[test]
    fn a_copy_missing_a_table_or_a_column_of_its_schema_version_is_an_invalid_argument() {
        for (case, damage, named) in [
            ("table", "DROP TABLE members", "table members"),
            (
                "column",
                "ALTER TABLE members DROP COLUMN joined_at",
                "column members.joined_at",
            ),
        ] {
            let dir =
                std::env::temp_dir().join(format!("govdc-missing-{case}-{}", std::process::id()));
            std::fs::create_dir_all(&dir).expect("a scratch directory");
            let path = dir.join("copy.db");
            let _ = std::fs::remove_file(&path);
            let conn = Connection::open(&path).expect("a scratch database");
            store::migrate(&conn).expect("the current schema");
            conn.execute_batch(damage).expect("the damage");
            drop(conn);
            let refused = check_copy(&path, "national").expect_err("a damaged copy");
            std::fs::remove_dir_all(&dir).expect("the scratch directory removed");
            assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
            assert!(refused.message().contains(named), "{}", refused.message());
        }
    }

    /// A copy that claims an older schema version than its tables are of does not migrate: the
    /// sender's mistake, never INTERNAL (the import_state fuzz target's finding; its reproducer
    /// is `fuzz/artifacts/import_state/crash-c5c3e3d1…`: the schema version set to 3).
    #[test]
    fn a_copy_whose_tables_are_newer_than_its_schema_version_is_an_invalid_argument() {
        let dir = std::env::temp_dir().join(format!("govdc-complete-copy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("a scratch directory");
        let path = dir.join("copy.db");
        let _ = std::fs::remove_file(&path);
        let conn = Connection::open(&path).expect("a scratch database");
        store::migrate(&conn).expect("the current schema");
        conn.execute_batch("PRAGMA user_version = 3")
            .expect("an older schema version claimed");
        drop(conn);
        let refused = complete_copy(
            &path,
            &dir.join("portal"),
            audit::Algorithm::Sha256,
            "operator",
            json!({}),
        )
        .expect_err("a copy that does not migrate");
        std::fs::remove_dir_all(&dir).expect("the scratch directory removed");
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        assert_eq!(
            refused.message(),
            "the imported state is refused: its tables are not those of its schema version \
             (migrating the store to schema version 4: table portal_applications already exists)",
            "{}",
            refused.message()
        );
    }
}
