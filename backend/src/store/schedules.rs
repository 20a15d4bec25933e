//! Schedules and set-points. Owns `schedules` (one row per group, timestep and revision, with
//! the canonical inputs, the schedule and their hashes) and `setpoints` (what was sent to the
//! CPO from each schedule, and what it answered).
//!
//! Revision 0 of a (group, timestep) is the quarter-hour tick's schedule; revisions 1, 2, … are
//! the event re-plans within the timestep (`engine::replan`), each a whole schedule of its own
//! with its own hashes and on-chain commitment.

use super::{Conn, StoreResult, to_json};
use sqlx::FromRow;

/// One group's schedule for one timestep.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleRecord {
    /// Group id.
    pub group_id: i64,
    /// Absolute timestep (Unix seconds / `time_step_s`).
    pub timestep: i64,
    /// 0 for the tick's schedule, then 1, 2, … for the event re-plans within the timestep.
    pub revision: i64,
    /// Step length (s).
    pub time_step_s: i64,
    /// Solve status (`optimal`, `shortfall`, `time_limit`, `fallback`).
    pub status: String,
    /// keccak-256 of the canonical inputs, `0x`-hex.
    pub inputs_hash: String,
    /// keccak-256 of the schedule, `0x`-hex.
    pub schedule_hash: String,
    /// Algorithm version hash, `0x`-hex.
    pub params_hash: String,
    /// The optimiser inputs (JSON of `GroupInputs`).
    pub inputs: serde_json::Value,
    /// The schedule (JSON of `Schedule`).
    pub schedule: serde_json::Value,
    /// Per-vehicle metadata: which session and EVSE each schedule row belongs to (JSON).
    pub members: serde_json::Value,
    /// Capacity in step 0 (W).
    pub capacity_w: i64,
    /// Planned grid import in step 0 (W).
    pub planned_load_w: i64,
    /// Measured EV load at the snapshot (W).
    pub measured_load_w: i64,
    /// PV forecast for step 0 (W).
    pub pv_w: i64,
    /// The arrival reserve the plan kept free (W, `engine::reserve`); `capacity_w` is before it.
    pub reserve_w: i64,
    /// Stored (Unix seconds).
    pub created_at: i64,
}

#[derive(FromRow)]
struct ScheduleRow {
    group_id: i64,
    timestep: i64,
    revision: i64,
    time_step_s: i64,
    status: String,
    inputs_hash: String,
    schedule_hash: String,
    params_hash: String,
    inputs: String,
    schedule: String,
    members: String,
    capacity_w: i64,
    planned_load_w: i64,
    measured_load_w: i64,
    pv_w: i64,
    reserve_w: i64,
    created_at: i64,
}

impl TryFrom<ScheduleRow> for ScheduleRecord {
    type Error = super::StoreError;
    fn try_from(r: ScheduleRow) -> StoreResult<Self> {
        Ok(Self {
            group_id: r.group_id,
            timestep: r.timestep,
            revision: r.revision,
            time_step_s: r.time_step_s,
            status: r.status,
            inputs_hash: r.inputs_hash,
            schedule_hash: r.schedule_hash,
            params_hash: r.params_hash,
            inputs: super::from_json(&r.inputs, "schedules.inputs")?,
            schedule: super::from_json(&r.schedule, "schedules.schedule")?,
            members: super::from_json(&r.members, "schedules.members")?,
            capacity_w: r.capacity_w,
            planned_load_w: r.planned_load_w,
            measured_load_w: r.measured_load_w,
            pv_w: r.pv_w,
            reserve_w: r.reserve_w,
            created_at: r.created_at,
        })
    }
}

const COLUMNS: &str = "group_id, timestep, revision, time_step_s, status, inputs_hash, schedule_hash, \
    params_hash, inputs, schedule, members, capacity_w, planned_load_w, measured_load_w, \
    pv_w, reserve_w, created_at";

