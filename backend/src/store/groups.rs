//! Site topology. Owns `charging_groups` (with each group's [`Electrical`] model),
//! `group_members`, `group_capacity_changes`, `group_series` (per-step PV and other-load
//! forecasts) and `battery_states` (each stationary battery's last measured state).

use super::{Conn, StoreResult, from_json, to_json};
use serde::{Deserialize, Serialize};
use sqlx::FromRow;

/// A PV inverter behind a group's connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PvInverter {
    /// Identifier within the group.
    pub id: String,
    /// Peak AC power (W).
    pub peak_w: i64,
}

/// A stationary battery behind a group's connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct BatterySpec {
    /// Identifier within the group.
    pub id: String,
    /// Usable capacity (Wh).
    pub capacity_wh: i64,
    /// Energy stored now (Wh).
    pub energy_wh: i64,
    /// Maximum charging power (W).
    pub max_charge_w: i64,
    /// Maximum discharging power (W).
    pub max_discharge_w: i64,
    /// Round-trip efficiency (per mille).
    pub efficiency_permille: u16,
}

/// What a limit node beneath a group's connection is (the chain registry's `LimitNodeKind`
/// less `connection`, which is the group itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum NodeKind {
    /// A transformer.
    Transformer,
    /// A fuse (a main fuse, a feeder's fuse).
    Fuse,
    /// A cabinet (distribution board).
    Cabinet,
}

/// A node of the tree of limits beneath a group's connection, as stored (currents in mA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LimitNode {
    /// Identifier, unique within the group.
    pub id: String,
    /// The node above it; `None`: the group's connection.
    pub parent: Option<String>,
    /// What it is.
    pub kind: NodeKind,
    /// Limit of phases L1, L2, L3 (mA); `None`: not limited.
    pub phase_limit_ma: [Option<i64>; 3],
    /// Limit of the EV power through it (W), for DC or balanced nodes.
    pub limit_w: Option<i64>,
    /// Non-EV load through it per phase (mA), where known (e.g. lighting on L1).
    #[serde(default)]
    pub other_load_ma: [i64; 3],
}

/// How a member charge point is wired and what it takes, as stored (currents in mA).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpWiring {
    /// The member EVSE.
    pub evse_uid: String,
    /// The node it hangs from; `None`: the group's connection.
    pub node: Option<String>,
    /// The node phases its own L1, L2, L3 are wired to, in order (the rotation).
    pub phases: Vec<evflex_schedule::Phase>,
    /// Line-to-neutral or line-to-line.
    pub wiring: evflex_schedule::Wiring,
    /// Phase voltage (line-to-neutral) or line-to-line voltage (V).
    pub voltage_v: u32,
    /// Amps or watts.
    pub unit: evflex_schedule::RateUnit,
    /// Minimum current when charging (mA, amps points; 0 for watts).
    pub min_current_ma: i64,
    /// Maximum current (mA, amps points; 0 for watts).
    pub max_current_ma: i64,
    /// Current step (mA, amps points; 0 for watts).
    pub current_step_ma: i64,
}

/// A group's electrical model: the per-phase limits of its connection, the tree of limit nodes
/// beneath it and how its charge points are wired. The default (nothing set) is a group that is
/// one number, `capacity_w`, as before; `ingest::topology` validates it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Electrical {
    /// Phase-to-neutral voltage of the connection and its nodes (V); 230 unless set.
    #[serde(default)]
    pub phase_voltage_v: u32,
    /// Limit of the connection's phases L1, L2, L3 (mA).
    #[serde(default)]
    pub phase_limit_ma: [Option<i64>; 3],
    /// Limit nodes beneath the connection, parents before children.
    #[serde(default)]
    pub nodes: Vec<LimitNode>,
    /// Wiring of member charge points (a member not listed is wired to the connection on all
    /// its phases and takes watts).
    #[serde(default)]
    pub charge_points: Vec<CpWiring>,
}

impl Electrical {
    /// Nothing set: the group is one number.
    pub fn is_empty(&self) -> bool {
        self.phase_limit_ma.iter().all(Option::is_none)
            && self.nodes.is_empty()
            && self.charge_points.is_empty()
    }
}

