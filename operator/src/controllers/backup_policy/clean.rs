//! Turns an object of the primary into the copy the standby gets. Pure.
//!
//! What the API server or a controller of the primary set (uid, resourceVersion, status, cluster
//! IPs, managed fields, bound volume names) would be wrong or refused in another cluster; owner
//! references name uids that do not exist there, and the standby's garbage collector would delete
//! a copy whose owner it cannot find, so they are dropped (the owners are recorded in an
//! annotation). Cluster-generated objects — `kube-root-ca.crt`, ServiceAccount token Secrets,
//! objects a workload controller made — are never copied: the standby makes its own.

use serde_json::{Map, Value, json};

use super::kinds::Kind;
use govdc_crds::backup_policy::NamespaceMapping;

/// Label on every copy, naming the BackupPolicy that made it; the target is listed by it.
pub const POLICY_LABEL: &str = "govdc.io/backup-policy";
/// Annotation on a copy naming the primary's namespace it came from.
pub const SOURCE_NAMESPACE_ANNOTATION: &str = "govdc.io/source-namespace";
/// Annotation on a copy: SHA-256 of the cleaned source, to tell a changed source without
/// comparing whole objects.
pub const SOURCE_HASH_ANNOTATION: &str = "govdc.io/source-hash";
/// Annotation on a copy whose source was deleted: when the deletion was seen (RFC 3339). The copy
/// is deleted once the grace period has passed since then.
pub const SOURCE_DELETED_AT_ANNOTATION: &str = "govdc.io/source-deleted-at";
/// Annotation on a standby Deployment or StatefulSet: the replica count it runs on the primary,
/// which failover restores.
pub const STANDBY_REPLICAS_ANNOTATION: &str = "govdc.io/standby-replicas";
/// Annotation on a standby CronJob: whether it was suspended on the primary.
pub const STANDBY_SUSPEND_ANNOTATION: &str = "govdc.io/standby-suspend";
/// Annotation on a copy listing the owners (`Kind/name`) the source had; owner references
/// themselves cannot cross clusters.
pub const SOURCE_OWNERS_ANNOTATION: &str = "govdc.io/source-owners";

/// Annotations of the primary's controllers that describe the primary's state only.
const DROPPED_ANNOTATIONS: &[&str] = &[
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
    "pv.kubernetes.io/bind-completed",
    "pv.kubernetes.io/bound-by-controller",
    "volume.beta.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/storage-provisioner",
    "volume.kubernetes.io/selected-node",
];

/// Kinds whose controllers make objects of their own; what they control is regenerated on the
/// standby, not copied.
const WORKLOAD_OWNERS: &[&str] = &[
    "Deployment",
    "ReplicaSet",
    "StatefulSet",
    "DaemonSet",
    "Job",
    "CronJob",
];

/// How copies are made for one policy.
#[derive(Clone, Debug)]
pub struct CleanOptions {
    /// The policy's name, for [`POLICY_LABEL`].
    pub policy: String,
    /// How namespaces are named on the target.
    pub mapping: NamespaceMapping,
    /// Workloads at zero replicas, CronJobs suspended.
    pub warm_standby: bool,
}

/// The target's name for a source namespace.
pub fn map_namespace(mapping: &NamespaceMapping, namespace: &str) -> String {
    format!("{}{namespace}{}", mapping.prefix, mapping.suffix)
}

/// The source namespace whose copies go to the target namespace `target`, if any does.
pub fn unmap_namespace(mapping: &NamespaceMapping, target: &str) -> Option<String> {
    let source = target
        .strip_prefix(mapping.prefix.as_str())?
        .strip_suffix(mapping.suffix.as_str())?;
    (!source.is_empty()).then(|| source.to_owned())
}

