//! Tenancy between CPOs (issue 13): a second CPO, registered with its own party codes, gets 404
//! (or, on the JSON API, 403 where it names the first CPO's codes) on every route that addresses the first CPO's
//! objects, and the objects are unchanged afterwards. Party codes belong to one party, and a
//! token A registers one party.

use crate::helpers::{
    Backend, T0, TestApp, credentials, example, spawn_app_on, spawn_cpo, token_header,
};
use evflex::domain::format_rfc3339;
use reqwest::Method;
use serde_json::{Value, json};

/// CPO A (NL*EXA, the tests' own) with a site, a group and a session; CPO B (DE*BBB).
async fn two_cpos(backend: Backend) -> (TestApp, String) {
    let mut app = spawn_app_on(backend).await;
    let cpo_a = spawn_cpo().await;
    app.register_cpo(&cpo_a).await;
    app.put_site("LOC-A", &["E1", "E2"]).await;
    app.put_group(1, 22_000, &["E1", "E2"]).await;
    app.put_session("S1", "E1", "CARD-A", 1.0).await;
    let cpo_b = spawn_cpo().await;
    let (status, body) = app
        .register_party(&cpo_b, "token-a-b", "token-b-b", &[("DE", "BBB")])
        .await;
    assert_eq!(status, 200, "{body}");
    let token_c_b = body["data"]["token"].as_str().unwrap().to_owned();
    (app, token_header(&token_c_b))
}

/// What CPO A sees of its group and its session.
async fn a_view(app: &TestApp) -> (Value, Value, Value) {
    let (s1, group) = app.cpo(Method::GET, "/api/v1/groups/1", None).await;
    let (s2, cockpit) = app.cpo(Method::GET, "/api/v1/cockpit/groups/1", None).await;
    let (s3, session) = app
        .cpo(Method::GET, "/ocpi/2.2.1/sessions/NL/EXA/S1", None)
        .await;
    assert_eq!((s1, s2, s3), (200, 200, 200));
    (
        group,
        cockpit["charge_points"].clone(),
        session["data"].clone(),
    )
}

