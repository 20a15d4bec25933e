//! The chain writer: drains `chain_outbox` in id order and puts each row's [`ChainWork`] on chain
//! through the operator's [`ChainClient`](evflex_chain::ChainClient), marking a row `done` only
//! with a receipt (or when the chain is found to hold the work already). It knows rows, not
//! ABIs: every call, batch and event decoding is the client's.
//!
//! # One pass ([`Writer::run_once`])
//!
//! 1. Rows left `sent` (a previous writer broadcast their transaction and stopped before
//!    recording the receipt) are looked up by hash ([`ChainClient::tx_status`]), not re-sent: a
//!    successful receipt marks them `done`; a transaction the node still holds unmined is looked
//!    at again later; anything else (a failed or vanished transaction) goes back to `pending`,
//!    where step 2 checks the chain before sending. A mined settlement also goes back to
//!    `pending`, where the contract is asked whether it settled the session.
//! 2. Due `pending` rows, in id order, in runs of one kind ([`WorkKind::batch_limit`]):
//!    - `status_commit`: consecutive rows of one timestep go into one `commitBatch`, in id
//!      order, ticks and event re-plans (revisions) alike: a re-plan is enqueued after its
//!      timestep's tick and after the re-plans before it, which is the order StatusLedger takes
//!      them in, also within one batch. Each row is checked first
//!      ([`ChainClient::commit_state`], by group, timestep and revision): same hashes on chain →
//!      `done`; other hashes → `failed` (`CommitConflict`). If the batch reverts, its rows are
//!      retried one by one so only the offending row fails (and a re-plan whose tick failed fails
//!      with `StatusLedgerRevisionOfUncommitted`).
//!    - `settlement`: consecutive signed bills go into one `settleBatch`; the contract skips the
//!      bills it refuses and names the reason ([`SkipReason`]). An insufficient balance keeps the
//!      row `pending` with note `awaiting funds` (woken by a top-up, else retried at the longest
//!      back-off); other reasons fail the row.
//!    - `asset_upsert`, `consent`, `revocation`: one idempotent client call each.
//! 3. Batches are sent in two phases: broadcast, mark the rows `sent` with the transaction hash,
//!    then confirm (receipt and decoded events).
//!
//! Retryable errors (transport, receipt timeout) leave the row `pending` with `attempts + 1` and
//! `next_attempt_at = now + min(base · 2^attempts, max)`, and end the pass (the chain is likely
//! unreachable). Non-retryable errors mark the row `failed` with the decoded custom error's name
//! and the queue moves on.
//!
//! [`ChainClient::tx_status`]: evflex_chain::ChainClient::tx_status
//! [`ChainClient::commit_state`]: evflex_chain::ChainClient::commit_state

mod runs;

use super::records::KnownAlgorithms;
use super::{ChainContext, Error};
use crate::domain::Clock;
use crate::store::Db;
use crate::store::outbox_drain::{self as drain, DrainRow, Receipt};
use alloy::primitives::B256;
use evflex_chain::{ChainError, ChainWork, PendingTx, TxInfo, TxStatus, WorkKind};
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

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
    algorithms: KnownAlgorithms,
    abandon_after_send: bool,
    /// Calls to CPOs' meter signers (`billing::signer`).
    http: crate::outbound::Outbound,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer").finish_non_exhaustive()
    }
}

/// How many rows from the start of `rows` go into one send: consecutive rows of one batchable
/// kind (status commits of one timestep, whatever their revision; settlements), at most the
/// kind's batch limit.
fn run_len(rows: &[(DrainRow, ChainWork)]) -> usize {
    let Some((_, first)) = rows.first() else {
        return 0;
    };
    let limit = first.kind().batch_limit().min(rows.len());
    let same = |w: &ChainWork| match (first, w) {
        (ChainWork::StatusCommit(a), ChainWork::StatusCommit(b)) => a.timestep == b.timestep,
        (ChainWork::Settlement(_), ChainWork::Settlement(_)) => true,
        _ => false,
    };
    1 + rows[1..limit].iter().take_while(|(_, w)| same(w)).count()
}

enum Step {
    Continue,
    Stop,
}

fn receipt(tx: &TxInfo) -> Receipt {
    Receipt {
        tx_hash: Some(tx.tx_hash.to_string()),
        block_number: Some(tx.block_number as i64),
        gas_used: Some(tx.gas_used as i64),
    }
}

fn err_name(e: &ChainError) -> String {
    e.contract_error()
        .map_or_else(|| e.to_string(), evflex_chain::ContractError::name)
}

impl Writer {
    /// A writer over `db` sending through `ctx`'s operator, timing back-off with `clock`.
    pub fn new(ctx: Arc<ChainContext>, db: Db, clock: Arc<dyn Clock>) -> Self {
        Self {
            ctx,
            db,
            clock,
            algorithms: KnownAlgorithms::default(),
            abandon_after_send: false,
            http: crate::outbound::Outbound::new(false)
                .expect("an HTTP client with the default TLS settings"),
        }
    }

