//! The neutral instance format of `evflex plan` (one group, kW/kWh floats, steps as indexes)
//! and its output, as in the day-ahead planner of seed 002:
//!
//! ```json
//! {"time_step_s":900,"horizon":96,"capacity_kw":100,"price_eur_per_kwh":0.13,
//!  "vehicles":[{"id":"0","arrival":47,"departure":67,"p_max_kw":22,"energy_kwh":26.0,
//!               "battery_kwh":52,"soe_init_kwh":0}]}
//! ```
//!
//! `capacity_kw`, `price_eur_per_kwh`, and the optional `other_load_kw` and `pv_kw` are a number
//! or a list of `horizon` numbers. A vehicle may charge in steps `arrival..departure`. Vehicles
//! are opted in and accepted unless `opted_in`/`accepted` say otherwise, so `unmet_kwh` reports
//! what cannot be delivered. `p_min_kw` (MILP minimum) defaults to 6 A × 230 V: 4.14 kW on three
//! phases for `p_max_kw` ≥ 11, else 1.38 kW (capped at `p_max_kw`). Conversions to the model's
//! integers round to the nearest W, Wh and µEUR/kWh.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::hash::{inputs_hash, params_hash, schedule_hash, to_hex};
use crate::{
    GroupInputs, Mode, ScheduleError, SolveOptions, SolveStatus, Vehicle, VehicleClass, solve,
};

/// A number or a per-step list.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Series {
    /// The same value in every step.
    Scalar(f64),
    /// One value per step.
    List(Vec<f64>),
}

impl Series {
    fn expand(&self, field: &str, h: usize, scale: f64) -> Result<Vec<i64>, ScheduleError> {
        let vals = match self {
            Series::Scalar(x) => vec![*x; h],
            Series::List(v) if v.len() == h => v.clone(),
            Series::List(v) => {
                return Err(ScheduleError::Invalid {
                    field: field.into(),
                    reason: format!("{} values, expected {h}", v.len()),
                });
            }
        };
        vals.iter().map(|&x| to_int(field, x, scale)).collect()
    }
}

fn to_int(field: &str, x: f64, scale: f64) -> Result<i64, ScheduleError> {
    let y = (x * scale).round();
    if !y.is_finite() || y.abs() > 9e15 {
        return Err(ScheduleError::Invalid {
            field: field.into(),
            reason: format!("{x} is not a usable number"),
        });
    }
    Ok(y as i64)
}

/// A vehicle id given as a string or a number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PlanId {
    /// `"0"`.
    Text(String),
    /// `0`.
    Number(u64),
}

impl fmt::Display for PlanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanId::Text(s) => f.write_str(s),
            PlanId::Number(n) => write!(f, "{n}"),
        }
    }
}

fn default_true() -> bool {
    true
}
fn default_step() -> u32 {
    900
}
fn default_horizon() -> usize {
    96
}

/// One vehicle of the neutral format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanVehicle {
    /// Id.
    pub id: PlanId,
    /// First step it may charge in.
    pub arrival: usize,
    /// First step it is gone.
    pub departure: usize,
    /// Maximum power (kW).
    pub p_max_kw: f64,
    /// Energy requested (kWh).
    pub energy_kwh: f64,
    /// Battery capacity (kWh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub battery_kwh: Option<f64>,
    /// Energy in the battery on arrival (kWh).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soe_init_kwh: Option<f64>,
    /// Minimum power when charging (kW, MILP).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p_min_kw: Option<f64>,
    /// Charging efficiency (0–1, default 1).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub efficiency: Option<f64>,
    /// Opted in to smart charging (default true).
    #[serde(default = "default_true")]
    pub opted_in: bool,
    /// Request accepted, i.e. hard (default true).
    #[serde(default = "default_true")]
    pub accepted: bool,
}

/// One instance of the neutral format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanInput {
    /// Step length (s), default 900.
    #[serde(default = "default_step")]
    pub time_step_s: u32,
    /// Steps, default 96.
    #[serde(default = "default_horizon")]
    pub horizon: usize,
    /// Group capacity (kW).
    pub capacity_kw: Series,
    /// Price (EUR/kWh), default 0.
    #[serde(default = "zero_series")]
    pub price_eur_per_kwh: Series,
    /// Non-EV load (kW), default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub other_load_kw: Option<Series>,
    /// PV production (kW), default 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pv_kw: Option<Series>,
    /// The vehicles.
    pub vehicles: Vec<PlanVehicle>,
    /// Demand charge of the peak grid import (EUR per kW): peak shaving at that price; absent
    /// or 0: none (energy as early as prices and limits allow).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub demand_charge_eur_per_kw: Option<f64>,
}

