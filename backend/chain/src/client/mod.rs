//! [`ChainClient`]: typed writes and reads of the evflex contracts for one signing key, one
//! file per contract: [`assets`] (AssetRegistry, SC1), [`algorithms`] (AlgorithmRegistry),
//! [`status`] (StatusLedger, SC2), [`billing`] (EnergyBilling, SC3), [`consent`]
//! (ConsentRegistry) and [`tokens`] (FlexToken, TestEuro). No other crate builds a contract
//! instance or decodes a log.
//!
//! # Sending
//!
//! Every write is idempotent at the contract level, and the client turns "already done" reverts
//! (a replayed commit with the same hashes, a settled session, a registered asset with the same
//! values, a consumed consent nonce) into [`WriteOutcome::AlreadyDone`] instead of an error: a
//! writer restarted at any point simply re-sends its pending work.
//!
//! The batch writes the outbox sends (status commits, settlements) come in two phases, so the
//! caller can record the transaction hash between them: `broadcast_*` returns a [`PendingTx`]
//! once the node has accepted the transaction, and `confirm_*` waits for its receipt and
//! decodes the events the contract emitted. After a crash, [`ChainClient::tx_status`] looks a
//! recorded hash up instead of sending again. The one-call writes ([`ChainClient::settle`],
//! [`ChainClient::register_group`], …) run both phases in one call and return a [`TxInfo`] only
//! from a successful receipt.
//!
//! Reverts are decoded into the contracts' generated error enums ([`ContractError`](crate::ContractError)) and come
//! back as [`ChainError::Reverted`]; callers match on those variants, never on names.
//!
//! # Nonces: one send lock per key
//!
//! Every transaction takes the account's *pending* nonce from the node
//! (`eth_getTransactionCount(addr, "pending")`, alloy's simple nonce manager) while the client
//! holds its send lock, the only one for this key, so a client created after a restart continues
//! after the transactions its predecessor sent, and a transaction refused before broadcast
//! (e.g. at gas estimation) leaves no nonce gap (alloy's default cached nonce manager would skip
//! its nonce). Use one `ChainClient` per key in a process (share it behind an `Arc`): two clients
//! of the same key sending at the same instant could take the same pending nonce.

pub mod algorithms;
pub mod assets;
pub mod billing;
pub mod consent;
pub mod status;
pub mod tokens;

pub use assets::{
    Battery, ChargePoint, Group, LimitNode, LimitNodeKind, PhaseWiring, PvInverter, RateUnit,
    RegisteredChargePoint, RegisteredLimitNode,
};
pub use billing::{
    SettleBatchOutcome, SettlementEvents, SettlementRecord, SkipReason, SkippedSettlement,
};
pub use status::{
    CommitBatchOutcome, CommitState, StatusBatchOutcome, StatusCommitInput, StatusCommitRecord,
};

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, TxHash};
use alloy::providers::{
    DynProvider, PendingTransactionBuilder, PendingTransactionError, Provider, ProviderBuilder,
    WatchTxError,
};
use alloy::rpc::types::Log;
use alloy::signers::local::PrivateKeySigner;
use alloy::transports::http::reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::bindings::{
    AlgorithmRegistry::{self, AlgorithmRegistryInstance},
    AssetRegistry::{self, AssetRegistryInstance},
    ConsentRegistry::{self, ConsentRegistryInstance},
    EnergyBilling::{self, EnergyBillingInstance},
    FlexToken::{self, FlexTokenInstance},
    StatusLedger::{self, StatusLedgerInstance},
    TestEuro::{self, TestEuroInstance},
};
use crate::deployment::Deployment;
use crate::error::{ChainError, Contract, decode_call_error, redact_urls};

/// A mined, successful transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxInfo {
    /// The transaction hash.
    pub tx_hash: TxHash,
    /// The block it was mined in.
    pub block_number: u64,
    /// Gas it used.
    pub gas_used: u64,
}

/// The result of an idempotent write.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum WriteOutcome {
    /// This call's transaction did it.
    Mined(TxInfo),
    /// The chain already holds exactly this (an earlier attempt succeeded).
    AlreadyDone,
}

impl WriteOutcome {
    /// The transaction, if this call sent one.
    pub fn tx(&self) -> Option<&TxInfo> {
        match self {
            Self::Mined(tx) => Some(tx),
            Self::AlreadyDone => None,
        }
    }
}

/// Encodes `s` as a left-aligned, zero-padded `bytes32` (labels, OCPI connector names).
pub fn bytes32_str(s: &str) -> Result<B256, ChainError> {
    let b = s.as_bytes();
    if b.len() > 32 {
        return Err(ChainError::Invalid(format!(
            "{s:?} is longer than 32 bytes"
        )));
    }
    let mut out = [0u8; 32];
    out[..b.len()].copy_from_slice(b);
    Ok(B256::from(out))
}

