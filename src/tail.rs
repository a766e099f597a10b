//! `trackgate tail`: consumes topics and prints their records, pretty or as
//! JSON lines. Reads partitions directly (no consumer group, nothing
//! committed), so it never disturbs other consumers.

use std::io::Write;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::{json, Value};

use crate::consumer::{serve_stale_events, LossContext};

/// How long to wait for topic metadata.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Pretty,
    Json,
}

#[derive(Debug, Clone, clap::Args)]
pub struct TailArgs {
    /// Bootstrap servers.
    #[arg(long, env = "TRACKGATE_TAIL_BROKERS", default_value = "127.0.0.1:9092")]
    pub brokers: String,
    /// Topic to read (repeatable).
    #[arg(long = "topic", required = true)]
    pub topics: Vec<String>,
    /// Start at the oldest record instead of only new ones.
    #[arg(long)]
    pub from_beginning: bool,
    /// Stop after this many records.
    #[arg(long)]
    pub max_records: Option<u64>,
    /// Stop once no record arrived for this long.
    #[arg(long)]
    pub idle_timeout_ms: Option<u64>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Pretty)]
    pub format: Format,
}

#[derive(Debug, thiserror::Error)]
pub enum TailError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("topic {0} not found")]
    NoSuchTopic(String),
    #[error("output: {0}")]
    Io(#[from] std::io::Error),
    /// Every broker connection was lost. Reading on could fetch topics a
    /// restarted broker no longer has, which the client library does not
    /// survive (see `consumer`): tail stops instead; run it again.
    #[error("lost every broker connection; stopped")]
    BrokerLost,
}

/// One consumed record as JSON.
pub fn record_json(m: &rdkafka::message::BorrowedMessage<'_>) -> Value {
    let mut headers = serde_json::Map::new();
    if let Some(h) = m.headers() {
        for hd in h.iter() {
            let v = hd.value.map(|b| String::from_utf8_lossy(b).into_owned());
            headers.insert(hd.key.to_string(), json!(v));
        }
    }
    let value = m
        .payload()
        .map(|p| serde_json::from_slice(p).unwrap_or_else(|_| json!(String::from_utf8_lossy(p))))
        .unwrap_or(Value::Null);
    json!({
        "topic": m.topic(),
        "partition": m.partition(),
        "offset": m.offset(),
        "key": m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
        "headers": headers,
        "value": value,
    })
}

pub fn run(args: &TailArgs) -> Result<(), TailError> {
    let consumer: BaseConsumer<LossContext> = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", "trackgate-tail")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create_with_context(LossContext::new("tail"))?;
    let mut tpl = TopicPartitionList::new();
    let start = if args.from_beginning {
        Offset::Beginning
    } else {
        Offset::End
    };
    for topic in &args.topics {
        let md = consumer.fetch_metadata(Some(topic), METADATA_TIMEOUT)?;
        let t = md
            .topics()
            .iter()
            .find(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty())
            .ok_or_else(|| TailError::NoSuchTopic(topic.clone()))?;
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), start)?;
        }
    }
    serve_stale_events(&consumer);
    consumer.assign(&tpl)?;
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut count = 0u64;
    let mut last = Instant::now();
    loop {
        if args.max_records.is_some_and(|m| count >= m) {
            return Ok(());
        }
        if let Some(idle) = args.idle_timeout_ms {
            if last.elapsed() >= Duration::from_millis(idle) {
                return Ok(());
            }
        }
        if consumer.context().take_lost() {
            return Err(TailError::BrokerLost);
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => continue,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "consumer error");
                continue;
            }
            Some(Ok(m)) => {
                let rec = record_json(&m);
                match args.format {
                    Format::Json => writeln!(out, "{rec}")?,
                    Format::Pretty => writeln!(
                        out,
                        "── {} [{}] @{} key={}\n{}",
                        m.topic(),
                        m.partition(),
                        m.offset(),
                        rec["key"],
                        serde_json::to_string_pretty(&rec["value"]).unwrap_or_default()
                    )?,
                }
                out.flush()?;
                count += 1;
                last = Instant::now();
            }
        }
    }
}
