//! Battery taper (`Vehicle::taper_knee_permille`): full power up to the knee, then linearly down
//! to 0 at full. Every plan keeps the curve at the energy each step ends with; the checker
//! verifies it; a guarantee the taper makes impossible is a shortfall, as any infeasible one.

mod common;

use common::{ev, group};
use evflex_schedule::{
    Admission, ChargePoint, GroupInputs, Mode, Node, Phase, RateUnit, Schedule, SolveOptions,
    SolveStatus, Topology, Vehicle, VehicleClass, Violation, Wiring, admit, check, solve,
    taper_max_power_w,
};
use proptest::prelude::*;

/// `v` with a battery of `capacity_wh` holding `energy_wh` at its arrival, knee `knee` ‰.
fn tapering(v: Vehicle, capacity_wh: i64, energy_wh: i64, knee: u16) -> Vehicle {
    Vehicle {
        battery_capacity_wh: Some(capacity_wh),
        energy_on_arrival_wh: Some(energy_wh),
        taper_knee_permille: Some(knee),
        energy_wanted_wh: None,
        ..v
    }
}

/// The most the taper allows in each step of `row` (W, f64), at the energy the battery holds at
/// the end of the step (`None` for a vehicle without a taper), from the public curve.
fn taper_bounds(g: &GroupInputs, v: &Vehicle, row: &[i64]) -> Option<Vec<f64>> {
    let (cap, e0, knee) = (
        v.battery_capacity_wh?,
        v.energy_on_arrival_wh?,
        v.taper_knee_permille?,
    );
    let w_wh = g.time_step_s as f64 * v.efficiency_permille as f64 / 1000.0 / 3600.0;
    let mut e = e0 as f64;
    Some(
        row.iter()
            .enumerate()
            .map(|(t, &p)| {
                if t < v.arrival {
                    return f64::INFINITY;
                }
                e += p as f64 * w_wh;
                taper_max_power_w(v.max_power_w as f64, cap as f64, e, knee as f64 / 1000.0)
            })
            .collect(),
    )
}

/// Every vehicle of `s` within its taper in every step (whole watts, 1e-6 W of float noise).
fn assert_within_tapers(g: &GroupInputs, s: &Schedule) -> Result<(), String> {
    for (id, row) in s.vehicle_ids.iter().zip(&s.power_w) {
        let v = g.vehicles.iter().find(|v| v.id == *id).unwrap();
        if let Some(bounds) = taper_bounds(g, v, row) {
            for (t, (&p, b)) in row.iter().zip(bounds).enumerate() {
                if p as f64 > b + 1e-6 {
                    return Err(format!("{id} step {t}: {p} W above its taper {b:.3} W"));
                }
            }
        }
    }
    Ok(())
}

fn row<'a>(s: &'a Schedule, id: &str) -> &'a [i64] {
    &s.power_w[s.vehicle_ids.iter().position(|v| v == id).unwrap()]
}

