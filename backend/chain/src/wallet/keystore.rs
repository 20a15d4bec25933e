//! Ethereum keystore v3 ("Web3 Secret Storage") in memory: scrypt derives a key from a password,
//! AES-128-CTR encrypts the private key, and `keccak256(derived[16..32] ‖ ciphertext)` is the MAC.
//!
//! The JSON produced here is what geth, Foundry (`cast wallet import`), MetaMask and ethers/alloy
//! read; [`decrypt`] reads theirs (scrypt only; pbkdf2 keystores are refused).

use aes::Aes128;
use alloy::primitives::{Address, B256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use ctr::cipher::{KeyIvInit, StreamCipher};
use secrecy::zeroize::{Zeroize, Zeroizing};
use serde::{Deserialize, Serialize};

use super::WalletError;

type Aes128Ctr = ctr::Ctr128BE<Aes128>;

/// The largest scrypt cost accepted when decrypting (`n = 2^20`, 1 GiB with `r = 8`): a keystore
/// is untrusted input and must not make the service allocate without bound.
const MAX_LOG_N: u8 = 20;

/// scrypt cost parameters for new keystores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScryptParams {
    /// log2 of the CPU/memory cost `n`.
    pub log_n: u8,
    /// Block size `r`.
    pub r: u32,
    /// Parallelism `p`.
    pub p: u32,
}

impl ScryptParams {
    /// geth's "standard" cost (`n = 2^18`, 256 MiB): for keys a user exports and keeps.
    pub const STANDARD: Self = Self {
        log_n: 18,
        r: 8,
        p: 1,
    };
    /// The cost used for custodial keystores (`n = 2^14`, 16 MiB, tens of milliseconds): the
    /// master secret is a high-entropy random value, so the KDF needs no extra stretching to
    /// resist guessing, and the service opens a keystore per signature.
    pub const CUSTODIAL: Self = Self {
        log_n: 14,
        r: 8,
        p: 1,
    };
}

#[derive(Serialize, Deserialize)]
struct KeystoreFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    address: Option<String>,
    crypto: CryptoJson,
    id: String,
    version: u32,
}

#[derive(Serialize, Deserialize)]
struct CryptoJson {
    cipher: String,
    cipherparams: CipherParams,
    ciphertext: String,
    kdf: String,
    kdfparams: serde_json::Value,
    mac: String,
}

#[derive(Serialize, Deserialize)]
struct CipherParams {
    iv: String,
}

#[derive(Serialize, Deserialize)]
struct ScryptKdfParams {
    dklen: usize,
    n: u64,
    p: u32,
    r: u32,
    salt: String,
}

fn random_bytes<const N: usize>() -> Result<[u8; N], WalletError> {
    let mut out = [0u8; N];
    getrandom::fill(&mut out).map_err(|_| WalletError::Random)?;
    Ok(out)
}

fn derive_key(
    password: &[u8],
    salt: &[u8],
    params: ScryptParams,
) -> Result<Zeroizing<[u8; 32]>, WalletError> {
    let scrypt_params = scrypt::Params::new(params.log_n, params.r, params.p, 32)
        .map_err(|_| WalletError::Keystore("invalid scrypt parameters"))?;
    let mut derived = Zeroizing::new([0u8; 32]);
    scrypt::scrypt(password, salt, &scrypt_params, derived.as_mut())
        .map_err(|_| WalletError::Keystore("invalid scrypt output length"))?;
    Ok(derived)
}

fn mac(derived: &[u8; 32], ciphertext: &[u8]) -> B256 {
    let mut input = Vec::with_capacity(16 + ciphertext.len());
    input.extend_from_slice(&derived[16..32]);
    input.extend_from_slice(ciphertext);
    let out = keccak256(&input);
    input.zeroize();
    out
}

