//! Where accepted events go. Routing decides topic, key and headers; a
//! sink only sends ([`Sink`]): [`kafka::KafkaSink`] in the gateway,
//! [`memory::MemorySink`] in unit tests, benches and fuzz targets, which
//! run the real pipeline (privacy included) without a broker.
//!
//! Outcomes of spooled records come back through a [`DeliveryListener`]
//! (the spool), keyed by the [`RecordId`] given at send time.

use std::borrow::Cow;

pub mod kafka;
pub mod memory;

pub use kafka::SinkError;

/// The gateway's name and version: the Kafka client id, and the
/// `producer` header of every record.
pub const PRODUCER_VERSION: &str = concat!("trackgate/", env!("CARGO_PKG_VERSION"));

/// One record header: name and value.
pub type Header<'a> = (&'a str, Option<&'a [u8]>);

/// One record as it is produced (and as the spool stores it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    /// Borrowed from routing on the way in; owned when read back from the
    /// spool.
    pub headers: Cow<'a, [Header<'a>]>,
    pub value: &'a [u8],
}

/// Which kind of record a send is, for the accounting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// An accepted event on its raw topic.
    Event,
    /// A rejected event on the invalid topic.
    Invalid,
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

/// Where records go: spooled ones (replayed in order, outcomes reported to
/// the spool) and the pipeline's own (spool off, and the invalid topic).
pub trait Sink: Send + Sync {
    /// Hands one record of the pipeline over without waiting for the
    /// broker; the sink counts its delivery (`kind` says in which ledger).
    fn send(&self, record: &Record<'_>, kind: RecordKind) -> Result<(), SinkError>;

    /// Whether a request of `records` records holding `bytes` bytes can be
    /// taken whole right now (spool off: the producer queue has room and
    /// production is not paused).
    fn has_room(&self, records: u64, bytes: u64) -> bool;

    /// `n` accepted records were appended to the spool: in flight from now.
    fn count_spooled(&self, n: u64);

    /// Hands one record over without waiting for the broker; its outcome
    /// reaches the listener later. Counts nothing itself.
    fn send_spooled(&self, record: &Record<'_>, id: RecordId) -> Result<(), SendRefused>;

    /// Whether replaying now makes sense (the broker was verified and
    /// production is not paused).
    fn can_replay(&self) -> bool;
}