/// The replica count a warm-standby copy records for its workload: what the source runs. A
/// source that is itself a standby copy (it carries a policy's mark and a recorded count — a
/// standby protected in turn, or a copy that reached a source by mistake) runs at zero only
/// because it is a copy: its recorded count is the workload's, and a copy's zero must never
/// replace it.
fn recorded_replicas(source: &Value) -> i64 {
    let meta = &source["metadata"];
    let spec_replicas = source["spec"]["replicas"].as_i64().unwrap_or(1);
    let recorded = meta["annotations"][STANDBY_REPLICAS_ANNOTATION]
        .as_str()
        .and_then(|r| r.parse::<i64>().ok());
    match recorded {
        Some(recorded) if !meta["labels"][POLICY_LABEL].is_null() && spec_replicas == 0 => recorded,
        _ => spec_replicas,
    }
}

/// Whether an object of `kind` is the tenant's own, not one a cluster component generated.
pub fn replicable(kind: &Kind, object: &Value) -> bool {
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match kind.kind {
        "ConfigMap" if name == "kube-root-ca.crt" => return false,
        "Secret"
            if object["type"].as_str() == Some("kubernetes.io/service-account-token")
                || object["type"].as_str() == Some("bootstrap.kubernetes.io/token") =>
        {
            return false;
        }
        _ => {}
    }
    let controlled_by_workload = object["metadata"]["ownerReferences"]
        .as_array()
        .is_some_and(|owners| {
            owners.iter().any(|o| {
                o["controller"].as_bool() == Some(true)
                    && o["kind"]
                        .as_str()
                        .is_some_and(|k| WORKLOAD_OWNERS.contains(&k))
            })
        });
    object["metadata"]["deletionTimestamp"].is_null() && !controlled_by_workload
}

