//! Real nodes: a local cluster started with `govdc-cluster up NAME --nodes 1` runs pods (kubelet,
//! containerd and runc), routes a ClusterIP Service (kube-proxy, nftables), answers cluster DNS
//! (CoreDNS), enforces NetworkPolicy (kube-router's controller), and `down` leaves nothing on the
//! machine: no process, mount, cgroup, network namespace or firewall rule. The cluster is this
//! test's own (`nodes-test`); the shared clusters have no nodes.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use govdc_test_support::{TestEnv, eventually, govdc_cluster_bin, repo_root};
use k8s_openapi::api::core::v1::{Node, Pod, Service};
use kube::Api;
use kube::api::PostParams;
use serde_json::json;

const CLUSTER: &str = "nodes-test";
const BUSYBOX: &str = "govdc/busybox:1.35.0";
const WAIT: Duration = Duration::from_secs(120);

/// The cluster's directory, as the launcher names it in its processes' command lines.
fn cluster_dir() -> PathBuf {
    let root = repo_root();
    root.canonicalize()
        .unwrap_or(root)
        .join("target/clusters")
        .join(CLUSTER)
}

fn govdc_cluster(args: &[&str]) -> std::process::Output {
    Command::new(govdc_cluster_bin())
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("running govdc-cluster {args:?}: {e}"))
}

fn text(output: &std::process::Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// What a cluster with nodes could leave on the machine outside its own directory.
#[derive(Debug, PartialEq)]
struct MachineState {
    nft_ruleset: String,
    iptables_rules: String,
    ipsets: String,
    netns: BTreeSet<String>,
    cni_cache: BTreeSet<String>,
    shim_socket_dirs: BTreeSet<String>,
}

fn command_output(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        text(&output)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn dir_entries(dir: &str) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// The shim socket directory of the cluster's node 0, named as the launcher names it (the first
/// 6 bytes of the sha256 of the node's directory, hex).
fn shim_socket_dir() -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(cluster_dir().join("nodes/n0").to_string_lossy().as_bytes());
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// The pod sandboxes of this cluster in libcni's cache (`govdc-CLUSTER-n0-<sandbox>-eth0`).
fn cached_sandboxes() -> BTreeSet<String> {
    let prefix = format!("govdc-{CLUSTER}-n0-");
    dir_entries("/var/lib/cni/results")
        .into_iter()
        .filter_map(|e| Some(e.strip_prefix(&prefix)?.strip_suffix("-eth0")?.to_owned()))
        .collect()
}

impl MachineState {
    /// The machine's firewall (only clusters' own namespaces hold rules), and of the shared
    /// directories what this cluster could leave: its network namespaces, libcni's cache entries of
    /// its network and of the loopback of `sandboxes`, its shim socket directory. Other clusters
    /// with nodes (other engineers' tests) may come and go meanwhile, so theirs are left out.
    fn capture(sandboxes: &BTreeSet<String>) -> MachineState {
        let ours = format!("govdc-{CLUSTER}");
        let shim = shim_socket_dir();
        MachineState {
            nft_ruleset: command_output("nft", &["list", "ruleset"]),
            iptables_rules: command_output("iptables", &["-S"]),
            ipsets: command_output("ipset", &["list", "-n"]),
            netns: dir_entries("/run/netns")
                .into_iter()
                .filter(|n| n == &ours || n.starts_with(&format!("{ours}-n")))
                .collect(),
            cni_cache: dir_entries("/var/lib/cni/results")
                .into_iter()
                .filter(|e| {
                    e.starts_with(&format!("{ours}-n"))
                        || sandboxes
                            .iter()
                            .any(|s| *e == format!("cni-loopback-{s}-lo"))
                })
                .collect(),
            shim_socket_dirs: dir_entries("/run/govdc")
                .into_iter()
                .filter(|d| *d == shim)
                .collect(),
        }
    }
}

/// The pids in the cgroups of the cluster's node 0 (its pods' processes).
fn pod_pids() -> Vec<u32> {
    fn walk(dir: &Path, pids: &mut Vec<u32>) {
        if let Ok(procs) = std::fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(
                procs
                    .split_whitespace()
                    .filter_map(|p| p.parse::<u32>().ok()),
            );
        }
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                walk(&entry.path(), pids);
            }
        }
    }
    let mut pids = Vec::new();
    walk(
        &Path::new("/sys/fs/cgroup/pids").join(format!("govdc-{CLUSTER}-n0")),
        &mut pids,
    );
    pids
}

