//! Bills: one per CDR, computed and signed by [`crate::billing`] (the only writer). Owns
//! `bills`.
//!
//! `status`: `pending` (settlement enqueued), `awaiting_funds` (the contract skipped it for an
//! insufficient balance; retried after a top-up), `over_limit` (the user's spending limit on
//! EnergyBilling refused it; retried after the user changes the limit), `settled` (with the transaction), `failed`
//! (refused for good), `unbillable` (never signed or settled; `status_reason` says why: no wallet
//! for the CDR's user, no settlement address for its CPO, or a currency other than the payment
//! token's). `price_source` is where the price came from (`billing`, "Price sources").

use super::{Conn, StoreResult};
use sqlx::FromRow;

/// A bill as stored.
#[derive(Debug, Clone, PartialEq, Eq, FromRow, serde::Serialize)]
pub struct BillRow {
    /// Id.
    pub id: i64,
    /// `cc*party*cdr_id`.
    pub cdr_key: String,
    /// The user billed, when known.
    pub user_id: Option<i64>,
    /// The user's wallet address.
    pub user_address: Option<String>,
    /// The CPO's address in EnergyBilling.
    pub cpo_address: String,
    /// OCPI session id.
    pub session_id: Option<String>,
    /// The bill's `sessionId` on chain (`0x`-hex bytes32).
    pub chain_session_id: String,
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds).
    pub end_ts: i64,
    /// Billed energy (Wh).
    pub energy_wh: i64,
    /// CDR `total_energy` (Wh).
    pub cdr_energy_wh: i64,
    /// Energy from meter values (Wh), when there were readings.
    pub meter_energy_wh: Option<i64>,
    /// CDR minus meter energy (Wh).
    pub energy_discrepancy_wh: i64,
    /// Price (micro-EUR per kWh).
    pub price_micro_eur_per_kwh: i64,
    /// Where the price came from: `cdr_total_cost`, `tariff` or `flat`.
    pub price_source: String,
    /// The currency the price was stated in (ISO 4217).
    pub currency: String,
    /// Free energy credited for a shortfall (Wh).
    pub credit_wh: i64,
    /// Flexibility rewarded (Wh).
    pub flexibility_wh: i64,
    /// Cost charged (micro-EUR).
    pub cost_micro_eur: i64,
    /// Cost of the same energy charged uncontrolled (micro-EUR).
    pub uncontrolled_cost_micro_eur: i64,
    /// Uncontrolled cost minus the cost charged (micro-EUR).
    pub saving_micro_eur: i64,
    /// The meter key's EIP-712 signature (`0x`-hex).
    pub meter_signature: Option<String>,
    /// Status (see the module docs).
    pub status: String,
    /// Why the bill is `unbillable`, when it is.
    pub status_reason: Option<String>,
    /// Settlement transaction.
    pub tx_hash: Option<String>,
    /// Settlement block.
    pub block_number: Option<i64>,
    /// Created (Unix seconds).
    pub created_at: i64,
    /// Updated (Unix seconds).
    pub updated_at: i64,
}

const COLUMNS: &str = "id, cdr_key, user_id, user_address, cpo_address, session_id, \
    chain_session_id, start_ts, end_ts, energy_wh, cdr_energy_wh, meter_energy_wh, \
    energy_discrepancy_wh, price_micro_eur_per_kwh, price_source, currency, credit_wh, \
    flexibility_wh, cost_micro_eur, uncontrolled_cost_micro_eur, saving_micro_eur, \
    meter_signature, status, status_reason, tx_hash, block_number, created_at, updated_at";

