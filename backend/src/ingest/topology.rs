//! Site topology: which EVSEs share a cabinet/transformer (a group), its capacity and scheduled
//! capacity changes (e.g. a grid operator's cut), other load, PV inverters and batteries.
//!
//! The same JSON serves the API (`PUT /api/v1/groups/{id}` takes one [`GroupSpec`]) and the
//! demo's topology file (`evflex serve --topology site.json`, a [`Topology`]).
//!
//! **Ownership.** A group belongs to the party whose codes it carries (`country_code`,
//! `party_id`), and its members are that party's EVSEs. A CPO creates, reads and changes only
//! groups under its own codes ([`Actor`]); another party's group is "unknown" to it. Group ids
//! are global, because the chain keys groups by them, so an id taken by another party is a
//! conflict (409). A transformer that feeds several CPOs' charge points is the site
//! operator's: it is loaded by the operator's topology file, one group per CPO behind it, each
//! with the share of the connection that CPO contracted (DESIGN.md, tenancy).
//!
//!
//! ```json
//! {"groups": [{"id": 1, "name": "Garage A", "country_code": "NL", "party_id": "EXA",
//!   "capacity_w": 50000, "other_load_w": 4000, "evses": ["EVSE-1", "EVSE-2"],
//!   "pv_inverters": [{"id": "roof", "peak_w": 20000}],
//!   "batteries": [{"id": "b1", "capacity_wh": 50000, "energy_wh": 20000,
//!                  "max_charge_w": 10000, "max_discharge_w": 10000, "efficiency_permille": 900}],
//!   "capacity_changes": [{"start": "2024-05-01T16:00:00Z", "end": "2024-05-01T18:00:00Z",
//!                         "capacity_w": 20000, "reason": "DSO congestion"}]}]}
//! ```

use crate::domain::{PartyKey, bounds, parse_rfc3339};

/// Most values in one forecast series: a week of one-minute steps.
const MAX_SERIES_VALUES: usize = 7 * 24 * 60;
use crate::ingest::{Actor, IngestError, IngestResult, assets};
use crate::store::groups::{
    self, BatterySpec, CapacityChange, GroupRecord, PvInverter, SeriesKind,
};
use crate::store::{Conn, Db, StoreError};
use serde::{Deserialize, Serialize};

/// A scheduled capacity change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CapacityChangeSpec {
    /// Start (RFC 3339).
    pub start: String,
    /// End (RFC 3339); open-ended when absent.
    pub end: Option<String>,
    /// Capacity during the change (W).
    pub capacity_w: i64,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// One group of the topology.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GroupSpec {
    /// Group id (also used on chain).
    pub id: u64,
    /// Name.
    pub name: String,
    /// Country code of the CPO whose EVSEs are members.
    pub country_code: String,
    /// Party id of the CPO whose EVSEs are members.
    pub party_id: String,
    /// Connection capacity (W).
    pub capacity_w: i64,
    /// Other (non-EV) load (W) where no per-step forecast is stored.
    #[serde(default)]
    pub other_load_w: i64,
    /// Member EVSE uids.
    #[serde(default)]
    pub evses: Vec<String>,
    /// PV inverters.
    #[serde(default)]
    pub pv_inverters: Vec<PvInverter>,
    /// Batteries.
    #[serde(default)]
    pub batteries: Vec<BatterySpec>,
    /// Scheduled capacity changes (replace the stored ones).
    #[serde(default)]
    pub capacity_changes: Vec<CapacityChangeSpec>,
}

/// A topology file: every group of a site.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Topology {
    /// Groups.
    pub groups: Vec<GroupSpec>,
}

fn invalid(msg: String) -> IngestError {
    IngestError::Invalid(msg)
}

fn bounded<T>(checked: Result<T, String>) -> IngestResult<T> {
    checked.map_err(IngestError::Invalid)
}

/// Validates a capacity change.
pub fn capacity_change(spec: &CapacityChangeSpec, at: &str) -> IngestResult<CapacityChange> {
    let start_ts = parse_rfc3339(&spec.start)
        .ok_or_else(|| invalid(format!("{at}start: invalid DateTime {:?}", spec.start)))?;
    let end_ts = match &spec.end {
        Some(end) => Some(
            parse_rfc3339(end)
                .ok_or_else(|| invalid(format!("{at}end: invalid DateTime {end:?}")))?,
        ),
        None => None,
    };
    if end_ts.is_some_and(|e| e <= start_ts) {
        return Err(invalid(format!("{at}end: must be after start")));
    }
    bounded(bounds::instant(&format!("{at}start"), start_ts))?;
    if let Some(end) = end_ts {
        bounded(bounds::instant(&format!("{at}end"), end))?;
    }
    bounded(bounds::within(
        &format!("{at}capacity_w"),
        spec.capacity_w,
        &bounds::GROUP_POWER_W,
        "W",
    ))?;
    Ok(CapacityChange {
        start_ts,
        end_ts,
        capacity_w: spec.capacity_w,
        reason: spec.reason.clone(),
    })
}

