//! OCPI Locations, EVSEs and connectors. Owns `locations`, `evses`, `connectors`.
//!
//! Each level keeps the object as received (minus its children) in `body`, plus the columns
//! evflex computes with (status, power ratings).

use super::{Conn, StoreResult, from_json, to_json};
use sqlx::FromRow;

/// A Location as stored: the OCPI object without `evses`.
#[derive(Debug, Clone, PartialEq)]
pub struct LocationRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// OCPI location id.
    pub location_id: String,
    /// The party row that sent it.
    pub owner_party: Option<i64>,
    /// Display name.
    pub name: Option<String>,
    /// The Location object without `evses`.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

/// An EVSE as stored: the OCPI object without `connectors`, plus derived ratings.
#[derive(Debug, Clone, PartialEq)]
pub struct EvseRecord {
    /// Country code of the CPO.
    pub country_code: String,
    /// Party id of the CPO.
    pub party_id: String,
    /// Location the EVSE belongs to.
    pub location_id: String,
    /// OCPI EVSE uid.
    pub uid: String,
    /// eMI3 EVSE id, if any.
    pub evse_id: Option<String>,
    /// OCPI EVSE status (`AVAILABLE`, `CHARGING`, `REMOVED`, …).
    pub status: String,
    /// Highest connector power (W); `None` when no connector says.
    pub rated_power_w: Option<i64>,
    /// Power type of the strongest connector.
    pub power_type: Option<String>,
    /// Phases of the strongest connector.
    pub phases: Option<i64>,
    /// Voltage of the strongest connector (V).
    pub max_voltage_v: Option<i64>,
    /// Current of the strongest connector (A).
    pub max_current_a: Option<i64>,
    /// Connector standard of the strongest connector.
    pub connector_standard: Option<String>,
    /// The EVSE object without `connectors`.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

/// A connector as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectorRecord {
    /// OCPI connector id.
    pub connector_id: String,
    /// Connector standard.
    pub standard: Option<String>,
    /// `SOCKET` or `CABLE`.
    pub format: Option<String>,
    /// Power type.
    pub power_type: Option<String>,
    /// Maximum voltage (V).
    pub max_voltage_v: Option<i64>,
    /// Maximum current (A).
    pub max_current_a: Option<i64>,
    /// Maximum power (W), when the CPO says.
    pub max_electric_power_w: Option<i64>,
    /// The Connector object as received.
    pub body: serde_json::Value,
    /// `last_updated` (Unix seconds).
    pub last_updated: i64,
}

/// A stored EVSE with its row id and chain-asset state.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvse {
    /// Row id.
    pub id: i64,
    /// The record.
    pub record: EvseRecord,
    /// Version of the last asset record enqueued for the chain.
    pub asset_version: i64,
    /// Hash of the last asset record enqueued for the chain.
    pub asset_hash: String,
}

#[derive(FromRow)]
struct LocationRow {
    country_code: String,
    party_id: String,
    location_id: String,
    owner_party: Option<i64>,
    name: Option<String>,
    body: String,
    last_updated: i64,
}

#[derive(FromRow)]
struct EvseRow {
    id: i64,
    country_code: String,
    party_id: String,
    location_id: String,
    uid: String,
    evse_id: Option<String>,
    status: String,
    rated_power_w: Option<i64>,
    power_type: Option<String>,
    phases: Option<i64>,
    max_voltage_v: Option<i64>,
    max_current_a: Option<i64>,
    connector_standard: Option<String>,
    body: String,
    last_updated: i64,
    asset_version: i64,
    asset_hash: String,
}

impl TryFrom<EvseRow> for StoredEvse {
    type Error = super::StoreError;
    fn try_from(r: EvseRow) -> StoreResult<Self> {
        Ok(Self {
            id: r.id,
            record: EvseRecord {
                country_code: r.country_code,
                party_id: r.party_id,
                location_id: r.location_id,
                uid: r.uid,
                evse_id: r.evse_id,
                status: r.status,
                rated_power_w: r.rated_power_w,
                power_type: r.power_type,
                phases: r.phases,
                max_voltage_v: r.max_voltage_v,
                max_current_a: r.max_current_a,
                connector_standard: r.connector_standard,
                body: from_json(&r.body, "evses.body")?,
                last_updated: r.last_updated,
            },
            asset_version: r.asset_version,
            asset_hash: r.asset_hash,
        })
    }
}

