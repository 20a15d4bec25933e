//! OCPI Tariffs a CPO pushed to evflex's Tariffs receiver. Owns `tariffs`.
//!
//! A tariff is stored as received (`body`), keyed by its CPO's party codes and its id, with the
//! party row that sent it and its currency (what billing checks first).

use super::{Conn, StoreResult, from_json, to_json};
use sqlx::FromRow;

/// A tariff as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct TariffRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI tariff id.
    pub tariff_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// ISO 4217 currency.
    pub currency: String,
    /// The Tariff object as received.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

#[derive(FromRow)]
struct TariffRow {
    country_code: String,
    party_id: String,
    tariff_id: String,
    owner_party: Option<i64>,
    currency: String,
    body: String,
    last_updated: i64,
}

impl TryFrom<TariffRow> for TariffRecord {
    type Error = super::StoreError;
    fn try_from(r: TariffRow) -> StoreResult<Self> {
        Ok(Self {
            country_code: r.country_code,
            party_id: r.party_id,
            tariff_id: r.tariff_id,
            owner_party: r.owner_party,
            currency: r.currency,
            body: from_json(&r.body, "tariffs.body")?,
            last_updated: r.last_updated,
        })
    }
}

/// Inserts or replaces a tariff; `true` when it is new.
#[tracing::instrument(skip_all, fields(tariff = %rec.tariff_id))]
pub async fn upsert(conn: &mut Conn, rec: &TariffRecord) -> StoreResult<bool> {
    let existed = get(conn, &rec.country_code, &rec.party_id, &rec.tariff_id)
        .await?
        .is_some();
    sqlx::query(
        "INSERT INTO tariffs (country_code, party_id, tariff_id, owner_party, currency, body,
             last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (country_code, party_id, tariff_id) DO UPDATE SET
             owner_party = excluded.owner_party, currency = excluded.currency,
             body = excluded.body, last_updated = excluded.last_updated",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.tariff_id)
    .bind(rec.owner_party)
    .bind(&rec.currency)
    .bind(to_json(&rec.body))
    .bind(rec.last_updated)
    .execute(conn)
    .await?;
    Ok(!existed)
}

/// A tariff by its OCPI key.
pub async fn get(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    tariff_id: &str,
) -> StoreResult<Option<TariffRecord>> {
    let row: Option<TariffRow> = sqlx::query_as(
        "SELECT country_code, party_id, tariff_id, owner_party, currency, body, last_updated
         FROM tariffs WHERE country_code = $1 AND party_id = $2 AND tariff_id = $3",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(tariff_id)
    .fetch_optional(conn)
    .await?;
    row.map(TariffRecord::try_from).transpose()
}

/// Deletes a tariff; `false` when there was none.
#[tracing::instrument(skip_all, fields(tariff = tariff_id))]
pub async fn delete(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    tariff_id: &str,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "DELETE FROM tariffs WHERE country_code = $1 AND party_id = $2 AND tariff_id = $3",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(tariff_id)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// Number of tariffs stored.
pub async fn count(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tariffs")
        .fetch_one(conn)
        .await?;
    Ok(n)
}
