//! The privacy stage: runs on every valid, normalized event before routing,
//! so nothing later in the pipeline (routing, the producer, Kafka) ever sees
//! data this stage removed.
//!
//! Order of operations for one request (see `docs/privacy.md`):
//! 1. auth, then limits (HTTP layer: unknown write keys and oversized
//!    requests never reach this stage);
//! 2. opt-out decision: the request's `tg_optout=1` cookie, `Sec-GPC` and
//!    `DNT` under the source's policy ([`PrivacyStage::request_verdict`],
//!    before any event is parsed), then per event the suppression list
//!    (`anonymousId`, `userId`, an alias's `previousId`) and
//!    `context.privacy.gpc` ([`policy::decide`]). Dropped events produce
//!    nothing anywhere, not even on the invalid topic;
//! 3. GeoIP lookup on the raw client address (`context.geo`);
//! 4. IP anonymization: `context.ip` as the source's `ip` mode says
//!    (`normalize` wrote the raw address; it is replaced or removed here);
//! 5. PII scrubbing (the `privacy::scrub` engine, per source): every
//!    field, identity fields included (an id that is personal data becomes
//!    a keyed pseudonym, so the record key taken from it later is one too,
//!    or the event is rejected under `identity_pii = "reject"`);
//! 6. routing and producing (`route`, `sink`).
//!
//! `anonymize` (GPC or DNT under that policy) keeps the event but removes
//! `anonymousId`, `userId`, `previousId`, `traits`, `context.traits`,
//! `context.device.{id,advertisingId,token}` and the address, keeps the
//! country only, marks `context.privacy.anonymized = "<reason>"`, and the
//! record gets a random key (the visitor key is gone).
//!
//! Rejected events: their record on the invalid topic follows
//! `privacy.invalid_payload` (see [`config::InvalidPayload`]); by default
//! the payload is kept only after the same IP and PII rules ran on it, and
//! is otherwise omitted. A rejected event whose ids are on the list, or
//! that the policy drops, is dropped instead.
//!
//! Cost on the hot path with nothing to do (default policy, no signals, no
//! GeoIP): one hash-map look-up of the source, a few map look-ups, and the
//! truncated address written into the existing string — no allocation
//! (`tests/privacy_hot_path.rs`), about 1.3 k instructions per event against
//! ~22 k for parsing and normalizing it (`examples/privacy_stage_cost.rs`).
//! The opt-out list is skipped while empty and otherwise costs a read lock
//! and up to four hash probes.

pub mod config;
pub mod geo;
pub mod ids;
pub mod ip;
pub mod mmdb;
pub mod optout;
pub mod policy;
mod rejected;
pub mod scrub;
pub mod signals;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::json::{Map, Value};
use tokio::sync::watch;

use crate::config::Config;
use crate::event::{Event, RejectReason};
use crate::metrics;
use crate::normalize::RequestMeta;
pub use crate::owned;
use config::{InvalidPayload, IpMode};
use geo::{Detail, GeoIp};
use optout::{IdKind, OptOutError, OptOutList, OptOutWriter, Proof};
use policy::{decide, Action, Decision, EventSignals, Reason, SourcePolicy};
use scrub::{IdentityPii, ScrubConfig, ScrubError, ScrubOutcome, Scrubber};
pub use signals::RequestSignals;

/// Top-level fields removed from an anonymized event.
const ANONYMIZED_FIELDS: [&str; 4] = ["userId", "anonymousId", "previousId", "traits"];
/// `context` fields removed from an anonymized event (besides the address).
const ANONYMIZED_CONTEXT_FIELDS: [&str; 2] = ["traits", "ipHash"];
/// `context.device` fields removed from an anonymized event.
const ANONYMIZED_DEVICE_FIELDS: [&str; 3] = ["id", "advertisingId", "token"];

/// What the privacy stage decided for one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Produce the (possibly modified) event.
    Keep,
    /// Drop the event by policy; the reason is a metric label.
    Drop(&'static str),
    /// Reject the event (to the invalid topic, with
    /// [`PrivacyStage::rejected_payload`]): an identity field held personal
    /// data under `identity_pii = "reject"`.
    Reject(RejectReason),
}

/// What becomes of a rejected event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rejected {
    /// Dropped by policy (opt-out, GPC or DNT): nothing is written.
    Drop(&'static str),
    /// Reported on the invalid topic, with the payload when one may be kept.
    Report(Option<String>),
}

