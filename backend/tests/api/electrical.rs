//! Issue 12 through the service: a group's phases, tree of limits and charge-point wiring in
//! the topology API (validation, warnings, round trip, tenancy), the plan it feeds (per-phase
//! limits, the car phases learned from meter values) and the set-points in A sent to the CPO.

use crate::helpers::{Backend, MockCpo, TestApp, spawn_app_on, spawn_cpo};
use reqwest::Method;
use serde_json::{Value, json};

/// Group 1 of NL*EXA: E1–E4, 40 kW, a 20 A-per-phase connection with cabinet `cab-1` (16 A per
/// phase) beneath it. E1 (three-phase, straight) and E2 (three-phase, rotated by one) hang from
/// the cabinet, E3 is a single-phase point on L1 of the connection; all three take whole amps
/// from 6 A to 16 A. E4 is not wired: three phases, in watts.
fn garage(electrical_nodes: Value) -> Value {
    json!({"id": 1, "name": "garage", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 40_000, "evses": ["E1", "E2", "E3", "E4"],
        "electrical": {"phase_limit_a": [20, 20, 20], "nodes": electrical_nodes,
            "charge_points": [
                {"evse_uid": "E1", "node": "cab-1", "phases": ["L1", "L2", "L3"], "unit": "A",
                 "min_current_a": 6, "max_current_a": 16},
                {"evse_uid": "E2", "node": "cab-1", "phases": ["L2", "L3", "L1"], "unit": "A",
                 "min_current_a": 6, "max_current_a": 16, "current_step_a": 1},
                {"evse_uid": "E3", "phases": ["L1"], "unit": "A", "max_current_a": 16}]}})
}

fn cabinet(limit_a: f64) -> Value {
    json!([{"id": "cab-1", "parent": null, "kind": "cabinet",
        "phase_limit_a": [limit_a, limit_a, limit_a]}])
}

/// Registers a CPO on `app` with one site of EVSEs E1–E4; the CPO (keep it alive).
async fn garage_site(app: &mut TestApp) -> MockCpo {
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2", "E3", "E4"]).await;
    cpo
}

