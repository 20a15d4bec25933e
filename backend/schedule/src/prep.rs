//! Validation and preprocessing shared by [`crate::solve`], [`crate::admit`], [`crate::check`]
//! and [`crate::baseline`]: vehicles in id order, windows clipped to the horizon, energy targets
//! in exact integer units, and the fixed profiles of uncontrolled vehicles.

use crate::taper::Taper;
use crate::topology::{Loads, PrepTree, VehicleLimits, prepare_tree};
use crate::{Battery, GroupInputs, ScheduleError, Vehicle, VehicleClass};

/// Exact integer energy unit: W·s·‰ (watts × seconds × efficiency per mille). One Wh into the
/// battery is 3 600 000 units; `p` W for one step of `dt` s at efficiency `η` ‰ is `p·dt·η`.
pub(crate) const EU_PER_WH: i128 = 3_600_000;

/// One vehicle after preprocessing.
#[derive(Debug, Clone)]
pub(crate) struct PrepVehicle {
    /// Index into `GroupInputs::vehicles`.
    pub idx: usize,
    /// Vehicle id.
    pub id: String,
    /// First step of the window (clipped to the horizon).
    pub start: usize,
    /// One past the last step of the window (clipped to the horizon); `start == end` if empty.
    pub end: usize,
    /// Maximum power (W).
    pub max_w: i64,
    /// Minimum power when charging (W, MILP).
    pub min_w: i64,
    /// Efficiency (‰).
    pub eff: i64,
    /// Treatment.
    pub class: VehicleClass,
    /// All the energy it takes: the request, or the energy wanted beyond an accepted one
    /// ([`Vehicle::energy_wanted_wh`]), clamped to what the battery can take (EU).
    pub target_eu: i128,
    /// The part of the request that must be delivered within the horizon to meet it by
    /// departure (less than the request only when the vehicle stays past the horizon) (EU).
    pub needed_eu: i128,
    /// Hard energy (accepted only): `min(needed, most the window can take)` (EU).
    pub hard_eu: i128,
    /// Best-effort energy on top of `hard_eu`, up to `min(target, most the window can take)`
    /// (EU): a best-effort vehicle's request, an accepted one's energy wanted beyond it.
    pub soft_eu: i128,
    /// Fixed profile over the horizon (W) for uncontrolled vehicles; empty otherwise.
    pub fixed: Vec<i64>,
    /// The battery taper, when it applies (`crate::taper`): every row of this vehicle keeps it.
    pub taper: Option<Taper>,
}

impl PrepVehicle {
    /// Energy (EU) the row `power_w` (full horizon) delivers into this vehicle's battery.
    pub fn delivered_eu(&self, dt_s: i64, power_w: &[i64]) -> i128 {
        power_w.iter().map(|&p| p as i128).sum::<i128>() * dt_s as i128 * self.eff as i128
    }

    /// Lower the row `power_w` (full horizon) where it breaks the taper, if any, forward in time;
    /// `floor` maps a lowered power to one the charge point takes.
    pub fn clip_taper(&self, dt_s: i64, power_w: &mut [i64], floor: impl Fn(i64) -> i64) {
        if let Some(tp) = &self.taper {
            let w = dt_s as i128 * self.eff as i128;
            tp.clip(w, power_w, self.start, self.end, floor);
        }
    }

    /// The most (W) the taper lets `power_w[t]` grow by ([`Taper::room_w`]); unbounded without one.
    pub fn taper_room_w(&self, dt_s: i64, power_w: &[i64], t: usize) -> i64 {
        match &self.taper {
            Some(tp) => {
                let w = dt_s as i128 * self.eff as i128;
                tp.room_w(w, power_w, self.start, self.end, t)
            }
            None => i64::MAX,
        }
    }
}

