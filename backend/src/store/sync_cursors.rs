//! How far evflex has pulled each party's OCPI sender interfaces (`engine::sync`). Owns
//! `sync_cursors`.
//!
//! One row per (party, module): the `date_from` of the next pull (the newest `last_updated`
//! seen in the last complete pull), when that pull completed, how many objects it brought, and
//! the error of the last failed pull. A failed pull never moves the cursor, so what the CPO
//! still has is fetched by the next one.

use super::{Conn, StoreResult};

/// A party's pull position in one module.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Cursor {
    /// The party row.
    pub party_row: i64,
    /// The OCPI module identifier (`locations`, `sessions`, `cdrs`).
    pub module: String,
    /// `date_from` of the next pull (Unix s), `None` before the first complete pull.
    pub date_from: Option<i64>,
    /// When the last complete pull ended (Unix s).
    pub synced_at: Option<i64>,
    /// Objects the last complete pull brought.
    pub objects: i64,
    /// The last failed pull's error, cleared by a complete one.
    pub last_error: Option<String>,
}

/// The cursor of `party_row` in `module`, if it ever pulled.
pub async fn get(conn: &mut Conn, party_row: i64, module: &str) -> StoreResult<Option<Cursor>> {
    Ok(sqlx::query_as(
        "SELECT party_row, module, date_from, synced_at, objects, last_error
         FROM sync_cursors WHERE party_row = $1 AND module = $2",
    )
    .bind(party_row)
    .bind(module)
    .fetch_optional(conn)
    .await?)
}

/// Every cursor of `party_row`, by module.
pub async fn of_party(conn: &mut Conn, party_row: i64) -> StoreResult<Vec<Cursor>> {
    Ok(sqlx::query_as(
        "SELECT party_row, module, date_from, synced_at, objects, last_error
         FROM sync_cursors WHERE party_row = $1 ORDER BY module",
    )
    .bind(party_row)
    .fetch_all(conn)
    .await?)
}

/// A complete pull of `module` ended at `now` with `objects` objects; the next one asks from
/// `date_from` (kept as it was when `None`: nothing new was seen).
pub async fn completed(
    conn: &mut Conn,
    party_row: i64,
    module: &str,
    date_from: Option<i64>,
    objects: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sync_cursors
             (party_row, module, date_from, synced_at, objects, last_error, updated_at)
         VALUES ($1, $2, $3, $4, $5, NULL, $4)
         ON CONFLICT (party_row, module) DO UPDATE SET
             date_from = COALESCE(excluded.date_from, sync_cursors.date_from),
             synced_at = excluded.synced_at, objects = excluded.objects, last_error = NULL,
             updated_at = excluded.updated_at",
    )
    .bind(party_row)
    .bind(module)
    .bind(date_from)
    .bind(now)
    .bind(objects)
    .execute(conn)
    .await?;
    Ok(())
}

/// A pull of `module` failed with `error`: recorded, the cursor unchanged.
pub async fn failed(
    conn: &mut Conn,
    party_row: i64,
    module: &str,
    error: &str,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO sync_cursors (party_row, module, last_error, updated_at)
         VALUES ($1, $2, $3, $4)
         ON CONFLICT (party_row, module) DO UPDATE SET
             last_error = excluded.last_error, updated_at = excluded.updated_at",
    )
    .bind(party_row)
    .bind(module)
    .bind(error)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}
