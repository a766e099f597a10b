//! The opt-out (suppression) list: the visitors who asked not to be
//! tracked, shared by every gateway instance and kept across restarts.
//!
//! Storage is a compacted Kafka topic (`privacy.optout_topic`, created by
//! the gateway with `cleanup.policy=compact`). Record key
//! `<kind>@<scope>:sha256:<digest of the id>`: the scope is the
//! source the opt-out was taken for, and an entry suppresses that source's
//! events only. The id itself is never written: the key holds its SHA-256
//! (`anon@web:sha256:<64 hex>`), and so does the list in memory, so an
//! e-mail address used as an id never reaches the topic (lookups hash the
//! event's ids, allocation-free). Keys of the older, unscoped form
//! (`anon:<id>`) are still read, hashed, and apply to every source (scope
//! [`SCOPE_ALL`]), as they did when written. Value `{"optedOut":true,"at":…,"proofs":[…]}` for an opt-out, a
//! tombstone (no value) for an opt-in, so compaction eventually forgets the
//! id altogether; `{"optedOut":false}` is read as an opt-in too. Records of
//! one key share a partition and are applied in offset order, so the list
//! is last-write-wins per key whether or not the broker compacts.
//!
//! Ids are hashed in the form they are compared in (`privacy::ids`: e-mail
//! addresses and UUIDs without case, surrounding whitespace trimmed), so
//! one opt-out holds for every spelling of the id; an entry written before
//! ids were normalised still holds for the spelling it was taken with.
//!
//! `proofs` are the SHA-256 of the proof nonces of the browsers that opted
//! the id out (each holds its nonce in an `HttpOnly` cookie). Opting an id
//! back in needs the source's server key, or the cookie of one of the
//! browsers that opted it out: see [`OptOutList::plan_opt_in`]. An empty
//! list means only the server key may. `"by"` says which key added the
//! entry (`public` or `server`).
//!
//! Bounds ([`Bounds`]) apply only to entries the public write key adds: a
//! share per source, counted from the list itself (so every instance and
//! every restart counts the same), and a number per client address group
//! and window, counted on the instance that takes the opt-out. A refused
//! opt-out ([`OptOutError::SourceFull`], [`OptOutError::AddressFull`]) is
//! answered with its own code and metric, never dropped. Server-key
//! opt-outs are never refused. Records read from the topic always apply,
//! so an opt-out another instance recorded is never lost.
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
//!
//! Layout: `keys` (record keys, values and the digests they carry), `list`
//! (the in-memory list and its per-source bound), `address` (the
//! per-address bound), `writer` (records to the topic), `follower` (the
//! thread that loads and follows the topic).

use rdkafka::error::KafkaError;

mod address;
mod follower;
mod keys;
mod list;
#[cfg(test)]
mod tests;
mod writer;

pub use address::address_group;
pub use follower::{spawn_follower, FollowerConfig};
pub use keys::{
    id_digest, parse_key, proof_hash, record_key, record_value, AddedBy, IdDigest, IdDigests,
    IdKind, Proof, ProofHash,
};
pub use list::{Bounds, OptOutList, PlannedOptOut};
pub use writer::OptOutWriter;

/// Kind name of an `anonymousId` in a record key.
pub const KIND_ANON: &str = "anon";
/// Kind name of a `userId` in a record key.
pub const KIND_USER: &str = "user";
/// The scope of entries that apply to every source: those of records
/// written before opt-outs were scoped (key `anon:<id>`). Defined in
/// `config`, which refuses it as a source id.
pub use crate::config::SCOPE_ALL;
/// Most browser proofs one entry keeps; from one more browser on, the
/// newest proof takes the place of the previous newest (the first stays).
pub const MAX_PROOFS: usize = 4;

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
    #[error("the source's share of the opt-out list is full")]
    SourceFull,
    #[error("this client address added its share of opt-outs for now")]
    AddressFull { retry_after_secs: u32 },
    #[error("opting in needs the visitor's opt-out cookie or the server key")]
    ProofRequired,
    #[error("the opt-out list is not loaded yet")]
    Loading,
}
