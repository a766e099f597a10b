//! Rate and concurrency limits, configuration keys, idle connections and
//! JSON depth.

use super::*;
use governor::clock::FakeRelativeClock;

fn config(extra: &str) -> Config {
    Config::from_toml(&format!(
        "{extra}\n[[sources]]\nid = \"web\"\nwrite_key = \"k\"\nevents_per_second = 100\n[[sources]]\nid = \"app\"\nwrite_key = \"k2\"\n"
    ))
    .unwrap()
}

fn v4(n: u32) -> IpAddr {
    IpAddr::from(std::net::Ipv4Addr::from(n))
}

#[test]
fn per_ip_burst_then_refusal_with_retry_after_then_recovery() {
    let clock = FakeRelativeClock::default();
    let l = Limits::with_clock(
        &config("[rate_limit]\nper_ip_rps = 2\nper_ip_burst = 3\n"),
        clock.clone(),
    );
    let ip = v4(1);
    for _ in 0..3 {
        assert!(l.check_ip(ip).is_ok());
    }
    let refused = l.check_ip(ip).unwrap_err();
    assert_eq!(refused.limiter, Limiter::Ip);
    assert_eq!(refused.retry_after_secs, 1, "one cell per 500 ms");
    // Another client is not affected.
    assert!(l.check_ip(v4(2)).is_ok());
    clock.advance(Duration::from_millis(500));
    assert!(l.check_ip(ip).is_ok());
    assert!(l.check_ip(ip).is_err());
}

#[test]
fn retry_after_rounds_up_to_whole_seconds() {
    let clock = FakeRelativeClock::default();
    let c = config("[rate_limit]\nper_ip_rps = 1\nper_ip_burst = 1\n");
    let l = Limits::with_clock(&c, clock.clone());
    let ip = v4(7);
    assert!(l.check_ip(ip).is_ok());
    clock.advance(Duration::from_millis(100));
    assert_eq!(l.check_ip(ip).unwrap_err().retry_after_secs, 1);
    let slow = Limits {
        per_ip: Some((
            Arc::new(RateLimiter::dashmap_with_clock(
                Quota::with_period(Duration::from_millis(4500)).unwrap(),
                clock.clone(),
            )),
            Quota::with_period(Duration::from_millis(4500)).unwrap(),
        )),
        per_source: HashMap::new(),
        in_flight: Arc::new(Semaphore::new(1)),
        max_in_flight: 1,
        clock: clock.clone(),
    };
    assert!(slow.check_ip(ip).is_ok());
    clock.advance(Duration::from_millis(1200));
    // 3.3 s left: 4 whole seconds.
    assert_eq!(slow.check_ip(ip).unwrap_err().retry_after_secs, 4);
}

#[test]
fn a_reconfigured_instance_keeps_the_slots_in_flight_and_applies_new_rates() {
    let clock = FakeRelativeClock::default();
    let old = Limits::with_clock(
        &config("[rate_limit]\nmax_concurrent_requests = 2"),
        clock.clone(),
    );
    let held = old.try_begin().unwrap();
    let tighter = Config::from_toml(
        "[rate_limit]\nmax_concurrent_requests = 2\n[[sources]]\nid = \"web\"\nwrite_key = \"k\"\nevents_per_second = 5\n",
    )
    .unwrap();
    let next = old.reconfigured(&tighter);
    // One slot is still taken by the request that started before.
    let _second = next.try_begin().unwrap();
    assert!(next.try_begin().is_none());
    drop(held);
    assert!(next.try_begin().is_some());
    // Both start with a full burst; a second later the old rate (100/s)
    // has room for 50 events, the new one (5/s) has not.
    assert!(old.check_source("web", 2500).is_ok());
    assert!(next.check_source("web", 2500).is_ok());
    clock.advance(Duration::from_secs(1));
    assert!(old.check_source("web", 50).is_ok());
    assert!(next.check_source("web", 50).is_err());
    // Another concurrency cap: a fresh set of slots.
    let wider = old.reconfigured(&config("[rate_limit]\nmax_concurrent_requests = 3"));
    assert_eq!(wider.in_flight.available_permits(), 3);
}

