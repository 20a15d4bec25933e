//! Where the contracts are: `anvil/deployment.json` as the deploy script writes it, and the dev
//! accounts of the local chain from `anvil/accounts.json`.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use alloy::primitives::{Address, B256};
use alloy::signers::local::PrivateKeySigner;
use serde::{Deserialize, Serialize};

use crate::error::ChainError;

/// The repository root (two levels above this crate), for dev tools and tests.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.."))
}

fn read(path: &Path) -> Result<String, ChainError> {
    std::fs::read_to_string(path).map_err(|e| ChainError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

fn parse<T: for<'de> Deserialize<'de>>(path: &Path, text: &str) -> Result<T, ChainError> {
    serde_json::from_str(text).map_err(|e| ChainError::File {
        path: path.display().to_string(),
        message: e.to_string(),
    })
}

/// The addresses of the deployed evflex contracts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Contracts {
    /// SC1.
    pub asset_registry: Address,
    /// Algorithm versions.
    pub algorithm_registry: Address,
    /// SC2.
    pub status_ledger: Address,
    /// FLEX.
    pub flex_token: Address,
    /// The payment token (tEUR on local chains).
    pub test_euro: Address,
    /// SC3.
    pub energy_billing: Address,
    /// Consents.
    pub consent_registry: Address,
}

/// A deployment record (`anvil/deployment.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Deployment {
    /// The chain the contracts are on.
    pub chain_id: u64,
    /// The contract addresses.
    pub contracts: Contracts,
    /// Role holders as the deploy script recorded them (name → address or list of addresses).
    #[serde(default)]
    pub roles: BTreeMap<String, serde_json::Value>,
    /// The block of the first deployment transaction: event scans start here.
    #[serde(default)]
    pub start_block: u64,
}

impl Deployment {
    /// Reads a deployment record.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ChainError> {
        let path = path.as_ref();
        parse(path, &read(path)?)
    }

    /// Parses a deployment record from JSON text.
    pub fn from_json(json: &str) -> Result<Self, ChainError> {
        parse(Path::new("<deployment>"), json)
    }

    /// The address recorded for role `name`, if it is a single address.
    pub fn role(&self, name: &str) -> Option<Address> {
        self.roles
            .get(name)
            .and_then(|v| v.as_str())
            .and_then(|s| s.parse().ok())
    }
}

/// One dev account of the local chain.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DevAccount {
    /// Its index in the anvil mnemonic.
    #[serde(default)]
    pub index: u32,
    /// What the account is for (e.g. `admin`, `operator`, `cpo-meter`).
    #[serde(default, alias = "name")]
    pub role: String,
    /// Its address.
    pub address: Address,
    /// Its private key (public dev keys of anvil's test mnemonic; never use them elsewhere).
    pub private_key: String,
}

impl fmt::Debug for DevAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DevAccount")
            .field("index", &self.index)
            .field("role", &self.role)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

impl DevAccount {
    /// The account's signer.
    pub fn signer(&self) -> Result<PrivateKeySigner, ChainError> {
        let signer: PrivateKeySigner = self.private_key.parse().map_err(|_| {
            ChainError::Invalid(format!("bad private key for dev account {}", self.index))
        })?;
        if signer.address() != self.address {
            return Err(ChainError::Invalid(format!(
                "dev account {}: key does not match address",
                self.index
            )));
        }
        Ok(signer)
    }
}

/// Roles of the first dev accounts, by index.
const DEV_ROLES: [&str; 5] = [
    "admin",
    "operator",
    "cpo-admin",
    "cpo-meter",
    "cpo-treasury",
];

/// The local chain's settings (`anvil/anvil.json`).
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AnvilSettings {
    /// Chain id.
    pub chain_id: u64,
    /// The (public, test-only) mnemonic of the dev accounts.
    pub mnemonic: String,
    /// Number of dev accounts.
    pub accounts: u32,
    /// EVM hardfork.
    #[serde(default)]
    pub hardfork: Option<String>,
}