/// (1) A 60 kWh car at 90 % (54 kWh) with its knee at 80 % takes at most what the taper allows,
/// step after step, and the plan passes the checker (LP and MILP).
#[test]
fn a_car_above_its_knee_charges_at_most_its_taper() {
    let car = tapering(
        Vehicle {
            class: VehicleClass::BestEffort,
            ..ev("a", 0, 8, 11_000, 6_000)
        },
        60_000,
        54_000,
        800,
    );
    let g = group(22_000, vec![100_000; 8], vec![car]);
    for mode in [Mode::Lp, Mode::Milp] {
        let opts = SolveOptions {
            mode,
            ..SolveOptions::default()
        };
        let s = solve(&g, &opts, None).unwrap();
        assert_eq!(s.status, SolveStatus::Optimal, "{mode:?}");
        assert_within_tapers(&g, &s).unwrap();
        let r = row(&s, "a");
        let bounds = taper_bounds(&g, &g.vehicles[0], r).unwrap();
        // Flat prices: as early as the taper allows, so the first step is at the curve (within
        // a few watts), about 4.5 kW rather than 11 kW, and the power falls step after step.
        assert!(
            (r[0] as f64 - bounds[0]).abs() < 5.0,
            "{mode:?}: {r:?} {bounds:?}"
        );
        assert!((4_400..4_500).contains(&r[0]), "{mode:?}: {r:?}");
        assert!(r.windows(2).all(|w| w[1] <= w[0]), "{mode:?}: {r:?}");
        // It never reaches full in two hours: less than the 6 kWh it asked for.
        assert!(s.delivered_wh[0] < 6_000 && s.delivered_wh[0] > 4_000);
        let report = check(&g, &s, &opts);
        assert!(report.is_ok(), "{mode:?}: {:?}", report.violations);
    }
    // Below the knee the taper does not bind: the same car at 50 % charges at 11 kW.
    let mut low = g.clone();
    low.vehicles[0].energy_on_arrival_wh = Some(30_000);
    let s = solve(&low, &SolveOptions::default(), None).unwrap();
    assert_eq!(&row(&s, "a")[..2], &[11_000, 11_000]);
}

/// (2) Two cars share an 11 kW connection (binding in every step): "a" is tapering with an
/// accepted 3 kWh, "b" would take everything. The plan never gives "a" more than its taper, and
/// "b" gets the rest of the connection in every step (front-loading "a" while its battery still
/// takes power). Planned without the knee and then clipped
/// by the real battery, "a" would leave capacity unused that "b" could have had.
#[test]
fn the_headroom_a_tapering_car_cannot_take_goes_to_the_other() {
    let a = tapering(ev("a", 0, 8, 11_000, 3_000), 60_000, 54_000, 800);
    let b = Vehicle {
        class: VehicleClass::BestEffort,
        ..ev("b", 0, 8, 11_000, 22_000)
    };
    let g = group(11_000, vec![100_000; 8], vec![a, b]);
    let opts = SolveOptions::default();
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    assert_within_tapers(&g, &s).unwrap();
    assert!(check(&g, &s, &opts).is_ok());
    let (ra, rb) = (row(&s, "a"), row(&s, "b"));
    // (Within a watt: whole watts floor the LP's split of a step.)
    for t in 0..8 {
        assert!(ra[t] + rb[t] >= 11_000 - 1, "step {t}: {ra:?} {rb:?}");
    }
    assert!(s.delivered_wh[0] >= 3_000 - 1);
    let total: i64 = s.delivered_wh.iter().sum();
    assert!(total >= 22_000 - 1, "{total}");

    // The same group planned without the knee, the tapering car then taking only what its
    // battery takes (the simulator's model): "a" is planned above its taper, and energy is lost.
    let mut blind = g.clone();
    blind.vehicles[0].taper_knee_permille = None;
    let sb = solve(&blind, &opts, None).unwrap();
    let planned_a = row(&sb, "a");
    assert!(assert_within_tapers(&g, &sb).is_err(), "{planned_a:?}");
    let mut e = 54_000.0;
    let mut clipped_a = 0.0;
    for &p in planned_a {
        let took = (p as f64).min(taper_max_power_w(11_000.0, 60_000.0, e, 0.8));
        e += took / 4.0;
        clipped_a += took / 4.0;
    }
    let clipped_total = clipped_a + sb.delivered_wh[1] as f64;
    assert!(
        (total as f64) > clipped_total + 500.0,
        "{total} Wh planned with the taper, {clipped_total} Wh without it and clipped"
    );
}

