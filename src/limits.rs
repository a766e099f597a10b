//! Abuse limits: a request rate per client IP, an event rate per source, a
//! global cap on requests in flight, the idle keep-alive timeout of a
//! connection, and the JSON nesting depth check.
//!
//! Contract:
//! - Per client IP (after trusted-proxy resolution; IPv6 clients are keyed
//!   by their /64, since one host commonly holds a whole /64): at most
//!   `rate_limit.per_ip_rps` requests per second sustained, bursts of
//!   `rate_limit.per_ip_burst`. Checked before the body is read, so a refused
//!   request costs almost nothing.
//! - Per source: at most `sources[].events_per_second` events per second
//!   (a batch counts its events, not 1). The burst is one second of events,
//!   and at least one full batch (`limits.max_batch_events`), so any
//!   well-formed batch can pass on an idle limiter.
//! - Over either rate: 429 `rate_limited` with `Retry-After` in whole
//!   seconds (at least 1), computed from when the limiter would next allow
//!   the request. The refusal is request-level: its events are not received.
//! - At most `rate_limit.max_concurrent_requests` requests in flight; one
//!   more is answered 503 `overloaded` at once (not queued).
//! - Keyed state stays bounded: every `rate_limit.purge_interval_ms` the
//!   per-IP limiter forgets keys whose state is indistinguishable from a
//!   fresh one (`retain_recent`) and gives the memory back (`shrink_to_fit`).
//!
//! `rate_limit.enabled = false` turns the two rate limiters off; the
//! concurrency cap always applies.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use serde_json::{Map, Value};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};

use crate::config::Config;
use crate::metrics;

/// Prefix length by which IPv6 clients are keyed.
pub const IPV6_KEY_PREFIX: u8 = 64;
/// Smallest `Retry-After` sent with a 429.
const MIN_RETRY_AFTER_SECS: u32 = 1;
/// `[rate_limit]`: lives in `config` with the other sections.
pub use crate::config::RateLimitConfig;
/// hyper's smallest allowed read buffer, hence the smallest header limit.
pub use crate::config::MIN_HEADER_BYTES;

/// Which limit refused a request (the `limiter` metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limiter {
    Ip,
    Source,
    Concurrency,
}

impl Limiter {
    pub fn label(self) -> &'static str {
        match self {
            Limiter::Ip => metrics::LIMITER_IP,
            Limiter::Source => metrics::LIMITER_SOURCE,
            Limiter::Concurrency => metrics::LIMITER_CONCURRENCY,
        }
    }
}

/// A request refused by a rate limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{} rate limit reached; retry after {retry_after_secs} s", limiter.label())]
pub struct RateLimited {
    pub limiter: Limiter,
    /// Whole seconds until the limiter would allow the request, at least 1.
    pub retry_after_secs: u32,
}

/// Key of the per-IP limiter: the address, or an IPv6 address's /64.
pub fn ip_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let bits = u128::from(v6);
                let mask = u128::MAX << (128 - u32::from(IPV6_KEY_PREFIX));
                IpAddr::V6(Ipv6Addr::from(bits & mask))
            }
        },
    }
}

type KeyedLimiter<C> =
    RateLimiter<IpAddr, DashMapStateStore<IpAddr>, C, NoOpMiddleware<<C as Clock>::Instant>>;
type DirectLimiter<C> =
    RateLimiter<NotKeyed, InMemoryState, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// The gateway's limiters, shared by all connections.
pub struct Limits<C: Clock = DefaultClock> {
    per_ip: Option<KeyedLimiter<C>>,
    /// By source id, with the source's sustained events per second.
    per_source: HashMap<String, (DirectLimiter<C>, u32)>,
    in_flight: Arc<Semaphore>,
    /// The size of `in_flight`.
    max_in_flight: usize,
    clock: C,
}

impl Limits<DefaultClock> {
    pub fn new(config: &Config) -> Limits<DefaultClock> {
        Limits::with_clock(config, DefaultClock::default())
    }
}

impl<C: Clock + Clone> Limits<C> {
    /// Builds the limiters on `clock` (tests pass a fake one).
    pub fn with_clock(config: &Config, clock: C) -> Limits<C> {
        let r = &config.rate_limit;
        let per_ip = r
            .enabled
            .then(|| per_second_quota(r.per_ip_rps, r.per_ip_burst))
            .map(|q| RateLimiter::dashmap_with_clock(q, clock.clone()));
        let batch = u32::try_from(config.limits.max_batch_events).unwrap_or(u32::MAX);
        let per_source = if r.enabled {
            config
                .sources
                .iter()
                .filter_map(|s| {
                    let eps = s.events_per_second?;
                    let q = per_second_quota(eps, eps.max(batch));
                    Some((
                        s.id.clone(),
                        (RateLimiter::direct_with_clock(q, clock.clone()), eps),
                    ))
                })
                .collect()
        } else {
            HashMap::new()
        };
        Limits {
            per_ip,
            per_source,
            in_flight: Arc::new(Semaphore::new(r.max_concurrent_requests)),
            max_in_flight: r.max_concurrent_requests,
            clock,
        }
    }

    /// The limiters of `config` (a configuration reload), on the same clock.
    /// Requests in flight keep their slots: with an unchanged
    /// `max_concurrent_requests` the slots are this instance's, shared.
    /// Rate limiters start with full buckets.
    pub fn reconfigured(&self, config: &Config) -> Limits<C> {
        let mut next = Limits::with_clock(config, self.clock.clone());
        if next.max_in_flight == self.max_in_flight {
            next.in_flight = self.in_flight.clone();
        }
        next
    }

