//! Writes opt-out and opt-in records with a dedicated producer
//! (`acks=all`) and waits for the broker's acknowledgement.

use std::time::Duration;

use rdkafka::producer::{FutureProducer, FutureRecord};

use super::OptOutError;
use crate::config::KafkaConfig;

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
