//! Parsing into the borrowed tree: strings and keys without escapes, and
//! every number, are slices of the input; a string with escapes is decoded
//! into an owned one.
//!
//! The grammar is RFC 8259's, checked byte by byte, with three decisions:
//! - a lone UTF-16 surrogate escape (`"\ud83d"` without its pair, as
//!   JavaScript strings cut in half produce) becomes U+FFFD in that string
//!   and the event goes on (counted in
//!   `trackgate_json_repairs_total{kind="lone_surrogate"}`), where refusing
//!   would lose the whole event for one character;
//! - a number whose value is beyond `f64`'s range is refused (consumers
//!   read numbers as doubles), as `serde_json` refuses it;
//! - nesting is bounded by [`MAX_DEPTH`], so hostile text cannot exhaust
//!   the stack (the configured, lower limit is checked by `limits`).
//!
//! Errors carry the byte offset where the text went wrong.

use std::borrow::Cow;
use std::collections::HashSet;

use super::number::Number;
use super::{Map, Value, PAIRWISE_MAX};

/// Deepest nesting of objects and arrays the parser follows (as
/// `serde_json`'s recursion limit).
pub const MAX_DEPTH: usize = 128;

/// Integer digits up to which a number without an exponent is surely
/// within `f64`'s range (its largest finite value has 309 digits).
const DIGITS_SURELY_FINITE: usize = 300;

/// Why a text is not JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ErrorKind {
    #[error("unexpected end of input")]
    Eof,
    #[error("expected {0}")]
    Expected(&'static str),
    #[error("raw control character in a string")]
    ControlCharacter,
    #[error("invalid escape in a string")]
    InvalidEscape,
    #[error("invalid number")]
    InvalidNumber,
    #[error("number out of range")]
    NumberOutOfRange,
    #[error("trailing characters after the value")]
    TrailingCharacters,
    #[error("nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    #[error("invalid UTF-8")]
    InvalidUtf8,
}

/// A parse error and the byte offset (into the parsed text) where it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{kind} at byte {at}")]
pub struct ParseError {
    pub kind: ErrorKind,
    pub at: usize,
}

impl ParseError {
    /// The same error, at an offset into a larger text `base` bytes on.
    pub fn shifted(self, base: usize) -> ParseError {
        ParseError {
            at: self.at + base,
            ..self
        }
    }
}

/// Parses one JSON text; strings and keys without escapes, and numbers,
/// borrow from it. Repairs are counted in the metric.
pub fn from_str(text: &str) -> Result<Value<'_>, ParseError> {
    parse(text, true)
}

/// [`from_str`] for a text parsed before (a rejected event's, read again
/// for the invalid topic): its repairs were counted the first time.
pub fn reparse(text: &str) -> Result<Value<'_>, ParseError> {
    parse(text, false)
}

fn parse(text: &str, count: bool) -> Result<Value<'_>, ParseError> {
    let mut p = Parser {
        text,
        b: text.as_bytes(),
        pos: 0,
        depth: 0,
        repairs: 0,
    };
    let value = p.value();
    if count && p.repairs > 0 {
        crate::metrics::json_repairs(crate::metrics::REPAIR_LONE_SURROGATE, p.repairs);
    }
    let value = value?;
    p.pos = skip_ws(p.b, p.pos);
    if p.pos < p.b.len() {
        return Err(p.err(ErrorKind::TrailingCharacters));
    }
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

struct Parser<'a> {
    text: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
    /// Lone surrogates replaced by U+FFFD.
    repairs: u64,
}

/// The offset of the first byte at or after `i` that is not JSON whitespace.
pub fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\n' | b'\r' | b'\t') = b.get(i) {
        i += 1;
    }
    i
}

/// The first byte at or after `i` that ends a string's plain run: a quote,
/// a backslash or a control character; `b.len()` when none. Eight bytes at
/// a time (each test below marks the lowest matching byte exactly).
pub(super) fn plain_run_end(b: &[u8], mut i: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    while let Some(chunk) = b.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_le_bytes(word);
        let quote = x ^ (ONES * u64::from(b'"'));
        let backslash = x ^ (ONES * u64::from(b'\\'));
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (x.wrapping_sub(ONES * 0x20) & !x);
        let hits = hits & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&c) = b.get(i) {
        if c == b'"' || c == b'\\' || c < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

/// Where the number starting at `start` ends, and whether its value must
/// be checked against `f64`'s range (it has an exponent or many digits).
pub(super) fn number_end(b: &[u8], start: usize) -> Result<(usize, bool), ParseError> {
    let digits = |mut i: usize| {
        while let Some(b'0'..=b'9') = b.get(i) {
            i += 1;
        }
        i
    };
    let invalid = |at| ParseError {
        kind: ErrorKind::InvalidNumber,
        at,
    };
    let mut i = start;
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let int_start = i;
    match b.get(i) {
        Some(b'0') => i += 1,
        Some(b'1'..=b'9') => i = digits(i + 1),
        _ => return Err(invalid(i)),
    }
    let mut check = i - int_start > DIGITS_SURELY_FINITE;
    if b.get(i) == Some(&b'.') {
        let frac = digits(i + 1);
        if frac == i + 1 {
            return Err(invalid(frac));
        }
        i = frac;
    }
    if let Some(b'e' | b'E') = b.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = b.get(i) {
            i += 1;
        }
        let exp = digits(i);
        if exp == i {
            return Err(invalid(exp));
        }
        i = exp;
        check = true;
    }
    Ok((i, check))
}

