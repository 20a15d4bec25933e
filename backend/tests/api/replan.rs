//! Event re-plans (issue 15): a group is re-planned when an event changes it, as the next
//! revision of the current timestep, and the changed set-points go out at once.

use crate::helpers::*;
use evflex::domain::{format_rfc3339, timestep_of};
use evflex::engine::replan;
use evflex::engine::{GroupOutcome, SkipReason};
use evflex::store;
use reqwest::Method;
use serde_json::{Value, json};
use std::time::Duration;

/// Seconds a profile is in force before readings are held against it.
const GRACE: i64 = evflex::engine::closed_loop::GRACE_S;

fn ts() -> i64 {
    timestep_of(T0, 900) as i64
}

/// The revisions stored for (group, timestep), ascending.
/// Group 1's newest schedule of the current timestep.
async fn latest_plan(app: &TestApp) -> store::schedules::ScheduleRecord {
    let mut conn = app.state.db.conn().await.unwrap();
    store::schedules::latest_of(&mut conn, 1, ts())
        .await
        .unwrap()
        .unwrap()
}

async fn revisions(app: &TestApp, group: i64, timestep: i64) -> Vec<i64> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT revision FROM schedules WHERE group_id = $1 AND timestep = $2 ORDER BY revision",
    )
    .bind(group)
    .bind(timestep)
    .fetch_all(app.state.db.pool())
    .await
    .unwrap();
    rows.into_iter().map(|(r,)| r).collect()
}

/// Profiles the CPO received for a session.
fn profiles_for(cpo: &MockCpo, session_id: &str) -> Vec<Value> {
    cpo.log
        .lock()
        .unwrap()
        .profiles
        .iter()
        .filter(|(id, _)| id == session_id)
        .map(|(_, body)| body.clone())
        .collect()
}

/// The first period's limit of a profile PUT body (W).
fn first_limit(body: &Value) -> f64 {
    body["charging_profile"]["charging_profile_period"][0]["limit"]
        .as_f64()
        .unwrap()
}

/// `user` asks for `kwh` on `session_id` by `departure`, and it is accepted.
async fn request_accepted(app: &TestApp, user: &str, session_id: &str, kwh: f64, departure: i64) {
    let req = json!({"session_id": session_id, "energy_kwh": kwh,
        "departure": format_rfc3339(departure)});
    post_accepted(app, user, &req).await;
}

/// `user` posts the charging request `req`, and it is accepted.
async fn post_accepted(app: &TestApp, user: &str, req: &Value) {
    let (status, body) = app
        .user(user, Method::POST, "/api/v1/requests", Some(req))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
}

