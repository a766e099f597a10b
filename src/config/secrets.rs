//! Secrets in the configuration: which keys hold one, reading them from
//! files (`*_file`), and keeping them out of everything the gateway shows.
//!
//! A key is secret by its name: `server_key`, `token`, `pseudonym_secret`,
//! and any name with `password`, `secret`, `token` or `credential` in it
//! (librdkafka's `sasl.password`, `ssl.key.password`,
//! `sasl.oauthbearer.client.secret` …), plus librdkafka's `sasl.jaas.config`,
//! `sasl.oauthbearer.config` and `ssl.key.pem`. Names ending in `_env` or
//! `_file` name a variable or a path, not a secret. Write keys are public by
//! design (they ship in every web page) and are not secret here.
//!
//! Every secret key `K` also accepts `K_file`: the path of a file holding
//! the secret (one trailing line break is dropped), relative to the
//! configuration file's directory. Setting both is an error. The files are
//! read at every load, and the reload watch follows them (see `reload`).
//!
//! Nothing shown carries a secret: `GET /config` shows the loaded tree
//! through [`redacted`]; an error about a secret key has its quoted values
//! masked ([`mask_values`]); the TOML parser's errors never quote the file
//! (see `parse`).

use std::path::{Path, PathBuf};

use super::parse::{display_path, parse_path, Seg};
use super::ConfigError;

/// What `GET /config` shows instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Suffix of a key that reads its secret from a file.
const FILE_SUFFIX: &str = "_file";

/// Secret keys named exactly.
const SECRET_KEYS: &[&str] = &[
    "server_key",
    "pseudonym_secret",
    "sasl.jaas.config",
    "sasl.oauthbearer.config",
    "ssl.key.pem",
];

/// Words that make a key secret wherever they appear in its name.
const SECRET_WORDS: &[&str] = &["password", "secret", "token", "credential"];

/// Whether the key named `name` (the last segment of its path) holds a secret.
pub fn is_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    if n.ends_with("_env") || n.ends_with(FILE_SUFFIX) {
        return false;
    }
    SECRET_KEYS.contains(&n.as_str()) || SECRET_WORDS.iter().any(|w| n.contains(w))
}

/// Replaces every `K_file` of a secret key `K` in `tree` by `K` with the
/// file's content; returns the files read. Relative paths are resolved
/// against `base` (the configuration file's directory).
pub(super) fn read_files(
    tree: &mut toml::Value,
    base: Option<&Path>,
) -> Result<Vec<PathBuf>, ConfigError> {
    let mut files = Vec::new();
    let mut path = Vec::new();
    walk_files(tree, base, &mut path, &mut files)?;
    Ok(files)
}

fn walk_files(
    node: &mut toml::Value,
    base: Option<&Path>,
    path: &mut Vec<Seg>,
    files: &mut Vec<PathBuf>,
) -> Result<(), ConfigError> {
    match node {
        toml::Value::Table(t) => {
            let file_keys: Vec<String> = t
                .keys()
                .filter(|k| k.strip_suffix(FILE_SUFFIX).is_some_and(is_secret))
                .cloned()
                .collect();
            for file_key in file_keys {
                let target = file_key[..file_key.len() - FILE_SUFFIX.len()].to_string();
                path.push(Seg::Key(file_key.clone()));
                let key = display_path(path);
                path.pop();
                if t.contains_key(&target) {
                    return Err(ConfigError::key(
                        key,
                        format!("set either {target} or {file_key}, not both"),
                    ));
                }
                let Some(toml::Value::String(name)) = t.remove(&file_key) else {
                    return Err(ConfigError::key(key, "must be a file path"));
                };
                let file = match base {
                    Some(b) => b.join(&name),
                    None => PathBuf::from(&name),
                };
                let secret = read_secret(&file).map_err(|m| ConfigError::key(&key, m))?;
                t.insert(target, toml::Value::String(secret));
                files.push(file);
            }
            for (k, v) in t.iter_mut() {
                path.push(Seg::Key(k.clone()));
                walk_files(v, base, path, files)?;
                path.pop();
            }
        }
        toml::Value::Array(a) => {
            for (i, v) in a.iter_mut().enumerate() {
                path.push(Seg::Index(i));
                walk_files(v, base, path, files)?;
                path.pop();
            }
        }
        _ => {}
    }
    Ok(())
}

/// A secret file's content without its trailing line break. The error
/// names the file, never its content.
fn read_secret(file: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let secret = text
        .strip_suffix("\r\n")
        .or_else(|| text.strip_suffix('\n'))
        .unwrap_or(&text);
    if secret.is_empty() {
        return Err(format!("{} is empty", file.display()));
    }
    Ok(secret.to_string())
}

