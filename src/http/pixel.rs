//! `GET /v1/pixel.gif?writeKey=…&data=<base64url JSON>`: one event from the
//! query string, for `<noscript>` and e-mail. The answer is always the GIF
//! (an image cannot show an error); refusals and rejections are counted.

use std::net::SocketAddr;

use crate::json::{self, Value};
use base64::Engine;
use http::header::USER_AGENT;
use http::{Request, Response};

use super::response::{self, Body};
use super::{auth, client_ip, AppState};
use crate::event::{EventType, RejectReason};
use crate::ingest::RawEvent;
use crate::normalize::RequestMeta;

/// Metric of pixel requests refused as a whole, by `reason`.
pub const PIXEL_REFUSED: &str = "trackgate_pixel_refused_total";

pub async fn serve<B: Sync>(
    state: &AppState,
    peer: SocketAddr,
    req: &Request<B>,
) -> Response<Body> {
    let cfg = &state.config;
    let client_ip = client_ip::resolve(peer.ip(), req.headers(), &cfg.server.trusted_proxies);
    if state.limits.check_ip(client_ip).is_err() {
        metrics::counter!(PIXEL_REFUSED, "reason" => "rate_limited").increment(1);
        return response::pixel();
    }
    let query = req.uri().query();
    let Some(key) =
        auth::query_param(query, "writeKey").or_else(|| auth::header_key(req.headers()))
    else {
        metrics::counter!(PIXEL_REFUSED, "reason" => "missing_write_key").increment(1);
        return response::pixel();
    };
    let Some(source) = state.sources.get(&key) else {
        metrics::counter!(PIXEL_REFUSED, "reason" => "invalid_write_key").increment(1);
        return response::pixel();
    };
    if state.limits.check_source(&source.id, 1).is_err() {
        metrics::counter!(PIXEL_REFUSED, "reason" => "rate_limited").increment(1);
        return response::pixel();
    }
    let data = auth::query_param(query, "data").unwrap_or_default();
    let decoded = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(data.trim_end_matches('=').as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok());
    let text = decoded.as_deref().unwrap_or(&data);
    let raw = match decoded.as_deref().map(json::from_str) {
        Some(Ok(Value::Object(mut map))) => {
            // A pixel is a page view unless it says otherwise.
            map.get_or_insert_with("type", || Value::from(EventType::Page.as_str()));
            RawEvent::Parsed(map, text)
        }
        Some(Ok(_)) => RawEvent::Undecodable(text, RejectReason::NotAnObject),
        _ => RawEvent::Undecodable(text, RejectReason::InvalidJson),
    };
    let meta = RequestMeta {
        source_id: &source.id,
        received_at: chrono::Utc::now(),
        client_ip,
        user_agent: req.headers().get(USER_AGENT).and_then(|v| v.to_str().ok()),
        batch_sent_at: None,
        batch_context: None,
        signals: crate::privacy::RequestSignals::from_headers(req.headers()),
    };
    if state.pipeline.ingest(vec![raw], None, &meta).await.is_err() {
        metrics::counter!(PIXEL_REFUSED, "reason" => "unavailable").increment(1);
    }
    response::pixel()
}
