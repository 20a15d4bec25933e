//! The simulated day, step by step on evflex's simulated clock.
//!
//! Setup: the clock, token A and the day's prices (operator side, through [`Operator`]: in
//! this process, or over the operator routes of a separate `evflex serve --sim-clock`); the
//! CPO server; the OCPI credentials handshake; locations; topology; the capacity cut
//! (`capacity-changes`); the PV forecast (the measured profile itself, a perfect forecast).
//!
//! Each 15-minute step `k` at `t`:
//! 1. vehicles whose departure step is `k` unplug: session `PATCH` (COMPLETED, kWh), CDR
//!    `POST`, EVSE `PATCH` AVAILABLE;
//! 2. vehicles arriving in `k` plug into a free charge point (none free: turned away); the
//!    driver registers (`POST /api/v1/users`), opts in (`PUT …/smart-charging`) with
//!    probability [`SimConfig::opt_in_share`], tops up the wallet when evflex has a chain
//!    (`POST …/wallet/top-up`, [`TOP_UP_EUR`]; retried next step if the chain is away); the CPO
//!    `PUT`s the session and `PATCH`es the EVSE to CHARGING; an opted-in driver asks for
//!    energy by departure (`POST /api/v1/requests`) and accepts the offer when evflex can
//!    guarantee less (`accept-offer`);
//! 3. the clock shows `t` and the tick runs ([`Operator::tick`]), which sends profiles to the
//!    CPO server;
//! 4. each charge point draws min(the limit in force from the latest profile, the vehicle's
//!    maximum, the charge point's rating, what the vehicle still takes) for the step; a session
//!    with no profile (not opted in) draws full power;
//! 5. meter values at `t + 15 min` (energy register Wh, average power W, SoC %) for every
//!    charge point, and a session `PATCH` with the kWh so far.
//!
//! The record keeps what the simulator measured (not what evflex planned).

use super::cpo::{self, Client, CpoServer, token_header};
use super::demand::{self, Arrival};
use super::scenario::{ChargePoint, Scenario};
use super::{Operator, STEPS_PER_DAY, SimConfig, SimError, SimResult};
use evflex::domain::{TIME_STEP_S, format_rfc3339, timestep_of};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Instant;

const STEP_S: i64 = TIME_STEP_S as i64;
/// The simulated CPO's tariff: what a driver pays per kWh, incl. VAT (EUR), as its CDRs say.
const CPO_TARIFF_EUR_PER_KWH: f64 = 0.35;
/// The same tariff excl. VAT (EUR per kWh) and its VAT (%): 0.28 × 1.25 = 0.35 exactly.
const CPO_TARIFF_EXCL_VAT_EUR_PER_KWH: f64 = 0.28;
/// VAT of the simulated CPO's tariff (%).
const CPO_TARIFF_VAT_PERCENT: f64 = 25.0;
/// The id of the simulated CPO's tariff (pushed to evflex's Tariffs receiver, named in every
/// CDR's charging periods).
pub const CPO_TARIFF_ID: &str = "SIM-TARIFF-1";
/// Every this-many-th CDR leaves out `total_cost`, so that evflex prices it from the tariff.
const CDR_WITHOUT_TOTAL_EVERY: usize = 4;

/// The simulated CPO's OCPI Tariff: energy only, 0.28 €/kWh excl. 25 % VAT, billed per Wh.
pub fn cpo_tariff(country_code: &str, party_id: &str, last_updated: i64) -> Value {
    json!({
        "country_code": country_code, "party_id": party_id, "id": CPO_TARIFF_ID,
        "currency": "EUR",
        "elements": [{"price_components": [{"type": "ENERGY",
            "price": CPO_TARIFF_EXCL_VAT_EUR_PER_KWH, "vat": CPO_TARIFF_VAT_PERCENT,
            "step_size": 1}]}],
        "last_updated": format_rfc3339(last_updated)
    })
}
/// What a driver tops up after registering when evflex has a chain (EUR).
pub const TOP_UP_EUR: f64 = 50.0;