/// Stores a schedule; `false` if one exists for the (group, timestep, revision) already
/// (idempotent).
#[tracing::instrument(skip_all, fields(group_id = r.group_id, timestep = r.timestep, revision = r.revision))]
pub async fn insert(conn: &mut Conn, r: &ScheduleRecord) -> StoreResult<bool> {
    let result = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO schedules ({COLUMNS})
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (group_id, timestep, revision) DO NOTHING"
    )))
    .bind(r.group_id)
    .bind(r.timestep)
    .bind(r.revision)
    .bind(r.time_step_s)
    .bind(&r.status)
    .bind(&r.inputs_hash)
    .bind(&r.schedule_hash)
    .bind(&r.params_hash)
    .bind(to_json(&r.inputs))
    .bind(to_json(&r.schedule))
    .bind(to_json(&r.members))
    .bind(r.capacity_w)
    .bind(r.planned_load_w)
    .bind(r.measured_load_w)
    .bind(r.pv_w)
    .bind(r.reserve_w)
    .bind(r.created_at)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// Whether a schedule (of any revision) exists for (group, timestep).
pub async fn exists(conn: &mut Conn, group_id: i64, timestep: i64) -> StoreResult<bool> {
    Ok(last_revision(conn, group_id, timestep).await?.is_some())
}

/// The highest revision stored for (group, timestep), `None` when the timestep has none.
pub async fn last_revision(
    conn: &mut Conn,
    group_id: i64,
    timestep: i64,
) -> StoreResult<Option<i64>> {
    let (revision,): (Option<i64>,) =
        sqlx::query_as("SELECT MAX(revision) FROM schedules WHERE group_id = $1 AND timestep = $2")
            .bind(group_id)
            .bind(timestep)
            .fetch_one(conn)
            .await?;
    Ok(revision)
}

/// The schedule of (group, timestep, revision).
pub async fn get(
    conn: &mut Conn,
    group_id: i64,
    timestep: i64,
    revision: i64,
) -> StoreResult<Option<ScheduleRecord>> {
    let row: Option<ScheduleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE group_id = $1 AND timestep = $2 AND revision = $3"
    )))
    .bind(group_id)
    .bind(timestep)
    .bind(revision)
    .fetch_optional(conn)
    .await?;
    row.map(ScheduleRecord::try_from).transpose()
}

/// The schedule in force for (group, timestep): its highest revision.
pub async fn latest_of(
    conn: &mut Conn,
    group_id: i64,
    timestep: i64,
) -> StoreResult<Option<ScheduleRecord>> {
    latest_before(conn, group_id, timestep + 1)
        .await
        .map(|r| r.filter(|r| r.timestep == timestep))
}

/// The group's latest schedule before `before_timestep` (its last valid one: the highest
/// revision of the last timestep stored).
pub async fn latest_before(
    conn: &mut Conn,
    group_id: i64,
    before_timestep: i64,
) -> StoreResult<Option<ScheduleRecord>> {
    let row: Option<ScheduleRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM schedules WHERE group_id = $1 AND timestep < $2
         ORDER BY timestep DESC, revision DESC LIMIT 1"
    )))
    .bind(group_id)
    .bind(before_timestep)
    .fetch_optional(conn)
    .await?;
    row.map(ScheduleRecord::try_from).transpose()
}

/// The stored battery plan of a group's latest schedule: what a battery controller reads,
/// without the inputs and members that [`latest_before`] also decodes.
#[derive(Debug, Clone, PartialEq)]
pub struct BatteryPlan {
    /// Absolute timestep of step 0.
    pub timestep: i64,
    /// Revision within the timestep.
    pub revision: i64,
    /// Step length (s).
    pub time_step_s: i64,
    /// keccak-256 of the schedule, `0x`-hex.
    pub schedule_hash: String,
    /// The schedule's battery power per step (W, + charging).
    pub battery_w: Vec<i64>,
}

/// The battery plan of the group's latest schedule before `before_timestep`.
pub async fn latest_battery_plan(
    conn: &mut Conn,
    group_id: i64,
    before_timestep: i64,
) -> StoreResult<Option<BatteryPlan>> {
    let row: Option<(i64, i64, i64, String, String)> = sqlx::query_as(
        "SELECT timestep, revision, time_step_s, schedule_hash, schedule FROM schedules
         WHERE group_id = $1 AND timestep < $2 ORDER BY timestep DESC, revision DESC LIMIT 1",
    )
    .bind(group_id)
    .bind(before_timestep)
    .fetch_optional(conn)
    .await?;
    row.map(
        |(timestep, revision, time_step_s, schedule_hash, schedule)| {
            #[derive(serde::Deserialize)]
            struct OnlyBattery {
                #[serde(default)]
                battery_w: Vec<i64>,
            }
            let only: OnlyBattery = super::from_json(&schedule, "schedules.schedule")?;
            Ok(BatteryPlan {
                timestep,
                revision,
                time_step_s,
                schedule_hash,
                battery_w: only.battery_w,
            })
        },
    )
    .transpose()
}

