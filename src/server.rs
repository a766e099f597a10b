//! Listeners, connection limits, admission, timeouts, the spool, the broker
//! monitor and watcher, and graceful shutdown.
//!
//! Shutdown sequence (SIGTERM/SIGINT or the caller's future): readiness goes
//! 503 and requests are still served for `server.drain_ms` (load balancers
//! notice and stop sending, nobody is refused a connection); then the
//! listener closes and in-flight requests get `server.shutdown_grace_ms` to
//! finish; then the spool takes no more appends and the producer refuses
//! every send (a request still running gets 503, never a 200 after the
//! final accounting); then the producer gets `kafka.flush_timeout_ms` to
//! deliver what it holds. With the spool, whatever is undelivered stays on
//! it for the next start; without, it is purged and counted failed exactly
//! once (see [`KafkaSink::close`]). The admin listener stays up until then,
//! so `/metrics` shows the final accounting while it drains.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use http::{Method, Request};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::admission::{self, Admission};
use crate::config::{Config, LoadOptions};
use crate::http::admin::{self, AdminState};
use crate::http::error::ApiError;
use crate::http::{self as api, client_ip, response, AppState};
use crate::ingest::Pipeline;
use crate::limits::{self, IdleTimeout};
use crate::metrics;
use crate::privacy::PrivacyStage;
use crate::reload::{self, Live};
use crate::shutdown::Stop;
use crate::sink::kafka::KafkaSink;
use crate::sink::DeliveryListener;
use crate::spool::{Spool, SpoolError};

/// `/readyz` reason while the opt-out list is still being read.
pub const READY_OPTOUT_LIST: &str = "optout_list_loading";

/// Largest request head (request line + headers) a connection may send.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;

