//! Canonical encodings and keccak-256 hashes of inputs, schedules and the algorithm.
//!
//! All integers are big-endian, fixed width, signed values in two's complement: exactly what
//! Solidity's `abi.encodePacked` produces for `uint32`/`uint64`/`int64`/`uint16`/`uint8`, so a
//! contract (or any independent verifier) can rebuild the bytes and compare hashes. Strings are
//! a `uint32` byte length followed by their UTF-8 bytes. Vehicles are sorted by id (byte order).
//!
//! ## Inputs (`canonical_inputs`, hashed by `inputs_hash`)
//! ```text
//! "evflex.inputs.v1"                      16 bytes ASCII tag
//! group_id u64 | start_timestep u64 | time_step_s u32 | horizon u32
//! capacity_w[horizon]              int64 each
//! other_load_w[horizon]            int64 each
//! pv_w[horizon]                    int64 each
//! price_micro_eur_per_kwh[horizon] int64 each
//! battery: u8 0 (none) | u8 1, capacity_wh i64, energy_wh i64, max_charge_w i64,
//!          max_discharge_w i64, efficiency_permille u16
//! vehicle count u32, then per vehicle (sorted by id):
//!   id (u32 length + UTF-8) | arrival u32 | departure u32 | max_power_w i64 | min_power_w i64 |
//!   energy_requested_wh i64 | battery_capacity_wh (u8 0 | u8 1, i64) |
//!   energy_on_arrival_wh (u8 0 | u8 1, i64) | opted_in u8 | accepted u8 | efficiency_permille u16
//! ```
//!
//! A group with a [`crate::Topology`] starts with the tag `"evflex.inputs.v2"` instead (same
//! length) and appends, after the vehicles (a group without one keeps the v1 bytes exactly):
//! ```text
//! node count u32, then per node (sorted by id):
//!   id (str) | parent (u8 0 | u8 1, str) | phase_limit_ma × 3 (u8 0 | u8 1, i64) |
//!   limit_w (u8 0 | u8 1, i64) |
//!   other_load_ma (u32 steps, then per step 3 × i64) | pv_ma (same) |
//!   other_load_w (u32 steps, then i64 each) | pv_w (same)
//! charge point count u32, then per charge point (sorted by vehicle id):
//!   vehicle_id (str) | node (str) | phase count u8, phases u8 each (1 = L1, 2 = L2, 3 = L3) |
//!   wiring u8 (0 line-to-neutral, 1 line-to-line) | voltage_v u32 | car_phases u8 (0 unknown) |
//!   unit u8 (0 A, 1 W) | min_current_ma i64 | max_current_ma i64 | current_step_ma i64
//! ```
//!
//! A group in which some vehicle has a taper knee ([`crate::Vehicle::taper_knee_permille`])
//! starts with `"evflex.inputs.v3"` (no topology) or `"evflex.inputs.v4"` (with one) instead, and
//! every vehicle record ends with `taper_knee_permille (u8 0 | u8 1, u16)`; otherwise the layout is
//! that of v1 or v2 respectively. A group without a knee keeps its v1 or v2 bytes exactly.
//!
//! A group in which some vehicle wants more than its request
//! ([`crate::Vehicle::energy_wanted_wh`] above `energy_requested_wh`) starts with
//! `"evflex.inputs.v5"` (no topology) or `"evflex.inputs.v6"` (with one): the v3/v4 layout, every
//! vehicle record ending with its optional knee and then its optional wanted energy
//! `(u8 0 | u8 1, i64)` (0 where it wants no more than its request). A group without one keeps
//! its v1–v4 bytes exactly.
//!
//! ## Schedule (`schedule_hash`)
//! Covers the vehicle ids and whole-watt powers (and the battery), nothing else (no timings,
//! no figures derived from them):
//! ```text
//! "evflex.schedule.v1"                    18 bytes ASCII tag
//! vehicle count u32 | horizon u32
//! per vehicle in row order (sorted ids): id (u32 length + UTF-8) | power_w[horizon] int64 each
//! battery_w[horizon] int64 each
//! ```
//!
//! ## Solve parameters (`params_hash`)
//! ```text
//! "evflex.algorithm.v1" | MODEL_DEFINITION (u32 length + UTF-8) | SOLVER (u32 length + UTF-8) |
//! mode u8 (0 LP, 1 MILP) | time_limit_ms u64 | mip_gap f64 | peak_weight f64 | early_weight f64
//! ```
//! where f64 are their IEEE-754 bit patterns as u64 big-endian.

