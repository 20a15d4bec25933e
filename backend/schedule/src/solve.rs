//! [`solve`]: one group's schedule. Orchestrates the lexicographic LP phases, the integer
//! quantisation and repair, the figures (cost, peak, duals, flexibility), and the fallback.

use std::time::{Duration, Instant};

use crate::VehicleClass;
use crate::amps;
use crate::lp::{self, LpResult, LpStatus, Phase};
use crate::prep::{self, EU_PER_WH, Prepared, asap_profile};
use crate::topology::PrepTree;
use crate::{Flexibility, GroupInputs, Mode, Schedule, ScheduleError, SolveOptions, SolveStatus};

/// Energy tolerance (Wh) on every accepted request: a request counts as met when the delivered
/// energy (whole-watt schedule, exact integer arithmetic) is at most this much below it. The
/// same figure is used by [`solve`] (status), [`crate::admit`] and [`crate::check`].
pub const ENERGY_TOLERANCE_WH: i64 = 1;

pub(crate) const TOL_EU: i128 = ENERGY_TOLERANCE_WH as i128 * EU_PER_WH;

/// Compute one group's schedule.
///
/// `previous` is last tick's schedule; it is used only by the fallback (shifted by one step and
/// repaired to the current limits). Errors only for malformed inputs; an infeasible group gives
/// [`SolveStatus::Shortfall`], a missed deadline or a solver failure [`SolveStatus::Fallback`].
pub fn solve(
    inputs: &GroupInputs,
    opts: &SolveOptions,
    previous: Option<&Schedule>,
) -> Result<Schedule, ScheduleError> {
    let start = Instant::now();
    let prep = prep::prepare(inputs)?;
    let deadline = start + Duration::from_millis(opts.time_limit_ms);
    Ok(solve_prepared(&prep, opts, previous, deadline))
}

pub(crate) fn solve_prepared(
    prep: &Prepared,
    opts: &SolveOptions,
    previous: Option<&Schedule>,
    deadline: Instant,
) -> Schedule {
    let (result, build_ms, solve_ms) = solve_lp(prep, opts, deadline);
    match result {
        Ok(r) => finish(prep, opts, &r, build_ms, solve_ms),
        Err(reason) => fallback(prep, opts, previous, reason, build_ms, solve_ms),
    }
}

/// The solver's answer before quantisation (the LP relaxation in LP mode), with the build and
/// solve times: the lexicographic phases, or why the fallback must be used.
pub(crate) fn solve_lp(
    prep: &Prepared,
    opts: &SolveOptions,
    deadline: Instant,
) -> (Result<LpResult, String>, f64, f64) {
    // MILP: if even the LP relaxation of the hard problem is infeasible, the MILP is too; skip
    // the (possibly slow) MILP infeasibility proof.
    let (mut build_ms, mut solve_ms) = (0.0, 0.0);
    let relaxed_infeasible = opts.mode == Mode::Milp && {
        let lp_opts = SolveOptions {
            mode: Mode::Lp,
            ..opts.clone()
        };
        let r = lp::solve_phase(prep, &lp_opts, Phase::Hard, deadline);
        build_ms += r.build_ms;
        solve_ms += r.solve_ms;
        r.status == LpStatus::Infeasible
    };
    let first = if relaxed_infeasible {
        lp::LpResult::infeasible()
    } else {
        lp::solve_phase(prep, opts, Phase::Hard, deadline)
    };
    build_ms += first.build_ms;
    solve_ms += first.solve_ms;
    let result = match first.status {
        LpStatus::Optimal | LpStatus::TimeLimit => Ok(first),
        LpStatus::Failed(reason) => Err(reason),
        LpStatus::Infeasible => {
            // Lexicographic: minimise the total accepted shortfall, then cost with it capped.
            let p1 = lp::solve_phase(prep, opts, Phase::MinShortfall, deadline);
            build_ms += p1.build_ms;
            solve_ms += p1.solve_ms;
            match p1.status {
                LpStatus::Optimal | LpStatus::TimeLimit => {
                    let p2 = lp::solve_phase(prep, opts, Phase::CostCapped(p1.objective), deadline);
                    build_ms += p2.build_ms;
                    solve_ms += p2.solve_ms;
                    match p2.status {
                        LpStatus::Optimal | LpStatus::TimeLimit => Ok(p2),
                        LpStatus::Infeasible => Err("cost phase infeasible".into()),
                        LpStatus::Failed(r) => Err(r),
                    }
                }
                LpStatus::Infeasible => Err("shortfall phase infeasible".into()),
                LpStatus::Failed(r) => Err(r),
            }
        }
    };
    let result = result.and_then(|r| {
        if Instant::now() > deadline {
            Err("wall-clock deadline missed".to_string())
        } else {
            Ok(r)
        }
    });
    (result, build_ms, solve_ms)
}

