//! The admin API (`/api/v1/admin/parties`): onboarding CPOs at run time in either direction and
//! taking one off, behind the admin credential; absent without one.

use crate::helpers::*;
use evflex::config::Secret;
use reqwest::Method;
use serde_json::json;

const ADMIN: &str = "admin-token-of-at-least-16-chars";

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn without_an_admin_credential_there_is_no_admin_api() {
    let app = spawn_app().await;
    for (method, path) in [
        (Method::GET, "/api/v1/admin/parties"),
        (Method::POST, "/api/v1/admin/parties/token-a"),
        (Method::DELETE, "/api/v1/admin/parties/1"),
    ] {
        let (status, _) = app.send(method, path, Some(&bearer(ADMIN)), None).await;
        assert_eq!(status, 404, "{path}");
    }
}

#[tokio::test]
async fn an_admin_onboards_cpos_in_both_directions_and_takes_one_off() {
    let app = spawn_app_with(Backend::Postgres, |c| {
        c.admin_token = Some(Secret::new(ADMIN));
    })
    .await;
    // Wrong or missing credentials, or a CPO's token: 401.
    let (status, _) = app
        .send(
            Method::GET,
            "/api/v1/admin/parties",
            Some(&bearer("nope-nope-nope-nope")),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = app
        .send(Method::GET, "/api/v1/admin/parties", None, None)
        .await;
    assert_eq!(status, 401);

    // 1. The CPO calls evflex with a token A the admin created.
    let (status, created) = app
        .send(
            Method::POST,
            "/api/v1/admin/parties/token-a",
            Some(&bearer(ADMIN)),
            None,
        )
        .await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["versions_url"],
        format!("{}/ocpi/versions", app.address)
    );
    let token_a = created["token_a"].as_str().unwrap().to_owned();
    let cpo = spawn_cpo().await;
    let (status, body) = app
        .send(
            Method::POST,
            "/ocpi/2.2.1/credentials",
            Some(&token_header(&token_a)),
            Some(&credentials(&cpo, "cpo-b", &[("NL", "EXA")])),
        )
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(1000)),
        "{body}"
    );
    let token_c = body["data"]["token"].as_str().unwrap().to_owned();
    // A CPO's token C is not an admin credential.
    let (status, _) = app
        .send(
            Method::GET,
            "/api/v1/admin/parties",
            Some(&bearer(&token_c)),
            None,
        )
        .await;
    assert_eq!(status, 401);

    // 2. evflex calls a CPO that issued it a token A.
    let other = spawn_cpo().await;
    let (status, registered) = app
        .send(
            Method::POST,
            "/api/v1/admin/parties/register",
            Some(&bearer(ADMIN)),
            Some(
                &json!({"versions_url": format!("{}/ocpi/versions", other.address),
                         "token_a": "token-a-from-the-cpo"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{registered}");
    assert_eq!(registered["codes"], json!(["DE*REG"]));
    assert_eq!(registered["version"], "2.2.1");
    let posted = other.log.lock().unwrap().credentials.clone();
    assert_eq!(posted.len(), 1);
    assert_eq!(posted[0].0, token_header("token-a-from-the-cpo"));

    // 3. The list names both, and never a token.
    let (status, list) = app
        .send(
            Method::GET,
            "/api/v1/admin/parties",
            Some(&bearer(ADMIN)),
            None,
        )
        .await;
    assert_eq!(status, 200, "{list}");
    let rows = list.as_array().unwrap();
    assert_eq!(rows.len(), 2, "{list}");
    let text = list.to_string();
    for secret in [
        token_c.as_str(),
        "cpo-b",
        "cpo-token-for-evflex",
        token_a.as_str(),
    ] {
        assert!(!text.contains(secret), "the list leaks a token: {text}");
    }
    let first = rows
        .iter()
        .find(|r| r["codes"] == json!(["NL*EXA"]))
        .expect("the first CPO");
    let id = first["id"].as_i64().unwrap();

    // 4. Revoked: its token stops working and its codes are free again.
    let (status, _) = app
        .send(
            Method::DELETE,
            &format!("/api/v1/admin/parties/{id}"),
            Some(&bearer(ADMIN)),
            None,
        )
        .await;
    assert_eq!(status, 204);
    let (status, _) = app
        .send(
            Method::GET,
            "/ocpi/versions",
            Some(&token_header(&token_c)),
            None,
        )
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .register_party(&cpo, "token-a-2", "cpo-b-2", &[("NL", "EXA")])
        .await;
    assert_eq!(
        (status, body["status_code"].as_i64()),
        (200, Some(1000)),
        "{body}"
    );
    let (status, _) = app
        .send(
            Method::DELETE,
            "/api/v1/admin/parties/999999",
            Some(&bearer(ADMIN)),
            None,
        )
        .await;
    assert_eq!(status, 404);
}
