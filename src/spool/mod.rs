//! The spool: a local write-ahead log of accepted records, so that an event
//! answered 200 reaches Kafka through broker outages and gateway crashes.
//!
//! Contract. A request's records are framed ([`frame`]) and appended to the
//! newest segment file ([`segment`]) with one `write(2)` *before* the client
//! is answered: a process crash cannot lose them, and `spool.fsync` bounds
//! what a machine crash can (`interval`: the last `fsync_interval_ms`;
//! `always`: nothing, the answer waits for a group-committed fsync). A
//! record leaves the spool only once the broker acknowledged it: a segment
//! file is deleted when every record in it is acknowledged. The bytes
//! produced are the bytes spooled (the sink reads them out of the frame).
//!
//! Write-ahead always (decided by measurement, see the README's spool
//! section): every record goes through the spool, and in the normal case the
//! writer hands it to the sink straight from the frame buffer it just wrote,
//! so the file is never read back. Only records the producer refused (queue
//! full) or reported failed (message timeout, broker errors), and records
//! found at start, are read back and produced again by the replayer thread,
//! in spool order ([`ledger`] explains how order per visitor is kept).
//!
//! Admission. A request first reserves room for its records
//! ([`Spool::reserve`]); no room means 503 + `Retry-After` for the whole
//! request, before any event is counted.
//!
//! Restarts. Acknowledged prefixes of segments are checkpointed to the
//! `acked` file with every fsync round; at start, records past a segment's
//! checkpoint are produced again, so only records in flight (or acknowledged
//! within the last round) at a crash can be duplicated; consumers drop them
//! by `messageId`. A torn or corrupt tail is cut off and counted.

pub mod frame;
pub mod ledger;
pub mod segment;
mod worker;

/// The `[spool]` section: it lives in `config` with every other section;
/// this path stays for the code that names it here.
pub mod config {
    pub use crate::config::{FsyncPolicy, SpoolConfig};
}

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::config::{FsyncPolicy, SpoolConfig};
use ledger::{Ledger, Mode};
use segment::{Slot, Writer};

use crate::metrics;
use crate::sink::{Delivery, DeliveryListener, RecordId, SendRefused, Sink};

/// Name of the acknowledgement checkpoint file in the spool directory.
const CHECKPOINT: &str = "acked";
/// Name of the lock file that keeps two gateways off one spool.
const LOCK: &str = "lock";

#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    #[error("spool {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("spool directory {0} is in use by another process")]
    Locked(String),
    #[error("the spool is full")]
    Full,
    #[error("the spool is closed")]
    Closed,
}

impl SpoolError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> SpoolError {
        SpoolError::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// What the spool found at start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Recovered {
    pub segments: u64,
    /// Records not acknowledged before the last stop: produced again.
    pub records: u64,
    /// Frames skipped as corrupt or torn.
    pub corrupt: u64,
    /// Bytes cut off torn tails.
    pub torn_bytes: u64,
}

/// The frames of one request, built by the pipeline.
#[derive(Debug, Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    /// Each record's frame in `buf`, with its write time.
    frames: Vec<(std::ops::Range<usize>, u64)>,
    writer: frame::FrameWriter,
}

impl Batch {
    pub fn new() -> Batch {
        Batch::default()
    }

    /// A batch with room for `bytes` of frames and `records` records, so
    /// that writing a request's records does not grow (and copy) it.
    pub fn with_capacity(bytes: usize, records: usize) -> Batch {
        Batch {
            buf: Vec::with_capacity(bytes),
            frames: Vec::with_capacity(records),
            writer: frame::FrameWriter::default(),
        }
    }

    /// Starts a record; append its value to `self.buf`, then call
    /// [`Batch::finish_record`] (or [`Batch::abandon_record`]).
    pub fn begin_record(
        &mut self,
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        self.writer
            .begin(&mut self.buf, topic, key, headers, now_ms());
    }

    pub fn finish_record(&mut self) {
        let range = self.writer.finish(&mut self.buf);
        self.frames.push((range, now_ms()));
    }

    pub fn abandon_record(&mut self) {
        self.writer.abandon(&mut self.buf);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn bytes(&self) -> u64 {
        self.buf.len() as u64
    }
}

/// Room held for a request while its records are prepared.
#[must_use]
pub struct Reservation<'a> {
    spool: &'a Spool,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.spool.state().reserved -= self.bytes;
        }
    }
}

/// A batch that is on the spool; [`Appended::durable`] waits for its fsync
/// when `spool.fsync = "always"`.
pub struct Appended {
    records: usize,
    wait_for: Option<(tokio::sync::watch::Receiver<u64>, u64)>,
}