/// One vehicle as simulated.
#[derive(Debug, Clone)]
pub struct VehicleRecord {
    /// The arrival.
    pub arrival: Arrival,
    /// Charge point index; `None`: turned away (no free charge point) or outside the window.
    pub cp: Option<usize>,
    /// Opted into smart charging.
    pub opted_in: bool,
    /// OCPI session id.
    pub session_id: String,
    /// Energy of the accepted request (Wh), if any.
    pub accepted_wh: Option<i64>,
    /// The first request was rejected and the driver took the offer.
    pub took_offer: bool,
    /// The request's departure (Unix seconds): when it unplugs.
    pub departure_ts: i64,
    /// When it plugged in (Unix seconds).
    pub plugged_ts: i64,
    /// Maximum power it can draw here: min(vehicle, charge point) (W).
    pub max_w: i64,
    /// Measured average power per step of the day (W).
    pub power_w: Vec<f64>,
    /// Energy delivered (Wh, unrounded).
    pub delivered_wh: f64,
    /// Profiles evflex sent for its session.
    pub profiles: usize,
    /// Unplugged (and CDR sent) within the simulated window.
    pub unplugged: bool,
    /// Phases the car draws on: 1 for every third car at a point of the three-phase group
    /// (a single-phase car on a three-phase point), else 3.
    pub car_phases: u8,
    /// Wall-clock time from its session PUT (plug-in) to the first profile PUT evflex sent
    /// for it, when it got one.
    pub first_profile_after: Option<std::time::Duration>,
}

impl VehicleRecord {
    /// How far below its accepted energy a car may end and still count as met (Wh): 1 Wh, plus
    /// 1 Wh per quarter hour of its stay (the profiles' whole-watt rounding), plus, in
    /// continuous time, what each profile it received can cost by taking effect
    /// `profile_latency_s` after evflex sent it (that long at the car's full power).
    pub fn met_tolerance_wh(&self, profile_latency_s: Option<u32>) -> f64 {
        let stay_s = (self.departure_ts - self.plugged_ts).max(0) as f64;
        let steps = (stay_s / f64::from(super::STEP_S)).ceil();
        let latency = profile_latency_s.map_or(0.0, |s| {
            f64::from(s) * self.max_w as f64 / 3_600.0 * self.profiles as f64
        });
        1.0 + steps + latency
    }

    /// Steps it was plugged in within the window.
    pub fn plugged_steps(&self, end_step: usize) -> std::ops::Range<usize> {
        self.arrival.arrival_step..self.arrival.departure_step.min(end_step)
    }
}

/// Tick figures over the day.
#[derive(Debug, Clone, Default)]
pub struct TickStats {
    /// Ticks run.
    pub ticks: usize,
    /// Group solves stored.
    pub solved: usize,
    /// Group solves failed.
    pub failed: usize,
    /// Set-points delivered to the CPO.
    pub setpoints_sent: usize,
    /// Set-points given up on.
    pub setpoints_failed: usize,
    /// Of those, refused by the CPO.
    pub setpoints_rejected: usize,
    /// Set-points the CPO answered `TOO_OFTEN` (sent again after a back-off).
    pub setpoints_deferred: usize,
    /// Wall time in ticks (ms).
    pub tick_ms: f64,
}

impl TickStats {
    /// Counts one tick.
    pub(crate) fn add(&mut self, report: &super::TickFigures) {
        self.ticks += 1;
        self.tick_ms += report.duration_ms;
        self.setpoints_sent += report.setpoints_sent;
        self.setpoints_failed += report.setpoints_failed;
        self.setpoints_rejected += report.setpoints_rejected;
        self.setpoints_deferred += report.setpoints_deferred;
        self.solved += report.solved;
        self.failed += report.failed;
    }
}

/// Everything the simulator measured.
#[derive(Debug, Clone)]
pub struct SimRecord {
    /// The configuration.
    pub config: SimConfig,
    /// The site.
    pub scenario: Scenario,
    /// What the demand was.
    pub demand_label: String,
    /// Every arrival of the day, simulated or not.
    pub vehicles: Vec<VehicleRecord>,
    /// Measured load per group and step of the day (W): its EVs and its stationary battery.
    pub group_load_w: Vec<Vec<f64>>,
    /// Tick figures.
    pub ticks: TickStats,
    /// Meter readings posted.
    pub meter_values: usize,
    /// CDRs posted.
    pub cdrs: usize,
    /// Calls by simulated users or the CPO that evflex refused (logged).
    pub api_errors: Vec<String>,
    /// Token C: what the CPO (and the cockpit) authenticates with.
    pub cpo_token: String,
    /// Wall time of the run.
    pub wall: std::time::Duration,
    /// The CPO's answers to evflex's profile PUTs, per `ChargingProfileResponse` result.
    pub cpo_answers: std::collections::BTreeMap<&'static str, usize>,
    /// Measured current per node phase of the three-phase group, per step of the day (A):
    /// `(connection, cabinet)`; empty without such a group.
    pub phase_load_a: Vec<([f64; 3], [f64; 3])>,
    /// The continuous-time simulator's 1-second load trace; `None` for the step simulator.
    pub trace: Option<crate::live::Trace>,
}

