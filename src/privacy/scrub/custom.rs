//! Named custom detectors from the configuration: a regular expression run
//! over every string the built-in detectors see (values, keys, decoded
//! forms), each match replaced in place by `[name]` and reported under
//! `name`. An optional prefilter (a literal the text must contain) keeps
//! the expression off strings that cannot match, as the built-in
//! detectors' prefilters do.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock, PoisonError};

use memchr::memmem::Finder;
use regex::Regex;
use serde::Deserialize;

use super::config::Detector;
use super::text::{self, Edit, Span};
use super::{RedactionKind, Scrubber};

/// Longest custom detector name.
const MAX_NAME_LEN: usize = 40;
/// Largest compiled expression accepted, in bytes.
const MAX_REGEX_SIZE: usize = 1 << 20;

/// A `[[sources.privacy.scrub.custom_detectors]]` entry.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomDetectorConfig {
    /// Name: the redaction label and the marker `[name]`; lower-case
    /// letters, digits and `_`, not the name of a built-in detector.
    pub name: String,
    /// The regular expression (Rust `regex` syntax; `(?i)` for case
    /// insensitivity). Every match is replaced.
    pub regex: String,
    /// A literal the text must contain for the expression to run
    /// (case-sensitive). Default: none (the expression runs on every
    /// string, which costs time on every event).
    #[serde(default)]
    pub prefilter: Option<String>,
}

/// Why a custom detector cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum CustomError {
    #[error("custom detector name {0:?} must be 1 to {MAX_NAME_LEN} of a-z, 0-9 and _, and not a built-in detector")]
    BadName(String),
    #[error("custom detector name {0:?} is used twice")]
    Duplicate(String),
    #[error("custom detector {name:?}: {message}")]
    Regex { name: String, message: String },
    #[error("custom detector {0:?}: the prefilter is empty")]
    EmptyPrefilter(String),
}

/// A compiled custom detector.
#[derive(Debug)]
pub(crate) struct Custom {
    pub label: &'static str,
    pub marker: &'static str,
    regex: Regex,
    prefilter: Option<Finder<'static>>,
}

/// A found match: where, and which detector.
#[derive(Debug, Clone, Copy)]
pub(crate) struct CustomSpan {
    pub start: usize,
    pub end: usize,
    pub index: usize,
}

impl Custom {
    pub(crate) fn build(configs: &[CustomDetectorConfig]) -> Result<Vec<Custom>, CustomError> {
        let mut seen = HashSet::new();
        configs
            .iter()
            .map(|c| {
                let valid = !c.name.is_empty()
                    && c.name.len() <= MAX_NAME_LEN
                    && c.name
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                    && !Detector::ALL.iter().any(|d| d.label() == c.name);
                if !valid {
                    return Err(CustomError::BadName(c.name.clone()));
                }
                if !seen.insert(c.name.clone()) {
                    return Err(CustomError::Duplicate(c.name.clone()));
                }
                let regex = regex::RegexBuilder::new(&c.regex)
                    .size_limit(MAX_REGEX_SIZE)
                    .build()
                    .map_err(|e| CustomError::Regex {
                        name: c.name.clone(),
                        message: e.to_string(),
                    })?;
                let prefilter = match &c.prefilter {
                    Some(p) if p.is_empty() => {
                        return Err(CustomError::EmptyPrefilter(c.name.clone()))
                    }
                    Some(p) => Some(Finder::new(p.as_bytes()).into_owned()),
                    None => None,
                };
                Ok(Custom {
                    label: intern(&c.name),
                    marker: intern(&format!("[{}]", c.name)),
                    regex,
                    prefilter,
                })
            })
            .collect()
    }

    /// Appends the non-empty matches in `s`.
    pub(crate) fn find(&self, index: usize, s: &str, out: &mut Vec<CustomSpan>) {
        if let Some(f) = &self.prefilter {
            if f.find(s.as_bytes()).is_none() {
                return;
            }
        }
        for m in self.regex.find_iter(s) {
            if m.start() < m.end() {
                out.push(CustomSpan {
                    start: m.start(),
                    end: m.end(),
                    index,
                });
            }
        }
    }
}

impl Scrubber {
    /// Runs the custom detectors over `s`.
    pub(super) fn find_custom(&self, s: &str, out: &mut Vec<CustomSpan>) {
        for (i, c) in self.custom.iter().enumerate() {
            c.find(i, s, out);
        }
    }

    /// Folds custom matches into the built-in ones: a custom match that
    /// overlaps a built-in one widens it (the built-in name wins); the rest
    /// are merged among themselves and become edits of their own.
    pub(super) fn merge_custom(
        &self,
        spans: &mut Vec<Span>,
        custom: &mut Vec<CustomSpan>,
        base: usize,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        loop {
            let mut widened = false;
            custom.retain(|c| {
                match spans
                    .iter_mut()
                    .find(|b| b.start < c.end && c.start < b.end)
                {
                    Some(b) => {
                        b.start = b.start.min(c.start);
                        b.end = b.end.max(c.end);
                        widened = true;
                        false
                    }
                    None => true,
                }
            });
            if !widened {
                break;
            }
            text::merge(spans);
        }
        custom.sort_unstable_by_key(|c| (c.start, c.end));
        let mut w = 0;
        for r in 0..custom.len() {
            let cur = custom[r];
            if w > 0 && cur.start < custom[w - 1].end {
                custom[w - 1].end = custom[w - 1].end.max(cur.end);
            } else {
                custom[w] = cur;
                w += 1;
            }
        }
        custom.truncate(w);
        for c in custom.iter() {
            let d = &self.custom[c.index];
            edits.push(Edit {
                start: base + c.start,
                end: base + c.end,
                repl: d.marker,
            });
            kinds.push(RedactionKind::Custom(d.label));
        }
    }
}

/// The one `'static` copy of a label or marker: names are configured once
/// per source, and metric labels must be `'static`, so each distinct name
/// is kept for the life of the process (bounded by the configuration).
fn intern(s: &str) -> &'static str {
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut set = SET
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(&x) = set.get(s) {
        return x;
    }
    let leaked: &'static str = Box::leak(s.to_string().into_boxed_str());
    set.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(name: &str, regex: &str, prefilter: Option<&str>) -> CustomDetectorConfig {
        CustomDetectorConfig {
            name: name.into(),
            regex: regex.into(),
            prefilter: prefilter.map(Into::into),
        }
    }

    #[test]
    fn finds_matches_behind_the_prefilter() {
        let d = Custom::build(&[cfg("employee_id", r"EMP-\d{6}", Some("EMP-"))]).expect("builds");
        let mut out = Vec::new();
        d[0].find(0, "by EMP-123456 and EMP-654321", &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].start, out[0].end), (3, 13));
        assert_eq!(d[0].marker, "[employee_id]");
        assert_eq!(d[0].label, "employee_id");
        out.clear();
        d[0].find(0, "emp-123456", &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn bad_detectors_are_refused() {
        assert!(Custom::build(&[cfg("Email", "x", None)]).is_err());
        assert!(Custom::build(&[cfg("email", "x", None)]).is_err());
        assert!(Custom::build(&[cfg("", "x", None)]).is_err());
        assert!(Custom::build(&[cfg("a", "(", None)]).is_err());
        assert!(Custom::build(&[cfg("a", "x", Some(""))]).is_err());
        assert!(Custom::build(&[cfg("a", "x", None), cfg("a", "y", None)]).is_err());
    }

    #[test]
    fn labels_are_interned_once() {
        assert!(std::ptr::eq(intern("same_name"), intern("same_name")));
    }
}
