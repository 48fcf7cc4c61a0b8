//! Operator API tokens and one-time enrollment tokens, as the store keeps them: hashed, never
//! the secret itself.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::error::FieldError;
use super::names::HostName;

/// What an API token may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Everything.
    Admin,
    /// Read-only routes.
    Viewer,
}

impl Role {
    /// The wire name (`"admin"`, `"viewer"`).
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Viewer => "viewer",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Role {
    type Err = FieldError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            _ => Err(FieldError::new("role", s, "must be admin or viewer")),
        }
    }
}

/// An operator API token as stored: its id, the SHA-256 of its secret, its role.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiToken {
    /// The token's id, for listing and revoking it.
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    /// What the token may do.
    pub role: Role,
    /// When the token was created.
    pub created_at: DateTime<Utc>,
}

/// Lowercase hex SHA-256 of a token's text (surrounding whitespace trimmed): what the store
/// keeps of operator API tokens and enrollment tokens.
///
/// ```
/// let h = decnet_core::model::auth::token_hash(" secret\n");
/// assert_eq!(h.len(), 64);
/// assert_eq!(h, decnet_core::model::auth::token_hash("secret"));
/// ```
pub fn token_hash(token: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(token.trim().as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Constant-time equality of two hex digests or fingerprints (it does not stop at the first
/// differing byte).
pub fn digest_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A one-time enrollment token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    /// The token's id.
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    /// The name the enrolled host will have (its certificate CN).
    pub host_name: HostName,
    /// `host:port` of the agent API, the certificate's SAN.
    pub address: String,
    /// When the token was issued.
    pub created_at: DateTime<Utc>,
    /// After this instant the token no longer enrolls anything.
    pub expires_at: DateTime<Utc>,
    /// Set when consumed; a token is used at most once.
    pub used_at: Option<DateTime<Utc>>,
}

/// The text of a one-time enrollment token: `dnet1_<secret>_<ca fingerprint>`.
///
/// The secret (43 characters of base64url, 256 bits) authorizes one enrollment; the CA's
/// fingerprint (64 lowercase hex) lets the worker verify the master before it trusts anything
/// the master says. The store keeps only the SHA-256 of the whole text.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrollTokenText {
    /// The one-time secret (43 characters of base64url); redacted in `Debug`.
    pub secret: String,
    /// Lowercase hex SHA-256 of the master CA's DER, which the worker pins before enrolling.
    pub ca_fingerprint: String,
}

impl fmt::Debug for EnrollTokenText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnrollTokenText")
            .field("secret", &"<redacted>")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish()
    }
}

/// Prefix of enrollment tokens (versioned).
pub const ENROLL_TOKEN_PREFIX: &str = "dnet1_";

impl EnrollTokenText {
    /// The token as the operator copies it.
    pub fn render(&self) -> String {
        format!(
            "{ENROLL_TOKEN_PREFIX}{}_{}",
            self.secret, self.ca_fingerprint
        )
    }

    /// Parses a token, naming what is wrong (without echoing the secret).
    pub fn parse(text: &str) -> Result<Self, FieldError> {
        let bad = |rule: &str| FieldError::new("token", "", rule.to_string());
        let rest = text
            .trim()
            .strip_prefix(ENROLL_TOKEN_PREFIX)
            .ok_or_else(|| bad("is not a DECNET enrollment token (expected dnet1_…)"))?;
        let (secret, fp) = rest
            .rsplit_once('_')
            .ok_or_else(|| bad("is truncated: it has no CA fingerprint"))?;
        let secret_ok = secret.len() == 43
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if !secret_ok {
            return Err(bad(
                "has a malformed secret (43 base64url characters expected)",
            ));
        }
        let fp_ok = fp.len() == 64 && fp.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !fp_ok {
            return Err(bad(
                "has a malformed CA fingerprint (64 lowercase hex characters expected)",
            ));
        }
        Ok(Self {
            secret: secret.to_string(),
            ca_fingerprint: fp.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn enroll_token_round_trip_and_errors() {
        let t = EnrollTokenText {
            secret: "a".repeat(40) + "-_Z",
            ca_fingerprint: "0123456789abcdef".repeat(4),
        };
        let text = t.render();
        assert!(text.starts_with("dnet1_"));
        assert_eq!(EnrollTokenText::parse(&format!(" {text}\n")).unwrap(), t);
        assert!(
            !format!("{t:?}").contains("aaaa"),
            "Debug never shows the secret"
        );
        for bad in [
            "",
            "dnet2_x",
            "dnet1_abc",
            &format!("dnet1_{}_{}", "a".repeat(42), "0".repeat(64)),
            &format!("dnet1_{}_{}", "a".repeat(43), "0".repeat(63)),
            &format!("dnet1_{}_{}", "a".repeat(43), "A".repeat(64)),
            &format!("dnet1_{}!_{}", "a".repeat(42), "0".repeat(64)),
        ] {
            let e = EnrollTokenText::parse(bad).unwrap_err();
            assert_eq!(e.field, "token");
            assert!(e.value.is_empty(), "the secret is never echoed");
        }
        assert_eq!("viewer".parse::<Role>().unwrap(), Role::Viewer);
        assert!("root".parse::<Role>().is_err());
    }
}
