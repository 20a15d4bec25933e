//! evflex-chain: the chain side of evflex.
//!
//! - [`bindings`]: `sol!` bindings generated from the contracts' ABIs (`abi/`, exported by
//!   `scripts/export-abi`).
//! - [`ChainClient`]: every contract call of evflex, one module per contract: typed, idempotent
//!   writes (assets, algorithm versions, status commits, settlements, deposits, consents), the
//!   two-phase batch sends the outbox writer uses ([`PendingTx`]), and reads (records,
//!   commitments, events, balances).
//! - [`work`]: [`ChainWork`], the one type of chain work every producer enqueues and the writer
//!   executes, with the "no chain configured" policy.
//! - [`ContractError`] / [`ChainError`]: reverts decoded into the contracts' error enums.
//! - [`Deployment`] / [`Accounts`]: `anvil/deployment.json` and `anvil/accounts.json`.
//! - [`LocalChain`]: a local anvil node started from `anvil/state.json`, stoppable and
//!   restartable with its chain intact.
//! - [`wallet`]: custodial e-wallets (encrypted keystores), Sign-In with Ethereum, EIP-712
//!   signatures for consents and bills.
//! - [`members`]: the 21-byte member records of a status commit.

pub mod anvil;
pub mod bindings;
pub mod client;
pub mod deployment;
pub mod error;
pub mod ids;
pub mod members;
pub mod wallet;
pub mod work;

pub use anvil::{LocalChain, LocalChainConfig};
pub use bindings::{Bill, Consent, Revocation, SpendingLimit, SpendingLimitUpdate};
pub use client::{
    Battery, ChainClient, ChargePoint, CommitBatchOutcome, CommitState, Group, LimitNode,
    LimitNodeKind, PendingTx, PhaseWiring, PvInverter, RateUnit, RegisteredChargePoint,
    RegisteredLimitNode, SettleBatchOutcome, SettlementEvents, SettlementRecord, SkipReason,
    SkippedSettlement, StatusBatchOutcome, StatusCommitInput, StatusCommitRecord, TxInfo, TxStatus,
    WriteOutcome, bytes32_str, str_bytes32,
};
pub use deployment::{Accounts, AnvilSettings, Contracts, Deployment, DevAccount, repo_root};
pub use error::{ChainError, Contract, ContractError, decode_call_error};
pub use ids::{ChargePointId, ChargePointIdOutOfRange};
pub use members::{EvseStatus, MemberStatus, PowerType, pack_members, unpack_members};
pub use work::{ChainWork, WorkKind};

/// Re-exports of the alloy types in this crate's API.
pub mod alloy_types {
    pub use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
    pub use alloy::signers::local::PrivateKeySigner;
    pub use alloy::sol_types::Eip712Domain;
}
