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
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

/// A one-time enrollment token as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnrollToken {
    pub id: Uuid,
    /// Lowercase hex SHA-256 of the secret.
    pub hash: String,
    /// The name the enrolled host will have (its certificate CN).
    pub host_name: HostName,
    /// `host:port` of the agent API, the certificate's SAN.
    pub address: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// Set when consumed; a token is used at most once.
    pub used_at: Option<DateTime<Utc>>,
}
