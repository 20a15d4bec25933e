//! The service's e-wallets: a custodial wallet per registered user (generated from the OS random
//! source, stored only as a keystore sealed with the master secret), Sign-In with Ethereum,
//! and the user's smart-charging consent signed with their custodial key (EIP-712) and relayed
//! on chain by the operator through the outbox. Owns `wallets` and `auth_nonces` (through
//! [`crate::store::wallets`]).
//!
//! No function here logs or returns key material; keystores leave the service only through
//! [`export`], re-encrypted under a password the user chose.

use crate::chain::{ChainContext, Error};
use crate::store::{Conn, outbox, wallets};
use alloy::primitives::{Address, B256, U256, keccak256};
use evflex_chain::wallet::siwe::{SiweExpectation, SiweMessage, verify_sign_in};
use evflex_chain::wallet::{self as cw, EncryptedWallet, eip712};
use evflex_chain::work::{ChainWork, ConsentWork, SpendingLimitWork};
use evflex_chain::{Consent, Revocation};
use secrecy::SecretString;
use time::OffsetDateTime;

/// The consent scope evflex asks for.
pub fn smart_charging_scope() -> B256 {
    keccak256("evflex.smart-charging.v1")
}

/// How long a consent is valid (s).
pub const CONSENT_TTL_S: i64 = 365 * 86_400;
/// How long a sign-in challenge is valid (s).
pub const CHALLENGE_TTL_S: i64 = 300;

/// Generates and stores a custodial wallet for `user_id` (in the caller's transaction).
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn create_for_user(
    conn: &mut Conn,
    ctx: &ChainContext,
    user_id: i64,
    now: i64,
) -> Result<Address, Error> {
    let w = cw::generate(&ctx.master)?;
    wallets::insert(
        conn,
        user_id,
        &w.address.to_string(),
        Some(&w.keystore_json),
        now,
    )
    .await?;
    Ok(w.address)
}

fn stored(row: &wallets::WalletRow) -> Result<Option<EncryptedWallet>, Error> {
    let Some(keystore_json) = row.keystore_json.clone() else {
        return Ok(None);
    };
    Ok(Some(EncryptedWallet {
        address: row
            .address
            .parse()
            .map_err(|_| Error::Invalid("stored wallet address".to_owned()))?,
        keystore_json,
    }))
}

/// The user's custodial wallet row and opened key; `None` without a custodial wallet.
async fn custodial(
    conn: &mut Conn,
    ctx: &ChainContext,
    user_id: i64,
) -> Result<Option<(wallets::WalletRow, cw::Wallet)>, Error> {
    let Some(row) = wallets::of_user(conn, user_id).await? else {
        return Ok(None);
    };
    let Some(enc) = stored(&row)? else {
        return Ok(None);
    };
    let wallet = cw::open_wallet(&enc, &ctx.master)?;
    Ok(Some((row, wallet)))
}

/// `ttl_s` after now as the chain counts it: block time is wall-clock time, while the
/// service's clock may be simulated (the later of the two).
fn chain_time_after(now: i64, ttl_s: i64) -> u64 {
    let wall = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(now, |d| d.as_secs() as i64);
    (wall.max(now) + ttl_s).max(0) as u64
}

/// Enqueues the user's signed consent (`opted_in`) or revocation as outbox work (in the caller's
/// transaction). `false` when the user has no custodial wallet (nothing to sign with).
#[tracing::instrument(skip_all, fields(user_id, opted_in))]
pub async fn enqueue_consent(
    conn: &mut Conn,
    ctx: &ChainContext,
    user_id: i64,
    opted_in: bool,
    now: i64,
) -> Result<bool, Error> {
    let Some((row, wallet)) = custodial(conn, ctx, user_id).await? else {
        return Ok(false);
    };
    let nonce = wallets::take_nonce(conn, user_id, wallets::NonceKind::Consent)
        .await?
        .unwrap_or_default()
        .max(0) as u64;
    let domain = eip712::consent_domain(
        ctx.deployment.chain_id,
        ctx.deployment.contracts.consent_registry,
    );
    let scope = smart_charging_scope();
    let (make, expiry, signature): (fn(ConsentWork) -> ChainWork, _, _) = if opted_in {
        let expiry = chain_time_after(now, CONSENT_TTL_S);
        let consent = Consent {
            user: wallet.address(),
            scope,
            expiry,
            nonce: U256::from(nonce),
        };
        (
            ChainWork::Consent,
            expiry,
            eip712::sign_consent(wallet.signer(), &consent, &domain)?,
        )
    } else {
        let revocation = Revocation {
            user: wallet.address(),
            scope,
            nonce: U256::from(nonce),
        };
        (
            ChainWork::Revocation,
            0,
            eip712::sign_revocation(wallet.signer(), &revocation, &domain)?,
        )
    };
    let work = make(ConsentWork {
        user: wallet.address().to_string(),
        scope: scope.to_string(),
        expiry,
        nonce,
        signature: signature.to_string(),
    });
    // Consents need the chain's wallets, so this runs only with a chain: always wanted.
    let key = format!("{}:{}:{nonce}", work.kind(), row.address);
    outbox::enqueue(conn, &key, &work, now).await?;
    Ok(true)
}

