//! Run `evflex bench schedule` from the library:
//! `cargo run --release -p evflex-schedule --example bench [-- --json] [--milp]`.

use evflex_schedule::Mode;
use evflex_schedule::bench::{BenchConfig, run};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mut cfg = BenchConfig::default();
    if args.iter().any(|a| a == "--milp") {
        cfg.mode = Mode::Milp;
    }
    let report = run(&cfg);
    if args.iter().any(|a| a == "--json") {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serialisable")
        );
    } else {
        print!("{report}");
    }
}