impl Appended {
    pub fn records(&self) -> usize {
        self.records
    }

    /// Resolves once the batch is as durable as the policy promises.
    pub async fn durable(self) -> Result<(), SpoolError> {
        let Some((mut rx, generation)) = self.wait_for else {
            return Ok(());
        };
        rx.wait_for(|synced| *synced >= generation)
            .await
            .map(|_| ())
            .map_err(|_| SpoolError::Closed)
    }
}

/// Mutable state behind one lock: appends, acknowledgements and replay
/// never interleave.
struct State {
    ledger: Ledger,
    writer: Option<Writer>,
    next_segment: u64,
    /// Bytes of every segment file.
    disk_bytes: u64,
    /// Bytes held by requests being prepared.
    reserved: u64,
    /// Appends so far (compared with the synced count for `always`).
    written: u64,
    /// Segment files to fsync (a closed writer's) and to delete.
    to_sync: Vec<std::fs::File>,
    to_delete: Vec<u64>,
    /// Low-water marks changed since the last checkpoint.
    checkpoint_dirty: bool,
    closed: bool,
}

/// Gauges and counters the admin listener reads without the lock.
#[derive(Debug, Default)]
pub struct SpoolStats {
    pub bytes: AtomicU64,
    pub records: AtomicU64,
    pub recovered: AtomicU64,
    pub replayed: AtomicU64,
    pub delivered: AtomicU64,
    pub undeliverable: AtomicU64,
}

/// See the module docs.
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    state: Mutex<State>,
    sink: Arc<dyn Sink>,
    /// Wakes the replayer (work to do) and the syncer (`always`: bytes to sync).
    wake: Condvar,
    synced: tokio::sync::watch::Sender<u64>,
    stop: AtomicBool,
    stats: SpoolStats,
    _lock: std::fs::File,
}

impl Spool {
    /// Opens (creating) the spool directory, recovers what a previous run
    /// left, and prepares to replay it. Does not start the threads
    /// ([`Spool::start`]).
    pub fn open(
        config: &SpoolConfig,
        sink: Arc<dyn Sink>,
    ) -> Result<(Arc<Spool>, Recovered), SpoolError> {
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(|e| SpoolError::io(&dir, e))?;
        let lock_path = dir.join(LOCK);
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(|e| SpoolError::io(&lock_path, e))?;
        if !try_lock(&lock) {
            return Err(SpoolError::Locked(dir.display().to_string()));
        }

        let checkpoint = worker::read_checkpoint(&dir.join(CHECKPOINT));
        let mut ledger = Ledger::default();
        let mut rec = Recovered::default();
        let mut disk_bytes = 0;
        let ids = segment::list(&dir)?;
        let mut to_delete = Vec::new();
        for &id in &ids {
            let path = segment::path(&dir, id);
            let scanned = segment::scan(&path)?;
            rec.corrupt += scanned.corrupt;
            rec.torn_bytes += scanned.torn_bytes;
            if scanned.corrupt > 0 {
                tracing::error!(segment = %path.display(), corrupt = scanned.corrupt, torn_bytes = scanned.torn_bytes, "spool: skipped corrupt or torn records");
            }
            let first = scanned.first_written_ms.unwrap_or_else(now_ms);
            for slot in &scanned.slots {
                ledger.push(id, *slot, first);
            }
            if let Some(seg) = ledger.segments.get_mut(&id) {
                seg.bytes = scanned.len;
            }
            if let Some(lw) = checkpoint.get(&id) {
                ledger.restore_low_water(id, *lw);
            }
            if ledger.seal(id) || scanned.slots.is_empty() {
                ledger.segments.remove(&id);
                to_delete.push(id);
            } else {
                rec.segments += 1;
                disk_bytes += scanned.len;
            }
        }
        rec.records = ledger.open;
        if let Some((&first, _)) = ledger.segments.iter().next() {
            ledger.mode = Mode::Replay(RecordId {
                segment: first,
                index: 0,
            });
        }
        metrics::spool_recovered(rec.records, rec.corrupt);
        // Never reuse an id the checkpoint may still name.
        let next_segment = ids
            .iter()
            .chain(checkpoint.keys())
            .max()
            .map_or(1, |l| l + 1);
        let (synced, _) = tokio::sync::watch::channel(0);
        let spool = Arc::new(Spool {
            dir,
            config: config.clone(),
            state: Mutex::new(State {
                ledger,
                writer: None,
                next_segment,
                disk_bytes,
                reserved: 0,
                written: 0,
                to_sync: Vec::new(),
                to_delete,
                checkpoint_dirty: true,
                closed: false,
            }),
            sink,
            wake: Condvar::new(),
            synced,
            stop: AtomicBool::new(false),
            stats: SpoolStats::default(),
            _lock: lock,
        });
        spool.stats.recovered.store(rec.records, Ordering::Relaxed);
        spool.publish(&spool.state());
        Ok((spool, rec))
    }

