//! Audit and verification.
//!
//! - [`audit`]: compares the database with the chain: every group and charge point (SC1), every
//!   (group, timestep) schedule whose commit was enqueued (stored hashes against
//!   `StatusLedger.matches`) and every bill (`settled(sessionId)` and the amounts of its
//!   `SessionSettled` event). Returns one line per difference (`evflex audit` prints them and
//!   exits non-zero if there is any).
//! - [`verify_record`]: for one (group, timestep), recomputes the inputs and schedule hashes from
//!   the canonical inputs and the stored schedule, checks them (and the algorithm version implied
//!   by the published solve options) against the chain's commitment, and re-runs
//!   `evflex_schedule::check` (feasible, optimal within tolerance). `evflex verify` does this from
//!   the public API (`GET /api/v1/audit/groups/{G}/timesteps/{T}`) and an RPC URL only, so
//!   anyone can run it without trusting the operator.

use super::{Error, chain_algorithm_version, evse_status, parse_b256};
use crate::store::outbox::{self, StatusCommitPayload};
use crate::store::{Db, bills, groups, locations, schedules};
use alloy::primitives::{B256, U256};
use clap::Args;
use evflex_chain::{ChainClient, Deployment};
use evflex_schedule::{GroupInputs, Schedule, SolveOptions, hash};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// Everything needed to verify one (group, timestep), as `GET /api/v1/audit/groups/{G}/timesteps/{T}`
/// publishes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TimestepRecord {
    /// Group.
    pub group_id: i64,
    /// Timestep.
    pub timestep: i64,
    /// Stored inputs hash.
    pub inputs_hash: String,
    /// Stored schedule hash.
    pub schedule_hash: String,
    /// Stored algorithm version (`hash::algorithm_version` of the solve options).
    pub algorithm_version: String,
    /// The on-chain algorithm version id it maps to.
    pub chain_algorithm_version: String,
    /// Solve options the service uses (their hash must be `algorithm_version`).
    pub solve_options: SolveOptions,
    /// The canonical inputs.
    pub inputs: GroupInputs,
    /// The stored schedule.
    pub schedule: Schedule,
}

/// Reads the record of (group, timestep) from the database.
pub async fn timestep_record(
    db: &Db,
    opts: &SolveOptions,
    group_id: i64,
    timestep: i64,
) -> Result<Option<TimestepRecord>, Error> {
    let mut conn = db.conn().await?;
    let Some(s) = schedules::get(&mut conn, group_id, timestep).await? else {
        return Ok(None);
    };
    let params = parse_b256(&s.algorithm_version)?;
    Ok(Some(TimestepRecord {
        group_id,
        timestep,
        inputs_hash: s.inputs_hash,
        schedule_hash: s.schedule_hash,
        algorithm_version: s.algorithm_version,
        chain_algorithm_version: chain_algorithm_version(params).to_string(),
        solve_options: opts.clone(),
        inputs: serde_json::from_value(s.inputs)
            .map_err(|e| Error::Invalid(format!("stored inputs: {e}")))?,
        schedule: serde_json::from_value(s.schedule)
            .map_err(|e| Error::Invalid(format!("stored schedule: {e}")))?,
    }))
}

/// The result of a verification.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct VerifyReport {
    /// Everything passed.
    pub ok: bool,
    /// The recomputed inputs hash equals the stored one.
    pub inputs_hash_ok: bool,
    /// The recomputed schedule hash equals the stored one.
    pub schedule_hash_ok: bool,
    /// The solve options hash to the stored algorithm version.
    pub algorithm_ok: bool,
    /// The chain holds exactly the recomputed hashes (`None` without a chain).
    pub on_chain: Option<bool>,
    /// Broken rules found by `evflex_schedule::check`.
    pub violations: Vec<String>,
    /// Objective gap against a fresh solve (EUR).
    pub objective_gap_eur: Option<f64>,
    /// A one-line summary.
    pub message: String,
}

