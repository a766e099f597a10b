//! `POST /v1/optout` (also `GET`, so a plain link works) and
//! `POST /v1/optin`.
//!
//! Who may do what (the write key is public, so it proves nothing):
//! - `GET /v1/optout` (a link, or an image on any page) sets the opt-out
//!   cookie `tg_optout=1` for the browser that sent it, and nothing else:
//!   ids in its query are ignored.
//! - `POST /v1/optout` with `anonymousId` / `userId` puts them on the
//!   source's suppression list when it comes from a browser on one of the
//!   source's `allowed_origins` (an `Origin` header is required) or carries
//!   the source's server key (`Authorization: Bearer` or
//!   `X-Trackgate-Server-Key`). A browser also gets `tg_optout_proof`, an
//!   `HttpOnly` cookie holding a random nonce whose hash is stored with the
//!   entry; a browser that already has one reuses it.
//! - `POST /v1/optin` removes ids only with proof: the server key, or the
//!   proof cookie of one of the browsers that opted them out (see
//!   `privacy::optout`). Without proof nothing changes (403
//!   `proof_required`); without ids nothing changes either, the cookie
//!   included (400 `identity_required`). Opt-in has no `GET`.
//! - A page whose origin the source allows only through `*` could be any
//!   site, so the visitor's cookies are not used for it: its opt-out lists
//!   the ids without a proof (only the server key may lift them), and its
//!   opt-in with cookies is refused (403 `credentials_not_allowed`). CORS
//!   never grants such an origin credentials either (`http::cors`).
//!
//! Opt-outs by the public write key are bounded per source and per client
//! address (`privacy::optout::Bounds`): beyond the source's share, 503
//! `optout_list_full`; beyond the address's, 429 `rate_limited`. The
//! server key's opt-outs are never refused.
//!
//! Both are rate limited like ingestion: per client IP before the body is
//! read, per source (one event's worth) once the key is known, except that
//! server-key requests are not charged to the source's (public) rate. The write
//! key is read as on the other endpoints (Basic auth user name, `writeKey`
//! body field, `writeKey` query parameter); ids from the JSON body, else
//! the query string.
//!
//! Cookies carry `SameSite=None; Secure` when the request came over HTTPS
//! (`privacy.optout_cookie_secure`), so a credentialed `fetch` from the
//! site's origin sets and sends them; over plain HTTP (development)
//! `SameSite=Lax`, which browsers accept without `Secure` and send on
//! same-site requests. The answer is `200 {"success":true,"optedOut":…}`
//! once the broker acknowledged the list records; `503` when it did not in
//! `privacy.optout_write_timeout_ms` (an opt-out still holds on this
//! instance and in the cookie; retrying is safe), while the list is still
//! loading (`optout_list_loading`), or when the source's share is full
//! (`optout_list_full`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use http::header::{HeaderValue, CACHE_CONTROL, SET_COOKIE};
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use serde_json::{Map, Value};

use super::cors::Allowed;
use super::error::ApiError;
use super::response::{self, Body};
use super::{auth, body, client_ip, cors, rate_limited, AppState};
use crate::config::SourceConfig;
use crate::event::MAX_ID_LEN;
use crate::metrics;
use crate::privacy::config::CookieSecure;
use crate::privacy::optout::{proof_hash, IdKind, OptOutError, Proof};
use crate::privacy::signals::{
    cookie, has_optout_cookie, request_is_https, OPTOUT_COOKIE, PROOF_COOKIE,
};

/// The identity fields read from the body or the query.
const ID_FIELDS: [(&str, IdKind); 2] =
    [("anonymousId", IdKind::Anonymous), ("userId", IdKind::User)];
