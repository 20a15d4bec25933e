//! Property tests over random groups (proptest). Case counts are kept small so the crate's
//! whole test run stays well under a minute in a debug build.

mod common;

use common::group;
use evflex_schedule::hash::{inputs_hash, schedule_hash};
use evflex_schedule::{
    Admission, Battery, GroupInputs, Mode, SolveOptions, SolveStatus, Vehicle, VehicleClass,
    Violation, admit, check, solve,
};
use proptest::prelude::*;
use rayon::prelude::*;

fn vehicle(h: usize) -> impl Strategy<Value = Vehicle> {
    (
        0..h,
        1..=h,
        prop::sample::select(vec![3_700i64, 7_400, 11_000, 22_000]),
        0i64..40_000,
        0u8..10,
        850u16..=1000,
    )
        .prop_map(move |(a, len, max, e, kind, eff)| Vehicle {
            id: String::new(),
            arrival: a,
            departure: (a + len).min(h + 4).max(a + 1),
            max_power_w: max,
            min_power_w: if max >= 11_000 { 4_140 } else { 1_380 },
            energy_requested_wh: e,
            battery_capacity_wh: (kind % 3 == 0).then_some(60_000),
            energy_on_arrival_wh: (kind % 3 == 0).then_some(30_000),
            class: VehicleClass::from_flags(kind != 0, kind >= 4),
            efficiency_permille: eff,
            taper_knee_permille: None,
            energy_wanted_wh: None,
        })
}

prop_compose! {
    fn group_strategy()(h in 4usize..20)(
        h in Just(h),
        cap in prop::collection::vec(0i64..40_000, h),
        cut in any::<bool>(),
        other in prop::collection::vec(0i64..5_000, h),
        pv in prop::collection::vec(0i64..6_000, h),
        price in prop::collection::vec(-50_000i64..400_000, h),
        battery in any::<bool>(),
        vehicles in prop::collection::vec(vehicle(h), 1..6),
    ) -> GroupInputs {
        let mut g = group(0, price, Vec::new());
        g.capacity_w = if cut { cap } else { vec![cap.iter().copied().max().unwrap_or(0) + 5_000; h] };
        g.other_load_w = other;
        g.pv_w = pv;
        g.battery = battery.then_some(Battery {
            capacity_wh: 20_000, energy_wh: 5_000, max_charge_w: 5_000, max_discharge_w: 5_000,
            efficiency_permille: 900,
        });
        g.vehicles = vehicles.into_iter().enumerate().map(|(i, mut v)| { v.id = format!("ev{i:02}"); v }).collect();
        g
    }
}

fn import_load(g: &GroupInputs, s: &evflex_schedule::Schedule, t: usize) -> i64 {
    s.power_w.iter().map(|r| r[t]).sum::<i64>() + s.battery_w[t] + g.other_load_w[t] - g.pv_w[t]
}

fn cap_eff(g: &GroupInputs, t: usize) -> i64 {
    g.capacity_w[t].max(g.other_load_w[t] - g.pv_w[t])
}

/// What `v` alone can take from its arrival to `departure` (Wh, floored): its maximum power
/// times its efficiency over the steps.
fn window_max_wh(g: &GroupInputs, v: &Vehicle, departure: usize) -> i64 {
    let steps = departure.saturating_sub(v.arrival) as i128;
    (v.max_power_w as i128 * g.time_step_s as i128 * v.efficiency_permille as i128 * steps
        / 3_600_000) as i64
}

/// The total shortfall (Wh) of the accepted vehicles of `g` in `s`.
fn accepted_shortfall_wh(g: &GroupInputs, s: &evflex_schedule::Schedule) -> i64 {
    g.vehicles
        .iter()
        .filter(|v| v.class == VehicleClass::Guaranteed)
        .map(|v| s.unmet_wh[s.vehicle_ids.iter().position(|id| *id == v.id).unwrap()])
        .sum()
}

/// The request clamped to what the battery can take.
fn clamped(v: &Vehicle) -> i64 {
    match (v.battery_capacity_wh, v.energy_on_arrival_wh) {
        (Some(c), Some(e)) => v.energy_requested_wh.min((c - e).max(0)),
        _ => v.energy_requested_wh,
    }
}

