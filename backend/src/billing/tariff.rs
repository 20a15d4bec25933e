//! Prices a charging session with an OCPI 2.2.1 Tariff: the second of billing's price sources
//! (used when the CDR has no `total_cost`).
//!
//! # What is priced, and how
//!
//! A session is a list of [`UsagePeriod`]s (charging or parking, with the energy drawn in each;
//! [`usage_from_cdr`] builds it from a CDR's charging periods or, without them, from its
//! totals). It is cut into slices at every minute and at every instant where a restriction can
//! change (a duration limit, an energy threshold); in each slice, for each dimension, the
//! **first** element (in the tariff's order) that has a price component of that dimension and
//! whose restrictions all match is the active one (mod_tariffs, "Tariff object"):
//!
//! - `ENERGY`: the slice's energy × price per kWh;
//! - `TIME`: time charging × price per hour; `PARKING_TIME`: time not charging × price per hour;
//! - `FLAT`: once per session, the first `FLAT` component that is active.
//!
//! `step_size` is applied once per session (mod_cdrs, "step_size"): the total energy is rounded
//! up to the step of the last active `ENERGY` component and the difference billed at its price;
//! the total parking time likewise with the last `PARKING_TIME` component, or, without parking,
//! the total charging time with the last `TIME` component. VAT is per component (absent means
//! none). `min_price`/`max_price` bound the totals, excl. and incl. VAT separately (a bound
//! without `incl_vat` bounds the incl.-VAT total at the excl. bound times the session's VAT
//! ratio). Restrictions: time of day, date and day of week in the location's local time
//! ([`Zone`], IANA name from the Location's `time_zone`), `min/max_kwh` (energy so far),
//! `min/max_duration` (time since the session's start), `min/max_power` (the period's average
//! power). Elements with a `reservation` restriction price reservations, never a session, and
//! elements restricted by current never match: no CDR field evflex keeps carries the current.
//! A tariff outside its `start_date_time`/`end_date_time` at the session's start is not used.
//! Arithmetic is exact integers (i128) until the final rounding to micro-units.
//!
//! # Why not the `ocpi-tariffs` crate
//!
//! It is the reference implementation, but: from 0.50 on it needs Rust 1.96 (we build with
//! 1.95); 0.45, the newest without a `rust-version`, pins `rust_decimal =1.39.0` with its
//! `serde-with-arbitrary-precision` feature, which switches on `serde_json/arbitrary_precision`
//! for the whole workspace (features unify) and so changes how every `serde_json::Value` in
//! evflex holds numbers; it also adds `chrono-tz` (a compiled time-zone database) to the cold
//! build; and its API prices a whole OCPI CDR document (parse, guess the version, price against
//! the CDR's own or a given tariff JSON), while the path here exists precisely for CDRs that
//! came without a price and is fed from evflex's stored facts. It was judged on its manifest
//! and API, not built. This module implements the subset billing needs, with the spec's
//! worked examples as tests.

use crate::ingest::ocpi::model::{
    CdrDimensionType, ChargingPeriod, DayOfWeek, Tariff, TariffDimensionType, TariffRestrictions,
};
use crate::ingest::ocpi::tariffs::{parse_date, parse_time_of_day};

/// One stretch of a session: charging (drawing `energy_wh` evenly over it) or parking.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsagePeriod {
    /// Start (Unix s).
    pub start: i64,
    /// Length (s).
    pub duration_s: i64,
    /// Energy drawn in it (Wh).
    pub energy_wh: i64,
    /// Charging (`true`) or parking, i.e. connected but not charging (`false`).
    pub charging: bool,
}

/// A session's price under a tariff (micro-units of the tariff's currency).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TariffCost {
    /// Excluding VAT.
    pub excl_vat_micro: i64,
    /// Including VAT (what a driver pays).
    pub incl_vat_micro: i64,
}

/// The local time zone of a location, for time-of-day, date and weekday restrictions.
#[derive(Debug, Clone)]
pub struct Zone(jiff::tz::TimeZone);

/// A local instant as restrictions read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Local {
    minute_of_day: u32,
    /// 0 = Monday … 6 = Sunday.
    weekday: u8,
    date: (i32, u8, u8),
}

impl Zone {
    /// UTC.
    pub fn utc() -> Self {
        Self(jiff::tz::TimeZone::UTC)
    }

