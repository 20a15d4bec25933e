//! Charging requests: admission control at once; a rejected request carries the largest
//! guaranteed energy, which the user may accept instead.
//!
//! A request names one of the caller's own sessions: one the CPO started with the token uid
//! evflex issued to the caller (`engine::tokens`), or, when it names none, the caller's only
//! open session. Nobody can claim a session by its EVSE uid or session id: another user's
//! session, and one linked to no one, are 404 alike.

use super::auth::AuthUser;
use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::domain::{format_rfc3339, parse_rfc3339, wh_to_kwh};
use crate::engine::admission::{self, NewRequest};
use crate::store::requests::{self, ChargingRequest, Decision};
use crate::store::sessions::StoredSession;
use crate::store::{meter, sessions};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

/// Request routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/requests", post(create))
        .route("/api/v1/requests/{id}", get(get_one))
        .route("/api/v1/requests/{id}/accept-offer", post(accept_offer))
}

/// A charging request: which of the caller's sessions (by id, or the caller's only open
/// session), how much energy (kWh, or a target SoC with the battery size), by when.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewChargingRequest {
    /// OCPI session id of one of the caller's sessions; without it, the caller's open session.
    pub session_id: Option<String>,
    /// Energy wanted (kWh).
    pub energy_kwh: Option<f64>,
    /// Target state of charge (%), with `battery_capacity_kwh`.
    pub target_soc_percent: Option<f64>,
    /// Battery capacity (kWh): needed with `target_soc_percent`; with `energy_kwh` it lets the
    /// plan follow the battery's taper above its knee SoC (with the SoC now).
    pub battery_capacity_kwh: Option<f64>,
    /// Current SoC (%), if the charge point does not report it.
    pub current_soc_percent: Option<f64>,
    /// The vehicle's own maximum charging power (kW); the planner uses the lower of it and the
    /// charge point's rating.
    pub vehicle_max_power_kw: Option<f64>,
    /// Departure (RFC 3339).
    pub departure: String,
}

/// A decided request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RequestView {
    /// Request id.
    pub request_id: i64,
    /// `accepted`, `rejected` or `superseded`.
    pub decision: Decision,
    /// OCPI session id.
    pub session_id: String,
    /// Group of the session's EVSE.
    pub group_id: Option<i64>,
    /// Energy requested (kWh): for an accepted request, the energy guaranteed by departure.
    pub energy_kwh: f64,
    /// For an accepted offer: all the energy its driver asked for (kWh). What the offer does
    /// not guarantee is delivered as best effort, where the group has room.
    pub energy_wanted_kwh: Option<f64>,
    /// Departure (RFC 3339).
    pub departure: String,
    /// For a rejected request: the largest energy guaranteed by the departure (kWh).
    pub max_guaranteed_kwh: Option<f64>,
    /// For a rejected request: the earliest departure at which the full energy could be
    /// guaranteed (RFC 3339), if within the horizon.
    pub earliest_full_departure: Option<String>,
}

fn view(r: &ChargingRequest, session_id: String) -> RequestView {
    RequestView {
        request_id: r.id,
        decision: r.decision,
        session_id,
        group_id: r.group_id,
        energy_kwh: wh_to_kwh(r.energy_wh),
        energy_wanted_kwh: r.energy_wanted_wh.map(wh_to_kwh),
        departure: format_rfc3339(r.departure_ts),
        max_guaranteed_kwh: r.max_guaranteed_wh.map(wh_to_kwh),
        earliest_full_departure: r.earliest_full_departure_ts.map(format_rfc3339),
    }
}

fn kwh(field: &str, v: f64) -> Result<i64, ApiError> {
    crate::domain::kwh_to_wh(v)
        .filter(|wh| *wh > 0)
        .ok_or_else(|| ApiError::BadRequest(format!("{field}: must be a positive number of kWh")))
}

