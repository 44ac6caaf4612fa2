//! The report step of OpenDatasets.

use govdc_crds::{OpenDataset, OpenDatasetStatus};

use crate::controllers::{Context, Problem, problem_conditions, report};
use crate::error::Result;
use crate::pipeline::conditions::{Observed, PROGRESSING, READY};

resource_status!(OpenDatasetStatus);

/// The conditions for a validation verdict.
pub fn conditions_for(problems: &[Problem]) -> Vec<Observed> {
    problem_conditions(problems).unwrap_or_else(|| {
        vec![
            Observed::no(
                READY,
                "NotPublished",
                "the spec is valid; this operator version does not publish datasets yet",
            ),
            Observed::no(PROGRESSING, "NotPublished", "the spec is valid"),
        ]
    })
}

/// Writes the status if it changed.
pub async fn write(ctx: &Context, dataset: &OpenDataset, problems: &[Problem]) -> Result<()> {
    let current = dataset.status.clone().unwrap_or_default();
    report(
        ctx,
        dataset,
        dataset.status.as_ref(),
        current,
        &conditions_for(problems),
        problems,
    )
    .await?;
    Ok(())
}
