//! Stationary batteries (issue 15): the battery controller posts the state it measures, the
//! plan starts from it, and the controller reads the power the plan gives its battery. Both
//! routes are the owning CPO's alone.

use crate::helpers::{Backend, MockCpo, T0, TestApp, spawn_app_on, spawn_cpo};
use evflex::domain::format_rfc3339;
use reqwest::Method;
use serde_json::{Value, json};

const STATE: &str = "/api/v1/groups/1/batteries/store/state";
const SETPOINTS: &str = "/api/v1/groups/1/batteries/store/setpoints";

/// Group 1 of NL*EXA: one 11 kW point behind a 3 kW connection, and a 60 kWh battery that can
/// give 20 kW, holding `energy_wh`.
fn group(energy_wh: i64) -> Value {
    json!({"id": 1, "name": "Garage", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 3_000, "evses": ["E1"],
        "batteries": [{"id": "store", "capacity_wh": 60_000, "energy_wh": energy_wh,
            "max_charge_w": 20_000, "max_discharge_w": 20_000, "efficiency_permille": 900}]})
}

/// An app with a registered CPO (kept alive with it) and its group 1 holding 30 kWh.
async fn app_with_battery(backend: Backend) -> (TestApp, MockCpo) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    let (status, body) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&group(30_000)))
        .await;
    assert_eq!(status, 200, "{body}");
    (app, cpo)
}

/// The battery's energy in the inputs of the group's latest schedule (Wh).
async fn planned_from(app: &TestApp) -> i64 {
    let mut conn = app.state.db.conn().await.unwrap();
    let now = evflex::domain::Clock::now(&app.clock);
    let step = evflex::domain::timestep_of(now, 900) as i64;
    let s = evflex::store::schedules::latest_before(&mut conn, 1, step + 1)
        .await
        .unwrap()
        .expect("a schedule");
    s.inputs["battery"]["energy_wh"].as_i64().unwrap()
}

#[tokio::test]
async fn the_plan_starts_from_the_measured_state_and_the_battery_reads_its_power_postgres() {
    the_plan_starts_from_the_measured_state_and_the_battery_reads_its_power(Backend::Postgres)
        .await;
}

#[tokio::test]
async fn the_plan_starts_from_the_measured_state_and_the_battery_reads_its_power_sqlite() {
    the_plan_starts_from_the_measured_state_and_the_battery_reads_its_power(Backend::Sqlite).await;
}

