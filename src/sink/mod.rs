//! Where accepted events go. The pipeline and the spool decide topic, key
//! and headers; a sink only sends ([`Sink`]): [`kafka::KafkaSink`] in the
//! gateway, [`memory::MemorySink`] in unit tests and benches.
//!
//! Outcomes of spooled records come back through a [`DeliveryListener`]
//! (the spool), keyed by the [`RecordId`] given at send time.

pub mod kafka;
pub mod memory;

/// One record as it is produced (and as the spool stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub headers: Vec<(&'a str, Option<&'a [u8]>)>,
    pub value: &'a [u8],
}

/// Where a spooled record lives: its segment and its index in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RecordId {
    pub segment: u64,
    pub index: u32,
}

/// What became of one spooled record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The broker acknowledged it.
    Acked,
    /// It failed in a way a later attempt can fix (message timeout, broker
    /// away, leader change): it stays on the spool and is produced again.
    Retry,
    /// It can never be delivered (e.g. larger than the broker accepts).
    Permanent,
}

/// Receives the outcome of every record sent with [`Sink::send_spooled`].
pub trait DeliveryListener: Send + Sync {
    fn delivered(&self, id: RecordId, outcome: Delivery);
}

/// Why a record could not be handed to the sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendRefused {
    /// The sink's queue has no room now; try again later.
    Full,
    /// The record can never be sent (too large, unknown topic name…).
    Permanent,
}

/// A destination for spooled records.
pub trait Sink: Send + Sync {
    /// Hands one record over without waiting for the broker; its outcome
    /// reaches the listener later. Counts nothing itself.
    fn send_spooled(&self, record: &Record<'_>, id: RecordId) -> Result<(), SendRefused>;

    /// Whether replaying now makes sense (the broker was verified and
    /// production is not paused).
    fn can_replay(&self) -> bool;
}