#[derive(FromRow)]
struct ConnectorRow {
    connector_id: String,
    standard: Option<String>,
    format: Option<String>,
    power_type: Option<String>,
    max_voltage_v: Option<i64>,
    max_current_a: Option<i64>,
    max_electric_power_w: Option<i64>,
    body: String,
    last_updated: i64,
}

const EVSE_COLUMNS: &str = "id, country_code, party_id, location_id, uid, evse_id, status, \
    rated_power_w, power_type, phases, max_voltage_v, max_current_a, connector_standard, body, \
    last_updated, asset_version, asset_hash";

/// Inserts or replaces a location (without its EVSEs).
#[tracing::instrument(skip_all, fields(location = %rec.location_id))]
pub async fn upsert_location(conn: &mut Conn, rec: &LocationRecord) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO locations (country_code, party_id, location_id, owner_party, name, body,
             last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
         ON CONFLICT (country_code, party_id, location_id) DO UPDATE SET
             owner_party = excluded.owner_party, name = excluded.name, body = excluded.body,
             last_updated = excluded.last_updated",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.location_id)
    .bind(rec.owner_party)
    .bind(rec.name.clone())
    .bind(to_json(&rec.body))
    .bind(rec.last_updated)
    .execute(conn)
    .await?;
    Ok(())
}

/// A location by its OCPI key.
pub async fn get_location(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    location_id: &str,
) -> StoreResult<Option<LocationRecord>> {
    let row: Option<LocationRow> = sqlx::query_as(
        "SELECT country_code, party_id, location_id, owner_party, name, body, last_updated
         FROM locations WHERE country_code = $1 AND party_id = $2 AND location_id = $3",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(location_id)
    .fetch_optional(conn)
    .await?;
    row.map(|r| {
        Ok(LocationRecord {
            country_code: r.country_code,
            party_id: r.party_id,
            location_id: r.location_id,
            owner_party: r.owner_party,
            name: r.name,
            body: from_json(&r.body, "locations.body")?,
            last_updated: r.last_updated,
        })
    })
    .transpose()
}

/// Inserts or replaces an EVSE (without connectors); returns its row id.
#[tracing::instrument(skip_all, fields(evse = %rec.uid))]
pub async fn upsert_evse(conn: &mut Conn, rec: &EvseRecord) -> StoreResult<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO evses (country_code, party_id, location_id, uid, evse_id, status,
             rated_power_w, power_type, phases, max_voltage_v, max_current_a, connector_standard,
             body, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (country_code, party_id, uid) DO UPDATE SET
             location_id = excluded.location_id, evse_id = excluded.evse_id,
             status = excluded.status, rated_power_w = excluded.rated_power_w,
             power_type = excluded.power_type, phases = excluded.phases,
             max_voltage_v = excluded.max_voltage_v, max_current_a = excluded.max_current_a,
             connector_standard = excluded.connector_standard, body = excluded.body,
             last_updated = excluded.last_updated
         RETURNING id",
    )
    .bind(&rec.country_code)
    .bind(&rec.party_id)
    .bind(&rec.location_id)
    .bind(&rec.uid)
    .bind(rec.evse_id.clone())
    .bind(&rec.status)
    .bind(rec.rated_power_w)
    .bind(rec.power_type.clone())
    .bind(rec.phases)
    .bind(rec.max_voltage_v)
    .bind(rec.max_current_a)
    .bind(rec.connector_standard.clone())
    .bind(to_json(&rec.body))
    .bind(rec.last_updated)
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// An EVSE by party and uid.
pub async fn get_evse(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    uid: &str,
) -> StoreResult<Option<StoredEvse>> {
    let row: Option<EvseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVSE_COLUMNS} FROM evses WHERE country_code = $1 AND party_id = $2 AND uid = $3"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(uid)
    .fetch_optional(conn)
    .await?;
    row.map(StoredEvse::try_from).transpose()
}