/// (4) A guarantee the taper makes impossible (to full within an hour from 90 %) is a shortfall,
/// as any infeasible guarantee: status `Shortfall`, the car gets all its taper allows, the
/// checker accepts the plan; admission rejects it and offers what the taper allows.
#[test]
fn a_guarantee_the_taper_cannot_meet_is_a_shortfall() {
    let car = tapering(ev("a", 0, 4, 11_000, 6_000), 60_000, 54_000, 800);
    let g = group(22_000, vec![100_000; 4], vec![car.clone()]);
    let opts = SolveOptions::default();
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Shortfall);
    assert!(s.unmet_wh[0] > 1_000, "{:?}", s.unmet_wh);
    assert!((5_999..=6_000).contains(&(s.delivered_wh[0] + s.unmet_wh[0])));
    assert_within_tapers(&g, &s).unwrap();
    // All the taper allows: every step at the curve (within a few watts).
    let bounds = taper_bounds(&g, &car, &s.power_w[0]).unwrap();
    for (p, b) in s.power_w[0].iter().zip(&bounds) {
        assert!((*p as f64 - b).abs() < 5.0, "{:?} {bounds:?}", s.power_w[0]);
    }
    let report = check(&g, &s, &opts);
    assert!(report.is_ok(), "{:?}", report.violations);

    // The same request without the knee is met; an infeasible one without a knee (the
    // connection too small) is the same kind of outcome.
    let mut plain = g.clone();
    plain.vehicles[0].taper_knee_permille = None;
    assert_eq!(
        solve(&plain, &opts, None).unwrap().status,
        SolveStatus::Optimal
    );
    let mut small = plain.clone();
    small.capacity_w = vec![4_000; 4];
    assert_eq!(
        solve(&small, &opts, None).unwrap().status,
        SolveStatus::Shortfall
    );

    // Admission: rejected; the largest guarantee is what the taper lets the car take, and is
    // itself accepted.
    let empty = group(22_000, vec![100_000; 4], Vec::new());
    match admit(&empty, &car, &opts).unwrap() {
        Admission::Rejected {
            max_guaranteed_wh,
            earliest_full_departure,
        } => {
            assert_eq!(earliest_full_departure, None);
            assert!(max_guaranteed_wh <= s.delivered_wh[0]);
            assert!(
                max_guaranteed_wh + 10 >= s.delivered_wh[0],
                "{max_guaranteed_wh}"
            );
            let smaller = Vehicle {
                energy_requested_wh: max_guaranteed_wh,
                ..car.clone()
            };
            assert_eq!(admit(&empty, &smaller, &opts).unwrap(), Admission::Accepted);
        }
        a => panic!("{a:?}"),
    }
    assert_eq!(
        admit(&empty, &plain.vehicles[0], &opts).unwrap(),
        Admission::Accepted
    );
}

/// The checker rejects a plan above the taper (and accepts the same plan within it).
#[test]
fn the_checker_rejects_power_above_the_taper() {
    let car = tapering(
        Vehicle {
            class: VehicleClass::BestEffort,
            ..ev("a", 0, 4, 11_000, 6_000)
        },
        60_000,
        54_000,
        800,
    );
    let g = group(22_000, vec![100_000; 4], vec![car]);
    let opts = SolveOptions::default();
    let s = solve(&g, &opts, None).unwrap();
    let mut bad = s.clone();
    bad.power_w[0][1] += 200;
    bad.delivered_wh[0] += 50;
    bad.grid_import_w[1] += 200;
    let r = check(&g, &bad, &opts);
    assert!(
        r.violations
            .iter()
            .any(|v| matches!(v, Violation::AboveTaper { vehicle, step: 1, .. } if vehicle == "a")),
        "{:?}",
        r.violations
    );
    assert!(
        r.violations
            .iter()
            .any(|v| v.to_string().contains("tapering battery"))
    );
    assert!(check(&g, &s, &opts).is_ok());
}

/// An uncontrolled tapering car charges as fast as its battery takes, not at its maximum.
#[test]
fn an_uncontrolled_car_follows_its_taper() {
    let car = tapering(
        Vehicle {
            class: VehicleClass::Uncontrolled,
            ..ev("u", 0, 4, 11_000, 6_000)
        },
        60_000,
        54_000,
        800,
    );
    let g = group(22_000, vec![100_000; 4], vec![car]);
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_within_tapers(&g, &s).unwrap();
    assert!(s.power_w[0][0] > 4_000 && s.power_w[0][0] < 5_000);
    assert_eq!(evflex_schedule::baseline(&g)[0], s.power_w[0]);
    assert!(check(&g, &s, &SolveOptions::default()).is_ok());
}

