//! Server-side enrichment of a validated event: batch context, `messageId`,
//! `receivedAt`, clock-skew corrected `timestamp`, `context.ip` and
//! `context.userAgent`. First of all, whatever the client sent under a
//! gateway-owned field (`owned`) is discarded.
//!
//! Clock skew: a device clock may be off by hours. When the client says when
//! it sent the request (`sentAt`), the time between the event and the send
//! is trusted but the absolute clock is not, so
//! `timestamp = receivedAt − (sentAt − originalTimestamp)`. A broken clock
//! must not poison consumers: a corrected time further than
//! `limits.clock_skew_window_secs` from `receivedAt` is not believed, the
//! record gets `timestamp = receivedAt` and the flag
//! `context.timestampOutOfWindow = true` (a gateway-owned field: a client's
//! own value there is discarded). Without `sentAt` the client's time is kept
//! as sent. Every time the gateway reads is an RFC 3339 date-time whose UTC
//! year is 0000–9999 (else the event is rejected as `invalid_timestamp`), so
//! no record ever carries a year outside that range.

use std::net::IpAddr;

use crate::json::{Map, Value};
use chrono::{DateTime, Datelike, SecondsFormat, TimeDelta, Timelike, Utc};

use crate::event::{Event, RejectReason};

/// What the request's headers say about the visitor's wishes (read by
/// `privacy::signals`, acted on by the privacy stage).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RequestSignals {
    /// `Cookie: tg_optout=1`.
    pub optout_cookie: bool,
    /// `Sec-GPC: 1`.
    pub gpc: bool,
    /// `DNT: 1`.
    pub dnt: bool,
}

/// What the HTTP layer knows about the request an event came in.
#[derive(Debug, Clone)]
pub struct RequestMeta<'a> {
    pub source_id: &'a str,
    pub received_at: DateTime<Utc>,
    /// The client address after trusted-proxy resolution.
    pub client_ip: IpAddr,
    pub user_agent: Option<&'a str>,
    /// `sentAt` of a batch envelope.
    pub batch_sent_at: Option<&'a str>,
    /// `context` of a batch envelope, merged under each event's own.
    pub batch_context: Option<&'a Map<'a>>,
    /// Privacy signals of the request's headers (opt-out cookie, GPC, DNT).
    pub signals: RequestSignals,
}

/// Formats a time the way every timestamp in a record is written:
/// RFC 3339 in UTC with milliseconds, `2026-01-01T12:00:00.000Z`.
///
/// Written by hand for the years 0–9999 (several times per event, and
/// chrono's general formatter costs more than the rest of the enrichment);
/// other years and leap seconds go through chrono, which writes the same
/// format.
pub fn format_time(t: DateTime<Utc>) -> String {
    let (year, nanos) = (t.year(), t.nanosecond());
    if !(0..=9999).contains(&year) || nanos >= 1_000_000_000 {
        return t.to_rfc3339_opts(SecondsFormat::Millis, true);
    }
    let mut b = *b"0000-00-00T00:00:00.000Z";
    for (at, width, value) in [
        (0, 4, year as u32),
        (5, 2, t.month()),
        (8, 2, t.day()),
        (11, 2, t.hour()),
        (14, 2, t.minute()),
        (17, 2, t.second()),
        (20, 3, nanos / 1_000_000),
    ] {
        let mut v = value;
        for d in b[at..at + width].iter_mut().rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    }
    match std::str::from_utf8(&b) {
        Ok(s) => s.to_owned(),
        Err(_) => t.to_rfc3339_opts(SecondsFormat::Millis, true),
    }
}

/// The `context` key that flags a corrected time outside the window.
pub const OUT_OF_WINDOW_FLAG: &str = "timestampOutOfWindow";

/// Reads a client's time: RFC 3339, in UTC a year of 0000–9999 (an offset
/// can push `9999-12-31T23:59:59-01:00` into the year 10000).
pub fn parse_time_str(s: &str) -> Result<DateTime<Utc>, RejectReason> {
    let t = DateTime::parse_from_rfc3339(s)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| RejectReason::InvalidTimestamp)?;
    if (0..=9999).contains(&t.year()) {
        Ok(t)
    } else {
        Err(RejectReason::InvalidTimestamp)
    }
}

fn parse_time(v: &Value) -> Result<Option<DateTime<Utc>>, RejectReason> {
    match v {
        Value::Null => Ok(None),
        Value::String(s) => parse_time_str(s).map(Some),
        _ => Err(RejectReason::InvalidTimestamp),
    }
}

