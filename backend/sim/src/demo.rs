//! `evflex demo`: evflex on a simulated clock (SQLite in a temporary folder unless
//! `--database-url`), the simulated CPO and EV users playing one day against it over HTTP, a
//! progress bar, the summary table, the plots (`report.html`), and then the service keeps running (cockpit at
//! `/cockpit/`) until Ctrl-C unless `--exit`.
//!
//! With a chain, the summary waits (at most `--drain-timeout-s`) for the outbox writer to send
//! the day's work, then adds the chain's side: transactions and gas (every transaction since
//! the deployment, from the blocks; per outbox kind, from the stored receipts), FLEX minted (the `SessionSettled` events, and FlexToken's supply), bills settled
//! and awaiting funds, and the result of the same audit as `evflex audit`.
//!
//! The chain: `evflex demo` takes the same chain flags as `evflex serve`. When the chain is
//! off (`--no-chain`) or cannot be reached, the demo runs without it (status commits and
//! settlements then wait in the outbox) and the summary says so.

use super::report::{BillCounts, ChainFigures, Summary, TxLine};
use super::{DemandSource, SimConfig, SimTarget, hhmm};
use anyhow::Context;
use clap::Args;
use evflex::chain::ChainContext;
use evflex::config::{Secret, ServeConfig};
use evflex::domain::SimClock;
use evflex::{Application, store};
use indicatif::{ProgressBar, ProgressStyle};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
    /// Generated EVs (default 2.5 per charge point: a busy public garage whose connection, 45 %
    /// of its charge points' ratings, uncontrolled charging would overload).
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
    /// Play the day in quarter-hour steps (every car plugs in and out on a tick boundary and
    /// draws one power per step) instead of in continuous time.
    #[arg(long)]
    pub steps: bool,
    /// Continuous time: meter values every this many seconds.
    #[arg(long, default_value_t = 60)]
    pub meter_interval_s: u32,
    /// Continuous time: seconds from evflex sending a profile to the car following it.
    #[arg(long, default_value_t = 5)]
    pub profile_latency_s: u32,
    /// Continuous time: share of charge points that ignore every profile.
    #[arg(long, default_value_t = 0.0)]
    pub ignore_profiles_share: f64,
    /// Continuous time: SoC (%) above which a battery's power falls linearly to 0 at full.
    #[arg(long, default_value_t = 80.0)]
    pub taper_knee_percent: f64,
    /// Continuous time: each vehicle's own knee lies up to this many points either side of
    /// `--taper-knee-percent` (evflex is not told; it learns it from meter values).
    #[arg(long, default_value_t = 0.0)]
    pub taper_knee_spread_percent: f64,
    /// Every group's arrival reserve (W), as a CPO sets it in the topology; by default
    /// evflex's rule (README, "Control in real time"). `--arrival-reserve-w 0` measures what
    /// the reserve costs.
    #[arg(long)]
    pub arrival_reserve_w: Option<i64>,
    /// Continuous time: the stationary battery on group 3 (kWh of usable capacity, half full at
    /// the start, 0.5 C); 0: none.
    #[arg(long, default_value_t = 60.0)]
    pub battery_kwh: f64,
    /// Exit after the summary instead of serving until Ctrl-C.
    #[arg(long)]
    pub exit: bool,
    /// Print the day under the four policies (smart, uncontrolled, equal share, hindsight) as
    /// one JSON object on stdout (`evflex_sim::policies::PolicyReport`); the table and the
    /// other lines then go to stderr.
    #[arg(long)]
    pub json: bool,
    /// The simulated CPO accepts every profile. By default it behaves like real CPO backends:
    /// one session in 12 is at a charge point that answers `REJECTED`, and every 9th profile
    /// PUT is answered `TOO_OFTEN` (`evflex_sim::cpo::Quirks::DEMO`).
    #[arg(long)]
    pub cpo_accepts_all: bool,
    /// Folder for the plots (`report.html`).
    #[arg(long, default_value = "output/demo")]
    pub out: PathBuf,
    /// Address to serve on (port 0: a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// How long to wait after the day for the chain writer to drain the outbox before the
    /// chain figures and the audit (seconds).
    #[arg(long, default_value_t = 120)]
    pub drain_timeout_s: u64,
    /// Chain settings, as for `evflex serve` (`--no-chain` runs without one; when the chain
    /// cannot be reached the demo says so and runs without).
    #[command(flatten)]
    pub chain_config: evflex::chain::ChainConfig,
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
            cpo_quirks: if self.cpo_accepts_all {
                super::cpo::Quirks::NONE
            } else {
                super::cpo::Quirks::DEMO
            },
            continuous: (!self.steps).then(|| super::live::Continuous {
                meter_interval_s: self.meter_interval_s.max(1),
                profile_latency_s: self.profile_latency_s,
                ignore_profiles_share: self.ignore_profiles_share.clamp(0.0, 1.0),
                taper_knee: (self.taper_knee_percent / 100.0).clamp(0.0, 0.99),
                taper_knee_spread: (self.taper_knee_spread_percent / 100.0).clamp(0.0, 0.5),
            }),
            arrival_reserve_w: self.arrival_reserve_w,
            battery_wh: (self.battery_kwh.max(0.0) * 1_000.0).round() as i64,
            ..SimConfig::default()
        };
        cfg.demand = match &self.sessions_csv {
            Some(path) => DemandSource::Csv {
                path: path.clone(),
                day: self.sessions_day.clone(),
            },
            None => DemandSource::Generated {
                config: evflex_schedule::demand::DemandConfig::new(
                    self.vehicles.unwrap_or(cfg.charge_points * 5 / 2).max(1),
                ),
            },
        };
        cfg
    }
}