fn vehicle(h: usize) -> impl Strategy<Value = Vehicle> {
    (
        0..h,
        1..=h,
        prop::sample::select(vec![3_700i64, 7_400, 11_000, 22_000]),
        0i64..40_000,
        0u8..10,
        850u16..=1000,
        (
            prop::sample::select(vec![20_000i64, 40_000, 60_000, 100_000]),
            0u16..=1000,
            prop::option::weighted(0.8, 0u16..1000),
        ),
    )
        .prop_map(
            move |(a, len, max, e, kind, eff, (cap, soc, knee))| Vehicle {
                id: String::new(),
                arrival: a,
                departure: (a + len).min(h + 4).max(a + 1),
                max_power_w: max,
                min_power_w: if max >= 11_000 { 4_140 } else { 1_380 },
                energy_requested_wh: e,
                battery_capacity_wh: Some(cap),
                energy_on_arrival_wh: Some(cap * soc as i64 / 1000),
                class: VehicleClass::from_flags(kind != 0, kind >= 4),
                efficiency_permille: eff,
                taper_knee_permille: knee,
                energy_wanted_wh: None,
            },
        )
}

prop_compose! {
    fn group_strategy()(h in 4usize..16)(
        h in Just(h),
        cap in prop::collection::vec(0i64..40_000, h),
        cut in any::<bool>(),
        price in prop::collection::vec(-50_000i64..400_000, h),
        vehicles in prop::collection::vec(vehicle(h), 1..6),
    ) -> GroupInputs {
        let mut g = group(0, price, Vec::new());
        g.capacity_w = if cut { cap } else { vec![cap.iter().copied().max().unwrap_or(0) + 5_000; h] };
        g.vehicles = vehicles.into_iter().enumerate().map(|(i, mut v)| { v.id = format!("ev{i:02}"); v }).collect();
        g
    }
}

prop_compose! {
    /// The same groups under a tree: one connection with per-phase limits, three-phase charge
    /// points taking whole amps (or watts).
    fn tree_group_strategy()(g in group_strategy(), limit_a in 16i64..80, watts in prop::collection::vec(prop::bool::weighted(0.2), 6)) -> GroupInputs {
        let mut g = g;
        let root = connection(limit_a);
        let charge_points = g.vehicles.iter().zip(watts).map(|(v, w)| ChargePoint {
            vehicle_id: v.id.clone(),
            node: "root".into(),
            phases: vec![Phase::L1, Phase::L2, Phase::L3],
            wiring: Wiring::LineToNeutral,
            voltage_v: 230,
            car_phases: None,
            unit: if w { RateUnit::Watts } else { RateUnit::Amps },
            min_current_ma: 6_000,
            max_current_ma: 32_000,
            current_step_ma: 1_000,
        }).collect();
        for v in &mut g.vehicles {
            v.min_power_w = 0;
        }
        g.topology = Some(Topology { nodes: vec![root], charge_points });
        g
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 64,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x7a9e_4c11),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// (3) Every plan with random knees (LP, MILP, and the fallback) keeps the taper in every
    /// step, and the checker accepts it.
    #[test]
    fn every_plan_keeps_every_taper(g in group_strategy(), milp in prop::bool::weighted(0.25)) {
        let opts = SolveOptions { mode: if milp { Mode::Milp } else { Mode::Lp }, ..SolveOptions::default() };
        let s = solve(&g, &opts, None).unwrap();
        prop_assert_ne!(s.status, SolveStatus::Fallback, "{:?}", s.fallback_reason);
        if let Err(e) = assert_within_tapers(&g, &s) {
            prop_assert!(false, "{}", e);
        }
        let report = check(&g, &s, &opts);
        prop_assert!(report.is_ok(), "{:?}", report.violations);

        // The fallback (previous plan shifted, repaired, topped up) keeps it too.
        let late = SolveOptions { time_limit_ms: 0, ..opts.clone() };
        let f = solve(&g, &late, Some(&s)).unwrap();
        prop_assert_eq!(f.status, SolveStatus::Fallback);
        if let Err(e) = assert_within_tapers(&g, &f) {
            prop_assert!(false, "fallback: {}", e);
        }
        let report = check(&g, &f, &late);
        prop_assert!(report.is_ok(), "fallback: {:?}", report.violations);
    }

    /// The same under a tree of limits with whole-amp charge points (LP and MILP).
    #[test]
    fn every_plan_under_a_tree_keeps_every_taper(g in tree_group_strategy(), milp in prop::bool::weighted(0.25)) {
        let opts = SolveOptions { mode: if milp { Mode::Milp } else { Mode::Lp }, ..SolveOptions::default() };
        let s = solve(&g, &opts, None).unwrap();
        prop_assert_ne!(s.status, SolveStatus::Fallback, "{:?}", s.fallback_reason);
        if let Err(e) = assert_within_tapers(&g, &s) {
            prop_assert!(false, "{}", e);
        }
        let report = check(&g, &s, &opts);
        prop_assert!(report.is_ok(), "{:?}", report.violations);
    }
}

