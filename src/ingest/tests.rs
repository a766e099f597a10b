use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use super::*;
use crate::config::LimitsConfig;
use crate::sink::memory::MemorySink;
use crate::spool::config::SpoolConfig;

/// A pipeline spooling into `dir` (nothing reaches a broker), with the
/// privacy stage, bots and quality at their defaults.
fn pipeline(dir: &std::path::Path) -> Pipeline {
    let cfg = Config::from_toml(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[sources]]\nid = \"web\"\nwrite_key = \"wk_test\"\n",
    )
    .expect("config");
    let cfg = Arc::new(cfg);
    let sink = MemorySink::new();
    let privacy = PrivacyStage::local(&cfg).expect("privacy");
    let spool_cfg = SpoolConfig {
        dir: dir.to_path_buf(),
        ..SpoolConfig::default()
    };
    let (spool, _) = Spool::open(&spool_cfg, MemorySink::new()).expect("spool");
    Pipeline::new(cfg, sink, privacy)
        .expect("pipeline")
        .with_spool(spool)
}

fn meta() -> RequestMeta<'static> {
    RequestMeta {
        source_id: "web",
        received_at: chrono::Utc::now(),
        client_ip: std::net::IpAddr::from([203, 0, 113, 9]),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0"),
        batch_sent_at: None,
        batch_context: None,
        signals: Default::default(),
    }
}

fn page(i: usize) -> String {
    format!(r#"{{"type":"page","anonymousId":"v{i}","messageId":"m{i}","name":"Home"}}"#)
}

#[test]
fn every_event_of_a_mixed_request_gets_exactly_one_outcome() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(dir.path());
    let texts = [
        page(1),
        r#"{"type":"page"}"#.to_string(), // no identity: rejected
        r#"{"type":"nope","anonymousId":"a"}"#.to_string(), // rejected
        page(1),                          // same messageId: duplicate, dropped
        page(2),
    ];
    let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let out = rt
        .block_on(p.ingest(raws, None, &meta()))
        .expect("admitted");
    assert_eq!(
        out,
        Outcome {
            accepted: 2,
            rejected: 2,
            dropped: 1
        }
    );
    // The two accepted events, and the two rejected events' reports: those
    // go through the spool too, outside the event accounting.
    assert_eq!(p.spool.as_ref().map(|s| s.open_events()), Some(2));
    assert_eq!(p.spool.as_ref().map(|s| s.open_records()), Some(4));
}

/// A pipeline whose spool lives on `fs` (fsync `always`), with its threads
/// running, and the pipeline's own sink.
fn pipeline_on(
    fs: crate::spool::testfs::MemFs,
) -> (Pipeline, Arc<MemorySink>, Arc<Spool>, crate::spool::Workers) {
    let cfg = Config::from_toml(
        "[kafka]\nbrokers = \"127.0.0.1:9\"\n[[sources]]\nid = \"web\"\nwrite_key = \"wk_test\"\n",
    )
    .expect("config");
    let cfg = Arc::new(cfg);
    let sink = MemorySink::new();
    let privacy = PrivacyStage::local(&cfg).expect("privacy");
    let spool_cfg = SpoolConfig {
        dir: std::path::PathBuf::from("/spool"),
        fsync: crate::spool::FsyncPolicy::Always,
        ..SpoolConfig::default()
    };
    let spool_sink = MemorySink::new();
    spool_sink.set_up(false);
    let (spool, _) = Spool::open_on(&spool_cfg, spool_sink, Arc::new(fs), None).expect("spool");
    let workers = spool.start();
    let p = Pipeline::new(cfg, sink.clone(), privacy)
        .expect("pipeline")
        .with_spool(spool.clone());
    (p, sink, spool, workers)
}

