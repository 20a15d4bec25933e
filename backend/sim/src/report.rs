//! The day's figures from what the simulator measured, and the uncontrolled counterfactual.
//!
//! **Counterfactual** (no smart charging): the same vehicles on the same charge points at the
//! same times, each drawing min(vehicle maximum, charge-point rating) from plug-in until it has
//! what it takes or leaves, with no group limit. It is computed from the arrivals, not by
//! running evflex a second time (the charging physics are the simulator's own, so a second run
//! would give the same numbers; evflex plays no part when nobody opts in).
//!
//! **Cost** of a group's step: its net grid import max(EV load − PV, 0) × 15 min × the NL
//! day-ahead price of the hour; summed over groups and steps.
//!
//! **Accepted request met**: the energy measured between plug-in and departure is at least
//! min(accepted energy, what the vehicle takes) − tolerance. Tolerance: the optimiser's 1 Wh
//! plus 1 Wh per step plugged in, because evflex re-plans every step from the session kWh the
//! CPO reports rounded to whole Wh, and profiles carry whole watts.
//!
//! Misses are labelled with their likely cause: a vehicle slower than its charge point
//! (evflex plans with the charge point's rating), or a vehicle that is not opted in arriving in
//! the group after the request was accepted (evflex fixes its full power; admission control does
//! not foresee it).
//!
//! **Overload**: a group's measured net load above its capacity at that step by more than
//! 1 W per vehicle plugged in (whole-watt rounding of the profiles). An overload is
//! *unavoidable* when the vehicles that are not opted in alone exceed the capacity.

use super::run::SimRecord;
use super::{STEP_S, STEPS_PER_DAY};
use evflex_schedule::{GroupInputs, Vehicle, VehicleClass};
use std::fmt;

/// Length of one step (h).
const STEP_H: f64 = STEP_S as f64 / 3_600.0;

/// One accepted request that was not met.
#[derive(Debug, Clone, PartialEq)]
pub struct Miss {
    /// OCPI session id.
    pub session_id: String,
    /// Accepted energy (Wh).
    pub accepted_wh: i64,
    /// Measured by departure (Wh).
    pub delivered_wh: f64,
    /// The vehicle draws less than its charge point's rating (evflex does not know the
    /// vehicle's maximum power; OCPI gives none).
    pub slower_vehicle: bool,
    /// A vehicle that is not opted in plugged into the same group after the request was
    /// accepted; evflex then fixes its full power and the guarantee may no longer fit
    /// (admission control does not foresee later uncontrolled arrivals).
    pub later_uncontrolled: bool,
}

/// One group's line.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupLine {
    /// Group id.
    pub id: i64,
    /// Capacity outside cuts (W).
    pub capacity_w: i64,
    /// Lowest capacity in the window (W).
    pub min_capacity_w: i64,
    /// PV peak (W).
    pub pv_peak_w: i64,
    /// Highest measured net load (W).
    pub peak_w: f64,
    /// Highest net load minus capacity over the window (W; ≤ 0 when always within).
    pub worst_margin_w: f64,
    /// Steps over capacity.
    pub overload_steps: usize,
    /// …of which the uncontrolled vehicles alone exceed the capacity.
    pub unavoidable_steps: usize,
    /// Highest net load without smart charging (W).
    pub uncontrolled_peak_w: f64,
    /// Steps over capacity without smart charging.
    pub uncontrolled_overload_steps: usize,
}

/// The three-phase group (issue 12): its node limits and how often a node's phase was over
/// its limit, measured and in the uncontrolled counterfactual. A step counts when any phase of
/// the connection or the cabinet carries more than its limit plus [`PHASE_TOLERANCE_A`].
#[derive(Debug, Clone, PartialEq)]
pub struct PhaseFigures {
    /// Group id.
    pub group_id: i64,
    /// The connection's and the cabinet's limit per phase (A).
    pub limits_a: (i64, i64),
    /// Steps with a phase over its limit, measured.
    pub over_steps: usize,
    /// Highest phase current as a share of its limit, measured.
    pub max_share: f64,
    /// Steps with a phase over its limit, uncontrolled.
    pub uncontrolled_over_steps: usize,
    /// Highest phase current as a share of its limit, uncontrolled.
    pub uncontrolled_max_share: f64,
    /// Cars in the group that drew on one phase only.
    pub single_phase_cars: usize,
}

/// Rounding allowance of a phase current (A): the meter values' 0.1 A.
pub const PHASE_TOLERANCE_A: f64 = 0.1;

/// Steps over a limit and the highest share of it, of a per-step (connection, cabinet) series.
fn phase_overloads(
    load: &[([f64; 3], [f64; 3])],
    limits: (i64, i64),
    steps: std::ops::Range<usize>,
) -> (usize, f64) {
    let (conn, cab) = (limits.0 as f64, limits.1 as f64);
    let mut over = 0;
    let mut share: f64 = 0.0;
    for (c, k) in steps.filter_map(|t| load.get(t)) {
        let worst = c
            .iter()
            .map(|a| a / conn)
            .chain(k.iter().map(|a| a / cab))
            .fold(0.0, f64::max);
        share = share.max(worst);
        if c.iter().any(|a| *a > conn + PHASE_TOLERANCE_A)
            || k.iter().any(|a| *a > cab + PHASE_TOLERANCE_A)
        {
            over += 1;
        }
    }
    (over, share)
}

