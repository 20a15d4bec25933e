//! [`check`]: independent verification of a schedule against its inputs, as `evflex verify`
//! runs it. Every constraint is re-checked in exact integer arithmetic, then the schedule is
//! compared with a fresh solve: lexicographically, first the total accepted shortfall, then the
//! objective within [`CheckReport::tolerance_eur`].

use std::fmt;

use crate::prep::{self, EU_PER_WH, Prepared};
use crate::solve::{
    TOL_EU, accepted_shortfall_eu, energy_figures, evaluate, grid_import, limit_import,
    solve_prepared,
};
use crate::topology::{Loads, PrepTree};
use crate::{GroupInputs, Mode, Schedule, SolveOptions, SolveStatus};
use crate::{Phase, VehicleClass};

/// One broken rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Violation {
    /// The inputs are malformed (the error text).
    MalformedInputs(String),
    /// The schedule's shape does not match the inputs.
    Shape {
        /// What is off.
        what: String,
    },
    /// Power outside the vehicle's plug-in window.
    OutsideWindow {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
    },
    /// Negative power.
    Negative {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
    },
    /// Power above the vehicle's maximum.
    AboveMax {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
        /// Maximum (W).
        max_w: i64,
    },
    /// Power above what the vehicle's tapering battery takes ([`crate::Vehicle::taper_knee_permille`]):
    /// above the taper curve at the energy the battery holds at the end of the step, with
    /// [`crate::ENERGY_TOLERANCE_WH`] of room.
    AboveTaper {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
        /// The most the taper allows in that step after the steps before it (W).
        max_w: i64,
    },
    /// MILP mode: power strictly between 0 and the minimum.
    BelowMin {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
        /// Minimum (W).
        min_w: i64,
    },
    /// A charge point's set-point that is neither 0 nor a whole step within its minimum and
    /// maximum (amps), or neither 0 nor within its minimum and maximum power (watts).
    SetPoint {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power (W).
        power_w: i64,
    },
    /// The EV load through a node of the tree above its room (limit less other load plus PV).
    NodeLimit {
        /// Node id.
        node: String,
        /// The phase (`None`: the node's W limit).
        phase: Option<crate::Phase>,
        /// Step.
        step: usize,
        /// EV load (mA on a phase, W on the W limit).
        load: i64,
        /// Room for EV load (mA or W).
        room: i64,
    },
    /// Grid import above the group capacity.
    Capacity {
        /// Step.
        step: usize,
        /// Grid import (W).
        import_w: i64,
        /// Capacity (W).
        capacity_w: i64,
    },
    /// An uncontrolled vehicle does not follow its fixed profile.
    Uncontrolled {
        /// Vehicle id.
        vehicle: String,
        /// Step.
        step: usize,
        /// Power in the schedule (W).
        power_w: i64,
        /// Fixed profile (W).
        expected_w: i64,
    },
    /// An accepted request is not met (beyond the tolerance) in a schedule claiming it is.
    EnergyShort {
        /// Vehicle id.
        vehicle: String,
        /// Delivered (Wh).
        delivered_wh: i64,
        /// Needed within the horizon (Wh).
        needed_wh: i64,
    },
    /// The battery leaves its power or energy bounds.
    Battery {
        /// Step.
        step: usize,
        /// What is off.
        what: String,
    },
    /// A reported figure differs from the one recomputed from the powers.
    Figure {
        /// Field name.
        field: &'static str,
    },
    /// The total accepted shortfall is larger than a fresh solve's.
    ShortfallNotMinimal {
        /// The schedule's total accepted shortfall (Wh).
        shortfall_wh: i64,
        /// A fresh solve's (Wh).
        reference_wh: i64,
    },
    /// The objective is worse than a fresh solve's beyond the tolerance.
    NotOptimal {
        /// The schedule's objective (EUR).
        objective: f64,
        /// A fresh solve's objective (EUR).
        reference: f64,
        /// Tolerance (EUR).
        tolerance: f64,
    },
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::MalformedInputs(e) => write!(f, "malformed inputs: {e}"),
            Self::Shape { what } => write!(f, "schedule shape: {what}"),
            Self::OutsideWindow {
                vehicle,
                step,
                power_w,
            } => {
                write!(
                    f,
                    "vehicle {vehicle}: {power_w} W in step {step}, outside its window"
                )
            }
            Self::Negative {
                vehicle,
                step,
                power_w,
            } => {
                write!(
                    f,
                    "vehicle {vehicle}: negative power {power_w} W in step {step}"
                )
            }
            Self::AboveMax {
                vehicle,
                step,
                power_w,
                max_w,
            } => {
                write!(
                    f,
                    "vehicle {vehicle}: {power_w} W in step {step} above its maximum {max_w} W"
                )
            }
            Self::AboveTaper {
                vehicle,
                step,
                power_w,
                max_w,
            } => write!(
                f,
                "vehicle {vehicle}: {power_w} W in step {step} above what its tapering battery takes ({max_w} W)"
            ),
            Self::BelowMin {
                vehicle,
                step,
                power_w,
                min_w,
            } => {
                write!(
                    f,
                    "vehicle {vehicle}: {power_w} W in step {step} below its minimum {min_w} W"
                )
            }
            Self::SetPoint {
                vehicle,
                step,
                power_w,
            } => write!(
                f,
                "vehicle {vehicle}: {power_w} W in step {step} is not a set-point its charge point takes"
            ),
            Self::NodeLimit {
                node,
                phase,
                step,
                load,
                room,
            } => match phase {
                Some(ph) => write!(
                    f,
                    "node {node} {ph:?} in step {step}: EV load {load} mA above its room {room} mA"
                ),
                None => write!(
                    f,
                    "node {node} in step {step}: EV load {load} W above its room {room} W"
                ),
            },
            Self::Capacity {
                step,
                import_w,
                capacity_w,
            } => {
                write!(
                    f,
                    "step {step}: grid import {import_w} W above capacity {capacity_w} W"
                )
            }
            Self::Uncontrolled {
                vehicle,
                step,
                power_w,
                expected_w,
            } => write!(
                f,
                "vehicle {vehicle} (uncontrolled): {power_w} W in step {step}, fixed profile says {expected_w} W"
            ),
            Self::EnergyShort {
                vehicle,
                delivered_wh,
                needed_wh,
            } => {
                write!(
                    f,
                    "vehicle {vehicle}: accepted request of {needed_wh} Wh gets only {delivered_wh} Wh"
                )
            }
            Self::Battery { step, what } => write!(f, "battery in step {step}: {what}"),
            Self::Figure { field } => {
                write!(f, "reported {field} differs from the recomputed value")
            }
            Self::ShortfallNotMinimal {
                shortfall_wh,
                reference_wh,
            } => write!(
                f,
                "total accepted shortfall {shortfall_wh} Wh, a fresh solve reaches {reference_wh} Wh"
            ),
            Self::NotOptimal {
                objective,
                reference,
                tolerance,
            } => write!(
                f,
                "objective {objective:.6} EUR exceeds a fresh solve's {reference:.6} EUR by more than {tolerance:.6} EUR"
            ),
        }
    }
}