/// Group 1 (15 kW) with E1..E4; alice (opted in) charges on E1 and the tick has planned her.
async fn planned_group(app: &mut TestApp, cpo: &MockCpo) -> String {
    app.register_cpo(cpo).await;
    app.put_site("LOC-A", &["E1", "E2", "E3", "E4"]).await;
    app.put_group(1, 15_000, &["E1", "E2", "E3", "E4"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert_eq!(profiles_for(cpo, "S1").len(), 1);
    alice_uid
}

async fn an_arrival_is_replanned_at_once(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    planned_group(&mut app, &cpo).await;
    // Alone, alice may draw her charge point's full 11.04 kW.
    assert_eq!(first_limit(&profiles_for(&cpo, "S1")[0]), 11_040.0);

    // Two minutes later a car that did not opt in plugs in on E2 and draws 11.04 kW: the group
    // is re-planned within the timestep, and alice's limit drops to what is left.
    app.clock.advance(120);
    app.put_session("S2", "E2", "ANON", 0.0).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert!(
        matches!(
            report.groups[0].outcome,
            GroupOutcome::Solved { revision: 1, .. }
        ),
        "{report:?}"
    );
    assert_eq!(revisions(&app, 1, ts()).await, vec![0, 1]);
    let sent = profiles_for(&cpo, "S1");
    assert_eq!(sent.len(), 2, "the changed profile is sent by the re-plan");
    assert!(first_limit(&sent[1]) <= 15_000.0 - 11_040.0, "{}", sent[1]);
    // The set-point names the revision it came from; the event is cleared.
    let (revision,): (i64,) = sqlx::query_as(
        "SELECT revision FROM setpoints WHERE session_id = 'S1' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(revision, 1);
    assert_eq!(app.count("replan_requests").await, 0);

    // Nothing waits: another round plans nothing and sends nothing.
    let report = replan::run_pending(&app.state.engine).await;
    assert!(report.groups.is_empty(), "{report:?}");
    assert_eq!(profiles_for(&cpo, "S1").len(), 2);

    // The next quarter hour's tick is revision 0 of its timestep and plans from revision 1.
    app.clock.advance(900);
    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert_eq!(revisions(&app, 1, ts() + 1).await, vec![0]);
}

#[tokio::test]
async fn an_arrival_is_replanned_at_once_on_postgres() {
    an_arrival_is_replanned_at_once(Backend::Postgres).await;
}

#[tokio::test]
async fn an_arrival_is_replanned_at_once_on_sqlite() {
    an_arrival_is_replanned_at_once(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_accepted_request_gets_its_set_point_without_waiting_for_the_tick() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    planned_group(&mut app, &cpo).await;
    let (_, bob, bob_uid) = app.new_user("bob", true).await;
    app.put_session("S3", "E3", &bob_uid, 0.0).await;
    app.clock.advance(300);
    request_accepted(&app, &bob, "S3", 10.0, T0 + 4 * 3_600).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let sent = profiles_for(&cpo, "S3");
    assert_eq!(sent.len(), 1, "bob's profile goes out with the re-plan");
    // 10 kWh in the 3 h 45 min from the next boundary on, plus the 5 minutes already past at
    // full power (the padding of a mid-step plan): the profile plans at least that.
    let stored = latest_plan(&app).await;
    assert_eq!(stored.revision, 1);
    let inputs: evflex_schedule::GroupInputs = serde_json::from_value(stored.inputs).unwrap();
    let bob_vehicle = inputs
        .vehicles
        .iter()
        .find(|v| v.class == evflex_schedule::VehicleClass::Guaranteed)
        .unwrap();
    assert_eq!(
        bob_vehicle.energy_requested_wh,
        10_000 + (11_040 * 300 + 3_599) / 3_600,
        "the guarantee is padded by the 5 minutes of the step already past"
    );
}

#[tokio::test]
async fn a_burst_of_arrivals_gives_one_replan() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let evses: Vec<String> = (1..=20).map(|i| format!("E{i}")).collect();
    let evse_refs: Vec<&str> = evses.iter().map(String::as_str).collect();
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &evse_refs).await;
    app.put_group(1, 60_000, &evse_refs).await;
    app.tick().await;
    app.clock.advance(60);
    let (_, _, uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &uid, 0.0).await;
    for i in 2..=20 {
        app.put_session(&format!("S{i}"), &format!("E{i}"), "ANON", 0.0)
            .await;
    }
    let (seq,): (i64,) = sqlx::query_as("SELECT seq FROM replan_requests WHERE group_id = 1")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(seq, 20, "twenty events coalesce into one waiting row");
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert_eq!(revisions(&app, 1, ts()).await, vec![0, 1]);
    // The one re-plan saw every car.
    let stored = store::schedules::get(&mut app.state.db.conn().await.unwrap(), 1, ts(), 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.schedule["vehicle_ids"].as_array().unwrap().len(), 20);
    assert!(
        replan::run_pending(&app.state.engine)
            .await
            .groups
            .is_empty()
    );
}

#[tokio::test]
async fn an_event_during_a_replan_is_not_lost() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 15_000, &["E1"]).await;
    let mut conn = app.state.db.conn().await.unwrap();
    // The group PUT recorded an event; a re-plan reads it…
    let read = store::replans::get(&mut conn, 1).await.unwrap().unwrap();
    // …another event comes in while it solves…
    store::replans::request(&mut conn, 1, "session", T0 + 1)
        .await
        .unwrap();
    // …so its commit does not clear the row: the group is planned once more.
    assert!(!store::replans::clear(&mut conn, 1, read.seq).await.unwrap());
    let again = store::replans::get(&mut conn, 1).await.unwrap().unwrap();
    assert_eq!(again.seq, read.seq + 1);
    assert_eq!(
        (again.first_at, again.last_at, again.reason.as_str()),
        (T0, T0 + 1, "session")
    );
    assert!(
        store::replans::clear(&mut conn, 1, again.seq)
            .await
            .unwrap()
    );
    assert!(store::replans::get(&mut conn, 1).await.unwrap().is_none());
}

#[tokio::test]
async fn an_event_before_the_tick_is_the_timesteps_first_plan() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 15_000, &["E1"]).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert!(
        matches!(
            report.groups[0].outcome,
            GroupOutcome::Solved { revision: 0, .. }
        ),
        "{report:?}"
    );
    let report = app.tick().await;
    assert!(
        matches!(report.groups[0].skip, Some(SkipReason::Committed { .. })),
        "{report:?}"
    );
    assert_eq!(revisions(&app, 1, ts()).await, vec![0]);
}

/// Waits until `check` holds, polling (the worker runs on its own).
async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn the_worker_replans_on_its_own_and_two_replicas_plan_each_event_once() {
    // Two replicas on one database, both running the re-plan worker.
    let mut app = spawn_app_with(Backend::Postgres, |c| {
        c.replan = evflex::config::ReplanMode::Auto;
    })
    .await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let other = spawn_replica(&app, |c| {
        c.replan = evflex::config::ReplanMode::Auto;
    })
    .await;
    let evses: Vec<String> = (1..=10).map(|i| format!("E{i}")).collect();
    let evse_refs: Vec<&str> = evses.iter().map(String::as_str).collect();
    app.put_site("LOC-A", &evse_refs).await;
    app.put_group(1, 30_000, &evse_refs).await;
    let mut users = Vec::new();
    for i in 1..=10 {
        users.push(app.new_user(&format!("u{i}"), true).await.2);
    }
    app.clock.advance(60);
    // Arrivals alternate between the replicas, with no tick.
    for (i, uid) in users.iter().enumerate() {
        let replica = if i % 2 == 0 { &app } else { &other };
        replica
            .put_session(&format!("S{}", i + 1), &format!("E{}", i + 1), uid, 0.0)
            .await;
    }
    // Every arrival gets its profile, from whichever replica planned the group.
    eventually("a profile for every session", async || {
        (1..=10).all(|i| !profiles_for(&cpo, &format!("S{i}")).is_empty())
    })
    .await;
    eventually("no event waiting", async || {
        app.count("replan_requests").await == 0
    })
    .await;
    // At most one plan per event (how many coalesce depends on timing; the burst test above
    // shows it), each revision stored once and in order, and the last one saw every car.
    let revs = revisions(&app, 1, ts()).await;
    assert!(
        !revs.is_empty() && revs.len() <= 11,
        "revisions {revs:?} for 11 events"
    );
    assert_eq!(revs, (0..revs.len() as i64).collect::<Vec<_>>());
    let last = latest_plan(&app).await;
    assert_eq!(last.schedule["vehicle_ids"].as_array().unwrap().len(), 10);
    // No session got two set-points from one revision.
    let (dupes,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM (SELECT session_row FROM setpoints
             GROUP BY group_id, timestep, revision, session_row HAVING COUNT(*) > 1) d",
    )
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    assert_eq!(dupes, 0);
}