/// A random RFC 4122 version-4 UUID, as keystore files carry.
fn uuid_v4() -> Result<String, WalletError> {
    let mut b = random_bytes::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = alloy::hex::encode(b);
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// Encrypts `signer`'s private key under `password` into keystore v3 JSON.
pub fn encrypt(
    signer: &PrivateKeySigner,
    password: &[u8],
    params: ScryptParams,
) -> Result<String, WalletError> {
    let salt = random_bytes::<32>()?;
    let iv = random_bytes::<16>()?;
    let derived = derive_key(password, &salt, params)?;

    let mut ciphertext = Zeroizing::new(signer.to_bytes().0);
    let mut cipher = Aes128Ctr::new(derived[..16].into(), (&iv).into());
    cipher.apply_keystream(ciphertext.as_mut());
    let mac = mac(&derived, ciphertext.as_ref());

    let kdfparams = ScryptKdfParams {
        dklen: 32,
        n: 1u64 << params.log_n,
        p: params.p,
        r: params.r,
        salt: alloy::hex::encode(salt),
    };
    let file = KeystoreFile {
        address: Some(alloy::hex::encode(signer.address())),
        crypto: CryptoJson {
            cipher: "aes-128-ctr".into(),
            cipherparams: CipherParams {
                iv: alloy::hex::encode(iv),
            },
            ciphertext: alloy::hex::encode(ciphertext.as_ref()),
            kdf: "scrypt".into(),
            kdfparams: serde_json::to_value(kdfparams)
                .map_err(|_| WalletError::Keystore("cannot encode kdf parameters"))?,
            mac: alloy::hex::encode(mac),
        },
        id: uuid_v4()?,
        version: 3,
    };
    serde_json::to_string(&file).map_err(|_| WalletError::Keystore("cannot encode keystore"))
}

fn hex_field(value: &str, what: &'static str) -> Result<Vec<u8>, WalletError> {
    alloy::hex::decode(value).map_err(|_| WalletError::Keystore(what))
}

/// The address a keystore declares (its optional `address` field), without decrypting it.
pub fn declared_address(keystore_json: &str) -> Result<Option<Address>, WalletError> {
    let file: KeystoreFile = serde_json::from_str(keystore_json)
        .map_err(|_| WalletError::Keystore("not keystore v3 JSON"))?;
    file.address
        .map(|a| {
            a.parse::<Address>()
                .map_err(|_| WalletError::Keystore("invalid address field"))
        })
        .transpose()
}

/// Decrypts keystore v3 JSON with `password`.
///
/// Fails with [`WalletError::WrongSecret`] when the MAC does not match (wrong password or a
/// tampered file), and with [`WalletError::Keystore`] when the JSON is not a keystore this
/// module can read. If the keystore declares an address, it must be the decrypted key's.
pub fn decrypt(keystore_json: &str, password: &[u8]) -> Result<PrivateKeySigner, WalletError> {
    let file: KeystoreFile = serde_json::from_str(keystore_json)
        .map_err(|_| WalletError::Keystore("not keystore v3 JSON"))?;
    if file.version != 3 {
        return Err(WalletError::Keystore("unsupported keystore version"));
    }
    if !file.crypto.cipher.eq_ignore_ascii_case("aes-128-ctr") {
        return Err(WalletError::Keystore(
            "unsupported cipher (only aes-128-ctr)",
        ));
    }
    if file.crypto.kdf != "scrypt" {
        return Err(WalletError::Keystore("unsupported kdf (only scrypt)"));
    }
    let kdf: ScryptKdfParams = serde_json::from_value(file.crypto.kdfparams)
        .map_err(|_| WalletError::Keystore("invalid scrypt parameters"))?;
    if kdf.dklen != 32 || !kdf.n.is_power_of_two() || kdf.n < 2 {
        return Err(WalletError::Keystore("invalid scrypt parameters"));
    }
    let log_n = kdf.n.trailing_zeros() as u8;
    if log_n > MAX_LOG_N || kdf.r == 0 || kdf.r > 32 || kdf.p == 0 || kdf.p > 16 {
        return Err(WalletError::Keystore(
            "scrypt parameters out of the accepted range",
        ));
    }
    let salt = hex_field(&kdf.salt, "invalid salt")?;
    let iv = hex_field(&file.crypto.cipherparams.iv, "invalid iv")?;
    let ciphertext = hex_field(&file.crypto.ciphertext, "invalid ciphertext")?;
    let expected_mac = hex_field(&file.crypto.mac, "invalid mac")?;
    if iv.len() != 16 || ciphertext.len() != 32 || expected_mac.len() != 32 {
        return Err(WalletError::Keystore("invalid field length"));
    }

    let derived = derive_key(
        password,
        &salt,
        ScryptParams {
            log_n,
            r: kdf.r,
            p: kdf.p,
        },
    )?;
    if mac(&derived, &ciphertext).as_slice() != expected_mac.as_slice() {
        return Err(WalletError::WrongSecret);
    }
    let mut key = Zeroizing::new([0u8; 32]);
    key.copy_from_slice(&ciphertext);
    let mut cipher = Aes128Ctr::new(derived[..16].into(), iv.as_slice().into());
    cipher.apply_keystream(key.as_mut());
    let signer = PrivateKeySigner::from_bytes(&B256::from(*key))
        .map_err(|_| WalletError::Keystore("decrypted key is not a valid secp256k1 key"))?;

    if let Some(declared) = file.address {
        let declared: Address = declared
            .parse()
            .map_err(|_| WalletError::Keystore("invalid address field"))?;
        if declared != signer.address() {
            return Err(WalletError::Keystore(
                "address field does not match the key",
            ));
        }
    }
    Ok(signer)
}
