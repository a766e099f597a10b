//! Bot detection: the user agent of every valid, normalized event is
//! matched against a list of bot patterns (crawlers, link-preview fetchers,
//! headless browsers, HTTP libraries, monitoring probes), and the source's
//! policy decides: `tag` (default) sets `context.bot = true`, `drop` drops
//! the event (counted as dropped with reason `bot`), `allow` does nothing.
//!
//! The user agent is `context.userAgent` after normalization: the one the
//! event carries (a server-side relay forwards its visitor's), else the
//! request's `User-Agent` header. An event without one is not a bot.
//! Server-side sources whose own HTTP library is the user agent would be
//! tagged: give them `bots = "allow"`.
//!
//! The built-in list is `src/bots_patterns.txt` (format described there);
//! `[bots] extra_patterns` and `patterns_file` add to it. All patterns are
//! compiled into one case-insensitive regular expression, so an event costs
//! one scan of its user agent. Tagging never drops: the SDK's own
//! end-to-end tests run in HeadlessChrome and must still reach Kafka.

use std::collections::HashMap;

use crate::json::Value;
use regex::{Regex, RegexBuilder};

pub use crate::config::{BotPolicy, BotsConfig, SourceKind};
use crate::config::{Config, ConfigError};
use crate::event::Event;
use crate::metrics;

/// The built-in patterns.
pub const BUILTIN_PATTERNS: &str = include_str!("bots_patterns.txt");
/// Reason label of events dropped by the `drop` policy.
pub const REASON_BOT: &str = "bot";
/// Key set in `context` on bot events under the `tag` policy.
pub const CONTEXT_KEY: &str = "bot";
/// Size limit of the compiled expression (the built-in list needs a
/// fraction of it; the limit stops a pathological configured pattern).
const REGEX_SIZE_LIMIT: usize = 32 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum BotsError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{origin}: `{pattern}` is not a valid regular expression: {message}")]
    Pattern {
        origin: String,
        pattern: String,
        message: String,
    },
}

/// Checks `[bots]` by compiling it; the error names the offending key.
pub fn check(config: &Config) -> Result<(), ConfigError> {
    BotDetector::from_config(&config.bots)
        .map(|_| ())
        .map_err(|e| {
            let key = match &e {
                BotsError::Io { .. } => "bots.patterns_file".to_string(),
                BotsError::Pattern { origin, .. } => origin.clone(),
            };
            ConfigError::Key {
                key,
                message: e.to_string(),
            }
        })
}

/// The compiled pattern list.
#[derive(Debug, Clone)]
pub struct BotDetector {
    /// Every pattern.
    bots: Regex,
    /// The patterns without the generic HTTP clients (for server sources).
    crawlers: Regex,
    /// Text removed before `bots` is tried (device names with bot words).
    exceptions: Option<Regex>,
}

#[derive(Default)]
struct PatternList {
    bots: Vec<String>,
    /// Generic HTTP clients (`~` lines): bots for browser sources only.
    clients: Vec<String>,
    exceptions: Vec<String>,
}

/// What a line of a patterns file is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Line {
    Bot,
    Client,
    Exception,
}

impl PatternList {
    /// Adds the lines of a patterns file; `origin` names it in errors.
    /// `checked`: each pattern is compiled alone first, so an error names it
    /// (the built-in list is unit-tested and skips that: compiling 200
    /// patterns one by one would cost more than the list itself, at every
    /// configuration load and reload).
    fn add_lines(&mut self, text: &str, origin: &str, checked: bool) -> Result<(), BotsError> {
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let origin = format!("{origin} line {}", n + 1);
            let (pattern, kind) = if let Some(exc) = line.strip_prefix('!') {
                (exc.trim(), Line::Exception)
            } else if let Some(client) = line.strip_prefix('~') {
                (client.trim(), Line::Client)
            } else {
                (line, Line::Bot)
            };
            if checked {
                self.add(pattern, kind, &origin)?;
            } else {
                self.push(pattern, kind);
            }
        }
        Ok(())
    }

    fn add(&mut self, pattern: &str, kind: Line, origin: &str) -> Result<(), BotsError> {
        // Compiled alone first, so an error names the pattern.
        compile(&[pattern.to_string()]).map_err(|e| BotsError::Pattern {
            origin: origin.to_string(),
            pattern: pattern.to_string(),
            message: e.to_string(),
        })?;
        self.push(pattern, kind);
        Ok(())
    }

    fn push(&mut self, pattern: &str, kind: Line) {
        let list = match kind {
            Line::Exception => &mut self.exceptions,
            Line::Client => &mut self.clients,
            Line::Bot => &mut self.bots,
        };
        list.push(pattern.to_string());
    }
}

