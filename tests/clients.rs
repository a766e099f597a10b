//! Real client libraries, unchanged, against the real gateway and the real
//! broker: Segment's and RudderStack's server libraries from npm and PyPI,
//! and their browser libraries in real Chromium (tests/clients/ holds the
//! pinned packages and the scripts that drive them). Each script prints one
//! JSON line per library and delivery mode; the events are then read back
//! from Kafka.
//!
//! Prerequisites: `tests/clients/setup.sh` (run by scripts/test.sh) installs
//! the npm packages and the Python virtualenvs; Chromium at /usr/bin/chromium.
//! TEST_CLIENTS_SKIP=1 skips these tests; otherwise anything missing
//! fails them.

mod support;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// Longest a client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(240);
/// Longest a permanent error may keep a Python client's `flush()` busy: one
/// request, no retries.
const REFUSAL_SECONDS: f64 = 5.0;

struct Tools {
    dir: PathBuf,
    python: PathBuf,
    legacy_python: PathBuf,
}

/// The installed clients, or None when skipped on purpose.
fn tools() -> Option<Tools> {
    if std::env::var("TEST_CLIENTS_SKIP").as_deref() == Ok("1") {
        eprintln!("TEST_CLIENTS_SKIP=1: client library tests skipped");
        return None;
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clients");
    let venvs = std::env::var("TRACKGATE_CLIENTS_VENVS").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/trackgate"),
        PathBuf::from,
    );
    let t = Tools {
        python: venvs.join("clients-venv/bin/python"),
        legacy_python: venvs.join("clients-legacy-venv/bin/python"),
        dir,
    };
    for needed in [
        t.dir.join("node_modules/@segment/analytics-next"),
        t.dir.join("node_modules/@rudderstack/rudder-sdk-node"),
        t.python.clone(),
        t.legacy_python.clone(),
    ] {
        assert!(
            needed.exists(),
            "{} is missing: run tests/clients/setup.sh (or set TEST_CLIENTS_SKIP=1)",
            needed.display()
        );
    }
    Some(t)
}