    /// The IANA zone `name` (e.g. `Europe/Amsterdam`) from the system's zoneinfo; `None` when
    /// unknown.
    pub fn named(name: &str) -> Option<Self> {
        jiff::tz::TimeZone::get(name).ok().map(Self)
    }

    fn local(&self, unix_s: i64) -> Local {
        let offset = jiff::Timestamp::from_second(unix_s)
            .map(|t| i64::from(self.0.to_offset(t).seconds()))
            .unwrap_or(0);
        let t = time::OffsetDateTime::from_unix_timestamp(unix_s + offset)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
        Local {
            minute_of_day: u32::from(t.hour()) * 60 + u32::from(t.minute()),
            weekday: t.weekday().number_days_from_monday(),
            date: (t.year(), u8::from(t.month()), t.day()),
        }
    }
}

/// Why a tariff could not price a session.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TariffError {
    /// The tariff is not valid at the session's start.
    #[error("tariff {0} is not valid at the session's start")]
    NotValid(String),
    /// A value of the tariff is not usable (it was checked on ingestion; stored data changed).
    #[error("tariff {tariff}: {message}")]
    Invalid {
        /// Tariff id.
        tariff: String,
        /// What is wrong.
        message: String,
    },
}

/// The common denominator of every contribution: 1/3 600 000 of a micro-unit, so that
/// Wh × (µ/kWh) (÷ 1 000) and s × (µ/h) (÷ 3 600) are both whole.
const UNIT: i128 = 3_600_000;
/// VAT in basis points: 100 % = 10 000.
const BP: i128 = 10_000;

#[derive(Debug, Clone, Copy)]
struct Component {
    dimension: TariffDimensionType,
    /// µ per kWh, per hour, or per session (FLAT).
    price_micro: i128,
    /// 10 000 + VAT in basis points.
    vat_factor: i128,
    step: i64,
}

#[derive(Debug, Clone, Default)]
struct Restrictions {
    start_minute: Option<u32>,
    end_minute: Option<u32>,
    start_date: Option<(i32, u8, u8)>,
    end_date: Option<(i32, u8, u8)>,
    min_wh: Option<i64>,
    max_wh: Option<i64>,
    min_w: Option<i64>,
    max_w: Option<i64>,
    min_s: Option<i64>,
    max_s: Option<i64>,
    days: Vec<u8>,
    never: bool,
}

#[derive(Debug, Clone)]
struct Element {
    components: Vec<Component>,
    restrictions: Restrictions,
}

/// The state a slice starts in: what restrictions are evaluated against.
#[derive(Debug, Clone, Copy)]
struct SliceState {
    local: Local,
    energy_so_far_wh: i64,
    elapsed_s: i64,
    power_w: i64,
}

fn day_index(d: DayOfWeek) -> u8 {
    match d {
        DayOfWeek::Monday => 0,
        DayOfWeek::Tuesday => 1,
        DayOfWeek::Wednesday => 2,
        DayOfWeek::Thursday => 3,
        DayOfWeek::Friday => 4,
        DayOfWeek::Saturday => 5,
        DayOfWeek::Sunday => 6,
    }
}

fn micro(value: f64) -> Option<i128> {
    let m = (value * 1e6).round();
    (m.is_finite() && (0.0..1e15).contains(&m)).then_some(m as i128)
}

impl Restrictions {
    fn from_ocpi(r: &TariffRestrictions) -> Result<Self, String> {
        let time = |v: &Option<String>, f: &str| {
            v.as_deref()
                .map(|t| parse_time_of_day(t).ok_or(format!("{f}: {t:?}")))
                .transpose()
        };
        let date = |v: &Option<String>, f: &str| {
            v.as_deref()
                .map(|t| parse_date(t).ok_or(format!("{f}: {t:?}")))
                .transpose()
        };
        let scaled = |v: Option<f64>| v.map(|x| (x * 1_000.0).round() as i64);
        Ok(Self {
            start_minute: time(&r.start_time, "start_time")?,
            end_minute: time(&r.end_time, "end_time")?,
            start_date: date(&r.start_date, "start_date")?,
            end_date: date(&r.end_date, "end_date")?,
            min_wh: scaled(r.min_kwh),
            max_wh: scaled(r.max_kwh),
            min_w: scaled(r.min_power),
            max_w: scaled(r.max_power),
            min_s: r.min_duration,
            max_s: r.max_duration,
            days: r.day_of_week.iter().copied().map(day_index).collect(),
            never: r.reservation.is_some() || r.min_current.is_some() || r.max_current.is_some(),
        })
    }

