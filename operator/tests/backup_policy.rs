//! BackupPolicies across real clusters: a tenant replicated continuously from `primary` to `dr`
//! (edits follow, deletions wait for their grace period), a standby that goes away and comes back
//! (`spare`, stopped and started by the test), a restore point restored over a wiped namespace,
//! a failover that promotes the standby and is safe to run twice, and an ExchangeNode's hub state
//! (members, catalog, grants, audit chain) exported from a real hub process and imported into
//! the standby's hub on failover.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use govdc_crds::{BackupPolicy, DepartmentCloud};
use govdc_operator::controllers::backup_policy::clean::{
    POLICY_LABEL, SOURCE_DELETED_AT_ANNOTATION, STANDBY_REPLICAS_ANNOTATION,
};
use govdc_operator::controllers::backup_policy::kinds;
use govdc_operator::controllers::backup_policy::store::restore_point_object;
use govdc_test_support::fixtures::{self, default_credit_code};
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, govdc_cluster_bin, install_crds, output_text,
    repo_root,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::exchange_client::ExchangeClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::{
    DecideAccessRequest, Field, GetResourceRequest, GrantState, ListGrantsRequest,
    ListMembersRequest, RegisterResourceRequest, RequestAccessRequest, Resource, ShareType,
    VerifyAuditRequest,
};
use govdc_test_support::free_port;
use govdc_test_support::hub::{HubOptions, HubProcess, hub_bin};
use tonic::transport::Channel;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

/// The tests that stop the `spare` cluster or remove its CRDs take turns.
static SPARE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A primary and a standby for one test, with a DepartmentCloud whose namespace `<dc>-prod` the
/// policy protects.
struct Pair {
    primary: TestEnv,
    standby: TestEnv,
    dc: String,
    namespace: String,
    policy: String,
    restore_points: PathBuf,
}

impl Pair {
    async fn new(test: &str, standby: &str) -> Pair {
        Pair::with_standby_crds(test, standby, true).await
    }

    /// A pair whose standby gets govdc's CRDs from the test only when `crds` is set.
    async fn with_standby_crds(test: &str, standby: &str, crds: bool) -> Pair {
        let primary = TestEnv::new("primary", test).await;
        let standby = TestEnv::new(standby, test).await;
        install_crds(&primary.client)
            .await
            .expect("CRDs on primary");
        if crds {
            install_crds(&standby.client)
                .await
                .expect("CRDs on the standby");
        }
        let dc = format!("{}-t", primary.prefix);
        let policy = format!("{}-bp", primary.prefix);
        let restore_points = repo_root()
            .join("target/test-restore-points")
            .join(&primary.prefix);
        Pair {
            namespace: format!("{dc}-prod"),
            primary,
            standby,
            dc,
            policy,
            restore_points,
        }
    }

    /// The standby's name for a protected namespace.
    fn mapped(&self) -> String {
        format!("{}-dr", self.namespace)
    }

    /// The DepartmentCloud, labelled so that only this test's policy selects it.
    async fn create_department(&self) {
        let department = fixtures::department("灾备测试局", &default_credit_code());
        let cloud = fixtures::department_cloud(
            &self.primary,
            &self.dc,
            json!({"department": department, "protectionLevel": 2}),
        );
        Api::<DepartmentCloud>::all(self.primary.client.clone())
            .create(&PostParams::default(), &cloud)
            .await
            .expect("create DepartmentCloud");
    }

    /// The kubeconfig Secret and the BackupPolicy, with `spec` over a base that maps namespaces
    /// to `<name>-dr`.
    async fn create_policy(&self, spec: Value) {
        let kubeconfig =
            std::fs::read_to_string(&self.standby.kubeconfig).expect("standby kubeconfig");
        self.create_policy_named(&self.policy, spec, Some(&kubeconfig))
            .await;
    }

    /// The namespace of the kubeconfig Secrets, made once.
    async fn system_namespace(&self) -> String {
        let name = format!("{}-sys", self.primary.prefix);
        let namespaces: Api<Namespace> = Api::all(self.primary.client.clone());
        if namespaces.get_opt(&name).await.ok().flatten().is_none() {
            self.primary.namespace("sys").await;
        }
        name
    }

    /// Writes the kubeconfig Secret `<policy>-kubeconfig` (created or replaced).
    async fn write_kubeconfig_secret(&self, policy: &str, kubeconfig: &str) {
        let system = self.system_namespace().await;
        apply::<Secret>(
            &self.primary.client,
            &system,
            json!({"apiVersion": "v1", "kind": "Secret",
                   "metadata": {"name": format!("{policy}-kubeconfig")},
                   "stringData": {"kubeconfig": kubeconfig}}),
        )
        .await;
    }

    /// A BackupPolicy `name` whose kubeconfig Secret `<name>-kubeconfig` holds `kubeconfig`
    /// (None: the Secret is not made), with `spec` over a base that maps namespaces to
    /// `<name>-dr`.
    async fn create_policy_named(&self, name: &str, spec: Value, kubeconfig: Option<&str>) {
        let system = self.system_namespace().await;
        if let Some(kubeconfig) = kubeconfig {
            self.write_kubeconfig_secret(name, kubeconfig).await;
        }
        let mut full = json!({
            "departmentSelector": {"matchLabels": {TEST_LABEL: self.primary.prefix}},
            "target": {"kubeconfigSecretRef": {"namespace": system, "name": format!("{name}-kubeconfig"), "key": "kubeconfig"}},
            "namespaceMapping": {"suffix": "-dr"},
            "mode": "continuous",
            "recoveryPointObjective": "2s",
        });
        if let (Some(full), Some(spec)) = (full.as_object_mut(), spec.as_object()) {
            full.extend(spec.clone());
        }
        let policy: BackupPolicy = serde_json::from_value(json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
            "metadata": {"name": name, "labels": {TEST_LABEL: self.primary.prefix}},
            "spec": full,
        }))
        .expect("policy fixture");
        Api::<BackupPolicy>::all(self.primary.client.clone())
            .create(&PostParams::default(), &policy)
            .await
            .expect("create BackupPolicy");
    }

    async fn start_operator(&self) -> OperatorProcess {
        let lease = self.primary.namespace("lease").await;
        let dir = self.restore_points.display().to_string();
        OperatorProcess::start(
            Path::new(OPERATOR),
            &self.primary,
            &lease,
            "operator",
            &["--restore-point-dir", &dir],
        )
    }

    /// Waits for the DepartmentCloud's namespace on the primary.
    async fn tenant_namespace(&self, operator: &OperatorProcess) {
        let namespaces: Api<Namespace> = Api::all(self.primary.client.clone());
        eventually("the tenant namespace", WAIT, || {
            let namespaces = namespaces.clone();
            async move { namespaces.get_opt(&self.namespace).await.ok().flatten() }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    }

    async fn condition(&self, operator: &OperatorProcess, type_: &str, status: &str) -> Condition {
        self.condition_of(&self.policy, operator, type_, status)
            .await
    }

    async fn condition_of(
        &self,
        policy: &str,
        operator: &OperatorProcess,
        type_: &str,
        status: &str,
    ) -> Condition {
        let api: Api<BackupPolicy> = Api::all(self.primary.client.clone());
        let condition = eventually(&format!("{policy} {type_}={status}"), WAIT, || {
            let api = api.clone();
            async move {
                let policy = api.get_opt(policy).await.ok()??;
                policy
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_ && c.status == status)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
        assert_readable(&condition);
        condition
    }

    /// Waits for a Warning event about `policy` with `reason` (events of cluster-scoped objects
    /// are in `default`).
    async fn warning_event(&self, policy: &str, operator: &OperatorProcess, reason: &str) {
        let events: Api<k8s_openapi::api::events::v1::Event> =
            Api::namespaced(self.primary.client.clone(), "default");
        let event = eventually(&format!("a {reason} Warning event"), WAIT, || {
            let events = events.clone();
            async move {
                events
                    .list(&Default::default())
                    .await
                    .ok()?
                    .items
                    .into_iter()
                    .find(|e| {
                        e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(policy)
                            && e.reason.as_deref() == Some(reason)
                    })
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
        assert_eq!(event.type_.as_deref(), Some("Warning"));
    }

    /// Waits until `policy`'s condition `type_` has `reason`, and returns it.
    async fn reason_of(
        &self,
        policy: &str,
        operator: &OperatorProcess,
        type_: &str,
        reason: &str,
    ) -> Condition {
        let api: Api<BackupPolicy> = Api::all(self.primary.client.clone());
        let found = eventually(&format!("{policy} {type_} because {reason}"), WAIT, || {
            let api = api.clone();
            async move {
                let policy = api.get_opt(policy).await.ok()??;
                policy
                    .status?
                    .conditions
                    .into_iter()
                    .find(|c| c.type_ == type_ && c.reason == reason)
            }
        })
        .await;
        let condition = match found {
            Ok(condition) => condition,
            Err(error) => {
                let status = api
                    .get_opt(policy)
                    .await
                    .ok()
                    .flatten()
                    .map(|p| serde_json::to_string(&p.status).unwrap_or_default());
                panic!("{error}\nlast status: {status:?}\n{}", operator.logs())
            }
        };
        assert_readable(&condition);
        condition
    }

    fn backup(&self, args: &[&str]) -> std::process::Output {
        Command::new(OPERATOR)
            .arg("backup")
            .args(args)
            .output()
            .expect("run govdc-operator backup")
    }
}

/// A condition message is written for a person: the API server's own words, never the `Debug`
/// form of a client error.
fn assert_readable(condition: &Condition) {
    for dump in ["ErrorResponse", "Status {", "ApiError", "code: "] {
        assert!(
            !condition.message.contains(dump),
            "{} {} carries a Debug dump: {}",
            condition.type_,
            condition.reason,
            condition.message
        );
    }
}

async fn apply<K>(client: &Client, namespace: &str, object: Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
{
    let object: K = serde_json::from_value(object).expect("fixture");
    let name = object.meta().name.clone().unwrap_or_default();
    Api::<K>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply("govdc-tests").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying {name}: {e}"));
}

async fn tenant_objects(client: &Client, namespace: &str) {
    apply::<ConfigMap>(
        client,
        namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "v1"}}),
    )
    .await;
    apply::<Secret>(
        client,
        namespace,
        json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db"}, "stringData": {"password": "s3cret"}}),
    )
    .await;
    apply::<Service>(
        client,
        namespace,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "web"},
               "spec": {"selector": {"app": "api"}, "ports": [{"port": 80, "targetPort": 8080}]}}),
    )
    .await;
    apply::<Deployment>(
        client,
        namespace,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api", "labels": {"app": "api"}},
               "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "api"}},
                        "template": {"metadata": {"labels": {"app": "api"}},
                                     "spec": {"containers": [{"name": "api", "image": "registry.local/api:1"}]}}}}),
    )
    .await;
}

