//! The opt-out (suppression) list: the visitors who asked not to be
//! tracked, shared by every gateway instance and kept across restarts.
//!
//! Storage is a compacted Kafka topic (`privacy.optout_topic`, created by
//! the gateway with `cleanup.policy=compact`). Record key
//! `<kind>@<scope>:<id>` (`anon@web:a-1`, `user@web:42`): the scope is the
//! source the opt-out was taken for, and an entry suppresses that source's
//! events only. Keys of the older, unscoped form (`anon:<id>`) are still
//! read and apply to every source (scope [`SCOPE_ALL`]), as they did when
//! written. Value `{"optedOut":true,"at":…,"proofs":[…]}` for an opt-out, a
//! tombstone (no value) for an opt-in, so compaction eventually forgets the
//! id altogether; `{"optedOut":false}` is read as an opt-in too. Records of
//! one key share a partition and are applied in offset order, so the list
//! is last-write-wins per key whether or not the broker compacts.
//!
//! `proofs` are the SHA-256 of the proof nonces of the browsers that opted
//! the id out (each holds its nonce in an `HttpOnly` cookie). Opting an id
//! back in needs the source's server key, or the cookie of the one browser
//! that opted it out: see [`OptOutList::plan_opt_in`]. An empty list means
//! only the server key may.
//!
//! The list is bounded (`privacy.optout_max_entries`): a new opt-out beyond
//! it is refused ([`OptOutError::Full`], a 503 with its own code and
//! metric), never dropped; records read from the topic always apply, so an
//! opt-out another instance recorded is never lost.
//!
//! Each instance reads the whole topic at start (readiness reports
//! `optout_list_loading`, and ingestion answers 503, until every partition
//! reached the end it had when reading began), then follows it on its own
//! thread (partitions assigned from the beginning, no consumer group,
//! nothing committed). The list lives in memory: per scope two hash maps
//! behind a read-write lock, skipped entirely while empty; lookups hold the
//! read lock for a few hash probes.
//!
//! An opt-out is written with a dedicated producer (`acks=all`) and put in
//! the local list at once, so the next request of that visitor is already
//! suppressed on this instance; other instances follow within their poll
//! interval. An opt-in is written first and removed locally once the broker
//! acknowledged it.

use std::collections::HashMap;
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
use sha2::{Digest, Sha256};
use tokio::sync::watch;

use crate::config::KafkaConfig;
use crate::metrics;

/// Kind name of an `anonymousId` in a record key.
pub const KIND_ANON: &str = "anon";
/// Kind name of a `userId` in a record key.
pub const KIND_USER: &str = "user";
/// The scope of entries that apply to every source: those of records
/// written before opt-outs were scoped (key `anon:<id>`).
pub const SCOPE_ALL: &str = "*";
/// Most browser proofs one entry keeps; an id opted out from more browsers
/// than this can only be opted back in with the server key.
pub const MAX_PROOFS: usize = 4;

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
    #[error("the opt-out list holds its maximum number of entries")]
    Full,
    #[error("opting in needs the visitor's opt-out cookie or the server key")]
    ProofRequired,
    #[error("the opt-out list is not loaded yet")]
    Loading,
}

/// Which identity an id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Anonymous,
    User,
}

impl IdKind {
    pub fn name(self) -> &'static str {
        match self {
            IdKind::Anonymous => KIND_ANON,
            IdKind::User => KIND_USER,
        }
    }

    fn parse(s: &str) -> Option<IdKind> {
        match s {
            KIND_ANON => Some(IdKind::Anonymous),
            KIND_USER => Some(IdKind::User),
            _ => None,
        }
    }
}

/// The SHA-256 of a browser's proof nonce: what the list and the topic
/// keep (the nonce itself lives only in the visitor's cookie).
pub type ProofHash = [u8; 32];

/// Hashes the nonce of a proof cookie.
pub fn proof_hash(nonce: &[u8]) -> ProofHash {
    Sha256::digest(nonce).into()
}

/// What a request proves about its right to opt ids back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The source's server key: may opt in any id of its source.
    ServerKey,
    /// The browser's proof cookie (its hash): may opt in the ids that only
    /// this browser opted out.
    Cookie(ProofHash),
    /// Nothing: may opt ids out, never in.
    None,
}

