//! HTTP: one router per resource, merged here with a trace layer.
//!
//! - `/ocpi/…` — OCPI 2.2.1 for CPOs ([`ocpi`]), `Authorization: Token <base64>`.
//! - `/api/v1/…` — JSON API, OpenAPI-documented at `/api/openapi.json`: users and charging
//!   requests (`Authorization: Bearer <session token>`), topology, meter values and the cockpit
//!   (CPO credentials, `Authorization: Token <base64>`).
//! - `/healthz`, `/metrics`.

mod audit;
mod auth;
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
mod users;
mod wallet;
mod web;

pub use error::ApiError;
pub use web::web_dir;

use crate::app::AppState;
use axum::Router;
use axum::extract::{MatchedPath, Request};
use tower_http::trace::TraceLayer;

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(ocpi::router())
        .merge(users::router(&state.limits))
        .merge(requests::router())
        .merge(groups::router())
        .merge(meter::router())
        .merge(cockpit::router())
        .merge(wallet::router(&state.limits))
        .merge(audit::router(&state.limits))
        .merge(events::router())
        .merge(operator::router())
        .merge(openapi::router())
        .merge(web::router())
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            let route = req
                .extensions()
                .get::<MatchedPath>()
                .map_or(req.uri().path(), MatchedPath::as_str);
            tracing::debug_span!("http", method = %req.method(), route = %route)
        }))
        .with_state(state)
}
