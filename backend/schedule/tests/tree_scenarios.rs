//! Scenario tests of the electrical model (tree of limits, phases, whole amps), EVerest style:
//! every JSON file in `tests/data/tree_scenarios/` holds a group's inputs with a topology, the
//! mode, and the expected limits (set-points in A per charge point, the load of nodes in A per
//! phase) and energy. On failure the test prints a field-by-field diff of expected against
//! actual. Every schedule must also pass the checker (no limit exceeded, whole set-points).
//!
//! Expected keys: `status`, `delivered_kwh` (total), `set_points_a` (vehicle → A per step),
//! `node_peak_a` (node → highest A per phase over the horizon), `node_load_a` (node → A per
//! phase per step), `at_most_charging` (per step: at most this many charge points draw).
//! The expected values are derived by hand in each file's description
//! (`tests/data/tree_scenarios/generate.py` wrote the inputs).

use std::path::Path;

use evflex_schedule::{
    Admission, GroupInputs, Mode, RateUnit, SolveOptions, VehicleClass, Violation, admit, check,
    node_loads, set_points, solve,
};
use serde_json::{Map, Value, json};

mod common;

use common::diff;

fn opts(mode: Mode) -> SolveOptions {
    SolveOptions {
        mode,
        time_limit_ms: 60_000,
        ..SolveOptions::default()
    }
}

/// The actual values of every key `expected` names.
fn actual(g: &GroupInputs, mode: Mode, expected: &Value) -> (Value, Vec<String>) {
    let o = opts(mode);
    let s = solve(g, &o, None).unwrap();
    let report = check(g, &s, &o);
    let problems: Vec<String> = report.violations.iter().map(|v| v.to_string()).collect();
    let sp = set_points(g, &s).unwrap();
    let loads = node_loads(g, &s).unwrap();
    let a = |ma: i64| ma as f64 / 1000.0;
    let mut out = Map::new();
    for key in expected
        .as_object()
        .map(|m| m.keys().cloned().collect::<Vec<String>>())
        .unwrap_or_default()
    {
        let v = match key.as_str() {
            "status" => serde_json::to_value(s.status).unwrap(),
            "delivered_kwh" => json!(s.delivered_wh.iter().sum::<i64>() as f64 / 1000.0),
            "set_points_a" => Value::Object(
                sp.iter()
                    .filter(|r| r.unit == RateUnit::Amps)
                    .map(|r| {
                        let row: Vec<f64> = r.values.iter().map(|&x| a(x)).collect();
                        (r.vehicle_id.clone(), json!(row))
                    })
                    .collect(),
            ),
            "node_peak_a" => Value::Object(
                loads
                    .iter()
                    .map(|l| {
                        let peak: Vec<f64> = (0..3)
                            .map(|ph| a(l.phase_ma.iter().map(|x| x[ph]).max().unwrap_or(0)))
                            .collect();
                        (l.node.clone(), json!(peak))
                    })
                    .collect(),
            ),
            "node_load_a" => Value::Object(
                loads
                    .iter()
                    .map(|l| {
                        let rows: Vec<Vec<f64>> = l
                            .phase_ma
                            .iter()
                            .map(|x| x.iter().map(|&m| a(m)).collect())
                            .collect();
                        (l.node.clone(), json!(rows))
                    })
                    .collect(),
            ),
            "at_most_charging" => {
                let charging: Vec<usize> = (0..g.horizon)
                    .map(|t| s.power_w.iter().filter(|r| r[t] > 0).count())
                    .collect();
                let limits: Vec<usize> =
                    serde_json::from_value(expected[&key].clone()).unwrap_or_default();
                // Report the limit where it holds, the count where it does not (so the diff
                // shows the offending step).
                json!(
                    charging
                        .iter()
                        .zip(&limits)
                        .map(|(&c, &l)| if c <= l { l } else { c })
                        .collect::<Vec<_>>()
                )
            }
            _ => Value::Null,
        };
        out.insert(key, v);
    }
    (Value::Object(out), problems)
}

fn scenario_files() -> Vec<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tree_scenarios");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

fn load(file: &Path) -> (Value, GroupInputs, Mode) {
    let scenario: Value = serde_json::from_str(&std::fs::read_to_string(file).unwrap()).unwrap();
    let g: GroupInputs = serde_json::from_value(scenario["input"].clone()).unwrap();
    let mode: Mode = serde_json::from_value(scenario["mode"].clone()).unwrap_or_default();
    (scenario, g, mode)
}