/// Verifies a record (see the module docs). `chain` is asked `matches` with the recomputed
/// hashes.
pub async fn verify_record(
    rec: &TimestepRecord,
    chain: Option<&ChainClient>,
) -> Result<VerifyReport, Error> {
    let inputs_hash = B256::from(hash::inputs_hash(&rec.inputs));
    let schedule_hash = B256::from(hash::schedule_hash(&rec.schedule));
    let algorithm = B256::from(hash::algorithm_version(&rec.solve_options));
    let mut r = VerifyReport {
        inputs_hash_ok: inputs_hash == parse_b256(&rec.inputs_hash)?,
        schedule_hash_ok: schedule_hash == parse_b256(&rec.schedule_hash)?,
        algorithm_ok: algorithm == parse_b256(&rec.algorithm_version)?,
        ..VerifyReport::default()
    };
    if let Some(c) = chain {
        r.on_chain = Some(
            c.matches(
                rec.group_id as u64,
                rec.timestep as u64,
                inputs_hash,
                schedule_hash,
                chain_algorithm_version(algorithm),
            )
            .await?,
        );
    }
    let (inputs, schedule, opts) = (
        rec.inputs.clone(),
        rec.schedule.clone(),
        rec.solve_options.clone(),
    );
    let check =
        tokio::task::spawn_blocking(move || evflex_schedule::check(&inputs, &schedule, &opts))
            .await
            .map_err(|e| Error::Invalid(format!("checker task: {e}")))?;
    r.violations = check.violations.iter().map(|v| format!("{v:?}")).collect();
    r.objective_gap_eur = check.objective_gap;
    r.ok = r.inputs_hash_ok
        && r.schedule_hash_ok
        && r.algorithm_ok
        && r.on_chain != Some(false)
        && r.violations.is_empty();
    let mut problems = Vec::new();
    if !r.inputs_hash_ok {
        problems.push("inputs hash differs from the stored one");
    }
    if !r.schedule_hash_ok {
        problems.push("schedule hash differs from the stored one");
    }
    if !r.algorithm_ok {
        problems.push("solve options do not hash to the algorithm version");
    }
    if r.on_chain == Some(false) {
        problems.push("the chain does not hold these hashes");
    }
    if !r.violations.is_empty() {
        problems.push("the schedule breaks the model's rules or is not optimal");
    }
    r.message = if problems.is_empty() {
        format!(
            "group {} timestep {}: hashes match{}, schedule feasible and optimal",
            rec.group_id,
            rec.timestep,
            if r.on_chain.is_some() {
                " the chain"
            } else {
                ""
            }
        )
    } else {
        format!(
            "group {} timestep {}: {}",
            rec.group_id,
            rec.timestep,
            problems.join("; ")
        )
    };
    Ok(r)
}

/// Compares the database with the chain; returns one line per difference.
#[tracing::instrument(skip_all)]
pub async fn audit(db: &Db, chain: &ChainClient) -> Result<Vec<String>, Error> {
    let mut diffs = Vec::new();
    let mut conn = db.conn().await?;
    // SC1: groups and charge points
    for g in groups::list(&mut conn).await? {
        let id = g.record.id;
        match chain.group(id as u64).await? {
            None => diffs.push(format!("group {id}: not registered on chain")),
            Some(c) if c.capacity_w != g.record.capacity_w.max(0) as u64 => diffs.push(format!(
                "group {id}: capacity {} W in the database, {} W on chain",
                g.record.capacity_w, c.capacity_w
            )),
            Some(_) => {}
        }
        for evse in locations::evses_of_group(&mut conn, id).await? {
            match chain.charge_point(evse.id as u64).await? {
                None => diffs.push(format!(
                    "charge point {} ({}): not registered on chain",
                    evse.id, evse.record.uid
                )),
                Some(cp) => {
                    let c = &cp.charge_point;
                    if c.group_id != id as u64 || c.evse_uid != evse.record.uid {
                        diffs.push(format!(
                            "charge point {} ({}): group/uid {}/{} on chain, {}/{} in the database",
                            evse.id, evse.record.uid, c.group_id, c.evse_uid, id, evse.record.uid
                        ));
                    }
                    if cp.active != (evse.record.status != "REMOVED") {
                        diffs.push(format!("charge point {}: active flag differs", evse.id));
                    }
                    if c.status != evse_status(&evse.record.status)
                        && evse.record.status == "REMOVED"
                    {
                        diffs.push(format!("charge point {}: status differs", evse.id));
                    }
                }
            }
        }
    }
    // SC2: every enqueued commit
    for row in outbox::list(&mut conn, Some(outbox::kind::STATUS_COMMIT), i64::MAX).await? {
        let Ok(p) = serde_json::from_str::<StatusCommitPayload>(&row.payload) else {
            diffs.push(format!("outbox row {}: unreadable payload", row.id));
            continue;
        };
        let what = format!("group {} timestep {}", p.group_id, p.timestep);
        match schedules::get(&mut conn, p.group_id, p.timestep).await? {
            None => diffs.push(format!("{what}: commit enqueued but no schedule stored")),
            Some(s) if s.inputs_hash != p.inputs_hash || s.schedule_hash != p.schedule_hash => {
                diffs.push(format!(
                    "{what}: stored schedule hashes differ from the enqueued commit"
                ));
            }
            Some(_) => {}
        }
        let on_chain = chain
            .matches(
                p.group_id as u64,
                p.timestep as u64,
                parse_b256(&p.inputs_hash)?,
                parse_b256(&p.schedule_hash)?,
                chain_algorithm_version(parse_b256(&p.algorithm_version)?),
            )
            .await?;
        if !on_chain {
            let committed = chain
                .commitment_of(p.group_id as u64, p.timestep as u64)
                .await?;
            diffs.push(if committed == B256::ZERO {
                format!(
                    "{what}: not committed on chain (outbox status {})",
                    row.status
                )
            } else {
                format!("{what}: committed on chain with other hashes")
            });
        }
    }
    // SC3: bills
    let to = chain.block_number().await?;
    let events = chain
        .settlement_events(chain.deployment().start_block, to)
        .await?;
    for b in bills::all(&mut conn, i64::MAX).await? {
        let sid = parse_b256(&b.chain_session_id)?;
        let settled = chain.is_settled(sid).await?;
        let ev = events.settled.iter().find(|e| e.session_id == sid);
        match (b.status.as_str(), settled) {
            ("settled", false) => diffs.push(format!(
                "bill {}: settled in the database, not on chain",
                b.cdr_key
            )),
            ("unbillable", _) => {}
            (s, false) => diffs.push(format!(
                "bill {}: not settled on chain (status {s})",
                b.cdr_key
            )),
            (s, true) if s != "settled" => diffs.push(format!(
                "bill {}: settled on chain, {s} in the database",
                b.cdr_key
            )),
            _ => {}
        }
        if let Some(e) = ev {
            let cost = U256::from(b.cost_micro_eur.max(0) as u64);
            if e.energy_wh != b.energy_wh as u64
                || e.credit_wh != b.credit_wh as u64
                || e.flexibility_wh != b.flexibility_wh as u64
                || e.cost != cost
            {
                diffs.push(format!(
                    "bill {}: amounts on chain differ from the database",
                    b.cdr_key
                ));
            }
        }
    }
    Ok(diffs)
}

