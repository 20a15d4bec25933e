//! EnergyBilling (SC3): prepaid balances, EIP-712-signed bills, settlement and FLEX rewards.

use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
use alloy::sol_types::{Eip712Domain, SolError, SolEvent};
use serde::{Deserialize, Serialize};

use super::{ChainClient, PendingTx, TxInfo, WriteOutcome, log_position};
use crate::bindings::{Bill, EnergyBilling, EnergyBilling::EnergyBillingErrors, TestEuro};
use crate::error::{ChainError, Contract, ContractError, billing_error_name, decode_call_error};

/// A bill the batch did not settle, with the selector of the error it hit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedSettlement {
    /// The session.
    pub session_id: B256,
    /// The error selector.
    pub reason: [u8; 4],
    /// The error's name when it is an EnergyBilling error, e.g. `EnergyBillingInsufficientBalance`.
    pub reason_name: Option<String>,
}

impl SkippedSettlement {
    /// Whether the session was skipped because it is already settled (done, for the outbox).
    pub fn is_already_settled(&self) -> bool {
        self.reason_kind() == SkipReason::AlreadySettled
    }

    /// Why the bill was skipped, from the selector of the generated error it hit.
    pub fn reason_kind(&self) -> SkipReason {
        use EnergyBilling::{
            EnergyBillingAllowanceExceeded, EnergyBillingAlreadySettled,
            EnergyBillingInsufficientBalance, EnergyBillingPriceAboveLimit,
        };
        if self.reason == EnergyBillingAlreadySettled::SELECTOR {
            SkipReason::AlreadySettled
        } else if self.reason == EnergyBillingInsufficientBalance::SELECTOR {
            SkipReason::InsufficientBalance
        } else if self.reason == EnergyBillingAllowanceExceeded::SELECTOR
            || self.reason == EnergyBillingPriceAboveLimit::SELECTOR
        {
            SkipReason::OverSpendingLimit
        } else {
            SkipReason::Refused
        }
    }

    /// The reason's error name, or its selector in hex when it is no EnergyBilling error.
    pub fn reason_label(&self) -> String {
        self.reason_name
            .clone()
            .unwrap_or_else(|| format!("0x{}", alloy::primitives::hex::encode(self.reason)))
    }
}

/// Why `settleBatch` skipped a bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SkipReason {
    /// `EnergyBillingAlreadySettled`: the session is settled (done).
    AlreadySettled,
    /// `EnergyBillingInsufficientBalance`: the user's prepaid balance is short; retry after a
    /// top-up.
    InsufficientBalance,
    /// `EnergyBillingAllowanceExceeded` or `EnergyBillingPriceAboveLimit`: the user's spending
    /// limit refuses it; retry after the user raises the limit.
    OverSpendingLimit,
    /// Any other error: the bill is refused for good.
    Refused,
}

/// The result of [`ChainClient::settle_batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettleBatchOutcome {
    /// The transaction.
    pub tx: TxInfo,
    /// Sessions this transaction settled.
    pub settled: Vec<B256>,
    /// Sessions it skipped (already settled ones included, see
    /// [`SkippedSettlement::is_already_settled`]).
    pub skipped: Vec<SkippedSettlement>,
}

/// A `SessionSettled` event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementRecord {
    /// The session.
    pub session_id: B256,
    /// Who paid.
    pub user: Address,
    /// Who was paid.
    pub cpo: Address,
    /// Metered energy, Wh.
    pub energy_wh: u64,
    /// Energy given free, Wh.
    pub credit_wh: u64,
    /// Flexibility given, Wh.
    pub flexibility_wh: u64,
    /// Price, payment-token units (micro-EUR) per kWh.
    pub price_micro_eur_per_kwh: u64,
    /// Cost moved from user to CPO, payment-token units.
    pub cost: U256,
    /// FLEX minted to the user, wei.
    pub flex_minted: U256,
    /// The block.
    pub block_number: u64,
    /// The transaction.
    pub tx_hash: TxHash,
}

/// Settlement events of a block range.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SettlementEvents {
    /// Sessions settled.
    pub settled: Vec<SettlementRecord>,
    /// Bills skipped by batches.
    pub skipped: Vec<SkippedSettlement>,
}

