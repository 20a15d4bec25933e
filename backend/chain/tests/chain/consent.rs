//! Consents: signed by a custodial wallet, relayed by the operator, revoked by signature.

use evflex_chain::alloy_types::U256;
use evflex_chain::bindings::ConsentRegistry::ConsentRegistryErrors;
use evflex_chain::wallet::eip712::{
    consent_domain, consent_signing_hash, sign_consent, sign_revocation,
};
use evflex_chain::wallet::{self, MasterSecret};
use evflex_chain::{Consent, ContractError, Revocation, WriteOutcome};

use crate::helpers::TestChain;

#[tokio::test]
async fn consent_recorded_and_revoked() {
    let t = TestChain::start().await;
    let op = t.operator().await;
    let master = MasterSecret::new("test master secret for consents").unwrap();
    let stored = wallet::generate(&master).unwrap();
    let user = wallet::open_wallet(&stored, &master).unwrap();
    let scope = alloy::primitives::keccak256("evflex:smart-charging");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();

    let domain = op.consent_domain().await.unwrap();
    assert_eq!(
        domain,
        consent_domain(
            t.deployment.chain_id,
            t.deployment.contracts.consent_registry
        )
    );
    let consent = Consent {
        user: user.address(),
        scope,
        expiry: now + 86_400 * 30,
        nonce: op.consent_nonce(user.address()).await.unwrap(),
    };
    assert_eq!(consent.nonce, U256::ZERO);
    let sig = sign_consent(user.signer(), &consent, &domain).unwrap();
    assert_eq!(
        alloy::providers::Provider::get_chain_id(op.provider())
            .await
            .unwrap(),
        t.deployment.chain_id
    );
    let on_chain_hash = evflex_chain::bindings::ConsentRegistry::new(
        t.deployment.contracts.consent_registry,
        op.provider().clone(),
    )
    .hashConsent(consent.clone())
    .call()
    .await
    .unwrap();
    assert_eq!(on_chain_hash, consent_signing_hash(&consent, &domain));

    assert!(!op.has_consent(user.address(), scope).await.unwrap());
    assert!(matches!(
        op.record_consent(&consent, &sig).await.unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert!(op.has_consent(user.address(), scope).await.unwrap());
    assert_eq!(
        op.consent_expiry(user.address(), scope).await.unwrap(),
        consent.expiry
    );
    // relayed again (writer restart): already done
    assert_eq!(
        op.record_consent(&consent, &sig).await.unwrap(),
        WriteOutcome::AlreadyDone
    );

    // a consent signed by someone else is refused
    let mallory = wallet::open_wallet(&wallet::generate(&master).unwrap(), &master).unwrap();
    let other = Consent {
        nonce: U256::from(1),
        ..consent.clone()
    };
    let bad = sign_consent(mallory.signer(), &other, &domain).unwrap();
    let err = op.record_consent(&other, &bad).await.unwrap_err();
    assert!(
        matches!(
            err.contract_error(),
            Some(ContractError::ConsentRegistry(
                ConsentRegistryErrors::ConsentRegistryInvalidSignature(_)
            ))
        ),
        "{err}"
    );

    let revocation = Revocation {
        user: user.address(),
        scope,
        nonce: op.consent_nonce(user.address()).await.unwrap(),
    };
    let rsig = sign_revocation(user.signer(), &revocation, &domain).unwrap();
    assert!(matches!(
        op.revoke_consent_with_sig(&revocation, &rsig)
            .await
            .unwrap(),
        WriteOutcome::Mined(_)
    ));
    assert!(!op.has_consent(user.address(), scope).await.unwrap());
    assert_eq!(
        op.revoke_consent_with_sig(&revocation, &rsig)
            .await
            .unwrap(),
        WriteOutcome::AlreadyDone
    );
}
