//! The local control plane behaves like a real cluster in the ways govdc relies on: version,
//! independent clusters, garbage collection, namespace deletion, quota accounting, RBAC and
//! ServiceAccount tokens.

use std::collections::BTreeMap;
use std::time::Duration;

use govdc_test_support::{TestEnv, client_for, eventually, helm_bin, output_text};
use k8s_openapi::api::authentication::v1::{SelfSubjectReview, TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{
    ConfigMap, Namespace, ResourceQuota, ResourceQuotaSpec, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, ResourceExt};

const WAIT: Duration = Duration::from_secs(60);

fn config_map(name: &str, namespace: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(namespace.into()),
            ..Default::default()
        },
        data: Some(BTreeMap::from([("k".to_owned(), "v".to_owned())])),
        ..Default::default()
    }
}

#[tokio::test]
async fn kubectl_and_the_api_server_report_version_1_36() {
    let env = TestEnv::new("primary", "version").await;
    let output = env.kubectl(&["version", "-o", "json"]);
    assert!(output.status.success(), "{}", output_text(&output));
    let version: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("kubectl version prints JSON");
    let server = version["serverVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    let client = version["clientVersion"]["gitVersion"]
        .as_str()
        .unwrap_or_default();
    assert!(server.starts_with("v1.36."), "server version {server}");
    assert!(client.starts_with("v1.36."), "kubectl version {client}");
    let api_version = env.client.apiserver_version().await.expect("GET /version");
    assert_eq!(api_version.major, "1");
    assert_eq!(api_version.minor, "36");
}

#[tokio::test]
async fn helm_runs_and_reports_its_version() {
    let output = std::process::Command::new(helm_bin())
        .args(["version", "--short"])
        .output()
        .expect("running helm");
    assert!(output.status.success(), "{}", output_text(&output));
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        text.starts_with("v3.") || text.starts_with("v4."),
        "helm version {text}"
    );
}

#[tokio::test]
async fn the_primary_and_dr_clusters_are_independent() {
    let primary = TestEnv::new("primary", "independent").await;
    let dr = TestEnv::new("dr", "independent").await;
    let namespace = primary.namespace("only-here").await;
    let in_primary = Api::<Namespace>::all(primary.client.clone())
        .get_opt(&namespace)
        .await
        .expect("GET on primary");
    let in_dr = Api::<Namespace>::all(dr.client.clone())
        .get_opt(&namespace)
        .await
        .expect("GET on dr");
    assert!(in_primary.is_some());
    assert!(
        in_dr.is_none(),
        "a namespace created on primary appeared on dr"
    );
    assert_ne!(primary.kubeconfig, dr.kubeconfig);
}

#[tokio::test]
async fn the_garbage_collector_removes_a_deleted_owners_dependents() {
    let env = TestEnv::new("primary", "gc").await;
    let namespace = env.namespace("gc").await;
    let api: Api<ConfigMap> = Api::namespaced(env.client.clone(), &namespace);
    let owner = api
        .create(&PostParams::default(), &config_map("owner", &namespace))
        .await
        .expect("create owner");
    let mut dependent = config_map("dependent", &namespace);
    dependent.metadata.owner_references = Some(vec![OwnerReference {
        api_version: "v1".into(),
        kind: "ConfigMap".into(),
        name: owner.name_any(),
        uid: owner.uid().expect("owner has a uid"),
        ..Default::default()
    }]);
    api.create(&PostParams::default(), &dependent)
        .await
        .expect("create dependent");
    api.delete("owner", &DeleteParams::background())
        .await
        .expect("delete owner");
    eventually("the dependent to be garbage collected", WAIT, || {
        let api = api.clone();
        async move {
            api.get_opt("dependent")
                .await
                .ok()
                .flatten()
                .is_none()
                .then_some(())
        }
    })
    .await
    .expect("garbage collection");
}

#[tokio::test]
async fn a_deleted_namespace_disappears_with_its_contents() {
    let env = TestEnv::new("primary", "nsdelete").await;
    let namespace = env.namespace("doomed").await;
    Api::<ConfigMap>::namespaced(env.client.clone(), &namespace)
        .create(&PostParams::default(), &config_map("content", &namespace))
        .await
        .expect("create content");
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    namespaces
        .delete(&namespace, &DeleteParams::default())
        .await
        .expect("delete namespace");
    eventually(
        "the namespace to be gone, not stuck Terminating",
        WAIT,
        || {
            let namespaces = namespaces.clone();
            let namespace = namespace.clone();
            async move {
                namespaces
                    .get_opt(&namespace)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            }
        },
    )
    .await
    .expect("namespace deletion");
}

