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
//!
//! **Phases, nested limits and wiring** (optional, `electrical`; README "Topology"): the per-phase
//! limits of the group's connection in A, a tree of limit nodes beneath it (transformers, fuses,
//! cabinets; `parent` null is the connection) and each member charge point's wiring: the node it
//! hangs from, the node phases its L1, L2, L3 are wired to (the installer's rotation), whether
//! it takes amps (`"A"`, with minimum, maximum and step) or watts (`"W"`).
//!
//! ```json
//! "electrical": {"phase_voltage_v": 230, "phase_limit_a": [80, 80, 80],
//!   "nodes": [{"id": "cab-1", "parent": null, "kind": "cabinet", "phase_limit_a": [32, 32, 32]}],
//!   "charge_points": [{"evse_uid": "EVSE-1", "node": "cab-1", "phases": ["L2", "L3", "L1"],
//!     "unit": "A", "min_current_a": 6, "max_current_a": 16, "current_step_a": 1}]}
//! ```
//!
//! A node with an unknown parent, a cycle, a duplicate id, or a charge point that is not a
//! member or names an unknown node is a 400 that names the node and the reason. A node whose
//! limit is above its parent's is accepted with a warning (the group's `warnings`): the parent
//! binds, but an electrician will want to know.

use crate::domain::{PartyKey, bounds, parse_rfc3339};

/// Most values in one forecast series: a week of one-minute steps.
const MAX_SERIES_VALUES: usize = 7 * 24 * 60;
use crate::ingest::{Actor, IngestError, IngestResult, assets};
use crate::store::groups::{
    self, BatterySpec, CapacityChange, CpWiring, Electrical, GroupRecord, LimitNode, NodeKind,
    PvInverter, SeriesKind,
};
use crate::store::{Conn, Db, StoreError};
use evflex_schedule::{Phase, RateUnit, Wiring};
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

/// A node of the tree of limits beneath a group's connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LimitNodeSpec {
    /// Identifier, unique within the group (1 to 36 characters).
    pub id: String,
    /// The node above it; null: the group's connection.
    #[serde(default)]
    pub parent: Option<String>,
    /// Transformer, fuse or cabinet.
    pub kind: NodeKind,
    /// Limit of phases L1, L2, L3 (A); null where a phase is not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_limit_a: Option<Vec<Option<f64>>>,
    /// Limit of the EV power through the node (W), for DC or balanced nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_w: Option<i64>,
    /// Non-EV load through the node per phase L1, L2, L3 (A), where known (e.g. a cabinet's
    /// lighting on L1); it comes off the node's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_load_a: Option<Vec<Option<f64>>>,
}

/// How a member charge point is wired and what set-points it takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct WiringSpec {
    /// The member EVSE's uid.
    pub evse_uid: String,
    /// The node it hangs from; null: the group's connection.
    #[serde(default)]
    pub node: Option<String>,
    /// The node phases (`L1`, `L2`, `L3`) its own L1, L2, L3 are wired to, in that order: one
    /// for a single-phase point, `["L2", "L3", "L1"]` for a three-phase point rotated by one.
    #[schema(value_type = Vec<String>)]
    pub phases: Vec<Phase>,
    /// `line_to_neutral` (default) or `line_to_line` (e.g. US 208 V).
    #[serde(default)]
    #[schema(value_type = String)]
    pub wiring: Wiring,
    /// Voltage (V): phase-to-neutral, or line-to-line for `line_to_line`; the group's phase
    /// voltage (or √3 times it) when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub voltage_v: Option<u32>,
    /// `A` (whole current steps per phase, AC) or `W`.
    #[schema(value_type = String)]
    pub unit: RateUnit,
    /// Amps: the minimum current when charging (A), 6 unless set (IEC 61851).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_current_a: Option<f64>,
    /// Amps: the maximum current (A); required for `A`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_current_a: Option<f64>,
    /// Amps: the current step (A), 1 unless set (0.1 where the hardware allows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_step_a: Option<f64>,
}

/// A group's phases, tree of limits and wiring.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ElectricalSpec {
    /// Phase-to-neutral voltage (V), 230 unless set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_voltage_v: Option<u32>,
    /// Limit of the connection's phases L1, L2, L3 (A); null where a phase is not limited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase_limit_a: Option<Vec<Option<f64>>>,
    /// The limit nodes beneath the connection.
    #[serde(default)]
    pub nodes: Vec<LimitNodeSpec>,
    /// Wiring of member charge points; a member not listed hangs from the connection on all its
    /// phases and takes watts.
    #[serde(default)]
    pub charge_points: Vec<WiringSpec>,
}