async fn isolation_matrix(backend: Backend) {
    let (app, b) = two_cpos(backend).await;
    let before = a_view(&app).await;
    let meter_rows = app.count("meter_values").await;
    let as_b = |method: Method, path: &'static str, body: Option<Value>| {
        let app = &app;
        let b = b.clone();
        async move {
            app.send(method, path, Some(b.as_str()), body.as_ref())
                .await
        }
    };
    let group_b = |id: i64, cc: &str, pid: &str| json!({"id": id, "name": "mine", "country_code": cc, "party_id": pid, "capacity_w": 1});

    // Reads: another party's group does not exist for B.
    let (status, list) = as_b(Method::GET, "/api/v1/groups", None).await;
    assert_eq!((status, list), (200, json!([])));
    let (status, list) = as_b(Method::GET, "/api/v1/cockpit/groups", None).await;
    assert_eq!((status, list), (200, json!([])));
    for path in ["/api/v1/groups/1", "/api/v1/cockpit/groups/1"] {
        let (status, body) = as_b(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}: {body}");
    }
    // Writes addressed by id: 404, nothing changed.
    let cases: [(Method, &'static str, Value); 3] = [
        (
            Method::PUT,
            "/api/v1/groups/1/capacity",
            json!({"capacity_w": 1}),
        ),
        (
            Method::POST,
            "/api/v1/groups/1/capacity-changes",
            json!({"start": format_rfc3339(T0), "end": format_rfc3339(T0 + 3_600),
                   "capacity_w": 0, "reason": "hostile"}),
        ),
        (
            Method::PUT,
            "/api/v1/groups/1/forecast",
            json!({"kind": "other_load", "start": format_rfc3339(T0), "values_w": [1_000_000]}),
        ),
    ];
    for (method, path, body) in cases {
        let (status, resp) = as_b(method, path, Some(body)).await;
        assert_eq!(status, 404, "{path}: {resp}");
    }
    // Writes that name A's codes: 403; a group id A holds, under B's own codes: 409.
    let (status, resp) = as_b(
        Method::PUT,
        "/api/v1/groups/1",
        Some(group_b(1, "NL", "EXA")),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    assert!(
        resp["message"].as_str().unwrap().contains("NL*EXA"),
        "{resp}"
    );
    let (status, resp) = as_b(
        Method::PUT,
        "/api/v1/groups/1",
        Some(group_b(1, "DE", "BBB")),
    )
    .await;
    assert_eq!(status, 409, "{resp}");
    let (status, resp) = as_b(
        Method::PUT,
        "/api/v1/topology",
        Some(json!({"groups": [group_b(7, "DE", "BBB"), group_b(8, "NL", "EXA")]})),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    assert!(
        resp["message"].as_str().unwrap().starts_with("groups[1]."),
        "{resp}"
    );
    assert_eq!(
        app.count("charging_groups WHERE id IN (7, 8)").await,
        0,
        "all or nothing"
    );
    let (status, resp) = as_b(
        Method::POST,
        "/api/v1/meter-values",
        Some(
            json!({"meter_values": [{"country_code": "NL", "party_id": "EXA", "evse_uid": "E1",
            "meterValue": [{"timestamp": format_rfc3339(T0), "sampledValue": [
                {"measurand": "Power.Active.Import", "value": "350", "unit": "kW"}]}]}]}),
        ),
    )
    .await;
    assert_eq!(status, 403, "{resp}");
    // OCPI objects under A's codes: 404, as transport_and_format allows for codes that are not
    // the caller's, so B cannot tell whether they exist.
    for path in [
        "/ocpi/2.2.1/sessions/NL/EXA/S1",
        "/ocpi/2.2.1/locations/NL/EXA/LOC-A",
    ] {
        let (status, resp) = as_b(Method::GET, path, None).await;
        assert_eq!(status, 404, "{path}: {resp}");
        let (status, resp) = as_b(
            Method::PATCH,
            path,
            Some(json!({"status": "COMPLETED", "kwh": 0,
            "last_updated": format_rfc3339(T0 + 60)})),
        )
        .await;
        assert_eq!(status, 404, "{path}: {resp}");
    }

    // A CDR is looked up among the caller's own only: A's CDR id is as unknown to B as an id
    // that does not exist (a 403 would tell B that it exists).
    let (status, resp) = app
        .cpo(
            Method::POST,
            "/ocpi/2.2.1/cdrs",
            Some(&example("cdr_example.json")),
        )
        .await;
    assert_eq!(status, 201, "{resp}");
    let (status, theirs) = as_b(Method::GET, "/ocpi/2.2.1/cdrs/12345", None).await;
    let (_, missing) = as_b(Method::GET, "/ocpi/2.2.1/cdrs/54321", None).await;
    assert_eq!(status, 404, "{theirs}");
    assert_eq!(theirs["status_code"], missing["status_code"]);
    let (status, _) = app.cpo(Method::GET, "/ocpi/2.2.1/cdrs/12345", None).await;
    assert_eq!(status, 200);

    assert_eq!(a_view(&app).await, before, "A's objects are unchanged");
    assert_eq!(app.count("meter_values").await, meter_rows);
    // B's own group is B's.
    let (status, resp) = as_b(
        Method::PUT,
        "/api/v1/groups/9",
        Some(group_b(9, "DE", "BBB")),
    )
    .await;
    assert_eq!(status, 200, "{resp}");
    let (_, list) = app.cpo(Method::GET, "/api/v1/groups", None).await;
    let ids: Vec<i64> = list
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1], "A does not see B's group either");
}

#[tokio::test]
async fn a_second_cpo_cannot_see_or_change_the_first_cpos_objects_postgres() {
    isolation_matrix(Backend::Postgres).await;
}

#[tokio::test]
async fn a_second_cpo_cannot_see_or_change_the_first_cpos_objects_sqlite() {
    isolation_matrix(Backend::Sqlite).await;
}