async fn get<K>(client: &Client, namespace: &str, name: &str) -> Option<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug,
{
    Api::<K>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

fn rpo_metric(operator: &OperatorProcess, policy: &str) -> Option<f64> {
    let (_, body) = operator.get("/metrics")?;
    let prefix = format!("govdc_backup_rpo_seconds{{policy=\"{policy}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test]
async fn a_tenant_is_replicated_continuously_and_deletions_wait_for_their_grace_period() {
    let pair = Pair::new("bpcontinuous", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    pair.create_policy(json!({"deletions": {"policy": "mirror", "gracePeriod": "8s"}}))
        .await;
    let ready = pair.condition(&operator, "Ready", "True").await;
    assert_eq!(ready.reason, "Replicating");

    let dr = &pair.standby.client;
    let mapped = pair.mapped();
    let namespace = get::<ConfigMap>(dr, &mapped, "settings").await;
    let settings = namespace.expect("the ConfigMap is on the standby, in the mapped namespace");
    assert_eq!(settings.data.unwrap_or_default()["mode"], "v1");
    let labels = Api::<Namespace>::all(dr.clone())
        .get(&mapped)
        .await
        .expect("mapped namespace")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(labels["govdc.io/department"], pair.dc);
    assert!(get::<Secret>(dr, &mapped, "db").await.is_some());

    let deployment = get::<Deployment>(dr, &mapped, "api")
        .await
        .expect("the Deployment is on the standby");
    assert_eq!(
        deployment.spec.and_then(|s| s.replicas),
        Some(0),
        "warm standby"
    );
    assert_eq!(
        deployment.metadata.annotations.unwrap_or_default()[STANDBY_REPLICAS_ANNOTATION],
        "3"
    );
    let primary_ip = get::<Service>(&pair.primary.client, &pair.namespace, "web")
        .await
        .and_then(|s| s.spec?.cluster_ip);
    let standby_ip = get::<Service>(dr, &mapped, "web")
        .await
        .expect("the Service is on the standby")
        .spec
        .and_then(|s| s.cluster_ip);
    assert!(
        standby_ip.is_some(),
        "the standby assigns its own cluster IP"
    );
    assert_ne!(
        primary_ip, standby_ip,
        "the primary's cluster IP is not copied"
    );
    let root_ca = get::<ConfigMap>(dr, &mapped, "kube-root-ca.crt").await;
    assert!(
        root_ca.is_none_or(|c| !c
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key(POLICY_LABEL)),
        "kube-root-ca.crt is the standby's own, never a copy"
    );

    // An edit on the primary shows up on the standby within the RPO, give or take the test's polling.
    let edited = Instant::now();
    apply::<ConfigMap>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "v2"}}),
    )
    .await;
    eventually(
        "the edit on the standby",
        Duration::from_secs(10),
        || async {
            let c = get::<ConfigMap>(dr, &mapped, "settings").await?;
            (c.data?.get("mode")? == "v2").then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(
        edited.elapsed() < Duration::from_secs(5),
        "an edit took {:?} to replicate",
        edited.elapsed()
    );

    // A deletion: the copy stays, marked, for the grace period, then goes.
    Api::<ConfigMap>::namespaced(pair.primary.client.clone(), &pair.namespace)
        .delete("settings", &DeleteParams::default())
        .await
        .expect("delete on the primary");
    let deleted = Instant::now();
    let marked = eventually(
        "the copy marked deleted",
        Duration::from_secs(10),
        || async {
            let c = get::<ConfigMap>(dr, &mapped, "settings").await?;
            c.metadata
                .annotations?
                .get(SOURCE_DELETED_AT_ANNOTATION)
                .cloned()
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(!marked.is_empty());
    assert!(
        deleted.elapsed() < Duration::from_secs(7),
        "the check that the copy outlives the deletion came too late to mean anything"
    );
    assert!(
        get::<ConfigMap>(dr, &mapped, "settings").await.is_some(),
        "the copy must outlive the deletion on the primary"
    );
    eventually(
        "the copy deleted after its grace period",
        Duration::from_secs(30),
        || async {
            get::<ConfigMap>(dr, &mapped, "settings")
                .await
                .is_none()
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(
        deleted.elapsed() >= Duration::from_secs(8),
        "the copy went after {:?}, before the 8s grace period",
        deleted.elapsed()
    );
    // The rest stays.
    assert!(get::<Secret>(dr, &mapped, "db").await.is_some());
}

fn cluster(action: &str, name: &str) {
    let output = Command::new(govdc_cluster_bin())
        .args([action, name])
        .current_dir(repo_root())
        .output()
        .expect("run govdc-cluster");
    assert!(
        output.status.success(),
        "govdc-cluster {action} {name}: {}",
        output_text(&output)
    );
}

#[tokio::test]
async fn a_standby_that_goes_away_degrades_the_policy_and_catches_up_when_back() {
    let _spare = SPARE.lock().await;
    let pair = Pair::new("bpoutage", "spare").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    pair.create_policy(json!({})).await;
    pair.condition(&operator, "Ready", "True").await;

    cluster("down", "spare");
    // Whatever happens next, the spare cluster must be back for the tests that follow.
    struct Up;
    impl Drop for Up {
        fn drop(&mut self) {
            let _ = Command::new(govdc_cluster_bin())
                .args(["up", "spare"])
                .current_dir(repo_root())
                .output();
        }
    }
    let up = Up;
    apply::<ConfigMap>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "during-outage"}, "data": {"written": "while the standby was down"}}),
    )
    .await;
    let degraded = pair.condition(&operator, "Degraded", "True").await;
    assert_eq!(degraded.reason, "TargetUnreachable");
    let ready = pair.condition(&operator, "Ready", "False").await;
    assert_eq!(ready.reason, "TargetUnreachable");
    let first = eventually("an RPO gauge", WAIT, || async {
        rpo_metric(&operator, &pair.policy)
    })
    .await
    .expect("gauge");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let later = rpo_metric(&operator, &pair.policy).expect("gauge");
    assert!(
        later >= first + 2.0,
        "the RPO should grow while the standby is down: {first} then {later}"
    );

    cluster("up", "spare");
    drop(up);
    let ready = pair.condition(&operator, "Ready", "True").await;
    assert_eq!(ready.reason, "Replicating");
    let copy = get::<ConfigMap>(&pair.standby.client, &pair.mapped(), "during-outage")
        .await
        .expect("the change made during the outage reached the standby");
    assert_eq!(
        copy.data.unwrap_or_default()["written"],
        "while the standby was down"
    );
    let after = rpo_metric(&operator, &pair.policy).expect("gauge");
    assert!(after < 2.0, "the RPO recovers once caught up, got {after}");
}

/// What a user relies on in a restored object: everything but what the API server sets.
fn user_view(api_version: &str, kind: &str, object: &Value) -> Value {
    let kind = kinds::find(api_version, kind).expect("replicable kind");
    restore_point_object(&kind, object, "view")
}

#[tokio::test]
async fn a_restore_point_brings_back_a_wiped_namespace_and_reports_conflicts() {
    let pair = Pair::new("bprestore", "primary").await;
    // No operator: the commands work on their own. The namespace is the tenant's, made by hand.
    pair.create_department().await;
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": pair.namespace,
        "labels": {"govdc.io/department": pair.dc, TEST_LABEL: pair.primary.prefix}}}))
    .expect("namespace");
    Api::<Namespace>::all(pair.primary.client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create namespace");
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    pair.create_policy(json!({})).await;
    let client = pair.primary.client.clone();
    let ns = pair.namespace.clone();
    let before: Vec<(&str, &str, Value)> = vec![
        (
            "v1",
            "ConfigMap",
            serde_json::to_value(get::<ConfigMap>(&client, &ns, "settings").await).expect("json"),
        ),
        (
            "v1",
            "Secret",
            serde_json::to_value(get::<Secret>(&client, &ns, "db").await).expect("json"),
        ),
        (
            "v1",
            "Service",
            serde_json::to_value(get::<Service>(&client, &ns, "web").await).expect("json"),
        ),
        (
            "apps/v1",
            "Deployment",
            serde_json::to_value(get::<Deployment>(&client, &ns, "api").await).expect("json"),
        ),
    ];

    let dir = pair.restore_points.display().to_string();
    let kubeconfig = pair.primary.kubeconfig.display().to_string();
    let store = [
        "--policy",
        pair.policy.as_str(),
        "--restore-point-dir",
        dir.as_str(),
    ];
    let snapshot =
        pair.backup(&[&["snapshot"][..], &store, &["--kubeconfig", &kubeconfig]].concat());
    assert!(snapshot.status.success(), "{}", output_text(&snapshot));
    let listed = pair.backup(&[&["list"][..], &store].concat());
    assert!(
        output_text(&listed).lines().count() >= 2,
        "{}",
        output_text(&listed)
    );

    Api::<Namespace>::all(client.clone())
        .delete(&ns, &DeleteParams::default())
        .await
        .expect("wipe the namespace");
    let restore = pair.backup(
        &[
            &["restore"][..],
            &store,
            &["--target-kubeconfig", &kubeconfig],
        ]
        .concat(),
    );
    let text = output_text(&restore);
    assert!(restore.status.success(), "{text}");
    assert!(text.contains("0 conflicts, 0 failed"), "{text}");

    for (api_version, kind, original) in &before {
        let name = original["metadata"]["name"].as_str().expect("name");
        let resource = kinds::find(api_version, kind).expect("kind").api_resource();
        let restored =
            Api::<kube::api::DynamicObject>::namespaced_with(client.clone(), &ns, &resource)
                .get(name)
                .await
                .unwrap_or_else(|e| panic!("{kind} {name} was not restored: {e}"));
        let restored = serde_json::to_value(restored).expect("json");
        assert_eq!(
            user_view(api_version, kind, &restored),
            user_view(api_version, kind, original),
            "{kind} {name} differs after the restore"
        );
        assert_ne!(
            restored["metadata"]["uid"], original["metadata"]["uid"],
            "{kind} {name} is a new object"
        );
    }

    // Restoring again over what is there: an edited object is a conflict, left alone.
    apply::<ConfigMap>(
        &client,
        &ns,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "edited"}}),
    )
    .await;
    let again = pair.backup(
        &[
            &["restore"][..],
            &store,
            &["--target-kubeconfig", &kubeconfig],
        ]
        .concat(),
    );
    let text = output_text(&again);
    assert!(again.status.success(), "{text}");
    assert!(
        text.contains(&format!(
            "conflict: ConfigMap {ns}/settings: exists and differs in data"
        )),
        "{text}"
    );
    assert!(text.contains("1 conflicts, 0 failed"), "{text}");
    let kept = get::<ConfigMap>(&client, &ns, "settings")
        .await
        .expect("configmap");
    assert_eq!(
        kept.data.unwrap_or_default()["mode"],
        "edited",
        "a conflict is not overwritten"
    );
    let _ = std::fs::remove_dir_all(&pair.restore_points);
}

