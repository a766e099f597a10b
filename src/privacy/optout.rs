//! The opt-out (suppression) list: the visitors who asked not to be
//! tracked, shared by every gateway instance and kept across restarts.
//!
//! Storage is a compacted Kafka topic (`privacy.optout_topic`, created by
//! the gateway with `cleanup.policy=compact`). Record key `anon:<id>` or
//! `user:<id>`; value `{"optedOut":true,"at":…}` for an opt-out, a
//! tombstone (no value) for an opt-in, so compaction eventually forgets the
//! id altogether. `{"optedOut":false}` is read as an opt-in too. Records of
//! one key share a partition and are applied in offset order, so the list
//! is last-write-wins per key whether or not the broker compacts.
//!
//! Each instance reads the whole topic at start (readiness reports
//! `optout_list_loading` until every partition reached the end it had when
//! reading began), then follows it on its own thread (partitions assigned
//! from the beginning, no consumer group, nothing committed). The list
//! lives in memory: two hash sets behind a read-write lock, skipped
//! entirely while empty; lookups hold the read lock for a few hash probes.
//!
//! An opt-out is written with a dedicated producer (`acks=all`) and put in
//! the local list at once, so the next request of that visitor is already
//! suppressed on this instance; other instances follow within their poll
//! interval. An opt-in is written first and removed locally once the broker
//! acknowledged it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use serde::Deserialize;
use tokio::sync::watch;

use crate::config::KafkaConfig;
use crate::metrics;

/// Record key prefix of an `anonymousId`.
pub const KEY_ANON: &str = "anon:";
/// Record key prefix of a `userId`.
pub const KEY_USER: &str = "user:";

/// Longest wait for one metadata, watermark or admin request.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause before retrying after the broker could not be reached.
const RETRY_PAUSE: Duration = Duration::from_secs(1);
/// How long one consumer poll blocks (bounds the reaction to shutdown).
const POLL_TIMEOUT: Duration = Duration::from_millis(200);
/// Consumer group id: required by the client, never joined (partitions are
/// assigned) and never committed to.
const FOLLOWER_GROUP: &str = "trackgate-optout-follower";

#[derive(Debug, thiserror::Error)]
pub enum OptOutError {
    #[error("cannot create the opt-out client: {0}")]
    Client(KafkaError),
    #[error("the opt-out record was not acknowledged: {0}")]
    Write(KafkaError),
    #[error("the opt-out record was not acknowledged in time")]
    Timeout,
    #[error("cannot start the opt-out follower thread: {0}")]
    Thread(std::io::Error),
}

/// Which identity an id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Anonymous,
    User,
}

impl IdKind {
    pub fn prefix(self) -> &'static str {
        match self {
            IdKind::Anonymous => KEY_ANON,
            IdKind::User => KEY_USER,
        }
    }
}

/// The record key of an id.
pub fn record_key(kind: IdKind, id: &str) -> String {
    let mut k = String::with_capacity(kind.prefix().len() + id.len());
    k.push_str(kind.prefix());
    k.push_str(id);
    k
}

/// Splits a record key into its kind and id.
pub fn parse_key(key: &[u8]) -> Option<(IdKind, &str)> {
    let key = std::str::from_utf8(key).ok()?;
    if let Some(id) = key.strip_prefix(KEY_ANON) {
        return Some((IdKind::Anonymous, id));
    }
    key.strip_prefix(KEY_USER).map(|id| (IdKind::User, id))
}

#[derive(Deserialize)]
struct RecordValue {
    #[serde(rename = "optedOut")]
    opted_out: bool,
}

#[derive(Debug, Default)]
struct Sets {
    anon: HashSet<Box<str>>,
    user: HashSet<Box<str>>,
}

impl Sets {
    fn of(&mut self, kind: IdKind) -> &mut HashSet<Box<str>> {
        match kind {
            IdKind::Anonymous => &mut self.anon,
            IdKind::User => &mut self.user,
        }
    }
}

/// The in-memory suppression list of this instance.
#[derive(Debug, Default)]
pub struct OptOutList {
    sets: RwLock<Sets>,
    /// Entries in both sets: lets lookups skip the lock while empty.
    entries: AtomicUsize,
    /// Set once the topic was read up to where it ended at start.
    loaded: Arc<AtomicBool>,
}

