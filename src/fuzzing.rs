//! Pure entry points for the fuzz targets in `fuzz/` (and their regression
//! tests): the request path from header and body bytes to normalized,
//! bot-checked, serialized events, with no listener and no broker.
//!
//! Contract under test: whatever the bytes, the result is an outcome or a
//! request-level error code, never a panic, and every event found gets
//! exactly one outcome.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::OnceLock;

use bytes::Bytes;
use http::header::USER_AGENT;
use http::{HeaderMap, HeaderName, HeaderValue};

use crate::bots::{BotStage, BotVerdict};
use crate::config::Config;
use crate::decode::{self, DecodeError};
use crate::event::EventType;
use crate::http::{auth, body, client_ip, cors, error::ApiError};
use crate::ingest::{self, RawEvent};
use crate::limits;
use crate::normalize::RequestMeta;
use crate::privacy::RequestSignals;

/// Configuration of the fuzzed path: defaults, loopback as a trusted proxy
/// (so forwarding headers are parsed), one source.
const FUZZ_CONFIG: &str = r#"
[server]
trusted_proxies = ["127.0.0.0/8"]
[[sources]]
id = "fuzz"
write_key = "wk_fuzz"
allowed_origins = ["*"]
"#;

struct Fixture {
    config: Config,
    bots: BotStage,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let config = Config::from_toml(FUZZ_CONFIG).expect("the fuzz configuration is valid");
        let bots = BotStage::new(&config);
        Fixture { config, bots }
    })
}

/// What the request path made of one input.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct FuzzOutcome {
    /// The request-level error code, if the request was refused as a whole.
    pub error: Option<&'static str>,
    pub accepted: usize,
    pub rejected: usize,
    pub dropped: usize,
}

/// Splits fuzz input into (selector, header block, body). The selector
/// byte picks the endpoint (0: batch, 1–6: the single-event types); header
/// lines are `name: value` separated by `\n`, ended by an empty line.
fn split_input(data: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&sel, rest) = data.split_first()?;
    match rest.windows(2).position(|w| w == b"\n\n") {
        Some(i) => Some((sel, &rest[..i], &rest[i + 2..])),
        None => Some((sel, &[][..], rest)),
    }
}

fn headers_from(block: &[u8]) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for line in block.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let (name, value) = (line[..colon].trim_ascii(), line[colon + 1..].trim_ascii());
        if let (Ok(n), Ok(v)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(n, v);
        }
    }
    headers
}

/// Runs one fuzz input through the request path.
pub fn decode_request(data: &[u8]) -> FuzzOutcome {
    let Some((sel, head, raw_body)) = split_input(data) else {
        return FuzzOutcome::default();
    };
    let implied = match usize::from(sel) % (EventType::ALL.len() + 1) {
        0 => None,
        i => Some(EventType::ALL[i - 1]),
    };
    let headers = headers_from(head);
    match run(&headers, raw_body, implied) {
        Ok(out) => out,
        Err(e) => FuzzOutcome {
            error: Some(e.code()),
            ..FuzzOutcome::default()
        },
    }
}

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::InvalidJson(m) => ApiError::InvalidJson(m),
        e @ (DecodeError::InvalidBatch | DecodeError::InvalidEnvelopeField(..)) => {
            ApiError::InvalidBatch(format!("request body: {e}"))
        }
        DecodeError::NotAnObject => ApiError::InvalidJson("not an object".into()),
    }
}

