use std::sync::{Arc, OnceLock};

use crate::json::json;

use super::*;

/// Compiling the uap-core regexes is slow: once for all tests.
fn parser() -> Arc<UaParser> {
    static P: OnceLock<Arc<UaParser>> = OnceLock::new();
    P.get_or_init(|| Arc::new(UaParser::new(100).expect("bundled regexes compile")))
        .clone()
}

const CHROME_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.109 Safari/537.36";
const SAFARI_IPHONE: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1";
const SAFARI_IPAD: &str = "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1";
const CHROME_ANDROID: &str = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Mobile Safari/537.36";
const FIREFOX_MAC: &str =
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:121.0) Gecko/20100101 Firefox/121.0";
const DALVIK_PIXEL_7: &str = "Dalvik/2.1.0 (Linux; U; Android 13; Pixel 7 Build/TQ3A.230805.001)";
const DALVIK_GALAXY_TAB: &str =
    "Dalvik/2.1.0 (Linux; U; Android 13; SM-X700 Build/TP1A.220624.014)";
const CHROME_ANDROID_TABLET: &str = "Mozilla/5.0 (Linux; Android 14; Pixel Tablet) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.6099.144 Safari/537.36";
const GOOGLEBOT: &str = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)";

#[test]
fn user_agents_parse_into_browser_os_and_device_type() {
    let p = parser();
    // (user agent, browser, browser major, os, device type)
    let cases = [
        (CHROME_WINDOWS, "Chrome", "120", "Windows", "desktop"),
        (SAFARI_IPHONE, "Mobile Safari", "17", "iOS", "mobile"),
        (SAFARI_IPAD, "Mobile Safari", "16", "iOS", "tablet"),
        (CHROME_ANDROID, "Chrome Mobile", "120", "Android", "mobile"),
        (FIREFOX_MAC, "Firefox", "121", "Mac OS X", "desktop"),
        (GOOGLEBOT, "Googlebot", "2", "", "bot"),
        // Android apps' own user agents (Segment / RudderStack Android SDKs)
        // never say `Mobile`: a phone is a phone, a tablet model a tablet.
        (DALVIK_PIXEL_7, "Android", "", "Android", "mobile"),
        (DALVIK_GALAXY_TAB, "Android", "", "Android", "tablet"),
        (CHROME_ANDROID_TABLET, "Chrome", "120", "Android", "tablet"),
    ];
    for (ua, browser, major, os, device) in cases {
        let v = p.parse(ua).expect("short enough to parse");
        assert_eq!(v["browser"]["name"], browser, "{ua}: {v}");
        let version = v["browser"]["version"].as_str().unwrap_or_default();
        assert!(version.starts_with(major), "{ua}: {v}");
        assert_eq!(
            v["os"]["name"].as_str().unwrap_or_default(),
            os,
            "{ua}: {v}"
        );
        assert_eq!(v["device"]["type"], device, "{ua}: {v}");
    }
    let iphone = p.parse(SAFARI_IPHONE).expect("parses");
    assert_eq!(iphone["device"]["brand"], "Apple");
    assert_eq!(iphone["os"]["version"], "17.1.2");
}

#[test]
fn cached_results_equal_fresh_ones_and_long_agents_are_skipped() {
    let p = parser();
    let first = p.parse(CHROME_ANDROID);
    assert_eq!(p.parse(CHROME_ANDROID), first);
    assert_eq!(first, Some(p.parse_uncached(CHROME_ANDROID)));
    let long = format!("Mozilla/5.0 {}", "x".repeat(ua::MAX_USER_AGENT_BYTES));
    assert_eq!(p.parse(&long), None);
}

fn edits(e: &Enricher, kind: EventType, ev: Value<'static>) -> Map<'static> {
    let Value::Object(mut body) = ev else {
        panic!("an object")
    };
    let mut out = Vec::new();
    e.edits(kind, &body, &mut out);
    crate::quality::edit::apply(&mut body, out);
    body
}

#[test]
fn each_part_is_switchable_and_a_client_campaign_wins() {
    let page = json!({
        "context": {
            "userAgent": FIREFOX_MAC,
            "page": {"url": "https://shop.example/?utm_source=news&gclid=g1",
                     "referrer": "https://news.example.org/a"}
        }
    });
    let all = Enricher::new(
        &EnrichConfig::default(),
        Some(parser()),
        Some(Arc::new(Referrers::default())),
    );
    let body = edits(&all, EventType::Track, page.clone());
    assert_eq!(
        body["context"]["userAgentParsed"]["browser"]["name"],
        "Firefox"
    );
    assert_eq!(
        body["context"]["campaign"],
        json!({"source":"news","gclid":"g1"})
    );
    assert_eq!(
        body["context"]["referrerParsed"],
        json!({"host":"news.example.org","channel":"referral"})
    );

    let none = EnrichConfig {
        user_agent: false,
        campaign: false,
        referrer: false,
        ..EnrichConfig::default()
    };
    let off = Enricher::new(&none, Some(parser()), Some(Arc::new(Referrers::default())));
    assert!(!off.enabled());
    let body = edits(&off, EventType::Track, page.clone());
    assert_eq!(Value::Object(body), page);

    let mut sent = page.clone();
    sent["context"]["campaign"] = json!({"name": "client"});
    let body = edits(&all, EventType::Track, sent);
    assert_eq!(body["context"]["campaign"], json!({"name": "client"}));
}

#[test]
fn a_page_event_is_its_own_page() {
    let e = Enricher::new(
        &EnrichConfig::default(),
        None,
        Some(Arc::new(Referrers::default())),
    );
    let body = edits(
        &e,
        EventType::Page,
        json!({"properties": {"url": "https://shop.example/?utm_medium=cpc", "referrer": ""}}),
    );
    assert_eq!(body["context"]["campaign"], json!({"medium":"cpc"}));
    assert_eq!(
        body["context"]["referrerParsed"],
        json!({"channel":"direct"})
    );
    // A track event's properties are not a page.
    let body = edits(
        &e,
        EventType::Track,
        json!({"properties": {"url": "https://shop.example/?utm_medium=cpc", "referrer": ""}}),
    );
    assert!(body.get("context").is_none(), "{body:?}");
}
