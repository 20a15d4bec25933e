//! The same day under four policies, side by side (issue 15): what evflex did (`smart`, as the
//! simulator measured it), `uncontrolled` (every car at full power from plug-in), seed 004's
//! `equal_share` load balancing, and the `hindsight` optimum (one LP over the whole day that
//! knows every arrival: an upper bound on the energy any policy can deliver within the limits).
//! In continuous time a fifth line, `hindsight_reserved`, is the same LP keeping smart's arrival
//! reserve free: what the reserve costs any policy, however good its plans.
//! `evflex demo --exit --json` prints [`PolicyReport`] on stdout.
//!
//! **Resolution.** In continuous time ([`crate::live`], the demo's default) load is measured
//! every second: `seconds_over_capacity` counts the seconds a group's EV load net of PV was over
//! its capacity, `seconds_over_after_reaction` those outside every car's reaction window (its
//! plug-in plus the profile latency), and the uncontrolled and equal-share policies are replayed
//! second by second through the same batteries; `resolution_s` is 1. In quarter-hour steps
//! (`--steps`) they count the seconds of the steps whose average net load was over (900 per
//! step) and `resolution_s` is 900.
//!
//! **Figures.** Per policy, over the simulated window and every group: the energy the plugged-in
//! cars asked for (`energy_requested_kwh`: what each car takes before it stops by itself) and
//! what the policy delivered; the accepted requests due in the window and how many got their
//! accepted energy (or all they take, if less) by departure (the tolerance of
//! [`crate::report`]); the energy cost at the day's prices, net of PV. The three counterfactual
//! policies use the same cars, charge points and requests as the smart run.
//!
//! **Equal share** (seed 004): in every step, the group's capacity plus PV is shared equally
//! among the cars plugged in; a car's share is at least 6 A on its phases, so when the shares
//! would fall below that the last to arrive pause (first come, first served); a car that takes
//! less than its share (its maximum, or what it still lacks) leaves the rest to the others.
//!
//! **Latency** (`latency_ms`): wall time from the simulated CPO's session PUT to evflex's first
//! profile PUT for that session, p50/p99/max. In continuous time only the arrivals evflex sent
//! a profile at once (at their simulated second) count: the event re-plan's latency. In
//! quarter-hour steps every first profile counts, which is the tick's own time.

use super::run::SimRecord;
use super::{STEP_S, STEPS_PER_DAY};
use crate::live::{Offer, Trace, replay};
use crate::report::{baseline_rows, cost_eur, day_inputs, group_members};
use crate::site_battery::BatteryFigures;
use evflex_schedule::{SolveOptions, VehicleClass};
use serde::Serialize;
use std::collections::BTreeMap;

const STEP_H: f64 = STEP_S as f64 / 3_600.0;

/// One policy's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyFigures {
    /// Seconds of steps whose net load was over capacity (900 per step).
    pub seconds_over_capacity: u64,
    /// Largest net load over capacity in any step (kW; 0 when never).
    pub max_overload_kw: f64,
    /// Of `seconds_over_capacity`, those outside every car's reaction window (continuous time:
    /// the seconds from a car's plug-in until a profile sent at once is in force, see
    /// [`crate::live::Continuous::reaction_window_s`]); in quarter-hour steps the same figure.
    pub seconds_over_after_reaction: u64,
    /// Energy the plugged-in cars asked for (kWh).
    pub energy_requested_kwh: f64,
    /// Energy delivered (kWh).
    pub energy_delivered_kwh: f64,
    /// Accepted requests due in the window.
    pub accepted_due: usize,
    /// Of those, met by departure.
    pub accepted_met: usize,
    /// Energy cost at the day's prices, net of PV (EUR).
    pub cost_eur: f64,
}

/// Percentiles of the event-to-profile latency (ms).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Largest.
    pub max: f64,
}

/// The day under four policies (`evflex demo --exit --json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PolicyReport {
    /// `smart`, `uncontrolled`, `equal_share`, `hindsight`; in continuous time also
    /// `hindsight_reserved`.
    pub policies: BTreeMap<&'static str, PolicyFigures>,
    /// The same per group, by group id.
    pub groups: BTreeMap<i64, BTreeMap<&'static str, PolicyFigures>>,
    /// Session PUT to first profile PUT (ms).
    pub latency_ms: Latency,
    /// How finely load is measured (s): the simulator's step.
    pub resolution_s: u32,
    /// Each stationary battery, by group id, under the policies that run it (`smart`,
    /// `hindsight`, `hindsight_reserved`); the uncontrolled and equal-share policies leave it
    /// idle. Its power is in the group's load, so in the overload and the cost.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub batteries: BTreeMap<i64, BTreeMap<&'static str, BatteryFigures>>,
}

