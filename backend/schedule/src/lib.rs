//! evflex's smart-charging optimiser.
//!
//! A pure library: inputs in, schedule out. No database, no chain, no clock, no I/O, so it can
//! be tested, benchmarked and re-run by a verifier on its own. Cargo enforces this: the crate
//! depends on neither sqlx, alloy nor tokio.
//!
//! Entry points (the contract the backend builds on):
//! - [`solve`]: one group's rolling-horizon schedule (LP or MILP on HiGHS).
//! - [`admit`]: admission control for a new request (never beyond what the vehicle itself can
//!   take by its departure).
//! - [`check`]: independent verification of a schedule against its inputs.
//! - [`hash`]: canonical encoding and keccak-256 hashes of inputs, schedules and the algorithm.
//! - [`profile`]: OCPI 2.2.1 `ChargingProfile` and OCPP 1.6 `TxProfile` output (in W, or in A
//!   for charge points that take amps: [`profile::ocpi_profile_for`]).
//! - [`Topology`] (optional in [`GroupInputs`]): the site's tree of limits per phase, phase
//!   rotation and whole-amp charge points; [`set_points`] and [`node_loads`] read a schedule
//!   back in each charge point's unit and as the load of every node and phase.
//! - [`taper_max_power_w`]: the battery taper curve the plan respects
//!   ([`Vehicle::taper_knee_permille`]), for a simulator's battery model.
//! - [`demand`], [`neutral`], [`bench`]: synthetic demand, the neutral JSON instance format of
//!   `evflex plan`, and `evflex bench schedule`.

//!
//! Priorities, lexicographic: 1) accepted (guaranteed) energy, 2) uncontrolled charging as early
//! and fast as possible (vehicles that did not opt in, curtailed only where a guarantee needs
//! their share), 3) best-effort energy, 4) cost.
//!
//! Design decisions (formulation, priorities, tolerances, fallback) are in `DESIGN.md` beside
//! this crate.

mod admit;
mod amps;
pub mod bench;
mod check;
pub mod demand;
mod error;
pub mod hash;
mod lp;
mod model;
pub mod neutral;
mod prep;
pub mod profile;
mod reserve;
mod solve;
mod taper;
mod topology;

pub use admit::admit;
pub use check::{CheckReport, Violation, check};
pub use error::ScheduleError;
pub use model::*;
pub use solve::{ENERGY_TOLERANCE_WH, baseline, solve};
pub use taper::taper_max_power_w;
pub use topology::{
    ChargePoint, Node, NodeLoad, Phase, RateUnit, SetPoints, Topology, Wiring, node_loads,
    set_points,
};
