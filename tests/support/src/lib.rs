//! Test support for govdc: every test that needs Kubernetes runs on a real local control plane
//! (etcd, kube-apiserver and kube-controller-manager built from Go modules by
//! `tests/controlplane/build.sh` and run by `govdc-cluster`).
//!
//! - [`TestEnv::new`] starts or reuses a named cluster once per test binary, and hands the test a
//!   [`kube::Client`] and a unique name prefix. When the [`TestEnv`] is dropped, the namespaces and
//!   cluster-scoped govdc resources labelled with that prefix are deleted.
//! - A test that needs the control plane fails loudly when it cannot be had; it never passes by
//!   skipping.

pub mod hub;
pub mod seeded;

use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};

/// The label every object a test creates carries, with the test's prefix as value.
pub const TEST_LABEL: &str = "govdc.io/test";

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Where the control-plane binaries are built.
pub fn controlplane_bin_dir() -> PathBuf {
    repo_root().join("target/controlplane")
}

/// Builds kube, govdc-cluster and helm once per test binary (the build is skipped when its inputs
/// did not change). Panics with the build's output when it fails.
pub fn ensure_controlplane_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    if let Err(message) = BUILT.get_or_init(|| run_build(&[])) {
        panic!("the local control plane could not be built: {message}");
    }
}

/// Runs `tests/controlplane/build.sh` with `args`; its output when it fails.
fn run_build(args: &[&str]) -> Result<(), String> {
    let script = repo_root().join("tests/controlplane/build.sh");
    let what = format!("{} {}", script.display(), args.join(" "));
    let output = Command::new("bash")
        .arg(&script)
        .args(args)
        .output()
        .map_err(|e| format!("running {what}: {e}"))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{what} failed:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The `kube` multicall binary (kube-apiserver, kube-controller-manager, etcd, kubectl).
pub fn kube_bin() -> PathBuf {
    ensure_controlplane_built();
    controlplane_bin_dir().join("kube")
}

/// The `govdc-cluster` launcher.
pub fn govdc_cluster_bin() -> PathBuf {
    ensure_controlplane_built();
    controlplane_bin_dir().join("govdc-cluster")
}

/// The `helm` binary built from helm.sh/helm.
pub fn helm_bin() -> PathBuf {
    ensure_controlplane_built();
    controlplane_bin_dir().join("helm")
}

/// Starts the named cluster unless it already runs, once per test binary, and returns its admin
/// kubeconfig. Panics with the launcher's output when the cluster cannot be had.
pub fn cluster_kubeconfig(name: &str) -> PathBuf {
    static CLUSTERS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    let clusters = CLUSTERS.get_or_init(Mutex::default);
    let mut clusters = clusters
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(path) = clusters.get(name) {
        return path.clone();
    }
    let path = up(name, &[]);
    clusters.insert(name.to_owned(), path.clone());
    path
}

/// Builds the node parts (`build.sh nodes`: kubelet, kube-proxy, kube-scheduler, containerd,
/// runc, CoreDNS, the policy enforcer and the pause, busybox and CoreDNS images; cached by input
/// hash, and installs the Debian packages nodes need) once per test binary.
pub fn ensure_nodes_built() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    ensure_controlplane_built();
    if let Err(message) = BUILT.get_or_init(|| run_build(&["nodes"])) {
        panic!("the node parts could not be built: {message}");
    }
}

/// Starts the named cluster with `nodes` real nodes (`govdc-cluster up NAME --nodes N`: pods run)
/// unless it already runs so, and returns its admin kubeconfig. Use a cluster of the test's own:
/// the shared clusters have no nodes.
pub fn cluster_with_nodes_kubeconfig(name: &str, nodes: u32) -> PathBuf {
    ensure_nodes_built();
    up(name, &["--nodes", &nodes.to_string()])
}

/// Starts the named cluster with kube-apiserver feature gates (`govdc-cluster up NAME
/// --feature-gates GATES`, for example `WatchList=false`) unless it already runs so, and returns
/// its admin kubeconfig. Use a cluster of the test's own.
pub fn cluster_with_feature_gates_kubeconfig(name: &str, gates: &str) -> PathBuf {
    up(name, &["--feature-gates", gates])
}

