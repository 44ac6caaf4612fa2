//! The report step of DepartmentClouds: conditions and status from what validation found and
//! what the API server accepted.

use govdc_crds::{DepartmentCloud, DepartmentCloudStatus};

use crate::controllers::{Context, Problem, problem_conditions, report};
use crate::error::Result;
use crate::pipeline::conditions::{Observed, PROGRESSING, READY};

resource_status!(DepartmentCloudStatus);

/// The conditions for a validation verdict.
pub fn conditions_for(problems: &[Problem]) -> Vec<Observed> {
    problem_conditions(problems).unwrap_or_else(|| {
        vec![
            Observed::no(
                READY,
                "NotProvisioned",
                "the spec is valid; this operator version does not provision tenant namespaces yet",
            ),
            Observed::no(PROGRESSING, "NotProvisioned", "the spec is valid"),
        ]
    })
}

/// Writes the status if it changed.
pub async fn write(ctx: &Context, cloud: &DepartmentCloud, problems: &[Problem]) -> Result<()> {
    let current = cloud.status.clone().unwrap_or_default();
    report(
        ctx,
        cloud,
        cloud.status.as_ref(),
        current,
        &conditions_for(problems),
        problems,
    )
    .await?;
    Ok(())
}
