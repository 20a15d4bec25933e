//! OCPI 2.2.1 and 2.3.0 side by side: both are listed and served, the handshake picks the
//! highest version both sides speak, evflex names URLs in the party's version, and a 2.3.0
//! CPO's sessions and CDRs (with 2.3.0 `Price`s: `before_taxes` and `taxes`) are accepted and
//! billed from what they say.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

async fn party_version(app: &TestApp) -> Option<String> {
    let mut conn = app.state.db.conn().await.unwrap();
    evflex::store::parties::list_registered(&mut conn)
        .await
        .unwrap()[0]
        .version
        .clone()
}

#[tokio::test]
async fn both_versions_are_listed_and_served_with_their_own_endpoints() {
    let app = spawn_app().await;
    app.add_registration_token("token-a").await;
    let a = token_header("token-a");
    let (status, body) = app
        .send(Method::GET, "/ocpi/versions", Some(&a), None)
        .await;
    assert_eq!(status, 200, "{body}");
    let listed: Vec<(&str, &str)> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| (v["version"].as_str().unwrap(), v["url"].as_str().unwrap()))
        .collect();
    let base = &app.address;
    assert_eq!(
        listed,
        [
            ("2.3.0", format!("{base}/ocpi/2.3.0").as_str()),
            ("2.2.1", format!("{base}/ocpi/2.2.1").as_str())
        ]
    );
    for version in ["2.2.1", "2.3.0"] {
        let (status, body) = app
            .send(Method::GET, &format!("/ocpi/{version}"), Some(&a), None)
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["version"], version);
        for e in body["data"]["endpoints"].as_array().unwrap() {
            let url = e["url"].as_str().unwrap();
            assert!(
                url.starts_with(&format!("{base}/ocpi/{version}/")),
                "{version}: {url}"
            );
        }
    }
}

#[tokio::test]
async fn the_handshake_picks_the_highest_version_both_sides_speak() {
    for (offered, chosen) in [
        (&["2.2.1"][..], "2.2.1"),
        (&["2.1.1", "2.2.1", "2.3.0"][..], "2.3.0"),
        (&["2.3.0"][..], "2.3.0"),
    ] {
        let mut app = spawn_app().await;
        let cpo = spawn_cpo_offering(offered).await;
        app.register_cpo(&cpo).await;
        assert_eq!(
            party_version(&app).await.as_deref(),
            Some(chosen),
            "{offered:?}"
        );
    }
}

/// A 2.3.0 session with its `total_cost` in 2.3.0's shape.
fn session_230(id: &str, evse: &str, token_uid: &str) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id,
        "start_date_time": "2024-05-01T09:30:00Z", "kwh": 4.0,
        "cdr_token": {"country_code": "NL", "party_id": "EXA", "uid": token_uid,
                      "type": "APP_USER", "contract_id": format!("NL-EXA-{token_uid}")},
        "auth_method": "WHITELIST", "location_id": "LOC-A", "evse_uid": evse,
        "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
        "total_cost": {"before_taxes": 1.2, "taxes": [{"name": "VAT", "amount": 0.25}]},
        "last_updated": "2024-05-01T09:45:00Z"
    })
}

#[tokio::test]
async fn a_2_3_0_cpos_sessions_and_cdrs_are_taken_and_profiles_name_2_3_0_urls() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo_offering(&["2.3.0"]).await;
    let token = app.register_cpo(&cpo).await;
    let t = token_header(&token);
    let (_, _, token_uid) = app.new_user("ada", true).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.put_group(1, 5_000, &["E1"]).await;

    let (status, body) = app
        .send(
            Method::PUT,
            "/ocpi/2.3.0/sessions/NL/EXA/S1",
            Some(&t),
            Some(&session_230("S1", "E1", &token_uid)),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    {
        let mut conn = app.state.db.conn().await.unwrap();
        let s = evflex::store::sessions::get(&mut conn, "NL", "EXA", "S1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(s.record.energy_wh, 4_000);
        assert_eq!(
            s.record.total_cost,
            Some(json!({"excl_vat": 1.2, "incl_vat": 1.45}))
        );
    }
    // A 2.3.0 price that is not a price is refused, naming the field.
    let mut bad = session_230("S2", "E1", &token_uid);
    bad["total_cost"] = json!({"before_taxes": "a lot"});
    let (status, body) = app
        .send(
            Method::PUT,
            "/ocpi/2.3.0/sessions/NL/EXA/S2",
            Some(&t),
            Some(&bad),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(2001)),
        "{body}"
    );
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .contains("total_cost"),
        "{body}"
    );

    // The set-point evflex sends names its response_url in the party's version.
    app.tick().await;
    let profiles = cpo.log.lock().unwrap().profiles.clone();
    let (_, profile) = profiles
        .iter()
        .find(|(s, _)| s == "S1")
        .expect("a profile for S1");
    assert!(
        profile["response_url"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{}/ocpi/2.3.0/chargingprofiles/", app.address)),
        "{profile}"
    );

    // A 2.3.0 CDR: its total cost is before_taxes plus the taxes.
    let mut cdr = crate::chain::cdr("CDR-1", "S1", "E1", &token_uid, 4.0);
    cdr["total_cost"] = json!({"before_taxes": 1.2, "taxes": [{"name": "VAT", "amount": 0.25}]});
    cdr["total_energy_cost"] = json!({"before_taxes": 1.2, "taxes": []});
    let (status, body) = app
        .send(Method::POST, "/ocpi/2.3.0/cdrs", Some(&t), Some(&cdr))
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    let (incl,): (Option<i64>,) =
        sqlx::query_as("SELECT total_cost_incl_vat_micro_eur FROM cdrs WHERE cdr_id = 'CDR-1'")
            .fetch_one(app.state.db.pool())
            .await
            .unwrap();
    assert_eq!(incl, Some(1_450_000));
}

/// A 2.3.0 Tariff whose prices include tax (`tax_included: "YES"`) and whose `max_price` is a
/// `PriceLimit`: accepted, and kept in the internal form (prices excl. VAT), so billing adds
/// the VAT once.
#[tokio::test]
async fn a_2_3_0_tariff_with_tax_included_prices_is_taken_excluding_vat() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo_offering(&["2.3.0"]).await;
    let token = app.register_cpo(&cpo).await;
    let t = token_header(&token);
    let tariff = json!({
        "country_code": "NL", "party_id": "EXA", "id": "T-230", "currency": "EUR",
        "tax_included": "YES",
        "max_price": {"before_taxes": 40.0, "after_taxes": 50.0},
        "elements": [{"price_components": [
            {"type": "ENERGY", "price": 0.35, "vat": 25.0, "step_size": 1}]}],
        "last_updated": "2024-05-01T08:00:00Z"
    });
    let path = "/ocpi/2.3.0/tariffs/NL/EXA/T-230";
    let (status, body) = app.send(Method::PUT, path, Some(&t), Some(&tariff)).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    let (status, body) = app.send(Method::GET, path, Some(&t), None).await;
    assert_eq!(status, 200, "{body}");
    let stored = &body["data"];
    assert_eq!(
        stored["elements"][0]["price_components"][0]["price"],
        json!(0.28),
        "{stored}"
    );
    assert_eq!(
        stored["max_price"],
        json!({"excl_vat": 40.0, "incl_vat": 50.0})
    );
}
