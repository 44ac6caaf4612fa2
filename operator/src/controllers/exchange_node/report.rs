//! The report step of ExchangeNodes.

use govdc_crds::{ExchangeNode, ExchangeNodeStatus};

use crate::controllers::{Context, Problem, problem_conditions, report};
use crate::error::Result;
use crate::pipeline::conditions::{Observed, PROGRESSING, READY};

resource_status!(ExchangeNodeStatus);

/// The conditions for a validation verdict.
pub fn conditions_for(problems: &[Problem]) -> Vec<Observed> {
    problem_conditions(problems).unwrap_or_else(|| {
        vec![
            Observed::no(
                READY,
                "HubNotDeployed",
                "the spec is valid; this operator version does not deploy hub nodes yet",
            ),
            Observed::no(PROGRESSING, "HubNotDeployed", "the spec is valid"),
        ]
    })
}

/// Writes the status if it changed.
pub async fn write(ctx: &Context, node: &ExchangeNode, problems: &[Problem]) -> Result<()> {
    let current = node.status.clone().unwrap_or_default();
    report(
        ctx,
        node,
        node.status.as_ref(),
        current,
        &conditions_for(problems),
        problems,
    )
    .await?;
    Ok(())
}