#[tokio::test]
async fn failover_scales_the_standby_up_stops_replication_and_is_safe_twice() {
    let pair = Pair::new("bpfailover", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    apply::<StatefulSet>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet", "metadata": {"name": "db"},
               "spec": {"replicas": 2, "serviceName": "db", "selector": {"matchLabels": {"app": "db"}},
                        "template": {"metadata": {"labels": {"app": "db"}},
                                     "spec": {"containers": [{"name": "db", "image": "registry.local/db:1"}]}}}}),
    )
    .await;
    pair.create_policy(json!({})).await;
    pair.condition(&operator, "Ready", "True").await;
    let dr = pair.standby.client.clone();
    let mapped = pair.mapped();
    eventually("both workloads on the standby at zero", WAIT, || async {
        let d = get::<Deployment>(&dr, &mapped, "api").await?;
        let s = get::<StatefulSet>(&dr, &mapped, "db").await?;
        (d.spec?.replicas == Some(0) && s.spec?.replicas == Some(0)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));

    let target = pair.standby.kubeconfig.display().to_string();
    let primary = pair.primary.kubeconfig.display().to_string();
    let args = [
        "failover",
        "--policy",
        pair.policy.as_str(),
        "--target-kubeconfig",
        target.as_str(),
        "--kubeconfig",
        primary.as_str(),
    ];
    let first = pair.backup(&args);
    let text = output_text(&first);
    assert!(first.status.success(), "{text}");
    assert!(
        text.contains("2 workloads scaled now, 0 already running"),
        "{text}"
    );
    let replicas = |d: Option<Deployment>| d.and_then(|d| d.spec?.replicas);
    assert_eq!(
        replicas(get::<Deployment>(&dr, &mapped, "api").await),
        Some(3)
    );
    assert_eq!(
        get::<StatefulSet>(&dr, &mapped, "db")
            .await
            .and_then(|s| s.spec?.replicas),
        Some(2)
    );
    let failed_over = pair.condition(&operator, "FailedOver", "True").await;
    assert_eq!(failed_over.reason, "FailedOver");

    let second = pair.backup(&args);
    let text = output_text(&second);
    assert!(second.status.success(), "{text}");
    assert!(
        text.contains("0 workloads scaled now, 2 already running"),
        "{text}"
    );
    assert_eq!(
        replicas(get::<Deployment>(&dr, &mapped, "api").await),
        Some(3)
    );

    // The promoted standby is no longer written by replication.
    apply::<ConfigMap>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "after-failover"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let settings = get::<ConfigMap>(&dr, &mapped, "settings")
        .await
        .expect("configmap");
    assert_eq!(settings.data.unwrap_or_default()["mode"], "v1");
    assert_eq!(
        replicas(get::<Deployment>(&dr, &mapped, "api").await),
        Some(3)
    );
}

