//! The standby's side: a client from the kubeconfig Secret, and the writes replication makes
//! there — server-side apply of copies with the dedicated field manager, deletion marks, deletes,
//! and the failover fence.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{
    ApiResource, DeleteParams, DynamicObject, ListParams, PartialObjectMeta, Patch, PatchParams,
};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

use super::clean::{POLICY_LABEL, SOURCE_DELETED_AT_ANNOTATION};

/// The field manager of every copy replication writes; distinct from the operator's own so that
/// `kubectl get --show-managed-fields` tells a replicated field from a provisioned one.
pub const FIELD_MANAGER: &str = "govdc-backup";

/// The field manager of deletion marks, which must not take fields from the copy's own manager.
pub const MARK_MANAGER: &str = "govdc-backup-deletions";

/// The field manager of failover's scale-ups.
pub const FAILOVER_MANAGER: &str = "govdc-failover";

/// Namespace on the target holding the failover fence, `govdc-failover-<policy>`.
pub const FENCE_NAMESPACE: &str = "govdc-system";

/// Why a write to the target failed, as a reason for status and metrics.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Failure {
    /// No answer: the target is down or the network is.
    Unreachable(String),
    /// The target answered and refused (invalid object, kind not served, forbidden).
    Rejected {
        /// CamelCase reason.
        reason: &'static str,
        /// The API server's message.
        message: String,
    },
}

impl Failure {
    /// The CamelCase reason.
    pub fn reason(&self) -> &'static str {
        match self {
            Failure::Unreachable(_) => "TargetUnreachable",
            Failure::Rejected { reason, .. } => reason,
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        match self {
            Failure::Unreachable(message) => message,
            Failure::Rejected { message, .. } => message,
        }
    }
}

/// Classifies a client error: an answer from the API server is a rejection, anything else means
/// the target could not be reached.
pub fn classify(error: &kube::Error) -> Failure {
    match error {
        kube::Error::Api(status) => {
            let reason = match status.code {
                404 if status.reason == "NotFound"
                    && status
                        .message
                        .contains("the server could not find the requested resource") =>
                {
                    "KindNotServed"
                }
                404 => "NamespaceNotFound",
                403 => "Forbidden",
                409 => "Conflict",
                422 => "Invalid",
                429 => "TooManyRequests",
                code if code >= 500 => "TargetServerError",
                _ => "ApplyRejected",
            };
            Failure::Rejected {
                reason,
                message: status.message.clone(),
            }
        }
        other => Failure::Unreachable(unreachable_message(other)),
    }
}

/// What a person reads when the target gave no answer: the client's error with its causes (a
/// timeout says it timed out, a refusal that it was refused), without the client's type names.
fn unreachable_message(error: &kube::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut timed_out = false;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            timed_out |= io.kind() == std::io::ErrorKind::TimedOut;
        }
        let text = current.to_string();
        let text = text
            .strip_prefix("ServiceError: ")
            .unwrap_or(&text)
            .to_owned();
        if !parts.iter().any(|part| part.contains(&text)) {
            parts.push(text);
        }
        cause = current.source();
    }
    let chain = parts.join(": ");
    if timed_out {
        format!("no answer in time: {chain}")
    } else {
        chain
    }
}

/// Who holds an object on the target.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Holder {
    /// Nothing of that name is there: a copy may be created.
    Nobody,
    /// A copy of this policy (its `govdc.io/backup-policy` mark): it may be written.
    ThisPolicy,
    /// Something this policy did not make (no mark, or another policy's): never written.
    Other,
}

/// Who holds an object of this name on the target, from its labels (None: it does not exist).
pub fn holder(
    labels: Option<&std::collections::BTreeMap<String, String>>,
    exists: bool,
    policy: &str,
) -> Holder {
    match (exists, labels.and_then(|l| l.get(POLICY_LABEL))) {
        (false, _) => Holder::Nobody,
        (true, Some(mark)) if mark == policy => Holder::ThisPolicy,
        (true, _) => Holder::Other,
    }
}

