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
use kube::runtime::reflector::{ObjectRef, Store};
use tokio::sync::mpsc;

use crate::quantity::{self, Amounts};

/// The condition type reporting whether the tenant fits in the data center.
pub const CAPACITY_AVAILABLE: &str = "CapacityAvailable";

/// The reason of a tenant waiting in the queue.
pub const INSUFFICIENT_CAPACITY: &str = "InsufficientCapacity";

/// The reason of a tenant whose demand is larger than the whole data center.
pub const EXCEEDS_CAPACITY: &str = "ExceedsCapacity";

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

/// Where a tenant stands in the data center.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    /// It holds its demand (admitted, provisioned or being provisioned).
    Holds,
    /// It waits in the queue for its demand.
    Waits,
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
    /// Whether it holds capacity or waits for it.
    pub standing: Standing,
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
    /// The tenant waits: what it lacks beside the tenants holding capacity (empty when it would
    /// fit, but earlier requests are first), and how many earlier requests wait ahead of it.
    Waiting {
        /// Per resource, how much more free capacity this tenant needs: its own shortfall, never
        /// that of the tenants ahead of it.
        missing: Amounts,
        /// Tenants created earlier that still wait.
        ahead: usize,
    },
}

/// Decides whether `me` fits in `capacity` beside `others` (pure). First come, first served: it
/// is admitted only when its demand fits beside every tenant holding capacity and every earlier
/// tenant still waiting, so a small late request never overtakes an earlier one. Tenants that
/// were refused are not among `others` at all: they hold nothing and block nobody.
pub fn decide(capacity: &Amounts, me: &Queued, others: &[Queued]) -> Decision {
    let mut held = Amounts::new();
    let mut queued_ahead = Amounts::new();
    let mut ahead = 0;
    for other in others.iter().filter(|o| o.name != me.name) {
        match other.standing {
            Standing::Holds => quantity::add(&mut held, &other.demand),
            Standing::Waits if other.order() < me.order() => {
                quantity::add(&mut queued_ahead, &other.demand);
                ahead += 1;
            }
            Standing::Waits => {}
        }
    }
    quantity::add(&mut held, &me.demand);
    let missing = quantity::excess(&held, capacity);
    quantity::add(&mut held, &queued_ahead);
    if quantity::excess(&held, capacity).is_empty() {
        Decision::Admitted
    } else {
        Decision::Waiting { missing, ahead }
    }
}

/// The resources where a demand exceeds the whole capacity, with the demand: such a tenant
/// could never be admitted and is refused instead of queued.
pub fn beyond_capacity(demand: &Amounts, capacity: &Amounts) -> Amounts {
    demand
        .iter()
        .filter(|(name, amount)| capacity.get(*name).is_some_and(|c| *amount > c))
        .map(|(name, amount)| (name.clone(), *amount))
        .collect()
}

/// Where one tenant stands by this ledger: what it holds, and what more it waits for. A tenant
/// that grows holds its standing quotas while it waits for the rest; a refused one holds what
/// its standing quotas hold, or nothing, and waits for nothing.
#[derive(Clone, Debug, Default, PartialEq)]
struct Entry {
    held: Option<Amounts>,
    waiting: Option<Amounts>,
}

/// What this ledger decided since it started, by tenant name. Tenants it has not decided yet
/// are read from their status (after a restart).
#[derive(Debug, Default)]
struct Book {
    entries: BTreeMap<String, Entry>,
}

impl Book {
    /// Records where `name` stands now; returns whether that changed.
    fn record(&mut self, name: &str, now: Entry) -> bool {
        self.entries.insert(name.to_owned(), now.clone()) != Some(now)
    }

    fn waiting(&self) -> impl Iterator<Item = &String> {
        self.entries
            .iter()
            .filter(|(_, e)| e.waiting.is_some())
            .map(|(name, _)| name)
    }
}

