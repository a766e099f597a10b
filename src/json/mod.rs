//! The JSON tree events are parsed into: it borrows every string and key
//! from the request body (a string is owned only when its text had escapes
//! or a stage changed it), keeps the order the client sent, and is written
//! back once into the Kafka record, copying the input's strings as they
//! are (`write`).
//!
//! The API mirrors `serde_json::Value` and `Map`, so a stage reads like one
//! written for them; what differs is the cost: parsing allocates one `Vec`
//! per object and array instead of a `String` per key and value and a
//! B-tree per object, and writing copies borrowed text without escaping it.
//! Stages change the tree in place; an untouched value costs nothing until
//! it is copied into the record.
//!
//! A `Cow::Borrowed` string that points into the text being written is one
//! the parser produced (no stage builds a borrowed string from raw event
//! text), so the writer copies it with its quotes as it is.
//!
//! Numbers are text too (`number`): the record carries the client's digits,
//! never a value read as `f64` and printed again.
//!
//! Objects keep one entry per key: when the client repeats a key, the last
//! value wins (as `serde_json` decides), at the first one's place.

mod number;
mod parse;
mod skip;
mod write;

use std::borrow::Cow;
use std::collections::HashMap;

/// Up to this many entries, objects are searched entry by entry; beyond
/// it, repeated keys and merges go through a hash table.
const PAIRWISE_MAX: usize = 16;

pub use number::Number;
pub use parse::{from_str, reparse, skip_ws, ErrorKind, ParseError, MAX_DEPTH};
pub use skip::{skip_string, skip_value};
pub use write::{map_to_string, to_string, write_map, write_value};

/// One JSON value, borrowing its text from the input where it can.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Value<'a> {
    #[default]
    Null,
    Bool(bool),
    Number(Number<'a>),
    String(Cow<'a, str>),
    Array(Vec<Value<'a>>),
    Object(Map<'a>),
}

/// A JSON object: its entries in the order they came, one per key. Two
/// objects are equal when they hold the same entries, in any order.
#[derive(Debug, Clone, Default)]
pub struct Map<'a> {
    entries: Vec<(Cow<'a, str>, Value<'a>)>,
}

impl<'a> Value<'a> {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_object(&self) -> Option<&Map<'a>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_object_mut(&mut self) -> Option<&mut Map<'a>> {
        match self {
            Value::Object(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&Vec<Value<'a>>> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Number(n) => n.as_i64(),
            _ => None,
        }
    }

    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
    }

    /// The value under `key` when this is an object.
    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.as_object().and_then(|m| m.get(key))
    }

    /// The value under `key` when this is an object, to change.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.as_object_mut().and_then(|m| m.get_mut(key))
    }

    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    pub fn is_string(&self) -> bool {
        matches!(self, Value::String(_))
    }

    pub fn is_object(&self) -> bool {
        matches!(self, Value::Object(_))
    }

    /// The same value owning all of its text, free of the input's lifetime.
    pub fn into_owned(self) -> Value<'static> {
        match self {
            Value::Null => Value::Null,
            Value::Bool(b) => Value::Bool(b),
            Value::Number(n) => Value::Number(n.into_owned()),
            Value::String(s) => Value::String(Cow::Owned(s.into_owned())),
            Value::Array(a) => Value::Array(a.into_iter().map(Value::into_owned).collect()),
            Value::Object(m) => Value::Object(m.into_owned()),
        }
    }

    /// The equivalent `serde_json::Value` (for tests and the few places
    /// that hand a value to code written for `serde_json`).
    pub fn to_serde(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(*b),
            Value::Number(n) => serde_json::Value::Number(n.to_serde()),
            Value::String(s) => serde_json::Value::String(s.to_string()),
            Value::Array(a) => serde_json::Value::Array(a.iter().map(Value::to_serde).collect()),
            Value::Object(m) => serde_json::Value::Object(m.to_serde()),
        }
    }
}

impl From<serde_json::Value> for Value<'static> {
    fn from(v: serde_json::Value) -> Value<'static> {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => Value::Number(Number::from(n)),
            serde_json::Value::String(s) => Value::String(Cow::Owned(s)),
            serde_json::Value::Array(a) => Value::Array(a.into_iter().map(Value::from).collect()),
            serde_json::Value::Object(m) => Value::Object(Map::from(m)),
        }
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Map<'static> {
    fn from(m: serde_json::Map<String, serde_json::Value>) -> Map<'static> {
        Map {
            entries: m
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k), Value::from(v)))
                .collect(),
        }
    }
}

