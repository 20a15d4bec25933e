//! Whole set-points under a tree of limits: rounding, repair and top-up (`DESIGN.md`, "The
//! electrical model").
//!
//! The LP relaxation's powers are floored to each charge point's whole current steps (below
//! the minimum: 0); a deterministic repair lowers flexible vehicles in reverse priority until
//! every node, phase and step and the group's grid import are within their limits; then each
//! flexible vehicle (accepted first, by id) gets back the energy rounding took, one whole
//! set-point at a time, in the steps the LP used (cheapest first) and then in any other step
//! of its window, never above any limit on its path. Everything here is exact integer
//! arithmetic on the [`Loads`] of the tree.

use crate::prep::Prepared;
use crate::topology::{Loads, PrepTree};

/// Grid import headroom tracker for the group row (W per step).
struct Group {
    ev_w: Vec<i64>,
}

impl Group {
    /// The EV load of `power` per step, each vehicle counted at what its set-point lets it
    /// draw ([`crate::topology::PrepCp::limit_w`]).
    fn new(prep: &Prepared, tree: &PrepTree, power: &[Vec<i64>]) -> Self {
        let mut ev_w = vec![0i64; prep.h];
        for (i, row) in power.iter().enumerate() {
            for (t, &p) in row.iter().enumerate() {
                ev_w[t] += tree.cps[i].limit_w(p);
            }
        }
        Self { ev_w }
    }

    fn room(&self, prep: &Prepared, battery: &[i64], t: usize) -> i64 {
        prep.cap_eff[t] - (self.ev_w[t] + battery[t] + prep.other[t] - prep.pv[t])
    }
}

/// Floor an LP row (kW) to valid set-points (W) of vehicle `i`'s charge point.
pub(crate) fn quantise(
    tree: &PrepTree,
    i: usize,
    p_kw: &[f64],
    start: usize,
    end: usize,
) -> Vec<i64> {
    let cp = &tree.cps[i];
    p_kw.iter()
        .enumerate()
        .map(|(t, &kw)| {
            if t < start || t >= end {
                return 0;
            }
            let w = (kw * 1000.0 + 1e-3).floor() as i64;
            cp.floor_power(w.max(0))
        })
        .collect()
}

/// Lower vehicle `i` in step `t` to `new` W, keeping the trackers in step.
fn set(
    tree: &PrepTree,
    loads: &mut Loads,
    group: &mut Group,
    power: &mut [Vec<i64>],
    i: usize,
    t: usize,
    new: i64,
) {
    let old = power[i][t];
    loads.change(tree, i, t, old, new);
    group.ev_w[t] += tree.cps[i].limit_w(new) - tree.cps[i].limit_w(old);
    power[i][t] = new;
}

/// Make the schedule feasible: battery charging first (group row), then flexible vehicles in
/// reverse `order` (the priority order), each lowered to the largest valid set-point that
/// removes the excess (or to 0).
pub(crate) fn repair(
    prep: &Prepared,
    tree: &PrepTree,
    order: &[usize],
    power: &mut [Vec<i64>],
    battery: &mut [i64],
) {
    let mut loads = Loads::new(tree, power);
    let mut group = Group::new(prep, tree, power);
    for t in 0..prep.h {
        let mut excess = -group.room(prep, battery, t);
        if excess > 0 && battery[t] > 0 {
            let r = battery[t].min(excess);
            battery[t] -= r;
            excess -= r;
        }
        for &i in order.iter().rev() {
            if excess <= 0 {
                break;
            }
            let p = power[i][t];
            if p == 0 {
                continue;
            }
            let cp = &tree.cps[i];
            let np = cp.floor_power(p - excess);
            set(tree, &mut loads, &mut group, power, i, t, np);
            excess -= cp.limit_w(p) - cp.limit_w(np);
        }
    }
    for ex in loads.excesses(tree) {
        for &i in order.iter().rev() {
            let cp = &tree.cps[i];
            let on_row = cp.path.contains(&ex.node) && ex.phase.is_none_or(|ph| cp.load[ph]);
            if !on_row || power[i][ex.t] == 0 {
                continue;
            }
            let (load, room) = match ex.phase {
                Some(ph) => (loads.phase_ma(ex.node, ph, ex.t), ex.room),
                None => (loads.power_w(ex.node, ex.t), ex.room),
            };
            let over = load - room;
            if over <= 0 {
                break;
            }
            let p = power[i][ex.t];
            let np = match ex.phase {
                Some(_) => cp.fit(p, cp.limit_ma(p) - over),
                None => cp.floor_power(p - over),
            };
            set(tree, &mut loads, &mut group, power, i, ex.t, np);
        }
    }
}