/// Every EVSE of a location, by uid.
pub async fn evses_of_location(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    location_id: &str,
) -> StoreResult<Vec<StoredEvse>> {
    let rows: Vec<EvseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {EVSE_COLUMNS} FROM evses
         WHERE country_code = $1 AND party_id = $2 AND location_id = $3 ORDER BY uid"
    )))
    .bind(country_code)
    .bind(party_id)
    .bind(location_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredEvse::try_from).collect()
}

/// Every EVSE that is a member of a group (members without EVSE data yet are left out).
pub async fn evses_of_group(conn: &mut Conn, group_id: i64) -> StoreResult<Vec<StoredEvse>> {
    let rows: Vec<EvseRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {} FROM evses e JOIN group_members m
             ON m.country_code = e.country_code AND m.party_id = e.party_id AND m.evse_uid = e.uid
         WHERE m.group_id = $1 ORDER BY e.uid",
        EVSE_COLUMNS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ")
    )))
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredEvse::try_from).collect()
}

/// Records the asset record last enqueued for the chain.
pub async fn set_evse_asset_state(
    conn: &mut Conn,
    evse_row: i64,
    version: i64,
    hash: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE evses SET asset_version = $2, asset_hash = $3 WHERE id = $1")
        .bind(evse_row)
        .bind(version)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Replaces all connectors of an EVSE.
pub async fn replace_connectors(
    conn: &mut Conn,
    evse_row: i64,
    connectors: &[ConnectorRecord],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM connectors WHERE evse_row = $1")
        .bind(evse_row)
        .execute(&mut *conn)
        .await?;
    for c in connectors {
        upsert_connector(conn, evse_row, c).await?;
    }
    Ok(())
}

/// Inserts or replaces one connector of an EVSE.
pub async fn upsert_connector(
    conn: &mut Conn,
    evse_row: i64,
    c: &ConnectorRecord,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO connectors (evse_row, connector_id, standard, format, power_type,
             max_voltage_v, max_current_a, max_electric_power_w, body, last_updated)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         ON CONFLICT (evse_row, connector_id) DO UPDATE SET
             standard = excluded.standard, format = excluded.format,
             power_type = excluded.power_type, max_voltage_v = excluded.max_voltage_v,
             max_current_a = excluded.max_current_a,
             max_electric_power_w = excluded.max_electric_power_w, body = excluded.body,
             last_updated = excluded.last_updated",
    )
    .bind(evse_row)
    .bind(&c.connector_id)
    .bind(c.standard.clone())
    .bind(c.format.clone())
    .bind(c.power_type.clone())
    .bind(c.max_voltage_v)
    .bind(c.max_current_a)
    .bind(c.max_electric_power_w)
    .bind(to_json(&c.body))
    .bind(c.last_updated)
    .execute(conn)
    .await?;
    Ok(())
}

/// The connectors of an EVSE, by id.
pub async fn connectors_of(conn: &mut Conn, evse_row: i64) -> StoreResult<Vec<ConnectorRecord>> {
    let rows: Vec<ConnectorRow> = sqlx::query_as(
        "SELECT connector_id, standard, format, power_type, max_voltage_v, max_current_a,
             max_electric_power_w, body, last_updated
         FROM connectors WHERE evse_row = $1 ORDER BY connector_id",
    )
    .bind(evse_row)
    .fetch_all(conn)
    .await?;
    rows.into_iter()
        .map(|r| {
            Ok(ConnectorRecord {
                connector_id: r.connector_id,
                standard: r.standard,
                format: r.format,
                power_type: r.power_type,
                max_voltage_v: r.max_voltage_v,
                max_current_a: r.max_current_a,
                max_electric_power_w: r.max_electric_power_w,
                body: from_json(&r.body, "connectors.body")?,
                last_updated: r.last_updated,
            })
        })
        .collect()
}

/// Number of EVSEs stored (for tests and metrics).
pub async fn count_evses(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM evses")
        .fetch_one(conn)
        .await?;
    Ok(n)
}

/// Number of locations stored (for tests and metrics).
pub async fn count_locations(conn: &mut Conn) -> StoreResult<i64> {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM locations")
        .fetch_one(conn)
        .await?;
    Ok(n)
}
