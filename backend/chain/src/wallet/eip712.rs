//! EIP-712 signatures the evflex contracts check: a user's [`Consent`] and [`Revocation`]
//! (ConsentRegistry) and a CPO meter key's [`Bill`] (EnergyBilling).
//!
//! The domain is the contract's own: read it from the chain with
//! [`ChainClient::billing_domain`](crate::ChainClient::billing_domain) /
//! [`ChainClient::consent_domain`](crate::ChainClient::consent_domain) (EIP-5267), or build it
//! with [`billing_domain`] / [`consent_domain`] from the chain id and contract address.

use alloy::primitives::{Address, B256, Bytes};
use alloy::signers::SignerSync;
use alloy::signers::local::PrivateKeySigner;
use alloy::sol_types::{Eip712Domain, SolStruct, eip712_domain};

use super::WalletError;
use crate::bindings::{Bill, Consent, Revocation, SpendingLimitUpdate};

/// The EIP-712 domain name of EnergyBilling.
pub const BILLING_DOMAIN_NAME: &str = "evflex EnergyBilling";
/// The EIP-712 domain name of ConsentRegistry.
pub const CONSENT_DOMAIN_NAME: &str = "evflex ConsentRegistry";

/// EnergyBilling's domain at `verifying_contract` on `chain_id`.
pub fn billing_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: BILLING_DOMAIN_NAME,
        version: "1",
        chain_id: chain_id,
        verifying_contract: verifying_contract,
    }
}

/// ConsentRegistry's domain at `verifying_contract` on `chain_id`.
pub fn consent_domain(chain_id: u64, verifying_contract: Address) -> Eip712Domain {
    eip712_domain! {
        name: CONSENT_DOMAIN_NAME,
        version: "1",
        chain_id: chain_id,
        verifying_contract: verifying_contract,
    }
}

fn sign_typed<T: SolStruct>(
    signer: &PrivateKeySigner,
    value: &T,
    domain: &Eip712Domain,
) -> Result<Bytes, WalletError> {
    let hash: B256 = value.eip712_signing_hash(domain);
    let sig = signer
        .sign_hash_sync(&hash)
        .map_err(|e| WalletError::Signing(e.to_string()))?;
    Ok(Bytes::from(sig.as_bytes().to_vec()))
}

/// Signs `consent` with the user's `wallet` (which must be `consent.user`'s key).
pub fn sign_consent(
    wallet: &PrivateKeySigner,
    consent: &Consent,
    domain: &Eip712Domain,
) -> Result<Bytes, WalletError> {
    sign_typed(wallet, consent, domain)
}

/// Signs a spending-limit `update` with the user's `wallet` (which must be `update.user`'s
/// key), in EnergyBilling's domain ([`billing_domain`]).
pub fn sign_spending_limit(
    wallet: &PrivateKeySigner,
    update: &SpendingLimitUpdate,
    domain: &Eip712Domain,
) -> Result<Bytes, WalletError> {
    sign_typed(wallet, update, domain)
}

/// Signs `revocation` with the user's `wallet` (which must be `revocation.user`'s key).
pub fn sign_revocation(
    wallet: &PrivateKeySigner,
    revocation: &Revocation,
    domain: &Eip712Domain,
) -> Result<Bytes, WalletError> {
    sign_typed(wallet, revocation, domain)
}

/// Signs `bill` with the CPO's meter key.
pub fn sign_bill(
    meter_signer: &PrivateKeySigner,
    bill: &Bill,
    domain: &Eip712Domain,
) -> Result<Bytes, WalletError> {
    sign_typed(meter_signer, bill, domain)
}

/// The digest a meter key signs for `bill` (what EnergyBilling's `hashBill` returns).
pub fn bill_signing_hash(bill: &Bill, domain: &Eip712Domain) -> B256 {
    bill.eip712_signing_hash(domain)
}

/// The digest a user signs for `consent` (what ConsentRegistry's `hashConsent` returns).
pub fn consent_signing_hash(consent: &Consent, domain: &Eip712Domain) -> B256 {
    consent.eip712_signing_hash(domain)
}
