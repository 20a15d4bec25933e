//! Sign-In with Ethereum (EIP-4361): the service issues a challenge message naming its domain,
//! the user's address and a one-time nonce; the user's wallet signs it with `personal_sign`
//! (EIP-191); the service recovers the signer and checks domain, address, validity window and
//! nonce. The nonce store belongs to the caller: it says whether a nonce is fresh and marks it
//! used.

use std::fmt;
use std::str::FromStr;

use alloy::primitives::{Address, Signature};
use alloy::signers::SignerSync;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use super::{Wallet, WalletError};

const PREAMBLE: &str = " wants you to sign in with your Ethereum account:";

/// Why a sign-in message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SiweError {
    /// The message does not follow the EIP-4361 format.
    #[error("malformed sign-in message: {0}")]
    Malformed(String),
    /// The signature bytes are not a 65-byte secp256k1 signature, or recovery failed.
    #[error("invalid signature")]
    InvalidSignature,
    /// The message was signed by another key than its address's.
    #[error("signature is by {recovered}, not by {claimed}")]
    WrongAddress {
        /// The address the message names.
        claimed: Address,
        /// The address that signed it.
        recovered: Address,
    },
    /// The message is for another domain (phishing protection).
    #[error("message is for domain {actual:?}, expected {expected:?}")]
    WrongDomain {
        /// The domain this service expects.
        expected: String,
        /// The domain in the message.
        actual: String,
    },
    /// The message is for another chain.
    #[error("message is for chain {actual}, expected {expected}")]
    WrongChain {
        /// The chain id this service expects.
        expected: u64,
        /// The chain id in the message.
        actual: u64,
    },
    /// The message expired.
    #[error("message expired at {0}")]
    Expired(String),
    /// The message is not valid yet.
    #[error("message is not valid before {0}")]
    NotYetValid(String),
    /// The nonce was never issued or was already used.
    #[error("nonce unknown or already used")]
    NonceReused,
}

/// An EIP-4361 message. [`fmt::Display`] renders the exact text to sign; [`FromStr`] parses it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SiweMessage {
    /// The RFC 3986 authority asking for the sign-in, e.g. `app.evflex.example`.
    pub domain: String,
    /// The signing account.
    pub address: Address,
    /// A human-readable statement shown to the user (no newlines).
    pub statement: Option<String>,
    /// The URI the sign-in is for.
    pub uri: String,
    /// EIP-155 chain id.
    pub chain_id: u64,
    /// A one-time random alphanumeric value (at least 8 characters).
    pub nonce: String,
    /// When the message was issued.
    pub issued_at: OffsetDateTime,
    /// When the message stops being valid.
    pub expiration_time: Option<OffsetDateTime>,
    /// When the message starts being valid.
    pub not_before: Option<OffsetDateTime>,
}

/// What the verifier expects of a message.
#[derive(Debug, Clone)]
pub struct SiweExpectation<'a> {
    /// This service's domain.
    pub domain: &'a str,
    /// This service's chain id.
    pub chain_id: u64,
    /// The current time.
    pub now: OffsetDateTime,
}

fn rfc3339(t: &OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

/// A fresh 16-character alphanumeric nonce from the OS random source.
pub fn generate_nonce() -> Result<String, WalletError> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut out = String::with_capacity(16);
    while out.len() < 16 {
        let mut b = [0u8; 32];
        getrandom::fill(&mut b).map_err(|_| WalletError::Random)?;
        // 62 * 4 = 248: reject bytes >= 248 to keep the choice uniform.
        out.extend(
            b.iter()
                .filter(|&&x| x < 248)
                .map(|&x| ALPHABET[(x % 62) as usize] as char),
        );
    }
    out.truncate(16);
    Ok(out)
}

impl SiweMessage {
    /// A challenge for `address` valid from `issued_at` for `ttl`, with a fresh nonce.
    pub fn challenge(
        domain: &str,
        uri: &str,
        chain_id: u64,
        address: Address,
        issued_at: OffsetDateTime,
        ttl: time::Duration,
    ) -> Result<Self, WalletError> {
        Ok(Self {
            domain: domain.to_owned(),
            address,
            statement: Some("Sign in to evflex.".to_owned()),
            uri: uri.to_owned(),
            chain_id,
            nonce: generate_nonce()?,
            issued_at,
            expiration_time: Some(issued_at + ttl),
            not_before: None,
        })
    }

    /// Signs the message with `wallet` (EIP-191 `personal_sign`), returning 65 signature bytes.
    pub fn sign(&self, wallet: &Wallet) -> Result<[u8; 65], WalletError> {
        let sig = wallet
            .signer()
            .sign_message_sync(self.to_string().as_bytes())
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        Ok(sig.as_bytes())
    }

