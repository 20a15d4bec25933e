//! Real data: the 48 Caltech ACN sessions of Tuesday 2019-05-07 (ACN-Data, Lee, Li & Low,
//! e-Energy 2019, CC BY 4.0) priced with the NL day-ahead prices of the same date (ENTSO-E).
//! Excerpts in `tests/data/`. Sessions arrive in order and go through admission control against
//! the group built so far (accepted ones hard, rejected ones best effort); the final plan must
//! meet every accepted request, pass the checker, and cost less than uncontrolled charging.

use std::path::Path;

use evflex_schedule::{
    Admission, GroupInputs, SolveOptions, SolveStatus, Vehicle, VehicleClass, admit, baseline,
    check, solve,
};

fn data(name: &str) -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data")
            .join(name),
    )
    .unwrap()
}

/// `2019-05-07 16:16:09-07:00` → quarter-hour step from 2019-05-07 00:00 local (floored).
fn step(ts: &str) -> usize {
    let day: usize = ts[8..10].parse().unwrap();
    let (h, m, s): (usize, usize, usize) = (
        ts[11..13].parse().unwrap(),
        ts[14..16].parse().unwrap(),
        ts[17..19].parse().unwrap(),
    );
    (day - 7) * 96 + (h * 3600 + m * 60 + s) / 900
}

#[test]
fn acn_day_with_admission_control() {
    let prices: Vec<i64> = data("nl-day-ahead-2019-05-07.csv")
        .lines()
        .skip(1)
        .flat_map(|l| {
            let eur_per_mwh: f64 = l.split(',').nth(1).unwrap().parse().unwrap();
            [(eur_per_mwh * 1000.0).round() as i64; 4] // EUR/MWh → µEUR/kWh, four quarter hours
        })
        .collect();
    assert_eq!(prices.len(), 96);
    let mut sessions: Vec<Vehicle> = data("acn-caltech-2019-05-07.csv")
        .lines()
        .skip(1)
        .enumerate()
        .map(|(k, l)| {
            let f: Vec<&str> = l.split(',').collect();
            let arrival = step(f[0]);
            Vehicle {
                id: format!("s{k:02}"),
                arrival,
                departure: step(f[1]).max(arrival + 1),
                max_power_w: 6_656, // 32 A × 208 V, the garage's level-2 EVSEs
                min_power_w: 1_248,
                energy_requested_wh: (f[2].parse::<f64>().unwrap() * 1000.0).round() as i64,
                battery_capacity_wh: None,
                energy_on_arrival_wh: None,
                class: VehicleClass::BestEffort,
                efficiency_permille: 1000,
                taper_knee_permille: None,
                energy_wanted_wh: None,
            }
        })
        .collect();
    assert_eq!(sessions.len(), 48);
    sessions.sort_by_key(|v| (v.arrival, v.id.clone()));

    let mut g = GroupInputs {
        group_id: 7,
        start_timestep: 1_557_212_400 / 900, // 2019-05-07T00:00-07:00
        time_step_s: 900,
        horizon: 96,
        capacity_w: vec![60_000; 96],
        other_load_w: vec![0; 96],
        pv_w: vec![0; 96],
        price_micro_eur_per_kwh: prices,
        battery: None,
        vehicles: Vec::new(),
        topology: None,
    };
    let opts = SolveOptions::default();
    let (mut accepted, mut rejected) = (0, 0);
    for mut v in sessions {
        match admit(&g, &v, &opts).unwrap() {
            Admission::Accepted => {
                v.class = VehicleClass::Guaranteed;
                accepted += 1;
            }
            Admission::Rejected {
                max_guaranteed_wh, ..
            } => {
                assert!(max_guaranteed_wh < v.energy_requested_wh);
                rejected += 1;
            }
        }
        g.vehicles.push(v);
    }
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal, "{:?}", s.fallback_reason);
    let r = check(&g, &s, &opts);
    assert!(r.is_ok(), "{:?}", r.violations);
    assert!(s.grid_import_w.iter().all(|&w| w <= 60_000));

    // Smart charging is cheaper than the uncontrolled baseline for the same energy.
    let base = baseline(&g);
    let value: i64 = s.flexibility.iter().map(|f| f.value_micro_eur).sum();
    let shifted: i64 = s.flexibility.iter().map(|f| f.shifted_wh).sum();
    eprintln!(
        "ACN 2019-05-07: {accepted} accepted, {rejected} rejected, delivered {:.1} kWh, peak {:.1} kW, \
         cost {:.2} EUR, shifted {:.1} kWh worth {:.2} EUR, baseline peak {:.1} kW",
        s.delivered_wh.iter().sum::<i64>() as f64 / 1000.0,
        s.peak_w as f64 / 1000.0,
        s.cost_micro_eur as f64 / 1e6,
        shifted as f64 / 1000.0,
        value as f64 / 1e6,
        (0..96)
            .map(|t| base.iter().map(|r| r[t]).sum::<i64>())
            .max()
            .unwrap() as f64
            / 1000.0,
    );
    assert!(accepted > 0 && rejected > 0);
    assert!(shifted > 0 && value > 0);
}
