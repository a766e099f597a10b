//! The walk over one event: every entry of every object and every item of
//! every array is visited once, in this order of decisions per entry:
//! 1. a path rule selecting it (`keep`, `remove`, `pseudonymize`, `mask`;
//!    configured rules, `allow_paths`, `keep_traits`, the exempt fields,
//!    the person traits);
//! 2. its key as text (a key that is PII goes with its value);
//! 3. an identity field at the top level (see `identity`);
//! 4. its key's words (the key rules; booleans and nulls stay);
//! 5. its value: strings scanned (JSON inside a string walked like the
//!    event), objects and arrays walked, card-number integers replaced.

use std::borrow::Cow;

use crate::json::{Map, Value};

use super::selector::MASK;
use super::*;

/// Where the walk stands in the path rules.
#[derive(Clone, Copy)]
pub(super) struct At {
    pub node: Option<Node>,
    pub states: States,
}

/// State of one `scrub_event` call.
pub(super) struct Walk<'o> {
    pub out: &'o mut Vec<Redaction>,
    /// Scratch list of what one string lost; empty (unallocated) on the
    /// clean path.
    pub kinds: Vec<RedactionKind>,
    /// The event is a `group` event (its top-level traits are the group's).
    pub group: bool,
    pub outcome: ScrubOutcome,
}

impl Walk<'_> {
    fn record(&mut self, node: &PathNode<'_>, kind: RedactionKind) {
        self.out.push(Redaction {
            path: path_string(node),
            kind,
        });
    }

    /// Records the scratch kinds at `node`, emptying the list.
    fn record_kinds(&mut self, node: &PathNode<'_>) {
        if self.kinds.is_empty() {
            return;
        }
        let path = path_string(node);
        for kind in std::mem::take(&mut self.kinds) {
            self.out.push(Redaction {
                path: path.clone(),
                kind,
            });
        }
    }
}

/// A JSON object or array held in a string, parsed.
fn embedded_json(s: &str) -> Option<Value<'_>> {
    let t = s.trim_ascii();
    let b = t.as_bytes();
    let framed = b.len() >= 2 && matches!((b[0], b[b.len() - 1]), (b'{', b'}') | (b'[', b']'));
    if !framed {
        return None;
    }
    match crate::json::from_str(t) {
        Ok(v @ (Value::Object(_) | Value::Array(_))) => Some(v),
        _ => None,
    }
}

impl Scrubber {
    pub(super) fn walk_map(
        &self,
        map: &mut Map<'_>,
        parent: Option<&PathNode<'_>>,
        depth: usize,
        at: At,
        walk: &mut Walk<'_>,
    ) {
        // One pass that keeps or drops each entry: removing keys one by one
        // would cost a search and a shift each (an object of many PII keys
        // would take quadratic time).
        map.retain(|key, value| self.visit_entry(key, value, parent, depth, at, walk));
    }

    /// The path rule deciding at `at`, if any.
    #[inline]
    fn hit(&self, at: At, group: bool) -> Option<Hit> {
        let a = at.node.and_then(|n| self.paths.hit(n));
        let b = if at.states == 0 {
            None
        } else {
            self.paths.accepted(at.states)
        };
        let best = match (a, b) {
            (Some(a), Some(b)) => Some(if a.priority <= b.priority { a } else { b }),
            (a, b) => a.or(b),
        };
        best.filter(|h| !(group && h.group_exempt))
    }

    /// Scrubs one object entry; `false` when it must be removed.
    fn visit_entry(
        &self,
        key: &str,
        value: &mut Value,
        parent: Option<&PathNode<'_>>,
        depth: usize,
        at: At,
        walk: &mut Walk<'_>,
    ) -> bool {
        let child = At {
            node: at.node.and_then(|n| self.paths.child(n, key)),
            states: self.paths.step(at.states, key),
        };
        let hit = self.hit(child, walk.group);
        if hit.is_some_and(|h| h.action == Action::Keep) {
            return true;
        }
        if key.len() > self.max_string_bytes {
            let node = PathNode {
                parent,
                seg: Seg::Placeholder("[truncated]"),
            };
            walk.record(&node, RedactionKind::Truncated);
            return false;
        }
        let info = self.deny.classify(key);
        if !info.plain {
            if let Some((kind, marker)) = self.key_detector(key) {
                let node = PathNode {
                    parent,
                    seg: Seg::Placeholder(marker),
                };
                walk.record(&node, kind);
                return false;
            }
        }
        let node = PathNode {
            parent,
            seg: Seg::Key(key),
        };
        if let Some(h) = hit {
            return self.apply_rule(h, value, &node, walk);
        }
        if parent.is_none() {
            let is_identity = identity::is_identity(key);
            if is_identity || identity::is_pseudonymized_id(key) {
                if let Some(keep) = self.identity_field(value, &node, is_identity, walk) {
                    return keep;
                }
            }
        }
        if info.denied.is_some_and(|i| self.deny.removes(i, value)) {
            walk.record(&node, RedactionKind::DeniedKey);
            return false;
        }
        if let Some(decimals) = self.coordinate_decimals {
            if matches!(value, Value::Number(_) | Value::String(_)) {
                if let Some(axis) = coords::axis(key) {
                    if coords::coarsen(value, axis, decimals) {
                        walk.record(&node, RedactionKind::Coordinates);
                    }
                    if !matches!(value, Value::String(_)) {
                        return true;
                    }
                }
            }
        }
        if depth + 1 > self.max_depth {
            walk.record(&node, RedactionKind::Depth);
            return false;
        }
        self.walk_value(value, &node, depth + 1, child, info.hint, walk);
        true
    }

