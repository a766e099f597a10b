//! The admin listener and the configuration under attack, against the real
//! gateway process and the real broker: secrets never shown (a refused
//! reload, `/config`, the log), `/config` and the inspector guarded (token,
//! `Host`), the inspector refused on an open admin listener without a
//! token, rate limits that survive a reload, restart-only sections
//! reported, secrets read from the environment and from files, and a
//! tracking plan applied by SIGHUP when only the plan changed.

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::*;

/// A server key, recognisable wherever it would leak.
const SECRET: &str = "sk_live_TOPSECRET_4f9a2c71";
/// The admin token of the guarded gateways.
const TOKEN: &str = "admin-token-7d1e5b";

/// Replaces the file as editors do: a new file renamed over the old one.
fn write_atomic(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

fn sighup(gw: &Gateway) {
    let ok = Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .expect("kill -HUP")
        .success();
    assert!(ok);
}

fn get_config(gw: &Gateway, token: Option<&str>) -> Response {
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("authorization", a)])
        .unwrap_or_default();
    http(gw.admin, "GET", "/config", &headers, b"").expect("GET /config")
}

fn config_json(gw: &Gateway, token: Option<&str>) -> Value {
    let r = get_config(gw, token);
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    r.json()
}

/// A request with exactly the given `Host` header (the support client
/// always sends the address).
fn get_with_host(addr: SocketAddr, path: &str, host: &str) -> u16 {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n"
    )
    .unwrap();
    let mut head = [0u8; 64];
    let n = s.read(&mut head).expect("response");
    let line = String::from_utf8_lossy(&head[..n]).to_string();
    line.split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status in {line:?}"))
}

/// One track event from the `web` source; the response.
fn track(gw: &Gateway, event: &str, properties: Value) -> Response {
    let body = json!({"type":"track","event":event,"anonymousId":"v-1","properties":properties});
    gw.post("/v1/track", &body.to_string())
}

#[test]
fn a_refused_reload_shows_no_secret_in_config_or_the_log() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let key_line = format!("server_key = \"{SECRET}\"\nallowed_origins");
    let gw = Gateway::spawn_logged(
        |l, a| config_toml(l, a, &brokers, "").replacen("allowed_origins", &key_line, 1),
        "info",
    );
    gw.wait_ready(Duration::from_secs(30));
    let running = std::fs::read_to_string(&gw.config_path).unwrap();

    // A syntax error on the key's own line: the closing quote is gone.
    let broken = running.replace(&format!("{SECRET}\""), SECRET);
    write_atomic(&gw.config_path, &broken);
    wait_until("the refused reload", Duration::from_secs(10), || {
        gw.metric("trackgate_config_reloads_total", &[("result", "failed")]) >= 1.0
    });
    let r = get_config(&gw, None);
    let body = String::from_utf8_lossy(&r.body).to_string();
    let error = r.json()["lastFailure"]["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(error.contains("line "), "the error names the line: {error}");
    assert!(!body.contains("TOPSECRET"), "/config shows the key: {body}");
    let log = gw.log();
    assert!(log.contains("configuration reload refused"), "{log}");
    assert!(!log.contains("TOPSECRET"), "the log shows the key:\n{log}");
    // The running configuration is shown with the key redacted.
    let info = config_json(&gw, None);
    assert_eq!(info["config"]["sources"][0]["server_key"], "<redacted>");
    assert_eq!(info["config"]["sources"][0]["write_key"], WRITE_KEY);
}

#[test]
fn config_requires_the_admin_token_when_one_is_set() {
    let broker = Broker::start();
    let extra = format!("[inspect]\ntoken = \"{TOKEN}\"\n");
    let gw = Gateway::start_with(&broker.addr(), &extra);
    assert_eq!(get_config(&gw, None).status, 401);
    assert_eq!(get_config(&gw, Some("wrong-token")).status, 401);
    let info = config_json(&gw, Some(TOKEN));
    assert_eq!(info["version"], 1);
    assert_eq!(info["config"]["inspect"]["token"], "<redacted>");
    assert!(!info.to_string().contains(TOKEN));
    // The probes stay open.
    assert!(gw.ready());
}

#[test]
fn the_inspector_refuses_to_start_on_an_open_admin_listener_without_a_token() {
    let broker = Broker::start();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trackgate.toml");
    let text = config_toml(listen, admin, &broker.addr(), "")
        .replace(&format!("127.0.0.1:{admin}"), &format!("0.0.0.0:{admin}"));
    std::fs::write(&path, &text).unwrap();
    let mut child = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .env("TRACKGATE_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    let _ = child.stderr.take().unwrap().read_to_string(&mut stderr);
    let status = status.expect("the gateway kept running with an open inspector");
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("inspect.token") && stderr.contains("loopback"),
        "{stderr}"
    );
}

