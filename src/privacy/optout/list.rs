//! The in-memory suppression list: per scope two hash maps of id digests
//! behind one read-write lock, with an entry count that lets lookups skip
//! the lock while the list is empty, and the bounds on what the public
//! write key may add (see [`Bounds`]).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::address::AddressWindows;
use super::keys::{from_hex, parse_key, AddedBy, IdDigests, RecordValue};
use super::{IdDigest, IdKind, OptOutError, Proof, ProofHash, MAX_PROOFS, SCOPE_ALL};
use crate::config::PrivacyConfig;
use crate::metrics;

/// The bounds on entries added with the public write key. Entries added
/// with the server key are never refused and never counted here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Public entries per source (`privacy.optout_max_entries`): counted
    /// from the list itself, so the same on every instance and after a
    /// restart.
    pub per_source: usize,
    /// New public entries one client address (an IPv6 /64) may add to one
    /// source per window (`privacy.optout_max_entries_per_address`).
    pub per_address: u32,
    /// The window of `per_address` (`privacy.optout_address_window_secs`).
    pub address_window: Duration,
}

impl Bounds {
    /// No bound at all (tests, and a list without a configuration).
    pub const NONE: Bounds = Bounds {
        per_source: usize::MAX,
        per_address: u32::MAX,
        address_window: Duration::from_secs(1),
    };
}

impl From<&PrivacyConfig> for Bounds {
    fn from(p: &PrivacyConfig) -> Bounds {
        Bounds {
            per_source: p.optout_max_entries,
            per_address: p.optout_max_entries_per_address,
            address_window: Duration::from_secs(p.optout_address_window_secs),
        }
    }
}

/// One listed id.
#[derive(Debug, Clone)]
struct Entry {
    /// The browser proofs that may opt it back in (empty: only the server
    /// key); the first is never displaced.
    proofs: Box<[ProofHash]>,
    by: AddedBy,
}

/// One scope's listed ids, and how many of them each key added.
#[derive(Debug, Default)]
struct Sets {
    anon: HashMap<IdDigest, Entry>,
    user: HashMap<IdDigest, Entry>,
    public: usize,
    server: usize,
}

impl Sets {
    fn of(&self, kind: IdKind) -> &HashMap<IdDigest, Entry> {
        match kind {
            IdKind::Anonymous => &self.anon,
            IdKind::User => &self.user,
        }
    }

    fn of_mut(&mut self, kind: IdKind) -> &mut HashMap<IdDigest, Entry> {
        match kind {
            IdKind::Anonymous => &mut self.anon,
            IdKind::User => &mut self.user,
        }
    }

    fn count_mut(&mut self, by: AddedBy) -> &mut usize {
        match by {
            AddedBy::Public => &mut self.public,
            AddedBy::Server => &mut self.server,
        }
    }

    /// The entry of an id, under its normal digest or the digest of its
    /// spelling (entries written before ids were normalised).
    fn find(&self, kind: IdKind, id: &IdDigests) -> Option<(IdDigest, &Entry)> {
        let set = self.of(kind);
        id.iter().find_map(|d| set.get(d).map(|e| (*d, e)))
    }

    fn has(&self, kind: IdKind, id: Option<&IdDigests>) -> bool {
        id.is_some_and(|id| id.iter().any(|d| self.of(kind).contains_key(d)))
    }

    fn matches(
        &self,
        user: Option<&IdDigests>,
        anon: Option<&IdDigests>,
        previous: Option<&IdDigests>,
    ) -> bool {
        self.has(IdKind::User, user)
            || self.has(IdKind::Anonymous, anon)
            || self.has(IdKind::Anonymous, previous)
            || self.has(IdKind::User, previous)
    }

    /// Lists (`Some`) or removes an entry, keeping the counts; returns the
    /// change in the number of entries.
    fn put(&mut self, kind: IdKind, digest: &IdDigest, entry: Option<Entry>) -> isize {
        let new_by = entry.as_ref().map(|e| e.by);
        let old = match entry {
            Some(e) => self.of_mut(kind).insert(*digest, e),
            None => self.of_mut(kind).remove(digest),
        };
        if let Some(old) = &old {
            *self.count_mut(old.by) -= 1;
        }
        if let Some(by) = new_by {
            *self.count_mut(by) += 1;
        }
        isize::from(new_by.is_some()) - isize::from(old.is_some())
    }

    fn is_empty(&self) -> bool {
        self.anon.is_empty() && self.user.is_empty()
    }
}

#[derive(Debug, Default)]
struct State {
    scopes: HashMap<Box<str>, Sets>,
    /// Per (scope, address group): kept on this instance only.
    addresses: AddressWindows,
}

/// What an opt-out of one id writes: its key and the proofs of its entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedOptOut {
    pub kind: IdKind,
    pub digest: IdDigest,
    pub proofs: Vec<ProofHash>,
    pub by: AddedBy,
}

