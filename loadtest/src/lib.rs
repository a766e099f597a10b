//! `trackgate-load`: an honest load generator for trackgate.
//!
//! - `traffic`: realistic requests, generated before the run;
//! - `schedule`: open-loop send times (latency counted from the intended
//!   send time, so no coordinated omission);
//! - `client`: one raw HTTP/1.1 keep-alive connection per worker;
//! - `stats`: HDR latency histogram, status codes, the report;
//! - `verify`: reads the Kafka topics back and matches them to the answers;
//! - `target`: the loopback guard;
//! - `usage`: CPU and memory of this process and of the server under test.
//!
//! A run is bounded in time (`--duration`, at most [`MAX_DURATION_SECS`])
//! and in count (open loop: rate × duration; `--max-requests`), and each
//! request in time (`--timeout-ms`); it stops by itself.

pub mod client;
pub mod schedule;
pub mod stats;
pub mod target;
pub mod traffic;
pub mod usage;
pub mod verify;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};

use client::{counts, Conn};
use schedule::{wait_until, Schedule, Slots};
use stats::{Recorder, Report, RunInfo};
use target::{check_brokers, parse_target, TargetError};
use traffic::{EventMix, Renderer, RequestMix, Template, TrafficError, TrafficSpec};
use verify::{Baseline, Checker, Fate, Sent, Topics, VerifyError};

/// Longest run the tool agrees to.
pub const MAX_DURATION_SECS: f64 = 3600.0;
/// Highest open-loop rate the tool agrees to, in requests per second.
pub const MAX_RATE: f64 = 1_000_000.0;
/// Most connections the tool opens.
pub const MAX_CONNECTIONS: usize = 10_000;
/// Pause after a failed connect, so a dead target is not hammered.
const RECONNECT_BACKOFF: Duration = Duration::from_millis(20);
/// Settle time after the last record before verification stops reading.
const VERIFY_SETTLE: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Mode {
    /// Constant arrival rate (`--rate`), latency from the intended send time.
    Open,
    /// Closed loop: every connection sends its next request as soon as the
    /// previous one is answered (maximum throughput).
    Max,
}