/// The `reason` of `trackgate_optout_refused_total` when a client address
/// added its share of opt-outs (answered 429 `rate_limited`).
const REFUSED_ADDRESS_SHARE: &str = "address_share";
/// Bytes of a proof nonce (base64url in the cookie).
const PROOF_NONCE_BYTES: usize = 16;

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
    let mut cookies: Vec<String> = Vec::new();
    let result = serve_inner(
        state,
        peer,
        &parts,
        body,
        opt_out,
        &mut source_for_cors,
        &mut cookies,
    )
    .await;
    let mut resp = match result {
        Ok(r) => {
            metrics::optout_request(action, "ok");
            r
        }
        Err(e) => {
            let result = match e {
                ApiError::Unavailable | ApiError::OptOutListLoading => "unavailable",
                ApiError::OptOutListFull => "list_full",
                ApiError::RateLimited { .. } | ApiError::OptOutAddressFull { .. } => "rate_limited",
                _ => "refused",
            };
            metrics::optout_request(action, result);
            if matches!(e, ApiError::OptOutListFull) {
                metrics::optout_list_full();
            }
            if let Some(source) = &source_for_cors {
                let reason = match e {
                    // Told apart from the request rate limits, for alerts.
                    ApiError::OptOutAddressFull { .. } => REFUSED_ADDRESS_SHARE,
                    _ => e.code(),
                };
                metrics::optout_refused(&source.id, action, reason);
            }
            response::error(&e, state.config.server.retry_after_secs)
        }
    };
    resp.headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    for c in cookies {
        if let Ok(v) = HeaderValue::from_str(&c) {
            resp.headers_mut().append(SET_COOKIE, v);
        }
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
    cookies_out: &mut Vec<String>,
) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config;
    let client_ip = client_ip::resolve(peer.ip(), &parts.headers, &cfg.server.trusted_proxies);
    state.limits.check_ip(client_ip).map_err(rate_limited)?;
    let is_get = parts.method == Method::GET;
    let fields = if is_get {
        Map::new()
    } else {
        let bytes = body::read(
            &parts.headers,
            body,
            cfg.limits.max_event_bytes,
            Duration::from_millis(cfg.server.body_read_timeout_ms),
        )
        .await?;
        parse_body(&bytes)?
    };
    let query = parts.uri.query();
    let (source, server_proof) = match auth::server_key(&parts.headers) {
        Some(k) => {
            let source = state
                .sources
                .by_server_key(k)
                .cloned()
                .ok_or(ApiError::InvalidServerKey)?;
            *source_out = Some(source.clone());
            super::check_origin(&source, parts)?;
            (source, true)
        }
        None => {
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
            (super::authorize(state, &key, parts, source_out)?, false)
        }
    };
    // The source's rate is shared with everyone who holds its public key:
    // the owner's server-key requests are not charged to it, so no flood of
    // public traffic can hold off their opt-outs.
    if !server_proof {
        state
            .limits
            .check_source(&source.id, 1)
            .map_err(rate_limited)?;
    }

    // A plain GET names no ids: it only sets this browser's cookie.
    let mut ids = Vec::with_capacity(ID_FIELDS.len());
    if !is_get {
        for (field, kind) in ID_FIELDS {
            if let Some(id) = identity(&fields, query, field)? {
                ids.push((kind, id));
            }
        }
    }
    let trusted_peer = cfg
        .server
        .trusted_proxies
        .iter()
        .any(|n| n.contains(&peer.ip()));
    let jar = Jar {
        secure: match cfg.privacy.optout_cookie_secure {
            CookieSecure::Always => true,
            CookieSecure::Never => false,
            CookieSecure::Auto => request_is_https(trusted_peer, &parts.headers),
        },
        max_age_secs: cfg.privacy.optout_cookie_max_age_secs,
    };
    // A page whose origin only `*` allows may be any site: the visitor's
    // cookies are not its to use (a cross-site page could otherwise opt
    // the visitor back in with their proof).
    let any_site = cors::origin(&parts.headers)
        .is_some_and(|o| cors::allowance(&source, o) == Some(Allowed::AnySite));
    let carried =
        cookie(&parts.headers, PROOF_COOKIE).is_some() || has_optout_cookie(&parts.headers);
    let nonce = cookie(&parts.headers, PROOF_COOKIE)
        .and_then(decode_nonce)
        .filter(|_| !any_site);
    let privacy = &state.pipeline.privacy;
    if opt_out {
        // The visitor's wish is known: the cookie holds it even when the
        // list cannot record the ids now.
        cookies_out.push(jar.optout(true));
        let proof = if server_proof {
            Proof::ServerKey
        } else if ids.is_empty() {
            Proof::None
        } else if cors::origin(&parts.headers).is_none() {
            // The write key is public: without a browser's (allowed, as
            // `authorize` checked) origin, ids need the server key.
            return Err(ApiError::OriginRequired);
        } else if any_site {
            // Listed without a proof: only the server key may lift it.
            Proof::None
        } else {
            let n = nonce.unwrap_or_else(new_nonce);
            cookies_out.push(jar.proof(&n));
            Proof::Cookie(proof_hash(&n))
        };
        let recorded = privacy
            .record_opt_out(&source.id, &ids, proof, client_ip)
            .await;
        if matches!(
            recorded,
            Err(OptOutError::SourceFull | OptOutError::AddressFull { .. } | OptOutError::Loading)
        ) {
            // Nothing was listed: no proof to hold.
            cookies_out.retain(|c| !c.starts_with(PROOF_COOKIE));
        }
        recorded.map_err(list_error)?;
    } else {
        // An opt-in names what it lifts: without ids nothing changes, the
        // cookie included.
        if ids.is_empty() {
            return Err(ApiError::IdentityRequired);
        }
        let proof = match (server_proof, nonce) {
            (true, _) => Proof::ServerKey,
            (false, _) if any_site && carried => return Err(ApiError::CredentialsNotAllowed),
            (false, Some(n)) => Proof::Cookie(proof_hash(&n)),
            (false, None) => return Err(ApiError::ProofRequired),
        };
        privacy
            .record_opt_in(&source.id, &ids, proof)
            .await
            .map_err(list_error)?;
        // The cookie is cleared only once the opt-in is recorded.
        cookies_out.push(jar.optout(false));
    }
    let body = if opt_out {
        br#"{"success":true,"optedOut":true}"#.to_vec()
    } else {
        br#"{"success":true,"optedOut":false}"#.to_vec()
    };
    Ok(response::json(StatusCode::OK, body))
}

