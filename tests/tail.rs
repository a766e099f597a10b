//! `trackgate tail` against the real broker: it prints what the gateway
//! produced, and it stops with an error, never a crash, when the broker
//! goes away.

mod support;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const PAGEVIEWS: &str = "tracking.raw.pageviews";

fn tail(brokers: &str, extra: &[&str]) -> Command {
    let mut cmd = Command::new(gateway_bin());
    cmd.args([
        "tail",
        "--brokers",
        brokers,
        "--topic",
        PAGEVIEWS,
        "--format",
        "json",
    ])
    .args(extra)
    .env("TRACKGATE_LOG", "warn")
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    cmd
}

#[test]
fn tail_prints_the_records_the_gateway_produced() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let gw = Gateway::start(&brokers);
    let body = r#"{"batch":[
        {"type":"page","anonymousId":"tail-a","messageId":"tail-1","name":"Home"},
        {"type":"page","anonymousId":"tail-b","messageId":"tail-2","name":"Cart"}
    ]}"#;
    assert_eq!(gw.post("/v1/batch", body).status, 200);

    let out = tail(
        &brokers,
        &[
            "--from-beginning",
            "--max-records",
            "2",
            "--idle-timeout-ms",
            "30000",
        ],
    )
    .output()
    .expect("tail runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let records: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON record per line"))
        .collect();
    let mut ids: Vec<&str> = records
        .iter()
        .map(|r| r["value"]["messageId"].as_str().unwrap_or_default())
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["tail-1", "tail-2"]);
    for r in &records {
        assert_eq!(r["topic"], PAGEVIEWS);
        // The record key is the visitor id.
        assert_eq!(r["key"], r["value"]["anonymousId"]);
        assert!(r["value"]["receivedAt"].is_string(), "{r}");
    }
}

#[test]
fn tail_stops_with_an_error_when_the_broker_goes_away() {
    let mut broker = Broker::start();
    let brokers = broker.addr();
    // The gateway creates the topics and writes one record (it keeps
    // running: its delivery may still be under way).
    let gw = Gateway::start(&brokers);
    let body = r#"{"type":"page","anonymousId":"tail-c","messageId":"tail-3"}"#;
    assert_eq!(gw.post("/v1/page", body).status, 200);
    let mut child = tail(
        &brokers,
        &["--from-beginning", "--idle-timeout-ms", "120000"],
    )
    .spawn()
    .expect("tail starts");
    // Tail is following once it printed the record.
    let stdout = child.stdout.take().expect("tail's stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut first = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut first);
        let _ = tx.send(first);
    });
    let first = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("tail prints the record");
    assert!(first.contains("tail-3"), "{first}");
    // Take the broker away and bring an empty one back.
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("tail status") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "tail did not stop after losing the broker"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert_eq!(status.code(), Some(1), "{status} {stderr}");
    assert!(stderr.contains("lost every broker connection"), "{stderr}");
}
