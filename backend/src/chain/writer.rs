//! The chain writer: drains `chain_outbox` in id order and puts each row's work on chain with the
//! operator key, marking a row `done` only with a receipt (or when the chain is found to hold the
//! work already).
//!
//! # One pass ([`Writer::run_once`])
//!
//! 1. Rows left `sent` (a previous writer broadcast their transaction and stopped before
//!    recording the receipt) are resolved first: a successful receipt marks them `done`; a
//!    transaction the node still holds unmined is looked at again later; anything else (a
//!    failed or vanished transaction) goes back to `pending`, where step 2 checks the chain
//!    before sending. So a restarted writer never loses work and never records it twice.
//! 2. Due `pending` rows, in id order, in runs of one kind:
//!    - `status_commit`: consecutive rows of one timestep go into one `commitBatch`. Each is
//!      checked first: already committed with the same hashes → `done` (nothing sent);
//!      committed with other hashes → `failed` (`CommitConflict`). If the batch reverts, its rows
//!      are retried one by one so only the offending row fails.
//!    - `settlement`: consecutive signed bills go into one `settleBatch`; the contract skips the
//!      bills it refuses and names the reason. `EnergyBillingInsufficientBalance` keeps the row
//!      `pending` with note `awaiting funds` (woken by a top-up, else retried at the longest
//!      back-off); other reasons fail the row.
//!    - `asset_upsert`, `consent`, `revocation`: one call each through the idempotent client.
//! 3. Status commits and settlements are marked `sent` with their transaction hash *before* the
//!    receipt wait.
//!
//! Retryable errors (transport, receipt timeout) leave the row `pending` with `attempts + 1` and
//! `next_attempt_at = now + min(base · 2^attempts, max)`, and end the pass (the chain is likely
//! unreachable). Non-retryable errors mark the row `failed` with the decoded custom error's name
//! and the queue moves on.

use super::{ChainContext, Error, chain_algorithm_version, evse_status, parse_b256, power_type};
use crate::billing::SettlementWork;
use crate::domain::Clock;
use crate::store::outbox::{AssetPayload, StatusCommitPayload, kind};
use crate::store::outbox_drain::{self as drain, DrainRow, Receipt};
use crate::store::{Db, bills, groups, locations};
use alloy::contract::{CallBuilder, CallDecoder};
use alloy::primitives::{B256, Bytes};
use alloy::providers::{DynProvider, PendingTransactionError, Provider, WatchTxError};
use alloy::rpc::types::Log;
use alloy::sol_types::SolEvent;
use evflex_chain::bindings::{EnergyBilling, StatusLedger};
use evflex_chain::{
    Bill, ChainError, ChargePoint, Consent, Contract, Group, MemberStatus, Revocation, TxInfo,
    WriteOutcome, decode_call_error, pack_members,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

/// Outbox kind of a signed consent relayed by the operator.
pub const CONSENT: &str = "consent";
/// Outbox kind of a signed consent revocation relayed by the operator.
pub const REVOCATION: &str = "revocation";

/// Payload of kinds `consent` and `revocation`: the user's EIP-712 message and signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentWork {
    /// The user's address.
    pub user: String,
    /// Scope (`0x`-hex bytes32).
    pub scope: String,
    /// Expiry (Unix seconds; 0 for a revocation).
    pub expiry: u64,
    /// Consent nonce.
    pub nonce: u64,
    /// The user's signature (`0x`-hex).
    pub signature: String,
}

/// What one pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PassReport {
    /// Rows marked done (mined, or found done on chain).
    pub done: usize,
    /// Transactions sent.
    pub transactions: usize,
    /// Rows left for a retry (retryable error).
    pub retried: usize,
    /// Settlements awaiting funds.
    pub awaiting_funds: usize,
    /// Rows failed for good.
    pub failed: usize,
}

impl PassReport {
    /// Whether the pass changed nothing (the outbox is idle).
    pub fn is_idle(&self) -> bool {
        self.done + self.transactions + self.retried + self.failed + self.awaiting_funds == 0
    }
}

