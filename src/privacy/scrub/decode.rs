//! Decoded forms of plain text: a string that carries percent-escapes
//! (`ada%40example.com`) or uses `+` for spaces (`call+020+7946+0958`) is
//! scanned a second time in its decoded form, and every match found there
//! is mapped back onto the original bytes it came from, so the match is
//! replaced in the text as sent and the rest stays byte for byte.
//!
//! URLs are not handled here: their components are decoded by the URL rules
//! (see `url`), which know where a query value starts and ends. JSON held
//! inside a string is parsed and walked as part of the event (see
//! `Scrubber::walk_value`).

use super::text::{Features, Span};

/// Texts up to this many bytes are decoded on the stack (no allocation).
const STACK_BYTES: usize = super::text::DECODE_BUF;

/// Where a decoded form lives: on the stack for short texts.
// The large variant is the point: short texts decode without allocating.
#[allow(clippy::large_enum_variant)]
enum Store {
    Stack {
        buf: [u8; STACK_BYTES],
        starts: [u16; STACK_BYTES + 1],
        len: usize,
    },
    Heap {
        text: String,
        starts: Vec<usize>,
    },
}

/// A decoded form of a string and, for each decoded byte, where its source
/// starts in the original (one more entry: the original's length).
pub(crate) struct Decoded {
    store: Store,
}

#[inline]
fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The byte a percent escape `%XX` starting at `b[i]` stands for, if one
/// does.
#[inline]
pub(super) fn escape_at(b: &[u8], i: usize) -> Option<u8> {
    if b.get(i) != Some(&b'%') {
        return None;
    }
    let h = b.get(i + 1).copied().and_then(hex)?;
    let l = b.get(i + 2).copied().and_then(hex)?;
    Some(h << 4 | l)
}

/// Whether plain text with these features may decode to something else:
/// a `%` (checked for an escape when decoding), or `+` (a form-encoded
/// space).
#[inline]
pub(crate) fn may_decode(f: &Features) -> bool {
    f.pct || f.plus
}

/// Whether `s` holds a percent-escape (`%` and two hex digits).
pub(crate) fn has_escape(s: &[u8]) -> bool {
    let mut from = 0;
    while let Some(k) = super::text::find_any(b"%", &s[from..]) {
        let i = from + k;
        if s.get(i + 1).copied().and_then(hex).is_some()
            && s.get(i + 2).copied().and_then(hex).is_some()
        {
            return true;
        }
        from = i + 1;
    }
    false
}

impl Decoded {
    /// The decoded form of `s`, or `None` when it decodes to itself or to
    /// something that is not UTF-8.
    pub(crate) fn of(s: &str, f: &Features) -> Option<Decoded> {
        let b = s.as_bytes();
        if b.len() <= STACK_BYTES {
            let mut buf = [0u8; STACK_BYTES];
            let mut starts = [0u16; STACK_BYTES + 1];
            let mut len = 0;
            let changed = decode(b, f.plus, |i, c| {
                buf[len] = c;
                // `i` < STACK_BYTES <= u16::MAX.
                starts[len] = i as u16;
                len += 1;
            });
            starts[len] = b.len() as u16;
            std::str::from_utf8(&buf[..len]).ok()?;
            return changed.then_some(Decoded {
                store: Store::Stack { buf, starts, len },
            });
        }
        let mut out = Vec::with_capacity(b.len());
        let mut starts = Vec::with_capacity(b.len() + 1);
        let changed = decode(b, f.plus, |i, c| {
            out.push(c);
            starts.push(i);
        });
        starts.push(b.len());
        if !changed {
            return None;
        }
        let text = String::from_utf8(out).ok()?;
        Some(Decoded {
            store: Store::Heap { text, starts },
        })
    }

    /// The decoded text.
    pub(crate) fn text(&self) -> &str {
        match &self.store {
            // Checked to be UTF-8 when built.
            Store::Stack { buf, len, .. } => std::str::from_utf8(&buf[..*len]).unwrap_or(""),
            Store::Heap { text, .. } => text,
        }
    }

    /// A span of the decoded text as a span of the original.
    pub(crate) fn original(&self, start: usize, end: usize) -> (usize, usize) {
        match &self.store {
            Store::Stack { starts, .. } => (usize::from(starts[start]), usize::from(starts[end])),
            Store::Heap { starts, .. } => (starts[start], starts[end]),
        }
    }

    /// Maps spans found in the decoded text onto the original.
    pub(crate) fn map_spans(&self, spans: &mut [Span]) {
        for sp in spans {
            let (s, e) = self.original(sp.start, sp.end);
            sp.start = s;
            sp.end = e;
        }
    }
}

/// Percent-decodes `b` (and `+` after a non-space to a space when `plus`), handing each
/// decoded byte with the offset of its source to `emit`; whether anything
/// was decoded.
fn decode(b: &[u8], plus: bool, mut emit: impl FnMut(usize, u8)) -> bool {
    let mut changed = false;
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        match escape_at(b, i) {
            Some(decoded) => {
                emit(i, decoded);
                i += 3;
                changed = true;
            }
            // A `+` that starts the text or a word is the `+` of a phone
            // number, not a space.
            None if plus && c == b'+' && i > 0 && !b[i - 1].is_ascii_whitespace() => {
                emit(i, b' ');
                i += 1;
                changed = true;
            }
            None => {
                emit(i, c);
                i += 1;
            }
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(s: &str) -> Option<(String, Decoded)> {
        let f = Features::of(s.as_bytes());
        Decoded::of(s, &f).map(|d| (d.text().to_string(), d))
    }

    #[test]
    fn decodes_escapes_and_form_spaces_and_maps_back() {
        let s = "mail ada%40example.com";
        let (t, d) = decode(s).expect("decodes");
        assert_eq!(t, "mail ada@example.com");
        let at = t.find("ada").expect("found");
        let (a, b) = d.original(at, t.len());
        assert_eq!(&s[a..b], "ada%40example.com");

        let s = "call+020+7946+0958";
        let (t, d) = decode(s).expect("decodes");
        assert_eq!(t, "call 020 7946 0958");
        let (a, b) = d.original(5, t.len());
        assert_eq!(&s[a..b], "020+7946+0958");

        let s = "caf%C3%A9";
        assert_eq!(decode(s).expect("decodes").0, "café");
        // Long texts are decoded on the heap, the same way.
        let s = format!("{} ada%40example.com", "x".repeat(STACK_BYTES));
        let (t, d) = decode(&s).expect("decodes");
        let at = t.find("ada").expect("found");
        let (a, b) = d.original(at, t.len());
        assert_eq!(&s[a..b], "ada%40example.com");
    }

    #[test]
    fn text_that_decodes_to_itself_or_not_to_utf8_is_left() {
        assert!(decode("100% sure").is_none());
        assert!(decode("a + b").is_none());
        assert_eq!(
            decode("note 4000+0000+0000+0002").expect("decodes").0,
            "note 4000 0000 0000 0002"
        );
        assert!(decode("bad%FF").is_none());
        assert!(decode("plain").is_none());
        assert!(decode("+4312061854183").is_none());
        assert!(decode("call +44 20").is_none());
    }
}