/// A hub node run from the ExchangeNode's ConfigMap and key Secret as found in a cluster (the
/// primary's originals, or the standby's replicated copies), as the StatefulSet's pod would run
/// it there.
struct NodeHub {
    process: HubProcess,
    key: TokenKey,
    name: String,
}

impl NodeHub {
    async fn start(
        client: &Client,
        namespace: &str,
        name: &str,
        port: u16,
        prefix: &str,
    ) -> NodeHub {
        let configs: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let config = eventually(&format!("ConfigMap {namespace}/{name}-hub"), WAIT, || {
            let configs = configs.clone();
            async move { configs.get_opt(&format!("{name}-hub")).await.ok()? }
        })
        .await
        .expect("the hub's ConfigMap");
        let key = eventually(&format!("Secret {namespace}/{name}-hub-key"), WAIT, || {
            let secrets = secrets.clone();
            async move {
                let secret = secrets.get_opt(&format!("{name}-hub-key")).await.ok()??;
                secret.data?.get("key").map(|k| k.0.clone())
            }
        })
        .await
        .expect("the hub's key Secret");
        let dir = repo_root()
            .join("target/tmp")
            .join(format!("{prefix}-{namespace}-{name}-key"));
        std::fs::create_dir_all(&dir).expect("key dir");
        let key_file = dir.join("key");
        std::fs::write(&key_file, &key).expect("write key");
        let config_text = config
            .data
            .and_then(|d| d.get("config.yaml").cloned())
            .expect("config.yaml in the ConfigMap");
        let options = HubOptions::new(name, "", "")
            .config_yaml(&config_text)
            .key_file(&key_file)
            .grpc_port(port);
        let process = HubProcess::start(&hub_bin(), options).expect("the hub starts");
        NodeHub {
            process,
            key: TokenKey::new(key).expect("a strong key"),
            name: name.to_owned(),
        }
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(self.process.endpoint())
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the hub")
    }

    fn token(&self, subject: &str, role: Role) -> BearerToken {
        let claims = Claims::new(subject, role, &self.name, Duration::from_secs(600));
        BearerToken::new(&self.key.issue(&claims).expect("issue")).expect("token")
    }

    async fn members(&self) -> Vec<String> {
        let mut members = MembershipClient::with_interceptor(
            self.channel().await,
            self.token("operator", Role::Admin),
        );
        let mut codes: Vec<String> = members
            .list_members(ListMembersRequest {})
            .await
            .expect("list members")
            .into_inner()
            .members
            .into_iter()
            .map(|m| m.credit_code)
            .collect();
        codes.sort();
        codes
    }

    /// Whether the audit chain verifies, and over how many records.
    async fn verify(&self) -> (bool, i64) {
        let mut audit = AuditClient::with_interceptor(
            self.channel().await,
            self.token("operator", Role::Admin),
        );
        let verified = audit
            .verify_audit(VerifyAuditRequest::default())
            .await
            .expect("verify audit")
            .into_inner();
        (verified.intact, verified.records_checked)
    }
}

