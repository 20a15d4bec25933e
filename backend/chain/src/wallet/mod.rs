//! Custodial e-wallets: one secp256k1 key per EV user, generated from the OS random source and
//! kept only as an encrypted Ethereum keystore v3 (scrypt + AES-128-CTR) sealed with the
//! service's [`MasterSecret`].
//!
//! - [`generate`] makes a new [`EncryptedWallet`] (address + keystore JSON) for the database;
//!   the plaintext key never leaves this module.
//! - [`open`] decrypts one into a [`Wallet`] that can sign; [`export_keystore`] re-encrypts it
//!   under a password the user chooses, for import into another wallet (MetaMask, `cast`).
//! - [`siwe`]: Sign-In with Ethereum (EIP-4361) challenges and their verification.
//! - [`eip712`]: typed-data signatures the contracts check (consents, revocations, bills).
//!
//! Secrets print as `[REDACTED]`; no error message carries key material or a secret.

pub mod eip712;
pub mod keystore;
pub mod siwe;

use std::fmt;

use alloy::primitives::Address;
use alloy::signers::local::PrivateKeySigner;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

pub use keystore::ScryptParams;

/// Errors of the wallet module. None carries key material or secrets.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The OS random source failed.
    #[error("the OS random source is unavailable")]
    Random,
    /// The keystore JSON is malformed or uses something this module does not support.
    #[error("invalid keystore: {0}")]
    Keystore(&'static str),
    /// The keystore's MAC does not match: wrong master secret or password, or a tampered file.
    #[error("wrong secret for this keystore (or the keystore was tampered with)")]
    WrongSecret,
    /// The keystore decrypts to a key of another address than the one stored beside it.
    #[error("keystore holds the key of {actual}, not of {expected}")]
    AddressMismatch {
        /// The address stored with the keystore.
        expected: Address,
        /// The address of the decrypted key.
        actual: Address,
    },
    /// The master secret is missing or too short.
    #[error("master secret: {0}")]
    MasterSecret(&'static str),
    /// Signing failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// The secret every custodial keystore is sealed with (from the environment in production).
///
/// Prints as `[REDACTED]` through both `Debug` and `Display`, and is wiped from memory on drop.
pub struct MasterSecret(SecretString);

impl MasterSecret {
    /// The shortest master secret accepted, in bytes.
    pub const MIN_LEN: usize = 16;

    /// Wraps `secret`; fails if it is shorter than [`Self::MIN_LEN`] bytes.
    pub fn new(secret: impl Into<String>) -> Result<Self, WalletError> {
        let secret: String = secret.into();
        if secret.len() < Self::MIN_LEN {
            return Err(WalletError::MasterSecret("shorter than 16 bytes"));
        }
        Ok(Self(SecretString::from(secret)))
    }

    /// Reads the master secret from the environment variable `var`.
    pub fn from_env(var: &str) -> Result<Self, WalletError> {
        let value = std::env::var(var).map_err(|_| WalletError::MasterSecret("not set"))?;
        Self::new(value)
    }

    fn bytes(&self) -> &[u8] {
        self.0.expose_secret().as_bytes()
    }
}

impl fmt::Debug for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterSecret([REDACTED])")
    }
}

impl fmt::Display for MasterSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

/// A user's wallet as the database stores it: the address and the keystore sealed with the
/// master secret. Safe to log the address; the keystore is ciphertext but stays out of logs too.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EncryptedWallet {
    /// The wallet's address.
    pub address: Address,
    /// Keystore v3 JSON sealed with the master secret.
    pub keystore_json: String,
}

impl fmt::Debug for EncryptedWallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EncryptedWallet")
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// An opened wallet that can sign. Its `Debug` shows the address only; it has no `Display`,
/// `Clone` or serialisation, so the key cannot leak through formatting or be stored by accident.
pub struct Wallet {
    signer: PrivateKeySigner,
}

impl Wallet {
    /// The wallet's address.
    pub fn address(&self) -> Address {
        self.signer.address()
    }

    /// The signer, to sign typed data or to send transactions from this wallet.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.signer
    }
}

impl fmt::Debug for Wallet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wallet")
            .field("address", &self.address())
            .finish_non_exhaustive()
    }
}

/// Generates a new key from the OS random source and seals it with `master`.
pub fn generate(master: &MasterSecret) -> Result<EncryptedWallet, WalletError> {
    let signer = random_signer()?;
    seal(&signer, master)
}

/// A signer with a fresh key from the OS random source (retrying the ~2^-128 chance of a
/// 32-byte value outside the curve order).
pub fn random_signer() -> Result<PrivateKeySigner, WalletError> {
    loop {
        let mut bytes = secrecy::zeroize::Zeroizing::new([0u8; 32]);
        getrandom::fill(bytes.as_mut()).map_err(|_| WalletError::Random)?;
        if let Ok(signer) = PrivateKeySigner::from_bytes(&(*bytes).into()) {
            return Ok(signer);
        }
    }
}

/// Seals an existing key with `master` (e.g. a CPO meter key imported into the service).
pub fn seal(
    signer: &PrivateKeySigner,
    master: &MasterSecret,
) -> Result<EncryptedWallet, WalletError> {
    let keystore_json = keystore::encrypt(signer, master.bytes(), ScryptParams::CUSTODIAL)?;
    Ok(EncryptedWallet {
        address: signer.address(),
        keystore_json,
    })
}

/// Opens a keystore sealed with `master`.
pub fn open(keystore_json: &str, master: &MasterSecret) -> Result<Wallet, WalletError> {
    Ok(Wallet {
        signer: keystore::decrypt(keystore_json, master.bytes())?,
    })
}

/// Opens a stored wallet and checks the key is the one of its recorded address.
pub fn open_wallet(wallet: &EncryptedWallet, master: &MasterSecret) -> Result<Wallet, WalletError> {
    let opened = open(&wallet.keystore_json, master)?;
    if opened.address() != wallet.address {
        return Err(WalletError::AddressMismatch {
            expected: wallet.address,
            actual: opened.address(),
        });
    }
    Ok(opened)
}

/// Re-encrypts a stored wallet under `password` (chosen by the user) with geth's standard scrypt
/// cost, for the user to import elsewhere. The returned JSON is a standard keystore v3 file.
pub fn export_keystore(
    wallet: &EncryptedWallet,
    master: &MasterSecret,
    password: &SecretString,
) -> Result<String, WalletError> {
    let opened = open_wallet(wallet, master)?;
    keystore::encrypt(
        &opened.signer,
        password.expose_secret().as_bytes(),
        ScryptParams::STANDARD,
    )
}
