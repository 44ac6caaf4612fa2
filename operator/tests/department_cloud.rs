//! DepartmentClouds on a real API server with the operator running: tenant namespaces and their
//! guardrails, isolation under real RBAC, the capacity queue, drift repair, pruning, both
//! deletion policies, refusals of bad input, and 100 tenants converging.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::fixtures::{department_cloud, wrong_credit_code};
use govdc_test_support::{OperatorProcess, TestEnv, eventually, install_crds};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

async fn setup(test: &str, extra: &[&str]) -> (TestEnv, OperatorProcess) {
    let env = TestEnv::new("primary", test).await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease_namespace,
        "operator",
        extra,
    );
    (env, operator)
}

async fn create(env: &TestEnv, cloud: &DepartmentCloud) {
    Api::<DepartmentCloud>::all(env.client.clone())
        .create(&PostParams::default(), cloud)
        .await
        .expect("create DepartmentCloud");
}

/// Waits until the named condition of the DepartmentCloud, for its latest generation, has the
/// given status, and returns it.
async fn condition(
    env: &TestEnv,
    operator: &OperatorProcess,
    name: &str,
    type_: &str,
    status: &str,
) -> Condition {
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    operator.condition(&clouds, name, type_, status, WAIT).await
}

async fn exists<K>(api: &Api<K>, name: &str) -> bool
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    api.get_opt(name).await.expect("GET").is_some()
}