/// The record key of an id in a scope: `<kind>@<scope>:<id>`.
pub fn record_key(scope: &str, kind: IdKind, id: &str) -> String {
    let mut k = String::with_capacity(kind.name().len() + scope.len() + id.len() + 2);
    k.push_str(kind.name());
    k.push('@');
    k.push_str(scope);
    k.push(':');
    k.push_str(id);
    k
}

/// Splits a record key into scope, kind and id. A key without a scope
/// (`anon:<id>`, written before opt-outs were scoped) is of [`SCOPE_ALL`].
pub fn parse_key(key: &[u8]) -> Option<(&str, IdKind, &str)> {
    let key = std::str::from_utf8(key).ok()?;
    let (head, id) = key.split_once(':')?;
    match head.split_once('@') {
        Some((kind, scope)) if !scope.is_empty() => Some((scope, IdKind::parse(kind)?, id)),
        Some(_) => None,
        None => Some((SCOPE_ALL, IdKind::parse(head)?, id)),
    }
}

#[derive(Deserialize)]
struct RecordValue {
    #[serde(rename = "optedOut")]
    opted_out: bool,
    /// Hex SHA-256 of each browser proof that may opt the id back in.
    #[serde(default)]
    proofs: Vec<String>,
}

/// The value of an opt-out record.
pub fn record_value(proofs: &[ProofHash]) -> String {
    let hex: Vec<String> = proofs.iter().map(|p| to_hex(p)).collect();
    serde_json::json!({
        "optedOut": true,
        "at": crate::normalize::format_time(chrono::Utc::now()),
        "proofs": hex,
    })
    .to_string()
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn from_hex(s: &str) -> Option<ProofHash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}

/// One scope's listed ids, each with the proofs that may opt it back in
/// (empty: only the server key).
#[derive(Debug, Default)]
struct Sets {
    anon: HashMap<Box<str>, Box<[ProofHash]>>,
    user: HashMap<Box<str>, Box<[ProofHash]>>,
}

impl Sets {
    fn of(&self, kind: IdKind) -> &HashMap<Box<str>, Box<[ProofHash]>> {
        match kind {
            IdKind::Anonymous => &self.anon,
            IdKind::User => &self.user,
        }
    }

    fn of_mut(&mut self, kind: IdKind) -> &mut HashMap<Box<str>, Box<[ProofHash]>> {
        match kind {
            IdKind::Anonymous => &mut self.anon,
            IdKind::User => &mut self.user,
        }
    }

    fn matches(&self, user: Option<&str>, anon: Option<&str>, previous: Option<&str>) -> bool {
        user.is_some_and(|u| self.user.contains_key(u))
            || anon.is_some_and(|a| self.anon.contains_key(a))
            || previous.is_some_and(|p| self.anon.contains_key(p) || self.user.contains_key(p))
    }
}

/// What an opt-out of one id writes: its key and the proofs of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOptOut {
    pub kind: IdKind,
    pub id: String,
    pub proofs: Vec<ProofHash>,
}

/// The in-memory suppression list of this instance: per scope (a source
/// id, or [`SCOPE_ALL`]) the listed ids of each kind.
#[derive(Debug)]
pub struct OptOutList {
    scopes: RwLock<HashMap<Box<str>, Sets>>,
    /// Entries in every scope: lets lookups skip the lock while empty.
    entries: AtomicUsize,
    /// New opt-outs are refused (never dropped) beyond this many entries.
    max_entries: usize,
    /// Set once the topic was read up to where it ended at start.
    loaded: Arc<AtomicBool>,
}

impl Default for OptOutList {
    fn default() -> Self {
        OptOutList::new(usize::MAX)
    }
}

impl OptOutList {
    pub fn new(max_entries: usize) -> OptOutList {
        OptOutList {
            scopes: RwLock::default(),
            entries: AtomicUsize::new(0),
            max_entries,
            loaded: Arc::default(),
        }
    }