impl<'a> From<&'a str> for Value<'a> {
    fn from(s: &'a str) -> Value<'a> {
        Value::String(Cow::Borrowed(s))
    }
}

impl From<String> for Value<'_> {
    fn from(s: String) -> Self {
        Value::String(Cow::Owned(s))
    }
}

impl From<bool> for Value<'_> {
    fn from(b: bool) -> Self {
        Value::Bool(b)
    }
}

impl PartialEq<str> for Value<'_> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == Some(other)
    }
}

impl PartialEq<&str> for Value<'_> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == Some(*other)
    }
}

impl PartialEq<bool> for Value<'_> {
    fn eq(&self, other: &bool) -> bool {
        self.as_bool() == Some(*other)
    }
}

impl PartialEq<i32> for Value<'_> {
    fn eq(&self, other: &i32) -> bool {
        self.as_i64() == Some(i64::from(*other))
    }
}

impl PartialEq<f64> for Value<'_> {
    fn eq(&self, other: &f64) -> bool {
        self.as_f64() == Some(*other)
    }
}

impl PartialEq<serde_json::Value> for Value<'_> {
    fn eq(&self, other: &serde_json::Value) -> bool {
        match (self, other) {
            (Value::Null, serde_json::Value::Null) => true,
            (Value::Bool(a), serde_json::Value::Bool(b)) => a == b,
            (Value::Number(a), serde_json::Value::Number(b)) => *a == *b,
            (Value::String(a), serde_json::Value::String(b)) => a == b,
            (Value::Array(a), serde_json::Value::Array(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
            }
            (Value::Object(a), serde_json::Value::Object(b)) => {
                a.len() == b.len() && b.iter().all(|(k, v)| a.get(k).is_some_and(|x| x == v))
            }
            _ => false,
        }
    }
}

static NULL: Value<'static> = Value::Null;

impl<'a> std::ops::Index<&str> for Value<'a> {
    type Output = Value<'a>;
    /// `Null` when this is not an object or has no such key (as in
    /// `serde_json`).
    fn index(&self, key: &str) -> &Value<'a> {
        match self {
            Value::Object(m) => &m[key],
            _ => &NULL,
        }
    }
}

impl std::ops::IndexMut<&str> for Value<'_> {
    /// The value under `key`, inserted as `Null` when absent; a `Null`
    /// becomes an empty object first (as in `serde_json`).
    ///
    /// # Panics
    /// When this is neither an object nor `Null` (as in `serde_json`).
    fn index_mut(&mut self, key: &str) -> &mut Self::Output {
        if self.is_null() {
            *self = Value::Object(Map::new());
        }
        match self {
            Value::Object(m) => m.get_or_insert_with(key.to_owned(), || Value::Null),
            _ => panic!("cannot index a non-object JSON value with a key"),
        }
    }
}

impl<'a> std::ops::Index<&str> for Map<'a> {
    type Output = Value<'a>;
    fn index(&self, key: &str) -> &Value<'a> {
        self.get(key).unwrap_or(&NULL)
    }
}

impl std::fmt::Display for Value<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out = Vec::new();
        write_value(self, &mut out);
        f.write_str(&String::from_utf8_lossy(&out))
    }
}

