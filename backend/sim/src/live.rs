//! The day in continuous time (issue 15): events at their real second, batteries that taper,
//! profiles that take effect after a latency, charge points that ignore them, and the load
//! measured every second.
//!
//! [`play`] replaces the step loop of [`crate::run`] when [`SimConfig::continuous`] is set. The
//! simulated clock moves one second at a time; at a second with something to do, it:
//! 1. unplugs the vehicles whose departure is this second (session `PATCH`, CDR, EVSE
//!    AVAILABLE) and plugs in those whose arrival is (driver sign-up, opt-in, session `PUT`,
//!    EVSE CHARGING, request, offer), at their real seconds (the ACN CSV's, or the generator's
//!    own seconds within its quarter hours);
//! 2. runs evflex's tick at every quarter-hour boundary;
//! 3. posts meter values for every charge point every [`Continuous::meter_interval_s`] (register,
//!    average power over the interval, SoC), and the sessions' kWh every quarter hour;
//! 4. lets evflex plan what these events asked for at this simulated second
//!    ([`Operator::settle`]: the re-plans its event hooks recorded), and reads the profiles
//!    the CPO server received since: each takes effect [`Continuous::profile_latency_s`] later
//!    (the CPO backend, the charge point and the car between them), and at that second the
//!    CPO posts its `ChargingProfileResult` (`ACCEPTED`) to the profile's `response_url`, as
//!    an OCPI CPO does once the charge point applied it, so evflex knows the profile is in
//!    force and holds the meter values against it (`engine::closed_loop`).
//!
//! A group's stationary battery follows the plan evflex gives it through its own controller
//! ([`crate::site_battery`]), and its power counts in the group's load.
//!
//! Then every charge point draws, for the second, `min(limit in force, the battery's taper,
//! what the car still takes)`; one that ignores profiles ([`Continuous::ignore_profiles_share`])
//! draws as if it had none. The [`Battery`] is constant power to a knee SoC and then falls
//! linearly to 0 at full; a vehicle whose data gives no battery gets 60 kWh (more if it takes
//! more than 90 % of that) and arrives with what it takes below 90 % SoC, so every such car
//! ends in the taper zone.
//!
//! [`Trace`] keeps each group's EV load per second; [`crate::policies`] turns it into seconds
//! over capacity and the largest overload, and [`replay`] plays the uncontrolled and the
//! equal-share policies through the same second-by-second battery model for comparison.

use super::run::{Measured, World, ts};
use super::{Operator, STEP_S, SimConfig, SimResult};
use crate::cpo::{CpoServer, Profile};
use crate::demand::Arrival;
use crate::site_battery::{BatteryRun, Controller};
use evflex::domain::{TIME_STEP_S, format_rfc3339, timestep_of};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// Settings of the continuous-time simulator.
#[derive(Debug, Clone, PartialEq)]
pub struct Continuous {
    /// Meter values every this many seconds.
    pub meter_interval_s: u32,
    /// A profile takes effect this many seconds after evflex sent it.
    pub profile_latency_s: u32,
    /// Share of charge points that ignore every profile (every n-th charge point, n =
    /// round(1 / share)).
    pub ignore_profiles_share: f64,
    /// SoC above which a battery's power falls linearly to 0 at full (0..1).
    pub taper_knee: f64,
    /// Each vehicle's own knee lies this far either side of `taper_knee` (0..1; [`Self::knee_of`]).
    /// evflex is not told it: it plans with its configured knee until meter values show the
    /// car's own.
    pub taper_knee_spread: f64,
}

impl Default for Continuous {
    /// Meter values every minute, profiles in force 5 s after they leave evflex, every charge
    /// point following them, batteries tapering above 80 % SoC.
    fn default() -> Self {
        Self {
            meter_interval_s: 60,
            profile_latency_s: 5,
            ignore_profiles_share: 0.0,
            taper_knee: 0.8,
            taper_knee_spread: 0.0,
        }
    }
}

impl Continuous {
    /// Whether charge point `cp` ignores profiles.
    pub fn ignores(&self, cp: usize) -> bool {
        if self.ignore_profiles_share <= 0.0 {
            return false;
        }
        let every = (1.0 / self.ignore_profiles_share.min(1.0)).round().max(1.0) as usize;
        cp % every == every - 1
    }

