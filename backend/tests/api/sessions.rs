use crate::helpers::{Backend, TestApp, example, spawn_app_on, spawn_cpo};
use reqwest::Method;
use serde_json::{Value, json};

async fn app_with_cpo(backend: Backend) -> TestApp {
    let mut app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await;
    app
}

fn path_of(s: &Value) -> String {
    format!(
        "/ocpi/2.2.1/sessions/{}/{}/{}",
        s["country_code"].as_str().unwrap(),
        s["party_id"].as_str().unwrap(),
        s["id"].as_str().unwrap()
    )
}

async fn sessions_and_cdrs(backend: Backend) {
    let app = app_with_cpo(backend).await;
    for name in [
        "session_example_1_simple_start.json",
        "session_example_2_short_finished.json",
    ] {
        let s = example(name);
        let (status, body) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (201, Some(1000)),
            "a new session: {name}: {body}"
        );
        // The same object again is an update: 200 (OCPI status codes: 201 only when created).
        let (status, body) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (200, Some(1000)),
            "an update: {name}: {body}"
        );
    }
    assert_eq!(app.count("sessions").await, 2);

    // PATCHes (official examples) on the started session. The examples are dated 2019, before
    // the session example they patch (2020-03-09T10:17:09Z), and a PATCH older than the stored
    // object is refused, so they are sent with a later `last_updated`.
    let path = "/ocpi/2.2.1/sessions/NL/STK/101";
    for name in [
        "session_patch_example_charging_period.json",
        "session_patch_example_total_cost.json",
    ] {
        let mut patch = example(name);
        let (status, body) = app.cpo(Method::PATCH, path, Some(&patch)).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (200, Some(2001)),
            "{name}: {body}"
        );
        assert!(
            body["status_message"]
                .as_str()
                .unwrap()
                .starts_with("last_updated: "),
            "{body}"
        );
        patch["last_updated"] = serde_json::json!("2020-03-09T10:18:00Z");
        let (status, body) = app.cpo(Method::PATCH, path, Some(&patch)).await;
        assert_eq!(status, 200, "{name}: {body}");
    }
    let (status, body) = app.cpo(Method::GET, path, None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["kwh"], 15.0);
    assert_eq!(body["data"]["total_cost"]["excl_vat"], 0.6);
    assert_eq!(
        body["data"]["charging_periods"][0]["dimensions"][0]["volume"],
        2200
    );
    assert_eq!(body["data"]["status"], "PENDING");
    let (status, _) = app
        .cpo(
            Method::PATCH,
            path,
            Some(&json!({"status": "ACTIVE", "last_updated": "2020-03-09T10:20:00Z"})),
        )
        .await;
    assert_eq!(status, 200);
    let (_, body) = app.cpo(Method::GET, path, None).await;
    assert_eq!(body["data"]["status"], "ACTIVE");

    // CDR: stored and settled through the outbox, once.
    let cdr = example("cdr_example.json");
    let (status, body) = app.cpo(Method::POST, "/ocpi/2.2.1/cdrs", Some(&cdr)).await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = app.cpo(Method::GET, "/ocpi/2.2.1/cdrs/12345", None).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["total_energy"], 15.342);
    let (status, _) = app.cpo(Method::POST, "/ocpi/2.2.1/cdrs", Some(&cdr)).await;
    assert_eq!(status, 201);
    let settlements = app.outbox("settlement").await;
    assert_eq!(settlements.len(), 1);
    let p: Value = serde_json::from_str(&settlements[0].payload).unwrap();
    assert_eq!(p["energy_wh"], 15_342);
    assert_eq!(p["total_cost_excl_vat_micro"], 4_000_000);
    assert_eq!(p["total_cost_incl_vat_micro"], 4_400_000);
    assert_eq!(settlements[0].dedupe_key, "settlement:BE*BEC*12345");
}

#[tokio::test]
async fn sessions_and_cdrs_postgres() {
    sessions_and_cdrs(Backend::Postgres).await;
}

#[tokio::test]
async fn sessions_and_cdrs_sqlite() {
    sessions_and_cdrs(Backend::Sqlite).await;
}

