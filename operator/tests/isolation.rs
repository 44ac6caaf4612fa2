//! What DepartmentClouds and ExchangeNodes promise at run time, proven with pod traffic on a
//! cluster with a real node (`isolation`, this file's own): the NetworkPolicies the operator
//! makes let a department's pods reach its other environment, its peers in and the exchange hub's
//! namespace in, and refuse every other department; an intranet tenant's pods reach nothing
//! outside the cluster; a hub pod's gRPC, sharing-monitor and metrics ports answer only the
//! namespaces its ExchangeNode's NetworkPolicy allows (allowed departments of its zone, the
//! operator's namespace, monitoring namespaces); and Pod Security admission refuses what a tenant's
//! protection level forbids. Then a BackupPolicy failover onto a second cluster with a node
//! (`isolation-dr`): the standby workloads scale up and their pods run there, under the tenant's
//! Pod Security level and NetworkPolicies as on the primary, and the state of the tenant's
//! ExchangeNode (a member, a catalog resource, the audit chain), made through the gRPC API of its
//! hub pod on the primary and exported by the operator, is what the hub pod the failover starts
//! on the DR cluster serves.
//!
//! Every refusal is checked beside an allowed request of the same kind to the same server, so a
//! deny never passes because nothing works.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use govdc_crds::{BackupPolicy, DepartmentCloud, ExchangeNode};
use govdc_test_support::fixtures;
use govdc_test_support::{
    OperatorProcess, TEST_LABEL, TestEnv, client_for, cluster_with_nodes_kubeconfig, eventually,
    free_port, govdc_cluster_bin, install_crds, output_text, repo_root, unique_prefix,
};
use k8s_openapi::api::apps::v1::{Deployment, StatefulSet};
use k8s_openapi::api::core::v1::{Namespace, PersistentVolume, Pod, Secret};
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use kube::{Api, Client};
use serde_json::{Value, json};

#[path = "isolation/hub_state.rs"]
mod hub_state;

const OPERATOR: &str = env!("CARGO_BIN_EXE_govdc-operator");
const CLUSTER: &str = "isolation";
const DR_CLUSTER: &str = "isolation-dr";
const BUSYBOX: &str = "govdc/busybox:1.35.0";
/// The hub image's tag in this test's clusters.
const HUB_TAG: &str = "isolation";
const WAIT: Duration = Duration::from_secs(120);
/// The web port every test pod serves (busybox httpd).
const WEB_PORT: u16 = 8080;
const GRPC_PORT: u16 = 50051;
const MONITOR_PORT: u16 = 8081;
const METRICS_PORT: u16 = 9090;
/// The cluster network namespace's address on its LAN (docs/controlplane.md, "Clusters with
/// nodes"): where the control plane lives, outside the pod network. Pods route to it (their
/// node's default route), so it stands for "an address outside the cluster".
const CLUSTER_LAN_ADDRESS: &str = "10.89.0.1";

/// A test's view of a nodes cluster; `up` runs once per cluster and binary (the two tests share
/// `isolation` and must not start it twice at once).
async fn nodes_env(cluster: &str, test: &str) -> TestEnv {
    static STARTED: Mutex<BTreeMap<String, PathBuf>> = Mutex::new(BTreeMap::new());
    let kubeconfig = {
        let mut started = STARTED.lock().unwrap_or_else(|p| p.into_inner());
        started
            .entry(cluster.to_owned())
            .or_insert_with(|| cluster_with_nodes_kubeconfig(cluster, 1))
            .clone()
    };
    let client = client_for(&kubeconfig)
        .await
        .unwrap_or_else(|e| panic!("client for {cluster}: {e:#}"));
    TestEnv {
        cluster: cluster.to_owned(),
        kubeconfig,
        client,
        prefix: unique_prefix(test),
    }
}

fn credit_code(n: u32) -> String {
    fixtures::credit_code(&format!("11330000MB00000{n}"))
}

async fn department(
    env: &TestEnv,
    name: &str,
    zone: &str,
    level: i32,
    environments: &[&str],
    peers: &[&str],
    n: u32,
) {
    let environments: Vec<Value> = environments.iter().map(|e| json!({"name": e})).collect();
    let cloud = fixtures::department_cloud(
        env,
        name,
        json!({
            "department": fixtures::department(&format!("{name} 局"), &credit_code(n)),
            "networkZone": zone, "protectionLevel": level, "environments": environments,
            "peerDepartments": peers,
        }),
    );
    Api::<DepartmentCloud>::all(env.client.clone())
        .create(&PostParams::default(), &cloud)
        .await
        .unwrap_or_else(|e| panic!("create DepartmentCloud {name}: {e}"));
}

/// A restricted busybox pod serving `hello-from-<namespace>` on [`WEB_PORT`]; tests exec `nc`
/// in it to act as a client.
fn web_pod(namespace: &str) -> Pod {
    let serve = format!(
        "mkdir -p /tmp/www && echo hello-from-{namespace} > /tmp/www/index.html && exec httpd -f -p {WEB_PORT} -h /tmp/www"
    );
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,
            "automountServiceAccountToken": false,
            "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                "command": ["sh", "-c", serve],
                "securityContext": {
                    "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
                    "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
                },
                "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
            }],
            "volumes": [{"name": "tmp", "emptyDir": {}}],
        }
    }))
    .expect("pod fixture")
}

