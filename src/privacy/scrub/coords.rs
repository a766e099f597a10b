//! Precise geolocation: coordinates a client sends (Segment mobile SDKs'
//! `context.location.latitude` / `longitude`, `lat` / `lng` properties)
//! locate a person to within metres, their home at night. They are rounded
//! to the precision of the gateway's own GeoIP coordinates
//! (`privacy::geo::COORDINATE_DECIMALS`, one decimal: about 10 km) unless
//! the source configures otherwise (`coordinate_decimals`, or
//! `coarsen_coordinates = false`).
//!
//! A coordinate is a number (or a string holding one) under a key whose
//! last word is `latitude`, `lat`, `longitude`, `lng` or `lon` (`lat`,
//! `userLat`, `pickup_lng`; not `flat` or `salon`), within the axis' range;
//! anything else under such a key is left to the other rules.

use std::borrow::Cow;

use crate::json::{Number, Value};

/// Most decimals `coordinate_decimals` may keep (7 is about 1 cm: more is
/// no coarsening at all).
pub const MAX_COORDINATE_DECIMALS: u32 = 7;

/// Which coordinate a key names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Axis {
    Latitude,
    Longitude,
}

impl Axis {
    /// The largest magnitude of a valid coordinate on this axis.
    fn limit(self) -> f64 {
        match self {
            Axis::Latitude => 90.0,
            Axis::Longitude => 180.0,
        }
    }
}

/// Key endings that name an axis, longest first.
const AXIS_WORDS: [(&str, Axis); 5] = [
    ("longitude", Axis::Longitude),
    ("latitude", Axis::Latitude),
    ("lat", Axis::Latitude),
    ("lng", Axis::Longitude),
    ("lon", Axis::Longitude),
];

/// The axis `key` names, when its last word is one of [`AXIS_WORDS`].
/// Every key of every event is asked: the last letter rules most out.
#[inline]
pub(crate) fn axis(key: &str) -> Option<Axis> {
    let b = key.as_bytes();
    let candidates: &[(&str, Axis)] = match b.last()?.to_ascii_lowercase() {
        b'e' => &AXIS_WORDS[..2],
        b't' => &AXIS_WORDS[2..3],
        b'g' => &AXIS_WORDS[3..4],
        b'n' => &AXIS_WORDS[4..],
        _ => return None,
    };
    axis_among(b, candidates)
}

fn axis_among(b: &[u8], candidates: &[(&str, Axis)]) -> Option<Axis> {
    for &(word, axis) in candidates {
        let Some(at) = b.len().checked_sub(word.len()) else {
            continue;
        };
        let tail = &b[at..];
        if !tail.eq_ignore_ascii_case(word.as_bytes()) {
            continue;
        }
        // A word of its own: the key is the word, a separator comes
        // before it, or a camelCase hump starts it (`userLat`).
        let starts_word = match at.checked_sub(1).map(|i| b[i]) {
            None => true,
            Some(prev) => {
                !prev.is_ascii_alphabetic()
                    || (prev.is_ascii_lowercase() && tail[0].is_ascii_uppercase())
            }
        };
        if starts_word {
            return Some(axis);
        }
    }
    None
}

/// Rounds the coordinate in `value` to `decimals`; whether it changed.
pub(crate) fn coarsen(value: &mut Value<'_>, axis: Axis, decimals: u32) -> bool {
    let x = match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    let Some(x) = x.filter(|x| x.is_finite() && x.abs() <= axis.limit()) else {
        return false;
    };
    let scale = 10f64.powi(decimals.min(MAX_COORDINATE_DECIMALS) as i32);
    let rounded = (x * scale).round() / scale;
    if rounded == x {
        return false;
    }
    let Some(n) = Number::from_f64(rounded) else {
        return false;
    };
    *value = match value {
        Value::String(_) => Value::String(Cow::Owned(n.to_string())),
        _ => Value::Number(n),
    };
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn keys_naming_an_axis() {
        for (k, a) in [
            ("latitude", Some(Axis::Latitude)),
            ("Latitude", Some(Axis::Latitude)),
            ("lat", Some(Axis::Latitude)),
            ("userLat", Some(Axis::Latitude)),
            ("pickup_lng", Some(Axis::Longitude)),
            ("geo.lon", Some(Axis::Longitude)),
            ("longitude", Some(Axis::Longitude)),
            ("flat", None),
            ("salon", None),
            ("colon", None),
            ("platform", None),
            ("lateral", None),
            ("", None),
        ] {
            assert_eq!(axis(k), a, "{k}");
        }
    }

    #[test]
    fn coordinates_are_rounded_strings_stay_strings_out_of_range_stays() {
        let round = |v: Value<'static>, axis| {
            let mut v = v;
            let changed = coarsen(&mut v, axis, 1);
            (v, changed)
        };
        let n = |f: f64| Value::Number(Number::from_f64(f).expect("finite"));
        assert_eq!(round(n(48.858_37), Axis::Latitude), (n(48.9), true));
        assert_eq!(round(n(2.294_481), Axis::Longitude), (n(2.3), true));
        assert_eq!(round(n(-33.868_82), Axis::Latitude), (n(-33.9), true));
        assert_eq!(
            round(Value::from("151.209296"), Axis::Longitude),
            (Value::from("151.2"), true)
        );
        assert_eq!(round(n(48.9), Axis::Latitude), (n(48.9), false));
        assert_eq!(round(n(120.5), Axis::Latitude), (n(120.5), false));
        assert_eq!(
            round(Value::from("north"), Axis::Latitude),
            (Value::from("north"), false)
        );
        assert_eq!(
            round(Value::Bool(true), Axis::Latitude),
            (Value::Bool(true), false)
        );
    }

    proptest! {
        /// Any valid coordinate ends within half a step of where it was,
        /// with at most the configured decimals.
        #[test]
        fn rounding_keeps_the_configured_precision(
            x in -180.0f64..180.0,
            decimals in 0u32..=MAX_COORDINATE_DECIMALS,
        ) {
            let mut v = Value::Number(Number::from_f64(x).expect("finite"));
            coarsen(&mut v, Axis::Longitude, decimals);
            let y = v.as_f64().expect("a number");
            let step = 10f64.powi(-(decimals as i32));
            prop_assert!((y - x).abs() <= step / 2.0 + 1e-9, "{x} -> {y}");
            let scaled = y * 10f64.powi(decimals as i32);
            prop_assert!((scaled - scaled.round()).abs() < 1e-6, "{y} has more than {decimals} decimals");
        }
    }
}
