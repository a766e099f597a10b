//! Background load for the reliability tests: client threads posting
//! batches of events with unique messageIds, recording what the gateway
//! answered.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{basic, http, metric_sum, Gateway, WRITE_KEY};

/// Events in each batch a load client posts.
pub const BATCH: u64 = 20;
/// Pause between two requests of one load client.
pub const PACE: Duration = Duration::from_millis(5);
/// Padding that gives each event a realistic size (about 400 bytes of JSON).
pub const PAD: &str = "pppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppppp";

/// Where a test is, as seen by the load clients (tags their 503s).
pub const PHASE_BROKER_UP: u8 = 0;
pub const PHASE_BROKER_DOWN: u8 = 1;
pub const PHASE_RECOVERING: u8 = 2;
pub const PHASE_RECOVERED: u8 = 3;

/// What the load clients saw.
#[derive(Debug, Default)]
pub struct LoadReport {
    pub requests: u64,
    pub events_sent: u64,
    pub accepted: u64,
    pub rejected: u64,
    /// 503 answers by phase, with the producer queue read right after each.
    pub unavailable: Vec<(u8, f64)>,
    /// 503 answers without `Retry-After`.
    pub unavailable_without_retry_after: u64,
    pub other_statuses: Vec<u16>,
    pub connection_errors: u64,
    /// messageIds of the events the gateway said it accepted.
    pub accepted_ids: HashSet<String>,
}

impl LoadReport {
    pub fn unavailable_in(&self, phase: u8) -> usize {
        self.unavailable.iter().filter(|(p, _)| *p == phase).count()
    }
}

/// Background clients posting batches of events with unique messageIds.
pub struct Load {
    stop: Arc<AtomicBool>,
    phase: Arc<AtomicU8>,
    pub accepted: Arc<AtomicU64>,
    pub unavailable: Arc<AtomicU64>,
    threads: Vec<JoinHandle<LoadReport>>,
}

impl Load {
    /// `clients` threads; a client stops on its own at its first connection
    /// error when `stop_on_connection_error` (the listener closed).
    pub fn start(gw: &Gateway, clients: usize, stop_on_connection_error: bool) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let phase = Arc::new(AtomicU8::new(PHASE_BROKER_UP));
        let accepted = Arc::new(AtomicU64::new(0));
        let unavailable = Arc::new(AtomicU64::new(0));
        let threads = (0..clients)
            .map(|client| {
                let (addr, admin) = (gw.addr, gw.admin);
                let (stop, phase) = (stop.clone(), phase.clone());
                let (accepted, unavailable) = (accepted.clone(), unavailable.clone());
                std::thread::spawn(move || {
                    let mut report = LoadReport::default();
                    let auth = basic(WRITE_KEY);
                    let headers = [
                        ("content-type", "application/json"),
                        ("authorization", auth.as_str()),
                    ];
                    let mut seq = 0u64;
                    while !stop.load(Ordering::Relaxed) {
                        let ids: Vec<String> = (0..BATCH)
                            .map(|j| format!("c{client}-r{seq}-e{j}"))
                            .collect();
                        seq += 1;
                        let events: Vec<String> = ids
                            .iter()
                            .map(|id| {
                                format!(
                                    r#"{{"type":"track","event":"load","anonymousId":"v-{id}","messageId":"{id}","properties":{{"pad":"{PAD}"}}}}"#
                                )
                            })
                            .collect();
                        let body = format!(r#"{{"batch":[{}]}}"#, events.join(","));
                        let phase_now = phase.load(Ordering::Relaxed);
                        report.requests += 1;
                        report.events_sent += BATCH;
                        match http(addr, "POST", "/v1/batch", &headers, body.as_bytes()) {
                            Ok(r) if r.status == 200 => {
                                let v = r.json();
                                let n = v["accepted"].as_u64().expect("accepted count");
                                report.accepted += n;
                                report.rejected += v["rejected"].as_u64().unwrap_or(0);
                                // The pipeline handles a batch in order: the
                                // accepted events are its first `n`.
                                report.accepted_ids.extend(ids.into_iter().take(n as usize));
                                accepted.fetch_add(n, Ordering::Relaxed);
                            }
                            Ok(r) if r.status == 503 => {
                                if r.header("retry-after").is_none() {
                                    report.unavailable_without_retry_after += 1;
                                }
                                let queue = http(admin, "GET", "/metrics", &[], b"")
                                    .map(|m| {
                                        metric_sum(
                                            &String::from_utf8_lossy(&m.body),
                                            "trackgate_producer_queue_messages",
                                            &[],
                                        )
                                    })
                                    .unwrap_or(f64::NAN);
                                report.unavailable.push((phase_now, queue));
                                unavailable.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(r) => report.other_statuses.push(r.status),
                            Err(_) => {
                                report.connection_errors += 1;
                                if stop_on_connection_error {
                                    break;
                                }
                            }
                        }
                        std::thread::sleep(PACE);
                    }
                    report
                })
            })
            .collect();
        Load {
            stop,
            phase,
            accepted,
            unavailable,
            threads,
        }
    }

    pub fn set_phase(&self, phase: u8) {
        self.phase.store(phase, Ordering::Relaxed);
    }

    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }

    pub fn unavailable(&self) -> u64 {
        self.unavailable.load(Ordering::Relaxed)
    }

    /// Stops the clients (if still running) and merges their reports.
    pub fn finish(self) -> LoadReport {
        self.stop.store(true, Ordering::Relaxed);
        let mut total = LoadReport::default();
        for t in self.threads {
            let r = t.join().expect("load client");
            total.requests += r.requests;
            total.events_sent += r.events_sent;
            total.accepted += r.accepted;
            total.rejected += r.rejected;
            total.unavailable.extend(r.unavailable);
            total.unavailable_without_retry_after += r.unavailable_without_retry_after;
            total.other_statuses.extend(r.other_statuses);
            total.connection_errors += r.connection_errors;
            total.accepted_ids.extend(r.accepted_ids);
        }
        total
    }
}
