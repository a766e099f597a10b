//! The spool's two threads. The *replayer* produces pending records in
//! spool order whenever the sink can take them (see `ledger`); the *syncer*
//! fsyncs the segment files (every `fsync_interval_ms`, or at once for
//! `always`, sharing one fsync among every append since the last), writes
//! the acknowledgement checkpoint and deletes finished segments. A failed
//! fsync fails the round's waiting requests and marks the spool unhealthy;
//! while it is, each round probes the disk with a small write and fsync,
//! and the first that succeeds makes it healthy again.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::fs::{SpoolFile, SpoolFs};
use super::ledger::Mode;
use super::{segment, FsyncPolicy, Spool, CHECKPOINT, FAILED_ROUNDS_KEPT, HEALTHY};
use crate::metrics;
use crate::sink::RecordId;

/// File the syncer writes and fsyncs to learn whether the disk took writes
/// again after a failure.
const PROBE: &str = "probe";

/// Bytes of the probe: one page.
const PROBE_BYTES: usize = 4096;

/// Records the replayer reads per round.
const REPLAY_BATCH: usize = 512;

/// How long the replayer waits before looking again when there is nothing
/// to do, or the sink is not ready or full.
const REPLAY_IDLE: Duration = Duration::from_millis(50);

/// The running threads; [`Workers::join`] after [`Spool::close`].
pub struct Workers {
    threads: Vec<JoinHandle<()>>,
}

impl Workers {
    pub fn join(self) {
        for t in self.threads {
            let _ = t.join();
        }
    }
}

pub(super) fn start(spool: Arc<Spool>) -> Workers {
    let replayer = {
        let spool = spool.clone();
        std::thread::Builder::new()
            .name("spool-replay".into())
            .spawn(move || replay_loop(&spool))
            .expect("spawning a thread at start-up")
    };
    let syncer = std::thread::Builder::new()
        .name("spool-sync".into())
        .spawn(move || sync_loop(&spool))
        .expect("spawning a thread at start-up");
    Workers {
        threads: vec![replayer, syncer],
    }
}

fn stopped(spool: &Spool) -> bool {
    spool.stop.load(Ordering::Acquire)
}

fn replay_loop(spool: &Spool) {
    let mut buf = Vec::new();
    while !stopped(spool) {
        if !spool.sink.can_replay() || !replay_round(spool, &mut buf) {
            let st = spool.state();
            if !stopped(spool) {
                let _ = spool.wake.wait_timeout(st, REPLAY_IDLE);
            }
        }
    }
}

/// One round: reads a run of pending records and produces them. False when
/// there was nothing to do or the sink is full (wait before the next).
pub(super) fn replay_round(spool: &Spool, buf: &mut Vec<u8>) -> bool {
    let (from, epoch, batch) = {
        let mut st = spool.state();
        let Mode::Replay(from) = st.ledger.mode else {
            return false;
        };
        let batch = st.ledger.pending_from(from, REPLAY_BATCH);
        if batch.is_empty() {
            // Caught up: new records go straight to the sink again.
            st.ledger.mode = Mode::Direct;
            tracing::info!("spool: replay caught up");
            return false;
        }
        let batch: Vec<_> = batch
            .into_iter()
            .map(|(id, slot)| (id, slot, file_of(spool, &mut st, id.segment)))
            .collect();
        (from, st.ledger.replay_epoch, batch)
    };
    // Read outside the lock; appends and acknowledgements go on meanwhile.
    let mut frames: Vec<(RecordId, Vec<u8>)> = Vec::with_capacity(batch.len());
    for (id, slot, file) in batch {
        let Some(file) = file else { continue };
        match segment::read_slot(&*file, slot, buf) {
            Ok(()) => frames.push((id, std::mem::take(buf))),
            Err(e) => {
                tracing::error!(segment = id.segment, error = %e, "spool: cannot read a record back");
                metrics::spool_read_error();
            }
        }
    }
    let mut st = spool.state();
    // Checked again under the lock: the broker may have gone away while the
    // records were read (the check in `replay_loop` came before the round).
    if !spool.sink.can_replay() {
        return false;
    }
    if st.ledger.replay_epoch != epoch || !matches!(st.ledger.mode, Mode::Replay(f) if f >= from) {
        // An older record failed meanwhile: start over from it.
        return true;
    }
    let mut progressed = false;
    for (id, framed) in &frames {
        if st.ledger.state(*id) != Some(super::ledger::RecState::Pending) {
            continue;
        }
        if !spool.produce(&mut st, *id, framed) {
            spool.publish(&st);
            return progressed;
        }
        progressed = true;
        spool.stats.replayed.fetch_add(1, Ordering::Relaxed);
        metrics::spool_replayed(1);
        // Everything before the next record is now in flight or done.
        st.ledger.mode = Mode::Replay(RecordId {
            segment: id.segment,
            index: id.index + 1,
        });
    }
    spool.publish(&st);
    true
}

/// A read handle on a segment, opened once.
fn file_of(spool: &Spool, st: &mut super::State, segment_id: u64) -> Option<Arc<dyn SpoolFile>> {
    let seg = st.ledger.segments.get_mut(&segment_id)?;
    if seg.file.is_none() {
        let path = segment::path(&spool.dir, segment_id);
        match spool.fs.open(&path) {
            Ok(f) => seg.file = Some(f),
            Err(e) => {
                tracing::error!(segment = %path.display(), error = %e, "spool: cannot open a segment");
                return None;
            }
        }
    }
    seg.file.clone()
}

