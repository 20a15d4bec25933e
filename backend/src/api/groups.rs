//! Site topology API (CPO credentials): groups, their capacity, scheduled capacity changes and
//! forecasts; a whole topology file at once. A CPO sees and changes only the groups under its
//! own party codes (`ingest::topology`, ownership); another party's group answers 404, and
//! creating a group under codes that are not the caller's answers 403.

use super::auth::AuthCpo;
use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::engine::replan;
use crate::ingest::topology::{
    self, CapacityChangeSpec, ElectricalSpec, ForecastSpec, GroupSpec, Topology,
};
use crate::store::groups::{self, BatterySpec, CapacityChange, PvInverter};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Topology routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/groups", get(list))
        .route("/api/v1/groups/{id}", get(get_one).put(put_group))
        .route("/api/v1/groups/{id}/capacity", put(set_capacity))
        .route(
            "/api/v1/groups/{id}/capacity-changes",
            post(add_capacity_change),
        )
        .route("/api/v1/groups/{id}/forecast", put(put_forecast))
        .route("/api/v1/topology", put(put_topology))
}

/// A group as stored.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupView {
    /// Group id.
    pub id: i64,
    /// Name.
    pub name: String,
    /// Country code of the members' CPO.
    pub country_code: String,
    /// Party id of the members' CPO.
    pub party_id: String,
    /// Capacity now (W).
    pub capacity_w: i64,
    /// Flat other load (W).
    pub other_load_w: i64,
    /// Member EVSE uids.
    pub evses: Vec<String>,
    /// PV inverters.
    pub pv_inverters: Vec<PvInverter>,
    /// Batteries.
    pub batteries: Vec<BatterySpec>,
    /// Capacity changes from now on.
    pub capacity_changes: Vec<CapacityChange>,
    /// Phases, nested limits and charge-point wiring, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub electrical: Option<ElectricalSpec>,
    /// Limits above their parent's (accepted: the parent binds), one line each.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// The arrival reserve the CPO set (W); absent: evflex's rule (the cockpit shows the
    /// reserve in force).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_reserve_w: Option<i64>,
}

/// A capacity change effective now.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapacityUpdate {
    /// New capacity (W).
    pub capacity_w: i64,
}

/// Group `id` as `cpo` may see it: an unknown group and another party's are both 404.
async fn load(state: &AppState, cpo: &AuthCpo, id: i64) -> Result<GroupView, ApiError> {
    let mut conn = state.db.conn().await?;
    let g = topology::owned_group(&mut conn, cpo.actor(), id)
        .await?
        .record;
    let evses = groups::members(&mut conn, id).await?;
    let now = state.clock.now();
    let capacity_changes = groups::capacity_changes(&mut conn, id, now, i64::MAX).await?;
    let warnings = topology::electrical_warnings(&g);
    Ok(GroupView {
        electrical: topology::electrical_view(&g.electrical),
        warnings,
        id: g.id,
        name: g.name,
        country_code: g.country_code,
        party_id: g.party_id,
        capacity_w: g.capacity_w,
        other_load_w: g.other_load_w,
        evses,
        pv_inverters: g.pv_inverters,
        batteries: g.batteries,
        capacity_changes,
        arrival_reserve_w: g.arrival_reserve_w,
    })
}