impl OptOutList {
    pub fn new() -> OptOutList {
        OptOutList::default()
    }

    /// A list that needs no loading (no broker to read from).
    pub fn new_loaded() -> OptOutList {
        let l = OptOutList::default();
        l.mark_loaded();
        l
    }

    /// The flag readiness watches.
    pub fn loaded_flag(&self) -> Arc<AtomicBool> {
        self.loaded.clone()
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when any of the event's ids is suppressed. `previous` is an
    /// alias's `previousId`, which may be either kind.
    pub fn contains(&self, user: Option<&str>, anon: Option<&str>, previous: Option<&str>) -> bool {
        if self.is_empty() {
            return false;
        }
        let s = self.sets.read().unwrap_or_else(|p| p.into_inner());
        user.is_some_and(|u| s.user.contains(u))
            || anon.is_some_and(|a| s.anon.contains(a))
            || previous.is_some_and(|p| s.anon.contains(p) || s.user.contains(p))
    }

    /// Adds (`opted_out`) or removes an id.
    pub fn set(&self, kind: IdKind, id: &str, opted_out: bool) {
        let mut s = self.sets.write().unwrap_or_else(|p| p.into_inner());
        let set = s.of(kind);
        if opted_out {
            set.insert(id.into());
        } else {
            set.remove(id);
        }
        let n = s.anon.len() + s.user.len();
        drop(s);
        self.entries.store(n, Ordering::Relaxed);
        metrics::optout_list_entries(n);
    }

    /// Applies one record of the topic. Returns false for a record that is
    /// not an opt-out record (ignored).
    pub fn apply_record(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some((kind, id)) = key.and_then(parse_key) else {
            return false;
        };
        let opted_out = match value {
            None => false,
            Some([]) => false,
            Some(v) => match serde_json::from_slice::<RecordValue>(v) {
                Ok(r) => r.opted_out,
                Err(_) => return false,
            },
        };
        self.set(kind, id, opted_out);
        true
    }
}

/// Writes opt-out and opt-in records.
pub struct OptOutWriter {
    producer: FutureProducer,
    topic: String,
    timeout: Duration,
}

impl OptOutWriter {
    pub fn new(
        kafka: &KafkaConfig,
        brokers: &str,
        topic: &str,
        timeout: Duration,
    ) -> Result<OptOutWriter, OptOutError> {
        let mut cc = crate::sink::kafka::client_config(kafka, brokers);
        cc.set("acks", "all")
            .set("linger.ms", "0")
            .set("message.timeout.ms", timeout.as_millis().to_string());
        let producer = cc.create().map_err(OptOutError::Client)?;
        Ok(OptOutWriter {
            producer,
            topic: topic.to_string(),
            timeout,
        })
    }

    /// Writes one record per id and waits for every acknowledgement.
    pub async fn write(
        &self,
        ids: &[(IdKind, String)],
        opted_out: bool,
    ) -> Result<(), OptOutError> {
        let value = opted_out.then(|| {
            serde_json::json!({
                "optedOut": true,
                "at": crate::normalize::format_time(chrono::Utc::now()),
            })
            .to_string()
        });
        let mut pending = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let key = record_key(*kind, id);
            let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(&self.topic).key(&key);
            if let Some(v) = &value {
                rec = rec.payload(v.as_str());
            }
            let fut = self
                .producer
                .send_result(rec)
                .map_err(|(e, _)| OptOutError::Write(e))?;
            pending.push(fut);
        }
        for fut in pending {
            match tokio::time::timeout(self.timeout, fut).await {
                Err(_) | Ok(Err(_)) => return Err(OptOutError::Timeout),
                Ok(Ok(Err((e, _)))) => return Err(OptOutError::Write(e)),
                Ok(Ok(Ok(_))) => {}
            }
        }
        Ok(())
    }
}

/// Routes the follower's client logs to tracing; end-of-partition notices
/// (expected: the follower reads to the end) are not errors.
struct FollowerContext;

