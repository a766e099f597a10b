//! The privacy signals a request or an event carries: the opt-out cookie,
//! Global Privacy Control (`Sec-GPC: 1`, or `context.privacy.gpc = true` for
//! clients that cannot set headers) and Do Not Track (`DNT: 1`).
//!
//! Request signals are read once per request by the HTTP layer
//! ([`RequestSignals::from_headers`]) and travel with `RequestMeta`: a few
//! header look-ups, no allocation.

use crate::json::{Map, Value};
use http::header::COOKIE;
use http::HeaderMap;

/// Name of the opt-out cookie; the value `1` means opted out.
pub const OPTOUT_COOKIE: &str = "tg_optout";
/// Name of the cookie holding a browser's opt-out proof nonce (`HttpOnly`,
/// set by `/v1/optout` with ids): what lets that browser opt them back in.
pub const PROOF_COOKIE: &str = "tg_optout_proof";
/// Header of Global Privacy Control.
pub const SEC_GPC: &str = "sec-gpc";
/// Header of Do Not Track.
pub const DNT: &str = "dnt";

pub use crate::normalize::RequestSignals;

impl RequestSignals {
    pub fn from_headers(headers: &HeaderMap) -> RequestSignals {
        RequestSignals {
            optout_cookie: has_optout_cookie(headers),
            gpc: header_is_one(headers, SEC_GPC),
            dnt: header_is_one(headers, DNT),
        }
    }
}

/// True when a header is present with the value `1`.
fn header_is_one(headers: &HeaderMap, name: &str) -> bool {
    headers
        .get(name)
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"1")
}

/// True when any `Cookie` header holds `tg_optout=1`.
pub fn has_optout_cookie(headers: &HeaderMap) -> bool {
    headers
        .get_all(COOKIE)
        .iter()
        .any(|v| cookie_value(v.as_bytes(), OPTOUT_COOKIE) == Some(b"1".as_slice()))
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get_all(COOKIE)
        .iter()
        .find_map(|v| cookie_value(v.as_bytes(), name))
}

/// The value of cookie `name` in one `Cookie` header (`a=1; b=2`), quotes
/// removed.
fn cookie_value<'a>(header: &'a [u8], name: &str) -> Option<&'a [u8]> {
    header.split(|&b| b == b';').find_map(|pair| {
        let pair = pair.trim_ascii();
        let eq = pair.iter().position(|&b| b == b'=')?;
        let (k, v) = (&pair[..eq], &pair[eq + 1..]);
        if k.trim_ascii() != name.as_bytes() {
            return None;
        }
        let v = v.trim_ascii();
        Some(
            v.strip_prefix(b"\"")
                .and_then(|x| x.strip_suffix(b"\""))
                .unwrap_or(v),
        )
    })
}

/// `context.privacy.gpc = true` in an event body.
pub fn event_gpc(body: &Map<'_>) -> bool {
    body.get("context")
        .and_then(|c| c.get("privacy"))
        .and_then(|p| p.get("gpc"))
        == Some(&Value::Bool(true))
}

/// True when the event's Segment consent object
/// (`context.consent.categoryPreferences`) sets one of the `required`
/// categories (case ignored) to `false`. A category without a preference,
/// or a preference that is not a boolean, denies nothing.
pub fn consent_denied(body: &Map<'_>, required: &[String]) -> bool {
    if required.is_empty() {
        return false;
    }
    let Some(Value::Object(prefs)) = body
        .get("context")
        .and_then(|c| c.get("consent"))
        .and_then(|c| c.get("categoryPreferences"))
    else {
        return false;
    };
    prefs.iter().any(|(category, v)| {
        *v == Value::Bool(false) && required.iter().any(|r| r.eq_ignore_ascii_case(category))
    })
}

