//! The PII scrubber's clean path allocates nothing: a realistic event with
//! nothing to redact, and clean strings, are scrubbed without a single
//! heap allocation (counted by a global allocator, per thread).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use trackgate::json::{Map, Value};
use trackgate::privacy::scrub::{ScrubConfig, Scrubber};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: forwards every call to the system allocator unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

const CLEAN: &str = r#"{
  "type": "page",
  "anonymousId": "6f1c2a34-7d0e-4c53-9a1b-2f3e4d5c6b7a",
  "name": "Product Detail",
  "properties": {
    "path": "/products/12345",
    "url": "https://shop.example.com/products/12345?utm_source=newsletter&utm_medium=email&q=running+shoes",
    "title": "Trail Running Shoe - Blue, order ORD-2024-000123 at $1,299.99",
    "sku": "TRS-12345-BL",
    "items": [{"id": "550e8400-e29b-41d4-a716-446655440000", "added": 1700000000123}],
    "price": 129.99
  },
  "context": {
    "ip": "203.0.113.0",
    "library": {"name": "analytics.js", "version": "4.1.0"},
    "page": {"referrer": "https://www.google.com/", "search": "?utm_source=newsletter"},
    "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
  }
}"#;

fn event(json: &str) -> Map<'_> {
    match trackgate::json::from_str(json) {
        Ok(Value::Object(m)) => m,
        other => panic!("fixture is not an object: {other:?}"),
    }
}

#[test]
fn a_clean_event_is_scrubbed_without_allocating() {
    let scrubber = Scrubber::new(&ScrubConfig::default()).expect("default config builds");
    let mut ev = event(CLEAN);
    let original = ev.clone();
    let mut out = Vec::new();
    let n = allocations_during(|| {
        scrubber.scrub_event(&mut ev, &mut out);
    });
    assert!(out.is_empty(), "nothing to redact: {out:?}");
    assert_eq!(ev, original);
    assert_eq!(n, 0, "allocations on the clean path");
}

#[test]
fn clean_strings_are_scanned_without_allocating() {
    let scrubber = Scrubber::new(&ScrubConfig::default()).expect("default config builds");
    for s in [
        "https://shop.example.com/products/12345?utm_source=newsletter&page=2#reviews",
        "?q=shoes&page=3",
        // Full path: `+` may decode to a `Basic …` phrase; `%` must decode.
        "https://shop.example.com/blog/best-bikes?q=best+bikes+2024&c=Spring%20Sale#top",
        "/search?q=caf%C3%A9+bar&sort=price",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/120.0.0.0",
        "2024-01-15T10:30:00.000Z",
        "Order ORD-2024-000123 of 1299.00 EUR, version 10.0.19045.2965",
    ] {
        let mut kinds = Vec::new();
        let mut result = None;
        let n = allocations_during(|| result = scrubber.scrub_str(s, &mut kinds));
        assert_eq!(result, None, "{s} is clean");
        assert_eq!(n, 0, "allocations scanning {s}");
    }
}

#[test]
fn the_counter_sees_the_allocations_of_a_redaction() {
    let scrubber = Scrubber::new(&ScrubConfig::default()).expect("default config builds");
    let mut ev = event(r#"{"properties": {"note": "mail ada@example.com"}}"#);
    let mut out = Vec::new();
    let n = allocations_during(|| {
        scrubber.scrub_event(&mut ev, &mut out);
    });
    assert_eq!(out.len(), 1);
    assert!(n > 0, "a redaction allocates its replacement and path");
}
