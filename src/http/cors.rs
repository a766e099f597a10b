//! CORS: browsers may post only from an origin on the source's
//! `allowed_origins` (`*` allows any). Preflights are answered for origins
//! some source allows; others get no allow header, and their POSTs a 403.
//! Requests without an `Origin` (servers, mobile apps) are not affected.
//!
//! Credentials (`Access-Control-Allow-Credentials: true`, which lets a page
//! send and receive the gateway's cookies) are granted only to origins
//! listed by name, never through `*`: a wildcard would let any site act
//! with a visitor's opt-out cookies (see `http::optout`, which also refuses
//! to use the cookies of a request whose origin only `*` allows).
//!
//! Every answer to an allowed origin carries the allow headers, errors and
//! 404s included: a browser hides an answer without them from the page, so
//! a library could not even tell that it used a wrong path.
//!
//! The request headers a preflight asks for are echoed for allowed origins:
//! client libraries add their own (`X-Retry-Count` on Segment's retries,
//! `AnonymousId`, `SentAt` and `Rsa-*` on RudderStack's), and one header
//! missing from a fixed list fails the preflight and loses every event.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ACCESS_CONTROL_REQUEST_HEADERS, ORIGIN, VARY,
};
use http::{HeaderMap, Response, StatusCode};

use super::auth::Sources;
use super::response::{self, Body};
use crate::config::SourceConfig;

/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
/// Allowed when a preflight names no request headers.
const ALLOWED_HEADERS: &str = "Content-Type, Content-Encoding, Authorization, X-Retry-Count";
/// Longest `Access-Control-Request-Headers` echoed; a longer one gets
/// [`ALLOWED_HEADERS`].
const MAX_ECHOED_HEADERS_BYTES: usize = 1024;

pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

/// The wildcard of `allowed_origins`.
const ANY_ORIGIN: &str = "*";

/// How a source allows an origin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Allowed {
    /// Only through `*`: any site, never with credentials.
    AnySite,
    /// Listed by name: credentialed requests are answered too.
    Listed,
}

/// How `source` allows `origin`, if it does.
pub fn allowance(source: &SourceConfig, origin: &str) -> Option<Allowed> {
    let mut any = false;
    for o in &source.allowed_origins {
        if o == ANY_ORIGIN {
            any = true;
        } else if o.eq_ignore_ascii_case(origin) {
            return Some(Allowed::Listed);
        }
    }
    any.then_some(Allowed::AnySite)
}

pub fn is_allowed(source: &SourceConfig, origin: &str) -> bool {
    allowance(source, origin).is_some()
}

/// Answers an `OPTIONS` preflight.
pub fn preflight(headers: &HeaderMap, sources: &Sources) -> Response<Body> {
    let mut r = response::empty(StatusCode::NO_CONTENT);
    if let Some(o) = origin(headers) {
        if let Some(how) = sources.iter().filter_map(|s| allowance(s, o)).max() {
            allow(&mut r, o, how);
            let h = r.headers_mut();
            h.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            h.insert(ACCESS_CONTROL_ALLOW_HEADERS, allow_headers(headers));
            h.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        }
    }
    r.headers_mut().insert(
        VARY,
        HeaderValue::from_static("Origin, Access-Control-Request-Headers"),
    );
    r
}

/// The requested headers when they are a plain list of header names,
/// else the fixed list.
fn allow_headers(headers: &HeaderMap) -> HeaderValue {
    let fixed = HeaderValue::from_static(ALLOWED_HEADERS);
    let Some(requested) = headers.get(ACCESS_CONTROL_REQUEST_HEADERS) else {
        return fixed;
    };
    let bytes = requested.as_bytes();
    let names_only = bytes.len() <= MAX_ECHOED_HEADERS_BYTES
        && bytes
            .split(|&b| b == b',')
            .map(<[u8]>::trim_ascii)
            .all(|name| !name.is_empty() && name.iter().all(|&b| is_tchar(b)));
    if names_only {
        requested.clone()
    } else {
        fixed
    }
}