/// `wanted` less `held`, resource by resource, keeping what remains positive.
fn remainder(wanted: &Amounts, held: &Amounts) -> Amounts {
    wanted
        .iter()
        .map(|(name, amount)| (name.clone(), amount - held.get(name).copied().unwrap_or(0)))
        .filter(|(_, amount)| *amount > 0)
        .collect()
}

/// The capacity and who holds it. Decisions are taken one at a time, so two tenants reconciled
/// at once can never both take the last of it; what was decided is remembered here, and rebuilt
/// from status after a restart. Whenever the queue or the held capacity changes, every waiting
/// tenant is reconciled again, so its message always says what it lacks now.
pub struct CapacityLedger {
    capacity: Option<Amounts>,
    book: Mutex<Book>,
    store: OnceLock<Store<DeserializeGuard<DepartmentCloud>>>,
    recheck: mpsc::UnboundedSender<String>,
    rechecks: Mutex<Option<mpsc::UnboundedReceiver<String>>>,
}

impl CapacityLedger {
    /// A ledger for the given capacity; `None` means unlimited.
    pub fn new(capacity: Option<Amounts>) -> Arc<CapacityLedger> {
        let (recheck, rechecks) = mpsc::unbounded_channel();
        Arc::new(CapacityLedger {
            capacity,
            book: Mutex::default(),
            store: OnceLock::new(),
            recheck,
            rechecks: Mutex::new(Some(rechecks)),
        })
    }

    /// Connects the ledger to the controller's watch cache of DepartmentClouds.
    pub fn attach(&self, store: Store<DeserializeGuard<DepartmentCloud>>) {
        let _ = self.store.set(store);
    }

    /// The tenants to reconcile again because the queue moved, for `Controller::reconcile_on`.
    /// Only the first call gets them; later calls get an empty stream.
    pub fn rechecks(
        &self,
    ) -> impl futures::Stream<Item = ObjectRef<DeserializeGuard<DepartmentCloud>>> + Send + 'static
    {
        let receiver = self
            .rechecks
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .take();
        futures::stream::unfold(receiver, |receiver| async move {
            let mut receiver = receiver?;
            let name = receiver.recv().await?;
            Some((ObjectRef::new(&name), Some(receiver)))
        })
    }

    /// The configured capacity.
    pub fn capacity(&self) -> Option<&Amounts> {
        self.capacity.as_ref()
    }

    fn book(&self) -> std::sync::MutexGuard<'_, Book> {
        self.book
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Asks every waiting tenant but `except` to look again.
    fn recheck_waiting(&self, book: &Book, except: &str) {
        for name in book.waiting().filter(|name| *name != except) {
            // Nobody listens in unit tests; a closed channel loses nothing that matters.
            let _ = self.recheck.send(name.clone());
        }
    }

    /// Decides for `cloud`, whose demand is `wanted` and whose namespaces already hold quotas of
    /// `standing` (summed; None for a tenant not provisioned yet), and records the decision.
    pub fn decide(
        &self,
        cloud: &DepartmentCloud,
        wanted: &Amounts,
        standing: Option<Amounts>,
    ) -> Decision {
        let Some(capacity) = &self.capacity else {
            return Decision::Unlimited;
        };
        let mut book = self.book();
        let mut others = Vec::new();
        let clouds = self
            .store
            .get()
            .map(|store| store.state())
            .unwrap_or_default();
        for other in clouds
            .iter()
            .filter_map(|guard| guard.0.as_ref().ok())
            .filter(|other| other.metadata.deletion_timestamp.is_none())
        {
            let name = other.name_any();
            let created = other.metadata.creation_timestamp.clone();
            let queued = |standing, demand: Amounts| Queued {
                name: name.clone(),
                created: created.clone(),
                demand,
                standing,
            };
            match book.entries.get(&name) {
                Some(entry) => {
                    others.extend(entry.held.clone().map(|d| queued(Standing::Holds, d)));
                    others.extend(entry.waiting.clone().map(|d| queued(Standing::Waits, d)));
                }
                None => {
                    if let (Some(standing), Ok(demand)) =
                        (standing_from_status(other), demand(&other.spec))
                    {
                        others.push(queued(standing, demand));
                    }
                }
            }
        }
        let me = Queued {
            name: cloud.name_any(),
            created: cloud.metadata.creation_timestamp.clone(),
            demand: wanted.clone(),
            standing: Standing::Waits,
        };
        let decision = decide(capacity, &me, &others);
        let entry = match decision {
            Decision::Waiting { .. } => Entry {
                waiting: Some(remainder(
                    wanted,
                    standing.as_ref().unwrap_or(&Amounts::new()),
                )),
                held: standing,
            },
            _ => Entry {
                held: Some(me.demand),
                waiting: None,
            },
        };
        if book.record(&me.name, entry) {
            self.recheck_waiting(&book, &me.name);
        }
        decision
    }

