//! Restore points: point-in-time snapshots of a policy's protected objects in object storage
//! (`object_store`: a local directory by default, an S3-compatible bucket with the `s3` feature).
//!
//! Layout, under the policy's name: `<policy>/<point>/objects.json` (the objects, cleaned of
//! what the primary's API server set, with their source namespaces) and
//! `<policy>/<point>/manifest.json` (when, how many, and the SHA-256 of `objects.json`, checked
//! before any restore). The manifest is written last, so a point without one is incomplete and
//! never listed. A point of a policy with ExchangeNodes also holds each hub's database under
//! `<policy>/<point>/hub/<namespace>/<name>/` (see [`super::hub_state`]), listed in the manifest
//! with its own SHA-256; the copies exported between points live under `<policy>/hub-state/`.

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use futures::TryStreamExt;
use govdc_crds::backup_policy::RestorePoint;
use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use object_store::local::LocalFileSystem;
use object_store::path::Path as StorePath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::clean::{
    CleanOptions, POLICY_LABEL, SOURCE_HASH_ANNOTATION, SOURCE_NAMESPACE_ANNOTATION, clean,
};
use super::hub_state::{self, HubStateManifest, HubStateSource};
use super::kinds::{self, Kind};
use super::schedule::Schedule;
use super::source::{Scope, list_source};

/// Why a restore point could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object store failed.
    #[error("object storage")]
    Storage(#[from] object_store::Error),
    /// A stored file is not what this operator writes.
    #[error("restore point {name}: {message}")]
    Corrupt {
        /// The restore point.
        name: String,
        /// What is wrong.
        message: String,
    },
    /// Listing the primary failed.
    #[error(transparent)]
    Source(#[from] super::source::SourceError),
}

impl StoreError {
    /// The error with its causes, for conditions, logs and the CLI ([`crate::error::chain`]).
    pub fn chain(&self) -> String {
        crate::error::chain(self)
    }
}

/// A restore point's manifest.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Manifest {
    /// The point's name.
    pub name: String,
    /// The policy it belongs to.
    pub policy: String,
    /// When it was taken.
    pub taken_at: Timestamp,
    /// Objects it holds, namespaces included.
    pub objects: usize,
    /// SHA-256 of `objects.json`, hex.
    pub sha256: String,
    /// Size of `objects.json` in bytes.
    pub size_bytes: usize,
    /// The hub databases of the policy's ExchangeNodes taken with the point; absent from points
    /// of policies without ExchangeNodes (and of operators before hub state existed).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hub_states: Vec<HubStateManifest>,
}

impl Manifest {
    /// The status entry.
    pub fn status_entry(&self) -> RestorePoint {
        RestorePoint {
            name: self.name.clone(),
            taken_at: Time(self.taken_at),
            objects: i64::try_from(self.objects).unwrap_or(i64::MAX),
            sha256: Some(self.sha256.clone()),
        }
    }
}

/// A policy's restore points in one object store.
#[derive(Clone, Debug)]
pub struct RestorePointStore {
    store: Arc<dyn ObjectStore>,
    policy: String,
}

impl RestorePointStore {
    /// Restore points in a local directory (created if missing).
    pub fn local(directory: &Path, policy: &str) -> Result<RestorePointStore, StoreError> {
        std::fs::create_dir_all(directory).map_err(|e| StoreError::Corrupt {
            name: directory.display().to_string(),
            message: format!("creating the directory: {e}"),
        })?;
        Ok(RestorePointStore {
            store: Arc::new(LocalFileSystem::new_with_prefix(directory)?),
            policy: policy.to_owned(),
        })
    }

    /// Restore points in an S3-compatible bucket.
    #[cfg(feature = "s3")]
    pub fn s3(
        storage: &govdc_crds::backup_policy::ObjectStorage,
        access_key_id: &str,
        secret_access_key: &str,
        policy: &str,
    ) -> Result<RestorePointStore, StoreError> {
        let store = object_store::aws::AmazonS3Builder::new()
            .with_endpoint(&storage.endpoint)
            .with_bucket_name(&storage.bucket)
            .with_region(storage.region.as_deref().unwrap_or("us-east-1"))
            .with_access_key_id(access_key_id)
            .with_secret_access_key(secret_access_key)
            .with_allow_http(storage.endpoint.starts_with("http://"))
            .with_virtual_hosted_style_request(false)
            .build()?;
        Ok(RestorePointStore {
            store: Arc::new(store),
            policy: policy.to_owned(),
        })
    }

    fn path(&self, point: &str, file: &str) -> StorePath {
        StorePath::from(format!("{}/{point}/{file}", self.policy))
    }

    /// The object store, for the hub state copies kept beside the points.
    pub(super) fn objects(&self) -> &dyn ObjectStore {
        self.store.as_ref()
    }

