//! Admission next to a broken guarantee: an accepted vehicle of the group that can no longer be
//! met (its window or its battery's taper is too short for what it still asks, or the capacity
//! cannot carry it) does not block admission. A new request is judged on what it changes: it
//! must be met itself, and the existing guarantees' total shortfall must not grow.

mod common;

use common::{ev, group};
use evflex_schedule::{
    Admission, GroupInputs, Mode, Schedule, SolveOptions, SolveStatus, Vehicle, admit, solve,
};

fn lp() -> SolveOptions {
    SolveOptions::default()
}

fn milp() -> SolveOptions {
    SolveOptions {
        mode: Mode::Milp,
        ..SolveOptions::default()
    }
}

fn delivered(s: &Schedule, id: &str) -> i64 {
    s.delivered_wh[s.vehicle_ids.iter().position(|v| v == id).unwrap()]
}

fn unmet(s: &Schedule, id: &str) -> i64 {
    s.unmet_wh[s.vehicle_ids.iter().position(|v| v == id).unwrap()]
}

/// `g` with `v` added as an accepted vehicle.
fn plus(g: &GroupInputs, v: &Vehicle) -> GroupInputs {
    let mut g = g.clone();
    g.vehicles.push(v.clone());
    g
}

/// Solve `g` with and without `req` accepted at `energy_wh`: the request is met, and no
/// existing vehicle gets less (within 1 Wh per step of the horizon), so the broken guarantees
/// are no more broken.
fn assert_changes_nothing(g: &GroupInputs, req: &Vehicle, energy_wh: i64, opts: &SolveOptions) {
    let without = solve(g, opts, None).unwrap();
    let req = Vehicle {
        energy_requested_wh: energy_wh,
        ..req.clone()
    };
    let with = solve(&plus(g, &req), opts, None).unwrap();
    assert!(unmet(&with, &req.id) <= 1, "request short: {with:?}");
    let slack = g.horizon as i64;
    for v in &g.vehicles {
        assert!(
            delivered(&with, &v.id) + slack >= delivered(&without, &v.id),
            "{} gets {} Wh with the request, {} Wh without",
            v.id,
            delivered(&with, &v.id),
            delivered(&without, &v.id),
        );
    }
    let short = |s: &Schedule| -> i64 { g.vehicles.iter().map(|v| unmet(s, &v.id)).sum() };
    assert!(short(&with) <= short(&without) + slack);
}

/// (1) Plenty of capacity, one guarantee broken by its window (30 kWh asked, two steps at
/// 11 kW: 5.5 kWh at most). A small request is accepted; a large one is offered what its own
/// window takes, and the earliest departure at which the whole of it fits.
#[test]
fn a_broken_guarantee_with_free_capacity_does_not_block_admission() {
    let g = group(
        100_000,
        vec![100_000; 16],
        vec![ev("a", 0, 2, 11_000, 30_000)],
    );
    for opts in [lp(), milp()] {
        let s = solve(&g, &opts, None).unwrap();
        assert_eq!(s.status, SolveStatus::Shortfall);
        assert_eq!(unmet(&s, "a"), 24_500);

        let small = ev("b", 0, 8, 11_000, 5_000);
        assert_eq!(admit(&g, &small, &opts).unwrap(), Admission::Accepted);
        assert_changes_nothing(&g, &small, 5_000, &opts);

        // 40 kWh at 11 kW: 22 kWh by step 8; the whole of it by step 15 (14.5 steps).
        let large = ev("b", 0, 8, 11_000, 40_000);
        assert_eq!(
            admit(&g, &large, &opts).unwrap(),
            Admission::Rejected {
                max_guaranteed_wh: 22_000,
                earliest_full_departure: Some(15),
            }
        );
        assert_changes_nothing(&g, &large, 22_000, &opts);
        let offered = ev("b", 0, 8, 11_000, 22_000);
        assert_eq!(admit(&g, &offered, &opts).unwrap(), Admission::Accepted);
    }
}

/// (1, taper) The same with a guarantee broken by its battery's taper: 9 kWh asked over four
/// steps at 11 kW (11 kWh without the taper), but the battery is at 50 of 60 kWh with its knee
/// at 80 %, so it takes far less. A new request in the same group is accepted.
#[test]
fn a_guarantee_broken_by_its_taper_does_not_block_admission() {
    let a = Vehicle {
        battery_capacity_wh: Some(60_000),
        energy_on_arrival_wh: Some(50_000),
        taper_knee_permille: Some(800),
        energy_wanted_wh: None,
        ..ev("a", 0, 4, 11_000, 9_000)
    };
    let g = group(79_000, vec![100_000; 12], vec![a]);
    let opts = lp();
    let s = solve(&g, &opts, None).unwrap();
    assert_eq!(s.status, SolveStatus::Shortfall);
    assert!(unmet(&s, "a") > 1_000, "{s:?}");

    let req = ev("b", 0, 11, 3_700, 10_000);
    assert_eq!(admit(&g, &req, &opts).unwrap(), Admission::Accepted);
    assert_changes_nothing(&g, &req, 10_000, &opts);
    // Beyond its own window (3.7 kW × 11 quarter hours = 10 175 Wh): offered exactly that.
    let more = ev("b", 0, 11, 3_700, 17_800);
    assert_eq!(
        admit(&g, &more, &opts).unwrap(),
        Admission::Rejected {
            max_guaranteed_wh: 10_175,
            earliest_full_departure: None,
        }
    );
}

