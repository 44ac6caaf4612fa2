//! The report step of DepartmentClouds: status and events from what validation and the capacity
//! check decided and what the API server holds after apply.

use std::collections::BTreeMap;

use govdc_crds::department_cloud::NamespaceStatus;
use govdc_crds::{DepartmentCloud, DepartmentCloudStatus};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::ResourceExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::events::EventType;

use super::build;
use super::capacity::{CAPACITY_AVAILABLE, Decision, EXCEEDS_CAPACITY, INSUFFICIENT_CAPACITY};
use crate::controllers::Context;
use crate::error::Result;
use crate::pipeline::conditions::{DEGRADED, Observed, PROGRESSING, READY};
use crate::pipeline::events;
use crate::pipeline::report::resource_status;
use crate::pipeline::report::{Problem, problem_conditions, report};
use crate::quantity::{self, Amounts};

resource_status!(DepartmentCloudStatus);

/// What a reconcile pass came to.
pub enum Outcome<'a> {
    /// The spec has problems; nothing was applied.
    Invalid {
        /// What is wrong.
        problems: &'a [Problem],
        /// Whether the tenant still holds capacity (its quotas from an earlier generation stand);
        /// None when the data center sets no capacity.
        holds_capacity: Option<bool>,
    },
    /// The tenant waits for capacity; nothing was applied.
    Waiting(&'a Decision),
    /// Everything was applied; these are the objects as the API server holds them.
    Provisioned {
        /// The capacity decision (Admitted or Unlimited).
        decision: &'a Decision,
        /// The applied objects.
        objects: &'a [(ApiResource, DynamicObject)],
    },
    /// Applying failed with this error; the pass will be retried.
    Failed(String),
}

/// The conditions for an outcome (pure).
pub fn conditions_for(outcome: &Outcome<'_>, namespaces: &[NamespaceStatus]) -> Vec<Observed> {
    match outcome {
        Outcome::Invalid {
            problems,
            holds_capacity,
        } => {
            let mut observed = problem_conditions(problems).unwrap_or_default();
            if *holds_capacity == Some(false) {
                observed.push(match problems.iter().find(|p| p.reason == EXCEEDS_CAPACITY) {
                    Some(beyond) => Observed::no(
                        CAPACITY_AVAILABLE,
                        EXCEEDS_CAPACITY,
                        beyond.message.clone(),
                    ),
                    None => Observed::no(
                        CAPACITY_AVAILABLE,
                        "NotQueued",
                        "the tenant holds no capacity and waits in no queue until its spec is corrected",
                    ),
                });
            }
            observed
        }
        Outcome::Waiting(Decision::Waiting { missing, ahead }) => {
            let message = waiting_message(missing, *ahead);
            vec![
                Observed::no(CAPACITY_AVAILABLE, INSUFFICIENT_CAPACITY, message.clone()),
                Observed::no(READY, "WaitingForCapacity", message),
                Observed::no(
                    PROGRESSING,
                    "WaitingForCapacity",
                    "provisioning starts when capacity frees up",
                ),
            ]
        }
        Outcome::Waiting(_) => Vec::new(),
        Outcome::Provisioned { decision, .. } => {
            let capacity = match decision {
                Decision::Unlimited => Observed::yes(
                    CAPACITY_AVAILABLE,
                    "NoCapacityLimit",
                    "the data center sets no capacity",
                ),
                _ => Observed::yes(
                    CAPACITY_AVAILABLE,
                    "Admitted",
                    "the tenant's quota is reserved in the data center's capacity",
                ),
            };
            let inactive: Vec<&str> = namespaces
                .iter()
                .filter(|n| n.phase != "Active")
                .map(|n| n.name.as_str())
                .collect();
            let ready = if inactive.is_empty() {
                Observed::yes(
                    READY,
                    "Provisioned",
                    format!("{} namespace(s) provisioned", namespaces.len()),
                )
            } else {
                Observed::no(
                    READY,
                    "NamespacesNotActive",
                    format!("not active yet: {}", inactive.join(", ")),
                )
            };
            vec![
                capacity,
                ready,
                Observed::no(
                    PROGRESSING,
                    "Provisioned",
                    "every object is in line with the spec",
                ),
                Observed::no(DEGRADED, "AsExpected", "applying succeeded"),
            ]
        }
        Outcome::Failed(error) => vec![
            Observed::no(READY, "ApplyFailed", error.clone()),
            Observed::yes(DEGRADED, "ApplyFailed", error.clone()),
            Observed::yes(
                PROGRESSING,
                "Retrying",
                "applying failed; retrying with back-off",
            ),
        ],
    }
}

