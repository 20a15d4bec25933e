//! The simulator (`evflex::sim`) playing a CPO and its EV users for three simulated hours over
//! HTTP against evflex on PostgreSQL: two groups of four 11 kW charge points, PV on one, a
//! capacity cut on the other. Everything is asserted from what the simulated charge points
//! measured (the meter values they posted), not from evflex's plan.
//!
//! Delivery tolerance for accepted requests (see `sim::report`): the optimiser's 1 Wh plus 1 Wh
//! per step plugged in, because evflex re-plans every step from the session kWh the CPO reports
//! rounded to whole Wh, and profiles carry whole watts. Vehicles are 11 or 22 kW class, so none
//! is slower than its charge point (evflex does not know a vehicle's maximum power; OCPI gives
//! none).

use crate::helpers::{Backend, NowS, spawn_app_with, token_header};
use evflex_schedule::demand::DemandConfig;
use evflex_sim::{DemandSource, SimConfig, SimTarget, Summary};
use reqwest::Method;
use std::collections::HashMap;
use std::time::Instant;

/// Seed 2: with first-come-first-served uncontrolled charging (before the rule "an accepted
/// guarantee outranks uncontrolled charging"), all three accepted requests due in this window
/// missed, each after a car that did not opt in plugged into the same group.
fn short_day() -> SimConfig {
    SimConfig {
        seed: 2,
        start_hour: 9,
        hours: 3,
        sites: 1,
        groups: 2,
        charge_points: 8,
        cp_22kw_every: 0,
        capacity_share: 0.6,
        pv_peak_w: 10_000,
        capacity_cut: Some(0.85),
        cut_start_hour: 10,
        opt_in_share: 0.75,
        demand: DemandSource::Generated {
            config: DemandConfig {
                n_vehicles: 12,
                powers_kw: vec![11.0, 22.0],
                batteries_kwh: vec![30.0, 52.0],
                arrival_window_s: (9 * 3_600, 10 * 3_600 + 1_800),
                parking_s: (3_600, 5_400),
                ..DemandConfig::new(12)
            },
        },
        ..SimConfig::default()
    }
}

