//! CPO cockpit data (CPO credentials): per group, every charge point's power against its
//! rating, group load against capacity over time, the latest schedule (vehicles × steps) and PV.
//! A CPO sees only its own groups (another party's group is 404).

use super::auth::AuthCpo;
use super::error::ApiError;
use crate::app::AppState;
use crate::domain::format_rfc3339;
use crate::engine::setpoints::{self, Standing};
use crate::ingest::topology;
use crate::store::schedules::{self, LoadPoint};
use crate::store::{locations, meter};
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;

/// Cockpit routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/cockpit/groups", get(list))
        .route("/api/v1/cockpit/groups/{id}", get(group))
        .route("/api/v1/cockpit/settlements", get(settlements))
}

/// One charge point in the cockpit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChargePointView {
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI status.
    pub status: String,
    /// Current power (W), from the latest meter value.
    pub power_w: Option<i64>,
    /// Rated power (W).
    pub rated_power_w: Option<i64>,
    /// Session of the latest meter value, or else the open session on the EVSE.
    pub session_id: Option<String>,
    /// The last profile evflex sent that session, and what the CPO made of it.
    pub profile: Option<ProfileView>,
    /// The most the session's car was seen able to draw (W), when it drew clearly less than
    /// its limit (tapering, full, or a lower vehicle maximum): the plan gives it no more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observed_max_w: Option<i64>,
    /// Since when the charge point draws clearly more than its limit in force (it does not
    /// follow its profile; the plan counts its measured draw).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub over_limit_since: Option<String>,
}

/// The state of the last profile of a charge point's session.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ProfileView {
    /// `pending` (not sent yet, or the CPO answered `TOO_OFTEN`), `sent` (the CPO took it),
    /// `in_force` (its result was `ACCEPTED`), `timed_out` (sent, but its result is overdue),
    /// `rejected`, `failed`, `superseded` or `unchanged` (not sent: the profile in force
    /// already says what the new plan says).
    pub status: String,
    /// Whether the planner controls the charge point: `false` when the profile is not in force
    /// (rejected, failed, backing off after TOO_OFTEN), and the charge point is planned at its
    /// measured draw.
    pub controlled: bool,
    /// When the CPO last answered it (RFC 3339).
    pub sent_at: Option<String>,
    /// Why it was refused or failed, as the CPO or the network said.
    pub reason: Option<String>,
    /// Its first limit (W).
    pub limit_w: i64,
    /// When its state last changed (RFC 3339).
    pub updated_at: String,
}

/// The latest schedule of a group.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduleView {
    /// Absolute timestep of step 0.
    pub timestep: i64,
    /// Start of step 0 (RFC 3339).
    pub start: String,
    /// Step length (s).
    pub time_step_s: i64,
    /// Solve status.
    pub status: String,
    /// Inputs hash.
    pub inputs_hash: String,
    /// Schedule hash.
    pub schedule_hash: String,
    /// The CPO's session ids of the planned vehicles, row order of `power_w` (the public
    /// inputs name them only by an opaque vehicle id).
    #[schema(value_type = Option<Vec<String>>)]
    pub vehicle_ids: serde_json::Value,
    /// Planned power per vehicle per step (W).
    #[schema(value_type = Option<Vec<Vec<i64>>>)]
    pub power_w: serde_json::Value,
    /// The schedule's revision within its timestep: 0 for the quarter-hour tick's, 1, 2, …
    /// for the re-plans events caused since.
    pub revision: i64,
    /// Capacity per step the plan used (W): the group's, less the arrival reserve.
    #[schema(value_type = Option<Vec<i64>>)]
    pub capacity_w: serde_json::Value,
    /// PV forecast per step (W).
    #[schema(value_type = Option<Vec<i64>>)]
    pub pv_w: serde_json::Value,
    /// Planned grid import per step (W).
    #[schema(value_type = Option<Vec<i64>>)]
    pub grid_import_w: serde_json::Value,
    /// Planned power of the group's stationary batteries per step (W, + charging; zeros
    /// without one).
    #[schema(value_type = Option<Vec<i64>>)]
    pub battery_w: serde_json::Value,
}

/// A stationary battery in the cockpit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BatteryView {
    /// Battery id within the group.
    pub id: String,
    /// Usable capacity (Wh).
    pub capacity_wh: i64,
    /// Energy stored (Wh): the last state its controller posted, or the topology's.
    pub energy_wh: i64,
    /// Power at its meter in that state (W, + charging); absent before its first state.
    pub power_w: Option<i64>,
    /// When that state was measured (RFC 3339).
    pub measured_at: Option<String>,
    /// The power the plan in force gives it now (W, + charging; `engine::battery::share_w`).
    pub planned_w: Option<i64>,
}

