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

const OPERATOR_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
const METER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";

async fn chain_app(chain: &LocalChain) -> TestApp {
    let endpoint = chain.endpoint();
    spawn_app_with(Backend::Postgres, move |c| {
        c.chain = ChainConfig::for_tests(&endpoint, OPERATOR_KEY, METER_KEY);
    })
    .await
}

fn writer(app: &TestApp) -> Writer {
    Writer::new(
        app.state.chain.clone().expect("chain"),
        app.state.db.clone(),
        Arc::new(app.clock.clone()),
    )
}

fn cdr(id: &str, session: &str, evse: &str, token: &str, kwh: f64) -> Value {
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
        "total_cost": {"excl_vat": 3.0, "incl_vat": 3.6},
        "total_energy": kwh, "total_time": 2.0,
        "last_updated": "2024-05-01T11:31:00Z"
    })
}

async fn set_flex(app: &TestApp, session: &str, wh: i64) {
    sqlx::query("UPDATE sessions SET flex_shifted_wh = $1 WHERE session_id = $2")
        .bind(wh)
        .bind(session)
        .execute(app.state.db.pool())
        .await
        .unwrap();
}

async fn wallet_address(app: &TestApp, token: &str) -> Address {
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
    let ctx = app.state.chain.clone().unwrap();
    let op = ctx.operator.clone();
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;

    // Site over OCPI + group → assets on chain.
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_080, &["E1", "E2"]).await;
    let (_, alice) = app.new_user("alice", Some("ALICE"), true).await;
    let (_, bob) = app.new_user("bob", Some("BOB"), false).await;
    app.put_session("S1", "E1", "ALICE", 0.0).await;
    app.put_session("S2", "E2", "BOB", 0.0).await;
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
    assert_eq!(mine[0]["status"], "awaiting funds", "{mine}");
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
    let op = app.state.chain.clone().unwrap().operator.clone();
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
