//! The configuration file's text to a TOML tree, and back from a key to its
//! line.
//!
//! Why not `toml::from_str`: its errors quote the offending source line, and
//! a line of this file may hold a secret (`server_key = "sk_…"`), so a
//! refused reload would print it to the log and to `GET /config`. Here the
//! text is parsed with `toml_edit`, which keeps every key's position: a
//! syntax error becomes "line L, column C: message" and never carries the
//! text, and any other error about a key can say on which line it is.
//! The `${VAR}` references of string values are resolved while the tree is
//! built (see `vars`), where the key and line of each are known.

use std::ops::Range;

use toml_edit::{ImDocument, Item, Table, Value};

use super::vars::{self, Lookup};
use super::ConfigError;

/// One step of a key path: a table key or an array index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Seg {
    Key(String),
    Index(usize),
}

/// `sources[0].server_key`, `kafka.properties."sasl.password"`: the form
/// every configuration error names a key in.
pub(super) fn display_path(path: &[Seg]) -> String {
    let mut out = String::new();
    for seg in path {
        match seg {
            Seg::Index(i) => out.push_str(&format!("[{i}]")),
            Seg::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                if k.contains('.') {
                    out.push_str(&format!("\"{k}\""));
                } else {
                    out.push_str(k);
                }
            }
        }
    }
    out
}

/// The inverse of [`display_path`] (also reads serde's `a.b[0].c`).
pub(super) fn parse_path(path: &str) -> Vec<Seg> {
    let mut segs = Vec::new();
    let mut rest = path;
    while !rest.is_empty() {
        rest = rest.strip_prefix('.').unwrap_or(rest);
        if let Some(r) = rest.strip_prefix('"') {
            let end = r.find('"').unwrap_or(r.len());
            segs.push(Seg::Key(r[..end].to_string()));
            rest = r.get(end + 1..).unwrap_or("");
        } else if let Some(r) = rest.strip_prefix('[') {
            let end = r.find(']').unwrap_or(r.len());
            if let Ok(i) = r[..end].parse() {
                segs.push(Seg::Index(i));
            }
            rest = r.get(end + 1..).unwrap_or("");
        } else {
            let end = rest.find(['.', '[']).unwrap_or(rest.len());
            segs.push(Seg::Key(rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    segs
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

fn syntax_error(text: &str, span: Option<Range<usize>>, message: &str) -> ConfigError {
    // The message says what is wrong, never the text around it.
    let message = message.trim().trim_end_matches('.');
    match span {
        Some(s) => {
            let (line, col) = line_col(text, s.start);
            ConfigError::Syntax(format!("line {line}, column {col}: {message}"))
        }
        None => ConfigError::Syntax(message.to_string()),
    }
}

/// Parses `text` into the tree the structs are read from, resolving each
/// `${VAR}` of a string value with `env`.
pub(super) fn parse(text: &str, env: &Lookup<'_>) -> Result<toml::Value, ConfigError> {
    let doc = ImDocument::parse(text).map_err(|e| syntax_error(text, e.span(), e.message()))?;
    let mut path = Vec::new();
    let builder = Builder { text, env };
    builder.table(doc.as_table(), &mut path)
}

struct Builder<'a> {
    text: &'a str,
    env: &'a Lookup<'a>,
}

impl Builder<'_> {
    fn table(&self, t: &Table, path: &mut Vec<Seg>) -> Result<toml::Value, ConfigError> {
        let mut out = toml::map::Map::new();
        for (k, item) in t.iter() {
            path.push(Seg::Key(k.to_string()));
            if let Some(v) = self.item(item, path)? {
                out.insert(k.to_string(), v);
            }
            path.pop();
        }
        Ok(toml::Value::Table(out))
    }

    fn item(&self, item: &Item, path: &mut Vec<Seg>) -> Result<Option<toml::Value>, ConfigError> {
        Ok(match item {
            Item::None => None,
            Item::Value(v) => Some(self.value(v, path)?),
            Item::Table(t) => Some(self.table(t, path)?),
            Item::ArrayOfTables(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, t) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    out.push(self.table(t, path)?);
                    path.pop();
                }
                Some(toml::Value::Array(out))
            }
        })
    }

    fn value(&self, v: &Value, path: &mut Vec<Seg>) -> Result<toml::Value, ConfigError> {
        Ok(match v {
            Value::String(s) => toml::Value::String(
                vars::interpolate(s.value(), self.env)
                    .map_err(|e| self.at(path, v.span(), e.to_string()))?
                    .into_owned(),
            ),
            Value::Integer(i) => toml::Value::Integer(*i.value()),
            Value::Float(f) => toml::Value::Float(*f.value()),
            Value::Boolean(b) => toml::Value::Boolean(*b.value()),
            Value::Datetime(d) => toml::Value::Datetime(*d.value()),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for (i, x) in a.iter().enumerate() {
                    path.push(Seg::Index(i));
                    out.push(self.value(x, path)?);
                    path.pop();
                }
                toml::Value::Array(out)
            }
            Value::InlineTable(t) => {
                let mut out = toml::map::Map::new();
                for (k, x) in t.iter() {
                    path.push(Seg::Key(k.to_string()));
                    out.insert(k.to_string(), self.value(x, path)?);
                    path.pop();
                }
                toml::Value::Table(out)
            }
        })
    }

    fn at(&self, path: &[Seg], span: Option<Range<usize>>, message: String) -> ConfigError {
        let key = display_path(path);
        match span {
            Some(s) => with_line(
                ConfigError::key(key, message),
                line_col(self.text, s.start).0,
            ),
            None => ConfigError::key(key, message),
        }
    }
}