    /// Starts the replayer and syncer threads; they run until [`Spool::close`].
    pub fn start(self: &Arc<Spool>) -> worker::Workers {
        worker::start(self.clone())
    }

    pub fn config(&self) -> &SpoolConfig {
        &self.config
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn stats(&self) -> &SpoolStats {
        &self.stats
    }

    /// Holds `bytes` for a request, or `Full` when the spool cannot take
    /// them as a whole.
    pub fn reserve(&self, bytes: u64) -> Result<Reservation<'_>, SpoolError> {
        let mut st = self.state();
        if st.closed {
            return Err(SpoolError::Closed);
        }
        if st.disk_bytes + st.reserved + bytes > self.config.max_bytes {
            return Err(SpoolError::Full);
        }
        st.reserved += bytes;
        Ok(Reservation { spool: self, bytes })
    }

    /// Whether a request of `bytes` would fit now (readiness).
    pub fn has_room(&self, bytes: u64) -> bool {
        let st = self.state();
        !st.closed && st.disk_bytes + st.reserved + bytes <= self.config.max_bytes
    }

    /// Appends a request's records with one write and, unless replay is
    /// under way, hands them to the sink in order. The reservation is
    /// released (the bytes now count as written).
    pub fn append(
        &self,
        batch: &Batch,
        reservation: Reservation<'_>,
    ) -> Result<Appended, SpoolError> {
        let mut st = self.state();
        // The reservation's bytes are released here, under the same lock.
        st.reserved -= reservation.bytes;
        std::mem::forget(reservation);
        if st.closed {
            return Err(SpoolError::Closed);
        }
        if batch.is_empty() {
            return Ok(Appended {
                records: 0,
                wait_for: None,
            });
        }
        if st.disk_bytes + st.reserved + batch.bytes() > self.config.max_bytes {
            return Err(SpoolError::Full);
        }
        self.writer_for(&mut st)?;
        let segment_id = st.writer.as_ref().map_or(0, |w| w.id);
        let appended = st.writer.as_mut().map(|w| w.append(&batch.buf));
        let offset = match appended {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                // Start a fresh segment next time: this one may be damaged.
                self.roll(&mut st);
                return Err(SpoolError::io(&segment::path(&self.dir, segment_id), e));
            }
            None => return Err(SpoolError::Closed),
        };
        st.disk_bytes += batch.bytes();
        st.written += 1;
        let mut ids = Vec::with_capacity(batch.len());
        for (range, at) in &batch.frames {
            let slot = Slot {
                offset: (offset + range.start as u64) as u32,
                len: range.len() as u32,
            };
            ids.push(st.ledger.push(segment_id, slot, *at));
        }
        if st.ledger.mode == Mode::Direct && !self.sink.can_replay() {
            // The broker is away (or the producer full): keep the records on
            // disk only, rather than in the producer's memory where they
            // would time out; the replayer sends them when it can.
            if let Some(first) = ids.first() {
                st.ledger.replay_from(*first);
            }
        }
        if st.ledger.mode == Mode::Direct {
            for (i, (range, _)) in batch.frames.iter().enumerate() {
                if !self.produce(&mut st, ids[i], &batch.buf[range.clone()]) {
                    break;
                }
            }
        }
        let generation = st.written;
        self.publish(&st);
        drop(st);
        if self.config.fsync == FsyncPolicy::Always {
            self.wake.notify_all();
        }
        Ok(Appended {
            records: ids.len(),
            wait_for: (self.config.fsync == FsyncPolicy::Always)
                .then(|| (self.synced.subscribe(), generation)),
        })
    }

    /// Hands one framed record to the sink; false when the sink refused it
    /// for now (the ledger then replays from it).
    fn produce(&self, st: &mut State, id: RecordId, framed: &[u8]) -> bool {
        let record = match frame::decode(framed) {
            Ok((f, _)) => f.record,
            Err(_) => {
                // Our own frame or one that passed its checksum: cannot
                // happen; give the record up rather than loop on it.
                self.give_up(st, id);
                return true;
            }
        };
        match self.sink.send_spooled(&record, id) {
            Ok(()) => {
                st.ledger.set_in_flight(id);
                true
            }
            Err(SendRefused::Full) => {
                st.ledger.replay_from(id);
                self.wake.notify_all();
                false
            }
            Err(SendRefused::Permanent) => {
                self.give_up(st, id);
                true
            }
        }
    }

    fn give_up(&self, st: &mut State, id: RecordId) {
        tracing::error!(
            segment = id.segment,
            index = id.index,
            "spool: a record can never be delivered; dropped from the spool"
        );
        self.stats.undeliverable.fetch_add(1, Ordering::Relaxed);
        metrics::spool_undeliverable();
        metrics::delivery(false, false, 1);
        self.settle(st, id);
    }

    fn settle(&self, st: &mut State, id: RecordId) {
        let settled = st.ledger.done(id);
        if settled.counted {
            st.checkpoint_dirty = true;
        }
        if let Some(seg) = settled.finished_segment {
            if let Some(l) = st.ledger.segments.remove(&seg) {
                st.disk_bytes -= l.bytes;
            }
            st.to_delete.push(seg);
        }
    }

    /// The writer to append to, rolling to a new segment past its size.
    fn writer_for(&self, st: &mut State) -> Result<(), SpoolError> {
        if st
            .writer
            .as_ref()
            .is_some_and(|w| w.len() >= self.config.segment_bytes)
        {
            self.roll(st);
        }
        if st.writer.is_none() {
            let id = st.next_segment;
            let w = Writer::create(&self.dir, id)?;
            st.next_segment += 1;
            st.writer = Some(w);
        }
        Ok(())
    }

    /// Closes the current segment (fsync'd by the syncer).
    fn roll(&self, st: &mut State) {
        if let Some(w) = st.writer.take() {
            if let Ok(f) = w.sync_handle() {
                st.to_sync.push(f);
            }
            if st.ledger.seal(w.id) {
                if let Some(l) = st.ledger.segments.remove(&w.id) {
                    st.disk_bytes -= l.bytes;
                }
                st.to_delete.push(w.id);
            } else if w.is_empty() {
                st.to_delete.push(w.id);
            }
        }
    }

    /// Refuses every further append (shutdown: after the last request);
    /// acknowledgements are still taken.
    pub fn close_appends(&self) {
        let mut st = self.state();
        st.closed = true;
        self.roll(&mut st);
    }

    /// Closes the spool: no more appends; the threads finish their round
    /// (last fsync, checkpoint and deletions). Undelivered records stay on
    /// disk for the next start.
    pub fn close(&self) {
        let mut st = self.state();
        st.closed = true;
        self.roll(&mut st);
        // Set under the lock the threads read it under before they wait, so
        // none can miss the notification and sleep out its timeout.
        self.stop.store(true, Ordering::Release);
        drop(st);
        self.wake.notify_all();
    }

    /// Records not yet acknowledged.
    pub fn open_records(&self) -> u64 {
        self.state().ledger.open
    }

    /// Age of the oldest unacknowledged record (at segment granularity).
    pub fn oldest_age(&self) -> Option<Duration> {
        let oldest = self.state().ledger.oldest_open()?;
        Some(Duration::from_millis(now_ms().saturating_sub(oldest)))
    }

    /// Whether the replayer has records to produce.
    pub fn replaying(&self) -> bool {
        matches!(self.state().ledger.mode, Mode::Replay(_))
    }

    fn publish(&self, st: &State) {
        self.stats.bytes.store(st.disk_bytes, Ordering::Relaxed);
        self.stats.records.store(st.ledger.open, Ordering::Relaxed);
    }

    /// Reports gauges for `/metrics`.
    pub fn publish_gauges(&self) {
        metrics::spool_gauges(
            self.stats.bytes.load(Ordering::Relaxed),
            self.stats.records.load(Ordering::Relaxed),
            self.oldest_age().map_or(0.0, |d| d.as_secs_f64()),
        );
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl DeliveryListener for Spool {
    fn delivered(&self, id: RecordId, outcome: Delivery) {
        let mut st = self.state();
        match outcome {
            Delivery::Acked => {
                if st
                    .ledger
                    .state(id)
                    .is_some_and(|s| s != ledger::RecState::Done)
                {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    metrics::delivery(true, false, 1);
                }
                self.settle(&mut st, id);
            }
            Delivery::Retry => {
                if st.ledger.retry(id) {
                    metrics::spool_retry();
                    self.wake.notify_all();
                }
            }
            Delivery::Permanent => self.give_up(&mut st, id),
        }
        self.publish(&st);
    }
}

/// An exclusive advisory lock on `file`, held until it is closed (also when
/// the process dies), so a crashed gateway never leaves a stale lock.
fn try_lock(file: &std::fs::File) -> bool {
    use std::os::unix::io::AsRawFd;
    // SAFETY: `flock` only reads the descriptor, which `file` keeps open
    // for the duration of the call.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod tests;
