//! Charging requests and their admission result. Owns `charging_requests`.

use super::{Conn, StoreResult};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

/// Admission decision of a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Decision {
    /// Guaranteed by the departure time.
    Accepted,
    /// Not guaranteed; `max_guaranteed_wh` is offered instead.
    Rejected,
    /// Replaced by a newer request for the same session.
    Superseded,
}

impl Decision {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Rejected => "rejected",
            Self::Superseded => "superseded",
        }
    }

    fn parse(text: &str) -> Self {
        match text {
            "accepted" => Self::Accepted,
            "rejected" => Self::Rejected,
            _ => Self::Superseded,
        }
    }
}

/// A charging request as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChargingRequest {
    /// Id.
    pub id: i64,
    /// The user who asked.
    pub user_id: i64,
    /// The session (row id) it is for.
    pub session_row: i64,
    /// The group the session's EVSE belongs to, when it belongs to one.
    pub group_id: Option<i64>,
    /// Energy asked for (Wh).
    pub energy_wh: i64,
    /// For an accepted offer: all the energy its driver asked for (Wh, counted like
    /// `energy_wh`); the plan delivers what it can of it beyond `energy_wh`, best effort.
    pub energy_wanted_wh: Option<i64>,
    /// Target SoC (%), when asked that way.
    pub target_soc_percent: Option<i64>,
    /// Battery capacity (Wh), when given.
    pub battery_capacity_wh: Option<i64>,
    /// Energy in the battery when the request was made (Wh), when its SoC was known.
    pub battery_energy_wh: Option<i64>,
    /// The vehicle's own maximum charging power (W), when given: the planner uses the lower of
    /// it and the charge point's rating.
    pub vehicle_max_power_w: Option<i64>,
    /// Departure (Unix seconds).
    pub departure_ts: i64,
    /// Session energy when the request was made (Wh): energy charged since counts toward it.
    pub session_energy_wh_at_request: i64,
    /// Admission decision.
    pub decision: Decision,
    /// Largest guaranteed energy, for a rejected request (Wh).
    pub max_guaranteed_wh: Option<i64>,
    /// Earliest departure at which the full request could be guaranteed (Unix seconds).
    pub earliest_full_departure_ts: Option<i64>,
    /// Created (Unix seconds).
    pub created_at: i64,
}

#[derive(FromRow)]
struct RequestRow {
    id: i64,
    user_id: i64,
    session_row: i64,
    group_id: Option<i64>,
    energy_wh: i64,
    energy_wanted_wh: Option<i64>,
    target_soc_percent: Option<i64>,
    battery_capacity_wh: Option<i64>,
    battery_energy_wh: Option<i64>,
    vehicle_max_power_w: Option<i64>,
    departure_ts: i64,
    session_energy_wh_at_request: i64,
    decision: String,
    max_guaranteed_wh: Option<i64>,
    earliest_full_departure_ts: Option<i64>,
    created_at: i64,
}

impl From<RequestRow> for ChargingRequest {
    fn from(r: RequestRow) -> Self {
        Self {
            id: r.id,
            user_id: r.user_id,
            session_row: r.session_row,
            group_id: r.group_id,
            energy_wh: r.energy_wh,
            energy_wanted_wh: r.energy_wanted_wh,
            target_soc_percent: r.target_soc_percent,
            battery_capacity_wh: r.battery_capacity_wh,
            battery_energy_wh: r.battery_energy_wh,
            vehicle_max_power_w: r.vehicle_max_power_w,
            departure_ts: r.departure_ts,
            session_energy_wh_at_request: r.session_energy_wh_at_request,
            decision: Decision::parse(&r.decision),
            max_guaranteed_wh: r.max_guaranteed_wh,
            earliest_full_departure_ts: r.earliest_full_departure_ts,
            created_at: r.created_at,
        }
    }
}

const COLUMNS: &str = "id, user_id, session_row, group_id, energy_wh, energy_wanted_wh, \
    target_soc_percent, \
    battery_capacity_wh, battery_energy_wh, vehicle_max_power_w, departure_ts, \
    session_energy_wh_at_request, decision, max_guaranteed_wh, earliest_full_departure_ts, created_at";

/// Stores a decided request. An accepted request supersedes the session's earlier accepted one.
#[tracing::instrument(skip_all, fields(session_row = r.session_row, decision = r.decision.as_str()))]
pub async fn insert(conn: &mut Conn, r: &ChargingRequest, now: i64) -> StoreResult<i64> {
    if r.decision == Decision::Accepted {
        sqlx::query(
            "UPDATE charging_requests SET decision = 'superseded', updated_at = $2
             WHERE session_row = $1 AND decision = 'accepted'",
        )
        .bind(r.session_row)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO charging_requests (user_id, session_row, group_id, energy_wh,
             target_soc_percent, battery_capacity_wh, battery_energy_wh, vehicle_max_power_w,
             departure_ts, session_energy_wh_at_request, decision, max_guaranteed_wh,
             earliest_full_departure_ts, created_at, updated_at, energy_wanted_wh)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15)
         RETURNING id",
    )
    .bind(r.user_id)
    .bind(r.session_row)
    .bind(r.group_id)
    .bind(r.energy_wh)
    .bind(r.target_soc_percent)
    .bind(r.battery_capacity_wh)
    .bind(r.battery_energy_wh)
    .bind(r.vehicle_max_power_w)
    .bind(r.departure_ts)
    .bind(r.session_energy_wh_at_request)
    .bind(r.decision.as_str())
    .bind(r.max_guaranteed_wh)
    .bind(r.earliest_full_departure_ts)
    .bind(now)
    .bind(r.energy_wanted_wh)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The session's newest request, whatever was decided: a rejected one still says what its
/// driver wants and by when (`engine::snapshot` plans best effort towards it).
pub async fn latest_for_session(
    conn: &mut Conn,
    session_row: i64,
) -> StoreResult<Option<ChargingRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM charging_requests WHERE session_row = $1 ORDER BY id DESC LIMIT 1"
    )))
    .bind(session_row)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(ChargingRequest::from))
}

/// A request by id.
pub async fn get(conn: &mut Conn, id: i64) -> StoreResult<Option<ChargingRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM charging_requests WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(ChargingRequest::from))
}

/// The accepted request of a session, if any.
pub async fn accepted_for_session(
    conn: &mut Conn,
    session_row: i64,
) -> StoreResult<Option<ChargingRequest>> {
    let row: Option<RequestRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM charging_requests
         WHERE session_row = $1 AND decision = 'accepted' ORDER BY id DESC LIMIT 1"
    )))
    .bind(session_row)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(ChargingRequest::from))
}

/// Every request of the sessions in `session_rows`, oldest first (a group's snapshot reads
/// them all at once and takes each session's [`accepted_for_session`] and
/// [`latest_for_session`] from them).
pub async fn of_sessions(
    conn: &mut Conn,
    session_rows: &[i64],
) -> StoreResult<Vec<ChargingRequest>> {
    if session_rows.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT {COLUMNS} FROM charging_requests WHERE session_row IN ({}) ORDER BY id",
        super::numbered(1, session_rows.len())
    );
    let mut query = sqlx::query_as::<_, RequestRow>(sqlx::AssertSqlSafe(sql));
    for row in session_rows {
        query = query.bind(row);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(ChargingRequest::from)
        .collect())
}

/// Counts requests by decision (for tests and the cockpit).
pub async fn count_by_decision(conn: &mut Conn, decision: Decision) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM charging_requests WHERE decision = $1")
        .bind(decision.as_str())
        .fetch_one(conn)
        .await?;
    Ok(n)
}
