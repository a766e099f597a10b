//! Parsing into the borrowed tree, on `serde_json`'s parser (its checks,
//! its error positions and its recursion limit), with a visitor that keeps
//! every string and key without escapes as a slice of the input.

use std::borrow::Cow;
use std::collections::HashSet;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use super::{Map, Value, PAIRWISE_MAX};

/// Parses one JSON text; strings and keys without escapes borrow from it.
pub fn from_str(text: &str) -> Result<Value<'_>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let value = Value::deserialize(&mut de)?;
    de.end()?;
    Ok(value)
}

/// Keeps one entry per key: the last value, at the first one's place.
pub(super) fn dedupe(entries: &mut Vec<(Cow<'_, str>, Value<'_>)>) {
    let n = entries.len();
    let repeated = if n <= PAIRWISE_MAX {
        (1..n).any(|i| entries[..i].iter().any(|(k, _)| *k == entries[i].0))
    } else {
        let mut seen = HashSet::with_capacity(n);
        !entries.iter().all(|(k, _)| seen.insert(k.as_ref()))
    };
    if !repeated {
        return;
    }
    let mut kept: Vec<(Cow<'_, str>, Value<'_>)> = Vec::with_capacity(n);
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (k, v) in entries.drain(..) {
        match at.get(k.as_ref()) {
            Some(&i) => kept[i].1 = v,
            None => {
                at.insert(k.to_string(), kept.len());
                kept.push((k, v));
            }
        }
    }
    // The lifetimes are the same; this only moves the entries back.
    entries.extend(kept);
}

/// Builds values living as long as `'a`, from input living at least as long.
struct ValueVisitor<'a>(PhantomData<Value<'a>>);

impl<'de: 'a, 'a> Visitor<'de> for ValueVisitor<'a> {
    type Value = Value<'a>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_unit<E>(self) -> Result<Value<'a>, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value<'a>, E> {
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, b: bool) -> Result<Value<'a>, E> {
        Ok(Value::Bool(b))
    }

    fn visit_i64<E>(self, n: i64) -> Result<Value<'a>, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_u64<E>(self, n: u64) -> Result<Value<'a>, E> {
        Ok(Value::Number(n.into()))
    }

    fn visit_f64<E>(self, n: f64) -> Result<Value<'a>, E> {
        // The parser yields finite numbers only; `Null` as `serde_json` does.
        Ok(serde_json::Number::from_f64(n).map_or(Value::Null, Value::Number))
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Borrowed(s)))
    }

    fn visit_str<E>(self, s: &str) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Owned(s.to_owned())))
    }

    fn visit_string<E>(self, s: String) -> Result<Value<'a>, E> {
        Ok(Value::String(Cow::Owned(s)))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value<'a>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value<'a>, A::Error> {
        let mut entries = Vec::with_capacity(8);
        while let Some(key) = map.next_key_seed(KeySeed(PhantomData))? {
            entries.push((key, map.next_value()?));
        }
        Ok(Value::Object(Map::from_entries(entries)))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Value<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Value<'a>, D::Error> {
        d.deserialize_any(ValueVisitor(PhantomData))
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Map<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Map<'a>, D::Error> {
        match Value::deserialize(d)? {
            Value::Object(m) => Ok(m),
            _ => Err(serde::de::Error::custom("expected a JSON object")),
        }
    }
}

/// An object key, borrowed when it had no escapes.
struct KeySeed<'a>(PhantomData<&'a str>);

impl<'de: 'a, 'a> DeserializeSeed<'de> for KeySeed<'a> {
    type Value = Cow<'a, str>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Cow<'a, str>, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de: 'a, 'a> Visitor<'de> for KeySeed<'a> {
    type Value = Cow<'a, str>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an object key")
    }

    fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Borrowed(s))
    }

    fn visit_str<E>(self, s: &str) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Owned(s.to_owned()))
    }

    fn visit_string<E>(self, s: String) -> Result<Cow<'a, str>, E> {
        Ok(Cow::Owned(s))
    }
}
