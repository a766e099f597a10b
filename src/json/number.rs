//! A JSON number as text: the parser keeps the client's digits as a slice
//! of the input, so the record carries `-0`, `1E2` or a 21-digit order id
//! exactly as sent (a value read as `f64` and printed again can differ:
//! `-0.0`, `100.0`, `1.2345678901234568e+20`). A number a stage writes
//! itself is printed shortest-round-trip.
//!
//! Reading the value (`as_i64`, `as_f64` …) parses the text; stages do that
//! rarely (ids, coordinates), so it costs less than converting every
//! number at parse time.

use std::borrow::Cow;
use std::fmt;

/// One JSON number, holding its text (valid JSON number grammar).
#[derive(Debug, Clone)]
pub struct Number<'a>(Cow<'a, str>);

impl<'a> Number<'a> {
    /// A number from text the parser checked against the JSON grammar.
    pub(super) fn from_checked_text(text: &'a str) -> Number<'a> {
        Number(Cow::Borrowed(text))
    }

    /// `f` printed shortest-round-trip; `None` for NaN and infinities
    /// (which JSON cannot hold).
    pub fn from_f64(f: f64) -> Option<Number<'static>> {
        serde_json::Number::from_f64(f).map(|n| Number(Cow::Owned(n.to_string())))
    }

    /// The number's text as it will be written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the text is an integer (no fraction, no exponent), as
    /// `serde_json` tells integers from floats.
    fn is_integer_text(&self) -> bool {
        !self.0.bytes().any(|b| matches!(b, b'.' | b'e' | b'E'))
    }

    pub fn as_i64(&self) -> Option<i64> {
        self.is_integer_text()
            .then(|| self.0.parse().ok())
            .flatten()
    }

    pub fn as_u64(&self) -> Option<u64> {
        self.is_integer_text()
            .then(|| self.0.parse().ok())
            .flatten()
    }

    /// The nearest `f64` (every JSON number has one; the parser refuses
    /// numbers beyond its range).
    pub fn as_f64(&self) -> Option<f64> {
        self.0.parse().ok()
    }

    pub fn into_owned(self) -> Number<'static> {
        Number(Cow::Owned(self.0.into_owned()))
    }
}

macro_rules! from_integer {
    ($($t:ty),*) => {$(
        impl From<$t> for Number<'static> {
            fn from(n: $t) -> Number<'static> {
                Number(Cow::Owned(n.to_string()))
            }
        }
    )*};
}
from_integer!(i32, i64, u32, u64, usize);

impl From<serde_json::Number> for Number<'static> {
    fn from(n: serde_json::Number) -> Number<'static> {
        Number(Cow::Owned(n.to_string()))
    }
}

impl Number<'_> {
    /// The equivalent `serde_json::Number` (an integer when the text is
    /// one that fits, else the nearest `f64`).
    pub fn to_serde(&self) -> serde_json::Number {
        if let Some(i) = self.as_u64() {
            return i.into();
        }
        if let Some(i) = self.as_i64() {
            return i.into();
        }
        self.as_f64()
            .and_then(serde_json::Number::from_f64)
            .unwrap_or_else(|| 0.into())
    }
}

impl fmt::Display for Number<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Two numbers are equal when their texts are, or their values are (`1.0`
/// equals `1.00`; an integer is compared exactly, not as `f64`).
impl PartialEq for Number<'_> {
    fn eq(&self, other: &Self) -> bool {
        if self.0 == other.0 {
            return true;
        }
        match (self.is_integer_text(), other.is_integer_text()) {
            (true, true) => {
                self.as_i64()
                    .zip(other.as_i64())
                    .is_some_and(|(a, b)| a == b)
                    || self
                        .as_u64()
                        .zip(other.as_u64())
                        .is_some_and(|(a, b)| a == b)
            }
            _ => self.as_f64() == other.as_f64(),
        }
    }
}

impl PartialEq<serde_json::Number> for Number<'_> {
    fn eq(&self, other: &serde_json::Number) -> bool {
        let other = Number::from(other.clone());
        *self == other
    }
}
