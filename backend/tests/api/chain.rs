//! Issue 5 against a real anvil (`LocalChain` from `anvil/state.json`) and PostgreSQL: assets,
//! status commits, settlements with FLEX rewards, awaiting funds and top-up, audit, verify,
//! tampering, a writer "killed" between send and receipt, and an anvil restart.
//!
//! The writer runs manually (`Writer::run_once`), so every step is deterministic. The crash is
//! simulated with `Writer::abandon_after_send` (rows are marked `sent` with their hash, then the
//! writer is dropped before the receipt wait); a real `kill -9` of the binary belongs to the
//! end-to-end suite (`tests/`).

use crate::helpers::{Backend, T0, TestApp, spawn_app_with, spawn_cpo};
use evflex::chain::ChainConfig;
use evflex::chain::audit;
use evflex::chain::writer::Writer;
use evflex_chain::alloy_types::{Address, U256};
use evflex_chain::{Accounts, LocalChain};
use reqwest::Method;
use serde_json::{Value, json};
use std::sync::Arc;

pub(crate) const OPERATOR_KEY: &str =
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
pub(crate) const METER_KEY: &str =
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

pub(crate) async fn chain_app(chain: &LocalChain) -> TestApp {
    let endpoint = chain.endpoint();
    spawn_app_with(Backend::Postgres, move |c| {
        c.chain = ChainConfig::for_tests(&endpoint, OPERATOR_KEY, METER_KEY);
    })
    .await
}

pub(crate) fn writer(app: &TestApp) -> Writer {
    Writer::new(
        app.state.engine.chain.clone().expect("chain"),
        app.state.db.clone(),
        Arc::new(app.clock.clone()),
    )
    .with_http(app.state.http.clone())
}

pub(crate) fn cdr(id: &str, session: &str, evse: &str, token: &str, kwh: f64) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id,
        "start_date_time": "2024-05-01T09:30:00Z", "end_date_time": "2024-05-01T11:30:00Z",
        "session_id": session,
        "cdr_token": {"country_code": "NL", "party_id": "EXA", "uid": token, "type": "RFID",
                      "contract_id": format!("NL-EXA-{token}")},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": "LOC-A", "address": "Stationsplein 1", "city": "Utrecht",
            "country": "NLD", "coordinates": {"latitude": "52.089", "longitude": "5.110"},
            "evse_uid": evse, "evse_id": format!("NL*EXA*E{evse}"), "connector_id": "1",
            "connector_standard": "IEC_62196_T2", "connector_format": "SOCKET",
            "connector_power_type": "AC_3_PHASE"},
        "currency": "EUR",
        "charging_periods": [{"start_date_time": "2024-05-01T09:30:00Z",
            "dimensions": [{"type": "ENERGY", "volume": kwh}]}],
        // 0.25 €/kWh excl. VAT, 0.30 €/kWh incl. VAT: the driver pays the latter.
        "total_cost": {"excl_vat": kwh * 0.25, "incl_vat": kwh * 0.30},
        "total_energy": kwh, "total_time": 2.0,
        "last_updated": "2024-05-01T11:31:00Z"
    })
}

