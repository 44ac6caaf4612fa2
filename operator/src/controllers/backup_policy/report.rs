//! The report step of BackupPolicies the controller itself writes: a spec that cannot run. Once
//! a policy runs, its replicator reports (see [`super::replicator`]), so that one writer owns the
//! status at a time.

use govdc_crds::{BackupPolicy, BackupPolicyStatus};

use crate::controllers::Context;
use crate::error::Result;
use crate::pipeline::conditions::{DEGRADED, Observed, PROGRESSING, READY};
use crate::pipeline::report::resource_status;
use crate::pipeline::report::{Problem, problem_conditions, report};

resource_status!(BackupPolicyStatus);

/// The conditions for a policy whose replicator is starting.
pub fn starting() -> Vec<Observed> {
    vec![
        Observed::no(READY, "InitialSync", "replication is starting"),
        Observed::yes(PROGRESSING, "InitialSync", "replication is starting"),
        Observed::no(DEGRADED, "AsExpected", "nothing failed"),
    ]
}

/// Writes `observed` (or the problems' conditions) if the status changed.
pub async fn write(
    ctx: &Context,
    policy: &BackupPolicy,
    problems: &[Problem],
    observed: Vec<Observed>,
) -> Result<()> {
    let current = policy.status.clone().unwrap_or_default();
    let observed = problem_conditions(problems).unwrap_or(observed);
    report(
        ctx,
        policy,
        policy.status.as_ref(),
        current,
        &observed,
        problems,
    )
    .await?;
    Ok(())
}
