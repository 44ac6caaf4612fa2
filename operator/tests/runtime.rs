//! The operator process on a real API server: readiness that waits for the CRDs and the watches,
//! Prometheus metrics, graceful shutdown, and leader election between two processes.

use std::path::Path;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::fixtures;
use govdc_test_support::{OperatorProcess, TestEnv, eventually, install_crds};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::events::v1::Event;
use k8s_openapi::api::networking::v1::NetworkPolicy;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::runtime::watcher::InitialListStrategy;
use kube::{Api, Client};
use serde_json::json;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const WAIT: Duration = Duration::from_secs(30);

async fn lease_holder(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let lease = Api::<Lease>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .ok()??;
    lease.spec?.holder_identity.filter(|h| !h.is_empty())
}

async fn ready_reason(client: &Client, name: &str) -> Option<String> {
    ready_condition(client, name)
        .await
        .map(|(_, reason)| reason)
}

/// A sample's value in the operator's /metrics, parsed as Prometheus text.
fn metric(operator: &OperatorProcess, name: &str, controller: Option<&str>) -> Option<f64> {
    let (code, body) = operator.get("/metrics")?;
    assert_eq!(code, 200);
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .expect("/metrics parses as Prometheus text");
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == name && controller.is_none_or(|c| s.labels.get("controller") == Some(c))
        })
        .map(|s| match s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            _ => f64::NAN,
        })
}