proptest! {
    // A fixed seed: the suite is deterministic, so CI runs the same cases every time (a random
    // seed once found the case below in CI, then passed on the next run).
    #![proptest_config(ProptestConfig {
        cases: 128,
        rng_seed: proptest::test_runner::RngSeed::Fixed(0x0e7f_1e85),
        failure_persistence: None,
        .. ProptestConfig::default()
    })]

    /// Capacity, windows, limits, accepted energy; the checker accepts the solver's schedules
    /// and rejects tampered ones; hashes are stable.
    #[test]
    fn schedules_are_feasible_and_checked(g in group_strategy(), milp in prop::bool::weighted(0.25)) {
        let opts = SolveOptions { mode: if milp { Mode::Milp } else { Mode::Lp }, ..SolveOptions::default() };
        let s = solve(&g, &opts, None).unwrap();
        prop_assert_ne!(s.status, SolveStatus::Fallback, "{:?}", s.fallback_reason);
        for t in 0..g.horizon {
            prop_assert!(s.grid_import_w[t] <= cap_eff(&g, t), "step {t}: {} > {}", s.grid_import_w[t], cap_eff(&g, t));
        }
        let mut sorted = g.vehicles.clone();
        sorted.sort_by(|a, b| a.id.cmp(&b.id));
        for (v, row) in sorted.iter().zip(&s.power_w) {
            for (t, &p) in row.iter().enumerate() {
                prop_assert!(p >= 0 && p <= v.max_power_w);
                if t < v.arrival || t >= v.departure { prop_assert_eq!(p, 0); }
                if milp && v.class.opted_in() { prop_assert!(p == 0 || p >= v.min_power_w); }
            }
        }
        let report = check(&g, &s, &opts);
        prop_assert!(report.is_ok(), "{:?}", report.violations);
        prop_assert!(report.objective_gap.is_some_and(|gap| gap.abs() <= report.tolerance_eur));
        prop_assert_eq!(schedule_hash(&s), schedule_hash(&solve(&g, &opts, None).unwrap()));

        // One watt over capacity in a step a flexible vehicle can charge in.
        if let Some((k, t)) = sorted.iter().enumerate().filter(|(_, v)| v.class.opted_in())
            .flat_map(|(k, v)| (v.arrival..v.departure.min(g.horizon)).map(move |t| (k, t))).next()
        {
            let mut bad = s.clone();
            bad.power_w[k][t] += cap_eff(&g, t) - import_load(&g, &s, t) + 1;
            let r = check(&g, &bad, &opts);
            prop_assert!(r.violations.iter().any(|v| matches!(v, Violation::Capacity { .. })), "{:?}", r.violations);
        }
        // One step outside a window.
        if let Some((k, t)) = sorted.iter().enumerate().filter(|(_, v)| v.class.opted_in())
            .find_map(|(k, v)| (0..g.horizon).find(|&t| t < v.arrival || t >= v.departure).map(|t| (k, t)))
        {
            let mut bad = s.clone();
            bad.power_w[k][t] = 1;
            let r = check(&g, &bad, &opts);
            prop_assert!(r.violations.iter().any(|v| matches!(v, Violation::OutsideWindow { .. })), "{:?}", r.violations);
        }
    }

    /// Admission never accepts what the solver then cannot meet, and the reported guarantee is
    /// itself admissible. Some requests ask for more than the vehicle itself can take by its
    /// departure (its window maximum): those are rejected, never capped. In a group with a
    /// guarantee already broken, an accepted request is met and leaves the other guarantees'
    /// total shortfall as it was (`admit`'s docs).
    #[test]
    fn admission_is_consistent_with_the_solver(
        g in group_strategy(),
        req in (0usize..1).prop_flat_map(|_| vehicle(12)),
        over in prop::option::weighted(0.3, 0i64..3_000),
    ) {
        let opts = SolveOptions::default();
        let mut req = req;
        req.id = "new".into();
        req.arrival = req.arrival.min(g.horizon - 1);
        req.departure = req.departure.max(req.arrival + 1);
        let max_wh = window_max_wh(&g, &req, req.departure);
        if let Some(k) = over {
            // Vehicle-limited: above the window maximum by k + 1 Wh.
            req.battery_capacity_wh = None;
            req.energy_on_arrival_wh = None;
            req.energy_requested_wh = max_wh + k + 1;
        }
        let wanted = clamped(&req);
        let mut with = g.clone();
        let mut accepted_req = req.clone();
        accepted_req.class = VehicleClass::Guaranteed;
        with.vehicles.push(accepted_req.clone());
        match admit(&g, &req, &opts).unwrap() {
            Admission::Accepted => {
                prop_assert!(over.is_none());
                prop_assert!(wanted <= max_wh, "{wanted} > window maximum {max_wh}");
                let s = solve(&with, &opts, None).unwrap();
                // Without a broken guarantee in the group every accepted request is met; with one
                // (`admit`: judged on what it changes) the request is met (below) and the other
                // accepted requests' total shortfall does not grow.
                let base = solve(&g, &opts, None).unwrap();
                if base.status == SolveStatus::Shortfall {
                    let (before, after) = (accepted_shortfall_wh(&g, &base), accepted_shortfall_wh(&g, &s));
                    prop_assert!(after <= before + 1, "accepted shortfall {before} Wh grew to {after} Wh");
                } else {
                    prop_assert!(matches!(s.status, SolveStatus::Optimal | SolveStatus::TimeLimit), "{:?}", s.status);
                }
                // The whole request is met by departure (within the horizon, plus full power in
                // the steps after it), not a capped part of it.
                let k = s.vehicle_ids.iter().position(|id| id == "new").unwrap();
                let after = window_max_wh(&g, &req, req.departure) - window_max_wh(&g, &req, req.departure.min(g.horizon).max(req.arrival));
                prop_assert!(s.delivered_wh[k] + after + 1 >= wanted, "{} + {after} < {wanted}", s.delivered_wh[k]);
            }
            Admission::Rejected { max_guaranteed_wh, earliest_full_departure } => {
                prop_assert!(max_guaranteed_wh < req.energy_requested_wh);
                prop_assert!(max_guaranteed_wh <= max_wh, "{max_guaranteed_wh} > window maximum {max_wh}");
                if max_guaranteed_wh > 0 {
                    let mut smaller = req.clone();
                    smaller.energy_requested_wh = max_guaranteed_wh;
                    prop_assert_eq!(admit(&g, &smaller, &opts).unwrap(), Admission::Accepted);
                }
                if let Some(d) = earliest_full_departure {
                    prop_assert!(wanted <= window_max_wh(&g, &req, d));
                    let mut later = req.clone();
                    later.departure = d;
                    prop_assert_eq!(admit(&g, &later, &opts).unwrap(), Admission::Accepted);
                }
            }
        }
    }

    /// An accepted guarantee outranks uncontrolled charging: vehicles that did not opt in and
    /// plug in after a request was accepted never make it fall short (LP, no battery: see
    /// `DESIGN.md`), and the group stays within its capacity. In a group with a guarantee
    /// already broken they never make the accepted requests' total shortfall grow.
    #[test]
    fn a_later_uncontrolled_arrival_never_breaks_a_guarantee(
        g in group_strategy(),
        req in (0usize..1).prop_flat_map(|_| vehicle(12)),
        late in prop::collection::vec((0usize..1).prop_flat_map(|_| vehicle(12)), 1..4),
    ) {
        let opts = SolveOptions::default();
        let mut g = g;
        g.battery = None;
        let mut req = req;
        req.id = "new".into();
        req.arrival = req.arrival.min(g.horizon - 1);
        req.departure = req.departure.max(req.arrival + 1);
        req.class = VehicleClass::Guaranteed;
        if admit(&g, &req, &opts).unwrap() != Admission::Accepted {
            return Ok(());
        }
        let broken = solve(&g, &opts, None).unwrap().status == SolveStatus::Shortfall;
        g.vehicles.push(req);
        let before = broken.then(|| solve(&g, &opts, None).unwrap());
        for (k, mut u) in late.into_iter().enumerate() {
            u.id = format!("late{k}");
            u.arrival = u.arrival.min(g.horizon - 1);
            u.departure = u.departure.max(u.arrival + 1);
            u.class = VehicleClass::Uncontrolled;
            g.vehicles.push(u);
        }
        let s = solve(&g, &opts, None).unwrap();
        if let Some(before) = &before {
            let (b, a) = (accepted_shortfall_wh(&g, before), accepted_shortfall_wh(&g, &s));
            prop_assert!(a <= b + 1, "accepted shortfall {b} Wh grew to {a} Wh");
        } else {
            prop_assert!(matches!(s.status, SolveStatus::Optimal), "{:?} unmet {:?}", s.status, s.unmet_wh);
        }
        for t in 0..g.horizon {
            prop_assert!(s.grid_import_w[t] <= cap_eff(&g, t));
        }
        let report = check(&g, &s, &opts);
        prop_assert!(report.is_ok(), "{:?}", report.violations);
    }

    /// The canonical encoding does not depend on the order of the vehicles.
    #[test]
    fn inputs_hash_ignores_vehicle_order(g in group_strategy()) {
        let mut r = g.clone();
        r.vehicles.reverse();
        prop_assert_eq!(inputs_hash(&g), inputs_hash(&r));
        let mut changed = g.clone();
        changed.capacity_w[0] += 1;
        prop_assert_ne!(inputs_hash(&g), inputs_hash(&changed));
    }

    /// A zero time limit always gives a fallback that respects the capacity and the windows.
    #[test]
    fn fallback_never_exceeds_capacity(g in group_strategy()) {
        let opts = SolveOptions { time_limit_ms: 0, ..SolveOptions::default() };
        let prev = solve(&g, &SolveOptions::default(), None).unwrap();
        let s = solve(&g, &opts, Some(&prev)).unwrap();
        prop_assert_eq!(s.status, SolveStatus::Fallback);
        let r = check(&g, &s, &opts);
        prop_assert!(r.is_ok(), "{:?}", r.violations);
    }
}

