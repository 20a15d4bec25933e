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
