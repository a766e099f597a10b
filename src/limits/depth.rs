//! The JSON nesting depth checks (`limits.max_json_depth`): a byte scan of
//! raw text before parsing, and a walk of parsed values.

use crate::json::{Map, Value};

/// Whether `text` (JSON) nests objects and arrays deeper than `max`.
/// A byte scan counting brackets outside strings: cheap, allocation-free,
/// and safe on any input (malformed JSON is the parser's to reject).
pub fn json_too_deep(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a parsed value nests objects and arrays deeper than `max`
/// (recursion stops at `max`).
pub fn value_too_deep(v: &Value, max: usize) -> bool {
    match v {
        Value::Array(a) => max == 0 || a.iter().any(|c| value_too_deep(c, max - 1)),
        Value::Object(m) => object_too_deep(m, max),
        _ => false,
    }
}

/// [`value_too_deep`] of an object.
pub fn object_too_deep(m: &Map<'_>, max: usize) -> bool {
    max == 0 || m.values().any(|c| value_too_deep(c, max - 1))
}
