//! Battery taper: a vehicle's maximum power is constant up to a knee state of charge and then
//! falls linearly to zero at full ([`crate::Vehicle::taper_knee_permille`]).
//!
//! With `B` the capacity, `E` the energy in the battery, `k` the knee (a fraction) and `P` the
//! vehicle's maximum power, the battery takes at most `P · min(1, max(0, (B − E) / (B (1 − k))))`
//! ([`taper_max_power_w`]). The plan bounds the power of step `t` by this curve at the energy the
//! battery holds at the **end** of the step, `E_t = E0 + η Δ Σ_{s ≤ t} p_s`, which is linear in
//! the powers and conservative (the battery can take that power throughout the step):
//! `p_t · B (1 − k) ≤ P · (B − E_t)`. The LP carries it as a row per step (`crate::lp`), the
//! integer post-processing of [`crate::solve`] keeps it exactly ([`Taper`]), and
//! [`crate::check`] verifies it.

use crate::Vehicle;
use crate::prep::EU_PER_WH;

/// The most a tapering battery takes (W): `max_power_w · min(1, max(0, (B − E) / (B (1 − k))))`
/// with `B = capacity_wh`, `E = energy_wh` and `k = knee` as a fraction of the capacity
/// (`taper_knee_permille / 1000`, in `[0, 1)`). Full power up to the knee, then linearly down to
/// 0 at full. A degenerate curve (`B (1 − k) ≤ 0`, e.g. a knee at or above 1 or no capacity)
/// gives full power below the capacity and 0 at or above it.
///
/// The simulator uses it as its battery model, so the plan (which applies the same curve at the
/// end of each step, see the module docs) and the simulated battery agree.
pub fn taper_max_power_w(max_power_w: f64, capacity_wh: f64, energy_wh: f64, knee: f64) -> f64 {
    let span = capacity_wh * (1.0 - knee);
    if span.is_nan() || span <= 0.0 {
        return if energy_wh < capacity_wh {
            max_power_w
        } else {
            0.0
        };
    }
    max_power_w * ((capacity_wh - energy_wh) / span).clamp(0.0, 1.0)
}

/// One vehicle's taper in exact integer units (energy in W·s·‰, [`EU_PER_WH`] per Wh).
///
/// The constraint of step `t` with power `p_t` (W) and energy `E_t` (EU) at the end of the step:
/// `p_t · B · (1000 − knee) ≤ 1000 · P · (B − E_t)`; its *slack* is the right side minus the left.
/// One more watt in step `t` lowers the slack of step `t` by `B · (1000 − knee) + 1000 · P · w`
/// and the slack of every later step by `1000 · P · w`, where `w = Δt · η` is the energy (EU) of
/// one watt for one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Taper {
    /// `P`: the vehicle's maximum power (W), the height of the curve.
    pub p_w: i64,
    /// `B`: the battery capacity (EU).
    pub cap_eu: i128,
    /// `E0`: the energy in the battery at the start of the vehicle's window (EU).
    pub e0_eu: i128,
    /// The knee (‰ of the capacity), below 1000.
    pub knee: i64,
}

impl Taper {
    /// The taper of `v`, when it applies: capacity, energy at the start and knee all known, the
    /// knee below 1000 ‰ (validation rejects the rest).
    pub fn of(v: &Vehicle) -> Option<Self> {
        match (
            v.battery_capacity_wh,
            v.energy_on_arrival_wh,
            v.taper_knee_permille,
        ) {
            (Some(cap), Some(e0), Some(knee)) if knee < 1000 => Some(Self {
                p_w: v.max_power_w.max(0),
                cap_eu: cap as i128 * EU_PER_WH,
                e0_eu: e0 as i128 * EU_PER_WH,
                knee: knee as i64,
            }),
            _ => None,
        }
    }

    /// The knee as a fraction of the capacity.
    pub fn knee_fraction(&self) -> f64 {
        self.knee as f64 / 1000.0
    }

    /// `B · (1000 − knee)`: the weight of a step's own power in its constraint.
    fn own(&self) -> i128 {
        self.cap_eu.saturating_mul((1000 - self.knee) as i128)
    }

    /// `1000 · P`: the weight of the energy in the constraint.
    fn height(&self) -> i128 {
        1000 * self.p_w as i128
    }

