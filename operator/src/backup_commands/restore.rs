//! Restoring a restore point into a chosen cluster and namespace mapping, in dependency order:
//! namespaces, then RBAC, then configuration, then services, then workloads, then govdc's own
//! resources — whose CRDs are waited for rather than failing the restore. An object that exists
//! and differs is a conflict: reported, and left alone unless overwriting was asked for.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::{StreamExt, stream};
use govdc_crds::backup_policy::NamespaceMapping;
use kube::Client;
use kube::api::{Patch, PatchParams};
use serde_json::Value;

use crate::controllers::backup_policy::clean::map_namespace;
use crate::controllers::backup_policy::kinds::{self, Kind};
use crate::controllers::backup_policy::target::{api_for, classify};
use crate::pipeline::apply::holds;

/// The field manager of restored objects.
pub const RESTORE_MANAGER: &str = "govdc-restore";

/// How long a restore waits for a kind to be served (a CRD being installed) or a namespace to
/// finish terminating.
const WAIT_LIMIT: Duration = Duration::from_secs(120);

/// Where and how a restore point is restored.
#[derive(Clone, Debug, Default)]
pub struct RestoreOptions {
    /// Prefix and suffix of every namespace.
    pub mapping: NamespaceMapping,
    /// Explicit names of some namespaces (`from -> to`), over the mapping.
    pub renames: BTreeMap<String, String>,
    /// Replace objects that exist and differ, instead of reporting them as conflicts.
    pub overwrite: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl RestoreOptions {
    /// The target's name for a namespace of the restore point.
    pub fn namespace(&self, source: &str) -> String {
        self.renames
            .get(source)
            .cloned()
            .unwrap_or_else(|| map_namespace(&self.mapping, source))
    }
}

/// What a restore did, object by object (`Kind namespace/name`).
#[derive(Debug, Default)]
pub struct RestoreReport {
    /// Created.
    pub created: Vec<String>,
    /// Already there, identical.
    pub unchanged: Vec<String>,
    /// There and different, replaced (with overwriting).
    pub overwritten: Vec<String>,
    /// There and different, left alone, with the fields that differ.
    pub conflicts: Vec<String>,
    /// Not written, with why.
    pub failed: Vec<String>,
}

/// The restore point's objects in restore waves, renamed into the target's namespaces. Objects
/// of kinds this operator does not know are left out (a restore point of a newer operator).
pub fn plan(objects: &[Value], options: &RestoreOptions) -> Vec<Vec<(Kind, Value)>> {
    let mut waves: BTreeMap<u8, Vec<(Kind, Value)>> = BTreeMap::new();
    for object in objects {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind_name = object["kind"].as_str().unwrap_or_default();
        let Some(kind) = kinds::find(api_version, kind_name) else {
            continue;
        };
        let mut object = object.clone();
        if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
            if kind.kind == "Namespace" {
                let name = meta.get("name").and_then(Value::as_str).unwrap_or_default();
                let renamed = options.namespace(name);
                meta.insert("name".into(), Value::String(renamed));
            } else {
                let namespace = meta
                    .get("namespace")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let renamed = options.namespace(namespace);
                meta.insert("namespace".into(), Value::String(renamed));
            }
        }
        waves.entry(kind.rank).or_default().push((kind, object));
    }
    waves.into_values().collect()
}

fn describe(kind: &Kind, object: &Value) -> String {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{} {ns}/{name}", kind.kind),
        None => format!("{} {name}", kind.kind),
    }
}

/// The top-level fields where `existing` does not hold `desired`.
fn differing_fields(existing: &Value, desired: &Value) -> Vec<String> {
    let mut fields = Vec::new();
    if let Some(desired) = desired.as_object() {
        for (key, value) in desired {
            if matches!(key.as_str(), "apiVersion" | "kind") {
                continue;
            }
            if key == "metadata" {
                for sub in ["labels", "annotations"] {
                    if !value[sub].is_null() && !holds(&existing[key][sub], &value[sub]) {
                        fields.push(format!("metadata.{sub}"));
                    }
                }
            } else if !holds(&existing[key], value) {
                fields.push(key.clone());
            }
        }
    }
    fields
}

enum Outcome {
    Created,
    Unchanged,
    Overwritten,
    Conflict(Vec<String>),
    Failed(String),
}

