//! Outcomes as values: each event of a request ends as one [`Disposition`],
//! and the request's [`Tally`] counts them once, at its end.

use super::Outcome;
use crate::inspect::Inspector;
use crate::metrics;

/// How one event left the pipeline. Each event of a request ends as exactly
/// one of these, returned by [`Pipeline::process`] and handed to the
/// request's [`Tally`]: no branch counts on its own, so
/// `received = accepted + rejected + dropped` holds by construction.
#[must_use = "every event must be handed to the request's tally"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Disposition {
    Accepted,
    /// Rejected (written to the invalid topic, or refused by the producer).
    Rejected(&'static str),
    /// Dropped by policy (opt-out, consent, bot, duplicate…).
    Dropped(&'static str),
}

/// A request's dispositions, counted together at its end: one metric
/// update per distinct reason rather than one per event.
#[derive(Default)]
pub(super) struct Tally {
    out: Outcome,
    rejected: Vec<(&'static str, u64)>,
    dropped: Vec<(&'static str, u64)>,
}

impl Tally {
    pub(super) fn record(&mut self, d: Disposition) {
        self.record_many(d, 1);
    }

    pub(super) fn record_many(&mut self, d: Disposition, n: u64) {
        fn bump(list: &mut Vec<(&'static str, u64)>, reason: &'static str, n: u64) {
            match list.iter_mut().find(|(r, _)| *r == reason) {
                Some((_, c)) => *c += n,
                None => list.push((reason, n)),
            }
        }
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        match d {
            Disposition::Accepted => self.out.accepted += n32,
            Disposition::Rejected(r) => {
                self.out.rejected += n32;
                bump(&mut self.rejected, r, n);
            }
            Disposition::Dropped(r) => {
                self.out.dropped += n32;
                bump(&mut self.dropped, r, n);
            }
        }
    }

    /// The request's accepted events could not be kept after all (the spool
    /// refused its write): they count as rejected for `reason`.
    pub(super) fn accepted_became(&mut self, reason: &'static str) {
        let n = u64::from(std::mem::take(&mut self.out.accepted));
        if n > 0 {
            self.record_many(Disposition::Rejected(reason), n);
        }
    }

    /// Counts the request's events in the metrics and the inspector.
    pub(super) fn publish(self, inspector: &Inspector, source_id: &str) -> Outcome {
        if self.out.accepted > 0 {
            metrics::events_accepted(u64::from(self.out.accepted));
        }
        for (reason, n) in self.rejected {
            metrics::events_rejected(reason, n);
        }
        for (reason, n) in self.dropped {
            metrics::events_dropped(reason, n);
            inspector.dropped(source_id, reason, n);
        }
        self.out
    }
}