/// Command-line options.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "trackgate-load",
    version,
    about = "Honest load for trackgate: open-loop (no coordinated omission) or max-throughput, realistic traffic, end-to-end verification"
)]
pub struct Args {
    /// Base URL of the server (http://HOST:PORT); loopback only unless --allow-remote.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// open: constant arrival rate; max: closed-loop maximum throughput.
    #[arg(long, value_enum, default_value_t = Mode::Open)]
    pub mode: Mode,
    /// Requests per second (open loop).
    #[arg(long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Seconds of load.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Keep-alive connections (one worker each).
    #[arg(long, default_value_t = 32)]
    pub connections: usize,
    /// Stop after this many requests.
    #[arg(long)]
    pub max_requests: Option<u64>,
    /// Request kinds by weight: single-event POSTs and /v1/batch.
    #[arg(long, default_value = "single=70,batch=30")]
    pub mix: RequestMix,
    /// Event kinds by weight.
    #[arg(long, default_value = "page=50,click=25,track=15,identify=10")]
    pub event_mix: EventMix,
    /// Events per batch request.
    #[arg(long, default_value_t = 50)]
    pub batch_size: usize,
    /// Share of events carrying personal data.
    #[arg(long, default_value_t = 0.1)]
    pub pii_share: f64,
    /// Share of requests from opted-out visitors (Sec-GPC: 1).
    #[arg(long, default_value_t = 0.02)]
    pub optout_share: f64,
    /// Share of batch requests sent gzip-compressed.
    #[arg(long, default_value_t = 0.2)]
    pub gzip_share: f64,
    /// Write key sent in Basic auth.
    #[arg(long, default_value = "wk_load_test")]
    pub write_key: String,
    /// Distinct pre-generated requests cycled through.
    #[arg(long, default_value_t = 512)]
    pub templates: usize,
    /// Seed of the traffic generator (same seed, same traffic).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-request timeout in milliseconds.
    #[arg(long, default_value_t = 5000)]
    pub timeout_ms: u64,
    /// Generator threads (1: a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<std::path::PathBuf>,
    /// Verify end to end against these Kafka brokers after the run.
    #[arg(long)]
    pub verify_brokers: Option<String>,
    /// Prefix of the gateway's topic names.
    #[arg(long, default_value = "tracking.raw.")]
    pub topic_prefix: String,
    /// Longest time verification reads the topics.
    #[arg(long, default_value_t = 60)]
    pub verify_timeout_secs: u64,
    /// PID of the server under test: its CPU time during the run and its
    /// memory are reported.
    #[arg(long)]
    pub server_pid: Option<u32>,
    /// Wait this long after the run before reading the server's CPU time, so
    /// work it finishes after answering (producer flushes) is counted.
    #[arg(long, default_value_t = 500)]
    pub server_settle_ms: u64,
    /// Allow a non-loopback target or broker.
    #[arg(long)]
    pub allow_remote: bool,
    /// Print nothing but the report.
    #[arg(long, short)]
    pub quiet: bool,
    /// Print the body of the first generated request of each kind (single,
    /// batch; decompressed) and exit without sending anything.
    #[arg(long)]
    pub sample: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Traffic(#[from] TrafficError),
    #[error("verification: {0}")]
    Verify(#[from] VerifyError),
    #[error("invalid option: {0}")]
    Option(String),
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("server process: {0}")]
    Server(std::io::Error),
}

impl Args {
    /// Checks the bounds of every option.
    pub fn validate(&self) -> Result<(), LoadError> {
        let bad = |m: &str| Err(LoadError::Option(m.to_string()));
        if !(self.duration > 0.0 && self.duration <= MAX_DURATION_SECS) {
            return bad("--duration must be in (0, 3600] seconds");
        }
        if self.mode == Mode::Open && !(self.rate > 0.0 && self.rate <= MAX_RATE) {
            return bad("--rate must be in (0, 1000000] requests per second");
        }
        if self.connections == 0 || self.connections > MAX_CONNECTIONS {
            return bad("--connections must be in 1..=10000");
        }
        if self.batch_size == 0 {
            return bad("--batch-size must be positive");
        }
        for (name, v) in [
            ("--pii-share", self.pii_share),
            ("--optout-share", self.optout_share),
            ("--gzip-share", self.gzip_share),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(LoadError::Option(format!("{name} must be in [0, 1]")));
            }
        }
        if self.templates == 0 || self.threads == 0 || self.timeout_ms == 0 {
            return bad("--templates, --threads and --timeout-ms must be positive");
        }
        Ok(())
    }

    fn spec(&self, host: &str, run_tag: &str) -> TrafficSpec {
        TrafficSpec {
            requests: self.mix,
            events: self.event_mix,
            batch_size: self.batch_size,
            pii_share: self.pii_share,
            optout_share: self.optout_share,
            gzip_share: self.gzip_share,
            write_key: self.write_key.clone(),
            host: host.to_string(),
            templates: self.templates,
            run_tag: run_tag.to_string(),
            seed: self.seed,
        }
    }
}

/// The bodies `--sample` prints: the first single-event request and the
/// first batch of the generated traffic, as JSON text.
pub fn samples(args: &Args) -> Result<Vec<String>, LoadError> {
    args.validate()?;
    let templates = traffic::generate(&args.spec("127.0.0.1", "lt00000000"))?;
    let mut out = Vec::new();
    for single in [true, false] {
        if let Some(t) = templates.iter().find(|t| t.single == single) {
            let mut buf = Vec::new();
            t.render(0, &mut traffic::Renderer::default(), &mut buf)?;
            let end = buf
                .windows(4)
                .position(|w| w == b"\r\n\r\n")
                .map_or(0, |p| p + 4);
            let body = if t.is_gzip() {
                traffic::gunzip(&buf[end..]).map_err(|e| LoadError::Option(e.to_string()))?
            } else {
                buf[end..].to_vec()
            };
            out.push(String::from_utf8_lossy(&body).into_owned());
        }
    }
    Ok(out)
}

