//! A DR target that hangs instead of refusing: the standby's kube-apiserver is frozen (SIGSTOP)
//! for two minutes, so that connections to it are accepted by the kernel and then get no answer
//! — what a dropped route or a stalled machine looks like, unlike a stopped cluster, which refuses
//! at once. During the outage the source gets a backlog of creations and edits and some
//! deletions, and the operator is restarted while a deletion's grace period runs.
//!
//! What a user relies on: the policy degrades with a reason a person can read within a bounded
//! time (no request to the target waits forever), the RPO on the operator's /metrics grows — and
//! keeps growing across the restart —, nothing is deleted on the standby before its grace period
//! counted from the mark the copy carries, and once the target answers again everything arrives,
//! the RPO falls back and the policy is Ready.
//!
//! On clusters of the test's own (`hang-src`, `hang-dr`), since it freezes one of them.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use govdc_crds::{BackupPolicy, DepartmentCloud};
use govdc_operator::controllers::backup_policy::clean::{
    POLICY_LABEL, SOURCE_DELETED_AT_ANNOTATION,
};
use govdc_test_support::fixtures;
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, eventually, install_crds, repo_root,
};
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const SOURCE: &str = "hang-src";
const STANDBY: &str = "hang-dr";
/// How long the standby's API server stays frozen.
const OUTAGE: Duration = Duration::from_secs(120);
/// The deletion grace period: longer than the outage, so that a copy marked just before it is
/// still due to stay when the target returns.
const GRACE: Duration = Duration::from_secs(160);
/// The bound on the policy reporting the outage.
const DEGRADED_WITHIN: Duration = Duration::from_secs(45);
const WAIT: Duration = Duration::from_secs(120);
/// ConfigMaps before the outage; of them, the first EDITED are edited and the next DELETED
/// deleted during the outage.
const INITIAL: usize = 40;
const EDITED: usize = 20;
const DELETED: usize = 10;
/// ConfigMaps created during the outage.
const BACKLOG: usize = 150;

/// The standby's API server, stopped until dropped: whatever the test does, it is resumed.
struct Frozen {
    pid: String,
}

impl Frozen {
    fn api_server(cluster: &str) -> Frozen {
        let pid_file = repo_root()
            .join("target/clusters")
            .join(cluster)
            .join("kube-apiserver.pid");
        let pid = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("reading {}: {e}", pid_file.display()))
            .trim()
            .to_owned();
        signal("STOP", &pid);
        // Each of the server's threads stops when it is next scheduled: on a loaded machine one
        // may still answer a moment after the signal was sent.
        let deadline = Instant::now() + Duration::from_secs(10);
        while !all_threads_stopped(&pid) {
            assert!(
                Instant::now() < deadline,
                "kube-apiserver {pid} did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Frozen { pid }
    }
}

/// Whether every thread of process `pid` is stopped (state `T` in its `/proc` stat).
fn all_threads_stopped(pid: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return false;
    };
    tasks.flatten().all(|task| {
        std::fs::read_to_string(task.path().join("stat")).is_ok_and(|stat| {
            // The state follows the command name, which is in parentheses.
            stat.rsplit_once(") ")
                .is_some_and(|(_, rest)| rest.starts_with('T'))
        })
    })
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal("CONT", &self.pid);
    }
}

fn signal(name: &str, pid: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), pid])
        .status()
        .expect("kill");
    assert!(sent.success(), "kill -{name} {pid}");
    eprintln!("kube-apiserver ({pid}) SIG{name}");
}

/// The standby's API server address, from the launcher's record of the cluster.
fn api_address(cluster: &str) -> std::net::SocketAddr {
    let record = repo_root()
        .join("target/clusters")
        .join(cluster)
        .join("cluster.json");
    let record: Value = serde_json::from_str(
        &std::fs::read_to_string(&record).unwrap_or_else(|e| panic!("{}: {e}", record.display())),
    )
    .expect("cluster.json");
    let port = record["ports"]["apiServer"]
        .as_u64()
        .expect("apiServer port");
    ("127.0.0.1", u16::try_from(port).expect("port"))
        .to_socket_addrs()
        .expect("address")
        .next()
        .expect("an address")
}