#[tokio::test]
async fn simulated_day_keeps_capacity_and_delivers_accepted_requests() {
    let started = Instant::now();
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.engine.uncontrolled_energy_wh = 100_000;
    })
    .await;
    let cfg = short_day();
    let target = SimTarget {
        base_url: app.address.clone(),
        state: app.state.clone(),
        clock: app.clock.clone(),
        registration_token: "sim-token-a".to_owned(),
    };
    let record = evflex_sim::run(&cfg, &target, |_, _| {})
        .await
        .expect("simulated day");
    let summary = Summary::of(&record);
    println!("{summary}");
    assert!(record.api_errors.is_empty(), "{:?}", record.api_errors);
    assert_eq!(record.ticks.ticks, 12);
    assert_eq!(record.ticks.failed, 0);
    assert_eq!(app.clock.now_s(), cfg.day_start + 12 * 3_600);

    // No group above its capacity (net of PV) in any step, from the meter values evflex stored.
    let rows: Vec<(String, i64, i64)> =
        sqlx::query_as("SELECT evse_uid, ts, power_w FROM meter_values WHERE power_w IS NOT NULL")
            .fetch_all(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(rows.len(), 12 * 8);
    let mut load: HashMap<(i64, i64), i64> = HashMap::new();
    for (uid, ts, w) in &rows {
        let cp = record
            .scenario
            .charge_points
            .iter()
            .find(|c| &c.uid == uid)
            .unwrap();
        *load.entry((cp.group_id, *ts)).or_default() += w;
    }
    for ((gid, ts), w) in &load {
        let g = &record.scenario.groups[(*gid - 1) as usize];
        // The reading at t + 15 min is the average power of the step starting at t.
        let k = ((ts - 900 - cfg.day_start) / 900) as usize;
        let limit = g.capacity_at(k) + g.pv_w[k] + 8;
        assert!(*w <= limit, "group {gid} step {k}: {w} W > {limit} W");
    }
    assert!(
        summary.groups.iter().all(|g| g.overload_steps == 0),
        "{summary}"
    );
    // Group 1 is three-phase (issue 12): rotated points, whole amps, single-phase cars; no
    // phase of its connection or its cabinet is over its limit in any step, as measured.
    let phases = summary.phases.as_ref().expect("a three-phase group");
    assert_eq!(phases.over_steps, 0, "{summary}");
    assert!(phases.max_share > 0.0, "{summary}");

    // The same day under four policies (issue 15): the same cars ask for the same energy;
    // smart keeps every group within capacity where uncontrolled charging does not; the
    // hindsight optimum, within the same limits and knowing every arrival, serves at least as
    // much as any policy that keeps the limits; equal sharing keeps the limits too.
    let policies = evflex_sim::policies::of(&record);
    println!("{policies}");
    let p = &policies.policies;
    assert_eq!(p.len(), 4);
    let wanted = p["smart"].energy_requested_kwh;
    assert!(wanted > 0.0);
    for (name, f) in p {
        assert_eq!(f.energy_requested_kwh, wanted, "{name}");
        assert!(f.energy_delivered_kwh <= wanted + 1e-6, "{name}: {f:?}");
    }
    assert_eq!(p["smart"].seconds_over_capacity, 0, "{policies}");
    assert_eq!(p["smart"].accepted_met, p["smart"].accepted_due);
    assert_eq!(p["smart"].accepted_due, summary.accepted_due);
    assert!(p["uncontrolled"].seconds_over_capacity > 0, "{policies}");
    assert!(p["uncontrolled"].max_overload_kw > 0.0);
    assert_eq!(p["equal_share"].seconds_over_capacity, 0, "{policies}");
    assert_eq!(p["hindsight"].seconds_over_capacity, 0, "{policies}");
    for name in ["smart", "equal_share"] {
        assert!(
            p["hindsight"].energy_delivered_kwh >= p[name].energy_delivered_kwh - 0.01,
            "hindsight below {name}: {policies}"
        );
    }
    // The same figures per group: energies and overload seconds add up to the day's.
    assert_eq!(policies.groups.len(), summary.groups.len(), "{policies}");
    for (name, day) in p {
        let of_groups = |f: fn(&evflex_sim::policies::PolicyFigures) -> f64| -> f64 {
            policies.groups.values().map(|g| f(&g[name])).sum()
        };
        assert!(
            (of_groups(|f| f.energy_delivered_kwh) - day.energy_delivered_kwh).abs() < 0.01,
            "{name}: {policies}"
        );
        assert!(
            (of_groups(|f| f.energy_requested_kwh) - day.energy_requested_kwh).abs() < 0.01,
            "{name}: {policies}"
        );
        assert_eq!(
            of_groups(|f| f.seconds_over_capacity as f64),
            day.seconds_over_capacity as f64,
            "{name}: {policies}"
        );
    }
    assert!(policies.latency_ms.p50 > 0.0 && policies.latency_ms.max >= policies.latency_ms.p99);
    assert!(
        summary
            .groups
            .iter()
            .any(|g| g.uncontrolled_overload_steps > 0),
        "the day should overload without smart charging: {summary}"
    );

    // Every accepted request due in the window is delivered by its departure, also when a
    // vehicle that is not opted in plugs into the same group later: an accepted guarantee
    // outranks uncontrolled charging (`backend/schedule/DESIGN.md`).
    assert!(summary.accepted_due >= 3, "{summary}");
    assert!(summary.misses.is_empty(), "{summary}");
    assert_eq!(summary.accepted_met, summary.accepted_due);

    // Vehicles that are not opted in charge at full power from plug-in unless a guarantee (or
    // the connection) needs their share: then, and only then, they get a profile.
    assert!(summary.uncontrolled >= 1, "{summary}");
    for v in record
        .vehicles
        .iter()
        .filter(|v| v.cp.is_some() && !v.opted_in && v.profiles == 0)
    {
        let k = v.arrival.arrival_step;
        assert_eq!(v.power_w[k], v.max_w as f64, "{} at plug-in", v.session_id);
    }
    assert!(
        summary.uncontrolled_full_power >= 1,
        "some uncontrolled car is free: {summary}"
    );

    // Each CDR stored once, also when the CPO sends it again.
    let unplugged = record.vehicles.iter().filter(|v| v.unplugged).count();
    assert!(unplugged >= 5);
    assert_eq!(record.cdrs, unplugged);
    assert_eq!(app.count("cdrs").await, unplugged as i64);
    assert_eq!(
        app.count("(SELECT DISTINCT cdr_id FROM cdrs) c").await,
        unplugged as i64
    );
    let first = record.vehicles.iter().find(|v| v.unplugged).unwrap();
    let auth = token_header(&record.cpo_token);
    let (status, body) = app
        .send(
            Method::GET,
            &format!("/ocpi/2.2.1/cdrs/CDR-{}", first.session_id),
            Some(&auth),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, _) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&auth),
            Some(&body["data"]),
        )
        .await;
    assert!(status < 300);
    assert_eq!(app.count("cdrs").await, unplugged as i64);

    // The CPO pushed its tariff, and every fourth vehicle's CDR leaves the price to it.
    assert_eq!(app.count("tariffs").await, 1);
    let without_total = record
        .vehicles
        .iter()
        .enumerate()
        .filter(|(i, v)| v.unplugged && i % 4 == 3)
        .count();
    assert_eq!(
        app.count("(SELECT id FROM cdrs WHERE total_cost_excl_vat_micro_eur IS NULL) c")
            .await,
        without_total as i64
    );

    assert!(
        started.elapsed().as_secs() < 60,
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn the_same_seed_gives_the_same_day() {
    let mut figures = Vec::new();
    for _ in 0..2 {
        let app = spawn_app_with(Backend::Sqlite, |c| {
            c.engine.uncontrolled_energy_wh = 100_000;
        })
        .await;
        let cfg = SimConfig {
            hours: 1,
            start_hour: 9,
            ..short_day()
        };
        let target = SimTarget {
            base_url: app.address.clone(),
            state: app.state.clone(),
            clock: app.clock.clone(),
            registration_token: "sim-token-a".to_owned(),
        };
        let record = evflex_sim::run(&cfg, &target, |_, _| {}).await.unwrap();
        let per_vehicle: Vec<(String, bool, Option<i64>, Vec<f64>)> = record
            .vehicles
            .iter()
            .map(|v| {
                (
                    v.session_id.clone(),
                    v.opted_in,
                    v.accepted_wh,
                    v.power_w.clone(),
                )
            })
            .collect();
        figures.push(per_vehicle);
    }
    assert_eq!(figures[0], figures[1]);
}

/// More days whose accepted requests broke before the priority rule (first-come-first-served
/// uncontrolled charging: seed 3, 4, 6, 7 one miss each, seed 5 two, all after a later
/// uncontrolled arrival in the same group): now every accepted request is met, no group exceeds
/// its capacity, and the cars that did not opt in are curtailed by charging profiles.
#[tokio::test]
async fn later_uncontrolled_arrivals_do_not_break_guarantees() {
    for seed in [3, 4, 5, 6, 7] {
        let app = spawn_app_with(Backend::Postgres, |c| {
            c.engine.uncontrolled_energy_wh = 100_000;
        })
        .await;
        let cfg = SimConfig {
            seed,
            ..short_day()
        };
        let target = SimTarget {
            base_url: app.address.clone(),
            state: app.state.clone(),
            clock: app.clock.clone(),
            registration_token: "sim-token-a".to_owned(),
        };
        let record = evflex_sim::run(&cfg, &target, |_, _| {}).await.unwrap();
        let summary = Summary::of(&record);
        assert!(
            record.api_errors.is_empty(),
            "seed {seed}: {:?}",
            record.api_errors
        );
        // At least two guarantees due in every day (seed 5 has two since group 1 is a
        // three-phase site whose single-phase cars ask for less).
        assert!(summary.accepted_due >= 2, "seed {seed}: {summary}");
        assert!(summary.misses.is_empty(), "seed {seed}: {summary}");
        assert_eq!(summary.accepted_met, summary.accepted_due, "seed {seed}");
        assert!(
            summary.groups.iter().all(|g| g.overload_steps == 0),
            "seed {seed}: {summary}"
        );
        assert!(summary.uncontrolled >= 1, "seed {seed}: {summary}");
        assert!(
            summary.profiles_to_uncontrolled >= 1,
            "seed {seed}: a later uncontrolled car is curtailed: {summary}"
        );
    }
}