use sha3::{Digest, Keccak256};

use crate::{GroupInputs, Mode, RateUnit, Schedule, SolveOptions, Topology, Wiring};

/// The model definition covered by [`params_hash`]: a precise statement of what the
/// optimiser computes. Any change to the model must change this text.
pub const MODEL_DEFINITION: &str = "evflex-schedule model v6. Per group, steps t of dt seconds. \
Vehicles sorted by id. Uncontrolled (not opted in): fixed as-fast-as-possible profile, first come \
(arrival, id) first served, capped by max(capacity, other-pv)-other+pv minus earlier fixed loads \
minus m[t], what the accepted vehicles must take in step t (an accepted guarantee outranks \
uncontrolled charging): steps in time order, m[t] = F - maxflow(step t closed), F = maxflow of the \
accepted hard energy in whole W-steps ceil(hard/(dt*eff)) over steps (headroom less fixed loads \
already placed) and windows (vehicle max), plus stored battery energy as discharge only. \
Flexible vehicle i: p[i,t] in [0, max] only for t in [arrival, min(departure,H)); MILP: p=0 or \
p>=min. Energy: sum p*dt*eff + s_soft + s_hard = hard + soft, hard = accepted part needed within \
the horizon, soft = rest up to min(request clamped to battery, window maximum). Grid g[t] in \
[0, max(capacity, other-pv)], export e[t] in [0, pv], g-e = sum p + fixed + bc - bd + other - pv; \
battery soc[t+1] = soc[t] + (eff*bc - bd)*dt in [0, cap]. Objective (lexicographic): 1) total \
accepted shortfall (only if the hard problem is infeasible), 2) sum price*g*dt + peak_weight*max g + \
sum early_weight*dt*(t+1)*(1+(n-1-rank)/(10n))*p + w_soft*sum s_soft, w_soft = 2*(max|price| + \
peak_weight/dt + 2*early_weight*(H+1))/eta_min^2 + 1. Quantisation: floor to W, capacity repair \
(battery, then reverse priority), rounding loss restored (LP-used steps first, cheapest first). \
Energy tolerance 1 Wh. Fallback: previous shifted one step, repaired, then EDF fill. \
Tree of limits (optional): per node n, phase f, step t: sum over charge points under n loading f \
of current <= max(0, limit - other + pv) (mA); per node with a W limit: sum of EV power <= \
max(0, limit_w - other_w + pv_w). Charge point load vector: line-to-neutral, car on k of its \
wired phases (k unknown = all): the first k wired node phases (rotation), P = k*V*I; \
line-to-line: both lines, P = V*I, or three lines, P = round(sqrt(3)*V)*I; P in W = \
floor(I[mA]*mW_per_A/1e6). Amps points: I = 0 or a whole current step in [max(min, vehicle min), \
min(max, vehicle max)]; an uncontrolled vehicle whose max is above 0 and below the point's min: I = 0 \
or the min (it draws what it takes under it); a flexible vehicle with a taper and no minimum above the point's, in a step where its \
taper row's bound B (at the energy the step ends with) is below the power of the set-point carrying P \
(the whole step at or above P, at least the min): P in (0, B] under that set-point, energy counted \
at P, every limit (phases, nodes, capacity) at the set-point; filled last where rounding left it at \
the whole step below B (priority order, earliest step first, to the LP energy, in the room left); watts points: 0 or [min, max] W, current ceil(P*1e6/mW_per_A) mA. \
Uncontrolled rows also fit the tree (first come first served, whole set-points), after each \
accepted vehicle (by id) reserves its hard energy on its path as late as possible in its window \
(whole set-points within the tree and earlier reservations; released before the model). LP mode: LP \
relaxation with the tree rows, floor to set-points, repair (group row: battery then reverse \
priority; tree rows: reverse priority), then top-up per flexible vehicle in priority order to \
the LP energy (LP-used steps cheapest first, then the rest) with whole set-points within every \
limit. MILP mode: integer current steps, binary on/off, energy in [target, target + one minimum \
step], then the same repair and top-up.";

/// The solver and modelling layer covered by [`params_hash`].
pub const SOLVER: &str = "HiGHS 1.16.0 (highs-sys 1.16.0, highs 2.4.0) via good_lp 1.15; threads=1";

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_opt(out: &mut Vec<u8>, x: Option<i64>) {
    match x {
        Some(x) => {
            out.push(1);
            out.extend_from_slice(&x.to_be_bytes());
        }
        None => out.push(0),
    }
}

