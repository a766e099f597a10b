//! Admission: fair shares of what requests hold while they run, per client
//! address, so that one address (however slow or greedy) cannot take what
//! every other address needs.
//!
//! What is shared, and each address's share of it (an IPv6 address counts
//! with its /64, as the rate limiter keys it: one host commonly holds a
//! whole /64; behind `server.trusted_proxies`, the forwarded address):
//! - requests in flight: `server.max_requests_per_ip`;
//! - bytes held by requests in flight, `server.max_buffered_body_bytes`
//!   for all: `server.max_buffered_body_bytes_per_ip`;
//! - connections without a request under way (see [`connections`]):
//!   `server.max_pending_connections_per_ip`, by peer address.
//!
//! A request is charged for everything it will hold, as soon as it is
//! known, before the work: its announced `Content-Length` when its head
//! arrives (an unknown length is charged as the bytes arrive, so a client
//! that announces nothing cannot hold the request limit up front, and one
//! that trickles holds only what it sent), its decompressed size, then what
//! its records will take (see `limits::output`: the batch context is merged
//! into every event, so the records can be far larger than the body). A
//! request over its address's share or the global budget gets 503
//! `overloaded` with `Retry-After` at once; its events are never received.
//!
//! The caps are read from the running configuration on every call, so they
//! follow a reload (`limits.max_request_bytes` among them).
//!
//! Cost on the hot path: one small mutex-protected map keyed by address,
//! taken when a request begins, when its charge grows and when it ends; an
//! address's entry is removed when it holds nothing.

pub mod connections;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use http::header::CONTENT_LENGTH;
use http::HeaderMap;

use crate::config::Config;
use crate::limits::ip_key;

pub use connections::Connection;

/// Which bound refused a request or connection (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The address has `server.max_requests_per_ip` requests in flight.
    PerIp,
    /// The address holds its `server.max_buffered_body_bytes_per_ip`.
    PerIpBytes,
    /// All requests hold `server.max_buffered_body_bytes`.
    BodyBudget,
    /// The address has `server.max_pending_connections_per_ip` connections
    /// without a request under way.
    PerIpConnections,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::PerIp => "per_ip_concurrency",
            Refused::PerIpBytes => "per_ip_body_bytes",
            Refused::BodyBudget => "body_budget",
            Refused::PerIpConnections => "per_ip_connections",
        }
    }
}

/// The caps of one call, from the running configuration.
#[derive(Debug, Clone, Copy)]
pub struct Shares {
    requests_per_ip: Option<usize>,
    bytes: u64,
    bytes_per_ip: u64,
    max_request_bytes: u64,
    pending_per_ip: Option<usize>,
}

impl Shares {
    pub fn of(config: &Config) -> Shares {
        let s = &config.server;
        Shares {
            requests_per_ip: (s.max_requests_per_ip > 0).then_some(s.max_requests_per_ip),
            bytes: s.max_buffered_body_bytes,
            bytes_per_ip: s.max_buffered_body_bytes_per_ip,
            max_request_bytes: config.limits.max_request_bytes as u64,
            pending_per_ip: (s.max_pending_connections_per_ip > 0)
                .then_some(s.max_pending_connections_per_ip),
        }
    }
}

/// What one address holds now.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Held {
    requests: usize,
    bytes: u64,
    pending: usize,
}

#[derive(Debug, Default)]
struct Ledger {
    /// Bytes held by every request in flight.
    bytes: u64,
    /// Only addresses that hold something.
    by_key: HashMap<IpAddr, Held>,
}

impl Ledger {
    /// Applies `change` to `key`'s entry and removes it when it holds nothing.
    fn update(&mut self, key: IpAddr, change: impl FnOnce(&mut Held)) {
        if let Some(h) = self.by_key.get_mut(&key) {
            change(h);
            if *h == Held::default() {
                self.by_key.remove(&key);
            }
        }
    }
}

/// Shared by every connection of the public listener.
#[derive(Debug, Default)]
pub struct Admission {
    ledger: Mutex<Ledger>,
}

/// A request admitted: what it holds is given back when it is dropped.
#[derive(Debug)]
pub struct Admitted {
    admission: Arc<Admission>,
    key: IpAddr,
    shares: Shares,
    /// Bytes charged so far.
    bytes: AtomicU64,
}

