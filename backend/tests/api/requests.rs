use crate::helpers::{T0, spawn_app, spawn_cpo};
use evflex::domain::format_rfc3339;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn admission_accepts_rejects_with_the_maximum_and_the_offer_can_be_taken() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E9"]).await;
    app.put_group(1, 4_000, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", false).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    let departure = format_rfc3339(T0 + 4 * 3_600);

    // Not opted in: the session charges uncontrolled; no request.
    let req = json!({"session_id": "S1", "energy_kwh": 10.0, "departure": departure});
    let (status, _) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(status, 409);
    let (status, body) = app
        .user(
            &alice,
            Method::PUT,
            "/api/v1/users/me/smart-charging",
            Some(&json!({"opted_in": true})),
        )
        .await;
    assert_eq!((status, body["opted_in"].as_bool()), (200, Some(true)));

    // 10 kWh in 4 h at 4 kW: accepted.
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["decision"], "accepted");
    assert_eq!(body["group_id"], 1);

    // 30 kWh cannot be guaranteed: at most 16 kWh (4 kW × 4 h). No session id: the request is
    // for the caller's only open session.
    let big = json!({"energy_kwh": 30.0, "departure": departure});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&big))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["decision"], "rejected");
    let max = body["max_guaranteed_kwh"].as_f64().unwrap();
    assert!((15.9..=16.0).contains(&max), "{body}");
    let id = body["request_id"].as_i64().unwrap();

    // The user takes the offer.
    let (status, body) = app
        .user(
            &alice,
            Method::POST,
            &format!("/api/v1/requests/{id}/accept-offer"),
            None,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["decision"], "accepted");
    assert_eq!(body["energy_kwh"].as_f64().unwrap(), max);
    let (status, body) = app
        .user(&alice, Method::GET, &format!("/api/v1/requests/{id}"), None)
        .await;
    assert_eq!((status, body["decision"].as_str()), (200, Some("rejected")));

    // Target SoC with battery size, outside any group (only the EVSE's power limits it).
    app.put_session("S9", "E9", &alice_uid, 0.0).await;
    let soc = json!({"session_id": "S9", "target_soc_percent": 80.0, "battery_capacity_kwh": 60.0,
                     "current_soc_percent": 30.0, "departure": departure});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&soc))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["decision"], "accepted");
    assert_eq!(body["energy_kwh"], 30.0);

    // Malformed requests.
    for (bad, field) in [
        (json!({"session_id": "S1", "energy_kwh": 10.0}), "departure"),
        (
            json!({"session_id": "S1", "energy_kwh": -1.0, "departure": departure}),
            "energy_kwh",
        ),
        (
            json!({"session_id": "S1", "energy_kwh": 1.0, "departure": "2020-01-01T00:00:00Z"}),
            "departure",
        ),
        (
            json!({"session_id": "S1", "target_soc_percent": 80.0, "departure": departure}),
            "battery_capacity_kwh",
        ),
    ] {
        let (status, body) = app
            .user(&alice, Method::POST, "/api/v1/requests", Some(&bad))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["message"].as_str().unwrap().contains(field),
            "{field}: {body}"
        );
    }
    let (status, _) = app
        .user("wrong", Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(status, 401);

    // Live status: energy, planned profile after a tick.
    app.tick().await;
    let (status, body) = app
        .user(&alice, Method::GET, "/api/v1/users/me/status", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let s1 = body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == "S1")
        .unwrap();
    assert_eq!(s1["energy_added_kwh"], 0.0);
    assert!(
        !s1["planned_profile"].as_array().unwrap().is_empty(),
        "{s1}"
    );
    let expected = s1["expected_energy_kwh"].as_f64().unwrap();
    assert!(
        (max - 0.01..=max + 0.01).contains(&expected),
        "{expected} vs {max}"
    );
}

