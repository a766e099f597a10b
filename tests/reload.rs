//! Configuration reload against the real broker: a source's allowed origins
//! and rate limit change under load, through the file watch and SIGHUP;
//! nothing answered 200 is lost and the new rules apply within a second;
//! a broken file is refused while the running configuration stays; a
//! rotated secret file applies through the watch; a plan file edited alone
//! applies under load without losing an event.

mod support;

use std::collections::HashSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::*;

const OLD_ORIGIN: &str = "https://old.example";
const NEW_ORIGIN: &str = "https://new.example";
/// Events per request of the load.
const BATCH: usize = 10;

/// A configuration with the web source's origins and event rate.
fn toml(listen: u16, admin: u16, brokers: &str, origin: &str, eps: u32) -> String {
    format!(
        r#"
[server]
listen = "127.0.0.1:{listen}"
admin_listen = "127.0.0.1:{admin}"
shutdown_grace_ms = 5000

[kafka]
brokers = "{brokers}"
partitions = 2

[limits]
max_batch_events = {BATCH}

[rate_limit]
per_ip_rps = 100000
per_ip_burst = 100000

[[sources]]
id = "web"
write_key = "{WRITE_KEY}"
allowed_origins = ["{origin}"]
events_per_second = {eps}
"#
    )
}

fn sha256_hex(text: &str) -> String {
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn config_info(gw: &Gateway) -> Value {
    let r = http(gw.admin, "GET", "/config", &[], b"").expect("GET /config");
    assert_eq!(r.status, 200);
    r.json()
}

/// One batch of fresh events from `origin`; the status and the messageIds.
fn post_batch(gw: &Gateway, origin: &str, tag: &str) -> (u16, Vec<String>) {
    let (status, _, ids) = post_counted(gw, origin, tag);
    (status, ids)
}

/// Replaces the config file the way editors and config managers do: a new
/// file renamed over the old one.
fn write_config(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).expect("write config");
    std::fs::rename(&tmp, path).expect("rename config");
}

/// Answers seen by the load, by status.
#[derive(Default)]
struct Seen {
    accepted: HashSet<String>,
    refused: HashSet<String>,
    statuses: Vec<(Instant, &'static str, u16)>,
}

#[test]
fn origins_and_rate_limit_change_under_load_without_losing_an_event() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trackgate.toml");
    let first = toml(listen, admin, &brokers, OLD_ORIGIN, 1_000_000);
    std::fs::write(&path, &first).expect("write config");
    let gw = Gateway::spawn_config(dir, path.clone(), listen, admin);
    gw.wait_ready(Duration::from_secs(30));
    let info = config_info(&gw);
    assert_eq!(info["version"], 1);
    assert_eq!(info["sha256"], sha256_hex(&first));

    // Load from both origins, one request at a time per thread, bounded in time.
    let gw = Arc::new(gw);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load_deadline = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = [OLD_ORIGIN, NEW_ORIGIN, OLD_ORIGIN, NEW_ORIGIN]
        .into_iter()
        .enumerate()
        .map(|(i, origin)| {
            let (gw, seen, stop) = (gw.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < load_deadline {
                    let (status, ids) = post_batch(&gw, origin, &format!("w{i}"));
                    let mut s = seen.lock().unwrap();
                    s.statuses.push((Instant::now(), origin, status));
                    match status {
                        200 => s.accepted.extend(ids),
                        _ => s.refused.extend(ids),
                    }
                }
            })
        })
        .collect();

    // Under load: only the old origin is let in.
    std::thread::sleep(Duration::from_millis(1500));
    {
        let s = seen.lock().unwrap();
        assert!(s
            .statuses
            .iter()
            .any(|(_, o, st)| *o == OLD_ORIGIN && *st == 200));
        assert!(s
            .statuses
            .iter()
            .filter(|(_, o, _)| *o == NEW_ORIGIN)
            .all(|(_, _, st)| *st == 403));
    }

    // New origin, and a rate the load exceeds (a burst of one batch).
    let second = toml(listen, admin, &brokers, NEW_ORIGIN, BATCH as u32);
    let changed = Instant::now();
    write_config(&path, &second);
    wait_until(
        "the new origin to be let in",
        Duration::from_secs(1),
        || {
            let s = seen.lock().unwrap();
            s.statuses
                .iter()
                .any(|(t, o, st)| *t > changed && *o == NEW_ORIGIN && *st == 200)
        },
    );
    wait_until(
        "the new rate limit to refuse requests",
        Duration::from_secs(1),
        || {
            let s = seen.lock().unwrap();
            s.statuses
                .iter()
                .any(|(t, _, st)| *t > changed && *st == 429)
        },
    );
    // Give the load time to meet the new rules everywhere, then stop it.
    std::thread::sleep(Duration::from_millis(1000));
    let settled = Instant::now();
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("load thread");
    }
    let s = seen.lock().unwrap();
    assert!(
        s.statuses
            .iter()
            .filter(|(t, o, _)| *t > settled && *o == OLD_ORIGIN)
            .all(|(_, _, st)| *st == 403),
        "the old origin is refused once the new file applies"
    );
    let info = config_info(&gw);
    assert_eq!(info["version"], 2);
    assert_eq!(info["sha256"], sha256_hex(&second));
    assert_eq!(info["restartPending"], json!([]));
    assert_eq!(
        gw.metric("trackgate_config_reloads_total", &[("result", "ok")]),
        1.0
    );

    // Every event answered 200 is in Kafka, and nothing refused is.
    let n = s.accepted.len();
    assert!(n > 0);
    let records = consume(&brokers, &[EVENTS], n, Duration::from_secs(60));
    let ids: HashSet<String> = records
        .iter()
        .filter_map(|r| r.value["messageId"].as_str().map(str::to_string))
        .collect();
    let missing: Vec<_> = s.accepted.difference(&ids).take(5).collect();
    assert!(
        missing.is_empty(),
        "{} of {n} accepted events missing, e.g. {missing:?}",
        s.accepted.len() - s.accepted.intersection(&ids).count()
    );
    assert!(ids.is_disjoint(&s.refused), "a refused event reached Kafka");
    assert_eq!(records.len(), n, "each accepted event once");
}