/// The property cases above are not vacuous: in many of the random groups some vehicle is held
/// at its taper (within a few watts), below its maximum, in some step.
#[test]
fn the_random_groups_exercise_binding_tapers() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::from_seed(RngAlgorithm::ChaCha, &[7; 32]),
    );
    let (mut binding, n) = (0, 40);
    for _ in 0..n {
        let g = group_strategy().new_tree(&mut runner).unwrap().current();
        let s = solve(&g, &SolveOptions::default(), None).unwrap();
        let held = s.vehicle_ids.iter().zip(&s.power_w).any(|(id, row)| {
            let v = g.vehicles.iter().find(|v| v.id == *id).unwrap();
            taper_bounds(&g, v, row).is_some_and(|b| {
                row.iter()
                    .zip(b)
                    .any(|(&p, b)| p > 0 && b < v.max_power_w as f64 - 1.0 && p as f64 >= b - 5.0)
            })
        });
        binding += usize::from(held);
    }
    assert!(binding >= n / 2, "{binding} of {n}");
}

/// (6) A guarantee that its taper lets be met only by charging early keeps that early headroom
/// against an uncontrolled car (`reserve::step_caps_w`). "g" (30 kWh battery at 33 %, 22 kW)
/// must take 19 kWh in six steps: its last steps, near full, carry little, so it needs about the
/// first five. Reserved as if it could take 22 kW in its last four steps, the uncontrolled "u"
/// got the first two and "g" ended 1.4 kWh short.
#[test]
fn a_tapering_guarantee_keeps_the_early_headroom_it_needs() {
    let g_car = tapering(ev("g", 0, 6, 22_080, 19_000), 30_000, 9_900, 800);
    let u_car = Vehicle {
        class: VehicleClass::Uncontrolled,
        ..ev("u", 0, 6, 22_080, 30_000)
    };
    let g = group(22_080, vec![100_000; 6], vec![g_car, u_car]);
    for mode in [Mode::Lp, Mode::Milp] {
        let opts = SolveOptions {
            mode,
            ..SolveOptions::default()
        };
        let s = solve(&g, &opts, None).unwrap();
        let gi = s.vehicle_ids.iter().position(|v| v == "g").unwrap();
        assert_eq!(s.unmet_wh[gi], 0, "{mode:?}: {:?}", s.power_w);
        assert!(
            s.delivered_wh[gi] >= 19_000,
            "{mode:?}: {:?}",
            s.delivered_wh
        );
        // The uncontrolled car still gets what the guarantee leaves, from the start.
        let u = row(&s, "u");
        assert!(u.iter().sum::<i64>() > 0, "{mode:?}: {u:?}");
        assert_within_tapers(&g, &s).unwrap();
        let report = check(&g, &s, &opts);
        assert!(report.is_ok(), "{mode:?}: {:?}", report.violations);
    }
}

