//! What real equipment can produce: the bounds on every physical value, amount, time and id
//! evflex accepts from a CPO. A value outside them is a 400 that names the field, and nothing
//! is stored; inside them, every product evflex computes (energy × price, power × time, sums
//! over a group and a day) fits an `i64` with room to spare, so arithmetic downstream cannot
//! wrap.
//!
//! The limits are generous on purpose: they reject what no meter, charger or tariff produces
//! (a 9 × 10¹² kWh session, a connector of `i64::MAX` amperes, a reading of 10³⁰⁸ W), not rare
//! but real installations.

use std::ops::RangeInclusive;

/// Power of one charge point, a reading, a PV inverter or a battery (W): up to 5 MW (the
/// Megawatt Charging System tops out at 3.75 MW).
pub const POWER_W: RangeInclusive<i64> = 0..=5_000_000;
/// Capacity or load of a whole group (W): up to 1 GW (a large substation).
pub const GROUP_POWER_W: RangeInclusive<i64> = 0..=1_000_000_000;
/// Connector voltage (V): up to 1 500 V DC.
pub const VOLTAGE_V: RangeInclusive<i64> = 0..=1_500;
/// Connector current per phase (A): up to 3 000 A (MCS).
pub const CURRENT_A: RangeInclusive<i64> = 0..=3_000;
/// Energy of one session or CDR (Wh): up to 10 MWh (a week at a megawatt charger).
pub const SESSION_ENERGY_WH: RangeInclusive<i64> = 0..=10_000_000;
/// A meter's energy register (Wh): up to 1 TWh over its life.
pub const METER_REGISTER_WH: RangeInclusive<i64> = 0..=1_000_000_000_000;
/// Energy stored in one battery (Wh): up to 1 GWh.
pub const BATTERY_ENERGY_WH: RangeInclusive<i64> = 0..=1_000_000_000;
/// An amount of money for one session or CDR (micro-EUR): up to 100 000 EUR.
pub const AMOUNT_MICRO_EUR: RangeInclusive<i64> = 0..=100_000_000_000;
/// A session's or CDR's duration (s): up to 31 days.
pub const DURATION_S: RangeInclusive<i64> = 0..=31 * 24 * 3_600;
/// Instants (Unix s): 2000-01-01T00:00:00Z to 2100-01-01T00:00:00Z.
pub const INSTANT_S: RangeInclusive<i64> = 946_684_800..=4_102_444_800;
/// Step of a forecast series (s): one minute to one day.
pub const SERIES_STEP_S: RangeInclusive<i64> = 60..=86_400;
/// Longest OCPI id (`CiString(36)`: location, EVSE, connector, session and CDR ids).
pub const ID_MAX_LEN: usize = 36;
/// Longest OCPI token uid (`CiString(36)` too).
pub const TOKEN_UID_MAX_LEN: usize = 36;

/// `value` if it is within `range`; otherwise the message naming `field`, the value and the
/// range in `unit`.
pub fn within(
    field: &str,
    value: i64,
    range: &RangeInclusive<i64>,
    unit: &str,
) -> Result<i64, String> {
    if range.contains(&value) {
        Ok(value)
    } else {
        Err(format!(
            "{field}: {value} {unit} is outside {}..={} {unit}",
            range.start(),
            range.end()
        ))
    }
}

/// A decimal scaled to a whole number (`value × scale`, rounded) within `range`; non-finite
/// values and values outside the range are refused before any cast, so nothing saturates.
pub fn scaled_within(
    field: &str,
    value: f64,
    scale: f64,
    range: &RangeInclusive<i64>,
    unit: &str,
) -> Result<i64, String> {
    let scaled = (value * scale).round();
    if !scaled.is_finite() || scaled < *range.start() as f64 || scaled > *range.end() as f64 {
        return Err(format!(
            "{field}: {value} is outside {}..={} {unit}",
            *range.start() as f64 / scale,
            *range.end() as f64 / scale
        ));
    }
    Ok(scaled as i64)
}

/// `ts` if it is a plausible instant ([`INSTANT_S`]).
pub fn instant(field: &str, ts: i64) -> Result<i64, String> {
    if INSTANT_S.contains(&ts) {
        Ok(ts)
    } else {
        Err(format!(
            "{field}: must be between 2000-01-01 and 2100-01-01"
        ))
    }
}

/// A span `start..end` with `end` not before `start`, no longer than [`DURATION_S`].
pub fn span(field: &str, start: i64, end: i64) -> Result<(), String> {
    if end < start {
        return Err(format!("{field}: ends before it starts"));
    }
    within(field, end - start, &DURATION_S, "s").map(|_| ())
}

/// An OCPI id: 1 to `max_len` printable ASCII characters (no control characters, no
/// whitespace-only id, nothing outside ASCII: OCPI's `CiString`).
pub fn id(field: &str, value: &str, max_len: usize) -> Result<(), String> {
    if value.trim().is_empty() {
        return Err(format!("{field}: must not be empty"));
    }
    if value.len() > max_len {
        return Err(format!(
            "{field}: {} characters, at most {max_len} allowed",
            value.chars().count()
        ));
    }
    if let Some(c) = value.chars().find(|c| !(' '..='~').contains(c)) {
        return Err(format!(
            "{field}: {:?} is not allowed (printable ASCII only)",
            c
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_outside_their_bounds_name_the_field() {
        assert_eq!(within("p", 7_400, &POWER_W, "W"), Ok(7_400));
        assert_eq!(
            within("p", -1, &POWER_W, "W"),
            Err("p: -1 W is outside 0..=5000000 W".into())
        );
        assert!(scaled_within("kwh", 1e308, 1_000.0, &SESSION_ENERGY_WH, "kWh").is_err());
        assert!(scaled_within("kwh", f64::NAN, 1_000.0, &SESSION_ENERGY_WH, "kWh").is_err());
        assert!(scaled_within("kwh", -0.5, 1_000.0, &SESSION_ENERGY_WH, "kWh").is_err());
        assert_eq!(
            scaled_within("kwh", 12.5, 1_000.0, &SESSION_ENERGY_WH, "kWh"),
            Ok(12_500)
        );
        assert!(
            span("t", 100, 99)
                .unwrap_err()
                .contains("ends before it starts")
        );
        assert!(instant("t", i64::MAX).is_err());
    }

    #[test]
    fn ids_are_short_printable_ascii() {
        assert!(id("id", "LOC-1", ID_MAX_LEN).is_ok());
        for bad in ["", "   ", "a\0b", "caf\u{e9}", "\u{202e}evil", "\u{1f600}"] {
            assert!(id("id", bad, ID_MAX_LEN).is_err(), "{bad:?}");
        }
        assert!(
            id("id", &"x".repeat(4_000), ID_MAX_LEN)
                .unwrap_err()
                .contains("4000")
        );
    }

    #[test]
    fn the_largest_accepted_values_multiply_without_overflow() {
        // energy × price per kWh (micro-EUR) and power × the longest span.
        let bill = (*SESSION_ENERGY_WH.end() as i128) * (*AMOUNT_MICRO_EUR.end() as i128) / 1_000;
        assert!(bill < i64::MAX as i128);
        let ws = (*GROUP_POWER_W.end() as i128) * (*DURATION_S.end() as i128);
        assert!(ws < i64::MAX as i128);
    }
}