fn with_line(e: ConfigError, line: usize) -> ConfigError {
    match e {
        ConfigError::Key { key, message } => ConfigError::Key {
            key,
            message: format!("{message} (line {line})"),
        },
        other => other,
    }
}

/// A place in the document while a key path is followed.
#[derive(Clone, Copy)]
enum Node<'a> {
    Table(&'a Table),
    Inline(&'a toml_edit::InlineTable),
    Tables(&'a toml_edit::ArrayOfTables),
    Array(&'a toml_edit::Array),
    Leaf,
}

impl<'a> Node<'a> {
    fn of_item(item: &'a Item) -> Node<'a> {
        match item {
            Item::Table(t) => Node::Table(t),
            Item::ArrayOfTables(a) => Node::Tables(a),
            Item::Value(v) => Node::of_value(v),
            Item::None => Node::Leaf,
        }
    }

    fn of_value(v: &'a Value) -> Node<'a> {
        match v {
            Value::InlineTable(t) => Node::Inline(t),
            Value::Array(a) => Node::Array(a),
            _ => Node::Leaf,
        }
    }

    /// The child at `seg`, with the span of its key (or element).
    fn child(self, seg: &Seg) -> Option<(Option<Range<usize>>, Node<'a>)> {
        match (self, seg) {
            (Node::Table(t), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::of_item(item))),
            (Node::Inline(t), Seg::Key(k)) => t
                .get_key_value(k)
                .map(|(key, item)| (key.span(), Node::of_item(item))),
            (Node::Tables(a), Seg::Index(i)) => a.get(*i).map(|t| (t.span(), Node::Table(t))),
            (Node::Array(a), Seg::Index(i)) => a.get(*i).map(|v| (v.span(), Node::of_value(v))),
            _ => None,
        }
    }
}

/// The line of the file `text` where `key` (as an error names it) is set.
pub(super) fn line_of(text: &str, key: &str) -> Option<usize> {
    let doc = ImDocument::parse(text).ok()?;
    let mut node = Node::Table(doc.as_table());
    let mut span = None;
    for seg in parse_path(key) {
        let (s, next) = node.child(&seg)?;
        span = s.or(span);
        node = next;
    }
    span.map(|s| line_col(text, s.start).0)
}

/// Adds "(line N)" to a key error whose key is set in `text`.
pub(super) fn locate(e: ConfigError, text: &str) -> ConfigError {
    match &e {
        ConfigError::Key { key, message } if !message.contains("(line ") => {
            match line_of(text, key) {
                Some(line) => with_line(e, line),
                None => e,
            }
        }
        _ => e,
    }
}
