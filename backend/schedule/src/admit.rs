//! Admission control: is a new request guaranteed if accepted, and if not, what can be?
//!
//! The answer is defined through [`crate::solve`] itself, so it is exact by construction:
//! a request is accepted iff solving the group with it accepted meets every accepted request
//! within [`crate::ENERGY_TOLERANCE_WH`] (status `Optimal` or `TimeLimit`). Hence "admission
//! never accepts what the solver then cannot meet" holds for the same inputs and options.
//!
//! A request is also never accepted beyond what the vehicle itself can take by its departure,
//! its **window maximum** `max_power_w × Δt × η × (departure − arrival)` (the vehicle's maximum
//! is already the lower of its own and the charge point's; steps past the horizon count, as the
//! model assumes full power there). [`crate::solve`] would cap such a guarantee at the window and
//! count the rest as shortfall; admission rejects it instead, with `max_guaranteed_wh` at most
//! the window maximum.
//!
//! **A guarantee already broken** (an accepted vehicle of the group that cannot be met any more,
//! e.g. its battery tapers, or it was delayed so its remaining energy no longer fits before its
//! departure, or the capacity cannot carry it: [`crate::solve`] reports `Shortfall` for the
//! group without the request) does not block admission for the rest of its stay. The request is
//! judged on what it changes. With `S₀` the total unmet energy (`Schedule::unmet_wh`, in exact
//! units) of the other accepted vehicles in the group without the request, and `S` the same
//! total in the schedule [`crate::solve`] computes with the request accepted, the request is
//! accepted iff that schedule
//!
//! - (a) meets the request itself within [`crate::ENERGY_TOLERANCE_WH`], and
//! - (b) leaves the other guarantees no worse off: `S ≤ S₀ + ENERGY_TOLERANCE_WH` (the tolerance
//!   once for the total, as for a single request),
//!
//! and is within its window maximum, as always. A broken guarantee thus stays as broken as it
//! was, never more; the request cannot take from it. `max_guaranteed_wh` and
//! `earliest_full_departure` are the largest energy and the earliest departure for which (a) and
//! (b) hold, found as before. Without a broken guarantee nothing changes: the plain rule above
//! (every accepted request met) decides, with the same solves and answers as before. With one,
//! the status is `Shortfall` whatever the request, and (a) and (b) decide instead.
//!
//! Why the solver's figures suffice: its phases minimise the total accepted shortfall first
//! (`MinShortfall`, all accepted vehicles alike), and adding the request only takes room from
//! the others, so their shortfall is at least `S₀` in any schedule with it. A schedule with
//! (a) and (b) therefore exists iff the minimal total is `S₀`, and then every schedule of that
//! total meets the request and leaves the others at `S₀`: the split the solver picks is forced
//! (up to the phases' tolerances, well within 1 Wh below some 100 kWh of shortfall). A request
//! whose reservation frees room for the others (it curtails uncontrolled charging,
//! `crate::reserve`) may be refused where a split with (a) and (b) exists: the check errs on
//! the side of refusing.
//!
//! `S₀` costs no extra solve: it is read from the solve that finds the largest guarantee (the
//! request as best effort, the other best-effort vehicles left out), which runs whenever the
//! full request is not accepted outright, as before. Its accepted vehicles are those of the
//! group without the request, and best-effort vehicles never take from them, so its accepted
//! shortfall is that of the group without the request. Its cost phase maximises the request's
//! delivery with the others' shortfall capped at `S₀`, so its delivery is the candidate for
//! `max_guaranteed_wh` here too.

use std::time::{Duration, Instant};

use crate::prep::{self, EU_PER_WH, clamped_request_wh};
use crate::solve::{TOL_EU, energy_figures, solve_prepared};
use crate::{
    Admission, GroupInputs, ScheduleError, SolveOptions, SolveStatus, Vehicle, VehicleClass,
};

/// What admission reads from one solve.
struct Outcome {
    status: SolveStatus,
    /// The request's energy delivered within the horizon (EU).
    request_delivered_eu: i128,
    /// The request's unmet energy (EU), as [`crate::solve`] measures it.
    request_unmet_eu: i128,
    /// The total unmet energy of the accepted vehicles other than the request (EU).
    existing_shortfall_eu: i128,
}

