//! Start-up check that govdc's CRDs are installed and Established before any watch starts: a
//! watch on a missing resource would only log errors, while this names what is missing.

use std::time::Duration;

use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::{Api, Client};

use super::http::{Phase, Readiness};

/// How often the CRDs are looked at again while some are missing.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// Names of the CRDs the operator needs.
pub fn required_crd_names() -> Vec<String> {
    govdc_crds::custom_resource_definitions()
        .into_iter()
        .filter_map(|crd| crd.metadata.name)
        .collect()
}

/// Which of the required CRDs are not installed or not yet Established.
pub async fn missing_crds(client: &Client) -> kube::Result<Vec<String>> {
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    let mut missing = Vec::new();
    for name in required_crd_names() {
        let established = api.get_opt(&name).await?.is_some_and(|crd| {
            crd.status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True")
        });
        if !established {
            missing.push(name);
        }
    }
    Ok(missing)
}

/// Waits until every required CRD is Established, reporting the missing ones through /readyz
/// and the log. Transient API errors are logged and retried.
pub async fn wait_for_crds(client: &Client, readiness: &Readiness) {
    let mut last_reported: Option<Vec<String>> = None;
    loop {
        match missing_crds(client).await {
            Ok(missing) if missing.is_empty() => return,
            Ok(missing) => {
                if last_reported.as_ref() != Some(&missing) {
                    tracing::warn!(
                        missing = %missing.join(", "),
                        "govdc CRDs are not installed or not Established; install them with `kubectl apply --server-side -f crds/` or the Helm chart"
                    );
                    readiness.set(Phase::WaitingForCrds(missing.clone()));
                    last_reported = Some(missing);
                }
            }
            Err(error) => tracing::warn!(%error, "checking govdc CRDs failed; retrying"),
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}