async fn pod_running(client: &Client, namespace: &str, name: &str) -> Pod {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let last = Mutex::new(String::new());
    let found = eventually(&format!("pod {namespace}/{name} Running"), WAIT, || async {
        let pod = pods.get_opt(name).await.ok()??;
        if let Ok(mut last) = last.lock() {
            *last = serde_json::to_string(&pod.status).unwrap_or_default();
        }
        let running = pod.status.as_ref()?.phase.as_deref() == Some("Running");
        running.then_some(pod)
    })
    .await;
    found.unwrap_or_else(|e| {
        panic!(
            "{e}\nlast status: {}",
            last.lock().map(|l| l.clone()).unwrap_or_default()
        )
    })
}

fn pod_ip(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.pod_ip.clone())
        .expect("a Running pod has an IP")
}

/// What a request of a client pod met.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// The server answered (its words).
    Answered(String),
    /// Refused or dropped on the way (nc's words).
    Refused(String),
    /// Neither: the probe itself failed (exec, an unexpected reply).
    Broken(String),
}

#[derive(Clone, Copy, Debug)]
enum Protocol {
    /// HTTP/1.0 GET /; answered when a status line comes back.
    Http,
    /// As [`Protocol::Http`], keeping the sending side open for 3 s: the hub's HTTP servers
    /// (hyper) drop a request whose client shut its sending side before the answer was ready, as
    /// nc does at the end of its input (the monitor's pages take a moment to render).
    HttpHeld,
    /// The HTTP/2 client preface; answered when the server's first frame is a SETTINGS frame
    /// (what a gRPC server sends first).
    Grpc,
}

/// One request from `namespace/pod` to `address:port`, with busybox nc. A refusal is immediate
/// (the enforcer rejects); a reply is waited for up to 10 s.
fn probe(
    env: &TestEnv,
    namespace: &str,
    pod: &str,
    address: &str,
    port: u16,
    protocol: Protocol,
) -> Outcome {
    let script = match protocol {
        Protocol::Http => format!(
            "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 10 {address} {port} 2>&1; echo exit=$?"
        ),
        Protocol::HttpHeld => format!(
            "(printf 'GET / HTTP/1.0\\r\\n\\r\\n'; sleep 3) | nc -w 10 {address} {port} 2>&1; echo exit=$?"
        ),
        Protocol::Grpc => format!(
            "frame=$( (printf 'PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n'; sleep 1) | nc -w 3 {address} {port} 2>/tmp/nc.err | od -An -tx1 -N9); echo \"frame=$frame\"; cat /tmp/nc.err"
        ),
    };
    let output = env.kubectl(&["exec", "-n", namespace, pod, "--", "sh", "-c", &script]);
    let text = output_text(&output);
    if !output.status.success() {
        return Outcome::Broken(text);
    }
    let refused = text.contains("Connection refused") || text.contains("timed out");
    match protocol {
        Protocol::Http | Protocol::HttpHeld if text.starts_with("HTTP/1.") => {
            Outcome::Answered(text)
        }
        Protocol::Grpc => {
            let frame = text
                .lines()
                .find_map(|l| l.strip_prefix("frame="))
                .unwrap_or_default();
            // Length (3 bytes), type 0x04 (SETTINGS), flags, stream 0.
            if frame.split_whitespace().nth(3) == Some("04") {
                Outcome::Answered(text)
            } else if refused {
                Outcome::Refused(text)
            } else {
                Outcome::Broken(text)
            }
        }
        _ if refused => Outcome::Refused(text),
        _ => Outcome::Broken(text),
    }
}

/// One expected route: from a client pod to a server, allowed or not.
struct Route {
    what: String,
    from: (String, String),
    address: String,
    port: u16,
    protocol: Protocol,
    allowed: bool,
    /// For an allowed HTTP path: the words the right server answers with.
    answer: Option<String>,
}

impl Route {
    fn met(&self, outcome: &Outcome) -> bool {
        match (outcome, self.allowed) {
            (Outcome::Answered(text), true) => self
                .answer
                .as_ref()
                .is_none_or(|a| text.contains(a.as_str())),
            (Outcome::Refused(_), false) => true,
            _ => false,
        }
    }
}

