//! URLs inside strings: absolute URLs (`scheme://…`, and protocol-relative
//! `//host/…`), relative URLs with a query or fragment (`/path?…`), query
//! strings (`?a=b`, or `a=b&c=d` under a `search` key), whether they are the
//! whole string or embedded in text.
//!
//! What happens to a URL:
//! - userinfo (`user:pass@`) is removed (`url_userinfo`);
//! - each query parameter, and each fragment parameter (`#a=b&c=d`, or the
//!   part after `?` in a hash route `#/route?a=b`), is removed whole, with
//!   one adjacent `&`, when its percent-decoded name is on the key denylist
//!   (`url_param`, naming the deny entry, never the value) or when its
//!   decoded `name=value` text trips a detector (recorded under that
//!   detector; a nested URL in a value is scrubbed by the same rules). When
//!   every parameter goes, the `?` (or `#`) goes too;
//! - path segments (and a plain fragment) are scanned by the detectors: a
//!   match is replaced in place, or, when the segment is percent-encoded,
//!   the whole segment is replaced by the marker;
//! - the host and port are never scanned (a server, not a visitor).
//!
//! Everything else is kept byte for byte: the URL is never re-encoded, the
//! edits are spliced into the original text.

use memchr::{memchr, memchr2, memchr3, memchr_iter, memmem, memrchr};

use super::keys::Hint;
use super::text::{self, decode_component, Edit, Features, Span};
use super::{RedactionKind, Scrubber};

/// Longest URL scheme considered.
const MAX_SCHEME: usize = 32;
/// Characters that end a URL embedded in text.
const URL_END: &[u8] = b"\"'<>`";
/// Characters dropped from the end of a URL embedded in text.
const URL_TRAILING: &[u8] = b".,;:!?)]}";

/// How a string (or part of one) is a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `scheme://authority…`; `auth` is where the authority starts.
    Absolute { auth: usize },
    /// `/path?query#fragment`.
    Relative,
    /// A query string from `start`; `mark` is the `?` that goes with it.
    Query { start: usize, mark: usize },
}

/// Length of `scheme://` at the start of `s`.
fn scheme_prefix(s: &[u8]) -> Option<usize> {
    if !s.first()?.is_ascii_alphabetic() {
        return None;
    }
    let mut i = 1;
    while i < s.len() && i <= MAX_SCHEME {
        match s[i] {
            b if b.is_ascii_alphanumeric() || matches!(b, b'+' | b'.' | b'-') => i += 1,
            b':' => return s[i..].starts_with(b"://").then_some(i + 3),
            _ => return None,
        }
    }
    None
}

/// The URL shape of a whole string without whitespace, if any.
pub(crate) fn whole_shape(s: &str, hint: Hint) -> Option<Shape> {
    let b = s.as_bytes();
    if let Some(auth) = scheme_prefix(b) {
        return Some(Shape::Absolute { auth });
    }
    if b.starts_with(b"//") {
        return Some(Shape::Absolute { auth: 2 });
    }
    match b.first() {
        Some(b'?') => Some(Shape::Query { start: 1, mark: 0 }),
        Some(b'/') if memchr2(b'?', b'#', b).is_some() => Some(Shape::Relative),
        Some(_) if hint.query && memchr(b'=', b).is_some() => {
            Some(Shape::Query { start: 0, mark: 0 })
        }
        _ => None,
    }
}

/// The next absolute URL embedded in text at or after `from`:
/// `(start, end, authority start)`.
pub(crate) fn next_embedded(s: &str, from: usize) -> Option<(usize, usize, usize)> {
    let b = s.as_bytes();
    let mut search = from;
    while let Some(k) = memmem::find(&b[search..], b"://") {
        let sep = search + k;
        search = sep + 3;
        let mut start = sep;
        while start > from
            && (b[start - 1].is_ascii_alphanumeric() || matches!(b[start - 1], b'+' | b'.' | b'-'))
        {
            start -= 1;
        }
        while start < sep && !b[start].is_ascii_alphabetic() {
            start += 1;
        }
        if start == sep || sep - start > MAX_SCHEME {
            continue;
        }
        let mut end = search;
        while end < b.len() && !b[end].is_ascii_whitespace() && !URL_END.contains(&b[end]) {
            end += 1;
        }
        while end > search && URL_TRAILING.contains(&b[end - 1]) {
            end -= 1;
        }
        return Some((start, end, search));
    }
    None
}

