//! A redacting string for URLs and passwords.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A secret (a connection URL or password). `Debug` prints `Secret(***)`;
/// `Display` prints a URL with its password and query string replaced by
/// `***` (enough to say which server), anything else as `***`. Serializing
/// writes the redacted form too, so a config can be logged or dumped safely.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    /// The real value, for handing to a driver. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&persistence_core::error::redact_url(&self.0))
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret(s.to_string())
    }
}
impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret(s)
    }
}

#[cfg(test)]
mod tests {
    use super::Secret;

    #[test]
    fn never_shows_the_password() {
        let s = Secret::new("postgres://app:hunter2@db:5432/app?password=hunter2");
        assert_eq!(format!("{s:?}"), "Secret(***)");
        assert_eq!(s.to_string(), "postgres://app:***@db:5432/app");
        assert!(
            !serde_json::to_string(&s)
                .unwrap_or_default()
                .contains("hunter2")
        );
        assert_eq!(
            s.expose(),
            "postgres://app:hunter2@db:5432/app?password=hunter2"
        );
    }
}
