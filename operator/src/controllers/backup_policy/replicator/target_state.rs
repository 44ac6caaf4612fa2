//! What the replicator knows of its target, as one state instead of flags that must agree: it
//! answers (and its copies were listed, or are to be listed before the next write), or it is
//! silent, for a reason.

use std::time::Instant;

use jiff::Timestamp;

/// Whether the target answers, and what that allows.
#[derive(Clone, Debug)]
pub(super) enum TargetState {
    /// The target answers.
    Answering {
        /// When it was last found answering again (or the replicator started): a request made
        /// before that which found it silent is out of date.
        since: Instant,
        /// When its copies were listed since; None: they are listed before the next write.
        listed: Option<Instant>,
    },
    /// The target does not answer: changes wait, and a probe tells when it is back.
    Silent {
        /// Why, in the words of the failed request.
        reason: String,
        /// When it was last found answering again, as in [`TargetState::Answering`].
        since: Instant,
    },
}

impl TargetState {
    /// A target not yet listed, answering as far as anyone knows.
    pub(super) fn new() -> TargetState {
        TargetState::Answering {
            since: Instant::now(),
            listed: None,
        }
    }

    /// Whether the target answers.
    pub(super) fn answers(&self) -> bool {
        matches!(self, TargetState::Answering { .. })
    }

    /// When the target's copies were listed, if they were since it last came back (and since
    /// the last [`TargetState::unlist`]).
    pub(super) fn listed_at(&self) -> Option<Instant> {
        match self {
            TargetState::Answering { listed, .. } => *listed,
            TargetState::Silent { .. } => None,
        }
    }

    /// Whether the target answers and its copies were listed.
    pub(super) fn listed(&self) -> bool {
        self.listed_at().is_some()
    }

    /// Why the target is silent (empty while it answers).
    pub(super) fn reason(&self) -> &str {
        match self {
            TargetState::Answering { .. } => "",
            TargetState::Silent { reason, .. } => reason,
        }
    }

    /// Whether a request made at `asked` that found the target silent still tells something:
    /// not when the target came back after it was made.
    pub(super) fn current(&self, asked: Instant) -> bool {
        match self {
            TargetState::Answering { since, .. } | TargetState::Silent { since, .. } => {
                asked >= *since
            }
        }
    }

    /// The copies were listed at `at`.
    pub(super) fn listed_now(&mut self, at: Instant) {
        if let TargetState::Answering { listed, .. } = self {
            *listed = Some(at);
        }
    }

    /// The copies are to be listed again before the next write.
    pub(super) fn unlist(&mut self) {
        if let TargetState::Answering { listed, .. } = self {
            *listed = None;
        }
    }

    /// The target did not answer a request; returns whether it answered until now.
    pub(super) fn silence(&mut self, reason: String) -> bool {
        let (since, was_answering) = match self {
            TargetState::Answering { since, .. } => (*since, true),
            TargetState::Silent { since, .. } => (*since, false),
        };
        *self = TargetState::Silent { reason, since };
        was_answering
    }

    /// A probe made at `asked` found the silent target answering: its copies are listed again
    /// before anything is written.
    pub(super) fn answered(&mut self, asked: Instant) {
        *self = TargetState::Answering {
            since: asked,
            listed: None,
        };
    }

    /// A probe of the silent target failed again, for `why`.
    pub(super) fn still_silent(&mut self, why: String) {
        if let TargetState::Silent { reason, .. } = self {
            *reason = why;
        }
    }
}

/// When the target last held everything: on the monotonic clock (for the RPO) and the wall
/// clock (for the status's last sync time).
#[derive(Clone, Copy, Debug)]
pub(super) struct InSync {
    /// For durations since.
    pub(super) at: Instant,
    /// For the status.
    pub(super) time: Timestamp,
}

impl InSync {
    /// In sync now.
    pub(super) fn now() -> InSync {
        InSync {
            at: Instant::now(),
            time: Timestamp::now(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn a_silent_target_forgets_its_listing_and_an_old_answer_tells_nothing() {
        let mut target = TargetState::new();
        let before = Instant::now();
        assert!(target.answers() && !target.listed());
        target.listed_now(Instant::now());
        assert!(target.listed());
        assert!(target.silence("no answer".into()), "it answered until now");
        assert!(!target.silence("still none".into()));
        assert_eq!(target.reason(), "still none");
        assert!(!target.answers() && !target.listed());
        target.listed_now(Instant::now());
        assert!(!target.listed(), "a silent target is never listed");
        std::thread::sleep(Duration::from_millis(2));
        let asked = Instant::now();
        target.answered(asked);
        assert!(target.answers() && !target.listed(), "listed again first");
        assert!(!target.current(before), "asked before it came back");
        assert!(target.current(Instant::now()));
        target.listed_now(Instant::now());
        target.unlist();
        assert!(!target.listed());
        assert_eq!(target.reason(), "");
    }
}