/// One group of the topology.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Phases, nested limits and charge-point wiring; absent: the group is one number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub electrical: Option<ElectricalSpec>,
    /// Headroom (W) every plan keeps free for cars that plug in before their first profile
    /// lands; absent: evflex's rule (one or more of the largest free charge points' ratings,
    /// from the group's arrival rate); 0: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arrival_reserve_w: Option<i64>,
}

/// A topology file: every group of a site.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
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
            electrical: match &spec.electrical {
                Some(e) => electrical(e, &spec.evses, &format!("{at}electrical."))?,
                None => Electrical::default(),
            },
            arrival_reserve_w: spec
                .arrival_reserve_w
                .map(|w| {
                    bounded(bounds::within(
                        &format!("{at}arrival_reserve_w"),
                        w,
                        &bounds::GROUP_POWER_W,
                        "W",
                    ))
                })
                .transpose()?,
        },
        changes,
    ))
}

/// Longest limit-node id.
const MAX_NODE_ID: usize = 36;
/// Highest current any limit or charge point may have (A): a large transformer's secondary.
const MAX_CURRENT_A: f64 = 10_000.0;

/// A current in A as mA: finite, positive, at most [`MAX_CURRENT_A`].
fn amps(field: &str, a: f64) -> IngestResult<i64> {
    if !a.is_finite() || a <= 0.0 || a > MAX_CURRENT_A {
        return Err(invalid(format!(
            "{field}: {a} A is not a current in (0, {MAX_CURRENT_A}] A"
        )));
    }
    Ok((a * 1000.0).round() as i64)
}

fn phase_limits(field: &str, limits: Option<&Vec<Option<f64>>>) -> IngestResult<[Option<i64>; 3]> {
    let Some(limits) = limits else {
        return Ok([None; 3]);
    };
    if limits.len() != 3 {
        return Err(invalid(format!(
            "{field}: needs three entries (L1, L2, L3; null where not limited), got {}",
            limits.len()
        )));
    }
    let mut out = [None; 3];
    for (i, a) in limits.iter().enumerate() {
        out[i] = a.map(|a| amps(&format!("{field}[{i}]"), a)).transpose()?;
    }
    Ok(out)
}

