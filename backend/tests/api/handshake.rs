use crate::helpers::{
    Backend, example, spawn_app, spawn_app_on, spawn_app_with, spawn_cpo, token_header,
};
use evflex::ingest::ocpi::model::{Credentials, Version, VersionDetails, parse};
use reqwest::Method;
use serde_json::json;

#[test]
fn official_credentials_and_version_examples_parse() {
    for name in [
        "credentials_example.json",
        "credentials_example2.json",
        "credentials_example3.json",
        "credentials_example4.json",
    ] {
        parse::<Credentials>(example(name)).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
    parse::<Vec<Version>>(example("versions_info_example.json")).unwrap();
    parse::<VersionDetails>(example("version_details_example.json")).unwrap();
    parse::<VersionDetails>(example("version_details_example2.json")).unwrap();
}

async fn handshake(backend: Backend) {
    let app = spawn_app_on(backend).await;
    let cpo = spawn_cpo().await;

    // Missing or unknown tokens: 401 in the OCPI envelope.
    let (status, body) = app.send(Method::GET, "/ocpi/versions", None, None).await;
    assert_eq!(status, 401);
    assert_eq!(body["status_code"], 2000);
    let (status, _) = app
        .send(
            Method::GET,
            "/ocpi/versions",
            Some(&token_header("nope")),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // Token A allows versions and version details.
    app.add_registration_token("token-a").await;
    let a = token_header("token-a");
    let (status, body) = app
        .send(Method::GET, "/ocpi/versions", Some(&a), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["status_code"], 1000);
    assert_eq!(body["data"][0]["version"], "2.2.1");
    assert!(body["timestamp"].is_string());
    let (status, body) = app.send(Method::GET, "/ocpi/2.2.1", Some(&a), None).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = body["data"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["identifier"].as_str().unwrap())
        .collect();
    for m in [
        "credentials",
        "locations",
        "sessions",
        "cdrs",
        "chargingprofiles",
    ] {
        assert!(ids.contains(&m), "{m} missing: {ids:?}");
    }
    // …but not the receivers.
    let (status, _) = app
        .send(Method::GET, "/ocpi/2.2.1/sessions/NL/EXA/1", Some(&a), None)
        .await;
    assert_eq!(status, 401);

    // Malformed credentials: 2001 naming the field (HTTP 200: the OCPI layer refuses it).
    let (status, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&a),
            Some(&json!({"token": "b", "roles": []})),
        )
        .await;
    assert_eq!(status, 200, "an OCPI-level error is HTTP 200");
    assert_eq!(body["status_code"], 2001);
    assert!(
        body["status_message"].as_str().unwrap().contains("url"),
        "{body}"
    );

    // POST credentials (the official example, pointed at our mock CPO).
    let mut creds = example("credentials_example.json");
    creds["url"] = json!(format!("{}/ocpi/versions", cpo.address));
    let (status, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&a),
            Some(&creds),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token_c = body["data"]["token"].as_str().unwrap().to_owned();
    assert_eq!(
        body["data"]["url"],
        format!("{}/ocpi/versions", app.address)
    );
    assert_eq!(body["data"]["roles"][0]["role"], "EMSP");
    let c = token_header(&token_c);

    // Token A is used up; token C works, raw (2.1.1 style) too.
    let (status, _) = app
        .send(Method::GET, "/ocpi/versions", Some(&a), None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .send(Method::GET, "/ocpi/2.2.1/credentials", Some(&c), None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["token"], token_c.as_str());
    let (status, _) = app
        .send(
            Method::GET,
            "/ocpi/2.2.1/credentials",
            Some(&format!("Token {token_c}")),
            None,
        )
        .await;
    assert_eq!(status, 200);

    // POST again is not allowed; PUT rotates token C.
    let (status, _) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&c),
            Some(&creds),
        )
        .await;
    assert_eq!(status, 405);
    let (status, body) = app
        .send(
            Method::PUT,
            "/ocpi/2.2.1/credentials",
            Some(&c),
            Some(&creds),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let token_c2 = body["data"]["token"].as_str().unwrap().to_owned();
    assert_ne!(token_c2, token_c);
    let (status, _) = app
        .send(Method::GET, "/ocpi/2.2.1/credentials", Some(&c), None)
        .await;
    assert_eq!(status, 401);
    let c2 = token_header(&token_c2);

    // DELETE unregisters.
    let (status, _) = app
        .send(Method::DELETE, "/ocpi/2.2.1/credentials", Some(&c2), None)
        .await;
    assert_eq!(status, 200);
    let (status, _) = app
        .send(Method::GET, "/ocpi/2.2.1/credentials", Some(&c2), None)
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn ocpi_handshake_postgres() {
    handshake(Backend::Postgres).await;
}

#[tokio::test]
async fn ocpi_handshake_sqlite() {
    handshake(Backend::Sqlite).await;
}

#[tokio::test]
async fn handshake_fails_with_3001_when_the_cpo_cannot_be_reached() {
    let app = spawn_app().await;
    app.add_registration_token("token-a").await;
    let mut creds = example("credentials_example.json");
    creds["url"] = json!("http://127.0.0.1:9/ocpi/versions");
    let (status, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header("token-a")),
            Some(&creds),
        )
        .await;
    assert_eq!(status, 200, "an OCPI-level error is HTTP 200");
    assert_eq!(body["status_code"], 3001);
    assert_eq!(app.count("ocpi_parties").await, 0);
}

/// POSTs credentials pointing at `url` with token A; returns status and body.
async fn register_at(app: &crate::helpers::TestApp, url: &str) -> (u16, serde_json::Value) {
    app.add_registration_token("token-a").await;
    let mut creds = example("credentials_example.json");
    creds["url"] = json!(url);
    app.send(
        Method::POST,
        "/ocpi/2.2.1/credentials",
        Some(&token_header("token-a")),
        Some(&creds),
    )
    .await
}

#[tokio::test]
async fn discovery_calls_only_public_addresses_unless_allowed() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.allow_private_urls = false).await;
    let cpo = spawn_cpo().await;
    for url in [
        format!("{}/ocpi/versions", cpo.address),
        "http://169.254.169.254/latest/meta-data".to_owned(),
        "http://[::1]:8080/ocpi/versions".to_owned(),
    ] {
        let (status, body) = register_at(&app, &url).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (200, Some(3001)),
            "{url}: {body}"
        );
        let message = body["status_message"].as_str().unwrap();
        assert!(message.contains("not a public address"), "{message}");
    }
    // A name is checked after resolution: `localhost` resolves only to loopback.
    let (status, body) = register_at(&app, "http://localhost:9/ocpi/versions").await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(3001)),
        "{body}"
    );
    assert_eq!(app.count("ocpi_parties").await, 0);
    assert!(
        cpo.log.lock().unwrap().auth.is_empty(),
        "the CPO was never called"
    );
}

