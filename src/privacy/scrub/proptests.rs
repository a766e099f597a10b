//! Property tests: PII generated from each detector's grammar, planted at
//! random places in random events, never survives `scrub_event`, is
//! replaced exactly where it was (the rest of the event is byte-for-byte
//! the same) and is reported under its detector; benign look-alikes planted
//! the same way always survive untouched.

use std::sync::OnceLock;

use base64::Engine as _;
use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use super::iban::{country_length, mod97};
use super::tests::clean_page_event;
use super::*;

fn scrubber() -> &'static Scrubber {
    static S: OnceLock<Scrubber> = OnceLock::new();
    S.get_or_init(|| Scrubber::new(&ScrubConfig::default()).expect("default config builds"))
}

/// One generated PII item.
#[derive(Debug, Clone)]
pub(super) struct Pii {
    pub(super) kind: Detector,
    /// The text planted.
    pub(super) text: String,
    /// What `text` becomes when scrubbed in place.
    replaced: String,
    /// The part that must never survive.
    pub(super) secret: String,
    /// Also check the digits-only form (cards, phones).
    pub(super) digits: bool,
    /// `(name, value)` when planted as a URL parameter, if the name matters.
    param: Option<(String, String)>,
}

impl Pii {
    fn plain(kind: Detector, text: String) -> Pii {
        Pii {
            kind,
            replaced: kind.marker().to_string(),
            secret: text.clone(),
            digits: matches!(kind, Detector::Card | Detector::Phone),
            param: None,
            text,
        }
    }
}

pub(super) fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

pub(super) fn charset(
    chars: &'static str,
    len: impl Into<proptest::sample::SizeRange>,
) -> BoxedStrategy<String> {
    let cs: Vec<char> = chars.chars().collect();
    proptest::collection::vec(proptest::sample::select(cs), len)
        .prop_map(|v| v.into_iter().collect())
        .boxed()
}

const ALNUM: &str = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const LOWER_DIGIT: &str = "abcdefghijklmnopqrstuvwxyz0123456789";
const LOWER: &str = "abcdefghijklmnopqrstuvwxyz";
const DIGITS: &str = "0123456789";
const HEX: &str = "0123456789abcdef";

fn email() -> impl Strategy<Value = Pii> {
    let tlds = [
        "com", "org", "io", "de", "co.uk", "example", "travel", "fr", "info",
    ];
    (
        charset(LOWER_DIGIT, 1..10),
        proptest::option::of((
            proptest::sample::select(vec!['.', '_', '+', '-']),
            charset(LOWER_DIGIT, 1..6),
        )),
        charset(LOWER_DIGIT, 1..10),
        proptest::option::of(charset(LOWER, 1..6)),
        proptest::sample::select(tlds.to_vec()),
        any::<bool>(),
    )
        .prop_map(|(l1, l2, d1, sub, tld, upper)| {
            let mut local = l1;
            if let Some((sep, more)) = l2 {
                local.push(sep);
                local.push_str(&more);
            }
            let domain = match sub {
                Some(s) => format!("{s}.{d1}.{tld}"),
                None => format!("{d1}.{tld}"),
            };
            let mut e = format!("{local}@{domain}");
            if upper {
                e = e.to_uppercase();
            }
            Pii::plain(Detector::Email, e)
        })
}

fn digits_str(n: usize) -> BoxedStrategy<String> {
    charset(DIGITS, n)
}

