//! The LP/MILP itself: built with `good_lp`, solved by HiGHS (one thread, deterministic).
//!
//! Units inside the solver: kW, kWh, hours, and the objective in milli-EUR (so the small
//! tie-breaking terms stay well above HiGHS's 1e-7 tolerances). Only variables inside each
//! vehicle's window exist. See `DESIGN.md` for the formulation.
//!
//! **Battery taper** ([`crate::Vehicle::taper_knee_permille`], `crate::taper`): for a vehicle
//! with capacity `B`, energy `E0` at the start of its window, knee `k` and maximum `P`, every
//! step `t` of the window has the linear row `p_t ≤ P·(B − E_t) / (B·(1 − k))` with
//! `E_t = E0 + η·Δt·Σ_{s ≤ t} p_s` the energy at the **end** of the step (conservative: the
//! battery takes that power throughout the step). Above the knee it binds; below it `p_t ≤ P`
//! already does, so rows that cannot bind are left out (a vehicle without a knee gets none, and
//! its model is as before). Together the rows keep `E_t ≤ B`; the energy row's target is the
//! request clamped to `B − E0` (`crate::prep`). The same rows hold in MILP mode (on the
//! integer current steps of an amps point, `scale` kW each).

use std::time::Instant;

use good_lp::{
    Constraint, Expression, ProblemVariables, SolverModel, Variable, VariableDefinition, variable,
};
use highs::{HighsModelStatus, HighsSolutionStatus};

use crate::VehicleClass;
use crate::prep::{EU_PER_WH, Prepared};
use crate::topology::Loads;
use crate::{Mode, SolveOptions};

/// Objective scale: the solver minimises milli-EUR.
const OBJ_SCALE: f64 = 1000.0;
/// kWh per energy unit (W·s·‰).
const KWH_PER_EU: f64 = 1.0 / (EU_PER_WH as f64 * 1000.0);

/// Which lexicographic phase to solve.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Phase {
    /// Accepted energy as hard equalities; minimise cost (the usual, single solve).
    Hard,
    /// Minimise the total shortfall of accepted energy (only when `Hard` is infeasible).
    MinShortfall,
    /// Minimise cost with the total accepted shortfall capped at the given kWh.
    CostCapped(f64),
}

/// Solver outcome.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LpStatus {
    /// Optimal (MILP: within the gap).
    Optimal,
    /// Time limit with a feasible incumbent (MILP only).
    TimeLimit,
    /// The phase is infeasible.
    Infeasible,
    /// No usable answer (time limit without incumbent, solver error).
    Failed(String),
}

/// What a phase returns.
#[derive(Debug, Clone)]
pub(crate) struct LpResult {
    pub status: LpStatus,
    /// Power (kW) per prepared vehicle over the full horizon (zeros outside the window).
    pub p_kw: Vec<Vec<f64>>,
    /// Net battery power (kW, + = charging).
    pub battery_kw: Vec<f64>,
    /// Shadow price of the capacity bound (EUR per kW for one step, ≥ 0).
    pub cap_dual: Vec<f64>,
    /// Solver objective (scaled back to EUR).
    pub objective: f64,
    /// MIP gap (0 for LP).
    pub mip_gap: f64,
    pub build_ms: f64,
    pub solve_ms: f64,
}

impl LpResult {
    /// An infeasible answer without a solve (known infeasible from a relaxation).
    pub(crate) fn infeasible() -> Self {
        Self::failed(LpStatus::Infeasible, 0.0, 0.0)
    }

    fn failed(status: LpStatus, build_ms: f64, solve_ms: f64) -> Self {
        Self {
            status,
            p_kw: Vec::new(),
            battery_kw: Vec::new(),
            cap_dual: Vec::new(),
            objective: f64::NAN,
            mip_gap: f64::NAN,
            build_ms,
            solve_ms,
        }
    }
}