async fn the_plan_starts_from_the_measured_state_and_the_battery_reads_its_power(backend: Backend) {
    let (app, _cpo) = app_with_battery(backend).await;

    // Before any plan: no periods, the battery idles.
    let (status, body) = app.cpo(Method::GET, SETPOINTS, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["periods"], json!([]));
    assert_eq!(body["timestep"], Value::Null);

    // Without a state the plan starts from the topology's energy.
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    assert_eq!(app.tick().await.solved(), 1);
    assert_eq!(planned_from(&app).await, 30_000);

    // The car wants more than the connection gives: the battery makes up the difference, and
    // the controller reads the plan's battery power, period by period from now.
    let (status, body) = app.cpo(Method::GET, SETPOINTS, None).await;
    assert_eq!(status, 200, "{body}");
    let schedule = {
        let mut conn = app.state.db.conn().await.unwrap();
        evflex::store::schedules::latest_before(&mut conn, 1, T0 / 900 + 1)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(body["timestep"], T0 / 900);
    assert_eq!(body["schedule_hash"], json!(schedule.schedule_hash));
    let planned = schedule.schedule["battery_w"].as_array().unwrap().clone();
    let periods = body["periods"].as_array().unwrap();
    assert_eq!(periods.len(), planned.len());
    assert_eq!(periods[0]["start"], json!(format_rfc3339(T0)));
    assert_eq!(periods[1]["start"], json!(format_rfc3339(T0 + 900)));
    for (p, w) in periods.iter().zip(&planned) {
        assert_eq!(&p["power_w"], w);
    }
    assert!(
        periods[0]["power_w"].as_i64().unwrap() < 0,
        "the battery discharges for the car: {body}"
    );

    // A state measured 5 minutes into the step, charging at 9 kW: the next step's plan starts
    // from its energy moved on to the quarter hour (10 min at 9 kW stored 1,350 Wh at 90 %).
    app.clock.advance(300);
    let (status, body) = app
        .cpo(
            Method::PUT,
            STATE,
            Some(&json!({"energy_wh": 12_000, "power_w": 9_000})),
        )
        .await;
    assert_eq!(status, 204, "{body}");
    app.clock.advance(600);
    assert_eq!(app.tick().await.solved(), 1);
    assert_eq!(planned_from(&app).await, 13_350);
    let (_, body) = app.cpo(Method::GET, SETPOINTS, None).await;
    assert_eq!(body["periods"][0]["start"], json!(format_rfc3339(T0 + 900)));

    // Bad states are refused with the reason, and change nothing.
    let now = T0 + 900;
    for (state, status, says) in [
        (json!({"energy_wh": 60_001}), 400, "energy_wh"),
        (json!({"energy_wh": -1}), 400, "energy_wh"),
        (
            json!({"energy_wh": 1_000, "power_w": 50_000}),
            400,
            "power_w",
        ),
        (json!({"energy_wh": 1_000, "soc": 3}), 400, "soc"),
        (
            json!({"energy_wh": 1_000, "measured_at": format_rfc3339(now + 3_600)}),
            400,
            "measured_at",
        ),
        (
            json!({"energy_wh": 1_000, "measured_at": "later"}),
            400,
            "measured_at",
        ),
        // Older than the stored state: kept out.
        (
            json!({"energy_wh": 1_000, "measured_at": format_rfc3339(T0)}),
            409,
            "later",
        ),
    ] {
        let (got, body) = app.cpo(Method::PUT, STATE, Some(&state)).await;
        assert_eq!(got, status, "{state}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(says),
            "{state}: {body}"
        );
    }
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/api/v1/groups/1/batteries/other/state",
            Some(&json!({"energy_wh": 1})),
        )
        .await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = app
        .cpo(
            Method::GET,
            "/api/v1/groups/1/batteries/other/setpoints",
            None,
        )
        .await;
    assert_eq!(status, 404);
    app.clock.advance(900);
    assert_eq!(app.tick().await.solved(), 1);
    assert_eq!(
        planned_from(&app).await,
        12_000 + 9_000 * 9 / 10 * 900 / 3_600,
        "the stored state, moved on for 15 minutes at most"
    );

    // Restating the same battery keeps the measured state; a new energy replaces it.
    let (status, _) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&group(30_000)))
        .await;
    assert_eq!(status, 200);
    app.clock.advance(900);
    app.tick().await;
    assert_ne!(planned_from(&app).await, 30_000);
    let (status, _) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&group(40_000)))
        .await;
    assert_eq!(status, 200);
    app.clock.advance(900);
    app.tick().await;
    assert_eq!(planned_from(&app).await, 40_000);
}

#[tokio::test]
async fn another_cpo_can_neither_read_nor_set_a_battery() {
    let (app, _cpo_a) = app_with_battery(Backend::Postgres).await;
    let (_cpo_b, b) = app.second_cpo().await;

    let (status, body) = app.send(Method::GET, SETPOINTS, Some(&b), None).await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = app
        .send(Method::PUT, STATE, Some(&b), Some(&json!({"energy_wh": 1})))
        .await;
    assert_eq!(status, 404, "{body}");
    assert_eq!(app.count("battery_states").await, 0, "B stored nothing");
    let (status, _) = app.send(Method::GET, SETPOINTS, None, None).await;
    assert_eq!(status, 401);
    let (status, _) = app
        .send(Method::PUT, STATE, None, Some(&json!({"energy_wh": 1})))
        .await;
    assert_eq!(status, 401);

    // A's own post is stored.
    let (status, _) = app
        .cpo(Method::PUT, STATE, Some(&json!({"energy_wh": 1})))
        .await;
    assert_eq!(status, 204);
    assert_eq!(app.count("battery_states").await, 1);
}
