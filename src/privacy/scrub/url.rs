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

use memchr::memmem;

use super::keys::Hint;
use super::text::{
    self, decode_component, find_any, rfind_any, DecodeBuf, Edit, Features, Span, DECODE_BUF,
};
use super::{RedactionKind, Scrubber, MAX_URL_NESTING};

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
pub(crate) fn whole_shape(s: &str, f: &Features, hint: Hint) -> Option<Shape> {
    let b = s.as_bytes();
    let shape = match *b.first()? {
        b'/' if b.get(1) == Some(&b'/') => Some(Shape::Absolute { auth: 2 }),
        b'/' if find_any(b"?#", b).is_some() => Some(Shape::Relative),
        b'?' => Some(Shape::Query { start: 1, mark: 0 }),
        // A scheme needs `://`.
        c if c.is_ascii_alphabetic() && f.colons > 0 => {
            scheme_prefix(b).map(|auth| Shape::Absolute { auth })
        }
        _ => None,
    };
    shape.or_else(|| (hint.query && f.eq).then_some(Shape::Query { start: 0, mark: 0 }))
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

/// Whether a parameter value may hold a URL of its own (a second `?`, or a
/// `://` after the scheme): its parameters must then be looked at too.
fn has_nested_url(b: &[u8], shape: Shape, f: &Features) -> bool {
    let own_scheme = usize::from(matches!(shape, Shape::Absolute { auth } if auth > 2));
    let second_q = find_any(b"?", b).is_some_and(|q| find_any(b"?", &b[q + 1..]).is_some());
    let from = match shape {
        Shape::Absolute { auth } => auth,
        _ => 0,
    };
    second_q || (f.colons as usize > own_scheme && memmem::find(&b[from..], b"://").is_some())
}

/// How much of a URL must be looked at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// Nothing in the URL can trip a detector and nothing decodes to more
    /// (no `%`, no `@`): only parameter names are checked.
    NamesOnly,
    /// Everything.
    Full,
}

