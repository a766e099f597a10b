//! Micro-benchmarks of the gateway's CPU path, stage by stage, on realistic
//! events (`fixtures/` holds a 50-event batch and a single page view made by
//! `trackgate-load --sample`):
//! - `decode`: splitting a batch body into raw events;
//! - `event`: parsing and validating one event;
//! - `normalize`: server-side enrichment of one event;
//! - `route`: topic and key of one event;
//! - `encode`: serializing one record;
//! - `cpu_path`: `Pipeline::ingest` on a whole batch, every stage included
//!   (bots, privacy, quality), into an in-memory sink that only counts;
//! - `ingest`: `Pipeline::ingest` itself, with metrics installed and a real
//!   producer talking to librdkafka's in-process mock cluster.
//!
//! Times are CPU time of the benchmarking thread (see `support/cpu_time.rs`),
//! so the figures hold on a busy shared machine; `ingest` does not count
//! the producer's own thread.
//!
//! Run: `cargo bench --bench pipeline` (add `-- --quick` for a fast pass).

#[path = "support/cpu_time.rs"]
mod cpu_time;

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use cpu_time::ThreadCpuTime;
use criterion::{criterion_group, BatchSize, Criterion, Throughput};
use std::hint::black_box;
use trackgate::config::Config;
use trackgate::decode;
use trackgate::event::{Event, EventType};
use trackgate::ingest::{Pipeline, RawEvent};
use trackgate::normalize::{self, RequestMeta};
use trackgate::privacy::PrivacyStage;
use trackgate::route::Router;
use trackgate::sink::kafka::KafkaSink;
use trackgate::sink::memory::MemorySink;

/// The gateway binary's allocator (src/main.rs), so the figures match it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BATCH: &str = include_str!("fixtures/batch50.json");
const SINGLE: &str = include_str!("fixtures/single_page.json");
const USER_AGENT: &str = "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0";

/// `limits.clock_skew_window_secs` at its default.
const SKEW_WINDOW: chrono::TimeDelta = chrono::TimeDelta::days(30);

fn config(brokers: &str) -> Config {
    Config::from_toml(&format!(
        // The fixture batch is ingested again and again: with the duplicate
        // filter on, every repetition would be dropped as a duplicate. The
        // quality stage's own costs are in `benches/quality.rs`.
        "[kafka]\nbrokers = \"{brokers}\"\n[[sources]]\nid = \"bench\"\nwrite_key = \"wk_bench\"\n[sources.quality.dedup]\nenabled = false\n"
    ))
    .expect("bench config is valid")
}

fn meta<'a>(batch: Option<&'a decode::Batch<'a>>) -> RequestMeta<'a> {
    RequestMeta {
        source_id: "bench",
        received_at: chrono::Utc::now(),
        client_ip: IpAddr::from([203, 0, 113, 7]),
        user_agent: Some(USER_AGENT),
        batch_sent_at: batch.and_then(|b| b.sent_at.as_deref()),
        batch_context: batch.and_then(|b| b.context.as_ref()),
        signals: Default::default(),
    }
}

fn events<'a>(batch: &decode::Batch<'a>) -> Vec<Event<'a>> {
    batch
        .events
        .iter()
        .map(|r| {
            let text = r.json().expect("fixture events are UTF-8");
            Event::parse(text, None, 32 * 1024).expect("fixture events are valid")
        })
        .collect()
}

