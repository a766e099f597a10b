//! `context.userAgent` → browser, OS and device, with the `ua-parser` crate
//! and the uap-core regular expressions (`data/uap-core/`, Apache-2.0, the
//! data every uap port shares; see `data/uap-core/README.md` to update it).
//!
//! Parsing one user agent runs hundreds of regular expressions behind a
//! prefilter (tens of microseconds); real traffic has few distinct user
//! agents, so results are cached per distinct string in a bounded cache
//! (`quality.user_agent_cache_entries`). User agents longer than
//! [`MAX_USER_AGENT_BYTES`] are not parsed (no legitimate browser sends
//! one; a flood of them would only churn the cache).
//!
//! The device type is the gateway's rule on top of the parsed result:
//! `bot` (uap's `Spider`), `tablet` (iPad, Kindle, `Tablet`, a known tablet
//! model ([`ANDROID_TABLET_MODELS`]), or an Android *browser* without
//! `Mobile`), `mobile` (`Mobi`, iPhone, iPod, Android), `desktop` (any other
//! device on a desktop OS), else `other`. Android browsers say `Mobile` on
//! phones only; an Android app's own user agent (`Dalvik/2.1.0 (Linux; U;
//! Android 13; Pixel 7 …)`, what the Segment and RudderStack Android SDKs
//! send) never does, so there only the model can say tablet.

use crate::json::{Map, Value};
use quick_cache::sync::Cache;

/// The uap-core regexes, converted to JSON (the crate reads them with serde).
const REGEXES: &str = include_str!("../../../data/uap-core/regexes.json");

/// Longer user agents are not parsed.
pub const MAX_USER_AGENT_BYTES: usize = 1024;

/// Android device models (as in the user agent) that are tablets: Samsung
/// Galaxy Tab (`SM-T…`, `SM-X…`, `SM-P…`), Lenovo Tab (`Lenovo TB…`), the
/// Nexus 9 and 10, Amazon Fire (`KF…` codes); `Tablet` (`Pixel Tablet`) is
/// matched anywhere already.
pub const ANDROID_TABLET_MODELS: [&str; 7] = [
    "; SM-T",
    "; SM-X",
    "; SM-P",
    "; Lenovo TB",
    "; Nexus 9",
    "; Nexus 10",
    "; KF",
];

/// What a browser's user agent starts with (an app's own does not).
const BROWSER_PREFIX: &str = "Mozilla/";

/// Operating systems whose unrecognised devices are desktops.
const DESKTOP_OS: [&str; 8] = [
    "Windows",
    "Mac OS X",
    "Linux",
    "Ubuntu",
    "Chrome OS",
    "Fedora",
    "FreeBSD",
    "OpenBSD",
];

#[derive(Debug, thiserror::Error)]
pub enum UaError {
    #[error("the bundled uap-core regexes do not load: {0}")]
    Data(#[from] serde_json::Error),
    #[error("the bundled uap-core regexes do not compile: {0}")]
    Compile(#[from] ua_parser::Error),
}

/// The parser and its cache, shared by every source that enables it.
pub struct UaParser {
    extractor: ua_parser::Extractor<'static>,
    cache: Cache<String, Value<'static>>,
}

impl UaParser {
    /// Compiles the regexes (about a second of CPU: done once per stage).
    pub fn new(cache_entries: usize) -> Result<UaParser, UaError> {
        let regexes: ua_parser::Regexes<'static> = serde_json::from_str(REGEXES)?;
        Ok(UaParser {
            extractor: ua_parser::Extractor::try_from(regexes)?,
            cache: Cache::new(cache_entries.max(1)),
        })
    }

    /// The `context.userAgentParsed` object of `ua`, or `None` when the
    /// string is too long.
    pub fn parse(&self, ua: &str) -> Option<Value<'static>> {
        if ua.len() > MAX_USER_AGENT_BYTES {
            return None;
        }
        if let Some(v) = self.cache.get(ua) {
            return Some(v);
        }
        let v = self.parse_uncached(ua);
        self.cache.insert(ua.to_string(), v.clone());
        Some(v)
    }

    /// Parses without the cache.
    pub fn parse_uncached(&self, ua: &str) -> Value<'static> {
        let (browser, os, device) = self.extractor.extract(ua);
        let mut out = Map::new();
        if let Some(b) = browser.filter(|b| b.family != "Other") {
            let version = join_version([b.major, b.minor, b.patch]);
            out.insert("browser", named(&b.family, version));
        }
        let os_name = os.as_ref().map(|o| o.os.to_string()).unwrap_or_default();
        if let Some(o) = os.filter(|o| o.os != "Other") {
            let version =
                join_version([o.major.as_deref(), o.minor.as_deref(), o.patch.as_deref()]);
            out.insert("os", named(&o.os, version));
        }
        let family = device
            .as_ref()
            .map(|d| d.device.to_string())
            .unwrap_or_default();
        let mut d = Map::new();
        d.insert(
            "type",
            Value::String(device_type(ua, &os_name, &family).into()),
        );
        if let Some(dev) = device {
            if let Some(brand) = dev.brand.filter(|b| !b.is_empty()) {
                d.insert("brand", Value::String(brand.into_owned().into()));
            }
            if let Some(model) = dev.model.filter(|m| !m.is_empty()) {
                d.insert("model", Value::String(model.into_owned().into()));
            }
        }
        out.insert("device", Value::Object(d));
        Value::Object(out)
    }
}

fn named(name: &str, version: Option<String>) -> Value<'static> {
    let mut m = Map::with_capacity(2);
    m.insert("name", Value::String(name.to_string().into()));
    if let Some(v) = version {
        m.insert("version", Value::String(v.into()));
    }
    Value::Object(m)
}

fn join_version(parts: [Option<&str>; 3]) -> Option<String> {
    let mut out = String::new();
    for p in parts.into_iter().map_while(|p| p.filter(|s| !s.is_empty())) {
        if !out.is_empty() {
            out.push('.');
        }
        out.push_str(p);
    }
    (!out.is_empty()).then_some(out)
}

fn device_type(ua: &str, os: &str, family: &str) -> &'static str {
    let android = os == "Android";
    let android_tablet = android
        && (ANDROID_TABLET_MODELS.iter().any(|m| ua.contains(m))
            || (ua.starts_with(BROWSER_PREFIX) && !ua.contains("Mobile")));
    if family == "Spider" {
        "bot"
    } else if family.contains("iPad")
        || family.contains("Kindle")
        || ua.contains("Tablet")
        || android_tablet
    {
        "tablet"
    } else if ua.contains("Mobi") || family.contains("iPhone") || family.contains("iPod") || android
    {
        "mobile"
    } else if DESKTOP_OS.contains(&os) {
        "desktop"
    } else {
        "other"
    }
}