/// The copy of `object` (an object of `kind` as the primary's API server returns it) for the
/// target, with [`SOURCE_HASH_ANNOTATION`] set.
pub fn clean(kind: &Kind, object: &Value, options: &CleanOptions) -> Value {
    // Borrowed, not cloned: only what the copy keeps is copied (the source's managed fields
    // alone are often most of it).
    let empty = Map::new();
    let source = object.as_object().unwrap_or(&empty);
    let meta = source
        .get("metadata")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let mut labels = meta
        .get("labels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    labels.insert(POLICY_LABEL.to_owned(), json!(options.policy));
    let mut annotations = meta
        .get("annotations")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    for dropped in DROPPED_ANNOTATIONS {
        annotations.remove(*dropped);
    }
    annotations.remove(SOURCE_DELETED_AT_ANNOTATION);
    annotations.remove(SOURCE_HASH_ANNOTATION);
    if let Some(owners) = meta.get("ownerReferences").and_then(Value::as_array) {
        let owners: Vec<String> = owners
            .iter()
            .map(|o| {
                format!(
                    "{}/{}",
                    o["kind"].as_str().unwrap_or_default(),
                    o["name"].as_str().unwrap_or_default()
                )
            })
            .collect();
        if !owners.is_empty() {
            annotations.insert(SOURCE_OWNERS_ANNOTATION.to_owned(), json!(owners.join(",")));
        }
    }
    let name = meta.get("name").cloned().unwrap_or(Value::Null);
    let mut metadata = Map::new();
    metadata.insert("name".into(), name.clone());
    let source_namespace = match kind.kind {
        "Namespace" => name.as_str().unwrap_or_default().to_owned(),
        _ => meta
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
    };
    let target_namespace = map_namespace(&options.mapping, &source_namespace);
    if kind.kind == "Namespace" {
        metadata.insert("name".into(), json!(target_namespace));
    } else {
        metadata.insert("namespace".into(), json!(target_namespace));
    }
    annotations.insert(
        SOURCE_NAMESPACE_ANNOTATION.to_owned(),
        json!(source_namespace),
    );

    let mut copy = Map::new();
    copy.insert("apiVersion".into(), json!(kind.api_resource().api_version));
    copy.insert("kind".into(), json!(kind.kind));
    for (key, value) in source {
        if !matches!(key.as_str(), "apiVersion" | "kind" | "metadata" | "status") {
            copy.insert(key.clone(), value.clone());
        }
    }
    clean_kind(kind.kind, &mut copy, &mut annotations, options.warm_standby);
    if options.warm_standby && matches!(kind.kind, "Deployment" | "StatefulSet") {
        annotations.insert(
            STANDBY_REPLICAS_ANNOTATION.to_owned(),
            json!(recorded_replicas(object).to_string()),
        );
    }

    metadata.insert("labels".into(), Value::Object(labels));
    metadata.insert("annotations".into(), Value::Object(annotations));
    copy.insert("metadata".into(), Value::Object(metadata));
    // The hash is of the copy as it is without the hash annotation, which it then gets.
    let mut copy = Value::Object(copy);
    let hash = content_hash(&copy);
    if let Some(annotations) = copy["metadata"]["annotations"].as_object_mut() {
        annotations.insert(SOURCE_HASH_ANNOTATION.to_owned(), json!(hash));
    }
    copy
}

/// What each kind's spec holds that belongs to the primary alone.
fn clean_kind(
    kind: &str,
    copy: &mut Map<String, Value>,
    annotations: &mut Map<String, Value>,
    warm_standby: bool,
) {
    match kind {
        "Namespace" => {
            copy.remove("spec");
        }
        "Service" => {
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                for field in [
                    "clusterIP",
                    "clusterIPs",
                    "healthCheckNodePort",
                    "ipFamilies",
                    "ipFamilyPolicy",
                ] {
                    spec.remove(field);
                }
                if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                    for port in ports {
                        if let Some(port) = port.as_object_mut() {
                            port.remove("nodePort");
                        }
                    }
                }
            }
        }
        "PersistentVolumeClaim" => {
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                spec.remove("volumeName");
            }
        }
        "ServiceAccount" => {
            copy.remove("secrets");
        }
        "Deployment" | "StatefulSet" if warm_standby => {
            // The recorded count is set by `clean` from the source (see `recorded_replicas`).
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("replicas".into(), json!(0));
            }
        }
        "CronJob" if warm_standby => {
            let suspended = copy["spec"]["suspend"].as_bool().unwrap_or(false);
            annotations.insert(
                STANDBY_SUSPEND_ANNOTATION.to_owned(),
                json!(suspended.to_string()),
            );
            if let Some(spec) = copy.get_mut("spec").and_then(Value::as_object_mut) {
                spec.insert("suspend".into(), json!(true));
            }
        }
        _ => {}
    }
    if kind == "StatefulSet"
        && let Some(templates) = copy
            .get_mut("spec")
            .and_then(|s| s.get_mut("volumeClaimTemplates"))
            .and_then(Value::as_array_mut)
    {
        for template in templates {
            if let Some(template) = template.as_object_mut() {
                template.remove("status");
            }
        }
    }
}

/// SHA-256 of a JSON value, hex. serde_json's maps are sorted, so equal values hash equal.
pub fn content_hash(value: &Value) -> String {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    crate::digest::sha256_hex(&bytes)
}