/// Whether pid runs (a zombie waiting for its reaper does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// Processes whose command line names the cluster's directory (daemons, shims).
fn processes_naming(dir: &Path) -> Vec<(u32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
            if cmdline.contains(&needle) && pid != std::process::id() {
                found.push((pid, cmdline));
            }
        }
    }
    found
}

/// The resident memory of the cluster: its daemons and its pods' processes, in MiB.
fn cluster_rss_mib() -> f64 {
    let mut pids: BTreeSet<u32> = processes_naming(&cluster_dir())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    pids.extend(pod_pids());
    let kib: u64 = pids
        .iter()
        .filter_map(|pid| std::fs::read_to_string(format!("/proc/{pid}/status")).ok())
        .filter_map(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .sum();
    kib as f64 / 1024.0
}

fn pod(namespace: &str, name: &str, labels: serde_json::Value, command: &[&str]) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "Never", "command": command,
                "securityContext": {
                    "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
                    "seccompProfile": {"type": "RuntimeDefault"}
                }
            }]
        }
    }))
    .expect("pod fixture deserializes")
}

async fn wait_running(pods: &Api<Pod>, name: &str) -> Pod {
    eventually(&format!("pod {name} Running"), WAIT, || async {
        pods.get(name)
            .await
            .ok()
            .filter(|p| p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running"))
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"))
}

/// An HTTP GET of http://addr/ from inside a pod, with busybox nc (its wget crashes in Debian's
/// static build); returns what came back, errors included.
fn http_from(env: &TestEnv, namespace: &str, pod: &str, addr: &str, port: u16) -> String {
    http_get_from(env, namespace, pod, addr, port, "/")
}

/// As [`http_from`], for `path`.
fn http_get_from(
    env: &TestEnv,
    namespace: &str,
    pod: &str,
    addr: &str,
    port: u16,
    path: &str,
) -> String {
    let script = format!("printf 'GET {path} HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {addr} {port} 2>&1");
    text(&env.kubectl(&["exec", "-n", namespace, pod, "--", "sh", "-c", &script]))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cluster_with_a_node_runs_pods_services_dns_and_policies_and_down_leaves_nothing() {
    // This test's own cluster: a leftover of an interrupted run is removed for a cold start.
    if cluster_dir().exists() {
        let output = govdc_cluster(&["down", CLUSTER, "--purge"]);
        assert!(output.status.success(), "down --purge: {}", text(&output));
    }
    govdc_test_support::ensure_nodes_built();
    let before = MachineState::capture(&BTreeSet::new());

    let started = Instant::now();
    let env = TestEnv::with_nodes(CLUSTER, 1, "nodes").await;
    let up_seconds = started.elapsed().as_secs_f64();
    let nodes: Api<Node> = Api::all(env.client.clone());
    let node_list = nodes.list(&Default::default()).await.expect("nodes list");
    assert_eq!(node_list.items.len(), 1, "one node");
    let ready = node_list.items[0]
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.status.clone());
    assert_eq!(
        ready.as_deref(),
        Some("True"),
        "the node is Ready when up returns"
    );

    let a = env.namespace("a").await;
    let b = env.namespace("b").await;
    let pods_a: Api<Pod> = Api::namespaced(env.client.clone(), &a);
    let pods_b: Api<Pod> = Api::namespaced(env.client.clone(), &b);
    let params = PostParams::default();
    let serve = [
        "sh",
        "-c",
        "mkdir -p /tmp/www && echo hello-from-a > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www",
    ];
    let mut web = pod(&a, "web", json!({"app": "web"}), &serve);
    // httpd writes under /tmp: an emptyDir there, the root file system stays read-only.
    web.spec.as_mut().expect("spec").volumes = Some(vec![
        serde_json::from_value(json!({"name": "tmp", "emptyDir": {}})).expect("volume"),
    ]);
    web.spec.as_mut().expect("spec").containers[0].volume_mounts = Some(vec![
        serde_json::from_value(json!({"name": "tmp", "mountPath": "/tmp"})).expect("mount"),
    ]);
    pods_a.create(&params, &web).await.expect("create web");
    let sleeper = ["sleep", "3600"];
    pods_a
        .create(
            &params,
            &pod(&a, "client", json!({"app": "client"}), &sleeper),
        )
        .await
        .expect("create client in a");
    pods_b
        .create(
            &params,
            &pod(&b, "client", json!({"app": "client"}), &sleeper),
        )
        .await
        .expect("create client in b");
    let service: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": a},
        "spec": {"selector": {"app": "web"}, "ports": [{"port": 80, "targetPort": 8080}]}
    }))
    .expect("service fixture");
    let service = Api::<Service>::namespaced(env.client.clone(), &a)
        .create(&params, &service)
        .await
        .expect("create service");
    let cluster_ip = service
        .spec
        .and_then(|s| s.cluster_ip)
        .expect("a ClusterIP was allocated");

    let pod_start = Instant::now();
    let web = wait_running(&pods_a, "web").await;
    wait_running(&pods_a, "client").await;
    wait_running(&pods_b, "client").await;
    let pods_seconds = pod_start.elapsed().as_secs_f64();
    let web_ip = web.status.and_then(|s| s.pod_ip).expect("web has a pod IP");
    assert!(
        web_ip.starts_with("10.244.0."),
        "pod IP {web_ip} from node 0's subnet"
    );

    // A DNS name: the Service's, resolved by CoreDNS through the kube-dns ClusterIP.
    let name = format!("web.{a}.svc.cluster.local");
    let lookup = eventually(
        "the Service's DNS name",
        Duration::from_secs(30),
        || async {
            let out = text(&env.kubectl(&["exec", "-n", &b, "client", "--", "nslookup", &name]));
            out.contains(&cluster_ip).then_some(out)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        lookup.contains("10.0.0.10"),
        "asked the cluster DNS Service: {lookup}"
    );
    let outside =
        text(&env.kubectl(&["exec", "-n", &b, "client", "--", "nslookup", "example.com"]));
    assert!(
        !outside.contains("Name:\texample.com") && !outside.contains("Address: 93."),
        "no name outside the cluster resolves: {outside}"
    );

    // The ClusterIP Service, from the other namespace, before any policy.
    let reply = eventually(
        "the ClusterIP Service answers",
        Duration::from_secs(30),
        || async {
            let out = http_from(&env, &b, "client", &cluster_ip, 80);
            out.contains("hello-from-a").then_some(out)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        reply.starts_with("HTTP/1.") && reply.contains("200 OK"),
        "{reply}"
    );

    // NetworkPolicy: a default-deny of ingress in a that admits a's own pods.
    let policy = json!({
        "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
        "metadata": {"name": "same-namespace-only", "namespace": a},
        "spec": {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": [{"from": [{"podSelector": {}}]}]}
    });
    let applied = env.kubectl_with_input(&["apply", "-f", "-"], &policy.to_string());
    assert!(
        applied.status.success(),
        "applying the policy: {}",
        text(&applied)
    );
    let refused = eventually(
        "b refused by a's policy",
        Duration::from_secs(60),
        || async {
            let out = http_from(&env, &b, "client", &cluster_ip, 80);
            (!out.contains("hello-from-a")).then_some(out)
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(
        refused.contains("Connection refused") || refused.contains("timed out"),
        "{refused}"
    );
    let direct = http_from(&env, &b, "client", &web_ip, 8080);
    assert!(
        !direct.contains("hello-from-a"),
        "b reached the pod IP past the policy: {direct}"
    );
    let same = http_from(&env, &a, "client", &cluster_ip, 80);
    assert!(
        same.contains("hello-from-a"),
        "a's own pod was refused: {same}"
    );
    let same_direct = http_from(&env, &a, "client", &web_ip, 8080);
    assert!(
        same_direct.contains("hello-from-a"),
        "a's own pod, to the pod IP: {same_direct}"
    );

    // A pod whose image no node has says so instead of hanging.
    let mut absent = pod(&a, "absent", json!({}), &sleeper);
    absent.spec.as_mut().expect("spec").containers[0].image = Some("govdc/absent:1".into());
    pods_a
        .create(&params, &absent)
        .await
        .expect("create absent");
    eventually(
        "ErrImageNeverPull on the pod",
        Duration::from_secs(60),
        || async {
            let pod = pods_a.get("absent").await.ok()?;
            let reason = pod
                .status?
                .container_statuses?
                .first()?
                .state
                .as_ref()?
                .waiting
                .as_ref()?
                .reason
                .clone()?;
            (reason == "ErrImageNeverPull").then_some(())
        },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));

    // The project's hub image, as deploy/image/build-oci.sh packs it, loaded with `load` and run
    // as a restricted pod to Ready (its gRPC readiness probe), its health reached from a pod.
    let hub_seconds = run_hub_pod(&env, &a).await;

    let rss = cluster_rss_mib();
    eprintln!(
        "figures: up --nodes 1 from nothing to a Ready node and DNS {up_seconds:.1}s; three pods Running in {pods_seconds:.1}s; hub pod from apply to Ready {hub_seconds:.1}s; cluster memory (daemons and pods, RSS) {rss:.0} MiB"
    );

    // down leaves nothing behind.
    let pods_before = pod_pids();
    assert!(
        !pods_before.is_empty(),
        "the pods' processes are in node 0's cgroups"
    );
    let daemons: Vec<u32> = processes_naming(&cluster_dir())
        .into_iter()
        .map(|(p, _)| p)
        .collect();
    assert!(
        daemons.len() >= 8,
        "the cluster's daemons and shims name its directory: {daemons:?}"
    );
    // What the check after down looks for is there while the cluster runs.
    let sandboxes = cached_sandboxes();
    assert!(!sandboxes.is_empty(), "libcni caches the pods' attachments");
    let running_state = MachineState::capture(&sandboxes);
    assert!(
        running_state.netns.len() == 2
            && running_state.shim_socket_dirs.len() == 1
            && running_state.cni_cache.len() >= 2 * sandboxes.len(),
        "the cluster's namespaces, shim directory and CNI cache while it runs: {running_state:?}"
    );
    drop(env);
    let down_start = Instant::now();
    let output = govdc_cluster(&["down", CLUSTER]);
    assert!(output.status.success(), "down: {}", text(&output));
    eprintln!(
        "figures: down {:.1}s\n{}",
        down_start.elapsed().as_secs_f64(),
        text(&output)
    );

    let alive: Vec<u32> = pods_before
        .iter()
        .chain(&daemons)
        .copied()
        .filter(|p| running(*p))
        .collect();
    assert!(alive.is_empty(), "processes survive down: {alive:?}");
    let left = processes_naming(&cluster_dir());
    assert!(
        left.is_empty(),
        "processes naming the cluster survive down: {left:?}"
    );
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").expect("mountinfo");
    let dir = cluster_dir();
    let mounts: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.contains(dir.to_string_lossy().as_ref()))
        .collect();
    assert!(mounts.is_empty(), "mounts survive down: {mounts:?}");
    let cgroups: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup mount")
        .flatten()
        .map(|h| h.path().join(format!("govdc-{CLUSTER}-n0")))
        .filter(|p| p.exists())
        .map(|p| p.display().to_string())
        .collect();
    assert!(cgroups.is_empty(), "cgroups survive down: {cgroups:?}");
    let after = MachineState::capture(&sandboxes);
    assert_eq!(
        after, before,
        "down left the machine's namespaces, firewall or caches changed"
    );
    let links: Vec<String> = std::fs::read_dir("/var/log/containers")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|l| std::fs::read_link(l.path()).ok())
        .filter(|t| t.starts_with(&dir))
        .map(|t| t.display().to_string())
        .collect();
    assert!(
        links.is_empty(),
        "container log links survive down: {links:?}"
    );
    let output = govdc_cluster(&["down", CLUSTER, "--purge"]);
    assert!(output.status.success(), "down --purge: {}", text(&output));
}

/// Packs the hub's debug build with build-oci.sh, loads it, runs it as a pod in `namespace` and
/// returns the seconds from apply to Ready.
async fn run_hub_pod(env: &TestEnv, namespace: &str) -> f64 {
    let tag = "nodes-test";
    let script = repo_root().join("deploy/image/build-oci.sh");
    let built = Command::new("bash")
        .arg(&script)
        .args(["hub", tag])
        .env("GOVDC_OCI_BINARY", govdc_test_support::hub::hub_bin())
        .output()
        .expect("running build-oci.sh");
    assert!(built.status.success(), "build-oci.sh hub: {}", text(&built));
    let archive = repo_root().join(format!("target/images/govdc-hub-{tag}.oci.tar"));
    let loaded = govdc_cluster(&["load", CLUSTER, &archive.to_string_lossy()]);
    assert!(loaded.status.success(), "load: {}", text(&loaded));

    let config = "name: national\nlevel: national\nnetwork: extranet\nregionCode: \"100000\"\n\
        listen: 0.0.0.0:50051\nmetricsListen: 0.0.0.0:9090\ndataDir: /var/lib/govdc-hub\n\
        authKeyFile: /var/run/govdc-hub/key/key\nauditAlgorithm: sm3\nmonitorListen: 0.0.0.0:8081\n";
    let objects = json!({"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "hub", "namespace": namespace},
         "data": {"config.yaml": config}},
        {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hub-key", "namespace": namespace},
         "stringData": {"key": "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"}},
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "hub", "namespace": namespace, "labels": {"app": "hub"}},
         "spec": {
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "runAsGroup": 65532,
                "fsGroup": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "hub", "image": format!("govdc/govdc-hub:{tag}"), "imagePullPolicy": "IfNotPresent",
                "args": ["serve", "--config", "/etc/govdc-hub/config.yaml"],
                "ports": [{"name": "grpc", "containerPort": 50051}, {"name": "metrics", "containerPort": 9090}],
                "readinessProbe": {"grpc": {"port": 50051}, "periodSeconds": 2},
                "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                    "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": [
                    {"name": "config", "mountPath": "/etc/govdc-hub", "readOnly": true},
                    {"name": "key", "mountPath": "/var/run/govdc-hub/key", "readOnly": true},
                    {"name": "data", "mountPath": "/var/lib/govdc-hub"},
                    {"name": "tmp", "mountPath": "/tmp"}]
            }],
            "volumes": [
                {"name": "config", "configMap": {"name": "hub"}},
                {"name": "key", "secret": {"secretName": "hub-key", "defaultMode": 0o400}},
                {"name": "data", "emptyDir": {}}, {"name": "tmp", "emptyDir": {}}]
         }}
    ]});
    let started = Instant::now();
    let applied = env.kubectl_with_input(&["apply", "-f", "-"], &objects.to_string());
    assert!(
        applied.status.success(),
        "applying the hub: {}",
        text(&applied)
    );
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
    let hub = eventually("the hub pod Ready", WAIT, || async {
        let pod = pods.get("hub").await.ok()?;
        let ready = pod
            .status
            .as_ref()?
            .conditions
            .as_ref()?
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True");
        ready.then_some(pod)
    })
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let seconds = started.elapsed().as_secs_f64();
    let hub_ip = hub
        .status
        .and_then(|s| s.pod_ip)
        .expect("the hub has a pod IP");
    // Ready is the kubelet's probe from the node; a pod's first request can still race the
    // network policy controller adding the new pod to its sets, so it is tried for a while.
    let mut health = String::new();
    let answered = eventually(
        "the hub's /healthz from a pod",
        Duration::from_secs(30),
        || {
            health = http_get_from(env, namespace, "client", &hub_ip, 9090, "/healthz");
            let ok = health.contains("200 OK");
            async move { ok.then_some(()) }
        },
    )
    .await;
    assert!(
        answered.is_ok(),
        "the hub's /healthz from a pod: {health:?}"
    );
    seconds
}

#[test]
fn up_with_nodes_on_a_machine_without_a_prerequisite_fails_at_once_naming_it() {
    govdc_test_support::ensure_nodes_built();
    let name = "nodes-missing";
    let started = Instant::now();
    // Without PATH, every command the nodes need is missing.
    let output = Command::new(govdc_cluster_bin())
        .args(["up", name, "--nodes", "1"])
        .env("PATH", "/nonexistent")
        .current_dir(repo_root())
        .output()
        .expect("running govdc-cluster");
    let out = text(&output);
    assert!(
        !output.status.success(),
        "up succeeded without its prerequisites: {out}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
    for want in [
        "nft (apt-get install nftables)",
        "ipset (apt-get install ipset)",
        "conntrack (apt-get install conntrack)",
        "ip (apt-get install iproute2)",
    ] {
        assert!(out.contains(want), "the error does not name {want}: {out}");
    }
    assert!(
        !repo_root().join("target/clusters").join(name).exists(),
        "up made the cluster's directory before refusing"
    );
    assert!(
        !Path::new("/run/netns")
            .join(format!("govdc-{name}"))
            .exists()
    );
}
