//! The browser SDK, served first-party by the gateway itself
//! (`GET|HEAD {sdk.path}`, default `/sdk/trackgate.min.js`), so a site needs
//! nothing but the gateway's origin and a write key, and the script comes
//! from the same host as the API (no third-party script host to block or
//! to trust).
//!
//! The bundle is the committed build `sdk-js/release/trackgate.min.js`,
//! embedded at compile time (a clean clone builds and serves it without
//! Node), or the file `sdk.file` read once at start. It is compressed once
//! at start (gzip and Brotli, at their highest levels) and answered with a
//! strong `ETag` (a hash of the bundle), `If-None-Match` → 304, a long
//! `Cache-Control` and `Vary: Accept-Encoding`.

use std::io::Write;

use bytes::Bytes;
use http::header::{
    HeaderValue, ACCEPT_ENCODING, ACCESS_CONTROL_ALLOW_ORIGIN, ALLOW, CACHE_CONTROL,
    CONTENT_ENCODING, CONTENT_TYPE, ETAG, IF_NONE_MATCH, VARY,
};
use http::{HeaderMap, Method, Response, StatusCode};
use http_body_util::Full;
use sha2::{Digest, Sha256};

use super::response::Body;

/// The SDK as built from `sdk-js/` (`npm run release`).
pub const EMBEDDED_BUNDLE: &[u8] = include_bytes!("../../sdk-js/release/trackgate.min.js");

/// Brotli window size (log2), the format's usual maximum for text.
const BROTLI_WINDOW: u32 = 22;
/// Brotli's highest quality; compression runs once at start.
const BROTLI_QUALITY: u32 = 11;

/// `[sdk]`: lives in `config` with the other sections.
pub use crate::config::SdkConfig;

#[derive(Debug, thiserror::Error)]
pub enum SdkError {
    #[error("cannot read sdk.file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot compress the SDK: {0}")]
    Compress(std::io::Error),
}

/// The script in its three encodings, ready to answer.
#[derive(Debug)]
pub struct SdkAsset {
    path: String,
    identity: Bytes,
    gzip: Bytes,
    brotli: Bytes,
    etag: HeaderValue,
    cache_control: HeaderValue,
}

impl SdkAsset {
    /// Reads (or takes the embedded) bundle and compresses it; `None` when
    /// serving is off.
    pub fn load(cfg: &SdkConfig) -> Result<Option<SdkAsset>, SdkError> {
        if !cfg.enabled {
            return Ok(None);
        }
        let bundle = match &cfg.file {
            Some(path) => std::fs::read(path).map_err(|source| SdkError::Read {
                path: path.display().to_string(),
                source,
            })?,
            None => EMBEDDED_BUNDLE.to_vec(),
        };
        SdkAsset::new(&cfg.path, bundle, cfg.max_age_secs).map(Some)
    }

