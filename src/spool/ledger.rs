//! What the spool knows about each record: where it is, and whether it is
//! waiting to be produced, in the producer, or acknowledged. Pure
//! bookkeeping (no I/O), so it is tested on its own.
//!
//! Order: records are produced in spool order. While the ledger is in
//! *direct* mode every record is in the producer or acknowledged, and the
//! writer hands new records straight to the sink. A record that cannot be
//! handed over (queue full) or comes back failed switches the ledger to
//! *replay* from the oldest such record: new records are then only written,
//! and the replayer produces every pending record in order until it reaches
//! the end, where the ledger returns to direct mode. One visitor's records
//! thus keep their order through outages and restarts.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::fs::SpoolFile;
use super::segment::Slot;
use crate::sink::{RecordId, RecordKind};

/// The state of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecState {
    /// On the spool only: the replayer will produce it.
    Pending,
    /// Handed to the sink, outcome not known yet.
    InFlight,
    /// Acknowledged by the broker (or given up as undeliverable).
    Done,
}

/// One segment's records.
#[derive(Debug)]
pub struct SegmentLedger {
    pub slots: Vec<Slot>,
    pub states: Vec<RecState>,
    /// Every record before this index is done.
    pub low_water: u32,
    /// Records not done.
    pub open: u32,
    /// No more records will be added.
    pub sealed: bool,
    /// Bytes of the segment file.
    pub bytes: u64,
    /// When its first record was written (ms since the epoch).
    pub first_written_ms: u64,
    /// Salt of the segment's frames (see `frame`).
    pub salt: u64,
    /// Read handle, opened on first replay.
    pub file: Option<Arc<dyn SpoolFile>>,
}

impl SegmentLedger {
    pub fn new(first_written_ms: u64) -> SegmentLedger {
        SegmentLedger {
            slots: Vec::new(),
            states: Vec::new(),
            low_water: 0,
            open: 0,
            sealed: false,
            bytes: 0,
            first_written_ms,
            salt: 0,
            file: None,
        }
    }

    fn advance_low_water(&mut self) {
        while let Some(RecState::Done) = self.states.get(self.low_water as usize) {
            self.low_water += 1;
        }
    }
}

/// Direct or replay, see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Direct,
    /// Replay from this record on (every pending record is at or after it).
    Replay(RecordId),
}

/// What the delivery of one record changed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Settled {
    /// A segment whose records are all done and that is closed: delete it.
    pub finished_segment: Option<u64>,
    /// The record was known and not done before.
    pub counted: bool,
}

/// All segments, oldest first.
#[derive(Debug)]
pub struct Ledger {
    pub segments: BTreeMap<u64, SegmentLedger>,
    pub mode: Mode,
    /// Bumped whenever the replay start moves back, so a replayer that read
    /// records meanwhile knows to start over.
    pub replay_epoch: u64,
    /// Records not done, over all segments.
    pub open: u64,
    /// Of those, the accepted events' records (the rest are invalid-topic
    /// records, outside the event accounting).
    pub open_events: u64,
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            segments: BTreeMap::new(),
            mode: Mode::Direct,
            replay_epoch: 0,
            open: 0,
            open_events: 0,
        }
    }
}

impl Ledger {
    /// Adds a record (pending) at the end of `segment`.
    pub fn push(&mut self, segment: u64, slot: Slot, written_at_ms: u64) -> RecordId {
        let seg = self
            .segments
            .entry(segment)
            .or_insert_with(|| SegmentLedger::new(written_at_ms));
        let index = seg.slots.len() as u32;
        seg.slots.push(slot);
        seg.states.push(RecState::Pending);
        seg.open += 1;
        seg.bytes = seg.bytes.max(u64::from(slot.offset) + u64::from(slot.len));
        self.open += 1;
        if slot.kind == RecordKind::Event {
            self.open_events += 1;
        }
        RecordId { segment, index }
    }

    pub fn state(&self, id: RecordId) -> Option<RecState> {
        self.segments
            .get(&id.segment)?
            .states
            .get(id.index as usize)
            .copied()
    }

