//! A group's state at the start of a timestep, as the optimiser sees it ([`GroupInputs`]) plus
//! what the engine needs to map the schedule back (which session and EVSE each vehicle is).
//!
//! How sessions become vehicles (all plugged in now, `arrival = 0`):
//! - Only `ACTIVE`/`PENDING` sessions on member EVSEs count; EVSEs that are `REMOVED`,
//!   `OUTOFORDER` or `INOPERATIVE` carry no vehicle.
//! - A session's user is the one linked to it (by a charging request, or by the user's
//!   registered token uid). No user, or a user who has not opted in: **uncontrolled** — it
//!   charges as fast as possible until it has `uncontrolled_energy_wh` (config) in total, or,
//!   when it still draws past that, for another hour at its measured power (an assumption for
//!   planning only: it is never stopped there), but only in the headroom the
//!   guaranteed vehicles do not need: an accepted guarantee outranks uncontrolled charging
//!   (`backend/schedule/DESIGN.md`). Where the schedule curtails it, it gets a charging profile
//!   (queued by [`super::tick`]); otherwise none.
//! - Opted in with an accepted request: the request's energy, minus what was charged since the
//!   request, is **guaranteed** by its departure. What was charged is the freshest of the
//!   session's `kwh` and the meter register ([`delivered_wh`]).
//! - Opted in without a request (or past its departure): **best effort** towards
//!   `default_energy_wh` in total, by `start + default_dwell_s` (at least one hour from now).
//! - Power: the EVSE's rating (or `default_evse_power_w`), or the vehicle's own maximum power
//!   when its accepted request gives a lower one; minimum power (MILP) 6 A × 230 V ×
//!   phases for AC, 0 for DC.
//!
//! - A session whose last profile is not in force (`engine::setpoints::standing`: the CPO
//!   rejected it, could not be reached, did not confirm it in time, or asked to wait) is not a
//!   vehicle of the plan: its charge point draws what it draws, so it is planned as fixed load
//!   at its measured power (its rating when no meter value came), added to the other load of
//!   every step; the other vehicles share the rest. It gets no new profile until it is back in
//!   control ([`GroupSnapshot::fixed`] says which and why).
//!
//! - A group with an electrical model (`store::groups::Electrical`) gets a tree
//!   ([`evflex_schedule::Topology`], [`tree`]): the connection is the root node
//!   ([`CONNECTION_NODE`]) with the connection's per-phase limits, and the group's other load and
//!   PV balanced over its three phases; the limit nodes hang beneath it. Each vehicle's
//!   charge point is wired as its `CpWiring` says, else to the connection on the EVSE's phases in
//!   watts. The phases a car draws on come from its per-phase meter values (`car_phases`), else
//!   every wired phase (the worst case). A charge point planned at its measured draw loads its
//!   own wired phases at its node and every node above it.
//!
//! Per step: capacity is the group's, overridden by the last scheduled capacity change that
//! covers the step; other load and PV come from stored forecasts (else the group's flat other
//! load, and no PV); the price is the last price-table entry at or before the step (else the
//! flat tariff).

use super::battery;
use super::setpoints::{self, Standing};
use crate::config::EngineConfig;
use crate::domain::step_start;
use crate::store::groups::Electrical;
use crate::store::groups::{self, SeriesKind, StoredGroup};
use crate::store::locations::StoredEvse;
use crate::store::{
    Conn, StoreResult, locations, meter, prices, requests, schedules, sessions, users,
};
use evflex_schedule::{
    Battery, ChargePoint, GroupInputs, Node, Phase, RateUnit, Topology, Vehicle, VehicleClass,
    Wiring,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// What the engine knows about one vehicle of the snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VehicleInfo {
    /// Vehicle id in the inputs (`{cc}*{party}*{session_id}`).
    pub vehicle_id: String,
    /// Session row id.
    pub session_row: i64,
    /// OCPI session id.
    pub session_id: String,
    /// EVSE uid.
    pub evse_uid: String,
    /// CPO party row to send set-points to.
    pub owner_party: Option<i64>,
    /// How it is treated.
    pub class: VehicleClass,
    /// Departure (Unix seconds), when known or assumed.
    pub departure_ts: i64,
    /// Energy still wanted (Wh).
    pub energy_left_wh: i64,
    /// Minimum charging power (W).
    pub min_power_w: i64,
}

/// What the engine knows about one member EVSE.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberInfo {
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI status.
    pub status: String,
    /// Rated power (W).
    pub rated_power_w: i64,
    /// Measured power at the snapshot (W).
    pub measured_w: i64,
}

/// A charge point planned at its measured draw, because its profile is not in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixedLoad {
    /// Session row id.
    pub session_row: i64,
    /// EVSE uid.
    pub evse_uid: String,
    /// The power planned for it in every step (W).
    pub power_w: i64,
    /// Why its profile is not in force.
    pub reason: String,
}

/// A group's state at the start of a timestep.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupSnapshot {
    /// The optimiser inputs.
    pub inputs: GroupInputs,
    /// Member EVSEs with data, by uid.
    pub members: Vec<MemberInfo>,
    /// Vehicles, in the order of `inputs.vehicles`.
    pub vehicles: Vec<VehicleInfo>,
    /// Sum of measured member power (W).
    pub measured_load_w: i64,
    /// Charge points planned at their measured draw (included in `inputs.other_load_w`).
    pub fixed: Vec<FixedLoad>,
    /// The group's capacity in the first step (W), before the arrival reserve.
    pub group_capacity_w: i64,
    /// The arrival reserve taken off the capacity in every step (W, `engine::reserve`).
    pub reserve_w: i64,
    /// The capacity per step and the connection node as they were before the reserve was taken
    /// off, for [`GroupSnapshot::give_back_reserve`].
    pub unreserved: Option<Unreserved>,
}

/// What [`GroupSnapshot::give_back_reserve`] restores.
#[derive(Debug, Clone, PartialEq)]
pub struct Unreserved {
    capacity_w: Vec<i64>,
    connection: Option<evflex_schedule::Node>,
}

