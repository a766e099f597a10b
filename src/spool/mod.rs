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
//! Identity. Every record carries a sequence number in its frame
//! ([`frame`]), assigned under the lock at append time; acknowledgements and
//! the checkpoint name sequence numbers, never positions.
//!
//! Restarts. Per segment, the sequence number below which every record was
//! acknowledged is checkpointed to the `acked-seq` file with every fsync
//! round; at start, records at or past it are produced again, so only
//! records in flight (or acknowledged within the last round) at a crash can
//! be duplicated; consumers drop them by `messageId`. Recovery (`recover`)
//! never cuts valid records: it resynchronises past damaged bytes
//! ([`segment`]), counts them and copies them to `quarantine/` for an
//! operator.
//!
//! Failing disks. A write, fsync or segment creation that fails (`ENOSPC`,
//! `EIO`…) fails its request (503 + `Retry-After`) and marks the spool
//! unhealthy (readiness reason `disk_full` or `spool_io_error`); while
//! unhealthy every request is refused up front, until the syncer's probe
//! (a small write and fsync in the spool directory) succeeds again. With
//! `fsync = "always"`, a request whose fsync round failed is answered 503.
//!
//! Every file operation goes through [`fs::SpoolFs`], so the model test
//! (`model.rs`) runs this code on a file system that crashes, tears, flips
//! bits and fails on demand.

pub mod frame;
pub mod fs;
pub mod ledger;
mod previous;
mod recover;
pub mod segment;
mod worker;

pub use worker::Workers;

/// The `[spool]` section: it lives in `config` with every other section;
/// this path stays for the code that names it here.
pub mod config {
    pub use crate::config::{FsyncPolicy, SpoolConfig};
}

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub use crate::config::{FsyncPolicy, SpoolConfig};
use fs::{OsFs, SpoolFile, SpoolFs};
use ledger::{Ledger, Mode};
use segment::{Slot, Writer};

use crate::metrics;
use crate::sink::{Delivery, DeliveryListener, RecordId, RecordKind, SendRefused, Sink};

/// Name of the acknowledgement checkpoint file in the spool directory
/// (`segment low_water_seq` lines).
const CHECKPOINT: &str = "acked-seq";
/// The positional checkpoint of the release before sequence numbers; read
/// to migrate its segments (`previous`), then removed.
const PREVIOUS_CHECKPOINT: &str = "acked";
/// Name of the lock file that keeps two gateways off one spool.
const LOCK: &str = "lock";
/// Directory (inside the spool directory) of damaged bytes found at start.
pub const QUARANTINE: &str = "quarantine";

/// Readiness reason while writes or fsyncs fail for lack of space.
pub const REASON_DISK_FULL: &str = "disk_full";
/// Readiness reason while writes or fsyncs fail otherwise (`EIO`…).
pub const REASON_IO_ERROR: &str = "spool_io_error";

const HEALTHY: u8 = 0;
const UNHEALTHY_IO: u8 = 1;
const UNHEALTHY_FULL: u8 = 2;

/// Failed sync rounds remembered for requests still waiting on them.
const FAILED_ROUNDS_KEPT: usize = 64;

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
    /// Writes or fsyncs fail (`disk_full` or `spool_io_error`).
    #[error("the spool cannot write: {0}")]
    Unhealthy(&'static str),
    /// The fsync round that covered this request failed.
    #[error("the spool could not sync the request to disk")]
    SyncFailed,
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
    /// Accepted events' records not acknowledged before the last stop:
    /// produced again.
    pub records: u64,
    /// Invalid-topic records not acknowledged before the last stop.
    pub invalid_records: u64,
    /// Frames skipped as damaged (corrupt or torn), as far as can be told.
    pub corrupt: u64,
    /// Bytes of damaged ranges at segment ends (writes torn by a crash).
    pub torn_bytes: u64,
    /// Bytes of every damaged range, copied to the quarantine directory.
    pub damaged_bytes: u64,
    /// Segments of the previous format rewritten in the current one.
    pub migrated: u64,
}

