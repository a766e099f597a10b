//! Record framing: how one Kafka record is laid out on the spool.
//!
//! A frame is self-describing, so that recovery can find the next one after
//! damaged bytes and acknowledgements can name records by identity:
//!
//! ```text
//! magic [0xFF 0xFE 'T' 'G'] | len u32 LE | seq u64 LE
//! | payload_crc u32 LE | header_crc u32 LE | payload (len bytes)
//! ```
//!
//! `seq` is the record's sequence number, assigned under the spool's lock
//! when the frame is appended (so several requests' frames can later share
//! one write: group commit); `header_crc` is a CRC-32 over the segment's
//! salt and the 20 header bytes before it, `payload_crc` a CRC-32 over the
//! payload. The magic holds bytes that UTF-8
//! never contains (0xFF, 0xFE): a record's JSON text cannot imitate a frame
//! start, and without the salt (random per segment, never sent anywhere) no
//! client can forge a header that verifies.
//!
//! The payload is the record exactly as it is produced:
//!
//! ```text
//! version u8 (2) | kind u8 (0 event, 1 invalid) | written_at_ms u64
//! | topic_len u16 | topic | key_len u32 (NO_KEY: none) | key
//! | header_count u8 | (name_len u16 | name | value_len u32 | value)*
//! | value (the rest of the payload)
//! ```
//!
//! The value comes last so that the pipeline serializes an event straight
//! into the frame buffer (no copy): [`FrameWriter::begin`] writes the head,
//! the caller appends the value, [`FrameWriter::finish`] fills in magic,
//! length and payload checksum; [`stamp`] fills in sequence number and
//! header checksum at append time.

use crate::sink::{Record, RecordKind};

/// First bytes of every frame (0xFF and 0xFE never occur in UTF-8).
pub const MAGIC: [u8; 4] = [0xFF, 0xFE, b'T', b'G'];

/// Bytes before a frame's payload.
pub const FRAME_HEADER: usize = 24;

/// Bytes of the header the header checksum covers.
const CHECKED_HEADER: usize = 20;

/// Largest payload a frame may announce; anything larger is corruption
/// (the gateway's own limits keep records far below it).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Version byte of the payload layout above.
const VERSION: u8 = 2;

/// Kind byte of an accepted event's record.
const KIND_EVENT: u8 = 0;
/// Kind byte of a rejected event's invalid-topic record.
const KIND_INVALID: u8 = 1;

/// `key_len` of a record without a key.
const NO_KEY: u32 = u32::MAX;

/// `value_len` of a header without a value.
const NO_VALUE: u32 = u32::MAX;

/// One record read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    pub record: Record<'a>,
    pub kind: RecordKind,
    /// When the record was spooled (milliseconds since the Unix epoch).
    pub written_at_ms: u64,
}

/// A frame whose header and payload verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified<'a> {
    pub seq: u64,
    pub payload: &'a [u8],
    /// Bytes of the whole frame.
    pub len: usize,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The data ends inside the frame (a write cut short by a crash).
    #[error("the frame is cut short")]
    Torn,
    /// No magic, an impossible length or a checksum that does not match.
    #[error("the frame is corrupt")]
    Corrupt,
    /// The checksums match but the payload does not parse (written by an
    /// incompatible version).
    #[error("the record inside the frame is malformed")]
    Malformed,
}

/// Appends frames to a buffer.
#[derive(Debug, Default)]
pub struct FrameWriter {
    /// Start of the frame under construction.
    start: usize,
}

impl FrameWriter {
    /// Writes the frame header placeholder and the record head (everything
    /// but the value); the caller appends the value to `buf` next.
    pub fn begin(
        &mut self,
        buf: &mut Vec<u8>,
        kind: RecordKind,
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        written_at_ms: u64,
    ) {
        self.start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        buf.push(VERSION);
        buf.push(kind_byte(kind));
        buf.extend_from_slice(&written_at_ms.to_le_bytes());
        let topic = &topic.as_bytes()[..topic.len().min(usize::from(u16::MAX))];
        buf.extend_from_slice(&(topic.len() as u16).to_le_bytes());
        buf.extend_from_slice(topic);
        match key {
            Some(k) => {
                buf.extend_from_slice(&(k.len() as u32).to_le_bytes());
                buf.extend_from_slice(k);
            }
            None => buf.extend_from_slice(&NO_KEY.to_le_bytes()),
        }
        let headers = &headers[..headers.len().min(usize::from(u8::MAX))];
        buf.push(headers.len() as u8);
        for (name, value) in headers {
            let name = &name.as_bytes()[..name.len().min(usize::from(u16::MAX))];
            buf.extend_from_slice(&(name.len() as u16).to_le_bytes());
            buf.extend_from_slice(name);
            match value {
                Some(v) => {
                    buf.extend_from_slice(&(v.len() as u32).to_le_bytes());
                    buf.extend_from_slice(v);
                }
                None => buf.extend_from_slice(&NO_VALUE.to_le_bytes()),
            }
        }
    }