    /// Vehicle `vi`'s knee: `taper_knee` moved by up to `taper_knee_spread` either way, the
    /// same for the same vehicle in every run (a hash of its index), within 50–99 %.
    pub fn knee_of(&self, vi: usize) -> f64 {
        if self.taper_knee_spread <= 0.0 {
            return self.taper_knee;
        }
        // splitmix64 of the index: uniform in [0, 1).
        let mut z = (vi as u64).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        let u = (z ^ (z >> 31)) as f64 / u64::MAX as f64;
        (self.taper_knee + self.taper_knee_spread * (2.0 * u - 1.0)).clamp(0.5, 0.99)
    }

    /// The reaction window of a car (s): from its plug-in until a profile sent at once is in
    /// force (the profile latency, and the second the event lands in).
    pub fn reaction_window_s(&self) -> u32 {
        self.profile_latency_s + 1
    }
}

/// A vehicle's battery: constant power to the knee SoC, then falling linearly to 0 at full.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Battery {
    /// Capacity (Wh).
    pub capacity_wh: f64,
    /// Energy in it now (Wh).
    pub energy_wh: f64,
    /// Knee SoC (0..1).
    pub knee: f64,
}

/// A battery the data does not give (Wh).
const DEFAULT_BATTERY_WH: f64 = 60_000.0;

impl Battery {
    /// The battery of `a` on arrival (module docs).
    pub fn of(a: &Arrival, knee: f64) -> Self {
        let wanted = a.wanted_wh as f64;
        match (a.battery_wh, a.energy_on_arrival_wh) {
            (Some(b), Some(e)) if b > 0 => Self {
                capacity_wh: b as f64,
                energy_wh: (e as f64).clamp(0.0, b as f64),
                knee,
            },
            _ => {
                let capacity_wh = DEFAULT_BATTERY_WH.max(wanted / 0.9);
                Self {
                    capacity_wh,
                    energy_wh: (0.9 * capacity_wh - wanted).max(0.0),
                    knee,
                }
            }
        }
    }

    /// State of charge (0..1).
    pub fn soc(&self) -> f64 {
        (self.energy_wh / self.capacity_wh).clamp(0.0, 1.0)
    }

    /// The most it takes now (W) when its charger allows `max_w`: the optimiser's own curve
    /// ([`evflex_schedule::taper_max_power_w`]), so plan and battery agree.
    pub fn max_power_w(&self, max_w: f64) -> f64 {
        evflex_schedule::taper_max_power_w(max_w, self.capacity_wh, self.energy_wh, self.knee)
    }

    /// The knee in ‰, as the optimiser takes it.
    pub fn taper_knee_permille(&self) -> u16 {
        (self.knee * 1_000.0).round().clamp(0.0, 999.0) as u16
    }
}

/// The 1-second load trace of a continuous-time day.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Unix second of the first sample.
    pub start_ts: i64,
    /// Load per group and second from `start_ts` (W): its EVs and its stationary battery.
    pub group_load_w: Vec<Vec<f32>>,
    /// The settings it ran with.
    pub settings: Continuous,
    /// Per session id, when its first profile took effect (Unix seconds).
    pub first_profile_in_force: BTreeMap<String, i64>,
    /// What each group's stationary battery did ([`crate::site_battery`]); its power is in
    /// `group_load_w`.
    pub batteries: Vec<BatteryRun>,
}

/// One plugged-in vehicle's state.
struct Car {
    battery: Battery,
    /// Profiles received and when each takes effect (`None`: cleared).
    pending: Vec<(i64, Option<Profile>)>,
    /// The `response_url`s of the accepted profiles among them, with the second each takes
    /// effect: the CPO posts the `ChargingProfileResult` then.
    results: Vec<(i64, String)>,
    in_force: Option<Profile>,
    /// Profile PUTs (and clears) seen at the CPO server.
    seen: usize,
    /// Energy since the last meter reading (Wh).
    interval_wh: f64,
}

