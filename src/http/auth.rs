//! Write keys: from the `Authorization` header (HTTP Basic with the key as
//! user name and an empty password, or `Bearer <key>` as some
//! Segment-compatible clients send it), the `writeKey` body field, or the
//! `writeKey` query parameter, in that order. The opt-out endpoints read
//! Basic credentials only ([`basic_user`]): there a Bearer token is a
//! server key (secret, sent by the site owner's servers only), as is the
//! `X-Trackgate-Server-Key` header ([`server_key`]); never from the body or
//! the query (where it would end up in logs and browser histories).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::SourceConfig;

/// Header of a server key (besides `Authorization: Bearer`).
pub const SERVER_KEY_HEADER: &str = "x-trackgate-server-key";

/// The configured sources, by write key and by server key.
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, Arc<SourceConfig>>,
    by_server_key: HashMap<String, Arc<SourceConfig>>,
}

impl Sources {
    pub fn new(sources: &[SourceConfig]) -> Sources {
        let all: Vec<Arc<SourceConfig>> = sources.iter().cloned().map(Arc::new).collect();
        Sources {
            by_key: all
                .iter()
                .map(|s| (s.write_key.clone(), s.clone()))
                .collect(),
            by_server_key: all
                .iter()
                .filter_map(|s| Some((s.server_key.clone()?, s.clone())))
                .collect(),
        }
    }

    /// The source of a server key.
    pub fn by_server_key(&self, key: &str) -> Option<&Arc<SourceConfig>> {
        self.by_server_key.get(key)
    }

    pub fn get(&self, write_key: &str) -> Option<&Arc<SourceConfig>> {
        self.by_key.get(write_key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<SourceConfig>> {
        self.by_key.values()
    }
}

/// The write key of the `Authorization` header of an ingestion request: the
/// user name of Basic credentials, or a Bearer token as it is.
pub fn header_key(headers: &HeaderMap) -> Option<String> {
    bearer_token(headers).or_else(|| basic_user(headers))
}

/// The token of a Bearer `Authorization` header.
fn bearer_token(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    let token = rest.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// The user name of a Basic `Authorization` header.
pub fn basic_user(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = v.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(decoded).ok()?;
    let user = text.split(':').next().unwrap_or("");
    (!user.is_empty()).then(|| user.to_string())
}

/// The server key of a request: a Bearer token, else the
/// `X-Trackgate-Server-Key` header.
pub fn server_key(headers: &HeaderMap) -> Option<&str> {
    let bearer = headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim());
    bearer
        .or_else(|| {
            headers
                .get(SERVER_KEY_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
        })
        .filter(|k| !k.is_empty())
}

/// A query parameter's decoded value.
pub fn query_param(query: Option<&str>, name: &str) -> Option<String> {
    form_urlencoded::parse(query?.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
        .filter(|v| !v.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_user_is_the_key() {
        let mut h = HeaderMap::new();
        let enc = base64::engine::general_purpose::STANDARD.encode("wk_live:");
        h.insert(AUTHORIZATION, format!("Basic {enc}").parse().unwrap());
        assert_eq!(header_key(&h).as_deref(), Some("wk_live"));
        let enc = base64::engine::general_purpose::STANDARD.encode("wk_nocolon");
        h.insert(AUTHORIZATION, format!("basic {enc}").parse().unwrap());
        assert_eq!(header_key(&h).as_deref(), Some("wk_nocolon"));
        h.insert(AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(header_key(&h), None);
        h.insert(AUTHORIZATION, "Digest abc".parse().unwrap());
        assert_eq!(header_key(&h), None);
    }

    #[test]
    fn bearer_token_is_the_key() {
        let mut h = HeaderMap::new();
        h.insert(AUTHORIZATION, "Bearer wk_live".parse().unwrap());
        assert_eq!(header_key(&h).as_deref(), Some("wk_live"));
        assert_eq!(basic_user(&h), None);
        h.insert(AUTHORIZATION, "bearer   wk_2 ".parse().unwrap());
        assert_eq!(header_key(&h).as_deref(), Some("wk_2"));
        h.insert(AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(header_key(&h), None);
    }

    #[test]
    fn server_key_from_bearer_or_its_header_never_basic() {
        let mut h = HeaderMap::new();
        assert_eq!(server_key(&h), None);
        h.insert(SERVER_KEY_HEADER, " sk_1 ".parse().unwrap());
        assert_eq!(server_key(&h), Some("sk_1"));
        h.insert(AUTHORIZATION, "Bearer sk_2".parse().unwrap());
        assert_eq!(server_key(&h), Some("sk_2"));
        h.remove(SERVER_KEY_HEADER);
        let enc = base64::engine::general_purpose::STANDARD.encode("sk_3:");
        h.insert(AUTHORIZATION, format!("Basic {enc}").parse().unwrap());
        assert_eq!(server_key(&h), None);
        h.insert(AUTHORIZATION, "bearer   ".parse().unwrap());
        assert_eq!(server_key(&h), None);
    }

    #[test]
    fn query_param_decodes() {
        assert_eq!(
            query_param(Some("a=1&writeKey=w%2Bk"), "writeKey").as_deref(),
            Some("w+k")
        );
        assert_eq!(query_param(Some("writeKey="), "writeKey"), None);
        assert_eq!(query_param(None, "writeKey"), None);
    }
}