impl std::fmt::Display for PolicyReport {
    /// The summary's policy table.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "  {:<18} {:>13} {:>12} {:>13} {:>13} {:>15} {:>9}",
            "policy",
            "over cap. (s)",
            "max over kW",
            "wanted kWh",
            "served kWh",
            "accepted met",
            "cost EUR"
        )?;
        for (name, p) in &self.policies {
            writeln!(
                f,
                "  {:<18} {:>13} {:>12.1} {:>13.1} {:>13.1} {:>15} {:>9.2}",
                name,
                p.seconds_over_capacity,
                p.max_overload_kw,
                p.energy_requested_kwh,
                p.energy_delivered_kwh,
                format!("{} of {}", p.accepted_met, p.accepted_due),
                p.cost_eur
            )?;
        }
        if let Some(names) = self.groups.values().next().map(|p| p.keys()) {
            write!(f, "  {:<18}", "served kWh, group")?;
            for name in names {
                write!(f, " {name:>13.13}")?;
            }
            writeln!(f)?;
        }
        for (id, policies) in &self.groups {
            write!(f, "  {id:<18}")?;
            for p in policies.values() {
                write!(f, " {:>13.1}", p.energy_delivered_kwh)?;
            }
            writeln!(f)?;
        }
        for (id, policies) in &self.batteries {
            for (name, b) in policies {
                writeln!(
                    f,
                    "  battery, group {id} ({:.0} kWh), {name}: took {:.1} kWh, gave {:.1} kWh, {:.1} → {:.1} kWh",
                    b.capacity_kwh, b.charged_kwh, b.discharged_kwh, b.start_kwh, b.end_kwh
                )?;
            }
        }
        if !self.batteries.is_empty() {
            writeln!(f, "  (uncontrolled and equal share leave the battery idle)")?;
        }
        write!(
            f,
            "  (load at {} s resolution; session PUT to first profile p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms)",
            self.resolution_s, self.latency_ms.p50, self.latency_ms.p99, self.latency_ms.max
        )
    }
}

/// Per vehicle (index into [`SimRecord::vehicles`]) its power per step of the day (W).
type Rows = BTreeMap<usize, Vec<f64>>;

/// The four policies of `rec`.
pub fn of(rec: &SimRecord) -> PolicyReport {
    if let Some(trace) = &rec.trace {
        return of_trace(rec, trace);
    }
    let smart: Rows = plugged(rec)
        .map(|i| (i, rec.vehicles[i].power_w.clone()))
        .collect();
    let mut uncontrolled = Rows::new();
    let mut hindsight = Rows::new();
    for g in 0..rec.scenario.groups.len() {
        let members = group_members(rec, g);
        for (i, row) in members.iter().zip(baseline_rows(rec, g)) {
            uncontrolled.insert(*i, row.iter().map(|w| *w as f64).collect());
        }
        hindsight.extend(hindsight_rows(rec, g, None).0);
    }
    let equal = equal_share(rec);
    // The step simulator runs no stationary battery (`SimConfig::battery_wh`).
    let idle = no_battery(rec);
    let scope = |only: Option<usize>| -> BTreeMap<&'static str, PolicyFigures> {
        [
            ("smart", &smart),
            ("uncontrolled", &uncontrolled),
            ("equal_share", &equal),
            ("hindsight", &hindsight),
        ]
        .into_iter()
        .map(|(name, rows)| (name, figures(rec, rows, &idle, only)))
        .collect()
    };
    PolicyReport {
        policies: scope(None),
        groups: per_group(rec, scope),
        latency_ms: latency(rec),
        resolution_s: STEP_S,
        batteries: BTreeMap::new(),
    }
}

/// `scope` of each group, by group id.
fn per_group(
    rec: &SimRecord,
    scope: impl Fn(Option<usize>) -> BTreeMap<&'static str, PolicyFigures>,
) -> BTreeMap<i64, BTreeMap<&'static str, PolicyFigures>> {
    rec.scenario
        .groups
        .iter()
        .enumerate()
        .map(|(g, group)| (group.id, scope(Some(g))))
        .collect()
}

