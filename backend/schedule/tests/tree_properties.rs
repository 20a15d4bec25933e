//! Property tests of the electrical model (proptest, fixed seed: the suite is deterministic):
//! random trees of per-phase limits with rotated, single- and three-phase, line-to-neutral and
//! line-to-line charge points taking amps (1 A or 0.1 A steps) or watts.
//!
//! - In every step, for every node and phase, the EV current never exceeds the room (limit less
//!   other load), recomputed here from the set-points with this file's own load vectors.
//! - Every set-point is 0 or a whole step within [min, max].
//! - The checker accepts the solver's schedules (and the fallback's) and rejects any schedule
//!   that breaks either rule.

mod common;

use common::group;
use evflex_schedule::{
    ChargePoint, GroupInputs, Mode, Node, Phase, RateUnit, SetPoints, SolveOptions, SolveStatus,
    Topology, Vehicle, VehicleClass, Violation, Wiring, check, set_points, solve,
};
use proptest::prelude::*;

const PHASES: [Phase; 3] = [Phase::L1, Phase::L2, Phase::L3];

fn limit() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![
        3 => (0i64..80).prop_map(|a| Some(a * 1000 + 500)),
        1 => Just(None),
    ]
}

prop_compose! {
    fn cp_strategy()(
        node in 0usize..3,
        rot in 0usize..3,
        kind in 0u8..6,
        car in prop::option::of(1u8..=3),
        max_a in prop::sample::select(vec![10i64, 16, 32]),
        tenth in any::<bool>(),
        watts in prop::bool::weighted(0.15),
    ) -> (usize, ChargePoint) {
        let rotated: Vec<Phase> = (0..3).map(|k| PHASES[(rot + k) % 3]).collect();
        let (phases, wiring, voltage_v) = match kind {
            0 => (vec![PHASES[rot]], Wiring::LineToNeutral, 230),
            1..=3 => (rotated, Wiring::LineToNeutral, 230),
            4 => (rotated[..2].to_vec(), Wiring::LineToLine, 208),
            _ => (rotated, Wiring::LineToLine, 208),
        };
        (node, ChargePoint {
            vehicle_id: String::new(),
            node: String::new(),
            phases,
            wiring,
            voltage_v,
            car_phases: car,
            unit: if watts { RateUnit::Watts } else { RateUnit::Amps },
            min_current_ma: 6_000,
            max_current_ma: max_a * 1000,
            current_step_ma: if tenth { 100 } else { 1000 },
        })
    }
}

prop_compose! {
    fn tree_group()(h in 2usize..7)(
        h in Just(h),
        root in [limit(), limit(), limit()],
        cabs in prop::collection::vec([limit(), limit(), limit()], 2),
        root_w in prop::option::of(0i64..40_000),
        other in prop::collection::vec([0i64..8_000, 0i64..8_000, 0i64..8_000], h),
        cap in 0i64..60_000,
        vehicles in prop::collection::vec((0usize..3, 1usize..8, 0i64..30_000, 0u8..6, cp_strategy()), 1..8),
    ) -> GroupInputs {
        let mut g = group(cap, vec![100_000; h], Vec::new());
        let node = |id: &str, parent: Option<&str>, lim: [Option<i64>; 3]| Node {
            id: id.into(),
            parent: parent.map(Into::into),
            phase_limit_ma: lim,
            limit_w: None,
            other_load_ma: Vec::new(),
            pv_ma: Vec::new(),
            other_load_w: Vec::new(),
            pv_w: Vec::new(),
        };
        // The root always limits L1, so every group has at least one phase row.
        let mut r = node("root", None, [Some(root[0].unwrap_or(40_000)), root[1], root[2]]);
        r.limit_w = root_w;
        r.other_load_ma = other;
        let mut nodes = vec![r];
        nodes.push(node("cab0", Some("root"), cabs[0]));
        nodes.push(node("cab1", Some("cab0"), cabs[1]));
        let mut cps = Vec::new();
        for (k, (a, len, e, kind, (n, mut cp))) in vehicles.into_iter().enumerate() {
            let id = format!("ev{k}");
            let arrival = a.min(h - 1);
            g.vehicles.push(Vehicle {
                id: id.clone(),
                arrival,
                departure: arrival + len,
                max_power_w: 22_000,
                min_power_w: if cp.unit == RateUnit::Watts { 1_500 } else { 0 },
                energy_requested_wh: e,
                battery_capacity_wh: None,
                energy_on_arrival_wh: None,
                class: VehicleClass::from_flags(kind != 0, kind >= 4),
                efficiency_permille: 950,
                taper_knee_permille: None,
                energy_wanted_wh: None,
            });
            cp.vehicle_id = id;
            cp.node = ["root", "cab0", "cab1"][n].into();
            cps.push(cp);
        }
        g.topology = Some(Topology { nodes, charge_points: cps });
        g
    }
}

