//! OCPI Tariffs (evflex as the eMSP's receiver) and billing's three price sources: a CDR's
//! `total_cost`, the tariff the CDR or its session names, the flat tariff; a currency other than
//! the payment token's is refused with its reason and never settled.

use crate::chain::{cdr, chain_app, writer};
use crate::helpers::{Backend, TestApp, spawn_app_on, spawn_cpo};
use evflex_chain::LocalChain;
use reqwest::Method;
use serde_json::{Value, json};

const PATH: &str = "/ocpi/2.2.1/tariffs/NL/EXA/T-035";

/// 0.28 €/kWh excl. 25 % VAT (0.35 incl.), billed per Wh.
fn tariff(id: &str, currency: &str) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id, "currency": currency,
        "tariff_alt_text": [{"language": "en", "text": "0.35 EUR per kWh"}],
        "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.28, "vat": 25.0, "step_size": 1}]}],
        "last_updated": "2024-05-01T08:00:00Z"
    })
}

async fn app_with_cpo(backend: Backend) -> TestApp {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app
}

async fn put_get_delete(backend: Backend) {
    let app = app_with_cpo(backend).await;
    let t = tariff("T-035", "EUR");
    let (status, body) = app.cpo(Method::PUT, PATH, Some(&t)).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    let (status, body) = app.cpo(Method::PUT, PATH, Some(&t)).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(1000)),
        "{body}"
    );
    assert_eq!(app.count("tariffs").await, 1);
    // GET: the tariff as received, fields evflex does not price with included.
    let (status, body) = app.cpo(Method::GET, PATH, None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], t);

    // Invalid values: HTTP 200, OCPI 2001, the field named; nothing stored.
    let mut huge = tariff("T-035", "EUR");
    huge["elements"][0]["price_components"][0]["price"] = json!(1e12);
    let cases = [
        (huge, "elements[0].price_components[0].price"),
        (tariff("T-999", "EUR"), "id:"),
        (
            {
                let mut t = tariff("T-035", "EUR");
                t["elements"][0]["restrictions"] = json!({"start_time": "7:00"});
                t
            },
            "elements[0].restrictions.start_time",
        ),
        (
            {
                let mut t = tariff("T-035", "EUR");
                t["elements"][0]["price_components"][0]["type"] = json!("KWH");
                t
            },
            "elements[0].price_components[0].type",
        ),
        (
            {
                let mut t = tariff("T-035", "EUR");
                t.as_object_mut().unwrap().remove("currency");
                t
            },
            "currency",
        ),
    ];
    for (body, field) in cases {
        let (status, resp) = app.cpo(Method::PUT, PATH, Some(&body)).await;
        assert_eq!(
            (status, resp["status_code"].as_i64()),
            (200, Some(2001)),
            "{resp}"
        );
        let message = resp["status_message"].as_str().unwrap_or_default();
        assert!(message.contains(field), "{field}: {message}");
    }
    let (_, body) = app.cpo(Method::GET, PATH, None).await;
    assert_eq!(body["data"], t, "unchanged by the refused PUTs");

    // DELETE: gone, and a second DELETE or a GET is 404.
    let (status, body) = app.cpo(Method::DELETE, PATH, None).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(1000)),
        "{body}"
    );
    assert_eq!(app.count("tariffs").await, 0);
    for method in [Method::GET, Method::DELETE] {
        let (status, _) = app.cpo(method, PATH, None).await;
        assert_eq!(status, 404);
    }
}

#[tokio::test]
async fn tariffs_put_get_delete_on_postgres() {
    put_get_delete(Backend::Postgres).await;
}

#[tokio::test]
async fn tariffs_put_get_delete_on_sqlite() {
    put_get_delete(Backend::Sqlite).await;
}

#[tokio::test]
async fn tariffs_receiver_is_advertised() {
    let app = app_with_cpo(Backend::Postgres).await;
    let (status, body) = app.cpo(Method::GET, "/ocpi/2.2.1", None).await;
    assert_eq!(status, 200, "{body}");
    let endpoints = body["data"]["endpoints"].as_array().unwrap();
    assert!(
        endpoints.iter().any(|e| e["identifier"] == "tariffs"
            && e["role"] == "RECEIVER"
            && e["url"]
                .as_str()
                .is_some_and(|u| u.ends_with("/ocpi/2.2.1/tariffs"))),
        "{body}"
    );
}

