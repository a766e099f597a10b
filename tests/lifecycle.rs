//! Process-level behaviour: configuration errors, readiness that follows the
//! broker, graceful shutdown with every accepted event delivered.

mod support;

use std::process::Command;
use std::time::Duration;

use support::*;

#[test]
fn invalid_config_exits_2_and_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        config_toml(
            free_port(),
            free_port(),
            "127.0.0.1:1",
            "[limits]\nmax_event_bytez = 5\n",
        ),
    )
    .unwrap();
    let out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("max_event_bytez"));

    std::fs::write(
        &path,
        config_toml(
            free_port(),
            free_port(),
            "127.0.0.1:1",
            "[kafka.topics]\nclicks = \"\"\n",
        ),
    )
    .unwrap();
    let out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.topics.clicks"));
}

#[test]
fn environment_overrides_config_keys() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        config_toml(free_port(), free_port(), "127.0.0.1:1", ""),
    )
    .unwrap();
    let out = Command::new(gateway_bin())
        .arg("--config")
        .arg(&path)
        .arg("check-config")
        .env("TRACKGATE_KAFKA__PARTITIONS", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("kafka.partitions"));
}

#[test]
fn readiness_follows_the_broker_and_topics_are_created() {
    // Start with no broker: alive, not ready.
    let port = free_port();
    let gw = Gateway::spawn(&format!("127.0.0.1:{port}"), "");
    let health = http(gw.admin, "GET", "/healthz", &[], b"").unwrap();
    assert_eq!(health.status, 200);
    std::thread::sleep(Duration::from_millis(800));
    let r = http(gw.admin, "GET", "/readyz", &[], b"").unwrap();
    assert_eq!(r.status, 503);
    assert!(r.json()["reasons"]
        .to_string()
        .contains("broker_unreachable"));

    // Events sent meanwhile are refused: the opt-out list is not loaded
    // (fail closed), so nothing is queued for later.
    let r = gw.post("/v1/page", r#"{"anonymousId":"early"}"#);
    assert_eq!(r.status, 503);
    assert_eq!(r.json()["error"], "optout_list_loading");
    assert!(r.header("retry-after").is_some());

    // The broker appears: topics are created, the gateway becomes ready and delivers.
    let broker = Broker::start_on(port);
    gw.wait_ready(Duration::from_secs(30));
    assert_eq!(gw.post("/v1/page", r#"{"anonymousId":"late"}"#).status, 200);
    let recs = consume(&broker.addr(), &[PAGEVIEWS], 1, Duration::from_secs(40));
    let keys: Vec<_> = recs.iter().filter_map(|r| r.key.clone()).collect();
    assert_eq!(keys, vec!["late"]);
    assert!(gw.metric("trackgate_topics_created_total", &[]) >= 5.0);
}

#[test]
fn sigterm_flushes_every_accepted_event_and_exits_0() {
    let broker = Broker::start();
    let mut gw = Gateway::start(&broker.addr());
    let mut accepted = 0u64;
    for i in 0..40 {
        let batch: Vec<String> = (0..25)
            .map(|j| format!(r#"{{"type":"track","anonymousId":"v{i}-{j}","event":"e"}}"#))
            .collect();
        let r = gw.post(
            "/v1/batch",
            &format!(r#"{{"batch":[{}]}}"#, batch.join(",")),
        );
        assert_eq!(r.status, 200);
        accepted += r.json()["accepted"].as_u64().unwrap();
    }
    let status = gw.terminate();
    assert!(status.success(), "{status:?}");
    let recs = consume_settle(
        &broker.addr(),
        &[EVENTS],
        accepted as usize,
        Duration::from_secs(30),
        Duration::from_secs(2),
    );
    assert_eq!(recs.len() as u64, accepted);
}
