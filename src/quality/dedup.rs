//! Duplicate suppression on client-sent `messageId`s, one filter per source.
//!
//! A duplicate is recognised by what the client sent ([`ClientIds`]): its
//! `messageId` together with the event's visitor ids (`userId`,
//! `anonymousId`), taken before the privacy stage changes anything. So a
//! `messageId` the scrubber pseudonymises, or one that is an e-mail
//! address, never merges two events; and knowing (or predicting) another
//! visitor's `messageId`s is not enough to have their events dropped, the
//! visitor's own id must match too. A retry carries the same ids. The key
//! is a keyed hash with a random key per source's filter (the source is
//! part of the key through the filter it lives in).
//!
//! SDKs and proxies retry: a request whose answer was lost is sent again with
//! the same `messageId`s. The filter remembers the ids it saw for a bounded
//! time window and within a bounded memory, whichever ends first:
//!
//! - **Exact recent window** (`exact_window_secs`, default 1 h): the keyed
//!   64-bit hashes of the ids, in one hash set for look-ups plus one `Vec` per
//!   time bucket (a twelfth of the window) that says when each can leave. An
//!   id seen inside this window is always recognised (no false negatives);
//!   a false positive needs a 64-bit collision of the keyed hash (about
//!   `n / 2^64` per look-up).
//! - **Probabilistic older window** (up to `window_secs`, default 24 h): when
//!   a bucket leaves the exact window its ids go into a Bloom filter slice
//!   (a blocked Bloom filter, `fastbloom`). There are at most
//!   [`BLOOM_SLICES`] slices, each covering an equal share of the rest of the
//!   window and sized from the memory bound; a slice that fills up early is
//!   sealed and a new one started, and the oldest slice is dropped when there
//!   are too many. Each slice gets `false_positive_rate / BLOOM_SLICES`, so a
//!   new id is wrongly called a duplicate with a probability at most about
//!   `false_positive_rate` (measured in `measured_false_positive_rate_*`).
//!
//! What it can miss (documented in the README): a retry that reaches another
//! gateway instance (filters are per process); a retry older than the window,
//! or older than what the memory bound lets it keep (under heavy traffic the
//! exact window shrinks first, then old Bloom slices are dropped); ids seen
//! before a restart. Only client-sent ids are checked: a gateway-generated
//! UUIDv7 is unique by construction.
//!
//! An id is recorded when the event is about to be produced; if the producer
//! then refuses it, [`DedupFilter::forget`] removes it again so that the
//! client's retry is not mistaken for a duplicate of an event that was lost.

use std::borrow::Cow;
use std::collections::{HashSet, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use crate::json::{Map, Value};

pub use crate::config::DedupConfig;
use fastbloom::BloomFilter;
use siphasher::sip::SipHasher13;

/// Time buckets in the exact window (ids leave it one bucket at a time).
pub const EXACT_BUCKETS: u64 = 12;
/// Bloom filter slices in the probabilistic window.
pub const BLOOM_SLICES: usize = 8;
/// Share of `max_memory_mb` given to the exact window (the rest goes to the
/// Bloom slices).
const EXACT_SHARE: f64 = 0.5;
/// Bytes one id costs in the exact window: 8 in its bucket's `Vec`, and in
/// the hash set 8 plus one control byte at a load factor between 7/16 and
/// 7/8 (measured with [`DedupFilter::memory_bytes`]: about 24 on average).
pub const EXACT_BYTES_PER_ID: usize = 24;

/// The keys are already uniform keyed hashes: hashing them again is waste.
#[derive(Default)]
struct IdentityHasher(u64);

impl Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8) | u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

type KeySet = HashSet<u64, BuildHasherDefault<IdentityHasher>>;

/// The ids a duplicate is recognised by, as the client sent them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientIds<'a> {
    pub message_id: Cow<'a, str>,
    pub user_id: Option<Cow<'a, str>>,
    pub anonymous_id: Option<Cow<'a, str>>,
}