/// Whether the target's object of `kind` and `name` is one its own controllers make in every
/// namespace — the `default` ServiceAccount — which a copy of the source's may replace: it is
/// nobody's to protect.
pub fn made_by_the_target(kind: &str, name: &str) -> bool {
    kind == "ServiceAccount" && name == "default"
}

/// Reads who holds the target's object for `copy` (metadata only), just before a first write.
pub async fn holder_of(
    client: &Client,
    resource: &ApiResource,
    copy: &Value,
    policy: &str,
) -> Result<Holder, Failure> {
    match api_for(client, resource, copy)
        .get_metadata_opt(name_of(copy))
        .await
    {
        Ok(Some(_)) if made_by_the_target(&resource.kind, name_of(copy)) => Ok(Holder::Nobody),
        Ok(Some(object)) => Ok(holder(object.metadata.labels.as_ref(), true, policy)),
        Ok(None) => Ok(Holder::Nobody),
        // The namespace of a copy not yet made: nothing is there.
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Holder::Nobody),
        Err(error) => Err(classify(&error)),
    }
}

/// The metadata of every object of `resource` on the target, marked or not, in pages: what the
/// policy may write and what it must leave alone.
pub async fn list_metadata(
    client: &Client,
    resource: &ApiResource,
) -> Result<Vec<PartialObjectMeta<DynamicObject>>, Failure> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
    let mut params = ListParams::default().limit(500);
    let mut items = Vec::new();
    loop {
        let page = api.list_metadata(&params).await.map_err(|e| classify(&e))?;
        items.extend(page.items);
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => break,
        }
    }
    Ok(items)
}

/// Objects in the target namespace `namespace` that this policy did not make and that are
/// someone's own (not what a controller generated there): what deleting the namespace would
/// take with it. Looked at in every kind the policy replicates, and Pods.
pub async fn others_in_namespace(
    client: &Client,
    namespace: &str,
    kinds: &[super::kinds::Kind],
    policy: &str,
) -> Result<Vec<String>, Failure> {
    let pod = super::kinds::Kind {
        kind: "Pod",
        group: "",
        version: "v1",
        plural: "pods",
        rank: u8::MAX,
        default: false,
    };
    let mut others = Vec::new();
    for kind in kinds.iter().filter(|k| k.kind != "Namespace").chain([&pod]) {
        let api: Api<DynamicObject> =
            Api::namespaced_with(client.clone(), namespace, &kind.api_resource());
        let objects = match api.list(&ListParams::default()).await {
            Ok(list) => list.items,
            // A kind the target does not serve holds nothing.
            Err(kube::Error::Api(status)) if status.code == 404 => continue,
            Err(error) => return Err(classify(&error)),
        };
        for object in objects {
            let ours = object
                .metadata
                .labels
                .as_ref()
                .and_then(|l| l.get(POLICY_LABEL))
                .is_some_and(|mark| mark == policy);
            let value = serde_json::to_value(&object).unwrap_or(Value::Null);
            let generated = made_by_the_target(
                kind.kind,
                object.metadata.name.as_deref().unwrap_or_default(),
            );
            if !ours && !generated && super::clean::replicable(kind, &value) {
                others.push(format!(
                    "{} {}",
                    kind.kind,
                    object.metadata.name.unwrap_or_default()
                ));
            }
        }
    }
    Ok(others)
}

/// The target as messages name it: the kubeconfig Secret, and the cluster and server its
/// current context names.
pub fn describe(secret: &govdc_crds::common::SecretKeyReference, yaml: &str) -> String {
    let place = format!(
        "the target kubeconfig (Secret {}/{}, key {})",
        secret.namespace.as_deref().unwrap_or_default(),
        secret.name,
        secret.key
    );
    let Ok(kubeconfig) = Kubeconfig::from_yaml(yaml) else {
        return place;
    };
    let context = kubeconfig.current_context.as_deref().and_then(|current| {
        kubeconfig
            .contexts
            .iter()
            .find(|c| c.name == current)
            .and_then(|c| c.context.as_ref())
    });
    let cluster = context.and_then(|c| kubeconfig.clusters.iter().find(|k| k.name == c.cluster));
    match cluster {
        Some(cluster) => format!(
            "{place}, cluster {} at {}",
            cluster.name,
            cluster
                .cluster
                .as_ref()
                .and_then(|c| c.server.clone())
                .unwrap_or_default()
        ),
        None => place,
    }
}

