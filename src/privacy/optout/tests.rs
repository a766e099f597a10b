//! The list, record keys and values, proofs and bounds.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::*;

const ON: &[u8] = br#"{"optedOut":true,"at":"2026-01-01T00:00:00.000Z"}"#;

/// The record key of `id` as the gateway writes it.
fn key(scope: &str, kind: IdKind, id: &str) -> Vec<u8> {
    record_key(scope, kind, &id_digest(id)).into_bytes()
}

fn ids(list: &[(IdKind, &str)]) -> Vec<(IdKind, String)> {
    list.iter().map(|(k, i)| (*k, i.to_string())).collect()
}

#[test]
fn keys_hold_a_digest_never_the_id_and_old_keys_apply_to_every_source() {
    let email = "jane.doe@example.com";
    let k = record_key("web", IdKind::Anonymous, &id_digest(email));
    assert!(k.starts_with("anon@web:sha256:"), "{k}");
    assert_eq!(k.len(), "anon@web:sha256:".len() + 64);
    assert!(!k.contains("jane") && !k.contains("example"), "{k}");
    assert_eq!(
        parse_key(k.as_bytes()),
        Some(("web", IdKind::Anonymous, id_digest(email)))
    );
    let u = record_key("web", IdKind::User, &id_digest("u:1"));
    assert_eq!(
        parse_key(u.as_bytes()),
        Some(("web", IdKind::User, id_digest("u:1")))
    );
    // Different ids, different keys.
    assert_ne!(u, record_key("web", IdKind::User, &id_digest("u:2")));
    // Old, unscoped keys held the id itself: hashed when read.
    assert_eq!(
        parse_key(b"anon:a-1"),
        Some((SCOPE_ALL, IdKind::Anonymous, id_digest("a-1")))
    );
    assert_eq!(
        parse_key(b"user:u:1"),
        Some((SCOPE_ALL, IdKind::User, id_digest("u:1")))
    );
    // A scoped key without a digest is not ours.
    assert_eq!(parse_key(b"anon@web:a-1"), None);
    assert_eq!(parse_key(b"anon@:x"), None);
    assert_eq!(parse_key(b"device:x"), None);
    assert_eq!(parse_key(b"device@web:x"), None);
    assert_eq!(parse_key(b"\xff"), None);
}

#[test]
fn records_apply_last_write_wins_per_scope() {
    let l = bounded(10);
    assert!(!l.contains("web", Some("u1"), Some("a1"), None));
    assert!(l.apply_record(Some(&key("web", IdKind::Anonymous, "a1")), Some(ON)));
    assert!(l.apply_record(Some(&key("web", IdKind::User, "u1")), Some(ON)));
    assert_eq!(l.len(), 2);
    assert!(l.contains("web", None, Some("a1"), None));
    assert!(l.contains("web", Some("u1"), None, None));
    // Another source is not affected.
    assert!(!l.contains("app", Some("u1"), Some("a1"), None));
    // Kinds are separate: an anonymousId equal to an opted-out userId is not.
    assert!(!l.contains("web", None, Some("u1"), None));
    // previousId may be either kind.
    assert!(l.contains("web", Some("new"), None, Some("a1")));
    assert!(l.contains("web", Some("new"), None, Some("u1")));
    // Tombstone, then explicit false.
    assert!(l.apply_record(Some(&key("web", IdKind::Anonymous, "a1")), None));
    assert!(l.apply_record(
        Some(&key("web", IdKind::User, "u1")),
        Some(br#"{"optedOut":false}"#)
    ));
    assert!(l.is_empty());
    // An old, unscoped record applies to every source.
    assert!(l.apply_record(Some(b"anon:a1"), Some(ON)));
    assert!(l.contains("web", None, Some("a1"), None));
    assert!(l.contains("app", None, Some("a1"), None));
    // Foreign records are ignored.
    assert!(!l.apply_record(Some(b"other"), Some(ON)));
    assert!(!l.apply_record(Some(&key("web", IdKind::Anonymous, "x")), Some(b"junk")));
    assert!(!l.apply_record(None, Some(ON)));
    assert_eq!(l.len(), 1);
    // Records from the topic apply beyond the maximum.
    let small = bounded(1);
    assert!(small.apply_record(Some(&key("web", IdKind::Anonymous, "1")), Some(ON)));
    assert!(small.apply_record(Some(&key("web", IdKind::Anonymous, "2")), Some(ON)));
    assert_eq!(small.len(), 2);
}

#[test]
fn proofs_travel_in_the_record_and_malformed_ones_keep_none() {
    let l = bounded(10);
    let h = proof_hash(b"nonce");
    let v = record_value(&[h], AddedBy::Public);
    assert!(l.apply_record(
        Some(&key("web", IdKind::Anonymous, "a")),
        Some(v.as_bytes())
    ));
    assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![h]));
    let bad = br#"{"optedOut":true,"proofs":["zz"]}"#;
    assert!(l.apply_record(Some(&key("web", IdKind::Anonymous, "a")), Some(bad)));
    assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![]));
}

