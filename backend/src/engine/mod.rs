//! The 15-minute engine: group snapshots, the tick (solve, persist, enqueue chain
//! work, send set-points) and admission control.
//!
//! Everything here runs on an [`Engine`]: the handles the engine works with (database, clock,
//! settings, chain, live-update bus, solve slots, replica name, test faults). The HTTP layer
//! holds an `Engine` in its state and passes it in; nothing in this module imports the HTTP
//! layer (the `app` and `api` modules), so the arrows point one way: HTTP → engine → store.
//!
//! "Run one step" entry points: [`run_tick`] for a timestep, [`replan::run_pending`] for the
//! groups that events changed since (event re-plans),
//! [`setpoints::deliver_pending`] for set-point delivery, [`tokens::push_pending`] for
//! users' tokens and [`sync::pull_all`] for what the CPOs pushed while evflex was down. [`run_wall_clock`] calls `run_tick`
//! at every quarter hour; tests and the demo call it with a simulated clock.
//!
//! Several `evflex serve` replicas may share one PostgreSQL database: each runs the same tick,
//! and group leases (`store::leases`, `SELECT … FOR UPDATE SKIP LOCKED`) make every
//! (group, timestep) solved and committed by exactly one of them. Each replica names itself
//! with [`replica_id`].

pub mod admission;
pub mod battery;
pub mod closed_loop;
pub mod error;
pub mod plan;
pub mod replan;
pub mod report;
pub mod reserve;
pub mod setpoints;
pub mod snapshot;
pub mod sync;
pub mod tick;
pub mod tokens;

pub use error::TickError;
pub use report::{GroupOutcome, GroupReport, SkipReason, TickReport};
pub use tick::run_tick;

use crate::chain::ChainContext;
use crate::config::EngineConfig;
use crate::domain::{Clock, TIME_STEP_S, timestep_of};
use crate::events::Events;
use crate::store::Db;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

/// The engine's handles: what the tick, admission control and set-point delivery work with.
///
/// Cheap to clone (every field is a handle or an `Arc`); clones share the pool, the clock, the
/// solve slots and the bus. `AppState` holds one and hands it to the engine's entry points
/// (`run_tick(&state.engine, …)`, `admission::decide(&state.engine, …)`).
///
/// Decision: `AppState` also keeps clones of the four plain handles its handlers use on nearly
/// every request (`db`, `clock`, `http`, `public_url`), so handlers and tests keep reading
/// `state.db` and `state.clock`. They are the same pool, clock, client and URL as here, set once
/// from this value in `Application::build`. The engine's own collaborators (settings, chain,
/// events, solve slots, replica, faults) live only here; handlers reach them as
/// `state.engine.chain`, `state.engine.events`, ….
#[derive(Clone)]
pub struct Engine {
    /// The database.
    pub db: Db,
    /// The clock ticks, admission and timestamps use.
    pub clock: Arc<dyn Clock>,
    /// Engine settings.
    pub config: Arc<EngineConfig>,
    /// The chain (operator, meter key, master secret); `None` with `--no-chain`. The tick uses
    /// it only to decide whether it enqueues chain work (see [`tick`]).
    pub chain: Option<Arc<ChainContext>>,
    /// Live change notifications for the pages; the tick publishes a `tick` event.
    pub events: Events,
    /// HTTP client for set-points sent to CPOs.
    pub http: crate::outbound::Outbound,
    /// Public base URL (no trailing slash): set-points name their `response_url` under it.
    pub public_url: Arc<str>,
    /// How evflex presents itself in OCPI: the issuer of the tokens [`tokens`] pushes.
    pub identity: Arc<crate::ingest::ocpi::credentials::Identity>,
    /// Bounds parallel solves (ticks and admission) to the cores.
    pub solve_slots: Arc<Semaphore>,
    /// Bounds the groups planned at once (each holds a lease transaction on PostgreSQL;
    /// [`EngineConfig::parallel_plans`]).
    pub plan_slots: Arc<Semaphore>,
    /// One token push round at a time ([`tokens::push_pending`]), so rounds started by sign-ups
    /// at once do not push the same token twice.
    pub token_pushes: Arc<tokio::sync::Mutex<()>>,
    /// Wakes this replica's re-plan worker when an event is recorded ([`replan::request`]).
    pub replan_wake: Arc<tokio::sync::Notify>,
    /// This replica's name in group leases and tick reports (see [`replica_id`]).
    pub replica: Arc<str>,
    /// Fault injection for tests.
    pub faults: Arc<Faults>,
}

