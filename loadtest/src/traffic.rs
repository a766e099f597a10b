//! Realistic traffic, generated before the run.
//!
//! A run cycles through a fixed set of request *templates*: HTTP/1.1
//! requests (head and JSON body) built once, so sending costs a copy and a
//! write, never JSON work. Every event still gets a unique `messageId`: each
//! template records where the fixed-width hexadecimal counter of each
//! event's id sits, and rendering a request writes fresh counter values
//! there. A gzip body is compressed at send time, as one ordinary gzip
//! stream the way a browser or SDK would send it (level 1, with a reused
//! compressor: a few percent of one core at thousands of batches a second).
//!
//! What varies between templates: request kind (single-event endpoint or
//! `/v1/batch`), event types (page views, clicks, other tracks, identifies),
//! URLs, referrers, user agents, client addresses (`X-Forwarded-For`),
//! visitors, PII in a share of events, opted-out visitors (`Sec-GPC: 1`) and
//! gzip on a share of batches.

use std::fmt::Write as _;
use std::io::Write as _;

use base64::Engine;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Content-Length header name as written before the body length.
const CONTENT_LENGTH: &[u8] = b"Content-Length: ";
use serde_json::{json, Map, Value};

/// Hexadecimal digits of the per-event counter in a `messageId`.
pub const ID_DIGITS: usize = 12;
/// Marker written where the counter digits go while a template is built.
const ID_MARKER: &[u8; ID_DIGITS] = b"@@@@@@@@@@@@";
/// Distinct visitors the generated events are spread over.
const VISITORS: u64 = 50_000;
/// Gzip header: magic, deflate, no flags, no mtime, no extra flags, unknown OS.
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];
/// The default click event names of the gateway's routing.
const CLICK_NAMES: [&str; 3] = ["click", "Link Clicked", "Element Clicked"];

#[derive(Debug, thiserror::Error)]
pub enum TrafficError {
    #[error("`{0}` is not a valid mix: expected name=weight pairs like single=80,batch=20")]
    BadMix(String),
    #[error("unknown mix entry `{0}`")]
    UnknownMixEntry(String),
    #[error("all weights of a mix are zero")]
    EmptyMix,
    #[error("compression failed: {0}")]
    Compress(String),
}

/// The raw topic an accepted event is routed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    Pageviews,
    Clicks,
    Events,
    Identities,
}

impl Topic {
    pub const ALL: [Topic; 4] = [
        Topic::Pageviews,
        Topic::Clicks,
        Topic::Events,
        Topic::Identities,
    ];

    /// The suffix of the gateway's default topic name (`tracking.raw.<suffix>`).
    pub fn suffix(self) -> &'static str {
        match self {
            Topic::Pageviews => "pageviews",
            Topic::Clicks => "clicks",
            Topic::Events => "events",
            Topic::Identities => "identities",
        }
    }
}

/// The kinds of event the generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Page,
    Click,
    Track,
    Identify,
}

impl EventKind {
    pub fn topic(self) -> Topic {
        match self {
            EventKind::Page => Topic::Pageviews,
            EventKind::Click => Topic::Clicks,
            EventKind::Track => Topic::Events,
            EventKind::Identify => Topic::Identities,
        }
    }

    fn type_name(self) -> &'static str {
        match self {
            EventKind::Page => "page",
            EventKind::Click | EventKind::Track => "track",
            EventKind::Identify => "identify",
        }
    }
}

/// Weights of request kinds: single-event POSTs and batches.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RequestMix {
    pub single: u32,
    pub batch: u32,
}

impl Default for RequestMix {
    fn default() -> Self {
        RequestMix {
            single: 70,
            batch: 30,
        }
    }
}

/// Weights of event kinds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct EventMix {
    pub page: u32,
    pub click: u32,
    pub track: u32,
    pub identify: u32,
}

impl Default for EventMix {
    fn default() -> Self {
        EventMix {
            page: 50,
            click: 25,
            track: 15,
            identify: 10,
        }
    }
}

