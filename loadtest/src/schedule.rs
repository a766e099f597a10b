//! Open-loop scheduling: request `i` of a run is *intended* to leave at
//! `start + i / rate`, whatever happened to the requests before it. Workers
//! take the next slot from a shared counter, wait for its time and send;
//! latency is measured from the intended time, so a stalled server shows up
//! as latency of every request that should have been sent meanwhile instead
//! of silently slowing the generator down (no coordinated omission).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Below this distance to the intended time a worker stops sleeping on the
/// timer (1 ms granularity) and yields until the time comes.
pub const SPIN_WINDOW: Duration = Duration::from_micros(1500);

/// The intended send times of an open-loop run.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    start: Instant,
    /// Nanoseconds between intended sends.
    interval_ns: f64,
    total: u64,
}

impl Schedule {
    /// `rate` requests per second for `duration`.
    pub fn new(start: Instant, rate: f64, duration: Duration) -> Schedule {
        let total = (rate * duration.as_secs_f64()).round().max(0.0) as u64;
        Schedule {
            start,
            interval_ns: 1e9 / rate,
            total,
        }
    }

    /// How many requests the run sends.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// When request `i` is intended to leave.
    pub fn intended(&self, i: u64) -> Instant {
        self.start + Duration::from_nanos((i as f64 * self.interval_ns).round() as u64)
    }

    /// When the last request is intended to leave.
    pub fn end(&self) -> Instant {
        self.intended(self.total)
    }
}

/// Hands out request numbers `0..limit`, each once.
#[derive(Debug)]
pub struct Slots {
    next: AtomicU64,
    limit: u64,
}

impl Slots {
    pub fn new(limit: u64) -> Slots {
        Slots {
            next: AtomicU64::new(0),
            limit,
        }
    }

    pub fn take(&self) -> Option<u64> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        (i < self.limit).then_some(i)
    }
}

/// Waits until `t`: the timer for the coarse part, then yielding to the
/// other workers until the time has come.
pub async fn wait_until(t: Instant) {
    let now = Instant::now();
    if t <= now {
        return;
    }
    if t - now > SPIN_WINDOW {
        tokio::time::sleep_until((t - SPIN_WINDOW).into()).await;
    }
    while Instant::now() < t {
        tokio::task::yield_now().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intended_times_are_evenly_spaced_from_the_start() {
        let start = Instant::now();
        let s = Schedule::new(start, 1000.0, Duration::from_secs(3));
        assert_eq!(s.total(), 3000);
        assert_eq!(s.intended(0), start);
        assert_eq!(s.intended(1), start + Duration::from_millis(1));
        assert_eq!(s.intended(1000), start + Duration::from_secs(1));
        assert_eq!(s.end(), start + Duration::from_secs(3));
        let odd = Schedule::new(start, 3.0, Duration::from_secs(1));
        assert_eq!(odd.intended(1), start + Duration::from_nanos(333_333_333));
        assert_eq!(odd.intended(2), start + Duration::from_nanos(666_666_667));
    }

    #[test]
    fn fractional_totals_round() {
        let s = Schedule::new(Instant::now(), 2.5, Duration::from_millis(1500));
        assert_eq!(s.total(), 4);
    }

    #[test]
    fn slots_are_handed_out_once_up_to_the_limit() {
        let slots = std::sync::Arc::new(Slots::new(1000));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let s = slots.clone();
                std::thread::spawn(move || std::iter::from_fn(|| s.take()).collect::<Vec<_>>())
            })
            .collect();
        let mut all: Vec<u64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        all.sort_unstable();
        assert_eq!(all, (0..1000).collect::<Vec<_>>());
        assert_eq!(slots.take(), None);
    }

    #[test]
    fn waiting_reaches_the_intended_time() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let t = Instant::now() + Duration::from_millis(5);
        rt.block_on(wait_until(t));
        assert!(Instant::now() >= t);
    }
}