impl Engine {
    /// An engine on `db` and `clock` with `config`: solve slots sized by
    /// [`EngineConfig::parallel_solves`], plan slots by [`EngineConfig::parallel_plans`] within
    /// `db`'s pool, a new event bus, this replica's [`replica_id`] and no
    /// faults.
    pub fn new(
        db: Db,
        clock: Arc<dyn Clock>,
        config: EngineConfig,
        chain: Option<Arc<ChainContext>>,
        http: crate::outbound::Outbound,
        public_url: Arc<str>,
        identity: crate::ingest::ocpi::credentials::Identity,
    ) -> Self {
        let plan_slots = config.parallel_plans(db.pool().options().get_max_connections());
        Self {
            db,
            clock,
            solve_slots: Arc::new(Semaphore::new(config.parallel_solves())),
            plan_slots: Arc::new(Semaphore::new(plan_slots)),
            token_pushes: Arc::default(),
            replan_wake: Arc::default(),
            config: Arc::new(config),
            chain,
            events: Events::default(),
            http,
            public_url,
            identity: Arc::new(identity),
            replica: replica_id().into(),
            faults: Arc::new(Faults::default()),
        }
    }

    /// The optimiser options the engine solves with (from its settings).
    pub fn solve_options(&self) -> evflex_schedule::SolveOptions {
        self.config.solve_options()
    }
}

/// Seconds from `now` until the next quarter-hour boundary (never 0).
pub fn seconds_to_next_step(now: i64) -> i64 {
    let step = i64::from(TIME_STEP_S);
    step - now.rem_euclid(step)
}

/// Pulls the CPOs' sender interfaces ([`sync::pull_all`]) and runs a tick for the current
/// quarter hour at once (catching up after a restart; idempotent), then both at every quarter hour of `engine.clock`, until `shutdown` resolves. Every replica
/// runs this loop; group leases split each tick's groups between them.
pub async fn run_wall_clock(engine: Engine, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        // What the CPOs pushed while evflex was down (or could not be reached) first, so the
        // plan sees it.
        sync::pull_all(&engine).await;
        let now = engine.clock.now();
        run_tick(&engine, timestep_of(now, TIME_STEP_S)).await;
        let wait = seconds_to_next_step(engine.clock.now());
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(wait as u64)) => {}
        }
    }
}

/// This replica's name, recorded in the group leases it commits and in its tick reports:
/// `EVFLEX_REPLICA_ID` when set, else `{hostname}:{pid}:{random}` (the random part tells apart
/// two services built in one process, as the tests do).
pub fn replica_id() -> String {
    if let Ok(id) = std::env::var("EVFLEX_REPLICA_ID")
        && !id.trim().is_empty()
    {
        return id.trim().to_owned();
    }
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "evflex".to_owned());
    let random = {
        use std::hash::{BuildHasher, Hasher};
        std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish()
    };
    format!("{host}:{}:{:08x}", std::process::id(), random & 0xffff_ffff)
}

/// Test hook: groups whose tick fails at the commit boundary (after solving and writing, before
/// `COMMIT`), standing in for a process killed there. Empty in production.
#[derive(Debug, Default)]
pub struct Faults {
    fail_before_commit: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl Faults {
    /// Makes (or stops making) `group_id`'s tick fail at the commit boundary.
    pub fn set_fail_before_commit(&self, group_id: i64, fail: bool) {
        let mut set = self
            .fail_before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if fail {
            set.insert(group_id);
        } else {
            set.remove(&group_id);
        }
    }

    /// Whether `group_id`'s tick must fail at the commit boundary.
    pub fn fails_before_commit(&self, group_id: i64) -> bool {
        self.fail_before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_step_is_the_next_quarter_hour() {
        assert_eq!(seconds_to_next_step(0), 900);
        assert_eq!(seconds_to_next_step(899), 1);
        assert_eq!(seconds_to_next_step(900), 900);
        assert_eq!(seconds_to_next_step(1_000), 800);
    }

    #[test]
    fn replica_ids_differ_within_one_process() {
        if std::env::var("EVFLEX_REPLICA_ID").is_err() {
            let (a, b) = (replica_id(), replica_id());
            assert_ne!(a, b);
            assert!(a.contains(&format!(":{}:", std::process::id())), "{a}");
        }
    }
}