/// What a day's loop measured: the step loop here, or the continuous-time one of
/// [`crate::live`].
pub(crate) struct Measured {
    /// Average load per group and step of the day (W): EVs and stationary battery.
    pub(crate) group_load_w: Vec<Vec<f64>>,
    /// Current per node phase of the three-phase group per step (A), see
    /// [`SimRecord::phase_load_a`].
    pub(crate) phase_load_a: Vec<([f64; 3], [f64; 3])>,
    /// Tick figures.
    pub(crate) stats: TickStats,
    /// Meter readings posted.
    pub(crate) meter_values: usize,
    /// CDRs posted.
    pub(crate) cdrs: usize,
    /// The 1-second load trace (continuous time only).
    pub(crate) trace: Option<crate::live::Trace>,
}

impl Measured {
    fn new(scenario: &Scenario) -> Self {
        let has_tree = scenario.groups.iter().any(|g| g.tree.is_some());
        Self {
            group_load_w: vec![vec![0.0; STEPS_PER_DAY]; scenario.groups.len()],
            phase_load_a: if has_tree {
                vec![([0.0; 3], [0.0; 3]); STEPS_PER_DAY]
            } else {
                Vec::new()
            },
            stats: TickStats::default(),
            meter_values: 0,
            cdrs: 0,
            trace: None,
        }
    }
}

pub(crate) struct Driver {
    bearer: String,
    /// The token uid evflex issued at sign-up: the car's app token at the charge point.
    token_uid: String,
}

pub(crate) struct World<'a> {
    pub(crate) cfg: &'a SimConfig,
    /// When each session was PUT (wall clock), for the event-to-profile latency.
    pub(crate) plugged_at: std::collections::HashMap<String, std::time::Instant>,
    pub(crate) client: Client,
    pub(crate) cpo_auth: String,
    pub(crate) scenario: Scenario,
    pub(crate) occupied: Vec<Option<usize>>,
    pub(crate) register_wh: Vec<f64>,
    pub(crate) vehicles: Vec<VehicleRecord>,
    pub(crate) drivers: Vec<Option<Driver>>,
    pub(crate) errors: Vec<String>,
    /// evflex has a chain: drivers top up their wallets after registering.
    pub(crate) chain: bool,
    /// Drivers whose top-up failed (tried again next step).
    pub(crate) pending_top_ups: Vec<usize>,
    pub(crate) cp_rng: ChaCha8Rng,
    pub(crate) stations: Vec<String>,
}

pub(crate) fn ts(cfg: &SimConfig, step: usize) -> i64 {
    cfg.day_start + step as i64 * STEP_S
}

/// A meter's per-phase currents (`Current.Import` on the point's own L1, L2, L3) for a car
/// drawing `power` W on its first `car_phases` phases: how evflex learns a car's phases.
pub(crate) fn phase_currents_sampled(power: f64, car_phases: u8) -> Vec<Value> {
    let per_phase = power / (crate::scenario::PHASE_V * f64::from(car_phases.clamp(1, 3)));
    ["L1", "L2", "L3"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let a = if i < usize::from(car_phases) {
                per_phase
            } else {
                0.0
            };
            json!({"measurand": "Current.Import", "phase": name,
                "value": format!("{a:.1}"), "unit": "A"})
        })
        .collect()
}

/// When the vehicle unplugs, and the departure its driver announces: the start of its
/// departure step in the step simulator, its real second in the continuous-time one.
fn departure_ts(cfg: &SimConfig, a: &Arrival) -> i64 {
    match cfg.continuous {
        Some(_) => cfg.day_start + i64::from(a.departure_s),
        None => ts(cfg, a.departure_step),
    }
}

