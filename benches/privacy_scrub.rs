//! PII scrubber throughput on realistic page events: one with nothing to
//! redact (the common case, which must not allocate) and one with several
//! redactions (key denial, URL parameter, userinfo, in-text email/phone).
//!
//! `cargo bench --bench privacy_scrub -- --warm-up-time 1 --measurement-time 3`

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use trackgate::json::{Map, Value};
use trackgate::privacy::scrub::{ScrubConfig, Scrubber};

/// A page event as analytics.js sends it, after normalization; nothing in
/// it is PII (the visitor id and `messageId` are scanned and clean;
/// `context.ip` is the IP rules').
const CLEAN: &str = r#"{
  "type": "page",
  "anonymousId": "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
  "messageId": "ajs-next-1700000000123-4c53",
  "timestamp": "2024-01-15T10:30:00.000Z",
  "receivedAt": "2024-01-15T10:30:00.120Z",
  "name": "Product Detail",
  "properties": {
    "path": "/products/12345",
    "url": "https://shop.example.com/products/12345?utm_source=newsletter&utm_medium=email",
    "title": "Trail Running Shoe - Blue",
    "price": 129.99,
    "currency": "EUR"
  },
  "context": {
    "ip": "203.0.113.0",
    "locale": "de-DE",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "page": {"referrer": "https://www.google.com/", "search": "?utm_source=newsletter"},
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
  }
}"#;

/// The same shape with PII in several places: a denied trait, an email in
/// the URL query, userinfo in the referrer, an email and a phone in text.
const DIRTY: &str = r#"{
  "type": "page",
  "anonymousId": "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
  "messageId": "ajs-next-1700000000123-4c53",
  "timestamp": "2024-01-15T10:30:00.000Z",
  "receivedAt": "2024-01-15T10:30:00.120Z",
  "name": "Reset password",
  "properties": {
    "path": "/account/reset",
    "url": "https://shop.example.com/account/reset?utm_source=mail&email=ada%40example.com",
    "title": "Reset for ada@example.com",
    "note": "call me at +44 20 7946 0958",
    "firstName": "Ada"
  },
  "context": {
    "ip": "203.0.113.0",
    "locale": "de-DE",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "page": {"referrer": "https://ada:secret@mail.example.com/", "search": "?utm_source=mail&email=ada%40example.com"},
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
  }
}"#;

fn event(json: &str) -> Map<'_> {
    match trackgate::json::from_str(json) {
        Ok(Value::Object(m)) => m,
        _ => panic!("bench fixture is not a JSON object"),
    }
}

fn bench(c: &mut Criterion) {
    let scrubber = match Scrubber::new(&ScrubConfig::default()) {
        Ok(s) => s,
        Err(e) => panic!("default config: {e}"),
    };
    let mut group = c.benchmark_group("privacy_scrub");
    group.throughput(Throughput::Elements(1));

    let mut clean = event(CLEAN);
    let mut out = Vec::new();
    scrubber.scrub_event(&mut clean, &mut out);
    assert!(
        out.is_empty(),
        "clean fixture must have nothing to redact: {out:?}"
    );
    group.bench_function(format!("clean_event_{}B", CLEAN.len()), |b| {
        b.iter(|| {
            out.clear();
            scrubber.scrub_event(black_box(&mut clean), &mut out);
            black_box(out.len())
        })
    });

    let dirty = event(DIRTY);
    let mut probe = dirty.clone();
    scrubber.scrub_event(&mut probe, &mut out);
    assert!(out.len() >= 6, "dirty fixture must redact: {out:?}");
    group.bench_function(
        format!("dirty_event_{}B_{}_redactions", DIRTY.len(), out.len()),
        |b| {
            b.iter_batched(
                || (dirty.clone(), Vec::new()),
                |(mut ev, mut out)| {
                    scrubber.scrub_event(&mut ev, &mut out);
                    (ev, out)
                },
                BatchSize::SmallInput,
            )
        },
    );
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
