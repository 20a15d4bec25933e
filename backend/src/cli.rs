//! The optimiser's command-line tools: `evflex plan` (one instance in the neutral JSON format)
//! and `evflex bench schedule` (the day-ahead planner's benchmark sizes and a parallel tick).
//! Thin wrappers over [`evflex_schedule::neutral`] and [`evflex_schedule::bench`].

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