fn phone() -> impl Strategy<Value = Pii> {
    let area = (2u32..10, digits_str(2)).prop_map(|(a, b)| format!("{a}{b}"));
    let us =
        (area, 2u32..10, digits_str(2), digits_str(4), 0usize..6).prop_map(|(a, e0, e, n, f)| {
            let ex = format!("{e0}{e}");
            match f {
                0 => format!("+1 ({a}) {ex}-{n}"),
                1 => format!("{a}-{ex}-{n}"),
                2 => format!("({a}) {ex}-{n}"),
                3 => format!("{a}.{ex}.{n}"),
                4 => format!("+1 {a} {ex} {n}"),
                _ => format!("1-{a}-{ex}-{n}"),
            }
        });
    let uk = (digits_str(4), digits_str(4), any::<bool>()).prop_map(|(a, b, intl)| {
        if intl {
            format!("+44 20 {a} {b}")
        } else {
            format!("020 {a} {b}")
        }
    });
    let fr = (
        1u32..10,
        proptest::collection::vec(digits_str(2), 4),
        any::<bool>(),
    )
        .prop_map(|(m, g, intl)| {
            if intl {
                format!("+33 {m} {}", g.join(" "))
            } else {
                format!("0{m} {}", g.join(" "))
            }
        });
    let de = (digits_str(8), any::<bool>()).prop_map(|(n, intl)| {
        if intl {
            format!("+49 151 {n}")
        } else {
            format!("0151 {n}")
        }
    });
    let e164 = (1u32..10, charset(DIGITS, 9..13)).prop_map(|(c, n)| format!("+{c}{n}"));
    prop_oneof![us, uk, fr, de, e164]
        // A generated number whose digits also make a valid card number
        // (e.g. `+4428819047183`: Visa prefix, 13 digits, Luhn-valid) is
        // redacted as a card, which is as safe; it is not a phone sample.
        .prop_filter("a card number is not a phone sample", |p| {
            let digits: Vec<u8> = p.bytes().filter(u8::is_ascii_digit).collect();
            !super::card::is_card_number(&digits)
        })
        .prop_map(|p| Pii::plain(Detector::Phone, p))
}

/// Appends the Luhn check digit.
fn with_luhn(body: &str) -> String {
    for d in 0..10u8 {
        let cand = format!("{body}{d}");
        if card::luhn(cand.as_bytes()) {
            return cand;
        }
    }
    unreachable!("some check digit always works")
}

fn card_number() -> impl Strategy<Value = Pii> {
    // (prefix, total length)
    let networks: Vec<(&str, usize)> = vec![
        ("4", 16),
        ("4", 13),
        ("4", 19),
        ("51", 16),
        ("55", 16),
        ("2221", 16),
        ("2720", 16),
        ("34", 15),
        ("37", 15),
        ("6011", 16),
        ("65", 16),
        ("644", 19),
        ("3528", 16),
        ("3589", 19),
        ("36", 14),
        ("300", 16),
        ("62", 17),
        ("2200", 16),
        ("6759", 18),
    ];
    (
        proptest::sample::select(networks),
        charset(DIGITS, 19),
        0usize..3,
    )
        .prop_map(|((prefix, len), rnd, sep)| {
            let body = format!("{prefix}{}", &rnd[..len - 1 - prefix.len()]);
            let n = with_luhn(&body);
            let text = if sep == 0 {
                n.clone()
            } else {
                let s = if sep == 1 { " " } else { "-" };
                if len == 15 {
                    format!("{}{s}{}{s}{}", &n[..4], &n[4..10], &n[10..])
                } else {
                    n.as_bytes()
                        .chunks(4)
                        .map(|c| std::str::from_utf8(c).expect("ascii"))
                        .collect::<Vec<_>>()
                        .join(s)
                }
            };
            Pii::plain(Detector::Card, text)
        })
}

