//! A rejected event (invalid, or against its source's tracking plan) under
//! the same privacy rules as an accepted one: the opt-out decision first
//! (an opted-out visitor's rejected event is dropped, not reported), then
//! the payload the invalid topic may keep (`privacy.invalid_payload`),
//! scrubbed by the source's scrubber.

use super::*;

/// An id of a not yet validated event: a string, or a number as text.
fn raw_id<'a>(body: &'a Map<'_>, key: &str) -> Option<std::borrow::Cow<'a, str>> {
    match body.get(key) {
        Some(Value::String(s)) => Some(std::borrow::Cow::Borrowed(&**s)),
        Some(Value::Number(n)) => Some(n.to_string().into()),
        _ => None,
    }
}

impl PrivacyStage {
    /// What becomes of a rejected event whose JSON text is `text`.
    pub fn rejected(&self, text: &str, meta: &RequestMeta<'_>) -> Rejected {
        let rules = self.rules(meta.source_id);
        // The event's text was parsed once already (its repairs counted).
        let parsed = match crate::json::reparse(text) {
            Ok(Value::Object(m)) => Some(m),
            _ => None,
        };
        let decision = match &parsed {
            Some(body) => {
                let ids = ["userId", "anonymousId", "previousId"].map(|k| raw_id(body, k));
                self.decide_with(rules, body, ids.each_ref().map(Option::as_deref), meta)
            }
            None => Decision::KEEP,
        };
        if let Some(r) = decision.reason {
            metrics::privacy_decision(decision.action.label(), r.label(), 1);
            if decision.action == Action::Drop {
                return Rejected::Drop(r.label());
            }
        }
        match self.invalid_payload {
            InvalidPayload::Omit => Rejected::Report(None),
            InvalidPayload::Raw => Rejected::Report(Some(text.to_string())),
            InvalidPayload::Scrubbed => {
                let Some(mut body) = parsed else {
                    return Rejected::Report(None);
                };
                body.remove("writeKey");
                // The gateway wrote nothing into a rejected event: every
                // owned field (the address included) is the client's claim.
                owned::discard_client_values(&mut body);
                if decision.action == Action::Anonymize {
                    for f in ANONYMIZED_FIELDS {
                        body.remove(f);
                    }
                    if let Some(Value::Object(ctx)) = body.get_mut("context") {
                        strip_context(ctx);
                    }
                }
                // The same scrubber as accepted events: identity fields are
                // pseudonymized here whatever `identity_pii` says (the event
                // is rejected already).
                if self.scrub(rules, &mut body).is_none() {
                    return Rejected::Report(None);
                }
                Rejected::Report(Some(crate::json::map_to_string(&body)))
            }
        }
    }
}