    /// The policy whose points these are.
    pub fn policy(&self) -> &str {
        &self.policy
    }

    /// Writes a restore point of `objects` taken at `taken_at`, with the hub states already
    /// written under the point's directory, and returns its manifest.
    pub async fn put(
        &self,
        taken_at: Timestamp,
        objects: &[Value],
        hub_states: Vec<HubStateManifest>,
    ) -> Result<Manifest, StoreError> {
        let name = point_name(taken_at);
        let bytes = serde_json::to_vec(objects).map_err(|e| StoreError::Corrupt {
            name: name.clone(),
            message: e.to_string(),
        })?;
        let manifest = Manifest {
            name: name.clone(),
            policy: self.policy.clone(),
            taken_at,
            objects: objects.len(),
            sha256: crate::digest::sha256_hex(&bytes),
            size_bytes: bytes.len(),
            hub_states,
        };
        self.store
            .put(&self.path(&name, "objects.json"), PutPayload::from(bytes))
            .await?;
        let manifest_bytes =
            serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
                name: name.clone(),
                message: e.to_string(),
            })?;
        self.store
            .put(
                &self.path(&name, "manifest.json"),
                PutPayload::from(manifest_bytes),
            )
            .await?;
        Ok(manifest)
    }

    /// Every complete restore point, newest first.
    pub async fn list(&self) -> Result<Vec<Manifest>, StoreError> {
        let prefix = StorePath::from(self.policy.as_str());
        let files: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        let mut manifests = Vec::new();
        for file in files
            .iter()
            .filter(|f| f.location.filename() == Some("manifest.json"))
        {
            let bytes = self.store.get(&file.location).await?.bytes().await?;
            match serde_json::from_slice::<Manifest>(&bytes) {
                Ok(manifest) => manifests.push(manifest),
                Err(error) => {
                    tracing::warn!(file = %file.location, %error, "skipping an unreadable restore point manifest")
                }
            }
        }
        manifests.sort_by_key(|m| std::cmp::Reverse(m.taken_at));
        Ok(manifests)
    }

    /// The objects of a restore point (`latest` for the newest), after checking its checksum.
    pub async fn get(&self, name: &str) -> Result<(Manifest, Vec<Value>), StoreError> {
        let manifest = if name == "latest" {
            self.list()
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| StoreError::Corrupt {
                    name: name.into(),
                    message: format!("policy {} has no restore points", self.policy),
                })?
        } else {
            let bytes = self
                .store
                .get(&self.path(name, "manifest.json"))
                .await?
                .bytes()
                .await?;
            serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
                name: name.into(),
                message: format!("manifest: {e}"),
            })?
        };
        let bytes = self
            .store
            .get(&self.path(&manifest.name, "objects.json"))
            .await?
            .bytes()
            .await?;
        let sha256 = crate::digest::sha256_hex(&bytes);
        if sha256 != manifest.sha256 {
            return Err(StoreError::Corrupt {
                name: manifest.name.clone(),
                message: format!(
                    "checksum mismatch: the manifest says {}, the content hashes to {sha256}",
                    manifest.sha256
                ),
            });
        }
        let objects = serde_json::from_slice(&bytes).map_err(|e| StoreError::Corrupt {
            name: manifest.name.clone(),
            message: format!("objects: {e}"),
        })?;
        Ok((manifest, objects))
    }

    /// Deletes a restore point, manifest first so that it is never listed half-deleted, then
    /// everything under it (its objects and hub states).
    pub async fn delete(&self, name: &str) -> Result<(), StoreError> {
        self.store.delete(&self.path(name, "manifest.json")).await?;
        let prefix = StorePath::from(format!("{}/{name}", self.policy));
        let files: Vec<object_store::ObjectMeta> =
            self.store.list(Some(&prefix)).try_collect().await?;
        for file in files {
            self.store.delete(&file.location).await?;
        }
        Ok(())
    }

    /// Deletes the restore points retention does not keep; returns their names.
    pub async fn apply_retention(&self, retention: &Retention) -> Result<Vec<String>, StoreError> {
        let manifests = self.list().await?;
        let points: Vec<(String, Timestamp)> = manifests
            .iter()
            .map(|m| (m.name.clone(), m.taken_at))
            .collect();
        let keep = retention.keep(&points);
        let mut deleted = Vec::new();
        for (name, _) in points {
            if !keep.contains(&name) {
                self.delete(&name).await?;
                deleted.push(name);
            }
        }
        Ok(deleted)
    }
}

/// A restore point's name from the time it was taken: sortable, unique to the millisecond.
pub fn point_name(taken_at: Timestamp) -> String {
    let utc = taken_at.to_zoned(jiff::tz::TimeZone::UTC);
    format!(
        "{}-{:03}",
        utc.strftime("%Y%m%dT%H%M%SZ"),
        taken_at.subsec_millisecond()
    )
}

