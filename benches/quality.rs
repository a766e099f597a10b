//! Per-event costs of the data-quality stage, and the duplicate filter's
//! memory and false-positive figures:
//! - `plan`: checking one `track` event against a realistic tracking plan
//!   (30 event types, 5–15 typed properties each), valid and with
//!   violations (`warn`: the violation list is built);
//! - `dedup`: keyed hash plus look-up and insert of a new `messageId`, and
//!   of a duplicate, in a filter already holding a million ids;
//! - `enrich`: user agent (cached), campaign and referrer of a page view;
//!   and one uncached user-agent parse for comparison;
//! - `stage`: `QualityStage::apply` with all three on.
//!
//! Before the benchmarks it prints the filter's memory per million ids and
//! its measured false-positive rate at the default settings.
//!
//! Run: `cargo bench --bench quality -- --warm-up-time 1 --measurement-time 3`.

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::hint::black_box;
use std::sync::Arc;

use chrono::Utc;
use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use serde_json::{json, Map, Value};
use trackgate::config::Config;
use trackgate::event::{Event, EventType};
use trackgate::json as tree;
use trackgate::normalize::RequestMeta;
use trackgate::quality::dedup::{DedupConfig, DedupFilter, BLOOM_SLICES};
use trackgate::quality::enrich::referrer::Referrers;
use trackgate::quality::enrich::ua::UaParser;
use trackgate::quality::enrich::{EnrichConfig, Enricher};
use trackgate::quality::plan::{PlanConfig, PlanMode, TrackingPlan, Unplanned};
use trackgate::quality::{edit, QualityStage};

/// The gateway binary's allocator (src/main.rs), so the figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const EVENT_TYPES: usize = 30;
const T0: u64 = 1_800_000_000;
const USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36";

/// Property `j` of event type `i`: a schema and a valid value.
fn property(i: usize, j: usize) -> (String, Value, Value) {
    let name = format!("prop_{j}");
    match (i + j) % 6 {
        0 => (
            name,
            json!({"type": "string", "maxLength": 64}),
            json!(format!("value-{j}")),
        ),
        1 => (
            name,
            json!({"type": "number", "minimum": 0}),
            json!(12.5 + j as f64),
        ),
        2 => (name, json!({"enum": ["EUR", "USD", "GBP"]}), json!("EUR")),
        3 => (name, json!({"type": "boolean"}), json!(j % 2 == 0)),
        4 => (
            name,
            json!({"type": "string", "format": "date-time"}),
            json!("2026-11-26T10:00:00Z"),
        ),
        _ => (
            name,
            json!({"type": "array", "items": {"type": "string"}, "maxItems": 20}),
            json!(["a", "b", "c"]),
        ),
    }
}

/// An event name and an object (its properties, or the whole event).
type Named = (String, Map<String, Value>);
/// A named event's body, as the pipeline holds it.
type NamedBody = (String, tree::Map<'static>);

/// A plan of 30 `track` events with 5–15 properties each (the first three
/// required), and one valid `properties` object per event.
fn realistic_plan() -> (Value, Vec<Named>) {
    let mut track = Map::new();
    let mut events = Vec::new();
    for i in 0..EVENT_TYPES {
        let n = 5 + (i * 7) % 11;
        let mut props = Map::new();
        let mut valid = Map::new();
        for j in 0..n {
            let (name, schema, value) = property(i, j);
            props.insert(name.clone(), schema);
            valid.insert(name, value);
        }
        let name = format!("Event {i}");
        track.insert(
            name.clone(),
            json!({"type": "object", "properties": props,
                   "required": ["prop_0", "prop_1", "prop_2"]}),
        );
        events.push((name, valid));
    }
    (json!({"track": track}), events)
}

fn track(name: &str, props: &Map<String, Value>) -> tree::Map<'static> {
    let mut m = Map::new();
    m.insert("type".into(), json!("track"));
    m.insert("event".into(), json!(name));
    m.insert("anonymousId".into(), json!("anon-1"));
    m.insert("properties".into(), Value::Object(props.clone()));
    tree::Map::from(m)
}