    /// Calls CPOs' meter signers through `http` (the service's client, with its address rules).
    pub fn with_http(mut self, http: crate::outbound::Outbound) -> Self {
        self.http = http;
        self
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

    async fn due(&self, status: &str) -> Result<Vec<DrainRow>, Error> {
        let mut conn = self.db.conn().await?;
        let rows = drain::due(&mut conn, self.clock.now(), 200).await?;
        Ok(rows.into_iter().filter(|r| r.status == status).collect())
    }

    /// One pass (see the module docs).
    #[tracing::instrument(skip_all)]
    pub async fn run_once(&self) -> Result<PassReport, Error> {
        let mut report = PassReport::default();
        for row in self.due(drain::SENT).await? {
            if let Step::Stop = self.resolve_sent(&row, &mut report).await? {
                return Ok(report);
            }
        }
        let mut rows = Vec::new();
        for row in self.due(drain::PENDING).await? {
            match ChainWork::from_stored(&row.kind, &row.payload) {
                Ok(work) => rows.push((row, work)),
                Err(e) => self.fail(&row, &e.to_string(), &mut report).await?,
            }
        }
        let mut rest = rows.as_slice();
        while let Some((first, work)) = rest.first() {
            let (run, tail) = rest.split_at(run_len(rest));
            rest = tail;
            let step = match work {
                ChainWork::StatusCommit(_) => self.status_batch(run, &mut report).await?,
                ChainWork::Settlement(_) => self.settlement_batch(run, &mut report).await?,
                _ => self.single(first, work, &mut report).await?,
            };
            if let Step::Stop = step {
                break;
            }
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

    async fn fail(&self, row: &DrainRow, reason: &str, r: &mut PassReport) -> Result<(), Error> {
        tracing::warn!(id = row.id, kind = %row.kind, key = %row.dedupe_key, reason, "chain work failed");
        let mut conn = self.db.conn().await?;
        drain::mark_failed(&mut conn, row.id, reason, self.clock.now()).await?;
        r.failed += 1;
        Ok(())
    }

    /// Puts `row` back to `pending`, due at `next` (`None`: now), with `error` and `note`.
    async fn later(
        &self,
        row: &DrainRow,
        error: Option<&str>,
        note: Option<&str>,
        next: Option<i64>,
    ) -> Result<(), Error> {
        let now = self.clock.now();
        let mut conn = self.db.conn().await?;
        drain::retry_later(&mut conn, row.id, error, note, next.unwrap_or(now), now).await?;
        Ok(())
    }

    /// Handles an error of a write of `rows`: retry them all later (and end the pass), or fail
    /// them all.
    async fn on_error(
        &self,
        rows: &[&DrainRow],
        e: ChainError,
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let retryable = e.is_retryable();
        let name = err_name(&e);
        for row in rows {
            if retryable {
                let next = self.clock.now() + self.backoff(row.attempts);
                tracing::warn!(id = row.id, key = %row.dedupe_key, error = %e, next, "chain write will be retried");
                self.later(row, Some(&e.to_string()), row.note.as_deref(), Some(next))
                    .await?;
                report.retried += 1;
            } else {
                self.fail(row, &name, report).await?;
            }
        }
        Ok(if retryable {
            Step::Stop
        } else {
            Step::Continue
        })
    }

    /// Between the two phases of a send: marks `rows` `sent` with the transaction's hash.
    async fn mark_sent(&self, rows: &[&DrainRow], pending: &PendingTx) -> Result<(), Error> {
        let ids: Vec<i64> = rows.iter().map(|r| r.id).collect();
        let mut conn = self.db.conn().await?;
        drain::mark_sent(
            &mut conn,
            &ids,
            &pending.tx_hash.to_string(),
            self.clock.now(),
        )
        .await?;
        if self.abandon_after_send {
            return Err(Error::Invalid(
                "abandoned after send (test hook)".to_owned(),
            ));
        }
        Ok(())
    }

    // ------------------------------------------------------------------ sent rows

    async fn resolve_sent(&self, row: &DrainRow, report: &mut PassReport) -> Result<Step, Error> {
        let Some(hash) = row.tx_hash.as_deref().and_then(|h| h.parse::<B256>().ok()) else {
            self.later(row, Some("sent without a hash"), None, None)
                .await?;
            return Ok(Step::Continue);
        };
        match self.ctx.operator.tx_status(hash).await {
            Err(e) => return self.on_error(&[row], e, report).await,
            // Settled by that transaction, or skipped by it: the pending path asks the contract.
            Ok(TxStatus::Mined(_)) if row.kind == WorkKind::Settlement.as_str() => {
                self.later(row, None, row.note.as_deref(), None).await?;
            }
            Ok(TxStatus::Mined(tx)) => {
                tracing::info!(id = row.id, %hash, "sent row resolved by its receipt");
                self.done(row.id, &receipt(&tx), None).await?;
                report.done += 1;
            }
            Ok(TxStatus::Failed(_)) => {
                self.later(row, Some("transaction failed on chain"), None, None)
                    .await?;
            }
            Ok(TxStatus::Pending) => {
                let (now, next) = (self.clock.now(), self.clock.now() + self.backoff(0));
                let mut conn = self.db.conn().await?;
                drain::check_later(&mut conn, row.id, "transaction not mined yet", next, now)
                    .await?;
                report.retried += 1;
            }
            Ok(TxStatus::Unknown) => {
                self.later(row, Some("transaction vanished"), None, None)
                    .await?;
            }
        }
        Ok(Step::Continue)
    }
}