/// Decodes a left-aligned, zero-padded `bytes32` string.
pub fn str_bytes32(b: &B256) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(32);
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// A transaction the node accepted, whose receipt is not known yet: the first phase of a
/// two-phase send. Record [`PendingTx::tx_hash`], then confirm it (or, after a restart, look it
/// up with [`ChainClient::tx_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a broadcast transaction should be confirmed"]
pub struct PendingTx {
    /// The transaction hash.
    pub tx_hash: TxHash,
    /// The contract called.
    pub contract: Contract,
    /// The function called.
    pub method: &'static str,
}

/// What the node knows of a transaction hash (see [`ChainClient::tx_status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxStatus {
    /// Mined and successful.
    Mined(TxInfo),
    /// Mined and failed (status 0).
    Failed(TxInfo),
    /// Known to the node, not mined yet.
    Pending,
    /// Unknown to the node (dropped, or never broadcast).
    Unknown,
}

/// Typed access to the evflex contracts through one signing key.
pub struct ChainClient {
    provider: DynProvider,
    signer_address: Address,
    deployment: Deployment,
    receipt_timeout: Duration,
    send_lock: Mutex<()>,
    asset_registry: AssetRegistryInstance<DynProvider>,
    algorithm_registry: AlgorithmRegistryInstance<DynProvider>,
    status_ledger: StatusLedgerInstance<DynProvider>,
    flex_token: FlexTokenInstance<DynProvider>,
    test_euro: TestEuroInstance<DynProvider>,
    energy_billing: EnergyBillingInstance<DynProvider>,
    consent_registry: ConsentRegistryInstance<DynProvider>,
}

impl std::fmt::Debug for ChainClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainClient")
            .field("signer", &self.signer_address)
            .field("chain_id", &self.deployment.chain_id)
            .finish_non_exhaustive()
    }
}

impl ChainClient {
    /// Connects to `rpc_url` as `signer`, checking the node is on the deployment's chain.
    #[tracing::instrument(skip_all, fields(signer = %signer.address(), chain_id = deployment.chain_id))]
    pub async fn connect(
        rpc_url: &str,
        deployment: Deployment,
        signer: PrivateKeySigner,
    ) -> Result<Self, ChainError> {
        let url: Url = rpc_url
            .parse()
            .map_err(|_| ChainError::Invalid(format!("bad RPC URL {}", redact_urls(rpc_url))))?;
        let signer_address = signer.address();
        let provider = ProviderBuilder::new()
            .disable_recommended_fillers()
            .with_gas_estimation()
            .with_simple_nonce_management()
            .with_chain_id(deployment.chain_id)
            .wallet(EthereumWallet::from(signer))
            .connect_http(url)
            .erased();
        let actual = provider
            .get_chain_id()
            .await
            .map_err(|e| ChainError::Rpc(redact_urls(&e.to_string())))?;
        if actual != deployment.chain_id {
            return Err(ChainError::WrongChain {
                expected: deployment.chain_id,
                actual,
            });
        }
        let c = &deployment.contracts;
        Ok(Self {
            asset_registry: AssetRegistry::new(c.asset_registry, provider.clone()),
            algorithm_registry: AlgorithmRegistry::new(c.algorithm_registry, provider.clone()),
            status_ledger: StatusLedger::new(c.status_ledger, provider.clone()),
            flex_token: FlexToken::new(c.flex_token, provider.clone()),
            test_euro: TestEuro::new(c.test_euro, provider.clone()),
            energy_billing: EnergyBilling::new(c.energy_billing, provider.clone()),
            consent_registry: ConsentRegistry::new(c.consent_registry, provider.clone()),
            provider,
            signer_address,
            deployment,
            receipt_timeout: Duration::from_secs(60),
            send_lock: Mutex::new(()),
        })
    }

    /// Sets how long a write waits for its receipt before failing with
    /// [`ChainError::ReceiptTimeout`] (default 60 s).
    pub fn with_receipt_timeout(mut self, timeout: Duration) -> Self {
        self.receipt_timeout = timeout;
        self
    }

    /// The signing address.
    pub fn address(&self) -> Address {
        self.signer_address
    }

    /// The deployment this client talks to.
    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// The underlying provider (for raw RPC calls).
    pub fn provider(&self) -> &DynProvider {
        &self.provider
    }

    /// The latest block number.
    pub async fn block_number(&self) -> Result<u64, ChainError> {
        self.provider.get_block_number().await.map_err(rpc_err)
    }