/// Energy (kWh) the LP relaxation of `inputs` delivers into the batteries (LP mode, the tree's
/// rows but no whole set-points); `None` when it fails. For `evflex bench schedule --amps`.
pub(crate) fn lp_relaxation_kwh(inputs: &GroupInputs, opts: &SolveOptions) -> Option<f64> {
    let prep = prep::prepare(inputs).ok()?;
    let lp_opts = SolveOptions {
        mode: Mode::Lp,
        ..opts.clone()
    };
    let deadline = Instant::now() + Duration::from_millis(opts.time_limit_ms);
    let r = solve_lp(&prep, &lp_opts, deadline).0.ok()?;
    Some(
        prep.vehicles
            .iter()
            .zip(&r.p_kw)
            .map(|(v, row)| {
                let kw = if v.class == VehicleClass::Uncontrolled {
                    v.fixed.iter().sum::<i64>() as f64 / 1000.0
                } else {
                    row.iter().sum::<f64>()
                };
                kw * prep.dt_h * v.eff as f64 / 1000.0
            })
            .sum(),
    )
}

/// Flexible (opted-in) vehicle indices in priority order: accepted first, then best effort,
/// each by id (the prepared order).
pub(crate) fn priority(prep: &Prepared) -> Vec<usize> {
    let mut v: Vec<usize> = (0..prep.vehicles.len())
        .filter(|&i| prep.vehicles[i].class != VehicleClass::Uncontrolled)
        .collect();
    v.sort_by_key(|&i| (prep.vehicles[i].class, i));
    v
}

fn ev_sum(power: &[Vec<i64>], t: usize) -> i64 {
    power.iter().map(|r| r[t]).sum()
}

/// Enforce the capacity in every step by lowering battery charging, then flexible vehicles in
/// reverse priority order (MILP: a power below the minimum drops to 0).
fn repair_capacity(prep: &Prepared, milp: bool, power: &mut [Vec<i64>], battery: &mut [i64]) {
    let order = priority(prep);
    for t in 0..prep.h {
        let mut excess =
            ev_sum(power, t) + battery[t] + prep.other[t] - prep.pv[t] - prep.cap_eff[t];
        if excess <= 0 {
            continue;
        }
        if battery[t] > 0 {
            let r = battery[t].min(excess);
            battery[t] -= r;
            excess -= r;
        }
        for &i in order.iter().rev() {
            if excess <= 0 {
                break;
            }
            let p = power[i][t];
            let r = p.min(excess);
            let mut np = p - r;
            if milp && np > 0 && np < prep.vehicles[i].min_w {
                np = 0;
            }
            excess -= p - np;
            power[i][t] = np;
        }
    }
}