/// Group 1 in the CPO's cockpit.
async fn cockpit(app: &TestApp) -> Value {
    let (status, body) = app.cpo(Method::GET, "/api/v1/cockpit/groups/1", None).await;
    assert_eq!(status, 200, "{body}");
    body
}

#[tokio::test]
async fn the_plan_keeps_an_arrival_reserve_for_the_free_charge_points() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    planned_group(&mut app, &cpo).await;
    // Few arrivals in the last day (one): no reserve, alice alone may draw her full 11.04 kW.
    assert_eq!(first_limit(&profiles_for(&cpo, "S1")[0]), 11_040.0);
    assert_eq!(cockpit(&app).await["arrival_reserve_w"], 0);

    // A busy day: twelve more cars came and went on the free charge points. One arrival within
    // the 10 s reaction window is now likelier than one in a thousand: the plan keeps one free
    // charge point's rating (11.04 kW) for it, and alice gets the 15 kW less that.
    for i in 0..12 {
        let id = format!("X{i}");
        app.put_session(&id, &format!("E{}", 2 + i % 3), "ANON", 1.0)
            .await;
        let (status, body) = app
            .cpo(
                Method::PATCH,
                &format!("/ocpi/2.2.1/sessions/NL/EXA/{id}"),
                Some(
                    &json!({"status": "COMPLETED", "end_date_time": format_rfc3339(T0),
                    "last_updated": format_rfc3339(T0 + 1)}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let group = cockpit(&app).await;
    assert_eq!(group["arrival_reserve_w"], 11_040);
    assert_eq!(group["arrival_reserve_configured_w"], Value::Null);
    assert_eq!(group["schedule"]["capacity_w"][0], 15_000 - 11_040);
    let sent = profiles_for(&cpo, "S1");
    assert_eq!(first_limit(sent.last().unwrap()), 15_000.0 - 11_040.0);

    // The CPO knows its stations react at once and sets no reserve: alice gets it all back.
    let spec = json!({"id": 1, "name": "group 1", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 15_000, "evses": ["E1", "E2", "E3", "E4"], "arrival_reserve_w": 0});
    let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/1", Some(&spec)).await;
    assert_eq!(
        (status, &body["arrival_reserve_w"]),
        (200, &json!(0)),
        "{body}"
    );
    replan::run_pending(&app.state.engine).await;
    assert_eq!(cockpit(&app).await["arrival_reserve_w"], 0);
    assert_eq!(
        first_limit(profiles_for(&cpo, "S1").last().unwrap()),
        11_040.0
    );

    // A reserve above what the free charge points can draw is capped at it; a negative one is
    // refused.
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/api/v1/groups/1",
            Some(
                &json!({"id": 1, "name": "g", "country_code": "NL", "party_id": "EXA",
                "capacity_w": 15_000, "evses": ["E1", "E2", "E3", "E4"], "arrival_reserve_w": -1}),
            ),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("arrival_reserve_w"), "{body}");
}

/// The CPO confirms the newest profile of `session_id` in force (its `ChargingProfileResult`).
async fn confirm(app: &TestApp, cpo: &MockCpo, session_id: &str) {
    let url = profiles_for(cpo, session_id).last().unwrap()["response_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = url.trim_start_matches(&app.address).to_owned();
    let (status, body) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A power reading of `session_id` on `evse_uid` at `at`.
/// An app with the NL*EXA CPO registered (its mock; keep it alive) and site LOC-A with EVSEs
/// E1 and E2.
async fn site_of_two() -> (TestApp, MockCpo) {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    (app, cpo)
}

async fn power_reading(app: &TestApp, evse_uid: &str, session_id: &str, at: i64, w: i64) {
    let batch = json!({"meter_values": [{"evse_uid": evse_uid, "session_id": session_id,
        "meterValue": [{"timestamp": format_rfc3339(at), "sampledValue": [
            {"measurand": "Power.Active.Import", "value": w.to_string(), "unit": "W"}]}]}]});
    post_meter_values(app, &batch).await;
}

/// POSTs a meter-value batch as the CPO; it must be taken.
async fn post_meter_values(app: &TestApp, batch: &Value) {
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(batch))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn a_car_that_draws_less_gives_its_headroom_and_one_that_draws_more_is_planned_at_it() {
    let (app, cpo) = site_of_two().await;
    app.put_group(1, 12_000, &["E1", "E2"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    let (_, _, bob_uid) = app.new_user("bob", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    confirm(&app, &cpo, "S1").await;
    confirm(&app, &cpo, "S2").await;
    let limit = |s: &str| first_limit(profiles_for(&cpo, s).last().unwrap()) as i64;
    // The 12 kW are shared out; the car given more is the one whose battery tapers.
    let (taper, taper_evse, other, other_evse) = if limit("S1") >= limit("S2") {
        ("S1", "E1", "S2", "E2")
    } else {
        ("S2", "E2", "S1", "E1")
    };
    assert!(limit(taper) >= 6_000, "{} + {}", limit("S1"), limit("S2"));
    assert_eq!(limit(taper) + limit(other), 12_000);

    // Once its limit has been in force for a whole meter interval, the tapering car draws
    // 2 kW of it: its maximum becomes 2.7 kW, the group is re-planned at once and the other
    // car gets the rest.
    app.clock.advance(GRACE);
    power_reading(&app, taper_evse, taper, T0 + GRACE, 2_000).await;
    let group = cockpit(&app).await;
    let cp = |g: &Value, uid: &str| {
        g["charge_points"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["evse_uid"] == uid)
            .unwrap()
            .clone()
    };
    assert_eq!(cp(&group, taper_evse)["observed_max_w"], 2_700);
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert_eq!(limit(taper), 2_700);
    assert_eq!(limit(other), 12_000 - 2_700);
    // A reading that changes nothing re-plans nothing.
    confirm(&app, &cpo, taper).await;
    confirm(&app, &cpo, other).await;
    app.clock.advance(GRACE);
    let now = app.clock.now_s();
    power_reading(&app, taper_evse, taper, now, 2_100).await;
    assert_eq!(app.count("replan_requests").await, 0);

    // The other charge point ignores its profile and draws 11 kW: it is shown as over its
    // limit and planned at its measured draw; the tapering car gets what is left.
    power_reading(&app, other_evse, other, now, 11_000).await;
    let group = cockpit(&app).await;
    assert!(
        cp(&group, other_evse)["over_limit_since"].is_string(),
        "{group}"
    );
    replan::run_pending(&app.state.engine).await;
    assert_eq!(limit(taper), 1_000, "12 kW less the 11 kW drawn");
    // It complies again: back under control.
    app.clock.advance(60);
    power_reading(&app, other_evse, other, now + 60, 9_000).await;
    assert!(cp(&cockpit(&app).await, other_evse)["over_limit_since"].is_null());
    replan::run_pending(&app.state.engine).await;
    assert_eq!(limit(taper), 2_700);
}

#[tokio::test]
async fn a_driver_is_warned_as_soon_as_a_tapering_car_cannot_meet_its_guarantee() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 22_000, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    request_accepted(&app, &alice, "S1", 20.0, T0 + 3 * 3_600).await;
    app.tick().await;
    let status_of = async |app: &TestApp| {
        let (status, body) = app
            .user(&alice, Method::GET, "/api/v1/users/me/status", None)
            .await;
        assert_eq!(status, 200, "{body}");
        body[0].clone()
    };
    let s = status_of(&app).await;
    assert!(s["warning"].is_null(), "on track at first: {s}");
    confirm(&app, &cpo, "S1").await;

    // The car draws 2 kW of its 11.04 kW: at most 2.7 kW from now on, 8.1 kWh in 3 hours,
    // not 20. The re-plan shows the shortfall and the driver is told why.
    app.clock.advance(GRACE);
    power_reading(&app, "E1", "S1", T0 + GRACE, 2_000).await;
    replan::run_pending(&app.state.engine).await;
    let s = status_of(&app).await;
    let short = s["shortfall_kwh"].as_f64().unwrap_or_default();
    assert!(short > 10.0, "{s}");
    let warning = s["warning"].as_str().unwrap_or_default();
    assert!(warning.contains("at most 2.7 kW"), "{warning}");
}

#[tokio::test]
async fn a_taper_seen_in_meter_values_is_planned_with_the_cars_own_knee() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 22_000, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    // A 60 kWh battery at 85 %: with the configured knee (80 %) the plan expects three
    // quarters of the charge point's 11.04 kW.
    let req = json!({"session_id": "S1", "energy_kwh": 3.0, "battery_capacity_kwh": 60.0,
        "current_soc_percent": 85.0, "departure": format_rfc3339(T0 + 4 * 3_600)});
    post_accepted(&app, &alice, &req).await;
    app.tick().await;
    let knee_of_plan = async |app: &TestApp| {
        let s = latest_plan(app).await;
        s.inputs["vehicles"][0]["taper_knee_permille"].as_i64()
    };
    assert_eq!(knee_of_plan(&app).await, Some(800));
    confirm(&app, &cpo, "S1").await;

    // A minute later, at 86 %, the car draws 4 kW: its own taper starts at 61.3 %
    // (1000 − 140 · 11,040 / 4,000). The group is re-planned with that knee, and the plan's
    // taper now allows what the car draws rather than 7.7 kW.
    app.clock.advance(60 + GRACE);
    let batch = json!({"meter_values": [{"evse_uid": "E1", "session_id": "S1",
        "meterValue": [{"timestamp": format_rfc3339(T0 + 60 + GRACE), "sampledValue": [
            {"measurand": "Power.Active.Import", "value": "4000", "unit": "W"},
            {"measurand": "SoC", "value": "86", "unit": "Percent"}]}]}]});
    post_meter_values(&app, &batch).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    assert_eq!(knee_of_plan(&app).await, Some(613));
    let limit = first_limit(profiles_for(&cpo, "S1").last().unwrap());
    assert!(limit <= 4_200.0, "planned at its own taper: {limit}");

    // A reading at full power teaches nothing new, and a later, higher estimate does not
    // raise the knee (a taper only falls).
    confirm(&app, &cpo, "S1").await;
    app.clock.advance(60);
    let batch = json!({"meter_values": [{"evse_uid": "E1", "session_id": "S1",
        "meterValue": [{"timestamp": format_rfc3339(T0 + 120 + 2 * GRACE), "sampledValue": [
            {"measurand": "Power.Active.Import", "value": "3900", "unit": "W"},
            {"measurand": "SoC", "value": "87", "unit": "Percent"}]}]}]});
    post_meter_values(&app, &batch).await;
    replan::run_pending(&app.state.engine).await;
    assert_eq!(knee_of_plan(&app).await, Some(613));
}

#[tokio::test]
async fn an_accepted_offer_gets_the_rest_of_its_request_once_there_is_room() {
    let (app, _cpo) = site_of_two().await;
    app.put_group(1, 8_000, &["E1", "E2"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (_, bob, bob_uid) = app.new_user("bob", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    // Bob's 12 kWh in two hours leave alice, in four hours on the 8 kW group, about 20 of the
    // 30 kWh she asks for: she takes the offer.
    request_accepted(&app, &bob, "S2", 12.0, T0 + 2 * 3_600).await;
    let ask = json!({"session_id": "S1", "energy_kwh": 30.0,
        "departure": format_rfc3339(T0 + 4 * 3_600)});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&ask))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("rejected")),
        "{body}"
    );
    let id = body["request_id"].as_i64().unwrap();
    let (status, body) = app
        .user(
            &alice,
            Method::POST,
            &format!("/api/v1/requests/{id}/accept-offer"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
    let offered_wh = (body["energy_kwh"].as_f64().unwrap() * 1_000.0).round() as i64;
    assert_eq!(body["energy_wanted_kwh"], 30.0, "{body}");
    assert!((19_000..21_000).contains(&offered_wh), "{body}");
    app.tick().await;
    let alice_in_plan = async |app: &TestApp| {
        let s = latest_plan(app).await;
        let vehicle = s.inputs["vehicles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|v| v["energy_requested_wh"].as_i64() >= Some(15_000))
            .unwrap()
            .clone();
        let row = s.schedule["vehicle_ids"]
            .as_array()
            .unwrap()
            .iter()
            .position(|id| *id == vehicle["id"])
            .unwrap();
        let planned_wh = s.schedule["delivered_wh"][row].as_i64().unwrap();
        (vehicle, planned_wh)
    };
    let (vehicle, planned_wh) = alice_in_plan(&app).await;
    assert_eq!(vehicle["energy_requested_wh"], offered_wh);
    assert_eq!(vehicle["energy_wanted_wh"], 30_000, "{vehicle}");
    assert!(planned_wh >= offered_wh, "{planned_wh}");

    // Bob leaves at once: the group's 8 kW are hers for four hours, and the plan gives her
    // more than the offer guaranteed (all the 30 kWh she asked for fits in 32 kWh).
    let (status, body) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/EXA/S2",
            Some(
                &json!({"status": "COMPLETED", "end_date_time": format_rfc3339(T0),
                "last_updated": format_rfc3339(T0 + 1)}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let (_, planned_wh) = alice_in_plan(&app).await;
    assert!(
        planned_wh >= 29_900,
        "best effort beyond the offer: {planned_wh} Wh planned"
    );
}

#[tokio::test]
async fn the_arrival_reserve_yields_to_an_accepted_guarantee() {
    let (app, _cpo) = site_of_two().await;
    let group = |reserve_w: i64| {
        json!({"id": 1, "name": "g", "country_code": "NL", "party_id": "EXA",
            "capacity_w": 11_040, "evses": ["E1", "E2"], "arrival_reserve_w": reserve_w})
    };
    let (status, body) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&group(0)))
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    // 10 kWh in one hour at 11.04 kW: accepted while the group keeps no reserve.
    request_accepted(&app, &alice, "S1", 10.0, T0 + 3_600).await;

    // The CPO then keeps 5 kW free for arrivals on E2: with it the group could give alice only
    // 6 kWh by her departure. The plan gives the reserve back to her guarantee.
    let (status, body) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&group(5_000)))
        .await;
    assert_eq!(status, 200, "{body}");
    app.tick().await;
    let s = latest_plan(&app).await;
    assert_eq!(s.reserve_w, 0, "the reserve yielded");
    assert_eq!(s.inputs["capacity_w"][0], 11_040);
    assert_eq!(s.schedule["unmet_wh"][0], 0, "{}", s.schedule);
    assert!(s.schedule["delivered_wh"][0].as_i64().unwrap() >= 10_000);

    // A guarantee that fits beside the reserve keeps it: alice asks for 5 kWh instead.
    request_accepted(&app, &alice, "S1", 5.0, T0 + 3_600).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let s = latest_plan(&app).await;
    assert_eq!(s.reserve_w, 5_000);
    assert_eq!(s.inputs["capacity_w"][0], 11_040 - 5_000);
}

#[tokio::test]
async fn a_request_that_was_not_guaranteed_still_steers_its_best_effort() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 4_000, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    // 30 kWh in two hours on a 4 kW group cannot be guaranteed; alice does not take the offer.
    let ask = json!({"session_id": "S1", "energy_kwh": 30.0,
        "departure": format_rfc3339(T0 + 2 * 3_600)});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&ask))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("rejected")),
        "{body}"
    );
    app.tick().await;
    let s = latest_plan(&app).await;
    let v = &s.inputs["vehicles"][0];
    // Best effort towards what she asked, by when she leaves: not the default 20 kWh over 8 h.
    assert_eq!(v["accepted"], false, "{v}");
    assert_eq!(v["opted_in"], true, "{v}");
    assert_eq!(v["energy_requested_wh"], 30_000, "{v}");
    assert_eq!(v["departure"], 8, "{v}");
    // All the group can give before she leaves: 4 kW for two hours.
    assert_eq!(s.schedule["delivered_wh"][0], 8_000, "{}", s.schedule);
}

