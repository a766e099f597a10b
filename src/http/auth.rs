//! Write keys: from HTTP Basic auth (key as user name, empty password), the
//! `writeKey` body field, or the `writeKey` query parameter, in that order.
//! Server keys (secret, sent by the site owner's servers only, accepted on
//! the opt-out endpoints): `Authorization: Bearer <key>` or
//! `X-Trackgate-Server-Key: <key>`, never from the body or the query (where
//! they would end up in logs and browser histories).

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
        assert_eq!(basic_user(&h).as_deref(), Some("wk_live"));
        let enc = base64::engine::general_purpose::STANDARD.encode("wk_nocolon");
        h.insert(AUTHORIZATION, format!("basic {enc}").parse().unwrap());
        assert_eq!(basic_user(&h).as_deref(), Some("wk_nocolon"));
        h.insert(AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(basic_user(&h), None);
        h.insert(AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(basic_user(&h), None);
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