/// Add power to vehicle `i`, one whole set-point at a time, until it has received `target_eu`
/// (an amps point may overshoot by less than a step), visiting `steps` in order, within every
/// limit on its path, the group's grid import and its battery's taper.
#[allow(clippy::too_many_arguments)]
pub(crate) fn top_up(
    prep: &Prepared,
    tree: &PrepTree,
    power: &mut [Vec<i64>],
    battery: &[i64],
    i: usize,
    target_eu: i128,
    steps: &[usize],
    trackers: &mut (Loads, Vec<i64>),
) {
    let v = &prep.vehicles[i];
    let cp = &tree.cps[i];
    let per_w = prep.dt_s as i128 * v.eff as i128;
    let mut deficit = target_eu - v.delivered_eu(prep.dt_s, &power[i]);
    for &t in steps {
        if deficit <= crate::solve::TOL_EU {
            break;
        }
        let cur = power[i][t];
        let (room_w, room_ma) = room_for(prep, tree, battery, trackers, i, t);
        let need = ((deficit + per_w - 1) / per_w).min(i64::MAX as i128 / 4) as i64;
        let taper_room = v.taper_room_w(prep.dt_s, &power[i], t);
        let fit = cp.fit(
            cur.saturating_add(room_w.min(taper_room)),
            cp.current_ma(cur).saturating_add(room_ma),
        );
        let new = cp.ceil_power(cur.saturating_add(need)).min(fit);
        if new <= cur {
            continue;
        }
        move_to(tree, power, trackers, i, t, new);
        deficit -= (new - cur) as i128 * per_w;
    }
}

/// Room for vehicle `i` in step `t` with `trackers`: (W within the group's import and every
/// W row on its path, mA on each of its loaded phases).
fn room_for(
    prep: &Prepared,
    tree: &PrepTree,
    battery: &[i64],
    trackers: &(Loads, Vec<i64>),
    i: usize,
    t: usize,
) -> (i64, i64) {
    let group_room = prep.cap_eff[t] - (trackers.1[t] + battery[t] + prep.other[t] - prep.pv[t]);
    let (room_w, room_ma) = trackers.0.room(tree, i, t);
    (group_room.min(room_w), room_ma)
}

/// Vehicle `i` goes to `new` W in step `t`, `trackers` with it.
fn move_to(
    tree: &PrepTree,
    power: &mut [Vec<i64>],
    trackers: &mut (Loads, Vec<i64>),
    i: usize,
    t: usize,
    new: i64,
) {
    let (cp, cur) = (&tree.cps[i], power[i][t]);
    trackers.0.change(tree, i, t, cur, new);
    trackers.1[t] += cp.limit_w(new) - cp.limit_w(cur);
    power[i][t] = new;
}

/// The trackers [`top_up`] keeps in step with `power`.
pub(crate) fn trackers(prep: &Prepared, tree: &PrepTree, power: &[Vec<i64>]) -> (Loads, Vec<i64>) {
    (Loads::new(tree, power), Group::new(prep, tree, power).ev_w)
}

