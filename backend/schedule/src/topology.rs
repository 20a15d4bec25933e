//! The site as electricians build it: a tree of limits (connection → transformer or main fuse →
//! cabinets → charge points), per-phase limits in A (or a single limit in W for DC or balanced
//! nodes), and charge points that take whole current steps from a minimum or pause.
//!
//! The public types ([`Topology`], [`Node`], [`ChargePoint`]) are part of [`crate::GroupInputs`]
//! (optional: a group without a topology behaves exactly as before). The crate-private part
//! ([`PrepTree`], [`Loads`]) resolves the tree once per solve into index form and tracks the
//! load of every node and phase in every step, in exact integers (mA and W), for the rounding,
//! the repair, the fallback and the checker alike.
//!
//! Electrical model of one charge point (`DESIGN.md`, "The electrical model"): its load is a
//! vector over the node's three phases, 1 on every phase it loads and 0 elsewhere, times its
//! current set-point `I` (mA). Its power is `P = floor(I · mw_per_a / 10⁶)` W with
//! - line-to-neutral (EU 230 V, US 120 V), car on `k` phases: loads the first `k` wired phases,
//!   `mw_per_a = k · V · 1000`;
//! - line-to-line (US 208 V) between two wired lines: loads both, `mw_per_a = V · 1000`;
//!   a three-phase car on three wired lines: loads all three, `mw_per_a = round(√3 · V · 1000)`.
//!
//! A charge point taking watts (DC, or an AC point driven in W) loads its phases with
//! `ceil(P · 10⁶ / mw_per_a)` mA each.

use serde::{Deserialize, Serialize};

use crate::ScheduleError;

/// One phase of a three-phase supply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Phase {
    /// L1.
    L1,
    /// L2.
    L2,
    /// L3.
    L3,
}

impl Phase {
    /// 0, 1 or 2.
    pub fn index(self) -> usize {
        match self {
            Phase::L1 => 0,
            Phase::L2 => 1,
            Phase::L3 => 2,
        }
    }
}

/// How a charge point is connected to its node's phases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Wiring {
    /// Between a phase and neutral (EU 230 V, US 120 V): `voltage_v` is the phase voltage.
    #[default]
    LineToNeutral,
    /// Between two phases (US 208 V): `voltage_v` is the line-to-line voltage.
    LineToLine,
}

/// The unit a charge point takes its set-points in (OCPI/OCPP `charging_rate_unit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum RateUnit {
    /// Whole current steps per phase (AC charge points): `"A"`.
    #[serde(rename = "A")]
    Amps,
    /// Watts (DC, or AC points that want W): `"W"`.
    #[serde(rename = "W")]
    Watts,
}

/// The tree of limits of a group's site and where each vehicle is plugged in.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Topology {
    /// The nodes (site connection, transformers, main fuses, cabinets); each names its parent.
    pub nodes: Vec<Node>,
    /// One entry per vehicle of the group: the charge point it is (or will be) plugged into.
    pub charge_points: Vec<ChargePoint>,
}

/// One node of the tree: a fuse, transformer or cabinet with its limits.
///
/// The group's own `capacity_w` (with its other load, PV and battery) stays the limit of the
/// whole group's grid import; the tree adds rows beneath (or above) it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    /// Identifier, unique in the tree.
    pub id: String,
    /// The node above it (`None` for a root). Several roots are allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    /// Limit per phase L1, L2, L3 (mA); `None` where the phase is not limited (or absent).
    #[serde(default)]
    pub phase_limit_ma: [Option<i64>; 3],
    /// Limit of the total EV power through the node (W): DC or balanced nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_w: Option<i64>,
    /// Non-EV load through the node per step and phase (mA); empty = none, else `horizon` long.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_load_ma: Vec<[i64; 3]>,
    /// PV production behind the node per step and phase (mA); empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pv_ma: Vec<[i64; 3]>,
    /// Non-EV load through the node per step (W), for `limit_w`; empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub other_load_w: Vec<i64>,
    /// PV production behind the node per step (W), for `limit_w`; empty = none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pv_w: Vec<i64>,
}

