//! A minimal HTTP/1.1 client connection: one keep-alive connection per
//! worker, pre-built request bytes written in one go, the response head
//! parsed with `httparse` and its body read by `Content-Length`. Nothing is
//! pooled, so what the server sees is exactly `--connections` connections.

use std::net::SocketAddr;
use std::ops::Range;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Most response headers parsed.
const MAX_HEADERS: usize = 32;
/// Largest response head accepted.
const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Read buffer growth step.
const READ_CHUNK: usize = 16 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("the server closed the connection")]
    Closed,
    #[error("malformed response: {0}")]
    Malformed(String),
    #[error("chunked responses are not supported")]
    Chunked,
}

/// A response: status, where its body sits in the connection's buffer, and
/// whether the server will close the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    body: Range<usize>,
    pub close: bool,
}

pub struct Conn {
    stream: TcpStream,
    buf: Vec<u8>,
    /// Bytes of `buf` belonging to the previous response.
    used: usize,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> Result<Conn, ClientError> {
        let stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(Conn {
            stream,
            buf: Vec::with_capacity(READ_CHUNK),
            used: 0,
        })
    }

    /// Sends one request and reads its response.
    pub async fn exchange(&mut self, request: &[u8]) -> Result<Answer, ClientError> {
        self.buf.drain(..self.used);
        self.used = 0;
        self.stream.write_all(request).await?;
        loop {
            if let Some(answer) = parse(&self.buf)? {
                let end = answer.body.end;
                if self.buf.len() >= end {
                    self.used = end;
                    return Ok(answer);
                }
            }
            if self.buf.len() > MAX_HEAD_BYTES + READ_CHUNK * 64 {
                return Err(ClientError::Malformed("response too large".into()));
            }
            self.buf.reserve(READ_CHUNK);
            if self.stream.read_buf(&mut self.buf).await? == 0 {
                return Err(ClientError::Closed);
            }
        }
    }

    /// The body of the last answer.
    pub fn body(&self, answer: &Answer) -> &[u8] {
        &self.buf[answer.body.clone()]
    }
}

/// Parses a response head from `buf`; `None` while it is incomplete.
pub fn parse(buf: &[u8]) -> Result<Option<Answer>, ClientError> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut headers);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            if buf.len() > MAX_HEAD_BYTES {
                return Err(ClientError::Malformed("response head too large".into()));
            }
            return Ok(None);
        }
        Err(e) => return Err(ClientError::Malformed(e.to_string())),
    };
    let status = resp.code.unwrap_or(0);
    let mut length = 0usize;
    let mut close = resp.version == Some(0);
    for h in resp.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length") {
            length = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse().ok())
                .ok_or_else(|| ClientError::Malformed("bad content-length".into()))?;
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(ClientError::Chunked);
        } else if h.name.eq_ignore_ascii_case("connection") {
            let v = String::from_utf8_lossy(h.value).to_ascii_lowercase();
            if v.contains("close") {
                close = true;
            } else if v.contains("keep-alive") {
                close = false;
            }
        }
    }
    Ok(Some(Answer {
        status,
        body: head_len..head_len + length,
        close,
    }))
}

/// The event counts of a gateway success answer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
pub struct Counts {
    pub accepted: u32,
    pub rejected: u32,
    #[serde(default)]
    pub dropped: u32,
}

/// Reads the counts of a `{"success":true,"accepted":…}` body; `None` for
/// any other body (the ceiling server answers 204 without one).
pub fn counts(body: &[u8]) -> Option<Counts> {
    if body.is_empty() {
        return None;
    }
    serde_json::from_slice(body).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_heads_with_and_without_bodies() {
        let raw =
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 5\r\n\r\nhello";
        let a = parse(raw).unwrap().unwrap();
        assert_eq!(a.status, 200);
        assert_eq!(&raw[a.body.clone()], b"hello");
        assert!(!a.close);
        let a = parse(b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n")
            .unwrap()
            .unwrap();
        assert_eq!((a.status, a.body.len()), (204, 0));
        let a = parse(
            b"HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\ncontent-length: 0\r\n\r\n",
        )
        .unwrap()
        .unwrap();
        assert!(a.close);
        assert!(parse(b"HTTP/1.0 200 OK\r\n\r\n").unwrap().unwrap().close);
    }

    #[test]
    fn incomplete_and_bad_heads() {
        assert_eq!(parse(b"HTTP/1.1 200 OK\r\ncontent-le").unwrap(), None);
        assert!(parse(b"HTTX/1.1 200 OK\r\n\r\n").is_err());
        assert!(matches!(
            parse(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"),
            Err(ClientError::Chunked)
        ));
        assert!(parse(b"HTTP/1.1 200 OK\r\ncontent-length: x\r\n\r\n").is_err());
    }

    #[test]
    fn reads_gateway_counts() {
        assert_eq!(
            counts(br#"{"success":true,"accepted":49,"rejected":1}"#),
            Some(Counts {
                accepted: 49,
                rejected: 1,
                dropped: 0
            })
        );
        assert_eq!(
            counts(br#"{"success":true,"accepted":0,"rejected":0,"dropped":50}"#)
                .unwrap()
                .dropped,
            50
        );
        assert_eq!(counts(b""), None);
        assert_eq!(counts(br#"{"success":false,"error":"x"}"#), None);
    }
}