#[test]
fn a_reload_that_keeps_a_limit_keeps_its_state() {
    let clock = FakeRelativeClock::default();
    let c = config("[rate_limit]\nper_ip_rps = 1\nper_ip_burst = 1\n");
    let old = Limits::with_clock(&c, clock.clone());
    let ip = v4(9);
    assert!(old.check_ip(ip).is_ok());
    assert!(old.check_source("web", 2500).is_ok());
    // The same limits (a comment-only reload): the client stays limited.
    let same = old.reconfigured(&c);
    assert!(same.check_ip(ip).is_err());
    assert!(same.check_source("web", 100).is_err());
    // A changed limit starts afresh; the unchanged one keeps its state.
    let changed = old.reconfigured(&config("[rate_limit]\nper_ip_rps = 2\nper_ip_burst = 1\n"));
    assert!(changed.check_ip(ip).is_ok());
    assert!(changed.check_source("web", 100).is_err());
}

#[test]
fn ipv6_clients_share_their_slash_64() {
    let clock = FakeRelativeClock::default();
    let l = Limits::with_clock(
        &config("[rate_limit]\nper_ip_rps = 1\nper_ip_burst = 1\n"),
        clock,
    );
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
    assert!(l.check_ip(a).is_ok());
    assert!(l.check_ip(b).is_err());
    assert!(l.check_ip(other).is_ok());
    let mapped: IpAddr = "::ffff:198.51.100.4".parse().unwrap();
    assert_eq!(ip_key(mapped), "198.51.100.4".parse::<IpAddr>().unwrap());
}

#[test]
fn per_source_counts_events_and_allows_a_full_batch() {
    let clock = FakeRelativeClock::default();
    let c = config("[limits]\nmax_batch_events = 250\n");
    let l = Limits::with_clock(&c, clock.clone());
    // Burst = max(100 eps, one 250-event batch).
    assert!(l.check_source("web", 250).is_ok());
    let r = l.check_source("web", 100).unwrap_err();
    assert_eq!(r.limiter, Limiter::Source);
    assert_eq!(r.retry_after_secs, 1);
    clock.advance(Duration::from_secs(1));
    assert!(l.check_source("web", 100).is_ok());
    // No cap configured for `app`; unknown ids are not limited either.
    for _ in 0..100 {
        assert!(l.check_source("app", 2500).is_ok());
    }
    assert!(l.check_source("web", 0).is_ok());
    // More than the burst can ever hold.
    let r = l.check_source("web", 1000).unwrap_err();
    assert_eq!(r.retry_after_secs, 10);
}

#[test]
fn disabled_means_no_rate_limits_but_the_concurrency_cap_holds() {
    let l = Limits::with_clock(
        &config("[rate_limit]\nenabled = false\nper_ip_rps = 1\nper_ip_burst = 1\nmax_concurrent_requests = 2\n"),
        FakeRelativeClock::default(),
    );
    for _ in 0..1000 {
        assert!(l.check_ip(v4(1)).is_ok());
        assert!(l.check_source("web", 2500).is_ok());
    }
    let a = l.try_begin().expect("slot 1");
    let _b = l.try_begin().expect("slot 2");
    assert!(l.try_begin().is_none());
    drop(a);
    assert!(l.try_begin().is_some());
}

/// A million distinct client IPs, in ten waves with purges between:
/// the limiter holds only the keys of the current wave, never all.
#[test]
fn keyed_state_stays_bounded_under_a_million_distinct_ips() {
    const WAVES: u32 = 10;
    const PER_WAVE: u32 = 100_000;
    let clock = FakeRelativeClock::default();
    let l = Limits::with_clock(
        &config("[rate_limit]\nper_ip_rps = 50\nper_ip_burst = 200\n"),
        clock.clone(),
    );
    // Time for a key's state to return to fresh: the burst at the rate.
    let forget_after = Duration::from_secs(200 / 50) + Duration::from_millis(100);
    let mut peak = 0;
    for wave in 0..WAVES {
        for i in 0..PER_WAVE {
            let ip = v4(0x0a00_0000 + wave * PER_WAVE + i);
            assert!(l.check_ip(ip).is_ok());
        }
        peak = peak.max(l.tracked_ips());
        // A purge right away keeps every recent key...
        assert_eq!(l.purge(), PER_WAVE as usize);
        // ...and one after they went quiet keeps none.
        clock.advance(forget_after);
        assert_eq!(l.purge(), 0, "wave {wave}");
    }
    assert_eq!(peak, PER_WAVE as usize);
}

