//! The admin API: onboarding CPOs at run time, in either direction, and taking one off, the
//! HTTP twin of `evflex parties` (which works on the database directly).
//!
//! It exists only when the service has an admin credential (`--admin-token`,
//! `EVFLEX_ADMIN_TOKEN`, at least 16 characters; 404 otherwise) and takes
//! `Authorization: Bearer <admin token>`. The token is a secret: compared in constant time and
//! never logged.
//!
//! - `POST   /api/v1/admin/parties/token-a` → 201 `{"token_a", "versions_url"}`: a token A for
//!   a CPO's credentials POST (one use), with the versions URL to hand over with it;
//! - `GET    /api/v1/admin/parties` → every party (no token);
//! - `POST   /api/v1/admin/parties/register` `{"versions_url", "token_a"}` → 201 the party:
//!   evflex starts the handshake with a CPO that issued it a token A;
//! - `DELETE /api/v1/admin/parties/{id}` → 204: the party is unregistered, its tokens stop
//!   working at once and its party codes are free again.

use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::ingest::IngestError;
use crate::ingest::ocpi::credentials;
use crate::store::parties::{self, Party};
use axum::body::Bytes;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Admin routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/admin/parties", get(list))
        .route("/api/v1/admin/parties/token-a", post(create_token_a))
        .route("/api/v1/admin/parties/register", post(register))
        .route("/api/v1/admin/parties/{id}", delete(revoke))
}

/// A caller that presented the admin token.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Some(token) = state.admin_token.as_ref() else {
            return Err(ApiError::NotFound("not found".to_owned()));
        };
        let given = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or(ApiError::Unauthorized)?;
        if super::operator::same(given.as_bytes(), token.expose().as_bytes()) {
            Ok(Self)
        } else {
            Err(ApiError::Unauthorized)
        }
    }
}

/// A new token A.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TokenA {
    /// The token the CPO presents (base64-encoded, `Authorization: Token …`) on its
    /// credentials POST; one POST uses it up.
    pub token_a: String,
    /// evflex's OCPI versions URL, to hand to the CPO with the token.
    pub versions_url: String,
}

/// A party as the admin sees it: never its tokens.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PartyView {
    /// Row id (the `{id}` of `DELETE`).
    pub id: i64,
    /// Its roles' party codes, `CC*PID`.
    pub codes: Vec<String>,
    /// Business name of its first role.
    pub name: String,
    /// `registered` or `unregistered`.
    pub status: String,
    /// The OCPI version in use.
    pub version: Option<String>,
    /// Its versions URL.
    pub versions_url: String,
}

impl From<Party> for PartyView {
    fn from(p: Party) -> Self {
        Self {
            id: p.id,
            codes: p
                .codes()
                .iter()
                .map(|(cc, pid)| format!("{cc}*{pid}"))
                .collect(),
            name: p.name,
            status: p.status,
            version: p.version,
            versions_url: p.versions_url,
        }
    }
}

/// A CPO to register with: its versions URL and the token A it issued to evflex.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterReq {
    /// The CPO's OCPI versions URL.
    pub versions_url: String,
    /// The token A the CPO issued to evflex.
    pub token_a: String,
}

/// Creates a token A for a CPO's credentials POST.
#[utoipa::path(post, path = "/api/v1/admin/parties/token-a", tag = "admin", security(("bearer" = [])),
    responses((status = 201, body = TokenA), (status = 404, description = "No admin credential configured", body = super::error::ErrorBody)))]
async fn create_token_a(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<(StatusCode, Json<TokenA>), ApiError> {
    let token = credentials::new_token();
    let mut conn = state.db.conn().await?;
    parties::add_registration_token(&mut conn, &token, state.clock.now()).await?;
    tracing::info!("admin: token A created");
    Ok((
        StatusCode::CREATED,
        Json(TokenA {
            token_a: token,
            versions_url: state.identity.versions_url.clone(),
        }),
    ))
}

/// Every party, registered or not.
#[utoipa::path(get, path = "/api/v1/admin/parties", tag = "admin", security(("bearer" = [])),
    responses((status = 200, body = [PartyView]), (status = 404, description = "No admin credential configured", body = super::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    _admin: Admin,
) -> Result<Json<Vec<PartyView>>, ApiError> {
    let mut conn = state.db.conn().await?;
    let all = parties::list_all(&mut conn).await?;
    Ok(Json(all.into_iter().map(PartyView::from).collect()))
}

/// evflex registers with a CPO that issued it a token A (the handshake towards the CPO).
#[utoipa::path(post, path = "/api/v1/admin/parties/register", tag = "admin", security(("bearer" = [])),
    request_body = RegisterReq,
    responses((status = 201, body = PartyView),
        (status = 404, description = "No admin credential configured", body = super::error::ErrorBody),
        (status = 409, description = "The CPO is registered already, or holds codes another party holds", body = super::error::ErrorBody),
        (status = 503, description = "The CPO's API could not be used; the message says why", body = super::error::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    _admin: Admin,
    body: Bytes,
) -> Result<(StatusCode, Json<PartyView>), ApiError> {
    let req: RegisterReq = parse_body(&body)?;
    if req.token_a.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "token_a: must not be empty".to_owned(),
        ));
    }
    let now = state.clock.now();
    let id = credentials::register_with(
        &state.db,
        &state.http,
        &state.identity,
        &req.versions_url,
        &req.token_a,
        now,
    )
    .await
    .map_err(|e| match e {
        IngestError::Invalid(m) => ApiError::BadRequest(m),
        IngestError::Conflict(m) | IngestError::Forbidden(m) => ApiError::Conflict(m),
        IngestError::PartyUnreachable(m) => ApiError::Unavailable(m),
        IngestError::PartyIncompatible { code, message } => {
            ApiError::Unavailable(format!("OCPI {code}: {message}"))
        }
        IngestError::NotFound(m) | IngestError::UnknownLocation(m) => ApiError::NotFound(m),
        IngestError::Store(e) => e.into(),
    })?;
    state.tokens.clear();
    let engine = state.engine.clone();
    tokio::spawn(async move { crate::engine::tokens::push_pending(&engine).await });
    let mut conn = state.db.conn().await?;
    let party = parties::get_party(&mut conn, id)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("party {id} vanished")))?;
    tracing::info!(party = id, "admin: registered with a CPO");
    Ok((StatusCode::CREATED, Json(party.into())))
}

/// Unregisters a party: its tokens stop working and its party codes are free again.
#[utoipa::path(delete, path = "/api/v1/admin/parties/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = i64, Path, description = "Party row id")),
    responses((status = 204, description = "Unregistered")))]
async fn revoke(
    State(state): State<AppState>,
    _admin: Admin,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let mut conn = state.db.conn().await?;
    if parties::get_party(&mut conn, id).await?.is_none() {
        return Err(ApiError::NotFound(format!("no party {id}")));
    }
    parties::unregister_party(&mut conn, id, state.clock.now()).await?;
    state.tokens.clear();
    tracing::info!(party = id, "admin: party unregistered");
    Ok(StatusCode::NO_CONTENT)
}
