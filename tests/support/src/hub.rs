//! The exchange hub (`govdc-hub`) as a real process for tests: its real binary, its real SQLite
//! store in a directory of its own under `target/tmp`, on free 127.0.0.1 ports, logging to
//! `target/test-logs`.
//!
//! ```no_run
//! # fn main() -> anyhow::Result<()> {
//! use govdc_test_support::hub::{HubOptions, HubProcess, hub_bin};
//! let mut hub = HubProcess::start(&hub_bin(), HubOptions::new("national", "national", "extranet"))?;
//! let admin = hub.token("admin", "operator")?;
//! // ... connect a client to hub.endpoint() with `authorization: Bearer {admin}` ...
//! hub.stop()?;      // SIGTERM, graceful
//! hub.restart()?;   // same store, same ports
//! hub.kill();       // SIGKILL, as a crash
//! # Ok(()) }
//! ```
//!
//! Tokens are issued with the binary's own `govdc-hub token issue`, so this module needs no
//! dependency on the hub's crates.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

use crate::{free_port, repo_root, unique_prefix};

/// How long a hub gets to report SERVING.
pub const START_TIMEOUT: Duration = Duration::from_secs(30);

/// `target/debug/govdc-hub`, built once per test binary with `cargo build -p govdc-hub` (for
/// tests outside the hub's crate; the hub's own tests pass `env!("CARGO_BIN_EXE_govdc-hub")`).
/// Panics with cargo's output when the build fails.
pub fn hub_bin() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
        let output = Command::new(cargo)
            .args(["build", "-p", "govdc-hub", "--bin", "govdc-hub"])
            .current_dir(repo_root())
            .output()
            .map_err(|e| format!("running cargo build -p govdc-hub: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "cargo build -p govdc-hub failed:\n{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        // Where cargo put it: CARGO_TARGET_DIR when the caller set one, else the workspace's.
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| repo_root().join("target"));
        Ok(target.join("debug/govdc-hub"))
    });
    match built {
        Ok(path) => path.clone(),
        Err(message) => panic!("{message}"),
    }
}

/// What to start a hub with.
#[derive(Clone, Debug)]
pub struct HubOptions {
    /// The node's name (also the audience of its tokens).
    pub name: String,
    /// `national`, `provincial` or `municipal`.
    pub level: String,
    /// `intranet` or `extranet`.
    pub network: String,
    /// A configuration file's text (the operator's ConfigMap, say). Without it, one is written
    /// from the fields above. Either way the ports, data directory and key file are set by
    /// `GOVDC_HUB_*` overrides.
    pub config_yaml: Option<String>,
    /// More environment variables (`GOVDC_HUB_AUDIT_ALGORITHM`, `GOVDC_HUB_FEDERATION_INTERVAL`).
    pub env: Vec<(String, String)>,
    /// The key file; a fresh random 32-byte key when `None`.
    pub key_file: Option<PathBuf>,
    /// The gRPC port, when a client must know it before the hub starts (an operator's
    /// `--hub-endpoint`); a free one when `None`.
    pub grpc_port: Option<u16>,
    /// Whether the node serves the open-data portal (`GOVDC_HUB_PORTAL_LISTEN` on a free port).
    pub portal: bool,
    /// Whether the node serves the sharing-monitor website (`GOVDC_HUB_MONITOR_LISTEN` on a free
    /// port). A configuration file that names `monitorListen` (the operator's) gets one too, so
    /// that two such hubs on one machine never both bind its port.
    pub monitor: bool,
}

impl HubOptions {
    /// A node called `name` of `level` on `network`.
    pub fn new(name: &str, level: &str, network: &str) -> HubOptions {
        HubOptions {
            name: name.to_owned(),
            level: level.to_owned(),
            network: network.to_owned(),
            config_yaml: None,
            env: Vec::new(),
            key_file: None,
            grpc_port: None,
            portal: false,
            monitor: false,
        }
    }

