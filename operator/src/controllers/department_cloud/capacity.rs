//! The data center's capacity (configured at install) and the queue of DepartmentClouds waiting
//! for it. A tenant's demand is its tenant-wide quota (or, without one, the sum of its
//! environments' quotas). Requests are served in order of creation: a tenant is admitted when
//! its demand fits beside every tenant already admitted and every tenant created before it that
//! still waits, so a small late request never overtakes an earlier one.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, OnceLock};

use govdc_crds::{DepartmentCloud, DepartmentCloudSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::ResourceExt;
use kube::core::error_boundary::DeserializeGuard;
use kube::runtime::reflector::Store;

use crate::quantity::{self, Amounts};

/// The condition type reporting whether the tenant fits in the data center.
pub const CAPACITY_AVAILABLE: &str = "CapacityAvailable";

/// What a DepartmentCloud asks of the data center.
pub fn demand(spec: &DepartmentCloudSpec) -> Result<Amounts, quantity::QuantityError> {
    if let Some(quota) = &spec.quota {
        return quantity::parse_all(quota);
    }
    let mut total = Amounts::new();
    for environment in &spec.environments {
        if let Some(quota) = &environment.quota {
            quantity::add(&mut total, &quantity::parse_all(quota)?);
        }
    }
    Ok(total)
}

/// One tenant in the capacity queue.
#[derive(Clone, Debug, PartialEq)]
pub struct Queued {
    /// The DepartmentCloud's name.
    pub name: String,
    /// When it was created; the queue's order.
    pub created: Option<Time>,
    /// Its demand.
    pub demand: Amounts,
    /// Whether it holds capacity already.
    pub admitted: bool,
}

impl Queued {
    fn order(&self) -> (Option<jiff::Timestamp>, &str) {
        (self.created.as_ref().map(|t| t.0), &self.name)
    }
}

/// The capacity decision for one tenant.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// No capacity is configured.
    Unlimited,
    /// The tenant fits.
    Admitted,
    /// The tenant waits: what is missing, and how many earlier requests wait ahead of it.
    Waiting {
        /// Per resource, how much more capacity the tenant needs.
        missing: Amounts,
        /// Tenants created earlier that still wait.
        ahead: usize,
    },
}

/// Decides whether `me` fits in `capacity` beside `others` (pure).
pub fn decide(capacity: &Amounts, me: &Queued, others: &[Queued]) -> Decision {
    let mut committed = Amounts::new();
    let mut ahead = 0;
    for other in others.iter().filter(|o| o.name != me.name) {
        if other.admitted {
            quantity::add(&mut committed, &other.demand);
        } else if other.order() < me.order() {
            quantity::add(&mut committed, &other.demand);
            ahead += 1;
        }
    }
    quantity::add(&mut committed, &me.demand);
    let missing = quantity::excess(&committed, capacity);
    if missing.is_empty() {
        Decision::Admitted
    } else {
        Decision::Waiting { missing, ahead }
    }
}

/// The capacity and who holds it. Decisions are taken one at a time, so two tenants reconciled
/// at once can never both take the last of it; admissions are remembered here until their status
/// is written, and rebuilt from status after a restart.
pub struct CapacityLedger {
    capacity: Option<Amounts>,
    admitted: Mutex<BTreeMap<String, Amounts>>,
    store: OnceLock<Store<DeserializeGuard<DepartmentCloud>>>,
}

impl CapacityLedger {
    /// A ledger for the given capacity; `None` means unlimited.
    pub fn new(capacity: Option<Amounts>) -> Arc<CapacityLedger> {
        Arc::new(CapacityLedger {
            capacity,
            admitted: Mutex::default(),
            store: OnceLock::new(),
        })
    }

    /// Connects the ledger to the controller's watch cache of DepartmentClouds.
    pub fn attach(&self, store: Store<DeserializeGuard<DepartmentCloud>>) {
        let _ = self.store.set(store);
    }