/// Decide whether `request` can be guaranteed in the group described by `inputs`.
///
/// The request is treated as opted in and accepted (a vehicle with the same id in `inputs` is
/// replaced). A request above the vehicle's window maximum (module docs) is rejected. When the
/// group already holds a broken guarantee, the request is accepted iff it is met itself and the
/// existing guarantees' total shortfall does not grow (module docs, (a) and (b)). When
/// rejected, `max_guaranteed_wh` is the largest whole-Wh energy for which a
/// request with the same window would be accepted (found by maximising the request's delivery
/// with the existing accepted requests kept first, then confirmed by [`crate::solve`]), and
/// `earliest_full_departure` the earliest departure step within the horizon at which the full
/// request would be accepted (binary search; feasibility is monotone in the departure).
/// A solve that falls back (deadline) never leads to acceptance. With a topology, the
/// request's charge point must already be in `inputs.topology` (keyed by its id).
pub fn admit(
    inputs: &GroupInputs,
    request: &Vehicle,
    opts: &SolveOptions,
) -> Result<Admission, ScheduleError> {
    prep::validate(inputs)?;
    prep::validate_vehicle(request)?;
    let with = |energy_wh: i64, departure: usize, drop_best_effort: bool| -> GroupInputs {
        let mut g = inputs.clone();
        g.vehicles.retain(|v| {
            v.id != request.id && !(drop_best_effort && v.class == VehicleClass::BestEffort)
        });
        let mut r = request.clone();
        r.class = VehicleClass::Guaranteed;
        r.energy_requested_wh = energy_wh;
        r.departure = departure;
        g.vehicles.push(r);
        // A tree keeps only the charge points of the vehicles left (the request's must be in
        // `inputs.topology` already).
        if let Some(top) = g.topology.as_mut() {
            let ids: Vec<&str> = g.vehicles.iter().map(|v| v.id.as_str()).collect();
            top.charge_points
                .retain(|c| ids.contains(&c.vehicle_id.as_str()));
        }
        g
    };
    // Exactly what `solve` does (same preparation, deadline and schedule), with the energy
    // figures in exact units: the request's, and the other accepted vehicles' total shortfall.
    let run = |g: &GroupInputs| -> Result<Outcome, ScheduleError> {
        let start = Instant::now();
        let p = prep::prepare(g)?;
        let deadline = start + Duration::from_millis(opts.time_limit_ms);
        let s = solve_prepared(&p, opts, None, deadline);
        let mut o = Outcome {
            status: s.status,
            request_delivered_eu: 0,
            request_unmet_eu: 0,
            existing_shortfall_eu: 0,
        };
        for (v, (delivered, unmet)) in p.vehicles.iter().zip(energy_figures(&p, &s.power_w)) {
            if v.id == request.id {
                o.request_delivered_eu = delivered;
                o.request_unmet_eu = unmet;
            } else if v.class == VehicleClass::Guaranteed {
                o.existing_shortfall_eu += unmet;
            }
        }
        Ok(o)
    };
    // What the vehicle alone can take by `departure` (Wh, floored).
    let dt_s = inputs.time_step_s as i128;
    let per_step_eu =
        request.max_power_w.max(0) as i128 * dt_s * request.efficiency_permille as i128;
    let window_max_wh = |departure: usize| -> i64 {
        let steps = departure.saturating_sub(request.arrival) as i128;
        (per_step_eu * steps / EU_PER_WH).min(i64::MAX as i128) as i64
    };
    // Whether a solve with the request accepted meets it: every accepted request met, or, when
    // the group without the request falls short by `broken` (EU), the request met and the
    // others' total shortfall not grown (module docs).
    let meets = |o: &Outcome, broken: Option<i128>| -> bool {
        match o.status {
            SolveStatus::Optimal | SolveStatus::TimeLimit => true,
            SolveStatus::Shortfall => broken.is_some_and(|s0| {
                o.request_unmet_eu <= TOL_EU && o.existing_shortfall_eu <= s0 + TOL_EU
            }),
            SolveStatus::Fallback => false,
        }
    };
    let full = clamped_request_wh(request);
    let first = if full <= window_max_wh(request.departure) {
        let o = run(&with(full, request.departure, false))?;
        if meets(&o, None) {
            return Ok(Admission::Accepted);
        }
        Some(o)
    } else {
        None
    };

    // Largest guaranteed energy: the request as best effort, the other best-effort vehicles
    // left out (they are not guaranteed, so they cannot block a guarantee), capped at the
    // window maximum. A vehicle staying past the horizon gets what it takes within it plus the
    // steps after it at full power (as the model counts them). Its accepted vehicles are those
    // of the group without the request: their shortfall is `S₀` (module docs).
    let own_max = full.min(window_max_wh(request.departure));
    let mut probe = with(own_max, request.departure, true);
    if let Some(r) = probe.vehicles.last_mut() {
        r.class = VehicleClass::BestEffort;
    }
    let base = run(&probe)?;
    let broken = (base.status == SolveStatus::Shortfall).then_some(base.existing_shortfall_eu);
    // Admissible by `departure`: within the window maximum and met by the solver.
    let admissible = |energy_wh: i64, departure: usize| -> Result<bool, ScheduleError> {
        Ok(energy_wh <= window_max_wh(departure)
            && meets(&run(&with(energy_wh, departure, false))?, broken))
    };
    if broken.is_some() && first.as_ref().is_some_and(|o| meets(o, broken)) {
        return Ok(Admission::Accepted);
    }
    let after_horizon_wh = {
        let h = inputs.horizon;
        let steps = request.departure - request.arrival.max(h).min(request.departure);
        (per_step_eu * steps as i128 / EU_PER_WH) as i64
    };
    let mut candidate = if base.status == SolveStatus::Fallback {
        0
    } else {
        ((base.request_delivered_eu / EU_PER_WH) as i64)
            .saturating_add(after_horizon_wh)
            .min(own_max)
    };
    let mut max_guaranteed_wh = 0;
    for _ in 0..6 {
        if candidate <= 0 {
            break;
        }
        if admissible(candidate, request.departure)? {
            max_guaranteed_wh = candidate;
            break;
        }
        candidate = candidate - candidate / 1000 - 1;
    }

    // Earliest departure (within the horizon) at which the full request is accepted.
    let mut earliest_full_departure = None;
    if request.departure < inputs.horizon && admissible(full, inputs.horizon)? {
        let (mut lo, mut hi) = (request.departure, inputs.horizon); // lo: rejected, hi: accepted
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if admissible(full, mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
        earliest_full_departure = Some(hi);
    }
    Ok(Admission::Rejected {
        max_guaranteed_wh,
        earliest_full_departure,
    })
}
