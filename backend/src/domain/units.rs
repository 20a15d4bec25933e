//! Physical and monetary units as integer newtypes.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Power in whole watts (may be negative for export).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Watts(pub i64);

/// Energy in whole watt-hours.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct WattHours(pub i64);

/// Money in micro-euros (1 EUR = 1 000 000 µEUR), the unit used in the database and on chain.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct MicroEur(pub i64);

impl Watts {
    /// Power from kilowatts given as a decimal (rounded to the nearest watt).
    pub fn from_kw(kw: f64) -> Option<Self> {
        finite_scaled(kw, 1_000.0).map(Self)
    }

    /// Power from volts × amperes × phases (OCPI connector data).
    pub fn from_electrical(voltage_v: i64, current_a: i64, phases: i64) -> Self {
        Self(voltage_v.saturating_mul(current_a).saturating_mul(phases))
    }

    /// Energy delivered at this power over `seconds`.
    pub fn over_seconds(self, seconds: i64) -> WattHours {
        WattHours(((self.0 as i128 * seconds as i128) / 3_600) as i64)
    }
}

impl WattHours {
    /// Energy from kilowatt-hours given as a decimal (rounded to the nearest Wh).
    pub fn from_kwh(kwh: f64) -> Option<Self> {
        kwh_to_wh(kwh).map(Self)
    }

    /// The value in kWh (for display only).
    pub fn as_kwh(self) -> f64 {
        wh_to_kwh(self.0)
    }
}

impl MicroEur {
    /// Amount from euros given as a decimal (rounded to the nearest micro-euro).
    pub fn from_eur(eur: f64) -> Option<Self> {
        finite_scaled(eur, 1_000_000.0).map(Self)
    }

    /// Price per kWh from a price per MWh in EUR (day-ahead market data).
    pub fn per_kwh_from_eur_per_mwh(eur_per_mwh: f64) -> Option<Self> {
        finite_scaled(eur_per_mwh, 1_000.0).map(Self)
    }
}

/// kWh (decimal) to whole Wh, `None` for non-finite or absurd values.
pub fn kwh_to_wh(kwh: f64) -> Option<i64> {
    finite_scaled(kwh, 1_000.0)
}

/// Whole Wh to kWh for display.
pub fn wh_to_kwh(wh: i64) -> f64 {
    wh as f64 / 1_000.0
}

fn finite_scaled(value: f64, scale: f64) -> Option<i64> {
    let scaled = (value * scale).round();
    (scaled.is_finite() && scaled.abs() < 9.0e15).then_some(scaled as i64)
}

impl fmt::Display for Watts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} W", self.0)
    }
}

impl fmt::Display for WattHours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} Wh", self.0)
    }
}

impl fmt::Display for MicroEur {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} µEUR", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kwh_round_trips_to_whole_watt_hours() {
        assert_eq!(WattHours::from_kwh(15.342), Some(WattHours(15_342)));
        assert_eq!(WattHours::from_kwh(0.0004), Some(WattHours(0)));
        assert_eq!(WattHours::from_kwh(f64::NAN), None);
        assert_eq!(WattHours::from_kwh(f64::INFINITY), None);
        assert_eq!(WattHours(41_120).as_kwh(), 41.12);
    }

    #[test]
    fn euro_amounts_become_micro_euros() {
        assert_eq!(MicroEur::from_eur(4.40), Some(MicroEur(4_400_000)));
        assert_eq!(MicroEur::from_eur(-0.000_001), Some(MicroEur(-1)));
        assert_eq!(
            MicroEur::per_kwh_from_eur_per_mwh(64.98),
            Some(MicroEur(64_980))
        );
        assert_eq!(
            MicroEur::per_kwh_from_eur_per_mwh(-1.5),
            Some(MicroEur(-1_500))
        );
    }

    #[test]
    fn power_from_connector_ratings() {
        assert_eq!(Watts::from_electrical(230, 16, 3), Watts(11_040));
        assert_eq!(Watts::from_electrical(230, 8, 1), Watts(1_840));
        assert_eq!(Watts::from_kw(7.4), Some(Watts(7_400)));
    }

    #[test]
    fn power_over_time_is_energy() {
        assert_eq!(Watts(11_000).over_seconds(900), WattHours(2_750));
        assert_eq!(Watts(-4_000).over_seconds(3_600), WattHours(-4_000));
    }
}
