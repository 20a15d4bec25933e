//! The chain writer's half of `chain_outbox` (the table is created and filled by
//! [`super::outbox`]): picking due rows in id order, and recording `sent` (with the transaction
//! hash, before the receipt wait), `done` (with the receipt), back-off, "awaiting funds" and
//! `failed`. Columns `gas_used`, `next_attempt_at`, `sent_at` and `note` come from migration
//! 0008.

use super::{Conn, StoreResult};
use sqlx::FromRow;

/// Row status: waiting to be sent (or re-sent after a retryable error).
pub const PENDING: &str = "pending";
/// A transaction was broadcast (its hash is stored); the receipt is not recorded yet.
pub const SENT: &str = "sent";
/// On chain (receipt stored) or found already done on chain.
pub const DONE: &str = "done";
/// Refused for good (a non-retryable revert, bad payload); `error` says why.
pub const FAILED: &str = "failed";
/// `note` of a settlement the contract skipped for an insufficient balance.
pub const AWAITING_FUNDS: &str = "awaiting funds";

/// A row the writer works on.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct DrainRow {
    /// Id (drain order).
    pub id: i64,
    /// Kind.
    pub kind: String,
    /// Dedupe key.
    pub dedupe_key: String,
    /// JSON payload.
    pub payload: String,
    /// `pending` or `sent`.
    pub status: String,
    /// Transaction hash of the last broadcast, if any.
    pub tx_hash: Option<String>,
    /// Attempts so far.
    pub attempts: i64,
    /// Note (`awaiting funds`).
    pub note: Option<String>,
}

const COLUMNS: &str = "id, kind, dedupe_key, payload, status, tx_hash, attempts, note";

/// Rows due at `now` (`pending` or `sent`, `next_attempt_at <= now`), oldest first.
///
/// Status commits keep their order: StatusLedger takes a group's timesteps only in increasing
/// order (a later one first makes the earlier one revert for good), so a status commit is not
/// due while an older one still waits for its retry (e.g. after the chain was down when it was
/// sent, while the next tick's commit is already queued).
pub async fn due(conn: &mut Conn, now: i64, limit: i64) -> StoreResult<Vec<DrainRow>> {
    Ok(sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM chain_outbox c
         WHERE status IN ('pending', 'sent') AND next_attempt_at <= $1
           AND NOT (kind = 'status_commit' AND EXISTS (
               SELECT 1 FROM chain_outbox o
               WHERE o.kind = 'status_commit' AND o.status IN ('pending', 'sent')
                 AND o.id < c.id AND o.next_attempt_at > $1))
         ORDER BY id LIMIT $2"
    )))
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Marks rows `sent` with the transaction that carries them (before waiting for its receipt).
pub async fn mark_sent(conn: &mut Conn, ids: &[i64], tx_hash: &str, now: i64) -> StoreResult<()> {
    for id in ids {
        sqlx::query(
            "UPDATE chain_outbox SET status = 'sent', tx_hash = $2, sent_at = $3, updated_at = $3,
                 attempts = attempts + 1
             WHERE id = $1",
        )
        .bind(id)
        .bind(tx_hash)
        .bind(now)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// The receipt of a transaction, as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Receipt {
    /// Transaction hash (`0x`-hex); `None` when the work was found already done on chain.
    pub tx_hash: Option<String>,
    /// Block.
    pub block_number: Option<i64>,
    /// Gas used.
    pub gas_used: Option<i64>,
}

/// Marks a row `done` with its receipt (an already-done row keeps the hash it was sent with).
pub async fn mark_done(
    conn: &mut Conn,
    id: i64,
    receipt: &Receipt,
    note: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE chain_outbox SET status = 'done', tx_hash = COALESCE($2, tx_hash),
             block_number = COALESCE($3, block_number), gas_used = COALESCE($4, gas_used),
             note = $5, error = NULL, updated_at = $6
         WHERE id = $1",
    )
    .bind(id)
    .bind(receipt.tx_hash.clone())
    .bind(receipt.block_number)
    .bind(receipt.gas_used)
    .bind(note.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Leaves a row for later: back to `pending` (keeping the last hash for the record), one more
/// attempt, `error`/`note` recorded, due again at `next_attempt_at`.
pub async fn retry_later(
    conn: &mut Conn,
    id: i64,
    error: Option<&str>,
    note: Option<&str>,
    next_attempt_at: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE chain_outbox SET status = 'pending', attempts = attempts + 1, error = $2,
             note = $3, next_attempt_at = $4, updated_at = $5
         WHERE id = $1",
    )
    .bind(id)
    .bind(error.map(str::to_owned))
    .bind(note.map(str::to_owned))
    .bind(next_attempt_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Keeps a `sent` row `sent` (its transaction is still unmined) and looks again later.
pub async fn check_later(
    conn: &mut Conn,
    id: i64,
    error: &str,
    next_attempt_at: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "UPDATE chain_outbox SET error = $2, next_attempt_at = $3, updated_at = $4 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(next_attempt_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks a row `failed` for good with the reason (e.g. the decoded custom error's name).
pub async fn mark_failed(conn: &mut Conn, id: i64, error: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "UPDATE chain_outbox SET status = 'failed', error = $2, updated_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Makes every settlement awaiting funds due now (after a top-up); returns how many.
pub async fn wake_awaiting_funds(conn: &mut Conn, now: i64) -> StoreResult<u64> {
    let r = sqlx::query(
        "UPDATE chain_outbox SET next_attempt_at = 0, updated_at = $1
         WHERE status = 'pending' AND note = 'awaiting funds'",
    )
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Status of the row with `dedupe_key`: (status, tx hash, block, note, error).
pub type RowState = (
    String,
    Option<String>,
    Option<i64>,
    Option<String>,
    Option<String>,
);

/// The state of the row with `dedupe_key`, if any.
pub async fn state_of(conn: &mut Conn, dedupe_key: &str) -> StoreResult<Option<RowState>> {
    Ok(sqlx::query_as(
        "SELECT status, tx_hash, block_number, note, error FROM chain_outbox WHERE dedupe_key = $1",
    )
    .bind(dedupe_key)
    .fetch_optional(conn)
    .await?)
}

/// Rows the writer still has to send or confirm (`pending` or `sent`), leaving out
/// settlements awaiting funds (those wait for a top-up, not for the writer).
pub async fn left_to_send(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM chain_outbox WHERE status IN ('pending', 'sent') \
         AND (note IS NULL OR note <> $1)",
    )
    .bind(AWAITING_FUNDS)
    .fetch_one(conn)
    .await?;
    Ok(n)
}

/// Rows per status, for the cockpit and tests.
pub async fn counts(conn: &mut Conn) -> StoreResult<Vec<(String, i64)>> {
    Ok(
        sqlx::query_as("SELECT status, COUNT(*) FROM chain_outbox GROUP BY status ORDER BY status")
            .fetch_all(conn)
            .await?,
    )
}
