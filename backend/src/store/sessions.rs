//! OCPI Sessions and CDRs. Owns `sessions` and `cdrs`.
//!
//! A session PATCH is one `UPDATE` of the columns evflex computes with (`COALESCE` keeps what
//! the PATCH leaves out), so the hot ingestion path is a single statement; `body` keeps the
//! object of the last PUT and the columns override it when the session is read back.

use super::{Conn, StoreResult, from_json, to_json};
use sqlx::FromRow;

/// A session as evflex stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI session id.
    pub session_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// Location id.
    pub location_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// Connector id.
    pub connector_id: String,
    /// OCPI `SessionStatus`.
    pub status: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds), when ended.
    pub end_ts: Option<i64>,
    /// Energy charged so far (Wh; OCPI `kwh`).
    pub energy_wh: i64,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// `cdr_token.contract_id`.
    pub contract_id: Option<String>,
    /// `charging_periods` as received.
    pub charging_periods: serde_json::Value,
    /// `total_cost` as received.
    pub total_cost: Option<serde_json::Value>,
    /// The Session object of the last PUT.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

/// A stored session with the columns evflex adds.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSession {
    /// Row id.
    pub id: i64,
    /// The record.
    pub record: SessionRecord,
    /// User linked to the session (by a charging request or the user's token uid).
    pub user_id: Option<i64>,
    /// Flexibility energy of the latest schedule (Wh).
    pub flex_shifted_wh: i64,
    /// Flexibility value of the latest schedule (micro-EUR).
    pub flex_value_micro_eur: i64,
}

/// The fields a session PATCH may change, already parsed (`None`: unchanged).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SessionPatch {
    /// New status.
    pub status: Option<String>,
    /// New end.
    pub end_ts: Option<i64>,
    /// New energy (Wh).
    pub energy_wh: Option<i64>,
    /// New charging periods.
    pub charging_periods: Option<serde_json::Value>,
    /// New total cost.
    pub total_cost: Option<serde_json::Value>,
    /// `last_updated` (required by OCPI in every PATCH).
    pub last_updated: i64,
}

#[derive(FromRow)]
struct SessionRow {
    id: i64,
    country_code: String,
    party_id: String,
    session_id: String,
    owner_party: Option<i64>,
    location_id: String,
    evse_uid: String,
    connector_id: String,
    status: String,
    start_ts: i64,
    end_ts: Option<i64>,
    energy_wh: i64,
    token_uid: String,
    contract_id: Option<String>,
    charging_periods: String,
    total_cost: Option<String>,
    user_id: Option<i64>,
    flex_shifted_wh: i64,
    flex_value_micro_eur: i64,
    body: String,
    last_updated: i64,
}

impl TryFrom<SessionRow> for StoredSession {
    type Error = super::StoreError;
    fn try_from(r: SessionRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.id,
            record: SessionRecord {
                country_code: r.country_code,
                party_id: r.party_id,
                session_id: r.session_id,
                owner_party: r.owner_party,
                location_id: r.location_id,
                evse_uid: r.evse_uid,
                connector_id: r.connector_id,
                status: r.status,
                start_ts: r.start_ts,
                end_ts: r.end_ts,
                energy_wh: r.energy_wh,
                token_uid: r.token_uid,
                contract_id: r.contract_id,
                charging_periods: from_json(&r.charging_periods, "sessions.charging_periods")?,
                total_cost: r
                    .total_cost
                    .as_deref()
                    .map(|t| from_json(t, "sessions.total_cost"))
                    .transpose()?,
                body: from_json(&r.body, "sessions.body")?,
                last_updated: r.last_updated,
            },
            user_id: r.user_id,
            flex_shifted_wh: r.flex_shifted_wh,
            flex_value_micro_eur: r.flex_value_micro_eur,
        })
    }
}

const SESSION_COLUMNS: &str = "id, country_code, party_id, session_id, owner_party, location_id, \
    evse_uid, connector_id, status, start_ts, end_ts, energy_wh, token_uid, contract_id, \
    charging_periods, total_cost, user_id, flex_shifted_wh, flex_value_micro_eur, body, \
    last_updated";