impl Scrubber {
    /// Collects the edits for the URL `s` (with features `f`), which sits
    /// at `base` in the string being scrubbed.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn url(
        &self,
        s: &str,
        f: &Features,
        base: usize,
        shape: Shape,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        // Detector prefilters are monotone (no part of a string passes one
        // the whole string fails), and `+` only ever becomes a space: a URL
        // whose features pass no detector, with nothing to percent-decode
        // and no `@`, can only lose parameters by name.
        let as_decoded = Features {
            space: f.space || f.plus,
            ..*f
        };
        let b = s.as_bytes();
        let depth = if f.at
            || f.pct
            || self.wants(&as_decoded, Hint::default())
            || has_nested_url(b, shape, f)
        {
            Depth::Full
        } else {
            Depth::NamesOnly
        };
        match shape {
            Shape::Absolute { auth } => {
                let auth_end = find_any(b"/?#", &b[auth..]).map_or(b.len(), |k| auth + k);
                if let Some(at) = rfind_any(b"@", &b[auth..auth_end]) {
                    edits.push(Edit {
                        start: base + auth,
                        end: base + auth + at + 1,
                        repl: "",
                    });
                    kinds.push(RedactionKind::UrlUserinfo);
                }
                self.url_rest(s, auth_end, base, depth, nest, edits, kinds);
            }
            Shape::Relative => self.url_rest(s, 0, base, depth, nest, edits, kinds),
            Shape::Query { start, mark } => {
                let q_end = find_any(b"#", &b[start..]).map_or(b.len(), |k| start + k);
                self.params(s, start, q_end, mark, base, depth, nest, edits, kinds);
                if q_end < b.len() {
                    self.fragment(s, q_end, base, depth, nest, edits, kinds);
                }
            }
        }
    }

    /// Path, query and fragment from `from`.
    #[allow(clippy::too_many_arguments)]
    fn url_rest(
        &self,
        s: &str,
        from: usize,
        base: usize,
        depth: Depth,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        let path_end = find_any(b"?#", &b[from..]).map_or(b.len(), |k| from + k);
        if depth == Depth::Full {
            self.path_like(s, from, path_end, base, edits, kinds);
        }
        let mut pos = path_end;
        if b.get(pos) == Some(&b'?') {
            let q_end = find_any(b"#", &b[pos + 1..]).map_or(b.len(), |k| pos + 1 + k);
            self.params(s, pos + 1, q_end, pos, base, depth, nest, edits, kinds);
            pos = q_end;
        }
        if b.get(pos) == Some(&b'#') {
            self.fragment(s, pos, base, depth, nest, edits, kinds);
        }
    }

    /// The fragment after the `#` at `hash`.
    #[allow(clippy::too_many_arguments)]
    fn fragment(
        &self,
        s: &str,
        hash: usize,
        base: usize,
        depth: Depth,
        nest: u8,
        edits: &mut Vec<Edit>,
        kinds: &mut Vec<RedactionKind>,
    ) {
        let b = s.as_bytes();
        let f0 = hash + 1;
        if let Some(q) = find_any(b"?", &b[f0..]) {
            if depth == Depth::Full {
                self.path_like(s, f0, f0 + q, base, edits, kinds);
            }
            self.params(
                s,
                f0 + q + 1,
                b.len(),
                f0 + q,
                base,
                depth,
                nest,
                edits,
                kinds,
            );
        } else if find_any(b"=", &b[f0..]).is_some() {
            self.params(s, f0, b.len(), hash, base, depth, nest, edits, kinds);
        } else if depth == Depth::Full {
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
        while seg <= b.len() {
            let k = find_any(b"/", &b[seg..]).map_or(b.len(), |k| seg + k);
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
        if find_any(b"%", seg.as_bytes()).is_none() {
            self.detect(seg, base + a, Hint::default(), edits, kinds);
            return;
        }
        let mut buf: DecodeBuf = [0; DECODE_BUF];
        let decoded = decode_component(seg, false, &mut buf);
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
        depth: Depth,
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
            let pe = find_any(b"&", &b[ps..to]).map_or(to, |k| ps + k);
            if pe > ps {
                let param = &s[ps..pe];
                let trips = match depth {
                    Depth::NamesOnly => self.param_denied(param, false, kinds),
                    Depth::Full => self.param_trips(param, nest, kinds),
                };
                if trips {
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

    /// Whether the parameter's name is denied; records it.
    fn param_denied(&self, param: &str, decode: bool, kinds: &mut Vec<RedactionKind>) -> bool {
        let raw = find_any(b"=", param.as_bytes()).map_or(param, |k| &param[..k]);
        let hit = if decode {
            let mut buf: DecodeBuf = [0; DECODE_BUF];
            self.deny.param(&decode_component(raw, true, &mut buf))
        } else {
            self.deny.param(raw)
        };
        match hit {
            Some(i) => {
                kinds.push(RedactionKind::UrlParam(self.deny.name(i).to_string()));
                true
            }
            None => false,
        }
    }

    /// Whether the parameter `name=value` must go; records why.
    fn param_trips(&self, param: &str, nest: u8, kinds: &mut Vec<RedactionKind>) -> bool {
        if self.param_denied(param, true, kinds) {
            return true;
        }
        let mut sub_edits = Vec::new();
        let mut sub_kinds = Vec::new();
        let mut buf: DecodeBuf = [0; DECODE_BUF];
        let decoded = decode_component(param, true, &mut buf);
        self.text(
            &decoded,
            0,
            Hint::default(),
            nest + 1,
            &mut sub_edits,
            &mut sub_kinds,
        );
        if sub_edits.is_empty() && find_any(b"+", param.as_bytes()).is_some() {
            // A literal `+` may be the `+` of a phone number.
            let mut buf: DecodeBuf = [0; DECODE_BUF];
            let decoded = decode_component(param, false, &mut buf);
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
            // A relative URL or query string as the value
            // (`next=/signup?first_name=Ada`): its parameters count too.
            if let Some((_, value)) = decoded.split_once('=') {
                let vf = Features::of(value.as_bytes());
                if !vf.space && nest + 1 < MAX_URL_NESTING {
                    if let Some(shape @ (Shape::Relative | Shape::Query { .. })) =
                        whole_shape(value, &vf, Hint::default())
                    {
                        self.url(
                            value,
                            &vf,
                            0,
                            shape,
                            nest + 1,
                            &mut sub_edits,
                            &mut sub_kinds,
                        );
                    }
                }
            }
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

    fn shape(s: &str, hint: Hint) -> Option<Shape> {
        whole_shape(s, &Features::of(s.as_bytes()), hint)
    }

    #[test]
    fn shapes() {
        let h = Hint::default();
        assert_eq!(
            shape("https://x.io/a", h),
            Some(Shape::Absolute { auth: 8 })
        );
        assert_eq!(shape("HTTP://x.io", h), Some(Shape::Absolute { auth: 7 }));
        assert_eq!(
            shape("//cdn.x.io/a?b", h),
            Some(Shape::Absolute { auth: 2 })
        );
        assert_eq!(shape("?a=1", h), Some(Shape::Query { start: 1, mark: 0 }));
        assert_eq!(shape("/p?a=1", h), Some(Shape::Relative));
        assert_eq!(shape("/products/12345", h), None);
        assert_eq!(shape("a=1&b=2", h), None);
        let q = Hint {
            query: true,
            ..Hint::default()
        };
        assert_eq!(
            shape("a=1&b=2", q),
            Some(Shape::Query { start: 0, mark: 0 })
        );
        assert_eq!(shape("key=value:x", h), None);
        assert_eq!(shape("1http://x", h), None);
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
