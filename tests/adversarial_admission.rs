//! Admission against an adversary, end to end against the real gateway
//! binary and the real broker. The write key is public, so every test
//! plays a visitor who has it: a batch `context` that multiplies what a
//! request writes, an event too large for the producer, slow bodies from a
//! few addresses, the addresses of one IPv6 /64, connections that never
//! finish their head, and budgets after a reload. Each asserts that
//! another client is still served, and what was written.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// How long a well-behaved client may wait for its answer while others
/// hold slow requests (the attacks held it for seconds: the header or body
/// timeout).
const SERVED_WITHIN: Duration = Duration::from_secs(2);
/// How long a test waits for an answer that must come (liveness).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Starts a gateway on the standard config edited by `edit`, with `extra`.
fn start_edited(brokers: &str, extra: &str, edit: impl Fn(String) -> String) -> Gateway {
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trackgate.toml");
    std::fs::write(&path, edit(config_toml(listen, admin, brokers, extra))).unwrap();
    let g = Gateway::spawn_config(dir, path, listen, admin);
    g.wait_ready(Duration::from_secs(30));
    g
}

/// Adds lines to the `[server]` section of the standard config.
fn server_keys(lines: &'static str) -> impl Fn(String) -> String {
    move |t: String| t.replacen("[server]\n", &format!("[server]\n{lines}\n"), 1)
}

/// Makes the test's own connections (from 127.0.0.1) a trusted proxy, so
/// `X-Forwarded-For` names the client.
fn trust_loopback(t: String) -> String {
    t.replace(
        r#"trusted_proxies = ["10.9.9.9"]"#,
        r#"trusted_proxies = ["10.9.9.9", "127.0.0.1"]"#,
    )
}

/// A TCP connection to `addr` from the loopback address `local`
/// (127.0.0.0/8 is all loopback: each address is a distinct client).
fn connect_from(local: [u8; 4], addr: SocketAddr) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    s.bind(&SocketAddr::from((local, 0)).into()).unwrap();
    s.connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let s: TcpStream = s.into();
    s.set_read_timeout(Some(ANSWER_WITHIN)).unwrap();
    s
}

/// The head of a batch POST announcing `len` body bytes.
fn batch_head(len: usize, extra_headers: &str) -> String {
    format!(
        "POST /v1/batch HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nauthorization: {}\r\n{extra_headers}content-length: {len}\r\n\r\n",
        basic(WRITE_KEY)
    )
}

/// The status of the response on `s`, if one comes within `within`.
fn status_within(s: &mut TcpStream, within: Duration) -> Option<u16> {
    s.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while !buf.windows(2).any(|w| w == b"\r\n") {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    String::from_utf8_lossy(&buf)
        .split(' ')
        .nth(1)?
        .parse()
        .ok()
}

/// A well-behaved batch of one event, and how long its answer took.
fn timed_post(gw: &Gateway, id: &str) -> (Response, Duration) {
    let started = Instant::now();
    let r = gw.post(
        "/v1/batch",
        &json!({"batch":[{"type":"track","event":"Fine","anonymousId":id}]}).to_string(),
    );
    (r, started.elapsed())
}

/// Bytes of every file under `dir`.
fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| match e.metadata() {
                    Ok(m) if m.is_dir() => dir_bytes(&e.path()),
                    Ok(m) => m.len(),
                    Err(_) => 0,
                })
                .sum()
        })
        .unwrap_or(0)
}

