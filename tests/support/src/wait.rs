//! Waiting for what a test expects: a probe polled until it answers, a condition's status.

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use kube::Api;

/// Polls `probe` every 100 ms until it returns Some, or fails after `timeout` naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut probe: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        if started.elapsed() > timeout {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the govdc resource `name` reports condition `type_` with `status` for its latest
/// generation (`status.observedGeneration` equal to `metadata.generation`), and returns it.
pub async fn condition<K>(
    api: &Api<K>,
    name: &str,
    type_: &str,
    status: &str,
    timeout: Duration,
) -> anyhow::Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>
where
    K: kube::Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    // The last status seen, so that a timeout says where the resource got stuck.
    let last = std::sync::Arc::new(Mutex::new(serde_json::Value::Null));
    let found = eventually(&format!("{name} {type_}={status}"), timeout, || {
        let (api, last) = (api.clone(), last.clone());
        async move {
            let object = serde_json::to_value(api.get_opt(name).await.ok()??).ok()?;
            if let Ok(mut last) = last.lock() {
                *last = object["status"].clone();
            }
            let observed = &object["status"]["observedGeneration"];
            (!observed.is_null() && *observed == object["metadata"]["generation"]).then_some(())?;
            let conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition> =
                serde_json::from_value(object["status"]["conditions"].clone()).ok()?;
            conditions
                .into_iter()
                .find(|c| c.type_ == type_ && c.status == status)
        }
    })
    .await;
    found.map_err(|error| {
        let status = last.lock().map(|s| s.to_string()).unwrap_or_default();
        error.context(format!("last status of {name}: {status}"))
    })
}