#[test]
fn admin_pages_refuse_a_foreign_host() {
    let broker = Broker::start();
    let gw = Gateway::start(&broker.addr());
    for path in ["/inspect", "/config"] {
        assert_eq!(get_with_host(gw.admin, path, "evil.example"), 403, "{path}");
        assert_eq!(
            get_with_host(gw.admin, path, "evil.example:9464"),
            403,
            "{path}"
        );
        assert_eq!(get_with_host(gw.admin, path, &gw.admin.to_string()), 200);
        assert_eq!(get_with_host(gw.admin, path, "localhost"), 200);
    }
    // Probes and scrapes answer under any name.
    assert_eq!(get_with_host(gw.admin, "/readyz", "evil.example"), 200);
    drop(gw);

    // A name of the operator's own is let in once configured.
    let gw = Gateway::start_with(
        &broker.addr(),
        "[inspect]\nallowed_hosts = [\"gateway.internal\"]\n",
    );
    for path in ["/inspect", "/config"] {
        assert_eq!(get_with_host(gw.admin, path, "gateway.internal:9464"), 200);
        assert_eq!(get_with_host(gw.admin, path, "evil.example"), 403);
    }
}

/// Requests the per-IP limit lets through right away (its burst).
const BURST: usize = 20;

#[test]
fn a_client_over_its_limit_stays_limited_through_a_comment_only_reload() {
    let broker = Broker::start();
    let extra = format!("[rate_limit]\nper_ip_rps = 1\nper_ip_burst = {BURST}\n");
    let gw = Gateway::start_with(&broker.addr(), &extra);
    let send = || track(&gw, "Limited", json!({})).status;
    let passed = (0..BURST + 5).filter(|_| send() == 200).count();
    assert!(passed <= BURST + 5 && send() == 429, "the limit holds");

    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    write_atomic(&gw.config_path, &format!("{text}\n# a comment\n"));
    sighup(&gw);
    wait_until("the reload", Duration::from_secs(10), || {
        config_json(&gw, None)["version"] == 2
    });
    // One request per second refills; a fresh limiter would let a whole
    // burst through at once.
    let after = (0..BURST).filter(|_| send() == 200).count();
    assert!(
        after < BURST / 2,
        "{after} of {BURST} requests passed right after the reload: the limiter was reset"
    );
}

#[test]
fn a_changed_spool_section_is_listed_as_restart_pending() {
    let broker = Broker::start();
    let gw = Gateway::start_with(&broker.addr(), "[spool]\nmax_bytes = 268435456\n");
    let text = std::fs::read_to_string(&gw.config_path).unwrap();
    write_atomic(
        &gw.config_path,
        &text.replace("max_bytes = 268435456", "max_bytes = 134217728"),
    );
    sighup(&gw);
    wait_until("the reload", Duration::from_secs(10), || {
        config_json(&gw, None)["version"] == 2
    });
    let info = config_json(&gw, None);
    assert_eq!(info["restartPending"], json!(["spool"]), "{info}");
}

#[test]
fn a_server_key_from_a_file_or_the_environment_authenticates() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("web.key"), format!("{SECRET}\n")).unwrap();
    let path = dir.path().join("trackgate.toml");
    // `web` reads its key from a file, `app` from `${VAR}`.
    let text = config_toml(listen, admin, &brokers, "")
        .replacen(
            "allowed_origins",
            "server_key_file = \"web.key\"\nallowed_origins",
            1,
        )
        .replace(
            &format!("write_key = \"{APP_WRITE_KEY}\""),
            &format!("write_key = \"{APP_WRITE_KEY}\"\nserver_key = \"${{APP_SERVER_KEY}}\""),
        );
    std::fs::write(&path, text).unwrap();
    let app_key = "sk_app_from_the_environment_01";
    // The gateway inherits the variable; no other test reads it.
    std::env::set_var("APP_SERVER_KEY", app_key);
    let gw = Gateway::spawn_config(dir, path, listen, admin);
    gw.wait_ready(Duration::from_secs(30));
    let optin = |key: &str| {
        let bearer = format!("Bearer {key}");
        gw.request(
            "POST",
            "/v1/optin",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            br#"{"anonymousId":"visitor-9"}"#,
        )
        .status
    };
    assert_eq!(optin(SECRET), 200, "the key from the file");
    assert_eq!(optin(app_key), 200, "the key from the environment");
    assert_ne!(optin("sk_live_not_the_key_000"), 200);
    let info = config_json(&gw, None);
    assert!(!info.to_string().contains("TOPSECRET"), "{info}");
    assert!(!info.to_string().contains(app_key), "{info}");
}