/// (2) A guarantee broken by the capacity (30 kWh asked by step 4 on an 11 kW connection: 11 kWh
/// at most) takes the whole connection until it leaves. A new request can only have what comes
/// after: the offer is that much, so the broken guarantee gets no less than without it.
#[test]
fn a_request_is_offered_only_what_leaves_a_broken_guarantee_as_it_was() {
    let g = group(
        11_000,
        vec![100_000; 8],
        vec![ev("a", 0, 4, 22_000, 30_000)],
    );
    for opts in [lp(), milp()] {
        let s = solve(&g, &opts, None).unwrap();
        assert_eq!(s.status, SolveStatus::Shortfall);
        assert_eq!(delivered(&s, "a"), 11_000);

        // 15 kWh by step 8 at 11 kW: steps 4..8 give 11 kWh without touching "a".
        let req = ev("b", 0, 8, 11_000, 15_000);
        let Admission::Rejected {
            max_guaranteed_wh,
            earliest_full_departure,
        } = admit(&g, &req, &opts).unwrap()
        else {
            panic!("accepted at the broken guarantee's expense");
        };
        assert_eq!(earliest_full_departure, None);
        assert!(
            (10_990..=11_000).contains(&max_guaranteed_wh),
            "{max_guaranteed_wh}"
        );
        assert_changes_nothing(&g, &req, max_guaranteed_wh, &opts);
        let offered = Vehicle {
            energy_requested_wh: max_guaranteed_wh,
            ..req.clone()
        };
        assert_eq!(admit(&g, &offered, &opts).unwrap(), Admission::Accepted);
        // A request that must take from "a" (its window is "a"'s) gets nothing.
        let inside = ev("c", 0, 4, 11_000, 2_000);
        assert_eq!(
            admit(&g, &inside, &opts).unwrap(),
            Admission::Rejected {
                max_guaranteed_wh: 0,
                earliest_full_departure: Some(5),
            }
        );
    }
}

/// (2, partly binding) The connection has room beside the broken guarantee in its own steps
/// too: 16 kW, "a" takes 11 kW of it, 5 kW are free in steps 0..4.
#[test]
fn a_request_shares_the_room_a_broken_guarantee_cannot_use() {
    let g = group(
        16_000,
        vec![100_000; 8],
        vec![ev("a", 0, 4, 11_000, 30_000)],
    );
    let opts = lp();
    // 5 kW × 4 quarter hours = 5 kWh beside "a".
    let req = ev("b", 0, 4, 11_000, 8_000);
    let Admission::Rejected {
        max_guaranteed_wh, ..
    } = admit(&g, &req, &opts).unwrap()
    else {
        panic!("accepted at the broken guarantee's expense");
    };
    assert!(
        (4_990..=5_000).contains(&max_guaranteed_wh),
        "{max_guaranteed_wh}"
    );
    assert_changes_nothing(&g, &req, max_guaranteed_wh, &opts);
    let fits = ev("b", 0, 4, 11_000, 4_000);
    assert_eq!(admit(&g, &fits, &opts).unwrap(), Admission::Accepted);
}

/// (3) Without a broken guarantee nothing changes: a request that would break an existing
/// guarantee is refused and offered what is left beside it.
#[test]
fn without_a_broken_guarantee_admission_is_as_before() {
    let g = group(11_000, vec![100_000; 8], vec![ev("a", 0, 4, 11_000, 5_000)]);
    for opts in [lp(), milp()] {
        assert_eq!(solve(&g, &opts, None).unwrap().status, SolveStatus::Optimal);
        assert_eq!(
            admit(&g, &ev("b", 0, 4, 11_000, 6_000), &opts).unwrap(),
            Admission::Accepted
        );
        // 11 kWh in steps 0..4, 5 kWh of it for "a": 6 kWh left; 10 kWh by step 6.
        let Admission::Rejected {
            max_guaranteed_wh,
            earliest_full_departure,
        } = admit(&g, &ev("b", 0, 4, 11_000, 10_000), &opts).unwrap()
        else {
            panic!("accepted beyond the capacity");
        };
        assert!(
            (5_990..=6_000).contains(&max_guaranteed_wh),
            "{max_guaranteed_wh}"
        );
        assert_eq!(earliest_full_departure, Some(6));
    }
}