/// Inserts a bill (the `id`, `tx_hash` and `block_number` of `b` are ignored); `false` if the
/// CDR already has one.
#[tracing::instrument(skip_all, fields(cdr_key = %b.cdr_key))]
pub async fn insert(conn: &mut Conn, b: &BillRow) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO bills (cdr_key, user_id, user_address, cpo_address, session_id,
             chain_session_id, start_ts, end_ts, energy_wh, cdr_energy_wh, meter_energy_wh,
             energy_discrepancy_wh, price_micro_eur_per_kwh, credit_wh, flexibility_wh,
             cost_micro_eur, uncontrolled_cost_micro_eur, saving_micro_eur, meter_signature,
             status, created_at, updated_at, price_source, currency, status_reason)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
             $19, $20, $21, $21, $22, $23, $24)
         ON CONFLICT (cdr_key) DO NOTHING",
    )
    .bind(&b.cdr_key)
    .bind(b.user_id)
    .bind(b.user_address.clone())
    .bind(&b.cpo_address)
    .bind(b.session_id.clone())
    .bind(&b.chain_session_id)
    .bind(b.start_ts)
    .bind(b.end_ts)
    .bind(b.energy_wh)
    .bind(b.cdr_energy_wh)
    .bind(b.meter_energy_wh)
    .bind(b.energy_discrepancy_wh)
    .bind(b.price_micro_eur_per_kwh)
    .bind(b.credit_wh)
    .bind(b.flexibility_wh)
    .bind(b.cost_micro_eur)
    .bind(b.uncontrolled_cost_micro_eur)
    .bind(b.saving_micro_eur)
    .bind(b.meter_signature.clone())
    .bind(&b.status)
    .bind(b.created_at)
    .bind(&b.price_source)
    .bind(&b.currency)
    .bind(b.status_reason.clone())
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Stores the meter signature a CPO's own signer gave a bill (`billing::signer`).
pub async fn set_signature(
    conn: &mut Conn,
    chain_session_id: &str,
    signature: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE bills SET meter_signature = $2 WHERE chain_session_id = $1")
        .bind(chain_session_id)
        .bind(signature)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets a bill's status (and settlement transaction, when given).
pub async fn set_status(
    conn: &mut Conn,
    chain_session_id: &str,
    status: &str,
    tx_hash: Option<&str>,
    block_number: Option<i64>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE bills SET status = $2, tx_hash = COALESCE($3, tx_hash),
             block_number = COALESCE($4, block_number), updated_at = $5
         WHERE chain_session_id = $1",
    )
    .bind(chain_session_id)
    .bind(status)
    .bind(tx_hash.map(str::to_owned))
    .bind(block_number)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// A user's bills, newest first.
pub async fn of_user(conn: &mut Conn, user_id: i64, limit: i64) -> StoreResult<Vec<BillRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bills WHERE user_id = $1 ORDER BY id DESC LIMIT $2"
    )))
    .bind(user_id)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Every bill, oldest first.
pub async fn all(conn: &mut Conn, limit: i64) -> StoreResult<Vec<BillRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM bills ORDER BY id LIMIT $1"
    )))
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// The newest `limit` bills, newest first (the public audit list).
pub async fn latest(conn: &mut Conn, limit: i64) -> StoreResult<Vec<BillRow>> {
    latest_where(conn, "", &[], limit).await
}

/// The newest `limit` bills of CDRs under these party codes (`(country code, party id)`,
/// upper case), newest first.
pub async fn latest_of_codes(
    conn: &mut Conn,
    codes: &[(String, String)],
    limit: i64,
) -> StoreResult<Vec<BillRow>> {
    if codes.is_empty() {
        return Ok(Vec::new());
    }
    let prefixes: Vec<String> = codes
        .iter()
        .map(|(cc, pid)| format!("{cc}*{pid}*%"))
        .collect();
    let filter = (0..prefixes.len())
        .map(|i| format!("UPPER(cdr_key) LIKE ${}", i + 2))
        .collect::<Vec<_>>()
        .join(" OR ");
    latest_where(conn, &format!("WHERE {filter}"), &prefixes, limit).await
}

/// `latest` with a `WHERE` clause whose placeholders start at `$2` (`$1` is the limit).
async fn latest_where(
    conn: &mut Conn,
    filter: &str,
    binds: &[String],
    limit: i64,
) -> StoreResult<Vec<BillRow>> {
    let sql = format!("SELECT {COLUMNS} FROM bills {filter} ORDER BY id DESC LIMIT $1");
    let mut query = sqlx::query_as(sqlx::AssertSqlSafe(sql)).bind(limit);
    for b in binds {
        query = query.bind(b.clone());
    }
    Ok(query.fetch_all(conn).await?)
}
