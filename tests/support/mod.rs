//! Test support: starts the real Tansu broker and the real gateway binary on
//! free loopback ports, speaks plain HTTP/1.1 to it, and reads topics back
//! from the broker.

#![allow(dead_code)]

pub mod load;
pub mod privacy;
pub mod spool;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

pub const WRITE_KEY: &str = "wk_test_web";
pub const APP_WRITE_KEY: &str = "wk_test_app";
pub const ORIGIN: &str = "https://shop.example";

pub const PAGEVIEWS: &str = "tracking.raw.pageviews";
pub const CLICKS: &str = "tracking.raw.clicks";
pub const EVENTS: &str = "tracking.raw.events";
pub const IDENTITIES: &str = "tracking.raw.identities";
pub const INVALID: &str = "tracking.raw.invalid";
pub const ALL_TOPICS: [&str; 5] = [PAGEVIEWS, CLICKS, EVENTS, IDENTITIES, INVALID];

/// File in the gateway's temp dir that [`Gateway::spawn_logged`] logs to.
const LOG_FILE: &str = "gateway.log";

/// How long to wait for a process to become reachable or ready.
const START_TIMEOUT: Duration = Duration::from_secs(30);

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return p.into();
    }
    let home_bin = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .unwrap_or_default();
    if home_bin.exists() {
        return home_bin;
    }
    "tansu".into()
}

/// A Tansu broker with memory storage listening on `port`.
fn spawn_tansu(port: u16) -> Child {
    let url = format!("tcp://127.0.0.1:{port}");
    Command::new(tansu_bin())
        .args([
            "broker",
            "--listener-url",
            &url,
            "--advertised-listener-url",
            &url,
            "--storage-engine",
            "memory://tansu/",
        ])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tansu is installed (scripts/test.sh installs it)")
}

