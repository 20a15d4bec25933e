//! The closed loop (issue 15): meter values tell whether each car draws what its profile in
//! force allows, and the plan follows what they tell.
//!
//! For every power reading of a session whose profile the CPO confirmed in force (`in_force`,
//! or `unchanged` since), at least [`GRACE_S`] after it took effect, [`assess`] compares the
//! measured power with the profile's limit for now. A session that no profile ever limited
//! (a car that did not opt in and fits the headroom) is held against its charge point's rating
//! from [`GRACE_S`] after it started: it draws what it can, so its draw is what the plan counts
//! (issue 15: "plan uncontrolled cars from their measured draw"; a car drawing 7 kW at a 22 kW
//! point had kept 15 kW of the group's capacity from the others all day).
//!
//!
//! - **Below**: more than [`below_margin_w`] under the limit (a battery tapering or full, or a
//!   vehicle whose own maximum is below the charge point's). The session's `observed_max_w`
//!   becomes the measured power plus 10 % and 500 W (never above an earlier one: a taper only
//!   falls), and the plan gives the car no more than that: its unused headroom goes to the
//!   others. An accepted request is still planned to be met with that maximum; when it no
//!   longer can be, the schedule shows the shortfall and the user sees it (app and SSE).
//! - **At its maximum**: a car given (about) its `observed_max_w` and drawing within 10 % of it
//!   may be able to take more (a pause ended, a cold battery warmed up): the maximum is raised
//!   by half plus 1 kW, and removed once it reaches the charge point's rating. The plan probes upwards a step per reading instead of trusting one low reading
//!   forever.
//! - **Above**: more than [`above_margin_w`] over the limit: the charge point does not follow
//!   its profile. It is logged, counted (`evflex_noncompliant_readings_total`), shown in the
//!   cockpit (`over_limit_since`), and the plan counts the car at its measured draw (as a
//!   charge point out of control, `snapshot`) until it complies again.
//!
//! - **A taper**: a reading below its limit that gives the battery's SoC also tells where the
//!   car's taper starts ([`knee_from_reading`]). The session keeps the lowest knee its readings
//!   gave, and the plan follows that taper instead of the configured one (`snapshot`).
//!
//! Each change re-plans the group at once (`engine::replan`); a reading that changes nothing
//! does not.

use super::{Engine, replan};
use crate::store::meter::MeterReading;
use crate::store::schedules;
use crate::store::{StoreResult, sessions};

/// Seconds after a profile took effect (or a session started) before readings are held against
/// it: the station's own reaction, and a whole meter interval (60 s, the usual sampling) drawn
/// under the new limit, since a reading may average its interval (the simulator's do). At 30 s,
/// a reading half before and half after a limit went up showed the car at half its new limit,
/// and the plan capped it there.
pub const GRACE_S: i64 = 90;

/// How far under its limit a car must draw to count as not taking it (W).
pub fn below_margin_w(limit_w: i64) -> i64 {
    (limit_w / 5).max(1_000)
}

/// How far over its limit a car must draw to count as not following it (W).
pub fn above_margin_w(limit_w: i64) -> i64 {
    (limit_w / 10).max(1_000)
}

/// The lowest knee (‰ SoC) learned from a reading: below it, a car drawing less than its
/// maximum has another cause (a vehicle maximum below the charge point's, a cold battery, a
/// single-phase car), which the observed maximum covers.
pub const MIN_LEARNED_KNEE_PERMILLE: i64 = 500;

/// The taper knee (‰ SoC) that explains a car drawing `measured_w` at `soc_permille` when its
/// full power is `full_w`, on the taper the plan models (full power to the knee, then falling
/// linearly to 0 at full: `measured = full · (1000 − soc) / (1000 − knee)`). `None` when the
/// reading shows no taper: the car draws (nearly) its full power, nothing, or a knee below
/// [`MIN_LEARNED_KNEE_PERMILLE`].
pub fn knee_from_reading(full_w: i64, measured_w: i64, soc_permille: i64) -> Option<i64> {
    if measured_w <= 0 || full_w <= 0 || !(0..1_000).contains(&soc_permille) {
        return None;
    }
    // Within 5 % of its full power the car is not (yet) tapering.
    if measured_w * 20 >= full_w * 19 {
        return None;
    }
    let span = (1_000 - soc_permille) * full_w;
    let knee = 1_000 - (span + measured_w - 1) / measured_w;
    (knee >= MIN_LEARNED_KNEE_PERMILLE).then_some(knee)
}

/// What one reading changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Assessment {
    /// The session's `observed_max_w` from now on.
    pub observed_max_w: Option<i64>,
    /// Whether the car draws above its limit.
    pub over_limit: bool,
}