fn iban() -> impl Strategy<Value = Pii> {
    // (country, BBAN pattern: 'n' digit, 'a' upper letter, 'c' either)
    let formats: Vec<(&str, &str)> = vec![
        ("DE", "nnnnnnnnnnnnnnnnnn"),
        ("GB", "aaaannnnnnnnnnnnnn"),
        ("FR", "nnnnnnnnnncccccccccccnn"),
        ("NL", "aaaannnnnnnnnn"),
        ("ES", "nnnnnnnnnnnnnnnnnnnn"),
        ("IT", "annnnnnnnnncccccccccccc"),
        ("BE", "nnnnnnnnnnnn"),
        ("CH", "nnnnncccccccccccc"),
        ("NO", "nnnnnnnnnnn"),
        ("PL", "nnnnnnnnnnnnnnnnnnnnnnnn"),
    ];
    (
        proptest::sample::select(formats),
        proptest::collection::vec(any::<u8>(), 30),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(|((cc, pat), rnd, spaced, lower)| {
            let bban: String = pat
                .bytes()
                .zip(rnd)
                .map(|(p, r)| {
                    let digit = (b'0' + r % 10) as char;
                    let letter = (b'A' + r % 26) as char;
                    match p {
                        b'n' => digit,
                        b'a' => letter,
                        _ if r % 2 == 0 => digit,
                        _ => letter,
                    }
                })
                .collect();
            let probe = format!("{cc}00{bban}");
            let check = 98 - mod97(probe.as_bytes());
            let compact = format!("{cc}{check:02}{bban}");
            assert_eq!(
                Some(compact.len()),
                country_length(cc.as_bytes().try_into().expect("2"))
            );
            let mut text = if spaced {
                compact
                    .as_bytes()
                    .chunks(4)
                    .map(|c| std::str::from_utf8(c).expect("ascii"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                compact
            };
            if lower {
                text = text.to_lowercase();
            }
            Pii::plain(Detector::Iban, text)
        })
}

fn ssn() -> impl Strategy<Value = Pii> {
    (1u32..900, 1u32..100, 1u32..10000)
        .prop_filter("never issued", |(a, _, _)| *a != 666)
        .prop_map(|(a, g, s)| Pii::plain(Detector::Ssn, format!("{a:03}-{g:02}-{s:04}")))
}

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt() -> impl Strategy<Value = Pii> {
    let algs = ["HS256", "RS256", "ES384", "none", "EdDSA"];
    (
        proptest::sample::select(algs.to_vec()),
        charset(ALNUM, 1..20),
        1_500_000_000u64..2_000_000_000,
        proptest::collection::vec(any::<u8>(), 0..64),
    )
        .prop_map(|(alg, sub, iat, sig)| {
            let header = b64url(format!("{{\"alg\":\"{alg}\",\"typ\":\"JWT\"}}").as_bytes());
            let payload = b64url(format!("{{\"sub\":\"{sub}\",\"iat\":{iat}}}").as_bytes());
            Pii::plain(
                Detector::Jwt,
                format!("{header}.{payload}.{}", b64url(&sig)),
            )
        })
}

/// A random string over `chars` of length `len` that contains at least
/// one of each `required` class (by placing them at random positions).
fn mixed(
    chars: &'static str,
    len: usize,
    required: &'static [&'static str],
) -> BoxedStrategy<String> {
    (
        charset(chars, len),
        proptest::collection::vec(any::<prop::sample::Index>(), required.len() * 2),
    )
        .prop_map(move |(s, idx)| {
            let mut v: Vec<char> = s.chars().collect();
            // Distinct positions: consecutive from a random start.
            let base = idx[0].index(v.len());
            for (k, class) in required.iter().enumerate() {
                let pool: Vec<char> = class.chars().collect();
                let pos = (base + k) % v.len();
                v[pos] = *idx[2 * k + 1].get(&pool);
            }
            v.into_iter().collect()
        })
        .boxed()
}

fn token() -> impl Strategy<Value = Pii> {
    const UPPER_DIGIT: &str = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const CLASSES: &[&str] = &[
        "0123456789",
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        "abcdefghijklmnopqrstuvwxyz",
    ];
    const HEX_CLASSES: &[&str] = &["0123456789", "abcdef"];
    let prefixed = (
        proptest::sample::select(vec![
            ("sk_live_", 24usize),
            ("sk_test_", 24),
            ("rk_live_", 30),
            ("ghp_", 36),
            ("gho_", 36),
            ("glpat-", 20),
            ("npm_", 36),
        ]),
        charset(ALNUM, 36),
    )
        .prop_map(|((p, n), body)| Pii::plain(Detector::Token, format!("{p}{}", &body[..n])));
    let slack = (
        proptest::sample::select(vec!["xoxb-", "xoxp-", "xoxa-"]),
        charset(DIGITS, 12),
        charset(ALNUM, 24),
    )
        .prop_map(|(p, n, body)| Pii::plain(Detector::Token, format!("{p}{n}-{body}")));
    let aws =
        charset(UPPER_DIGIT, 16).prop_map(|b| Pii::plain(Detector::Token, format!("AKIA{b}")));
    let bearer = (mixed(ALNUM, 32, CLASSES), any::<bool>()).prop_map(|(cred, lower)| {
        let word = if lower { "bearer" } else { "Bearer" };
        Pii {
            kind: Detector::Token,
            text: format!("{word} {cred}"),
            replaced: format!("{word} [token]"),
            secret: cred,
            digits: false,
            param: None,
        }
    });
    let keyed = (
        // Names not on the denylist (those are removed by name, as `url_param`).
        proptest::sample::select(vec!["key", "signature", "request_signature", "sig"]),
        prop_oneof![mixed(HEX, 40, HEX_CLASSES), mixed(ALNUM, 40, CLASSES)],
    )
        .prop_map(|(name, v)| Pii {
            kind: Detector::Token,
            text: format!("{name}={v}"),
            replaced: format!("{name}=[token]"),
            secret: v.clone(),
            digits: false,
            param: Some((name.to_string(), v)),
        });
    prop_oneof![prefixed, slack, aws, bearer, keyed]
}

fn ip() -> impl Strategy<Value = Pii> {
    let v4 = any::<[u8; 4]>().prop_map(|o| std::net::Ipv4Addr::from(o).to_string());
    let v6 = any::<[u16; 8]>()
        .prop_map(|g| std::net::Ipv6Addr::from(g).to_string())
        .prop_filter("has a decimal digit", |s| {
            s.bytes().any(|b| b.is_ascii_digit())
        });
    let v6_short = (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("2001:db8::{a:x}:{b:x}"));
    prop_oneof![v4, v6, v6_short].prop_map(|s| Pii::plain(Detector::Ip, s))
}

pub(super) fn any_pii() -> impl Strategy<Value = Pii> {
    prop_oneof![
        email(),
        phone(),
        card_number(),
        iban(),
        ssn(),
        jwt(),
        token(),
        ip()
    ]
}

/// Benign look-alikes: they must never change.
pub(super) fn benign() -> impl Strategy<Value = String> {
    let uuid = any::<[u8; 16]>().prop_map(|b| {
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-{}-{}-{}",
            &h[..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..]
        )
    });
    let iso = (
        2000u32..2100,
        1u32..13,
        1u32..29,
        0u32..24,
        0u32..60,
        0u32..60,
        0u32..1000,
        0usize..4,
    )
        .prop_map(|(y, mo, d, h, mi, s, ms, f)| match f {
            0 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{ms:03}Z"),
            1 => format!("{y}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}+01:00"),
            2 => format!("{y}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"),
            _ => format!("{y}-{mo:02}-{d:02}"),
        });
    let epoch = (1_500_000_000_000u64..1_900_000_000_000).prop_map(|n| n.to_string());
    let price = (0u32..100_000, 0u32..100, 0usize..4).prop_map(|(a, c, f)| match f {
        0 => format!("${},{:03}.{c:02}", a / 1000 + 1, a % 1000),
        1 => format!("{a}.{c:02}"),
        2 => format!("{a},{c:02} €"),
        _ => format!("EUR {a}.{c:02}"),
    });
    // Four-part versions carry a build number above 255 (else they are
    // addresses) and a one-digit part (else `12.34.567.8901` is phone-shaped).
    let version = (
        0u32..30,
        0u32..10,
        256u32..100_000,
        0u32..100_000,
        0usize..5,
    )
        .prop_map(|(a, b, c, d, f)| match f {
            0 => format!("{a}.{b}.{c}"),
            1 => format!("{a}.{b}.{c}.{d}"),
            2 => format!("v{a}.{b}.{}.{}", c % 256, d % 256),
            3 => format!("Chrome/{a}.{b}.{}.{}", c % 256, d % 256),
            _ => format!("{a}.{b}.{c}-beta.{}", d % 10),
        });
    let sku = (
        charset("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 2..5),
        charset(DIGITS, 3..7),
        charset("ABCDEFGHIJKLMNOPQRSTUVWXYZ", 0..3),
    )
        .prop_map(|(a, n, b)| {
            if b.is_empty() {
                format!("{a}-{n}")
            } else {
                format!("{a}-{n}-{b}")
            }
        });
    let order = (2000u32..2100, 0u32..1_000_000).prop_map(|(y, n)| format!("ORD-{y}-{n:06}"));
    let color = prop_oneof![charset(HEX, 6), charset(HEX, 3)].prop_map(|h| format!("#{h}"));
    let path = (0u32..100_000_000).prop_map(|n| format!("/products/{n}"));
    prop_oneof![uuid, iso, epoch, price, version, sku, order, color, path]
}

/// Where a value is planted.
#[derive(Debug, Clone)]
pub(super) enum Plant {
    /// The whole string value.
    Value,
    /// Inside a sentence.
    Sentence { pre: String, post: String },
    /// As a query parameter of a URL, form- or percent-encoded.
    Query { name: String, form: bool },
    /// As a (percent-encoded) path segment of a URL.
    PathSegment,
    /// As an object key.
    Key,
}

pub(super) fn plant() -> impl Strategy<Value = Plant> {
    let words = vec![
        "Order", "shipped", "to", "customer", "on", "the", "with", "price", "and", "version",
        "was", "updated", "for", "item", "color", "code", "note",
    ];
    let phrase =
        proptest::collection::vec(proptest::sample::select(words), 0..4).prop_map(|w| w.join(" "));
    let opens = vec![" ", ": ", " (", ", ", " \"", " ["];
    let closes = vec![" ", ") ", ", ", ". ", "\" ", "; ", "] "];
    let sentence = (
        phrase.clone(),
        proptest::sample::select(opens),
        proptest::sample::select(closes),
        phrase,
    )
        .prop_map(|(a, o, c, b)| Plant::Sentence {
            pre: if a.is_empty() {
                String::new()
            } else {
                format!("{a}{o}")
            },
            post: if b.is_empty() {
                String::new()
            } else {
                format!("{c}{b}")
            },
        });
    let query = (
        proptest::sample::select(vec![
            "ref", "v", "data", "contact", "info", "x", "note", "c",
        ]),
        any::<bool>(),
    )
        .prop_map(|(n, form)| Plant::Query {
            name: n.to_string(),
            form,
        });
    prop_oneof![
        Just(Plant::Value),
        sentence,
        query,
        Just(Plant::PathSegment),
        Just(Plant::Key),
    ]
}

/// Where in the event: root object, key steps, optionally inside an array.
#[derive(Debug, Clone)]
pub(super) struct Location {
    root: &'static str,
    steps: Vec<&'static str>,
    key: &'static str,
    in_array: bool,
}

pub(super) fn location() -> impl Strategy<Value = Location> {
    let keys = vec![
        "note", "comment", "info", "data", "misc", "details", "meta", "extra", "field", "label",
        "value", "payload", "custom", "attrs", "notes", "other",
    ];
    (
        proptest::sample::select(vec!["properties", "traits", "context", "integrations"]),
        proptest::collection::vec(proptest::sample::select(keys.clone()), 0..4),
        proptest::sample::select(keys),
        any::<bool>(),
    )
        .prop_map(|(root, steps, key, in_array)| Location {
            root,
            steps,
            key,
            in_array,
        })
}

const URL_BASE: &str = "https://shop.example.com/p/123?utm_source=news";
const URL_TAIL: &str = "&page=2#top";

pub(super) fn encode(s: &str, form: bool) -> String {
    if form {
        form_urlencoded::byte_serialize(s.as_bytes()).collect()
    } else {
        utf8_percent_encode(s, NON_ALPHANUMERIC).to_string()
    }
}

/// The string planted and the string expected after scrubbing, for a value
/// `text` replaced in place by `replaced` (equal for benign values).
fn planted(
    plant: &Plant,
    text: &str,
    replaced: &str,
    marker: &str,
    param: Option<&(String, String)>,
) -> (String, String) {
    match plant {
        Plant::Value | Plant::Key => (text.to_string(), replaced.to_string()),
        Plant::Sentence { pre, post } => (
            format!("{pre}{text}{post}"),
            format!("{pre}{replaced}{post}"),
        ),
        Plant::Query { name, form } => {
            let (n, v) = match param {
                Some((n, v)) => (n.clone(), v.clone()),
                None => (name.clone(), text.to_string()),
            };
            let url = format!("{URL_BASE}&{n}={}{URL_TAIL}", encode(&v, *form));
            let out = if text == replaced {
                url.clone()
            } else {
                format!("{URL_BASE}{URL_TAIL}")
            };
            (url, out)
        }
        Plant::PathSegment => {
            let seg = encode(text, false);
            let url = format!("https://shop.example.com/u/{seg}/view?x=1");
            let out_seg = if text == replaced {
                seg
            } else if seg.contains('%') {
                marker.to_string()
            } else {
                replaced.to_string()
            };
            (
                url,
                format!("https://shop.example.com/u/{out_seg}/view?x=1"),
            )
        }
    }
}

/// Puts `value` (or `{key: 1}` for a key plant) at `loc` in `ev`; returns
/// the path of the planted string as the scrubber writes it.
pub(super) fn put(ev: &mut Value, loc: &Location, plant: &Plant, s: &str) -> String {
    let mut path = loc.root.to_string();
    let mut cur = ev;
    for k in std::iter::once(loc.root).chain(loc.steps.iter().copied()) {
        if !cur.is_object() {
            *cur = json!({});
        }
        if k != loc.root {
            path.push('.');
            path.push_str(k);
        }
        cur = cur
            .as_object_mut()
            .expect("made an object")
            .entry(k)
            .or_insert_with(|| json!({}));
    }
    if !cur.is_object() {
        *cur = json!({});
    }
    let leaf = match plant {
        Plant::Key => {
            let mut m = Map::new();
            m.insert(s.to_string(), json!(1));
            Value::Object(m)
        }
        _ => Value::String(s.to_string()),
    };
    path.push('.');
    path.push_str(loc.key);
    let slot = if loc.in_array {
        path.push_str("[1]");
        json!(["filler", leaf])
    } else {
        leaf
    };
    cur.as_object_mut()
        .expect("object")
        .insert(loc.key.to_string(), slot);
    path
}

pub(super) fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
        Value::Object(m) => {
            for (k, x) in m {
                out.push(k.clone());
                strings_of(x, out);
            }
        }
        _ => {}
    }
}