/// Why a tenant waits: its own shortfall beside the tenants holding capacity, and how many
/// earlier requests are served first.
pub fn waiting_message(missing: &Amounts, ahead: usize) -> String {
    let ahead_text = match ahead {
        0 => String::new(),
        1 => "1 earlier request waits ahead of it".to_owned(),
        n => format!("{n} earlier requests wait ahead of it"),
    };
    match (missing.is_empty(), ahead) {
        (true, _) => format!(
            "the tenant fits in the free capacity, but {ahead_text} (first come, first served)"
        ),
        (false, 0) => format!(
            "the data center lacks {} for this tenant",
            quantity::describe(missing)
        ),
        (false, _) => format!(
            "the data center lacks {} for this tenant; {ahead_text}",
            quantity::describe(missing)
        ),
    }
}

/// The state of each environment's namespace, from the applied objects.
pub fn namespace_statuses(
    cloud: &DepartmentCloud,
    objects: &[(ApiResource, DynamicObject)],
) -> Vec<NamespaceStatus> {
    cloud
        .spec
        .environments
        .iter()
        .map(|environment| {
            let name = build::namespace_name(cloud, &environment.name);
            let phase = objects
                .iter()
                .find(|(r, o)| r.kind == "Namespace" && o.name_any() == name)
                .map(|(_, o)| {
                    o.data["status"]["phase"]
                        .as_str()
                        .unwrap_or("Active")
                        .to_owned()
                })
                .unwrap_or_else(|| "Missing".to_owned());
            NamespaceStatus {
                environment: environment.name.clone(),
                name,
                phase,
            }
        })
        .collect()
}

/// Quota hard and used, summed over the tenant's ResourceQuotas.
fn quota_sums(objects: &[(ApiResource, DynamicObject)]) -> (Amounts, Amounts) {
    let mut hard = Amounts::new();
    let mut used = Amounts::new();
    for (_, quota) in objects.iter().filter(|(r, _)| r.kind == "ResourceQuota") {
        for (field, total) in [("hard", &mut hard), ("used", &mut used)] {
            let amounts: BTreeMap<String, Quantity> =
                serde_json::from_value(quota.data["status"][field].clone()).unwrap_or_default();
            if let Ok(amounts) = quantity::parse_all(&amounts) {
                quantity::add(total, &amounts);
            }
        }
    }
    (hard, used)
}

fn to_quantities(amounts: Amounts) -> Option<BTreeMap<String, Quantity>> {
    (!amounts.is_empty()).then(|| {
        amounts
            .into_iter()
            .map(|(k, v)| (k, Quantity(quantity::format(v))))
            .collect()
    })
}

/// Writes the status if it changed, with an event when the tenant became Ready or started
/// waiting for capacity.
pub async fn write(ctx: &Context, cloud: &DepartmentCloud, outcome: &Outcome<'_>) -> Result<()> {
    let current = cloud.status.clone().unwrap_or_default();
    let mut next = current.clone();
    if let Outcome::Provisioned { objects, .. } = outcome {
        next.namespaces = namespace_statuses(cloud, objects);
        next.namespace_count = Some(
            i32::try_from(
                next.namespaces
                    .iter()
                    .filter(|n| n.phase != "Missing")
                    .count(),
            )
            .unwrap_or(i32::MAX),
        );
        let (hard, used) = quota_sums(objects);
        next.quota_hard = to_quantities(hard);
        next.quota_used = to_quantities(used);
    }
    let observed = conditions_for(outcome, &next.namespaces);
    let problems = match outcome {
        Outcome::Invalid { problems, .. } => *problems,
        _ => &[],
    };
    let was = |type_: &str| {
        current
            .conditions
            .iter()
            .find(|c| c.type_ == type_)
            .map(|c| (c.status.clone(), c.reason.clone()))
    };
    let ready_before = was(READY);
    report(ctx, cloud, cloud.status.as_ref(), next, &observed, problems).await?;

    let now = observed.iter().find(|o| o.type_ == READY);
    let changed = now
        .is_some_and(|o| ready_before.as_ref() != Some(&(o.status.to_owned(), o.reason.clone())));
    if let (true, Some(ready)) = (changed, now) {
        let (type_, reason) = match (ready.status, ready.reason.as_str()) {
            ("True", _) => (EventType::Normal, "Provisioned"),
            (_, "WaitingForCapacity") => (EventType::Normal, "WaitingForCapacity"),
            _ => return Ok(()),
        };
        events::publish(
            &ctx.recorder,
            &kube::Resource::object_ref(cloud, &()),
            type_,
            reason,
            "Reconcile",
            ready.message.clone(),
        )
        .await;
    }
    Ok(())
}
