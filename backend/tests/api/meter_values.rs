use crate::helpers::{spawn_app, spawn_cpo, token_header};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test]
async fn meter_value_batches_update_live_status() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    let batch = json!({"meter_values": [
        {"evse_uid": "E1", "session_id": "S1", "meterValue": [
            {"timestamp": "2024-05-01T09:55:00Z", "sampledValue": [
                {"value": "1000", "unit": "Wh"},
                {"measurand": "Power.Active.Import", "value": "7000", "unit": "W"}]},
            {"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
                {"measurand": "Energy.Active.Import.Register", "value": "1.6", "unit": "kWh"},
                {"measurand": "Power.Active.Import", "value": "7.2", "unit": "kW"},
                {"measurand": "SoC", "value": "41", "unit": "Percent"}]}]},
        {"evse_uid": "E2", "meterValue": [
            {"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
                {"measurand": "Power.Active.Import", "value": "0"}]}]}
    ]});
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(&batch))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["accepted"], 3);
    assert_eq!(app.count("meter_values").await, 3);
    let mut conn = app.state.db.conn().await.unwrap();
    let live = evflex::store::meter::live_of(&mut conn, "NL", "EXA", &["E1".to_owned()])
        .await
        .unwrap();
    assert_eq!(live[0].energy_wh, Some(1_600));
    assert_eq!(live[0].power_w, Some(7_200));
    assert_eq!(live[0].soc_permille, Some(410));

    // A bad value anywhere rejects the whole batch, naming the field.
    let bad = json!({"meter_values": [
        {"evse_uid": "E1", "meterValue": [{"timestamp": "2024-05-01T10:05:00Z", "sampledValue": [
            {"value": "1700"}]}]},
        {"evse_uid": "E2", "meterValue": [{"timestamp": "2024-05-01T10:05:00Z", "sampledValue": [
            {"measurand": "Power.Active.Import", "value": "9", "unit": "MW"}]}]}
    ]});
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(&bad))
        .await;
    assert_eq!(status, 400);
    assert_eq!(
        body["message"],
        "meter_values[1].meterValue[0].sampledValue[0].unit: unsupported unit \"MW\""
    );
    assert_eq!(app.count("meter_values").await, 3);

    // CPO credentials required.
    let (status, _) = app
        .send(
            Method::POST,
            "/api/v1/meter-values",
            Some(&token_header("x")),
            Some(&batch),
        )
        .await;
    assert_eq!(status, 401);
}

/// The flexibility a session is rewarded for is measured from its meter register against its
/// uncontrolled baseline (issue 15), not the largest shift a plan asked of it.
#[tokio::test]
async fn flexibility_is_measured_from_the_register_at_the_cdr() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    let (_, _, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S1", "E1", &alice_uid, 0.0).await;
    // A plan once asked for a 3 kWh shift…
    crate::chain::set_flex(&app, "S1", 3_000).await;
    // …but the car took all its 11.04 kWh in the second hour of its two, which at 11.04 kW it
    // could have taken in the first: all of it moved.
    let reading = |at: &str, wh: i64| {
        json!({"timestamp": at, "sampledValue": [
            {"measurand": "Energy.Active.Import.Register", "value": wh.to_string(), "unit": "Wh"}]})
    };
    let batch = json!({"meter_values": [{"evse_uid": "E1", "session_id": "S1", "meterValue": [
        reading("2024-05-01T09:30:00Z", 0), reading("2024-05-01T10:30:00Z", 0),
        reading("2024-05-01T11:00:00Z", 5_520), reading("2024-05-01T11:30:00Z", 11_040)]}]});
    let (status, body) = app
        .cpo(Method::POST, "/api/v1/meter-values", Some(&batch))
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&crate::chain::cdr("C1", "S1", "E1", &alice_uid, 11.04)),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let settlement = app.outbox("settlement").await;
    let facts: Value = serde_json::from_str(&settlement[0].payload).unwrap();
    assert_eq!(facts["shifted_wh"], 11_040, "{facts}");
}
