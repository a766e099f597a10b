//! An in-memory sink for unit tests, benches and fuzz targets: it keeps what
//! it was sent (or, [`MemorySink::discarding`], only counts it) and reports
//! spooled outcomes when told to, so the real pipeline and the spool's
//! bookkeeping run without a broker.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::{
    Delivery, DeliveryListener, Record, RecordId, RecordKind, SendRefused, Sink, SinkError,
};

/// A record the memory sink was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub id: RecordId,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

/// A record the pipeline handed over directly (spool off, or the invalid
/// topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducedRecord {
    pub kind: RecordKind,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
    pub value: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    sent: Vec<SentRecord>,
    produced: Vec<ProducedRecord>,
    /// Records handed over directly, kept or not.
    produced_count: u64,
    spooled_count: u64,
    /// Keep nothing, count only (benches).
    discard: bool,
    /// Records sent but not yet reported, oldest first.
    pending: Vec<RecordId>,
    capacity: Option<usize>,
    up: bool,
}

/// Holds sent records; [`MemorySink::report`] answers them.
pub struct MemorySink {
    inner: Mutex<Inner>,
    listener: Mutex<Option<Weak<dyn DeliveryListener>>>,
}

impl Default for MemorySink {
    fn default() -> Self {
        MemorySink {
            inner: Mutex::new(Inner {
                up: true,
                ..Inner::default()
            }),
            listener: Mutex::new(None),
        }
    }
}

impl MemorySink {
    pub fn new() -> Arc<MemorySink> {
        Arc::new(MemorySink::default())
    }

    pub fn set_listener(&self, listener: Weak<dyn DeliveryListener>) {
        *self.listener.lock().unwrap_or_else(PoisonError::into_inner) = Some(listener);
    }

    /// At most `n` unreported records at once (`None`: unbounded).
    pub fn set_capacity(&self, n: Option<usize>) {
        self.lock().capacity = n;
    }

    /// Whether [`Sink::can_replay`] says yes.
    pub fn set_up(&self, up: bool) {
        self.lock().up = up;
    }

    /// A sink that keeps nothing and only counts (benches).
    pub fn discarding() -> Arc<MemorySink> {
        let sink = MemorySink::default();
        sink.lock().discard = true;
        Arc::new(sink)
    }

    /// Records the pipeline handed over directly, in order.
    pub fn produced(&self) -> Vec<ProducedRecord> {
        self.lock().produced.clone()
    }

    /// How many records the pipeline handed over directly.
    pub fn produced_count(&self) -> u64 {
        self.lock().produced_count
    }

    /// Records counted as appended to the spool.
    pub fn spooled_count(&self) -> u64 {
        self.lock().spooled_count
    }

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.lock().sent.clone()
    }

    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Reports `outcome` for every unreported record, oldest first.
    pub fn report(&self, outcome: Delivery) -> usize {
        self.report_oldest(usize::MAX, outcome).len()
    }

    /// Reports `outcome` for the `n` oldest unreported records; returns
    /// their ids.
    pub fn report_oldest(&self, n: usize, outcome: Delivery) -> Vec<RecordId> {
        let ids: Vec<RecordId> = {
            let mut inner = self.lock();
            let n = n.min(inner.pending.len());
            inner.pending.drain(..n).collect()
        };
        let listener = self
            .listener
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade);
        if let Some(l) = listener {
            for id in &ids {
                l.delivered(*id, outcome);
            }
        }
        ids
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
    fn send(&self, record: &Record<'_>, kind: RecordKind) -> Result<(), SinkError> {
        let mut inner = self.lock();
        if !inner.up {
            return Err(SinkError::QueueFull);
        }
        inner.produced_count += 1;
        if !inner.discard {
            inner.produced.push(ProducedRecord {
                kind,
                topic: record.topic.to_string(),
                key: record.key.map(<[u8]>::to_vec),
                headers: record
                    .headers
                    .iter()
                    .map(|(n, v)| (n.to_string(), v.map(<[u8]>::to_vec)))
                    .collect(),
                value: record.value.to_vec(),
            });
        }
        Ok(())
    }

    fn has_room(&self, _records: u64, _bytes: u64) -> bool {
        self.lock().up
    }

    fn count_spooled(&self, n: u64) {
        self.lock().spooled_count += n;
    }

    fn send_spooled(&self, record: &Record<'_>, id: RecordId) -> Result<(), SendRefused> {
        let mut inner = self.lock();
        if inner.capacity.is_some_and(|c| inner.pending.len() >= c) {
            return Err(SendRefused::Full);
        }
        inner.pending.push(id);
        inner.sent.push(SentRecord {
            id,
            topic: record.topic.to_string(),
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.to_vec(),
        });
        Ok(())
    }

    fn can_replay(&self) -> bool {
        self.lock().up
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Count(Mutex<Vec<(RecordId, Delivery)>>);
    impl DeliveryListener for Count {
        fn delivered(&self, id: RecordId, outcome: Delivery) {
            self.0
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push((id, outcome));
        }
    }

    #[test]
    fn reports_reach_the_listener_in_send_order_and_capacity_refuses() {
        let sink = MemorySink::new();
        let listener: Arc<dyn DeliveryListener> = Arc::new(Count(Mutex::new(Vec::new())));
        sink.set_listener(Arc::downgrade(&listener));
        sink.set_capacity(Some(2));
        let r = Record {
            topic: "t",
            key: None,
            headers: Default::default(),
            value: b"v",
        };
        let id = |index| RecordId { segment: 1, index };
        assert_eq!(sink.send_spooled(&r, id(0)), Ok(()));
        assert_eq!(sink.send_spooled(&r, id(1)), Ok(()));
        assert_eq!(sink.send_spooled(&r, id(2)), Err(SendRefused::Full));
        assert_eq!(sink.report(Delivery::Acked), 2);
        assert_eq!(sink.pending(), 0);
        assert_eq!(sink.sent().len(), 2);
    }
}