/// How many restore points are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// The newest this many.
    pub last: usize,
    /// The newest of each of this many most recent days (UTC).
    pub daily: usize,
    /// The newest of each of this many most recent ISO weeks.
    pub weekly: usize,
}

impl Retention {
    /// The names of the points to keep among `points` (name, time taken), in any order.
    pub fn keep(&self, points: &[(String, Timestamp)]) -> BTreeSet<String> {
        let mut sorted: Vec<&(String, Timestamp)> = points.iter().collect();
        sorted.sort_by_key(|p| std::cmp::Reverse(p.1));
        let mut keep: BTreeSet<String> = sorted
            .iter()
            .take(self.last)
            .map(|(n, _)| n.clone())
            .collect();
        let mut bucketed = |limit: usize, bucket: &dyn Fn(Timestamp) -> (i16, i16)| {
            let mut seen = BTreeSet::new();
            for (name, at) in &sorted {
                if seen.len() >= limit {
                    break;
                }
                if seen.insert(bucket(*at)) {
                    keep.insert(name.clone());
                }
            }
        };
        bucketed(self.daily, &|t| {
            let date = t.to_zoned(jiff::tz::TimeZone::UTC).date();
            (date.year(), date.day_of_year())
        });
        bucketed(self.weekly, &|t| {
            let week = t.to_zoned(jiff::tz::TimeZone::UTC).date().iso_week_date();
            (week.year(), i16::from(week.week()))
        });
        keep
    }
}

/// Cleans a source object for a restore point: like a replica, but in its own namespace, at its
/// own replica count, without the replication markers.
pub fn restore_point_object(kind: &Kind, object: &Value, policy: &str) -> Value {
    let options = CleanOptions {
        policy: policy.to_owned(),
        mapping: Default::default(),
        warm_standby: false,
    };
    let mut copy = clean(kind, object, &options);
    if let Some(meta) = copy.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove(POLICY_LABEL);
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove(SOURCE_HASH_ANNOTATION);
            annotations.remove(SOURCE_NAMESPACE_ANNOTATION);
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    copy
}

/// A restore point just taken, and the hub states it could not take with it (`namespace/name:
/// why`): the point is written all the same, its objects are worth having.
#[derive(Debug)]
pub struct Taken {
    /// The point's manifest.
    pub manifest: Manifest,
    /// Hub states left out.
    pub hub_failures: Vec<String>,
}

/// Takes a restore point now: lists what the policy protects on the primary and stores it, with
/// the state of each hub of `hubs` exported beside it.
pub async fn take(
    primary: &kube::Client,
    store: &RestorePointStore,
    scope: &Scope,
    kinds: &[Kind],
    hubs: &HubStateSource,
) -> Result<Taken, StoreError> {
    let taken_at = Timestamp::now();
    let (hub_states, hub_failures) =
        hub_state::take_with_point(primary, store, hubs, &point_name(taken_at)).await;
    let set = list_source(primary, scope, kinds, 8).await?;
    let namespace = kinds::namespace();
    let objects: Vec<Value> = set
        .namespaces
        .iter()
        .map(|ns| restore_point_object(&namespace, ns, &store.policy))
        .chain(
            set.objects
                .iter()
                .map(|(kind, o)| restore_point_object(kind, o, &store.policy)),
        )
        .collect();
    let manifest = store.put(taken_at, &objects, hub_states).await?;
    Ok(Taken {
        manifest,
        hub_failures,
    })
}

/// The restore points of a running policy: taken on its schedule, pruned by retention, and
/// listed for its status.
#[derive(Clone, Debug)]
pub struct RestorePointShelf {
    store: RestorePointStore,
    listed: Arc<Mutex<Vec<RestorePoint>>>,
}

impl RestorePointShelf {
    /// A shelf over a store.
    pub fn new(store: RestorePointStore) -> RestorePointShelf {
        RestorePointShelf {
            store,
            listed: Arc::default(),
        }
    }

    /// The points last listed, newest first.
    pub fn listed(&self) -> Vec<RestorePoint> {
        self.listed.lock().map(|l| l.clone()).unwrap_or_default()
    }

    async fn refresh(&self) {
        match self.store.list().await {
            Ok(manifests) => {
                if let Ok(mut listed) = self.listed.lock() {
                    *listed = manifests.iter().map(Manifest::status_entry).collect();
                }
            }
            Err(error) => tracing::warn!(error = error.chain(), "listing restore points failed"),
        }
    }