/// Runs a client script to its end and returns the JSON lines it printed.
fn run_script(mut cmd: Command, envs: &[(&str, String)]) -> Vec<Value> {
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let what = format!("{cmd:?}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let deadline = Instant::now() + SCRIPT_TIMEOUT;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("{what} did not finish within {SCRIPT_TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{what} failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// Starts the broker and a gateway whose web source allows `page_origin`,
/// with `extra` configuration.
fn start(page_origin: &str, extra: &str) -> (Broker, Gateway) {
    let broker = Broker::start();
    let brokers = broker.addr();
    let origin = page_origin.to_string();
    let gw = Gateway::spawn_logged(
        |listen, admin| config_toml(listen, admin, &brokers, extra).replace(ORIGIN, &origin),
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    (broker, gw)
}

/// Asserts that the visitor's three events (a track, a page or screen, an
/// identify) are in Kafka, each once, and returns the row of the
/// compatibility table.
fn assert_delivered(records: &[Record], line: &Value) -> String {
    let visitor = line["visitor"].as_str().expect("visitor");
    let mine: Vec<&Record> = records
        .iter()
        .filter(|r| r.value["anonymousId"] == visitor)
        .collect();
    let types: HashSet<&str> = mine
        .iter()
        .filter_map(|r| r.value["type"].as_str())
        .collect();
    assert_eq!(mine.len(), 3, "{line}: {mine:#?}");
    assert!(
        types.contains("track") && types.contains("identify"),
        "{line}: {types:?}"
    );
    assert!(
        types.contains("page") || types.contains("screen"),
        "{line}: {types:?}"
    );
    for r in &mine {
        assert_eq!(r.header("source"), Some("web"), "{line}");
        let track = r.value["type"] == "track";
        if track {
            assert_eq!(r.value["event"], "Order Completed", "{line}");
            assert_eq!(r.value["properties"]["total"], 12.5, "{line}");
            assert_eq!(r.topic, EVENTS);
        }
        assert!(r.value.get("writeKey").is_none());
    }
    format!(
        "| {} | {} | {} | {} events delivered |",
        line["client"].as_str().unwrap_or_default(),
        line["version"].as_str().unwrap_or_default(),
        line["mode"].as_str().unwrap_or_default(),
        mine.len()
    )
}

fn accounting_balances(gw: &Gateway) {
    let a = settle(gw);
    a.assert_identities();
    assert_eq!(a.rejected, 0.0, "{a:?}");
}

#[test]
fn server_libraries_deliver_every_event_and_stop_at_a_permanent_error() {
    let Some(t) = tools() else { return };
    let (broker, gw) = start(ORIGIN, "");
    let envs = [
        ("TRACKGATE_URL", format!("http://{}", gw.addr)),
        ("TRACKGATE_WRITE_KEY", WRITE_KEY.to_string()),
    ];
    let run = format!("{}", std::process::id());
    let mut lines = Vec::new();
    let mut node = Command::new("node");
    node.current_dir(&t.dir).args(["node_clients.mjs", &run]);
    lines.extend(run_script(node, &envs));
    for (python, lib) in [
        (&t.python, "segment"),
        (&t.python, "rudderstack"),
        (&t.legacy_python, "legacy"),
    ] {
        let mut py = Command::new(python);
        py.current_dir(&t.dir)
            .args(["python_clients.py", lib, &run]);
        lines.extend(run_script(py, &envs));
    }
    let (delivering, refused): (Vec<&Value>, Vec<&Value>) =
        lines.iter().partition(|l| l.get("visitor").is_some());
    // node: 3 modes; python: 3 libraries x 2 modes; 3 events each.
    assert_eq!(delivering.len(), 9, "{lines:#?}");
    let records = consume_all(&broker.addr(), delivering.len() * 3);
    let mut rows = Vec::new();
    for line in &delivering {
        assert_eq!(line["errors"], Value::Array(vec![]), "{line}");
        rows.push(assert_delivered(&records, line));
    }
    // An unknown write key: the Python libraries read `code`, report the
    // error once and return, no retry.
    assert_eq!(refused.len(), 3, "{lines:#?}");
    for line in &refused {
        let errors = line["errors"].as_array().expect("errors");
        assert_eq!(errors.len(), 1, "{line}");
        assert!(
            errors[0]
                .as_str()
                .unwrap_or("")
                .contains("invalid_write_key"),
            "{line}"
        );
        assert!(
            line["seconds"].as_f64().unwrap_or(f64::MAX) < REFUSAL_SECONDS,
            "{line}"
        );
        rows.push(format!(
            "| {} | {} | unknown write key | one 401, read as permanent |",
            line["client"].as_str().unwrap_or_default(),
            line["version"].as_str().unwrap_or_default()
        ));
    }
    assert_eq!(
        gw.metric("trackgate_http_requests_total", &[("status", "401")]),
        3.0
    );
    accounting_balances(&gw);
    eprintln!("{}", rows.join("\n"));
}

/// Runs browser_clients.mjs (`scenarios` as its SCENARIOS) against a fresh
/// gateway with `extra` configuration; returns its lines, the records of
/// the broker and the gateway.
fn run_browsers(t: &Tools, scenarios: &str, extra: &str) -> (Vec<Value>, Vec<Record>, Gateway) {
    let page_port = free_port();
    let page_origin = format!("http://127.0.0.1:{page_port}");
    let (broker, gw) = start(&page_origin, extra);
    let envs = [
        ("TRACKGATE_URL", format!("http://{}", gw.addr)),
        ("TRACKGATE_WRITE_KEY", WRITE_KEY.to_string()),
        ("PAGE_PORT", page_port.to_string()),
        ("SCENARIOS", scenarios.to_string()),
    ];
    let mut node = Command::new("node");
    node.current_dir(&t.dir)
        .args(["browser_clients.mjs", &std::process::id().to_string()]);
    let lines = run_script(node, &envs);
    let records = consume_all(&broker.addr(), lines.len() * 3);
    (lines, records, gw)
}

#[test]
fn browser_libraries_deliver_every_event_from_chromium() {
    let Some(t) = tools() else { return };
    let (lines, records, gw) = run_browsers(&t, "all", "");
    assert_eq!(lines.len(), 5, "{lines:#?}");
    let mut rows = Vec::new();
    for line in &lines {
        assert_eq!(line["problems"], Value::Array(vec![]), "{line}");
        let paths: Vec<&str> = line["requests"]
            .as_array()
            .expect("requests")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        let want = match line["mode"].as_str().unwrap_or_default() {
            "batching" => "POST /v1/b",
            "beacon" => "POST /beacon/v1/batch",
            "xhr batch" => "POST /v1/batch",
            "xhr per event" => "POST /v1/track",
            _ => "POST /v1/t",
        };
        assert!(paths.contains(&want), "{line}");
        rows.push(assert_delivered(&records, line));
    }
    accounting_balances(&gw);
    eprintln!("{}", rows.join("\n"));
}

#[test]
fn browser_libraries_retry_through_429s_with_their_retry_headers() {
    let Some(t) = tools() else { return };
    // One request per second from the page's address: most first attempts
    // get 429, and each retry carries the library's retry headers.
    let limits = "[rate_limit]\nper_ip_rps = 1\nper_ip_burst = 1\n";
    let (lines, records, gw) = run_browsers(&t, "retries", limits);
    assert_eq!(lines.len(), 2, "{lines:#?}");
    for line in &lines {
        assert_eq!(line["problems"], Value::Array(vec![]), "{line}");
        assert!(line["throttled"].as_u64().unwrap_or(0) > 0, "{line}");
        assert!(line["retries"].as_u64().unwrap_or(0) > 0, "{line}");
        assert_delivered(&records, line);
    }
    assert!(gw.metric("trackgate_rate_limited_total", &[]) > 0.0);
    accounting_balances(&gw);
}
