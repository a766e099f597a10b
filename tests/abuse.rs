//! Abuse protection end to end, against the real gateway binary and the real
//! broker: rate limits, the in-flight cap, hostile HTTP (slow, pipelined,
//! half-closed, oversized, compressed bombs, malformed JSON) and bot events.
//! Assertions are on statuses, bodies, records and counters, never on time.

mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// How long a test waits for an answer that must come (a liveness bound,
/// not a measurement).
const ANSWER_WITHIN: Duration = Duration::from_secs(20);

/// Starts a gateway whose config text is edited by `edit` (for keys of
/// sections the standard config already has, like `[server]`).
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

/// A TCP connection to `addr` from the loopback address `local`
/// (127.0.0.0/8 is all loopback: each address is a distinct client IP).
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

fn connect(addr: SocketAddr) -> TcpStream {
    connect_from([127, 0, 0, 1], addr)
}

/// Request bytes: POST with the web source's key and a content length.
fn post_bytes(path: &str, body: &str, extra_headers: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\nauthorization: {}\r\n{extra_headers}content-length: {}\r\n\r\n{body}",
        basic(WRITE_KEY),
        body.len()
    )
    .into_bytes()
}

/// One response read off a kept-alive connection (bodies have a length).
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }
}

/// Reads one response; `None` when the server closed the connection first.
fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Answer> {
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let start = head_end + 4;
    while buf.len() < start + len {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    let body = buf[start..start + len].to_vec();
    buf.drain(..start + len);
    Some(Answer {
        status,
        headers,
        body,
    })
}

/// Whether the server closes the connection (end of stream or reset)
/// before `ANSWER_WITHIN`; panics if it stays open that long.
fn closed_by_server(s: &mut TcpStream) -> bool {
    let mut b = [0u8; 1024];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                panic!("connection still open after {ANSWER_WITHIN:?}")
            }
            Err(_) => return true,
        }
    }
}

fn track(id: &str) -> String {
    json!({"type":"track","anonymousId": id,"event":"Flood"}).to_string()
}

#[test]
fn a_flooding_client_gets_429s_while_another_keeps_getting_200s_and_its_events_arrive() {
    const BURST: usize = 10;
    const FLOOD: usize = 10 * BURST;
    const GOOD: usize = BURST - 2;
    let broker = Broker::start();
    let gw = Gateway::start_with(
        &broker.addr(),
        &format!("[rate_limit]\nper_ip_rps = 5\nper_ip_burst = {BURST}\n"),
    );
    let addr = gw.addr;
    // The flooder: ten times its burst, as fast as it can, one connection
    // per request, from 127.0.0.2.
    let flooder = std::thread::spawn(move || {
        (0..FLOOD)
            .map(|i| {
                let mut s = connect_from([127, 0, 0, 2], addr);
                s.write_all(&post_bytes("/v1/track", &track(&format!("flood-{i}")), ""))
                    .unwrap();
                read_answer(&mut s, &mut Vec::new()).expect("an answer")
            })
            .collect::<Vec<_>>()
    });
    // The well-behaved client, from 127.0.0.3, at the same time.
    let mut good_statuses = Vec::new();
    for i in 0..GOOD {
        let mut s = connect_from([127, 0, 0, 3], addr);
        s.write_all(&post_bytes("/v1/track", &track(&format!("good-{i}")), ""))
            .unwrap();
        good_statuses.push(
            read_answer(&mut s, &mut Vec::new())
                .expect("an answer")
                .status,
        );
    }
    let flood = flooder.join().unwrap();

    assert_eq!(good_statuses, vec![200; GOOD]);
    let limited: Vec<&Answer> = flood.iter().filter(|a| a.status == 429).collect();
    let served = flood.iter().filter(|a| a.status == 200).count();
    assert_eq!(limited.len() + served, FLOOD, "only 200 and 429 answers");
    assert!(!limited.is_empty(), "the flooder was never limited");
    for a in &limited {
        let secs: u32 = a.header("retry-after").unwrap().parse().unwrap();
        assert!(secs >= 1);
        assert_eq!(a.json()["error"], "rate_limited");
        assert_eq!(a.json()["success"], false);
    }

    // Every good event and exactly the flooder's served ones reached Kafka.
    let recs = consume(&broker.addr(), &[EVENTS], GOOD + served, ANSWER_WITHIN);
    let ids: Vec<&str> = recs
        .iter()
        .filter_map(|r| r.value["anonymousId"].as_str())
        .collect();
    assert_eq!(ids.iter().filter(|i| i.starts_with("good-")).count(), GOOD);
    assert_eq!(
        ids.iter().filter(|i| i.starts_with("flood-")).count(),
        served
    );
    // Refused requests' events were never received.
    assert_eq!(
        gw.metric("trackgate_rate_limited_total", &[("limiter", "ip")]),
        limited.len() as f64
    );
    assert_eq!(
        gw.metric("trackgate_events_received_total", &[]),
        (GOOD + served) as f64
    );
}

