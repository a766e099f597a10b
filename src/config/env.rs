//! The override layer: `TRACKGATE_…` environment variables and CLI flags,
//! applied as `(dotted.path, raw value)` pairs to the parsed TOML tree
//! before it is deserialized, so unknown keys and wrong types are reported
//! exactly as for the file.
//!
//! Why hand-written rather than `figment` (TOML + `TRACKGATE_` env layers),
//! checked against figment 0.10.19: its env provider turns
//! `TRACKGATE_SOURCES__0__WRITE_KEY` into a map `{sources: {"0": …}}` that
//! replaces the `[[sources]]` array instead of indexing into it, so array
//! overrides (documented above, and how deployments set per-source keys)
//! fail with "found map, expected a sequence"; and its errors name keys as
//! `default.limits.max_evnt_bytes` (profile prefix, dotted indices) where
//! ours say `limits.max_evnt_bytes` and `sources[0].id`. Unknown-key errors
//! and scalar overrides would work, but not all of the contract; these
//! eighty lines keep it whole.

use std::path::Path;

use serde::Deserialize;

use super::ConfigError;

/// Environment variables with this prefix override configuration keys.
pub const ENV_PREFIX: &str = "TRACKGATE_";

/// Environment variables with the prefix that are not configuration keys.
pub(super) const ENV_RESERVED: &[&str] = &["TRACKGATE_CONFIG", "TRACKGATE_LOG", "TRACKGATE_BIN"];

pub(super) fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.display().to_string(),
        source,
    })
}

/// The table whose keys are librdkafka property names (`sasl.password`):
/// the rest of a variable's name after it is one key.
const LIBRDKAFKA_TABLE: [&str; 2] = ["kafka", "properties"];

/// An override's key path, one segment per table or array index.
pub(super) type OverridePath = Vec<String>;

/// `TRACKGATE_KAFKA__TOPICS__CLICKS` → `kafka.topics.clicks`: segments
/// split at `__`, lowercased. Under `kafka.properties` the rest of the name
/// is one librdkafka property, whose dots are written as `.` where the
/// environment allows it or as `_` where a shell does not
/// (`TRACKGATE_KAFKA__PROPERTIES__SASL_PASSWORD` → `sasl.password`; a final
/// `_FILE` stays `_file`, the secret-file form).
pub(super) fn env_key_to_path(var: &str) -> OverridePath {
    let segments: Vec<String> = var[ENV_PREFIX.len()..]
        .split("__")
        .map(|s| s.to_ascii_lowercase())
        .collect();
    if segments.len() > LIBRDKAFKA_TABLE.len() && segments[..2] == LIBRDKAFKA_TABLE {
        let name = segments[2..].join(".");
        let (stem, file) = match name.strip_suffix("_file") {
            Some(stem) => (stem, "_file"),
            None => (name.as_str(), ""),
        };
        let property = format!("{}{file}", stem.replace('_', "."));
        return vec![segments[0].clone(), segments[1].clone(), property];
    }
    segments
}

/// A CLI flag's dotted key (`server.listen`) as a path.
pub(super) fn dotted_to_path(key: &str) -> OverridePath {
    key.split('.').map(str::to_string).collect()
}

/// The path as errors name keys (`sources.0.id`).
fn display(path: &[String]) -> String {
    path.join(".")
}

/// Reads a raw override as a TOML literal when it is one, else as a string;
/// a string field stays a string even when the text looks like a number.
fn parse_override(raw: &str, existing: Option<&toml::Value>) -> toml::Value {
    if matches!(existing, Some(toml::Value::String(_))) {
        return toml::Value::String(raw.to_string());
    }
    #[derive(Deserialize)]
    struct Wrapper {
        v: toml::Value,
    }
    match toml::from_str::<Wrapper>(&format!("v = {raw}")) {
        Ok(w) => w.v,
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

pub(super) fn apply_override(
    root: &mut toml::Value,
    segments: &[String],
    raw: &str,
) -> Result<(), ConfigError> {
    let path = display(segments);
    let path = path.as_str();
    let segments: Vec<&str> = segments
        .iter()
        .map(String::as_str)
        .filter(|s| !s.is_empty())
        .collect();
    let Some((last, parents)) = segments.split_last() else {
        return Err(ConfigError::key(path, "empty override key"));
    };
    let mut node = root;
    for seg in parents {
        node = match node {
            toml::Value::Table(t) => t
                .entry(seg.to_string())
                .or_insert_with(|| toml::Value::Table(Default::default())),
            toml::Value::Array(a) => {
                let idx: usize = seg
                    .parse()
                    .map_err(|_| ConfigError::key(path, "expected an array index"))?;
                if idx == a.len() {
                    a.push(toml::Value::Table(Default::default()));
                }
                a.get_mut(idx)
                    .ok_or_else(|| ConfigError::key(path, "array index out of range"))?
            }
            _ => return Err(ConfigError::key(path, "not a table")),
        };
    }
    match node {
        toml::Value::Table(t) => {
            let value = parse_override(raw, t.get(*last));
            t.insert(last.to_string(), value);
        }
        toml::Value::Array(a) => {
            let idx: usize = last
                .parse()
                .map_err(|_| ConfigError::key(path, "expected an array index"))?;
            let value = parse_override(raw, a.get(idx));
            if idx < a.len() {
                a[idx] = value;
            } else if idx == a.len() {
                a.push(value);
            } else {
                return Err(ConfigError::key(path, "array index out of range"));
            }
        }
        _ => return Err(ConfigError::key(path, "not a table")),
    }
    Ok(())
}
