//! The chain outbox. Owns `chain_outbox`.
//!
//! Chain work is enqueued in the same transaction as the state it records, so the database and
//! the work to put on chain never disagree; the chain writer (`chain` module) drains the table
//! and marks rows `sent`/`done`/`failed`. `dedupe_key` is unique: enqueueing the same work twice
//! is a no-op.
//!
//! # Kinds and payloads (JSON in `payload`)
//!
//! - `asset_upsert` — `dedupe_key` `asset_upsert:evse:{cc}*{party}*{uid}:v{n}` or
//!   `asset_upsert:group:{id}:v{n}`; enqueued when an EVSE or group arrives or its chain-relevant
//!   data changes ([`AssetPayload`]).
//! - `status_commit` — `dedupe_key` `status_commit:{group_id}:{timestep}`; one per group per
//!   tick ([`StatusCommitPayload`]), only while a chain is configured: with `--no-chain` the
//!   tick enqueues none, so the table does not grow without bound (see `engine::tick`).
//! - `settlement` — `dedupe_key` `settlement:{cc}*{party}*{cdr_id}`; one per CDR
//!   ([`SettlementPayload`]).

use super::{Conn, StoreResult, to_json};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

/// Kind `asset_upsert`: SC1 asset records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "asset", rename_all = "snake_case")]
pub enum AssetPayload {
    /// A charge point (OCPI EVSE).
    ChargePoint {
        /// Country code of the CPO.
        country_code: String,
        /// Party id of the CPO.
        party_id: String,
        /// Location id.
        location_id: String,
        /// OCPI EVSE uid (the chain's cp id is derived from `cc*party*uid`).
        evse_uid: String,
        /// eMI3 EVSE id.
        evse_id: Option<String>,
        /// Rated power (W); 0 when unknown.
        rated_power_w: i64,
        /// `AC_1_PHASE`, `AC_3_PHASE`, `DC`, …
        power_type: Option<String>,
        /// Phases.
        phases: Option<i64>,
        /// Voltage (V).
        max_voltage_v: Option<i64>,
        /// Current (A).
        max_current_a: Option<i64>,
        /// Connector standard (`IEC_62196_T2`, …).
        connector_standard: Option<String>,
        /// Group the charge point belongs to, if any.
        group_id: Option<i64>,
        /// `false` once the EVSE is `REMOVED` (deactivate on chain).
        active: bool,
    },
    /// A charging group with its PV inverters and batteries.
    Group {
        /// Group id.
        group_id: i64,
        /// Name.
        name: String,
        /// Connection capacity (W).
        capacity_w: i64,
        /// Member EVSE uids (of `country_code*party_id`).
        members: Vec<String>,
        /// Country code of the members' CPO.
        country_code: String,
        /// Party id of the members' CPO.
        party_id: String,
        /// PV inverters.
        pv_inverters: Vec<super::groups::PvInverter>,
        /// Batteries.
        batteries: Vec<super::groups::BatterySpec>,
    },
}

/// One member's line in a status commit (SC2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberStatus {
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI EVSE status.
    pub status: String,
    /// OCPI session id charging there, if any.
    pub session_id: Option<String>,
    /// Set-point for this timestep (W).
    pub setpoint_w: i64,
    /// Measured power at the snapshot (W).
    pub measured_w: i64,
    /// Energy the user still wants (Wh).
    pub energy_left_wh: i64,
    /// Seconds until the user's departure (0 when unknown or gone).
    pub time_left_s: i64,
}

/// Kind `status_commit`: one group's statuses and schedule hashes for one timestep (SC2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitPayload {
    /// Group id.
    pub group_id: i64,
    /// Absolute timestep (Unix seconds / `time_step_s`).
    pub timestep: i64,
    /// Step length (s).
    pub time_step_s: i64,
    /// keccak-256 of the canonical inputs (`0x`-hex, 32 bytes).
    pub inputs_hash: String,
    /// keccak-256 of the schedule (`0x`-hex).
    pub schedule_hash: String,
    /// Algorithm version hash (`0x`-hex).
    pub algorithm_version: String,
    /// Every member EVSE, by uid.
    pub members: Vec<MemberStatus>,
}

