//! The admin listener: `/healthz` (alive), `/readyz` (ready to take
//! traffic), `/metrics` (Prometheus text), `/config` (the running
//! configuration's version, hashes and redacted values, see `reload`) and
//! the live inspector (`/inspect`, see `inspect`). `/config` and the
//! inspector are guarded by `inspect.token` and the `Host` check (see
//! `inspect::guard`).
//!
//! Readiness. Not ready while shutting down (the drain period), while a
//! readiness gate is closed (e.g. the opt-out list loading), or before the
//! broker and its topics were verified once since start. After that, with
//! the spool on and `spool.ready_without_broker`, a broker outage does not
//! turn readiness 503 as long as the spool has room for a request: events
//! are spooled and delivered when the broker returns, and the body says why
//! (`"degraded":["broker_unreachable"]`). Without the spool, the broker must
//! be reachable and the producer queue under its high-water mark. While the
//! spool's disk fails writes or fsyncs, readiness is 503 with the reason
//! `disk_full` or `spool_io_error` (requests get 503 meanwhile).

use std::convert::Infallible;
use std::sync::Arc;

use http::header::{HeaderValue, CONTENT_TYPE};
use http::{Request, Response, StatusCode};
use metrics_exporter_prometheus::PrometheusHandle;

use super::response::{self, Body};
use crate::inspect::http::{self as inspect_http, AdminBody};
use crate::inspect::Inspector;
use crate::metrics;
use crate::sink::kafka::KafkaSink;
use crate::spool::Spool;

pub struct AdminState {
    pub sink: Arc<KafkaSink>,
    pub spool: Option<Arc<Spool>>,
    /// Room the spool must have for readiness (one largest request).
    pub spool_room: u64,
    pub prometheus: Option<PrometheusHandle>,
    pub inspector: Arc<Inspector>,
    /// The running configuration (`GET /config`).
    pub live: Arc<crate::reload::Live>,
    /// Cancelled on shutdown: ends the inspector's streams.
    pub stop: tokio_util::sync::CancellationToken,
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
        // Guarded like the inspector: the same token and allowed hosts.
        if let Err(refused) = crate::inspect::guard::check(state.inspector.config(), &req) {
            return Ok(inspect_http::refusal(refused));
        }
        // Version, hashes, files, reload status and the configuration with
        // every secret redacted.
        let body = serde_json::to_vec(&*state.live.info()).unwrap_or_default();
        return Ok(response::json(StatusCode::OK, body).map(inspect_http::full_body));
    }
    let Ok(r) = handle(state, req).await;
    Ok(r.map(inspect_http::full_body))
}

/// The readiness verdict and its reasons.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Readiness {
    pub ready: bool,
    /// Why not ready.
    pub reasons: Vec<&'static str>,
    /// Ready, but events wait on the spool for this reason.
    pub degraded: Vec<&'static str>,
}

/// Readiness as `/readyz` reports it (and the `trackgate_ready` gauge).
pub fn readiness(sink: &KafkaSink, spool: Option<&Spool>, spool_room: u64) -> Readiness {
    let mut degraded = Vec::new();
    let mut reasons = match spool {
        Some(spool) if spool.config().ready_without_broker && sink.broker_seen() => {
            if !sink.broker_verified() {
                degraded.extend(
                    sink.readiness_reasons()
                        .into_iter()
                        .filter(|r| *r == "broker_unreachable" || *r == "topics_not_verified"),
                );
            }
            sink.local_readiness_reasons()
        }
        // Shutdown, gates, broker and queue.
        _ => sink.readiness_reasons(),
    };
    if spool.is_some_and(|s| !s.has_room(spool_room)) {
        reasons.push("spool_full");
    }
    // Writes or fsyncs fail: every request would get 503 until the disk
    // takes writes again (`disk_full` or `spool_io_error`).
    if let Some(reason) = spool.and_then(Spool::unhealthy) {
        reasons.push(reason);
    }
    // With the spool, the producer queue filling up only means replay waits.
    if spool.is_some() {
        reasons.retain(|r| *r != "producer_queue_over_high_water_mark");
    }
    let ready = reasons.is_empty();
    metrics::ready(ready);
    Readiness {
        ready,
        reasons,
        degraded,
    }
}

pub async fn handle<B>(
    state: Arc<AdminState>,
    req: Request<B>,
) -> Result<Response<Body>, Infallible> {
    Ok(match req.uri().path() {
        "/healthz" => response::json(StatusCode::OK, br#"{"status":"ok"}"#.to_vec()),
        "/readyz" => {
            let r = readiness(&state.sink, state.spool.as_deref(), state.spool_room);
            let spooling = state.spool.is_some();
            if r.ready && r.degraded.is_empty() {
                response::json(StatusCode::OK, br#"{"ready":true}"#.to_vec())
            } else if r.ready {
                let body = serde_json::json!({"ready": true, "degraded": r.degraded, "spooling": spooling});
                response::json(StatusCode::OK, body.to_string().into_bytes())
            } else {
                let body = serde_json::json!({"ready": false, "reasons": r.reasons});
                response::json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    body.to_string().into_bytes(),
                )
            }
        }
        "/metrics" => {
            publish_gauges(&state.sink, state.spool.as_deref(), state.spool_room);
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

/// Updates every gauge of the sink, the spool and readiness.
pub fn publish_gauges(sink: &KafkaSink, spool: Option<&Spool>, spool_room: u64) {
    sink.publish_gauges(spool.map_or(0, Spool::open_events));
    if let Some(s) = spool {
        s.publish_gauges();
    }
    readiness(sink, spool, spool_room);
}
