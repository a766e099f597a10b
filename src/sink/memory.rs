//! An in-memory sink for unit tests and benches: it keeps what it was sent
//! and reports outcomes when told to, so the spool's bookkeeping runs
//! without a broker.

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::{Delivery, DeliveryListener, Record, RecordId, SendRefused, Sink};

/// A record the memory sink was given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentRecord {
    pub id: RecordId,
    pub topic: String,
    pub key: Option<Vec<u8>>,
    pub value: Vec<u8>,
}

#[derive(Debug, Default)]
struct Inner {
    sent: Vec<SentRecord>,
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

    /// Everything sent so far, in order.
    pub fn sent(&self) -> Vec<SentRecord> {
        self.lock().sent.clone()
    }

    pub fn pending(&self) -> usize {
        self.lock().pending.len()
    }

    /// Reports `outcome` for every unreported record, oldest first.
    pub fn report(&self, outcome: Delivery) -> usize {
        let ids = std::mem::take(&mut self.lock().pending);
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
        ids.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Sink for MemorySink {
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
            headers: vec![],
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
