//! A criterion measurement of the calling thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time.
//!
//! The benchmark machine is shared: while other work runs, wall time counts
//! the time a benchmark waits for a core, CPU time does not. What it still
//! includes (cache misses after a context switch) is small next to that. It
//! counts only the benchmarking thread: work a call hands to other threads
//! (the producer's I/O thread) is not in the figure.

use std::time::Duration;

use criterion::measurement::{Measurement, ValueFormatter};
use criterion::{Criterion, Throughput};

pub struct ThreadCpuTime;

/// The benches' criterion settings: thread CPU time, 1 s of warm-up, 3 s
/// of measurement.
pub fn criterion() -> Criterion<ThreadCpuTime> {
    Criterion::default()
        .with_measurement(ThreadCpuTime)
        .measurement_time(Duration::from_secs(3))
        .warm_up_time(Duration::from_secs(1))
}

fn now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime only writes into the struct we hand it.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

impl Measurement for ThreadCpuTime {
    type Intermediate = Duration;
    type Value = Duration;

    fn start(&self) -> Duration {
        now()
    }
    fn end(&self, start: Duration) -> Duration {
        now().saturating_sub(start)
    }
    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }
    fn zero(&self) -> Duration {
        Duration::ZERO
    }
    fn to_f64(&self, v: &Duration) -> f64 {
        v.as_nanos() as f64
    }
    fn formatter(&self) -> &dyn ValueFormatter {
        &CpuFormatter
    }
}

struct CpuFormatter;

impl ValueFormatter for CpuFormatter {
    fn scale_values(&self, ns: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if ns < 1e3 {
            (1.0, "ns")
        } else if ns < 1e6 {
            (1e-3, "µs")
        } else if ns < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        values.iter_mut().for_each(|v| *v *= factor);
        unit
    }

    fn scale_throughputs(
        &self,
        typical_ns: f64,
        t: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        let (per_iter, kind) = match *t {
            Throughput::Bytes(n) | Throughput::BytesDecimal(n) => (n as f64, "B"),
            Throughput::Elements(n) => (n as f64, "elem"),
            Throughput::Bits(n) => (n as f64, "b"),
        };
        let typical = per_iter * 1e9 / typical_ns;
        let (div, unit) = match (kind, typical) {
            ("elem", x) if x >= 1e6 => (1e6, "Melem/CPU-s"),
            ("elem", x) if x >= 1e3 => (1e3, "Kelem/CPU-s"),
            ("elem", _) => (1.0, "elem/CPU-s"),
            (_, x) if x >= 1e6 => (1e6, "MB/CPU-s"),
            (_, x) if x >= 1e3 => (1e3, "KB/CPU-s"),
            _ => (1.0, "B/CPU-s"),
        };
        values
            .iter_mut()
            .for_each(|v| *v = per_iter * 1e9 / *v / div);
        unit
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