/// One point of a group's load history.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize, utoipa::ToSchema)]
pub struct LoadPoint {
    /// Timestep.
    pub timestep: i64,
    /// Capacity (W).
    pub capacity_w: i64,
    /// Planned grid import (W).
    pub planned_load_w: i64,
    /// Measured EV load (W).
    pub measured_load_w: i64,
    /// PV (W).
    pub pv_w: i64,
}

/// The group's most recent `limit` load points, oldest first: one per timestep, from its
/// highest revision.
pub async fn load_history(
    conn: &mut Conn,
    group_id: i64,
    limit: i64,
) -> StoreResult<Vec<LoadPoint>> {
    let mut rows: Vec<LoadPoint> = sqlx::query_as(
        "SELECT timestep, capacity_w, planned_load_w, measured_load_w, pv_w FROM schedules s
         WHERE group_id = $1 AND revision = (SELECT MAX(revision) FROM schedules r
             WHERE r.group_id = s.group_id AND r.timestep = s.timestep)
         ORDER BY timestep DESC LIMIT $2",
    )
    .bind(group_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.reverse();
    Ok(rows)
}

/// Number of schedules stored.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM schedules")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// A set-point to send to a CPO.
#[derive(Debug, Clone, PartialEq)]
pub struct SetpointRecord {
    /// Group id.
    pub group_id: i64,
    /// Timestep of the schedule it comes from.
    pub timestep: i64,
    /// Revision of the schedule it comes from (0: the tick's).
    pub revision: i64,
    /// Session row id.
    pub session_row: i64,
    /// OCPI session id (the URL path element at the CPO).
    pub session_id: String,
    /// The CPO party row to send it to.
    pub owner_party: Option<i64>,
    /// Power for the current step (W).
    pub power_w: i64,
    /// The OCPI `ChargingProfile` (JSON).
    pub profile: serde_json::Value,
}

/// A stored set-point with its delivery state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSetpoint {
    /// Id (also the last path element of its `response_url`).
    pub id: i64,
    /// The record.
    pub record: SetpointRecord,
    /// `pending`, `sent`, `in_force`, `rejected`, `failed` or `superseded`
    /// (`engine::setpoints`).
    pub status: String,
    /// Delivery attempts so far.
    pub attempts: i64,
    /// The CPO's synchronous answer (JSON), when sent.
    pub response: Option<String>,
    /// The CPO's asynchronous result (JSON), when received.
    pub result: Option<String>,
    /// How often the CPO asked it to wait (`TOO_OFTEN`, `UNKNOWN_SESSION`), with the back-off
    /// of the set-points it superseded.
    pub deferrals: i64,
}

#[derive(FromRow)]
struct SetpointRow {
    id: i64,
    group_id: i64,
    timestep: i64,
    revision: i64,
    session_row: i64,
    session_id: String,
    owner_party: Option<i64>,
    power_w: i64,
    profile: String,
    status: String,
    attempts: i64,
    response: Option<String>,
    result: Option<String>,
    deferrals: i64,
}

impl TryFrom<SetpointRow> for StoredSetpoint {
    type Error = super::StoreError;
    fn try_from(r: SetpointRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.id,
            record: SetpointRecord {
                group_id: r.group_id,
                timestep: r.timestep,
                revision: r.revision,
                session_row: r.session_row,
                session_id: r.session_id,
                owner_party: r.owner_party,
                power_w: r.power_w,
                profile: super::from_json(&r.profile, "setpoints.profile")?,
            },
            status: r.status,
            attempts: r.attempts,
            response: r.response,
            result: r.result,
            deferrals: r.deferrals,
        })
    }
}

const SETPOINT_COLUMNS: &str = "id, group_id, timestep, revision, session_row, session_id, owner_party, \
    power_w, profile, status, attempts, response, result, deferrals";

/// Stores a set-point as `pending`; older pending set-points of the same session are
/// superseded (only the newest profile is worth sending).
///
/// The new one inherits the back-off of the ones it supersedes (see [`defer`]).
pub async fn insert_setpoint(conn: &mut Conn, s: &SetpointRecord, now: i64) -> StoreResult<()> {
    insert_setpoints(conn, &[(s, SetpointKind::Pending)], now).await
}