    /// The configured capacity.
    pub fn capacity(&self) -> Option<&Amounts> {
        self.capacity.as_ref()
    }

    /// Decides for `cloud`, whose demand is `demand`, and records an admission.
    pub fn decide(&self, cloud: &DepartmentCloud, wanted: &Amounts) -> Decision {
        let Some(capacity) = &self.capacity else {
            return Decision::Unlimited;
        };
        let mut admitted = self
            .admitted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let others: Vec<Queued> = self
            .store
            .get()
            .map(|store| store.state())
            .unwrap_or_default()
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|other| other.metadata.deletion_timestamp.is_none())
            .filter_map(|other| {
                let name = other.name_any();
                // What this ledger admitted, else what the status says is held, else waiting.
                let (demand, admitted) = match admitted.get(&name) {
                    Some(held) => (held.clone(), true),
                    None => (demand(&other.spec).ok()?, holds_capacity(other)),
                };
                Some(Queued {
                    admitted,
                    demand,
                    created: other.metadata.creation_timestamp.clone(),
                    name,
                })
            })
            .collect();
        let me = Queued {
            name: cloud.name_any(),
            created: cloud.metadata.creation_timestamp.clone(),
            demand: wanted.clone(),
            admitted: false,
        };
        let decision = decide(capacity, &me, &others);
        match decision {
            Decision::Admitted => {
                admitted.insert(me.name, me.demand);
            }
            _ => {
                admitted.remove(&me.name);
            }
        }
        decision
    }

    /// Gives a deleted tenant's capacity back.
    pub fn release(&self, name: &str) {
        self.admitted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .remove(name);
    }
}

/// Whether a DepartmentCloud's status says it holds capacity.
fn holds_capacity(cloud: &DepartmentCloud) -> bool {
    cloud.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.type_ == CAPACITY_AVAILABLE && c.status == "True")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(name: &str, created: i64, cpu: i128, admitted: bool) -> Queued {
        Queued {
            name: name.into(),
            created: Some(Time(jiff::Timestamp::from_second(created).expect("time"))),
            demand: Amounts::from([("requests.cpu".into(), cpu * 1000)]),
            admitted,
        }
    }

    fn capacity(cpu: i128) -> Amounts {
        Amounts::from([("requests.cpu".into(), cpu * 1000)])
    }

    #[test]
    fn a_request_that_fits_is_admitted() {
        let others = [queued("a", 1, 6, true)];
        assert_eq!(
            decide(&capacity(10), &queued("b", 2, 4, false), &others),
            Decision::Admitted
        );
    }

    #[test]
    fn a_request_that_does_not_fit_waits_saying_what_is_missing() {
        let others = [queued("a", 1, 8, true)];
        let decision = decide(&capacity(10), &queued("b", 2, 4, false), &others);
        assert_eq!(
            decision,
            Decision::Waiting {
                missing: capacity(2),
                ahead: 0
            }
        );
    }

    #[test]
    fn a_later_small_request_does_not_overtake_an_earlier_waiting_one() {
        let others = [queued("a", 1, 6, true), queued("big", 2, 8, false)];
        let decision = decide(&capacity(10), &queued("small", 3, 2, false), &others);
        assert!(
            matches!(decision, Decision::Waiting { ahead: 1, .. }),
            "{decision:?}"
        );
    }

    #[test]
    fn capacity_freed_by_a_deleted_tenant_admits_the_next_in_line() {
        let others = [queued("big", 2, 8, false)];
        assert_eq!(
            decide(&capacity(10), &queued("big", 2, 8, false), &others),
            Decision::Admitted
        );
    }

    #[test]
    fn resources_the_capacity_does_not_limit_are_not_counted() {
        let mut me = queued("a", 1, 1, false);
        me.demand.insert("pods".into(), 1_000_000);
        assert_eq!(decide(&capacity(10), &me, &[]), Decision::Admitted);
    }
}