/// Assesses a reading of `measured_w` against the limit in force `limit_w`, given what was
/// observed before (`observed_max_w`) and the charge point's rating `rated_w`.
pub fn assess(
    limit_w: i64,
    measured_w: i64,
    observed_max_w: Option<i64>,
    rated_w: i64,
) -> Assessment {
    let measured_w = measured_w.max(0);
    if measured_w > limit_w + above_margin_w(limit_w) {
        return Assessment {
            observed_max_w,
            over_limit: true,
        };
    }
    let observed_max_w = if measured_w + below_margin_w(limit_w) < limit_w {
        let seen = (measured_w * 11 / 10 + 500).min(rated_w.max(0));
        Some(observed_max_w.map_or(seen, |o| o.min(seen)))
    } else {
        match observed_max_w {
            // Given (about) its maximum and drawing it: it may take more.
            Some(o) if limit_w * 10 >= o * 9 && measured_w * 10 >= o * 9 => {
                let raised = o * 3 / 2 + 1_000;
                (raised < rated_w).then_some(raised)
            }
            other => other,
        }
    };
    Assessment {
        observed_max_w,
        over_limit: false,
    }
}

/// Applies [`assess`] to every power reading of a batch just stored, and re-plans the groups
/// whose cars changed. Failures are logged: the readings are stored, and the next plan reads
/// them.
pub async fn after_meter_values(engine: &Engine, readings: &[MeterReading]) {
    let mut groups = Vec::new();
    for r in readings {
        let (Some(session_id), Some(power_w)) = (&r.session_id, r.power_w) else {
            continue;
        };
        match assess_reading(engine, r, session_id, power_w).await {
            Ok(Some(group)) => groups.push(group),
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(session = %session_id, error = %e, "closed loop: reading not assessed");
            }
        }
    }
    groups.sort_unstable();
    groups.dedup();
    for g in groups {
        replan::request_or_log(engine, g, "meter").await;
    }
}

