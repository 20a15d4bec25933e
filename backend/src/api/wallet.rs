//! E-wallet routes: Sign-In with Ethereum, the user's wallet (balances from the chain, demo
//! top-up, key export) and their settlements. All answer 503 without a chain.

use super::auth::AuthUser;
use super::error::{ApiError, parse_body};
use super::limits::{Class, RateLimits};
use crate::app::AppState;
use crate::chain::ChainContext;
use crate::ingest::ocpi::credentials::new_token;
use crate::store::{bills, outbox_drain, users, wallets};
use alloy::primitives::{Address, U256};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::sync::Arc;

/// Wallet routes.
pub fn router(limits: &RateLimits) -> Router<AppState> {
    Router::new()
        .route(
            "/api/v1/auth/challenge",
            post(challenge).layer(limits.per_ip(Class::SignIn)),
        )
        .route(
            "/api/v1/auth/verify",
            post(verify).layer(limits.per_ip(Class::SignIn)),
        )
        .route("/api/v1/users/me/wallet", get(wallet))
        .route("/api/v1/users/me/wallet/top-up", post(top_up))
        .route(
            "/api/v1/users/me/wallet/export",
            post(export).layer(
                tower::ServiceBuilder::new()
                    .layer(limits.per_ip(Class::KeyExport))
                    .layer(limits.per_account()),
            ),
        )
        .route("/api/v1/users/me/settlements", get(settlements))
        .route("/api/v1/users/me/spending-limit", put(set_spending_limit))
}

fn chain(state: &AppState) -> Result<Arc<ChainContext>, ApiError> {
    state
        .engine
        .chain
        .clone()
        .ok_or_else(|| ApiError::Unavailable("this server runs without a chain".to_owned()))
}