#[tokio::test]
async fn an_exchange_nodes_hub_state_is_exported_and_restored_on_failover_with_its_audit_chain() {
    let pair = Pair::new("bphub", "dr").await;
    let node = "hubnode";
    let port = free_port();
    let lease = pair.primary.namespace("lease").await;
    let dir = pair.restore_points.display().to_string();
    let endpoint = format!(
        "--hub-endpoint={}/{node}=http://127.0.0.1:{port}",
        pair.namespace
    );
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &pair.primary,
        &lease,
        "operator",
        &[
            "--restore-point-dir",
            &dir,
            "--hub-state-interval-seconds",
            "2",
            "--hub-image",
            "registry.test/govdc-hub:e2e",
            &endpoint,
        ],
    );
    // The provider's department, protected by the policy, and a consumer department.
    pair.create_department().await;
    let consumer_dc = format!("{}-c", pair.primary.prefix);
    let consumer_code = fixtures::credit_code("11330000MB000009");
    let consumer: DepartmentCloud = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": consumer_dc, "labels": {TEST_LABEL: pair.primary.prefix}},
        "spec": {
            "department": {"name": "用数局", "creditCode": consumer_code, "level": "provincial", "regionCode": "330000"},
            "networkZone": "extranet", "protectionLevel": 2, "environments": [{"name": "prod"}],
        }
    }))
    .expect("fixture");
    Api::<DepartmentCloud>::all(pair.primary.client.clone())
        .create(&PostParams::default(), &consumer)
        .await
        .expect("create the consumer DepartmentCloud");
    pair.tenant_namespace(&operator).await;
    let exchange_node: govdc_crds::ExchangeNode = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": node, "namespace": pair.namespace, "labels": {TEST_LABEL: pair.primary.prefix}},
        "spec": {
            "level": "national", "regionCode": "100000", "networkZone": "extranet",
            "allowedDepartments": [pair.dc, consumer_dc],
        },
    }))
    .expect("ExchangeNode fixture");
    Api::<govdc_crds::ExchangeNode>::namespaced(pair.primary.client.clone(), &pair.namespace)
        .create(&PostParams::default(), &exchange_node)
        .await
        .expect("create ExchangeNode");
    let primary_hub = NodeHub::start(
        &pair.primary.client,
        &pair.namespace,
        node,
        port,
        &pair.primary.prefix,
    )
    .await;

    // State made through the hub's API: the operator joins both departments, the provider
    // registers a conditional resource, the consumer asks for it and the provider approves.
    let provider_code = default_credit_code();
    let mut expected_members = vec![provider_code.clone(), consumer_code.clone()];
    expected_members.sort();
    eventually("both departments joined by the operator", WAIT, || async {
        (primary_hub.members().await == expected_members).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let resource_code = format!("{provider_code}-0001");
    CatalogClient::with_interceptor(
        primary_hub.channel().await,
        primary_hub.token(&provider_code, Role::Member),
    )
    .register_resource(RegisterResourceRequest {
        resource: Some(Resource {
            code: resource_code.clone(),
            name: "企业登记信息".into(),
            description: "registrations, for the disaster-recovery test".into(),
            fields: vec![Field {
                name: "licence_no".into(),
                r#type: "string".into(),
                description: "licence number".into(),
                personal: false,
            }],
            share_type: ShareType::Conditional as i32,
            ..Resource::default()
        }),
    })
    .await
    .expect("register the resource");
    let grant = ExchangeClient::with_interceptor(
        primary_hub.channel().await,
        primary_hub.token(&consumer_code, Role::Member),
    )
    .request_access(RequestAccessRequest {
        resource_code: resource_code.clone(),
        purpose: "licence checks".into(),
    })
    .await
    .expect("request access")
    .into_inner();
    ExchangeClient::with_interceptor(
        primary_hub.channel().await,
        primary_hub.token(&provider_code, Role::Member),
    )
    .decide_access(DecideAccessRequest {
        grant_id: grant.id.clone(),
        approve: true,
        reason: "approved for the test".into(),
    })
    .await
    .expect("approve");

    pair.create_policy(json!({
        "exchangeNodes": [{"name": node, "namespace": pair.namespace}],
    }))
    .await;
    let replicated = pair
        .condition(&operator, "HubStateReplicated", "True")
        .await;
    assert_eq!(replicated.reason, "Exported", "{}", replicated.message);
    pair.condition(&operator, "Ready", "True").await;
    let metrics = operator
        .get("/metrics")
        .map(|(_, body)| body)
        .unwrap_or_default();
    let node_label = format!("node=\"{}/{node}\"", pair.namespace);
    let policy_label = format!("policy=\"{}\"", pair.policy);
    assert!(
        metrics.lines().any(|l| l
            .starts_with("govdc_backup_hub_state_last_export_timestamp_seconds{")
            && l.contains(&node_label)
            && l.contains(&policy_label)),
        "no hub state gauge for {node_label} in:\n{metrics}"
    );
    let (intact, primary_records) = primary_hub.verify().await;
    assert!(intact && primary_records > 0);
    // Each copy's manifest records the head of the chain it holds, an anchor of the hub's log
    // outside the node; the primary's chain matches it.
    fn manifests(dir: &Path, found: &mut Vec<Value>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                manifests(&path, found);
            } else if path.file_name().is_some_and(|n| n == "state.json") {
                let text = std::fs::read_to_string(&path).expect("state.json");
                found.push(serde_json::from_str(&text).expect("a manifest"));
            }
        }
    }
    let mut found = Vec::new();
    manifests(&pair.restore_points, &mut found);
    let head = found
        .iter()
        .find_map(|m| m.get("auditHead").cloned())
        .unwrap_or_else(|| panic!("no hub-state manifest records auditHead: {found:?}"));
    let anchor = govdc_hub_api::v1::AuditAnchor {
        node: node.to_owned(),
        head: Some(govdc_hub_api::v1::AuditHead {
            seq: head["seq"].as_i64().expect("seq"),
            hash: head["hash"].as_str().expect("hash").to_owned(),
        }),
        recorded_by: "hub-state copy".into(),
        ..Default::default()
    };
    let checked = govdc_hub_api::v1::audit_client::AuditClient::with_interceptor(
        primary_hub.channel().await,
        primary_hub.token("operator", Role::Admin),
    )
    .verify_audit(VerifyAuditRequest {
        anchors: vec![anchor],
    })
    .await
    .expect("VerifyAudit")
    .into_inner();
    assert!(checked.intact, "{checked:?}");
    assert_eq!(checked.anchors[0].outcome, "matches", "{checked:?}");

    // The standby side: the ExchangeNode's ConfigMap and key arrived with the namespace, and an
    // empty hub of the same node runs from them.
    let mapped = pair.mapped();
    let dr_port = free_port();
    let dr_hub = NodeHub::start(
        &pair.standby.client,
        &mapped,
        node,
        dr_port,
        &pair.primary.prefix,
    )
    .await;
    assert!(
        dr_hub.members().await.is_empty(),
        "the standby hub starts empty"
    );

    let target = pair.standby.kubeconfig.display().to_string();
    let primary = pair.primary.kubeconfig.display().to_string();
    let dr_endpoint = format!("{mapped}/{node}=http://127.0.0.1:{dr_port}");
    let args = [
        "failover",
        "--policy",
        pair.policy.as_str(),
        "--restore-point-dir",
        dir.as_str(),
        "--target-kubeconfig",
        target.as_str(),
        "--kubeconfig",
        primary.as_str(),
        "--hub-endpoint",
        dr_endpoint.as_str(),
        "--hub-wait-seconds",
        "10",
    ];
    let first = pair.backup(&args);
    let text = output_text(&first);
    assert!(first.status.success(), "{text}\n{}", operator.logs());
    assert!(
        text.contains(&format!(
            "hub state {}/{node} -> {mapped}/{node}: imported",
            pair.namespace
        )),
        "{text}"
    );

    assert_eq!(
        dr_hub.members().await,
        expected_members,
        "members on the standby hub"
    );
    let restored = CatalogClient::with_interceptor(
        dr_hub.channel().await,
        dr_hub.token(&provider_code, Role::Member),
    )
    .get_resource(GetResourceRequest {
        code: resource_code.clone(),
    })
    .await
    .expect("the resource is on the standby hub")
    .into_inner();
    assert_eq!(restored.provider, provider_code);
    assert_eq!(restored.share_type, ShareType::Conditional as i32);
    let grants = ExchangeClient::with_interceptor(
        dr_hub.channel().await,
        dr_hub.token(&consumer_code, Role::Member),
    )
    .list_grants(ListGrantsRequest {
        resource_code: resource_code.clone(),
    })
    .await
    .expect("grants on the standby hub")
    .into_inner()
    .grants;
    assert!(
        grants
            .iter()
            .any(|g| g.id == grant.id && g.state == GrantState::Approved as i32),
        "{grants:?}"
    );
    let (intact, dr_records) = dr_hub.verify().await;
    assert!(intact, "the standby hub's audit chain verifies");
    assert!(
        dr_records >= primary_records,
        "the standby hub holds {dr_records} audit records, the primary held {primary_records}"
    );

    // Twice: the hub already holds that copy, nothing is imported again.
    let second = pair.backup(&args);
    let text = output_text(&second);
    assert!(second.status.success(), "{text}");
    assert!(text.contains("already holds the copy"), "{text}");
    assert_eq!(dr_hub.verify().await, (true, dr_records));
    let _ = std::fs::remove_dir_all(&pair.restore_points);
}

// What a wrong policy must never do: write into its own source, overwrite what it did not make,
// lose a recorded replica count; and what it must say instead.

/// The objects of a namespace carrying a mark that replication writes (its label, or one of
/// its annotations).
async fn replication_marks(client: &Client, namespace: &str) -> Vec<String> {
    let mut marked = Vec::new();
    let namespace_labels = Api::<Namespace>::all(client.clone())
        .get_opt(namespace)
        .await
        .expect("read the namespace")
        .and_then(|n| n.metadata.labels)
        .unwrap_or_default();
    if namespace_labels.contains_key(POLICY_LABEL) {
        marked.push(format!("Namespace {namespace}"));
    }
    for (api_version, kind) in [
        ("v1", "ConfigMap"),
        ("v1", "Secret"),
        ("v1", "Service"),
        ("v1", "ServiceAccount"),
        ("v1", "ResourceQuota"),
        ("v1", "LimitRange"),
        ("rbac.authorization.k8s.io/v1", "Role"),
        ("rbac.authorization.k8s.io/v1", "RoleBinding"),
        ("networking.k8s.io/v1", "NetworkPolicy"),
        ("apps/v1", "Deployment"),
    ] {
        let resource = kinds::find(api_version, kind)
            .expect("catalog kind")
            .api_resource();
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        for object in api.list(&Default::default()).await.expect("list").items {
            let marked_here = object.labels().contains_key(POLICY_LABEL)
                || object.annotations().keys().any(|k| {
                    k.starts_with("govdc.io/source-") || k.starts_with("govdc.io/standby-")
                });
            if marked_here {
                marked.push(format!("{kind} {}", object.name_any()));
            }
        }
    }
    marked
}

/// What an object is to its owner, less what the API server and controllers keep changing.
fn owners_view(object: &impl serde::Serialize) -> Value {
    let mut value = serde_json::to_value(object).expect("json");
    value["status"] = Value::Null;
    if let Some(meta) = value["metadata"].as_object_mut() {
        meta.remove("resourceVersion");
        meta.remove("managedFields");
        // The Deployment controller's own record of its rollout.
        if let Some(annotations) = meta.get_mut("annotations").and_then(Value::as_object_mut) {
            annotations.remove("deployment.kubernetes.io/revision");
            if annotations.is_empty() {
                meta.remove("annotations");
            }
        }
    }
    value
}