/// `govdc-cluster up NAME FLAGS...`: the admin kubeconfig it prints, or a panic with its output.
fn up(name: &str, flags: &[&str]) -> PathBuf {
    let output = run(Command::new(govdc_cluster_bin())
        .args(["up", name])
        .args(flags)
        .current_dir(repo_root()));
    let shown = format!("govdc-cluster up {name} {}", flags.join(" "));
    if !output.status.success() {
        panic!(
            "{shown} failed; the tests need a real API server:\n{}\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = PathBuf::from(stdout.lines().last().unwrap_or_default().trim());
    assert!(
        path.is_file(),
        "{shown} printed no kubeconfig path: {stdout}"
    );
    path
}

fn run(command: &mut Command) -> Output {
    command
        .output()
        .unwrap_or_else(|e| panic!("running {command:?}: {e}"))
}

/// A client for the cluster a kubeconfig points at.
pub async fn client_for(kubeconfig: &Path) -> anyhow::Result<Client> {
    let config = Kubeconfig::read_from(kubeconfig)
        .with_context(|| format!("reading {}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

/// A test's view of a cluster: a client, the admin kubeconfig and a name prefix unique to the
/// test. Dropping it deletes what carries the prefix's label.
pub struct TestEnv {
    /// The cluster's name (`primary`, `dr`, ...).
    pub cluster: String,
    /// The cluster's admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// An admin client.
    pub client: Client,
    /// A DNS-label prefix unique to this test; name everything the test creates with it.
    pub prefix: String,
}

impl TestEnv {
    /// Sets up a test on the named cluster, starting the cluster if needed.
    pub async fn new(cluster: &str, test: &str) -> TestEnv {
        TestEnv::on(cluster, cluster_kubeconfig(cluster), test).await
    }

    /// Sets up a test on the named cluster with `nodes` real nodes (see
    /// [`cluster_with_nodes_kubeconfig`]), starting it if needed.
    pub async fn with_nodes(cluster: &str, nodes: u32, test: &str) -> TestEnv {
        TestEnv::on(cluster, cluster_with_nodes_kubeconfig(cluster, nodes), test).await
    }

    /// Sets up a test on the named cluster run with kube-apiserver feature `gates` (see
    /// [`cluster_with_feature_gates_kubeconfig`]), starting it if needed.
    pub async fn with_feature_gates(cluster: &str, gates: &str, test: &str) -> TestEnv {
        TestEnv::on(
            cluster,
            cluster_with_feature_gates_kubeconfig(cluster, gates),
            test,
        )
        .await
    }

    async fn on(cluster: &str, kubeconfig: PathBuf, test: &str) -> TestEnv {
        let client = client_for(&kubeconfig)
            .await
            .unwrap_or_else(|e| panic!("client for cluster {cluster}: {e:#}"));
        TestEnv {
            cluster: cluster.to_owned(),
            kubeconfig,
            client,
            prefix: unique_prefix(test),
        }
    }

    /// The labels that mark an object as this test's, for cleanup.
    pub fn labels(&self) -> BTreeMap<String, String> {
        BTreeMap::from([(TEST_LABEL.to_owned(), self.prefix.clone())])
    }

    /// `TEST_LABEL=<prefix>`, as a label selector.
    pub fn selector(&self) -> String {
        format!("{TEST_LABEL}={}", self.prefix)
    }

    /// Creates the namespace `<prefix>-<suffix>`, labelled for cleanup, and returns its name.
    pub async fn namespace(&self, suffix: &str) -> String {
        let name = format!("{}-{suffix}", self.prefix);
        let namespace = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(self.labels()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(self.client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap_or_else(|e| panic!("creating namespace {name}: {e}"));
        name
    }

    /// Runs the real kubectl (built with the control plane) against this cluster.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        run(Command::new(kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args))
    }

    /// Runs kubectl with `stdin` as its standard input.
    pub fn kubectl_with_input(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write;
        let mut child = Command::new(kube_bin())
            .arg("kubectl")
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("starting kubectl: {e}"));
        if let Some(mut input) = child.stdin.take() {
            input
                .write_all(stdin.as_bytes())
                .unwrap_or_else(|e| panic!("writing kubectl's input: {e}"));
        }
        child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("waiting for kubectl: {e}"))
    }

    /// Writes a kubeconfig for an unprivileged user authenticated by a client certificate the
    /// cluster's CA signed, and returns its path.
    pub fn user_kubeconfig(&self, user: &str, groups: &[&str]) -> PathBuf {
        let dir = repo_root().join("target/test-users");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let out = dir.join(format!(
            "{}-{}-{user}.kubeconfig",
            self.cluster, self.prefix
        ));
        let mut command = Command::new(govdc_cluster_bin());
        command
            .args(["user", &self.cluster, "--user", user, "--out"])
            .arg(&out)
            .current_dir(repo_root());
        for group in groups {
            command.args(["--group", group]);
        }
        let output = run(&mut command);
        assert!(
            output.status.success(),
            "govdc-cluster user failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        out
    }

    /// A client acting as an unprivileged user (see [`TestEnv::user_kubeconfig`]).
    pub async fn user_client(&self, user: &str, groups: &[&str]) -> Client {
        let path = self.user_kubeconfig(user, groups);
        client_for(&path)
            .await
            .unwrap_or_else(|e| panic!("client for user {user}: {e:#}"))
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        let kubeconfig = self.kubeconfig.clone();
        let selector = self.selector();
        // Drop cannot await, and the test's runtime may be shutting down: clean up on a thread
        // with its own runtime.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(delete_labelled(&kubeconfig, &selector))
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("cleaning up after the test failed: {error:#}"),
            Err(_) => eprintln!("cleaning up after the test panicked"),
        }
    }
}

async fn delete_labelled(kubeconfig: &Path, selector: &str) -> anyhow::Result<()> {
    let client = client_for(kubeconfig).await?;
    let list = ListParams::default().labels(selector);
    // Cluster-scoped govdc resources first. The operator that would run their finalizers is
    // usually stopped by now, so the finalizers are removed here; the namespaces a
    // DepartmentCloud made are deleted by their department label below.
    let mut departments = Vec::new();
    for resource in [
        kube::api::ApiResource::erase::<govdc_crds::DepartmentCloud>(&()),
        kube::api::ApiResource::erase::<govdc_crds::BackupPolicy>(&()),
    ] {
        let api: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &resource);
        let objects = match api.list_metadata(&list).await {
            Ok(objects) => objects.items,
            // The CRDs may not be installed in this cluster.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(error) => return Err(error.into()),
        };
        for object in objects {
            let name = object.metadata.name.unwrap_or_default();
            let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
                .await;
            let _ = api.delete(&name, &DeleteParams::background()).await;
            if resource.kind == "DepartmentCloud" {
                departments.push(name);
            }
        }
    }
    // Namespaced govdc resources with finalizers (an OpenDataset waits for its portal to
    // unpublish it): without the operator, they would hold their namespace's deletion forever.
    let datasets = kube::api::ApiResource::erase::<govdc_crds::OpenDataset>(&());
    let all: Api<kube::api::DynamicObject> = Api::all_with(client.clone(), &datasets);
    if let Ok(objects) = all.list_metadata(&list).await {
        for object in objects.items {
            let (Some(name), Some(namespace)) = (object.metadata.name, object.metadata.namespace)
            else {
                continue;
            };
            let api: Api<kube::api::DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &datasets);
            let unfinalize = serde_json::json!({"metadata": {"finalizers": null}});
            let _ = api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&unfinalize))
                .await;
        }
    }
    let namespaces: Api<Namespace> = Api::all(client);
    let mut selectors = vec![selector.to_owned()];
    for chunk in departments.chunks(20) {
        let names = chunk.join(",");
        selectors.push(format!("govdc.io/department in ({names})"));
        selectors.push(format!("govdc.io/retained-from in ({names})"));
    }
    for selector in selectors {
        for namespace in namespaces
            .list_metadata(&ListParams::default().labels(&selector))
            .await?
            .items
        {
            if let Some(name) = namespace.metadata.name {
                match namespaces.delete(&name, &DeleteParams::background()).await {
                    Ok(_) => {}
                    Err(kube::Error::Api(status)) if status.code == 404 || status.code == 409 => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
    }
    Ok(())
}

/// A DNS-label prefix made of the test's name and a number unique in this machine's run.
pub fn unique_prefix(test: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let stem: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .filter(|c| *c != '-')
        .take(10)
        .collect();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{stem}{:x}{n}", (nanos ^ std::process::id()) & 0xfffff)
}

/// Installs (server-side apply) govdc's CRDs and waits until they are Established.
pub async fn install_crds(client: &Client) -> anyhow::Result<()> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let params = PatchParams::apply("govdc-tests").force();
    for crd in govdc_crds::custom_resource_definitions() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        api.patch(&name, &params, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("applying CRD {name}"))?;
    }
    for crd in govdc_crds::custom_resource_definitions() {
        let name = crd.metadata.name.clone().unwrap_or_default();
        eventually(
            &format!("CRD {name} Established"),
            Duration::from_secs(30),
            || {
                let api = api.clone();
                let name = name.clone();
                async move {
                    let crd = api.get(&name).await.ok()?;
                    crd.status?
                        .conditions?
                        .iter()
                        .any(|c| c.type_ == "Established" && c.status == "True")
                        .then_some(())
                }
            },
        )
        .await?;
    }
    Ok(())
}

/// Polls `probe` every 100 ms until it returns Some, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the govdc resource `name` reports condition `type_` with `status` for its latest
/// generation (`status.observedGeneration` equal to `metadata.generation`), and returns it.
pub async fn condition<K>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    // The last status seen, so that a timeout says where the resource got stuck.
    let last = std::sync::Arc::new(Mutex::new(serde_json::Value::Null));
    let found = eventually(&format!("{name} {type_}={status}"), timeout, || {
        let (api, last) = (api.clone(), last.clone());
        async move {
            let object = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
            if let Ok(mut last) = last.lock() {
                *last = object["status"].clone();
            }
            let observed = &object["status"]["observedGeneration"];
            (!observed.is_null() && *observed == object["metadata"]["generation"]).then_some(())?;
            let conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
                serde_json::from_value(object["status"]["conditions"].clone()).ok()?;
            conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == status)
        }
    })
    .await;
    found.map_err(|error| {
        let status = last.lock().map(|s| s.to_string()).unwrap_or_default();
        error.context(format!("last status of {name}: {status}"))
    })
}

