use crate::helpers::{Backend, T0, TestApp, spawn_app_on, spawn_cpo, token_header};
use evflex::domain::format_rfc3339;
use evflex::engine::GroupOutcome;
use reqwest::Method;
use serde_json::{Value, json};

/// Two groups: group 1 (E1, E2; 15 kW) with an opted-in session without a request (S1) and an
/// anonymous one (S2, uncontrolled); group 2 (E3, E4; 30 kW) with an accepted request (S3) and
/// a user who did not opt in (S4, uncontrolled).
async fn two_groups(app: &mut TestApp) {
    app.put_site("LOC-A", &["E1", "E2", "E3", "E4"]).await;
    app.put_group(1, 15_000, &["E1", "E2"]).await;
    app.put_group(2, 30_000, &["E3", "E4"]).await;
    app.new_user("alice", Some("ALICE"), true).await;
    let (_, bob) = app.new_user("bob", Some("BOB"), true).await;
    app.new_user("carol", Some("CAROL"), false).await;
    app.put_session("S1", "E1", "ALICE", 0.0).await;
    app.put_session("S2", "E2", "ANON", 0.0).await;
    app.put_session("S3", "E3", "BOB", 2.0).await;
    app.put_session("S4", "E4", "CAROL", 0.0).await;
    let req = json!({"session_id": "S3", "energy_kwh": 20.0, "departure": format_rfc3339(T0 + 6 * 3_600)});
    let (status, body) = app
        .user(&bob, Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
}

fn row<'a>(schedule: &'a Value, vehicle: &str) -> &'a Vec<Value> {
    let i = schedule["vehicle_ids"]
        .as_array()
        .unwrap()
        .iter()
        .position(|v| v == vehicle)
        .unwrap();
    schedule["power_w"][i].as_array().unwrap()
}

