//! Path rules: a selector (a dotted path of keys where `*` is any one key
//! and `**` any number of keys, zero included) and the action taken on the
//! value it selects. Array indices are not part of paths: `properties.items.sku`
//! selects the `sku` of every item.
//!
//! Selectors without wildcards live in a tree of keys (one probe per key on
//! the walk); selectors with wildcards run as a small automaton whose state
//! is a bit set, so an event walked with no wildcard rule configured pays
//! nothing for them.
//!
//! When several rules select one value, the first configured rule wins, and
//! configured rules win over the built-in ones.

use serde::Deserialize;

use super::keys::same;

/// What a path rule does with the value it selects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// The key is removed with its value.
    Remove,
    /// Every string and number under it becomes its keyed pseudonym.
    Pseudonymize,
    /// Every string and number under it becomes `[masked]`.
    Mask,
    /// Kept verbatim: no rule or detector looks at it.
    Keep,
}

impl Action {
    /// Stable name, used as a redaction label.
    pub fn label(self) -> &'static str {
        match self {
            Action::Remove => "rule_remove",
            Action::Pseudonymize => "rule_pseudonymize",
            Action::Mask => "rule_mask",
            Action::Keep => "rule_keep",
        }
    }
}

/// The text that replaces a masked value.
pub const MASK: &str = "[masked]";

/// One segment of a selector.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(Box<str>),
    One,
    Many,
}

/// A selector that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SelectorError {
    #[error("selector {0:?} has an empty segment")]
    Empty(String),
    #[error("the wildcard selectors need more than {max} automaton states")]
    TooManyWildcards { max: usize },
}

/// Where a match was decided: its action and priority (lower wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hit {
    pub action: Action,
    pub priority: u32,
    /// A built-in person-trait rule (a key rule: booleans and nulls stay).
    pub person_trait: bool,
    /// Skipped on `group` events (a person-trait rule under the top-level
    /// `traits`, which describe the group there).
    pub group_exempt: bool,
}

/// A node of the literal-path tree.
pub(crate) type Node = u32;

#[derive(Debug, Default)]
struct TreeNode {
    children: Vec<(Box<str>, Node)>,
    hit: Option<Hit>,
}

/// The automaton state: bit `i` set = position `i` is live.
pub(crate) type States = u64;

/// Most automaton positions of all wildcard selectors together.
pub const MAX_WILDCARD_STATES: usize = States::BITS as usize;

#[derive(Debug, Default)]
pub(crate) struct PathRules {
    nodes: Vec<TreeNode>,
    /// Segment at each automaton position; `None` = a rule's end.
    positions: Vec<Option<Seg>>,
    /// The rule ending at each accepting position.
    accepts: Vec<Option<Hit>>,
    /// Live positions at the root.
    start: States,
}

/// A rule to compile: selector, action, priority, person trait.
pub(crate) struct RuleSpec<'a> {
    pub selector: &'a str,
    pub hit: Hit,
}

fn parse(selector: &str) -> Result<Vec<Seg>, SelectorError> {
    if selector.split('.').any(str::is_empty) {
        return Err(SelectorError::Empty(selector.to_string()));
    }
    Ok(selector
        .split('.')
        .map(|s| match s {
            "*" => Seg::One,
            "**" => Seg::Many,
            k => Seg::Key(k.into()),
        })
        .collect())
}

impl PathRules {
    pub(crate) const ROOT: Node = 0;

