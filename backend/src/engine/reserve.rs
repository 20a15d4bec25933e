//! The arrival reserve (issue 15): headroom that every plan of a group leaves free, so that the
//! cars that plug in before their first profile lands cannot push the group over its limit.
//!
//! A car that plugs in draws its charge point's full rating until evflex's profile for it is in
//! force: the reaction window (the event re-plan, the CPO's call to the station, the station's
//! own reaction). The plan cannot limit it in that window, so it keeps room for it beforehand.
//!
//! # The rule
//!
//! - Arrivals to cover, `k`: the number of cars that plug in within one reaction window at the
//!   99.9th percentile, from a Poisson count with mean `λ · w`. `λ` is the group's arrival rate
//!   (sessions started on its charge points in the last 24 hours, per second) and `w` the
//!   reaction window ([`crate::config::EngineConfig::reaction_window_s`], 10 s by default). So a
//!   group keeps room for one car once an arrival within a reaction window is likelier than one in
//!   a thousand (from about 0.4 arrivals an hour with `w` = 10 s), and for two once two are.
//! - The reserve: the sum of the `k` largest ratings among the group's free charge points (no
//!   open session, and not out of order): an arrival can only come where a car can plug in. A
//!   group with no free charge point keeps none.
//! - A group's own `arrival_reserve_w` (topology API) replaces the rule: a CPO that knows its
//!   stations react fast, or that prefers energy to safety, sets 0. It is still capped at what
//!   the free charge points could draw.
//!
//! The reserve comes off the group's capacity in every step of the plan (an arrival can come at
//! any time) and off the connection's per-phase limits of an electrical tree (each phase by the
//! reserve's current on three phases at 230 V), so guarantees are admitted against the capacity
//! left. The cockpit shows it with the group.

/// Arrivals to cover in one reaction window: the smallest `k` with `P(N ≤ k) ≥ 0.999` for
/// `N ~ Poisson(rate_per_s · window_s)`.
pub fn arrivals_to_cover(rate_per_s: f64, window_s: f64) -> usize {
    let mean = rate_per_s * window_s;
    if !mean.is_finite() || mean <= 0.0 {
        return 0;
    }
    let mut p = (-mean).exp();
    let mut cdf = p;
    let mut k = 0;
    while cdf < 0.999 && k < 10_000 {
        k += 1;
        p *= mean / k as f64;
        cdf += p;
    }
    k
}

/// The reserve (W): the sum of the `arrivals` largest ratings in `free_ratings_w`.
pub fn reserve_w(free_ratings_w: &[i64], arrivals: usize) -> i64 {
    let mut ratings: Vec<i64> = free_ratings_w.iter().map(|r| (*r).max(0)).collect();
    ratings.sort_unstable_by(|a, b| b.cmp(a));
    ratings.iter().take(arrivals).sum()
}

/// The reserve of a group with `free_ratings_w` free, `arrivals_24h` sessions started in the
/// last day and its own setting `configured_w` (replacing the rule; capped at what the free
/// charge points can draw).
pub fn group_reserve_w(
    free_ratings_w: &[i64],
    arrivals_24h: i64,
    window_s: f64,
    configured_w: Option<i64>,
) -> i64 {
    let most = reserve_w(free_ratings_w, free_ratings_w.len());
    match configured_w {
        Some(w) => w.clamp(0, most),
        None => {
            let rate = arrivals_24h.max(0) as f64 / 86_400.0;
            reserve_w(free_ratings_w, arrivals_to_cover(rate, window_s))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn arrivals_follow_the_poisson_quantile() {
        // No history, no arrival to cover.
        assert_eq!(arrivals_to_cover(0.0, 10.0), 0);
        // One arrival in 10 s at one in 2,000: below one in a thousand, none.
        assert_eq!(arrivals_to_cover(1.0 / 20_000.0, 10.0), 0);
        // 100 arrivals a day, 10 s window: mean 0.0116, P(N ≥ 1) = 1.15 %: one car.
        assert_eq!(arrivals_to_cover(100.0 / 86_400.0, 10.0), 1);
        // A car every 10 s on average: mean 1, P(N ≤ 4) = 0.9963, P(N ≤ 5) = 0.9994.
        assert_eq!(arrivals_to_cover(0.1, 10.0), 5);
        assert_eq!(arrivals_to_cover(f64::NAN, 10.0), 0);
    }

    #[test]
    fn the_reserve_is_the_largest_free_ratings() {
        let free = [7_360, 22_080, 11_040];
        assert_eq!(reserve_w(&free, 0), 0);
        assert_eq!(reserve_w(&free, 1), 22_080);
        assert_eq!(reserve_w(&free, 2), 33_120);
        assert_eq!(
            reserve_w(&free, 9),
            40_480,
            "never more than the free points"
        );
        // A busy group keeps one car's room; a quiet one none; no free point, none.
        assert_eq!(group_reserve_w(&free, 200, 10.0, None), 22_080);
        assert_eq!(group_reserve_w(&free, 2, 10.0, None), 0);
        assert_eq!(group_reserve_w(&[], 10_000, 10.0, None), 0);
        // The group's own setting replaces the rule, within what the free points can draw.
        assert_eq!(group_reserve_w(&free, 200, 10.0, Some(0)), 0);
        assert_eq!(group_reserve_w(&free, 0, 10.0, Some(5_000)), 5_000);
        assert_eq!(group_reserve_w(&free, 0, 10.0, Some(99_000)), 40_480);
        assert_eq!(group_reserve_w(&[], 0, 10.0, Some(5_000)), 0);
    }

    proptest! {
        #[test]
        fn more_arrivals_never_shrink_the_reserve(
            free in proptest::collection::vec(0i64..50_000, 0..12),
            a in 0i64..5_000,
            b in 0i64..5_000,
            window in 1.0f64..60.0,
        ) {
            let (lo, hi) = (a.min(b), a.max(b));
            let r_lo = group_reserve_w(&free, lo, window, None);
            let r_hi = group_reserve_w(&free, hi, window, None);
            prop_assert!(r_lo <= r_hi);
            prop_assert!(r_hi <= free.iter().sum::<i64>());
            prop_assert!(r_lo >= 0);
        }
    }
}