/// Probes every path until each meets its expectation (policies take a moment to reach the
/// enforcer) or `timeout` passes, then probes all once more: the matrix must hold twice in a row.
/// Panics with the whole matrix when it does not.
fn expect_matrix(env: &TestEnv, routes: &[Route], timeout: Duration) {
    let started = Instant::now();
    // Six probes at a time: most of a probe is waiting (kubectl exec, a held request).
    let run = || -> Vec<Outcome> {
        routes
            .chunks(6)
            .flat_map(|chunk| {
                std::thread::scope(|scope| {
                    let probes: Vec<_> = chunk
                        .iter()
                        .map(|p| {
                            scope.spawn(|| {
                                probe(env, &p.from.0, &p.from.1, &p.address, p.port, p.protocol)
                            })
                        })
                        .collect();
                    probes
                        .into_iter()
                        .map(|probe| {
                            probe
                                .join()
                                .unwrap_or_else(|_| Outcome::Broken("the probe panicked".into()))
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect()
    };
    let table = |outcomes: &[Outcome]| {
        let mut table = String::new();
        for (route, outcome) in routes.iter().zip(outcomes) {
            let _ = writeln!(
                table,
                "{} {} (want {}): {:?}",
                if route.met(outcome) { "ok  " } else { "FAIL" },
                route.what,
                if route.allowed { "allowed" } else { "refused" },
                outcome
            );
        }
        table
    };
    loop {
        let outcomes = run();
        if routes.iter().zip(&outcomes).all(|(p, o)| p.met(o)) {
            break;
        }
        assert!(
            started.elapsed() < timeout,
            "the traffic matrix did not settle within {timeout:?}:\n{}",
            table(&outcomes)
        );
        let pending: Vec<String> = routes
            .iter()
            .zip(&outcomes)
            .filter(|(p, o)| !p.met(o))
            .map(|(p, o)| {
                let seen: String = format!("{o:?}").chars().take(120).collect();
                format!("{}: {seen}", p.what)
            })
            .collect();
        eprintln!(
            "after {:.1}s, not yet: {pending:?}",
            started.elapsed().as_secs_f64()
        );
        std::thread::sleep(Duration::from_secs(2));
    }
    let again = run();
    assert!(
        routes.iter().zip(&again).all(|(p, o)| p.met(o)),
        "the traffic matrix changed on a second look:\n{}",
        table(&again)
    );
    eprintln!(
        "traffic matrix held after {:.1}s:\n{}",
        started.elapsed().as_secs_f64(),
        table(&again)
    );
}

/// A web server the test runs in the cluster's own network namespace, on its LAN address:
/// outside the pod network, reachable by pods through their node's default route.
struct OutsideListener {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl OutsideListener {
    fn start(prefix: &str) -> OutsideListener {
        let port = free_port();
        let dir = repo_root().join("target/test-www").join(prefix);
        std::fs::create_dir_all(&dir).expect("listener directory");
        std::fs::write(dir.join("index.html"), "hello-from-outside\n").expect("index.html");
        let child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/govdc-{CLUSTER}"))
            .args(["busybox", "httpd", "-f", "-p"])
            .arg(format!("{CLUSTER_LAN_ADDRESS}:{port}"))
            .arg("-h")
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting busybox httpd in the cluster's network namespace");
        OutsideListener { child, port, dir }
    }
}

impl Drop for OutsideListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Packs the hub's debug build with build-oci.sh (once per test binary: the two tests write the
/// same archive) and loads it into `cluster`.
fn load_hub_image(cluster: &str) {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let archive = repo_root().join(format!("target/images/govdc-hub-{HUB_TAG}.oci.tar"));
    // Held through the load too: one import into a node at a time.
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built {
        let output = Command::new("bash")
            .arg(repo_root().join("deploy/image/build-oci.sh"))
            .args(["hub", HUB_TAG])
            .env("GOVDC_OCI_BINARY", govdc_test_support::hub::hub_bin())
            .output()
            .expect("running build-oci.sh");
        assert!(
            output.status.success(),
            "build-oci.sh hub: {}",
            output_text(&output)
        );
        *built = true;
    }
    let loaded = Command::new(govdc_cluster_bin())
        .args(["load", cluster])
        .arg(&archive)
        .current_dir(repo_root())
        .output()
        .expect("running govdc-cluster load");
    assert!(loaded.status.success(), "load: {}", output_text(&loaded));
}

/// A static volume for the hub's claim: a hostPath directory the hub's user (65532) owns (the
/// node shares the machine's file system). The claim asks for the test's own storage class, so
/// only this volume can bind it.
async fn hub_volume(env: &TestEnv, class: &str) -> PathBuf {
    let dir = repo_root().join("target/test-volumes").join(&env.prefix);
    std::fs::create_dir_all(&dir).expect("volume directory");
    let chown = Command::new("chown")
        .args(["65532:65532"])
        .arg(&dir)
        .output()
        .expect("chown");
    assert!(chown.status.success(), "chown: {}", output_text(&chown));
    let dir = dir.canonicalize().expect("canonical volume path");
    let volume: PersistentVolume = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "PersistentVolume",
        "metadata": {"name": format!("{}-hub", env.prefix), "labels": {TEST_LABEL: env.prefix}},
        "spec": {
            "capacity": {"storage": "1Gi"}, "accessModes": ["ReadWriteOnce"],
            "storageClassName": class, "persistentVolumeReclaimPolicy": "Retain",
            "hostPath": {"path": dir.display().to_string(), "type": "Directory"},
        },
    }))
    .expect("volume fixture");
    Api::<PersistentVolume>::all(env.client.clone())
        .create(&PostParams::default(), &volume)
        .await
        .expect("create PersistentVolume");
    dir
}

/// Deletes what the TestEnv's namespace sweep does not: the cluster-scoped volume and its
/// directory.
struct VolumeCleanup {
    client: Client,
    name: String,
    dir: PathBuf,
}

impl Drop for VolumeCleanup {
    fn drop(&mut self) {
        let (client, name) = (self.client.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                Api::<PersistentVolume>::all(client)
                    .delete(&name, &Default::default())
                    .await
                    .map(|_| ())
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn route(
    what: &str,
    from: &str,
    address: &str,
    port: u16,
    protocol: Protocol,
    allowed: bool,
    answer: Option<&str>,
) -> Route {
    Route {
        what: what.to_owned(),
        from: (from.to_owned(), "web".to_owned()),
        address: address.to_owned(),
        port,
        protocol,
        allowed,
        answer: answer.map(str::to_owned),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn department_policies_and_the_hubs_policy_hold_for_real_traffic_and_pod_security_refuses_at_admission()
 {
    let env = nodes_env(CLUSTER, "isolation").await;
    install_crds(&env.client).await.expect("CRDs");
    load_hub_image(CLUSTER);
    let lease = env.namespace("lease").await;
    let hub_image = format!("govdc/govdc-hub:{HUB_TAG}");
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &env,
        &lease,
        "operator",
        &["--hub-image", &hub_image],
    );
    let p = &env.prefix;
    // a: extranet, level 3, two environments, lets c in. b: extranet, level 2, nobody's peer.
    // c: extranet, level 2. i: intranet, level 3.
    let (a, b, c, i) = (
        format!("{p}-a"),
        format!("{p}-b"),
        format!("{p}-c"),
        format!("{p}-i"),
    );
    department(&env, &c, "extranet", 2, &["prod"], &[], 1).await;
    department(&env, &a, "extranet", 3, &["prod", "test"], &[&c], 2).await;
    department(&env, &b, "extranet", 2, &["prod"], &[], 3).await;
    department(&env, &i, "intranet", 3, &["prod"], &[], 4).await;
    let clouds: Api<DepartmentCloud> = Api::all(env.client.clone());
    for name in [&a, &b, &c, &i] {
        operator
            .condition(&clouds, name, "Ready", "True", WAIT)
            .await;
    }
    let (a_prod, a_test, b_prod, c_prod, i_prod) = (
        format!("{a}-prod"),
        format!("{a}-test"),
        format!("{b}-prod"),
        format!("{c}-prod"),
        format!("{i}-prod"),
    );
    // A namespace of no department, and the hub's namespace, labelled as an administrator labels
    // the namespaces of the exchange hub (which every tenant lets in).
    let other = env.namespace("other").await;
    let hub_ns = env.namespace("hub").await;
    let label = json!({"metadata": {"labels": {"govdc.io/exchange-hub": "true"}}});
    Api::<Namespace>::all(env.client.clone())
        .patch(&hub_ns, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label the hub's namespace");
    // A namespace of the monitoring system (the hub lets it reach its metrics port only).
    let monitoring = env.namespace("monitoring").await;
    let label = json!({"metadata": {"labels": {"govdc.io/monitoring": "true"}}});
    Api::<Namespace>::all(env.client.clone())
        .patch(&monitoring, &PatchParams::default(), &Patch::Merge(&label))
        .await
        .expect("label the monitoring namespace");

    // The hub: an extranet national node that a and i may join (i cannot: another network).
    let class = format!("{p}-local");
    let volume_dir = hub_volume(&env, &class).await;
    let _volume = VolumeCleanup {
        client: env.client.clone(),
        name: format!("{p}-hub"),
        dir: volume_dir,
    };
    let node: ExchangeNode = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": "national", "namespace": hub_ns, "labels": {TEST_LABEL: p}},
        "spec": {
            "level": "national", "regionCode": "100000", "networkZone": "extranet",
            "allowedDepartments": [a, i],
            "storage": {"size": "1Gi", "storageClassName": class},
        },
    }))
    .expect("ExchangeNode fixture");
    Api::<ExchangeNode>::namespaced(env.client.clone(), &hub_ns)
        .create(&PostParams::default(), &node)
        .await
        .expect("create ExchangeNode");

    // The lease's namespace is the operator's as the hub's policy knows it (the chart's release
    // namespace).
    let namespaces = [
        &a_prod,
        &a_test,
        &b_prod,
        &c_prod,
        &i_prod,
        &other,
        &hub_ns,
        &monitoring,
        &lease,
    ];
    for namespace in namespaces {
        Api::<Pod>::namespaced(env.client.clone(), namespace)
            .create(&PostParams::default(), &web_pod(namespace))
            .await
            .unwrap_or_else(|e| panic!("create the web pod in {namespace}: {e}"));
    }
    let mut ips = HashMap::new();
    for namespace in namespaces {
        let pod = pod_running(&env.client, namespace, "web").await;
        ips.insert(namespace.clone(), pod_ip(&pod));
    }
    // The hub's StatefulSet pod, from the project's image, Ready by its gRPC probe.
    let hub_pods: Api<Pod> = Api::namespaced(env.client.clone(), &hub_ns);
    let hub = eventually("the hub pod Ready", Duration::from_secs(180), || async {
        let pod = hub_pods.get_opt("national-hub-0").await.ok()??;
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
    .unwrap_or_else(|e| {
        let describe = env.kubectl(&["describe", "pod", "-n", &hub_ns, "national-hub-0"]);
        panic!("{e}\n{}\n{}", output_text(&describe), operator.logs())
    });
    let hub_ip = pod_ip(&hub);

    let outside = OutsideListener::start(p);
    let ip = |ns: &String| ips[ns].clone();
    let hello = |ns: &String| format!("hello-from-{ns}");
    let (http, held, grpc) = (Protocol::Http, Protocol::HttpHeld, Protocol::Grpc);
    #[rustfmt::skip]
    let routes = vec![
        // Departments.
        route("a-test -> a-prod (same department)", &a_test, &ip(&a_prod), WEB_PORT, http, true, Some(&hello(&a_prod))),
        route("a-prod -> a-test (same department)", &a_prod, &ip(&a_test), WEB_PORT, http, true, Some(&hello(&a_test))),
        route("b-prod -> a-prod (another department)", &b_prod, &ip(&a_prod), WEB_PORT, http, false, None),
        route("c-prod -> a-prod (a names c a peer)", &c_prod, &ip(&a_prod), WEB_PORT, http, true, Some(&hello(&a_prod))),
        route("a-prod -> c-prod (c names no peer)", &a_prod, &ip(&c_prod), WEB_PORT, http, false, None),
        route("other -> a-prod (no department)", &other, &ip(&a_prod), WEB_PORT, http, false, None),
        route("hub namespace -> a-prod (exchange-hub label)", &hub_ns, &ip(&a_prod), WEB_PORT, http, true, Some(&hello(&a_prod))),
        route("hub namespace -> i-prod (exchange-hub label)", &hub_ns, &ip(&i_prod), WEB_PORT, http, true, Some(&hello(&i_prod))),
        route("a-prod -> i-prod (another department)", &a_prod, &ip(&i_prod), WEB_PORT, http, false, None),
        // The intranet tenant's egress: the cluster yes, outside no.
        route("i-prod -> outside the pod network", &i_prod, CLUSTER_LAN_ADDRESS, outside.port, http, false, None),
        route("b-prod -> outside the pod network (extranet)", &b_prod, CLUSTER_LAN_ADDRESS, outside.port, http, true, Some("hello-from-outside")),
        route("i-prod -> a pod in the hub namespace (in the cluster)", &i_prod, &ip(&hub_ns), WEB_PORT, http, true, Some(&hello(&hub_ns))),
        // The hub's gRPC port.
        route("a-prod -> hub gRPC (allowed department)", &a_prod, &hub_ip, GRPC_PORT, grpc, true, None),
        route("a-test -> hub gRPC (allowed department)", &a_test, &hub_ip, GRPC_PORT, grpc, true, None),
        route("b-prod -> hub gRPC (not allowed)", &b_prod, &hub_ip, GRPC_PORT, grpc, false, None),
        route("other -> hub gRPC (no department)", &other, &hub_ip, GRPC_PORT, grpc, false, None),
        route("i-prod -> hub gRPC (allowed, but intranet)", &i_prod, &hub_ip, GRPC_PORT, grpc, false, None),
        // The hub's sharing-monitor website.
        route("a-prod -> hub monitor (allowed department)", &a_prod, &hub_ip, MONITOR_PORT, held, true, Some("200 OK")),
        route("a-test -> hub monitor (allowed department)", &a_test, &hub_ip, MONITOR_PORT, held, true, Some("200 OK")),
        route("b-prod -> hub monitor (not allowed)", &b_prod, &hub_ip, MONITOR_PORT, held, false, None),
        route("other -> hub monitor (no department)", &other, &hub_ip, MONITOR_PORT, held, false, None),
        route("i-prod -> hub monitor (allowed, but intranet)", &i_prod, &hub_ip, MONITOR_PORT, held, false, None),
        route("monitoring namespace -> hub monitor", &monitoring, &hub_ip, MONITOR_PORT, held, false, None),
        route("operator's namespace -> hub monitor", &lease, &hub_ip, MONITOR_PORT, held, true, Some("200 OK")),
        // The hub's other ports.
        route("operator's namespace -> hub gRPC", &lease, &hub_ip, GRPC_PORT, grpc, true, None),
        route("monitoring namespace -> hub metrics", &monitoring, &hub_ip, METRICS_PORT, held, true, None),
        route("a-prod -> hub metrics (a tenant)", &a_prod, &hub_ip, METRICS_PORT, held, false, None),
        route("monitoring namespace -> hub gRPC", &monitoring, &hub_ip, GRPC_PORT, grpc, false, None),
    ];
    tokio::task::block_in_place(|| expect_matrix(&env, &routes, Duration::from_secs(120)));

    // DNS works for the intranet tenant: in-cluster egress includes kube-system's DNS.
    let lookup = env.kubectl(&[
        "exec",
        "-n",
        &i_prod,
        "web",
        "--",
        "nslookup",
        &format!("national-hub.{hub_ns}.svc.cluster.local"),
    ]);
    assert!(
        output_text(&lookup).contains("Address") && lookup.status.success(),
        "the intranet tenant resolves a Service name: {}",
        output_text(&lookup)
    );

    pod_security(&env, &a_prod, &b_prod).await;
    drop(outside);
    drop(operator);
}

/// Pod Security admission in the tenants' namespaces: level 3 runs `restricted`, level 2
/// `baseline`; a privileged pod is refused in both, a root pod only at level 3, and the
/// restricted web pods run in both (checked above).
async fn pod_security(env: &TestEnv, level3: &str, level2: &str) {
    let pod = |namespace: &str, name: &str, security: Value| -> Pod {
        serde_json::from_value(json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                                "command": ["sleep", "3600"], "securityContext": security}],
            }
        }))
        .expect("pod fixture")
    };
    let create = |namespace: &str, pod: Pod| {
        let api: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
        async move { api.create(&PostParams::default(), &pod).await }
    };
    for (namespace, level) in [(level3, "restricted"), (level2, "baseline")] {
        let refused = create(
            namespace,
            pod(namespace, "privileged", json!({"privileged": true})),
        )
        .await
        .expect_err("a privileged pod is refused");
        let kube::Error::Api(status) = refused else {
            panic!("not the API server's refusal: {refused}");
        };
        assert_eq!(status.code, 403, "{status:?}");
        assert!(
            status
                .message
                .contains(&format!("violates PodSecurity \"{level}:latest\""))
                && status.message.contains(
                    "privileged (container \"main\" must not set securityContext.privileged=true)"
                ),
            "{namespace}: {}",
            status.message
        );
        eprintln!("{namespace}: {}", status.message);
    }
    // A root pod without the restricted settings: baseline admits it, restricted does not.
    let refused = create(level3, pod(level3, "root", json!({})))
        .await
        .expect_err("a root pod is refused at level 3");
    let kube::Error::Api(status) = refused else {
        panic!("not the API server's refusal: {refused}");
    };
    assert!(
        status
            .message
            .contains("violates PodSecurity \"restricted:latest\"")
            && status.message.contains("runAsNonRoot"),
        "{}",
        status.message
    );
    create(level2, pod(level2, "root", json!({})))
        .await
        .expect("baseline admits a root pod");
    pod_running(&env.client, level2, "root").await;
}

/// A workload of the tenant, restricted, serving `hello-from-<name>` on [`WEB_PORT`] (busybox).
fn workload(kind: &str, name: &str, replicas: i32) -> Value {
    let serve = format!(
        "mkdir -p /tmp/www && echo hello-from-{name} > /tmp/www/index.html && exec httpd -f -p {WEB_PORT} -h /tmp/www"
    );
    let mut spec = json!({
        "replicas": replicas,
        "selector": {"matchLabels": {"app": name}},
        "template": {
            "metadata": {"labels": {"app": name}},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "automountServiceAccountToken": false,
                "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
                "containers": [{
                    "name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                    "command": ["sh", "-c", serve],
                    "securityContext": {
                        "runAsNonRoot": true, "runAsUser": 65532, "allowPrivilegeEscalation": false,
                        "readOnlyRootFilesystem": true, "capabilities": {"drop": ["ALL"]},
                    },
                    "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": [{"name": "tmp", "emptyDir": {}}],
            },
        },
    });
    if kind == "StatefulSet" {
        spec["serviceName"] = json!(name);
    }
    json!({
        "apiVersion": "apps/v1", "kind": kind,
        "metadata": {"name": name, "labels": {"app": name}},
        "spec": spec,
    })
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

/// The Running pods of `namespace` and the nodes they run on.
async fn running_pods(client: &Client, namespace: &str) -> Vec<(String, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    pods.list(&ListParams::default())
        .await
        .map(|l| l.items)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| {
            p.metadata.deletion_timestamp.is_none()
                && p.status.as_ref().and_then(|s| s.phase.as_deref()) == Some("Running")
        })
        .map(|p| {
            (
                p.metadata.name.unwrap_or_default(),
                p.spec.and_then(|s| s.node_name).unwrap_or_default(),
            )
        })
        .collect()
}

/// Deletes a namespace replication made on the standby (no sweep there knows it).
struct StandbyNamespace<'a> {
    env: &'a TestEnv,
    name: String,
}

impl Drop for StandbyNamespace<'_> {
    fn drop(&mut self) {
        let _ = self.env.kubectl(&[
            "delete",
            "namespace",
            &self.name,
            "--ignore-not-found",
            "--wait=false",
        ]);
    }
}

/// Waits until pod `namespace/name` is Ready, describing it when it does not become so.
async fn pod_ready(env: &TestEnv, namespace: &str, name: &str, timeout: Duration) -> Pod {
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), namespace);
    eventually(
        &format!("pod {namespace}/{name} Ready"),
        timeout,
        || async {
            let pod = pods.get_opt(name).await.ok()??;
            let ready = pod
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            ready.then_some(pod)
        },
    )
    .await
    .unwrap_or_else(|e| {
        let describe = env.kubectl(&["describe", "pod", "-n", namespace, name]);
        panic!("{e}\n{}", output_text(&describe))
    })
}