impl World<'_> {
    fn cc(&self) -> &str {
        &self.cfg.country_code
    }
    fn pid(&self) -> &str {
        &self.cfg.party_id
    }

    pub(crate) async fn cpo_call(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> SimResult<Value> {
        self.client
            .call(method, path, Some(&self.cpo_auth), Some(body))
            .await
    }

    /// Posts the CPO's `ChargingProfileResult` (`ACCEPTED`) to a profile's `response_url`. A
    /// result for a set-point evflex no longer knows is an answer nobody waits for: logged, not
    /// counted as an error.
    pub(crate) async fn post_profile_result(&mut self, url: &str) {
        let Some(at) = url.find("/ocpi/") else {
            tracing::warn!(url, "sim: a response_url outside evflex's OCPI routes");
            return;
        };
        if let Err(e) = self
            .cpo_call(Method::POST, &url[at..], &json!({"result": "ACCEPTED"}))
            .await
        {
            tracing::debug!(url, error = %e, "sim: profile result not taken");
        }
    }

    pub(crate) fn note(&mut self, r: SimResult<Value>) -> Option<Value> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                tracing::warn!(error = %e, "sim: call refused");
                self.errors.push(e.to_string());
                None
            }
        }
    }

    /// The token a car starts with: the app token evflex issued to its driver, or (a driver
    /// whose sign-up failed) an RFID card of the CPO's own that links to no one.
    fn cdr_token(&self, vi: usize) -> Value {
        match &self.drivers[vi] {
            Some(d) => json!({"uid": d.token_uid, "type": "APP_USER",
                "contract_id": format!("EVF-{}", d.token_uid)}),
            None => {
                let uid = format!("DRV{:05}", self.vehicles[vi].arrival.id);
                json!({"uid": uid, "type": "RFID",
                    "contract_id": format!("{}-{}-{uid}", self.cc(), self.pid())})
            }
        }
    }

    /// The CPO reports an EVSE's status (`CHARGING`, `AVAILABLE`) at `t` (RFC 3339).
    async fn set_evse_status(&mut self, c: &ChargePoint, status: &str, t: &str) {
        let evse = format!(
            "/ocpi/2.2.1/locations/{}/{}/{}/{}",
            self.cc(),
            self.pid(),
            c.location_id,
            c.uid
        );
        let body = json!({"status": status, "last_updated": t});
        let r = self.cpo_call(Method::PATCH, &evse, &body).await;
        self.note(r);
    }

    fn pick_cp(&mut self, a: &Arrival) -> Option<usize> {
        let free: Vec<usize> = (0..self.occupied.len())
            .filter(|i| self.occupied[*i].is_none())
            .collect();
        if free.is_empty() {
            return None;
        }
        if let Some(st) = &a.station
            && let Some(pos) = self.stations.iter().position(|s| s == st)
        {
            let want = pos % self.occupied.len();
            if self.occupied[want].is_none() {
                return Some(want);
            }
        }
        Some(free[self.cp_rng.random_range(0..free.len())])
    }

    pub(crate) async fn plug_in(&mut self, vi: usize, now: i64) -> SimResult<()> {
        let a = self.vehicles[vi].arrival.clone();
        let Some(cp) = self.pick_cp(&a) else {
            return Ok(());
        };
        self.occupied[cp] = Some(vi);
        let c: ChargePoint = self.scenario.charge_points[cp].clone();
        {
            let v = &mut self.vehicles[vi];
            v.cp = Some(cp);
            v.max_w = a.max_power_w.unwrap_or(i64::MAX).min(c.rated_w());
            if c.wiring.is_some() && a.id.is_multiple_of(3) {
                v.car_phases = 1;
                v.max_w = v.max_w.min(crate::scenario::PHASE_V as i64 * c.amps);
            }
            v.departure_ts = departure_ts(self.cfg, &a);
            v.plugged_ts = now;
        }
        let opted_in = self.vehicles[vi].opted_in;
        // The driver registers (evflex issues the app token the car then starts with), then
        // opts in through the consent endpoint.
        let reg = self
            .client
            .call(
                Method::POST,
                "/api/v1/users",
                None,
                Some(&json!({"name": format!("Driver {}", a.id), "opted_in": false})),
            )
            .await;
        if let Some(reg) = self.note(reg) {
            let bearer = format!("Bearer {}", reg["token"].as_str().unwrap_or_default());
            let token_uid = reg["token_uid"].as_str().unwrap_or_default().to_owned();
            if opted_in {
                let r = self
                    .client
                    .call(
                        Method::PUT,
                        "/api/v1/users/me/smart-charging",
                        Some(&bearer),
                        Some(&json!({"opted_in": true})),
                    )
                    .await;
                self.note(r);
            }
            self.drivers[vi] = Some(Driver { bearer, token_uid });
            if self.chain {
                self.top_up(vi).await;
            }
        }
        let sid = self.vehicles[vi].session_id.clone();
        self.plugged_at
            .insert(sid.clone(), std::time::Instant::now());
        let t = format_rfc3339(now);
        let session = json!({
            "country_code": self.cc(), "party_id": self.pid(), "id": sid,
            "start_date_time": t, "kwh": 0.0, "cdr_token": self.cdr_token(vi),
            "auth_method": "WHITELIST", "location_id": c.location_id, "evse_uid": c.uid,
            "connector_id": "1", "currency": "EUR", "status": "ACTIVE", "last_updated": t
        });
        let path = format!("/ocpi/2.2.1/sessions/{}/{}/{sid}", self.cc(), self.pid());
        let r = self.cpo_call(Method::PUT, &path, &session).await;
        self.note(r);
        self.set_evse_status(&c, "CHARGING", &t).await;
        if opted_in && let Some(d) = &self.drivers[vi] {
            let bearer = d.bearer.clone();
            let departure = format_rfc3339(self.vehicles[vi].departure_ts);
            let mut body = json!({"session_id": sid, "energy_kwh": a.request_wh as f64 / 1_000.0,
                "departure": departure});
            // The driver tells evflex the car's own maximum power (OCPI does not carry it); a
            // single-phase car's is what it draws on one phase here.
            let single_phase_w =
                (self.vehicles[vi].car_phases == 1).then_some(self.vehicles[vi].max_w);
            if let Some(w) = single_phase_w.or(a.max_power_w).filter(|w| *w > 0) {
                body["vehicle_max_power_kw"] = json!(w as f64 / 1_000.0);
            }
            // In continuous time the car's app knows its battery and its SoC, so the plan can
            // follow the battery's taper.
            if let Some(live) = &self.cfg.continuous {
                let battery = crate::live::Battery::of(&a, live.knee_of(vi));
                body["battery_capacity_kwh"] = json!(battery.capacity_wh.round() / 1_000.0);
                body["current_soc_percent"] = json!((battery.soc() * 1_000.0).round() / 10.0);
            }
            let r = self
                .client
                .call(Method::POST, "/api/v1/requests", Some(&bearer), Some(&body))
                .await;
            if let Some(mut decided) = self.note(r) {
                if decided["decision"] == "rejected"
                    && decided["max_guaranteed_kwh"].as_f64().unwrap_or(0.0) > 0.0
                {
                    let id = decided["request_id"].as_i64().unwrap_or_default();
                    let r = self
                        .client
                        .call(
                            Method::POST,
                            &format!("/api/v1/requests/{id}/accept-offer"),
                            Some(&bearer),
                            None,
                        )
                        .await;
                    if let Some(offer) = self.note(r) {
                        self.vehicles[vi].took_offer = true;
                        decided = offer;
                    }
                }
                if decided["decision"] == "accepted" {
                    self.vehicles[vi].accepted_wh = decided["energy_kwh"]
                        .as_f64()
                        .map(|k| (k * 1_000.0).round() as i64);
                }
            }
        }
        Ok(())
    }

    /// The driver tops up their wallet with the demo chain's test euro (enough for any bill
    /// of the day); a failure (the chain is away) is logged and tried again next step.
    pub(crate) async fn top_up(&mut self, vi: usize) {
        let Some(d) = &self.drivers[vi] else {
            return;
        };
        let r = self
            .client
            .call(
                Method::POST,
                "/api/v1/users/me/wallet/top-up",
                Some(&d.bearer),
                Some(&json!({ "amount_eur": TOP_UP_EUR })),
            )
            .await;
        if let Err(e) = r {
            tracing::warn!(error = %e, vehicle = vi, "sim: top-up failed, retrying next step");
            self.pending_top_ups.push(vi);
        }
    }

    /// The CPO posts meter readings (each `{"evse_uid", "session_id"?, "meterValue"}`);
    /// answers how many.
    pub(crate) async fn post_meter_values(&mut self, readings: Vec<Value>) -> usize {
        let n = readings.len();
        let r = self
            .cpo_call(
                Method::POST,
                "/api/v1/meter-values",
                &json!({ "meter_values": readings }),
            )
            .await;
        self.note(r);
        n
    }

    /// The CPO reports vehicle `vi`'s session energy so far (a session `PATCH` of `kwh` at `at`,
    /// RFC 3339).
    pub(crate) async fn report_session_kwh(&mut self, vi: usize, at: &str) {
        let v = &self.vehicles[vi];
        let kwh = v.delivered_wh.round() / 1_000.0;
        let path = format!(
            "/ocpi/2.2.1/sessions/{}/{}/{}",
            self.cc(),
            self.pid(),
            v.session_id
        );
        let r = self
            .cpo_call(
                Method::PATCH,
                &path,
                &json!({"kwh": kwh, "last_updated": at}),
            )
            .await;
        self.note(r);
    }

    pub(crate) async fn unplug(&mut self, vi: usize, now: i64) {
        let Some(cp) = self.vehicles[vi].cp else {
            return;
        };
        self.occupied[cp] = None;
        self.vehicles[vi].unplugged = true;
        let c = self.scenario.charge_points[cp].clone();
        let v = self.vehicles[vi].clone();
        let t = format_rfc3339(now);
        let start = format_rfc3339(v.plugged_ts);
        let kwh = (v.delivered_wh.round() / 1_000.0 * 1_000.0).round() / 1_000.0;
        let sid = &v.session_id;
        let path = format!("/ocpi/2.2.1/sessions/{}/{}/{sid}", self.cc(), self.pid());
        let r = self
            .cpo_call(
                Method::PATCH,
                &path,
                &json!({"status": "COMPLETED", "end_date_time": t, "kwh": kwh, "last_updated": t}),
            )
            .await;
        self.note(r);
        let hours = (now - v.plugged_ts) as f64 / 3_600.0;
        let cents = |eur_per_kwh: f64| (kwh * eur_per_kwh * 100.0).round() / 100.0;
        let mut cdr = json!({
            "country_code": self.cc(), "party_id": self.pid(), "id": format!("CDR-{sid}"),
            "start_date_time": start, "end_date_time": t, "session_id": sid,
            "cdr_token": self.cdr_token(vi), "auth_method": "WHITELIST",
            "cdr_location": {"id": c.location_id, "name": "Simulated site",
                "address": "Simulatieweg 1", "city": "Utrecht", "postal_code": "3511",
                "country": "NLD", "coordinates": {"latitude": "52.089", "longitude": "5.110"},
                "evse_uid": c.uid, "evse_id": format!("{}*{}*E{}", self.cc(), self.pid(), c.uid),
                "connector_id": "1", "connector_standard": "IEC_62196_T2",
                "connector_format": "SOCKET", "connector_power_type": "AC_3_PHASE"},
            "currency": "EUR",
            "charging_periods": [{"start_date_time": start, "tariff_id": CPO_TARIFF_ID,
                "dimensions": [{"type": "ENERGY", "volume": kwh}]}],
            "total_cost": {"excl_vat": cents(CPO_TARIFF_EXCL_VAT_EUR_PER_KWH),
                "incl_vat": cents(CPO_TARIFF_EUR_PER_KWH)},
            "total_energy": kwh, "total_time": (hours * 1_000.0).round() / 1_000.0,
            "last_updated": t
        });
        // Some CPOs leave the price to the eMSP: evflex then prices the CDR with the tariff
        // its charging period names.
        if vi % CDR_WITHOUT_TOTAL_EVERY == CDR_WITHOUT_TOTAL_EVERY - 1
            && let Some(o) = cdr.as_object_mut()
        {
            o.remove("total_cost");
        }
        let r = self.cpo_call(Method::POST, "/ocpi/2.2.1/cdrs", &cdr).await;
        self.note(r);
        self.set_evse_status(&c, "AVAILABLE", &t).await;
    }
}

