//! Response builders: JSON success and error bodies, the pixel GIF.

use bytes::Bytes;
use http::header::{HeaderValue, ALLOW, CACHE_CONTROL, CONTENT_TYPE, EXPIRES, PRAGMA, RETRY_AFTER};
use http::{Response, StatusCode};
use http_body_util::Full;

use super::error::ApiError;
use crate::ingest::Outcome;

pub type Body = Full<Bytes>;

/// The smallest transparent 1×1 GIF.
pub const PIXEL_GIF: &[u8] = &[
    0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
];

const JSON: HeaderValue = HeaderValue::from_static("application/json");

pub fn json(status: StatusCode, body: Vec<u8>) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(CONTENT_TYPE, JSON);
    r
}

pub fn success(out: &Outcome) -> Response<Body> {
    let mut body = Vec::with_capacity(64);
    body.extend_from_slice(br#"{"success":true,"accepted":"#);
    body.extend_from_slice(itoa::Buffer::new().format(out.accepted).as_bytes());
    body.extend_from_slice(br#","rejected":"#);
    body.extend_from_slice(itoa::Buffer::new().format(out.rejected).as_bytes());
    if out.dropped > 0 {
        body.extend_from_slice(br#","dropped":"#);
        body.extend_from_slice(itoa::Buffer::new().format(out.dropped).as_bytes());
    }
    body.push(b'}');
    json(StatusCode::OK, body)
}

pub fn error(err: &ApiError, retry_after_secs: u32) -> Response<Body> {
    // Written by hand to keep the documented key order. `code` repeats
    // `error` for the clients that read that field (see `error`).
    let message = serde_json::Value::String(err.to_string());
    let code = err.code();
    let body =
        format!(r#"{{"success":false,"error":"{code}","code":"{code}","message":{message}}}"#);
    let mut r = json(err.status(), body.into_bytes());
    if let ApiError::MethodNotAllowed(methods) = err {
        r.headers_mut()
            .insert(ALLOW, HeaderValue::from_static(methods));
    }
    if err.status() == StatusCode::SERVICE_UNAVAILABLE
        || err.status() == StatusCode::TOO_MANY_REQUESTS
    {
        let secs = err.retry_after_secs().unwrap_or(retry_after_secs);
        r.headers_mut().insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    r
}

pub fn pixel() -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::from_static(PIXEL_GIF)));
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("image/gif"));
    h.insert(
        CACHE_CONTROL,
        HeaderValue::from_static("no-cache, no-store, must-revalidate, private, max-age=0"),
    );
    h.insert(PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(EXPIRES, HeaderValue::from_static("0"));
    r
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = status;
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    fn body_json(r: Response<Body>) -> serde_json::Value {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = rt.block_on(r.into_body().collect()).unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[test]
    fn error_body_carries_the_code_twice_and_a_message() {
        let r = error(&ApiError::InvalidWriteKey, 1);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let j = body_json(r);
        assert_eq!(j["success"], false);
        assert_eq!(j["error"], "invalid_write_key");
        assert_eq!(j["code"], "invalid_write_key");
        assert_eq!(j["message"], "unknown write key");
    }

    #[test]
    fn method_not_allowed_names_the_allowed_methods() {
        let r = error(&ApiError::MethodNotAllowed("POST, OPTIONS"), 1);
        assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(r.headers()[ALLOW], "POST, OPTIONS");
        assert!(r.headers().get(RETRY_AFTER).is_none());
    }
}
