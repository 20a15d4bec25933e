//! Audit routes (public: anyone may check what evflex committed): status commits, settlements,
//! one (group, timestep, revision)'s canonical inputs and schedule for `evflex verify`, and a
//! server-side verification for the cockpit. A timestep's revision 0 is its tick's schedule,
//! revisions 1, 2, … its event re-plans; each is committed on chain and verified on its own
//! (`?revision=R`, 0 when absent).

use super::error::{ApiError, parse_body};
use super::limits::{Class, RateLimits};
use crate::app::AppState;
use crate::chain::audit::{self, TimestepRecord, VerifyReport};
use crate::store::bills;
use crate::store::outbox;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use evflex_chain::WorkKind;
use evflex_chain::work::StatusCommitWork;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Entries of the public audit lists (newest first).
pub(super) const AUDIT_LIST_LEN: i64 = 500;

const SOLVER_BUSY: &str = "every solver slot is busy; retry in a few seconds";

/// Audit routes.
pub fn router(limits: &RateLimits) -> Router<AppState> {
    Router::new()
        .route("/api/v1/audit/commits", get(commits))
        .route(
            "/api/v1/audit/verify",
            post(verify).layer(limits.per_ip(Class::Verify)),
        )
        .route("/api/v1/audit/settlements", get(settlements))
        .route(
            "/api/v1/audit/groups/{group_id}/timesteps/{timestep}",
            get(timestep),
        )
        .route(
            "/api/v1/audit/groups/{group_id}/timesteps/{timestep}/verify",
            get(verify_commit).layer(limits.per_ip(Class::Verify)),
        )
        .route("/api/v1/audit/transactions/{tx_hash}", get(transaction))
}