/// A validated group, ready for the model.
#[derive(Debug, Clone)]
pub(crate) struct Prepared {
    /// Steps.
    pub h: usize,
    /// Step length (s).
    pub dt_s: i64,
    /// Step length (h).
    pub dt_h: f64,
    /// Vehicles sorted by id.
    pub vehicles: Vec<PrepVehicle>,
    /// Capacity used by the model and the checker: `max(capacity, other − pv)` (W), so that a
    /// non-EV load above the connection limit never makes the model infeasible (EVs then get 0).
    pub cap_eff: Vec<i64>,
    /// Non-EV load (W).
    pub other: Vec<i64>,
    /// PV (W).
    pub pv: Vec<i64>,
    /// Sum of the uncontrolled vehicles' fixed profiles (W).
    pub fixed_w: Vec<i64>,
    /// Price (µEUR/kWh).
    pub price: Vec<i64>,
    /// Battery.
    pub battery: Option<Battery>,
    /// The tree of limits and the charge points (vehicle order), when the group has one.
    pub tree: Option<PrepTree>,
}

impl Prepared {
    /// Grid import (W) of a schedule: `max(0, Σ EV + battery + other − pv)`.
    pub fn import_w(&self, t: usize, ev_sum_w: i64, battery_w: i64) -> i64 {
        (ev_sum_w + battery_w + self.other[t] - self.pv[t]).max(0)
    }
}

/// Validate `inputs`, naming the first offending field.
pub(crate) fn validate(inputs: &GroupInputs) -> Result<(), ScheduleError> {
    if inputs.horizon == 0 {
        return Err(ScheduleError::NotPositive { field: "horizon" });
    }
    if inputs.time_step_s == 0 {
        return Err(ScheduleError::NotPositive {
            field: "time_step_s",
        });
    }
    let h = inputs.horizon;
    for (field, v) in [
        ("capacity_w", &inputs.capacity_w),
        ("other_load_w", &inputs.other_load_w),
        ("pv_w", &inputs.pv_w),
        ("price_micro_eur_per_kwh", &inputs.price_micro_eur_per_kwh),
    ] {
        if v.len() != h {
            return Err(ScheduleError::Length {
                field,
                expected: h,
                got: v.len(),
            });
        }
    }
    for (field, v) in [
        ("capacity_w", &inputs.capacity_w),
        ("other_load_w", &inputs.other_load_w),
        ("pv_w", &inputs.pv_w),
    ] {
        if let Some((t, &x)) = v.iter().enumerate().find(|(_, x)| **x < 0) {
            return Err(ScheduleError::Negative {
                field: format!("{field}[{t}]"),
                value: x,
            });
        }
    }
    if let Some(b) = &inputs.battery {
        for (field, x) in [
            ("battery.capacity_wh", b.capacity_wh),
            ("battery.energy_wh", b.energy_wh),
            ("battery.max_charge_w", b.max_charge_w),
            ("battery.max_discharge_w", b.max_discharge_w),
        ] {
            if x < 0 {
                return Err(ScheduleError::Negative {
                    field: field.into(),
                    value: x,
                });
            }
        }
        if b.energy_wh > b.capacity_wh {
            return Err(ScheduleError::BatteryState {
                energy: b.energy_wh,
                capacity: b.capacity_wh,
            });
        }
        check_eff("battery.efficiency_permille".into(), b.efficiency_permille)?;
    }
    let mut ids: Vec<&str> = inputs.vehicles.iter().map(|v| v.id.as_str()).collect();
    ids.sort_unstable();
    if let Some(w) = ids.windows(2).find(|w| w[0] == w[1]) {
        return Err(ScheduleError::DuplicateId { id: w[0].into() });
    }
    for v in &inputs.vehicles {
        validate_vehicle(v)?;
    }
    Ok(())
}

fn check_eff(field: String, value: u16) -> Result<(), ScheduleError> {
    if value == 0 || value > 1000 {
        return Err(ScheduleError::Efficiency { field, value });
    }
    Ok(())
}

