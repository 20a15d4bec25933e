//! Configuration of `evflex serve`, from flags and environment (clap). Secrets are wrapped in
//! [`Secret`] so they never print.

use clap::{Args, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

/// A secret string: `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself (only where it is used).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Self(s.to_owned()))
    }
}

/// How ticks are triggered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum TickMode {
    /// At every quarter hour of the wall clock (:00, :15, :30, :45).
    #[default]
    WallClock,
    /// Never by itself: the caller runs [`crate::engine::run_tick`] (tests, the demo's
    /// simulated clock).
    Manual,
}

/// How event re-plans (`engine::replan`) are run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Default)]
pub enum ReplanMode {
    /// A worker re-plans a group as soon as an event is recorded for it (and polls for events
    /// other replicas recorded).
    #[default]
    Auto,
    /// Events are recorded, but only the caller runs [`crate::engine::replan::run_pending`]
    /// (tests that need a deterministic order); the tick still covers them.
    Manual,
}

/// `evflex serve` configuration.
#[derive(Debug, Clone, Args)]
pub struct ServeConfig {
    /// Database URL: `sqlite://FILE?mode=rwc` (embedded default) or `postgres://…`.
    #[arg(
        long,
        env = "DATABASE_URL",
        default_value = "sqlite://evflex.sqlite?mode=rwc"
    )]
    pub database_url: String,
    /// Maximum database connections (PostgreSQL; SQLite always uses one).
    #[arg(long, env = "EVFLEX_DB_MAX_CONNECTIONS", default_value_t = 16)]
    pub db_max_connections: u32,
    /// PostgreSQL only: commit without waiting for the WAL flush (`synchronous_commit = off`;
    /// see `store::Db::connect_with` for what a database crash may then lose).
    #[arg(long, env = "EVFLEX_DB_ASYNC_COMMIT")]
    pub db_async_commit: bool,
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "EVFLEX_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Public base URL of this server, as CPOs reach it (default `http://{listen}`).
    #[arg(long, env = "EVFLEX_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// Tick trigger.
    #[arg(long, env = "EVFLEX_TICK", value_enum, default_value_t = TickMode::WallClock)]
    pub tick: TickMode,
    /// Event re-plan trigger: `auto` re-plans a group as soon as an event changes it.
    #[arg(long, env = "EVFLEX_REPLAN", value_enum, default_value_t = ReplanMode::Auto)]
    pub replan: ReplanMode,
    /// A registration token (OCPI token A) a CPO may use to start the credentials handshake.
    #[arg(long, env = "EVFLEX_OCPI_REGISTRATION_TOKEN")]
    pub ocpi_registration_token: Option<Secret>,
    /// evflex's OCPI country code.
    #[arg(long, env = "EVFLEX_OCPI_COUNTRY_CODE", default_value = "NL")]
    pub ocpi_country_code: String,
    /// evflex's OCPI party id.
    #[arg(long, env = "EVFLEX_OCPI_PARTY_ID", default_value = "EVF")]
    pub ocpi_party_id: String,
    /// A topology file to load at start (see `ingest::topology`).
    #[arg(long, env = "EVFLEX_TOPOLOGY")]
    pub topology: Option<PathBuf>,
    /// A day-ahead price CSV (`datetime_utc,price_eur_per_mwh`) to load at start.
    #[arg(long, env = "EVFLEX_PRICES_CSV")]
    pub prices_csv: Option<PathBuf>,
    /// Run on a simulated clock, starting at this time (Unix seconds), that moves (and ticks)
    /// only through the operator routes (`/api/v1/operator/…`, see `api::operator`); implies
    /// `--tick manual`. For simulators and the end-to-end suite.
    #[arg(long, env = "EVFLEX_SIM_CLOCK", value_name = "UNIX_S")]
    pub sim_clock: Option<i64>,
    /// Let evflex call private, loopback and link-local addresses (a CPO's versions URL and
    /// endpoints); by default only public addresses are called (`outbound`). For the demo, the
    /// tests and a CPO on the same private network.
    #[arg(
        long,
        env = "EVFLEX_ALLOW_PRIVATE_URLS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub allow_private_urls: bool,
    /// Lift the per-IP rate limits on sign-up, sign-in, key export and verification
    /// (`api::limits`): for simulators and load tests, which play many users from one address.
    #[arg(
        long,
        env = "EVFLEX_NO_RATE_LIMITS",
        action = clap::ArgAction::SetTrue,
        value_parser = clap::builder::BoolishValueParser::new()
    )]
    pub no_rate_limits: bool,
    /// Most event streams (`/api/v1/events`) open at once; more are refused with 429.
    #[arg(long, env = "EVFLEX_MAX_EVENT_STREAMS", default_value_t = 512)]
    pub max_event_streams: usize,
    /// Bearer token of the admin API (`/api/v1/admin`, onboarding CPOs at run time); at least
    /// 16 characters. Without it the admin API does not exist (404).
    #[arg(long, env = "EVFLEX_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<Secret>,
    /// Bearer token of the operator routes (required with `--sim-clock`).
    #[arg(long, env = "EVFLEX_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<Secret>,
    /// Engine settings.
    #[command(flatten)]
    pub engine: EngineConfig,
    /// Chain settings (RPC, deployment, keys, writer, billing).
    #[command(flatten)]
    pub chain: crate::chain::ChainConfig,
}

