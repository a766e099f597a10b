//! The privacy stage allocates nothing for an event it has nothing to add
//! to: default policy, no signal, no GeoIP database — with an empty and
//! with a filled opt-out list. Counted by a per-thread counting allocator
//! (this test binary only).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use trackgate::config::Config;
use trackgate::event::Event;
use trackgate::normalize::{normalize, RequestMeta};
use trackgate::privacy::optout::{IdKind, Proof};
use trackgate::privacy::{PrivacyStage, RequestSignals, Verdict};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.alloc(layout)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|c| c.set(c.get() + 1));
        System.realloc(ptr, layout, new_size)
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations_during(f: impl FnOnce()) -> u64 {
    let before = ALLOCATIONS.with(Cell::get);
    f();
    ALLOCATIONS.with(Cell::get) - before
}

#[test]
fn nothing_to_do_allocates_nothing() {
    let config = Config::from_toml(
        "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n[sources.privacy]\nip = \"truncate\"\n",
    )
    .unwrap();
    let stage = PrivacyStage::local(&config).unwrap();
    let meta = RequestMeta {
        source_id: "web",
        received_at: chrono::Utc::now(),
        client_ip: "81.2.69.160".parse().unwrap(),
        user_agent: Some("UA"),
        batch_sent_at: None,
        batch_context: None,
        signals: RequestSignals::default(),
    };
    let raw = r#"{"type":"track","anonymousId":"a-1","userId":"u-1","event":"Order Completed",
        "properties":{"total":12.5},"context":{"page":{"path":"/checkout"}}}"#;
    let fresh = || {
        let mut e = Event::parse(raw, None, 1 << 16).unwrap();
        normalize(&mut e, &meta, config.limits.clock_skew_window()).unwrap();
        e
    };

    let mut e = fresh();
    let n = allocations_during(|| assert_eq!(stage.apply(&mut e, &meta), Verdict::Keep));
    assert_eq!(e.body["context"]["ip"], "81.2.69.0");
    assert_eq!(n, 0, "allocations with an empty list");

    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    for i in 0..1000 {
        rt.block_on(stage.record_opt_out(
            "web",
            &[(IdKind::User, format!("other-{i}"))],
            Proof::ServerKey,
            "81.2.69.160".parse().unwrap(),
        ))
        .unwrap();
    }
    let mut e = fresh();
    let n = allocations_during(|| assert_eq!(stage.apply(&mut e, &meta), Verdict::Keep));
    assert_eq!(n, 0, "allocations with a filled list");

    // Control: the counter does count what the stage adds (the hash string).
    let hashing = Config::from_toml(
        "[[sources]]\nid = \"web\"\nwrite_key = \"k\"\n[sources.privacy]\nip = \"hash\"\n",
    )
    .unwrap();
    let stage = PrivacyStage::local(&hashing).unwrap();
    let mut e = fresh();
    let n = allocations_during(|| assert_eq!(stage.apply(&mut e, &meta), Verdict::Keep));
    assert!(n > 0);
}