/// The frames of one request, built by the pipeline.
#[derive(Debug, Default)]
pub struct Batch {
    pub buf: Vec<u8>,
    /// Each record's frame in `buf`, with its write time and kind.
    frames: Vec<(std::ops::Range<usize>, u64, RecordKind)>,
    kind: Option<RecordKind>,
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
            kind: None,
            writer: frame::FrameWriter::default(),
        }
    }

    /// Starts a record; append its value to `self.buf`, then call
    /// [`Batch::finish_record`] (or [`Batch::abandon_record`]).
    pub fn begin_record(
        &mut self,
        kind: RecordKind,
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
    ) {
        self.kind = Some(kind);
        self.writer
            .begin(&mut self.buf, kind, topic, key, headers, now_ms());
    }

    pub fn finish_record(&mut self) {
        let range = self.writer.finish(&mut self.buf);
        let kind = self.kind.take().unwrap_or(RecordKind::Event);
        self.frames.push((range, now_ms(), kind));
    }

    pub fn abandon_record(&mut self) {
        self.writer.abandon(&mut self.buf);
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Accepted events' records (the rest are invalid-topic records).
    pub fn events(&self) -> usize {
        self.frames
            .iter()
            .filter(|f| f.2 == RecordKind::Event)
            .count()
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

/// What the syncer has done: appends up to `through` had their sync round;
/// the rounds in `failed` (generations `(after, through]`) failed.
#[derive(Debug, Clone, Default)]
pub struct Synced {
    through: u64,
    failed: VecDeque<(u64, u64)>,
}

impl Synced {
    /// The outcome for the append of `generation`, once its round ran.
    fn outcome(&self, generation: u64) -> Option<Result<(), SpoolError>> {
        if self.through < generation {
            return None;
        }
        let failed = self
            .failed
            .iter()
            .any(|(after, through)| *after < generation && generation <= *through);
        Some(if failed {
            Err(SpoolError::SyncFailed)
        } else {
            Ok(())
        })
    }
}

/// A batch that is on the spool; [`Appended::durable`] waits for its fsync
/// when `spool.fsync = "always"`.
pub struct Appended {
    records: usize,
    events: usize,
    wait_for: Option<(tokio::sync::watch::Receiver<Synced>, u64)>,
}

impl Appended {
    pub fn records(&self) -> usize {
        self.records
    }

    /// Accepted events' records among them.
    pub fn events(&self) -> usize {
        self.events
    }

    /// Resolves once the batch is as durable as the policy promises; an
    /// error when its fsync failed (the request must not be answered 200).
    pub async fn durable(self) -> Result<(), SpoolError> {
        let Some((mut rx, generation)) = self.wait_for else {
            return Ok(());
        };
        let synced = rx
            .wait_for(|s| s.through >= generation)
            .await
            .map_err(|_| SpoolError::Closed)?;
        synced.outcome(generation).unwrap_or(Ok(()))
    }

    /// The outcome without waiting: `None` while the sync round is to come.
    pub fn try_durable(&self) -> Option<Result<(), SpoolError>> {
        match &self.wait_for {
            None => Some(Ok(())),
            Some((rx, generation)) => rx.borrow().outcome(*generation),
        }
    }
}

/// Mutable state behind one lock: appends, acknowledgements and replay
/// never interleave.
struct State {
    ledger: Ledger,
    writer: Option<Writer>,
    next_segment: u64,
    /// Sequence number of the next record.
    next_seq: u64,
    /// Appends covered by the last sync round.
    synced_written: u64,
    /// Bytes of every segment file.
    disk_bytes: u64,
    /// Bytes held by requests being prepared.
    reserved: u64,
    /// Appends so far (compared with the synced count for `always`).
    written: u64,
    /// Segment files to fsync (a closed writer's) and to delete.
    to_sync: Vec<(u64, Arc<dyn SpoolFile>)>,
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
    /// Frames found damaged (at start, or when read back).
    pub corrupt: AtomicU64,
}

/// See the module docs.
pub struct Spool {
    dir: PathBuf,
    config: SpoolConfig,
    fs: Arc<dyn SpoolFs>,
    /// Salt of the segments this run creates (see `frame`).
    salt: u64,
    state: Mutex<State>,
    sink: Arc<dyn Sink>,
    /// Wakes the replayer (work to do) and the syncer (`always`: bytes to sync).
    wake: Condvar,
    synced: tokio::sync::watch::Sender<Synced>,
    /// `HEALTHY`, `UNHEALTHY_IO` or `UNHEALTHY_FULL`.
    health: AtomicU8,
    stop: AtomicBool,
    stats: SpoolStats,
    _lock: Option<std::fs::File>,
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
        Spool::open_on(config, sink, Arc::new(OsFs), Some(lock))
    }

    /// [`Spool::open`] on the file system `fs` (tests: a failing one),
    /// holding `lock` for as long as the spool lives.
    pub fn open_on(
        config: &SpoolConfig,
        sink: Arc<dyn Sink>,
        fs: Arc<dyn SpoolFs>,
        lock: Option<std::fs::File>,
    ) -> Result<(Arc<Spool>, Recovered), SpoolError> {
        let dir = config.dir.clone();
        fs.create_dir_all(&dir)
            .map_err(|e| SpoolError::io(&dir, e))?;
        let recover::Found {
            ledger,
            recovered: rec,
            disk_bytes,
            next_seq,
            next_segment,
            to_delete,
        } = recover::recover(&*fs, &dir)?;
        let (synced, _) = tokio::sync::watch::channel(Synced::default());
        let spool = Arc::new(Spool {
            dir,
            config: config.clone(),
            fs,
            salt: random_salt(),
            state: Mutex::new(State {
                ledger,
                writer: None,
                next_segment,
                next_seq,
                synced_written: 0,
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
            health: AtomicU8::new(HEALTHY),
            stop: AtomicBool::new(false),
            stats: SpoolStats::default(),
            _lock: lock,
        });
        spool.stats.recovered.store(rec.records, Ordering::Relaxed);
        spool.stats.corrupt.store(rec.corrupt, Ordering::Relaxed);
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
        if let Some(reason) = self.unhealthy() {
            return Err(SpoolError::Unhealthy(reason));
        }
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

    /// Why the spool cannot take writes now (`disk_full`,
    /// `spool_io_error`), if it cannot: a readiness reason.
    pub fn unhealthy(&self) -> Option<&'static str> {
        match self.health.load(Ordering::Acquire) {
            UNHEALTHY_FULL => Some(REASON_DISK_FULL),
            UNHEALTHY_IO => Some(REASON_IO_ERROR),
            _ => None,
        }
    }

    /// Marks the spool unhealthy after a failed write, fsync or create.
    fn failed(&self, op: &'static str, e: &std::io::Error) {
        let (state, reason) = if fs::is_disk_full(e) {
            (UNHEALTHY_FULL, REASON_DISK_FULL)
        } else {
            (UNHEALTHY_IO, REASON_IO_ERROR)
        };
        let before = self.health.swap(state, Ordering::AcqRel);
        metrics::spool_io_error(op, reason);
        if before != state {
            tracing::error!(op, error = %e, reason, "spool: cannot write; refusing requests until a write succeeds again");
        }
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
        batch: &mut Batch,
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
                events: 0,
                wait_for: None,
            });
        }
        if st.disk_bytes + st.reserved + batch.bytes() > self.config.max_bytes
            || batch.bytes() > segment::MAX_BATCH_BYTES
        {
            return Err(SpoolError::Full);
        }
        self.writer_for(&mut st, batch.bytes())?;
        let Some(w) = st.writer.as_ref() else {
            return Err(SpoolError::Closed);
        };
        let (segment_id, salt) = (w.id, w.salt);
        // Identity: sequence numbers are assigned here, under the lock, in
        // append order.
        let first_seq = st.next_seq;
        for (i, (range, _, _)) in batch.frames.iter().enumerate() {
            frame::stamp(&mut batch.buf[range.clone()], first_seq + i as u64, salt);
        }
        st.next_seq += batch.frames.len() as u64;
        let appended = st.writer.as_mut().map(|w| w.append(&batch.buf));
        let offset = match appended {
            Some(Ok(o)) => o,
            Some(Err(e)) => {
                self.failed("write", &e);
                // Start a fresh segment next time: this one may be damaged.
                self.roll(&mut st);
                return Err(SpoolError::io(&segment::path(&self.dir, segment_id), e));
            }
            None => return Err(SpoolError::Closed),
        };
        st.disk_bytes += batch.bytes();
        st.written += 1;
        let mut ids = Vec::with_capacity(batch.len());
        for (i, (range, at, kind)) in batch.frames.iter().enumerate() {
            let slot = Slot {
                offset: (offset + range.start as u64) as u32,
                len: range.len() as u32,
                seq: first_seq + i as u64,
                kind: *kind,
            };
            ids.push(st.ledger.push(segment_id, slot, *at));
        }
        if let Some(seg) = st.ledger.segments.get_mut(&segment_id) {
            seg.salt = salt;
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
            for (i, (range, _, _)) in batch.frames.iter().enumerate() {
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
            events: batch.events(),
            wait_for: (self.config.fsync == FsyncPolicy::Always)
                .then(|| (self.synced.subscribe(), generation)),
        })
    }

    /// Hands one framed record to the sink; false when the sink refused it
    /// for now (the ledger then replays from it).
    fn produce(&self, st: &mut State, id: RecordId, framed: &[u8]) -> bool {
        let salt = st.ledger.segments.get(&id.segment).map_or(0, |s| s.salt);
        let record = match frame::decode(framed, salt) {
            Ok((f, _)) => f.record,
            Err(e) => {
                // Verified when written or recovered: the bytes were damaged
                // on disk since. Counted, and settled rather than looped on.
                tracing::error!(segment = id.segment, index = id.index, error = %e, "spool: a record read back is damaged");
                self.stats.corrupt.fetch_add(1, Ordering::Relaxed);
                metrics::spool_recovered(0, 1, 0);
                self.settle(st, id);
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
        metrics::delivery(false, st.ledger.kind(id) == Some(RecordKind::Invalid), 1);
        self.settle(st, id);
    }

    fn settle(&self, st: &mut State, id: RecordId) {
        let settled = st.ledger.done(id);
        if settled.counted {
            st.checkpoint_dirty = true;
        }
        if let Some(seg) = settled.finished_segment {
            if let Some(l) = st.ledger.segments.remove(&seg) {
                st.disk_bytes = st.disk_bytes.saturating_sub(l.bytes);
            }
            st.to_delete.push(seg);
        }
    }

    /// The writer to append `bytes` to, rolling to a new segment past its
    /// size (or when positions would not fit 32 bits).
    fn writer_for(&self, st: &mut State, bytes: u64) -> Result<(), SpoolError> {
        if st.writer.as_ref().is_some_and(|w| {
            w.len() >= self.config.segment_bytes || w.len() + bytes > segment::MAX_FILE_BYTES
        }) {
            self.roll(st);
        }
        if st.writer.is_none() {
            let id = st.next_segment;
            // The id is used even if creation fails: a file may exist.
            st.next_segment += 1;
            match Writer::create(&*self.fs, &self.dir, id, self.salt) {
                Ok(w) => {
                    st.disk_bytes += w.len();
                    st.writer = Some(w);
                }
                Err((path, e)) => {
                    self.failed("create", &e);
                    let _ = self.fs.remove(&path);
                    return Err(SpoolError::io(&path, e));
                }
            }
        }
        Ok(())
    }

    /// Closes the current segment (fsync'd by the syncer).
    fn roll(&self, st: &mut State) {
        if let Some(w) = st.writer.take() {
            st.to_sync.push((w.id, w.file()));
            if st.ledger.seal(w.id) {
                if let Some(l) = st.ledger.segments.remove(&w.id) {
                    st.disk_bytes = st.disk_bytes.saturating_sub(l.bytes);
                }
                st.to_delete.push(w.id);
            } else if w.is_empty() {
                st.disk_bytes = st.disk_bytes.saturating_sub(w.len());
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

    /// Accepted events' records not yet acknowledged (the in-flight figure
    /// of the event accounting; invalid-topic records are outside it).
    pub fn open_events(&self) -> u64 {
        self.state().ledger.open_events
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
                    let invalid = st.ledger.kind(id) == Some(RecordKind::Invalid);
                    if !invalid {
                        self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    }
                    metrics::delivery(true, invalid, 1);
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

/// A random salt for this run's segments (falls back to the clock).
fn random_salt() -> u64 {
    let mut b = [0u8; 8];
    if getrandom::fill(&mut b).is_err() {
        return now_ms() ^ u64::from(std::process::id()).rotate_left(32);
    }
    u64::from_le_bytes(b)
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

#[cfg(test)]
mod model;
#[cfg(test)]
pub(crate) mod testfs;
#[cfg(test)]
mod tests;