fn wait_for_tcp(addr: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if TcpStream::connect(addr).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A Tansu broker with in-memory storage.
pub struct Broker {
    child: Option<Child>,
    pub port: u16,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Broker {
        let child = spawn_tansu(port);
        let b = Broker {
            child: Some(child),
            port,
        };
        assert!(
            wait_for_tcp(&b.addr(), START_TIMEOUT),
            "tansu did not listen on {}",
            b.addr()
        );
        b
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts the broker again on the same port (a fresh, empty one), trying
    /// again while the port is still held by the previous process.
    pub fn restart(&mut self) {
        self.stop();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let mut child = spawn_tansu(self.port);
            if wait_for_tcp(&self.addr(), Duration::from_secs(3)) {
                self.child = Some(child);
                return;
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(
                Instant::now() < deadline,
                "tansu did not restart on {}",
                self.addr()
            );
        }
    }

    /// Stops the broker process (SIGSTOP): its connections stay open and
    /// nothing is answered, like a hung broker.
    pub fn freeze(&self) {
        if let Some(c) = &self.child {
            let _ = Command::new("kill")
                .args(["-STOP", &c.id().to_string()])
                .status();
        }
    }

    /// Kills the broker (its in-memory data is lost).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

pub fn gateway_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_trackgate"))
}

/// The standard test configuration: two sources, the given broker, free
/// ports, and `extra` TOML appended (sections the test wants to change).
pub fn config_toml(listen: u16, admin: u16, brokers: &str, extra: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
trusted_proxies = ["10.9.9.9"]
shutdown_grace_ms = 5000

[kafka]
brokers = "{brokers}"
partitions = 2
metadata_interval_ms = 300
message_timeout_ms = 20000
flush_timeout_ms = 10000

{extra}

[[sources]]
id = "web"
write_key = "{WRITE_KEY}"
allowed_origins = ["{ORIGIN}"]

[[sources]]
id = "app"
write_key = "{APP_WRITE_KEY}"
"#
    )
}

/// A running gateway process.
pub struct Gateway {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub admin: SocketAddr,
    _dir: tempfile::TempDir,
    pub config_path: PathBuf,
}

impl Gateway {
    /// Starts against `brokers` and waits until `/readyz` says 200.
    pub fn start(brokers: &str) -> Gateway {
        Gateway::start_with(brokers, "")
    }

    pub fn start_with(brokers: &str, extra: &str) -> Gateway {
        let g = Gateway::spawn(brokers, extra);
        g.wait_ready(START_TIMEOUT);
        g
    }

    /// Starts without waiting for readiness.
    pub fn spawn(brokers: &str, extra: &str) -> Gateway {
        let (listen, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("trackgate.toml");
        std::fs::write(&path, config_toml(listen, admin, brokers, extra)).expect("write config");
        Gateway::spawn_config(dir, path, listen, admin)
    }

    pub fn spawn_config(dir: tempfile::TempDir, path: PathBuf, listen: u16, admin: u16) -> Gateway {
        let stderr = if std::env::var("TEST_GATEWAY_LOG").is_ok() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let log = std::env::var("TEST_GATEWAY_LOG").unwrap_or("warn".into());
        Gateway::spawn_process(dir, path, listen, admin, &log, stderr)
    }

    /// Starts without waiting for readiness, with the configuration
    /// `toml(listen_port, admin_port)` and the gateway's log (at `filter`)
    /// written to a file that [`Gateway::log`] reads.
    pub fn spawn_logged(toml: impl FnOnce(u16, u16) -> String, filter: &str) -> Gateway {
        let (listen, admin) = (free_port(), free_port());
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("trackgate.toml");
        std::fs::write(&path, toml(listen, admin)).expect("write config");
        let log = std::fs::File::create(dir.path().join(LOG_FILE)).expect("log file");
        Gateway::spawn_process(dir, path, listen, admin, filter, Stdio::from(log))
    }

    /// The log written so far by a gateway started with [`Gateway::spawn_logged`].
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join(LOG_FILE)).unwrap_or_default()
    }

    fn spawn_process(
        dir: tempfile::TempDir,
        path: PathBuf,
        listen: u16,
        admin: u16,
        log: &str,
        stderr: Stdio,
    ) -> Gateway {
        let child = Command::new(gateway_bin())
            .arg("--config")
            .arg(&path)
            .env("TRACKGATE_LOG", log)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn gateway");
        let g = Gateway {
            child: Some(child),
            addr: SocketAddr::from(([127, 0, 0, 1], listen)),
            admin: SocketAddr::from(([127, 0, 0, 1], admin)),
            _dir: dir,
            config_path: path,
        };
        assert!(
            wait_for_tcp(&g.admin.to_string(), START_TIMEOUT),
            "gateway admin listener did not come up"
        );
        g
    }

    pub fn ready(&self) -> bool {
        http(self.admin, "GET", "/readyz", &[], b"")
            .map(|r| r.status == 200)
            .unwrap_or(false)
    }

    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if self.ready() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("gateway did not become ready within {timeout:?}");
    }

    /// POSTs JSON with the web source's key in Basic auth.
    pub fn post(&self, path: &str, body: &str) -> Response {
        let auth = basic(WRITE_KEY);
        self.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body.as_bytes(),
        )
    }

    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        http(self.addr, method, path, headers, body).expect("gateway answers")
    }

    pub fn metrics(&self) -> String {
        let r = http(self.admin, "GET", "/metrics", &[], b"").expect("metrics");
        String::from_utf8_lossy(&r.body).into_owned()
    }

    /// Sum of a metric's samples whose label set contains every `labels` pair.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics(), name, labels)
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).unwrap_or(0)
    }

    /// SIGKILL: the process dies at once, nothing is flushed.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the gateway again with the same configuration, directory (and
    /// so the same spool) and log file, after [`Gateway::kill`] or an exit.
    pub fn respawn(&mut self) {
        assert!(self.child.is_none(), "the gateway is still running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self._dir.path().join(LOG_FILE))
            .expect("log file");
        let filter = std::env::var("TEST_GATEWAY_LOG").unwrap_or("warn".into());
        let child = Command::new(gateway_bin())
            .arg("--config")
            .arg(&self.config_path)
            .env("TRACKGATE_LOG", filter)
            .env("NO_COLOR", "1")
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn gateway");
        self.child = Some(child);
        assert!(
            wait_for_tcp(&self.admin.to_string(), START_TIMEOUT),
            "gateway admin listener did not come up again"
        );
    }

    /// The gateway's working directory (its spool lives in it by default).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Sends SIGTERM without waiting ([`Gateway::wait_exit`] waits).
    pub fn signal_term(&self) {
        let pid = self.pid().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(&mut self) -> ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill")
            .args(["-TERM", &c.id().to_string()])
            .status();
        c.wait().expect("wait gateway")
    }

    /// Whether the gateway process is still running.
    pub fn running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        self.child.take().expect("running").wait().expect("wait")
    }
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let mut exited_before = None;
        if let Some(mut c) = self.child.take() {
            exited_before = c.try_wait().ok().flatten();
            let _ = c.kill();
            let _ = c.wait();
        }
        // A failing test shows what the gateway logged, and how it ended if
        // it ended before the test was done with it.
        if std::thread::panicking() {
            if let Some(status) = exited_before {
                eprintln!("---- the gateway had already exited: {status} ----");
            }
            let log = self.log();
            if !log.is_empty() {
                eprintln!("---- gateway log ----\n{log}---- end of gateway log ----");
            }
        }
    }
}

pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

pub fn basic(key: &str) -> String {
    use base64::Engine;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{key}:"))
    )
}

/// An HTTP response as read off the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "body is not JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`).
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut req = format!("{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    if method != "GET" || !body.is_empty() {
        req.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes())?;
    s.write_all(body)?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> std::io::Result<Response> {
    let bad = || std::io::Error::new(std::io::ErrorKind::InvalidData, "bad response");
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(bad)?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| bad())?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(bad)?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[end + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Ok(Response {
        status,
        headers,
        body,
    })
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(pos) = b.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&b[..pos]).unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            break;
        }
        out.extend_from_slice(&b[pos + 2..pos + 2 + size]);
        b = &b[pos + 2 + size + 2..];
    }
    out
}

/// A record read back from the broker.
#[derive(Debug, Clone)]
pub struct Record {
    pub topic: String,
    pub partition: i32,
    pub key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub value: Value,
    /// The record's value as the broker holds it, byte for byte.
    pub raw: Vec<u8>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads `topics` from the beginning until `expected` records arrived, then
/// keeps listening for `settle` more to catch extras (so tests can assert
/// exact counts); gives up after `timeout`.
pub fn consume(brokers: &str, topics: &[&str], expected: usize, timeout: Duration) -> Vec<Record> {
    consume_settle(
        brokers,
        topics,
        expected,
        timeout,
        Duration::from_millis(1500),
    )
}

pub fn consume_settle(
    brokers: &str,
    topics: &[&str],
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<Record> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "trackgate-tests")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer
            .fetch_metadata(Some(topic), Duration::from_secs(10))
            .expect("metadata");
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == *topic)
            .unwrap_or_else(|| panic!("topic {topic} exists"));
        assert!(!t.partitions().is_empty(), "topic {topic} has partitions");
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)
                .expect("partition");
        }
    }
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_until: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if now >= deadline || settle_until.is_some_and(|s| now >= s) {
            break;
        }
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let headers = m
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|x| {
                            (
                                x.key.to_string(),
                                String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            out.push(Record {
                topic: m.topic().to_string(),
                partition: m.partition(),
                key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                headers,
                value: m
                    .payload()
                    .and_then(|p| serde_json::from_slice(p).ok())
                    .unwrap_or(Value::Null),
                raw: m.payload().unwrap_or_default().to_vec(),
            });
        }
        if out.len() >= expected && settle_until.is_none() {
            settle_until = Some(Instant::now() + settle);
        }
    }
    out
}

