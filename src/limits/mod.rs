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
//!
//! Layout: the limiters here, `depth` (JSON nesting), `idle` (keep-alive
//! timeout), `output` (what a request will write: the batch context merged
//! into every event); their configuration lives in `config`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DashMapStateStore;
use governor::state::{InMemoryState, NotKeyed};
use governor::{NotUntil, Quota, RateLimiter};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::metrics;

mod depth;
mod idle;
pub mod output;
#[cfg(test)]
mod tests;

pub use depth::{json_too_deep, object_too_deep, value_too_deep};
pub use idle::IdleTimeout;

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
    /// With its quota: a reload with the same quota keeps the limiter.
    per_ip: Option<(Arc<KeyedLimiter<C>>, Quota)>,
    /// By source id, with the source's sustained events per second and
    /// the quota (kept by a reload that does not change it).
    per_source: HashMap<String, (Arc<DirectLimiter<C>>, u32, Quota)>,
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
            .map(|q| {
                (
                    Arc::new(RateLimiter::dashmap_with_clock(q, clock.clone())),
                    q,
                )
            });
        let batch = u32::try_from(config.limits.max_batch_events).unwrap_or(u32::MAX);
        let per_source = if r.enabled {
            config
                .sources
                .iter()
                .filter_map(|s| {
                    let eps = s.events_per_second?;
                    let q = per_second_quota(eps, eps.max(batch));
                    let limiter = Arc::new(RateLimiter::direct_with_clock(q, clock.clone()));
                    Some((s.id.clone(), (limiter, eps, q)))
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
    /// What did not change carries over with its state, shared with this
    /// instance: the in-flight slots (same `max_concurrent_requests`), the
    /// per-IP limiter (same quota) and each source's limiter (same source
    /// id and quota). A client over its limit stays limited through a
    /// reload; only a changed limit starts with a full bucket.
    pub fn reconfigured(&self, config: &Config) -> Limits<C> {
        let mut next = Limits::with_clock(config, self.clock.clone());
        if next.max_in_flight == self.max_in_flight {
            next.in_flight = self.in_flight.clone();
        }
        if let (Some(old), Some(new)) = (&self.per_ip, &mut next.per_ip) {
            if old.1 == new.1 {
                new.0 = old.0.clone();
            }
        }
        for (id, new) in next.per_source.iter_mut() {
            if let Some(old) = self.per_source.get(id).filter(|old| old.2 == new.2) {
                new.0 = old.0.clone();
            }
        }
        next
    }

    /// Counts one request of `ip` against its rate.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), RateLimited> {
        let Some((limiter, _)) = &self.per_ip else {
            return Ok(());
        };
        limiter
            .check_key(&ip_key(ip))
            .map_err(|nu| self.refuse(Limiter::Ip, &nu))
    }

    /// Counts `events` events of the source against its rate.
    pub fn check_source(&self, source_id: &str, events: usize) -> Result<(), RateLimited> {
        let Some((limiter, eps, _)) = self.per_source.get(source_id) else {
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
        let Some((limiter, _)) = &self.per_ip else {
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
        self.per_ip.as_ref().map_or(0, |(l, _)| l.len())
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

/// Purges the per-IP limiter every `interval` until `stop` is cancelled;
/// `limits` gives the running limiters (they change on a configuration reload).
pub async fn purge_loop(
    limits: impl Fn() -> Arc<Limits> + Send + 'static,
    interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => {}
        }
        let l = limits();
        // Retaining over a large map walks every shard: off the reactor.
        let _ = tokio::task::spawn_blocking(move || l.purge()).await;
    }
}
