//! A vehicle's schedule row as the ecosystem's charging profiles: OCPI 2.2.1 `ChargingProfile`
//! (sent to the CPO by the Smart Charging Service Provider) and the OCPP 1.6 `TxProfile`-shaped
//! `ChargingProfile`. Limits in W, or in A for charge points that take amps
//! ([`ocpi_profile_for`], [`ocpp_profile_for`]); equal consecutive periods are merged.

use serde::{Deserialize, Serialize};

use crate::prep::{EU_PER_WH, clamped_request_wh};
use crate::taper::Taper;
use crate::{RateUnit, SetPoints, Vehicle};

/// OCPI 2.2.1 `ChargingProfilePeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcpiChargingProfilePeriod {
    /// Start of the period in seconds from `start_date_time`.
    pub start_period: u32,
    /// Power limit in `charging_rate_unit` (W).
    pub limit: f64,
}

/// OCPI 2.2.1 `ChargingProfile` (module `ChargingProfiles`, type `ChargingProfile`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OcpiChargingProfile {
    /// Start of the profile (RFC 3339 UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_date_time: Option<String>,
    /// Duration of the profile in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// `"W"` (or `"A"`).
    pub charging_rate_unit: String,
    /// Minimum charging rate (W), if the charge point has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<f64>,
    /// The periods.
    #[serde(skip_serializing_if = "Vec::is_empty", default)]
    pub charging_profile_period: Vec<OcpiChargingProfilePeriod>,
}

/// OCPP 1.6 `ChargingSchedulePeriod`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcppChargingSchedulePeriod {
    /// Start of the period in seconds from `startSchedule`.
    pub start_period: u32,
    /// Power limit in `chargingRateUnit` (W).
    pub limit: f64,
    /// Number of phases, if restricted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub number_phases: Option<u8>,
}

/// OCPP 1.6 `ChargingSchedule`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcppChargingSchedule {
    /// Duration in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<u32>,
    /// Absolute start (RFC 3339 UTC).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub start_schedule: Option<String>,
    /// `"W"` (or `"A"`).
    pub charging_rate_unit: String,
    /// The periods.
    pub charging_schedule_period: Vec<OcppChargingSchedulePeriod>,
    /// Minimum charging rate (W).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_charging_rate: Option<f64>,
}

/// OCPP 1.6 `ChargingProfile` (as in `SetChargingProfile.req` `csChargingProfiles`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OcppChargingProfile {
    /// Profile id.
    pub charging_profile_id: i32,
    /// Transaction the profile applies to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<i32>,
    /// Stack level.
    pub stack_level: u32,
    /// `"TxProfile"`.
    pub charging_profile_purpose: String,
    /// `"Absolute"`.
    pub charging_profile_kind: String,
    /// The schedule.
    pub charging_schedule: OcppChargingSchedule,
}

/// Merge equal consecutive steps into `(start_second, limit_w)` periods.
pub fn periods(schedule_row_w: &[i64], time_step_s: u32) -> Vec<(u32, i64)> {
    let mut out: Vec<(u32, i64)> = Vec::new();
    for (t, &p) in schedule_row_w.iter().enumerate() {
        if out.last().is_none_or(|&(_, last)| last != p) {
            out.push((t as u32 * time_step_s, p));
        }
    }
    out
}

/// One vehicle's row (W per step) as an OCPI 2.2.1 `ChargingProfile` starting at
/// `start_date_time`.
pub fn ocpi_charging_profile(
    schedule_row_w: &[i64],
    time_step_s: u32,
    start_date_time: &str,
    min_charging_rate_w: Option<i64>,
) -> OcpiChargingProfile {
    OcpiChargingProfile {
        start_date_time: Some(start_date_time.to_string()),
        duration: Some(schedule_row_w.len() as u32 * time_step_s),
        charging_rate_unit: "W".into(),
        min_charging_rate: min_charging_rate_w.map(|w| w as f64),
        charging_profile_period: periods(schedule_row_w, time_step_s)
            .into_iter()
            .map(|(start_period, w)| OcpiChargingProfilePeriod {
                start_period,
                limit: w as f64,
            })
            .collect(),
    }
}

/// One vehicle's row (W per step) as an OCPP 1.6 `TxProfile` (kind `Absolute`) starting at
/// `start_schedule`.
pub fn ocpp_tx_profile(
    schedule_row_w: &[i64],
    time_step_s: u32,
    start_schedule: &str,
    min_charging_rate_w: Option<i64>,
    charging_profile_id: i32,
    transaction_id: Option<i32>,
) -> OcppChargingProfile {
    OcppChargingProfile {
        charging_profile_id,
        transaction_id,
        stack_level: 0,
        charging_profile_purpose: "TxProfile".into(),
        charging_profile_kind: "Absolute".into(),
        charging_schedule: OcppChargingSchedule {
            duration: Some(schedule_row_w.len() as u32 * time_step_s),
            start_schedule: Some(start_schedule.to_string()),
            charging_rate_unit: "W".into(),
            charging_schedule_period: periods(schedule_row_w, time_step_s)
                .into_iter()
                .map(|(start_period, w)| OcppChargingSchedulePeriod {
                    start_period,
                    limit: w as f64,
                    number_phases: None,
                })
                .collect(),
            min_charging_rate: min_charging_rate_w.map(|w| w as f64),
        },
    }
}

