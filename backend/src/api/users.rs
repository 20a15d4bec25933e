//! EV users: registration, smart-charging consent and live status.

use super::auth::AuthUser;
use super::error::{ApiError, parse_body};
use super::limits::{Class, RateLimits};
use crate::app::AppState;
use crate::domain::{TIME_STEP_S, format_rfc3339, timestep_of, wh_to_kwh};
use crate::engine::snapshot::vehicle_id;
use crate::ingest::ocpi::credentials::new_token;
use crate::store::{groups, meter, requests, schedules, sessions, users};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// User routes.
pub fn router(limits: &RateLimits) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/users",
            post(register).layer(limits.per_ip(Class::SignUp)),
        )
        .route("/api/v1/users/me", get(me))
        .route("/api/v1/users/me/smart-charging", put(set_smart_charging))
        .route("/api/v1/users/me/status", get(status))
}

/// Registration. evflex issues the user's token uid (it is in the answer), so the body cannot
/// name one: a `token_uid` here is refused as an unknown field.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    /// Display name.
    pub name: String,
    /// Opt into smart charging now (default false).
    #[serde(default)]
    pub opted_in: bool,
}

/// A registered user and their bearer session token (shown once).
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Registered {
    /// User id.
    pub user_id: i64,
    /// Bearer token for `Authorization: Bearer …`.
    pub token: String,
    /// The OCPI token uid evflex issued to the user (`EVF` and 13 hex digits), pushed to every
    /// CPO: a session the CPO starts with it is the user's.
    pub token_uid: String,
    /// Smart-charging consent.
    pub opted_in: bool,
}

/// A user.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserView {
    /// User id.
    pub user_id: i64,
    /// Display name.
    pub name: String,
    /// The OCPI token uid evflex issued to the user.
    pub token_uid: Option<String>,
    /// Smart-charging consent.
    pub opted_in: bool,
}

/// Smart-charging consent.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SmartCharging {
    /// Opted in.
    pub opted_in: bool,
}

/// Registers a user; returns a bearer token.
#[utoipa::path(post, path = "/api/v1/users", tag = "users", request_body = NewUser,
    responses((status = 201, body = Registered), (status = 400, body = super::error::ErrorBody),
        (status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody)))]
async fn register(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<(StatusCode, Json<Registered>), ApiError> {
    let new: NewUser = parse_body(&body)?;
    if new.name.trim().is_empty() || new.name.len() > 200 {
        return Err(ApiError::BadRequest("name: 1 to 200 characters".to_owned()));
    }
    let token = new_token();
    let token_uid = users::issue_token_uid();
    let now = state.clock.now();
    // Sealing the new wallet's keystore runs scrypt: one of the few slots for that work.
    let _key_work = match &state.engine.chain {
        Some(_) => Some(state.caps.key_work().await?),
        None => None,
    };
    let mut tx = state.db.begin().await?;
    let id = users::create(
        &mut tx,
        new.name.trim(),
        &token_uid,
        new.opted_in,
        &token,
        now,
    )
    .await?;
    if let Some(chain) = &state.engine.chain {
        crate::wallet::create_for_user(&mut tx, chain, id, now)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        if new.opted_in {
            crate::wallet::enqueue_consent(&mut tx, chain, id, true, now)
                .await
                .map_err(|e| ApiError::Internal(e.to_string()))?;
        }
    }
    tx.commit().await?;
    // Make the new token known to the CPOs now rather than at the next tick.
    let engine = state.engine.clone();
    tokio::spawn(async move { crate::engine::tokens::push_pending(&engine).await });
    Ok((
        StatusCode::CREATED,
        Json(Registered {
            user_id: id,
            token,
            token_uid,
            opted_in: new.opted_in,
        }),
    ))
}

/// The authenticated user.
#[utoipa::path(get, path = "/api/v1/users/me", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = UserView), (status = 401, body = super::error::ErrorBody)))]
async fn me(AuthUser(user): AuthUser) -> Json<UserView> {
    Json(UserView {
        user_id: user.id,
        name: user.name,
        token_uid: user.token_uid,
        opted_in: user.opted_in,
    })
}

/// Opts in or out of smart charging (takes effect at the next tick).
#[utoipa::path(put, path = "/api/v1/users/me/smart-charging", tag = "users", security(("bearer" = [])),
    request_body = SmartCharging, responses((status = 200, body = SmartCharging)))]
async fn set_smart_charging(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> Result<Json<SmartCharging>, ApiError> {
    let req: SmartCharging = parse_body(&body)?;
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    users::set_opted_in(&mut tx, user.id, req.opted_in, now).await?;
    if let Some(chain) = &state.engine.chain
        && req.opted_in != user.opted_in
    {
        crate::wallet::enqueue_consent(&mut tx, chain, user.id, req.opted_in, now)
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?;
    }
    tx.commit().await?;
    Ok(Json(SmartCharging {
        opted_in: req.opted_in,
    }))
}

/// One step of a planned profile.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProfileStep {
    /// Step start (RFC 3339).
    pub start: String,
    /// Planned power (W).
    pub power_w: i64,
}

/// A shortfall the driver is warned about (Wh): above the optimiser's rounding.
const SHORTFALL_WARN_WH: i64 = 100;