/// Records a set-point the CPO is not sent because the profile it confirmed in force already
/// says the same (`engine::setpoints::unchanged`): status `unchanged`, never delivered. Pending
/// ones of the session are superseded as by [`insert_setpoint`].
pub async fn insert_unchanged_setpoint(
    conn: &mut Conn,
    s: &SetpointRecord,
    now: i64,
) -> StoreResult<()> {
    insert_setpoints(conn, &[(s, SetpointKind::Unchanged)], now).await
}

/// How a new set-point is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetpointKind {
    /// To be sent ([`insert_setpoint`]).
    Pending,
    /// Not sent: the profile in force says the same ([`insert_unchanged_setpoint`]).
    Unchanged,
}

impl SetpointKind {
    fn status(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Unchanged => "unchanged",
        }
    }
}

/// [`insert_setpoint`] and [`insert_unchanged_setpoint`] of a group's set-points (one per
/// session) in three statements, whatever their number: each session's pending set-points are
/// superseded, and a new pending one keeps their back-off (`not_before`, `deferrals`).
pub async fn insert_setpoints(
    conn: &mut Conn,
    setpoints: &[(&SetpointRecord, SetpointKind)],
    now: i64,
) -> StoreResult<()> {
    if setpoints.is_empty() {
        return Ok(());
    }
    let rows = super::numbered(1, setpoints.len());
    let sql = format!(
        "SELECT session_row, MAX(not_before), MAX(deferrals) FROM setpoints
         WHERE status = 'pending' AND session_row IN ({rows}) GROUP BY session_row"
    );
    let mut query = sqlx::query_as::<_, (i64, Option<i64>, Option<i64>)>(sqlx::AssertSqlSafe(sql));
    for (s, _) in setpoints {
        query = query.bind(s.session_row);
    }
    let backoff: std::collections::HashMap<i64, (i64, i64)> = query
        .fetch_all(&mut *conn)
        .await?
        .into_iter()
        .map(|(row, nb, d)| (row, (nb.unwrap_or(0), d.unwrap_or(0))))
        .collect();
    let sql = format!(
        "UPDATE setpoints SET status = 'superseded', updated_at = $1
         WHERE status = 'pending' AND session_row IN ({})",
        super::numbered(2, setpoints.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
    for (s, _) in setpoints {
        query = query.bind(s.session_row);
    }
    query.execute(&mut *conn).await?;
    const COLUMNS: usize = 12;
    let values: Vec<String> = (0..setpoints.len())
        .map(|i| {
            let p = |k: usize| format!("${}", COLUMNS * i + k);
            format!(
                "({}, {}, {}, {}, {}, {}, {}, {}, 0, {}, {}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4),
                p(5),
                p(6),
                p(7),
                p(8),
                p(9),
                p(9),
                p(10),
                p(11),
                p(12)
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO setpoints (group_id, timestep, session_row, session_id, owner_party,
             power_w, profile, status, attempts, created_at, updated_at, not_before, deferrals,
             revision)
         VALUES {}
         ON CONFLICT (group_id, timestep, revision, session_row) DO NOTHING",
        values.join(", ")
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (s, kind) in setpoints {
        let (not_before, deferrals) = backoff.get(&s.session_row).copied().unwrap_or((0, 0));
        query = query
            .bind(s.group_id)
            .bind(s.timestep)
            .bind(s.session_row)
            .bind(s.session_id.clone())
            .bind(s.owner_party)
            .bind(s.power_w)
            .bind(to_json(&s.profile))
            .bind(kind.status())
            .bind(now)
            .bind(not_before)
            .bind(deferrals)
            .bind(s.revision);
    }
    query.execute(conn).await?;
    Ok(())
}

/// The profile of a session's newest set-point that was sent (not `unchanged`), if the CPO
/// confirmed it in force (`in_force`).
pub async fn profile_in_force(
    conn: &mut Conn,
    session_row: i64,
) -> StoreResult<Option<serde_json::Value>> {
    Ok(profiles_in_force(conn, &[session_row])
        .await?
        .remove(&session_row))
}

/// [`profile_in_force`] of several sessions in one query: session row → the profile in force.
pub async fn profiles_in_force(
    conn: &mut Conn,
    session_rows: &[i64],
) -> StoreResult<std::collections::HashMap<i64, serde_json::Value>> {
    let newest = newest_profiles(conn, session_rows, "status <> 'unchanged'").await?;
    newest
        .into_iter()
        .filter(|(_, (status, _))| status == "in_force")
        .map(|(row, (_, profile))| Ok((row, super::from_json(&profile, "setpoints.profile")?)))
        .collect()
}

/// The profile of each session's newest set-point the CPO took (`sent` or `in_force`): what
/// its charge point follows while a newer one waits.
pub async fn taken_profiles(
    conn: &mut Conn,
    session_rows: &[i64],
) -> StoreResult<std::collections::HashMap<i64, serde_json::Value>> {
    let newest = newest_profiles(conn, session_rows, "status IN ('sent', 'in_force')").await?;
    newest
        .into_iter()
        .map(|(row, (_, profile))| Ok((row, super::from_json(&profile, "setpoints.profile")?)))
        .collect()
}

/// Each session's newest set-point among those matching `filter` (a constant SQL condition on
/// `setpoints`): session row → (status, profile JSON as stored, parsed only by the callers
/// that keep it).
async fn newest_profiles(
    conn: &mut Conn,
    session_rows: &[i64],
    filter: &'static str,
) -> StoreResult<std::collections::HashMap<i64, (String, String)>> {
    if session_rows.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT session_row, status, profile FROM setpoints WHERE id IN (
             SELECT MAX(id) FROM setpoints
             WHERE {filter} AND session_row IN ({}) GROUP BY session_row)",
        super::numbered(1, session_rows.len())
    );
    let mut query = sqlx::query_as::<_, (i64, String, String)>(sqlx::AssertSqlSafe(sql));
    for row in session_rows {
        query = query.bind(row);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(row, status, profile)| (row, (status, profile)))
        .collect())
}

/// Of pending set-points: not one that waited (`deferrals > 0`) while a newer plan of its group
/// was committed. Such a one is not sent as it was planned: its group is planned again first
/// (`engine::setpoints::end_waits`).
const NOT_OUTDATED: &str = "NOT (setpoints.deferrals > 0 AND EXISTS (
    SELECT 1 FROM schedules s WHERE s.group_id = setpoints.group_id
      AND (s.timestep > setpoints.timestep
           OR (s.timestep = setpoints.timestep AND s.revision > setpoints.revision))))";

/// Pending set-points due at `now` (not backing off, not outdated: [`NOT_OUTDATED`]), oldest
/// first.
pub async fn pending(conn: &mut Conn, now: i64, limit: i64) -> StoreResult<Vec<StoredSetpoint>> {
    let rows: Vec<SetpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETPOINT_COLUMNS} FROM setpoints WHERE status = 'pending' AND not_before <= $2
           AND {NOT_OUTDATED}
         ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .bind(now)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSetpoint::try_from).collect()
}