impl ChainClient {
    /// The EIP-712 domain of EnergyBilling, read from the contract (EIP-5267).
    pub async fn billing_domain(&self) -> Result<Eip712Domain, ChainError> {
        let d = self
            .energy_billing
            .eip712Domain()
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "eip712Domain", e))?;
        Ok(Eip712Domain::new(
            Some(d.name.into()),
            Some(d.version.into()),
            Some(d.chainId),
            Some(d.verifyingContract),
            None,
        ))
    }

    /// The digest the contract computes for `bill` (`hashBill`).
    pub async fn hash_bill_on_chain(&self, bill: &Bill) -> Result<B256, ChainError> {
        self.energy_billing
            .hashBill(bill.clone())
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "hashBill", e))
    }

    /// Settles one session. [`WriteOutcome::AlreadyDone`] if it is settled already.
    #[tracing::instrument(skip_all, fields(session_id = %bill.sessionId))]
    pub async fn settle(
        &self,
        bill: &Bill,
        meter_signature: &Bytes,
    ) -> Result<WriteOutcome, ChainError> {
        let call = self
            .energy_billing
            .settle(bill.clone(), meter_signature.clone());
        match self.send(Contract::EnergyBilling, "settle", call).await {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(ChainError::Reverted {
                error:
                    ContractError::EnergyBilling(EnergyBillingErrors::EnergyBillingAlreadySettled(_)),
                ..
            }) => Ok(WriteOutcome::AlreadyDone),
            Err(e @ ChainError::FailedOnChain { .. }) => {
                if self.is_settled(bill.sessionId).await? {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Phase one of a batch settlement: broadcasts one `settleBatch` of signed bills.
    #[tracing::instrument(skip_all, fields(count = bills.len()))]
    pub async fn broadcast_settle_batch(
        &self,
        bills: &[(Bill, Bytes)],
    ) -> Result<PendingTx, ChainError> {
        let (b, s): (Vec<Bill>, Vec<Bytes>) = bills.iter().cloned().unzip();
        let call = self.energy_billing.settleBatch(b, s);
        self.broadcast(Contract::EnergyBilling, "settleBatch", call)
            .await
    }

    /// Phase two of a batch settlement: the receipt, and which sessions its events say were
    /// settled and which skipped, with the reason.
    pub async fn confirm_settle_batch(
        &self,
        pending: &PendingTx,
    ) -> Result<SettleBatchOutcome, ChainError> {
        let (tx, logs) = self.confirm_logs(pending).await?;
        let billing = self.deployment.contracts.energy_billing;
        let mut settled = Vec::new();
        let mut skipped = Vec::new();
        for log in logs.iter().filter(|l| l.address() == billing) {
            if let Ok(ev) = EnergyBilling::SessionSettled::decode_log(&log.inner) {
                settled.push(ev.sessionId);
            } else if let Ok(ev) = EnergyBilling::SettlementSkipped::decode_log(&log.inner) {
                skipped.push(skipped_settlement(ev.sessionId, ev.reason.0));
            }
        }
        Ok(SettleBatchOutcome {
            tx,
            settled,
            skipped,
        })
    }

    /// Settles several sessions in one transaction; the contract skips the bills that fail and
    /// this returns which were settled and which skipped, with the reason. The writer runs the
    /// same two phases with a database write between them.
    pub async fn settle_batch(
        &self,
        bills: &[(Bill, Bytes)],
    ) -> Result<SettleBatchOutcome, ChainError> {
        let pending = self.broadcast_settle_batch(bills).await?;
        self.confirm_settle_batch(&pending).await
    }

    /// Whether session `session_id` is settled.
    pub async fn is_settled(&self, session_id: B256) -> Result<bool, ChainError> {
        self.energy_billing
            .settled(session_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "settled", e))
    }

    /// Settlement events in blocks `from_block..=to_block`.
    #[tracing::instrument(skip_all, fields(from_block, to_block))]
    pub async fn settlement_events(
        &self,
        from_block: u64,
        to_block: u64,
    ) -> Result<SettlementEvents, ChainError> {
        let settled = self
            .energy_billing
            .SessionSettled_filter()
            .from_block(from_block)
            .to_block(to_block)
            .query()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "getLogs", e))?
            .into_iter()
            .map(|(ev, log)| {
                let (block_number, tx_hash) = log_position(&log);
                SettlementRecord {
                    session_id: ev.sessionId,
                    user: ev.user,
                    cpo: ev.cpo,
                    energy_wh: ev.energyWh,
                    credit_wh: ev.creditWh,
                    flexibility_wh: ev.flexibilityWh,
                    price_micro_eur_per_kwh: ev.priceMicroEurPerKwh,
                    cost: ev.cost,
                    flex_minted: ev.flexMinted,
                    block_number,
                    tx_hash,
                }
            })
            .collect();
        let skipped = self
            .energy_billing
            .SettlementSkipped_filter()
            .from_block(from_block)
            .to_block(to_block)
            .query()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "getLogs", e))?
            .into_iter()
            .map(|(ev, _)| skipped_settlement(ev.sessionId, ev.reason.0))
            .collect();
        Ok(SettlementEvents { settled, skipped })
    }

    /// Deposits `amount` payment-token units of the signer into `user`'s billing balance,
    /// approving EnergyBilling first if the allowance is short.
    #[tracing::instrument(skip_all, fields(%user, %amount))]
    pub async fn deposit_for(&self, user: Address, amount: U256) -> Result<TxInfo, ChainError> {
        let billing = self.deployment.contracts.energy_billing;
        let token = TestEuro::new(self.payment_token().await?, self.provider.clone());
        let allowance = token
            .allowance(self.signer_address, billing)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::TestEuro, "allowance", e))?;
        if allowance < amount {
            self.send(
                Contract::TestEuro,
                "approve",
                token.approve(billing, amount),
            )
            .await?;
        }
        let call = self.energy_billing.depositFor(user, amount);
        self.send(Contract::EnergyBilling, "depositFor", call).await
    }

    /// Tops up `user`'s billing balance with freshly minted test euros: mint to the signer,
    /// then [`deposit_for`](Self::deposit_for). Local chains only.
    pub async fn top_up(&self, user: Address, amount: U256) -> Result<TxInfo, ChainError> {
        self.mint_test_euro(self.signer_address, amount).await?;
        self.deposit_for(user, amount).await
    }

    /// The payment token EnergyBilling uses.
    pub async fn payment_token(&self) -> Result<Address, ChainError> {
        self.energy_billing
            .paymentToken()
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "paymentToken", e))
    }

    /// `user`'s prepaid balance in EnergyBilling, payment-token units.
    pub async fn billing_balance(&self, user: Address) -> Result<U256, ChainError> {
        self.energy_billing
            .balanceOf(user)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "balanceOf", e))
    }

    /// `cpo`'s balance in EnergyBilling, payment-token units.
    pub async fn cpo_balance(&self, cpo: Address) -> Result<U256, ChainError> {
        self.energy_billing
            .cpoBalanceOf(cpo)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "cpoBalanceOf", e))
    }
}

