//! The inspector's two admin routes: `GET /inspect` (one self-contained
//! HTML page) and `GET /inspect/events` (its server-sent events stream).
//! Both are guarded (see `guard`): an allowed `Host`, and `inspect.token`
//! when one is set.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{HeaderValue, CACHE_CONTROL, CONTENT_TYPE};
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::Frame;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use super::{guard, Inspector, Watch};

/// The page: HTML, CSS and JavaScript in one file.
const PAGE: &str = include_str!("page.html");

/// A comment line sent on a quiet stream, so proxies keep it open.
const HEARTBEAT: Duration = Duration::from_secs(15);

/// Body of the admin listener's answers: whole, or a stream.
pub type AdminBody = UnsyncBoxBody<Bytes, Infallible>;

/// A whole body.
pub fn full(b: impl Into<Bytes>) -> AdminBody {
    Full::new(b.into()).boxed_unsync()
}

/// A whole response body as an admin body.
pub fn full_body(b: Full<Bytes>) -> AdminBody {
    b.boxed_unsync()
}

/// Answers `/inspect` and `/inspect/events`; `None` for other paths.
pub fn route<B>(
    inspector: &Arc<Inspector>,
    req: &Request<B>,
    stop: &CancellationToken,
) -> Option<Response<AdminBody>> {
    let path = req.uri().path();
    let page = matches!(path, "/inspect" | "/inspect/");
    let events = path == "/inspect/events";
    if !(page || events) || !inspector.config().enabled {
        return None;
    }
    if req.method() != Method::GET {
        return Some(plain(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    if let Err(refused) = guard::check(inspector.config(), req) {
        return Some(refusal(refused));
    }
    if page {
        let mut r = Response::new(full(PAGE));
        let h = r.headers_mut();
        h.insert(
            CONTENT_TYPE,
            HeaderValue::from_static("text/html; charset=utf-8"),
        );
        h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        return Some(r);
    }
    Some(stream(inspector.watch(), stop.clone()))
}

fn plain(status: StatusCode, text: &'static str) -> Response<AdminBody> {
    let mut r = Response::new(full(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// The answer to a refused guarded request.
pub fn refusal(refused: guard::Refusal) -> Response<AdminBody> {
    let mut r = plain(refused.status(), refused.message());
    if refused == guard::Refusal::Token {
        r.headers_mut().insert(
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer"),
        );
    }
    r
}

/// One SSE event: `data:` lines (a message has no newline, but a line break
/// would be split as the format requires), then a blank line.
fn sse_frame(message: &str) -> Bytes {
    let mut s = String::with_capacity(message.len() + 8);
    for line in message.split('\n') {
        s.push_str("data: ");
        s.push_str(line);
        s.push('\n');
    }
    s.push('\n');
    Bytes::from(s)
}

/// The event stream of one page, until it disconnects or the gateway stops.
fn stream(watch: Watch, stop: CancellationToken) -> Response<AdminBody> {
    let hello = Bytes::from_static(b"retry: 1000\n: trackgate inspector\n\n");
    let state = (watch, stop, Some(hello));
    let frames = futures_util::stream::unfold(state, |(mut w, stop, hello)| async move {
        if let Some(h) = hello {
            return Some((Ok::<_, Infallible>(Frame::data(h)), (w, stop, None)));
        }
        if stop.is_cancelled() {
            return None;
        }
        let bytes = tokio::select! {
            m = w.rx.recv() => match m {
                Ok(m) => sse_frame(&m),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    w.inspector.lagged(missed);
                    sse_frame(&format!(r#"{{"kind":"lagged","missed":{missed}}}"#))
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
            _ = tokio::time::sleep(HEARTBEAT) => Bytes::from_static(b": keep-alive\n\n"),
            _ = stop.cancelled() => return None,
        };
        Some((Ok(Frame::data(bytes)), (w, stop, None)))
    });
    let mut r = Response::new(StreamBody::new(frames).boxed_unsync());
    let h = r.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::InspectConfig;
    use http::header::AUTHORIZATION;

    fn req(uri: &str, auth: Option<&str>) -> Request<()> {
        let mut b = Request::builder().uri(uri);
        if let Some(a) = auth {
            b = b.header(AUTHORIZATION, a);
        }
        b.body(()).unwrap()
    }

    fn with_token(t: Option<&str>) -> Arc<Inspector> {
        Arc::new(Inspector::new(&InspectConfig {
            token: t.map(str::to_string),
            ..InspectConfig::default()
        }))
    }

    #[test]
    fn the_token_is_required_when_set() {
        let stop = CancellationToken::new();
        let i = with_token(Some("s3cret"));
        let status =
            |uri: &str, auth: Option<&str>| route(&i, &req(uri, auth), &stop).map(|r| r.status());
        assert_eq!(status("/inspect", None), Some(StatusCode::UNAUTHORIZED));
        assert_eq!(
            status("/inspect/events?token=wrong", None),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status("/inspect", Some("Bearer s3cre")),
            Some(StatusCode::UNAUTHORIZED)
        );
        assert_eq!(
            status("/inspect", Some("Bearer s3cret")),
            Some(StatusCode::OK)
        );
        assert_eq!(status("/inspect?token=s3cret", None), Some(StatusCode::OK));
        assert_eq!(status("/metrics", None), None);
        let open = with_token(None);
        assert_eq!(
            route(&open, &req("/inspect", None), &stop).map(|r| r.status()),
            Some(StatusCode::OK)
        );
    }

    #[tokio::test]
    async fn the_stream_carries_messages_as_sse_events_and_ends_on_stop() {
        let stop = CancellationToken::new();
        let i = with_token(None);
        let r = route(&i, &req("/inspect/events", None), &stop).unwrap();
        assert_eq!(r.headers()[CONTENT_TYPE], "text/event-stream");
        assert!(i.watched());
        let mut body = r.into_body();
        let hello = body.frame().await.unwrap().unwrap().into_data().unwrap();
        assert!(hello.starts_with(b"retry:"));
        i.accepted("web", "t", "page", b"k", br#"{"type":"page"}"#);
        let f = body.frame().await.unwrap().unwrap().into_data().unwrap();
        let text = std::str::from_utf8(&f).unwrap();
        let data = text
            .strip_prefix("data: ")
            .and_then(|t| t.strip_suffix("\n\n"))
            .unwrap();
        let m: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(m["kind"], "event");
        assert_eq!(m["value"]["type"], "page");
        stop.cancel();
        assert!(body.frame().await.is_none());
        drop(body);
        assert!(!i.watched());
    }

    #[test]
    fn multi_line_messages_are_split_into_data_lines() {
        assert_eq!(&sse_frame("a\nb")[..], b"data: a\ndata: b\n\n");
    }
}
