//! [`ChainClient`]: typed writes and reads of the evflex contracts for one signing key.
//!
//! Writes return a [`TxInfo`] (hash, block, gas) only from a successful receipt, so the outbox
//! can mark work done exactly when it is on chain. Every write is idempotent at the contract
//! level, and the client turns "already done" reverts (a replayed commit with the same hashes,
//! a settled session, a registered asset with the same values, a consumed consent nonce) into
//! [`WriteOutcome::AlreadyDone`] instead of an error: a writer restarted at any point simply
//! re-sends its pending work.
//!
//! Nonces: every transaction takes the account's *pending* nonce from the node
//! (`eth_getTransactionCount(addr, "pending")`, alloy's simple nonce manager) while the client
//! holds a send lock, so a client created after a restart continues after the transactions its
//! predecessor sent, and a transaction refused before broadcast (e.g. at gas estimation) leaves
//! no nonce gap (alloy's default cached nonce manager would skip its nonce).
//! Use one `ChainClient` per key in a process (share it behind an `Arc`): two clients of the
//! same key sending at the same instant could take the same pending nonce.

use std::time::Duration;

use alloy::contract::{CallBuilder, CallDecoder};
use alloy::network::EthereumWallet;
use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
use alloy::providers::{
    DynProvider, PendingTransactionError, Provider, ProviderBuilder, WatchTxError,
};
use alloy::rpc::types::{Log, TransactionReceipt};
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolError, SolEvent};
use alloy::transports::http::reqwest::Url;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use crate::bindings::{
    AlgorithmRegistry::{self, AlgorithmRegistryErrors, AlgorithmRegistryInstance},
    AssetRegistry::{self, AssetRegistryErrors, AssetRegistryInstance},
    Bill, ChargePointParams, Consent,
    ConsentRegistry::{self, ConsentRegistryErrors, ConsentRegistryInstance},
    EnergyBilling::{self, EnergyBillingErrors, EnergyBillingInstance},
    FlexToken::{self, FlexTokenInstance},
    PowerInfo, Revocation, StatusCommit,
    StatusLedger::{self, StatusLedgerErrors, StatusLedgerInstance},
    TestEuro::{self, TestEuroInstance},
};
use crate::deployment::Deployment;
use crate::error::{
    ChainError, Contract, ContractError, billing_error_name, decode_call_error, redact_urls,
};
use crate::members::{EvseStatus, MemberStatus, PowerType, pack_members, unpack_members};

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

/// A group: the assets behind one grid connection of `capacity_w`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Group id (non-zero; the backend's id).
    pub id: u64,
    /// A short label (at most 32 bytes of UTF-8).
    pub label: String,
    /// Shared capacity, W.
    pub capacity_w: u64,
}

/// A charge point as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChargePoint {
    /// Charge point id (non-zero; the backend's id; status commits carry its low 32 bits).
    pub id: u64,
    /// Its group.
    pub group_id: u64,
    /// OCPI EVSE uid.
    pub evse_uid: String,
    /// Rated power, W.
    pub rated_power_w: u32,
    /// AC/DC and phases.
    pub power_type: PowerType,
    /// Number of phases.
    pub phases: u8,
    /// Voltage, V.
    pub voltage_v: u16,
    /// Maximum current, A.
    pub max_current_a: u16,
    /// OCPI connector type, e.g. `IEC_62196_T2`.
    pub connector_standard: String,
    /// OCPI EVSE status.
    pub status: EvseStatus,
}

impl ChargePoint {
    fn to_params(&self) -> Result<ChargePointParams, ChainError> {
        Ok(ChargePointParams {
            id: self.id,
            groupId: self.group_id,
            ratedPowerW: self.rated_power_w,
            status: self.status as u8,
            power: PowerInfo {
                powerType: self.power_type as u8,
                phases: self.phases,
                voltageV: self.voltage_v,
                maxCurrentA: self.max_current_a,
            },
            connectorStandard: bytes32_str(&self.connector_standard)?,
            evseUid: self.evse_uid.clone(),
        })
    }
}