#[tokio::test]
async fn a_policy_whose_target_is_its_own_source_writes_nothing_there() {
    let pair = Pair::new("bpself", "primary").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    let primary = &pair.primary.client;
    let before = get::<Deployment>(primary, &pair.namespace, "api")
        .await
        .expect("the source Deployment");

    // The primary's own kubeconfig (mapped to `-dr`), and the same API server under another
    // address (its serving certificate names localhost too) with no mapping at all, where copies
    // would land on the originals.
    let own = std::fs::read_to_string(&pair.primary.kubeconfig).expect("kubeconfig");
    let alias = own.replace("https://127.0.0.1:", "https://localhost:");
    assert_ne!(own, alias, "the kubeconfig names its server by 127.0.0.1");
    pair.create_policy(json!({})).await;
    let aliased = format!("{}-alias", pair.policy);
    pair.create_policy_named(&aliased, json!({"namespaceMapping": {}}), Some(&alias))
        .await;
    for policy in [pair.policy.as_str(), aliased.as_str()] {
        let ready = pair
            .reason_of(policy, &operator, "Ready", "TargetIsSource")
            .await;
        assert_eq!(ready.status, "False");
        assert!(
            ready.message.contains("is the source cluster itself")
                && ready.message.contains(&format!("{policy}-kubeconfig")),
            "{}",
            ready.message
        );
        let degraded = pair
            .reason_of(policy, &operator, "Degraded", "TargetIsSource")
            .await;
        assert_eq!(degraded.status, "True");
        pair.warning_event(policy, &operator, "TargetIsSource")
            .await;
    }
    assert!(
        pair.reason_of(&aliased, &operator, "Ready", "TargetIsSource")
            .await
            .message
            .contains("localhost"),
        "the message names the cluster as the kubeconfig does"
    );

    // Time for any writer to do harm, then: nothing was written.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = get::<Deployment>(primary, &pair.namespace, "api")
        .await
        .expect("the source Deployment");
    assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(3));
    assert_eq!(
        after.metadata.generation, before.metadata.generation,
        "the source Deployment's spec was not written"
    );
    assert_eq!(owners_view(&after), owners_view(&before));
    assert_eq!(
        replication_marks(primary, &pair.namespace).await,
        Vec::<String>::new(),
        "no replication mark on the source's objects"
    );
    assert!(
        Api::<Namespace>::all(primary.clone())
            .get_opt(&pair.mapped())
            .await
            .expect("read")
            .is_none(),
        "no mapped namespace was made on the source"
    );
    let logs = operator.logs();
    assert!(
        !logs.contains("deleted a copy"),
        "nothing was deleted: {logs}"
    );
    // A refusal that only a new spec or Secret can lift is not retried.
    for policy in [pair.policy.as_str(), aliased.as_str()] {
        let field = format!("\"policy\":\"{policy}\"");
        let refusals = logs
            .lines()
            .filter(|l| l.contains("the target is the source cluster") && l.contains(&field))
            .count();
        assert_eq!(
            refusals, 1,
            "{policy} was checked {refusals} times:\n{logs}"
        );
    }

    // Failover refuses to promote the source, whatever address its kubeconfig uses.
    let dir = repo_root().join("target/tmp");
    std::fs::create_dir_all(&dir).expect("target/tmp");
    let alias_file = dir.join(format!("{}-alias.kubeconfig", pair.primary.prefix));
    std::fs::write(&alias_file, &alias).expect("write the alias kubeconfig");
    let output = pair.backup(&[
        "failover",
        "--policy",
        aliased.as_str(),
        "--target-kubeconfig",
        &alias_file.display().to_string(),
        "--kubeconfig",
        &pair.primary.kubeconfig.display().to_string(),
    ]);
    let text = output_text(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("reaches the primary itself"), "{text}");
    assert!(
        Api::<ConfigMap>::namespaced(primary.clone(), "govdc-system")
            .get_opt(&format!("govdc-failover-{aliased}"))
            .await
            .ok()
            .flatten()
            .is_none(),
        "no failover fence on the source"
    );
    assert_eq!(
        get::<Deployment>(primary, &pair.namespace, "api")
            .await
            .and_then(|d| d.spec?.replicas),
        Some(3)
    );
}

#[tokio::test]
async fn a_mapping_onto_a_namespace_the_policy_did_not_make_is_refused_before_anything_is_written()
{
    let pair = Pair::new("bpnsclash", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;

    // The standby already holds a namespace of the mapped name — someone else's — with objects
    // of the names the primary's have.
    let dr = &pair.standby.client;
    let mapped = pair.mapped();
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": mapped,
        "labels": {TEST_LABEL: pair.standby.prefix}}}))
    .expect("namespace");
    Api::<Namespace>::all(dr.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the standby's own namespace");
    apply::<ConfigMap>(
        dr,
        &mapped,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "the standby's own"}}),
    )
    .await;
    apply::<Deployment>(
        dr,
        &mapped,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "own"}},
                        "template": {"metadata": {"labels": {"app": "own"}},
                                     "spec": {"containers": [{"name": "own", "image": "registry.local/own:1"}]}}}}),
    )
    .await;
    let settings_before =
        serde_json::to_value(get::<ConfigMap>(dr, &mapped, "settings").await).expect("json");
    let api_before = get::<Deployment>(dr, &mapped, "api")
        .await
        .expect("the standby's Deployment");

    pair.create_policy(json!({})).await;
    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "NamespaceMappingConflict")
        .await;
    assert_eq!(ready.status, "False");
    assert!(ready.message.contains(&mapped), "{}", ready.message);
    pair.warning_event(&pair.policy, &operator, "NamespaceMappingConflict")
        .await;

    tokio::time::sleep(Duration::from_secs(5)).await;
    let settings_after =
        serde_json::to_value(get::<ConfigMap>(dr, &mapped, "settings").await).expect("json");
    assert_eq!(
        settings_after, settings_before,
        "the standby's ConfigMap is left byte for byte"
    );
    let api_after = get::<Deployment>(dr, &mapped, "api")
        .await
        .expect("the standby's Deployment");
    assert_eq!(api_after.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        api_after.metadata.generation,
        api_before.metadata.generation
    );
    assert_eq!(owners_view(&api_after), owners_view(&api_before));
    assert_eq!(
        replication_marks(dr, &mapped).await,
        Vec::<String>::new(),
        "nothing in the standby's namespace was written"
    );
    let status = Api::<BackupPolicy>::all(pair.primary.client.clone())
        .get(&pair.policy)
        .await
        .expect("policy")
        .status
        .expect("status");
    let marked = pair.standby.kubectl(&[
        "get",
        "ns,cm,sa,secret,svc,deploy,role,rolebinding,netpol,quota,limits",
        "-A",
        "-l",
        &format!("{POLICY_LABEL}={}", pair.policy),
    ]);
    assert_eq!(
        status.objects_replicated,
        Some(0),
        "{status:?}\n{}",
        output_text(&marked)
    );
    assert!(
        status
            .conflicts
            .iter()
            .any(|c| c.kind == "Namespace" && c.name == mapped),
        "{:?}",
        status.conflicts
    );
}

