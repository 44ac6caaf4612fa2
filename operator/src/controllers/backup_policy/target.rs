//! The standby's side: a client from the kubeconfig Secret, and the writes replication makes
//! there — server-side apply of copies with the dedicated field manager, deletion marks, deletes,
//! and the failover fence.

use std::time::Duration;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Api, Client, Config};
use serde_json::{Value, json};

use super::clean::{POLICY_LABEL, SOURCE_DELETED_AT_ANNOTATION};
use super::source::list_all;

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
        other => Failure::Unreachable(other.to_string()),
    }
}

/// A client for the cluster a kubeconfig (YAML) points at, with timeouts so that a dead target
/// fails a write in seconds instead of hanging the replicator.
pub async fn client_from_kubeconfig(yaml: &str) -> Result<Client, String> {
    let kubeconfig = Kubeconfig::from_yaml(yaml).map_err(|e| format!("parsing kubeconfig: {e}"))?;
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("loading kubeconfig: {e}"))?;
    config.connect_timeout = Some(Duration::from_secs(3));
    config.read_timeout = Some(Duration::from_secs(15));
    config.write_timeout = Some(Duration::from_secs(15));
    Client::try_from(config).map_err(|e| format!("building a client: {e}"))
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

/// Every copy of `resource` the policy made on the target. A kind the target does not serve has
/// no copies.
pub async fn list_copies(
    client: &Client,
    resource: &ApiResource,
    policy: &str,
) -> Result<Vec<Value>, Failure> {
    let params = ListParams::default().labels(&format!("{POLICY_LABEL}={policy}"));
    match list_all(client, resource, &params).await {
        Ok(items) => Ok(items),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(Vec::new()),
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
