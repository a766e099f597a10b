//! Finding where a JSON value ends in raw bytes, without decoding it: how
//! a batch is split into its events.
//!
//! The structure (brackets, commas, colons, literals, numbers) is checked
//! in full, so a value's end is found exactly; a string's content is not
//! looked at beyond its escapes, so invalid UTF-8, a raw control character
//! or a bad escape inside one event's string stays that event's problem
//! (its own parse finds it) instead of failing the whole batch. Iterative:
//! nesting depth costs a byte of stack each, not a call frame.

use super::parse::{literal_end, number_end, skip_ws, ErrorKind, ParseError};

/// Where the JSON value starting at `start` (after any whitespace) ends.
pub fn skip_value(b: &[u8], start: usize) -> Result<usize, ParseError> {
    let err = |kind, at| ParseError { kind, at };
    let expected = |what, at: usize| {
        if at >= b.len() {
            err(ErrorKind::Eof, at)
        } else {
            err(ErrorKind::Expected(what), at)
        }
    };
    // Open containers, innermost last: `true` for an object.
    let mut open: Vec<bool> = Vec::new();
    let mut i = start;
    'value: loop {
        i = skip_ws(b, i);
        match b.get(i) {
            Some(b'{') => {
                i = skip_ws(b, i + 1);
                if b.get(i) == Some(&b'}') {
                    i += 1;
                } else {
                    open.push(true);
                    i = skip_key(b, i)?;
                    continue 'value;
                }
            }
            Some(b'[') => {
                i = skip_ws(b, i + 1);
                if b.get(i) == Some(&b']') {
                    i += 1;
                } else {
                    open.push(false);
                    continue 'value;
                }
            }
            Some(b'"') => i = skip_string(b, i)?,
            Some(b't') => i = literal_end(b, i, b"true")?,
            Some(b'f') => i = literal_end(b, i, b"false")?,
            Some(b'n') => i = literal_end(b, i, b"null")?,
            Some(b'-' | b'0'..=b'9') => i = number_end(b, i)?.0,
            _ => return Err(expected("a JSON value", i)),
        }
        // After a value: close containers until one goes on with a comma.
        while let Some(&object) = open.last() {
            i = skip_ws(b, i);
            match (b.get(i), object) {
                (Some(b','), true) => {
                    i = skip_key(b, i + 1)?;
                    continue 'value;
                }
                (Some(b','), false) => {
                    i += 1;
                    continue 'value;
                }
                (Some(b'}'), true) | (Some(b']'), false) => {
                    i += 1;
                    open.pop();
                }
                (_, true) => return Err(expected("',' or '}'", i)),
                (_, false) => return Err(expected("',' or ']'", i)),
            }
        }
        return Ok(i);
    }
}

/// Skips `"key":` (with whitespace) starting at `i`; returns where the
/// value begins.
fn skip_key(b: &[u8], i: usize) -> Result<usize, ParseError> {
    let i = skip_ws(b, i);
    if b.get(i) != Some(&b'"') {
        return Err(ParseError {
            kind: if i >= b.len() {
                ErrorKind::Eof
            } else {
                ErrorKind::Expected("an object key")
            },
            at: i,
        });
    }
    let i = skip_ws(b, skip_string(b, i)?);
    match b.get(i) {
        Some(b':') => Ok(i + 1),
        None => Err(ParseError {
            kind: ErrorKind::Eof,
            at: i,
        }),
        Some(_) => Err(ParseError {
            kind: ErrorKind::Expected("':'"),
            at: i,
        }),
    }
}

/// Where the string whose opening quote is at `i` ends (after its closing
/// quote). A backslash always takes the byte after it along.
pub fn skip_string(b: &[u8], i: usize) -> Result<usize, ParseError> {
    let mut j = i + 1;
    loop {
        match memchr::memchr2(b'"', b'\\', b.get(j..).unwrap_or_default()) {
            Some(k) if b[j + k] == b'"' => return Ok(j + k + 1),
            Some(k) => j += k + 2,
            None => {
                return Err(ParseError {
                    kind: ErrorKind::Eof,
                    at: b.len(),
                })
            }
        }
    }
}