    /// Writes the frame header placeholder, the version and the kind only;
    /// the caller appends the rest of the payload (migration of the previous
    /// layout, whose payload continues the same way).
    pub fn begin_raw(&mut self, buf: &mut Vec<u8>, kind: RecordKind) {
        self.start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        buf.push(VERSION);
        buf.push(kind_byte(kind));
    }

    /// Drops the frame under construction (its value could not be written).
    pub fn abandon(&self, buf: &mut Vec<u8>) {
        buf.truncate(self.start);
    }

    /// Fills in magic, length and payload checksum; returns the frame's
    /// range in `buf`. Sequence number and header checksum come at append
    /// time ([`stamp`]).
    pub fn finish(&self, buf: &mut [u8]) -> std::ops::Range<usize> {
        let payload = &buf[self.start + FRAME_HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        let h = &mut buf[self.start..self.start + FRAME_HEADER];
        h[0..4].copy_from_slice(&MAGIC);
        h[4..8].copy_from_slice(&len.to_le_bytes());
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        self.start..buf.len()
    }
}

fn kind_byte(kind: RecordKind) -> u8 {
    match kind {
        RecordKind::Event => KIND_EVENT,
        RecordKind::Invalid => KIND_INVALID,
    }
}

/// Gives the frame at the start of `frame` its sequence number and the
/// header checksum under `salt`.
pub fn stamp(frame: &mut [u8], seq: u64, salt: u64) {
    frame[8..16].copy_from_slice(&seq.to_le_bytes());
    let crc = header_crc(salt, &frame[..CHECKED_HEADER]);
    frame[CHECKED_HEADER..FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn header_crc(salt: u64, header: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&salt.to_le_bytes());
    h.update(header);
    h.finalize()
}

/// Encodes one record as a stamped frame appended to `buf` (tests and
/// tools; the pipeline uses [`FrameWriter`] to serialize values in place).
pub fn encode(
    buf: &mut Vec<u8>,
    record: &Record<'_>,
    kind: RecordKind,
    written_at_ms: u64,
    seq: u64,
    salt: u64,
) {
    let mut w = FrameWriter::default();
    w.begin(
        buf,
        kind,
        record.topic,
        record.key,
        &record.headers,
        written_at_ms,
    );
    buf.extend_from_slice(record.value);
    let range = w.finish(buf);
    stamp(&mut buf[range], seq, salt);
}

/// Verifies the frame at the start of `data` under `salt`.
pub fn verify(data: &[u8], salt: u64) -> Result<Verified<'_>, FrameError> {
    if data.len() < FRAME_HEADER {
        return Err(if MAGIC.starts_with(&data[..data.len().min(MAGIC.len())]) {
            FrameError::Torn
        } else {
            FrameError::Corrupt
        });
    }
    if data[..4] != MAGIC {
        return Err(FrameError::Corrupt);
    }
    let word = |at: usize| u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]);
    if header_crc(salt, &data[..CHECKED_HEADER]) != word(CHECKED_HEADER) {
        return Err(FrameError::Corrupt);
    }
    let len = word(4) as usize;
    if len > MAX_PAYLOAD {
        return Err(FrameError::Corrupt);
    }
    let end = FRAME_HEADER + len;
    if data.len() < end {
        return Err(FrameError::Torn);
    }
    let payload = &data[FRAME_HEADER..end];
    if crc32fast::hash(payload) != word(16) {
        return Err(FrameError::Corrupt);
    }
    let mut seq = [0u8; 8];
    seq.copy_from_slice(&data[8..16]);
    Ok(Verified {
        seq: u64::from_le_bytes(seq),
        payload,
        len: end,
    })
}

/// Parses a payload whose checksum matched.
pub fn decode_payload(p: &[u8]) -> Result<Framed<'_>, FrameError> {
    let mut r = Cursor { data: p, pos: 0 };
    if r.u8()? != VERSION {
        return Err(FrameError::Malformed);
    }
    let kind = match r.u8()? {
        KIND_EVENT => RecordKind::Event,
        KIND_INVALID => RecordKind::Invalid,
        _ => return Err(FrameError::Malformed),
    };
    let written_at_ms = r.u64()?;
    let topic_len = usize::from(r.u16()?);
    let topic = std::str::from_utf8(r.take(topic_len)?).map_err(|_| FrameError::Malformed)?;
    let key = match r.u32()? {
        NO_KEY => None,
        n => Some(r.take(n as usize)?),
    };
    let count = r.u8()?;
    let mut headers = Vec::with_capacity(usize::from(count));
    for _ in 0..count {
        let name_len = usize::from(r.u16()?);
        let name = std::str::from_utf8(r.take(name_len)?).map_err(|_| FrameError::Malformed)?;
        let value = match r.u32()? {
            NO_VALUE => None,
            n => Some(r.take(n as usize)?),
        };
        headers.push((name, value));
    }
    Ok(Framed {
        record: Record {
            topic,
            key,
            headers: headers.into(),
            value: &p[r.pos..],
        },
        kind,
        written_at_ms,
    })
}