#[derive(Debug, thiserror::Error)]
pub enum PrivacyError {
    #[error("config key `privacy.geoip_database`: {0}")]
    GeoIp(#[from] geo::GeoError),
    #[error(transparent)]
    OptOut(#[from] OptOutError),
    #[error("cannot start a privacy thread: {0}")]
    Thread(std::io::Error),
    #[error("PII scrubber: {0}")]
    Scrub(#[from] ScrubError),
}

/// One source's rules, resolved once at start.
#[derive(Debug, Clone, Default)]
struct SourceRules {
    policy: SourcePolicy,
    /// Consent categories an event must not deny (`required_consent`).
    required_consent: Box<[String]>,
    /// The source's PII scrubber; `None` only for the fallback of an
    /// unknown source id, which gets the default scrubber at build time.
    scrubber: Option<Arc<Scrubber>>,
}

/// The privacy stage for all sources.
pub struct PrivacyStage {
    sources: HashMap<String, SourceRules>,
    fallback: SourceRules,
    optouts: Arc<OptOutList>,
    writer: Option<Arc<OptOutWriter>>,
    geo: Option<Arc<GeoIp>>,
    hasher: Arc<ip::IpHasher>,
    invalid_payload: InvalidPayload,
}

impl std::fmt::Debug for PrivacyStage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivacyStage")
            .field("sources", &self.sources)
            .field("optouts", &self.optouts.len())
            .field("geo", &self.geo)
            .finish()
    }
}

/// The stage's background threads (GeoIP reload, opt-out follower).
#[derive(Debug, Default)]
pub struct PrivacyWorkers {
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl PrivacyWorkers {
    /// Waits for the threads; they end when the stop signal turns true.
    pub fn join(self) {
        for h in self.handles {
            let _ = h.join();
        }
    }
}

impl PrivacyStage {
    /// A stage without a broker: geo from the configuration, an opt-out list
    /// that only this process fills (nothing is written or followed).
    pub fn local(config: &Config) -> Result<PrivacyStage, PrivacyError> {
        let geo = match config.privacy.geoip_path() {
            Some(p) => Some(Arc::new(GeoIp::open(p)?)),
            None => None,
        };
        PrivacyStage::build(
            config,
            Arc::new(OptOutList::new_loaded(optout::Bounds::from(
                &config.privacy,
            ))),
            None,
            geo,
        )
    }

    /// The stage with the per-source rules of `config` (a configuration
    /// reload). The opt-out list and its writer, the GeoIP database and the
    /// IP-hashing key are this stage's, shared.
    pub fn reconfigured(&self, config: &Config) -> Result<PrivacyStage, PrivacyError> {
        let mut stage = PrivacyStage::build(config, self.optouts.clone(), None, self.geo.clone())?;
        stage.writer = self.writer.clone();
        stage.hasher = self.hasher.clone();
        Ok(stage)
    }

    fn build(
        config: &Config,
        optouts: Arc<OptOutList>,
        writer: Option<OptOutWriter>,
        geo: Option<Arc<GeoIp>>,
    ) -> Result<PrivacyStage, PrivacyError> {
        let sources = config
            .sources
            .iter()
            .map(|s| {
                let scrubber = Scrubber::new(&s.privacy.scrub)?;
                if scrubber.enabled()
                    && scrubber.identity_policy() != IdentityPii::Keep
                    && scrubber.ephemeral_pseudonyms()
                {
                    tracing::warn!(
                        source = %s.id,
                        "no pseudonym_secret or pseudonym_secret_env: identity pseudonyms use a \
                         random per-process key and differ between instances and restarts"
                    );
                }
                Ok((
                    s.id.clone(),
                    SourceRules {
                        policy: SourcePolicy::from(&s.privacy),
                        required_consent: s.privacy.required_consent.clone().into(),
                        scrubber: Some(Arc::new(scrubber)),
                    },
                ))
            })
            .collect::<Result<_, ScrubError>>()?;
        let fallback = SourceRules {
            policy: SourcePolicy::default(),
            required_consent: Box::default(),
            scrubber: Some(Arc::new(Scrubber::new(&ScrubConfig::default())?)),
        };
        Ok(PrivacyStage {
            sources,
            fallback,
            optouts,
            writer: writer.map(Arc::new),
            geo,
            hasher: Arc::new(ip::IpHasher::new()),
            invalid_payload: config.privacy.invalid_payload,
        })
    }

