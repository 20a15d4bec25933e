//! ConsentRegistry: users' EIP-712-signed consents to smart charging, relayed by the operator.

use alloy::primitives::{Address, B256, Bytes, U256};
use alloy::sol_types::Eip712Domain;

use super::{ChainClient, WriteOutcome};
use crate::bindings::{Consent, ConsentRegistry::ConsentRegistryErrors, Revocation};
use crate::error::{ChainError, Contract, ContractError, decode_call_error};

impl ChainClient {
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
            Err(e) if is_invalid_nonce(&e) => {
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
            Err(e) if is_invalid_nonce(&e) => {
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

/// Whether `e` is the ConsentRegistry's revert for a nonce already used: a replay, or a
/// signature that lost a race with a newer one (the callers tell the two apart on chain).
fn is_invalid_nonce(e: &ChainError) -> bool {
    matches!(
        e,
        ChainError::Reverted {
            error: ContractError::ConsentRegistry(
                ConsentRegistryErrors::ConsentRegistryInvalidNonce(_)
            ),
            ..
        }
    )
}