    /// Slack of the constraint (module docs) for power `p_w` with `e_eu` stored at the end of
    /// the step; negative when broken. `tol_eu` is added to the room left in the battery.
    pub fn slack(&self, p_w: i64, e_eu: i128, tol_eu: i128) -> i128 {
        self.height()
            .saturating_mul(self.cap_eu - e_eu + tol_eu)
            .saturating_sub((p_w as i128).saturating_mul(self.own()))
    }

    /// The largest power (W, ≥ 0) the constraint allows in a step that starts with `e_eu`
    /// stored, `w_eu` being the energy of one watt for one step: the curve at the energy the
    /// step itself ends with, `⌊1000·P·(B − E) / (B·(1000 − knee) + 1000·P·w)⌋`.
    pub fn bound_w(&self, e_eu: i128, w_eu: i128) -> i64 {
        let num = self.height().saturating_mul(self.cap_eu - e_eu);
        let den = self
            .own()
            .saturating_add(self.height().saturating_mul(w_eu))
            .max(1);
        (num.max(0) / den).min(i64::MAX as i128) as i64
    }

    /// The most power (W) each step of the window `start..end` can carry in any schedule that
    /// delivers `hard_eu` by the window's end (`w_eu` the energy of one watt for one step,
    /// `max_w` the vehicle's maximum): `h` entries, 0 outside the window.
    ///
    /// Filling `hard_eu` as late as the taper allows (backwards from the window's end, each step
    /// at its bound at the energy it ends with) gives the least energy any such schedule can
    /// hold at the end of each step; the taper at that energy bounds the step's power. Late
    /// steps, near a full battery, carry little, so a reservation that fills a tapering
    /// guarantee late (`crate::reserve`, the tree's in `prep`) keeps the earlier room it needs.
    pub fn late_caps_w(
        &self,
        hard_eu: i128,
        w_eu: i128,
        max_w: i64,
        start: usize,
        end: usize,
        h: usize,
    ) -> Vec<i64> {
        let mut caps = vec![0i64; h];
        let mut left = hard_eu.max(0);
        for t in (start..end.min(h)).rev() {
            let e_end = self.e0_eu + left;
            let cap = (self.height().saturating_mul(self.cap_eu - e_end).max(0) / self.own().max(1))
                .min(max_w as i128) as i64;
            caps[t] = cap.max(0);
            if w_eu > 0 {
                left = (left - caps[t] as i128 * w_eu).max(0);
            }
        }
        caps
    }

    /// Lower `row` (W over the horizon) where it breaks the taper, forward in time from `start`
    /// to `end` (each step at most [`Taper::bound_w`] at the energy its earlier steps leave).
    /// Lowering a step only relaxes the later ones, so the result keeps the constraint in every
    /// step. `floor` maps a lowered power to one the charge point takes (at most its argument).
    pub fn clip(
        &self,
        w_eu: i128,
        row: &mut [i64],
        start: usize,
        end: usize,
        floor: impl Fn(i64) -> i64,
    ) {
        let mut e = self.e0_eu;
        for p in row.iter_mut().take(end).skip(start) {
            let bound = self.bound_w(e, w_eu);
            if *p > bound {
                *p = floor(bound);
            }
            e += (*p).max(0) as i128 * w_eu;
        }
    }

    /// The most (W) that can be added to `row[t]` (`t` in `start..end`) with the constraint still
    /// kept in step `t` and every later step of the window: the minimum over those steps of the
    /// slack divided by the weight of step `t`'s power there (0 when a slack is already negative).
    pub fn room_w(&self, w_eu: i128, row: &[i64], start: usize, end: usize, t: usize) -> i64 {
        let mut e = self.e0_eu;
        let own = self
            .own()
            .saturating_add(self.height().saturating_mul(w_eu));
        let later = self.height().saturating_mul(w_eu).max(1);
        let mut room = i64::MAX as i128;
        for (s, &p) in row.iter().enumerate().take(end).skip(start) {
            e += p.max(0) as i128 * w_eu;
            if s < t {
                continue;
            }
            let slack = self.slack(p.max(0), e, 0);
            let r = if slack <= 0 {
                0
            } else if s == t {
                slack / own.max(1)
            } else {
                slack / later
            };
            room = room.min(r);
        }
        room.max(0) as i64
    }