#[test]
fn a_source_over_its_event_rate_gets_429_and_other_sources_do_not() {
    const BATCH: usize = 20;
    let broker = Broker::start();
    let gw = start_edited(
        &broker.addr(),
        &format!("[limits]\nmax_batch_events = {BATCH}\n"),
        |t| {
            t.replacen(
                "id = \"app\"\n",
                "id = \"app\"\nevents_per_second = 10\n",
                1,
            )
        },
    );
    let batch = |src: &str, n: usize| {
        let events: Vec<Value> = (0..n)
            .map(|i| json!({"type":"track","anonymousId": format!("{src}-{i}"),"event":"x"}))
            .collect();
        json!({ "batch": events }).to_string()
    };
    let app_auth = basic(APP_WRITE_KEY);
    let mut app = Vec::new();
    let mut web = Vec::new();
    for round in 0..5 {
        let r = gw.request(
            "POST",
            "/v1/batch",
            &[
                ("content-type", "application/json"),
                ("authorization", &app_auth),
            ],
            batch(&format!("app{round}"), BATCH).as_bytes(),
        );
        app.push(r);
        web.push(
            gw.post("/v1/batch", &batch(&format!("web{round}"), BATCH))
                .status,
        );
    }
    assert_eq!(web, vec![200; 5], "the uncapped source is never limited");
    assert_eq!(app[0].status, 200, "an idle limiter takes a full batch");
    let limited: Vec<_> = app.iter().filter(|r| r.status == 429).collect();
    let served = app.iter().filter(|r| r.status == 200).count();
    assert_eq!(limited.len() + served, app.len());
    assert!(!limited.is_empty(), "100 events at 10/s were never limited");
    for r in &limited {
        assert!(r.header("retry-after").unwrap().parse::<u32>().unwrap() >= 1);
        assert_eq!(r.json()["error"], "rate_limited");
    }
    let recs = consume(
        &broker.addr(),
        &[EVENTS],
        (5 + served) * BATCH,
        ANSWER_WITHIN,
    );
    let from_app = recs
        .iter()
        .filter(|r| r.header("source") == Some("app"))
        .count();
    assert_eq!(from_app, served * BATCH);
    assert_eq!(recs.len() - from_app, 5 * BATCH);
    assert_eq!(
        gw.metric("trackgate_rate_limited_total", &[("limiter", "source")]),
        limited.len() as f64
    );
}

