//! Meter values from charge points. Owns `meter_values` and `evse_live` (latest reading per
//! EVSE, what live status, the cockpit and the tick read).

use super::{Conn, StoreResult};
use sqlx::FromRow;

/// One reading of one EVSE at one instant; any measurand may be missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MeterReading {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI session id the reading belongs to, if the CPO says.
    pub session_id: Option<String>,
    /// Instant (Unix seconds).
    pub ts: i64,
    /// `Energy.Active.Import.Register` (Wh).
    pub energy_wh: Option<i64>,
    /// `Power.Active.Import` (W).
    pub power_w: Option<i64>,
    /// `SoC` in per mille.
    pub soc_permille: Option<i64>,
    /// Phases the car draws on: per-phase `Current.Import` samples above 1 A.
    pub car_phases: Option<i64>,
}

/// The latest reading of an EVSE.
#[derive(Debug, Clone, PartialEq, Eq, FromRow)]
pub struct LiveReading {
    /// EVSE uid.
    pub evse_uid: String,
    /// Session id of the latest reading.
    pub session_id: Option<String>,
    /// Instant of the latest reading (Unix seconds).
    pub ts: i64,
    /// Energy register (Wh).
    pub energy_wh: Option<i64>,
    /// Power (W).
    pub power_w: Option<i64>,
    /// SoC (per mille).
    pub soc_permille: Option<i64>,
    /// Phases the car of `session_id` was last seen drawing on.
    pub car_phases: Option<i64>,
}

/// Stores a batch of readings and advances `evse_live` (a reading older than the live one
/// does not replace it; missing measurands keep their previous value).
#[tracing::instrument(skip_all, fields(readings = readings.len()))]
pub async fn insert_batch(conn: &mut Conn, readings: &[MeterReading]) -> StoreResult<()> {
    for chunk in readings.chunks(100) {
        let mut sql = String::from(
            "INSERT INTO meter_values (country_code, party_id, evse_uid, session_id, ts,
                 energy_wh, power_w, soc_permille, car_phases) VALUES ",
        );
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&placeholders(i));
        }
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            query = query
                .bind(&r.country_code)
                .bind(&r.party_id)
                .bind(&r.evse_uid)
                .bind(r.session_id.clone())
                .bind(r.ts)
                .bind(r.energy_wh)
                .bind(r.power_w)
                .bind(r.soc_permille)
                .bind(r.car_phases);
        }
        query.execute(&mut *conn).await?;
    }
    // Latest per EVSE within the batch, then one upsert each.
    let mut latest: std::collections::BTreeMap<(&str, &str, &str), &MeterReading> =
        Default::default();
    for r in readings {
        let key = (
            r.country_code.as_str(),
            r.party_id.as_str(),
            r.evse_uid.as_str(),
        );
        match latest.get(&key) {
            Some(prev) if prev.ts > r.ts => {}
            _ => {
                latest.insert(key, r);
            }
        }
    }
    // One multi-row upsert (keys are distinct after the dedup above, as PostgreSQL requires).
    let latest: Vec<&MeterReading> = latest.into_values().collect();
    for chunk in latest.chunks(100) {
        let values: Vec<String> = (0..chunk.len()).map(placeholders).collect();
        let sql = format!(
            "INSERT INTO evse_live (country_code, party_id, evse_uid, session_id, ts, energy_wh,
                 power_w, soc_permille, car_phases)
             VALUES {}
             ON CONFLICT (country_code, party_id, evse_uid) DO UPDATE SET
                 session_id = COALESCE(excluded.session_id, evse_live.session_id),
                 ts = excluded.ts,
                 energy_wh = COALESCE(excluded.energy_wh, evse_live.energy_wh),
                 power_w = COALESCE(excluded.power_w, evse_live.power_w),
                 soc_permille = COALESCE(excluded.soc_permille, evse_live.soc_permille),
                 car_phases = COALESCE(excluded.car_phases, CASE
                     WHEN excluded.session_id IS NULL
                         OR excluded.session_id = evse_live.session_id
                     THEN evse_live.car_phases END)
             WHERE excluded.ts >= evse_live.ts",
            values.join(", ")
        );
        let mut query = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            query = query
                .bind(&r.country_code)
                .bind(&r.party_id)
                .bind(&r.evse_uid)
                .bind(r.session_id.clone())
                .bind(r.ts)
                .bind(r.energy_wh)
                .bind(r.power_w)
                .bind(r.soc_permille)
                .bind(r.car_phases);
        }
        query.execute(&mut *conn).await?;
    }
    Ok(())
}

