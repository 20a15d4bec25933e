//! Run `evflex bench schedule` from the library:
//! `cargo run --release -p evflex-schedule --example bench [-- --json] [--milp] [--amps]
//! [--runs N] [--milp-up-to N] [--no-tick]`.

use evflex_schedule::Mode;
use evflex_schedule::bench::{AmpsBenchConfig, BenchConfig, run, run_amps};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let json = args.iter().any(|a| a == "--json");
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|k| args.get(k + 1))
            .and_then(|v| v.parse::<usize>().ok())
    };
    if args.iter().any(|a| a == "--amps") {
        let mut cfg = AmpsBenchConfig::default();
        cfg.runs = value("--runs").unwrap_or(cfg.runs);
        cfg.milp_up_to = value("--milp-up-to").unwrap_or(cfg.milp_up_to);
        let report = run_amps(&cfg);
        if json {
            println!(
                "{}",
                serde_json::to_string_pretty(&report).expect("serialisable")
            );
        } else {
            print!("{report}");
        }
        return;
    }
    let mut cfg = BenchConfig::default();
    if args.iter().any(|a| a == "--milp") {
        cfg.mode = Mode::Milp;
    }
    cfg.runs = value("--runs").unwrap_or(cfg.runs);
    if args.iter().any(|a| a == "--no-tick") {
        cfg.tick_groups = 0;
    }
    let report = run(&cfg);
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        print!("{report}");
    }
}
