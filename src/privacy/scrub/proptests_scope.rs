//! Property tests of scope: PII generated per detector and planted in
//! identity fields, in encoded text, under keys of every casing, in JSON
//! held by strings and in arrays never survives; booleans, UUIDs, dates,
//! versions, tracking numbers, ISBNs, hex ids and prices planted the same
//! ways always do.

use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::config::DEFAULT_DENY_KEYS;
use super::proptests::{any_pii, benign, charset, digits_of, encode, location, put, Pii, Plant};
use super::tests::clean_page_event;
use super::*;

fn scrubber() -> &'static Scrubber {
    static S: OnceLock<Scrubber> = OnceLock::new();
    S.get_or_init(|| {
        Scrubber::new(&ScrubConfig {
            pseudonym_secret: Some("property test pseudonym secret".into()),
            ..ScrubConfig::default()
        })
        .expect("config builds")
    })
}

fn scrub(ev: &Value) -> (Value, Vec<Redaction>, ScrubOutcome) {
    let mut out = Vec::new();
    let mut o = ScrubOutcome::default();
    let v = super::tests::scrub_parsed(ev, |m| {
        o = scrubber().scrub_event(m, &mut out);
    });
    (v, out, o)
}

/// Fails when any form of the PII survives anywhere in `out`.
fn assert_gone(pii: &Pii, out: &Value) -> Result<(), TestCaseError> {
    let serialized = serde_json::to_string(out).expect("serializes");
    prop_assert!(
        !serialized.contains(&pii.secret),
        "secret survived: {serialized}"
    );
    for form in [true, false] {
        let enc = encode(&pii.secret, form);
        prop_assert!(
            !serialized.contains(&enc),
            "encoded secret survived: {serialized}"
        );
    }
    if pii.digits {
        let d = digits_of(&pii.secret);
        let mut all = Vec::new();
        super::proptests::strings_of(out, &mut all);
        for s in &all {
            prop_assert!(
                !digits_of(s).contains(&d),
                "digits of {} survived in {s}",
                pii.secret
            );
        }
    }
    Ok(())
}

/// Look-alikes beyond the shared ones: tracking numbers, ISBNs, hex ids.
fn more_benign() -> impl Strategy<Value = String> {
    let ups = charset("ABCDEFGHJKLMNPRSTUVWXYZ0123456789", 16).prop_map(|s| format!("1Z{s}"));
    let bare = prop_oneof![Just(12usize), Just(20), Just(22)]
        .prop_flat_map(|n| charset("0123456789", n))
        .prop_map(|d| format!("9{}", &d[1..]));
    let isbn = (0u32..10, 100u32..1000, 10000u32..100_000, 0u32..10)
        .prop_map(|(a, b, c, d)| format!("978-{a}-{b}-{c}-{d}"));
    let hex = prop_oneof![Just(24usize), Just(32), Just(40)]
        .prop_flat_map(|n| charset("0123456789abcdef", n));
    prop_oneof![ups, bare, isbn, hex, benign()]
}

/// Words of a key in one of the casings clients use.
fn cased(words: &[&str], style: usize) -> String {
    let cap = |w: &str| {
        let mut c = w.chars();
        c.next()
            .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
            .unwrap_or_default()
    };
    match style {
        0 => words
            .iter()
            .enumerate()
            .map(|(i, w)| if i == 0 { w.to_string() } else { cap(w) })
            .collect(),
        1 => words.iter().map(|w| cap(w)).collect(),
        2 => words.join("_"),
        3 => words.join("-"),
        4 => words.join("_").to_uppercase(),
        _ => words.join("."),
    }
}

/// A key a default rule catches: the rule's words, maybe after a word and
/// (for rules not anchored at the end) before one, maybe with digits; and
/// whether the rule removes numbers (its value kinds).
fn pii_key() -> impl Strategy<Value = (String, bool)> {
    (
        proptest::sample::select(DEFAULT_DENY_KEYS.to_vec()),
        proptest::option::of(proptest::sample::select(vec![
            "user", "new", "billing", "my", "primary", "home",
        ])),
        proptest::option::of(proptest::sample::select(vec![
            "confirmation",
            "hint",
            "value",
            "old",
        ])),
        0usize..6,
        any::<bool>(),
    )
        .prop_map(|(entry, before, after, style, digit)| {
            let (rule, numbers) = match entry.split_once(':') {
                Some((rule, kinds)) => (rule.trim(), kinds.contains("number")),
                None => (entry, true),
            };
            let end = rule.ends_with('$');
            let phrase = rule.trim_end_matches('$');
            let mut words: Vec<&str> = before.into_iter().collect();
            words.extend(phrase.split(' '));
            if !end {
                words.extend(after);
            }
            let mut k = cased(&words, style);
            if digit {
                k.push('2');
            }
            (k, numbers)
        })
}

