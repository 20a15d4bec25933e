//! Which user's token evflex has pushed to which CPO (`engine::tokens`). Owns
//! `token_deliveries`.
//!
//! A row records the pushes of one user's token to one party: how many were tried, the last
//! error, and when one was accepted. A user with no row, or a row without `delivered_at`, is
//! still to be pushed to that party.

use super::{Conn, StoreResult};

/// A user's token still to be pushed to a party.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Undelivered {
    /// The user.
    pub user_id: i64,
    /// The token uid evflex issued to the user.
    pub token_uid: String,
    /// When the user signed up (Unix seconds): the Token's `last_updated`.
    pub created_at: i64,
}

/// Users whose token has not yet reached `party_row`, with fewer than `max_attempts` failed
/// pushes, oldest first.
pub async fn undelivered(
    conn: &mut Conn,
    party_row: i64,
    max_attempts: i64,
    limit: i64,
) -> StoreResult<Vec<Undelivered>> {
    Ok(sqlx::query_as(
        "SELECT u.id AS user_id, u.token_uid, u.created_at FROM users u
         LEFT JOIN token_deliveries d ON d.party_row = $1 AND d.user_id = u.id
         WHERE u.token_uid IS NOT NULL AND d.delivered_at IS NULL
           AND COALESCE(d.attempts, 0) < $2
         ORDER BY u.id LIMIT $3",
    )
    .bind(party_row)
    .bind(max_attempts)
    .bind(limit)
    .fetch_all(conn)
    .await?)
}

/// Records one push of `user_id`'s token to `party_row`: delivered, or failed with `error`.
pub async fn record(
    conn: &mut Conn,
    party_row: i64,
    user_id: i64,
    error: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO token_deliveries
             (party_row, user_id, attempts, last_error, delivered_at, updated_at)
         VALUES ($1, $2, 1, $3, $4, $5)
         ON CONFLICT (party_row, user_id) DO UPDATE SET
             attempts = token_deliveries.attempts + 1, last_error = excluded.last_error,
             delivered_at = excluded.delivered_at, updated_at = excluded.updated_at",
    )
    .bind(party_row)
    .bind(user_id)
    .bind(error)
    .bind(error.is_none().then_some(now))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Forgets every push to `party_row`, so all tokens are pushed again: a party that registers
/// again (credentials PUT) may have lost them.
pub async fn reset(conn: &mut Conn, party_row: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM token_deliveries WHERE party_row = $1")
        .bind(party_row)
        .execute(conn)
        .await?;
    Ok(())
}

/// How many tokens reached `party_row`, and how many pushes to it are failing.
pub async fn counts(conn: &mut Conn, party_row: i64) -> StoreResult<(i64, i64)> {
    let (delivered, failing): (i64, i64) = sqlx::query_as(
        "SELECT COUNT(delivered_at), COUNT(*) - COUNT(delivered_at)
         FROM token_deliveries WHERE party_row = $1",
    )
    .bind(party_row)
    .fetch_one(conn)
    .await?;
    Ok((delivered, failing))
}
