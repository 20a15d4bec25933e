//! The pieces of an end-to-end run: a fresh PostgreSQL database, a local anvil from
//! `anvil/state.json`, and the real `evflex` binary as a child process (`serve --sim-clock`)
//! that can be SIGKILLed and started again on the same port and database. Every child process
//! is killed when its guard drops, also when a test fails (then the server log's tail is
//! printed).

use evflex::config::Secret;
use evflex_chain::{ChainClient, LocalChain};
use evflex_sim::{Operator, RemoteTarget};
use sqlx::PgPool;
use sqlx::postgres::PgPoolOptions;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// anvil's dev operator key (public; `anvil/accounts.json`).
pub const OPERATOR_KEY: &str = "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d";
/// anvil's dev CPO meter key (public).
pub const METER_KEY: &str = "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6";
/// The operator routes' token in these tests.
pub const OPERATOR_TOKEN: &str = "e2e-operator-token-not-secret";
/// The CPO tariff the server bills at (micro-EUR per kWh).
pub const TARIFF: i64 = 300_000;

/// The `evflex` binary cargo built for this test.
pub fn evflex_bin() -> &'static str {
    env!("CARGO_BIN_EXE_evflex")
}

/// The repository's chain deployment file.
pub fn deployment() -> PathBuf {
    evflex_chain::repo_root().join("anvil/deployment.json")
}

