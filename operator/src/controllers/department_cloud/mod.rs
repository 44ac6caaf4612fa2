//! The DepartmentCloud controller: read -> validate -> build -> apply -> prune -> report.

pub mod read;
pub mod report;
pub mod validate;

use std::sync::Arc;

use govdc_crds::DepartmentCloud;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::{Context, Reconciled, Running, instrumented};
use crate::error::Result;

/// The controller's label in metrics and logs.
pub const NAME: &str = "department_cloud";

impl Reconciled for DepartmentCloud {
    fn observed_generation(&self) -> Option<i64> {
        self.status.as_ref().and_then(|s| s.observed_generation)
    }
}

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
    guard: Arc<DeserializeGuard<DepartmentCloud>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |cloud| {
        reconcile_valid(cloud, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(department_cloud = %cloud.metadata.name.as_deref().unwrap_or_default()))]
async fn reconcile_valid(cloud: Arc<DepartmentCloud>, ctx: Arc<Context>) -> Result<Action> {
    let inputs = read::read(&ctx.client, &cloud).await?;
    let verdict = validate::validate(&cloud, &inputs);
    report::write(&ctx, &cloud, &verdict).await?;
    Ok(Action::requeue(super::RESYNC_INTERVAL))
}