/// The three-phase group's figures of `rec`, `None` without such a group.
pub fn phase_figures(rec: &SimRecord) -> Option<PhaseFigures> {
    let group = rec.scenario.groups.iter().find(|g| g.tree.is_some())?;
    let tree = group.tree.as_ref()?;
    let limits = (tree.connection_a, tree.cabinet_a);
    let window = rec.config.first_step()..rec.config.end_step();
    let (over_steps, max_share) = phase_overloads(&rec.phase_load_a, limits, window.clone());
    let cf = uncontrolled_phase_load(rec, group.id);
    let (uncontrolled_over_steps, uncontrolled_max_share) = phase_overloads(&cf, limits, window);
    Some(PhaseFigures {
        group_id: group.id,
        limits_a: limits,
        over_steps,
        max_share,
        uncontrolled_over_steps,
        uncontrolled_max_share,
        single_phase_cars: rec
            .vehicles
            .iter()
            .filter(|v| v.car_phases == 1 && v.cp.is_some())
            .count(),
    })
}

/// The counterfactual's current per node phase of group `group_id` per step (A): each
/// vehicle's [`uncontrolled`] row on its charge point's wiring.
fn uncontrolled_phase_load(rec: &SimRecord, group_id: i64) -> Vec<([f64; 3], [f64; 3])> {
    let mut load = vec![([0.0; 3], [0.0; 3]); STEPS_PER_DAY];
    let Some(g) = rec.scenario.groups.iter().position(|g| g.id == group_id) else {
        return load;
    };
    for (i, row) in group_members(rec, g).into_iter().zip(baseline_rows(rec, g)) {
        let v = &rec.vehicles[i];
        let cp = &rec.scenario.charge_points[v.cp.unwrap_or_default()];
        let cabinet = cp.wiring.is_some_and(|(_, c)| c);
        for (t, w) in row.iter().enumerate() {
            let a = cp.phase_currents(*w as f64, v.car_phases);
            let (connection, cab) = &mut load[t];
            for (ph, amps) in a.into_iter().enumerate() {
                connection[ph] += amps;
                if cabinet {
                    cab[ph] += amps;
                }
            }
        }
    }
    load
}

/// Transactions and gas of one kind of chain work (outbox kind), from the stored receipts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxLine {
    /// Outbox kind (`status_commit`, `settlement`, `asset_upsert`, …).
    pub kind: String,
    /// Mined transactions (a batch is one).
    pub transactions: i64,
    /// Gas they used.
    pub gas_used: i64,
}

/// The chain's side of the day, read after the outbox drained.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainFigures {
    /// Seconds waited for the writer to drain the outbox after the day.
    pub drain_wait_s: f64,
    /// Rows still to send (`pending`/`sent`, not awaiting funds) when the wait ended; 0: drained.
    pub left_in_outbox: i64,
    /// Every transaction mined since the deployment and the gas they used, read from the
    /// chain's blocks (`None` when they could not be read).
    pub chain_totals: Option<(u64, u64)>,
    /// Transactions and gas per outbox kind, from the receipts the writer stored.
    pub transactions: Vec<TxLine>,
    /// Sessions settled on chain (`SessionSettled` events).
    pub settlements: usize,
    /// FLEX minted by those settlements (wei, 18 decimals).
    pub flex_minted_wei: u128,
    /// FlexToken `totalSupply` (wei; `None` when it could not be read).
    pub flex_supply_wei: Option<u128>,
    /// Bills by status: settled / awaiting funds / pending / failed / unbillable.
    pub bills: BillCounts,
    /// What `evflex audit` finds: the differences, or why the audit could not run.
    pub audit: Result<Vec<String>, String>,
}

/// Bills by status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillCounts {
    /// Settled on chain.
    pub settled: usize,
    /// Skipped by the contract for an insufficient user balance (retried after a top-up).
    pub awaiting_funds: usize,
    /// Settlement enqueued, not yet on chain.
    pub pending: usize,
    /// Refused for good.
    pub failed: usize,
    /// Never signed or settled (`bills.status_reason` says why).
    pub unbillable: usize,
    /// Priced by the CDR's `total_cost` (billing, "Price sources").
    pub by_cdr_total_cost: usize,
    /// Priced by the OCPI tariff the CDR or its session names.
    pub by_tariff: usize,
    /// Priced by the flat `EVFLEX_CPO_TARIFF`.
    pub by_flat: usize,
}

/// How many audit differences the summary lists before "… and N more".
const AUDIT_LINES: usize = 10;

