//! The `[server]` section: listeners, timeouts, connection and body caps,
//! shutdown timing.

use std::net::SocketAddr;

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the public ingestion listener.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Address of the admin listener (`/healthz`, `/readyz`, `/metrics`).
    #[serde(default = "defaults::admin_listen")]
    pub admin_listen: SocketAddr,
    /// Peers whose `X-Forwarded-For` / `Forwarded` headers are believed
    /// (addresses or CIDR ranges). Empty: the peer address is the client.
    #[serde(default, deserialize_with = "ip_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Longest time to read a request's headers before the connection is closed.
    #[serde(default = "defaults::header_read_timeout_ms")]
    pub header_read_timeout_ms: u64,
    /// Longest time to read a request body.
    #[serde(default = "defaults::body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// Most connections served at once; further ones wait in the accept backlog.
    #[serde(default = "defaults::max_connections")]
    pub max_connections: usize,
    /// An idle keep-alive connection (no request under way, nothing sent)
    /// is closed after this long. At most `header_read_timeout_ms`, whose
    /// timer also runs while a connection waits for its next request.
    #[serde(default = "defaults::keep_alive_timeout_ms")]
    pub keep_alive_timeout_ms: u64,
    /// Largest request head (request line and headers); over it: 431 and
    /// the connection is closed. At least 8192.
    #[serde(default = "defaults::max_header_bytes")]
    pub max_header_bytes: usize,
    /// On SIGTERM/SIGINT, how long in-flight requests get to finish.
    #[serde(default = "defaults::shutdown_grace_ms")]
    pub shutdown_grace_ms: u64,
    /// On SIGTERM/SIGINT, how long `/readyz` answers 503 while requests are
    /// still served, before the listener closes (load balancers stop sending
    /// first).
    #[serde(default = "defaults::drain_ms")]
    pub drain_ms: u64,
    /// Most requests one client IP (an IPv6 client: its /64) may have in
    /// flight at once (over: 503 `overloaded`), so a few slow clients
    /// cannot hold every slot. 0: no cap.
    #[serde(default = "defaults::max_requests_per_ip")]
    pub max_requests_per_ip: usize,
    /// Bytes all requests in flight may hold together: a body's announced
    /// `Content-Length` (without one, the bytes as they arrive), then what
    /// its records will take (`limits.max_request_output_bytes`); over: 503
    /// `overloaded`. Bounds the memory of buffered bodies and records.
    #[serde(default = "defaults::max_buffered_body_bytes")]
    pub max_buffered_body_bytes: u64,
    /// The share of `max_buffered_body_bytes` one client IP (IPv6: its /64)
    /// may hold; over: 503 `overloaded`. At least
    /// `limits.max_request_output_bytes`.
    #[serde(default = "defaults::max_buffered_body_bytes_per_ip")]
    pub max_buffered_body_bytes_per_ip: u64,
    /// Connections one peer address (IPv6: its /64) may hold open without a
    /// request under way (opened, or kept alive, and the next request's
    /// head not complete yet); one more is closed at once. Peers in
    /// `trusted_proxies` are exempt. 0: no cap.
    #[serde(default = "defaults::max_pending_connections_per_ip")]
    pub max_pending_connections_per_ip: usize,
    /// `Retry-After` seconds sent with 503 answers.
    #[serde(default = "defaults::retry_after_secs")]
    pub retry_after_secs: u32,
    /// Path the ingestion API is mounted under (`/collect` serves
    /// `/collect/v1/batch` …, and nothing outside it), so a site can avoid
    /// the paths that blockers match. Empty: served at the root.
    #[serde(default)]
    pub path_prefix: String,
}

mod defaults {
    use std::net::SocketAddr;

    pub fn listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 8080))
    }
    pub fn admin_listen() -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], 9464))
    }
    pub fn header_read_timeout_ms() -> u64 {
        10_000
    }
    pub fn body_read_timeout_ms() -> u64 {
        15_000
    }
    pub fn max_connections() -> usize {
        10_000
    }
    pub fn keep_alive_timeout_ms() -> u64 {
        5_000
    }
    pub fn max_header_bytes() -> usize {
        16 * 1024
    }
    pub fn shutdown_grace_ms() -> u64 {
        10_000
    }
    pub fn drain_ms() -> u64 {
        2_000
    }
    pub fn max_requests_per_ip() -> usize {
        256
    }
    pub fn max_buffered_body_bytes() -> u64 {
        256 * 1024 * 1024
    }
    pub fn max_buffered_body_bytes_per_ip() -> u64 {
        16 * 1024 * 1024
    }
    pub fn max_pending_connections_per_ip() -> usize {
        64
    }
    pub fn retry_after_secs() -> u32 {
        1
    }
}

default_from_serde!(ServerConfig);

/// Addresses (`10.0.0.1`) or CIDR ranges (`10.0.0.0/8`).
fn ip_nets<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            s.parse::<IpNet>()
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    serde::de::Error::custom(format!("`{s}` is not an IP address or CIDR range"))
                })
        })
        .collect()
}