/// Add power to vehicle `i` (within its maximum, its taper and the group capacity) until it has
/// received `target_eu`, visiting the steps in `steps` order. MILP: never switches a step on
/// below the minimum.
fn top_up(
    prep: &Prepared,
    milp: bool,
    power: &mut [Vec<i64>],
    battery: &[i64],
    i: usize,
    target_eu: i128,
    steps: &[usize],
) {
    let v = &prep.vehicles[i];
    let per_w = prep.dt_s as i128 * v.eff as i128;
    let mut deficit = target_eu - v.delivered_eu(prep.dt_s, &power[i]);
    for &t in steps {
        if deficit <= 0 {
            break;
        }
        let headroom =
            prep.cap_eff[t] - (ev_sum(power, t) + battery[t] + prep.other[t] - prep.pv[t]);
        let need = ((deficit + per_w - 1) / per_w).min(i64::MAX as i128) as i64;
        let add = need
            .min(v.max_w - power[i][t])
            .min(headroom)
            .min(v.taper_room_w(prep.dt_s, &power[i], t));
        if add <= 0 || (milp && power[i][t] == 0 && add < v.min_w) {
            continue;
        }
        power[i][t] += add;
        deficit -= add as i128 * per_w;
    }
}

/// Quantise an LP answer to whole watts, repair, restore the rounding loss, and report.
fn finish(
    prep: &Prepared,
    opts: &SolveOptions,
    r: &LpResult,
    build_ms: f64,
    solve_ms: f64,
) -> Schedule {
    let h = prep.h;
    if let Some(tree) = &prep.tree {
        return finish_tree(prep, tree, opts, r, build_ms, solve_ms);
    }
    let milp = opts.mode == Mode::Milp;
    let mut power: Vec<Vec<i64>> = prep
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.class == VehicleClass::Uncontrolled {
                return v.fixed.clone();
            }
            let mut row = vec![0i64; h];
            for (slot, &kw) in row.iter_mut().zip(&r.p_kw[i]).take(v.end).skip(v.start) {
                let mut p = ((kw * 1000.0 + 1e-3).floor() as i64).clamp(0, v.max_w);
                if milp && p > 0 && p < v.min_w {
                    p = 0;
                }
                *slot = p;
            }
            // The LP keeps the taper within its tolerances; whole watts keep it exactly.
            v.clip_taper(prep.dt_s, &mut row, |p| below_min(milp, v.min_w, p));
            row
        })
        .collect();
    let mut battery = battery_watts(r);
    clamp_battery(prep, &mut battery);
    repair_capacity(prep, milp, &mut power, &mut battery);
    // Restore the energy lost to flooring: up to what the LP delivered, in the steps the LP
    // used first (cheapest first), then any other step of the window.
    for i in priority(prep) {
        let v = &prep.vehicles[i];
        let lp_eu = (r.p_kw[i].iter().sum::<f64>() * 1000.0 * prep.dt_s as f64 * v.eff as f64)
            .round() as i128;
        let target = lp_eu.min(v.hard_eu + v.soft_eu);
        let mut steps: Vec<usize> = (v.start..v.end).collect();
        steps.sort_by_key(|&t| (power[i][t] == 0, prep.price[t], t));
        top_up(prep, milp, &mut power, &battery, i, target, &steps);
    }
    let mut s = report(prep, opts, power, battery, build_ms, solve_ms);
    s.capacity_dual = r.cap_dual.clone();
    s.mip_gap = r.mip_gap;
    if s.status == SolveStatus::Optimal && r.status == LpStatus::TimeLimit {
        s.status = SolveStatus::TimeLimit;
    }
    s
}

/// MILP: a power below the minimum drops to 0.
fn below_min(milp: bool, min_w: i64, p: i64) -> i64 {
    if milp && p > 0 && p < min_w { 0 } else { p }
}

/// The LP's battery power per step in whole watts, its magnitude rounded down (within a
/// thousandth of a watt of solver noise below a whole watt, up to it), shared by both finishes.
fn battery_watts(r: &LpResult) -> Vec<i64> {
    r.battery_kw
        .iter()
        .map(|&kw| {
            let w = kw * 1000.0;
            (w.abs() + 1e-3).floor().copysign(w) as i64
        })
        .collect()
}