    /// The stage of a running gateway: loads the GeoIP database and starts
    /// its reload thread, creates the opt-out writer and starts the thread
    /// that loads and follows the opt-out topic. Threads end when `stop`
    /// turns true.
    pub fn start(
        config: &Config,
        brokers: &str,
        stop: watch::Receiver<bool>,
    ) -> Result<(PrivacyStage, PrivacyWorkers), PrivacyError> {
        let p = &config.privacy;
        let mut workers = PrivacyWorkers::default();
        let geo = match p.geoip_path() {
            Some(path) => {
                let g = Arc::new(GeoIp::open(path)?);
                tracing::info!(database = %g.describe(), "GeoIP database loaded");
                let interval = Duration::from_millis(p.geoip_reload_interval_ms);
                workers.handles.push(
                    GeoIp::spawn_reloader(g.clone(), interval, stop.clone())
                        .map_err(PrivacyError::Thread)?,
                );
                Some(g)
            }
            None => None,
        };
        let list = Arc::new(OptOutList::new(optout::Bounds::from(p)));
        let writer = OptOutWriter::new(
            &config.kafka,
            brokers,
            &p.optout_topic,
            Duration::from_millis(p.optout_write_timeout_ms),
        )?;
        workers.handles.push(optout::spawn_follower(
            list.clone(),
            optout::FollowerConfig {
                brokers: brokers.to_string(),
                topic: p.optout_topic.clone(),
                kafka: config.kafka.clone(),
            },
            stop,
        )?);
        Ok((
            PrivacyStage::build(config, list, Some(writer), geo)?,
            workers,
        ))
    }

    /// The suppression list.
    pub fn optouts(&self) -> &Arc<OptOutList> {
        &self.optouts
    }

    fn rules(&self, source_id: &str) -> &SourceRules {
        self.sources.get(source_id).unwrap_or(&self.fallback)
    }

    /// The decision on a whole request from its headers alone (cookie, GPC,
    /// DNT), before its `events` events are parsed: `Drop` drops them all,
    /// counted here.
    pub fn request_verdict(&self, meta: &RequestMeta<'_>, events: u64) -> Verdict {
        let s = meta.signals;
        if !(s.optout_cookie || s.gpc || s.dnt) {
            return Verdict::Keep;
        }
        let d = decide(
            &self.rules(meta.source_id).policy,
            EventSignals {
                optout_cookie: s.optout_cookie,
                optout_list: false,
                consent_denied: false,
                gpc: s.gpc,
                dnt: s.dnt,
            },
        );
        match (d.action, d.reason) {
            (Action::Drop, Some(r)) => {
                metrics::privacy_decision(Action::Drop.label(), r.label(), events);
                Verdict::Drop(r.label())
            }
            _ => Verdict::Keep,
        }
    }

    fn decide_event(
        &self,
        rules: &SourceRules,
        body: &Map<'_>,
        meta: &RequestMeta<'_>,
    ) -> Decision {
        let s = |k: &str| body.get(k).and_then(Value::as_str);
        self.decide_with(
            rules,
            body,
            [s("userId"), s("anonymousId"), s("previousId")],
            meta,
        )
    }

    /// The opt-out decision for an event whose identity fields (`userId`,
    /// `anonymousId`, `previousId`) the caller read: as validated strings
    /// for an accepted event, as raw text for a rejected one.
    fn decide_with(
        &self,
        rules: &SourceRules,
        body: &Map<'_>,
        [user, anonymous, previous]: [Option<&str>; 3],
        meta: &RequestMeta<'_>,
    ) -> Decision {
        let listed = !self.optouts.is_empty()
            && self
                .optouts
                .contains(meta.source_id, user, anonymous, previous);
        decide(
            &rules.policy,
            EventSignals {
                optout_cookie: meta.signals.optout_cookie,
                optout_list: listed,
                consent_denied: signals::consent_denied(body, &rules.required_consent),
                gpc: meta.signals.gpc || signals::event_gpc(body),
                dnt: meta.signals.dnt,
            },
        )
    }

    /// Applies the source's privacy rules to one event, in place.
    pub fn apply(&self, ev: &mut Event, meta: &RequestMeta<'_>) -> Verdict {
        self.apply_in(ev, meta, &mut RequestAddress::default())
    }

