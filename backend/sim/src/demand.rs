//! EV arrivals: generated as the day-ahead planner of seed 002 does
//! ([`evflex_schedule::demand::generate`]), or replayed from a CSV of real sessions (the
//! ACN-Data export of `/work/shared/data`, gzip or plain).
//!
//! Times snap to the 15-minute grid as the planner does (arrival and departure floored); the
//! step simulator ([`crate::run`]) plugs a vehicle in at the start of its arrival step and
//! unplugs it at the start of its departure step. Each arrival keeps its real second too
//! (`arrival_s`, `departure_s`), which the continuous-time simulator ([`crate::live`]) plays. Nominal powers are at 230 V: a "6 kW" vehicle draws at most 6 × 11 040 / 11 W, so an
//! "11 kW" vehicle takes exactly what a 3 × 16 A charge point gives.

use super::{SimError, SimResult};
use evflex_schedule::demand::{DemandConfig, generate};
use std::io::Read;
use std::path::PathBuf;

/// Where the EVs come from.
#[derive(Debug, Clone)]
pub enum DemandSource {
    /// The planner's generator (seeded with [`super::SimConfig::seed`]).
    Generated {
        /// Generator parameters.
        config: DemandConfig,
    },
    /// A CSV of real sessions: columns `arrival`, `departure` (`YYYY-MM-DD HH:MM:SS±HH:MM`,
    /// local time), `requested_energy (kWh)` (or `kwh`), `delivered_energy (kWh)` (optional),
    /// `station_id` (or `station`). `.gz` files are decompressed.
    Csv {
        /// File.
        path: PathBuf,
        /// Local day to replay (`YYYY-MM-DD`); `None`: the day with the most sessions.
        day: Option<String>,
    },
}

/// One EV visit.
#[derive(Debug, Clone, PartialEq)]
pub struct Arrival {
    /// Index (also names the session, user and CDR).
    pub id: usize,
    /// Step of the day it plugs in.
    pub arrival_step: usize,
    /// Step of the day it unplugs (> arrival).
    pub departure_step: usize,
    /// Second of the day it plugs in (within `arrival_step`): the continuous-time simulator's
    /// arrival ([`crate::live`]).
    pub arrival_s: u32,
    /// Second of the day it unplugs (> `arrival_s`, at most 86 400): the continuous-time
    /// simulator's departure, and the departure its driver announces there.
    pub departure_s: u32,
    /// The vehicle's maximum power (W); `None`: whatever the charge point gives.
    pub max_power_w: Option<i64>,
    /// Battery (Wh), when known (for SoC).
    pub battery_wh: Option<i64>,
    /// Energy in the battery on arrival (Wh), when known.
    pub energy_on_arrival_wh: Option<i64>,
    /// Energy the vehicle takes before it stops by itself (Wh).
    pub wanted_wh: i64,
    /// Energy the driver asks evflex for (Wh).
    pub request_wh: i64,
    /// Station the data names (real sessions), to pick the same charge point again.
    pub station: Option<String>,
}

/// A "kW class" at 230 V in watts (6 → 6 022 W, 11 → 11 040 W, 22 → 22 080 W).
pub fn class_w(kw: f64) -> i64 {
    (kw * 11_040.0 / 11.0).round() as i64
}

/// Arrivals from the planner's generator.
pub fn generated(config: &DemandConfig, seed: u64) -> Vec<Arrival> {
    generate(config, seed)
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let wh = (r.energy_kwh * 1_000.0).round() as i64;
            Arrival {
                id: i,
                arrival_step: r.arrival,
                departure_step: r.departure,
                arrival_s: r.arrival_s,
                departure_s: r.departure_s.clamp(r.arrival_s + 1, 86_400),
                max_power_w: Some(class_w(r.power_kw)),
                battery_wh: Some((r.battery_kwh * 1_000.0).round() as i64),
                energy_on_arrival_wh: Some((r.soe_init_kwh * 1_000.0).round() as i64),
                wanted_wh: wh,
                request_wh: wh,
                station: None,
            }
        })
        .collect()
}

/// Reads a sessions file (gzip when it ends in `.gz`).
pub fn read_sessions_file(path: &std::path::Path) -> SimResult<String> {
    let bytes =
        std::fs::read(path).map_err(|e| SimError::Csv(format!("{}: {e}", path.display())))?;
    if path.extension().is_some_and(|e| e == "gz") {
        let mut text = String::new();
        flate2::read::GzDecoder::new(&bytes[..])
            .read_to_string(&mut text)
            .map_err(|e| SimError::Csv(format!("{}: {e}", path.display())))?;
        Ok(text)
    } else {
        String::from_utf8(bytes).map_err(|e| SimError::Csv(format!("{}: {e}", path.display())))
    }
}

/// Splits `YYYY-MM-DD HH:MM:SS±HH:MM` (or `T`) into the local day and seconds after midnight.
fn local_day_and_seconds(text: &str) -> Option<(String, u32)> {
    let text = text.trim();
    let day = text.get(..10)?.to_owned();
    let time = text.get(11..19)?;
    let mut parts = time.split(':').map(|p| p.parse::<u32>().ok());
    let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
    Some((day, h * 3_600 + m * 60 + s))
}

