//! A leader frozen past its lease (SIGSTOP): the standby takes over, and when the old leader
//! resumes (SIGCONT) it writes nothing (the API server's audit log, which records every write
//! with the client's user, shows none by it) and steps down. Also the takeover time after a
//! crash (SIGKILL), not a graceful stop. The two replicas run as users of their own so that the
//! audit log tells their writes apart; on a cluster of the test's own (`faults`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use govdc_crds::DepartmentCloud;
use govdc_test_support::fixtures;
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, govdc_cluster_bin, install_crds, output_text,
    repo_root,
};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::ResourceQuota;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const CLUSTER: &str = "faults";
const LEASE_SECONDS: &str = "3";
const WAIT: Duration = Duration::from_secs(60);

/// A kubeconfig for `user` on the test's cluster, bound to cluster-admin.
async fn user_kubeconfig(env: &TestEnv, user: &str) -> PathBuf {
    let out = repo_root()
        .join("target/test-logs")
        .join(format!("{}-{user}.kubeconfig", env.prefix));
    let output = Command::new(govdc_cluster_bin())
        .args(["user", CLUSTER, "--user", user, "--out"])
        .arg(&out)
        .current_dir(repo_root())
        .output()
        .expect("govdc-cluster user");
    assert!(output.status.success(), "{}", output_text(&output));
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": format!("{}-{user}", env.prefix), "labels": {TEST_LABEL: env.prefix}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "cluster-admin"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
    }))
    .expect("fixture");
    Api::<ClusterRoleBinding>::all(env.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .expect("binding");
    out
}

fn replica(env: &TestEnv, kubeconfig: &Path, lease: &str, identity: &str) -> OperatorProcess {
    OperatorProcess::start_as(
        Path::new(OPERATOR),
        env,
        kubeconfig,
        lease,
        identity,
        &["--lease-duration-seconds", LEASE_SECONDS],
    )
}

async fn holder(leases: &Api<Lease>, name: &str) -> Option<String> {
    leases.get_opt(name).await.ok()??.spec?.holder_identity
}

async fn wait_for_holder(leases: &Api<Lease>, name: &str, identity: &str) -> Duration {
    let started = Instant::now();
    eventually(&format!("{identity} to hold the lease"), WAIT, || async {
        (holder(leases, name).await.as_deref() == Some(identity)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    started.elapsed()
}

fn signal(process: &OperatorProcess, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &process.pid().to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal}");
}

/// The writes the audit log records by `user` received at or after `since`, leases aside (a
/// resumed replica may still try to renew its lease: that is how it learns it lost it).
fn audited_writes(user: &str, since: jiff::Timestamp) -> Vec<String> {
    let log = repo_root()
        .join("target/clusters")
        .join(CLUSTER)
        .join("logs/audit.log");
    let text = std::fs::read_to_string(&log)
        .unwrap_or_else(|e| panic!("the API server's audit log {}: {e}", log.display()));
    text.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|event| event["user"]["username"] == user)
        .filter(|event| event["objectRef"]["resource"] != "leases")
        .filter(|event| {
            event["requestReceivedTimestamp"]
                .as_str()
                .and_then(|t| t.parse::<jiff::Timestamp>().ok())
                .is_some_and(|t| t >= since)
        })
        .map(|event| {
            format!(
                "{} {} {}",
                event["verb"], event["requestURI"], event["responseStatus"]["code"]
            )
        })
        .collect()
}

#[tokio::test]
async fn a_frozen_leader_writes_nothing_when_it_resumes_and_steps_down() {
    let env = TestEnv::new(CLUSTER, "frozen").await;
    install_crds(&env.client).await.expect("install CRDs");
    let lease_namespace = env.namespace("lease").await;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &lease_namespace);
    let (a, b, c) = (
        user_kubeconfig(&env, "replica-a").await,
        user_kubeconfig(&env, "replica-b").await,
        user_kubeconfig(&env, "replica-c").await,
    );
    let mut first = replica(&env, &a, &lease_namespace, "replica-a");
    wait_for_holder(&leases, &env.prefix, "replica-a").await;
    let mut second = replica(&env, &b, &lease_namespace, "replica-b");

    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    let name = format!("{}-x", env.prefix);
    let code = fixtures::credit_code("11330000MD000001");
    let cloud = fixtures::department_cloud(
        &env,
        &name,
        json!({
            "department": fixtures::department("浙江省大数据发展管理局", &code),
            "quota": {"requests.cpu": "1"},
        }),
    );
    clouds
        .create(&PostParams::default(), &cloud)
        .await
        .expect("create");
    first.condition(&clouds, &name, "Ready", "True", WAIT).await;

    // Frozen past its lease: the standby takes over.
    signal(&first, "-STOP");
    let took_over = wait_for_holder(&leases, &env.prefix, "replica-b").await;
    eprintln!("takeover from a frozen leader: {took_over:?} (lease {LEASE_SECONDS} s)");

    // A change the new leader acts on while the old one is frozen: the old one's caches miss it,
    // and its pending work would act on what it saw before.
    clouds
        .patch(
            &name,
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"quota": {"requests.cpu": "2"}}})),
        )
        .await
        .expect("change the quota");
    let quotas: Api<ResourceQuota> = Api::namespaced(env.client.clone(), &format!("{name}-prod"));
    eventually("the new leader's quota", WAIT, || async {
        let quota = quotas.get_opt("govdc-quota").await.ok()??;
        let hard = quota.spec?.hard?;
        (hard.get("requests.cpu")?.0 == "2").then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", second.logs()));

    let resumed = jiff::Timestamp::now();
    signal(&first, "-CONT");
    eventually("the resumed replica to step down", WAIT, || {
        let running = first.is_running();
        let standby = first
            .get("/readyz")
            .is_some_and(|(_, body)| body.contains("standby"));
        async move { (!running || standby).then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", first.logs()));
    // Whatever it had in flight has had its moment.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let writes = audited_writes("replica-a", resumed);
    assert!(
        writes.is_empty(),
        "the resumed replica wrote after it lost the lease:\n{}\n{}",
        writes.join("\n"),
        first.logs()
    );
    assert_eq!(
        holder(&leases, &env.prefix).await.as_deref(),
        Some("replica-b")
    );
    let quota = quotas.get("govdc-quota").await.expect("quota");
    assert_eq!(
        quota.spec.and_then(|s| s.hard).unwrap_or_default()["requests.cpu"].0,
        "2",
        "the old leader's view came back"
    );

    // Takeover after a crash: a standby waits, the leader is SIGKILLed.
    drop(first);
    let standby = replica(&env, &c, &lease_namespace, "replica-c");
    eventually("the new standby to wait", WAIT, || {
        let waiting = standby
            .get("/readyz")
            .is_some_and(|(_, body)| body.contains("standby"));
        async move { waiting.then_some(()) }
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", standby.logs()));
    signal(&second, "-KILL");
    let took_over = wait_for_holder(&leases, &env.prefix, "replica-c").await;
    eprintln!("takeover after a crash (SIGKILL): {took_over:?} (lease {LEASE_SECONDS} s)");
    assert!(
        took_over < Duration::from_secs(3 * 3),
        "takeover took {took_over:?}"
    );
    assert!(!second.is_running());
}
