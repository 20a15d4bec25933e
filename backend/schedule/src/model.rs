//! The optimiser's inputs and outputs: plain data, integers for every physical quantity
//! (W, Wh, micro-EUR, steps), floats only for solver-internal figures (duals, gap, timings).

use serde::{Deserialize, Serialize};

/// One charging group's state at the start of a solve: everything the optimiser needs, nothing
/// it would have to fetch. Step 0 is the step that starts now; `start_timestep` anchors it in
/// absolute time (Unix seconds / `time_step_s`) so hashes name the real quarter hour.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroupInputs {
    /// The group's identifier (the cabinet or transformer its charge points share).
    pub group_id: u64,
    /// Absolute index of step 0 (Unix seconds / `time_step_s`).
    pub start_timestep: u64,
    /// Length of one step in seconds (900 for 15 minutes).
    pub time_step_s: u32,
    /// Number of steps in the horizon (96 for 24 h of 15-minute steps).
    pub horizon: usize,
    /// Grid connection capacity of the group per step (W); length `horizon`.
    pub capacity_w: Vec<i64>,
    /// Forecast of non-EV load on the same connection per step (W); length `horizon`.
    pub other_load_w: Vec<i64>,
    /// Forecast of PV production behind the connection per step (W); length `horizon`.
    pub pv_w: Vec<i64>,
    /// Energy price per step (micro-EUR per kWh, may be negative); length `horizon`.
    pub price_micro_eur_per_kwh: Vec<i64>,
    /// A stationary battery behind the connection, if any.
    pub battery: Option<Battery>,
    /// The vehicles plugged in now or expected within the horizon.
    pub vehicles: Vec<Vehicle>,
    /// The site's tree of limits (per-phase fuses, transformers, cabinets) and each vehicle's
    /// charge point; `None`: the group is one number (`capacity_w`), as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topology: Option<crate::Topology>,
}

/// A stationary battery that can shift energy within the group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Battery {
    /// Usable capacity (Wh).
    pub capacity_wh: i64,
    /// Energy stored at the start of step 0 (Wh).
    pub energy_wh: i64,
    /// Maximum charging power (W).
    pub max_charge_w: i64,
    /// Maximum discharging power (W).
    pub max_discharge_w: i64,
    /// Round-trip efficiency in per mille (e.g. 900 = 90 %), applied on charging.
    pub efficiency_permille: u16,
}

/// How a vehicle is treated: the one name of this concept in evflex (`DESIGN.md`, glossary).
/// The priorities are lexicographic, in this order (`Ord` follows it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VehicleClass {
    /// Opted in with an accepted request: its energy is guaranteed by departure, ahead of
    /// uncontrolled charging (uncontrolled vehicles are curtailed where it needs their share).
    Guaranteed,
    /// Opted in, no accepted request: charged as well as the guarantees leave room for.
    BestEffort,
    /// Not opted in: charges as fast as possible from plug-in, first come first served, in the
    /// headroom that the guaranteed vehicles do not need.
    Uncontrolled,
}

impl VehicleClass {
    /// The class of a vehicle whose user has (`opted_in`) or has not opted into smart charging
    /// and whose request was (`accepted`) or was not accepted by admission control.
    pub fn from_flags(opted_in: bool, accepted: bool) -> Self {
        match (opted_in, accepted) {
            (false, _) => Self::Uncontrolled,
            (true, true) => Self::Guaranteed,
            (true, false) => Self::BestEffort,
        }
    }

    /// The user opted into smart charging (the class is not [`VehicleClass::Uncontrolled`]).
    pub fn opted_in(self) -> bool {
        self != Self::Uncontrolled
    }

    /// The request passed admission control (the class is [`VehicleClass::Guaranteed`]).
    pub fn accepted(self) -> bool {
        self == Self::Guaranteed
    }
}