#[test]
fn requests_over_the_in_flight_cap_get_503_overloaded_at_once() {
    let broker = Broker::start();
    let gw = Gateway::start_with(
        &broker.addr(),
        "[rate_limit]\nmax_concurrent_requests = 2\n",
    );
    let body = r#"{"anonymousId":"held","event":"Held"}"#;
    // Two requests whose bodies are still on their way hold both slots.
    let mut held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(gw.addr);
            let req = post_bytes("/v1/track", body, "");
            s.write_all(&req[..req.len() - 5]).unwrap();
            s
        })
        .collect();
    // A third is refused without waiting. (The held requests reach the
    // handler asynchronously, hence the retries until both slots are taken;
    // up to 20 s, for a machine busy with the other tests' gateways.)
    let mut refused = None;
    for _ in 0..800 {
        let r = gw.request("GET", "/v1/nothing-here", &[], b"");
        if r.status == 503 {
            refused = Some(r);
            break;
        }
        assert_eq!(r.status, 404);
        std::thread::sleep(Duration::from_millis(25));
    }
    let r = refused.expect("a request over the cap was refused");
    assert_eq!(r.json()["error"], "overloaded");
    assert!(r.header("retry-after").is_some());
    assert!(
        gw.metric(
            "trackgate_rate_limited_total",
            &[("limiter", "concurrency")]
        ) >= 1.0
    );

    // The held requests complete normally, and their slots come back.
    for s in &mut held {
        let req = post_bytes("/v1/track", body, "");
        s.write_all(&req[req.len() - 5..]).unwrap();
        assert_eq!(read_answer(s, &mut Vec::new()).unwrap().status, 200);
    }
    drop(held);
    let mut after = 0;
    for _ in 0..200 {
        after = gw.post("/v1/track", body).status;
        if after == 200 {
            break;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    assert_eq!(after, 200);
    let recs = consume(&broker.addr(), &[EVENTS], 3, ANSWER_WITHIN);
    assert_eq!(recs.len(), 3);
}

#[test]
fn slow_idle_and_oversized_connections_are_cut_off() {
    let broker = Broker::start();
    let gw = start_edited(
        &broker.addr(),
        "",
        server_keys("header_read_timeout_ms = 1000\nkeep_alive_timeout_ms = 500\nbody_read_timeout_ms = 1000\nmax_header_bytes = 8192"),
    );

    // Slowloris: a request head dripped a byte at a time is cut off.
    let mut s = connect(gw.addr);
    s.write_all(b"POST /v1/track HTTP/1.1\r\nhost: gw\r\n")
        .unwrap();
    let mut dripped = 0;
    let cut = loop {
        std::thread::sleep(Duration::from_millis(200));
        if s.write_all(b"x").is_err() {
            break true;
        }
        dripped += 1;
        // Far past the 1 s head timeout: the server must have closed.
        if dripped >= 50 {
            break closed_by_server(&mut s);
        }
        let mut probe = [0u8; 64];
        s.set_nonblocking(true).unwrap();
        let r = s.read(&mut probe);
        s.set_nonblocking(false).unwrap();
        if matches!(r, Ok(0)) || matches!(&r, Err(e) if e.kind() != std::io::ErrorKind::WouldBlock)
        {
            break true;
        }
    };
    assert!(cut, "a dripping request head was never cut off");
    assert!(dripped < 50, "cut off only after {dripped} bytes");

    // A connection that never sends anything is closed.
    let mut silent = connect(gw.addr);
    assert!(closed_by_server(&mut silent));

    // Keep-alive: two requests on one connection, then it goes idle and is
    // closed by the server.
    let mut s = connect(gw.addr);
    let mut buf = Vec::new();
    for i in 0..2 {
        s.write_all(&post_bytes("/v1/track", &track(&format!("ka-{i}")), ""))
            .unwrap();
        assert_eq!(read_answer(&mut s, &mut buf).unwrap().status, 200);
    }
    assert!(closed_by_server(&mut s));

    // A body that stalls gets 408.
    let mut s = connect(gw.addr);
    let req = post_bytes("/v1/track", &track("stalled"), "");
    s.write_all(&req[..req.len() - 10]).unwrap();
    let a = read_answer(&mut s, &mut Vec::new()).expect("an answer");
    assert_eq!(a.status, 408);
    assert_eq!(a.json()["error"], "body_timeout");

    // A request head over server.max_header_bytes: 431, nothing served.
    let mut s = connect(gw.addr);
    let big = format!("x-padding: {}\r\n", "p".repeat(10 * 1024));
    s.write_all(&post_bytes("/v1/track", &track("big-head"), &big))
        .unwrap();
    let a = read_answer(&mut s, &mut Vec::new()).expect("an answer");
    assert_eq!(a.status, 431);

    // Only the two keep-alive events were produced.
    let recs = consume(&broker.addr(), &[EVENTS], 2, ANSWER_WITHIN);
    let mut ids: Vec<&str> = recs
        .iter()
        .filter_map(|r| r.value["anonymousId"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["ka-0", "ka-1"]);
}

#[test]
fn pipelined_and_half_closed_requests_are_answered() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());

    // Two requests in one write: two answers, in order.
    let mut s = connect(gw.addr);
    let mut both = post_bytes("/v1/track", &track("piped-1"), "");
    both.extend_from_slice(b"GET /v1/nothing HTTP/1.1\r\nhost: gw\r\n\r\n");
    both.extend_from_slice(&post_bytes("/v1/page", r#"{"anonymousId":"piped-3"}"#, ""));
    s.write_all(&both).unwrap();
    let mut buf = Vec::new();
    let statuses: Vec<u16> = (0..3)
        .map(|_| read_answer(&mut s, &mut buf).expect("an answer").status)
        .collect();
    assert_eq!(statuses, vec![200, 404, 200]);

    // A client that shuts its write side after sending still gets its answer.
    let mut s = connect(gw.addr);
    s.write_all(&post_bytes("/v1/track", &track("half-closed"), ""))
        .unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let a = read_answer(&mut s, &mut Vec::new()).expect("an answer after half-close");
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["accepted"], 1);

    let recs = consume(&broker.addr(), &[EVENTS, PAGEVIEWS], 3, ANSWER_WITHIN);
    let mut ids: Vec<&str> = recs
        .iter()
        .filter_map(|r| r.value["anonymousId"].as_str())
        .collect();
    ids.sort();
    assert_eq!(ids, vec!["half-closed", "piped-1", "piped-3"]);
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_decompression_bomb_is_refused_with_413_without_inflating_it() {
    // 16 MiB of zeros (32 times the request cap) from about 16 KiB of gzip.
    const INFLATED: usize = 16 * 1024 * 1024;
    // Peak memory may grow by the request cap and buffers, not by the bomb.
    const ALLOWED_GROWTH_KIB: u64 = 8 * 1024;
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let mut payload = br#"{"batch":[{"type":"page","anonymousId":"bomb"}],"pad":""#.to_vec();
    payload.resize(INFLATED, b'0');
    let bomb = gzip(&payload);
    assert!(bomb.len() < 64 * 1024);
    drop(payload);
    let auth = basic(WRITE_KEY);
    // Warm up first with ordinary gzip requests near the request cap, so the
    // baseline already holds what any large request costs once (allocator
    // pages of the worker threads, body buffers); what is left is the bomb's.
    // The pad does not compress, so the warm-up is also inflated off the
    // reactor like the bomb (`http::offload`), and the threads this starts
    // are in the baseline too.
    let mut warm = br#"{"batch":[{"type":"page","anonymousId":"warm"}],"pad":""#.to_vec();
    let mut x: u32 = 0x9e37_79b9;
    while warm.len() < 400 * 1024 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        warm.push(b"abcdefghijklmnopqrstuvwxyz0123456789"[(x % 36) as usize]);
    }
    warm.extend_from_slice(br#""}"#);
    let warm = gzip(&warm);
    assert!(
        warm.len() * trackgate::http::body::TYPICAL_COMPRESSION_RATIO
            >= trackgate::http::offload::OFFLOAD_BYTES
    );
    for _ in 0..4 {
        let r = gw.request(
            "POST",
            "/v1/batch",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
                ("content-encoding", "gzip"),
            ],
            &warm,
        );
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    let received = gw.metric("trackgate_events_received_total", &[]);
    let before = peak_rss_kib(gw.pid());
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("content-encoding", "gzip"),
        ],
        &bomb,
    );
    assert_eq!(r.status, 413);
    assert_eq!(r.json()["error"], "payload_too_large");
    let after = peak_rss_kib(gw.pid());
    assert!(
        after.saturating_sub(before) < ALLOWED_GROWTH_KIB,
        "peak RSS grew from {before} KiB to {after} KiB"
    );
    // The bomb added no event.
    assert_eq!(gw.metric("trackgate_events_received_total", &[]), received);
}