/// Plays the window second by second (module docs).
pub(crate) async fn play(
    world: &mut World<'_>,
    server: &CpoServer,
    target: &impl Operator,
    live: &Continuous,
    m: &mut Measured,
    progress: &mut impl FnMut(usize, usize),
) -> SimResult<()> {
    let cfg: &SimConfig = world.cfg;
    let (start, end) = (ts(cfg, cfg.first_step()), ts(cfg, cfg.end_step()));
    let mut arrivals: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (vi, v) in world.vehicles.iter().enumerate() {
        let at = cfg.day_start + i64::from(v.arrival.arrival_s);
        if (start..end).contains(&at) {
            arrivals.entry(at).or_default().push(vi);
        }
    }
    let mut cars: BTreeMap<usize, Car> = BTreeMap::new();
    let mut trace = Trace {
        start_ts: start,
        group_load_w: vec![vec![0.0; (end - start) as usize]; world.scenario.groups.len()],
        settings: live.clone(),
        first_profile_in_force: BTreeMap::new(),
        batteries: Vec::new(),
    };
    let mut stores = Controller::of(&world.scenario);
    let total = ((end - start) / STEP_S as i64) as usize;
    for t in start..end {
        let quarter = (t - cfg.day_start) % i64::from(TIME_STEP_S) == 0;
        let meter = t > start && (t - start) % i64::from(live.meter_interval_s.max(1)) == 0;
        let leaving: Vec<usize> = cars
            .keys()
            .copied()
            .filter(|vi| world.vehicles[*vi].departure_ts == t)
            .collect();
        let coming = arrivals.remove(&t).unwrap_or_default();
        let results: Vec<String> = cars
            .values_mut()
            .flat_map(|car| {
                let (due, later) = std::mem::take(&mut car.results)
                    .into_iter()
                    .partition::<Vec<_>, _>(|(at, _)| *at <= t);
                car.results = later;
                due.into_iter().map(|(_, url)| url)
            })
            .collect();
        if leaving.is_empty() && coming.is_empty() && !quarter && !meter && results.is_empty() {
            step_second(world, &mut cars, &mut stores, &mut trace, live, t, m);
            continue;
        }
        target.set_clock(t).await?;
        // The CPO's asynchronous results for the profiles that take effect this second.
        for url in results {
            world.post_profile_result(&url).await;
        }
        for vi in leaving {
            cars.remove(&vi);
            world.unplug(vi, t).await;
            m.cdrs += 1;
        }
        for vi in coming {
            world.plug_in(vi, t).await?;
            if world.vehicles[vi].cp.is_some() {
                let battery = Battery::of(&world.vehicles[vi].arrival, live.knee_of(vi));
                cars.insert(
                    vi,
                    Car {
                        battery,
                        pending: Vec::new(),
                        results: Vec::new(),
                        in_force: None,
                        seen: 0,
                        interval_wh: 0.0,
                    },
                );
            }
        }
        if meter {
            post_meter_values(world, &mut cars, live, t, m, quarter).await;
            for store in &stores {
                store.post_state(world, t).await;
            }
        }
        if quarter {
            for vi in std::mem::take(&mut world.pending_top_ups) {
                world.top_up(vi).await;
            }
            let report = target.tick(timestep_of(t, TIME_STEP_S)).await?;
            m.stats.add(&report);
        }
        target.settle().await?;
        collect_profiles(
            world,
            server,
            &mut cars,
            t + i64::from(live.profile_latency_s),
            live.profile_latency_s,
        );
        for store in &mut stores {
            store
                .poll(world, t + i64::from(live.profile_latency_s))
                .await;
        }
        step_second(world, &mut cars, &mut stores, &mut trace, live, t, m);
        if (t + 1 - start) % STEP_S as i64 == 0 {
            progress(((t + 1 - start) / STEP_S as i64) as usize, total);
            if let Some(p) = cfg.pace {
                tokio::time::sleep(p).await;
            }
        }
    }
    // Vehicles leaving exactly at the end of the window still unplug.
    target.set_clock(end).await?;
    let leaving: Vec<usize> = cars
        .keys()
        .copied()
        .filter(|vi| world.vehicles[*vi].departure_ts == end)
        .collect();
    for vi in leaving {
        world.unplug(vi, end).await;
        m.cdrs += 1;
    }
    trace.batteries = stores.into_iter().map(Controller::finish).collect();
    m.trace = Some(trace);
    Ok(())
}

/// Reads the profiles the CPO server received since the last look; each takes effect at
/// `effective`.
fn collect_profiles(
    world: &mut World<'_>,
    server: &CpoServer,
    cars: &mut BTreeMap<usize, Car>,
    effective: i64,
    latency_s: u32,
) {
    let mut arrivals_profiled = Vec::new();
    let inbox = server.inbox.lock().unwrap_or_else(|p| p.into_inner());
    for (vi, car) in cars.iter_mut() {
        let sid = &world.vehicles[*vi].session_id;
        let received = inbox.received.get(sid).copied().unwrap_or(0);
        if received != car.seen {
            // The event-to-profile latency: a profile sent for the arrival itself, at its
            // simulated second, from the session PUT to the profile PUT (wall clock).
            let v = &world.vehicles[*vi];
            if car.seen == 0
                && effective - i64::from(latency_s) == v.plugged_ts
                && let (Some(put), Some(first)) =
                    (world.plugged_at.get(sid), inbox.first_put_at.get(sid))
            {
                arrivals_profiled.push((*vi, first.saturating_duration_since(*put)));
            }
            car.seen = received;
            let profile = inbox.profiles.get(sid).cloned();
            if profile.is_some()
                && let Some(url) = inbox.result_urls.get(sid)
            {
                car.results.push((effective, url.clone()));
            }
            car.pending.push((effective, profile));
        }
    }
    drop(inbox);
    for (vi, after) in arrivals_profiled {
        world.vehicles[vi].first_profile_after = Some(after);
    }
}