fn flex(wei: u128) -> String {
    format!("{:.3} FLEX", wei as f64 / 1e18)
}

impl ChainFigures {
    fn fmt_rows(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<40} {v}");
        row(
            f,
            "chain outbox after the day",
            if self.left_in_outbox == 0 {
                format!("drained ({:.1} s wait)", self.drain_wait_s)
            } else {
                format!(
                    "NOT drained: {} row(s) still to send after {:.0} s",
                    self.left_in_outbox, self.drain_wait_s
                )
            },
        )?;
        row(
            f,
            "on-chain transactions / gas",
            match self.chain_totals {
                Some((tx, gas)) => format!("{tx} / {gas} (every transaction since the deployment)"),
                None => "unknown (blocks could not be read)".to_owned(),
            },
        )?;
        let per_kind = self
            .transactions
            .iter()
            .map(|l| format!("{} {} / {}", l.kind, l.transactions, l.gas_used))
            .collect::<Vec<_>>()
            .join("; ");
        row(
            f,
            "  of which outbox work (stored receipts)",
            if per_kind.is_empty() {
                "none".to_owned()
            } else {
                per_kind
            },
        )?;
        row(
            f,
            "FLEX minted",
            format!(
                "{} in {} settlement(s) (FlexToken supply {})",
                flex(self.flex_minted_wei),
                self.settlements,
                self.flex_supply_wei
                    .map_or_else(|| "unknown".to_owned(), flex)
            ),
        )?;
        let b = &self.bills;
        row(
            f,
            "bills settled / awaiting funds / pending",
            format!(
                "{} / {} / {} (failed {}, unbillable {})",
                b.settled, b.awaiting_funds, b.pending, b.failed, b.unbillable
            ),
        )?;
        row(
            f,
            "bills by source",
            format!(
                "CDR total_cost {} / tariff {} / flat {}",
                b.by_cdr_total_cost, b.by_tariff, b.by_flat
            ),
        )?;
        match &self.audit {
            Ok(d) if d.is_empty() => row(f, "evflex audit", "clean".to_owned()),
            Ok(d) => {
                row(f, "evflex audit", format!("{} difference(s)", d.len()))?;
                for line in d.iter().take(AUDIT_LINES) {
                    writeln!(f, "    - {line}")?;
                }
                if d.len() > AUDIT_LINES {
                    writeln!(f, "    … and {} more", d.len() - AUDIT_LINES)?;
                }
                Ok(())
            }
            Err(e) => row(f, "evflex audit", format!("could not run: {e}")),
        }
    }
}

/// The day in figures.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// Demand label.
    pub demand: String,
    /// Simulated window (`HH:MM–HH:MM`).
    pub window: String,
    /// Arrivals in the window.
    pub arrivals: usize,
    /// Vehicles that found a free charge point.
    pub plugged: usize,
    /// Vehicles turned away (no free charge point).
    pub turned_away: usize,
    /// Opted in (of the plugged).
    pub opted_in: usize,
    /// Requests accepted at once.
    pub accepted_at_once: usize,
    /// Requests accepted after taking the offer.
    pub accepted_offer: usize,
    /// Opted-in drivers without an accepted request.
    pub not_accepted: usize,
    /// Energy the plugged vehicles would take before they stop by themselves (full, or the
    /// driver's own limit; with real sessions, the energy the car took that day) (Wh): what
    /// `delivered_wh` is measured against.
    pub wanted_wh: f64,
    /// Energy the opted-in drivers asked evflex for in their charging requests (Wh). With real
    /// sessions it is the driver's own estimate and may exceed what the car takes.
    pub requested_wh: f64,
    /// The part of `requested_wh` evflex guaranteed: accepted requests, at once or through an
    /// offer (Wh; never more than `requested_wh`).
    pub accepted_wh: f64,
    /// Energy delivered (Wh; never more than `wanted_wh`).
    pub delivered_wh: f64,
    /// Energy delivered without smart charging (Wh).
    pub uncontrolled_delivered_wh: f64,
    /// Accepted requests whose departure is in the window.
    pub accepted_due: usize,
    /// …of which met.
    pub accepted_met: usize,
    /// …and the misses.
    pub misses: Vec<Miss>,
    /// Uncontrolled (not opted-in) vehicles that drew full power in their first step.
    pub uncontrolled_full_power: usize,
    /// Uncontrolled vehicles.
    pub uncontrolled: usize,
    /// Profiles evflex sent to sessions that are not opted in (should be 0).
    pub profiles_to_uncontrolled: usize,
    /// Groups.
    pub groups: Vec<GroupLine>,
    /// The three-phase group's per-phase figures, smart against uncontrolled.
    pub phases: Option<PhaseFigures>,
    /// Energy cost with smart charging (EUR).
    pub cost_eur: f64,
    /// Energy cost without (EUR).
    pub uncontrolled_cost_eur: f64,
    /// Ticks, solves stored / failed, set-points sent / failed.
    pub ticks: (usize, usize, usize, usize, usize),
    /// How the CPO answered evflex's profiles, and what evflex did about it.
    pub profile_answers: ProfileAnswers,
    /// Mean tick time (ms).
    pub mean_tick_ms: f64,
    /// Meter readings and CDRs posted, calls refused.
    pub posted: (usize, usize, usize),
    /// Extra lines (database and chain figures the caller adds).
    pub extra: Vec<(String, String)>,
    /// The chain's side of the day, once the outbox drained (`None` without a chain).
    pub chain: Option<ChainFigures>,
    /// Wall time (s).
    pub wall_s: f64,
}