#[tokio::test]
async fn a_department_cloud_becomes_isolated_namespaces_with_quota_limits_and_policies() {
    let (env, operator) = setup("dcprovision", &[]).await;
    let name = format!("{}-a", env.prefix);
    create(
        &env,
        &department_cloud(
            &env,
            &name,
            json!({
                "protectionLevel": 2,
                "environments": [{"name": "prod", "quota": {"requests.cpu": "3"}}, {"name": "test"}],
                "quota": {"requests.cpu": "4", "pods": "20"},
                "containerDefaults": {"defaultRequest": {"cpu": "100m"}, "defaultLimit": {"cpu": "500m"}},
                "admins": [{"kind": "User", "name": "admin-a"}],
                "viewers": [{"kind": "Group", "name": "auditors"}],
            }),
        ),
    )
    .await;
    let ready = condition(&env, &operator, &name, "Ready", "True").await;
    assert_eq!(ready.reason, "Provisioned");

    let prod = format!("{name}-prod");
    let namespace = Api::<Namespace>::all(env.client.clone())
        .get(&prod)
        .await
        .expect("namespace");
    let labels = namespace.metadata.labels.unwrap_or_default();
    assert_eq!(labels["govdc.io/department"], name);
    assert_eq!(labels["govdc.io/network-zone"], "extranet");
    assert_eq!(labels["govdc.io/protection-level"], "2");
    assert_eq!(labels["pod-security.kubernetes.io/enforce"], "baseline");

    let quota = Api::<ResourceQuota>::namespaced(env.client.clone(), &format!("{name}-test"))
        .get("govdc-quota")
        .await
        .expect("quota");
    let hard = quota.spec.and_then(|s| s.hard).unwrap_or_default();
    assert_eq!(
        hard["requests.cpu"].0, "1",
        "test shares what prod leaves of the tenant's 4 CPUs"
    );
    assert_eq!(hard["pods"].0, "10");

    let policies: Vec<String> = Api::<NetworkPolicy>::namespaced(env.client.clone(), &prod)
        .list(&ListParams::default())
        .await
        .expect("policies")
        .items
        .into_iter()
        .filter_map(|p| p.metadata.name)
        .collect();
    for expected in [
        "govdc-default-deny",
        "govdc-allow-same-department",
        "govdc-allow-exchange-hub",
    ] {
        assert!(
            policies.iter().any(|p| p == expected),
            "{expected} missing from {policies:?}"
        );
    }
    let bindings = Api::<RoleBinding>::namespaced(env.client.clone(), &prod);
    assert_eq!(
        bindings
            .get("govdc-admins")
            .await
            .expect("admins")
            .role_ref
            .name,
        "admin"
    );
    assert_eq!(
        bindings
            .get("govdc-viewers")
            .await
            .expect("viewers")
            .role_ref
            .name,
        "view"
    );

    // The quota controller fills in the quotas' status after they are created; the tenant's
    // status sums it once it is there.
    let clouds = Api::<DepartmentCloud>::all(env.client.clone());
    let cloud = eventually("quota summed over the tenant", WAIT, || {
        let clouds = clouds.clone();
        let name = name.clone();
        async move {
            let cloud = clouds.get(&name).await.ok()?;
            let hard = cloud.status.as_ref()?.quota_hard.as_ref()?;
            (hard.get("requests.cpu")?.0 == "4").then_some(cloud)
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let status = cloud.status.expect("status");
    assert_eq!(status.namespace_count, Some(2));
    assert!(
        status.namespaces.iter().all(|n| n.phase == "Active"),
        "{:?}",
        status.namespaces
    );
    assert_eq!(
        status.quota_used.expect("summed used")["requests.cpu"].0,
        "0"
    );
    assert!(
        cloud
            .metadata
            .finalizers
            .unwrap_or_default()
            .contains(&"govdc.io/department-cloud".to_owned())
    );
}

#[tokio::test]
async fn departments_are_isolated_by_real_rbac() {
    let (env, operator) = setup("dcrbac", &[]).await;
    let (a, b) = (format!("{}-a", env.prefix), format!("{}-b", env.prefix));
    let (admin_a, viewer_a, admin_b) = (
        format!("{}-admin-a", env.prefix),
        format!("{}-viewer-a", env.prefix),
        format!("{}-admin-b", env.prefix),
    );
    create(&env, &department_cloud(&env, &a, json!({"admins": [{"kind": "User", "name": admin_a}], "viewers": [{"kind": "User", "name": viewer_a}]}))).await;
    create(
        &env,
        &department_cloud(
            &env,
            &b,
            json!({"admins": [{"kind": "User", "name": admin_b}]}),
        ),
    )
    .await;
    condition(&env, &operator, &a, "Ready", "True").await;
    condition(&env, &operator, &b, "Ready", "True").await;
    let a_prod = format!("{a}-prod");
    let b_prod = format!("{b}-prod");
    Api::<Secret>::namespaced(env.client.clone(), &b_prod)
        .create(
            &PostParams::default(),
            &Secret {
                metadata: ObjectMeta {
                    name: Some("b-data".into()),
                    ..Default::default()
                },
                string_data: Some(BTreeMap::from([("k".to_owned(), "classified".to_owned())])),
                ..Default::default()
            },
        )
        .await
        .expect("B's secret");

    let admin = env.user_client(&admin_a, &[]).await;
    let deployment: Deployment = serde_json::from_value(json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": "nginx",
                                  "resources": {"requests": {"cpu": "100m"}},
                                  "securityContext": {"allowPrivilegeEscalation": false, "runAsNonRoot": true,
                                      "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}}]}}}
    }))
    .expect("deployment");
    eventually(
        "A's admin to create a Deployment in A's namespace",
        WAIT,
        || {
            let api = Api::<Deployment>::namespaced(admin.clone(), &a_prod);
            let deployment = deployment.clone();
            async move {
                api.create(&PostParams::default(), &deployment)
                    .await
                    .ok()
                    .map(|_| ())
            }
        },
    )
    .await
    .expect("admin of A may deploy in A");

    expect_forbidden(
        Api::<Secret>::namespaced(admin.clone(), &b_prod)
            .get("b-data")
            .await,
        "A's admin reading B's secret",
    );
    expect_forbidden(
        Api::<Secret>::namespaced(admin.clone(), &b_prod)
            .list(&ListParams::default())
            .await,
        "A's admin listing B's secrets",
    );
    let clouds = Api::<DepartmentCloud>::all(admin.clone());
    assert_eq!(
        clouds
            .get(&a)
            .await
            .expect("A's admin reads A")
            .metadata
            .name
            .as_deref(),
        Some(a.as_str())
    );
    expect_forbidden(
        clouds.get(&b).await,
        "A's admin reading B's DepartmentCloud",
    );

    let viewer = env.user_client(&viewer_a, &[]).await;
    let config_map = ConfigMap {
        metadata: ObjectMeta {
            name: Some("note".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Deployment>::namespaced(viewer.clone(), &a_prod)
        .get("web")
        .await
        .expect("A's viewer reads A's Deployment");
    expect_forbidden(
        Api::<ConfigMap>::namespaced(viewer.clone(), &a_prod)
            .create(&PostParams::default(), &config_map)
            .await,
        "A's viewer writing in A",
    );
    expect_forbidden(
        Api::<Deployment>::namespaced(viewer, &b_prod)
            .list(&ListParams::default())
            .await,
        "A's viewer reading B",
    );
}

fn expect_forbidden<T: std::fmt::Debug>(result: kube::Result<T>, what: &str) {
    match result {
        Err(kube::Error::Api(status)) if status.code == 403 => {}
        other => panic!("{what} was not forbidden: {other:?}"),
    }
}

#[tokio::test]
async fn a_tenant_that_does_not_fit_waits_and_proceeds_when_capacity_frees_up() {
    let (env, operator) = setup("dccapacity", &["--capacity", "requests.cpu=10"]).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let (first, second, third) = (
        format!("{}-first", env.prefix),
        format!("{}-second", env.prefix),
        format!("{}-third", env.prefix),
    );
    create(
        &env,
        &department_cloud(&env, &first, json!({"quota": {"requests.cpu": "6"}})),
    )
    .await;
    condition(&env, &operator, &first, "Ready", "True").await;
    create(
        &env,
        &department_cloud(&env, &second, json!({"quota": {"requests.cpu": "6"}})),
    )
    .await;
    let waiting = condition(&env, &operator, &second, "CapacityAvailable", "False").await;
    assert_eq!(waiting.reason, "InsufficientCapacity");
    assert!(
        waiting.message.contains("requests.cpu 2"),
        "{}",
        waiting.message
    );
    // A small later request does not overtake the one waiting ahead of it.
    create(
        &env,
        &department_cloud(&env, &third, json!({"quota": {"requests.cpu": "1"}})),
    )
    .await;
    let behind = condition(&env, &operator, &third, "CapacityAvailable", "False").await;
    assert!(
        behind.message.contains("1 earlier request"),
        "{}",
        behind.message
    );
    assert!(
        !exists(
            &Api::<Namespace>::all(env.client.clone()),
            &format!("{second}-prod")
        )
        .await,
        "a waiting tenant was provisioned"
    );

    clouds
        .delete(&first, &DeleteParams::default())
        .await
        .expect("delete first");
    condition(&env, &operator, &second, "Ready", "True").await;
    condition(&env, &operator, &third, "Ready", "True").await;
    let admitted = condition(&env, &operator, &second, "CapacityAvailable", "True").await;
    assert_eq!(admitted.reason, "Admitted");
}

#[tokio::test]
async fn drift_is_repaired_and_a_removed_environment_is_pruned_but_its_namespace_kept() {
    let (env, operator) = setup("dcdrift", &[]).await;
    let name = format!("{}-a", env.prefix);
    create(
        &env,
        &department_cloud(
            &env,
            &name,
            json!({"environments": [{"name": "prod"}, {"name": "test"}], "quota": {"pods": "10"}}),
        ),
    )
    .await;
    condition(&env, &operator, &name, "Ready", "True").await;
    let prod = format!("{name}-prod");
    let quotas = Api::<ResourceQuota>::namespaced(env.client.clone(), &prod);

    let deleted = Instant::now();
    quotas
        .delete("govdc-quota", &DeleteParams::default())
        .await
        .expect("delete quota");
    eventually(
        "the deleted quota to be restored",
        Duration::from_secs(10),
        || {
            let quotas = quotas.clone();
            async move {
                quotas
                    .get_opt("govdc-quota")
                    .await
                    .ok()
                    .flatten()
                    .map(|_| ())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let repair = deleted.elapsed();
    eprintln!("deleted quota restored in {repair:?}");

    let edit = json!({"spec": {"hard": {"pods": "1000"}}});
    quotas
        .patch("govdc-quota", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .expect("edit quota");
    eventually(
        "the edited quota to be restored",
        Duration::from_secs(10),
        || {
            let quotas = quotas.clone();
            async move {
                let hard = quotas.get("govdc-quota").await.ok()?.spec?.hard?;
                (hard.get("pods")?.0 == "5").then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));

    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let remove_test = json!({"spec": {"environments": [{"name": "prod"}]}});
    clouds
        .patch(&name, &PatchParams::default(), &Patch::Merge(&remove_test))
        .await
        .expect("remove test environment");
    let test = format!("{name}-test");
    let test_policies = Api::<NetworkPolicy>::namespaced(env.client.clone(), &test);
    eventually(
        "the removed environment's objects to be pruned",
        WAIT,
        || {
            let test_policies = test_policies.clone();
            async move {
                test_policies
                    .list(&ListParams::default())
                    .await
                    .ok()?
                    .items
                    .is_empty()
                    .then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    condition(&env, &operator, &name, "Ready", "True").await;
    assert!(
        exists(&Api::<Namespace>::all(env.client.clone()), &test).await,
        "Retain policy: the namespace must stay"
    );
    assert!(
        !exists(
            &Api::<ResourceQuota>::namespaced(env.client.clone(), &test),
            "govdc-quota"
        )
        .await
    );
}

#[tokio::test]
async fn deleting_with_retain_keeps_the_namespaces_and_with_delete_removes_them() {
    let (env, operator) = setup("dcdelete", &[]).await;
    let (kept, gone) = (
        format!("{}-kept", env.prefix),
        format!("{}-gone", env.prefix),
    );
    create(
        &env,
        &department_cloud(
            &env,
            &kept,
            json!({"admins": [{"kind": "User", "name": "someone"}]}),
        ),
    )
    .await;
    create(
        &env,
        &department_cloud(&env, &gone, json!({"deletionPolicy": "Delete"})),
    )
    .await;
    condition(&env, &operator, &kept, "Ready", "True").await;
    condition(&env, &operator, &gone, "Ready", "True").await;
    let kept_ns = format!("{kept}-prod");
    Api::<ConfigMap>::namespaced(env.client.clone(), &kept_ns)
        .create(
            &PostParams::default(),
            &ConfigMap {
                metadata: ObjectMeta {
                    name: Some("records".into()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("government data");

    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    clouds
        .delete(&kept, &DeleteParams::default())
        .await
        .expect("delete kept");
    clouds
        .delete(&gone, &DeleteParams::default())
        .await
        .expect("delete gone");
    for name in [&kept, &gone] {
        eventually(&format!("{name} to be deleted"), WAIT, || {
            let clouds = clouds.clone();
            async move { clouds.get_opt(name).await.ok()?.is_none().then_some(()) }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    }

    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    let retained = namespaces
        .get(&kept_ns)
        .await
        .expect("Retain keeps the namespace");
    let labels = retained.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("govdc.io/retained-from"), Some(&kept));
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "a retained namespace is no longer managed"
    );
    assert!(
        exists(
            &Api::<ConfigMap>::namespaced(env.client.clone(), &kept_ns),
            "records"
        )
        .await,
        "data was lost"
    );
    assert!(
        !exists(
            &Api::<ClusterRole>::all(env.client.clone()),
            &format!("govdc:department-cloud:{kept}")
        )
        .await
    );

    let gone_ns = format!("{gone}-prod");
    eventually("Delete to remove the namespace", WAIT, || {
        let namespaces = namespaces.clone();
        let gone_ns = gone_ns.clone();
        async move {
            match namespaces.get_opt(&gone_ns).await.ok()? {
                None => Some(()),
                Some(ns) => ns.metadata.deletion_timestamp.map(|_| ()),
            }
        }
    })
    .await
    .expect("namespace deleted");
}

#[tokio::test]
async fn bad_input_gets_a_condition_with_a_reason_and_nothing_half_applied() {
    let (env, operator) = setup("dcbadinput", &[]).await;
    let namespaces: Api<Namespace> = Api::all(env.client.clone());

    let wrong = format!("{}-wrong", env.prefix);
    let mut cloud = department_cloud(&env, &wrong, json!({}));
    cloud.spec.department.credit_code = wrong_credit_code();
    create(&env, &cloud).await;
    let ready = condition(&env, &operator, &wrong, "Ready", "False").await;
    assert_eq!(ready.reason, "InvalidCreditCode");
    assert!(ready.message.contains("spec.department.creditCode"));
    assert!(!exists(&namespaces, &format!("{wrong}-prod")).await);

    // Somebody else's namespace where an environment would go: nothing is applied, not even the
    // environment that would not clash.
    let taken = format!("{}-taken", env.prefix);
    namespaces
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(format!("{taken}-prod")),
                    labels: Some(env.labels()),
                    ..Default::default()
                },
                ..Default::default()
            },
        )
        .await
        .expect("foreign namespace");
    create(
        &env,
        &department_cloud(
            &env,
            &taken,
            json!({"environments": [{"name": "test"}, {"name": "prod"}]}),
        ),
    )
    .await;
    let ready = condition(&env, &operator, &taken, "Ready", "False").await;
    assert_eq!(ready.reason, "NamespaceConflict");
    assert!(
        !exists(&namespaces, &format!("{taken}-test")).await,
        "half-applied: the other environment was created"
    );

    // A quota below what is in use is refused and the quota left as it was.
    let used = format!("{}-used", env.prefix);
    create(
        &env,
        &department_cloud(
            &env,
            &used,
            json!({"environments": [{"name": "prod", "quota": {"count/configmaps": "5"}}]}),
        ),
    )
    .await;
    condition(&env, &operator, &used, "Ready", "True").await;
    let used_ns = format!("{used}-prod");
    let config_maps = Api::<ConfigMap>::namespaced(env.client.clone(), &used_ns);
    let quotas = Api::<ResourceQuota>::namespaced(env.client.clone(), &used_ns);
    // Quota admission counts new objects only once the quota controller has computed the
    // quota's status.
    eventually("the quota's status", WAIT, || {
        let quotas = quotas.clone();
        async move {
            quotas
                .get("govdc-quota")
                .await
                .ok()?
                .status?
                .hard
                .map(|_| ())
        }
    })
    .await
    .expect("quota status");
    for n in 0..2 {
        config_maps
            .create(
                &PostParams::default(),
                &ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(format!("cm{n}")),
                        ..Default::default()
                    },
                    ..Default::default()
                },
            )
            .await
            .expect("configmap");
    }
    // Quota admission counts each ConfigMap as it is created; the controller's own recount of
    // kube-root-ca.crt may come later, so wait for at least our two.
    eventually("the quota to count our configmaps", WAIT, || {
        let quotas = quotas.clone();
        async move {
            let used = quotas.get("govdc-quota").await.ok()?.status?.used?;
            let counted = govdc_operator::quantity::parse(&used.get("count/configmaps")?.0).ok()?;
            (counted >= 2000).then_some(())
        }
    })
    .await
    .expect("quota usage");
    let shrink =
        json!({"spec": {"environments": [{"name": "prod", "quota": {"count/configmaps": "1"}}]}});
    Api::<DepartmentCloud>::all(env.client.clone())
        .patch(&used, &PatchParams::default(), &Patch::Merge(&shrink))
        .await
        .expect("shrink");
    let ready = condition(&env, &operator, &used, "Ready", "False").await;
    assert_eq!(ready.reason, "QuotaBelowUsage");
    let hard = quotas
        .get("govdc-quota")
        .await
        .expect("quota")
        .spec
        .and_then(|s| s.hard)
        .unwrap_or_default();
    assert_eq!(
        hard["count/configmaps"].0, "5",
        "the quota was lowered below usage"
    );
}

#[tokio::test]
async fn a_hundred_department_clouds_converge_to_ready() {
    let (env, operator) = setup("dchundred", &[]).await;
    let started = Instant::now();
    let names: Vec<String> = (0..100).map(|i| format!("{}-t{i}", env.prefix)).collect();
    for name in &names {
        create(
            &env,
            &department_cloud(&env, name, json!({"quota": {"requests.cpu": "1"}})),
        )
        .await;
    }
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let selector = env.selector();
    eventually(
        "100 DepartmentClouds Ready",
        Duration::from_secs(240),
        || {
            let clouds = clouds.clone();
            let selector = selector.clone();
            async move {
                let list = clouds
                    .list(&ListParams::default().labels(&selector))
                    .await
                    .ok()?;
                let ready = list
                    .items
                    .iter()
                    .filter(|c| {
                        c.status.as_ref().is_some_and(|s| {
                            s.conditions
                                .iter()
                                .any(|c| c.type_ == "Ready" && c.status == "True")
                        })
                    })
                    .count();
                (ready == 100).then_some(())
            }
        },
    )
    .await
    .unwrap_or_else(|e| {
        panic!(
            "{e}\n{}",
            operator
                .logs()
                .lines()
                .rev()
                .take(20)
                .collect::<Vec<_>>()
                .join("\n")
        )
    });
    eprintln!("100 DepartmentClouds Ready in {:?}", started.elapsed());
    let client: Client = env.client.clone();
    let namespaces = Api::<Namespace>::all(client)
        .list_metadata(&ListParams::default().labels("app.kubernetes.io/managed-by=govdc-operator"))
        .await
        .expect("namespaces")
        .items
        .into_iter()
        .filter(|n| {
            n.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&env.prefix))
        })
        .count();
    assert_eq!(namespaces, 100);
}

/// Polls the DepartmentCloud's condition `type_` until `accept` takes it, for at most `timeout`;
/// returns it with how long that took.
async fn condition_within(
    env: &TestEnv,
    operator: &OperatorProcess,
    name: &str,
    type_: &str,
    timeout: Duration,
    accept: impl Fn(&Condition) -> bool,
) -> (Condition, Duration) {
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let started = Instant::now();
    let found = eventually(&format!("{name} {type_}"), timeout, || {
        let clouds = clouds.clone();
        let accept = &accept;
        async move {
            let cloud = clouds.get(name).await.ok()?;
            let status = cloud.status?;
            (status.observed_generation == cloud.metadata.generation).then_some(())?;
            status
                .conditions
                .into_iter()
                .find(|c| c.type_ == type_ && accept(c))
        }
    })
    .await;
    match found {
        Ok(condition) => (condition, started.elapsed()),
        Err(error) => {
            let status = clouds
                .get(name)
                .await
                .ok()
                .and_then(|c| serde_json::to_string(&c.status).ok());
            panic!("{error}; status {status:?}\n{}", operator.logs())
        }
    }
}

/// Nothing of the tenant exists: no namespace of any environment, nothing labelled as its own.
async fn nothing_applied(env: &TestEnv, name: &str, environments: &[&str]) {
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for environment in environments {
        let namespace = format!("{name}-{environment}");
        assert!(
            !exists(&namespaces, &namespace).await,
            "half-applied: namespace {namespace} exists"
        );
    }
    let owned = namespaces
        .list_metadata(&ListParams::default().labels(&format!("govdc.io/owner-name={name}")))
        .await
        .expect("list namespaces");
    assert!(owned.items.is_empty(), "namespaces were made for {name}");
}

#[tokio::test]
async fn a_spec_the_api_server_would_refuse_in_any_object_stops_before_a_namespace_exists() {
    let (env, operator) = setup("dcrefused", &[]).await;
    // Each is admitted by the CRD but would be refused by the API server in the ResourceQuota or
    // the LimitRange it becomes, after the namespace and its NetworkPolicies were made.
    let cases = [
        (
            "typo",
            json!({"quota": {"cpus": "2"}}),
            "InvalidQuotaResource",
            "spec.quota[cpus]",
        ),
        (
            "halfpod",
            json!({"environments": [{"name": "prod", "quota": {"pods": "2.5"}}, {"name": "test"}]}),
            "InvalidQuantity",
            "spec.environments[prod].quota[pods]: 2.5 must be an integer",
        ),
        (
            "limits",
            json!({"containerDefaults": {"max": {"requests.cpu": "2"}}}),
            "InvalidContainerResource",
            "spec.containerDefaults.max[requests.cpu]",
        ),
        (
            "gpu",
            json!({"containerDefaults": {"defaultRequest": {"example.com/gpu": "1"}, "defaultLimit": {"example.com/gpu": "2"}}}),
            "ContainerDefaultsOutOfOrder",
            "cannot be overcommitted",
        ),
    ];
    for (suffix, spec, _, _) in &cases {
        let name = format!("{}-{suffix}", env.prefix);
        create(&env, &department_cloud(&env, &name, spec.clone())).await;
    }
    for (suffix, _, reason, message) in &cases {
        let name = format!("{}-{suffix}", env.prefix);
        let ready = condition(&env, &operator, &name, "Ready", "False").await;
        assert_eq!(ready.reason, *reason, "{name}: {ready:?}");
        assert!(ready.message.contains(message), "{name}: {}", ready.message);
        nothing_applied(&env, &name, &["prod", "test"]).await;
    }
    // Corrected, the tenant is provisioned: the refusal held nothing back.
    let typo = format!("{}-typo", env.prefix);
    Api::<DepartmentCloud>::all(env.client.clone())
        .patch(
            &typo,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"quota": {"cpus": null, "requests.cpu": "2"}}})),
        )
        .await
        .expect("correct the quota");
    condition(&env, &operator, &typo, "Ready", "True").await;
    // The refused ones still have nothing, some seconds after their refusal.
    for (suffix, ..) in &cases[1..] {
        nothing_applied(&env, &format!("{}-{suffix}", env.prefix), &["prod", "test"]).await;
    }
}

#[tokio::test]
async fn refused_and_oversized_tenants_hold_no_capacity_and_no_place_in_the_queue() {
    let (env, operator) = setup("dcqueue", &["--capacity", "requests.cpu=10"]).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let name = |suffix: &str| format!("{}-{suffix}", env.prefix);
    let cpu = |amount: &str| json!({"quota": {"requests.cpu": amount}});

    create(&env, &department_cloud(&env, &name("first"), cpu("6"))).await;
    condition(&env, &operator, &name("first"), "Ready", "True").await;

    // Ahead in the queue: a tenant refused for a missing peer, and one larger than the whole
    // data center.
    let mut invalid = cpu("2");
    invalid["peerDepartments"] = json!([name("nobody")]);
    create(&env, &department_cloud(&env, &name("invalid"), invalid)).await;
    create(&env, &department_cloud(&env, &name("huge"), cpu("20"))).await;
    let ready = condition(&env, &operator, &name("invalid"), "Ready", "False").await;
    assert_eq!(ready.reason, "PeerNotFound");
    let queued = condition(
        &env,
        &operator,
        &name("invalid"),
        "CapacityAvailable",
        "False",
    )
    .await;
    assert_eq!(queued.reason, "NotQueued", "{queued:?}");
    let (huge, _) = condition_within(
        &env,
        &operator,
        &name("huge"),
        "Ready",
        Duration::from_secs(20),
        |c| c.status == "False",
    )
    .await;
    assert_eq!(huge.reason, "ExceedsCapacity", "refused at once: {huge:?}");
    assert!(
        huge.message.contains("requests.cpu 20") && huge.message.contains("requests.cpu 10"),
        "{}",
        huge.message
    );
    let beyond = condition(&env, &operator, &name("huge"), "CapacityAvailable", "False").await;
    assert_eq!(beyond.reason, "ExceedsCapacity");

    // A later tenant that fits is not blocked by either.
    create(&env, &department_cloud(&env, &name("fits"), cpu("4"))).await;
    condition(&env, &operator, &name("fits"), "Ready", "True").await;

    // One that does not fit waits, naming its own shortfall only.
    create(&env, &department_cloud(&env, &name("waits"), cpu("8"))).await;
    let waiting = condition(
        &env,
        &operator,
        &name("waits"),
        "CapacityAvailable",
        "False",
    )
    .await;
    assert_eq!(waiting.reason, "InsufficientCapacity");
    assert_eq!(
        waiting.message, "the data center lacks requests.cpu 8 for this tenant",
        "nobody waits ahead of it; the refused tenants are not in the queue"
    );
    assert!(
        !exists(
            &Api::<Namespace>::all(env.client.clone()),
            &format!("{}-prod", name("waits"))
        )
        .await
    );

    // Capacity frees up: the waiting tenant's message says so at once (its periodic look comes
    // only every 30 s).
    clouds
        .delete(&name("fits"), &DeleteParams::default())
        .await
        .expect("delete fits");
    let (updated, took) = condition_within(
        &env,
        &operator,
        &name("waits"),
        "CapacityAvailable",
        Duration::from_secs(15),
        |c| c.message.contains("requests.cpu 4"),
    )
    .await;
    assert_eq!(
        updated.message,
        "the data center lacks requests.cpu 4 for this tenant"
    );
    eprintln!("the waiting tenant's message was updated {took:?} after capacity freed up");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    clouds
        .delete(&name("first"), &DeleteParams::default())
        .await
        .expect("delete first");
    condition(&env, &operator, &name("waits"), "Ready", "True").await;
    // The refused ones still hold nothing.
    for refused in ["invalid", "huge"] {
        nothing_applied(&env, &name(refused), &["prod"]).await;
    }
}

#[tokio::test]
async fn a_department_whose_peer_appears_later_leaves_peer_not_found_promptly() {
    let (env, operator) = setup("dcpeers", &[]).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let (a, b) = (format!("{}-a", env.prefix), format!("{}-b", env.prefix));
    create(
        &env,
        &department_cloud(&env, &a, json!({"peerDepartments": [b]})),
    )
    .await;
    let missing = condition(&env, &operator, &a, "Ready", "False").await;
    assert_eq!(missing.reason, "PeerNotFound");

    // Refusals look again only every five minutes: what brings A along is the watch on its peer.
    create(&env, &department_cloud(&env, &b, json!({}))).await;
    let (_, took) = condition_within(&env, &operator, &a, "Ready", Duration::from_secs(15), |c| {
        c.status == "True"
    })
    .await;
    eprintln!("Ready {took:?} after its peer was created");
    assert!(took < Duration::from_secs(10), "took {took:?}");

    // And when the peer goes away, A says so.
    clouds
        .delete(&b, &DeleteParams::default())
        .await
        .expect("delete the peer");
    let (gone, took) =
        condition_within(&env, &operator, &a, "Ready", Duration::from_secs(20), |c| {
            c.reason == "PeerNotFound"
        })
        .await;
    assert!(gone.message.contains(&b), "{}", gone.message);
    eprintln!("PeerNotFound {took:?} after its peer was deleted");
}

/// What the test's admission policy says when it refuses a tenant's ResourceQuota.
const QUOTA_REFUSED: &str = "resource quotas in this tenant are refused by the test's policy";

/// The operator's count of failed DepartmentCloud passes for `reason`, from its /metrics.
fn reconcile_errors(operator: &OperatorProcess, reason: &str) -> u64 {
    let (_, body) = operator.get("/metrics").unwrap_or_default();
    let wanted = format!(
        "govdc_reconcile_errors_total{{controller=\"department_cloud\",reason=\"{reason}\"}}"
    );
    body.lines()
        .find_map(|line| line.strip_prefix(&wanted))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn a_refused_apply_reads_like_the_api_servers_message_and_backs_off() {
    let (env, operator) = setup("dcapierror", &[]).await;
    let name = format!("{}-refused", env.prefix);
    let policy = govdc_test_support::RefusingPolicy::install(
        &env,
        "no-quota",
        "",
        "resourcequotas",
        json!({"matchLabels": {"govdc.io/department": name}}),
        QUOTA_REFUSED,
    );
    // The policy takes effect once the API server has loaded it: probe with a dry run in a
    // namespace the policy selects.
    let probe = env.namespace("probe").await;
    Api::<Namespace>::all(env.client.clone())
        .patch(
            &probe,
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"govdc.io/department": name}}})),
        )
        .await
        .expect("label the probe namespace");
    let quotas = Api::<ResourceQuota>::namespaced(env.client.clone(), &probe);
    eventually("the policy to refuse quotas", WAIT, || {
        let quotas = quotas.clone();
        async move {
            let quota: ResourceQuota = serde_json::from_value(
                json!({"metadata": {"name": "probe"}, "spec": {"hard": {"pods": "1"}}}),
            )
            .ok()?;
            let dry_run = PostParams {
                dry_run: true,
                ..Default::default()
            };
            quotas.create(&dry_run, &quota).await.is_err().then_some(())
        }
    })
    .await
    .expect("policy active");

    create(
        &env,
        &department_cloud(&env, &name, json!({"quota": {"requests.cpu": "2"}})),
    )
    .await;
    let ready = condition(&env, &operator, &name, "Ready", "False").await;
    assert_eq!(ready.reason, "ApplyFailed", "{ready:?}");
    let expected = format!(
        "applying ResourceQuota {name}-prod/govdc-quota: resourcequotas \"govdc-quota\" is forbidden: ValidatingAdmissionPolicy '{0}' with binding '{0}' denied request: {1}",
        policy.name, QUOTA_REFUSED
    );
    assert_eq!(ready.message, expected);
    for dump in ["Status {", "ApiError", "Some(", "code:", "reason:"] {
        assert!(!ready.message.contains(dump), "{dump} in {}", ready.message);
    }
    let degraded = condition(&env, &operator, &name, "Degraded", "True").await;
    assert_eq!(degraded.message, expected);

    // The refusal cannot heal by itself: retries back off (5 s, 10 s, 20 s, ...) instead of
    // coming every 5 s.
    let first = eventually("a failed pass counted", WAIT, || async {
        let n = reconcile_errors(&operator, "ApplyFailed");
        (n > 0).then_some(n)
    })
    .await
    .expect("the failure is counted");
    tokio::time::sleep(Duration::from_secs(36)).await;
    let retries = reconcile_errors(&operator, "ApplyFailed") - first;
    eprintln!("{retries} retries in the 36 s after the first refusal");
    assert!(
        (2..=4).contains(&retries),
        "expected 3 retries (after 5, 15 and 35 s), got {retries}"
    );

    // Lifting the refusal and changing the spec (a new generation) provisions the tenant at once.
    drop(policy);
    tokio::time::sleep(Duration::from_secs(2)).await;
    Api::<DepartmentCloud>::all(env.client.clone())
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"quota": {"requests.cpu": "3"}}})),
        )
        .await
        .expect("change the spec");
    condition(&env, &operator, &name, "Ready", "True").await;
}