/// Whether a vehicle wants more than its request ([`crate::Vehicle::energy_wanted_wh`]): only
/// then does the field change the plan, and only then is it encoded.
fn wants_more(v: &crate::Vehicle) -> bool {
    v.energy_wanted_wh
        .is_some_and(|w| w > v.energy_requested_wh)
}

/// The canonical byte encoding of `inputs` (layout in the module documentation).
pub fn canonical_inputs(inputs: &GroupInputs) -> Vec<u8> {
    let h = inputs.horizon;
    let mut out = Vec::with_capacity(64 + 32 * h + 96 * inputs.vehicles.len());
    let knees = inputs
        .vehicles
        .iter()
        .any(|v| v.taper_knee_permille.is_some());
    let wanted = inputs.vehicles.iter().any(wants_more);
    out.extend_from_slice(match (inputs.topology.is_some(), knees || wanted, wanted) {
        (false, false, _) => b"evflex.inputs.v1",
        (true, false, _) => b"evflex.inputs.v2",
        (false, true, false) => b"evflex.inputs.v3",
        (true, true, false) => b"evflex.inputs.v4",
        (false, true, true) => b"evflex.inputs.v5",
        (true, true, true) => b"evflex.inputs.v6",
    });
    let knees = knees || wanted;
    out.extend_from_slice(&inputs.group_id.to_be_bytes());
    out.extend_from_slice(&inputs.start_timestep.to_be_bytes());
    out.extend_from_slice(&inputs.time_step_s.to_be_bytes());
    out.extend_from_slice(&(h as u32).to_be_bytes());
    for series in [
        &inputs.capacity_w,
        &inputs.other_load_w,
        &inputs.pv_w,
        &inputs.price_micro_eur_per_kwh,
    ] {
        for x in series {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
    match &inputs.battery {
        Some(b) => {
            out.push(1);
            for x in [
                b.capacity_wh,
                b.energy_wh,
                b.max_charge_w,
                b.max_discharge_w,
            ] {
                out.extend_from_slice(&x.to_be_bytes());
            }
            out.extend_from_slice(&b.efficiency_permille.to_be_bytes());
        }
        None => out.push(0),
    }
    let mut vehicles: Vec<_> = inputs.vehicles.iter().collect();
    vehicles.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    out.extend_from_slice(&(vehicles.len() as u32).to_be_bytes());
    for v in vehicles {
        put_str(&mut out, &v.id);
        out.extend_from_slice(&(v.arrival as u32).to_be_bytes());
        out.extend_from_slice(&(v.departure as u32).to_be_bytes());
        for x in [v.max_power_w, v.min_power_w, v.energy_requested_wh] {
            out.extend_from_slice(&x.to_be_bytes());
        }
        put_opt(&mut out, v.battery_capacity_wh);
        put_opt(&mut out, v.energy_on_arrival_wh);
        out.push(u8::from(v.class.opted_in()));
        out.push(u8::from(v.class.accepted()));
        out.extend_from_slice(&v.efficiency_permille.to_be_bytes());
        if knees {
            match v.taper_knee_permille {
                Some(k) => {
                    out.push(1);
                    out.extend_from_slice(&k.to_be_bytes());
                }
                None => out.push(0),
            }
        }
        if wanted {
            put_opt(&mut out, v.energy_wanted_wh.filter(|_| wants_more(v)));
        }
    }
    if let Some(top) = &inputs.topology {
        put_topology(&mut out, top);
    }
    out
}

fn put_series(out: &mut Vec<u8>, xs: &[i64]) {
    out.extend_from_slice(&(xs.len() as u32).to_be_bytes());
    for x in xs {
        out.extend_from_slice(&x.to_be_bytes());
    }
}

fn put_phase_series(out: &mut Vec<u8>, xs: &[[i64; 3]]) {
    out.extend_from_slice(&(xs.len() as u32).to_be_bytes());
    for x in xs.iter().flatten() {
        out.extend_from_slice(&x.to_be_bytes());
    }
}

fn put_topology(out: &mut Vec<u8>, top: &Topology) {
    let mut nodes: Vec<_> = top.nodes.iter().collect();
    nodes.sort_by(|a, b| a.id.as_bytes().cmp(b.id.as_bytes()));
    out.extend_from_slice(&(nodes.len() as u32).to_be_bytes());
    for n in nodes {
        put_str(out, &n.id);
        match &n.parent {
            Some(p) => {
                out.push(1);
                put_str(out, p);
            }
            None => out.push(0),
        }
        for x in n.phase_limit_ma {
            put_opt(out, x);
        }
        put_opt(out, n.limit_w);
        put_phase_series(out, &n.other_load_ma);
        put_phase_series(out, &n.pv_ma);
        put_series(out, &n.other_load_w);
        put_series(out, &n.pv_w);
    }
    let mut cps: Vec<_> = top.charge_points.iter().collect();
    cps.sort_by(|a, b| a.vehicle_id.as_bytes().cmp(b.vehicle_id.as_bytes()));
    out.extend_from_slice(&(cps.len() as u32).to_be_bytes());
    for c in cps {
        put_str(out, &c.vehicle_id);
        put_str(out, &c.node);
        out.push(c.phases.len() as u8);
        for p in &c.phases {
            out.push(p.index() as u8 + 1);
        }
        out.push(match c.wiring {
            Wiring::LineToNeutral => 0,
            Wiring::LineToLine => 1,
        });
        out.extend_from_slice(&c.voltage_v.to_be_bytes());
        out.push(c.car_phases.unwrap_or(0));
        out.push(match c.unit {
            RateUnit::Amps => 0,
            RateUnit::Watts => 1,
        });
        for x in [c.min_current_ma, c.max_current_ma, c.current_step_ma] {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
}

/// keccak-256 of [`canonical_inputs`].
pub fn inputs_hash(inputs: &GroupInputs) -> [u8; 32] {
    Keccak256::digest(canonical_inputs(inputs)).into()
}

/// The canonical byte encoding of a schedule's ids and whole-watt powers (module docs).
pub fn canonical_schedule(schedule: &Schedule) -> Vec<u8> {
    let h = schedule.battery_w.len();
    let mut out = Vec::with_capacity(32 + (schedule.power_w.len() + 1) * (8 * h + 16));
    out.extend_from_slice(b"evflex.schedule.v1");
    out.extend_from_slice(&(schedule.vehicle_ids.len() as u32).to_be_bytes());
    out.extend_from_slice(&(h as u32).to_be_bytes());
    for (id, row) in schedule.vehicle_ids.iter().zip(&schedule.power_w) {
        put_str(&mut out, id);
        for x in row {
            out.extend_from_slice(&x.to_be_bytes());
        }
    }
    for x in &schedule.battery_w {
        out.extend_from_slice(&x.to_be_bytes());
    }
    out
}

/// keccak-256 of [`canonical_schedule`].
pub fn schedule_hash(schedule: &Schedule) -> [u8; 32] {
    Keccak256::digest(canonical_schedule(schedule)).into()
}

/// keccak-256 of the model definition, the solver version and the solve parameters: the
/// *params hash* every stored schedule carries. The on-chain *algorithm version* is derived from
/// it (glossary in `DESIGN.md`).
pub fn params_hash(opts: &SolveOptions) -> [u8; 32] {
    let mut out = Vec::with_capacity(MODEL_DEFINITION.len() + SOLVER.len() + 64);
    out.extend_from_slice(b"evflex.algorithm.v1");
    put_str(&mut out, MODEL_DEFINITION);
    put_str(&mut out, SOLVER);
    out.push(match opts.mode {
        Mode::Lp => 0,
        Mode::Milp => 1,
    });
    out.extend_from_slice(&opts.time_limit_ms.to_be_bytes());
    for x in [
        opts.mip_gap,
        opts.peak_weight_eur_per_kw,
        opts.early_weight_eur_per_kwh_step,
    ] {
        out.extend_from_slice(&x.to_bits().to_be_bytes());
    }
    Keccak256::digest(out).into()
}

/// Lower-case hex with a `0x` prefix, as Ethereum tooling prints hashes.
pub fn to_hex(hash: &[u8; 32]) -> String {
    let mut s = String::with_capacity(66);
    s.push_str("0x");
    for b in hash {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::{GroupInputs, Vehicle, VehicleClass};

    fn group(knee: Option<u16>) -> GroupInputs {
        let ev = |id: &str, knee| Vehicle {
            id: id.into(),
            arrival: 0,
            departure: 4,
            max_power_w: 11_000,
            min_power_w: 0,
            energy_requested_wh: 5_000,
            battery_capacity_wh: Some(60_000),
            energy_on_arrival_wh: Some(54_000),
            class: VehicleClass::Guaranteed,
            efficiency_permille: 1000,
            taper_knee_permille: knee,
            energy_wanted_wh: None,
        };
        GroupInputs {
            group_id: 1,
            start_timestep: 0,
            time_step_s: 900,
            horizon: 4,
            capacity_w: vec![22_000; 4],
            other_load_w: vec![0; 4],
            pv_w: vec![0; 4],
            price_micro_eur_per_kwh: vec![0; 4],
            battery: None,
            vehicles: vec![ev("a", knee), ev("b", None)],
            topology: None,
        }
    }

    /// A knee is covered by the canonical inputs (tag v3, one optional u16 per vehicle); without
    /// one the bytes, the hash and the JSON are those of before the field existed.
    #[test]
    fn the_taper_knee_is_covered_only_when_present() {
        let without = group(None);
        let bytes = canonical_inputs(&without);
        assert!(bytes.starts_with(b"evflex.inputs.v1"));
        // The v1 layout: tag, header, 4 series, no battery, count, two vehicle records of
        // id (4 + 1) + 2 × u32 + 3 × i64 + 2 × (1 + 8) + 2 × u8 + u16 bytes.
        let record = 5 + 8 + 24 + 18 + 2 + 2;
        assert_eq!(bytes.len(), 16 + 24 + 4 * 4 * 8 + 1 + 4 + 2 * record);
        let json = serde_json::to_value(&without).unwrap();
        assert!(json["vehicles"][0].get("taper_knee_permille").is_none());
        let back: GroupInputs = serde_json::from_value(json).unwrap();
        assert_eq!(back, without);

        let with = group(Some(800));
        let knee_bytes = canonical_inputs(&with);
        assert!(knee_bytes.starts_with(b"evflex.inputs.v3"));
        // Each record gains its optional knee: a = (1, 800), b = (0).
        assert_eq!(knee_bytes.len(), bytes.len() + 3 + 1);
        assert_ne!(inputs_hash(&with), inputs_hash(&without));
        assert_ne!(inputs_hash(&with), inputs_hash(&group(Some(801))));
        let json = serde_json::to_value(&with).unwrap();
        assert_eq!(json["vehicles"][0]["taper_knee_permille"], 800);
        assert!(json["vehicles"][1].get("taper_knee_permille").is_none());
        let back: GroupInputs = serde_json::from_value(json).unwrap();
        assert_eq!(back, with);
        let mut reordered = with.clone();
        reordered.vehicles.reverse();
        assert_eq!(inputs_hash(&with), inputs_hash(&reordered));
    }

    /// Energy wanted beyond a request is covered (tag v5) only when some vehicle wants more
    /// than its request; otherwise the bytes are those of v1/v3.
    #[test]
    fn energy_wanted_is_covered_only_when_it_asks_for_more() {
        let mut g = group(None);
        let base = canonical_inputs(&g);
        g.vehicles[0].energy_wanted_wh = Some(g.vehicles[0].energy_requested_wh);
        assert_eq!(
            canonical_inputs(&g),
            base,
            "wanting the request is the request"
        );
        g.vehicles[0].energy_wanted_wh = Some(g.vehicles[0].energy_requested_wh + 1_000);
        let bytes = canonical_inputs(&g);
        assert!(bytes.starts_with(b"evflex.inputs.v5"));
        // Each record gains its optional knee and its optional wanted energy: a = (0)(1, i64),
        // b = (0)(0).
        assert_eq!(bytes.len(), base.len() + 1 + 9 + 1 + 1);
        assert_ne!(inputs_hash(&g), inputs_hash(&group(None)));
        let json = serde_json::to_value(&g).unwrap();
        let back: GroupInputs = serde_json::from_value(json).unwrap();
        assert_eq!(back, g);
        assert!(
            serde_json::to_value(group(None)).unwrap()["vehicles"][0]
                .get("energy_wanted_wh")
                .is_none()
        );
        let mut knee = group(Some(800));
        knee.vehicles[1].energy_wanted_wh = Some(knee.vehicles[1].energy_requested_wh + 1);
        assert!(canonical_inputs(&knee).starts_with(b"evflex.inputs.v5"));
    }

    #[test]
    fn keccak_of_empty_is_the_ethereum_constant() {
        let h: [u8; 32] = Keccak256::digest(b"").into();
        assert_eq!(
            to_hex(&h),
            "0xc5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"
        );
    }
}