fn compile(patterns: &[String]) -> Result<Regex, regex::Error> {
    let joined = patterns
        .iter()
        .map(|p| format!("(?:{p})"))
        .collect::<Vec<_>>()
        .join("|");
    RegexBuilder::new(&joined)
        .case_insensitive(true)
        .size_limit(REGEX_SIZE_LIMIT)
        .build()
}

impl BotDetector {
    /// The built-in list only.
    pub fn builtin() -> BotDetector {
        BotDetector::from_config(&BotsConfig::default())
            .expect("the built-in bot patterns compile (unit-tested)")
    }

    /// The built-in list plus the configured patterns.
    pub fn from_config(cfg: &BotsConfig) -> Result<BotDetector, BotsError> {
        let mut list = PatternList::default();
        list.add_lines(BUILTIN_PATTERNS, "built-in bot patterns", false)?;
        if let Some(path) = &cfg.patterns_file {
            let text = std::fs::read_to_string(path).map_err(|source| BotsError::Io {
                path: path.display().to_string(),
                source,
            })?;
            list.add_lines(&text, "bots.patterns_file", true)?;
        }
        for (i, p) in cfg.extra_patterns.iter().enumerate() {
            list.add(p, Line::Bot, &format!("bots.extra_patterns[{i}]"))?;
        }
        let err = |e: regex::Error| BotsError::Pattern {
            origin: "bot patterns".into(),
            pattern: "(all patterns together)".into(),
            message: e.to_string(),
        };
        let all: Vec<String> = list.bots.iter().chain(&list.clients).cloned().collect();
        Ok(BotDetector {
            bots: compile(&all).map_err(err)?,
            crawlers: compile(&list.bots).map_err(err)?,
            exceptions: if list.exceptions.is_empty() {
                None
            } else {
                Some(compile(&list.exceptions).map_err(err)?)
            },
        })
    }

    /// Whether `user_agent` is a bot's, heard by a browser source.
    pub fn is_bot(&self, user_agent: &str) -> bool {
        self.is_bot_for(user_agent, SourceKind::Browser)
    }

    /// Whether `user_agent` is a bot's, heard by a source of `kind`.
    pub fn is_bot_for(&self, user_agent: &str, kind: SourceKind) -> bool {
        let re = match kind {
            SourceKind::Browser => &self.bots,
            SourceKind::Server => &self.crawlers,
        };
        match &self.exceptions {
            Some(exc) if exc.is_match(user_agent) => re.is_match(&exc.replace_all(user_agent, " ")),
            _ => re.is_match(user_agent),
        }
    }
}

/// What the bot stage did with one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotVerdict {
    /// Not a bot, or the source allows bots: the event goes on unchanged.
    Pass,
    /// A bot, tagged `context.bot = true`: the event goes on.
    Tagged,
    /// A bot under the `drop` policy.
    Drop,
}

/// The user agent of one request and, once asked, whether it is a bot's;
/// and what kind of source sent it.
pub struct RequestAgent<'r> {
    ua: Option<&'r str>,
    verdict: Option<bool>,
    kind: SourceKind,
}

impl<'r> RequestAgent<'r> {
    /// A request to a browser source.
    pub fn new(ua: Option<&'r str>) -> RequestAgent<'r> {
        RequestAgent::of_kind(ua, SourceKind::Browser)
    }

    pub fn of_kind(ua: Option<&'r str>, kind: SourceKind) -> RequestAgent<'r> {
        RequestAgent {
            ua,
            verdict: None,
            kind,
        }
    }
}

/// The bot stage for all sources.
#[derive(Debug, Clone)]
pub struct BotStage {
    detector: BotDetector,
    policies: HashMap<String, BotPolicy>,
    kinds: HashMap<String, SourceKind>,
}

impl BotStage {
    /// Compiles the configured patterns. They were validated at load; if the
    /// patterns file became unreadable since, the built-in list is used.
    pub fn new(config: &Config) -> BotStage {
        let detector = BotDetector::from_config(&config.bots).unwrap_or_else(|e| {
            tracing::error!(error = %e, "bot patterns: using the built-in list only");
            BotDetector::builtin()
        });
        BotStage {
            detector,
            policies: config
                .sources
                .iter()
                .map(|s| (s.id.clone(), s.bots))
                .collect(),
            kinds: config
                .sources
                .iter()
                .map(|s| (s.id.clone(), s.kind))
                .collect(),
        }
    }

    /// One request's user agent, to a source (of its kind: `browser` for
    /// an unknown id).
    pub fn agent<'r>(&self, source_id: &str, ua: Option<&'r str>) -> RequestAgent<'r> {
        let kind = self.kinds.get(source_id).copied().unwrap_or_default();
        RequestAgent::of_kind(ua, kind)
    }

