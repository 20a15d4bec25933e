//! The `evflex` command line: parses flags and hands over to the library.

use clap::{Parser, Subcommand};

/// evflex: EV smart charging with on-chain billing.
#[derive(Debug, Parser)]
#[command(name = "evflex", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run the service: OCPI receiver, user API, cockpit and the 15-minute tick.
    Serve(Box<evflex::ServeConfig>),
    /// Solve one group instance (neutral JSON format) and print the schedule and figures.
    Plan(evflex::cli::PlanArgs),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(evflex::cli::BenchCommand),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            evflex::telemetry::init_tracing();
            tokio::runtime::Runtime::new()?.block_on(evflex::serve(*config))
        }
        Command::Plan(args) => evflex::cli::plan(&args),
        Command::Bench(evflex::cli::BenchCommand::Schedule(args)) => {
            evflex::cli::bench_schedule(&args)
        }
    }
}
