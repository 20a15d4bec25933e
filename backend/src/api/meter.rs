//! Meter values in (CPO credentials): OCPP-style measurands per EVSE, in batches.

use super::auth::AuthCpo;
use super::error::ApiError;
use crate::app::AppState;
use crate::ingest::meter::{self, MeterValuesBatch};
use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Meter-value routes.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/meter-values", post(post_batch))
}

/// How many readings were stored.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Accepted {
    /// Readings stored (one per `MeterValue`).
    pub accepted: usize,
}

/// Stores a batch of meter values (all or nothing).
#[utoipa::path(post, path = "/api/v1/meter-values", tag = "meter values",
    security(("ocpi_token" = [])), request_body = MeterValuesBatch,
    responses((status = 200, body = Accepted), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody),
        (status = 403, body = super::error::ErrorBody)))]
async fn post_batch(
    State(state): State<AppState>,
    AuthCpo(party): AuthCpo,
    body: Bytes,
) -> Result<Json<Accepted>, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(&body).map_err(|e| {
        metrics::counter!("evflex_meter_values_errors_total").increment(1);
        ApiError::BadRequest(format!("body: invalid JSON: {e}"))
    })?;
    match meter::ingest(&state.db, value, &party).await {
        Ok(n) => {
            metrics::counter!("evflex_meter_values_total").increment(n as u64);
            state.engine.events.meter_values(&body);
            Ok(Json(Accepted { accepted: n }))
        }
        Err(e) => {
            metrics::counter!("evflex_meter_values_errors_total").increment(1);
            Err(e.into())
        }
    }
}