impl GroupSnapshot {
    /// Gives the arrival reserve back to the plan: the capacity and the connection's limits as
    /// they were before it was taken off. The tick does this when the plan with the reserve
    /// leaves an accepted guarantee short and the plan without it does not leave it as short
    /// (`engine::tick`): room for cars that may arrive never outranks a guarantee already given.
    /// Returns whether there was a reserve to give back.
    pub fn give_back_reserve(&mut self) -> bool {
        let Some(u) = self.unreserved.take() else {
            return false;
        };
        self.inputs.capacity_w = u.capacity_w;
        if let (Some(top), Some(root)) = (self.inputs.topology.as_mut(), u.connection)
            && let Some(node) = top.nodes.iter_mut().find(|n| n.id == CONNECTION_NODE)
        {
            *node = root;
        }
        self.reserve_w = 0;
        true
    }
}

/// Vehicle id of a session in the optimiser's inputs: `V` and the session's row id.
///
/// Decision: the canonical inputs are public (the audit API serves them so anyone can re-run
/// `evflex verify`), so a vehicle id must not be a handle a stranger could use: not the CPO's
/// session id, not the EVSE uid, not a user. A row id is opaque outside evflex; the signed-in
/// views (the cockpit, the user's status) map it back with [`session_row_of`]. Zero-padded,
/// so the ids sort as the sessions arrived (the inputs list vehicles in id order).
pub fn vehicle_id(session_row: i64) -> String {
    format!("V{session_row:012}")
}

/// The session row a [`vehicle_id`] names.
pub fn session_row_of(vehicle_id: &str) -> Option<i64> {
    vehicle_id.strip_prefix('V')?.parse().ok()
}

/// The whole steps from `t0` before a departure at `ts`, within `1..=horizon`: the vehicle's
/// window in the plan ends at the last step boundary at or before its departure.
///
/// Decision (issue 15, "departure rounding"): the optimiser plans whole steps at constant power,
/// so the departure's step is not planned at all rather than planned as if the car stayed to
/// its end: a car leaving at 10:56:45 gets its energy by 10:45, never after it has gone.
/// Admission uses the same window, so what it accepts the plan can deliver. The cost is up to
/// one step of charging time; the earlier rule (rounded up) lost whatever the plan put after
/// the real departure, which on real ACN departures was every missed guarantee. A window that
/// would be empty (departure within the current step) keeps the current step.
pub fn steps_until(t0: i64, ts: i64, time_step_s: u32, horizon: usize) -> usize {
    let step = i64::from(time_step_s);
    let steps = (ts - t0).div_euclid(step);
    steps.clamp(1, horizon as i64) as usize
}

/// For a plan made `elapsed_s` into its first step (an event re-plan, `engine::replan`, and
/// admission): the optimiser plans whole steps, so it counts a vehicle's first-step power over
/// the whole step although only the rest of it is ahead. Each guaranteed vehicle's energy grows
/// by what it drew in the part already past at the power its plan gave it for this step
/// (`planned_w`, the latest schedule's; measured energy since is already counted in
/// `delivered_wh`), or, for a vehicle that had no plan for this step (a new arrival), by what it
/// could have drawn ([`elapsed_pad_wh`]).
///
/// The pad stands for the first-step energy the new plan counts but cannot deliver, the new
/// first-step power times `elapsed_s`. The power in force is its best estimate: padding every
/// car at its full power instead (as before) asked a group planned below full power for energy
/// no car needs, up to a quarter hour of full power per car late in a step. On the generated
/// day every event re-plan showed thousands of Wh of such phantom shortfall, and the plans moved
/// real energy to meet it. Where the new plan gives more than the power in force, the next plan
/// measures the difference and plans it.
pub fn pad_elapsed(
    inputs: &mut evflex_schedule::GroupInputs,
    elapsed_s: i64,
    planned_w: &std::collections::HashMap<String, i64>,
) {
    let elapsed_s = elapsed_s.clamp(0, i64::from(inputs.time_step_s));
    if elapsed_s == 0 {
        return;
    }
    for v in inputs
        .vehicles
        .iter_mut()
        .filter(|v| v.class == VehicleClass::Guaranteed)
    {
        let battery = match (
            v.battery_capacity_wh,
            v.energy_on_arrival_wh,
            v.taper_knee_permille,
        ) {
            (Some(capacity_wh), Some(energy_wh), Some(knee_permille)) => Some(BatteryNow {
                capacity_wh,
                energy_wh,
                knee_permille,
            }),
            _ => None,
        };
        let could_wh = elapsed_pad_wh(v.max_power_w, battery.as_ref(), elapsed_s);
        let pad_wh = match planned_w.get(&v.id) {
            Some(w) => could_wh.min(((*w).max(0) as i128 * elapsed_s as i128 / 3_600) as i64),
            None => could_wh,
        };
        v.energy_requested_wh = v.energy_requested_wh.saturating_add(pad_wh);
        if let Some(w) = v.energy_wanted_wh.as_mut() {
            *w = w.saturating_add(pad_wh);
        }
        // As if the pad had been charged since the step's start: the battery held that much
        // less then, so its taper is where it is now once the pad is in.
        if let Some(e) = v.energy_on_arrival_wh.as_mut() {
            *e = (*e - pad_wh).max(0);
        }
    }
}

/// The power (W) each vehicle is planned to draw in `timestep` by `schedule`, the group's
/// latest, made for `schedule_timestep` (`timestep` or before).
pub fn planned_in_step(
    schedule: &evflex_schedule::Schedule,
    schedule_timestep: i64,
    timestep: i64,
) -> std::collections::HashMap<String, i64> {
    let Ok(offset) = usize::try_from(timestep - schedule_timestep) else {
        return Default::default();
    };
    schedule
        .vehicle_ids
        .iter()
        .zip(&schedule.power_w)
        .filter_map(|(id, row)| Some((id.clone(), *row.get(offset)?)))
        .collect()
}

