//! The chain side of the service: configuration ([`ChainConfig`]), the connected
//! [`ChainContext`] shared by handlers and the writer, the outbox [`writer`], the service's
//! [`records`] (what its rows are on chain), and the [`audit`] (database against chain) and
//! `verify` (recompute a committed schedule) tools. Every contract call goes through
//! [`evflex_chain::ChainClient`]; nothing here builds a contract instance or decodes a log.
//!
//! # Keys
//!
//! - The **operator** key (`EVFLEX_OPERATOR_KEY`) sends every transaction: asset records (it
//!   holds REGISTRAR_ROLE), algorithm versions, status commits, settlements, relayed consents and
//!   demo top-ups. Without it evflex uses anvil's public dev operator key, but only when it
//!   started the local anvil itself.
//! - The CPO **meter** key (`EVFLEX_METER_KEY`) signs bills (EIP-712); same default rule.
//! - The **master secret** (`EVFLEX_MASTER_SECRET`) seals every custodial keystore. Its demo
//!   default ([`DEMO_MASTER_SECRET`]) is public and therefore insecure: it is used only with a
//!   local anvil started by evflex.
//!
//! None of them is ever logged or returned: they are [`Secret`]s / [`MasterSecret`]s.
//!
//! # Algorithm versions
//!
//! The tick stores `evflex_schedule::hash::params_hash(opts)` with every schedule. On
//! chain, the AlgorithmRegistry derives a version id from (model hash, solver version, params
//! hash); evflex registers model hash = keccak-256 of `MODEL_DEFINITION`, solver version =
//! `SOLVER`, params hash = the stored params hash. [`chain_algorithm_version`] maps the
//! stored value to the on-chain id, so the mapping needs no table.

pub mod audit;
pub mod records;
pub mod writer;

use crate::config::Secret;
use alloy::primitives::{Address, B256, keccak256};
use alloy::signers::local::PrivateKeySigner;
use clap::{Args, ValueEnum};
use evflex_chain::wallet::MasterSecret;
use evflex_chain::{
    Accounts, ChainClient, ChainError, Deployment, EvseStatus, LocalChain, PowerType,
};
use std::path::PathBuf;
use std::sync::Arc;

/// The public demo master secret (anvil demo only; never use it with real value).
pub const DEMO_MASTER_SECRET: &str = "evflex-demo-master-secret-INSECURE-do-not-use";

/// When the outbox writer runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum WriterMode {
    /// A background loop drains the outbox continuously.
    #[default]
    Auto,
    /// Never by itself: the caller runs [`writer::Writer::run_once`] (tests).
    Manual,
}

/// How a shortfall on an accepted request is compensated in the bill.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum Compensation {
    /// The undelivered energy of an accepted request is credited as free kWh (`creditWh`).
    #[default]
    FreeKwh,
    /// No compensation (`creditWh` = 0; the shortfall is still recorded).
    None,
}

