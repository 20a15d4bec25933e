//! Worked examples with hand-checked answers.

mod common;

use common::{ev, group};
use evflex_schedule::hash::{inputs_hash, schedule_hash, to_hex};
use evflex_schedule::{
    Admission, Battery, Mode, SolveOptions, SolveStatus, VehicleClass, Violation, admit, baseline,
    check, solve,
};

const CHEAP: i64 = 50_000; // 0.05 EUR/kWh
const DEAR: i64 = 300_000; // 0.30 EUR/kWh

/// Two hours: the first expensive, the second cheap.
fn cheap_second_hour() -> Vec<i64> {
    vec![DEAR, DEAR, DEAR, DEAR, CHEAP, CHEAP, CHEAP, CHEAP]
}

#[test]
fn two_vehicles_one_cheap_hour_use_the_cheap_hour() {
    // Each needs 11 kWh = one hour at 11 kW; 22 kW fits both in the cheap hour.
    let g = group(
        22_000,
        cheap_second_hour(),
        vec![ev("a", 0, 8, 11_000, 11_000), ev("b", 0, 8, 11_000, 11_000)],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    for row in &s.power_w {
        assert_eq!(row, &vec![0, 0, 0, 0, 11_000, 11_000, 11_000, 11_000]);
    }
    assert_eq!(s.delivered_wh, vec![11_000, 11_000]);
    // 22 kWh at 0.05 EUR.
    assert_eq!(s.cost_micro_eur, 1_100_000);
    assert_eq!(s.peak_w, 22_000);
    // Baseline: 11 kW from step 0, i.e. the dear hour. Shifted 11 kWh each, worth
    // 11 × (0.30 − 0.05) = 2.75 EUR.
    assert_eq!(
        baseline(&g)[0],
        vec![11_000, 11_000, 11_000, 11_000, 0, 0, 0, 0]
    );
    for f in &s.flexibility {
        assert_eq!((f.shifted_wh, f.value_micro_eur), (11_000, 2_750_000));
    }
    assert!(check(&g, &s, &SolveOptions::default()).is_ok());
}

#[test]
fn cheap_hour_shared_when_capacity_binds_with_its_shadow_price() {
    // 11 kW: only one vehicle fits the cheap hour; the other 11 kWh goes to the dear hour.
    let g = group(
        11_000,
        cheap_second_hour(),
        vec![ev("a", 0, 8, 11_000, 11_000), ev("b", 0, 8, 11_000, 11_000)],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    assert_eq!(s.cost_micro_eur, 550_000 + 3_300_000);
    assert!(s.capacity_binding.iter().all(|&b| b));
    // One more kW in a cheap step moves 0.25 kWh from a dear step: (0.30 − 0.05) × 0.25 EUR.
    for t in 4..8 {
        assert!(
            (s.capacity_dual[t] - 0.0625).abs() < 1e-3,
            "dual {t}: {}",
            s.capacity_dual[t]
        );
    }
    // Deterministic tie-break: vehicle "a" (first id) gets the earlier (dear) hour.
    assert_eq!(
        s.power_w[0],
        vec![11_000, 11_000, 11_000, 11_000, 0, 0, 0, 0]
    );
}

#[test]
fn capacity_cut_reports_the_exact_shortfall() {
    // 11 kWh in one hour needs 11 kW; the connection was cut to 7 kW: 4 kWh short.
    let g = group(7_000, vec![DEAR; 4], vec![ev("a", 0, 4, 11_000, 11_000)]);
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Shortfall);
    assert_eq!(s.delivered_wh, vec![7_000]);
    assert_eq!(s.unmet_wh, vec![4_000]);
    assert!(check(&g, &s, &SolveOptions::default()).is_ok());

    // Two accepted vehicles sharing the cut: total shortfall minimal (a gets the 7 kWh of the first hour, 4 kWh short),
    // then cost: "b" can also charge in the second hour.
    let g = group(
        7_000,
        vec![DEAR, DEAR, DEAR, DEAR, CHEAP, CHEAP, CHEAP, CHEAP],
        vec![ev("a", 0, 4, 11_000, 11_000), ev("b", 0, 8, 11_000, 5_000)],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Shortfall);
    assert_eq!(s.unmet_wh, vec![4_000, 0]);
    // "a" takes the whole 7 kW of the first hour; "b" then charges its 5 kWh in the cheap
    // hour, as early as possible: 7 + 7 + 6 kW.
    assert_eq!(s.power_w[0], vec![7_000, 7_000, 7_000, 7_000, 0, 0, 0, 0]);
    assert_eq!(s.power_w[1], vec![0, 0, 0, 0, 7_000, 7_000, 6_000, 0]);
    assert_eq!(s.delivered_wh[1], 5_000);
}

#[test]
fn uncontrolled_vehicle_consumes_capacity_first() {
    let mut unc = ev("u", 0, 8, 11_000, 5_500);
    unc.class = VehicleClass::Uncontrolled;
    let g = group(
        11_000,
        vec![CHEAP; 8],
        vec![ev("a", 0, 4, 11_000, 5_500), unc],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.vehicle_ids, vec!["a", "u"]);
    assert_eq!(s.power_w[1], vec![11_000, 11_000, 0, 0, 0, 0, 0, 0]);
    assert_eq!(s.power_w[0], vec![0, 0, 11_000, 11_000, 0, 0, 0, 0]);
    assert_eq!(s.status, SolveStatus::Optimal);
}

#[test]
fn milp_honours_the_minimum_power() {
    // Step 0 is cheap but carries only 2 kW; 1 kWh is needed. The LP uses 2 kW twice; the
    // MILP cannot go below 4.14 kW and charges one later step at ≥ 4.14 kW.
    let mut v = ev("a", 0, 4, 11_000, 1_000);
    v.min_power_w = 4_140;
    let mut g = group(11_000, vec![CHEAP, DEAR, DEAR, DEAR], vec![v]);
    g.capacity_w[0] = 2_000;
    let lp = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(lp.power_w[0], vec![2_000, 2_000, 0, 0]);
    let opts = SolveOptions {
        mode: Mode::Milp,
        ..SolveOptions::default()
    };
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.mode, Mode::Milp);
    assert_eq!(s.status, SolveStatus::Optimal);
    assert!(
        s.power_w[0].iter().all(|&p| p == 0 || p >= 4_140),
        "{:?}",
        s.power_w[0]
    );
    assert_eq!(s.power_w[0], vec![0, 4_140, 0, 0]);
    assert!(s.delivered_wh[0] >= 1_000);
    assert!(check(&g, &s, &opts).is_ok());
    // Tampering below the minimum is caught.
    let mut bad = s.clone();
    bad.power_w[0][1] = 4_000;
    bad.power_w[0][2] = 140;
    let r = check(&g, &bad, &opts);
    assert!(
        r.violations
            .iter()
            .any(|v| matches!(v, Violation::BelowMin { .. }))
    );
}