/// Weight (EUR per kWh) of best-effort shortfall: it dominates every marginal cost of delivering
/// one more kWh (energy at the highest |price|, the peak term, the early term, through the
/// least efficient vehicle and battery), with a factor 2 margin, so best-effort energy is
/// delivered whenever the accepted energy allows it.
pub(crate) fn soft_weight_eur_per_kwh(prep: &Prepared, opts: &SolveOptions) -> f64 {
    let max_price = prep
        .price
        .iter()
        .map(|p| p.unsigned_abs())
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    let mut eta = prep.vehicles.iter().map(|v| v.eff).min().unwrap_or(1000) as f64 / 1000.0;
    if let Some(b) = &prep.battery {
        eta *= b.efficiency_permille as f64 / 1000.0;
    }
    let per_grid_kwh = max_price
        + opts.peak_weight_eur_per_kw.abs() / prep.dt_h
        + 2.0 * opts.early_weight_eur_per_kwh_step.abs() * (prep.h as f64 + 1.0);
    2.0 * per_grid_kwh / (eta * eta) + 1.0
}

/// Early-delivery coefficient (EUR per kW in step `t`) for the vehicle of rank `r` of `n`:
/// `w·Δt·(t+1)·(1 + (n−1−r)/(10n))`; the rank factor breaks ties between vehicles
/// deterministically: a lower rank (earlier id) pays more for lateness, so it charges earlier.
pub(crate) fn early_coef(opts: &SolveOptions, dt_h: f64, t: usize, r: usize, n: usize) -> f64 {
    opts.early_weight_eur_per_kwh_step
        * dt_h
        * (t as f64 + 1.0)
        * (1.0 + (n.max(1) - 1 - r.min(n.max(1) - 1)) as f64 / (10.0 * n.max(1) as f64))
}

/// The taper rows of one vehicle (module docs): for each step `t` of its window (variables
/// `p`, each `scale` kW), `scale·p_t + c·e_t ≤ c·(B − E0)` with `e_t = w·Σ_{s ≤ t} scale·p_s` the
/// energy delivered by the end of the step (kWh), `c = P / (B (1 − k))` (per hour) and `w = η·Δt`
/// (h), i.e. `p_t ≤ P (B − E_t) / (B (1 − k))` at the energy `E_t = E0 + e_t` the step ends with.
/// Rows that cannot bind are left out: a step whose end energy is at most
/// `E0 + min(most_kwh, (t + 1)·step_kwh)` (the energy row's bound, one step at the variable's
/// maximum `step_kwh`) with the curve there still above that maximum. Those are a prefix of the
/// window; from the first binding step on, `e_t` is a variable chained step to step
/// (`e_t = e_{t−1} + w·scale·p_t`), so the rows stay sparse.
#[allow(clippy::too_many_arguments)]
fn taper_rows(
    v: &mut Vars,
    cons: &mut Vec<Constraint>,
    tp: &crate::taper::Taper,
    p: &[Variable],
    scale: f64,
    step_kwh: f64,
    most_kwh: f64,
    w_h: f64,
) {
    let cap_kwh = tp.cap_eu as f64 * KWH_PER_EU;
    let e0_kwh = tp.e0_eu as f64 * KWH_PER_EU;
    let span_kwh = cap_kwh * (1.0 - tp.knee_fraction());
    if span_kwh <= 0.0 || p.is_empty() {
        return;
    }
    let c = tp.p_w as f64 / 1000.0 / span_kwh;
    let max_kw = step_kwh / w_h;
    let mut prefix = Expression::with_capacity(p.len());
    let mut prev: Option<Variable> = None;
    for (k, &pk) in p.iter().enumerate() {
        let e_max = e0_kwh + most_kwh.min(step_kwh * (k + 1) as f64);
        if prev.is_none() && c * (cap_kwh - e_max) >= max_kw * (1.0 + 1e-9) {
            prefix.add_mul(w_h * scale, pk);
            continue;
        }
        let (e, _) = v.add(variable().min(0.0));
        let mut def = Expression::from(e) - w_h * scale * pk;
        match prev {
            Some(ep) => def -= ep,
            None => def -= prefix.clone(),
        }
        cons.push(def.eq(0.0));
        cons.push((scale * pk + c * e).leq(c * (cap_kwh - e0_kwh)));
        prev = Some(e);
    }
}

