//! Command-line tools: `evflex plan` (one instance in the neutral JSON format), `evflex bench
//! schedule` (the day-ahead planner's benchmark sizes and a parallel tick; thin wrappers over
//! [`evflex_schedule::neutral`] and [`evflex_schedule::bench`]) and `evflex bench chain` (gas and
//! wall time of one tick's status commits written to a local anvil through the outbox writer).

use anyhow::Context;
use clap::{Args, Subcommand};
use evflex_schedule::Mode;
use evflex_schedule::bench::{self, BenchConfig};
use evflex_schedule::neutral::{self, PlanInput};
use std::path::PathBuf;

/// `evflex plan`: solve one group instance and print the schedule and figures.
#[derive(Debug, Args)]
pub struct PlanArgs {
    /// Instance in the neutral format: `{"time_step_s":900,"horizon":96,"capacity_kw":100,
    /// "price_eur_per_kwh":0.13,"vehicles":[{"id":"0","arrival":47,"departure":67,
    /// "p_max_kw":22,"energy_kwh":26.0,"battery_kwh":52,"soe_init_kwh":0}]}`.
    #[arg(long)]
    pub input: PathBuf,
    /// MILP mode: each charge point draws 0 or at least its minimum power.
    #[arg(long)]
    pub milp: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `evflex bench …`.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Build and solve times for 40/100/400/1,000 EVs and a 250-group parallel tick.
    Schedule(BenchScheduleArgs),
    /// Gas and wall time of one tick's StatusLedger commits (250 groups × 25 charge points by
    /// default) written to a local anvil through the outbox writer.
    Chain(BenchChainArgs),
    /// Event-to-profile latency of event re-plans: one group, or many groups each getting an
    /// arrival in the same second (`--groups 250`).
    Replan(evflex_sim::bench::ReplanBenchArgs),
    /// Energy delivered on a day of tapering batteries under plans made in 15-minute against
    /// finer steps (`--step-s 900,300`).
    Steps(evflex_sim::steps::StepsBenchArgs),
}

/// `evflex bench steps`.
pub fn bench_steps(args: &evflex_sim::steps::StepsBenchArgs) -> anyhow::Result<()> {
    let runs = evflex_sim::steps::run(args)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&runs)?);
    } else {
        print!("{}", evflex_sim::steps::table(&runs));
    }
    Ok(())
}

/// `evflex bench replan`.
pub fn bench_replan(args: &evflex_sim::bench::ReplanBenchArgs) -> anyhow::Result<()> {
    // Quiet unless asked: `RUST_LOG=debug EVFLEX_LOG_SPANS=1` shows where each re-plan spends
    // its time.
    if std::env::var_os("RUST_LOG").is_some() {
        evflex::telemetry::init_tracing();
    }
    let report = tokio::runtime::Runtime::new()?.block_on(evflex_sim::bench::run(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `evflex bench schedule`.
#[derive(Debug, Args)]
pub struct BenchScheduleArgs {
    /// MILP mode instead of LP.
    #[arg(long)]
    pub milp: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Runs per size; the median is reported.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Groups in the parallel tick (0 skips it).
    #[arg(long, default_value_t = 250)]
    pub tick_groups: usize,
    /// The integer-amp benchmark instead: three-phase groups under a tree of per-phase limits
    /// with rotated single-phase cars, whole amps from 6 A (`bench::run_amps`).
    #[arg(long)]
    pub amps: bool,
    /// With `--amps`: also solve the full MILP on sizes up to this many EVs (0: never).
    #[arg(long, default_value_t = 100)]
    pub milp_up_to: usize,
}

fn mode(milp: bool) -> Mode {
    if milp { Mode::Milp } else { Mode::Lp }
}

/// Runs `evflex plan`.
pub fn plan(args: &PlanArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.input)
        .with_context(|| format!("reading {}", args.input.display()))?;
    let input: PlanInput = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid plan instance", args.input.display()))?;
    let output = neutral::plan(&input, mode(args.milp))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&output)?);
    } else {
        print!("{output}");
    }
    Ok(())
}