fn zero_series() -> Series {
    Series::Scalar(0.0)
}

impl PlanInput {
    /// The model's inputs for this instance (group 0, step 0 at timestep 0).
    pub fn to_group_inputs(&self) -> Result<GroupInputs, ScheduleError> {
        let h = self.horizon;
        let zero = Series::Scalar(0.0);
        let vehicles = self
            .vehicles
            .iter()
            .map(|v| {
                let id = v.id.to_string();
                let f = |name: &str| format!("vehicle {id}: {name}");
                let max_power_w = to_int(&f("p_max_kw"), v.p_max_kw, 1000.0)?;
                let default_min = if v.p_max_kw >= 11.0 { 4.14 } else { 1.38 };
                let min_power_w =
                    to_int(&f("p_min_kw"), v.p_min_kw.unwrap_or(default_min), 1000.0)?
                        .min(max_power_w);
                let eff = v.efficiency.unwrap_or(1.0);
                if !(eff > 0.0 && eff <= 1.0) {
                    return Err(ScheduleError::Invalid {
                        field: f("efficiency"),
                        reason: format!("{eff} not in (0, 1]"),
                    });
                }
                Ok(Vehicle {
                    id: id.clone(),
                    arrival: v.arrival,
                    departure: v.departure,
                    max_power_w,
                    min_power_w,
                    energy_requested_wh: to_int(&f("energy_kwh"), v.energy_kwh, 1000.0)?,
                    battery_capacity_wh: v
                        .battery_kwh
                        .map(|x| to_int(&f("battery_kwh"), x, 1000.0))
                        .transpose()?,
                    energy_on_arrival_wh: v
                        .soe_init_kwh
                        .map(|x| to_int(&f("soe_init_kwh"), x, 1000.0))
                        .transpose()?,
                    class: VehicleClass::from_flags(v.opted_in, v.accepted),
                    efficiency_permille: ((eff * 1000.0).round() as u16).max(1),
                    taper_knee_permille: None,
                    energy_wanted_wh: None,
                })
            })
            .collect::<Result<Vec<_>, ScheduleError>>()?;
        Ok(GroupInputs {
            group_id: 0,
            start_timestep: 0,
            time_step_s: self.time_step_s,
            horizon: h,
            capacity_w: self.capacity_kw.expand("capacity_kw", h, 1000.0)?,
            other_load_w: self.other_load_kw.as_ref().unwrap_or(&zero).expand(
                "other_load_kw",
                h,
                1000.0,
            )?,
            pv_w: self
                .pv_kw
                .as_ref()
                .unwrap_or(&zero)
                .expand("pv_kw", h, 1000.0)?,
            price_micro_eur_per_kwh: self.price_eur_per_kwh.expand("price_eur_per_kwh", h, 1e6)?,
            battery: None,
            vehicles,
            topology: None,
        })
    }

    /// The instance for `records` from [`crate::demand::generate`] at a flat `capacity_kw`.
    pub fn from_demand(
        records: &[crate::demand::DemandRecord],
        capacity_kw: f64,
        price: Series,
        horizon: usize,
        time_step_s: u32,
    ) -> Self {
        PlanInput {
            time_step_s,
            horizon,
            capacity_kw: Series::Scalar(capacity_kw),
            price_eur_per_kwh: price,
            other_load_kw: None,
            pv_kw: None,
            demand_charge_eur_per_kw: None,
            vehicles: records
                .iter()
                .map(|r| PlanVehicle {
                    id: PlanId::Text(r.id.clone()),
                    arrival: r.arrival,
                    departure: r.departure,
                    p_max_kw: r.power_kw,
                    energy_kwh: r.energy_kwh,
                    battery_kwh: Some(r.battery_kwh),
                    soe_init_kwh: Some(r.soe_init_kwh),
                    p_min_kw: None,
                    efficiency: None,
                    opted_in: true,
                    accepted: true,
                })
                .collect(),
        }
    }
}