/// Keys that look like rules but are not PII.
fn benign_key() -> impl Strategy<Value = String> {
    let keys: Vec<&[&str]> = vec![
        &["tokenizer"],
        &["tokens", "used"],
        &["pinned"],
        &["options"],
        &["ip", "address"],
        &["mac", "address"],
        &["mobile", "app", "version"],
        &["address", "type"],
        &["email", "type"],
        &["password", "length"],
        &["phone", "model"],
        &["hotel"],
        &["passenger"],
        &["author"],
        &["description"],
        &["discount"],
        &["page", "name"],
        &["product", "name"],
        &["cardinality"],
        &["session", "count"],
    ];
    (proptest::sample::select(keys), 0usize..6).prop_map(|(w, style)| cased(w, style))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn pii_in_identity_fields_never_survives_and_becomes_a_pseudonym(
        pii in any_pii(),
        field in proptest::sample::select(IDENTITY_FIELDS.to_vec()),
        prefix in proptest::sample::select(vec!["", "visitor ", "id ", "id: "]),
    ) {
        let mut ev = clean_page_event();
        let id = format!("{prefix}{}", pii.text);
        ev[field] = json!(id);
        let (out, red, outcome) = scrub(&ev);
        assert_gone(&pii, &out)?;
        prop_assert!(outcome.identity_pii);
        let v = out[field].as_str().expect("a string");
        prop_assert!(v.starts_with(PSEUDONYM_PREFIX), "{v}");
        prop_assert_eq!(v, scrubber().pseudonyms.pseudonym(&id));
        prop_assert!(red.iter().all(|r| r.path == field), "{:?}", red);
    }

    #[test]
    fn pii_in_encoded_text_and_embedded_json_never_survives(
        pii in any_pii(),
        form in any::<bool>(),
        how in 0usize..3,
        loc in location(),
    ) {
        let text = match how {
            0 => format!("note {}", encode(&pii.text, form)),
            1 => encode(&pii.text, form),
            _ => json!({"items": [{"note": pii.text}]}).to_string(),
        };
        let mut ev = clean_page_event();
        put(&mut ev, &loc, &Plant::Value, &text);
        let (out, red, _) = scrub(&ev);
        assert_gone(&pii, &out)?;
        prop_assert!(!red.is_empty());
    }

    #[test]
    fn keys_of_every_casing_take_strings_and_numbers_never_booleans(
        (key, removes_numbers) in pii_key(),
        loc in location(),
        number in any::<bool>(),
    ) {
        let secret = "kept-out-of-kafka";
        // A rule whose kinds leave numbers out (`session id`, `email`) is
        // checked with a string.
        let number = number && removes_numbers;
        let value = if number { json!(918273645) } else { json!(secret) };
        let mut ev = clean_page_event();
        let mut holder = Map::new();
        holder.insert(key.clone(), value);
        holder.insert("flag".into(), json!(true));
        put(&mut ev, &loc, &Plant::Value, "placeholder");
        let mut probe = ev.clone();
        // Replace the planted string by the object holding the key.
        replace_string(&mut probe, "placeholder", Value::Object(holder.clone()));
        let (out, red, _) = scrub(&probe);
        let text = out.to_string();
        prop_assert!(!text.contains(secret) && !text.contains("918273645"), "{key}: {text}");
        prop_assert!(!red.is_empty(), "{key}");

        let mut with_bool = Map::new();
        with_bool.insert(key.clone(), json!(true));
        let mut ev2 = ev.clone();
        replace_string(&mut ev2, "placeholder", Value::Object(with_bool));
        let (out2, red2, _) = scrub(&ev2);
        prop_assert_eq!(&out2, &ev2, "{} with a boolean", key);
        prop_assert!(red2.is_empty());
    }

    #[test]
    fn look_alike_keys_and_values_survive(
        key in benign_key(),
        value in more_benign(),
        loc in location(),
        field in proptest::sample::select(vec!["userId", "anonymousId", "groupId", "previousId"]),
    ) {
        let mut ev = clean_page_event();
        let mut holder = Map::new();
        holder.insert(key, json!(value.clone()));
        holder.insert("list".into(), json!([value.clone(), true, null, 12.5]));
        put(&mut ev, &loc, &Plant::Value, "placeholder");
        replace_string(&mut ev, "placeholder", Value::Object(holder));
        ev[field] = json!(value);
        let (out, red, outcome) = scrub(&ev);
        prop_assert_eq!(&out, &ev);
        prop_assert!(red.is_empty(), "{:?}", red);
        prop_assert!(!outcome.identity_pii);
    }
}

/// Replaces the string `needle` wherever it is a value in `v`.
fn replace_string(v: &mut Value, needle: &str, with: Value) {
    match v {
        Value::String(s) if s == needle => *v = with,
        Value::Object(m) => m
            .values_mut()
            .for_each(|x| replace_string(x, needle, with.clone())),
        Value::Array(a) => a
            .iter_mut()
            .for_each(|x| replace_string(x, needle, with.clone())),
        _ => {}
    }
}
