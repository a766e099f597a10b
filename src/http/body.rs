//! Request body decoding: content type, content encoding and size limits.
//!
//! `application/json` and `text/plain` (what `navigator.sendBeacon` sends)
//! are both read as JSON; a missing content type is read as JSON too, as
//! some server-side libraries omit it. `gzip` and `deflate` are decoded with
//! a hard cap on the decompressed size: decoding stops at the cap, so a
//! decompression bomb costs at most `max_request_bytes` of memory.

use std::io::Read;
use std::time::Duration;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_TYPE};
use http::HeaderMap;
use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;

use super::error::ApiError;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// Checks the content type: JSON and plain text are accepted.
pub fn check_content_type(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(ct) = headers.get(CONTENT_TYPE) else {
        return Ok(());
    };
    let ct = ct.to_str().map_err(|_| ApiError::UnsupportedContentType)?;
    let mime = ct.split(';').next().unwrap_or("").trim();
    if mime.eq_ignore_ascii_case("application/json")
        || mime.eq_ignore_ascii_case("text/plain")
        || mime.is_empty()
    {
        Ok(())
    } else {
        Err(ApiError::UnsupportedContentType)
    }
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
    let collected = match tokio::time::timeout(timeout, limited.collect()).await {
        Err(_) => return Err(ApiError::BodyTimeout),
        Ok(Err(e)) => {
            return Err(
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ApiError::PayloadTooLarge(max)
                } else {
                    ApiError::BodyRead
                },
            )
        }
        Ok(Ok(c)) => c.to_bytes(),
    };
    decode(enc, collected, max)
}

/// Decodes an already received body per its `Content-Encoding`, refusing
/// more than `max` bytes after decompression (what [`read`] does once the
/// bytes are in).
pub fn decode_received(headers: &HeaderMap, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
    if raw.len() > max {
        return Err(ApiError::PayloadTooLarge(max));
    }
    decode(encoding(headers)?, raw, max)
}

fn decode(enc: Encoding, raw: Bytes, max: usize) -> Result<Bytes, ApiError> {
    match enc {
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
    fn content_types() {
        let mut h = HeaderMap::new();
        assert!(check_content_type(&h).is_ok());
        for ok in [
            "application/json",
            "text/plain;charset=UTF-8",
            "Application/JSON; charset=utf-8",
        ] {
            h.insert(CONTENT_TYPE, ok.parse().unwrap());
            assert!(check_content_type(&h).is_ok(), "{ok}");
        }
        for bad in ["application/xml", "multipart/form-data; boundary=x"] {
            h.insert(CONTENT_TYPE, bad.parse().unwrap());
            assert!(check_content_type(&h).is_err(), "{bad}");
        }
        h.insert(CONTENT_ENCODING, "br".parse().unwrap());
        assert!(matches!(
            encoding(&h),
            Err(ApiError::UnsupportedContentEncoding)
        ));
    }
}