/// Reads the frame at the start of `data` and parses its record.
pub fn decode(data: &[u8], salt: u64) -> Result<(Framed<'_>, Verified<'_>), FrameError> {
    let v = verify(data, salt)?;
    Ok((decode_payload(v.payload)?, v))
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], FrameError> {
        let end = self.pos.checked_add(n).ok_or(FrameError::Malformed)?;
        let s = self.data.get(self.pos..end).ok_or(FrameError::Malformed)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], FrameError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, FrameError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, FrameError> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, FrameError> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, FrameError> {
        Ok(u64::from_le_bytes(self.array()?))
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const AT: u64 = 1_700_000_000_000;
    const SALT: u64 = 0x5eed;

    fn sample<'a>() -> Record<'a> {
        Record {
            topic: "tracking.raw.events",
            key: Some(b"visitor-1"),
            headers: vec![("source", Some(&b"web"[..])), ("empty", None)].into(),
            value: br#"{"type":"track"}"#,
        }
    }

    #[test]
    fn a_record_round_trips_through_a_frame_with_its_sequence_number_and_kind() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), RecordKind::Invalid, AT, 42, SALT);
        let (f, v) = decode(&buf, SALT).expect("frame");
        assert_eq!(v.len, buf.len());
        assert_eq!(v.seq, 42);
        assert_eq!(f.record, sample());
        assert_eq!(f.kind, RecordKind::Invalid);
        assert_eq!(f.written_at_ms, AT);
    }

    #[test]
    fn every_flipped_bit_is_detected_and_a_cut_frame_is_never_a_record() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), RecordKind::Event, AT, 7, SALT);
        for cut in 0..buf.len() {
            assert!(decode(&buf[..cut], SALT).is_err(), "cut at {cut}");
        }
        for bit in 0..buf.len() * 8 {
            let mut flipped = buf.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(verify(&flipped, SALT).is_err(), "bit {bit}");
        }
        // Another segment's salt does not verify either.
        assert_eq!(verify(&buf, SALT + 1).err(), Some(FrameError::Corrupt));
    }

    #[test]
    fn an_abandoned_frame_leaves_the_buffer_as_it_was() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), RecordKind::Event, AT, 1, SALT);
        let before = buf.clone();
        let mut w = FrameWriter::default();
        w.begin(&mut buf, RecordKind::Event, "t", None, &[], 1);
        buf.extend_from_slice(b"partial");
        w.abandon(&mut buf);
        assert_eq!(buf, before);
    }

    /// topic, key, headers, value, write time.
    type Arb = (
        String,
        Option<Vec<u8>>,
        Vec<(String, Option<Vec<u8>>)>,
        Vec<u8>,
        u64,
    );

    fn arb_record() -> impl Strategy<Value = Arb> {
        (
            "[a-z.]{0,40}",
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
            proptest::collection::vec(
                (
                    "[a-z-]{0,12}",
                    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..32)),
                ),
                0..5,
            ),
            proptest::collection::vec(any::<u8>(), 0..512),
            any::<u64>(),
        )
    }

    proptest! {
        #[test]
        fn any_sequence_of_records_decodes_to_itself_and_a_torn_tail_is_detected(
            records in proptest::collection::vec(arb_record(), 1..8),
            cut in any::<prop::sample::Index>(),
        ) {
            let mut buf = Vec::new();
            let mut ends = Vec::new();
            for (seq, (topic, key, headers, value, at)) in records.iter().enumerate() {
                let headers: Vec<(&str, Option<&[u8]>)> =
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
                encode(&mut buf, &Record {
                    topic, key: key.as_deref(), headers: headers.into(), value,
                }, RecordKind::Event, *at, seq as u64, SALT);
                ends.push(buf.len());
            }
            let mut pos = 0;
            for (seq, (topic, key, headers, value, at)) in records.iter().enumerate() {
                let (f, v) = decode(&buf[pos..], SALT).expect("frame");
                let r = &f.record;
                prop_assert_eq!(v.seq, seq as u64);
                prop_assert_eq!(r.topic, topic.as_str());
                prop_assert_eq!(r.key, key.as_deref());
                prop_assert_eq!(r.headers.len(), headers.len());
                for ((n, v), (en, ev)) in r.headers.iter().zip(headers) {
                    prop_assert_eq!(*n, en.as_str());
                    prop_assert_eq!(*v, ev.as_deref());
                }
                prop_assert_eq!(r.value, value.as_slice());
                prop_assert_eq!(f.written_at_ms, *at);
                pos += v.len;
            }
            prop_assert_eq!(pos, buf.len());

            // Cut anywhere: every whole frame before the cut still decodes,
            // and the cut frame is never returned as a record.
            let cut = cut.index(buf.len());
            let whole = ends.iter().filter(|e| **e <= cut).count();
            let mut pos = 0;
            let mut decoded = 0;
            while let Ok((_, v)) = decode(&buf[pos..cut], SALT) {
                pos += v.len;
                decoded += 1;
            }
            prop_assert_eq!(decoded, whole);
        }
    }
}
