//! Test support for govdc: every test that needs Kubernetes runs on a real local control plane
//! (etcd, kube-apiserver and kube-controller-manager built from Go modules by
//! `tests/controlplane/build.sh` and run by `govdc-cluster`).
//!
//! - [`TestEnv::new`] starts or reuses a named cluster once per test binary, and hands the test a
//!   [`kube::Client`] and a unique name prefix. When the [`TestEnv`] is dropped, the namespaces and
//!   cluster-scoped govdc resources labelled with that prefix are deleted.
//! - A test that needs the control plane fails loudly when it cannot be had; it never passes by
//!   skipping.
//!
//! By job: [`binaries`] builds what tests run (the control plane, the node parts), [`clusters`]
//! starts named clusters, [`env`] is a test's environment on one, [`fixtures`] the objects tests
//! share, [`process`] the operator processes tests start, [`wait`] polling for what a test
//! expects, [`hub`] the hub processes, [`seeded`] seeded randomness. Everything but the fixtures
//! is re-exported here.

pub mod binaries;
pub mod clusters;
pub mod env;
pub mod fixtures;
pub mod hub;
pub mod process;
pub mod seeded;
pub mod wait;

pub use binaries::{
    controlplane_bin_dir, ensure_controlplane_built, ensure_nodes_built, govdc_cluster_bin,
    helm_bin, kube_bin, repo_root,
};
pub use clusters::{
    client_for, cluster_kubeconfig, cluster_with_feature_gates_kubeconfig,
    cluster_with_nodes_kubeconfig,
};
pub use env::{RefusingPolicy, TEST_LABEL, TestEnv, install_crds, unique_prefix};
pub use process::{OperatorProcess, free_port, http_get, output_text};
pub use wait::{condition, eventually};