async fn restore_one(client: &Client, kind: &Kind, object: &Value, overwrite: bool) -> Outcome {
    let resource = kind.api_resource();
    let api = api_for(client, &resource, object);
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    let started = Instant::now();
    let existing = loop {
        match api.get_opt(name).await {
            Ok(Some(existing))
                if kind.kind == "Namespace" && existing.metadata.deletion_timestamp.is_some() =>
            {
                // A namespace still terminating from a wipe: wait, or the restore fails inside it.
            }
            Ok(existing) => break existing,
            Err(error) => match classify(&error) {
                failure if failure.reason() == "KindNotServed" => {}
                failure => {
                    return Outcome::Failed(format!("{}: {}", failure.reason(), failure.message()));
                }
            },
        }
        if started.elapsed() > WAIT_LIMIT {
            return Outcome::Failed(format!(
                "waited {}s for the kind to be served or the namespace to terminate",
                WAIT_LIMIT.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let existing = existing.map(|e| serde_json::to_value(e).unwrap_or(Value::Null));
    let outcome = match &existing {
        None => Outcome::Created,
        Some(existing) if holds(existing, object) => return Outcome::Unchanged,
        Some(_) if overwrite => Outcome::Overwritten,
        Some(existing) => return Outcome::Conflict(differing_fields(existing, object)),
    };
    match api
        .patch(
            name,
            &PatchParams::apply(RESTORE_MANAGER).force(),
            &Patch::Apply(object),
        )
        .await
    {
        Ok(_) => outcome,
        Err(error) => {
            let failure = classify(&error);
            Outcome::Failed(format!("{}: {}", failure.reason(), failure.message()))
        }
    }
}

/// Restores `objects` (a restore point's) into the cluster of `client`.
pub async fn restore(
    client: &Client,
    objects: &[Value],
    options: &RestoreOptions,
) -> RestoreReport {
    let mut report = RestoreReport::default();
    for wave in plan(objects, options) {
        let results: Vec<(String, Outcome)> = stream::iter(wave)
            .map(|(kind, object)| async move {
                let outcome = restore_one(client, &kind, &object, options.overwrite).await;
                (describe(&kind, &object), outcome)
            })
            .buffer_unordered(options.concurrency.max(1))
            .collect()
            .await;
        for (what, outcome) in results {
            match outcome {
                Outcome::Created => report.created.push(what),
                Outcome::Unchanged => report.unchanged.push(what),
                Outcome::Overwritten => report.overwritten.push(what),
                Outcome::Conflict(fields) => report.conflicts.push(format!(
                    "{what}: exists and differs in {}",
                    fields.join(", ")
                )),
                Outcome::Failed(why) => report.failed.push(format!("{what}: {why}")),
            }
        }
    }
    for list in [
        &mut report.created,
        &mut report.unchanged,
        &mut report.overwritten,
        &mut report.conflicts,
        &mut report.failed,
    ] {
        list.sort();
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_restore_runs_in_dependency_order_into_the_mapped_namespaces() {
        let objects = vec![
            json!({"apiVersion": "govdc.io/v1alpha1", "kind": "OpenDataset", "metadata": {"name": "d", "namespace": "zj-prod"}}),
            json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "namespace": "zj-prod"}}),
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "zj-prod"}}),
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": {"name": "r", "namespace": "zj-test"}}),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "zj-prod"}}),
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "namespace": "zj-prod"}}),
        ];
        let options = RestoreOptions {
            mapping: NamespaceMapping {
                prefix: String::new(),
                suffix: "-restored".into(),
            },
            renames: BTreeMap::from([("zj-test".into(), "sandbox".into())]),
            ..Default::default()
        };
        let waves = plan(&objects, &options);
        let kinds: Vec<Vec<&str>> = waves
            .iter()
            .map(|w| w.iter().map(|(k, _)| k.kind).collect())
            .collect();
        assert_eq!(
            kinds,
            vec![
                vec!["Namespace"],
                vec!["Role"],
                vec!["ConfigMap"],
                vec!["Deployment"],
                vec!["OpenDataset"]
            ]
        );
        assert_eq!(waves[0][0].1["metadata"]["name"], "zj-prod-restored");
        assert_eq!(waves[1][0].1["metadata"]["namespace"], "sandbox");
    }

    #[test]
    fn a_conflict_names_the_fields_that_differ() {
        let existing =
            json!({"metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "old"}});
        let desired = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "labels": {"a": "1"}}, "data": {"k": "new"}});
        assert_eq!(differing_fields(&existing, &desired), ["data"]);
    }
}
