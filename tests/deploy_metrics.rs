//! The monitoring shipped in deploy/monitoring/ against a real gateway and
//! the real broker: every metric name that an alert rule or a Grafana panel
//! queries is one the gateway exports, and librdkafka's statistics appear as
//! the `trackgate_kafka_*` metrics with plausible values.
//!
//! Names only: the check reads each `trackgate_*` identifier of every rule
//! expression and panel query and looks it up in `/metrics` after a few
//! events (accepted, rejected), a rate-limited request and a few librdkafka
//! statistics intervals, so series that appear only after their first event
//! are there too.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

const ALERTS: &str = "deploy/monitoring/alerts.yaml";
const DASHBOARD: &str = "deploy/monitoring/grafana-dashboard.json";
/// Statistics interval of the test gateway (production default: 10 s).
const STATS_INTERVAL_MS: u32 = 200;
/// Per-IP rate of the test gateway: a burst past it gets 429.
const PER_IP_BURST: u32 = 20;
const WAIT: Duration = Duration::from_secs(20);

fn repo_file(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// Every `trackgate_*` identifier in a PromQL expression.
fn metric_names(expr: &str, into: &mut BTreeSet<String>) {
    let bytes = expr.as_bytes();
    let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_' || b == b':';
    let mut i = 0;
    while let Some(at) = expr[i..].find("trackgate_") {
        let start = i + at;
        let preceded = start > 0 && is_ident(bytes[start - 1]);
        let mut end = start;
        while end < bytes.len() && is_ident(bytes[end]) {
            end += 1;
        }
        if !preceded {
            into.insert(expr[start..end].to_string());
        }
        i = end;
    }
}

/// The `expr:` values of a Prometheus rule file (one line, or a block
/// scalar: the lines indented deeper than the key).
fn rule_expressions(yaml: &str) -> Vec<String> {
    let lines: Vec<&str> = yaml.lines().collect();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let Some(rest) = line.trim_start().strip_prefix("expr:") else {
            continue;
        };
        let mut expr = String::new();
        let rest = rest.trim();
        if !rest.starts_with('|') && !rest.starts_with('>') {
            expr.push_str(rest);
        }
        for next in &lines[i + 1..] {
            if next.trim().is_empty() || indent(next) > indent(line) {
                expr.push_str(next.trim());
                expr.push(' ');
            } else {
                break;
            }
        }
        out.push(expr);
    }
    out
}

