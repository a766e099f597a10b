//! trackgate: a user-activity tracking ingestion gateway.
//!
//! An event walks one way through these modules:
//! `http` (routes, auth, CORS, body decoding) → `decode` (batch split) →
//! `event` (validation) → `normalize` (server-side enrichment) → `privacy` →
//! `route` (topic and key) → `sink::kafka` (producer). `ingest` runs the
//! stages for one request; `server` owns listeners and shutdown. `limits`
//! (rate and concurrency limits, idle connections, JSON depth) guards the
//! HTTP layer; `bots` tags or drops bot events between `normalize` and
//! `privacy`; `quality` (duplicates, tracking plans, enrichment) runs after
//! `privacy`. Every stage works on one tree per event, `json`: parsed once
//! borrowing its strings from the request body, changed in place, and
//! written once into the record, copying the untouched strings as they are.

pub mod admission;
pub mod bots;
pub mod config;
pub mod consumer;
pub mod decode;
pub mod event;
#[doc(hidden)]
pub mod fuzzing;
pub mod http;
pub mod ingest;
pub mod inspect;
pub mod json;
pub mod limits;
pub mod load;
pub mod metrics;
pub mod normalize;
pub mod owned;
pub mod privacy;
pub mod probe;
pub mod quality;
pub mod reload;
pub mod route;
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod spool;
pub mod tail;