    /// The most energy (EU) the battery takes in `steps` steps from its start at up to `max_w`
    /// per step: full power capped by the curve, step after step (taking as much as possible as
    /// early as possible is optimal, since the energy reachable by the end of a step grows with
    /// the energy at its start).
    pub fn window_max_eu(&self, w_eu: i128, max_w: i64, steps: usize) -> i128 {
        let mut e = self.e0_eu;
        for _ in 0..steps {
            let p = self.bound_w(e, w_eu).min(max_w.max(0));
            if p <= 0 {
                break;
            }
            e += p as i128 * w_eu;
        }
        e - self.e0_eu
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn taper() -> Taper {
        // 60 kWh, 11 kW, 54 kWh (90 %) stored, knee 80 %.
        Taper {
            p_w: 11_000,
            cap_eu: 60_000 * EU_PER_WH,
            e0_eu: 54_000 * EU_PER_WH,
            knee: 800,
        }
    }

    #[test]
    fn the_curve_is_flat_to_the_knee_then_linear_to_zero() {
        assert_eq!(
            taper_max_power_w(11_000.0, 60_000.0, 30_000.0, 0.8),
            11_000.0
        );
        assert_eq!(
            taper_max_power_w(11_000.0, 60_000.0, 48_000.0, 0.8),
            11_000.0
        );
        assert!((taper_max_power_w(11_000.0, 60_000.0, 54_000.0, 0.8) - 5_500.0).abs() < 1e-9);
        assert_eq!(taper_max_power_w(11_000.0, 60_000.0, 60_000.0, 0.8), 0.0);
        assert_eq!(taper_max_power_w(11_000.0, 60_000.0, 61_000.0, 0.8), 0.0);
        // Degenerate curves: full power below the capacity.
        assert_eq!(
            taper_max_power_w(11_000.0, 60_000.0, 59_000.0, 1.0),
            11_000.0
        );
        assert_eq!(taper_max_power_w(11_000.0, 0.0, 0.0, 0.8), 0.0);
    }

    #[test]
    fn the_integer_bound_is_the_curve_at_the_end_of_the_step() {
        let t = taper();
        // One 15-minute step at 100 %: p = 11000·(6000 − p/4)/12000 → p = 11000·6000/14750.
        let w = 900 * 1000;
        let p = t.bound_w(t.e0_eu, w);
        assert_eq!(p, 4_474);
        let e_end = 54_000.0 + p as f64 / 4.0;
        assert!(p as f64 <= taper_max_power_w(11_000.0, 60_000.0, e_end, 0.8));
        assert!(p as f64 + 1.0 > taper_max_power_w(11_000.0, 60_000.0, e_end + 0.25, 0.8));
        assert!(t.slack(p, t.e0_eu + p as i128 * w, 0) >= 0);
        assert!(t.slack(p + 1, t.e0_eu + (p + 1) as i128 * w, 0) < 0);
        // Below the knee the bound is above the maximum.
        let low = Taper {
            e0_eu: 10_000 * EU_PER_WH,
            ..t.clone()
        };
        assert!(low.bound_w(low.e0_eu, w) > 11_000);
    }

    #[test]
    fn clip_and_room_keep_every_step() {
        let t = taper();
        let w = 900 * 1000;
        let mut row = vec![11_000; 6];
        t.clip(w, &mut row, 1, 5, |p| p);
        assert_eq!(row[0], 11_000);
        assert_eq!(row[5], 11_000);
        let mut e = t.e0_eu;
        for &p in &row[1..5] {
            e += p as i128 * w;
            assert!(t.slack(p, e, 0) >= 0);
        }
        // Greedy clipping leaves no room anywhere, and the window maximum is what it delivered.
        for s in 1..5 {
            assert_eq!(t.room_w(w, &row, 1, 5, s), 0);
        }
        assert_eq!(t.window_max_eu(w, 11_000, 4), e - t.e0_eu);
        // An empty row: room in the last step is its own bound; adding it keeps the constraint.
        let row = vec![0; 6];
        let r = t.room_w(w, &row, 1, 5, 4);
        assert_eq!(r, t.bound_w(t.e0_eu, w));
        // In the first step the room is limited by the later steps only through their slack.
        let mut row = vec![0, 0, 0, 0, 4_000, 0];
        let r = t.room_w(w, &row, 1, 5, 1);
        row[1] = r;
        let mut e = t.e0_eu;
        for &p in &row[1..5] {
            e += p as i128 * w;
            assert!(t.slack(p, e, 0) >= 0);
        }
        row[1] += 1;
        let mut e = t.e0_eu;
        let broken = row[1..5].iter().any(|&p| {
            e += p as i128 * w;
            t.slack(p, e, 0) < 0
        });
        assert!(broken);
    }
}