/// A charging group: charge points sharing a cabinet or transformer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupRecord {
    /// Group id (also used on chain).
    pub id: i64,
    /// Display name.
    pub name: String,
    /// Country code of the CPO whose EVSEs are members.
    pub country_code: String,
    /// Party id of the CPO whose EVSEs are members.
    pub party_id: String,
    /// Connection capacity (W).
    pub capacity_w: i64,
    /// Flat forecast of other (non-EV) load (W), used where no per-step forecast is stored.
    pub other_load_w: i64,
    /// PV inverters.
    pub pv_inverters: Vec<PvInverter>,
    /// Batteries.
    pub batteries: Vec<BatterySpec>,
    /// Phases, tree of limits and wiring (empty: one number).
    pub electrical: Electrical,
    /// Headroom every plan keeps for arriving cars (W), replacing the rule of
    /// `engine::reserve`; `None`: the rule.
    pub arrival_reserve_w: Option<i64>,
}

/// A stored group with its chain-asset state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredGroup {
    /// The record.
    pub record: GroupRecord,
    /// Version of the last asset record enqueued for the chain.
    pub asset_version: i64,
    /// Hash of the last asset record enqueued for the chain.
    pub asset_hash: String,
}

/// A capacity change (e.g. a grid operator's cut) over `[start_ts, end_ts)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, FromRow, utoipa::ToSchema)]
pub struct CapacityChange {
    /// Start (Unix seconds).
    pub start_ts: i64,
    /// End (Unix seconds); open-ended when absent.
    pub end_ts: Option<i64>,
    /// Capacity during the change (W).
    pub capacity_w: i64,
    /// Why (free text).
    pub reason: String,
}

#[derive(FromRow)]
struct GroupRow {
    id: i64,
    name: String,
    country_code: String,
    party_id: String,
    capacity_w: i64,
    other_load_w: i64,
    pv_inverters: String,
    batteries: String,
    electrical: String,
    arrival_reserve_w: Option<i64>,
    asset_version: i64,
    asset_hash: String,
}

impl TryFrom<GroupRow> for StoredGroup {
    type Error = super::StoreError;
    fn try_from(r: GroupRow) -> StoreResult<Self> {
        Ok(Self {
            record: GroupRecord {
                id: r.id,
                name: r.name,
                country_code: r.country_code,
                party_id: r.party_id,
                capacity_w: r.capacity_w,
                other_load_w: r.other_load_w,
                pv_inverters: from_json(&r.pv_inverters, "charging_groups.pv_inverters")?,
                batteries: from_json(&r.batteries, "charging_groups.batteries")?,
                electrical: from_json(&r.electrical, "charging_groups.electrical")?,
                arrival_reserve_w: r.arrival_reserve_w,
            },
            asset_version: r.asset_version,
            asset_hash: r.asset_hash,
        })
    }
}

const GROUP_COLUMNS: &str = "id, name, country_code, party_id, capacity_w, other_load_w, \
    pv_inverters, batteries, electrical, arrival_reserve_w, asset_version, asset_hash";

/// Inserts or replaces a group (not its members).
#[tracing::instrument(skip_all, fields(group_id = g.id))]
pub async fn upsert(conn: &mut Conn, g: &GroupRecord, now: i64) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO charging_groups (id, name, country_code, party_id, capacity_w, other_load_w,
             pv_inverters, batteries, electrical, created_at, updated_at, arrival_reserve_w)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $10, $9, $9, $11)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             country_code = excluded.country_code, party_id = excluded.party_id,
             capacity_w = excluded.capacity_w, other_load_w = excluded.other_load_w,
             pv_inverters = excluded.pv_inverters, batteries = excluded.batteries,
             electrical = excluded.electrical, updated_at = excluded.updated_at,
             arrival_reserve_w = excluded.arrival_reserve_w",
    )
    .bind(g.id)
    .bind(&g.name)
    .bind(&g.country_code)
    .bind(&g.party_id)
    .bind(g.capacity_w)
    .bind(g.other_load_w)
    .bind(to_json(&g.pv_inverters))
    .bind(to_json(&g.batteries))
    .bind(now)
    .bind(to_json(&g.electrical))
    .bind(g.arrival_reserve_w)
    .execute(conn)
    .await?;
    Ok(())
}