/// How the API server meets a connection: whether it answers a plain-HTTP request within 3 s
/// (a Go TLS server answers one with a 400). A refused connection fails the test: this test is
/// about a target that hangs, not one that refuses.
fn answers(address: std::net::SocketAddr) -> bool {
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("connecting to {address}: {e} (refused instead of hanging?)"));
    stream
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("read timeout");
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut buffer = [0u8; 64];
    match stream.read(&mut buffer) {
        Ok(n) => n > 0,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            false
        }
        Err(e) => panic!("reading from {address}: {e}"),
    }
}

async fn apply_config_map(client: &Client, namespace: &str, name: &str, data: Value) {
    let object: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name}, "data": data,
    }))
    .expect("fixture");
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .patch(
            name,
            &PatchParams::apply("govdc-tests").force(),
            &Patch::Apply(&object),
        )
        .await
        .unwrap_or_else(|e| panic!("applying ConfigMap {name}: {e}"));
}

async fn delete_config_map(client: &Client, namespace: &str, name: &str) {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap_or_else(|e| panic!("deleting ConfigMap {name}: {e}"));
}

/// The replicated ConfigMaps of a namespace (by name: data, deletion mark).
async fn copies(client: &Client, namespace: &str) -> Option<Vec<(String, Value, Option<String>)>> {
    let list = Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default().labels(POLICY_LABEL))
        .await
        .ok()?;
    Some(
        list.items
            .into_iter()
            .map(|c| {
                let mark = c
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(SOURCE_DELETED_AT_ANNOTATION).cloned());
                (
                    c.metadata.name.clone().unwrap_or_default(),
                    serde_json::to_value(c.data.unwrap_or_default()).unwrap_or(Value::Null),
                    mark,
                )
            })
            .collect(),
    )
}

fn rpo_metric(operator: &OperatorProcess, policy: &str) -> Option<f64> {
    let (_, body) = operator.get("/metrics")?;
    let prefix = format!("govdc_backup_rpo_seconds{{policy=\"{policy}\"}} ");
    body.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

async fn policy_condition(api: &Api<BackupPolicy>, policy: &str, type_: &str) -> Option<Condition> {
    api.get_opt(policy)
        .await
        .ok()??
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)
}

/// Waits for `type_` to have `status` and `reason`, and checks its message is written for a
/// person.
async fn wait_condition(
    api: &Api<BackupPolicy>,
    policy: &str,
    operator: &OperatorProcess,
    (type_, status, reason): (&str, &str, &str),
    timeout: Duration,
) -> Condition {
    let condition = eventually(&format!("{type_}={status} ({reason})"), timeout, || async {
        policy_condition(api, policy, type_)
            .await
            .filter(|c| c.status == status && c.reason == reason)
    })
    .await;
    let condition = match condition {
        Ok(condition) => condition,
        Err(e) => panic!(
            "{e}\nlast {type_}: {:?}\n{}",
            policy_condition(api, policy, type_).await,
            tail(&operator.logs())
        ),
    };
    for dump in [
        "ErrorResponse",
        "Status {",
        "ApiError",
        "code: ",
        "hyper::",
        "Kind(",
    ] {
        assert!(
            !condition.message.contains(dump),
            "{type_} {reason} carries a Debug dump: {}",
            condition.message
        );
    }
    condition
}

