//! What a stranger may cost (issue 13, findings 8 and 12): per-IP rate limits answer 429 with a
//! reason and `Retry-After`, open event streams are capped, and sign-in nonces that can no
//! longer be used are purged.

use crate::helpers::{Backend, TestApp, spawn_app_with};
use evflex_chain::LocalChain;
use reqwest::Method;
use serde_json::{Value, json};

async fn sign_up(app: &TestApp, i: usize) -> (u16, Option<String>, Value) {
    let resp = app
        .http
        .post(format!("{}/api/v1/users", app.address))
        .json(&json!({"name": format!("user {i}"), "opted_in": false}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    (status, retry, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn sign_ups_from_one_address_are_rate_limited_with_a_reason() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.no_rate_limits = false).await;
    for i in 0..10 {
        let (status, _, body) = sign_up(&app, i).await;
        assert_eq!(status, 201, "sign-up {i}: {body}");
    }
    let (status, retry, body) = sign_up(&app, 10).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"], "rate_limited");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("too many sign-ups"),
        "{body}"
    );
    let wait: u64 = retry.expect("Retry-After").parse().unwrap();
    assert!((1..=6).contains(&wait), "{wait}");
    assert_eq!(
        app.count("users").await,
        10,
        "the refused sign-up stored nothing"
    );
    // Other routes are not affected.
    let (status, _) = app.send(Method::GET, "/healthz", None, None).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn without_rate_limits_a_simulator_may_sign_up_many_users() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.no_rate_limits = true).await;
    for i in 0..30 {
        assert_eq!(sign_up(&app, i).await.0, 201);
    }
}

#[tokio::test]
async fn open_event_streams_are_capped() {
    let app = spawn_app_with(Backend::Sqlite, |c| c.max_event_streams = 2).await;
    let open = || {
        app.http
            .get(format!("{}/api/v1/events", app.address))
            .send()
    };
    let first = open().await.unwrap();
    let second = open().await.unwrap();
    assert_eq!(
        (first.status().as_u16(), second.status().as_u16()),
        (200, 200)
    );
    let third = open().await.unwrap();
    assert_eq!(third.status().as_u16(), 429);
    let body: Value = third.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("event streams"),
        "{body}"
    );
    drop((first, second));
}

#[tokio::test]
async fn sign_in_nonces_that_can_no_longer_be_used_are_purged() {
    let chain = LocalChain::start_from_repo().await.expect("anvil");
    let app = crate::chain::chain_app(&chain).await;
    let body = json!({"address": "0x70997970C51812dc3A010C7d01b93b54d6eBD79C"});
    let challenge = || app.send(Method::POST, "/api/v1/auth/challenge", None, Some(&body));
    for _ in 0..50 {
        assert_eq!(challenge().await.0, 200);
    }
    assert_eq!(
        app.count("auth_nonces").await,
        50,
        "live challenges are kept"
    );
    app.clock.advance(evflex::wallet::CHALLENGE_TTL_S + 1);
    assert_eq!(challenge().await.0, 200);
    assert_eq!(app.count("auth_nonces").await, 1, "expired ones went");
}
