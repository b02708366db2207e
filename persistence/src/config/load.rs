//! Loading: interpolation, layering (file, profile, environment), errors with key paths and lines.

use std::path::{Path, PathBuf};

use figment::Figment;
use figment::providers::{Format, Json, Serialized, Toml, Yaml};

use super::{PersistenceConfig, keys};
use persistence_core::error::{Error, Result};

/// Replace `${VAR}` and `${VAR:-default}` with environment values; `$${`
/// stays a literal `${`. A variable that is unset (and has no default) is a
/// `Config` error naming the variable and the line.
pub fn interpolate(text: &str, lookup: impl Fn(&str) -> Option<String>) -> Result<String> {
    let mut out = String::with_capacity(text.len());
    for (lineno, line) in text.split_inclusive('\n').enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find('$') {
            out.push_str(&rest[..i]);
            let after = &rest[i..];
            if let Some(tail) = after.strip_prefix("$${") {
                out.push_str("${");
                rest = tail;
            } else if let Some(tail) = after.strip_prefix("${") {
                let Some(end) = tail.find('}') else {
                    return Err(Error::config(format!(
                        "line {}: unclosed `${{`",
                        lineno + 1
                    )));
                };
                let expr = &tail[..end];
                let (name, default) = match expr.split_once(":-") {
                    Some((n, d)) => (n, Some(d)),
                    None => (expr, None),
                };
                let valid = !name.is_empty()
                    && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !name.starts_with(|c: char| c.is_ascii_digit());
                if !valid {
                    return Err(Error::config(format!(
                        "line {}: `${{{}}}` is not a valid variable reference",
                        lineno + 1,
                        expr.chars().take(40).collect::<String>()
                    )));
                }
                match lookup(name).or_else(|| default.map(str::to_string)) {
                    Some(v) => out.push_str(&v),
                    None => {
                        return Err(Error::config(format!(
                            "line {}: environment variable {name} is not set (write ${{{name}:-default}} for a fallback)",
                            lineno + 1
                        )));
                    }
                }
                rest = &tail[end + 1..];
            } else {
                out.push('$');
                rest = &after[1..];
            }
        }
        out.push_str(rest);
    }
    Ok(out)
}

/// Builds a [`PersistenceConfig`] from a file, a profile and the environment.
#[derive(Debug, Clone, Default)]
pub struct ConfigLoader {
    source: Option<(PathBuf, String)>,
    profile: Option<String>,
    env: Option<Vec<(String, String)>>,
}

enum Fmt {
    Yaml,
    Toml,
    Json,
}

fn format_of(path: &Path) -> Fmt {
    match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => Fmt::Toml,
        Some("json") => Fmt::Json,
        _ => Fmt::Yaml,
    }
}

impl ConfigLoader {
    /// A loader with no file (environment overrides only).
    pub fn new() -> Self {
        Self::default()
    }

