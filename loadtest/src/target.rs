//! The target and broker addresses, and the loopback guard: a load test
//! only ever sends to this machine unless the operator says otherwise
//! (`--allow-remote`).

use std::net::{SocketAddr, ToSocketAddrs};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    #[error("target `{0}` must look like http://HOST:PORT (https is not supported)")]
    BadUrl(String),
    #[error("cannot resolve `{0}`")]
    Unresolvable(String),
    #[error("`{0}` is not a loopback address; pass --allow-remote to load a remote host")]
    NotLoopback(String),
}

/// Where requests go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    /// The `Host` header: the authority as given.
    pub authority: String,
}

/// Parses `http://host:port[/]` and applies the loopback guard.
pub fn parse_target(url: &str, allow_remote: bool) -> Result<Target, TargetError> {
    let bad = || TargetError::BadUrl(url.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(bad)?;
    let authority = rest.strip_suffix('/').unwrap_or(rest);
    if authority.is_empty() || authority.contains('/') || authority.contains('@') {
        return Err(bad());
    }
    let addr = resolve_guarded(authority, allow_remote)?;
    Ok(Target {
        addr,
        authority: authority.to_string(),
    })
}

/// Resolves `host:port`; every address it resolves to must be loopback
/// unless `allow_remote`.
pub fn resolve_guarded(host_port: &str, allow_remote: bool) -> Result<SocketAddr, TargetError> {
    let addrs: Vec<SocketAddr> = host_port
        .to_socket_addrs()
        .map_err(|_| TargetError::Unresolvable(host_port.to_string()))?
        .collect();
    let first = *addrs
        .first()
        .ok_or_else(|| TargetError::Unresolvable(host_port.to_string()))?;
    if !allow_remote && !addrs.iter().all(|a| a.ip().is_loopback()) {
        return Err(TargetError::NotLoopback(host_port.to_string()));
    }
    Ok(first)
}

/// Checks every `host:port` of a comma-separated broker list.
pub fn check_brokers(list: &str, allow_remote: bool) -> Result<(), TargetError> {
    for b in list.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        resolve_guarded(b, allow_remote)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_targets_are_accepted() {
        let t = parse_target("http://127.0.0.1:8080", false).unwrap();
        assert_eq!(t.addr, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert!(parse_target("http://127.5.6.7:80/", false).is_ok());
        assert!(parse_target("http://[::1]:8080", false).is_ok());
        assert!(parse_target("http://localhost:8080", false).is_ok());
    }

    #[test]
    fn non_loopback_targets_are_refused_without_the_flag() {
        for url in [
            "http://10.0.0.1:80",
            "http://192.168.1.1:80",
            "http://0.0.0.0:80",
            "http://[2001:db8::1]:80",
        ] {
            assert!(
                matches!(parse_target(url, false), Err(TargetError::NotLoopback(_))),
                "{url}"
            );
        }
        assert!(parse_target("http://192.0.2.1:80", true).is_ok());
        assert!(matches!(
            check_brokers("127.0.0.1:9092, 192.0.2.7:9092", false),
            Err(TargetError::NotLoopback(_))
        ));
        assert!(check_brokers("127.0.0.1:9092,localhost:9093", false).is_ok());
    }

    #[test]
    fn malformed_urls_are_refused() {
        for url in [
            "127.0.0.1:80",
            "https://127.0.0.1:443",
            "http://",
            "http://127.0.0.1:80/v1/batch",
            "http://user@127.0.0.1:80",
        ] {
            assert!(
                matches!(parse_target(url, false), Err(TargetError::BadUrl(_))),
                "{url}"
            );
        }
        assert!(parse_target("http://127.0.0.1", false).is_err());
    }
}
