//! Operator routes of a server on a simulated clock (`evflex serve --sim-clock`): move the
//! clock, run the tick for a timestep, settle the waiting re-plans, add an OCPI registration token (token A), load prices.
//!
//! They let a simulator (or the end-to-end suite) drive a separately running evflex through
//! the day, as `evflex demo` drives its in-process server. They exist only with `--sim-clock`
//! (404 otherwise) and take `Authorization: Bearer <EVFLEX_OPERATOR_TOKEN>`. Every route is
//! idempotent: setting the clock twice, adding a known token again, re-loading prices, and
//! running the tick for a timestep that already has schedules (those groups are skipped) all
//! leave the same state, so a client may retry after a lost answer.
//!
//! - `GET  /api/v1/operator/status` → `{"now", "chain"}`
//! - `PUT  /api/v1/operator/clock` `{"now": unix_s}` → `{"now"}`
//! - `POST /api/v1/operator/tick` `{"timestep"?: n}` (default: the clock's) → the tick report
//! - `POST /api/v1/operator/settle` → 204 once every waiting re-plan is planned and sent
//! - `POST /api/v1/operator/registration-tokens` `{"token"}` → 204
//! - `PUT  /api/v1/operator/prices` `{"prices": [[unix_s, micro_eur_per_kwh], …]}` → `{"prices"}`

use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::config::{Secret, ServeConfig};
use crate::domain::{Clock, SimClock};
use crate::domain::{TIME_STEP_S, timestep_of};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post, put};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

/// What the operator routes need: the simulated clock they move and the token they accept.
#[derive(Debug)]
pub struct OperatorAccess {
    /// The server's clock.
    pub clock: SimClock,
    /// `EVFLEX_OPERATOR_TOKEN`.
    pub token: Secret,
}

/// The clock the app runs on and, on a simulated clock, the operator access.
pub type ClockAndAccess = (Arc<dyn Clock>, Option<Arc<OperatorAccess>>);

/// With `--sim-clock START`: a [`SimClock`] showing START (the clock the app then runs on; a
/// restarted server is given the time it was stopped at) and the operator access; otherwise
/// `clock` unchanged and no access.
pub fn sim_clock(config: &ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<ClockAndAccess> {
    let Some(start) = config.sim_clock else {
        return Ok((clock, None));
    };
    let token = config
        .operator_token
        .clone()
        .filter(|t| t.expose().len() >= 16)
        .ok_or_else(|| {
            anyhow::anyhow!("--sim-clock needs EVFLEX_OPERATOR_TOKEN (at least 16 characters)")
        })?;
    let sim = SimClock::new(start);
    tracing::warn!("simulated clock: the clock and the tick move only through /api/v1/operator");
    Ok((
        Arc::new(sim.clone()),
        Some(Arc::new(OperatorAccess { clock: sim, token })),
    ))
}

/// The operator routes (404 without `--sim-clock`).
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/operator/status", get(status))
        .route("/api/v1/operator/clock", put(set_clock))
        .route("/api/v1/operator/tick", post(tick))
        .route("/api/v1/operator/settle", post(settle))
        .route(
            "/api/v1/operator/registration-tokens",
            post(add_registration_token),
        )
        .route("/api/v1/operator/prices", put(put_prices))
}

/// Constant-time comparison (the token is a secret).
pub(super) fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn access(state: &AppState, headers: &HeaderMap) -> Result<Arc<OperatorAccess>, ApiError> {
    let Some(op) = state.operator.clone() else {
        return Err(ApiError::NotFound("not found".to_owned()));
    };
    let given = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthorized)?;
    if !same(given.as_bytes(), op.token.expose().as_bytes()) {
        return Err(ApiError::Unauthorized);
    }
    Ok(op)
}

async fn status(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let op = access(&state, &headers)?;
    Ok(Json(
        json!({"now": op.clock.now(), "chain": state.engine.chain.is_some()}),
    ))
}

#[derive(Deserialize)]
struct ClockReq {
    now: i64,
}

async fn set_clock(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let op = access(&state, &headers)?;
    let req: ClockReq = parse_body(&body)?;
    if req.now <= 0 {
        return Err(ApiError::BadRequest("now: Unix seconds".to_owned()));
    }
    op.clock.set(req.now);
    Ok(Json(json!({"now": req.now})))
}

#[derive(Deserialize, Default)]
struct TickReq {
    timestep: Option<u64>,
}

async fn tick(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let op = access(&state, &headers)?;
    let req: TickReq = if body.is_empty() {
        TickReq::default()
    } else {
        parse_body(&body)?
    };
    let timestep = req
        .timestep
        .unwrap_or_else(|| timestep_of(op.clock.now(), TIME_STEP_S));
    // On a simulated clock the caller reads the profiles as soon as this answers.
    let report = crate::engine::replan::tick_settled(&state.engine, timestep).await;
    Ok(Json(
        serde_json::to_value(&report).map_err(|e| ApiError::Internal(e.to_string()))?,
    ))
}

/// Plans every event waiting (the re-plans the event hooks recorded) at the simulated clock's
/// time and sends their profiles before answering: what the re-plan worker does within a second
/// on a real clock, for a caller that reads the profiles next (the continuous-time simulator).
async fn settle(State(state): State<AppState>, headers: HeaderMap) -> Result<StatusCode, ApiError> {
    access(&state, &headers)?;
    crate::engine::replan::settle(&state.engine, std::time::Duration::from_secs(30)).await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct TokenReq {
    token: String,
}

async fn add_registration_token(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<StatusCode, ApiError> {
    let op = access(&state, &headers)?;
    let req: TokenReq = parse_body(&body)?;
    if req.token.len() < 8 {
        return Err(ApiError::BadRequest(
            "token: at least 8 characters".to_owned(),
        ));
    }
    let mut conn = state.db.conn().await?;
    crate::store::parties::add_registration_token(&mut conn, &req.token, op.clock.now()).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
struct PricesReq {
    prices: Vec<(i64, i64)>,
}

async fn put_prices(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    access(&state, &headers)?;
    let req: PricesReq = parse_body(&body)?;
    let mut tx = state.db.begin().await?;
    crate::store::prices::put(&mut tx, &req.prices).await?;
    tx.commit()
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    Ok(Json(json!({"prices": req.prices.len()})))
}