    /// Read `path` (`.yaml`/`.yml`, `.toml` or `.json`).
    pub fn file(mut self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!("cannot read config file {}: {e}", path.display())).with_source(e)
        })?;
        self.source = Some((path.to_path_buf(), text));
        Ok(self)
    }

    /// Use `text` as if read from `name` (tests, embedded configs).
    pub fn text(mut self, name: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.source = Some((name.into(), text.into()));
        self
    }

    /// Select a profile (default: `PERSISTENCE_ENV`, else `development`).
    pub fn profile(mut self, profile: impl Into<String>) -> Self {
        self.profile = Some(profile.into());
        self
    }

    /// Use these variables instead of the process environment (tests).
    pub fn env(mut self, vars: impl IntoIterator<Item = (String, String)>) -> Self {
        self.env = Some(vars.into_iter().collect());
        self
    }

    fn var(&self, name: &str) -> Option<String> {
        match &self.env {
            Some(vars) => vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()),
            None => std::env::var(name).ok(),
        }
    }

    /// The selected profile.
    pub fn selected_profile(&self) -> String {
        self.profile
            .clone()
            .or_else(|| self.var(keys::ENV_PROFILE))
            .unwrap_or_else(|| "development".to_string())
    }

    /// Load, layer, check. Errors are `Config` and name the key path (and the line, for a file).
    pub fn load(&self) -> Result<PersistenceConfig> {
        let profile = self.selected_profile();
        let (mut figment, text, name) = match &self.source {
            Some((path, raw)) => {
                let text = interpolate(raw, |v| self.var(v))
                    .map_err(|e| Error::config(format!("{}: {}", path.display(), e.message())))?;
                let f = match format_of(path) {
                    Fmt::Yaml => Figment::from(Yaml::string(&text)),
                    Fmt::Toml => Figment::from(Toml::string(&text)),
                    Fmt::Json => Figment::from(Json::string(&text)),
                };
                (f, Some(text), path.display().to_string())
            }
            None => (Figment::new(), None, "environment".to_string()),
        };
        // The profile overlay, then the environment.
        let overlay_key = format!("{}.{profile}", keys::PROFILES);
        if let Ok(overlay) = figment.find_value(&overlay_key) {
            figment = figment.merge(Serialized::defaults(overlay));
        } else if self.source.is_some() && profile != "development" {
            tracing::debug!(profile, "config has no section for this profile");
        }
        let env_vars: Vec<(String, String)> = match &self.env {
            Some(vars) => vars.clone(),
            None => std::env::vars().collect(),
        };
        let overrides: Vec<(String, String)> = env_vars
            .into_iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(keys::ENV_PREFIX)
                    .map(|rest| (rest.to_string(), v))
            })
            .collect();
        if !overrides.is_empty() {
            // `PERSISTENCE__A__B=v` sets `a.b`, from the process (or injected) environment.
            let mut dict = serde_json::Map::new();
            for (key, value) in overrides {
                let path: Vec<String> = key.split("__").map(|s| s.to_ascii_lowercase()).collect();
                insert_path(&mut dict, &path, parse_scalar(&value));
            }
            figment = figment.merge(Serialized::defaults(serde_json::Value::Object(dict)));
        }
        let config: PersistenceConfig = figment
            .extract()
            .map_err(|e| figment_error(&e, &name, text.as_deref()))?;
        config
            .validate()
            .map_err(|e| Error::config(format!("{name}: {}", e.message())))?;
        Ok(config)
    }
}

fn parse_scalar(v: &str) -> serde_json::Value {
    match v {
        "true" => serde_json::Value::Bool(true),
        "false" => serde_json::Value::Bool(false),
        _ => v
            .parse::<i64>()
            .map(serde_json::Value::from)
            .unwrap_or_else(|_| serde_json::Value::String(v.to_string())),
    }
}

fn insert_path(
    dict: &mut serde_json::Map<String, serde_json::Value>,
    path: &[String],
    value: serde_json::Value,
) {
    match path {
        [] => {}
        [last] => {
            dict.insert(last.clone(), value);
        }
        [first, rest @ ..] => {
            let entry = dict
                .entry(first.clone())
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if !entry.is_object() {
                *entry = serde_json::Value::Object(serde_json::Map::new());
            }
            if let serde_json::Value::Object(inner) = entry {
                insert_path(inner, rest, value);
            }
        }
    }
}

/// Find the line of a key path in an indented YAML/TOML-ish text: each
/// segment must appear as `segment:` (or `segment =`) after the previous one.
fn line_of(text: &str, path: &[String]) -> Option<usize> {
    let mut from = 0;
    let mut found = None;
    let lines: Vec<&str> = text.lines().collect();
    for seg in path {
        let pos = lines.iter().enumerate().skip(from).find(|(_, l)| {
            let t = l.trim_start().trim_start_matches("- ");
            let t = t.trim_start_matches(['{', ' ']);
            t.starts_with(&format!("{seg}:"))
                || t.starts_with(&format!("{seg} ="))
                || t.starts_with(&format!("\"{seg}\""))
                || l.contains(&format!(" {seg}:"))
                || l.contains(&format!("{{{seg}:"))
        })?;
        found = Some(pos.0 + 1);
        from = pos.0;
    }
    found
}

/// The full key path of an error about `field` found at `path`. Figment
/// prefixes an error with the key being deserialized when the error arises
/// while reading that key (an unknown key: the path already ends with it),
/// but not when the enclosing struct reports it (a missing key, or an
/// unknown key seen through `#[serde(flatten)]`): append the field only then.
fn key_path(path: &[String], field: &str) -> Vec<String> {
    let mut p = path.to_vec();
    if p.last().map(String::as_str) != Some(field) {
        p.push(field.to_string());
    }
    p
}