fn tail(logs: &str) -> String {
    let lines: Vec<&str> = logs.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

/// Deletes the standby's copy of the namespace when the test ends (the standby's TestEnv knows
/// no DepartmentCloud to clean up by).
struct StandbyNamespace {
    kubeconfig: PathBuf,
    name: String,
}

impl Drop for StandbyNamespace {
    fn drop(&mut self) {
        let _ = Command::new(govdc_test_support::kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args([
                "delete",
                "namespace",
                &self.name,
                "--wait=false",
                "--ignore-not-found",
            ])
            .output();
    }
}

fn start_operator(source: &TestEnv, lease: &str, identity: &str) -> OperatorProcess {
    OperatorProcess::start(
        Path::new(OPERATOR),
        source,
        lease,
        identity,
        &["--lease-duration-seconds", "4"],
    )
}

#[tokio::test]
async fn a_target_that_hangs_degrades_the_policy_deletes_nothing_early_and_catches_up() {
    let source = TestEnv::new(SOURCE, "drhang").await;
    let standby = TestEnv::new(STANDBY, "drhang").await;
    install_crds(&source.client)
        .await
        .expect("CRDs on the source");
    install_crds(&standby.client)
        .await
        .expect("CRDs on the standby");
    let address = api_address(STANDBY);
    assert!(
        answers(address),
        "the standby's API server answers before the outage"
    );

    let lease = source.namespace("lease").await;
    let mut operator = start_operator(&source, &lease, "operator-a");
    let dc = format!("{}-t", source.prefix);
    let namespace = format!("{dc}-prod");
    let mapped = format!("{namespace}-dr");
    let _cleanup = StandbyNamespace {
        kubeconfig: standby.kubeconfig.clone(),
        name: mapped.clone(),
    };
    let department = fixtures::department("灾备测试局", &fixtures::default_credit_code());
    let cloud = fixtures::department_cloud(
        &source,
        &dc,
        json!({"department": department, "protectionLevel": 2}),
    );
    Api::<DepartmentCloud>::all(source.client.clone())
        .create(&PostParams::default(), &cloud)
        .await
        .expect("create DepartmentCloud");
    let namespaces: Api<Namespace> = Api::all(source.client.clone());
    eventually("the tenant namespace", WAIT, || async {
        namespaces.get_opt(&namespace).await.ok().flatten()
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    for i in 0..INITIAL {
        apply_config_map(
            &source.client,
            &namespace,
            &format!("keep-{i:03}"),
            json!({"v": "1"}),
        )
        .await;
    }
    apply_config_map(&source.client, &namespace, "gone-before", json!({"v": "1"})).await;

    let system = source.namespace("sys").await;
    let kubeconfig = std::fs::read_to_string(&standby.kubeconfig).expect("standby kubeconfig");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "standby-kubeconfig"},
        "stringData": {"kubeconfig": kubeconfig},
    }))
    .expect("fixture");
    Api::<Secret>::namespaced(source.client.clone(), &system)
        .create(&PostParams::default(), &secret)
        .await
        .expect("kubeconfig Secret");
    let policy = format!("{}-bp", source.prefix);
    let backup: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": policy, "labels": {TEST_LABEL: source.prefix}},
        "spec": {
            "departmentSelector": {"matchLabels": {TEST_LABEL: source.prefix}},
            "target": {"kubeconfigSecretRef": {"namespace": system, "name": "standby-kubeconfig", "key": "kubeconfig"}},
            "namespaceMapping": {"suffix": "-dr"},
            "mode": "continuous",
            "recoveryPointObjective": "2s",
            "deletions": {"policy": "mirror", "gracePeriod": format!("{}s", GRACE.as_secs())},
        }
    }))
    .expect("policy fixture");
    let policies: Api<BackupPolicy> = Api::all(source.client.clone());
    policies
        .create(&PostParams::default(), &backup)
        .await
        .expect("create BackupPolicy");
    wait_condition(
        &policies,
        &policy,
        &operator,
        ("Ready", "True", "Replicating"),
        WAIT,
    )
    .await;
    let dr = standby.client.clone();
    eventually("the first copy on the standby", WAIT, || async {
        (copies(&dr, &mapped).await?.len() == INITIAL + 1).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));

    // A deletion before the outage: its copy is marked now, and its grace period runs through
    // the outage and the operator's restart.
    let deleted_before = jiff::Timestamp::now();
    delete_config_map(&source.client, &namespace, "gone-before").await;
    let marked = eventually(
        "the deletion marked on the standby",
        Duration::from_secs(20),
        || async {
            copies(&dr, &mapped)
                .await?
                .into_iter()
                .find(|(name, _, _)| name == "gone-before")?
                .2
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    let marked: jiff::Timestamp = marked.parse().expect("an RFC 3339 mark");
    assert!(
        marked >= deleted_before,
        "the mark ({marked}) predates the deletion ({deleted_before})"
    );
    let due = marked + jiff::SignedDuration::try_from(GRACE).expect("grace");
    eprintln!("gone-before marked at {marked}, due for deletion at {due}");

    // The outage: connections are accepted and never answered.
    let frozen = Frozen::api_server(STANDBY);
    let frozen_at = Instant::now();
    assert!(
        !answers(address),
        "the frozen API server still answers: the outage does not hang"
    );
    for i in 0..EDITED {
        apply_config_map(
            &source.client,
            &namespace,
            &format!("keep-{i:03}"),
            json!({"v": "2"}),
        )
        .await;
    }
    let deleted_during = jiff::Timestamp::now();
    for i in EDITED..EDITED + DELETED {
        delete_config_map(&source.client, &namespace, &format!("keep-{i:03}")).await;
    }
    for i in 0..BACKLOG {
        apply_config_map(
            &source.client,
            &namespace,
            &format!("backlog-{i:03}"),
            json!({"v": "outage"}),
        )
        .await;
    }
    eprintln!("backlog written {:?} into the outage", frozen_at.elapsed());

    let degraded = wait_condition(
        &policies,
        &policy,
        &operator,
        ("Degraded", "True", "TargetUnreachable"),
        DEGRADED_WITHIN,
    )
    .await;
    let time_to_degraded = frozen_at.elapsed();
    eprintln!("Degraded after {time_to_degraded:?}: {}", degraded.message);
    let ready = policy_condition(&policies, &policy, "Ready")
        .await
        .expect("Ready");
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "TargetUnreachable")
    );

    let first = eventually("an RPO gauge", Duration::from_secs(10), || async {
        rpo_metric(&operator, &policy)
    })
    .await
    .expect("the RPO gauge");
    tokio::time::sleep(Duration::from_secs(5)).await;
    let second = rpo_metric(&operator, &policy).expect("the RPO gauge");
    eprintln!("RPO during the outage: {first:.1}s, then {second:.1}s");
    assert!(
        second >= first + 4.0,
        "the RPO grows while the target hangs: {first} then {second}"
    );
    assert!(
        second + 5.0 >= frozen_at.elapsed().as_secs_f64(),
        "the RPO ({second}s) is at least the outage so far ({:?}) less a few seconds",
        frozen_at.elapsed()
    );

    // A restart in the middle of the outage and of gone-before's grace period.
    let stopping = Instant::now();
    let stopped = operator.terminate(Duration::from_secs(30));
    let stop_took = stopping.elapsed();
    eprintln!("the operator stopped in {stop_took:?} (clean: {stopped})");
    assert!(
        stopped,
        "the operator did not stop within 30 s while the target hangs:\n{}",
        tail(&operator.logs())
    );
    operator = start_operator(&source, &lease, "operator-b");
    let after_restart = eventually("the restarted operator's RPO gauge", WAIT, || async {
        rpo_metric(&operator, &policy).filter(|rpo| *rpo > 0.0)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    let outage_so_far = frozen_at.elapsed().as_secs_f64();
    eprintln!("RPO after the restart: {after_restart:.1}s, {outage_so_far:.1}s into the outage");
    assert!(
        after_restart + 5.0 >= outage_so_far,
        "the restarted operator's RPO ({after_restart}s) forgot the outage ({outage_so_far:.0}s)"
    );
    let restarted_at = Instant::now();
    eventually(
        "the restarted operator finding the target hanging",
        DEGRADED_WITHIN,
        || async {
            let (_, body) = operator.get("/metrics")?;
            body.lines()
                .any(|l| {
                    l.starts_with("govdc_backup_errors_total{")
                        && l.contains(&format!("policy=\"{policy}\""))
                        && l.contains("reason=\"TargetUnreachable\"")
                })
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    eprintln!(
        "the restarted operator found the target hanging in {:?}",
        restarted_at.elapsed()
    );
    let degraded = wait_condition(
        &policies,
        &policy,
        &operator,
        ("Degraded", "True", "TargetUnreachable"),
        DEGRADED_WITHIN,
    )
    .await;
    assert!(
        degraded.message.contains("does not answer"),
        "{}",
        degraded.message
    );
    let rpo_status = policies
        .get(&policy)
        .await
        .expect("policy")
        .status
        .and_then(|s| s.measured_rpo_seconds);
    eprintln!("status.measuredRpoSeconds after the restart: {rpo_status:?}");

    // The target returns.
    let remaining = OUTAGE.saturating_sub(frozen_at.elapsed());
    tokio::time::sleep(remaining).await;
    drop(frozen);
    let thawed_at = Instant::now();
    eprintln!("outage lasted {:?}", frozen_at.elapsed());
    // A resumed API server works off what queued up meanwhile before it answers a new request.
    let answering = tokio::task::spawn_blocking(move || {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if answers(address) {
                return true;
            }
        }
        false
    })
    .await
    .expect("probing the standby");
    assert!(answering, "the standby answers again within 20 s");
    assert!(
        jiff::Timestamp::now() < due,
        "the test's timeline: gone-before's grace period must still run when the target returns"
    );
    let listing = copies(&dr, &mapped).await.expect("the standby's copies");
    assert!(
        listing.iter().any(|(name, _, _)| name == "gone-before"),
        "gone-before's copy was deleted before its grace period ended"
    );

    // Catching up: every change arrives.
    let expected = |name: &str| -> Option<Value> {
        if let Some(i) = name
            .strip_prefix("keep-")
            .and_then(|i| i.parse::<usize>().ok())
        {
            return Some(json!({"v": if i < EDITED { "2" } else { "1" }}));
        }
        name.starts_with("backlog-").then(|| json!({"v": "outage"}))
    };
    let caught_up = eventually(
        "every change of the outage on the standby",
        WAIT,
        || async {
            let listing = copies(&dr, &mapped).await?;
            let matching = listing
                .iter()
                .filter(|(name, data, _)| expected(name).as_ref() == Some(data))
                .count();
            (matching == INITIAL + BACKLOG).then_some(listing)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    let catch_up = thawed_at.elapsed();
    eprintln!("caught up {catch_up:?} after the target returned");
    let ready = wait_condition(
        &policies,
        &policy,
        &operator,
        ("Ready", "True", "Replicating"),
        WAIT,
    )
    .await;
    let ready_after = thawed_at.elapsed();
    eprintln!(
        "Ready again {ready_after:?} after the target returned: {}",
        ready.message
    );
    wait_condition(
        &policies,
        &policy,
        &operator,
        ("Degraded", "False", "AsExpected"),
        WAIT,
    )
    .await;
    let rpo = eventually(
        "the RPO back under the objective",
        Duration::from_secs(20),
        || async { rpo_metric(&operator, &policy).filter(|rpo| *rpo < 2.0) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    eprintln!("RPO after catching up: {rpo}s");

    // Object by object: everything on the source is on the standby as it is there; the copies of
    // what was deleted during the outage are marked, not gone (their grace period began when the
    // target could first be told).
    let source_objects = copies_on_source(&source.client, &namespace).await;
    for (name, data) in &source_objects {
        let copy = caught_up.iter().find(|(n, _, _)| n == name);
        assert!(
            copy.is_some_and(|(_, d, mark)| d == data && mark.is_none()),
            "ConfigMap {name}: the source holds {data}, the standby {copy:?}"
        );
    }
    let listing = eventually(
        "the outage's deletions marked",
        Duration::from_secs(20),
        || async {
            let listing = copies(&dr, &mapped).await?;
            (EDITED..EDITED + DELETED)
                .all(|i| {
                    listing
                        .iter()
                        .any(|(n, _, mark)| *n == format!("keep-{i:03}") && mark.is_some())
                })
                .then_some(listing)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    // Each grace period counts from a mark made after its source was deleted.
    let marks: Vec<(String, jiff::Timestamp)> = listing
        .iter()
        .filter_map(|(name, _, mark)| Some((name.clone(), mark.as_ref()?.parse().ok()?)))
        .collect();
    for (name, mark) in marks.iter().filter(|(name, _)| name != "gone-before") {
        assert!(
            *mark >= deleted_during,
            "{name}'s deletion mark {mark} predates its deletion at {deleted_during}"
        );
    }
    for (name, _, _) in &listing {
        let on_source = source_objects.iter().any(|(n, _)| n == name);
        let deleted_in_outage = (EDITED..EDITED + DELETED).any(|i| *name == format!("keep-{i:03}"));
        assert!(
            on_source || deleted_in_outage || name == "gone-before",
            "the standby holds {name}, which nothing explains"
        );
    }

    // The watches are not stuck: a change now arrives within seconds.
    let edited = Instant::now();
    apply_config_map(&source.client, &namespace, "keep-000", json!({"v": "3"})).await;
    eventually(
        "an edit after the outage",
        Duration::from_secs(10),
        || async {
            let listing = copies(&dr, &mapped).await?;
            listing
                .iter()
                .any(|(n, d, _)| n == "keep-000" && *d == json!({"v": "3"}))
                .then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    eprintln!(
        "an edit after the outage replicated in {:?}",
        edited.elapsed()
    );

    // gone-before goes once its grace period, counted from its mark, has passed — not before.
    let wait = due
        .duration_since(jiff::Timestamp::now())
        .unsigned_abs()
        .saturating_add(Duration::from_secs(30));
    eventually(
        "gone-before deleted after its grace period",
        wait,
        || async {
            let listing = copies(&dr, &mapped).await?;
            let present = listing.iter().any(|(n, _, _)| n == "gone-before");
            assert!(
                present || jiff::Timestamp::now() >= due,
                "gone-before's copy was deleted at {}, before its grace period ended at {due}",
                jiff::Timestamp::now()
            );
            (!present).then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", tail(&operator.logs())));
    let late = jiff::Timestamp::now().duration_since(due);
    eprintln!("gone-before deleted {late:?} after its grace period ended");
    let listing = copies(&dr, &mapped).await.expect("copies");
    let now = jiff::Timestamp::now();
    for (name, mark) in marks.iter().filter(|(name, _)| name != "gone-before") {
        let due = *mark + jiff::SignedDuration::try_from(GRACE).expect("grace");
        assert!(
            listing.iter().any(|(n, _, _)| n == name) || now >= due,
            "{name}'s copy was deleted before its grace period ended at {due}"
        );
    }
    eprintln!(
        "figures: Degraded after {time_to_degraded:?}; RPO {first:.1}s..{second:.1}s during the outage, {after_restart:.1}s after the restart; caught up {catch_up:?} and Ready {ready_after:?} after the target returned; the operator stopped in {stop_took:?}"
    );
    assert!(
        operator.is_running(),
        "the operator exited:\n{}",
        tail(&operator.logs())
    );
}

/// The source's ConfigMaps of the namespace the test made (the API server's own
/// `kube-root-ca.crt` is never replicated).
async fn copies_on_source(client: &Client, namespace: &str) -> Vec<(String, Value)> {
    Api::<ConfigMap>::namespaced(client.clone(), namespace)
        .list(&ListParams::default())
        .await
        .expect("source ConfigMaps")
        .items
        .into_iter()
        .filter(|c| c.metadata.name.as_deref() != Some("kube-root-ca.crt"))
        .map(|c| {
            (
                c.metadata.name.clone().unwrap_or_default(),
                serde_json::to_value(c.data.unwrap_or_default()).unwrap_or(Value::Null),
            )
        })
        .collect()
}
