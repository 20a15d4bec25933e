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

use crate::prep::{self, EU_PER_WH, clamped_request_wh};
use crate::{
    Admission, GroupInputs, ScheduleError, SolveOptions, SolveStatus, Vehicle, VehicleClass, solve,
};

/// Decide whether `request` can be guaranteed in the group described by `inputs`.
///
/// The request is treated as opted in and accepted (a vehicle with the same id in `inputs` is
/// replaced). A request above the vehicle's window maximum (module docs) is rejected. When
/// rejected, `max_guaranteed_wh` is the largest whole-Wh energy for which a
/// request with the same window would be accepted (found by maximising the request's delivery
/// with the existing accepted requests kept first, then confirmed by [`solve`]), and
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
    let solved_ok = |g: &GroupInputs| -> Result<bool, ScheduleError> {
        let s = solve(g, opts, None)?;
        Ok(matches!(
            s.status,
            SolveStatus::Optimal | SolveStatus::TimeLimit
        ))
    };
    // What the vehicle alone can take by `departure` (Wh, floored), and whether `energy_wh` is
    // admissible by then: within that window maximum and met by the solver.
    let dt_s = inputs.time_step_s as i128;
    let per_step_eu =
        request.max_power_w.max(0) as i128 * dt_s * request.efficiency_permille as i128;
    let window_max_wh = |departure: usize| -> i64 {
        let steps = departure.saturating_sub(request.arrival) as i128;
        (per_step_eu * steps / EU_PER_WH).min(i64::MAX as i128) as i64
    };
    let admissible = |energy_wh: i64, departure: usize| -> Result<bool, ScheduleError> {
        Ok(energy_wh <= window_max_wh(departure) && solved_ok(&with(energy_wh, departure, false))?)
    };
    let full = clamped_request_wh(request);
    if admissible(full, request.departure)? {
        return Ok(Admission::Accepted);
    }

    // Largest guaranteed energy: the request as best effort, the other best-effort vehicles
    // left out (they are not guaranteed, so they cannot block a guarantee), capped at the
    // window maximum. A vehicle staying past the horizon gets what it takes within it plus the
    // steps after it at full power (as the model counts them).
    let own_max = full.min(window_max_wh(request.departure));
    let mut probe = with(own_max, request.departure, true);
    if let Some(r) = probe.vehicles.last_mut() {
        r.class = VehicleClass::BestEffort;
    }
    let s = solve(&probe, opts, None)?;
    let after_horizon_wh = {
        let h = inputs.horizon;
        let steps = request.departure - request.arrival.max(h).min(request.departure);
        (per_step_eu * steps as i128 / EU_PER_WH) as i64
    };
    let mut candidate = if s.status == SolveStatus::Fallback {
        0
    } else {
        let k = s
            .vehicle_ids
            .iter()
            .position(|id| *id == request.id)
            .unwrap_or(0);
        s.delivered_wh
            .get(k)
            .copied()
            .unwrap_or(0)
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
