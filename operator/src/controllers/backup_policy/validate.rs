//! Pure validation of a BackupPolicy: what the CRD schema cannot check — the kubeconfig is there
//! and parses, the durations and schedules parse, the kinds are replicable, the storage can be
//! used — turned into a [`Plan`] the replicator runs.

use std::time::Duration;

use govdc_crds::BackupPolicy;
use govdc_crds::backup_policy::{DeletionMirrorPolicy, ObjectStorage, ReplicationMode};

use super::kinds::{self, Kind};
use super::read::{Inputs, secret_text};
use super::schedule::{Schedule, parse_duration};
use super::source::{Scope, department_selector, node_namespaces, protectable_node_namespace};
use super::store::Retention;
use crate::pipeline::report::Problem;

/// A valid policy, ready to run.
#[derive(Clone)]
pub struct Plan {
    /// The target's kubeconfig.
    pub kubeconfig: String,
    /// Kinds replicated, in restore order.
    pub kinds: Vec<Kind>,
    /// None for continuous, the schedule for scheduled.
    pub schedule: Option<Schedule>,
    /// The recovery point objective.
    pub rpo: Duration,
    /// The deletion grace period; None under `retain`.
    pub grace: Option<Duration>,
    /// What is protected: the selected departments' namespaces and the listed nodes'.
    pub scope: Scope,
    /// Restore points, when asked for.
    pub restore_points: Option<RestorePointPlan>,
}

/// The kubeconfig holds the target's credentials: debug output shows none of it.
impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field("kubeconfig", &"<redacted>")
            .field("kinds", &self.kinds)
            .field("schedule", &self.schedule)
            .field("rpo", &self.rpo)
            .field("grace", &self.grace)
            .field("scope", &self.scope)
            .field("restore_points", &self.restore_points)
            .finish()
    }
}

/// Restore points of a valid policy.
#[derive(Clone)]
pub struct RestorePointPlan {
    /// When to take them.
    pub schedule: Schedule,
    /// How many to keep.
    pub retention: Retention,
    /// The S3-compatible store and its access key; None for the local directory.
    pub s3: Option<(ObjectStorage, String, String)>,
}

/// The storage's access key is a credential: debug output names the store only.
impl std::fmt::Debug for RestorePointPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RestorePointPlan")
            .field("schedule", &self.schedule)
            .field("retention", &self.retention)
            .field(
                "s3",
                &self
                    .s3
                    .as_ref()
                    .map(|(storage, _, _)| (storage, "<redacted>", "<redacted>")),
            )
            .finish()
    }
}

/// Why a kubeconfig does not parse, without its text: the YAML parser's message quotes the
/// offending lines, and a kubeconfig holds credentials.
pub fn kubeconfig_problem(error: &kube::config::KubeconfigError) -> String {
    match error {
        kube::config::KubeconfigError::Parse(parse) => {
            let place = parse
                .location()
                .map(|at| format!(" at line {}, column {}", at.line(), at.column()))
                .unwrap_or_default();
            format!(
                "it is not valid kubeconfig YAML{place} (its text is not shown: it holds credentials)"
            )
        }
        other => other.to_string(),
    }
}

fn count(value: Option<i32>) -> usize {
    usize::try_from(value.unwrap_or(0)).unwrap_or(0)
}