impl Scrubber {
    /// Collects the edits for the URL `s`, which sits at `base` in the
    /// string being scrubbed.
    pub(crate) fn url(
        &self,
        s: &str,
        base: usize,
        shape: Shape,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        match shape {
            Shape::Absolute { auth } => {
                let auth_end = memchr3(b'/', b'?', b'#', &b[auth..]).map_or(b.len(), |k| auth + k);
                if let Some(at) = memrchr(b'@', &b[auth..auth_end]) {
                    edits.push(Edit {
                        start: base + auth,
                        end: base + auth + at + 1,
                        repl: "",
                    });
                    kinds.push(RedactionKind::UrlUserinfo);
                }
                self.url_rest(s, auth_end, base, nest, edits, kinds);
            }
            Shape::Relative => self.url_rest(s, 0, base, nest, edits, kinds),
            Shape::Query { start, mark } => {
                let q_end = memchr(b'#', &b[start..]).map_or(b.len(), |k| start + k);
                self.params(s, start, q_end, mark, base, nest, edits, kinds);
                if q_end < b.len() {
                    self.fragment(s, q_end, base, nest, edits, kinds);
                }
            }
        }
    }

    /// Path, query and fragment from `from`.
    fn url_rest(
        &self,
        s: &str,
        from: usize,
        base: usize,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        let path_end = memchr2(b'?', b'#', &b[from..]).map_or(b.len(), |k| from + k);
        self.path_like(s, from, path_end, base, edits, kinds);
        let mut pos = path_end;
        if b.get(pos) == Some(&b'?') {
            let q_end = memchr(b'#', &b[pos + 1..]).map_or(b.len(), |k| pos + 1 + k);
            self.params(s, pos + 1, q_end, pos, base, nest, edits, kinds);
            pos = q_end;
        }
        if b.get(pos) == Some(&b'#') {
            self.fragment(s, pos, base, nest, edits, kinds);
        }
    }

    /// The fragment after the `#` at `hash`.
    fn fragment(
        &self,
        s: &str,
        hash: usize,
        base: usize,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        let f0 = hash + 1;
        if let Some(q) = memchr(b'?', &b[f0..]) {
            self.path_like(s, f0, f0 + q, base, edits, kinds);
            self.params(s, f0 + q + 1, b.len(), f0 + q, base, nest, edits, kinds);
        } else if memchr(b'=', &b[f0..]).is_some() {
            self.params(s, f0, b.len(), hash, base, nest, edits, kinds);
        } else {
            self.path_like(s, f0, b.len(), base, edits, kinds);
        }
    }

    /// Scans the `/`-separated segments of `s[from..to]`.
    fn path_like(
        &self,
        s: &str,
        from: usize,
        to: usize,
        base: usize,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = &s.as_bytes()[from..to];
        let mut seg = 0;
        for k in memchr_iter(b'/', b).chain(std::iter::once(b.len())) {
            if k > seg {
                self.segment(s, from + seg, from + k, base, edits, kinds);
            }
            seg = k + 1;
        }
    }

    fn segment(
        &self,
        s: &str,
        a: usize,
        z: usize,
        base: usize,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let seg = &s[a..z];
        if memchr(b'%', seg.as_bytes()).is_none() {
            self.detect(seg, base + a, Hint::default(), edits, kinds);
            return;
        }
        let decoded = decode_component(seg, false);
        let f = Features::of(decoded.as_bytes());
        if !self.wants(&f, Hint::default()) {
            return;
        }
        let mut spans: Vec<Span> = Vec::new();
        self.find_spans(decoded.as_bytes(), &f, Hint::default(), &mut spans);
        let Some(top) = spans.iter().map(|m| m.kind).max_by_key(|k| k.precedence()) else {
            return;
        };
        text::merge(&mut spans);
        edits.push(Edit {
            start: base + a,
            end: base + z,
            repl: top.marker(),
        });
        kinds.extend(spans.iter().map(|m| RedactionKind::Detector(m.kind)));
    }