/// Pending set-points of one group due at `now` (as [`pending`]), oldest first.
pub async fn pending_of_group(
    conn: &mut Conn,
    group_id: i64,
    now: i64,
    limit: i64,
) -> StoreResult<Vec<StoredSetpoint>> {
    let rows: Vec<SetpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETPOINT_COLUMNS} FROM setpoints
         WHERE status = 'pending' AND not_before <= $2 AND group_id = $3 AND {NOT_OUTDATED}
         ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .bind(now)
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSetpoint::try_from).collect()
}

/// A pending set-point whose back-off has ended ([`waited`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, FromRow)]
pub struct Waited {
    /// Set-point id.
    pub id: i64,
    /// Its group.
    pub group_id: i64,
    /// When its wait ended (Unix seconds).
    pub not_before: i64,
    /// When the group's newest plan was committed, if a plan newer than the set-point's own
    /// came since (Unix seconds).
    pub newer_plan_at: Option<i64>,
}

/// Pending set-points the CPO asked to wait for (`deferrals > 0`) whose wait has ended at `now`,
/// with the commit time of any plan of their group newer than their own.
pub async fn waited(conn: &mut Conn, now: i64) -> StoreResult<Vec<Waited>> {
    Ok(sqlx::query_as(
        "SELECT sp.id, sp.group_id, sp.not_before,
             (SELECT s.created_at FROM schedules s
              WHERE s.group_id = sp.group_id
                AND (s.timestep > sp.timestep
                     OR (s.timestep = sp.timestep AND s.revision > sp.revision))
              ORDER BY s.timestep DESC, s.revision DESC LIMIT 1) AS newer_plan_at
         FROM setpoints sp
         WHERE sp.status = 'pending' AND sp.deferrals > 0 AND sp.not_before <= $1
         ORDER BY sp.id",
    )
    .bind(now)
    .fetch_all(conn)
    .await?)
}