/// A PV inverter as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PvInverter {
    /// Inverter id (non-zero).
    pub id: u64,
    /// Its group.
    pub group_id: u64,
    /// Peak AC power, W.
    pub peak_w: u64,
}

/// A stationary battery as registered in SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    /// Battery id (non-zero).
    pub id: u64,
    /// Its group.
    pub group_id: u64,
    /// Usable capacity, Wh.
    pub capacity_wh: u64,
    /// Energy available, Wh (at most the capacity).
    pub available_wh: u64,
}

/// A charge point read back from SC1.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisteredChargePoint {
    /// Its registered fields.
    pub charge_point: ChargePoint,
    /// Whether it is active (not deactivated).
    pub active: bool,
}

fn power_type(v: u8) -> Result<PowerType, ChainError> {
    use PowerType::*;
    [Ac1Phase, Ac2Phase, Ac2PhaseSplit, Ac3Phase, Dc]
        .get(v as usize)
        .copied()
        .ok_or_else(|| ChainError::Invalid(format!("unknown power type {v}")))
}

/// One group's status at one timestep, as committed to SC2.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitInput {
    /// The group.
    pub group_id: u64,
    /// The 15-minute timestep (e.g. unix seconds / 900).
    pub timestep: u64,
    /// keccak-256 of the canonical scheduler inputs.
    pub inputs_hash: B256,
    /// keccak-256 of the quantized schedule.
    pub schedule_hash: B256,
    /// A usable algorithm version id.
    pub algorithm_version: B256,
    /// Every member's status.
    pub members: Vec<MemberStatus>,
}

impl StatusCommitInput {
    fn to_commit(&self) -> StatusCommit {
        StatusCommit {
            groupId: self.group_id,
            timestep: self.timestep,
            inputsHash: self.inputs_hash,
            scheduleHash: self.schedule_hash,
            algorithmVersion: self.algorithm_version,
            members: pack_members(&self.members),
        }
    }
}

/// A `StatusCommitted` event read from the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusCommitRecord {
    /// What was committed.
    pub commit: StatusCommitInput,
    /// The block.
    pub block_number: u64,
    /// The transaction.
    pub tx_hash: TxHash,
}

/// The result of [`ChainClient::commit_status_batch`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitBatchOutcome {
    /// The transaction that committed the rest, if any was left to commit.
    pub tx: Option<TxInfo>,
    /// `(group, timestep)` pairs already on chain with the same hashes (not re-sent).
    pub already_committed: Vec<(u64, u64)>,
}

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
        self.reason == EnergyBilling::EnergyBillingAlreadySettled::SELECTOR
    }
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

