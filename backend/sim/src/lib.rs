//! A CPO and EV-user simulator that plays a real CPO against a running evflex over HTTP.
//!
//! What it owns: a small axum server on `127.0.0.1:0` with the CPO's OCPI side ([`cpo`]:
//! versions, 2.2.1 details and a `chargingprofiles` receiver that records the limit per
//! session), a site ([`scenario`]: sites, groups, charge points, a PV profile, a capacity cut,
//! a day of day-ahead prices), EV demand ([`demand`]: generated as the day-ahead planner of
//! seed 002 does, or replayed from a CSV of real sessions such as ACN-Data), and a day run step
//! by step on a simulated clock ([`run`]). [`report`] turns the measurements into the summary
//! and the uncontrolled counterfactual, [`plots`] into an HTML page of charts, and [`demo`] is
//! `evflex demo`.
//!
//! Everything the simulated CPO and users do goes through evflex's public HTTP API (OCPI
//! credentials handshake, locations, sessions, CDRs, topology, capacity changes, forecasts,
//! meter values; users, smart-charging consent, wallet top-ups, requests and offers) with
//! `reqwest`. Three things are an operator's, not a CPO's: adding the OCPI registration token
//! (token A), loading the day-ahead prices, and the clock: the simulator moves evflex's
//! simulated clock and runs the tick once per 15-minute step, so a day runs in well under a
//! minute. [`Operator`] does them: [`SimTarget`] in-process (moves the app's [`SimClock`] and
//! calls [`evflex::engine::run_tick`], what `TickMode::Manual` is for), [`RemoteTarget`] over
//! the operator routes of a separate `evflex serve --sim-clock` (`api::operator`), which the
//! end-to-end suite kills and restarts mid-day: the client retries while it is away.
//!
//! Deterministic from [`SimConfig::seed`]: demand, charge-point choice and opt-in decisions
//! come from ChaCha8 streams seeded from it; evflex's answers are deterministic too.

pub mod bench;
pub mod cpo;
pub mod demand;
pub mod demo;
pub mod live;
pub mod plots;
pub mod policies;
pub mod report;
pub mod run;
pub mod scenario;
pub mod site_battery;
pub mod steps;

pub use demand::{Arrival, DemandSource};
pub use report::Summary;
pub use run::{SimRecord, run};

pub use cpo::Client;

use evflex::app::AppState;
use evflex::domain::SimClock;
use std::time::Duration;

/// Steps of the simulated day.
pub const STEPS_PER_DAY: usize = 96;
/// Length of one step (s): evflex's 15-minute tick.
pub const STEP_S: u32 = 900;

/// `HH:MM` of the start of step `step` of the simulated day (`24:00` for its end).
pub fn hhmm(step: usize) -> String {
    let minutes = step * STEP_S as usize / 60;
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

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
    /// How the simulated CPO answers profiles ([`cpo::Quirks`]): it accepts every one by
    /// default; the demo's CPO rejects some and throttles.
    pub cpo_quirks: cpo::Quirks,
    /// Group 1 is a three-phase site (issue 12, [`scenario::Tree`]): a limit per phase on its
    /// connection and on a cabinet feeding half its points, points wired with the phases
    /// rotated, taking whole amps; every third car that plugs in there is single-phase.
    pub three_phase_group: bool,
    /// Play the day in continuous time ([`live`]: real seconds, tapering batteries, profile
    /// latency, 1-second load); `None`: quarter-hour steps ([`run`]).
    pub continuous: Option<live::Continuous>,
    /// Every group's arrival reserve as its CPO sets it (`arrival_reserve_w` in the topology, W);
    /// `None`: evflex's rule (`engine::reserve`).
    pub arrival_reserve_w: Option<i64>,
    /// Group 3 (the last group when there are fewer) has a stationary battery of this usable
    /// capacity (Wh), half full at the start, 0.5 C ([`scenario::SiteBattery::half_full`]);
    /// 0: none. Continuous time only: its simulator runs the battery ([`live`]).
    pub battery_wh: i64,
}