/// Why no client could be made for the target from its kubeconfig. The message says which step
/// failed; the client library's error is the source, and [`TargetClientError::chain`] tells both.
#[derive(Debug, thiserror::Error)]
pub enum TargetClientError {
    /// The Secret's text is not a kubeconfig.
    #[error("parsing kubeconfig")]
    Parse(#[source] kube::config::KubeconfigError),
    /// The kubeconfig does not give a usable cluster, user or context.
    #[error("loading kubeconfig")]
    Load(#[source] kube::config::KubeconfigError),
    /// The client could not be built from the loaded configuration.
    #[error("building a client")]
    Build(#[source] kube::Error),
}

impl TargetClientError {
    /// The message and its cause, for the policy's condition. The walk stops at the first cause:
    /// the client library's errors tell their own causes in their text, so going further would
    /// repeat them.
    pub fn chain(&self) -> String {
        let cause = match self {
            TargetClientError::Parse(source) | TargetClientError::Load(source) => {
                source.to_string()
            }
            TargetClientError::Build(source) => crate::error::api_message(source),
        };
        format!("{self}: {cause}")
    }
}

/// A client for the cluster a kubeconfig (YAML) points at, with timeouts so that a dead target
/// fails a write in seconds instead of hanging the replicator, its writes behind the process's
/// leader fence.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<Client, TargetClientError> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(TargetClientError::Parse)?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(TargetClientError::Load)?;
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = Some(Duration::from_secs(15));
    config.write_timeout = Some(Duration::from_secs(15));
    // Behind the leader's fence: a leader frozen past its lease writes nothing to a target
    // either once it resumes.
    crate::runtime::fence::client(config).map_err(TargetClientError::Build)
}

/// The API through which a copy is written.
pub fn api_for(client: &Client, resource: &ApiResource, copy: &Value) -> Api<DynamicObject> {
    match copy["metadata"]["namespace"].as_str() {
        Some(ns) if resource.kind != "Namespace" => {
            Api::namespaced_with(client.clone(), ns, resource)
        }
        _ => Api::all_with(client.clone(), resource),
    }
}

fn name_of(copy: &Value) -> &str {
    copy["metadata"]["name"].as_str().unwrap_or_default()
}

/// Server-side applies a copy, forcing: the copy's fields are the primary's.
pub async fn apply(client: &Client, resource: &ApiResource, copy: &Value) -> Result<(), Failure> {
    api_for(client, resource, copy)
        .patch(
            name_of(copy),
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(copy),
        )
        .await
        .map(|_| ())
        .map_err(|e| classify(&e))
}

/// Records on a copy that its source is gone (`at`, RFC 3339), or clears the record (`None`).
pub async fn mark_deleted(
    client: &Client,
    resource: &ApiResource,
    copy: &Value,
    at: Option<&str>,
) -> Result<(), Failure> {
    let patch = json!({"metadata": {"annotations": {SOURCE_DELETED_AT_ANNOTATION: at}}});
    match api_for(client, resource, copy)
        .patch(
            name_of(copy),
            &PatchParams {
                field_manager: Some(MARK_MANAGER.into()),
                ..Default::default()
            },
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(classify(&error)),
    }
}

/// Deletes a copy; one already gone is fine.
pub async fn delete(client: &Client, resource: &ApiResource, copy: &Value) -> Result<(), Failure> {
    match api_for(client, resource, copy)
        .delete(name_of(copy), &DeleteParams::background())
        .await
    {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(classify(&error)),
    }
}

/// The name of the fence ConfigMap failover leaves on the target.
pub fn fence_name(policy: &str) -> String {
    format!("govdc-failover-{policy}")
}

/// Whether the target was promoted by a failover of `policy`: a promoted target must never be
/// written by replication again, whatever the primary says when it comes back.
pub async fn failed_over(client: &Client, policy: &str) -> Result<bool, Failure> {
    Api::<ConfigMap>::namespaced(client.clone(), FENCE_NAMESPACE)
        .get_opt(&fence_name(policy))
        .await
        .map(|fence| fence.is_some())
        .map_err(|e| classify(&e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api_error(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: message.into(),
            ..Default::default()
        }))
    }

    #[tokio::test]
    async fn a_kubeconfig_that_does_not_parse_says_so_with_the_parsers_words() {
        let Err(error) = client_from_kubeconfig("clusters: [").await else {
            panic!("not YAML, yet a client");
        };
        let TargetClientError::Parse(cause) = &error else {
            panic!("{}", error.chain());
        };
        assert_eq!(error.to_string(), "parsing kubeconfig");
        assert_eq!(error.chain(), format!("parsing kubeconfig: {cause}"));
        assert!(
            error
                .chain()
                .starts_with("parsing kubeconfig: failed to parse kubeconfig YAML: "),
            "{}",
            error.chain()
        );
    }

    #[tokio::test]
    async fn a_kubeconfig_without_a_context_fails_to_load() {
        let Err(error) = client_from_kubeconfig("apiVersion: v1\nkind: Config\n").await else {
            panic!("no context, yet a client");
        };
        assert!(
            matches!(error, TargetClientError::Load(_)),
            "{}",
            error.chain()
        );
        assert!(
            error.chain().starts_with("loading kubeconfig: "),
            "{}",
            error.chain()
        );
    }

    #[test]
    fn only_a_copy_with_this_policys_mark_or_nothing_may_be_written() {
        use std::collections::BTreeMap;
        let marked = |policy: &str| BTreeMap::from([(POLICY_LABEL.to_owned(), policy.to_owned())]);
        assert_eq!(holder(None, false, "p"), Holder::Nobody);
        assert_eq!(holder(Some(&marked("p")), true, "p"), Holder::ThisPolicy);
        assert_eq!(holder(Some(&marked("other")), true, "p"), Holder::Other);
        assert_eq!(holder(Some(&BTreeMap::new()), true, "p"), Holder::Other);
        assert_eq!(holder(None, true, "p"), Holder::Other);
        assert!(made_by_the_target("ServiceAccount", "default"));
        assert!(!made_by_the_target("ServiceAccount", "api"));
        assert!(!made_by_the_target("ConfigMap", "default"));
    }

    #[test]
    fn a_kubeconfig_is_described_by_its_secret_cluster_and_server() {
        let secret = govdc_crds::common::SecretKeyReference {
            namespace: Some("govdc-system".into()),
            name: "dr-kubeconfig".into(),
            key: "kubeconfig".into(),
        };
        let yaml = "apiVersion: v1\nkind: Config\nclusters: [{name: dr, cluster: {server: 'https://10.0.0.9:6443'}}]\nusers: [{name: a, user: {token: t}}]\ncontexts: [{name: dr, context: {cluster: dr, user: a}}]\ncurrent-context: dr\n";
        let text = describe(&secret, yaml);
        assert!(text.contains("Secret govdc-system/dr-kubeconfig"), "{text}");
        assert!(
            text.contains("cluster dr at https://10.0.0.9:6443"),
            "{text}"
        );
        assert!(
            !text.contains("token"),
            "no credential in a message: {text}"
        );
    }

    #[test]
    fn answers_are_rejections_and_silence_is_unreachability() {
        assert_eq!(
            classify(&api_error(422, "Invalid", "bad")).reason(),
            "Invalid"
        );
        assert_eq!(
            classify(&api_error(404, "NotFound", "namespaces \"x\" not found")).reason(),
            "NamespaceNotFound"
        );
        assert_eq!(
            classify(&api_error(
                404,
                "NotFound",
                "the server could not find the requested resource"
            ))
            .reason(),
            "KindNotServed"
        );
        let unreachable = classify(&kube::Error::LinesCodecMaxLineLengthExceeded);
        assert_eq!(unreachable.reason(), "TargetUnreachable");
    }
}