/// This file's own load vector: loaded phases and mW per A (module docs of `topology`).
fn load_of(cp: &ChargePoint) -> ([bool; 3], i64) {
    let wired = cp.phases.len();
    let k = (cp.car_phases.map_or(wired, |k| k as usize)).min(wired);
    let mut load = [false; 3];
    let v = cp.voltage_v as i64;
    match cp.wiring {
        Wiring::LineToNeutral => {
            for p in &cp.phases[..k] {
                load[*p as usize] = true;
            }
            (load, k as i64 * v * 1000)
        }
        Wiring::LineToLine if k == 3 => {
            load = [true; 3];
            (load, (3f64.sqrt() * v as f64 * 1000.0).round() as i64)
        }
        Wiring::LineToLine => {
            for p in &cp.phases[..2] {
                load[*p as usize] = true;
            }
            (load, v * 1000)
        }
    }
}

/// Per node (topology order), per step, per phase: the EV current (mA) of `sp`.
fn phase_loads(g: &GroupInputs, sp: &[SetPoints], power: &[Vec<i64>]) -> Vec<Vec<[i64; 3]>> {
    let top = g.topology.as_ref().unwrap();
    let mut out = vec![vec![[0i64; 3]; g.horizon]; top.nodes.len()];
    for (row, (s, p)) in sp.iter().zip(power).enumerate() {
        let cp = top
            .charge_points
            .iter()
            .find(|c| c.vehicle_id == s.vehicle_id)
            .unwrap();
        let (load, mw) = load_of(cp);
        let mut n = top.nodes.iter().position(|x| x.id == cp.node);
        while let Some(k) = n {
            for t in 0..g.horizon {
                let ma = match s.unit {
                    RateUnit::Amps => s.values[t],
                    RateUnit::Watts => (p[t] as i128 * 1_000_000 + mw as i128 - 1) as i64 / mw,
                };
                for ph in 0..3 {
                    if load[ph] {
                        out[k][t][ph] += ma;
                    }
                }
            }
            n = top.nodes[k]
                .parent
                .as_ref()
                .and_then(|pid| top.nodes.iter().position(|x| &x.id == pid));
        }
        let _ = row;
    }
    out
}