/// The address opt-outs of these tests come from.
const HOME: IpAddr = IpAddr::V4(Ipv4Addr::new(81, 2, 69, 160));

/// A list whose sources may each hold `per_source` public entries.
fn bounded(per_source: usize) -> OptOutList {
    OptOutList::new(Bounds {
        per_source,
        ..Bounds::NONE
    })
}

#[test]
fn opt_in_needs_one_of_the_proofs_of_every_listed_id() {
    let l = bounded(10);
    let mine = proof_hash(b"mine");
    let theirs = proof_hash(b"theirs");
    let a = ids(&[(IdKind::Anonymous, "a")]);
    l.opt_out("web", &a, Proof::Cookie(mine), HOME).unwrap();
    // No proof, someone else's, or another scope: refused.
    assert!(matches!(
        l.plan_opt_in("web", &a, Proof::None),
        Err(OptOutError::ProofRequired)
    ));
    assert!(matches!(
        l.plan_opt_in("web", &a, Proof::Cookie(theirs)),
        Err(OptOutError::ProofRequired)
    ));
    assert_eq!(l.plan_opt_in("app", &a, Proof::None).unwrap(), vec![]);
    let listed = vec![(IdKind::Anonymous, id_digest("a"))];
    assert_eq!(
        l.plan_opt_in("web", &a, Proof::Cookie(mine)).unwrap(),
        listed
    );
    assert_eq!(l.plan_opt_in("web", &a, Proof::ServerKey).unwrap(), listed);
    // Opted out again from another browser: the proofs are a set, and the
    // first browser's own proof still opts it in.
    let again = l.opt_out("web", &a, Proof::Cookie(theirs), HOME).unwrap();
    assert_eq!(again[0].proofs, vec![mine, theirs]);
    assert_eq!(
        l.plan_opt_in("web", &a, Proof::Cookie(mine)).unwrap(),
        listed
    );
    assert_eq!(
        l.plan_opt_in("web", &a, Proof::Cookie(theirs)).unwrap(),
        listed
    );
    // An opt-out without a proof keeps the proofs.
    let plain = l.opt_out("web", &a, Proof::None, HOME).unwrap();
    assert_eq!(plain[0].proofs, vec![mine, theirs]);
    // A server key's opt-out leaves only the server key, for good.
    let by_server = l.opt_out("web", &a, Proof::ServerKey, HOME).unwrap();
    assert!(by_server[0].proofs.is_empty());
    assert_eq!(by_server[0].by, AddedBy::Server);
    let later = l.opt_out("web", &a, Proof::Cookie(mine), HOME).unwrap();
    assert_eq!((later[0].by, later[0].proofs.len()), (AddedBy::Server, 0));
    assert!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).is_err());
    // However many browsers repeat it, the first proof is never displaced.
    let b = ids(&[(IdKind::User, "b")]);
    let first = proof_hash(b"first");
    l.opt_out("web", &b, Proof::Cookie(first), HOME).unwrap();
    for i in 0..3 * MAX_PROOFS {
        let p = l
            .opt_out("web", &b, Proof::Cookie(proof_hash(&[i as u8])), HOME)
            .unwrap();
        assert_eq!(p[0].proofs.len(), (i + 2).min(MAX_PROOFS));
        assert_eq!(p[0].proofs[0], first);
        assert_eq!(*p[0].proofs.last().unwrap(), proof_hash(&[i as u8]));
    }
    assert!(l.plan_opt_in("web", &b, Proof::Cookie(first)).is_ok());
    assert_eq!(l.len(), 2);
}