/// The checker's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckReport {
    /// Every broken rule found (empty when the schedule is valid).
    pub violations: Vec<Violation>,
    /// The schedule's objective minus a fresh solve's (EUR); `None` when no comparison was made
    /// (a fallback schedule, malformed inputs, or the fresh solve itself fell back).
    pub objective_gap: Option<f64>,
    /// Tolerance on the objective (EUR): 1e-6 relative plus what whole-watt quantisation can
    /// move (1 W in every window step at the highest |price| and early weight, 1 W of peak per
    /// vehicle, [`crate::ENERGY_TOLERANCE_WH`] per vehicle at the best-effort weight), plus the
    /// MIP gap in MILP mode.
    pub tolerance_eur: f64,
    /// Status of the fresh solve, when one was made.
    pub reference_status: Option<SolveStatus>,
}

impl CheckReport {
    /// No violation.
    pub fn is_ok(&self) -> bool {
        self.violations.is_empty()
    }
}

/// Verify `schedule` against `inputs`: windows, maxima, battery tapers, MILP minimums, capacity
/// in every step, uncontrolled profiles, battery bounds, accepted energy (within
/// [`crate::ENERGY_TOLERANCE_WH`]), the reported figures, and optimality against a fresh solve.
pub fn check(inputs: &GroupInputs, schedule: &Schedule, opts: &SolveOptions) -> CheckReport {
    let mut report = CheckReport {
        violations: Vec::new(),
        objective_gap: None,
        tolerance_eur: 0.0,
        reference_status: None,
    };
    let prep = match prep::prepare(inputs) {
        Ok(p) => p,
        Err(e) => {
            report
                .violations
                .push(Violation::MalformedInputs(e.to_string()));
            return report;
        }
    };
    let vio = &mut report.violations;
    let h = prep.h;
    let ids: Vec<&str> = prep.vehicles.iter().map(|v| v.id.as_str()).collect();
    if schedule
        .vehicle_ids
        .iter()
        .map(String::as_str)
        .ne(ids.iter().copied())
        || schedule.power_w.len() != ids.len()
        || schedule.power_w.iter().any(|r| r.len() != h)
        || schedule.battery_w.len() != h
    {
        vio.push(Violation::Shape {
            what: format!(
                "expected {} rows of {h} steps for vehicles {ids:?} and {h} battery steps",
                ids.len()
            ),
        });
        return report;
    }
    let milp = schedule.mode == Mode::Milp;
    let power = &schedule.power_w;
    for (i, (v, row)) in prep.vehicles.iter().zip(power).enumerate() {
        // A tapering battery under the set-point above its power (model v6) is not a set-point
        // below the minimum.
        let tapering = match &prep.tree {
            Some(tree) if milp => taper_steps(&prep, tree, i, row),
            _ => vec![false; row.len()],
        };
        for (t, &p) in row.iter().enumerate() {
            let vehicle = v.id.clone();
            if v.class == VehicleClass::Uncontrolled {
                if p != v.fixed[t] {
                    vio.push(Violation::Uncontrolled {
                        vehicle,
                        step: t,
                        power_w: p,
                        expected_w: v.fixed[t],
                    });
                }
            } else if p < 0 {
                vio.push(Violation::Negative {
                    vehicle,
                    step: t,
                    power_w: p,
                });
            } else if p > 0 && (t < v.start || t >= v.end) {
                vio.push(Violation::OutsideWindow {
                    vehicle,
                    step: t,
                    power_w: p,
                });
            } else if p > v.max_w {
                vio.push(Violation::AboveMax {
                    vehicle,
                    step: t,
                    power_w: p,
                    max_w: v.max_w,
                });
            } else if milp && p > 0 && p < v.min_w && !tapering[t] {
                vio.push(Violation::BelowMin {
                    vehicle,
                    step: t,
                    power_w: p,
                    min_w: v.min_w,
                });
            }
        }
    }
    check_taper(&prep, power, vio);
    if let Some(tree) = &prep.tree {
        for (i, (v, row)) in prep.vehicles.iter().zip(power).enumerate() {
            let tapering = taper_steps(&prep, tree, i, row);
            for (t, &p) in row.iter().enumerate() {
                if p > 0 && !tree.cps[i].valid(p) && !tapering[t] {
                    vio.push(Violation::SetPoint {
                        vehicle: v.id.clone(),
                        step: t,
                        power_w: p,
                    });
                }
            }
        }
        let clean: Vec<Vec<i64>> = power
            .iter()
            .map(|r| r.iter().map(|&p| p.max(0)).collect())
            .collect();
        for ex in Loads::new(tree, &clean).excesses(tree) {
            vio.push(Violation::NodeLimit {
                node: tree.nodes[ex.node].id.clone(),
                phase: ex.phase.map(|ph| [Phase::L1, Phase::L2, Phase::L3][ph]),
                step: ex.t,
                load: ex.load,
                room: ex.room,
            });
        }
    }
    check_battery(&prep, &schedule.battery_w, vio);
    let import = grid_import(&prep, power, &schedule.battery_w);
    let counted = limit_import(&prep, power, &schedule.battery_w);
    for (t, &g) in counted.iter().enumerate() {
        if g > prep.cap_eff[t] {
            vio.push(Violation::Capacity {
                step: t,
                import_w: g,
                capacity_w: prep.cap_eff[t],
            });
        }
    }
    if import != schedule.grid_import_w {
        vio.push(Violation::Figure {
            field: "grid_import_w",
        });
    }
    let figures = energy_figures(&prep, power);
    let delivered: Vec<i64> = figures.iter().map(|f| (f.0 / EU_PER_WH) as i64).collect();
    if delivered != schedule.delivered_wh {
        vio.push(Violation::Figure {
            field: "delivered_wh",
        });
    }
    let claims_met = matches!(
        schedule.status,
        SolveStatus::Optimal | SolveStatus::TimeLimit
    );
    if claims_met {
        for ((d, unmet), v) in figures.iter().zip(&prep.vehicles) {
            if v.class == VehicleClass::Guaranteed && *unmet > TOL_EU {
                vio.push(Violation::EnergyShort {
                    vehicle: v.id.clone(),
                    delivered_wh: (d / EU_PER_WH) as i64,
                    needed_wh: (v.needed_eu / EU_PER_WH) as i64,
                });
            }
        }
    }
    if schedule.status == SolveStatus::Fallback {
        return report;
    }

    // Optimality against a fresh solve.
    let reference = solve_prepared(
        &prep,
        opts,
        None,
        std::time::Instant::now() + std::time::Duration::from_millis(opts.time_limit_ms),
    );
    report.reference_status = Some(reference.status);
    if reference.status == SolveStatus::Fallback {
        return report;
    }
    let n_tol = prep.vehicles.len() as i128 * TOL_EU;
    let short = accepted_shortfall_eu(&prep, power);
    let ref_short = accepted_shortfall_eu(&prep, &reference.power_w);
    if short > ref_short + n_tol {
        report.violations.push(Violation::ShortfallNotMinimal {
            shortfall_wh: (short / EU_PER_WH) as i64,
            reference_wh: (ref_short / EU_PER_WH) as i64,
        });
    }
    let obj = evaluate(&prep, opts, power, &schedule.battery_w);
    let ref_obj = reference.objective;
    let tol = tolerance_eur(
        &prep,
        opts,
        ref_obj,
        milp.then_some(reference.mip_gap.max(opts.mip_gap)),
    );
    report.tolerance_eur = tol;
    report.objective_gap = Some(obj - ref_obj);
    if short <= ref_short + n_tol && obj - ref_obj > tol {
        report.violations.push(Violation::NotOptimal {
            objective: obj,
            reference: ref_obj,
            tolerance: tol,
        });
    }
    report
}

