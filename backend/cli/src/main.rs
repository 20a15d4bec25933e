//! The `evflex` command line: parses flags and hands over to the library.

mod parties;
mod tools;

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
    Plan(tools::PlanArgs),
    /// Benchmarks that print their figures.
    #[command(subcommand)]
    Bench(tools::BenchCommand),
    /// Simulate a day: a CPO and EV users play against evflex on a simulated clock, then the
    /// summary, plots and the cockpit.
    Demo(Box<evflex_sim::demo::DemoArgs>),
    /// Compare the database with the chain; print every difference (exit 1 if any).
    Audit(evflex::chain::audit::AuditArgs),
    /// Verify one committed schedule from the public API and the chain (exit 1 on failure).
    Verify(evflex::chain::audit::VerifyArgs),
    /// Onboard CPOs at run time (token A, the handshake towards a CPO) and take one off.
    #[command(subcommand)]
    Parties(parties::PartiesCommand),
    /// A CPO's meter signer: signs that CPO's bills with its own key, which evflex never holds.
    MeterSigner(Box<evflex::billing::signer::SignerArgs>),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(config) => {
            evflex::telemetry::init_tracing();
            tokio::runtime::Runtime::new()?.block_on(evflex::serve(*config))
        }
        Command::Plan(args) => tools::plan(&args),
        Command::Bench(tools::BenchCommand::Schedule(args)) => tools::bench_schedule(&args),
        Command::Bench(tools::BenchCommand::Chain(args)) => tools::bench_chain(&args),
        Command::Bench(tools::BenchCommand::Replan(args)) => tools::bench_replan(&args),
        Command::Bench(tools::BenchCommand::Steps(args)) => tools::bench_steps(&args),
        Command::Demo(args) => evflex_sim::demo::main(*args),
        Command::Audit(args) => {
            let clean =
                tokio::runtime::Runtime::new()?.block_on(evflex::chain::audit::run_audit(&args))?;
            std::process::exit(if clean { 0 } else { 1 })
        }
        Command::Parties(command) => parties::run(command),
        Command::MeterSigner(args) => {
            evflex::telemetry::init_tracing();
            tokio::runtime::Runtime::new()?.block_on(evflex::billing::signer::run(*args))
        }
        Command::Verify(args) => {
            let ok = tokio::runtime::Runtime::new()?
                .block_on(evflex::chain::audit::run_verify(&args))?;
            std::process::exit(if ok { 0 } else { 1 })
        }
    }
}