/// The hash a copy on the target was made from, if any.
pub fn source_hash(copy: &Value) -> Option<&str> {
    copy["metadata"]["annotations"][SOURCE_HASH_ANNOTATION].as_str()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controllers::backup_policy::kinds::{CATALOG, namespace};

    fn kind(name: &str) -> Kind {
        CATALOG
            .iter()
            .find(|k| k.kind == name)
            .cloned()
            .expect("catalog kind")
    }

    fn options(standby: bool) -> CleanOptions {
        CleanOptions {
            policy: "to-dr".into(),
            mapping: NamespaceMapping {
                prefix: "dr-".into(),
                suffix: String::new(),
            },
            warm_standby: standby,
        }
    }

    #[test]
    fn server_set_fields_are_dropped_and_the_namespace_mapped() {
        let service = json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "web", "namespace": "zj-prod", "uid": "u1", "resourceVersion": "42",
                         "creationTimestamp": "2026-01-01T00:00:00Z", "managedFields": [{"manager": "kubectl"}],
                         "generation": 3, "finalizers": ["x"],
                         "ownerReferences": [{"kind": "OpenDataset", "name": "d", "uid": "u0", "apiVersion": "govdc.io/v1alpha1"}]},
            "spec": {"clusterIP": "10.0.0.5", "clusterIPs": ["10.0.0.5"], "ipFamilies": ["IPv4"],
                     "ports": [{"port": 80, "nodePort": 30080}], "selector": {"app": "web"}, "type": "NodePort"},
            "status": {"loadBalancer": {}},
        });
        let copy = clean(&kind("Service"), &service, &options(true));
        let meta = &copy["metadata"];
        assert_eq!(meta["namespace"], "dr-zj-prod");
        for gone in [
            "uid",
            "resourceVersion",
            "creationTimestamp",
            "managedFields",
            "generation",
            "finalizers",
            "ownerReferences",
        ] {
            assert!(meta[gone].is_null(), "{gone} should be dropped");
        }
        assert_eq!(meta["labels"][POLICY_LABEL], "to-dr");
        assert_eq!(meta["annotations"][SOURCE_NAMESPACE_ANNOTATION], "zj-prod");
        assert_eq!(
            meta["annotations"][SOURCE_OWNERS_ANNOTATION],
            "OpenDataset/d"
        );
        assert!(copy["status"].is_null());
        assert!(copy["spec"]["clusterIP"].is_null() && copy["spec"]["clusterIPs"].is_null());
        assert!(copy["spec"]["ports"][0]["nodePort"].is_null());
        assert_eq!(copy["spec"]["selector"]["app"], "web");
    }

    #[test]
    fn warm_standby_runs_workloads_at_zero_and_records_the_count() {
        let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "t"}, "spec": {"replicas": 3}});
        let copy = clean(&kind("Deployment"), &deployment, &options(true));
        assert_eq!(copy["spec"]["replicas"], 0);
        assert_eq!(
            copy["metadata"]["annotations"][STANDBY_REPLICAS_ANNOTATION],
            "3"
        );
        let hot = clean(&kind("Deployment"), &deployment, &options(false));
        assert_eq!(hot["spec"]["replicas"], 3);

        let cron = json!({"apiVersion": "batch/v1", "kind": "CronJob",
            "metadata": {"name": "nightly", "namespace": "t"}, "spec": {"schedule": "0 1 * * *"}});
        let copy = clean(&kind("CronJob"), &cron, &options(true));
        assert_eq!(copy["spec"]["suspend"], true);
        assert_eq!(
            copy["metadata"]["annotations"][STANDBY_SUSPEND_ANNOTATION],
            "false"
        );
    }

    #[test]
    fn a_copy_at_zero_never_replaces_the_recorded_count() {
        // A standby copy protected in turn (or one that reached a source): it runs at zero
        // because it is a copy, and the count it records is the workload's.
        let copy = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "t",
                         "labels": {POLICY_LABEL: "other"},
                         "annotations": {STANDBY_REPLICAS_ANNOTATION: "4"}},
            "spec": {"replicas": 0}});
        let again = clean(&kind("Deployment"), &copy, &options(true));
        assert_eq!(
            again["metadata"]["annotations"][STANDBY_REPLICAS_ANNOTATION],
            "4"
        );
        assert_eq!(again["spec"]["replicas"], 0);
        // A promoted copy runs what it runs; a workload without a mark is its own source.
        let promoted = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "t", "labels": {POLICY_LABEL: "other"},
                         "annotations": {STANDBY_REPLICAS_ANNOTATION: "4"}},
            "spec": {"replicas": 6}});
        let copied = clean(&kind("Deployment"), &promoted, &options(true));
        assert_eq!(
            copied["metadata"]["annotations"][STANDBY_REPLICAS_ANNOTATION],
            "6"
        );
        let scaled_down = json!({"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "api", "namespace": "t",
                         "annotations": {STANDBY_REPLICAS_ANNOTATION: "4"}},
            "spec": {"replicas": 0}});
        let copied = clean(&kind("Deployment"), &scaled_down, &options(true));
        assert_eq!(
            copied["metadata"]["annotations"][STANDBY_REPLICAS_ANNOTATION],
            "0"
        );
    }

    #[test]
    fn target_namespaces_map_back_to_their_source() {
        let mapping = options(true).mapping;
        assert_eq!(
            unmap_namespace(&mapping, "dr-zj-prod").as_deref(),
            Some("zj-prod")
        );
        assert_eq!(unmap_namespace(&mapping, "zj-prod"), None);
        assert_eq!(unmap_namespace(&mapping, "dr-"), None);
        let identity = NamespaceMapping::default();
        assert_eq!(
            unmap_namespace(&identity, "zj-prod").as_deref(),
            Some("zj-prod")
        );
    }

    #[test]
    fn cluster_generated_objects_are_not_replicated() {
        let root_ca = json!({"metadata": {"name": "kube-root-ca.crt", "namespace": "t"}});
        assert!(!replicable(&kind("ConfigMap"), &root_ca));
        let token = json!({"metadata": {"name": "sa-token"}, "type": "kubernetes.io/service-account-token"});
        assert!(!replicable(&kind("Secret"), &token));
        let opaque = json!({"metadata": {"name": "db"}, "type": "Opaque"});
        assert!(replicable(&kind("Secret"), &opaque));
        let job_of_cron = json!({"metadata": {"name": "nightly-1",
            "ownerReferences": [{"kind": "CronJob", "name": "nightly", "controller": true}]}});
        assert!(!replicable(&kind("Job"), &job_of_cron));
        let terminating =
            json!({"metadata": {"name": "x", "deletionTimestamp": "2026-01-01T00:00:00Z"}});
        assert!(!replicable(&kind("ConfigMap"), &terminating));
    }

    #[test]
    fn a_namespace_is_renamed_and_keeps_its_labels() {
        let ns = json!({"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": "zj-prod", "labels": {"govdc.io/department": "zj"}},
            "spec": {"finalizers": ["kubernetes"]}, "status": {"phase": "Active"}});
        let copy = clean(&namespace(), &ns, &options(true));
        assert_eq!(copy["metadata"]["name"], "dr-zj-prod");
        assert!(copy["metadata"]["namespace"].is_null());
        assert_eq!(copy["metadata"]["labels"]["govdc.io/department"], "zj");
        assert!(copy["spec"].is_null());
    }

    #[test]
    fn the_hash_changes_with_content_and_not_with_server_fields() {
        let a = json!({"metadata": {"name": "c", "namespace": "t", "resourceVersion": "1"}, "data": {"k": "v"}});
        let b = json!({"metadata": {"name": "c", "namespace": "t", "resourceVersion": "2"}, "data": {"k": "v"}});
        let c = json!({"metadata": {"name": "c", "namespace": "t"}, "data": {"k": "w"}});
        let hash = |o: &Value| {
            source_hash(&clean(&kind("ConfigMap"), o, &options(true)))
                .map(str::to_owned)
                .expect("hash")
        };
        assert_eq!(hash(&a), hash(&b));
        assert_ne!(hash(&a), hash(&c));
    }

    #[test]
    fn the_hash_is_of_the_copy_without_its_hash_as_copies_already_on_a_standby_carry_it() {
        let source = json!({"metadata": {"name": "c", "namespace": "t", "labels": {"app": "a"},
                            "annotations": {"note": "n"}, "managedFields": [{"manager": "kubectl"}]},
                            "data": {"k": "v"}});
        let copy = clean(&kind("ConfigMap"), &source, &options(true));
        let mut without = copy.clone();
        without["metadata"]["annotations"]
            .as_object_mut()
            .expect("annotations")
            .remove(SOURCE_HASH_ANNOTATION);
        assert_eq!(source_hash(&copy), Some(content_hash(&without).as_str()));
        assert_eq!(copy["metadata"]["annotations"]["note"], "n");
        assert!(copy["metadata"]["managedFields"].is_null());
    }
}