/// Validates a group's electrical model against its members `evses`: the tree is a tree
/// (known parents, no cycle, unique ids), every node has a limit, every wired charge point is
/// a member and hangs from a known node. Nodes are stored parents first.
pub fn electrical(spec: &ElectricalSpec, evses: &[String], at: &str) -> IngestResult<Electrical> {
    let phase_voltage_v = spec.phase_voltage_v.unwrap_or(230);
    if !(100..=480).contains(&phase_voltage_v) {
        return Err(invalid(format!(
            "{at}phase_voltage_v: {phase_voltage_v} V is not a phase voltage (100 to 480 V)"
        )));
    }
    let phase_limit_ma = phase_limits(&format!("{at}phase_limit_a"), spec.phase_limit_a.as_ref())?;
    let mut nodes = Vec::with_capacity(spec.nodes.len());
    for (i, n) in spec.nodes.iter().enumerate() {
        let here = format!("{at}nodes[{i}] ({:?})", n.id);
        if n.id.is_empty() || n.id.len() > MAX_NODE_ID {
            return Err(invalid(format!(
                "{here}: id must be 1 to {MAX_NODE_ID} characters"
            )));
        }
        if n.id == crate::engine::snapshot::CONNECTION_NODE {
            return Err(invalid(format!(
                "{here}: {:?} names the group's connection (parent null); choose another id",
                n.id
            )));
        }
        if spec.nodes[..i].iter().any(|m| m.id == n.id) {
            return Err(invalid(format!("{here}: duplicate node id")));
        }
        let phase_limit_ma =
            phase_limits(&format!("{here}.phase_limit_a"), n.phase_limit_a.as_ref())?;
        if let Some(w) = n.limit_w {
            if w <= 0 {
                return Err(invalid(format!("{here}.limit_w: must be positive")));
            }
            bounded(bounds::within(
                &format!("{here}.limit_w"),
                w,
                &bounds::GROUP_POWER_W,
                "W",
            ))?;
        }
        if phase_limit_ma.iter().all(Option::is_none) && n.limit_w.is_none() {
            return Err(invalid(format!(
                "{here}: a limit node needs a limit: phase_limit_a or limit_w"
            )));
        }
        let other_load_ma = phase_limits(&format!("{here}.other_load_a"), n.other_load_a.as_ref())?
            .map(|a| a.unwrap_or(0));
        nodes.push(LimitNode {
            id: n.id.clone(),
            parent: n.parent.clone(),
            kind: n.kind,
            phase_limit_ma,
            limit_w: n.limit_w,
            other_load_ma,
        });
    }
    let nodes = parents_first(nodes, at)?;
    let mut charge_points = Vec::with_capacity(spec.charge_points.len());
    for (i, c) in spec.charge_points.iter().enumerate() {
        let here = format!("{at}charge_points[{i}] ({:?})", c.evse_uid);
        if !evses.contains(&c.evse_uid) {
            return Err(invalid(format!("{here}: not a member of the group")));
        }
        if spec.charge_points[..i]
            .iter()
            .any(|d| d.evse_uid == c.evse_uid)
        {
            return Err(invalid(format!("{here}: wired twice")));
        }
        if let Some(node) = &c.node
            && !nodes.iter().any(|n| &n.id == node)
        {
            return Err(invalid(format!("{here}.node: unknown node {node:?}")));
        }
        let mut seen = [false; 3];
        for p in &c.phases {
            if std::mem::replace(&mut seen[p.index()], true) {
                return Err(invalid(format!(
                    "{here}.phases: node phase {p:?} is wired twice"
                )));
            }
        }
        if c.phases.is_empty() {
            return Err(invalid(format!("{here}.phases: needs 1 to 3 phases")));
        }
        if c.wiring == Wiring::LineToLine && c.phases.len() < 2 {
            return Err(invalid(format!(
                "{here}.phases: line_to_line needs two (or three) phases"
            )));
        }
        let voltage_v = c.voltage_v.unwrap_or(match c.wiring {
            Wiring::LineToNeutral => phase_voltage_v,
            Wiring::LineToLine => (f64::from(phase_voltage_v) * 3f64.sqrt()).round() as u32,
        });
        if !(100..=1_000).contains(&voltage_v) {
            return Err(invalid(format!(
                "{here}.voltage_v: {voltage_v} V is not an AC voltage (100 to 1000 V)"
            )));
        }
        let (min_current_ma, max_current_ma, current_step_ma) = match c.unit {
            RateUnit::Watts => (0, 0, 0),
            RateUnit::Amps => {
                let max = c.max_current_a.ok_or_else(|| {
                    invalid(format!("{here}.max_current_a: required for unit \"A\""))
                })?;
                let max = amps(&format!("{here}.max_current_a"), max)?;
                let min = amps(
                    &format!("{here}.min_current_a"),
                    c.min_current_a.unwrap_or(6.0),
                )?;
                let step = amps(
                    &format!("{here}.current_step_a"),
                    c.current_step_a.unwrap_or(1.0),
                )?;
                if min > max {
                    return Err(invalid(format!(
                        "{here}: min_current_a is above max_current_a"
                    )));
                }
                if step < 100 || step > max {
                    return Err(invalid(format!(
                        "{here}.current_step_a: must be at least 0.1 A and at most max_current_a"
                    )));
                }
                (min, max, step)
            }
        };
        charge_points.push(CpWiring {
            evse_uid: c.evse_uid.clone(),
            node: c.node.clone(),
            phases: c.phases.clone(),
            wiring: c.wiring,
            voltage_v,
            unit: c.unit,
            min_current_ma,
            max_current_ma,
            current_step_ma,
        });
    }
    Ok(Electrical {
        phase_voltage_v,
        phase_limit_ma,
        nodes,
        charge_points,
    })
}

/// `nodes` ordered parents first; an unknown parent or a cycle is an error naming the node.
fn parents_first(nodes: Vec<LimitNode>, at: &str) -> IngestResult<Vec<LimitNode>> {
    let index = |id: &str| nodes.iter().position(|n| n.id == id);
    for (i, n) in nodes.iter().enumerate() {
        let Some(parent) = &n.parent else { continue };
        if index(parent).is_none() {
            return Err(invalid(format!(
                "{at}nodes[{i}] ({:?}).parent: unknown parent {parent:?}",
                n.id
            )));
        }
        // Walk up: a tree reaches the connection within `nodes.len()` steps.
        let mut path = vec![n.id.as_str()];
        let mut up = n.parent.as_deref();
        while let Some(p) = up {
            path.push(p);
            if p == n.id {
                return Err(invalid(format!(
                    "{at}nodes[{i}] ({:?}): cycle {}",
                    n.id,
                    path.join(" → ")
                )));
            }
            if path.len() > nodes.len() + 1 {
                break;
            }
            up = index(p).and_then(|k| nodes[k].parent.as_deref());
        }
    }
    let mut out: Vec<LimitNode> = Vec::with_capacity(nodes.len());
    while out.len() < nodes.len() {
        for n in &nodes {
            let placed = out.iter().any(|o| o.id == n.id);
            let ready = n
                .parent
                .as_ref()
                .is_none_or(|p| out.iter().any(|o| &o.id == p));
            if !placed && ready {
                out.push(n.clone());
            }
        }
    }
    Ok(out)
}