    /// Checks `signature` over this message against `expected`, and `nonce_is_fresh` (the
    /// caller's store consumed the nonce). Returns the signing address.
    ///
    /// Order: domain, chain, signature and address, validity window, nonce; the nonce is judged
    /// last so a refused message does not burn it.
    pub fn verify(
        &self,
        signature: &[u8],
        expected: &SiweExpectation<'_>,
        nonce_is_fresh: impl FnOnce(&str) -> bool,
    ) -> Result<Address, SiweError> {
        if self.domain != expected.domain {
            return Err(SiweError::WrongDomain {
                expected: expected.domain.to_owned(),
                actual: self.domain.clone(),
            });
        }
        if self.chain_id != expected.chain_id {
            return Err(SiweError::WrongChain {
                expected: expected.chain_id,
                actual: self.chain_id,
            });
        }
        let sig = Signature::try_from(signature).map_err(|_| SiweError::InvalidSignature)?;
        let recovered = sig
            .recover_address_from_msg(self.to_string().as_bytes())
            .map_err(|_| SiweError::InvalidSignature)?;
        if recovered != self.address {
            return Err(SiweError::WrongAddress {
                claimed: self.address,
                recovered,
            });
        }
        if let Some(exp) = self.expiration_time
            && expected.now >= exp
        {
            return Err(SiweError::Expired(rfc3339(&exp)));
        }
        if let Some(nbf) = self.not_before
            && expected.now < nbf
        {
            return Err(SiweError::NotYetValid(rfc3339(&nbf)));
        }
        if !nonce_is_fresh(&self.nonce) {
            return Err(SiweError::NonceReused);
        }
        Ok(recovered)
    }
}

/// Parses `message`, then [`SiweMessage::verify`]s it. Returns the parsed message (its
/// `address` is the signer).
pub fn verify_sign_in(
    message: &str,
    signature: &[u8],
    expected: &SiweExpectation<'_>,
    nonce_is_fresh: impl FnOnce(&str) -> bool,
) -> Result<SiweMessage, SiweError> {
    let parsed: SiweMessage = message.parse()?;
    parsed.verify(signature, expected, nonce_is_fresh)?;
    Ok(parsed)
}

impl fmt::Display for SiweMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}{PREAMBLE}", self.domain)?;
        writeln!(f, "{}", self.address.to_checksum(None))?;
        writeln!(f)?;
        if let Some(statement) = &self.statement {
            writeln!(f, "{statement}")?;
        }
        writeln!(f)?;
        writeln!(f, "URI: {}", self.uri)?;
        writeln!(f, "Version: 1")?;
        writeln!(f, "Chain ID: {}", self.chain_id)?;
        writeln!(f, "Nonce: {}", self.nonce)?;
        write!(f, "Issued At: {}", rfc3339(&self.issued_at))?;
        if let Some(exp) = &self.expiration_time {
            write!(f, "\nExpiration Time: {}", rfc3339(exp))?;
        }
        if let Some(nbf) = &self.not_before {
            write!(f, "\nNot Before: {}", rfc3339(nbf))?;
        }
        Ok(())
    }
}

fn malformed(what: &str) -> SiweError {
    SiweError::Malformed(what.to_owned())
}

fn parse_time(value: &str, what: &str) -> Result<OffsetDateTime, SiweError> {
    OffsetDateTime::parse(value, &Rfc3339).map_err(|_| malformed(what))
}

impl FromStr for SiweMessage {
    type Err = SiweError;

    fn from_str(message: &str) -> Result<Self, SiweError> {
        let mut lines = message.split('\n');
        let mut next = |what: &str| lines.next().ok_or_else(|| malformed(what));

        let domain = next("preamble")?
            .strip_suffix(PREAMBLE)
            .filter(|d| !d.is_empty() && !d.contains(char::is_whitespace))
            .ok_or_else(|| malformed("preamble"))?
            .to_owned();
        let address_line = next("address")?;
        let address = Address::parse_checksummed(address_line, None)
            .map_err(|_| malformed("address (must be EIP-55 checksummed)"))?;
        if !next("blank line after address")?.is_empty() {
            return Err(malformed("blank line after address"));
        }
        let mut line = next("statement or URI")?;
        let statement = if line.is_empty() {
            None
        } else {
            let s = line.to_owned();
            if !next("blank line after statement")?.is_empty() {
                return Err(malformed("blank line after statement"));
            }
            Some(s)
        };
        line = next("URI")?;

        let field = |line: &str, name: &str| -> Result<String, SiweError> {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or_else(|| malformed(name))
        };
        let uri = field(line, "URI")?;
        let version = field(next("Version")?, "Version")?;
        if version != "1" {
            return Err(malformed("Version (must be 1)"));
        }
        let chain_id = field(next("Chain ID")?, "Chain ID")?
            .parse::<u64>()
            .map_err(|_| malformed("Chain ID"))?;
        let nonce = field(next("Nonce")?, "Nonce")?;
        if nonce.len() < 8 || !nonce.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(malformed("Nonce (8+ alphanumeric characters)"));
        }
        let issued_at = parse_time(&field(next("Issued At")?, "Issued At")?, "Issued At")?;

        let mut expiration_time = None;
        let mut not_before = None;
        for line in lines {
            if let Some(v) = line.strip_prefix("Expiration Time: ") {
                if expiration_time.is_some() || not_before.is_some() {
                    return Err(malformed("Expiration Time out of order"));
                }
                expiration_time = Some(parse_time(v, "Expiration Time")?);
            } else if let Some(v) = line.strip_prefix("Not Before: ") {
                if not_before.is_some() {
                    return Err(malformed("duplicate Not Before"));
                }
                not_before = Some(parse_time(v, "Not Before")?);
            } else {
                return Err(malformed("unsupported or unknown field"));
            }
        }
        Ok(Self {
            domain,
            address,
            statement,
            uri,
            chain_id,
            nonce,
            issued_at,
            expiration_time,
            not_before,
        })
    }
}
