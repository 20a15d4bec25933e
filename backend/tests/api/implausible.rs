//! Values no meter, charger or tariff can produce (issue 13, findings 9 and 13): each gets a
//! refusal that names the field (OCPI 2001, or a 400 from the JSON API), and nothing is stored.

use crate::helpers::{Backend, T0, TestApp, spawn_app_on, spawn_cpo};
use evflex::domain::format_rfc3339;
use reqwest::Method;
use serde_json::{Value, json};

async fn app() -> TestApp {
    let mut app = spawn_app_on(Backend::Sqlite).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app
}

fn session(id: &str) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": id,
        "start_date_time": format_rfc3339(T0), "kwh": 1.0,
        "cdr_token": {"uid": "CARD", "type": "RFID", "contract_id": "NL-EXA-CARD"},
        "auth_method": "WHITELIST", "location_id": "LOC-A", "evse_uid": "E1",
        "connector_id": "1", "currency": "EUR", "status": "ACTIVE",
        "last_updated": format_rfc3339(T0)
    })
}

fn cdr() -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": "CDR-1", "session_id": "S1",
        "start_date_time": format_rfc3339(T0), "end_date_time": format_rfc3339(T0 + 3_600),
        "cdr_token": {"uid": "CARD", "type": "RFID", "contract_id": "NL-EXA-CARD"},
        "auth_method": "WHITELIST",
        "cdr_location": {"id": "LOC-A", "evse_uid": "E1", "evse_id": "NL*EXA*EE1",
                         "connector_id": "1"},
        "currency": "EUR", "charging_periods": [], "total_cost": {"excl_vat": 4.0},
        "total_energy": 10.0, "total_time": 1.0, "last_updated": format_rfc3339(T0 + 3_600)
    })
}

fn location(evses: Value) -> Value {
    json!({
        "country_code": "NL", "party_id": "EXA", "id": "LOC-B", "publish": true,
        "address": "Stationsplein 1", "city": "Utrecht", "country": "NLD",
        "coordinates": {"latitude": "52.089", "longitude": "5.110"},
        "evses": evses, "time_zone": "Europe/Amsterdam", "last_updated": format_rfc3339(T0)
    })
}

fn evse(uid: &str, connectors: Value) -> Value {
    json!({"uid": uid, "status": "AVAILABLE", "connectors": connectors,
           "last_updated": format_rfc3339(T0)})
}

fn connector(id: &str, max_amperage: i64) -> Value {
    json!({"id": id, "standard": "IEC_62196_T2", "format": "SOCKET", "power_type": "AC_3_PHASE",
           "max_voltage": 230, "max_amperage": max_amperage, "last_updated": format_rfc3339(T0)})
}

/// `body` with `field` set to `value`.
fn with(mut body: Value, field: &str, value: Value) -> Value {
    let mut at = &mut body;
    let parts: Vec<&str> = field.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        at = &mut at[*p];
    }
    at[parts[parts.len() - 1]] = value;
    body
}

/// Sends `body`; asserts a refusal (OCPI 2001, or a 400) whose message starts with `field`.
async fn refused(app: &TestApp, method: Method, path: &str, body: &Value, field: &str) {
    let (status, resp) = app.cpo(method, path, Some(body)).await;
    let message = resp["status_message"]
        .as_str()
        .or(resp["message"].as_str())
        .unwrap_or_default();
    // The OCPI layer answers HTTP 200 with status 2001; the JSON API answers 400.
    if path.starts_with("/ocpi/") {
        assert_eq!(
            (status, resp["status_code"].as_i64()),
            (200, Some(2001)),
            "{path} {field}: {resp}"
        );
    } else {
        assert_eq!(status, 400, "{path} {field}: {resp}");
    }
    assert!(
        message.starts_with(field),
        "{path}: {message:?} should name {field}"
    );
}

#[tokio::test]
async fn sessions_and_cdrs_outside_what_a_meter_produces_are_refused_and_not_stored() {
    let app = app().await;
    let put = "/ocpi/2.2.1/sessions/NL/EXA/S1";
    for (field, value) in [
        ("kwh", json!(1e308)),
        ("kwh", json!(-1.0)),
        ("total_cost", json!({"excl_vat": -50.0})),
        ("end_date_time", json!(format_rfc3339(T0 - 60))),
        ("start_date_time", json!("9999-12-31T00:00:00Z")),
        ("connector_id", json!("1\u{0}")),
        ("cdr_token.uid", json!("\u{202e}DRAC")),
        ("location_id", json!("L".repeat(4_000))),
    ] {
        let expect = if field == "total_cost" {
            "total_cost.excl_vat"
        } else {
            field
        };
        refused(
            &app,
            Method::PUT,
            put,
            &with(session("S1"), field, value),
            expect,
        )
        .await;
    }
    assert_eq!(app.count("sessions").await, 0);
    let long = "S".repeat(4_000);
    let path = format!("/ocpi/2.2.1/sessions/NL/EXA/{long}");
    refused(&app, Method::PUT, &path, &session(&long), "id").await;
    assert_eq!(app.count("sessions").await, 0);

    app.put_session("S1", "E1", "CARD", 5.0).await;
    let patch = json!({"kwh": 9.0e12, "last_updated": format_rfc3339(T0 + 60)});
    refused(&app, Method::PATCH, put, &patch, "kwh").await;
    let (_, stored) = app.cpo(Method::GET, put, None).await;
    assert_eq!(stored["data"]["kwh"], 5.0, "the PATCH changed nothing");

    for (field, value) in [
        ("total_energy", json!(8.99e12)),
        ("total_cost", json!({"excl_vat": -50.0})),
        ("end_date_time", json!(format_rfc3339(T0 - 60))),
        ("total_time", json!(1e9)),
    ] {
        let expect = if field == "total_cost" {
            "total_cost.excl_vat"
        } else {
            field
        };
        refused(
            &app,
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            &with(cdr(), field, value),
            expect,
        )
        .await;
    }
    assert_eq!(app.count("cdrs").await, 0);
    assert_eq!(app.count("chain_outbox WHERE kind = 'settlement'").await, 0);
}

