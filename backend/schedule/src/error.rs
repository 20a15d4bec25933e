//! The crate's error type: malformed inputs only. An infeasible group is not an error (it is
//! [`crate::SolveStatus::Shortfall`]), and a solver failure is not an error either (it yields the
//! fallback schedule).

/// Inputs the optimiser refuses, naming the offending field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `horizon` or `time_step_s` is zero.
    #[error("{field} must be positive")]
    NotPositive {
        /// The field.
        field: &'static str,
    },
    /// A per-step vector does not have `horizon` entries.
    #[error("{field} has {got} entries, expected {expected} (the horizon)")]
    Length {
        /// The field.
        field: &'static str,
        /// `horizon`.
        expected: usize,
        /// Actual length.
        got: usize,
    },
    /// A quantity that must not be negative is negative.
    #[error("{field} must not be negative (got {value})")]
    Negative {
        /// The field (with the step or vehicle id where relevant).
        field: String,
        /// The value.
        value: i64,
    },
    /// A vehicle's departure is not after its arrival.
    #[error("vehicle {id}: departure {departure} must be after arrival {arrival}")]
    Window {
        /// Vehicle id.
        id: String,
        /// Arrival step.
        arrival: usize,
        /// Departure step.
        departure: usize,
    },
    /// Two vehicles share an id.
    #[error("vehicle id {id} appears twice")]
    DuplicateId {
        /// The id.
        id: String,
    },
    /// A vehicle's minimum power exceeds its maximum.
    #[error("vehicle {id}: min_power_w {min} exceeds max_power_w {max}")]
    MinAboveMax {
        /// Vehicle id.
        id: String,
        /// Minimum power (W).
        min: i64,
        /// Maximum power (W).
        max: i64,
    },
    /// An efficiency outside 1..=1000 per mille.
    #[error("{field} must be within 1..=1000 per mille (got {value})")]
    Efficiency {
        /// The field (with the vehicle id where relevant).
        field: String,
        /// The value.
        value: u16,
    },
    /// A battery whose stored energy exceeds its capacity.
    #[error("battery energy_wh {energy} exceeds capacity_wh {capacity}")]
    BatteryState {
        /// Stored energy (Wh).
        energy: i64,
        /// Capacity (Wh).
        capacity: i64,
    },
    /// A vehicle's taper knee is not below full (1000 per mille).
    #[error("vehicle {id}: taper_knee_permille must be below 1000 (got {value})")]
    TaperKnee {
        /// Vehicle id.
        id: String,
        /// The knee (per mille).
        value: u16,
    },
    /// A tapering vehicle whose energy at the start exceeds its battery capacity (the taper
    /// curve is undefined there).
    #[error(
        "vehicle {id}: energy_on_arrival_wh {energy} exceeds battery_capacity_wh {capacity} (taper)"
    )]
    TaperState {
        /// Vehicle id.
        id: String,
        /// Energy at the start of the window (Wh).
        energy: i64,
        /// Battery capacity (Wh).
        capacity: i64,
    },
    /// A field of the neutral instance format is malformed (non-finite, out of range, …).
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// The field.
        field: String,
        /// Why.
        reason: String,
    },
}
