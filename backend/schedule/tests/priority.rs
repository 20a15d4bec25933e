//! The priority rule between guarantees and uncontrolled charging (`DESIGN.md`, "Priorities"):
//! an accepted guarantee outranks uncontrolled charging, and uncontrolled load is curtailed only
//! in the steps, and only by as much, as a guarantee needs.

mod common;

use common::{ev, group};
use evflex_schedule::profile::uncontrolled_limits;
use evflex_schedule::{
    Admission, SolveOptions, SolveStatus, Vehicle, VehicleClass, admit, check, solve,
};

/// Not opted in: charges as fast as possible from plug-in.
fn uncontrolled(id: &str, arrival: usize, max_w: i64, energy_wh: i64) -> Vehicle {
    Vehicle {
        class: VehicleClass::Uncontrolled,
        ..ev(id, arrival, 8, max_w, energy_wh)
    }
}

#[test]
fn a_later_uncontrolled_arrival_is_curtailed_only_as_much_as_a_guarantee_needs() {
    let opts = SolveOptions::default();
    // One 11 kW connection, eight quarter hours. "a" asks for 6 kWh by step 4: 24 000 W-steps,
    // which fit into steps 0..4 (44 000 W-steps of headroom).
    let mut g = group(11_000, vec![100_000; 8], vec![ev("a", 0, 4, 11_000, 6_000)]);
    assert_eq!(
        admit(&g, &g.vehicles[0], &opts).unwrap(),
        Admission::Accepted
    );

    // Then a car that did not opt in plugs in at step 1 and would take the whole connection
    // from then on (30 kWh at 11 kW). First come, first served over the headroom would leave
    // "a" only step 0 (2.75 kWh): the guarantee would break.
    g.vehicles.push(uncontrolled("u", 1, 11_000, 30_000));
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal, "{s:?}");
    let (a, u) = (&s.power_w[0], &s.power_w[1]);
    assert!(s.delivered_wh[0] >= 6_000 - 1, "{:?}", s.delivered_wh);
    // "u" gets everything "a" can do without: all of step 1 ("a" can use steps 0, 2, 3
    // instead), 9 kW of step 2, nothing of step 3 (there "a" must take all 11 kW), and the full
    // connection after "a" has left.
    assert_eq!(
        u,
        &vec![0, 11_000, 9_000, 0, 11_000, 11_000, 11_000, 11_000]
    );
    // Curtailed by exactly what "a" needs beyond the step "u" is not there (step 0):
    // 24 000 − 11 000 = 13 000 W-steps.
    let curtailed: i64 = (1..4).map(|t| 11_000 - u[t]).sum();
    assert_eq!(curtailed, 13_000);
    assert_eq!(a.iter().sum::<i64>(), 24_000);
    for t in 0..8 {
        assert!(s.grid_import_w[t] <= 11_000, "step {t}");
    }
    let report = check(&g, &s, &opts);
    assert!(report.is_ok(), "{:?}", report.violations);

    // The curtailment is what the charge point of "u" is told (its maximum elsewhere).
    let limits = uncontrolled_limits(&g.vehicles[1], u, 900).expect("curtailed");
    assert_eq!(
        limits,
        vec![11_000, 11_000, 9_000, 0, 11_000, 11_000, 11_000, 11_000]
    );

    // Without the guarantee ("a" only best effort) "u" charges at full power from plug-in and
    // is not limited at all.
    g.vehicles[0].class = VehicleClass::BestEffort;
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(
        s.power_w[1],
        vec![0, 11_000, 11_000, 11_000, 11_000, 11_000, 11_000, 11_000]
    );
    assert_eq!(
        uncontrolled_limits(&g.vehicles[1], &s.power_w[1], 900),
        None
    );
}

#[test]
fn uncontrolled_vehicles_that_fit_are_not_curtailed() {
    let opts = SolveOptions::default();
    // 22 kW connection: "a" (11 kW) and "u" (11 kW) both fit at full power.
    let g = group(
        22_000,
        vec![100_000; 8],
        vec![
            ev("a", 0, 4, 11_000, 6_000),
            uncontrolled("u", 1, 11_000, 30_000),
        ],
    );
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Optimal);
    assert_eq!(
        s.power_w[1],
        vec![0, 11_000, 11_000, 11_000, 11_000, 11_000, 11_000, 11_000]
    );
    assert_eq!(
        uncontrolled_limits(&g.vehicles[1], &s.power_w[1], 900),
        None
    );
}

#[test]
fn a_request_above_what_the_vehicle_can_take_is_rejected_with_its_window_maximum() {
    let opts = SolveOptions::default();
    let g = group(50_000, vec![100_000; 8], Vec::new());
    // 6 kW for 4 quarter hours is 6 kWh; 90 % efficient into the battery: 5.4 kWh.
    let mut req = ev("r", 0, 4, 6_000, 7_000);
    req.efficiency_permille = 900;
    match admit(&g, &req, &opts).unwrap() {
        Admission::Rejected {
            max_guaranteed_wh,
            earliest_full_departure,
        } => {
            assert_eq!(max_guaranteed_wh, 5_400);
            // 7 kWh need 6 quarter hours (5 give only 6.75 kWh).
            assert_eq!(earliest_full_departure, Some(6));
        }
        a => panic!("accepted beyond the window: {a:?}"),
    }
    req.energy_requested_wh = 5_400;
    assert_eq!(admit(&g, &req, &opts).unwrap(), Admission::Accepted);
    req.energy_requested_wh = 5_401;
    assert!(matches!(
        admit(&g, &req, &opts).unwrap(),
        Admission::Rejected { .. }
    ));
}