struct Vars {
    vars: ProblemVariables,
    n: usize,
}

impl Vars {
    fn add(&mut self, def: VariableDefinition) -> (Variable, usize) {
        self.n += 1;
        (self.vars.add(def), self.n - 1)
    }
}

/// Build and solve one phase. `deadline` is the wall-clock instant by which the solver must
/// be done; HiGHS gets the remaining time as its `time_limit`.
pub(crate) fn solve_phase(
    prep: &Prepared,
    opts: &SolveOptions,
    phase: Phase,
    deadline: Instant,
) -> LpResult {
    let t0 = Instant::now();
    let h = prep.h;
    let dt = prep.dt_h;
    let milp = opts.mode == Mode::Milp;
    let mut v = Vars {
        vars: ProblemVariables::new(),
        n: 0,
    };
    let mut obj = Expression::with_capacity(64 * h);
    let mut cons: Vec<Constraint> = Vec::with_capacity(4 * h + prep.vehicles.len());
    let w_soft = soft_weight_eur_per_kwh(prep, opts);

    // Grid import g (capacity as its upper bound), export e only where PV exists.
    let mut balance: Vec<Expression> = (0..h).map(|_| Expression::with_capacity(16)).collect();
    let mut g_vars = Vec::with_capacity(h);
    let mut g_cols = Vec::with_capacity(h);
    for (t, bal) in balance.iter_mut().enumerate() {
        let (g, gi) = v.add(variable().min(0.0).max(prep.cap_eff[t] as f64 / 1000.0));
        g_vars.push(g);
        g_cols.push(gi);
        obj.add_mul(prep.price[t] as f64 / 1e6 * dt * OBJ_SCALE, g);
        bal.add_mul(1.0, g);
        if prep.pv[t] > 0 {
            let (e, _) = v.add(variable().min(0.0).max(prep.pv[t] as f64 / 1000.0));
            bal.add_mul(-1.0, e);
        }
    }

    // Vehicles: power only inside the window.
    let flex: Vec<usize> = (0..prep.vehicles.len())
        .filter(|&i| prep.vehicles[i].class != VehicleClass::Uncontrolled)
        .collect();
    let n_flex = flex.len();
    let mut p_cols: Vec<(usize, usize, f64, Vec<usize>)> = Vec::with_capacity(n_flex);
    // Tree rows per (node, step): three phase rows (A) and the W row (kW); built lazily.
    let tree = prep.tree.as_ref();
    let n_nodes = tree.map_or(0, |t| t.nodes.len());
    let mut node_rows: Vec<Option<Expression>> = vec![None; n_nodes * h * 4];
    let mut hard_short = Expression::with_capacity(n_flex);
    for (rank, &i) in flex.iter().enumerate() {
        let pv_ = &prep.vehicles[i];
        let total_eu = pv_.hard_eu + pv_.soft_eu;
        if pv_.start >= pv_.end || pv_.max_w <= 0 || total_eu <= 0 {
            continue;
        }
        let max_kw = pv_.max_w as f64 / 1000.0;
        let mut min_kw = pv_.min_w as f64 / 1000.0;
        let eta = pv_.eff as f64 / 1000.0;
        // With a charge point taking amps, the MILP's variable counts whole current steps
        // (`scale` kW each); otherwise it is the power in kW (`scale` 1).
        let cp = tree.map(|tr| &tr.cps[i]);
        let int_amps = milp && cp.is_some_and(|c| c.amps);
        let (scale, ub) = match cp {
            Some(c) if int_amps => (
                c.step_ma as f64 * c.mw_per_a as f64 / 1e9,
                (c.max_ma / c.step_ma) as f64,
            ),
            _ => (1.0, max_kw),
        };
        if int_amps {
            min_kw = min_kw.max(scale);
        }
        // Current (A) per unit of the variable, on each loaded phase.
        let amps_per_unit = cp.map_or(0.0, |c| {
            if int_amps {
                c.step_ma as f64 / 1000.0
            } else {
                1e6 / c.mw_per_a as f64
            }
        });
        let mut energy = Expression::with_capacity(pv_.end - pv_.start + 2);
        let mut cols = Vec::with_capacity(pv_.end - pv_.start);
        let mut p_vars = Vec::with_capacity(pv_.end - pv_.start);
        for (t, bal) in balance.iter_mut().enumerate().take(pv_.end).skip(pv_.start) {
            let def = if int_amps {
                variable().integer().min(0.0).max(ub)
            } else {
                variable().min(0.0).max(ub)
            };
            let (p, pi) = v.add(def);
            cols.push(pi);
            p_vars.push(p);
            energy.add_mul(eta * dt * scale, p);
            bal.add_mul(-scale, p);
            obj.add_mul(early_coef(opts, dt, t, rank, n_flex) * OBJ_SCALE * scale, p);
            if int_amps {
                let c = cp.expect("int_amps has a charge point");
                let (u, _) = v.add(variable().binary());
                cons.push((Expression::from(p) - ub * u).leq(0.0));
                cons.push((Expression::from(p) - (c.min_ma / c.step_ma) as f64 * u).geq(0.0));
            } else if milp && pv_.min_w > 0 {
                let (u, _) = v.add(variable().binary());
                cons.push((Expression::from(p) - max_kw * u).leq(0.0));
                cons.push((Expression::from(p) - min_kw * u).geq(0.0));
            }
            if let (Some(tr), Some(c)) = (tree, cp) {
                for &n in &c.path {
                    let node = &tr.nodes[n];
                    let base = (n * h + t) * 4;
                    for ph in 0..3 {
                        if c.load[ph] && node.phase_room_ma[ph].is_some() {
                            node_rows[base + ph]
                                .get_or_insert_with(|| Expression::with_capacity(8))
                                .add_mul(amps_per_unit, p);
                        }
                    }
                    if node.room_w.is_some() {
                        node_rows[base + 3]
                            .get_or_insert_with(|| Expression::with_capacity(8))
                            .add_mul(scale, p);
                    }
                }
            }
        }
        if pv_.soft_eu > 0 {
            let (s, _) = v.add(variable().min(0.0).max(pv_.soft_eu as f64 * KWH_PER_EU));
            energy.add_mul(1.0, s);
            if !matches!(phase, Phase::MinShortfall) {
                obj.add_mul(w_soft * OBJ_SCALE, s);
            }
        }
        if pv_.hard_eu > 0 && !matches!(phase, Phase::Hard) {
            let (s, _) = v.add(variable().min(0.0).max(pv_.hard_eu as f64 * KWH_PER_EU));
            energy.add_mul(1.0, s);
            hard_short.add_mul(1.0, s);
        }
        let target = total_eu as f64 * KWH_PER_EU;
        let min_step = (milp && pv_.min_w > 0) || int_amps;
        if min_step {
            // With a minimum power an exact energy may be unreachable (request < one step at the
            // minimum): allow overshooting by at most one step at the minimum.
            cons.push(energy.clone().leq(target + min_kw * dt * eta));
            cons.push(energy.geq(target));
        } else {
            cons.push(energy.eq(target));
        }
        if let Some(tp) = &pv_.taper {
            // Taper rows (module docs): the most the vehicle can hold by the end of a step is
            // what the energy row and its maximum allow; a step that cannot end above the knee
            // needs no row (its maximum already binds).
            let most_kwh = target + if min_step { min_kw * dt * eta } else { 0.0 };
            taper_rows(
                &mut v,
                &mut cons,
                tp,
                &p_vars,
                scale,
                ub * scale * eta * dt,
                most_kwh,
                eta * dt,
            );
        }
        p_cols.push((i, pv_.start, scale, cols));
    }

    // Stationary battery: charge c, discharge d, state of energy soc (efficiency on charging).
    let mut bat_cols: Vec<(usize, usize)> = Vec::new();
    if let Some(b) = prep.battery.as_ref().filter(|b| b.capacity_wh > 0) {
        let eta = b.efficiency_permille as f64 / 1000.0;
        let cap = b.capacity_wh as f64 / 1000.0;
        let mut prev_soc: Option<Variable> = None;
        for bal in balance.iter_mut() {
            let (c, ci) = v.add(variable().min(0.0).max(b.max_charge_w as f64 / 1000.0));
            let (d, di) = v.add(variable().min(0.0).max(b.max_discharge_w as f64 / 1000.0));
            let (soc, _) = v.add(variable().min(0.0).max(cap));
            bat_cols.push((ci, di));
            bal.add_mul(-1.0, c);
            bal.add_mul(1.0, d);
            let mut e = Expression::from(soc) - eta * dt * c + dt * d;
            let rhs = match prev_soc {
                Some(ps) => {
                    e -= ps;
                    0.0
                }
                None => b.energy_wh as f64 / 1000.0,
            };
            cons.push(e.eq(rhs));
            prev_soc = Some(soc);
        }
    }

    // Peak: P ≥ g[t].
    if opts.peak_weight_eur_per_kw != 0.0 {
        let (pk, _) = v.add(variable().min(0.0));
        obj.add_mul(opts.peak_weight_eur_per_kw * OBJ_SCALE, pk);
        for &g in &g_vars {
            cons.push((Expression::from(g) - pk).leq(0.0));
        }
    }

    match phase {
        Phase::Hard => {}
        Phase::MinShortfall => obj = hard_short.clone() * OBJ_SCALE,
        // The minimal shortfall found by the previous phase, with room for HiGHS's feasibility
        // tolerance: at 1e-6 a MILP's postsolve could land 1e-6 over it and report an error
        // (seen in the property tests; `tests/properties.rs`, tight shortfall cap).
        Phase::CostCapped(cap) => cons.push(hard_short.clone().leq(cap + 1e-5 * cap.max(1.0))),
    }

    // Tree rows: EV load through each node ≤ its room less the uncontrolled (fixed) load.
    if let Some(tr) = tree {
        let fixed_rows: Vec<Vec<i64>> = prep.vehicles.iter().map(|v| v.fixed.clone()).collect();
        let fixed = Loads::new(tr, &fixed_rows);
        for (k, row) in node_rows.into_iter().enumerate() {
            let Some(e) = row else { continue };
            let (n, t, r) = (k / 4 / h, k / 4 % h, k % 4);
            let node = &tr.nodes[n];
            let rhs = if r < 3 {
                let room = node.phase_room_ma[r].as_ref().map_or(0, |x| x[t]);
                (room - fixed.phase_ma(n, r, t)).max(0) as f64 / 1000.0
            } else {
                let room = node.room_w.as_ref().map_or(0, |x| x[t]);
                (room - fixed.power_w(n, t)).max(0) as f64 / 1000.0
            };
            cons.push(e.leq(rhs));
        }
    }

    // Balance rows: g − e − Σp − c + d = fixed EV + other − pv (kW).
    for (t, bal) in balance.into_iter().enumerate() {
        let rhs = (prep.fixed_w[t] + prep.other[t] - prep.pv[t]) as f64 / 1000.0;
        cons.push(bal.eq(rhs));
    }

    let mut problem = v.vars.minimise(obj).using(good_lp::highs);
    for c in cons {
        problem.add_constraint(c);
    }
    let mut model = match problem.try_into_inner() {
        Ok(m) => m,
        Err(e) => {
            let ms = t0.elapsed().as_secs_f64() * 1e3;
            return LpResult::failed(LpStatus::Failed(format!("model build: {e}")), ms, 0.0);
        }
    };
    let remaining = deadline
        .saturating_duration_since(Instant::now())
        .as_secs_f64();
    let _ = model.try_set_option("threads", 1);
    let _ = model.try_set_option("parallel", "off");
    let _ = model.try_set_option("random_seed", 0);
    let _ = model.try_set_option("time_limit", remaining.max(0.0));
    if milp {
        let _ = model.try_set_option("mip_rel_gap", opts.mip_gap.max(0.0));
    }
    let build_ms = t0.elapsed().as_secs_f64() * 1e3;
    if remaining <= 0.0 {
        return LpResult::failed(
            LpStatus::Failed("deadline passed before the solve".into()),
            build_ms,
            0.0,
        );
    }
    let t1 = Instant::now();
    let solved = model.try_solve();
    let solve_ms = t1.elapsed().as_secs_f64() * 1e3;
    let solved = match solved {
        Ok(s) => s,
        Err(e) => {
            return LpResult::failed(
                LpStatus::Failed(format!("HiGHS: {e:?}")),
                build_ms,
                solve_ms,
            );
        }
    };
    let feasible = solved.primal_solution_status() == HighsSolutionStatus::Feasible;
    let status = match solved.status() {
        HighsModelStatus::Optimal => LpStatus::Optimal,
        HighsModelStatus::Infeasible | HighsModelStatus::UnboundedOrInfeasible => {
            LpStatus::Infeasible
        }
        HighsModelStatus::ReachedTimeLimit
        | HighsModelStatus::ReachedIterationLimit
        | HighsModelStatus::ReachedInterrupt
        | HighsModelStatus::ReachedSolutionLimit
            if milp && feasible =>
        {
            LpStatus::TimeLimit
        }
        HighsModelStatus::ReachedTimeLimit => LpStatus::Failed("solver time limit".into()),
        s => LpStatus::Failed(format!("HiGHS status {s:?}")),
    };
    if !matches!(status, LpStatus::Optimal | LpStatus::TimeLimit) || !feasible {
        let status = if status == LpStatus::Optimal {
            LpStatus::Failed("no primal solution".into())
        } else {
            status
        };
        return LpResult::failed(status, build_ms, solve_ms);
    }
    let sol = solved.get_solution();
    let cols = sol.columns();
    let mut p_kw = vec![Vec::new(); prep.vehicles.len()];
    for (i, start, scale, pc) in &p_cols {
        let mut row = vec![0.0; h];
        for (k, &c) in pc.iter().enumerate() {
            row[start + k] = cols[c] * scale;
        }
        p_kw[*i] = row;
    }
    for row in p_kw.iter_mut().filter(|r| r.is_empty()) {
        *row = vec![0.0; h];
    }
    let battery_kw = if bat_cols.is_empty() {
        vec![0.0; h]
    } else {
        bat_cols.iter().map(|&(c, d)| cols[c] - cols[d]).collect()
    };
    let duals = sol.dual_columns();
    let cap_dual = g_cols
        .iter()
        .map(|&c| {
            if milp || duals.len() <= c {
                0.0
            } else {
                (-duals[c] / OBJ_SCALE).max(0.0)
            }
        })
        .collect();
    let mip_gap = if milp {
        let g = solved.mip_gap();
        if g.is_finite() { g.max(0.0) } else { 0.0 }
    } else {
        0.0
    };
    LpResult {
        status,
        p_kw,
        battery_kw,
        cap_dual,
        objective: solved.objective_value() / OBJ_SCALE,
        mip_gap,
        build_ms,
        solve_ms,
    }
}
