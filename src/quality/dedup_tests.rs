use std::collections::HashMap;

use proptest::prelude::*;

use super::*;

const T0: u64 = 1_800_000_000;
const KEY: (u64, u64) = (0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210);
const SEED: u128 = 42;

fn filter(cfg: &DedupConfig) -> DedupFilter {
    DedupFilter::with_key(cfg, KEY, SEED)
}

fn seen(f: &mut DedupFilter, id: &str, now: u64) -> bool {
    let k = f.key_of(id);
    f.check_and_insert(k, now)
}

#[test]
fn repeats_inside_the_window_are_duplicates_new_ids_are_not() {
    let cfg = DedupConfig::default();
    let mut f = filter(&cfg);
    // (id, seconds after T0, expected duplicate)
    let cases = [
        ("m-1", 0, false),
        ("m-2", 1, false),
        ("m-1", 2, true),
        ("m-1", 59 * 60, true),        // still in the exact window
        ("m-3", 59 * 60, false),       // a new id stays new
        ("m-2", 3 * 3600, true),       // in a Bloom slice now
        ("m-2", 23 * 3600, true),      // still inside 24 h
        ("m-4", 23 * 3600, false),     // never seen
        ("m-3", 2 * 24 * 3600, false), // older than the window: forgotten
    ];
    for (id, dt, want) in cases {
        assert_eq!(seen(&mut f, id, T0 + dt), want, "{id} at +{dt}s");
    }
}

#[test]
fn ids_move_from_the_exact_window_into_bloom_slices() {
    let cfg = DedupConfig::default();
    let mut f = filter(&cfg);
    for i in 0..1000 {
        assert!(!seen(&mut f, &format!("id-{i}"), T0));
    }
    assert_eq!(f.stats().exact_ids, 1000);
    assert!(seen(&mut f, "id-7", T0 + 2 * 3600));
    let s = f.stats();
    assert_eq!((s.exact_ids, s.bloom_ids, s.bloom_slices), (0, 1000, 1));
}

#[test]
fn a_forgotten_id_is_new_again() {
    let mut f = filter(&DedupConfig::default());
    let k = f.key_of("retry-me");
    assert!(!f.check_and_insert(k, T0));
    f.forget(k);
    assert!(!f.check_and_insert(k, T0 + 1));
    assert!(f.check_and_insert(k, T0 + 2));
}

#[test]
fn memory_bound_shrinks_the_windows_and_old_ids_are_missed() {
    // 1 MiB: about 21 800 exact ids and 8 slices of ~4 000 ids at 1e-3.
    let cfg = DedupConfig {
        max_memory_mb: 1,
        false_positive_rate: 1e-3,
        ..DedupConfig::default()
    };
    let mut f = filter(&cfg);
    let total = f.max_exact_ids() + 9 * f.slice_capacity() + 1000;
    // All ids are new; at a 1e-3 target a few are taken for duplicates.
    let wrong = (0..total)
        .filter(|&i| seen(&mut f, &format!("id-{i}"), T0 + (i / 1000) as u64))
        .count();
    assert!((wrong as f64) < 2e-3 * total as f64, "{wrong} of {total}");
    let s = f.stats();
    assert!(s.memory_bytes <= 1024 * 1024 * 3 / 2, "{s:?}");
    assert!(s.exact_ids <= f.max_exact_ids(), "{s:?}");
    assert!(s.bloom_slices <= BLOOM_SLICES, "{s:?}");
    // What the bound pushed out is missed: the first ids are new again.
    let now = T0 + (total / 1000) as u64;
    let missed = (0..100)
        .filter(|i| !seen(&mut f, &format!("id-{i}"), now))
        .count();
    assert!(missed > 90, "{missed} of the 100 oldest ids were forgotten");
    // The newest are still caught.
    assert!(seen(&mut f, &format!("id-{}", total - 1), now));
}

#[test]
fn measured_false_positive_rate_of_full_slices_is_near_target() {
    let target = 1e-3;
    let cfg = DedupConfig {
        max_memory_mb: 1,
        false_positive_rate: target,
        ..DedupConfig::default()
    };
    let mut f = filter(&cfg);
    // Fill every slice to capacity, then push everything out of the exact
    // window so that only the Bloom slices answer.
    let n = BLOOM_SLICES * f.slice_capacity();
    let mut t = T0;
    for i in 0..n {
        if i % f.slice_capacity() == 0 {
            t += f.slice_span;
        }
        seen(&mut f, &format!("old-{i}"), t);
    }
    let now = t + cfg.exact_window_secs + 3600;
    f.advance(now);
    assert_eq!(f.stats().exact_ids, 0);
    let probes = 200_000;
    let fp = (0..probes)
        .filter(|i| {
            let k = f.key_of(&format!("new-{i}"));
            f.seen(k, now)
        })
        .count();
    let rate = fp as f64 / probes as f64;
    assert!(
        rate < 2.0 * target,
        "measured {rate} against target {target}"
    );
}

#[test]
fn config_validation_names_the_key() {
    let bad = [
        (
            DedupConfig {
                window_secs: 0,
                ..Default::default()
            },
            "window_secs",
        ),
        (
            DedupConfig {
                exact_window_secs: 100_000,
                ..Default::default()
            },
            "exact_window_secs",
        ),
        (
            DedupConfig {
                max_memory_mb: 0,
                ..Default::default()
            },
            "max_memory_mb",
        ),
        (
            DedupConfig {
                false_positive_rate: 0.5,
                ..Default::default()
            },
            "false_positive_rate",
        ),
    ];
    for (cfg, key) in bad {
        assert_eq!(cfg.validate().unwrap_err().0, key);
    }
    assert!(DedupConfig::default().validate().is_ok());
}

proptest! {
    /// No false negatives inside the exact window: whenever an id was seen
    /// less than `exact_window_secs` ago, it is reported as a duplicate,
    /// whatever happened in between (other ids, time passing, buckets and
    /// slices rotating).
    #[test]
    fn no_false_negatives_inside_the_exact_window(
        steps in proptest::collection::vec((0u16..400, 0u64..200), 1..600),
    ) {
        let cfg = DedupConfig { exact_window_secs: 3600, ..DedupConfig::default() };
        let mut f = filter(&cfg);
        let mut last_seen: HashMap<u16, u64> = HashMap::new();
        let mut now = T0;
        for (id, dt) in steps {
            now += dt;
            let dup = seen(&mut f, &format!("msg-{id}"), now);
            if let Some(&t) = last_seen.get(&id) {
                if now - t < cfg.exact_window_secs {
                    prop_assert!(dup, "msg-{} seen {}s ago was not caught", id, now - t);
                }
            }
            if !dup {
                last_seen.insert(id, now);
            }
        }
    }
}