impl<'a> ClientIds<'a> {
    /// The ids of a validated event (its identity fields already strings),
    /// when the client sent a `messageId`. Borrowed text is shared, not
    /// copied.
    pub fn of(body: &Map<'a>) -> Option<ClientIds<'a>> {
        let text = |key: &str| match body.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        Some(ClientIds {
            message_id: text("messageId")?,
            user_id: text("userId"),
            anonymous_id: text("anonymousId"),
        })
    }
}

/// Between the ids in the hashed text: a byte no UTF-8 text holds, so
/// `("ab", "c")` and `("a", "bc")` hash apart.
const ID_SEPARATOR: u8 = 0xff;
/// In place of an absent id (also not UTF-8): absent differs from empty.
const ID_ABSENT: u8 = 0xfe;

struct Bucket {
    start: u64,
    keys: Vec<u64>,
}

struct Slice {
    bloom: BloomFilter,
    oldest: u64,
    newest: u64,
    items: usize,
}

/// What the filter holds, for metrics and the memory figure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DedupStats {
    pub exact_ids: usize,
    pub bloom_ids: usize,
    pub bloom_slices: usize,
    /// Bytes of the Bloom slices alone.
    pub bloom_bytes: usize,
    pub memory_bytes: usize,
}

/// One source's duplicate filter. Times are seconds since the epoch.
pub struct DedupFilter {
    key: (u64, u64),
    seed: u128,
    exact: KeySet,
    buckets: VecDeque<Bucket>,
    slices: VecDeque<Slice>,
    window: u64,
    exact_window: u64,
    bucket_secs: u64,
    slice_span: u64,
    max_exact: usize,
    slice_bits: usize,
    slice_hashes: u32,
    slice_capacity: usize,
}

impl DedupFilter {
    /// A filter with a random hash key (ids cannot be crafted to collide).
    pub fn new(cfg: &DedupConfig) -> DedupFilter {
        let mut buf = [0u8; 32];
        if getrandom::fill(&mut buf).is_err() {
            // No OS randomness: a time-derived key still differs per process.
            let t = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or_default();
            buf[..16].copy_from_slice(&t.to_le_bytes());
        }
        let word = |i: usize| {
            let mut w = [0u8; 8];
            w.copy_from_slice(&buf[i * 8..i * 8 + 8]);
            u64::from_le_bytes(w)
        };
        let seed = (u128::from(word(2)) << 64) | u128::from(word(3));
        DedupFilter::with_key(cfg, (word(0), word(1)), seed)
    }

    /// A filter with a fixed key (tests and measurements).
    pub fn with_key(cfg: &DedupConfig, key: (u64, u64), seed: u128) -> DedupFilter {
        let budget = (cfg.max_memory_mb as f64) * 1024.0 * 1024.0;
        let max_exact = ((budget * EXACT_SHARE) as usize / EXACT_BYTES_PER_ID).max(1);
        let slice_bits = (((budget * (1.0 - EXACT_SHARE)) * 8.0) as usize / BLOOM_SLICES).max(512);
        let per_slice_fp = cfg.false_positive_rate / BLOOM_SLICES as f64;
        let ln2 = std::f64::consts::LN_2;
        let bits_per_id = -per_slice_fp.ln() / (ln2 * ln2);
        let slice_hashes = (bits_per_id * ln2).round().clamp(1.0, 64.0) as u32;
        let slice_capacity = ((slice_bits as f64 / bits_per_id) as usize).max(1);
        let bucket_secs = (cfg.exact_window_secs / EXACT_BUCKETS).max(1);
        let older = cfg.window_secs.saturating_sub(cfg.exact_window_secs);
        let slice_span = (older / (BLOOM_SLICES as u64 - 1)).max(1);
        DedupFilter {
            key,
            seed,
            exact: KeySet::default(),
            buckets: VecDeque::new(),
            slices: VecDeque::new(),
            window: cfg.window_secs,
            exact_window: cfg.exact_window_secs,
            bucket_secs,
            slice_span,
            max_exact,
            slice_bits,
            slice_hashes,
            slice_capacity,
        }
    }

