//! The requests of real client libraries, replayed byte for byte as their
//! current sources build them (path, headers, encoding, body shape), against
//! the real gateway and broker. The libraries that run here are also tested
//! themselves (tests/clients/); these cover the mobile libraries, which do not
//! run on this machine, and pin each wire detail a library depends on.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{json, Value};
use support::*;

/// The records of one visitor, waiting for `n` of them.
fn records_of(broker: &Broker, visitor: &str, n: usize) -> Vec<Record> {
    consume_all(&broker.addr(), n)
        .into_iter()
        .filter(|r| r.key.as_deref() == Some(visitor))
        .collect()
}

fn batch_body(visitor: &str, write_key: Option<&str>) -> Value {
    let mut body = json!({
        "batch": [
            {"type":"track","anonymousId":visitor,"event":"Order Completed","messageId":format!("{visitor}-1"),
             "timestamp":"2026-01-01T10:00:00.000Z","properties":{"total":3}},
            {"type":"screen","anonymousId":visitor,"name":"Home","messageId":format!("{visitor}-2"),
             "timestamp":"2026-01-01T10:00:01.000Z"}
        ],
        "sentAt": "2026-01-01T10:00:02.000Z"
    });
    if let Some(k) = write_key {
        body["writeKey"] = json!(k);
    }
    body
}

/// Sends a request with a chunked body, as `HttpURLConnection` does after
/// `setChunkedStreamingMode(0)`.
fn post_chunked(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Response {
    let mut s = TcpStream::connect(gw.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ntransfer-encoding: chunked\r\n",
        gw.addr
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let mut wire = req.into_bytes();
    for chunk in body.chunks(100) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    s.write_all(&wire).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    Response {
        status,
        headers: head
            .lines()
            .skip(1)
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect(),
        body: raw[end + 4..].to_vec(),
    }
}

#[test]
fn mobile_libraries_batches_reach_kafka() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());

    // Analytics-Kotlin: POST https://{apiHost}/b (apiHost `api.segment.io/v1`),
    // Content-Type text/plain, gzip through a chunked stream, the write key
    // only in the batch file (`],"sentAt":…,"writeKey":…}`), no Authorization.
    let body = batch_body("kotlin-1", Some(APP_WRITE_KEY)).to_string();
    let r = post_chunked(
        &gw,
        "/v1/b",
        &[
            ("content-type", "text/plain"),
            ("content-encoding", "gzip"),
            ("user-agent", "analytics-kotlin/1.19.1"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // Analytics-Swift: POST https://{apiHost}/b, `application/json;
    // charset=utf-8`, `Accept-Encoding: gzip`, the batch file uploaded as is.
    let body = batch_body("swift-1", Some(APP_WRITE_KEY)).to_string();
    let r = gw.request(
        "POST",
        "/v1/b",
        &[
            ("content-type", "application/json; charset=utf-8"),
            ("accept-encoding", "gzip"),
            ("user-agent", "analytics-ios/1.7.0"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.json()["accepted"], 2);

    for visitor in ["kotlin-1", "swift-1"] {
        let got = records_of(&broker, visitor, 4);
        assert_eq!(got.len(), 2, "{visitor}: {got:#?}");
        for rec in &got {
            assert_eq!(rec.header("source"), Some("app"));
            assert!(rec.value.get("writeKey").is_none());
        }
        let ids: Vec<&str> = got
            .iter()
            .filter_map(|r| r.value["messageId"].as_str())
            .collect();
        assert!(ids.contains(&format!("{visitor}-1").as_str()), "{ids:?}");
    }
}

#[test]
fn gzip_json_labelled_form_urlencoded_is_read_as_json() {
    // RudderStack's Node SDK posts a gzip Buffer through axios, which labels
    // it `application/x-www-form-urlencoded`; the key is in Basic auth.
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let body = batch_body("rs-node-1", None).to_string();
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("content-encoding", "gzip"),
            ("authorization", &basic(WRITE_KEY)),
            ("user-agent", "analytics-node/3.0.13"),
        ],
        &gzip(body.as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(records_of(&broker, "rs-node-1", 2).len(), 2);

    // A body that is not JSON is a clear 400, whatever its label.
    let r = gw.request(
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/x-www-form-urlencoded"),
            ("authorization", &basic(WRITE_KEY)),
        ],
        b"writeKey=x&batch=y",
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["code"], "invalid_json");
}

#[test]
fn browser_library_paths_answer_with_cors_for_allowed_origins() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());

    // RudderStack v3's preflight names its own headers; all are allowed.
    let asked = "anonymousid,authorization,content-type,rsa-retry-attempt,rsa-retry-reason,rsa-since-first-attempt,rsa-since-last-attempt,sentat";
    let pre = gw.request(
        "OPTIONS",
        "/v1/track",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", asked),
        ],
        b"",
    );
    assert_eq!(pre.status, 204);
    assert_eq!(pre.header("access-control-allow-headers"), Some(asked));
    assert_eq!(pre.header("access-control-allow-credentials"), Some("true"));

    // Segment's browser library with batching delivery: /v1/b, text/plain,
    // Basic auth, X-Retry-Count on a retry.
    let body = batch_body("ajs-1", Some(WRITE_KEY)).to_string();
    let r = gw.request(
        "POST",
        "/v1/b",
        &[
            ("origin", ORIGIN),
            ("content-type", "text/plain"),
            ("authorization", &basic(WRITE_KEY)),
            ("x-retry-count", "1"),
        ],
        body.as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));

    // RudderStack v3's beacon mode: sendBeacon of a text/plain blob, the
    // write key in the query.
    let body = json!({"batch":[{"type":"page","anonymousId":"rs-beacon-1","name":"Home",
        "messageId":"rs-beacon-1-1"}],"sentAt":"2026-01-01T10:00:02.000Z"});
    let r = gw.request(
        "POST",
        &format!("/beacon/v1/batch?writeKey={WRITE_KEY}"),
        &[
            ("origin", ORIGIN),
            ("content-type", "text/plain;charset=UTF-8"),
        ],
        body.to_string().as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));

    // A wrong path is a readable 404 for an allowed origin, and says
    // nothing to another.
    let r = gw.request("POST", "/v2/b", &[("origin", ORIGIN)], b"{}");
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));
    assert_eq!(r.json()["code"], "not_found");
    let r = gw.request(
        "POST",
        "/v2/b",
        &[("origin", "https://evil.example")],
        b"{}",
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("access-control-allow-origin"), None);
    // 405 names what the endpoint answers, readable from an allowed origin.
    let r = gw.request("GET", "/v1/b", &[("origin", ORIGIN)], b"");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("POST, OPTIONS"));
    assert_eq!(r.header("access-control-allow-origin"), Some(ORIGIN));

    assert_eq!(records_of(&broker, "ajs-1", 3).len(), 2);
    let beacon = records_of(&broker, "rs-beacon-1", 3);
    assert_eq!(beacon.len(), 1);
    assert_eq!(beacon[0].topic, PAGEVIEWS);
}

