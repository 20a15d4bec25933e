//! Shared builders for the integration tests.
#![allow(dead_code)]

use evflex_schedule::{GroupInputs, Vehicle, VehicleClass};
use serde_json::Value;

/// A group with `h` quarter hours, a flat capacity (W) and per-step prices (µEUR/kWh).
pub fn group(capacity_w: i64, price: Vec<i64>, vehicles: Vec<Vehicle>) -> GroupInputs {
    let h = price.len();
    GroupInputs {
        group_id: 1,
        start_timestep: 1_700_000_000 / 900,
        time_step_s: 900,
        horizon: h,
        capacity_w: vec![capacity_w; h],
        other_load_w: vec![0; h],
        pv_w: vec![0; h],
        price_micro_eur_per_kwh: price,
        battery: None,
        vehicles,
        topology: None,
    }
}

/// An opted-in, accepted vehicle, efficiency 100 %, no minimum power.
pub fn ev(id: &str, arrival: usize, departure: usize, max_w: i64, energy_wh: i64) -> Vehicle {
    Vehicle {
        id: id.into(),
        arrival,
        departure,
        max_power_w: max_w,
        min_power_w: 0,
        energy_requested_wh: energy_wh,
        battery_capacity_wh: None,
        energy_on_arrival_wh: None,
        class: VehicleClass::Guaranteed,
        efficiency_permille: 1000,
        taper_knee_permille: None,
        energy_wanted_wh: None,
    }
}

/// Compare `expected` with `actual`, numbers within 1e-3, collecting differences.
pub fn diff(path: &str, expected: &Value, actual: &Value, out: &mut Vec<String>) {
    match (expected, actual) {
        (Value::Number(e), Value::Number(a)) => {
            let (e, a) = (
                e.as_f64().unwrap_or(f64::NAN),
                a.as_f64().unwrap_or(f64::NAN),
            );
            if (e - a).abs() > 1e-3 {
                out.push(format!("  {path}: expected {e}, actual {a}"));
            }
        }
        (Value::Array(e), Value::Array(a)) if e.len() == a.len() => {
            for (k, (e, a)) in e.iter().zip(a).enumerate() {
                diff(&format!("{path}[{k}]"), e, a, out);
            }
        }
        (Value::Object(e), Value::Object(a)) => {
            for (k, ev) in e {
                diff(
                    &format!("{path}.{k}"),
                    ev,
                    a.get(k).unwrap_or(&Value::Null),
                    out,
                );
            }
        }
        (e, a) if e != a => out.push(format!("  {path}: expected {e}, actual {a}")),
        _ => {}
    }
}
