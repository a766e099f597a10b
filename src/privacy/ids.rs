//! Visitor ids in the form they are compared in: the opt-out list and the
//! identity pseudonyms treat two spellings of one id as one id.
//!
//! An id is compared the way its kind is:
//! - every id loses surrounding whitespace (`" u-42 "` is `u-42`): no
//!   client means a different visitor by a padded id;
//! - an e-mail address (`local@domain.tld`, no inner whitespace) is
//!   compared without case: mail systems deliver `Jane@Example.com` and
//!   `jane@example.com` to the same person, so an opt-out of one must hold
//!   for the other;
//! - a UUID (hyphenated, simple, braced or URN form, any case) is its
//!   lower-case hyphenated form: the same 128-bit value;
//! - any other id keeps its case (`User-A` and `user-a` may be two
//!   accounts).
//!
//! The normal form is what the list's digests and the pseudonyms are
//! computed from; the id in the event itself is left as sent (the record is
//! what the client meant). Borrowed whenever nothing changes, so the hot
//! path allocates only for an upper-case e-mail address or UUID.

use std::borrow::Cow;

/// The form `id` is compared in (see the module docs).
pub fn normalize(id: &str) -> Cow<'_, str> {
    let id = id.trim();
    if let Ok(u) = uuid::Uuid::try_parse(id) {
        let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
        let canonical = u.hyphenated().encode_lower(&mut buf);
        return if canonical == id {
            Cow::Borrowed(id)
        } else {
            Cow::Owned(canonical.to_owned())
        };
    }
    if is_email(id) && id.chars().any(char::is_uppercase) {
        return Cow::Owned(id.to_lowercase());
    }
    Cow::Borrowed(id)
}

/// `local@domain.tld`: one non-empty local part, a dotted domain, no
/// whitespace.
fn is_email(id: &str) -> bool {
    let Some((local, domain)) = id.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !domain.contains('@')
        && !id.contains(char::is_whitespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_of_one_id_share_a_form() {
        for (a, b) in [
            ("Jane.Doe@Example.com", "jane.doe@example.com"),
            ("  jane.doe@example.com\t", "jane.doe@example.com"),
            (" JANE.DOE@EXAMPLE.COM ", "jane.doe@example.com"),
            ("ÉLODIE@exemple.fr", "élodie@exemple.fr"),
            (
                "6F9619FF-8B86-D011-B42D-00CF4FC964FF",
                "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            ),
            (
                "{6f9619ff-8b86-d011-b42d-00cf4fc964ff}",
                "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            ),
            (
                "6F9619FF8B86D011B42D00CF4FC964FF",
                "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
            ),
            (" u-42 ", "u-42"),
        ] {
            assert_eq!(normalize(a), normalize(b), "{a:?} vs {b:?}");
            assert_eq!(normalize(a), b, "{a:?}");
        }
    }

    #[test]
    fn other_ids_keep_their_case_and_unchanged_ids_are_borrowed() {
        assert_ne!(normalize("User-A"), normalize("user-a"));
        // Not addresses: case kept.
        for id in ["Team@Home", "a@b.", "@Example.com", "Jane Doe@Example.com"] {
            assert_eq!(normalize(id), id, "{id:?}");
        }
        for id in [
            "jane@example.com",
            "u-42",
            "6f9619ff-8b86-d011-b42d-00cf4fc964ff",
        ] {
            assert!(matches!(normalize(id), Cow::Borrowed(_)), "{id}");
        }
        assert!(matches!(normalize(" u-42 "), Cow::Borrowed("u-42")));
    }
}