fn nested(depth: usize) -> String {
    format!("{}1{}", "[".repeat(depth), "]".repeat(depth))
}

#[test]
fn hostile_json_gets_a_clean_4xx_or_a_per_event_reason_never_a_500() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let auth = basic(WRITE_KEY);
    let send = |path: &str, body: &[u8]| {
        gw.request(
            "POST",
            path,
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
            ],
            body,
        )
    };
    let page = |extra: &str| format!(r#"{{"type":"page","anonymousId":"a"{extra}}}"#);

    // Request-level refusals: (path, body, status, code).
    let mut utf8_batch = br#"{"batch":[{"type":"page","anonymousId":""#.to_vec();
    utf8_batch.extend_from_slice(b"\xff\xfe\"}]}");
    let mut utf8_single = br#"{"anonymousId":""#.to_vec();
    utf8_single.extend_from_slice(b"\xc3\x28\"}");
    let deep_envelope = format!(
        r#"{{"batch":[{}],"context":{{"x":{}}}}}"#,
        page(""),
        nested(40)
    );
    // Invalid UTF-8 inside an event of a batch is that event's problem.
    let r = send("/v1/batch", &utf8_batch);
    assert_eq!(r.json(), json!({"success":true,"accepted":0,"rejected":1}));
    let refusals: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("/v1/page", utf8_single, 400, "invalid_json"),
        (
            "/v1/page",
            br#"{"anonymousId":"a","n":1e400}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/page",
            br#"{"anonymousId":"a","n":NaN}"#.to_vec(),
            400,
            "invalid_json",
        ),
        (
            "/v1/batch",
            br#"{"batch":"x"}"#.to_vec(),
            400,
            "invalid_batch",
        ),
        (
            "/v1/batch",
            br#"{"batch":null}"#.to_vec(),
            400,
            "invalid_batch",
        ),
        ("/v1/batch", b"42".to_vec(), 400, "invalid_batch"),
        (
            "/v1/batch",
            format!(r#"{{"batch":[],"batch":[{}]}}"#, page("")).into_bytes(),
            400,
            "invalid_batch",
        ),
        (
            "/v1/track",
            b"\"just a string\"".to_vec(),
            400,
            "invalid_json",
        ),
        ("/v1/batch", deep_envelope.into_bytes(), 400, "too_deep"),
        (
            "/v1/page",
            format!(r#"{{"anonymousId":"a","x":{}}}"#, nested(500)).into_bytes(),
            400,
            "invalid_json",
        ),
    ];
    for (path, body, status, code) in &refusals {
        let r = send(path, body);
        assert_eq!(
            (r.status, r.json()["error"].as_str().unwrap_or("")),
            (*status, *code),
            "{path} {}",
            String::from_utf8_lossy(body)
        );
    }

    // Per-event reasons inside an otherwise good batch. (The batch split
    // does not recurse, so nesting far past the parser's own limit of 128 is
    // one event's problem.)
    let batch = format!(
        r#"{{"batch":[{good},{deep},{absurd},{big},{huge_num},{wrong_type},7,{dup}]}}"#,
        good = page(""),
        deep = page(&format!(r#","properties":{{"x":{}}}"#, nested(40))),
        absurd = nested(10_000),
        big = page(&format!(r#","name":"{}""#, "n".repeat(40 * 1024))),
        huge_num = page(r#","properties":{"n":-1e999}"#),
        wrong_type = page(r#","properties":"nope""#),
        dup = r#"{"type":"track","anonymousId":"dup","event":"first","event":"last"}"#,
    );
    let r = send("/v1/batch", batch.as_bytes());
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json(), json!({"success":true,"accepted":2,"rejected":6}));
    // A single event nested too deep is rejected with the same reason.
    let r = send(
        "/v1/page",
        format!(r#"{{"anonymousId":"a","x":{}}}"#, nested(40)).as_bytes(),
    );
    assert_eq!(r.json(), json!({"success":true,"accepted":0,"rejected":1}));

    let recs = consume(&broker.addr(), &ALL_TOPICS, 2 + 8, ANSWER_WITHIN);
    let mut reasons: Vec<&str> = recs
        .iter()
        .filter(|r| r.topic == INVALID)
        .filter_map(|r| r.value["reason"].as_str())
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        vec![
            "event_too_large",
            "invalid_field_type",
            "invalid_json",
            "invalid_utf8",
            "not_an_object",
            "too_deep",
            "too_deep",
            "too_deep"
        ]
    );
    // Duplicate keys: the last one wins (as in JavaScript's JSON.parse).
    let dup = recs
        .iter()
        .find(|r| r.value["anonymousId"] == "dup")
        .unwrap();
    assert_eq!(dup.value["event"], "last");
    assert_eq!(
        gw.metric("trackgate_http_requests_total", &[("status", "500")]),
        0.0
    );
}

#[test]
fn bot_events_are_tagged_by_default_and_dropped_where_the_source_says_so() {
    const HEADLESS: &str = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36";
    const FIREFOX: &str =
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0";
    let broker = Broker::start();
    let gw = start_edited(&broker.addr(), "", |t| {
        t.replacen("id = \"app\"\n", "id = \"app\"\nbots = \"drop\"\n", 1)
    });
    let post = |key: &str, ua: &str, id: &str| {
        let auth = basic(key);
        gw.request(
            "POST",
            "/v1/page",
            &[
                ("content-type", "application/json"),
                ("authorization", &auth),
                ("user-agent", ua),
            ],
            json!({"anonymousId": id}).to_string().as_bytes(),
        )
        .json()
    };
    assert_eq!(
        post(WRITE_KEY, HEADLESS, "web-bot"),
        json!({"success":true,"accepted":1,"rejected":0})
    );
    assert_eq!(
        post(WRITE_KEY, FIREFOX, "web-human"),
        json!({"success":true,"accepted":1,"rejected":0})
    );
    assert_eq!(
        post(APP_WRITE_KEY, HEADLESS, "app-bot"),
        json!({"success":true,"accepted":0,"rejected":0,"dropped":1})
    );
    assert_eq!(
        post(APP_WRITE_KEY, FIREFOX, "app-human"),
        json!({"success":true,"accepted":1,"rejected":0})
    );
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 3, ANSWER_WITHIN);
    let bot_flag = |id: &str| {
        recs.iter()
            .find(|r| r.value["anonymousId"] == id)
            .map(|r| r.value["context"].get("bot").cloned())
    };
    assert_eq!(recs.len(), 3, "{recs:#?}");
    assert_eq!(bot_flag("web-bot"), Some(Some(json!(true))));
    assert_eq!(bot_flag("web-human"), Some(None));
    assert_eq!(bot_flag("app-human"), Some(None));
    assert_eq!(bot_flag("app-bot"), None);
    assert_eq!(
        gw.metric(
            "trackgate_events_total",
            &[("outcome", "dropped"), ("reason", "bot")]
        ),
        1.0
    );
    assert_eq!(gw.metric("trackgate_events_received_total", &[]), 4.0);
}