/// The finding of issue 20: rejected events' invalid-topic reports went
/// straight to the producer, so a broker outage or a crash lost them.
#[test]
fn rejected_events_reports_are_spooled_not_sent_around_the_spool() {
    let fs = crate::spool::testfs::MemFs::new();
    let (p, sink, spool, workers) = pipeline_on(fs);
    let texts = [page(1), r#"{"type":"nope","anonymousId":"a"}"#.to_string()];
    let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let out = rt
        .block_on(p.ingest(raws, None, &meta()))
        .expect("admitted");
    assert_eq!((out.accepted, out.rejected), (1, 1));
    assert_eq!(sink.produced_count(), 0, "nothing bypassed the spool");
    assert_eq!(spool.open_records(), 2);
    assert_eq!(spool.open_events(), 1);
    assert_eq!(sink.spooled_count(), 1, "only events count as accepted");
    spool.close();
    workers.join();
}

/// The finding of issue 20: with `fsync = "always"`, a request whose fsync
/// failed (EIO) was answered 200.
#[test]
fn a_failed_fsync_refuses_the_request_and_the_next_ones() {
    let fs = crate::spool::testfs::MemFs::new();
    fs.set_faults(crate::spool::testfs::Faults {
        sync: Some(libc::EIO),
        ..Default::default()
    });
    let (p, _sink, spool, workers) = pipeline_on(fs.clone());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .expect("runtime");
    let one = [page(1)];
    let ingest = |texts: &[String]| {
        let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
        rt.block_on(p.ingest(raws, None, &meta()))
    };
    assert!(matches!(ingest(&one), Err(IngestError::Unavailable)));
    assert_eq!(spool.unhealthy(), Some(crate::spool::REASON_IO_ERROR));
    assert!(matches!(ingest(&[page(2)]), Err(IngestError::Unavailable)));
    // The disk works again: the syncer's probe notices, requests pass.
    fs.set_faults(crate::spool::testfs::Faults::default());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while spool.unhealthy().is_some() {
        assert!(std::time::Instant::now() < deadline, "still unhealthy");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    assert!(ingest(&[page(3)]).is_ok());
    // The client's retry of the request whose fsync failed is taken, not
    // dropped as a duplicate of records that may not be on disk.
    let retried = ingest(&one).expect("the retry is admitted");
    assert_eq!(retried.accepted, 1, "{retried:?}");
    spool.close();
    workers.join();
}

#[test]
fn nesting_up_to_the_limit_passes_and_deeper_is_too_deep_even_past_the_parsers_limit() {
    let limits = Config::from_toml("[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n")
        .expect("config")
        .limits;
    let max = limits.max_json_depth;
    // The event object is level 1; `properties.x` nests arrays below it.
    let nested = |levels: usize| {
        let inner = levels - 2;
        format!(
            r#"{{"type":"page","anonymousId":"a","properties":{{"x":{}1{}}}}}"#,
            "[".repeat(inner),
            "]".repeat(inner)
        )
    };
    let m = meta();
    let at = |levels| prepare(RawEvent::Json(&nested(levels)), None, &m, &limits).map(|_| ());
    assert_eq!(at(max), Ok(()));
    assert_eq!(at(max + 1), Err(RejectReason::TooDeep));
    // Deeper than serde_json's own recursion limit (128): still too deep,
    // not invalid JSON.
    assert_eq!(at(5_000), Err(RejectReason::TooDeep));
    let broken = "[".repeat(5_000);
    assert_eq!(
        prepare(RawEvent::Json(&broken), None, &m, &limits).map(|_| ()),
        Err(RejectReason::TooDeep)
    );
    assert_eq!(
        prepare(RawEvent::Json("{\"type\":"), None, &m, &limits).map(|_| ()),
        Err(RejectReason::InvalidJson)
    );
}

#[test]
fn a_large_batch_lets_other_tasks_run_while_it_is_processed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = pipeline(dir.path());
    let n = 2_500;
    let texts: Vec<String> = (0..n).map(page).collect();
    let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
    // One thread: another task runs only when the ingest yields.
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let ticks = Arc::new(AtomicU64::new(0));
    let (out, ticks_during) = rt.block_on(async {
        let t = ticks.clone();
        let ticker = tokio::spawn(async move {
            loop {
                t.fetch_add(1, Ordering::Relaxed);
                tokio::task::yield_now().await;
            }
        });
        let out = p.ingest(raws, None, &meta()).await;
        let during = ticks.load(Ordering::Relaxed);
        ticker.abort();
        (out, during)
    });
    assert_eq!(out.expect("admitted").accepted, n as u32);
    let slices = (n / EVENTS_PER_SLICE) as u64;
    assert!(
        ticks_during >= slices - 1,
        "the other task ran {ticks_during} times during a {n}-event batch; expected at least {}",
        slices - 1
    );
}

#[test]
fn truncation_respects_utf8() {
    assert_eq!(truncate_at_char_boundary("héllo", 2), "h");
    assert_eq!(truncate_at_char_boundary("héllo", 3), "hé");
    assert_eq!(truncate_at_char_boundary("abc", 10), "abc");
}

#[test]
fn a_record_larger_than_the_producer_sends_is_rejected_not_spooled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = pipeline(dir.path());
    p.max_record_bytes = 600;
    let big = format!(
        r#"{{"type":"page","anonymousId":"big","name":"{}"}}"#,
        "x".repeat(300)
    );
    let texts = [page(1), big];
    let raws = texts.iter().map(|t| RawEvent::Json(t)).collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let out = rt
        .block_on(p.ingest(raws, None, &meta()))
        .expect("answered");
    assert_eq!(
        out,
        Outcome {
            accepted: 1,
            rejected: 1,
            dropped: 0
        }
    );
    // The accepted event's record and the rejected one's invalid-topic
    // report are spooled; the oversize record itself is not.
    assert_eq!(p.spool.as_ref().map(|s| s.open_events()), Some(1));
    assert_eq!(p.spool.as_ref().map(|s| s.open_records()), Some(2));
}

#[test]
fn the_batch_context_counts_toward_an_events_size() {
    let cfg = LimitsConfig {
        max_event_bytes: 200,
        ..LimitsConfig::default()
    };
    let ctx_text = format!(r#"{{"campaign":"{}"}}"#, "c".repeat(120));
    let crate::json::Value::Object(ctx) = crate::json::from_str(&ctx_text).expect("json") else {
        panic!("object");
    };
    let mut m = meta();
    let event = r#"{"type":"page","anonymousId":"a","name":"Home, a name of some length"}"#;
    assert!(prepare(RawEvent::Json(event), None, &m, &cfg).is_ok());
    m.batch_context = Some(&ctx);
    assert_eq!(
        prepare(RawEvent::Json(event), None, &m, &cfg).err(),
        Some(RejectReason::EventTooLarge)
    );
}