    /// [`PrivacyStage::apply`] for one event of a request whose client
    /// address is looked up and hashed once, in `address`, for all its
    /// events.
    pub fn apply_in(
        &self,
        ev: &mut Event,
        meta: &RequestMeta<'_>,
        address: &mut RequestAddress,
    ) -> Verdict {
        let rules = self.rules(meta.source_id);
        let policy = &rules.policy;
        let d = self.decide_event(rules, &ev.body, meta);
        if let Some(r) = d.reason {
            metrics::privacy_decision(d.action.label(), r.label(), 1);
        }
        match (d.action, d.reason) {
            (Action::Drop, Some(r)) => return Verdict::Drop(r.label()),
            (Action::Anonymize, Some(r)) => self.anonymize(ev, meta.client_ip, r, address),
            _ => self.locate_and_mask(ev, meta, policy, address),
        }
        let outcome = self.scrub(rules, &mut ev.body);
        let rejects = rules
            .scrubber
            .as_deref()
            .is_some_and(|s| s.identity_policy() == IdentityPii::Reject);
        if rejects && outcome.is_some_and(|o| o.identity_pii) {
            return Verdict::Reject(RejectReason::IdentityPii);
        }
        Verdict::Keep
    }

    /// The invalid-topic payload of an event this stage rejected after
    /// scrubbing it (`text` is the event as received), as
    /// `privacy.invalid_payload` says.
    pub fn rejected_payload(&self, ev: &Event, text: &str) -> Option<String> {
        match self.invalid_payload {
            InvalidPayload::Omit => None,
            InvalidPayload::Raw => Some(text.to_string()),
            InvalidPayload::Scrubbed => Some(crate::json::map_to_string(&ev.body)),
        }
    }

    /// GeoIP on the raw address, then the address as the source's mode says.
    fn locate_and_mask(
        &self,
        ev: &mut Event,
        meta: &RequestMeta<'_>,
        policy: &SourcePolicy,
        address: &mut RequestAddress,
    ) {
        let detail = if policy.geo_coordinates {
            Detail::CityAndCoordinates
        } else {
            Detail::City
        };
        let geo = address
            .located
            .get_or_insert_with(|| {
                self.geo
                    .as_ref()
                    .and_then(|g| g.lookup(meta.client_ip, detail))
            })
            .clone();
        let ctx = ev.context_mut();
        set_geo(ctx, geo);
        if policy.ip != IpMode::Hash {
            // `ipHash` is the gateway's field; a client-sent one is not kept.
            ctx.remove("ipHash");
        }
        match policy.ip {
            IpMode::Keep => {}
            IpMode::Truncate => match ctx.get_mut("ip") {
                Some(Value::String(s)) => ip::write_truncated(meta.client_ip, s.to_mut()),
                _ => {
                    ctx.insert(
                        "ip",
                        Value::String(ip::truncate(meta.client_ip).to_string().into()),
                    );
                }
            },
            IpMode::Hash => {
                ctx.remove("ip");
                let hash = address.hash.get_or_insert_with(|| {
                    let day = ip::utc_day(meta.received_at.timestamp());
                    self.hasher.hash(meta.client_ip, day)
                });
                ctx.insert("ipHash", Value::String(hash.clone().into()));
            }
            IpMode::Drop => {
                ctx.remove("ip");
            }
        }
    }

    /// Removes every identifier; keeps the country.
    fn anonymize(
        &self,
        ev: &mut Event,
        client_ip: IpAddr,
        reason: Reason,
        address: &mut RequestAddress,
    ) {
        for f in ANONYMIZED_FIELDS {
            ev.body.remove(f);
        }
        let geo = address
            .country
            .get_or_insert_with(|| {
                self.geo
                    .as_ref()
                    .and_then(|g| g.lookup(client_ip, Detail::Country))
            })
            .clone();
        let ctx = ev.context_mut();
        strip_context(ctx);
        set_geo(ctx, geo);
        let privacy = ctx.get_or_insert_with("privacy", || Value::Object(Map::new()));
        if !privacy.is_object() {
            *privacy = Value::Object(Map::new());
        }
        if let Value::Object(p) = privacy {
            p.insert("anonymized", Value::String(reason.label().into()));
        }
    }