/// Parallel solves (one HiGHS thread each, many rayon threads) give the same schedules as
/// sequential ones.
#[test]
fn parallel_solves_are_deterministic() {
    let cfg = evflex_schedule::demand::DemandConfig::new(30);
    let groups: Vec<GroupInputs> = (0..16)
        .map(|k| {
            let recs = evflex_schedule::demand::generate(&cfg, 100 + k);
            evflex_schedule::neutral::PlanInput::from_demand(
                &recs,
                60.0,
                evflex_schedule::bench::day_ahead_shape(),
                96,
                900,
            )
            .to_group_inputs()
            .unwrap()
        })
        .collect();
    let opts = SolveOptions::default();
    let seq: Vec<_> = groups
        .iter()
        .map(|g| schedule_hash(&solve(g, &opts, None).unwrap()))
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(4)
        .build()
        .unwrap();
    for _ in 0..2 {
        let par: Vec<_> = pool.install(|| {
            groups
                .par_iter()
                .map(|g| schedule_hash(&solve(g, &opts, None).unwrap()))
                .collect()
        });
        assert_eq!(seq, par);
    }
}

/// Found by `schedules_are_feasible_and_checked` (MILP): the guaranteed car cannot get its
/// energy, so the cost phase runs with the minimal shortfall as a cap; with a cap tolerance of
/// 1e-6 HiGHS's postsolve landed 1e-6 over it and the solve failed ("HiGHS: Error").
#[test]
fn a_tight_shortfall_cap_stays_solvable_in_milp_mode() {
    let vehicle = |id: &str, arrival, departure, max_w, min_w, wh, class, eff| Vehicle {
        id: id.into(),
        arrival,
        departure,
        max_power_w: max_w,
        min_power_w: min_w,
        energy_requested_wh: wh,
        battery_capacity_wh: None,
        energy_on_arrival_wh: None,
        class,
        efficiency_permille: eff,
        taper_knee_permille: None,
        energy_wanted_wh: None,
    };
    let g = GroupInputs {
        group_id: 1,
        start_timestep: 1_888_888,
        time_step_s: 900,
        horizon: 4,
        capacity_w: vec![0, 0, 3_333, 2_127],
        other_load_w: vec![0, 0, 512, 699],
        pv_w: vec![0, 0, 879, 939],
        price_micro_eur_per_kwh: vec![0, 0, 1, 0],
        battery: None,
        topology: None,
        vehicles: vec![
            vehicle(
                "ev00",
                3,
                6,
                22_000,
                4_140,
                1,
                VehicleClass::BestEffort,
                850,
            ),
            vehicle(
                "ev01",
                2,
                4,
                3_700,
                1_380,
                1_817,
                VehicleClass::Guaranteed,
                982,
            ),
        ],
    };
    let opts = SolveOptions {
        mode: Mode::Milp,
        ..SolveOptions::default()
    };
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Shortfall, "{:?}", s.fallback_reason);
    assert_eq!(
        s.power_w[1],
        [0, 0, 3_700, 2_367],
        "all the headroom goes to the guarantee"
    );
    let report = check(&g, &s, &opts);
    assert!(report.is_ok(), "{:?}", report.violations);
}
