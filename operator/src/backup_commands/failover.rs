//! Failover: promotes the standby. A fence on the target (ConfigMap
//! `govdc-system/govdc-failover-<policy>`) is written first, so replication from a primary that
//! comes back never overwrites the promoted copies; then the standby workloads are scaled to the
//! replica counts recorded when they were replicated, and suspended CronJobs resume as they ran on
//! the primary. Running it twice changes nothing the first run did.

use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use kube::api::{DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client, ResourceExt};
use serde_json::{Value, json};

use crate::controllers::backup_policy::clean::{
    POLICY_LABEL, STANDBY_REPLICAS_ANNOTATION, STANDBY_SUSPEND_ANNOTATION,
};
use crate::controllers::backup_policy::kinds;
use crate::controllers::backup_policy::target::{FAILOVER_MANAGER, FENCE_NAMESPACE, fence_name};

/// What a failover did.
#[derive(Debug, Default)]
pub struct FailoverReport {
    /// When the target was first promoted (RFC 3339), kept by later runs.
    pub time: String,
    /// Workloads scaled now (`Kind namespace/name -> replicas`).
    pub scaled: Vec<String>,
    /// Workloads already at their recorded count.
    pub already_running: Vec<String>,
    /// CronJobs whose suspension was set back as it was on the primary.
    pub resumed: Vec<String>,
}

impl FailoverReport {
    /// Standby workloads running at their recorded counts.
    pub fn workloads(&self) -> usize {
        self.scaled.len() + self.already_running.len()
    }
}

/// Writes the fence, or reads the time of the failover that wrote it.
async fn fence(target: &Client, policy: &str) -> Result<String, kube::Error> {
    let configmaps: Api<ConfigMap> = Api::namespaced(target.clone(), FENCE_NAMESPACE);
    if let Some(existing) = configmaps.get_opt(&fence_name(policy)).await?
        && let Some(time) = existing.data.and_then(|d| d.get("time").cloned())
    {
        return Ok(time);
    }
    let params = PatchParams::apply(FAILOVER_MANAGER).force();
    Api::<Namespace>::all(target.clone())
        .patch(
            FENCE_NAMESPACE,
            &params,
            &Patch::Apply(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": FENCE_NAMESPACE}})),
        )
        .await?;
    let time = jiff::Timestamp::now()
        .round(jiff::Unit::Second)
        .unwrap_or_else(|_| jiff::Timestamp::now())
        .to_string();
    configmaps
        .patch(
            &fence_name(policy),
            &params,
            &Patch::Apply(json!({
                "apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": fence_name(policy), "labels": {POLICY_LABEL: policy}},
                "data": {"policy": policy, "time": time},
            })),
        )
        .await?;
    Ok(time)
}

/// Promotes the target of `policy`.
pub async fn failover(target: &Client, policy: &str) -> Result<FailoverReport, kube::Error> {
    let mut report = FailoverReport {
        time: fence(target, policy).await?,
        ..Default::default()
    };
    let params = ListParams::default().labels(&format!("{POLICY_LABEL}={policy}"));
    let patch_params = PatchParams {
        field_manager: Some(FAILOVER_MANAGER.into()),
        ..Default::default()
    };
    for kind_name in ["Deployment", "StatefulSet"] {
        let Some(kind) = kinds::find("apps/v1", kind_name) else {
            continue;
        };
        let api: Api<DynamicObject> = Api::all_with(target.clone(), &kind.api_resource());
        for workload in api.list(&params).await?.items {
            let Some(recorded) = workload
                .annotations()
                .get(STANDBY_REPLICAS_ANNOTATION)
                .and_then(|r| r.parse::<i64>().ok())
            else {
                continue;
            };
            let namespace = workload.namespace().unwrap_or_default();
            let what = format!(
                "{kind_name} {namespace}/{} -> {recorded}",
                workload.name_any()
            );
            if workload.data["spec"]["replicas"].as_i64() == Some(recorded) {
                report.already_running.push(what);
                continue;
            }
            Api::<DynamicObject>::namespaced_with(target.clone(), &namespace, &kind.api_resource())
                .patch(
                    &workload.name_any(),
                    &patch_params,
                    &Patch::Merge(json!({"spec": {"replicas": recorded}})),
                )
                .await?;
            report.scaled.push(what);
        }
    }
    if let Some(kind) = kinds::find("batch/v1", "CronJob") {
        let api: Api<DynamicObject> = Api::all_with(target.clone(), &kind.api_resource());
        for cronjob in api.list(&params).await?.items {
            let Some(suspend) = cronjob
                .annotations()
                .get(STANDBY_SUSPEND_ANNOTATION)
                .map(|s| s == "true")
            else {
                continue;
            };
            if cronjob.data["spec"]["suspend"] == Value::Bool(suspend) {
                continue;
            }
            let namespace = cronjob.namespace().unwrap_or_default();
            Api::<DynamicObject>::namespaced_with(target.clone(), &namespace, &kind.api_resource())
                .patch(
                    &cronjob.name_any(),
                    &patch_params,
                    &Patch::Merge(json!({"spec": {"suspend": suspend}})),
                )
                .await?;
            report
                .resumed
                .push(format!("CronJob {namespace}/{}", cronjob.name_any()));
        }
    }
    report.scaled.sort();
    report.already_running.sort();
    Ok(report)
}

/// Records the failover in the policy's status on the primary, when the primary answers.
pub async fn mark_policy(
    primary: &Client,
    policy: &str,
    report: &FailoverReport,
) -> Result<(), kube::Error> {
    let api: Api<govdc_crds::BackupPolicy> = Api::all(primary.clone());
    let status = json!({
        "apiVersion": "govdc.io/v1alpha1", "kind": "BackupPolicy",
        "status": {"failover": {"time": report.time, "workloadsScaled": report.workloads()}},
    });
    api.patch_status(
        policy,
        &PatchParams::apply(FAILOVER_MANAGER).force(),
        &Patch::Apply(&status),
    )
    .await?;
    Ok(())
}
