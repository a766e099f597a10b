//! The per-address bound on public opt-outs: how many new ids one client
//! address (an IPv6 /64) added to one source in the current window.
//!
//! Kept on the instance that takes the opt-out, in memory only: the list
//! of people who opted out must not hold their addresses, so this count is
//! not on the topic and starts again when the instance restarts. The
//! per-source share, counted from the list itself, is what holds across
//! instances and restarts; this bound only makes one address slow at
//! filling it.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::time::{Duration, Instant};

/// Prefix length an IPv6 client is grouped by: one host commonly holds a
/// whole /64.
const IPV6_GROUP_PREFIX: u32 = 64;
/// Expired windows are swept when their number reaches this, or twice the
/// number kept by the last sweep.
const SWEEP_MIN: usize = 1024;

/// The group an address is bounded by: IPv4 itself (an IPv4-mapped IPv6
/// address too), IPv6 by its /64.
pub fn address_group(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mask = u128::MAX << (128 - IPV6_GROUP_PREFIX);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        },
    }
}

/// New public entries one address group added to one scope in its current
/// window.
#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    added: u32,
}

/// Every (scope, address group)'s window.
#[derive(Debug, Default)]
pub(super) struct AddressWindows {
    windows: HashMap<(Box<str>, IpAddr), Window>,
    /// Windows kept by the last sweep.
    swept_to: usize,
}

impl AddressWindows {
    /// Charges `n` new entries to `address`'s window in `scope`, or refuses
    /// them all with the seconds until the window ends.
    pub(super) fn charge(
        &mut self,
        scope: &str,
        address: IpAddr,
        n: usize,
        bound: u32,
        window: Duration,
    ) -> Result<(), u32> {
        let now = Instant::now();
        if self.windows.len() >= SWEEP_MIN.max(self.swept_to.saturating_mul(2)) {
            self.windows
                .retain(|_, w| now.duration_since(w.started) < window);
            self.swept_to = self.windows.len();
        }
        let fresh = Window {
            started: now,
            added: 0,
        };
        let w = self
            .windows
            .entry((scope.into(), address_group(address)))
            .or_insert(fresh);
        if now.duration_since(w.started) >= window {
            *w = fresh;
        }
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        if w.added.saturating_add(n) > bound {
            let left = window.saturating_sub(now.duration_since(w.started));
            return Err(u32::try_from(left.as_secs().max(1)).unwrap_or(u32::MAX));
        }
        w.added += n;
        Ok(())
    }
}
