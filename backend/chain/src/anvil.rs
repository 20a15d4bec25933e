//! A local anvil node for development and tests, started from the ready chain snapshot
//! `anvil/state.json` (contracts deployed, roles granted, dev accounts funded).
//!
//! The node runs on a free port with its own copy of the snapshot (`--state`), so
//! [`LocalChain::stop`] (a graceful SIGINT, which makes anvil dump its state) followed by
//! [`LocalChain::start_again`] brings the same chain back on the same port, as a crashed and
//! restarted node would. Dropping a `LocalChain` kills the node.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use alloy::providers::{Provider, ProviderBuilder};

use crate::deployment::{AnvilSettings, repo_root};
use crate::error::ChainError;

/// How to start a [`LocalChain`].
#[derive(Debug, Clone)]
pub struct LocalChainConfig {
    /// The anvil executable. `node_modules/.bin/anvil` (the npm shim) is resolved to the native
    /// binary it wraps, so signals reach anvil itself.
    pub anvil: PathBuf,
    /// The chain snapshot to start from (copied; never modified).
    pub state: Option<PathBuf>,
    /// The chain id.
    pub chain_id: u64,
    /// The port; a free one when `None`.
    pub port: Option<u16>,
    /// Seconds between blocks; `None` mines a block per transaction.
    pub block_time: Option<u64>,
    /// How long to wait for the node to answer.
    pub startup_timeout: Duration,
    /// More anvil arguments (e.g. `--hardfork prague`).
    pub extra_args: Vec<String>,
}

impl LocalChainConfig {
    /// The repository's anvil (`node_modules/.bin/anvil`, or `$EVFLEX_ANVIL`), snapshot
    /// (`anvil/state.json`) and settings (`anvil/anvil.json`: chain id, mnemonic, hardfork).
    pub fn from_repo() -> Self {
        let root = repo_root();
        let settings = AnvilSettings::load(root.join("anvil/anvil.json")).ok();
        let mut extra_args = Vec::new();
        if let Some(s) = &settings {
            extra_args.extend(["--mnemonic".to_owned(), s.mnemonic.clone()]);
            extra_args.extend(["--accounts".to_owned(), s.accounts.to_string()]);
            if let Some(h) = &s.hardfork {
                extra_args.extend(["--hardfork".to_owned(), h.clone()]);
            }
        }
        let anvil = std::env::var_os("EVFLEX_ANVIL")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("node_modules/.bin/anvil"));
        Self {
            anvil,
            state: Some(root.join("anvil/state.json")),
            chain_id: settings.as_ref().map_or(31337, |s| s.chain_id),
            port: None,
            block_time: None,
            startup_timeout: Duration::from_secs(20),
            extra_args,
        }
    }
}

/// A running (or stopped) local anvil node; killed on drop.
#[derive(Debug)]
pub struct LocalChain {
    config: LocalChainConfig,
    binary: PathBuf,
    port: u16,
    state_dir: tempfile::TempDir,
    child: Option<Child>,
}

/// The native anvil behind the npm shim `node_modules/.bin/anvil`, or `path` itself.
fn native_binary(path: &Path) -> PathBuf {
    let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    if resolved
        .extension()
        .is_some_and(|e| e == "mjs" || e == "js")
        && let Some(pkg_dir) = resolved.parent().and_then(Path::parent)
    {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        let native = pkg_dir.join(format!("anvil-{}-{arch}/bin/anvil", std::env::consts::OS));
        if native.is_file() {
            return native;
        }
    }
    path.to_path_buf()
}

fn free_port() -> Result<u16, ChainError> {
    let listener =
        TcpListener::bind("127.0.0.1:0").map_err(|e| ChainError::Anvil(e.to_string()))?;
    Ok(listener
        .local_addr()
        .map_err(|e| ChainError::Anvil(e.to_string()))?
        .port())
}

impl LocalChain {
    /// Starts anvil from `config` and waits until it answers.
    #[tracing::instrument(skip_all, fields(chain_id = config.chain_id))]
    pub async fn start(config: LocalChainConfig) -> Result<Self, ChainError> {
        let binary = native_binary(&config.anvil);
        let state_dir = tempfile::Builder::new()
            .prefix("evflex-anvil-")
            .tempdir()
            .map_err(|e| ChainError::Anvil(e.to_string()))?;
        if let Some(state) = &config.state {
            std::fs::copy(state, state_dir.path().join("state.json")).map_err(|e| {
                ChainError::File {
                    path: state.display().to_string(),
                    message: format!("cannot copy chain snapshot: {e}"),
                }
            })?;
        }
        let port = match config.port {
            Some(p) => p,
            None => free_port()?,
        };
        let mut chain = Self {
            config,
            binary,
            port,
            state_dir,
            child: None,
        };
        chain.spawn().await?;
        Ok(chain)
    }

