//! What a request will write, known before any event is processed.
//!
//! The batch `context` is merged into every event, so a small body can ask
//! for records many times its size (2,500 tiny events and a context of
//! thousands of keys once wrote 1,870 times the body to the spool). The
//! body size says nothing about that cost; the figure here does. It is the
//! one figure the 413 of `limits.max_request_output_bytes`, the admission
//! body budgets and the spool reservation all see, and its per-event part
//! is what the record-size check (`limits.max_event_bytes`) sees.

use std::fmt::Write as _;

use crate::config::{LimitsConfig, RECORD_OVERHEAD_BYTES};
use crate::json::{Map, Value};

/// The size of a batch `context`: its keys at every depth and the bytes of
/// JSON it takes when written (an upper bound: escapes counted at their
/// longest).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ContextSize {
    pub keys: usize,
    pub bytes: u64,
}

/// Why a batch `context` is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ContextError {
    #[error("batch `context` is larger than limits.max_context_bytes = {0} bytes")]
    TooManyBytes(usize),
    #[error("batch `context` has more than limits.max_context_keys = {0} keys")]
    TooManyKeys(usize),
}

impl ContextSize {
    /// Measures `ctx` (which passed the depth check: the walk recurses).
    pub fn of(ctx: &Map<'_>) -> ContextSize {
        let mut size = ContextSize::default();
        size.add_object(ctx);
        size
    }

    /// Measures `ctx` and checks it against `limits.max_context_bytes` and
    /// `limits.max_context_keys`.
    pub fn checked(ctx: &Map<'_>, limits: &LimitsConfig) -> Result<ContextSize, ContextError> {
        let size = ContextSize::of(ctx);
        if size.bytes > limits.max_context_bytes as u64 {
            return Err(ContextError::TooManyBytes(limits.max_context_bytes));
        }
        if size.keys > limits.max_context_keys {
            return Err(ContextError::TooManyKeys(limits.max_context_keys));
        }
        Ok(size)
    }

    fn add_object(&mut self, m: &Map<'_>) {
        // `{}` and the commas.
        self.bytes += 2 + m.len().saturating_sub(1) as u64;
        for (k, v) in m.iter() {
            self.keys += 1;
            self.bytes += string_bytes(k) + 1;
            self.add_value(v);
        }
    }

    fn add_value(&mut self, v: &Value<'_>) {
        self.bytes += match v {
            Value::Null => 4,
            Value::Bool(true) => 4,
            Value::Bool(false) => 5,
            Value::Number(n) => {
                let mut c = ByteCount(0);
                let _ = write!(c, "{n}");
                c.0
            }
            Value::String(s) => string_bytes(s),
            Value::Array(a) => {
                for item in a {
                    self.add_value(item);
                }
                2 + a.len().saturating_sub(1) as u64
            }
            Value::Object(m) => {
                self.add_object(m);
                0
            }
        };
    }
}

/// Bytes of `s` written as a JSON string: quotes, and every byte that may
/// need an escape counted at its longest (`\u00XX`).
fn string_bytes(s: &str) -> u64 {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<u64>()
}

/// Counts what is written to it (a number's length without allocating).
struct ByteCount(u64);

impl std::fmt::Write for ByteCount {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0 += s.len() as u64;
        Ok(())
    }
}

/// What every record of a request adds to its event's text: the batch
/// `context` (merged into each event), the `User-Agent` (written into
/// each event that has none) and the gateway's own fields and framing.
pub fn per_record_bytes(context: ContextSize, user_agent: Option<&str>) -> u64 {
    context.bytes + user_agent.map_or(0, |ua| ua.len() as u64) + RECORD_OVERHEAD_BYTES
}

/// The bytes of records a request of `events` events, whose texts take
/// `text_bytes` together, will write at most.
pub fn output_bytes(text_bytes: u64, events: u64, per_record: u64) -> u64 {
    text_bytes.saturating_add(events.saturating_mul(per_record))
}

/// [`ContextSize::of`] of an optional batch context.
pub fn context_size(ctx: Option<&Map<'_>>) -> ContextSize {
    ctx.map(ContextSize::of).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json;

    fn ctx(text: &str) -> Map<'_> {
        match json::from_str(text).expect("json") {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn the_measure_is_at_least_the_written_length() {
        for text in [
            r#"{}"#,
            r#"{"a":1}"#,
            r#"{"library":{"name":"analytics.js","version":"5.2.0"},"page":{"url":"https://x.example/?q=1","title":"Hi"},"n":[1,2.5,-3e10,true,false,null],"e":"quote \" back \\ nl \n tab \t ctl \u0001"}"#,
        ] {
            let m = ctx(text);
            let mut out = Vec::new();
            json::write_map(&m, text, &mut out);
            let size = ContextSize::of(&m);
            assert!(
                size.bytes >= out.len() as u64,
                "{text}: {} < {}",
                size.bytes,
                out.len()
            );
            // And not wildly more for text without escapes.
            if !text.contains('\\') {
                assert_eq!(size.bytes, out.len() as u64, "{text}");
            }
        }
    }

    #[test]
    fn keys_are_counted_at_every_depth() {
        let m = ctx(r#"{"a":{"b":{"c":1},"d":[{"e":1}]},"f":2}"#);
        assert_eq!(ContextSize::of(&m).keys, 6);
    }

    #[test]
    fn a_context_over_either_limit_is_refused() {
        let limits = LimitsConfig {
            max_context_bytes: 40,
            max_context_keys: 3,
            ..LimitsConfig::default()
        };
        assert!(ContextSize::checked(&ctx(r#"{"a":1,"b":2,"c":3}"#), &limits).is_ok());
        assert_eq!(
            ContextSize::checked(&ctx(r#"{"a":1,"b":2,"c":3,"d":4}"#), &limits),
            Err(ContextError::TooManyKeys(3))
        );
        let long = format!(r#"{{"a":"{}"}}"#, "x".repeat(40));
        assert_eq!(
            ContextSize::checked(&ctx(&long), &limits),
            Err(ContextError::TooManyBytes(40))
        );
    }

    #[test]
    fn the_output_charges_every_event_for_the_context() {
        let size = ContextSize {
            keys: 10,
            bytes: 1000,
        };
        let per = per_record_bytes(size, Some("UA/1"));
        assert_eq!(per, 1000 + 4 + RECORD_OVERHEAD_BYTES);
        assert_eq!(output_bytes(500, 100, per), 500 + 100 * per);
        assert_eq!(output_bytes(u64::MAX, 2, per), u64::MAX);
    }
}