/// The outbox writer.
pub struct Writer {
    ctx: Arc<ChainContext>,
    db: Db,
    clock: Arc<dyn Clock>,
    registered_algorithms: tokio::sync::Mutex<HashSet<B256>>,
    abandon_after_send: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

enum Step {
    Continue,
    Stop,
}

fn hex_tx(tx: &TxInfo) -> Receipt {
    Receipt {
        tx_hash: Some(tx.tx_hash.to_string()),
        block_number: Some(tx.block_number as i64),
        gas_used: Some(tx.gas_used as i64),
    }
}

fn err_name(e: &ChainError) -> String {
    match e.contract_error() {
        Some(c) => c.name(),
        None => e.to_string(),
    }
}

impl Writer {
    /// A writer over `db` sending through `ctx`'s operator, timing back-off with `clock`.
    pub fn new(ctx: Arc<ChainContext>, db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            ctx,
            db,
            clock,
            registered_algorithms: tokio::sync::Mutex::new(HashSet::new()),
            abandon_after_send: false,
        }
    }

    /// Test hook simulating a crash between broadcast and receipt: after marking rows `sent`,
    /// the pass stops with [`Error::Invalid`]("abandoned") without waiting for the receipt
    /// (drop the writer afterwards, as a killed process would be gone).
    pub fn abandon_after_send(mut self) -> Self {
        self.abandon_after_send = true;
        self
    }

    /// Drains until a pass does nothing (or `max_passes`); returns the summed report.
    pub async fn run_until_idle(&self, max_passes: usize) -> Result<PassReport, Error> {
        let mut total = PassReport::default();
        for _ in 0..max_passes {
            let r = self.run_once().await?;
            if r.is_idle() {
                break;
            }
            total.done += r.done;
            total.transactions += r.transactions;
            total.retried += r.retried;
            total.awaiting_funds += r.awaiting_funds;
            total.failed += r.failed;
            if r.retried > 0 {
                break;
            }
        }
        Ok(total)
    }

