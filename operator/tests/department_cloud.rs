//! DepartmentClouds on a real API server with the operator running: tenant namespaces and their
//! guardrails, isolation under real RBAC, the capacity queue, drift repair, pruning, both
//! deletion policies, refusals of bad input, and 100 tenants converging.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::{OperatorProcess, TEST_LABEL, TestEnv, eventually, install_crds};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, ResourceQuota, Secret};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::api::rbac::v1::{ClusterRole, RoleBinding};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(60);

fn credit_code() -> String {
    govdc_crds::validation::credit_code::complete("11330000MB000000")
}

/// A DepartmentCloud labelled for the test, with the given spec fields over a valid base.
fn department_cloud(env: &TestEnv, name: &str, overrides: Value) -> DepartmentCloud {
    let mut spec = json!({
        "department": {"name": "浙江省大数据发展管理局", "creditCode": credit_code(), "level": "provincial", "regionCode": "330000"},
        "networkZone": "extranet",
        "protectionLevel": 3,
        "environments": [{"name": "prod"}],
    });
    if let (Value::Object(spec), Value::Object(overrides)) = (&mut spec, overrides) {
        spec.extend(overrides);
    }
    serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
        "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
        "spec": spec,
    }))
    .expect("fixture deserializes")
}

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
    govdc_test_support::condition(&clouds, name, type_, status, WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()))
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

    let mut code = credit_code();
    let last = code.pop().expect("code");
    code.push(if last == '0' { '1' } else { '0' });
    let wrong = format!("{}-wrong", env.prefix);
    let mut cloud = department_cloud(&env, &wrong, json!({}));
    cloud.spec.department.credit_code = code;
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
