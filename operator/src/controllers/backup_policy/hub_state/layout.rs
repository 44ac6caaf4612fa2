//! Where copies live in the restore-point store, their manifests, the newest of each node, and
//! retention.

use super::*;
use std::collections::BTreeMap;

use futures::TryStreamExt;
use jiff::Timestamp;
use kube::Client;
use object_store::path::Path as StorePath;
use object_store::{ObjectStoreExt, PutPayload};

use super::super::clean::map_namespace;
use super::super::store::{RestorePointStore, Retention, StoreError, point_name};

/// The store directory of a copy taken between restore points.
pub(super) fn continuous_dir(policy: &str, node: &NodeRef, taken_at: Timestamp) -> String {
    format!(
        "{policy}/hub-state/{}/{}/{}",
        node.namespace,
        node.name,
        point_name(taken_at)
    )
}

/// The store directory of the copy taken with restore point `point`.
pub(super) fn point_dir(policy: &str, point: &str, node: &NodeRef) -> String {
    format!("{policy}/{point}/hub/{}/{}", node.namespace, node.name)
}

pub(super) async fn read_manifests(
    store: &RestorePointStore,
    prefix: &str,
) -> Result<Vec<HubStateManifest>, StoreError> {
    let objects = store.objects();
    let files: Vec<object_store::ObjectMeta> = objects
        .list(Some(&StorePath::from(prefix)))
        .try_collect()
        .await?;
    let mut manifests = Vec::new();
    for file in files
        .iter()
        .filter(|f| f.location.filename() == Some("state.json"))
    {
        let bytes = objects.get(&file.location).await?.bytes().await?;
        match serde_json::from_slice::<HubStateManifest>(&bytes) {
            Ok(manifest) => manifests.push(manifest),
            Err(error) => {
                tracing::warn!(file = %file.location, %error, "skipping an unreadable hub state manifest")
            }
        }
    }
    manifests.sort_by_key(|m| std::cmp::Reverse(m.taken_at));
    Ok(manifests)
}

/// The copies taken between restore points, of every node, newest first.
pub async fn stored(store: &RestorePointStore) -> Result<Vec<HubStateManifest>, StoreError> {
    read_manifests(store, &format!("{}/hub-state", store.policy())).await
}

/// The newest copy of each node taken no later than `until` (the failover's time, so that a
/// second failover never prefers a copy the primary took after the first): the copies taken
/// between restore points and with them, whichever is newer.
pub async fn latest(
    store: &RestorePointStore,
    until: Option<Timestamp>,
) -> Result<Vec<HubStateManifest>, StoreError> {
    let mut all = stored(store).await?;
    for point in store.list().await? {
        all.extend(point.hub_states);
    }
    let mut newest: BTreeMap<NodeRef, HubStateManifest> = BTreeMap::new();
    for manifest in all
        .into_iter()
        .filter(|m| until.is_none_or(|until| m.taken_at <= until))
    {
        let node = manifest.node();
        if newest
            .get(&node)
            .is_none_or(|kept| kept.taken_at < manifest.taken_at)
        {
            newest.insert(node, manifest);
        }
    }
    Ok(newest.into_values().collect())
}

/// Deletes a copy, manifest first so that it is never used half-deleted. A file already gone
/// (a deletion cut short earlier) is no error.
pub(super) async fn delete(
    store: &RestorePointStore,
    manifest: &HubStateManifest,
) -> Result<(), StoreError> {
    let objects = store.objects();
    for path in [
        StorePath::from(format!("{}/state.json", manifest.dir)),
        manifest.database(),
    ] {
        match objects.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
            Err(error) => return Err(error.into()),
        }
    }
    Ok(())
}

/// Deletes the copies of `node` taken between restore points that `retention` does not keep.
pub(super) async fn prune(
    store: &RestorePointStore,
    node: &NodeRef,
    retention: &Retention,
) -> Result<usize, StoreError> {
    let prefix = format!(
        "{}/hub-state/{}/{}",
        store.policy(),
        node.namespace,
        node.name
    );
    let manifests = read_manifests(store, &prefix).await?;
    let points: Vec<(String, Timestamp)> = manifests
        .iter()
        .map(|m| (m.dir.clone(), m.taken_at))
        .collect();
    let keep = retention.keep(&points);
    let mut deleted = 0;
    for manifest in manifests.iter().filter(|m| !keep.contains(&m.dir)) {
        delete(store, manifest).await?;
        deleted += 1;
    }
    Ok(deleted)
}

/// Exports every hub of `source` into restore point `point` (before its manifest is written).
/// A hub that cannot be exported now is represented by its newest copy taken between points, if
/// any; the second list says which hubs were not exported now, and why.
pub async fn take_with_point(
    primary: &Client,
    store: &RestorePointStore,
    source: &HubStateSource,
    point: &str,
) -> (Vec<HubStateManifest>, Vec<String>) {
    let mut states = Vec::new();
    let mut failures = Vec::new();
    for node in &source.nodes {
        let dir = point_dir(store.policy(), point, node);
        let target_namespace = map_namespace(&source.mapping, &node.namespace);
        let endpoint = source.hubs.endpoint(&node.namespace, &node.name);
        let exported = async {
            let access = access(primary, &node.namespace, &node.name, endpoint).await?;
            export(&access, store, &dir, node, &target_namespace, None).await
        }
        .await;
        match exported {
            Ok(Exported::Copied(manifest, _)) => states.push(*manifest),
            Ok(Exported::Unchanged) => {}
            Err(error) => match copy_latest(store, node, &dir).await {
                Ok(Some(manifest)) => {
                    failures.push(format!(
                        "{node}: {error}; the point holds its copy of {}",
                        manifest.taken_at
                    ));
                    states.push(manifest);
                }
                Ok(None) => failures.push(format!("{node}: {error}; no earlier copy exists")),
                Err(store_error) => failures.push(format!(
                    "{node}: {error}; copying its earlier copy failed: {}",
                    store_error.chain()
                )),
            },
        }
    }
    (states, failures)
}

/// Copies the newest copy of `node` taken between points into `dir`.
pub(super) async fn copy_latest(
    store: &RestorePointStore,
    node: &NodeRef,
    dir: &str,
) -> Result<Option<HubStateManifest>, StoreError> {
    let Some(latest) = stored(store).await?.into_iter().find(|m| m.node() == *node) else {
        return Ok(None);
    };
    let objects = store.objects();
    objects
        .copy(
            &latest.database(),
            &StorePath::from(format!("{dir}/state.db")),
        )
        .await?;
    let manifest = HubStateManifest {
        dir: dir.to_owned(),
        ..latest
    };
    let bytes = serde_json::to_vec_pretty(&manifest).map_err(|e| StoreError::Corrupt {
        name: dir.to_owned(),
        message: e.to_string(),
    })?;
    objects
        .put(
            &StorePath::from(format!("{dir}/state.json")),
            PutPayload::from(bytes),
        )
        .await?;
    Ok(Some(manifest))
}