/// A batch of `events` tiny events with a context of `keys` short keys,
/// each with a value of `value_len` bytes.
fn amplifying_batch(events: usize, keys: usize, value_len: usize) -> String {
    let value = "v".repeat(value_len);
    let event = r#"{"type":"track","event":"e","anonymousId":"a"}"#;
    let mut body = String::from(r#"{"batch":["#);
    for i in 0..events {
        if i > 0 {
            body.push(',');
        }
        body.push_str(event);
    }
    body.push_str(r#"],"context":{"#);
    for i in 0..keys {
        if i > 0 {
            body.push(',');
        }
        body.push_str(&format!(r#""k{i:07}":"{value}""#));
    }
    body.push_str("}}");
    body
}

#[test]
fn a_batch_context_cannot_multiply_what_a_request_writes() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let spool = gw.dir().join("trackgate-spool");
    let before = dir_bytes(&spool);

    // The request of the finding: ~500 KB, 2,500 tiny events and a context
    // of ~18,700 short keys (it wrote 1,870 times its size to the spool).
    let body = amplifying_batch(2_500, 18_700, 7);
    assert!((500_000..512_000).contains(&body.len()), "{}", body.len());
    let r = gw.post("/v1/batch", &body);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "payload_too_large");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or_default()
            .contains("limits.max_context"),
        "{}",
        r.json()
    );

    // A context within its limits still multiplies: 2,500 events × 11 KB
    // of context is ~30 MB of records, over limits.max_request_output_bytes.
    let r = gw.post("/v1/batch", &amplifying_batch(2_500, 200, 40));
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert!(r.json()["message"]
        .as_str()
        .unwrap_or_default()
        .contains("limits.max_request_output_bytes"));

    assert_eq!(gw.metric("trackgate_events_received_total", &[]), 0.0);
    let written = dir_bytes(&spool).saturating_sub(before);
    assert!(written < 64 * 1024, "{written} bytes written to the spool");

    // An ordinary context is merged into every event and answered 200.
    let r = gw.post(
        "/v1/batch",
        &json!({
            "batch": [
                {"type":"track","event":"A","anonymousId":"ctx-1"},
                {"type":"track","event":"B","anonymousId":"ctx-1","context":{"locale":"de"}}
            ],
            "context": {"library":{"name":"analytics-node","version":"1"},"locale":"en"}
        })
        .to_string(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let recs = consume(&broker.addr(), &[EVENTS], 2, ANSWER_WITHIN);
    assert_eq!(recs.len(), 2);
    for rec in &recs {
        assert_eq!(rec.value["context"]["library"]["name"], "analytics-node");
    }
}

#[test]
fn an_event_the_producer_cannot_send_is_refused_not_answered_200_and_lost() {
    let broker = Broker::start();
    let gw = Gateway::start_with(
        &broker.addr(),
        "[kafka.properties]\n\"message.max.bytes\" = \"200000\"\n",
    );
    let big = "x".repeat(300_000);
    let single = json!({"anonymousId":"big","event":"Huge","properties":{"blob":big}}).to_string();
    let r = gw.post("/v1/track", &single);
    assert_eq!(r.status, 413, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["error"], "event_too_large");

    // In a batch the event is rejected on its own, with its reason, and
    // its neighbour goes through.
    let batch = json!({"batch":[
        {"type":"track","anonymousId":"big","event":"Huge","properties":{"blob":big}},
        {"type":"track","anonymousId":"small","event":"Fine"}
    ]})
    .to_string();
    let r = gw.post("/v1/batch", &batch);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"accepted":1,"rejected":1}));

    // The batch context counts toward the event's size: 20 KB of event and
    // 14 KB of context is a record over limits.max_event_bytes (32 KiB).
    let ctx: serde_json::Map<String, Value> = (0..14)
        .map(|i| (format!("c{i}"), Value::String("y".repeat(1000))))
        .collect();
    let batch = json!({"batch":[
        {"type":"track","anonymousId":"merged","event":"Big","properties":{"p":"z".repeat(20_000)}},
        {"type":"track","anonymousId":"merged","event":"Fine"}
    ], "context": ctx})
    .to_string();
    let r = gw.post("/v1/batch", &batch);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"accepted":1,"rejected":1}));

    let recs = consume(&broker.addr(), &ALL_TOPICS, 4, ANSWER_WITHIN);
    let reasons: Vec<&str> = recs
        .iter()
        .filter(|r| r.topic == INVALID)
        .filter_map(|r| r.value["reason"].as_str())
        .collect();
    assert_eq!(reasons, ["event_too_large", "event_too_large"], "{recs:#?}");
    assert_eq!(
        gw.metric("trackgate_spool_undeliverable_total", &[]),
        0.0,
        "nothing answered 200 was refused by the producer"
    );
}

#[test]
fn the_configuration_refuses_events_larger_than_the_producer_sends() {
    let check = |extra: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            config_toml(free_port(), free_port(), "127.0.0.1:1", extra),
        )
        .unwrap();
        let out = Command::new(gateway_bin())
            .arg("--config")
            .arg(&path)
            .arg("check-config")
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // librdkafka's default message.max.bytes is 1,000,000.
    let (code, err) = check("[limits]\nmax_event_bytes = 2000000\nmax_request_bytes = 4000000\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("limits.max_event_bytes"), "{err}");
    assert!(err.contains("message.max.bytes"), "{err}");
    let lowered = "[kafka.properties]\n\"message.max.bytes\" = \"100000\"\n";
    let (code, err) = check(&format!("[limits]\nmax_event_bytes = 90000\n{lowered}"));
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("limits.max_event_bytes"), "{err}");
    let (code, err) = check(&format!("[limits]\nmax_event_bytes = 60000\n{lowered}"));
    assert_eq!(code, Some(0), "{err}");
}