/// `($k+1, …, $k+9)` for the `i`-th row of a nine-column insert.
fn placeholders(i: usize) -> String {
    let b = i * 9;
    let cols: Vec<String> = (1..=9).map(|c| format!("${}", b + c)).collect();
    format!("({})", cols.join(", "))
}

/// Latest readings of a party's EVSEs among `uids`.
pub async fn live_of(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    uids: &[String],
) -> StoreResult<Vec<LiveReading>> {
    if uids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders: Vec<String> = (0..uids.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT evse_uid, session_id, ts, energy_wh, power_w, soc_permille, car_phases FROM evse_live
         WHERE country_code = $1 AND party_id = $2 AND evse_uid IN ({}) ORDER BY evse_uid",
        placeholders.join(", ")
    );
    let mut query = sqlx::query_as::<_, LiveReading>(sqlx::AssertSqlSafe(sql))
        .bind(country_code)
        .bind(party_id);
    for uid in uids {
        query = query.bind(uid);
    }
    Ok(query.fetch_all(conn).await?)
}

/// Number of raw meter values stored.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM meter_values")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// The register readings `(ts, Wh)` of an EVSE over `[start_ts, end_ts]`, oldest first.
pub async fn register_series(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
    start_ts: i64,
    end_ts: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT ts, energy_wh FROM meter_values
         WHERE country_code = $1 AND party_id = $2 AND evse_uid = $3
           AND ts >= $4 AND ts <= $5 AND energy_wh IS NOT NULL ORDER BY ts",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(evse_uid)
    .bind(start_ts)
    .bind(end_ts)
    .fetch_all(conn)
    .await?)
}

/// [`register_energy_wh`] of several EVSEs, each from its own start, in one query: for each
/// `(country_code, party_id, evse_uid, start_ts)` of `windows`, the register's energy over
/// `[start_ts, end_ts]`, in the order given.
pub async fn register_energy_of(
    conn: &mut Conn,
    windows: &[(&str, &str, &str, i64)],
    end_ts: i64,
) -> StoreResult<Vec<Option<i64>>> {
    if windows.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<String> = (0..windows.len())
        .map(|i| format!("({})", super::numbered(2 + 5 * i, 5)))
        .collect();
    let sql = format!(
        "WITH w(k, country_code, party_id, evse_uid, start_ts) AS (VALUES {})
         SELECT w.k, MIN(m.energy_wh), MAX(m.energy_wh), COUNT(m.energy_wh)
         FROM w JOIN meter_values m
           ON m.country_code = w.country_code AND m.party_id = w.party_id
              AND m.evse_uid = w.evse_uid AND m.ts >= w.start_ts AND m.ts <= $1
              AND m.energy_wh IS NOT NULL
         GROUP BY w.k",
        rows.join(", ")
    );
    let mut query =
        sqlx::query_as::<_, (i64, Option<i64>, Option<i64>, i64)>(sqlx::AssertSqlSafe(sql))
            .bind(end_ts);
    for (k, (cc, pid, uid, start)) in windows.iter().enumerate() {
        query = query
            .bind(k as i64)
            .bind(*cc)
            .bind(*pid)
            .bind(*uid)
            .bind(*start);
    }
    let mut out = vec![None; windows.len()];
    for (k, min, max, n) in query.fetch_all(conn).await? {
        if let (Some(min), Some(max), true, Some(slot)) =
            (min, max, n >= 2, out.get_mut(k as usize))
        {
            *slot = Some(max - min);
        }
    }
    Ok(out)
}

/// Energy from the meter register of an EVSE over `[start_ts, end_ts]` (last minus first
/// reading, Wh), `None` with fewer than two readings.
pub async fn register_energy_wh(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
    start_ts: i64,
    end_ts: i64,
) -> StoreResult<Option<i64>> {
    let window = [(country_code, party_id, evse_uid, start_ts)];
    Ok(register_energy_of(conn, &window, end_ts)
        .await?
        .pop()
        .flatten())
}