/// A three-phase point taking whole amps from 6 A to 16 A under `root`, for vehicle `id`.
fn amps_point(id: &str) -> ChargePoint {
    ChargePoint {
        vehicle_id: id.into(),
        node: "root".into(),
        phases: vec![Phase::L1, Phase::L2, Phase::L3],
        wiring: Wiring::LineToNeutral,
        voltage_v: 230,
        car_phases: None,
        unit: RateUnit::Amps,
        min_current_ma: 6_000,
        max_current_ma: 16_000,
        current_step_ma: 1_000,
    }
}

/// The connection "root": `limit_a` per phase, nothing else on it.
fn connection(limit_a: i64) -> Node {
    Node {
        id: "root".into(),
        parent: None,
        phase_limit_ma: [Some(limit_a * 1000); 3],
        limit_w: None,
        other_load_ma: Vec::new(),
        pv_ma: Vec::new(),
        other_load_w: Vec::new(),
        pv_w: Vec::new(),
    }
}

/// A connection of `limit_a` per phase feeding one amps point for vehicle "a".
fn amps_site(limit_a: i64) -> Topology {
    Topology {
        nodes: vec![connection(limit_a)],
        charge_points: vec![amps_point("a")],
    }
}

/// A best-effort car "a" (11.04 kW, a 60 kWh battery holding `energy_wh`, knee 80 %) asking
/// `want_wh` over `steps` quarter hours at one amps point of [`amps_site`] (3×32 A), in a
/// 30 kW group.
fn tapering_on_amps(energy_wh: i64, want_wh: i64, steps: usize) -> GroupInputs {
    let car = tapering(
        Vehicle {
            class: VehicleClass::BestEffort,
            ..ev("a", 0, steps, 11_040, want_wh)
        },
        60_000,
        energy_wh,
        800,
    );
    let mut g = group(30_000, vec![100_000; steps], vec![car]);
    g.topology = Some(amps_site(32));
    g
}