/// A vehicle's [`SetPoints`] as an OCPI 2.2.1 `ChargingProfile` in the unit its charge point
/// takes: `charging_rate_unit` `"A"` (limits in A per phase, `min_charging_rate` the minimum
/// current) for AC points that want amps, `"W"` otherwise.
pub fn ocpi_profile_for(
    set_points: &SetPoints,
    time_step_s: u32,
    start_date_time: &str,
) -> OcpiChargingProfile {
    let (unit, scale) = unit_scale(set_points.unit);
    OcpiChargingProfile {
        start_date_time: Some(start_date_time.to_string()),
        duration: Some(set_points.values.len() as u32 * time_step_s),
        charging_rate_unit: unit.into(),
        min_charging_rate: (set_points.min > 0).then(|| set_points.min as f64 / scale),
        charging_profile_period: periods(&set_points.values, time_step_s)
            .into_iter()
            .map(|(start_period, x)| OcpiChargingProfilePeriod {
                start_period,
                limit: x as f64 / scale,
            })
            .collect(),
    }
}

/// A vehicle's [`SetPoints`] as an OCPP 1.6 `TxProfile` in the unit its charge point takes
/// (`chargingRateUnit` `"A"` with `numberPhases` for amps points, `"W"` otherwise).
pub fn ocpp_profile_for(
    set_points: &SetPoints,
    time_step_s: u32,
    start_schedule: &str,
    charging_profile_id: i32,
    transaction_id: Option<i32>,
) -> OcppChargingProfile {
    let (unit, scale) = unit_scale(set_points.unit);
    OcppChargingProfile {
        charging_profile_id,
        transaction_id,
        stack_level: 0,
        charging_profile_purpose: "TxProfile".into(),
        charging_profile_kind: "Absolute".into(),
        charging_schedule: OcppChargingSchedule {
            duration: Some(set_points.values.len() as u32 * time_step_s),
            start_schedule: Some(start_schedule.to_string()),
            charging_rate_unit: unit.into(),
            charging_schedule_period: periods(&set_points.values, time_step_s)
                .into_iter()
                .map(|(start_period, x)| OcppChargingSchedulePeriod {
                    start_period,
                    limit: x as f64 / scale,
                    number_phases: set_points.phases,
                })
                .collect(),
            min_charging_rate: (set_points.min > 0).then(|| set_points.min as f64 / scale),
        },
    }
}

fn unit_scale(unit: RateUnit) -> (&'static str, f64) {
    match unit {
        RateUnit::Amps => ("A", 1000.0),
        RateUnit::Watts => ("W", 1.0),
    }
}

