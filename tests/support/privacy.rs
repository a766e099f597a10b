//! Helpers of the privacy tests: a gateway with per-source privacy rules
//! that trusts the loopback test client as a proxy (so `X-Forwarded-For`
//! can carry public-looking client addresses), and searches of every
//! record for identifying strings.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The opt-out topic's default name.
pub const OPTOUTS: &str = "tracking.optouts";
/// A client address inside the GeoIP fixture's GB range.
pub const CLIENT_IP: &str = "81.2.69.160";
/// `CLIENT_IP` truncated to its /24.
pub const CLIENT_IP_TRUNCATED: &str = "81.2.69.0";

/// The `web` source's server key.
pub const SERVER_KEY: &str = "sk_test_web_0123456789";

/// How the privacy gateway is configured.
#[derive(Debug, Clone, Copy, Default)]
pub struct Setup<'a> {
    /// Lines of the global `[privacy]` table.
    pub global: &'a str,
    /// Lines of the `web` source's `[sources.privacy]` table.
    pub web: &'a str,
    /// Lines of the `app` source's `[sources.privacy]` table.
    pub app: &'a str,
    /// Other TOML sections (before the sources).
    pub extra: &'a str,
}

/// The standard test configuration with the loopback client trusted as a
/// proxy and the given privacy tables.
pub fn privacy_toml(listen: u16, admin: u16, brokers: &str, s: &Setup<'_>) -> String {
    let extra = format!("{}\n[privacy]\n{}\n", s.extra, s.global);
    let text = config_toml(listen, admin, brokers, &extra).replace(
        r#"trusted_proxies = ["10.9.9.9"]"#,
        r#"trusted_proxies = ["127.0.0.1"]"#,
    );
    let web_origins = format!("allowed_origins = [\"{ORIGIN}\"]\n");
    let text = text.replacen(
        &web_origins,
        &format!(
            "{web_origins}server_key = \"{SERVER_KEY}\"\n[sources.privacy]\n{}\n",
            s.web
        ),
        1,
    );
    format!("{text}[sources.privacy]\n{}\n", s.app)
}

/// Spawns a gateway without waiting for readiness.
pub fn spawn_gateway(brokers: &str, s: &Setup<'_>) -> Gateway {
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trackgate.toml");
    std::fs::write(&path, privacy_toml(listen, admin, brokers, s)).expect("write config");
    Gateway::spawn_config(dir, path, listen, admin)
}

/// Starts a gateway and waits until it is ready.
pub fn start_gateway(brokers: &str, s: &Setup<'_>) -> Gateway {
    let g = spawn_gateway(brokers, s);
    g.wait_ready(Duration::from_secs(30));
    g
}

/// Writes the GeoIP fixture (81.2.69.0/24 → GB/ENG/London,
/// 2001:db8::/32 → DE/BE/Berlin) into `dir`.
pub fn write_geoip_fixture(dir: &Path) -> PathBuf {
    let path = dir.join("geoip.mmdb");
    let bytes = trackgate::privacy::mmdb::fixture()
        .to_bytes()
        .expect("fixture encodes");
    std::fs::write(&path, bytes).expect("write fixture");
    path
}

/// Sends `body` to `path` for the source of `write_key` from client `ip`
/// (through the trusted loopback proxy), with extra headers.
pub fn send_as(
    gw: &Gateway,
    write_key: &str,
    ip: &str,
    path: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> Response {
    let auth = basic(write_key);
    let mut h = vec![
        ("content-type", "application/json"),
        ("authorization", auth.as_str()),
        ("x-forwarded-for", ip),
    ];
    h.extend_from_slice(headers);
    gw.request("POST", path, &h, body.as_bytes())
}

/// `send_as` for the web source from `CLIENT_IP`.
pub fn send(gw: &Gateway, path: &str, body: &str, headers: &[(&str, &str)]) -> Response {
    send_as(gw, WRITE_KEY, CLIENT_IP, path, body, headers)
}

/// Everything of a record that reaches a consumer, as one string to search.
pub fn record_text(r: &Record) -> String {
    format!(
        "{} key={:?} headers={:?} value={}",
        r.topic, r.key, r.headers, r.value
    )
}

/// Panics when any record on the event topics mentions any needle.
pub fn assert_nowhere(records: &[Record], needles: &[&str]) {
    for r in records {
        let text = record_text(r);
        for n in needles {
            assert!(!text.contains(n), "{n:?} reached Kafka: {text}");
        }
    }
}

/// Records of every event topic (pageviews, clicks, events, identities,
/// invalid): waits for `expected`, then for more during a settle period.
pub fn every_event_topic(brokers: &str, expected: usize) -> Vec<Record> {
    consume_all(brokers, expected)
}

/// Records whose value's `anonymousId` or `userId` is `id`.
pub fn of_visitor<'a>(records: &'a [Record], id: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.value["anonymousId"] == id || r.value["userId"] == id)
        .collect()
}

/// The opt-out topic's records.
pub fn optout_records(brokers: &str, expected: usize) -> Vec<Record> {
    consume(brokers, &[OPTOUTS], expected, Duration::from_secs(30))
}

/// Every `Set-Cookie` of a response.
pub fn set_cookies(r: &Response) -> Vec<&str> {
    r.headers
        .iter()
        .filter(|(k, _)| k.eq_ignore_ascii_case("set-cookie"))
        .map(|(_, v)| v.as_str())
        .collect()
}

/// What a browser sends back after `r`: a `Cookie` header value of the
/// cookies it set (those it cleared left out).
pub fn cookie_jar(r: &Response) -> String {
    set_cookies(r)
        .iter()
        .filter(|c| !c.contains("Max-Age=0"))
        .filter_map(|c| c.split(';').next())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A browser on the allowed origin posting to `path` with `cookies`.
pub fn from_browser(gw: &Gateway, path: &str, body: &str, cookies: &str) -> Response {
    let mut h = vec![("origin", ORIGIN)];
    if !cookies.is_empty() {
        h.push(("cookie", cookies));
    }
    send(gw, path, body, &h)
}

/// The site owner's server posting to `path` with the server key.
pub fn from_server(gw: &Gateway, path: &str, body: &str) -> Response {
    let bearer = format!("Bearer {SERVER_KEY}");
    gw.request(
        "POST",
        path,
        &[
            ("content-type", "application/json"),
            ("authorization", &bearer),
        ],
        body.as_bytes(),
    )
}

/// A TCP relay from a loopback port to a broker: a broker "away" for the
/// gateways configured with `port` until [`open_gate`] starts relaying,
/// while others reach it directly. (Clients then learn the broker's own
/// address from its metadata and connect there.)
pub fn open_gate(port: u16, target: &str) {
    let listener = std::net::TcpListener::bind(("127.0.0.1", port)).expect("gate port");
    let target = target.to_string();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(upstream) = std::net::TcpStream::connect(&target) else {
                continue;
            };
            for (mut from, mut to) in [
                (client.try_clone(), upstream.try_clone()),
                (upstream.try_clone(), client.try_clone()),
            ]
            .into_iter()
            .filter_map(|(a, b)| Some((a.ok()?, b.ok()?)))
            {
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut from, &mut to);
                    let _ = to.shutdown(std::net::Shutdown::Both);
                });
            }
        }
    });
}
