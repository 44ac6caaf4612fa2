//! govdc the way users run it: `helm install` of `charts/govdc` on a cluster with a real node
//! (`govdc-cluster up incluster --nodes 1`), the operator and hub images as
//! `deploy/image/build-oci.sh` packs them, loaded with `govdc-cluster load`. The operator runs as
//! the chart's two pods with in-cluster configuration, its probes pass and one replica leads
//! through the Lease; ExchangeNodes become StatefulSet pods of the hub image on volumes of the
//! cluster's default StorageClass, reached by their Service's DNS name (no `--hub-endpoint`); the
//! provincial hub federates with the national one pod to pod; a hub's data survives deleting its
//! pod; deleting and killing the leader pod hands the lease to the other replica, which
//! reconciles. The cluster is this test's own (`incluster`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use govdc_crds::ExchangeNode;
use govdc_hub_api::auth::BearerToken;
use govdc_hub_api::v1::ListAuditRecordsRequest;
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_test_support::{
    TestEnv, eventually, free_port, govdc_cluster_bin, helm_bin, output_text, repo_root,
};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const CLUSTER: &str = "incluster";
const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
/// The images' tag: this test's own, so that nothing else's archive is taken for it.
const TAG: &str = "incluster";
const RELEASE: &str = "govdc";
const WAIT: Duration = Duration::from_secs(120);

fn govdc_cluster(args: &[&str]) -> std::process::Output {
    Command::new(govdc_cluster_bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running govdc-cluster {args:?}: {e}"))
}

fn cluster_dir() -> PathBuf {
    let root = repo_root();
    root.canonicalize()
        .unwrap_or(root)
        .join("target/clusters")
        .join(CLUSTER)
}

/// Packs `binary` as the `component` image with build-oci.sh; returns the archive.
fn pack(component: &str, binary: &Path) -> PathBuf {
    let built = Command::new("bash")
        .arg(repo_root().join("deploy/image/build-oci.sh"))
        .args([component, TAG])
        .env("GOVDC_OCI_BINARY", binary)
        .output()
        .expect("running build-oci.sh");
    assert!(
        built.status.success(),
        "build-oci.sh {component}: {}",
        output_text(&built)
    );
    repo_root().join(format!("target/images/govdc-{component}-{TAG}.oci.tar"))
}

fn ready(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .status
            .as_ref()
            .and_then(|s| s.conditions.as_ref())
            .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

async fn holder(leases: &Api<Lease>) -> Option<String> {
    leases.get_opt(RELEASE).await.ok()??.spec?.holder_identity
}

/// The operator pods that are Ready, by name.
async fn ready_operators(pods: &Api<Pod>) -> BTreeSet<String> {
    pods.list(&ListParams::default().labels("app.kubernetes.io/name=govdc-operator"))
        .await
        .map(|l| {
            l.items
                .iter()
                .filter(|p| ready(p))
                .map(|p| p.name_any())
                .collect()
        })
        .unwrap_or_default()
}

/// The processes of the pod with `uid` on node 0 (every container and its sandbox), from the
/// node's cgroups.
fn pod_processes(uid: &str) -> Vec<u32> {
    fn walk(dir: &Path, inside: bool, uid: &str, pids: &mut Vec<u32>) {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().replace('_', "-"))
            .unwrap_or_default();
        let inside = inside || name == format!("pod{uid}");
        if inside && let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(
                procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), inside, uid, pids);
            }
        }
    }
    let mut pids = Vec::new();
    walk(
        &Path::new("/sys/fs/cgroup/pids").join(format!("govdc-{CLUSTER}-n0")),
        false,
        uid,
        &mut pids,
    );
    pids
}

/// `kubectl port-forward` to a pod's port, on a free 127.0.0.1 port; killed when dropped.
struct PortForward {
    child: Child,
    port: u16,
}