#[tokio::test]
async fn a_vehicle_below_the_charge_point_rating_is_planned_at_its_own_power() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    // 11 kW charge points (3 × 16 A × 230 V): E1 in a roomy group, E9 outside every group.
    app.put_site("LOC-A", &["E1", "E9"]).await;
    app.put_group(1, 50_000, &["E1"]).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S9", "E9", &alice_uid, 0.0).await;
    let departure = format_rfc3339(T0 + 4 * 3_600);

    for session in ["S1", "S9"] {
        // A 6 kW car can take at most 6 kW × 4 h = 24 kWh, not the charge point's 44 kWh.
        let slow = json!({"session_id": session, "energy_kwh": 30.0, "departure": departure,
                          "vehicle_max_power_kw": 6.0});
        let (status, body) = app
            .user(&alice, Method::POST, "/api/v1/requests", Some(&slow))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["decision"], "rejected", "{session}: {body}");
        let max = body["max_guaranteed_kwh"].as_f64().unwrap();
        assert!((23.9..=24.0).contains(&max), "{session}: {body}");

        // Without the vehicle's power the charge point's rating is assumed: accepted.
        let rated = json!({"session_id": session, "energy_kwh": 30.0, "departure": departure});
        let (status, body) = app
            .user(&alice, Method::POST, "/api/v1/requests", Some(&rated))
            .await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["decision"], "accepted", "{session}: {body}");
    }

    // An accepted request with the vehicle's power is planned at no more than that power.
    let ok = json!({"session_id": "S1", "energy_kwh": 20.0, "departure": departure,
                    "vehicle_max_power_kw": 6.0});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&ok))
        .await;
    assert_eq!(
        (status, body["decision"].as_str()),
        (201, Some("accepted")),
        "{body}"
    );
    app.tick().await;
    let (status, body) = app
        .user(&alice, Method::GET, "/api/v1/users/me/status", None)
        .await;
    assert_eq!(status, 200, "{body}");
    let s1 = body
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["session_id"] == "S1")
        .unwrap();
    let profile = s1["planned_profile"].as_array().unwrap();
    assert!(!profile.is_empty(), "{s1}");
    assert!(
        profile
            .iter()
            .all(|p| p["power_w"].as_i64().unwrap() <= 6_000),
        "{s1}"
    );

    // The vehicle's power must be positive and at most 1000 kW.
    for bad in [0.0, -3.0, 1_000.5] {
        let req = json!({"session_id": "S1", "energy_kwh": 5.0, "departure": departure,
                         "vehicle_max_power_kw": bad});
        let (status, body) = app
            .user(&alice, Method::POST, "/api/v1/requests", Some(&req))
            .await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("vehicle_max_power_kw"),
            "{body}"
        );
    }
}