/// Every charge point and battery draws for the second `[t, t + 1)`.
fn step_second(
    world: &mut World<'_>,
    cars: &mut BTreeMap<usize, Car>,
    stores: &mut [Controller],
    trace: &mut Trace,
    live: &Continuous,
    t: i64,
    m: &mut Measured,
) {
    let k = ((t - world.cfg.day_start) / STEP_S as i64) as usize;
    let offset = (t - trace.start_ts) as usize;
    for store in stores.iter_mut() {
        let power = store.second(t, k);
        m.group_load_w[store.group()][k] += power / STEP_S as f64;
        trace.group_load_w[store.group()][offset] += power as f32;
    }
    for (vi, car) in cars.iter_mut() {
        let v = &mut world.vehicles[*vi];
        let Some(cp) = v.cp else { continue };
        while let Some(pos) = car.pending.iter().position(|(at, _)| *at <= t) {
            let (_, profile) = car.pending.remove(pos);
            if profile.is_some() {
                trace
                    .first_profile_in_force
                    .entry(v.session_id.clone())
                    .or_insert(t);
            }
            car.in_force = profile;
        }
        let limit = match &car.in_force {
            Some(p) if !live.ignores(cp) => p.limit_w_at(t, v.car_phases),
            _ => f64::INFINITY,
        };
        let left_w = (v.arrival.wanted_wh as f64 - v.delivered_wh).max(0.0) * 3_600.0;
        let power = limit
            .min(car.battery.max_power_w(v.max_w as f64))
            .min(left_w)
            .max(0.0);
        let wh = power / 3_600.0;
        v.delivered_wh += wh;
        car.battery.energy_wh += wh;
        car.interval_wh += wh;
        v.power_w[k] += power / STEP_S as f64;
        world.register_wh[cp] += wh;
        let c = &world.scenario.charge_points[cp];
        let g = (c.group_id - 1) as usize;
        m.group_load_w[g][k] += power / STEP_S as f64;
        trace.group_load_w[g][offset] += power as f32;
        if c.wiring.is_some() && !m.phase_load_a.is_empty() {
            let node = c.phase_currents(power, v.car_phases);
            let cabinet = c.wiring.is_some_and(|(_, cab)| cab);
            let (connection, cab) = &mut m.phase_load_a[k];
            for (ph, amps) in node.into_iter().enumerate() {
                connection[ph] += amps / STEP_S as f64;
                if cabinet {
                    cab[ph] += amps / STEP_S as f64;
                }
            }
        }
    }
}

/// Meter values at `t` for every charge point: register, the interval's average power, SoC;
/// on a quarter hour the sessions' kWh too.
async fn post_meter_values(
    world: &mut World<'_>,
    cars: &mut BTreeMap<usize, Car>,
    live: &Continuous,
    t: i64,
    m: &mut Measured,
    quarter: bool,
) {
    let stamp = format_rfc3339(t);
    let interval_h = f64::from(live.meter_interval_s.max(1)) / 3_600.0;
    let mut by_cp: BTreeMap<usize, (&str, f64, f64, u8)> = BTreeMap::new();
    for (vi, car) in cars.iter_mut() {
        let v = &world.vehicles[*vi];
        if let Some(cp) = v.cp {
            by_cp.insert(
                cp,
                (
                    v.session_id.as_str(),
                    car.interval_wh / interval_h,
                    car.battery.soc(),
                    v.car_phases,
                ),
            );
            car.interval_wh = 0.0;
        }
    }
    let readings: Vec<Value> = world
        .scenario
        .charge_points
        .iter()
        .enumerate()
        .map(|(cp, c)| {
            let mut sampled = vec![json!({"measurand": "Energy.Active.Import.Register",
                "value": format!("{}", world.register_wh[cp].round() as i64), "unit": "Wh"})];
            let session = by_cp.get(&cp).map(|(sid, power, soc, car_phases)| {
                sampled.push(json!({"measurand": "Power.Active.Import",
                    "value": format!("{}", power.round() as i64), "unit": "W"}));
                sampled.push(json!({"measurand": "SoC",
                    "value": format!("{:.1}", soc * 100.0), "unit": "Percent"}));
                // A three-phase point's meter shows the phases the car draws on.
                if c.wiring.is_some() {
                    sampled.extend(crate::run::phase_currents_sampled(*power, *car_phases));
                }
                *sid
            });
            json!({"evse_uid": c.uid, "session_id": session,
                "meterValue": [{"timestamp": stamp, "sampledValue": sampled}]})
        })
        .collect();
    m.meter_values += world.post_meter_values(readings).await;
    if quarter {
        let plugged: Vec<usize> = cars.keys().copied().collect();
        for vi in plugged {
            world.report_session_kwh(vi, &stamp).await;
        }
    }
}