/// A vehicle's charge point: where it hangs in the tree, how it is wired, what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargePoint {
    /// The vehicle (session) plugged into it: a [`crate::Vehicle::id`] of the group.
    pub vehicle_id: String,
    /// The node it hangs from.
    pub node: String,
    /// The node phases its own L1, L2, L3 are connected to, in that order (the installer's
    /// rotation): `[L2, L3, L1]` is a point rotated by one; a single-phase point has one entry
    /// (two for a line-to-line point).
    pub phases: Vec<Phase>,
    /// Line-to-neutral (default) or line-to-line.
    #[serde(default)]
    pub wiring: Wiring,
    /// Phase-to-neutral voltage (line-to-neutral) or line-to-line voltage (V), e.g. 230 or 208.
    pub voltage_v: u32,
    /// Phases the car actually draws on (1–3); `None` when unknown: every wired phase (the
    /// worst case for the limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub car_phases: Option<u8>,
    /// Amps (AC) or watts.
    pub unit: RateUnit,
    /// Minimum current when charging (mA), e.g. 6000 (IEC 61851); below it the point pauses.
    /// Amps only; a watts point uses the vehicle's `min_power_w`.
    #[serde(default)]
    pub min_current_ma: i64,
    /// Maximum current (mA), e.g. 16000 or 32000. Amps only; a watts point uses
    /// `max_power_w`.
    #[serde(default)]
    pub max_current_ma: i64,
    /// Current step (mA): 1000 for whole amps, 100 for 0.1 A. Amps only.
    #[serde(default)]
    pub current_step_ma: i64,
}

impl ChargePoint {
    /// The node phases the car loads (a 0/1 vector over L1, L2, L3) and the power per amp of
    /// set-point in mW/A (module docs).
    pub fn load_vector(&self) -> ([bool; 3], i64) {
        let wired = self.phases.len();
        let k = self
            .car_phases
            .map_or(wired, |k| (k as usize).clamp(1, 3))
            .min(wired)
            .max(1);
        let v = self.voltage_v as i64;
        let mut load = [false; 3];
        match self.wiring {
            Wiring::LineToNeutral => {
                for p in self.phases.iter().take(k) {
                    load[p.index()] = true;
                }
                (load, k as i64 * v * 1000)
            }
            Wiring::LineToLine if k >= 3 && wired >= 3 => {
                for p in &self.phases {
                    load[p.index()] = true;
                }
                (load, isqrt(3 * v * v * 1_000_000))
            }
            Wiring::LineToLine => {
                for p in self.phases.iter().take(2) {
                    load[p.index()] = true;
                }
                (load, v * 1000)
            }
        }
    }
}

/// `⌈a / b⌉` for `b > 0`.
pub(crate) fn ceil_div(a: i128, b: i128) -> i128 {
    a.div_euclid(b) + i128::from(a.rem_euclid(b) > 0)
}

/// Integer square root, rounded to the nearest integer.
fn isqrt(x: i64) -> i64 {
    let mut r = (x as f64).sqrt() as i64;
    while r * r > x {
        r -= 1;
    }
    while (r + 1) * (r + 1) <= x {
        r += 1;
    }
    if x - r * r > r { r + 1 } else { r }
}

/// One charge point resolved for the solver, in index form.
#[derive(Debug, Clone)]
pub(crate) struct PrepCp {
    /// The node and all its ancestors (indices into `PrepTree::nodes`).
    pub path: Vec<usize>,
    /// Loaded node phases.
    pub load: [bool; 3],
    /// Power per amp of set-point (mW/A).
    pub mw_per_a: i64,
    /// Amps (true) or watts.
    pub amps: bool,
    /// Amps: effective minimum and maximum current (mA, whole steps) and the step.
    pub min_ma: i64,
    pub max_ma: i64,
    pub step_ma: i64,
    /// Watts: minimum and maximum power (W).
    pub min_w: i64,
    pub max_w: i64,
    /// Amps: the charge point's own minimum set-point (mA, a whole step), the least current
    /// that does not pause it; 0 on a watts point. A battery that takes less than it still
    /// charges under it ([`Self::limit_ma`]).
    pub floor_ma: i64,
}

impl PrepCp {
    /// Power (W) of a current set-point (mA).
    pub fn power_w(&self, ma: i64) -> i64 {
        (ma as i128 * self.mw_per_a as i128 / 1_000_000) as i64
    }

    /// Current (mA) on each loaded phase at power `p` (W): the set-point for an amps point
    /// (the step multiple whose power is `p`), `ceil(p·10⁶/mw_per_a)` for a watts point.
    pub fn current_ma(&self, p: i64) -> i64 {
        if p <= 0 {
            return 0;
        }
        let c = ceil_div(p as i128 * 1_000_000, self.mw_per_a as i128) as i64;
        if self.amps {
            ceil_div(c as i128, self.step_ma as i128) as i64 * self.step_ma
        } else {
            c
        }
    }