/// What a vehicle could have drawn in the `elapsed_s` of its plan's first step already past
/// (Wh, rounded up): its maximum power, or, for a battery whose taper the plan follows, the
/// power its taper allows now.
///
/// The plan counts the pad as charged in the first step and, to keep the taper where it is,
/// starts the battery that much lower. Padding a tapering battery at its full power would start
/// it too low, and every later step's taper would allow more than the battery takes: the plan
/// would put energy where the car cannot draw it (issue 15, misses on the generated day). At
/// the power the taper allows now, the first step's planned power can never exceed it (the
/// taper row of that step holds it there), so the pad still covers all the first step counts
/// on in its past part.
pub fn elapsed_pad_wh(max_power_w: i64, battery: Option<&BatteryNow>, elapsed_s: i64) -> i64 {
    let power_w = match battery {
        Some(b) => evflex_schedule::taper_max_power_w(
            max_power_w as f64,
            b.capacity_wh as f64,
            b.energy_wh as f64,
            f64::from(b.knee_permille) / 1_000.0,
        )
        .ceil() as i64,
        None => max_power_w,
    };
    ((power_w.max(0) as i128 * elapsed_s.max(0) as i128 + 3_599) / 3_600) as i64
}

/// A battery whose size and energy the plan knows (issue 15, taper-aware planning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatteryNow {
    /// Capacity (Wh).
    pub capacity_wh: i64,
    /// Energy in it at the plan's start (Wh).
    pub energy_wh: i64,
    /// The knee (‰ of the capacity) above which its power falls linearly to 0 at full.
    pub knee_permille: u16,
}

/// The knee (‰ SoC) the plan gives a session's battery: the one its meter values showed
/// (`closed_loop::knee_from_reading`), else the configured one; `None` when taper planning is
/// off.
pub fn learned_knee(cfg: &EngineConfig, s: &crate::store::sessions::StoredSession) -> Option<u16> {
    let configured = cfg.taper_knee()?;
    Some(
        s.taper_knee_permille
            .and_then(|k| u16::try_from(k).ok())
            .filter(|k| *k < 1_000)
            .unwrap_or(configured),
    )
}

/// A vehicle's maximum power (W) after what it was seen drawing at most (`closed_loop`'s
/// observed maximum, `seen_w`). Without a known battery the observation caps it. With one, the
/// plan already follows the taper, so a car drawing what its taper allows is not capped twice:
/// only a draw below the taper (a vehicle maximum below the charge point's, a colder battery)
/// lowers the curve's height, so that the curve at today's energy gives what it was seen to draw.
pub fn capped_by_observed(max_power_w: i64, seen_w: i64, battery: Option<&BatteryNow>) -> i64 {
    let Some(b) = battery else {
        return max_power_w.min(seen_w);
    };
    let share = evflex_schedule::taper_max_power_w(
        1.0,
        b.capacity_wh as f64,
        b.energy_wh as f64,
        f64::from(b.knee_permille) / 1_000.0,
    );
    if share <= 0.0 {
        return max_power_w;
    }
    let height = (seen_w as f64 / share).round() as i64;
    max_power_w.min(height)
}

/// Maximum charging power of a vehicle: the EVSE's rating, or the vehicle's own maximum when
/// its request gives a lower one (never negative).
pub fn vehicle_power_w(rated_power_w: i64, vehicle_max_power_w: Option<i64>) -> i64 {
    vehicle_max_power_w
        .map_or(rated_power_w, |v| v.min(rated_power_w))
        .max(0)
}

/// The energy a session has delivered (Wh): the freshest of what the CPO last reported for the
/// session (its `kwh`) and what the EVSE's meter register moved since the session started (its
/// meter values up to `now`). Both only grow, and each can lag the other (a CPO PATCHes
/// `kwh` every few minutes; meter values come on their own clock), so the larger is the
/// fresher (issue 15: "the plan must use the freshest of the two").
pub async fn delivered_wh(
    conn: &mut Conn,
    s: &crate::store::sessions::SessionRecord,
    now: i64,
) -> StoreResult<i64> {
    Ok(delivered_of(conn, &[s], now)
        .await?
        .pop()
        .unwrap_or(s.energy_wh))
}

/// [`delivered_wh`] of several sessions in one query, in the order given.
pub async fn delivered_of(
    conn: &mut Conn,
    sessions: &[&crate::store::sessions::SessionRecord],
    now: i64,
) -> StoreResult<Vec<i64>> {
    let windows: Vec<(&str, &str, &str, i64)> = sessions
        .iter()
        .map(|s| {
            (
                s.country_code.as_str(),
                s.party_id.as_str(),
                s.evse_uid.as_str(),
                s.start_ts,
            )
        })
        .collect();
    let metered = meter::register_energy_of(conn, &windows, now).await?;
    Ok(sessions
        .iter()
        .zip(metered)
        .map(|(s, m)| m.map_or(s.energy_wh, |m| m.max(s.energy_wh)))
        .collect())
}

/// Minimum charging power of an EVSE (6 A per phase at 230 V for AC; 0 for DC).
pub fn min_power_w(power_type: Option<&str>, phases: Option<i64>, max_power_w: i64) -> i64 {
    if power_type == Some("DC") {
        return 0;
    }
    (6 * 230 * phases.unwrap_or(1)).min(max_power_w)
}

fn per_step(
    series: &[(i64, i64)],
    t0: i64,
    time_step_s: u32,
    horizon: usize,
    default: i64,
) -> Vec<i64> {
    (0..horizon)
        .map(|t| {
            let at = t0 + t as i64 * i64::from(time_step_s);
            series
                .iter()
                .find(|(ts, _)| *ts == at)
                .map_or(default, |(_, v)| *v)
        })
        .collect()
}

/// How long after its session's start a power reading tells what a car out of control draws
/// (s): one averaging interval of the meter.
const FIRST_READING_S: i64 = 60;

