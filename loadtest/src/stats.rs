//! What a run measured: latency in an HDR histogram (microseconds, three
//! significant digits), status codes, event counts from the gateway's
//! answers, transport failures; and the report built from them, printed for
//! people or written as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::client::Counts;
use crate::verify::VerifyReport;

/// Largest latency the histogram records exactly (larger values saturate).
const MAX_LATENCY_US: u64 = 120_000_000;
/// Significant decimal digits kept by the histogram.
const SIGNIFICANT_DIGITS: u8 = 3;

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
        .expect("static histogram bounds are valid")
}

/// One worker's measurements; merged at the end of the run.
#[derive(Debug, Clone)]
pub struct Recorder {
    latency: Histogram<u64>,
    /// How late requests left compared to their intended time.
    lag: Histogram<u64>,
    /// From the actual send to the complete answer (open loop: latency
    /// without the generator's lateness; for diagnosis only).
    service: Histogram<u64>,
    statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    pub timeouts: u64,
    /// Requests answered (any status).
    pub answered: u64,
    /// Events in requests answered with a 2xx status.
    pub events_2xx: u64,
    /// Events in every request sent.
    pub events_sent: u64,
    pub bytes_sent: u64,
    /// Sums of the counts the gateway reported.
    pub counts: Counts,
    /// 2xx answers that carried counts.
    pub counted_answers: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder {
            latency: histogram(),
            lag: histogram(),
            service: histogram(),
            statuses: BTreeMap::new(),
            transport_errors: 0,
            timeouts: 0,
            answered: 0,
            events_2xx: 0,
            events_sent: 0,
            bytes_sent: 0,
            counts: Counts::default(),
            counted_answers: 0,
        }
    }
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    pub fn sent(&mut self, events: usize, bytes: usize, lag: Duration) {
        self.events_sent += events as u64;
        self.bytes_sent += bytes as u64;
        self.lag.saturating_record(micros(lag));
    }

    /// Time from the actual send to the answer.
    pub fn served(&mut self, d: Duration) {
        self.service.saturating_record(micros(d));
    }

    pub fn answered(
        &mut self,
        status: u16,
        latency: Duration,
        events: usize,
        counts: Option<Counts>,
    ) {
        self.answered += 1;
        self.latency.saturating_record(micros(latency));
        *self.statuses.entry(status).or_insert(0) += 1;
        if (200..300).contains(&status) {
            self.events_2xx += events as u64;
            if let Some(c) = counts {
                self.counts.accepted += c.accepted;
                self.counts.rejected += c.rejected;
                self.counts.dropped += c.dropped;
                self.counted_answers += 1;
            }
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.latency.add(&other.latency);
        let _ = self.lag.add(&other.lag);
        let _ = self.service.add(&other.service);
        for (s, n) in &other.statuses {
            *self.statuses.entry(*s).or_insert(0) += n;
        }
        self.transport_errors += other.transport_errors;
        self.timeouts += other.timeouts;
        self.answered += other.answered;
        self.events_2xx += other.events_2xx;
        self.events_sent += other.events_sent;
        self.bytes_sent += other.bytes_sent;
        self.counts.accepted += other.counts.accepted;
        self.counts.rejected += other.counts.rejected;
        self.counts.dropped += other.counts.dropped;
        self.counted_answers += other.counted_answers;
    }

    /// Requests answered with a 2xx status.
    pub fn answered_2xx(&self) -> u64 {
        self.statuses.range(200..300).map(|(_, n)| n).sum()
    }

    pub fn statuses(&self) -> &BTreeMap<u16, u64> {
        &self.statuses
    }
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

impl Percentiles {
    fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
        }
    }
}

/// The resolution of a process's CPU counters in `/proc/PID/stat`.
const CLOCK_TICK_SECONDS: f64 = 0.01;