/// Chain settings of `evflex serve` (flags and environment).
#[derive(Debug, Clone, Args)]
pub struct ChainConfig {
    /// Run without a chain: no writer, no wallets, no settlements (chain work stays queued).
    #[arg(long, env = "EVFLEX_NO_CHAIN")]
    pub no_chain: bool,
    /// JSON-RPC URL of the chain. Without it, evflex starts a local anvil from `anvil/` and stops
    /// it on exit.
    #[arg(long, env = "EVFLEX_RPC_URL", hide_env_values = true)]
    pub rpc_url: Option<Secret>,
    /// Deployment file (contract addresses, chain id).
    #[arg(
        long,
        env = "EVFLEX_DEPLOYMENT",
        default_value = "anvil/deployment.json"
    )]
    pub deployment: PathBuf,
    /// Operator private key (hex). Default: anvil's dev operator key, only for the local anvil
    /// evflex starts itself.
    #[arg(long, env = "EVFLEX_OPERATOR_KEY", hide_env_values = true)]
    pub operator_key: Option<Secret>,
    /// CPO meter private key that signs bills (hex). Same default rule as the operator key.
    #[arg(long, env = "EVFLEX_METER_KEY", hide_env_values = true)]
    pub meter_key: Option<Secret>,
    /// The CPO's address in EnergyBilling (default: the deployment's `cpo` role).
    #[arg(long, env = "EVFLEX_CPO_ADDRESS")]
    pub cpo_address: Option<String>,
    /// Secret sealing the custodial keystores (at least 16 bytes). Default: the public,
    /// INSECURE demo secret, only for the local anvil evflex starts itself.
    #[arg(long, env = "EVFLEX_MASTER_SECRET", hide_env_values = true)]
    pub master_secret: Option<Secret>,
    /// Outbox writer mode.
    #[arg(long, env = "EVFLEX_WRITER", value_enum, default_value_t = WriterMode::Auto)]
    pub writer: WriterMode,
    /// Pause between writer passes when the outbox is idle (ms).
    #[arg(long, env = "EVFLEX_WRITER_INTERVAL_MS", default_value_t = 1_000)]
    pub writer_interval_ms: u64,
    /// First retry delay of a failed chain write (s; doubles per attempt).
    #[arg(long, env = "EVFLEX_WRITER_BACKOFF_S", default_value_t = 2)]
    pub writer_backoff_s: i64,
    /// Longest retry delay (s).
    #[arg(long, env = "EVFLEX_WRITER_MAX_BACKOFF_S", default_value_t = 300)]
    pub writer_max_backoff_s: i64,
    /// How long a write waits for its receipt (s).
    #[arg(long, env = "EVFLEX_RECEIPT_TIMEOUT_S", default_value_t = 30)]
    pub receipt_timeout_s: u64,
    /// The CPO's flat tariff billed to users (micro-EUR per kWh).
    #[arg(long, env = "EVFLEX_CPO_TARIFF", default_value_t = 300_000)]
    pub tariff_micro_eur_per_kwh: i64,
    /// Compensation of a shortfall on an accepted request.
    #[arg(long, env = "EVFLEX_COMPENSATION", value_enum, default_value_t = Compensation::FreeKwh)]
    pub compensation: Compensation,
}

impl ChainConfig {
    /// No chain (what the service tests use).
    pub fn disabled() -> Self {
        Self {
            no_chain: true,
            rpc_url: None,
            deployment: PathBuf::from("anvil/deployment.json"),
            operator_key: None,
            meter_key: None,
            cpo_address: None,
            master_secret: None,
            writer: WriterMode::Manual,
            writer_interval_ms: 1_000,
            writer_backoff_s: 2,
            writer_max_backoff_s: 300,
            receipt_timeout_s: 30,
            tariff_micro_eur_per_kwh: 300_000,
            compensation: Compensation::FreeKwh,
        }
    }

    /// A chain at `rpc_url` with explicit keys and a manual writer (tests).
    pub fn for_tests(rpc_url: &str, operator_key: &str, meter_key: &str) -> Self {
        Self {
            no_chain: false,
            rpc_url: Some(Secret::new(rpc_url)),
            deployment: evflex_chain::repo_root().join("anvil/deployment.json"),
            operator_key: Some(Secret::new(operator_key)),
            meter_key: Some(Secret::new(meter_key)),
            master_secret: Some(Secret::new("test master secret, not for production")),
            receipt_timeout_s: 5,
            writer_backoff_s: 1,
            ..Self::disabled()
        }
    }
}

/// Errors of the chain layer. Messages carry no keys, secrets or RPC URL paths.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A chain call failed (boxed: chain errors are large).
    #[error(transparent)]
    Chain(Box<ChainError>),
    /// A wallet operation failed.
    #[error(transparent)]
    Wallet(#[from] evflex_chain::wallet::WalletError),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The configuration is unusable (the message names the setting).
    #[error("chain configuration: {0}")]
    Config(String),
    /// A stored payload or value is malformed.
    #[error("invalid data: {0}")]
    Invalid(String),
    /// An EVSE's row id is not a chain charge-point id.
    #[error(transparent)]
    ChargePointId(#[from] evflex_chain::ChargePointIdOutOfRange),
}

impl From<ChainError> for Error {
    fn from(e: ChainError) -> Self {
        Self::Chain(Box::new(e))
    }
}

/// A signer whose `Debug` shows only its address.
pub struct KeyRef(PrivateKeySigner);

impl KeyRef {
    /// The signer.
    pub fn signer(&self) -> &PrivateKeySigner {
        &self.0
    }
}

impl std::fmt::Debug for KeyRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyRef({})", self.0.address())
    }
}

