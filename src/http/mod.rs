//! The public ingestion API, in the shape of the Segment HTTP Tracking API.
//!
//! Routes (see [`ROUTES`], all under `server.path_prefix`): `POST /v1/batch`
//! and its aliases, `POST /v1/{page,screen,track,identify,group,alias}` and
//! their one-letter aliases, `GET /v1/pixel.gif`, `POST|GET /v1/optout` and
//! `POST /v1/optin` (see [`optout`]), and `OPTIONS` preflights; another
//! method gets 405 with `Allow`. The handler authenticates, decodes and
//! hands raw events to the [`Pipeline`](crate::ingest::Pipeline).
//!
//! Limits (see `limits`): every request first takes an in-flight slot (none
//! left: 503 `overloaded`); an ingestion request is then counted against its
//! client IP before its body is read, and against its source's event rate
//! once its events are counted (over either: 429 `rate_limited`).
//!
//! Before any event is processed, a request is charged for what it will
//! write (`limits::output`): a batch `context` over `limits.max_context_bytes`
//! or `limits.max_context_keys`, or records over
//! `limits.max_request_output_bytes`, get 413; a single event over
//! `limits.max_event_bytes` gets 413 `event_too_large`; the figure is then
//! charged against the client's share of the body budget (see `admission`;
//! over: 503 `overloaded`).

pub mod admin;
pub mod auth;
pub mod body;
pub mod client_ip;
pub mod cors;
pub mod error;
pub mod offload;
pub mod optout;
pub mod pixel;
pub mod response;
pub mod sdk;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::header::USER_AGENT;
use http::{Method, Request, Response};
use hyper::body::Incoming;

use crate::admission;
use crate::config::{Config, SourceConfig};
use crate::decode::{self, DecodeError};
use crate::event::EventType;
use crate::ingest::{IngestError, Pipeline, RawEvent};
use crate::limits::output::{self, ContextSize};
use crate::limits::{self, Limits, RateLimited};
use crate::metrics;
use crate::normalize::RequestMeta;
use crate::privacy::RequestSignals;
use auth::Sources;
use error::ApiError;
use response::Body;

/// State shared by every connection of the public listener.
pub struct AppState {
    pub config: Arc<Config>,
    pub pipeline: Pipeline,
    pub sources: Sources,
    pub limits: Arc<Limits>,
    /// The browser SDK served at `sdk.path` (see [`sdk`]); `None`: not served.
    pub sdk: Option<Arc<sdk::SdkAsset>>,
}

impl AppState {
    pub fn new(pipeline: Pipeline) -> AppState {
        let config = pipeline.config.clone();
        AppState {
            sources: Sources::new(&config.sources),
            limits: Arc::new(Limits::new(&config)),
            config,
            pipeline,
            sdk: None,
        }
    }

    /// Serves the browser SDK too.
    pub fn with_sdk(mut self, sdk: Option<Arc<sdk::SdkAsset>>) -> AppState {
        self.sdk = sdk;
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Endpoint {
    Batch,
    Single(EventType),
    Pixel,
    OptOut,
    OptIn,
}

/// Every path the ingestion API answers (under `server.path_prefix`), with
/// the aliases that Segment's and RudderStack's current libraries post to:
/// `/v1/b` (Segment's browser library with batching delivery, and its
/// Kotlin and Swift mobile libraries), the one-letter single-event paths of
/// Segment's browser library, and `/beacon/v1/batch` (RudderStack's browser
/// SDK in beacon mode, write key in the query).
const ROUTES: &[(&str, Endpoint)] = &[
    ("/v1/batch", Endpoint::Batch),
    ("/v1/b", Endpoint::Batch),
    ("/v1/import", Endpoint::Batch),
    ("/beacon/v1/batch", Endpoint::Batch),
    ("/v1/page", Endpoint::Single(EventType::Page)),
    ("/v1/p", Endpoint::Single(EventType::Page)),
    ("/v1/screen", Endpoint::Single(EventType::Screen)),
    ("/v1/s", Endpoint::Single(EventType::Screen)),
    ("/v1/track", Endpoint::Single(EventType::Track)),
    ("/v1/t", Endpoint::Single(EventType::Track)),
    ("/v1/identify", Endpoint::Single(EventType::Identify)),
    ("/v1/i", Endpoint::Single(EventType::Identify)),
    ("/v1/group", Endpoint::Single(EventType::Group)),
    ("/v1/g", Endpoint::Single(EventType::Group)),
    ("/v1/alias", Endpoint::Single(EventType::Alias)),
    ("/v1/a", Endpoint::Single(EventType::Alias)),
    ("/v1/pixel.gif", Endpoint::Pixel),
    ("/v1/optout", Endpoint::OptOut),
    ("/v1/optin", Endpoint::OptIn),
];

impl Endpoint {
    /// The endpoint of a request path: `prefix` (empty, or `/` followed by
    /// segments, without a trailing `/`) then one of [`ROUTES`], with an
    /// optional trailing `/`.
    fn from_path(path: &str, prefix: &str) -> Option<Endpoint> {
        let rest = path.strip_prefix(prefix)?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        ROUTES
            .iter()
            .find(|(route, _)| *route == rest)
            .map(|(_, e)| *e)
    }

    /// The methods it answers, as the `Allow` header of a 405 lists them.
    fn methods(self) -> &'static str {
        match self {
            Endpoint::Batch | Endpoint::Single(_) | Endpoint::OptIn => "POST, OPTIONS",
            Endpoint::Pixel => "GET, OPTIONS",
            Endpoint::OptOut => "GET, POST, OPTIONS",
        }
    }

    /// Metric label.
    fn label(self) -> &'static str {
        match self {
            Endpoint::Batch => "batch",
            Endpoint::Single(t) => t.as_str(),
            Endpoint::Pixel => "pixel",
            Endpoint::OptOut => "optout",
            Endpoint::OptIn => "optin",
        }
    }
}

