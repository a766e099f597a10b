//! The changes a quality part asks for, applied in one place.
//!
//! The parts (plan, enrichment) read an event and return edits instead of
//! rewriting it; [`apply`] writes them into the event's borrowed tree
//! (`crate::json`), where an untouched value stays a slice of the request
//! body until the record is written.

use std::collections::HashSet;

use crate::json::{Map, Value};

/// One change to an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Edit {
    /// Removes `key` from the top-level object `container` (`properties`
    /// or `traits`).
    RemoveField {
        container: &'static str,
        key: String,
    },
    /// Removes the field at `path` (a gateway-owned field the client sent).
    Remove(&'static [&'static str]),
    /// Sets the field at `path`, creating the objects on the way (a
    /// non-object in the way is replaced).
    Set(&'static [&'static str], Value<'static>),
}

/// Applies `edits` in order. A run of [`Edit::RemoveField`]s on one
/// container is applied in one pass over it (a plan in `omit` mode may
/// remove most of an object's keys: one by one would take quadratic time).
pub fn apply(body: &mut Map<'_>, edits: impl IntoIterator<Item = Edit>) {
    let mut removals: Option<(&'static str, HashSet<String>)> = None;
    for edit in edits {
        match edit {
            Edit::RemoveField { container, key } => match &mut removals {
                Some((c, keys)) if *c == container => {
                    keys.insert(key);
                }
                _ => {
                    remove_fields(body, removals.take());
                    removals = Some((container, HashSet::from([key])));
                }
            },
            Edit::Remove(path) => {
                remove_fields(body, removals.take());
                remove(body, path);
            }
            Edit::Set(path, value) => {
                remove_fields(body, removals.take());
                set(body, path, value);
            }
        }
    }
    remove_fields(body, removals);
}

fn remove_fields(body: &mut Map<'_>, removals: Option<(&'static str, HashSet<String>)>) {
    if let Some((container, keys)) = removals {
        if let Some(Value::Object(m)) = body.get_mut(container) {
            m.retain(|k, _| !keys.contains(k));
        }
    }
}

fn remove(body: &mut Map<'_>, path: &[&str]) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = body;
    for seg in parents {
        match node.get_mut(seg) {
            Some(Value::Object(m)) => node = m,
            _ => return,
        }
    }
    node.remove(last);
}

fn set<'a>(body: &mut Map<'a>, path: &[&'static str], value: Value<'a>) {
    let Some((last, parents)) = path.split_last() else {
        return;
    };
    let mut node = body;
    for seg in parents {
        if !matches!(node.get(seg), Some(Value::Object(_))) {
            node.insert(*seg, Value::Object(Map::new()));
        }
        node = match node.get_mut(seg) {
            Some(Value::Object(m)) => m,
            // Inserted as an object just above.
            _ => return,
        };
    }
    node.insert(*last, value);
}

/// The value at `path`, if every step on the way is an object.
pub fn get<'m, 'a>(body: &'m Map<'a>, path: &[&str]) -> Option<&'m Value<'a>> {
    let (last, parents) = path.split_last()?;
    let mut node = body;
    for seg in parents {
        match node.get(seg) {
            Some(Value::Object(m)) => node = m,
            _ => return None,
        }
    }
    node.get(last)
}

#[cfg(test)]
mod tests {
    use crate::json::json;

    use super::*;

    fn obj(v: Value<'_>) -> Map<'_> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn edits_apply_in_order() {
        let cases: Vec<(Value, Vec<Edit>, Value)> = vec![
            (
                json!({"properties":{"a":1,"b":2}}),
                vec![Edit::RemoveField {
                    container: "properties",
                    key: "a".into(),
                }],
                json!({"properties":{"b":2}}),
            ),
            (
                json!({"context":{"violations":"sent"}}),
                vec![Edit::Remove(&["context", "violations"])],
                json!({"context":{}}),
            ),
            (json!({}), vec![Edit::Remove(&["context", "x"])], json!({})),
            (
                json!({"context":"not an object"}),
                vec![Edit::Set(&["context", "campaign", "source"], json!("news"))],
                json!({"context":{"campaign":{"source":"news"}}}),
            ),
            (
                json!({"context":{"ip":"1.2.3.0"}}),
                vec![
                    Edit::Set(&["context", "violations"], json!([1])),
                    Edit::Remove(&["context", "ip"]),
                ],
                json!({"context":{"violations":[1]}}),
            ),
        ];
        for (before, edits, after) in cases {
            let mut body = obj(before.clone());
            apply(&mut body, edits);
            assert_eq!(Value::Object(body), after, "from {before}");
        }
    }

    #[test]
    fn get_follows_objects_only() {
        let body = obj(json!({"context":{"page":{"url":"u"}},"x":1}));
        assert_eq!(get(&body, &["context", "page", "url"]), Some(&json!("u")));
        assert_eq!(get(&body, &["x", "y"]), None);
        assert_eq!(get(&body, &["missing"]), None);
    }
}