/// A tag unique to this run, prefixed to every `messageId`.
fn run_tag() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let mut rng = traffic::Rng::new(nanos ^ (u64::from(std::process::id()) << 32));
    format!("lt{:08x}", rng.next_u64() as u32)
}

enum Plan {
    Open(Schedule),
    Max { end: Instant },
}

struct Shared {
    templates: Vec<Template>,
    addr: std::net::SocketAddr,
    plan: Plan,
    slots: Slots,
    /// Stop taking new requests after this instant.
    hard_stop: Instant,
    next_event: AtomicU64,
    sent: AtomicU64,
    timeout: Duration,
    keep_ledger: bool,
}

/// Runs the load and returns the report (verified when asked).
pub fn run(args: &Args) -> Result<Report, LoadError> {
    args.validate()?;
    let target = parse_target(&args.target, args.allow_remote)?;
    if let Some(b) = &args.verify_brokers {
        check_brokers(b, args.allow_remote)?;
    }
    let tag = run_tag();
    let started = Instant::now();
    let templates = traffic::generate(&args.spec(&target.authority, &tag))?;
    if !args.quiet {
        let bytes: usize = templates.iter().map(Template::wire_len).sum();
        eprintln!(
            "generated {} requests ({:.1} MB) in {:.2} s; run tag {tag}",
            templates.len(),
            bytes as f64 / 1e6,
            started.elapsed().as_secs_f64()
        );
    }
    let topics = Topics {
        prefix: args.topic_prefix.clone(),
    };
    let baseline = match &args.verify_brokers {
        Some(b) => Some(Baseline::capture(b, topics)?),
        None => None,
    };
    let server_before = match args.server_pid {
        Some(pid) => Some(usage::process_cpu_seconds(pid).map_err(LoadError::Server)?),
        None => None,
    };
    let runtime = if args.threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .map_err(LoadError::Runtime)?;

    let cpu_before = usage::self_cpu_seconds();
    let timeout = Duration::from_millis(args.timeout_ms);
    let start = Instant::now() + Duration::from_millis(10);
    let duration = Duration::from_secs_f64(args.duration);
    let (plan, limit, planned) = match args.mode {
        Mode::Open => {
            let s = Schedule::new(start, args.rate, duration);
            let limit = args.max_requests.map_or(s.total(), |m| m.min(s.total()));
            (Plan::Open(s), limit, Some(limit))
        }
        Mode::Max => (
            Plan::Max {
                end: start + duration,
            },
            args.max_requests.unwrap_or(u64::MAX),
            None,
        ),
    };
    let shared = Arc::new(Shared {
        templates,
        addr: target.addr,
        plan,
        slots: Slots::new(limit),
        hard_stop: start + duration + timeout,
        next_event: AtomicU64::new(0),
        sent: AtomicU64::new(0),
        timeout,
        keep_ledger: baseline.is_some(),
    });
    let (rec, ledger, finished) = runtime.block_on(async {
        let workers: Vec<_> = (0..args.connections)
            .map(|_| tokio::spawn(worker(shared.clone(), start)))
            .collect();
        let mut rec = Recorder::default();
        let mut ledger = Vec::new();
        for w in workers {
            if let Ok((r, l)) = w.await {
                rec.merge(&r);
                ledger.extend(l);
            }
        }
        (rec, ledger, Instant::now())
    });
    drop(runtime);
    let cpu = usage::self_cpu_seconds() - cpu_before;
    let info = RunInfo {
        mode: match args.mode {
            Mode::Open => "open-loop".into(),
            Mode::Max => "max-throughput".into(),
        },
        target: args.target.clone(),
        connections: args.connections,
        target_rate: (args.mode == Mode::Open).then_some(args.rate),
        elapsed: finished.saturating_duration_since(start),
        requests_sent: shared.sent.load(Ordering::Relaxed),
        requests_planned: planned,
        generator_cpu_seconds: cpu,
    };
    let mut report = Report::build(info, &rec);
    if let (Some(pid), Some(before)) = (args.server_pid, server_before) {
        std::thread::sleep(Duration::from_millis(args.server_settle_ms));
        let after = usage::process_cpu_seconds(pid).map_err(LoadError::Server)?;
        let mem = usage::process_memory_kib(pid).map_err(LoadError::Server)?;
        report = report.with_server(pid, after - before, mem.peak_rss, mem.rss);
    }
    if let Some(baseline) = baseline {
        let events = shared.next_event.load(Ordering::Relaxed);
        let mut checker = Checker::new(&tag, &shared.templates, ledger, events);
        let t = Instant::now();
        verify::read_back(
            &baseline,
            &mut checker,
            Duration::from_secs(args.verify_timeout_secs),
            VERIFY_SETTLE,
        )?;
        report.verify = Some(checker.finish(t.elapsed()));
    }
    Ok(report)
}