impl Default for SimConfig {
    /// The simulator's default day (`evflex demo` generates 2.5 EVs per charge point instead):
    /// 3 sites, 5 groups, 60 charge points (every third 22 kW), 90 generated
    /// EVs, 70 % opted in, PV on group 2, a 60 kWh battery on group 3 (in continuous time), a
    /// capacity cut on group 5, 24 hours.
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
            cpo_quirks: cpo::Quirks::NONE,
            three_phase_group: true,
            continuous: None,
            arrival_reserve_w: None,
            battery_wh: 60_000,
        }
    }
}

impl SimConfig {
    /// Index of the group with the battery ([`SimConfig::battery_wh`]).
    pub const BATTERY_GROUP: usize = 2;

    /// First simulated step (index within the day).
    pub fn first_step(&self) -> usize {
        (self.start_hour as usize * 4).min(STEPS_PER_DAY)
    }

    /// One past the last simulated step (index within the day).
    pub fn end_step(&self) -> usize {
        ((self.start_hour + self.hours) as usize * 4).min(STEPS_PER_DAY)
    }
}

/// What a tick did, as far as the simulator counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TickFigures {
    /// Groups solved and stored.
    pub solved: usize,
    /// Groups that failed.
    pub failed: usize,
    /// Set-points delivered to the CPO.
    pub setpoints_sent: usize,
    /// Set-points given up on.
    pub setpoints_failed: usize,
    /// Of those, refused by the CPO (`REJECTED`, `NOT_SUPPORTED`, `UNKNOWN_SESSION`).
    pub setpoints_rejected: usize,
    /// Set-points the CPO answered `TOO_OFTEN` (sent again after a back-off).
    pub setpoints_deferred: usize,
    /// Wall time of the tick (ms).
    pub duration_ms: f64,
}

impl TickFigures {
    /// The figures of a tick report (in-process, or the JSON of `POST /api/v1/operator/tick`).
    pub fn of_report(report: &serde_json::Value) -> Self {
        let groups = report["groups"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or(&[]);
        let count = |o: &str| groups.iter().filter(|g| g["outcome"] == o).count();
        for g in groups.iter().filter(|g| g["outcome"] == "failed") {
            tracing::warn!(group = %g["group_id"], reason = %g["reason"], "sim: group tick failed");
        }
        let n = |v: &serde_json::Value| v.as_u64().unwrap_or(0) as usize;
        Self {
            solved: count("solved"),
            failed: count("failed"),
            setpoints_sent: n(&report["delivery"]["sent"]),
            setpoints_failed: n(&report["delivery"]["failed"]),
            setpoints_rejected: n(&report["delivery"]["rejected"]),
            setpoints_deferred: n(&report["delivery"]["deferred"]),
            duration_ms: report["duration_ms"].as_f64().unwrap_or(0.0),
        }
    }
}

/// The operator side the simulator needs besides evflex's public API: token A, prices, the
/// clock and the tick. [`SimTarget`] does it in-process (the demo, the API tests);
/// [`RemoteTarget`] over the operator routes of an `evflex serve --sim-clock` (the end-to-end
/// suite, where the server is a separate process that may be killed and restarted).
pub trait Operator: Sync {
    /// Base URL of evflex's HTTP API (`http://127.0.0.1:PORT`).
    fn base_url(&self) -> &str;
    /// The registration token (OCPI token A) the simulated CPO starts the handshake with.
    fn registration_token(&self) -> &str;
    /// Adds token A and loads `prices` (`(unix_s, micro-EUR per kWh)`) at `now`; answers
    /// whether evflex has a chain (then drivers top up their wallets).
    fn setup(
        &self,
        prices: &[(i64, i64)],
        now: i64,
    ) -> impl std::future::Future<Output = SimResult<bool>> + Send;
    /// Sets evflex's clock to `now` (Unix seconds).
    fn set_clock(&self, now: i64) -> impl std::future::Future<Output = SimResult<()>> + Send;
    /// Lets evflex plan, now, the events it was told of (its re-plans) and send their
    /// profiles, as its re-plan worker does within a second on a real clock.
    fn settle(&self) -> impl std::future::Future<Output = SimResult<()>> + Send;
    /// Runs the tick for absolute `timestep` (idempotent: groups already solved are skipped).
    fn tick(
        &self,
        timestep: u64,
    ) -> impl std::future::Future<Output = SimResult<TickFigures>> + Send;
}

/// The evflex the simulator plays against, in this process.
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

impl Operator for SimTarget {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn registration_token(&self) -> &str {
        &self.registration_token
    }