    /// Starts the repository's chain ([`LocalChainConfig::from_repo`]).
    pub async fn start_from_repo() -> Result<Self, ChainError> {
        Self::start(LocalChainConfig::from_repo()).await
    }

    /// The node's HTTP JSON-RPC endpoint.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The endpoint as a URL.
    pub fn url(&self) -> alloy::transports::http::reqwest::Url {
        self.endpoint().parse().expect("valid local URL")
    }

    /// The port the node listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the node process is running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    fn state_file(&self) -> PathBuf {
        self.state_dir.path().join("state.json")
    }

    async fn spawn(&mut self) -> Result<(), ChainError> {
        let state = self.state_file();
        let mut cmd = Command::new(&self.binary);
        cmd.arg("--port")
            .arg(self.port.to_string())
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--chain-id")
            .arg(self.config.chain_id.to_string())
            .arg("--silent")
            .arg("--preserve-historical-states");
        if state.exists() {
            // Load the snapshot and dump the chain back into it on a graceful stop.
            cmd.arg("--state").arg(&state);
        } else {
            cmd.arg("--dump-state").arg(&state);
        }
        cmd.args(&self.config.extra_args);
        if let Some(bt) = self.config.block_time {
            cmd.arg("--block-time").arg(bt.to_string());
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        #[cfg(unix)]
        {
            use std::os::unix::process::CommandExt;
            cmd.process_group(0);
        }
        let child = cmd.spawn().map_err(|e| {
            ChainError::Anvil(format!("cannot start {}: {e}", self.binary.display()))
        })?;
        tracing::debug!(pid = child.id(), port = self.port, "anvil started");
        self.child = Some(child);
        self.wait_ready().await
    }

    async fn wait_ready(&mut self) -> Result<(), ChainError> {
        let provider = ProviderBuilder::new().connect_http(self.url());
        let deadline = Instant::now() + self.config.startup_timeout;
        loop {
            if let Ok(id) = provider.get_chain_id().await {
                if id != self.config.chain_id {
                    return Err(ChainError::WrongChain {
                        expected: self.config.chain_id,
                        actual: id,
                    });
                }
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return Err(ChainError::Anvil(format!(
                    "anvil exited during startup: {status}"
                )));
            }
            if Instant::now() >= deadline {
                return Err(ChainError::Anvil(format!(
                    "no answer on port {} within {:?}",
                    self.port, self.config.startup_timeout
                )));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops the node gracefully (SIGINT), letting it dump the chain into its state file, and
    /// waits for it to exit. A no-op if it is not running.
    #[tracing::instrument(skip_all, fields(port = self.port))]
    pub async fn stop(&mut self) -> Result<(), ChainError> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        // Stop mining first: a transaction that arrives while anvil dumps its state on SIGINT
        // could otherwise be mined into a block the dump misses, so a sender would hold a
        // receipt for a block the restarted node never had (a reorg, which the e2e suite's anvil
        // restart hit now and then). Unmined, it is simply gone, and the sender resends it.
        let provider = ProviderBuilder::new().connect_http(self.url());
        let _ = provider
            .raw_request::<_, serde_json::Value>("evm_setAutomine".into(), (false,))
            .await;
        let pid = child.id().to_string();
        let _ = Command::new("kill").args(["-INT", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            match child.try_wait() {
                Ok(Some(_)) => return Ok(()),
                Ok(None) if Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(ChainError::Anvil(
                        "anvil did not stop on SIGINT; killed".into(),
                    ));
                }
            }
        }
    }

    /// Starts the node again after [`stop`](Self::stop), on the same port, from the state it
    /// dumped.
    #[tracing::instrument(skip_all, fields(port = self.port))]
    pub async fn start_again(&mut self) -> Result<(), ChainError> {
        if self.is_running() {
            return Ok(());
        }
        self.spawn().await
    }

    /// [`stop`](Self::stop) then [`start_again`](Self::start_again).
    pub async fn restart(&mut self) -> Result<(), ChainError> {
        self.stop().await?;
        self.start_again().await
    }

    /// Kills the node without letting it save state (a crash).
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for LocalChain {
    fn drop(&mut self) {
        self.kill();
    }
}
