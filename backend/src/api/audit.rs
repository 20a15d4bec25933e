//! Audit routes (public: anyone may check what evflex committed): status commits, settlements,
//! one (group, timestep)'s canonical inputs and schedule for `evflex verify`, and a server-side
//! verification for the cockpit.

use super::error::{ApiError, parse_body};
use crate::app::AppState;
use crate::chain::audit::{self, TimestepRecord, VerifyReport};
use crate::store::bills;
use crate::store::outbox::{self, StatusCommitPayload};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};

/// Audit routes.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit/commits", get(commits))
        .route("/api/v1/audit/verify", post(verify))
        .route("/api/v1/audit/settlements", get(settlements))
        .route(
            "/api/v1/audit/groups/{group_id}/timesteps/{timestep}",
            get(timestep),
        )
}

/// Every (group, timestep) status commit with its hashes and on-chain receipt.
#[utoipa::path(get, path = "/api/v1/audit/commits", tag = "audit", responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn commits(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = outbox::list(&mut conn, Some(outbox::kind::STATUS_COMMIT), 100_000).await?;
    let mut out: Vec<Value> = rows
        .iter()
        .rev()
        .take(500)
        .filter_map(|r| {
            let p: StatusCommitPayload = serde_json::from_str(&r.payload).ok()?;
            Some(json!({
                "group_id": p.group_id,
                "timestep": p.timestep,
                "inputs_hash": p.inputs_hash,
                "schedule_hash": p.schedule_hash,
                "algorithm_version": p.algorithm_version,
                "members": p.members.len(),
                "status": r.status,
                "tx_hash": r.tx_hash,
                "block_number": r.block_number,
                "error": r.error,
            }))
        })
        .collect();
    out.shrink_to_fit();
    Ok(Json(out))
}

/// Every settlement with its on-chain receipt.
#[utoipa::path(get, path = "/api/v1/audit/settlements", tag = "audit", responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn settlements(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = bills::all(&mut conn, 100_000).await?;
    Ok(Json(
        rows.iter()
            .rev()
            .take(500)
            .map(super::wallet::bill_json)
            .collect(),
    ))
}

async fn record(
    state: &AppState,
    group_id: i64,
    timestep: i64,
) -> Result<TimestepRecord, ApiError> {
    audit::timestep_record(&state.db, &state.engine.solve_options(), group_id, timestep)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no schedule for group {group_id} timestep {timestep}"
            ))
        })
}

/// Canonical inputs and schedule of one (group, timestep), for `evflex verify`.
#[utoipa::path(get, path = "/api/v1/audit/groups/{group_id}/timesteps/{timestep}", tag = "audit", params(("group_id" = i64, Path, description = "Group id"), ("timestep" = i64, Path, description = "Absolute timestep (Unix seconds / 900)")), responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn timestep(
    State(state): State<AppState>,
    Path((group_id, timestep)): Path<(i64, i64)>,
) -> Result<Json<TimestepRecord>, ApiError> {
    Ok(Json(record(&state, group_id, timestep).await?))
}

#[derive(Deserialize)]
struct VerifyReq {
    group_id: i64,
    timestep: i64,
}

/// Runs the verify check for `{group_id, timestep}`: hashes, chain commitment, feasibility and optimality.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit", request_body = serde_json::Value, responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn verify(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<VerifyReport>, ApiError> {
    let req: VerifyReq = parse_body(&body)?;
    let rec = record(&state, req.group_id, req.timestep).await?;
    let chain = state.chain.as_ref().map(|c| c.operator.clone());
    let report = audit::verify_record(&rec, chain.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("verification failed to run: {e}")))?;
    Ok(Json(report))
}

/// On-chain records exist only on a server that writes to a chain: without one the audit lists
/// would show commits and settlements that are never sent, so they answer 503 instead.
pub(super) fn require_chain(state: &AppState) -> Result<(), ApiError> {
    match state.chain {
        Some(_) => Ok(()),
        None => Err(ApiError::Unavailable(
            "this server runs without a chain".to_owned(),
        )),
    }
}