/// Marks the pending set-points `ids` superseded (never to be sent).
pub async fn supersede(conn: &mut Conn, ids: &[i64], now: i64) -> StoreResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE setpoints SET status = 'superseded', updated_at = $1
         WHERE status = 'pending' AND id IN ({})",
        super::numbered(2, ids.len())
    );
    let mut query = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now);
    for id in ids {
        query = query.bind(id);
    }
    query.execute(conn).await?;
    Ok(())
}

/// Set-points of one (group, timestep, revision).
pub async fn setpoints_of(
    conn: &mut Conn,
    group_id: i64,
    timestep: i64,
    revision: i64,
) -> StoreResult<Vec<StoredSetpoint>> {
    let rows: Vec<SetpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETPOINT_COLUMNS} FROM setpoints
         WHERE group_id = $1 AND timestep = $2 AND revision = $3
         ORDER BY session_id"
    )))
    .bind(group_id)
    .bind(timestep)
    .bind(revision)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSetpoint::try_from).collect()
}

/// A set-point by id.
pub async fn get_setpoint(conn: &mut Conn, id: i64) -> StoreResult<Option<StoredSetpoint>> {
    let row: Option<SetpointRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETPOINT_COLUMNS} FROM setpoints WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSetpoint::try_from).transpose()
}

/// Records a delivery attempt's outcome: `sent` with the CPO's answer, or `failed`/`pending`
/// with the error.
pub async fn record_attempt(
    conn: &mut Conn,
    id: i64,
    status: &str,
    attempts: i64,
    response: Option<&str>,
    error: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE setpoints SET status = $2, attempts = $3, response = COALESCE($4, response),
             error = $5, updated_at = $6,
             sent_at = CASE WHEN $4 IS NULL THEN sent_at ELSE $6 END
         WHERE id = $1",
    )
    .bind(id)
    .bind(status)
    .bind(attempts)
    .bind(response.map(str::to_owned))
    .bind(error.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Leaves set-point `id` pending after an answer that asks to wait (`TOO_OFTEN`, or
/// `UNKNOWN_SESSION` while the CPO may not have the session yet), not to be sent before
/// `not_before`; counts the deferral. Returns the deferrals so far.
pub async fn defer(
    conn: &mut Conn,
    id: i64,
    attempts: i64,
    not_before: i64,
    response: &str,
    error: &str,
    now: i64,
) -> StoreResult<i64> {
    let (deferrals,): (i64,) = sqlx::query_as(
        "UPDATE setpoints SET status = 'pending', attempts = $2, response = $3, error = $4,
             not_before = $5, deferrals = deferrals + 1, updated_at = $6, sent_at = $6
         WHERE id = $1 RETURNING deferrals",
    )
    .bind(id)
    .bind(attempts)
    .bind(response)
    .bind(error)
    .bind(not_before)
    .bind(now)
    .fetch_one(conn)
    .await?;
    Ok(deferrals)
}

/// Set-points the CPO took (`sent`) that evflex has not yet asked about the profile in force
/// (GET ActiveChargingProfile), oldest first: `(set-point, when the CPO answered it)`.
pub async fn sent_unqueried(
    conn: &mut Conn,
    limit: i64,
) -> StoreResult<Vec<(StoredSetpoint, Option<i64>)>> {
    #[derive(sqlx::FromRow)]
    struct Row {
        #[sqlx(flatten)]
        setpoint: SetpointRow,
        sent_at: Option<i64>,
    }
    let rows: Vec<Row> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SETPOINT_COLUMNS}, sent_at FROM setpoints
         WHERE status = 'sent' AND active_queried_at IS NULL ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| Ok((StoredSetpoint::try_from(r.setpoint)?, r.sent_at)))
        .collect()
}