/// The ExchangeNode whose hub runs in the failover test's tenant namespace (the policy protects
/// the tenant's namespaces, so the node's objects and key Secret go to the standby with them).
const HUB_NODE: &str = "national";

#[tokio::test(flavor = "multi_thread")]
async fn failover_runs_the_standby_workloads_and_the_dr_hub_pod_serves_the_exported_hub_state() {
    let primary = nodes_env(CLUSTER, "failoverpods").await;
    let standby = nodes_env(DR_CLUSTER, "failoverpods").await;
    install_crds(&primary.client)
        .await
        .expect("CRDs on primary");
    install_crds(&standby.client)
        .await
        .expect("CRDs on standby");
    load_hub_image(CLUSTER);
    load_hub_image(DR_CLUSTER);
    let p = primary.prefix.clone();
    let dc = format!("{p}-t");
    let namespace = format!("{dc}-prod");
    let mapped = format!("{namespace}-dr");
    let hub_pod = format!("{HUB_NODE}-hub-0");
    let lease = primary.namespace("lease").await;
    let restore_points = repo_root().join("target/test-restore-points").join(&p);
    // The operator runs on this machine, outside the pod network: it reaches the primary's hub
    // pod through a port-forward.
    let primary_forward = hub_state::PortForward::start(
        &primary.kubeconfig,
        &namespace,
        &hub_pod,
        free_port(),
        GRPC_PORT,
    );
    let hub_endpoint = format!("{namespace}/{HUB_NODE}={}", primary_forward.endpoint());
    let hub_image = format!("govdc/govdc-hub:{HUB_TAG}");
    let operator = OperatorProcess::start(
        Path::new(OPERATOR),
        &primary,
        &lease,
        "operator",
        &[
            "--restore-point-dir",
            &restore_points.display().to_string(),
            "--hub-image",
            &hub_image,
            "--hub-state-interval-seconds",
            "2",
            "--hub-endpoint",
            &hub_endpoint,
        ],
    );
    department(&primary, &dc, "extranet", 3, &["prod"], &[], 5).await;
    let clouds: Api<DepartmentCloud> = Api::all(primary.client.clone());
    operator
        .condition(&clouds, &dc, "Ready", "True", WAIT)
        .await;
    apply::<Deployment>(
        &primary.client,
        &namespace,
        workload("Deployment", "api", 2),
    )
    .await;
    apply::<StatefulSet>(
        &primary.client,
        &namespace,
        workload("StatefulSet", "db", 1),
    )
    .await;
    // The tenant's exchange node: its hub runs as the StatefulSet's pod from the project's image,
    // on a volume of the cluster's default class.
    let member = credit_code(5);
    let node: ExchangeNode = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "ExchangeNode",
        "metadata": {"name": HUB_NODE, "namespace": namespace, "labels": {TEST_LABEL: p}},
        "spec": {
            "level": "national", "regionCode": "100000", "networkZone": "extranet",
            "allowedDepartments": [dc],
        },
    }))
    .expect("ExchangeNode fixture");
    Api::<ExchangeNode>::namespaced(primary.client.clone(), &namespace)
        .create(&PostParams::default(), &node)
        .await
        .expect("create ExchangeNode");
    // The workloads and the hub run on the primary's node.
    eventually(
        "4 pods Running on the primary",
        Duration::from_secs(180),
        || async { (running_pods(&primary.client, &namespace).await.len() == 4).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| {
        let pods = primary.kubectl(&["get", "pods,pvc", "-n", &namespace, "-o", "wide"]);
        panic!("{e}\n{}\n{}", output_text(&pods), operator.logs())
    });
    pod_ready(&primary, &namespace, &hub_pod, Duration::from_secs(180)).await;

    // State made through the hub's API on the primary: the operator joins the department, the
    // department registers a resource in the catalog.
    let source_hub = hub_state::Hub::connect(
        &primary.client,
        &namespace,
        HUB_NODE,
        &primary_forward.endpoint(),
    )
    .await;
    eventually(
        "the operator joins the department to the hub pod",
        WAIT,
        || async { (source_hub.members().await? == [member.clone()]).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    let resource_code = format!("{member}-0001");
    let resource_name = "企业登记信息 (failover test)";
    source_hub
        .register(&member, &resource_code, resource_name)
        .await;
    let source_audit = source_hub.verify(None).await;
    assert!(source_audit.intact, "{source_audit:?}");

    // The policy: continuous, warm standby (the default), namespaces mapped to `<name>-dr`.
    let system = primary.namespace("sys").await;
    let kubeconfig = std::fs::read_to_string(&standby.kubeconfig).expect("standby kubeconfig");
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": {"name": "standby-kubeconfig", "namespace": system},
        "stringData": {"kubeconfig": kubeconfig},
    }))
    .expect("secret fixture");
    Api::<Secret>::namespaced(primary.client.clone(), &system)
        .create(&PostParams::default(), &secret)
        .await
        .expect("create the kubeconfig Secret");
    let policy_name = format!("{p}-bp");
    let policy: BackupPolicy = serde_json::from_value(json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "metadata": {"name": policy_name, "labels": {TEST_LABEL: p}},
        "spec": {
            "departmentSelector": {"matchLabels": {TEST_LABEL: p}},
            "target": {"kubeconfigSecretRef": {"namespace": system, "name": "standby-kubeconfig", "key": "kubeconfig"}},
            "namespaceMapping": {"suffix": "-dr"},
            "mode": "continuous",
            "recoveryPointObjective": "2s",
            "exchangeNodes": [{"name": HUB_NODE, "namespace": namespace}],
        },
    }))
    .expect("policy fixture");
    let policies: Api<BackupPolicy> = Api::all(primary.client.clone());
    policies
        .create(&PostParams::default(), &policy)
        .await
        .expect("create BackupPolicy");
    operator
        .condition(&policies, &policy_name, "Ready", "True", WAIT)
        .await;
    let exported = operator
        .condition(&policies, &policy_name, "HubStateReplicated", "True", WAIT)
        .await;
    assert_eq!(exported.reason, "Exported", "{}", exported.message);

    // The standby's copies are this test's: its namespace goes when the test ends.
    let _mapped = StandbyNamespace {
        env: &standby,
        name: mapped.clone(),
    };
    let deployments: Api<Deployment> = Api::namespaced(standby.client.clone(), &mapped);
    let stateful_sets: Api<StatefulSet> = Api::namespaced(standby.client.clone(), &mapped);
    let replicas = || async {
        let d = deployments.get_opt("api").await.ok()??.spec?.replicas?;
        let s = stateful_sets.get_opt("db").await.ok()??.spec?.replicas?;
        let hub = stateful_sets
            .get_opt(&format!("{HUB_NODE}-hub"))
            .await
            .ok()??
            .spec?
            .replicas?;
        Some((d, s, hub))
    };
    eventually(
        "the workloads and the hub on the standby at zero",
        WAIT,
        || async { (replicas().await == Some((0, 0, 0))).then_some(()) },
    )
    .await
    .unwrap_or_else(|e| panic!("{e}\n{}", operator.logs()));
    // Warm, not running: nothing of the tenant runs on the standby before the failover.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = running_pods(&standby.client, &mapped).await;
    assert!(before.is_empty(), "pods ran before failover: {before:?}");

    // The failover command runs on this machine as well: it reaches the standby's hub pod,
    // once the scale-up has started it, through a port-forward it waits for.
    let standby_forward = hub_state::PortForward::start(
        &standby.kubeconfig,
        &mapped,
        &hub_pod,
        free_port(),
        GRPC_PORT,
    );
    let standby_endpoint = format!("{mapped}/{HUB_NODE}={}", standby_forward.endpoint());
    let failover_started = Instant::now();
    let output = Command::new(OPERATOR)
        .args([
            "backup",
            "failover",
            "--policy",
            &policy_name,
            "--hub-endpoint",
            &standby_endpoint,
            "--hub-wait-seconds",
            "180",
            "--restore-point-dir",
        ])
        .arg(&restore_points)
        .arg("--target-kubeconfig")
        .arg(&standby.kubeconfig)
        .arg("--kubeconfig")
        .arg(&primary.kubeconfig)
        .output()
        .expect("run govdc-operator backup failover");
    let text = output_text(&output);
    let describe = || {
        let pods = standby.kubectl(&["get", "pods,pvc", "-n", &mapped, "-o", "wide"]);
        let hub = standby.kubectl(&["describe", "pod", "-n", &mapped, &hub_pod]);
        format!("{}\n{}", output_text(&pods), output_text(&hub))
    };
    assert!(output.status.success(), "{text}\n{}", describe());
    assert!(
        text.contains("3 workloads scaled now, 0 already running"),
        "{text}"
    );
    let imported =
        format!("hub state {namespace}/{HUB_NODE} -> {mapped}/{HUB_NODE}: imported the copy of ");
    let sha256 = text
        .lines()
        .find_map(|l| l.strip_prefix(&imported))
        .and_then(|rest| rest.split("(sha256 ").nth(1))
        .and_then(|rest| rest.split(')').next())
        .unwrap_or_else(|| panic!("no {imported:?} in:\n{text}"))
        .to_owned();
    eprintln!(
        "figures: failover with the hub state imported into the standby's hub pod in {:.1}s",
        failover_started.elapsed().as_secs_f64()
    );
    assert_eq!(replicas().await, Some((2, 1, 1)), "the recorded counts");

    // The standby's hub pod serves the state exported from the primary's: the member, the
    // catalog resource, and the audit chain, whose head is the one the copy's manifest records.
    let manifest = hub_state::manifests(&restore_points)
        .into_iter()
        .find(|m| m["sha256"] == sha256.as_str())
        .unwrap_or_else(|| panic!("no stored copy with sha256 {sha256}"));
    let head = (
        manifest["auditHead"]["seq"]
            .as_i64()
            .expect("auditHead.seq"),
        manifest["auditHead"]["hash"]
            .as_str()
            .expect("auditHead.hash")
            .to_owned(),
    );
    let dr_hub = hub_state::Hub::connect(
        &standby.client,
        &mapped,
        HUB_NODE,
        &standby_forward.endpoint(),
    )
    .await;
    assert_eq!(
        dr_hub.members().await,
        Some(vec![member.clone()]),
        "members on the standby's hub pod"
    );
    assert_eq!(
        dr_hub.resource(&member, &resource_code).await,
        Ok((member.clone(), resource_name.to_owned())),
        "the catalog resource on the standby's hub pod"
    );
    let dr_audit = dr_hub.verify(Some(head.clone())).await;
    assert!(dr_audit.intact, "{dr_audit:?}");
    assert_eq!(
        dr_audit.anchors.first().map(|a| a.outcome.as_str()),
        Some("matches"),
        "the copy's audit head {head:?} on the standby's hub: {dr_audit:?}"
    );
    assert!(
        dr_audit.records_checked >= source_audit.records_checked
            && dr_audit.records_checked >= manifest["auditRecords"].as_i64().unwrap_or(i64::MAX),
        "the standby's hub holds {} audit records, the primary's held {} before the export, the copy {}",
        dr_audit.records_checked,
        source_audit.records_checked,
        manifest["auditRecords"]
    );

    let running = eventually("4 pods Running on the standby", WAIT, || async {
        let pods = running_pods(&standby.client, &mapped).await;
        (pods.len() == 4).then_some(pods)
    })
    .await
    .unwrap_or_else(|e| {
        let describe = standby.kubectl(&["get", "pods", "-n", &mapped, "-o", "wide"]);
        panic!("{e}\n{}", output_text(&describe))
    });
    eprintln!(
        "figures: standby pods Running {:.1}s after the failover started: {running:?}",
        failover_started.elapsed().as_secs_f64()
    );
    let node = format!("{DR_CLUSTER}-node-0");
    assert!(
        running.iter().all(|(_, n)| *n == node),
        "the standby's pods run on the DR cluster's node: {running:?}"
    );
    assert!(
        running.iter().any(|(name, _)| name == "db-0")
            && running.iter().any(|(name, _)| *name == hub_pod),
        "the StatefulSets' pods: {running:?}"
    );

    // The tenant keeps its protection on the DR cluster: the namespace's Pod Security level
    // and its NetworkPolicies came along, and the standby's own admission and enforcer apply them.
    let namespace_labels = Api::<Namespace>::all(standby.client.clone())
        .get(&mapped)
        .await
        .expect("the mapped namespace")
        .metadata
        .labels
        .unwrap_or_default();
    assert_eq!(
        namespace_labels
            .get("pod-security.kubernetes.io/enforce")
            .map(String::as_str),
        Some("restricted"),
        "{namespace_labels:?}"
    );
    let privileged: Pod = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "privileged"},
        "spec": {"containers": [{"name": "main", "image": BUSYBOX, "imagePullPolicy": "Never",
                                 "command": ["sleep", "3600"], "securityContext": {"privileged": true}}]},
    }))
    .expect("pod fixture");
    let refused = Api::<Pod>::namespaced(standby.client.clone(), &mapped)
        .create(&PostParams::default(), &privileged)
        .await
        .expect_err("a privileged pod is refused on the standby");
    assert!(
        refused
            .to_string()
            .contains("violates PodSecurity \"restricted:latest\""),
        "{refused}"
    );
    let other = standby.namespace("other").await;
    Api::<Pod>::namespaced(standby.client.clone(), &other)
        .create(&PostParams::default(), &web_pod(&other))
        .await
        .expect("create the web pod in a plain namespace of the standby");
    pod_running(&standby.client, &other, "web").await;
    let api_pod = running
        .iter()
        .find(|(name, _)| name.starts_with("api-"))
        .map(|(name, _)| name.clone())
        .expect("an api pod");
    let api_ip = pod_ip(&pod_running(&standby.client, &mapped, &api_pod).await);
    let routes = vec![
        Route {
            what: "db-0 -> api on the standby (same department)".to_owned(),
            from: (mapped.clone(), "db-0".to_owned()),
            address: api_ip.clone(),
            port: WEB_PORT,
            protocol: Protocol::Http,
            allowed: true,
            answer: Some("hello-from-api".to_owned()),
        },
        route(
            "a plain namespace -> api on the standby",
            &other,
            &api_ip,
            WEB_PORT,
            Protocol::Http,
            false,
            None,
        ),
    ];
    tokio::task::block_in_place(|| expect_matrix(&standby, &routes, Duration::from_secs(90)));
    drop(standby_forward);
    drop(primary_forward);
    drop(operator);
    let _ = std::fs::remove_dir_all(&restore_points);
}
