//! The price signal: day-ahead prices from CSV (`datetime_utc,price_eur_per_mwh`, one row per
//! hour, as in the NL 2019 data set) into `prices`.

use crate::domain::{MicroEur, parse_rfc3339};
use crate::store::{Db, StoreError, prices};

/// Parses day-ahead CSV into (instant, micro-EUR per kWh) rows.
pub fn parse_day_ahead_csv(text: &str) -> Result<Vec<(i64, i64)>, String> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || (n == 0 && line.starts_with("datetime")) {
            continue;
        }
        let (ts, price) = line
            .split_once(',')
            .ok_or_else(|| format!("line {}: expected datetime_utc,price_eur_per_mwh", n + 1))?;
        let ts = parse_rfc3339(ts.trim()).ok_or_else(|| format!("line {}: bad datetime", n + 1))?;
        let price = price
            .trim()
            .parse::<f64>()
            .ok()
            .and_then(MicroEur::per_kwh_from_eur_per_mwh)
            .ok_or_else(|| format!("line {}: bad price", n + 1))?;
        out.push((ts, price.0));
    }
    Ok(out)
}

/// Loads a day-ahead CSV file into the database; returns the number of prices.
pub async fn load_day_ahead_csv(db: &Db, path: &std::path::Path) -> Result<usize, StoreError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| StoreError::Config(format!("{}: {e}", path.display())))?;
    let rows = parse_day_ahead_csv(&text).map_err(StoreError::Config)?;
    let mut tx = db.begin().await?;
    prices::put(&mut tx, &rows).await?;
    tx.commit().await?;
    Ok(rows.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_nl_day_ahead_format() {
        let rows = parse_day_ahead_csv(
            "datetime_utc,price_eur_per_mwh\n2019-01-01T00:00:00Z,64.98\n2019-01-01T01:00:00Z,-1.5\n",
        )
        .unwrap();
        assert_eq!(rows, vec![(1_546_300_800, 64_980), (1_546_304_400, -1_500)]);
        assert!(parse_day_ahead_csv("2019-01-01T00:00:00Z;64").is_err());
    }
}