fn validate(spec: &GroupSpec, at: &str) -> IngestResult<(GroupRecord, Vec<CapacityChange>)> {
    let party = PartyKey::parse(&spec.country_code, &spec.party_id)
        .map_err(|e| invalid(format!("{at}{e}")))?;
    let id = i64::try_from(spec.id).map_err(|_| invalid(format!("{at}id: too large")))?;
    if spec.capacity_w <= 0 {
        return Err(invalid(format!("{at}capacity_w: must be positive")));
    }
    for (field, value) in [
        ("capacity_w", spec.capacity_w),
        ("other_load_w", spec.other_load_w),
    ] {
        bounded(bounds::within(
            &format!("{at}{field}"),
            value,
            &bounds::GROUP_POWER_W,
            "W",
        ))?;
    }
    for (i, uid) in spec.evses.iter().enumerate() {
        crate::domain::EvseUid::parse(uid.clone())
            .map_err(|e| invalid(format!("{at}evses[{i}]: {e}")))?;
    }
    for (i, pv) in spec.pv_inverters.iter().enumerate() {
        bounded(bounds::within(
            &format!("{at}pv_inverters[{i}].peak_w"),
            pv.peak_w,
            &bounds::GROUP_POWER_W,
            "W",
        ))?;
    }
    for (i, b) in spec.batteries.iter().enumerate() {
        if b.capacity_wh <= 0 || b.energy_wh < 0 || b.energy_wh > b.capacity_wh {
            return Err(invalid(format!(
                "{at}batteries[{i}]: need 0 <= energy_wh <= capacity_wh, capacity_wh > 0"
            )));
        }
        if b.max_charge_w < 0 || b.max_discharge_w < 0 || b.efficiency_permille > 1000 {
            return Err(invalid(format!(
                "{at}batteries[{i}]: powers >= 0, efficiency <= 1000"
            )));
        }
        let battery = |field: &str| format!("{at}batteries[{i}].{field}");
        bounded(bounds::within(
            &battery("capacity_wh"),
            b.capacity_wh,
            &bounds::BATTERY_ENERGY_WH,
            "Wh",
        ))?;
        for (field, w) in [
            ("max_charge_w", b.max_charge_w),
            ("max_discharge_w", b.max_discharge_w),
        ] {
            bounded(bounds::within(
                &battery(field),
                w,
                &bounds::GROUP_POWER_W,
                "W",
            ))?;
        }
    }
    let changes = spec
        .capacity_changes
        .iter()
        .enumerate()
        .map(|(i, c)| capacity_change(c, &format!("{at}capacity_changes[{i}].")))
        .collect::<IngestResult<Vec<_>>>()?;
    Ok((
        GroupRecord {
            id,
            name: spec.name.clone(),
            country_code: party.country_code,
            party_id: party.party_id,
            capacity_w: spec.capacity_w,
            other_load_w: spec.other_load_w,
            pv_inverters: spec.pv_inverters.clone(),
            batteries: spec.batteries.clone(),
        },
        changes,
    ))
}

/// The stored group `group_id` if `actor` may change it; an unknown group and another party's
/// group are the same [`IngestError::NotFound`], so a CPO learns nothing of other CPOs' groups.
pub async fn owned_group(
    conn: &mut Conn,
    actor: Actor<'_>,
    group_id: i64,
) -> IngestResult<groups::StoredGroup> {
    groups::get(conn, group_id)
        .await?
        .filter(|g| actor.may_use(&g.record.country_code, &g.record.party_id))
        .ok_or_else(|| IngestError::NotFound(format!("unknown group {group_id}")))
}

/// The ids of every group `actor` may see, in id order.
pub async fn owned_group_ids(conn: &mut Conn, actor: Actor<'_>) -> IngestResult<Vec<i64>> {
    Ok(groups::list(conn)
        .await?
        .into_iter()
        .filter(|g| actor.may_use(&g.record.country_code, &g.record.party_id))
        .map(|g| g.record.id)
        .collect())
}

async fn write_group(
    conn: &mut Conn,
    actor: Actor<'_>,
    at: &str,
    record: &GroupRecord,
    evses: &[String],
    changes: &[CapacityChange],
    now: i64,
) -> IngestResult<()> {
    actor.check(
        &format!("{at}country_code"),
        &record.country_code,
        &record.party_id,
    )?;
    // Group ids are global (they are the chain's too), so an id another party uses is a
    // conflict, not a group to take over.
    if let Some(existing) = groups::get(conn, record.id).await?
        && !actor.may_use(&existing.record.country_code, &existing.record.party_id)
    {
        return Err(IngestError::Conflict(format!(
            "{at}id: group {} belongs to another party; choose another id",
            record.id
        )));
    }
    let old_members = groups::members(conn, record.id).await?;
    groups::upsert(conn, record, now).await?;
    groups::set_members(
        conn,
        record.id,
        &record.country_code,
        &record.party_id,
        evses,
    )
    .await
    .map_err(|e| match e {
        StoreError::Conflict(msg) => IngestError::Conflict(msg),
        other => other.into(),
    })?;
    groups::clear_capacity_changes(conn, record.id).await?;
    for c in changes {
        groups::add_capacity_change(conn, record.id, c, now).await?;
    }
    assets::sync_group(conn, record.id, now).await?;
    let mut touched: Vec<&String> = old_members.iter().chain(evses.iter()).collect();
    touched.sort();
    touched.dedup();
    for uid in touched {
        assets::sync_evse(conn, &record.country_code, &record.party_id, uid, now).await?;
    }
    Ok(())
}