#[tokio::test]
async fn objects_on_the_standby_the_policy_did_not_make_are_left_alone_and_reported() {
    let pair = Pair::new("bpobjclash", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    let primary = &pair.primary.client;
    pair.create_policy(json!({})).await;
    pair.condition(&operator, "Ready", "True").await;

    // Someone makes objects on the standby, in the policy's own namespace there, and later the
    // primary makes objects of the same names.
    let dr = &pair.standby.client;
    let mapped = pair.mapped();
    apply::<ConfigMap>(
        dr,
        &mapped,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"owner": "the standby's team"}}),
    )
    .await;
    apply::<Deployment>(
        dr,
        &mapped,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
               "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "worker"}},
                        "template": {"metadata": {"labels": {"app": "worker"}},
                                     "spec": {"containers": [{"name": "worker", "image": "registry.local/worker:1"}]}}}}),
    )
    .await;
    let late_before =
        serde_json::to_value(get::<ConfigMap>(dr, &mapped, "late").await).expect("json");
    let worker_before = get::<Deployment>(dr, &mapped, "worker")
        .await
        .expect("the standby's Deployment");
    // Past the freshness of the policy's last listing of the standby.
    tokio::time::sleep(Duration::from_secs(3)).await;
    apply::<ConfigMap>(
        primary,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "late"}, "data": {"owner": "the primary"}}),
    )
    .await;
    apply::<Deployment>(
        primary,
        &pair.namespace,
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "worker"},
               "spec": {"replicas": 5, "selector": {"matchLabels": {"app": "worker"}},
                        "template": {"metadata": {"labels": {"app": "worker"}},
                                     "spec": {"containers": [{"name": "worker", "image": "registry.local/worker:2"}]}}}}),
    )
    .await;
    apply::<ConfigMap>(
        primary,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "fresh"}, "data": {"k": "v"}}),
    )
    .await;

    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "TargetConflict")
        .await;
    assert_eq!(ready.status, "False");
    for named in [
        format!("ConfigMap {mapped}/late"),
        format!("Deployment.apps {mapped}/worker"),
    ] {
        assert!(
            ready.message.contains(&named),
            "{named} in {}",
            ready.message
        );
    }
    let degraded = pair
        .reason_of(&pair.policy, &operator, "Degraded", "TargetConflict")
        .await;
    assert_eq!(degraded.status, "True");
    pair.warning_event(&pair.policy, &operator, "TargetConflict")
        .await;
    let status = Api::<BackupPolicy>::all(primary.clone())
        .get(&pair.policy)
        .await
        .expect("policy")
        .status
        .expect("status");
    let mut conflicts: Vec<String> = status
        .conflicts
        .iter()
        .map(|c| format!("{} {}", c.kind, c.name))
        .collect();
    conflicts.sort();
    assert_eq!(conflicts, ["ConfigMap late", "Deployment.apps worker"]);

    // The rest still replicates.
    eventually("the other new ConfigMap on the standby", WAIT, || async {
        get::<ConfigMap>(dr, &mapped, "fresh").await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late_after =
        serde_json::to_value(get::<ConfigMap>(dr, &mapped, "late").await).expect("json");
    assert_eq!(late_after, late_before, "left byte for byte");
    let worker_after = get::<Deployment>(dr, &mapped, "worker")
        .await
        .expect("the standby's Deployment");
    assert_eq!(worker_after.spec.as_ref().and_then(|s| s.replicas), Some(1));
    assert_eq!(
        worker_after.metadata.generation,
        worker_before.metadata.generation
    );
    assert_eq!(owners_view(&worker_after), owners_view(&worker_before));
}

#[tokio::test]
async fn the_recorded_replica_count_comes_from_the_source_never_from_a_copy_at_zero() {
    let pair = Pair::new("bpcount", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    // A standby copy that is protected in turn (this primary is another policy's standby): it
    // runs at zero because it is a copy, and its workload runs 4.
    apply::<Deployment>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "apps/v1", "kind": "Deployment",
               "metadata": {"name": "relay", "labels": {POLICY_LABEL: "upstream"},
                            "annotations": {STANDBY_REPLICAS_ANNOTATION: "4"}},
               "spec": {"replicas": 0, "selector": {"matchLabels": {"app": "relay"}},
                        "template": {"metadata": {"labels": {"app": "relay"}},
                                     "spec": {"containers": [{"name": "relay", "image": "registry.local/relay:1"}]}}}}),
    )
    .await;
    pair.create_policy(json!({})).await;
    pair.condition(&operator, "Ready", "True").await;
    let dr = &pair.standby.client;
    let mapped = pair.mapped();
    let recorded = |d: Option<Deployment>| {
        d.and_then(|d| {
            Some((
                d.spec?.replicas?,
                d.metadata
                    .annotations?
                    .get(STANDBY_REPLICAS_ANNOTATION)?
                    .clone(),
            ))
        })
    };
    let relay = eventually("the relay's copy", WAIT, || async {
        recorded(get::<Deployment>(dr, &mapped, "relay").await)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert_eq!(relay, (0, "4".to_owned()), "the copy of a copy records 4");
    assert_eq!(
        recorded(get::<Deployment>(dr, &mapped, "api").await),
        Some((0, "3".to_owned()))
    );
    // A change of the source keeps its count; failover scales to it.
    apply::<ConfigMap>(
        &pair.primary.client,
        &pair.namespace,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "v2"}}),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        recorded(get::<Deployment>(dr, &mapped, "relay").await),
        Some((0, "4".to_owned()))
    );
    let target = pair.standby.kubeconfig.display().to_string();
    let primary = pair.primary.kubeconfig.display().to_string();
    let output = pair.backup(&[
        "failover",
        "--policy",
        pair.policy.as_str(),
        "--target-kubeconfig",
        target.as_str(),
        "--kubeconfig",
        primary.as_str(),
    ]);
    assert!(output.status.success(), "{}", output_text(&output));
    assert_eq!(
        get::<Deployment>(dr, &mapped, "relay")
            .await
            .and_then(|d| d.spec?.replicas),
        Some(4)
    );
}

/// Removes govdc's CRDs from a cluster (lifting the finalizers of what they hold first), and
/// waits until they are gone.
async fn remove_crds(client: &Client) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    for crd in govdc_crds::custom_resource_definitions() {
        let resource = kube::api::ApiResource {
            group: crd.spec.group.clone(),
            version: crd.spec.versions[0].name.clone(),
            api_version: format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
        };
        let all: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        for object in all
            .list_metadata(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let api: Api<DynamicObject> = match &object.metadata.namespace {
                Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
                None => all.clone(),
            };
            let _ = api
                .patch(
                    &object.metadata.name.unwrap_or_default(),
                    &PatchParams::default(),
                    &Patch::Merge(&json!({"metadata": {"finalizers": null}})),
                )
                .await;
        }
        let name = crd.metadata.name.clone().unwrap_or_default();
        let _ = crds.delete(&name, &DeleteParams::default()).await;
    }
    for crd in govdc_crds::custom_resource_definitions() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        eventually(&format!("CRD {name} gone"), WAIT, || {
            let crds = crds.clone();
            let name = name.clone();
            async move { crds.get_opt(&name).await.ok()?.is_none().then_some(()) }
        })
        .await
        .expect("CRDs removed");
    }
}

