use crate::helpers::{T0, spawn_app, spawn_cpo};
use evflex::domain::format_rfc3339;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn admission_accepts_rejects_with_the_maximum_and_the_offer_can_be_taken() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1", "E9"]).await;
    app.put_group(1, 4_000, &["E1"]).await;
    let (_, alice) = app.new_user("alice", Some("ALICE"), false).await;
    app.put_session("S1", "E1", "ALICE", 0.0).await;
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

    // 30 kWh cannot be guaranteed: at most 16 kWh (4 kW × 4 h).
    let big = json!({"evse_uid": "E1", "energy_kwh": 30.0, "departure": departure});
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
    app.put_session("S9", "E9", "ALICE", 0.0).await;
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
    let (_, alice) = app.new_user("alice", Some("ALICE"), true).await;
    app.put_session("S1", "E1", "ALICE", 0.0).await;
    app.put_session("S9", "E9", "ALICE", 0.0).await;
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
