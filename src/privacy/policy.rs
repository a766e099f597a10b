//! Policy resolution: from the signals an event carries and its source's
//! policy to one decision, `keep`, `anonymize` or `drop`.
//!
//! The strongest action wins (drop > anonymize > keep). Among signals that
//! call for the same action, the reason reported is the first of: opt-out
//! cookie, opt-out list, consent, GPC, DNT. A consent preference that
//! denies one of the source's `required_consent` categories is an explicit
//! "do not track me for this purpose", the same kind of wish as Global
//! Privacy Control, so it follows the source's `gpc` policy. A signal the policy ignores (DNT under
//! `dnt = "ignore"`) yields `keep` with that reason, so it is still counted.

use super::config::{DntPolicy, GpcPolicy, IpMode, SourcePrivacyConfig};

/// A source's privacy policy, resolved once at start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    pub ip: IpMode,
    pub gpc: GpcPolicy,
    pub dnt: DntPolicy,
    pub geo_coordinates: bool,
}

impl From<&SourcePrivacyConfig> for SourcePolicy {
    fn from(c: &SourcePrivacyConfig) -> Self {
        SourcePolicy {
            ip: c.ip,
            gpc: c.gpc,
            dnt: c.dnt,
            geo_coordinates: c.geo_coordinates,
        }
    }
}

/// The signals present on one event.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EventSignals {
    pub optout_cookie: bool,
    pub optout_list: bool,
    /// `context.consent.categoryPreferences` denies a required category.
    pub consent_denied: bool,
    pub gpc: bool,
    pub dnt: bool,
}

impl EventSignals {
    pub fn any(&self) -> bool {
        self.optout_cookie || self.optout_list || self.consent_denied || self.gpc || self.dnt
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    Keep,
    Anonymize,
    Drop,
}

impl Action {
    /// Metric label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Keep => "keep",
            Action::Anonymize => "anonymize",
            Action::Drop => "drop",
        }
    }
}

/// Why a decision was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    OptOutCookie,
    OptOutList,
    Consent,
    Gpc,
    Dnt,
}

impl Reason {
    /// Metric label, and the drop reason of `trackgate_events_total`.
    pub fn label(self) -> &'static str {
        match self {
            Reason::OptOutCookie => "optout_cookie",
            Reason::OptOutList => "optout_list",
            Reason::Consent => "consent",
            Reason::Gpc => "gpc",
            Reason::Dnt => "dnt",
        }
    }
}

/// One decision; `reason` is `None` only when no signal was present.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub action: Action,
    pub reason: Option<Reason>,
}

impl Decision {
    pub const KEEP: Decision = Decision {
        action: Action::Keep,
        reason: None,
    };
}