impl ClientContext for FollowerContext {
    fn log(&self, level: rdkafka::config::RDKafkaLogLevel, fac: &str, log_message: &str) {
        use rdkafka::config::RDKafkaLogLevel as L;
        match level {
            L::Emerg | L::Alert | L::Critical | L::Error | L::Warning => {
                tracing::warn!(target: "librdkafka", "opt-out follower {fac}: {log_message}")
            }
            _ => tracing::debug!(target: "librdkafka", "opt-out follower {fac}: {log_message}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(target: "librdkafka", "opt-out follower: {error}: {reason}");
    }
}

impl ConsumerContext for FollowerContext {}

type FollowerConsumer = BaseConsumer<FollowerContext>;

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
    std::thread::Builder::new()
        .name("optout-follower".into())
        .spawn(move || follow(&list, &cfg, &stop))
        .map_err(OptOutError::Thread)
}

fn stopped(stop: &watch::Receiver<bool>) -> bool {
    *stop.borrow()
}

fn pause(stop: &watch::Receiver<bool>) {
    let step = POLL_TIMEOUT;
    let mut slept = Duration::ZERO;
    while slept < RETRY_PAUSE && !stopped(stop) {
        std::thread::sleep(step);
        slept += step;
    }
}

fn follow(list: &OptOutList, cfg: &FollowerConfig, stop: &watch::Receiver<bool>) {
    let mut cc = crate::sink::kafka::client_config(&cfg.kafka, &cfg.brokers);
    cc.set("group.id", FOLLOWER_GROUP)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        .set("auto.offset.reset", "earliest");
    let consumer: FollowerConsumer = match cc.create_with_context(FollowerContext) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot create the opt-out consumer; the list will not load");
            return;
        }
    };
    let mut warned = false;
    while !stopped(stop) {
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
        pause(stop);
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
    stop: &watch::Receiver<bool>,
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
        if stopped(stop) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(record_key(IdKind::Anonymous, "a-1"), "anon:a-1");
        assert_eq!(record_key(IdKind::User, "u:1"), "user:u:1");
        assert_eq!(parse_key(b"anon:a-1"), Some((IdKind::Anonymous, "a-1")));
        assert_eq!(parse_key(b"user:u:1"), Some((IdKind::User, "u:1")));
        assert_eq!(parse_key(b"device:x"), None);
        assert_eq!(parse_key(b"\xff"), None);
    }

    #[test]
    fn records_apply_last_write_wins() {
        let l = OptOutList::new();
        assert!(!l.contains(Some("u1"), Some("a1"), None));
        let on = br#"{"optedOut":true,"at":"2026-01-01T00:00:00.000Z"}"#;
        assert!(l.apply_record(Some(b"anon:a1"), Some(on)));
        assert!(l.apply_record(Some(b"user:u1"), Some(on)));
        assert_eq!(l.len(), 2);
        assert!(l.contains(None, Some("a1"), None));
        assert!(l.contains(Some("u1"), None, None));
        // Kinds are separate: an anonymousId equal to an opted-out userId is not.
        assert!(!l.contains(None, Some("u1"), None));
        // previousId may be either kind.
        assert!(l.contains(Some("new"), None, Some("a1")));
        assert!(l.contains(Some("new"), None, Some("u1")));
        // Tombstone, then explicit false.
        assert!(l.apply_record(Some(b"anon:a1"), None));
        assert!(l.apply_record(Some(b"user:u1"), Some(br#"{"optedOut":false}"#)));
        assert!(l.is_empty());
        assert!(!l.contains(Some("u1"), Some("a1"), None));
        // Opt out again after opting in.
        assert!(l.apply_record(Some(b"anon:a1"), Some(on)));
        assert!(l.contains(None, Some("a1"), None));
        // Foreign records are ignored.
        assert!(!l.apply_record(Some(b"other"), Some(on)));
        assert!(!l.apply_record(Some(b"anon:x"), Some(b"junk")));
        assert!(!l.apply_record(None, Some(on)));
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn loaded_flag_is_shared() {
        let l = OptOutList::new();
        let f = l.loaded_flag();
        assert!(!f.load(Ordering::Acquire));
        l.mark_loaded();
        assert!(f.load(Ordering::Acquire));
        assert!(OptOutList::new_loaded().is_loaded());
    }
}
