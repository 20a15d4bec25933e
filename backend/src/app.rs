//! The running service: shared state, startup (database, migrations, topology and prices),
//! the HTTP server and the tick loop. `main.rs` only parses flags and calls [`serve`]; tests and
//! the demo use [`Application`] directly.

use crate::config::{ServeConfig, TickMode};
use crate::domain::{Clock, WallClock};
use crate::engine::{self, Engine};
use crate::ingest::ocpi::credentials::Identity;
use crate::store::parties::TokenGrant;
use crate::store::{Db, StoreError, parties};
use anyhow::Context;
use metrics_exporter_prometheus::PrometheusHandle;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// How long a looked-up OCPI token is trusted without asking the database again. Revocations
/// made by this process take effect at once; by another replica, within this time.
const TOKEN_CACHE_TTL: Duration = Duration::from_secs(10);

/// Known OCPI tokens, so the hot ingestion path does not read `ocpi_tokens` per request.
#[derive(Debug, Default)]
pub struct TokenCache {
    map: std::sync::RwLock<HashMap<String, (TokenGrant, Instant)>>,
}

impl TokenCache {
    /// A cached grant for `token`, if fresh.
    pub fn get(&self, token: &str) -> Option<TokenGrant> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(token)
            .filter(|(_, at)| at.elapsed() < TOKEN_CACHE_TTL)
            .map(|(g, _)| g.clone())
    }

    /// Remembers a grant.
    pub fn put(&self, token: &str, grant: TokenGrant) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() > 10_000 {
            map.clear();
        }
        map.insert(token.to_owned(), (grant, Instant::now()));
    }

    /// Forgets every grant (after a credentials change).
    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// State shared by every handler: the [`Engine`] plus what only the HTTP layer needs.
///
/// `db`, `clock`, `http` and `public_url` are clones of the engine's own handles (the same pool,
/// clock, client and URL, set once in [`Application::build`]), kept here because nearly every
/// handler uses them; everything else the engine owns is reached as `state.engine.…` (see
/// [`Engine`]).
#[derive(Clone)]
pub struct AppState {
    /// The engine: tick, admission control, set-point delivery, and the handles they use
    /// (settings, chain, live updates, solve slots, replica, faults).
    pub engine: Engine,
    /// The database (the engine's pool).
    pub db: Db,
    /// The clock timestamps use (the engine's clock).
    pub clock: Arc<dyn Clock>,
    /// HTTP client for calls to CPOs (the engine's client).
    pub http: crate::outbound::Outbound,
    /// Public base URL, no trailing slash (the engine's).
    pub public_url: Arc<str>,
    /// How evflex presents itself in OCPI (the engine's).
    pub identity: Arc<Identity>,
    /// OCPI token cache.
    pub tokens: Arc<TokenCache>,
    /// Prometheus handle.
    pub metrics: PrometheusHandle,
    /// Group commit of OCPI session PATCHes.
    pub session_patches: crate::store::sessions::PatchQueue,
    /// The operator routes' simulated clock and token (`--sim-clock` only).
    pub operator: Option<Arc<crate::api::operator::OperatorAccess>>,
    /// The admin API's credential (`EVFLEX_ADMIN_TOKEN`); no admin API without one.
    pub admin_token: Option<crate::config::Secret>,
    /// Per-IP and per-account rate limits (`api::limits`).
    pub limits: crate::api::limits::RateLimits,
    /// Caps on event streams and key derivations (`api::limits`).
    pub caps: crate::api::limits::Caps,
}

impl AppState {
    /// The state of a server running `engine`; `db`, `clock`, `http` and `public_url` are taken
    /// from it.
    pub fn new(
        engine: Engine,
        operator: Option<Arc<crate::api::operator::OperatorAccess>>,
        limits: crate::api::limits::RateLimits,
        caps: crate::api::limits::Caps,
    ) -> Self {
        Self {
            db: engine.db.clone(),
            clock: engine.clock.clone(),
            http: engine.http.clone(),
            public_url: engine.public_url.clone(),
            session_patches: crate::store::sessions::PatchQueue::start(engine.db.clone()),
            identity: engine.identity.clone(),
            tokens: Arc::new(TokenCache::default()),
            metrics: crate::telemetry::metrics_handle(),
            operator,
            admin_token: None,
            limits,
            caps,
            engine,
        }
    }
}

/// A built server: listening, not yet serving.
pub struct Application {
    listener: TcpListener,
    state: AppState,
    tick: TickMode,
    replan: crate::config::ReplanMode,
    local_chain: Option<evflex_chain::LocalChain>,
}

