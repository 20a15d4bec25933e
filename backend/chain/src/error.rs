//! Errors of the chain side: [`ContractError`] is a revert decoded into the generated error enum
//! of the contract that raised it; [`ChainError`] is everything a chain call can fail with.

use std::fmt;

use alloy::primitives::{Bytes, TxHash, U256};
use alloy::sol_types::{SolError, SolInterface};

use crate::bindings::{
    AlgorithmRegistry::AlgorithmRegistryErrors, AssetRegistry::AssetRegistryErrors,
    ConsentRegistry::ConsentRegistryErrors, EnergyBilling::EnergyBillingErrors,
    FlexToken::FlexTokenErrors, StatusLedger::StatusLedgerErrors, TestEuro::TestEuroErrors,
};

/// The evflex contracts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Contract {
    /// SC1.
    AssetRegistry,
    /// Algorithm versions.
    AlgorithmRegistry,
    /// SC2.
    StatusLedger,
    /// FLEX.
    FlexToken,
    /// tEUR.
    TestEuro,
    /// SC3.
    EnergyBilling,
    /// Consents.
    ConsentRegistry,
}

impl fmt::Display for Contract {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// A revert decoded against the ABI of the contract that raised it.
///
/// Match on the typed variants (e.g.
/// `ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(e))`);
/// `Display` prints the error name and its arguments, e.g.
/// `StatusLedgerAlreadyCommitted { groupId: 1, timestep: 7, revision: 0 }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContractError {
    /// A custom error of AssetRegistry (or AccessControl).
    AssetRegistry(AssetRegistryErrors),
    /// A custom error of AlgorithmRegistry.
    AlgorithmRegistry(AlgorithmRegistryErrors),
    /// A custom error of StatusLedger.
    StatusLedger(StatusLedgerErrors),
    /// A custom error of FlexToken (ERC-20, AccessControl).
    FlexToken(FlexTokenErrors),
    /// A custom error of TestEuro (ERC-20, AccessControl).
    TestEuro(TestEuroErrors),
    /// A custom error of EnergyBilling (also ERC-20 errors of the tokens it calls).
    EnergyBilling(EnergyBillingErrors),
    /// A custom error of ConsentRegistry.
    ConsentRegistry(ConsentRegistryErrors),
    /// `require(..., "message")` / `revert("message")`.
    Message(String),
    /// A Solidity panic (assert, overflow, ...) with its code.
    Panic(U256),
    /// Revert data matching none of the above.
    Unknown(Bytes),
}

fn variant_debug<T: fmt::Debug>(value: &T) -> String {
    // The generated enums print as `Name(Name { args })`; keep the inner `Name { args }`.
    let s = format!("{value:?}");
    match s.split_once('(') {
        Some((_, inner)) if inner.ends_with(')') => inner[..inner.len() - 1].to_owned(),
        _ => s,
    }
}

impl ContractError {
    /// Decodes revert `data` of `contract`.
    pub fn decode(contract: Contract, data: &[u8]) -> Self {
        fn typed<E: SolInterface>(data: &[u8]) -> Option<E> {
            E::abi_decode(data).ok()
        }
        let decoded = match contract {
            Contract::AssetRegistry => typed(data).map(Self::AssetRegistry),
            Contract::AlgorithmRegistry => typed(data).map(Self::AlgorithmRegistry),
            Contract::StatusLedger => typed(data).map(Self::StatusLedger),
            Contract::FlexToken => typed(data).map(Self::FlexToken),
            Contract::TestEuro => typed(data).map(Self::TestEuro),
            Contract::EnergyBilling => typed(data).map(Self::EnergyBilling),
            Contract::ConsentRegistry => typed(data).map(Self::ConsentRegistry),
        };
        if let Some(decoded) = decoded {
            return decoded;
        }
        if let Ok(revert) = alloy::sol_types::Revert::abi_decode(data) {
            return Self::Message(revert.reason);
        }
        if let Ok(panic) = alloy::sol_types::Panic::abi_decode(data) {
            return Self::Panic(panic.code);
        }
        Self::Unknown(Bytes::copy_from_slice(data))
    }

