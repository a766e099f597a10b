//! The in-memory suppression list: per scope two hash maps of id digests
//! behind one read-write lock, with an entry count that lets lookups skip
//! the lock while the list is empty.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use super::keys::{from_hex, id_digest, parse_key, RecordValue};
use super::{IdDigest, IdKind, OptOutError, Proof, ProofHash, MAX_PROOFS, SCOPE_ALL};
use crate::metrics;

/// One scope's listed ids, each with the proofs that may opt it back in
/// (empty: only the server key).
#[derive(Debug, Default)]
struct Sets {
    anon: HashMap<IdDigest, Box<[ProofHash]>>,
    user: HashMap<IdDigest, Box<[ProofHash]>>,
}

impl Sets {
    fn of(&self, kind: IdKind) -> &HashMap<IdDigest, Box<[ProofHash]>> {
        match kind {
            IdKind::Anonymous => &self.anon,
            IdKind::User => &self.user,
        }
    }

    fn of_mut(&mut self, kind: IdKind) -> &mut HashMap<IdDigest, Box<[ProofHash]>> {
        match kind {
            IdKind::Anonymous => &mut self.anon,
            IdKind::User => &mut self.user,
        }
    }

    fn matches(
        &self,
        user: Option<&IdDigest>,
        anon: Option<&IdDigest>,
        previous: Option<&IdDigest>,
    ) -> bool {
        user.is_some_and(|u| self.user.contains_key(u))
            || anon.is_some_and(|a| self.anon.contains_key(a))
            || previous.is_some_and(|p| self.anon.contains_key(p) || self.user.contains_key(p))
    }
}

/// What an opt-out of one id writes: its key and the proofs of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOptOut {
    pub kind: IdKind,
    pub digest: IdDigest,
    pub proofs: Vec<ProofHash>,
}

/// The in-memory suppression list of this instance: per scope (a source
/// id, or [`SCOPE_ALL`]) the listed ids of each kind.
#[derive(Debug)]
pub struct OptOutList {
    scopes: RwLock<HashMap<Box<str>, Sets>>,
    /// Entries in every scope: lets lookups skip the lock while empty.
    entries: AtomicUsize,
    /// New opt-outs are refused (never dropped) beyond this many entries.
    max_entries: usize,
    /// Set once the topic was read up to where it ended at start.
    loaded: Arc<AtomicBool>,
}

impl Default for OptOutList {
    fn default() -> Self {
        OptOutList::new(usize::MAX)
    }
}

impl OptOutList {
    pub fn new(max_entries: usize) -> OptOutList {
        OptOutList {
            scopes: RwLock::default(),
            entries: AtomicUsize::new(0),
            max_entries,
            loaded: Arc::default(),
        }
    }

    /// A list that needs no loading (no broker to read from).
    pub fn new_loaded(max_entries: usize) -> OptOutList {
        let l = OptOutList::new(max_entries);
        l.mark_loaded();
        l
    }

    /// The flag readiness watches.
    pub fn loaded_flag(&self) -> Arc<AtomicBool> {
        self.loaded.clone()
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded.load(Ordering::Acquire)
    }

    pub fn mark_loaded(&self) {
        self.loaded.store(true, Ordering::Release);
    }