    /// A path rule's action on the value it selects; `false` = remove.
    fn apply_rule(
        &self,
        h: Hit,
        value: &mut Value,
        node: &PathNode<'_>,
        walk: &mut Walk<'_>,
    ) -> bool {
        match h.action {
            Action::Keep => true,
            Action::Remove => {
                if h.person_trait {
                    if matches!(value, Value::Bool(_) | Value::Null) {
                        return true;
                    }
                    walk.record(node, RedactionKind::PersonTrait);
                } else {
                    walk.record(node, RedactionKind::Rule(Action::Remove));
                }
                false
            }
            Action::Mask | Action::Pseudonymize => {
                if self.replace_scalars(value, h.action) {
                    walk.record(node, RedactionKind::Rule(h.action));
                }
                true
            }
        }
    }

    /// Replaces every string and number under `value` by `[masked]` or its
    /// pseudonym; whether anything was replaced.
    fn replace_scalars(&self, value: &mut Value, action: Action) -> bool {
        let text: Cow<'_, str> = match value {
            Value::String(s) => Cow::Borrowed(&**s),
            Value::Number(n) => Cow::Owned(n.to_string()),
            Value::Object(m) => {
                let mut any = false;
                for v in m.values_mut() {
                    any |= self.replace_scalars(v, action);
                }
                return any;
            }
            Value::Array(a) => {
                let mut any = false;
                for v in a.iter_mut() {
                    any |= self.replace_scalars(v, action);
                }
                return any;
            }
            Value::Bool(_) | Value::Null => return false,
        };
        let new = match action {
            Action::Pseudonymize => self.pseudonyms.pseudonym(&text),
            _ => MASK.to_string(),
        };
        *value = Value::String(new.into());
        true
    }

    /// An identity field: `Some(true)` when handled as an id (a string or a
    /// number), `None` when it must be walked like any value (an object or
    /// array of a rejected event).
    fn identity_field(
        &self,
        value: &mut Value,
        node: &PathNode<'_>,
        is_identity: bool,
        walk: &mut Walk<'_>,
    ) -> Option<bool> {
        let replacement = {
            let text: Cow<'_, str> = match value {
                Value::String(s) => Cow::Borrowed(&**s),
                Value::Number(n) => Cow::Owned(n.to_string()),
                Value::Bool(_) | Value::Null => return Some(true),
                Value::Object(_) | Value::Array(_) => return None,
            };
            if is_identity && self.identity == IdentityPii::Keep {
                return Some(true);
            }
            self.scrub_string(&text, Hint::default(), &mut walk.kinds)
                .map(|_| self.pseudonyms.pseudonym(&text))
        };
        if let Some(p) = replacement {
            *value = Value::String(p.into());
            walk.outcome.identity_pii |= is_identity;
        }
        walk.record_kinds(node);
        Some(true)
    }

    fn walk_value(
        &self,
        value: &mut Value,
        node: &PathNode<'_>,
        depth: usize,
        at: At,
        hint: Hint,
        walk: &mut Walk<'_>,
    ) {
        match value {
            Value::String(s) => {
                if let Some(mut inner) = embedded_json(s) {
                    let before = walk.out.len();
                    self.walk_value(&mut inner, node, depth + 1, at, hint, walk);
                    if walk.out.len() > before {
                        *s = crate::json::to_string(&inner).into();
                    }
                    return;
                }
                if let Some(new) = self.scrub_string(s, hint, &mut walk.kinds) {
                    *s = new.into();
                }
                walk.record_kinds(node);
            }
            Value::Object(m) => self.walk_map(m, Some(node), depth, at, walk),
            Value::Array(a) => {
                let mut i = 0;
                a.retain_mut(|v| {
                    let child = PathNode {
                        parent: Some(node),
                        seg: Seg::Index(i),
                    };
                    i += 1;
                    if depth + 1 > self.max_depth {
                        walk.record(&child, RedactionKind::Depth);
                        return false;
                    }
                    self.walk_value(v, &child, depth + 1, at, hint, walk);
                    true
                });
            }
            Value::Number(n) => {
                if self.mask & Detector::Card.bit() != 0 {
                    if let Some(u) = n.as_u64().filter(|&u| u >= MIN_CARD_INTEGER) {
                        let mut buf = itoa::Buffer::new();
                        if card::is_card_number(buf.format(u).as_bytes()) {
                            *value = Value::String(Detector::Card.marker().to_string().into());
                            walk.record(node, RedactionKind::Detector(Detector::Card));
                        }
                    }
                }
            }
            Value::Bool(_) | Value::Null => {}
        }
    }

    /// The detector matching an object key, if any (no URL rules), and
    /// the marker that stands for the key in paths.
    fn key_detector(&self, key: &str) -> Option<(RedactionKind, &'static str)> {
        let mut edits = Vec::new();
        let mut kinds = Vec::new();
        self.detect(key, 0, Hint::default(), &mut edits, &mut kinds);
        edits
            .iter()
            .zip(kinds)
            .map(|(e, k)| (k, e.repl))
            .max_by_key(|(k, _)| match k {
                RedactionKind::Detector(d) => d.precedence(),
                _ => 0,
            })
    }
}