/// Enriches `ev` in place. Fails only on unparsable timestamps.
/// `skew_window` is `limits.clock_skew_window_secs`.
pub fn normalize<'a>(
    ev: &mut Event<'a>,
    meta: &RequestMeta<'a>,
    skew_window: TimeDelta,
) -> Result<(), RejectReason> {
    normalize_with(ev, meta, &RequestTexts::of(meta), skew_window)
}

/// The values the gateway writes into every event of a request, as text:
/// formatted once per request rather than once per event.
#[derive(Debug, Clone)]
pub struct RequestTexts {
    /// `receivedAt` (and `timestamp` when the client sent no time).
    pub received_at: String,
    /// `context.ip`, before the privacy stage masks it.
    pub client_ip: String,
}

impl RequestTexts {
    pub fn of(meta: &RequestMeta<'_>) -> RequestTexts {
        RequestTexts {
            received_at: format_time(meta.received_at),
            client_ip: meta.client_ip.to_string(),
        }
    }
}

/// [`normalize`] with the request's texts written already.
pub fn normalize_with<'a>(
    ev: &mut Event<'a>,
    meta: &RequestMeta<'a>,
    texts: &RequestTexts,
    skew_window: TimeDelta,
) -> Result<(), RejectReason> {
    let body = &mut ev.body;
    // The write key authenticated the request; it is not part of the record.
    body.remove("writeKey");

    if let Some(batch_ctx) = meta.batch_context {
        // The event's own keys win, at every depth.
        ev.context_mut().merge_under(batch_ctx);
    }
    // What the client sent under the fields the gateway writes is not kept,
    // whether it came with the event or the batch.
    crate::owned::discard_client_values(&mut ev.body);
    let body = &mut ev.body;

    if !matches!(body.get("messageId"), Some(Value::String(_))) {
        body.insert("messageId", Value::from(uuid::Uuid::now_v7().to_string()));
    }

    let received = meta.received_at;
    let client_ts = match body.get("originalTimestamp") {
        Some(v) if !v.is_null() => parse_time(v)?,
        _ => body.get("timestamp").map(parse_time).transpose()?.flatten(),
    };
    let sent_at = match body.get("sentAt") {
        Some(v) if !v.is_null() => parse_time(v)?,
        _ => meta.batch_sent_at.map(parse_time_str).transpose()?,
    };
    let mut out_of_window = false;
    let timestamp = match (client_ts, sent_at) {
        (Some(orig), Some(sent)) => {
            // Both are within years 0–9999, so neither step overflows.
            match received.checked_sub_signed(sent - orig) {
                Some(t) if (t - received).abs() <= skew_window => t,
                _ => {
                    out_of_window = true;
                    received
                }
            }
        }
        (Some(orig), None) => orig,
        (None, _) => received,
    };
    if let Some(orig) = client_ts {
        body.insert("originalTimestamp", Value::from(format_time(orig)));
    }
    if let Some(sent) = sent_at {
        body.insert("sentAt", Value::from(format_time(sent)));
    }
    let timestamp = if timestamp == received {
        Value::from(texts.received_at.clone())
    } else {
        Value::from(format_time(timestamp))
    };
    body.insert("timestamp", timestamp);
    body.insert("receivedAt", Value::from(texts.received_at.clone()));

    let ctx = ev.context_mut();
    // A client's own flag was discarded with the other owned fields.
    if out_of_window {
        crate::metrics::timestamp_out_of_window();
        ctx.insert(OUT_OF_WINDOW_FLAG, Value::Bool(true));
    }
    // The address is always the server's view: a client-supplied `context.ip`
    // could name anyone.
    ctx.insert("ip", Value::from(texts.client_ip.clone()));
    if let Some(ua) = meta.user_agent {
        if !matches!(ctx.get("userAgent"), Some(Value::String(_))) {
            ctx.insert("userAgent", Value::from(ua));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::json;

    fn meta<'a>(ctx: Option<&'a Map<'_>>, sent: Option<&'a str>) -> RequestMeta<'a> {
        RequestMeta {
            source_id: "web",
            received_at: DateTime::parse_from_rfc3339("2026-01-01T12:00:00Z")
                .unwrap()
                .with_timezone(&Utc),
            client_ip: "203.0.113.9".parse().unwrap(),
            user_agent: Some("UA/1"),
            batch_sent_at: sent,
            batch_context: ctx,
            signals: Default::default(),
        }
    }

    const WINDOW: TimeDelta = TimeDelta::days(30);

    fn event(v: Value) -> Event {
        let Value::Object(m) = v else { panic!() };
        Event::from_object(m, None).unwrap()
    }

    #[test]
    fn clock_skew_is_corrected_from_sent_at() {
        // The device clock runs 1 hour fast; the event happened 10 s before sending.
        let mut e = event(json!({"type":"page","anonymousId":"a",
            "timestamp":"2026-01-01T13:00:00Z","sentAt":"2026-01-01T13:00:10Z"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        assert_eq!(e.body["timestamp"], "2026-01-01T11:59:50.000Z");
        assert_eq!(e.body["originalTimestamp"], "2026-01-01T13:00:00.000Z");
        assert_eq!(e.body["receivedAt"], "2026-01-01T12:00:00.000Z");
    }

    #[test]
    fn batch_sent_at_applies_when_event_has_none() {
        let mut e = event(json!({"type":"page","anonymousId":"a",
            "originalTimestamp":"2026-01-01T08:00:00Z"}));
        normalize(&mut e, &meta(None, Some("2026-01-01T08:00:05Z")), WINDOW).unwrap();
        assert_eq!(e.body["timestamp"], "2026-01-01T11:59:55.000Z");
    }

    #[test]
    fn without_sent_at_timestamp_is_the_clients_and_without_any_it_is_received_at() {
        let mut e =
            event(json!({"type":"page","anonymousId":"a","timestamp":"2026-01-01T10:00:00+02:00"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        assert_eq!(e.body["timestamp"], "2026-01-01T08:00:00.000Z");
        let mut e = event(json!({"type":"page","anonymousId":"a"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        assert_eq!(e.body["timestamp"], e.body["receivedAt"]);
        assert!(e.body.get("originalTimestamp").is_none());
    }

    fn skewed(orig: &str, sent: &str) -> Event<'static> {
        let mut e = event(json!({"type":"page","anonymousId":"a",
            "originalTimestamp":orig,"sentAt":sent,"context":{"timestampOutOfWindow":false}}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        e
    }

    #[test]
    fn a_correction_outside_the_window_keeps_received_at_and_flags_the_event() {
        // receivedAt is 2026-01-01T12:00:00Z.
        let e = skewed("2000-01-01T00:00:00Z", "9000-01-01T00:00:00Z");
        assert_eq!(e.body["timestamp"], "2026-01-01T12:00:00.000Z");
        assert_eq!(e.body["context"][OUT_OF_WINDOW_FLAG], true);
        assert_eq!(e.body["originalTimestamp"], "2000-01-01T00:00:00.000Z");
        assert_eq!(e.body["sentAt"], "9000-01-01T00:00:00.000Z");
        // 31 days before sending: outside a 30-day window.
        let e = skewed("2026-05-01T00:00:00Z", "2026-06-01T00:00:00Z");
        assert_eq!(e.body["timestamp"], "2026-01-01T12:00:00.000Z");
        assert_eq!(e.body["context"][OUT_OF_WINDOW_FLAG], true);
        // 30 days before sending, clock 5 months fast: corrected, not flagged;
        // a client's own flag is not kept.
        let e = skewed("2026-05-02T00:00:00Z", "2026-06-01T00:00:00Z");
        assert_eq!(e.body["timestamp"], "2025-12-02T12:00:00.000Z");
        assert!(e.body["context"].get(OUT_OF_WINDOW_FLAG).is_none());
        // A clock reset to 2000 is corrected exactly.
        let e = skewed("2000-01-01T00:00:00Z", "2000-01-01T00:00:10Z");
        assert_eq!(e.body["timestamp"], "2026-01-01T11:59:50.000Z");
    }

    #[test]
    fn no_year_outside_0000_to_9999_is_read_or_written() {
        for bad in [
            "9999-12-31T23:59:59-01:00",
            "0000-01-01T00:00:00+01:00",
            "+10000-01-01T00:00:00Z",
            "-0001-01-01T00:00:00Z",
        ] {
            assert_eq!(
                parse_time_str(bad),
                Err(RejectReason::InvalidTimestamp),
                "{bad}"
            );
            let mut e = event(json!({"type":"page","anonymousId":"a","timestamp":bad}));
            assert_eq!(
                normalize(&mut e, &meta(None, None), WINDOW).unwrap_err(),
                RejectReason::InvalidTimestamp
            );
        }
        // The extremes that remain: every written time has a 4-digit year.
        for (orig, sent) in [
            ("0000-01-01T00:00:00Z", "9999-12-31T23:59:59Z"),
            ("9999-12-31T23:59:59Z", "0000-01-01T00:00:00Z"),
            ("9999-12-31T23:59:59+00:00", "9999-12-31T23:59:59Z"),
        ] {
            let e = skewed(orig, sent);
            for f in ["timestamp", "originalTimestamp", "sentAt", "receivedAt"] {
                let t = e.body[f].as_str().unwrap();
                assert!(t.len() == 24 && t.as_bytes()[4] == b'-', "{f}: {t}");
            }
        }
    }

    #[test]
    fn bad_timestamp_is_rejected() {
        let mut e = event(json!({"type":"page","anonymousId":"a","timestamp":"yesterday"}));
        assert_eq!(
            normalize(&mut e, &meta(None, None), WINDOW).unwrap_err(),
            RejectReason::InvalidTimestamp
        );
    }

    #[test]
    fn message_id_generated_as_uuid_v7_or_kept() {
        let mut e = event(json!({"type":"page","anonymousId":"a"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        let id = uuid::Uuid::parse_str(e.body["messageId"].as_str().unwrap()).unwrap();
        assert_eq!(id.get_version_num(), 7);
        let mut e = event(json!({"type":"page","anonymousId":"a","messageId":"m-1"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        assert_eq!(e.body["messageId"], "m-1");
    }

    #[test]
    fn batch_context_merges_under_event_context_and_ip_is_the_servers() {
        let batch = json!({"library":{"name":"lib","version":"1"},"locale":"en-US","ip":"1.1.1.1"});
        let Value::Object(batch) = batch else {
            panic!()
        };
        let mut e = event(json!({"type":"page","anonymousId":"a","writeKey":"k",
            "context":{"library":{"version":"2"},"ip":"9.9.9.9","userAgent":"Mine"}}));
        normalize(&mut e, &meta(Some(&batch), None), WINDOW).unwrap();
        let ctx = &e.body["context"];
        assert_eq!(ctx["library"], json!({"name":"lib","version":"2"}));
        assert_eq!(ctx["locale"], "en-US");
        assert_eq!(ctx["ip"], "203.0.113.9");
        assert_eq!(ctx["userAgent"], "Mine");
        assert!(e.body.get("writeKey").is_none());
    }

    #[test]
    fn time_format_matches_chrono_rfc3339_millis() {
        let cases = [
            "2026-01-01T12:00:00Z",
            "1999-12-31T23:59:59.999999999Z",
            "0001-02-03T04:05:06.007Z",
            "2024-02-29T00:00:00.5+02:00",
            "9999-12-31T23:59:59.123Z",
            "2016-12-31T23:59:60.250Z",
        ];
        for c in cases {
            let t = DateTime::parse_from_rfc3339(c).unwrap().with_timezone(&Utc);
            assert_eq!(
                format_time(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true),
                "{c}"
            );
        }
        let mut t = DateTime::parse_from_rfc3339("1970-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        for _ in 0..2000 {
            // Steps through the years 1970–9999 with varying milliseconds.
            t += chrono::Duration::milliseconds(126_500_000_123);
            assert_eq!(
                format_time(t),
                t.to_rfc3339_opts(SecondsFormat::Millis, true)
            );
        }
        let far = DateTime::from_timestamp(253_402_300_800, 0).unwrap();
        assert_eq!(far.year(), 10000);
        assert_eq!(
            format_time(far),
            far.to_rfc3339_opts(SecondsFormat::Millis, true)
        );
    }

    #[test]
    fn client_values_of_gateway_owned_fields_are_discarded_from_event_and_batch() {
        let batch = json!({"bot":true,"privacy":{"anonymized":"gpc"},"geo":{"city":"X"}});
        let Value::Object(batch) = batch else {
            panic!()
        };
        let mut e = event(
            json!({"type":"page","anonymousId":"a","receivedAt":"2000-01-01T00:00:00Z",
            "context":{"ipHash":"h","privacy":{"redactions":[{"path":"a@b.example"}]}}}),
        );
        normalize(&mut e, &meta(Some(&batch), None), WINDOW).unwrap();
        let ctx = e.body["context"].as_object().unwrap();
        let mut keys: Vec<&str> = ctx.keys().collect();
        keys.sort_unstable();
        assert_eq!(keys, ["ip", "userAgent"]);
        assert_eq!(e.body["receivedAt"], "2026-01-01T12:00:00.000Z");
    }

    #[test]
    fn user_agent_from_header_when_absent() {
        let mut e = event(json!({"type":"page","anonymousId":"a"}));
        normalize(&mut e, &meta(None, None), WINDOW).unwrap();
        assert_eq!(e.body["context"]["userAgent"], "UA/1");
    }
}
