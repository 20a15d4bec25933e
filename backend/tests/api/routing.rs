//! OCPI routing headers (transport_and_format, "Message routing"): `OCPI-to-*` must name evflex,
//! `OCPI-from-*` must be one of the caller's roles; answers name evflex as `from` and the caller
//! as `to`; evflex sends them on its own calls. Through a hub, a request acts under the codes of
//! the one party it names, never under a party registered directly.

use crate::helpers::*;
use reqwest::Method;
use serde_json::{Value, json};

/// `method path` with token C `token` and the routing headers `from` and `to` (`(cc, pid)`).
async fn routed(
    app: &TestApp,
    method: Method,
    path: &str,
    token: &str,
    from: Option<(&str, &str)>,
    to: Option<(&str, &str)>,
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut req = app
        .http
        .request(method, format!("{}{path}", app.address))
        .header("Authorization", token_header(token))
        .json(body);
    if let Some((cc, pid)) = from {
        req = req
            .header("OCPI-from-country-code", cc)
            .header("OCPI-from-party-id", pid);
    }
    if let Some((cc, pid)) = to {
        req = req
            .header("OCPI-to-country-code", cc)
            .header("OCPI-to-party-id", pid);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap_or(Value::Null))
}

/// `PUT` of `location` at the URL its own codes and id name, with token C `token` and the
/// routing headers `from` and `to`.
async fn put_location(
    app: &TestApp,
    token: &str,
    from: Option<(&str, &str)>,
    to: Option<(&str, &str)>,
    location: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let code = |f: &str| location[f].as_str().unwrap().to_owned();
    let path = format!(
        "/ocpi/2.2.1/locations/{}/{}/{}",
        code("country_code"),
        code("party_id"),
        code("id")
    );
    routed(app, Method::PUT, &path, token, from, to, location).await
}

fn header<'a>(headers: &'a reqwest::header::HeaderMap, name: &str) -> &'a str {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn peer_to_peer_the_headers_are_checked_answered_and_sent() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    let token = app.register_cpo(&cpo).await;
    let us = Some(("NL", "EVF"));

    // Addressed to evflex, from the caller's own codes: taken, and the answer's headers swap.
    let loc = location_json("LOC-A", &["E1"], "AVAILABLE");
    let path = "/ocpi/2.2.1/locations/NL/EXA/LOC-A";
    let (status, headers, body) = routed(
        &app,
        Method::PUT,
        path,
        &token,
        Some(("NL", "EXA")),
        us,
        &loc,
    )
    .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    assert_eq!(header(&headers, "ocpi-from-country-code"), "NL");
    assert_eq!(header(&headers, "ocpi-from-party-id"), "EVF");
    assert_eq!(header(&headers, "ocpi-to-country-code"), "NL");
    assert_eq!(header(&headers, "ocpi-to-party-id"), "EXA");

    // Addressed to another party: not evflex's to process (OCPI 2000), nothing stored.
    let other = location_json("LOC-B", &["E2"], "AVAILABLE");
    let (status, _, body) = put_location(
        &app,
        &token,
        Some(("NL", "EXA")),
        Some(("DE", "XYZ")),
        &other,
    )
    .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(2000)),
        "{body}"
    );
    assert!(
        body["status_message"].as_str().unwrap().contains("OCPI-to"),
        "{body}"
    );
    // From codes that are not the caller's: as unknown as another party's object (404).
    let (status, _, _) = put_location(&app, &token, Some(("FR", "ABC")), us, &other).await;
    assert_eq!(status, 404);
    // Half a pair is refused, naming the missing header.
    let resp = app
        .http
        .get(format!("{}{path}", app.address))
        .header("Authorization", token_header(&token))
        .header("OCPI-from-country-code", "NL")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status_code"], 2001, "{body}");
    assert!(
        body["status_message"]
            .as_str()
            .unwrap()
            .contains("ocpi-from-party-id"),
        "{body}"
    );
    assert_eq!(app.count("locations").await, 1);

    // evflex's own calls carry them: from evflex, to the session's CPO.
    app.put_group(1, 20_000, &["E1"]).await;
    let (_, _, uid) = app.new_user("ada", true).await;
    app.put_session("S1", "E1", &uid, 0.0).await;
    app.tick().await;
    let routes = cpo.log.lock().unwrap().routes.clone();
    assert!(!routes.is_empty(), "no profile PUT");
    assert!(
        routes
            .iter()
            .all(|r| r == &("NL*EVF".to_owned(), "NL*EXA".to_owned())),
        "{routes:?}"
    );
}

#[tokio::test]
async fn through_a_hub_a_request_acts_for_the_one_party_it_names() {
    let mut app = spawn_app().await;
    let cpo = spawn_cpo().await;
    app.register_cpo(&cpo).await; // NL*EXA and the examples' codes, registered directly
    let hub = spawn_cpo().await;
    app.add_registration_token("hub-token-a").await;
    let creds = json!({"token": "hub-b", "url": format!("{}/ocpi/versions", hub.address),
        "roles": [{"role": "HUB", "country_code": "DE", "party_id": "HUB",
                   "business_details": {"name": "A hub"}}]});
    let (status, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header("hub-token-a")),
            Some(&creds),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(1000)),
        "{body}"
    );
    let hub_token = body["data"]["token"].as_str().unwrap().to_owned();
    let us = Some(("NL", "EVF"));

    // A CPO behind the hub: its codes become the hub's, and the hub acts under them.
    let mut loc = location_json("LOC-H", &["H1"], "AVAILABLE");
    loc["country_code"] = json!("BE");
    loc["party_id"] = json!("HBC");
    let (status, headers, body) =
        put_location(&app, &hub_token, Some(("BE", "HBC")), us, &loc).await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (201, Some(1000)),
        "{body}"
    );
    assert_eq!(header(&headers, "ocpi-to-party-id"), "HBC");
    // Acting for BE*HBC, the hub may not write under another code it forwards for.
    let mut elsewhere = loc.clone();
    elsewhere["country_code"] = json!("BE");
    elsewhere["party_id"] = json!("HBD");
    let (status, _, _) = put_location(&app, &hub_token, Some(("BE", "HBC")), us, &elsewhere).await;
    assert_eq!(status, 404);
    // A party registered directly cannot be spoken for through the hub.
    let direct = location_json("LOC-X", &["X1"], "AVAILABLE");
    let (status, _, _) = put_location(&app, &hub_token, Some(("NL", "EXA")), us, &direct).await;
    assert_eq!(status, 404);
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM locations WHERE location_id = 'LOC-X'")
        .fetch_one(app.state.db.pool())
        .await
        .unwrap();
    assert_eq!(n, 0);
}