#[tokio::test]
async fn a_resource_quota_gets_its_usage_counted() {
    let env = TestEnv::new("primary", "quota").await;
    let namespace = env.namespace("quota").await;
    let quotas: Api<ResourceQuota> = Api::namespaced(env.client.clone(), &namespace);
    let quota = ResourceQuota {
        metadata: ObjectMeta {
            name: Some("objects".into()),
            ..Default::default()
        },
        spec: Some(ResourceQuotaSpec {
            hard: Some(BTreeMap::from([(
                "configmaps".to_owned(),
                Quantity("10".into()),
            )])),
            ..Default::default()
        }),
        ..Default::default()
    };
    quotas
        .create(&PostParams::default(), &quota)
        .await
        .expect("create quota");
    // Until the quota controller has computed a new quota's status, quota admission may not
    // count a new object against it (its cache may not hold the quota yet): wait for the status,
    // as a user of quotas would, before creating what it should count.
    eventually(
        "the quota controller to compute the quota's status",
        WAIT,
        || {
            let quotas = quotas.clone();
            async move { quotas.get("objects").await.ok()?.status?.hard.map(|_| ()) }
        },
    )
    .await
    .expect("quota status");
    Api::<ConfigMap>::namespaced(env.client.clone(), &namespace)
        .create(&PostParams::default(), &config_map("counted", &namespace))
        .await
        .expect("create configmap");
    // Quota admission counts ours; kube-root-ca.crt is counted once the controller recounts.
    let used = eventually(
        "status.used.configmaps to count our ConfigMap",
        WAIT,
        || {
            let quotas = quotas.clone();
            async move {
                let quota = quotas.get("objects").await.ok()?;
                let used: u32 = quota.status?.used?.get("configmaps")?.0.parse().ok()?;
                (used >= 1).then_some(used)
            }
        },
    )
    .await
    .expect("quota usage");
    assert!(
        used <= 2,
        "counted {used} ConfigMaps in a namespace holding two"
    );
}

#[tokio::test]
async fn rbac_refuses_an_unprivileged_user_until_a_role_binding_allows() {
    let env = TestEnv::new("primary", "rbac").await;
    let namespace = env.namespace("rbac").await;
    let user = format!("{}-alice", env.prefix);
    let alice = env.user_client(&user, &["departments"]).await;
    let alices_secrets: Api<Secret> = Api::namespaced(alice.clone(), &namespace);
    match alices_secrets.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("an unbound user listed secrets: {other:?}"),
    }
    let binding = RoleBinding {
        metadata: ObjectMeta {
            name: Some("alice-edit".into()),
            ..Default::default()
        },
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "ClusterRole".into(),
            name: "edit".into(),
        },
        subjects: Some(vec![Subject {
            api_group: Some("rbac.authorization.k8s.io".into()),
            kind: "User".into(),
            name: user.clone(),
            namespace: None,
        }]),
    };
    Api::<RoleBinding>::namespaced(env.client.clone(), &namespace)
        .create(&PostParams::default(), &binding)
        .await
        .expect("create role binding");
    eventually("the role binding to take effect", WAIT, || {
        let alices_secrets = alices_secrets.clone();
        async move {
            alices_secrets
                .list(&Default::default())
                .await
                .ok()
                .map(|_| ())
        }
    })
    .await
    .expect("alice may list secrets once bound to edit");
    // Bound in one namespace only: the default namespace stays closed.
    match Api::<Secret>::namespaced(alice, "default")
        .list(&Default::default())
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403),
        other => panic!("a namespace-bound user listed secrets elsewhere: {other:?}"),
    }
}

#[tokio::test]
async fn a_service_account_token_from_token_request_authenticates() {
    let env = TestEnv::new("primary", "token").await;
    let namespace = env.namespace("token").await;
    let accounts: Api<ServiceAccount> = Api::namespaced(env.client.clone(), &namespace);
    let account = ServiceAccount {
        metadata: ObjectMeta {
            name: Some("robot".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    accounts
        .create(&PostParams::default(), &account)
        .await
        .expect("create service account");
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let issued: TokenRequest = accounts
        .create_subresource("token", "robot", &PostParams::default(), &request)
        .await
        .expect("TokenRequest");
    let token = issued.status.and_then(|s| s.token).expect("issued token");

    let mut config = kube::Config::from_custom_kubeconfig(
        kube::config::Kubeconfig::read_from(&env.kubeconfig).expect("read kubeconfig"),
        &Default::default(),
    )
    .await
    .expect("config");
    config.auth_info = kube::config::AuthInfo {
        token: Some(token.into_boxed_str().into()),
        ..Default::default()
    };
    let robot = kube::Client::try_from(config).expect("client with token");
    let review: SelfSubjectReview = Api::<SelfSubjectReview>::all(robot)
        .create(&PostParams::default(), &SelfSubjectReview::default())
        .await
        .expect("SelfSubjectReview with the token");
    let username = review
        .status
        .and_then(|s| s.user_info)
        .and_then(|u| u.username)
        .unwrap_or_default();
    assert_eq!(username, format!("system:serviceaccount:{namespace}:robot"));
    // The admin kubeconfig still works, so the token did not replace the cluster's other users.
    client_for(&env.kubeconfig)
        .await
        .expect("admin client")
        .apiserver_version()
        .await
        .expect("admin GET /version");
}