    /// Adds an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> HubOptions {
        self.env.push((key.to_owned(), value.to_owned()));
        self
    }

    /// Uses `yaml` as the configuration file.
    pub fn config_yaml(mut self, yaml: &str) -> HubOptions {
        self.config_yaml = Some(yaml.to_owned());
        self
    }

    /// Uses the key in `path`.
    pub fn key_file(mut self, path: &Path) -> HubOptions {
        self.key_file = Some(path.to_owned());
        self
    }

    /// Serves the open-data portal on a free port ([`HubProcess::portal_url`]).
    pub fn portal(mut self) -> HubOptions {
        self.portal = true;
        self
    }

    /// Serves the sharing-monitor website on a free port ([`HubProcess::monitor_url`]).
    pub fn monitor(mut self) -> HubOptions {
        self.monitor = true;
        self
    }

    /// Listens for gRPC on `port`.
    pub fn grpc_port(mut self, port: u16) -> HubOptions {
        self.grpc_port = Some(port);
        self
    }
}

/// A running (or stopped) govdc-hub process. Killed when dropped.
pub struct HubProcess {
    bin: PathBuf,
    options: HubOptions,
    /// The test's directory: `config.yaml`, `key`, `data/`.
    pub dir: PathBuf,
    /// The store's directory.
    pub data_dir: PathBuf,
    /// The signing key file.
    pub key_file: PathBuf,
    /// The configuration file passed with `--config`.
    pub config_file: PathBuf,
    grpc_port: u16,
    metrics_port: u16,
    portal_port: Option<u16>,
    monitor_port: Option<u16>,
    /// The log file (each start appends to it).
    pub log: PathBuf,
    child: Option<Child>,
}

impl HubProcess {
    /// Starts `bin serve` with `options` and waits until `/healthz` says SERVING.
    pub fn start(bin: &Path, options: HubOptions) -> anyhow::Result<HubProcess> {
        let prefix = unique_prefix(&format!("hub-{}", options.name));
        let dir = repo_root().join("target/tmp").join(&prefix);
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_file = match &options.key_file {
            Some(path) => path.clone(),
            None => {
                let path = dir.join("key");
                let mut key = vec![0u8; 32];
                use std::io::Read;
                std::fs::File::open("/dev/urandom")
                    .and_then(|mut f| f.read_exact(&mut key))
                    .context("reading /dev/urandom")?;
                std::fs::write(&path, key)
                    .with_context(|| format!("writing {}", path.display()))?;
                path
            }
        };
        let config_file = dir.join("config.yaml");
        let yaml = match &options.config_yaml {
            Some(yaml) => yaml.clone(),
            None => format!(
                "name: {}\nlevel: {}\nnetwork: {}\nregionCode: \"000000\"\nlogFormat: json\n",
                options.name, options.level, options.network
            ),
        };
        std::fs::write(&config_file, yaml)
            .with_context(|| format!("writing {}", config_file.display()))?;
        let logs = repo_root().join("target/test-logs");
        std::fs::create_dir_all(&logs)?;
        let mut hub = HubProcess {
            bin: bin.to_owned(),
            data_dir: dir.join("data"),
            log: logs.join(format!("{prefix}.log")),
            options,
            dir,
            key_file,
            config_file,
            grpc_port: 0,
            metrics_port: 0,
            portal_port: None,
            monitor_port: None,
            child: None,
        };
        // Free ports are found by binding and closing, so another process may take one first:
        // try again with new ones when the hub could not listen.
        for attempt in 1..=3 {
            hub.grpc_port = hub.options.grpc_port.unwrap_or_else(free_port);
            hub.metrics_port = free_port();
            hub.portal_port = hub.options.portal.then(free_port);
            let configured = (hub.options.config_yaml.as_deref())
                .is_some_and(|yaml| yaml.contains("monitorListen"));
            hub.monitor_port = (hub.options.monitor || configured).then(free_port);
            match hub.launch() {
                Ok(()) => return Ok(hub),
                Err(e) if attempt < 3 && hub.logs().contains("listening for") => {
                    eprintln!("hub {}: retrying on other ports: {e:#}", hub.options.name);
                }
                Err(e) => return Err(e),
            }
        }
        bail!("hub {} did not start", hub.options.name)
    }

