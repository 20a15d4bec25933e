//! Time: Unix seconds everywhere inside evflex; RFC 3339 only at the edges (OCPI DateTime).

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Length of one scheduling step (15 minutes).
pub const TIME_STEP_S: u32 = 900;

/// Wall-clock now as Unix seconds.
pub fn unix_now() -> i64 {
    OffsetDateTime::now_utc().unix_timestamp()
}

/// The absolute step index containing `unix_s` (Unix seconds / step length).
pub fn timestep_of(unix_s: i64, time_step_s: u32) -> u64 {
    (unix_s.max(0) as u64) / u64::from(time_step_s)
}

/// Unix seconds at which absolute step `timestep` starts.
pub fn step_start(timestep: u64, time_step_s: u32) -> i64 {
    (timestep * u64::from(time_step_s)) as i64
}

/// Parses an OCPI DateTime (RFC 3339; a missing offset means UTC, as OCPI 2.2.1 specifies).
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    if let Ok(t) = OffsetDateTime::parse(text, &Rfc3339) {
        return Some(t.unix_timestamp());
    }
    OffsetDateTime::parse(&format!("{text}Z"), &Rfc3339)
        .ok()
        .map(OffsetDateTime::unix_timestamp)
}

/// Formats Unix seconds as an RFC 3339 UTC timestamp (`2019-06-24T12:39:09Z`).
pub fn format_rfc3339(unix_s: i64) -> String {
    OffsetDateTime::from_unix_timestamp(unix_s)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_ocpi_datetimes_with_and_without_zone() {
        assert_eq!(parse_rfc3339("2015-06-29T20:39:09Z"), Some(1_435_610_349));
        assert_eq!(parse_rfc3339("2015-06-29T20:39:09"), Some(1_435_610_349));
        assert_eq!(
            parse_rfc3339("2015-06-29T22:39:09+02:00"),
            Some(1_435_610_349)
        );
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn formats_utc() {
        assert_eq!(format_rfc3339(1_435_610_349), "2015-06-29T20:39:09Z");
    }

    #[test]
    fn quarter_hours() {
        assert_eq!(timestep_of(1_435_610_349, TIME_STEP_S), 1_595_122);
        assert_eq!(step_start(1_595_122, TIME_STEP_S), 1_435_609_800);
        assert_eq!(timestep_of(step_start(7, 900), 900), 7);
        assert_eq!(timestep_of(step_start(7, 900) - 1, 900), 6);
    }
}