impl PortForward {
    async fn start(env: &TestEnv, namespace: &str, pod: &str, remote: u16) -> PortForward {
        let port = free_port();
        let child = Command::new(govdc_test_support::kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&env.kubeconfig)
            .args(["-n", namespace, "port-forward", "--address", "127.0.0.1"])
            .arg(format!("pod/{pod}"))
            .arg(format!("{port}:{remote}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting kubectl port-forward");
        let forward = PortForward { child, port };
        eventually(
            "the port-forward listening",
            Duration::from_secs(20),
            || async {
                std::net::TcpStream::connect(("127.0.0.1", port))
                    .ok()
                    .map(|_| ())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        forward
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The hub's audit chain (seq and hash of each record), read over gRPC through a port-forward
/// with an admin token of the node's own key.
async fn audit_chain(env: &TestEnv, namespace: &str, node: &str) -> Vec<(i64, String)> {
    let secrets: Api<Secret> = Api::namespaced(env.client.clone(), namespace);
    let secret = secrets
        .get(&format!("{node}-hub-key"))
        .await
        .expect("the hub's key Secret");
    let key = secret
        .data
        .and_then(|d| d.get("key").cloned())
        .expect("the Secret's key");
    let dir = repo_root().join("target/test-logs");
    std::fs::create_dir_all(&dir).expect("test-logs dir");
    let key_file = dir.join(format!("{}-{node}.key", env.prefix));
    std::fs::write(&key_file, &key.0).expect("writing the key");
    let token = govdc_test_support::hub::issue_token(
        &govdc_test_support::hub::hub_bin(),
        &key_file,
        node,
        "admin",
        "in-cluster-test",
        "10m",
    )
    .expect("an admin token");
    let _ = std::fs::remove_file(&key_file);
    let forward = PortForward::start(env, namespace, &format!("{node}-hub-0"), 50051).await;
    let channel =
        tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{}", forward.port))
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(10))
            .connect()
            .await
            .expect("connecting to the hub through the port-forward");
    let mut audit =
        AuditClient::with_interceptor(channel, BearerToken::new(&token).expect("bearer token"));
    audit
        .list_audit_records(ListAuditRecordsRequest {
            after_seq: 0,
            limit: 1000,
        })
        .await
        .expect("ListAuditRecords")
        .into_inner()
        .records
        .into_iter()
        .map(|r| (r.seq, r.hash))
        .collect()
}

fn exchange_node(namespace: &str, name: &str, spec: serde_json::Value, env: &TestEnv) -> String {
    json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": name, "namespace": namespace, "labels": env.labels()},
        "spec": spec,
    })
    .to_string()
}

async fn wait_pod_ready(pods: &Api<Pod>, name: &str, not_uid: Option<&str>) -> Pod {
    eventually(&format!("pod {name} Ready"), WAIT, || async {
        pods.get_opt(name)
            .await
            .ok()
            .flatten()
            .filter(|p| ready(p) && p.metadata.uid.as_deref() != not_uid)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_runs_the_operator_in_the_cluster_and_its_hubs_as_pods() {
    // This test's own cluster, from nothing: a leftover release of an interrupted run would make
    // `helm install` fail.
    if cluster_dir().exists() {
        let output = govdc_cluster(&["down", CLUSTER, "--purge"]);
        assert!(
            output.status.success(),
            "down --purge: {}",
            output_text(&output)
        );
    }
    let env = TestEnv::with_nodes(CLUSTER, 1, "incluster").await;

    let packed = Instant::now();
    let operator_image = pack("operator", Path::new(OPERATOR));
    let hub_image = pack("hub", &govdc_test_support::hub::hub_bin());
    let loaded = govdc_cluster(&[
        "load",
        CLUSTER,
        &operator_image.to_string_lossy(),
        &hub_image.to_string_lossy(),
    ]);
    assert!(loaded.status.success(), "load: {}", output_text(&loaded));
    let pack_seconds = packed.elapsed().as_secs_f64();

    // The chart binds the operator in the hub namespace, so it comes first.
    let system = env.namespace("system").await;
    let hubs = env.namespace("hubs").await;
    let installed = Instant::now();
    let output = Command::new(helm_bin())
        .args(["install", RELEASE])
        .arg(repo_root().join("charts/govdc"))
        .arg("--kubeconfig")
        .arg(&env.kubeconfig)
        .args(["--namespace", &system])
        .args(["--set", &format!("image.tag={TAG}")])
        .args(["--set", &format!("hub.image.tag={TAG}")])
        .args(["--set", &format!("hubNamespaces={{{hubs}}}")])
        .args(["--wait", "--timeout", "180s"])
        .output()
        .expect("running helm");
    assert!(
        output.status.success(),
        "helm install: {}",
        output_text(&output)
    );

    // Two replicas Ready (their /readyz and /livez probes pass), one leading, as the chart's pods
    // with in-cluster configuration: the chart passes no kubeconfig, and the Lease holder is a
    // pod's name.
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), &system);
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), &system);
    let operators = eventually("two operator pods Ready", WAIT, || async {
        let ready = ready_operators(&pods).await;
        (ready.len() == 2).then_some(ready)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let leader = eventually("a leader", WAIT, || async {
        holder(&leases).await.filter(|h| operators.contains(h))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let install_seconds = installed.elapsed().as_secs_f64();
    let deployment = Api::<Deployment>::namespaced(env.client.clone(), &system)
        .get(RELEASE)
        .await
        .expect("the chart's Deployment");
    let container = &deployment
        .spec
        .as_ref()
        .expect("spec")
        .template
        .spec
        .as_ref()
        .expect("pod spec")
        .containers[0];
    assert_eq!(container.args.as_deref(), Some(&["run".to_owned()][..]));
    assert!(
        container.image.as_deref() == Some(&format!("govdc/govdc-operator:{TAG}")[..]),
        "{:?}",
        container.image
    );
    for probe in [&container.liveness_probe, &container.readiness_probe] {
        assert!(probe.is_some(), "the chart's operator has both probes");
    }
    let logs = output_text(&env.kubectl(&["-n", &system, "logs", &leader]));
    assert!(
        !logs.contains("\"level\":\"ERROR\""),
        "the leader logged errors: {logs}"
    );

    // The hubs: a national node and a provincial child, as the in-cluster operator makes them.
    let nodes: Api<ExchangeNode> = Api::namespaced(env.client.clone(), &hubs);
    let hub_pods: Api<Pod> = Api::namespaced(env.client.clone(), &hubs);
    let applied = Instant::now();
    for manifest in [
        exchange_node(
            &hubs,
            "national",
            json!({"level": "national", "regionCode": "100000", "networkZone": "extranet"}),
            &env,
        ),
        exchange_node(
            &hubs,
            "zhejiang",
            json!({"level": "provincial", "regionCode": "330000", "networkZone": "extranet",
                   "parent": {"nodeRef": {"name": "national"}}}),
            &env,
        ),
    ] {
        let out = env.kubectl_with_input(&["apply", "-f", "-"], &manifest);
        assert!(
            out.status.success(),
            "applying an ExchangeNode: {}",
            output_text(&out)
        );
    }
    let national_pod = wait_pod_ready(&hub_pods, "national-hub-0", None).await;
    let hub_ready_seconds = applied.elapsed().as_secs_f64();
    wait_pod_ready(&hub_pods, "zhejiang-hub-0", None).await;
    let image = national_pod.spec.as_ref().expect("spec").containers[0]
        .image
        .clone();
    assert_eq!(
        image.as_deref(),
        Some(&format!("govdc/govdc-hub:{TAG}")[..])
    );

    // Each hub's data lives on a claim of the default StorageClass, bound by the provisioner.
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(env.client.clone(), &hubs);
    for claim in ["data-national-hub-0", "data-zhejiang-hub-0"] {
        let claim = claims.get(claim).await.expect("the hub's claim");
        assert_eq!(
            claim.status.as_ref().and_then(|s| s.phase.as_deref()),
            Some("Bound"),
            "{claim:?}"
        );
        assert_eq!(
            claim
                .spec
                .as_ref()
                .and_then(|s| s.storage_class_name.as_deref()),
            Some("standard")
        );
    }

    // The operator reached both hubs by their Service's DNS name, and the child federates with
    // its parent pod to pod.
    let parent_endpoint = format!("http://national-hub.{hubs}.svc:50051");
    let federated = eventually("zhejiang connected to national", WAIT, || async {
        let node = nodes.get("zhejiang").await.ok()?;
        let status = node.status?;
        (status.parent_connection.as_deref() == Some("Connected")).then_some(status)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let federated_seconds = applied.elapsed().as_secs_f64();
    assert_eq!(
        federated.endpoint.as_deref(),
        Some(&format!("http://zhejiang-hub.{hubs}.svc:50051")[..])
    );
    let connected = federated
        .conditions
        .iter()
        .find(|c| c.type_ == "ParentConnected")
        .expect("a ParentConnected condition");
    assert_eq!(connected.status, "True");
    assert!(
        connected.message.contains(&parent_endpoint),
        "{connected:?}"
    );
    let national = govdc_test_support::condition(&nodes, "national", "Ready", "True", WAIT)
        .await
        .unwrap_or_else(|e| panic!("{e:#}"));
    assert_eq!(national.reason, "HubServing");

    // A hub's data survives deleting its pod: the same audit chain, read from the new pod.
    let before = audit_chain(&env, &hubs, "national").await;
    assert!(!before.is_empty(), "the national hub has audit records");
    let old_uid = national_pod.metadata.uid.clone().unwrap_or_default();
    let out = env.kubectl(&[
        "-n",
        &hubs,
        "delete",
        "pod",
        "national-hub-0",
        "--wait=false",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let restarted = Instant::now();
    wait_pod_ready(&hub_pods, "national-hub-0", Some(&old_uid)).await;
    let hub_restart_seconds = restarted.elapsed().as_secs_f64();
    let after = audit_chain(&env, &hubs, "national").await;
    assert!(
        after.len() >= before.len() && after[..before.len()] == before[..],
        "the audit chain after the restart ({after:?}) does not begin with the one before ({before:?})"
    );

    // A node whose claim no volume can bind (a StorageClass that does not exist) says why its hub
    // does not answer: its pod is not scheduled.
    let manifest = exchange_node(
        &hubs,
        "nostorage",
        json!({"level": "national", "regionCode": "100000", "networkZone": "extranet",
               "storage": {"size": "1Gi", "storageClassName": "no-such-class"}}),
        &env,
    );
    let out = env.kubectl_with_input(&["apply", "-f", "-"], &manifest);
    assert!(
        out.status.success(),
        "applying an ExchangeNode: {}",
        output_text(&out)
    );
    let unbound = eventually(
        "nostorage saying its pod is not scheduled",
        WAIT,
        || async {
            let node = nodes.get("nostorage").await.ok()?;
            node.status?
                .conditions
                .into_iter()
                .find(|c| c.type_ == "Ready" && c.message.contains("not scheduled"))
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(unbound.status, "False");
    assert!(
        unbound.message.contains("nostorage-hub-0")
            && unbound.message.contains("PersistentVolumeClaims"),
        "{unbound:?}"
    );

    // Deleting the leader pod: it releases the lease on SIGTERM, the other replica takes over.
    let other = |leader: &str| {
        let leader = leader.to_owned();
        let pods = pods.clone();
        let leases = leases.clone();
        async move {
            eventually("another replica leading", WAIT, || async {
                let h = holder(&leases).await?;
                (h != leader && ready_operators(&pods).await.contains(&h)).then_some(h)
            })
            .await
            .unwrap_or_else(|e| panic!("{e}"))
        }
    };
    let deleted = Instant::now();
    let out = env.kubectl(&["-n", &system, "delete", "pod", &leader, "--wait=false"]);
    assert!(out.status.success(), "{}", output_text(&out));
    let second = other(&leader).await;
    let delete_takeover = deleted.elapsed().as_secs_f64();

    // Killing the leader pod (SIGKILL of every process in it, then the pod object removed, as a
    // node that dies would leave it): nothing releases the lease, the other replica takes it
    // when it expires.
    eventually("two operator pods Ready again", WAIT, || async {
        (ready_operators(&pods).await.len() == 2).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let second_pod = pods.get(&second).await.expect("the leader pod");
    let victims = pod_processes(second_pod.metadata.uid.as_deref().unwrap_or_default());
    assert!(
        !victims.is_empty(),
        "the leader pod's processes are in node 0's cgroups"
    );
    let killed = Instant::now();
    for pid in &victims {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    let out = env.kubectl(&[
        "-n",
        &system,
        "delete",
        "pod",
        &second,
        "--grace-period=0",
        "--force",
        "--wait=false",
    ]);
    assert!(out.status.success(), "{}", output_text(&out));
    let third = other(&second).await;
    let kill_takeover = killed.elapsed().as_secs_f64();

    // The new leader reconciles: a spec change is observed.
    let patch = json!({"spec": {"allowedDepartments": ["zj-data"]}});
    nodes
        .patch("zhejiang", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patching zhejiang");
    eventually("the new leader observing generation 2", WAIT, || async {
        let node = nodes.get("zhejiang").await.ok()?;
        (node.status?.observed_generation == Some(2)).then_some(())
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(holder(&leases).await.as_deref(), Some(third.as_str()));

    eprintln!(
        "figures: images packed and loaded {pack_seconds:.1}s; helm install to two Ready replicas and a leader {install_seconds:.1}s; \
         ExchangeNode apply to the hub pod Ready {hub_ready_seconds:.1}s, to the child federated {federated_seconds:.1}s; \
         hub pod deleted to its successor Ready {hub_restart_seconds:.1}s; leader takeover after deleting its pod {delete_takeover:.1}s, \
         after killing it {kill_takeover:.1}s (lease 15 s)"
    );

    drop(env);
    let output = govdc_cluster(&["down", CLUSTER]);
    assert!(output.status.success(), "down: {}", output_text(&output));
}