/// Runs the simulated day against `target`; `progress(done, total)` after each step.
#[tracing::instrument(skip_all, fields(seed = cfg.seed))]
#[allow(clippy::needless_range_loop)] // steps index several per-step series at once
pub async fn run(
    cfg: &SimConfig,
    target: &impl Operator,
    mut progress: impl FnMut(usize, usize),
) -> SimResult<SimRecord> {
    let started = Instant::now();
    let (demand_label, arrivals) = demand::arrivals(&cfg.demand, cfg.seed)?;
    let scenario = Scenario::build(cfg);
    let (first, end) = (cfg.first_step(), cfg.end_step());

    // Operator side: the clock, token A, prices.
    let price_rows = evflex::ingest::prices::parse_day_ahead_csv(super::scenario::PRICES_CSV)
        .map_err(SimError::Other)?;
    let shift = cfg.day_start - super::DEFAULT_DAY_START;
    let price_rows: Vec<(i64, i64)> = price_rows.iter().map(|(t, p)| (t + shift, *p)).collect();
    let chain = target.setup(&price_rows, ts(cfg, first)).await?;

    // The CPO registers with evflex.
    let server: CpoServer =
        cpo::spawn(&format!("sim-cpo-token-b-{}", cfg.seed), cfg.cpo_quirks).await?;
    let client = Client::new(target.base_url())?;
    let creds = json!({
        "token": server.token_b,
        "url": format!("{}/ocpi/versions", server.address),
        "roles": [{"role": "CPO", "party_id": cfg.party_id, "country_code": cfg.country_code,
                   "business_details": {"name": "evflex simulated CPO"}}]
    });
    let resp = client
        .call(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(target.registration_token())),
            Some(&creds),
        )
        .await?;
    let cpo_token = resp["data"]["token"]
        .as_str()
        .ok_or_else(|| SimError::Other(format!("credentials answer without a token: {resp}")))?
        .to_owned();
    let cpo_auth = token_header(&cpo_token);
    let now = ts(cfg, first);
    let sites: std::collections::BTreeSet<&str> = scenario
        .charge_points
        .iter()
        .map(|c| c.location_id.as_str())
        .collect();
    for site in 0..sites.len() {
        let loc = scenario.location(cfg, site, now);
        let path = format!(
            "/ocpi/2.2.1/locations/{}/{}/{}",
            cfg.country_code,
            cfg.party_id,
            loc["id"].as_str().unwrap_or_default()
        );
        client
            .call(Method::PUT, &path, Some(&cpo_auth), Some(&loc))
            .await?;
    }
    client
        .call(
            Method::PUT,
            &format!(
                "/ocpi/2.2.1/tariffs/{}/{}/{CPO_TARIFF_ID}",
                cfg.country_code, cfg.party_id
            ),
            Some(&cpo_auth),
            Some(&cpo_tariff(&cfg.country_code, &cfg.party_id, now)),
        )
        .await?;
    client
        .call(
            Method::PUT,
            "/api/v1/topology",
            Some(&cpo_auth),
            Some(&scenario.topology(cfg)),
        )
        .await?;
    for g in &scenario.groups {
        if let Some((from, to, w)) = g.cut {
            let body = json!({"start": format_rfc3339(ts(cfg, from)),
                "end": format_rfc3339(ts(cfg, to)), "capacity_w": w,
                "reason": "simulated DSO congestion"});
            client
                .call(
                    Method::POST,
                    &format!("/api/v1/groups/{}/capacity-changes", g.id),
                    Some(&cpo_auth),
                    Some(&body),
                )
                .await?;
        }
        if g.pv_peak_w > 0 {
            let body = json!({"kind": "pv", "start": format_rfc3339(cfg.day_start),
                "step_s": STEP_S, "values_w": g.pv_w});
            client
                .call(
                    Method::PUT,
                    &format!("/api/v1/groups/{}/forecast", g.id),
                    Some(&cpo_auth),
                    Some(&body),
                )
                .await?;
        }
    }

    let mut opt_rng =
        ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0x0717);
    let vehicles: Vec<VehicleRecord> = arrivals
        .iter()
        .map(|a| VehicleRecord {
            arrival: a.clone(),
            cp: None,
            opted_in: opt_rng.random_bool(cfg.opt_in_share.clamp(0.0, 1.0)),
            session_id: format!("SIM-{:05}", a.id),
            accepted_wh: None,
            took_offer: false,
            departure_ts: departure_ts(cfg, a),
            plugged_ts: 0,
            max_w: 0,
            power_w: vec![0.0; STEPS_PER_DAY],
            delivered_wh: 0.0,
            profiles: 0,
            unplugged: false,
            car_phases: 3,
            first_profile_after: None,
        })
        .collect();
    let mut stations: Vec<String> = arrivals.iter().filter_map(|a| a.station.clone()).collect();
    stations.sort();
    stations.dedup();
    let n_cp = scenario.charge_points.len();
    let mut world = World {
        cfg,
        plugged_at: Default::default(),
        client,
        cpo_auth,
        occupied: vec![None; n_cp],
        register_wh: vec![0.0; n_cp],
        drivers: (0..vehicles.len()).map(|_| None).collect(),
        vehicles,
        errors: Vec::new(),
        chain,
        pending_top_ups: Vec::new(),
        cp_rng: ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(0xC0FFEE)),
        stations,
        scenario,
    };
    let mut m = Measured::new(&world.scenario);
    let total = end.saturating_sub(first);

    // Opening register readings (no power yet): a real meter has a reading before the first
    // session of the day, and billing cross-checks a CDR against the register difference from
    // the last reading at or before the session start.
    let opening: Vec<Value> = world
        .scenario
        .charge_points
        .iter()
        .zip(&world.register_wh)
        .map(|(cp, wh)| {
            json!({"evse_uid": cp.uid, "meterValue": [{"timestamp": format_rfc3339(ts(cfg, first)),
                "sampledValue": [{"measurand": "Energy.Active.Import.Register",
                    "value": format!("{}", wh.round() as i64), "unit": "Wh"}]}]})
        })
        .collect();
    m.meter_values += world.post_meter_values(opening).await;

    if let Some(live) = &cfg.continuous {
        crate::live::play(&mut world, &server, target, live, &mut m, &mut progress).await?;
    } else {
        for k in first..end {
            let now = ts(cfg, k);
            target.set_clock(now).await?;
            // Top-ups that failed (no chain at the time) are tried again.
            for vi in std::mem::take(&mut world.pending_top_ups) {
                world.top_up(vi).await;
            }
            // 1. Departures.
            for vi in 0..world.vehicles.len() {
                let v = &world.vehicles[vi];
                if v.cp.is_some() && !v.unplugged && v.arrival.departure_step == k {
                    world.unplug(vi, now).await;
                    m.cdrs += 1;
                }
            }
            // 2. Arrivals.
            for vi in 0..world.vehicles.len() {
                if world.vehicles[vi].arrival.arrival_step == k {
                    world.plug_in(vi, now).await?;
                }
            }
            // 3. The tick.
            let report = target.tick(timestep_of(now, TIME_STEP_S)).await?;
            m.stats.add(&report);
            // 4. Charging.
            let step_h = STEP_S as f64 / 3_600.0;
            let mut readings = Vec::new();
            let next = now + STEP_S;
            let t_next = format_rfc3339(next);
            for cp in 0..n_cp {
                let mut power = 0.0;
                let mut extra = Vec::new();
                let mut session = None;
                if let Some(vi) = world.occupied[cp] {
                    let (limit, received) = {
                        let inbox = server.inbox.lock().unwrap_or_else(|p| p.into_inner());
                        let sid = &world.vehicles[vi].session_id;
                        let car_phases = world.vehicles[vi].car_phases;
                        (
                            inbox
                                .profiles
                                .get(sid)
                                .map(|p| p.limit_w_at(now, car_phases)),
                            inbox.received.get(sid).copied().unwrap_or(0),
                        )
                    };
                    let v = &mut world.vehicles[vi];
                    v.profiles = received;
                    let left_w = (v.arrival.wanted_wh as f64 - v.delivered_wh).max(0.0) / step_h;
                    power = limit
                        .unwrap_or(f64::INFINITY)
                        .min(v.max_w as f64)
                        .min(left_w)
                        .max(0.0);
                    v.power_w[k] = power;
                    v.delivered_wh += power * step_h;
                    session = Some(v.session_id.clone());
                    if let (Some(b), Some(e0)) =
                        (v.arrival.battery_wh, v.arrival.energy_on_arrival_wh)
                        && b > 0
                    {
                        let soc =
                            ((e0 as f64 + v.delivered_wh) / b as f64 * 100.0).clamp(0.0, 100.0);
                        extra.push(json!({"measurand": "SoC", "value": format!("{soc:.1}"), "unit": "Percent"}));
                    }
                }
                world.register_wh[cp] += power * step_h;
                let g = (world.scenario.charge_points[cp].group_id - 1) as usize;
                m.group_load_w[g][k] += power;
                let mut sampled = vec![
                    json!({"measurand": "Energy.Active.Import.Register",
                    "value": format!("{}", world.register_wh[cp].round() as i64), "unit": "Wh"}),
                    json!({"measurand": "Power.Active.Import",
                    "value": format!("{}", power.round() as i64), "unit": "W"}),
                ];
                sampled.extend(extra);
                let c = &world.scenario.charge_points[cp];
                if let Some((_, cabinet)) = c.wiring {
                    let car_phases =
                        world.occupied[cp].map_or(3, |vi| world.vehicles[vi].car_phases);
                    let node = c.phase_currents(power, car_phases);
                    let (connection, cab) = &mut m.phase_load_a[k];
                    for (ph, amps) in node.into_iter().enumerate() {
                        connection[ph] += amps;
                        if cabinet {
                            cab[ph] += amps;
                        }
                    }
                    if world.occupied[cp].is_some() {
                        sampled.extend(phase_currents_sampled(power, car_phases));
                    }
                }
                readings.push(json!({"evse_uid": world.scenario.charge_points[cp].uid,
                "session_id": session,
                "meterValue": [{"timestamp": t_next, "sampledValue": sampled}]}));
            }
            // 5. Meter values and session energy.
            m.meter_values += world.post_meter_values(readings).await;
            for cp in 0..n_cp {
                if let Some(vi) = world.occupied[cp] {
                    world.report_session_kwh(vi, &t_next).await;
                }
            }
            progress(k + 1 - first, total);
            if let Some(p) = cfg.pace {
                tokio::time::sleep(p).await;
            }
        }
        // Vehicles leaving exactly at the end of the window still unplug.
        let now = ts(cfg, end);
        target.set_clock(now).await?;
        for vi in 0..world.vehicles.len() {
            let v = &world.vehicles[vi];
            if v.cp.is_some() && !v.unplugged && v.arrival.departure_step == end {
                world.unplug(vi, now).await;
                m.cdrs += 1;
            }
        }
    }
    let cpo_answers = {
        let inbox = server.inbox.lock().unwrap_or_else(|p| p.into_inner());
        for v in &mut world.vehicles {
            v.profiles = inbox.received.get(&v.session_id).copied().unwrap_or(0);
            // In continuous time the latency counts only the profiles an arrival got at once
            // (`live`); a car that needed none then gets its first profile hours later.
            if cfg.continuous.is_none()
                && let (Some(put), Some(first)) = (
                    world.plugged_at.get(&v.session_id),
                    inbox.first_put_at.get(&v.session_id),
                )
            {
                v.first_profile_after = Some(first.saturating_duration_since(*put));
            }
        }
        inbox.answers.clone()
    };
    Ok(SimRecord {
        config: cfg.clone(),
        scenario: world.scenario,
        demand_label,
        vehicles: world.vehicles,
        group_load_w: m.group_load_w,
        ticks: m.stats,
        meter_values: m.meter_values,
        cdrs: m.cdrs,
        api_errors: world.errors,
        cpo_token,
        wall: started.elapsed(),
        cpo_answers,
        phase_load_a: m.phase_load_a,
        trace: m.trace,
    })
}
