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
    // The charge points it names, for the event stream (only when a stream is open).
    let named = (state.engine.events.receivers() > 0).then(|| charge_points_of(&party, &value));
    match meter::ingest(&state.db, value, &party).await {
        Ok(readings) => {
            let n = readings.len();
            metrics::counter!("evflex_meter_values_total").increment(n as u64);
            // The closed loop: cars that draw less or more than they are allowed re-plan
            // their groups.
            crate::engine::closed_loop::after_meter_values(&state.engine, &readings).await;
            if let Some(named) = named {
                let groups = groups_of(&state, named).await;
                state.engine.events.meter(groups, "meter_values");
            }
            Ok(Json(Accepted { accepted: n }))
        }
        Err(e) => {
            metrics::counter!("evflex_meter_values_errors_total").increment(1);
            Err(e.into())
        }
    }
}

/// The (country code, party id, EVSE uid) a batch names, each once.
fn charge_points_of(
    party: &crate::store::parties::Party,
    batch: &serde_json::Value,
) -> Vec<(String, String, String)> {
    let mut keys: Vec<(String, String, String)> = batch["meter_values"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|item| {
            let code = |f: &str, default: &str| {
                item.get(f)
                    .and_then(|v| v.as_str())
                    .unwrap_or(default)
                    .to_owned()
            };
            Some((
                code("country_code", &party.country_code),
                code("party_id", &party.party_id),
                item.get("evse_uid")?.as_str()?.to_owned(),
            ))
        })
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys
}

/// The groups of these charge points (for the event stream, which names groups, never charge
/// points).
async fn groups_of(state: &AppState, keys: Vec<(String, String, String)>) -> Vec<Option<i64>> {
    let Ok(mut conn) = state.db.conn().await else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(keys.len());
    for (cc, pid, uid) in keys {
        out.push(
            crate::store::groups::group_of_evse(&mut conn, &cc, &pid, &uid)
                .await
                .ok()
                .flatten(),
        );
    }
    out
}
