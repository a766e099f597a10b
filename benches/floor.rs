//! The floor of a one-pass event path, for comparison with `pipeline`'s
//! `cpu_path`: what the least work the rebuilt path must do costs on the
//! same fixture batch. Per event it
//! - splits the batch into raw events (`RawValue`, as the gateway does);
//! - parses the event into a tree that borrows every string and key without
//!   escapes from the body (no `String`, no `BTreeMap`);
//! - scans every string and key once with a byte-class table (the least a
//!   scrubber that sees every value can do: the gateway's prefilter does
//!   more per byte);
//! - adds `receivedAt` and `context.ip`;
//! - writes the record, copying borrowed strings as they are (no escaping).
//!
//! No validation, no privacy rules, no quality, no sink: a lower bound, not
//! a design. `loadtest/PROFILE.md` puts it beside the gateway's figures.
//!
//! Run: `cargo bench --bench floor`; for instruction counts,
//! `FLOOR_FIXED_ITERATIONS=200 valgrind --tool=callgrind
//! --toggle-collect='*floor_batch*' target/release/deps/floor-<hash>`.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::borrow::Cow;
use std::fmt;
use std::hint::black_box;

use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, Criterion, Throughput};
use serde::de::{Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

/// The gateway binary's allocator (src/main.rs), so the figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: &str = include_str!("fixtures/batch50.json");

/// A JSON tree borrowing from the text it was parsed from; a string is
/// owned only when its text had escapes.
enum Node<'a> {
    Null,
    Bool(bool),
    /// Numbers are only counted here; the gateway keeps their text.
    Number,
    Str(Cow<'a, str>),
    Array(Vec<Node<'a>>),
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
}

/// An object key, borrowed when it has no escapes.
struct Key<'a>(Cow<'a, str>);

struct KeyVisitor;

impl<'de> Visitor<'de> for KeyVisitor {
    type Value = Key<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a key")
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
        Ok(Key(Cow::Owned(v.to_owned())))
    }
}

impl<'de> Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_str(KeyVisitor)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("JSON")
    }
    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }
    fn visit_bool<E>(self, b: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(b))
    }
    fn visit_i64<E>(self, _: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Node<'de>, E> {
        Ok(Node::Number)
    }
    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Node::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        let mut fields = Vec::with_capacity(8);
        while let Some(Key(k)) = map.next_key()? {
            fields.push((k, map.next_value()?));
        }
        Ok(Node::Object(fields))
    }
}

impl<'de> Deserialize<'de> for Node<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(NodeVisitor)
    }
}

/// Byte classes: digit, `@`, separator, letter, other.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = if b.is_ascii_digit() {
            1
        } else if b == b'@' {
            2
        } else if b == b'.' || b == b'-' || b == b':' {
            4
        } else if b.is_ascii_alphabetic() {
            8
        } else {
            16
        };
        i += 1;
    }
    t
};

/// One pass over a string: the classes present and the longest run of
/// letters and digits.
fn scan(s: &str) -> u32 {
    let (mut seen, mut run, mut longest) = (0u32, 0u32, 0u32);
    for &b in s.as_bytes() {
        let c = CLASS[b as usize];
        seen |= u32::from(c);
        run = if c & 9 != 0 { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    seen + longest
}

fn scan_all(node: &Node<'_>, acc: &mut u32) {
    match node {
        Node::Str(s) => *acc = acc.wrapping_add(scan(s)),
        Node::Array(items) => items.iter().for_each(|n| scan_all(n, acc)),
        Node::Object(fields) => fields.iter().for_each(|(k, n)| {
            *acc = acc.wrapping_add(scan(k));
            scan_all(n, acc)
        }),
        Node::Null | Node::Bool(_) | Node::Number => {}
    }
}

// The `Cow` variant is the information used: borrowed means no escapes.
#[allow(clippy::ptr_arg)]
fn write_str(out: &mut Vec<u8>, s: &Cow<'_, str>) {
    match s {
        // Borrowed text had no escapes: it is written as it came.
        Cow::Borrowed(b) => {
            out.push(b'"');
            out.extend_from_slice(b.as_bytes());
            out.push(b'"');
        }
        Cow::Owned(o) => {
            let _ = serde_json::to_writer(&mut *out, o.as_str());
        }
    }
}

fn write(node: &Node<'_>, out: &mut Vec<u8>) {
    match node {
        Node::Null => out.extend_from_slice(b"null"),
        Node::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Node::Number => out.push(b'0'),
        Node::Str(s) => write_str(out, s),
        Node::Array(items) => {
            out.push(b'[');
            for (i, n) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(n, out);
            }
            out.push(b']');
        }
        Node::Object(fields) => {
            out.push(b'{');
            for (i, (k, n)) in fields.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write(n, out);
            }
            out.push(b'}');
        }
    }
}

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow)]
    batch: Vec<&'a RawValue>,
}

/// The floor's work on one batch; returns a checksum so nothing is elided.
fn floor_batch(body: &str, out: &mut Vec<u8>) -> u32 {
    let Ok(envelope) = serde_json::from_str::<Envelope<'_>>(body) else {
        return 0;
    };
    let mut acc = 0u32;
    for raw in envelope.batch {
        let Ok(mut event) = serde_json::from_str::<Node<'_>>(raw.get()) else {
            continue;
        };
        scan_all(&event, &mut acc);
        if let Node::Object(fields) = &mut event {
            fields.push((
                Cow::Borrowed("receivedAt"),
                Node::Str(Cow::Borrowed("2026-12-05T21:00:00.000Z")),
            ));
            if let Some((_, Node::Object(context))) =
                fields.iter_mut().find(|(k, _)| k == "context")
            {
                context.push((Cow::Borrowed("ip"), Node::Str(Cow::Borrowed("203.0.113.0"))));
            }
        }
        out.clear();
        write(&event, out);
        acc = acc.wrapping_add(out.len() as u32);
    }
    acc
}

fn floor(c: &mut Criterion<ThreadCpuTime>) {
    let mut out = Vec::with_capacity(4096);
    let mut g = c.benchmark_group("floor");
    g.throughput(Throughput::Elements(50));
    g.bench_function("batch50", |b| {
        b.iter(|| floor_batch(black_box(BATCH), &mut out))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = cpu_time::criterion();
    targets = floor
}

fn main() {
    if let Some(n) = std::env::var("FLOOR_FIXED_ITERATIONS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
    {
        let mut out = Vec::with_capacity(4096);
        let mut acc = 0u32;
        for _ in 0..n {
            acc = acc.wrapping_add(floor_batch(black_box(BATCH), &mut out));
        }
        println!("{n} batches, checksum {acc}");
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