/// Every record on every gateway topic.
pub fn consume_all(brokers: &str, expected: usize) -> Vec<Record> {
    consume(brokers, &ALL_TOPICS, expected, Duration::from_secs(30))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).expect("gzip");
    e.finish().expect("gzip")
}

// ---- Reliability helpers: accounting, memory, waiting ----

const DELIVERED: (&str, &str) = ("result", "delivered");
const FAILED: (&str, &str) = ("result", "failed");

/// Longest wait for the gateway to settle (nothing in flight) or recover.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(40);

/// The accounting of one gateway as `/metrics` reports it.
#[derive(Debug, Clone, Copy, Default)]
pub struct Accounting {
    pub received: f64,
    pub accepted: f64,
    pub rejected: f64,
    pub dropped: f64,
    pub delivered: f64,
    pub failed: f64,
    pub in_flight: f64,
    /// Records a previous run left on the spool (produced again).
    pub recovered: f64,
}

impl Accounting {
    pub fn read(gw: &Gateway) -> Accounting {
        let text = gw.metrics();
        // `+ 0.0` turns the empty sum (-0) into 0 for the printed figures.
        let sum = |name, labels: &[(&str, &str)]| metric_sum(&text, name, labels) + 0.0;
        let events = |outcome| sum("trackgate_events_total", &[("outcome", outcome)]);
        Accounting {
            received: sum("trackgate_events_received_total", &[]),
            accepted: events("accepted"),
            rejected: events("rejected"),
            dropped: events("dropped"),
            delivered: sum("trackgate_deliveries_total", &[DELIVERED]),
            failed: sum("trackgate_deliveries_total", &[FAILED]),
            in_flight: sum("trackgate_events_in_flight", &[]),
            recovered: sum("trackgate_spool_recovered_total", &[]),
        }
    }

    /// Both identities of `src/metrics.rs`, exactly.
    pub fn assert_identities(&self) {
        assert_eq!(
            self.received,
            self.accepted + self.rejected + self.dropped,
            "received = accepted + rejected + dropped: {self:?}"
        );
        assert_eq!(
            self.accepted + self.recovered,
            self.delivered + self.failed + self.in_flight,
            "accepted + recovered = delivered + failed + in flight: {self:?}"
        );
    }
}

/// Waits until no accepted event awaits a delivery report.
pub fn settle(gw: &Gateway) -> Accounting {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let a = Accounting::read(gw);
        if a.in_flight == 0.0 && a.accepted + a.recovered == a.delivered + a.failed {
            return a;
        }
        assert!(Instant::now() < deadline, "did not settle: {a:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Peak and current resident memory of a process, in KiB.
pub fn memory_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/{pid}/status"))
    };
    (field("VmHWM:"), field("VmRSS:"))
}

pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// messageIds of the records on the events topic, asserting none twice.
pub fn unique_ids(records: &[Record]) -> HashSet<String> {
    let mut ids = HashSet::new();
    for r in records {
        let id = r.value["messageId"]
            .as_str()
            .expect("messageId")
            .to_string();
        assert!(ids.insert(id.clone()), "{id} delivered twice");
    }
    ids
}

/// A gateway configuration with the given `[kafka]` keys (besides the
/// brokers and partitions). The per-IP rate limit is off: these tests load
/// the gateway from one loopback address on purpose.
pub fn gateway_toml(listen: u16, admin: u16, brokers: &str, kafka: &str) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
shutdown_grace_ms = 5000

[kafka]
brokers = "{brokers}"
partitions = 2
{kafka}

[rate_limit]
enabled = false

[[sources]]
id = "web"
write_key = "{WRITE_KEY}"
"#
    )
}