/// Vehicles plugged in during the window, by index.
fn plugged(rec: &SimRecord) -> impl Iterator<Item = usize> + '_ {
    let (first, end) = (rec.config.first_step(), rec.config.end_step());
    rec.vehicles.iter().enumerate().filter_map(move |(i, v)| {
        ((first..end).contains(&v.arrival.arrival_step) && v.cp.is_some()).then_some(i)
    })
}

fn group_of(rec: &SimRecord, i: usize) -> Option<usize> {
    let cp = rec.vehicles[i].cp?;
    let id = rec.scenario.charge_points[cp].group_id;
    rec.scenario.groups.iter().position(|g| g.id == id)
}

/// [`plugged`] in every group, or in `only` group index `g`.
fn plugged_in(rec: &SimRecord, only: Option<usize>) -> impl Iterator<Item = usize> + '_ {
    plugged(rec).filter(move |i| only.is_none_or(|o| group_of(rec, *i) == Some(o)))
}

/// The groups with their index: every one, or `only` index `g`.
fn in_scope(
    groups: &[crate::scenario::Group],
    only: Option<usize>,
) -> impl Iterator<Item = (usize, &crate::scenario::Group)> {
    groups
        .iter()
        .enumerate()
        .filter(move |(g, _)| only.is_none_or(|o| o == *g))
}

/// `per_group` with every group but `only` (if any) zeroed.
fn in_scope_only(per_group: &[Vec<f64>], only: Option<usize>) -> Vec<Vec<f64>> {
    let mut out = per_group.to_vec();
    for (g, row) in out.iter_mut().enumerate() {
        if only.is_some_and(|o| o != g) {
            row.fill(0.0);
        }
    }
    out
}

/// Per group and step of the day, a stationary battery's power (W, + charging): all zero.
fn no_battery(rec: &SimRecord) -> Vec<Vec<f64>> {
    vec![vec![0.0; STEPS_PER_DAY]; rec.scenario.groups.len()]
}

/// The figures of one policy's rows and `battery_w` (per group and step of the day, the
/// stationary batteries' power), over every group or `only` group index `g`.
fn figures(
    rec: &SimRecord,
    rows: &Rows,
    battery_w: &[Vec<f64>],
    only: Option<usize>,
) -> PolicyFigures {
    let (first, end) = (rec.config.first_step(), rec.config.end_step());
    let groups = &rec.scenario.groups;
    let mut load = in_scope_only(battery_w, only);
    let mut plugged_n = vec![vec![0usize; STEPS_PER_DAY]; groups.len()];
    for (i, row) in rows {
        let Some(g) = group_of(rec, *i).filter(|g| only.is_none_or(|o| o == *g)) else {
            continue;
        };
        for k in rec.vehicles[*i].plugged_steps(end) {
            plugged_n[g][k] += 1;
        }
        for (k, w) in row.iter().enumerate() {
            load[g][k] += w;
        }
    }
    let mut seconds = 0;
    let mut max_over: f64 = 0.0;
    for (g, group) in in_scope(groups, only) {
        for k in first..end {
            // 1 W per car plugged in: whole-watt rounding of the profiles (`crate::report`).
            let over = load[g][k]
                - group.pv_w[k] as f64
                - group.capacity_at(k) as f64
                - plugged_n[g][k] as f64;
            if over > 0.0 {
                seconds += u64::from(STEP_S);
                max_over = max_over.max(over + plugged_n[g][k] as f64);
            }
        }
    }
    let delivered_by = |i: usize, until: usize| -> f64 {
        rows.get(&i)
            .map_or(0.0, |r| r.iter().take(until).sum::<f64>() * STEP_H)
    };
    let mut due = 0;
    let mut met = 0;
    let mut requested = 0.0;
    let mut delivered = 0.0;
    for i in plugged_in(rec, only) {
        let v = &rec.vehicles[i];
        requested += v.arrival.wanted_wh as f64;
        delivered += delivered_by(i, STEPS_PER_DAY);
        let Some(acc) = v.accepted_wh.filter(|_| v.opted_in) else {
            continue;
        };
        if v.arrival.departure_step > end {
            continue;
        }
        due += 1;
        let steps = v.plugged_steps(end).len() as f64;
        let goal = acc.min(v.arrival.wanted_wh) as f64;
        if delivered_by(i, v.arrival.departure_step) >= goal - 1.0 - steps {
            met += 1;
        }
    }
    PolicyFigures {
        seconds_over_capacity: seconds,
        max_overload_kw: round3(max_over / 1_000.0),
        seconds_over_after_reaction: seconds,
        energy_requested_kwh: round3(requested / 1_000.0),
        energy_delivered_kwh: round3(delivered / 1_000.0),
        accepted_due: due,
        accepted_met: met,
        cost_eur: (cost_eur(rec, &load) * 100.0).round() / 100.0,
    }
}

fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

/// 6 A on the phases the car draws on, at 230 V (W).
fn min_share_w(car_phases: u8) -> f64 {
    6.0 * crate::scenario::PHASE_V * f64::from(car_phases.clamp(1, 3))
}

/// Seed 004's rule, step by step (module docs).
fn equal_share(rec: &SimRecord) -> Rows {
    let end = rec.config.end_step();
    let mut rows: Rows = plugged(rec)
        .map(|i| (i, vec![0.0; STEPS_PER_DAY]))
        .collect();
    let mut delivered: BTreeMap<usize, f64> = rows.keys().map(|i| (*i, 0.0)).collect();
    for (g, group) in rec.scenario.groups.iter().enumerate() {
        let members: Vec<usize> = group_members(rec, g)
            .into_iter()
            .filter(|i| rows.contains_key(i))
            .collect();
        for k in rec.config.first_step()..end {
            let mut present: Vec<usize> = members
                .iter()
                .copied()
                .filter(|i| rec.vehicles[*i].plugged_steps(end).contains(&k))
                .collect();
            present.sort_by_key(|i| {
                (
                    rec.vehicles[*i].arrival.arrival_step,
                    rec.vehicles[*i].arrival.id,
                )
            });
            let available = (group.capacity_at(k) + group.pv_w[k]).max(0) as f64;
            // What each car would take on its own this step.
            let offers: Vec<Offer> = present
                .iter()
                .map(|i| {
                    let v = &rec.vehicles[*i];
                    let left = (v.arrival.wanted_wh as f64 - delivered[i]).max(0.0) / STEP_H;
                    Offer {
                        vi: *i,
                        max_w: (v.max_w as f64).min(left),
                        car_phases: v.car_phases,
                    }
                })
                .collect();
            let given: Vec<(usize, f64)> = offers
                .iter()
                .map(|o| o.vi)
                .zip(share_equally(&offers, available))
                .collect();
            for (i, p) in given {
                if let Some(row) = rows.get_mut(&i) {
                    row[k] = p;
                }
                *delivered.entry(i).or_default() += p * STEP_H;
            }
        }
    }
    rows
}

/// Seed 004's rule for one moment: `available` (W) shared equally among `offers` (in arrival
/// order), each at least 6 A on its phases, so the last to arrive pause while the shares would
/// be smaller (first come, first served); a car that takes less than its share leaves the rest
/// to the others (water-filling). Answers each offer's power (W).
fn share_equally(offers: &[Offer], available: f64) -> Vec<f64> {
    let mut present: Vec<usize> = (0..offers.len())
        .filter(|i| offers[*i].max_w > 0.0)
        .collect();
    while let Some(last) = present.last() {
        let share = available / present.len() as f64;
        if share >= min_share_w(offers[*last].car_phases) {
            break;
        }
        present.pop();
    }
    let mut given = vec![0.0; offers.len()];
    let mut left = available;
    let mut open = present;
    while !open.is_empty() && left > 1e-9 {
        let share = left / open.len() as f64;
        let mut next = Vec::new();
        for i in &open {
            let want = offers[*i].max_w - given[*i];
            let p = want.min(share);
            given[*i] += p;
            left -= p;
            if want > share + 1e-9 {
                next.push(*i);
            }
        }
        if next.len() == open.len() {
            break;
        }
        open = next;
    }
    given
}

