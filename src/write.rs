//! Writing a record's JSON text: the last step before the sink.
//!
//! The output is byte for byte what `serde_json::to_writer` writes (the
//! property test below holds it to that), written straight into a `Vec`
//! without the `io::Write` and `Formatter` layers, and with strings scanned
//! for characters to escape eight bytes at a time: event values are mostly
//! plain text, and escaping was the largest single cost of writing a record
//! (`benches/pipeline.rs`, `loadtest/profile.sh`).

use serde_json::{Map, Value};

/// Appends the JSON text of `map` to `out`.
pub fn object(out: &mut Vec<u8>, map: &Map<String, Value>) {
    out.push(b'{');
    let mut first = true;
    for (k, v) in map {
        if !first {
            out.push(b',');
        }
        first = false;
        string(out, k);
        out.push(b':');
        value(out, v);
    }
    out.push(b'}');
}

/// Appends the JSON text of `v` to `out`.
pub fn value(out: &mut Vec<u8>, v: &Value) {
    match v {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(n) => number(out, n),
        Value::String(s) => string(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                value(out, item);
            }
            out.push(b']');
        }
        Value::Object(m) => object(out, m),
    }
}

fn number(out: &mut Vec<u8>, n: &serde_json::Number) {
    if let Some(i) = n.as_i64() {
        out.extend_from_slice(itoa::Buffer::new().format(i).as_bytes());
    } else if let Some(u) = n.as_u64() {
        out.extend_from_slice(itoa::Buffer::new().format(u).as_bytes());
    } else {
        // Floats are rare in events; serde_json's own writer keeps its
        // exact formatting (ryu, `null` for what JSON cannot hold).
        // Writing into a `Vec` cannot fail.
        let _ = serde_json::to_writer(&mut *out, n);
    }
}

const LOW_BITS: u64 = 0x0101_0101_0101_0101;
const HIGH_BITS: u64 = 0x8080_8080_8080_8080;

/// Whether any byte of `w` is a control character, `"` or `\`.
fn needs_escape(w: u64) -> bool {
    let below_space = w.wrapping_sub(LOW_BITS * 0x20) & !w;
    let quote = (w ^ (LOW_BITS * u64::from(b'"'))).wrapping_sub(LOW_BITS)
        & !(w ^ (LOW_BITS * u64::from(b'"')));
    let backslash = (w ^ (LOW_BITS * u64::from(b'\\'))).wrapping_sub(LOW_BITS)
        & !(w ^ (LOW_BITS * u64::from(b'\\')));
    (below_space | quote | backslash) & HIGH_BITS != 0
}

/// Appends `s` as a JSON string.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        // Skip plain text a word at a time.
        if let Some(chunk) = bytes.get(i..i + 8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(chunk);
            if !needs_escape(u64::from_le_bytes(w)) {
                i += 8;
                continue;
            }
        }
        let b = bytes[i];
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => &[],
            _ => {
                i += 1;
                continue;
            }
        };
        out.extend_from_slice(&bytes[start..i]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.extend_from_slice(b"\\u00");
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 0xf)]);
        } else {
            out.extend_from_slice(escape);
        }
        i += 1;
        start = i;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::json;

    fn written(v: &Value) -> Vec<u8> {
        let mut out = Vec::new();
        value(&mut out, v);
        out
    }

    #[test]
    fn every_escape_and_number_kind_matches_serde_json() {
        let mut all_bytes = String::new();
        for c in 0u8..0x80 {
            all_bytes.push(char::from(c));
        }
        let v = json!({
            "plain": "hello world, a long enough plain string",
            "controls": all_bytes,
            "unicode": "héllo — 日本 🎉 \u{7f}\u{2028}",
            "numbers": [0, -1, 1.5, 1e300, -0.0, u64::MAX, i64::MIN, 0.1],
            "nested": {"a": [true, false, null, {}], "": []},
            "quote\"key\\": "\"\\\"",
        });
        assert_eq!(
            String::from_utf8(written(&v)).unwrap(),
            serde_json::to_string(&v).unwrap()
        );
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            any::<String>().prop_map(Value::String),
            "[ -~\\x00-\\x1f\"\\\\é]{0,40}".prop_map(Value::String),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::btree_map(any::<String>(), inner, 0..8)
                    .prop_map(|m| Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_value_is_written_exactly_as_serde_json_writes_it(v in arb_value()) {
            prop_assert_eq!(written(&v), serde_json::to_vec(&v).unwrap());
        }
    }
}