    /// Runs passes until `shutdown` resolves, pausing `writer_interval_ms` when idle.
    pub async fn run(self, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        let idle = Duration::from_millis(self.ctx.config.writer_interval_ms.max(10));
        loop {
            let pause = match self.run_once().await {
                Ok(r) if !r.is_idle() && r.retried == 0 => Duration::ZERO,
                Ok(_) => idle,
                Err(e) => {
                    tracing::warn!(error = %e, "chain writer pass failed");
                    idle
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn backoff(&self, attempts: i64) -> i64 {
        let c = &self.ctx.config;
        let factor = 1i64 << attempts.clamp(0, 20);
        c.writer_backoff_s
            .max(1)
            .saturating_mul(factor)
            .min(c.writer_max_backoff_s.max(1))
    }

    /// One pass (see the module docs).
    #[tracing::instrument(skip_all)]
    pub async fn run_once(&self) -> Result<PassReport, Error> {
        let mut report = PassReport::default();
        let now = self.clock.now();
        let rows = {
            let mut conn = self.db.conn().await?;
            drain::due(&mut conn, now, 200).await?
        };
        for row in rows.iter().filter(|r| r.status == drain::SENT) {
            if let Step::Stop = self.resolve_sent(row, &mut report).await? {
                return Ok(report);
            }
        }
        let rows: Vec<DrainRow> = {
            let mut conn = self.db.conn().await?;
            drain::due(&mut conn, now, 200).await?
        }
        .into_iter()
        .filter(|r| r.status == drain::PENDING)
        .collect();
        let mut i = 0;
        while i < rows.len() {
            let kind = rows[i].kind.as_str();
            let mut j = i + 1;
            let step = match kind {
                kind::STATUS_COMMIT => {
                    let ts = timestep_of(&rows[i]);
                    while j < rows.len()
                        && rows[j].kind == kind::STATUS_COMMIT
                        && timestep_of(&rows[j]) == ts
                        && j - i < 50
                    {
                        j += 1;
                    }
                    self.status_batch(&rows[i..j], &mut report).await?
                }
                kind::SETTLEMENT => {
                    while j < rows.len() && rows[j].kind == kind::SETTLEMENT && j - i < 50 {
                        j += 1;
                    }
                    self.settlement_batch(&rows[i..j], &mut report).await?
                }
                _ => self.single(&rows[i], &mut report).await?,
            };
            if let Step::Stop = step {
                break;
            }
            i = j;
        }
        if !report.is_idle() {
            tracing::info!(?report, "chain writer pass");
        }
        Ok(report)
    }

    // ------------------------------------------------------------------ bookkeeping

    async fn done(&self, id: i64, receipt: &Receipt, note: Option<&str>) -> Result<(), Error> {
        let mut conn = self.db.conn().await?;
        drain::mark_done(&mut conn, id, receipt, note, self.clock.now()).await?;
        Ok(())
    }

    async fn fail(
        &self,
        row: &DrainRow,
        reason: &str,
        report: &mut PassReport,
    ) -> Result<(), Error> {
        tracing::warn!(id = row.id, kind = %row.kind, key = %row.dedupe_key, reason, "chain work failed");
        let mut conn = self.db.conn().await?;
        drain::mark_failed(&mut conn, row.id, reason, self.clock.now()).await?;
        report.failed += 1;
        Ok(())
    }

    async fn retry(
        &self,
        rows: &[DrainRow],
        e: &ChainError,
        report: &mut PassReport,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut conn = self.db.conn().await?;
        for row in rows {
            let next = now + self.backoff(row.attempts);
            tracing::warn!(id = row.id, key = %row.dedupe_key, error = %e, next, "chain write will be retried");
            drain::retry_later(
                &mut conn,
                row.id,
                Some(&e.to_string()),
                row.note.as_deref(),
                next,
                now,
            )
            .await?;
            report.retried += 1;
        }
        Ok(())
    }

    /// Handles an error of a write of `rows`: retry, or fail them all.
    async fn on_error(
        &self,
        rows: &[DrainRow],
        e: ChainError,
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        if e.is_retryable() {
            self.retry(rows, &e, report).await?;
            Ok(Step::Stop)
        } else {
            let name = err_name(&e);
            for row in rows {
                self.fail(row, &name, report).await?;
            }
            Ok(Step::Continue)
        }
    }

    /// Broadcasts `call` as the operator, marks `ids` `sent` with its hash, then waits for the
    /// receipt. Returns the mined transaction and its logs.
    async fn send_marking<D: CallDecoder>(
        &self,
        contract: Contract,
        method: &'static str,
        call: CallBuilder<&DynProvider, D>,
        ids: &[i64],
    ) -> Result<Result<(TxInfo, Vec<Log>), ChainError>, Error> {
        let pending = {
            let _guard = self.ctx.send_lock.lock().await;
            match call.send().await {
                Ok(p) => p,
                Err(e) => return Ok(Err(decode_call_error(contract, method, e))),
            }
        };
        let tx_hash = *pending.tx_hash();
        {
            let mut conn = self.db.conn().await?;
            drain::mark_sent(&mut conn, ids, &tx_hash.to_string(), self.clock.now()).await?;
        }
        if self.abandon_after_send {
            return Err(Error::Invalid(
                "abandoned after send (test hook)".to_owned(),
            ));
        }
        let timeout = Duration::from_secs(self.ctx.config.receipt_timeout_s);
        let receipt = match pending.with_timeout(Some(timeout)).get_receipt().await {
            Ok(r) => r,
            Err(PendingTransactionError::TxWatcher(WatchTxError::Timeout)) => {
                return Ok(Err(ChainError::ReceiptTimeout {
                    tx_hash,
                    timeout_s: timeout.as_secs(),
                }));
            }
            Err(e) => return Ok(Err(ChainError::Rpc(format!("waiting for a receipt: {e}")))),
        };
        let info = TxInfo {
            tx_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        };
        if !receipt.status() {
            return Ok(Err(ChainError::FailedOnChain {
                contract,
                method,
                tx_hash,
                block_number: info.block_number,
            }));
        }
        Ok(Ok((info, receipt.inner.logs().to_vec())))
    }

    // ------------------------------------------------------------------ sent rows

    async fn resolve_sent(&self, row: &DrainRow, report: &mut PassReport) -> Result<Step, Error> {
        let now = self.clock.now();
        let Some(hash) = row.tx_hash.as_deref().and_then(|h| h.parse::<B256>().ok()) else {
            let mut conn = self.db.conn().await?;
            drain::retry_later(
                &mut conn,
                row.id,
                Some("sent without a hash"),
                None,
                now,
                now,
            )
            .await?;
            return Ok(Step::Continue);
        };
        let provider = self.ctx.operator.provider();
        let receipt = match provider.get_transaction_receipt(hash).await {
            Ok(r) => r,
            Err(e) => {
                self.retry(
                    std::slice::from_ref(row),
                    &ChainError::Rpc(e.to_string()),
                    report,
                )
                .await?;
                return Ok(Step::Stop);
            }
        };
        match receipt {
            Some(r) if r.status() => {
                let info = TxInfo {
                    tx_hash: hash,
                    block_number: r.block_number.unwrap_or_default(),
                    gas_used: r.gas_used,
                };
                if row.kind == kind::SETTLEMENT {
                    // Settled by that transaction, or skipped by it: let the pending path ask
                    // the contract (`settled(sessionId)`) and decide.
                    let mut conn = self.db.conn().await?;
                    drain::retry_later(&mut conn, row.id, None, row.note.as_deref(), now, now)
                        .await?;
                    return Ok(Step::Continue);
                }
                tracing::info!(id = row.id, %hash, "sent row resolved by its receipt");
                self.done(row.id, &hex_tx(&info), None).await?;
                report.done += 1;
            }
            Some(_) => {
                let mut conn = self.db.conn().await?;
                drain::retry_later(
                    &mut conn,
                    row.id,
                    Some("transaction failed on chain"),
                    None,
                    now,
                    now,
                )
                .await?;
            }
            None => match provider.get_transaction_by_hash(hash).await {
                Ok(Some(_)) => {
                    let mut conn = self.db.conn().await?;
                    let next = now + self.backoff(0);
                    drain::check_later(&mut conn, row.id, "transaction not mined yet", next, now)
                        .await?;
                    report.retried += 1;
                }
                Ok(None) => {
                    let mut conn = self.db.conn().await?;
                    drain::retry_later(
                        &mut conn,
                        row.id,
                        Some("transaction vanished"),
                        None,
                        now,
                        now,
                    )
                    .await?;
                }
                Err(e) => {
                    self.retry(
                        std::slice::from_ref(row),
                        &ChainError::Rpc(e.to_string()),
                        report,
                    )
                    .await?;
                    return Ok(Step::Stop);
                }
            },
        }
        Ok(Step::Continue)
    }

    // ------------------------------------------------------------------ status commits

    async fn chain_version(&self, stored: &str) -> Result<B256, Error> {
        let params = parse_b256(stored)?;
        let version = chain_algorithm_version(params);
        let mut known = self.registered_algorithms.lock().await;
        if !known.contains(&version) {
            if !self.ctx.operator.is_algorithm_usable(version).await? {
                self.ctx.register_algorithm_params(params).await?;
            }
            known.insert(version);
        }
        Ok(version)
    }

    async fn commit_input(
        &self,
        p: &StatusCommitPayload,
    ) -> Result<evflex_chain::StatusCommitInput, Error> {
        let mut members = Vec::with_capacity(p.members.len());
        {
            let mut conn = self.db.conn().await?;
            let group = groups::get(&mut conn, p.group_id)
                .await?
                .ok_or_else(|| Error::Invalid(format!("group {} is unknown", p.group_id)))?;
            let (cc, party) = (&group.record.country_code, &group.record.party_id);
            for m in &p.members {
                let evse = locations::get_evse(&mut conn, cc, party, &m.evse_uid)
                    .await?
                    .ok_or_else(|| Error::Invalid(format!("EVSE {} is unknown", m.evse_uid)))?;
                let u32c = |v: i64| v.clamp(0, i64::from(u32::MAX)) as u32;
                members.push(MemberStatus {
                    cp_id: evse.id as u32,
                    status: evse_status(&m.status) as u8,
                    setpoint_w: u32c(m.setpoint_w),
                    measured_w: u32c(m.measured_w),
                    energy_left_wh: u32c(m.energy_left_wh),
                    time_left_s: u32c(m.time_left_s),
                });
            }
        }
        Ok(evflex_chain::StatusCommitInput {
            group_id: p.group_id as u64,
            timestep: p.timestep as u64,
            inputs_hash: parse_b256(&p.inputs_hash)?,
            schedule_hash: parse_b256(&p.schedule_hash)?,
            algorithm_version: self.chain_version(&p.algorithm_version).await?,
            members,
        })
    }

    async fn status_batch(
        &self,
        rows: &[DrainRow],
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let op = &self.ctx.operator;
        let mut todo: Vec<(DrainRow, evflex_chain::StatusCommitInput)> = Vec::new();
        for row in rows {
            let input = match serde_json::from_str::<StatusCommitPayload>(&row.payload) {
                Ok(p) => match self.commit_input(&p).await {
                    Ok(i) => i,
                    Err(Error::Chain(e)) => return self.on_error(rows, *e, report).await,
                    Err(e) => {
                        self.fail(row, &e.to_string(), report).await?;
                        continue;
                    }
                },
                Err(e) => {
                    self.fail(row, &format!("bad payload: {e}"), report).await?;
                    continue;
                }
            };
            let commitment = match op.commitment_of(input.group_id, input.timestep).await {
                Ok(c) => c,
                Err(e) => return self.on_error(rows, e, report).await,
            };
            if commitment == B256::ZERO {
                todo.push((row.clone(), input));
                continue;
            }
            match op
                .matches(
                    input.group_id,
                    input.timestep,
                    input.inputs_hash,
                    input.schedule_hash,
                    input.algorithm_version,
                )
                .await
            {
                Ok(true) => {
                    self.done(row.id, &Receipt::default(), Some("already on chain"))
                        .await?;
                    report.done += 1;
                }
                Ok(false) => self.fail(row, "CommitConflict", report).await?,
                Err(e) => return self.on_error(rows, e, report).await,
            }
        }
        if todo.is_empty() {
            return Ok(Step::Continue);
        }
        let commits = todo
            .iter()
            .map(|(_, c)| evflex_chain::bindings::StatusCommit {
                groupId: c.group_id,
                timestep: c.timestep,
                inputsHash: c.inputs_hash,
                scheduleHash: c.schedule_hash,
                algorithmVersion: c.algorithm_version,
                members: pack_members(&c.members),
            })
            .collect::<Vec<_>>();
        let ledger = StatusLedger::new(
            self.ctx.deployment.contracts.status_ledger,
            op.provider().clone(),
        );
        let ids: Vec<i64> = todo.iter().map(|(r, _)| r.id).collect();
        let call = ledger.commitBatch(commits.clone());
        match self
            .send_marking(Contract::StatusLedger, "commitBatch", call, &ids)
            .await?
        {
            Ok((tx, _)) => {
                report.transactions += 1;
                for id in ids {
                    self.done(id, &hex_tx(&tx), None).await?;
                    report.done += 1;
                }
                Ok(Step::Continue)
            }
            Err(e) if e.is_retryable() => {
                let rows: Vec<DrainRow> = todo.into_iter().map(|(r, _)| r).collect();
                self.retry(&rows, &e, report).await?;
                Ok(Step::Stop)
            }
            Err(e) if todo.len() == 1 => {
                let name = err_name(&e);
                self.fail(&todo[0].0, &name, report).await?;
                Ok(Step::Continue)
            }
            Err(e) => {
                tracing::warn!(error = %e, "status batch refused; committing one by one");
                for (row, commit) in todo.iter().zip(commits) {
                    let call = ledger.commitBatch(vec![commit]);
                    match self
                        .send_marking(Contract::StatusLedger, "commitBatch", call, &[row.0.id])
                        .await?
                    {
                        Ok((tx, _)) => {
                            report.transactions += 1;
                            self.done(row.0.id, &hex_tx(&tx), None).await?;
                            report.done += 1;
                        }
                        Err(e) => {
                            if let Step::Stop = self
                                .on_error(std::slice::from_ref(&row.0), e, report)
                                .await?
                            {
                                return Ok(Step::Stop);
                            }
                        }
                    }
                }
                Ok(Step::Continue)
            }
        }
    }

    // ------------------------------------------------------------------ settlements

    async fn settlement_batch(
        &self,
        rows: &[DrainRow],
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let op = &self.ctx.operator;
        let now = self.clock.now();
        let mut todo: Vec<(DrainRow, Bill, Bytes)> = Vec::new();
        for row in rows {
            let work: SettlementWork = match serde_json::from_str(&row.payload) {
                Ok(w) => w,
                Err(e) => {
                    self.fail(row, &format!("bad payload: {e}"), report).await?;
                    continue;
                }
            };
            let Some(signed) = work.bill else {
                self.fail(
                    row,
                    "no signed bill (the CDR arrived without a chain or without a user wallet)",
                    report,
                )
                .await?;
                continue;
            };
            let (bill, sig) = match signed.to_bill() {
                Ok(b) => b,
                Err(e) => {
                    self.fail(row, &e.to_string(), report).await?;
                    continue;
                }
            };
            match op.is_settled(bill.sessionId).await {
                Ok(true) => {
                    self.done(
                        row.id,
                        &Receipt::default(),
                        Some("already settled on chain"),
                    )
                    .await?;
                    self.bill_status(&bill.sessionId, "settled", None).await?;
                    report.done += 1;
                }
                Ok(false) => todo.push((row.clone(), bill, sig)),
                Err(e) => return self.on_error(rows, e, report).await,
            }
        }
        if todo.is_empty() {
            return Ok(Step::Continue);
        }
        let billing = EnergyBilling::new(
            self.ctx.deployment.contracts.energy_billing,
            op.provider().clone(),
        );
        let ids: Vec<i64> = todo.iter().map(|(r, _, _)| r.id).collect();
        let call = billing.settleBatch(
            todo.iter().map(|(_, b, _)| b.clone()).collect(),
            todo.iter().map(|(_, _, s)| s.clone()).collect(),
        );
        let (tx, logs) = match self
            .send_marking(Contract::EnergyBilling, "settleBatch", call, &ids)
            .await?
        {
            Ok(r) => r,
            Err(e) => {
                let rows: Vec<DrainRow> = todo.into_iter().map(|(r, _, _)| r).collect();
                return self.on_error(&rows, e, report).await;
            }
        };
        report.transactions += 1;
        let address = self.ctx.deployment.contracts.energy_billing;
        let mut settled = HashSet::new();
        let mut skipped = std::collections::HashMap::new();
        for log in logs.iter().filter(|l| l.address() == address) {
            if let Ok(ev) = EnergyBilling::SessionSettled::decode_log(&log.inner) {
                settled.insert(ev.sessionId);
            } else if let Ok(ev) = EnergyBilling::SettlementSkipped::decode_log(&log.inner) {
                let name = evflex_chain::error::billing_error_name(ev.reason.0)
                    .map_or_else(|| format!("0x{}", hex::encode(ev.reason.0)), str::to_owned);
                skipped.insert(ev.sessionId, name);
            }
        }
        for (row, bill, _) in &todo {
            if settled.contains(&bill.sessionId) {
                self.done(row.id, &hex_tx(&tx), None).await?;
                self.bill_status(&bill.sessionId, "settled", Some(&tx))
                    .await?;
                report.done += 1;
            } else {
                let reason = skipped
                    .get(&bill.sessionId)
                    .cloned()
                    .unwrap_or_else(|| "skipped without a reason".to_owned());
                if reason == "EnergyBillingInsufficientBalance" {
                    let next = now + self.ctx.config.writer_max_backoff_s.max(1);
                    let mut conn = self.db.conn().await?;
                    drain::retry_later(
                        &mut conn,
                        row.id,
                        Some(&reason),
                        Some(drain::AWAITING_FUNDS),
                        next,
                        now,
                    )
                    .await?;
                    drop(conn);
                    self.bill_status(&bill.sessionId, "awaiting_funds", None)
                        .await?;
                    report.awaiting_funds += 1;
                } else if reason == "EnergyBillingAlreadySettled" {
                    self.done(
                        row.id,
                        &Receipt::default(),
                        Some("already settled on chain"),
                    )
                    .await?;
                    self.bill_status(&bill.sessionId, "settled", None).await?;
                    report.done += 1;
                } else {
                    self.fail(row, &reason, report).await?;
                    self.bill_status(&bill.sessionId, "failed", None).await?;
                }
            }
        }
        Ok(Step::Continue)
    }

    async fn bill_status(
        &self,
        session: &B256,
        status: &str,
        tx: Option<&TxInfo>,
    ) -> Result<(), Error> {
        let mut conn = self.db.conn().await?;
        bills::set_status(
            &mut conn,
            &session.to_string(),
            status,
            tx.map(|t| t.tx_hash.to_string()).as_deref(),
            tx.map(|t| t.block_number as i64),
            self.clock.now(),
        )
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ single rows

    async fn single(&self, row: &DrainRow, report: &mut PassReport) -> Result<Step, Error> {
        let result = match row.kind.as_str() {
            kind::ASSET_UPSERT => match serde_json::from_str::<AssetPayload>(&row.payload) {
                Ok(p) => self.asset(&p).await,
                Err(e) => Err(Error::Invalid(format!("bad payload: {e}"))),
            },
            CONSENT | REVOCATION => match serde_json::from_str::<ConsentWork>(&row.payload) {
                Ok(w) => self.consent(&row.kind, &w).await,
                Err(e) => Err(Error::Invalid(format!("bad payload: {e}"))),
            },
            other => Err(Error::Invalid(format!("unknown outbox kind {other:?}"))),
        };
        match result {
            Ok((outcome, note)) => {
                if outcome.tx().is_some() {
                    report.transactions += 1;
                }
                let receipt = outcome.tx().map(hex_tx).unwrap_or_default();
                let note = note.or_else(|| {
                    (outcome == WriteOutcome::AlreadyDone).then_some("already on chain")
                });
                self.done(row.id, &receipt, note).await?;
                report.done += 1;
                Ok(Step::Continue)
            }
            Err(Error::Chain(e)) => self.on_error(std::slice::from_ref(row), *e, report).await,
            Err(e) => {
                self.fail(row, &e.to_string(), report).await?;
                Ok(Step::Continue)
            }
        }
    }

    async fn asset(&self, p: &AssetPayload) -> Result<(WriteOutcome, Option<&'static str>), Error> {
        let op = &self.ctx.operator;
        let _guard = self.ctx.send_lock.lock().await;
        match p {
            AssetPayload::Group {
                group_id,
                name,
                capacity_w,
                members,
                country_code,
                party_id,
                pv_inverters,
                batteries,
                ..
            } => {
                let label = group_label(name);
                let group = Group {
                    id: *group_id as u64,
                    label,
                    capacity_w: (*capacity_w).max(0) as u64,
                };
                let outcome = match op.register_group(&group).await {
                    Err(ChainError::AssetConflict { .. }) => {
                        WriteOutcome::Mined(op.update_group(&group).await?)
                    }
                    other => other?,
                };
                let mut cps = Vec::new();
                {
                    let mut conn = self.db.conn().await?;
                    for uid in members {
                        if let Some(evse) =
                            locations::get_evse(&mut conn, country_code, party_id, uid).await?
                        {
                            cps.push(charge_point(evse.id, *group_id, &evse.record));
                        }
                    }
                }
                for cp in cps {
                    upsert_charge_point(op, &cp).await?;
                }
                for pv in pv_inverters {
                    op.upsert_pv_inverter(&pv_inverter(*group_id, pv)).await?;
                }
                for b in batteries {
                    op.upsert_battery(&battery(*group_id, b)).await?;
                }
                Ok((outcome, None))
            }
            AssetPayload::ChargePoint {
                country_code,
                party_id,
                evse_uid,
                group_id,
                active,
                ..
            } => {
                let Some(group_id) = group_id else {
                    return Ok((
                        WriteOutcome::AlreadyDone,
                        Some("no group yet: registered with its group"),
                    ));
                };
                let evse = {
                    let mut conn = self.db.conn().await?;
                    locations::get_evse(&mut conn, country_code, party_id, evse_uid).await?
                }
                .ok_or_else(|| Error::Invalid(format!("EVSE {evse_uid} is unknown")))?;
                let cp = charge_point(evse.id, *group_id, &evse.record);
                if !active {
                    return match op.charge_point(cp.id).await? {
                        Some(r) if r.active => Ok((
                            WriteOutcome::Mined(op.deactivate_charge_point(cp.id).await?),
                            None,
                        )),
                        _ => Ok((WriteOutcome::AlreadyDone, None)),
                    };
                }
                Ok((upsert_charge_point(op, &cp).await?, None))
            }
        }
    }

    async fn consent(
        &self,
        kind: &str,
        w: &ConsentWork,
    ) -> Result<(WriteOutcome, Option<&'static str>), Error> {
        let op = &self.ctx.operator;
        let user = w
            .user
            .parse()
            .map_err(|_| Error::Invalid("bad user address".to_owned()))?;
        let scope = parse_b256(&w.scope)?;
        let sig: Bytes = w
            .signature
            .parse()
            .map_err(|_| Error::Invalid("bad signature hex".to_owned()))?;
        let _guard = self.ctx.send_lock.lock().await;
        let outcome = if kind == CONSENT {
            let consent = Consent {
                user,
                scope,
                expiry: w.expiry,
                nonce: alloy::primitives::U256::from(w.nonce),
            };
            op.record_consent(&consent, &sig).await?
        } else {
            let revocation = Revocation {
                user,
                scope,
                nonce: alloy::primitives::U256::from(w.nonce),
            };
            op.revoke_consent_with_sig(&revocation, &sig).await?
        };
        Ok((outcome, None))
    }
}

fn timestep_of(row: &DrainRow) -> Option<i64> {
    serde_json::from_str::<serde_json::Value>(&row.payload)
        .ok()
        .and_then(|v| v.get("timestep").and_then(serde_json::Value::as_i64))
}

fn truncate_utf8(s: &str, max: usize) -> String {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

/// A group's label on chain: its name cut to 32 bytes of UTF-8.
pub fn group_label(name: &str) -> String {
    truncate_utf8(name, 32)
}

/// The chain id of an asset named `id` within group `group_id` (PV inverters and batteries
/// have string ids local to their group): the first 8 bytes of
/// `keccak256("evflex:<kind>:<group>:<id>")`, never 0. Stable, so no mapping table is needed.
pub fn asset_chain_id(kind: &str, group_id: i64, id: &str) -> u64 {
    let h = alloy::primitives::keccak256(format!("evflex:{kind}:{group_id}:{id}"));
    let mut b = [0u8; 8];
    b.copy_from_slice(&h[..8]);
    u64::from_be_bytes(b).max(1)
}

/// The chain record of a group's PV inverter.
pub fn pv_inverter(
    group_id: i64,
    pv: &crate::store::groups::PvInverter,
) -> evflex_chain::PvInverter {
    evflex_chain::PvInverter {
        id: asset_chain_id("pv", group_id, &pv.id),
        group_id: group_id as u64,
        peak_w: pv.peak_w.max(0) as u64,
    }
}

/// The chain record of a group's battery (available energy capped at its capacity).
pub fn battery(group_id: i64, b: &crate::store::groups::BatterySpec) -> evflex_chain::Battery {
    let capacity_wh = b.capacity_wh.max(0) as u64;
    evflex_chain::Battery {
        id: asset_chain_id("battery", group_id, &b.id),
        group_id: group_id as u64,
        capacity_wh,
        available_wh: (b.energy_wh.max(0) as u64).min(capacity_wh),
    }
}

/// The chain record of an EVSE (cp id = the EVSE's row id).
pub fn charge_point(
    id: i64,
    group_id: i64,
    r: &crate::store::locations::EvseRecord,
) -> ChargePoint {
    ChargePoint {
        id: id as u64,
        group_id: group_id as u64,
        evse_uid: r.uid.clone(),
        rated_power_w: r.rated_power_w.unwrap_or(0).clamp(0, i64::from(u32::MAX)) as u32,
        power_type: power_type(r.power_type.as_deref()),
        phases: r.phases.unwrap_or(3).clamp(0, 255) as u8,
        voltage_v: r.max_voltage_v.unwrap_or(230).clamp(0, 65_535) as u16,
        max_current_a: r.max_current_a.unwrap_or(16).clamp(0, 65_535) as u16,
        connector_standard: truncate_utf8(r.connector_standard.as_deref().unwrap_or(""), 32),
        status: evse_status(&r.status),
    }
}

async fn upsert_charge_point(
    op: &evflex_chain::ChainClient,
    cp: &ChargePoint,
) -> Result<WriteOutcome, Error> {
    match op.register_charge_points(std::slice::from_ref(cp)).await {
        Err(ChainError::AssetConflict { .. }) => Ok(WriteOutcome::Mined(
            op.update_charge_points(std::slice::from_ref(cp)).await?,
        )),
        other => Ok(other?),
    }
}
