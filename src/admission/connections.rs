//! Connections waiting for a request: a share per peer address.
//!
//! A connection holds one of `server.max_connections` from the moment it
//! is accepted. Until a request's head is complete (just opened, or kept
//! alive between requests) nothing is known about it but its peer, and a
//! client that opens connections and sends nothing (or a byte at a time)
//! could hold every one for `server.header_read_timeout_ms`, while other
//! clients wait in the accept backlog. So each peer address (IPv6: its
//! /64) may hold `server.max_pending_connections_per_ip` connections
//! without a request under way; one more is closed as soon as it is
//! accepted. Connections from `server.trusted_proxies` are exempt: a
//! proxy carries many clients, and which ones is only known from the
//! request's headers, which the per-request shares then use.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use super::{Admission, Refused, Shares};
use crate::config::Config;
use crate::limits::ip_key;

/// One accepted connection's place in its peer's share.
#[derive(Debug)]
pub struct Connection {
    admission: Arc<Admission>,
    /// `None`: exempt (a trusted proxy, or no cap).
    key: Option<IpAddr>,
    /// No request under way: counted in the peer's share.
    pending: AtomicBool,
}

impl Admission {
    /// Takes a place for a connection accepted from `peer`, or refuses it
    /// when the peer holds its share of connections without a request.
    pub fn open_connection(
        self: &Arc<Self>,
        config: &Config,
        peer: IpAddr,
    ) -> Result<Arc<Connection>, Refused> {
        let trusted = config
            .server
            .trusted_proxies
            .iter()
            .any(|net| net.contains(&peer));
        let cap = Shares::of(config).pending_per_ip.filter(|_| !trusted);
        let key = match cap {
            None => None,
            Some(max) => {
                let key = ip_key(peer);
                let mut ledger = self.ledger();
                let h = ledger.by_key.entry(key).or_default();
                // Over the cap means the entry holds something: none is
                // left behind empty.
                if h.pending >= max {
                    return Err(Refused::PerIpConnections);
                }
                h.pending += 1;
                Some(key)
            }
        };
        Ok(Arc::new(Connection {
            admission: self.clone(),
            key,
            pending: AtomicBool::new(key.is_some()),
        }))
    }
}

impl Connection {
    /// A request's head is complete: the connection is busy until the
    /// returned guard is dropped (the response is built).
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.set_pending(false);
        Busy(self.clone())
    }

    fn set_pending(&self, pending: bool) {
        let Some(key) = self.key else {
            return;
        };
        if self.pending.swap(pending, Ordering::AcqRel) == pending {
            return;
        }
        let mut ledger = self.admission.ledger();
        if pending {
            // Back from a request: counted again, never refused (it is
            // open already; the keep-alive timeout closes it if idle).
            ledger.by_key.entry(key).or_default().pending += 1;
        } else {
            ledger.update(key, |h| h.pending = h.pending.saturating_sub(1));
        }
    }
}

/// A connection with a request under way; waiting again once dropped.
#[derive(Debug)]
pub struct Busy(Arc<Connection>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.set_pending(true);
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.set_pending(false);
    }
}