fn parse_key(what: &str, key: &Secret) -> Result<PrivateKeySigner, Error> {
    key.expose()
        .trim()
        .parse::<PrivateKeySigner>()
        .map_err(|_| Error::Config(format!("{what} is not a valid private key")))
}

/// The connected chain, shared by the API (balances, top-ups, sign-in, consents), billing
/// (meter key) and the writer.
#[derive(Debug)]
pub struct ChainContext {
    /// The deployment (chain id, contract addresses).
    pub deployment: Deployment,
    /// The operator's client: the only key that sends transactions, and the only holder of its
    /// send lock (every operator send, writer or top-up, goes through it).
    pub operator: Arc<ChainClient>,
    /// The CPO meter key that signs bills.
    pub meter: KeyRef,
    /// The CPO's address in EnergyBilling.
    pub cpo: Address,
    /// Seals custodial keystores.
    pub master: MasterSecret,
    /// Whether this is a local demo chain (test-euro top-ups allowed).
    pub demo: bool,
    /// The settings.
    pub config: ChainConfig,
}

impl ChainContext {
    /// Connects as configured. With no RPC URL, starts a local anvil from `anvil/` (returned, so
    /// the caller stops it on exit) and uses the dev keys.
    #[tracing::instrument(skip_all)]
    pub async fn connect(config: &ChainConfig) -> Result<(Arc<Self>, Option<LocalChain>), Error> {
        let (rpc_url, local) = match &config.rpc_url {
            Some(url) => (url.expose().to_owned(), None),
            None => {
                let chain = LocalChain::start_from_repo().await?;
                tracing::info!(endpoint = %chain.endpoint(), "started a local anvil");
                (chain.endpoint(), Some(chain))
            }
        };
        let started_local = local.is_some();
        let mut path = config.deployment.clone();
        if path.is_relative() && !path.exists() {
            path = evflex_chain::repo_root().join(path);
        }
        let deployment = Deployment::load(&path)?;
        let dev = || -> Result<Accounts, Error> {
            if !started_local {
                return Err(Error::Config(
                    "EVFLEX_OPERATOR_KEY, EVFLEX_METER_KEY and EVFLEX_MASTER_SECRET are required \
                     with --rpc-url (dev defaults apply only to the local anvil evflex starts)"
                        .to_owned(),
                ));
            }
            Ok(Accounts::from_repo()?)
        };
        let operator_key = match &config.operator_key {
            Some(k) => parse_key("EVFLEX_OPERATOR_KEY", k)?,
            None => dev()?.operator()?,
        };
        let meter = match &config.meter_key {
            Some(k) => parse_key("EVFLEX_METER_KEY", k)?,
            None => dev()?.cpo_meter()?,
        };
        let master = match &config.master_secret {
            Some(s) => MasterSecret::new(s.expose())?,
            None => {
                dev()?;
                tracing::warn!("using the public demo master secret: keystores are NOT protected");
                MasterSecret::new(DEMO_MASTER_SECRET)?
            }
        };
        let cpo = match &config.cpo_address {
            Some(a) => a
                .parse::<Address>()
                .map_err(|_| Error::Config("EVFLEX_CPO_ADDRESS is not an address".to_owned()))?,
            None => deployment.role("cpo").ok_or_else(|| {
                Error::Config("the deployment names no `cpo`; set EVFLEX_CPO_ADDRESS".to_owned())
            })?,
        };
        let operator = ChainClient::connect(&rpc_url, deployment.clone(), operator_key)
            .await?
            .with_receipt_timeout(std::time::Duration::from_secs(config.receipt_timeout_s));
        let demo = deployment.chain_id == 31_337;
        Ok((
            Arc::new(Self {
                deployment,
                operator: Arc::new(operator),
                meter: KeyRef(meter),
                cpo,
                master,
                demo,
                config: config.clone(),
            }),
            local,
        ))
    }

