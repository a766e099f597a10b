//! Tracking plans: one JSON Schema (draft 2020-12) per `track` event name,
//! and one each for the properties of `page` and `screen` events and the
//! traits of `identify` and `group` events, per source.
//!
//! The plan file (`[sources.quality.plan] file`) is a JSON object:
//! ```json
//! {
//!   "track": {
//!     "Order Completed": {"type": "object", "properties": {"total": {"type": "number"}}},
//!     "Signed Up": "schemas/signed_up.json"
//!   },
//!   "page": {"type": "object", "properties": {"path": {"type": "string"}}},
//!   "identify": "schemas/traits.json"
//! }
//! ```
//! A schema is given inline or as a path relative to the plan file. Every
//! schema is compiled once per configuration load (`QualityStage::from_config`
//! at start, `QualityStage::reconfigured` on a reload, which reads the plans
//! again); `$ref` resolves inside a document
//! (`$defs`), never over the network or the file system. Formats
//! (`date-time`, `email`, …) are checked.
//!
//! Modes (Segment Protocols' semantics):
//! - `warn`: the event is kept; its violations are listed in
//!   `context.violations` as `{path, rule}` (a JSON pointer into the event
//!   and the JSON Schema keyword, never the value);
//! - `omit`: as `warn`, and the properties (traits) the schema does not
//!   declare in its top-level `properties`, or whose value violates the
//!   schema, are removed;
//! - `block`: an event with a violation goes to the invalid topic with
//!   reason `schema_violation` and its violations.
//!
//! A `track` name the plan does not list is *unplanned*: `allow` (default),
//! `warn` (violation `{path: "/event", rule: "unplanned"}`) or `block`.
//! Events of a type the plan has no schema for, and `alias`, pass unchecked.
//!
//! `context.violations` belongs to the gateway: a client-sent one is always
//! removed.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use jsonschema::error::ValidationErrorKind;
use jsonschema::Validator;
use serde_json::{Map, Value};

use crate::json;

use super::edit::Edit;
pub use crate::config::{PlanConfig, PlanMode, Unplanned};
use crate::event::EventType;
use crate::metrics;

/// Reject reason (invalid topic, metric label) of a blocked event.
pub const REASON_SCHEMA_VIOLATION: &str = "schema_violation";
/// Where violations are listed in a kept event.
pub const VIOLATIONS_PATH: &[&str] = &["context", "violations"];
/// Rule name of an event name the plan does not list.
pub const RULE_UNPLANNED: &str = "unplanned";
/// Rule name of a property removed in `omit` mode because the schema does
/// not declare it.
pub const RULE_UNDECLARED: &str = "undeclared";
/// Metric label of unplanned event names (keeps label cardinality bounded).
pub const LABEL_UNPLANNED: &str = "unplanned";

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Json {
        path: String,
        source: serde_json::Error,
    },
    #[error("{path}: {message}")]
    Shape { path: String, message: String },
    #[error("{path}: schema of {what} does not compile: {message}")]
    Schema {
        path: String,
        what: String,
        message: String,
    },
}

/// One violation: where in the event, and which JSON Schema keyword.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: String,
    pub rule: &'static str,
}

impl Violation {
    pub fn to_json(&self) -> Value {
        let mut m = Map::with_capacity(2);
        m.insert("path".into(), Value::String(self.path.clone()));
        m.insert("rule".into(), Value::String(self.rule.into()));
        Value::Object(m)
    }
}

/// The plan's decision on one event.
#[derive(Debug, Clone, PartialEq)]
pub enum PlanVerdict {
    /// Keep the event with these edits (violations listed, properties omitted).
    Keep(Vec<Edit>),
    /// Send the event to the invalid topic with these violations.
    Block(Vec<Violation>),
}

struct Schema {
    validator: Validator,
    /// Names in the schema's top-level `properties` (for `omit`).
    declared: HashSet<String>,
}

/// One source's compiled tracking plan.
pub struct TrackingPlan {
    source: String,
    mode: PlanMode,
    unplanned: Unplanned,
    track: HashMap<String, Schema>,
    page: Option<Schema>,
    screen: Option<Schema>,
    identify: Option<Schema>,
    group: Option<Schema>,
}

impl std::fmt::Debug for TrackingPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackingPlan")
            .field("source", &self.source)
            .field("mode", &self.mode)
            .field("track", &self.track.len())
            .finish()
    }
}