    /// The error's 4-byte selector, if the revert had one.
    pub fn selector(&self) -> Option<[u8; 4]> {
        match self {
            Self::AssetRegistry(e) => Some(e.selector()),
            Self::AlgorithmRegistry(e) => Some(e.selector()),
            Self::StatusLedger(e) => Some(e.selector()),
            Self::FlexToken(e) => Some(e.selector()),
            Self::TestEuro(e) => Some(e.selector()),
            Self::EnergyBilling(e) => Some(e.selector()),
            Self::ConsentRegistry(e) => Some(e.selector()),
            Self::Message(_) => Some(alloy::sol_types::Revert::SELECTOR),
            Self::Panic(_) => Some(alloy::sol_types::Panic::SELECTOR),
            Self::Unknown(data) => data.get(..4).map(|s| s.try_into().expect("4 bytes")),
        }
    }

    /// The error's name and arguments, e.g.
    /// `StatusLedgerAlreadyCommitted { groupId: 1, timestep: 7, revision: 0 }`.
    pub fn describe(&self) -> String {
        match self {
            Self::AssetRegistry(e) => variant_debug(e),
            Self::AlgorithmRegistry(e) => variant_debug(e),
            Self::StatusLedger(e) => variant_debug(e),
            Self::FlexToken(e) => variant_debug(e),
            Self::TestEuro(e) => variant_debug(e),
            Self::EnergyBilling(e) => variant_debug(e),
            Self::ConsentRegistry(e) => variant_debug(e),
            Self::Message(m) => format!("Error({m:?})"),
            Self::Panic(code) => format!("Panic({code:#x})"),
            Self::Unknown(data) => format!("unknown revert {data}"),
        }
    }

    /// The error's name alone, e.g. `StatusLedgerAlreadyCommitted`.
    pub fn name(&self) -> String {
        let d = self.describe();
        d.split([' ', '(', '{'])
            .next()
            .unwrap_or_default()
            .to_owned()
    }
}

impl fmt::Display for ContractError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl std::error::Error for ContractError {}

/// The name of the EnergyBilling error with `selector` (e.g. a `SettlementSkipped` reason).
pub fn billing_error_name(selector: [u8; 4]) -> Option<&'static str> {
    EnergyBillingErrors::SELECTORS
        .iter()
        .position(|s| *s == selector)
        .and_then(|i| EnergyBillingErrors::SIGNATURES.get(i))
        .map(|sig| sig.split('(').next().unwrap_or(sig))
}

/// Everything a chain call can fail with. Messages never carry key material or secrets; RPC
/// URLs are reduced to scheme, host and port.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    /// The call or transaction reverted with a decoded contract error.
    #[error("{contract}.{method} reverted: {error}")]
    Reverted {
        /// The contract called.
        contract: Contract,
        /// The function called.
        method: &'static str,
        /// The decoded revert.
        error: ContractError,
    },
    /// The transaction was mined but failed (status 0).
    #[error("{contract}.{method}: transaction {tx_hash} failed on chain in block {block_number}")]
    FailedOnChain {
        /// The contract called.
        contract: Contract,
        /// The function called.
        method: &'static str,
        /// The transaction.
        tx_hash: TxHash,
        /// Its block.
        block_number: u64,
    },
    /// A status commit for `(group_id, timestep, revision)` exists with other hashes than the
    /// ones sent.
    #[error(
        "group {group_id} timestep {timestep} revision {revision} is committed with other hashes"
    )]
    CommitConflict {
        /// The group.
        group_id: u64,
        /// The timestep.
        timestep: u64,
        /// The revision within the timestep (0: the tick's).
        revision: u32,
    },
    /// An asset is registered with other values than the ones sent (update it instead).
    #[error("{what} {id} is registered with other values")]
    AssetConflict {
        /// "group", "charge point" or "limit node".
        what: &'static str,
        /// The asset id.
        id: u64,
    },
    /// No receipt came within the timeout (e.g. a nonce gap, or the node stopped mining).
    #[error("no receipt for {tx_hash} within {timeout_s} s")]
    ReceiptTimeout {
        /// The transaction sent.
        tx_hash: TxHash,
        /// The timeout in seconds.
        timeout_s: u64,
    },
    /// The node is on another chain than the deployment.
    #[error("node is on chain {actual}, deployment is for chain {expected}")]
    WrongChain {
        /// The deployment's chain id.
        expected: u64,
        /// The node's chain id.
        actual: u64,
    },
    /// Transport or JSON-RPC failure (retryable).
    #[error("rpc error: {0}")]
    Rpc(String),
    /// Malformed data (bad member blob, undecodable log, bad argument).
    #[error("invalid data: {0}")]
    Invalid(String),
    /// Reading deployment or account files.
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
    /// Starting or stopping the local anvil node.
    #[error("anvil: {0}")]
    Anvil(String),
    /// A wallet operation failed.
    #[error(transparent)]
    Wallet(#[from] crate::wallet::WalletError),
}