/// The `expr` of every target of every panel (rows' nested panels included).
fn dashboard_expressions(dashboard: &Value) -> Vec<(String, String)> {
    fn walk(panels: &Value, out: &mut Vec<(String, String)>) {
        for p in panels.as_array().into_iter().flatten() {
            let title = p["title"].as_str().unwrap_or("?").to_string();
            let targets = p["targets"].as_array();
            if p["type"] != "row" {
                assert!(
                    targets.is_some_and(|t| !t.is_empty()),
                    "panel `{title}` queries nothing"
                );
            }
            for t in targets.into_iter().flatten() {
                let expr = t["expr"].as_str().unwrap_or_default().to_string();
                assert!(
                    !expr.is_empty(),
                    "panel `{title}` has a target without expr"
                );
                out.push((title.clone(), expr));
            }
            walk(&p["panels"], out);
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

/// Metric names in a Prometheus text exposition (histograms' `_bucket`,
/// `_sum` and `_count` series as written).
fn exposed_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

fn start_gateway(broker: &Broker) -> Gateway {
    Gateway::start_with(
        &broker.addr(),
        &format!(
            "statistics_interval_ms = {STATS_INTERVAL_MS}\n\n\
             [rate_limit]\nper_ip_rps = 1\nper_ip_burst = {PER_IP_BURST}\n"
        ),
    )
}

/// Waits until `/metrics` satisfies `cond`; returns the last text.
fn wait_metrics(gw: &Gateway, what: &str, cond: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = gw.metrics();
        if cond(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; /metrics:\n{text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let present = text.lines().any(|l| {
        l.starts_with(name)
            && matches!(l.as_bytes().get(name.len()), Some(b'{') | Some(b' '))
            && labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
    });
    present.then(|| metric_sum(text, name, labels))
}

#[test]
fn every_metric_the_alerts_and_the_dashboard_query_is_exported() {
    let broker = Broker::start();
    let gw = start_gateway(&broker);

    // One accepted and one rejected event, then a burst past the per-IP
    // limit (the earlier requests used part of it).
    let r = gw.post(
        "/v1/batch",
        r#"{"batch":[{"type":"page","anonymousId":"v-1","name":"Home"},{"type":"page","anonymousId":"v-1","properties":"nope"}]}"#,
    );
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let limited = (0..=PER_IP_BURST)
        .map(|_| {
            gw.post(
                "/v1/track",
                r#"{"anonymousId":"v-2","event":"Load","properties":{}}"#,
            )
            .status
        })
        .filter(|s| *s == 429)
        .count();
    assert!(limited > 0, "the burst was never rate limited");
    let text = wait_metrics(&gw, "librdkafka statistics of a batch", |t| {
        sample(t, "trackgate_kafka_topic_batch_messages", &[]).is_some()
            && sample(t, "trackgate_kafka_broker_up", &[]).is_some()
    });
    let exported = exposed_names(&text);

    let mut queried: Vec<(String, String)> = Vec::new();
    for expr in rule_expressions(&repo_file(ALERTS)) {
        let mut names = BTreeSet::new();
        metric_names(&expr, &mut names);
        assert!(
            !names.is_empty(),
            "rule expression without a metric: {expr}"
        );
        queried.extend(names.into_iter().map(|n| (format!("{ALERTS}: {expr}"), n)));
    }
    let dashboard: Value = serde_json::from_str(&repo_file(DASHBOARD)).expect("dashboard JSON");
    for (title, expr) in dashboard_expressions(&dashboard) {
        let mut names = BTreeSet::new();
        metric_names(&expr, &mut names);
        assert!(
            !names.is_empty(),
            "panel `{title}` queries no metric: {expr}"
        );
        queried.extend(
            names
                .into_iter()
                .map(|n| (format!("{DASHBOARD} `{title}`"), n)),
        );
    }
    assert!(queried.len() > 20, "too few queries found: {queried:?}");

    let missing: Vec<String> = queried
        .iter()
        .filter(|(_, name)| !exported.contains(name))
        .map(|(at, name)| format!("{name} ({at})"))
        .collect();
    assert!(
        missing.is_empty(),
        "queried but not exported:\n{}\nexported: {exported:?}",
        missing.join("\n")
    );
}

#[test]
fn librdkafka_statistics_become_metrics() {
    let broker = Broker::start();
    let gw = start_gateway(&broker);
    for i in 0..5 {
        let r = gw.post(
            "/v1/track",
            &format!(r#"{{"anonymousId":"v-{i}","event":"Load","properties":{{"i":{i}}}}}"#),
        );
        assert_eq!(r.status, 200);
    }
    let events_topic = [("topic", EVENTS)];
    let text = wait_metrics(&gw, "batch and round-trip statistics", |t| {
        sample(t, "trackgate_kafka_topic_batch_messages", &events_topic).is_some()
            && sample(t, "trackgate_kafka_broker_rtt_avg_seconds", &[]).unwrap_or(0.0) > 0.0
    });

    // The broker is the one the gateway was given, learned from metadata.
    let up_lines: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("trackgate_kafka_broker_up{"))
        .collect();
    assert!(!up_lines.is_empty());
    assert!(
        up_lines
            .iter()
            .all(|l| l.contains(&format!("broker=\"127.0.0.1:{}/", broker.port))),
        "{up_lines:?}"
    );
    assert_eq!(sample(&text, "trackgate_kafka_broker_up", &[]), Some(1.0));
    let rtt = sample(&text, "trackgate_kafka_broker_rtt_avg_seconds", &[]).unwrap_or(0.0);
    assert!(rtt > 0.0 && rtt < 5.0, "rtt {rtt}");
    for name in [
        "trackgate_kafka_broker_rtt_p99_seconds",
        "trackgate_kafka_broker_outbuf_requests",
        "trackgate_kafka_broker_waitresp_requests",
        "trackgate_kafka_broker_retries_total",
        "trackgate_kafka_broker_request_timeouts_total",
    ] {
        assert!(sample(&text, name, &[]).is_some(), "{name} missing");
    }
    let batch = sample(&text, "trackgate_kafka_topic_batch_messages", &events_topic);
    assert!(batch.is_some_and(|m| m >= 1.0), "batch messages {batch:?}");
    let bytes = sample(&text, "trackgate_kafka_topic_batch_bytes", &events_topic);
    assert!(bytes.is_some_and(|b| b > 0.0), "batch bytes {bytes:?}");
    let ratio = sample(
        &text,
        "trackgate_kafka_topic_compression_ratio",
        &events_topic,
    );
    assert!(
        ratio.is_some_and(|r| r > 0.0),
        "compression ratio {ratio:?}"
    );
}

#[test]
fn name_extraction_finds_every_metric_of_an_expression() {
    let mut names = BTreeSet::new();
    metric_names(
        r#"sum by (le) (rate(trackgate_http_request_duration_seconds_bucket{instance=~"$instance"}[5m])) / trackgate_ready"#,
        &mut names,
    );
    assert_eq!(
        names.into_iter().collect::<Vec<_>>(),
        [
            "trackgate_http_request_duration_seconds_bucket",
            "trackgate_ready"
        ]
    );
    let exprs = rule_expressions(
        "      - alert: A\n        expr: |\n          trackgate_a\n            / trackgate_b\n        for: 5m\n      - alert: B\n        expr: trackgate_c > 0\n",
    );
    assert_eq!(exprs.len(), 2);
    assert!(exprs[0].contains("trackgate_a") && exprs[0].contains("trackgate_b"));
    assert!(!exprs[0].contains("5m"));
    assert_eq!(exprs[1], "trackgate_c > 0");
}