pub(crate) async fn set_flex(app: &TestApp, session: &str, wh: i64) {
    sqlx::query("UPDATE sessions SET shifted_wh = $1 WHERE session_id = $2")
        .bind(wh)
        .bind(session)
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

pub(crate) async fn wallet_address(app: &TestApp, token: &str) -> Address {
    let (status, body) = app
        .user(token, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    assert_eq!(status, 200, "{body}");
    body["address"].as_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn assets_commits_settlements_audit_and_verify_on_a_real_chain() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let ctx = app.state.engine.chain.clone().unwrap();
    let op = ctx.operator.clone();
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;

    // Site over OCPI + group → assets on chain.
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_080, &["E1", "E2"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (_, bob, bob_uid) = app.new_user("bob", false).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    let w = writer(&app);
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(
        r.failed,
        0,
        "{r:?} {:?} {:?}",
        app.outbox("consent").await,
        app.outbox("status_commit").await
    );
    let group = op.group(1).await.unwrap().expect("group on chain");
    assert_eq!(group.capacity_w, 22_080);
    let cps = op.charge_points_of(1).await.unwrap();
    assert_eq!(cps.len(), 2);
    assert!(
        cps.iter()
            .any(|c| c.charge_point.evse_uid == "E1" && c.active)
    );
    assert_eq!(cps[0].charge_point.rated_power_w, 11_040);

    // Consent of the opted-in user relayed on chain.
    let alice_addr = wallet_address(&app, &alice).await;
    let bob_addr = wallet_address(&app, &bob).await;
    assert!(
        op.has_consent(alice_addr, evflex::wallet::smart_charging_scope())
            .await
            .unwrap()
    );
    assert!(
        !op.has_consent(bob_addr, evflex::wallet::smart_charging_scope())
            .await
            .unwrap()
    );

    // Ticks → one StatusLedger commit per group per tick, matching the stored hashes.
    app.clock.advance(900);
    app.tick().await;
    w.run_until_idle(10).await.unwrap();
    let to = op.block_number().await.unwrap();
    let events = op.status_commits(0, to, Some(1)).await.unwrap();
    assert_eq!(events.len(), 2, "one commit per tick");
    for row in app.outbox("status_commit").await {
        assert_eq!(row.status, "done", "{row:?}");
        assert!(row.tx_hash.is_some() && row.block_number.is_some());
    }
    let ts = evflex::domain::timestep_of(T0 + 900, 900) as i64;
    let rec = audit::timestep_record(&app.state.db, &app.state.engine.solve_options(), 1, ts)
        .await
        .unwrap()
        .unwrap();
    let report = audit::verify_record(&rec, Some(&op)).await.unwrap();
    assert!(report.ok, "{report:?}");
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/audit/verify",
            None,
            Some(&json!({"group_id": 1, "timestep": ts})),
        )
        .await;
    assert_eq!((status, body["ok"].as_bool()), (200, Some(true)), "{body}");

    // CDRs → bills → settlements. Alice has no funds yet: awaiting funds, then a top-up.
    set_flex(&app, "S1", 3_000).await;
    set_flex(&app, "S2", 3_000).await;
    let (status, body) = app
        .user(
            &bob,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 50.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    for (id, s, e, t) in [("C1", "S1", "E1", "ALICE"), ("C2", "S2", "E2", "BOB")] {
        let (status, body) = app
            .cpo(
                Method::POST,
                "/ocpi/2.2.1/cdrs",
                Some(&cdr(id, s, e, t, 10.0)),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(r.awaiting_funds, 1, "{r:?}");
    let (_, mine) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(mine[0]["status"], "awaiting funds", "{mine}");
    assert_eq!(mine[0]["session_id"], "S1", "{mine}");
    assert!(
        mine[0]["tx_hash"].is_null() && mine[0]["settled_at"].is_null(),
        "{mine}"
    );
    assert_eq!(
        (
            mine[0]["energy_wh"].as_i64(),
            mine[0]["cost_micro_eur"].as_i64()
        ),
        (Some(10_000), Some(3_000_000)),
        "{mine}"
    );
    let (_, bobs) = app
        .user(&bob, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(bobs[0]["status"], "settled", "{bobs}");
    assert!(bobs[0]["tx_hash"].as_str().is_some());
    // 10 kWh at 0.30 €/kWh = 3 €; Bob did not opt in: no FLEX.
    assert_eq!(
        op.billing_balance(bob_addr).await.unwrap(),
        U256::from(47_000_000u64)
    );
    assert_eq!(op.flex_balance(bob_addr).await.unwrap(), U256::ZERO);

    let (status, _) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 20.0})),
        )
        .await;
    assert_eq!(status, 200);
    w.run_until_idle(10).await.unwrap();
    let (_, mine) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(mine[0]["status"], "settled", "{mine}");
    // The settled session as the wallet lists it: energy, cost, FLEX, and the transaction and
    // block of its `SessionSettled` event on chain.
    let events = op
        .settlement_events(0, op.block_number().await.unwrap())
        .await
        .unwrap();
    let alice_event = events
        .settled
        .iter()
        .find(|e| e.user == alice_addr)
        .expect("Alice's settlement on chain");
    assert_eq!(mine[0]["session_id"], "S1");
    assert_eq!(mine[0]["energy_wh"], 10_000);
    assert_eq!(mine[0]["energy_kwh"], 10.0);
    assert_eq!(mine[0]["cost_micro_eur"], 3_000_000);
    assert_eq!(mine[0]["cost_eur"], 3.0);
    assert_eq!(mine[0]["flexibility_wh"], 3_000);
    assert_eq!(mine[0]["flex_earned"], 3.0);
    assert_eq!(
        mine[0]["tx_hash"],
        alice_event.tx_hash.to_string(),
        "{mine}"
    );
    assert_eq!(mine[0]["block_number"], alice_event.block_number, "{mine}");
    assert_eq!(
        mine[0]["chain_session_id"],
        alice_event.session_id.to_string()
    );
    assert!(mine[0]["settled_at"].is_string(), "{mine}");
    assert_eq!(alice_event.energy_wh, 10_000);
    assert_eq!(alice_event.flexibility_wh, 3_000);
    assert_eq!(alice_event.cost, U256::from(3_000_000u64));
    assert_eq!(bobs[0]["flex_earned"], 0.0, "{bobs}");
    // Each user sees only their own settlements.
    assert_eq!(mine.as_array().map(Vec::len), Some(1), "{mine}");
    assert_eq!(bobs.as_array().map(Vec::len), Some(1), "{bobs}");
    assert_ne!(mine[0]["chain_session_id"], bobs[0]["chain_session_id"]);
    assert_eq!(
        op.billing_balance(alice_addr).await.unwrap(),
        U256::from(17_000_000u64)
    );
    // 3 kWh of flexibility × 1e15 FLEX wei per Wh
    assert_eq!(
        op.flex_balance(alice_addr).await.unwrap(),
        U256::from(3_000_000_000_000_000_000u128)
    );
    let (_, wallet) = app
        .user(&alice, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    assert_eq!(wallet["balances"]["flex"], 3.0, "{wallet}");

    // Audit is clean.
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:#?}");

    // Key export: a standard keystore under the user's password; no secret in any response.
    let (status, keystore) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/export",
            Some(&json!({"password": "correct horse"})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(keystore["version"], 3);
    let accounts = Accounts::from_repo().unwrap();
    let everything = format!("{keystore}{wallet}{mine}{bobs}{body}");
    for a in &accounts.accounts {
        let hex = a.private_key.trim_start_matches("0x");
        assert!(!everything.contains(hex), "a private key leaked");
    }
    assert!(!everything.contains("test master secret"));

    // Tampering with a stored schedule makes verification fail.
    let mut tampered = rec.schedule.clone();
    if let Some(row) = tampered.power_w.first_mut() {
        row[0] += 1;
    }
    sqlx::query("UPDATE schedules SET schedule = $1 WHERE group_id = 1 AND timestep = $2")
        .bind(serde_json::to_string(&tampered).unwrap())
        .bind(ts)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let rec = audit::timestep_record(&app.state.db, &app.state.engine.solve_options(), 1, ts)
        .await
        .unwrap()
        .unwrap();
    let report = audit::verify_record(&rec, Some(&op)).await.unwrap();
    assert!(!report.ok && !report.schedule_hash_ok, "{report:?}");
}

#[tokio::test]
async fn writer_survives_a_crash_between_send_and_receipt_and_an_anvil_restart() {
    let mut chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let op = app.state.engine.chain.clone().unwrap().operator.clone();
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(7, 11_040, &["E1"]).await;
    writer(&app).run_until_idle(10).await.unwrap();
    app.tick().await;

    // A writer sends the commit, marks it `sent`, and dies before the receipt.
    let crashing = writer(&app).abandon_after_send();
    assert!(crashing.run_once().await.is_err());
    drop(crashing);
    let rows = app.outbox("status_commit").await;
    assert_eq!(rows[0].status, "sent");
    let sent_hash = rows[0].tx_hash.clone().unwrap();

    // A new writer resolves it from the receipt: done, same transaction, one record on chain.
    writer(&app).run_until_idle(10).await.unwrap();
    let rows = app.outbox("status_commit").await;
    assert_eq!(
        (rows[0].status.as_str(), rows[0].tx_hash.as_deref()),
        ("done", Some(sent_hash.as_str()))
    );
    let to = op.block_number().await.unwrap();
    assert_eq!(op.status_commits(0, to, Some(7)).await.unwrap().len(), 1);

    // Anvil stops: the next commit stays pending (retryable), then completes after a restart.
    app.clock.advance(900);
    app.tick().await;
    chain.stop().await.unwrap();
    let r = writer(&app).run_once().await.unwrap();
    assert_eq!(r.retried, 1, "{r:?}");
    let rows = app.outbox("status_commit").await;
    assert_eq!(rows[1].status, "pending");
    assert!(rows[1].attempts >= 1);
    chain.start_again().await.unwrap();
    app.clock.advance(600); // past the back-off
    writer(&app).run_until_idle(10).await.unwrap();
    let rows = app.outbox("status_commit").await;
    assert!(rows.iter().all(|r| r.status == "done"), "{rows:?}");
    let to = op.block_number().await.unwrap();
    assert_eq!(op.status_commits(0, to, Some(7)).await.unwrap().len(), 2);
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(diffs.is_empty(), "{diffs:#?}");
}

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(app.state.db.pool())
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// Sets `column` of the rows of `table` matching `filter` to the SQL expression `tampered`,
/// runs the audit, restores the original value and returns what the audit said.
async fn audit_with(
    app: &TestApp,
    op: &evflex_chain::ChainClient,
    table: &str,
    filter: &str,
    column: &str,
    tampered: &str,
) -> Vec<String> {
    let (original,): (Option<String>,) = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT CAST({column} AS TEXT) FROM {table} WHERE {filter}"
    )))
    .fetch_one(app.state.db.pool())
    .await
    .unwrap();
    exec(
        app,
        &format!("UPDATE {table} SET {column} = {tampered} WHERE {filter}"),
    )
    .await;
    let diffs = audit::audit(&app.state.db, op).await.unwrap();
    let literal = original.map_or_else(
        || "NULL".to_owned(),
        |v| format!("'{}'", v.replace('\'', "''")),
    );
    exec(
        app,
        &format!("UPDATE {table} SET {column} = {literal} WHERE {filter}"),
    )
    .await;
    diffs
}

fn assert_one(diffs: &[String], expected: &str) {
    assert!(
        diffs.len() == 1 && diffs[0].contains(expected),
        "expected exactly one difference containing {expected:?}, got {diffs:#?}"
    );
}

/// `evflex audit` compares every field the chain records: each tampered field of each kind of
/// record (charge point, group membership, group, PV inverter, battery, commit, settlement) is
/// reported as exactly one line naming it, and restoring it makes the audit clean again.
#[tokio::test]
async fn audit_reports_every_tampered_field_on_its_own_line() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let op = app.state.engine.chain.clone().unwrap().operator.clone();
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    let spec = json!({"id": 1, "name": "garage", "country_code": "NL", "party_id": "EXA",
        "capacity_w": 22_080, "evses": ["E1", "E2"],
        "pv_inverters": [{"id": "roof", "peak_w": 20_000}],
        "batteries": [{"id": "b1", "capacity_wh": 50_000, "energy_wh": 20_000,
            "max_charge_w": 10_000, "max_discharge_w": 10_000, "efficiency_permille": 900}]});
    let (status, body) = app.cpo(Method::PUT, "/api/v1/groups/1", Some(&spec)).await;
    assert_eq!(status, 200, "{body}");
    let (_, bob, bob_uid) = app.new_user("bob", true).await;
    app.put_session("S2", "E2", &bob_uid, 0.0).await;
    app.tick().await;
    let w = writer(&app);
    let r = w.run_until_idle(10).await.unwrap();
    assert_eq!(r.failed, 0, "{r:?}");
    // PV and battery are on chain with the group.
    let roof = evflex::chain::records::asset_chain_id("pv", 1, "roof");
    let (pv, active) = op.pv_inverter(roof).await.unwrap().expect("PV registered");
    assert_eq!((pv.group_id, pv.peak_w, active), (1, 20_000, true));
    let b1 = evflex::chain::records::asset_chain_id("battery", 1, "b1");
    let (bat, _) = op.battery(b1).await.unwrap().expect("battery registered");
    assert_eq!((bat.capacity_wh, bat.available_wh), (50_000, 20_000));

    set_flex(&app, "S2", 2_000).await;
    let (status, _) = app
        .user(
            &bob,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 50.0})),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&cdr("C2", "S2", "E2", "BOB", 10.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    w.run_until_idle(10).await.unwrap();
    let (_, bills) = app
        .user(&bob, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(bills[0]["status"], "settled", "{bills}");
    let clean = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(clean.is_empty(), "{clean:#?}");

    let (e1,): (i64,) = sqlx::query_as("SELECT id FROM evses WHERE uid = 'E1'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let (ts,): (i64,) = sqlx::query_as("SELECT timestep FROM schedules WHERE group_id = 1")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    let cp = format!("charge point {e1} (E1): ");
    let commit = format!("group 1 timestep {ts}: ");
    let evse = "uid = 'E1'";
    let group = "id = 1";
    let sched_filter = format!("group_id = 1 AND timestep = {ts}");
    let sched: &str = &sched_filter;
    let bill = "cdr_key LIKE '%C2'";
    let h = |b: u8| format!("'0x{}'", hex::encode([b; 32]));
    let cases: Vec<(&str, &str, &str, String, String)> = vec![
        // SC1: charge point fields
        (
            "evses",
            evse,
            "rated_power_w",
            String::from("7400"),
            format!("{cp}rated power (W) 7400 in the database, 11040 on chain"),
        ),
        (
            "evses",
            evse,
            "power_type",
            String::from("'DC'"),
            format!("{cp}power type Dc in the database, Ac3Phase on chain"),
        ),
        (
            "evses",
            evse,
            "phases",
            String::from("1"),
            format!("{cp}phases 1 in the database, 3 on chain"),
        ),
        (
            "evses",
            evse,
            "max_voltage_v",
            String::from("400"),
            format!("{cp}voltage (V) 400 in the database, 230 on chain"),
        ),
        (
            "evses",
            evse,
            "max_current_a",
            String::from("32"),
            format!("{cp}maximum current (A) 32 in the database, 16 on chain"),
        ),
        (
            "evses",
            evse,
            "connector_standard",
            String::from("'CHADEMO'"),
            format!("{cp}connector standard CHADEMO in the database, IEC_62196_T2 on chain"),
        ),
        (
            "evses",
            evse,
            "status",
            String::from("'REMOVED'"),
            format!("{cp}active false in the database, true on chain"),
        ),
        // SC1: group membership, group, PV, battery
        (
            "group_members",
            "evse_uid = 'E1'",
            "party_id",
            String::from("'XXX'"),
            format!(
                "charge point {e1} (E1): active in group 1 on chain, not a member in the database"
            ),
        ),
        (
            "charging_groups",
            group,
            "capacity_w",
            String::from("30000"),
            String::from("group 1: capacity (W) 30000 in the database, 22080 on chain"),
        ),
        (
            "charging_groups",
            group,
            "name",
            String::from("'renamed'"),
            String::from("group 1: label renamed in the database, garage on chain"),
        ),
        (
            "charging_groups",
            group,
            "pv_inverters",
            String::from(r#"'[{"id":"roof","peak_w":15000}]'"#),
            String::from(
                "group 1 PV inverter \"roof\": peak power (W) 15000 in the database, 20000 on chain",
            ),
        ),
        (
            "charging_groups",
            group,
            "batteries",
            String::from(
                r#"'[{"id":"b1","capacity_wh":40000,"energy_wh":20000,"max_charge_w":10000,"max_discharge_w":10000,"efficiency_permille":900}]'"#,
            ),
            String::from(
                "group 1 battery \"b1\": capacity (Wh) 40000 in the database, 50000 on chain",
            ),
        ),
        // SC2: the commit's three values
        (
            "schedules",
            sched,
            "inputs_hash",
            h(0x11),
            format!("{commit}inputs hash 0x1111"),
        ),
        (
            "schedules",
            sched,
            "schedule_hash",
            h(0x22),
            format!("{commit}schedule hash 0x2222"),
        ),
        (
            "schedules",
            sched,
            "params_hash",
            h(0x33),
            format!("{commit}algorithm version 0x"),
        ),
        // SC3: the settlement
        (
            "bills",
            bill,
            "energy_wh",
            String::from("9999"),
            String::from("energy (Wh) 9999 in the database, 10000 on chain"),
        ),
        (
            "bills",
            bill,
            "cost_micro_eur",
            String::from("1"),
            String::from("cost (micro-EUR) 1 in the database, 3000000 on chain"),
        ),
        (
            "bills",
            bill,
            "flexibility_wh",
            String::from("1"),
            String::from("flexibility (Wh, FLEX basis) 1 in the database, 2000 on chain"),
        ),
        (
            "bills",
            bill,
            "credit_wh",
            String::from("5"),
            String::from("credit (Wh) 5 in the database, 0 on chain"),
        ),
        (
            "bills",
            bill,
            "price_micro_eur_per_kwh",
            String::from("1"),
            String::from("price (micro-EUR/kWh) 1 in the database, 300000 on chain"),
        ),
        (
            "bills",
            bill,
            "user_address",
            String::from("'0x0000000000000000000000000000000000000001'"),
            String::from("user 0x0000000000000000000000000000000000000001 in the database"),
        ),
        (
            "bills",
            bill,
            "chain_session_id",
            h(0x44),
            String::from("session id 0x4444"),
        ),
        (
            "bills",
            bill,
            "status",
            String::from("'awaiting_funds'"),
            String::from("settled on chain, awaiting_funds in the database"),
        ),
        (
            "bills",
            bill,
            "tx_hash",
            h(0x55),
            String::from("transaction 0x5555"),
        ),
    ];
    for (table, filter, column, tampered, expected) in &cases {
        let diffs = audit_with(&app, &op, table, filter, column, tampered).await;
        assert_one(&diffs, expected);
        println!("{table}.{column}: {}", diffs[0]);
    }
    // The stored schedule itself (not its hash): it no longer hashes to the committed value.
    let rec = audit::timestep_record(&app.state.db, &app.state.engine.solve_options(), 1, ts)
        .await
        .unwrap()
        .unwrap();
    let original = serde_json::to_string(&rec.schedule).unwrap();
    let mut tampered = rec.schedule.clone();
    tampered.power_w[0][0] += 1;
    let set_schedule = "UPDATE schedules SET schedule = $1 WHERE group_id = 1 AND timestep = $2";
    sqlx::query(set_schedule)
        .bind(serde_json::to_string(&tampered).unwrap())
        .bind(ts)
        .execute(app.state.db.pool())
        .await
        .unwrap();
    let diffs = audit::audit(&app.state.db, &op).await.unwrap();
    assert_one(&diffs, "schedule hash");
    assert!(
        diffs[0].contains("in the database and on chain, but the stored data hash to"),
        "{diffs:?}"
    );
    sqlx::query(set_schedule)
        .bind(original)
        .bind(ts)
        .execute(app.state.db.pool())
        .await
        .unwrap();

    let clean = audit::audit(&app.state.db, &op).await.unwrap();
    assert!(clean.is_empty(), "restored: {clean:#?}");
}

/// A meter signer serving `parties` for `cpo` with `key`, on a free local port; its URL.
async fn spawn_signer(
    app: &TestApp,
    parties: &[&str],
    cpo: Address,
    key: evflex_chain::alloy_types::PrivateKeySigner,
) -> String {
    let ctx = app.state.engine.chain.clone().unwrap();
    let policy = evflex::billing::signer::SignerPolicy {
        parties: parties.iter().map(|p| p.to_string()).collect(),
        cpo,
        chain_id: ctx.deployment.chain_id,
        billing_contract: ctx.deployment.contracts.energy_billing,
        max_price_micro_eur_per_kwh: 1_000_000,
        max_energy_wh: 500_000,
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/sign", listener.local_addr().unwrap());
    let router = evflex::billing::signer::router(policy, key);
    tokio::spawn(async move { axum::serve(listener, router).await });
    url
}

/// Finding 10 and 11 of issue 13: each CPO is paid at its own EnergyBilling address, and its
/// bills are signed by its own meter signer, a process holding a key evflex never sees. evflex
/// takes an address only with proof (registered on chain, and the signer signs a probe with the
/// meter key on record), and one address is one party's only.
#[tokio::test]
async fn a_cpo_is_paid_at_its_own_address_and_signs_with_its_own_key() {
    use evflex_chain::alloy_types::PrivateKeySigner;
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let (status, body) = app
        .register_party(&cpo, "token-a-b", "token-b-b", &[("DE", "BBB")])
        .await;
    assert_eq!(status, 200, "{body}");
    let b = crate::helpers::token_header(body["data"]["token"].as_str().unwrap());
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 22_080, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (status, body) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 20.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // The operator registers the CPO's own identity in EnergyBilling: its address, the meter
    // key only its signer holds, and its treasury.
    let ctx = app.state.engine.chain.clone().unwrap();
    let admin = evflex_chain::client::ChainClient::connect(
        &chain.endpoint(),
        ctx.deployment.clone(),
        Accounts::from_repo().unwrap().admin().unwrap(),
    )
    .await
    .unwrap();
    let (cpo_key, meter_key) = (PrivateKeySigner::random(), PrivateKeySigner::random());
    let address = cpo_key.address();
    admin
        .register_billing_cpo(address, meter_key.address(), cpo_key.address(), U256::ZERO)
        .await
        .unwrap();
    let signer_url = spawn_signer(&app, &["NL*EXA"], address, meter_key.clone()).await;
    let put = |cc: Option<&str>, body: Value| {
        let app = &app;
        let auth = cc.map(str::to_owned);
        async move {
            match auth {
                None => {
                    app.cpo(Method::PUT, "/api/v1/cpo/settlement", Some(&body))
                        .await
                }
                Some(h) => {
                    app.send(Method::PUT, "/api/v1/cpo/settlement", Some(&h), Some(&body))
                        .await
                }
            }
        }
    };

    // Without proof nothing is taken: an address that is no CPO, a signer with another key,
    // and CPO B pointing at A's signer (which serves A only).
    let stranger = PrivateKeySigner::random().address();
    let wrong_key = spawn_signer(&app, &["NL*EXA"], address, PrivateKeySigner::random()).await;
    for (who, body, why) in [
        (
            None,
            json!({"cpo_address": stranger.to_string(), "meter_signer_url": signer_url}),
            "no CPO",
        ),
        (
            None,
            json!({"cpo_address": address.to_string(), "meter_signer_url": wrong_key}),
            "not from",
        ),
        (
            Some(b.as_str()),
            json!({"cpo_address": address.to_string(), "meter_signer_url": signer_url}),
            "DE*BBB",
        ),
    ] {
        let (status, resp) = put(who, body.clone()).await;
        assert_eq!(status, 400, "{body}: {resp}");
        assert!(
            resp["message"].as_str().unwrap().contains(why),
            "{why}: {resp}"
        );
    }
    assert_eq!(app.count("party_settlement").await, 0);

    let ok = json!({"cpo_address": address.to_string(), "meter_signer_url": signer_url});
    let (status, resp) = put(None, ok.clone()).await;
    assert_eq!(status, 200, "{resp}");
    assert_eq!(
        resp["meter_signer"],
        meter_key.address().to_string().to_lowercase()
    );
    // B, even with a signer of its own for that address, cannot take A's address.
    let b_signer = spawn_signer(&app, &["DE*BBB"], address, meter_key.clone()).await;
    let (status, resp) = put(
        Some(b.as_str()),
        json!({"cpo_address": address.to_string(), "meter_signer_url": b_signer}),
    )
    .await;
    assert_eq!(status, 409, "{resp}");

    // A's session is billed to A's own address, signed by A's signer, and settled there.
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    let (status, body) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&cdr("C1", "S1", "E1", &alice_uid, 8.0)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    writer(&app).run_until_idle(10).await.unwrap();
    let (_, bills) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(bills[0]["status"], "settled", "{bills}");
    let (cpo_address, signature): (String, Option<String>) =
        sqlx::query_as("SELECT cpo_address, meter_signature FROM bills")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(cpo_address, address.to_string());
    assert!(
        signature.is_some_and(|s| s.len() == 132),
        "the signer's signature is kept"
    );
    let paid = ctx.operator.cpo_balance(address).await.unwrap();
    assert_eq!(
        paid,
        U256::from(2_400_000u64),
        "8 kWh at 0.30 €/kWh, to A's own address"
    );

    // A sees its bill with its session; B sees none of it; the public list names no session,
    // CDR or user.
    let (_, mine) = app
        .cpo(Method::GET, "/api/v1/cockpit/settlements", None)
        .await;
    assert_eq!(
        (mine.as_array().unwrap().len(), &mine[0]["session_id"]),
        (1, &json!("S1"))
    );
    let (_, theirs) = app
        .send(
            Method::GET,
            "/api/v1/cockpit/settlements",
            Some(b.as_str()),
            None,
        )
        .await;
    assert_eq!(theirs, json!([]));
    let (_, public) = app
        .send(Method::GET, "/api/v1/audit/settlements", None, None)
        .await;
    assert_eq!(public.as_array().unwrap().len(), 1, "{public}");
    for private in ["session_id", "cdr", "user_address"] {
        assert!(public[0].get(private).is_none(), "{private} in {public}");
    }
    let (status, _) = app
        .send(
            Method::GET,
            "/api/v1/cpo/settlement",
            Some(b.as_str()),
            None,
        )
        .await;
    assert_eq!(status, 404, "B set none, and does not see A's");
}
