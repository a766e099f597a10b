//! `${VAR}` references in the configuration file's string values, so that
//! secrets (and anything else that differs per deployment) stay out of the
//! file.
//!
//! Forms: `${NAME}` is the variable's value; `${NAME:-fallback}` is the
//! fallback when the variable is unset or empty; `$${` is a literal `${`.
//! Any other `$` is kept as it is (bot patterns and scrub rules use `$` as
//! the regular-expression anchor), so only the braced form is a reference.
//! `NAME` is letters, digits and `_`, not starting with a digit. An unset
//! variable without a fallback is an error naming the key, its line and the
//! variable, never a value.
//!
//! Only string values are interpolated, after the file is parsed: a
//! variable's value can never change the file's structure (a quote or a
//! newline in it stays inside its string), and a number or a boolean is set
//! with an environment override (`TRACKGATE_…`, see `env`) instead.
//! Modelled on Vector's `src/config/vars.rs`, which interpolates the raw
//! text instead.

use std::borrow::Cow;

/// Reads an environment variable (the process environment, or a test's).
pub(super) type Lookup<'a> = dyn Fn(&str) -> Option<String> + 'a;

/// Why a string's references cannot be resolved. Never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(super) enum VarError {
    #[error("environment variable `{0}` (referenced as `${{{0}}}`) is not set")]
    Unset(String),
    #[error("`${{` without its closing `}}` (write `$${{` for a literal `${{`)")]
    Unterminated,
    #[error("`${{{0}}}`: a variable name is letters, digits and `_`, not starting with a digit")]
    BadName(String),
}

/// `s` with every `${NAME}` replaced; borrowed when there is none.
pub(super) fn interpolate<'s>(s: &'s str, env: &Lookup<'_>) -> Result<Cow<'s, str>, VarError> {
    if !s.contains("${") {
        return Ok(Cow::Borrowed(s));
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let end = after.find('}').ok_or(VarError::Unterminated)?;
            out.push_str(&resolve(&after[..end], env)?);
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    Ok(Cow::Owned(out))
}

/// The value of `NAME` or `NAME:-fallback`.
fn resolve(reference: &str, env: &Lookup<'_>) -> Result<String, VarError> {
    let (name, fallback) = match reference.split_once(":-") {
        Some((n, f)) => (n, Some(f)),
        None => (reference, None),
    };
    let valid = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        return Err(VarError::BadName(name.to_string()));
    }
    match (env(name), fallback) {
        (Some(v), Some(f)) if v.is_empty() => Ok(f.to_string()),
        (Some(v), _) => Ok(v),
        (None, Some(f)) => Ok(f.to_string()),
        (None, None) => Err(VarError::Unset(name.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Option<String> {
        match name {
            "SK" => Some("sk_from_env".into()),
            "EMPTY" => Some(String::new()),
            _ => None,
        }
    }

    #[test]
    fn references_are_replaced_and_escapes_kept_literal() {
        for (input, expected) in [
            ("plain", "plain"),
            ("${SK}", "sk_from_env"),
            ("a-${SK}-b", "a-sk_from_env-b"),
            ("$${SK}", "${SK}"),
            ("cost$5 and ^end$", "cost$5 and ^end$"),
            ("${UNSET:-fallback}", "fallback"),
            ("${EMPTY:-fallback}", "fallback"),
            ("${EMPTY}", ""),
            ("${SK:-x}${SK}", "sk_from_envsk_from_env"),
        ] {
            assert_eq!(interpolate(input, &env).unwrap(), expected, "{input}");
        }
    }

    #[test]
    fn an_unset_variable_is_named_and_no_value_is_shown() {
        assert_eq!(
            interpolate("x ${NOPE} y", &env),
            Err(VarError::Unset("NOPE".into()))
        );
        assert_eq!(interpolate("${SK", &env), Err(VarError::Unterminated));
        assert_eq!(
            interpolate("${1X}", &env),
            Err(VarError::BadName("1X".into()))
        );
        let message = VarError::Unset("NOPE".into()).to_string();
        assert!(message.contains("`${NOPE}`"), "{message}");
    }
}