#[tokio::test]
async fn a_car_no_profile_limits_is_planned_at_what_it_draws() {
    let (app, cpo) = site_of_two().await;
    app.put_group(1, 15_000, &["E1", "E2"]).await;
    // A car that did not opt in fits the group at the charge point's 11.04 kW: no profile
    // limits it. Alice, opted in, gets the rest.
    let (_, _, walk_in_uid) = app.new_user("walk-in", false).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &walk_in_uid, 0.0).await;
    app.put_session("S2", "E2", &alice_uid, 0.0).await;
    app.tick().await;
    assert!(profiles_for(&cpo, "S1").is_empty());
    let alice = || first_limit(profiles_for(&cpo, "S2").last().unwrap()) as i64;
    assert_eq!(alice(), 15_000 - 11_040);

    // Its own maximum is 5 kW, and it draws that: the plan counts it at 6 kW from then on
    // (issue 15: a car drawing 7 kW at a 22 kW point had held 15 kW from the others), and
    // Alice gets the room it leaves.
    power_reading(&app, "E1", "S1", T0, 5_000).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let group = cockpit(&app).await;
    let walk_in = group["charge_points"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["evse_uid"] == "E1")
        .unwrap()
        .clone();
    assert_eq!(walk_in["observed_max_w"], 6_000, "{group}");
    assert_eq!(alice(), 15_000 - 6_000);
    assert!(profiles_for(&cpo, "S1").is_empty(), "still never limited");
}

