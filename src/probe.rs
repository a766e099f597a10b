//! `trackgate probe`: asks a running gateway's admin listener whether it is
//! ready, for container health checks in images that have no shell, curl
//! or wget (the runtime image holds the gateway binary and its libraries
//! only). Exit 0 when `GET /readyz` answers 200, 1 otherwise.
//!
//! Plain HTTP/1.1 over loopback; the admin listener speaks nothing else.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use clap::Args;

/// Default admin address in the container image (`server.admin_listen`
/// there is `0.0.0.0:9464`).
const DEFAULT_ADMIN: &str = "127.0.0.1:9464";
/// Longest wait for the connection, the request and the answer each.
const DEFAULT_TIMEOUT_MS: u64 = 2_000;
/// The status line fits in this many bytes.
const STATUS_LINE_BYTES: usize = 64;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Admin listener address.
    #[arg(long, default_value = DEFAULT_ADMIN)]
    pub admin: SocketAddr,
    /// Path to ask.
    #[arg(long, default_value = "/readyz")]
    pub path: String,
    /// Timeout of each step, in milliseconds.
    #[arg(long, default_value_t = DEFAULT_TIMEOUT_MS)]
    pub timeout_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot reach {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("no answer from {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("{path} answered `{status_line}`")]
    NotOk { path: String, status_line: String },
}

/// Asks `args.path` once; `Ok` when it answered 200.
pub fn run(args: &ProbeArgs) -> Result<(), ProbeError> {
    let timeout = Duration::from_millis(args.timeout_ms);
    let addr = args.admin;
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .map_err(|source| ProbeError::Connect { addr, source })?;
    let io = |source| ProbeError::Io { addr, source };
    stream.set_read_timeout(Some(timeout)).map_err(io)?;
    stream.set_write_timeout(Some(timeout)).map_err(io)?;
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n",
        args.path
    );
    stream.write_all(request.as_bytes()).map_err(io)?;
    let mut head = [0u8; STATUS_LINE_BYTES];
    let mut len = 0;
    while len < head.len() && !head[..len].contains(&b'\n') {
        match stream.read(&mut head[len..]).map_err(io)? {
            0 => break,
            n => len += n,
        }
    }
    let text = String::from_utf8_lossy(&head[..len]);
    let status_line = text.lines().next().unwrap_or("").trim().to_string();
    if status_line.split_whitespace().nth(1) == Some("200") {
        Ok(())
    } else {
        Err(ProbeError::NotOk {
            path: args.path.clone(),
            status_line,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// A one-shot server answering `answer` to the first request.
    fn serve(answer: &'static str) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            if let Ok((mut s, _)) = listener.accept() {
                let mut buf = [0u8; 512];
                let _ = s.read(&mut buf);
                let _ = s.write_all(answer.as_bytes());
            }
        });
        addr
    }

    fn args(admin: SocketAddr) -> ProbeArgs {
        ProbeArgs {
            admin,
            path: "/readyz".into(),
            timeout_ms: DEFAULT_TIMEOUT_MS,
        }
    }

    #[test]
    fn ready_is_200_only() {
        let ok = serve("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
        assert!(run(&args(ok)).is_ok());
        let not_ready = serve("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n");
        let err = run(&args(not_ready)).expect_err("503 is not ready");
        assert!(err.to_string().contains("503"), "{err}");
    }

    #[test]
    fn nobody_listening_is_an_error() {
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        assert!(matches!(run(&args(addr)), Err(ProbeError::Connect { .. })));
    }
}
