//! Scenario tests, EVerest style: every JSON file in `tests/data/scenarios/` holds a neutral
//! instance, the mode, and the expected values of some output fields. On failure the test
//! prints a field-by-field diff of expected against actual.

use std::path::Path;

use evflex_schedule::Mode;
use evflex_schedule::neutral::{PlanInput, plan};
use serde_json::Value;

mod common;

use common::diff;

#[test]
fn json_scenarios() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for file in files {
        let scenario: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
        let input: PlanInput = serde_json::from_value(scenario["input"].clone()).unwrap();
        let mode: Mode = serde_json::from_value(scenario["mode"].clone()).unwrap_or_default();
        let out = plan(&input, mode).unwrap();
        let actual = serde_json::to_value(&out).unwrap();
        let mut d = Vec::new();
        diff("", &scenario["expected"], &actual, &mut d);
        if !d.is_empty() {
            failures.push(format!(
                "{} ({}):\n{}\n{}",
                file.file_name().unwrap().to_string_lossy(),
                scenario["description"].as_str().unwrap_or(""),
                d.join("\n"),
                out
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "scenario mismatches:\n{}",
        failures.join("\n\n")
    );
}