impl Admission {
    pub fn new() -> Admission {
        Admission::default()
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Admits a request from client `ip` whose body is announced by
    /// `headers` (`has_body`: a method that carries one), under the caps of
    /// `config` (the running configuration).
    pub fn admit(
        self: &Arc<Self>,
        config: &Config,
        ip: IpAddr,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<Admitted, Refused> {
        let shares = Shares::of(config);
        // Over the request limit is refused later with 413: hold no more.
        // Unknown: charged as the bytes arrive (`http::body`).
        let bytes = if has_body {
            announced_length(headers).map_or(0, |n| n.min(shares.max_request_bytes))
        } else {
            0
        };
        let key = ip_key(ip);
        let mut ledger = self.ledger();
        let held = ledger.by_key.get(&key).copied().unwrap_or_default();
        if shares
            .requests_per_ip
            .is_some_and(|max| held.requests >= max)
        {
            return Err(Refused::PerIp);
        }
        check_bytes(&ledger, &held, bytes, &shares)?;
        ledger.bytes += bytes;
        let h = ledger.by_key.entry(key).or_default();
        h.requests += 1;
        h.bytes += bytes;
        drop(ledger);
        Ok(Admitted {
            admission: self.clone(),
            key,
            shares,
            bytes: AtomicU64::new(bytes),
        })
    }

    /// Addresses holding something now.
    pub fn tracked_ips(&self) -> usize {
        self.ledger().by_key.len()
    }

    /// Bytes held by every request in flight now.
    pub fn held_bytes(&self) -> u64 {
        self.ledger().bytes
    }
}

/// Whether `more` bytes fit both the address's share and the global budget.
fn check_bytes(ledger: &Ledger, held: &Held, more: u64, shares: &Shares) -> Result<(), Refused> {
    if more == 0 {
        return Ok(());
    }
    if held.bytes.saturating_add(more) > shares.bytes_per_ip {
        return Err(Refused::PerIpBytes);
    }
    if ledger.bytes.saturating_add(more) > shares.bytes {
        return Err(Refused::BodyBudget);
    }
    Ok(())
}

fn announced_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

impl Admitted {
    /// Raises what the request holds to `total` bytes (nothing when it holds
    /// that much already).
    pub fn charge_to(&self, total: u64) -> Result<(), Refused> {
        let held_now = self.bytes.load(Ordering::Relaxed);
        if total <= held_now {
            return Ok(());
        }
        let more = total - held_now;
        let mut ledger = self.admission.ledger();
        let held = ledger.by_key.get(&self.key).copied().unwrap_or_default();
        check_bytes(&ledger, &held, more, &self.shares)?;
        ledger.bytes += more;
        ledger.update(self.key, |h| h.bytes += more);
        self.bytes.store(total, Ordering::Relaxed);
        Ok(())
    }

    /// Bytes the request holds now.
    pub fn charged(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        let bytes = *self.bytes.get_mut();
        let mut ledger = self.admission.ledger();
        ledger.bytes = ledger.bytes.saturating_sub(bytes);
        ledger.update(self.key, |h| {
            h.requests = h.requests.saturating_sub(1);
            h.bytes = h.bytes.saturating_sub(bytes);
        });
    }
}

tokio::task_local! {
    /// The request the running task serves, set by the server around the
    /// API handler, so the HTTP layer can raise the charge as it learns
    /// what the request will cost without threading it through every call.
    static CURRENT: Admitted;
}

/// Runs `handler` as the request `admitted`: [`charge_to`] charges it, and
/// what it holds is given back when `handler` ends.
pub async fn serve_as<F: std::future::Future>(admitted: Admitted, handler: F) -> F::Output {
    CURRENT.scope(admitted, handler).await
}

/// Raises what the current request holds to `total` bytes (see
/// [`Admitted::charge_to`]); a refusal is counted
/// (`trackgate_rate_limited_total{limiter}`). Outside a request admitted
/// by the server (unit tests, benches) nothing is charged.
pub fn charge_to(total: u64) -> Result<(), Refused> {
    let result = CURRENT.try_with(|a| a.charge_to(total)).unwrap_or(Ok(()));
    if let Err(refused) = result {
        crate::metrics::rate_limited(refused.label());
    }
    result
}

#[cfg(test)]
mod tests;