/// One vehicle's charging need as the optimiser sees it.
///
/// Its JSON (stored schedule inputs, the public audit API) spells the class as the two flags
/// `opted_in` and `accepted`, as the canonical hash does ([`crate::hash`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "VehicleJson", into = "VehicleJson")]
pub struct Vehicle {
    /// Stable identifier (the session id); vehicles are ordered by it for determinism.
    pub id: String,
    /// First step in which it may charge (0 when already plugged in).
    pub arrival: usize,
    /// First step in which it is gone: it may charge in `arrival..departure`.
    pub departure: usize,
    /// Maximum power (W): the minimum of the vehicle's and the charge point's limits.
    pub max_power_w: i64,
    /// Minimum power when charging at all (W), honoured in MILP mode (e.g. 6 A × 230 V × phases).
    pub min_power_w: i64,
    /// Energy still requested (Wh), measured into the battery.
    pub energy_requested_wh: i64,
    /// Battery capacity (Wh), where known.
    pub battery_capacity_wh: Option<i64>,
    /// Energy in the battery (Wh) at the start of the vehicle's window in this plan, i.e. at
    /// step `arrival` (step 0 for a vehicle already plugged in: its energy now, not at plug-in),
    /// where known. With `battery_capacity_wh` it caps the request at `capacity − energy`.
    pub energy_on_arrival_wh: Option<i64>,
    /// How the optimiser treats it (guaranteed, best effort or uncontrolled).
    pub class: VehicleClass,
    /// Charging efficiency in per mille (grid → battery), e.g. 1000 or 920.
    pub efficiency_permille: u16,
    /// The battery's taper knee: the state of charge (‰ of `battery_capacity_wh`) above which the
    /// vehicle's maximum power falls linearly from `max_power_w` to 0 at full, where known.
    ///
    /// It applies only when `battery_capacity_wh` and `energy_on_arrival_wh` are known too (a
    /// knee of 1000 or more, or energy above the capacity, is malformed). Then, with `B` the
    /// capacity, `E0` the energy at `arrival`, `k = knee / 1000`, `P = max_power_w`, `η` the
    /// efficiency and `Δ` the step in hours, the power `p_t` of every step `t` of the window is
    /// bounded by the curve at the energy the battery holds at the **end** of the step, which is
    /// linear in the powers (the LP stays an LP) and conservative:
    /// `p_t ≤ P · (B − E_t) / (B (1 − k))`, `E_t = E0 + η Δ Σ_{s = arrival..=t} p_s`
    /// ([`crate::taper_max_power_w`] is the curve). `None`: no taper (power up to `max_power_w`
    /// until the request, capped at `B − E0`, is delivered), and the JSON and canonical inputs
    /// are those of a vehicle without the field.
    pub taper_knee_permille: Option<u16>,
    /// All the energy still wanted (Wh, measured like `energy_requested_wh`) when the driver
    /// wants more than is guaranteed: an accepted offer below what was asked. The optimiser
    /// guarantees `energy_requested_wh` and delivers the rest as best effort, when the
    /// guarantees leave room (capped, like the request, at what the battery can take). `None`,
    /// or a value not above `energy_requested_wh`: the request is all it wants, and the JSON and
    /// canonical inputs are those of a vehicle without the field.
    pub energy_wanted_wh: Option<i64>,
}

/// The JSON form of [`Vehicle`]: the class as the flags `opted_in` and `accepted`.
#[derive(Serialize, Deserialize)]
struct VehicleJson {
    id: String,
    arrival: usize,
    departure: usize,
    max_power_w: i64,
    min_power_w: i64,
    energy_requested_wh: i64,
    battery_capacity_wh: Option<i64>,
    energy_on_arrival_wh: Option<i64>,
    opted_in: bool,
    accepted: bool,
    efficiency_permille: u16,
    /// Only when known, so the JSON of a vehicle without a knee stays as it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    taper_knee_permille: Option<u16>,
    /// Only when given, as the knee.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    energy_wanted_wh: Option<i64>,
}

impl From<VehicleJson> for Vehicle {
    fn from(v: VehicleJson) -> Self {
        Self {
            id: v.id,
            arrival: v.arrival,
            departure: v.departure,
            max_power_w: v.max_power_w,
            min_power_w: v.min_power_w,
            energy_requested_wh: v.energy_requested_wh,
            battery_capacity_wh: v.battery_capacity_wh,
            energy_on_arrival_wh: v.energy_on_arrival_wh,
            class: VehicleClass::from_flags(v.opted_in, v.accepted),
            efficiency_permille: v.efficiency_permille,
            taper_knee_permille: v.taper_knee_permille,
            energy_wanted_wh: v.energy_wanted_wh,
        }
    }
}

impl From<Vehicle> for VehicleJson {
    fn from(v: Vehicle) -> Self {
        Self {
            id: v.id,
            arrival: v.arrival,
            departure: v.departure,
            max_power_w: v.max_power_w,
            min_power_w: v.min_power_w,
            energy_requested_wh: v.energy_requested_wh,
            battery_capacity_wh: v.battery_capacity_wh,
            energy_on_arrival_wh: v.energy_on_arrival_wh,
            opted_in: v.class.opted_in(),
            accepted: v.class.accepted(),
            efficiency_permille: v.efficiency_permille,
            taper_knee_permille: v.taper_knee_permille,
            energy_wanted_wh: v.energy_wanted_wh,
        }
    }
}

/// LP (continuous power) or MILP (each charge point draws 0 or at least its minimum).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Linear programme: power anywhere between 0 and the maximum.
    #[default]
    Lp,
    /// Mixed-integer: power 0 or between the minimum and the maximum.
    Milp,
}

