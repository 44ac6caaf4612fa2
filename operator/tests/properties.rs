//! Properties of the operator's pure steps, over generated inputs: the quantity arithmetic that
//! every quota and capacity check stands on, the capacity queue's decision (never over-commits,
//! first come first served among the demands that fit), and the merge of status conditions
//! (idempotent; a transition time moves only with the status).

use std::collections::BTreeMap;

use govdc_operator::controllers::department_cloud::capacity::{
    Decision, Queued, Standing, beyond_capacity, decide,
};
use govdc_operator::pipeline::conditions::{Observed, merge};
use govdc_operator::quantity::{self, Amounts};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use proptest::prelude::*;

const RESOURCES: [&str; 3] = ["requests.cpu", "requests.memory", "count/pods"];

fn time(second: i64) -> Time {
    Time(jiff::Timestamp::from_second(1_800_000_000 + second).expect("a valid timestamp"))
}

/// A quantity as a person writes one, with the milli-units it stands for.
fn written_quantity() -> impl Strategy<Value = (String, i128)> {
    prop_oneof![
        (0i128..1_000_000).prop_map(|n| (format!("{n}m"), n)),
        (0i128..1_000_000).prop_map(|n| (n.to_string(), n * 1000)),
        (0i128..100_000, 0usize..4).prop_map(|(n, suffix)| {
            let (name, size) = [
                ("Ki", 1i128 << 10),
                ("Mi", 1 << 20),
                ("Gi", 1 << 30),
                ("Ti", 1 << 40),
            ][suffix];
            (format!("{n}{name}"), n * size * 1000)
        }),
        (0i128..100_000, 0usize..4).prop_map(|(n, suffix)| {
            let (name, size) = [
                ("k", 1_000i128),
                ("M", 1_000_000),
                ("G", 1_000_000_000),
                ("T", 1_000_000_000_000),
            ][suffix];
            (format!("{n}{name}"), n * size * 1000)
        }),
        // decimal fractions: 1.5 is 1500m, 0.25Gi a quarter of a gibibyte
        (0i128..10_000_000, 1u32..7).prop_map(|(n, places)| {
            let scale = 10i128.pow(places);
            let text = format!(
                "{}.{:0width$}",
                n / scale,
                n % scale,
                width = places as usize
            );
            // rounded up to a whole milli-unit, as the API server does
            (text, (n * 1000 + scale - 1) / scale)
        }),
        (0i128..1000, 0i32..7)
            .prop_map(|(n, e)| (format!("{n}e{e}"), n * 10i128.pow(e as u32) * 1000)),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Every way of writing a quantity parses to the amount it denotes, with or without a sign.
    #[test]
    fn a_written_quantity_parses_to_what_it_denotes((text, milli) in written_quantity()) {
        prop_assert_eq!(quantity::parse(&text), Ok(milli));
        prop_assert_eq!(quantity::parse(&format!("+{text}")), Ok(milli));
        prop_assert_eq!(quantity::parse(&format!("-{text}")), Ok(-milli));
    }

    /// What the operator writes in messages reads back as the same amount.
    #[test]
    fn a_formatted_amount_parses_back(milli in -(1i128 << 62)..(1i128 << 62)) {
        prop_assert_eq!(quantity::parse(&quantity::format(milli)), Ok(milli));
    }

    /// `same` is what equality of the parsed amounts says, in both orders.
    #[test]
    fn same_is_equality_of_amounts((a, x) in written_quantity(), (b, y) in written_quantity()) {
        prop_assert_eq!(quantity::same(&a, &b), x == y);
        prop_assert_eq!(quantity::same(&a, &b), quantity::same(&b, &a));
        prop_assert!(quantity::same(&a, &quantity::format(x)));
    }

    /// No string, however malformed, makes the parser panic; an overflow is an error.
    #[test]
    fn no_text_panics_the_parser(text in "[-+0-9.eEkKMGTPimi ]{0,40}") {
        let _ = quantity::parse(&text);
    }

    /// Exponents at the ends of their range are errors, not an overflow (the parser
    /// panicked on `1e2147483647` in a debug build before its arithmetic was checked).
    #[test]
    fn extreme_exponents_are_errors(
        mantissa in "[0-9]{1,3}(\\.[0-9]{1,3})?",
        exponent in prop_oneof![Just(i32::MAX), Just(i32::MIN), (i32::MAX - 5)..=i32::MAX, i32::MIN..(i32::MIN + 5)],
    ) {
        let text = format!("{mantissa}e{exponent}");
        let parsed = quantity::parse(&text);
        prop_assert!(parsed.is_err() || parsed == Ok(0), "{text}: {parsed:?}");
    }
}

/// A tenant of the capacity queue: its demand per resource, its place in the creation order.
fn tenants() -> impl Strategy<Value = Vec<Amounts>> {
    proptest::collection::vec(
        proptest::collection::btree_map(
            proptest::sample::select(RESOURCES.to_vec()).prop_map(str::to_owned),
            0i128..40_000,
            0..3,
        ),
        0..12,
    )
}

fn capacity() -> impl Strategy<Value = Amounts> {
    proptest::collection::btree_map(
        proptest::sample::select(RESOURCES.to_vec()).prop_map(str::to_owned),
        0i128..100_000,
        1..4,
    )
}

/// The capacity queue run to its fixpoint: tenants are decided one at a time in `order` (any
/// order, as reconciles come), over and over until no decision changes, as the ledger's
/// rechecks do. A tenant larger than the data center is refused and holds nothing.
fn run_queue(capacity: &Amounts, demands: &[Amounts], order: &[usize]) -> (Vec<Standing>, bool) {
    let queued: Vec<Queued> = demands
        .iter()
        .enumerate()
        .map(|(i, demand)| Queued {
            name: format!("tenant-{i:02}"),
            created: Some(time(i as i64)),
            demand: demand.clone(),
            standing: Standing::Waits,
        })
        .collect();
    let refused: Vec<bool> = demands
        .iter()
        .map(|d| !beyond_capacity(d, capacity).is_empty())
        .collect();
    let mut standing = vec![Standing::Waits; demands.len()];
    let mut over_committed = false;
    for _round in 0..=demands.len() + 1 {
        let mut changed = false;
        for &i in order {
            if refused[i] {
                continue;
            }
            let others: Vec<Queued> = queued
                .iter()
                .enumerate()
                .filter(|(j, _)| !refused[*j])
                .map(|(j, q)| Queued {
                    standing: standing[j],
                    ..q.clone()
                })
                .collect();
            let decision = decide(capacity, &queued[i], &others);
            prop_assume_not_unlimited(&decision);
            let now = if decision == Decision::Admitted {
                Standing::Holds
            } else {
                Standing::Waits
            };
            changed |= now != standing[i];
            standing[i] = now;
            let mut held = Amounts::new();
            for (j, s) in standing.iter().enumerate() {
                if *s == Standing::Holds {
                    quantity::add(&mut held, &demands[j]);
                }
            }
            over_committed |= !quantity::excess(&held, capacity).is_empty();
        }
        if !changed {
            break;
        }
    }
    (standing, over_committed)
}

fn prop_assume_not_unlimited(decision: &Decision) {
    assert_ne!(decision, &Decision::Unlimited, "a configured capacity");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// However reconciles interleave, what the admitted tenants hold never exceeds the capacity,
    /// and the admitted tenants are exactly the longest run, in creation order, of the tenants
    /// that fit together: a small late request never overtakes an earlier one that waits.
    #[test]
    fn the_queue_never_over_commits_and_serves_in_creation_order(
        capacity in capacity(),
        demands in tenants(),
        seed in any::<u64>(),
    ) {
        let mut order: Vec<usize> = (0..demands.len()).collect();
        // a seeded shuffle: reconciles come in any order
        let mut state = seed | 1;
        for i in (1..order.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            order.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let (standing, over_committed) = run_queue(&capacity, &demands, &order);
        prop_assert!(!over_committed, "capacity over-committed at some step");

        let mut expected = vec![Standing::Waits; demands.len()];
        let mut total = Amounts::new();
        for (i, demand) in demands.iter().enumerate() {
            if !beyond_capacity(demand, &capacity).is_empty() {
                continue;
            }
            quantity::add(&mut total, demand);
            if !quantity::excess(&total, &capacity).is_empty() {
                break;
            }
            expected[i] = Standing::Holds;
        }
        prop_assert_eq!(standing, expected);
    }
}

fn observed() -> impl Strategy<Value = Vec<Observed>> {
    proptest::collection::btree_map(
        proptest::sample::select(vec!["Ready", "Progressing", "Degraded", "NothingSelected"]),
        (
            proptest::sample::select(vec!["True", "False", "Unknown"]),
            "[A-Z][a-zA-Z]{0,12}",
            ".{0,20}",
        ),
        0..4,
    )
    .prop_map(|conditions| {
        conditions
            .into_iter()
            .map(|(type_, (status, reason, message))| Observed {
                type_,
                status,
                reason,
                message,
            })
            .collect()
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Merging the same observation twice changes nothing (so a converged pass writes no
    /// status); a condition's transition time moves exactly when its status does; conditions
    /// of types not observed are kept; every type appears once, sorted.
    #[test]
    fn merging_conditions_is_idempotent_and_keeps_transition_times(
        first in observed(),
        second in observed(),
        generation in proptest::option::of(1i64..50),
    ) {
        let once = merge(&[], &first, Some(1), &time(0));
        let twice = merge(&once, &first, Some(1), &time(60));
        prop_assert_eq!(&once, &twice);

        let next = merge(&once, &second, generation, &time(120));
        let types: Vec<&str> = next.iter().map(|c| c.type_.as_str()).collect();
        let mut sorted = types.clone();
        sorted.sort_unstable();
        sorted.dedup();
        prop_assert_eq!(&types, &sorted, "types unique and sorted");
        for condition in &next {
            let before: Option<&Condition> = once.iter().find(|c| c.type_ == condition.type_);
            match second.iter().find(|o| o.type_ == condition.type_) {
                Some(o) => {
                    prop_assert_eq!(condition.status.as_str(), o.status);
                    prop_assert_eq!(&condition.reason, &o.reason);
                    prop_assert_eq!(condition.observed_generation, generation);
                    let expected = match before {
                        Some(b) if b.status == o.status => b.last_transition_time.clone(),
                        _ => time(120),
                    };
                    prop_assert_eq!(&condition.last_transition_time, &expected);
                }
                None => prop_assert_eq!(Some(condition), before, "an unobserved type is kept"),
            }
        }
        let kept: BTreeMap<&str, &str> = once
            .iter()
            .filter(|c| !second.iter().any(|o| o.type_ == c.type_))
            .map(|c| (c.type_.as_str(), c.status.as_str()))
            .collect();
        for (type_, status) in kept {
            prop_assert!(next.iter().any(|c| c.type_ == type_ && c.status == status));
        }
    }
}