impl Application {
    /// Connects the database, migrates, loads the topology/prices files, binds the listener.
    pub async fn build(config: ServeConfig, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let db = Db::connect_with(
            &config.database_url,
            config.db_max_connections,
            config.db_async_commit,
        )
        .await
        .context("connecting to the database")?;
        db.migrate().await.context("running migrations")?;
        let listener = TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("binding {}", config.listen))?;
        let addr = listener.local_addr()?;
        let public_url = config
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{addr}"))
            .trim_end_matches('/')
            .to_owned();
        let (clock, operator) = crate::api::operator::sim_clock(&config, clock)?;
        if config
            .admin_token
            .as_ref()
            .is_some_and(|t| t.expose().len() < 16)
        {
            anyhow::bail!("EVFLEX_ADMIN_TOKEN must be at least 16 characters");
        }
        let now = clock.now();
        if let Some(token) = &config.ocpi_registration_token {
            let mut conn = db.conn().await?;
            parties::add_registration_token(&mut conn, token.expose(), now).await?;
        }
        if let Some(path) = &config.topology {
            let topology = crate::ingest::topology::read_file(path).map_err(anyhow::Error::msg)?;
            crate::ingest::topology::put_topology(
                &db,
                crate::ingest::Actor::Operator,
                &topology,
                now,
            )
            .await
            .map_err(|e| anyhow::anyhow!("loading topology {}: {e}", path.display()))?;
        }
        if let Some(path) = &config.prices_csv {
            let n = crate::ingest::prices::load_day_ahead_csv(&db, path)
                .await
                .map_err(|e: StoreError| anyhow::anyhow!("loading prices: {e}"))?;
            tracing::info!(prices = n, path = %path.display(), "prices loaded");
        }
        let http = crate::outbound::Outbound::new(config.allow_private_urls)
            .context("building the HTTP client")?;
        let identity = Identity {
            versions_url: format!("{public_url}/ocpi/versions"),
            country_code: config.ocpi_country_code.clone(),
            party_id: config.ocpi_party_id.clone(),
            name: "evflex".to_owned(),
        };
        let (chain, local_chain) = if config.chain.no_chain {
            (None, None)
        } else {
            let (ctx, local) = crate::chain::ChainContext::connect(&config.chain)
                .await
                .context("connecting to the chain")?;
            ctx.register_algorithm(&config.engine.solve_options())
                .await
                .context("registering the algorithm version")?;
            (Some(ctx), local)
        };
        let engine = Engine::new(
            db,
            clock,
            config.engine.clone(),
            chain,
            http,
            public_url.into(),
            identity,
        );
        let mut state = AppState::new(
            engine,
            operator,
            crate::api::limits::RateLimits::new(!config.no_rate_limits),
            crate::api::limits::Caps::new(config.max_event_streams),
        );
        state.admin_token = config.admin_token.clone();
        Ok(Self {
            listener,
            state,
            tick: if config.sim_clock.is_some() {
                TickMode::Manual
            } else {
                config.tick
            },
            replan: config.replan,
            local_chain,
        })
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.listener.local_addr().map(|a| a.port()).unwrap_or(0)
    }

    /// The shared state (for tests: run ticks and inject faults through `state.engine`, read
    /// the database).
    pub fn state(&self) -> AppState {
        self.state.clone()
    }

    /// Serves until `shutdown` resolves; runs the wall-clock tick loop when configured.
    pub async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let ticker = (self.tick == TickMode::WallClock).then(|| {
            let engine = self.state.engine.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(engine::run_wall_clock(engine, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }))
        });
        let replanner = (self.replan == crate::config::ReplanMode::Auto).then(|| {
            let engine = self.state.engine.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(engine::replan::run(engine, async move {
                let _ = rx.wait_for(|stop| *stop).await;
            }))
        });
        let writer = self.state.engine.chain.clone().and_then(|ctx| {
            (ctx.config.writer == crate::chain::WriterMode::Auto).then(|| {
                let w = crate::chain::writer::Writer::new(
                    ctx,
                    self.state.db.clone(),
                    self.state.clock.clone(),
                )
                .with_http(self.state.http.clone());
                let mut rx = stop_rx.clone();
                tokio::spawn(w.run(async move {
                    let _ = rx.wait_for(|stop| *stop).await;
                }))
            })
        });
        let forget = {
            let limits = self.state.limits.clone();
            let mut rx = stop_rx.clone();
            tokio::spawn(async move {
                let mut every = tokio::time::interval(Duration::from_secs(60));
                loop {
                    tokio::select! {
                        _ = every.tick() => limits.forget_idle(),
                        _ = rx.wait_for(|stop| *stop) => break,
                    }
                }
            })
        };
        let events = self.state.engine.events.clone();
        let router = crate::api::router(self.state.clone());
        tracing::info!(addr = %self.listener.local_addr()?, "evflex serving");
        // The peer address is the key of the per-IP rate limits.
        let service = router.into_make_service_with_connect_info::<std::net::SocketAddr>();
        axum::serve(self.listener, service)
            .with_graceful_shutdown(async move {
                shutdown.await;
                events.close(); // open event streams end, so graceful shutdown does not wait
                let _ = stop_tx.send(true);
            })
            .await
            .context("serving HTTP")?;
        let _ = forget.await;
        if let Some(t) = ticker {
            let _ = t.await;
        }
        if let Some(r) = replanner {
            let _ = r.await;
        }
        if let Some(w) = writer {
            let _ = w.await;
        }
        if let Some(mut chain) = self.local_chain
            && let Err(e) = chain.stop().await
        {
            tracing::warn!(error = %e, "stopping the local anvil");
        }
        self.state.db.close().await;
        Ok(())
    }
}

/// `evflex serve`: builds the application on the wall clock and serves until Ctrl-C.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let app = Application::build(config, Arc::new(WallClock)).await?;
    app.run_until(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("shutting down");
    })
    .await
}