#[tokio::test]
async fn readyz_waits_for_the_crds_and_the_watches_and_metrics_parse() {
    // A cluster of its own: this test removes the CRDs to watch the operator wait for them.
    let env = TestEnv::new("spare", "readyz").await;
    let crds: Api<CustomResourceDefinition> = Api::all(env.client.clone());
    // Whatever an earlier run left on this cluster must not hold the CRDs' deletion up.
    for crd in govdc_crds::custom_resource_definitions() {
        let resource = kube::api::ApiResource {
            group: crd.spec.group.clone(),
            version: crd.spec.versions[0].name.clone(),
            api_version: format!("{}/{}", crd.spec.group, crd.spec.versions[0].name),
            kind: crd.spec.names.kind.clone(),
            plural: crd.spec.names.plural.clone(),
        };
        let api: Api<kube::api::DynamicObject> = Api::all_with(env.client.clone(), &resource);
        for object in api
            .list_metadata(&Default::default())
            .await
            .map(|l| l.items)
            .unwrap_or_default()
        {
            let namespaced: Api<kube::api::DynamicObject> = match &object.metadata.namespace {
                Some(ns) => Api::namespaced_with(env.client.clone(), ns, &resource),
                None => api.clone(),
            };
            let unfinalize = json!({"metadata": {"finalizers": null}});
            let name = object.metadata.name.unwrap_or_default();
            let _ = namespaced
                .patch(
                    &name,
                    &kube::api::PatchParams::default(),
                    &kube::api::Patch::Merge(&unfinalize),
                )
                .await;
        }
    }
    for crd in govdc_crds::custom_resource_definitions() {
        let name = crd.metadata.name.unwrap_or_default();
        let _ = crds.delete(&name, &DeleteParams::default()).await;
        eventually(&format!("CRD {name} to be gone"), WAIT, || {
            let crds = crds.clone();
            let name = name.clone();
            async move {
                crds.get_opt(&name)
                    .await
                    .ok()
                    .flatten()
                    .is_none()
                    .then_some(())
            }
        })
        .await
        .expect("CRD deletion");
    }
    let lease_namespace = env.namespace("lease").await;
    let mut operator =
        OperatorProcess::start(Path::new(OPERATOR), &env, &lease_namespace, "solo", &[]);

    let (code, body) = eventually("/readyz to answer", WAIT, || async {
        operator.get("/readyz")
    })
    .await
    .expect("readyz");
    assert_eq!(code, 503, "ready without CRDs: {body}");
    assert!(
        body.contains("departmentclouds.govdc.io") && body.contains("backuppolicies.govdc.io"),
        "{body}"
    );
    assert_eq!(operator.get("/livez").map(|(c, _)| c), Some(200));
    // Still waiting a moment later: readiness does not flip by itself.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(operator.get("/readyz").map(|(c, _)| c), Some(503));

    install_crds(&env.client).await.expect("install CRDs");
    // A moment of standby (ready too, able to take over) comes before leading with synced watches.
    let body = eventually("/readyz to report a synced leader", WAIT, || async {
        operator
            .get("/readyz")
            .filter(|(code, body)| *code == 200 && body.contains("every watch synced"))
            .map(|(_, body)| body)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(body.starts_with("ready"), "{body}");

    assert_eq!(metric(&operator, "govdc_leader", None), Some(1.0));
    assert!(metric(&operator, "process_resident_memory_bytes", None).is_some_and(|rss| rss > 0.0));
    assert!(metric(&operator, "govdc_watched_objects", Some("department_cloud")).is_some());

    let started = Instant::now();
    assert!(
        operator.terminate(Duration::from_secs(25)),
        "SIGTERM did not stop the operator cleanly:\n{}",
        operator.logs()
    );
    assert!(started.elapsed() < Duration::from_secs(25));
    assert_eq!(
        lease_holder(&env.client, &lease_namespace, &env.prefix).await,
        None,
        "the lease was not released on shutdown"
    );
}

#[tokio::test]
async fn exactly_one_of_two_operators_reconciles_and_the_other_takes_over() {
    let env = TestEnv::new("primary", "leader").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let mut first =
        OperatorProcess::start(Path::new(OPERATOR), &env, &lease_namespace, "first", &[]);
    let holder = eventually("the first operator to lead", WAIT, || {
        lease_holder(&env.client, &lease_namespace, &env.prefix)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.logs()));
    assert_eq!(holder, "first");
    let second = OperatorProcess::start(Path::new(OPERATOR), &env, &lease_namespace, "second", &[]);
    eventually("the second operator to stand by", WAIT, || async {
        second
            .get("/readyz")
            .filter(|(_, body)| body.contains("standby"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.logs()));

    // A wrong check character: the leader reports it as a condition and a Warning event.
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let bad = format!("{}-bad", env.prefix);
    clouds
        .create(
            &PostParams::default(),
            &fixtures::department_cloud(
                &env,
                &bad,
                json!({"department": fixtures::department("浙江省数据局", &fixtures::wrong_credit_code())}),
            ),
        )
        .await
        .expect("create");
    let reason = eventually("the Ready condition", WAIT, || {
        ready_reason(&env.client, &bad)
    })
    .await
    .expect("condition");
    assert_eq!(reason, "InvalidCreditCode");
    let events: Api<Event> = Api::namespaced(env.client.clone(), "default");
    let event = eventually("a Warning event", WAIT, || {
        let events = events.clone();
        let bad = bad.clone();
        async move {
            events
                .list(&ListParams::default())
                .await
                .ok()?
                .items
                .into_iter()
                .find(|e| {
                    e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(bad.as_str())
                })
        }
    })
    .await
    .expect("event");
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert_eq!(event.reason.as_deref(), Some("InvalidCreditCode"));
    assert!(
        event
            .note
            .unwrap_or_default()
            .contains("spec.department.creditCode")
    );

    assert_eq!(metric(&first, "govdc_leader", None), Some(1.0));
    assert_eq!(metric(&second, "govdc_leader", None), Some(0.0));
    assert!(
        metric(&first, "govdc_reconcile_total", Some("department_cloud")).is_some_and(|n| n >= 1.0)
    );
    assert_eq!(
        metric(&second, "govdc_reconcile_total", Some("department_cloud")),
        None,
        "the standby reconciled"
    );

    let stopped = Instant::now();
    assert!(
        first.terminate(Duration::from_secs(25)),
        "the leader did not stop cleanly:\n{}",
        first.logs()
    );
    let holder = eventually(
        "the second operator to take over",
        Duration::from_secs(15),
        || async {
            lease_holder(&env.client, &lease_namespace, &env.prefix)
                .await
                .filter(|h| h == "second")
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.logs()));
    assert_eq!(holder, "second");
    let takeover = stopped.elapsed();
    assert!(
        takeover < Duration::from_secs(15),
        "takeover took {takeover:?}"
    );

    let good = format!("{}-good", env.prefix);
    clouds
        .create(
            &PostParams::default(),
            &fixtures::department_cloud(&env, &good, json!({})),
        )
        .await
        .expect("create");
    let reason = eventually("the new leader to reconcile", WAIT, || {
        ready_reason(&env.client, &good)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.logs()));
    assert_ne!(reason, "InvalidCreditCode");
    assert_eq!(metric(&second, "govdc_leader", None), Some(1.0));
}

/// The Ready condition's status and reason, once it describes the current generation.
async fn ready_condition(client: &Client, name: &str) -> Option<(String, String)> {
    let cloud = Api::<DepartmentCloud>::all(client.clone())
        .get_opt(name)
        .await
        .ok()??;
    let status = cloud.status?;
    (status.observed_generation == cloud.metadata.generation).then_some(())?;
    status
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .map(|c| (c.status, c.reason))
}

#[tokio::test]
async fn a_server_without_streaming_lists_gets_paged_lists_and_tenants_still_converge() {
    // WatchList is off by default on 1.30, 1.31 and 1.33, which the chart supports; there a
    // watch asking for a streamed list is refused, and a watcher that asked would never list.
    let streaming = TestEnv::new("primary", "watchlist-on").await;
    assert_eq!(
        govdc_operator::runtime::watch_list::initial_list_strategy(&streaming.client).await,
        InitialListStrategy::StreamingList,
        "the tests' clusters (1.36) stream lists"
    );
    let env = TestEnv::with_feature_gates("nowatchlist", "WatchList=false", "watchlist-off").await;
    assert_eq!(
        govdc_operator::runtime::watch_list::initial_list_strategy(&env.client).await,
        InitialListStrategy::ListWatch,
        "a server with WatchList off is asked for pages"
    );

    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let mut operator =
        OperatorProcess::start(Path::new(OPERATOR), &env, &lease_namespace, "paged", &[]);
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let name = format!("{}-paged", env.prefix);
    clouds
        .create(
            &PostParams::default(),
            &fixtures::department_cloud(&env, &name, json!({})),
        )
        .await
        .expect("create");
    let (status, reason) = eventually("the tenant to be provisioned", WAIT, || async {
        ready_condition(&env.client, &name)
            .await
            .filter(|(status, _)| status == "True")
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Provisioned"));
    assert!(
        operator
            .logs()
            .contains("the API server does not stream initial lists"),
        "the operator says it lists in pages:\n{}",
        operator.logs()
    );

    // The caches list in pages too: drift on an object the tenant owns is repaired.
    let namespace = format!("{name}-prod");
    let policies: Api<NetworkPolicy> = Api::namespaced(env.client.clone(), &namespace);
    policies
        .delete("govdc-default-deny", &DeleteParams::default())
        .await
        .expect("delete the tenant's default-deny NetworkPolicy");
    eventually("the NetworkPolicy to be put back", WAIT, || async {
        policies.get_opt("govdc-default-deny").await.ok()?
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));

    clouds
        .delete(&name, &DeleteParams::default())
        .await
        .expect("delete");
    eventually("the tenant to be cleaned up", WAIT, || async {
        clouds
            .get_opt(&name)
            .await
            .ok()
            .and_then(|c| c.is_none().then_some(()))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    assert!(operator.terminate(Duration::from_secs(25)));
}
