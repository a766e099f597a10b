//! Segment files: the spool is a directory of append-only files named by a
//! growing number (`00000000000000000042.seg`). The writer appends whole
//! requests to the newest one and starts a new one past
//! `spool.segment_bytes`; a segment is deleted once every record in it was
//! acknowledged by Kafka.
//!
//! A segment starts with its header, written twice (either copy is
//! enough): `magic "\xFF\xFETGSEG2" | salt u64 | crc32 u32 | 0 u32`. The
//! salt keys the frames' header checksums (see `frame`).
//!
//! Recovery ([`scan_bytes`]) never cuts valid records: a frame that does not
//! verify starts a damaged region, and the scan resynchronises at the next
//! offset where a whole frame verifies (its magic, header checksum, length
//! and payload checksum). Damaged regions, in the middle or at the end of a
//! segment (a write torn by a crash), are reported so that the spool counts
//! them and copies their bytes to the quarantine directory; the segment file
//! itself is left as it is (new records always go to a new segment).

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::frame::{self, FrameError, MAGIC};
use super::fs::{SpoolFile, SpoolFs};
use super::SpoolError;
use crate::sink::RecordKind;

/// File name suffix of a segment.
pub const SUFFIX: &str = ".seg";

/// First bytes of a segment file of this format.
const SEGMENT_MAGIC: [u8; 8] = [0xFF, 0xFE, b'T', b'G', b'S', b'E', b'G', b'2'];

/// Bytes of one copy of the segment header.
const HEADER_COPY: usize = 24;

/// Bytes before a segment's first frame: the header, twice.
pub const SEGMENT_HEADER: u64 = 2 * HEADER_COPY as u64;

/// Largest size of a segment file: positions in it are 32-bit.
pub const MAX_FILE_BYTES: u64 = u32::MAX as u64;

/// Largest request (all its frames) one append takes: a segment past
/// `spool.segment_bytes` (at most [`MAX_SEGMENT_BYTES`]) is rolled before
/// the append, so a file never passes [`MAX_FILE_BYTES`].
pub const MAX_BATCH_BYTES: u64 = MAX_FILE_BYTES - MAX_SEGMENT_BYTES - SEGMENT_HEADER;

pub use crate::config::MAX_SEGMENT_BYTES;

/// Path of segment `id` in `dir`.
pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

/// Ids of the segments in `dir`, oldest first.
pub fn list(fs: &dyn SpoolFs, dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let names = fs.list(dir).map_err(|e| SpoolError::io(dir, e))?;
    let mut ids: Vec<u64> = names
        .iter()
        .filter_map(|n| n.strip_suffix(SUFFIX)?.parse().ok())
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// Where a record sits in its segment, and who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: u32,
    pub len: u32,
    /// The record's sequence number (its identity, see `frame`).
    pub seq: u64,
    pub kind: RecordKind,
}

/// What a scan found in one segment.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Whole, verified records, in file order.
    pub slots: Vec<Slot>,
    /// When the oldest record was written (ms since the epoch), if any.
    pub first_written_ms: Option<u64>,
    /// Byte ranges skipped because no frame there verified (middle or tail).
    pub damaged: Vec<Range<u64>>,
    /// Frames that are, as far as can be told, inside the damaged ranges
    /// (frame starts found there; at least one per range), plus verified
    /// frames whose record does not parse.
    pub damaged_frames: u64,
    /// Bytes of the damaged range at the end, if any (a torn write).
    pub torn_bytes: u64,
    /// Length of the file.
    pub len: u64,
}

/// Why a segment cannot be read at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unreadable {
    /// It was written by the release before sequence numbers (no header, a
    /// frame of that layout at its start): see `previous`.
    PreviousFormat,
    /// Both header copies are damaged: without the salt no frame verifies.
    NoHeader,
}

/// The segment header for `salt`.
pub(super) fn header(salt: u64) -> Vec<u8> {
    let mut copy = Vec::with_capacity(HEADER_COPY);
    copy.extend_from_slice(&SEGMENT_MAGIC);
    copy.extend_from_slice(&salt.to_le_bytes());
    let crc = crc32fast::hash(&copy);
    copy.extend_from_slice(&crc.to_le_bytes());
    copy.extend_from_slice(&[0u8; 4]);
    let mut both = copy.clone();
    both.extend_from_slice(&copy);
    both
}