#[tokio::test]
async fn tariffs_of_another_party_are_404_and_unchanged() {
    let app = app_with_cpo(Backend::Postgres).await;
    let t = tariff("T-035", "EUR");
    let (status, _) = app.cpo(Method::PUT, PATH, Some(&t)).await;
    assert_eq!(status, 201);
    let (_cpo_b, b) = app.second_cpo().await;
    let mut theirs = tariff("T-035", "EUR");
    theirs["elements"][0]["price_components"][0]["price"] = json!(9.99);
    for (method, body) in [
        (Method::GET, None),
        (Method::PUT, Some(&theirs)),
        (Method::DELETE, None),
    ] {
        let (status, resp) = app.send(method.clone(), PATH, Some(&b), body).await;
        assert_eq!(status, 404, "{method}: {resp}");
        assert!(
            resp["status_code"].as_i64().is_some(),
            "an OCPI envelope: {resp}"
        );
    }
    // B's own codes work for B, and do not touch A's tariff.
    let mut own = tariff("T-035", "EUR");
    own["country_code"] = json!("DE");
    own["party_id"] = json!("BBB");
    let (status, _) = app
        .send(
            Method::PUT,
            "/ocpi/2.2.1/tariffs/DE/BBB/T-035",
            Some(&b),
            Some(&own),
        )
        .await;
    assert_eq!(status, 201);
    let (_, body) = app.cpo(Method::GET, PATH, None).await;
    assert_eq!(body["data"], t);
}

/// A bill row's price source, currency, price, cost, status and reason.
type Bill = (String, String, i64, i64, String, Option<String>);

async fn bill(app: &TestApp, cdr_id: &str) -> Bill {
    sqlx::query_as(
        "SELECT price_source, currency, price_micro_eur_per_kwh, cost_micro_eur, status,
                status_reason
         FROM bills WHERE cdr_key = $1",
    )
    .bind(format!("NL*EXA*{cdr_id}"))
    .fetch_one(app.state.db.pool())
    .await
    .unwrap()
}

async fn post_cdr(app: &TestApp, body: &Value) {
    let (status, resp) = app.cpo(Method::POST, "/ocpi/2.2.1/cdrs", Some(body)).await;
    assert_eq!(status, 201, "{resp}");
}

#[tokio::test]
async fn bills_use_the_cdr_total_then_the_named_tariff_then_the_flat_price() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let flat = app
        .state
        .engine
        .chain
        .as_ref()
        .unwrap()
        .config
        .tariff_micro_eur_per_kwh;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2", "E3", "E4", "E5", "E6"])
        .await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (status, _) = app
        .cpo(Method::PUT, PATH, Some(&tariff("T-035", "EUR")))
        .await;
    assert_eq!(status, 201);

    // (a) The CDR's total: incl. VAT is what the driver pays (10 kWh, 3.00 incl. → 0.30/kWh).
    post_cdr(&app, &cdr("C1", "S1", "E1", &alice_uid, 10.0)).await;
    // (b) No total; its charging period names the pushed tariff: 10 kWh × 0.35 = 3.50.
    let mut named = cdr("C2", "S2", "E2", &alice_uid, 10.0);
    named.as_object_mut().unwrap().remove("total_cost");
    named["charging_periods"][0]["tariff_id"] = json!("T-035");
    post_cdr(&app, &named).await;
    // (b) No total; a tariff embedded in the CDR (0.40 incl. VAT, no VAT given): 4.00.
    let mut embedded = cdr("C3", "S3", "E3", &alice_uid, 10.0);
    embedded.as_object_mut().unwrap().remove("total_cost");
    let mut own = tariff("T-040", "EUR");
    own["elements"] = json!([{"price_components": [
        {"type": "FLAT", "price": 1.00, "step_size": 1},
        {"type": "ENERGY", "price": 0.30, "step_size": 1}]}]);
    embedded["tariffs"] = json!([own]);
    post_cdr(&app, &embedded).await;
    // (b) No total and the CDR names nothing, but its session's charging period does.
    let session = json!({
        "country_code": "NL", "party_id": "EXA", "id": "S4",
        "start_date_time": "2024-05-01T09:30:00Z", "kwh": 10.0,
        "cdr_token": {"uid": alice_uid, "type": "RFID", "contract_id": "NL-EXA-A"},
        "auth_method": "WHITELIST", "location_id": "LOC-A", "evse_uid": "E4",
        "connector_id": "1", "currency": "EUR", "status": "COMPLETED",
        "charging_periods": [{"start_date_time": "2024-05-01T09:30:00Z", "tariff_id": "T-035",
            "dimensions": [{"type": "ENERGY", "volume": 10.0}]}],
        "last_updated": "2024-05-01T11:30:00Z"
    });
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/sessions/NL/EXA/S4",
            Some(&session),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mut via_session = cdr("C4", "S4", "E4", &alice_uid, 10.0);
    via_session.as_object_mut().unwrap().remove("total_cost");
    post_cdr(&app, &via_session).await;
    // (c) No total, no tariff named anywhere (or one evflex does not hold): the flat price.
    let mut nothing = cdr("C5", "S5", "E5", &alice_uid, 10.0);
    nothing.as_object_mut().unwrap().remove("total_cost");
    nothing["charging_periods"][0]["tariff_id"] = json!("NO-SUCH-TARIFF");
    post_cdr(&app, &nothing).await;

    let pending = |source: &str, price: i64| {
        (
            source.to_owned(),
            "EUR".to_owned(),
            price,
            price * 10,
            "pending".to_owned(),
            None,
        )
    };
    assert_eq!(bill(&app, "C1").await, pending("cdr_total_cost", 300_000));
    assert_eq!(bill(&app, "C2").await, pending("tariff", 350_000));
    assert_eq!(bill(&app, "C3").await, pending("tariff", 400_000));
    assert_eq!(bill(&app, "C4").await, pending("tariff", 350_000));
    assert_eq!(bill(&app, "C5").await, pending("flat", flat));

    // The settlement lists show the source; the signed bill carries the same price.
    let (status, list) = app
        .cpo(Method::GET, "/api/v1/cockpit/settlements", None)
        .await;
    assert_eq!(status, 200, "{list}");
    let sources: Vec<&str> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["price_source"].as_str().unwrap())
        .collect();
    assert_eq!(
        sources,
        ["flat", "tariff", "tariff", "tariff", "cdr_total_cost"],
        "newest first: {list}"
    );
    let (_, mine) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    assert_eq!(mine[3]["price_source"], "tariff", "{mine}");
    assert_eq!(mine[3]["price_micro_eur_per_kwh"], 350_000, "{mine}");
    let signed = app
        .outbox("settlement")
        .await
        .into_iter()
        .find(|r| r.dedupe_key == "settlement:NL*EXA*C2")
        .expect("C2's settlement");
    let payload: Value = serde_json::from_str(&signed.payload).unwrap();
    assert_eq!(
        payload["bill"]["price_micro_eur_per_kwh"], 350_000,
        "{payload}"
    );
}