/// Where the literal `word` ends when it starts at `i`.
pub(super) fn literal_end(b: &[u8], i: usize, word: &'static [u8]) -> Result<usize, ParseError> {
    match b.get(i..i + word.len()) {
        Some(w) if w == word => Ok(i + word.len()),
        _ => Err(ParseError {
            kind: ErrorKind::Expected("a JSON value"),
            at: i,
        }),
    }
}

impl<'a> Parser<'a> {
    fn err(&self, kind: ErrorKind) -> ParseError {
        ParseError { kind, at: self.pos }
    }

    fn err_at(&self, kind: ErrorKind, at: usize) -> ParseError {
        ParseError { kind, at }
    }

    /// `text[from..to]`; both ends sit next to ASCII bytes the parser
    /// found, so they are character boundaries.
    fn slice(&self, from: usize, to: usize) -> Result<&'a str, ParseError> {
        self.text
            .get(from..to)
            .ok_or(self.err_at(ErrorKind::InvalidUtf8, from))
    }

    fn value(&mut self) -> Result<Value<'a>, ParseError> {
        self.pos = skip_ws(self.b, self.pos);
        match self.b.get(self.pos) {
            None => Err(self.err(ErrorKind::Eof)),
            Some(b'{') => self.object(),
            Some(b'[') => self.array(),
            Some(b'"') => self.string().map(Value::String),
            Some(b't') => {
                self.pos = literal_end(self.b, self.pos, b"true")?;
                Ok(Value::Bool(true))
            }
            Some(b'f') => {
                self.pos = literal_end(self.b, self.pos, b"false")?;
                Ok(Value::Bool(false))
            }
            Some(b'n') => {
                self.pos = literal_end(self.b, self.pos, b"null")?;
                Ok(Value::Null)
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err(self.err(ErrorKind::Expected("a JSON value"))),
        }
    }

    fn number(&mut self) -> Result<Value<'a>, ParseError> {
        let start = self.pos;
        let (end, check) = number_end(self.b, start)?;
        let text = self.slice(start, end)?;
        if check && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(self.err_at(ErrorKind::NumberOutOfRange, start));
        }
        self.pos = end;
        Ok(Value::Number(Number::from_checked_text(text)))
    }

    fn enter(&mut self) -> Result<(), ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(ErrorKind::TooDeep));
        }
        self.pos += 1;
        Ok(())
    }

    fn object(&mut self) -> Result<Value<'a>, ParseError> {
        self.enter()?;
        let mut entries = Vec::with_capacity(8);
        self.pos = skip_ws(self.b, self.pos);
        if self.b.get(self.pos) == Some(&b'}') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Object(Map::from_entries(entries)));
        }
        loop {
            self.pos = skip_ws(self.b, self.pos);
            if self.b.get(self.pos) != Some(&b'"') {
                return Err(self.expected("an object key"));
            }
            let key = self.string()?;
            self.pos = skip_ws(self.b, self.pos);
            if self.b.get(self.pos) != Some(&b':') {
                return Err(self.expected("':'"));
            }
            self.pos += 1;
            let value = self.value()?;
            entries.push((key, value));
            self.pos = skip_ws(self.b, self.pos);
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b'}') => break,
                _ => return Err(self.expected("',' or '}'")),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Object(Map::from_entries(entries)))
    }

    fn array(&mut self) -> Result<Value<'a>, ParseError> {
        self.enter()?;
        let mut items = Vec::new();
        self.pos = skip_ws(self.b, self.pos);
        if self.b.get(self.pos) == Some(&b']') {
            self.pos += 1;
            self.depth -= 1;
            return Ok(Value::Array(items));
        }
        loop {
            items.push(self.value()?);
            self.pos = skip_ws(self.b, self.pos);
            match self.b.get(self.pos) {
                Some(b',') => self.pos += 1,
                Some(b']') => break,
                _ => return Err(self.expected("',' or ']'")),
            }
        }
        self.pos += 1;
        self.depth -= 1;
        Ok(Value::Array(items))
    }

    fn expected(&self, what: &'static str) -> ParseError {
        if self.pos >= self.b.len() {
            self.err(ErrorKind::Eof)
        } else {
            self.err(ErrorKind::Expected(what))
        }
    }

    /// The string whose opening quote is at `pos`: a slice of the input
    /// when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let start = self.pos + 1;
        let end = plain_run_end(self.b, start);
        match self.b.get(end) {
            Some(b'"') => {
                self.pos = end + 1;
                Ok(Cow::Borrowed(self.slice(start, end)?))
            }
            Some(b'\\') => self.escaped_string(start, end).map(Cow::Owned),
            Some(_) => Err(self.err_at(ErrorKind::ControlCharacter, end)),
            None => Err(self.err_at(ErrorKind::Eof, end)),
        }
    }

    /// The rest of a string from its first escape at `escape`, decoded.
    fn escaped_string(&mut self, start: usize, mut escape: usize) -> Result<String, ParseError> {
        let mut out = String::with_capacity(escape - start + 16);
        out.push_str(self.slice(start, escape)?);
        loop {
            let after = self.unescape(escape, &mut out)?;
            let end = plain_run_end(self.b, after);
            out.push_str(self.slice(after, end)?);
            match self.b.get(end) {
                Some(b'"') => {
                    self.pos = end + 1;
                    return Ok(out);
                }
                Some(b'\\') => escape = end,
                Some(_) => return Err(self.err_at(ErrorKind::ControlCharacter, end)),
                None => return Err(self.err_at(ErrorKind::Eof, end)),
            }
        }
    }

    /// Decodes the escape at `i` (a backslash) into `out`; returns where
    /// the text goes on.
    fn unescape(&mut self, i: usize, out: &mut String) -> Result<usize, ParseError> {
        let simple = match self.b.get(i + 1) {
            Some(b'"') => '"',
            Some(b'\\') => '\\',
            Some(b'/') => '/',
            Some(b'b') => '\u{8}',
            Some(b'f') => '\u{c}',
            Some(b'n') => '\n',
            Some(b'r') => '\r',
            Some(b't') => '\t',
            Some(b'u') => return self.unicode_escape(i, out),
            None => return Err(self.err_at(ErrorKind::Eof, i + 1)),
            Some(_) => return Err(self.err_at(ErrorKind::InvalidEscape, i)),
        };
        out.push(simple);
        Ok(i + 2)
    }

    /// `\uXXXX` at `i`, with its low surrogate when it is a high one; a
    /// surrogate without its pair becomes U+FFFD.
    fn unicode_escape(&mut self, i: usize, out: &mut String) -> Result<usize, ParseError> {
        let unit = self.hex4(i + 2)?;
        let mut next = i + 6;
        let c = match unit {
            0xD800..=0xDBFF => {
                let low = match self.b.get(next..next + 2) {
                    Some(b"\\u") => Some(self.hex4(next + 2)?),
                    _ => None,
                };
                match low {
                    Some(low @ 0xDC00..=0xDFFF) => {
                        next += 6;
                        let cp = 0x10000
                            + ((u32::from(unit) - 0xD800) << 10)
                            + (u32::from(low) - 0xDC00);
                        char::from_u32(cp)
                    }
                    // The escape after it is decoded on its own.
                    _ => None,
                }
            }
            0xDC00..=0xDFFF => None,
            _ => char::from_u32(u32::from(unit)),
        };
        match c {
            Some(c) => out.push(c),
            None => {
                self.repairs += 1;
                out.push(char::REPLACEMENT_CHARACTER);
            }
        }
        Ok(next)
    }

    fn hex4(&self, i: usize) -> Result<u16, ParseError> {
        let digits = self
            .b
            .get(i..i + 4)
            .ok_or(self.err_at(ErrorKind::Eof, self.b.len()))?;
        let mut n: u16 = 0;
        for &d in digits {
            let v = match d {
                b'0'..=b'9' => d - b'0',
                b'a'..=b'f' => d - b'a' + 10,
                b'A'..=b'F' => d - b'A' + 10,
                _ => return Err(self.err_at(ErrorKind::InvalidEscape, i - 2)),
            };
            n = (n << 4) | u16::from(v);
        }
        Ok(n)
    }
}

impl<'a> Map<'a> {
    /// Parses `text` as a JSON object.
    pub fn parse(text: &'a str) -> Result<Map<'a>, ParseError> {
        match from_str(text)? {
            Value::Object(m) => Ok(m),
            _ => Err(ParseError {
                kind: ErrorKind::Expected("a JSON object"),
                at: skip_ws(text.as_bytes(), 0),
            }),
        }
    }
}