#[tokio::test]
async fn malformed_sessions_and_cdrs_store_nothing() {
    let app = app_with_cpo(Backend::Postgres).await;
    let mut s = example("session_example_1_simple_start.json");
    s["cdr_token"].as_object_mut().unwrap().remove("uid");
    let (status, body) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .starts_with("cdr_token"),
        "{body}"
    );
    assert_eq!(app.count("sessions").await, 0);

    let s = example("session_example_1_simple_start.json");
    let (status, _) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
    assert_eq!(status, 201);
    let path = path_of(&s);
    for (patch, field) in [
        (
            json!({"kwh": "lots", "last_updated": "2020-03-09T10:20:00Z"}),
            "kwh",
        ),
        (json!({"kwh": 3.0}), "last_updated"),
        (
            json!({"status": "DONE", "last_updated": "2020-03-09T10:20:00Z"}),
            "status",
        ),
        (
            json!({"kwh": -1.0, "last_updated": "2020-03-09T10:20:00Z"}),
            "kwh",
        ),
        (
            json!({"charging_periods": [{"dimensions": []}], "last_updated": "2020-03-09T10:20:00Z"}),
            "charging_periods[0]",
        ),
    ] {
        let (status, body) = app.cpo(Method::PATCH, &path, Some(&patch)).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (200, Some(2001)),
            "{patch}"
        );
        let msg = body["status_message"].as_str().unwrap();
        assert!(msg.contains(field), "{field} not named in {msg:?}");
    }
    let (_, body) = app.cpo(Method::GET, &path, None).await;
    assert_eq!(body["data"]["kwh"], 0.0);
    assert_eq!(body["data"]["status"], "PENDING");

    let (status, _) = app
        .cpo(
            Method::PATCH,
            "/ocpi/2.2.1/sessions/NL/STK/nope",
            Some(&json!({"kwh": 1.0, "last_updated": "2020-03-09T10:20:00Z"})),
        )
        .await;
    assert_eq!(status, 404);

    let mut cdr = example("cdr_example.json");
    cdr.as_object_mut().unwrap().remove("total_energy");
    let (status, body) = app.cpo(Method::POST, "/ocpi/2.2.1/cdrs", Some(&cdr)).await;
    assert_eq!((status, body["status_code"].as_i64()), (200, Some(2001)));
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .contains("total_energy"),
        "{body}"
    );
    assert_eq!(app.count("cdrs").await, 0);
    assert_eq!(app.count("chain_outbox").await, 0);
}

/// Concurrent PATCHes are group-committed: each request still gets its own answer (200, or 404
/// for an unknown session), and every acknowledged PATCH is stored.
#[tokio::test]
async fn concurrent_patches_each_get_their_own_answer() {
    let app = std::sync::Arc::new(app_with_cpo(Backend::Postgres).await);
    let mut s = example("session_example_1_simple_start.json");
    for id in ["A", "B", "C"] {
        // Three open sessions, so three EVSEs (an EVSE has one open session at a time).
        s["id"] = json!(id);
        s["evse_uid"] = json!(format!("EVSE-{id}"));
        let (status, body) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
        assert_eq!(status, 201, "a new session: {body}");
    }
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..60 {
        let app = app.clone();
        let id = ["A", "B", "C", "unknown"][i % 4];
        tasks.spawn(async move {
            let kwh = if id == "C" { 7.0 } else { (i + 4) as f64 };
            let patch = json!({"kwh": kwh, "last_updated": "2020-03-09T10:20:00Z"});
            let path = format!("/ocpi/2.2.1/sessions/NL/STK/{id}");
            let (status, body) = app.cpo(Method::PATCH, &path, Some(&patch)).await;
            (id, status, body)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (id, status, body) = done.unwrap();
        let expected = if id == "unknown" { 404 } else { 200 };
        assert_eq!(status, expected, "{id}: {body}");
    }
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/sessions/NL/STK/C", None)
        .await;
    assert_eq!(body["data"]["kwh"], 7.0);
    let (_, body) = app
        .cpo(Method::GET, "/ocpi/2.2.1/sessions/NL/STK/A", None)
        .await;
    let kwh = body["data"]["kwh"].as_f64().unwrap();
    assert!(
        kwh >= 4.0 && kwh % 4.0 == 0.0,
        "A has one of its PATCHes: {kwh}"
    );
}

#[tokio::test]
async fn a_body_over_the_limit_gets_an_ocpi_envelope() {
    let app = app_with_cpo(Backend::Sqlite).await;
    let mut s = example("session_example_1_simple_start.json");
    s["padding"] = serde_json::Value::String("x".repeat(3 << 20));
    let (status, body) = app.cpo(Method::PUT, &path_of(&s), Some(&s)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["status_code"], 2000);
    assert_eq!(body["status_message"], "body: larger than 2 MiB");
    assert_eq!(app.count("sessions").await, 0);
}