#[test]
fn an_invalid_file_is_refused_and_the_running_configuration_stays() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("trackgate.toml");
    let first = toml(listen, admin, &brokers, OLD_ORIGIN, 1_000_000);
    std::fs::write(&path, &first).expect("write config");
    let gw = Gateway::spawn_config(dir, path.clone(), listen, admin);
    gw.wait_ready(Duration::from_secs(30));

    // An unknown key: refused, counted, shown; the running rules stay.
    write_config(&path, &first.replace("events_per_second", "events_per_sec"));
    wait_until("the refused reload", Duration::from_secs(5), || {
        gw.metric("trackgate_config_reloads_total", &[("result", "failed")]) == 1.0
    });
    let info = config_info(&gw);
    assert_eq!(info["version"], 1);
    assert_eq!(info["sha256"], sha256_hex(&first));
    let failure = &info["lastFailure"];
    assert!(
        failure["error"]
            .as_str()
            .unwrap()
            .contains("events_per_sec"),
        "{failure}"
    );
    let (status, _) = post_batch(&gw, OLD_ORIGIN, "still");
    assert_eq!(status, 200);

    // Well-formed sections, but a bot pattern that does not compile: the
    // stages' own checks refuse it the same way.
    write_config(
        &path,
        &format!("{first}\n[bots]\nextra_patterns = [\"(unclosed\"]\n"),
    );
    wait_until("the second refused reload", Duration::from_secs(5), || {
        gw.metric("trackgate_config_reloads_total", &[("result", "failed")]) == 2.0
    });
    let info = config_info(&gw);
    assert_eq!(info["version"], 1);
    let error = info["lastFailure"]["error"].as_str().unwrap_or_default();
    assert!(error.contains("bots.extra_patterns[0]"), "{error}");
    assert_eq!(post_batch(&gw, OLD_ORIGIN, "still2").0, 200);

    // A file whose listener moved: the rest applies, the move waits for a
    // restart. Applied on SIGHUP (the watch would see it too).
    let moved = toml(free_port(), admin, &brokers, NEW_ORIGIN, 1_000_000);
    std::fs::write(&path, &moved).expect("write config");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &gw.pid().to_string()])
        .status()
        .expect("kill -HUP");
    assert!(status.success());
    wait_until("the reload", Duration::from_secs(5), || {
        config_info(&gw)["version"] == 2
    });
    let info = config_info(&gw);
    assert_eq!(info["restartPending"], json!(["server"]));
    assert_eq!(info["lastFailure"], Value::Null);
    assert_eq!(post_batch(&gw, NEW_ORIGIN, "moved").0, 200);
    assert_eq!(post_batch(&gw, OLD_ORIGIN, "old").0, 403);
    assert!(gw.ready(), "still serving on its admin listener");
}

#[test]
fn a_rotated_secret_file_applies_through_the_watch() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let key_file = dir.path().join("web.key");
    let (old_key, new_key) = ("sk_rotation_old_0123456789", "sk_rotation_new_0123456789");
    std::fs::write(&key_file, format!("{old_key}\n")).expect("write key");
    let path = dir.path().join("trackgate.toml");
    let text = toml(listen, admin, &brokers, OLD_ORIGIN, 1_000_000).replace(
        "allowed_origins",
        "server_key_file = \"web.key\"\nallowed_origins",
    );
    std::fs::write(&path, &text).expect("write config");
    let gw = Gateway::spawn_config(dir, path, listen, admin);
    gw.wait_ready(Duration::from_secs(30));
    // Opting an id back in needs the server key.
    let optin = |key: &str| {
        let bearer = format!("Bearer {key}");
        gw.request(
            "POST",
            "/v1/optin",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            br#"{"anonymousId":"visitor-r"}"#,
        )
        .status
    };
    assert_eq!(optin(old_key), 200);
    assert_ne!(optin(new_key), 200);

    // Only the key file changes; the watch notices it.
    write_config(&key_file, &format!("{new_key}\n"));
    wait_until("the new key to apply", Duration::from_secs(5), || {
        config_info(&gw)["version"] == 2
    });
    assert_eq!(optin(new_key), 200);
    assert_ne!(optin(old_key), 200);
    let info = config_info(&gw);
    assert!(!info.to_string().contains("sk_rotation"), "{info}");
}