/// [`finish`] under a tree of limits: whole set-points, the tree-aware repair and top-up
/// (`crate::amps`).
fn finish_tree(
    prep: &Prepared,
    tree: &PrepTree,
    opts: &SolveOptions,
    r: &LpResult,
    build_ms: f64,
    solve_ms: f64,
) -> Schedule {
    let h = prep.h;
    let mut power: Vec<Vec<i64>> = prep
        .vehicles
        .iter()
        .enumerate()
        .map(|(i, v)| {
            if v.class == VehicleClass::Uncontrolled {
                v.fixed.clone()
            } else {
                let mut row = amps::quantise(tree, i, &r.p_kw[i], v.start, v.end);
                v.clip_taper(prep.dt_s, &mut row, |p| tree.cps[i].floor_power(p));
                row
            }
        })
        .collect();
    let mut battery = battery_watts(r);
    battery.resize(h, 0);
    clamp_battery(prep, &mut battery);
    let order = priority(prep);
    amps::repair(prep, tree, &order, &mut power, &mut battery);
    let mut trackers = amps::trackers(prep, tree, &power);
    // Per flexible vehicle: the LP's energy (the top-up target) and its steps, LP-used first
    // (cheapest first), then the rest of its window.
    let plan: Vec<(usize, i128, Vec<usize>)> = order
        .iter()
        .map(|&i| {
            let v = &prep.vehicles[i];
            let lp_eu = (r.p_kw[i].iter().sum::<f64>() * 1000.0 * prep.dt_s as f64 * v.eff as f64)
                .round() as i128;
            let mut steps: Vec<usize> = (v.start..v.end).collect();
            steps.sort_by(|&a, &b| {
                (r.p_kw[i][a] <= 0.0, prep.price[a], a).cmp(&(
                    r.p_kw[i][b] <= 0.0,
                    prep.price[b],
                    b,
                ))
            });
            (i, lp_eu.min(v.hard_eu + v.soft_eu), steps)
        })
        .collect();
    for (i, target, steps) in &plan {
        amps::top_up(
            prep,
            tree,
            &mut power,
            &battery,
            *i,
            *target,
            steps,
            &mut trackers,
        );
    }
    // Accepted vehicles still short after rounding take whole steps from best effort.
    let best_effort: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| prep.vehicles[i].class == VehicleClass::BestEffort)
        .collect();
    let mut touched = Vec::new();
    for (i, target, steps) in &plan {
        let v = &prep.vehicles[*i];
        if v.class == VehicleClass::Guaranteed
            && !best_effort.is_empty()
            && target - v.delivered_eu(prep.dt_s, &power[*i]) > TOL_EU
        {
            touched.extend(amps::rescue(
                prep,
                tree,
                &mut power,
                &battery,
                *i,
                *target,
                steps,
                &best_effort,
                &mut trackers,
            ));
        }
    }
    for (i, target, steps) in plan.iter().filter(|p| touched.contains(&p.0)) {
        amps::top_up(
            prep,
            tree,
            &mut power,
            &battery,
            *i,
            *target,
            steps,
            &mut trackers,
        );
    }
    // Tapering batteries take what they can between whole set-points, in the room left.
    for (i, target, _) in &plan {
        amps::fill_to_taper(prep, tree, &mut power, &battery, *i, *target, &mut trackers);
    }
    let mut s = report(prep, opts, power, battery, build_ms, solve_ms);
    s.capacity_dual = r.cap_dual.clone();
    s.mip_gap = r.mip_gap;
    if s.status == SolveStatus::Optimal && r.status == LpStatus::TimeLimit {
        s.status = SolveStatus::TimeLimit;
    }
    s
}

