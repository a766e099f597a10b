//! Cost of the privacy stage per event, next to the cost of parsing and
//! normalizing the same event, for four configurations.
//!
//! Wall clock (noisy on a shared machine; the best of `ROUNDS` is shown):
//!     cargo run --release --example privacy_stage_cost
//! Instruction counts (stable): run one configuration under callgrind and
//! divide `PrivacyStage::apply`'s inclusive count by `N`:
//!     MODE=0 N=10000 ROUNDS=1 valgrind --tool=callgrind \
//!       --callgrind-out-file=/tmp/cg.out target/release/examples/privacy_stage_cost
//!     callgrind_annotate --inclusive=yes /tmp/cg.out | grep -E 'PrivacyStage::apply$|Event::parse$|normalize$'

use std::time::Instant;

use trackgate::config::Config;
use trackgate::event::Event;
use trackgate::normalize::{normalize, RequestMeta};
use trackgate::privacy::{
    optout::{IdKind, Proof},
    PrivacyStage, RequestSignals,
};

const EVENT: &str = r#"{"type":"track","anonymousId":"anon-123456","userId":"user-42",
    "event":"Order Completed","properties":{"total":12.5,"currency":"EUR","items":3},
    "context":{"library":{"name":"a","version":"1"},
    "page":{"path":"/checkout","url":"https://shop.example/checkout"}}}"#;

fn env(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let n = env("N", 100_000);
    let rounds = env("ROUNDS", 7).max(1);
    let only = std::env::var("MODE").ok();
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("geoip.mmdb");
    let fixture = trackgate::privacy::mmdb::fixture()
        .to_bytes()
        .expect("fixture");
    std::fs::write(&db, fixture).expect("write fixture");
    let geo = format!("geoip_database = {:?}", db.display().to_string());
    let modes: [(&str, &str, &str, usize); 4] = [
        ("default (truncate, no geo, empty list)", "", "", 0),
        ("default, 100k ids on the opt-out list", "", "", 100_000),
        ("ip = hash", "", "ip = \"hash\"", 0),
        ("GeoIP city + truncate", &geo, "", 0),
    ];
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    for (i, (name, global, source, listed)) in modes.into_iter().enumerate() {
        if only.as_ref().is_some_and(|m| *m != i.to_string()) {
            continue;
        }
        let text = format!(
            "[privacy]\n{global}\n[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n[sources.privacy]\n{source}\n"
        );
        let config = Config::from_toml(&text).expect("config");
        let stage = PrivacyStage::local(&config).expect("stage");
        for id in 0..listed {
            rt.block_on(stage.record_opt_out(
                "web",
                &[(IdKind::Anonymous, format!("x{id}"))],
                Proof::ServerKey,
                "81.2.69.160".parse().expect("ip"),
            ))
            .expect("local list");
        }
        let meta = RequestMeta {
            source_id: "web",
            received_at: chrono::Utc::now(),
            client_ip: "81.2.69.160".parse().expect("ip"),
            user_agent: None,
            batch_sent_at: None,
            batch_context: None,
            signals: RequestSignals::default(),
        };
        let prepared = || {
            let mut e = Event::parse(EVENT, None, 1 << 20).expect("valid event");
            normalize(&mut e, &meta, config.limits.clock_skew_window()).expect("normalizes");
            e
        };
        let mut stage_ns = f64::MAX;
        let mut base_ns = f64::MAX;
        for _ in 0..rounds {
            let mut e = prepared();
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(stage.apply(std::hint::black_box(&mut e), &meta));
            }
            stage_ns = stage_ns.min(t.elapsed().as_nanos() as f64 / n as f64);
            let t = Instant::now();
            for _ in 0..n {
                std::hint::black_box(prepared());
            }
            base_ns = base_ns.min(t.elapsed().as_nanos() as f64 / n as f64);
        }
        println!("{name:40} privacy stage {stage_ns:6.0} ns/event   parse+normalize {base_ns:6.0} ns/event");
    }
}
