//! End-to-end verification: did the broker receive exactly what the gateway
//! said it accepted?
//!
//! Before the run, the high watermark of every partition of the raw topics
//! is noted, so only records written during the run are read. Every event
//! of the run carries a unique `messageId` (`<run tag>-<counter>`); the
//! ledger says for each request what the gateway answered. After the run
//! the topics are read back and each record is matched to its event:
//! - *missing*: accepted according to the answer, not on the broker;
//! - *duplicates*: on the broker more than once;
//! - *misrouted*: on another topic than the event's type routes to;
//! - *unexpected*: on the broker although the answer refused or dropped it;
//! - *uncertain*: the request's fate is unknown (timeout, broken connection,
//!   partial answer), so finding it or not is both fine; only counted.
//!
//! Rejected events of the run showing up on the invalid topic are counted
//! too (the generator only sends valid events, so there should be none).

use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};

use crate::traffic::{parse_message_id, Template, Topic};

/// Longest wait for metadata and watermarks.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);
/// One consumer poll.
const POLL: Duration = Duration::from_millis(100);

#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} does not exist on the broker (is the gateway up and ready?)")]
    NoSuchTopic(String),
}

/// What the gateway's answer says happened to a request's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    /// 2xx and every event accepted.
    Accepted,
    /// 2xx and every event dropped by policy.
    Dropped,
    /// Answered with a non-2xx status, or never sent: nothing was taken.
    Refused,
    /// Unknown: timeout, broken connection, mixed counts, or no counts.
    Uncertain,
}

impl Fate {
    /// The fate of a request with `n` events answered with `status`.
    pub fn from_answer(status: u16, n: usize, counts: Option<crate::client::Counts>) -> Fate {
        if !(200..300).contains(&status) {
            return Fate::Refused;
        }
        match counts {
            Some(c) if c.accepted as usize == n => Fate::Accepted,
            Some(c) if c.dropped as usize == n => Fate::Dropped,
            _ => Fate::Uncertain,
        }
    }
}

/// One request of the run: its first event counter, its template and fate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub first_id: u64,
    pub template: u32,
    pub fate: Fate,
}

/// The topic names of the gateway.
#[derive(Debug, Clone)]
pub struct Topics {
    pub prefix: String,
}

impl Topics {
    pub fn name(&self, t: Topic) -> String {
        format!("{}{}", self.prefix, t.suffix())
    }

    pub fn invalid(&self) -> String {
        format!("{}invalid", self.prefix)
    }

    fn all(&self) -> Vec<String> {
        let mut v: Vec<String> = Topic::ALL.iter().map(|t| self.name(*t)).collect();
        v.push(self.invalid());
        v
    }
}

/// Partition offsets where the run's records begin.
#[derive(Debug, Clone)]
pub struct Baseline {
    brokers: String,
    topics: Topics,
    start: Vec<(String, i32, i64)>,
}

fn consumer(brokers: &str) -> Result<BaseConsumer, VerifyError> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", "trackgate-load-verify")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()?)
}

impl Baseline {
    /// Notes the high watermark of every partition of every topic.
    pub fn capture(brokers: &str, topics: Topics) -> Result<Baseline, VerifyError> {
        let c = consumer(brokers)?;
        let mut start = Vec::new();
        for name in topics.all() {
            let md = c.fetch_metadata(Some(&name), METADATA_TIMEOUT)?;
            let t = md
                .topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                .ok_or_else(|| VerifyError::NoSuchTopic(name.clone()))?;
            for p in t.partitions() {
                let (_, high) = c.fetch_watermarks(&name, p.id(), METADATA_TIMEOUT)?;
                start.push((name.clone(), p.id(), high));
            }
        }
        Ok(Baseline {
            brokers: brokers.to_string(),
            topics,
            start,
        })
    }
}

/// Per-topic figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct TopicCheck {
    /// Events accepted according to the answers, routed here.
    pub expected: u64,
    /// Records of accepted events found here (duplicates included).
    pub found: u64,
    pub missing: u64,
    pub duplicates: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct VerifyReport {
    pub passed: bool,
    pub topics: BTreeMap<Topic, TopicCheck>,
    pub expected: u64,
    pub found: u64,
    pub missing: u64,
    pub duplicates: u64,
    pub misrouted: u64,
    pub unexpected: u64,
    /// Events of requests with an unknown fate, and how many of them arrived.
    pub uncertain: u64,
    pub uncertain_found: u64,
    /// Events of the run found on the invalid topic.
    pub invalid_topic: u64,
    /// Records of other producers or runs, ignored.
    pub foreign: u64,
    /// Records delivered to the reader again at a position it had already
    /// read (a consumer-side repeat, not a duplicate on the broker).
    pub reread: u64,
    pub read_seconds: f64,
}