#[test]
fn json_tree_scenarios() {
    let files = scenario_files();
    assert!(files.len() >= 6);
    let mut failures = Vec::new();
    for file in files {
        let (scenario, g, mode) = load(&file);
        let (act, problems) = actual(&g, mode, &scenario["expected"]);
        let mut d = Vec::new();
        diff("", &scenario["expected"], &act, &mut d);
        d.extend(problems.iter().map(|p| format!("  checker: {p}")));
        if !d.is_empty() {
            failures.push(format!(
                "{} ({}):\n{}\nactual: {act}",
                file.file_name().unwrap().to_string_lossy(),
                scenario["description"].as_str().unwrap_or(""),
                d.join("\n"),
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "tree scenario mismatches:\n{}",
        failures.join("\n\n")
    );
}

/// The same scenarios in MILP mode (integer current steps): the checker accepts every schedule
/// and the LP mode's rounding delivers within 1 % of the MILP.
#[test]
fn tree_scenarios_milp_agrees() {
    for file in scenario_files() {
        let (_, g, _) = load(&file);
        let o = opts(Mode::Milp);
        let milp = solve(&g, &o, None).unwrap();
        let report = check(&g, &milp, &o);
        assert!(report.is_ok(), "{file:?}: {:?}", report.violations);
        let lp = solve(&g, &opts(Mode::Lp), None).unwrap();
        let (e_lp, e_milp) = (
            lp.delivered_wh.iter().sum::<i64>() as f64,
            milp.delivered_wh.iter().sum::<i64>() as f64,
        );
        assert!(
            e_lp >= 0.99 * e_milp,
            "{file:?}: LP+rounding {e_lp} Wh, MILP {e_milp} Wh"
        );
    }
}

/// The garage: one kW limit per node lets a phase pair carry up to √3 times its share (the
/// per-phase checker finds limits exceeded); a √3 derating is safe but wastes capacity; the
/// tree with per-phase limits delivers more than the derated site with no limit exceeded.
#[test]
fn garage_tree_beats_kw_limits() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tree_scenarios/garage_two_transformers.json");
    let (scenario, tree, _) = load(&file);
    let o = opts(Mode::Lp);
    let kva = |id: &str| scenario["transformer_kva"][id].as_f64();
    // The same site with one W limit per node: the transformer's kVA, or √3 × 208 V × the
    // panel's amps; `derate` divides it by √3.
    let kw_site = |derate: f64| {
        let mut g = tree.clone();
        let top = g.topology.as_mut().unwrap();
        for n in &mut top.nodes {
            let amps = n.phase_limit_ma[0].unwrap() as f64 / 1000.0;
            let w = kva(&n.id).map_or(3f64.sqrt() * 208.0 * amps, |k| k * 1000.0);
            n.limit_w = Some((w / derate).floor() as i64);
            n.phase_limit_ma = [None; 3];
        }
        g
    };
    let energy = |s: &evflex_schedule::Schedule| s.delivered_wh.iter().sum::<i64>();
    let node_violations = |s: &evflex_schedule::Schedule| {
        check(&tree, s, &o)
            .violations
            .into_iter()
            .filter(|v| matches!(v, Violation::NodeLimit { .. }))
            .count()
    };

    let s_tree = solve(&tree, &o, None).unwrap();
    let report = check(&tree, &s_tree, &o);
    assert!(report.is_ok(), "{:?}", report.violations);

    let kw = kw_site(1.0);
    let s_kw = solve(&kw, &o, None).unwrap();
    let derated = kw_site(3f64.sqrt());
    let s_derated = solve(&derated, &o, None).unwrap();

    let (e_tree, e_kw, e_der) = (energy(&s_tree), energy(&s_kw), energy(&s_derated));
    eprintln!(
        "garage: tree {e_tree} Wh (0 limits exceeded), one kW limit {e_kw} Wh ({} limits \
         exceeded), sqrt(3)-derated {e_der} Wh ({} exceeded)",
        node_violations(&s_kw),
        node_violations(&s_derated)
    );
    assert!(
        node_violations(&s_kw) > 0,
        "a single kW limit should overload a phase pair"
    );
    assert_eq!(node_violations(&s_derated), 0);
    assert!(
        e_tree as f64 > 1.2 * e_der as f64,
        "tree {e_tree} Wh vs derated {e_der} Wh"
    );
}

/// Admission control under a tree: the seed 004 house accepts a small request and rejects one
/// beyond what the contracted current leaves, with a guarantee the solver then meets.
#[test]
fn admission_under_a_tree() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tree_scenarios/seed004_contracted_power.json");
    let (_, g, _) = load(&file);
    let o = opts(Mode::Lp);
    let mut request = g.vehicles[0].clone();
    request.class = VehicleClass::Guaranteed;
    request.energy_requested_wh = 1_000;
    assert_eq!(admit(&g, &request, &o).unwrap(), Admission::Accepted);
    request.energy_requested_wh = 50_000;
    let Admission::Rejected {
        max_guaranteed_wh, ..
    } = admit(&g, &request, &o).unwrap()
    else {
        panic!("50 kWh in 75 minutes behind 30 A cannot be guaranteed");
    };
    assert!(max_guaranteed_wh > 1_000, "{max_guaranteed_wh}");
    request.energy_requested_wh = max_guaranteed_wh;
    assert_eq!(admit(&g, &request, &o).unwrap(), Admission::Accepted);
}

/// The canonical inputs cover the tree: a group with a topology hashes as `evflex.inputs.v2`,
/// and moving a charge point to another phase (its rotation) or changing a limit changes the
/// hash; a group without one keeps the v1 layout (pinned in `tests/examples.rs`).
#[test]
fn inputs_hash_covers_the_tree() {
    use evflex_schedule::Phase;
    use evflex_schedule::hash::{canonical_inputs, inputs_hash};
    let file = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/tree_scenarios/rotated_single_phase_cars.json");
    let (_, g, _) = load(&file);
    assert!(canonical_inputs(&g).starts_with(b"evflex.inputs.v2"));
    let mut rotated = g.clone();
    rotated.topology.as_mut().unwrap().charge_points[0].phases =
        vec![Phase::L3, Phase::L1, Phase::L2];
    assert_ne!(inputs_hash(&g), inputs_hash(&rotated));
    let mut limit = g.clone();
    limit.topology.as_mut().unwrap().nodes[0].phase_limit_ma[2] = Some(31_000);
    assert_ne!(inputs_hash(&g), inputs_hash(&limit));
    let mut reordered = g.clone();
    reordered.topology.as_mut().unwrap().charge_points.reverse();
    assert_eq!(inputs_hash(&g), inputs_hash(&reordered));
    let mut none = g.clone();
    none.topology = None;
    assert!(canonical_inputs(&none).starts_with(b"evflex.inputs.v1"));
}