impl AnvilSettings {
    /// Reads `anvil/anvil.json`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ChainError> {
        let path = path.as_ref();
        parse(path, &read(path)?)
    }
}

/// The dev accounts of the local chain (`anvil/accounts.json`): 0 admin, 1 operator (the evflex
/// backend), 2 CPO admin/registrar, 3 CPO meter signer, 4 CPO treasury, 5.. demo users.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accounts {
    /// The accounts in index order.
    pub accounts: Vec<DevAccount>,
}

impl Accounts {
    /// Reads `anvil/accounts.json`.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ChainError> {
        let path = path.as_ref();
        let text = read(path)?;
        // Accept both `{"accounts": [...]}` and a bare array.
        let mut accounts = match parse::<Accounts>(path, &text) {
            Ok(a) => a,
            Err(_) => Accounts {
                accounts: parse::<Vec<DevAccount>>(path, &text)?,
            },
        };
        accounts.accounts.sort_by_key(|a| a.index);
        Ok(accounts)
    }

    /// Derives `count` accounts from a BIP-39 `mnemonic` (path `m/44'/60'/0'/0/i`, as anvil
    /// does).
    pub fn from_mnemonic(mnemonic: &str, count: u32) -> Result<Self, ChainError> {
        use alloy::signers::local::{MnemonicBuilder, coins_bip39::English};
        let accounts = (0..count)
            .map(|index| {
                let signer = MnemonicBuilder::<English>::default()
                    .phrase(mnemonic)
                    .index(index)
                    .map_err(|_| ChainError::Invalid("bad derivation index".into()))?
                    .build()
                    .map_err(|_| ChainError::Invalid("bad mnemonic".into()))?;
                Ok(DevAccount {
                    index,
                    role: DEV_ROLES
                        .get(index as usize)
                        .copied()
                        .unwrap_or("user")
                        .to_owned(),
                    address: signer.address(),
                    private_key: B256::from(signer.to_bytes()).to_string(),
                })
            })
            .collect::<Result<Vec<_>, ChainError>>()?;
        Ok(Self { accounts })
    }

    /// The repository's dev accounts: `anvil/accounts.json` if present, else derived from the
    /// mnemonic and account count in `anvil/anvil.json`.
    pub fn from_repo() -> Result<Self, ChainError> {
        let dir = repo_root().join("anvil");
        let accounts = dir.join("accounts.json");
        if accounts.exists() {
            return Self::load(accounts);
        }
        let settings = AnvilSettings::load(dir.join("anvil.json"))?;
        Self::from_mnemonic(&settings.mnemonic, settings.accounts)
    }

    /// Account `index`.
    pub fn get(&self, index: usize) -> Result<&DevAccount, ChainError> {
        self.accounts
            .get(index)
            .ok_or_else(|| ChainError::Invalid(format!("no dev account {index}")))
    }

    /// Account 0: deployer, admin of every contract.
    pub fn admin(&self) -> Result<PrivateKeySigner, ChainError> {
        self.get(0)?.signer()
    }
    /// Account 1: the evflex backend (OPERATOR_ROLE).
    pub fn operator(&self) -> Result<PrivateKeySigner, ChainError> {
        self.get(1)?.signer()
    }
    /// Account 2: the CPO's admin and asset registrar.
    pub fn cpo_admin(&self) -> Result<PrivateKeySigner, ChainError> {
        self.get(2)?.signer()
    }
    /// Account 3: the CPO's meter key, which signs bills.
    pub fn cpo_meter(&self) -> Result<PrivateKeySigner, ChainError> {
        self.get(3)?.signer()
    }
    /// Account 4: the CPO's treasury.
    pub fn cpo_treasury(&self) -> Result<PrivateKeySigner, ChainError> {
        self.get(4)?.signer()
    }
    /// Demo user `n` (account 5 + n).
    pub fn demo_user(&self, n: usize) -> Result<PrivateKeySigner, ChainError> {
        self.get(5 + n)?.signer()
    }
}