/// Notes that evflex asked the CPO for the profile in force behind set-point `id`.
pub async fn mark_active_queried(conn: &mut Conn, id: i64, now: i64) -> StoreResult<()> {
    sqlx::query("UPDATE setpoints SET active_queried_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// The CPO reported a profile in force for `session_row` whose limit is `limit_w` (W): the
/// newest set-point of the session, if the CPO took it (`sent`) and the limit in force is no
/// higher than the set-point's (with `tolerance_w`), is `in_force`. Returns whether one was.
pub async fn confirm_in_force(
    conn: &mut Conn,
    session_row: i64,
    limit_w: i64,
    tolerance_w: i64,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE setpoints SET status = 'in_force', updated_at = $4
         WHERE id = (SELECT MAX(id) FROM setpoints WHERE session_row = $1)
           AND status = 'sent' AND $2 <= power_w + $3",
    )
    .bind(session_row)
    .bind(limit_w)
    .bind(tolerance_w)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Stores the CPO's asynchronous result for its own set-point `id` (sent to `owner_party`),
/// and its consequence: `in_force` when `accepted`, else `rejected` (a superseded set-point
/// stays superseded); `false` when there is no such set-point of that party.
pub async fn record_result(
    conn: &mut Conn,
    id: i64,
    owner_party: i64,
    result: &str,
    accepted: bool,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE setpoints SET result = $3, updated_at = $4,
             status = CASE WHEN status IN ('pending', 'sent') THEN $5 ELSE status END
         WHERE id = $1 AND owner_party = $2",
    )
    .bind(id)
    .bind(owner_party)
    .bind(result)
    .bind(now)
    .bind(if accepted { "in_force" } else { "rejected" })
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The state of the last profile sent (or to be sent) for a session, as the cockpit shows it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ProfileState {
    /// `pending`, `sent`, `in_force`, `rejected`, `failed`, `superseded` or `unchanged` (not
    /// sent: the profile in force already said the same).
    pub status: String,
    /// Why it was refused or failed.
    pub error: Option<String>,
    /// Its first limit (W).
    pub power_w: i64,
    /// When its state last changed (Unix seconds).
    pub updated_at: i64,
    /// Not sent again before (Unix seconds; the CPO asked to wait).
    pub not_before: i64,
    /// When the CPO last answered it (Unix seconds).
    pub sent_at: Option<i64>,
    /// The CPO's synchronous answer (JSON), when sent: its `timeout` says how long the result
    /// may take.
    pub response: Option<String>,
}

const PROFILE_STATE_COLUMNS: &str =
    "status, error, power_w, updated_at, not_before, sent_at, response";

/// The newest set-point of a session (by session row), in any group.
pub async fn last_profile_of_session(
    conn: &mut Conn,
    session_row: i64,
) -> StoreResult<Option<ProfileState>> {
    Ok(last_profiles_of_sessions(conn, &[session_row])
        .await?
        .remove(&session_row))
}

/// [`last_profile_of_session`] of every session in `session_rows` in one query (a group's
/// snapshot reads them all at once): session row → its newest set-point's state.
pub async fn last_profiles_of_sessions(
    conn: &mut Conn,
    session_rows: &[i64],
) -> StoreResult<std::collections::HashMap<i64, ProfileState>> {
    #[derive(FromRow)]
    struct Keyed {
        session_row: i64,
        #[sqlx(flatten)]
        state: ProfileState,
    }
    if session_rows.is_empty() {
        return Ok(Default::default());
    }
    let sql = format!(
        "SELECT session_row, {PROFILE_STATE_COLUMNS} FROM setpoints WHERE id IN (
             SELECT MAX(id) FROM setpoints WHERE session_row IN ({}) GROUP BY session_row)",
        super::numbered(1, session_rows.len())
    );
    let mut query = sqlx::query_as::<_, Keyed>(sqlx::AssertSqlSafe(sql));
    for row in session_rows {
        query = query.bind(row);
    }
    Ok(query
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|k| (k.session_row, k.state))
        .collect())
}

/// The newest set-point of a session in a group, if any.
pub async fn last_profile(
    conn: &mut Conn,
    group_id: i64,
    session_id: &str,
) -> StoreResult<Option<ProfileState>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {PROFILE_STATE_COLUMNS} FROM setpoints
         WHERE group_id = $1 AND session_id = $2 ORDER BY id DESC LIMIT 1"
    )))
    .bind(group_id)
    .bind(session_id)
    .fetch_optional(conn)
    .await?)
}