/// Two tenants whose names make the same namespace (`<p>-a` with environment `b`, `<p>` with
/// environment `a-b`), created at the same moment, over a few rounds: one gets the namespace,
/// the other is refused with `NamespaceConflict`, and the namespace stays its first owner's
/// (its labels never change hands), however the two passes interleave.
#[tokio::test]
async fn two_tenants_whose_namespaces_collide_never_share_one() {
    let (env, operator) = setup("dccollide", &[]).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let namespaces: Api<Namespace> = Api::all(env.client.clone());
    for round in 0..4 {
        let short = format!("{}-r{round}", env.prefix);
        let long = format!("{short}-a");
        let shared = format!("{short}-a-b");
        let first = department_cloud(&env, &long, json!({"environments": [{"name": "b"}]}));
        let second = department_cloud(&env, &short, json!({"environments": [{"name": "a-b"}]}));
        let (x, y) = tokio::join!(create(&env, &first), create(&env, &second));
        let ((), ()) = (x, y);

        let settled = eventually(&format!("both of {long} and {short} decided"), WAIT, || {
            let clouds = clouds.clone();
            let (long, short) = (long.clone(), short.clone());
            async move {
                let mut ready = Vec::new();
                for name in [&long, &short] {
                    let cloud = clouds.get(name).await.ok()?;
                    let status = cloud.status?;
                    (status.observed_generation? == cloud.metadata.generation?).then_some(())?;
                    let condition = status
                        .conditions
                        .into_iter()
                        .find(|c| c.type_ == "Ready" && c.reason != "NamespacesNotActive")?;
                    ready.push((name.clone(), condition));
                }
                Some(ready)
            }
        })
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
        let winners: Vec<&String> = settled
            .iter()
            .filter(|(_, c)| c.status == "True")
            .map(|(name, _)| name)
            .collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one tenant gets {shared}: {settled:#?}"
        );
        let (_, loser) = settled
            .iter()
            .find(|(_, c)| c.status != "True")
            .expect("the other tenant");
        assert_eq!(
            loser.reason, "NamespaceConflict",
            "round {round}: {loser:?}"
        );
        assert!(loser.message.contains(&shared), "{}", loser.message);

        // The namespace is the winner's, and stays so.
        tokio::time::sleep(Duration::from_secs(2)).await;
        let namespace = namespaces.get(&shared).await.expect("the shared namespace");
        assert_eq!(
            namespace
                .metadata
                .labels
                .unwrap_or_default()
                .get("govdc.io/department"),
            Some(winners[0]),
            "round {round}: the namespace changed hands"
        );
        let still = clouds.get(winners[0]).await.expect("winner");
        let ready = still
            .status
            .and_then(|s| s.conditions.into_iter().find(|c| c.type_ == "Ready"))
            .expect("Ready");
        assert_eq!(
            ready.status, "True",
            "round {round}: the winner lost: {ready:?}"
        );
    }
}