#[test]
fn admission_rejects_with_the_largest_guarantee_and_the_earliest_departure() {
    // 11 kW group; "a" is accepted for 8.25 kWh by step 4 (three of the four first steps).
    let g = group(11_000, vec![CHEAP; 8], vec![ev("a", 0, 4, 11_000, 8_250)]);
    let opts = SolveOptions::default();
    // 2.75 kWh fits in the one free step.
    assert_eq!(
        admit(&g, &ev("b", 0, 4, 11_000, 2_750), &opts).unwrap(),
        Admission::Accepted
    );
    // 5 kWh does not: 2.75 kWh can be guaranteed; with departure 5 the full request fits
    // (step 3 free + step 4 = 5.5 kWh).
    assert_eq!(
        admit(&g, &ev("b", 0, 4, 11_000, 5_000), &opts).unwrap(),
        Admission::Rejected {
            max_guaranteed_wh: 2_750,
            earliest_full_departure: Some(5)
        }
    );
    // Too much for the horizon: no departure helps.
    assert_eq!(
        admit(&g, &ev("b", 0, 4, 11_000, 80_000), &opts).unwrap(),
        Admission::Rejected {
            max_guaranteed_wh: 2_750,
            earliest_full_departure: None
        }
    );
}

#[test]
fn zero_time_limit_falls_back_within_capacity() {
    let g = group(
        11_000,
        cheap_second_hour(),
        vec![ev("a", 0, 8, 11_000, 11_000), ev("b", 0, 8, 11_000, 11_000)],
    );
    let opts = SolveOptions {
        time_limit_ms: 0,
        ..SolveOptions::default()
    };
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Fallback);
    assert!(s.fallback_reason.is_some());
    assert!(s.grid_import_w.iter().all(|&g| g <= 11_000));
    // EDF greedy: "a" first (same departure, first id) as fast as possible, then "b".
    assert_eq!(
        s.power_w[0],
        vec![11_000, 11_000, 11_000, 11_000, 0, 0, 0, 0]
    );
    assert_eq!(
        s.power_w[1],
        vec![0, 0, 0, 0, 11_000, 11_000, 11_000, 11_000]
    );
    assert!(check(&g, &s, &opts).is_ok());

    // With a previous schedule: shifted by one step, then repaired to a capacity cut.
    let prev = solve(&g, &SolveOptions::default(), None).unwrap();
    let mut cut = g.clone();
    cut.capacity_w = vec![8_000; 8];
    let s = solve(&cut, &opts, Some(&prev)).unwrap();
    assert_eq!(s.status, SolveStatus::Fallback);
    assert!(s.grid_import_w.iter().all(|&g| g <= 8_000));
    assert_eq!(
        s.power_w[1][3..7],
        prev.power_w[1][4..8]
            .iter()
            .map(|&p| p.min(8_000))
            .collect::<Vec<_>>()[..]
    );
    assert!(check(&cut, &s, &opts).is_ok());
}