/// Sets a group's capacity now; `false` when the group is unknown.
pub async fn set_capacity(
    conn: &mut Conn,
    id: i64,
    capacity_w: i64,
    now: i64,
) -> StoreResult<bool> {
    let r =
        sqlx::query("UPDATE charging_groups SET capacity_w = $2, updated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(capacity_w)
            .bind(now)
            .execute(conn)
            .await?;
    Ok(r.rows_affected() > 0)
}

/// Replaces a group's members. Fails with a unique violation when an EVSE is already a member
/// of another group.
pub async fn set_members(
    conn: &mut Conn,
    id: i64,
    country_code: &str,
    party_id: &str,
    evse_uids: &[String],
) -> StoreResult<()> {
    sqlx::query("DELETE FROM group_members WHERE group_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for uid in evse_uids {
        sqlx::query(
            "INSERT INTO group_members (group_id, country_code, party_id, evse_uid)
             VALUES ($1, $2, $3, $4)",
        )
        .bind(id)
        .bind(country_code)
        .bind(party_id)
        .bind(uid)
        .execute(&mut *conn)
        .await
        .map_err(|e| {
            super::StoreError::conflict_on_unique(e, &format!("EVSE {uid} is in another group"))
        })?;
    }
    Ok(())
}

/// A group by id.
pub async fn get(conn: &mut Conn, id: i64) -> StoreResult<Option<StoredGroup>> {
    let row: Option<GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLUMNS} FROM charging_groups WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    row.map(StoredGroup::try_from).transpose()
}

/// Every group, by id.
pub async fn list(conn: &mut Conn) -> StoreResult<Vec<StoredGroup>> {
    let rows: Vec<GroupRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {GROUP_COLUMNS} FROM charging_groups ORDER BY id"
    )))
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(StoredGroup::try_from).collect()
}

/// Ids of every group.
pub async fn list_ids(conn: &mut Conn) -> StoreResult<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as("SELECT id FROM charging_groups ORDER BY id")
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Member EVSE uids of a group, sorted.
pub async fn members(conn: &mut Conn, id: i64) -> StoreResult<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT evse_uid FROM group_members WHERE group_id = $1 ORDER BY evse_uid")
            .bind(id)
            .fetch_all(conn)
            .await?;
    Ok(rows.into_iter().map(|(u,)| u).collect())
}

/// The group an EVSE belongs to, if any.
pub async fn group_of_evse(
    conn: &mut Conn,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
) -> StoreResult<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT group_id FROM group_members
         WHERE country_code = $1 AND party_id = $2 AND evse_uid = $3",
    )
    .bind(country_code)
    .bind(party_id)
    .bind(evse_uid)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(g,)| g))
}

/// Records the asset record last enqueued for the chain.
pub async fn set_asset_state(
    conn: &mut Conn,
    id: i64,
    version: i64,
    hash: &str,
) -> StoreResult<()> {
    sqlx::query("UPDATE charging_groups SET asset_version = $2, asset_hash = $3 WHERE id = $1")
        .bind(id)
        .bind(version)
        .bind(hash)
        .execute(conn)
        .await?;
    Ok(())
}

/// Adds a scheduled capacity change.
pub async fn add_capacity_change(
    conn: &mut Conn,
    id: i64,
    change: &CapacityChange,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO group_capacity_changes (group_id, start_ts, end_ts, capacity_w, reason,
             created_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(change.start_ts)
    .bind(change.end_ts)
    .bind(change.capacity_w)
    .bind(&change.reason)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Capacity changes overlapping `[from_ts, to_ts)`, oldest first.
pub async fn capacity_changes(
    conn: &mut Conn,
    id: i64,
    from_ts: i64,
    to_ts: i64,
) -> StoreResult<Vec<CapacityChange>> {
    Ok(sqlx::query_as(
        "SELECT start_ts, end_ts, capacity_w, reason FROM group_capacity_changes
         WHERE group_id = $1 AND start_ts < $3 AND (end_ts IS NULL OR end_ts > $2)
         ORDER BY start_ts, id",
    )
    .bind(id)
    .bind(from_ts)
    .bind(to_ts)
    .fetch_all(conn)
    .await?)
}

/// Kind of per-step series.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// PV production forecast (W).
    Pv,
    /// Other (non-EV) load forecast (W).
    OtherLoad,
}

impl SeriesKind {
    /// Name as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pv => "pv",
            Self::OtherLoad => "other_load",
        }
    }
}

