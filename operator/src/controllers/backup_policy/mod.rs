//! The BackupPolicy controller: read -> validate -> build -> apply -> prune -> report.

pub mod read;
pub mod report;
pub mod validate;

use std::sync::Arc;

use govdc_crds::BackupPolicy;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::{Context, Running, instrumented};
use crate::error::Result;

/// The controller's label in metrics and logs.
pub const NAME: &str = "backup_policy";

/// Starts the controller.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: watch::Receiver<bool>,
) -> Running {
    super::start(NAME, ctx, selector, concurrency, shutdown, |c| c, reconcile)
}

async fn reconcile(
    guard: Arc<DeserializeGuard<BackupPolicy>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |policy| {
        reconcile_valid(policy, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(backup_policy = %super::display_name(policy.as_ref())))]
async fn reconcile_valid(policy: Arc<BackupPolicy>, ctx: Arc<Context>) -> Result<Action> {
    let inputs = read::read(&ctx.client, &policy).await?;
    let problems = validate::validate(&policy, &inputs);
    report::write(&ctx, &policy, &problems).await?;
    Ok(Action::requeue(super::RESYNC_INTERVAL))
}