/// Every group of the calling CPO.
#[utoipa::path(get, path = "/api/v1/groups", tag = "topology", security(("ocpi_token" = [])),
    responses((status = 200, body = [GroupView]), (status = 401, body = super::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    cpo: AuthCpo,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let ids = {
        let mut conn = state.db.conn().await?;
        topology::owned_group_ids(&mut conn, cpo.actor()).await?
    };
    let mut out = Vec::new();
    for id in ids {
        out.push(load(&state, &cpo, id).await?);
    }
    Ok(Json(out))
}

/// One group.
#[utoipa::path(get, path = "/api/v1/groups/{id}", tag = "topology", security(("ocpi_token" = [])),
    params(("id" = i64, Path, description = "group id")),
    responses((status = 200, body = GroupView), (status = 404, body = super::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
) -> Result<Json<GroupView>, ApiError> {
    Ok(Json(load(&state, &cpo, id).await?))
}

/// Creates or replaces a group (members and capacity changes included).
#[utoipa::path(put, path = "/api/v1/groups/{id}", tag = "topology", security(("ocpi_token" = [])),
    params(("id" = i64, Path, description = "group id")), request_body = GroupSpec,
    responses((status = 200, body = GroupView), (status = 400, body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
async fn put_group(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<GroupView>, ApiError> {
    let spec: GroupSpec = parse_body(&body)?;
    if i64::try_from(spec.id).ok() != Some(id) {
        return Err(ApiError::BadRequest(
            "id: does not match the URL".to_owned(),
        ));
    }
    topology::put_group(&state.db, cpo.actor(), &spec, state.clock.now()).await?;
    replan::request_or_log(&state.engine, id, "group").await;
    Ok(Json(load(&state, &cpo, id).await?))
}

/// Changes a group's capacity now (e.g. a grid operator's cut); the next tick respects it.
#[utoipa::path(put, path = "/api/v1/groups/{id}/capacity", tag = "topology",
    security(("ocpi_token" = [])), params(("id" = i64, Path, description = "group id")),
    request_body = CapacityUpdate, responses((status = 200, body = GroupView)))]
async fn set_capacity(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<Json<GroupView>, ApiError> {
    let update: CapacityUpdate = parse_body(&body)?;
    topology::set_capacity(
        &state.db,
        cpo.actor(),
        id,
        update.capacity_w,
        state.clock.now(),
    )
    .await?;
    replan::request_or_log(&state.engine, id, "capacity").await;
    Ok(Json(load(&state, &cpo, id).await?))
}

/// Schedules a capacity change.
#[utoipa::path(post, path = "/api/v1/groups/{id}/capacity-changes", tag = "topology",
    security(("ocpi_token" = [])), params(("id" = i64, Path, description = "group id")),
    request_body = CapacityChangeSpec, responses((status = 201, body = GroupView)))]
async fn add_capacity_change(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<(StatusCode, Json<GroupView>), ApiError> {
    let spec: CapacityChangeSpec = parse_body(&body)?;
    topology::add_capacity_change(&state.db, cpo.actor(), id, &spec, state.clock.now()).await?;
    replan::request_or_log(&state.engine, id, "capacity").await;
    Ok((StatusCode::CREATED, Json(load(&state, &cpo, id).await?)))
}

/// Stores a per-step PV or other-load forecast.
#[utoipa::path(put, path = "/api/v1/groups/{id}/forecast", tag = "topology",
    security(("ocpi_token" = [])), params(("id" = i64, Path, description = "group id")),
    request_body = ForecastSpec, responses((status = 204)))]
async fn put_forecast(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let spec: ForecastSpec = parse_body(&body)?;
    topology::put_forecast(&state.db, cpo.actor(), id, &spec).await?;
    replan::request_or_log(&state.engine, id, "forecast").await;
    Ok(StatusCode::NO_CONTENT)
}

/// Creates or replaces every group of a topology file, in one transaction.
#[utoipa::path(put, path = "/api/v1/topology", tag = "topology", security(("ocpi_token" = [])),
    request_body = Topology, responses((status = 200, body = [GroupView])))]
async fn put_topology(
    State(state): State<AppState>,
    cpo: AuthCpo,
    body: Bytes,
) -> Result<Json<Vec<GroupView>>, ApiError> {
    let topo: Topology = parse_body(&body)?;
    topology::put_topology(&state.db, cpo.actor(), &topo, state.clock.now()).await?;
    for g in &topo.groups {
        replan::request_or_log(&state.engine, g.id as i64, "topology").await;
    }
    let mut out = Vec::new();
    for g in &topo.groups {
        out.push(load(&state, &cpo, g.id as i64).await?);
    }
    Ok(Json(out))
}