/// How the CPO answered evflex's profile PUTs over the day, and what evflex did about it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProfileAnswers {
    /// Answers per `ChargingProfileResponse` result, as the CPO counted them.
    pub cpo: Vec<(String, usize)>,
    /// Set-points evflex sent again after a `TOO_OFTEN` back-off.
    pub deferred: usize,
    /// Set-points evflex gave up on because the CPO refused them.
    pub rejected: usize,
}

/// Per group and step of the day: the counterfactual EV load (W), and the energy it delivers
/// (Wh). Each group's vehicles are the optimiser's own uncontrolled baseline
/// ([`evflex_schedule::baseline`]): full power from plug-in until the energy is in, the window
/// cut at the end of the simulated day.
pub fn uncontrolled(rec: &SimRecord) -> (Vec<Vec<f64>>, f64) {
    let groups = &rec.scenario.groups;
    let mut load = vec![vec![0.0; STEPS_PER_DAY]; groups.len()];
    let mut total_wh = 0.0;
    for (g, group_load) in load.iter_mut().enumerate() {
        for row in baseline_rows(rec, g) {
            for (k, w) in row.iter().enumerate() {
                group_load[k] += *w as f64;
                total_wh += *w as f64 * STEP_H;
            }
        }
    }
    (load, total_wh)
}

/// The vehicles of group index `g` plugged in within the window, by index into
/// [`SimRecord::vehicles`], in order.
pub(crate) fn group_members(rec: &SimRecord, g: usize) -> Vec<usize> {
    let end = rec.config.end_step();
    let id = rec.scenario.groups[g].id;
    rec.vehicles
        .iter()
        .enumerate()
        .filter(|(_, v)| {
            v.cp.is_some_and(|cp| rec.scenario.charge_points[cp].group_id == id)
                && !v.plugged_steps(end).is_empty()
        })
        .map(|(i, _)| i)
        .collect()
}

/// Group index `g`'s day as optimiser inputs: its [`group_members`] as vehicles of `class`
/// wanting all they take (ids zero-padded indexes, so rows in id order keep the members'
/// order), its capacity per step; no other load, PV, prices or battery.
pub(crate) fn day_inputs(rec: &SimRecord, g: usize, class: VehicleClass) -> GroupInputs {
    let end = rec.config.end_step();
    let group = &rec.scenario.groups[g];
    let vehicles = group_members(rec, g)
        .into_iter()
        .map(|i| {
            let v = &rec.vehicles[i];
            // In continuous time: each car's whole arrival and departure steps (it is there for
            // part of them, so this bounds what any policy can give it from above) and its
            // battery's taper (the simulated battery's curve).
            let (departure, battery) = match &rec.config.continuous {
                Some(live) => (
                    (v.departure_ts - rec.config.day_start)
                        .max(0)
                        .unsigned_abs()
                        .div_ceil(u64::from(STEP_S)) as usize,
                    Some(crate::live::Battery::of(&v.arrival, live.knee_of(i))),
                ),
                None => (v.arrival.departure_step, None),
            };
            Vehicle {
                id: format!("{i:08}"),
                arrival: v.arrival.arrival_step,
                departure: departure.min(end),
                max_power_w: v.max_w,
                min_power_w: 0,
                energy_requested_wh: v.arrival.wanted_wh,
                battery_capacity_wh: battery.map(|b| b.capacity_wh.round() as i64),
                energy_on_arrival_wh: battery.map(|b| b.energy_wh.round() as i64),
                class,
                efficiency_permille: 1_000,
                taper_knee_permille: battery.map(|b| b.taper_knee_permille()),
                energy_wanted_wh: None,
            }
        })
        .collect();
    GroupInputs {
        group_id: u64::try_from(group.id).unwrap_or_default(),
        start_timestep: 0,
        time_step_s: STEP_S,
        horizon: STEPS_PER_DAY,
        capacity_w: (0..STEPS_PER_DAY).map(|k| group.capacity_at(k)).collect(),
        other_load_w: vec![0; STEPS_PER_DAY],
        pv_w: vec![0; STEPS_PER_DAY],
        price_micro_eur_per_kwh: vec![0; STEPS_PER_DAY],
        battery: None,
        vehicles,
        topology: None,
    }
}