impl ServeConfig {
    /// Defaults with the given database URL, listening on a free loopback port, manual ticks,
    /// private URLs allowed (the simulated CPO is on loopback) and no per-IP rate limits (the
    /// simulated drivers share one address): what tests and the demo start from.
    pub fn for_tests(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            db_max_connections: 8,
            db_async_commit: false,
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            public_url: None,
            tick: TickMode::Manual,
            replan: ReplanMode::Manual,
            ocpi_registration_token: None,
            ocpi_country_code: "NL".to_owned(),
            ocpi_party_id: "EVF".to_owned(),
            topology: None,
            prices_csv: None,
            sim_clock: None,
            allow_private_urls: true,
            no_rate_limits: true,
            max_event_streams: 512,
            operator_token: None,
            admin_token: None,
            engine: EngineConfig::default(),
            chain: crate::chain::ChainConfig::disabled(),
        }
    }
}

/// Settings of the tick, admission control and set-point delivery.
#[derive(Debug, Clone, Args)]
pub struct EngineConfig {
    /// Steps in the rolling horizon (96 × 15 min = 24 h).
    #[arg(long, env = "EVFLEX_HORIZON_STEPS", default_value_t = 96)]
    pub horizon_steps: usize,
    /// Flat energy price where no price table entry applies (micro-EUR per kWh).
    #[arg(long, env = "EVFLEX_FLAT_TARIFF", default_value_t = 250_000)]
    pub flat_tariff_micro_eur_per_kwh: i64,
    /// Solve in MILP mode (charge points draw 0 or at least their minimum).
    #[arg(long, env = "EVFLEX_MILP")]
    pub milp: bool,
    /// Time limit of one solve (ms).
    #[arg(long, env = "EVFLEX_SOLVE_TIME_LIMIT_MS", default_value_t = 5_000)]
    pub solve_time_limit_ms: u64,
    /// Demand charge of a group's peak grid import (EUR per kW): the optimiser shaves the
    /// peak only at this price; 0 (default): energy goes as early as prices and limits allow.
    #[arg(long, env = "EVFLEX_DEMAND_CHARGE_EUR_PER_KW", default_value_t = 0.0)]
    pub demand_charge_eur_per_kw: f64,
    /// Parallel solves per tick (0: one per core).
    #[arg(long, env = "EVFLEX_SOLVER_THREADS", default_value_t = 0)]
    pub solver_threads: usize,
    /// Groups planned at once, each holding its lease transaction and a database connection
    /// (0: three per solve slot, at most half the connection pool). A re-plan mostly waits on
    /// the database (its snapshot and its commit), so planning more groups than there are cores
    /// keeps both busy; each solve still takes one of the `--solver-threads` slots.
    #[arg(long, env = "EVFLEX_PARALLEL_PLANS", default_value_t = 0)]
    pub parallel_plans: usize,
    /// Opted-in session without a request: assumed stay from its start (s).
    #[arg(long, env = "EVFLEX_DEFAULT_DWELL_S", default_value_t = 8 * 3_600)]
    pub default_dwell_s: i64,
    /// Opted-in session without a request: energy aimed for, best effort (Wh).
    #[arg(long, env = "EVFLEX_DEFAULT_ENERGY_WH", default_value_t = 20_000)]
    pub default_energy_wh: i64,
    /// Session that is not opted in: energy it charges uncontrolled (Wh).
    #[arg(long, env = "EVFLEX_UNCONTROLLED_ENERGY_WH", default_value_t = 30_000)]
    pub uncontrolled_energy_wh: i64,
    /// Power of an EVSE whose connectors give no rating (W).
    #[arg(long, env = "EVFLEX_DEFAULT_EVSE_POWER_W", default_value_t = 11_000)]
    pub default_evse_power_w: i64,
    /// Delivery attempts per set-point.
    #[arg(long, env = "EVFLEX_SETPOINT_ATTEMPTS", default_value_t = 3)]
    pub setpoint_attempts: u32,
    /// First back-off between set-point attempts (ms; doubles each retry).
    #[arg(long, env = "EVFLEX_SETPOINT_BACKOFF_MS", default_value_t = 500)]
    pub setpoint_backoff_ms: u64,
    /// How long the re-plan worker waits after an event before it plans, so a burst of events
    /// on a group gives one re-plan (ms).
    #[arg(long, env = "EVFLEX_REPLAN_DEBOUNCE_MS", default_value_t = 50)]
    pub replan_debounce_ms: u64,
    /// How often the re-plan worker looks for events other replicas recorded (ms).
    #[arg(long, env = "EVFLEX_REPLAN_POLL_MS", default_value_t = 1_000)]
    pub replan_poll_ms: u64,
    /// The reaction window (s): from a car plugging in to its first profile in force (the
    /// re-plan, the CPO, the station). The arrival reserve covers the arrivals expected in it
    /// (`engine::reserve`).
    #[arg(long, env = "EVFLEX_REACTION_WINDOW_S", default_value_t = 10.0)]
    pub reaction_window_s: f64,
    /// The SoC (‰) above which a battery's power is planned to fall linearly to 0 at full, for
    /// a car whose battery size and SoC are known (its request) and whose own knee was not
    /// learned from its meter values (`engine::closed_loop`); 1000: no taper.
    #[arg(long, env = "EVFLEX_TAPER_KNEE_PERMILLE", default_value_t = 800)]
    pub taper_knee_permille: u16,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            horizon_steps: 96,
            flat_tariff_micro_eur_per_kwh: 250_000,
            milp: false,
            solve_time_limit_ms: 5_000,
            demand_charge_eur_per_kw: 0.0,
            solver_threads: 0,
            parallel_plans: 0,
            default_dwell_s: 8 * 3_600,
            default_energy_wh: 20_000,
            uncontrolled_energy_wh: 30_000,
            default_evse_power_w: 11_000,
            setpoint_attempts: 3,
            setpoint_backoff_ms: 500,
            replan_debounce_ms: 50,
            replan_poll_ms: 1_000,
            reaction_window_s: 10.0,
            taper_knee_permille: 800,
        }
    }
}