fn parse_pairs(s: &str) -> Result<Vec<(String, u32)>, TrafficError> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| TrafficError::BadMix(s.to_string()))?;
            let w: u32 = v
                .trim()
                .parse()
                .map_err(|_| TrafficError::BadMix(s.to_string()))?;
            Ok((k.trim().to_ascii_lowercase(), w))
        })
        .collect()
}

impl std::str::FromStr for RequestMix {
    type Err = TrafficError;

    /// `single=80,batch=20`; a kind left out weighs 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = RequestMix {
            single: 0,
            batch: 0,
        };
        for (k, w) in parse_pairs(s)? {
            match k.as_str() {
                "single" => mix.single = w,
                "batch" => mix.batch = w,
                _ => return Err(TrafficError::UnknownMixEntry(k)),
            }
        }
        if mix.single == 0 && mix.batch == 0 {
            return Err(TrafficError::EmptyMix);
        }
        Ok(mix)
    }
}

impl std::str::FromStr for EventMix {
    type Err = TrafficError;

    /// `page=50,click=25,track=15,identify=10`; a kind left out weighs 0.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut mix = EventMix {
            page: 0,
            click: 0,
            track: 0,
            identify: 0,
        };
        for (k, w) in parse_pairs(s)? {
            match k.as_str() {
                "page" => mix.page = w,
                "click" => mix.click = w,
                "track" => mix.track = w,
                "identify" => mix.identify = w,
                _ => return Err(TrafficError::UnknownMixEntry(k)),
            }
        }
        if mix.page + mix.click + mix.track + mix.identify == 0 {
            return Err(TrafficError::EmptyMix);
        }
        Ok(mix)
    }
}

/// Everything that shapes the generated traffic.
#[derive(Debug, Clone)]
pub struct TrafficSpec {
    pub requests: RequestMix,
    pub events: EventMix,
    pub batch_size: usize,
    /// Share of events carrying personal data (emails, phone numbers, names).
    pub pii_share: f64,
    /// Share of requests from opted-out visitors (`Sec-GPC: 1`).
    pub optout_share: f64,
    /// Share of batch requests sent gzip-compressed.
    pub gzip_share: f64,
    pub write_key: String,
    /// `Host` header value.
    pub host: String,
    /// Distinct request templates to cycle through.
    pub templates: usize,
    /// `messageId` prefix of this run, so a run's events can be told apart.
    pub run_tag: String,
    pub seed: u64,
}

/// A small deterministic generator (SplitMix64): reproducible traffic
/// without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        const SCALE: f64 = (1u64 << 53) as f64;
        ((self.next_u64() >> 11) as f64 / SCALE) < p
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }

    /// Index chosen with the given weights (at least one must be positive).
    pub fn weighted(&mut self, weights: &[u32]) -> usize {
        let total: u64 = weights.iter().map(|&w| u64::from(w)).sum();
        let mut x = self.below(total);
        for (i, &w) in weights.iter().enumerate() {
            if x < u64::from(w) {
                return i;
            }
            x -= u64::from(w);
        }
        weights.len() - 1
    }
}

/// One pre-built request.
#[derive(Debug, Clone)]
pub struct Template {
    /// Request line and headers, without `Content-Length` and the blank line.
    head: Vec<u8>,
    /// The JSON body, with the id slots as zeros.
    body: Vec<u8>,
    /// Offsets of the id slots in `body`, one per event, in event order.
    slots: Vec<usize>,
    /// Sent gzip-compressed.
    gzip: bool,
    /// The kind of each event, in order.
    pub events: Vec<EventKind>,
    /// Sent with `Sec-GPC: 1`.
    pub opted_out: bool,
    /// A single-event POST (else a batch).
    pub single: bool,
}

/// A worker's reusable buffers and compressor for rendering requests.
pub struct Renderer {
    plain: Vec<u8>,
    compressed: Vec<u8>,
    compress: Compress,
}

