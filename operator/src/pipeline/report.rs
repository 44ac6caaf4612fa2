//! The report step: a pass's outcome as the resource's status — conditions merged so that each
//! keeps its transition time, written only when it changed — and a Warning event for the first
//! problem of a spec that cannot be carried out.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::runtime::events::EventType;

use super::conditions::{self, Observed};
use super::{events, status};
use crate::controllers::{Context, FIELD_MANAGER, Reconciled};
use crate::error::Result;

/// A reason a resource's spec cannot be carried out as it stands: what validation finds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// CamelCase reason for the condition and event.
    pub reason: &'static str,
    /// What is wrong, naming the field.
    pub message: String,
}

impl Problem {
    /// A problem with the given reason and message.
    pub fn new(reason: &'static str, message: impl Into<String>) -> Problem {
        Problem {
            reason,
            message: message.into(),
        }
    }
}

/// The Ready and Progressing conditions of a spec with problems: the first problem's reason,
/// every problem's message.
pub fn problem_conditions(problems: &[Problem]) -> Option<Vec<Observed>> {
    let first = problems.first()?;
    let message = problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Some(vec![
        Observed::no(conditions::READY, first.reason, message),
        Observed::no(
            conditions::PROGRESSING,
            first.reason,
            "waiting for the spec to be corrected",
        ),
    ])
}

/// The status of a govdc resource: conditions and the generation they describe.
pub trait ResourceStatus: Default + Clone + PartialEq + serde::Serialize {
    /// The conditions.
    fn conditions(&self) -> &[Condition];
    /// Replaces the conditions and records the generation they describe.
    fn set_conditions(&mut self, conditions: Vec<Condition>, generation: Option<i64>);
    /// The generation the status describes.
    fn observed_generation(&self) -> Option<i64>;
}

/// The report step: merges `observed` conditions into `next`, writes the status if it changed,
/// and publishes a Warning event for the first problem when the status changed because of it.
/// Returns whether it wrote.
pub async fn report<K, S>(
    ctx: &Context,
    object: &K,
    current: Option<&S>,
    mut next: S,
    observed: &[Observed],
    problems: &[Problem],
) -> Result<bool>
where
    K: Reconciled,
    S: ResourceStatus,
{
    let generation = object.meta().generation;
    let existing = current.map(|s| s.conditions()).unwrap_or_default();
    next.set_conditions(
        conditions::merge(existing, observed, generation, &conditions::now()),
        generation,
    );
    let wrote =
        status::write_if_changed(&ctx.client, FIELD_MANAGER, object, current, &next).await?;
    if wrote && let Some(first) = problems.first() {
        events::publish(
            &ctx.recorder,
            &object.object_ref(&()),
            EventType::Warning,
            first.reason,
            "Validate",
            first.message.clone(),
        )
        .await;
    }
    Ok(wrote)
}

/// Implements [`ResourceStatus`] for a status type with `conditions` and `observed_generation`.
macro_rules! resource_status {
    ($status:ty) => {
        impl $crate::pipeline::report::ResourceStatus for $status {
            fn conditions(&self) -> &[k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition] {
                &self.conditions
            }
            fn set_conditions(
                &mut self,
                conditions: Vec<k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition>,
                generation: Option<i64>,
            ) {
                self.conditions = conditions;
                self.observed_generation = generation;
            }
            fn observed_generation(&self) -> Option<i64> {
                self.observed_generation
            }
        }
    };
}

/// Lets every controller write `resource_status!(TheStatus);`.
pub(crate) use resource_status;
