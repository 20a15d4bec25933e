//! E-wallets and sign-in nonces. Owns `wallets` and `auth_nonces`.
//!
//! A wallet row is either custodial (`keystore_json` holds the key sealed with the master
//! secret; evflex signs consents for the user) or external (a user who signed in with their own
//! wallet: address only). Addresses are stored lower-case `0x`-hex.

use super::{Conn, StoreResult};
use sqlx::FromRow;

/// A stored wallet.
#[derive(Clone, PartialEq, Eq, FromRow)]
pub struct WalletRow {
    /// Owner.
    pub user_id: i64,
    /// Address, lower-case `0x`-hex.
    pub address: String,
    /// Keystore v3 JSON sealed with the master secret (custodial wallets only).
    pub keystore_json: Option<String>,
    /// The consent nonce the next signed consent or revocation carries.
    pub consent_nonce: i64,
}

impl std::fmt::Debug for WalletRow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WalletRow")
            .field("user_id", &self.user_id)
            .field("address", &self.address)
            .field("custodial", &self.keystore_json.is_some())
            .finish_non_exhaustive()
    }
}

/// Stores a user's wallet.
#[tracing::instrument(skip_all, fields(user_id))]
pub async fn insert(
    conn: &mut Conn,
    user_id: i64,
    address: &str,
    keystore_json: Option<&str>,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO wallets (user_id, address, keystore_json, consent_nonce, created_at)
         VALUES ($1, $2, $3, 0, $4)",
    )
    .bind(user_id)
    .bind(address.to_ascii_lowercase())
    .bind(keystore_json.map(str::to_owned))
    .bind(now)
    .execute(conn)
    .await
    .map_err(|e| super::StoreError::conflict_on_unique(e, "wallet address already registered"))?;
    Ok(())
}

/// The wallet of a user.
pub async fn of_user(conn: &mut Conn, user_id: i64) -> StoreResult<Option<WalletRow>> {
    Ok(sqlx::query_as(
        "SELECT user_id, address, keystore_json, consent_nonce FROM wallets WHERE user_id = $1",
    )
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// The wallet with an address.
pub async fn by_address(conn: &mut Conn, address: &str) -> StoreResult<Option<WalletRow>> {
    Ok(sqlx::query_as(
        "SELECT user_id, address, keystore_json, consent_nonce FROM wallets WHERE address = $1",
    )
    .bind(address.to_ascii_lowercase())
    .fetch_optional(conn)
    .await?)
}

/// Every wallet (for the audit).
pub async fn all(conn: &mut Conn) -> StoreResult<Vec<WalletRow>> {
    Ok(sqlx::query_as(
        "SELECT user_id, address, keystore_json, consent_nonce FROM wallets ORDER BY user_id",
    )
    .fetch_all(conn)
    .await?)
}

/// A counter of the EIP-712 messages evflex signs with a custodial key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NonceKind {
    /// ConsentRegistry consents and revocations (`consent_nonce`).
    Consent,
    /// EnergyBilling spending-limit updates (`spending_nonce`).
    SpendingLimit,
}

/// Takes the user's next nonce of `kind` (returns it and advances the stored one). Call it in
/// the transaction that enqueues the signed message.
pub async fn take_nonce(
    conn: &mut Conn,
    user_id: i64,
    kind: NonceKind,
) -> StoreResult<Option<i64>> {
    let column = match kind {
        NonceKind::Consent => "consent_nonce",
        NonceKind::SpendingLimit => "spending_nonce",
    };
    let row: Option<(i64,)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE wallets SET {column} = {column} + 1 WHERE user_id = $1 RETURNING {column} - 1"
    )))
    .bind(user_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|(n,)| n))
}

/// Stores a sign-in nonce issued to `address`, valid until `expires_at`.
pub async fn insert_nonce(
    conn: &mut Conn,
    nonce: &str,
    address: &str,
    expires_at: i64,
    now: i64,
) -> StoreResult<()> {
    sqlx::query(
        "INSERT INTO auth_nonces (nonce, address, expires_at, used, created_at)
         VALUES ($1, $2, $3, 0, $4)",
    )
    .bind(nonce)
    .bind(address.to_ascii_lowercase())
    .bind(expires_at)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes the sign-in nonces that can no longer be used (expired by `now`, or used); returns
/// how many.
pub async fn purge_nonces(conn: &mut Conn, now: i64) -> StoreResult<u64> {
    let r = sqlx::query("DELETE FROM auth_nonces WHERE expires_at <= $1 OR used = 1")
        .bind(now)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

/// Consumes a sign-in nonce issued to `address`: `true` only once, and only before expiry.
pub async fn consume_nonce(
    conn: &mut Conn,
    nonce: &str,
    address: &str,
    now: i64,
) -> StoreResult<bool> {
    let r = sqlx::query(
        "UPDATE auth_nonces SET used = 1
         WHERE nonce = $1 AND address = $2 AND used = 0 AND expires_at > $3",
    )
    .bind(nonce)
    .bind(address.to_ascii_lowercase())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