    /// The `serve` command with this hub's configuration and environment, on `grpc` and
    /// `metrics` ports (a second process on the same store, say).
    pub fn command_on(&self, grpc: u16, metrics: u16) -> Command {
        let mut command = Command::new(&self.bin);
        command
            .arg("serve")
            .arg("--config")
            .arg(&self.config_file)
            .env("GOVDC_HUB_LISTEN", format!("127.0.0.1:{grpc}"))
            .env("GOVDC_HUB_METRICS_LISTEN", format!("127.0.0.1:{metrics}"))
            .env("GOVDC_HUB_DATA_DIR", &self.data_dir)
            .env("GOVDC_HUB_AUTH_KEY_FILE", &self.key_file)
            .env("GOVDC_HUB_LOG", "info,govdc_hub=debug")
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        if let Some(port) = self.portal_port {
            command.env("GOVDC_HUB_PORTAL_LISTEN", format!("127.0.0.1:{port}"));
        }
        if let Some(port) = self.monitor_port {
            command.env("GOVDC_HUB_MONITOR_LISTEN", format!("127.0.0.1:{port}"));
        }
        command
    }

    fn launch(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .with_context(|| format!("opening {}", self.log.display()))?;
        let child = self
            .command_on(self.grpc_port, self.metrics_port)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {}", self.bin.display()))?;
        self.child = Some(child);
        self.wait_ready(START_TIMEOUT)
    }