/// Runs `evflex bench schedule`.
pub fn bench_schedule(args: &BenchScheduleArgs) -> anyhow::Result<()> {
    if args.amps {
        let report = bench::run_amps(&bench::AmpsBenchConfig {
            runs: args.runs.max(1),
            milp_up_to: args.milp_up_to,
            ..bench::AmpsBenchConfig::default()
        });
        if args.json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{report}");
        }
        return Ok(());
    }
    let config = BenchConfig {
        mode: mode(args.milp),
        runs: args.runs.max(1),
        tick_groups: args.tick_groups,
        ..BenchConfig::default()
    };
    let report = bench::run(&config);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

/// `evflex bench chain`.
#[derive(Debug, Args)]
pub struct BenchChainArgs {
    /// Groups.
    #[arg(long, default_value_t = 250)]
    pub groups: usize,
    /// Charge points per group.
    #[arg(long, default_value_t = 25)]
    pub charge_points: usize,
    /// Ticks to write, one after the other. A group's first commit also fills its fresh
    /// `lastTimestep` slot, so the first tick costs more than the steady state.
    #[arg(long, default_value_t = 2)]
    pub ticks: usize,
    /// Skip registering the groups and charge points in AssetRegistry (StatusLedger does not
    /// check them).
    #[arg(long)]
    pub skip_assets: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Gas and time of one batch of chain writes.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct WriteFigures {
    /// Transactions mined.
    pub transactions: u64,
    /// Gas they used.
    pub gas_used: u64,
    /// Wall time (s).
    pub wall_s: f64,
}

/// What `evflex bench chain` measured.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainBenchReport {
    /// Groups.
    pub groups: usize,
    /// Charge points per group.
    pub charge_points_per_group: usize,
    /// Calldata of one group's packed member statuses (bytes).
    pub member_bytes_per_group: usize,
    /// Asset registration (`registerGroup` + `registerChargePoints` per group), if done.
    pub assets: Option<WriteFigures>,
    /// One entry per tick: all groups' status commits through the outbox writer.
    pub ticks: Vec<WriteFigures>,
}

impl std::fmt::Display for ChainBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cps = (self.groups * self.charge_points_per_group).max(1) as f64;
        let groups = self.groups.max(1) as f64;
        writeln!(
            f,
            "evflex bench chain: {} groups x {} charge points ({} charge points) on a local anvil",
            self.groups,
            self.charge_points_per_group,
            self.groups * self.charge_points_per_group
        )?;
        if let Some(a) = &self.assets {
            writeln!(
                f,
                "  asset registration (registerGroup + registerChargePoints per group, direct \
                 client calls): {} tx, {} gas ({:.0} per charge point), {:.1} s",
                a.transactions,
                a.gas_used,
                a.gas_used as f64 / cps,
                a.wall_s
            )?;
        }
        writeln!(
            f,
            "  status commits through the outbox writer (commitBatch of up to 50 groups; {} bytes \
             of packed members per group):",
            self.member_bytes_per_group
        )?;
        writeln!(
            f,
            "  {:<6} {:>4} {:>12} {:>11} {:>10} {:>8} {:>8}",
            "tick", "tx", "gas", "gas/group", "gas/CP", "wall s", "CP/s"
        )?;
        for (i, t) in self.ticks.iter().enumerate() {
            writeln!(
                f,
                "  {:<6} {:>4} {:>12} {:>11.0} {:>10.0} {:>8.2} {:>8.0}{}",
                i + 1,
                t.transactions,
                t.gas_used,
                t.gas_used as f64 / groups,
                t.gas_used as f64 / cps,
                t.wall_s,
                cps / t.wall_s.max(1e-9),
                if i == 0 {
                    "  (first commit per group: fresh storage)"
                } else {
                    ""
                }
            )?;
        }
        Ok(())
    }
}

/// Runs `evflex bench chain`.
pub fn bench_chain(args: &BenchChainArgs) -> anyhow::Result<()> {
    let report = tokio::runtime::Runtime::new()?.block_on(run_chain_bench(args))?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}

const BENCH_CC: &str = "NL";
const BENCH_PARTY: &str = "BEN";

fn bench_uid(group: usize, cp: usize) -> String {
    format!("G{group:03}-CP{cp:02}")
}

