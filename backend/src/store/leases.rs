//! Group leases: which replica ticks which group. Owns `group_leases` (one row per group).
//!
//! # Several replicas on one PostgreSQL
//!
//! Every replica runs the same quarter-hour tick over every group. For each group it opens the
//! transaction that will store the group's schedule, set-points and chain work, and first locks
//! the group's lease row with `SELECT … FOR UPDATE SKIP LOCKED` ([`try_claim`]):
//!
//! - no row comes back: another replica holds the lease (it is solving the group right now),
//!   so this replica skips the group at once instead of waiting;
//! - the row comes back locked: this replica owns the group until its transaction ends. It then
//!   checks whether the (group, timestep) schedule is already committed (by another replica
//!   that held the lease before) and skips it if so; otherwise it snapshots, solves, writes and
//!   commits, recording itself in the row ([`record`]).
//!
//! The lock lives exactly as long as the transaction: a replica that dies mid-tick (process
//! killed, connection lost) has its transaction aborted by PostgreSQL, the lock is released and
//! nothing of the group was written, so any replica can take the group (the tick retries groups
//! it found held once more after its own work, and every replica ticks again at start-up). There
//! is no expiry time to tune and no stale lease to clean up.
//!
//! # SQLite
//!
//! SQLite has no row locks and no `SKIP LOCKED`, and evflex's SQLite pool is one connection in
//! one process (single writer): the lease degenerates to the commit transaction. [`try_claim`]
//! reads the row without locking and always succeeds; the `schedules` primary key
//! (`ON CONFLICT DO NOTHING`) makes every (group, timestep) commit once. Run one replica per
//! SQLite file.

use super::{Backend, Conn, StoreResult};
use sqlx::FromRow;

/// A claimed lease: who last committed the group, and for which timestep.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct Lease {
    /// Replica that last committed the group (`""` before the first commit).
    pub holder: String,
    /// Timestep it committed (`-1` before the first commit).
    pub timestep: i64,
}

/// Creates the missing lease rows of every group, in autocommit (never inside a tick's
/// transaction: a concurrent insert of the same key would wait for that transaction). Returns
/// the rows created.
pub async fn ensure_all(conn: &mut Conn) -> StoreResult<u64> {
    let r = sqlx::query(
        "INSERT INTO group_leases (group_id, holder, timestep, updated_at)
         SELECT id, '', -1, 0 FROM charging_groups WHERE 1 = 1 ORDER BY id
         ON CONFLICT (group_id) DO NOTHING",
    )
    .execute(conn)
    .await?;
    Ok(r.rows_affected())
}

/// Locks `group_id`'s lease row for the current transaction, without waiting: `None` when
/// another transaction holds it (or the row does not exist yet). Call it first in the
/// transaction that stores the group's tick. On SQLite the row is read without a lock and a
/// missing row counts as free (see the module docs).
pub async fn try_claim(
    conn: &mut Conn,
    backend: Backend,
    group_id: i64,
) -> StoreResult<Option<Lease>> {
    match backend {
        Backend::Postgres => Ok(sqlx::query_as(
            "SELECT holder, timestep FROM group_leases WHERE group_id = $1
             FOR UPDATE SKIP LOCKED",
        )
        .bind(group_id)
        .fetch_optional(conn)
        .await?),
        Backend::Sqlite => {
            let lease: Option<Lease> =
                sqlx::query_as("SELECT holder, timestep FROM group_leases WHERE group_id = $1")
                    .bind(group_id)
                    .fetch_optional(conn)
                    .await?;
            Ok(Some(lease.unwrap_or(Lease {
                holder: String::new(),
                timestep: -1,
            })))
        }
    }
}

/// Records that `holder` committed `group_id`'s `timestep` (in the same transaction).
pub async fn record(
    conn: &mut Conn,
    group_id: i64,
    holder: &str,
    timestep: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO group_leases (group_id, holder, timestep, updated_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (group_id) DO UPDATE SET holder = excluded.holder,
             timestep = excluded.timestep, updated_at = excluded.updated_at",
    )
    .bind(group_id)
    .bind(holder)
    .bind(timestep)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The lease row of `group_id`, without locking.
pub async fn get(conn: &mut Conn, group_id: i64) -> StoreResult<Option<Lease>> {
    Ok(
        sqlx::query_as("SELECT holder, timestep FROM group_leases WHERE group_id = $1")
            .bind(group_id)
            .fetch_optional(conn)
            .await?,
    )
}