/// Stores per-step values starting at `start_ts` every `step_s` seconds (replacing values at
/// the same instants).
pub async fn put_series(
    conn: &mut Conn,
    id: i64,
    kind: SeriesKind,
    start_ts: i64,
    step_s: i64,
    values_w: &[i64],
) -> StoreResult<()> {
    for (i, value) in values_w.iter().enumerate() {
        sqlx::query(
            "INSERT INTO group_series (group_id, kind, ts, value_w) VALUES ($1, $2, $3, $4)
             ON CONFLICT (group_id, kind, ts) DO UPDATE SET value_w = excluded.value_w",
        )
        .bind(id)
        .bind(kind.as_str())
        .bind(start_ts + i as i64 * step_s)
        .bind(*value)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Series values in `[from_ts, to_ts)` as (instant, W), ordered.
pub async fn series(
    conn: &mut Conn,
    id: i64,
    kind: SeriesKind,
    from_ts: i64,
    to_ts: i64,
) -> StoreResult<Vec<(i64, i64)>> {
    Ok(sqlx::query_as(
        "SELECT ts, value_w FROM group_series
         WHERE group_id = $1 AND kind = $2 AND ts >= $3 AND ts < $4 ORDER BY ts",
    )
    .bind(id)
    .bind(kind.as_str())
    .bind(from_ts)
    .bind(to_ts)
    .fetch_all(conn)
    .await?)
}

/// Removes every capacity change of a group (a topology PUT replaces them).
pub async fn clear_capacity_changes(conn: &mut Conn, id: i64) -> StoreResult<()> {
    sqlx::query("DELETE FROM group_capacity_changes WHERE group_id = $1")
        .bind(id)
        .execute(conn)
        .await?;
    Ok(())
}

/// A stationary battery's last measured state, as its controller posted it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatteryState {
    /// Energy stored (Wh).
    pub energy_wh: i64,
    /// Power at the battery's meter (W, + charging, − discharging).
    pub power_w: i64,
    /// When it was measured (Unix seconds).
    pub measured_at: i64,
}

/// Stores battery `battery_id`'s state unless a newer one is stored; `false` when it was older
/// than the stored one (kept).
pub async fn set_battery_state(
    conn: &mut Conn,
    group_id: i64,
    battery_id: &str,
    state: &BatteryState,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "INSERT INTO battery_states (group_id, battery_id, energy_wh, power_w, measured_at)
         VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (group_id, battery_id) DO UPDATE SET energy_wh = excluded.energy_wh,
             power_w = excluded.power_w, measured_at = excluded.measured_at
         WHERE battery_states.measured_at <= excluded.measured_at",
    )
    .bind(group_id)
    .bind(battery_id)
    .bind(state.energy_wh)
    .bind(state.power_w)
    .bind(state.measured_at)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() > 0)
}

/// The measured state of each of a group's batteries that has one, by battery id.
pub async fn battery_states(
    conn: &mut Conn,
    group_id: i64,
) -> StoreResult<std::collections::BTreeMap<String, BatteryState>> {
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT battery_id, energy_wh, power_w, measured_at FROM battery_states
         WHERE group_id = $1",
    )
    .bind(group_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, energy_wh, power_w, measured_at)| {
            (
                id,
                BatteryState {
                    energy_wh,
                    power_w,
                    measured_at,
                },
            )
        })
        .collect())
}

/// Forgets battery `battery_id`'s measured state (a topology write gave its energy anew, or
/// removed it).
pub async fn clear_battery_state(
    conn: &mut Conn,
    group_id: i64,
    battery_id: &str,
) -> StoreResult<()> {
    sqlx::query("DELETE FROM battery_states WHERE group_id = $1 AND battery_id = $2")
        .bind(group_id)
        .bind(battery_id)
        .execute(conn)
        .await?;
    Ok(())
}
