//! The ExchangeNode controller: read -> validate -> build -> apply -> prune -> report.

pub mod read;
pub mod report;
pub mod validate;

use std::sync::Arc;

use govdc_crds::ExchangeNode;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::controller::Action;
use tokio::sync::watch;

use super::{Context, Running, instrumented};
use crate::error::Result;

/// The controller's label in metrics and logs.
pub const NAME: &str = "exchange_node";

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
    guard: Arc<DeserializeGuard<ExchangeNode>>,
    ctx: Arc<Context>,
) -> Result<Action> {
    instrumented(NAME, &ctx, &guard, |node| {
        reconcile_valid(node, ctx.clone())
    })
    .await
}

#[tracing::instrument(skip_all, fields(exchange_node = %super::display_name(node.as_ref())))]
async fn reconcile_valid(node: Arc<ExchangeNode>, ctx: Arc<Context>) -> Result<Action> {
    let inputs = read::read(&ctx.client, &node).await?;
    let problems = validate::validate(&node, &inputs);
    report::write(&ctx, &node, &problems).await?;
    Ok(Action::requeue(super::RESYNC_INTERVAL))
}
