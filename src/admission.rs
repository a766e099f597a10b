//! Admission before a request is read: a cap on concurrent requests per
//! client IP and a global budget of request-body bytes.
//!
//! Without them a handful of addresses trickling slow bodies can hold every
//! in-flight slot (`rate_limit.max_concurrent_requests`) for the whole
//! `server.body_read_timeout_ms`, and buffered bodies can grow to
//! `max_concurrent_requests × limits.max_request_bytes`. A request over
//! either bound gets 503 `overloaded` with `Retry-After` at once; its
//! events are never received. The client IP is the one `server.trusted_proxies`
//! resolves (so clients behind one proxy are told apart).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};

use http::header::CONTENT_LENGTH;
use http::HeaderMap;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::config::Config;

/// The unit of the body budget (a semaphore counts permits in `u32`).
const BUDGET_UNIT: u64 = 1024;

/// Which bound refused a request (metric label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    PerIp,
    BodyBudget,
}

impl Refused {
    pub fn label(self) -> &'static str {
        match self {
            Refused::PerIp => "per_ip_concurrency",
            Refused::BodyBudget => "body_budget",
        }
    }
}

/// Requests in flight per client IP.
type Active = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// Shared by every connection.
pub struct Admission {
    per_ip: Option<usize>,
    active: Active,
    budget: Arc<Semaphore>,
    max_request_bytes: u64,
}

/// Held while a request runs.
pub struct Admitted {
    ip: Option<(IpAddr, Active)>,
    _bytes: Option<OwnedSemaphorePermit>,
}

impl Drop for Admitted {
    fn drop(&mut self) {
        if let Some((ip, active)) = self.ip.take() {
            let mut map = active.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = map.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&ip);
                }
            }
        }
    }
}

impl Admission {
    pub fn new(config: &Config) -> Admission {
        let units = config.server.max_buffered_body_bytes.div_ceil(BUDGET_UNIT);
        Admission {
            per_ip: (config.server.max_requests_per_ip > 0)
                .then_some(config.server.max_requests_per_ip),
            active: Arc::new(Mutex::new(HashMap::new())),
            budget: Arc::new(Semaphore::new(
                units.min(Semaphore::MAX_PERMITS as u64) as usize
            )),
            max_request_bytes: config.limits.max_request_bytes as u64,
        }
    }

    /// Admits a request from `ip` whose body is announced by `headers`
    /// (`has_body`: a method that carries one).
    pub fn admit(
        &self,
        ip: IpAddr,
        headers: &HeaderMap,
        has_body: bool,
    ) -> Result<Admitted, Refused> {
        let bytes = if has_body {
            let announced = headers
                .get(CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok());
            // Over the request limit is refused later with 413; hold no more.
            announced
                .unwrap_or(self.max_request_bytes)
                .min(self.max_request_bytes)
        } else {
            0
        };
        let permit = if bytes > 0 {
            let units = bytes.div_ceil(BUDGET_UNIT).min(u64::from(u32::MAX)) as u32;
            Some(
                self.budget
                    .clone()
                    .try_acquire_many_owned(units)
                    .map_err(|_| Refused::BodyBudget)?,
            )
        } else {
            None
        };
        let ip = match self.per_ip {
            Some(max) => {
                let mut map = self.active.lock().unwrap_or_else(PoisonError::into_inner);
                let n = map.entry(ip).or_insert(0);
                if *n >= max {
                    return Err(Refused::PerIp);
                }
                *n += 1;
                Some((ip, self.active.clone()))
            }
            None => None,
        };
        Ok(Admitted { ip, _bytes: permit })
    }

    /// Client IPs with a request in flight.
    pub fn tracked_ips(&self) -> usize {
        self.active
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(extra: &str) -> Admission {
        let cfg = Config::from_toml(&format!(
            "{extra}\n[[sources]]\nid = \"s\"\nwrite_key = \"k\"\n"
        ))
        .expect("config");
        Admission::new(&cfg)
    }

    fn with_len(n: u64) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_LENGTH, n.to_string().parse().expect("header"));
        h
    }

    #[test]
    fn one_ip_cannot_take_more_than_its_share_and_others_still_get_in() {
        let a = admission("[server]\nmax_requests_per_ip = 2");
        let one: IpAddr = "192.0.2.1".parse().expect("ip");
        let two: IpAddr = "192.0.2.2".parse().expect("ip");
        let h = with_len(10);
        let first = a.admit(one, &h, true).expect("first");
        let _second = a.admit(one, &h, true).expect("second");
        assert_eq!(a.admit(one, &h, true).err(), Some(Refused::PerIp));
        assert!(a.admit(two, &h, true).is_ok());
        drop(first);
        assert!(a.admit(one, &h, true).is_ok());
    }

    #[test]
    fn announced_bodies_share_one_byte_budget() {
        let a = admission(
            "[server]\nmax_buffered_body_bytes = 1048576\n[limits]\nmax_request_bytes = 524288",
        );
        let ip: IpAddr = "192.0.2.1".parse().expect("ip");
        let half = a.admit(ip, &with_len(512 * 1024), true).expect("half");
        // No Content-Length: the request limit is held.
        let rest = a.admit(ip, &HeaderMap::new(), true).expect("rest");
        assert_eq!(
            a.admit(ip, &with_len(1), true).err(),
            Some(Refused::BodyBudget)
        );
        assert!(
            a.admit(ip, &HeaderMap::new(), false).is_ok(),
            "GET holds nothing"
        );
        drop((half, rest));
        assert!(a.admit(ip, &with_len(1024), true).is_ok());
        assert_eq!(a.tracked_ips(), 0);
    }
}
