//! Request body decoding: content encoding and size limits.
//!
//! The body is read as JSON whatever its `Content-Type` says, as the Segment
//! API does: clients label the same JSON `application/json`, `text/plain`
//! (`navigator.sendBeacon`, the mobile libraries), nothing at all, or even
//! `application/x-www-form-urlencoded` (an HTTP library's default for a
//! byte body, e.g. RudderStack's Node SDK). A body that is not JSON gets a
//! 400 `invalid_json` from the decoder, never a 415 that clients do not retry
//! and silently drop.
//!
//! Admission (see `admission`) charges the body as it is read: the bytes
//! received so far (an announced `Content-Length` was charged when the
//! head arrived), then the decompressed size. A charge over the client's
//! share or the global budget ends the read with 503 `overloaded`.
//!
//! `gzip` and `deflate` are decoded with a hard cap on the decompressed
//! size: decoding stops at the cap, so a decompression bomb costs at most
//! `max_request_bytes` of memory. A gzip body sent without its
//! `Content-Encoding` is recognised by its magic bytes (JSON cannot start
//! with them) and decoded too.

use std::io::Read;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::header::CONTENT_ENCODING;
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::ApiError;
use crate::admission;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

fn encoding(headers: &HeaderMap) -> Result<Encoding, ApiError> {
    let Some(ce) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let ce = ce
        .to_str()
        .map_err(|_| ApiError::UnsupportedContentEncoding)?;
    match ce.trim().to_ascii_lowercase().as_str() {
        "" | "identity" => Ok(Encoding::Identity),
        "gzip" | "x-gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        _ => Err(ApiError::UnsupportedContentEncoding),
    }
}

/// Reads the whole body within `timeout`, refusing more than `max` bytes
/// (after decompression), and returns it decoded.
pub async fn read(
    headers: &HeaderMap,
    body: Incoming,
    max: usize,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    let enc = encoding(headers)?;
    let limited = Limited::new(body, max);
    let collected = match tokio::time::timeout(timeout, collect_charged(limited, max)).await {
        Err(_) => return Err(ApiError::BodyTimeout),
        Ok(r) => r?,
    };
    let compressed = enc != Encoding::Identity || collected.starts_with(&GZIP_MAGIC);
    // Inflating costs about what it produces: several times the bytes read.
    let work = if compressed {
        collected.len().saturating_mul(TYPICAL_COMPRESSION_RATIO)
    } else {
        0
    };
    let decoded = super::offload::heavy_owned(work, move || decode(enc, collected, max))
        .await
        .unwrap_or(Err(ApiError::BodyRead))?;
    admission::charge_to(decoded.len() as u64).map_err(|_| ApiError::Overloaded)?;
    Ok(decoded)
}

/// Reads every data frame of `body`, charging the bytes received so far as
/// they arrive. One frame is kept as it is; more are copied together once.
async fn collect_charged(mut body: Limited<Incoming>, max: usize) -> Result<Bytes, ApiError> {
    let mut first: Option<Bytes> = None;
    let mut joined: Option<BytesMut> = None;
    let mut received = 0u64;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                ApiError::PayloadTooLarge(max)
            } else {
                ApiError::BodyRead
            }
        })?;
        // Trailers carry no body bytes.
        let Ok(data) = frame.into_data() else {
            continue;
        };
        received += data.len() as u64;
        admission::charge_to(received).map_err(|_| ApiError::Overloaded)?;
        match (&mut joined, first.take()) {
            (Some(j), _) => j.extend_from_slice(&data),
            (None, None) => first = Some(data),
            (None, Some(f)) => {
                let mut j = BytesMut::with_capacity((received as usize).max(f.len() * 2));
                j.extend_from_slice(&f);
                j.extend_from_slice(&data);
                joined = Some(j);
            }
        }
    }
    Ok(match (joined, first) {
        (Some(j), _) => j.freeze(),
        (None, Some(f)) => f,
        (None, None) => Bytes::new(),
    })
}

/// How many times larger than its compressed form a tracking body
/// typically is (JSON of repetitive events under gzip), to judge how much
/// inflating it will cost before doing it.
pub const TYPICAL_COMPRESSION_RATIO: usize = 8;