/// Serves one request of the public listener.
pub async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let start = Instant::now();
    if let Some(sdk) = state.sdk.as_ref().filter(|s| s.matches(req.uri().path())) {
        let resp = sdk.serve(req.method(), req.headers());
        metrics::request("sdk", resp.status().as_u16(), start.elapsed().as_secs_f64());
        return Ok(resp);
    }
    let endpoint = Endpoint::from_path(req.uri().path(), &state.config.server.path_prefix);
    let label = endpoint.map_or("unknown", Endpoint::label);
    let retry_after = state.config.server.retry_after_secs;
    // Answers that are not about one source carry the allow headers for any
    // origin some source allows (ingestion and opt-out answers decide
    // theirs once the write key names the source).
    let origin = cors::origin(req.headers()).map(str::to_owned);
    let any_source = |mut resp: Response<Body>| {
        cors::allow_for(&mut resp, origin.as_deref(), None, &state.sources);
        resp
    };
    // Held until the response is built: a request in flight.
    let Some(_in_flight) = state.limits.try_begin() else {
        let resp = any_source(response::error(&ApiError::Overloaded, retry_after));
        metrics::request(label, resp.status().as_u16(), start.elapsed().as_secs_f64());
        return Ok(resp);
    };
    let resp = match (endpoint, req.method()) {
        (None, _) => any_source(response::error(&ApiError::NotFound, retry_after)),
        (Some(_), &Method::OPTIONS) => cors::preflight(req.headers(), &state.sources),
        (Some(Endpoint::Pixel), &Method::GET) => pixel::serve(&state, peer, &req).await,
        (Some(Endpoint::Batch), &Method::POST) => post(&state, peer, req, None).await,
        (Some(Endpoint::Single(t)), &Method::POST) => post(&state, peer, req, Some(t)).await,
        (Some(Endpoint::OptOut), &Method::POST | &Method::GET) => {
            optout::serve(&state, peer, req, true).await
        }
        (Some(Endpoint::OptIn), &Method::POST) => optout::serve(&state, peer, req, false).await,
        (Some(e), _) => any_source(response::error(
            &ApiError::MethodNotAllowed(e.methods()),
            retry_after,
        )),
    };
    metrics::request(label, resp.status().as_u16(), start.elapsed().as_secs_f64());
    Ok(resp)
}

pub(crate) fn rate_limited(r: RateLimited) -> ApiError {
    ApiError::RateLimited {
        retry_after_secs: r.retry_after_secs,
    }
}

/// A POST to the batch endpoint (`implied` = None) or a single-event one.
async fn post(
    state: &AppState,
    peer: SocketAddr,
    req: Request<Incoming>,
    implied: Option<EventType>,
) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let origin = cors::origin(&parts.headers).map(str::to_owned);
    let mut source_for_cors: Option<Arc<SourceConfig>> = None;
    let result = post_inner(state, peer, &parts, body, implied, &mut source_for_cors).await;
    let mut resp = match result {
        Ok(r) => r,
        Err(e) => response::error(&e, state.config.server.retry_after_secs),
    };
    cors::allow_for(
        &mut resp,
        origin.as_deref(),
        source_for_cors.as_deref(),
        &state.sources,
    );
    resp
}