/// Resolves the signals of one event under its source's policy.
pub fn decide(policy: &SourcePolicy, s: EventSignals) -> Decision {
    if !s.any() {
        return Decision::KEEP;
    }
    let gpc_action = match policy.gpc {
        GpcPolicy::Drop => Action::Drop,
        GpcPolicy::Anonymize => Action::Anonymize,
    };
    let candidates = [
        (s.optout_cookie, Reason::OptOutCookie, Action::Drop),
        (s.optout_list, Reason::OptOutList, Action::Drop),
        (s.consent_denied, Reason::Consent, gpc_action),
        (s.gpc, Reason::Gpc, gpc_action),
        (
            s.dnt,
            Reason::Dnt,
            match policy.dnt {
                DntPolicy::Drop => Action::Drop,
                DntPolicy::Anonymize => Action::Anonymize,
                DntPolicy::Ignore => Action::Keep,
            },
        ),
    ];
    let mut best: Option<(Action, Reason)> = None;
    for (present, reason, action) in candidates {
        if present && best.map_or(true, |(a, _)| action > a) {
            best = Some((action, reason));
        }
    }
    match best {
        Some((action, reason)) => Decision {
            action,
            reason: Some(reason),
        },
        None => Decision::KEEP,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(gpc: GpcPolicy, dnt: DntPolicy) -> SourcePolicy {
        SourcePolicy {
            gpc,
            dnt,
            ..SourcePolicy::default()
        }
    }

    fn sig(cookie: bool, list: bool, gpc: bool, dnt: bool) -> EventSignals {
        EventSignals {
            optout_cookie: cookie,
            optout_list: list,
            consent_denied: false,
            gpc,
            dnt,
        }
    }

    fn d(a: Action, r: Reason) -> Decision {
        Decision {
            action: a,
            reason: Some(r),
        }
    }

    #[test]
    fn no_signal_keeps_without_reason() {
        let p = SourcePolicy::default();
        assert_eq!(decide(&p, EventSignals::default()), Decision::KEEP);
    }

    #[test]
    fn defaults_drop_on_gpc_and_anonymize_on_dnt() {
        let p = SourcePolicy::default();
        assert_eq!(
            decide(&p, sig(false, false, true, false)),
            d(Action::Drop, Reason::Gpc)
        );
        assert_eq!(
            decide(&p, sig(false, false, false, true)),
            d(Action::Anonymize, Reason::Dnt)
        );
    }

    #[test]
    fn each_policy_value_resolves() {
        use DntPolicy as D;
        use GpcPolicy as G;
        let gpc_only = sig(false, false, true, false);
        let dnt_only = sig(false, false, false, true);
        assert_eq!(
            decide(&policy(G::Anonymize, D::Ignore), gpc_only),
            d(Action::Anonymize, Reason::Gpc)
        );
        assert_eq!(
            decide(&policy(G::Drop, D::Ignore), dnt_only),
            d(Action::Keep, Reason::Dnt)
        );
        assert_eq!(
            decide(&policy(G::Drop, D::Drop), dnt_only),
            d(Action::Drop, Reason::Dnt)
        );
    }

    #[test]
    fn denied_consent_follows_the_gpc_policy_and_is_named_before_gpc() {
        let denied = EventSignals {
            consent_denied: true,
            ..EventSignals::default()
        };
        assert_eq!(
            decide(&SourcePolicy::default(), denied),
            d(Action::Drop, Reason::Consent)
        );
        let anonymize = policy(GpcPolicy::Anonymize, DntPolicy::Ignore);
        assert_eq!(
            decide(&anonymize, denied),
            d(Action::Anonymize, Reason::Consent)
        );
        let both = EventSignals {
            gpc: true,
            ..denied
        };
        assert_eq!(
            decide(&anonymize, both),
            d(Action::Anonymize, Reason::Consent)
        );
        // The opt-out list is still named first.
        let listed = EventSignals {
            optout_list: true,
            ..denied
        };
        assert_eq!(
            decide(&anonymize, listed),
            d(Action::Drop, Reason::OptOutList)
        );
    }

    #[test]
    fn strongest_action_wins_and_first_reason_breaks_ties() {
        use DntPolicy as D;
        use GpcPolicy as G;
        // GPC anonymizes but DNT drops: drop, for DNT.
        assert_eq!(
            decide(
                &policy(G::Anonymize, D::Drop),
                sig(false, false, true, true)
            ),
            d(Action::Drop, Reason::Dnt)
        );
        // Both anonymize: GPC is named.
        assert_eq!(
            decide(
                &policy(G::Anonymize, D::Anonymize),
                sig(false, false, true, true)
            ),
            d(Action::Anonymize, Reason::Gpc)
        );
        // Opt-outs beat everything, the cookie first.
        assert_eq!(
            decide(&SourcePolicy::default(), sig(true, true, true, true)),
            d(Action::Drop, Reason::OptOutCookie)
        );
        assert_eq!(
            decide(
                &policy(G::Anonymize, D::Ignore),
                sig(false, true, true, true)
            ),
            d(Action::Drop, Reason::OptOutList)
        );
    }
}