/// Kind `settlement`: a CDR's metered energy and cost, and the flexibility the user gave (SC3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementPayload {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI CDR id.
    pub cdr_id: String,
    /// OCPI session id, when the CDR names it.
    pub session_id: Option<String>,
    /// EVSE uid.
    pub evse_uid: String,
    /// evflex user, when the session is linked to one.
    pub user_id: Option<i64>,
    /// `cdr_token.uid`.
    pub token_uid: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds).
    pub end_ts: i64,
    /// Metered energy (Wh, `total_energy`).
    pub energy_wh: i64,
    /// `total_cost.excl_vat` (micro-units of `currency`).
    pub total_cost_excl_vat_micro: i64,
    /// `total_cost.incl_vat` (micro-units of `currency`).
    pub total_cost_incl_vat_micro: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// Energy the user let evflex move (Wh), from the session's latest schedule.
    pub flexibility_shifted_wh: i64,
    /// Value of that flexibility (micro-EUR).
    pub flexibility_value_micro_eur: i64,
}

/// Outbox kinds.
pub mod kind {
    /// SC1 asset records.
    pub const ASSET_UPSERT: &str = "asset_upsert";
    /// SC2 status commits.
    pub const STATUS_COMMIT: &str = "status_commit";
    /// SC3 settlements.
    pub const SETTLEMENT: &str = "settlement";
}

/// Enqueues chain work; `false` when work with the same `dedupe_key` exists. Call it with the
/// transaction that writes the state the work records.
#[tracing::instrument(skip_all, fields(kind = kind, dedupe_key = dedupe_key))]
pub async fn enqueue<T: Serialize>(
    conn: &mut Conn,
    kind: &str,
    dedupe_key: &str,
    payload: &T,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO chain_outbox (kind, dedupe_key, payload, status, attempts, created_at,
             updated_at)
         VALUES ($1, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(kind)
    .bind(dedupe_key)
    .bind(to_json(payload))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// An outbox row.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct OutboxRow {
    /// Id (drain order).
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Dedupe key.
    pub dedupe_key: String,
    /// JSON payload.
    pub payload: String,
    /// `pending`, `sent`, `done` or `failed`.
    pub status: String,
    /// Transaction hash, once sent.
    pub tx_hash: Option<String>,
    /// Block number, once mined.
    pub block_number: Option<i64>,
    /// Last error.
    pub error: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
}

/// Outbox rows of a kind (all kinds when `None`), oldest first.
pub async fn list(conn: &mut Conn, kind: Option<&str>, limit: i64) -> StoreResult<Vec<OutboxRow>> {
    const COLUMNS: &str =
        "id, kind, dedupe_key, payload, status, tx_hash, block_number, error, attempts";
    Ok(match kind {
        Some(kind) => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chain_outbox WHERE kind = $1 ORDER BY id LIMIT $2"
            )))
            .bind(kind)
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
        None => {
            sqlx::query_as(sqlx::AssertSqlSafe(format!(
                "SELECT {COLUMNS} FROM chain_outbox ORDER BY id LIMIT $1"
            )))
            .bind(limit)
            .fetch_all(conn)
            .await?
        }
    })
}

/// Number of outbox rows.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chain_outbox")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Mined transactions and their gas for one kind (see [`gas_by_kind`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct KindGas {
    /// Kind.
    pub kind: String,
    /// Distinct transactions with a stored receipt.
    pub transactions: i64,
    /// Gas they used.
    pub gas_used: i64,
}

/// Transactions and gas per kind, from the stored receipts. The rows of one batch share its
/// transaction and gas, so each transaction counts once.
pub async fn gas_by_kind(conn: &mut Conn) -> StoreResult<Vec<KindGas>> {
    Ok(sqlx::query_as(
        "SELECT kind, COUNT(*) AS transactions, CAST(COALESCE(SUM(gas), 0) AS BIGINT) AS gas_used
         FROM (SELECT kind, tx_hash, MAX(gas_used) AS gas FROM chain_outbox
               WHERE gas_used IS NOT NULL AND tx_hash IS NOT NULL GROUP BY kind, tx_hash) t
         GROUP BY kind ORDER BY kind",
    )
    .fetch_all(conn)
    .await?)
}
