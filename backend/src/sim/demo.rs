//! `evflex demo`: evflex on a simulated clock (SQLite in a temporary folder unless
//! `--database-url`), the simulated CPO and EV users playing one day against it over HTTP, a
//! progress bar, the summary table, SVG plots, and then the service keeps running (cockpit at
//! `/cockpit/`) until Ctrl-C unless `--exit`.
//!
//! The chain: `evflex demo` takes the same chain flags as `evflex serve`. When the chain is
//! off (`--no-chain`) or cannot be reached, the demo runs without it (status commits and
//! settlements then wait in the outbox) and the summary says so.

use super::report::Summary;
use super::{DemandSource, SimConfig, SimTarget};
use crate::config::{Secret, ServeConfig};
use crate::engine::SimClock;
use crate::{Application, store};
use anyhow::Context;
use clap::Args;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `evflex demo` flags.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Database URL; default: SQLite in a temporary folder (removed at exit).
    #[arg(long)]
    pub database_url: Option<String>,
    /// Seed of the simulation (same seed, same day).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Sites (OCPI locations).
    #[arg(long, default_value_t = 3)]
    pub sites: usize,
    /// Groups (shared connections).
    #[arg(long, default_value_t = 5)]
    pub groups: usize,
    /// Charge points (every third 22 kW, the others 11 kW).
    #[arg(long, default_value_t = 60)]
    pub charge_points: usize,
    /// Generated EVs (default 1.5 per charge point).
    #[arg(long)]
    pub vehicles: Option<usize>,
    /// Share of drivers who opt into smart charging.
    #[arg(long, default_value_t = 0.7)]
    pub opt_in: f64,
    /// Replay real sessions instead of generating them (ACN-Data CSV, `.gz` allowed).
    #[arg(long)]
    pub sessions_csv: Option<PathBuf>,
    /// Local day of `--sessions-csv` to replay (`YYYY-MM-DD`; default the busiest day).
    #[arg(long)]
    pub sessions_day: Option<String>,
    /// First simulated hour.
    #[arg(long, default_value_t = 0)]
    pub start_hour: u32,
    /// Simulated hours.
    #[arg(long, default_value_t = 24)]
    pub hours: u32,
    /// Simulated seconds per wall-clock second (900: one step a second); default as fast as
    /// possible.
    #[arg(long)]
    pub speed: Option<f64>,
    /// Exit after the summary instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Folder for the SVG plots.
    #[arg(long, default_value = "output/demo")]
    pub out: PathBuf,
    /// Address to serve on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Chain settings, as for `evflex serve` (`--no-chain` runs without one; when the chain
    /// cannot be reached the demo says so and runs without).
    #[command(flatten)]
    pub chain_config: crate::chain::ChainConfig,
}

impl DemoArgs {
    /// The simulation these flags describe.
    pub fn sim_config(&self) -> SimConfig {
        let mut cfg = SimConfig {
            seed: self.seed,
            start_hour: self.start_hour.min(23),
            hours: self.hours.clamp(1, 24),
            sites: self.sites.max(1),
            groups: self.groups.max(1),
            charge_points: self.charge_points.max(1),
            opt_in_share: self.opt_in.clamp(0.0, 1.0),
            pace: self
                .speed
                .filter(|s| *s > 0.0)
                .map(|s| Duration::from_secs_f64(900.0 / s)),
            ..SimConfig::default()
        };
        cfg.demand = match &self.sessions_csv {
            Some(path) => DemandSource::Csv {
                path: path.clone(),
                day: self.sessions_day.clone(),
            },
            None => DemandSource::Generated {
                config: evflex_schedule::demand::DemandConfig::new(
                    self.vehicles.unwrap_or(cfg.charge_points * 3 / 2).max(1),
                ),
            },
        };
        cfg
    }
}

async fn scalar(db: &store::Db, sql: &'static str) -> Option<i64> {
    sqlx::query_as::<_, (i64,)>(sql)
        .fetch_one(db.pool())
        .await
        .ok()
        .map(|(n,)| n)
}

/// Database (and chain) figures for the summary.
async fn db_figures(db: &store::Db, chain: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(n) = scalar(db, "SELECT COUNT(*) FROM cdrs").await {
        out.push(("CDRs stored by evflex".to_owned(), n.to_string()));
    }
    let shifted = scalar(
        db,
        "SELECT CAST(COALESCE(SUM(flex_shifted_wh), 0) AS BIGINT) FROM sessions",
    )
    .await;
    let value = scalar(
        db,
        "SELECT CAST(COALESCE(SUM(flex_value_micro_eur), 0) AS BIGINT) FROM sessions",
    )
    .await;
    if let (Some(wh), Some(micro)) = (shifted, value) {
        out.push((
            "flexibility given (basis of FLEX rewards)".to_owned(),
            format!(
                "{:.1} kWh shifted, worth {:.2} EUR",
                wh as f64 / 1_000.0,
                micro as f64 / 1e6
            ),
        ));
    }
    let rows: Vec<(String, String, i64)> = sqlx::query_as(
        "SELECT kind, status, COUNT(*) FROM chain_outbox GROUP BY kind, status ORDER BY kind, status",
    )
    .fetch_all(db.pool())
    .await
    .unwrap_or_default();
    let list = rows
        .iter()
        .map(|(k, s, n)| format!("{k} {s}: {n}"))
        .collect::<Vec<_>>()
        .join(", ");
    out.push((
        if chain {
            "chain outbox".to_owned()
        } else {
            "chain outbox (no chain: not sent)".to_owned()
        },
        if list.is_empty() {
            "empty".to_owned()
        } else {
            list
        },
    ));
    out
}