/// PUTs [`garage`] with a cabinet of `cabinet_a` per phase; the group as answered.
async fn put_garage(app: &TestApp, cabinet_a: f64) -> Value {
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/api/v1/groups/1",
            Some(&garage(cabinet(cabinet_a))),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

async fn the_tree_is_validated_stored_and_warned_about(backend: Backend) {
    let mut app = spawn_app_on(backend).await;
    let _cpo = garage_site(&mut app).await;

    // A malformed tree is a 400 naming the node and the reason; nothing is stored.
    let bad = |nodes: Value| garage(nodes);
    let cases = [
        (
            bad(json!([{"id": "cab-1", "parent": "main", "kind": "cabinet",
                "phase_limit_a": [16, 16, 16]}])),
            "nodes[0] (\"cab-1\").parent: unknown parent \"main\"",
        ),
        (
            bad(json!([
                {"id": "cab-1", "parent": "fuse", "kind": "cabinet", "phase_limit_a": [16, 16, 16]},
                {"id": "fuse", "parent": "cab-1", "kind": "fuse", "phase_limit_a": [16, 16, 16]}])),
            "nodes[0] (\"cab-1\"): cycle cab-1 → fuse → cab-1",
        ),
        (
            bad(json!([
                {"id": "cab-1", "kind": "cabinet", "phase_limit_a": [16, 16, 16]},
                {"id": "cab-1", "kind": "cabinet", "phase_limit_a": [16, 16, 16]}])),
            "nodes[1] (\"cab-1\"): duplicate node id",
        ),
        (
            bad(json!([{"id": "cab-1", "kind": "cabinet"}])),
            "nodes[0] (\"cab-1\"): a limit node needs a limit",
        ),
        (
            bad(json!([{"id": "cab-1", "kind": "cabinet", "phase_limit_a": [16, 16]}])),
            "nodes[0] (\"cab-1\").phase_limit_a: needs three entries",
        ),
        (
            bad(json!([{"id": "connection", "kind": "fuse", "limit_w": 1000}])),
            "nodes[0] (\"connection\"): \"connection\" names the group's connection",
        ),
        (
            bad(json!([{"id": "cab-2", "kind": "cabinet", "phase_limit_a": [16, 16, 16]}])),
            "charge_points[0] (\"E1\").node: unknown node \"cab-1\"",
        ),
    ];
    for (spec, message) in cases {
        let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/1", Some(&spec)).await;
        assert_eq!(status, 400, "{body}");
        let got = body["message"].as_str().unwrap();
        assert!(got.contains(message), "want {message:?} in {got:?}");
    }
    let mut not_member = garage(cabinet(16.0));
    not_member["evses"] = json!(["E1", "E2", "E3"]);
    not_member["electrical"]["charge_points"][2]["evse_uid"] = json!("E4");
    let (status, body) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&not_member))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("charge_points[2] (\"E4\"): not a member of the group"),
        "{body}"
    );
    let mut no_max = garage(cabinet(16.0));
    no_max["electrical"]["charge_points"][2]
        .as_object_mut()
        .unwrap()
        .remove("max_current_a");
    let (status, body) = app
        .cpo(Method::PUT, "/api/v1/groups/1", Some(&no_max))
        .await;
    assert_eq!(status, 400);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("charge_points[2] (\"E3\").max_current_a: required"),
        "{body}"
    );
    let mut twice = garage(cabinet(16.0));
    twice["electrical"]["charge_points"][1]["phases"] = json!(["L2", "L2"]);
    let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/1", Some(&twice)).await;
    assert_eq!(status, 400);
    assert!(
        body["message"].as_str().unwrap().contains("wired twice"),
        "{body}"
    );
    assert_eq!(app.count("charging_groups").await, 0);

    // A cabinet rated above its connection is accepted, with a warning naming it.
    let body = put_garage(&app, 25.0).await;
    let warnings = body["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 3, "{body}");
    assert_eq!(
        warnings[0],
        "node \"cab-1\": L1 limit 25 A is above the connection's 20 A"
    );
    // Round trip: what was put is what is read, with the defaults filled in.
    let (status, body) = app.cpo(Method::GET, "/api/v1/groups/1", None).await;
    assert_eq!(status, 200);
    let e = &body["electrical"];
    assert_eq!(e["phase_voltage_v"], 230);
    assert_eq!(e["phase_limit_a"], json!([20.0, 20.0, 20.0]));
    assert_eq!(e["nodes"][0]["id"], "cab-1");
    assert_eq!(e["nodes"][0]["parent"], Value::Null);
    assert_eq!(e["charge_points"][1]["phases"], json!(["L2", "L3", "L1"]));
    assert_eq!(e["charge_points"][2]["min_current_a"], 6.0);
    assert_eq!(e["charge_points"][2]["current_step_a"], 1.0);
    assert_eq!(e["charge_points"][2]["voltage_v"], 230);
    // Fixed, the warning is gone.
    assert_eq!(put_garage(&app, 16.0).await["warnings"], json!([]));

    // A second CPO neither sees the tree nor can put one under the first CPO's codes.
    let (_other, other_token) = app.second_cpo().await;
    let (status, _) = app
        .send(Method::GET, "/api/v1/groups/1", Some(&other_token), None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = app
        .send(
            Method::PUT,
            "/api/v1/groups/1",
            Some(&other_token),
            Some(&garage(cabinet(16.0))),
        )
        .await;
    assert_eq!(status, 403);
}

#[tokio::test]
async fn the_tree_is_validated_stored_and_warned_about_postgres() {
    the_tree_is_validated_stored_and_warned_about(Backend::Postgres).await;
}

#[tokio::test]
async fn the_tree_is_validated_stored_and_warned_about_sqlite() {
    the_tree_is_validated_stored_and_warned_about(Backend::Sqlite).await;
}

/// Profile limits of `session` at step 0, with the unit and the minimum rate.
fn first_limit(profiles: &[(String, Value)], session: &str) -> (String, f64, Value) {
    let (_, body) = profiles
        .iter()
        .rev()
        .find(|(s, _)| s == session)
        .unwrap_or_else(|| panic!("no profile for {session}"));
    let p = &body["charging_profile"];
    (
        p["charging_rate_unit"].as_str().unwrap().to_owned(),
        p["charging_profile_period"][0]["limit"].as_f64().unwrap(),
        p["min_charging_rate"].clone(),
    )
}

#[tokio::test]
async fn amps_points_get_whole_amp_profiles_within_every_phase_limit() {
    let mut app = spawn_app_on(Backend::Postgres).await;
    let cpo = garage_site(&mut app).await;
    put_garage(&app, 16.0).await;
    for (i, evse) in ["E1", "E2", "E3", "E4"].iter().enumerate() {
        let (_, _, uid) = app.new_user(&format!("driver{i}"), true).await;
        app.put_session(&format!("S{}", i + 1), evse, &uid, 0.0)
            .await;
    }
    // E1's car is single-phase: its meter sees current on L1 only.
    let current = |phase: &str, a: &str| json!({"measurand": "Current.Import", "phase": phase, "value": a, "unit": "A"});
    let batch = json!({"meter_values": [{"evse_uid": "E1", "session_id": "S1", "meterValue": [{
        "timestamp": "2024-05-01T09:59:00Z",
        "sampledValue": [current("L1", "16"), current("L2", "0.1"), current("L3", "0")]}]}]});
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(&batch))
        .await;
    assert!(matches!(status, 200 | 202), "{status} {body}");

    let report = app.tick().await;
    assert_eq!(report.solved(), 1, "{report:?}");
    // The plan saw the tree and the learned car phases.
    let inputs = {
        let mut conn = app.state.db.conn().await.unwrap();
        let ts = evflex::domain::timestep_of(evflex::domain::Clock::now(&app.clock), 900) as i64;
        evflex::store::schedules::get(&mut conn, 1, ts, 0)
            .await
            .unwrap()
            .expect("schedule")
            .inputs
    };
    let topology = &inputs["topology"];
    assert_eq!(topology["nodes"][0]["id"], "connection");
    assert_eq!(
        topology["nodes"][0]["phase_limit_ma"],
        json!([20_000, 20_000, 20_000])
    );
    assert_eq!(topology["nodes"][1]["parent"], "connection");
    let cps = topology["charge_points"].as_array().unwrap();
    assert_eq!(cps.len(), 4);
    assert_eq!(cps[0]["car_phases"], 1, "{cps:?}");
    assert!(cps[1].get("car_phases").is_none(), "{cps:?}");
    assert_eq!(cps[3]["unit"], "W");

    let profiles = cpo.log.lock().unwrap().profiles.clone();
    let mut amps = [0.0; 4];
    for (i, s) in ["S1", "S2", "S3"].iter().enumerate() {
        let (unit, limit, min) = first_limit(&profiles, s);
        assert_eq!(unit, "A", "{s}");
        assert_eq!(min, json!(6.0), "{s}");
        assert_eq!(limit.fract(), 0.0, "{s}: {limit} is not whole amps");
        assert!(
            limit == 0.0 || (6.0..=16.0).contains(&limit),
            "{s}: {limit}"
        );
        amps[i] = limit;
    }
    let (unit, s4_w, _) = first_limit(&profiles, "S4");
    assert_eq!(unit, "W");
    // E4 (three-phase, W) loads every phase with W / 690 A.
    let s4_a = s4_w / (3.0 * 230.0);
    // Connection L1 carries S1 (single-phase car on L1), S3 (L1) and S4's share: ≤ 20 A.
    assert!(
        amps[0] + amps[2] + s4_a <= 20.0 + 1e-6,
        "L1: {amps:?} + {s4_a}"
    );
    // The rotated E2 loads node L2; the cabinet's 16 A per phase holds.
    assert!(amps[0] <= 16.0 && amps[1] <= 16.0, "{amps:?}");
    assert!(amps[1] + s4_a <= 20.0 + 1e-6, "L2: {amps:?} + {s4_a}");
    // Someone charges: the plan is not all zero.
    assert!(amps.iter().sum::<f64>() + s4_w > 0.0, "{amps:?} {s4_w}");
}