/// The broker monitor's pause before checking again when a check passed
/// while production was paused; also how long the broker watcher waits for
/// a "brokers down" report before it looks at the stop signal again (that
/// wait belongs to the sink and cannot be woken by the signal).
const MONITOR_STEP: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the Kafka producer: {0}")]
    Sink(#[from] crate::sink::kafka::SinkError),
    #[error("cannot start the embedded broker: {0}")]
    EmbeddedBroker(rdkafka::error::KafkaError),
    #[error(transparent)]
    Privacy(#[from] crate::privacy::PrivacyError),
    #[error(transparent)]
    Quality(#[from] crate::quality::QualityError),
    #[error(transparent)]
    Sdk(#[from] crate::http::sdk::SdkError),
    #[error("cannot open the spool: {0}")]
    Spool(#[from] SpoolError),
}

/// The addresses a running gateway listens on.
#[derive(Debug, Clone)]
pub struct Bound {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub brokers: String,
    /// The live inspector's page, when it is enabled.
    pub inspector: Option<String>,
    /// The browser SDK's URL, when the gateway serves it.
    pub sdk: Option<String>,
}

/// Runs the gateway until `shutdown` resolves, then shuts down gracefully.
/// `on_bound` is told the addresses once the listeners are up.
pub async fn run(
    config: Config,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    run_reloadable(config, None, shutdown, on_bound).await
}

/// [`run`], reloading the configuration from `reload` (with what it was
/// read from) on SIGHUP and when one of its files changes (see `reload`).
pub async fn run_reloadable(
    config: Config,
    reload: Option<(LoadOptions, reload::Source)>,
    shutdown: impl Future<Output = ()>,
    on_bound: impl FnOnce(&Bound),
) -> Result<(), ServerError> {
    let config = Arc::new(config);
    let prometheus = metrics::install();

    // The mock cluster must outlive the producer; it is dropped at the end.
    let mut _embedded = None;
    let brokers = if config.uses_embedded_broker() {
        let cluster = rdkafka::mocking::MockCluster::new(1).map_err(ServerError::EmbeddedBroker)?;
        let servers = cluster.bootstrap_servers();
        let optouts = [config.privacy.optout_topic.as_str()];
        for topic in config.kafka.topics.all().into_iter().chain(optouts) {
            cluster
                .create_topic(topic, config.kafka.partitions, 1)
                .map_err(ServerError::EmbeddedBroker)?;
        }
        _embedded = Some(cluster);
        servers
    } else {
        config.kafka.brokers.clone()
    };

    let sink = Arc::new(KafkaSink::new(&config.kafka, &brokers)?);
    // The embedded broker keeps nothing either: no spool in development mode.
    let spool = if config.spool.enabled && !config.uses_embedded_broker() {
        let (spool, recovered) = Spool::open(&config.spool, sink.clone())?;
        let listener: Arc<dyn DeliveryListener> = spool.clone();
        sink.set_listener(Arc::downgrade(&listener));
        tracing::info!(
            dir = %spool.dir().display(),
            segments = recovered.segments,
            records = recovered.records,
            invalid_records = recovered.invalid_records,
            corrupt = recovered.corrupt,
            quarantined_bytes = recovered.damaged_bytes,
            "spool opened; unacknowledged records will be produced again"
        );
        Some(spool)
    } else {
        None
    };
    metrics::at_start(
        spool.as_ref().map_or(0, |_| config.spool.max_bytes),
        config.sources.iter().map(|s| s.id.as_str()),
    );
    let spool_workers = spool.as_ref().map(Spool::start);
    // Given after the producer's flush and the spool's close: ends every
    // task and thread started below, at once.
    let stop = Stop::new();
    let inspector = Arc::new(crate::inspect::Inspector::new(&config.inspect));
    let spool_room = config.limits.max_request_bytes as u64;
    let monitor = spawn_broker_monitor(
        config.clone(),
        (sink.clone(), spool.clone(), spool_room),
        stop.clone(),
    );
    let watcher = spawn_broker_watcher(sink.clone(), stop.clone());

    let listener = bind(config.server.listen).await?;
    let admin_listener = bind(config.server.admin_listen).await?;
    let listen = listener.local_addr().unwrap_or(config.server.listen);
    let admin = admin_listener
        .local_addr()
        .unwrap_or(config.server.admin_listen);
    let bound = Bound {
        listen,
        admin,
        brokers: brokers.clone(),
        inspector: config
            .inspect
            .enabled
            .then(|| format!("http://{admin}/inspect")),
        sdk: config
            .sdk
            .enabled
            .then(|| format!("http://{listen}{}", config.sdk.path)),
    };
    on_bound(&bound);
    tracing::info!(
        listen = %bound.listen,
        admin = %bound.admin,
        brokers = %bound.brokers,
        inspector = bound.inspector.as_deref().unwrap_or("off"),
        sdk = bound.sdk.as_deref().unwrap_or("off"),
        "trackgate listening"
    );

    let (privacy, privacy_workers) = PrivacyStage::start(&config, &brokers, stop.subscribe())?;
    sink.add_readiness_gate(READY_OPTOUT_LIST, privacy.optouts().loaded_flag());
    let sdk = crate::http::sdk::SdkAsset::load(&config.sdk)?.map(Arc::new);
    tokio::spawn(inspector.clone().run_ticker(stop.token()));
    let mut pipeline = Pipeline::new(config.clone(), sink.clone(), privacy)?;
    pipeline.inspector = inspector.clone();
    if let Some(s) = &spool {
        pipeline = pipeline.with_spool(s.clone());
    }
    let state = Arc::new(AppState::new(pipeline).with_sdk(sdk));
    let admission = Arc::new(Admission::new());
    let (source, opts) = match reload {
        Some((opts, source)) => (source, Some(opts)),
        None => (reload::Source::default(), None),
    };
    let live = Arc::new(Live::new(state, &source, opts));
    reload::spawn(live.clone(), stop.token());
    let admin_state = Arc::new(AdminState {
        sink: sink.clone(),
        spool: spool.clone(),
        spool_room,
        prometheus,
        inspector,
        live: live.clone(),
        stop: stop.token(),
    });
    let purge_live = live.clone();
    tokio::spawn(limits::purge_loop(
        move || purge_live.current().limits.clone(),
        Duration::from_millis(config.rate_limit.purge_interval_ms),
        stop.token(),
    ));
    let graceful = GracefulShutdown::new();
    let admin_task = tokio::spawn(serve_admin(admin_listener, admin_state, stop.token()));
    let conn_limit = Arc::new(Semaphore::new(config.server.max_connections));
    let header_timeout = Duration::from_millis(config.server.header_read_timeout_ms);
    let idle_timeout = Duration::from_millis(config.server.keep_alive_timeout_ms);
    let max_header_bytes = config.server.max_header_bytes;

    // Resolves once the drain period after the shutdown signal is over.
    let drain = Duration::from_millis(config.server.drain_ms);
    let sink_for_drain = sink.clone();
    let shutdown = async move {
        shutdown.await;
        sink_for_drain.begin_shutdown();
        tracing::info!(
            drain_ms = drain.as_millis() as u64,
            "shutting down: readiness 503, still serving during the drain period"
        );
        tokio::time::sleep(drain).await;
    };
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            _ = &mut shutdown => break,
            p = conn_limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: back off briefly.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        // A peer over its share of connections without a request is
        // closed at once (see `admission::connections`).
        let connection = match admission.open_connection(&live.current().config, peer.ip()) {
            Ok(c) => c,
            Err(refused) => {
                metrics::rate_limited(refused.label());
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let live = live.clone();
        let admission = admission.clone();
        // Each request runs on the state current when it starts.
        let svc = service_fn(move |req| {
            let busy = connection.busy();
            admit(live.current(), admission.clone(), peer, req, busy)
        });
        // hyper's head timer also runs while a kept-alive connection waits
        // for its next request; `IdleTimeout` closes quiet ones sooner.
        // Half-close: a client may shut its write side once its request is
        // sent and still gets the response.
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout)
            .keep_alive(true)
            .half_close(true)
            .max_header_size(max_header_bytes)
            .max_buf_size(max_header_bytes.max(limits::MIN_HEADER_BYTES))
            .serve_connection(TokioIo::new(IdleTimeout::new(stream, idle_timeout)), svc);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
            drop(permit);
        });
    }

    // Shutdown (readiness has been 503 since the signal).
    tracing::info!("drain period over: listener closed");
    sink.begin_shutdown();
    drop(listener);
    let grace = Duration::from_millis(config.server.shutdown_grace_ms);
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish within the grace period");
    }
    if let Some(s) = &spool {
        // Requests still running after the grace period get 503.
        s.close_appends();
    }
    let flush_timeout = Duration::from_millis(config.kafka.flush_timeout_ms);
    let sink_for_close = sink.clone();
    let closing = tokio::task::spawn_blocking(move || sink_for_close.close(flush_timeout)).await;
    sink.log_failures();
    match closing {
        Ok(c) if spool.is_some() => {
            let left = spool.as_ref().map_or(0, |s| s.open_records());
            tracing::info!(
                accepted = c.accepted,
                delivered = spool.as_ref().map_or(0, |s| s
                    .stats()
                    .delivered
                    .load(std::sync::atomic::Ordering::Relaxed)),
                failed = c.failed,
                spooled = left,
                "shutdown complete; undelivered records stay on the spool for the next start"
            );
        }
        Ok(c) => {
            if c.purged > 0 {
                tracing::error!(
                    purged = c.purged,
                    written_off = c.written_off,
                    "producer flush deadline passed; undelivered events counted as failed"
                );
            }
            tracing::info!(
                accepted = c.accepted,
                delivered = c.delivered,
                failed = c.failed,
                "shutdown complete"
            );
        }
        Err(e) => tracing::error!(error = %e, "closing the producer failed"),
    }
    if let Some(s) = &spool {
        s.close();
    }
    if let Some(w) = spool_workers {
        w.join();
    }
    stop.cancel();
    let _ = admin_task.await;
    let _ = monitor.join();
    let _ = watcher.join();
    privacy_workers.join();
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, ServerError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServerError::Bind { addr, source })
}