#[tokio::test]
async fn a_standby_without_govdcs_crds_is_told_what_to_install_or_gets_them() {
    let _spare = SPARE.lock().await;
    let pair = Pair::with_standby_crds("bpkinds", "spare", false).await;
    let spare = &pair.standby.client;
    remove_crds(spare).await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;

    // A user of the standby who may replicate ConfigMaps but not install CRDs.
    let user = format!("{}-replicator", pair.standby.prefix);
    let role = format!("{}-replicator", pair.standby.prefix);
    let rbac = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
         "metadata": {"name": role},
         "rules": [
            {"apiGroups": [""], "resources": ["namespaces", "configmaps"],
             "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": ["govdc.io"], "resources": ["*"], "verbs": ["*"]},
         ]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
         "metadata": {"name": role},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
         "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]},
    ]});
    let output = pair
        .standby
        .kubectl_with_input(&["apply", "--server-side", "-f", "-"], &rbac.to_string());
    assert!(output.status.success(), "{}", output_text(&output));
    let limited = std::fs::read_to_string(pair.standby.user_kubeconfig(&user, &[]))
        .expect("the user's kubeconfig");
    pair.create_policy_named(
        &pair.policy,
        json!({"includeKinds": ["ConfigMap", "OpenDataset"]}),
        Some(&limited),
    )
    .await;

    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "KindNotServed")
        .await;
    assert_eq!(ready.status, "False");
    for expected in [
        "OpenDataset.govdc.io",
        "crds/opendatasets.govdc.io.yaml",
        "forbidden",
    ] {
        assert!(
            ready.message.contains(expected),
            "{expected} in {}",
            ready.message
        );
    }
    pair.warning_event(&pair.policy, &operator, "KindNotServed")
        .await;
    let mapped = pair.mapped();
    let settings = eventually("the ConfigMap on the standby", WAIT, || async {
        get::<ConfigMap>(spare, &mapped, "settings").await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert_eq!(settings.data.unwrap_or_default()["mode"], "v1");
    let crds: Api<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition> =
        Api::all(spare.clone());
    assert!(
        crds.get_opt("opendatasets.govdc.io")
            .await
            .expect("read")
            .is_none(),
        "the limited user could not install the CRD"
    );

    // With the standby's admin credentials (a changed Secret, picked up at once), the operator
    // installs the CRDs it carries and the policy becomes Ready.
    let admin = std::fs::read_to_string(&pair.standby.kubeconfig).expect("admin kubeconfig");
    let changed = Instant::now();
    pair.write_kubeconfig_secret(&pair.policy, &admin).await;
    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "Replicating")
        .await;
    assert_eq!(ready.status, "True");
    assert!(
        changed.elapsed() < Duration::from_secs(30),
        "took {:?}",
        changed.elapsed()
    );
    let installed = crds
        .get("opendatasets.govdc.io")
        .await
        .expect("the operator installed the OpenDataset CRD");
    assert!(
        installed
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True")
    );
    for kind in ["ClusterRoleBinding", "ClusterRole"] {
        let _ = pair
            .standby
            .kubectl(&["delete", kind, &role, "--ignore-not-found"]);
    }
}

#[tokio::test]
async fn a_selector_that_protects_nothing_says_so() {
    let pair = Pair::new("bpnothing", "dr").await;
    let operator = pair.start_operator().await;
    // No DepartmentCloud carries the label the policy selects.
    pair.create_policy(json!({})).await;
    let ready = pair.condition(&operator, "Ready", "True").await;
    assert!(ready.message.contains("0 namespaces"), "{}", ready.message);
    let nothing = pair.condition(&operator, "NothingSelected", "True").await;
    assert_eq!(nothing.reason, "NoNamespaceProtected");
    pair.warning_event(&pair.policy, &operator, "NothingSelected")
        .await;

    // Once a department is selected, the warning goes.
    pair.create_department().await;
    let nothing = pair.condition(&operator, "NothingSelected", "False").await;
    assert_eq!(nothing.reason, "NamespacesProtected");
}

#[tokio::test]
async fn a_policy_made_before_its_secret_starts_as_soon_as_the_secret_exists() {
    let pair = Pair::new("bplate", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    pair.create_policy_named(&pair.policy, json!({}), None)
        .await;
    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "TargetKubeconfigNotFound")
        .await;
    assert_eq!(ready.status, "False");

    let kubeconfig = std::fs::read_to_string(&pair.standby.kubeconfig).expect("kubeconfig");
    let created = Instant::now();
    pair.write_kubeconfig_secret(&pair.policy, &kubeconfig)
        .await;
    let ready = pair.condition(&operator, "Ready", "True").await;
    assert_eq!(ready.reason, "Replicating");
    // Far sooner than the five-minute resync that would otherwise find the Secret.
    assert!(
        created.elapsed() < Duration::from_secs(15),
        "Ready {:?} after the Secret appeared",
        created.elapsed()
    );
}

#[tokio::test]
async fn a_target_that_cannot_be_told_from_the_source_is_not_written() {
    let pair = Pair::new("bpnoid", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    tenant_objects(&pair.primary.client, &pair.namespace).await;
    // A user of the standby with no rights at all: it cannot read kube-system.
    let nobody = std::fs::read_to_string(
        pair.standby
            .user_kubeconfig(&format!("{}-nobody", pair.standby.prefix), &[]),
    )
    .expect("the user's kubeconfig");
    pair.create_policy_named(&pair.policy, json!({}), Some(&nobody))
        .await;
    let ready = pair
        .reason_of(&pair.policy, &operator, "Ready", "TargetIdentityUnknown")
        .await;
    assert_eq!(ready.status, "False");
    assert!(
        ready.message.contains("kube-system") && ready.message.contains("forbidden"),
        "the API server's own words: {}",
        ready.message
    );
    assert!(
        Api::<Namespace>::all(pair.standby.client.clone())
            .get_opt(&pair.mapped())
            .await
            .expect("read")
            .is_none(),
        "nothing was written to the standby"
    );
}

#[tokio::test]
async fn a_copied_namespace_holding_someone_elses_objects_is_not_deleted_with_its_source() {
    let pair = Pair::new("bpnsdelete", "dr").await;
    let operator = pair.start_operator().await;
    pair.create_department().await;
    pair.tenant_namespace(&operator).await;
    // A second namespace of the tenant, made by hand, that will go away on the primary.
    let extra = format!("{}-extra", pair.dc);
    let namespace: Namespace = serde_json::from_value(json!({"metadata": {"name": extra,
        "labels": {"govdc.io/department": pair.dc, TEST_LABEL: pair.primary.prefix}}}))
    .expect("namespace");
    let primary_namespaces: Api<Namespace> = Api::all(pair.primary.client.clone());
    primary_namespaces
        .create(&PostParams::default(), &namespace)
        .await
        .expect("create the extra namespace");
    apply::<ConfigMap>(
        &pair.primary.client,
        &extra,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "v1"}}),
    )
    .await;
    pair.create_policy(json!({"deletions": {"policy": "mirror", "gracePeriod": "3s"}}))
        .await;
    pair.condition(&operator, "Ready", "True").await;
    let dr = &pair.standby.client;
    let mapped = format!("{extra}-dr");
    eventually("the extra namespace's copy", WAIT, || async {
        get::<ConfigMap>(dr, &mapped, "settings").await
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    // Someone puts an object of their own into the copy's namespace on the standby.
    apply::<ConfigMap>(
        dr,
        &mapped,
        json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs"}, "data": {"owner": "the standby's team"}}),
    )
    .await;

    primary_namespaces
        .delete(&extra, &DeleteParams::default())
        .await
        .expect("delete the namespace on the primary");
    // The copies go after their grace period; the namespace stays for what is not the policy's.
    eventually("the copy deleted after its grace period", WAIT, || async {
        get::<ConfigMap>(dr, &mapped, "settings")
            .await
            .is_none()
            .then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let api: Api<BackupPolicy> = Api::all(pair.primary.client.clone());
    let error = eventually("NamespaceHoldsOthers in status", WAIT, || async {
        api.get(&pair.policy)
            .await
            .ok()?
            .status?
            .errors
            .into_iter()
            .find(|e| e.reason == "NamespaceHoldsOthers")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(
        error.message.contains(&mapped) && error.message.contains("ConfigMap theirs"),
        "{}",
        error.message
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let kept = Api::<Namespace>::all(dr.clone())
        .get_opt(&mapped)
        .await
        .expect("read")
        .expect("the namespace on the standby is kept");
    assert!(kept.metadata.deletion_timestamp.is_none());
    let theirs = get::<ConfigMap>(dr, &mapped, "theirs")
        .await
        .expect("their ConfigMap is kept");
    assert_eq!(
        theirs.data.unwrap_or_default()["owner"],
        "the standby's team"
    );
    // Tidy up the standby's namespace, which no test label marks.
    let _ = Api::<Namespace>::all(dr.clone())
        .delete(&mapped, &DeleteParams::default())
        .await;
}
