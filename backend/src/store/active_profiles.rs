//! The charging profile in force at a session's charge point, as the CPO last reported it: its
//! `PUT` of an `ActiveChargingProfile` when the profile changed, or its answer to evflex's
//! `GET` (`engine::setpoints`). Owns `active_profiles`.

use super::{Conn, StoreResult};

/// How an active profile reached evflex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CPO's `PUT /chargingprofiles/{session_id}`.
    Put,
    /// The `ActiveChargingProfileResult` of evflex's `GET`.
    Get,
}

impl Source {
    fn as_str(self) -> &'static str {
        match self {
            Self::Put => "put",
            Self::Get => "get",
        }
    }
}

/// An active profile as stored.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct ActiveProfile {
    /// Session row.
    pub session_row: i64,
    /// The CPO that reported it.
    pub owner_party: i64,
    /// The `ActiveChargingProfile` (JSON).
    pub body: String,
    /// Its limit in force when it arrived, in thousandths of `rate_unit`.
    pub limit_milli: Option<i64>,
    /// `W` or `A`.
    pub rate_unit: Option<String>,
    /// `put` or `get`.
    pub source: String,
    /// When it arrived (Unix seconds).
    pub received_at: i64,
}

/// Stores the profile in force for `session_row` (the newest report replaces the older).
#[allow(clippy::too_many_arguments)]
pub async fn put(
    conn: &mut Conn,
    session_row: i64,
    owner_party: i64,
    body: &serde_json::Value,
    limit: Option<f64>,
    rate_unit: &str,
    source: Source,
    now: i64,
) -> StoreResult<()> {
    let limit_milli = limit
        .filter(|l| l.is_finite())
        .map(|l| (l * 1_000.0).round() as i64);
    sqlx::query(
        "INSERT INTO active_profiles
             (session_row, owner_party, body, limit_milli, rate_unit, source, received_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (session_row) DO UPDATE SET owner_party = excluded.owner_party,
             body = excluded.body, limit_milli = excluded.limit_milli,
             rate_unit = excluded.rate_unit, source = excluded.source,
             received_at = excluded.received_at",
    )
    .bind(session_row)
    .bind(owner_party)
    .bind(body.to_string())
    .bind(limit_milli)
    .bind(rate_unit)
    .bind(source.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The profile in force for `session_row`, if the CPO reported one.
pub async fn get(conn: &mut Conn, session_row: i64) -> StoreResult<Option<ActiveProfile>> {
    Ok(sqlx::query_as(
        "SELECT session_row, owner_party, body, limit_milli, rate_unit, source, received_at
         FROM active_profiles WHERE session_row = $1",
    )
    .bind(session_row)
    .fetch_optional(conn)
    .await?)
}