fn tolerance_eur(
    prep: &Prepared,
    opts: &SolveOptions,
    reference: f64,
    mip_gap: Option<f64>,
) -> f64 {
    let max_price = prep
        .price
        .iter()
        .map(|p| p.unsigned_abs())
        .max()
        .unwrap_or(0) as f64
        / 1e6;
    let flex: Vec<_> = prep
        .vehicles
        .iter()
        .filter(|v| v.class != VehicleClass::Uncontrolled)
        .collect();
    let steps: usize = flex.iter().map(|v| v.end - v.start).sum();
    let per_w_step = 1e-3
        * prep.dt_h
        * (max_price + 1.1 * opts.early_weight_eur_per_kwh_step.abs() * (prep.h as f64 + 1.0));
    let w_soft = crate::lp::soft_weight_eur_per_kwh(prep, opts);
    let quant = steps as f64 * per_w_step
        + flex.len() as f64
            * (1e-3 * opts.peak_weight_eur_per_kw.abs()
                + w_soft * crate::ENERGY_TOLERANCE_WH as f64 / 1000.0);
    1e-6 * reference.abs() + quant + mip_gap.map_or(0.0, |g| g * reference.abs()) + 1e-9
}

/// Every tapering vehicle's power within its taper in every step of its window, in exact
/// integers: `p_t · B · (1000 − knee) ≤ 1000 · P · (B − E_t + tolerance)` with `E_t` the energy
/// at the end of step `t` (`crate::taper`), the tolerance [`crate::ENERGY_TOLERANCE_WH`].
/// Per step of vehicle `i`'s `row`, whether a power that is not a whole set-point is a tapering
/// battery under the set-point above it (model v6, `amps::fill_to_taper`): an opted-in vehicle on
/// an amps point whose taper bound there, at the energy its row gives it before the step, is below
/// that set-point's power. (Its power must still keep the taper, checked with every row, and
/// every limit counts the set-point.)
fn taper_steps(prep: &Prepared, tree: &PrepTree, i: usize, row: &[i64]) -> Vec<bool> {
    let v = &prep.vehicles[i];
    let cp = &tree.cps[i];
    let mut out = vec![false; row.len()];
    let Some(taper) = &v.taper else {
        return out;
    };
    // Not for a vehicle with a minimum of its own above the point's (`amps::fill_to_taper`).
    if v.class == VehicleClass::Uncontrolled || !cp.amps || cp.min_ma != cp.floor_ma || v.max_w <= 0
    {
        return out;
    }
    let w_eu = prep.dt_s as i128 * v.eff as i128;
    let mut e = taper.e0_eu;
    for t in v.start..v.end.min(row.len()) {
        let p = row[t];
        out[t] = p > 0 && p <= v.max_w && taper.bound_w(e, w_eu) < cp.limit_w(p);
        e += p.max(0) as i128 * w_eu;
    }
    out
}