    /// Takes restore points on `schedule` until dropped (the replicator aborts it), applying
    /// `retention` after each. Points taken by the `backup snapshot` command show up at the next
    /// refresh, a minute at most.
    pub async fn run(
        self,
        primary: kube::Client,
        schedule: Schedule,
        retention: Retention,
        scope: Scope,
        kinds: Vec<Kind>,
        hubs: HubStateSource,
    ) {
        self.refresh().await;
        loop {
            let now = Timestamp::now();
            let next = schedule
                .next_after(now)
                .map(|at| at.duration_since(now).unsigned_abs())
                .unwrap_or(std::time::Duration::from_secs(3600));
            let refresh_every = std::time::Duration::from_secs(60);
            if next > refresh_every {
                tokio::time::sleep(refresh_every).await;
                self.refresh().await;
                continue;
            }
            tokio::time::sleep(next).await;
            match take(&primary, &self.store, &scope, &kinds, &hubs).await {
                Ok(taken) => {
                    tracing::info!(point = %taken.manifest.name, objects = taken.manifest.objects,
                        hub_states = taken.manifest.hub_states.len(), "took a restore point");
                    for failure in taken.hub_failures {
                        tracing::warn!(point = %taken.manifest.name, %failure, "a hub state is missing from the restore point");
                    }
                }
                Err(error) => {
                    tracing::warn!(error = error.chain(), "taking a restore point failed")
                }
            }
            match self.store.apply_retention(&retention).await {
                Ok(deleted) if !deleted.is_empty() => {
                    tracing::info!(?deleted, "deleted restore points past retention")
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(
                    error = error.chain(),
                    "applying restore point retention failed"
                ),
            }
            self.refresh().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("timestamp")
    }

    #[test]
    fn retention_keeps_the_newest_and_one_per_day_and_week() {
        let points: Vec<(String, Timestamp)> = [
            "2026-03-10T12:00:00Z",
            "2026-03-10T06:00:00Z",
            "2026-03-09T23:00:00Z",
            "2026-03-09T01:00:00Z",
            "2026-03-08T10:00:00Z",
            "2026-03-01T10:00:00Z",
            "2026-02-20T10:00:00Z",
        ]
        .iter()
        .map(|t| (t.to_string(), at(t)))
        .collect();
        let retention = Retention {
            last: 1,
            daily: 3,
            weekly: 3,
        };
        let keep = retention.keep(&points);
        let expected: BTreeSet<String> = [
            "2026-03-10T12:00:00Z", // newest, and newest of its day and week
            "2026-03-09T23:00:00Z", // newest of 9 March
            "2026-03-08T10:00:00Z", // newest of 8 March, and of ISO week 10 (2-8 March)
            "2026-03-01T10:00:00Z", // newest of ISO week 9
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(keep, expected);
    }

    #[test]
    fn retention_without_buckets_keeps_the_last_n() {
        let points: Vec<(String, Timestamp)> = (0..5)
            .map(|i| {
                (
                    format!("p{i}"),
                    at("2026-03-10T00:00:00Z") + jiff::SignedDuration::from_secs(i),
                )
            })
            .collect();
        let keep = Retention {
            last: 2,
            daily: 0,
            weekly: 0,
        }
        .keep(&points);
        assert_eq!(keep, BTreeSet::from(["p3".to_owned(), "p4".to_owned()]));
    }

    #[test]
    fn point_names_sort_by_time() {
        let a = point_name(at("2026-03-09T23:59:59.5Z"));
        let b = point_name(at("2026-03-10T00:00:00Z"));
        assert_eq!(a, "20260309T235959Z-500");
        assert!(a < b);
    }

    #[test]
    fn a_restore_point_keeps_the_original_namespace_and_replicas() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "zj-prod", "uid": "u", "labels": {"app": "api"}},
            "spec": {"replicas": 3}, "status": {"readyReplicas": 3}});
        let kind = kinds::find("apps/v1", "Deployment").expect("kind");
        let object = restore_point_object(&kind, &deployment, "p");
        assert_eq!(object["metadata"]["namespace"], "zj-prod");
        assert_eq!(object["spec"]["replicas"], 3);
        assert_eq!(object["metadata"]["labels"], json!({"app": "api"}));
        assert!(object["metadata"]["annotations"].is_null());
        assert!(object["metadata"]["uid"].is_null() && object["status"].is_null());
    }

    #[tokio::test]
    async fn a_tampered_restore_point_is_refused() {
        let dir = std::env::temp_dir().join(format!("govdc-rp-test-{}", std::process::id()));
        let store = RestorePointStore::local(&dir, "p").expect("store");
        let objects = vec![
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "n"}}),
        ];
        let manifest = store
            .put(Timestamp::now(), &objects, Vec::new())
            .await
            .expect("put");
        let (read, got) = store.get("latest").await.expect("get");
        assert_eq!(read, manifest);
        assert_eq!(got, objects);
        let file = dir.join("p").join(&manifest.name).join("objects.json");
        std::fs::write(&file, b"[]").expect("tamper");
        let error = store
            .get(&manifest.name)
            .await
            .expect_err("checksum must fail");
        assert!(error.to_string().contains("checksum mismatch"), "{error}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