/// Whether the request reached the first proxy over HTTPS. Only a trusted
/// proxy's word counts (the gateway itself speaks plain HTTP):
/// `X-Forwarded-Proto` (its first value) or the first `Forwarded` element's
/// `proto=`.
pub fn request_is_https(peer_trusted: bool, headers: &HeaderMap) -> bool {
    if !peer_trusted {
        return false;
    }
    if let Some(v) = headers.get("x-forwarded-proto") {
        let first = v.as_bytes().split(|&b| b == b',').next().unwrap_or(b"");
        return first.trim_ascii().eq_ignore_ascii_case(b"https");
    }
    if let Some(v) = headers.get("forwarded").and_then(|v| v.to_str().ok()) {
        let first = v.split(',').next().unwrap_or("");
        return first.split(';').any(|pair| {
            pair.split_once('=').is_some_and(|(k, v)| {
                k.trim().eq_ignore_ascii_case("proto")
                    && v.trim().trim_matches('"').eq_ignore_ascii_case("https")
            })
        });
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::json;

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

    #[test]
    fn optout_cookie_is_found_among_others_and_only_with_value_1() {
        assert!(has_optout_cookie(&h(&[("cookie", "tg_optout=1")])));
        assert!(has_optout_cookie(&h(&[(
            "cookie",
            "a=b; tg_optout=1 ; session=xyz"
        )])));
        assert!(has_optout_cookie(&h(&[("cookie", "tg_optout=\"1\"")])));
        assert!(has_optout_cookie(&h(&[
            ("cookie", "a=b"),
            ("cookie", "tg_optout=1")
        ])));
        assert!(!has_optout_cookie(&h(&[("cookie", "tg_optout=0")])));
        assert!(!has_optout_cookie(&h(&[("cookie", "tg_optout=")])));
        assert!(!has_optout_cookie(&h(&[("cookie", "xtg_optout=1")])));
        assert!(!has_optout_cookie(&h(&[("cookie", "a=tg_optout=1")])));
        assert!(!has_optout_cookie(&h(&[])));
    }

    #[test]
    fn gpc_and_dnt_headers_need_the_value_1() {
        let s = RequestSignals::from_headers(&h(&[("sec-gpc", "1"), ("dnt", " 1 ")]));
        assert_eq!(
            s,
            RequestSignals {
                optout_cookie: false,
                gpc: true,
                dnt: true
            }
        );
        let s = RequestSignals::from_headers(&h(&[("sec-gpc", "0"), ("dnt", "yes")]));
        assert_eq!(s, RequestSignals::default());
    }

    #[test]
    fn gpc_in_the_event_context_must_be_true() {
        let m = |v: Value<'static>| v.as_object().unwrap().clone();
        assert!(event_gpc(&m(json!({"context":{"privacy":{"gpc":true}}}))));
        assert!(!event_gpc(&m(
            json!({"context":{"privacy":{"gpc":"true"}}})
        )));
        assert!(!event_gpc(&m(json!({"context":{"privacy":{"gpc":false}}}))));
        assert!(!event_gpc(&m(json!({"context":{}}))));
        assert!(!event_gpc(&m(json!({}))));
    }

    #[test]
    fn consent_is_denied_only_by_false_for_a_required_category() {
        let m = |v: Value<'static>| v.as_object().unwrap().clone();
        let req = vec!["Analytics".to_string()];
        let prefs = |p: Value| m(json!({"context":{"consent":{"categoryPreferences":p}}}));
        assert!(consent_denied(
            &prefs(json!({"Analytics":false,"Ads":true})),
            &req
        ));
        assert!(consent_denied(&prefs(json!({"analytics":false})), &req));
        assert!(!consent_denied(
            &prefs(json!({"Analytics":true,"Ads":false})),
            &req
        ));
        assert!(!consent_denied(&prefs(json!({"Analytics":"false"})), &req));
        assert!(!consent_denied(&prefs(json!({"Ads":false})), &req));
        assert!(!consent_denied(&prefs(json!(["Analytics"])), &req));
        assert!(!consent_denied(&m(json!({"context":{}})), &req));
        assert!(!consent_denied(&prefs(json!({"Analytics":false})), &[]));
    }

    #[test]
    fn https_only_from_a_trusted_proxy() {
        let xfp = h(&[("x-forwarded-proto", "https")]);
        assert!(request_is_https(true, &xfp));
        assert!(!request_is_https(false, &xfp));
        assert!(!request_is_https(
            true,
            &h(&[("x-forwarded-proto", "http, https")])
        ));
        assert!(request_is_https(
            true,
            &h(&[(
                "forwarded",
                "for=1.2.3.4;proto=https, for=10.0.0.1;proto=http"
            )])
        ));
        assert!(!request_is_https(
            true,
            &h(&[("forwarded", "for=1.2.3.4;proto=http")])
        ));
        assert!(!request_is_https(true, &h(&[])));
    }
}