/// Decodes an already received body per its `Content-Encoding`, refusing
/// more than `max` bytes after decompression (what [`read`] does once the
/// bytes are in).
pub fn decode_received(headers: &HeaderMap, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
    if raw.len() > max {
        return Err(ApiError::PayloadTooLarge(max));
    }
    decode(encoding(headers)?, raw, max)
}

/// The first two bytes of every gzip stream (RFC 1952).
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

fn decode(enc: Encoding, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
    match enc {
        Encoding::Identity if raw.starts_with(&GZIP_MAGIC) => {
            inflate(flate2::read::MultiGzDecoder::new(&raw[..]), max)
        }
        Encoding::Identity => Ok(raw),
        Encoding::Gzip => inflate(flate2::read::MultiGzDecoder::new(&raw[..]), max),
        Encoding::Deflate => {
            // RFC 9110 "deflate" is zlib-wrapped, but many clients send raw
            // deflate: try zlib first, then raw.
            inflate(flate2::read::ZlibDecoder::new(&raw[..]), max)
                .or_else(|_| inflate(flate2::read::DeflateDecoder::new(&raw[..]), max))
        }
    }
}

/// Decompresses at most `max` bytes; one byte more means the body is too large.
fn inflate(reader: impl Read, max: usize) -> Result<Bytes, ApiError> {
    let mut out = Vec::with_capacity(max.min(64 * 1024));
    let mut limited = reader.take(max as u64 + 1);
    limited
        .read_to_end(&mut out)
        .map_err(|_| ApiError::InvalidCompression)?;
    if out.len() > max {
        return Err(ApiError::PayloadTooLarge(max));
    }
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::write::{DeflateEncoder, GzEncoder, ZlibEncoder};
    use flate2::Compression;
    use std::io::Write;

    fn gz(data: &[u8]) -> Bytes {
        let mut e = GzEncoder::new(Vec::new(), Compression::default());
        e.write_all(data).unwrap();
        Bytes::from(e.finish().unwrap())
    }

    #[test]
    fn gzip_and_both_deflates_decode() {
        let data = br#"{"batch":[]}"#;
        assert_eq!(&decode(Encoding::Gzip, gz(data), 100).unwrap()[..], data);
        let mut z = ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(data).unwrap();
        let z = Bytes::from(z.finish().unwrap());
        assert_eq!(&decode(Encoding::Deflate, z, 100).unwrap()[..], data);
        let mut d = DeflateEncoder::new(Vec::new(), Compression::default());
        d.write_all(data).unwrap();
        let d = Bytes::from(d.finish().unwrap());
        assert_eq!(&decode(Encoding::Deflate, d, 100).unwrap()[..], data);
    }

    #[test]
    fn decompression_bomb_stops_at_the_cap() {
        let bomb = gz(&vec![b'a'; 10 * 1024 * 1024]);
        assert!(bomb.len() < 20 * 1024);
        let err = decode(Encoding::Gzip, bomb, 500 * 1024).unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge(_)));
        let exact = gz(&[b'a'; 1000]);
        assert_eq!(
            decode(Encoding::Gzip, exact.clone(), 1000).unwrap().len(),
            1000
        );
        assert!(decode(Encoding::Gzip, exact, 999).is_err());
    }

    #[test]
    fn garbage_is_invalid_compression() {
        let err = decode(Encoding::Gzip, Bytes::from_static(b"not gzip"), 100).unwrap_err();
        assert!(matches!(err, ApiError::InvalidCompression));
    }

    #[test]
    fn unlabelled_gzip_is_recognised_by_its_magic_bytes() {
        let data = br#"{"batch":[]}"#;
        assert_eq!(
            &decode(Encoding::Identity, gz(data), 100).unwrap()[..],
            data
        );
        let plain = Bytes::from_static(data);
        assert_eq!(
            decode(Encoding::Identity, plain.clone(), 100).unwrap(),
            plain
        );
    }

    #[test]
    fn unknown_encodings_are_refused() {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert!(matches!(
            encoding(&h),
            Err(ApiError::UnsupportedContentEncoding)
        ));
    }
}