/// The counterfactual rows (W per step of the day) of group index `g`'s vehicles, in the order
/// of [`group_members`].
pub(crate) fn baseline_rows(rec: &SimRecord, g: usize) -> Vec<Vec<i64>> {
    evflex_schedule::baseline(&day_inputs(rec, g, VehicleClass::Uncontrolled))
}

#[allow(clippy::needless_range_loop)] // steps index several per-step series at once
pub(crate) fn cost_eur(rec: &SimRecord, load: &[Vec<f64>]) -> f64 {
    let (first, end) = (rec.config.first_step(), rec.config.end_step());
    let mut micro = 0.0;
    for (g, group) in rec.scenario.groups.iter().enumerate() {
        for k in first..end {
            let net = (load[g][k] - group.pv_w[k] as f64).max(0.0);
            micro += net * STEP_H / 1_000.0 * rec.scenario.price_micro_eur_per_kwh[k] as f64;
        }
    }
    micro / 1e6
}

impl Summary {
    /// The figures of `rec`.
    #[allow(clippy::needless_range_loop)] // steps index several per-step series at once
    pub fn of(rec: &SimRecord) -> Self {
        let (first, end) = (rec.config.first_step(), rec.config.end_step());
        let in_window: Vec<_> = rec
            .vehicles
            .iter()
            .filter(|v| (first..end).contains(&v.arrival.arrival_step))
            .collect();
        let plugged: Vec<_> = in_window.iter().filter(|v| v.cp.is_some()).collect();
        let mut misses = Vec::new();
        let mut due = 0;
        for v in plugged.iter().filter(|v| v.opted_in) {
            let Some(acc) = v.accepted_wh else { continue };
            // Due: it left within the window (a departure after it is not due yet).
            if v.departure_ts > rec.config.day_start + end as i64 * i64::from(super::STEP_S) {
                continue;
            }
            due += 1;
            let goal = acc.min(v.arrival.wanted_wh) as f64;
            let latency = rec.config.continuous.as_ref().map(|c| c.profile_latency_s);
            if v.delivered_wh < goal - v.met_tolerance_wh(latency) {
                let cp = &rec.scenario.charge_points[v.cp.unwrap_or_default()];
                let window = v.plugged_steps(end);
                let later_uncontrolled = rec.vehicles.iter().any(|o| {
                    !o.opted_in
                        && o.cp
                            .is_some_and(|c| rec.scenario.charge_points[c].group_id == cp.group_id)
                        && window.contains(&o.arrival.arrival_step)
                        && (o.arrival.arrival_step, o.arrival.id)
                            > (v.arrival.arrival_step, v.arrival.id)
                });
                misses.push(Miss {
                    session_id: v.session_id.clone(),
                    accepted_wh: acc,
                    delivered_wh: v.delivered_wh,
                    slower_vehicle: v.max_w < cp.rated_w(),
                    later_uncontrolled,
                });
            }
        }
        let uncontrolled_v: Vec<_> = plugged.iter().filter(|v| !v.opted_in).collect();
        let full = uncontrolled_v
            .iter()
            .filter(|v| {
                let k = v.arrival.arrival_step;
                let full = (v.max_w as f64).min(v.arrival.wanted_wh as f64 / STEP_H);
                (v.power_w[k] - full).abs() < 0.5
            })
            .count();
        let (cf_load, cf_total) = uncontrolled(rec);
        let groups = rec
            .scenario
            .groups
            .iter()
            .enumerate()
            .map(|(g, group)| {
                let mut line = GroupLine {
                    id: group.id,
                    capacity_w: group.capacity_w,
                    min_capacity_w: (first..end)
                        .map(|k| group.capacity_at(k))
                        .min()
                        .unwrap_or(group.capacity_w),
                    pv_peak_w: group.pv_peak_w,
                    peak_w: 0.0,
                    worst_margin_w: f64::NEG_INFINITY,
                    overload_steps: 0,
                    unavoidable_steps: 0,
                    uncontrolled_peak_w: 0.0,
                    uncontrolled_overload_steps: 0,
                };
                for k in first..end {
                    let cap = group.capacity_at(k) as f64;
                    let pv = group.pv_w[k] as f64;
                    let members: Vec<_> = rec
                        .vehicles
                        .iter()
                        .filter(|v| {
                            v.cp.is_some_and(|c| rec.scenario.charge_points[c].group_id == group.id)
                                && v.plugged_steps(end).contains(&k)
                        })
                        .collect();
                    let net = rec.group_load_w[g][k] - pv;
                    line.peak_w = line.peak_w.max(net);
                    line.worst_margin_w = line.worst_margin_w.max(net - cap);
                    if net > cap + members.len() as f64 {
                        line.overload_steps += 1;
                        let fixed: f64 = members
                            .iter()
                            .filter(|v| !v.opted_in)
                            .map(|v| v.power_w[k])
                            .sum();
                        if fixed - pv > cap {
                            line.unavoidable_steps += 1;
                        }
                    }
                    let cf = cf_load[g][k] - pv;
                    line.uncontrolled_peak_w = line.uncontrolled_peak_w.max(cf);
                    if cf > cap + 1.0 {
                        line.uncontrolled_overload_steps += 1;
                    }
                }
                line
            })
            .collect();
        let t = &rec.ticks;
        Summary {
            demand: rec.demand_label.clone(),
            window: format!("{}–{}", super::hhmm(first), super::hhmm(end)),
            arrivals: in_window.len(),
            plugged: plugged.len(),
            turned_away: in_window.len() - plugged.len(),
            opted_in: plugged.iter().filter(|v| v.opted_in).count(),
            accepted_at_once: plugged
                .iter()
                .filter(|v| v.accepted_wh.is_some() && !v.took_offer)
                .count(),
            accepted_offer: plugged
                .iter()
                .filter(|v| v.accepted_wh.is_some() && v.took_offer)
                .count(),
            not_accepted: plugged
                .iter()
                .filter(|v| v.opted_in && v.accepted_wh.is_none())
                .count(),
            wanted_wh: plugged.iter().map(|v| v.arrival.wanted_wh as f64).sum(),
            requested_wh: plugged
                .iter()
                .filter(|v| v.opted_in)
                .map(|v| v.arrival.request_wh as f64)
                .sum(),
            accepted_wh: plugged
                .iter()
                .filter_map(|v| v.accepted_wh)
                .map(|w| w as f64)
                .sum(),
            delivered_wh: plugged.iter().map(|v| v.delivered_wh).sum(),
            uncontrolled_delivered_wh: cf_total,
            accepted_due: due,
            accepted_met: due - misses.len(),
            misses,
            uncontrolled_full_power: full,
            uncontrolled: uncontrolled_v.len(),
            profiles_to_uncontrolled: uncontrolled_v.iter().map(|v| v.profiles).sum(),
            groups,
            phases: phase_figures(rec),
            cost_eur: cost_eur(rec, &rec.group_load_w),
            uncontrolled_cost_eur: cost_eur(rec, &cf_load),
            ticks: (
                t.ticks,
                t.solved,
                t.failed,
                t.setpoints_sent,
                t.setpoints_failed,
            ),
            profile_answers: ProfileAnswers {
                cpo: rec
                    .cpo_answers
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), *v))
                    .collect(),
                deferred: t.setpoints_deferred,
                rejected: t.setpoints_rejected,
            },
            mean_tick_ms: if t.ticks > 0 {
                t.tick_ms / t.ticks as f64
            } else {
                0.0
            },
            posted: (rec.meter_values, rec.cdrs, rec.api_errors.len()),
            extra: Vec::new(),
            chain: None,
            wall_s: rec.wall.as_secs_f64(),
        }
    }
}

