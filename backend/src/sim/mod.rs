//! A CPO and EV-user simulator that plays a real CPO against a running evflex over HTTP.
//!
//! What it owns: a small axum server on `127.0.0.1:0` with the CPO's OCPI side ([`cpo`]:
//! versions, 2.2.1 details and a `chargingprofiles` receiver that records the limit per
//! session), a site ([`scenario`]: sites, groups, charge points, a PV profile, a capacity cut,
//! a day of day-ahead prices), EV demand ([`demand`]: generated as the day-ahead planner of
//! seed 002 does, or replayed from a CSV of real sessions such as ACN-Data), and a day run step
//! by step on a simulated clock ([`run`]). [`report`] turns the measurements into the summary
//! and the uncontrolled counterfactual, [`plots`] into SVG files, and [`demo`] is
//! `evflex demo`.
//!
//! Everything the simulated CPO and users do goes through evflex's public HTTP API (OCPI
//! credentials handshake, locations, sessions, CDRs, topology, capacity changes, forecasts,
//! meter values; users, smart-charging consent, requests and offers) with `reqwest`. Three
//! things are done in-process because they are an operator's, not a CPO's: adding the OCPI
//! registration token (token A), loading the day-ahead prices, and the clock: the simulator
//! moves the app's [`SimClock`] and calls [`crate::engine::run_tick`] once per 15-minute step
//! (what `TickMode::Manual` is for), so a day runs in well under a minute.
//!
//! Deterministic from [`SimConfig::seed`]: demand, charge-point choice and opt-in decisions
//! come from ChaCha8 streams seeded from it; evflex's answers are deterministic too.

pub mod cpo;
pub mod demand;
pub mod demo;
pub mod plots;
pub mod report;
pub mod run;
pub mod scenario;

pub use demand::{Arrival, DemandSource};
pub use report::Summary;
pub use run::{SimRecord, run};

use crate::app::AppState;
use crate::engine::SimClock;
use std::time::Duration;

/// 2019-07-02T00:00:00Z: the simulated day (a Tuesday; the NL day-ahead prices of that day
/// are embedded).
pub const DEFAULT_DAY_START: i64 = 1_562_025_600;

/// Errors of the simulator.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// evflex (or the network) failed a call.
    #[error("{what}: {source}")]
    Http {
        /// The call.
        what: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// evflex answered, but not with success.
    #[error("{what}: HTTP {status}: {body}")]
    Refused {
        /// The call.
        what: String,
        /// HTTP status.
        status: u16,
        /// Response body.
        body: String,
    },
    /// A sessions CSV could not be read.
    #[error("sessions CSV: {0}")]
    Csv(String),
    /// Anything else (setup, database).
    #[error("{0}")]
    Other(String),
}

/// Result of the simulator.
pub type SimResult<T> = Result<T, SimError>;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seed of every random choice.
    pub seed: u64,
    /// 00:00 of the simulated day (Unix seconds, UTC; the embedded prices are for
    /// [`DEFAULT_DAY_START`]). Time of day in the data (arrivals, PV) maps to the same time of
    /// day here.
    pub day_start: i64,
    /// First simulated hour of the day.
    pub start_hour: u32,
    /// Simulated hours.
    pub hours: u32,
    /// Sites (one OCPI location each).
    pub sites: usize,
    /// Groups (shared connections); group `g` is on site `g % sites`.
    pub groups: usize,
    /// Charge points; charge point `i` is in group `i % groups`.
    pub charge_points: usize,
    /// Every n-th charge point is 22 kW (3 × 32 A), the others 11 kW (3 × 16 A); 0: all 11 kW.
    pub cp_22kw_every: usize,
    /// Group capacity as a share of the sum of its charge points' ratings.
    pub capacity_share: f64,
    /// Group 2 (when there are at least two groups) gets PV of this peak (W), shaped by the
    /// measured SERF East profile of 2016-07-14; 0: no PV.
    pub pv_peak_w: i64,
    /// The last group's capacity is cut to this share for two hours from
    /// [`SimConfig::cut_start_hour`] (a scheduled capacity change); `None`: no cut.
    pub capacity_cut: Option<f64>,
    /// Hour of the day the capacity cut starts.
    pub cut_start_hour: u32,
    /// Share of drivers who opt into smart charging.
    pub opt_in_share: f64,
    /// Where the EVs come from.
    pub demand: DemandSource,
    /// OCPI country code of the simulated CPO.
    pub country_code: String,
    /// OCPI party id of the simulated CPO.
    pub party_id: String,
    /// Wall-clock pause after each step (`evflex demo --speed`); `None`: as fast as possible.
    pub pace: Option<Duration>,
}

impl Default for SimConfig {
    /// The demo's day: 3 sites, 5 groups, 60 charge points (every third 22 kW), 90 generated
    /// EVs, 70 % opted in, PV on group 2, a capacity cut on group 5, 24 hours.
    fn default() -> Self {
        Self {
            seed: 1,
            day_start: DEFAULT_DAY_START,
            start_hour: 0,
            hours: 24,
            sites: 3,
            groups: 5,
            charge_points: 60,
            cp_22kw_every: 3,
            capacity_share: 0.45,
            pv_peak_w: 40_000,
            capacity_cut: Some(0.5),
            cut_start_hour: 12,
            opt_in_share: 0.7,
            demand: DemandSource::Generated {
                config: evflex_schedule::demand::DemandConfig::new(90),
            },
            country_code: "NL".to_owned(),
            party_id: "SIM".to_owned(),
            pace: None,
        }
    }
}

impl SimConfig {
    /// First simulated step (index within the day).
    pub fn first_step(&self) -> usize {
        (self.start_hour as usize * 4).min(96)
    }

    /// One past the last simulated step (index within the day).
    pub fn end_step(&self) -> usize {
        ((self.start_hour + self.hours) as usize * 4).min(96)
    }
}

/// The evflex the simulator plays against.
#[derive(Clone)]
pub struct SimTarget {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// The app's state (to run ticks and load prices).
    pub state: AppState,
    /// The app's simulated clock.
    pub clock: SimClock,
    /// A registration token (OCPI token A) the app accepts; [`run`] adds it when it is not
    /// known yet.
    pub registration_token: String,
}