/// The answer of `evflex plan`; vehicles in input order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanOutput {
    /// Outcome.
    pub status: SolveStatus,
    /// LP or MILP.
    pub mode: Mode,
    /// Objective (EUR, including the small peak and early-delivery terms).
    pub objective: f64,
    /// MIP gap reached (0 for LP).
    pub mip_gap: f64,
    /// Vehicle ids.
    pub vehicle_ids: Vec<String>,
    /// Charging windows `[arrival, departure)`.
    pub windows: Vec<(usize, usize)>,
    /// Power per vehicle per step (kW).
    pub power_kw: Vec<Vec<f64>>,
    /// Energy requested (kWh).
    pub requested_kwh: Vec<f64>,
    /// Energy delivered (kWh).
    pub delivered_kwh: Vec<f64>,
    /// Energy that cannot be delivered by departure (kWh).
    pub unmet_kwh: Vec<f64>,
    /// Total EV power per step (kW).
    pub station_kw: Vec<f64>,
    /// Highest total EV power (kW).
    pub max_station_kw: f64,
    /// Highest grid import (kW).
    pub peak_grid_kw: f64,
    /// Energy cost (EUR).
    pub cost_eur: f64,
    /// Total delivered (kWh).
    pub total_delivered_kwh: f64,
    /// Total unmet (kWh).
    pub total_unmet_kwh: f64,
    /// Model build time (ms).
    pub build_ms: f64,
    /// Solver time (ms).
    pub solve_ms: f64,
    /// Why the fallback was used.
    pub fallback_reason: Option<String>,
    /// keccak-256 of the canonical inputs.
    pub inputs_hash: String,
    /// keccak-256 of the schedule.
    pub schedule_hash: String,
    /// keccak-256 of the algorithm definition and parameters.
    pub params_hash: String,
}

/// Solve one neutral instance in `mode` (default options, 60 s time limit, the instance's
/// demand charge).
pub fn plan(input: &PlanInput, mode: Mode) -> Result<PlanOutput, ScheduleError> {
    let opts = SolveOptions {
        mode,
        time_limit_ms: 60_000,
        peak_weight_eur_per_kw: input.demand_charge_eur_per_kw.unwrap_or(0.0).max(0.0),
        ..SolveOptions::default()
    };
    plan_with(input, &opts)
}

/// Solve one neutral instance with explicit options.
pub fn plan_with(input: &PlanInput, opts: &SolveOptions) -> Result<PlanOutput, ScheduleError> {
    let g = input.to_group_inputs()?;
    let s = solve(&g, opts, None)?;
    let row_of = |id: &str| s.vehicle_ids.iter().position(|x| x == id).unwrap_or(0);
    let rows: Vec<usize> = g.vehicles.iter().map(|v| row_of(&v.id)).collect();
    let kw = |w: i64| w as f64 / 1000.0;
    let station_w: Vec<i64> = (0..g.horizon)
        .map(|t| s.power_w.iter().map(|r| r[t]).sum())
        .collect();
    let delivered_kwh: Vec<f64> = rows.iter().map(|&r| kw(s.delivered_wh[r])).collect();
    let unmet_kwh: Vec<f64> = rows.iter().map(|&r| kw(s.unmet_wh[r])).collect();
    Ok(PlanOutput {
        status: s.status,
        mode: s.mode,
        objective: s.objective,
        mip_gap: s.mip_gap,
        vehicle_ids: g.vehicles.iter().map(|v| v.id.clone()).collect(),
        windows: g
            .vehicles
            .iter()
            .map(|v| (v.arrival, v.departure))
            .collect(),
        power_kw: rows
            .iter()
            .map(|&r| s.power_w[r].iter().map(|&w| kw(w)).collect())
            .collect(),
        requested_kwh: g
            .vehicles
            .iter()
            .map(|v| kw(v.energy_requested_wh))
            .collect(),
        total_delivered_kwh: delivered_kwh.iter().sum(),
        total_unmet_kwh: unmet_kwh.iter().sum(),
        delivered_kwh,
        unmet_kwh,
        max_station_kw: kw(station_w.iter().copied().max().unwrap_or(0)),
        station_kw: station_w.iter().map(|&w| kw(w)).collect(),
        peak_grid_kw: kw(s.peak_w),
        cost_eur: s.cost_micro_eur as f64 / 1e6,
        build_ms: s.build_ms,
        solve_ms: s.solve_ms,
        fallback_reason: s.fallback_reason.clone(),
        inputs_hash: to_hex(&inputs_hash(&g)),
        schedule_hash: to_hex(&schedule_hash(&s)),
        params_hash: to_hex(&params_hash(opts)),
    })
}