/// One connection's loop: take the next request, wait for its time (open
/// loop), send it, read the answer, record.
async fn worker(shared: Arc<Shared>, start: Instant) -> (Recorder, Vec<Sent>) {
    let mut rec = Recorder::default();
    let mut ledger = Vec::new();
    let mut conn: Option<Conn> = None;
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut renderer = Renderer::default();
    wait_until(start).await;
    loop {
        let now = Instant::now();
        if now >= shared.hard_stop {
            break;
        }
        if let Plan::Max { end } = shared.plan {
            if now >= end {
                break;
            }
        }
        let Some(i) = shared.slots.take() else { break };
        let intended = match &shared.plan {
            Plan::Open(s) => {
                let t = s.intended(i);
                wait_until(t).await;
                t
            }
            Plan::Max { .. } => Instant::now(),
        };
        let template_index = (i % shared.templates.len() as u64) as usize;
        let t = &shared.templates[template_index];
        let n = t.events.len();
        let first_id = shared.next_event.fetch_add(n as u64, Ordering::Relaxed);
        if t.render(first_id, &mut renderer, &mut buf).is_err() {
            // Compression of an in-memory buffer does not fail; should it,
            // the request is not sent and counts as a transport error.
            rec.transport_errors += 1;
            continue;
        }
        let mut note = |fate: Fate| {
            if shared.keep_ledger {
                ledger.push(Sent {
                    first_id,
                    template: template_index as u32,
                    fate,
                });
            }
        };
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match Conn::connect(shared.addr).await {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    rec.transport_errors += 1;
                    note(Fate::Refused);
                    tokio::time::sleep(RECONNECT_BACKOFF).await;
                    continue;
                }
            },
        };
        let sent_at = Instant::now();
        rec.sent(n, buf.len(), sent_at.saturating_duration_since(intended));
        shared.sent.fetch_add(1, Ordering::Relaxed);
        match tokio::time::timeout(shared.timeout, c.exchange(&buf)).await {
            Ok(Ok(answer)) => {
                let now = Instant::now();
                rec.served(now.saturating_duration_since(sent_at));
                let latency = now.saturating_duration_since(intended);
                let counted = counts(c.body(&answer));
                rec.answered(answer.status, latency, n, counted);
                note(Fate::from_answer(answer.status, n, counted));
                if answer.close {
                    conn = None;
                }
            }
            Ok(Err(_)) => {
                rec.transport_errors += 1;
                note(Fate::Uncertain);
                conn = None;
            }
            Err(_) => {
                rec.timeouts += 1;
                note(Fate::Uncertain);
                conn = None;
            }
        }
    }
    (rec, ledger)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> Args {
        let mut v = vec!["trackgate-load"];
        v.extend_from_slice(extra);
        Args::try_parse_from(v).unwrap()
    }

    #[test]
    fn defaults_are_valid_and_bounds_are_enforced() {
        assert!(args(&[]).validate().is_ok());
        for bad in [
            &["--duration", "0"][..],
            &["--duration", "4000"],
            &["--rate", "0"],
            &["--connections", "0"],
            &["--pii-share", "1.5"],
            &["--batch-size", "0"],
        ] {
            assert!(args(bad).validate().is_err(), "{bad:?}");
        }
        assert!(args(&["--mode", "max", "--rate", "0"]).validate().is_ok());
        assert!(Args::try_parse_from(["x", "--mix", "single=0"]).is_err());
    }

    #[test]
    fn samples_are_the_generated_json() {
        let s = samples(&args(&["--mix", "single=1,batch=1", "--batch-size", "3"])).unwrap();
        assert_eq!(s.len(), 2);
        let single: serde_json::Value = serde_json::from_str(&s[0]).unwrap();
        assert!(single["messageId"]
            .as_str()
            .unwrap()
            .ends_with("-000000000000"));
        let batch: serde_json::Value = serde_json::from_str(&s[1]).unwrap();
        assert_eq!(batch["batch"].as_array().unwrap().len(), 3);
    }

    #[test]
    fn remote_targets_are_refused_before_anything_is_sent() {
        let a = args(&["--target", "http://192.0.2.10:8080", "--duration", "1"]);
        assert!(matches!(
            run(&a),
            Err(LoadError::Target(TargetError::NotLoopback(_)))
        ));
        let a = args(&["--verify-brokers", "192.0.2.10:9092"]);
        assert!(matches!(
            run(&a),
            Err(LoadError::Target(TargetError::NotLoopback(_)))
        ));
    }

    /// A loopback server that answers every request 204 and counts them.
    fn tiny_server() -> (std::net::SocketAddr, Arc<AtomicU64>) {
        use std::io::{Read, Write};
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let count = Arc::new(AtomicU64::new(0));
        let c = count.clone();
        std::thread::spawn(move || {
            for s in l.incoming() {
                let Ok(mut s) = s else { return };
                let c = c.clone();
                std::thread::spawn(move || {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 65536];
                    loop {
                        // Find a complete request: head plus content-length bytes.
                        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                            let len: usize = head
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length: "))
                                .and_then(|v| v.trim().parse().ok())
                                .unwrap_or(0);
                            if buf.len() >= end + 4 + len {
                                buf.drain(..end + 4 + len);
                                c.fetch_add(1, Ordering::Relaxed);
                                if s.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").is_err() {
                                    return;
                                }
                                continue;
                            }
                        }
                        match s.read(&mut chunk) {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                });
            }
        });
        (addr, count)
    }

    #[test]
    fn open_loop_sends_exactly_rate_times_duration_and_stops() {
        let (addr, count) = tiny_server();
        let target = format!("http://{addr}");
        let a = args(&[
            "--target",
            &target,
            "--rate",
            "200",
            "--duration",
            "0.5",
            "--connections",
            "4",
            "--templates",
            "16",
            "--quiet",
        ]);
        let r = run(&a).unwrap();
        assert_eq!(r.requests_sent, 100);
        assert_eq!(r.requests_answered, 100);
        assert_eq!(count.load(Ordering::Relaxed), 100);
        assert_eq!(r.statuses.get("204"), Some(&100));
        assert_eq!(r.latency_us.count, 100);
        assert!(r.clean());
    }

    #[test]
    fn max_mode_respects_the_request_bound() {
        let (addr, count) = tiny_server();
        let target = format!("http://{addr}");
        let a = args(&[
            "--target",
            &target,
            "--mode",
            "max",
            "--duration",
            "30",
            "--max-requests",
            "300",
            "--connections",
            "3",
            "--templates",
            "8",
            "--quiet",
        ]);
        let r = run(&a).unwrap();
        assert_eq!(r.requests_answered, 300);
        assert_eq!(count.load(Ordering::Relaxed), 300);
    }
}