/// Reads a group's state for `timestep`, as it stands at `now` (a re-plan's or admission's
/// second within the timestep: whether a charge point is in control depends on it).
#[tracing::instrument(skip_all, fields(group_id = group.record.id, timestep))]
pub async fn snapshot(
    conn: &mut Conn,
    cfg: &EngineConfig,
    group: &StoredGroup,
    timestep: u64,
    now: i64,
) -> StoreResult<GroupSnapshot> {
    let g = &group.record;
    let time_step_s = crate::domain::TIME_STEP_S;
    let h = cfg.horizon_steps.max(1);
    let t0 = step_start(timestep, time_step_s);
    let t_end = t0 + h as i64 * i64::from(time_step_s);
    let step_at = |t: usize| t0 + t as i64 * i64::from(time_step_s);

    let changes = groups::capacity_changes(conn, g.id, t0, t_end).await?;
    let capacity_w: Vec<i64> = (0..h)
        .map(|t| {
            let at = step_at(t);
            changes
                .iter()
                .rfind(|c| c.start_ts <= at && c.end_ts.is_none_or(|e| at < e))
                .map_or(g.capacity_w, |c| c.capacity_w)
        })
        .collect();
    let other = groups::series(conn, g.id, SeriesKind::OtherLoad, t0, t_end).await?;
    let mut other_load_w = per_step(&other, t0, time_step_s, h, g.other_load_w);
    let site_load_w = other_load_w.clone();
    let pv = groups::series(conn, g.id, SeriesKind::Pv, t0, t_end).await?;
    let pv_w = per_step(&pv, t0, time_step_s, h, 0);
    let price_rows = prices::in_range(conn, t0, t_end).await?;
    let price_micro_eur_per_kwh: Vec<i64> = (0..h)
        .map(|t| {
            let at = step_at(t);
            price_rows
                .iter()
                .rev()
                .find(|(ts, _)| *ts <= at)
                .map_or(cfg.flat_tariff_micro_eur_per_kwh, |(_, p)| *p)
        })
        .collect();
    // Each battery from its measured state where its controller posted one
    // (`engine::battery`); the query only runs for a group that has a battery.
    let battery_states = if g.batteries.is_empty() {
        Default::default()
    } else {
        groups::battery_states(conn, g.id).await?
    };
    let battery = (!g.batteries.is_empty()).then(|| Battery {
        capacity_wh: g.batteries.iter().map(|b| b.capacity_wh).sum(),
        energy_wh: g
            .batteries
            .iter()
            .map(|b| battery::energy_at_step_start(b, battery_states.get(&b.id), t0))
            .sum(),
        max_charge_w: g.batteries.iter().map(|b| b.max_charge_w).sum(),
        max_discharge_w: g.batteries.iter().map(|b| b.max_discharge_w).sum(),
        efficiency_permille: g
            .batteries
            .iter()
            .map(|b| b.efficiency_permille)
            .min()
            .unwrap_or(1000)
            .clamp(1, 1000),
    });

    let evses = locations::evses_of_group(conn, g.id).await?;
    let uids: Vec<String> = evses.iter().map(|e| e.record.uid.clone()).collect();
    let live = meter::live_of(conn, &g.country_code, &g.party_id, &uids).await?;
    let measured_power = |uid: &str| {
        live.iter()
            .find(|l| l.evse_uid == uid)
            .and_then(|l| l.power_w)
    };
    let measured = |uid: &str| measured_power(uid).unwrap_or(0);
    // The measured power of a session (W): the EVSE's latest reading, if it is that session's.
    let session_power = |uid: &str, session_id: &str| {
        live.iter()
            .find(|l| l.evse_uid == uid && l.session_id.as_deref() == Some(session_id))
            .and_then(|l| l.power_w)
    };
    let members: Vec<MemberInfo> = evses
        .iter()
        .map(|e| MemberInfo {
            evse_uid: e.record.uid.clone(),
            status: e.record.status.clone(),
            rated_power_w: e.record.rated_power_w.unwrap_or(cfg.default_evse_power_w),
            measured_w: measured(&e.record.uid),
        })
        .collect();
    let measured_load_w = members.iter().map(|m| m.measured_w).sum();

    // The sessions' set-points, drivers, requests and metered energy, each in one query for the
    // whole group (a re-plan in a burst over many groups read them session by session before,
    // four round trips per car).
    let open = sessions::open_sessions_of_group(conn, g.id).await?;
    let rows: Vec<i64> = open.iter().map(|s| s.id).collect();
    let mut last_profiles = schedules::last_profiles_of_sessions(conn, &rows).await?;
    let mut drivers: Vec<i64> = open.iter().filter_map(|s| s.user_id).collect();
    drivers.sort_unstable();
    drivers.dedup();
    let opted_in_drivers = users::opted_in_among(conn, &drivers).await?;
    let opted_rows: Vec<i64> = open
        .iter()
        .filter(|s| s.user_id.is_some_and(|u| opted_in_drivers.contains(&u)))
        .map(|s| s.id)
        .collect();
    let mut accepted_of = HashMap::new();
    let mut latest_of = HashMap::new();
    for q in requests::of_sessions(conn, &opted_rows).await? {
        if q.decision == requests::Decision::Accepted {
            accepted_of.insert(q.session_row, q.clone());
        }
        latest_of.insert(q.session_row, q);
    }
    // What the charge points out of control for a while (the CPO asked to wait, or could not be
    // reached) follow meanwhile: the newest profile their CPO took.
    let waiting: Vec<i64> = open
        .iter()
        .filter(|s| {
            matches!(
                setpoints::standing(last_profiles.get(&s.id), now.max(t0)),
                Standing::NotInForce(_)
            )
        })
        .map(|s| s.id)
        .collect();
    let taken = schedules::taken_profiles(conn, &waiting).await?;
    let records: Vec<&crate::store::sessions::SessionRecord> =
        open.iter().map(|s| &s.record).collect();
    let delivered_of = delivered_of(conn, &records, t0).await?;

    let mut vehicles = Vec::new();
    let mut infos = Vec::new();
    let mut fixed = Vec::new();
    for (s, &delivered) in open.iter().zip(&delivered_of) {
        let r = &s.record;
        let Some(evse) = evses.iter().find(|e| e.record.uid == r.evse_uid) else {
            continue;
        };
        if matches!(
            evse.record.status.as_str(),
            "REMOVED" | "OUTOFORDER" | "INOPERATIVE"
        ) {
            continue;
        }
        let id = vehicle_id(s.id);
        if infos.iter().any(|v: &VehicleInfo| v.vehicle_id == id) {
            continue;
        }
        let last = last_profiles.remove(&s.id);
        // At the second of the plan, not the step's start: a wait the CPO asked for that ended
        // within the step ends for the plan too (read at the step's start, a throttled car
        // stayed out of control until the next tick, planned at its draw while its profile
        // was sent again and let it rise).
        let standing = setpoints::standing(last.as_ref(), now.max(t0));
        let reason = match &standing {
            // A car that draws above its limit in force (`closed_loop`) is counted at its
            // measured draw until it complies again.
            Standing::Controlled if s.over_limit_since.is_some() => {
                Some("draws above its limit in force".to_owned())
            }
            Standing::Controlled => None,
            Standing::GivenUp(r) | Standing::NotInForce(r) => Some(r.clone()),
        };
        if let Some(reason) = reason {
            let rated = evse
                .record
                .rated_power_w
                .unwrap_or(cfg.default_evse_power_w)
                .max(0);
            // Only this session's own reading counts: the charge point's latest may still be
            // the previous car's (a car plugging in at a point that refuses profiles was
            // counted at the 12 kW its predecessor drew last, and drew 22 kW).
            // A reading taken within a minute of plug-in may average over time before the car
            // drew (meters that report the interval's mean): it says nothing of the draw. (A
            // car counted at the 5.2 kW of its first 28 seconds drew 11 kW.)
            let measured = live
                .iter()
                .find(|l| {
                    l.evse_uid == r.evse_uid
                        && l.session_id.as_deref() == Some(&r.session_id)
                        && l.ts >= r.start_ts + FIRST_READING_S
                })
                .and_then(|l| l.power_w);
            let mut power_w = measured.unwrap_or(rated).clamp(0, rated);
            // While it waits, the charge point follows the newest profile its CPO took, which
            // its reading (a minute old, under an older limit) may not show yet, and whose
            // limit may rise at a step boundary within the wait: count the highest limit that
            // profile sets until the wait ends, within what the car was seen able to draw. (At
            // its measured draw alone, cars whose newer profile the CPO took just before it
            // throttled the next one put the demo's groups up to 8 kW over for a minute.)
            if let (Standing::NotInForce(_), Some(profile), Some(last)) =
                (&standing, taken.get(&s.id), last.as_ref())
            {
                let until = setpoints::out_of_control_until(last) + 60;
                let phases = evse.record.phases.unwrap_or(3);
                if let Some(limit) = setpoints::highest_limit_w(profile, now.max(t0), until, phases)
                {
                    let able = s.observed_max_w.unwrap_or(rated).max(0);
                    power_w = limit.min(able).max(measured.unwrap_or(0)).clamp(0, rated);
                }
            }
            for load in &mut other_load_w {
                *load += power_w;
            }
            fixed.push(FixedLoad {
                session_row: s.id,
                evse_uid: r.evse_uid.clone(),
                power_w,
                reason,
            });
            continue;
        }
        let opted_in = s.user_id.is_some_and(|u| opted_in_drivers.contains(&u));
        let request = accepted_of
            .remove(&s.id)
            .filter(|q| opted_in && q.departure_ts > t0);
        // A driver whose request could not be guaranteed still said what the car needs and when
        // it leaves: its best effort is planned towards that (else evflex's defaults).
        let asked = latest_of
            .remove(&s.id)
            .filter(|q| opted_in && request.is_none() && q.departure_ts > t0);
        let told = request.as_ref().or(asked.as_ref());
        let max_power_w = vehicle_power_w(
            evse.record
                .rated_power_w
                .unwrap_or(cfg.default_evse_power_w),
            told.and_then(|q| q.vehicle_max_power_w),
        );
        // The battery, where the request gives its size: the energy in it from the SoC at the
        // request plus what was charged since, else from the SoC the charge point last reported
        // for this session. The plan then follows its taper above the knee.
        let battery = told.and_then(|q| {
            let capacity_wh = q.battery_capacity_wh.filter(|c| *c > 0)?;
            let reported = live
                .iter()
                .find(|l| {
                    l.evse_uid == r.evse_uid && l.session_id.as_deref() == Some(&r.session_id)
                })
                .and_then(|l| l.soc_permille)
                .map(|p| capacity_wh * p / 1_000);
            let since_request = q
                .battery_energy_wh
                .map(|e| e + (delivered - q.session_energy_wh_at_request).max(0));
            // The request's SoC plus the energy counted since is the measure the energy left
            // is counted in (the two add up to where the battery ends); a reported SoC only
            // stands in when the request gave none.
            let energy_wh = since_request.or(reported)?.clamp(0, capacity_wh);
            Some(BatteryNow {
                capacity_wh,
                energy_wh,
                knee_permille: learned_knee(cfg, s)?,
            })
        });
        // What the car was seen able to draw (`closed_loop`: a taper, a full battery, a
        // vehicle maximum below the charge point's) caps it, so its headroom goes to others;
        // for a battery whose taper the plan follows, only a draw below that taper does.
        let max_power_w = match s.observed_max_w {
            Some(seen) => capped_by_observed(max_power_w, seen.max(0), battery.as_ref()),
            None => max_power_w,
        };
        let min_power = min_power_w(
            evse.record.power_type.as_deref(),
            evse.record.phases,
            max_power_w,
        )
        .min(max_power_w);
        let (class, energy_left_wh, departure_ts, battery_capacity_wh) = match (&request, opted_in)
        {
            (Some(q), _) => {
                let since = (delivered - q.session_energy_wh_at_request).max(0);
                (
                    VehicleClass::Guaranteed,
                    (q.energy_wh - since).max(0),
                    q.departure_ts,
                    q.battery_capacity_wh,
                )
            }
            (None, true) => match &asked {
                Some(q) => (
                    VehicleClass::BestEffort,
                    (q.energy_wh - (delivered - q.session_energy_wh_at_request).max(0)).max(0),
                    q.departure_ts,
                    q.battery_capacity_wh,
                ),
                None => (
                    VehicleClass::BestEffort,
                    (cfg.default_energy_wh - delivered).max(0),
                    (r.start_ts + cfg.default_dwell_s).max(t0 + 3_600),
                    None,
                ),
            },
            // A car that keeps drawing past the assumption is planned to go on drawing what it
            // is measured at for another hour, so its draw is not left out of the plan
            // (issue 15: a car wanting 42.9 kWh against the 30 kWh assumed overloaded its group).
            (None, false) => (
                VehicleClass::Uncontrolled,
                (cfg.uncontrolled_energy_wh - delivered)
                    .max(session_power(&r.evse_uid, &r.session_id).unwrap_or(0))
                    .max(0),
                t_end,
                None,
            ),
        };
        let departure = if class == VehicleClass::Uncontrolled {
            h
        } else {
            steps_until(t0, departure_ts, time_step_s, h)
        };
        vehicles.push(Vehicle {
            id: id.clone(),
            arrival: 0,
            departure,
            max_power_w,
            min_power_w: min_power,
            energy_requested_wh: energy_left_wh,
            battery_capacity_wh,
            energy_on_arrival_wh: battery.as_ref().map(|b| b.energy_wh),
            class,
            efficiency_permille: 1000,
            taper_knee_permille: battery.as_ref().map(|b| b.knee_permille),
            // An accepted offer: what its driver asked for beyond it, best effort.
            energy_wanted_wh: request.as_ref().and_then(|q| {
                let since = (delivered - q.session_energy_wh_at_request).max(0);
                q.energy_wanted_wh.map(|w| (w - since).max(0))
            }),
        });
        infos.push(VehicleInfo {
            vehicle_id: id,
            session_row: s.id,
            session_id: r.session_id.clone(),
            evse_uid: r.evse_uid.clone(),
            owner_party: r.owner_party,
            class,
            departure_ts,
            energy_left_wh,
            min_power_w: min_power,
        });
    }

    // The arrival reserve (`engine::reserve`): room for the cars that may plug in on a free
    // charge point before their first profile lands.
    let occupied: Vec<&str> = infos
        .iter()
        .map(|v| v.evse_uid.as_str())
        .chain(fixed.iter().map(|f| f.evse_uid.as_str()))
        .collect();
    let free_ratings_w: Vec<i64> = members
        .iter()
        .filter(|m| !occupied.contains(&m.evse_uid.as_str()) && can_take_a_car(&m.status))
        .map(|m| m.rated_power_w)
        .collect();
    let arrivals_24h = if free_ratings_w.is_empty() {
        0
    } else {
        sessions::started_in_group(conn, g.id, t0 - 86_400, t0 + i64::from(time_step_s)).await?
    };
    let reserve_w = super::reserve::group_reserve_w(
        &free_ratings_w,
        arrivals_24h,
        cfg.reaction_window_s,
        g.arrival_reserve_w,
    );
    let group_capacity_w = capacity_w.first().copied().unwrap_or(g.capacity_w);
    let unreserved_capacity_w = (reserve_w > 0).then(|| capacity_w.clone());
    let capacity_w: Vec<i64> = capacity_w
        .into_iter()
        .map(|c| (c - reserve_w).max(0))
        .collect();

    let topology = (!g.electrical.is_empty()).then(|| {
        let car_phases = |uid: &str, session_id: &str| {
            live.iter()
                .find(|l| l.evse_uid == uid && l.session_id.as_deref() == Some(session_id))
                .and_then(|l| l.car_phases)
        };
        tree(&TreeParts {
            electrical: &g.electrical,
            evses: &evses,
            vehicles: &infos,
            fixed: &fixed,
            other_load_w: &site_load_w,
            pv_w: &pv_w,
            car_phases: &car_phases,
        })
    });
    let mut topology = topology;
    let unreserved_connection = topology
        .as_ref()
        .filter(|_| reserve_w > 0)
        .and_then(|top| top.nodes.iter().find(|n| n.id == CONNECTION_NODE).cloned());
    if let Some(top) = topology.as_mut() {
        reserve_at_connection(top, reserve_w, g.electrical.phase_voltage_v);
    }
    // An amps point's minimum is its minimum current on the phases the car draws on (the tree's
    // rule); the EVSE-wide 6 A on every phase would forbid a single-phase car on a three-phase
    // point from charging at all.
    if let Some(top) = &topology {
        for cp in top
            .charge_points
            .iter()
            .filter(|c| c.unit == RateUnit::Amps)
        {
            if let Some(i) = vehicles.iter().position(|v| v.id == cp.vehicle_id) {
                vehicles[i].min_power_w = 0;
                infos[i].min_power_w = 0;
            }
        }
    }
    let mut inputs = GroupInputs {
        group_id: group.record.id as u64,
        start_timestep: timestep,
        time_step_s,
        horizon: h,
        capacity_w,
        other_load_w,
        pv_w,
        price_micro_eur_per_kwh,
        battery,
        vehicles,
        topology,
    };
    if let Some(top) = inputs.topology.as_mut() {
        infer_single_phase(top, &inputs.vehicles);
    }
    Ok(GroupSnapshot {
        inputs,
        members,
        vehicles: infos,
        measured_load_w,
        fixed,
        group_capacity_w,
        reserve_w,
        unreserved: unreserved_capacity_w.map(|capacity_w| Unreserved {
            capacity_w,
            connection: unreserved_connection,
        }),
    })
}