/// How to solve: mode, limits and the weights of the secondary objective terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SolveOptions {
    /// LP or MILP.
    pub mode: Mode,
    /// Hard wall-clock limit for one solve, in milliseconds; past it the fallback is used. HiGHS
    /// gets what remains after building the model as its own `time_limit`.
    pub time_limit_ms: u64,
    /// Relative MIP gap at which a MILP solve may stop.
    pub mip_gap: f64,
    /// Weight of the group peak (EUR per kW of peak grid import): a demand charge. 0 by
    /// default: peak shaving is an explicit objective with a real price, not a tie-breaker
    /// that holds charging back (issue 15: inside a flat-price block it flattened the load and
    /// left cars little in the first half of their stay, so tapering batteries could not take
    /// the energy later). Where prices tie, energy goes as early as the limits allow.
    pub peak_weight_eur_per_kw: f64,
    /// Weight of the preference for earlier delivery (EUR per kWh per step of delay).
    pub early_weight_eur_per_kwh_step: f64,
}

impl Default for SolveOptions {
    fn default() -> Self {
        Self {
            mode: Mode::Lp,
            time_limit_ms: 5_000,
            mip_gap: 1e-3,
            peak_weight_eur_per_kw: 0.0,
            early_weight_eur_per_kwh_step: 1e-6,
        }
    }
}

/// How a schedule came about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SolveStatus {
    /// Solved to optimality (MILP: within the MIP gap); every accepted request met.
    Optimal,
    /// Solved, but some accepted requests cannot be met: see `unmet_wh`.
    Shortfall,
    /// The solver hit the time limit with a feasible incumbent (MILP), reported with its gap.
    TimeLimit,
    /// The solver missed its deadline or failed: the documented fallback schedule was used.
    Fallback,
}

/// The optimiser's answer for one group.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Schedule {
    /// Mode the schedule was solved in.
    pub mode: Mode,
    /// Outcome.
    pub status: SolveStatus,
    /// Relative MIP gap reached (0 for LP).
    pub mip_gap: f64,
    /// Vehicle ids in the row order of `power_w` (sorted).
    pub vehicle_ids: Vec<String>,
    /// Power per vehicle per step, whole watts; `power_w[v][t]`.
    pub power_w: Vec<Vec<i64>>,
    /// Battery power per step (W, positive = charging), all zero without a battery.
    pub battery_w: Vec<i64>,
    /// Energy delivered into each vehicle's battery over the horizon (Wh).
    pub delivered_wh: Vec<i64>,
    /// Energy that will be missing at departure (Wh): what must still be delivered within the
    /// horizon to meet the request (clamped to the battery) minus what is delivered. For accepted
    /// requests at most [`crate::ENERGY_TOLERANCE_WH`] unless the status is `Shortfall` or
    /// `Fallback`; best-effort and uncontrolled vehicles may show any value.
    pub unmet_wh: Vec<i64>,
    /// Grid import per step (W).
    pub grid_import_w: Vec<i64>,
    /// Highest grid import over the horizon (W).
    pub peak_w: i64,
    /// Energy cost of the grid import at the price signal (micro-EUR).
    pub cost_micro_eur: i64,
    /// Objective (EUR, including the secondary terms), evaluated on the whole-watt schedule with
    /// the model's formula (so [`crate::check`] can recompute it exactly).
    pub objective: f64,
    /// Shadow price of the group capacity per step: the decrease of the objective (EUR) per
    /// extra kW of capacity in that step, ≥ 0 (0 in MILP mode and in the fallback).
    pub capacity_dual: Vec<f64>,
    /// Whether the capacity was binding in each step (grid import within 1 W of it).
    pub capacity_binding: Vec<bool>,
    /// Flexibility each vehicle gave, in `vehicle_ids` order.
    pub flexibility: Vec<Flexibility>,
    /// Time spent building the model (ms).
    pub build_ms: f64,
    /// Time spent in the solver (ms).
    pub solve_ms: f64,
    /// Why the fallback was used, when it was.
    pub fallback_reason: Option<String>,
}

/// Energy a vehicle let the optimiser move away from its uncontrolled profile, and its value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flexibility {
    /// Vehicle id.
    pub vehicle_id: String,
    /// Energy moved away from the uncontrolled profile (Wh): Σ max(0, baseline − planned)·Δt.
    pub shifted_wh: i64,
    /// Cost of the uncontrolled profile minus cost of the plan at the price signal (micro-EUR).
    pub value_micro_eur: i64,
}

/// The answer of admission control for one new request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Admission {
    /// The group stays feasible with the request as a hard constraint.
    Accepted,
    /// The request cannot be guaranteed.
    Rejected {
        /// The largest energy (Wh) that can be guaranteed by the requested departure.
        max_guaranteed_wh: i64,
        /// The earliest departure step (within the horizon) at which the full request could be
        /// guaranteed, if any.
        earliest_full_departure: Option<usize>,
    },
}