impl ChainError {
    /// Whether retrying the same call later may succeed (transport trouble, timeouts), as
    /// opposed to a revert or conflict that will fail again.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Rpc(_) | Self::ReceiptTimeout { .. })
    }

    /// The decoded revert, if this is one.
    pub fn contract_error(&self) -> Option<&ContractError> {
        match self {
            Self::Reverted { error, .. } => Some(error),
            _ => None,
        }
    }
}

/// Removes userinfo, path and query from every `http(s)://…` URL in `message` (RPC URLs often
/// embed API keys).
pub(crate) fn redact_urls(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(pos) = rest.find("http") {
        let (before, from) = rest.split_at(pos);
        out.push_str(before);
        let scheme_len = if from.starts_with("https://") {
            8
        } else if from.starts_with("http://") {
            7
        } else {
            out.push_str("http");
            rest = &from[4..];
            continue;
        };
        let end = from
            .find(|c: char| c.is_whitespace() || matches!(c, ')' | '"' | '\'' | ','))
            .unwrap_or(from.len());
        let url = &from[..end];
        let authority_end = url[scheme_len..]
            .find(['/', '?', '#'])
            .map_or(url.len(), |i| i + scheme_len);
        let authority = &url[scheme_len..authority_end];
        let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        out.push_str(&url[..scheme_len]);
        out.push_str(host);
        if authority_end < url.len() || host.len() != authority.len() {
            out.push_str("/[redacted]");
        }
        rest = &from[end..];
    }
    out.push_str(rest);
    out
}

/// Turns an alloy contract-call error into a [`ChainError`]: reverts are decoded against
/// `contract`'s ABI, everything else is an RPC error.
pub fn decode_call_error(
    contract: Contract,
    method: &'static str,
    err: alloy::contract::Error,
) -> ChainError {
    if let Some(data) = err.as_revert_data() {
        return ChainError::Reverted {
            contract,
            method,
            error: ContractError::decode(contract, &data),
        };
    }
    ChainError::Rpc(redact_urls(&err.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        let m = "error sending request for url (https://user:pw@rpc.example.com/v3/SECRETKEY?x=1): boom";
        let r = redact_urls(m);
        assert!(!r.contains("SECRETKEY") && !r.contains("pw@"), "{r}");
        assert!(r.contains("https://rpc.example.com/[redacted]"), "{r}");
        assert_eq!(
            redact_urls("http://127.0.0.1:8545"),
            "http://127.0.0.1:8545"
        );
        assert_eq!(redact_urls("no url here, httpx"), "no url here, httpx");
    }

    #[test]
    fn decodes_status_ledger_error() {
        use crate::bindings::StatusLedger::StatusLedgerAlreadyCommitted;
        use alloy::sol_types::SolError;
        let data = StatusLedgerAlreadyCommitted {
            groupId: 3,
            timestep: 9,
            revision: 2,
        }
        .abi_encode();
        let e = ContractError::decode(Contract::StatusLedger, &data);
        assert!(matches!(
            e,
            ContractError::StatusLedger(StatusLedgerErrors::StatusLedgerAlreadyCommitted(_))
        ));
        assert_eq!(e.name(), "StatusLedgerAlreadyCommitted");
        assert!(e.to_string().contains("groupId: 3"), "{e}");
        assert!(e.to_string().contains("revision: 2"), "{e}");
        let msg = alloy::sol_types::Revert::from("nope").abi_encode();
        assert_eq!(
            ContractError::decode(Contract::StatusLedger, &msg).to_string(),
            "Error(\"nope\")"
        );
    }
}
