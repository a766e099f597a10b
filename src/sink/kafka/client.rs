//! The base configuration every Kafka client of the gateway starts from,
//! and the client-side timeouts.

use std::time::Duration;

use rdkafka::config::ClientConfig;

use crate::config::KafkaConfig;

/// The base configuration of every Kafka client the gateway creates:
/// brokers, client id, then `kafka.properties` (TLS, SASL…). Callers add
/// their own keys after it.
pub fn client_config(config: &KafkaConfig, brokers: &str) -> ClientConfig {
    let mut cc = ClientConfig::new();
    cc.set("bootstrap.servers", brokers)
        .set("client.id", crate::sink::PRODUCER_VERSION);
    for (k, v) in &config.properties {
        cc.set(k, v);
    }
    cc
}

/// Longest wait for one metadata or admin request.
pub(super) const METADATA_TIMEOUT: Duration = Duration::from_secs(5);

/// Upper bound of librdkafka's reconnect backoff (its default is 10 s): a
/// restarted broker is found within about a second.
pub(super) const RECONNECT_BACKOFF_MAX_MS: u32 = 1_000;