/// An accepted vehicle that rounding left short of `target_eu` takes whole steps from
/// best-effort vehicles that share a node with it: in each of `steps` (in order), best-effort
/// vehicles there are lowered one set-point at a time (lowest priority first) until the
/// accepted vehicle can add a step; the lowered ones get back what still fits in that step.
/// Returns the best-effort vehicles that lost energy (to be topped up elsewhere).
#[allow(clippy::too_many_arguments)]
pub(crate) fn rescue(
    prep: &Prepared,
    tree: &PrepTree,
    power: &mut [Vec<i64>],
    battery: &[i64],
    i: usize,
    target_eu: i128,
    steps: &[usize],
    best_effort: &[usize],
    trackers: &mut (Loads, Vec<i64>),
) -> Vec<usize> {
    let v = &prep.vehicles[i];
    let shares = |j: usize| {
        tree.cps[j]
            .path
            .iter()
            .any(|n| tree.cps[i].path.contains(n))
    };
    let mut touched = Vec::new();
    for &t in steps {
        if target_eu - v.delivered_eu(prep.dt_s, &power[i]) <= crate::solve::TOL_EU {
            break;
        }
        let mut lowered: Vec<(usize, i64)> = Vec::new();
        for &j in best_effort.iter().rev() {
            if j == i || !shares(j) {
                continue;
            }
            while power[j][t] > 0 {
                let old = power[j][t];
                move_to(
                    tree,
                    power,
                    trackers,
                    j,
                    t,
                    tree.cps[j].floor_power(old - 1),
                );
                if !lowered.iter().any(|&(k, _)| k == j) {
                    lowered.push((j, old));
                }
                let before = power[i][t];
                top_up(prep, tree, power, battery, i, target_eu, &[t], trackers);
                if power[i][t] != before {
                    break;
                }
            }
            if target_eu - v.delivered_eu(prep.dt_s, &power[i]) <= crate::solve::TOL_EU {
                break;
            }
        }
        // Give back what still fits in this step, highest priority first.
        for &(j, old) in lowered.iter().rev() {
            let pj = &prep.vehicles[j];
            let back = (old - power[j][t]) as i128 * prep.dt_s as i128 * pj.eff as i128;
            let goal = pj.delivered_eu(prep.dt_s, &power[j]) + back;
            top_up(prep, tree, power, battery, j, goal, &[t], trackers);
            if power[j][t] < old {
                touched.push(j);
            }
        }
    }
    touched.sort_unstable();
    touched.dedup();
    touched
}

/// Give vehicle `i` what its tapering battery takes between whole set-points (model v6), up to
/// `target_eu`, earliest step first.
///
/// On a point that takes whole amps from a minimum (6 A), a taper rarely ends on a whole step:
/// rounding floors the car to the step below what its battery takes (690 W less at 1 A on three
/// phases), and to 0 once the taper is below the minimum, which pauses it short of full. Given
/// the set-point above, the battery sets the draw. So where the taper's bound ([`crate::taper`],
/// at the energy the step ends with) lies between two set-points or below the minimum, the plan
/// may give the car up to that bound: its energy counts that power, and every limit (phases,
/// nodes, the group's import) counts the set-point above it, which it cannot exceed
/// ([`crate::topology::PrepCp::limit_w`]). It only takes room left after every whole set-point,
/// and only in steps where rounding, not the plan, left the car below its bound.
pub(crate) fn fill_to_taper(
    prep: &Prepared,
    tree: &PrepTree,
    power: &mut [Vec<i64>],
    battery: &[i64],
    i: usize,
    target_eu: i128,
    trackers: &mut (Loads, Vec<i64>),
) {
    let v = &prep.vehicles[i];
    let cp = &tree.cps[i];
    // A vehicle with a minimum of its own above the point's is held to it.
    let plain_minimum = cp.min_ma == cp.floor_ma;
    let (Some(taper), true) = (
        &v.taper,
        cp.amps && cp.floor_ma > 0 && plain_minimum && v.max_w > 0,
    ) else {
        return;
    };
    let w_eu = prep.dt_s as i128 * v.eff as i128;
    let mut deficit = target_eu - v.delivered_eu(prep.dt_s, &power[i]);
    let mut e = taper.e0_eu;
    for t in v.start..v.end {
        let cur = power[i][t];
        let bound = taper.bound_w(e, w_eu).min(v.max_w);
        // Only where rounding took the car below its bound: the whole set-point under it.
        if deficit > crate::solve::TOL_EU && cur < bound && cur == cp.floor_power(bound) {
            let need = ((deficit + w_eu - 1) / w_eu).min(i64::MAX as i128 / 4) as i64;
            let new = bound
                .min(cur.saturating_add(need))
                .min(cur.saturating_add(v.taper_room_w(prep.dt_s, &power[i], t)));
            let (room_w, room_ma) = room_for(prep, tree, battery, trackers, i, t);
            let more_w = cp.limit_w(new) - cp.limit_w(cur);
            let more_ma = cp.limit_ma(new) - cp.limit_ma(cur);
            if new > cur && more_w <= room_w && more_ma <= room_ma {
                move_to(tree, power, trackers, i, t, new);
                deficit -= (new - cur) as i128 * w_eu;
            }
        }
        e += power[i][t].max(0) as i128 * w_eu;
    }
}
