use std::borrow::Cow;

use proptest::prelude::*;

use super::*;

fn written(text: &str) -> String {
    let Ok(Value::Object(m)) = from_str(text) else {
        panic!("not an object: {text}");
    };
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    String::from_utf8(out).expect("utf-8")
}

#[test]
fn strings_without_escapes_borrow_and_escaped_ones_are_owned() {
    let text = r#"{"plain":"abc","esc\"aped":"a\nb","n":[1,-2,3.5,true,null]}"#;
    let Ok(Value::Object(m)) = from_str(text) else {
        panic!("parse");
    };
    let keys: Vec<bool> = m
        .entries()
        .iter()
        .map(|(k, _)| matches!(k, Cow::Borrowed(_)))
        .collect();
    assert_eq!(keys, [true, false, true]);
    assert!(matches!(
        m.get("plain"),
        Some(Value::String(Cow::Borrowed("abc")))
    ));
    assert!(matches!(m.get("esc\"aped"), Some(Value::String(Cow::Owned(s))) if s == "a\nb"));
}

#[test]
fn writing_keeps_the_order_and_matches_serde_json_value_for_value() {
    let text = r#"{"z":1,"a":"x\u00e9\"y","m":{"k":[1,2.5e3,"\ud83d\ude00"],"e":{}},"b":null}"#;
    let out = written(text);
    assert!(out.starts_with(r#"{"z":1,"a":"#), "{out}");
    let back: serde_json::Value = serde_json::from_str(&out).expect("valid");
    let orig: serde_json::Value = serde_json::from_str(text).expect("valid");
    assert_eq!(back, orig);
}

#[test]
fn a_repeated_key_keeps_the_last_value_at_the_first_place_like_serde_json() {
    let text = r#"{"a":1,"b":2,"a":3}"#;
    assert_eq!(written(text), r#"{"a":3,"b":2}"#);
    let many: String = (0..40).map(|i| format!(r#""k{i}":{i},"#)).collect();
    let text = format!(r#"{{{many}"k7":"last"}}"#);
    let Ok(Value::Object(m)) = from_str(&text) else {
        panic!("parse");
    };
    assert_eq!(m.len(), 40);
    assert_eq!(m["k7"], "last");
    let orig: serde_json::Value = serde_json::from_str(&text).expect("valid");
    assert_eq!(Value::Object(m), orig);
}

#[test]
fn changed_strings_and_text_from_elsewhere_are_escaped() {
    let text = r#"{"a":"x","b":"y"}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    m.insert("a", Value::from("q\"uo\\te\u{1}"));
    let elsewhere = String::from("new\"key");
    m.insert(elsewhere.as_str(), Value::from("tab\there"));
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back["a"], "q\"uo\\te\u{1}");
    assert_eq!(back["new\"key"], "tab\there");
    assert_eq!(back["b"], "y");
}

#[test]
fn map_edits_keep_the_order_of_the_rest() {
    let text = r#"{"a":1,"b":2,"c":3}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    assert_eq!(m.remove("b"), Some(Value::Number(2.into())));
    assert_eq!(
        m.insert("a", Value::Bool(true)),
        Some(Value::Number(1.into()))
    );
    m.insert("d", Value::Null);
    let keys: Vec<&str> = m.keys().collect();
    assert_eq!(keys, ["a", "c", "d"]);
}

#[test]
fn invalid_json_and_trailing_text_are_errors() {
    for bad in [
        r#"{"a":1"#,
        r#"{"a":1} x"#,
        "{\"a\":\"\u{1}\"}",
        r#"{"a":01}"#,
    ] {
        assert!(from_str(bad).is_err(), "{bad:?}");
    }
}

fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i64>().prop_map(|n| serde_json::json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| serde_json::json!(f)),
        any::<String>().prop_map(serde_json::Value::String),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::Array),
            prop::collection::vec(("[a-c\"\\\\é]{0,3}", inner), 0..6)
                .prop_map(|kv| { serde_json::Value::Object(kv.into_iter().collect()) }),
        ]
    })
}