/// A car whose phases no meter value has shown yet, and whose own maximum (its driver's
/// request) is below what its charge point's minimum current draws on all the point's phases,
/// can only be a single-phase car: it is planned on one phase. Otherwise the worst case, every
/// wired phase, would forbid it from charging at all (6 A on three phases is 4.1 kW, above a
/// 3.7 kW single-phase car's maximum).
pub fn infer_single_phase(top: &mut evflex_schedule::Topology, vehicles: &[Vehicle]) {
    for cp in top
        .charge_points
        .iter_mut()
        .filter(|c| c.car_phases.is_none())
    {
        let Some(v) = vehicles.iter().find(|v| v.id == cp.vehicle_id) else {
            continue;
        };
        let all_phases_min_w =
            cp.min_current_ma * cp.phases.len() as i64 * i64::from(cp.voltage_v) / 1_000;
        if cp.phases.len() > 1 && v.max_power_w > 0 && v.max_power_w < all_phases_min_w {
            cp.car_phases = Some(1);
        }
    }
}

/// Whether a charge point in `status` can take a car that arrives (not out of order, removed
/// or blocked).
fn can_take_a_car(status: &str) -> bool {
    !matches!(status, "REMOVED" | "OUTOFORDER" | "INOPERATIVE" | "BLOCKED")
}