/// A policy played second by second over the record's cars, for comparison with what evflex
/// did: each car's power per second from `rule`, through the same batteries.
pub(crate) struct Replay {
    /// EV load per group and second from the trace's start (W).
    pub group_load_w: Vec<Vec<f32>>,
    /// Per vehicle (index), its average power per step of the day (W).
    pub rows: BTreeMap<usize, Vec<f64>>,
    /// Per vehicle, the energy delivered by its departure (Wh).
    pub delivered_wh: BTreeMap<usize, f64>,
}

/// What a replayed car offers a rule: how much it would take this second (W), its phases and
/// its arrival order.
pub(crate) struct Offer {
    /// Vehicle index.
    pub vi: usize,
    /// The most it takes this second (W): battery taper, charger, what it still lacks.
    pub max_w: f64,
    /// Phases it draws on.
    pub car_phases: u8,
}

/// Plays `rule` (per group and second: the cars present, in arrival order, and the power
/// available to the group; answers each car's power) over the record's window.
pub(crate) fn replay(
    rec: &crate::run::SimRecord,
    trace: &Trace,
    mut rule: impl FnMut(&[Offer], f64) -> Vec<f64>,
) -> Replay {
    let cfg = &rec.config;
    let n = trace.group_load_w.first().map_or(0, Vec::len);
    let mut out = Replay {
        group_load_w: vec![vec![0.0; n]; rec.scenario.groups.len()],
        rows: BTreeMap::new(),
        delivered_wh: BTreeMap::new(),
    };
    let mut state: BTreeMap<usize, Battery> = BTreeMap::new();
    for (g, group) in rec.scenario.groups.iter().enumerate() {
        let mut members: Vec<usize> = rec
            .vehicles
            .iter()
            .enumerate()
            .filter(|(_, v)| {
                v.cp.is_some_and(|cp| rec.scenario.charge_points[cp].group_id == group.id)
            })
            .map(|(i, _)| i)
            .collect();
        members.sort_by_key(|i| (rec.vehicles[*i].plugged_ts, *i));
        for i in &members {
            state.insert(
                *i,
                Battery::of(&rec.vehicles[*i].arrival, trace.settings.knee_of(*i)),
            );
            out.rows.insert(*i, vec![0.0; super::STEPS_PER_DAY]);
            out.delivered_wh.insert(*i, 0.0);
        }
        for offset in 0..n {
            let t = trace.start_ts + offset as i64;
            let k = ((t - cfg.day_start) / STEP_S as i64) as usize;
            let offers: Vec<Offer> = members
                .iter()
                .filter(|i| {
                    let v = &rec.vehicles[**i];
                    v.plugged_ts <= t && t < v.departure_ts
                })
                .map(|i| {
                    let v = &rec.vehicles[*i];
                    let left_w =
                        (v.arrival.wanted_wh as f64 - out.delivered_wh[i]).max(0.0) * 3_600.0;
                    Offer {
                        vi: *i,
                        max_w: state[i].max_power_w(v.max_w as f64).min(left_w),
                        car_phases: v.car_phases,
                    }
                })
                .collect();
            if offers.is_empty() {
                continue;
            }
            let available = (group.capacity_at(k) + group.pv_w[k]).max(0) as f64;
            for (o, p) in offers.iter().zip(rule(&offers, available)) {
                let p = p.clamp(0.0, o.max_w);
                let wh = p / 3_600.0;
                if let Some(b) = state.get_mut(&o.vi) {
                    b.energy_wh += wh;
                }
                *out.delivered_wh.entry(o.vi).or_default() += wh;
                if let Some(row) = out.rows.get_mut(&o.vi) {
                    row[k] += p / STEP_S as f64;
                }
                out.group_load_w[g][offset] += p as f32;
            }
        }
    }
    out
}