fn load_plan(dir: &std::path::Path, doc: &Value, mode: PlanMode) -> TrackingPlan {
    let path = dir.join("plan.json");
    std::fs::write(&path, doc.to_string()).expect("write plan");
    let cfg = PlanConfig {
        file: Some(path),
        mode,
        unplanned: Unplanned::Allow,
    };
    TrackingPlan::load("bench", &cfg)
        .expect("plan compiles")
        .expect("plan configured")
}

fn plan(c: &mut Criterion<ThreadCpuTime>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (doc, events) = realistic_plan();
    let bodies: Vec<NamedBody> = events
        .iter()
        .map(|(n, p)| (n.clone(), track(n, p)))
        .collect();
    let invalid: Vec<NamedBody> = events
        .iter()
        .map(|(n, p)| {
            let mut p = p.clone();
            p.insert("prop_1".into(), json!("not a number"));
            p.remove("prop_2");
            (n.clone(), track(n, &p))
        })
        .collect();
    let warn = load_plan(dir.path(), &doc, PlanMode::Warn);
    let mut g = c.benchmark_group("plan");
    g.throughput(Throughput::Elements(bodies.len() as u64));
    g.bench_function("valid_event_x30", |b| {
        b.iter(|| {
            for (name, body) in &bodies {
                black_box(warn.check(EventType::Track, Some(name), black_box(body)));
            }
        })
    });
    g.bench_function("invalid_event_warn_x30", |b| {
        b.iter(|| {
            for (name, body) in &invalid {
                black_box(warn.check(EventType::Track, Some(name), black_box(body)));
            }
        })
    });
    g.finish();
}

fn filled_filter(ids: usize) -> DedupFilter {
    let mut f = DedupFilter::with_key(&DedupConfig::default(), (1, 2), 3);
    for i in 0..ids {
        let k = f.key_of(&format!("fill-{i}"));
        f.check_and_insert(k, T0 + (i / 1000) as u64);
    }
    f
}

fn dedup(c: &mut Criterion<ThreadCpuTime>) {
    let mut f = filled_filter(1_000_000);
    let now = T0 + 1000;
    let mut g = c.benchmark_group("dedup");
    g.throughput(Throughput::Elements(1));
    let mut n = 0u64;
    let mut id = String::with_capacity(48);
    g.bench_function("new_id", |b| {
        b.iter(|| {
            n += 1;
            id.clear();
            id.push_str("0193a7c2-5e1f-7b3a-9c4d-");
            id.push_str(&format!("{n:012x}"));
            let k = f.key_of(black_box(&id));
            black_box(f.check_and_insert(k, now))
        })
    });
    g.bench_function("duplicate_id", |b| {
        b.iter(|| {
            let k = f.key_of(black_box("fill-123456"));
            black_box(f.check_and_insert(k, now))
        })
    });
    g.finish();
}

fn page_view() -> tree::Map<'static> {
    let v = json!({
        "type": "page", "anonymousId": "anon-1",
        "context": {
            "userAgent": USER_AGENT,
            "page": {"url": "https://shop.example/p?utm_source=news&utm_medium=email&utm_campaign=spring&gclid=g1",
                     "referrer": "https://www.google.com/search?q=shoes"}
        },
        "properties": {"path": "/p"}
    });
    match v {
        Value::Object(m) => tree::Map::from(m),
        _ => unreachable!("a literal object"),
    }
}

fn enrich(c: &mut Criterion<ThreadCpuTime>) {
    let ua = Arc::new(UaParser::new(10_000).expect("regexes compile"));
    let e = Enricher::new(
        &EnrichConfig::default(),
        Some(ua.clone()),
        Some(Arc::new(Referrers::default())),
    );
    let body = page_view();
    let mut g = c.benchmark_group("enrich");
    g.throughput(Throughput::Elements(1));
    g.bench_function("page_view_cached_ua", |b| {
        b.iter_batched_ref(
            || body.clone(),
            |body| {
                let mut edits = Vec::new();
                e.edits(EventType::Page, body, &mut edits);
                edit::apply(body, edits);
            },
            BatchSize::SmallInput,
        )
    });
    g.bench_function("ua_uncached", |b| {
        b.iter(|| black_box(ua.parse_uncached(black_box(USER_AGENT))))
    });
    g.finish();
}