/// The tree as JSON with every secret value replaced by [`REDACTED`].
pub fn redacted(tree: &toml::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match tree {
        toml::Value::String(s) => J::String(s.clone()),
        toml::Value::Integer(i) => J::from(*i),
        toml::Value::Float(f) => J::from(*f),
        toml::Value::Boolean(b) => J::Bool(*b),
        toml::Value::Datetime(d) => J::String(d.to_string()),
        toml::Value::Array(a) => J::Array(a.iter().map(redacted).collect()),
        toml::Value::Table(t) => J::Object(
            t.iter()
                .map(|(k, v)| {
                    let shown = if is_secret(k) {
                        J::String(REDACTED.into())
                    } else {
                        redacted(v)
                    };
                    (k.clone(), shown)
                })
                .collect(),
        ),
    }
}

/// `message` with every `` `quoted` `` and `"quoted"` part masked when the
/// key it is about (as an error names it) is secret: a deserialization
/// error quotes the value it could not use.
pub(super) fn mask_values(key: &str, message: String) -> String {
    let last = parse_path(key)
        .into_iter()
        .rev()
        .find_map(|s| match s {
            Seg::Key(k) => Some(k),
            Seg::Index(_) => None,
        })
        .unwrap_or_default();
    if !is_secret(&last) {
        return message;
    }
    let mut out = String::with_capacity(message.len());
    let mut open: Option<char> = None;
    for c in message.chars() {
        match open {
            Some(q) if c == q => {
                out.push('…');
                out.push(c);
                open = None;
            }
            Some(_) => {}
            None if c == '`' || c == '"' => {
                out.push(c);
                open = Some(c);
            }
            None => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_keys_are_known_by_name() {
        for k in [
            "server_key",
            "token",
            "pseudonym_secret",
            "sasl.password",
            "ssl.key.password",
            "ssl.keystore.password",
            "sasl.oauthbearer.client.secret",
            "sasl.jaas.config",
            "ssl.key.pem",
        ] {
            assert!(is_secret(k), "{k}");
        }
        for k in [
            "write_key",
            "server_key_env",
            "server_key_file",
            "pseudonym_secret_env",
            "sasl.username",
            "security.protocol",
            "ssl.key.location",
            "patterns_file",
            "brokers",
        ] {
            assert!(!is_secret(k), "{k}");
        }
    }

    #[test]
    fn secret_files_replace_their_keys_and_both_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("sk"), "sk_from_a_file_0123\n").unwrap();
        std::fs::write(dir.path().join("pw"), "hunter2-from-file").unwrap();
        let mut tree: toml::Value = toml::from_str(
            "[[sources]]\nid = \"w\"\nserver_key_file = \"sk\"\n[kafka.properties]\n\"sasl.password_file\" = \"pw\"\n",
        )
        .unwrap();
        let mut files = read_files(&mut tree, Some(dir.path())).unwrap();
        files.sort();
        assert_eq!(files, [dir.path().join("pw"), dir.path().join("sk")]);
        assert_eq!(
            tree["sources"][0]["server_key"].as_str(),
            Some("sk_from_a_file_0123")
        );
        assert!(tree["sources"][0].get("server_key_file").is_none());
        assert_eq!(
            tree["kafka"]["properties"]["sasl.password"].as_str(),
            Some("hunter2-from-file")
        );

        let mut both: toml::Value = toml::from_str("token = \"x\"\ntoken_file = \"sk\"\n").unwrap();
        let err = read_files(&mut both, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("token_file") && err.contains("not both"),
            "{err}"
        );
        let mut missing: toml::Value =
            toml::from_str("[inspect]\ntoken_file = \"nope\"\n").unwrap();
        let err = read_files(&mut missing, Some(dir.path()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("inspect.token_file") && err.contains("nope"),
            "{err}"
        );
    }

    #[test]
    fn the_redacted_tree_shows_no_secret() {
        let tree: toml::Value = toml::from_str(
            "[inspect]\ntoken = \"tok-secret\"\n[kafka.properties]\n\"sasl.password\" = \"pw-secret\"\n\"sasl.username\" = \"user\"\n[[sources]]\nwrite_key = \"wk\"\nserver_key = \"sk-secret\"\n",
        )
        .unwrap();
        let shown = redacted(&tree).to_string();
        for secret in ["tok-secret", "pw-secret", "sk-secret"] {
            assert!(!shown.contains(secret), "{shown}");
        }
        assert!(
            shown.contains("\"user\"") && shown.contains("\"wk\""),
            "{shown}"
        );
        assert_eq!(shown.matches(REDACTED).count(), 3, "{shown}");
    }

    #[test]
    fn values_quoted_in_errors_about_secret_keys_are_masked() {
        let m = mask_values(
            "sources[0].server_key",
            "invalid type: string \"sk_live\", expected `x`".into(),
        );
        assert_eq!(m, "invalid type: string \"…\", expected `…`");
        let m = mask_values(
            "kafka.properties.\"sasl.password\"",
            "unknown `hunter2`".into(),
        );
        assert_eq!(m, "unknown `…`");
        let kept = "invalid type: string \"soon\"".to_string();
        assert_eq!(mask_values("kafka.linger_ms", kept.clone()), kept);
    }
}
