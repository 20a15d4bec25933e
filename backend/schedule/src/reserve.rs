//! Uncontrolled charging under the guarantees: **an accepted guarantee outranks uncontrolled
//! charging.**
//!
//! Vehicles that are not opted in still charge as fast as possible from plug-in (first come,
//! first served among themselves: arrival, then id), but only in the headroom that the accepted
//! (guaranteed) requests do not need. The rule is lexicographic: 1) accepted energy, 2)
//! uncontrolled energy as early as possible, 3) best effort, 4) cost. Uncontrolled load is
//! curtailed only in the steps, and only by as much, as a guarantee needs.
//!
//! How: the accepted vehicles' hard energy is a transportation problem (a max flow in whole
//! watt-steps): source → step `t` (capacity: the headroom `max(capacity, other − pv) − other +
//! pv` left by uncontrolled load) → accepted vehicle `i` (its maximum, inside its window) →
//! sink (its hard energy, `⌈hard / (Δt·η)⌉` W-steps). A stationary battery adds its stored
//! energy as a source it can discharge (`source → B_0 → B_1 → …`, `B_t → step t` at most the
//! discharge power); charging it is left out, so the reservation is conservative with a battery
//! (curtails at least what is needed). Let `F*` be the maximum flow without uncontrolled load
//! (the accepted energy that can be delivered at all). Walking the steps in time order, the
//! accepted vehicles must take at least `m_t = F* − maxflow(step t closed)` in step `t` (the
//! least any maximum flow routes through step `t`, with earlier steps already fixed and later
//! steps free, since uncontrolled load there can still be curtailed); uncontrolled vehicles get
//! up to `headroom[t] − m_t` in that step, in first-come order, each at most its maximum and what
//! it still takes. Each step keeps the maximum flow at `F*`, so every accepted request that can
//! be met without uncontrolled load is met with it, and no uncontrolled watt is cut that a
//! guarantee does not need (the uncontrolled delivery is lexicographically earliest among
//! those that keep `F*`).
//!
//! A tapering accepted vehicle (`crate::taper`) carries, in each step, at most what its taper
//! allows at the least energy any schedule meeting its hard energy holds by the end of that step
//! ([`step_caps_w`]): late steps, near a full battery, carry little, so the flow keeps the early
//! headroom such a guarantee needs. Before this the flow let it take its full maximum in every
//! step, and uncontrolled cars arriving later took the early headroom of guarantees that could
//! only be met early (issue 15: most of the misses of the continuous-time generated day). The
//! caps are necessary, not sufficient, for the taper (a schedule within them may still break it
//! where it charges earlier than as late as possible); the LP keeps the taper exactly.
//!
//! Limits: MILP minimum powers are not part of the reservation (a guarantee whose only
//! schedules need a vehicle below its minimum power may still fall short in MILP mode).
//! Uncontrolled vehicles themselves follow their taper (as fast as their battery takes).

use crate::Battery;
use crate::VehicleClass;
use crate::prep::PrepVehicle;

/// A small max-flow network (Dinic), integer capacities.
struct Network {
    adj: Vec<Vec<usize>>,
    to: Vec<usize>,
    cap: Vec<i64>,
    level: Vec<i32>,
    next: Vec<usize>,
}

impl Network {
    fn new(n: usize) -> Self {
        Self {
            adj: vec![Vec::new(); n],
            to: Vec::new(),
            cap: Vec::new(),
            level: vec![0; n],
            next: vec![0; n],
        }
    }

    fn edge(&mut self, a: usize, b: usize, c: i64) {
        if c <= 0 {
            return;
        }
        self.adj[a].push(self.to.len());
        self.to.push(b);
        self.cap.push(c);
        self.adj[b].push(self.to.len());
        self.to.push(a);
        self.cap.push(0);
    }