fn run(
    headers: &HeaderMap,
    raw_body: &[u8],
    implied: Option<EventType>,
) -> Result<FuzzOutcome, ApiError> {
    let f = fixture();
    let cfg = &f.config;
    let peer = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let client_ip = client_ip::resolve(peer, headers, &cfg.server.trusted_proxies);
    let bytes = body::decode_received(
        headers,
        Bytes::copy_from_slice(raw_body),
        cfg.limits.max_request_bytes,
    )?;
    let _ = auth::header_key(headers);
    let _ = cors::origin(headers);
    let user_agent = headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    let received_at = chrono::Utc::now();
    let policy = f.bots.policy("fuzz");

    let mut out = FuzzOutcome::default();
    let mut walk = |raws: Vec<RawEvent<'_>>, meta: &RequestMeta<'_>| {
        for raw in raws {
            match ingest::prepare(raw, implied, meta, &cfg.limits) {
                Err(_) => out.rejected += 1,
                Ok(mut ev) => {
                    if f.bots.apply(&mut ev, policy) == BotVerdict::Drop {
                        out.dropped += 1;
                    } else if serde_json::to_vec(&ev.body).is_ok() {
                        out.accepted += 1;
                    } else {
                        out.rejected += 1;
                    }
                }
            }
        }
    };
    match implied {
        None => {
            let batch = decode::batch(&bytes).map_err(decode_error)?;
            if batch.events.len() > cfg.limits.max_batch_events {
                return Err(ApiError::TooManyEvents(cfg.limits.max_batch_events));
            }
            if let Some(ctx) = &batch.context {
                if limits::object_too_deep(ctx, cfg.limits.max_json_depth) {
                    return Err(ApiError::TooDeep(cfg.limits.max_json_depth));
                }
            }
            let meta = RequestMeta {
                source_id: "fuzz",
                received_at,
                client_ip,
                user_agent,
                batch_sent_at: batch.sent_at.as_deref(),
                batch_context: batch.context.as_ref(),
                signals: RequestSignals::from_headers(headers),
            };
            let raws = batch
                .events
                .iter()
                .map(|e| match e {
                    decode::EventText::Json(t) => RawEvent::Json(t),
                    decode::EventText::InvalidUtf8 { text, .. } => {
                        RawEvent::Undecodable(text, crate::event::RejectReason::InvalidUtf8)
                    }
                })
                .collect();
            walk(raws, &meta);
        }
        Some(_) => {
            let single = decode::single(&bytes).map_err(decode_error)?;
            let meta = RequestMeta {
                source_id: "fuzz",
                received_at,
                client_ip,
                user_agent,
                batch_sent_at: None,
                batch_context: None,
                signals: RequestSignals::from_headers(headers),
            };
            walk(vec![RawEvent::Parsed(single.event, single.text)], &meta);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(sel: u8, headers: impl AsRef<[u8]>, body: &[u8]) -> Vec<u8> {
        let mut v = vec![sel];
        v.extend_from_slice(headers.as_ref());
        v.extend_from_slice(b"\n\n");
        v.extend_from_slice(body);
        v
    }

    #[test]
    fn a_valid_batch_is_accepted_and_a_bot_tagged_not_dropped() {
        let out = decode_request(&input(
            0,
            "content-type: application/json\nuser-agent: curl/8.0",
            br#"{"batch":[{"type":"page","anonymousId":"a"},{"type":"track","userId":"u"}]}"#,
        ));
        assert_eq!(
            out,
            FuzzOutcome {
                error: None,
                accepted: 1,
                rejected: 1,
                dropped: 0
            }
        );
    }

    #[test]
    fn the_committed_seeds_reach_the_event_stages() {
        let seeds = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/seeds/decode");
        for (name, accepted) in [
            ("batch", 2),
            ("track", 1),
            ("page_bot", 1),
            ("gzip_batch", 1),
            ("deflate_batch", 1),
        ] {
            let data = std::fs::read(seeds.join(name)).unwrap();
            let out = decode_request(&data);
            assert_eq!((out.error, out.accepted), (None, accepted), "{name}");
        }
    }

    /// Edge classes the fuzzer explores, kept as fixed regression inputs.
    #[test]
    fn hostile_inputs_end_in_an_outcome_or_a_code() {
        let cases: Vec<(Vec<u8>, FuzzOutcome)> = vec![
            // Timestamps at the ends of the representable range, skew
            // correction across ten thousand years.
            (
                input(
                    0,
                    "",
                    br#"{"batch":[{"type":"page","anonymousId":"a","timestamp":"0000-01-01T00:00:00+23:59"}],"sentAt":"9999-12-31T23:59:59-23:59"}"#,
                ),
                // The envelope's sentAt is in the year 10000 in UTC.
                FuzzOutcome { error: Some("invalid_batch"), ..Default::default() },
            ),
            (
                input(
                    0,
                    "",
                    br#"{"batch":[{"type":"page","anonymousId":"a","timestamp":"0000-01-01T00:00:00+23:59"}],"sentAt":"9999-12-31T23:59:59Z"}"#,
                ),
                // The event's time is in the year -1 in UTC.
                FuzzOutcome { rejected: 1, ..Default::default() },
            ),
            (
                input(
                    0,
                    "",
                    br#"{"batch":[{"type":"page","anonymousId":"a","timestamp":"9999-12-31T23:59:59Z","sentAt":"0000-01-01T00:00:00Z"}]}"#,
                ),
                FuzzOutcome { accepted: 1, ..Default::default() },
            ),
            // Nesting far past the parser's recursion limit, per event.
            (
                input(0, "", format!(r#"{{"batch":[{}1{}]}}"#, "[".repeat(10_000), "]".repeat(10_000)).as_bytes()),
                FuzzOutcome { rejected: 1, ..Default::default() },
            ),
            // Unbalanced brackets inside strings do not confuse the depth scan.
            (
                input(0, "", br#"{"batch":[{"type":"page","anonymousId":"[[[[\"{{{{"}]}"#),
                FuzzOutcome { accepted: 1, ..Default::default() },
            ),
            // Out-of-range numbers: per event, and for a single event the request.
            (
                input(0, "", br#"{"batch":[{"type":"page","anonymousId":"a","n":1e400}]}"#),
                FuzzOutcome { rejected: 1, ..Default::default() },
            ),
            (
                input(1, "", br#"{"anonymousId":"a","n":-1e400}"#),
                FuzzOutcome { error: Some("invalid_json"), ..Default::default() },
            ),
            // Non-UTF-8 header values and forwarding garbage are ignored.
            (
                input(
                    1,
                    b"user-agent: \xff\xfe\nx-forwarded-for: ::::, [::1, 999.1.1.1\nforwarded: for=\"[\nauthorization: Basic ====",
                    br#"{"anonymousId":"a"}"#,
                ),
                FuzzOutcome { accepted: 1, ..Default::default() },
            ),
            // A gzip header on zlib data, and on an empty body.
            (
                input(0, "content-encoding: gzip", b"x\x9c\x03\x00\x00\x00\x00\x01"),
                FuzzOutcome { error: Some("invalid_compression"), ..Default::default() },
            ),
            (
                input(0, "content-encoding: gzip", b""),
                FuzzOutcome { error: Some("invalid_compression"), ..Default::default() },
            ),
            // Duplicate keys: the envelope refuses, an event keeps the last.
            (
                input(0, "", br#"{"batch":[],"batch":[]}"#),
                FuzzOutcome { error: Some("invalid_batch"), ..Default::default() },
            ),
            (
                input(3, "", br#"{"userId":"u","event":"a","event":"b"}"#),
                FuzzOutcome { accepted: 1, ..Default::default() },
            ),
        ];
        for (i, (data, want)) in cases.iter().enumerate() {
            assert_eq!(&decode_request(data), want, "case {i}");
        }
    }

    #[test]
    fn request_level_errors_have_codes() {
        assert_eq!(
            decode_request(&input(0, "", b"{\"batch\":[")).error,
            Some("invalid_json")
        );
        assert_eq!(
            decode_request(&input(0, "content-encoding: gzip", b"nope")).error,
            Some("invalid_compression")
        );
        // The content type is not looked at: a JSON body is read as JSON.
        assert_eq!(
            decode_request(&input(
                3,
                "content-type: image/png",
                br#"{"userId":"u","event":"e"}"#
            )),
            FuzzOutcome {
                accepted: 1,
                ..Default::default()
            }
        );
        assert_eq!(decode_request(&[]), FuzzOutcome::default());
    }
}