/// CPU and memory of the server process under test (`--server-pid`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ServerUsage {
    pub pid: u32,
    /// User + system CPU seconds spent during the measured window.
    pub cpu_seconds: f64,
    /// Events answered with 2xx per server CPU-second (NaN, `null` in
    /// JSON, when the server used less than one clock tick of CPU).
    pub events_per_cpu_second: f64,
    /// Requests answered per server CPU-second (NaN likewise).
    pub requests_per_cpu_second: f64,
    /// Peak resident set size so far (VmHWM), in KiB.
    pub peak_rss_kib: u64,
    /// Resident set size at the end (VmRSS), in KiB.
    pub rss_kib: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub mode: String,
    pub target: String,
    pub connections: usize,
    /// Requested open-loop rate (requests/s); absent in max mode.
    pub target_rate: Option<f64>,
    pub elapsed_seconds: f64,
    /// Requests the open-loop schedule called for.
    pub requests_planned: Option<u64>,
    pub requests_sent: u64,
    pub requests_answered: u64,
    pub requests_per_second: f64,
    /// Requests answered with a 2xx status, and per second.
    pub requests_2xx: u64,
    pub requests_2xx_per_second: f64,
    pub events_sent: u64,
    /// Events in 2xx answers.
    pub events_2xx: u64,
    /// Events in 2xx answers per second.
    pub events_per_second: f64,
    pub accepted: u64,
    pub rejected: u64,
    pub dropped: u64,
    pub accepted_per_second: f64,
    pub statuses: BTreeMap<String, u64>,
    pub transport_errors: u64,
    pub timeouts: u64,
    pub megabytes_sent: f64,
    /// Latency from the intended send time to the complete answer.
    pub latency_us: Percentiles,
    /// How late requests left compared to their intended time (open loop).
    pub send_lag_us: Percentiles,
    /// From the actual send to the answer: the server's share of the
    /// latency, with the generator's lateness left out (diagnosis only: this
    /// one does suffer from coordinated omission).
    pub service_us: Percentiles,
    /// CPU seconds of the load generator process during the run.
    pub generator_cpu_seconds: f64,
    pub server: Option<ServerUsage>,
    pub verify: Option<VerifyReport>,
}

/// What describes a run besides its measurements.
#[derive(Debug, Clone)]
pub struct RunInfo {
    pub mode: String,
    pub target: String,
    pub connections: usize,
    pub target_rate: Option<f64>,
    pub elapsed: Duration,
    pub requests_sent: u64,
    /// Requests the open-loop schedule called for.
    pub requests_planned: Option<u64>,
    pub generator_cpu_seconds: f64,
}

impl Report {
    pub fn build(info: RunInfo, rec: &Recorder) -> Report {
        let secs = info.elapsed.as_secs_f64().max(f64::EPSILON);
        Report {
            mode: info.mode,
            target: info.target,
            connections: info.connections,
            target_rate: info.target_rate,
            elapsed_seconds: info.elapsed.as_secs_f64(),
            requests_planned: info.requests_planned,
            requests_sent: info.requests_sent,
            requests_answered: rec.answered,
            requests_per_second: rec.answered as f64 / secs,
            requests_2xx: rec.answered_2xx(),
            requests_2xx_per_second: rec.answered_2xx() as f64 / secs,
            events_sent: rec.events_sent,
            events_2xx: rec.events_2xx,
            events_per_second: rec.events_2xx as f64 / secs,
            accepted: u64::from(rec.counts.accepted),
            rejected: u64::from(rec.counts.rejected),
            dropped: u64::from(rec.counts.dropped),
            accepted_per_second: f64::from(rec.counts.accepted) / secs,
            statuses: rec
                .statuses
                .iter()
                .map(|(s, n)| (s.to_string(), *n))
                .collect(),
            transport_errors: rec.transport_errors,
            timeouts: rec.timeouts,
            megabytes_sent: rec.bytes_sent as f64 / 1e6,
            latency_us: Percentiles::of(&rec.latency),
            send_lag_us: Percentiles::of(&rec.lag),
            service_us: Percentiles::of(&rec.service),
            generator_cpu_seconds: info.generator_cpu_seconds,
            server: None,
            verify: None,
        }
    }

    /// Attaches the server's CPU and memory figures.
    pub fn with_server(
        mut self,
        pid: u32,
        cpu_seconds: f64,
        peak_rss_kib: u64,
        rss_kib: u64,
    ) -> Report {
        // Below one clock tick of CPU the process's counters say nothing
        // (they move by ticks): no rate rather than a huge one.
        let per_cpu = |n: u64| {
            if cpu_seconds >= CLOCK_TICK_SECONDS {
                n as f64 / cpu_seconds
            } else {
                f64::NAN
            }
        };
        self.server = Some(ServerUsage {
            pid,
            cpu_seconds,
            events_per_cpu_second: per_cpu(self.events_2xx),
            requests_per_cpu_second: per_cpu(self.requests_answered),
            peak_rss_kib,
            rss_kib,
        });
        self
    }