fn sync_loop(spool: &Spool) {
    let interval = Duration::from_millis(spool.config.fsync_interval_ms);
    loop {
        let stopping = {
            let st = spool.state();
            // Read under the lock `Spool::close` sets it under: a close
            // between this read and the wait below wakes the wait.
            let stopping = stopped(spool);
            let sync_now =
                spool.config.fsync == FsyncPolicy::Always && st.written > st.synced_written;
            if !(stopping || sync_now) {
                let _ = spool.wake.wait_timeout(st, interval);
            }
            stopping
        };
        sync_round(spool);
        if stopping {
            return;
        }
    }
}

/// One round of the syncer: fsync, checkpoint, deletions, and the probe
/// while unhealthy. Tests call it directly.
pub(super) fn sync_round(spool: &Spool) {
    let round = {
        let mut st = spool.state();
        let current = st.writer.as_ref().map(|w| (w.id, w.file()));
        let checkpoint =
            std::mem::take(&mut st.checkpoint_dirty).then(|| st.ledger.low_water_seqs());
        Round {
            after: st.synced_written,
            written: st.written,
            files: std::mem::take(&mut st.to_sync)
                .into_iter()
                .chain(current)
                .collect(),
            delete: std::mem::take(&mut st.to_delete),
            checkpoint,
        }
    };
    let new_segments = !round.files.is_empty() && round.written > round.after;
    let mut failed = Vec::new();
    for (id, f) in &round.files {
        if let Err(e) = f.sync_data() {
            tracing::error!(segment = id, error = %e, "spool: fsync failed");
            spool.failed("fsync", &e);
            failed.push(*id);
        }
    }
    if new_segments && failed.is_empty() {
        // New segment files are only durable once the directory is.
        if let Err(e) = spool.fs.sync_dir(&spool.dir) {
            tracing::error!(error = %e, "spool: fsync of the directory failed");
            spool.failed("fsync", &e);
            failed.extend(round.files.iter().map(|(id, _)| *id));
        }
    }
    if !failed.is_empty() {
        // What that file holds may never reach the disk: new appends go to
        // a new segment (the records stay in the ledger and are delivered).
        let mut st = spool.state();
        if st.writer.as_ref().is_some_and(|w| failed.contains(&w.id)) {
            spool.roll(&mut st);
        }
    }
    {
        let mut st = spool.state();
        st.synced_written = st.synced_written.max(round.written);
    }
    spool.synced.send_modify(|s| {
        if !failed.is_empty() && round.written > round.after {
            s.failed.push_back((round.after, round.written));
            if s.failed.len() > FAILED_ROUNDS_KEPT {
                s.failed.pop_front();
            }
        }
        s.through = s.through.max(round.written);
    });
    if failed.is_empty() && spool.unhealthy().is_some() && probe(spool) {
        spool.health.store(HEALTHY, Ordering::Release);
        tracing::info!("spool: the disk takes writes again; accepting requests");
    }
    if let Some(cp) = round.checkpoint {
        if let Err(e) = write_checkpoint(&*spool.fs, &spool.dir.join(CHECKPOINT), &cp) {
            tracing::warn!(error = %e, "spool: cannot write the acknowledgement checkpoint");
            spool.state().checkpoint_dirty = true;
        }
    }
    for id in round.delete {
        let path = segment::path(&spool.dir, id);
        if let Err(e) = spool.fs.remove(&path) {
            tracing::warn!(segment = %path.display(), error = %e, "spool: cannot delete a finished segment");
        }
    }
}

/// Whether a small write and fsync in the spool directory succeed.
fn probe(spool: &Spool) -> bool {
    let path = spool.dir.join(PROBE);
    let ok = spool.fs.write_atomic(&path, &[0u8; PROBE_BYTES]).is_ok();
    let _ = spool.fs.remove(&path);
    ok
}

struct Round {
    /// Appends covered by the previous round.
    after: u64,
    written: u64,
    files: Vec<(u64, Arc<dyn SpoolFile>)>,
    delete: Vec<u64>,
    checkpoint: Option<Vec<(u64, u64)>>,
}

/// `segment low_water_seq` lines, replaced atomically.
fn write_checkpoint(fs: &dyn SpoolFs, path: &Path, entries: &[(u64, u64)]) -> std::io::Result<()> {
    let mut text = String::with_capacity(entries.len() * 32);
    for (id, lw) in entries {
        text.push_str(&format!("{id} {lw}\n"));
    }
    fs.write_atomic(path, text.as_bytes())
}

/// The checkpoint written by a previous run (empty when absent or unreadable:
/// then every record is produced again).
pub(super) fn read_checkpoint(fs: &dyn SpoolFs, path: &Path) -> HashMap<u64, u64> {
    let Ok(bytes) = fs.read(path) else {
        return HashMap::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    text.lines()
        .filter_map(|l| {
            let (id, lw) = l.split_once(' ')?;
            Some((id.parse().ok()?, lw.parse().ok()?))
        })
        .collect()
}