    fn new(path: &str, bundle: Vec<u8>, max_age_secs: u64) -> Result<SdkAsset, SdkError> {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&bundle).map_err(SdkError::Compress)?;
        let gzip = gz.finish().map_err(SdkError::Compress)?;
        let mut brotli = Vec::new();
        {
            let mut w =
                brotli::CompressorWriter::new(&mut brotli, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
            w.write_all(&bundle).map_err(SdkError::Compress)?;
        }
        let digest = Sha256::digest(&bundle);
        let hex: String = digest[..8].iter().map(|b| format!("{b:02x}")).collect();
        let etag = HeaderValue::from_str(&format!("\"{hex}\"")).map_err(|e| {
            SdkError::Compress(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
        })?;
        let cache_control = HeaderValue::from_str(&format!("public, max-age={max_age_secs}"))
            .map_err(|e| {
                SdkError::Compress(std::io::Error::new(std::io::ErrorKind::InvalidData, e))
            })?;
        Ok(SdkAsset {
            path: path.to_string(),
            identity: Bytes::from(bundle),
            gzip: Bytes::from(gzip),
            brotli: Bytes::from(brotli),
            etag,
            cache_control,
        })
    }

    /// Whether a request path is the script's.
    pub fn matches(&self, path: &str) -> bool {
        path == self.path
    }

    /// Answers a request for the script.
    pub fn serve(&self, method: &Method, headers: &HeaderMap) -> Response<Body> {
        if method != Method::GET && method != Method::HEAD {
            let mut r = Response::new(Full::new(Bytes::new()));
            *r.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
            r.headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return r;
        }
        let fresh = headers
            .get_all(IF_NONE_MATCH)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t.as_bytes() == self.etag.as_bytes());
        let (status, encoding, body) = if fresh {
            (StatusCode::NOT_MODIFIED, None, Bytes::new())
        } else {
            let (encoding, body) = match preferred_encoding(headers) {
                Encoding::Brotli => (Some("br"), self.brotli.clone()),
                Encoding::Gzip => (Some("gzip"), self.gzip.clone()),
                Encoding::Identity => (None, self.identity.clone()),
            };
            let body = if method == Method::HEAD {
                Bytes::new()
            } else {
                body
            };
            (StatusCode::OK, encoding, body)
        };
        let mut r = Response::new(Full::new(body));
        *r.status_mut() = status;
        let h = r.headers_mut();
        h.insert(ETAG, self.etag.clone());
        h.insert(CACHE_CONTROL, self.cache_control.clone());
        h.insert(VARY, HeaderValue::from_static("Accept-Encoding"));
        // A script any page may load (and read, e.g. for SRI checks).
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        if status == StatusCode::OK {
            h.insert(
                CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            );
            if let Some(e) = encoding {
                h.insert(CONTENT_ENCODING, HeaderValue::from_static(e));
            }
        }
        r
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Brotli,
    Gzip,
    Identity,
}

/// The smallest encoding the client accepts (`q=0` refuses one).
fn preferred_encoding(headers: &HeaderMap) -> Encoding {
    let mut br = false;
    let mut gzip = false;
    for item in headers
        .get_all(ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
    {
        let mut parts = item.split(';');
        let name = parts.next().unwrap_or("").trim();
        let refused = parts.any(|p| {
            p.trim()
                .strip_prefix("q=")
                .and_then(|q| q.trim().parse::<f32>().ok())
                .is_some_and(|q| q <= 0.0)
        });
        if refused {
            continue;
        }
        if name.eq_ignore_ascii_case("br") {
            br = true;
        } else if name.eq_ignore_ascii_case("gzip") || name == "*" {
            gzip = true;
        }
    }
    if br {
        Encoding::Brotli
    } else if gzip {
        Encoding::Gzip
    } else {
        Encoding::Identity
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn asset() -> SdkAsset {
        SdkAsset::load(&SdkConfig::default()).unwrap().unwrap()
    }

    fn get(a: &SdkAsset, headers: &[(&str, &str)]) -> Response<Body> {
        let mut h = HeaderMap::new();
        for (k, v) in headers {
            h.append(
                http::header::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        a.serve(&Method::GET, &h)
    }

    async fn body(r: Response<Body>) -> Vec<u8> {
        use http_body_util::BodyExt;
        r.into_body().collect().await.unwrap().to_bytes().to_vec()
    }

    #[tokio::test]
    async fn every_encoding_decodes_to_the_embedded_bundle() {
        let a = asset();
        let plain = get(&a, &[]);
        assert!(plain.headers().get(CONTENT_ENCODING).is_none());
        assert_eq!(body(plain).await, EMBEDDED_BUNDLE);

        let gz = get(&a, &[("accept-encoding", "gzip, deflate")]);
        assert_eq!(gz.headers()[CONTENT_ENCODING], "gzip");
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(&body(gz).await[..])
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, EMBEDDED_BUNDLE);

        let br = get(&a, &[("accept-encoding", "gzip, deflate, br, zstd")]);
        assert_eq!(br.headers()[CONTENT_ENCODING], "br");
        let compressed = body(br).await;
        assert!(compressed.len() < EMBEDDED_BUNDLE.len() / 2);
        let mut out = Vec::new();
        brotli::Decompressor::new(&compressed[..], 4096)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, EMBEDDED_BUNDLE);
    }

    #[tokio::test]
    async fn refused_encodings_are_not_used() {
        let a = asset();
        let r = get(&a, &[("accept-encoding", "br;q=0, gzip;q=0.5")]);
        assert_eq!(r.headers()[CONTENT_ENCODING], "gzip");
        let r = get(&a, &[("accept-encoding", "identity")]);
        assert!(r.headers().get(CONTENT_ENCODING).is_none());
    }

    #[tokio::test]
    async fn etag_revalidation_answers_304_without_a_body() {
        let a = asset();
        let first = get(&a, &[]);
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[ETAG].to_str().unwrap().to_string();
        assert!(etag.starts_with('"') && etag.len() == 18, "{etag}");
        assert_eq!(first.headers()[CACHE_CONTROL], "public, max-age=604800");
        assert_eq!(first.headers()[VARY], "Accept-Encoding");
        assert_eq!(
            first.headers()[CONTENT_TYPE],
            "text/javascript; charset=utf-8"
        );

        let again = get(&a, &[("if-none-match", &format!("\"x\", {etag}"))]);
        assert_eq!(again.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(again.headers()[ETAG], etag.as_str());
        assert!(body(again).await.is_empty());

        let stale = get(&a, &[("if-none-match", "\"0000000000000000\"")]);
        assert_eq!(stale.status(), StatusCode::OK);
    }

    #[test]
    fn a_configured_file_replaces_the_embedded_bundle() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("custom.js");
        std::fs::write(&f, b"window.custom=1").unwrap();
        let cfg = SdkConfig {
            file: Some(f),
            path: "/assets/a.js".into(),
            ..SdkConfig::default()
        };
        let a = SdkAsset::load(&cfg).unwrap().unwrap();
        assert!(a.matches("/assets/a.js"));
        assert!(!a.matches("/sdk/trackgate.min.js"));
        assert_eq!(&a.identity[..], b"window.custom=1");
        assert_ne!(a.etag, asset().etag);

        let missing = SdkConfig {
            file: Some(dir.path().join("nope.js")),
            ..SdkConfig::default()
        };
        assert!(matches!(
            SdkAsset::load(&missing),
            Err(SdkError::Read { .. })
        ));
        let off = SdkConfig {
            enabled: false,
            ..SdkConfig::default()
        };
        assert!(SdkAsset::load(&off).unwrap().is_none());
    }

    #[test]
    fn paths_are_validated() {
        for bad in ["", "/", "sdk.js", "/v1/sdk.js", "/a.js?x=1"] {
            let c = SdkConfig {
                path: bad.into(),
                ..SdkConfig::default()
            };
            assert!(c.validate("").is_err(), "{bad}");
        }
        assert!(SdkConfig::default().validate("").is_ok());
        let under_api = SdkConfig {
            path: "/collect/v1/sdk.js".into(),
            ..SdkConfig::default()
        };
        assert!(under_api.validate("/collect").is_err());
        assert!(under_api.validate("").is_ok());
    }

    #[test]
    fn other_methods_are_refused() {
        let a = asset();
        let r = a.serve(&Method::POST, &HeaderMap::new());
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "GET, HEAD");
    }
}
