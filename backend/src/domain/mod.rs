//! Plain domain types: units (W, Wh, micro-EUR), identifiers and time helpers.
//!
//! Values are parsed into newtypes at the edges (ingest, api) so the rest of the service never
//! handles a bare number whose unit it would have to guess. Integers everywhere; floats only at
//! the parse boundary (OCPI sends kWh as decimals) and inside the optimiser.

pub mod bounds;
mod clock;
mod ids;
mod time;
mod units;

pub use clock::{Clock, SimClock, WallClock};
pub use ids::{EvseUid, PartyKey};
pub use time::{TIME_STEP_S, format_rfc3339, parse_rfc3339, step_start, timestep_of, unix_now};
pub use units::{MicroEur, WattHours, Watts, kwh_to_wh, wh_to_kwh};