/// SC1 records the tree and the wiring the writer derives from the database; `evflex audit`
/// compares them field by field, and a change through the API is sent and agrees again.
#[tokio::test]
async fn the_tree_and_the_wiring_are_on_chain_and_audited() {
    use evflex::chain::{audit, records};
    let chain = evflex_chain::LocalChain::start_from_repo()
        .await
        .expect("anvil");
    let mut app = crate::chain::chain_app(&chain).await;
    let op = app.state.engine.chain.clone().unwrap().operator.clone();
    let _cpo = garage_site(&mut app).await;
    put_garage(&app, 16.0).await;
    let w = crate::chain::writer(&app);
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");

    let root = records::limit_node_id(1, "connection");
    let cab = records::limit_node_id(1, "cab-1");
    let node = op.limit_node(root).await.unwrap().expect("connection");
    assert_eq!(node.node.kind, evflex_chain::LimitNodeKind::Connection);
    assert_eq!(node.node.limit_da, [200, 200, 200]);
    assert_eq!(node.node.limit_w, 40_000);
    let node = op.limit_node(cab).await.unwrap().expect("cabinet");
    assert_eq!(node.node.parent_id, Some(root));
    assert_eq!(node.node.limit_da, [160, 160, 160]);
    assert_eq!(op.group_limit_node(1).await.unwrap(), Some(root));
    let (e2,): (i64,) = sqlx::query_as("SELECT id FROM evses WHERE uid = 'E2'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let cp = evflex_chain::ChargePointId::try_from(e2).unwrap();
    let wiring = op.phase_wiring(cp).await.unwrap().expect("E2 wired");
    assert_eq!(wiring.node_id, cab);
    assert_eq!(wiring.phases, [2, 3, 1]);
    assert_eq!(wiring.unit, evflex_chain::RateUnit::DeciAmpere);
    assert_eq!(
        (wiring.min_rate, wiring.max_rate, wiring.rate_step),
        (60, 160, 10)
    );
    let clean = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(clean.is_empty(), "{clean:#?}");

    // The database says 15 A where the chain says 16 A: the cabinet's phases and the wirings
    // that name 16 A are reported.
    let pool = app.state.db.pool();
    let (original,): (String,) =
        sqlx::query_as("SELECT electrical FROM charging_groups WHERE id = 1")
            .fetch_one(pool)
            .await
            .unwrap();
    sqlx::query("UPDATE charging_groups SET electrical = $1 WHERE id = 1")
        .bind(original.replace("16000", "15000"))
        .execute(pool)
        .await
        .unwrap();
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    for l in ["L1", "L2", "L3"] {
        assert!(
            diffs.iter().any(|d| d.contains("limit node \"cab-1\"")
                && d.contains(&format!(
                    "{l} limit (0.1 A) 150 in the database, 160 on chain"
                ))),
            "{diffs:#?}"
        );
    }
    assert!(
        diffs.iter().any(|d| d.contains("(E2) wiring")),
        "{diffs:#?}"
    );
    sqlx::query("UPDATE charging_groups SET electrical = $1 WHERE id = 1")
        .bind(&original)
        .execute(pool)
        .await
        .unwrap();
    assert!(audit::audit(&app.state.db, &op).await.unwrap().is_empty());

    // A smaller cabinet through the API goes on chain; the audit agrees.
    put_garage(&app, 12.5).await;
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    let node = op.limit_node(cab).await.unwrap().expect("cabinet");
    assert_eq!(node.node.limit_da, [125, 125, 125]);
    let clean = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(clean.is_empty(), "{clean:#?}");
}