#[test]
fn bearer_write_key_is_accepted_like_basic() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    let bearer = format!("Bearer {WRITE_KEY}");
    let r = gw.request(
        "POST",
        "/v1/track",
        &[("authorization", &bearer)],
        br#"{"userId":"bearer-1","event":"Signed Up"}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = gw.request(
        "POST",
        "/v1/track",
        &[("authorization", "Bearer wk_unknown")],
        br#"{"userId":"bearer-2","event":"Signed Up"}"#,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.json()["code"], "invalid_write_key");
    let recs = consume_all(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].key.as_deref(), Some("bearer-1"));
}

#[test]
fn the_api_is_served_under_its_path_prefix_only() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let gw = Gateway::spawn_logged(
        |listen, admin| {
            config_toml(listen, admin, &brokers, "")
                .replace("[server]\n", "[server]\npath_prefix = \"/collect\"\n")
        },
        "warn",
    );
    gw.wait_ready(Duration::from_secs(30));
    let r = gw.post("/collect/v1/page", r#"{"anonymousId":"prefixed-1"}"#);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let r = gw.post("/v1/page", r#"{"anonymousId":"unprefixed-1"}"#);
    assert_eq!(r.status, 404);
    let recs = consume_all(&broker.addr(), 1);
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0].key.as_deref(), Some("prefixed-1"));
}