fn list_error(e: OptOutError) -> ApiError {
    match e {
        OptOutError::SourceFull => ApiError::OptOutListFull,
        OptOutError::AddressFull { retry_after_secs } => {
            ApiError::OptOutAddressFull { retry_after_secs }
        }
        OptOutError::Loading => ApiError::OptOutListLoading,
        OptOutError::ProofRequired => ApiError::ProofRequired,
        e => {
            tracing::warn!(error = %e, "opt-out list record not written");
            ApiError::Unavailable
        }
    }
}

fn new_nonce() -> Vec<u8> {
    uuid::Uuid::new_v4().as_bytes()[..PROOF_NONCE_BYTES].to_vec()
}

fn decode_nonce(v: &[u8]) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(v)
        .ok()
        .filter(|n| n.len() == PROOF_NONCE_BYTES)
}

/// The attributes every cookie of these endpoints shares.
#[derive(Debug, Clone, Copy)]
pub struct Jar {
    pub secure: bool,
    pub max_age_secs: u64,
}

impl Jar {
    /// `SameSite=None` needs `Secure`; without it browsers refuse the
    /// cookie, so plain HTTP gets `Lax`.
    fn attributes(&self) -> &'static str {
        if self.secure {
            "Path=/; SameSite=None; Secure"
        } else {
            "Path=/; SameSite=Lax"
        }
    }

    /// `tg_optout=1`, or its removal (`opt_out = false`).
    pub fn optout(&self, opt_out: bool) -> String {
        let (value, age) = if opt_out {
            ("1", self.max_age_secs)
        } else {
            ("", 0)
        };
        format!(
            "{OPTOUT_COOKIE}={value}; Max-Age={age}; {}",
            self.attributes()
        )
    }

    /// The proof cookie holding `nonce`.
    pub fn proof(&self, nonce: &[u8]) -> String {
        let v = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(nonce);
        format!(
            "{PROOF_COOKIE}={v}; Max-Age={}; HttpOnly; {}",
            self.max_age_secs,
            self.attributes()
        )
    }
}

/// An empty body, or a JSON object.
fn parse_body(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.trim_ascii().is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        // The key belongs to the request: of the wrong type, it refuses it.
        Ok(Value::Object(m)) => match m.get("writeKey") {
            None | Some(Value::Null | Value::String(_)) => Ok(m),
            Some(_) => Err(ApiError::InvalidField("writeKey")),
        },
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
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(_) => return Err(ApiError::InvalidIdentity),
    };
    match id {
        // Blank ids name no one (ids are compared trimmed).
        Some(s) if s.trim().is_empty() => Ok(None),
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
        let plain = Jar {
            secure: false,
            max_age_secs: 63_072_000,
        };
        let tls = Jar {
            secure: true,
            ..plain
        };
        assert_eq!(
            plain.optout(true),
            "tg_optout=1; Max-Age=63072000; Path=/; SameSite=Lax"
        );
        assert_eq!(
            tls.optout(false),
            "tg_optout=; Max-Age=0; Path=/; SameSite=None; Secure"
        );
        assert_eq!(
            tls.proof(&[0u8; PROOF_NONCE_BYTES]),
            "tg_optout_proof=AAAAAAAAAAAAAAAAAAAAAA; Max-Age=63072000; HttpOnly; Path=/; SameSite=None; Secure"
        );
    }

    #[test]
    fn proof_nonces_round_trip_and_bad_ones_are_ignored() {
        let n = new_nonce();
        assert_eq!(n.len(), PROOF_NONCE_BYTES);
        assert_ne!(n, new_nonce());
        let jar = Jar {
            secure: false,
            max_age_secs: 1,
        };
        let c = jar.proof(&n);
        let v = c
            .split(';')
            .next()
            .unwrap()
            .strip_prefix("tg_optout_proof=")
            .unwrap();
        assert_eq!(decode_nonce(v.as_bytes()), Some(n));
        assert_eq!(decode_nonce(b"AAAA"), None);
        assert_eq!(decode_nonce(b"not base64!"), None);
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
        assert!(matches!(
            parse_body(br#"{"writeKey":5}"#),
            Err(ApiError::InvalidField("writeKey"))
        ));
        assert!(parse_body(br#"{"writeKey":null}"#).is_ok());
    }
}