    /// The `&`-separated parameters of `s[from..to]`; `mark` is the `?` or
    /// `#` removed with them when all of them go.
    #[allow(clippy::too_many_arguments)]
    fn params(
        &self,
        s: &str,
        from: usize,
        to: usize,
        mark: usize,
        base: usize,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        // (start, end, a kept parameter comes before it)
        let mut removed: Vec<(usize, usize, bool)> = Vec::new();
        let mut any_kept = false;
        let mut ps = from;
        loop {
            let pe = memchr(b'&', &b[ps..to]).map_or(to, |k| ps + k);
            if pe > ps {
                if self.param_trips(&s[ps..pe], nest, kinds) {
                    removed.push((ps, pe, any_kept));
                } else {
                    any_kept = true;
                }
            }
            if pe >= to {
                break;
            }
            ps = pe + 1;
        }
        if removed.is_empty() {
            return;
        }
        if !any_kept {
            edits.push(Edit {
                start: base + mark,
                end: base + to,
                repl: "",
            });
            return;
        }
        for (ps, pe, kept_before) in removed {
            let (start, end) = if kept_before {
                (ps - 1, pe)
            } else {
                (ps, pe + 1)
            };
            edits.push(Edit {
                start: base + start,
                end: base + end,
                repl: "",
            });
        }
    }

    /// Whether the parameter `name=value` must go; records why.
    fn param_trips(&self, param: &str, nest: u8, kinds: &mut Vec<RedactionKind>) -> bool {
        let name = param.split_once('=').map_or(param, |(n, _)| n);
        if let Some(i) = self.deny.param(&decode_component(name, true)) {
            kinds.push(RedactionKind::UrlParam(self.deny.name(i).to_string()));
            return true;
        }
        let mut sub_edits = Vec::new();
        let mut sub_kinds = Vec::new();
        let decoded = decode_component(param, true);
        self.text(
            &decoded,
            0,
            Hint::default(),
            nest + 1,
            &mut sub_edits,
            &mut sub_kinds,
        );
        if sub_edits.is_empty() && memchr(b'+', param.as_bytes()).is_some() {
            // A literal `+` may be the `+` of a phone number.
            let decoded = decode_component(param, false);
            self.text(
                &decoded,
                0,
                Hint::default(),
                nest + 1,
                &mut sub_edits,
                &mut sub_kinds,
            );
        }
        if sub_edits.is_empty() {
            return false;
        }
        kinds.append(&mut sub_kinds);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes() {
        let h = Hint::default();
        assert_eq!(
            whole_shape("https://x.io/a", h),
            Some(Shape::Absolute { auth: 8 })
        );
        assert_eq!(
            whole_shape("HTTP://x.io", h),
            Some(Shape::Absolute { auth: 7 })
        );
        assert_eq!(
            whole_shape("//cdn.x.io/a?b", h),
            Some(Shape::Absolute { auth: 2 })
        );
        assert_eq!(
            whole_shape("?a=1", h),
            Some(Shape::Query { start: 1, mark: 0 })
        );
        assert_eq!(whole_shape("/p?a=1", h), Some(Shape::Relative));
        assert_eq!(whole_shape("/products/12345", h), None);
        assert_eq!(whole_shape("a=1&b=2", h), None);
        let q = Hint {
            query: true,
            ..Hint::default()
        };
        assert_eq!(
            whole_shape("a=1&b=2", q),
            Some(Shape::Query { start: 0, mark: 0 })
        );
        assert_eq!(whole_shape("key=value:x", h), None);
        assert_eq!(whole_shape("1http://x", h), None);
    }

    #[test]
    fn embedded_urls() {
        let s = "see https://a.io/x?y=1, or (ftp://b.io/f). Not: ://nothing";
        let (a, e, auth) = next_embedded(s, 0).expect("first");
        assert_eq!(&s[a..e], "https://a.io/x?y=1");
        assert_eq!(&s[auth..e], "a.io/x?y=1");
        let (a2, e2, _) = next_embedded(s, e).expect("second");
        assert_eq!(&s[a2..e2], "ftp://b.io/f");
        assert_eq!(next_embedded(s, e2), None);
    }
}
