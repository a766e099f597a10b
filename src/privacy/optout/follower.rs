//! The follower thread: reads the whole topic at start (then marks the
//! list loaded) and keeps applying its records until stopped.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{OptOutError, OptOutList};
use crate::config::KafkaConfig;
use crate::consumer::{serve_stale_events, LossContext};
use crate::metrics;
use crate::shutdown::Stop;

/// Longest wait for one metadata, watermark or admin request.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before retrying after the broker could not be reached.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long one consumer poll blocks (bounds the reaction to shutdown while
/// the topic is being followed; a pause between retries ends at once).
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// Consumer group id: required by the client, never joined (partitions are
/// assigned) and never committed to.
const FOLLOWER_GROUP: &str = "trackgate-optout-follower";

type FollowerConsumer = BaseConsumer<LossContext>;

/// What the follower thread needs.
pub struct FollowerConfig {
    pub brokers: String,
    pub topic: String,
    pub kafka: KafkaConfig,
}

/// Starts the thread that loads the list and then follows the topic until
/// `stop` turns true.
pub fn spawn_follower(
    list: Arc<OptOutList>,
    cfg: FollowerConfig,
    stop: watch::Receiver<bool>,
) -> Result<std::thread::JoinHandle<()>, OptOutError> {
    let stop = Stop::from_watch(stop);
    std::thread::Builder::new()
        .name("optout-follower".into())
        .spawn(move || follow(&list, &cfg, &stop))
        .map_err(OptOutError::Thread)
}

fn follow(list: &OptOutList, cfg: &FollowerConfig, stop: &Stop) {
    let mut cc = crate::sink::kafka::client_config(&cfg.kafka, &cfg.brokers);
    cc.set("group.id", FOLLOWER_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: FollowerConsumer = match cc
        .create_with_context(LossContext::new("opt-out follower"))
    {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the opt-out consumer; the list will not load");
            return;
        }
    };
    let mut warned = false;
    while !stop.is_cancelled() {
        match prepare(&consumer, cfg) {
            Ok(ends) => {
                warned = false;
                consume(list, &consumer, ends, stop);
            }
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, topic = %cfg.topic, "opt-out topic not readable yet; retrying");
                    warned = true;
                }
            }
        }
        stop.wait_timeout(RETRY_PAUSE);
    }
}

/// Makes sure the topic exists, assigns every partition from the beginning
/// and returns each partition's end offset at this moment.
fn prepare(
    consumer: &FollowerConsumer,
    cfg: &FollowerConfig,
) -> Result<HashMap<i32, i64>, KafkaError> {
    let partitions = match partitions(consumer, &cfg.topic)? {
        Some(p) => p,
        None if cfg.kafka.create_topics => {
            create_topic(cfg)?;
            partitions(consumer, &cfg.topic)?.ok_or(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ))?
        }
        None => {
            return Err(KafkaError::MetadataFetch(
                RDKafkaErrorCode::UnknownTopicOrPartition,
            ))
        }
    };
    let mut ends = HashMap::new();
    let mut tpl = TopicPartitionList::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(&cfg.topic, p, BROKER_TIMEOUT)?;
        if high > low {
            ends.insert(p, high);
        }
        tpl.add_partition_offset(&cfg.topic, p, Offset::Beginning)?;
    }
    serve_stale_events(consumer);
    consumer.assign(&tpl)?;
    Ok(ends)
}

fn partitions(consumer: &FollowerConsumer, topic: &str) -> Result<Option<Vec<i32>>, KafkaError> {
    let md = consumer.fetch_metadata(Some(topic), BROKER_TIMEOUT)?;
    Ok(md
        .topics()
        .iter()
        .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
        .map(|t| t.partitions().iter().map(|p| p.id()).collect()))
}

fn create_topic(cfg: &FollowerConfig) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> =
        crate::sink::kafka::client_config(&cfg.kafka, &cfg.brokers).create()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| KafkaError::AdminOpCreation(e.to_string()))?;
    let opts = AdminOptions::new()
        .operation_timeout(Some(BROKER_TIMEOUT))
        .request_timeout(Some(BROKER_TIMEOUT));
    let replication = || TopicReplication::Fixed(cfg.kafka.replication_factor);
    let compacted = NewTopic::new(&cfg.topic, cfg.kafka.partitions, replication())
        .set("cleanup.policy", "compact");
    let results = rt.block_on(admin.create_topics([&compacted], &opts))?;
    for r in results {
        match r {
            Ok(name) => {
                metrics::topic_created();
                tracing::info!(topic = %name, "created the compacted opt-out topic");
            }
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                // A broker without compaction may refuse the setting: the
                // list is last-write-wins either way, so create it plain.
                tracing::warn!(topic = %name, error = %code, "compacted topic refused; creating it without cleanup.policy=compact");
                let plain = NewTopic::new(&cfg.topic, cfg.kafka.partitions, replication());
                let created = rt.block_on(admin.create_topics([&plain], &opts))?;
                for name in created.into_iter().flatten() {
                    metrics::topic_created();
                    tracing::info!(topic = %name, "created the opt-out topic");
                }
            }
        }
    }
    Ok(())
}

/// Polls until `stop`, applying records; marks the list loaded once every
/// partition in `ends` reached its end offset. Returns on errors that need
/// the topic prepared again.
fn consume(
    list: &OptOutList,
    consumer: &FollowerConsumer,
    mut ends: HashMap<i32, i64>,
    stop: &Stop,
) {
    let mut applied: u64 = 0;
    loop {
        if !list.is_loaded() && ends.is_empty() {
            list.mark_loaded();
            tracing::info!(
                entries = list.len(),
                records = applied,
                "opt-out list loaded"
            );
        }
        if stop.is_cancelled() {
            return;
        }
        if consumer.context().take_lost() {
            // A broker that comes back may have lost the topic (a restarted
            // in-memory broker does). The client must not fetch it before
            // it is seen in metadata again: the client library crashes on
            // some brokers' "unknown topic" answers to a fetch (librdkafka
            // 2.12 reads a null topic name from Fetch v12 leader hints).
            // Drop the assignment; `prepare` assigns it again from the
            // start once the topic is there, and re-reading a compacted
            // list is harmless.
            tracing::warn!(
                "opt-out follower lost the broker; following again once the topic is seen"
            );
            if let Err(e) = consumer.unassign() {
                tracing::warn!(error = %e, "could not drop the opt-out assignment");
            }
            return;
        }
        match consumer.poll(POLL_TIMEOUT) {
            None => {}
            Some(Ok(m)) => {
                if list.apply_record(m.key(), m.payload()) {
                    applied += 1;
                } else {
                    tracing::debug!(
                        offset = m.offset(),
                        "ignored a record that is not an opt-out"
                    );
                }
                if ends
                    .get(&m.partition())
                    .is_some_and(|end| m.offset() + 1 >= *end)
                {
                    ends.remove(&m.partition());
                }
            }
            Some(Err(KafkaError::PartitionEOF(p))) => {
                ends.remove(&p);
            }
            Some(Err(e)) => {
                let code = e.rdkafka_error_code();
                if matches!(
                    code,
                    Some(RDKafkaErrorCode::UnknownTopicOrPartition)
                        | Some(RDKafkaErrorCode::UnknownPartition)
                        | Some(RDKafkaErrorCode::UnknownTopic)
                ) {
                    tracing::warn!(error = %e, "opt-out topic lost; preparing it again");
                    return;
                }
                tracing::debug!(error = %e, "opt-out consumer error");
            }
        }
    }
}