/// Takes the arrival reserve off the connection's per-phase limits: its current balanced on
/// three phases at `phase_voltage_v`, rounded up.
fn reserve_at_connection(top: &mut Topology, reserve_w: i64, phase_voltage_v: u32) {
    if reserve_w <= 0 {
        return;
    }
    let volts = i64::from(phase_voltage_v.max(1));
    let per_phase_ma = (reserve_w * 1000 + 3 * volts - 1) / (3 * volts);
    if let Some(root) = top.nodes.iter_mut().find(|n| n.id == CONNECTION_NODE) {
        for limit in root.phase_limit_ma.iter_mut().flatten() {
            *limit = (*limit - per_phase_ma).max(0);
        }
        if let Some(w) = root.limit_w.as_mut() {
            *w = (*w - reserve_w).max(0);
        }
    }
}

/// The id of the root of a group's tree: the group's connection (a name no limit node may take).
pub const CONNECTION_NODE: &str = "connection";

/// What [`tree`] is built from.
pub struct TreeParts<'a> {
    /// The group's electrical model.
    pub electrical: &'a Electrical,
    /// Member EVSEs.
    pub evses: &'a [StoredEvse],
    /// The snapshot's vehicles.
    pub vehicles: &'a [VehicleInfo],
    /// Charge points planned at their measured draw.
    pub fixed: &'a [FixedLoad],
    /// The group's non-EV load per step (W), without the fixed charge points.
    pub other_load_w: &'a [i64],
    /// PV per step (W).
    pub pv_w: &'a [i64],
    /// The phases the car of a session (EVSE uid, session id) was seen drawing on.
    pub car_phases: &'a dyn Fn(&str, &str) -> Option<i64>,
}