/// Limits in a group's tree that are above their parent's: accepted (the parent binds), but
/// worth an electrician's look. One line each, naming the node and the phase.
pub fn electrical_warnings(record: &GroupRecord) -> Vec<String> {
    let e = &record.electrical;
    let mut out = Vec::new();
    let limits_of = |id: Option<&str>| -> ([Option<i64>; 3], Option<i64>) {
        match id.and_then(|id| e.nodes.iter().find(|n| n.id == id)) {
            Some(n) => (n.phase_limit_ma, n.limit_w),
            None => (e.phase_limit_ma, Some(record.capacity_w)),
        }
    };
    for n in &e.nodes {
        let parent_name = n.parent.as_deref().unwrap_or("the connection");
        let (parent_ma, parent_w) = limits_of(n.parent.as_deref());
        for (ph, (child, parent)) in n.phase_limit_ma.iter().zip(parent_ma).enumerate() {
            if let (Some(c), Some(p)) = (child, parent)
                && *c > p
            {
                out.push(format!(
                    "node {:?}: L{} limit {} A is above {parent_name}'s {} A",
                    n.id,
                    ph + 1,
                    *c as f64 / 1000.0,
                    p as f64 / 1000.0
                ));
            }
        }
        if let (Some(c), Some(p)) = (n.limit_w, parent_w)
            && c > p
        {
            out.push(format!(
                "node {:?}: limit {c} W is above {parent_name}'s {p} W",
                n.id
            ));
        }
    }
    out
}

/// The stored electrical model in the API's form (A), `None` when nothing is set.
pub fn electrical_view(e: &Electrical) -> Option<ElectricalSpec> {
    if e.is_empty() {
        return None;
    }
    let a = |ma: i64| ma as f64 / 1000.0;
    let limits = |l: &[Option<i64>; 3]| {
        l.iter()
            .any(Option::is_some)
            .then(|| l.iter().map(|x| x.map(a)).collect())
    };
    Some(ElectricalSpec {
        phase_voltage_v: Some(e.phase_voltage_v),
        phase_limit_a: limits(&e.phase_limit_ma),
        nodes: e
            .nodes
            .iter()
            .map(|n| LimitNodeSpec {
                id: n.id.clone(),
                parent: n.parent.clone(),
                kind: n.kind,
                phase_limit_a: limits(&n.phase_limit_ma),
                limit_w: n.limit_w,
                other_load_a: n
                    .other_load_ma
                    .iter()
                    .any(|ma| *ma > 0)
                    .then(|| n.other_load_ma.iter().map(|ma| Some(a(*ma))).collect()),
            })
            .collect(),
        charge_points: e
            .charge_points
            .iter()
            .map(|c| {
                let amps = c.unit == RateUnit::Amps;
                WiringSpec {
                    evse_uid: c.evse_uid.clone(),
                    node: c.node.clone(),
                    phases: c.phases.clone(),
                    wiring: c.wiring,
                    voltage_v: Some(c.voltage_v),
                    unit: c.unit,
                    min_current_a: amps.then(|| a(c.min_current_ma)),
                    max_current_a: amps.then(|| a(c.max_current_ma)),
                    current_step_a: amps.then(|| a(c.current_step_ma)),
                }
            })
            .collect(),
    })
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
    let existing = groups::get(conn, record.id).await?;
    if let Some(existing) = &existing
        && !actor.may_use(&existing.record.country_code, &existing.record.party_id)
    {
        return Err(IngestError::Conflict(format!(
            "{at}id: group {} belongs to another party; choose another id",
            record.id
        )));
    }
    let old_members = groups::members(conn, record.id).await?;
    // A battery's measured state stays while the topology restates the same battery; one the
    // topology changes (a new energy, a new size) or removes starts from the topology again.
    if let Some(existing) = &existing {
        for old in &existing.record.batteries {
            if !record.batteries.contains(old) {
                groups::clear_battery_state(conn, record.id, &old.id).await?;
            }
        }
    }
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
