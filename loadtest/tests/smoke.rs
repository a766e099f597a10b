//! Smoke test of the load tool against the real thing: a Tansu broker, the
//! gateway (in-process, the same `server::run` the binary uses) and a short
//! open-loop run at a low rate with end-to-end verification. Bounded: about
//! two seconds of load plus start-up and read-back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Parser;
use trackgate_load::{run, Args};

const WRITE_KEY: &str = "wk_smoke";
const START_TIMEOUT: Duration = Duration::from_secs(30);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

fn tansu_bin() -> PathBuf {
    if let Ok(p) = std::env::var("TANSU_BIN") {
        return p.into();
    }
    let home = std::env::var("HOME")
        .map(|h| PathBuf::from(h).join(".cargo/bin/tansu"))
        .unwrap_or_default();
    if home.exists() {
        home
    } else {
        "tansu".into()
    }
}

struct Broker(Child, u16);

impl Broker {
    fn start() -> Broker {
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let child = Command::new(tansu_bin())
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
            .expect("tansu is installed (scripts/test.sh installs it)");
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "tansu did not listen");
            std::thread::sleep(Duration::from_millis(50));
        }
        Broker(child, port)
    }

    fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.1)
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn ready(admin: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect(admin) else {
        return false;
    };
    let _ = s.write_all(b"GET /readyz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.starts_with("HTTP/1.1 200")
}

/// Runs the gateway in-process until the returned sender is used; its
/// spool lives in `spool_dir`.
fn start_gateway(
    brokers: &str,
    spool_dir: &std::path::Path,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    std::thread::JoinHandle<()>,
) {
    let toml = format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_listen = "127.0.0.1:0"
trusted_proxies = ["127.0.0.1"]
[kafka]
brokers = "{brokers}"
partitions = 2
metadata_interval_ms = 300
[spool]
dir = "{spool}"
[rate_limit]
per_ip_rps = 1000000
per_ip_burst = 1000000
[[sources]]
id = "smoke"
write_key = "{WRITE_KEY}"
"#,
        spool = spool_dir.display()
    );
    let config = trackgate::config::Config::from_toml(&toml).expect("valid config");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    let handle = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        rt.block_on(trackgate::server::run(
            config,
            async {
                let _ = stop_rx.await;
            },
            move |b| {
                let _ = addr_tx.send((b.listen, b.admin));
            },
        ))
        .expect("gateway runs");
    });
    let (listen, admin) = addr_rx.recv_timeout(START_TIMEOUT).expect("gateway bound");
    let deadline = Instant::now() + START_TIMEOUT;
    while !ready(admin) {
        assert!(Instant::now() < deadline, "gateway did not become ready");
        std::thread::sleep(Duration::from_millis(100));
    }
    (listen, stop_tx, handle)
}

#[test]
fn a_short_open_loop_run_is_delivered_exactly_once() {
    let broker = Broker::start();
    let spool = tempfile::tempdir().expect("a temp dir for the spool");
    let (listen, stop, gateway) = start_gateway(&broker.addr(), spool.path());
    let target = format!("http://{listen}");
    let brokers = broker.addr();
    let args = Args::parse_from([
        "trackgate-load",
        "--target",
        &target,
        "--rate",
        "100",
        "--duration",
        "2",
        "--connections",
        "4",
        "--mix",
        "single=80,batch=20",
        "--batch-size",
        "20",
        "--gzip-share",
        "0.5",
        "--pii-share",
        "0.3",
        "--write-key",
        WRITE_KEY,
        "--templates",
        "64",
        "--verify-brokers",
        &brokers,
        "--verify-timeout-secs",
        "30",
        "--quiet",
    ]);
    let report = run(&args).expect("the run completes");
    println!("{}", report.human());
    let _ = stop.send(());
    let _ = gateway.join();

    assert_eq!(report.requests_sent, 200);
    assert_eq!(report.requests_answered, 200);
    assert_eq!(
        report.statuses.get("200"),
        Some(&200),
        "{:?}",
        report.statuses
    );
    assert_eq!(report.transport_errors + report.timeouts, 0);
    assert_eq!(
        report.accepted + report.dropped,
        report.events_sent,
        "every valid event is accepted or dropped by policy"
    );
    let v = report.verify.expect("verification ran");
    assert!(v.expected > 0);
    assert_eq!(v.expected, report.accepted);
    assert_eq!(v.missing, 0, "{v:?}");
    assert_eq!(v.duplicates, 0, "{v:?}");
    assert_eq!(v.found, v.expected, "{v:?}");
    assert_eq!(v.uncertain, 0, "{v:?}");
    assert!(v.passed);
}