/// Every (group, timestep, revision) status commit with its hashes and on-chain receipt.
#[utoipa::path(get, path = "/api/v1/audit/commits", tag = "audit", responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn commits(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = outbox::latest(&mut conn, WorkKind::StatusCommit.as_str(), AUDIT_LIST_LEN).await?;
    let mut out: Vec<Value> = rows
        .iter()
        .filter_map(|r| {
            let p: StatusCommitWork = serde_json::from_str(&r.payload).ok()?;
            Some(json!({
                "group_id": p.group_id,
                "timestep": p.timestep,
                "revision": p.revision,
                "inputs_hash": p.inputs_hash,
                "schedule_hash": p.schedule_hash,
                "params_hash": p.params_hash,
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

/// The newest settlements with their on-chain receipts, as anyone may see them: the bill's
/// on-chain session id (a hash), energy, price, cost, rewards and transaction. Nothing in it
/// names a session, a CDR, a charge point or a user: a CPO sees its own with those in
/// `GET /api/v1/cockpit/settlements`, a user theirs in the wallet.
#[utoipa::path(get, path = "/api/v1/audit/settlements", tag = "audit", responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn settlements(State(state): State<AppState>) -> Result<Json<Vec<Value>>, ApiError> {
    require_chain(&state)?;
    let mut conn = state.db.conn().await?;
    let rows = bills::latest(&mut conn, AUDIT_LIST_LEN).await?;
    Ok(Json(rows.iter().map(public_bill_json).collect()))
}

/// A bill without what would let a stranger act: its session, CDR and user address.
fn public_bill_json(b: &bills::BillRow) -> Value {
    let mut v = super::wallet::bill_json(b);
    if let Some(o) = v.as_object_mut() {
        for private in ["session_id", "cdr", "user_address"] {
            o.remove(private);
        }
    }
    v
}

async fn record(
    state: &AppState,
    group_id: i64,
    timestep: i64,
    revision: i64,
) -> Result<TimestepRecord, ApiError> {
    let opts = state.engine.solve_options();
    audit::revision_record(&state.db, &opts, group_id, timestep, revision)
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .ok_or_else(|| {
            ApiError::NotFound(format!(
                "no schedule for group {group_id} timestep {timestep} revision {revision}"
            ))
        })
}

/// `?revision=R` of the per-timestep audit routes.
#[derive(Debug, Default, Deserialize)]
struct RevisionQuery {
    /// 0 (the tick's schedule) when absent.
    revision: Option<i64>,
}

/// Canonical inputs and schedule of one (group, timestep, revision), for `evflex verify`, with
/// the timestep's last revision (`last_revision`) so a verifier can check them all.
#[utoipa::path(get, path = "/api/v1/audit/groups/{group_id}/timesteps/{timestep}", tag = "audit", params(("group_id" = i64, Path, description = "Group id"), ("timestep" = i64, Path, description = "Absolute timestep (Unix seconds / 900)"), ("revision" = Option<i64>, Query, description = "Revision within the timestep: 0 (default) for the tick's schedule, 1, 2, … for the event re-plans")), responses((status = 200, body = serde_json::Value), (status = 503, description = "No chain configured")))]
async fn timestep(
    State(state): State<AppState>,
    Path((group_id, timestep)): Path<(i64, i64)>,
    Query(q): Query<RevisionQuery>,
) -> Result<Json<TimestepRecord>, ApiError> {
    let revision = q.revision.unwrap_or(0);
    Ok(Json(record(&state, group_id, timestep, revision).await?))
}

#[derive(Deserialize)]
struct VerifyReq {
    group_id: i64,
    timestep: i64,
    /// 0 (the tick's schedule) when absent.
    #[serde(default)]
    revision: i64,
}

/// Runs the verify check for `{group_id, timestep, revision}` (revision 0, the tick's, when absent): hashes, chain commitment, feasibility and optimality.
#[utoipa::path(post, path = "/api/v1/audit/verify", tag = "audit", request_body = serde_json::Value, responses((status = 200, body = serde_json::Value), (status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody), (status = 503, description = "No chain configured")))]
async fn verify(
    State(state): State<AppState>,
    body: Bytes,
) -> Result<Json<VerifyReport>, ApiError> {
    let req: VerifyReq = parse_body(&body)?;
    let rec = record(&state, req.group_id, req.timestep, req.revision).await?;
    let chain = state.engine.chain.as_ref().map(|c| c.operator.clone());
    // The re-solve takes one of the engine's solve slots, as a tick does: strangers cannot pile
    // up solver work beyond the cores.
    let _slot = super::limits::slot(&state.engine.solve_slots, SOLVER_BUSY).await?;
    let report = audit::verify_record(&rec, chain.as_deref())
        .await
        .map_err(|e| ApiError::Unavailable(format!("verification failed to run: {e}")))?;
    Ok(Json(report))
}

/// On-chain records exist only on a server that writes to a chain: without one the audit lists
/// would show commits and settlements that are never sent, so they answer 503 instead.
pub(super) fn require_chain(state: &AppState) -> Result<(), ApiError> {
    match state.engine.chain {
        Some(_) => Ok(()),
        None => Err(ApiError::Unavailable(
            "this server runs without a chain".to_owned(),
        )),
    }
}

/// The verdict on one committed (group, timestep, revision), as the cockpit's "Verify" button
/// shows it.
#[derive(Debug, Serialize)]
struct CommitVerification {
    group_id: i64,
    timestep: i64,
    /// 0 for the tick's schedule, 1, 2, … for the event re-plans.
    revision: i64,
    /// Everything below passed.
    ok: bool,
    /// The canonical inputs hash to the stored (and committed) inputs hash.
    inputs_hash_ok: bool,
    /// The stored schedule hashes to the stored (and committed) schedule hash.
    schedule_hash_ok: bool,
    /// The published solve options hash to the stored params hash.
    algorithm_ok: bool,
    /// StatusLedger holds exactly these hashes for (group, timestep, revision).
    on_chain: Option<bool>,
    /// The schedule keeps every rule of the model (windows, maxima, capacity, energy, …).
    feasible: bool,
    /// No better schedule exists within the checker's tolerance; `None` when no comparison
    /// could be made (a fallback schedule).
    optimal: Option<bool>,
    /// Objective gap against a fresh solve (EUR).
    objective_gap_eur: Option<f64>,
    /// Broken rules, if any.
    violations: Vec<String>,
    /// A one-line summary.
    message: String,
}

/// Violations that concern optimality rather than feasibility (`evflex_schedule::check`).
fn is_optimality(violation: &str) -> bool {
    violation.starts_with("NotOptimal") || violation.starts_with("ShortfallNotMinimal")
}

/// Runs `evflex verify` for one commit on the server: recomputes the inputs and schedule hashes,
/// asks StatusLedger whether it holds them, and re-checks the schedule (feasible, optimal
/// within tolerance). 503 without a chain or when the chain cannot be asked.
#[utoipa::path(get, path = "/api/v1/audit/groups/{group_id}/timesteps/{timestep}/verify", tag = "audit",
    params(("group_id" = i64, Path, description = "Group id"), ("timestep" = i64, Path, description = "Absolute timestep (Unix seconds / 900)"), ("revision" = Option<i64>, Query, description = "Revision within the timestep: 0 (default) for the tick's schedule, 1, 2, … for the event re-plans")),
    responses((status = 429, description = "Rate limited or busy; the message says when to retry", body = super::error::ErrorBody),
        (status = 200, description = "{group_id, timestep, revision, ok, inputs_hash_ok, schedule_hash_ok, algorithm_ok, on_chain, feasible, optimal, objective_gap_eur, violations, message}", body = serde_json::Value),
        (status = 404, description = "No schedule stored for (group, timestep, revision)"), (status = 503, description = "No chain configured, or the chain is unavailable")))]
async fn verify_commit(
    State(state): State<AppState>,
    Path((group_id, timestep)): Path<(i64, i64)>,
    Query(q): Query<RevisionQuery>,
) -> Result<Json<CommitVerification>, ApiError> {
    require_chain(&state)?;
    let revision = q.revision.unwrap_or(0);
    let rec = record(&state, group_id, timestep, revision).await?;
    let chain = state.engine.chain.as_ref().map(|c| c.operator.clone());
    // The re-solve takes one of the engine's solve slots, as a tick does: strangers cannot pile
    // up solver work beyond the cores.
    let _slot = super::limits::slot(&state.engine.solve_slots, SOLVER_BUSY).await?;
    let report = audit::verify_record(&rec, chain.as_deref())
        .await
        .map_err(|e| {
            tracing::warn!(group_id, timestep, revision, error = %e, "verify: chain call failed");
            ApiError::Unavailable("the chain is unavailable".to_owned())
        })?;
    let feasible = !report.violations.iter().any(|v| !is_optimality(v));
    let not_optimal = report.violations.iter().any(|v| is_optimality(v));
    let optimal = if not_optimal {
        Some(false)
    } else {
        report.objective_gap_eur.map(|_| true)
    };
    Ok(Json(CommitVerification {
        group_id,
        timestep,
        revision,
        ok: report.ok,
        inputs_hash_ok: report.inputs_hash_ok,
        schedule_hash_ok: report.schedule_hash_ok,
        algorithm_ok: report.algorithm_ok,
        on_chain: report.on_chain,
        feasible,
        optimal,
        objective_gap_eur: report.objective_gap_eur,
        violations: report.violations,
        message: report.message,
    }))
}

/// One transaction's receipt from the chain (a local anvil has no block explorer: the pages link
/// a settlement or commit here).
#[utoipa::path(get, path = "/api/v1/audit/transactions/{tx_hash}", tag = "audit",
    params(("tx_hash" = String, Path, description = "Transaction hash (0x + 64 hex digits)")),
    responses((status = 200, description = "{tx_hash, chain_id, block_number, success, from, to, gas_used, logs, receipt}", body = serde_json::Value),
        (status = 404, description = "No such transaction"), (status = 503, description = "No chain configured, or the chain is unavailable")))]