    /// A list that needs no loading (no broker to read from).
    pub fn new_loaded(max_entries: usize) -> OptOutList {
        let l = OptOutList::new(max_entries);
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

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// True when any of the event's ids is suppressed for `source` (its own
    /// scope or [`SCOPE_ALL`]). `previous` is an alias's `previousId`,
    /// which may be either kind.
    pub fn contains(
        &self,
        source: &str,
        user: Option<&str>,
        anon: Option<&str>,
        previous: Option<&str>,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        [source, SCOPE_ALL].iter().any(|scope| {
            s.get(*scope)
                .is_some_and(|set| set.matches(user, anon, previous))
        })
    }

    /// Whether `id` is listed in `scope`, and the proofs of its entry.
    pub fn entry(&self, scope: &str, kind: IdKind, id: &str) -> Option<Vec<ProofHash>> {
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        s.get(scope)?.of(kind).get(id).map(|p| p.to_vec())
    }

    /// Lists `ids` in `scope` for an opt-out with `proof` and returns what
    /// to write to the topic. The first browser proofs of an id are kept and
    /// a new one is added (up to [`MAX_PROOFS`]): opting an already listed id
    /// out again never lets a new browser opt it back in alone. A server
    /// key's opt-out, or too many browsers, leaves no proof (only the server
    /// key may opt it in). `Full` (nothing listed) when new ids would take
    /// the list over its maximum. Planned and applied under one write lock,
    /// so concurrent opt-outs of one id cannot lose a proof.
    pub fn opt_out(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<Vec<PlannedOptOut>, OptOutError> {
        let mut s = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let mut new = 0usize;
        let mut plans = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let existing = s.get(scope).and_then(|set| set.of(*kind).get(id.as_str()));
            if existing.is_none() {
                new += 1;
            }
            let proofs = match (existing, proof) {
                (None, Proof::Cookie(h)) => vec![h],
                (None, _) => Vec::new(),
                (Some(_), Proof::ServerKey) => Vec::new(),
                (Some(p), _) if p.is_empty() => Vec::new(),
                (Some(p), Proof::Cookie(h)) if p.contains(&h) => p.to_vec(),
                (Some(p), Proof::Cookie(h)) if p.len() < MAX_PROOFS => {
                    let mut v = p.to_vec();
                    v.push(h);
                    v
                }
                (Some(_), Proof::Cookie(_)) => Vec::new(),
                (Some(p), Proof::None) => p.to_vec(),
            };
            plans.push(PlannedOptOut {
                kind: *kind,
                id: id.clone(),
                proofs,
            });
        }
        if new > 0 && self.len().saturating_add(new) > self.max_entries {
            return Err(OptOutError::Full);
        }
        for p in &plans {
            let set = s.entry(scope.into()).or_default().of_mut(p.kind);
            set.insert(p.id.as_str().into(), p.proofs.as_slice().into());
        }
        self.store_len(self.len() + new);
        Ok(plans)
    }

    /// The listed ids among `ids` that an opt-in in `scope` with `proof`
    /// removes; `ProofRequired` (nothing removed) when the proof does not
    /// cover every listed one.
    pub fn plan_opt_in(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<Vec<(IdKind, String)>, OptOutError> {
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        let mut listed = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let Some(p) = s.get(scope).and_then(|set| set.of(*kind).get(id.as_str())) else {
                continue;
            };
            let allowed = match proof {
                Proof::ServerKey => true,
                Proof::Cookie(h) => p.len() == 1 && p[0] == h,
                Proof::None => false,
            };
            if !allowed {
                return Err(OptOutError::ProofRequired);
            }
            listed.push((*kind, id.clone()));
        }
        Ok(listed)
    }

    /// Lists `id` in `scope` with `proofs` (`Some`), or removes it.
    pub fn set(&self, scope: &str, kind: IdKind, id: &str, proofs: Option<&[ProofHash]>) {
        let mut s = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let n = match proofs {
            Some(p) => {
                let set = s.entry(scope.into()).or_default().of_mut(kind);
                match set.insert(id.into(), p.into()) {
                    None => self.len() + 1,
                    Some(_) => self.len(),
                }
            }
            None => {
                let removed = s
                    .get_mut(scope)
                    .is_some_and(|set| set.of_mut(kind).remove(id).is_some());
                if s.get(scope)
                    .is_some_and(|set| set.anon.is_empty() && set.user.is_empty())
                {
                    s.remove(scope);
                }
                self.len() - usize::from(removed)
            }
        };
        // Under the write lock: every writer sees the count it changes.
        self.store_len(n);
    }

    fn store_len(&self, n: usize) {
        self.entries.store(n, Ordering::Relaxed);
        metrics::optout_list_entries(n);
    }

    /// Applies one record of the topic. Returns false for a record that is
    /// not an opt-out record (ignored). Records are applied whatever the
    /// list's maximum: a suppression another instance took is never lost.
    pub fn apply_record(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some((scope, kind, id)) = key.and_then(parse_key) else {
            return false;
        };
        let proofs = match value {
            None | Some([]) => None,
            Some(v) => match serde_json::from_slice::<RecordValue>(v) {
                Ok(r) if r.opted_out => {
                    let p: Vec<ProofHash> = r.proofs.iter().filter_map(|h| from_hex(h)).collect();
                    // A malformed proof would widen who may opt in: none kept.
                    Some(if p.len() == r.proofs.len() {
                        p
                    } else {
                        Vec::new()
                    })
                }
                Ok(_) => None,
                Err(_) => return false,
            },
        };
        self.set(scope, kind, id, proofs.as_deref());
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

    /// Writes one record per (key, value; `None` = tombstone) and waits for
    /// every acknowledgement.
    pub async fn write(&self, records: &[(String, Option<String>)]) -> Result<(), OptOutError> {
        let mut pending = Vec::with_capacity(records.len());
        for (key, value) in records {
            let mut rec: FutureRecord<'_, str, str> = FutureRecord::to(&self.topic).key(key);
            if let Some(v) = value {
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

    const ON: &[u8] = br#"{"optedOut":true,"at":"2026-01-01T00:00:00.000Z"}"#;

    fn ids(list: &[(IdKind, &str)]) -> Vec<(IdKind, String)> {
        list.iter().map(|(k, i)| (*k, i.to_string())).collect()
    }

    #[test]
    fn keys_round_trip_and_old_keys_apply_to_every_source() {
        assert_eq!(record_key("web", IdKind::Anonymous, "a-1"), "anon@web:a-1");
        assert_eq!(record_key("web", IdKind::User, "u:1"), "user@web:u:1");
        assert_eq!(
            parse_key(b"anon@web:a-1"),
            Some(("web", IdKind::Anonymous, "a-1"))
        );
        assert_eq!(
            parse_key(b"user@web:u:1"),
            Some(("web", IdKind::User, "u:1"))
        );
        assert_eq!(
            parse_key(b"anon:a-1"),
            Some((SCOPE_ALL, IdKind::Anonymous, "a-1"))
        );
        assert_eq!(
            parse_key(b"user:u:1"),
            Some((SCOPE_ALL, IdKind::User, "u:1"))
        );
        assert_eq!(parse_key(b"anon@:x"), None);
        assert_eq!(parse_key(b"device:x"), None);
        assert_eq!(parse_key(b"device@web:x"), None);
        assert_eq!(parse_key(b"\xff"), None);
    }

    #[test]
    fn records_apply_last_write_wins_per_scope() {
        let l = OptOutList::new(10);
        assert!(!l.contains("web", Some("u1"), Some("a1"), None));
        assert!(l.apply_record(Some(b"anon@web:a1"), Some(ON)));
        assert!(l.apply_record(Some(b"user@web:u1"), Some(ON)));
        assert_eq!(l.len(), 2);
        assert!(l.contains("web", None, Some("a1"), None));
        assert!(l.contains("web", Some("u1"), None, None));
        // Another source is not affected.
        assert!(!l.contains("app", Some("u1"), Some("a1"), None));
        // Kinds are separate: an anonymousId equal to an opted-out userId is not.
        assert!(!l.contains("web", None, Some("u1"), None));
        // previousId may be either kind.
        assert!(l.contains("web", Some("new"), None, Some("a1")));
        assert!(l.contains("web", Some("new"), None, Some("u1")));
        // Tombstone, then explicit false.
        assert!(l.apply_record(Some(b"anon@web:a1"), None));
        assert!(l.apply_record(Some(b"user@web:u1"), Some(br#"{"optedOut":false}"#)));
        assert!(l.is_empty());
        // An old, unscoped record applies to every source.
        assert!(l.apply_record(Some(b"anon:a1"), Some(ON)));
        assert!(l.contains("web", None, Some("a1"), None));
        assert!(l.contains("app", None, Some("a1"), None));
        // Foreign records are ignored.
        assert!(!l.apply_record(Some(b"other"), Some(ON)));
        assert!(!l.apply_record(Some(b"anon@web:x"), Some(b"junk")));
        assert!(!l.apply_record(None, Some(ON)));
        assert_eq!(l.len(), 1);
        // Records from the topic apply beyond the maximum.
        let small = OptOutList::new(1);
        assert!(small.apply_record(Some(b"anon@web:1"), Some(ON)));
        assert!(small.apply_record(Some(b"anon@web:2"), Some(ON)));
        assert_eq!(small.len(), 2);
    }

    #[test]
    fn proofs_travel_in_the_record_and_malformed_ones_keep_none() {
        let l = OptOutList::new(10);
        let h = proof_hash(b"nonce");
        let v = record_value(&[h]);
        assert!(l.apply_record(Some(b"anon@web:a"), Some(v.as_bytes())));
        assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![h]));
        let bad = br#"{"optedOut":true,"proofs":["zz"]}"#;
        assert!(l.apply_record(Some(b"anon@web:a"), Some(bad)));
        assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![]));
    }

    #[test]
    fn opt_in_needs_the_proof_of_every_listed_id() {
        let l = OptOutList::new(10);
        let mine = proof_hash(b"mine");
        let theirs = proof_hash(b"theirs");
        let a = ids(&[(IdKind::Anonymous, "a")]);
        l.opt_out("web", &a, Proof::Cookie(mine)).unwrap();
        // No proof, someone else's, or another scope: refused.
        assert!(matches!(
            l.plan_opt_in("web", &a, Proof::None),
            Err(OptOutError::ProofRequired)
        ));
        assert!(matches!(
            l.plan_opt_in("web", &a, Proof::Cookie(theirs)),
            Err(OptOutError::ProofRequired)
        ));
        assert_eq!(l.plan_opt_in("app", &a, Proof::None).unwrap(), vec![]);
        assert_eq!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).unwrap(), a);
        assert_eq!(l.plan_opt_in("web", &a, Proof::ServerKey).unwrap(), a);
        // Opted out again from another browser: neither browser alone may
        // opt it in any more.
        let again = l.opt_out("web", &a, Proof::Cookie(theirs)).unwrap();
        assert_eq!(again[0].proofs, vec![mine, theirs]);
        assert_eq!(
            l.entry("web", IdKind::Anonymous, "a"),
            Some(vec![mine, theirs])
        );
        assert!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).is_err());
        assert!(l.plan_opt_in("web", &a, Proof::Cookie(theirs)).is_err());
        // An opt-out without a proof keeps the proofs.
        let plain = l.opt_out("web", &a, Proof::None).unwrap();
        assert_eq!(plain[0].proofs, vec![mine, theirs]);
        // A server key's opt-out leaves only the server key.
        let by_server = l.opt_out("web", &a, Proof::ServerKey).unwrap();
        assert!(by_server[0].proofs.is_empty());
        assert!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).is_err());
        // Up to MAX_PROOFS browsers are remembered, then only the server key.
        let b = ids(&[(IdKind::User, "b")]);
        for i in 0..MAX_PROOFS {
            let p = l
                .opt_out("web", &b, Proof::Cookie(proof_hash(&[i as u8])))
                .unwrap();
            assert_eq!(p[0].proofs.len(), i + 1);
        }
        let p = l
            .opt_out("web", &b, Proof::Cookie(proof_hash(b"fifth")))
            .unwrap();
        assert!(p[0].proofs.is_empty());
        assert_eq!(l.len(), 2);
    }

    #[test]
    fn a_full_list_refuses_new_ids_but_not_listed_ones() {
        let l = OptOutList::new(1);
        let a = ids(&[(IdKind::Anonymous, "a")]);
        let b = ids(&[(IdKind::User, "b")]);
        l.opt_out("web", &a, Proof::None).unwrap();
        assert!(matches!(
            l.opt_out("web", &b, Proof::None),
            Err(OptOutError::Full)
        ));
        assert!(matches!(
            l.opt_out("app", &a, Proof::Cookie(proof_hash(b"x"))),
            Err(OptOutError::Full)
        ));
        assert_eq!(l.entry("app", IdKind::Anonymous, "a"), None);
        assert!(l.opt_out("web", &a, Proof::ServerKey).is_ok());
        assert_eq!(l.len(), 1);
    }

    #[test]
    fn loaded_flag_is_shared() {
        let l = OptOutList::new(1);
        let f = l.loaded_flag();
        assert!(!f.load(Ordering::Acquire));
        l.mark_loaded();
        assert!(f.load(Ordering::Acquire));
        assert!(OptOutList::new_loaded(1).is_loaded());
    }
}