fn log_position(log: &Log) -> (u64, TxHash) {
    (
        log.block_number.unwrap_or_default(),
        log.transaction_hash.unwrap_or_default(),
    )
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

    /// The signer's next nonce counting pending transactions.
    pub async fn pending_nonce(&self) -> Result<u64, ChainError> {
        self.provider
            .get_transaction_count(self.signer_address)
            .pending()
            .await
            .map_err(rpc_err)
    }

    async fn send<D: CallDecoder>(
        &self,
        contract: Contract,
        method: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<TxInfo, ChainError> {
        let pending = {
            let _guard = self.send_lock.lock().await;
            call.send()
                .await
                .map_err(|e| decode_call_error(contract, method, e))?
        };
        let tx_hash = *pending.tx_hash();
        tracing::debug!(%contract, method, %tx_hash, "transaction sent");
        let receipt: TransactionReceipt = pending
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
        Ok(info)
    }

    async fn send_logs<D: CallDecoder>(
        &self,
        contract: Contract,
        method: &'static str,
        call: CallBuilder<&DynProvider, D>,
    ) -> Result<(TxInfo, Vec<Log>), ChainError> {
        let info = self.send(contract, method, call).await?;
        let receipt = self
            .provider
            .get_transaction_receipt(info.tx_hash)
            .await
            .map_err(rpc_err)?
            .ok_or_else(|| ChainError::Rpc(format!("receipt of {} vanished", info.tx_hash)))?;
        Ok((info, receipt.inner.logs().to_vec()))
    }

    // ---------------------------------------------------------------- SC1: assets

    /// Registers `group`; [`WriteOutcome::AlreadyDone`] if it is registered with the same label
    /// and capacity, [`ChainError::AssetConflict`] if with other values (use
    /// [`update_group`](Self::update_group)).
    #[tracing::instrument(skip_all, fields(group_id = group.id))]
    pub async fn register_group(&self, group: &Group) -> Result<WriteOutcome, ChainError> {
        let label = bytes32_str(&group.label)?;
        let call = self
            .asset_registry
            .registerGroup(group.id, label, group.capacity_w);
        match self
            .send(Contract::AssetRegistry, "registerGroup", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(ChainError::Reverted {
                error:
                    ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryDuplicateGroup(_)),
                ..
            }) => {
                let existing = self.group(group.id).await?;
                if existing.as_ref() == Some(group) {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(ChainError::AssetConflict {
                        what: "group",
                        id: group.id,
                    })
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Updates the label and capacity of an active group.
    #[tracing::instrument(skip_all, fields(group_id = group.id))]
    pub async fn update_group(&self, group: &Group) -> Result<TxInfo, ChainError> {
        let label = bytes32_str(&group.label)?;
        let call = self
            .asset_registry
            .updateGroup(group.id, label, group.capacity_w);
        self.send(Contract::AssetRegistry, "updateGroup", call)
            .await
    }

    /// Group `id`, `None` if it is not registered.
    pub async fn group(&self, id: u64) -> Result<Option<Group>, ChainError> {
        let registered = self
            .asset_registry
            .isGroupRegistered(id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "isGroupRegistered", e))?;
        if !registered {
            return Ok(None);
        }
        let g = self
            .asset_registry
            .group(id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "group", e))?;
        Ok(Some(Group {
            id: g.id,
            label: str_bytes32(&g.label),
            capacity_w: g.capacityW,
        }))
    }

    /// Registers charge points in one atomic transaction. Those already registered with the
    /// same values are left out (so a replayed batch is [`WriteOutcome::AlreadyDone`]); one
    /// registered with other values fails the call with [`ChainError::AssetConflict`].
    #[tracing::instrument(skip_all, fields(count = charge_points.len()))]
    pub async fn register_charge_points(
        &self,
        charge_points: &[ChargePoint],
    ) -> Result<WriteOutcome, ChainError> {
        let mut todo = Vec::with_capacity(charge_points.len());
        for cp in charge_points {
            match self.charge_point(cp.id).await? {
                None => todo.push(cp.to_params()?),
                Some(existing) if existing.charge_point == *cp => {}
                Some(_) => {
                    return Err(ChainError::AssetConflict {
                        what: "charge point",
                        id: cp.id,
                    });
                }
            }
        }
        if todo.is_empty() {
            return Ok(WriteOutcome::AlreadyDone);
        }
        let call = self.asset_registry.registerChargePoints(todo);
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "registerChargePoints", call)
                .await?,
        ))
    }

    /// Replaces every field of active charge points in one atomic transaction.
    #[tracing::instrument(skip_all, fields(count = charge_points.len()))]
    pub async fn update_charge_points(
        &self,
        charge_points: &[ChargePoint],
    ) -> Result<TxInfo, ChainError> {
        let params = charge_points
            .iter()
            .map(ChargePoint::to_params)
            .collect::<Result<Vec<_>, _>>()?;
        let call = self.asset_registry.updateChargePoints(params);
        self.send(Contract::AssetRegistry, "updateChargePoints", call)
            .await
    }

    /// Sets the OCPI status of an active charge point.
    #[tracing::instrument(skip_all, fields(cp_id))]
    pub async fn set_charge_point_status(
        &self,
        cp_id: u64,
        status: EvseStatus,
    ) -> Result<TxInfo, ChainError> {
        let call = self
            .asset_registry
            .setChargePointStatus(cp_id, status as u8);
        self.send(Contract::AssetRegistry, "setChargePointStatus", call)
            .await
    }

    /// Deactivates a charge point.
    #[tracing::instrument(skip_all, fields(cp_id))]
    pub async fn deactivate_charge_point(&self, cp_id: u64) -> Result<TxInfo, ChainError> {
        let call = self.asset_registry.deactivateChargePoint(cp_id);
        self.send(Contract::AssetRegistry, "deactivateChargePoint", call)
            .await
    }

    /// Charge point `id`, `None` if it is not registered.
    pub async fn charge_point(&self, id: u64) -> Result<Option<RegisteredChargePoint>, ChainError> {
        let cp = match self.asset_registry.chargePoint(id).call().await {
            Ok(cp) => cp,
            Err(e) => {
                return match decode_call_error(Contract::AssetRegistry, "chargePoint", e) {
                    ChainError::Reverted {
                        error:
                            ContractError::AssetRegistry(
                                AssetRegistryErrors::AssetRegistryUnknownChargePoint(_),
                            ),
                        ..
                    } => Ok(None),
                    other => Err(other),
                };
            }
        };
        if cp.id == 0 {
            return Ok(None);
        }
        Ok(Some(RegisteredChargePoint {
            charge_point: ChargePoint {
                id: cp.id,
                group_id: cp.groupId,
                evse_uid: cp.evseUid,
                rated_power_w: cp.ratedPowerW,
                power_type: power_type(cp.power.powerType)?,
                phases: cp.power.phases,
                voltage_v: cp.power.voltageV,
                max_current_a: cp.power.maxCurrentA,
                connector_standard: str_bytes32(&cp.connectorStandard),
                status: EvseStatus::from_u8(cp.status).ok_or_else(|| {
                    ChainError::Invalid(format!("unknown EVSE status {}", cp.status))
                })?,
            },
            active: cp.active,
        }))
    }

    /// Every charge point registered in `group_id` (active or not), by id.
    #[tracing::instrument(skip_all, fields(group_id))]
    pub async fn charge_points_of(
        &self,
        group_id: u64,
    ) -> Result<Vec<RegisteredChargePoint>, ChainError> {
        let mut ids = self
            .asset_registry
            .chargePointsOf(group_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AssetRegistry, "chargePointsOf", e))?;
        ids.sort_unstable();
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(cp) = self.charge_point(id).await? {
                out.push(cp);
            }
        }
        Ok(out)
    }

    /// PV inverter `id` and whether it is active; `None` if it is not registered.
    pub async fn pv_inverter(&self, id: u64) -> Result<Option<(PvInverter, bool)>, ChainError> {
        match self.asset_registry.pvInverter(id).call().await {
            Ok(pv) if pv.id != 0 => Ok(Some((
                PvInverter {
                    id: pv.id,
                    group_id: pv.groupId,
                    peak_w: pv.peakW,
                },
                pv.active,
            ))),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "pvInverter", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(
                            AssetRegistryErrors::AssetRegistryUnknownPvInverter(_),
                        ),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Registers `pv`, or updates it if registered with other values;
    /// [`WriteOutcome::AlreadyDone`] if it holds these values already. A deactivated inverter
    /// cannot be updated (the registry refuses).
    #[tracing::instrument(skip_all, fields(pv_id = pv.id))]
    pub async fn upsert_pv_inverter(&self, pv: &PvInverter) -> Result<WriteOutcome, ChainError> {
        let call = match self.pv_inverter(pv.id).await? {
            Some((existing, true)) if &existing == pv => return Ok(WriteOutcome::AlreadyDone),
            Some(_) => {
                let call = self
                    .asset_registry
                    .updatePvInverter(pv.id, pv.group_id, pv.peak_w);
                return Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "updatePvInverter", call)
                        .await?,
                ));
            }
            None => self
                .asset_registry
                .registerPvInverter(pv.id, pv.group_id, pv.peak_w),
        };
        Ok(WriteOutcome::Mined(
            self.send(Contract::AssetRegistry, "registerPvInverter", call)
                .await?,
        ))
    }

    /// Battery `id` and whether it is active; `None` if it is not registered.
    pub async fn battery(&self, id: u64) -> Result<Option<(Battery, bool)>, ChainError> {
        match self.asset_registry.battery(id).call().await {
            Ok(b) if b.id != 0 => Ok(Some((
                Battery {
                    id: b.id,
                    group_id: b.groupId,
                    capacity_wh: b.capacityWh,
                    available_wh: b.availableWh,
                },
                b.active,
            ))),
            Ok(_) => Ok(None),
            Err(e) => match decode_call_error(Contract::AssetRegistry, "battery", e) {
                ChainError::Reverted {
                    error:
                        ContractError::AssetRegistry(AssetRegistryErrors::AssetRegistryUnknownBattery(
                            _,
                        )),
                    ..
                } => Ok(None),
                other => Err(other),
            },
        }
    }

    /// Registers `battery`, or updates it if registered with other values;
    /// [`WriteOutcome::AlreadyDone`] if it holds these values already.
    #[tracing::instrument(skip_all, fields(battery_id = battery.id))]
    pub async fn upsert_battery(&self, battery: &Battery) -> Result<WriteOutcome, ChainError> {
        let b = battery;
        match self.battery(b.id).await? {
            Some((existing, true)) if &existing == b => Ok(WriteOutcome::AlreadyDone),
            Some(_) => {
                let call = self.asset_registry.updateBattery(
                    b.id,
                    b.group_id,
                    b.capacity_wh,
                    b.available_wh,
                );
                Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "updateBattery", call)
                        .await?,
                ))
            }
            None => {
                let call = self.asset_registry.registerBattery(
                    b.id,
                    b.group_id,
                    b.capacity_wh,
                    b.available_wh,
                );
                Ok(WriteOutcome::Mined(
                    self.send(Contract::AssetRegistry, "registerBattery", call)
                        .await?,
                ))
            }
        }
    }

    // ---------------------------------------------------------------- algorithm versions

    /// Registers an algorithm version and returns its derived id; [`WriteOutcome::AlreadyDone`]
    /// if it is registered already.
    #[tracing::instrument(skip_all, fields(solver_version))]
    pub async fn register_algorithm(
        &self,
        model_hash: B256,
        solver_version: &str,
        params_hash: B256,
        uri: &str,
    ) -> Result<(B256, WriteOutcome), ChainError> {
        let version = self
            .algorithm_registry
            .computeVersion(model_hash, solver_version.to_owned(), params_hash)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AlgorithmRegistry, "computeVersion", e))?;
        let call = self.algorithm_registry.register(
            model_hash,
            solver_version.to_owned(),
            params_hash,
            uri.to_owned(),
        );
        match self
            .send(Contract::AlgorithmRegistry, "register", call)
            .await
        {
            Ok(tx) => Ok((version, WriteOutcome::Mined(tx))),
            Err(ChainError::Reverted {
                error:
                    ContractError::AlgorithmRegistry(
                        AlgorithmRegistryErrors::AlgorithmRegistryDuplicateVersion(_),
                    ),
                ..
            }) => Ok((version, WriteOutcome::AlreadyDone)),
            Err(e) => Err(e),
        }
    }

    /// Whether `version` is registered and not deprecated.
    pub async fn is_algorithm_usable(&self, version: B256) -> Result<bool, ChainError> {
        self.algorithm_registry
            .isUsable(version)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::AlgorithmRegistry, "isUsable", e))
    }

    // ---------------------------------------------------------------- SC2: status

    /// Commits one group's status at one timestep. A replay of a commit already on chain with
    /// the same hashes is [`WriteOutcome::AlreadyDone`]; one with other hashes is
    /// [`ChainError::CommitConflict`].
    #[tracing::instrument(skip_all, fields(group_id = input.group_id, timestep = input.timestep, members = input.members.len()))]
    pub async fn commit_status(
        &self,
        input: &StatusCommitInput,
    ) -> Result<WriteOutcome, ChainError> {
        let c = input.to_commit();
        let call = self.status_ledger.commit(
            c.groupId,
            c.timestep,
            c.inputsHash,
            c.scheduleHash,
            c.algorithmVersion,
            c.members,
        );
        match self.send(Contract::StatusLedger, "commit", call).await {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(
                ChainError::Reverted {
                    error:
                        ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(_)),
                    ..
                }
                | ChainError::FailedOnChain { .. },
            ) if self.is_committed(input).await? => Ok(WriteOutcome::AlreadyDone),
            Err(ChainError::Reverted {
                error:
                    ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(_)),
                ..
            }) => Err(ChainError::CommitConflict {
                group_id: input.group_id,
                timestep: input.timestep,
            }),
            Err(e) => Err(e),
        }
    }

    /// Whether `input`'s hashes are committed for its group and timestep.
    async fn is_committed(&self, input: &StatusCommitInput) -> Result<bool, ChainError> {
        self.matches(
            input.group_id,
            input.timestep,
            input.inputs_hash,
            input.schedule_hash,
            input.algorithm_version,
        )
        .await
    }

    /// Commits several groups in one atomic transaction, leaving out those already committed
    /// with the same hashes (a replayed batch sends nothing); fails with
    /// [`ChainError::CommitConflict`] if one is committed with other hashes.
    #[tracing::instrument(skip_all, fields(count = inputs.len()))]
    pub async fn commit_status_batch(
        &self,
        inputs: &[StatusCommitInput],
    ) -> Result<CommitBatchOutcome, ChainError> {
        let mut todo = Vec::with_capacity(inputs.len());
        let mut already_committed = Vec::new();
        for input in inputs {
            let commitment = self.commitment_of(input.group_id, input.timestep).await?;
            if commitment == B256::ZERO {
                todo.push(input.to_commit());
            } else if self.is_committed(input).await? {
                already_committed.push((input.group_id, input.timestep));
            } else {
                return Err(ChainError::CommitConflict {
                    group_id: input.group_id,
                    timestep: input.timestep,
                });
            }
        }
        if todo.is_empty() {
            return Ok(CommitBatchOutcome {
                tx: None,
                already_committed,
            });
        }
        let call = self.status_ledger.commitBatch(todo);
        let tx = self
            .send(Contract::StatusLedger, "commitBatch", call)
            .await?;
        Ok(CommitBatchOutcome {
            tx: Some(tx),
            already_committed,
        })
    }

    /// The stored commitment of `(group_id, timestep)`, zero if none.
    pub async fn commitment_of(&self, group_id: u64, timestep: u64) -> Result<B256, ChainError> {
        self.status_ledger
            .commitmentOf(group_id, timestep)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "commitmentOf", e))
    }

    /// Whether `(group_id, timestep)` is committed with exactly these hashes.
    pub async fn matches(
        &self,
        group_id: u64,
        timestep: u64,
        inputs_hash: B256,
        schedule_hash: B256,
        algorithm_version: B256,
    ) -> Result<bool, ChainError> {
        self.status_ledger
            .matches(
                group_id,
                timestep,
                inputs_hash,
                schedule_hash,
                algorithm_version,
            )
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "matches", e))
    }

    /// The last committed timestep of `group_id`, zero if none.
    pub async fn last_timestep(&self, group_id: u64) -> Result<u64, ChainError> {
        self.status_ledger
            .lastTimestep(group_id)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "lastTimestep", e))
    }

    /// Decodes member `index` of `packed` with the contract's own `decodeMember` view.
    pub async fn decode_member_on_chain(
        &self,
        packed: &Bytes,
        index: u64,
    ) -> Result<MemberStatus, ChainError> {
        let m = self
            .status_ledger
            .decodeMember(packed.clone(), U256::from(index))
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "decodeMember", e))?;
        Ok(MemberStatus {
            cp_id: m.cpId,
            status: m.status,
            setpoint_w: m.setpointW,
            measured_w: m.measuredW,
            energy_left_wh: m.energyLeftWh,
            time_left_s: m.timeLeftS,
        })
    }

    /// `StatusCommitted` events in blocks `from_block..=to_block`, optionally of one group, in
    /// chain order (for audit and verification).
    #[tracing::instrument(skip_all, fields(from_block, to_block, group_id))]
    pub async fn status_commits(
        &self,
        from_block: u64,
        to_block: u64,
        group_id: Option<u64>,
    ) -> Result<Vec<StatusCommitRecord>, ChainError> {
        let mut filter = self
            .status_ledger
            .StatusCommitted_filter()
            .from_block(from_block)
            .to_block(to_block);
        if let Some(g) = group_id {
            filter = filter.topic1(U256::from(g));
        }
        let logs = filter
            .query()
            .await
            .map_err(|e| decode_call_error(Contract::StatusLedger, "getLogs", e))?;
        logs.into_iter()
            .map(|(ev, log)| {
                let (block_number, tx_hash) = log_position(&log);
                Ok(StatusCommitRecord {
                    commit: StatusCommitInput {
                        group_id: ev.groupId,
                        timestep: ev.timestep,
                        inputs_hash: ev.inputsHash,
                        schedule_hash: ev.scheduleHash,
                        algorithm_version: ev.algorithmVersion,
                        members: unpack_members(&ev.members)?,
                    },
                    block_number,
                    tx_hash,
                })
            })
            .collect()
    }

    // ---------------------------------------------------------------- SC3: billing

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

    /// Settles several sessions in one transaction; the contract skips the bills that fail and
    /// this returns which were settled and which skipped, with the reason.
    #[tracing::instrument(skip_all, fields(count = bills.len()))]
    pub async fn settle_batch(
        &self,
        bills: &[(Bill, Bytes)],
    ) -> Result<SettleBatchOutcome, ChainError> {
        let (b, s): (Vec<Bill>, Vec<Bytes>) = bills.iter().cloned().unzip();
        let call = self.energy_billing.settleBatch(b, s);
        let (tx, logs) = self
            .send_logs(Contract::EnergyBilling, "settleBatch", call)
            .await?;
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

    /// Mints `amount` test-euro units to `to` (TestEuro's MINTER_ROLE; local chains only).
    #[tracing::instrument(skip_all, fields(%to, %amount))]
    pub async fn mint_test_euro(&self, to: Address, amount: U256) -> Result<TxInfo, ChainError> {
        let call = self.test_euro.mint(to, amount);
        self.send(Contract::TestEuro, "mint", call).await
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

    /// `owner`'s payment-token (tEUR) wallet balance, outside EnergyBilling.
    pub async fn payment_token_balance(&self, owner: Address) -> Result<U256, ChainError> {
        self.test_euro
            .balanceOf(owner)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::TestEuro, "balanceOf", e))
    }

    /// `owner`'s FLEX balance, wei (18 decimals).
    pub async fn flex_balance(&self, owner: Address) -> Result<U256, ChainError> {
        self.flex_token
            .balanceOf(owner)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::FlexToken, "balanceOf", e))
    }

    // ---------------------------------------------------------------- consents

    /// The EIP-712 domain of ConsentRegistry, read from the contract (EIP-5267).
    pub async fn consent_domain(&self) -> Result<Eip712Domain, ChainError> {
        let d = self
            .consent_registry
            .eip712Domain()
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::ConsentRegistry, "eip712Domain", e))?;
        Ok(Eip712Domain::new(
            Some(d.name.into()),
            Some(d.version.into()),
            Some(d.chainId),
            Some(d.verifyingContract),
            None,
        ))
    }

    /// The nonce `user`'s next consent or revocation must carry.
    pub async fn consent_nonce(&self, user: Address) -> Result<U256, ChainError> {
        self.consent_registry
            .nonces(user)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::ConsentRegistry, "nonces", e))
    }

    /// Whether `user` has an unexpired, unrevoked consent to `scope`.
    pub async fn has_consent(&self, user: Address, scope: B256) -> Result<bool, ChainError> {
        self.consent_registry
            .hasConsent(user, scope)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::ConsentRegistry, "hasConsent", e))
    }

    /// The expiry of `user`'s consent to `scope`, zero if none or revoked.
    pub async fn consent_expiry(&self, user: Address, scope: B256) -> Result<u64, ChainError> {
        self.consent_registry
            .consentExpiry(user, scope)
            .call()
            .await
            .map_err(|e| decode_call_error(Contract::ConsentRegistry, "consentExpiry", e))
    }

    /// Relays a consent signed by `consent.user`. A replay (nonce consumed, consent on chain
    /// with this expiry) is [`WriteOutcome::AlreadyDone`].
    #[tracing::instrument(skip_all, fields(user = %consent.user, scope = %consent.scope))]
    pub async fn record_consent(
        &self,
        consent: &Consent,
        signature: &Bytes,
    ) -> Result<WriteOutcome, ChainError> {
        let call = self
            .consent_registry
            .recordConsent(consent.clone(), signature.clone());
        match self
            .send(Contract::ConsentRegistry, "recordConsent", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(
                e @ ChainError::Reverted {
                    error:
                        ContractError::ConsentRegistry(
                            ConsentRegistryErrors::ConsentRegistryInvalidNonce(_),
                        ),
                    ..
                },
            ) => {
                let nonce = self.consent_nonce(consent.user).await?;
                let expiry = self.consent_expiry(consent.user, consent.scope).await?;
                if nonce > consent.nonce && expiry == consent.expiry {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Relays a revocation signed by `revocation.user`. A replay (nonce consumed, no consent
    /// on chain) is [`WriteOutcome::AlreadyDone`].
    #[tracing::instrument(skip_all, fields(user = %revocation.user, scope = %revocation.scope))]
    pub async fn revoke_consent_with_sig(
        &self,
        revocation: &Revocation,
        signature: &Bytes,
    ) -> Result<WriteOutcome, ChainError> {
        let call = self
            .consent_registry
            .revokeWithSig(revocation.clone(), signature.clone());
        match self
            .send(Contract::ConsentRegistry, "revokeWithSig", call)
            .await
        {
            Ok(tx) => Ok(WriteOutcome::Mined(tx)),
            Err(
                e @ ChainError::Reverted {
                    error:
                        ContractError::ConsentRegistry(
                            ConsentRegistryErrors::ConsentRegistryInvalidNonce(_),
                        ),
                    ..
                },
            ) => {
                let nonce = self.consent_nonce(revocation.user).await?;
                let active = self.has_consent(revocation.user, revocation.scope).await?;
                if nonce > revocation.nonce && !active {
                    Ok(WriteOutcome::AlreadyDone)
                } else {
                    Err(e)
                }
            }
            Err(e) => Err(e),
        }
    }
}

fn skipped_settlement(session_id: B256, reason: [u8; 4]) -> SkippedSettlement {
    SkippedSettlement {
        session_id,
        reason,
        reason_name: billing_error_name(reason).map(str::to_owned),
    }
}

fn rpc_err(e: impl std::fmt::Display) -> ChainError {
    ChainError::Rpc(redact_urls(&e.to_string()))
}