fn skipped_settlement(session_id: B256, reason: [u8; 4]) -> SkippedSettlement {
    SkippedSettlement {
        session_id,
        reason,
        reason_name: billing_error_name(reason).map(str::to_owned),
    }
}

impl ChainClient {
    /// `user`'s spending limit on settlements (`enabled` false: none set).
    pub async fn spending_limit(
        &self,
        user: Address,
    ) -> Result<crate::bindings::SpendingLimit, ChainError> {
        self.energy_billing
            .spendingLimitOf(user)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "spendingLimitOf", e))
    }

    /// The nonce `user`'s next signed spending-limit update must carry.
    pub async fn spending_nonce(&self, user: Address) -> Result<U256, ChainError> {
        self.energy_billing
            .spendingNonces(user)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "spendingNonces", e))
    }

    /// Relays a spending-limit update signed by `update.user`. A replay (nonce used, the
    /// limit on chain is the update's) is [`WriteOutcome::AlreadyDone`].
    #[tracing::instrument(skip_all, fields(user = %update.user))]
    pub async fn set_spending_limit_with_sig(
        &self,
        update: &crate::bindings::SpendingLimitUpdate,
        signature: &Bytes,
    ) -> Result<WriteOutcome, ChainError> {
        let call = self
            .energy_billing
            .setSpendingLimitWithSig(update.clone(), signature.clone());
        match self
            .send(Contract::EnergyBilling, "setSpendingLimitWithSig", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(e) if is_invalid_spending_nonce(&e) => {
                let nonce = self.spending_nonce(update.user).await?;
                let limit = self.spending_limit(update.user).await?;
                if nonce > update.nonce
                    && limit.maxPriceMicroEurPerKwh == update.maxPriceMicroEurPerKwh
                {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

/// Whether `e` is EnergyBilling's revert for a spending-limit nonce already used.
fn is_invalid_spending_nonce(e: &ChainError) -> bool {
    matches!(
        e,
        ChainError::Reverted {
            error: ContractError::EnergyBilling(EnergyBillingErrors::EnergyBillingInvalidNonce(_)),
            ..
        }
    )
}

impl ChainClient {
    /// The meter-signer address EnergyBilling checks `cpo`'s bills against, `None` when `cpo`
    /// is no registered CPO.
    pub async fn billing_meter_signer(&self, cpo: Address) -> Result<Option<Address>, ChainError> {
        let known = self
            .energy_billing
            .isCpo(cpo)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "isCpo", e))?;
        if !known {
            return Ok(None);
        }
        let c = self
            .energy_billing
            .cpo(cpo)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::EnergyBilling, "cpo", e))?;
        Ok(Some(c.meterSigner))
    }

    /// Admin only: registers `cpo` in EnergyBilling with its meter signer and treasury.
    #[tracing::instrument(skip_all, fields(cpo = %cpo))]
    pub async fn register_billing_cpo(
        &self,
        cpo: Address,
        meter_signer: Address,
        treasury: Address,
        reward_rate: U256,
    ) -> Result<TxInfo, ChainError> {
        let call = self
            .energy_billing
            .registerCpo(cpo, meter_signer, treasury, reward_rate);
        self.send(Contract::EnergyBilling, "registerCpo", call)
            .await
    }
}