fn check_taper(prep: &Prepared, power: &[Vec<i64>], vio: &mut Vec<Violation>) {
    for (v, row) in prep.vehicles.iter().zip(power) {
        let Some(tp) = &v.taper else { continue };
        let w = prep.dt_s as i128 * v.eff as i128;
        let mut e = tp.e0_eu;
        for (t, &p) in row.iter().enumerate().take(v.end).skip(v.start) {
            let p = p.max(0);
            let before = e;
            e += p as i128 * w;
            if tp.slack(p, e, TOL_EU) < 0 {
                vio.push(Violation::AboveTaper {
                    vehicle: v.id.clone(),
                    step: t,
                    power_w: p,
                    max_w: tp.bound_w(before, w),
                });
            }
        }
    }
}

fn check_battery(prep: &Prepared, battery: &[i64], vio: &mut Vec<Violation>) {
    let Some(b) = prep.battery.as_ref() else {
        if let Some((t, _)) = battery.iter().enumerate().find(|(_, x)| **x != 0) {
            vio.push(Violation::Battery {
                step: t,
                what: "power without a battery".into(),
            });
        }
        return;
    };
    let dt = prep.dt_s as i128;
    let cap = b.capacity_wh as i128 * EU_PER_WH;
    let mut soc = b.energy_wh as i128 * EU_PER_WH;
    for (t, &x) in battery.iter().enumerate() {
        if x > b.max_charge_w || -x > b.max_discharge_w {
            vio.push(Violation::Battery {
                step: t,
                what: format!("{x} W beyond its power limits"),
            });
        }
        soc += if x > 0 {
            x as i128 * dt * b.efficiency_permille as i128
        } else {
            x as i128 * dt * 1000
        };
        if soc < 0 || soc > cap {
            vio.push(Violation::Battery {
                step: t,
                what: format!("state of energy {} Wh out of bounds", soc / EU_PER_WH),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Vehicle, solve, taper_max_power_w};

    /// A 60 kWh car at 90 % with its knee at 80 %, 11 kW, four quarter hours.
    fn tapering_group() -> GroupInputs {
        GroupInputs {
            group_id: 1,
            start_timestep: 0,
            time_step_s: 900,
            horizon: 4,
            capacity_w: vec![22_000; 4],
            other_load_w: vec![0; 4],
            pv_w: vec![0; 4],
            price_micro_eur_per_kwh: vec![100_000; 4],
            battery: None,
            vehicles: vec![Vehicle {
                id: "a".into(),
                arrival: 0,
                departure: 4,
                max_power_w: 11_000,
                min_power_w: 0,
                energy_requested_wh: 6_000,
                battery_capacity_wh: Some(60_000),
                energy_on_arrival_wh: Some(54_000),
                class: VehicleClass::BestEffort,
                efficiency_permille: 1000,
                taper_knee_permille: Some(800),
                energy_wanted_wh: None,
            }],
            topology: None,
        }
    }

    fn taper_violations(r: &CheckReport) -> Vec<(usize, i64, i64)> {
        r.violations
            .iter()
            .filter_map(|v| match v {
                Violation::AboveTaper {
                    step,
                    power_w,
                    max_w,
                    ..
                } => Some((*step, *power_w, *max_w)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_plan_above_the_taper_is_rejected() {
        let g = tapering_group();
        let opts = SolveOptions::default();
        let mut s = solve(&g, &opts, None).unwrap();
        assert!(taper_violations(&check(&g, &s, &opts)).is_empty());

        // Hand-made: full power for half an hour, as if the battery did not taper.
        s.power_w = vec![vec![11_000, 11_000, 0, 0]];
        let r = check(&g, &s, &opts);
        let found = taper_violations(&r);
        assert_eq!(found.len(), 2, "{:?}", r.violations);
        // Step 0 may take the curve at the energy it ends with: 11000·6000/14750 W.
        assert_eq!(found[0], (0, 11_000, 4_474));
        assert_eq!(found[1].0, 1);
        assert!(found[1].2 < found[0].2);
        assert!(r.violations[0].to_string().contains("tapering battery"));

        // Hand-made within the curve (by the public helper, at each step's end energy, floored
        // with a watt of room): accepted by the taper check.
        let mut e: f64 = 54_000.0;
        let mut row = Vec::new();
        for _ in 0..4 {
            // p = curve(e + p/4): solve the linear equation, then floor.
            let p = (11_000.0 * (60_000.0 - e) / 12_000.0 / (1.0 + 11_000.0 / 48_000.0)).floor();
            assert!(p <= taper_max_power_w(11_000.0, 60_000.0, e + p / 4.0, 0.8));
            e += p / 4.0;
            row.push(p as i64);
        }
        s.power_w = vec![row.clone()];
        assert!(taper_violations(&check(&g, &s, &opts)).is_empty());
        // 20 W more in the last step is beyond the 1 Wh of tolerance (about 1 W there).
        row[3] += 20;
        s.power_w = vec![row];
        assert_eq!(taper_violations(&check(&g, &s, &opts)).len(), 1);
    }
}
