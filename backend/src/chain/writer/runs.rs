//! One run of rows of one kind, put on chain through the client: status commits and
//! settlements in batches (two phases, the rows marked `sent` between them), the other kinds one
//! call per row. The work-to-call mapping is here; the drain loop and the bookkeeping are in
//! [`super`].

use super::{PassReport, Step, Writer, receipt};
use crate::chain::Error;
use crate::chain::records;
use crate::store::bills;
use crate::store::outbox_drain::{self as drain, DrainRow, Receipt};
use alloy::primitives::B256;
use evflex_chain::work::{SettlementWork, StatusCommitWork};
use evflex_chain::{
    ChainError, ChainWork, CommitState, SkipReason, StatusCommitInput, TxInfo, WriteOutcome,
};

impl Writer {
    pub(super) async fn status_batch(
        &self,
        run: &[(DrainRow, ChainWork)],
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let op = &self.ctx.operator;
        let all: Vec<&DrainRow> = run.iter().map(|(r, _)| r).collect();
        let mut todo = Vec::new();
        for (row, work) in run {
            let ChainWork::StatusCommit(w) = work else {
                continue;
            };
            let input = match self.status_input(w).await {
                Ok(i) => i,
                Err(Error::Chain(e)) => return self.on_error(&all, *e, report).await,
                Err(e) => {
                    self.fail(row, &e.to_string(), report).await?;
                    continue;
                }
            };
            match op.commit_state(&input).await {
                Ok(CommitState::Absent) => todo.push((row, input)),
                Ok(CommitState::Same) => {
                    self.done(row.id, &Receipt::default(), Some("already on chain"))
                        .await?;
                    report.done += 1;
                }
                Ok(CommitState::Conflict) => self.fail(row, "CommitConflict", report).await?,
                Err(e) => return self.on_error(&all, e, report).await,
            }
        }
        if todo.is_empty() {
            return Ok(Step::Continue);
        }
        let (rows, inputs): (Vec<&DrainRow>, Vec<_>) = todo.into_iter().unzip();
        match self.send_status(&rows, &inputs, report).await? {
            Ok(()) => Ok(Step::Continue),
            Err(e) if e.is_retryable() || rows.len() == 1 => self.on_error(&rows, e, report).await,
            Err(e) => {
                tracing::warn!(error = %e, "status batch refused; committing one by one");
                for (row, input) in rows.iter().zip(&inputs) {
                    let one = std::slice::from_ref(input);
                    if let Err(e) = self.send_status(&[*row], one, report).await?
                        && let Step::Stop = self.on_error(&[*row], e, report).await?
                    {
                        return Ok(Step::Stop);
                    }
                }
                Ok(Step::Continue)
            }
        }
    }

    async fn status_input(&self, w: &StatusCommitWork) -> Result<StatusCommitInput, Error> {
        let version = self.algorithms.ensure(&self.ctx, &w.params_hash).await?;
        let mut conn = self.db.conn().await?;
        records::status_commit_input(&mut conn, w, version).await
    }

