//! Who may read the admin listener's pages (`/inspect`, its event stream,
//! and `/config`): the `Host` check against DNS rebinding, then the token.
//!
//! DNS rebinding: a web page on `evil.example` whose name is made to
//! resolve to the gateway's admin address would have the visitor's browser
//! read the pages as its own origin. The browser sends `Host: evil.example`,
//! so the pages answer only to an IP address, `localhost` (and
//! `*.localhost`, which browsers resolve to loopback themselves) and the
//! names in `inspect.allowed_hosts`; a request without `Host` (not a
//! browser) passes. `/healthz`, `/readyz` and `/metrics` are not guarded:
//! probes and scrapers name the gateway however their platform does.
//!
//! The token (`inspect.token`, when set): `Authorization: Bearer <token>`
//! or `?token=<token>`, compared in constant time (as digests, so the
//! token's length does not show either).

use std::net::IpAddr;

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, Request, StatusCode};

use super::InspectConfig;

/// Why a request for a guarded page is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Its `Host` is not an allowed name (403).
    Host,
    /// The token is missing or wrong (401).
    Token,
}

impl Refusal {
    pub fn status(self) -> StatusCode {
        match self {
            Refusal::Host => StatusCode::FORBIDDEN,
            Refusal::Token => StatusCode::UNAUTHORIZED,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::Host => {
                "host not allowed: use an IP address or localhost, or add the name to inspect.allowed_hosts"
            }
            Refusal::Token => {
                "token required: Authorization: Bearer <token> or ?token=<token>"
            }
        }
    }
}

/// Checks a request for a guarded page.
pub fn check<B>(config: &InspectConfig, req: &Request<B>) -> Result<(), Refusal> {
    let host = req
        .headers()
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| req.uri().authority().map(|a| a.as_str().to_string()));
    if let Some(host) = host {
        if !host_allowed(&host, &config.allowed_hosts) {
            return Err(Refusal::Host);
        }
    }
    match &config.token {
        Some(token) if !authorized(token, req.headers(), req.uri().query()) => Err(Refusal::Token),
        _ => Ok(()),
    }
}

/// Whether `host` (a `Host` header: name or address, maybe a port) is an
/// IP address, a `localhost` name or one of `allowed`.
pub fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let host = host.trim();
    if let Some(v6) = host.strip_prefix('[') {
        // `[::1]:9464`: an IPv6 address.
        return v6
            .split(']')
            .next()
            .is_some_and(|a| a.parse::<IpAddr>().is_ok());
    }
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    name.parse::<IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed
            .iter()
            .any(|a| a.trim_end_matches('.').eq_ignore_ascii_case(&name))
}

/// The token from `Authorization: Bearer …` or `?token=…`, compared in
/// constant time.
fn authorized(token: &str, headers: &HeaderMap, query: Option<&str>) -> bool {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| t.trim().to_string());
    let given = bearer.or_else(|| crate::http::auth::query_param(query, "token"));
    given.is_some_and(|g| constant_time_eq(g.as_bytes(), token.as_bytes()))
}

/// Compares the SHA-256 digests, byte by byte without an early exit: the
/// time taken tells neither where the inputs differ nor the token's length.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    let (a, b) = (Sha256::digest(a), Sha256::digest(b));
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_localhost_pass_other_names_only_when_allowed() {
        let allowed = vec!["gateway.internal".to_string()];
        for ok in [
            "127.0.0.1:9464",
            "127.0.0.1",
            "10.1.2.3:9464",
            "[::1]:9464",
            "[::1]",
            "localhost:9464",
            "LOCALHOST",
            "app.localhost:9464",
            "gateway.internal:9464",
            "Gateway.Internal.",
        ] {
            assert!(host_allowed(ok, &allowed), "{ok}");
        }
        for refused in [
            "evil.example",
            "evil.example:9464",
            "localhost.evil.example",
            "gateway.internal.evil.example",
            "[evil]:9464",
        ] {
            assert!(!host_allowed(refused, &allowed), "{refused}");
        }
    }

    fn req(host: Option<&str>, auth: Option<&str>, uri: &str) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(h) = host {
            b = b.header(HOST, h);
        }
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    #[test]
    fn the_host_is_checked_before_the_token() {
        let config = InspectConfig {
            token: Some("s3cret".into()),
            ..InspectConfig::default()
        };
        let check = |host, auth, uri| check(&config, &req(host, auth, uri));
        assert_eq!(
            check(Some("evil.example"), Some("Bearer s3cret"), "/config"),
            Err(Refusal::Host)
        );
        assert_eq!(
            check(Some("127.0.0.1:1"), None, "/config"),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(Some("127.0.0.1:1"), Some("Bearer s3cre"), "/config"),
            Err(Refusal::Token)
        );
        assert_eq!(
            check(Some("127.0.0.1:1"), Some("Bearer s3cret"), "/config"),
            Ok(())
        );
        assert_eq!(check(None, None, "/config?token=s3cret"), Ok(()));
    }
}
