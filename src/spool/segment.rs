//! Segment files: the spool is a directory of append-only files named by a
//! growing number (`00000000000000000042.seg`). The writer appends whole
//! requests to the newest one and starts a new one past
//! `spool.segment_bytes`; a segment is deleted once every record in it was
//! acknowledged by Kafka.
//!
//! At start every segment is scanned: frames whose checksum fails are
//! skipped (and counted); a tail cut short by a crash, or a length that
//! cannot be right, ends the segment there and the file is truncated to its
//! last whole frame, so a later append never follows garbage.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use super::frame::{self, FrameError, FRAME_HEADER};
use super::SpoolError;

/// File name suffix of a segment.
const SUFFIX: &str = ".seg";

/// Path of segment `id` in `dir`.
pub fn path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}{SUFFIX}"))
}

/// Ids of the segments in `dir`, oldest first.
pub fn list(dir: &Path) -> Result<Vec<u64>, SpoolError> {
    let mut ids = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| SpoolError::io(dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| SpoolError::io(dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(SUFFIX)) else {
            continue;
        };
        if let Ok(id) = stem.parse::<u64>() {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

/// Where a record sits in its segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    pub offset: u32,
    pub len: u32,
}

/// What a scan found in one segment.
#[derive(Debug, Default)]
pub struct Scanned {
    /// Whole, valid records, in file order.
    pub slots: Vec<Slot>,
    /// When the oldest record was written (ms since the epoch), if any.
    pub first_written_ms: Option<u64>,
    /// Frames skipped because their checksum or layout was wrong.
    pub corrupt: u64,
    /// Bytes cut off the end (a torn write or unreadable tail).
    pub torn_bytes: u64,
    /// Length of the file after the scan.
    pub len: u64,
}

/// Reads a segment, validates every frame and truncates a torn tail.
pub fn scan(path: &Path) -> Result<Scanned, SpoolError> {
    let data = std::fs::read(path).map_err(|e| SpoolError::io(path, e))?;
    let mut out = scan_bytes(&data);
    if out.len < data.len() as u64 {
        let f = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| SpoolError::io(path, e))?;
        f.set_len(out.len).map_err(|e| SpoolError::io(path, e))?;
        f.sync_all().map_err(|e| SpoolError::io(path, e))?;
    }
    out.torn_bytes = data.len() as u64 - out.len;
    Ok(out)
}

/// The scan of [`scan`], on bytes.
pub fn scan_bytes(data: &[u8]) -> Scanned {
    let mut out = Scanned::default();
    let mut pos = 0usize;
    while pos < data.len() {
        let rest = &data[pos..];
        match frame::next_frame(rest) {
            Ok((payload, len)) => {
                match frame::decode_payload(payload) {
                    Ok(f) => {
                        out.first_written_ms.get_or_insert(f.written_at_ms);
                        out.slots.push(Slot {
                            offset: pos as u32,
                            len: len as u32,
                        });
                    }
                    Err(_) => out.corrupt += 1,
                }
                pos += len;
            }
            Err(FrameError::Corrupt) if plausible_len(rest) => {
                // The length fits: skip this frame, the next one starts after it.
                out.corrupt += 1;
                pos += FRAME_HEADER + announced_len(rest);
            }
            Err(_) => {
                // Torn, or a length no frame can have: nothing after this
                // point can be trusted.
                out.corrupt += 1;
                break;
            }
        }
    }
    out.len = pos as u64;
    out
}

fn announced_len(data: &[u8]) -> usize {
    u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize
}

/// A corrupt frame whose length still lands inside the data and on the
/// start of a valid frame (or the end): a flipped bit in a payload, not a
/// torn length.
fn plausible_len(data: &[u8]) -> bool {
    if data.len() < FRAME_HEADER {
        return false;
    }
    let end = FRAME_HEADER.saturating_add(announced_len(data));
    end == data.len() || (end < data.len() && frame::next_frame(&data[end..]).is_ok())
}

/// Reads the frame in `slot` of the segment file `f`.
pub fn read_slot(f: &File, slot: Slot, buf: &mut Vec<u8>) -> std::io::Result<()> {
    buf.clear();
    buf.resize(slot.len as usize, 0);
    f.read_exact_at(buf, u64::from(slot.offset))
}

/// The segment being appended to.
#[derive(Debug)]
pub struct Writer {
    pub id: u64,
    file: File,
    len: u64,
}

impl Writer {
    /// Creates segment `id` (it must not exist).
    pub fn create(dir: &Path, id: u64) -> Result<Writer, SpoolError> {
        let p = path(dir, id);
        let file = OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&p)
            .map_err(|e| SpoolError::io(&p, e))?;
        Ok(Writer { id, file, len: 0 })
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends whole frames with one write. On failure the file is cut back
    /// to its previous length, so no partial frame stays in the middle of a
    /// segment; returns the offset the frames start at.
    pub fn append(&mut self, frames: &[u8]) -> std::io::Result<u64> {
        let at = self.len;
        match self.file.write_all(frames) {
            Ok(()) => {
                self.len += frames.len() as u64;
                Ok(at)
            }
            Err(e) => {
                // If even this fails the caller rolls to a new segment.
                self.file.set_len(at)?;
                Err(e)
            }
        }
    }

    /// A handle for fsync from another thread.
    pub fn sync_handle(&self) -> std::io::Result<File> {
        self.file.try_clone()
    }
}

#[cfg(test)]
mod tests {
    use super::super::frame::encode;
    use super::*;
    use crate::sink::Record;

    fn record(i: u8) -> Vec<u8> {
        let mut buf = Vec::new();
        encode(
            &mut buf,
            &Record {
                topic: "t",
                key: Some(&[i]),
                headers: Default::default(),
                value: &[i; 40],
            },
            u64::from(i),
        );
        buf
    }

    #[test]
    fn a_segment_cut_mid_record_keeps_the_whole_records_and_is_truncated() {
        let dir = tempfile::tempdir().expect("dir");
        let mut w = Writer::create(dir.path(), 7).expect("segment");
        let mut all = Vec::new();
        for i in 0..3 {
            all.extend(record(i));
        }
        w.append(&all).expect("append");
        drop(w);
        let p = path(dir.path(), 7);
        let whole = std::fs::metadata(&p).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&p).expect("open");
        f.set_len(whole - 10).expect("cut");
        drop(f);

        let s = scan(&p).expect("scan");
        assert_eq!(s.slots.len(), 2);
        assert_eq!(s.corrupt, 1);
        assert_eq!(s.first_written_ms, Some(0));
        let left = std::fs::metadata(&p).expect("meta").len();
        assert_eq!(left, s.len);
        assert_eq!(s.torn_bytes, whole - 10 - left);
        let f = File::open(&p).expect("open");
        let mut buf = Vec::new();
        read_slot(&f, s.slots[1], &mut buf).expect("read");
        let (f, _) = frame::decode(&buf).expect("frame");
        assert_eq!(f.record.key, Some(&[1u8][..]));
        assert_eq!(list(dir.path()).expect("list"), vec![7]);
    }

    #[test]
    fn a_flipped_bit_inside_a_record_skips_only_that_record() {
        let mut data = Vec::new();
        for i in 0..3 {
            data.extend(record(i));
        }
        let one = record(0).len();
        data[one + 20] ^= 0x40;
        let s = scan_bytes(&data);
        assert_eq!(s.slots.len(), 2);
        assert_eq!(s.corrupt, 1);
        assert_eq!(s.len, data.len() as u64);
        assert_eq!(s.slots[1].offset as usize, 2 * one);
    }

    #[test]
    fn garbage_after_the_records_is_cut_off() {
        let mut data = record(1);
        let good = data.len() as u64;
        data.extend_from_slice(&[0xff; 37]);
        let s = scan_bytes(&data);
        assert_eq!(s.slots.len(), 1);
        assert_eq!(s.len, good);
    }
}