#[tokio::test]
async fn discovery_errors_do_not_tell_which_ports_are_open_and_bodies_are_capped() {
    let app = spawn_app_on(Backend::Sqlite).await;
    // A closed port: the answer says the server could not be reached, not "connection refused".
    let (status, body) = register_at(&app, "http://127.0.0.1:9/ocpi/versions").await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(3001)),
        "{body}"
    );
    let message = body["status_message"].as_str().unwrap();
    assert!(
        message.ends_with("the party's server could not be reached"),
        "{message}"
    );
    assert!(!message.to_lowercase().contains("refused"), "{message}");
    // A 2 MiB versions document is not read past the cap.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let huge = axum::Router::new().route(
        "/ocpi/versions",
        axum::routing::get(|| async { "x".repeat(2 << 20) }),
    );
    tokio::spawn(async move { axum::serve(listener, huge).await });
    let (status, body) = register_at(&app, &format!("{address}/ocpi/versions")).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(3001)),
        "{body}"
    );
    let message = body["status_message"].as_str().unwrap();
    assert!(message.contains("larger than 1024 KiB"), "{message}");
    assert_eq!(app.count("ocpi_parties").await, 0);
}

/// OCPI 2.2.1 transport: evflex echoes the caller's `X-Request-ID` and `X-Correlation-ID`,
/// makes them up where the caller sent none, and sends both on every call it makes (token
/// pushes here; set-points go through the same client).
#[tokio::test]
async fn request_and_correlation_ids_are_echoed_and_sent() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let token = app.register_cpo(&cpo).await;
    let get = |ids: Option<(&str, &str)>| {
        let mut r = reqwest::Client::new()
            .get(format!("{}/ocpi/2.2.1", app.address))
            .header("Authorization", token_header(&token));
        if let Some((request, correlation)) = ids {
            r = r
                .header("X-Request-ID", request)
                .header("X-Correlation-ID", correlation);
        }
        r.send()
    };
    let echoed = get(Some(("req-1", "corr-1"))).await.unwrap();
    assert_eq!(echoed.status(), 200);
    assert_eq!(echoed.headers()["x-request-id"], "req-1");
    assert_eq!(echoed.headers()["x-correlation-id"], "corr-1");
    let made_up = get(None).await.unwrap();
    for h in ["x-request-id", "x-correlation-id"] {
        let v = made_up.headers()[h].to_str().unwrap().to_owned();
        assert_eq!(v.len(), 36, "{h}: a UUID, not {v}");
    }

    app.new_user("alice", false).await;
    for _ in 0..100 {
        if !cpo.log.lock().unwrap().ids.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let ids = cpo.log.lock().unwrap().ids.clone();
    assert_eq!(ids.len(), 1, "one token push: {ids:?}");
    let (request, correlation) = &ids[0];
    assert_eq!((request.len(), correlation.len()), (36, 36), "{ids:?}");
    assert_ne!(request, correlation);
}