/// Keep the battery within its power limits and state-of-energy bounds (integer simulation).
fn clamp_battery(prep: &Prepared, battery: &mut [i64]) {
    let Some(b) = prep.battery.as_ref() else {
        battery.iter_mut().for_each(|x| *x = 0);
        return;
    };
    let dt = prep.dt_s as i128;
    let eff = b.efficiency_permille as i128;
    let cap = b.capacity_wh as i128 * EU_PER_WH;
    let mut soc = b.energy_wh as i128 * EU_PER_WH;
    for x in battery.iter_mut() {
        *x = (*x).clamp(-b.max_discharge_w, b.max_charge_w);
        if *x > 0 {
            let room = (cap - soc).max(0) / (dt * eff);
            *x = (*x as i128).min(room) as i64;
            soc += *x as i128 * dt * eff;
        } else if *x < 0 {
            let avail = soc.max(0) / (dt * 1000);
            *x = -((-*x) as i128).min(avail) as i64;
            soc += *x as i128 * dt * 1000;
        }
    }
}

/// The fallback: last tick's schedule shifted by one step (rows matched by vehicle id), cut to
/// the current windows, maxima, minimums, tapers and requests, repaired to the capacity; then
/// earliest-deadline-first filling (accepted first) of what is still missing. The battery idles.
/// Never exceeds the capacity.
fn fallback(
    prep: &Prepared,
    opts: &SolveOptions,
    previous: Option<&Schedule>,
    reason: String,
    build_ms: f64,
    solve_ms: f64,
) -> Schedule {
    let h = prep.h;
    let milp = opts.mode == Mode::Milp;
    let mut power: Vec<Vec<i64>> = prep
        .vehicles
        .iter()
        .map(|v| {
            if v.class == VehicleClass::Uncontrolled {
                return v.fixed.clone();
            }
            let mut row = vec![0i64; h];
            if let Some(prev_row) = previous.and_then(|prev| {
                prev.vehicle_ids
                    .iter()
                    .position(|id| *id == v.id)
                    .map(|k| &prev.power_w[k])
            }) {
                for (t, slot) in row.iter_mut().enumerate().take(v.end).skip(v.start) {
                    let mut p = prev_row.get(t + 1).copied().unwrap_or(0).clamp(0, v.max_w);
                    if milp && p < v.min_w {
                        p = 0;
                    }
                    *slot = p;
                }
                // Never more than the request: trim from the end of the window.
                let per_w = prep.dt_s as i128 * v.eff as i128;
                let mut over = v.delivered_eu(prep.dt_s, &row) - (v.hard_eu + v.soft_eu);
                for t in (v.start..v.end).rev() {
                    if over <= 0 {
                        break;
                    }
                    let cut = (over / per_w).min(row[t] as i128) as i64;
                    let mut np = row[t] - cut;
                    if milp && np > 0 && np < v.min_w {
                        np = 0;
                    }
                    over -= (row[t] - np) as i128 * per_w;
                    row[t] = np;
                }
                v.clip_taper(prep.dt_s, &mut row, |p| below_min(milp, v.min_w, p));
            }
            row
        })
        .collect();
    let mut battery = vec![0i64; h];
    if let Some(tree) = &prep.tree {
        // Whole set-points, then the tree-aware repair and earliest-deadline-first filling.
        for (i, row) in power.iter_mut().enumerate() {
            if prep.vehicles[i].class != VehicleClass::Uncontrolled {
                for p in row.iter_mut() {
                    *p = tree.cps[i].floor_power(*p);
                }
            }
        }
        let prio = priority(prep);
        amps::repair(prep, tree, &prio, &mut power, &mut battery);
        let mut order = prio;
        order.sort_by_key(|&i| (prep.vehicles[i].class, prep.vehicles[i].end, i));
        let mut trackers = amps::trackers(prep, tree, &power);
        for i in order {
            let v = &prep.vehicles[i];
            let steps: Vec<usize> = (v.start..v.end).collect();
            let target = v.hard_eu + v.soft_eu;
            amps::top_up(
                prep,
                tree,
                &mut power,
                &battery,
                i,
                target,
                &steps,
                &mut trackers,
            );
        }
        let mut s = report(prep, opts, power, battery, build_ms, solve_ms);
        s.status = SolveStatus::Fallback;
        s.fallback_reason = Some(reason);
        return s;
    }
    repair_capacity(prep, milp, &mut power, &mut battery);
    let mut order = priority(prep);
    order.sort_by_key(|&i| (prep.vehicles[i].class, prep.vehicles[i].end, i));
    for i in order {
        let v = &prep.vehicles[i];
        let steps: Vec<usize> = (v.start..v.end).collect();
        top_up(
            prep,
            milp,
            &mut power,
            &battery,
            i,
            v.hard_eu + v.soft_eu,
            &steps,
        );
    }
    let mut s = report(prep, opts, power, battery, build_ms, solve_ms);
    s.status = SolveStatus::Fallback;
    s.fallback_reason = Some(reason);
    s
}