/// The four policies of a continuous-time day: `smart` from the simulator's 1-second trace,
/// `uncontrolled` and `equal_share` replayed second by second through the same batteries
/// ([`crate::live::replay`]), `hindsight` an LP over the day in one-minute steps that knows
/// every arrival (an upper bound); and a fifth line, `hindsight_reserved`: the same LP keeping
/// smart's arrival reserve free, the bound for any policy that is safe from an arrival's first
/// second without knowing when cars come.
fn of_trace(rec: &SimRecord, trace: &Trace) -> PolicyReport {
    let smart_delivered: BTreeMap<usize, f64> = plugged(rec)
        .map(|i| (i, rec.vehicles[i].delivered_wh))
        .collect();
    let smart_rows: Rows = plugged(rec)
        .map(|i| (i, rec.vehicles[i].power_w.clone()))
        .collect();
    let uncontrolled = replay(rec, trace, |offers, _| {
        offers.iter().map(|o| o.max_w).collect()
    });
    let equal = replay(rec, trace, share_equally);
    let window_s = trace.settings.reaction_window_s();
    let (mut hindsight, mut reserved) = (Rows::new(), Rows::new());
    let idle = no_battery(rec);
    let (mut smart_battery, mut hindsight_battery, mut reserved_battery) =
        (idle.clone(), idle.clone(), idle.clone());
    let mut batteries: BTreeMap<i64, BTreeMap<&'static str, BatteryFigures>> = BTreeMap::new();
    for run in &trace.batteries {
        smart_battery[run.group].clone_from(&run.power_w);
        batteries
            .entry(rec.scenario.groups[run.group].id)
            .or_default()
            .insert("smart", run.figures());
    }
    for (g, group) in rec.scenario.groups.iter().enumerate() {
        let (rows, battery) = hindsight_rows(rec, g, None);
        hindsight.extend(rows);
        let (rows, reserved_w) = hindsight_rows(rec, g, Some(window_s));
        reserved.extend(rows);
        if let Some(b) = &group.battery {
            let step_s = f64::from(STEP_S);
            let entry = batteries.entry(group.id).or_default();
            entry.insert("hindsight", BatteryFigures::of_plan(b, &battery, step_s));
            entry.insert(
                "hindsight_reserved",
                BatteryFigures::of_plan(b, &reserved_w, step_s),
            );
            hindsight_battery[g] = battery;
            reserved_battery[g] = reserved_w;
        }
    }
    let scope = |only: Option<usize>| -> BTreeMap<&'static str, PolicyFigures> {
        let mut policies = BTreeMap::new();
        for (name, (load, delivered, rows, battery)) in [
            (
                "smart",
                (
                    &trace.group_load_w,
                    &smart_delivered,
                    &smart_rows,
                    &smart_battery,
                ),
            ),
            (
                "uncontrolled",
                (
                    &uncontrolled.group_load_w,
                    &uncontrolled.delivered_wh,
                    &uncontrolled.rows,
                    &idle,
                ),
            ),
            (
                "equal_share",
                (&equal.group_load_w, &equal.delivered_wh, &equal.rows, &idle),
            ),
        ] {
            let seconds = Seconds {
                load_w: load,
                trace,
            };
            policies.insert(
                name,
                second_figures(rec, seconds, delivered, rows, battery, only),
            );
        }
        policies.insert(
            "hindsight",
            figures(rec, &hindsight, &hindsight_battery, only),
        );
        policies.insert(
            "hindsight_reserved",
            figures(rec, &reserved, &reserved_battery, only),
        );
        policies
    };
    PolicyReport {
        policies: scope(None),
        groups: per_group(rec, scope),
        latency_ms: latency(rec),
        resolution_s: 1,
        batteries,
    }
}

/// A policy's 1-second group loads (W; the batteries' power included) and the trace they
/// were measured or replayed over.
#[derive(Clone, Copy)]
struct Seconds<'a> {
    load_w: &'a [Vec<f32>],
    trace: &'a Trace,
}

