//! Writing records: an accepted event's record, written once where it goes
//! (the request's spool batch, or the producer), and what a rejected event's
//! invalid-topic record says.

use serde_json::Value;

use crate::json;

use super::Sending;
use crate::quality::plan::{Violation, REASON_SCHEMA_VIOLATION};
use crate::route::Route;
use crate::sink::{Record, RecordKind, Sink, SinkError};

/// What the producer counts in a record beyond its key, value and
/// headers (Kafka's record and batch framing), so that a record measured
/// here within `message.max.bytes` is one the producer sends.
const KAFKA_RECORD_FRAMING_BYTES: u64 = 128;

/// Why an accepted event's record was not written.
#[derive(Debug, thiserror::Error)]
pub(super) enum WriteError {
    #[error(transparent)]
    Sink(#[from] SinkError),
    /// Larger than the producer sends (`message.max.bytes`): kept, it
    /// would be answered 200 and then refused by the producer.
    #[error("the record is larger than the producer's message.max.bytes = {0}")]
    TooLarge(u64),
}

/// Whether a record of `value_len` bytes routed by `route` is more than
/// the producer sends (`max`: `message.max.bytes`).
fn too_large(route: &Route<'_>, value_len: usize, max: u64) -> bool {
    let headers: usize = route
        .headers
        .iter()
        .map(|(k, v)| k.len() + v.map_or(0, <[u8]>::len))
        .sum();
    (value_len + route.key.as_bytes().len() + headers) as u64 + KAFKA_RECORD_FRAMING_BYTES > max
}

/// Writes one accepted event's record once, where it goes: straight into
/// the request's spool batch (framed as it will be produced), or into
/// `buf` and on to the producer with the spool off. `src` is the event's
/// JSON text, whose strings the record copies as they are. `seen` gets the
/// value bytes once written (the inspector's tap). A record larger than
/// `max_record_bytes` (the producer's `message.max.bytes`) is not written.
#[allow(clippy::too_many_arguments)]
pub(super) fn write_record(
    sink: &dyn Sink,
    sending: &mut Sending,
    buf: &mut Vec<u8>,
    route: &Route<'_>,
    body: &json::Map<'_>,
    src: &str,
    max_record_bytes: u64,
    seen: impl FnOnce(&[u8]),
) -> Result<(), WriteError> {
    let key = route.key.as_bytes();
    match sending {
        Sending::Direct => {
            buf.clear();
            json::write_map(body, src, buf);
            if too_large(route, buf.len(), max_record_bytes) {
                return Err(WriteError::TooLarge(max_record_bytes));
            }
            let record = Record {
                topic: route.topic,
                key: Some(key),
                headers: route.headers[..].into(),
                value: buf,
            };
            sink.send(&record, RecordKind::Event)?;
            seen(buf);
            Ok(())
        }
        Sending::Spool(batch, _) => {
            batch.begin_record(RecordKind::Event, route.topic, Some(key), &route.headers);
            let start = batch.buf.len();
            json::write_map(body, src, &mut batch.buf);
            if too_large(route, batch.buf.len() - start, max_record_bytes) {
                batch.abandon_record();
                return Err(WriteError::TooLarge(max_record_bytes));
            }
            seen(&batch.buf[start..]);
            batch.finish_record();
            Ok(())
        }
    }
}

/// Why an event goes to the invalid topic.
pub(super) struct Invalid {
    pub(super) code: &'static str,
    pub(super) message: String,
    /// Tracking-plan violations (`[{path, rule}]`), for `schema_violation`.
    pub(super) violations: Option<Value>,
}

impl Invalid {
    pub(super) fn new(code: &'static str, message: String) -> Invalid {
        Invalid {
            code,
            message,
            violations: None,
        }
    }

    pub(super) fn schema_violation(violations: &[Violation]) -> Invalid {
        Invalid {
            code: REASON_SCHEMA_VIOLATION,
            message: "event violates the source's tracking plan".into(),
            violations: Some(Value::Array(
                violations.iter().map(Violation::to_json).collect(),
            )),
        }
    }
}

pub(super) fn truncate_at_char_boundary(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
