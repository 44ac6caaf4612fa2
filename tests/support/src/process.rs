//! Processes a test starts: the operator, run as a developer runs it, and free ports for them.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::binaries::repo_root;
use crate::env::TestEnv;

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

    /// Waits until `name` reports condition `type_` with `status` for its latest generation
    /// ([`crate::condition`]) and returns it; panics with the operator's log when it does not
    /// within `timeout`, since that log says why.
    pub async fn condition<K>(
        &self,
        api: &kube::Api<K>,
        name: &str,
        type_: &str,
        status: &str,
        timeout: Duration,
    ) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition
    where
        K: kube::Resource
            + Clone
            + serde::de::DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        crate::condition(api, name, type_, status, timeout)
            .await
            .unwrap_or_else(|e| panic!("{e:#}\n{}", self.logs()))
    }

    /// GETs a path of its HTTP server; returns the status code and body, or None when nothing
    /// answers.
    pub fn get(&self, path: &str) -> Option<(u16, String)> {
        http_get(&self.metrics_address, path)
    }
}

/// A plain HTTP/1.1 GET of `path` at `address` (`127.0.0.1:<port>`): the status code and body,
/// or None when nothing answers within 5 s. The operator's and the hub's probes and metrics.
pub fn http_get(address: &str, path: &str) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
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

impl Drop for OperatorProcess {
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