/// One policy's figures from its 1-second group loads, each car's energy by departure and its
/// average power per step and the batteries' (for the cost).
fn second_figures(
    rec: &SimRecord,
    Seconds { load_w, trace }: Seconds<'_>,
    delivered_wh: &BTreeMap<usize, f64>,
    rows: &Rows,
    battery_w: &[Vec<f64>],
    only: Option<usize>,
) -> PolicyFigures {
    let day_start = rec.config.day_start;
    let window = i64::from(trace.settings.reaction_window_s());
    let mut seconds = 0;
    let mut after_reaction = 0;
    let mut max_over: f64 = 0.0;
    for (g, group) in in_scope(&rec.scenario.groups, only) {
        let members: Vec<&crate::run::VehicleRecord> = group_members(rec, g)
            .into_iter()
            .map(|i| &rec.vehicles[i])
            .collect();
        for (offset, w) in load_w[g].iter().enumerate() {
            let t = trace.start_ts + offset as i64;
            let k = ((t - day_start) / STEP_S as i64) as usize;
            let present = members
                .iter()
                .filter(|v| v.plugged_ts <= t && t < v.departure_ts)
                .count() as f64;
            // 1 W per car plugged in: whole-watt rounding of the profiles.
            let over = f64::from(*w) - group.pv_w[k] as f64 - group.capacity_at(k) as f64;
            if over > present {
                seconds += 1;
                max_over = max_over.max(over);
                let reacting = members
                    .iter()
                    .any(|v| v.plugged_ts <= t && t < v.plugged_ts + window);
                if !reacting {
                    after_reaction += 1;
                }
            }
        }
    }
    let end_ts = rec.config.day_start + (rec.config.end_step() as i64) * STEP_S as i64;
    let (mut due, mut met, mut requested, mut delivered) = (0, 0, 0.0, 0.0);
    for i in plugged_in(rec, only) {
        let v = &rec.vehicles[i];
        let got = delivered_wh.get(&i).copied().unwrap_or(0.0);
        requested += v.arrival.wanted_wh as f64;
        delivered += got;
        let Some(acc) = v.accepted_wh.filter(|_| v.opted_in) else {
            continue;
        };
        if v.departure_ts > end_ts {
            continue;
        }
        due += 1;
        let tolerance = v.met_tolerance_wh(Some(trace.settings.profile_latency_s));
        if got >= acc.min(v.arrival.wanted_wh) as f64 - tolerance {
            met += 1;
        }
    }
    let mut load = in_scope_only(battery_w, only);
    for (i, row) in rows {
        if let Some(g) = group_of(rec, *i).filter(|g| only.is_none_or(|o| o == *g)) {
            for (k, w) in row.iter().enumerate() {
                load[g][k] += w;
            }
        }
    }
    PolicyFigures {
        seconds_over_capacity: seconds,
        max_overload_kw: round3(max_over / 1_000.0),
        seconds_over_after_reaction: after_reaction,
        energy_requested_kwh: round3(requested / 1_000.0),
        energy_delivered_kwh: round3(delivered / 1_000.0),
        accepted_due: due,
        accepted_met: met,
        cost_eur: (cost_eur(rec, &load) * 100.0).round() / 100.0,
    }
}

/// The hindsight optimum of group index `g`: one LP over the day with every car known from
/// the start, each as best effort for all it takes, within the group's capacity and PV.
///
/// In continuous time the LP runs in [`HINDSIGHT_STEP_S`] steps, each car from the minute it
/// plugs in to the minute it leaves (both whole: still an upper bound, by at most a minute at
/// each end). In quarter-hour steps, its whole arrival and departure steps gave every car up to
/// 15 minutes at each end that no policy could use (on the generated day, about 3 % of the
/// energy hindsight delivered). Its rows come back as the quarter hours' mean power.
///
/// With `reserve_window_s` (continuous time), the LP also keeps smart's arrival reserve free
/// in every minute ([`reserve_in_steps`]): the most energy a policy can deliver that keeps the
/// group safe from an arrival's first second without knowing when cars arrive.
///
/// A group's stationary battery is in the LP, from its energy at the start of the day; its
/// power per quarter hour (W, + charging; all zero without one) comes back with the rows.
fn hindsight_rows(rec: &SimRecord, g: usize, reserve_window_s: Option<u32>) -> (Rows, Vec<f64>) {
    let group = &rec.scenario.groups[g];
    let no_battery = vec![0.0; STEPS_PER_DAY];
    let mut inputs = day_inputs(rec, g, VehicleClass::BestEffort);
    if inputs.vehicles.is_empty() {
        return (Rows::new(), no_battery);
    }
    inputs.pv_w = group.pv_w.clone();
    inputs.battery = group.battery.as_ref().map(|b| evflex_schedule::Battery {
        capacity_wh: b.capacity_wh,
        energy_wh: b.energy_wh,
        max_charge_w: b.max_w,
        max_discharge_w: b.max_w,
        efficiency_permille: b.efficiency_permille,
    });
    inputs.price_micro_eur_per_kwh = rec.scenario.price_micro_eur_per_kwh.clone();
    let per_step = if rec.config.continuous.is_some() {
        STEP_S / HINDSIGHT_STEP_S
    } else {
        1
    };
    if per_step > 1 {
        let fine = |series: &[i64]| -> Vec<i64> {
            series
                .iter()
                .flat_map(|x| std::iter::repeat_n(*x, per_step as usize))
                .collect()
        };
        inputs.time_step_s = HINDSIGHT_STEP_S;
        inputs.horizon *= per_step as usize;
        inputs.capacity_w = fine(&inputs.capacity_w);
        inputs.other_load_w = fine(&inputs.other_load_w);
        inputs.pv_w = fine(&inputs.pv_w);
        inputs.price_micro_eur_per_kwh = fine(&inputs.price_micro_eur_per_kwh);
        let end = rec.config.end_step() * per_step as usize;
        for v in &mut inputs.vehicles {
            let Some(r) = v.id.parse::<usize>().ok().and_then(|i| rec.vehicles.get(i)) else {
                continue;
            };
            (v.arrival, v.departure) = present_in_steps(
                r.plugged_ts - rec.config.day_start,
                r.departure_ts - rec.config.day_start,
                HINDSIGHT_STEP_S,
                end,
            );
        }
    }
    if let Some(window_s) = reserve_window_s {
        let reserve = reserve_in_steps(rec, g, inputs.time_step_s, inputs.horizon, window_s);
        for (c, r) in inputs.capacity_w.iter_mut().zip(reserve) {
            *c = (*c - r).max(0);
        }
    }
    let opts = SolveOptions {
        time_limit_ms: 60_000,
        ..SolveOptions::default()
    };
    let quarters = |row: &[i64]| -> Vec<f64> {
        row.chunks(per_step as usize)
            .map(|c| c.iter().map(|w| *w as f64).sum::<f64>() / per_step as f64)
            .collect()
    };
    match evflex_schedule::solve(&inputs, &opts, None) {
        Ok(schedule) => {
            let rows = schedule
                .vehicle_ids
                .iter()
                .zip(&schedule.power_w)
                .filter_map(|(id, row)| Some((id.parse().ok()?, quarters(row))))
                .collect();
            let mut battery = quarters(&schedule.battery_w);
            battery.resize(STEPS_PER_DAY, 0.0);
            (rows, battery)
        }
        Err(e) => {
            tracing::warn!(group = group.id, error = %e, "hindsight optimum: the LP failed");
            (Rows::new(), no_battery)
        }
    }
}

