//! Re-plan requests: the events a group still has to be re-planned for (`engine::replan`).
//! Owns `replan_requests`, one row per group at most: events coalesce in the database.
//!
//! An event ([`request`]) inserts the group's row or, when one is waiting, bumps its `seq` and
//! `last_at`. A re-plan reads the row ([`get`]) under the group's lease before it snapshots the
//! group, and deletes it in the transaction that commits its schedule only if `seq` is still the
//! value it read ([`clear`]). An event that arrives while the group is being solved therefore
//! leaves the row in place, and the group is re-planned once more: no event is lost, and a burst
//! of events costs one or two re-plans, not one per event.
//!
//! The row is written in autocommit, after the event's own data is committed: whoever reads it
//! sees the data that caused it.

use super::{Conn, StoreResult};
use sqlx::FromRow;

/// A group's waiting re-plan request.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct ReplanRequest {
    /// The group.
    pub group_id: i64,
    /// How many events were coalesced into the row (it only grows while the row lives).
    pub seq: i64,
    /// The latest event's reason (`session`, `request`, `capacity`, …).
    pub reason: String,
    /// When the oldest event not yet planned came in (Unix seconds).
    pub first_at: i64,
    /// When the latest one came in (Unix seconds).
    pub last_at: i64,
}

/// Records an event of `group_id` (coalesced with any request still waiting).
pub async fn request(conn: &mut Conn, group_id: i64, reason: &str, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO replan_requests (group_id, seq, reason, first_at, last_at)
         VALUES ($1, 1, $2, $3, $3)
         ON CONFLICT (group_id) DO UPDATE SET seq = replan_requests.seq + 1,
             reason = excluded.reason, last_at = excluded.last_at",
    )
    .bind(group_id)
    .bind(reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The group's waiting request, if any.
pub async fn get(conn: &mut Conn, group_id: i64) -> StoreResult<Option<ReplanRequest>> {
    Ok(sqlx::query_as(
        "SELECT group_id, seq, reason, first_at, last_at FROM replan_requests WHERE group_id = $1",
    )
    .bind(group_id)
    .fetch_optional(conn)
    .await?)
}

/// Groups with a waiting request, oldest first (at most `limit`).
pub async fn waiting(conn: &mut Conn, limit: i64) -> StoreResult<Vec<ReplanRequest>> {
    Ok(sqlx::query_as(
        "SELECT group_id, seq, reason, first_at, last_at FROM replan_requests
         ORDER BY first_at, group_id LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Deletes the group's request if no event came in since it was read with `seq`; `false` when
/// one did (the row stays, and the group is re-planned again).
pub async fn clear(conn: &mut Conn, group_id: i64, seq: i64) -> StoreResult<bool> {
    let r = sqlx::query("DELETE FROM replan_requests WHERE group_id = $1 AND seq = $2")
        .bind(group_id)
        .bind(seq)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() > 0)
}