/// A character of an HTTP token (RFC 9110 section 5.6.2), what a header name is made of.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Adds the allow headers when the request's origin is allowed by its
/// source, or, before the source is known (e.g. a 401), by any source.
pub fn allow_for(
    r: &mut Response<Body>,
    origin: Option<&str>,
    source: Option<&SourceConfig>,
    sources: &Sources,
) {
    let Some(o) = origin else { return };
    let allowed = match source {
        Some(s) => allowance(s, o),
        None => sources.iter().filter_map(|s| allowance(s, o)).max(),
    };
    if let Some(how) = allowed {
        allow(r, o, how);
    }
}

/// Adds the allow headers for an origin already checked; credentials only
/// for a listed one.
fn allow(r: &mut Response<Body>, origin: &str, how: Allowed) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = r.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        if how == Allowed::Listed {
            // Credentials allow the opt-out cookie to be read and set.
            h.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        // Lets the browser SDK honour Retry-After on 429/503.
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(origins: &[&str]) -> Sources {
        let toml = format!("id = \"web\"\nwrite_key = \"k\"\nallowed_origins = {origins:?}\n");
        let source: SourceConfig = toml::from_str(&toml).unwrap();
        Sources::new(&[source])
    }

    fn preflight_for(origin: &str, requested: Option<&str>) -> Response<Body> {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, origin.parse().unwrap());
        if let Some(r) = requested {
            h.insert(ACCESS_CONTROL_REQUEST_HEADERS, r.parse().unwrap());
        }
        preflight(&h, &sources(&["https://shop.example"]))
    }

    #[test]
    fn preflight_echoes_the_requested_headers_for_allowed_origins() {
        let asked = "authorization,content-type,anonymousid,sentat,rsa-retry-attempt,x-retry-count";
        let r = preflight_for("https://shop.example", Some(asked));
        assert_eq!(r.status(), StatusCode::NO_CONTENT);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_HEADERS], asked);
        assert_eq!(
            r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://shop.example"
        );
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let r = preflight_for("https://shop.example", None);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_HEADERS], ALLOWED_HEADERS);
    }

    #[test]
    fn preflight_does_not_echo_what_is_not_a_header_list() {
        for odd in [
            "a b",
            "x,,y",
            "x\"y",
            &"h".repeat(MAX_ECHOED_HEADERS_BYTES + 1),
        ] {
            let r = preflight_for("https://shop.example", Some(odd));
            assert_eq!(
                r.headers()[ACCESS_CONTROL_ALLOW_HEADERS],
                ALLOWED_HEADERS,
                "{odd}"
            );
        }
    }

    #[test]
    fn credentials_are_never_allowed_through_the_wildcard() {
        let mut h = HeaderMap::new();
        h.insert(ORIGIN, "https://any.example".parse().unwrap());
        let r = preflight(&h, &sources(&["*"]));
        assert_eq!(
            r.headers()[ACCESS_CONTROL_ALLOW_ORIGIN],
            "https://any.example"
        );
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        // Listed by name as well: credentials for that origin only.
        let both = sources(&["*", "https://shop.example"]);
        let r = preflight(&h, &both);
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        h.insert(ORIGIN, "https://SHOP.example".parse().unwrap());
        let r = preflight(&h, &both);
        assert_eq!(r.headers()[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        let mut resp = response::empty(StatusCode::OK);
        allow_for(&mut resp, Some("https://other.example"), None, &both);
        assert!(resp.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_some());
        assert!(resp
            .headers()
            .get(ACCESS_CONTROL_ALLOW_CREDENTIALS)
            .is_none());
    }

    #[test]
    fn preflight_from_another_origin_gets_no_allow_headers() {
        let r = preflight_for("https://evil.example", Some("x-retry-count"));
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
        assert!(r.headers().get(ACCESS_CONTROL_ALLOW_HEADERS).is_none());
    }
}
