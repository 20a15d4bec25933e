//! The site's stationary battery in continuous time (issue 15): the battery controller of a
//! group that has one ([`crate::scenario::SiteBattery`]).
//!
//! It works as a real one would against evflex's battery routes:
//! - every [`crate::live::Continuous::meter_interval_s`] it posts its state (energy in the
//!   usable window, the power of the last second) to
//!   `PUT /api/v1/groups/{id}/batteries/{battery_id}/state`;
//! - at every second where evflex may have re-planned, it reads
//!   `GET /api/v1/groups/{id}/batteries/{battery_id}/setpoints`, and a plan it has not seen
//!   takes effect [`crate::live::Continuous::profile_latency_s`] later, like a car's profile;
//! - every second it charges or discharges at the period's power, within its rating and its
//!   energy. Its battery management keeps [`MARGIN`] of the usable capacity spare at each end
//!   (a real BMS's reserve): it runs on that far past the window evflex plans in, so a plan
//!   that ends a quarter hour exactly empty is still followed.
//!
//! Under the uncontrolled and equal-share policies no one controls the battery: it stays idle
//! ([`crate::policies`]).

use crate::run::World;
use crate::scenario::{Scenario, SiteBattery};
use evflex::domain::{format_rfc3339, parse_rfc3339};
use reqwest::Method;
use serde::Serialize;
use serde_json::{Value, json};

/// Spare energy beyond each end of the usable window, as a share of it.
const MARGIN: f64 = 0.025;

/// What a battery did over the day, from its controller's own meter.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatteryFigures {
    /// Usable capacity (kWh).
    pub capacity_kwh: f64,
    /// Energy in it at the start of the window (kWh).
    pub start_kwh: f64,
    /// Energy in it at the end (kWh).
    pub end_kwh: f64,
    /// Energy it took from the connection (kWh).
    pub charged_kwh: f64,
    /// Energy it gave the connection (kWh).
    pub discharged_kwh: f64,
}

impl BatteryFigures {
    /// The figures of a battery of `capacity_wh` that started with `start_wh` and ran at
    /// `power_w` (W at the connection, + charging) per step of `step_s`.
    pub fn of_plan(b: &SiteBattery, power_w: &[f64], step_s: f64) -> Self {
        let h = step_s / 3_600.0;
        let charged: f64 = power_w.iter().map(|p| p.max(0.0) * h).sum();
        let discharged: f64 = power_w.iter().map(|p| (-p).max(0.0) * h).sum();
        let eff = f64::from(b.efficiency_permille) / 1_000.0;
        let end = b.energy_wh as f64 + charged * eff - discharged;
        Self {
            capacity_kwh: kwh(b.capacity_wh as f64),
            start_kwh: kwh(b.energy_wh as f64),
            end_kwh: kwh(end),
            charged_kwh: kwh(charged),
            discharged_kwh: kwh(discharged),
        }
    }
}

fn kwh(wh: f64) -> f64 {
    (wh / 10.0).round() / 100.0
}

/// What the battery of one group did, second by second.
#[derive(Debug, Clone, PartialEq)]
pub struct BatteryRun {
    /// Group index.
    pub group: usize,
    /// The battery.
    pub spec: SiteBattery,
    /// Average power per step of the day (W, + charging).
    pub power_w: Vec<f64>,
    /// Energy it took (Wh).
    pub charged_wh: f64,
    /// Energy it gave (Wh).
    pub discharged_wh: f64,
    /// Energy in it at the end, on the usable window's scale (Wh; the margin may take it a
    /// little outside).
    pub end_wh: f64,
    /// The schedules whose periods it followed, as (timestep, revision), in order.
    pub followed: Vec<(i64, i64)>,
}

impl BatteryRun {
    /// Its figures.
    pub fn figures(&self) -> BatteryFigures {
        BatteryFigures {
            capacity_kwh: kwh(self.spec.capacity_wh as f64),
            start_kwh: kwh(self.spec.energy_wh as f64),
            end_kwh: kwh(self.end_wh),
            charged_kwh: kwh(self.charged_wh),
            discharged_kwh: kwh(self.discharged_wh),
        }
    }
}

/// One period of a plan the controller read.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Period {
    start: i64,
    end: i64,
    power_w: f64,
}

/// A group's battery controller.
pub(crate) struct Controller {
    run: BatteryRun,
    path: String,
    energy_wh: f64,
    /// The schedule (hash) of the last plan read.
    seen: Option<String>,
    pending: Vec<(i64, Vec<Period>)>,
    in_force: Vec<Period>,
    last_w: f64,
}

impl Controller {
    /// A controller for every group of `scenario` with a battery.
    pub(crate) fn of(scenario: &Scenario) -> Vec<Self> {
        scenario
            .groups
            .iter()
            .enumerate()
            .filter_map(|(g, group)| {
                let b = group.battery.clone()?;
                Some(Self {
                    path: format!("/api/v1/groups/{}/batteries/{}", group.id, b.id),
                    energy_wh: b.energy_wh as f64,
                    run: BatteryRun {
                        group: g,
                        spec: b,
                        power_w: vec![0.0; super::STEPS_PER_DAY],
                        charged_wh: 0.0,
                        discharged_wh: 0.0,
                        end_wh: 0.0,
                        followed: Vec::new(),
                    },
                    seen: None,
                    pending: Vec::new(),
                    in_force: Vec::new(),
                    last_w: 0.0,
                })
            })
            .collect()
    }