fn chain_err(e: impl std::fmt::Display) -> ApiError {
    tracing::warn!(error = %e, "chain call failed");
    ApiError::Unavailable("the chain is unavailable".to_owned())
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

/// The SIWE domain and URI: this server's public URL.
fn siwe_domain(state: &AppState) -> (String, String) {
    let url = state.public_url.to_string();
    let domain = url
        .split_once("://")
        .map_or(url.as_str(), |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    (domain, url)
}

#[derive(Deserialize)]
struct ChallengeReq {
    address: String,
}

/// Sign-In with Ethereum: an EIP-4361 challenge for `{address}` (nonce stored server-side, 5 minutes).
#[utoipa::path(post, path = "/api/v1/auth/challenge", tag = "auth", request_body = serde_json::Value, responses((status = 200, body = serde_json::Value), (status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody), (status = 503, description = "No chain configured")))]
async fn challenge(State(state): State<AppState>, body: Bytes) -> Result<Json<Value>, ApiError> {
    let ctx = chain(&state)?;
    let req: ChallengeReq = parse_body(&body)?;
    let address: Address = req
        .address
        .parse()
        .map_err(|_| ApiError::BadRequest("address: not an Ethereum address".to_owned()))?;
    let (domain, uri) = siwe_domain(&state);
    let mut conn = state.db.conn().await?;
    let message =
        crate::wallet::challenge(&mut conn, &ctx, &domain, &uri, address, state.clock.now())
            .await
            .map_err(internal)?;
    Ok(Json(json!({ "message": message })))
}

#[derive(Deserialize)]
struct VerifyReq {
    message: String,
    signature: String,
}

/// A sign-in: the bearer token of the user owning the address (created on first sign-in).
#[derive(Serialize)]
struct SignedIn {
    token: String,
    user_id: i64,
    address: String,
}

/// Sign-In with Ethereum: `{message, signature}` → a session token; links or creates the user by address.
#[utoipa::path(post, path = "/api/v1/auth/verify", tag = "auth", request_body = serde_json::Value, responses((status = 200, body = serde_json::Value), (status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody), (status = 401, description = "Sign-in refused; the message says why"), (status = 503, description = "No chain configured")))]
async fn verify(State(state): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let ctx = chain(&state)?;
    let req: VerifyReq = parse_body(&body)?;
    let signature = hex::decode(req.signature.trim_start_matches("0x"))
        .map_err(|_| ApiError::BadRequest("signature: not hex".to_owned()))?;
    let (domain, _) = siwe_domain(&state);
    let now = state.clock.now();
    let mut tx = state.db.begin().await?;
    let address =
        match crate::wallet::verify(&mut tx, &ctx, &domain, &req.message, &signature, now).await {
            Ok(a) => a,
            Err(crate::wallet::SignInError::Refused(m)) => {
                // The reason names no secret (addresses, domain, times): say it, so a wallet
                // app can tell a stale challenge from a wrong account.
                tracing::info!(reason = %m, "sign-in refused");
                return Ok(refused(m));
            }
            Err(crate::wallet::SignInError::Internal(e)) => return Err(internal(e)),
        };
    let token = new_token();
    let user_id = match wallets::by_address(&mut tx, &address.to_string()).await? {
        Some(w) => {
            users::set_session_token(&mut tx, w.user_id, &token, now).await?;
            w.user_id
        }
        None => {
            let short = address.to_string();
            let name = format!("{}…{}", &short[..6], &short[short.len() - 4..]);
            let uid = users::issue_token_uid();
            let id = users::create(&mut tx, &name, &uid, false, &token, now).await?;
            wallets::insert(&mut tx, id, &address.to_string(), None, now).await?;
            id
        }
    };
    tx.commit().await?;
    // A new user's token goes to the CPOs now (`engine::tokens`); a known one's is there.
    let engine = state.engine.clone();
    tokio::spawn(async move { crate::engine::tokens::push_pending(&engine).await });
    Ok(Json(SignedIn {
        token,
        user_id,
        address: address.to_string(),
    })
    .into_response())
}

/// 401 with the reason a sign-in was refused.
fn refused(message: String) -> Response {
    let body = super::error::ErrorBody {
        error: "unauthorized".to_owned(),
        message,
    };
    (StatusCode::UNAUTHORIZED, Json(body)).into_response()
}

fn micro(v: U256) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn flex_tokens(wei: U256) -> f64 {
    // 18 decimals; precise enough for display.
    let whole = wei / U256::from(10u64).pow(U256::from(12u64));
    micro(whole) as f64 / 1e6
}

/// The user's custodial wallet: address, payment-token and FLEX balances.
#[utoipa::path(get, path = "/api/v1/users/me/wallet", tag = "wallet", security(("bearer" = [])), responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn wallet(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Value>, ApiError> {
    let ctx = chain(&state)?;
    let row = {
        let mut conn = state.db.conn().await?;
        wallets::of_user(&mut conn, user.id).await?
    }
    .ok_or_else(|| ApiError::NotFound("no wallet".to_owned()))?;
    let address: Address = row.address.parse().map_err(internal)?;
    let op = &ctx.operator;
    let billing = op.billing_balance(address).await.map_err(chain_err)?;
    let token = op.payment_token_balance(address).await.map_err(chain_err)?;
    let flex = op.flex_balance(address).await.map_err(chain_err)?;
    let limit = op.spending_limit(address).await.map_err(chain_err)?;
    Ok(Json(json!({
        "spending_limit": limit.enabled.then(|| json!({
            "max_price_micro_eur_per_kwh":
                (limit.maxPriceMicroEurPerKwh != 0).then_some(limit.maxPriceMicroEurPerKwh),
            "allowance_micro": (limit.allowance != U256::MAX).then(|| micro(limit.allowance)),
        })),
        "address": address.to_string(),
        "custodial": row.keystore_json.is_some(),
        "chain_id": ctx.deployment.chain_id,
        "balances": {
            "payment_token_micro": micro(billing),
            "payment_token": micro(billing) as f64 / 1e6,
            "wallet_payment_token_micro": micro(token),
            "flex_wei": flex.to_string(),
            "flex": flex_tokens(flex),
        }
    })))
}

#[derive(Deserialize)]
struct TopUpReq {
    amount_eur: f64,
}

/// Demo chain only: mints test euro and deposits `{amount_eur}` for the user.
#[utoipa::path(post, path = "/api/v1/users/me/wallet/top-up", tag = "wallet", request_body = serde_json::Value, security(("bearer" = [])), responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn top_up(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = chain(&state)?;
    if !ctx.demo {
        return Err(ApiError::Conflict(
            "top-ups are only for the demo chain".to_owned(),
        ));
    }
    let req: TopUpReq = parse_body(&body)?;
    if !(req.amount_eur.is_finite() && req.amount_eur > 0.0 && req.amount_eur <= 10_000.0) {
        return Err(ApiError::BadRequest(
            "amount_eur: more than 0, at most 10000".to_owned(),
        ));
    }
    let amount = (req.amount_eur * 1e6).round() as u64;
    let row = {
        let mut conn = state.db.conn().await?;
        wallets::of_user(&mut conn, user.id).await?
    }
    .ok_or_else(|| ApiError::NotFound("no wallet".to_owned()))?;
    let address: Address = row.address.parse().map_err(internal)?;
    let tx = ctx
        .operator
        .top_up(address, U256::from(amount))
        .await
        .map_err(chain_err)?;
    let mut conn = state.db.conn().await?;
    let woken = outbox_drain::wake_awaiting_funds(&mut conn, state.clock.now()).await?;
    let balance = ctx
        .operator
        .billing_balance(address)
        .await
        .map_err(chain_err)?;
    Ok(Json(json!({
        "tx_hash": tx.tx_hash.to_string(),
        "balance_micro": micro(balance),
        "settlements_retried": woken,
    })))
}