/// The ports [`free_port`] hands out: below Linux's ephemeral range (32768-60999), from which the
/// kernel picks the local port of every outgoing connection. A port taken from that range (by
/// binding port 0) can be given to some client's connection in the moment between the test
/// closing it and a server binding it; below the range only another explicit bind can take it.
const TEST_PORTS: std::ops::Range<u16> = 20000..32000;

/// A free TCP port on 127.0.0.1 (closed again at once, for a server the test starts). Ports are
/// handed out in turn from a start that differs per process, so that two calls, or two test
/// processes, do not get the same one.
pub fn free_port() -> u16 {
    static NEXT: OnceLock<Mutex<u16>> = OnceLock::new();
    let span = TEST_PORTS.end - TEST_PORTS.start;
    let next = NEXT.get_or_init(|| {
        let seed = std::process::id()
            ^ std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or_default();
        Mutex::new(u16::try_from(seed % u32::from(span)).unwrap_or_default())
    });
    let mut next = next.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    for _ in 0..span {
        let port = TEST_PORTS.start + *next;
        *next = (*next + 1) % span;
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free port on 127.0.0.1 in {TEST_PORTS:?}")
}

/// Output's stdout and stderr as one string, for assertion messages.
pub fn output_text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A govdc-operator process run against a test cluster, the way a developer runs an operator out
/// of cluster. It is killed when dropped if still running.
pub struct OperatorProcess {
    child: std::process::Child,
    /// `127.0.0.1:<port>` of its /metrics, /livez and /readyz.
    pub metrics_address: String,
    /// Its log file.
    pub log: PathBuf,
}

impl OperatorProcess {
    /// Starts `binary run` on `env`'s cluster, restricted to objects labelled with the test's
    /// prefix, with its own Lease in `lease_namespace`, plus `extra` flags.
    pub fn start(
        binary: &Path,
        env: &TestEnv,
        lease_namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> OperatorProcess {
        OperatorProcess::start_as(
            binary,
            env,
            &env.kubeconfig,
            lease_namespace,
            identity,
            extra,
        )
    }

    /// Like [`OperatorProcess::start`], with the credentials of another kubeconfig (a
    /// ServiceAccount's, say).
    pub fn start_as(
        binary: &Path,
        env: &TestEnv,
        kubeconfig: &Path,
        lease_namespace: &str,
        identity: &str,
        extra: &[&str],
    ) -> OperatorProcess {
        let metrics_address = format!("127.0.0.1:{}", free_port());
        let dir = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        let log = dir.join(format!("{}-{identity}.log", env.prefix));
        let file = std::fs::File::create(&log)
            .unwrap_or_else(|e| panic!("creating {}: {e}", log.display()));
        let child = Command::new(binary)
            .arg("run")
            .arg("--kubeconfig")
            .arg(kubeconfig)
            .args(["--metrics-address", &metrics_address])
            .args(["--object-selector", &env.selector()])
            .args([
                "--lease-name",
                &env.prefix,
                "--lease-namespace",
                lease_namespace,
            ])
            .args([
                "--identity",
                identity,
                "--log-format",
                "json",
                "--log-filter",
                "info,govdc_operator=debug",
            ])
            .args(extra)
            .stdout(std::process::Stdio::null())
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        OperatorProcess {
            child,
            metrics_address,
            log,
        }
    }

    /// Sends SIGTERM and waits up to `timeout` for the process to exit; returns whether it exited
    /// successfully.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs a path of its HTTP server; returns the status code and body, or None when nothing
    /// answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        use std::io::{Read, Write};
        let mut stream = std::net::TcpStream::connect(&self.metrics_address).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.metrics_address
        )
        .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        let code = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default();
        Some((code, body))
    }
}

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A ValidatingAdmissionPolicy (and its binding) that refuses every CREATE and UPDATE of one
/// resource in the namespaces a selector picks: a refusal by the API server that no validation of
/// a spec can foresee. Both are removed when it is dropped.
pub struct RefusingPolicy<'a> {
    env: &'a TestEnv,
    /// The policy's (and its binding's) name, as the API server's refusal names them.
    pub name: String,
}