    pub fn len(&self) -> usize {
        self.entries.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn max_entries(&self) -> usize {
        self.max_entries
    }

    /// True when any of the event's ids is suppressed for `source` (its own
    /// scope or [`SCOPE_ALL`]). `previous` is an alias's `previousId`,
    /// which may be either kind.
    pub fn contains(
        &self,
        source: &str,
        user: Option<&str>,
        anon: Option<&str>,
        previous: Option<&str>,
    ) -> bool {
        if self.is_empty() {
            return false;
        }
        let (user, anon, previous) = (
            user.map(id_digest),
            anon.map(id_digest),
            previous.map(id_digest),
        );
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        [source, SCOPE_ALL].iter().any(|scope| {
            s.get(*scope)
                .is_some_and(|set| set.matches(user.as_ref(), anon.as_ref(), previous.as_ref()))
        })
    }

    /// Whether `id` is listed in `scope`, and the proofs of its entry.
    pub fn entry(&self, scope: &str, kind: IdKind, id: &str) -> Option<Vec<ProofHash>> {
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        s.get(scope)?
            .of(kind)
            .get(&id_digest(id))
            .map(|p| p.to_vec())
    }

    /// Lists `ids` in `scope` for an opt-out with `proof` and returns what
    /// to write to the topic. The first browser proofs of an id are kept and
    /// a new one is added (up to [`MAX_PROOFS`]): opting an already listed id
    /// out again never lets a new browser opt it back in alone. A server
    /// key's opt-out, or too many browsers, leaves no proof (only the server
    /// key may opt it in). `Full` (nothing listed) when new ids would take
    /// the list over its maximum. Planned and applied under one write lock,
    /// so concurrent opt-outs of one id cannot lose a proof.
    pub fn opt_out(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<Vec<PlannedOptOut>, OptOutError> {
        let mut s = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let mut new = 0usize;
        let mut plans = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let digest = id_digest(id);
            let existing = s.get(scope).and_then(|set| set.of(*kind).get(&digest));
            if existing.is_none() {
                new += 1;
            }
            let proofs = match (existing, proof) {
                (None, Proof::Cookie(h)) => vec![h],
                (None, _) => Vec::new(),
                (Some(_), Proof::ServerKey) => Vec::new(),
                (Some(p), _) if p.is_empty() => Vec::new(),
                (Some(p), Proof::Cookie(h)) if p.contains(&h) => p.to_vec(),
                (Some(p), Proof::Cookie(h)) if p.len() < MAX_PROOFS => {
                    let mut v = p.to_vec();
                    v.push(h);
                    v
                }
                (Some(_), Proof::Cookie(_)) => Vec::new(),
                (Some(p), Proof::None) => p.to_vec(),
            };
            plans.push(PlannedOptOut {
                kind: *kind,
                digest,
                proofs,
            });
        }
        if new > 0 && self.len().saturating_add(new) > self.max_entries {
            return Err(OptOutError::Full);
        }
        for p in &plans {
            let set = s.entry(scope.into()).or_default().of_mut(p.kind);
            set.insert(p.digest, p.proofs.as_slice().into());
        }
        self.store_len(self.len() + new);
        Ok(plans)
    }

    /// The listed ids among `ids` that an opt-in in `scope` with `proof`
    /// removes; `ProofRequired` (nothing removed) when the proof does not
    /// cover every listed one.
    pub fn plan_opt_in(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<Vec<(IdKind, IdDigest)>, OptOutError> {
        let s = self.scopes.read().unwrap_or_else(|p| p.into_inner());
        let mut listed = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let digest = id_digest(id);
            let Some(p) = s.get(scope).and_then(|set| set.of(*kind).get(&digest)) else {
                continue;
            };
            let allowed = match proof {
                Proof::ServerKey => true,
                Proof::Cookie(h) => p.len() == 1 && p[0] == h,
                Proof::None => false,
            };
            if !allowed {
                return Err(OptOutError::ProofRequired);
            }
            listed.push((*kind, digest));
        }
        Ok(listed)
    }

    /// Lists the id of `digest` in `scope` with `proofs` (`Some`), or
    /// removes it.
    pub fn set(&self, scope: &str, kind: IdKind, digest: &IdDigest, proofs: Option<&[ProofHash]>) {
        let mut s = self.scopes.write().unwrap_or_else(|p| p.into_inner());
        let n = match proofs {
            Some(p) => {
                let set = s.entry(scope.into()).or_default().of_mut(kind);
                match set.insert(*digest, p.into()) {
                    None => self.len() + 1,
                    Some(_) => self.len(),
                }
            }
            None => {
                let removed = s
                    .get_mut(scope)
                    .is_some_and(|set| set.of_mut(kind).remove(digest).is_some());
                if s.get(scope)
                    .is_some_and(|set| set.anon.is_empty() && set.user.is_empty())
                {
                    s.remove(scope);
                }
                self.len() - usize::from(removed)
            }
        };
        // Under the write lock: every writer sees the count it changes.
        self.store_len(n);
    }

    fn store_len(&self, n: usize) {
        self.entries.store(n, Ordering::Relaxed);
        metrics::optout_list_entries(n);
    }

    /// Applies one record of the topic. Returns false for a record that is
    /// not an opt-out record (ignored). Records are applied whatever the
    /// list's maximum: a suppression another instance took is never lost.
    pub fn apply_record(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some((scope, kind, digest)) = key.and_then(parse_key) else {
            return false;
        };
        let proofs = match value {
            None | Some([]) => None,
            Some(v) => match serde_json::from_slice::<RecordValue>(v) {
                Ok(r) if r.opted_out => {
                    let p: Vec<ProofHash> = r.proofs.iter().filter_map(|h| from_hex(h)).collect();
                    // A malformed proof would widen who may opt in: none kept.
                    Some(if p.len() == r.proofs.len() {
                        p
                    } else {
                        Vec::new()
                    })
                }
                Ok(_) => None,
                Err(_) => return false,
            },
        };
        self.set(scope, kind, &digest, proofs.as_deref());
        true
    }
}