#[test]
fn sighup_after_editing_only_a_plan_or_its_schema_applies_it() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let plan = dir.path().join("plan.json");
    let schema = dir.path().join("signed_up.json");
    std::fs::write(&plan, r#"{"track":{"Signed Up":"signed_up.json"}}"#).unwrap();
    std::fs::write(&schema, r#"{"type":"object"}"#).unwrap();
    let path = dir.path().join("trackgate.toml");
    // No file watch: SIGHUP alone must notice the plan changed.
    let text = config_toml(listen, admin, &brokers, "[reload]\nwatch = false\n")
        + &format!(
            "[sources.quality.plan]\nfile = \"{}\"\nmode = \"block\"\nunplanned = \"block\"\n",
            plan.display()
        );
    // The plan table belongs to the last source: move it under `web`.
    let text = move_plan_to_web(&text);
    std::fs::write(&path, &text).unwrap();
    let gw = Gateway::spawn_config(dir, path, listen, admin);
    gw.wait_ready(Duration::from_secs(30));
    let accepted = |r: Response| r.json()["accepted"].as_u64().unwrap_or(0);
    assert_eq!(accepted(track(&gw, "Other", json!({}))), 0, "unplanned");
    assert_eq!(accepted(track(&gw, "Signed Up", json!({"plan": 5}))), 1);

    // Only the plan changes: `Other` becomes planned.
    write_atomic(
        &plan,
        r#"{"track":{"Signed Up":"signed_up.json","Other":{"type":"object"}}}"#,
    );
    sighup(&gw);
    wait_until("the plan to apply", Duration::from_secs(10), || {
        config_json(&gw, None)["version"] == 2
    });
    assert_eq!(accepted(track(&gw, "Other", json!({}))), 1, "planned now");

    // Only the schema file changes: `plan` must be a string.
    write_atomic(
        &schema,
        r#"{"type":"object","properties":{"plan":{"type":"string"}}}"#,
    );
    sighup(&gw);
    wait_until("the schema to apply", Duration::from_secs(10), || {
        config_json(&gw, None)["version"] == 3
    });
    assert_eq!(accepted(track(&gw, "Signed Up", json!({"plan": 5}))), 0);
    assert_eq!(accepted(track(&gw, "Signed Up", json!({"plan": "pro"}))), 1);
    let files = config_json(&gw, None)["files"].to_string();
    assert!(
        files.contains("plan.json") && files.contains("signed_up.json"),
        "{files}"
    );
}

/// `config_toml` ends with the `app` source: put the plan table after the
/// `web` source instead.
fn move_plan_to_web(text: &str) -> String {
    let (head, plan) = text
        .split_once("[sources.quality.plan]")
        .expect("plan table");
    let plan = format!("[sources.quality.plan]{plan}");
    head.replacen(
        "\n[[sources]]\nid = \"app\"",
        &format!("\n{plan}\n[[sources]]\nid = \"app\""),
        1,
    )
}

#[test]
fn the_banner_prints_the_inspector_and_sdk_addresses_and_no_secret() {
    use std::io::BufRead;
    // Development mode (embedded broker), with an admin token set from the
    // environment.
    let mut child = Command::new(gateway_bin())
        .args(["--listen", "127.0.0.1:0", "--admin-listen", "127.0.0.1:0"])
        .env("TRACKGATE_INSPECT__TOKEN", TOKEN)
        .env("TRACKGATE_LOG", "info")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut out = String::new();
    while Instant::now() < deadline && !out.contains("topics verified") {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            out.push_str(&line);
            out.push('\n');
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let line = |label: &str| {
        out.lines()
            .find_map(|l| {
                l.trim()
                    .strip_prefix(label)
                    .map(str::trim)
                    .map(str::to_string)
            })
            .unwrap_or_else(|| panic!("no `{label}` line in:\n{out}"))
    };
    let inspector = line("inspector:");
    assert!(
        inspector.starts_with("http://127.0.0.1:") && inspector.ends_with("/inspect"),
        "{out}"
    );
    let sdk = line("sdk:");
    assert!(sdk.ends_with("/sdk/trackgate.min.js"), "{out}");
    assert!(!out.contains(TOKEN), "the token is printed:\n{out}");
}
