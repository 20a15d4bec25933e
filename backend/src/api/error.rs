//! Errors of the JSON API: one enum, mapped to status codes; internal causes are logged and
//! never sent.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// An `/api/v1` error.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message names the field.
    #[error("{0}")]
    BadRequest(String),
    /// Missing or unknown credentials.
    #[error("authentication required")]
    Unauthorized,
    /// The caller may not act under the codes it named (another party's); the message says why.
    #[error("{0}")]
    Forbidden(String),
    /// The object does not exist (or is not the caller's).
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the current state.
    #[error("{0}")]
    Conflict(String),
    /// Too many requests (a rate limit or a cap); the message says which and when to retry.
    #[error("{0}")]
    TooManyRequests(String),
    /// Something failed inside evflex.
    #[error("internal error")]
    Internal(String),
    /// A dependency (the chain) is not configured or not reachable; the message is safe to show.
    #[error("{0}")]
    Unavailable(String),
}

/// The JSON body of an error.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Machine-readable kind (`bad_request`, `unauthorized`, …).
    pub error: String,
    /// Human-readable message.
    pub message: String,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, kind) = match &self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::TooManyRequests(_) => (StatusCode::TOO_MANY_REQUESTS, "rate_limited"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Internal(cause) => {
                tracing::error!(cause = %cause, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let body = ErrorBody {
            error: kind.to_owned(),
            message: self.to_string(),
        };
        (status, Json(body)).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        match e {
            crate::store::StoreError::Conflict(msg) => Self::Conflict(msg),
            other => Self::Internal(format!("{other:?}")),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::store::StoreError::Db(e).into()
    }
}

impl From<crate::ingest::IngestError> for ApiError {
    fn from(e: crate::ingest::IngestError) -> Self {
        use crate::ingest::IngestError as E;
        match e {
            E::Invalid(m) => Self::BadRequest(m),
            E::Forbidden(m) => Self::Forbidden(m),
            E::UnknownLocation(m) | E::NotFound(m) => Self::NotFound(m),
            E::Conflict(m) | E::PartyUnreachable(m) => Self::Conflict(m),
            E::PartyIncompatible { message, .. } => Self::Conflict(message),
            E::Store(s) => s.into(),
        }
    }
}

impl From<crate::engine::admission::AdmissionError> for ApiError {
    fn from(e: crate::engine::admission::AdmissionError) -> Self {
        use crate::engine::admission::AdmissionError as E;
        match e {
            E::Invalid(m) => Self::BadRequest(m),
            E::Solver(m) => Self::Internal(m),
            E::Store(s) => s.into(),
        }
    }
}

/// Parses a JSON body, naming the offending field on error.
pub fn parse_body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("body: invalid JSON: {e}")))?;
    crate::ingest::ocpi::model::parse(value).map_err(ApiError::BadRequest)
}