    /// The set-point (mA) that lets the point draw `p` (W): [`Self::current_ma`], within the
    /// minimum and the maximum current (a limit above what the point takes, e.g. an uncontrolled
    /// car's "no curtailment" at the EVSE's rating, is the maximum, not a current it cannot
    /// carry; one below the minimum, e.g. "no curtailment" of a car that takes less than the
    /// minimum, is the minimum, not a current that pauses it).
    pub fn set_point_ma(&self, p: i64) -> i64 {
        if p <= 0 {
            return 0;
        }
        self.current_ma(p)
            .max(self.min_ma)
            .min(self.max_ma)
            .max(self.floor_ma)
    }

    /// The current (mA) each loaded phase may carry with `p` (W) planned: on an amps point the
    /// set-point that carries `p`, the whole step at or above it and at least the minimum
    /// (model v6: a planned power between two set-points, or below the minimum, is a battery
    /// that takes less than its set-point, which every limit counts in full); on a watts point
    /// [`Self::current_ma`].
    pub fn limit_ma(&self, p: i64) -> i64 {
        if self.amps && p > 0 {
            self.current_ma(p).max(self.floor_ma)
        } else {
            self.current_ma(p)
        }
    }

    /// The power (W) the point may draw with `p` planned: the power of [`Self::limit_ma`] on an
    /// amps point (`p` itself for a whole set-point), `p` on a watts point.
    pub fn limit_w(&self, p: i64) -> i64 {
        if self.amps && p > 0 {
            self.power_w(self.limit_ma(p))
        } else {
            p
        }
    }

    /// Whether `p` (W) is a valid set-point: 0, or a whole step within [min, max].
    pub fn valid(&self, p: i64) -> bool {
        if p == 0 {
            return true;
        }
        if self.amps {
            let ma = self.current_ma(p);
            ma >= self.min_ma && ma <= self.max_ma && self.power_w(ma) == p
        } else {
            p >= self.min_w && p <= self.max_w
        }
    }

    /// The largest valid set-point with power at most `p_w` (W), as power (W).
    pub fn floor_power(&self, p_w: i64) -> i64 {
        if self.amps {
            // power(ma) ≤ p ⟺ ma·mw < (p+1)·10⁶.
            let ma = (((p_w.max(0) as i128 + 1) * 1_000_000 - 1) / self.mw_per_a as i128) as i64;
            let ma = (ma / self.step_ma * self.step_ma).min(self.max_ma);
            if ma < self.min_ma {
                0
            } else {
                self.power_w(ma)
            }
        } else {
            let p = p_w.min(self.max_w);
            if p < self.min_w.max(1) { 0 } else { p }
        }
    }

    /// The smallest valid set-point with power at least `p_w`, capped at the maximum (W).
    pub fn ceil_power(&self, p_w: i64) -> i64 {
        if p_w <= 0 {
            return 0;
        }
        if self.amps {
            let ma = ceil_div(p_w as i128 * 1_000_000, self.mw_per_a as i128) as i64;
            let ma = (ceil_div(ma as i128, self.step_ma as i128) as i64 * self.step_ma)
                .max(self.min_ma)
                .min(self.max_ma);
            self.power_w(ma)
        } else {
            p_w.max(self.min_w).min(self.max_w)
        }
    }

    /// The largest valid set-point at most `limit_w` whose current is at most `limit_ma` (W).
    pub fn fit(&self, limit_w: i64, limit_ma: i64) -> i64 {
        let by_ma = if self.amps {
            self.power_w(limit_ma.max(0) / self.step_ma * self.step_ma)
        } else {
            (limit_ma.max(0) as i128 * self.mw_per_a as i128 / 1_000_000) as i64
        };
        let mut p = self.floor_power(limit_w.min(by_ma));
        // Watts: the ceil in current_ma may still exceed limit_ma by one mA.
        while p > 0 && self.current_ma(p) > limit_ma {
            p = self.floor_power(p - 1);
        }
        p
    }
}

/// One node resolved for the solver.
#[derive(Debug, Clone)]
pub(crate) struct PrepNode {
    /// Id.
    pub id: String,
    /// Room for EV current per phase and step (mA): `max(0, limit − other + pv)`; `None` for an
    /// unlimited phase.
    pub phase_room_ma: [Option<Vec<i64>>; 3],
    /// Room for EV power per step (W): `max(0, limit_w − other + pv)`.
    pub room_w: Option<Vec<i64>>,
}