/// [`site_of_two`] with E1 and E2 three-phase points taking whole amps from 6 A to 16 A,
/// behind a 3×40 A connection (group 1, 30 kW).
async fn amps_site_of_two() -> (TestApp, MockCpo) {
    let (app, cpo) = site_of_two().await;
    let point = |uid: &str| {
        json!({"evse_uid": uid, "phases": ["L1", "L2", "L3"], "unit": "A",
            "min_current_a": 6, "max_current_a": 16})
    };
    let group = json!({"id": 1, "name": "garage", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 30_000, "evses": ["E1", "E2"],
        "electrical": {"phase_limit_a": [40, 40, 40], "nodes": [],
            "charge_points": [point("E1"), point("E2")]}});
    let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/1", Some(&group)).await;
    assert_eq!(status, 200, "{body}");
    (app, cpo)
}

#[tokio::test]
async fn a_car_not_opted_in_drawing_less_than_the_minimum_current_is_not_paused() {
    let (app, cpo) = amps_site_of_two().await;
    let (_, _, walk_in_uid) = app.new_user("walk-in", false).await;
    app.put_session("S1", "E1", &walk_in_uid, 0.0).await;
    app.tick().await;
    confirm(&app, &cpo, "S1").await;
    assert_eq!(first_limit(profiles_for(&cpo, "S1").last().unwrap()), 16.0);

    // It is nearly full: it draws 2 kW on its three phases, below the 4.14 kW of 6 A on three,
    // and is held at 2.7 kW from then on. It is planned at the 6 A minimum, under which it draws what it takes,
    // not at 0, which would pause it short of full.
    app.clock.advance(GRACE);
    let current = |phase: &str| json!({"measurand": "Current.Import", "phase": phase, "value": "2.9", "unit": "A"});
    let batch = json!({"meter_values": [{"evse_uid": "E1", "session_id": "S1",
        "meterValue": [{"timestamp": format_rfc3339(T0 + GRACE), "sampledValue": [
            {"measurand": "Power.Active.Import", "value": "2000", "unit": "W"},
            current("L1"), current("L2"), current("L3")]}]}]});
    post_meter_values(&app, &batch).await;
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let plan = latest_plan(&app).await;
    let walk_in = plan.inputs["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["opted_in"] == false)
        .unwrap()
        .clone();
    assert_eq!(walk_in["max_power_w"], 2_700, "{walk_in}");
    let row = plan.schedule["vehicle_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|id| *id == walk_in["id"])
        .unwrap();
    assert_eq!(plan.schedule["power_w"][row][0], 4_140, "{}", plan.schedule);
    assert_eq!(first_limit(profiles_for(&cpo, "S1").last().unwrap()), 6.0);
}

/// An opted-in car whose battery tapers below its charge point's 6 A minimum is given the
/// minimum and planned at what its taper takes under it (schedule model v6), not at 0, which
/// would pause it short of its request.
#[tokio::test]
async fn an_opted_in_car_tapering_below_the_minimum_current_is_not_paused() {
    let (app, cpo) = amps_site_of_two().await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    // A 60 kWh battery at 96 %, knee 80 %: it takes 11.04 kW · 4/20 = 2.2 kW now, less than
    // the 4.14 kW of 6 A on three phases, and less after.
    let req = json!({"session_id": "S1", "energy_kwh": 1.0, "battery_capacity_kwh": 60.0,
        "current_soc_percent": 96.0, "departure": format_rfc3339(T0 + 4 * 3_600)});
    post_accepted(&app, &alice, &req).await;
    app.tick().await;
    let plan = latest_plan(&app).await;
    let first = plan.schedule["power_w"][0][0].as_i64().unwrap();
    assert!((1_500..4_140).contains(&first), "{}", plan.schedule);
    assert!(
        plan.schedule["delivered_wh"][0].as_i64().unwrap() >= 1_000,
        "{}",
        plan.schedule
    );
    // Its profile is the 6 A minimum, under which it draws what it takes.
    assert_eq!(first_limit(profiles_for(&cpo, "S1").last().unwrap()), 6.0);
}

/// Each car's delivered energy is the freshest of what its CPO reported and what its charge
/// point's register moved since the session started (issue 15), read for the whole group at
/// once.
async fn the_plan_counts_each_cars_freshest_energy(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 30_000, &["E1", "E2"]).await;
    let (_, _, one) = app.new_user("walk-in-1", false).await;
    let (_, _, two) = app.new_user("walk-in-2", false).await;
    // The CPO says 1 kWh for S1 and 3 kWh for S2 (both started at 09:30).
    app.put_session("S1", "E1", &one, 1.0).await;
    app.put_session("S2", "E2", &two, 3.0).await;
    let reading = |at: &str, wh: i64| {
        json!({"timestamp": at, "sampledValue": [
            {"measurand": "Energy.Active.Import.Register", "value": wh.to_string(), "unit": "Wh"}]})
    };
    // E1's register moved 4 kWh since 09:30 (its 09:00 reading, another car's, is not S1's);
    // E2's moved 1 kWh, less than its CPO's 3 kWh.
    let batch = json!({"meter_values": [
        {"evse_uid": "E1", "meterValue": [reading("2024-05-01T09:00:00Z", 0)]},
        {"evse_uid": "E1", "session_id": "S1", "meterValue": [
            reading("2024-05-01T09:30:00Z", 10_000), reading("2024-05-01T09:50:00Z", 14_000)]},
        {"evse_uid": "E2", "session_id": "S2", "meterValue": [
            reading("2024-05-01T09:30:00Z", 500), reading("2024-05-01T09:50:00Z", 1_500)]}]});
    post_meter_values(&app, &batch).await;
    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let assumed = app.state.engine.config.uncontrolled_energy_wh;
    let plan = latest_plan(&app).await;
    let left: Vec<i64> = plan.inputs["vehicles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["energy_requested_wh"].as_i64().unwrap())
        .collect();
    assert_eq!(left, [assumed - 4_000, assumed - 3_000], "{}", plan.inputs);
}

#[tokio::test]
async fn the_plan_counts_each_cars_freshest_energy_on_postgres() {
    the_plan_counts_each_cars_freshest_energy(Backend::Postgres).await;
}

#[tokio::test]
async fn the_plan_counts_each_cars_freshest_energy_on_sqlite() {
    the_plan_counts_each_cars_freshest_energy(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_charge_point_out_of_control_is_counted_at_its_own_cars_draw_not_the_previous_ones() {
    let (mut app, cpo) = site_of_two().await;
    app.put_group(1, 15_000, &["E1", "E2"]).await;
    // E1's latest reading is the previous car's: 3 kW.
    power_reading(&app, "E1", "S0", T0 - 60, 3_000).await;
    let (_, _, bob_uid) = app.new_user("bob", true).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &bob_uid, 0.0).await;
    app.put_session("S2", "E2", &alice_uid, 0.0).await;
    // The CPO throttles every profile: none is in force, and the group is re-planned at once
    // with both charge points at their cars' draw, which no reading of theirs tells yet.
    cpo.log.lock().unwrap().answer = Some("TOO_OFTEN");
    app.tick().await;
    assert_eq!(app.count("replan_requests").await, 1);
    let report = replan::run_pending(&app.state.engine).await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let plan = latest_plan(&app).await;
    assert_eq!(
        plan.inputs["other_load_w"][0],
        2 * 11_040,
        "both at their full rating, not E1 at the previous car's 3 kW: {}",
        plan.inputs
    );

    // A car that plugs in at E2 now: a reading 20 s on may average over time before it drew, so
    // it still counts at its rating; one a minute on tells its draw.
    end_session(&app, "S2").await;
    let start = app.clock.now_s();
    app.put_session_at("S4", "E2", &alice_uid, 0.0, &format_rfc3339(start))
        .await;
    let e2_now = async |app: &mut TestApp, at: i64| {
        app.clock.set(at);
        power_reading(app, "E2", "S4", at, 3_600).await;
        replan::request(&app.state.engine, 1, "test").await.unwrap();
        // Its first profile is throttled too, which re-plans the group.
        replan::run_pending(&app.state.engine).await;
        replan::run_pending(&app.state.engine).await;
        latest_plan(app).await.inputs["other_load_w"][0]
            .as_i64()
            .unwrap()
    };
    assert_eq!(e2_now(&mut app, start + 20).await, 2 * 11_040);
    assert_eq!(e2_now(&mut app, start + 80).await, 11_040 + 3_600);
}

/// Two cars share a 15 kW group of two 11.04 kW charge points, their limits confirmed in force
/// and read back; the one given less stays. Returns (stays, its EVSE, the other, its EVSE, the
/// limit of the one that stays).
async fn two_cars_sharing(
    app: &mut TestApp,
    cpo: &MockCpo,
) -> (&'static str, &'static str, &'static str, &'static str, i64) {
    app.register_cpo(cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 15_000, &["E1", "E2"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    let (_, _, bob_uid) = app.new_user("bob", true).await;
    let limit = |s: &str| first_limit(profiles_for(cpo, s).last().unwrap()) as i64;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    confirm(app, cpo, "S1").await;
    confirm(app, cpo, "S2").await;
    assert_eq!(limit("S1") + limit("S2"), 15_000);
    let (stays, stays_evse, leaves, free_evse) = if limit("S1") <= limit("S2") {
        ("S1", "E1", "S2", "E2")
    } else {
        ("S2", "E2", "S1", "E1")
    };
    let before = limit(stays);
    assert!(before < 11_040, "{before}");
    app.clock.advance(GRACE);
    let now = app.clock.now_s();
    power_reading(app, stays_evse, stays, now, before).await;
    (stays, stays_evse, leaves, free_evse, before)
}

/// The CPO ends session `id` now.
async fn end_session(app: &TestApp, id: &str) {
    let now = app.clock.now_s();
    let (status, body) = app
        .cpo(
            Method::PATCH,
            &format!("/ocpi/2.2.1/sessions/NL/EXA/{id}"),
            Some(
                &json!({"status": "COMPLETED", "end_date_time": format_rfc3339(now),
                "last_updated": format_rfc3339(now)}),
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
}

/// A profile the CPO throttled (`TOO_OFTEN`) is not sent as it was planned once its wait ends if
/// plans of its group came meanwhile: they counted the car at its measured draw and gave the
/// rest to others, so the old profile would put the group over its capacity. The group is
/// re-planned when the wait ends and the car's fresh profile goes out.
#[tokio::test]
async fn a_throttled_rise_is_planned_again_when_its_wait_ends_not_sent_stale() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let (stays, _, leaves, free_evse, before) = two_cars_sharing(&mut app, &cpo).await;
    let (_, _, carol_uid) = app.new_user("carol", true).await;
    let limit = |s: &str| first_limit(profiles_for(&cpo, s).last().unwrap()) as i64;

    // The other car leaves: the one that stays may rise to its full 11.04 kW, but the CPO
    // throttles its profile. The group is re-planned with it at its measured draw.
    cpo.log
        .lock()
        .unwrap()
        .answer_for
        .insert(stays.into(), "TOO_OFTEN");
    end_session(&app, leaves).await;
    replan::run_pending(&app.state.engine).await;
    assert_eq!(limit(stays), 11_040, "the rise was asked for");
    replan::run_pending(&app.state.engine).await;

    // Carol plugs in while it waits: she gets what its measured draw leaves.
    app.clock.advance(10);
    app.put_session("S3", free_evse, &carol_uid, 0.0).await;
    replan::run_pending(&app.state.engine).await;
    assert_eq!(limit("S3"), 15_000 - before);
    confirm(&app, &cpo, "S3").await;
    let puts = profiles_for(&cpo, stays).len();

    // The wait ends (60 s). The throttled 11.04 kW no longer fits next to carol's limit: the
    // group is planned again and a fresh profile goes out, within the capacity.
    cpo.log.lock().unwrap().answer_for.clear();
    app.clock.advance(60);
    replan::run_pending(&app.state.engine).await;
    evflex::engine::setpoints::deliver_pending(&app.state.engine).await;
    assert!(
        limit(stays) + limit("S3") <= 15_000,
        "{} + carol {}",
        limit(stays),
        limit("S3")
    );
    assert_eq!(
        profiles_for(&cpo, stays).len(),
        puts + 1,
        "one fresh profile"
    );
    let mut conn = app.state.db.conn().await.unwrap();
    let (held,): (String,) =
        sqlx::query_as("SELECT status FROM setpoints WHERE deferrals > 0 AND revision = 1")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
    assert_eq!(
        held, "superseded",
        "the throttled profile was never sent again"
    );
}

/// While a car's newest profile waits (`TOO_OFTEN`), its charge point follows the profile the
/// CPO took before it, which its last reading may not show yet: the plan counts that profile's
/// limit, not the reading.
#[tokio::test]
async fn a_throttled_car_is_counted_at_the_limit_its_cpo_took_not_its_older_reading() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let (stays, _, leaves, free_evse, before) = two_cars_sharing(&mut app, &cpo).await;
    let (_, _, carol_uid) = app.new_user("carol", true).await;
    let limit = |s: &str| first_limit(profiles_for(&cpo, s).last().unwrap()) as i64;
    // The other car leaves: the one that stays rises to 11.04 kW, and the CPO takes it. Its
    // reading still says the limit before.
    end_session(&app, leaves).await;
    replan::run_pending(&app.state.engine).await;
    assert_eq!(limit(stays), 11_040);
    assert!(before < 11_040);

    // Carol plugs in; its lower profile is throttled. It goes on at 11.04 kW, so carol gets
    // what that leaves, not what its older reading would.
    cpo.log
        .lock()
        .unwrap()
        .answer_for
        .insert(stays.into(), "TOO_OFTEN");
    app.clock.advance(10);
    app.put_session("S3", free_evse, &carol_uid, 0.0).await;
    replan::run_pending(&app.state.engine).await;
    replan::run_pending(&app.state.engine).await;
    assert_eq!(
        limit("S3"),
        15_000 - 11_040,
        "the car that waits draws 11.04 kW"
    );
}