/// Arrivals of one local day from a sessions CSV (see [`DemandSource::Csv`]). A departure on a
/// later day is cut at midnight. Returns the day replayed too.
pub fn from_csv(text: &str, day: Option<&str>) -> SimResult<(String, Vec<Arrival>)> {
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .ok_or_else(|| SimError::Csv("empty file".to_owned()))?
        .split(',')
        .map(|h| h.trim().to_lowercase())
        .collect();
    let col = |names: &[&str]| header.iter().position(|h| names.contains(&h.as_str()));
    let need = |names: &[&str]| {
        col(names).ok_or_else(|| SimError::Csv(format!("no column {}", names.join(" or "))))
    };
    let arrival = need(&["arrival"])?;
    let departure = need(&["departure"])?;
    let requested = need(&["requested_energy (kwh)", "kwh", "energy_kwh"])?;
    let delivered = col(&["delivered_energy (kwh)"]);
    let station = need(&["station_id", "station"])?;
    struct Row {
        day: String,
        arr_s: u32,
        dep_day: String,
        dep_s: u32,
        requested_kwh: f64,
        delivered_kwh: f64,
        station: String,
    }
    let mut rows = Vec::new();
    for (n, line) in lines.enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split(',').collect();
        let bad = |what: &str| SimError::Csv(format!("line {}: bad {what}", n + 2));
        let (day, arr_s) = f
            .get(arrival)
            .and_then(|t| local_day_and_seconds(t))
            .ok_or_else(|| bad("arrival"))?;
        let (dep_day, dep_s) = f
            .get(departure)
            .and_then(|t| local_day_and_seconds(t))
            .ok_or_else(|| bad("departure"))?;
        let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<f64>().ok());
        let requested_kwh = num(requested).ok_or_else(|| bad("energy"))?;
        let delivered_kwh = delivered.and_then(num).unwrap_or(requested_kwh);
        rows.push(Row {
            day,
            arr_s,
            dep_day,
            dep_s,
            requested_kwh,
            delivered_kwh,
            station: f.get(station).map_or("", |s| s.trim()).to_owned(),
        });
    }
    let day = match day {
        Some(d) => d.to_owned(),
        None => {
            let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
            for r in &rows {
                *counts.entry(r.day.as_str()).or_default() += 1;
            }
            counts
                .iter()
                .max_by_key(|(d, n)| (**n, std::cmp::Reverse(**d)))
                .map(|(d, _)| (*d).to_owned())
                .ok_or_else(|| SimError::Csv("no sessions".to_owned()))?
        }
    };
    let arrivals: Vec<Arrival> = rows
        .iter()
        .filter(|r| r.day == day)
        .enumerate()
        .filter_map(|(i, r)| {
            let arrival_step = (r.arr_s / 900) as usize;
            let dep_s = if r.dep_day == r.day { r.dep_s } else { 86_400 };
            let departure_step = ((dep_s / 900) as usize).clamp(arrival_step + 1, 96);
            (arrival_step < 96 && r.delivered_kwh > 0.0).then(|| Arrival {
                id: i,
                arrival_step,
                departure_step,
                arrival_s: r.arr_s,
                departure_s: dep_s.max(r.arr_s + 1),
                max_power_w: None,
                battery_wh: None,
                energy_on_arrival_wh: None,
                wanted_wh: (r.delivered_kwh * 1_000.0).round() as i64,
                request_wh: (r.requested_kwh.max(r.delivered_kwh) * 1_000.0).round() as i64,
                station: Some(r.station.clone()),
            })
        })
        .collect();
    if arrivals.is_empty() {
        return Err(SimError::Csv(format!("no sessions on {day}")));
    }
    Ok((day, arrivals))
}

/// The arrivals of a source.
pub fn arrivals(source: &DemandSource, seed: u64) -> SimResult<(String, Vec<Arrival>)> {
    match source {
        DemandSource::Generated { config } => Ok((
            format!("generated (seed {seed}, {} EVs)", config.n_vehicles),
            generated(config, seed),
        )),
        DemandSource::Csv { path, day } => {
            let text = read_sessions_file(path)?;
            let (day, arrivals) = from_csv(&text, day.as_deref())?;
            Ok((format!("{} ({day})", path.display()), arrivals))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acn_rows_become_arrivals_of_one_day() {
        let csv = "arrival,departure,requested_energy (kWh),delivered_energy (kWh),station_id,session_id,estimated_departure,claimed\n\
            2019-05-01 06:33:14-07:00,2019-05-01 11:50:55-07:00,21.84,17.666,CA-314,x,y,True\n\
            2019-05-01 23:50:00-07:00,2019-05-02 08:00:00-07:00,10,5,CA-315,x,y,True\n\
            2019-05-02 07:00:00-07:00,2019-05-02 09:00:00-07:00,10,5,CA-316,x,y,False\n";
        let (day, a) = from_csv(csv, None).unwrap();
        assert_eq!(day, "2019-05-01");
        assert_eq!(a.len(), 2);
        assert_eq!((a[0].arrival_step, a[0].departure_step), (26, 47));
        assert_eq!((a[0].wanted_wh, a[0].request_wh), (17_666, 21_840));
        assert_eq!((a[1].arrival_step, a[1].departure_step), (95, 96));
        assert_eq!(a[0].station.as_deref(), Some("CA-314"));
        assert!(from_csv(csv, Some("2019-06-01")).is_err());
    }

    #[test]
    fn the_real_acn_file_reads_when_present() {
        let path =
            std::path::Path::new("/work/shared/data/acn-caltech-2019-05-01_2019-08-31.csv.gz");
        if !path.exists() {
            return;
        }
        let (day, a) = from_csv(&read_sessions_file(path).unwrap(), None).unwrap();
        assert_eq!(day, "2019-06-14");
        assert_eq!(a.len(), 49);
    }

    #[test]
    fn generated_arrivals_follow_the_planner() {
        let a = generated(&DemandConfig::new(50), 3);
        assert_eq!(a.len(), 50);
        assert!(
            a.iter()
                .all(|x| x.arrival_step >= 20 && x.departure_step > x.arrival_step)
        );
        assert_eq!(class_w(11.0), 11_040);
        assert_eq!(class_w(22.0), 22_080);
    }
}