#[tokio::test]
async fn party_codes_belong_to_one_party() {
    let (app, b) = two_cpos(Backend::Sqlite).await;
    let intruder = spawn_cpo().await;
    // A new party naming A's codes among its own is refused, and nothing is registered.
    let parties = app.count("ocpi_parties").await;
    let (status, resp) = app
        .register_party(
            &intruder,
            "token-a-c",
            "token-b-c",
            &[("FR", "CCC"), ("NL", "EXA")],
        )
        .await;
    assert_eq!(
        (status, resp["status_code"].as_i64()),
        (200, Some(2001)),
        "{resp}"
    );
    assert!(
        resp["status_message"].as_str().unwrap().contains("NL*EXA"),
        "{resp}"
    );
    assert_eq!(app.count("ocpi_parties").await, parties);
    // B cannot take them by updating its credentials either; its own token keeps working.
    let (status, resp) = app
        .send(
            Method::PUT,
            "/ocpi/2.2.1/credentials",
            Some(b.as_str()),
            Some(&credentials(
                &intruder,
                "token-b-b2",
                &[("DE", "BBB"), ("NL", "EXA")],
            )),
        )
        .await;
    assert_eq!(
        (status, resp["status_code"].as_i64()),
        (200, Some(2001)),
        "{resp}"
    );
    let (status, _) = app
        .send(Method::GET, "/api/v1/groups", Some(b.as_str()), None)
        .await;
    assert_eq!(status, 200, "the failed PUT changed nothing");
    let (status, _) = app
        .send(
            Method::GET,
            "/ocpi/2.2.1/sessions/NL/EXA/S1",
            Some(b.as_str()),
            None,
        )
        .await;
    assert_eq!(status, 404);
    // Codes are released when their party unregisters.
    let (status, _) = app
        .send(
            Method::DELETE,
            "/ocpi/2.2.1/credentials",
            Some(b.as_str()),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let (status, resp) = app
        .register_party(&intruder, "token-a-d", "token-b-d", &[("DE", "BBB")])
        .await;
    assert_eq!(status, 200, "{resp}");
}

#[tokio::test]
async fn a_registration_token_registers_one_party_even_when_two_race() {
    let app = spawn_app_on(Backend::Postgres).await;
    let (one, two) = (spawn_cpo().await, spawn_cpo().await);
    app.add_registration_token("shared-token-a").await;
    let post = |cpo, token_b: &'static str, code: &'static str| {
        let body = credentials(cpo, token_b, &[("NL", code)]);
        let app = &app;
        async move {
            app.send(
                Method::POST,
                "/ocpi/2.2.1/credentials",
                Some(&token_header("shared-token-a")),
                Some(&body),
            )
            .await
        }
    };
    let ((s1, r1), (s2, r2)) = tokio::join!(post(&one, "b-one", "ONE"), post(&two, "b-two", "TWO"));
    let mut statuses = [s1, s2];
    statuses.sort_unstable();
    assert_eq!(statuses[0], 200, "{r1} {r2}");
    assert_ne!(statuses[1], 200, "{r1} {r2}");
    assert_eq!(app.count("ocpi_parties").await, 1);
}

#[tokio::test]
async fn a_set_point_result_is_only_its_own_cpos_to_give() {
    let (app, b) = two_cpos(Backend::Sqlite).await;
    let (_, alice, alice_uid) = app.new_user("alice", true).await;
    app.put_session("S2", "E2", &alice_uid, 1.0).await;
    let req = json!({"session_id": "S2", "energy_kwh": 10.0, "departure": format_rfc3339(T0 + 4 * 3_600)});
    let (status, body) = app
        .user(&alice, Method::POST, "/api/v1/requests", Some(&req))
        .await;
    assert_eq!(status, 201, "{body}");
    app.tick().await;
    let ids: Vec<(i64,)> = sqlx::query_as("SELECT id FROM setpoints ORDER BY id")
        .fetch_all(app.state.db.pool())
        .await
        .unwrap();
    let id = ids.first().expect("a set-point was sent").0;
    let path = format!("/ocpi/2.2.1/chargingprofiles/{id}");
    let result = json!({"result": "REJECTED"});
    let (status, resp) = app
        .send(Method::POST, &path, Some(b.as_str()), Some(&result))
        .await;
    assert_eq!(status, 404, "{resp}");
    let stored: (Option<String>,) = sqlx::query_as("SELECT result FROM setpoints WHERE id = $1")
        .bind(id)
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(stored.0, None, "B's answer was not stored");
    let (status, _) = app
        .cpo(Method::POST, &path, Some(&json!({"result": "ACCEPTED"})))
        .await;
    assert_eq!(status, 200);
}
