//! Writing records: an accepted event's record, written once where it goes
//! (the request's spool batch, or the producer), and what a rejected event's
//! invalid-topic record says.

use serde_json::Value;

use crate::json;

use super::Sending;
use crate::quality::plan::{Violation, REASON_SCHEMA_VIOLATION};
use crate::route::Route;
use crate::sink::{Record, RecordKind, Sink, SinkError};

/// Writes one accepted event's record once, where it goes: straight into
/// the request's spool batch (framed as it will be produced), or into
/// `buf` and on to the producer with the spool off. `src` is the event's
/// JSON text, whose strings the record copies as they are. `seen` gets the
/// value bytes once written (the inspector's tap).
pub(super) fn write_record(
    sink: &dyn Sink,
    sending: &mut Sending,
    buf: &mut Vec<u8>,
    route: &Route<'_>,
    body: &json::Map<'_>,
    src: &str,
    seen: impl FnOnce(&[u8]),
) -> Result<(), SinkError> {
    let key = route.key.as_bytes();
    match sending {
        Sending::Direct => {
            buf.clear();
            json::write_map(body, src, buf);
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