/// Assesses one reading; the group to re-plan when it changed something.
async fn assess_reading(
    engine: &Engine,
    r: &MeterReading,
    session_id: &str,
    power_w: i64,
) -> StoreResult<Option<i64>> {
    let mut conn = engine.db.conn().await?;
    let Some(session) = sessions::get(&mut conn, &r.country_code, &r.party_id, session_id).await?
    else {
        return Ok(None);
    };
    let profile = schedules::last_profile_of_session(&mut conn, session.id).await?;
    if profile
        .as_ref()
        .is_some_and(|p| !matches!(p.status.as_str(), "in_force" | "unchanged"))
    {
        return Ok(None);
    }
    let rated_w = crate::store::locations::get_evse(
        &mut conn,
        &r.country_code,
        &r.party_id,
        &session.record.evse_uid,
    )
    .await?
    .and_then(|e| e.record.rated_power_w)
    .unwrap_or(engine.config.default_evse_power_w);
    // The limit the reading is held against, and since when: the profile in force, else (no
    // profile ever limited the session) the charge point's rating since the session started.
    let (limit_w, since) = match &profile {
        Some(p) => (p.power_w, p.updated_at),
        None => (rated_w, session.record.start_ts),
    };
    if r.ts < since + GRACE_S {
        return Ok(None);
    }
    let a = assess(limit_w, power_w, session.observed_max_w, rated_w);
    // A reading clearly below its limit with the battery's SoC: where the car's taper starts,
    // for a request (guaranteed or not) whose battery the plan follows.
    let mut taper_knee_permille = session.taper_knee_permille;
    if let Some(soc) = r.soc_permille
        && power_w + below_margin_w(limit_w) < limit_w
        && let Some(q) = crate::store::requests::latest_for_session(&mut conn, session.id)
            .await?
            .filter(|q| q.battery_capacity_wh.is_some())
        && let Some(knee) = knee_from_reading(
            super::snapshot::vehicle_power_w(rated_w, q.vehicle_max_power_w),
            power_w,
            soc,
        )
        && taper_knee_permille.is_none_or(|k| knee < k)
    {
        tracing::info!(session = %session_id, knee_permille = knee, soc_permille = soc,
            measured_w = power_w, "closed loop: taper knee learned");
        taper_knee_permille = Some(knee);
    }
    let over_limit_since = match (a.over_limit, session.over_limit_since) {
        (true, Some(since)) => Some(since),
        (true, None) => {
            tracing::warn!(session = %session_id, evse = %session.record.evse_uid,
                limit_w, measured_w = power_w,
                "closed loop: the charge point draws above its limit");
            Some(r.ts)
        }
        (false, _) => None,
    };
    if a.over_limit {
        metrics::counter!("evflex_noncompliant_readings_total").increment(1);
    }
    let draw = sessions::Draw {
        observed_max_w: a.observed_max_w,
        over_limit_since,
        taper_knee_permille,
    };
    if draw == session.draw() {
        return Ok(None);
    }
    sessions::set_draw(&mut conn, session.id, draw).await?;
    crate::store::groups::group_of_evse(
        &mut conn,
        &r.country_code,
        &r.party_id,
        &session.record.evse_uid,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_car_drawing_its_limit_changes_nothing() {
        let a = assess(11_040, 10_900, None, 11_040);
        assert_eq!(
            a,
            Assessment {
                observed_max_w: None,
                over_limit: false
            }
        );
        // Within the margin either way.
        assert_eq!(assess(11_040, 9_000, None, 11_040).observed_max_w, None);
        assert!(!assess(4_000, 4_900, None, 11_040).over_limit);
    }

    #[test]
    fn a_tapering_car_gets_a_falling_maximum() {
        // Allowed 11.04 kW, draws 5 kW: its maximum is 6 kW.
        let a = assess(11_040, 5_000, None, 11_040);
        assert_eq!(a.observed_max_w, Some(6_000));
        // Later, allowed its 6 kW, it draws 3 kW: 3.8 kW.
        let b = assess(6_000, 3_000, a.observed_max_w, 11_040);
        assert_eq!(b.observed_max_w, Some(3_800));
        // A full car (0 W) keeps 500 W.
        assert_eq!(
            assess(3_800, 0, b.observed_max_w, 11_040).observed_max_w,
            Some(500)
        );
    }

    #[test]
    fn a_car_at_its_observed_maximum_is_probed_upwards() {
        // Given its 6 kW maximum and drawing it: the maximum may be holding it back, so it is
        // raised by half and 1 kW…
        assert_eq!(
            assess(6_000, 5_900, Some(6_000), 11_040).observed_max_w,
            Some(10_000)
        );
        // …up to the rating, where the maximum no longer says anything.
        assert_eq!(
            assess(10_000, 9_500, Some(10_000), 11_040).observed_max_w,
            None
        );
        // A car given its maximum that draws clearly less stays where it is (a 7.4 kW car
        // with its 8.64 kW maximum), and one given less than its maximum learns nothing.
        assert_eq!(
            assess(8_640, 7_400, Some(8_640), 11_040).observed_max_w,
            Some(8_640)
        );
        assert_eq!(
            assess(3_000, 3_000, Some(6_000), 11_040).observed_max_w,
            Some(6_000)
        );
    }

    #[test]
    fn a_car_above_its_limit_is_not_complying() {
        let a = assess(4_000, 11_000, Some(6_000), 11_040);
        assert!(a.over_limit);
        assert_eq!(a.observed_max_w, Some(6_000), "what was learned stays");
        assert!(assess(20_000, 22_100, None, 22_080).over_limit);
        assert!(!assess(20_000, 21_900, None, 22_080).over_limit);
    }

    #[test]
    fn a_taper_tells_its_knee() {
        // 11 kW car at 90 % SoC drawing 5.5 kW: the knee at 80 %.
        assert_eq!(knee_from_reading(11_000, 5_500, 900), Some(800));
        // At 95 % drawing 5 kW: 1000 − 50 · 11 / 5 = 890.
        assert_eq!(knee_from_reading(11_000, 5_000, 950), Some(890));
        // Rounded towards the lower knee (the plan then expects a little less).
        assert_eq!(knee_from_reading(11_000, 3_000, 900), Some(633));
        // Full power, or within 5 % of it: no taper seen.
        assert_eq!(knee_from_reading(11_000, 10_500, 900), None);
        // A 7.4 kW car at 40 %: a vehicle maximum, not a taper.
        assert_eq!(knee_from_reading(11_000, 7_400, 400), None);
        // Nothing drawn, an impossible SoC, no full power: nothing learned.
        assert_eq!(knee_from_reading(11_000, 0, 900), None);
        assert_eq!(knee_from_reading(11_000, 5_000, 1_000), None);
        assert_eq!(knee_from_reading(0, 5_000, 900), None);
    }

    proptest! {
        #[test]
        fn a_learned_knee_reproduces_its_reading_on_the_planned_taper(
            full in 1_000i64..50_000,
            knee in 500i64..990,
            soc in 0i64..1_000,
        ) {
            // A battery following the modelled taper: what the plan's curve allows at `soc`.
            let measured = evflex_schedule::taper_max_power_w(
                full as f64, 1_000.0, soc as f64, knee as f64 / 1_000.0,
            ).floor() as i64;
            if let Some(k) = knee_from_reading(full, measured, soc) {
                // Never above the true knee (the plan never expects more than the car takes),
                // and close to it where the reading says enough.
                prop_assert!(k <= knee);
                prop_assert!(k >= MIN_LEARNED_KNEE_PERMILLE);
                let at_learned = evflex_schedule::taper_max_power_w(
                    full as f64, 1_000.0, soc as f64, k as f64 / 1_000.0,
                );
                prop_assert!(at_learned <= measured as f64 + 1e-3);
            }
        }


        #[test]
        fn the_maximum_never_exceeds_the_rating_and_a_taper_only_lowers_it(
            limit in 0i64..50_000,
            measured in -1_000i64..60_000,
            before in proptest::option::of(0i64..50_000),
            rated in 1_000i64..50_000,
        ) {
            let a = assess(limit, measured, before, rated);
            if let Some(o) = a.observed_max_w {
                prop_assert!(o <= rated.max(before.unwrap_or(0)) && o >= 0);
            }
            if measured.max(0) + below_margin_w(limit) < limit
                && measured.max(0) <= limit + above_margin_w(limit)
                && let (Some(b), Some(o)) = (before, a.observed_max_w)
            {
                prop_assert!(o <= b);
            }
        }
    }
}
