//! Admission control: is a new request guaranteed if accepted, and if not, what can be?
//!
//! The answer is defined through [`crate::solve`] itself, so it is exact by construction:
//! a request is accepted iff solving the group with it accepted meets every accepted request
//! within [`crate::ENERGY_TOLERANCE_WH`] (status `Optimal` or `TimeLimit`). Hence "admission
//! never accepts what the solver then cannot meet" holds for the same inputs and options.

use crate::prep::{self, clamped_request_wh};
use crate::{Admission, GroupInputs, ScheduleError, SolveOptions, SolveStatus, Vehicle, solve};

/// Decide whether `request` can be guaranteed in the group described by `inputs`.
///
/// The request is treated as opted in and accepted (a vehicle with the same id in `inputs` is
/// replaced). When rejected, `max_guaranteed_wh` is the largest whole-Wh energy for which a
/// request with the same window would be accepted (found by maximising the request's delivery
/// with the existing accepted requests kept first, then confirmed by [`solve`]), and
/// `earliest_full_departure` the earliest departure step within the horizon at which the full
/// request would be accepted (binary search; feasibility is monotone in the departure).
/// A solve that falls back (deadline) never leads to acceptance.
pub fn admit(
    inputs: &GroupInputs,
    request: &Vehicle,
    opts: &SolveOptions,
) -> Result<Admission, ScheduleError> {
    prep::validate(inputs)?;
    prep::validate_vehicle(request)?;
    let with = |energy_wh: i64, departure: usize, drop_best_effort: bool| -> GroupInputs {
        let mut g = inputs.clone();
        g.vehicles
            .retain(|v| v.id != request.id && !(drop_best_effort && v.opted_in && !v.accepted));
        let mut r = request.clone();
        r.opted_in = true;
        r.accepted = true;
        r.energy_requested_wh = energy_wh;
        r.departure = departure;
        g.vehicles.push(r);
        g
    };
    let accepted = |g: &GroupInputs| -> Result<bool, ScheduleError> {
        let s = solve(g, opts, None)?;
        Ok(matches!(
            s.status,
            SolveStatus::Optimal | SolveStatus::TimeLimit
        ))
    };
    let full = clamped_request_wh(request);
    if accepted(&with(full, request.departure, false))? {
        return Ok(Admission::Accepted);
    }

    // Largest guaranteed energy: the request as best effort, the other best-effort vehicles
    // left out (they are not guaranteed, so they cannot block a guarantee).
    let mut probe = with(full, request.departure, true);
    if let Some(r) = probe.vehicles.last_mut() {
        r.accepted = false;
    }
    let s = solve(&probe, opts, None)?;
    let mut candidate = if s.status == SolveStatus::Fallback {
        0
    } else {
        let k = s
            .vehicle_ids
            .iter()
            .position(|id| *id == request.id)
            .unwrap_or(0);
        s.delivered_wh.get(k).copied().unwrap_or(0).min(full)
    };
    let mut max_guaranteed_wh = 0;
    for _ in 0..6 {
        if candidate <= 0 {
            break;
        }
        if accepted(&with(candidate, request.departure, false))? {
            max_guaranteed_wh = candidate;
            break;
        }
        candidate = candidate - candidate / 1000 - 1;
    }

    // Earliest departure (within the horizon) at which the full request is accepted.
    let mut earliest_full_departure = None;
    if request.departure < inputs.horizon && accepted(&with(full, inputs.horizon, false))? {
        let (mut lo, mut hi) = (request.departure, inputs.horizon); // lo: rejected, hi: accepted
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if accepted(&with(full, mid, false))? {
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
