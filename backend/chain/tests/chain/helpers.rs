//! Shared fixtures: a fresh anvil per test, started from `anvil/state.json`.

use evflex_chain::alloy_types::PrivateKeySigner;
use evflex_chain::{Accounts, ChainClient, Deployment, LocalChain, LocalChainConfig, repo_root};

/// A running local chain with the repository's deployment and dev accounts.
pub struct TestChain {
    pub chain: LocalChain,
    pub deployment: Deployment,
    pub accounts: Accounts,
}

/// Makes sure `anvil/state.json` exists, building it with `scripts/anvil-state` once if not.
fn ensure_state() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let root = repo_root();
        if root.join("anvil/state.json").exists() && root.join("anvil/deployment.json").exists() {
            return;
        }
        let script = root.join("scripts/anvil-state");
        assert!(
            script.exists(),
            "anvil/state.json is missing and scripts/anvil-state does not exist"
        );
        let status = std::process::Command::new(script)
            .status()
            .expect("run scripts/anvil-state");
        assert!(status.success(), "scripts/anvil-state failed");
    });
}

impl TestChain {
    pub async fn start() -> Self {
        ensure_state();
        let root = repo_root();
        let chain = LocalChain::start(LocalChainConfig::from_repo())
            .await
            .expect("start anvil");
        let deployment =
            Deployment::load(root.join("anvil/deployment.json")).expect("deployment.json");
        let accounts = Accounts::from_repo().expect("dev accounts");
        Self {
            chain,
            deployment,
            accounts,
        }
    }

    pub async fn client(&self, signer: PrivateKeySigner) -> ChainClient {
        ChainClient::connect(&self.chain.endpoint(), self.deployment.clone(), signer)
            .await
            .expect("connect")
    }

    /// The evflex backend (OPERATOR_ROLE everywhere, asset registrar, tEUR minter).
    pub async fn operator(&self) -> ChainClient {
        self.client(self.accounts.operator().unwrap()).await
    }

    /// The CPO's admin (asset registrar, the CPO's identity in EnergyBilling).
    pub async fn cpo_admin(&self) -> ChainClient {
        self.client(self.accounts.cpo_admin().unwrap()).await
    }
}