#[test]
fn public_entries_are_bounded_per_source_and_the_server_key_never_is() {
    let l = bounded(2);
    let many = ids(&[(IdKind::Anonymous, "a"), (IdKind::User, "b")]);
    l.opt_out("web", &many, Proof::None, HOME).unwrap();
    // The web source's share is full: a new public id is refused whole.
    let c = ids(&[(IdKind::Anonymous, "c")]);
    assert!(matches!(
        l.opt_out("web", &c, Proof::Cookie(proof_hash(b"x")), HOME),
        Err(OptOutError::SourceFull)
    ));
    assert_eq!(l.entry("web", IdKind::Anonymous, "c"), None);
    // Listed ids may be opted out again.
    assert!(l.opt_out("web", &many, Proof::None, HOME).is_ok());
    // Another source has its own share.
    assert!(l.opt_out("app", &many, Proof::None, HOME).is_ok());
    // The server key is never refused, and its entries are not counted.
    for i in 0..10 {
        let id = ids(&[(IdKind::User, &format!("s-{i}"))]);
        l.opt_out("web", &id, Proof::ServerKey, HOME).unwrap();
    }
    assert_eq!(l.scope_entries("web", AddedBy::Public), 2);
    assert_eq!(l.scope_entries("web", AddedBy::Server), 10);
    // A public entry the server key takes over frees its public slot.
    l.opt_out("web", &ids(&[(IdKind::User, "b")]), Proof::ServerKey, HOME)
        .unwrap();
    assert_eq!(l.scope_entries("web", AddedBy::Public), 1);
    assert!(l.opt_out("web", &c, Proof::None, HOME).is_ok());
    assert_eq!(l.len(), 2 + 2 + 10 + 1);
}

#[test]
fn public_entries_are_bounded_per_address_group_and_window() {
    let l = OptOutList::new(Bounds {
        per_address: 2,
        address_window: Duration::from_millis(300),
        ..Bounds::NONE
    });
    let one = |id: &str| ids(&[(IdKind::Anonymous, id)]);
    let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
    l.opt_out("web", &one("a"), Proof::None, v6("2001:db8:1:2::1"))
        .unwrap();
    l.opt_out("web", &one("b"), Proof::None, v6("2001:db8:1:2::ffff"))
        .unwrap();
    // The same /64: its share of this window is used.
    let refused = l.opt_out("web", &one("c"), Proof::None, v6("2001:db8:1:2:aa::9"));
    assert!(
        matches!(refused, Err(OptOutError::AddressFull { retry_after_secs }) if retry_after_secs >= 1),
        "{refused:?}"
    );
    // Repeats cost nothing; another /64, another source or the server key
    // are not affected.
    l.opt_out("web", &one("a"), Proof::None, v6("2001:db8:1:2::1"))
        .unwrap();
    l.opt_out("web", &one("c"), Proof::None, v6("2001:db8:1:3::1"))
        .unwrap();
    l.opt_out("app", &one("c"), Proof::None, v6("2001:db8:1:2::1"))
        .unwrap();
    l.opt_out("web", &one("d"), Proof::ServerKey, v6("2001:db8:1:2::1"))
        .unwrap();
    // The next window.
    std::thread::sleep(Duration::from_millis(350));
    l.opt_out("web", &one("e"), Proof::None, v6("2001:db8:1:2::1"))
        .unwrap();
    assert_eq!(
        address_group(v6("::ffff:81.2.69.160")),
        IpAddr::V4(Ipv4Addr::new(81, 2, 69, 160))
    );
}