#[test]
fn config_validation_names_keys() {
    let bad = [
        ("[rate_limit]\nper_ip_rps = 0\n", "rate_limit.per_ip_rps"),
        (
            "[rate_limit]\nmax_concurrent_requests = 0\n",
            "rate_limit.max_concurrent_requests",
        ),
        (
            "[server]\nmax_header_bytes = 100\n",
            "server.max_header_bytes",
        ),
        (
            "[server]\nkeep_alive_timeout_ms = 20000\n",
            "server.keep_alive_timeout_ms",
        ),
        ("[limits]\nmax_json_depth = 0\n", "limits.max_json_depth"),
    ];
    for (text, key) in bad {
        let err = Config::from_toml(&format!(
            "{text}\n[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains(key), "{text}: {err}");
    }
    let err =
        Config::from_toml("[[sources]]\nid = \"web\"\nwrite_key = \"k\"\nevents_per_second = 0\n")
            .unwrap_err()
            .to_string();
    assert!(err.contains("sources[0].events_per_second"), "{err}");
}

#[test]
fn example_config_shows_the_defaults() {
    let example = Config::from_toml(include_str!("../../config/trackgate.example.toml")).unwrap();
    let minimal = config("");
    let (e, d) = (&example.rate_limit, &minimal.rate_limit);
    assert_eq!(
        (e.enabled, e.per_ip_rps, e.per_ip_burst),
        (d.enabled, d.per_ip_rps, d.per_ip_burst)
    );
    assert_eq!(
        (e.max_concurrent_requests, e.purge_interval_ms),
        (d.max_concurrent_requests, d.purge_interval_ms)
    );
    assert_eq!(
        example.server.keep_alive_timeout_ms,
        minimal.server.keep_alive_timeout_ms
    );
    assert_eq!(
        example.server.max_header_bytes,
        minimal.server.max_header_bytes
    );
    assert_eq!(example.limits.max_json_depth, minimal.limits.max_json_depth);
    assert_eq!(example.sources[0].events_per_second, Some(20_000));
    assert_eq!(minimal.sources[1].events_per_second, None);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_read_end_of_stream_after_the_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const TIMEOUT: Duration = Duration::from_secs(5);
    let (_client, server) = tokio::io::duplex(1024);
    let mut conn = IdleTimeout::new(server, TIMEOUT);
    let mut buf = [0u8; 16];

    // Fresh and silent: end of stream once the timeout passed.
    let n = tokio::time::timeout(TIMEOUT * 2, conn.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0))), "{n:?}");

    // A request under way is not idle: no end of stream however long.
    let (mut client, server) = tokio::io::duplex(1024);
    let mut conn = IdleTimeout::new(server, TIMEOUT);
    client.write_all(b"GET").await.unwrap();
    assert_eq!(conn.read(&mut buf).await.unwrap(), 3);
    let waited = tokio::time::timeout(TIMEOUT * 10, conn.read(&mut buf)).await;
    assert!(waited.is_err(), "a busy connection timed out: {waited:?}");

    // After a response is written the connection is idle again.
    conn.write_all(b"HTTP/1.1 200 OK\r\n\r\n").await.unwrap();
    let n = tokio::time::timeout(TIMEOUT * 2, conn.read(&mut buf)).await;
    assert!(matches!(n, Ok(Ok(0))), "{n:?}");
    drop(client);
}

#[test]
fn json_depth_scan() {
    assert!(!json_too_deep(br#"{"a":[1,{"b":2}]}"#, 3));
    assert!(json_too_deep(br#"{"a":[1,{"b":2}]}"#, 2));
    // Brackets inside strings, including escaped quotes, do not count.
    assert!(!json_too_deep(br#"{"a":"[[[[\"[[[["}"#, 1));
    assert!(!json_too_deep(br#"{"a":"\\"}"#, 1));
    assert!(json_too_deep(br#"{"a":"\\","b":[]}"#, 1));
    let deep = "[".repeat(100_000);
    assert!(json_too_deep(deep.as_bytes(), 32));
    // Unbalanced closers never underflow.
    assert!(!json_too_deep(b"]]]]}}}", 1));
}

#[test]
fn value_depth() {
    let v = crate::json::from_str(r#"{"a":{"b":[1]}}"#).unwrap();
    assert!(!value_too_deep(&v, 3));
    assert!(value_too_deep(&v, 2));
    assert!(!value_too_deep(&crate::json::json!(5), 0));
    assert!(!value_too_deep(&crate::json::json!({}), 1));
}
