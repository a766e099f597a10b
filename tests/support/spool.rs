//! What the spool tests share: a gateway configuration whose producer gives
//! up quickly (so an outage outlasts its message timeout), waiting for the
//! spool to empty, and batches of padded events with known messageIds.

use std::time::Duration;

use super::load::{BATCH, PAD};
use super::{gateway_toml, metric_sum, wait_until, Gateway};

/// `[kafka]` keys: a short message timeout, so an outage outlasts it.
pub const KAFKA: &str =
    "metadata_interval_ms = 300\nmessage_timeout_ms = 2000\nflush_timeout_ms = 3000\n";

/// Longest wait for the spool to empty after the broker returns.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(90);

/// A gateway configuration with [`KAFKA`] and the `[spool]` lines `spool`.
pub fn spool_toml(listen: u16, admin: u16, brokers: &str, spool: &str) -> String {
    gateway_toml(
        listen,
        admin,
        brokers,
        &format!("{KAFKA}\n[spool]\n{spool}\n"),
    )
}

/// Waits until nothing is left on the spool or in flight.
pub fn wait_spool_empty(gw: &Gateway) {
    wait_until("the spool to empty", DRAIN_TIMEOUT, || {
        let text = gw.metrics();
        metric_sum(&text, "trackgate_spool_records", &[]) == 0.0
            && metric_sum(&text, "trackgate_events_in_flight", &[]) == 0.0
    });
}

/// One batch of [`BATCH`] padded events with messageIds `{prefix}-{j}`, and
/// those ids.
pub fn batch_of(prefix: &str) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..BATCH).map(|j| format!("{prefix}-{j}")).collect();
    let events: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(r#"{{"type":"track","event":"e","anonymousId":"v-{id}","messageId":"{id}","properties":{{"pad":"{PAD}"}}}}"#)
        })
        .collect();
    (format!(r#"{{"batch":[{}]}}"#, events.join(",")), ids)
}
