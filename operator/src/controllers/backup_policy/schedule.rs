//! Durations, cron schedules and the deletion grace period of a BackupPolicy. Pure.

use std::time::Duration;

use croner::Cron;
use jiff::Timestamp;

/// Why a text is not a duration of the grammar the CRD admits.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("an empty duration")]
    Empty,
    /// A part is not a number followed by `ms`, `s`, `m` or `h` (or the number does not fit).
    #[error("{text:?} is not a duration such as 2s, 15m or 1h30m")]
    Malformed {
        /// The whole text given.
        text: String,
    },
}

/// Parses a Go-style duration made of `ms`, `s`, `m` and `h` parts (`2s`, `1h30m`, `500ms`), the
/// grammar the CRD admits.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let malformed = || DurationError::Malformed {
        text: text.to_owned(),
    };
    let mut total = Duration::ZERO;
    let mut rest = text;
    if rest.is_empty() {
        return Err(DurationError::Empty);
    }
    while !rest.is_empty() {
        let digits = rest.chars().take_while(char::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let value: u64 = number.parse().map_err(|_| malformed())?;
        let (unit, tail) = if let Some(tail) = tail.strip_prefix("ms") {
            (Duration::from_millis(value), tail)
        } else if let Some(tail) = tail.strip_prefix('s') {
            (Duration::from_secs(value), tail)
        } else if let Some(tail) = tail.strip_prefix('m') {
            (Duration::from_secs(value.saturating_mul(60)), tail)
        } else if let Some(tail) = tail.strip_prefix('h') {
            (Duration::from_secs(value.saturating_mul(3600)), tail)
        } else {
            return Err(malformed());
        };
        total = total.saturating_add(unit);
        rest = tail;
    }
    Ok(total)
}

/// Why a text is not a five-field cron schedule. The parser's reason is part of the message, not
/// a [`std::error::Error::source`], so that a chain of causes does not tell it twice.
#[derive(Debug, thiserror::Error)]
#[error("{text:?} is not a five-field cron schedule: {reason}")]
pub struct ScheduleError {
    /// The schedule given.
    text: String,
    /// What the cron parser refused.
    reason: croner::errors::CronError,
}

/// A parsed five-field cron schedule, evaluated in UTC.
#[derive(Clone, Debug)]
pub struct Schedule(Cron);

impl Schedule {
    /// Parses a five-field schedule (`*/5 * * * *`).
    pub fn parse(text: &str) -> Result<Schedule, ScheduleError> {
        text.parse::<Cron>()
            .map(Schedule)
            .map_err(|reason| ScheduleError {
                text: text.to_owned(),
                reason,
            })
    }

    /// The first time strictly after `after` the schedule fires.
    pub fn next_after(&self, after: Timestamp) -> Option<Timestamp> {
        let zoned = after.to_zoned(jiff::tz::TimeZone::UTC);
        self.0
            .find_next_occurrence(&zoned, false)
            .ok()
            .map(|z| z.timestamp())
    }
}

/// What to do with a copy on the target given whether its source exists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeletionStep {
    /// Nothing: the source exists and the copy is not marked, or the grace period runs.
    Keep,
    /// The source is gone: record when, on the copy.
    Mark,
    /// The source is back: clear the mark.
    Unmark,
    /// The grace period has passed: delete the copy.
    Delete,
}

/// Decides the fate of a copy. `grace` is None under the `retain` policy: copies are never
/// deleted.
pub fn deletion_step(
    source_exists: bool,
    marked_at: Option<Timestamp>,
    now: Timestamp,
    grace: Option<Duration>,
) -> DeletionStep {
    match (source_exists, marked_at) {
        (true, None) => DeletionStep::Keep,
        (true, Some(_)) => DeletionStep::Unmark,
        (false, None) => DeletionStep::Mark,
        (false, Some(marked)) => match grace {
            Some(grace) if now.duration_since(marked).as_secs_f64() >= grace.as_secs_f64() => {
                DeletionStep::Delete
            }
            _ => DeletionStep::Keep,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_every_unit_add_up() {
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86400)));
        assert!(parse_duration("2d").is_err());
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn a_refused_duration_says_why_in_the_words_of_its_condition() {
        assert_eq!(
            parse_duration("").map_err(|e| e.to_string()),
            Err("an empty duration".to_owned())
        );
        for text in ["2d", "s", "1h30", "99999999999999999999s"] {
            assert_eq!(
                parse_duration(text).map_err(|e| e.to_string()),
                Err(format!(
                    "{text:?} is not a duration such as 2s, 15m or 1h30m"
                ))
            );
        }
    }

    #[test]
    fn a_schedule_fires_at_its_next_minute() {
        let schedule = Schedule::parse("*/5 * * * *").expect("valid");
        let t: Timestamp = "2026-03-01T10:02:30Z".parse().expect("time");
        let next = schedule.next_after(t).expect("next");
        assert_eq!(next.to_string(), "2026-03-01T10:05:00Z");
        let refused = Schedule::parse("every minute").expect_err("not cron");
        assert!(
            refused
                .to_string()
                .starts_with("\"every minute\" is not a five-field cron schedule: "),
            "{refused}"
        );
    }

    #[test]
    fn a_deleted_source_is_mirrored_only_after_the_grace_period() {
        let marked: Timestamp = "2026-03-01T10:00:00Z".parse().expect("time");
        let later = |s: i64| marked + jiff::SignedDuration::from_secs(s);
        let grace = Some(Duration::from_secs(60));
        assert_eq!(
            deletion_step(false, None, marked, grace),
            DeletionStep::Mark
        );
        assert_eq!(
            deletion_step(false, Some(marked), later(59), grace),
            DeletionStep::Keep
        );
        assert_eq!(
            deletion_step(false, Some(marked), later(60), grace),
            DeletionStep::Delete
        );
        assert_eq!(
            deletion_step(false, Some(marked), later(1_000_000), None),
            DeletionStep::Keep,
            "retain never deletes"
        );
        assert_eq!(
            deletion_step(true, Some(marked), later(30), grace),
            DeletionStep::Unmark
        );
        assert_eq!(deletion_step(true, None, marked, grace), DeletionStep::Keep);
    }
}