async fn full_tick(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    cpo.log.lock().unwrap().fail_first = 1; // one retry

    let report = app.tick().await;
    assert_eq!(report.solved(), 2, "{report:?}");
    assert_eq!(app.count("schedules").await, 2);
    let ts = evflex::domain::timestep_of(T0, 900) as i64;
    let mut conn = app.state.db.conn().await.unwrap();
    let g1 = evflex::store::schedules::get(&mut conn, 1, ts)
        .await
        .unwrap()
        .unwrap();
    let g2 = evflex::store::schedules::get(&mut conn, 2, ts)
        .await
        .unwrap()
        .unwrap();
    drop(conn);
    assert!(g1.inputs_hash.starts_with("0x") && g1.inputs_hash.len() == 66);
    // Uncontrolled sessions charge at full power from the start; the others share the rest.
    assert_eq!(row(&g1.schedule, "NL*EXA*S2")[0], 11_040);
    assert_eq!(row(&g2.schedule, "NL*EXA*S4")[0], 11_040);
    let s1 = row(&g1.schedule, "NL*EXA*S1");
    assert!(s1[0].as_i64().unwrap() <= 15_000 - 11_040);
    // The accepted request is met by its departure (6 h = 24 steps): 20 kWh.
    let s3: i64 = row(&g2.schedule, "NL*EXA*S3")[..24]
        .iter()
        .map(|p| p.as_i64().unwrap() * 900 / 3_600)
        .sum();
    assert!(s3 >= 19_990, "delivered {s3} Wh");

    // Chain work in the same transactions: one status commit per group and tick.
    // Groups are solved and committed in parallel, so the rows' order is not fixed.
    let mut commits = app.outbox("status_commit").await;
    commits.sort_by(|a, b| a.dedupe_key.cmp(&b.dedupe_key));
    let keys: Vec<&str> = commits.iter().map(|c| c.dedupe_key.as_str()).collect();
    assert_eq!(
        keys,
        [
            format!("status_commit:1:{ts}"),
            format!("status_commit:2:{ts}")
        ]
    );
    let p: Value = serde_json::from_str(&commits[1].payload).unwrap();
    assert_eq!(p["group_id"], 2);
    assert_eq!(p["inputs_hash"], g2.inputs_hash.as_str());
    assert_eq!(p["schedule_hash"], g2.schedule_hash.as_str());
    let e3 = p["members"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["evse_uid"] == "E3")
        .unwrap();
    assert_eq!(e3["session_id"], "S3");
    assert_eq!(e3["energy_left_wh"], 20_000);
    assert_eq!(e3["time_left_s"], 6 * 3_600);

    // Set-points reached the CPO for the opted-in sessions only, with token B.
    assert_eq!(report.delivery.sent, 2, "{report:?}");
    assert_eq!(report.delivery.retries, 1);
    let (profiles, auth) = {
        let log = cpo.log.lock().unwrap();
        (log.profiles.clone(), log.auth.clone())
    };
    let mut sessions: Vec<&str> = profiles.iter().map(|(s, _)| s.as_str()).collect();
    sessions.sort();
    assert_eq!(sessions, ["S1", "S3"]);
    assert!(auth.iter().all(|a| *a == token_header("cpo-token-b")));
    let (_, body) = profiles.iter().find(|(s, _)| s == "S3").unwrap();
    assert_eq!(body["charging_profile"]["charging_rate_unit"], "W");
    assert_eq!(
        body["charging_profile"]["start_date_time"],
        "2024-05-01T10:00:00Z"
    );
    let response_url = body["response_url"].as_str().unwrap().to_owned();
    assert!(response_url.starts_with(&format!("{}/ocpi/2.2.1/chargingprofiles/", app.address)));

    // The CPO's asynchronous result arrives at the response_url.
    let path = response_url.trim_start_matches(&app.address).to_owned();
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "MAYBE"})))
        .await;
    assert_eq!((status, body["status_code"].as_i64()), (400, Some(2001)));

    // Re-running the same timestep is a no-op.
    let again = app.tick().await;
    assert!(
        again
            .groups
            .iter()
            .all(|g| g.outcome == GroupOutcome::Skipped),
        "{again:?}"
    );
    assert_eq!(app.count("schedules").await, 2);
    assert_eq!(
        app.count("chain_outbox WHERE kind = 'status_commit'").await,
        2
    );

    // The cockpit shows both groups.
    let (status, body) = app.cpo(Method::GET, "/api/v1/cockpit/groups/1", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["charge_points"].as_array().unwrap().len(), 2);
    assert_eq!(body["charge_points"][0]["rated_power_w"], 11_040);
    assert_eq!(body["load_history"][0]["capacity_w"], 15_000);
    assert_eq!(body["schedule"]["vehicle_ids"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn full_tick_over_two_groups_postgres() {
    full_tick(Backend::Postgres).await;
}

#[tokio::test]
async fn full_tick_over_two_groups_sqlite() {
    full_tick(Backend::Sqlite).await;
}

async fn crashed_tick(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    let outbox_before = app.count("chain_outbox").await;

    // Group 1 dies between solve and commit (everything written, COMMIT never happens).
    app.state.faults.set_fail_before_commit(1, true);
    let report = app.tick().await;
    assert!(
        matches!(report.groups[0].outcome, GroupOutcome::Failed { .. }),
        "{report:?}"
    );
    assert!(
        matches!(report.groups[1].outcome, GroupOutcome::Solved { .. }),
        "{report:?}"
    );
    assert_eq!(app.count("schedules WHERE group_id = 1").await, 0);
    assert_eq!(app.count("setpoints WHERE group_id = 1").await, 0);
    assert_eq!(app.count("chain_outbox").await, outbox_before + 1);
    assert_eq!(
        app.count("sessions WHERE flex_shifted_wh <> 0 AND evse_uid = 'E1'")
            .await,
        0
    );
    assert_eq!(
        cpo.log.lock().unwrap().profiles.len(),
        1,
        "only group 2's set-point"
    );

    // The restarted tick completes the group; group 2 is not solved twice.
    app.state.faults.set_fail_before_commit(1, false);
    let report = app.tick().await;
    assert!(
        matches!(report.groups[0].outcome, GroupOutcome::Solved { .. }),
        "{report:?}"
    );
    assert_eq!(report.groups[1].outcome, GroupOutcome::Skipped);
    assert_eq!(app.count("schedules").await, 2);
    assert_eq!(
        app.count("chain_outbox WHERE kind = 'status_commit'").await,
        2
    );
}

#[tokio::test]
async fn crashed_tick_leaves_no_half_written_state_postgres() {
    crashed_tick(Backend::Postgres).await;
}

#[tokio::test]
async fn crashed_tick_leaves_no_half_written_state_sqlite() {
    crashed_tick(Backend::Sqlite).await;
}

#[tokio::test]
async fn a_failing_group_does_not_stop_the_others() {
    let mut app = spawn_app_on(Backend::Postgres).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    two_groups(&mut app).await;
    // Bad data: a negative forecast slipped past validation into the store.
    sqlx::query("INSERT INTO group_series (group_id, kind, ts, value_w) VALUES (1, 'pv', $1, -5)")
        .bind(T0)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let report = app.tick().await;
    match &report.groups[0].outcome {
        GroupOutcome::Failed { reason } => assert!(reason.contains("pv_w"), "{reason}"),
        other => panic!("group 1: {other:?}"),
    }
    assert!(matches!(
        report.groups[1].outcome,
        GroupOutcome::Solved { .. }
    ));
    assert_eq!(app.count("schedules").await, 1);
}