    /// The policy of a source (`tag` for an unknown id).
    pub fn policy(&self, source_id: &str) -> BotPolicy {
        self.policies.get(source_id).copied().unwrap_or_default()
    }

    pub fn detector(&self) -> &BotDetector {
        &self.detector
    }

    /// Applies `policy` to one normalized event, in place.
    pub fn apply(&self, ev: &mut Event, policy: BotPolicy) -> BotVerdict {
        self.apply_in(ev, policy, &mut RequestAgent::new(None))
    }

    /// [`BotStage::apply`] for one event of a request whose own user agent
    /// is judged once in `request`: most events carry the request's user
    /// agent, and the patterns cost more than comparing two strings.
    pub fn apply_in(
        &self,
        ev: &mut Event,
        policy: BotPolicy,
        request: &mut RequestAgent<'_>,
    ) -> BotVerdict {
        if policy == BotPolicy::Allow {
            return BotVerdict::Pass;
        }
        let is_bot = ev
            .body
            .get("context")
            .and_then(|c| c.get("userAgent"))
            .and_then(Value::as_str)
            .is_some_and(|ua| match request.ua {
                Some(r) if r == ua => *request
                    .verdict
                    .get_or_insert_with(|| self.detector.is_bot_for(ua, request.kind)),
                _ => self.detector.is_bot_for(ua, request.kind),
            });
        if !is_bot {
            return BotVerdict::Pass;
        }
        if policy == BotPolicy::Drop {
            metrics::bot_event("dropped");
            return BotVerdict::Drop;
        }
        ev.context_mut().insert(CONTEXT_KEY, Value::Bool(true));
        metrics::bot_event("tagged");
        BotVerdict::Tagged
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::json;

    /// Real user agents of bots, one per family.
    const BOTS: &[&str] = &[
        // Search crawlers.
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.118 Mobile Safari/537.36 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Googlebot-Image/1.0",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)",
        "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
        "Mozilla/5.0 (compatible; YandexMetrika/2.0; +http://yandex.com/bots yabs01)",
        "DuckDuckBot/1.1; (+http://duckduckgo.com/duckduckbot.html)",
        "Mozilla/5.0 (compatible; Yahoo! Slurp; http://help.yahoo.com/help/us/ysearch/slurp)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; +http://www.apple.com/go/applebot)",
        "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
        "Mozilla/5.0 (compatible; SeznamBot/4.0; +https://o-seznam.cz/napoveda/vyhledavani/en/seznambot-crawler/)",
        "Mozilla/5.0 (compatible; Qwantify/2.4w; +https://www.qwant.com/)/2.4w",
        "Mozilla/5.0 (compatible; Yeti/1.1; +https://naver.me/spd)",
        "Mozilla/5.0 (Linux; Android 7.0;) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
        // SEO and AI crawlers.
        "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
        "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
        "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ChatGPT-User/1.0; +https://openai.com/bot)",
        "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
        "CCBot/2.0 (https://commoncrawl.org/faq/)",
        "Mozilla/5.0 (Linux; Android 5.0) AppleWebKit/537.36 (KHTML, like Gecko) Mobile Safari/537.36 (compatible; Bytespider; spider-feedback@bytedance.com)",
        "ia_archiver (+http://www.alexa.com/site/help/webmasters; crawler@alexa.com)",
        "Mozilla/5.0 (compatible; archive.org_bot +http://archive.org/details/archive.org_bot)",
        "Scrapy/2.11.0 (+https://scrapy.org)",
        // Link previews.
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Twitterbot/1.0",
        "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
        "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0",
        "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5",
        // Headless browsers and audit tools.
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
        "Mozilla/5.0 (Linux; Android 11; moto g power (2022)) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/119.0.0.0 Mobile Safari/537.36 Chrome-Lighthouse",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 PTST/240502.150513",
        "W3C_Validator/1.3 http://validator.w3.org/services",
        // HTTP libraries and tools.
        "curl/8.5.0",
        "Wget/1.21.4",
        "python-requests/2.31.0",
        "Python-urllib/3.11",
        "Python/3.11 aiohttp/3.9.3",
        "python-httpx/0.27.0",
        "Go-http-client/1.1",
        "Go-http-client/2.0",
        "Java/17.0.2",
        "Apache-HttpClient/4.5.14 (Java/17.0.2)",
        "axios/1.6.8",
        "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
        "undici",
        "node",
        "libwww-perl/6.72",
        "GuzzleHttp/7",
        "Ruby",
        "Faraday v2.9.0",
        "PostmanRuntime/7.37.3",
        "insomnia/2023.5.8",
        "HTTPie/3.2.2",
        "Mozilla/5.0 (Windows NT; Windows NT 10.0; en-US) WindowsPowerShell/5.1.22621.2506",
        "k6/0.50.0 (https://k6.io/)",
        "ApacheBench/2.3",
        // Monitoring and health probes.
        "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
        "Mozilla/5.0 (compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; StatusCake) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36",
        "Site24x7",
        "NewRelicPinger/1.0 (2154285)",
        "Datadog/Synthetics",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36 RuxitSynthetic/1.0 v11185 t5741226488461187074",
        "check_http/v2.3.3 (nagios-plugins 2.3.3)",
        "Zabbix",
        "kube-probe/1.29",
        "ELB-HealthChecker/2.0",
        "GoogleHC/1.0",
        "Amazon-Route53-Health-Check-Service (ref 4dbb5ef0-aaaa-4ee5-bbbb-0123456789ab; report http://amzn.to/1vsZADi)",
        "Blackbox Exporter/0.25.0",
    ];

    /// Real user agents of people's browsers and apps.
    const BROWSERS: &[&str] = &[
        // Chrome: Windows, macOS, Linux, Android, iOS.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1",
        // Firefox: Windows, macOS, Linux, Android, iOS.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14.4; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        "Mozilla/5.0 (Android 14; Mobile; rv:125.0) Gecko/125.0 Firefox/125.0",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) FxiOS/125.0 Mobile/15E148 Safari/605.1.15",
        // Safari: iOS, iPadOS, macOS.
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/16.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 Safari/605.1.15",
        // Edge: Windows, Android, iOS.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.80",
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36 EdgA/124.0.2478.64",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.0 EdgiOS/124.2478.71 Mobile/15E148 Safari/605.1.15",
        // Samsung Internet.
        "Mozilla/5.0 (Linux; Android 13; SAMSUNG SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 Chrome/117.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 14; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/25.0 Chrome/121.0.0.0 Mobile Safari/537.36",
        // Other browsers.
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36 OPR/109.0.0.0",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/122.0.0.0 YaBrowser/24.4.0.0 Safari/537.36",
        "Mozilla/5.0 (Linux; U; Android 10; en-US; RMX2020 Build/QP1A.190711.020) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/100.0.4896.58 UCBrowser/13.4.0.1306 Mobile Safari/537.36",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) coc_coc_browser/120.0.238 Chrome/114.0.5735.238 Safari/537.36",
        "Mozilla/5.0 (Linux; Android 12; SM-G991B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/110.0.0.0 Mobile Safari/537.36 baiduboxapp/13.32.0.10",
        // Devices whose names contain a bot word.
        "Mozilla/5.0 (Linux; Android 10; CUBOT_X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 9; CUBOT KINGKONG 5 Pro Build/PPR1.180610.011) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/98.0.4758.101 Mobile Safari/537.36",
        // In-app browsers and web views.
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBDV/iPhone14,5;FBMD/iPhone;FBSN/iOS;FBSV/17.4;FBSS/3;FBID/phone;FBLC/en_US;FBOP/5]",
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 329.0.0.41.93 (iPhone14,5; iOS 17_4; en_US; en; scale=3.00; 1170x2532; 588455285)",
        "Mozilla/5.0 (Linux; Android 13; Pixel 7 Build/TQ3A.230805.001; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/124.0.6367.82 Mobile Safari/537.36",
        "Mozilla/5.0 (Linux; Android 9; AFTMM Build/PS7233; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/108.0.5359.160 Mobile Safari/537.36",
        "Mozilla/5.0 (SMART-TV; Linux; Tizen 6.0) AppleWebKit/537.36 (KHTML, like Gecko) 76.0.3809.146/6.0 TV Safari/537.36",
        // Mobile app network stacks.
        "Dalvik/2.1.0 (Linux; U; Android 13; SM-S918B Build/TP1A.220624.014)",
        "MyShop/4.2.1 (iPhone; iOS 17.4; Scale/3.00) CFNetwork/1494.0.7 Darwin/23.4.0",
        "okhttp/4.12.0",
        "Dart/3.3 (dart:io)",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Slack/4.38.125 Chrome/124.0.6367.60 Electron/30.0.0 Safari/537.36 Sonic Slack_SSB/4.38.125",
    ];

    #[test]
    fn every_builtin_pattern_compiles_on_its_own() {
        // The built-in list is not checked pattern by pattern at load.
        let mut checked = PatternList::default();
        checked
            .add_lines(BUILTIN_PATTERNS, "built-in bot patterns", true)
            .unwrap();
        assert!(checked.bots.len() > 100);
    }

    #[test]
    fn every_bot_family_is_detected() {
        let d = BotDetector::builtin();
        let missed: Vec<_> = BOTS.iter().filter(|ua| !d.is_bot(ua)).collect();
        assert!(missed.is_empty(), "not detected: {missed:#?}");
    }

    #[test]
    fn no_false_positives_on_real_browsers() {
        let d = BotDetector::builtin();
        let flagged: Vec<_> = BROWSERS.iter().filter(|ua| d.is_bot(ua)).collect();
        assert!(flagged.is_empty(), "browsers flagged as bots: {flagged:#?}");
        assert!(!d.is_bot(""));
    }

    #[test]
    fn exceptions_do_not_hide_a_real_bot_word() {
        let d = BotDetector::builtin();
        assert!(d.is_bot("CUBOT_X30 Googlebot/2.1"));
    }

    #[test]
    fn configured_patterns_extend_the_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bots.txt");
        std::fs::write(&file, "# ours\ninternal-prober\n!acme-robot-vacuum\n").unwrap();
        let cfg = BotsConfig {
            extra_patterns: vec!["^MyCompanyScanner/\\d".into()],
            patterns_file: Some(file),
        };
        let d = BotDetector::from_config(&cfg).unwrap();
        assert!(d.is_bot("mycompanyscanner/2"));
        assert!(d.is_bot("Internal-Prober 1.0"));
        assert!(!d.is_bot("Mozilla/5.0 (acme-robot-vacuum) Chrome/1"));
        assert!(!BotDetector::builtin().is_bot("mycompanyscanner/2"));
    }

    #[test]
    fn bad_patterns_name_their_key() {
        let cfg = |extra: &str| {
            crate::load::from_toml(&format!(
                "[bots]\n{extra}\n[[sources]]\nid = \"w\"\nwrite_key = \"k\"\n"
            ))
        };
        let err = cfg("extra_patterns = [\"ok\", \"(unclosed\"]")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bots.extra_patterns[1]"), "{err}");
        let err = cfg("patterns_file = \"/nonexistent/bots.txt\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("bots.patterns_file"), "{err}");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bots.txt");
        std::fs::write(&file, "fine\n\n[broken\n").unwrap();
        let err = cfg(&format!("patterns_file = {:?}", file.display().to_string()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 3"), "{err}");
    }

    fn stage(policy: &str) -> BotStage {
        let c = Config::from_toml(&format!(
            "[[sources]]\nid = \"w\"\nwrite_key = \"k\"\nbots = \"{policy}\"\n"
        ))
        .unwrap();
        BotStage::new(&c)
    }

    fn event(ua: &str) -> Event<'_> {
        let Value::Object(m) = json!({"type":"page","anonymousId":"a","context":{"userAgent": ua}})
        else {
            unreachable!()
        };
        Event::from_object(m, None).unwrap()
    }

    #[test]
    fn policies_tag_drop_and_allow() {
        let headless = BOTS
            .iter()
            .find(|ua| ua.contains("HeadlessChrome"))
            .unwrap();
        let tag = stage("tag");
        assert_eq!(tag.policy("w"), BotPolicy::Tag);
        let mut e = event(headless);
        assert_eq!(tag.apply(&mut e, BotPolicy::Tag), BotVerdict::Tagged);
        assert_eq!(e.body["context"]["bot"], true);
        let mut human = event(BROWSERS[0]);
        assert_eq!(tag.apply(&mut human, BotPolicy::Tag), BotVerdict::Pass);
        assert!(human.body["context"].get("bot").is_none());

        let drop = stage("drop");
        assert_eq!(drop.policy("w"), BotPolicy::Drop);
        assert_eq!(
            drop.apply(&mut event(headless), BotPolicy::Drop),
            BotVerdict::Drop
        );

        let allow = stage("allow");
        assert_eq!(allow.policy("w"), BotPolicy::Allow);
        let mut e = event(headless);
        assert_eq!(allow.apply(&mut e, BotPolicy::Allow), BotVerdict::Pass);
        assert!(e.body["context"].get("bot").is_none());

        // No user agent at all: not a bot.
        let Value::Object(m) = json!({"type":"page","anonymousId":"a"}) else {
            unreachable!()
        };
        let mut bare = Event::from_object(m, None).unwrap();
        assert_eq!(tag.apply(&mut bare, BotPolicy::Tag), BotVerdict::Pass);
    }

    #[test]
    fn a_server_sources_own_http_library_is_not_a_bot() {
        // Real user agents of server-side libraries posting their own events
        // (Segment's analytics-python sends python-requests', the Node one
        // axios' or node-fetch's).
        let servers = [
            "python-requests/2.31.0",
            "axios/1.6.7",
            "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
            "Go-http-client/1.1",
            "Java/17.0.2",
            "curl/8.4.0",
        ];
        let c = Config::from_toml(
            "[[sources]]\nid = \"srv\"\nwrite_key = \"k1\"\nkind = \"server\"\n\
             [[sources]]\nid = \"web\"\nwrite_key = \"k2\"\n",
        )
        .unwrap();
        let stage = BotStage::new(&c);
        for ua in servers {
            let mut e = event(ua);
            let mut req = stage.agent("srv", Some(ua));
            assert_eq!(
                stage.apply_in(&mut e, BotPolicy::Tag, &mut req),
                BotVerdict::Pass,
                "{ua}"
            );
            assert!(e.body["context"].get("bot").is_none());
            // The same agent at a browser source is a bot.
            let mut req = stage.agent("web", Some(ua));
            assert_eq!(
                stage.apply_in(&mut event(ua), BotPolicy::Tag, &mut req),
                BotVerdict::Tagged,
                "{ua}"
            );
        }
        // A crawler's user agent forwarded by a server source still is one.
        let googlebot = BOTS[0];
        let mut req = stage.agent("srv", Some("python-requests/2.31.0"));
        assert_eq!(
            stage.apply_in(&mut event(googlebot), BotPolicy::Tag, &mut req),
            BotVerdict::Tagged
        );
        // Every generic client is still a bot for browser sources.
        let d = BotDetector::builtin();
        for ua in servers {
            assert!(
                d.is_bot(ua) && !d.is_bot_for(ua, SourceKind::Server),
                "{ua}"
            );
        }
    }

    #[test]
    fn the_request_verdict_serves_only_events_with_the_requests_user_agent() {
        let headless = BOTS
            .iter()
            .find(|ua| ua.contains("HeadlessChrome"))
            .unwrap();
        let tag = stage("tag");
        // A bot's request: its events are tagged, one naming a browser's
        // own user agent is judged on that one.
        let mut req = RequestAgent::new(Some(headless));
        for _ in 0..3 {
            let mut e = event(headless);
            assert_eq!(
                tag.apply_in(&mut e, BotPolicy::Tag, &mut req),
                BotVerdict::Tagged
            );
        }
        assert_eq!(req.verdict, Some(true));
        let mut own = event(BROWSERS[0]);
        assert_eq!(
            tag.apply_in(&mut own, BotPolicy::Tag, &mut req),
            BotVerdict::Pass
        );
        // A browser's request: an event carrying a bot's user agent is
        // still caught.
        let mut req = RequestAgent::new(Some(BROWSERS[0]));
        let mut e = event(BROWSERS[0]);
        assert_eq!(
            tag.apply_in(&mut e, BotPolicy::Tag, &mut req),
            BotVerdict::Pass
        );
        let mut e = event(headless);
        assert_eq!(
            tag.apply_in(&mut e, BotPolicy::Tag, &mut req),
            BotVerdict::Tagged
        );
    }

    #[test]
    fn default_policy_is_tag() {
        let c = Config::from_toml("[[sources]]\nid = \"w\"\nwrite_key = \"k\"\n").unwrap();
        assert_eq!(c.sources[0].bots, BotPolicy::Tag);
        assert_eq!(BotStage::new(&c).policy("unknown"), BotPolicy::Tag);
    }
}
