//! Synthetic EV demand, generated the way the day-ahead planner of seed 002 describes it:
//! nominal power from {6, 7, 11, 22} kW, battery from {30, 52, 88, 100} kWh, arrival uniform
//! between 05:00 and 16:00, parking 1–5 h, horizon starting at 00:00 with 15-minute steps.
//! Arrival and departure are converted to step indexes by flooring (as in the planner's example:
//! 11:59:53 → 47, 16:46:38 → 67). The energy on arrival is 10–60 % of the battery, and the
//! request is the smaller of what the battery can take and nominal power × parking time (so many
//! requests are at the edge of feasibility, as in the planner's example).
//!
//! Deterministic: ChaCha8 seeded with `seed`, the same records on every machine.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Parameters of the generator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandConfig {
    /// Number of vehicles.
    pub n_vehicles: usize,
    /// Horizon (steps).
    pub horizon: usize,
    /// Step length (s).
    pub time_step_s: u32,
    /// Nominal powers to draw from (kW).
    pub powers_kw: Vec<f64>,
    /// Battery sizes to draw from (kWh).
    pub batteries_kwh: Vec<f64>,
    /// Earliest and latest arrival (seconds after the horizon start).
    pub arrival_window_s: (u32, u32),
    /// Shortest and longest parking time (s).
    pub parking_s: (u32, u32),
}

impl DemandConfig {
    /// The planner's defaults for `n_vehicles` vehicles over 96 quarter hours.
    pub fn new(n_vehicles: usize) -> Self {
        Self {
            n_vehicles,
            horizon: 96,
            time_step_s: 900,
            powers_kw: vec![6.0, 7.0, 11.0, 22.0],
            batteries_kwh: vec![30.0, 52.0, 88.0, 100.0],
            arrival_window_s: (5 * 3600, 16 * 3600),
            parking_s: (3600, 5 * 3600),
        }
    }
}

/// One generated charging session (the planner's demand table row).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DemandRecord {
    /// Vehicle id ("0", "1", …).
    pub id: String,
    /// Nominal power (kW).
    pub power_kw: f64,
    /// Energy requested (kWh, 3 decimals).
    pub energy_kwh: f64,
    /// Battery capacity (kWh).
    pub battery_kwh: f64,
    /// Energy on arrival (kWh, 1 decimal).
    pub soe_init_kwh: f64,
    /// Arrival (s after the horizon start).
    pub arrival_s: u32,
    /// Departure (s after the horizon start).
    pub departure_s: u32,
    /// Arrival step (floored).
    pub arrival: usize,
    /// Departure step (floored, at least arrival + 1, at most the horizon).
    pub departure: usize,
}

/// Generate `cfg.n_vehicles` sessions from `seed`.
pub fn generate(cfg: &DemandConfig, seed: u64) -> Vec<DemandRecord> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let step = cfg.time_step_s.max(1);
    (0..cfg.n_vehicles)
        .map(|i| {
            let power_kw = cfg.powers_kw[rng.random_range(0..cfg.powers_kw.len())];
            let battery_kwh = cfg.batteries_kwh[rng.random_range(0..cfg.batteries_kwh.len())];
            let arrival_s = rng.random_range(cfg.arrival_window_s.0..=cfg.arrival_window_s.1);
            let parking = rng.random_range(cfg.parking_s.0..=cfg.parking_s.1);
            let soe_frac: f64 = rng.random_range(0.1..0.6);
            let soe_init_kwh = (battery_kwh * soe_frac * 10.0).round() / 10.0;
            let departure_s = arrival_s + parking;
            let by_power = power_kw * parking as f64 / 3600.0;
            let energy_kwh = ((battery_kwh - soe_init_kwh).min(by_power) * 1000.0).round() / 1000.0;
            let arrival = ((arrival_s / step) as usize).min(cfg.horizon.saturating_sub(1));
            let departure = ((departure_s / step) as usize).clamp(arrival + 1, cfg.horizon);
            DemandRecord {
                id: i.to_string(),
                power_kw,
                energy_kwh,
                battery_kwh,
                soe_init_kwh,
                arrival_s,
                departure_s,
                arrival,
                departure,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_within_the_planner_ranges() {
        let cfg = DemandConfig::new(200);
        let a = generate(&cfg, 7);
        assert_eq!(a, generate(&cfg, 7));
        assert_ne!(a, generate(&cfg, 8));
        for r in &a {
            assert!([6.0, 7.0, 11.0, 22.0].contains(&r.power_kw));
            assert!([30.0, 52.0, 88.0, 100.0].contains(&r.battery_kwh));
            assert!((5 * 3600..=16 * 3600).contains(&r.arrival_s));
            assert!((3600..=5 * 3600).contains(&(r.departure_s - r.arrival_s)));
            assert!(r.arrival < r.departure && r.departure <= 96);
            assert!(r.energy_kwh > 0.0 && r.energy_kwh <= r.battery_kwh - r.soe_init_kwh + 1e-9);
        }
    }
}
