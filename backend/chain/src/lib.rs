//! evflex-chain: the chain side of evflex.
//!
//! - [`bindings`]: `sol!` bindings generated from the contracts' ABIs (`abi/`, exported by
//!   `scripts/export-abi`).
//! - [`ChainClient`]: typed, idempotent writes (assets, algorithm versions, status commits,
//!   settlements, deposits, consents) and reads (records, commitments, events, balances).
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
pub mod members;
pub mod wallet;

pub use anvil::{LocalChain, LocalChainConfig};
pub use bindings::{Bill, Consent, Revocation};
pub use client::{
    Battery, ChainClient, ChargePoint, CommitBatchOutcome, Group, PvInverter,
    RegisteredChargePoint, SettleBatchOutcome, SettlementEvents, SettlementRecord,
    SkippedSettlement, StatusCommitInput, StatusCommitRecord, TxInfo, WriteOutcome, bytes32_str,
    str_bytes32,
};
pub use deployment::{Accounts, AnvilSettings, Contracts, Deployment, DevAccount, repo_root};
pub use error::{ChainError, Contract, ContractError, decode_call_error};
pub use members::{EvseStatus, MemberStatus, PowerType, pack_members, unpack_members};

/// Re-exports of the alloy types in this crate's API.
pub mod alloy_types {
    pub use alloy::primitives::{Address, B256, Bytes, TxHash, U256};
    pub use alloy::signers::local::PrivateKeySigner;
    pub use alloy::sol_types::Eip712Domain;
}
