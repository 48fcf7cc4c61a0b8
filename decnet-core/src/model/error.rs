//! The one validation error of the model: it names the field, the value and the rule.

use std::fmt;

/// A value that broke a rule. `field` is a path such as `deckies[2].ip` or `subnet`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct FieldError {
    /// Where the value was found: `deckies[2].ip`, `[decky-01] services (line 4)`, `--subnet`.
    pub field: String,
    /// The offending value, as given.
    pub value: String,
    /// The rule it broke, phrased to follow the value (`is not an IPv4 address`).
    pub rule: String,
}

impl FieldError {
    /// A field error; `value` is copied as given.
    pub fn new(field: impl Into<String>, value: &str, rule: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            value: value.to_string(),
            rule: rule.into(),
        }
    }

    /// Prefixes the field path, e.g. `ip` → `deckies[3].ip`.
    pub fn within(mut self, prefix: &str) -> Self {
        self.field = if self.field.is_empty() {
            prefix.to_string()
        } else {
            format!("{prefix}.{}", self.field)
        };
        self
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.value.is_empty() {
            write!(f, "{}: {}", self.field, self.rule)
        } else {
            write!(f, "{}: {:?} {}", self.field, self.value, self.rule)
        }
    }
}