    fn matches(&self, s: &SliceState) -> bool {
        if self.never {
            return false;
        }
        let m = s.local.minute_of_day;
        let in_time = match (self.start_minute, self.end_minute) {
            (None, None) => true,
            (Some(a), None) => m >= a,
            (None, Some(b)) => b == 0 || m < b,
            (Some(a), Some(b)) if a == b => true,
            (Some(a), Some(0)) => m >= a,
            (Some(a), Some(b)) if a < b => a <= m && m < b,
            (Some(a), Some(b)) => m >= a || m < b,
        };
        let within = |v: i64, lo: Option<i64>, hi: Option<i64>| {
            lo.is_none_or(|lo| v >= lo) && hi.is_none_or(|hi| v < hi)
        };
        in_time
            && self.start_date.is_none_or(|d| s.local.date >= d)
            && self.end_date.is_none_or(|d| s.local.date < d)
            && within(s.energy_so_far_wh, self.min_wh, self.max_wh)
            && within(s.power_w, self.min_w, self.max_w)
            && within(s.elapsed_s, self.min_s, self.max_s)
            && (self.days.is_empty() || self.days.contains(&s.local.weekday))
    }
}

fn elements_of(t: &Tariff) -> Result<Vec<Element>, TariffError> {
    let invalid = |message: String| TariffError::Invalid {
        tariff: t.id.clone(),
        message,
    };
    t.elements
        .iter()
        .map(|e| {
            let components = e
                .price_components
                .iter()
                .map(|c| {
                    let price_micro =
                        micro(c.price).ok_or_else(|| invalid(format!("price {}", c.price)))?;
                    let vat_bp = c.vat.map_or(0.0, |v| (v * 100.0).round());
                    if !(0.0..=10_000.0).contains(&vat_bp) {
                        return Err(invalid(format!("vat {vat_bp} bp")));
                    }
                    Ok(Component {
                        dimension: c.dimension,
                        price_micro,
                        vat_factor: BP + vat_bp as i128,
                        step: c.step_size.max(1),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let restrictions = e
                .restrictions
                .as_ref()
                .map(Restrictions::from_ocpi)
                .transpose()
                .map_err(invalid)?
                .unwrap_or_default();
            Ok(Element {
                components,
                restrictions,
            })
        })
        .collect()
}

/// Excl. and incl. VAT sums in [`UNIT`]s (incl. VAT also × [`BP`]).
#[derive(Debug, Default, Clone, Copy)]
struct Sum {
    excl: i128,
    incl: i128,
}

impl Sum {
    fn add(&mut self, units: i128, c: &Component) {
        self.excl += units * c.price_micro;
        self.incl += units * c.price_micro * c.vat_factor;
    }
}

/// The instants in `[from, to)` where a slice must start: every minute and every duration
/// limit of the tariff (energy thresholds are added per period by [`price_session`]).
fn breakpoints(from: i64, to: i64, session_start: i64, elements: &[Element]) -> Vec<i64> {
    let mut points = vec![from];
    let mut minute = from.div_euclid(60) * 60 + 60;
    while minute < to {
        points.push(minute);
        minute += 60;
    }
    for e in elements {
        for limit in [e.restrictions.min_s, e.restrictions.max_s]
            .into_iter()
            .flatten()
        {
            let at = session_start.saturating_add(limit);
            if at > from && at < to {
                points.push(at);
            }
        }
    }
    points
}

/// Prices a session (`usage`, in time order) with `tariff` in the location's `zone`.
pub fn price_session(
    tariff: &Tariff,
    usage: &[UsagePeriod],
    zone: &Zone,
) -> Result<TariffCost, TariffError> {
    let Some(session_start) = usage.iter().map(|p| p.start).min() else {
        return Ok(TariffCost {
            excl_vat_micro: 0,
            incl_vat_micro: 0,
        });
    };
    if tariff.start_date_time.is_some_and(|t| session_start < t.0)
        || tariff.end_date_time.is_some_and(|t| session_start >= t.0)
    {
        return Err(TariffError::NotValid(tariff.id.clone()));
    }
    let elements = elements_of(tariff)?;
    let active = |dimension: TariffDimensionType, s: &SliceState| {
        elements
            .iter()
            .filter(|e| e.restrictions.matches(s))
            .find_map(|e| e.components.iter().find(|c| c.dimension == dimension))
            .copied()
    };
    let mut sum = Sum::default();
    let (mut flat_done, mut energy_so_far) = (false, 0i64);
    let (mut energy_billed, mut charging_billed, mut parking_billed) = (0i64, 0i64, 0i64);
    let (mut last_energy, mut last_time, mut last_parking) = (None, None, None);
    for p in usage {
        let (dur, energy) = (p.duration_s.max(0), p.energy_wh.max(0));
        let power_w = if p.charging && dur > 0 {
            i64::try_from(i128::from(energy) * 3_600 / i128::from(dur)).unwrap_or(i64::MAX)
        } else {
            0
        };
        // Energy drawn from the period's start to `t` (evenly), whole Wh that add up exactly.
        let drawn = |t: i64| -> i64 {
            if dur == 0 {
                return energy;
            }
            let part = i128::from(energy) * i128::from(t - p.start) / i128::from(dur);
            part as i64
        };
        let end = p.start + dur;
        let mut points = breakpoints(p.start, end.max(p.start + 1), session_start, &elements);
        if energy > 0 && dur > 0 {
            for e in &elements {
                for wh in [e.restrictions.min_wh, e.restrictions.max_wh]
                    .into_iter()
                    .flatten()
                {
                    let needed = i128::from(wh - energy_so_far);
                    if needed > 0 && needed < i128::from(energy) {
                        // The first whole second by which `needed` Wh are drawn.
                        let dt = (needed * i128::from(dur) + i128::from(energy) - 1)
                            / i128::from(energy);
                        points.push(p.start + dt as i64);
                    }
                }
            }
        }
        points.sort_unstable();
        points.dedup();
        for (i, &from) in points.iter().enumerate() {
            let to = points.get(i + 1).copied().unwrap_or(end).min(end).max(from);
            let (slice_s, slice_wh) = if dur == 0 {
                (0, energy)
            } else {
                (to - from, drawn(to) - drawn(from))
            };
            let state = SliceState {
                local: zone.local(from),
                energy_so_far_wh: energy_so_far,
                elapsed_s: from - session_start,
                power_w,
            };
            if !flat_done && let Some(c) = active(TariffDimensionType::Flat, &state) {
                sum.add(UNIT, &c);
                flat_done = true;
            }
            if slice_wh > 0
                && let Some(c) = active(TariffDimensionType::Energy, &state)
            {
                sum.add(i128::from(slice_wh) * (UNIT / 1_000), &c);
                energy_billed += slice_wh;
                last_energy = Some(c);
            }
            if slice_s > 0 {
                let dimension = if p.charging {
                    TariffDimensionType::Time
                } else {
                    TariffDimensionType::ParkingTime
                };
                if let Some(c) = active(dimension, &state) {
                    sum.add(i128::from(slice_s) * (UNIT / 3_600), &c);
                    if p.charging {
                        charging_billed += slice_s;
                        last_time = Some(c);
                    } else {
                        parking_billed += slice_s;
                        last_parking = Some(c);
                    }
                }
            }
            energy_so_far += slice_wh;
        }
    }
    let round_up = |total: i64, c: &Component| (total + c.step - 1) / c.step * c.step - total;
    if let Some(c) = last_energy {
        sum.add(i128::from(round_up(energy_billed, &c)) * (UNIT / 1_000), &c);
    }
    match (last_parking, last_time) {
        (Some(c), _) => sum.add(
            i128::from(round_up(parking_billed, &c)) * (UNIT / 3_600),
            &c,
        ),
        (None, Some(c)) => sum.add(
            i128::from(round_up(charging_billed, &c)) * (UNIT / 3_600),
            &c,
        ),
        (None, None) => {}
    }
    let mut excl = (sum.excl + UNIT / 2) / UNIT;
    let mut incl = (sum.incl + UNIT * BP / 2) / (UNIT * BP);
    let ratio = |bound: i128| {
        if excl == 0 {
            bound
        } else {
            bound * incl / excl
        }
    };
    let bound = |p: &crate::ingest::ocpi::model::Price| {
        let e = micro(p.excl_vat).unwrap_or(0);
        (e, p.incl_vat.and_then(micro).unwrap_or_else(|| ratio(e)))
    };
    let (min, max) = (
        tariff.min_price.as_ref().map(bound),
        tariff.max_price.as_ref().map(bound),
    );
    if let Some((e, i)) = min {
        (excl, incl) = (excl.max(e), incl.max(i));
    }
    if let Some((e, i)) = max {
        (excl, incl) = (excl.min(e), incl.min(i));
    }
    let fit = |v: i128| i64::try_from(v).unwrap_or(i64::MAX);
    Ok(TariffCost {
        excl_vat_micro: fit(excl),
        incl_vat_micro: fit(incl),
    })
}

/// A session's usage from a CDR: its charging periods (each lasting until the next, the last
/// until the CDR's end; `ENERGY` in it drawn evenly; `PARKING_TIME` in it taken from its end),
/// or, when the periods carry no energy but the CDR has some, its totals (charging from the
/// start for the total time minus `total_parking_time`, then parking).
pub fn usage_from_cdr(
    start: i64,
    end: i64,
    total_energy_wh: i64,
    total_parking_s: i64,
    periods: &[ChargingPeriod],
) -> Vec<UsagePeriod> {
    let end = end.max(start);
    let mut sorted: Vec<&ChargingPeriod> = periods.iter().collect();
    sorted.sort_by_key(|p| p.start_date_time.0);
    let volume = |p: &ChargingPeriod, d: CdrDimensionType| {
        p.dimensions
            .iter()
            .filter(|x| x.dimension_type == d)
            .map(|x| x.volume)
            .sum::<f64>()
    };
    let mut usage = Vec::new();
    let mut period_energy = 0i64;
    for (i, p) in sorted.iter().enumerate() {
        let from = p.start_date_time.0.clamp(start, end);
        let to = sorted
            .get(i + 1)
            .map_or(end, |n| n.start_date_time.0.clamp(from, end));
        let len = to - from;
        let energy_wh = (volume(p, CdrDimensionType::Energy) * 1_000.0)
            .round()
            .max(0.0) as i64;
        let parking_s =
            ((volume(p, CdrDimensionType::ParkingTime) * 3_600.0).round() as i64).clamp(0, len);
        period_energy += energy_wh;
        if len - parking_s > 0 || energy_wh > 0 {
            usage.push(UsagePeriod {
                start: from,
                duration_s: len - parking_s,
                energy_wh,
                charging: true,
            });
        }
        if parking_s > 0 {
            usage.push(UsagePeriod {
                start: to - parking_s,
                duration_s: parking_s,
                energy_wh: 0,
                charging: false,
            });
        }
    }
    if (period_energy == 0 && total_energy_wh > 0) || usage.is_empty() {
        let parking_s = total_parking_s.clamp(0, end - start);
        usage = vec![UsagePeriod {
            start,
            duration_s: end - start - parking_s,
            energy_wh: total_energy_wh.max(0),
            charging: true,
        }];
        if parking_s > 0 {
            usage.push(UsagePeriod {
                start: end - parking_s,
                duration_s: parking_s,
                energy_wh: 0,
                charging: false,
            });
        }
    }
    usage
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ingest::ocpi::model::parse;
    use serde_json::{Value, json};

    /// 2019-06-03 (a Monday) 00:00 UTC.
    const MONDAY: i64 = 1_559_520_000;
    const H: i64 = 3_600;

    fn tariff(elements: Value) -> Tariff {
        parse(
            json!({"country_code": "DE", "party_id": "ALL", "id": "T", "currency": "EUR",
            "elements": elements, "last_updated": "2019-01-01T00:00:00Z"}),
        )
        .unwrap()
    }

    fn charge(start: i64, duration_s: i64, energy_wh: i64) -> UsagePeriod {
        UsagePeriod {
            start,
            duration_s,
            energy_wh,
            charging: true,
        }
    }

    fn park(start: i64, duration_s: i64) -> UsagePeriod {
        UsagePeriod {
            start,
            duration_s,
            energy_wh: 0,
            charging: false,
        }
    }

    fn cost(t: &Tariff, usage: &[UsagePeriod]) -> (i64, i64) {
        let c = price_session(t, usage, &Zone::utc()).unwrap();
        (c.excl_vat_micro, c.incl_vat_micro)
    }

    #[test]
    fn simple_energy_tariff_of_the_spec() {
        // mod_tariffs "Simple Tariff example € 0.25 per kWh": 20 kWh → 5.00 / 5.50.
        let t = tariff(json!([{"price_components": [
            {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1}]}]));
        assert_eq!(
            cost(&t, &[charge(MONDAY, 2 * H, 20_000)]),
            (5_000_000, 5_500_000)
        );
    }

    #[test]
    fn start_fee_and_parking_with_step_size() {
        // "€ 0.25 per kWh + parking fee + start fee": 20 kWh, 40 min parking billed as 45 min:
        // 7.00 excl. / 7.90 incl. VAT.
        let t = tariff(json!([
            {"price_components": [{"type": "FLAT", "price": 0.50, "vat": 20.0, "step_size": 1}]},
            {"price_components": [{"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1}]},
            {"price_components": [
                {"type": "PARKING_TIME", "price": 2.00, "vat": 20.0, "step_size": 900}]}
        ]));
        let usage = [charge(MONDAY, 2 * H, 20_000), park(MONDAY + 2 * H, 40 * 60)];
        assert_eq!(cost(&t, &usage), (7_000_000, 7_900_000));
    }

    #[test]
    fn time_and_parking_round_only_the_parking() {
        // "€ 3 per hour, € 5 per hour parking": 150 min charging + 42 min parking (billed 45):
        // 11.25 excl. / 12.75 incl. VAT.
        let t = tariff(json!([{"price_components": [
            {"type": "TIME", "price": 3.00, "vat": 10.0, "step_size": 60},
            {"type": "PARKING_TIME", "price": 5.00, "vat": 20.0, "step_size": 300}]}]));
        let usage = [
            charge(MONDAY, 150 * 60, 30_000),
            park(MONDAY + 150 * 60, 42 * 60),
        ];
        assert_eq!(cost(&t, &usage), (11_250_000, 12_750_000));
    }

    #[test]
    fn energy_step_size_rounds_the_total() {
        // 115.2 Wh is charged as 116 Wh at step 1 (we hold whole Wh: 116), 101–125 → 125 at 25.
        let t = |step: i64| {
            tariff(json!([{"price_components": [
                {"type": "ENERGY", "price": 0.25, "step_size": step}]}]))
        };
        assert_eq!(cost(&t(25), &[charge(MONDAY, 600, 116)]).0, 31_250);
        assert_eq!(cost(&t(500), &[charge(MONDAY, 600, 116)]).0, 125_000);
    }

    #[test]
    fn max_power_restriction_picks_the_element_per_period() {
        // mod_tariffs "Tariff with max_power": 1 kWh at 6 kW, 40 kWh at 48 kW, 0.5 kWh at 4 kW
        // → 20.30 EUR excl. VAT.
        let t = tariff(json!([
            {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}],
             "restrictions": {"max_power": 16.0}},
            {"price_components": [{"type": "ENERGY", "price": 0.35, "step_size": 1}],
             "restrictions": {"max_power": 32.0}},
            {"price_components": [{"type": "ENERGY", "price": 0.50, "step_size": 1}]}
        ]));
        let usage = [
            charge(MONDAY, 600, 1_000),          // 6 kW
            charge(MONDAY + 600, 3_000, 40_000), // 48 kW
            charge(MONDAY + 3_600, 450, 500),    // 4 kW
        ];
        assert_eq!(cost(&t, &usage), (20_300_000, 20_300_000));
    }

    #[test]
    fn max_duration_restriction_switches_mid_period() {
        // "Tariff with max_duration": free for 30 min, 0.25/kWh to 60 min, 0.40 after. 40 min:
        // 5 kWh in the first 30 min, 1.2 kWh in the next 10 → 0.30 EUR.
        let t = tariff(json!([
            {"price_components": [{"type": "ENERGY", "price": 0.0, "step_size": 1}],
             "restrictions": {"max_duration": 1800}},
            {"price_components": [{"type": "ENERGY", "price": 0.25, "step_size": 1}],
             "restrictions": {"max_duration": 3600}},
            {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}]}
        ]));
        let usage = [
            charge(MONDAY, 1_800, 5_000),
            charge(MONDAY + 1_800, 600, 1_200),
        ];
        assert_eq!(cost(&t, &usage).0, 300_000);
    }

    #[test]
    fn kwh_threshold_splits_a_period_exactly() {
        // 0.20 for the first 10 kWh, 0.30 after; 20 kWh in one even hour → 2.00 + 3.00.
        let t = tariff(json!([
            {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}],
             "restrictions": {"max_kwh": 10.0}},
            {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}
        ]));
        assert_eq!(cost(&t, &[charge(MONDAY + 17, 3_600, 20_000)]).0, 5_000_000);
    }

    #[test]
    fn time_of_day_and_weekday_in_local_time() {
        // Peak 0.40 on weekdays 17:00–20:00 Amsterdam time (15:00–18:00 UTC in June), else
        // 0.20. One hour from 14:30 UTC, 10 kWh evenly: 30 min off-peak, 30 min peak.
        let t = tariff(json!([
            {"price_components": [{"type": "ENERGY", "price": 0.40, "step_size": 1}],
             "restrictions": {"start_time": "17:00", "end_time": "20:00",
                "day_of_week": ["MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY"]}},
            {"price_components": [{"type": "ENERGY", "price": 0.20, "step_size": 1}]}
        ]));
        let usage = [charge(MONDAY + 14 * H + 1_800, H, 10_000)];
        let ams = Zone::named("Europe/Amsterdam").expect("zoneinfo");
        let c = price_session(&t, &usage, &ams).unwrap();
        assert_eq!(c.excl_vat_micro, 5 * 200_000 + 5 * 400_000);
        // On the Saturday after, the same hour is off-peak throughout.
        let saturday = [charge(MONDAY + 5 * 24 * H + 14 * H + 1_800, H, 10_000)];
        assert_eq!(
            price_session(&t, &saturday, &ams).unwrap().excl_vat_micro,
            2_000_000
        );
        // In UTC the window starts at 17:00 UTC: all off-peak.
        assert_eq!(cost(&t, &usage).0, 2_000_000);
    }

    #[test]
    fn min_and_max_price_bound_the_total() {
        let t: Tariff = parse(json!({"country_code": "DE", "party_id": "ALL", "id": "T",
            "currency": "EUR", "min_price": {"excl_vat": 0.50, "incl_vat": 0.55},
            "max_price": {"excl_vat": 10.0, "incl_vat": 11.0},
            "elements": [{"price_components": [
                {"type": "ENERGY", "price": 0.25, "vat": 10.0, "step_size": 1}]}],
            "last_updated": "2019-01-01T00:00:00Z"}))
        .unwrap();
        assert_eq!(cost(&t, &[charge(MONDAY, H, 1_000)]), (500_000, 550_000));
        assert_eq!(
            cost(&t, &[charge(MONDAY, H, 50_000)]),
            (10_000_000, 11_000_000)
        );
    }

    #[test]
    fn current_and_reservation_elements_never_price_a_session_and_validity_is_checked() {
        let t = tariff(json!([
            {"price_components": [{"type": "ENERGY", "price": 9.0, "step_size": 1}],
             "restrictions": {"min_current": 1.0}},
            {"price_components": [{"type": "FLAT", "price": 9.0, "step_size": 1}],
             "restrictions": {"reservation": "RESERVATION"}},
            {"price_components": [{"type": "ENERGY", "price": 0.30, "step_size": 1}]}
        ]));
        assert_eq!(cost(&t, &[charge(MONDAY, H, 10_000)]).0, 3_000_000);
        let mut later = t.clone();
        later.start_date_time = Some(crate::ingest::ocpi::model::DateTime(MONDAY + 1));
        assert_eq!(
            price_session(&later, &[charge(MONDAY, H, 10_000)], &Zone::utc()),
            Err(TariffError::NotValid("T".into()))
        );
    }

    #[test]
    fn usage_from_periods_and_from_totals() {
        let periods: Vec<ChargingPeriod> = parse(json!([
            {"start_date_time": "2019-06-03T10:00:00Z",
             "dimensions": [{"type": "ENERGY", "volume": 5.0}]},
            {"start_date_time": "2019-06-03T11:00:00Z",
             "dimensions": [{"type": "ENERGY", "volume": 1.0},
                            {"type": "PARKING_TIME", "volume": 0.5}]}
        ]))
        .unwrap();
        let start = MONDAY + 10 * H;
        let u = usage_from_cdr(start, start + 2 * H, 6_000, 0, &periods);
        assert_eq!(
            u,
            vec![
                charge(start, H, 5_000),
                charge(start + H, 1_800, 1_000),
                park(start + H + 1_800, 1_800)
            ]
        );
        let u = usage_from_cdr(start, start + 2 * H, 6_000, 1_800, &[]);
        assert_eq!(
            u,
            vec![charge(start, 5_400, 6_000), park(start + 5_400, 1_800)]
        );
    }
}