    fn bfs(&mut self, s: usize, t: usize) -> bool {
        self.level.iter_mut().for_each(|l| *l = -1);
        self.level[s] = 0;
        let mut queue = std::collections::VecDeque::from([s]);
        while let Some(u) = queue.pop_front() {
            for &e in &self.adj[u] {
                let v = self.to[e];
                if self.cap[e] > 0 && self.level[v] < 0 {
                    self.level[v] = self.level[u] + 1;
                    queue.push_back(v);
                }
            }
        }
        self.level[t] >= 0
    }

    fn dfs(&mut self, u: usize, t: usize, pushed: i64) -> i64 {
        if u == t {
            return pushed;
        }
        while self.next[u] < self.adj[u].len() {
            let e = self.adj[u][self.next[u]];
            let v = self.to[e];
            if self.cap[e] > 0 && self.level[v] == self.level[u] + 1 {
                let d = self.dfs(v, t, pushed.min(self.cap[e]));
                if d > 0 {
                    self.cap[e] -= d;
                    self.cap[e ^ 1] += d;
                    return d;
                }
            }
            self.next[u] += 1;
        }
        0
    }

    fn max_flow(&mut self, s: usize, t: usize) -> i64 {
        let mut flow = 0;
        while self.bfs(s, t) {
            self.next.iter_mut().for_each(|n| *n = 0);
            loop {
                let f = self.dfs(s, t, i64::MAX);
                if f == 0 {
                    break;
                }
                flow += f;
            }
        }
        flow
    }
}

/// The accepted vehicles' transportation problem, rebuilt for each capacity vector.
struct Guarantees<'a> {
    h: usize,
    /// Each accepted vehicle, its hard energy (W-steps) and the most each step can carry for
    /// it ([`step_caps_w`]).
    accepted: Vec<(&'a PrepVehicle, i64, Vec<i64>)>,
    /// Battery energy available for discharge (W-steps) and its discharge power (W).
    battery: Option<(i64, i64)>,
}

impl Guarantees<'_> {
    /// Largest accepted energy (W-steps) deliverable with `cap[t]` W of headroom per step.
    fn max_flow(&self, cap: &[i64]) -> i64 {
        let h = self.h;
        let n_acc = self.accepted.len();
        let (src, sink) = (0, 1);
        let step = |t: usize| 2 + t;
        let veh = |k: usize| 2 + h + k;
        let bat = |t: usize| 2 + h + n_acc + t;
        let mut net = Network::new(2 + h + n_acc + if self.battery.is_some() { h } else { 0 });
        for (t, &c) in cap.iter().enumerate() {
            net.edge(src, step(t), c);
        }
        for (k, (v, need, caps)) in self.accepted.iter().enumerate() {
            for (t, &c) in caps.iter().enumerate().take(v.end).skip(v.start) {
                net.edge(step(t), veh(k), c);
            }
            net.edge(veh(k), sink, *need);
        }
        if let Some((energy, discharge_w)) = self.battery {
            net.edge(src, bat(0), energy);
            for t in 0..h {
                net.edge(bat(t), step(t), discharge_w);
                if t + 1 < h {
                    net.edge(bat(t), bat(t + 1), energy);
                }
            }
        }
        net.max_flow(src, sink)
    }
}

/// The most (W) each step of the horizon can carry for accepted vehicle `v`: its maximum in its
/// window, lowered where its battery's taper bounds every schedule that meets its hard energy
/// ([`crate::taper::Taper::late_caps_w`]); 0 outside the window.
pub(crate) fn step_caps_w(v: &PrepVehicle, h: usize, dt_s: i64) -> Vec<i64> {
    let w_eu = dt_s as i128 * v.eff as i128;
    match &v.taper {
        Some(tp) => tp.late_caps_w(v.hard_eu, w_eu, v.max_w, v.start, v.end, h),
        None => (0..h)
            .map(|t| {
                if (v.start..v.end).contains(&t) {
                    v.max_w
                } else {
                    0
                }
            })
            .collect(),
    }
}

