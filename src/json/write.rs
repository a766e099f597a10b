//! Writing the tree as JSON text, once, into the record. A string or key
//! that borrows from the text the event was parsed from had no escapes
//! there (the parser owns every string it had to unescape, and rejects raw
//! control characters), so it is copied as it is; everything else (owned
//! strings, text from elsewhere) is escaped.

use std::borrow::Cow;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::{Map, Value};

/// The text the tree was parsed from: a borrowed string inside it came from
/// the parser.
#[derive(Clone, Copy)]
struct Source<'s>(&'s [u8]);

impl<'s> Source<'s> {
    /// `s` with its quotes, when `s` lies in the source between two quotes
    /// (a string or key as the parser found it).
    fn quoted(&self, s: &str) -> Option<&'s [u8]> {
        let start = (s.as_ptr() as usize).checked_sub(self.0.as_ptr() as usize)?;
        let quoted = self.0.get(start.checked_sub(1)?..start + s.len() + 1)?;
        (quoted.first() == Some(&b'"') && quoted.last() == Some(&b'"')).then_some(quoted)
    }
}

/// Writes `map` as a JSON object; `src` is the text it was parsed from.
pub fn write_map(map: &Map<'_>, src: &str, out: &mut Vec<u8>) {
    // The record is about as long as the event's text plus what the stages
    // added: one allocation up front rather than several while writing.
    out.reserve(src.len() + src.len() / 4);
    write_object(map, Source(src.as_bytes()), out);
}

/// Writes `value` as JSON, escaping every string.
pub fn write_value(value: &Value<'_>, out: &mut Vec<u8>) {
    write_any(value, Source(&[]), out);
}

/// `value` as JSON text (numbers as their text, every string escaped).
pub fn to_string(value: &Value<'_>) -> String {
    let mut out = Vec::new();
    write_value(value, &mut out);
    // Every piece written is UTF-8: the tree's strings and ASCII syntax.
    String::from_utf8_lossy(&out).into_owned()
}

/// `map` as JSON text (numbers as their text, every string escaped).
pub fn map_to_string(map: &Map<'_>) -> String {
    let mut out = Vec::new();
    write_object(map, Source(&[]), &mut out);
    String::from_utf8_lossy(&out).into_owned()
}

// The `Cow` variant is what is read: borrowed text may be copied as it is.
#[allow(clippy::ptr_arg)]
fn write_str(s: &Cow<'_, str>, src: Source<'_>, out: &mut Vec<u8>) {
    match s {
        Cow::Borrowed(b) if let Some(quoted) = src.quoted(b) => {
            debug_assert!(!b.bytes().any(|c| c == b'"' || c == b'\\' || c < 0x20));
            out.extend_from_slice(quoted);
        }
        _ if !needs_escape(s.as_bytes()) => {
            out.reserve(s.len() + 2);
            out.push(b'"');
            out.extend_from_slice(s.as_bytes());
            out.push(b'"');
        }
        _ => {
            // Writing a `str` into a `Vec` cannot fail.
            let _ = serde_json::to_writer(&mut *out, s.as_ref());
        }
    }
}

/// Whether JSON needs any byte of `b` escaped: a quote, a backslash or a
/// control character. Without an early exit, so the loop vectorizes; most
/// strings the gateway writes itself (times, addresses, parsed fields) are
/// short and clean.
fn needs_escape(b: &[u8]) -> bool {
    b.iter().fold(false, |acc, &c| {
        acc | (c < 0x20) | (c == b'"') | (c == b'\\')
    })
}

fn write_object(map: &Map<'_>, src: Source<'_>, out: &mut Vec<u8>) {
    out.push(b'{');
    for (i, (k, v)) in map.entries().iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(k, src, out);
        out.push(b':');
        write_any(v, src, out);
    }
    out.push(b'}');
}

fn write_any(value: &Value<'_>, src: Source<'_>, out: &mut Vec<u8>) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        // The number's text as the client sent it (or as a stage printed it).
        Value::Number(n) => out.extend_from_slice(n.as_str().as_bytes()),
        Value::String(s) => write_str(s, src, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_any(item, src, out);
            }
            out.push(b']');
        }
        Value::Object(map) => write_object(map, src, out),
    }
}

impl Serialize for Value<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Value::Null => s.serialize_unit(),
            Value::Bool(b) => s.serialize_bool(*b),
            // For code that needs `serde` (tests, `serde_json::Value`):
            // records are written by `write_map`, which copies the text.
            Value::Number(n) => n.to_serde().serialize(s),
            Value::String(v) => s.serialize_str(v),
            Value::Array(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Value::Object(map) => map.serialize(s),
        }
    }
}

impl Serialize for Map<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.len()))?;
        for (k, v) in self.iter() {
            m.serialize_entry(k, v)?;
        }
        m.end()
    }
}