fn stages(c: &mut Criterion<ThreadCpuTime>) {
    let body = BATCH.as_bytes();
    let batch = decode::batch(body).expect("fixture batch decodes");
    let n = batch.events.len() as u64;
    let parsed = events(&batch);
    let cfg = config("127.0.0.1:9");
    let router = Router::new(&cfg.kafka.topics, &cfg.routing);

    let mut g = c.benchmark_group("decode");
    g.throughput(Throughput::Bytes(body.len() as u64));
    g.bench_function("batch_split_50", |b| {
        b.iter(|| decode::batch(black_box(body)).map(|b| b.events.len()))
    });
    g.throughput(Throughput::Bytes(SINGLE.len() as u64));
    g.bench_function("single", |b| {
        b.iter(|| decode::single(black_box(SINGLE.as_bytes())).map(|s| s.event.len()))
    });
    g.finish();

    let mut g = c.benchmark_group("event");
    g.throughput(Throughput::Elements(n));
    g.bench_function("parse_validate_x50", |b| {
        b.iter(|| {
            for raw in &batch.events {
                black_box(Event::parse(black_box(raw.text()), None, 32 * 1024).ok());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("normalize");
    g.throughput(Throughput::Elements(n));
    g.bench_function("enrich_x50", |b| {
        let m = meta(Some(&batch));
        b.iter_batched_ref(
            || parsed.clone(),
            |evs| {
                for ev in evs.iter_mut() {
                    black_box(normalize::normalize(ev, &m, SKEW_WINDOW).ok());
                }
            },
            BatchSize::SmallInput,
        )
    });
    g.finish();

    let mut normalized = parsed.clone();
    let m = meta(Some(&batch));
    for ev in &mut normalized {
        normalize::normalize(ev, &m, SKEW_WINDOW).expect("fixture events normalize");
    }

    let mut g = c.benchmark_group("route");
    g.throughput(Throughput::Elements(n));
    g.bench_function("topic_and_key_x50", |b| {
        b.iter(|| {
            for ev in &normalized {
                black_box((router.topic(ev), ev.visitor_key()));
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("encode");
    g.throughput(Throughput::Elements(n));
    g.bench_function("serialize_record_x50", |b| {
        let mut buf = Vec::with_capacity(4096);
        b.iter(|| {
            for ev in &normalized {
                buf.clear();
                serde_json::to_writer(&mut buf, &ev.body).expect("serializes");
                black_box(buf.len());
            }
        })
    });
    g.finish();

    let mut g = c.benchmark_group("cpu_path");
    g.throughput(Throughput::Elements(n));
    let pipeline = memory_pipeline();
    let rt = runtime();
    g.bench_function("batch50_memory_sink", |b| {
        b.iter(|| ingest_batch(&rt, &pipeline, black_box(body)))
    });
    g.finish();
}

/// The real pipeline (validation, normalization, bots, privacy, quality,
/// routing, the record written) with the spool off and a sink that only
/// counts: everything the gateway does to a batch except producing.
fn memory_pipeline() -> Pipeline {
    let cfg = Arc::new(config("127.0.0.1:9"));
    let privacy = PrivacyStage::local(&cfg).expect("privacy stage");
    Pipeline::new(cfg, MemorySink::discarding(), privacy).expect("pipeline")
}

/// `PIPELINE_FIXED_ITERATIONS=N`: runs the CPU path over the fixture batch N
/// times and exits, without criterion; for instruction counts that do not
/// depend on a busy machine, e.g.
/// `valgrind --tool=callgrind target/release/deps/pipeline-… ` with it set.
/// With `PIPELINE_FIXED_TARGET=ingest` it runs `Pipeline::ingest` instead
/// (metrics installed, producer on the mock cluster; count the main thread
/// with `--separate-threads=yes`).
fn fixed_iterations(n: u64) {
    if std::env::var("PIPELINE_FIXED_TARGET").as_deref() == Ok("ingest") {
        let (pipeline, sink, _cluster) = ingest_pipeline();
        let rt = runtime();
        let mut accepted = 0;
        for _ in 0..n {
            accepted += ingest_batch(&rt, &pipeline, black_box(BATCH.as_bytes())).accepted;
        }
        sink.close(Duration::from_secs(10));
        println!("{n} batches, {accepted} events accepted");
        return;
    }
    let pipeline = memory_pipeline();
    let rt = runtime();
    let mut accepted = 0;
    for _ in 0..n {
        accepted += ingest_batch(&rt, &pipeline, black_box(BATCH.as_bytes())).accepted;
    }
    println!("{n} batches, {accepted} events accepted");
}

type MockCluster =
    rdkafka::mocking::MockCluster<'static, rdkafka::producer::DefaultProducerContext>;

/// A pipeline with metrics installed and its producer on an in-process
/// mock cluster (which must outlive it).
fn ingest_pipeline() -> (Pipeline, Arc<KafkaSink>, MockCluster) {
    trackgate::metrics::install();
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    let cfg = Arc::new(config(&cluster.bootstrap_servers()));
    for t in cfg.kafka.topics.all() {
        cluster
            .create_topic(t, cfg.kafka.partitions, 1)
            .expect("mock topic");
    }
    let sink = Arc::new(KafkaSink::new(&cfg.kafka, &cluster.bootstrap_servers()).expect("sink"));
    let privacy = PrivacyStage::local(&cfg).expect("privacy stage");
    (
        Pipeline::new(cfg, sink.clone(), privacy).expect("pipeline"),
        sink,
        cluster,
    )
}

/// `Pipeline::ingest` is async (it awaits the spool's fsync when asked to);
/// without a spool it completes at once on this runtime.
fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime")
}

fn ingest_batch(
    rt: &tokio::runtime::Runtime,
    pipeline: &Pipeline,
    body: &[u8],
) -> trackgate::ingest::Outcome {
    let batch = decode::batch(body).expect("decodes");
    let m = meta(Some(&batch));
    let raws = batch
        .events
        .iter()
        .map(|r| RawEvent::Json(r.text()))
        .collect();
    rt.block_on(pipeline.ingest(raws, None, &m))
        .expect("room in the queue")
}

fn ingest(c: &mut Criterion<ThreadCpuTime>) {
    let (pipeline, sink, _cluster) = ingest_pipeline();
    let rt = runtime();
    let body = BATCH.as_bytes();

    let mut g = c.benchmark_group("ingest");
    g.throughput(Throughput::Elements(50));
    g.bench_function("batch50", |b| {
        b.iter(|| ingest_batch(&rt, &pipeline, black_box(body)))
    });
    g.throughput(Throughput::Elements(1));
    g.bench_function("single_page", |b| {
        b.iter(|| {
            let single = decode::single(black_box(SINGLE.as_bytes())).expect("decodes");
            rt.block_on(pipeline.ingest(
                vec![RawEvent::Parsed(single.event, single.text)],
                Some(EventType::Page),
                &meta(None),
            ))
            .expect("room in the queue")
        })
    });
    g.finish();
    sink.close(Duration::from_secs(10));
}

criterion_group! {
    name = benches;
    config = cpu_time::criterion();
    targets = stages, ingest
}

fn main() {
    if let Some(n) = std::env::var("PIPELINE_FIXED_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        fixed_iterations(n);
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}
