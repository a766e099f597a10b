//! The list, record keys and values, proofs and bounds.

use std::sync::atomic::Ordering;

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
    let l = OptOutList::new(10);
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
    let small = OptOutList::new(1);
    assert!(small.apply_record(Some(&key("web", IdKind::Anonymous, "1")), Some(ON)));
    assert!(small.apply_record(Some(&key("web", IdKind::Anonymous, "2")), Some(ON)));
    assert_eq!(small.len(), 2);
}

#[test]
fn proofs_travel_in_the_record_and_malformed_ones_keep_none() {
    let l = OptOutList::new(10);
    let h = proof_hash(b"nonce");
    let v = record_value(&[h]);
    assert!(l.apply_record(
        Some(&key("web", IdKind::Anonymous, "a")),
        Some(v.as_bytes())
    ));
    assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![h]));
    let bad = br#"{"optedOut":true,"proofs":["zz"]}"#;
    assert!(l.apply_record(Some(&key("web", IdKind::Anonymous, "a")), Some(bad)));
    assert_eq!(l.entry("web", IdKind::Anonymous, "a"), Some(vec![]));
}

#[test]
fn opt_in_needs_the_proof_of_every_listed_id() {
    let l = OptOutList::new(10);
    let mine = proof_hash(b"mine");
    let theirs = proof_hash(b"theirs");
    let a = ids(&[(IdKind::Anonymous, "a")]);
    l.opt_out("web", &a, Proof::Cookie(mine)).unwrap();
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
    // Opted out again from another browser: neither browser alone may
    // opt it in any more.
    let again = l.opt_out("web", &a, Proof::Cookie(theirs)).unwrap();
    assert_eq!(again[0].proofs, vec![mine, theirs]);
    assert_eq!(
        l.entry("web", IdKind::Anonymous, "a"),
        Some(vec![mine, theirs])
    );
    assert!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).is_err());
    assert!(l.plan_opt_in("web", &a, Proof::Cookie(theirs)).is_err());
    // An opt-out without a proof keeps the proofs.
    let plain = l.opt_out("web", &a, Proof::None).unwrap();
    assert_eq!(plain[0].proofs, vec![mine, theirs]);
    // A server key's opt-out leaves only the server key.
    let by_server = l.opt_out("web", &a, Proof::ServerKey).unwrap();
    assert!(by_server[0].proofs.is_empty());
    assert!(l.plan_opt_in("web", &a, Proof::Cookie(mine)).is_err());
    // Up to MAX_PROOFS browsers are remembered, then only the server key.
    let b = ids(&[(IdKind::User, "b")]);
    for i in 0..MAX_PROOFS {
        let p = l
            .opt_out("web", &b, Proof::Cookie(proof_hash(&[i as u8])))
            .unwrap();
        assert_eq!(p[0].proofs.len(), i + 1);
    }
    let p = l
        .opt_out("web", &b, Proof::Cookie(proof_hash(b"fifth")))
        .unwrap();
    assert!(p[0].proofs.is_empty());
    assert_eq!(l.len(), 2);
}

#[test]
fn a_full_list_refuses_new_ids_but_not_listed_ones() {
    let l = OptOutList::new(1);
    let a = ids(&[(IdKind::Anonymous, "a")]);
    let b = ids(&[(IdKind::User, "b")]);
    l.opt_out("web", &a, Proof::None).unwrap();
    assert!(matches!(
        l.opt_out("web", &b, Proof::None),
        Err(OptOutError::Full)
    ));
    assert!(matches!(
        l.opt_out("app", &a, Proof::Cookie(proof_hash(b"x"))),
        Err(OptOutError::Full)
    ));
    assert_eq!(l.entry("app", IdKind::Anonymous, "a"), None);
    assert!(l.opt_out("web", &a, Proof::ServerKey).is_ok());
    assert_eq!(l.len(), 1);
}

#[test]
fn loaded_flag_is_shared() {
    let l = OptOutList::new(1);
    let f = l.loaded_flag();
    assert!(!f.load(Ordering::Acquire));
    l.mark_loaded();
    assert!(f.load(Ordering::Acquire));
    assert!(OptOutList::new_loaded(1).is_loaded());
}
