//! The exchange hub's side of the failover test: a hub pod reached from the test through
//! `kubectl port-forward` (the test and the `backup failover` command run outside the cluster,
//! whose pod network the machine does not route to), its state made and read through the hub's
//! gRPC API with tokens signed by the key in the node's Secret, and the copies the operator
//! stored.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use govdc_hub_api::auth::{BearerToken, Claims, Role, TokenKey};
use govdc_hub_api::v1::audit_client::AuditClient;
use govdc_hub_api::v1::catalog_client::CatalogClient;
use govdc_hub_api::v1::membership_client::MembershipClient;
use govdc_hub_api::v1::{
    AuditAnchor, AuditHead, Field, GetResourceRequest, ListMembersRequest, RegisterResourceRequest,
    Resource, ShareType, VerifyAuditRequest, VerifyAuditResponse,
};
use govdc_test_support::{eventually, kube_bin};
use k8s_openapi::api::core::v1::Secret;
use kube::{Api, Client};
use serde_json::Value;
use tonic::transport::{Channel, Endpoint};

/// `kubectl port-forward` of one pod port to `127.0.0.1:<port>`, started again whenever it exits
/// (the pod not there yet, replaced, or a connection that failed while the hub was starting),
/// until dropped.
pub struct PortForward {
    /// The local port.
    pub port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl PortForward {
    pub fn start(
        kubeconfig: &Path,
        namespace: &str,
        pod: &str,
        port: u16,
        remote: u16,
    ) -> PortForward {
        let stop = Arc::new(AtomicBool::new(false));
        let args: Vec<String> = vec![
            "kubectl".into(),
            "--kubeconfig".into(),
            kubeconfig.display().to_string(),
            "-n".into(),
            namespace.into(),
            "port-forward".into(),
            "--address".into(),
            "127.0.0.1".into(),
            format!("pod/{pod}"),
            format!("{port}:{remote}"),
        ];
        let thread = std::thread::spawn({
            let stop = stop.clone();
            move || {
                while !stop.load(Ordering::Relaxed) {
                    let child: Option<Child> = Command::new(kube_bin())
                        .args(&args)
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .ok();
                    if let Some(mut child) = child {
                        while !stop.load(Ordering::Relaxed) && matches!(child.try_wait(), Ok(None))
                        {
                            std::thread::sleep(Duration::from_millis(100));
                        }
                        let _ = child.kill();
                        let _ = child.wait();
                    }
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        });
        PortForward {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The forwarded hub's gRPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

impl Drop for PortForward {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A hub node's gRPC API as its clients see it, with tokens signed by the node's key.
pub struct Hub {
    channel: Channel,
    key: TokenKey,
    node: String,
}

impl Hub {
    /// Connects to node `node` at `endpoint`, with the key of the Secret `<node>-hub-key` in
    /// `namespace` of the cluster of `client` (each cluster's copy: the standby's was replicated).
    pub async fn connect(client: &Client, namespace: &str, node: &str, endpoint: &str) -> Hub {
        let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
        let secret_name = format!("{node}-hub-key");
        let key = eventually(
            &format!("Secret {namespace}/{secret_name}"),
            Duration::from_secs(60),
            || async {
                let secret = secrets.get_opt(&secret_name).await.ok()??;
                secret.data?.get("key").map(|k| k.0.clone())
            },
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
        // A lazy channel: the first calls may meet a forward that is still starting.
        let channel = Endpoint::from_shared(endpoint.to_owned())
            .expect("endpoint")
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(15))
            .connect_lazy();
        Hub {
            channel,
            key: TokenKey::new(key).expect("a strong key"),
            node: node.to_owned(),
        }
    }

    fn token(&self, subject: &str, role: Role) -> BearerToken {
        let claims = Claims::new(subject, role, &self.node, Duration::from_secs(600));
        BearerToken::new(&self.key.issue(&claims).expect("issue")).expect("token")
    }

    /// The members' credit codes, sorted; None while the hub does not answer.
    pub async fn members(&self) -> Option<Vec<String>> {
        let mut members = MembershipClient::with_interceptor(
            self.channel.clone(),
            self.token("operator", Role::Admin),
        );
        let mut codes: Vec<String> = members
            .list_members(ListMembersRequest {})
            .await
            .ok()?
            .into_inner()
            .members
            .into_iter()
            .map(|m| m.credit_code)
            .collect();
        codes.sort();
        Some(codes)
    }

    /// Registers an open resource of `provider` (a member) in the catalog.
    pub async fn register(&self, provider: &str, code: &str, name: &str) {
        CatalogClient::with_interceptor(self.channel.clone(), self.token(provider, Role::Member))
            .register_resource(RegisterResourceRequest {
                resource: Some(Resource {
                    code: code.to_owned(),
                    name: name.to_owned(),
                    description: "registered on the primary's hub pod before the failover".into(),
                    fields: vec![Field {
                        name: "licence_no".into(),
                        r#type: "string".into(),
                        description: "licence number".into(),
                        personal: false,
                    }],
                    share_type: ShareType::Unconditional as i32,
                    ..Resource::default()
                }),
            })
            .await
            .unwrap_or_else(|e| panic!("register {code}: {e}"));
    }

    /// The catalog's resource `code` as a member reads it: its provider and name.
    pub async fn resource(&self, member: &str, code: &str) -> Result<(String, String), String> {
        CatalogClient::with_interceptor(self.channel.clone(), self.token(member, Role::Member))
            .get_resource(GetResourceRequest {
                code: code.to_owned(),
            })
            .await
            .map(|r| {
                let r = r.into_inner();
                (r.provider, r.name)
            })
            .map_err(|e| e.to_string())
    }

    /// Verifies the audit chain, against `head` as an anchor recorded outside the node when
    /// given.
    pub async fn verify(&self, head: Option<(i64, String)>) -> VerifyAuditResponse {
        let anchors = head
            .map(|(seq, hash)| AuditAnchor {
                node: self.node.clone(),
                head: Some(AuditHead { seq, hash }),
                recorded_by: "hub-state copy".into(),
                ..Default::default()
            })
            .into_iter()
            .collect();
        AuditClient::with_interceptor(self.channel.clone(), self.token("operator", Role::Admin))
            .verify_audit(VerifyAuditRequest { anchors })
            .await
            .expect("VerifyAudit")
            .into_inner()
    }
}

/// The hub-state manifests (`state.json`) under a restore-point directory.
pub fn manifests(dir: &Path) -> Vec<Value> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(manifests(&path));
        } else if path.file_name().is_some_and(|n| n == "state.json") {
            let text = std::fs::read_to_string(&path).expect("state.json");
            found.push(serde_json::from_str(&text).expect("a manifest"));
        }
    }
    found
}
