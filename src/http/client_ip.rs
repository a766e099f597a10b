//! The client address: the peer, or, when the peer is a trusted proxy, the
//! nearest untrusted address in `X-Forwarded-For` / `Forwarded`.
//!
//! Headers from untrusted peers are ignored: anyone can write them.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let mut chain: Vec<IpAddr> = Vec::new();
    for v in headers.get_all("x-forwarded-for") {
        if let Ok(s) = v.to_str() {
            chain.extend(s.split(',').filter_map(|p| parse_addr(p.trim())));
        }
    }
    if chain.is_empty() {
        for v in headers.get_all("forwarded") {
            if let Ok(s) = v.to_str() {
                chain.extend(forwarded_for(s));
            }
        }
    }
    // Walk from the nearest hop outwards; the first untrusted address is the
    // client. If every hop is a proxy, the farthest one is the best we know.
    chain
        .iter()
        .rev()
        .find(|ip| !is_trusted(ip))
        .or(chain.first())
        .copied()
        .unwrap_or(peer)
}

/// `for=` values of a `Forwarded` header (RFC 7239), in order.
fn forwarded_for(header: &str) -> Vec<IpAddr> {
    header
        .split(',')
        .flat_map(|elem| elem.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            if !k.trim().eq_ignore_ascii_case("for") {
                return None;
            }
            parse_addr(v.trim().trim_matches('"'))
        })
        .collect()
}

/// Parses `1.2.3.4`, `1.2.3.4:80`, `[2001:db8::1]`, `[2001:db8::1]:80`, `2001:db8::1`.
fn parse_addr(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = s.parse() {
        return Some(ip);
    }
    if let Some(rest) = s.strip_prefix('[') {
        return rest.split(']').next()?.parse().ok();
    }
    let (host, _port) = s.rsplit_once(':')?;
    host.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        m
    }

    fn nets(s: &[&str]) -> Vec<IpNet> {
        s.iter().map(|n| n.parse().unwrap()).collect()
    }

    #[test]
    fn untrusted_peer_headers_are_ignored() {
        let ip = resolve(
            "198.51.100.7".parse().unwrap(),
            &h(&[("x-forwarded-for", "1.2.3.4")]),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(ip.to_string(), "198.51.100.7");
    }

    #[test]
    fn trusted_proxy_chain_yields_nearest_untrusted() {
        let ip = resolve(
            "10.0.0.1".parse().unwrap(),
            &h(&[("x-forwarded-for", "6.6.6.6, 203.0.113.5, 10.0.0.2")]),
            &nets(&["10.0.0.0/8"]),
        );
        assert_eq!(ip.to_string(), "203.0.113.5");
    }

    #[test]
    fn forwarded_header_with_ports_and_ipv6() {
        let ip = resolve(
            "127.0.0.1".parse().unwrap(),
            &h(&[(
                "forwarded",
                r#"for="[2001:db8::17]:4711";proto=https, for=127.0.0.1"#,
            )]),
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(ip.to_string(), "2001:db8::17");
    }

    #[test]
    fn garbage_headers_fall_back_to_peer() {
        let ip = resolve(
            "127.0.0.1".parse().unwrap(),
            &h(&[("x-forwarded-for", "unknown, not-an-ip")]),
            &nets(&["127.0.0.1/32"]),
        );
        assert_eq!(ip.to_string(), "127.0.0.1");
    }
}