/// Starts a local anvil, fills a temporary SQLite database with the groups and charge points,
/// registers them on chain unless told not to, then for each tick enqueues every group's status
/// commit (as the tick does) and times the outbox writer draining them.
async fn run_chain_bench(args: &BenchChainArgs) -> anyhow::Result<ChainBenchReport> {
    use alloy::primitives::{B256, keccak256};
    use evflex::chain::writer::Writer;
    use evflex::chain::{ChainConfig, ChainContext, WriterMode};
    use evflex::domain::WallClock;
    use evflex::store::outbox;
    use evflex::store::{Db, groups, locations};
    use evflex_chain::work::{ChainWork, MemberSnapshot, StatusCommitWork};
    use rand::{Rng, SeedableRng};
    use std::sync::Arc;
    use std::time::Instant;

    let (n_groups, n_cps) = (args.groups.max(1), args.charge_points.max(1));
    let dir = std::env::temp_dir().join(format!(
        "evflex-bench-chain-{}-{}",
        std::process::id(),
        evflex::domain::unix_now()
    ));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let db = Db::connect(
        &format!("sqlite://{}?mode=rwc", dir.join("bench.sqlite").display()),
        1,
    )
    .await?;
    db.migrate().await?;
    let config = ChainConfig {
        no_chain: false,
        writer: WriterMode::Manual,
        ..ChainConfig::disabled()
    };
    let (ctx, local) = ChainContext::connect(&config)
        .await
        .context("starting a local anvil")?;
    let result = async {
        let now = evflex::domain::unix_now();
        // The database: groups and their EVSEs (the writer reads them to pack the members).
        let mut cp_ids: Vec<Vec<i64>> = Vec::with_capacity(n_groups);
        {
            let mut tx = db.begin().await?;
            for g in 0..n_groups {
                let id = g as i64 + 1;
                let uids: Vec<String> = (0..n_cps).map(|c| bench_uid(g + 1, c)).collect();
                let mut ids = Vec::with_capacity(n_cps);
                groups::upsert(
                    &mut tx,
                    &groups::GroupRecord {
                        id,
                        name: format!("bench group {id}"),
                        country_code: BENCH_CC.to_owned(),
                        party_id: BENCH_PARTY.to_owned(),
                        capacity_w: n_cps as i64 * 11_040 / 2,
                        other_load_w: 0,
                        pv_inverters: Vec::new(),
                        batteries: Vec::new(),
                        electrical: groups::Electrical::default(),
                        arrival_reserve_w: None,
                    },
                    now,
                )
                .await?;
                for uid in &uids {
                    let row = locations::upsert_evse(
                        &mut tx,
                        &locations::EvseRecord {
                            country_code: BENCH_CC.to_owned(),
                            party_id: BENCH_PARTY.to_owned(),
                            location_id: format!("LOC{id:03}"),
                            uid: uid.clone(),
                            evse_id: None,
                            status: "CHARGING".to_owned(),
                            rated_power_w: Some(11_040),
                            power_type: Some("AC_3_PHASE".to_owned()),
                            phases: Some(3),
                            max_voltage_v: Some(230),
                            max_current_a: Some(16),
                            connector_standard: Some("IEC_62196_T2".to_owned()),
                            body: serde_json::json!({}),
                            last_updated: now,
                        },
                    )
                    .await?;
                    ids.push(row);
                }
                cp_ids.push(ids);
                groups::set_members(&mut tx, id, BENCH_CC, BENCH_PARTY, &uids).await?;
            }
            tx.commit().await?;
        }
        let op = &ctx.operator;
        // SC1: one registerGroup and one registerChargePoints per group.
        let assets = if args.skip_assets {
            None
        } else {
            let started = Instant::now();
            let mut a = WriteFigures::default();
            for (g, ids) in cp_ids.iter().enumerate() {
                let id = g as u64 + 1;
                let group = evflex_chain::Group {
                    id,
                    label: format!("bench group {id}"),
                    capacity_w: (n_cps * 11_040 / 2) as u64,
                };
                let cps = ids
                    .iter()
                    .enumerate()
                    .map(|(c, row)| {
                        anyhow::Ok(evflex_chain::ChargePoint {
                            id: evflex_chain::ChargePointId::try_from(*row)?,
                            group_id: id,
                            evse_uid: bench_uid(g + 1, c),
                            rated_power_w: 11_040,
                            power_type: evflex_chain::PowerType::Ac3Phase,
                            phases: 3,
                            voltage_v: 230,
                            max_current_a: 16,
                            connector_standard: "IEC_62196_T2".to_owned(),
                            status: evflex_chain::EvseStatus::Charging,
                        })
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                for outcome in [
                    op.register_group(&group).await?,
                    op.register_charge_points(&cps).await?,
                ] {
                    if let Some(tx) = outcome.tx() {
                        a.transactions += 1;
                        a.gas_used += tx.gas_used;
                    }
                }
            }
            a.wall_s = started.elapsed().as_secs_f64();
            Some(a)
        };
        // The algorithm version the commits name (registered once, outside the timing).
        let opts = evflex_schedule::SolveOptions::default();
        ctx.register_algorithm(&opts).await?;
        let params_hash = B256::from(evflex_schedule::hash::params_hash(&opts)).to_string();
        let writer = Writer::new(ctx.clone(), db.clone(), Arc::new(WallClock));
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(250);
        let first_timestep = now / 900;
        let mut ticks = Vec::new();
        for t in 0..args.ticks.max(1) {
            let timestep = first_timestep + t as i64;
            // What the tick enqueues: one status commit per group, in one transaction.
            let mut tx = db.begin().await?;
            for g in 0..n_groups {
                let group_id = g as i64 + 1;
                let members = (0..n_cps)
                    .map(|c| {
                        let charging = rng.random_bool(0.7);
                        let setpoint_w = if charging {
                            rng.random_range(4_140..=11_040)
                        } else {
                            0
                        };
                        MemberSnapshot {
                            evse_uid: bench_uid(g + 1, c),
                            status: if charging { "CHARGING" } else { "AVAILABLE" }.to_owned(),
                            session_id: charging.then(|| format!("S{group_id}-{c}-{timestep}")),
                            setpoint_w,
                            measured_w: if charging {
                                setpoint_w - rng.random_range(0..200)
                            } else {
                                0
                            },
                            energy_left_wh: if charging {
                                rng.random_range(0..40_000)
                            } else {
                                0
                            },
                            time_left_s: if charging {
                                rng.random_range(900..36_000)
                            } else {
                                0
                            },
                        }
                    })
                    .collect();
                let seed = format!("{group_id}:{timestep}");
                let payload = StatusCommitWork {
                    group_id,
                    timestep,
                    revision: 0,
                    time_step_s: 900,
                    inputs_hash: keccak256(format!("inputs:{seed}")).to_string(),
                    schedule_hash: keccak256(format!("schedule:{seed}")).to_string(),
                    params_hash: params_hash.clone(),
                    members,
                };
                outbox::enqueue(
                    &mut tx,
                    &format!("status_commit:{group_id}:{timestep}"),
                    &ChainWork::StatusCommit(payload),
                    now,
                )
                .await?;
            }
            tx.commit().await?;
            let before = status_gas(&db).await?;
            let started = Instant::now();
            let pass = writer.run_until_idle(1_000).await?;
            let wall_s = started.elapsed().as_secs_f64();
            anyhow::ensure!(
                pass.done == n_groups && pass.failed == 0 && pass.retried == 0,
                "tick {}: the writer did not commit every group: {pass:?}",
                t + 1
            );
            let after = status_gas(&db).await?;
            ticks.push(WriteFigures {
                transactions: (after.0 - before.0) as u64,
                gas_used: (after.1 - before.1) as u64,
                wall_s,
            });
        }
        anyhow::Ok(ChainBenchReport {
            groups: n_groups,
            charge_points_per_group: n_cps,
            member_bytes_per_group: evflex_chain::pack_members(&vec![
                evflex_chain::MemberStatus {
                    cp_id: evflex_chain::ChargePointId::try_from(1_u32)?,
                    status: 0,
                    setpoint_w: 0,
                    measured_w: 0,
                    energy_left_wh: 0,
                    time_left_s: 0,
                };
                n_cps
            ])
            .len(),
            assets,
            ticks,
        })
    }
    .await;
    if let Some(mut chain) = local {
        let _ = chain.stop().await;
    }
    db.close().await;
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// Status-commit transactions and gas so far (from the stored receipts).
async fn status_gas(db: &evflex::store::Db) -> anyhow::Result<(i64, i64)> {
    let mut conn = db.conn().await?;
    Ok(evflex::store::outbox::gas_by_kind(&mut conn)
        .await?
        .into_iter()
        .find(|k| k.kind == evflex_chain::WorkKind::StatusCommit.as_str())
        .map_or((0, 0), |k| (k.transactions, k.gas_used)))
}