async fn post_inner(
    state: &AppState,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: Incoming,
    implied: Option<EventType>,
    source_out: &mut Option<Arc<SourceConfig>>,
) -> Result<Response<Body>, ApiError> {
    let cfg = &state.config;
    let client_ip = client_ip::resolve(peer.ip(), &parts.headers, &cfg.server.trusted_proxies);
    state.limits.check_ip(client_ip).map_err(rate_limited)?;
    let bytes = body::read(
        &parts.headers,
        body,
        cfg.limits.max_request_bytes,
        Duration::from_millis(cfg.server.body_read_timeout_ms),
    )
    .await?;

    let header_key = auth::header_key(&parts.headers);
    let query_key = || auth::query_param(parts.uri.query(), "writeKey");

    let user_agent = parts.headers.get(USER_AGENT).and_then(|v| v.to_str().ok());
    let signals = RequestSignals::from_headers(&parts.headers);
    let received_at = chrono::Utc::now();

    let outcome = match implied {
        None => {
            let batch =
                offload::heavy(bytes.len(), || decode::batch(&bytes)).map_err(decode_error)?;
            let key = header_key
                .or(batch.write_key.clone())
                .or_else(query_key)
                .ok_or(ApiError::MissingWriteKey)?;
            let source = authorize(state, &key, parts, source_out)?;
            if batch.events.len() > cfg.limits.max_batch_events {
                return Err(ApiError::TooManyEvents(cfg.limits.max_batch_events));
            }
            let context = match &batch.context {
                Some(ctx) => {
                    let max_depth = cfg.limits.max_json_depth;
                    if limits::object_too_deep(ctx, max_depth) {
                        return Err(ApiError::TooDeep(max_depth));
                    }
                    ContextSize::checked(ctx, &cfg.limits)
                        .map_err(|e| ApiError::OutputTooLarge(e.to_string()))?
                }
                None => ContextSize::default(),
            };
            let text_bytes = batch.events.iter().map(|r| r.text().len() as u64).sum();
            charge_output(
                cfg,
                text_bytes,
                batch.events.len() as u64,
                output::per_record_bytes(context, user_agent),
            )?;
            state
                .limits
                .check_source(&source.id, batch.events.len())
                .map_err(rate_limited)?;
            let meta = RequestMeta {
                source_id: &source.id,
                received_at,
                client_ip,
                user_agent,
                batch_sent_at: batch.sent_at.as_deref(),
                batch_context: batch.context.as_ref(),
                signals,
            };
            let raws = batch
                .events
                .iter()
                .map(|e| match e {
                    decode::EventText::Json(t) => RawEvent::Json(t),
                    decode::EventText::InvalidUtf8 { text, .. } => {
                        RawEvent::Undecodable(text, crate::event::RejectReason::InvalidUtf8)
                    }
                })
                .collect();
            state.pipeline.ingest(raws, None, &meta).await
        }
        Some(t) => {
            let single = decode::single(&bytes).map_err(decode_error)?;
            let body_key = single.write_key;
            let key = header_key
                .or(body_key)
                .or_else(query_key)
                .ok_or(ApiError::MissingWriteKey)?;
            let source = authorize(state, &key, parts, source_out)?;
            // The request is the event: one too large for a record is
            // refused as a whole.
            if single.text.len() > cfg.limits.max_event_bytes {
                return Err(ApiError::EventTooLarge(cfg.limits.max_event_bytes));
            }
            charge_output(
                cfg,
                single.text.len() as u64,
                1,
                output::per_record_bytes(ContextSize::default(), user_agent),
            )?;
            state
                .limits
                .check_source(&source.id, 1)
                .map_err(rate_limited)?;
            let meta = RequestMeta {
                source_id: &source.id,
                received_at,
                client_ip,
                user_agent,
                batch_sent_at: None,
                batch_context: None,
                signals,
            };
            state
                .pipeline
                .ingest(
                    vec![RawEvent::Parsed(single.event, single.text)],
                    Some(t),
                    &meta,
                )
                .await
        }
    };
    match outcome {
        Ok(out) => Ok(response::success(&out)),
        Err(IngestError::Unavailable) => Err(ApiError::Unavailable),
        Err(IngestError::OptOutListLoading) => Err(ApiError::OptOutListLoading),
    }
}