/// Validate one vehicle on its own.
pub(crate) fn validate_vehicle(v: &Vehicle) -> Result<(), ScheduleError> {
    if v.departure <= v.arrival {
        return Err(ScheduleError::Window {
            id: v.id.clone(),
            arrival: v.arrival,
            departure: v.departure,
        });
    }
    for (field, x) in [
        ("max_power_w", Some(v.max_power_w)),
        ("min_power_w", Some(v.min_power_w)),
        ("energy_requested_wh", Some(v.energy_requested_wh)),
        ("battery_capacity_wh", v.battery_capacity_wh),
        ("energy_on_arrival_wh", v.energy_on_arrival_wh),
        ("energy_wanted_wh", v.energy_wanted_wh),
    ] {
        if let Some(x) = x.filter(|x| *x < 0) {
            return Err(ScheduleError::Negative {
                field: format!("vehicle {}: {field}", v.id),
                value: x,
            });
        }
    }
    if let Some(knee) = v.taper_knee_permille {
        if knee >= 1000 {
            return Err(ScheduleError::TaperKnee {
                id: v.id.clone(),
                value: knee,
            });
        }
        if let (Some(capacity), Some(energy)) = (v.battery_capacity_wh, v.energy_on_arrival_wh)
            && energy > capacity
        {
            return Err(ScheduleError::TaperState {
                id: v.id.clone(),
                energy,
                capacity,
            });
        }
    }
    if v.min_power_w > v.max_power_w {
        return Err(ScheduleError::MinAboveMax {
            id: v.id.clone(),
            min: v.min_power_w,
            max: v.max_power_w,
        });
    }
    check_eff(
        format!("vehicle {}: efficiency_permille", v.id),
        v.efficiency_permille,
    )
}

/// The request clamped to what the battery can still take (Wh), where both are known.
pub(crate) fn clamped_request_wh(v: &Vehicle) -> i64 {
    match (v.battery_capacity_wh, v.energy_on_arrival_wh) {
        (Some(cap), Some(e0)) => v.energy_requested_wh.min((cap - e0).max(0)),
        _ => v.energy_requested_wh,
    }
}

/// All the energy a vehicle takes (Wh): the request, or more where it wants more
/// ([`Vehicle::energy_wanted_wh`]), clamped like the request.
pub(crate) fn clamped_wanted_wh(v: &Vehicle) -> i64 {
    let wanted = v
        .energy_wanted_wh
        .map_or(v.energy_requested_wh, |w| w.max(v.energy_requested_wh));
    match (v.battery_capacity_wh, v.energy_on_arrival_wh) {
        (Some(cap), Some(e0)) => wanted.min((cap - e0).max(0)),
        _ => wanted,
    }
}

/// As fast as possible from `start`: full power (a tapering battery: as much as its taper takes)
/// until `target_eu` is delivered, the last step rounded up (no group limit: the uncontrolled
/// baseline).
pub(crate) fn asap_profile(h: usize, dt_s: i64, v: &PrepVehicle, target_eu: i128) -> Vec<i64> {
    let mut row = vec![0i64; h];
    let per_w = dt_s as i128 * v.eff as i128;
    let mut remaining = target_eu;
    for slot in row.iter_mut().take(v.end).skip(v.start) {
        if remaining <= 0 {
            break;
        }
        let mut p = ((remaining + per_w - 1) / per_w).min(v.max_w as i128) as i64;
        if let Some(tp) = &v.taper {
            p = p.min(tp.bound_w(tp.e0_eu + target_eu - remaining, per_w));
        }
        *slot = p;
        remaining -= p as i128 * per_w;
    }
    row
}

