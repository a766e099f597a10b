//! CORS: browsers may post only from an origin on the source's
//! `allowed_origins` (`*` allows any). Preflights are answered for origins
//! some source allows; others get no allow header, and their POSTs a 403.
//! Requests without an `Origin` (servers, mobile apps) are not affected.

use http::header::{
    HeaderValue, ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS,
    ACCESS_CONTROL_ALLOW_METHODS, ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS,
    ACCESS_CONTROL_MAX_AGE, ORIGIN, VARY,
};
use http::{HeaderMap, Response, StatusCode};

use super::auth::Sources;
use super::response::{self, Body};
use crate::config::SourceConfig;

/// How long browsers may cache a preflight answer, in seconds.
const PREFLIGHT_MAX_AGE: &str = "86400";
const ALLOWED_METHODS: &str = "GET, POST, OPTIONS";
const ALLOWED_HEADERS: &str = "Content-Type, Content-Encoding, Authorization";

pub fn origin(headers: &HeaderMap) -> Option<&str> {
    headers.get(ORIGIN).and_then(|v| v.to_str().ok())
}

pub fn is_allowed(source: &SourceConfig, origin: &str) -> bool {
    source
        .allowed_origins
        .iter()
        .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
}

/// Answers an `OPTIONS` preflight.
pub fn preflight(headers: &HeaderMap, sources: &Sources) -> Response<Body> {
    let mut r = response::empty(StatusCode::NO_CONTENT);
    if let Some(o) = origin(headers) {
        if sources.iter().any(|s| is_allowed(s, o)) {
            allow(&mut r, o);
            let h = r.headers_mut();
            h.insert(
                ACCESS_CONTROL_ALLOW_METHODS,
                HeaderValue::from_static(ALLOWED_METHODS),
            );
            h.insert(
                ACCESS_CONTROL_ALLOW_HEADERS,
                HeaderValue::from_static(ALLOWED_HEADERS),
            );
            h.insert(
                ACCESS_CONTROL_MAX_AGE,
                HeaderValue::from_static(PREFLIGHT_MAX_AGE),
            );
        }
    }
    r.headers_mut()
        .insert(VARY, HeaderValue::from_static("Origin"));
    r
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
        Some(s) => is_allowed(s, o),
        None => sources.iter().any(|s| is_allowed(s, o)),
    };
    if allowed {
        allow(r, o);
    }
}

/// Adds the allow headers for an origin already checked.
pub fn allow(r: &mut Response<Body>, origin: &str) {
    if let Ok(v) = HeaderValue::from_str(origin) {
        let h = r.headers_mut();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, v);
        // Credentials allow the opt-out cookie to be read and set.
        h.insert(
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
        // Lets the browser SDK honour Retry-After on 429/503.
        h.insert(
            ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("Retry-After"),
        );
        h.insert(VARY, HeaderValue::from_static("Origin"));
    }
}