    /// Whether the record is an event's or an invalid-topic record.
    pub fn kind(&self, id: RecordId) -> Option<RecordKind> {
        self.segments
            .get(&id.segment)?
            .slots
            .get(id.index as usize)
            .map(|s| s.kind)
    }

    pub fn set_in_flight(&mut self, id: RecordId) {
        if let Some(s) = self.state_mut(id) {
            if *s == RecState::Pending {
                *s = RecState::InFlight;
            }
        }
    }

    /// Marks a record pending again and makes replay start at or before it.
    pub fn retry(&mut self, id: RecordId) -> bool {
        match self.state_mut(id) {
            Some(s) if *s != RecState::Done => *s = RecState::Pending,
            _ => return false,
        }
        self.replay_from(id);
        true
    }

    /// Switches to replay mode starting at or before `id`.
    pub fn replay_from(&mut self, id: RecordId) {
        self.mode = match self.mode {
            Mode::Replay(from) if from <= id => Mode::Replay(from),
            _ => {
                self.replay_epoch += 1;
                Mode::Replay(id)
            }
        };
    }

    /// Marks a record done.
    pub fn done(&mut self, id: RecordId) -> Settled {
        let Some(seg) = self.segments.get_mut(&id.segment) else {
            return Settled::default();
        };
        match seg.states.get_mut(id.index as usize) {
            Some(s) if *s != RecState::Done => *s = RecState::Done,
            _ => return Settled::default(),
        }
        seg.open -= 1;
        self.open -= 1;
        if seg.slots[id.index as usize].kind == RecordKind::Event {
            self.open_events -= 1;
        }
        seg.advance_low_water();
        let finished = (seg.sealed && seg.open == 0).then_some(id.segment);
        Settled {
            finished_segment: finished,
            counted: true,
        }
    }

    /// Marks every record of a recovered segment whose sequence number is
    /// below `low_water_seq` done (the checkpoint names records by identity,
    /// so damaged frames skipped at recovery shift nothing).
    pub fn restore_low_water(&mut self, segment: u64, low_water_seq: u64) {
        let Some(seg) = self.segments.get_mut(&segment) else {
            return;
        };
        for (slot, s) in seg.slots.iter().zip(seg.states.iter_mut()) {
            if slot.seq < low_water_seq && *s != RecState::Done {
                *s = RecState::Done;
                seg.open -= 1;
                self.open -= 1;
                if slot.kind == RecordKind::Event {
                    self.open_events -= 1;
                }
            }
        }
        seg.advance_low_water();
    }

    /// Per segment with acknowledged records, the sequence number below
    /// which every record is done: what the checkpoint stores.
    pub fn low_water_seqs(&self) -> Vec<(u64, u64)> {
        self.segments
            .iter()
            .filter(|(_, s)| s.low_water > 0)
            .map(|(id, s)| {
                let lw = match s.slots.get(s.low_water as usize) {
                    Some(next) => next.seq,
                    None => s.slots.last().map_or(0, |l| l.seq + 1),
                };
                (*id, lw)
            })
            .collect()
    }

    /// Seals a segment; true when it can be deleted right away.
    pub fn seal(&mut self, segment: u64) -> bool {
        match self.segments.get_mut(&segment) {
            Some(seg) => {
                seg.sealed = true;
                seg.open == 0
            }
            None => false,
        }
    }