fn admin_url() -> String {
    std::env::var("EVFLEX_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates a fresh database; answers its URL and a pool on it.
pub async fn fresh_database() -> (String, PgPool) {
    use rand::RngCore;
    let mut b = [0u8; 6];
    rand::rng().fill_bytes(&mut b);
    let name = format!("evflex_e2e_{}", hex::encode(b));
    let admin = admin_url();
    let pool = PgPoolOptions::new()
        .max_connections(1)
        .connect(&admin)
        .await
        .expect("PostgreSQL on 127.0.0.1:5432 (database `test`)");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&pool)
        .await
        .expect("create the test database");
    pool.close().await;
    let base = admin.rsplit_once('/').map_or(admin.as_str(), |(b, _)| b);
    let url = format!("{base}/{name}");
    let pool = PgPoolOptions::new()
        .max_connections(4)
        .connect(&url)
        .await
        .expect("connect to the test database");
    (url, pool)
}

/// A free loopback port.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

/// `evflex serve --sim-clock` as a child process; killed on drop.
pub struct Server {
    child: Option<Child>,
    /// Its port (the same across restarts).
    pub port: u16,
    db_url: String,
    rpc_url: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
    /// Times it was started.
    pub starts: usize,
}

impl Server {
    /// Starts the server against `db_url` and the chain at `rpc_url` on a simulated clock showing
    /// `now`, and waits until it answers.
    pub async fn start(db_url: &str, rpc_url: &str, now: i64) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("evflex-e2e-")
            .tempdir()
            .expect("temp dir");
        let mut server = Self {
            child: None,
            port: free_port(),
            db_url: db_url.to_owned(),
            rpc_url: rpc_url.to_owned(),
            log: dir.path().join("evflex.log"),
            _dir: dir,
            starts: 0,
        };
        server.spawn(now);
        server.wait_ready().await;
        server
    }

    /// `http://127.0.0.1:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// What the simulator drives.
    pub fn target(&self) -> RemoteTarget {
        RemoteTarget {
            base_url: self.base_url(),
            operator_token: Secret::new(OPERATOR_TOKEN),
            registration_token: "e2e-token-a".to_owned(),
        }
    }

    /// Starts the process with its clock at `now` (does not wait for it to answer).
    pub fn spawn(&mut self, now: i64) {
        assert!(self.child.is_none(), "the server is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("server log");
        let child = Command::new(evflex_bin())
            .args(["serve", "--sim-clock", &now.to_string(), "--tick", "manual"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            // The simulated CPO listens on loopback.
            .arg("--allow-private-urls")
            // The simulated drivers all sign up from 127.0.0.1.
            .arg("--no-rate-limits")
            .args(["--database-url", &self.db_url])
            .args(["--rpc-url", &self.rpc_url])
            .arg("--deployment")
            .arg(deployment())
            .env("EVFLEX_OPERATOR_TOKEN", OPERATOR_TOKEN)
            .env("EVFLEX_OPERATOR_KEY", OPERATOR_KEY)
            .env("EVFLEX_METER_KEY", METER_KEY)
            .env(
                "EVFLEX_MASTER_SECRET",
                "e2e master secret, not for production",
            )
            .env("EVFLEX_WRITER_INTERVAL_MS", "200")
            .env("EVFLEX_RECEIPT_TIMEOUT_S", "5")
            .env("EVFLEX_CPO_TARIFF", TARIFF.to_string())
            .env("EVFLEX_UNCONTROLLED_ENERGY_WH", "100000")
            .env("EVFLEX_SOLVER_THREADS", "1")
            .env(
                "EVFLEX_REPLAN",
                std::env::var("E2E_REPLAN").unwrap_or_else(|_| "auto".to_owned()),
            )
            .env("EVFLEX_DB_MAX_CONNECTIONS", "8")
            .env("RUST_LOG", "warn,evflex=info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start evflex");
        self.child = Some(child);
        self.starts += 1;
    }

    /// SIGKILL: no shutdown, no flush, as a crash.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits until `/healthz` answers (60 s at most).
    pub async fn wait_ready(&mut self) {
        let url = format!("{}/healthz", self.base_url());
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("evflex exited with {status}:\n{}", self.log_tail(60));
            }
            if let Ok(r) = reqwest::get(&url).await
                && r.status().is_success()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "evflex did not answer:\n{}",
                self.log_tail(60)
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        let Ok(f) = std::fs::File::open(&self.log) else {
            return String::new();
        };
        let lines: Vec<String> = BufReader::new(f).lines().map_while(Result::ok).collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
        if std::thread::panicking() {
            eprintln!("--- evflex log (tail) ---\n{}", self.log_tail(80));
        }
    }
}

/// Runs `evflex <args>`; answers (success, stdout + stderr).
pub fn evflex_cli(args: &[&str]) -> (bool, String) {
    let out = Command::new(evflex_bin())
        .args(args)
        .env_remove("DATABASE_URL")
        .env("RUST_LOG", "warn")
        .output()
        .expect("run evflex");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// `evflex audit` against the database and the chain.
pub fn audit(db_url: &str, rpc_url: &str) -> (bool, String) {
    let dep = deployment();
    evflex_cli(&[
        "audit",
        "--database-url",
        db_url,
        "--rpc-url",
        rpc_url,
        "--deployment",
        dep.to_str().expect("utf-8 path"),
    ])
}

/// `evflex verify` of one committed schedule, from the public API and the chain.
pub fn verify(api: &str, rpc_url: &str, group: i64, timestep: i64) -> (bool, String) {
    let dep = deployment();
    evflex_cli(&[
        "verify",
        "--group",
        &group.to_string(),
        "--timestep",
        &timestep.to_string(),
        "--api",
        api,
        "--rpc-url",
        rpc_url,
        "--deployment",
        dep.to_str().expect("utf-8 path"),
    ])
}

/// A read-only client of the chain.
pub async fn chain_reader(rpc_url: &str) -> ChainClient {
    evflex::chain::audit::reader(rpc_url, Path::new(&deployment()))
        .await
        .expect("chain reader")
}

/// After the day: moves the server's clock past every writer back-off and waits until the
/// chain outbox is drained (every row `done`) and every bill is settled.
pub async fn drain(target: &RemoteTarget, db: &PgPool, day_end: i64, server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut now = day_end + 3_600;
    loop {
        target.set_clock(now).await.expect("set the clock");
        let open: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM chain_outbox WHERE status <> 'done'")
                .fetch_one(db)
                .await
                .expect("outbox");
        let unsettled: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM bills WHERE status <> 'settled'")
                .fetch_one(db)
                .await
                .expect("bills");
        if open == 0 && unsettled == 0 {
            return;
        }
        if Instant::now() > deadline {
            let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
                "SELECT kind, status, error FROM chain_outbox WHERE status <> 'done' LIMIT 20",
            )
            .fetch_all(db)
            .await
            .unwrap_or_default();
            panic!(
                "the chain outbox did not drain ({open} open, {unsettled} bills unsettled): \
                 {rows:?}\n{}",
                server.log_tail(40)
            );
        }
        now += 600;
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Starts anvil from the repository's snapshot.
pub async fn anvil() -> LocalChain {
    LocalChain::start_from_repo().await.expect("anvil")
}
