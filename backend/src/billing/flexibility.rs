//! Flexibility measured from meter values (issue 15): the basis of a session's FLEX reward.
//!
//! The baseline is the session's committed uncontrolled behaviour: from plug-in, the car draws
//! its full power (the charge point's rating, or the vehicle's own lower maximum from its
//! request) until it has the energy it actually took. The meter tells what it did instead: the
//! register's readings over the session, linear between readings. Both are cut into the
//! quarter-hour steps of the session, and
//!
//! - the **shifted energy** is `Σ max(0, baseline − measured)` over the steps: the energy the
//!   session moved later than the baseline would have taken it. Both curves deliver the same
//!   total, so it never exceeds the session's delivered energy;
//! - its **value** is `Σ (baseline − measured) · price` over the steps: what the move saved at
//!   the day's prices (negative when energy moved to dearer steps; the reward takes only the
//!   energy, the value is reported).
//!
//! It replaces the largest shift any plan asked of the session, which counted plans, not what
//! the car did. A session with fewer than two register readings keeps the planned figure.

use crate::domain::TIME_STEP_S;

/// What a session gave, measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Measured {
    /// Energy moved later than the uncontrolled baseline (Wh).
    pub shifted_wh: i64,
    /// What the move saved at the prices (micro-EUR; negative: it cost).
    pub value_micro_eur: i64,
}

/// The flexibility of a session plugged in over `[start_ts, end_ts]` at `max_power_w`, from its
/// register readings `(ts, Wh)` (any order) and the prices `(from ts, micro-EUR/kWh)` (sorted; the
/// latest at or before a step applies, `flat` before the first). `None` with fewer than two
/// readings inside the session.
pub fn measured(
    start_ts: i64,
    end_ts: i64,
    max_power_w: i64,
    readings: &[(i64, i64)],
    prices: &[(i64, i64)],
    flat_micro_eur_per_kwh: i64,
) -> Option<Measured> {
    let mut r: Vec<(i64, i64)> = readings
        .iter()
        .copied()
        .filter(|(ts, _)| (start_ts..=end_ts).contains(ts))
        .collect();
    r.sort_unstable();
    r.dedup_by_key(|(ts, _)| *ts);
    if r.len() < 2 || end_ts <= start_ts {
        return None;
    }
    let first = r[0].1;
    // Energy by `t` (Wh since plug-in), linear between readings, flat outside them.
    let measured_at = |t: i64| -> f64 {
        match r.iter().position(|(ts, _)| *ts >= t) {
            None => (r[r.len() - 1].1 - first) as f64,
            Some(0) => 0.0,
            Some(i) => {
                let (t0, e0) = r[i - 1];
                let (t1, e1) = r[i];
                let f = (t - t0) as f64 / (t1 - t0) as f64;
                (e0 - first) as f64 + f * (e1 - e0) as f64
            }
        }
    };
    let total = measured_at(end_ts).max(0.0);
    let p = max_power_w.max(1) as f64;
    let baseline_at = |t: i64| (p * (t - start_ts).max(0) as f64 / 3_600.0).min(total);
    let step = i64::from(TIME_STEP_S);
    let price_at = |t: i64| {
        prices
            .iter()
            .rev()
            .find(|(ts, _)| *ts <= t)
            .map_or(flat_micro_eur_per_kwh, |(_, p)| *p)
    };
    let (mut shifted, mut value) = (0.0_f64, 0.0_f64);
    let mut t = start_ts;
    while t < end_ts {
        let next = ((t.div_euclid(step) + 1) * step).min(end_ts);
        let b = baseline_at(next) - baseline_at(t);
        let m = (measured_at(next) - measured_at(t)).max(0.0);
        shifted += (b - m).max(0.0);
        value += (b - m) * price_at(t) as f64 / 1_000.0;
        t = next;
    }
    Some(Measured {
        shifted_wh: (shifted.round() as i64).clamp(0, total.round() as i64),
        value_micro_eur: value.round() as i64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const T: i64 = 1_714_557_600; // a quarter-hour boundary

    #[test]
    fn a_car_charged_as_fast_as_it_could_gave_nothing() {
        // 11 kW for an hour, readings every 15 minutes.
        let r: Vec<(i64, i64)> = (0..=4).map(|k| (T + k * 900, k * 2_750)).collect();
        let m = measured(T, T + 3_600, 11_000, &r, &[], 250_000).unwrap();
        assert_eq!(
            m,
            Measured {
                shifted_wh: 0,
                value_micro_eur: 0
            }
        );
    }

    #[test]
    fn energy_moved_later_is_shifted_and_worth_the_price_difference() {
        // 5.5 kWh: the baseline takes it in the first half hour at 11 kW; the car took it in
        // the second half hour, when energy is 100 EUR/MWh cheaper.
        let r = [(T, 0), (T + 1_800, 0), (T + 3_600, 5_500)];
        let prices = [(T, 300_000), (T + 1_800, 200_000)];
        let m = measured(T, T + 3_600, 11_000, &r, &prices, 250_000).unwrap();
        assert_eq!(m.shifted_wh, 5_500);
        assert_eq!(m.value_micro_eur, 550_000, "5.5 kWh × 0.10 EUR");
    }

    #[test]
    fn fewer_than_two_readings_measure_nothing() {
        assert_eq!(measured(T, T + 3_600, 11_000, &[(T, 0)], &[], 1), None);
        assert_eq!(
            measured(T, T + 3_600, 11_000, &[(T - 10, 0), (T + 9_999, 5)], &[], 1),
            None,
            "readings outside the session do not count"
        );
    }

    proptest! {
        #[test]
        fn the_shift_never_exceeds_the_delivered_energy(
            steps in proptest::collection::vec(0i64..3_000, 2..40),
            power in 1_000i64..50_000,
            fast in 18_000i64..50_000,
        ) {
            let mut e = 0;
            let r: Vec<(i64, i64)> = steps
                .iter()
                .enumerate()
                .map(|(k, d)| {
                    e += d;
                    (T + k as i64 * 600, e)
                })
                .collect();
            let end = T + (steps.len() as i64 - 1) * 600;
            let m = measured(T, end, power, &r, &[], 250_000).unwrap();
            let delivered = r.last().unwrap().1 - r[0].1;
            prop_assert!(m.shifted_wh >= 0 && m.shifted_wh <= delivered);
            // At one flat price, moving energy in time is worth nothing (when the baseline can
            // deliver it all: at least the fastest the car drew).
            let m = measured(T, end, fast, &r, &[], 250_000).unwrap();
            prop_assert!(m.value_micro_eur.abs() <= steps.len() as i64, "{m:?}");
        }
    }
}
