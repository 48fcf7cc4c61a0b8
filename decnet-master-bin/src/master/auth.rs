//! Bearer tokens on the operator API: stored hashed; a missing or unknown token is 401, a
//! viewer on an admin route is 403.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use decnet_core::model::Role;
use decnet_web::ApiError;
use std::sync::Arc;

use super::layout::token_hash;
use super::state::Master;

/// The caller's role, from `Authorization: Bearer <token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller(pub Role);

impl Caller {
    /// Admin routes call this first.
    pub fn admin(self) -> Result<(), ApiError> {
        match self.0 {
            Role::Admin => Ok(()),
            Role::Viewer => Err(ApiError::forbidden("this route needs an admin token")),
        }
    }
}

/// An admin caller. As an extractor it refuses a viewer with 403 before the body is read, so
/// a viewer's malformed body is 403, never 422 (extractors run in order, the body's last).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admin;

impl FromRequestParts<Arc<Master>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, m: &Arc<Master>) -> Result<Self, ApiError> {
        Caller::from_request_parts(parts, m).await?.admin()?;
        Ok(Admin)
    }
}

impl FromRequestParts<Arc<Master>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, m: &Arc<Master>) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                axum::http::StatusCode::UNAUTHORIZED,
                "missing or invalid token",
            )
        };
        let header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or_else(unauthorized)?;
        let found = m
            .repo
            .api_token_by_hash(&token_hash(token))
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "store error");
                ApiError::internal("store unavailable")
            })?;
        found.map(|t| Caller(t.role)).ok_or_else(unauthorized)
    }
}