const SHADES: &[u8] = b" .:-=+*#%@";

fn shade(x: f64, max: f64) -> char {
    if x <= 0.0 || max <= 0.0 {
        return ' ';
    }
    let k = ((x / max) * (SHADES.len() - 1) as f64).ceil() as usize;
    SHADES[k.clamp(1, SHADES.len() - 1)] as char
}

impl fmt::Display for PlanOutput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "status {:?} ({:?}), objective {:.4} EUR, cost {:.4} EUR, max station {:.1} kW, build {:.1} ms, solve {:.1} ms",
            self.status,
            self.mode,
            self.objective,
            self.cost_eur,
            self.max_station_kw,
            self.build_ms,
            self.solve_ms
        )?;
        if let Some(r) = &self.fallback_reason {
            writeln!(f, "fallback: {r}")?;
        }
        writeln!(
            f,
            "{:>8} {:>9} {:>11} {:>11} {:>9}  power (one column per step)",
            "vehicle", "window", "requested", "delivered", "unmet"
        )?;
        for (k, id) in self.vehicle_ids.iter().enumerate() {
            let max = self.power_kw[k].iter().copied().fold(0.0, f64::max);
            let heat: String = self.power_kw[k].iter().map(|&p| shade(p, max)).collect();
            writeln!(
                f,
                "{:>8} {:>4}–{:<4} {:>7.3} kWh {:>7.3} kWh {:>5.3} kWh |{heat}|",
                id,
                self.windows[k].0,
                self.windows[k].1,
                self.requested_kwh[k],
                self.delivered_kwh[k],
                self.unmet_kwh[k]
            )?;
        }
        let heat: String = self
            .station_kw
            .iter()
            .map(|&p| shade(p, self.max_station_kw))
            .collect();
        writeln!(
            f,
            "{:>8} {:>9} {:>7.3} kWh {:>7.3} kWh {:>5.3} kWh |{heat}|",
            "total",
            "",
            self.requested_kwh.iter().sum::<f64>(),
            self.total_delivered_kwh,
            self.total_unmet_kwh
        )?;
        writeln!(
            f,
            "inputs {}  schedule {}",
            self.inputs_hash, self.schedule_hash
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_issue_example_and_prints_the_listed_fields() {
        let input: PlanInput = serde_json::from_str(
            r#"{"time_step_s":900,"horizon":96,"capacity_kw":100,"price_eur_per_kwh":0.13,
                "vehicles":[{"id":"0","arrival":47,"departure":67,"p_max_kw":22,"energy_kwh":26.0,
                             "battery_kwh":52,"soe_init_kwh":0}]}"#,
        )
        .unwrap();
        let out = plan(&input, Mode::Lp).unwrap();
        assert_eq!(out.status, SolveStatus::Optimal);
        assert_eq!(out.delivered_kwh, vec![26.0]);
        assert!((out.cost_eur - 26.0 * 0.13).abs() < 1e-6);
        let j = serde_json::to_value(&out).unwrap();
        for key in [
            "status",
            "objective",
            "power_kw",
            "delivered_kwh",
            "unmet_kwh",
            "max_station_kw",
            "cost_eur",
            "build_ms",
            "solve_ms",
        ] {
            assert!(j.get(key).is_some(), "{key}");
        }
        assert_eq!(j["power_kw"][0].as_array().unwrap().len(), 96);
        let text = out.to_string();
        assert!(text.contains("47–67") && text.contains('@'), "{text}");
        // Wrong list length is an error naming the field.
        let mut bad = input.clone();
        bad.capacity_kw = Series::List(vec![1.0; 3]);
        assert!(
            matches!(plan(&bad, Mode::Lp), Err(ScheduleError::Invalid { field, .. }) if field == "capacity_kw")
        );
    }
}