fn progress_bar(done: usize, total: usize) {
    use std::io::IsTerminal as _;
    let mut err = std::io::stderr();
    if !err.is_terminal() {
        // Not a terminal (logs, CI): a line at every quarter.
        if total > 0 && (done * 4 / total != (done - 1) * 4 / total || done == total) {
            let _ = writeln!(err, "  simulated {done}/{total} steps");
        }
        return;
    }
    let width = 40;
    let filled = (done * width).checked_div(total).unwrap_or(width);
    let _ = write!(
        err,
        "\r  simulating [{}{}] {done}/{total} steps",
        "#".repeat(filled),
        " ".repeat(width - filled)
    );
    if done == total {
        let _ = writeln!(err);
    }
    let _ = err.flush();
}

/// `evflex demo` from `main`: logs at `warn` unless `RUST_LOG` says otherwise (the progress
/// bar and the table stay readable), a runtime, [`demo`].
pub fn main(args: DemoArgs) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
    tokio::runtime::Runtime::new()?.block_on(demo(args))
}

/// Runs `evflex demo`.
pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    let sim = args.sim_config();
    let dir = tempfile_dir()?;
    let url = match &args.database_url {
        Some(u) => u.clone(),
        None => format!(
            "sqlite://{}?mode=rwc",
            dir.join("evflex-demo.sqlite").display()
        ),
    };
    let token_a = format!("demo-registration-{}", sim.seed);
    let mut config = ServeConfig::for_tests(url.clone());
    config.listen = args.listen;
    config.ocpi_registration_token = Some(Secret::new(token_a.clone()));
    // Vehicles that are not opted in charge until they are full; evflex must not assume they
    // stop earlier (its default, 30 kWh, is below the larger batteries).
    config.engine.uncontrolled_energy_wh = 100_000;
    let clock = SimClock::new(sim.day_start + i64::from(sim.start_hour) * 3_600);
    let mut chain_note = "no chain (--no-chain)".to_owned();
    let app = if args.chain_config.no_chain {
        Application::build(config, Arc::new(clock.clone())).await
    } else {
        let mut with_chain = config.clone();
        with_chain.chain = args.chain_config.clone();
        match Application::build(with_chain, Arc::new(clock.clone())).await {
            Ok(app) => Ok(app),
            Err(e) => {
                chain_note = format!("no chain (unavailable: {e:#})");
                Application::build(config, Arc::new(clock.clone())).await
            }
        }
    }
    .context("starting evflex")?;
    let base_url = format!("http://127.0.0.1:{}", app.port());
    let state = app.state();
    let chain = state.chain.is_some();
    if chain {
        chain_note = "chain connected".to_owned();
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async move {
        let _ = stop_rx.await;
    }));
    eprintln!(
        "evflex demo: database {}, {chain_note}",
        if args.database_url.is_some() {
            url.as_str()
        } else {
            "SQLite (temporary)"
        },
    );
    let target = SimTarget {
        base_url: base_url.clone(),
        state: state.clone(),
        clock,
        registration_token: token_a,
    };
    let record = super::run(&sim, &target, progress_bar)
        .await
        .context("simulating the day")?;
    let mut summary = Summary::of(&record);
    summary.extra = db_figures(&state.db, chain).await;
    summary.extra.push(("chain".to_owned(), chain_note));
    println!("{summary}");
    if !record.api_errors.is_empty() {
        println!("  first refused call: {}", record.api_errors[0]);
    }
    let files = super::plots::write_all(&record, &summary, &args.out)
        .with_context(|| format!("writing plots to {}", args.out.display()))?;
    for f in &files {
        println!("  plot: {}", f.display());
    }
    println!(
        "  cockpit: {base_url}/cockpit/   (CPO token: {})",
        record.cpo_token
    );
    println!("  EV user app: {base_url}/app/   API: {base_url}/api/openapi.json");
    if !args.exit {
        println!("  serving until Ctrl-C (the simulated clock stays at the end of the day)");
        let _ = tokio::signal::ctrl_c().await;
    }
    let _ = stop_tx.send(());
    server.await.context("server task")??;
    if args.database_url.is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    }
    Ok(())
}

/// A fresh temporary folder for the SQLite file.
fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!(
        "evflex-demo-{}-{}",
        std::process::id(),
        crate::domain::unix_now()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