/// The tree resolved for one solve.
#[derive(Debug, Clone)]
pub(crate) struct PrepTree {
    /// Steps.
    pub h: usize,
    /// Nodes in input order.
    pub nodes: Vec<PrepNode>,
    /// Per prepared vehicle (id order), its charge point.
    pub cps: Vec<PrepCp>,
}

fn invalid(field: String, reason: impl Into<String>) -> ScheduleError {
    ScheduleError::Invalid {
        field,
        reason: reason.into(),
    }
}

/// A vehicle's own limits, for [`prepare_tree`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct VehicleLimits {
    /// `max_power_w`.
    pub max_w: i64,
    /// `min_power_w`.
    pub min_w: i64,
    /// Not opted in: below its charge point's minimum current it is given the minimum (it draws
    /// what it takes under it, and the plan counts it at the minimum), not nothing.
    pub uncontrolled: bool,
}

/// Validate `topology` and resolve it for the vehicles in `ids` order (their own limits in
/// `limits`).
pub(crate) fn prepare_tree(
    topology: &Topology,
    h: usize,
    ids: &[&str],
    limits: &[VehicleLimits],
) -> Result<PrepTree, ScheduleError> {
    let n = topology.nodes.len();
    let index = |id: &str| topology.nodes.iter().position(|x| x.id == id);
    let mut nodes = Vec::with_capacity(n);
    let mut parent = vec![None; n];
    for (k, node) in topology.nodes.iter().enumerate() {
        let f = |name: &str| format!("topology node {}: {name}", node.id);
        if index(&node.id) != Some(k) {
            return Err(invalid(f("id"), "appears twice"));
        }
        if let Some(p) = &node.parent {
            parent[k] = Some(index(p).ok_or_else(|| invalid(f("parent"), "unknown node"))?);
        }
        for (name, len) in [
            ("other_load_ma", node.other_load_ma.len()),
            ("pv_ma", node.pv_ma.len()),
            ("other_load_w", node.other_load_w.len()),
            ("pv_w", node.pv_w.len()),
        ] {
            if len != 0 && len != h {
                return Err(invalid(
                    f(name),
                    format!("{len} entries, expected 0 or {h}"),
                ));
            }
        }
        let negative = node.phase_limit_ma.iter().flatten().any(|x| *x < 0)
            || node.limit_w.is_some_and(|x| x < 0)
            || node
                .other_load_ma
                .iter()
                .chain(&node.pv_ma)
                .flatten()
                .any(|x| *x < 0)
            || node.other_load_w.iter().chain(&node.pv_w).any(|x| *x < 0);
        if negative {
            return Err(invalid(f("limits and loads"), "must not be negative"));
        }
        let at = |v: &Vec<[i64; 3]>, t: usize, ph: usize| v.get(t).map_or(0, |x| x[ph]);
        let phase_room_ma = std::array::from_fn(|ph| {
            node.phase_limit_ma[ph].map(|lim| {
                (0..h)
                    .map(|t| (lim - at(&node.other_load_ma, t, ph) + at(&node.pv_ma, t, ph)).max(0))
                    .collect()
            })
        });
        let room_w = node.limit_w.map(|lim| {
            (0..h)
                .map(|t| {
                    let o = node.other_load_w.get(t).copied().unwrap_or(0);
                    let pv = node.pv_w.get(t).copied().unwrap_or(0);
                    (lim - o + pv).max(0)
                })
                .collect()
        });
        nodes.push(PrepNode {
            id: node.id.clone(),
            phase_room_ma,
            room_w,
        });
    }
    // Paths to the root; a cycle shows as a path longer than the tree.
    let path_of = |k: usize| -> Result<Vec<usize>, ScheduleError> {
        let mut path = vec![k];
        let mut cur = k;
        while let Some(p) = parent[cur] {
            if path.len() > n {
                return Err(invalid(
                    format!("topology node {}: parent", topology.nodes[k].id),
                    "the parents form a cycle",
                ));
            }
            path.push(p);
            cur = p;
        }
        Ok(path)
    };
    let mut cps: Vec<Option<PrepCp>> = vec![None; ids.len()];
    for cp in &topology.charge_points {
        let f = |name: &str| format!("charge point of vehicle {}: {name}", cp.vehicle_id);
        let vi = ids
            .iter()
            .position(|id| *id == cp.vehicle_id)
            .ok_or_else(|| invalid(f("vehicle_id"), "no such vehicle in the group"))?;
        if cps[vi].is_some() {
            return Err(invalid(f("vehicle_id"), "appears twice"));
        }
        let node = index(&cp.node).ok_or_else(|| invalid(f("node"), "unknown node"))?;
        let mut seen = [false; 3];
        if cp.phases.is_empty() || cp.phases.len() > 3 {
            return Err(invalid(f("phases"), "one to three phases"));
        }
        for p in &cp.phases {
            if std::mem::replace(&mut seen[p.index()], true) {
                return Err(invalid(f("phases"), "a phase appears twice"));
            }
        }
        if cp.wiring == Wiring::LineToLine && cp.phases.len() < 2 {
            return Err(invalid(f("phases"), "line-to-line needs two phases"));
        }
        if !(50..=1000).contains(&cp.voltage_v) {
            return Err(invalid(f("voltage_v"), "must be within 50..=1000 V"));
        }
        if cp.car_phases.is_some_and(|k| !(1..=3).contains(&k)) {
            return Err(invalid(f("car_phases"), "must be 1, 2 or 3"));
        }
        let (load, mw_per_a) = cp.load_vector();
        let VehicleLimits {
            max_w: vmax_w,
            min_w: vmin_w,
            uncontrolled,
        } = limits[vi];
        let amps = cp.unit == RateUnit::Amps;
        let (mut min_ma, mut max_ma, step_ma) = (0, 0, cp.current_step_ma.max(1));
        let mut floor_ma = 0;
        if amps {
            if cp.current_step_ma < 10 {
                return Err(invalid(f("current_step_ma"), "must be at least 10 mA"));
            }
            if cp.min_current_ma < 0 || cp.max_current_ma < cp.min_current_ma {
                return Err(invalid(
                    f("min_current_ma"),
                    "need 0 ≤ min_current_ma ≤ max_current_ma",
                ));
            }
            // The vehicle's own limits (W) as currents, then whole steps.
            let veh_max_ma = ((vmax_w as i128 + 1) * 1_000_000 - 1) / mw_per_a as i128;
            max_ma = (cp.max_current_ma.min(veh_max_ma as i64)) / step_ma * step_ma;
            let veh_min_ma = ceil_div(vmin_w as i128 * 1_000_000, mw_per_a as i128) as i64;
            min_ma = ceil_div(
                cp.min_current_ma.max(veh_min_ma).max(step_ma) as i128,
                step_ma as i128,
            ) as i64
                * step_ma;
            // The charge point's own minimum, a whole step.
            let cp_min_ma =
                ceil_div(cp.min_current_ma.max(step_ma) as i128, step_ma as i128) as i64 * step_ma;
            if cp_min_ma <= cp.max_current_ma {
                floor_ma = cp_min_ma;
            }
            if min_ma > max_ma && uncontrolled && vmax_w > 0 && cp_min_ma <= cp.max_current_ma {
                // A car that did not opt in and takes less than the minimum current (a battery
                // near full) is given the minimum and draws what it takes under it; the plan
                // counts it at the minimum, never below its draw. Planned at 0 it was paused
                // and stopped short of full. (An opted-in car's plan is its energy, which a
                // count above its draw would overstate: one whose own maximum is below the
                // minimum stays at 0; one whose taper falls below it is planned at its draw
                // under the minimum, `amps::fill_to_taper`.)
                max_ma = cp_min_ma;
                min_ma = cp_min_ma;
            } else if min_ma > max_ma {
                // The car cannot charge here at all.
                max_ma = 0;
                min_ma = 0;
            }
        }
        cps[vi] = Some(PrepCp {
            path: path_of(node)?,
            load,
            mw_per_a,
            amps,
            min_ma,
            max_ma,
            step_ma,
            min_w: vmin_w,
            max_w: vmax_w,
            floor_ma,
        });
    }
    let cps = cps
        .into_iter()
        .enumerate()
        .map(|(vi, cp)| {
            cp.ok_or_else(|| {
                invalid(
                    format!("vehicle {}", ids[vi]),
                    "has no charge point in the topology",
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(PrepTree { h, nodes, cps })
}

/// The EV load of every node, phase and step, kept in step with a schedule (mA and W).
#[derive(Debug, Clone)]
pub(crate) struct Loads {
    h: usize,
    /// `[node·h + t][phase]` (mA).
    phase_ma: Vec<[i64; 3]>,
    /// `[node·h + t]` (W).
    w: Vec<i64>,
}

/// A node, phase (None for the W row) and step where the EV load exceeds the room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Excess {
    pub node: usize,
    pub phase: Option<usize>,
    pub t: usize,
    pub load: i64,
    pub room: i64,
}

impl Loads {
    /// Loads of `power` (rows in prepared vehicle order).
    pub fn new(tree: &PrepTree, power: &[Vec<i64>]) -> Self {
        let h = tree.h;
        let mut l = Self {
            h,
            phase_ma: vec![[0; 3]; tree.nodes.len() * h],
            w: vec![0; tree.nodes.len() * h],
        };
        for (i, row) in power.iter().enumerate() {
            for (t, &p) in row.iter().enumerate() {
                if p != 0 {
                    l.change(tree, i, t, 0, p);
                }
            }
        }
        l
    }

    /// Vehicle `i` goes from `old` to `new` W in step `t`.
    pub fn change(&mut self, tree: &PrepTree, i: usize, t: usize, old: i64, new: i64) {
        let cp = &tree.cps[i];
        let d_ma = cp.limit_ma(new) - cp.limit_ma(old);
        let d_w = cp.limit_w(new) - cp.limit_w(old);
        for &n in &cp.path {
            let k = n * self.h + t;
            for ph in 0..3 {
                if cp.load[ph] {
                    self.phase_ma[k][ph] += d_ma;
                }
            }
            self.w[k] += d_w;
        }
    }

    /// EV current through node `n`, phase `ph`, step `t` (mA).
    pub fn phase_ma(&self, n: usize, ph: usize, t: usize) -> i64 {
        self.phase_ma[n * self.h + t][ph]
    }

    /// EV power through node `n` in step `t` (W).
    pub fn power_w(&self, n: usize, t: usize) -> i64 {
        self.w[n * self.h + t]
    }

    /// How much more vehicle `i` may draw in step `t` on its path: (W on the `limit_w` rows,
    /// mA on its loaded phases); `i64::MAX / 4` where nothing limits.
    pub fn room(&self, tree: &PrepTree, i: usize, t: usize) -> (i64, i64) {
        let cp = &tree.cps[i];
        let (mut w, mut ma) = (i64::MAX / 4, i64::MAX / 4);
        for &n in &cp.path {
            let node = &tree.nodes[n];
            let k = n * self.h + t;
            if let Some(r) = &node.room_w {
                w = w.min(r[t] - self.w[k]);
            }
            for ph in 0..3 {
                if let (true, Some(r)) = (cp.load[ph], &node.phase_room_ma[ph]) {
                    ma = ma.min(r[t] - self.phase_ma[k][ph]);
                }
            }
        }
        (w, ma)
    }

    /// Every row over its room.
    pub fn excesses(&self, tree: &PrepTree) -> Vec<Excess> {
        let mut out = Vec::new();
        for (n, node) in tree.nodes.iter().enumerate() {
            for t in 0..self.h {
                let k = n * self.h + t;
                for ph in 0..3 {
                    if let Some(r) = &node.phase_room_ma[ph]
                        && self.phase_ma[k][ph] > r[t]
                    {
                        out.push(Excess {
                            node: n,
                            phase: Some(ph),
                            t,
                            load: self.phase_ma[k][ph],
                            room: r[t],
                        });
                    }
                }
                if let Some(r) = &node.room_w
                    && self.w[k] > r[t]
                {
                    out.push(Excess {
                        node: n,
                        phase: None,
                        t,
                        load: self.w[k],
                        room: r[t],
                    });
                }
            }
        }
        out
    }
}

/// One vehicle's set-points in the unit its charge point takes: what goes out as a charging
/// profile ([`crate::profile::ocpi_profile_for`], [`crate::profile::ocpp_profile_for`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetPoints {
    /// Vehicle id.
    pub vehicle_id: String,
    /// `A` (per-phase current) or `W`.
    pub unit: RateUnit,
    /// One value per step: mA when `unit` is `A` (a whole number of current steps, 0 = pause),
    /// W otherwise.
    pub values: Vec<i64>,
    /// The minimum when charging (mA or W), 0 when none.
    pub min: i64,
    /// Number of phases the car is planned to draw on (amps points), where known.
    pub phases: Option<u8>,
}

/// The EV load through one node of the tree, per step, beside its room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLoad {
    /// Node id.
    pub node: String,
    /// EV current per phase (mA) per step.
    pub phase_ma: Vec<[i64; 3]>,
    /// EV power (W) per step.
    pub power_w: Vec<i64>,
    /// Room for EV current per phase (mA) per step (limit less other load plus PV), `None` for
    /// an unlimited phase.
    pub phase_room_ma: Vec<[Option<i64>; 3]>,
    /// Room for EV power (W) per step, when the node has a W limit.
    pub room_w: Option<Vec<i64>>,
}

/// The set-points of `schedule` (rows in `schedule.vehicle_ids` order) in each charge point's
/// unit. Without a topology every row is in W.
pub fn set_points(
    inputs: &crate::GroupInputs,
    schedule: &crate::Schedule,
) -> Result<Vec<SetPoints>, ScheduleError> {
    let prep = crate::prep::prepare(inputs)?;
    Ok(prep
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let row = schedule
                .vehicle_ids
                .iter()
                .position(|id| *id == v.id)
                .map(|k| schedule.power_w[k].clone())
                .unwrap_or_else(|| vec![0; prep.h]);
            match prep.tree.as_ref().map(|t| &t.cps[i]) {
                Some(cp) if cp.amps => SetPoints {
                    vehicle_id: v.id.clone(),
                    unit: RateUnit::Amps,
                    values: row.iter().map(|&p| cp.set_point_ma(p)).collect(),
                    min: cp.min_ma,
                    phases: Some(cp.load.iter().filter(|x| **x).count() as u8),
                },
                _ => SetPoints {
                    vehicle_id: v.id.clone(),
                    unit: RateUnit::Watts,
                    values: row,
                    min: v.min_w,
                    phases: None,
                },
            }
        })
        .collect())
}