/// The salt of a header copy that verifies.
fn salt_of(copy: &[u8]) -> Option<u64> {
    if copy.len() < HEADER_COPY || copy[..8] != SEGMENT_MAGIC {
        return None;
    }
    let mut crc = [0u8; 4];
    crc.copy_from_slice(&copy[16..20]);
    if crc32fast::hash(&copy[..16]) != u32::from_le_bytes(crc) {
        return None;
    }
    let mut salt = [0u8; 8];
    salt.copy_from_slice(&copy[8..16]);
    Some(u64::from_le_bytes(salt))
}

/// The salt of a segment's header, or why it cannot be read. An empty or
/// torn header (a crash right after the file was created) is `Ok(None)`.
pub fn segment_salt(data: &[u8]) -> Result<Option<u64>, Unreadable> {
    let first = salt_of(data.get(..HEADER_COPY).unwrap_or_default());
    let second = salt_of(data.get(HEADER_COPY..2 * HEADER_COPY).unwrap_or_default());
    if let Some(salt) = first.or(second) {
        return Ok(Some(salt));
    }
    if super::previous::is_previous(data) {
        return Err(Unreadable::PreviousFormat);
    }
    if (data.len() as u64) < SEGMENT_HEADER {
        // Created, header not (wholly) written: nothing was ever appended.
        return Ok(None);
    }
    Err(Unreadable::NoHeader)
}

/// Scans a segment's bytes: every verified record, and every damaged range.
pub fn scan_bytes(data: &[u8]) -> Result<Scanned, Unreadable> {
    let mut out = Scanned {
        len: data.len() as u64,
        ..Scanned::default()
    };
    let Some(salt) = segment_salt(data)? else {
        return Ok(out);
    };
    let mut pos = SEGMENT_HEADER as usize;
    while pos < data.len() {
        match frame::verify(&data[pos..], salt) {
            Ok(v) => {
                match frame::decode_payload(v.payload) {
                    Ok(f) => {
                        out.first_written_ms.get_or_insert(f.written_at_ms);
                        out.slots.push(Slot {
                            offset: pos as u32,
                            len: v.len as u32,
                            seq: v.seq,
                            kind: f.kind,
                        });
                    }
                    // Verified but unreadable: an incompatible writer. Kept
                    // on disk, counted, never produced.
                    Err(_) => out.damaged_frames += 1,
                }
                pos += v.len;
            }
            Err(FrameError::Torn | FrameError::Corrupt | FrameError::Malformed) => {
                let next = resync(data, pos + 1, salt);
                let end = next.unwrap_or(data.len());
                let starts = memchr::memmem::find_iter(&data[pos..end], &MAGIC).count();
                out.damaged_frames += starts.max(1) as u64;
                out.damaged.push(pos as u64..end as u64);
                if next.is_none() {
                    out.torn_bytes = (end - pos) as u64;
                }
                pos = end;
            }
        }
    }
    Ok(out)
}

/// The first offset at or after `from` where a whole frame verifies.
fn resync(data: &[u8], from: usize, salt: u64) -> Option<usize> {
    let rest = data.get(from..)?;
    memchr::memmem::find_iter(rest, &MAGIC)
        .map(|at| from + at)
        .find(|&at| frame::verify(&data[at..], salt).is_ok())
}

