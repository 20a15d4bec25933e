//! The chain outbox. Owns `chain_outbox`.
//!
//! Chain work is enqueued in the same transaction as the state it records, so the database and
//! the work to put on chain never disagree; the chain writer (`chain` module) drains the table
//! and marks rows `sent`/`done`/`failed`. `dedupe_key` is unique: enqueueing the same work twice
//! is a no-op.
//!
//! A row is one [`ChainWork`] value: `kind` is its [`WorkKind`](evflex_chain::WorkKind), `payload`
//! its JSON (`evflex_chain::work` owns both, and the "no chain configured" policy). Dedupe keys:
//!
//! - `asset_upsert` — `asset_upsert:evse:{cc}*{party}*{uid}:v{n}` or
//!   `asset_upsert:group:{id}:v{n}`; enqueued when an EVSE or group arrives or its chain-relevant
//!   data changes.
//! - `status_commit` — `status_commit:{group_id}:{timestep}`; one per group per tick, only while
//!   a chain is configured.
//! - `settlement` — `settlement:{cc}*{party}*{cdr_id}`; one per CDR.
//! - `consent` / `revocation` — `{kind}:{address}:{nonce}`; one per opt-in or opt-out.

use super::{Conn, StoreResult};
use evflex_chain::ChainWork;
use sqlx::FromRow;

/// Enqueues `work`; `false` when work with the same `dedupe_key` exists. Call it with the
/// transaction that writes the state the work records, after asking the policy
/// ([`ChainWork::wanted`]) whether to enqueue at all.
#[tracing::instrument(skip_all, fields(kind = %work.kind(), dedupe_key = dedupe_key))]
pub async fn enqueue(
    conn: &mut Conn,
    dedupe_key: &str,
    work: &ChainWork,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO chain_outbox (kind, dedupe_key, payload, status, attempts, created_at,
             updated_at)
         VALUES ($1, $2, $3, 'pending', 0, $4, $4) ON CONFLICT (dedupe_key) DO NOTHING",
    )
    .bind(work.kind().as_str())
    .bind(dedupe_key)
    .bind(work.payload_json())
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

/// The newest `limit` outbox rows of a kind, newest first (the public audit list: it reads only
/// what it shows, so it never goes stale however long the outbox grows).
pub async fn latest(conn: &mut Conn, kind: &str, limit: i64) -> StoreResult<Vec<OutboxRow>> {
    Ok(sqlx::query_as(
        "SELECT id, kind, dedupe_key, payload, status, tx_hash, block_number, error, attempts \
         FROM chain_outbox WHERE kind = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(kind)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Number of outbox rows.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM chain_outbox")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Outbox rows of one kind in one status (see [`counts_by_status`]).
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct KindStatusCount {
    /// Kind.
    pub kind: String,
    /// Status.
    pub status: String,
    /// Rows.
    pub count: i64,
}

/// Rows per kind and status, ordered by both.
pub async fn counts_by_status(conn: &mut Conn) -> StoreResult<Vec<KindStatusCount>> {
    Ok(sqlx::query_as(
        "SELECT kind, status, COUNT(*) AS count FROM chain_outbox \
         GROUP BY kind, status ORDER BY kind, status",
    )
    .fetch_all(conn)
    .await?)
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