/// Fixed profiles (W over the horizon) of the uncontrolled vehicles `order` (first come, first
/// served), each as fast as possible towards its `target_eu`, within `headroom[t]` (W, what the
/// connection carries for EVs) less what the accepted vehicles need (module docs).
pub(crate) fn uncontrolled_profiles(
    h: usize,
    dt_s: i64,
    vehicles: &[PrepVehicle],
    order: &[usize],
    headroom: &[i64],
    battery: Option<&Battery>,
) -> Vec<Vec<i64>> {
    let per_step_eu = |v: &PrepVehicle| dt_s as i128 * v.eff as i128;
    let accepted: Vec<(&PrepVehicle, i64, Vec<i64>)> = vehicles
        .iter()
        .filter(|v| {
            v.class == VehicleClass::Guaranteed && v.hard_eu > 0 && v.start < v.end && v.max_w > 0
        })
        .map(|v| {
            let per = per_step_eu(v);
            (
                v,
                ((v.hard_eu + per - 1) / per).min(i64::MAX as i128) as i64,
                step_caps_w(v, h, dt_s),
            )
        })
        .collect();
    let battery = battery
        .filter(|b| b.capacity_wh > 0 && b.energy_wh > 0 && b.max_discharge_w > 0)
        .map(|b| (b.energy_wh * 3_600 / dt_s, b.max_discharge_w));
    let g = Guarantees {
        h,
        accepted,
        battery,
    };
    let mut cap: Vec<i64> = headroom.iter().map(|&x| x.max(0)).collect();
    let f_star = if g.accepted.is_empty() {
        0
    } else {
        g.max_flow(&cap)
    };
    let mut rows = vec![vec![0i64; h]; order.len()];
    let mut remaining: Vec<i128> = order.iter().map(|&i| vehicles[i].target_eu).collect();
    for t in 0..h {
        let wanting: Vec<usize> = (0..order.len())
            .filter(|&k| {
                let v = &vehicles[order[k]];
                v.start <= t && t < v.end && remaining[k] > 0 && v.max_w > 0
            })
            .collect();
        if wanting.is_empty() {
            continue;
        }
        let want_w = |k: usize, remaining: &[i128]| {
            let v = &vehicles[order[k]];
            let per = per_step_eu(v);
            let want = ((remaining[k] + per - 1) / per).min(v.max_w as i128) as i64;
            // A tapering battery takes no more than its taper at the energy it has reached.
            match &v.taper {
                Some(tp) => want.min(tp.bound_w(tp.e0_eu + v.target_eu - remaining[k], per)),
                None => want,
            }
        };
        let mut allowed = cap[t];
        let acc_max: i64 = g
            .accepted
            .iter()
            .filter(|(v, _, _)| v.start <= t && t < v.end)
            .map(|(_, _, caps)| caps[t])
            .sum();
        let total_want: i64 = wanting.iter().map(|&k| want_w(k, &remaining)).sum();
        // Only when uncontrolled and accepted load together could exceed the headroom can a
        // guarantee need some of it.
        if f_star > 0 && acc_max > 0 && total_want.saturating_add(acc_max) > cap[t] {
            let saved = cap[t];
            cap[t] = 0;
            let without = g.max_flow(&cap);
            cap[t] = saved;
            let must = (f_star - without).max(0);
            allowed = (saved - must).max(0);
        }
        for k in wanting {
            let p = want_w(k, &remaining).min(allowed).max(0);
            allowed -= p;
            cap[t] -= p;
            rows[k][t] = p;
            remaining[k] -= p as i128 * per_step_eu(&vehicles[order[k]]);
        }
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_flow_of_a_small_network() {
        let mut n = Network::new(4);
        n.edge(0, 2, 5);
        n.edge(0, 3, 4);
        n.edge(2, 3, 3);
        n.edge(2, 1, 2);
        n.edge(3, 1, 6);
        assert_eq!(n.max_flow(0, 1), 8);
    }
}