#[derive(Deserialize)]
struct ExportReq {
    password: String,
}

/// The user's keystore (v3 JSON), re-encrypted with the `{password}` in the body.
#[utoipa::path(post, path = "/api/v1/users/me/wallet/export", tag = "wallet", request_body = serde_json::Value, security(("bearer" = [])), responses((status = 200, body = serde_json::Value), (status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody), (status = 503, description = "No chain configured")))]
async fn export(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let ctx = chain(&state)?;
    let req: ExportReq = parse_body(&body)?;
    if req.password.len() < 8 {
        return Err(ApiError::BadRequest(
            "password: at least 8 characters".to_owned(),
        ));
    }
    let row = {
        let mut conn = state.db.conn().await?;
        wallets::of_user(&mut conn, user.id).await?
    }
    .ok_or_else(|| ApiError::NotFound("no wallet".to_owned()))?;
    let password = secrecy::SecretString::from(req.password);
    let ctx2 = ctx.clone();
    let permit = state.caps.key_work().await?;
    let json_text = tokio::task::spawn_blocking(move || {
        let _permit = permit;
        crate::wallet::export(&ctx2, &row, &password)
    })
    .await
    .map_err(internal)?
    .map_err(internal)?
    .ok_or_else(|| ApiError::NotFound("this wallet is not custodial".to_owned()))?;
    let keystore: Value = serde_json::from_str(&json_text).map_err(internal)?;
    Ok(Json(keystore))
}

/// A spending limit on the user's settlements (`null`: no cap on that part).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SpendingLimitReq {
    /// Highest price a settlement may charge (EUR per kWh), more than 0 and at most 10.
    pub max_price_eur_per_kwh: Option<f64>,
    /// What settlements may debit in all from now on (EUR), 0 to 1,000,000.
    pub allowance_eur: Option<f64>,
}

/// Sets a cap on what EnergyBilling's settlements may take from the user's balance: a highest
/// price per kWh and an allowance that each settlement uses up. The contract enforces it, so
/// not even evflex's operator can settle past it. evflex signs the update with the user's
/// custodial key and relays it (202: on chain within the next writer round); a user with their
/// own wallet calls `setSpendingLimit` on EnergyBilling (409). Settlements held back by the
/// old limit are retried once the new one is on chain.
#[utoipa::path(put, path = "/api/v1/users/me/spending-limit", tag = "wallet", request_body = SpendingLimitReq,
    security(("bearer" = [])),
    responses((status = 202, body = serde_json::Value), (status = 400, body = super::error::ErrorBody),
        (status = 401, body = super::error::ErrorBody), (status = 409, body = super::error::ErrorBody),
        (status = 429, description = "Busy; the message says when to retry", body = super::error::ErrorBody),
        (status = 503, description = "No chain configured", body = super::error::ErrorBody)))]
