//! IP anonymization: truncation to a network prefix, and a keyed hash whose
//! secret key exists only in this process's memory and changes every UTC
//! day, so a hash links a visitor's events within one day and never across
//! days, instances or restarts, and cannot be reversed by trying all 2³²
//! IPv4 addresses without the key.

use std::fmt::Write as _;
use std::hash::Hasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;
use siphasher::sip::SipHasher13;

/// Bits of an IPv4 address kept by truncation (a /24: the last octet is 0).
pub const IPV4_PREFIX_BITS: u32 = 24;
/// Bits of an IPv6 address kept by truncation (a /48).
pub const IPV6_PREFIX_BITS: u32 = 48;
/// Hex characters of an IP hash (64 bits).
pub const HASH_HEX_LEN: usize = 16;
const SECONDS_PER_DAY: i64 = 86_400;

/// The address with its host part zeroed: IPv4 → /24, IPv6 → /48.
/// IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`) are treated as IPv4.
pub fn truncate(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let mask = u32::MAX << (32 - IPV4_PREFIX_BITS);
            IpAddr::V4(Ipv4Addr::from(u32::from(v4) & mask))
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX << (128 - IPV6_PREFIX_BITS);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
    }
}

/// Writes `ip` truncated into `out`, reusing its allocation. IPv4 (the
/// common case) is formatted by hand: `Display` costs several times more.
pub fn write_truncated(ip: IpAddr, out: &mut String) {
    out.clear();
    match truncate(ip) {
        IpAddr::V4(v4) => {
            let mut digits = itoa::Buffer::new();
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(digits.format(octet));
            }
        }
        // Writing to a String cannot fail.
        v6 => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// The UTC day number of a Unix timestamp (seconds).
pub fn utc_day(unix_secs: i64) -> i64 {
    unix_secs.div_euclid(SECONDS_PER_DAY)
}

#[derive(Debug)]
struct DayKey {
    day: i64,
    k0: u64,
    k1: u64,
}

/// Keyed IP hashing with a daily key.
#[derive(Debug)]
pub struct IpHasher {
    current: ArcSwap<DayKey>,
    /// Serializes key rotation so every event of a day uses the same key.
    rotation: Mutex<()>,
}

impl Default for IpHasher {
    fn default() -> Self {
        IpHasher::new()
    }
}

impl IpHasher {
    pub fn new() -> IpHasher {
        IpHasher {
            // Day i64::MIN never matches: the first hash creates the key.
            current: ArcSwap::from_pointee(DayKey {
                day: i64::MIN,
                k0: 0,
                k1: 0,
            }),
            rotation: Mutex::new(()),
        }
    }

    fn key_for(&self, day: i64) -> Arc<DayKey> {
        let k = self.current.load_full();
        if k.day == day {
            return k;
        }
        let _guard = self
            .rotation
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let k = self.current.load_full();
        if k.day == day {
            return k;
        }
        let [k0, k1] = random_key();
        let fresh = Arc::new(DayKey { day, k0, k1 });
        // The previous day's key is dropped here and exists nowhere else.
        self.current.store(fresh.clone());
        fresh
    }

    /// 16 hex characters: SipHash-1-3 of the address under the key of
    /// `day` (see [`utc_day`]).
    pub fn hash(&self, ip: IpAddr, day: i64) -> String {
        let key = self.key_for(day);
        let mut h = SipHasher13::new_with_keys(key.k0, key.k1);
        match ip.to_canonical() {
            IpAddr::V4(v4) => h.write(&v4.octets()),
            IpAddr::V6(v6) => h.write(&v6.octets()),
        }
        let mut out = String::with_capacity(HASH_HEX_LEN);
        let _ = write!(out, "{:016x}", h.finish());
        out
    }
}

/// 128 random bits from the operating system.
fn random_key() -> [u64; 2] {
    let mut buf = [0u8; 16];
    if getrandom::fill(&mut buf).is_err() {
        // No OS randomness: fall back to std's per-process random hasher
        // keys (also seeded from the OS, but by a different path).
        use std::hash::BuildHasher;
        let s = std::collections::hash_map::RandomState::new();
        return [s.hash_one(1u8), s.hash_one(2u8)];
    }
    let (a, b) = buf.split_at(8);
    [
        u64::from_le_bytes(a.try_into().unwrap_or_default()),
        u64::from_le_bytes(b.try_into().unwrap_or_default()),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn truncation_keeps_a_24_or_a_48() {
        assert_eq!(truncate(ip("81.2.69.160")), ip("81.2.69.0"));
        assert_eq!(truncate(ip("10.0.0.255")), ip("10.0.0.0"));
        assert_eq!(
            truncate(ip("2001:db8:1234:5678:9abc::1")),
            ip("2001:db8:1234::")
        );
        assert_eq!(truncate(ip("::ffff:81.2.69.160")), ip("81.2.69.0"));
        let mut s = String::from("81.2.69.160");
        write_truncated(ip("81.2.69.160"), &mut s);
        assert_eq!(s, "81.2.69.0");
        write_truncated(ip("255.254.0.9"), &mut s);
        assert_eq!(s, "255.254.0.0");
        write_truncated(ip("2001:db8::1"), &mut s);
        assert_eq!(s, "2001:db8::");
    }

    #[test]
    fn hash_is_stable_within_a_day_and_changes_across_days() {
        let h = IpHasher::new();
        let day = utc_day(1_767_268_800); // 2026-01-01T12:00:00Z
        assert_eq!(day, utc_day(1_767_225_600)); // 2026-01-01T00:00:00Z
        assert_ne!(day, utc_day(1_767_225_599));
        let a = h.hash(ip("81.2.69.160"), day);
        assert_eq!(a.len(), HASH_HEX_LEN);
        assert!(a.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(h.hash(ip("81.2.69.160"), day), a);
        assert_eq!(h.hash(ip("::ffff:81.2.69.160"), day), a);
        assert_ne!(h.hash(ip("81.2.69.161"), day), a);
        // The next day has a new key; the old one is gone for good.
        let next = h.hash(ip("81.2.69.160"), day + 1);
        assert_ne!(next, a);
        assert_ne!(h.hash(ip("81.2.69.160"), day), a);
    }

    #[test]
    fn hash_keys_differ_between_instances() {
        let day = 20_000;
        assert_ne!(
            IpHasher::new().hash(ip("81.2.69.160"), day),
            IpHasher::new().hash(ip("81.2.69.160"), day)
        );
    }
}