/// The limits (W per step) to send to an **uncontrolled** vehicle (not opted in), or `None`
/// when it may charge freely.
///
/// The optimiser plans an uncontrolled vehicle as fast as possible towards an assumed energy,
/// within what the connection carries and what the accepted requests need (`DESIGN.md`: an
/// accepted guarantee outranks uncontrolled charging). Where that plan (`row_w`, its schedule
/// row) gives it less than it would take on its own (its maximum, or what it still lacks of the
/// assumed energy), the step is curtailed and the limit is the planned power; everywhere else
/// the limit is its maximum, so a vehicle that wants more than the assumed energy is never
/// stopped by the assumption. A tapering battery ([`Vehicle::taper_knee_permille`]) would take
/// no more than its taper, so a step planned at the taper is not curtailed. `None` when no step
/// is curtailed.
pub fn uncontrolled_limits(vehicle: &Vehicle, row_w: &[i64], time_step_s: u32) -> Option<Vec<i64>> {
    let per_w = time_step_s as i128 * vehicle.efficiency_permille as i128;
    let target = clamped_request_wh(vehicle) as i128 * EU_PER_WH;
    let mut remaining = target;
    let taper = Taper::of(vehicle);
    let mut curtailed = false;
    let limits = row_w
        .iter()
        .enumerate()
        .map(|(t, &p)| {
            if t < vehicle.arrival || t >= vehicle.departure || remaining <= 0 || per_w <= 0 {
                return vehicle.max_power_w;
            }
            let mut want =
                ((remaining + per_w - 1) / per_w).min(vehicle.max_power_w as i128) as i64;
            // A tapering battery would take no more than its taper: not a curtailment.
            if let Some(tp) = &taper {
                want = want.min(tp.bound_w(tp.e0_eu + target - remaining, per_w));
            }
            remaining -= p.max(0) as i128 * per_w;
            if p < want {
                curtailed = true;
                p.max(0)
            } else {
                vehicle.max_power_w
            }
        })
        .collect();
    curtailed.then_some(limits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VehicleClass;

    #[test]
    fn merges_equal_periods_and_names_fields_as_the_specs() {
        let row = [0, 0, 7000, 7000, 3500, 0];
        let ocpi = ocpi_charging_profile(&row, 900, "2019-05-01T00:00:00Z", Some(1380));
        let j = serde_json::to_value(&ocpi).unwrap();
        assert_eq!(j["charging_rate_unit"], "W");
        assert_eq!(j["duration"], 5400);
        assert_eq!(j["min_charging_rate"], 1380.0);
        let p = &j["charging_profile_period"];
        assert_eq!(p.as_array().unwrap().len(), 4);
        assert_eq!(p[1]["start_period"], 1800);
        assert_eq!(p[1]["limit"], 7000.0);
        assert_eq!(p[3]["start_period"], 4500);
        assert_eq!(p[3]["limit"], 0.0);

        let ocpp = ocpp_tx_profile(&row, 900, "2019-05-01T00:00:00Z", None, 7, Some(42));
        let j = serde_json::to_value(&ocpp).unwrap();
        assert_eq!(j["chargingProfilePurpose"], "TxProfile");
        assert_eq!(j["chargingProfileKind"], "Absolute");
        assert_eq!(j["transactionId"], 42);
        let s = &j["chargingSchedule"];
        assert_eq!(s["chargingRateUnit"], "W");
        assert_eq!(s["startSchedule"], "2019-05-01T00:00:00Z");
        assert_eq!(s["chargingSchedulePeriod"][2]["startPeriod"], 3600);
        assert_eq!(s["chargingSchedulePeriod"][2]["limit"], 3500.0);
    }

    #[test]
    fn amps_points_get_amps_profiles() {
        let sp = SetPoints {
            vehicle_id: "a".into(),
            unit: RateUnit::Amps,
            values: vec![16_000, 16_000, 0, 6_500],
            min: 6_000,
            phases: Some(1),
        };
        let j = serde_json::to_value(ocpi_profile_for(&sp, 900, "2026-12-05T00:00:00Z")).unwrap();
        assert_eq!(j["charging_rate_unit"], "A");
        assert_eq!(j["min_charging_rate"], 6.0);
        assert_eq!(j["charging_profile_period"][0]["limit"], 16.0);
        assert_eq!(j["charging_profile_period"][2]["limit"], 6.5);
        let j = serde_json::to_value(ocpp_profile_for(&sp, 900, "2026-12-05T00:00:00Z", 1, None))
            .unwrap();
        let s = &j["chargingSchedule"];
        assert_eq!(s["chargingRateUnit"], "A");
        assert_eq!(s["minChargingRate"], 6.0);
        assert_eq!(s["chargingSchedulePeriod"][1]["limit"], 0.0);
        assert_eq!(s["chargingSchedulePeriod"][1]["numberPhases"], 1);
    }

    #[test]
    fn uncontrolled_limits_only_where_curtailed() {
        let v = Vehicle {
            id: "u".into(),
            arrival: 1,
            departure: 6,
            max_power_w: 10_000,
            min_power_w: 0,
            energy_requested_wh: 6_000,
            battery_capacity_wh: None,
            energy_on_arrival_wh: None,
            class: VehicleClass::Uncontrolled,
            efficiency_permille: 1000,
            taper_knee_permille: None,
            energy_wanted_wh: None,
        };
        // Free: 10 kW, then the 1 kW that is left of 6 kWh (15-min steps).
        assert_eq!(
            uncontrolled_limits(&v, &[0, 10_000, 10_000, 4_000, 0, 0], 900),
            None
        );
        // Curtailed to 3 kW in step 2: limited there only, then free again (the rest of the
        // assumed energy, and whatever more it takes, at full power).
        assert_eq!(
            uncontrolled_limits(&v, &[0, 10_000, 3_000, 10_000, 1_000, 0], 900),
            Some(vec![10_000, 10_000, 3_000, 10_000, 10_000, 10_000])
        );
        // A tapering battery (40 kWh, 36 kWh stored, knee 80 %) planned at its taper is free.
        let tapering = Vehicle {
            battery_capacity_wh: Some(40_000),
            energy_on_arrival_wh: Some(36_000),
            energy_requested_wh: 4_000,
            taper_knee_permille: Some(800),
            energy_wanted_wh: None,
            ..v
        };
        let g = crate::GroupInputs {
            group_id: 0,
            start_timestep: 0,
            time_step_s: 900,
            horizon: 6,
            capacity_w: vec![50_000; 6],
            other_load_w: vec![0; 6],
            pv_w: vec![0; 6],
            price_micro_eur_per_kwh: vec![0; 6],
            battery: None,
            vehicles: vec![tapering.clone()],
            topology: None,
        };
        let row = crate::solve(&g, &crate::SolveOptions::default(), None)
            .unwrap()
            .power_w
            .remove(0);
        assert!(row[1] < 10_000 && row[1] > 0, "{row:?}");
        assert_eq!(uncontrolled_limits(&tapering, &row, 900), None);
        let mut cut = row.clone();
        cut[2] -= 1;
        assert!(uncontrolled_limits(&tapering, &cut, 900).is_some());
    }
}