/// One group in the cockpit.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CockpitGroup {
    /// Group id.
    pub group_id: i64,
    /// Name.
    pub name: String,
    /// Capacity now (W).
    pub capacity_w: i64,
    /// Headroom the latest plan keeps free for cars that plug in before their first profile
    /// lands (W; `engine::reserve`).
    pub arrival_reserve_w: i64,
    /// The reserve the CPO set for the group (W), when it replaces evflex's rule.
    pub arrival_reserve_configured_w: Option<i64>,
    /// Sum of current charge-point power (W).
    pub load_w: i64,
    /// PV peak of the group's inverters (W).
    pub pv_peak_w: i64,
    /// Charge points.
    pub charge_points: Vec<ChargePointView>,
    /// Load against capacity, one point per tick (oldest first).
    pub load_history: Vec<LoadPoint>,
    /// The latest schedule.
    pub schedule: Option<ScheduleView>,
    /// Stationary batteries behind the connection.
    pub batteries: Vec<BatteryView>,
}

async fn build(
    state: &AppState,
    cpo: &AuthCpo,
    id: i64,
    history: i64,
) -> Result<CockpitGroup, ApiError> {
    let mut conn = state.db.conn().await?;
    let g = topology::owned_group(&mut conn, cpo.actor(), id)
        .await?
        .record;
    let evses = locations::evses_of_group(&mut conn, id).await?;
    let uids: Vec<String> = evses.iter().map(|e| e.record.uid.clone()).collect();
    let live = meter::live_of(&mut conn, &g.country_code, &g.party_id, &uids).await?;
    let mut charge_points = Vec::with_capacity(evses.len());
    for e in &evses {
        let l = live.iter().find(|l| l.evse_uid == e.record.uid);
        let session_id = match l.and_then(|l| l.session_id.clone()) {
            Some(s) => Some(s),
            None => crate::store::sessions::open_session_on_evse(
                &mut conn,
                &g.country_code,
                &g.party_id,
                &e.record.uid,
            )
            .await?
            .map(|s| s.record.session_id),
        };
        let profile = match &session_id {
            Some(s) => schedules::last_profile(&mut conn, id, s).await?,
            None => None,
        };
        let session = match &session_id {
            Some(s) => {
                crate::store::sessions::get(&mut conn, &g.country_code, &g.party_id, s).await?
            }
            None => None,
        };
        charge_points.push(ChargePointView {
            evse_uid: e.record.uid.clone(),
            status: e.record.status.clone(),
            power_w: l.and_then(|l| l.power_w),
            rated_power_w: e.record.rated_power_w,
            session_id,
            profile: profile.map(|p| {
                let now = state.clock.now();
                let controlled = setpoints::standing(Some(&p), now) == Standing::Controlled;
                let timed_out = setpoints::timed_out(&p, now);
                ProfileView {
                    status: if timed_out {
                        "timed_out".to_owned()
                    } else {
                        p.status
                    },
                    controlled,
                    reason: p.error,
                    limit_w: p.power_w,
                    updated_at: format_rfc3339(p.updated_at),
                    sent_at: p.sent_at.map(format_rfc3339),
                }
            }),
            observed_max_w: session.as_ref().and_then(|s| s.observed_max_w),
            over_limit_since: session
                .as_ref()
                .and_then(|s| s.over_limit_since)
                .map(format_rfc3339),
        });
    }
    let load_history = if history > 0 {
        schedules::load_history(&mut conn, id, history).await?
    } else {
        Vec::new()
    };
    let latest = schedules::latest_before(&mut conn, id, i64::MAX).await?;
    let session_ids = match &latest {
        Some(s) => session_ids_of(&mut conn, &s.schedule).await?,
        None => serde_json::Value::Null,
    };
    let arrival_reserve_w = latest.as_ref().map_or(0, |s| s.reserve_w);
    let batteries = battery_views(&mut conn, &g, latest.as_ref(), state.clock.now()).await?;
    let schedule = latest.map(|s| {
        let field = |v: &serde_json::Value, k: &str| v.get(k).cloned().unwrap_or_default();
        ScheduleView {
            timestep: s.timestep,
            start: format_rfc3339(s.timestep * s.time_step_s),
            time_step_s: s.time_step_s,
            status: s.status.clone(),
            inputs_hash: s.inputs_hash.clone(),
            schedule_hash: s.schedule_hash.clone(),
            revision: s.revision,
            vehicle_ids: session_ids,
            power_w: field(&s.schedule, "power_w"),
            capacity_w: field(&s.inputs, "capacity_w"),
            pv_w: field(&s.inputs, "pv_w"),
            grid_import_w: field(&s.schedule, "grid_import_w"),
            battery_w: field(&s.schedule, "battery_w"),
        }
    });
    Ok(CockpitGroup {
        group_id: g.id,
        name: g.name,
        capacity_w: g.capacity_w,
        arrival_reserve_w,
        arrival_reserve_configured_w: g.arrival_reserve_w,
        load_w: charge_points.iter().filter_map(|c| c.power_w).sum(),
        pv_peak_w: g.pv_inverters.iter().map(|p| p.peak_w).sum(),
        charge_points,
        load_history,
        schedule,
        batteries,
    })
}