fn scrub(ev: &Value) -> (Value, Vec<Redaction>) {
    let mut out = Vec::new();
    let v = super::tests::scrub_parsed(ev, |m| {
        scrubber().scrub_event(m, &mut out);
    });
    (v, out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn planted_pii_never_survives(pii in any_pii(), plant in plant(), loc in location()) {
        let (text, want) = planted(&plant, &pii.text, &pii.replaced, pii.kind.marker(), pii.param.as_ref());
        let mut ev = clean_page_event();
        let path = put(&mut ev, &loc, &plant, &text);
        let mut expected = clean_page_event();
        let want_path = if matches!(plant, Plant::Key) {
            // The key goes with its value, leaving an empty object.
            let p = put(&mut expected, &loc, &Plant::Key, PLACEHOLDER);
            remove_key(&mut expected, PLACEHOLDER);
            format!("{p}.{}", pii.kind.marker())
        } else {
            put(&mut expected, &loc, &plant, &want);
            path
        };

        let (out, redactions) = scrub(&ev);
        let serialized = serde_json::to_string(&out).expect("serializes");

        prop_assert!(!serialized.contains(&pii.secret), "secret survived: {serialized}");
        for form in [true, false] {
            let enc = encode(&pii.secret, form);
            prop_assert!(!serialized.contains(&enc), "encoded secret survived: {serialized}");
        }
        if pii.digits {
            let d = digits_of(&pii.secret);
            let mut all = Vec::new();
            strings_of(&out, &mut all);
            for s in &all {
                prop_assert!(!digits_of(s).contains(&d), "digits of {} survived in {s}", pii.secret);
            }
        }
        prop_assert_eq!(&out, &expected);
        let got: Vec<(String, &str)> = redactions.iter().map(|r| (r.path.clone(), r.kind.label())).collect();
        prop_assert_eq!(got, vec![(want_path, pii.kind.label())]);
    }

    #[test]
    fn planted_look_alikes_always_survive(value in benign(), plant in plant(), loc in location()) {
        // A key made of a denied word (`GA-000-CC` has `cc`, a card) goes
        // with its value by the key rules, look-alike or not.
        prop_assume!(
            !matches!(plant, Plant::Key) || scrubber().deny.classify(&value).denied.is_none()
        );
        let (text, _) = planted(&plant, &value, &value, "", None);
        let mut ev = clean_page_event();
        put(&mut ev, &loc, &plant, &text);
        let (out, redactions) = scrub(&ev);
        prop_assert_eq!(&out, &ev);
        prop_assert!(redactions.is_empty(), "{:?}", redactions);
    }

    #[test]
    fn scrub_str_is_none_exactly_when_nothing_is_reported(value in prop_oneof![benign(), any_pii().prop_map(|p| p.text)]) {
        let mut kinds = Vec::new();
        let out = scrubber().scrub_str(&value, &mut kinds);
        prop_assert_eq!(out.is_none(), kinds.is_empty());
        if let Some(o) = out {
            // Scrubbing is idempotent: the markers themselves are clean.
            let mut again = Vec::new();
            prop_assert_eq!(scrubber().scrub_str(&o, &mut again), None);
        }
    }
}

/// A key name no generated event otherwise has.
const PLACEHOLDER: &str = "planted-key";

fn remove_key(v: &mut Value, key: &str) {
    match v {
        Value::Object(m) => {
            m.remove(key);
            m.values_mut().for_each(|x| remove_key(x, key));
        }
        Value::Array(a) => a.iter_mut().for_each(|x| remove_key(x, key)),
        _ => {}
    }
}
