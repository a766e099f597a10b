//! The admin listener: `/healthz` (alive), `/readyz` (ready to take
//! traffic: broker reachable, topics verified, queue under its high-water
//! mark, not shutting down), `/metrics` (Prometheus text), `/config` (the
//! running configuration's version and hash, see `reload`) and the live
//! inspector (`/inspect`, see `inspect`).

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{self, Body};
use crate::inspect::http::{self as inspect_http, AdminBody};
use crate::inspect::Inspector;
use crate::sink::kafka::KafkaSink;

pub struct AdminState {
    pub sink: Arc<KafkaSink>,
    pub prometheus: Option<PrometheusHandle>,
    pub inspector: Arc<Inspector>,
    /// The running configuration (`GET /config`).
    pub live: Arc<crate::reload::Live>,
    /// Turns true on shutdown: ends the inspector's streams.
    pub stop: tokio::sync::watch::Receiver<bool>,
}

/// Serves one request of the admin listener.
pub async fn serve<B>(
    state: Arc<AdminState>,
    req: Request<B>,
) -> Result<Response<AdminBody>, Infallible> {
    if let Some(r) = inspect_http::route(&state.inspector, &req, &state.stop) {
        return Ok(r);
    }
    if req.uri().path() == "/config" {
        // Version, hash, sources and reload status; never keys or secrets.
        let body = serde_json::to_vec(&*state.live.info()).unwrap_or_default();
        return Ok(response::json(StatusCode::OK, body).map(inspect_http::full_body));
    }
    let Ok(r) = handle(state, req).await;
    Ok(r.map(inspect_http::full_body))
}

pub async fn handle<B>(
    state: Arc<AdminState>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz" => response::json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        "/readyz" => {
            let reasons = state.sink.readiness_reasons();
            if reasons.is_empty() {
                response::json(StatusCode::OK, br#"{"ready":true}"#.to_vec())
            } else {
                let body = serde_json::json!({"ready": false, "reasons": reasons});
                response::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    body.to_string().into_bytes(),
                )
            }
        }
        "/metrics" => {
            state.sink.publish_gauges();
            let text = state
                .prometheus
                .as_ref()
                .map(PrometheusHandle::render)
                .unwrap_or_default();
            let mut r = Response::new(http_body_util::Full::new(bytes::Bytes::from(text)));
            r.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            r
        }
        _ => response::json(
            StatusCode::NOT_FOUND,
            br#"{"success":false,"error":"not_found","message":"no such endpoint"}"#.to_vec(),
        ),
    })
}
