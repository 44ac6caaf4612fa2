//! Status conditions per the Kubernetes API conventions: one entry per type, with a CamelCase
//! reason, and a lastTransitionTime that moves only when the status does.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

/// `Ready`: the resource is fully provisioned and in line with its spec.
pub const READY: &str = "Ready";
/// `Progressing`: the operator is working towards the spec.
pub const PROGRESSING: &str = "Progressing";
/// `Degraded`: something the resource needs is failing.
pub const DEGRADED: &str = "Degraded";

/// A condition the operator wants to report, before merging with what status already holds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    /// The condition type.
    pub type_: &'static str,
    /// `True`, `False` or `Unknown`.
    pub status: &'static str,
    /// CamelCase reason.
    pub reason: String,
    /// Human-readable detail.
    pub message: String,
}

impl Observed {
    /// A condition whose status is `True`.
    pub fn yes(
        type_: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Observed {
        Observed {
            type_,
            status: "True",
            reason: reason.into(),
            message: message.into(),
        }
    }

    /// A condition whose status is `False`.
    pub fn no(
        type_: &'static str,
        reason: impl Into<String>,
        message: impl Into<String>,
    ) -> Observed {
        Observed {
            type_,
            status: "False",
            reason: reason.into(),
            message: message.into(),
        }
    }
}

/// Merges observed conditions into the existing ones: conditions of other types are kept, a
/// condition whose status did not change keeps its lastTransitionTime, and every merged
/// condition records the generation it describes. Output is sorted by type so that an unchanged
/// status compares equal and is not written again.
pub fn merge(
    existing: &[Condition],
    observed: &[Observed],
    generation: Option<i64>,
    now: &Time,
) -> Vec<Condition> {
    let mut merged: Vec<Condition> = existing
        .iter()
        .filter(|c| !observed.iter().any(|o| o.type_ == c.type_))
        .cloned()
        .collect();
    for o in observed {
        let previous = existing.iter().find(|c| c.type_ == o.type_);
        let last_transition_time = match previous {
            Some(p) if p.status == o.status => p.last_transition_time.clone(),
            _ => now.clone(),
        };
        merged.push(Condition {
            type_: o.type_.to_owned(),
            status: o.status.to_owned(),
            reason: o.reason.clone(),
            message: o.message.clone(),
            observed_generation: generation,
            last_transition_time,
        });
    }
    merged.sort_by(|a, b| a.type_.cmp(&b.type_));
    merged
}

/// The current time as a Kubernetes timestamp (second precision, as the API server stores it).
pub fn now() -> Time {
    let seconds = jiff::Timestamp::now().as_second();
    Time(jiff::Timestamp::from_second(seconds).unwrap_or_else(|_| jiff::Timestamp::now()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn time(seconds: i64) -> Time {
        Time(jiff::Timestamp::from_second(seconds).expect("valid timestamp"))
    }

    #[test]
    fn an_unchanged_status_keeps_its_transition_time() {
        let first = merge(
            &[],
            &[Observed::no(READY, "Provisioning", "creating")],
            Some(1),
            &time(100),
        );
        let second = merge(
            &first,
            &[Observed::no(READY, "Provisioning", "still creating")],
            Some(2),
            &time(200),
        );
        assert_eq!(second[0].last_transition_time, time(100));
        assert_eq!(second[0].message, "still creating");
        assert_eq!(second[0].observed_generation, Some(2));
    }

    #[test]
    fn a_changed_status_moves_the_transition_time() {
        let first = merge(
            &[],
            &[Observed::no(READY, "Provisioning", "")],
            Some(1),
            &time(100),
        );
        let second = merge(
            &first,
            &[Observed::yes(READY, "Provisioned", "")],
            Some(1),
            &time(200),
        );
        assert_eq!(second[0].last_transition_time, time(200));
        assert_eq!(second[0].status, "True");
    }

    #[test]
    fn conditions_of_other_types_are_kept_and_sorted() {
        let first = merge(&[], &[Observed::yes(READY, "Ok", "")], Some(1), &time(1));
        let second = merge(
            &first,
            &[Observed::no(DEGRADED, "Fine", "")],
            Some(1),
            &time(2),
        );
        let types: Vec<&str> = second.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, [DEGRADED, READY]);
    }
}