impl Default for Renderer {
    fn default() -> Self {
        Renderer {
            plain: Vec::new(),
            compressed: Vec::new(),
            compress: Compress::new(Compression::fast(), false),
        }
    }
}

impl Template {
    /// Bytes of the uncompressed request.
    pub fn wire_len(&self) -> usize {
        self.head.len() + self.body.len()
    }

    pub fn is_gzip(&self) -> bool {
        self.gzip
    }

    /// Writes the request into `out` with `messageId` counters
    /// `first_id, first_id + 1, …` for its events.
    pub fn render(
        &self,
        first_id: u64,
        r: &mut Renderer,
        out: &mut Vec<u8>,
    ) -> Result<(), TrafficError> {
        r.plain.clear();
        r.plain.extend_from_slice(&self.body);
        for (k, &slot) in self.slots.iter().enumerate() {
            r.plain[slot..slot + ID_DIGITS].copy_from_slice(&id_digits(first_id + k as u64));
        }
        let body = if self.gzip {
            gzip_into(&mut r.compress, &r.plain, &mut r.compressed)?;
            &r.compressed
        } else {
            &r.plain
        };
        out.clear();
        out.extend_from_slice(&self.head);
        out.extend_from_slice(CONTENT_LENGTH);
        let _ = write!(out, "{}\r\n\r\n", body.len());
        out.extend_from_slice(body);
        Ok(())
    }
}

/// The fixed-width lowercase hexadecimal digits of an event counter.
pub fn id_digits(n: u64) -> [u8; ID_DIGITS] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [b'0'; ID_DIGITS];
    let mut v = n;
    for d in out.iter_mut().rev() {
        *d = HEX[(v & 0xf) as usize];
        v >>= 4;
    }
    out
}

/// The `messageId` of event `n` of the run tagged `run_tag`.
pub fn message_id(run_tag: &str, n: u64) -> String {
    let digits = id_digits(n);
    format!("{run_tag}-{}", String::from_utf8_lossy(&digits))
}

/// Reads the counter back from a `messageId` of this run.
pub fn parse_message_id(run_tag: &str, id: &str) -> Option<u64> {
    let rest = id.strip_prefix(run_tag)?.strip_prefix('-')?;
    if rest.len() != ID_DIGITS {
        return None;
    }
    u64::from_str_radix(rest, 16).ok()
}

const PAGES: &[(&str, &str)] = &[
    ("/", "Home"),
    ("/category/shoes", "Shoes"),
    ("/category/jackets", "Jackets"),
    ("/product/trail-runner-2", "Trail Runner 2"),
    ("/product/rain-shell", "Rain Shell"),
    ("/product/merino-hoodie", "Merino Hoodie"),
    ("/cart", "Cart"),
    ("/checkout/shipping", "Checkout – Shipping"),
    ("/checkout/payment", "Checkout – Payment"),
    ("/account/orders", "Your orders"),
    (
        "/blog/how-to-choose-running-shoes",
        "How to choose running shoes",
    ),
    ("/search", "Search"),
];

const REFERRERS: &[&str] = &[
    "",
    "https://www.google.com/",
    "https://duckduckgo.com/",
    "https://www.bing.com/",
    "https://news.ycombinator.com/",
    "https://t.co/abc123",
    "https://shop.example/",
    "https://www.facebook.com/",
];

const USER_AGENTS: &[&str] = &[
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64; rv:127.0) Gecko/20100101 Firefox/127.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36 Edg/126.0.0.0",
    "analytics-node/7.0.0",
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
];

const LOCALES: &[&str] = &["en-US", "de-DE", "fr-FR", "en-GB", "es-ES", "ja-JP"];
const TIMEZONES: &[&str] = &[
    "Europe/Berlin",
    "America/New_York",
    "Europe/Paris",
    "Asia/Tokyo",
    "America/Los_Angeles",
];
const SCREENS: &[(u32, u32)] = &[
    (1920, 1080),
    (1440, 900),
    (390, 844),
    (412, 915),
    (2560, 1440),
];
const TRACK_NAMES: &[&str] = &[
    "Product Viewed",
    "Product Added",
    "Checkout Started",
    "Order Completed",
    "Signed Up",
    "Video Played",
    "Search Performed",
];
const FIRST_NAMES: &[&str] = &["Jane", "John", "Amélie", "Kenji", "Sofia", "Omar"];
const LAST_NAMES: &[&str] = &["Doe", "Smith", "Müller", "Tanaka", "García", "Haddad"];