#[test]
fn battery_moves_cheap_energy_to_the_dear_hour() {
    let mut g = group(
        11_000,
        vec![CHEAP, CHEAP, CHEAP, CHEAP, DEAR, DEAR, DEAR, DEAR],
        vec![ev("a", 4, 8, 11_000, 11_000)],
    );
    g.battery = Some(Battery {
        capacity_wh: 10_000,
        energy_wh: 0,
        max_charge_w: 10_000,
        max_discharge_w: 10_000,
        efficiency_permille: 1000,
    });
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    assert_eq!(
        s.battery_w
            .iter()
            .filter(|&&b| b > 0)
            .map(|&b| b as i128 * 900)
            .sum::<i128>(),
        10_000 * 3600
    );
    // 10 kWh cheap through the battery, 1 kWh dear: 0.5 + 0.3 EUR.
    assert_eq!(s.cost_micro_eur, 800_000);
    assert!(check(&g, &s, &SolveOptions::default()).is_ok());
}

#[test]
fn hashes_are_pinned() {
    let g = group(
        22_000,
        cheap_second_hour(),
        vec![ev("b", 0, 8, 11_000, 11_000), ev("a", 0, 8, 11_000, 11_000)],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    let mut reordered = g.clone();
    reordered.vehicles.reverse();
    assert_eq!(inputs_hash(&g), inputs_hash(&reordered));
    // Pinned: a change here changes what is committed on chain.
    assert_eq!(to_hex(&inputs_hash(&g)), PINNED_INPUTS);
    assert_eq!(to_hex(&schedule_hash(&s)), PINNED_SCHEDULE);
}

const PINNED_INPUTS: &str = "0x36fa1ad59a41d90e288b205e26e8f617c94e004bb9ca285f1fca95de296598ad";
const PINNED_SCHEDULE: &str = "0xcb5653340d99551dabfadbd2812552f98c273937b0468da6d0b0df650e5df325";

/// Where prices tie, energy goes as early as the limits allow (issue 15): two cars that each
/// need one hour at full power within a two-hour flat-price window charge in the first hour
/// (the peak is not flattened by default). With a demand charge, peak shaving is an explicit
/// objective at that price: the same cars share the two hours at half power.
#[test]
fn flat_prices_front_load_and_a_demand_charge_shaves_the_peak() {
    let g = group(
        22_000,
        vec![CHEAP; 8],
        vec![ev("a", 0, 8, 11_000, 11_000), ev("b", 0, 8, 11_000, 11_000)],
    );
    let s = solve(&g, &SolveOptions::default(), None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    for row in &s.power_w {
        assert_eq!(row, &vec![11_000, 11_000, 11_000, 11_000, 0, 0, 0, 0]);
    }
    assert_eq!(s.peak_w, 22_000);
    let shaved = SolveOptions {
        peak_weight_eur_per_kw: 0.5,
        ..SolveOptions::default()
    };
    let s = solve(&g, &shaved, None).unwrap();
    assert_eq!(s.delivered_wh, vec![11_000, 11_000]);
    assert_eq!(s.peak_w, 11_000, "{:?}", s.power_w);
    assert!(check(&g, &s, &shaved).is_ok());
}
