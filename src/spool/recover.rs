//! Recovery at start: every segment is scanned (see `segment`), damaged
//! bytes are counted and copied to the quarantine directory, the
//! acknowledgement checkpoint marks what Kafka already has, and what is
//! left is replayed in spool order. A segment of the release before
//! sequence numbers is migrated first (see `previous`).

use std::path::Path;

use super::fs::SpoolFs;
use super::ledger::{Ledger, Mode};
use super::{
    now_ms, previous, random_salt, segment, worker, Recovered, SpoolError, CHECKPOINT,
    PREVIOUS_CHECKPOINT, QUARANTINE,
};
use crate::metrics;
use crate::sink::RecordId;

/// What recovery hands to the spool.
pub(super) struct Found {
    pub ledger: Ledger,
    pub recovered: Recovered,
    /// Bytes of the segments kept.
    pub disk_bytes: u64,
    /// Above every sequence number found or checkpointed.
    pub next_seq: u64,
    /// Above every segment id found or checkpointed.
    pub next_segment: u64,
    /// Segments with nothing left to deliver.
    pub to_delete: Vec<u64>,
}

/// Rewrites segment `id` of the previous layout in the current one (see
/// `previous`); returns the new bytes. The original of a segment with
/// damaged frames is quarantined first.
fn migrate(
    fs: &dyn SpoolFs,
    dir: &Path,
    id: u64,
    data: &[u8],
    low_water: Option<u64>,
) -> Result<Vec<u8>, SpoolError> {
    let path = segment::path(dir, id);
    let m = previous::migrate(data, low_water, random_salt());
    if m.damaged > 0 {
        quarantine(fs, dir, id, 0, data);
    }
    fs.write_atomic(&path, &m.bytes)
        .and_then(|()| fs.sync_dir(dir))
        .map_err(|e| SpoolError::io(&path, e))?;
    tracing::warn!(segment = %path.display(), records = m.records, acknowledged = m.acknowledged, damaged = m.damaged, "spool: migrated a segment of the previous format");
    Ok(m.bytes)
}

/// Scans the spool directory `dir`; see the module docs.
pub(super) fn recover(fs: &dyn SpoolFs, dir: &Path) -> Result<Found, SpoolError> {
    let checkpoint = worker::read_checkpoint(fs, &dir.join(CHECKPOINT));
    let previous_checkpoint = worker::read_checkpoint(fs, &dir.join(PREVIOUS_CHECKPOINT));
    let mut ledger = Ledger::default();
    let mut rec = Recovered::default();
    let mut disk_bytes = 0;
    let mut next_seq = 0;
    let ids = segment::list(fs, dir)?;
    let mut to_delete = Vec::new();
    for &id in &ids {
        let path = segment::path(dir, id);
        let mut data = fs.read(&path).map_err(|e| SpoolError::io(&path, e))?;
        let mut scanned = segment::scan_bytes(&data);
        if scanned.as_ref().err() == Some(&segment::Unreadable::PreviousFormat) {
            data = migrate(fs, dir, id, &data, previous_checkpoint.get(&id).copied())?;
            rec.migrated += 1;
            scanned = segment::scan_bytes(&data);
        }
        let scanned = match scanned {
            Ok(s) => s,
            Err(segment::Unreadable::PreviousFormat) => {
                // Just written in the current layout: cannot happen.
                return Err(SpoolError::io(
                    &path,
                    std::io::Error::other("a migrated segment does not read back"),
                ));
            }
            Err(segment::Unreadable::NoHeader) => {
                // Without its salt no frame verifies: keep the bytes for
                // an operator, and drop the file from the spool.
                tracing::error!(segment = %path.display(), bytes = data.len(), "spool: both headers of a segment are damaged; the segment is quarantined");
                quarantine(fs, dir, id, 0, &data);
                rec.corrupt += 1;
                rec.damaged_bytes += data.len() as u64;
                to_delete.push(id);
                continue;
            }
        };
        rec.corrupt += scanned.damaged_frames;
        rec.torn_bytes += scanned.torn_bytes;
        for range in &scanned.damaged {
            let bytes = &data[range.start as usize..range.end as usize];
            rec.damaged_bytes += bytes.len() as u64;
            quarantine(fs, dir, id, range.start, bytes);
        }
        if !scanned.damaged.is_empty() {
            tracing::error!(segment = %path.display(), damaged_frames = scanned.damaged_frames, damaged_ranges = scanned.damaged.len(), torn_bytes = scanned.torn_bytes, "spool: skipped damaged bytes (copied to {QUARANTINE}/); the records around them are kept");
        }
        let first = scanned.first_written_ms.unwrap_or_else(now_ms);
        for slot in &scanned.slots {
            next_seq = next_seq.max(slot.seq + 1);
            ledger.push(id, *slot, first);
        }
        if let Some(seg) = ledger.segments.get_mut(&id) {
            seg.bytes = scanned.len;
            seg.salt = segment::segment_salt(&data).ok().flatten().unwrap_or(0);
        }
        if let Some(lw) = checkpoint.get(&id) {
            next_seq = next_seq.max(*lw);
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
    rec.records = ledger.open_events;
    rec.invalid_records = ledger.open - ledger.open_events;
    if let Some((&first, _)) = ledger.segments.iter().next() {
        ledger.mode = Mode::Replay(RecordId {
            segment: first,
            index: 0,
        });
    }
    metrics::spool_recovered(rec.records, rec.corrupt, rec.damaged_bytes);
    // Never reuse an id the checkpoint may still name.
    let next_segment = ids
        .iter()
        .chain(checkpoint.keys())
        .max()
        .map_or(1, |l| l + 1);
    let previous = dir.join(PREVIOUS_CHECKPOINT);
    if fs.read(&previous).is_ok() {
        let _ = fs.remove(&previous);
    }
    Ok(Found {
        ledger,
        recovered: rec,
        disk_bytes,
        next_seq,
        next_segment,
        to_delete,
    })
}

/// Copies damaged bytes found at start to `quarantine/<segment>-<offset>.bin`
/// (best effort: a failure is logged, recovery goes on).
pub(super) fn quarantine(fs: &dyn SpoolFs, dir: &Path, segment: u64, offset: u64, bytes: &[u8]) {
    let qdir = dir.join(QUARANTINE);
    let path = qdir.join(format!("{segment:020}-{offset:012}.bin"));
    if let Err(e) = fs
        .create_dir_all(&qdir)
        .and_then(|()| fs.write_atomic(&path, bytes))
    {
        tracing::error!(path = %path.display(), error = %e, "spool: cannot quarantine damaged bytes");
    }
}