impl TrackingPlan {
    /// Reads and compiles the plan `cfg.file` of source `source`; `None`
    /// when the source has no plan.
    pub fn load(source: &str, cfg: &PlanConfig) -> Result<Option<TrackingPlan>, PlanError> {
        let Some(path) = cfg.file.as_deref().filter(|p| !p.as_os_str().is_empty()) else {
            return Ok(None);
        };
        let doc = read_json(path)?;
        let Value::Object(doc) = doc else {
            return Err(shape(path, "a tracking plan is a JSON object"));
        };
        let base = path.parent().unwrap_or(Path::new("."));
        let mut plan = TrackingPlan {
            source: source.to_string(),
            mode: cfg.mode,
            unplanned: cfg.unplanned,
            track: HashMap::new(),
            page: None,
            screen: None,
            identify: None,
            group: None,
        };
        for (key, value) in &doc {
            match key.as_str() {
                "track" => {
                    let Value::Object(events) = value else {
                        return Err(shape(path, "`track` maps event names to schemas"));
                    };
                    for (name, schema) in events {
                        let what = format!("track event `{name}`");
                        plan.track
                            .insert(name.clone(), compile(path, base, &what, schema)?);
                    }
                }
                "page" => plan.page = Some(compile(path, base, "page", value)?),
                "screen" => plan.screen = Some(compile(path, base, "screen", value)?),
                "identify" => plan.identify = Some(compile(path, base, "identify", value)?),
                "group" => plan.group = Some(compile(path, base, "group", value)?),
                other => {
                    return Err(shape(
                        path,
                        &format!(
                            "unknown key `{other}` (expected track, page, screen, identify, group)"
                        ),
                    ))
                }
            }
        }
        Ok(Some(plan))
    }

    /// Checks one event (its type, `event` name and body).
    pub fn check(&self, kind: EventType, name: Option<&str>, body: &json::Map<'_>) -> PlanVerdict {
        let (schema, container, label) = match kind {
            EventType::Track => {
                let name = name.unwrap_or_default();
                match self.track.get_key_value(name) {
                    Some((planned, s)) => (s, "properties", planned.as_str()),
                    None => return self.unplanned(),
                }
            }
            EventType::Page => match &self.page {
                Some(s) => (s, "properties", "page"),
                None => return PlanVerdict::Keep(Vec::new()),
            },
            EventType::Screen => match &self.screen {
                Some(s) => (s, "properties", "screen"),
                None => return PlanVerdict::Keep(Vec::new()),
            },
            EventType::Identify => match &self.identify {
                Some(s) => (s, "traits", "identify"),
                None => return PlanVerdict::Keep(Vec::new()),
            },
            EventType::Group => match &self.group {
                Some(s) => (s, "traits", "group"),
                None => return PlanVerdict::Keep(Vec::new()),
            },
            EventType::Alias => return PlanVerdict::Keep(Vec::new()),
        };
        // The schema validator reads `serde_json` values: the container is
        // converted for events the plan covers (the rest never get here).
        let instance = body
            .get(container)
            .map_or_else(|| Value::Object(Map::new()), json::Value::to_serde);
        let instance = &instance;
        let mut violations = Vec::new();
        // The common case, a valid event, costs one validation pass and no
        // allocation.
        if !schema.validator.is_valid(instance) {
            for e in schema.validator.iter_errors(instance) {
                collect(container, &e, &mut violations);
            }
        }
        let mut edits = Vec::new();
        if self.mode == PlanMode::Omit {
            if let Value::Object(fields) = instance {
                for key in fields.keys() {
                    let undeclared = !schema.declared.contains(key);
                    let prefix = format!("/{container}/{}", escape(key));
                    let invalid = violations
                        .iter()
                        .any(|v| v.path == prefix || v.path.starts_with(&format!("{prefix}/")));
                    if undeclared && !invalid {
                        violations.push(Violation {
                            path: prefix,
                            rule: RULE_UNDECLARED,
                        });
                    }
                    if undeclared || invalid {
                        edits.push(Edit::RemoveField {
                            container,
                            key: key.clone(),
                        });
                    }
                }
            }
        }
        for v in &violations {
            metrics::plan_violation(&self.source, kind.as_str(), label, v.rule);
        }
        if violations.is_empty() {
            return PlanVerdict::Keep(edits);
        }
        if self.mode == PlanMode::Block {
            return PlanVerdict::Block(violations);
        }
        edits.push(Edit::Set(
            VIOLATIONS_PATH,
            json::Value::from(Value::Array(
                violations.iter().map(Violation::to_json).collect(),
            )),
        ));
        PlanVerdict::Keep(edits)
    }

    fn unplanned(&self) -> PlanVerdict {
        let v = Violation {
            path: "/event".into(),
            rule: RULE_UNPLANNED,
        };
        match self.unplanned {
            Unplanned::Allow => PlanVerdict::Keep(Vec::new()),
            Unplanned::Warn => {
                metrics::plan_violation(&self.source, "track", LABEL_UNPLANNED, RULE_UNPLANNED);
                PlanVerdict::Keep(vec![Edit::Set(
                    VIOLATIONS_PATH,
                    json::Value::from(Value::Array(vec![v.to_json()])),
                )])
            }
            Unplanned::Block => {
                metrics::plan_violation(&self.source, "track", LABEL_UNPLANNED, RULE_UNPLANNED);
                PlanVerdict::Block(vec![v])
            }
        }
    }
}