    /// True when the run is clean: every request answered 2xx, no
    /// transport failure, and verification (when asked for) passed.
    pub fn clean(&self) -> bool {
        let non_2xx = self.statuses.iter().any(|(s, _)| !s.starts_with('2'));
        !non_2xx
            && self.transport_errors == 0
            && self.timeouts == 0
            && self.verify.as_ref().map_or(true, |v| v.passed)
    }

    /// The report for people.
    pub fn human(&self) -> String {
        let mut s = String::new();
        let rate = self
            .target_rate
            .map(|r| format!(" at {r:.0} req/s intended"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "{} load on {} over {} connections{rate}, {:.2} s",
            self.mode, self.target, self.connections, self.elapsed_seconds
        );
        let planned = self
            .requests_planned
            .map(|p| format!(" of {p} planned"))
            .unwrap_or_default();
        let _ = writeln!(
            s,
            "  requests   {} sent{planned}, {} answered: {:.0} req/s, {:.0} 2xx/s ({:.1} MB sent)",
            self.requests_sent,
            self.requests_answered,
            self.requests_per_second,
            self.requests_2xx_per_second,
            self.megabytes_sent
        );
        let _ = writeln!(
            s,
            "  events     {} sent, {} in 2xx answers: {:.0} events/s",
            self.events_sent, self.events_2xx, self.events_per_second
        );
        if self.accepted + self.rejected + self.dropped > 0 {
            let _ = writeln!(
                s,
                "  outcome    accepted {} ({:.0}/s), rejected {}, dropped {}",
                self.accepted, self.accepted_per_second, self.rejected, self.dropped
            );
        }
        let statuses: Vec<String> = self
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        let _ = writeln!(
            s,
            "  status     {}; transport errors {}, timeouts {}",
            if statuses.is_empty() {
                "none".to_string()
            } else {
                statuses.join(", ")
            },
            self.transport_errors,
            self.timeouts
        );
        let l = &self.latency_us;
        let _ = writeln!(
            s,
            "  latency    p50 {} p90 {} p99 {} p99.9 {} max {} (mean {})",
            fmt_us(l.p50),
            fmt_us(l.p90),
            fmt_us(l.p99),
            fmt_us(l.p999),
            fmt_us(l.max),
            fmt_us(l.mean.round() as u64)
        );
        if self.target_rate.is_some() {
            let g = &self.send_lag_us;
            let _ = writeln!(
                s,
                "  send lag   p50 {} p99 {} max {} (generator lateness, included in latency)",
                fmt_us(g.p50),
                fmt_us(g.p99),
                fmt_us(g.max)
            );
            let v = &self.service_us;
            let _ = writeln!(
                s,
                "  service    p50 {} p99 {} max {} (from the actual send: the server's share)",
                fmt_us(v.p50),
                fmt_us(v.p99),
                fmt_us(v.max)
            );
        }
        let _ = writeln!(
            s,
            "  generator  {:.2} CPU-s ({:.0}% of one core)",
            self.generator_cpu_seconds,
            100.0 * self.generator_cpu_seconds / self.elapsed_seconds.max(f64::EPSILON)
        );
        if let Some(sv) = &self.server {
            let _ = writeln!(
                s,
                "  server     pid {}: {:.2} CPU-s ({:.0}% of one core), {} events/CPU-s, {} req/CPU-s, peak RSS {:.1} MiB (now {:.1} MiB)",
                sv.pid,
                sv.cpu_seconds,
                100.0 * sv.cpu_seconds / self.elapsed_seconds.max(f64::EPSILON),
                fmt_rate(sv.events_per_cpu_second),
                fmt_rate(sv.requests_per_cpu_second),
                sv.peak_rss_kib as f64 / 1024.0,
                sv.rss_kib as f64 / 1024.0
            );
        }
        if let Some(v) = &self.verify {
            s.push_str(&v.human());
        }
        s
    }
}

/// A per-CPU-second rate, or `n/a` when there is none.
fn fmt_rate(rate: f64) -> String {
    if rate.is_nan() {
        "n/a".to_string()
    } else {
        format!("{rate:.0}")
    }
}

/// `850µs`, `1.25ms`, `2.0s`.
pub fn fmt_us(us: u64) -> String {
    if us < 1000 {
        format!("{us}µs")
    } else if us < 1_000_000 {
        format!("{:.2}ms", us as f64 / 1000.0)
    } else {
        format!("{:.2}s", us as f64 / 1e6)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(elapsed: Duration) -> RunInfo {
        RunInfo {
            mode: "open-loop".into(),
            target: "http://127.0.0.1:1".into(),
            connections: 2,
            target_rate: Some(100.0),
            elapsed,
            requests_sent: 4,
            requests_planned: Some(4),
            generator_cpu_seconds: 0.5,
        }
    }

    #[test]
    fn percentiles_come_from_the_histogram() {
        let mut r = Recorder::default();
        for ms in 1..=1000u64 {
            r.answered(200, Duration::from_micros(ms * 10), 1, None);
        }
        let p = Percentiles::of(&r.latency);
        assert_eq!(p.count, 1000);
        // Three significant digits: values are exact to within 0.1 %.
        let near = |got: u64, want: u64| got.abs_diff(want) * 1000 <= want;
        assert!(near(p.p50, 5000), "{}", p.p50);
        assert!(near(p.p90, 9000), "{}", p.p90);
        assert!(near(p.p99, 9900), "{}", p.p99);
        assert!(near(p.p999, 9990), "{}", p.p999);
        assert!(near(p.max, 10_000), "{}", p.max);
    }

    #[test]
    fn merged_recorders_add_up_into_the_report() {
        let mut a = Recorder::default();
        a.sent(50, 1000, Duration::from_micros(3));
        a.answered(
            200,
            Duration::from_millis(1),
            50,
            Some(Counts {
                accepted: 48,
                rejected: 1,
                dropped: 1,
            }),
        );
        let mut b = Recorder::default();
        b.sent(1, 100, Duration::ZERO);
        b.answered(503, Duration::from_millis(3), 1, None);
        b.sent(1, 100, Duration::ZERO);
        b.transport_errors += 1;
        b.served(Duration::from_micros(700));
        let mut c = Recorder::default();
        c.served(Duration::from_micros(300));
        c.sent(1, 100, Duration::ZERO);
        c.answered(204, Duration::from_millis(2), 1, None);
        a.merge(&b);
        a.merge(&c);
        let r = Report::build(info(Duration::from_secs(2)), &a);
        assert_eq!(r.requests_answered, 3);
        assert_eq!(r.events_sent, 53);
        assert_eq!(r.events_2xx, 51);
        assert_eq!((r.accepted, r.rejected, r.dropped), (48, 1, 1));
        assert_eq!(r.requests_per_second, 1.5);
        assert_eq!((r.requests_2xx, r.requests_2xx_per_second), (2, 1.0));
        assert_eq!(r.events_per_second, 25.5);
        assert_eq!(r.statuses.get("503"), Some(&1));
        assert_eq!(r.statuses.get("204"), Some(&1));
        assert_eq!(r.transport_errors, 1);
        assert_eq!(r.service_us.count, 2);
        assert!(r.service_us.max >= 700 && r.service_us.p50 < 700);
        assert!((r.megabytes_sent - 0.0013).abs() < 1e-9);
        assert!(!r.clean());
        let text = r.human();
        assert!(text.contains("503: 1"), "{text}");
        assert!(text.contains("1.5") || text.contains("2 req/s"), "{text}");
    }

    #[test]
    fn server_usage_divides_by_cpu_time() {
        let mut a = Recorder::default();
        for _ in 0..10 {
            a.sent(50, 1, Duration::ZERO);
            a.answered(200, Duration::from_micros(100), 50, None);
        }
        let r = Report::build(info(Duration::from_secs(1)), &a).with_server(7, 0.25, 2048, 1024);
        let s = r.server.unwrap();
        assert_eq!(s.events_per_cpu_second, 2000.0);
        assert_eq!(s.requests_per_cpu_second, 40.0);
        assert!(r.clean());
        assert!(r.human().contains("peak RSS 2.0 MiB"));
    }

    #[test]
    fn server_usage_under_one_clock_tick_has_no_rate() {
        let mut a = Recorder::default();
        a.sent(50, 1, Duration::ZERO);
        a.answered(200, Duration::from_micros(100), 50, None);
        let r = Report::build(info(Duration::from_secs(1)), &a).with_server(7, 0.0, 2048, 1024);
        let s = r.server.unwrap();
        assert!(s.events_per_cpu_second.is_nan());
        assert!(s.requests_per_cpu_second.is_nan());
        assert!(r.human().contains("n/a events/CPU-s"), "{}", r.human());
    }

    #[test]
    fn durations_format_readably() {
        assert_eq!(fmt_us(850), "850µs");
        assert_eq!(fmt_us(1250), "1.25ms");
        assert_eq!(fmt_us(2_000_000), "2.00s");
    }
}