/// Makes a charging request; admission control decides at once.
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", security(("bearer" = [])),
    request_body = NewChargingRequest,
    responses((status = 201, body = RequestView), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody),
        (status = 404, description = "No such session of the caller's", body = super::error::ErrorBody),
        (status = 409, body = super::error::ErrorBody)))]
async fn create(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let req: NewChargingRequest = parse_body(&body)?;
    if !user.opted_in {
        return Err(ApiError::Conflict(
            "not opted into smart charging: the session charges uncontrolled".to_owned(),
        ));
    }
    let departure_ts = parse_rfc3339(&req.departure).ok_or_else(|| {
        ApiError::BadRequest(format!("departure: invalid DateTime {:?}", req.departure))
    })?;
    let vehicle_max_power_w = req
        .vehicle_max_power_kw
        .map(|kw| {
            if kw.is_finite() && kw > 0.0 && kw <= 1_000.0 {
                Ok((kw * 1_000.0).round() as i64)
            } else {
                Err(ApiError::BadRequest(
                    "vehicle_max_power_kw: must be more than 0 and at most 1000 kW".to_owned(),
                ))
            }
        })
        .transpose()?;
    let mut conn = state.db.conn().await?;
    let session = match &req.session_id {
        Some(id) => sessions::of_user_by_session_id(&mut conn, user.id, id)
            .await?
            .ok_or_else(|| ApiError::NotFound(format!("no session {id} of yours")))?,
        None => {
            let mut open = sessions::open_of_user(&mut conn, user.id, 2).await?;
            match (open.pop(), open.is_empty()) {
                (Some(s), true) => s,
                (Some(_), false) => {
                    return Err(ApiError::Conflict(
                        "session_id: you have more than one open session; name one".to_owned(),
                    ));
                }
                (None, _) => {
                    return Err(ApiError::NotFound(
                        "no open session of yours: start charging with your evflex token"
                            .to_owned(),
                    ));
                }
            }
        }
    };
    if !matches!(session.record.status.as_str(), "ACTIVE" | "PENDING") {
        return Err(ApiError::Conflict(format!(
            "session is {}",
            session.record.status
        )));
    }
    let given_capacity_wh = req
        .battery_capacity_kwh
        .map(|c| kwh("battery_capacity_kwh", c))
        .transpose()?;
    if let Some(soc) = req.current_soc_percent
        && !(0.0..=100.0).contains(&soc)
    {
        return Err(ApiError::BadRequest(
            "current_soc_percent: within 0..100".to_owned(),
        ));
    }
    // The SoC now: the app's, else the charge point's last reading (only looked up when the
    // battery's size is given, as nothing else needs it).
    let current_soc = match (req.current_soc_percent, given_capacity_wh) {
        (Some(soc), _) => Some(soc),
        (None, Some(_)) => {
            let r = &session.record;
            meter::live_of(
                &mut conn,
                &r.country_code,
                &r.party_id,
                std::slice::from_ref(&r.evse_uid),
            )
            .await?
            .into_iter()
            .next()
            .and_then(|l| l.soc_permille)
            .map(|p| p as f64 / 10.0)
        }
        (None, None) => None,
    };
    let energy_wh = match (req.energy_kwh, req.target_soc_percent) {
        (Some(e), _) => kwh("energy_kwh", e)?,
        (None, Some(target)) => {
            let capacity = given_capacity_wh.ok_or_else(|| {
                ApiError::BadRequest(
                    "battery_capacity_kwh: required with target_soc_percent".to_owned(),
                )
            })?;
            let current = current_soc.ok_or_else(|| {
                ApiError::BadRequest(
                    "current_soc_percent: the charge point reports no SoC; give it or energy_kwh"
                        .to_owned(),
                )
            })?;
            if !(0.0..=100.0).contains(&target) || !(0.0..=100.0).contains(&current) {
                return Err(ApiError::BadRequest(
                    "target_soc_percent: within 0..100".to_owned(),
                ));
            }
            let wh = ((target - current) / 100.0 * capacity as f64).round() as i64;
            if wh <= 0 {
                return Err(ApiError::BadRequest(
                    "target_soc_percent: already reached".to_owned(),
                ));
            }
            wh
        }
        (None, None) => {
            return Err(ApiError::BadRequest(
                "energy_kwh: give energy_kwh or target_soc_percent".to_owned(),
            ));
        }
    };
    // With the battery's size and SoC the plan follows its taper (`engine::snapshot`).
    let battery_energy_wh = given_capacity_wh
        .zip(current_soc)
        .map(|(capacity, soc)| (soc.clamp(0.0, 100.0) / 100.0 * capacity as f64).round() as i64);
    drop(conn);
    let session_id = session.record.session_id.clone();
    let decided = admission::decide(
        &state.engine,
        NewRequest {
            user_id: user.id,
            session,
            energy_wh,
            energy_wanted_wh: None,
            target_soc_percent: req.target_soc_percent.map(|t| t.round() as i64),
            battery_capacity_wh: given_capacity_wh,
            battery_energy_wh,
            vehicle_max_power_w,
            departure_ts,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&decided, session_id))))
}