impl VerifyReport {
    pub fn human(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "  verify     {}: expected {}, found {}, missing {}, duplicates {}, misrouted {}, unexpected {}, on invalid topic {}; uncertain {} ({} arrived); re-read {}; read in {:.1} s",
            if self.passed { "PASSED" } else { "FAILED" },
            self.expected,
            self.found,
            self.missing,
            self.duplicates,
            self.misrouted,
            self.unexpected,
            self.invalid_topic,
            self.uncertain,
            self.uncertain_found,
            self.reread,
            self.read_seconds
        );
        for (t, c) in &self.topics {
            let _ = writeln!(
                s,
                "             {:<11} expected {:>9} found {:>9} missing {:>6} duplicates {:>6}",
                t.suffix(),
                c.expected,
                c.found,
                c.missing,
                c.duplicates
            );
        }
        s
    }
}

/// Matches records back to the run's events.
pub struct Checker<'a> {
    run_tag: &'a str,
    templates: &'a [Template],
    /// Sorted by `first_id`.
    ledger: Vec<Sent>,
    /// Copies seen of each event counter.
    seen: Vec<u32>,
    /// Partition positions already read.
    positions: HashSet<(Option<Topic>, i32, i64)>,
    report: VerifyReport,
}

#[derive(Deserialize)]
struct IdOnly<'a> {
    #[serde(rename = "messageId", borrow)]
    message_id: Option<Cow<'a, str>>,
}

impl<'a> Checker<'a> {
    /// `events` is the number of event counters handed out in the run.
    pub fn new(
        run_tag: &'a str,
        templates: &'a [Template],
        mut ledger: Vec<Sent>,
        events: u64,
    ) -> Checker<'a> {
        ledger.sort_unstable_by_key(|s| s.first_id);
        let mut report = VerifyReport::default();
        for s in &ledger {
            let t = &templates[s.template as usize];
            match s.fate {
                Fate::Accepted => {
                    for k in &t.events {
                        report.topics.entry(k.topic()).or_default().expected += 1;
                        report.expected += 1;
                    }
                }
                Fate::Uncertain => report.uncertain += t.events.len() as u64,
                Fate::Refused | Fate::Dropped => {}
            }
        }
        Checker {
            run_tag,
            templates,
            ledger,
            seen: vec![0; usize::try_from(events).unwrap_or(0)],
            positions: HashSet::new(),
            report,
        }
    }

    /// The request an event counter belongs to, and the event's topic.
    fn lookup(&self, id: u64) -> Option<(Fate, Topic)> {
        let i = self
            .ledger
            .partition_point(|s| s.first_id <= id)
            .checked_sub(1)?;
        let s = self.ledger[i];
        let kind = self.templates[s.template as usize]
            .events
            .get(usize::try_from(id - s.first_id).ok()?)?;
        Some((s.fate, kind.topic()))
    }

    /// Accepted events found so far (duplicates included).
    pub fn found(&self) -> u64 {
        self.report.found
    }

    pub fn expected(&self) -> u64 {
        self.report.expected
    }

    /// One record read from `topic` (`None`: the invalid topic) at
    /// `partition` and `offset`.
    pub fn record(&mut self, topic: Option<Topic>, partition: i32, offset: i64, payload: &[u8]) {
        if !self.positions.insert((topic, partition, offset)) {
            self.report.reread += 1;
            return;
        }
        let Some(topic) = topic else {
            let tag = self.run_tag.as_bytes();
            if payload.windows(tag.len()).any(|w| w == tag) {
                self.report.invalid_topic += 1;
            } else {
                self.report.foreign += 1;
            }
            return;
        };
        let id = serde_json::from_slice::<IdOnly<'_>>(payload)
            .ok()
            .and_then(|r| r.message_id)
            .and_then(|m| parse_message_id(self.run_tag, &m));
        let Some(id) = id else {
            self.report.foreign += 1;
            return;
        };
        let Some((fate, routed)) = self.lookup(id) else {
            self.report.unexpected += 1;
            return;
        };
        let copies = &mut self.seen[id as usize];
        *copies += 1;
        match fate {
            Fate::Accepted => {
                self.report.found += 1;
                let c = self.report.topics.entry(topic).or_default();
                c.found += 1;
                if *copies > 1 {
                    c.duplicates += 1;
                    self.report.duplicates += 1;
                }
                if routed != topic {
                    self.report.misrouted += 1;
                }
            }
            Fate::Uncertain => {
                if *copies > 1 {
                    self.report.duplicates += 1;
                } else {
                    self.report.uncertain_found += 1;
                }
            }
            Fate::Refused | Fate::Dropped => self.report.unexpected += 1,
        }
    }

    /// The verdict, once everything was read.
    pub fn finish(mut self, read: Duration) -> VerifyReport {
        for s in &self.ledger {
            if s.fate != Fate::Accepted {
                continue;
            }
            let t = &self.templates[s.template as usize];
            for (k, kind) in t.events.iter().enumerate() {
                if self.seen[(s.first_id + k as u64) as usize] == 0 {
                    self.report.missing += 1;
                    self.report.topics.entry(kind.topic()).or_default().missing += 1;
                }
            }
        }
        let r = &mut self.report;
        r.read_seconds = read.as_secs_f64();
        r.passed = r.missing == 0
            && r.duplicates == 0
            && r.misrouted == 0
            && r.unexpected == 0
            && r.invalid_topic == 0;
        self.report
    }
}

