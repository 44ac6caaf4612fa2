//! The report step of BackupPolicies.

use govdc_crds::{BackupPolicy, BackupPolicyStatus};

use crate::controllers::{Context, Problem, problem_conditions, report};
use crate::error::Result;
use crate::pipeline::conditions::{Observed, PROGRESSING, READY};

resource_status!(BackupPolicyStatus);

/// The conditions for a validation verdict.
pub fn conditions_for(problems: &[Problem]) -> Vec<Observed> {
    problem_conditions(problems).unwrap_or_else(|| {
        vec![
            Observed::no(
                READY,
                "ReplicationNotStarted",
                "the spec is valid; this operator version does not replicate yet",
            ),
            Observed::no(PROGRESSING, "ReplicationNotStarted", "the spec is valid"),
        ]
    })
}

/// Writes the status if it changed.
pub async fn write(ctx: &Context, policy: &BackupPolicy, problems: &[Problem]) -> Result<()> {
    let current = policy.status.clone().unwrap_or_default();
    report(
        ctx,
        policy,
        policy.status.as_ref(),
        current,
        &conditions_for(problems),
        problems,
    )
    .await?;
    Ok(())
}