/// Reads the frame in `slot` of the segment file `f`.
pub fn read_slot(f: &dyn SpoolFile, slot: Slot, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.resize(slot.len as usize, 0);
    f.read_exact_at(buf, u64::from(slot.offset))
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Writer {
    pub id: u64,
    pub salt: u64,
    file: Arc<dyn SpoolFile>,
    len: u64,
}

impl Writer {
    /// Creates segment `id` (it must not exist) and writes its header.
    pub fn create(
        fs: &dyn SpoolFs,
        dir: &Path,
        id: u64,
        salt: u64,
    ) -> Result<Writer, (PathBuf, std::io::Error)> {
        let p = path(dir, id);
        let file = fs.create_new(&p).map_err(|e| (p.clone(), e))?;
        let mut w = Writer {
            id,
            salt,
            file,
            len: 0,
        };
        w.append(&header(salt)).map_err(|e| (p, e))?;
        Ok(w)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether no record was appended (only the header is there).
    pub fn is_empty(&self) -> bool {
        self.len <= SEGMENT_HEADER
    }

    /// Appends whole frames with one write. On failure the file is cut back
    /// to its previous length (if even that fails the caller rolls to a new
    /// segment; recovery resynchronises past a partial write); returns the
    /// offset the frames start at.
    pub fn append(&mut self, frames: &[u8]) -> std::io::Result<u64> {
        let at = self.len;
        match self.file.append(frames) {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(at)
            }
            Err(e) => {
                let _ = self.file.set_len(at);
                Err(e)
            }
        }
    }

    /// The file, for fsync and reads from other threads.
    pub fn file(&self) -> Arc<dyn SpoolFile> {
        self.file.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode;
    use super::super::fs::OsFs;
    use super::*;
    use crate::sink::Record;

    const SALT: u64 = 0xfeed_beef;

    fn record(i: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            &Record {
                topic: "t",
                key: Some(&[i]),
                headers: Default::default(),
                value: &[b'a' + i; 40],
            },
            RecordKind::Event,
            u64::from(i),
            u64::from(i),
            SALT,
        );
        buf
    }

    fn segment(n: u8) -> (Vec<u8>, Vec<usize>) {
        let mut data = header(SALT);
        let mut starts = Vec::new();
        for i in 0..n {
            starts.push(data.len());
            data.extend(record(i));
        }
        (data, starts)
    }

    fn seqs(s: &Scanned) -> Vec<u64> {
        s.slots.iter().map(|s| s.seq).collect()
    }

    #[test]
    fn a_segment_cut_mid_record_keeps_the_whole_records_and_reports_the_torn_tail() {
        let (data, starts) = segment(3);
        let cut = &data[..data.len() - 10];
        let s = scan_bytes(cut).expect("scan");
        assert_eq!(seqs(&s), [0, 1]);
        assert_eq!(s.damaged_frames, 1);
        assert_eq!(s.damaged, vec![starts[2] as u64..cut.len() as u64]);
        assert_eq!(s.torn_bytes, (cut.len() - starts[2]) as u64);
        assert_eq!(s.first_written_ms, Some(0));
    }

    /// The finding of issue 20: one bit flipped in the length field of the
    /// middle frame lost every record after it.
    #[test]
    fn a_flipped_length_bit_in_the_middle_frame_loses_only_that_frame() {
        let (mut data, starts) = segment(10);
        data[starts[5] + 4 + 2] ^= 0x10;
        let s = scan_bytes(&data).expect("scan");
        assert_eq!(seqs(&s), [0, 1, 2, 3, 4, 6, 7, 8, 9]);
        assert_eq!(s.damaged, vec![starts[5] as u64..starts[6] as u64]);
        assert_eq!(s.damaged_frames, 1);
        assert_eq!(s.torn_bytes, 0);
    }

    #[test]
    fn any_single_flipped_bit_loses_at_most_one_frame() {
        let (data, starts) = segment(4);
        for bit in (SEGMENT_HEADER as usize * 8)..data.len() * 8 {
            let mut d = data.clone();
            d[bit / 8] ^= 1 << (bit % 8);
            let s = scan_bytes(&d).expect("scan");
            let hit = starts.iter().rposition(|&st| st * 8 <= bit).expect("frame");
            let want: Vec<u64> = (0..4u64).filter(|i| *i != hit as u64).collect();
            assert_eq!(seqs(&s), want, "bit {bit}");
        }
    }

    #[test]
    fn one_damaged_header_copy_is_enough_and_the_previous_format_is_recognised() {
        let (mut data, _) = segment(2);
        data[3] ^= 1;
        assert_eq!(seqs(&scan_bytes(&data).expect("scan")), [0, 1]);
        data[HEADER_COPY + 3] ^= 1;
        assert_eq!(scan_bytes(&data).err(), Some(Unreadable::NoHeader));
        // Previous layout: len | crc | payload starting with version 1.
        let payload = [1u8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut old = (payload.len() as u32).to_le_bytes().to_vec();
        old.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        old.extend_from_slice(&payload);
        assert_eq!(scan_bytes(&old).err(), Some(Unreadable::PreviousFormat));
        assert!(scan_bytes(&[]).expect("empty").slots.is_empty());
        assert!(scan_bytes(&data[..10])
            .expect("torn header")
            .slots
            .is_empty());
    }

    #[test]
    fn the_writer_writes_a_header_and_reads_back_what_it_appended() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = Writer::create(&OsFs, dir.path(), 7, SALT).expect("segment");
        let at = w.append(&record(3)).expect("append");
        assert_eq!(at, SEGMENT_HEADER);
        let data = std::fs::read(path(dir.path(), 7)).expect("read");
        let s = scan_bytes(&data).expect("scan");
        assert_eq!(seqs(&s), [3]);
        let mut buf = Vec::new();
        read_slot(&*w.file(), s.slots[0], &mut buf).expect("read");
        assert_eq!(buf, record(3));
        assert_eq!(list(&OsFs, dir.path()).expect("list"), vec![7]);
    }

    proptest::proptest! {
        /// Recovery over arbitrary bytes after a valid header: never panics,
        /// never returns a record whose checksums fail, never overlaps.
        #[test]
        fn recovery_over_arbitrary_bytes_returns_only_verified_records(
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048),
        ) {
            let mut data = header(SALT);
            data.extend_from_slice(&tail);
            let s = scan_bytes(&data).expect("scan");
            let mut end = SEGMENT_HEADER;
            for slot in &s.slots {
                proptest::prop_assert!(u64::from(slot.offset) >= end);
                let at = slot.offset as usize;
                let v = frame::verify(&data[at..at + slot.len as usize], SALT);
                proptest::prop_assert!(v.is_ok());
                end = u64::from(slot.offset) + u64::from(slot.len);
            }
        }

        /// Valid frames with damage anywhere (flipped bits, overwritten runs,
        /// a cut): every frame whose bytes are untouched is recovered, and
        /// nothing that was not written comes back.
        #[test]
        fn recovery_never_loses_a_frame_whose_bytes_are_intact(
            n in 1u8..12,
            flips in proptest::collection::vec((proptest::prelude::any::<proptest::sample::Index>(), 0u8..8), 0..4),
            run in proptest::option::of((proptest::prelude::any::<proptest::sample::Index>(), 1usize..64, proptest::prelude::any::<u8>())),
            cut in proptest::option::of(proptest::prelude::any::<proptest::sample::Index>()),
        ) {
            let (mut data, starts) = segment(n);
            let body = SEGMENT_HEADER as usize..data.len();
            let mut touched = Vec::new();
            for (at, bit) in &flips {
                let i = body.start + at.index(body.len());
                data[i] ^= 1 << bit;
                touched.push(i..i + 1);
            }
            if let Some((at, len, byte)) = run {
                let i = body.start + at.index(body.len());
                let end = (i + len).min(data.len());
                data[i..end].fill(byte);
                touched.push(i..end);
            }
            if let Some(c) = cut {
                let c = body.start + c.index(body.len());
                touched.push(c..data.len());
                data.truncate(c);
            }
            let s = scan_bytes(&data).expect("scan");
            let got = seqs(&s);
            for (i, &st) in starts.iter().enumerate() {
                let end = starts.get(i + 1).copied().unwrap_or(body.end);
                let intact = touched.iter().all(|t| t.end <= st || t.start >= end);
                if intact {
                    proptest::prop_assert!(got.contains(&(i as u64)), "frame {} lost: {:?}", i, got);
                }
            }
            for seq in &got {
                proptest::prop_assert!(*seq < u64::from(n));
            }
        }
    }
}