/// Admission (the client's shares, see `admission`), then the API. `_busy`
/// marks the connection as having a request under way until the response
/// is built.
async fn admit(
    state: Arc<AppState>,
    admission: Arc<Admission>,
    peer: SocketAddr,
    req: Request<Incoming>,
    _busy: admission::connections::Busy,
) -> Result<hyper::Response<response::Body>, std::convert::Infallible> {
    let ip = client_ip::resolve(
        peer.ip(),
        req.headers(),
        &state.config.server.trusted_proxies,
    );
    let has_body = matches!(*req.method(), Method::POST | Method::PUT | Method::PATCH);
    match admission.admit(&state.config, ip, req.headers(), has_body) {
        Ok(admitted) => admission::serve_as(admitted, api::handle(state, peer, req)).await,
        Err(refused) => {
            metrics::rate_limited(refused.label());
            Ok(response::error(
                &ApiError::Overloaded,
                state.config.server.retry_after_secs,
            ))
        }
    }
}

async fn serve_admin(listener: TcpListener, state: Arc<AdminState>, stop: CancellationToken) {
    loop {
        let (stream, _) = tokio::select! {
            _ = stop.cancelled() => return,
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(_) => continue,
            },
        };
        let state = state.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req| admin::serve(state.clone(), req));
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        });
    }
}