/// Inserts or replaces a session (PUT); keeps evflex's own columns (user, flexibility).
#[tracing::instrument(skip_all, fields(session = %rec.session_id))]
pub async fn upsert(conn: &mut Conn, rec: &SessionRecord) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO sessions (country_code, party_id, session_id, owner_party, location_id,
             evse_uid, connector_id, status, start_ts, end_ts, energy_wh, token_uid, contract_id,
             charging_periods, total_cost, body, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)
         ON CONFLICT (country_code, party_id, session_id) DO UPDATE SET
             owner_party = excluded.owner_party, location_id = excluded.location_id,
             evse_uid = excluded.evse_uid, connector_id = excluded.connector_id,
             status = excluded.status, start_ts = excluded.start_ts, end_ts = excluded.end_ts,
             energy_wh = excluded.energy_wh, token_uid = excluded.token_uid,
             contract_id = excluded.contract_id, charging_periods = excluded.charging_periods,
             total_cost = excluded.total_cost, body = excluded.body,
             last_updated = excluded.last_updated
         RETURNING id",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.session_id)
    .bind(rec.owner_party)
    .bind(&rec.location_id)
    .bind(&rec.evse_uid)
    .bind(&rec.connector_id)
    .bind(&rec.status)
    .bind(rec.start_ts)
    .bind(rec.end_ts)
    .bind(rec.energy_wh)
    .bind(&rec.token_uid)
    .bind(rec.contract_id.clone())
    .bind(to_json(&rec.charging_periods))
    .bind(rec.total_cost.as_ref().map(to_json))
    .bind(to_json(&rec.body))
    .bind(rec.last_updated)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// Applies a PATCH in one statement; `false` when the session is unknown.
pub async fn patch(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    session_id: &str,
    p: &SessionPatch,
) -> StoreResult<bool> {
    let result = sqlx::query(
        "UPDATE sessions SET
             status = COALESCE($4, status),
             end_ts = COALESCE($5, end_ts),
             energy_wh = COALESCE($6, energy_wh),
             charging_periods = COALESCE($7, charging_periods),
             total_cost = COALESCE($8, total_cost),
             last_updated = $9
         WHERE country_code = $1 AND party_id = $2 AND session_id = $3",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(session_id)
    .bind(p.status.clone())
    .bind(p.end_ts)
    .bind(p.energy_wh)
    .bind(p.charging_periods.as_ref().map(to_json))
    .bind(p.total_cost.as_ref().map(to_json))
    .bind(p.last_updated)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A session by its OCPI key.
pub async fn get(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    session_id: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE country_code = $1 AND party_id = $2 AND session_id = $3"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(session_id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// A session by row id.
pub async fn get_by_row(conn: &mut Conn, id: i64) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// The open (`ACTIVE` or `PENDING`) sessions on a group's member EVSEs, by session id.
pub async fn open_sessions_of_group(
    conn: &mut Conn,
    group_id: i64,
) -> StoreResult<Vec<StoredSession>> {
    let columns = SESSION_COLUMNS
        .split(", ")
        .map(|c| format!("s.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {columns} FROM sessions s JOIN group_members m
             ON m.country_code = s.country_code AND m.party_id = s.party_id
                AND m.evse_uid = s.evse_uid
         WHERE m.group_id = $1 AND s.status IN ('ACTIVE', 'PENDING')
         ORDER BY s.country_code, s.party_id, s.session_id"
    )))
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSession::try_from).collect()
}

/// The open session on an EVSE, if any (the most recently started).
pub async fn open_session_on_evse(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE country_code = $1 AND party_id = $2 AND evse_uid = $3
             AND status IN ('ACTIVE', 'PENDING')
         ORDER BY start_ts DESC, id DESC LIMIT 1"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(evse_uid)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// Sessions linked to a user, newest first.
pub async fn of_user(conn: &mut Conn, user_id: i64, limit: i64) -> StoreResult<Vec<StoredSession>> {
    let rows: Vec<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE user_id = $1
         ORDER BY start_ts DESC, id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredSession::try_from).collect()
}

/// Links a session to a user.
pub async fn set_user(conn: &mut Conn, session_row: i64, user_id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET user_id = $2 WHERE id = $1")
        .bind(session_row)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Links every unlinked session whose token uid is `token_uid` to a user.
pub async fn link_token_uid(conn: &mut Conn, token_uid: &str, user_id: i64) -> StoreResult<()> {
    sqlx::query("UPDATE sessions SET user_id = $2 WHERE token_uid = $1 AND user_id IS NULL")
        .bind(token_uid)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the flexibility a session gave according to the latest schedule.
pub async fn set_flexibility(
    conn: &mut Conn,
    session_row: i64,
    shifted_wh: i64,
    value_micro_eur: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE sessions SET flex_shifted_wh = $2, flex_value_micro_eur = $3 WHERE id = $1",
    )
    .bind(session_row)
    .bind(shifted_wh)
    .bind(value_micro_eur)
    .execute(conn)
    .await?;
    Ok(())
}

/// Number of sessions stored.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM sessions")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// A charge detail record as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct CdrRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI CDR id.
    pub cdr_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// Session id, when given.
    pub session_id: Option<String>,
    /// EVSE uid (`cdr_location.evse_uid`).
    pub evse_uid: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds).
    pub end_ts: i64,
    /// `total_energy` (Wh).
    pub energy_wh: i64,
    /// `total_cost.excl_vat` (micro-EUR, or micro-units of `currency`).
    pub total_cost_excl_vat_micro_eur: i64,
    /// `total_cost.incl_vat`.
    pub total_cost_incl_vat_micro_eur: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// The CDR object as received.
    pub body: serde_json::Value,
}