/// The quota's `pods` limit in a namespace, as the API server holds it.
async fn quota_pods(env: &TestEnv, namespace: &str) -> Option<String> {
    let quotas = Api::<ResourceQuota>::namespaced(env.client.clone(), namespace);
    let hard = quotas.get_opt("govdc-quota").await.ok()??.spec?.hard?;
    Some(hard.get("pods")?.0.clone())
}

#[tokio::test]
async fn what_changed_while_the_operator_was_down_is_repaired_from_its_fresh_caches() {
    let (env, mut operator) = setup("dcdown", &[]).await;
    let name = format!("{}-a", env.prefix);
    let prod = format!("{name}-prod");
    create(
        &env,
        &department_cloud(&env, &name, json!({"quota": {"pods": "10"}})),
    )
    .await;
    condition(&env, &operator, &name, "Ready", "True").await;
    let pods = quota_pods(&env, &prod).await.expect("the quota");
    assert!(
        operator.terminate(Duration::from_secs(30)),
        "operator stops"
    );

    // Behind its back: one object deleted, one edited by someone else.
    let policies = Api::<NetworkPolicy>::namespaced(env.client.clone(), &prod);
    policies
        .delete("govdc-default-deny", &DeleteParams::default())
        .await
        .expect("delete policy");
    Api::<ResourceQuota>::namespaced(env.client.clone(), &prod)
        .patch(
            "govdc-quota",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"hard": {"pods": "1000"}}})),
        )
        .await
        .expect("edit quota");

    let lease = format!("{}-lease", env.prefix);
    let operator = OperatorProcess::start(Path::new(OPERATOR), &env, &lease, "operator2", &[]);
    eventually("both repaired by the restarted operator", WAIT, || {
        let (env, prod, pods, policies) = (&env, &prod, &pods, &policies);
        async move {
            let policy = policies.get_opt("govdc-default-deny").await.ok()??;
            (policy.metadata.deletion_timestamp.is_none()
                && quota_pods(env, prod).await.as_ref() == Some(pods))
            .then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
}

#[tokio::test]
async fn quick_spec_changes_end_in_the_last_spec_even_when_one_returns_to_an_earlier_value() {
    let (env, operator) = setup("dcaba", &[]).await;
    let name = format!("{}-a", env.prefix);
    let prod = format!("{name}-prod");
    create(
        &env,
        &department_cloud(&env, &name, json!({"quota": {"pods": "10"}})),
    )
    .await;
    condition(&env, &operator, &name, "Ready", "True").await;
    let ten = quota_pods(&env, &prod).await.expect("the quota");
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    // 10 -> 20 -> 10 within the watches' lag: the caches may still show the first write of 10
    // when the last pass runs, while the object holds 20.
    for round in 0..5 {
        for pods in ["20", "10"] {
            clouds
                .patch(
                    &name,
                    &PatchParams::default(),
                    &Patch::Merge(json!({"spec": {"quota": {"pods": pods}}})),
                )
                .await
                .expect("spec change");
            if round % 2 == 1 {
                tokio::time::sleep(Duration::from_millis(30)).await;
            }
        }
    }
    let generation = clouds
        .get(&name)
        .await
        .expect("the tenant")
        .metadata
        .generation;
    eventually("the tenant to report its last generation", WAIT, || {
        let clouds = clouds.clone();
        let name = name.clone();
        async move {
            let cloud = clouds.get(&name).await.ok()?;
            (cloud.status?.observed_generation == generation).then_some(())
        }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    // And it stays so: no pass left behind with an older view.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        quota_pods(&env, &prod).await.as_ref(),
        Some(&ten),
        "{}",
        operator.logs()
    );
}

#[tokio::test]
async fn a_prune_from_a_stale_view_deletes_nothing_and_asks_for_a_fresh_read() {
    use govdc_operator::controllers::department_cloud::cache::{Kind, Seen};
    use govdc_operator::controllers::department_cloud::write;
    use kube::api::{ApiResource, DynamicObject};

    let env = TestEnv::new("primary", "dcstale").await;
    let namespace = env.namespace("stale").await;
    let policies = Api::<NetworkPolicy>::namespaced(env.client.clone(), &namespace);
    let dynamic: Api<DynamicObject> = Api::namespaced_with(
        env.client.clone(),
        &namespace,
        &ApiResource::erase::<NetworkPolicy>(&()),
    );
    let policy = |owner: &str| -> NetworkPolicy {
        serde_json::from_value(json!({
            "metadata": {"name": "x", "labels": {"owner": owner}},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]},
        }))
        .expect("fixture")
    };
    let view = |object: &DynamicObject| vec![Seen::from_object(Kind::NetworkPolicy, object)];
    let keep = Default::default();
    policies
        .create(&PostParams::default(), &policy("ours"))
        .await
        .expect("create");

    // Changed since the view was taken (another resourceVersion).
    let seen = view(&dynamic.get("x").await.expect("read"));
    policies
        .patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"edited": "yes"}}})),
        )
        .await
        .expect("edit");
    let error = write::prune(&env.client, &seen, &keep, |_| true)
        .await
        .expect_err("a changed object is not deleted");
    assert!(write::is_stale(&error), "{}", error.chain());
    assert!(exists(&policies, "x").await);

    // Replaced since the view was taken (another uid): someone else's object of the same name.
    let seen = view(&dynamic.get("x").await.expect("read"));
    policies
        .delete("x", &DeleteParams::default())
        .await
        .expect("delete");
    policies
        .create(&PostParams::default(), &policy("theirs"))
        .await
        .expect("recreate");
    let error = write::prune(&env.client, &seen, &keep, |_| true)
        .await
        .expect_err("a replaced object is not deleted");
    assert!(write::is_stale(&error), "{}", error.chain());
    let theirs = policies.get("x").await.expect("theirs survives");
    assert_eq!(
        theirs
            .metadata
            .labels
            .unwrap_or_default()
            .get("owner")
            .map(String::as_str),
        Some("theirs")
    );

    // A current view deletes.
    let seen = view(&dynamic.get("x").await.expect("read"));
    let deleted = write::prune(&env.client, &seen, &keep, |_| true)
        .await
        .expect("prune");
    assert_eq!(deleted.len(), 1);
    assert!(!exists(&policies, "x").await);
}