/// Keeps readiness truthful: fetches metadata on an interval, (re)creates
/// topics a restarted broker lost, logs delivery failures with counts.
/// A plain thread: metadata calls block.
fn spawn_broker_monitor(
    config: Arc<Config>,
    (sink, spool, spool_room): (Arc<KafkaSink>, Option<Arc<Spool>>, u64),
    stop: Stop,
) -> std::thread::JoinHandle<()> {
    let interval = Duration::from_millis(config.kafka.metadata_interval_ms);
    std::thread::Builder::new()
        .name("broker-monitor".into())
        .spawn(move || {
            let topics = config.kafka.topics.all();
            let mut was_ok = None;
            while !stop.is_cancelled() {
                let result = sink.check_broker(&topics);
                let ok = result.is_ok();
                if was_ok != Some(ok) {
                    match &result {
                        Ok(()) => tracing::info!("broker reachable, topics verified: ready"),
                        Err(e) => tracing::warn!(error = %e, "not ready"),
                    }
                    was_ok = Some(ok);
                }
                sink.log_failures();
                admin::publish_gauges(&sink, spool.as_deref(), spool_room);
                // A check that passed while a "brokers down" report arrived
                // left production paused: check again at once.
                let wait = if ok && sink.production_paused() {
                    MONITOR_STEP
                } else {
                    interval
                };
                if stop.wait_timeout(wait) {
                    break;
                }
            }
        })
        .expect("spawning a thread at start-up")
}

/// Acts on librdkafka's "all broker connections down" the moment it is
/// reported: readiness 503 and production paused, before the broker can come
/// back without its topics (the monitor may be blocked in a metadata call).
fn spawn_broker_watcher(sink: Arc<KafkaSink>, stop: Stop) -> std::thread::JoinHandle<()> {
    std::thread::Builder::new()
        .name("broker-watcher".into())
        .spawn(move || {
            while !stop.is_cancelled() {
                if sink.wait_brokers_down(MONITOR_STEP) {
                    tracing::warn!("all broker connections down: not ready");
                }
            }
        })
        .expect("spawning a thread at start-up")
}

/// Resolves on SIGTERM or SIGINT.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