impl<'a> RefusingPolicy<'a> {
    /// Installs `<prefix>-<suffix>`, refusing `resource` of `api_group` (`""` for the core
    /// group, version v1) in the namespaces `namespace_selector` (a LabelSelector) picks, with
    /// `message`.
    pub fn install(
        env: &'a TestEnv,
        suffix: &str,
        api_group: &str,
        resource: &str,
        namespace_selector: serde_json::Value,
        message: &str,
    ) -> RefusingPolicy<'a> {
        let name = format!("{}-{suffix}", env.prefix);
        let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": [
            {
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
                "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
                "spec": {
                    "failurePolicy": "Fail",
                    "matchConstraints": {
                        "resourceRules": [{"apiGroups": [api_group], "apiVersions": ["v1"], "operations": ["CREATE", "UPDATE"], "resources": [resource]}],
                        "namespaceSelector": namespace_selector,
                    },
                    "validations": [{"expression": "false", "message": message}],
                },
            },
            {
                "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
                "metadata": {"name": name, "labels": {TEST_LABEL: env.prefix}},
                "spec": {"policyName": name, "validationActions": ["Deny"], "matchResources": {"namespaceSelector": namespace_selector}},
            },
        ]});
        let output = env.kubectl_with_input(
            &[
                "apply",
                "--server-side",
                "--field-manager",
                "govdc-tests",
                "-f",
                "-",
            ],
            &list.to_string(),
        );
        assert!(
            output.status.success(),
            "installing the policy {name}: {}",
            output_text(&output)
        );
        RefusingPolicy { env, name }
    }
}

impl Drop for RefusingPolicy<'_> {
    fn drop(&mut self) {
        for kind in [
            "validatingadmissionpolicybinding",
            "validatingadmissionpolicy",
        ] {
            let _ = self
                .env
                .kubectl(&["delete", kind, &self.name, "--ignore-not-found"]);
        }
    }
}