/// Live status of one of the user's sessions.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionStatus {
    /// OCPI session id.
    pub session_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// The charging group of the EVSE, if it is in one (the event stream names groups).
    pub group_id: Option<i64>,
    /// OCPI session status.
    pub status: String,
    /// Energy added so far (kWh).
    pub energy_added_kwh: f64,
    /// State of charge (%), where the charge point reports it.
    pub soc_percent: Option<f64>,
    /// Current power (W), from the latest meter value.
    pub power_w: Option<i64>,
    /// Departure of the accepted request (RFC 3339).
    pub departure: Option<String>,
    /// Energy requested by the accepted request (kWh).
    pub requested_kwh: Option<f64>,
    /// Planned profile from now on (latest schedule).
    pub planned_profile: Vec<ProfileStep>,
    /// Energy expected by departure (or the end of the plan) (kWh).
    pub expected_energy_kwh: Option<f64>,
    /// Energy of the accepted request the latest plan cannot deliver by departure (kWh), when
    /// it is short: the car draws less than the plan needs (a taper, a full battery, a lower
    /// vehicle maximum), or the group lost capacity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shortfall_kwh: Option<f64>,
    /// Why the guarantee is at risk, in words for the driver (with `shortfall_kwh`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub warning: Option<String>,
}

/// Live status of the user's recent sessions.
#[utoipa::path(get, path = "/api/v1/users/me/status", tag = "users", security(("bearer" = [])),
    responses((status = 200, body = [SessionStatus])))]
async fn status(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Vec<SessionStatus>>, ApiError> {
    let mut conn = state.db.conn().await?;
    let now = state.clock.now();
    let current_step = timestep_of(now, TIME_STEP_S) as i64;
    let mut out = Vec::new();
    for s in sessions::of_user(&mut conn, user.id, 10).await? {
        let r = &s.record;
        let live = meter::live_of(
            &mut conn,
            &r.country_code,
            &r.party_id,
            std::slice::from_ref(&r.evse_uid),
        )
        .await?
        .into_iter()
        .next()
        .filter(|l| l.session_id.as_deref().is_none_or(|id| id == r.session_id));
        let request = requests::accepted_for_session(&mut conn, s.id).await?;
        let open = matches!(r.status.as_str(), "ACTIVE" | "PENDING");
        let group_id =
            groups::group_of_evse(&mut conn, &r.country_code, &r.party_id, &r.evse_uid).await?;
        let mut planned_profile = Vec::new();
        let mut expected = None;
        let mut shortfall_wh = None;
        if open
            && let Some(gid) = group_id
            && let Some(sched) = schedules::latest_before(&mut conn, gid, i64::MAX).await?
        {
            let vid = vehicle_id(s.id);
            let ids = sched.schedule.get("vehicle_ids").and_then(|v| v.as_array());
            let rows = sched.schedule.get("power_w").and_then(|v| v.as_array());
            if let (Some(ids), Some(rows)) = (ids, rows)
                && let Some(i) = ids.iter().position(|v| v.as_str() == Some(vid.as_str()))
                && let Some(row) = rows.get(i).and_then(|r| r.as_array())
            {
                shortfall_wh = sched
                    .schedule
                    .get("unmet_wh")
                    .and_then(|u| u.get(i))
                    .and_then(serde_json::Value::as_i64)
                    .filter(|wh| request.is_some() && *wh > SHORTFALL_WARN_WH);
                let offset = (current_step - sched.timestep).max(0) as usize;
                let step_s = sched.time_step_s;
                let mut wh = 0i64;
                for (t, p) in row.iter().enumerate().skip(offset) {
                    let power_w = p.as_i64().unwrap_or(0);
                    let start = (sched.timestep + t as i64) * step_s;
                    if request.as_ref().is_none_or(|q| start < q.departure_ts) {
                        wh += power_w * step_s / 3_600;
                    }
                    planned_profile.push(ProfileStep {
                        start: format_rfc3339(start),
                        power_w,
                    });
                }
                expected = Some(wh_to_kwh(r.energy_wh + wh));
            }
        }
        out.push(SessionStatus {
            session_id: r.session_id.clone(),
            evse_uid: r.evse_uid.clone(),
            group_id,
            status: r.status.clone(),
            energy_added_kwh: wh_to_kwh(r.energy_wh),
            soc_percent: live
                .as_ref()
                .and_then(|l| l.soc_permille)
                .map(|p| p as f64 / 10.0),
            power_w: live.as_ref().and_then(|l| l.power_w),
            departure: request.as_ref().map(|q| format_rfc3339(q.departure_ts)),
            requested_kwh: request.as_ref().map(|q| wh_to_kwh(q.energy_wh)),
            planned_profile,
            expected_energy_kwh: expected,
            shortfall_kwh: shortfall_wh.map(wh_to_kwh),
            warning: shortfall_wh.map(|wh| match s.observed_max_w {
                Some(w) => format!(
                    "Your car takes at most {:.1} kW now, so it will be {:.1} kWh short of your \
                     guaranteed energy by departure",
                    w as f64 / 1_000.0,
                    wh_to_kwh(wh)
                ),
                None => format!(
                    "The plan falls {:.1} kWh short of your guaranteed energy by departure",
                    wh_to_kwh(wh)
                ),
            }),
        });
    }
    Ok(Json(out))
}