/// Database (and chain) figures for the summary; a figure the store cannot give is left out.
async fn db_figures(db: &store::Db, chain: bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let Ok(mut conn) = db.conn().await else {
        return out;
    };
    if let Ok(n) = store::sessions::count_cdrs(&mut conn).await {
        out.push(("CDRs stored by evflex".to_owned(), n.to_string()));
    }
    // What the settlements carry: the flexibility measured from each session's meter register
    // at its CDR (`billing::flexibility`), the basis of its FLEX reward.
    if let Ok(rows) = store::outbox::list(&mut conn, Some("settlement"), 100_000).await {
        let (wh, micro) = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(&r.payload).ok())
            .fold((0_i64, 0_i64), |(wh, micro), p| {
                (
                    wh + p["shifted_wh"].as_i64().unwrap_or(0),
                    micro + p["shifted_value_micro_eur"].as_i64().unwrap_or(0),
                )
            });
        out.push((
            "flexibility measured (basis of FLEX)".to_owned(),
            format!(
                "{:.1} kWh moved later than at full power, worth {:.2} EUR",
                wh as f64 / 1_000.0,
                micro as f64 / 1e6
            ),
        ));
    }
    if let Ok((wh, _)) = store::sessions::flexibility_totals(&mut conn).await {
        out.push((
            "flexibility the plans asked for".to_owned(),
            format!("{:.1} kWh (largest shift per session)", wh as f64 / 1_000.0),
        ));
    }
    let rows = store::outbox::counts_by_status(&mut conn)
        .await
        .unwrap_or_default();
    let list = rows
        .iter()
        .map(|r| format!("{} {}: {}", r.kind, r.status, r.count))
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

/// The progress of the simulated day: an `indicatif` bar with the simulated time on a
/// terminal, a line at every quarter of the day otherwise (logs, CI).
struct DayProgress {
    bar: Option<ProgressBar>,
    first_step: usize,
}

impl DayProgress {
    fn new(first_step: usize, total: usize) -> Self {
        use std::io::IsTerminal as _;
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total as u64);
            bar.set_style(
                ProgressStyle::with_template(
                    "  simulating {msg} [{bar:40}] {pos}/{len} steps, {elapsed}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("#>-"),
            );
            bar.set_message(hhmm(first_step));
            bar
        });
        Self { bar, first_step }
    }

    fn step(&self, done: usize, total: usize) {
        let now = hhmm(self.first_step + done);
        match &self.bar {
            Some(bar) => {
                bar.set_message(now);
                bar.set_position(done as u64);
                if done == total {
                    bar.finish();
                }
            }
            None => {
                if total > 0 && (done * 4 / total != (done - 1) * 4 / total || done == total) {
                    eprintln!("  simulated {done}/{total} steps (clock {now})");
                }
            }
        }
    }
}