/// The arrival reserve of group index `g` in each of `steps` steps of `step_s` (W), by the rule
/// evflex applies ([`evflex::engine::reserve::group_reserve_w`]): the group's own setting, or
/// the largest ratings among its free charge points for the arrivals one reaction window of
/// `window_s` may bring at the group's arrival rate (cars plugged in over the 24 hours before
/// the step). Where it errs, it errs low, so the LP stays an upper bound: a charge point counts
/// as taken in every step a car is there for part of ([`present_in_steps`]), and only the
/// group's capacity is reduced, not the per-phase limits of its connection.
fn reserve_in_steps(
    rec: &SimRecord,
    g: usize,
    step_s: u32,
    steps: usize,
    window_s: u32,
) -> Vec<i64> {
    let group_id = rec.scenario.groups[g].id;
    let points: Vec<usize> = (0..rec.scenario.charge_points.len())
        .filter(|c| rec.scenario.charge_points[*c].group_id == group_id)
        .collect();
    let ratings: Vec<i64> = points
        .iter()
        .map(|c| rec.scenario.charge_points[*c].rated_w())
        .collect();
    let stays: Vec<Stay> = rec
        .vehicles
        .iter()
        .filter_map(|v| {
            let point = points.iter().position(|c| Some(*c) == v.cp)?;
            let (from, until) = (
                v.plugged_ts - rec.config.day_start,
                v.departure_ts - rec.config.day_start,
            );
            Some(Stay {
                point,
                plugged_s: from,
                steps: present_in_steps(from, until, step_s, steps),
            })
        })
        .collect();
    let rule = ReserveRule {
        window_s,
        configured_w: rec.config.arrival_reserve_w,
    };
    (0..steps)
        .map(|m| rule.reserve_w(&ratings, &stays, m, i64::from(step_s)))
        .collect()
}

/// A car's stay at one of a group's charge points.
struct Stay {
    /// The charge point (index into the group's ratings).
    point: usize,
    /// When it plugged in (s of the day).
    plugged_s: i64,
    /// The steps it is there for, `(first, first gone)`.
    steps: (usize, usize),
}

/// evflex's reserve rule as the demo configures it.
struct ReserveRule {
    window_s: u32,
    configured_w: Option<i64>,
}

impl ReserveRule {
    /// The reserve in step `m` of `step_s` (W) of a group with charge points rated `ratings_w`
    /// and the cars `stays`.
    fn reserve_w(&self, ratings_w: &[i64], stays: &[Stay], m: usize, step_s: i64) -> i64 {
        let t = m as i64 * step_s;
        let free: Vec<i64> = (0..ratings_w.len())
            .filter(|p| {
                !stays
                    .iter()
                    .any(|s| s.point == *p && (s.steps.0..s.steps.1).contains(&m))
            })
            .map(|p| ratings_w[p])
            .collect();
        let arrivals_24h = stays
            .iter()
            .filter(|s| s.plugged_s <= t && s.plugged_s > t - 86_400)
            .count() as i64;
        evflex::engine::reserve::group_reserve_w(
            &free,
            arrivals_24h,
            f64::from(self.window_s),
            self.configured_w,
        )
    }
}

