//! The binaries tests need, built once per test binary: the control plane (`build.sh`) and
//! the node parts (`build.sh nodes`), each cached by input hash.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

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