    /// PII scrubbing of one event by the source's scrubber; what was
    /// removed is recorded as `context.privacy.redactions` (paths and
    /// detector names, never values) and counted per kind. Returns what
    /// the scrubber found, `None` when no scrubber ran (a rejected event's
    /// payload is kept only when one did).
    fn scrub(&self, rules: &SourceRules, body: &mut Map<'_>) -> Option<ScrubOutcome> {
        let scrubber = rules.scrubber.as_deref().filter(|s| s.enabled())?;
        // `Vec::new` does not allocate: the clean path stays allocation-free.
        let mut redactions = Vec::new();
        let outcome = scrubber.scrub_event(body, &mut redactions);
        if redactions.is_empty() {
            return Some(outcome);
        }
        let list: Vec<Value> = redactions
            .iter()
            .map(|r| {
                metrics::redaction(r.kind.label());
                let mut m = Map::with_capacity(2);
                m.insert("path", Value::String(r.path.clone().into()));
                m.insert("kind", Value::String(r.kind.label().into()));
                Value::Object(m)
            })
            .collect();
        let ctx = body.get_or_insert_with("context", || Value::Object(Map::new()));
        if !ctx.is_object() {
            *ctx = Value::Object(Map::new());
        }
        if let Value::Object(ctx) = ctx {
            let privacy = ctx.get_or_insert_with("privacy", || Value::Object(Map::new()));
            if !privacy.is_object() {
                *privacy = Value::Object(Map::new());
            }
            if let Value::Object(p) = privacy {
                p.insert("redactions", Value::Array(list));
            }
        }
        Some(outcome)
    }

    /// Records an opt-out of `ids` for `source`, taken from client
    /// `address`: locally at once (the visitor is suppressed here even if
    /// the broker does not answer), then on the topic. `SourceFull` or
    /// `AddressFull` (nothing recorded) when new public entries would take
    /// the source or the address over its bound (`optout::Bounds`); a
    /// server key's opt-out is never refused.
    pub async fn record_opt_out(
        &self,
        source: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
        address: IpAddr,
    ) -> Result<(), OptOutError> {
        if ids.is_empty() {
            return Ok(());
        }
        if !self.optouts.is_loaded() {
            return Err(OptOutError::Loading);
        }
        let plans = self.optouts.opt_out(source, ids, proof, address)?;
        let records: Vec<(String, Option<String>)> = plans
            .iter()
            .map(|p| {
                (
                    optout::record_key(source, p.kind, &p.digest),
                    Some(optout::record_value(&p.proofs, p.by)),
                )
            })
            .collect();
        match &self.writer {
            Some(w) => w.write(&records).await,
            None => Ok(()),
        }
    }

    /// Records an opt-in of `ids` for `source` when `proof` covers every
    /// listed one (else `ProofRequired`, nothing changes): on the topic
    /// first, then locally once the broker acknowledged it.
    pub async fn record_opt_in(
        &self,
        source: &str,
        ids: &[(IdKind, String)],
        proof: Proof,
    ) -> Result<(), OptOutError> {
        if !self.optouts.is_loaded() {
            return Err(OptOutError::Loading);
        }
        let listed = self.optouts.plan_opt_in(source, ids, proof)?;
        if let (Some(w), false) = (&self.writer, listed.is_empty()) {
            let records: Vec<(String, Option<String>)> = listed
                .iter()
                .map(|(kind, digest)| (optout::record_key(source, *kind, digest), None))
                .collect();
            w.write(&records).await?;
        }
        for (kind, digest) in &listed {
            self.optouts.set(source, *kind, digest, None);
        }
        Ok(())
    }
}

/// What the privacy stage works out once per request from its client
/// address (the same for all its events): the GeoIP results, at the
/// source's detail and at country level for anonymized events, and the
/// address's hash.
#[derive(Debug, Default)]
pub struct RequestAddress {
    located: Option<Option<Map<'static>>>,
    country: Option<Option<Map<'static>>>,
    hash: Option<String>,
}

/// `context.geo` is the gateway's: set from the lookup, or removed (a
/// client-sent one could hold precise coordinates).
fn set_geo(ctx: &mut Map<'_>, geo: Option<Map<'static>>) {
    match geo {
        Some(g) => {
            ctx.insert("geo", Value::Object(g));
        }
        None => {
            ctx.remove("geo");
        }
    }
}

fn strip_context(ctx: &mut Map<'_>) {
    ctx.remove("ip");
    for f in ANONYMIZED_CONTEXT_FIELDS {
        ctx.remove(f);
    }
    if let Some(Value::Object(device)) = ctx.get_mut("device") {
        for f in ANONYMIZED_DEVICE_FIELDS {
            device.remove(f);
        }
    }
}

#[cfg(test)]
mod tests;