/// The step of the hindsight optimum in continuous time (s).
const HINDSIGHT_STEP_S: u32 = 60;

/// The steps of `step_s` in which a car plugged in from second `from` to second `until` of the
/// day may charge, `(first, first gone)`: every step it is there for at least part of (so the
/// LP bounds from above what it can draw), within `..end` and at least one.
fn present_in_steps(from: i64, until: i64, step_s: u32, end: usize) -> (usize, usize) {
    let step = i64::from(step_s.max(1));
    let first = (from.max(0) / step) as usize;
    let gone = (until.max(0) + step - 1) / step;
    (first, (gone as usize).clamp(first + 1, end.max(first + 1)))
}

/// p50/p99/max of the sessions' first-profile latencies.
fn latency(rec: &SimRecord) -> Latency {
    let mut ms: Vec<f64> = rec
        .vehicles
        .iter()
        .filter_map(|v| v.first_profile_after)
        .map(|d| d.as_secs_f64() * 1_000.0)
        .collect();
    if ms.is_empty() {
        return Latency::default();
    }
    ms.sort_by(f64::total_cmp);
    let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
    let r = |x: f64| (x * 10.0).round() / 10.0;
    Latency {
        p50: r(at(0.5)),
        p99: r(at(0.99)),
        max: r(ms[ms.len() - 1]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hindsight_counts_each_minute_a_car_is_there() {
        // Plugged in at 10:00:30, gone at 10:20:00: minutes 600..620 (the minute it came
        // whole); in quarter hours it had 10:00–10:30, ten minutes more than it was there.
        assert_eq!(present_in_steps(36_030, 37_200, 60, 1_440), (600, 620));
        assert_eq!(present_in_steps(36_030, 37_201, 60, 1_440), (600, 621));
        assert_eq!(present_in_steps(36_030, 37_200, 900, 96), (40, 42));
        // Never empty, never past the day.
        assert_eq!(present_in_steps(36_030, 36_030, 60, 1_440), (600, 601));
        assert_eq!(present_in_steps(86_000, 90_000, 60, 1_440), (1_433, 1_440));
    }

    #[test]
    fn hindsight_keeps_the_reserve_of_the_free_points_once_cars_arrive() {
        // A 22 kW and an 11 kW point; 200 cars a day plugged in before 08:00 (at the 11 kW
        // point, all in minute 466), then a car on the 22 kW point from 08:00 to 08:20 and
        // one on the 11 kW point from 08:10 to 08:15.
        let ratings = [22_080, 11_040];
        let mut stays: Vec<Stay> = (0..200)
            .map(|i| Stay {
                point: 1,
                plugged_s: 28_000 - i,
                steps: (466, 467),
            })
            .collect();
        stays.push(Stay {
            point: 0,
            plugged_s: 28_800,
            steps: (480, 500),
        });
        stays.push(Stay {
            point: 1,
            plugged_s: 29_400,
            steps: (490, 495),
        });
        let rule = ReserveRule {
            window_s: 6,
            configured_w: None,
        };
        let at = |m: usize| rule.reserve_w(&ratings, &stays, m, 60);
        // Before any arrival the group has no arrival rate: nothing kept.
        assert_eq!(at(0), 0);
        // Busy from then on (200 a day, 6 s windows: one car to cover), the largest free point.
        assert_eq!(at(470), 22_080);
        // While the 22 kW point is taken, the 11 kW one; while both are, none.
        assert_eq!(at(480), 11_040);
        assert_eq!(at(489), 11_040);
        assert_eq!(at(490), 0);
        assert_eq!(at(494), 0);
        assert_eq!(at(495), 11_040);
        assert_eq!(at(500), 22_080);
        // A group's own setting replaces the rule, within what the free points draw.
        let set = ReserveRule {
            window_s: 6,
            configured_w: Some(5_000),
        };
        assert_eq!(set.reserve_w(&ratings, &stays, 0, 60), 5_000);
        assert_eq!(set.reserve_w(&ratings, &stays, 492, 60), 0);
    }

    #[test]
    fn the_minimum_share_is_six_amps_on_the_cars_phases() {
        assert_eq!(min_share_w(3), 4_140.0);
        assert_eq!(min_share_w(1), 1_380.0);
    }
}