    /// Counts one request of `ip` against its rate.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let Some(limiter) = &self.per_ip else {
            return Ok(());
        };
        limiter
            .check_key(&ip_key(ip))
            .map_err(|nu| self.refuse(Limiter::Ip, &nu))
    }

    /// Counts `events` events of the source against its rate.
    pub fn check_source(&self, source_id: &str, events: usize) -> Result<(), RateLimited> {
        let Some((limiter, eps)) = self.per_source.get(source_id) else {
            return Ok(());
        };
        // An empty batch costs nothing.
        let Some(n) = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        match limiter.check_n(n) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(nu)) => Err(self.refuse(Limiter::Source, &nu)),
            // More events than the burst can ever hold (not possible for a
            // batch within `limits.max_batch_events`): say how long the
            // sustained rate needs for them.
            Err(_) => Err(self.refused(Limiter::Source, n.get().div_ceil((*eps).max(1)))),
        }
    }

    /// Takes an in-flight slot for one request, or `None` (and counts the
    /// refusal) when all are taken.
    pub fn try_begin(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.in_flight.clone().try_acquire_owned().ok();
        if permit.is_none() {
            metrics::rate_limited(Limiter::Concurrency.label());
        }
        permit
    }

    /// Forgets per-IP keys that are back to a fresh state and returns the
    /// number of keys kept.
    pub fn purge(&self) -> usize {
        let Some(limiter) = &self.per_ip else {
            return 0;
        };
        limiter.retain_recent();
        limiter.shrink_to_fit();
        let kept = limiter.len();
        metrics::rate_limit_keys(kept);
        kept
    }

    /// Keys the per-IP limiter holds now.
    pub fn tracked_ips(&self) -> usize {
        self.per_ip.as_ref().map_or(0, |l| l.len())
    }

    fn refuse(&self, limiter: Limiter, nu: &NotUntil<C::Instant>) -> RateLimited {
        let wait = nu.wait_time_from(self.clock.now());
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        self.refused(limiter, u32::try_from(secs).unwrap_or(u32::MAX))
    }

    fn refused(&self, limiter: Limiter, secs: u32) -> RateLimited {
        metrics::rate_limited(limiter.label());
        RateLimited {
            limiter,
            retry_after_secs: secs.max(MIN_RETRY_AFTER_SECS),
        }
    }
}

fn per_second_quota(rate: u32, burst: u32) -> Quota {
    let rate = NonZeroU32::new(rate).unwrap_or(NonZeroU32::MIN);
    let burst = NonZeroU32::new(burst.max(1)).unwrap_or(NonZeroU32::MIN);
    Quota::per_second(rate).allow_burst(burst)
}

/// Purges the per-IP limiter every `interval` until `stop` turns true;
/// `limits` gives the running limiters (they change on a configuration reload).
pub async fn purge_loop(
    limits: impl Fn() -> Arc<Limits> + Send + 'static,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tick.tick() => {}
        }
        let l = limits();
        // Retaining over a large map walks every shard: off the reactor.
        let _ = tokio::task::spawn_blocking(move || l.purge()).await;
    }
}

/// Whether `text` (JSON) nests objects and arrays deeper than `max`.
/// A byte scan counting brackets outside strings: cheap, allocation-free,
/// and safe on any input (malformed JSON is the parser's to reject).
pub fn json_too_deep(text: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in text {
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// Whether a parsed value nests objects and arrays deeper than `max`
/// (recursion stops at `max`).
pub fn value_too_deep(v: &Value, max: usize) -> bool {
    match v {
        Value::Array(a) => max == 0 || a.iter().any(|c| value_too_deep(c, max - 1)),
        Value::Object(m) => object_too_deep(m, max),
        _ => false,
    }
}

/// [`value_too_deep`] of an object.
pub fn object_too_deep(m: &Map<String, Value>, max: usize) -> bool {
    max == 0 || m.values().any(|c| value_too_deep(c, max - 1))
}

/// A connection that closes itself when idle: once a response was written
/// (or the connection was opened) and no byte of a next request arrived for
/// `timeout`, reads report end of stream, which hyper treats as the client
/// closing an idle keep-alive connection. The head of a request that has
/// begun is bounded by hyper's `header_read_timeout`, its body by
/// `server.body_read_timeout_ms`.
pub struct IdleTimeout<T> {
    inner: T,
    timeout: Duration,
    idle: bool,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> IdleTimeout<T> {
    pub fn new(inner: T, timeout: Duration) -> IdleTimeout<T> {
        IdleTimeout {
            inner,
            timeout,
            idle: true,
            timer: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for IdleTimeout<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    this.idle = false;
                    this.timer = None;
                }
                Poll::Ready(r)
            }
            Poll::Pending => {
                if this.idle {
                    let timeout = this.timeout;
                    let timer = this
                        .timer
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if timer.as_mut().poll(cx).is_ready() {
                        // End of stream: nothing added to `buf`.
                        return Poll::Ready(Ok(()));
                    }
                }
                Poll::Pending
            }
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for IdleTimeout<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.idle = true;
            this.timer = None;
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            this.idle = true;
            this.timer = None;
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
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
            per_ip: Some(RateLimiter::dashmap_with_clock(
                Quota::with_period(Duration::from_millis(4500)).unwrap(),
                clock.clone(),
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
        let err = Config::from_toml(
            "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\nevents_per_second = 0\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("sources[0].events_per_second"), "{err}");
    }

    #[test]
    fn example_config_shows_the_defaults() {
        let example = Config::from_toml(include_str!("../config/trackgate.example.toml")).unwrap();
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
        let v: Value = serde_json::from_str(r#"{"a":{"b":[1]}}"#).unwrap();
        assert!(!value_too_deep(&v, 3));
        assert!(value_too_deep(&v, 2));
        assert!(!value_too_deep(&serde_json::json!(5), 0));
        assert!(!value_too_deep(&serde_json::json!({}), 1));
    }
}