    async fn setup(&self, prices: &[(i64, i64)], now: i64) -> SimResult<bool> {
        let db_err = |e: evflex::store::StoreError| SimError::Other(format!("database: {e}"));
        self.clock.set(now);
        {
            let mut conn = self.state.db.conn().await.map_err(db_err)?;
            evflex::store::parties::add_registration_token(
                &mut conn,
                &self.registration_token,
                now,
            )
            .await
            .map_err(db_err)?;
        }
        let mut tx = self.state.db.begin().await.map_err(db_err)?;
        evflex::store::prices::put(&mut tx, prices)
            .await
            .map_err(db_err)?;
        tx.commit()
            .await
            .map_err(|e| SimError::Other(format!("database: {e}")))?;
        Ok(self.state.engine.chain.is_some())
    }

    async fn set_clock(&self, now: i64) -> SimResult<()> {
        self.clock.set(now);
        Ok(())
    }

    async fn settle(&self) -> SimResult<()> {
        evflex::engine::replan::settle(&self.state.engine, Duration::from_secs(30)).await;
        Ok(())
    }

    async fn tick(&self, timestep: u64) -> SimResult<TickFigures> {
        let report = evflex::engine::replan::tick_settled(&self.state.engine, timestep).await;
        let json = serde_json::to_value(&report).map_err(|e| SimError::Other(e.to_string()))?;
        Ok(TickFigures::of_report(&json))
    }
}

/// An `evflex serve --sim-clock` in another process, driven over its operator routes
/// (`Authorization: Bearer <EVFLEX_OPERATOR_TOKEN>`). Calls are retried while the server is
/// unreachable (being restarted), see [`cpo::Client::call`].
#[derive(Clone)]
pub struct RemoteTarget {
    /// Base URL (`http://127.0.0.1:PORT`).
    pub base_url: String,
    /// The operator token.
    pub operator_token: evflex::config::Secret,
    /// A registration token (OCPI token A) to add and use.
    pub registration_token: String,
}

impl RemoteTarget {
    async fn operator_call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> SimResult<serde_json::Value> {
        let client = cpo::Client::new(&self.base_url)?;
        let auth = format!("Bearer {}", self.operator_token.expose());
        client
            .call_idempotent(method, path, Some(&auth), body)
            .await
    }
}

impl Operator for RemoteTarget {
    fn base_url(&self) -> &str {
        &self.base_url
    }

    fn registration_token(&self) -> &str {
        &self.registration_token
    }

    async fn setup(&self, prices: &[(i64, i64)], now: i64) -> SimResult<bool> {
        use serde_json::json;
        self.set_clock(now).await?;
        self.operator_call(
            reqwest::Method::POST,
            "/api/v1/operator/registration-tokens",
            Some(&json!({"token": self.registration_token})),
        )
        .await?;
        self.operator_call(
            reqwest::Method::PUT,
            "/api/v1/operator/prices",
            Some(&json!({ "prices": prices })),
        )
        .await?;
        let status = self
            .operator_call(reqwest::Method::GET, "/api/v1/operator/status", None)
            .await?;
        Ok(status["chain"].as_bool().unwrap_or(false))
    }

    async fn set_clock(&self, now: i64) -> SimResult<()> {
        self.operator_call(
            reqwest::Method::PUT,
            "/api/v1/operator/clock",
            Some(&serde_json::json!({ "now": now })),
        )
        .await
        .map(|_| ())
    }

    async fn settle(&self) -> SimResult<()> {
        self.operator_call(reqwest::Method::POST, "/api/v1/operator/settle", None)
            .await
            .map(|_| ())
    }

    async fn tick(&self, timestep: u64) -> SimResult<TickFigures> {
        let report = self
            .operator_call(
                reqwest::Method::POST,
                "/api/v1/operator/tick",
                Some(&serde_json::json!({ "timestep": timestep })),
            )
            .await?;
        Ok(TickFigures::of_report(&report))
    }
}