/// A client address from the documentation ranges (IPv4 and IPv6): varied,
/// and never anybody's real address.
fn client_ip(rng: &mut Rng) -> String {
    match rng.below(8) {
        0 => format!(
            "2001:db8:{:x}:{:x}::{:x}",
            rng.below(0x10000),
            rng.below(0x10000),
            rng.below(0x10000)
        ),
        1..=3 => format!("203.0.113.{}", rng.below(256)),
        4..=5 => format!("198.51.100.{}", rng.below(256)),
        _ => format!("192.0.2.{}", rng.below(256)),
    }
}

struct Visitor {
    anonymous_id: String,
    user_id: String,
}

fn visitor(rng: &mut Rng) -> Visitor {
    let n = rng.below(VISITORS);
    Visitor {
        anonymous_id: format!("anon-{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        user_id: format!("user-{n}"),
    }
}

fn pii(rng: &mut Rng, n: u64) -> (String, String, String) {
    let first = *rng.pick(FIRST_NAMES);
    let last = *rng.pick(LAST_NAMES);
    let email = format!(
        "{}.{}{n}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let phone = format!("+1 555 01{:02}", rng.below(100));
    (format!("{first} {last}"), email, phone)
}

/// One event as JSON text, with the id marker where its counter goes.
fn event_json(
    rng: &mut Rng,
    kind: EventKind,
    v: &Visitor,
    spec: &TrafficSpec,
    with_type: bool,
    timestamp: &str,
) -> Value {
    let (path, title) = *rng.pick(PAGES);
    let referrer = *rng.pick(REFERRERS);
    let campaign = rng.chance(0.2);
    let query = if campaign {
        "?utm_source=newsletter&utm_medium=email&utm_campaign=spring"
    } else {
        ""
    };
    let with_pii = rng.chance(spec.pii_share);
    let who = rng.below(VISITORS);
    let (name, email, phone) = pii(rng, who);
    let query = if with_pii && kind == EventKind::Page {
        format!("?email={}&ref=mail", email.replace('@', "%40"))
    } else {
        query.to_string()
    };
    let url = format!("https://shop.example{path}{query}");
    let (w, h) = *rng.pick(SCREENS);
    let mut ev = Map::new();
    if with_type {
        ev.insert("type".into(), json!(kind.type_name()));
    }
    ev.insert(
        "messageId".into(),
        json!(format!(
            "{}-{}",
            spec.run_tag,
            std::str::from_utf8(ID_MARKER).unwrap_or_default()
        )),
    );
    ev.insert("anonymousId".into(), json!(v.anonymous_id));
    ev.insert("timestamp".into(), json!(timestamp));
    ev.insert(
        "context".into(),
        json!({
            "library": {"name": "trackgate.js", "version": "1.4.2"},
            "locale": *rng.pick(LOCALES),
            "timezone": *rng.pick(TIMEZONES),
            "screen": {"width": w, "height": h, "density": 2},
            "page": {"path": path, "url": url, "referrer": referrer, "title": title},
        }),
    );
    match kind {
        EventKind::Page => {
            ev.insert("name".into(), json!(title));
            ev.insert(
                "properties".into(),
                json!({"path": path, "url": url, "referrer": referrer, "title": title, "search": query}),
            );
        }
        EventKind::Click => {
            ev.insert("event".into(), json!(*rng.pick(&CLICK_NAMES)));
            let mut props = json!({
                "elementId": format!("cta-{}", rng.below(40)),
                "href": format!("https://shop.example{}", rng.pick(PAGES).0),
                "text": "Add to cart",
                "x": rng.below(1920),
                "y": rng.below(4000),
            });
            if with_pii {
                props["text"] = json!(format!("Send to {email}"));
            }
            ev.insert("properties".into(), props);
        }
        EventKind::Track => {
            ev.insert("event".into(), json!(*rng.pick(TRACK_NAMES)));
            let mut props = json!({
                "product_id": format!("sku-{}", rng.below(5000)),
                "price": (rng.below(20_000) as f64) / 100.0,
                "currency": "EUR",
                "quantity": 1 + rng.below(3),
            });
            if with_pii {
                props["shipping_phone"] = json!(phone);
                props["note"] = json!(format!("call {name} on {phone}"));
            }
            ev.insert("properties".into(), props);
        }
        EventKind::Identify => {
            ev.insert("userId".into(), json!(v.user_id));
            let mut traits = json!({
                "plan": if rng.chance(0.3) { "pro" } else { "free" },
                "createdAt": "2025-11-03T10:12:00Z",
                "logins": rng.below(200),
            });
            if with_pii {
                traits["email"] = json!(email);
                traits["name"] = json!(name);
                traits["phone"] = json!(phone);
            }
            ev.insert("traits".into(), traits);
        }
    }
    Value::Object(ev)
}

/// Offsets of every id marker in `text`, in order.
fn marker_offsets(text: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut i = 0;
    while let Some(pos) = find(&text[i..], ID_MARKER) {
        out.push(i + pos);
        i += pos + ID_DIGITS;
    }
    out
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Compresses all of `input` to the end of the stream, appending to `out`.
fn deflate_into(c: &mut Compress, mut input: &[u8], out: &mut Vec<u8>) -> Result<(), TrafficError> {
    const MIN_SPARE: usize = 4096;
    loop {
        out.reserve(MIN_SPARE.max(input.len() / 2));
        let before = c.total_in();
        let status = c
            .compress_vec(input, out, FlushCompress::Finish)
            .map_err(|e| TrafficError::Compress(e.to_string()))?;
        input = &input[(c.total_in() - before) as usize..];
        if status == Status::StreamEnd {
            return Ok(());
        }
    }
}

/// One gzip member of `plain` into `out`, reusing the compressor.
fn gzip_into(c: &mut Compress, plain: &[u8], out: &mut Vec<u8>) -> Result<(), TrafficError> {
    c.reset();
    out.clear();
    out.extend_from_slice(&GZIP_HEADER);
    deflate_into(c, plain, out)?;
    let mut crc = Crc::new();
    crc.update(plain);
    out.extend_from_slice(&crc.sum().to_le_bytes());
    out.extend_from_slice(&(plain.len() as u32).to_le_bytes());
    Ok(())
}

fn request_head(
    path: &str,
    spec: &TrafficSpec,
    ua: &str,
    ip: &str,
    opted_out: bool,
    gzip: bool,
) -> Vec<u8> {
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{}:", spec.write_key));
    let mut h = String::with_capacity(512);
    let _ = write!(
        h,
        "POST {path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {auth}\r\nContent-Type: application/json\r\nUser-Agent: {ua}\r\nX-Forwarded-For: {ip}\r\n",
        spec.host
    );
    if opted_out {
        h.push_str("Sec-GPC: 1\r\n");
    }
    if gzip {
        h.push_str("Content-Encoding: gzip\r\n");
    }
    h.into_bytes()
}

fn single_path(kind: EventKind) -> &'static str {
    match kind {
        EventKind::Page => "/v1/page",
        EventKind::Click | EventKind::Track => "/v1/track",
        EventKind::Identify => "/v1/identify",
    }
}

/// Builds one template.
fn template(rng: &mut Rng, spec: &TrafficSpec, timestamp: &str) -> Result<Template, TrafficError> {
    let r = &spec.requests;
    let single = rng.weighted(&[r.single, r.batch]) == 0;
    let e = &spec.events;
    let kinds = [
        EventKind::Page,
        EventKind::Click,
        EventKind::Track,
        EventKind::Identify,
    ];
    let weights = [e.page, e.click, e.track, e.identify];
    let n = if single { 1 } else { spec.batch_size.max(1) };
    let events: Vec<EventKind> = (0..n).map(|_| kinds[rng.weighted(&weights)]).collect();
    let ua = *rng.pick(USER_AGENTS);
    let ip = client_ip(rng);
    let opted_out = rng.chance(spec.optout_share);
    let v = visitor(rng);
    let (path, mut plain) = if single {
        let ev = event_json(rng, events[0], &v, spec, false, timestamp);
        (
            single_path(events[0]),
            serde_json::to_vec(&ev).unwrap_or_default(),
        )
    } else {
        let list: Vec<Value> = events
            .iter()
            .map(|&k| event_json(rng, k, &v, spec, true, timestamp))
            .collect();
        let body = json!({"batch": list, "sentAt": timestamp});
        ("/v1/batch", serde_json::to_vec(&body).unwrap_or_default())
    };
    let plain_slots = marker_offsets(&plain);
    debug_assert_eq!(plain_slots.len(), events.len());
    for &s in &plain_slots {
        plain[s..s + ID_DIGITS].copy_from_slice(&id_digits(0));
    }
    let gzip = !single && rng.chance(spec.gzip_share);
    let head = request_head(path, spec, ua, &ip, opted_out, gzip);
    Ok(Template {
        head,
        body: plain,
        slots: plain_slots,
        gzip,
        events,
        opted_out,
        single,
    })
}

/// Builds the run's templates.
pub fn generate(spec: &TrafficSpec) -> Result<Vec<Template>, TrafficError> {
    let mut rng = Rng::new(spec.seed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let timestamp = iso8601(now);
    (0..spec.templates.max(1))
        .map(|_| template(&mut rng, spec, &timestamp))
        .collect()
}

/// `YYYY-MM-DDTHH:MM:SSZ` for seconds since the epoch (UTC, proleptic
/// Gregorian; civil-from-days after Howard Hinnant).
pub fn iso8601(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let mut s = String::with_capacity(20);
    let _ = write!(
        s,
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    );
    s
}

/// Decompresses a gzip body (for tests and checks).
pub fn gunzip(data: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut d = flate2::write::GzDecoder::new(Vec::new());
    d.write_all(data)?;
    d.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(requests: RequestMix, gzip_share: f64) -> TrafficSpec {
        TrafficSpec {
            requests,
            events: EventMix::default(),
            batch_size: 50,
            pii_share: 0.5,
            optout_share: 0.25,
            gzip_share,
            write_key: "wk".into(),
            host: "127.0.0.1:1".into(),
            templates: 40,
            run_tag: "lt0badf00d".into(),
            seed: 7,
        }
    }

    fn split(req: &[u8]) -> (String, &[u8]) {
        let end = find(req, b"\r\n\r\n").unwrap() + 4;
        (String::from_utf8(req[..end].to_vec()).unwrap(), &req[end..])
    }

    fn ids_of(body: &Value) -> Vec<String> {
        let events = match body.get("batch") {
            Some(Value::Array(a)) => a.clone(),
            _ => vec![body.clone()],
        };
        events
            .iter()
            .map(|e| e["messageId"].as_str().unwrap().to_string())
            .collect()
    }

    #[test]
    fn rendered_requests_carry_consecutive_unique_ids_and_exact_length() {
        let s = spec(RequestMix::default(), 0.0);
        let templates = generate(&s).unwrap();
        let mut buf = Vec::new();
        let mut r = Renderer::default();
        let mut next = 5u64;
        for t in &templates {
            t.render(next, &mut r, &mut buf).unwrap();
            let (head, body) = split(&buf);
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            let v: Value = serde_json::from_slice(body).unwrap();
            let want: Vec<String> = (0..t.events.len() as u64)
                .map(|k| message_id(&s.run_tag, next + k))
                .collect();
            assert_eq!(ids_of(&v), want);
            next += t.events.len() as u64;
        }
    }

    #[test]
    fn gzip_bodies_are_valid_streams_with_fresh_ids() {
        let s = spec(
            RequestMix {
                single: 0,
                batch: 1,
            },
            1.0,
        );
        let templates = generate(&s).unwrap();
        assert!(templates.iter().all(Template::is_gzip));
        let mut buf = Vec::new();
        let mut r = Renderer::default();
        for (i, t) in templates.iter().enumerate() {
            let first = 0xabc_0000_0000 + (i as u64) * 1000;
            t.render(first, &mut r, &mut buf).unwrap();
            let (head, body) = split(&buf);
            assert!(head.contains("Content-Encoding: gzip\r\n"));
            assert!(head.contains(&format!("Content-Length: {}\r\n", body.len())));
            assert!(body.len() < t.wire_len() / 3, "compressed");
            let plain = gunzip(body).expect("valid gzip with a matching CRC");
            let v: Value = serde_json::from_slice(&plain).unwrap();
            assert_eq!(ids_of(&v)[0], message_id(&s.run_tag, first));
            assert_eq!(ids_of(&v).len(), 50);
            assert_eq!(
                ids_of(&v)[49],
                message_id(&s.run_tag, first + 49),
                "template {i}"
            );
        }
    }

    #[test]
    fn batches_have_types_and_singles_use_typed_endpoints() {
        let s = spec(RequestMix::default(), 0.0);
        let mut buf = Vec::new();
        let mut r = Renderer::default();
        for t in generate(&s).unwrap() {
            t.render(0, &mut r, &mut buf).unwrap();
            let (head, body) = split(&buf);
            let v: Value = serde_json::from_slice(body).unwrap();
            if t.single {
                assert_eq!(t.events.len(), 1);
                assert!(v.get("type").is_none());
                assert!(head.starts_with(&format!("POST {} ", single_path(t.events[0]))));
            } else {
                assert!(head.starts_with("POST /v1/batch "));
                let batch = v["batch"].as_array().unwrap();
                for (e, k) in batch.iter().zip(&t.events) {
                    assert_eq!(e["type"], k.type_name());
                    if *k == EventKind::Click {
                        assert!(CLICK_NAMES.contains(&e["event"].as_str().unwrap()));
                    }
                }
            }
            assert_eq!(head.contains("Sec-GPC: 1\r\n"), t.opted_out);
            assert!(head.contains("X-Forwarded-For: "));
        }
    }

    #[test]
    fn mixes_parse_and_shares_are_honoured() {
        let m: RequestMix = "single=80, batch=20".parse().unwrap();
        assert_eq!((m.single, m.batch), (80, 20));
        assert!("single=0".parse::<RequestMix>().is_err());
        assert!("double=1".parse::<RequestMix>().is_err());
        assert!("single".parse::<RequestMix>().is_err());
        let e: EventMix = "page=1".parse().unwrap();
        assert_eq!((e.page, e.click, e.track, e.identify), (1, 0, 0, 0));

        let mut s = spec("single=1".parse().unwrap(), 0.0);
        s.templates = 2000;
        s.optout_share = 0.1;
        let t = generate(&s).unwrap();
        assert!(t.iter().all(|t| t.single));
        let opted = t.iter().filter(|t| t.opted_out).count();
        assert!((120..=280).contains(&opted), "{opted} of 2000 opted out");
        let pages = t.iter().filter(|t| t.events[0] == EventKind::Page).count();
        assert!((850..=1150).contains(&pages), "{pages} of 2000 pages");
    }

    #[test]
    fn message_ids_round_trip() {
        let id = message_id("lt01", 0x1234);
        assert_eq!(id, "lt01-000000001234");
        assert_eq!(parse_message_id("lt01", &id), Some(0x1234));
        assert_eq!(parse_message_id("lt02", &id), None);
        assert_eq!(parse_message_id("lt01", "lt01-12"), None);
    }

    #[test]
    fn iso8601_dates() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601(1_767_225_599), "2025-12-31T23:59:59Z");
    }
}