/// Waits until the chain writer has sent everything it can (rows `pending`/`sent`, except
/// settlements awaiting funds), at most `timeout`; returns the rows left and the wait.
async fn wait_for_drain(db: &store::Db, timeout: Duration) -> (i64, Duration) {
    let started = Instant::now();
    let spinner = {
        use std::io::IsTerminal as _;
        std::io::stderr()
            .is_terminal()
            .then(ProgressBar::new_spinner)
    };
    let mut said = false;
    let left = loop {
        let left = match db.conn().await {
            Ok(mut conn) => store::outbox_drain::left_to_send(&mut conn)
                .await
                .unwrap_or(0),
            Err(_) => 0,
        };
        if left == 0 || started.elapsed() >= timeout {
            break left;
        }
        let msg = format!("waiting for the chain writer: {left} outbox row(s) to send");
        match &spinner {
            Some(s) => {
                s.set_message(msg);
                s.tick();
            }
            None if !said => eprintln!("  {msg}"),
            None => {}
        }
        said = true;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    if left > 0 {
        eprintln!(
            "  the chain outbox did not drain within {} s: {left} row(s) still to send \
             (chain figures and audit below are as of now)",
            timeout.as_secs()
        );
    }
    (left, started.elapsed())
}

/// The chain's side of the day: waits for the outbox to drain, then transactions and gas
/// (stored receipts), FLEX minted (settlement events and the token's supply), bills by status
/// and by price source, and what `evflex audit` finds.
async fn chain_figures(db: &store::Db, ctx: &ChainContext, timeout: Duration) -> ChainFigures {
    let (left, waited) = wait_for_drain(db, timeout).await;
    let transactions = match db.conn().await {
        Ok(mut conn) => store::outbox::gas_by_kind(&mut conn)
            .await
            .unwrap_or_default(),
        Err(_) => Vec::new(),
    }
    .into_iter()
    .map(|k| TxLine {
        kind: k.kind,
        transactions: k.transactions,
        gas_used: k.gas_used,
    })
    .collect();
    let op = &ctx.operator;
    let chain_totals = op.traffic_since(ctx.deployment.start_block).await.ok();
    let wei = |v: evflex_chain::alloy_types::U256| u128::try_from(v).unwrap_or(u128::MAX);
    let events = match op.block_number().await {
        Ok(to) => op
            .settlement_events(ctx.deployment.start_block, to)
            .await
            .unwrap_or_default(),
        Err(_) => Default::default(),
    };
    let flex_supply_wei = op.flex_total_supply().await.ok().map(wei);
    let mut bills = BillCounts::default();
    if let Ok(mut conn) = db.conn().await {
        for b in store::bills::all(&mut conn, i64::MAX)
            .await
            .unwrap_or_default()
        {
            match b.status.as_str() {
                "settled" => bills.settled += 1,
                "awaiting_funds" => bills.awaiting_funds += 1,
                "pending" => bills.pending += 1,
                "failed" => bills.failed += 1,
                _ => bills.unbillable += 1,
            }
            match b.price_source.as_str() {
                "cdr_total_cost" => bills.by_cdr_total_cost += 1,
                "tariff" => bills.by_tariff += 1,
                _ => bills.by_flat += 1,
            }
        }
    }
    let audit = evflex::chain::audit::audit(db, op)
        .await
        .map_err(|e| e.to_string());
    ChainFigures {
        drain_wait_s: waited.as_secs_f64(),
        left_in_outbox: left,
        chain_totals,
        transactions,
        settlements: events.settled.len(),
        flex_minted_wei: events.settled.iter().map(|e| wei(e.flex_minted)).sum(),
        flex_supply_wei,
        bills,
        audit,
    }
}

/// `evflex demo` from `main`: logs at `warn` unless `RUST_LOG` says otherwise (the progress
/// bar and the table stay readable), a runtime, [`demo`].
///
/// alloy's block poller (behind receipt waits) logs "failed to poll" at ERROR once the demo's
/// anvil has stopped at exit; the writer reports real chain errors itself, so it is silenced.
pub fn main(args: DemoArgs) -> anyhow::Result<()> {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("warn,alloy_rpc_client::poller=off"));
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
    // The arrival reserve covers the cars that plug in before evflex's first profile for them
    // is in force: in continuous time the profile latency (evflex plans each arrival at the
    // second it lands); in quarter-hour steps none, as a car plugs in at a step boundary and
    // the tick plans it before it draws anything.
    config.engine.reaction_window_s = sim
        .continuous
        .as_ref()
        .map_or(0.0, |c| f64::from(c.reaction_window_s()));
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
    let chain = state.engine.chain.is_some();
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
    let progress = DayProgress::new(sim.first_step(), sim.end_step() - sim.first_step());
    let record = super::run(&sim, &target, |done, total| progress.step(done, total))
        .await
        .context("simulating the day")?;
    let mut summary = Summary::of(&record);
    if let Some(ctx) = &state.engine.chain {
        summary.chain =
            Some(chain_figures(&state.db, ctx, Duration::from_secs(args.drain_timeout_s)).await);
    }
    summary.extra = db_figures(&state.db, chain).await;
    summary.extra.push(("chain".to_owned(), chain_note));
    let policies = super::policies::of(&record);
    // With `--json` stdout carries the JSON object only; everything else goes to stderr.
    let say = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!("{summary}"));
    say(format!("{policies}"));
    if !record.api_errors.is_empty() {
        say(format!("  first refused call: {}", record.api_errors[0]));
    }
    let report = super::plots::write_report(&record, &summary, &args.out)
        .with_context(|| format!("writing the report to {}", args.out.display()))?;
    say(format!("  plots: {}", report.display()));
    say(format!(
        "  cockpit: {base_url}/cockpit/   (CPO token: {})",
        record.cpo_token
    ));
    say(format!(
        "  EV user app: {base_url}/app/   API: {base_url}/api/openapi.json"
    ));
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&policies).context("encoding the policy report")?
        );
    }
    if !args.exit {
        say("  serving until Ctrl-C (the simulated clock stays at the end of the day)".to_owned());
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
        evflex::domain::unix_now()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
