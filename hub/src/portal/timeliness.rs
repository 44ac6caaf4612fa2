//! Timeliness: whether a dataset's current version is as recent as its publisher promises. The
//! promise is the longest gap of its refresh schedule (`update_interval_seconds` of its
//! metadata); a version is on time until that gap and a quarter more have passed since it was
//! published (a refresh lands some time after its schedule fires), overdue after.

/// How a dataset stands against its update frequency.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timeliness {
    /// No schedule: updated irregularly, nothing to be late for.
    Irregular,
    /// Within its promise; the next version is due at `due` (microseconds since the epoch).
    OnTime {
        /// When the next version is due.
        due: i64,
    },
    /// Past its promise since `due`.
    Overdue {
        /// When the next version was due.
        due: i64,
    },
}

/// The share of the interval a refresh may take after its schedule fired.
const GRACE_DIVISOR: i64 = 4;

/// How a version published at `published_at` stands at `now` against `interval_seconds` (all
/// times in microseconds since the epoch).
pub fn judge(published_at: i64, interval_seconds: i64, now: i64) -> Timeliness {
    if interval_seconds <= 0 {
        return Timeliness::Irregular;
    }
    let interval = interval_seconds.saturating_mul(1_000_000);
    let due = published_at.saturating_add(interval);
    if now <= due.saturating_add(interval / GRACE_DIVISOR) {
        Timeliness::OnTime { due }
    } else {
        Timeliness::Overdue { due }
    }
}

/// The name of an interval's frequency: `hourly`, `daily`, `weekly`, `monthly`, `quarterly`,
/// `half_yearly`, `yearly`, `rarely` (the key `frequency.<name>` of the website's tables);
/// `irregular` for none.
pub fn frequency(interval_seconds: i64) -> &'static str {
    const HOUR: i64 = 3600;
    const DAY: i64 = 24 * HOUR;
    match interval_seconds {
        ..=0 => "irregular",
        1..=HOUR => "hourly",
        _ if interval_seconds <= DAY => "daily",
        _ if interval_seconds <= 7 * DAY => "weekly",
        _ if interval_seconds <= 31 * DAY => "monthly",
        _ if interval_seconds <= 92 * DAY => "quarterly",
        _ if interval_seconds <= 184 * DAY => "half_yearly",
        _ if interval_seconds <= 366 * DAY => "yearly",
        _ => "rarely",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;
    const DAY: i64 = 86_400;

    #[test]
    fn a_version_is_on_time_until_its_interval_and_a_quarter() {
        assert_eq!(judge(0, 0, 10 * DAY * S), Timeliness::Irregular);
        assert_eq!(judge(0, DAY, DAY * S), Timeliness::OnTime { due: DAY * S });
        assert_eq!(
            judge(0, DAY, DAY * S + DAY * S / 4),
            Timeliness::OnTime { due: DAY * S }
        );
        assert_eq!(
            judge(0, DAY, DAY * S + DAY * S / 4 + 1),
            Timeliness::Overdue { due: DAY * S }
        );
    }

    #[test]
    fn intervals_have_frequency_names() {
        assert_eq!(frequency(0), "irregular");
        assert_eq!(frequency(900), "hourly");
        assert_eq!(frequency(DAY), "daily");
        assert_eq!(frequency(7 * DAY), "weekly");
        assert_eq!(frequency(31 * DAY), "monthly");
        assert_eq!(frequency(365 * DAY), "yearly");
        assert_eq!(frequency(1000 * DAY), "rarely");
    }
}