/// Validate and preprocess.
pub(crate) fn prepare(inputs: &GroupInputs) -> Result<Prepared, ScheduleError> {
    validate(inputs)?;
    let h = inputs.horizon;
    let dt_s = inputs.time_step_s as i64;
    let mut order: Vec<usize> = (0..inputs.vehicles.len()).collect();
    order.sort_by(|&a, &b| inputs.vehicles[a].id.cmp(&inputs.vehicles[b].id));
    let tree = match &inputs.topology {
        Some(top) => {
            let ids: Vec<&str> = order
                .iter()
                .map(|&k| inputs.vehicles[k].id.as_str())
                .collect();
            let limits: Vec<VehicleLimits> = order
                .iter()
                .map(|&k| VehicleLimits {
                    max_w: inputs.vehicles[k].max_power_w,
                    min_w: inputs.vehicles[k].min_power_w,
                    uncontrolled: inputs.vehicles[k].class == VehicleClass::Uncontrolled,
                })
                .collect();
            Some(prepare_tree(top, h, &ids, &limits)?)
        }
        None => None,
    };
    let mut vehicles: Vec<PrepVehicle> = order
        .iter()
        .enumerate()
        .map(|(k, &idx)| {
            let v = &inputs.vehicles[idx];
            // With a charge point: its whole-step maximum and minimum, as powers.
            let (max_w, min_w) = match tree.as_ref().map(|t| &t.cps[k]) {
                Some(cp) if cp.amps => (cp.power_w(cp.max_ma), cp.power_w(cp.min_ma)),
                _ => (v.max_power_w, v.min_power_w),
            };
            let start = v.arrival.min(h);
            let end = v.departure.min(h);
            let eff = v.efficiency_permille as i64;
            let per_step = max_w as i128 * dt_s as i128 * eff as i128;
            let taper = Taper::of(v);
            // A tapering battery takes less than full power near full: its window maximum is
            // full power capped by the taper, step after step.
            let window_max = match &taper {
                Some(tp) => tp.window_max_eu(dt_s as i128 * eff as i128, max_w, end - start),
                None => per_step * (end - start) as i128,
            };
            let after = per_step * (v.departure - v.arrival.max(h).min(v.departure)) as i128;
            let request_eu = clamped_request_wh(v) as i128 * EU_PER_WH;
            let target_eu = clamped_wanted_wh(v) as i128 * EU_PER_WH;
            let needed_eu = (request_eu - after).max(0);
            let class = v.class;
            let hard_eu = if class == VehicleClass::Guaranteed {
                needed_eu.min(window_max)
            } else {
                0
            };
            let soft_eu = if class == VehicleClass::Uncontrolled {
                0
            } else {
                target_eu.min(window_max) - hard_eu
            };
            PrepVehicle {
                idx,
                id: v.id.clone(),
                start,
                end,
                max_w,
                min_w,
                eff,
                class,
                target_eu,
                needed_eu,
                hard_eu,
                soft_eu,
                fixed: Vec::new(),
                taper,
            }
        })
        .collect();

    let (other, pv, cap) = (&inputs.other_load_w, &inputs.pv_w, &inputs.capacity_w);
    let cap_eff: Vec<i64> = (0..h).map(|t| cap[t].max(other[t] - pv[t])).collect();
    // Uncontrolled vehicles first come, first served (arrival, then id), each step capped by
    // what the connection can still carry less what the accepted requests need there
    // (`crate::reserve`: an accepted guarantee outranks uncontrolled charging).
    let headroom: Vec<i64> = (0..h)
        .map(|t| (cap_eff[t] - other[t] + pv[t]).max(0))
        .collect();
    let mut unc: Vec<usize> = (0..vehicles.len())
        .filter(|&i| vehicles[i].class == VehicleClass::Uncontrolled)
        .collect();
    unc.sort_by(|&a, &b| {
        (inputs.vehicles[vehicles[a].idx].arrival, &vehicles[a].id)
            .cmp(&(inputs.vehicles[vehicles[b].idx].arrival, &vehicles[b].id))
    });
    let rows = crate::reserve::uncontrolled_profiles(
        h,
        dt_s,
        &vehicles,
        &unc,
        &headroom,
        inputs.battery.as_ref(),
    );
    let mut fixed_w = vec![0i64; h];
    // With a tree: each uncontrolled row also fits the tree (first come, first served, whole
    // set-points), after the rows placed before it.
    let mut loads = tree
        .as_ref()
        .map(|t| Loads::new(t, &vec![Vec::new(); vehicles.len()]));
    // An accepted guarantee outranks uncontrolled charging on every node and phase too: each
    // accepted vehicle (by id) first reserves its hard energy on its path, as late in its
    // window as it can (whole set-points, within the tree and the reservations before it), so
    // that uncontrolled rows fitted after it leave that room; uncontrolled vehicles still
    // charge from plug-in wherever a guarantee does not need the phase. The reservation is
    // released before the model: it only shapes the fixed rows. (The group's W row has its own
    // exact reservation, `crate::reserve`; this one is a sufficient rule per phase, not a
    // max flow, since a three-phase car loads three phases at once.)
    let mut reserved: Vec<(usize, Vec<i64>)> = Vec::new();
    if let (Some(tr), Some(loads)) = (&tree, loads.as_mut()) {
        for i in (0..vehicles.len()).filter(|&i| vehicles[i].class == VehicleClass::Guaranteed) {
            let v = &vehicles[i];
            let mut need = v.hard_eu;
            let mut row = vec![0i64; h];
            // A tapering battery takes little in its last steps (`reserve::step_caps_w`).
            let caps = crate::reserve::step_caps_w(v, h, dt_s);
            for t in (v.start..v.end).rev() {
                if need <= 0 {
                    break;
                }
                let (room_w, room_ma) = loads.room(tr, i, t);
                let p = tr.cps[i].fit(room_w.min(caps[t]), room_ma);
                loads.change(tr, i, t, 0, p);
                row[t] = p;
                need -= p as i128 * dt_s as i128 * v.eff as i128;
            }
            reserved.push((i, row));
        }
    }
    for (i, mut row) in unc.into_iter().zip(rows) {
        if let (Some(tr), Some(loads)) = (&tree, loads.as_mut()) {
            for (t, p) in row.iter_mut().enumerate() {
                let (room_w, room_ma) = loads.room(tr, i, t);
                let cp = &tr.cps[i];
                *p = cp.fit(room_w.min(*p), room_ma);
                loads.change(tr, i, t, 0, *p);
            }
        }
        for t in 0..h {
            fixed_w[t] += row[t];
        }
        vehicles[i].fixed = row;
    }
    if let (Some(tr), Some(loads)) = (&tree, loads.as_mut()) {
        for (i, row) in reserved {
            for (t, p) in row.into_iter().enumerate() {
                loads.change(tr, i, t, p, 0);
            }
        }
    }
    Ok(Prepared {
        h,
        dt_s,
        dt_h: dt_s as f64 / 3600.0,
        vehicles,
        cap_eff,
        other: other.clone(),
        pv: pv.clone(),
        fixed_w,
        price: inputs.price_micro_eur_per_kwh.clone(),
        battery: inputs.battery.clone(),
        tree,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> GroupInputs {
        GroupInputs {
            group_id: 0,
            start_timestep: 0,
            time_step_s: 900,
            horizon: 4,
            capacity_w: vec![10_000; 4],
            other_load_w: vec![0; 4],
            pv_w: vec![0; 4],
            price_micro_eur_per_kwh: vec![0; 4],
            battery: None,
            topology: None,
            vehicles: vec![Vehicle {
                id: "a".into(),
                arrival: 2,
                departure: 8,
                max_power_w: 4_000,
                min_power_w: 0,
                energy_requested_wh: 5_000,
                battery_capacity_wh: Some(50_000),
                energy_on_arrival_wh: Some(46_000),
                class: VehicleClass::Guaranteed,
                efficiency_permille: 1000,
                taper_knee_permille: None,
                energy_wanted_wh: None,
            }],
        }
    }

    #[test]
    fn malformed_inputs_name_the_field() {
        let mut g = inputs();
        g.pv_w.pop();
        assert_eq!(
            validate(&g),
            Err(ScheduleError::Length {
                field: "pv_w",
                expected: 4,
                got: 3
            })
        );
        let mut g = inputs();
        g.vehicles[0].departure = 2;
        assert!(matches!(validate(&g), Err(ScheduleError::Window { .. })));
        let mut g = inputs();
        g.vehicles[0].energy_requested_wh = -1;
        assert!(matches!(validate(&g), Err(ScheduleError::Negative { .. })));
        let mut g = inputs();
        g.vehicles.push(g.vehicles[0].clone());
        assert!(matches!(
            validate(&g),
            Err(ScheduleError::DuplicateId { .. })
        ));
        let mut g = inputs();
        g.vehicles[0].efficiency_permille = 0;
        assert!(matches!(
            validate(&g),
            Err(ScheduleError::Efficiency { .. })
        ));
    }

    #[test]
    fn malformed_tapers_are_refused() {
        let mut g = inputs();
        g.vehicles[0].taper_knee_permille = Some(1000);
        assert_eq!(
            validate(&g),
            Err(ScheduleError::TaperKnee {
                id: "a".into(),
                value: 1000
            })
        );
        let mut g = inputs();
        g.vehicles[0].taper_knee_permille = Some(800);
        g.vehicles[0].energy_on_arrival_wh = Some(50_001);
        assert_eq!(
            validate(&g),
            Err(ScheduleError::TaperState {
                id: "a".into(),
                energy: 50_001,
                capacity: 50_000
            })
        );
        assert!(
            ScheduleError::TaperState {
                id: "a".into(),
                energy: 50_001,
                capacity: 50_000
            }
            .to_string()
            .contains("exceeds battery_capacity_wh")
        );
        // Without a knee, energy above the capacity is still accepted (the request clamps to 0).
        g.vehicles[0].taper_knee_permille = None;
        assert_eq!(validate(&g), Ok(()));
        // A knee without the battery's state does not apply, and is valid.
        let mut g = inputs();
        g.vehicles[0].taper_knee_permille = Some(800);
        g.vehicles[0].energy_on_arrival_wh = None;
        assert_eq!(validate(&g), Ok(()));
        assert!(prepare(&g).unwrap().vehicles[0].taper.is_none());
    }

    #[test]
    fn a_taper_lowers_the_window_maximum() {
        // 50 kWh, 46 kWh stored (92 %), knee 80 %, 4 kW: the window (steps 2..4) takes less than
        // 2 kWh, so the soft energy is what the taper allows, each step capped by it.
        let mut g = inputs();
        g.vehicles[0].taper_knee_permille = Some(800);
        let p = prepare(&g).unwrap();
        let v = &p.vehicles[0];
        let tp = v.taper.as_ref().unwrap();
        let w = 900 * 1000;
        let first = tp.bound_w(tp.e0_eu, w);
        assert!(first < 4_000);
        let second = tp.bound_w(tp.e0_eu + first as i128 * w, w);
        assert_eq!(v.soft_eu, (first + second) as i128 * w);
        assert_eq!(
            asap_profile(4, 900, v, v.target_eu),
            vec![0, 0, first, second]
        );
    }

    #[test]
    fn targets_are_clamped_and_split_at_the_horizon() {
        let p = prepare(&inputs()).unwrap();
        let v = &p.vehicles[0];
        // Battery takes only 4 kWh; window clipped to steps 2..4 (2 kWh max); the 4 steps after
        // the horizon can take 4 kWh, so nothing is needed within the horizon.
        assert_eq!(v.target_eu, 4_000 * EU_PER_WH);
        assert_eq!((v.start, v.end), (2, 4));
        assert_eq!(v.needed_eu, 0);
        assert_eq!(v.hard_eu, 0);
        assert_eq!(v.soft_eu, 2_000 * EU_PER_WH);
    }

    #[test]
    fn energy_wanted_beyond_the_request_is_best_effort() {
        // 2 kWh guaranteed by step 4, 6 kWh wanted in all: 2 kWh hard, 4 kWh soft (the window
        // of 4 steps at 4 kW takes 4 kWh in all, so 2 kWh of it).
        let mut g = inputs();
        let v = &mut g.vehicles[0];
        (v.arrival, v.departure) = (0, 4);
        v.battery_capacity_wh = None;
        v.energy_requested_wh = 2_000;
        v.energy_wanted_wh = Some(6_000);
        let p = prepare(&g).unwrap();
        let pv = &p.vehicles[0];
        assert_eq!(pv.target_eu, 6_000 * EU_PER_WH);
        assert_eq!(pv.hard_eu, 2_000 * EU_PER_WH);
        assert_eq!(pv.soft_eu, 2_000 * EU_PER_WH);
        // Wanting less than the request changes nothing.
        g.vehicles[0].energy_wanted_wh = Some(1_000);
        let p = prepare(&g).unwrap();
        assert_eq!(p.vehicles[0].target_eu, 2_000 * EU_PER_WH);
        assert_eq!(p.vehicles[0].soft_eu, 0);
        // Capped like the request at what the battery takes.
        g.vehicles[0].energy_wanted_wh = Some(9_000);
        g.vehicles[0].battery_capacity_wh = Some(50_000);
        g.vehicles[0].energy_on_arrival_wh = Some(47_000);
        assert_eq!(
            prepare(&g).unwrap().vehicles[0].target_eu,
            3_000 * EU_PER_WH
        );
        g.vehicles[0].energy_wanted_wh = Some(-1);
        assert!(matches!(prepare(&g), Err(ScheduleError::Negative { .. })));
    }

    #[test]
    fn uncontrolled_profiles_respect_the_connection() {
        let mut g = inputs();
        g.vehicles[0].class = VehicleClass::Uncontrolled;
        g.vehicles[0].max_power_w = 22_000;
        g.other_load_w = vec![0, 0, 7_000, 0];
        let p = prepare(&g).unwrap();
        assert_eq!(p.vehicles[0].fixed, vec![0, 0, 3_000, 10_000]);
    }
}