/// Creates or replaces one group (members and capacity changes included).
#[tracing::instrument(skip_all, fields(group_id = spec.id))]
pub async fn put_group(db: &Db, actor: Actor<'_>, spec: &GroupSpec, now: i64) -> IngestResult<()> {
    let (record, changes) = validate(spec, "")?;
    let mut tx = db.begin().await?;
    write_group(&mut tx, actor, "", &record, &spec.evses, &changes, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Creates or replaces every group of a topology in one transaction.
#[tracing::instrument(skip_all, fields(groups = topology.groups.len()))]
pub async fn put_topology(
    db: &Db,
    actor: Actor<'_>,
    topology: &Topology,
    now: i64,
) -> IngestResult<()> {
    let validated = topology
        .groups
        .iter()
        .enumerate()
        .map(|(i, g)| validate(g, &format!("groups[{i}].")))
        .collect::<IngestResult<Vec<_>>>()?;
    let mut tx = db.begin().await?;
    for (i, ((record, changes), spec)) in validated.iter().zip(&topology.groups).enumerate() {
        let at = format!("groups[{i}].");
        write_group(&mut tx, actor, &at, record, &spec.evses, changes, now).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Reads a topology file.
pub fn read_file(path: &std::path::Path) -> Result<Topology, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    crate::ingest::ocpi::model::parse(
        serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?,
    )
    .map_err(|e| format!("{}: {e}", path.display()))
}

/// Changes a group's capacity now (e.g. a grid operator's cut); the next tick respects it.
#[tracing::instrument(skip_all, fields(group_id))]
pub async fn set_capacity(
    db: &Db,
    actor: Actor<'_>,
    group_id: i64,
    capacity_w: i64,
    now: i64,
) -> IngestResult<()> {
    if capacity_w <= 0 {
        return Err(invalid("capacity_w: must be positive".to_owned()));
    }
    bounded(bounds::within(
        "capacity_w",
        capacity_w,
        &bounds::GROUP_POWER_W,
        "W",
    ))?;
    let mut tx = db.begin().await?;
    owned_group(&mut tx, actor, group_id).await?;
    if !groups::set_capacity(&mut tx, group_id, capacity_w, now).await? {
        return Err(IngestError::NotFound(format!("unknown group {group_id}")));
    }
    assets::sync_group(&mut tx, group_id, now).await?;
    tx.commit().await?;
    Ok(())
}

/// Adds a scheduled capacity change to a group.
pub async fn add_capacity_change(
    db: &Db,
    actor: Actor<'_>,
    group_id: i64,
    spec: &CapacityChangeSpec,
    now: i64,
) -> IngestResult<()> {
    let change = capacity_change(spec, "")?;
    let mut tx = db.begin().await?;
    owned_group(&mut tx, actor, group_id).await?;
    groups::add_capacity_change(&mut tx, group_id, &change, now).await?;
    tx.commit().await?;
    Ok(())
}

/// A per-step forecast for a group (PV or other load).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct ForecastSpec {
    /// `pv` or `other_load`.
    pub kind: SeriesKind,
    /// Instant of the first value (RFC 3339).
    pub start: String,
    /// Seconds between values (default 900).
    #[serde(default = "default_step")]
    pub step_s: i64,
    /// Values (W).
    pub values_w: Vec<i64>,
}

fn default_step() -> i64 {
    900
}

/// Stores a per-step forecast for a group.
pub async fn put_forecast(
    db: &Db,
    actor: Actor<'_>,
    group_id: i64,
    spec: &ForecastSpec,
) -> IngestResult<()> {
    let start = parse_rfc3339(&spec.start)
        .ok_or_else(|| invalid(format!("start: invalid DateTime {:?}", spec.start)))?;
    bounded(bounds::instant("start", start))?;
    bounded(bounds::within(
        "step_s",
        spec.step_s,
        &bounds::SERIES_STEP_S,
        "s",
    ))?;
    if spec.values_w.len() > MAX_SERIES_VALUES {
        return Err(invalid(format!(
            "values_w: {} values, at most {MAX_SERIES_VALUES} (a week of minutes)",
            spec.values_w.len()
        )));
    }
    for (i, v) in spec.values_w.iter().enumerate() {
        bounded(bounds::within(
            &format!("values_w[{i}]"),
            *v,
            &bounds::GROUP_POWER_W,
            "W",
        ))?;
    }
    let mut tx = db.begin().await?;
    owned_group(&mut tx, actor, group_id).await?;
    groups::put_series(
        &mut tx,
        group_id,
        spec.kind,
        start,
        spec.step_s,
        &spec.values_w,
    )
    .await?;
    tx.commit().await?;
    Ok(())
}
