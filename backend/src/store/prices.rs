//! The price signal. Owns `prices` (energy price per instant, micro-EUR per kWh; a value holds
//! until the next stored instant).

use super::{Conn, StoreResult};

/// Stores prices (instant, micro-EUR/kWh), replacing existing instants.
#[tracing::instrument(skip_all, fields(n = prices.len()))]
pub async fn put(conn: &mut Conn, prices: &[(i64, i64)]) -> StoreResult<()> {
    for chunk in prices.chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
            .collect();
        let sql = format!(
            "INSERT INTO prices (ts, price_micro_eur_per_kwh) VALUES {}
             ON CONFLICT (ts) DO UPDATE SET
                 price_micro_eur_per_kwh = excluded.price_micro_eur_per_kwh",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (ts, price) in chunk {
            q = q.bind(*ts).bind(*price);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Prices that apply within `[from_ts, to_ts)`: the last one at or before `from_ts` (if any)
/// and every one after it, ordered.
pub async fn in_range(conn: &mut Conn, from_ts: i64, to_ts: i64) -> StoreResult<Vec<(i64, i64)>> {
    let before: Option<(i64, i64)> = sqlx::query_as(
        "SELECT ts, price_micro_eur_per_kwh FROM prices WHERE ts <= $1 ORDER BY ts DESC LIMIT 1",
    )
    .bind(from_ts)
    .fetch_optional(&mut *conn)
    .await?;
    let mut rows: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT ts, price_micro_eur_per_kwh FROM prices WHERE ts > $1 AND ts < $2 ORDER BY ts",
    )
    .bind(from_ts)
    .bind(to_ts)
    .fetch_all(conn)
    .await?;
    if let Some(b) = before {
        rows.insert(0, b);
    }
    Ok(rows)
}