fn stage(c: &mut Criterion<ThreadCpuTime>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (doc, events) = realistic_plan();
    let path = dir.path().join("plan.json");
    std::fs::write(&path, doc.to_string()).expect("write plan");
    let config = Config::from_toml(&format!(
        "[[sources]]\nid = \"bench\"\nwrite_key = \"k\"\n[sources.quality.plan]\nfile = \"{}\"\n",
        path.display()
    ))
    .expect("valid config");
    let stage = QualityStage::from_config(&config).expect("stage builds");
    let meta = RequestMeta {
        source_id: "bench",
        received_at: Utc::now(),
        client_ip: [203, 0, 113, 7].into(),
        user_agent: None,
        batch_sent_at: None,
        batch_context: None,
        signals: Default::default(),
    };
    let mut base = track(&events[7].0, &events[7].1);
    base.insert("context", page_view()["context"].clone());
    let mut n = 0u64;
    let mut g = c.benchmark_group("stage");
    g.throughput(Throughput::Elements(1));
    g.bench_function("plan_dedup_enrich", |b| {
        b.iter_batched_ref(
            || {
                n += 1;
                let mut body = base.clone();
                body.insert("messageId", tree::Value::from(format!("m-{n}")));
                Event {
                    kind: EventType::Track,
                    body,
                }
            },
            |ev| {
                let ids = trackgate::quality::dedup::ClientIds::of(&ev.body);
                black_box(stage.apply(ev, &meta, ids.as_ref()))
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

/// Memory per million ids and the measured false-positive rate of the
/// default filter (64 MiB, 1e-6), printed once.
fn dedup_figures() {
    let cfg = DedupConfig {
        max_memory_mb: 1024,
        ..DedupConfig::default()
    };
    let mut exact = DedupFilter::with_key(&cfg, (5, 6), 7);
    for i in 0..1_000_000 {
        let k = exact.key_of(&format!("id-{i}"));
        exact.check_and_insert(k, T0);
    }
    let exact_bytes = exact.stats().memory_bytes;

    let cfg = DedupConfig::default();
    let mut f = DedupFilter::with_key(&cfg, (8, 9), 10);
    let cap = f.slice_capacity();
    let mut t = T0;
    for i in 0..BLOOM_SLICES * cap {
        if i % cap == 0 {
            t += f.slice_span();
        }
        let k = f.key_of(&format!("old-{i}"));
        f.check_and_insert(k, t);
    }
    let now = t + cfg.exact_window_secs + 3600;
    let probes = 20_000_000u64;
    let mut fp = 0u64;
    for i in 0..probes {
        let k = f.key_of(&format!("new-{i}"));
        fp += u64::from(f.seen(k, now));
    }
    let s = f.stats();
    println!(
        "dedup figures: exact window {:.1} MB per million ids; Bloom slices {:.2} MB per million ids \
         ({} ids per slice, {} slices, {:.1} MiB); measured false-positive rate {:.2e} \
         ({fp} of {probes} new ids, target {:e}) with every slice full",
        exact_bytes as f64 / 1e6,
        s.bloom_bytes as f64 / s.bloom_ids.max(1) as f64,
        cap,
        s.bloom_slices,
        s.bloom_bytes as f64 / (1024.0 * 1024.0),
        fp as f64 / probes as f64,
        cfg.false_positive_rate,
    );
}

criterion_group! {
    name = benches;
    config = cpu_time::criterion();
    targets = plan, dedup, enrich, stage
}

fn main() {
    if std::env::var_os("QUALITY_SKIP_FIGURES").is_none() {
        dedup_figures();
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