/// Charges the request for the records it will write (see
/// `limits::output`): over `limits.max_request_output_bytes`, 413; over the
/// client's share of the body budget, 503 `overloaded`.
fn charge_output(
    cfg: &Config,
    text_bytes: u64,
    events: u64,
    per_record: u64,
) -> Result<(), ApiError> {
    let out = output::output_bytes(text_bytes, events, per_record);
    let max = cfg.limits.max_request_output_bytes;
    if out > max {
        return Err(ApiError::OutputTooLarge(format!(
            "the batch would write {out} bytes of records (each event with the batch `context` \
             merged), more than limits.max_request_output_bytes = {max}"
        )));
    }
    admission::charge_to(out).map_err(|_| ApiError::Overloaded)
}

/// Looks the write key up and checks the browser origin against the source.
fn authorize(
    state: &AppState,
    key: &str,
    parts: &http::request::Parts,
    source_out: &mut Option<Arc<SourceConfig>>,
) -> Result<Arc<SourceConfig>, ApiError> {
    let source = state
        .sources
        .get(key)
        .cloned()
        .ok_or(ApiError::InvalidWriteKey)?;
    *source_out = Some(source.clone());
    check_origin(&source, parts)?;
    Ok(source)
}

/// A browser's `Origin`, when there is one, must be allowed by the source.
fn check_origin(source: &SourceConfig, parts: &http::request::Parts) -> Result<(), ApiError> {
    match cors::origin(&parts.headers) {
        Some(o) if !cors::is_allowed(source, o) => Err(ApiError::OriginNotAllowed(o.to_string())),
        _ => Ok(()),
    }
}

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::InvalidJson(m) => ApiError::InvalidJson(m),
        e @ (DecodeError::InvalidBatch | DecodeError::InvalidEnvelopeField(..)) => {
            ApiError::InvalidBatch(format!("request body: {e}"))
        }
        DecodeError::NotAnObject => ApiError::InvalidJson("body must be a JSON object".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alias_the_client_libraries_use_is_routed() {
        let cases = [
            ("/v1/batch", Endpoint::Batch),
            ("/v1/b", Endpoint::Batch),
            ("/v1/import/", Endpoint::Batch),
            ("/beacon/v1/batch", Endpoint::Batch),
            ("/v1/t", Endpoint::Single(EventType::Track)),
            ("/v1/p", Endpoint::Single(EventType::Page)),
            ("/v1/s", Endpoint::Single(EventType::Screen)),
            ("/v1/i", Endpoint::Single(EventType::Identify)),
            ("/v1/g", Endpoint::Single(EventType::Group)),
            ("/v1/a", Endpoint::Single(EventType::Alias)),
            ("/v1/screen", Endpoint::Single(EventType::Screen)),
            ("/v1/pixel.gif", Endpoint::Pixel),
        ];
        for (path, want) in cases {
            assert_eq!(Endpoint::from_path(path, ""), Some(want), "{path}");
        }
        for path in [
            "/",
            "/v1",
            "/v1/",
            "/v1/bat",
            "/v2/batch",
            "/beacon/v1/track",
            "/v1/batch//",
        ] {
            assert_eq!(Endpoint::from_path(path, ""), None, "{path}");
        }
    }

    #[test]
    fn a_path_prefix_mounts_every_route_under_it() {
        let prefix = "/collect/x";
        assert_eq!(
            Endpoint::from_path("/collect/x/v1/b", prefix),
            Some(Endpoint::Batch)
        );
        assert_eq!(
            Endpoint::from_path("/collect/x/beacon/v1/batch", prefix),
            Some(Endpoint::Batch)
        );
        assert_eq!(Endpoint::from_path("/v1/batch", prefix), None);
        assert_eq!(Endpoint::from_path("/collect/xv1/batch", prefix), None);
        assert_eq!(Endpoint::from_path("/collect/v1/batch", prefix), None);
    }

    #[test]
    fn allow_lists_the_methods_each_endpoint_answers() {
        assert_eq!(Endpoint::Batch.methods(), "POST, OPTIONS");
        assert_eq!(Endpoint::Pixel.methods(), "GET, OPTIONS");
        assert_eq!(Endpoint::OptOut.methods(), "GET, POST, OPTIONS");
    }
}