/// Waits (up to 5 s) until the mock CPO has received `n` token pushes; returns them.
async fn tokens_received(cpo: &crate::helpers::MockCpo, n: usize) -> Vec<(String, String, Value)> {
    for _ in 0..100 {
        let got = cpo.log.lock().unwrap().tokens.clone();
        if got.len() >= n {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    cpo.log.lock().unwrap().tokens.clone()
}

#[tokio::test]
async fn a_session_is_a_users_only_through_the_token_evflex_issued_and_pushed() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E2", "E3"]).await;
    app.put_group(1, 22_000, &["E1", "E2", "E3"]).await;
    let departure = format_rfc3339(T0 + 4 * 3_600);

    // The sign-up body cannot name a token uid: evflex issues it.
    let (status, body) = app
        .send(
            Method::POST,
            "/api/v1/users",
            None,
            Some(&json!({"name": "eve", "token_uid": "SOMEONE-ELSES-CARD"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("token_uid"),
        "{body}"
    );
    assert_eq!(app.count("users").await, 0, "nothing stored");

    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    let (_, mallory, mallory_uid) = app.new_user("mallory", true).await;
    for uid in [&alice_uid, &mallory_uid] {
        assert!(uid.len() == 16 && uid.starts_with("EVF"), "{uid}");
        assert!(uid[3..].chars().all(|c| c.is_ascii_hexdigit()), "{uid}");
    }
    assert_ne!(alice_uid, mallory_uid);

    // Both tokens reach the CPO's Tokens receiver, issued under evflex's own party codes.
    let pushed = tokens_received(&cpo, 2).await;
    assert_eq!(pushed.len(), 2, "{pushed:?}");
    let (path, query, token) = pushed
        .iter()
        .find(|(p, _, _)| p.ends_with(&alice_uid))
        .expect("alice's token was pushed");
    assert_eq!(path, &format!("NL/EVF/{alice_uid}"));
    assert_eq!(query, "type=APP_USER");
    assert_eq!(
        (
            &token["uid"],
            &token["type"],
            &token["whitelist"],
            &token["valid"]
        ),
        (
            &json!(alice_uid),
            &json!("APP_USER"),
            &json!("ALLOWED"),
            &json!(true)
        ),
        "{token}"
    );
    // Each delivery is recorded once the CPO has answered, so the count may trail the pushes
    // by a moment.
    let mut recorded = 0;
    for _ in 0..100 {
        recorded = app.count("token_deliveries").await;
        if recorded >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(recorded, 2);

    // The CPO starts alice's session with her token, and another with a card evflex never
    // issued.
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    app.put_session("S2", "E2", "SOME-RFID-CARD", 0.0).await;

    // Mallory cannot take either: not by session id, not by EVSE uid, not as "my open session".
    for (body, want) in [
        (
            json!({"session_id": "S1", "energy_kwh": 5.0, "departure": departure}),
            404,
        ),
        (
            json!({"session_id": "S2", "energy_kwh": 5.0, "departure": departure}),
            404,
        ),
        (
            json!({"evse_uid": "E1", "energy_kwh": 5.0, "departure": departure}),
            400,
        ),
        (json!({"energy_kwh": 5.0, "departure": departure}), 404),
    ] {
        let (status, resp) = app
            .user(&mallory, Method::POST, "/api/v1/requests", Some(&body))
            .await;
        assert_eq!(status, want, "{body}: {resp}");
    }
    let (_, status_m) = app
        .user(&mallory, Method::GET, "/api/v1/users/me/status", None)
        .await;
    assert_eq!(status_m, json!([]), "mallory sees no session");
    assert_eq!(app.count("charging_requests").await, 0, "nothing stored");

    // Alice's session is hers: she sees it and her request for it is decided.
    let (_, status_a) = app
        .user(&alice, Method::GET, "/api/v1/users/me/status", None)
        .await;
    assert_eq!(status_a.as_array().unwrap().len(), 1, "{status_a}");
    assert_eq!(status_a[0]["session_id"], "S1");
    assert_eq!(status_a[0]["group_id"], 1);
    let (status, resp) = app
        .user(
            &alice,
            Method::POST,
            "/api/v1/requests",
            Some(&json!({"energy_kwh": 5.0, "departure": departure})),
        )
        .await;
    assert_eq!(
        (status, resp["session_id"].as_str()),
        (201, Some("S1")),
        "{resp}"
    );
    // Her request is hers: to mallory it does not exist, and it stays as it was.
    let id = resp["request_id"].as_i64().unwrap();
    for (method, path) in [
        (Method::GET, format!("/api/v1/requests/{id}")),
        (Method::POST, format!("/api/v1/requests/{id}/accept-offer")),
    ] {
        let (status, body) = app.user(&mallory, method, &path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    let (_, mine) = app
        .user(&alice, Method::GET, &format!("/api/v1/requests/{id}"), None)
        .await;
    assert_eq!(mine["decision"], resp["decision"], "{mine}");
    assert_eq!(app.count("charging_requests").await, 1);

    // The Tokens sender interface lists evflex's tokens, paged.
    let (status, page) = app
        .cpo(Method::GET, "/ocpi/2.2.1/tokens?limit=1", None)
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["data"].as_array().unwrap().len(), 1, "{page}");
    let raw = reqwest::Client::new()
        .get(format!("{}/ocpi/2.2.1/tokens?limit=1", app.address))
        .header(
            "Authorization",
            crate::helpers::token_header(app.cpo_token.as_deref().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(raw.headers()["x-total-count"], "2");
    assert_eq!(raw.headers()["x-limit"], "1");
    let link = raw.headers()["link"].to_str().unwrap().to_owned();
    assert!(
        link.contains("offset=1") && link.ends_with("rel=\"next\""),
        "{link}"
    );
    let (status, _) = app
        .send(Method::GET, "/ocpi/2.2.1/tokens", None, None)
        .await;
    assert_eq!(status, 401, "strangers do not get the list");

    // Real-time authorisation: evflex's token is allowed, any other is unknown (2004).
    let (status, auth) = app
        .cpo(
            Method::POST,
            &format!("/ocpi/2.2.1/tokens/{alice_uid}/authorize"),
            None,
        )
        .await;
    assert_eq!(
        (status, auth["data"]["allowed"].as_str()),
        (200, Some("ALLOWED")),
        "{auth}"
    );
    let (status, auth) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/tokens/SOME-RFID-CARD/authorize",
            None,
        )
        .await;
    assert_eq!(
        (status, auth["status_code"].as_i64()),
        (404, Some(2004)),
        "{auth}"
    );
}