/// How long a signed spending-limit update may wait in the outbox before the chain refuses it
/// (s).
pub const SPENDING_LIMIT_TTL_S: i64 = 86_400;

/// Enqueues the user's spending limit on EnergyBilling settlements, signed with their
/// custodial key, as outbox work (in the caller's transaction): settlements may charge at most
/// `max_price_micro_eur_per_kwh` (0: any price) and debit at most `allowance` in all
/// (`U256::MAX`: no cap) from now on. `false` when the user has no custodial wallet: a user
/// with their own wallet calls `setSpendingLimit` on EnergyBilling themself.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn enqueue_spending_limit(
    conn: &mut Conn,
    ctx: &ChainContext,
    user_id: i64,
    max_price_micro_eur_per_kwh: u64,
    allowance: U256,
    now: i64,
) -> Result<bool, Error> {
    let Some((row, wallet)) = custodial(conn, ctx, user_id).await? else {
        return Ok(false);
    };
    let nonce = wallets::take_nonce(conn, user_id, wallets::NonceKind::SpendingLimit)
        .await?
        .unwrap_or_default()
        .max(0) as u64;
    let deadline = chain_time_after(now, SPENDING_LIMIT_TTL_S);
    let update = evflex_chain::SpendingLimitUpdate {
        user: wallet.address(),
        maxPriceMicroEurPerKwh: max_price_micro_eur_per_kwh,
        allowance,
        nonce: U256::from(nonce),
        deadline,
    };
    let domain = eip712::billing_domain(
        ctx.deployment.chain_id,
        ctx.deployment.contracts.energy_billing,
    );
    let signature = eip712::sign_spending_limit(wallet.signer(), &update, &domain)?;
    let work = ChainWork::SpendingLimit(SpendingLimitWork {
        user: wallet.address().to_string(),
        max_price_micro_eur_per_kwh,
        allowance: allowance.to_string(),
        nonce,
        deadline,
        signature: signature.to_string(),
    });
    let key = format!("{}:{}:{nonce}", work.kind(), row.address);
    outbox::enqueue(conn, &key, &work, now).await?;
    Ok(true)
}

/// Re-encrypts a user's custodial keystore under `password` (standard keystore v3 JSON).
pub fn export(
    ctx: &ChainContext,
    row: &wallets::WalletRow,
    password: &SecretString,
) -> Result<Option<String>, Error> {
    match stored(row)? {
        Some(enc) => Ok(Some(cw::export_keystore(&enc, &ctx.master, password)?)),
        None => Ok(None),
    }
}

fn odt(unix_s: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix_s).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// Issues a sign-in challenge for `address` and stores its nonce (valid [`CHALLENGE_TTL_S`]).
pub async fn challenge(
    conn: &mut Conn,
    ctx: &ChainContext,
    domain: &str,
    uri: &str,
    address: Address,
    now: i64,
) -> Result<String, Error> {
    let msg = SiweMessage::challenge(
        domain,
        uri,
        ctx.deployment.chain_id,
        address,
        odt(now),
        time::Duration::seconds(CHALLENGE_TTL_S),
    )?;
    // Challenges that can no longer be answered go as new ones come, so the table holds only
    // live ones (at most the rate limit's worth per address and TTL).
    wallets::purge_nonces(conn, now).await?;
    wallets::insert_nonce(
        conn,
        &msg.nonce,
        &address.to_string(),
        now + CHALLENGE_TTL_S,
        now,
    )
    .await?;
    Ok(msg.to_string())
}

/// Why a sign-in was refused (safe to show).
#[derive(Debug, thiserror::Error)]
pub enum SignInError {
    /// The message or signature is not acceptable.
    #[error("sign-in refused: {0}")]
    Refused(String),
    /// Internal failure.
    #[error(transparent)]
    Internal(#[from] Error),
}

/// Verifies a signed challenge and consumes its nonce; returns the signer's address.
pub async fn verify(
    conn: &mut Conn,
    ctx: &ChainContext,
    domain: &str,
    message: &str,
    signature: &[u8],
    now: i64,
) -> Result<Address, SignInError> {
    let expected = SiweExpectation {
        domain,
        chain_id: ctx.deployment.chain_id,
        now: odt(now),
    };
    // Check everything but the nonce first, then consume the nonce in the database.
    let parsed = verify_sign_in(message, signature, &expected, |_| true)
        .map_err(|e| SignInError::Refused(e.to_string()))?;
    let fresh = wallets::consume_nonce(conn, &parsed.nonce, &parsed.address.to_string(), now)
        .await
        .map_err(Error::from)?;
    if !fresh {
        return Err(SignInError::Refused(
            "nonce unknown, expired or already used".to_owned(),
        ));
    }
    Ok(parsed.address)
}
