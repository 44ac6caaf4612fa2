//! Cluster lifecycle: `govdc-cluster up` of a named cluster (plain, with nodes, with feature
//! gates), and a client for it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Mutex, OnceLock};

use anyhow::Context;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::binaries::{ensure_nodes_built, govdc_cluster_bin, repo_root};

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

pub(crate) fn run(command: &mut Command) -> Output {
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