/// A member's charge point as the optimiser sees it: its wiring, else the connection on the
/// EVSE's phases (line-to-neutral) in watts.
pub fn charge_point(
    e: &Electrical,
    evse: Option<&StoredEvse>,
    uid: &str,
    vehicle_id: &str,
) -> ChargePoint {
    if let Some(w) = e.charge_points.iter().find(|w| w.evse_uid == uid) {
        return ChargePoint {
            vehicle_id: vehicle_id.to_owned(),
            node: w.node.clone().unwrap_or_else(|| CONNECTION_NODE.to_owned()),
            phases: w.phases.clone(),
            wiring: w.wiring,
            voltage_v: w.voltage_v,
            car_phases: None,
            unit: w.unit,
            min_current_ma: w.min_current_ma,
            max_current_ma: w.max_current_ma,
            current_step_ma: w.current_step_ma,
        };
    }
    let phases = evse.and_then(|e| e.record.phases).unwrap_or(3).clamp(1, 3) as usize;
    ChargePoint {
        vehicle_id: vehicle_id.to_owned(),
        node: CONNECTION_NODE.to_owned(),
        phases: [Phase::L1, Phase::L2, Phase::L3][..phases].to_vec(),
        wiring: Wiring::LineToNeutral,
        voltage_v: e.phase_voltage_v,
        car_phases: None,
        unit: RateUnit::Watts,
        min_current_ma: 0,
        max_current_ma: 0,
        current_step_ma: 0,
    }
}

/// Adds a constant non-EV load (`ma` per phase, `w` in all) to node `id` and each node above
/// it; the connection too when `with_connection`.
fn add_load(nodes: &mut [Node], id: &str, ma: [i64; 3], w: i64, h: usize, with_connection: bool) {
    let mut at = Some(id.to_owned());
    while let Some(id) = at {
        if id == CONNECTION_NODE && !with_connection {
            break;
        }
        let Some(node) = nodes.iter_mut().find(|n| n.id == id) else {
            break;
        };
        if node.other_load_ma.is_empty() {
            node.other_load_ma = vec![[0; 3]; h];
        }
        for step in &mut node.other_load_ma {
            for (x, add) in step.iter_mut().zip(ma) {
                *x += add;
            }
        }
        if node.limit_w.is_some() {
            if node.other_load_w.is_empty() {
                node.other_load_w = vec![0; h];
            }
            for x in &mut node.other_load_w {
                *x += w;
            }
        }
        at = node.parent.clone();
    }
}

