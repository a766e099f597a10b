//! Record keys and values of the opt-out topic, and the SHA-256 digests
//! (of visitor ids and of proof nonces) they carry in place of the secrets.

use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{KIND_ANON, KIND_USER, SCOPE_ALL};
use crate::privacy::ids::normalize;

/// Which identity an id is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IdKind {
    Anonymous,
    User,
}

impl IdKind {
    pub fn name(self) -> &'static str {
        match self {
            IdKind::Anonymous => KIND_ANON,
            IdKind::User => KIND_USER,
        }
    }

    fn parse(s: &str) -> Option<IdKind> {
        match s {
            KIND_ANON => Some(IdKind::Anonymous),
            KIND_USER => Some(IdKind::User),
            _ => None,
        }
    }
}

/// The SHA-256 of a browser's proof nonce: what the list and the topic
/// keep (the nonce itself lives only in the visitor's cookie).
pub type ProofHash = [u8; 32];

/// Hashes the nonce of a proof cookie.
pub fn proof_hash(nonce: &[u8]) -> ProofHash {
    Sha256::digest(nonce).into()
}

/// What a request proves about its right to opt ids back in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proof {
    /// The source's server key: may opt in any id of its source.
    ServerKey,
    /// The browser's proof cookie (its hash): may opt in the ids that only
    /// this browser opted out.
    Cookie(ProofHash),
    /// Nothing: may opt ids out, never in.
    None,
}

/// The SHA-256 of a visitor id: what the list and the topic keep in place
/// of the id.
pub type IdDigest = [u8; 32];

/// Prefix of the digest in a record key.
const DIGEST_PREFIX: &str = "sha256:";

/// Hashes a visitor id in the form it is compared in
/// ([`crate::privacy::ids::normalize`]): every spelling of one id has one
/// digest.
pub fn id_digest(id: &str) -> IdDigest {
    Sha256::digest(normalize(id).as_bytes()).into()
}

/// The digests an id is looked up by: that of its normal form, and, when
/// the id is spelled otherwise, that of the spelling itself, under which
/// an entry written before ids were normalised is listed (such an entry
/// still holds for the spelling it was taken with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdDigests {
    pub normal: IdDigest,
    pub spelled: Option<IdDigest>,
}

impl IdDigests {
    pub fn of(id: &str) -> IdDigests {
        let normal = normalize(id);
        IdDigests {
            normal: Sha256::digest(normal.as_bytes()).into(),
            spelled: (normal != id).then(|| Sha256::digest(id.as_bytes()).into()),
        }
    }

    /// The normal digest first.
    pub fn iter(&self) -> impl Iterator<Item = &IdDigest> {
        std::iter::once(&self.normal).chain(self.spelled.as_ref())
    }
}

/// The record key of an id in a scope: `<kind>@<scope>:sha256:<hex>`.
pub fn record_key(scope: &str, kind: IdKind, digest: &IdDigest) -> String {
    let mut k = String::with_capacity(kind.name().len() + scope.len() + 2 + 7 + 64);
    k.push_str(kind.name());
    k.push('@');
    k.push_str(scope);
    k.push(':');
    k.push_str(DIGEST_PREFIX);
    k.push_str(&to_hex(digest));
    k
}

/// Splits a record key into scope, kind and id digest. A key without a
/// scope (`anon:<id>`, written before opt-outs were scoped and before ids
/// were hashed) is of [`SCOPE_ALL`] and its id is hashed here.
pub fn parse_key(key: &[u8]) -> Option<(&str, IdKind, IdDigest)> {
    let key = std::str::from_utf8(key).ok()?;
    let (head, id) = key.split_once(':')?;
    match head.split_once('@') {
        Some((kind, scope)) if !scope.is_empty() => Some((
            scope,
            IdKind::parse(kind)?,
            from_hex(id.strip_prefix(DIGEST_PREFIX)?)?,
        )),
        Some(_) => None,
        None => Some((SCOPE_ALL, IdKind::parse(head)?, id_digest(id))),
    }
}

/// Who put an entry on the list, and so which bound it counts against.
/// Travels in the record (`"by"`), so every instance, and every restart,
/// counts the same entries against the same bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AddedBy {
    /// The public write key (a browser, or anyone with curl): counted
    /// against the source's share.
    Public,
    /// The source's server key: never refused, never counted against the
    /// public share.
    Server,
}

impl AddedBy {
    /// The label of metrics and the record's `"by"`.
    pub fn label(self) -> &'static str {
        match self {
            AddedBy::Public => BY_PUBLIC,
            AddedBy::Server => BY_SERVER,
        }
    }
}

const BY_PUBLIC: &str = "public";
const BY_SERVER: &str = "server";

#[derive(Deserialize)]
pub(super) struct RecordValue {
    #[serde(rename = "optedOut")]
    pub(super) opted_out: bool,
    /// Hex SHA-256 of each browser proof that may opt the id back in.
    #[serde(default)]
    pub(super) proofs: Vec<String>,
    /// `public` or `server` (see [`AddedBy`]).
    #[serde(default)]
    by: Option<String>,
}

impl RecordValue {
    /// Records without `"by"` were written before the bounds were per
    /// source: one without proofs could be opted in only with the server
    /// key, so it stays the server key's; one with proofs was a browser's.
    pub(super) fn added_by(&self) -> AddedBy {
        match self.by.as_deref() {
            Some(BY_SERVER) => AddedBy::Server,
            Some(_) => AddedBy::Public,
            None if self.proofs.is_empty() => AddedBy::Server,
            None => AddedBy::Public,
        }
    }
}

/// The value of an opt-out record.
pub fn record_value(proofs: &[ProofHash], by: AddedBy) -> String {
    let hex: Vec<String> = proofs.iter().map(|p| to_hex(p)).collect();
    serde_json::json!({
        "optedOut": true,
        "at": crate::normalize::format_time(chrono::Utc::now()),
        "by": by.label(),
        "proofs": hex,
    })
    .to_string()
}

fn to_hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub(super) fn from_hex(s: &str) -> Option<ProofHash> {
    let mut out = [0u8; 32];
    if s.len() != 64 {
        return None;
    }
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(i * 2..i * 2 + 2)?, 16).ok()?;
    }
    Some(out)
}