async fn transaction(
    State(state): State<AppState>,
    Path(tx_hash): Path<String>,
) -> Result<Json<Value>, ApiError> {
    use alloy::providers::Provider;
    let ctx = state
        .engine
        .chain
        .as_ref()
        .ok_or_else(|| ApiError::Unavailable("this server runs without a chain".to_owned()))?;
    let hash: alloy::primitives::B256 = tx_hash
        .parse()
        .map_err(|_| ApiError::BadRequest("tx_hash: not a 32-byte hex hash".to_owned()))?;
    let receipt = ctx
        .operator
        .provider()
        .get_transaction_receipt(hash)
        .await
        .map_err(|e| {
            tracing::warn!(error = %e, "transaction receipt: chain call failed");
            ApiError::Unavailable("the chain is unavailable".to_owned())
        })?
        .ok_or_else(|| ApiError::NotFound(format!("no transaction {hash}")))?;
    Ok(Json(json!({
        "tx_hash": hash.to_string(),
        "chain_id": ctx.deployment.chain_id,
        "block_number": receipt.block_number,
        "success": receipt.status(),
        "from": receipt.from.to_string(),
        "to": receipt.to.map(|a| a.to_string()),
        "gas_used": receipt.gas_used,
        "logs": receipt.logs().len(),
        "receipt": receipt,
    })))
}