/// The EV load of `schedule` through every node of the inputs' tree (empty without one), in
/// the topology's node order.
pub fn node_loads(
    inputs: &crate::GroupInputs,
    schedule: &crate::Schedule,
) -> Result<Vec<NodeLoad>, ScheduleError> {
    let prep = crate::prep::prepare(inputs)?;
    let Some(tree) = &prep.tree else {
        return Ok(Vec::new());
    };
    let rows: Vec<Vec<i64>> = prep
        .vehicles
        .iter()
        .map(|v| {
            schedule
                .vehicle_ids
                .iter()
                .position(|id| *id == v.id)
                .map(|k| schedule.power_w[k].iter().map(|&p| p.max(0)).collect())
                .unwrap_or_else(|| vec![0; prep.h])
        })
        .collect();
    let loads = Loads::new(tree, &rows);
    Ok(tree
        .nodes
        .iter()
        .enumerate()
        .map(|(n, node)| NodeLoad {
            node: node.id.clone(),
            phase_ma: (0..prep.h)
                .map(|t| std::array::from_fn(|ph| loads.phase_ma(n, ph, t)))
                .collect(),
            power_w: (0..prep.h).map(|t| loads.power_w(n, t)).collect(),
            phase_room_ma: (0..prep.h)
                .map(|t| std::array::from_fn(|ph| node.phase_room_ma[ph].as_ref().map(|r| r[t])))
                .collect(),
            room_w: node.room_w.clone(),
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_w: i64, min_w: i64, uncontrolled: bool) -> VehicleLimits {
        VehicleLimits {
            max_w,
            min_w,
            uncontrolled,
        }
    }

    fn cp(phases: Vec<Phase>, wiring: Wiring, v: u32, car: Option<u8>) -> ChargePoint {
        ChargePoint {
            vehicle_id: "a".into(),
            node: "n".into(),
            phases,
            wiring,
            voltage_v: v,
            car_phases: car,
            unit: RateUnit::Amps,
            min_current_ma: 6000,
            max_current_ma: 32000,
            current_step_ma: 1000,
        }
    }

    #[test]
    fn load_vectors_cover_rotation_single_phase_and_line_to_line() {
        use Phase::*;
        let rotated = cp(vec![L2, L3, L1], Wiring::LineToNeutral, 230, Some(1));
        assert_eq!(rotated.load_vector(), ([false, true, false], 230_000));
        let unknown = cp(vec![L2, L3, L1], Wiring::LineToNeutral, 230, None);
        assert_eq!(unknown.load_vector(), ([true, true, true], 690_000));
        let ll = cp(vec![L3, L1], Wiring::LineToLine, 208, None);
        assert_eq!(ll.load_vector(), ([true, false, true], 208_000));
        let ll3 = cp(vec![L1, L2, L3], Wiring::LineToLine, 208, Some(3));
        assert_eq!(ll3.load_vector(), ([true, true, true], 360_267));
    }

    #[test]
    fn set_points_are_whole_steps_from_the_minimum() {
        let t = Topology {
            nodes: vec![Node {
                id: "n".into(),
                parent: None,
                phase_limit_ma: [Some(20_000), None, None],
                limit_w: None,
                other_load_ma: vec![],
                pv_ma: vec![],
                other_load_w: vec![],
                pv_w: vec![],
            }],
            charge_points: vec![cp(vec![Phase::L1], Wiring::LineToNeutral, 230, Some(1))],
        };
        let tree = prepare_tree(&t, 1, &["a"], &[limits(7_400, 0, false)]).unwrap();
        let c = &tree.cps[0];
        assert_eq!((c.min_ma, c.max_ma), (6000, 32000));
        assert_eq!(c.floor_power(1_379), 0);
        assert_eq!(c.floor_power(1_380), 1_380);
        assert_eq!(c.floor_power(1_609), 1_380);
        assert_eq!(c.floor_power(1_610), 1_610);
        assert_eq!(c.ceil_power(1), 1_380);
        assert_eq!(c.ceil_power(1_381), 1_610);
        assert!(c.valid(2_300) && !c.valid(2_301) && !c.valid(230));
        assert_eq!(c.current_ma(2_300), 10_000);
        assert_eq!(c.set_point_ma(2_300), 10_000);
        // 11.04 kW on one phase would be 48 A: the set-point is the point's 32 A.
        assert_eq!(c.set_point_ma(11_040), 32_000);
        assert_eq!(c.fit(i64::MAX, 9_999), 1_840 + 230);
        let mut loads = Loads::new(&tree, &[vec![4_600]]);
        assert_eq!(loads.phase_ma(0, 0, 0), 20_000);
        assert!(loads.excesses(&tree).is_empty());
        loads.change(&tree, 0, 0, 4_600, 4_830);
        assert_eq!(loads.excesses(&tree).len(), 1);
    }

    #[test]
    fn a_car_not_opted_in_taking_less_than_the_minimum_current_is_given_the_minimum() {
        let node = Node {
            id: "n".into(),
            parent: None,
            phase_limit_ma: [Some(20_000), Some(20_000), Some(20_000)],
            limit_w: None,
            other_load_ma: vec![],
            pv_ma: vec![],
            other_load_w: vec![],
            pv_w: vec![],
        };
        let three = cp(
            vec![Phase::L1, Phase::L2, Phase::L3],
            Wiring::LineToNeutral,
            230,
            None,
        );
        let t = Topology {
            nodes: vec![node],
            charge_points: vec![three],
        };
        // A car that did not opt in, its battery near full, seen drawing 3.4 kW on three phases
        // (4.9 A each) and held at 3.9 kW: the 6 A minimum (4.14 kW), not nothing.
        let tree = prepare_tree(&t, 1, &["a"], &[limits(3_858, 3_858, true)]).unwrap();
        let c = &tree.cps[0];
        assert_eq!((c.min_ma, c.max_ma), (6_000, 6_000));
        assert!(c.valid(4_140) && !c.valid(3_858));
        assert_eq!(c.floor_power(3_858), 0);
        assert_eq!(c.ceil_power(1), 4_140);
        assert_eq!(c.set_point_ma(4_140), 6_000);
        // Its "no curtailment" at its own 3.9 kW is the minimum, not 6 A less a step.
        assert_eq!(c.set_point_ma(3_858), 6_000);
        // An opted-in car's plan is its energy: below the minimum, nothing.
        let tree = prepare_tree(&t, 1, &["a"], &[limits(3_858, 3_858, false)]).unwrap();
        assert_eq!((tree.cps[0].min_ma, tree.cps[0].max_ma), (0, 0));
        // A car that takes nothing is given nothing.
        let tree = prepare_tree(&t, 1, &["a"], &[limits(0, 0, true)]).unwrap();
        assert_eq!((tree.cps[0].min_ma, tree.cps[0].max_ma), (0, 0));
        // The minimum is the charge point's own.
        let mut eight = t.clone();
        eight.charge_points[0].min_current_ma = 8_000;
        let tree = prepare_tree(&eight, 1, &["a"], &[limits(3_000, 3_000, true)]).unwrap();
        assert_eq!((tree.cps[0].min_ma, tree.cps[0].max_ma), (8_000, 8_000));
    }
}
