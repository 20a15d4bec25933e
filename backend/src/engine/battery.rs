//! Stationary batteries behind a group's connection (issue 15): the energy a plan starts from,
//! and the power each battery is told to charge or discharge.
//!
//! **State.** The site's battery controller posts what it measures
//! (`PUT /api/v1/groups/{id}/batteries/{battery_id}/state`: energy, power, instant). A plan's
//! step 0 starts at the quarter hour, so the plan starts from the energy the battery held
//! then: the measured energy less what the measured power moved since the quarter hour
//! ([`energy_at_step_start`]; charging counts at the battery's efficiency, as in the LP; a
//! state measured before the quarter hour is moved on to it, for 15 minutes at most). A
//! battery with no measured state starts from the topology's `energy_wh`.
//!
//! **Set-points.** The optimiser plans one battery per group (the sum of the group's
//! batteries). Each battery gets the share of the planned power that its own maximum has of
//! the group's, in the direction planned ([`share_w`]); the controller reads them
//! (`GET /api/v1/groups/{id}/batteries/{battery_id}/setpoints`), from the schedule in force,
//! which an on-chain commitment covers like every set-point sent to a CPO.

use crate::store::groups::{BatterySpec, BatteryState};

/// Longest time (s) a measured state is moved on at its power: one quarter hour. A state older
/// than that says little about the power since (the battery followed newer plans).
const MAX_MOVE_S: i64 = 900;

/// The energy (Wh) battery `spec` held at `step_start` (Unix seconds), from its measured
/// `state` if any: the measured energy less the measured power over the time since
/// `step_start` (or plus it, for a state measured before), that time counted up to
/// [`MAX_MOVE_S`]; within `0..=capacity_wh`.
pub fn energy_at_step_start(
    spec: &BatterySpec,
    state: Option<&BatteryState>,
    step_start: i64,
) -> i64 {
    let Some(s) = state else {
        return spec.energy_wh.clamp(0, spec.capacity_wh);
    };
    let stored_w = if s.power_w > 0 {
        s.power_w * i64::from(spec.efficiency_permille.clamp(1, 1_000)) / 1_000
    } else {
        s.power_w
    };
    let since_s = (s.measured_at - step_start).clamp(-MAX_MOVE_S, MAX_MOVE_S);
    let moved_wh = stored_w * since_s / 3_600;
    (s.energy_wh - moved_wh).clamp(0, spec.capacity_wh)
}

/// Battery `spec`'s share (W, + charging) of the group's planned battery power `planned_w`:
/// in proportion to its maximum in that direction among `all` the group's batteries.
pub fn share_w(spec: &BatterySpec, all: &[BatterySpec], planned_w: i64) -> i64 {
    let max = |b: &BatterySpec| {
        if planned_w >= 0 {
            b.max_charge_w
        } else {
            b.max_discharge_w
        }
    };
    let total: i64 = all.iter().map(max).sum();
    if total <= 0 {
        return 0;
    }
    // i128: a group's battery power times a battery's maximum can pass i64 at the bounds.
    (i128::from(planned_w) * i128::from(max(spec)) / i128::from(total)) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn battery(id: &str, max_charge_w: i64, max_discharge_w: i64) -> BatterySpec {
        BatterySpec {
            id: id.to_owned(),
            capacity_wh: 60_000,
            energy_wh: 30_000,
            max_charge_w,
            max_discharge_w,
            efficiency_permille: 900,
        }
    }

    #[test]
    fn the_plan_starts_from_the_energy_at_the_quarter_hour() {
        let b = battery("b1", 30_000, 30_000);
        assert_eq!(
            energy_at_step_start(&b, None, 0),
            30_000,
            "topology's figure"
        );
        let charging = BatteryState {
            energy_wh: 20_000,
            power_w: 20_000,
            measured_at: 600,
        };
        // 10 min at 20 kW stored 3 kWh at 90 %.
        assert_eq!(energy_at_step_start(&b, Some(&charging), 0), 17_000);
        let discharging = BatteryState {
            energy_wh: 20_000,
            power_w: -10_000,
            measured_at: 360,
        };
        assert_eq!(energy_at_step_start(&b, Some(&discharging), 0), 21_000);
        // Measured before the quarter hour: moved on at the same power, for 15 min at most.
        assert_eq!(energy_at_step_start(&b, Some(&discharging), 720), 19_000);
        assert_eq!(energy_at_step_start(&b, Some(&discharging), 3_960), 17_500);
        let emptying = BatteryState {
            energy_wh: 500,
            power_w: -30_000,
            measured_at: 0,
        };
        assert_eq!(
            energy_at_step_start(&b, Some(&emptying), 900),
            0,
            "never below 0"
        );
    }

    #[test]
    fn each_battery_gets_the_share_of_its_maximum_in_the_planned_direction() {
        let all = [battery("a", 30_000, 10_000), battery("b", 10_000, 30_000)];
        assert_eq!(share_w(&all[0], &all, 20_000), 15_000);
        assert_eq!(share_w(&all[1], &all, 20_000), 5_000);
        assert_eq!(share_w(&all[0], &all, -20_000), -5_000);
        assert_eq!(share_w(&all[1], &all, -20_000), -15_000);
        assert_eq!(share_w(&all[0], &all[..1], 0), 0);
        let dead = battery("c", 0, 0);
        assert_eq!(share_w(&dead, std::slice::from_ref(&dead), 5_000), 0);
    }
}
