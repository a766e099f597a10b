//! `POST /v1/optout` (also `GET`, so a plain link works) and
//! `POST /v1/optin`.
//!
//! The write key is read as on the other endpoints (Basic auth user name,
//! `writeKey` body field, `writeKey` query parameter); `anonymousId` and
//! `userId` from the JSON body, else the query string. Both are optional:
//! without ids only the cookie is set.
//!
//! An opt-out puts the ids on the shared suppression list (see
//! `privacy::optout`) and sets `tg_optout=1; Max-Age=…; Path=/;
//! SameSite=Lax` (+ `Secure` per `privacy.optout_cookie_secure`); an
//! opt-in removes them and clears the cookie (`Max-Age=0`). The answer is
//! `200 {"success":true,"optedOut":…}` once the broker acknowledged the
//! list record, `503` when it did not in `privacy.optout_write_timeout_ms`
//! (an opt-out still holds on this instance and in the cookie; retrying is
//! safe). Opt-in has no `GET`: a link or an image on another site must not
//! be able to turn tracking back on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::response::{self, Body};
use super::{auth, body, cors, AppState};
use crate::config::SourceConfig;
use crate::event::MAX_ID_LEN;
use crate::metrics;
use crate::privacy::config::CookieSecure;
use crate::privacy::optout::IdKind;
use crate::privacy::signals::{request_is_https, OPTOUT_COOKIE};

/// The identity fields read from the body or the query.
const ID_FIELDS: [(&str, IdKind); 2] =
    [("anonymousId", IdKind::Anonymous), ("userId", IdKind::User)];

/// Serves an opt-out (`opt_out`) or an opt-in request.
pub async fn serve(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
    opt_out: bool,
) -> Response<Body> {
    let action = if opt_out { "optout" } else { "optin" };
    let (parts, body) = req.into_parts();
    let origin = cors::origin(&parts.headers).map(str::to_owned);
    let mut source_for_cors: Option<Arc<SourceConfig>> = None;
    let mut cookie: Option<String> = None;
    let result = serve_inner(
        state,
        peer,
        &parts,
        body,
        opt_out,
        &mut source_for_cors,
        &mut cookie,
    )
    .await;
    let mut resp = match result {
        Ok(r) => {
            metrics::optout_request(action, "ok");
            r
        }
        Err(e) => {
            let result = if matches!(e, ApiError::Unavailable) {
                "unavailable"
            } else {
                "refused"
            };
            metrics::optout_request(action, result);
            response::error(&e, state.config.server.retry_after_secs)
        }
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(v) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        resp.headers_mut().insert(SET_COOKIE, v);
    }
    cors::allow_for(
        &mut resp,
        origin.as_deref(),
        source_for_cors.as_deref(),
        &state.sources,
    );
    resp
}

async fn serve_inner(
    state: &AppState,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
    opt_out: bool,
    source_out: &mut Option<Arc<SourceConfig>>,
    cookie_out: &mut Option<String>,
) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config;
    let fields = if parts.method == Method::POST {
        let bytes = body::read(
            &parts.headers,
            body,
            cfg.limits.max_event_bytes,
            Duration::from_millis(cfg.server.body_read_timeout_ms),
        )
        .await?;
        parse_body(&bytes)?
    } else {
        Map::new()
    };
    let query = parts.uri.query();
    let key = auth::basic_user(&parts.headers)
        .or_else(|| {
            fields
                .get("writeKey")
                .and_then(Value::as_str)
                .filter(|k| !k.is_empty())
                .map(str::to_string)
        })
        .or_else(|| auth::query_param(query, "writeKey"))
        .ok_or(ApiError::MissingWriteKey)?;
    super::authorize(state, &key, parts, source_out)?;

    let mut ids = Vec::with_capacity(ID_FIELDS.len());
    for (field, kind) in ID_FIELDS {
        if let Some(id) = identity(&fields, query, field)? {
            ids.push((kind, id));
        }
    }
    let trusted_peer = cfg
        .server
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&peer.ip()));
    let secure = match cfg.privacy.optout_cookie_secure {
        CookieSecure::Always => true,
        CookieSecure::Never => false,
        CookieSecure::Auto => request_is_https(trusted_peer, &parts.headers),
    };
    let cookie = if opt_out {
        set_cookie(true, cfg.privacy.optout_cookie_max_age_secs, secure)
    } else {
        set_cookie(false, 0, secure)
    };
    if opt_out {
        // The visitor's wish is known: the cookie holds it even when the
        // list record cannot be written now.
        *cookie_out = Some(cookie.clone());
    }
    if let Err(e) = state.pipeline.privacy.record_choice(&ids, opt_out).await {
        tracing::warn!(error = %e, "opt-out list record not written");
        return Err(ApiError::Unavailable);
    }
    // An opt-in clears the cookie only once it is recorded.
    *cookie_out = Some(cookie);
    let body = if opt_out {
        br#"{"success":true,"optedOut":true}"#.to_vec()
    } else {
        br#"{"success":true,"optedOut":false}"#.to_vec()
    };
    Ok(response::json(StatusCode::OK, body))
}

