//! `evflex bench steps`: does planning in finer steps deliver more (issue 15, "finer steps near
//! now")? The same day is played second by second through tapering batteries
//! ([`crate::live::Battery`]) under a receding-horizon plan made with evflex's optimiser at
//! several step lengths, and the energy each delivers is compared.
//!
//! The world: one group of charge points (11.04 kW each) whose connection is `capacity_share`
//! of their ratings, the day's cars (generated, or an ACN-format CSV as in `evflex demo`), each
//! plugging into the first free charge point at its real second and staying until its real
//! departure, every car best effort for all it takes. The plan: at every arrival, every
//! departure and every step boundary of the plan, the optimiser plans the cars present over 24
//! hours from the current step with each battery's taper; until the next plan, each car draws
//! `min(the plan's power for the current step, its battery's taper, what it still lacks)`.
//! Only the step length differs between runs. The service commits quarter hours whatever its
//! plans use inside them, so a finer step would change the plans, not the commitments.

use crate::demand::{self, Arrival, DemandSource};
use crate::live::Battery;
use evflex_schedule::{GroupInputs, SolveOptions, Vehicle, VehicleClass};
use serde::Serialize;
use std::collections::BTreeMap;

/// `evflex bench steps`.
#[derive(Debug, Clone, clap::Args)]
pub struct StepsBenchArgs {
    /// Step lengths to compare (s), each dividing 900.
    #[arg(long, value_delimiter = ',', default_value = "900,300")]
    pub step_s: Vec<u32>,
    /// Charge points in the group.
    #[arg(long, default_value_t = 40)]
    pub charge_points: usize,
    /// Generated cars (ignored with `--sessions-csv`).
    #[arg(long, default_value_t = 100)]
    pub vehicles: usize,
    /// The connection as a share of the charge points' ratings.
    #[arg(long, default_value_t = 0.45)]
    pub capacity_share: f64,
    /// SoC above which a battery's power falls linearly to 0 at full.
    #[arg(long, default_value_t = 0.8)]
    pub taper_knee: f64,
    /// Replay real sessions (ACN-Data CSV, `.gz` allowed) instead of generating them.
    #[arg(long)]
    pub sessions_csv: Option<std::path::PathBuf>,
    /// Local day of `--sessions-csv` (default the busiest).
    #[arg(long)]
    pub sessions_day: Option<String>,
    /// Seed of the generated day.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// One step length's day.
#[derive(Debug, Clone, Serialize)]
pub struct StepsRun {
    /// Plan step (s).
    pub step_s: u32,
    /// Energy the cars would take (kWh).
    pub energy_wanted_kwh: f64,
    /// Energy delivered (kWh).
    pub energy_delivered_kwh: f64,
    /// Plans made.
    pub plans: usize,
    /// Mean time per plan (ms).
    pub mean_solve_ms: f64,
    /// Seconds the group drew more than its connection.
    pub seconds_over_capacity: u64,
}

/// The day's cars and where they are.
struct Car {
    arrival: Arrival,
    cp: usize,
    battery: Battery,
    delivered_wh: f64,
}

const CP_W: f64 = 11_040.0;

/// Plays the day once per step length.
pub fn run(args: &StepsBenchArgs) -> anyhow::Result<Vec<StepsRun>> {
    let source = match &args.sessions_csv {
        Some(path) => DemandSource::Csv {
            path: path.clone(),
            day: args.sessions_day.clone(),
        },
        None => DemandSource::Generated {
            config: evflex_schedule::demand::DemandConfig::new(args.vehicles),
        },
    };
    let (_, arrivals) = demand::arrivals(&source, args.seed)?;
    args.step_s
        .iter()
        .map(|step| play(args, &arrivals, *step))
        .collect()
}

fn play(args: &StepsBenchArgs, arrivals: &[Arrival], step_s: u32) -> anyhow::Result<StepsRun> {
    anyhow::ensure!(
        step_s > 0 && 900 % step_s == 0,
        "--step-s: {step_s} does not divide 900"
    );
    let capacity_w = (args.capacity_share * CP_W * args.charge_points as f64).round() as i64;
    let mut order: Vec<&Arrival> = arrivals.iter().collect();
    order.sort_by_key(|a| (a.arrival_s, a.id));
    let mut occupied: Vec<Option<usize>> = vec![None; args.charge_points];
    let mut cars: Vec<Car> = Vec::new();
    let mut plan: BTreeMap<usize, f64> = BTreeMap::new();
    let (mut plans, mut solve_ms, mut over) = (0usize, 0.0, 0u64);
    let mut next_arrival = 0;
    let first = order.first().map_or(0, |a| a.arrival_s);
    let last = order.iter().map(|a| a.departure_s).max().unwrap_or(0);
    for t in first..last {
        let mut replan = t % step_s == 0;
        for (i, c) in cars.iter().enumerate() {
            if c.arrival.departure_s == t && occupied[c.cp] == Some(i) {
                occupied[c.cp] = None;
                replan = true;
            }
        }
        while next_arrival < order.len() && order[next_arrival].arrival_s == t {
            let a = order[next_arrival];
            next_arrival += 1;
            if let Some(cp) = occupied.iter().position(Option::is_none) {
                occupied[cp] = Some(cars.len());
                cars.push(Car {
                    arrival: a.clone(),
                    cp,
                    battery: Battery::of(a, args.taper_knee),
                    delivered_wh: 0.0,
                });
                replan = true;
            }
        }
        if replan {
            let started = std::time::Instant::now();
            plan = solve(&cars, &occupied, t, step_s, capacity_w, args.taper_knee);
            solve_ms += started.elapsed().as_secs_f64() * 1e3;
            plans += 1;
        }
        let mut load = 0.0;
        for (i, c) in cars.iter_mut().enumerate() {
            if occupied[c.cp] != Some(i) {
                continue;
            }
            let max_w = c.arrival.max_power_w.map_or(CP_W, |w| (w as f64).min(CP_W));
            let left_w = (c.arrival.wanted_wh as f64 - c.delivered_wh).max(0.0) * 3_600.0;
            let p = plan
                .get(&i)
                .copied()
                .unwrap_or(0.0)
                .min(c.battery.max_power_w(max_w))
                .min(left_w)
                .max(0.0);
            c.delivered_wh += p / 3_600.0;
            c.battery.energy_wh += p / 3_600.0;
            load += p;
        }
        if load > capacity_w as f64 + 1.0 {
            over += 1;
        }
    }
    let wanted: f64 = cars.iter().map(|c| c.arrival.wanted_wh as f64).sum();
    let delivered: f64 = cars.iter().map(|c| c.delivered_wh).sum();
    Ok(StepsRun {
        step_s,
        energy_wanted_kwh: (wanted / 10.0).round() / 100.0,
        energy_delivered_kwh: (delivered / 10.0).round() / 100.0,
        plans,
        mean_solve_ms: if plans > 0 {
            (solve_ms / plans as f64 * 10.0).round() / 10.0
        } else {
            0.0
        },
        seconds_over_capacity: over,
    })
}

/// The plan at second `t` of the day: each present car's power for the current step (W).
fn solve(
    cars: &[Car],
    occupied: &[Option<usize>],
    t: u32,
    step_s: u32,
    capacity_w: i64,
    knee: f64,
) -> BTreeMap<usize, f64> {
    let horizon = (86_400 / step_s) as usize;
    let step0 = t / step_s;
    // The current step is partly past: the plan's first step starts now and its power holds
    // for the rest of it, as the service's mid-step re-plans do (their energy padded instead).
    let vehicles: Vec<Vehicle> = occupied
        .iter()
        .flatten()
        .map(|i| {
            let c = &cars[*i];
            let max_w = c.arrival.max_power_w.map_or(CP_W, |w| (w as f64).min(CP_W));
            let departure =
                ((c.arrival.departure_s / step_s).saturating_sub(step0) as usize).clamp(1, horizon);
            Vehicle {
                id: format!("{i:08}"),
                arrival: 0,
                departure,
                max_power_w: max_w as i64,
                min_power_w: 0,
                energy_requested_wh: (c.arrival.wanted_wh as f64 - c.delivered_wh).max(0.0) as i64,
                battery_capacity_wh: Some(c.battery.capacity_wh.round() as i64),
                energy_on_arrival_wh: Some(c.battery.energy_wh.round() as i64),
                class: VehicleClass::BestEffort,
                efficiency_permille: 1_000,
                taper_knee_permille: Some((knee * 1_000.0).round().clamp(0.0, 999.0) as u16),
                energy_wanted_wh: None,
            }
        })
        .collect();
    if vehicles.is_empty() {
        return BTreeMap::new();
    }
    let inputs = GroupInputs {
        group_id: 1,
        start_timestep: u64::from(step0),
        time_step_s: step_s,
        horizon,
        capacity_w: vec![capacity_w; horizon],
        other_load_w: vec![0; horizon],
        pv_w: vec![0; horizon],
        price_micro_eur_per_kwh: vec![0; horizon],
        battery: None,
        vehicles,
        topology: None,
    };
    match evflex_schedule::solve(&inputs, &SolveOptions::default(), None) {
        Ok(s) => s
            .vehicle_ids
            .iter()
            .zip(&s.power_w)
            .filter_map(|(id, row)| Some((id.parse().ok()?, *row.first()? as f64)))
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "bench steps: the plan failed; nothing charges");
            BTreeMap::new()
        }
    }
}

/// The runs as a table.
pub fn table(runs: &[StepsRun]) -> String {
    let mut out = String::from(
        "step (s)  wanted kWh  delivered kWh  share   plans  mean solve ms  s over cap.\n",
    );
    for r in runs {
        out.push_str(&format!(
            "{:>8}  {:>10.1}  {:>13.1}  {:>5.1}%  {:>6}  {:>13.1}  {:>11}\n",
            r.step_s,
            r.energy_wanted_kwh,
            r.energy_delivered_kwh,
            100.0 * r.energy_delivered_kwh / r.energy_wanted_kwh.max(1e-9),
            r.plans,
            r.mean_solve_ms,
            r.seconds_over_capacity
        ));
    }
    out
}
