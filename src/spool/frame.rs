//! Record framing: how one Kafka record is laid out on the spool.
//!
//! A frame is `len: u32 LE | crc32(payload): u32 LE | payload`, where the
//! payload is the record exactly as it is produced:
//!
//! ```text
//! version u8 | written_at_ms u64 | topic_len u16 | topic
//! | key_len u32 (NO_KEY: none) | key
//! | header_count u8 | (name_len u16 | name | value_len u32 | value)*
//! | value (the rest of the payload)
//! ```
//!
//! The value comes last so that the pipeline serializes an event straight
//! into the frame buffer (no copy): [`FrameWriter::begin`] writes the head,
//! the caller appends the value, [`FrameWriter::finish`] fills in length and
//! checksum. A reader that finds a length running past the end of the data
//! or a checksum that does not match knows the frame is torn or corrupt.

use crate::sink::Record;

/// Bytes before a frame's payload: length and checksum.
pub const FRAME_HEADER: usize = 8;

/// Largest payload a frame may announce; anything larger is corruption
/// (the gateway's own limits keep records far below it).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;

/// Version byte of the payload layout above.
const VERSION: u8 = 1;

/// `key_len` of a record without a key.
const NO_KEY: u32 = u32::MAX;

/// `value_len` of a header without a value.
const NO_VALUE: u32 = u32::MAX;

/// One record read from a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Framed<'a> {
    pub record: Record<'a>,
    /// When the record was spooled (milliseconds since the Unix epoch).
    pub written_at_ms: u64,
}

/// Why bytes are not a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    /// The data ends inside the frame (a write cut short by a crash).
    #[error("the frame is cut short")]
    Torn,
    /// The length is impossible or the checksum does not match.
    #[error("the frame is corrupt")]
    Corrupt,
    /// The checksum matches but the payload does not parse (written by an
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
        topic: &str,
        key: Option<&[u8]>,
        headers: &[(&str, Option<&[u8]>)],
        written_at_ms: u64,
    ) {
        self.start = buf.len();
        buf.extend_from_slice(&[0u8; FRAME_HEADER]);
        buf.push(VERSION);
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

    /// Drops the frame under construction (its value could not be written).
    pub fn abandon(&self, buf: &mut Vec<u8>) {
        buf.truncate(self.start);
    }

    /// Fills in length and checksum; returns the frame's range in `buf`.
    pub fn finish(&self, buf: &mut [u8]) -> std::ops::Range<usize> {
        let payload = &buf[self.start + FRAME_HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        buf[self.start..self.start + 4].copy_from_slice(&len.to_le_bytes());
        buf[self.start + 4..self.start + FRAME_HEADER].copy_from_slice(&crc.to_le_bytes());
        self.start..buf.len()
    }
}

/// Encodes one record as a frame appended to `buf` (tests and tools; the
/// pipeline uses [`FrameWriter`] to serialize values in place).
pub fn encode(buf: &mut Vec<u8>, record: &Record<'_>, written_at_ms: u64) {
    let mut w = FrameWriter::default();
    w.begin(
        buf,
        record.topic,
        record.key,
        &record.headers,
        written_at_ms,
    );
    buf.extend_from_slice(record.value);
    w.finish(buf);
}

/// Reads the frame at the start of `data`: its payload and the frame's
/// total length.
pub fn next_frame(data: &[u8]) -> Result<(&[u8], usize), FrameError> {
    if data.len() < FRAME_HEADER {
        return Err(FrameError::Torn);
    }
    let len = u32::from_le_bytes([data[0], data[1], data[2], data[3]]) as usize;
    let crc = u32::from_le_bytes([data[4], data[5], data[6], data[7]]);
    if len > MAX_PAYLOAD {
        return Err(FrameError::Corrupt);
    }
    let end = FRAME_HEADER + len;
    if data.len() < end {
        return Err(FrameError::Torn);
    }
    let payload = &data[FRAME_HEADER..end];
    if crc32fast::hash(payload) != crc {
        return Err(FrameError::Corrupt);
    }
    Ok((payload, end))
}

/// Parses a payload whose checksum matched.
pub fn decode_payload(p: &[u8]) -> Result<Framed<'_>, FrameError> {
    let mut r = Cursor { data: p, pos: 0 };
    if r.u8()? != VERSION {
        return Err(FrameError::Malformed);
    }
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
        written_at_ms,
    })
}

/// Reads the frame at the start of `data` and parses its record.
pub fn decode(data: &[u8]) -> Result<(Framed<'_>, usize), FrameError> {
    let (payload, len) = next_frame(data)?;
    Ok((decode_payload(payload)?, len))
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

    fn sample<'a>() -> Record<'a> {
        Record {
            topic: "tracking.raw.events",
            key: Some(b"visitor-1"),
            headers: vec![("source", Some(&b"web"[..])), ("empty", None)].into(),
            value: br#"{"type":"track"}"#,
        }
    }

    #[test]
    fn a_record_round_trips_through_a_frame() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), AT);
        let (f, len) = decode(&buf).expect("frame");
        assert_eq!(len, buf.len());
        assert_eq!(f.record, sample());
        assert_eq!(f.written_at_ms, AT);
    }

    #[test]
    fn a_flipped_bit_is_corrupt_and_a_cut_frame_is_torn() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), AT);
        for cut in 0..buf.len() {
            assert_eq!(
                decode(&buf[..cut]).err(),
                Some(FrameError::Torn),
                "cut at {cut}"
            );
        }
        let mut flipped = buf.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(decode(&flipped).err(), Some(FrameError::Corrupt));
        let mut huge = buf;
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(decode(&huge).err(), Some(FrameError::Corrupt));
    }

    #[test]
    fn an_abandoned_frame_leaves_the_buffer_as_it_was() {
        let mut buf = Vec::new();
        encode(&mut buf, &sample(), AT);
        let before = buf.clone();
        let mut w = FrameWriter::default();
        w.begin(&mut buf, "t", None, &[], 1);
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
            for (topic, key, headers, value, at) in &records {
                let headers: Vec<(&str, Option<&[u8]>)> =
                    headers.iter().map(|(n, v)| (n.as_str(), v.as_deref())).collect();
                encode(&mut buf, &Record {
                    topic, key: key.as_deref(), headers: headers.into(), value,
                }, *at);
                ends.push(buf.len());
            }
            let mut pos = 0;
            for (topic, key, headers, value, at) in &records {
                let (f, len) = decode(&buf[pos..]).expect("frame");
                let r = &f.record;
                prop_assert_eq!(r.topic, topic.as_str());
                prop_assert_eq!(r.key, key.as_deref());
                prop_assert_eq!(r.headers.len(), headers.len());
                for ((n, v), (en, ev)) in r.headers.iter().zip(headers) {
                    prop_assert_eq!(*n, en.as_str());
                    prop_assert_eq!(*v, ev.as_deref());
                }
                prop_assert_eq!(r.value, value.as_slice());
                prop_assert_eq!(f.written_at_ms, *at);
                pos += len;
            }
            prop_assert_eq!(pos, buf.len());

            // Cut anywhere: every whole frame before the cut still decodes,
            // and the cut frame is reported torn, never as a record.
            let cut = cut.index(buf.len());
            let whole = ends.iter().filter(|e| **e <= cut).count();
            let mut pos = 0;
            let mut decoded = 0;
            loop {
                match decode(&buf[pos..cut]) {
                    Ok((_, len)) => { pos += len; decoded += 1; }
                    Err(e) => {
                        prop_assert_eq!(e, FrameError::Torn);
                        break;
                    }
                }
            }
            prop_assert_eq!(decoded, whole);
        }
    }
}
