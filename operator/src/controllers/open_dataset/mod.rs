//! The OpenDataset controller: read -> validate -> build -> apply -> prune -> report.

pub mod read;
pub mod report;
pub mod validate;

use std::sync::Arc;

use govdc_crds::OpenDataset;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::{Context, Running, instrumented};
use crate::error::Result;

/// The controller's label in metrics and logs.
pub const NAME: &str = "open_dataset";

/// Starts the controller.
pub fn start(
    ctx: Arc<Context>,
    selector: Option<&str>,
    concurrency: u16,
    shutdown: watch::Receiver<bool>,
) -> Running {
    super::start(NAME, ctx, selector, concurrency, shutdown, |c| c, reconcile)
}

async fn reconcile(guard: Arc<DeserializeGuard<OpenDataset>>, ctx: Arc<Context>) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |dataset| {
        reconcile_valid(dataset, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(open_dataset = %super::display_name(dataset.as_ref())))]
async fn reconcile_valid(dataset: Arc<OpenDataset>, ctx: Arc<Context>) -> Result<Action> {
    let inputs = read::read(&ctx.client, &dataset).await?;
    let problems = validate::validate(&dataset, &inputs);
    report::write(&ctx, &dataset, &problems).await?;
    Ok(Action::requeue(super::RESYNC_INTERVAL))
}