/// The other direction (`evflex parties register`): a CPO gave evflex a token A; evflex reads
/// its endpoints with it, posts its own credentials with a new token for the CPO, and stores
/// the party with the token the CPO answered. The CPO can then call evflex with that token.
#[tokio::test]
async fn evflex_starts_the_handshake_with_a_token_a_from_the_cpo() {
    let app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let versions = format!("{}/ocpi/versions", cpo.address);
    let row = evflex::ingest::ocpi::credentials::register_with(
        &app.state.db,
        &app.state.http,
        &app.state.identity,
        &versions,
        "token-a-from-cpo",
        crate::helpers::T0,
    )
    .await
    .unwrap();
    let posted = cpo.log.lock().unwrap().credentials.clone();
    assert_eq!(posted.len(), 1);
    let (auth, ours) = &posted[0];
    assert_eq!(auth, &token_header("token-a-from-cpo"));
    assert_eq!(ours["url"], format!("{}/ocpi/versions", app.address));
    let token_c = ours["token"].as_str().unwrap();
    let (status, body) = app
        .send(
            Method::GET,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(token_c)),
            None,
        )
        .await;
    assert_eq!(status, 200, "the CPO's new token works: {body}");
    let mut conn = app.state.db.conn().await.unwrap();
    let party = evflex::store::parties::get_party(&mut conn, row)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(party.token_b, "cpo-token-for-evflex");
    assert!(party.owns_codes("DE", "REG"));
    assert_eq!(party.status, "registered");
}

/// A CPO evflex cannot work with is refused at the handshake, with the OCPI code that says why:
/// no 2.2.1 among its versions is 3002, no `chargingprofiles` receiver (so no set-point could
/// ever reach it) is 3003. Nothing is registered.
#[tokio::test]
async fn a_cpo_without_2_2_1_or_a_profiles_receiver_is_refused_with_3002_or_3003() {
    let app = spawn_app_on(Backend::Sqlite).await;
    let serve = |versions: serde_json::Value, endpoints: serde_json::Value| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let envelope = |data| {
            axum::Json(
                json!({"data": data, "status_code": 1000, "timestamp": "2024-05-01T10:00:00Z"}),
            )
        };
        let (v, d) = (versions.clone(), endpoints.clone());
        let b = base.clone();
        let router = axum::Router::new()
            .route(
                "/ocpi/versions",
                axum::routing::get(move || {
                    let v = v.clone();
                    let b = b.clone();
                    async move {
                        let list: Vec<serde_json::Value> = v
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|n| json!({"version": n, "url": format!("{b}/ocpi/details")}))
                            .collect();
                        envelope(json!(list))
                    }
                }),
            )
            .route(
                "/ocpi/details",
                axum::routing::get(move || {
                    let d = d.clone();
                    async move { envelope(json!({"version": "2.2.1", "endpoints": d})) }
                }),
            );
        tokio::spawn(async move { axum::serve(listener, router).await });
        format!("{base}/ocpi/versions")
    };
    let only_211 = serve(json!(["2.1.1"]), json!([])).await;
    let no_profiles = serve(
        json!(["2.2.1"]),
        json!([{"identifier": "locations", "role": "SENDER", "url": "https://cpo.example/l"}]),
    )
    .await;
    for (url, code, says) in [
        (only_211, 3002, "2.1.1"),
        (no_profiles, 3003, "chargingprofiles"),
    ] {
        let (status, body) = register_at(&app, &url).await;
        assert_eq!(
            (status, body["status_code"].as_i64()),
            (200, Some(code)),
            "{body}"
        );
        assert!(
            body["status_message"].as_str().unwrap().contains(says),
            "{body}"
        );
    }
    assert_eq!(app.count("ocpi_parties").await, 0);
}