proptest! {
    /// Any value `serde_json` writes, this tree parses to the same value
    /// and writes back byte for byte (numbers and strings copied, escaped
    /// strings escaped the same way).
    #[test]
    fn round_trips_byte_for_byte(v in arb_json()) {
        let obj = serde_json::json!({ "v": v, "s": "plain" });
        let text = serde_json::to_string(&obj).expect("serialize");
        let parsed = from_str(&text).expect("parse");
        prop_assert_eq!(&parsed, &obj);
        let Value::Object(m) = parsed else { panic!("object") };
        let mut out = Vec::new();
        write_map(&m, &text, &mut out);
        prop_assert_eq!(String::from_utf8(out).expect("utf-8"), text);
    }

    /// Every number the JSON grammar allows is written as it was sent.
    #[test]
    fn any_number_text_is_written_as_sent(
        neg in any::<bool>(),
        int in "0|[1-9][0-9]{0,40}",
        frac in proptest::option::of("[0-9]{1,30}"),
        exp in proptest::option::of(("[eE]", "[+-]?", "[0-9]{1,2}")),
    ) {
        let mut n = String::new();
        if neg { n.push('-'); }
        n.push_str(&int);
        if let Some(f) = frac { n.push('.'); n.push_str(&f); }
        if let Some((e, sign, d)) = exp { n.push_str(&e); n.push_str(&sign); n.push_str(&d); }
        let text = format!(r#"{{"n":{n},"a":[{n}]}}"#);
        prop_assert_eq!(written(&text), text);
    }
}

#[test]
fn numbers_are_copied_not_reprinted() {
    for n in [
        "-0",
        "1E2",
        "1e+2",
        "123456789012345678901",
        "123456.89012345679",
        "0.10",
        "-1.5e-7",
        "18446744073709551616",
        "9007199254740993",
    ] {
        let text = format!(r#"{{"n":{n}}}"#);
        assert_eq!(written(&text), text);
        let Ok(Value::Object(m)) = from_str(&text) else {
            panic!("parse");
        };
        assert_eq!(m["n"].to_string(), n);
    }
    // Read as values where a stage needs them.
    let Ok(v) = from_str(r#"[1E2,-0,9007199254740993,1.5]"#) else {
        panic!("parse");
    };
    let a = v.as_array().expect("array");
    assert_eq!((a[0].as_f64(), a[0].as_i64()), (Some(100.0), None));
    assert_eq!(a[1].as_i64(), Some(0));
    assert_eq!(a[2].as_i64(), Some(9_007_199_254_740_993));
    assert_eq!(a[3], 1.5);
    // A number a stage writes is shortest-round-trip.
    assert_eq!(Number::from_f64(0.1).expect("finite").as_str(), "0.1");
    assert_eq!(Number::from_f64(48.86).expect("finite").as_str(), "48.86");
    assert!(Number::from_f64(f64::NAN).is_none());
}

#[test]
fn numbers_beyond_the_double_range_and_bad_forms_are_errors() {
    for bad in [
        "1e400", "-1e999", "01", "1.", ".5", "1e", "+1", "-", "NaN", "Infinity", "0x10",
    ] {
        let text = format!(r#"{{"n":{bad}}}"#);
        assert!(from_str(&text).is_err(), "{bad}");
    }
    let long = format!(r#"{{"n":{}}}"#, "9".repeat(400));
    assert_eq!(
        from_str(&long).unwrap_err().kind,
        ErrorKind::NumberOutOfRange
    );
    assert!(from_str(r#"{"n":1e-400}"#).is_ok());
}

#[test]
fn a_lone_surrogate_becomes_the_replacement_character() {
    let cases = [
        (r#"{"s":"x\ud83dy"}"#, "x\u{fffd}y"),
        (r#"{"s":"\ude00"}"#, "\u{fffd}"),
        (r#"{"s":"\ud83d\ud83d\ude00"}"#, "\u{fffd}\u{1f600}"),
        (r#"{"s":"\ud83d\n"}"#, "\u{fffd}\n"),
        (r#"{"s":"a\ud83d"}"#, "a\u{fffd}"),
        (r#"{"s":"\ud83d\ude00"}"#, "\u{1f600}"),
    ];
    for (text, want) in cases {
        let Ok(Value::Object(m)) = from_str(text) else {
            panic!("{text}");
        };
        assert_eq!(m["s"], want, "{text}");
        let back: serde_json::Value = serde_json::from_str(&written(text)).expect("valid JSON");
        assert_eq!(back["s"], want);
    }
    // A high surrogate followed by a broken escape is still an error.
    assert!(from_str(r#"{"s":"\ud83d\uZZZZ"}"#).is_err());
}

#[test]
fn errors_name_the_byte_and_the_kind() {
    let at = |t: &str| from_str(t).map(|_| ()).unwrap_err();
    assert_eq!(at("{\"a\":\"x\u{1}\"}").kind, ErrorKind::ControlCharacter);
    assert_eq!(at("{\"a\":\"x\u{1}\"}").at, 7);
    assert_eq!(at(r#"{"a":\q}"#).at, 5);
    assert_eq!(at(r#"{"a":"\q"}"#).kind, ErrorKind::InvalidEscape);
    assert_eq!(
        at(r#"{"a":1,}"#).to_string(),
        "expected an object key at byte 7"
    );
    assert_eq!(at(r#"[1"#).kind, ErrorKind::Eof);
    let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
    assert_eq!(at(&deep).kind, ErrorKind::TooDeep);
    let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    assert!(from_str(&ok).is_ok());
}

#[test]
fn the_skipper_finds_the_end_of_any_value_the_parser_reads() {
    for text in [
        r#"{"a":[1,{"b":"c\"d"}],"e":-1.5e3}"#,
        "[]",
        "{}",
        r#""x""#,
        "true",
        "null",
        "0",
        r#"[[],[{}],{"":[]}]"#,
    ] {
        let padded = format!(" {text} ,");
        assert_eq!(
            skip_value(padded.as_bytes(), 0),
            Ok(text.len() + 1),
            "{text}"
        );
    }
    for bad in [
        r#"{"a" 1}"#,
        "[1,]",
        r#"{"a":1,}"#,
        "[1 2]",
        "tru",
        "{",
        "[",
        r#""x"#,
    ] {
        assert!(skip_value(bad.as_bytes(), 0).is_err(), "{bad}");
    }
    // String content is not its business.
    assert_eq!(skip_value(b"[\"\xff\x01\\q\"]", 0), Ok(8));
    // Nesting costs no stack frames.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    assert_eq!(skip_value(deep.as_bytes(), 0), Ok(200_000));
}

#[test]
fn slices_of_the_input_that_are_not_whole_strings_are_written_as_strings() {
    let text = r#"{"a":"hello","b":"x"}"#;
    let Ok(Value::Object(mut m)) = from_str(text) else {
        panic!("parse");
    };
    // Part of a string (not between quotes), and a key's text.
    m.insert("part", Value::from(&text[7..9]));
    m.insert("key", Value::from(&text[2..3]));
    let mut out = Vec::new();
    write_map(&m, text, &mut out);
    let back: serde_json::Value = serde_json::from_slice(&out).expect("valid JSON");
    assert_eq!(back["part"], "el");
    assert_eq!(back["key"], "a");
    assert_eq!(back["a"], "hello");
}

fn object(v: serde_json::Value) -> Map<'static> {
    match Value::from(v) {
        Value::Object(m) => m,
        _ => panic!("an object"),
    }
}

#[test]
fn merging_under_keeps_the_objects_own_keys_at_every_depth() {
    let under = object(serde_json::json!({"a": 1, "b": {"x": 1, "y": 2}, "c": "u"}));
    let mut over = object(serde_json::json!({"b": {"x": 9}, "c": {"o": true}}));
    over.merge_under(&under);
    assert_eq!(
        Value::Object(over),
        serde_json::json!({"a": 1, "b": {"x": 9, "y": 2}, "c": {"o": true}})
    );
    let mut empty = Map::new();
    empty.merge_under(&under);
    assert_eq!(empty, under);
}

#[test]
fn merging_large_objects_gives_what_merging_small_ones_does() {
    // Past the pairwise size, the merge goes through a hash table.
    let wide = |prefix: &str, n: usize, val: i64| {
        let mut m = serde_json::Map::new();
        for i in 0..n {
            m.insert(format!("{prefix}{i}"), serde_json::json!(val));
        }
        m.insert(
            "nested".into(),
            serde_json::json!({ prefix: val, "shared": val }),
        );
        serde_json::Value::Object(m)
    };
    let under = object(wide("k", 40, 1));
    let mut over = object(wide("k", 30, 2));
    over.insert("own", Value::Bool(true));
    over.merge_under(&under);
    assert_eq!(over.len(), 40 + 1 + 1);
    assert_eq!(over["k5"], 2);
    assert_eq!(over["k35"], 1);
    assert_eq!(over["nested"], serde_json::json!({"k": 2, "shared": 2}));
    assert_eq!(over["own"], true);
}

#[test]
fn the_skipper_tells_objects_from_arrays_at_every_depth() {
    // Alternating objects and arrays, past the levels kept in a word.
    for depth in [1, 63, 64, 65, 130] {
        let mut open = String::new();
        let mut close = String::new();
        for level in 0..depth {
            if level % 2 == 0 {
                open.push_str(r#"{"k":"#);
                close.insert(0, '}');
            } else {
                open.push('[');
                close.insert(0, ']');
            }
        }
        let text = format!("{open}1{close}");
        assert_eq!(skip_value(text.as_bytes(), 0), Ok(text.len()), "{depth}");
        assert!(from_str(&text).is_ok() || depth > MAX_DEPTH);
        // The wrong closer at the innermost level is an error.
        if depth > 1 {
            let wrong = if depth % 2 == 0 { '}' } else { ']' };
            let bad = format!("{open}1{wrong}{}", &close[1..]);
            assert!(skip_value(bad.as_bytes(), 0).is_err(), "{depth}");
        }
    }
}