async fn own_request(
    state: &AppState,
    user_id: i64,
    id: i64,
) -> Result<(ChargingRequest, StoredSession), ApiError> {
    let mut conn = state.db.conn().await?;
    let r = requests::get(&mut conn, id)
        .await?
        .filter(|r| r.user_id == user_id)
        .ok_or_else(|| ApiError::NotFound(format!("no request {id}")))?;
    let s = sessions::get_by_row(&mut conn, r.session_row)
        .await?
        .ok_or_else(|| ApiError::Internal(format!("request {id} without session")))?;
    Ok((r, s))
}

/// A request of the authenticated user.
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", security(("bearer" = [])),
    params(("id" = i64, Path, description = "request id")),
    responses((status = 200, body = RequestView), (status = 404, body = super::error::ErrorBody)))]
async fn get_one(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> Result<Json<RequestView>, ApiError> {
    let (r, s) = own_request(&state, user.id, id).await?;
    Ok(Json(view(&r, s.record.session_id)))
}

/// Accepts the offer of a rejected request: a new request for the largest guaranteed energy
/// with the same departure, decided again (the group may have changed since).
#[utoipa::path(post, path = "/api/v1/requests/{id}/accept-offer", tag = "requests",
    security(("bearer" = [])), params(("id" = i64, Path, description = "request id")),
    responses((status = 201, body = RequestView), (status = 409, body = super::error::ErrorBody)))]
async fn accept_offer(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    Path(id): Path<i64>,
) -> Result<(StatusCode, Json<RequestView>), ApiError> {
    let (r, s) = own_request(&state, user.id, id).await?;
    let offered = match (r.decision, r.max_guaranteed_wh) {
        (Decision::Rejected, Some(wh)) if wh > 0 => wh,
        (Decision::Rejected, _) => {
            return Err(ApiError::Conflict(
                "nothing can be guaranteed by that departure".to_owned(),
            ));
        }
        _ => {
            return Err(ApiError::Conflict(
                "only a rejected request has an offer".to_owned(),
            ));
        }
    };
    let session_id = s.record.session_id.clone();
    let s_energy_wh = s.record.energy_wh;
    // What the battery held at the request, plus what the session reported since.
    let battery_energy_wh = r
        .battery_energy_wh
        .map(|e| e + (s.record.energy_wh - r.session_energy_wh_at_request).max(0));
    let decided = admission::decide(
        &state.engine,
        NewRequest {
            user_id: user.id,
            session: s,
            energy_wh: offered,
            // The driver still wants all of the request: what the offer does not guarantee is
            // delivered as best effort where the group has room.
            energy_wanted_wh: Some(
                (r.energy_wh - (s_energy_wh - r.session_energy_wh_at_request).max(0)).max(offered),
            ),
            target_soc_percent: None,
            battery_capacity_wh: r.battery_capacity_wh,
            battery_energy_wh,
            vehicle_max_power_w: r.vehicle_max_power_w,
            departure_ts: r.departure_ts,
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(view(&decided, session_id))))
}