/// (6) Model v6: an opted-in car whose battery tapers below its charge point's 6 A minimum
/// (4.14 kW on three phases) still charges. Its taper allows about 2.6 kW: no whole set-point
/// fits it, and rounding used to plan it at 0, which pauses it short of full. It is planned at
/// what its taper takes, under the 6 A minimum set-point, and every limit counts the 6 A. A
/// taper between two set-points is planned at the taper under the set-point above, not floored.
#[test]
fn a_battery_tapering_below_the_minimum_current_charges_under_the_minimum() {
    // 60 kWh at 57 kWh (95 %), knee 80 %: the curve gives 11.04 kW · 3/12 = 2.76 kW now, and
    // the taper row's bound, at the energy the first quarter hour ends with, 2.76 / 1.23 kW.
    let g = tapering_on_amps(57_000, 3_000, 8);
    let opts = SolveOptions::default();
    let s = solve(&g, &opts, None).unwrap();
    let r = row(&s, "a");
    assert!(
        r[0] > 2_000 && r[0] < 4_140,
        "planned below the minimum's power: {r:?}"
    );
    assert!(r.iter().all(|&p| p < 4_140), "{r:?}");
    assert!(s.delivered_wh[0] > 1_500, "{:?}", s.delivered_wh);
    assert_within_tapers(&g, &s).unwrap();
    let report = check(&g, &s, &opts);
    assert!(report.is_ok(), "{:?}", report.violations);
    // It goes out as the 6 A minimum, and the connection counts 6 A on each phase for it.
    let sp = evflex_schedule::set_points(&g, &s).unwrap();
    assert_eq!(sp[0].values[0], 6_000);
    let loads = evflex_schedule::node_loads(&g, &s).unwrap();
    assert_eq!(loads[0].phase_ma[0], [6_000; 3]);
    // The checker holds it to that count: the same plan under a 5 A connection is over it,
    // though the car's own 4 A would fit.
    let mut tight = g.clone();
    tight.topology = Some(amps_site(5));
    assert!(
        check(&tight, &s, &opts)
            .violations
            .iter()
            .any(|v| matches!(v, Violation::NodeLimit { .. })),
        "counted at its draw, not at the minimum"
    );
    // So under 5 A, or a group capacity below the minimum's 4.14 kW, it gets nothing.
    let s = solve(&tight, &opts, None).unwrap();
    assert!(row(&s, "a").iter().all(|&p| p == 0), "{:?}", s.power_w);
    assert!(check(&tight, &s, &opts).is_ok());
    let mut small = g.clone();
    small.capacity_w = vec![4_000; 8];
    let s = solve(&small, &opts, None).unwrap();
    assert!(row(&s, "a").iter().all(|&p| p == 0), "{:?}", s.power_w);
    let report = check(&small, &s, &opts);
    assert!(report.is_ok(), "{:?}", report.violations);
    // A vehicle whose own minimum (7 A) is above the point's is held to it: nothing below.
    let mut own_min = g.clone();
    own_min.vehicles[0].min_power_w = 4_830;
    let s = solve(&own_min, &opts, None).unwrap();
    assert!(row(&s, "a").iter().all(|&p| p == 0), "{:?}", s.power_w);
    assert!(check(&own_min, &s, &opts).is_ok());
    // A plan below the minimum where a whole set-point fits the battery is not one.
    let mut low = g.clone();
    low.vehicles[0].energy_on_arrival_wh = Some(30_000);
    let mut bad = solve(&low, &opts, None).unwrap();
    bad.power_w[0] = vec![2_000, 0, 0, 0, 0, 0, 0, 0];
    assert!(
        check(&low, &bad, &opts)
            .violations
            .iter()
            .any(|v| matches!(v, Violation::SetPoint { .. })),
    );
}

/// (7) Model v6: a taper between two whole set-points (here 5.39 kW, between 7 A and 8 A
/// on three phases) is planned at the taper under the 8 A set-point, not floored to 7 A
/// (4.83 kW); the connection counts 8 A.
#[test]
fn a_taper_between_two_set_points_is_planned_under_the_one_above() {
    // 60 kWh at 52.8 kWh (88 %), knee 80 %: 11.04 kW · 7.2/12 = 6.62 kW now; the taper row's
    // bound, at the energy the first quarter hour ends with, is 6.62 kW / 1.23 = 5.39 kW.
    let g = tapering_on_amps(52_800, 6_000, 4);
    let opts = SolveOptions::default();
    let s = solve(&g, &opts, None).unwrap();
    let r = row(&s, "a");
    let bounds = taper_bounds(&g, &g.vehicles[0], r).unwrap();
    assert!(r[0] > 4_830 && r[0] < 5_520, "{r:?}");
    assert!(
        (r[0] as f64 - bounds[0]).abs() < 5.0,
        "at its taper: {r:?} {bounds:?}"
    );
    assert!(check(&g, &s, &opts).is_ok());
    assert_eq!(
        evflex_schedule::set_points(&g, &s).unwrap()[0].values[0],
        8_000
    );
    let loads = evflex_schedule::node_loads(&g, &s).unwrap();
    assert_eq!(loads[0].phase_ma[0], [8_000; 3]);
    // Where the 8 A do not fit the connection (7 A per phase), it stays at 7 A.
    let mut seven = g.clone();
    seven.topology = Some(amps_site(7));
    let s = solve(&seven, &opts, None).unwrap();
    assert_eq!(row(&s, "a")[0], 4_830, "{:?}", s.power_w);
    assert!(check(&seven, &s, &opts).is_ok());
}