    /// Registers the algorithm version of `opts` (idempotent); returns its on-chain id.
    #[tracing::instrument(skip_all)]
    pub async fn register_algorithm(
        &self,
        opts: &evflex_schedule::SolveOptions,
    ) -> Result<B256, Error> {
        let params = B256::from(evflex_schedule::hash::params_hash(opts));
        self.register_algorithm_params(params).await
    }

    /// Registers the on-chain version for a stored params hash.
    pub async fn register_algorithm_params(&self, params: B256) -> Result<B256, Error> {
        let (version, outcome) = self
            .operator
            .register_algorithm(
                model_hash(),
                evflex_schedule::hash::SOLVER,
                params,
                "https://example.invalid/evflex/algorithm",
            )
            .await?;
        debug_assert_eq!(version, chain_algorithm_version(params));
        tracing::info!(%version, ?outcome, "algorithm version registered");
        Ok(version)
    }
}

/// keccak-256 of the optimiser's model definition.
pub fn model_hash() -> B256 {
    keccak256(evflex_schedule::hash::MODEL_DEFINITION.as_bytes())
}

/// The on-chain algorithm version id derived from a stored params hash (see the module docs):
/// `keccak256(abi.encode(modelHash, keccak256(solver), paramsHash))`, as
/// `AlgorithmRegistry.computeVersion` computes it.
pub fn chain_algorithm_version(params: B256) -> B256 {
    let mut buf = Vec::with_capacity(96);
    buf.extend_from_slice(model_hash().as_slice());
    buf.extend_from_slice(keccak256(evflex_schedule::hash::SOLVER.as_bytes()).as_slice());
    buf.extend_from_slice(params.as_slice());
    keccak256(&buf)
}

/// Parses a `0x`-hex 32-byte value.
pub fn parse_b256(s: &str) -> Result<B256, Error> {
    s.parse::<B256>()
        .map_err(|_| Error::Invalid(format!("not a 32-byte hex value: {s:?}")))
}

/// The chain's status ordinal of an OCPI EVSE status string.
pub fn evse_status(s: &str) -> EvseStatus {
    match s {
        "AVAILABLE" => EvseStatus::Available,
        "BLOCKED" => EvseStatus::Blocked,
        "CHARGING" => EvseStatus::Charging,
        "INOPERATIVE" => EvseStatus::Inoperative,
        "OUTOFORDER" => EvseStatus::OutOfOrder,
        "PLANNED" => EvseStatus::Planned,
        "REMOVED" => EvseStatus::Removed,
        "RESERVED" => EvseStatus::Reserved,
        _ => EvseStatus::Unknown,
    }
}

/// The chain's power type of an OCPI power type string (AC 3-phase when unknown).
pub fn power_type(s: Option<&str>) -> PowerType {
    match s {
        Some("AC_1_PHASE") => PowerType::Ac1Phase,
        Some("AC_2_PHASE") => PowerType::Ac2Phase,
        Some("AC_2_PHASE_SPLIT") => PowerType::Ac2PhaseSplit,
        Some("DC") => PowerType::Dc,
        _ => PowerType::Ac3Phase,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn algorithm_version_mapping_is_stable_and_distinct() {
        let a = chain_algorithm_version(B256::repeat_byte(1));
        let b = chain_algorithm_version(B256::repeat_byte(2));
        assert_ne!(a, b);
        assert_eq!(a, chain_algorithm_version(B256::repeat_byte(1)));
    }

    #[test]
    fn statuses_map_to_the_registry_order() {
        assert_eq!(evse_status("CHARGING") as u8, 2);
        assert_eq!(evse_status("weird") as u8, 8);
        assert_eq!(power_type(Some("DC")) as u8, 4);
    }
}