    /// Up to `max` pending records from the replay start on, in order. An
    /// empty answer means replay has caught up.
    pub fn pending_from(&self, from: RecordId, max: usize) -> Vec<(RecordId, Slot)> {
        let mut out = Vec::new();
        for (&segment, seg) in self.segments.range(from.segment..) {
            let start = if segment == from.segment {
                from.index as usize
            } else {
                seg.low_water as usize
            };
            for (i, state) in seg.states.iter().enumerate().skip(start) {
                if *state == RecState::Pending {
                    out.push((
                        RecordId {
                            segment,
                            index: i as u32,
                        },
                        seg.slots[i],
                    ));
                    if out.len() >= max {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// The oldest record not done, if any.
    pub fn oldest_open(&self) -> Option<u64> {
        self.segments
            .values()
            .find(|s| s.open > 0)
            .map(|s| s.first_written_ms)
    }

    fn state_mut(&mut self, id: RecordId) -> Option<&mut RecState> {
        self.segments
            .get_mut(&id.segment)?
            .states
            .get_mut(id.index as usize)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slot(i: u32) -> Slot {
        Slot {
            offset: i * 10,
            len: 10,
            seq: u64::from(i) + 100,
            kind: RecordKind::Event,
        }
    }

    #[test]
    fn a_sealed_segment_finishes_with_its_last_acknowledgement() {
        let mut l = Ledger::default();
        let a = l.push(1, slot(0), 5);
        let b = l.push(1, slot(1), 6);
        l.set_in_flight(a);
        l.set_in_flight(b);
        assert!(!l.seal(1));
        assert_eq!(l.done(b).finished_segment, None);
        assert_eq!(l.segments[&1].low_water, 0);
        let s = l.done(a);
        assert_eq!(s.finished_segment, Some(1));
        assert_eq!(l.segments[&1].low_water, 2);
        assert_eq!(l.open, 0);
        // A second report for the same record changes nothing.
        assert!(!l.done(a).counted);
        assert_eq!(l.open, 0);
    }

    #[test]
    fn a_failure_moves_replay_back_to_the_oldest_failed_record() {
        let mut l = Ledger::default();
        let ids: Vec<_> = (0..4).map(|i| l.push(3, slot(i), 1)).collect();
        for id in &ids {
            l.set_in_flight(*id);
        }
        assert!(l.retry(ids[2]));
        assert_eq!(l.mode, Mode::Replay(ids[2]));
        let epoch = l.replay_epoch;
        assert!(l.retry(ids[3]));
        assert_eq!(l.mode, Mode::Replay(ids[2]));
        assert_eq!(l.replay_epoch, epoch);
        assert!(l.retry(ids[1]));
        assert_eq!(l.mode, Mode::Replay(ids[1]));
        assert!(l.replay_epoch > epoch);
        let pending: Vec<_> = l
            .pending_from(ids[1], 10)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(pending, ids[1..].to_vec());
        assert_eq!(l.pending_from(ids[1], 2).len(), 2);
        l.done(ids[0]);
        assert!(!l.retry(ids[0]), "a done record is not sent again");
    }

    #[test]
    fn a_restored_low_water_skips_acknowledged_records() {
        let mut l = Ledger::default();
        let ids: Vec<_> = (0..5).map(|i| l.push(9, slot(i), 1)).collect();
        l.restore_low_water(9, 103);
        assert_eq!(l.open, 2);
        let pending: Vec<_> = l
            .pending_from(ids[0], 10)
            .into_iter()
            .map(|(id, _)| id)
            .collect();
        assert_eq!(pending, ids[3..].to_vec());
        assert_eq!(l.oldest_open(), Some(1));
        assert_eq!(l.low_water_seqs(), vec![(9, 103)]);
    }

    /// The finding of issue 20: with positions in the checkpoint, a damaged
    /// frame skipped at recovery shifted later records onto acknowledged
    /// positions. Sequence numbers do not shift.
    #[test]
    fn a_skipped_frame_does_not_make_an_unacknowledged_record_acknowledged() {
        let mut l = Ledger::default();
        // Records 100..110 were written; 100..103 acknowledged (low water
        // 103); record 101 is damaged on disk and not found at recovery.
        for i in (0..10).filter(|i| *i != 1) {
            l.push(4, slot(i), 1);
        }
        l.restore_low_water(4, 103);
        let seg = &l.segments[&4];
        let open: Vec<u64> = seg
            .slots
            .iter()
            .zip(&seg.states)
            .filter(|(_, s)| **s != RecState::Done)
            .map(|(slot, _)| slot.seq)
            .collect();
        assert_eq!(open, (103..110).collect::<Vec<_>>());
        assert_eq!(l.open, 7);
        assert_eq!(l.open_events, 7);
    }
}