    /// Group index.
    pub(crate) fn group(&self) -> usize {
        self.run.group
    }

    /// Posts the state at `t`.
    pub(crate) async fn post_state(&self, world: &mut World<'_>, t: i64) {
        let capacity = self.run.spec.capacity_wh as f64;
        let body = json!({"energy_wh": self.energy_wh.clamp(0.0, capacity).round() as i64,
            "power_w": self.last_w.round() as i64, "measured_at": format_rfc3339(t)});
        let r = world
            .cpo_call(Method::PUT, &format!("{}/state", self.path), &body)
            .await;
        world.note(r);
    }

    /// Reads the plan in force; one not seen before takes effect at `effective`.
    pub(crate) async fn poll(&mut self, world: &mut World<'_>, effective: i64) {
        let r = world
            .client
            .call(
                Method::GET,
                &format!("{}/setpoints", self.path),
                Some(&world.cpo_auth),
                None,
            )
            .await;
        let Some(body) = world.note(r) else { return };
        let hash = body["schedule_hash"].as_str().map(str::to_owned);
        if hash.is_none() || hash == self.seen {
            return;
        }
        self.seen = hash;
        if let (Some(ts), Some(rev)) = (body["timestep"].as_i64(), body["revision"].as_i64()) {
            self.run.followed.push((ts, rev));
        }
        let periods = body["periods"]
            .as_array()
            .map(|ps| ps.iter().filter_map(period).collect())
            .unwrap_or_default();
        self.pending.push((effective, periods));
    }

    /// The battery's power over `[t, t + 1)` (W at the connection, + charging); step `k` of
    /// the day.
    pub(crate) fn second(&mut self, t: i64, k: usize) -> f64 {
        while let Some(pos) = self.pending.iter().position(|(at, _)| *at <= t) {
            self.in_force = self.pending.remove(pos).1;
        }
        let planned = self
            .in_force
            .iter()
            .find(|p| p.start <= t && t < p.end)
            .map_or(0.0, |p| p.power_w);
        let b = &self.run.spec;
        let (capacity, max_w) = (b.capacity_wh as f64, b.max_w as f64);
        let eff = f64::from(b.efficiency_permille) / 1_000.0;
        let margin = MARGIN * capacity;
        let power = if planned >= 0.0 {
            let room_w = (capacity + margin - self.energy_wh).max(0.0) / eff * 3_600.0;
            planned.min(max_w).min(room_w)
        } else {
            let held_w = (self.energy_wh + margin).max(0.0) * 3_600.0;
            -(-planned).min(max_w).min(held_w)
        };
        if power >= 0.0 {
            self.energy_wh += power * eff / 3_600.0;
            self.run.charged_wh += power / 3_600.0;
        } else {
            self.energy_wh += power / 3_600.0;
            self.run.discharged_wh -= power / 3_600.0;
        }
        self.run.power_w[k] += power / super::STEP_S as f64;
        self.last_w = power;
        power
    }

    /// What it did.
    pub(crate) fn finish(mut self) -> BatteryRun {
        self.run.end_wh = self.energy_wh;
        self.run
    }
}

fn period(p: &Value) -> Option<Period> {
    Some(Period {
        start: parse_rfc3339(p["start"].as_str()?)?,
        end: parse_rfc3339(p["end"].as_str()?)?,
        power_w: p["power_w"].as_f64()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn controller(plan: Vec<Period>) -> Controller {
        let scenario = Scenario {
            charge_points: Vec::new(),
            groups: vec![crate::scenario::Group {
                id: 3,
                site: 0,
                capacity_w: 50_000,
                cut: None,
                pv_w: vec![0; super::super::STEPS_PER_DAY],
                pv_peak_w: 0,
                tree: None,
                battery: Some(SiteBattery::half_full(40_000)),
            }],
            price_micro_eur_per_kwh: Vec::new(),
        };
        let mut c = Controller::of(&scenario).pop().unwrap();
        c.pending.push((10, plan));
        c
    }

    #[test]
    fn it_follows_the_plan_after_the_latency_within_its_rating_and_energy() {
        let mut c = controller(vec![
            Period {
                start: 0,
                end: 100,
                power_w: 50_000.0,
            },
            Period {
                start: 100,
                end: 200_000,
                power_w: -10_000.0,
            },
        ]);
        assert_eq!(c.second(5, 0), 0.0, "not in force before its latency");
        assert_eq!(c.second(10, 0), 20_000.0, "at most its rating");
        assert_eq!(c.second(100, 0), -10_000.0);
        // 20 kWh less the 1 s at 10 kW, then it runs into its margin (1 kWh) and stops.
        let mut gave = 10_000.0 / 3_600.0;
        for t in 101..20_000 {
            gave -= c.second(t, 0) / 3_600.0;
        }
        assert!(
            (gave - 21_000.0 - 20_000.0 * 0.9 / 3_600.0).abs() < 1e-6,
            "{gave}"
        );
        assert_eq!(c.second(20_001, 0), 0.0, "empty");
        let run = c.finish();
        assert!((run.end_wh + 1_000.0).abs() < 1e-6, "{}", run.end_wh);
        assert_eq!(run.figures().end_kwh, -1.0);
    }
}