/// The group's batteries: each one's last measured state and the power the latest plan gives
/// it in the step holding `now`.
async fn battery_views(
    conn: &mut crate::store::Conn,
    g: &crate::store::groups::GroupRecord,
    latest: Option<&schedules::ScheduleRecord>,
    now: i64,
) -> Result<Vec<BatteryView>, ApiError> {
    if g.batteries.is_empty() {
        return Ok(Vec::new());
    }
    let states = crate::store::groups::battery_states(conn, g.id).await?;
    let planned_now = latest.and_then(|s| {
        let step = (now - s.timestep * s.time_step_s).div_euclid(s.time_step_s.max(1));
        s.schedule["battery_w"]
            .get(usize::try_from(step).ok()?)?
            .as_i64()
    });
    Ok(g.batteries
        .iter()
        .map(|b| {
            let state = states.get(&b.id);
            BatteryView {
                id: b.id.clone(),
                capacity_wh: b.capacity_wh,
                energy_wh: state.map_or(b.energy_wh, |s| s.energy_wh),
                power_w: state.map(|s| s.power_w),
                measured_at: state.map(|s| format_rfc3339(s.measured_at)),
                planned_w: planned_now.map(|w| crate::engine::battery::share_w(b, &g.batteries, w)),
            }
        })
        .collect())
}

/// The cockpit summary of every group of the calling CPO (no history, latest schedule
/// included).
#[utoipa::path(get, path = "/api/v1/cockpit/groups", tag = "cockpit", security(("ocpi_token" = [])),
    responses((status = 200, body = [CockpitGroup]), (status = 401, body = super::error::ErrorBody)))]
async fn list(
    State(state): State<AppState>,
    cpo: AuthCpo,
) -> Result<Json<Vec<CockpitGroup>>, ApiError> {
    let ids = {
        let mut conn = state.db.conn().await?;
        topology::owned_group_ids(&mut conn, cpo.actor()).await?
    };
    let mut out = Vec::new();
    for id in ids {
        out.push(build(&state, &cpo, id, 0).await?);
    }
    Ok(Json(out))
}

/// One group's cockpit with the last 96 load points.
#[utoipa::path(get, path = "/api/v1/cockpit/groups/{id}", tag = "cockpit",
    security(("ocpi_token" = [])), params(("id" = i64, Path, description = "group id")),
    responses((status = 200, body = CockpitGroup), (status = 404, body = super::error::ErrorBody)))]
async fn group(
    State(state): State<AppState>,
    cpo: AuthCpo,
    Path(id): Path<i64>,
) -> Result<Json<CockpitGroup>, ApiError> {
    Ok(Json(build(&state, &cpo, id, 96).await?))
}

/// The session ids of a schedule's vehicles (`engine::snapshot::vehicle_id`), in its row
/// order; an id that names no stored session is kept as it is.
async fn session_ids_of(
    conn: &mut crate::store::Conn,
    schedule: &serde_json::Value,
) -> Result<serde_json::Value, ApiError> {
    let mut out = Vec::new();
    for v in schedule["vehicle_ids"].as_array().into_iter().flatten() {
        let id = v.as_str().unwrap_or_default();
        let session = match crate::engine::snapshot::session_row_of(id) {
            Some(row) => crate::store::sessions::get_by_row(conn, row).await?,
            None => None,
        };
        out.push(serde_json::Value::from(
            session.map_or_else(|| id.to_owned(), |s| s.record.session_id),
        ));
    }
    Ok(serde_json::Value::Array(out))
}

/// The caller's newest settlements (bills of CDRs under its party codes), with their
/// sessions, CDRs and users' addresses, and their on-chain receipts.
#[utoipa::path(get, path = "/api/v1/cockpit/settlements", tag = "cockpit",
    security(("ocpi_token" = [])),
    responses((status = 200, body = serde_json::Value), (status = 401, body = super::error::ErrorBody),
        (status = 503, description = "No chain configured", body = super::error::ErrorBody)))]
async fn settlements(
    State(state): State<AppState>,
    cpo: AuthCpo,
) -> Result<Json<Vec<serde_json::Value>>, ApiError> {
    super::audit::require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = crate::store::bills::latest_of_codes(
        &mut conn,
        &cpo.0.codes(),
        super::audit::AUDIT_LIST_LEN,
    )
    .await?;
    Ok(Json(rows.iter().map(super::wallet::bill_json).collect()))
}