/// The `Set-Cookie` value.
pub fn set_cookie(opt_out: bool, max_age_secs: u64, secure: bool) -> String {
    format!(
        "{OPTOUT_COOKIE}={}; Max-Age={max_age_secs}; Path=/; SameSite=Lax{}",
        if opt_out { "1" } else { "" },
        if secure { "; Secure" } else { "" }
    )
}

/// An empty body, or a JSON object.
fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(ApiError::InvalidJson("body must be a JSON object".into())),
        Err(e) => Err(ApiError::InvalidJson(e.to_string())),
    }
}

/// An id from the body (string or number), else the query; the same rules
/// as for events' ids.
fn identity(
    fields: &Map<String, Value>,
    query: Option<&str>,
    field: &str,
) -> Result<Option<String>, ApiError> {
    let id = match fields.get(field) {
        None | Some(Value::Null) => auth::query_param(query, field),
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(ApiError::InvalidIdentity),
    };
    match id {
        Some(s) if s.chars().count() > MAX_ID_LEN => Err(ApiError::InvalidIdentity),
        other => Ok(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cookie_attributes() {
        assert_eq!(
            set_cookie(true, 63_072_000, false),
            "tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax"
        );
        assert_eq!(
            set_cookie(false, 0, true),
            "tg_optout=; Max-Age=0; Path=/; SameSite=Lax; Secure"
        );
    }

    #[test]
    fn ids_from_body_then_query_with_event_rules() {
        let m = json!({"anonymousId":"a-1","userId":42})
            .as_object()
            .unwrap()
            .clone();
        assert_eq!(
            identity(&m, None, "anonymousId").unwrap().as_deref(),
            Some("a-1")
        );
        assert_eq!(identity(&m, None, "userId").unwrap().as_deref(), Some("42"));
        let empty = Map::new();
        assert_eq!(
            identity(&empty, Some("userId=u%201"), "userId")
                .unwrap()
                .as_deref(),
            Some("u 1")
        );
        assert_eq!(identity(&empty, None, "userId").unwrap(), None);
        let bad = json!({"userId":{"x":1}}).as_object().unwrap().clone();
        assert!(matches!(
            identity(&bad, None, "userId"),
            Err(ApiError::InvalidIdentity)
        ));
        let long = json!({"userId":"u".repeat(MAX_ID_LEN + 1)})
            .as_object()
            .unwrap()
            .clone();
        assert!(matches!(
            identity(&long, None, "userId"),
            Err(ApiError::InvalidIdentity)
        ));
    }

    #[test]
    fn body_is_empty_or_an_object() {
        assert!(parse_body(b"  ").unwrap().is_empty());
        assert_eq!(parse_body(br#"{"userId":"u"}"#).unwrap()["userId"], "u");
        assert!(parse_body(b"[1]").is_err());
        assert!(parse_body(b"{").is_err());
    }
}