/// `evflex audit`.
#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Database URL.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://evflex.sqlite?mode=rwc"
    )]
    pub database_url: String,
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "EVFLEX_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployment file.
    #[arg(
        long,
        env = "EVFLEX_DEPLOYMENT",
        default_value = "anvil/deployment.json"
    )]
    pub deployment: PathBuf,
}

/// `evflex verify`.
#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// Group id.
    #[arg(long)]
    pub group: i64,
    /// Timestep (Unix seconds / 900).
    #[arg(long)]
    pub timestep: i64,
    /// Base URL of the evflex API.
    #[arg(long, env = "EVFLEX_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// JSON-RPC URL of the chain.
    #[arg(long, env = "EVFLEX_RPC_URL", default_value = "http://127.0.0.1:8545")]
    pub rpc_url: String,
    /// Deployment file.
    #[arg(
        long,
        env = "EVFLEX_DEPLOYMENT",
        default_value = "anvil/deployment.json"
    )]
    pub deployment: PathBuf,
}

/// A read-only client (a throwaway key: reads never send).
pub async fn reader(rpc_url: &str, deployment: &std::path::Path) -> Result<ChainClient, Error> {
    let mut path = deployment.to_path_buf();
    if path.is_relative() && !path.exists() {
        path = evflex_chain::repo_root().join(path);
    }
    let deployment = Deployment::load(&path)?;
    let key = evflex_chain::wallet::random_signer()?;
    Ok(ChainClient::connect(rpc_url, deployment, key).await?)
}

/// Runs `evflex audit`; `Ok(false)` when there are differences.
pub async fn run_audit(args: &AuditArgs) -> anyhow::Result<bool> {
    let db = Db::connect(&args.database_url, 2).await?;
    let chain = reader(&args.rpc_url, &args.deployment).await?;
    let diffs = audit(&db, &chain).await?;
    for d in &diffs {
        println!("{d}");
    }
    println!("{} difference(s)", diffs.len());
    Ok(diffs.is_empty())
}

/// Runs `evflex verify`; `Ok(false)` when verification fails.
pub async fn run_verify(args: &VerifyArgs) -> anyhow::Result<bool> {
    let url = format!(
        "{}/api/v1/audit/groups/{}/timesteps/{}",
        args.api.trim_end_matches('/'),
        args.group,
        args.timestep
    );
    let resp = reqwest::get(&url).await?;
    anyhow::ensure!(resp.status().is_success(), "GET {url}: {}", resp.status());
    let rec: TimestepRecord = resp.json().await?;
    anyhow::ensure!(
        rec.group_id == args.group && rec.timestep == args.timestep,
        "the API answered for another group or timestep"
    );
    let chain = reader(&args.rpc_url, &args.deployment).await?;
    let report = verify_record(&rec, Some(&chain)).await?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    println!("{}", report.message);
    Ok(report.ok)
}