/// A figment error as a `Config` error: kind without the offending value
/// (it may be a password), key path, file and line.
fn figment_error(e: &figment::Error, source: &str, text: Option<&str>) -> Error {
    use figment::error::Kind;
    let mut msgs = Vec::new();
    for err in e.clone() {
        let path = err.path.join(".");
        let what = match &err.kind {
            Kind::UnknownField(field, expected) => {
                let p = key_path(&err.path, field);
                let key = p.join(".");
                let line = text
                    .and_then(|t| line_of(t, &p))
                    .map(|l| format!(", line {l}"))
                    .unwrap_or_default();
                msgs.push(format!(
                    "unknown key `{key}` ({source}{line}); expected one of: {}",
                    expected.join(", ")
                ));
                continue;
            }
            Kind::MissingField(field) => {
                let key = key_path(&err.path, field).join(".");
                msgs.push(format!("missing key `{key}` ({source})"));
                continue;
            }
            Kind::InvalidType(actual, expected) => {
                format!("expected {expected}, found {}", actual_kind(actual))
            }
            Kind::InvalidValue(actual, expected) => format!(
                "invalid value ({}), expected {expected}",
                actual_kind(actual)
            ),
            Kind::UnknownVariant(_, expected) => {
                format!("unknown variant, expected one of: {}", expected.join(", "))
            }
            Kind::InvalidLength(len, expected) => {
                format!("invalid length {len}, expected {expected}")
            }
            Kind::Message(m) => {
                // Messages from nested deserializers (e.g. humantime) do not echo the value.
                m.clone()
            }
            other => format!("{other}"),
        };
        let line = text
            .and_then(|t| line_of(t, &err.path))
            .map(|l| format!(", line {l}"))
            .unwrap_or_default();
        msgs.push(format!("`{path}`: {what} ({source}{line})"));
    }
    Error::config(msgs.join("; "))
}

fn actual_kind(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual as A;
    match actual {
        A::Bool(_) => "a boolean",
        A::Unsigned(_) | A::Signed(_) => "an integer",
        A::Float(_) => "a float",
        A::Char(_) => "a character",
        A::Str(_) => "a string",
        A::Bytes(_) => "bytes",
        A::Unit => "unit",
        A::Option => "an option",
        A::NewtypeStruct => "a newtype",
        A::Seq => "a sequence",
        A::Map => "a map",
        A::Enum => "an enum",
        A::UnitVariant => "a unit variant",
        A::NewtypeVariant => "a newtype variant",
        A::TupleVariant => "a tuple variant",
        A::StructVariant => "a struct variant",
        A::Other(_) => "another value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        let e = ConfigLoader::new()
            .text("persistence.yaml", text)
            .env(Vec::new())
            .load()
            .expect_err("config error");
        assert_eq!(e.kind(), &persistence_core::ErrorKind::Config, "{e}");
        e.to_string()
    }

    #[test]
    fn unknown_key_is_named_once_with_its_line() {
        let msg = error_of("databases:\n  main:\n    kind: memory\n    bogus: 1\n");
        assert!(
            msg.contains("unknown key `databases.main.bogus` (persistence.yaml, line 4)"),
            "{msg}"
        );
        assert!(!msg.contains("bogus.bogus"), "{msg}");
        let msg = error_of(
            "databases:\n  main:\n    kind: postgres\n    url: postgres://h/db\n    pool:\n      max_conections: 5\n",
        );
        assert!(
            msg.contains(
                "unknown key `databases.main.pool.max_conections` (persistence.yaml, line 6)"
            ),
            "{msg}"
        );
        let msg = error_of("bogus: 1\ndatabases:\n  main: { kind: memory }\n");
        assert!(
            msg.contains("unknown key `bogus` (persistence.yaml, line 1)"),
            "{msg}"
        );
        // A key named like its parent is still a different key.
        let msg =
            error_of("cache:\n  default:\n    default: 1\ndatabases:\n  main: { kind: memory }\n");
        assert!(msg.contains("unknown key `cache.default.default`"), "{msg}");
    }

    #[test]
    fn key_paths_append_the_field_only_when_missing() {
        let p = |s: &[&str]| s.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(key_path(&p(&["a", "b"]), "b"), p(&["a", "b"]));
        assert_eq!(key_path(&p(&["a"]), "b"), p(&["a", "b"]));
        assert_eq!(key_path(&[], "b"), p(&["b"]));
    }
}