#[tokio::test]
async fn chargers_and_readings_outside_what_equipment_has_are_refused_and_not_stored() {
    let app = app().await;
    let evses_before = app.count("evses").await;
    let put = "/ocpi/2.2.1/locations/NL/EXA/LOC-B";
    let cases = [
        (
            json!([evse("B1", json!([connector("1", i64::MAX)]))]),
            "evses[0].connectors[0].max_amperage",
        ),
        (
            json!([evse("B1", json!([connector("1", 16), connector("1", 32)]))]),
            "evses[0].connectors[1].id",
        ),
        (
            json!([
                evse("B1", json!([connector("1", 16)])),
                evse("B1", json!([connector("1", 16)]))
            ]),
            "evses[1].uid",
        ),
    ];
    for (evses, field) in cases {
        refused(&app, Method::PUT, put, &location(evses), field).await;
    }
    assert_eq!(app.count("evses").await, evses_before);
    assert_eq!(app.count("locations WHERE location_id = 'LOC-B'").await, 0);

    for (value, unit, measurand) in [
        ("1e308", "Wh", "Energy.Active.Import.Register"),
        ("-1e308", "Wh", "Energy.Active.Import.Register"),
        ("350000", "kW", "Power.Active.Import"),
        ("-7", "kW", "Power.Active.Import"),
    ] {
        let batch = json!({"meter_values": [{"evse_uid": "E1", "meterValue": [{
            "timestamp": format_rfc3339(T0),
            "sampledValue": [{"measurand": measurand, "value": value, "unit": unit}]}]}]});
        refused(
            &app,
            Method::POST,
            "/api/v1/meter-values",
            &batch,
            "meter_values[0].meterValue[0].sampledValue[0].value",
        )
        .await;
    }
    assert_eq!(app.count("meter_values").await, 0);

    app.put_group(1, 22_000, &["E1"]).await;
    let forecast = json!({"kind": "pv", "start": format_rfc3339(T0), "step_s": i64::MAX,
                          "values_w": [1_000]});
    refused(
        &app,
        Method::PUT,
        "/api/v1/groups/1/forecast",
        &forecast,
        "step_s",
    )
    .await;
    let capacity = json!({"capacity_w": i64::MAX});
    refused(
        &app,
        Method::PUT,
        "/api/v1/groups/1/capacity",
        &capacity,
        "capacity_w",
    )
    .await;
    let (_, group) = app.cpo(Method::GET, "/api/v1/groups/1", None).await;
    assert_eq!(group["capacity_w"], 22_000);
}

#[tokio::test]
async fn a_stale_patch_does_not_overwrite_newer_data() {
    let app = app().await;
    app.put_session("S1", "E1", "CARD", 5.0).await; // last_updated 2024-05-01T09:30:00Z
    let put = "/ocpi/2.2.1/sessions/NL/EXA/S1";
    let stale = json!({"kwh": 0.5, "last_updated": "2024-05-01T09:00:00Z"});
    refused(&app, Method::PATCH, put, &stale, "last_updated").await;
    let (_, stored) = app.cpo(Method::GET, put, None).await;
    assert_eq!(stored["data"]["kwh"], 5.0);
    // The same second is not stale (a retried PATCH), a later one applies.
    let newer = json!({"kwh": 6.0, "last_updated": "2024-05-01T09:30:00Z"});
    assert_eq!(app.cpo(Method::PATCH, put, Some(&newer)).await.0, 200);
    let (_, stored) = app.cpo(Method::GET, put, None).await;
    assert_eq!(stored["data"]["kwh"], 6.0);
}

#[tokio::test]
async fn an_evse_has_one_open_session_at_a_time() {
    let app = app().await;
    app.put_session("S1", "E1", "CARD", 1.0).await;
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/sessions/NL/EXA/S2",
            Some(&session("S2")),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(2001)),
        "{body}"
    );
    let message = body["status_message"].as_str().unwrap();
    assert!(
        message.contains("already has the open session S1"),
        "{message}"
    );
    assert_eq!(app.count("sessions").await, 1);
    // Once S1 is completed, the next car's session is taken.
    let done = json!({"status": "COMPLETED", "end_date_time": format_rfc3339(T0 + 60),
                      "last_updated": format_rfc3339(T0 + 60)});
    let (status, _) = app
        .cpo(Method::PATCH, "/ocpi/2.2.1/sessions/NL/EXA/S1", Some(&done))
        .await;
    assert_eq!(status, 200);
    let (status, body) = app
        .cpo(
            Method::PUT,
            "/ocpi/2.2.1/sessions/NL/EXA/S2",
            Some(&session("S2")),
        )
        .await;
    assert_eq!(status, 201, "a new session: {body}");
}