#[tokio::test]
async fn bills_in_another_currency_are_unbillable_and_never_settled() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let mut app = chain_app(&chain).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (status, body) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/users/me/wallet/top-up",
            Some(&json!({"amount_eur": 50.0})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    let mut usd = cdr("C1", "S1", "E1", &alice_uid, 10.0);
    usd["currency"] = json!("USD");
    post_cdr(&app, &usd).await;
    // A EUR CDR without a total whose tariff is in CHF: refused as well.
    let path = "/ocpi/2.2.1/tariffs/NL/EXA/T-CHF";
    let (status, _) = app
        .cpo(Method::PUT, path, Some(&tariff("T-CHF", "CHF")))
        .await;
    assert_eq!(status, 201);
    let mut chf = cdr("C2", "S2", "E2", &alice_uid, 10.0);
    chf.as_object_mut().unwrap().remove("total_cost");
    chf["charging_periods"][0]["tariff_id"] = json!("T-CHF");
    post_cdr(&app, &chf).await;

    let w = writer(&app);
    w.run_until_idle(10).await.unwrap();
    let (source, currency, _, _, status, reason) = bill(&app, "C1").await;
    assert_eq!(
        (
            source.as_str(),
            currency.as_str(),
            status.as_str(),
            reason.as_deref()
        ),
        (
            "cdr_total_cost",
            "USD",
            "unbillable",
            Some("CDR currency USD does not match the payment token (EUR)")
        )
    );
    let (source, currency, _, _, status, reason) = bill(&app, "C2").await;
    assert_eq!(
        (
            source.as_str(),
            currency.as_str(),
            status.as_str(),
            reason.as_deref()
        ),
        (
            "tariff",
            "CHF",
            "unbillable",
            Some("tariff T-CHF currency CHF does not match the payment token (EUR)")
        )
    );
    // Nothing signed, nothing settled: no transaction, no settlement event, balance intact.
    let ctx = app.state.engine.chain.clone().unwrap();
    let op = ctx.operator.clone();
    let events = op
        .settlement_events(0, op.block_number().await.unwrap())
        .await
        .unwrap();
    assert!(events.settled.is_empty(), "{:?}", events.settled);
    let (_, mine) = app
        .user(&alice, Method::GET, "/api/v1/users/me/settlements", None)
        .await;
    for b in mine.as_array().unwrap() {
        assert_eq!(b["status"], "unbillable", "{mine}");
        assert!(b["tx_hash"].is_null(), "{mine}");
        assert!(
            b["status_reason"]
                .as_str()
                .unwrap()
                .contains("payment token (EUR)")
        );
    }
    let (_, wallet) = app
        .user(&alice, Method::GET, "/api/v1/users/me/wallet", None)
        .await;
    assert_eq!(
        wallet["balances"]["payment_token_micro"], 50_000_000,
        "{wallet}"
    );
}