    /// Waits until `/healthz` answers SERVING; fails early if the process exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let started = Instant::now();
        while started.elapsed() < timeout {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "govdc-hub {} exited with {status} before serving; its log ({}):\n{}",
                    self.options.name,
                    self.log.display(),
                    self.logs()
                );
            }
            if matches!(self.get("/healthz"), Some((200, _))) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        bail!(
            "govdc-hub {} did not report SERVING within {timeout:?}; its log:\n{}",
            self.options.name,
            self.logs()
        )
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.options.name
    }

    /// The running process's pid, None when it is stopped.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `http://127.0.0.1:<port>`, the gRPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.grpc_port)
    }

    /// `127.0.0.1:<port>`, the gRPC address (for grpcurl).
    pub fn grpc_address(&self) -> String {
        format!("127.0.0.1:{}", self.grpc_port)
    }

    /// `127.0.0.1:<port>` of `/metrics` and `/healthz`.
    pub fn metrics_address(&self) -> String {
        format!("127.0.0.1:{}", self.metrics_port)
    }

    /// `http://127.0.0.1:<port>`, the open-data portal, when it serves one.
    pub fn portal_url(&self) -> Option<String> {
        self.portal_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// The sharing-monitor website's base URL, when it serves one.
    pub fn monitor_url(&self) -> Option<String> {
        self.monitor_port.map(|p| format!("http://127.0.0.1:{p}"))
    }

    /// A token for this node, issued by `govdc-hub token issue` with its key, valid for an hour.
    pub fn token(&self, role: &str, subject: &str) -> anyhow::Result<String> {
        self.token_with_ttl(role, subject, "1h")
    }

    /// A token with a given lifetime (`1h`, `1s`).
    pub fn token_with_ttl(&self, role: &str, subject: &str, ttl: &str) -> anyhow::Result<String> {
        issue_token(
            &self.bin,
            &self.key_file,
            &self.options.name,
            role,
            subject,
            ttl,
        )
    }

    /// Sends SIGTERM and waits (up to 20 s) for a graceful exit.
    pub fn stop(&mut self) -> anyhow::Result<ExitStatus> {
        let Some(mut child) = self.child.take() else {
            bail!("hub {} is not running", self.options.name);
        };
        let pid = child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status()?;
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(20) {
            if let Some(status) = child.try_wait()? {
                return Ok(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!(
            "hub {} did not stop within 20 s of SIGTERM",
            self.options.name
        )
    }

    /// Kills the process with SIGKILL, as a crash would.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the hub again on the same store and ports (after [`stop`](Self::stop) or
    /// [`kill`](Self::kill)).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        if self.is_running() {
            bail!("hub {} is still running", self.options.name);
        }
        self.launch()
    }

    /// Whether the process runs.
    pub fn is_running(&mut self) -> bool {
        match &mut self.child {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// What it logged so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// GETs a path of its HTTP port; the status code and body, or None when nothing answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        crate::process::http_get(&self.metrics_address(), path)
    }

    /// Runs `govdc-hub audit verify` on this hub's store.
    pub fn audit_verify(&self) -> anyhow::Result<Output> {
        Command::new(&self.bin)
            .args(["audit", "verify", "--data-dir"])
            .arg(&self.data_dir)
            .output()
            .context("running govdc-hub audit verify")
    }
}

impl Drop for HubProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Issues a token with `bin token issue`.
pub fn issue_token(
    bin: &Path,
    key_file: &Path,
    node: &str,
    role: &str,
    subject: &str,
    ttl: &str,
) -> anyhow::Result<String> {
    let output = Command::new(bin)
        .args(["token", "issue", "--key-file"])
        .arg(key_file)
        .args([
            "--node",
            node,
            "--role",
            role,
            "--subject",
            subject,
            "--ttl",
            ttl,
        ])
        .output()
        .context("running govdc-hub token issue")?;
    if !output.status.success() {
        bail!(
            "govdc-hub token issue failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?.trim().to_owned())
}

/// A hub run the way an ExchangeNode's pod runs it, for tests where no kubelet runs: from the
/// `config.yaml` of the ConfigMap `<name>-hub` and the key of the Secret `<name>-hub-key` the
/// operator made in `namespace`, with only what differs between a pod and this machine
/// overridden (the gRPC port, which the operator was told with `--hub-endpoint`, the data
/// directory, the key's path), and whatever `customize` adds (more environment, the portal).
pub struct NodeHub {
    /// The running hub.
    pub process: HubProcess,
    /// The node's signing key, as the operator made it.
    pub key: Vec<u8>,
}

impl NodeHub {
    /// Waits (up to `timeout`) for the operator's ConfigMap and key Secret of ExchangeNode
    /// `namespace/name`, then starts the hub from them on `grpc_port`.
    pub async fn start(
        client: &kube::Client,
        namespace: &str,
        name: &str,
        grpc_port: u16,
        customize: impl FnOnce(HubOptions) -> HubOptions,
        timeout: Duration,
    ) -> anyhow::Result<NodeHub> {
        use k8s_openapi::api::core::v1::{ConfigMap, Secret};
        let configs: kube::Api<ConfigMap> = kube::Api::namespaced(client.clone(), namespace);
        let secrets: kube::Api<Secret> = kube::Api::namespaced(client.clone(), namespace);
        let config = crate::eventually(
            &format!("ConfigMap {namespace}/{name}-hub"),
            timeout,
            || {
                let configs = configs.clone();
                async move {
                    configs
                        .get_opt(&format!("{name}-hub"))
                        .await
                        .ok()??
                        .data?
                        .get("config.yaml")
                        .cloned()
                }
            },
        )
        .await?;
        let key = crate::eventually(
            &format!("Secret {namespace}/{name}-hub-key"),
            timeout,
            || {
                let secrets = secrets.clone();
                async move {
                    let secret = secrets.get_opt(&format!("{name}-hub-key")).await.ok()??;
                    secret.data?.get("key").map(|k| k.0.clone())
                }
            },
        )
        .await?;
        let dir = repo_root()
            .join("target/tmp")
            .join(unique_prefix(&format!("key-{name}")));
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let key_file = dir.join("key");
        std::fs::write(&key_file, &key)
            .with_context(|| format!("writing {}", key_file.display()))?;
        let options = customize(
            HubOptions::new(name, "", "")
                .config_yaml(&config)
                .key_file(&key_file)
                .grpc_port(grpc_port),
        );
        let bin = hub_bin();
        let process = tokio::task::spawn_blocking(move || HubProcess::start(&bin, options))
            .await
            .context("starting the hub")??;
        Ok(NodeHub { process, key })
    }
}