/// The files the plan `cfg.file` is read from: the plan and each schema
/// file it names (what the configuration reload watches). A plan that
/// does not read is just its own path (loading it reports the error).
pub fn files(cfg: &PlanConfig) -> Vec<std::path::PathBuf> {
    let Some(path) = cfg.file.as_deref().filter(|p| !p.as_os_str().is_empty()) else {
        return Vec::new();
    };
    let mut out = vec![path.to_path_buf()];
    let base = path.parent().unwrap_or(Path::new("."));
    if let Ok(Value::Object(doc)) = read_json(path) {
        let named = |v: &Value| v.as_str().map(|rel| base.join(rel));
        for (key, value) in &doc {
            match (key.as_str(), value) {
                ("track", Value::Object(events)) => out.extend(events.values().filter_map(named)),
                _ => out.extend(named(value)),
            }
        }
    }
    out
}

fn shape(path: &Path, message: &str) -> PlanError {
    PlanError::Shape {
        path: path.display().to_string(),
        message: message.into(),
    }
}

fn read_json(path: &Path) -> Result<Value, PlanError> {
    let text = std::fs::read_to_string(path).map_err(|source| PlanError::Io {
        path: path.display().to_string(),
        source,
    })?;
    serde_json::from_str(&text).map_err(|source| PlanError::Json {
        path: path.display().to_string(),
        source,
    })
}

/// Compiles an inline schema, or the schema file a string names (relative
/// to the plan file's directory).
fn compile(plan: &Path, base: &Path, what: &str, value: &Value) -> Result<Schema, PlanError> {
    let loaded;
    let (schema, origin) = match value {
        Value::String(rel) => {
            let p = base.join(rel);
            loaded = read_json(&p)?;
            (&loaded, p)
        }
        Value::Object(_) | Value::Bool(_) => (value, plan.to_path_buf()),
        _ => {
            return Err(shape(
                plan,
                &format!("{what}: a schema is an object or a file name"),
            ))
        }
    };
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(schema)
        .map_err(|e| PlanError::Schema {
            path: origin.display().to_string(),
            what: what.to_string(),
            message: e.to_string(),
        })?;
    let declared = schema
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().cloned().collect())
        .unwrap_or_default();
    Ok(Schema {
        validator,
        declared,
    })
}

/// JSON pointer escaping of one segment.
fn escape(key: &str) -> std::borrow::Cow<'_, str> {
    if key.contains(['~', '/']) {
        key.replace('~', "~0").replace('/', "~1").into()
    } else {
        key.into()
    }
}

/// Turns one validation error into violations with paths into the event.
fn collect(container: &str, e: &jsonschema::ValidationError<'_>, out: &mut Vec<Violation>) {
    let at = format!("/{container}{}", e.instance_path().as_str());
    match e.kind() {
        ValidationErrorKind::Required { property } => out.push(Violation {
            path: format!("{at}/{}", escape(property.as_str().unwrap_or_default())),
            rule: "required",
        }),
        ValidationErrorKind::AdditionalProperties { unexpected }
        | ValidationErrorKind::UnevaluatedProperties { unexpected } => {
            let rule = keyword(e.kind());
            for name in unexpected {
                out.push(Violation {
                    path: format!("{at}/{}", escape(name)),
                    rule,
                });
            }
        }
        kind => out.push(Violation {
            path: at,
            rule: keyword(kind),
        }),
    }
}

/// The JSON Schema keyword a violation broke: a bounded set of labels.
fn keyword(kind: &ValidationErrorKind) -> &'static str {
    use ValidationErrorKind as K;
    match kind {
        K::AdditionalItems { .. } => "additionalItems",
        K::AdditionalProperties { .. } => "additionalProperties",
        K::AnyOf { .. } => "anyOf",
        K::BacktrackLimitExceeded { .. } | K::Pattern { .. } => "pattern",
        K::Constant { .. } => "const",
        K::Contains => "contains",
        K::ContentEncoding { .. } | K::FromUtf8 { .. } => "contentEncoding",
        K::ContentMediaType { .. } => "contentMediaType",
        K::Enum { .. } => "enum",
        K::ExclusiveMaximum { .. } => "exclusiveMaximum",
        K::ExclusiveMinimum { .. } => "exclusiveMinimum",
        K::FalseSchema => "false",
        K::Format { .. } => "format",
        K::MaxItems { .. } => "maxItems",
        K::Maximum { .. } => "maximum",
        K::MaxLength { .. } => "maxLength",
        K::MaxProperties { .. } => "maxProperties",
        K::MinItems { .. } => "minItems",
        K::Minimum { .. } => "minimum",
        K::MinLength { .. } => "minLength",
        K::MinProperties { .. } => "minProperties",
        K::MultipleOf { .. } => "multipleOf",
        K::Not { .. } => "not",
        K::OneOfMultipleValid { .. } | K::OneOfNotValid { .. } => "oneOf",
        K::PropertyNames { .. } => "propertyNames",
        K::Required { .. } => "required",
        K::Type { .. } => "type",
        K::UnevaluatedItems { .. } => "unevaluatedItems",
        K::UnevaluatedProperties { .. } => "unevaluatedProperties",
        K::UniqueItems => "uniqueItems",
        K::Referencing(_) => "$ref",
        K::Custom { .. } => "custom",
    }
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
