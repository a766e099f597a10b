//! Segments of the release before sequence numbers, migrated once at start.
//!
//! That layout had no segment header and frames of `len u32 | crc32 u32 |
//! payload` (payload version 1, no record kind: every record an event), and
//! its `acked` checkpoint counted positions. A segment of it is rewritten in
//! the current layout under the same id (a temporary file, fsync, rename,
//! directory fsync: a crash leaves either the old file or the new one), with
//! fresh sequence numbers. The positional checkpoint is trusted only for a
//! segment with no damaged frame (positions cannot have shifted); otherwise
//! every verified record is kept, and some may arrive twice (consumers drop
//! them by `messageId`), rather than one never acknowledged being skipped.

use super::frame::{self, FrameWriter};
use super::segment;
use crate::sink::RecordKind;

/// Largest payload the previous layout allowed.
const PREVIOUS_MAX: usize = 64 * 1024 * 1024;

/// Payload version byte of the previous layout.
const PREVIOUS_VERSION: u8 = 1;

/// Bytes before a payload in the previous layout.
const PREVIOUS_HEADER: usize = 8;

/// The payload of a verified frame of the previous layout at the start of
/// `data`, and the frame's length.
fn frame_at(data: &[u8]) -> Option<(&[u8], usize)> {
    let head = data.get(..PREVIOUS_HEADER)?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len > PREVIOUS_MAX {
        return None;
    }
    let payload = data.get(PREVIOUS_HEADER..PREVIOUS_HEADER + len)?;
    (payload.first() == Some(&PREVIOUS_VERSION) && crc32fast::hash(payload) == crc)
        .then_some((payload, PREVIOUS_HEADER + len))
}

/// Whether `data` is a segment of the previous layout: a verified frame of
/// it at the start, or (its first frame damaged) anywhere.
pub fn is_previous(data: &[u8]) -> bool {
    (0..data.len()).any(|at| frame_at(&data[at..]).is_some())
}

/// A previous-layout segment rewritten in the current layout.
#[derive(Debug, Default)]
pub struct Migrated {
    /// The new segment file's bytes.
    pub bytes: Vec<u8>,
    /// Records carried over.
    pub records: u64,
    /// Records left out because the checkpoint says Kafka has them.
    pub acknowledged: u64,
    /// Damaged ranges skipped (then the checkpoint was not trusted).
    pub damaged: u64,
}

/// Rewrites `data` (a previous-layout segment) in the current layout under
/// `salt`; `low_water` is its positional checkpoint, if any.
pub fn migrate(data: &[u8], low_water: Option<u64>, salt: u64) -> Migrated {
    let mut payloads = Vec::new();
    let mut damaged = 0;
    let mut pos = 0;
    while pos < data.len() {
        if let Some((payload, len)) = frame_at(&data[pos..]) {
            payloads.push(payload);
            pos += len;
            continue;
        }
        // Resynchronise at the next offset where a whole frame verifies.
        damaged += 1;
        pos = (pos + 1..data.len())
            .find(|&at| frame_at(&data[at..]).is_some())
            .unwrap_or(data.len());
    }
    let skip = if damaged == 0 {
        low_water.unwrap_or(0).min(payloads.len() as u64) as usize
    } else {
        0
    };
    let mut out = Migrated {
        bytes: segment::header(salt),
        acknowledged: skip as u64,
        damaged,
        ..Migrated::default()
    };
    for (seq, payload) in payloads.into_iter().skip(skip).enumerate() {
        // The current payload is the previous one with version 2 and a kind
        // byte after the version.
        let mut w = FrameWriter::default();
        let start = out.bytes.len();
        w.begin_raw(&mut out.bytes, RecordKind::Event);
        out.bytes.extend_from_slice(&payload[1..]);
        let range = w.finish(&mut out.bytes);
        if frame::decode_payload(&out.bytes[range.start + frame::FRAME_HEADER..]).is_err() {
            // Verified but unparseable: not a record of that release either.
            out.bytes.truncate(start);
            out.damaged += 1;
            continue;
        }
        frame::stamp(&mut out.bytes[range], seq as u64, salt);
        out.records += 1;
    }
    out
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A previous-layout frame: key `key`, value `value`, topic `t`.
    pub(in crate::spool) fn previous_frame(key: &[u8], value: &[u8]) -> Vec<u8> {
        let mut p = vec![PREVIOUS_VERSION];
        p.extend_from_slice(&7u64.to_le_bytes());
        p.extend_from_slice(&1u16.to_le_bytes());
        p.push(b't');
        p.extend_from_slice(&(key.len() as u32).to_le_bytes());
        p.extend_from_slice(key);
        p.push(0);
        p.extend_from_slice(value);
        let mut f = (p.len() as u32).to_le_bytes().to_vec();
        f.extend_from_slice(&crc32fast::hash(&p).to_le_bytes());
        f.extend_from_slice(&p);
        f
    }

    fn keys(m: &Migrated) -> Vec<Vec<u8>> {
        let s = segment::scan_bytes(&m.bytes).expect("current layout");
        s.slots
            .iter()
            .map(|slot| {
                let at = slot.offset as usize;
                let p = &m.bytes[at + frame::FRAME_HEADER..at + slot.len as usize];
                let f = frame::decode_payload(p).expect("record");
                assert_eq!(f.kind, RecordKind::Event);
                assert_eq!(f.written_at_ms, 7);
                f.record.key.expect("key").to_vec()
            })
            .collect()
    }

    #[test]
    fn records_past_the_checkpoint_are_carried_over_in_order() {
        let data: Vec<u8> = (0..5u8).flat_map(|i| previous_frame(&[i], b"{}")).collect();
        assert!(is_previous(&data));
        let m = migrate(&data, Some(2), 9);
        assert_eq!(keys(&m), [vec![2], vec![3], vec![4]]);
        assert_eq!((m.records, m.acknowledged, m.damaged), (3, 2, 0));
    }

    #[test]
    fn with_a_damaged_frame_the_positional_checkpoint_is_not_trusted() {
        let frames: Vec<Vec<u8>> = (0..5u8).map(|i| previous_frame(&[i], b"{}")).collect();
        let mut data: Vec<u8> = frames.concat();
        // A bit of the second frame's length.
        data[frames[0].len() + 1] ^= 0x10;
        let m = migrate(&data, Some(2), 9);
        assert_eq!(keys(&m), [vec![0], vec![2], vec![3], vec![4]]);
        assert_eq!(m.acknowledged, 0);
        assert_eq!(m.damaged, 1);
    }
}
