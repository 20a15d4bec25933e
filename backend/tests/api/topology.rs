use crate::helpers::{Backend, T0, spawn_app_on, spawn_cpo};
use reqwest::Method;
use serde_json::{Value, json};

async fn stored_inputs(app: &crate::helpers::TestApp, group: i64) -> Value {
    let mut conn = app.state.db.conn().await.unwrap();
    let ts = evflex::domain::timestep_of(evflex::domain::Clock::now(&app.clock), 900) as i64;
    evflex::store::schedules::get(&mut conn, group, ts, 0)
        .await
        .unwrap()
        .expect("schedule")
        .inputs
}

async fn schedule_of(app: &crate::helpers::TestApp, group: i64) -> Value {
    let mut conn = app.state.db.conn().await.unwrap();
    let ts = evflex::domain::timestep_of(evflex::domain::Clock::now(&app.clock), 900) as i64;
    evflex::store::schedules::get(&mut conn, group, ts, 0)
        .await
        .unwrap()
        .expect("schedule")
        .schedule
}

async fn capacity_change_is_respected_by_the_next_tick(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 7_000, &["E1"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;

    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let schedule = schedule_of(&app, 1).await;
    assert!(schedule["grid_import_w"][0].as_i64().unwrap() <= 7_000);
    assert_eq!(stored_inputs(&app, 1).await["capacity_w"][0], 7_000);

    // A grid operator's cut, now, and a scheduled one later.
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/api/v1/groups/1/capacity",
            Some(&json!({"capacity_w": 3_000})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["capacity_w"], 3_000);
    let (status, body) = app
        .cpo(
            Method::POST,
            "/api/v1/groups/1/capacity-changes",
            Some(
                &json!({"start": "2024-05-01T12:15:00Z", "end": "2024-05-01T13:15:00Z",
                          "capacity_w": 1_000, "reason": "DSO congestion"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    app.clock.advance(900);
    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    let inputs = stored_inputs(&app, 1).await;
    let capacity: Vec<i64> = inputs["capacity_w"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(capacity[0], 3_000);
    // Step 0 is 10:15; 12:15–13:15 is steps 8..12.
    assert_eq!(
        &capacity[7..13],
        &[3_000, 1_000, 1_000, 1_000, 1_000, 3_000]
    );
    let schedule = schedule_of(&app, 1).await;
    for (t, cap) in capacity.iter().enumerate() {
        assert!(
            schedule["grid_import_w"][t].as_i64().unwrap() <= *cap,
            "step {t}"
        );
    }
    // The group's asset record changed with its capacity.
    let assets = app.outbox("asset_upsert").await;
    let groups: Vec<Value> = assets
        .iter()
        .map(|r| serde_json::from_str::<Value>(&r.payload).unwrap())
        .filter(|p| p["asset"] == "group")
        .collect();
    assert_eq!(groups.len(), 2);
    assert_eq!(groups[1]["capacity_w"], 3_000);
    let _ = T0;
}

#[tokio::test]
async fn capacity_change_postgres() {
    capacity_change_is_respected_by_the_next_tick(Backend::Postgres).await;
}

#[tokio::test]
async fn capacity_change_sqlite() {
    capacity_change_is_respected_by_the_next_tick(Backend::Sqlite).await;
}

#[tokio::test]
async fn topology_api_validates_and_round_trips() {
    let mut app = spawn_app_on(Backend::Postgres).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let topo = json!({"groups": [
        {"id": 1, "name": "Garage A", "country_code": "NL", "party_id": "EXA", "capacity_w": 50_000,
         "other_load_w": 4_000, "evses": ["E1", "E2"],
         "pv_inverters": [{"id": "roof", "peak_w": 20_000}],
         "batteries": [{"id": "b1", "capacity_wh": 50_000, "energy_wh": 20_000, "max_charge_w": 10_000,
                        "max_discharge_w": 10_000, "efficiency_permille": 900}],
         "capacity_changes": [{"start": "2024-05-01T16:00:00Z", "end": "2024-05-01T18:00:00Z", "capacity_w": 20_000}]},
        {"id": 2, "name": "Garage B", "country_code": "NL", "party_id": "EXA", "capacity_w": 22_000, "evses": ["E3"]}
    ]});
    let (status, body) = app.cpo(Method::PUT, "/api/v1/topology", Some(&topo)).await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app.cpo(Method::GET, "/api/v1/groups/1", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["evses"], json!(["E1", "E2"]));
    assert_eq!(body["pv_inverters"][0]["peak_w"], 20_000);
    assert_eq!(body["capacity_changes"][0]["capacity_w"], 20_000);
    let (_, body) = app.cpo(Method::GET, "/api/v1/groups", None).await;
    assert_eq!(body.as_array().unwrap().len(), 2);
    assert_eq!(app.outbox("asset_upsert").await.len(), 2);

    // An EVSE in two groups: 409, nothing changed.
    let spec = json!({"id": 2, "name": "Garage B", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 22_000, "evses": ["E3", "E1"]});
    let (status, _) = app.cpo(Method::PUT, "/api/v1/groups/2", Some(&spec)).await;
    assert_eq!(status, 409);
    let (_, body) = app.cpo(Method::GET, "/api/v1/groups/2", None).await;
    assert_eq!(body["evses"], json!(["E3"]));

    for (spec, field) in [
        (
            json!({"id": 3, "name": "x", "country_code": "NL", "party_id": "EXA", "capacity_w": -1}),
            "capacity_w",
        ),
        (
            json!({"id": 3, "name": "x", "country_code": "NLD", "party_id": "EXA", "capacity_w": 1}),
            "country_code",
        ),
        (
            json!({"id": 3, "name": "x", "country_code": "NL", "party_id": "EXA"}),
            "capacity_w",
        ),
        (
            json!({"id": 3, "name": "x", "country_code": "NL", "party_id": "EXA", "capacity_w": 1,
                "capacity_changes": [{"start": "soon", "capacity_w": 1}]}),
            "capacity_changes[0].start",
        ),
    ] {
        let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/3", Some(&spec)).await;
        assert_eq!(status, 400, "{spec}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    assert_eq!(app.count("charging_groups").await, 2);
    let (status, _) = app.send(Method::GET, "/api/v1/groups", None, None).await;
    assert_eq!(status, 401);
}
