use crate::helpers::{spawn_app, spawn_cpo, token_header};
use reqwest::Method;
use serde_json::json;

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