async fn set_spending_limit(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let ctx = chain(&state)?;
    let req: SpendingLimitReq = parse_body(&body)?;
    let price = match req.max_price_eur_per_kwh {
        None => 0,
        Some(p) if p.is_finite() && p > 0.0 && p <= 10.0 => (p * 1e6).round() as u64,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "max_price_eur_per_kwh: more than 0, at most 10".to_owned(),
            ));
        }
    };
    let allowance = match req.allowance_eur {
        None => U256::MAX,
        Some(a) if a.is_finite() && (0.0..=1e6).contains(&a) => {
            U256::from((a * 1e6).round() as u64)
        }
        Some(_) => {
            return Err(ApiError::BadRequest(
                "allowance_eur: 0 to 1000000".to_owned(),
            ));
        }
    };
    let now = state.clock.now();
    // Unsealing the custodial key runs scrypt: one of the few slots for that work.
    let _key_work = state.caps.key_work().await?;
    let mut tx = state.db.begin().await?;
    let queued =
        crate::wallet::enqueue_spending_limit(&mut tx, &ctx, user.id, price, allowance, now)
            .await
            .map_err(internal)?;
    if !queued {
        return Err(ApiError::Conflict(
            "your wallet is your own: call setSpendingLimit on EnergyBilling with it".to_owned(),
        ));
    }
    tx.commit().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "status": "pending",
            "max_price_micro_eur_per_kwh": (price != 0).then_some(price),
            "allowance_micro": (allowance != U256::MAX).then(|| micro(allowance)),
        })),
    ))
}

/// The user's bills: energy, cost, FLEX, status and settlement transaction.
#[utoipa::path(get, path = "/api/v1/users/me/settlements", tag = "wallet", security(("bearer" = [])), responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn settlements(
    State(state): State<AppState>,
    AuthUser(user): AuthUser,
) -> Result<Json<Vec<Value>>, ApiError> {
    super::audit::require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = bills::of_user(&mut conn, user.id, 100).await?;
    Ok(Json(rows.iter().map(bill_json).collect()))
}

/// A bill as the pages read it.
pub(crate) fn bill_json(b: &bills::BillRow) -> Value {
    let status = match b.status.as_str() {
        "awaiting_funds" => "awaiting funds",
        "over_limit" => "over your spending limit",
        s => s,
    };
    json!({
        "session_id": b.session_id,
        "cdr": b.cdr_key,
        "chain_session_id": b.chain_session_id,
        "user_address": b.user_address,
        "energy_wh": b.energy_wh,
        "energy_kwh": b.energy_wh as f64 / 1000.0,
        "meter_energy_wh": b.meter_energy_wh,
        "energy_discrepancy_wh": b.energy_discrepancy_wh,
        "price_micro_eur_per_kwh": b.price_micro_eur_per_kwh,
        "price_source": b.price_source,
        "currency": b.currency,
        "credit_wh": b.credit_wh,
        "flexibility_wh": b.flexibility_wh,
        "flex_earned": b.flexibility_wh as f64 / 1000.0,
        "cost_micro_eur": b.cost_micro_eur,
        "cost_eur": b.cost_micro_eur as f64 / 1e6,
        "uncontrolled_cost_micro_eur": b.uncontrolled_cost_micro_eur,
        "saving_micro_eur": b.saving_micro_eur,
        "status": status,
        "status_reason": b.status_reason,
        "tx_hash": b.tx_hash,
        "block_number": b.block_number,
        "settled_at": (b.status == "settled").then(|| crate::domain::format_rfc3339(b.updated_at)),
    })
}