/// The plan of a valid policy, or every problem found.
pub fn validate(policy: &BackupPolicy, inputs: &Inputs) -> Result<Plan, Vec<Problem>> {
    let spec = &policy.spec;
    let mut problems = Vec::new();
    let reference = &spec.target.kubeconfig_secret_ref;
    let kubeconfig = secret_text(inputs.kubeconfig_secret.as_ref(), &reference.key);
    if kubeconfig.is_none() {
        problems.push(Problem::new(
            "TargetKubeconfigNotFound",
            format!(
                "spec.target.kubeconfigSecretRef: Secret {}/{} with key {} does not exist",
                reference.namespace.as_deref().unwrap_or_default(),
                reference.name,
                reference.key
            ),
        ));
    }
    if let Some(text) = &kubeconfig
        && let Err(error) = kube::config::Kubeconfig::from_yaml(text)
    {
        problems.push(Problem::new(
            "InvalidKubeconfig",
            format!(
                "spec.target.kubeconfigSecretRef: the kubeconfig does not parse: {}",
                kubeconfig_problem(&error)
            ),
        ));
    }
    let kinds = kinds::select(spec.include_kinds.as_deref(), spec.exclude_kinds.as_deref())
        .map_err(|e| {
            problems.push(Problem::new(
                "UnknownKind",
                format!("spec.includeKinds/excludeKinds: {e}"),
            ))
        })
        .ok();
    let schedule = match (spec.mode, &spec.schedule) {
        (ReplicationMode::Scheduled, Some(text)) => Schedule::parse(text)
            .map_err(|e| {
                problems.push(Problem::new(
                    "InvalidSchedule",
                    format!("spec.schedule: {e}"),
                ))
            })
            .ok(),
        _ => None,
    };
    let rpo = parse_duration(&spec.recovery_point_objective)
        .map_err(|e| {
            problems.push(Problem::new(
                "InvalidDuration",
                format!("spec.recoveryPointObjective: {e}"),
            ))
        })
        .ok();
    let grace = parse_duration(&spec.deletions.grace_period)
        .map_err(|e| {
            problems.push(Problem::new(
                "InvalidDuration",
                format!("spec.deletions.gracePeriod: {e}"),
            ))
        })
        .ok();
    let selector = department_selector(&spec.department_selector)
        .map_err(|e| problems.push(Problem::new("InvalidSelector", e.to_string())))
        .ok();
    for (index, node) in spec.exchange_nodes.iter().enumerate() {
        let namespace = node.namespace.as_deref().unwrap_or_default();
        if namespace.is_empty() {
            // The policy is cluster-scoped: there is no namespace of its own to default to.
            problems.push(Problem::new(
                "InvalidExchangeNode",
                format!(
                    "spec.exchangeNodes[{index}] ({}): an ExchangeNode is namespaced; name its namespace",
                    node.name
                ),
            ));
        } else if !protectable_node_namespace(namespace, &inputs.operator_namespace) {
            // A node's namespace is protected whole: the system's or the operator's would copy
            // credentials to the standby.
            problems.push(Problem::new(
                "InvalidExchangeNode",
                format!(
                    "spec.exchangeNodes[{index}] ({namespace}/{}): a node's namespace is replicated whole, and neither the system's namespaces (kube-*) nor the operator's own ({}) ever are",
                    node.name, inputs.operator_namespace
                ),
            ));
        }
    }
    let restore_points = spec.restore_points.as_ref().and_then(|r| {
        let schedule = Schedule::parse(&r.schedule)
            .map_err(|e| problems.push(Problem::new("InvalidSchedule", format!("spec.restorePoints.schedule: {e}"))))
            .ok()?;
        let retention = Retention {
            last: count(Some(r.keep)).max(1),
            daily: count(r.keep_daily),
            weekly: count(r.keep_weekly),
        };
        let s3 = match &r.storage {
            None => None,
            Some(storage) => {
                if !cfg!(feature = "s3") {
                    problems.push(Problem::new(
                        "ObjectStorageNotSupported",
                        "spec.restorePoints.storage: this operator was built without S3 support (cargo feature s3); unset storage to keep restore points in the operator's directory",
                    ));
                    return None;
                }
                let id = secret_text(inputs.storage_secret.as_ref(), "accessKeyId");
                let key = secret_text(inputs.storage_secret.as_ref(), "secretAccessKey");
                match (id, key) {
                    (Some(id), Some(key)) => Some((storage.clone(), id, key)),
                    _ => {
                        problems.push(Problem::new(
                            "StorageCredentialsNotFound",
                            format!(
                                "spec.restorePoints.storage.credentialsSecretRef: Secret {} with keys accessKeyId and secretAccessKey does not exist",
                                storage.credentials_secret_ref.name
                            ),
                        ));
                        return None;
                    }
                }
            }
        };
        Some(RestorePointPlan {
            schedule,
            retention,
            s3,
        })
    });
    match (kubeconfig, kinds, rpo, grace, selector) {
        (Some(kubeconfig), Some(kinds), Some(rpo), Some(grace), Some(selector))
            if problems.is_empty() =>
        {
            Ok(Plan {
                kubeconfig,
                kinds,
                schedule,
                rpo,
                grace: match spec.deletions.policy {
                    DeletionMirrorPolicy::Mirror => Some(grace),
                    DeletionMirrorPolicy::Retain => None,
                },
                scope: Scope {
                    departments: selector,
                    node_namespaces: node_namespaces(inputs),
                },
                restore_points,
            })
        }
        _ => Err(problems),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    use serde_json::json;
    use std::collections::BTreeMap;

    const KUBECONFIG: &str = "apiVersion: v1\nkind: Config\nclusters: [{name: dr, cluster: {server: 'https://127.0.0.1:6443'}}]\nusers: [{name: a, user: {token: t}}]\ncontexts: [{name: dr, context: {cluster: dr, user: a}}]\ncurrent-context: dr\n";

    fn policy(spec: serde_json::Value) -> BackupPolicy {
        let mut base = json!({"target": {"kubeconfigSecretRef": {"namespace": "govdc-system", "name": "dr", "key": "kubeconfig"}}});
        if let (Some(base), Some(extra)) = (base.as_object_mut(), spec.as_object()) {
            base.extend(extra.clone());
        }
        serde_json::from_value(
            json!({"apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": "p"}, "spec": base}),
        )
        .expect("fixture")
    }

    fn inputs(kubeconfig: &str) -> Inputs {
        Inputs {
            kubeconfig_secret: Some(Secret {
                data: Some(BTreeMap::from([(
                    "kubeconfig".to_owned(),
                    ByteString(kubeconfig.as_bytes().to_vec()),
                )])),
                ..Default::default()
            }),
            storage_secret: None,
            exchange_nodes: Vec::new(),
            operator_namespace: "govdc-system".into(),
        }
    }

    fn reasons(result: Result<Plan, Vec<Problem>>) -> Vec<&'static str> {
        result
            .err()
            .unwrap_or_default()
            .iter()
            .map(|p| p.reason)
            .collect()
    }

    #[test]
    fn a_valid_policy_mirrors_deletions_after_a_day_by_default() {
        let plan = validate(&policy(json!({})), &inputs(KUBECONFIG)).expect("valid");
        assert_eq!(plan.grace, Some(Duration::from_secs(86400)));
        assert_eq!(plan.rpo, Duration::from_secs(2));
        assert!(plan.schedule.is_none());
        let retain = validate(
            &policy(json!({"deletions": {"policy": "retain"}})),
            &inputs(KUBECONFIG),
        )
        .expect("valid");
        assert_eq!(retain.grace, None);
    }

    #[test]
    fn the_namespaces_of_listed_nodes_that_exist_are_protected_and_never_the_systems_or_the_operators()
     {
        let nodes = json!({"exchangeNodes": [
            {"name": "national", "namespace": "govdc-hub"},
            {"name": "typo", "namespace": "default"},
        ]});
        let mut found = inputs(KUBECONFIG);
        found.exchange_nodes = vec![
            ("govdc-hub/national".into(), Some("uid-1".into())),
            ("default/typo".into(), None),
        ];
        let plan = validate(&policy(nodes), &found).expect("valid");
        assert_eq!(
            plan.scope.node_namespaces,
            std::collections::BTreeSet::from(["govdc-hub".to_owned()]),
            "a node that does not exist protects no namespace"
        );
        for namespace in ["kube-system", "govdc-system"] {
            let refused = json!({"exchangeNodes": [{"name": "n", "namespace": namespace}]});
            let mut found = inputs(KUBECONFIG);
            found.exchange_nodes = vec![(format!("{namespace}/n"), Some("uid".into()))];
            let problems = validate(&policy(refused), &found).err().unwrap_or_default();
            assert_eq!(
                problems.iter().map(|p| p.reason).collect::<Vec<_>>(),
                ["InvalidExchangeNode"],
                "{namespace}"
            );
            assert!(problems[0].message.contains(namespace), "{problems:?}");
        }
    }

    #[test]
    fn a_missing_secret_and_a_bad_kubeconfig_are_reported() {
        assert_eq!(
            reasons(validate(&policy(json!({})), &Inputs::default())),
            ["TargetKubeconfigNotFound"]
        );
        assert_eq!(
            reasons(validate(&policy(json!({})), &inputs("clusters: 12"))),
            ["InvalidKubeconfig"]
        );
    }

    #[test]
    fn an_unparseable_kubeconfig_is_refused_without_quoting_it() {
        let text = "apiVersion: v1\nclusters: 'recognisable-token'\nusers: [{name: a, user: {token: {x: 'recognisable-token'}}}]\n";
        let problems = validate(&policy(json!({})), &inputs(text))
            .err()
            .unwrap_or_default();
        let message = &problems.first().expect("a problem").message;
        assert!(!message.contains("recognisable"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn unknown_kinds_and_bad_schedules_are_reported_together() {
        let result = validate(
            &policy(
                json!({"includeKinds": ["Pod"], "mode": "scheduled", "schedule": "61 * * * *"}),
            ),
            &inputs(KUBECONFIG),
        );
        assert_eq!(reasons(result), ["UnknownKind", "InvalidSchedule"]);
    }

    #[test]
    fn restore_points_default_to_the_local_directory() {
        let plan = validate(
            &policy(json!({"restorePoints": {"schedule": "0 * * * *", "keep": 3, "keepDaily": 7}})),
            &inputs(KUBECONFIG),
        )
        .expect("valid");
        let points = plan.restore_points.expect("restore points");
        assert!(points.s3.is_none());
        assert_eq!(
            points.retention,
            Retention {
                last: 3,
                daily: 7,
                weekly: 0
            }
        );
    }

    #[test]
    fn debug_output_of_a_plan_shows_no_credential() {
        let kubeconfig = KUBECONFIG.replace("token: t", "token: recognisable-bearer-token");
        let mut plan = validate(
            &policy(json!({"restorePoints": {"schedule": "0 * * * *", "keep": 1}})),
            &inputs(&kubeconfig),
        )
        .expect("valid");
        let storage: ObjectStorage = serde_json::from_value(json!({
            "endpoint": "https://s3.example", "bucket": "b",
            "credentialsSecretRef": {"name": "s3"}
        }))
        .expect("storage fixture");
        if let Some(points) = plan.restore_points.as_mut() {
            points.s3 = Some((
                storage,
                "recognisable-access-key-id".into(),
                "recognisable-secret-access-key".into(),
            ));
        }
        let printed = format!("{plan:?} {plan:#?}");
        assert!(!printed.contains("recognisable"), "{printed}");
        assert!(printed.contains("<redacted>"), "{printed}");
        assert!(printed.contains("s3.example"), "{printed}");
    }
}
