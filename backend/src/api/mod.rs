//! HTTP: one router per resource, merged here with a trace layer.
//!
//! - `/ocpi/…` — OCPI 2.2.1 for CPOs ([`ocpi`]), `Authorization: Token <base64>`.
//! - `/api/v1/…` — JSON API, OpenAPI-documented at `/api/openapi.json`: users and charging
//!   requests (`Authorization: Bearer <session token>`), topology, meter values and the cockpit
//!   and stationary batteries (CPO credentials, `Authorization: Token <base64>`).
//! - `/healthz`, `/metrics`.

mod admin;
mod audit;
mod auth;
mod batteries;
mod cockpit;
mod error;
mod events;
mod groups;
mod health;
pub mod limits;
mod meter;
pub mod ocpi;
mod openapi;
pub mod operator;
mod requests;
mod settlement;
mod users;
mod wallet;
mod web;

pub use error::ApiError;
pub use web::web_dir;

use crate::app::AppState;
use crate::outbound::{CORRELATION_ID, REQUEST_ID};
use axum::Router;
use axum::extract::{MatchedPath, Request};
use axum::http::HeaderName;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ocpi::router(state.clone()))
        .merge(users::router(&state.limits))
        .merge(requests::router())
        .merge(groups::router())
        .merge(batteries::router())
        .merge(meter::router())
        .merge(cockpit::router())
        .merge(settlement::router())
        .merge(wallet::router(&state.limits))
        .merge(audit::router(&state.limits))
        .merge(events::router())
        .merge(operator::router())
        .merge(admin::router())
        .merge(openapi::router())
        .merge(web::router())
        .layer(axum::middleware::map_response(plain_rejections_as_json))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or(req.uri().path(), MatchedPath::as_str);
            let header = |name: &str| {
                req.headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned()
            };
            tracing::debug_span!("http", method = %req.method(), route = %route,
                request_id = %header(REQUEST_ID), correlation_id = %header(CORRELATION_ID))
        }))
        // OCPI 2.2.1 transport (and every other route): each request has an `X-Request-ID` and
        // an `X-Correlation-ID`, generated where the caller sent none, logged in the span and
        // echoed in the answer.
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
            REQUEST_ID,
        )))
        .layer(PropagateRequestIdLayer::new(HeaderName::from_static(
            CORRELATION_ID,
        )))
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(REQUEST_ID),
            MakeRequestUuid,
        ))
        .layer(SetRequestIdLayer::new(
            HeaderName::from_static(CORRELATION_ID),
            MakeRequestUuid,
        ))
        .with_state(state)
}

/// axum's own extractor rejections (a path segment that is no number, a body that is not
/// JSON) answer in plain text; on `/api/v1` every 4xx is an [`error::ErrorBody`], as the
/// OpenAPI document says. OCPI routes keep their envelope and the pages their HTML.
async fn plain_rejections_as_json(
    uri: axum::http::Uri,
    response: axum::response::Response,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let status = response.status();
    let plain = response
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(uri.path().starts_with("/api/v1/") && plain && status.is_client_error()) {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let message = String::from_utf8_lossy(&body).trim().to_owned();
    let error = match status {
        axum::http::StatusCode::BAD_REQUEST => ApiError::BadRequest(message),
        axum::http::StatusCode::NOT_FOUND => ApiError::NotFound(message),
        axum::http::StatusCode::UNAUTHORIZED => ApiError::Unauthorized,
        axum::http::StatusCode::TOO_MANY_REQUESTS => ApiError::TooManyRequests(message),
        _ => ApiError::BadRequest(format!("{status}: {message}")),
    };
    let mut out = error.into_response();
    if out.status() != status {
        *out.status_mut() = status;
    }
    out
}
