use crate::helpers::{spawn_app, spawn_cpo};
use reqwest::Method;

#[tokio::test]
async fn healthz_reports_ok() {
    let app = spawn_app().await;
    let (status, body) = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["status"], "ok");
}

#[tokio::test]
async fn metrics_are_exported_in_prometheus_format() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app.put_site("LOC-A", &["E1"]).await;
    app.tick().await;
    let resp = app
        .http
        .get(format!("{}/metrics", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for name in [
        "evflex_ocpi_ingest_total",
        "evflex_tick_duration_seconds",
        "evflex_ticks_total",
    ] {
        assert!(text.contains(name), "{name} missing from\n{text}");
    }
}

#[tokio::test]
async fn openapi_document_is_served() {
    let app = spawn_app().await;
    let (status, body) = app.send(Method::GET, "/api/openapi.json", None, None).await;
    assert_eq!(status, 200);
    assert!(body["paths"]["/api/v1/requests"].is_object(), "{body}");
    assert!(body["paths"]["/api/v1/groups/{id}"].is_object());
}