#[test]
fn a_list_replayed_from_its_records_counts_and_proves_the_same() {
    let l = bounded(2);
    let mine = proof_hash(b"mine");
    let theirs = proof_hash(b"theirs");
    let mut records = Vec::new();
    let mut keep = |plans: Vec<PlannedOptOut>| {
        for p in plans {
            records.push((
                record_key("web", p.kind, &p.digest),
                record_value(&p.proofs, p.by),
            ));
        }
    };
    keep(
        l.opt_out(
            "web",
            &ids(&[(IdKind::Anonymous, "a")]),
            Proof::Cookie(mine),
            HOME,
        )
        .unwrap(),
    );
    keep(
        l.opt_out(
            "web",
            &ids(&[(IdKind::Anonymous, "a")]),
            Proof::Cookie(theirs),
            HOME,
        )
        .unwrap(),
    );
    keep(
        l.opt_out("web", &ids(&[(IdKind::User, "b")]), Proof::None, HOME)
            .unwrap(),
    );
    keep(
        l.opt_out("web", &ids(&[(IdKind::User, "s")]), Proof::ServerKey, HOME)
            .unwrap(),
    );
    let replayed = bounded(2);
    for (k, v) in &records {
        assert!(replayed.apply_record(Some(k.as_bytes()), Some(v.as_bytes())));
    }
    for list in [&l, &replayed] {
        assert_eq!(list.scope_entries("web", AddedBy::Public), 2);
        assert_eq!(list.scope_entries("web", AddedBy::Server), 1);
        assert!(matches!(
            list.opt_out("web", &ids(&[(IdKind::User, "new")]), Proof::None, HOME),
            Err(OptOutError::SourceFull)
        ));
        assert!(list
            .opt_out(
                "web",
                &ids(&[(IdKind::User, "new")]),
                Proof::ServerKey,
                HOME
            )
            .is_ok());
        let a = ids(&[(IdKind::Anonymous, "a")]);
        assert!(list.plan_opt_in("web", &a, Proof::Cookie(mine)).is_ok());
        assert!(list.plan_opt_in("web", &a, Proof::Cookie(theirs)).is_ok());
        let s = ids(&[(IdKind::User, "s")]);
        assert!(list.plan_opt_in("web", &s, Proof::Cookie(mine)).is_err());
    }
    // Records written before `by`: with proofs a browser's, without the
    // server key's (as they were).
    let old = bounded(1);
    let k = key("web", IdKind::User, "old-1");
    assert!(old.apply_record(Some(&k), Some(br#"{"optedOut":true}"#)));
    assert_eq!(old.scope_entries("web", AddedBy::Server), 1);
    let k = key("web", IdKind::User, "old-2");
    let v = format!(r#"{{"optedOut":true,"proofs":["{}"]}}"#, "ab".repeat(32));
    assert!(old.apply_record(Some(&k), Some(v.as_bytes())));
    assert_eq!(old.scope_entries("web", AddedBy::Public), 1);
}

#[test]
fn ids_are_listed_and_matched_in_their_normal_form() {
    let l = bounded(10);
    let email = ids(&[(IdKind::User, "Jane.Doe@Example.com")]);
    let plans = l.opt_out("web", &email, Proof::None, HOME).unwrap();
    assert_eq!(plans[0].digest, id_digest("jane.doe@example.com"));
    for spelling in [
        "jane.doe@example.com",
        " JANE.DOE@EXAMPLE.COM ",
        "\tJane.Doe@Example.com\n",
    ] {
        assert!(
            l.contains("web", Some(spelling), None, None),
            "{spelling:?}"
        );
        assert!(
            l.contains("web", None, None, Some(spelling)),
            "{spelling:?}"
        );
    }
    // Another id's case still matters.
    l.opt_out("web", &ids(&[(IdKind::User, "User-A")]), Proof::None, HOME)
        .unwrap();
    assert!(l.contains("web", Some(" User-A"), None, None));
    assert!(!l.contains("web", Some("user-a"), None, None));
    let uuid = ids(&[(IdKind::Anonymous, "6F9619FF-8B86-D011-B42D-00CF4FC964FF")]);
    l.opt_out("web", &uuid, Proof::None, HOME).unwrap();
    assert!(l.contains(
        "web",
        None,
        Some("6f9619ff-8b86-d011-b42d-00cf4fc964ff"),
        None
    ));
    // A repeat in another spelling is the same entry.
    l.opt_out(
        "web",
        &ids(&[(IdKind::User, "jane.doe@example.com ")]),
        Proof::None,
        HOME,
    )
    .unwrap();
    assert_eq!(l.len(), 3);

    // An entry written before ids were normalised (the digest of the
    // spelling) still holds for that spelling, and an opt-in lifts both.
    let legacy = bounded(10);
    let spelled: IdDigest = {
        use sha2::{Digest, Sha256};
        Sha256::digest(b"Bob@Example.com").into()
    };
    let k = record_key("web", IdKind::User, &spelled);
    assert!(legacy.apply_record(Some(k.as_bytes()), Some(ON)));
    assert!(legacy.contains("web", Some("Bob@Example.com"), None, None));
    legacy
        .opt_out(
            "web",
            &ids(&[(IdKind::User, "bob@example.com")]),
            Proof::None,
            HOME,
        )
        .unwrap();
    let both = legacy
        .plan_opt_in(
            "web",
            &ids(&[(IdKind::User, "Bob@Example.com")]),
            Proof::ServerKey,
        )
        .unwrap();
    assert_eq!(both.len(), 2);
}

#[test]
fn loaded_flag_is_shared() {
    let l = bounded(1);
    let f = l.loaded_flag();
    assert!(!f.load(Ordering::Acquire));
    l.mark_loaded();
    assert!(f.load(Ordering::Acquire));
    assert!(OptOutList::new_loaded(Bounds::NONE).is_loaded());
}