fn kwh(wh: f64) -> String {
    format!("{:.1} kWh", wh / 1_000.0)
}

fn kw(w: f64) -> String {
    format!("{:.1} kW", w / 1_000.0)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let row = |f: &mut fmt::Formatter<'_>, k: &str, v: String| writeln!(f, "  {k:<40} {v}");
        writeln!(
            f,
            "evflex demo — simulated day {} ({})",
            self.window, self.demand
        )?;
        row(
            f,
            "EVs arrived / plugged in / turned away",
            format!(
                "{} / {} / {}",
                self.arrivals, self.plugged, self.turned_away
            ),
        )?;
        row(
            f,
            "opted in / not opted in",
            format!("{} / {}", self.opted_in, self.uncontrolled),
        )?;
        row(
            f,
            "requests accepted / via offer / none",
            format!(
                "{} / {} / {}",
                self.accepted_at_once, self.accepted_offer, self.not_accepted
            ),
        )?;
        row(
            f,
            "energy requested / accepted (guaranteed)",
            format!("{} / {}", kwh(self.requested_wh), kwh(self.accepted_wh)),
        )?;
        row(
            f,
            "energy the cars would take / delivered",
            format!("{} / {}", kwh(self.wanted_wh), kwh(self.delivered_wh)),
        )?;
        row(
            f,
            "accepted requests met by departure",
            format!(
                "{} of {} due in the window",
                self.accepted_met, self.accepted_due
            ),
        )?;
        for m in &self.misses {
            row(
                f,
                &format!("  miss {}", m.session_id),
                format!(
                    "{} of {} accepted{}{}",
                    kwh(m.delivered_wh),
                    kwh(m.accepted_wh as f64),
                    if m.slower_vehicle {
                        "; vehicle slower than its charge point"
                    } else {
                        ""
                    },
                    if m.later_uncontrolled {
                        "; uncontrolled EV arrived later in the group"
                    } else {
                        ""
                    }
                ),
            )?;
        }
        row(
            f,
            "not opted in: full power from plug-in",
            format!(
                "{} of {} (profiles sent to them: {})",
                self.uncontrolled_full_power, self.uncontrolled, self.profiles_to_uncontrolled
            ),
        )?;
        writeln!(
            f,
            "  {:<6} {:>10} {:>10} {:>8} {:>11} {:>9} {:>12} {:>12}",
            "group",
            "capacity",
            "min cap",
            "PV peak",
            "peak (meas)",
            "overload",
            "uncontr.peak",
            "uncontr.over"
        )?;
        for g in &self.groups {
            writeln!(
                f,
                "  {:<6} {:>10} {:>10} {:>8} {:>11} {:>9} {:>12} {:>12}",
                g.id,
                kw(g.capacity_w as f64),
                kw(g.min_capacity_w as f64),
                kw(g.pv_peak_w as f64),
                kw(g.peak_w),
                if g.unavoidable_steps > 0 {
                    format!("{} ({}u)", g.overload_steps, g.unavoidable_steps)
                } else {
                    g.overload_steps.to_string()
                },
                kw(g.uncontrolled_peak_w),
                g.uncontrolled_overload_steps
            )?;
        }
        if let Some(p) = &self.phases {
            row(
                f,
                &format!(
                    "group {} phases (3×{} A, cabinet 3×{} A)",
                    p.group_id, p.limits_a.0, p.limits_a.1
                ),
                format!(
                    "steps over a phase limit: smart {}, uncontrolled {}; highest phase {:.0} % / {:.0} % of its limit; {} single-phase cars",
                    p.over_steps,
                    p.uncontrolled_over_steps,
                    p.max_share * 100.0,
                    p.uncontrolled_max_share * 100.0,
                    p.single_phase_cars
                ),
            )?;
        }
        let per = |eur: f64, wh: f64| if wh > 0.0 { eur / (wh / 1_000.0) } else { 0.0 };
        row(
            f,
            "energy cost smart (day-ahead, net of PV)",
            format!(
                "{:.2} EUR for {} ({:.4} EUR/kWh)",
                self.cost_eur,
                kwh(self.delivered_wh),
                per(self.cost_eur, self.delivered_wh)
            ),
        )?;
        row(
            f,
            "energy cost uncontrolled (counterfactual)",
            format!(
                "{:.2} EUR for {} ({:.4} EUR/kWh)",
                self.uncontrolled_cost_eur,
                kwh(self.uncontrolled_delivered_wh),
                per(self.uncontrolled_cost_eur, self.uncontrolled_delivered_wh)
            ),
        )?;
        // The saving per kWh, since the two serve different energy; and each connection's peak
        // (what a demand charge bills), summed.
        let (smart_per, unc_per) = (
            per(self.cost_eur, self.delivered_wh),
            per(self.uncontrolled_cost_eur, self.uncontrolled_delivered_wh),
        );
        let saved_per = unc_per - smart_per;
        row(
            f,
            "saving against uncontrolled",
            format!(
                "{saved_per:.4} EUR/kWh ({:.1} %), {:.2} EUR on the {} served; group peaks {} against {}",
                if unc_per > 0.0 {
                    100.0 * saved_per / unc_per
                } else {
                    0.0
                },
                saved_per * self.delivered_wh / 1_000.0,
                kwh(self.delivered_wh),
                kw(self.groups.iter().fold(0.0, |w, g| w + g.peak_w.max(0.0))),
                kw(self
                    .groups
                    .iter()
                    .fold(0.0, |w, g| w + g.uncontrolled_peak_w.max(0.0))),
            ),
        )?;
        let (ticks, solved, failed, sent, sp_failed) = self.ticks;
        row(
            f,
            "ticks / group solves stored / failed",
            format!(
                "{ticks} / {solved} / {failed} (mean {:.0} ms per tick)",
                self.mean_tick_ms
            ),
        )?;
        row(
            f,
            "set-points sent / failed",
            format!("{sent} / {sp_failed}"),
        )?;
        let a = &self.profile_answers;
        if !a.cpo.is_empty() {
            let answers: Vec<String> = a.cpo.iter().map(|(k, v)| format!("{k} {v}")).collect();
            row(f, "profile answers from the CPO", answers.join(" / "))?;
            row(
                f,
                "  evflex backed off / gave up",
                format!(
                    "{} (TOO_OFTEN: sent again later) / {} (REJECTED: planned at measured draw)",
                    a.deferred, a.rejected
                ),
            )?;
        }
        let (mv, cdrs, errors) = self.posted;
        row(
            f,
            "meter readings / CDRs posted / refused",
            format!("{mv} / {cdrs} / {errors}"),
        )?;
        for (k, v) in &self.extra {
            row(f, k, v.clone())?;
        }
        if let Some(c) = &self.chain {
            c.fmt_rows(f)?;
        }
        row(f, "wall time", format!("{:.1} s", self.wall_s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(chain: Option<ChainFigures>) -> Summary {
        Summary {
            demand: "generated".to_owned(),
            window: "00:00–24:00".to_owned(),
            arrivals: 3,
            plugged: 2,
            turned_away: 1,
            opted_in: 1,
            accepted_at_once: 1,
            accepted_offer: 0,
            not_accepted: 0,
            wanted_wh: 20_000.0,
            requested_wh: 12_000.0,
            accepted_wh: 10_000.0,
            delivered_wh: 19_500.0,
            uncontrolled_delivered_wh: 20_000.0,
            accepted_due: 1,
            accepted_met: 1,
            misses: Vec::new(),
            uncontrolled_full_power: 1,
            uncontrolled: 1,
            profiles_to_uncontrolled: 0,
            groups: Vec::new(),
            phases: None,
            cost_eur: 1.5,
            uncontrolled_cost_eur: 2.0,
            ticks: (96, 96, 0, 40, 0),
            profile_answers: ProfileAnswers::default(),
            mean_tick_ms: 12.0,
            posted: (5_760, 2, 0),
            extra: Vec::new(),
            chain,
            wall_s: 3.0,
        }
    }

    fn figures(audit: Result<Vec<String>, String>) -> ChainFigures {
        ChainFigures {
            drain_wait_s: 1.5,
            left_in_outbox: 0,
            chain_totals: Some((120, 5_400_000)),
            transactions: vec![
                TxLine {
                    kind: "settlement".to_owned(),
                    transactions: 2,
                    gas_used: 300_000,
                },
                TxLine {
                    kind: "status_commit".to_owned(),
                    transactions: 96,
                    gas_used: 4_800_000,
                },
            ],
            settlements: 2,
            flex_minted_wei: 1_500_000_000_000_000_000,
            flex_supply_wei: Some(1_500_000_000_000_000_000),
            bills: BillCounts {
                settled: 2,
                awaiting_funds: 1,
                by_cdr_total_cost: 2,
                by_tariff: 1,
                ..BillCounts::default()
            },
            audit,
        }
    }

    fn line<'a>(text: &'a str, key: &str) -> &'a str {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .unwrap_or_else(|| panic!("no line {key:?} in\n{text}"))
    }

    #[test]
    fn the_saving_is_per_kwh_since_the_policies_serve_different_energy() {
        let text = summary(None).to_string();
        // 1.50 EUR for 19.5 kWh against 2.00 EUR for 20.0 kWh.
        assert_eq!(
            line(&text, "saving against uncontrolled").trim_start(),
            "saving against uncontrolled              0.0231 EUR/kWh (23.1 %), 0.45 EUR on the \
             19.5 kWh served; group peaks 0.0 kW against 0.0 kW"
        );
    }

    #[test]
    fn chain_rows_show_transactions_gas_flex_bills_and_a_clean_audit() {
        let text = summary(Some(figures(Ok(Vec::new())))).to_string();
        assert!(line(&text, "chain outbox after the day").ends_with("drained (1.5 s wait)"));
        assert!(
            line(&text, "on-chain transactions / gas")
                .ends_with("120 / 5400000 (every transaction since the deployment)"),
            "{text}"
        );
        assert!(
            line(&text, "of which outbox work (stored receipts)")
                .ends_with("settlement 2 / 300000; status_commit 96 / 4800000"),
            "{text}"
        );
        assert!(
            line(&text, "FLEX minted")
                .ends_with("1.500 FLEX in 2 settlement(s) (FlexToken supply 1.500 FLEX)")
        );
        assert!(
            line(&text, "bills settled / awaiting funds / pending")
                .ends_with("2 / 1 / 0 (failed 0, unbillable 0)")
        );
        assert!(
            line(&text, "bills by source").ends_with("CDR total_cost 2 / tariff 1 / flat 0"),
            "{text}"
        );
        assert!(line(&text, "evflex audit").ends_with(" clean"));
        // The chain rows come after the others, before the wall time.
        assert!(text.find("evflex audit") < text.find("wall time"));
    }

    #[test]
    fn audit_differences_are_listed_and_cut_after_ten() {
        let diffs: Vec<String> = (0..12).map(|i| format!("bill CDR-{i}: differs")).collect();
        let text = summary(Some(figures(Ok(diffs)))).to_string();
        assert!(line(&text, "evflex audit").ends_with("12 difference(s)"));
        assert!(text.contains("    - bill CDR-0: differs"));
        assert!(text.contains("    - bill CDR-9: differs"));
        assert!(!text.contains("CDR-10:"));
        assert!(text.contains("    … and 2 more"));
        let failed = summary(Some(figures(Err("RPC down".to_owned())))).to_string();
        assert!(line(&failed, "evflex audit").ends_with("could not run: RPC down"));
    }

    #[test]
    fn an_undrained_outbox_is_said_and_no_chain_means_no_chain_rows() {
        let mut c = figures(Ok(Vec::new()));
        c.left_in_outbox = 7;
        c.drain_wait_s = 120.0;
        let text = summary(Some(c)).to_string();
        assert!(
            line(&text, "chain outbox after the day")
                .ends_with("NOT drained: 7 row(s) still to send after 120 s")
        );
        let text = summary(None).to_string();
        assert!(!text.contains("on-chain transactions"));
        assert!(!text.contains("evflex audit"));
    }
}