    pub(crate) fn new<'a>(
        rules: impl IntoIterator<Item = RuleSpec<'a>>,
    ) -> Result<PathRules, SelectorError> {
        let mut p = PathRules {
            nodes: vec![TreeNode::default()],
            ..PathRules::default()
        };
        for r in rules {
            let segs = parse(r.selector)?;
            if segs.iter().all(|s| matches!(s, Seg::Key(_))) {
                p.insert_literal(&segs, r.hit);
            } else {
                let first = p.positions.len();
                if first + segs.len() + 1 > MAX_WILDCARD_STATES {
                    return Err(SelectorError::TooManyWildcards {
                        max: MAX_WILDCARD_STATES,
                    });
                }
                for s in segs {
                    p.positions.push(Some(s));
                    p.accepts.push(None);
                }
                p.positions.push(None);
                p.accepts.push(Some(r.hit));
                p.start |= 1 << first;
            }
        }
        p.start = p.closure(p.start);
        Ok(p)
    }

    fn insert_literal(&mut self, segs: &[Seg], hit: Hit) {
        let mut at = Self::ROOT;
        for s in segs {
            let Seg::Key(k) = s else { continue };
            at = match self.child(at, k) {
                Some(c) => c,
                None => {
                    let id = self.nodes.len() as Node;
                    self.nodes.push(TreeNode::default());
                    self.nodes[at as usize].children.push((k.clone(), id));
                    id
                }
            };
        }
        let slot = &mut self.nodes[at as usize].hit;
        if slot.map_or(true, |h| hit.priority < h.priority) {
            *slot = Some(hit);
        }
    }

    /// Live positions at the root.
    #[inline]
    pub(crate) fn start(&self) -> States {
        self.start
    }

    /// The literal-tree child for `key`.
    #[inline]
    pub(crate) fn child(&self, node: Node, key: &str) -> Option<Node> {
        self.nodes[node as usize]
            .children
            .iter()
            .find(|(k, _)| same(k.as_bytes(), key.as_bytes()))
            .map(|&(_, c)| c)
    }

    /// The rule decided at a literal-tree node, if any.
    #[inline]
    pub(crate) fn hit(&self, node: Node) -> Option<Hit> {
        self.nodes[node as usize].hit
    }

    /// Adds the positions after every live `**` (which may match nothing).
    fn closure(&self, mut s: States) -> States {
        loop {
            let mut next = s;
            let mut bits = s;
            while bits != 0 {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                if matches!(self.positions[i], Some(Seg::Many)) {
                    next |= 1 << (i + 1);
                }
            }
            if next == s {
                return s;
            }
            s = next;
        }
    }

    /// The live positions after stepping into `key`.
    #[inline]
    pub(crate) fn step(&self, s: States, key: &str) -> States {
        if s == 0 {
            return 0;
        }
        let mut next = 0;
        let mut bits = s;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            match &self.positions[i] {
                Some(Seg::Key(k)) if same(k.as_bytes(), key.as_bytes()) => next |= 1 << (i + 1),
                Some(Seg::One) => next |= 1 << (i + 1),
                Some(Seg::Many) => next |= 1 << i,
                _ => {}
            }
        }
        self.closure(next)
    }

    /// The best rule accepting in `s`, if any.
    #[inline]
    pub(crate) fn accepted(&self, s: States) -> Option<Hit> {
        let mut best: Option<Hit> = None;
        let mut bits = s;
        while bits != 0 {
            let i = bits.trailing_zeros() as usize;
            bits &= bits - 1;
            if let Some(h) = self.accepts[i] {
                if best.map_or(true, |b| h.priority < b.priority) {
                    best = Some(h);
                }
            }
        }
        best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hit(action: Action, priority: u32) -> Hit {
        Hit {
            action,
            priority,
            person_trait: false,
            group_exempt: false,
        }
    }

    /// The action decided at `path` (dotted keys).
    fn decide(p: &PathRules, path: &str) -> Option<Action> {
        let mut node = Some(PathRules::ROOT);
        let mut s = p.start();
        let mut last = None;
        for k in path.split('.') {
            node = node.and_then(|n| p.child(n, k));
            s = p.step(s, k);
            let a = node.and_then(|n| p.hit(n));
            let b = p.accepted(s);
            last = match (a, b) {
                (Some(a), Some(b)) => Some(if a.priority <= b.priority { a } else { b }),
                (a, b) => a.or(b),
            };
        }
        last.map(|h| h.action)
    }

    #[test]
    fn literal_and_wildcard_selectors() {
        let p = PathRules::new([
            RuleSpec {
                selector: "properties.**.iban",
                hit: hit(Action::Remove, 0),
            },
            RuleSpec {
                selector: "traits.company.*",
                hit: hit(Action::Mask, 1),
            },
            RuleSpec {
                selector: "context.ip",
                hit: hit(Action::Keep, 2),
            },
            RuleSpec {
                selector: "*.secret",
                hit: hit(Action::Pseudonymize, 3),
            },
        ])
        .expect("valid");
        assert_eq!(decide(&p, "properties.iban"), Some(Action::Remove));
        assert_eq!(decide(&p, "properties.a.b.iban"), Some(Action::Remove));
        assert_eq!(decide(&p, "properties.ibanx"), None);
        assert_eq!(decide(&p, "traits.iban"), None);
        assert_eq!(decide(&p, "traits.company.name"), Some(Action::Mask));
        assert_eq!(decide(&p, "traits.company"), None);
        assert_eq!(decide(&p, "context.ip"), Some(Action::Keep));
        assert_eq!(decide(&p, "context.secret"), Some(Action::Pseudonymize));
        assert_eq!(decide(&p, "context.a.secret"), None);
    }

    #[test]
    fn first_rule_wins() {
        let p = PathRules::new([
            RuleSpec {
                selector: "traits.*",
                hit: hit(Action::Keep, 0),
            },
            RuleSpec {
                selector: "traits.name",
                hit: hit(Action::Remove, 5),
            },
        ])
        .expect("valid");
        assert_eq!(decide(&p, "traits.name"), Some(Action::Keep));
    }

    #[test]
    fn bad_selectors_are_refused() {
        for s in ["", "a..b", ".a", "a."] {
            assert!(PathRules::new([RuleSpec {
                selector: s,
                hit: hit(Action::Keep, 0)
            }])
            .is_err());
        }
        let many: Vec<String> = (0..40).map(|i| format!("**.k{i}")).collect();
        let specs = many.iter().map(|s| RuleSpec {
            selector: s,
            hit: hit(Action::Keep, 0),
        });
        assert!(matches!(
            PathRules::new(specs),
            Err(SelectorError::TooManyWildcards { .. })
        ));
    }
}