/// A group's tree of limits and its vehicles' charge points (module docs).
pub fn tree(p: &TreeParts<'_>) -> Topology {
    let e = p.electrical;
    let volts = i64::from(e.phase_voltage_v.max(1));
    // Balanced over three phases: W / (3 · V) A, in mA; load rounded up, PV down.
    let balanced = |w: i64, up: bool| {
        let per_phase = if up {
            (w.max(0) * 1000 + 3 * volts - 1) / (3 * volts)
        } else {
            w.max(0) * 1000 / (3 * volts)
        };
        [per_phase; 3]
    };
    let h = p.other_load_w.len();
    let mut nodes = vec![Node {
        id: CONNECTION_NODE.to_owned(),
        parent: None,
        phase_limit_ma: e.phase_limit_ma,
        limit_w: None,
        other_load_ma: p.other_load_w.iter().map(|w| balanced(*w, true)).collect(),
        pv_ma: p.pv_w.iter().map(|w| balanced(*w, false)).collect(),
        other_load_w: Vec::new(),
        pv_w: Vec::new(),
    }];
    nodes.extend(e.nodes.iter().map(|n| {
        Node {
            id: n.id.clone(),
            parent: Some(
                n.parent
                    .clone()
                    .unwrap_or_else(|| CONNECTION_NODE.to_owned()),
            ),
            phase_limit_ma: n.phase_limit_ma,
            limit_w: n.limit_w,
            other_load_ma: Vec::new(),
            pv_ma: Vec::new(),
            other_load_w: Vec::new(),
            pv_w: Vec::new(),
        }
    }));
    // A node's own non-EV load goes through it and the nodes above it, up to (not into) the
    // connection, whose other load is the group's (which includes it).
    for n in &e.nodes {
        if n.other_load_ma.iter().any(|ma| *ma > 0) {
            let w = n.other_load_ma.iter().sum::<i64>() * volts / 1000;
            add_load(&mut nodes, &n.id, n.other_load_ma, w, h, false);
        }
    }
    // A charge point out of control draws on its own phases at its node, and through every node
    // above it up to the connection, in every step (the group's other load does not hold it).
    for f in p.fixed {
        let evse = p.evses.iter().find(|e| e.record.uid == f.evse_uid);
        let cp = charge_point(e, evse, &f.evse_uid, "");
        let (load, mw_per_a) = cp.load_vector();
        let ma = (f.power_w.max(0) * 1_000_000 + mw_per_a - 1) / mw_per_a.max(1);
        let per_phase = load.map(|on| if on { ma } else { 0 });
        add_load(&mut nodes, &cp.node, per_phase, f.power_w.max(0), h, true);
    }
    let charge_points = p
        .vehicles
        .iter()
        .map(|v| {
            let evse = p.evses.iter().find(|e| e.record.uid == v.evse_uid);
            let mut cp = charge_point(e, evse, &v.evse_uid, &v.vehicle_id);
            cp.car_phases = (p.car_phases)(&v.evse_uid, &v.session_id)
                .filter(|k| (1..=3).contains(k))
                .map(|k| k as u8);
            cp
        })
        .collect();
    Topology {
        nodes,
        charge_points,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_car_drawing_its_taper_is_not_capped_twice() {
        // 60 kWh at 90 % with the knee at 80 %: the taper allows half of 11 kW.
        let b = BatteryNow {
            capacity_wh: 60_000,
            energy_wh: 54_000,
            knee_permille: 800,
        };
        // Seen drawing what the taper allows (the closed loop's margin on top): no cap.
        assert_eq!(capped_by_observed(11_000, 6_550, Some(&b)), 11_000);
        // Seen drawing less than even the taper allows: the curve is lowered to meet it.
        assert_eq!(capped_by_observed(11_000, 3_000, Some(&b)), 6_000);
        // Without a known battery the observation is the cap.
        assert_eq!(capped_by_observed(11_000, 6_550, None), 6_550);
        // A full battery: nothing to scale, the plan's taper gives it 0 anyway.
        let full = BatteryNow {
            energy_wh: 60_000,
            ..b
        };
        assert_eq!(capped_by_observed(11_000, 500, Some(&full)), 11_000);
    }

    #[test]
    fn a_tapering_battery_is_padded_with_what_its_taper_allows() {
        let b = BatteryNow {
            capacity_wh: 60_000,
            energy_wh: 57_000,
            knee_permille: 800,
        };
        // 95 % SoC with the knee at 80 %: a quarter of 11 kW, 2,750 W, for 600 s.
        assert_eq!(elapsed_pad_wh(11_000, Some(&b), 600), 459);
        // Below the knee, and without a known battery: the full power.
        let low = BatteryNow {
            energy_wh: 30_000,
            ..b
        };
        assert_eq!(elapsed_pad_wh(11_000, Some(&low), 600), 1_834);
        assert_eq!(elapsed_pad_wh(11_000, None, 600), 1_834);
        assert_eq!(elapsed_pad_wh(11_000, Some(&b), 0), 0);

        // In a group's inputs the battery starts that much lower, so its taper after the pad
        // is where it is now, not 1.8 kWh lower (which would let the plan count on power the
        // battery cannot take).
        let mut inputs = evflex_schedule::GroupInputs {
            vehicles: vec![evflex_schedule::Vehicle {
                id: "v".into(),
                arrival: 0,
                departure: 8,
                max_power_w: 11_000,
                min_power_w: 0,
                energy_requested_wh: 2_000,
                battery_capacity_wh: Some(60_000),
                energy_on_arrival_wh: Some(57_000),
                class: VehicleClass::Guaranteed,
                efficiency_permille: 1_000,
                taper_knee_permille: Some(800),
                energy_wanted_wh: None,
            }],
            group_id: 1,
            start_timestep: 0,
            time_step_s: 900,
            horizon: 8,
            capacity_w: vec![22_000; 8],
            other_load_w: vec![0; 8],
            pv_w: vec![0; 8],
            price_micro_eur_per_kwh: vec![0; 8],
            battery: None,
            topology: None,
        };
        let mut padded = inputs.clone();
        pad_elapsed(&mut padded, 600, &Default::default());
        assert_eq!(padded.vehicles[0].energy_requested_wh, 2_459);
        assert_eq!(padded.vehicles[0].energy_on_arrival_wh, Some(56_541));
        // Planned at 1.2 kW for this step: it drew 200 Wh of it, and the pad is that.
        let planned = std::collections::HashMap::from([("v".to_owned(), 1_200)]);
        let mut padded = inputs.clone();
        pad_elapsed(&mut padded, 600, &planned);
        assert_eq!(padded.vehicles[0].energy_requested_wh, 2_200);
        assert_eq!(padded.vehicles[0].energy_on_arrival_wh, Some(56_800));
        // Never more than it could have drawn.
        let planned = std::collections::HashMap::from([("v".to_owned(), 11_000)]);
        pad_elapsed(&mut inputs, 600, &planned);
        assert_eq!(inputs.vehicles[0].energy_requested_wh, 2_459);
    }

    #[test]
    fn departure_steps_end_at_the_last_boundary_before_the_departure() {
        assert_eq!(steps_until(0, 900, 900, 96), 1);
        assert_eq!(steps_until(0, 901, 900, 96), 1);
        assert_eq!(steps_until(0, 1_799, 900, 96), 1);
        assert_eq!(steps_until(0, 1_800, 900, 96), 2);
        // Leaving within the current step: the current step stays.
        assert_eq!(steps_until(0, 300, 900, 96), 1);
        assert_eq!(steps_until(0, -5, 900, 96), 1);
        assert_eq!(steps_until(0, 10 * 86_400, 900, 96), 96);
    }

    #[test]
    fn minimum_power_is_six_amps_per_phase_for_ac() {
        assert_eq!(min_power_w(Some("AC_3_PHASE"), Some(3), 11_000), 4_140);
        assert_eq!(min_power_w(Some("AC_1_PHASE"), Some(1), 1_000), 1_000);
        assert_eq!(min_power_w(Some("DC"), Some(1), 50_000), 0);
    }

    #[test]
    fn a_vehicle_charges_at_the_lower_of_its_own_and_the_evse_power() {
        assert_eq!(vehicle_power_w(11_040, None), 11_040);
        assert_eq!(vehicle_power_w(11_040, Some(6_000)), 6_000);
        assert_eq!(vehicle_power_w(3_680, Some(6_000)), 3_680);
        assert_eq!(vehicle_power_w(-1, None), 0);
    }
}