    /// The keyed hash of a `messageId` alone.
    pub fn key_of(&self, message_id: &str) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(message_id.as_bytes());
        h.finish()
    }

    /// The keyed hash of an event's ids: what its duplicates share.
    pub fn key_of_ids(&self, ids: &ClientIds<'_>) -> u64 {
        let mut h = SipHasher13::new_with_keys(self.key.0, self.key.1);
        h.write(ids.message_id.as_bytes());
        for id in [&ids.user_id, &ids.anonymous_id] {
            h.write_u8(ID_SEPARATOR);
            match id {
                Some(id) => h.write(id.as_bytes()),
                None => h.write_u8(ID_ABSENT),
            }
        }
        h.finish()
    }

    /// Whether `key` was seen; if not, records it as seen at `now`.
    pub fn check_and_insert(&mut self, key: u64, now: u64) -> bool {
        if self.seen(key, now) {
            return true;
        }
        self.exact.insert(key);
        let per_bucket = (self.max_exact / EXACT_BUCKETS as usize).max(1);
        match self.buckets.back_mut() {
            Some(b) if b.keys.len() < per_bucket => b.keys.push(key),
            // A burst fills the bucket before its time is up: a new one with
            // the same start keeps the memory bound retirable bucket by bucket.
            last => {
                let start = last.map_or(now - now % self.bucket_secs, |b| b.start);
                self.buckets.push_back(Bucket {
                    start,
                    keys: vec![key],
                });
            }
        }
        while self.exact.len() > self.max_exact && self.buckets.len() > 1 {
            // Over the memory bound: the exact window shrinks by a bucket.
            self.retire_oldest_bucket();
        }
        false
    }

    /// Whether `key` was seen, without recording it.
    pub fn seen(&mut self, key: u64, now: u64) -> bool {
        self.advance(now);
        self.exact.contains(&key) || self.slices.iter().any(|s| s.bloom.contains_hash(key))
    }

    /// Forgets a key recorded by [`check_and_insert`](Self::check_and_insert)
    /// (its event could not be produced). Keys still in the exact window
    /// only; the recent ones are always there.
    pub fn forget(&mut self, key: u64) {
        self.exact.remove(&key);
    }

    /// Moves time to `now`: starts a new bucket when due, retires buckets
    /// that left the exact window, drops slices that left the window.
    fn advance(&mut self, now: u64) {
        let start = now - now % self.bucket_secs;
        if !self.buckets.back().is_some_and(|b| start <= b.start) {
            self.buckets.push_back(Bucket {
                start,
                keys: Vec::new(),
            });
        }
        let exact_floor = now.saturating_sub(self.exact_window);
        while self
            .buckets
            .front()
            .is_some_and(|b| b.start + self.bucket_secs <= exact_floor)
        {
            self.retire_oldest_bucket();
        }
        let floor = now.saturating_sub(self.window);
        while self
            .slices
            .front()
            .is_some_and(|s| s.newest + self.bucket_secs <= floor)
        {
            self.slices.pop_front();
        }
    }

    fn retire_oldest_bucket(&mut self) {
        let Some(bucket) = self.buckets.pop_front() else {
            return;
        };
        for key in bucket.keys {
            if self.exact.remove(&key) {
                self.insert_old(key, bucket.start);
            }
        }
    }

    /// Adds a key retired from a bucket that started at `time` to the
    /// open slice, sealing it and starting another when it is full or its
    /// time span is over.
    fn insert_old(&mut self, key: u64, time: u64) {
        let open = self
            .slices
            .back()
            .is_some_and(|s| s.items < self.slice_capacity && time < s.oldest + self.slice_span);
        if !open {
            self.slices.push_back(Slice {
                bloom: BloomFilter::with_num_bits(self.slice_bits)
                    .seed(&self.seed)
                    .hashes(self.slice_hashes),
                oldest: time,
                newest: time,
                items: 0,
            });
            while self.slices.len() > BLOOM_SLICES {
                // Over the memory bound: the oldest ids are forgotten early.
                self.slices.pop_front();
            }
        }
        if let Some(s) = self.slices.back_mut() {
            s.items += 1;
            s.newest = s.newest.max(time);
            s.bloom.insert_hash(key);
        }
    }

    /// What the filter holds and roughly how much memory it takes.
    pub fn stats(&self) -> DedupStats {
        let ctrl = self.exact.capacity() + 16;
        let set_bytes = self.exact.capacity() * 8 + ctrl;
        let bucket_bytes: usize = self.buckets.iter().map(|b| b.keys.capacity() * 8).sum();
        let bloom_bytes: usize = self.slices.iter().map(|s| s.bloom.num_bits() / 8).sum();
        DedupStats {
            exact_ids: self.exact.len(),
            bloom_ids: self.slices.iter().map(|s| s.items).sum(),
            bloom_slices: self.slices.len(),
            bloom_bytes,
            memory_bytes: set_bytes + bucket_bytes + bloom_bytes,
        }
    }

    /// The exact window's capacity in ids under the memory bound.
    pub fn max_exact_ids(&self) -> usize {
        self.max_exact
    }

    /// Ids one Bloom slice takes before it is sealed.
    pub fn slice_capacity(&self) -> usize {
        self.slice_capacity
    }

    /// Seconds of the older window one Bloom slice covers.
    pub fn slice_span(&self) -> u64 {
        self.slice_span
    }
}

#[cfg(test)]
#[path = "dedup_tests.rs"]
mod tests;
