//! Authentication extractors: EV users by bearer session token, CPOs by their OCPI
//! credentials token.

use super::ApiError;
use crate::app::AppState;
use crate::store::users::{self, User};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// An authenticated EV user (`Authorization: Bearer <session token>`).
pub struct AuthUser(pub User);

impl FromRequestParts<AppState> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(ApiError::Unauthorized)?;
        let mut conn = state.db.conn().await?;
        users::by_session_token(&mut conn, token)
            .await?
            .map(AuthUser)
            .ok_or(ApiError::Unauthorized)
    }
}

/// An authenticated, registered CPO (`Authorization: Token <base64 token C>`).
pub struct AuthCpo(pub crate::store::parties::Party);

impl AuthCpo {
    /// The CPO as the ingestion layer's [`Actor`](crate::ingest::Actor): its own codes only.
    pub fn actor(&self) -> crate::ingest::Actor<'_> {
        crate::ingest::Actor::Cpo(&self.0)
    }
}

impl FromRequestParts<AppState> for AuthCpo {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let caller = super::ocpi::resolve_token(parts, state)
            .await
            .map_err(|_| ApiError::Unauthorized)?;
        let party_row = caller.registered_party().ok_or(ApiError::Unauthorized)?;
        let mut conn = state.db.conn().await?;
        crate::store::parties::get_party(&mut conn, party_row)
            .await?
            .filter(|p| p.status == "registered")
            .map(AuthCpo)
            .ok_or(ApiError::Unauthorized)
    }
}