/// The in-memory suppression list of this instance: per scope (a source
/// id, or [`SCOPE_ALL`]) the listed ids of each kind.
#[derive(Debug)]
pub struct OptOutList {
    state: RwLock<State>,
    /// Entries in every scope: lets lookups skip the lock while empty.
    entries: AtomicUsize,
    bounds: Bounds,
    /// Set once the topic was read up to where it ended at start.
    loaded: Arc<AtomicBool>,
}

impl Default for OptOutList {
    fn default() -> Self {
        OptOutList::new(Bounds::NONE)
    }
}

impl OptOutList {
    pub fn new(bounds: Bounds) -> OptOutList {
        metrics::optout_public_max_entries(bounds.per_source);
        OptOutList {
            state: RwLock::default(),
            entries: AtomicUsize::new(0),
            bounds,
            loaded: Arc::default(),
        }
    }

    /// A list that needs no loading (no broker to read from).
    pub fn new_loaded(bounds: Bounds) -> OptOutList {
        let l = OptOutList::new(bounds);
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

    pub fn bounds(&self) -> Bounds {
        self.bounds
    }

    /// Entries of `scope` that `by` added.
    pub fn scope_entries(&self, scope: &str, by: AddedBy) -> usize {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        s.scopes.get(scope).map_or(0, |set| match by {
            AddedBy::Public => set.public,
            AddedBy::Server => set.server,
        })
    }

    /// True when any of the event's ids is suppressed for `source` (its own
    /// scope or [`SCOPE_ALL`]). `previous` is an alias's `previousId`,
    /// which may be either kind. Ids are compared in their normal form
    /// (`privacy::ids`).
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
            user.map(IdDigests::of),
            anon.map(IdDigests::of),
            previous.map(IdDigests::of),
        );
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        [source, SCOPE_ALL].iter().any(|scope| {
            s.scopes
                .get(*scope)
                .is_some_and(|set| set.matches(user.as_ref(), anon.as_ref(), previous.as_ref()))
        })
    }

    /// Whether `id` is listed in `scope`, and the proofs of its entry.
    pub fn entry(&self, scope: &str, kind: IdKind, id: &str) -> Option<Vec<ProofHash>> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        s.scopes
            .get(scope)?
            .find(kind, &IdDigests::of(id))
            .map(|(_, e)| e.proofs.to_vec())
    }

    /// Lists `ids` in `scope` for an opt-out with `proof`, taken from
    /// client `address`, and returns what to write to the topic.
    ///
    /// Proofs of an id are a set: each browser that opted it out may opt it
    /// back in, so a stranger repeating a visitor's opt-out never locks the
    /// visitor's own proof out. The first proof is never displaced; once
    /// [`MAX_PROOFS`] are held, a new one takes the place of the newest.
    /// A server key's opt-out leaves no proof (only the server key may opt
    /// the id in) and is never refused; an entry the server key added
    /// stays the server key's.
    ///
    /// New public entries are bounded per source (`SourceFull`) and per
    /// address group and window (`AddressFull`); refused, nothing is
    /// listed. Planned and applied under one write lock, so concurrent
    /// opt-outs of one id cannot lose a proof.
    pub fn opt_out(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
        address: IpAddr,
    ) -> Result<Vec<PlannedOptOut>, OptOutError> {
        let mut guard = self.state.write().unwrap_or_else(|p| p.into_inner());
        let s = &mut *guard;
        let mut new_public = 0usize;
        let mut plans = Vec::with_capacity(ids.len());
        for (kind, id) in ids {
            let digests = IdDigests::of(id);
            let existing = s
                .scopes
                .get(scope)
                .and_then(|set| set.find(*kind, &digests));
            let (digest, proofs, by) = match (existing, proof) {
                (None, p) => {
                    let by = match p {
                        Proof::ServerKey => AddedBy::Server,
                        _ => AddedBy::Public,
                    };
                    new_public += usize::from(by == AddedBy::Public);
                    let proofs = match p {
                        Proof::Cookie(h) => vec![h],
                        _ => Vec::new(),
                    };
                    (digests.normal, proofs, by)
                }
                (Some((d, _)), Proof::ServerKey) => (d, Vec::new(), AddedBy::Server),
                (Some((d, e)), _) if e.by == AddedBy::Server => (d, Vec::new(), AddedBy::Server),
                (Some((d, e)), Proof::Cookie(h)) => (d, with_proof(&e.proofs, h), AddedBy::Public),
                (Some((d, e)), Proof::None) => (d, e.proofs.to_vec(), AddedBy::Public),
            };
            plans.push(PlannedOptOut {
                kind: *kind,
                digest,
                proofs,
                by,
            });
        }
        if new_public > 0 {
            let listed = s.scopes.get(scope).map_or(0, |set| set.public);
            if listed.saturating_add(new_public) > self.bounds.per_source {
                return Err(OptOutError::SourceFull);
            }
            let b = &self.bounds;
            s.addresses
                .charge(scope, address, new_public, b.per_address, b.address_window)
                .map_err(|retry_after_secs| OptOutError::AddressFull { retry_after_secs })?;
        }
        let set = s.scopes.entry(scope.into()).or_default();
        let mut change = 0isize;
        for p in &plans {
            let entry = Entry {
                proofs: p.proofs.as_slice().into(),
                by: p.by,
            };
            change += set.put(p.kind, &p.digest, Some(entry));
        }
        self.publish(scope, set, change);
        Ok(plans)
    }

    /// The listed ids among `ids` that an opt-in in `scope` with `proof`
    /// removes (each under the digest it is listed by); `ProofRequired`
    /// (nothing removed) when the proof does not cover every listed one.
    /// A browser's proof covers an id when it is one of the id's proofs.
    pub fn plan_opt_in(
        &self,
        scope: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<Vec<(IdKind, IdDigest)>, OptOutError> {
        let s = self.state.read().unwrap_or_else(|p| p.into_inner());
        let mut listed = Vec::with_capacity(ids.len());
        let Some(set) = s.scopes.get(scope) else {
            return Ok(listed);
        };
        for (kind, id) in ids {
            let digests = IdDigests::of(id);
            // Both spellings' entries go, so the id is off the list.
            for d in digests.iter() {
                let Some(e) = set.of(*kind).get(d) else {
                    continue;
                };
                let allowed = match proof {
                    Proof::ServerKey => true,
                    Proof::Cookie(h) => e.by == AddedBy::Public && e.proofs.contains(&h),
                    Proof::None => false,
                };
                if !allowed {
                    return Err(OptOutError::ProofRequired);
                }
                listed.push((*kind, *d));
            }
        }
        Ok(listed)
    }

    /// Lists the id of `digest` in `scope` with `proofs`, added by `by`
    /// (`Some`), or removes it.
    pub fn set(
        &self,
        scope: &str,
        kind: IdKind,
        digest: &IdDigest,
        listed: Option<(&[ProofHash], AddedBy)>,
    ) {
        let mut s = self.state.write().unwrap_or_else(|p| p.into_inner());
        let entry = listed.map(|(proofs, by)| Entry {
            proofs: proofs.into(),
            by,
        });
        if entry.is_none() && !s.scopes.contains_key(scope) {
            return;
        }
        let set = s.scopes.entry(scope.into()).or_default();
        let change = set.put(kind, digest, entry);
        self.publish(scope, set, change);
        if set.is_empty() {
            s.scopes.remove(scope);
        }
    }

    /// Under the write lock: every writer sees the count it changes.
    fn publish(&self, scope: &str, set: &Sets, change: isize) {
        let n = self.len().saturating_add_signed(change);
        self.entries.store(n, Ordering::Relaxed);
        metrics::optout_list_entries(n);
        metrics::optout_source_entries(scope, AddedBy::Public.label(), set.public);
        metrics::optout_source_entries(scope, AddedBy::Server.label(), set.server);
    }

    /// Applies one record of the topic. Returns false for a record that is
    /// not an opt-out record (ignored). Records are applied whatever the
    /// bounds: a suppression another instance took is never lost.
    pub fn apply_record(&self, key: Option<&[u8]>, value: Option<&[u8]>) -> bool {
        let Some((scope, kind, digest)) = key.and_then(parse_key) else {
            return false;
        };
        let listed = match value {
            None | Some([]) => None,
            Some(v) => match serde_json::from_slice::<RecordValue>(v) {
                Ok(r) if r.opted_out => {
                    let p: Vec<ProofHash> = r.proofs.iter().filter_map(|h| from_hex(h)).collect();
                    // A malformed proof would widen who may opt in: none kept.
                    let p = if p.len() == r.proofs.len() {
                        p
                    } else {
                        Vec::new()
                    };
                    Some((p, r.added_by()))
                }
                Ok(_) => None,
                Err(_) => return false,
            },
        };
        self.set(
            scope,
            kind,
            &digest,
            listed.as_ref().map(|(p, by)| (p.as_slice(), *by)),
        );
        true
    }
}

/// `proofs` with `h` added: kept when already there; else appended while
/// there is room, else in place of the newest (the first stays).
fn with_proof(proofs: &[ProofHash], h: ProofHash) -> Vec<ProofHash> {
    let mut v = proofs.to_vec();
    if v.contains(&h) {
        return v;
    }
    if v.len() < MAX_PROOFS {
        v.push(h);
    } else if let Some(last) = v.last_mut() {
        *last = h;
    }
    v
}