impl EngineConfig {
    /// The knee the plan gives a battery of known size and SoC, `None` for no taper.
    pub fn taper_knee(&self) -> Option<u16> {
        (self.taper_knee_permille < 1_000).then_some(self.taper_knee_permille)
    }

    /// The optimiser options these settings select.
    pub fn solve_options(&self) -> evflex_schedule::SolveOptions {
        evflex_schedule::SolveOptions {
            mode: if self.milp {
                evflex_schedule::Mode::Milp
            } else {
                evflex_schedule::Mode::Lp
            },
            time_limit_ms: self.solve_time_limit_ms,
            peak_weight_eur_per_kw: self.demand_charge_eur_per_kw.max(0.0),
            ..Default::default()
        }
    }

    /// Groups planned at once with a pool of `pool_connections` ([`Self::parallel_plans`]).
    pub fn parallel_plans(&self, pool_connections: u32) -> usize {
        if self.parallel_plans > 0 {
            self.parallel_plans
        } else {
            (3 * self.parallel_solves()).min((pool_connections as usize / 2).max(1))
        }
    }

    /// Parallel solves per tick.
    pub fn parallel_solves(&self) -> usize {
        if self.solver_threads > 0 {
            self.solver_threads
        } else {
            std::thread::available_parallelism().map_or(2, |n| n.get())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?} {s}"), "Secret(***) ***");
        assert_eq!(s.expose(), "hunter2");
    }

    #[test]
    fn groups_planned_at_once_are_three_per_solve_slot_within_half_the_pool() {
        let mut engine = ServeConfig::for_tests("sqlite::memory:").engine;
        engine.solver_threads = 2;
        assert_eq!(engine.parallel_plans(16), 6);
        assert_eq!(engine.parallel_plans(8), 4, "half the pool");
        assert_eq!(engine.parallel_plans(1), 1, "SQLite's one connection");
        engine.parallel_plans = 10;
        assert_eq!(engine.parallel_plans(8), 10, "as configured");
    }
}