    /// Both phases of one `commitBatch` of `inputs` (carried by `rows`), marking them `done`.
    async fn send_status(
        &self,
        rows: &[&DrainRow],
        inputs: &[StatusCommitInput],
        report: &mut PassReport,
    ) -> Result<Result<(), ChainError>, Error> {
        let op = &self.ctx.operator;
        let pending = match op.broadcast_status_batch(inputs).await {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        self.mark_sent(rows, &pending).await?;
        let outcome = match op.confirm_status_batch(&pending).await {
            Ok(o) => o,
            Err(e) => return Ok(Err(e)),
        };
        report.transactions += 1;
        for row in rows {
            self.done(row.id, &receipt(&outcome.tx), None).await?;
            report.done += 1;
        }
        Ok(Ok(()))
    }

    pub(super) async fn settlement_batch(
        &self,
        run: &[(DrainRow, ChainWork)],
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let op = &self.ctx.operator;
        let all: Vec<&DrainRow> = run.iter().map(|(r, _)| r).collect();
        let mut todo = Vec::new();
        for (row, work) in run {
            let ChainWork::Settlement(SettlementWork { bill: signed, .. }) = work else {
                continue;
            };
            let Some(signed) = signed else {
                let why =
                    "no signed bill (the CDR arrived without a chain or without a user wallet)";
                self.fail(row, why, report).await?;
                continue;
            };
            let (bill, mut sig) = match signed.to_bill() {
                Ok(b) => b,
                Err(e) => {
                    self.fail(row, &e.to_string(), report).await?;
                    continue;
                }
            };
            if sig.is_empty() {
                // The CPO's own meter signer signs now (`billing::signer`); until it does, the
                // bill waits like one for a chain that is down.
                match self.cpo_signature(&bill, signed).await? {
                    Ok(s) => sig = s,
                    Err(why) => {
                        let next = self.clock.now() + self.ctx.config.writer_max_backoff_s.max(1);
                        self.later(
                            row,
                            Some(&why),
                            Some("awaiting the CPO's signature"),
                            Some(next),
                        )
                        .await?;
                        report.retried += 1;
                        continue;
                    }
                }
            }
            match op.is_settled(bill.sessionId).await {
                Ok(true) => self.settled_before(row, &bill.sessionId, report).await?,
                Ok(false) => todo.push((row, (bill, sig))),
                Err(e) => return self.on_error(&all, e, report).await,
            }
        }
        if todo.is_empty() {
            return Ok(Step::Continue);
        }
        let (rows, bills): (Vec<&DrainRow>, Vec<_>) = todo.into_iter().unzip();
        let sent = match op.broadcast_settle_batch(&bills).await {
            Ok(pending) => {
                self.mark_sent(&rows, &pending).await?;
                op.confirm_settle_batch(&pending).await
            }
            Err(e) => Err(e),
        };
        let outcome = match sent {
            Ok(o) => o,
            Err(e) => return self.on_error(&rows, e, report).await,
        };
        report.transactions += 1;
        for (row, (bill, _)) in rows.into_iter().zip(&bills) {
            let session = bill.sessionId;
            if outcome.settled.contains(&session) {
                self.done(row.id, &receipt(&outcome.tx), None).await?;
                self.bill_status(&session, "settled", Some(&outcome.tx))
                    .await?;
                report.done += 1;
                continue;
            }
            let skipped = outcome.skipped.iter().find(|s| s.session_id == session);
            match skipped.map(|s| (s.reason_kind(), s.reason_label())) {
                Some((SkipReason::InsufficientBalance, reason)) => {
                    let next = self.clock.now() + self.ctx.config.writer_max_backoff_s.max(1);
                    let note = Some(drain::AWAITING_FUNDS);
                    self.later(row, Some(&reason), note, Some(next)).await?;
                    self.bill_status(&session, "awaiting_funds", None).await?;
                    report.awaiting_funds += 1;
                }
                Some((SkipReason::OverSpendingLimit, reason)) => {
                    // Waits like a short balance; a new limit from the user wakes it.
                    let next = self.clock.now() + self.ctx.config.writer_max_backoff_s.max(1);
                    let note = Some(drain::AWAITING_FUNDS);
                    self.later(row, Some(&reason), note, Some(next)).await?;
                    self.bill_status(&session, "over_limit", None).await?;
                    report.awaiting_funds += 1;
                }
                Some((SkipReason::AlreadySettled, _)) => {
                    self.settled_before(row, &session, report).await?;
                }
                other => {
                    let reason =
                        other.map_or_else(|| "skipped without a reason".to_owned(), |o| o.1);
                    self.fail(row, &reason, report).await?;
                    self.bill_status(&session, "failed", None).await?;
                }
            }
        }
        Ok(Step::Continue)
    }

    /// A settlement the chain holds already.
    async fn settled_before(
        &self,
        row: &DrainRow,
        session: &B256,
        report: &mut PassReport,
    ) -> Result<(), Error> {
        self.done(
            row.id,
            &Receipt::default(),
            Some("already settled on chain"),
        )
        .await?;
        self.bill_status(session, "settled", None).await?;
        report.done += 1;
        Ok(())
    }

    /// The signature of `bill` from its CPO's meter signer, checked against the signer address
    /// evflex verified, and stored on the bill; `Err` says why there is none yet.
    async fn cpo_signature(
        &self,
        bill: &evflex_chain::Bill,
        signed: &evflex_chain::work::SignedBill,
    ) -> Result<Result<alloy::primitives::Bytes, String>, Error> {
        let settlement = {
            let mut conn = self.db.conn().await?;
            crate::store::parties::settlement_by_address(&mut conn, &signed.cpo.to_lowercase())
                .await?
        };
        let Some(settlement) = settlement else {
            return Ok(Err(format!(
                "no settlement identity for CPO {}",
                signed.cpo
            )));
        };
        let party = {
            let mut conn = self.db.conn().await?;
            crate::store::parties::get_party(&mut conn, settlement.party_row).await?
        };
        let party = party.map_or_else(String::new, |p| {
            format!("{}*{}", p.country_code, p.party_id)
        });
        let request = crate::billing::signer::SignRequest {
            party,
            chain_id: self.ctx.deployment.chain_id,
            billing_contract: self.ctx.deployment.contracts.energy_billing,
            bill: signed.clone(),
        };
        let sig = match crate::billing::signer::request_signature(
            &self.http,
            &settlement.signer_url,
            &request,
        )
        .await
        {
            Ok(s) => s,
            Err(why) => return Ok(Err(why)),
        };
        let domain = evflex_chain::wallet::eip712::billing_domain(
            self.ctx.deployment.chain_id,
            self.ctx.deployment.contracts.energy_billing,
        );
        let digest = evflex_chain::wallet::eip712::bill_signing_hash(bill, &domain);
        let recovered = alloy::primitives::Signature::try_from(sig.as_ref())
            .ok()
            .and_then(|s| s.recover_address_from_prehash(&digest).ok());
        if recovered.map(|a| a.to_string().to_lowercase()) != Some(settlement.meter_signer.clone())
        {
            return Ok(Err(format!(
                "the meter signer's signature is not from {}",
                settlement.meter_signer
            )));
        }
        let mut conn = self.db.conn().await?;
        bills::set_signature(&mut conn, &bill.sessionId.to_string(), &sig.to_string()).await?;
        Ok(Ok(sig))
    }

    async fn bill_status(
        &self,
        session: &B256,
        status: &str,
        tx: Option<&TxInfo>,
    ) -> Result<(), Error> {
        let mut conn = self.db.conn().await?;
        let (hash, block) = (
            tx.map(|t| t.tx_hash.to_string()),
            tx.map(|t| t.block_number as i64),
        );
        let now = self.clock.now();
        bills::set_status(
            &mut conn,
            &session.to_string(),
            status,
            hash.as_deref(),
            block,
            now,
        )
        .await?;
        Ok(())
    }

    // ------------------------------------------------------------------ single rows

    pub(super) async fn single(
        &self,
        row: &DrainRow,
        work: &ChainWork,
        report: &mut PassReport,
    ) -> Result<Step, Error> {
        let op = &self.ctx.operator;
        let result = match work {
            ChainWork::AssetUpsert(w) => records::upsert_asset(op, &self.db, w).await,
            ChainWork::Consent(w) => match w.to_consent() {
                Ok((c, sig)) => op.record_consent(&c, &sig).await.map(|o| (o, None)),
                Err(e) => Err(e),
            }
            .map_err(Error::from),
            ChainWork::Revocation(w) => match w.to_revocation() {
                Ok((r, sig)) => op
                    .revoke_consent_with_sig(&r, &sig)
                    .await
                    .map(|o| (o, None)),
                Err(e) => Err(e),
            }
            .map_err(Error::from),
            ChainWork::SpendingLimit(w) => match w.to_update() {
                Ok((u, sig)) => op
                    .set_spending_limit_with_sig(&u, &sig)
                    .await
                    .map(|o| (o, None)),
                Err(e) => Err(e),
            }
            .map_err(Error::from),
            ChainWork::StatusCommit(_) | ChainWork::Settlement(_) => Err(Error::Invalid(format!(
                "{} work is sent in batches",
                work.kind()
            ))),
        };
        match result {
            Ok((outcome, note)) => {
                if outcome.tx().is_some() {
                    report.transactions += 1;
                }
                let note = note.or_else(|| {
                    (outcome == WriteOutcome::AlreadyDone).then_some("already on chain")
                });
                let r = outcome.tx().map(receipt).unwrap_or_default();
                self.done(row.id, &r, note).await?;
                report.done += 1;
                if matches!(work, ChainWork::SpendingLimit(_)) {
                    // A new limit may let settlements through that the old one held back.
                    let mut conn = self.db.conn().await?;
                    drain::wake_awaiting_funds(&mut conn, self.clock.now()).await?;
                }
                Ok(Step::Continue)
            }
            Err(Error::Chain(e)) => self.on_error(&[row], *e, report).await,
            Err(e) => {
                self.fail(row, &e.to_string(), report).await?;
                Ok(Step::Continue)
            }
        }
    }
}