fn room(node: &Node, t: usize, ph: usize) -> Option<i64> {
    node.phase_limit_ma[ph].map(|l| (l - node.other_load_ma.get(t).map_or(0, |o| o[ph])).max(0))
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0a3b_5e7d),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    #[test]
    fn limits_hold_and_set_points_are_whole_steps(g in tree_group(), milp in prop::bool::weighted(0.2)) {
        let opts = SolveOptions {
            mode: if milp { Mode::Milp } else { Mode::Lp },
            time_limit_ms: 20_000,
            ..SolveOptions::default()
        };
        let s = solve(&g, &opts, None).unwrap();
        prop_assert_ne!(s.status, SolveStatus::Fallback, "{:?}", s.fallback_reason);
        let sp = set_points(&g, &s).unwrap();
        let top = g.topology.as_ref().unwrap();

        // Every node, phase and step within its room.
        let loads = phase_loads(&g, &sp, &s.power_w);
        for (k, node) in top.nodes.iter().enumerate() {
            for t in 0..g.horizon {
                for (ph, &load) in loads[k][t].iter().enumerate() {
                    if let Some(r) = room(node, t, ph) {
                        prop_assert!(load <= r, "node {} step {t} L{}: {load} mA > {r} mA",
                            node.id, ph + 1);
                    }
                }
                if let Some(w) = node.limit_w {
                    // Every node here has its W limit at the root, which carries every vehicle.
                    let sum: i64 = s.power_w.iter().map(|r| r[t]).sum();
                    prop_assert!(sum <= w, "node {} step {t}: {sum} W > {w} W", node.id);
                }
            }
        }
        // Every set-point 0 or a whole step within [min, max].
        for (x, v) in sp.iter().zip(&s.vehicle_ids) {
            let cp = top.charge_points.iter().find(|c| &c.vehicle_id == v).unwrap();
            for &val in &x.values {
                match x.unit {
                    RateUnit::Amps => {
                        prop_assert_eq!(val % cp.current_step_ma, 0);
                        prop_assert!(val == 0 || (val >= cp.min_current_ma && val <= cp.max_current_ma), "{} mA", val);
                    }
                    RateUnit::Watts => prop_assert!(val == 0 || (1_500..=22_000).contains(&val), "{} W", val),
                }
            }
        }
        let report = check(&g, &s, &opts);
        prop_assert!(report.is_ok(), "{:?}", report.violations);
        // The fallback (no time to solve), from this schedule as the previous one shifted by a
        // step, keeps every limit and whole set-points too.
        let fb_opts = SolveOptions { time_limit_ms: 0, ..opts.clone() };
        let fb = solve(&g, &fb_opts, Some(&s)).unwrap();
        prop_assert_eq!(fb.status, SolveStatus::Fallback);
        let r = check(&g, &fb, &fb_opts);
        prop_assert!(r.is_ok(), "fallback: {:?}", r.violations);

        // The checker rejects a limit exceeded: one charge point raised until its node's
        // first limited phase is one step over its room.
        let charging = sp.iter().enumerate().find_map(|(row, x)| {
            let cp = top.charge_points.iter().find(|c| c.vehicle_id == x.vehicle_id)?;
            let (load, mw) = load_of(cp);
            let t = (0..g.horizon).find(|&t| {
                let veh = g.vehicles.iter().find(|v| v.id == x.vehicle_id).unwrap();
                t >= veh.arrival && t < veh.departure
            })?;
            (x.unit == RateUnit::Amps && load[0]).then_some((row, t, mw, cp.current_step_ma))
        });
        if let Some((row, t, mw, step)) = charging {
            // The root limits L1 always; every charge point hangs under it.
            let root = &top.nodes[0];
            let over = room(root, t, 0).unwrap() - loads[0][t][0] + step;
            let ma = (sp[row].values[t] + over + step - 1) / step * step;
            let mut bad = s.clone();
            bad.power_w[row][t] = (ma as i128 * mw as i128 / 1_000_000) as i64;
            let r = check(&g, &bad, &opts);
            prop_assert!(r.violations.iter().any(|v| matches!(v, Violation::NodeLimit { .. })), "{:?}", r.violations);
        }
        // The checker rejects a set-point that is not a whole step (or below the minimum).
        if let Some((row, t)) = sp.iter().enumerate().filter(|(_, x)| x.unit == RateUnit::Amps)
            .find_map(|(row, x)| x.values.iter().position(|&v| v > 0).map(|t| (row, t)))
        {
            let mut bad = s.clone();
            bad.power_w[row][t] -= 1;
            let r = check(&g, &bad, &opts);
            prop_assert!(r.violations.iter().any(|v| matches!(v, Violation::SetPoint { .. })), "{:?}", r.violations);
        }
        if let Some((row, t)) = sp.iter().enumerate().filter(|(_, x)| x.unit == RateUnit::Amps)
            .find_map(|(row, x)| {
                let veh = g.vehicles.iter().find(|v| v.id == x.vehicle_id).unwrap();
                (veh.arrival..veh.departure.min(g.horizon)).find(|&t| x.values[t] == 0).map(|t| (row, t))
            })
        {
            let cp = top.charge_points.iter().find(|c| c.vehicle_id == sp[row].vehicle_id).unwrap();
            let (_, mw) = load_of(cp);
            let mut bad = s.clone();
            // 5 A: a whole step, below the 6 A minimum.
            bad.power_w[row][t] = (5_000i128 * mw as i128 / 1_000_000) as i64;
            let r = check(&g, &bad, &opts);
            prop_assert!(r.violations.iter().any(|v| matches!(v, Violation::SetPoint { .. })), "{:?}", r.violations);
        }
    }
}