/// Inserts a CDR; `false` when one with the same key exists (CDRs are immutable in OCPI).
#[tracing::instrument(skip_all, fields(cdr = %rec.cdr_id))]
pub async fn insert_cdr(conn: &mut Conn, rec: &CdrRecord, now: i64) -> StoreResult<bool> {
    let result = sqlx::query(
        "INSERT INTO cdrs (country_code, party_id, cdr_id, owner_party, session_id, evse_uid,
             start_ts, end_ts, energy_wh, total_cost_excl_vat_micro_eur,
             total_cost_incl_vat_micro_eur, currency, token_uid, body, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
         ON CONFLICT (country_code, party_id, cdr_id) DO NOTHING",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.cdr_id)
    .bind(rec.owner_party)
    .bind(rec.session_id.clone())
    .bind(&rec.evse_uid)
    .bind(rec.start_ts)
    .bind(rec.end_ts)
    .bind(rec.energy_wh)
    .bind(rec.total_cost_excl_vat_micro_eur)
    .bind(rec.total_cost_incl_vat_micro_eur)
    .bind(&rec.currency)
    .bind(&rec.token_uid)
    .bind(to_json(&rec.body))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(result.rows_affected() > 0)
}

/// A CDR's body by its OCPI id (any party).
pub async fn get_cdr_body(conn: &mut Conn, cdr_id: &str) -> StoreResult<Option<serde_json::Value>> {
    let row: Option<(String,)> =
        sqlx::query_as("SELECT body FROM cdrs WHERE cdr_id = $1 ORDER BY id LIMIT 1")
            .bind(cdr_id)
            .fetch_optional(conn)
            .await?;
    row.map(|(b,)| from_json(&b, "cdrs.body")).transpose()
}

/// Number of CDRs stored.
pub async fn count_cdrs(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM cdrs")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// The newest session with this OCPI id (any party; for users who know only the id).
pub async fn find_by_session_id(
    conn: &mut Conn,
    session_id: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions WHERE session_id = $1 ORDER BY id DESC LIMIT 1"
    )))
    .bind(session_id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}

/// The newest open session on an EVSE with this uid (any party).
pub async fn open_session_on_evse_uid(
    conn: &mut Conn,
    evse_uid: &str,
) -> StoreResult<Option<StoredSession>> {
    let row: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions
         WHERE evse_uid = $1 AND status IN ('ACTIVE', 'PENDING')
         ORDER BY start_ts DESC, id DESC LIMIT 1"
    )))
    .bind(evse_uid)
    .fetch_optional(conn)
    .await?;
    row.map(StoredSession::try_from).transpose()
}
