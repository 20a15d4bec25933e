//! Stationary batteries (CPO credentials, issue 15): the site's battery controller posts what
//! it measures and reads the power the plan gives its battery. Both are scoped like the
//! group: another party's group, or a battery the group does not declare, answers 404.

use super::auth::AuthCpo;
use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::domain::{TIME_STEP_S, format_rfc3339, step_start, timestep_of};
use crate::engine::battery;
use crate::ingest::batteries::{self, BatteryStateSpec, Posted};
use crate::ingest::topology;
use crate::store::schedules;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Battery routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/groups/{id}/batteries/{battery_id}/state",
            put(put_state),
        )
        .route(
            "/api/v1/groups/{id}/batteries/{battery_id}/setpoints",
            get(setpoints),
        )
}

/// One period of a battery's plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatteryPeriod {
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339).
    pub end: String,
    /// Power at the battery's meter (W, + charging, − discharging).
    pub power_w: i64,
}

/// The power the plan in force gives one battery, from now to its horizon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatterySetpoints {
    /// Group id.
    pub group_id: i64,
    /// Battery id within the group.
    pub battery_id: String,
    /// Timestep of the schedule the periods come from; absent before the group's first plan.
    pub timestep: Option<i64>,
    /// Its revision within the timestep (0: the tick's; then the event re-plans').
    pub revision: Option<i64>,
    /// Its keccak-256 hash, committed on chain with the schedule (`evflex verify`).
    pub schedule_hash: Option<String>,
    /// The periods still to come, in order; empty: hold the battery idle.
    pub periods: Vec<BatteryPeriod>,
}

/// Stores a battery's measured state; the group's next plan starts from it.
#[utoipa::path(put, path = "/api/v1/groups/{id}/batteries/{battery_id}/state",
    tag = "topology", security(("ocpi_token" = [])),
    params(("id" = i64, Path, description = "group id"),
        ("battery_id" = String, Path, description = "battery id within the group")),
    request_body = BatteryStateSpec,
    responses((status = 204), (status = 400, body = super::error::ErrorBody),
        (status = 404, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody, description = "a newer state is stored")))]
async fn put_state(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path((id, battery_id)): Path<(i64, String)>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let spec: BatteryStateSpec = parse_body(&body)?;
    let now = state.clock.now();
    match batteries::set_state(&state.db, cpo.actor(), id, &battery_id, &spec, now).await? {
        Posted::Stored => Ok(StatusCode::NO_CONTENT),
        Posted::Stale => Err(ApiError::Conflict(format!(
            "battery {battery_id:?}: a state measured later is stored; this one is not"
        ))),
    }
}

/// The power the plan in force gives a battery, period by period.
#[utoipa::path(get, path = "/api/v1/groups/{id}/batteries/{battery_id}/setpoints",
    tag = "topology", security(("ocpi_token" = [])),
    params(("id" = i64, Path, description = "group id"),
        ("battery_id" = String, Path, description = "battery id within the group")),
    responses((status = 200, body = BatterySetpoints),
        (status = 404, body = super::error::ErrorBody)))]
async fn setpoints(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path((id, battery_id)): Path<(i64, String)>,
) -> Result<Json<BatterySetpoints>, ApiError> {
    let now = state.clock.now();
    let mut conn = state.db.conn().await?;
    let group = topology::owned_group(&mut conn, cpo.actor(), id)
        .await?
        .record;
    let spec = group
        .batteries
        .iter()
        .find(|b| b.id == battery_id)
        .ok_or_else(|| ApiError::NotFound(format!("group {id} has no battery {battery_id:?}")))?;
    let now_step = timestep_of(now, TIME_STEP_S) as i64;
    let mut out = BatterySetpoints {
        group_id: id,
        battery_id: battery_id.clone(),
        timestep: None,
        revision: None,
        schedule_hash: None,
        periods: Vec::new(),
    };
    let Some(schedule) = schedules::latest_battery_plan(&mut conn, id, now_step + 1).await? else {
        return Ok(Json(out));
    };
    let step_s = schedule.time_step_s;
    let t0 = step_start(schedule.timestep as u64, TIME_STEP_S);
    out.periods = schedule
        .battery_w
        .iter()
        .enumerate()
        .map(|(t, w)| (t0 + t as i64 * step_s, *w))
        .filter(|(start, _)| start + step_s > now)
        .map(|(start, w)| BatteryPeriod {
            start: format_rfc3339(start),
            end: format_rfc3339(start + step_s),
            power_w: battery::share_w(spec, &group.batteries, w),
        })
        .collect();
    out.timestep = Some(schedule.timestep);
    out.revision = Some(schedule.revision);
    out.schedule_hash = Some(schedule.schedule_hash);
    Ok(Json(out))
}
