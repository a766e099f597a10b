//! Privacy configuration: the global `[privacy]` table and each source's
//! `[sources.privacy]` table. The types live in `config` with every other
//! section (so `config` depends on no stage for them); this module keeps
//! their `privacy::config` path.

pub use crate::config::{
    CookieSecure, DntPolicy, GpcPolicy, InvalidPayload, IpMode, PrivacyConfig, SourcePrivacyConfig,
};
