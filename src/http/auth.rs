//! Write keys: from the `Authorization` header (HTTP Basic with the key as
//! user name and an empty password, or `Bearer <key>` as some
//! Segment-compatible clients send it), the `writeKey` body field, or the
//! `writeKey` query parameter, in that order. The opt-out endpoints read
//! Basic credentials only ([`basic_user`]).

use std::collections::HashMap;
use std::sync::Arc;

use base64::Engine;
use http::header::AUTHORIZATION;
use http::HeaderMap;

use crate::config::SourceConfig;

/// The configured sources, by write key.
#[derive(Debug, Default)]
pub struct Sources {
    by_key: HashMap<String, Arc<SourceConfig>>,
}

impl Sources {
    pub fn new(sources: &[SourceConfig]) -> Sources {
        Sources {
            by_key: sources
                .iter()
                .map(|s| (s.write_key.clone(), Arc::new(s.clone())))
                .collect(),
        }
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
    fn query_param_decodes() {
        assert_eq!(
            query_param(Some("a=1&writeKey=w%2Bk"), "writeKey").as_deref(),
            Some("w+k")
        );
        assert_eq!(query_param(Some("writeKey="), "writeKey"), None);
        assert_eq!(query_param(None, "writeKey"), None);
    }
}