/// A plan that lists `extra` besides an event nobody sends.
fn plan_listing(extra: &[&str]) -> String {
    let mut track = serde_json::Map::new();
    for name in ["Never Sent"].iter().chain(extra) {
        track.insert((*name).to_string(), json!({"type": "object"}));
    }
    json!({ "track": track }).to_string()
}

#[test]
fn a_plan_file_edited_alone_applies_under_load_without_losing_an_event() {
    let broker = Broker::start();
    let brokers = broker.addr();
    let (listen, admin) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("temp dir");
    let plan = dir.path().join("plan.json");
    std::fs::write(&plan, plan_listing(&[])).expect("write plan");
    let path = dir.path().join("trackgate.toml");
    let text = toml(listen, admin, &brokers, OLD_ORIGIN, 1_000_000)
        + &format!(
            "[sources.quality.plan]\nfile = \"{}\"\nmode = \"block\"\nunplanned = \"block\"\n",
            plan.display()
        );
    std::fs::write(&path, &text).expect("write config");
    let gw = Gateway::spawn_config(dir, path, listen, admin);
    gw.wait_ready(Duration::from_secs(30));

    // Load: batches of `Load` events, which the first plan blocks.
    let gw = Arc::new(gw);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let load_deadline = Instant::now() + Duration::from_secs(20);
    let workers: Vec<_> = (0..3)
        .map(|i| {
            let (gw, seen, stop) = (gw.clone(), seen.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) && Instant::now() < load_deadline {
                    let (status, accepted, ids) = post_counted(&gw, OLD_ORIGIN, &format!("p{i}"));
                    let mut s = seen.lock().unwrap();
                    s.statuses.push((Instant::now(), "", status));
                    match (status, accepted) {
                        (200, n) if n == BATCH => s.accepted.extend(ids),
                        (200, 0) => s.refused.extend(ids),
                        // One request runs under one configuration: a
                        // batch split between two plans is a defect.
                        (st, n) => panic!("status {st} with {n} of {BATCH} accepted"),
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1000));
    assert!(
        seen.lock().unwrap().accepted.is_empty(),
        "the plan blocks Load"
    );
    assert!(!seen.lock().unwrap().refused.is_empty(), "the load runs");

    // Only the plan file changes (the main file stays as it is); the watch
    // notices it and the next requests are accepted.
    write_config(&plan, &plan_listing(&["Load"]));
    wait_until("the edited plan to apply", Duration::from_secs(5), || {
        !seen.lock().unwrap().accepted.is_empty()
    });
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().expect("load thread");
    }
    assert_eq!(config_info(&gw)["version"], 2);

    // Every event answered as accepted is in Kafka once; none blocked is.
    let s = seen.lock().unwrap();
    let n = s.accepted.len();
    let records = consume(&brokers, &[EVENTS], n, Duration::from_secs(60));
    let ids: HashSet<String> = records
        .iter()
        .filter_map(|r| r.value["messageId"].as_str().map(str::to_string))
        .collect();
    assert!(
        s.accepted.is_subset(&ids),
        "{} of {n} accepted events missing",
        s.accepted.difference(&ids).count()
    );
    assert!(ids.is_disjoint(&s.refused), "a blocked event reached Kafka");
    assert_eq!(records.len(), n, "each accepted event once");
}

/// One batch of fresh events from `origin`; the status, the answer's
/// `accepted` and the messageIds.
fn post_counted(gw: &Gateway, origin: &str, tag: &str) -> (u16, usize, Vec<String>) {
    let ids: Vec<String> = (0..BATCH)
        .map(|_| format!("{tag}-{}", uuid::Uuid::new_v4()))
        .collect();
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| json!({"type":"track","event":"Load","anonymousId":"v-1","messageId":id}))
        .collect();
    let body = json!({ "batch": batch }).to_string();
    let auth = basic(WRITE_KEY);
    let r = http(
        gw.addr,
        "POST",
        "/v1/batch",
        &[
            ("content-type", "application/json"),
            ("authorization", &auth),
            ("origin", origin),
        ],
        body.as_bytes(),
    );
    match r {
        Ok(r) => {
            let accepted = r.json()["accepted"].as_u64().unwrap_or(0) as usize;
            (r.status, accepted, ids)
        }
        Err(_) => (0, 0, ids),
    }
}
