//! A test's environment on a cluster: its client, its unique prefix, the clean-up of what
//! carries the prefix's label, the CRDs, and an admission policy that refuses on purpose.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::{Api, Client};

use crate::binaries::{govdc_cluster_bin, kube_bin, repo_root};
use crate::clusters::{
    client_for, cluster_kubeconfig, cluster_with_feature_gates_kubeconfig,
    cluster_with_nodes_kubeconfig, run,
};
use crate::process::output_text;
use crate::wait::eventually;

/// The label every object a test creates carries, with the test's prefix as value.
pub const TEST_LABEL: &str = "govdc.io/test";

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