impl<'a> Map<'a> {
    pub fn new() -> Map<'a> {
        Map {
            entries: Vec::new(),
        }
    }

    pub fn with_capacity(n: usize) -> Map<'a> {
        Map {
            entries: Vec::with_capacity(n),
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn position(&self, key: &str) -> Option<usize> {
        self.entries.iter().position(|(k, _)| k == key)
    }

    pub fn get(&self, key: &str) -> Option<&Value<'a>> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value<'a>> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.position(key).is_some()
    }

    /// Sets `key` to `value` (in place when it exists, else at the end) and
    /// returns the value it had.
    pub fn insert(&mut self, key: impl Into<Cow<'a, str>>, value: Value<'a>) -> Option<Value<'a>> {
        let key = key.into();
        match self.position(&key) {
            Some(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            None => {
                self.entries.push((key, value));
                None
            }
        }
    }

    /// Removes `key`, keeping the order of the rest.
    pub fn remove(&mut self, key: &str) -> Option<Value<'a>> {
        let i = self.position(key)?;
        Some(self.entries.remove(i).1)
    }

    /// The value under `key`, inserted with `make` when absent.
    pub fn get_or_insert_with(
        &mut self,
        key: impl Into<Cow<'a, str>>,
        make: impl FnOnce() -> Value<'a>,
    ) -> &mut Value<'a> {
        let key = key.into();
        let i = match self.position(&key) {
            Some(i) => i,
            None => {
                self.entries.push((key, make()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[i].1
    }

    pub fn clear(&mut self) {
        self.entries.clear();
    }

    pub fn retain(&mut self, mut keep: impl FnMut(&str, &mut Value<'a>) -> bool) {
        self.entries.retain_mut(|(k, v)| keep(k, v));
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &Value<'a>)> {
        self.entries.iter().map(|(k, v)| (k.as_ref(), v))
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&str, &mut Value<'a>)> {
        self.entries.iter_mut().map(|(k, v)| (&**k, v))
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.entries.iter().map(|(k, _)| k.as_ref())
    }

    pub fn values(&self) -> impl Iterator<Item = &Value<'a>> {
        self.entries.iter().map(|(_, v)| v)
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Value<'a>> {
        self.entries.iter_mut().map(|(_, v)| v)
    }

    /// Deep-merges `under` beneath this object: keys it already has win;
    /// where both hold an object, the two are merged the same way. Copies
    /// borrowed text as slices. Linear in the two objects' sizes (a client
    /// controls both: a batch `context` and an event's).
    pub fn merge_under(&mut self, under: &Map<'a>) {
        if self.is_empty() {
            self.entries.clone_from(&under.entries);
            return;
        }
        if self.len() * under.len() <= PAIRWISE_MAX * PAIRWISE_MAX {
            for (k, v) in &under.entries {
                match self.get_mut(k) {
                    None => self.entries.push((k.clone(), v.clone())),
                    Some(Value::Object(o)) => {
                        if let Value::Object(u) = v {
                            o.merge_under(u);
                        }
                    }
                    Some(_) => {}
                }
            }
            return;
        }
        let at: HashMap<String, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k.to_string(), i))
            .collect();
        for (k, v) in &under.entries {
            match at.get(k.as_ref()) {
                None => self.entries.push((k.clone(), v.clone())),
                Some(&i) => {
                    if let (Value::Object(o), Value::Object(u)) = (&mut self.entries[i].1, v) {
                        o.merge_under(u);
                    }
                }
            }
        }
    }

    /// The entries with their keys as stored (borrowed or owned).
    pub(crate) fn entries(&self) -> &[(Cow<'a, str>, Value<'a>)] {
        &self.entries
    }

    pub fn into_owned(self) -> Map<'static> {
        Map {
            entries: self
                .entries
                .into_iter()
                .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                .collect(),
        }
    }

    pub fn to_serde(&self) -> serde_json::Map<String, serde_json::Value> {
        self.entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_serde()))
            .collect()
    }

    /// Builds a map from parsed entries, keeping one entry per key.
    pub(crate) fn from_entries(mut entries: Vec<(Cow<'a, str>, Value<'a>)>) -> Map<'a> {
        parse::dedupe(&mut entries);
        Map { entries }
    }
}

impl PartialEq for Map<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().all(|(k, v)| other.get(k) == Some(v))
    }
}

impl<'a> IntoIterator for Map<'a> {
    type Item = (Cow<'a, str>, Value<'a>);
    type IntoIter = std::vec::IntoIter<(Cow<'a, str>, Value<'a>)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

impl<'m, 'a> IntoIterator for &'m Map<'a> {
    type Item = (&'m str, &'m Value<'a>);
    type IntoIter = std::iter::Map<
        std::slice::Iter<'m, (Cow<'a, str>, Value<'a>)>,
        fn(&'m (Cow<'a, str>, Value<'a>)) -> (&'m str, &'m Value<'a>),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter().map(|(k, v)| (&**k, v))
    }
}

impl<'a, K: Into<Cow<'a, str>>> FromIterator<(K, Value<'a>)> for Map<'a> {
    fn from_iter<I: IntoIterator<Item = (K, Value<'a>)>>(iter: I) -> Map<'a> {
        let entries = iter.into_iter().map(|(k, v)| (k.into(), v)).collect();
        Map::from_entries(entries)
    }
}

impl PartialEq<serde_json::Map<String, serde_json::Value>> for Map<'_> {
    fn eq(&self, other: &serde_json::Map<String, serde_json::Value>) -> bool {
        self.len() == other.len()
            && other
                .iter()
                .all(|(k, v)| self.get(k).is_some_and(|x| x == v))
    }
}

#[cfg(test)]
mod tests;

/// `serde_json::json!`, as a tree of this module (owning its text).
#[macro_export]
#[doc(hidden)]
macro_rules! json_tree {
    ($($t:tt)+) => {
        $crate::json::Value::from(serde_json::json!($($t)+))
    };
}
pub use json_tree as json;