#[test]
fn slow_bodies_from_four_addresses_leave_room_for_a_fifth() {
    let broker = Broker::start();
    // Room for exactly 200 bodies of 500 KiB: four addresses holding 50
    // each took all of it; an address's share is 16 MiB (32 bodies).
    let gw = start_edited(
        &broker.addr(),
        "",
        server_keys("max_buffered_body_bytes = 102400000"),
    );
    let (_, quiet) = timed_post(&gw, "before");
    let mut held = Vec::new();
    let mut refused = 0;
    for a in 2..=5u8 {
        for _ in 0..52 {
            let mut s = connect_from([127, 0, 0, a], gw.addr);
            s.write_all(batch_head(512_000, "").as_bytes()).unwrap();
            s.write_all(b"{\"batch\":[").unwrap();
            held.push(s);
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    for s in &mut held {
        if status_within(s, Duration::from_millis(20)) == Some(503) {
            refused += 1;
        }
    }
    let (r, took) = timed_post(&gw, "during");
    eprintln!(
        "well-behaved client: {quiet:?} alone, {took:?} while four addresses hold slow bodies \
         ({refused} of theirs refused)"
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(took < SERVED_WITHIN, "{took:?}");
    assert!(refused >= 4 * (52 - 32), "{refused} refused");
    assert!(
        gw.metric(
            "trackgate_rate_limited_total",
            &[("limiter", "per_ip_body_bytes")]
        ) >= 1.0
    );
    drop(held);
}

#[test]
fn the_addresses_of_one_ipv6_64_share_one_allowance_of_requests() {
    let broker = Broker::start();
    let gw = start_edited(&broker.addr(), "", |t| {
        server_keys("max_requests_per_ip = 2")(trust_loopback(t))
    });
    let mut held = Vec::new();
    for i in 1..=10 {
        let mut s = connect_from([127, 0, 0, 1], gw.addr);
        let xff = format!("x-forwarded-for: 2001:db8:1:2::{i:x}\r\n");
        s.write_all(batch_head(100, &xff).as_bytes()).unwrap();
        held.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let mut refused = 0;
    for s in &mut held {
        if status_within(s, Duration::from_millis(50)) == Some(503) {
            refused += 1;
        }
    }
    assert_eq!(refused, 8, "ten addresses of one /64 hold two requests");
    // Another /64 is served.
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("authorization", &basic(WRITE_KEY)),
            ("x-forwarded-for", "2001:db8:1:3::1"),
        ],
        json!({"batch":[{"type":"track","event":"Fine","anonymousId":"v6"}]})
            .to_string()
            .as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    drop(held);
}

#[test]
fn connections_that_never_finish_their_head_do_not_delay_another_address() {
    let broker = Broker::start();
    let gw = start_edited(&broker.addr(), "", server_keys("max_connections = 100"));
    let mut slow = Vec::new();
    for _ in 0..100 {
        let mut s = connect_from([127, 0, 0, 2], gw.addr);
        let _ = s.write_all(b"POST /v1/batch HTTP/1.1\r\nhost: gw\r\n");
        slow.push(s);
    }
    std::thread::sleep(Duration::from_millis(300));
    let (r, took) = timed_post(&gw, "other-address");
    eprintln!("another address, 100 slow heads held: answered in {took:?}");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert!(took < SERVED_WITHIN, "{took:?}");
    assert!(
        gw.metric(
            "trackgate_rate_limited_total",
            &[("limiter", "per_ip_connections")]
        ) >= 1.0
    );
    drop(slow);
}

#[test]
fn body_budgets_follow_a_reloaded_request_limit() {
    let broker = Broker::start();
    let limits = |max: u32| {
        format!("[limits]\nmax_request_bytes = {max}\nmax_request_output_bytes = 1048576\n")
    };
    let gw = start_edited(
        &broker.addr(),
        &limits(65_536),
        server_keys("max_buffered_body_bytes = 2097152\nmax_buffered_body_bytes_per_ip = 1048576"),
    );
    let (r, _) = timed_post(&gw, "before-reload");
    assert_eq!(r.status, 200);
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    std::fs::write(
        &gw.config_path,
        text.replace(&limits(65_536), &limits(1_000_000)),
    )
    .unwrap();
    let deadline = Instant::now() + ANSWER_WITHIN;
    loop {
        let r = http(gw.admin, "GET", "/config", &[], b"").unwrap();
        if r.json()["version"] == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "not reloaded: {}", r.json());
        std::thread::sleep(Duration::from_millis(100));
    }
    // One body of ~1 MB, allowed since the reload, holds most of the
    // address's share: under the start-up limit it was held as 64 KiB.
    let mut big = connect_from([127, 0, 0, 2], gw.addr);
    big.write_all(batch_head(1_000_000, "").as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut next = connect_from([127, 0, 0, 2], gw.addr);
    next.write_all(batch_head(100_000, "").as_bytes()).unwrap();
    assert_eq!(status_within(&mut next, ANSWER_WITHIN), Some(503));
    // Another address is served.
    let (r, _) = timed_post(&gw, "elsewhere");
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    drop(big);
}