/// Reads the run's records into `checker`: until every accepted event was
/// found and nothing new arrived for `settle`, or until `timeout`.
pub fn read_back(
    baseline: &Baseline,
    checker: &mut Checker<'_>,
    timeout: Duration,
    settle: Duration,
) -> Result<(), VerifyError> {
    let c = consumer(&baseline.brokers)?;
    let mut tpl = TopicPartitionList::new();
    for (topic, partition, offset) in &baseline.start {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*offset))?;
    }
    c.assign(&tpl)?;
    let by_name: Vec<(String, Option<Topic>)> = Topic::ALL
        .iter()
        .map(|t| (baseline.topics.name(*t), Some(*t)))
        .chain(std::iter::once((baseline.topics.invalid(), None)))
        .collect();
    let deadline = Instant::now() + timeout;
    let mut last = Instant::now();
    loop {
        let now = Instant::now();
        let complete = checker.found() >= checker.expected();
        if now >= deadline || (complete && now.duration_since(last) >= settle) {
            return Ok(());
        }
        // Poll errors are transient (the consumer retries by itself); the
        // deadline bounds the wait.
        if let Some(Ok(m)) = c.poll(POLL) {
            last = Instant::now();
            let topic = by_name
                .iter()
                .find(|(n, _)| n == m.topic())
                .and_then(|(_, t)| *t);
            checker.record(
                topic,
                m.partition(),
                m.offset(),
                m.payload().unwrap_or_default(),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Counts;
    use crate::traffic::{generate, message_id, EventMix, RequestMix, TrafficSpec};

    const TAG: &str = "lt00c0ffee";

    thread_local!(static OFFSET: std::cell::Cell<i64> = const { std::cell::Cell::new(0) });

    /// A fresh partition offset for each record.
    fn off() -> i64 {
        OFFSET.with(|o| {
            o.set(o.get() + 1);
            o.get()
        })
    }

    fn templates() -> Vec<Template> {
        generate(&TrafficSpec {
            requests: RequestMix {
                single: 1,
                batch: 1,
            },
            events: EventMix::default(),
            batch_size: 5,
            pii_share: 0.0,
            optout_share: 0.0,
            gzip_share: 0.0,
            write_key: "k".into(),
            host: "h".into(),
            templates: 6,
            run_tag: TAG.into(),
            seed: 3,
        })
        .unwrap()
    }

    fn payload(id: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"type":"page","messageId": message_id(TAG, id)}))
            .unwrap()
    }

    #[test]
    fn fates_follow_the_answer() {
        let c = |a, r, d| {
            Some(Counts {
                accepted: a,
                rejected: r,
                dropped: d,
            })
        };
        assert_eq!(Fate::from_answer(200, 3, c(3, 0, 0)), Fate::Accepted);
        assert_eq!(Fate::from_answer(200, 3, c(0, 0, 3)), Fate::Dropped);
        assert_eq!(Fate::from_answer(200, 3, c(2, 1, 0)), Fate::Uncertain);
        assert_eq!(Fate::from_answer(204, 3, None), Fate::Uncertain);
        assert_eq!(Fate::from_answer(503, 3, None), Fate::Refused);
        assert_eq!(Fate::from_answer(400, 3, c(3, 0, 0)), Fate::Refused);
    }

    /// Lays the templates out back to back, with the given fates.
    fn ledger(t: &[Template], fates: &[Fate]) -> (Vec<Sent>, u64) {
        let mut next = 0;
        let mut out = Vec::new();
        for (i, f) in fates.iter().enumerate() {
            out.push(Sent {
                first_id: next,
                template: i as u32,
                fate: *f,
            });
            next += t[i].events.len() as u64;
        }
        out.reverse(); // the checker must not rely on the order
        (out, next)
    }

    #[test]
    fn exact_delivery_passes() {
        let t = templates();
        let (l, n) = ledger(&t, &[Fate::Accepted; 6]);
        let mut c = Checker::new(TAG, &t, l.clone(), n);
        let mut first = 0;
        for s in l.iter().rev() {
            for (k, kind) in t[s.template as usize].events.iter().enumerate() {
                c.record(Some(kind.topic()), 0, off(), &payload(first + k as u64));
            }
            first += t[s.template as usize].events.len() as u64;
        }
        c.record(
            Some(Topic::Pageviews),
            0,
            off(),
            b"{\"messageId\":\"someone-else\"}",
        );
        c.record(None, 0, off(), b"{\"payload\":\"unrelated\"}");
        assert_eq!(c.found(), n);
        let r = c.finish(Duration::ZERO);
        assert!(r.passed, "{r:?}");
        assert_eq!((r.expected, r.found, r.foreign), (n, n, 2));
        let per_topic: u64 = r.topics.values().map(|c| c.expected).sum();
        assert_eq!(per_topic, n);
    }

    #[test]
    fn a_position_read_twice_is_a_reread_not_a_duplicate() {
        let t = templates();
        let (l, n) = ledger(&t, &[Fate::Accepted; 6]);
        let mut c = Checker::new(TAG, &t, l.clone(), n);
        let topic = t[5].events[0].topic();
        let first5 = n - t[5].events.len() as u64;
        c.record(Some(topic), 1, 77, &payload(first5));
        c.record(Some(topic), 1, 77, &payload(first5));
        let r = c.finish(Duration::ZERO);
        assert_eq!((r.duplicates, r.reread, r.found), (0, 1, 1));
    }

    #[test]
    fn missing_duplicated_misrouted_and_unexpected_events_fail() {
        let t = templates();
        let fates = [
            Fate::Accepted,
            Fate::Accepted,
            Fate::Refused,
            Fate::Uncertain,
            Fate::Dropped,
            Fate::Accepted,
        ];
        let (l, n) = ledger(&t, &fates);
        let mut sorted = l.clone();
        sorted.sort_by_key(|s| s.first_id);
        let topic_of = |id: u64| {
            let s = sorted.iter().rev().find(|s| s.first_id <= id).unwrap();
            t[s.template as usize].events[(id - s.first_id) as usize].topic()
        };
        let mut c = Checker::new(TAG, &t, l, n);
        // Everything accepted arrives once, except: the first event is
        // missing, the second arrives twice, the third on a wrong topic.
        for s in &sorted {
            for id in s.first_id..s.first_id + t[s.template as usize].events.len() as u64 {
                match (s.fate, id) {
                    (Fate::Accepted, 0) => {}
                    (Fate::Accepted, 1) => {
                        c.record(Some(topic_of(id)), 0, off(), &payload(id));
                        c.record(Some(topic_of(id)), 0, off(), &payload(id));
                    }
                    (Fate::Accepted, 2) => {
                        let wrong = Topic::ALL.into_iter().find(|x| *x != topic_of(id)).unwrap();
                        c.record(Some(wrong), 0, off(), &payload(id));
                    }
                    (Fate::Accepted, _) | (Fate::Uncertain, _) => {
                        c.record(Some(topic_of(id)), 0, off(), &payload(id))
                    }
                    _ => {}
                }
            }
        }
        // One event of the refused request shows up anyway, and one of the
        // run on the invalid topic.
        let refused = sorted.iter().find(|s| s.fate == Fate::Refused).unwrap();
        c.record(
            Some(topic_of(refused.first_id)),
            0,
            off(),
            &payload(refused.first_id),
        );
        c.record(
            None,
            0,
            off(),
            format!("{{\"payload\":\"{}\"}}", message_id(TAG, 3)).as_bytes(),
        );
        let r = c.finish(Duration::ZERO);
        assert!(!r.passed);
        assert_eq!(r.missing, 1);
        assert_eq!(r.duplicates, 1);
        assert_eq!(r.misrouted, 1);
        assert_eq!(r.unexpected, 1);
        assert_eq!(r.invalid_topic, 1);
        let uncertain = t[3].events.len() as u64;
        assert_eq!((r.uncertain, r.uncertain_found), (uncertain, uncertain));
        let per_topic_missing: u64 = r.topics.values().map(|c| c.missing).sum();
        assert_eq!(per_topic_missing, 1);
    }
}