/// Per-vehicle energy figures of a schedule (EU): (delivered, unmet) where unmet is measured
/// against what must be delivered within the horizon to meet the request by departure.
pub(crate) fn energy_figures(prep: &Prepared, power: &[Vec<i64>]) -> Vec<(i128, i128)> {
    prep.vehicles
        .iter()
        .zip(power)
        .map(|(v, row)| {
            let d = v.delivered_eu(prep.dt_s, row);
            (d, (v.needed_eu - d).max(0))
        })
        .collect()
}

/// Whether every accepted request is met within [`ENERGY_TOLERANCE_WH`].
pub(crate) fn accepted_met(prep: &Prepared, power: &[Vec<i64>]) -> bool {
    energy_figures(prep, power)
        .iter()
        .zip(&prep.vehicles)
        .all(|((_, unmet), v)| v.class != VehicleClass::Guaranteed || *unmet <= TOL_EU)
}

/// Total accepted shortfall (EU).
pub(crate) fn accepted_shortfall_eu(prep: &Prepared, power: &[Vec<i64>]) -> i128 {
    energy_figures(prep, power)
        .iter()
        .zip(&prep.vehicles)
        .filter(|(_, v)| v.class == VehicleClass::Guaranteed)
        .map(|((_, u), _)| *u)
        .sum()
}

/// Grid import (W) per step.
pub(crate) fn grid_import(prep: &Prepared, power: &[Vec<i64>], battery: &[i64]) -> Vec<i64> {
    (0..prep.h)
        .map(|t| prep.import_w(t, ev_sum(power, t), battery[t]))
        .collect()
}

/// Grid import (W) per step as the limits count it: each vehicle below its charge point's
/// minimum current counted at the minimum's power ([`crate::topology::PrepCp::limit_w`]).
pub(crate) fn limit_import(prep: &Prepared, power: &[Vec<i64>], battery: &[i64]) -> Vec<i64> {
    let mut import = grid_import(prep, power, battery);
    if let Some(tree) = &prep.tree {
        for (cp, row) in tree.cps.iter().zip(power) {
            for (g, &p) in import.iter_mut().zip(row) {
                *g += cp.limit_w(p) - p;
            }
        }
    }
    import
}

/// Cost (µEUR, floored) of a power profile at the price signal.
pub(crate) fn cost_micro_eur(prep: &Prepared, profile_w: &[i64]) -> i64 {
    let num: i128 = profile_w
        .iter()
        .zip(&prep.price)
        .map(|(&p, &c)| p as i128 * c as i128 * prep.dt_s as i128)
        .sum();
    num.div_euclid(3_600_000) as i64
}