    /// Takes a refused tenant out of the queue. It keeps holding capacity only while quotas of
    /// an earlier generation stand in its namespaces (`standing`, their hard limits summed),
    /// since a refused pass changes nothing: what this ledger admitted it for, or, when it has
    /// not decided for the tenant since it started, what those quotas hold.
    pub fn refuse(&self, name: &str, standing: Option<Amounts>) {
        let mut book = self.book();
        let admitted = book
            .entries
            .get(name)
            .filter(|e| e.waiting.is_none())
            .and_then(|e| e.held.clone());
        let held = standing.map(|quotas| admitted.unwrap_or(quotas));
        if book.record(
            name,
            Entry {
                held,
                waiting: None,
            },
        ) {
            self.recheck_waiting(&book, name);
        }
    }

    /// Whether this ledger counts `name` as holding capacity.
    pub fn holds(&self, name: &str) -> bool {
        self.book()
            .entries
            .get(name)
            .is_some_and(|e| e.held.is_some())
    }

    /// Gives a deleted tenant's capacity back.
    pub fn release(&self, name: &str) {
        let mut book = self.book();
        if book.entries.remove(name).is_some() {
            self.recheck_waiting(&book, name);
        }
    }
}

/// Where a DepartmentCloud's status says it stands, for tenants this ledger has not decided
/// since it started: holding capacity, waiting for it in its current generation, or neither
/// (refused, or not looked at yet).
fn standing_from_status(cloud: &DepartmentCloud) -> Option<Standing> {
    let status = cloud.status.as_ref()?;
    let capacity = status
        .conditions
        .iter()
        .find(|c| c.type_ == CAPACITY_AVAILABLE)?;
    if capacity.status == "True" {
        return Some(Standing::Holds);
    }
    let current = status.observed_generation.is_some()
        && status.observed_generation == cloud.metadata.generation;
    (current && capacity.reason == INSUFFICIENT_CAPACITY).then_some(Standing::Waits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::runtime::reflector::store::Writer;
    use kube::runtime::watcher;
    use std::collections::BTreeSet;

    fn queued(name: &str, created: i64, cpu: i128, admitted: bool) -> Queued {
        Queued {
            name: name.into(),
            created: Some(Time(jiff::Timestamp::from_second(created).expect("time"))),
            demand: Amounts::from([("requests.cpu".into(), cpu * 1000)]),
            standing: if admitted {
                Standing::Holds
            } else {
                Standing::Waits
            },
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
        // It would fit beside what is held; it lacks nothing of its own.
        assert_eq!(
            decision,
            Decision::Waiting {
                missing: Amounts::new(),
                ahead: 1
            }
        );
    }

    #[test]
    fn the_message_names_only_this_tenants_own_shortfall() {
        // 6 held, 8 waiting ahead: the late tenant of 5 lacks 1 of its own, not the 9 that the
        // whole queue lacks.
        let others = [queued("a", 1, 6, true), queued("big", 2, 8, false)];
        let decision = decide(&capacity(10), &queued("late", 3, 5, false), &others);
        assert_eq!(
            decision,
            Decision::Waiting {
                missing: capacity(1),
                ahead: 1
            }
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

    #[test]
    fn a_demand_beyond_the_whole_data_center_is_named() {
        let mut demand = capacity(12);
        demand.insert("pods".into(), 5);
        assert_eq!(beyond_capacity(&demand, &capacity(10)), capacity(12));
        assert!(beyond_capacity(&capacity(10), &capacity(10)).is_empty());
    }

    /// A small deterministic generator, so that the properties below see many shapes of queue
    /// without a dependency.
    struct Rng(u64);

    impl Rng {
        fn next(&mut self, below: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % below
        }
    }

    fn random_queue(rng: &mut Rng) -> Vec<Queued> {
        (0..rng.next(8))
            .map(|n| {
                let cpu = i128::from(rng.next(10) + 1);
                let created = i64::try_from(rng.next(100)).expect("small");
                queued(&format!("t{n}"), created, cpu, rng.next(2) == 0)
            })
            .collect()
    }

    #[test]
    fn property_a_waiting_tenants_shortfall_does_not_depend_on_the_queue() {
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for _ in 0..2000 {
            let others = random_queue(&mut rng);
            let me = queued("me", 50, i128::from(rng.next(10) + 1), false);
            let held: Vec<Queued> = others
                .iter()
                .filter(|o| o.standing == Standing::Holds)
                .cloned()
                .collect();
            let with_queue = decide(&capacity(10), &me, &others);
            let without_queue = decide(&capacity(10), &me, &held);
            let missing = |d: &Decision| match d {
                Decision::Waiting { missing, .. } => missing.clone(),
                _ => Amounts::new(),
            };
            // What it lacks is its own: the same whoever waits beside it.
            assert_eq!(missing(&with_queue), missing(&without_queue), "{others:?}");
        }
    }

    #[test]
    fn property_an_admission_never_overcommits_nor_overtakes() {
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for _ in 0..2000 {
            let others = random_queue(&mut rng);
            let me = queued("me", 50, i128::from(rng.next(10) + 1), false);
            if decide(&capacity(10), &me, &others) != Decision::Admitted {
                continue;
            }
            let mut total = me.demand.clone();
            for other in &others {
                let earlier_waiting =
                    other.standing == Standing::Waits && other.order() < me.order();
                if other.standing == Standing::Holds || earlier_waiting {
                    quantity::add(&mut total, &other.demand);
                }
            }
            assert!(
                quantity::excess(&total, &capacity(10)).is_empty(),
                "admitted past the capacity or ahead of an earlier request: {others:?}"
            );
        }
    }

    #[test]
    fn property_a_demand_that_fits_the_whole_data_center_is_admitted_when_it_is_empty() {
        let mut rng = Rng(7);
        for _ in 0..500 {
            let cpu = i128::from(rng.next(10) + 1);
            assert_eq!(
                decide(&capacity(10), &queued("me", 1, cpu, false), &[]),
                Decision::Admitted
            );
        }
    }

    fn cloud(name: &str, created: i64, cpu: &str) -> DepartmentCloud {
        let mut cloud: DepartmentCloud = serde_json::from_value(serde_json::json!({
            "apiVersion": "govdc.io/v1alpha1", "kind": "DepartmentCloud",
            "metadata": {"name": name, "generation": 1},
            "spec": {
                "department": {"name": "d", "creditCode": "11330000MB00256383", "level": "provincial", "regionCode": "330000"},
                "networkZone": "extranet", "protectionLevel": 3,
                "environments": [{"name": "prod"}], "quota": {"requests.cpu": cpu},
            }
        }))
        .expect("fixture deserializes");
        cloud.metadata.creation_timestamp =
            Some(Time(jiff::Timestamp::from_second(created).expect("time")));
        cloud
    }

    fn ledger_with(clouds: &[DepartmentCloud]) -> Arc<CapacityLedger> {
        let mut writer: Writer<DeserializeGuard<DepartmentCloud>> = Writer::default();
        for cloud in clouds {
            writer.apply_watcher_event(&watcher::Event::Apply(DeserializeGuard(Ok(cloud.clone()))));
        }
        let ledger = CapacityLedger::new(Some(capacity(10)));
        ledger.attach(writer.as_reader());
        ledger
    }

    fn demand_of(cloud: &DepartmentCloud) -> Amounts {
        demand(&cloud.spec).expect("demand")
    }

    #[test]
    fn a_refused_tenant_ahead_in_the_queue_blocks_nobody() {
        let clouds = [
            cloud("first", 1, "6"),
            cloud("invalid", 2, "8"),
            cloud("later", 3, "4"),
        ];
        let ledger = ledger_with(&clouds);
        assert_eq!(
            ledger.decide(&clouds[0], &demand_of(&clouds[0]), None),
            Decision::Admitted
        );
        assert!(matches!(
            ledger.decide(&clouds[1], &demand_of(&clouds[1]), None),
            Decision::Waiting { .. }
        ));
        // The later one waits behind it ...
        assert!(matches!(
            ledger.decide(&clouds[2], &demand_of(&clouds[2]), None),
            Decision::Waiting { ahead: 1, .. }
        ));
        // ... until it is refused (its spec changed to something invalid): then it holds no
        // place, and the later one fits.
        ledger.refuse("invalid", None);
        assert_eq!(
            ledger.decide(&clouds[2], &demand_of(&clouds[2]), None),
            Decision::Admitted
        );
    }

    #[test]
    fn a_refused_tenant_that_never_provisioned_gives_its_capacity_back() {
        let clouds = [cloud("a", 1, "8"), cloud("b", 2, "4")];
        let ledger = ledger_with(&clouds);
        assert_eq!(
            ledger.decide(&clouds[0], &demand_of(&clouds[0]), None),
            Decision::Admitted
        );
        ledger.refuse("a", None);
        assert!(!ledger.holds("a"));
        assert_eq!(
            ledger.decide(&clouds[1], &demand_of(&clouds[1]), None),
            Decision::Admitted
        );
    }

    #[test]
    fn a_refused_tenant_whose_quotas_stand_keeps_what_it_holds() {
        let clouds = [cloud("a", 1, "8"), cloud("b", 2, "4")];
        let ledger = ledger_with(&clouds);
        assert_eq!(
            ledger.decide(&clouds[0], &demand_of(&clouds[0]), None),
            Decision::Admitted
        );
        ledger.refuse("a", Some(capacity(2)));
        assert!(ledger.holds("a"));
        assert!(matches!(
            ledger.decide(&clouds[1], &demand_of(&clouds[1]), None),
            Decision::Waiting { .. }
        ));
    }

    #[test]
    fn a_tenant_that_grows_beyond_the_free_capacity_keeps_what_it_holds_while_it_waits() {
        let mut clouds = [cloud("a", 1, "6"), cloud("b", 2, "4"), cloud("c", 3, "4")];
        let ledger = ledger_with(&clouds);
        assert_eq!(
            ledger.decide(&clouds[0], &demand_of(&clouds[0]), None),
            Decision::Admitted
        );
        // a asks for 12 while its quotas of 6 stand: it waits for the rest, and keeps its 6.
        clouds[0] = cloud("a", 1, "12");
        let decision = ledger.decide(&clouds[0], &demand_of(&clouds[0]), Some(capacity(6)));
        assert_eq!(
            decision,
            Decision::Waiting {
                missing: capacity(2),
                ahead: 0
            }
        );
        assert!(ledger.holds("a"));
        // b fits beside what a holds (6 + 4), but waits behind a's growth of 6.
        assert!(matches!(
            ledger.decide(&clouds[1], &demand_of(&clouds[1]), None),
            Decision::Waiting { ahead: 1, .. }
        ));
    }

    #[test]
    fn after_a_restart_a_refused_tenant_holds_what_its_standing_quotas_hold() {
        let clouds = [cloud("a", 1, "8"), cloud("b", 2, "4")];
        // A fresh ledger has decided nothing; a's quotas of 8 CPUs stand in its namespaces.
        let ledger = ledger_with(&clouds);
        ledger.refuse("a", Some(capacity(8)));
        assert!(ledger.holds("a"));
        assert!(matches!(
            ledger.decide(&clouds[1], &demand_of(&clouds[1]), None),
            Decision::Waiting { .. }
        ));
    }

    #[test]
    fn every_waiting_tenant_is_told_to_look_again_when_capacity_frees_up() {
        let clouds = [cloud("a", 1, "8"), cloud("b", 2, "4"), cloud("c", 3, "5")];
        let ledger = ledger_with(&clouds);
        let mut rechecks = Box::pin(ledger.rechecks());
        for cloud in &clouds {
            ledger.decide(cloud, &demand_of(cloud), None);
        }
        let drain = |rechecks: &mut std::pin::Pin<Box<_>>| {
            let mut names = BTreeSet::new();
            while let Some(Some(reference)) =
                futures::FutureExt::now_or_never(futures::StreamExt::next(rechecks))
            {
                let reference: ObjectRef<DeserializeGuard<DepartmentCloud>> = reference;
                names.insert(reference.name);
            }
            names
        };
        drain(&mut rechecks);
        ledger.release("a");
        assert_eq!(
            drain(&mut rechecks),
            BTreeSet::from(["b".to_owned(), "c".to_owned()])
        );
        // Deciding again without a change asks nobody.
        ledger.decide(&clouds[1], &demand_of(&clouds[1]), None);
        ledger.decide(&clouds[1], &demand_of(&clouds[1]), None);
        let asked = drain(&mut rechecks);
        assert_eq!(
            asked,
            BTreeSet::from(["c".to_owned()]),
            "b's admission moves c up"
        );
        ledger.decide(&clouds[1], &demand_of(&clouds[1]), None);
        assert!(drain(&mut rechecks).is_empty());
    }

    #[test]
    fn property_the_ledger_never_holds_more_than_the_capacity() {
        let mut rng = Rng(42);
        for _ in 0..200 {
            let clouds: Vec<DepartmentCloud> = (0..6)
                .map(|n| {
                    let cpu = (rng.next(12) + 1).to_string();
                    cloud(&format!("t{n}"), i64::from(n), &cpu)
                })
                .collect();
            let ledger = ledger_with(&clouds);
            for _ in 0..30 {
                let pick = &clouds[usize::try_from(rng.next(6)).expect("small")];
                match rng.next(4) {
                    0 => {
                        // Quotas stand only where the ledger admitted the tenant.
                        let standing = ledger.holds(&pick.name_any()).then(|| demand_of(pick));
                        ledger.refuse(&pick.name_any(), standing.filter(|_| rng.next(2) == 0));
                    }
                    1 => ledger.release(&pick.name_any()),
                    _ => {
                        let demand = demand_of(pick);
                        if beyond_capacity(&demand, &capacity(10)).is_empty() {
                            ledger.decide(pick, &demand, None);
                        } else {
                            ledger.refuse(&pick.name_any(), None);
                        }
                    }
                }
                let book = ledger.book();
                let mut held = Amounts::new();
                for demand in book.entries.values().filter_map(|e| e.held.as_ref()) {
                    quantity::add(&mut held, demand);
                }
                assert!(
                    quantity::excess(&held, &capacity(10)).is_empty(),
                    "{book:?}"
                );
            }
        }
    }
}