    /// Transactions mined after block `after` up to the latest, and the gas they used (every
    /// sender's: on a local anvil that is the deployment's whole traffic).
    pub async fn traffic_since(&self, after: u64) -> Result<(u64, u64), ChainError> {
        let to = self.block_number().await?;
        let (mut transactions, mut gas) = (0, 0);
        for block in after + 1..=to {
            let receipts = self
                .provider
                .get_block_receipts(block.into())
                .await
                .map_err(rpc_err)?
                .unwrap_or_default();
            transactions += receipts.len() as u64;
            gas += receipts.iter().map(|r| r.gas_used).sum::<u64>();
        }
        Ok((transactions, gas))
    }

    /// The signer's next nonce counting pending transactions.
    pub async fn pending_nonce(&self) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(self.signer_address)
            .pending()
            .await
            .map_err(rpc_err)
    }

    /// Phase one: broadcasts `call` under the send lock; the node has the transaction when this
    /// returns. A revert at gas estimation comes back decoded, before anything is sent.
    async fn broadcast<D: CallDecoder>(
        &self,
        contract: Contract,
        method: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<PendingTx, ChainError> {
        let pending = {
            let _guard = self.send_lock.lock().await;
            call.send()
                .await
                .map_err(|e| decode_call_error(contract, method, e))?
        };
        let tx_hash = *pending.tx_hash();
        tracing::debug!(%contract, method, %tx_hash, "transaction sent");
        Ok(PendingTx {
            tx_hash,
            contract,
            method,
        })
    }

    /// Phase two: waits (at most the receipt timeout) for `pending`'s receipt; returns the
    /// mined transaction and its logs, or [`ChainError::FailedOnChain`].
    async fn confirm_logs(&self, pending: &PendingTx) -> Result<(TxInfo, Vec<Log>), ChainError> {
        let PendingTx {
            tx_hash,
            contract,
            method,
        } = *pending;
        let receipt = PendingTransactionBuilder::new(self.provider.root().clone(), tx_hash)
            .with_timeout(Some(self.receipt_timeout))
            .get_receipt()
            .await
            .map_err(|e| match e {
                PendingTransactionError::TxWatcher(WatchTxError::Timeout) => {
                    ChainError::ReceiptTimeout {
                        tx_hash,
                        timeout_s: self.receipt_timeout.as_secs(),
                    }
                }
                other => ChainError::Rpc(redact_urls(&other.to_string())),
            })?;
        let info = TxInfo {
            tx_hash,
            block_number: receipt.block_number.unwrap_or_default(),
            gas_used: receipt.gas_used,
        };
        if !receipt.status() {
            return Err(ChainError::FailedOnChain {
                contract,
                method,
                tx_hash,
                block_number: info.block_number,
            });
        }
        tracing::info!(%contract, method, %tx_hash, block = info.block_number, gas = info.gas_used, "transaction mined");
        Ok((info, receipt.inner.logs().to_vec()))
    }

    /// Confirms a [`PendingTx`] whose events the caller does not need.
    pub async fn confirm(&self, pending: &PendingTx) -> Result<TxInfo, ChainError> {
        Ok(self.confirm_logs(pending).await?.0)
    }

    /// Both phases in one call.
    async fn send<D: CallDecoder>(
        &self,
        contract: Contract,
        method: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TxInfo, ChainError> {
        let pending = self.broadcast(contract, method, call).await?;
        self.confirm(&pending).await
    }

    /// What the node knows of transaction `tx_hash` (a writer restarted after a broadcast asks
    /// this instead of sending again).
    pub async fn tx_status(&self, tx_hash: TxHash) -> Result<TxStatus, ChainError> {
        let receipt = self
            .provider
            .get_transaction_receipt(tx_hash)
            .await
            .map_err(rpc_err)?;
        if let Some(r) = receipt {
            let info = TxInfo {
                tx_hash,
                block_number: r.block_number.unwrap_or_default(),
                gas_used: r.gas_used,
            };
            return Ok(if r.status() {
                TxStatus::Mined(info)
            } else {
                TxStatus::Failed(info)
            });
        }
        let known = self
            .provider
            .get_transaction_by_hash(tx_hash)
            .await
            .map_err(rpc_err)?;
        Ok(if known.is_some() {
            TxStatus::Pending
        } else {
            TxStatus::Unknown
        })
    }
}

fn log_position(log: &Log) -> (u64, TxHash) {
    (
        log.block_number.unwrap_or_default(),
        log.transaction_hash.unwrap_or_default(),
    )
}

fn rpc_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Rpc(redact_urls(&e.to_string()))
}