/// The objective (EUR) of an integer schedule, by the same formula as the model: energy cost,
/// peak term, early-delivery term, best-effort shortfall penalty.
pub(crate) fn evaluate(
    prep: &Prepared,
    opts: &SolveOptions,
    power: &[Vec<i64>],
    battery: &[i64],
) -> f64 {
    let import = grid_import(prep, power, battery);
    let dt = prep.dt_h;
    let mut obj: f64 = import
        .iter()
        .zip(&prep.price)
        .map(|(&g, &c)| c as f64 / 1e6 * dt * g as f64 / 1000.0)
        .sum();
    obj += opts.peak_weight_eur_per_kw * import.iter().copied().max().unwrap_or(0) as f64 / 1000.0;
    let w_soft = lp::soft_weight_eur_per_kwh(prep, opts);
    let flex: Vec<usize> = (0..prep.vehicles.len())
        .filter(|&i| prep.vehicles[i].class != VehicleClass::Uncontrolled)
        .collect();
    for (rank, &i) in flex.iter().enumerate() {
        let v = &prep.vehicles[i];
        for (t, &p) in power[i].iter().enumerate().take(v.end).skip(v.start) {
            obj += lp::early_coef(opts, dt, t, rank, flex.len()) * p as f64 / 1000.0;
        }
        let short = (v.hard_eu + v.soft_eu - v.delivered_eu(prep.dt_s, &power[i])).max(0);
        let soft_short = short - short.min(v.hard_eu);
        obj += w_soft * soft_short as f64 / (EU_PER_WH as f64 * 1000.0);
    }
    obj
}

/// Build the schedule and its figures from integer powers.
fn report(
    prep: &Prepared,
    opts: &SolveOptions,
    power: Vec<Vec<i64>>,
    battery: Vec<i64>,
    build_ms: f64,
    solve_ms: f64,
) -> Schedule {
    let h = prep.h;
    let figures = energy_figures(prep, &power);
    let import = grid_import(prep, &power, &battery);
    let status = if accepted_met(prep, &power) {
        SolveStatus::Optimal
    } else {
        SolveStatus::Shortfall
    };
    let flexibility = prep
        .vehicles
        .iter()
        .zip(&power)
        .map(|(v, row)| {
            let base = asap_profile(h, prep.dt_s, v, v.target_eu);
            flexibility(prep, v.id.clone(), &base, row)
        })
        .collect();
    Schedule {
        mode: opts.mode,
        status,
        mip_gap: 0.0,
        vehicle_ids: prep.vehicles.iter().map(|v| v.id.clone()).collect(),
        delivered_wh: figures.iter().map(|f| (f.0 / EU_PER_WH) as i64).collect(),
        unmet_wh: figures.iter().map(|f| (f.1 / EU_PER_WH) as i64).collect(),
        peak_w: import.iter().copied().max().unwrap_or(0),
        cost_micro_eur: cost_micro_eur(prep, &import),
        objective: evaluate(prep, opts, &power, &battery),
        capacity_dual: vec![0.0; h],
        capacity_binding: (0..h).map(|t| import[t] >= prep.cap_eff[t] - 1).collect(),
        grid_import_w: import,
        power_w: power,
        battery_w: battery,
        flexibility,
        build_ms,
        solve_ms,
        fallback_reason: None,
    }
}

fn flexibility(prep: &Prepared, vehicle_id: String, base: &[i64], plan: &[i64]) -> Flexibility {
    let shifted_ws: i128 = base
        .iter()
        .zip(plan)
        .map(|(&b, &p)| (b - p).max(0) as i128)
        .sum::<i128>()
        * prep.dt_s as i128;
    let diff: Vec<i64> = base.iter().zip(plan).map(|(&b, &p)| b - p).collect();
    Flexibility {
        vehicle_id,
        shifted_wh: (shifted_ws / 3600) as i64,
        value_micro_eur: cost_micro_eur(prep, &diff),
    }
}

/// The uncontrolled baseline of every vehicle (rows in id order, W over the horizon): each
/// vehicle alone, full power from plug-in until its request (clamped to the battery) is met,
/// the last step rounded up. Empty when the inputs are malformed.
pub fn baseline(inputs: &GroupInputs) -> Vec<Vec<i64>> {
    match prep::prepare(inputs) {
        Ok(p) => p
            .vehicles
            .iter()
            .map(|v| asap_profile(p.h, p.dt_s, v, v.target_eu))
            .collect(),
        Err(_) => Vec::new(),
    }
}
