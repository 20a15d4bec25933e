//! Meter values for live status: batches of OCPP 1.6-style `MeterValue`s per EVSE.
//!
//! ```json
//! {"meter_values": [{
//!   "evse_uid": "3256", "session_id": "101",
//!   "meterValue": [{"timestamp": "2024-05-01T10:00:00Z", "sampledValue": [
//!     {"measurand": "Energy.Active.Import.Register", "value": "12500", "unit": "Wh"},
//!     {"measurand": "Power.Active.Import", "value": "7.2", "unit": "kW"},
//!     {"measurand": "SoC", "value": "54", "unit": "Percent"}]}]}]}
//! ```
//!
//! `country_code`/`party_id` default to the sending party's, and must be one of its roles (403
//! otherwise: a CPO meters only its own EVSEs). A `sampledValue` without
//! `measurand` is the energy register (OCPP's default); other measurands are accepted and
//! ignored. Units: `Wh`/`kWh`, `W`/`kW`, `Percent`, `A`.
//!
//! `Current.Import` per phase (`"phase": "L1"`, `"L2"`, `"L3"`, or `L1-N` …) tells which phases
//! the car draws on: a meter value whose per-phase currents show one phase above 1 A is a
//! single-phase car (`car_phases` 1), and the plan loads only that phase (issue 12). A current
//! without a phase, or one phase only, says nothing about the others and is not counted.

use crate::domain::{bounds, parse_rfc3339};
use crate::ingest::ocpi::model::parse;
use crate::ingest::{Actor, IngestError, IngestResult};
use crate::store::Db;
use crate::store::meter::{self, MeterReading};
use crate::store::parties::Party;
use serde::Deserialize;

/// A batch of meter values.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MeterValuesBatch {
    /// Per-EVSE meter values.
    pub meter_values: Vec<EvseMeterValues>,
}

/// The meter values of one EVSE.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct EvseMeterValues {
    /// Country code of the CPO (default: the sender's).
    pub country_code: Option<String>,
    /// Party id of the CPO (default: the sender's).
    pub party_id: Option<String>,
    /// EVSE uid.
    pub evse_uid: String,
    /// OCPI session id, when known.
    pub session_id: Option<String>,
    /// OCPP `MeterValue`s.
    #[serde(rename = "meterValue")]
    pub meter_value: Vec<MeterValue>,
}

/// OCPP 1.6 `MeterValue`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct MeterValue {
    /// Instant of the samples (RFC 3339).
    pub timestamp: String,
    /// Samples.
    #[serde(rename = "sampledValue")]
    pub sampled_value: Vec<SampledValue>,
}

/// OCPP 1.6 `SampledValue` (the fields evflex reads).
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
pub struct SampledValue {
    /// Decimal value, as a string (OCPP).
    pub value: String,
    /// Measurand (default `Energy.Active.Import.Register`).
    pub measurand: Option<String>,
    /// Unit (`Wh`, `kWh`, `W`, `kW`, `Percent`, `A`).
    pub unit: Option<String>,
    /// Phase (`L1`, `L2`, `L3`, `L1-N`, …), for per-phase measurands.
    #[serde(default)]
    pub phase: Option<String>,
}

/// Above this a phase carries the car's current (A); below it is noise or standby.
const PHASE_IN_USE_A: f64 = 1.0;

/// Parses and validates a batch into readings; errors name the field.
pub fn readings(
    body: serde_json::Value,
    actor: Actor<'_>,
    default_cc: &str,
    default_pid: &str,
) -> IngestResult<Vec<MeterReading>> {
    let batch: MeterValuesBatch = parse(body).map_err(IngestError::Invalid)?;
    let mut out = Vec::new();
    for (i, evse) in batch.meter_values.into_iter().enumerate() {
        let at = |rest: &str| format!("meter_values[{i}].{rest}");
        actor.check(
            &at("country_code"),
            evse.country_code.as_deref().unwrap_or(default_cc),
            evse.party_id.as_deref().unwrap_or(default_pid),
        )?;
        bounds::id(&at("evse_uid"), &evse.evse_uid, bounds::ID_MAX_LEN)
            .map_err(IngestError::Invalid)?;
        if let Some(session) = &evse.session_id {
            bounds::id(&at("session_id"), session, bounds::ID_MAX_LEN)
                .map_err(IngestError::Invalid)?;
        }
        for (j, mv) in evse.meter_value.iter().enumerate() {
            let ts = parse_rfc3339(&mv.timestamp).ok_or_else(|| {
                IngestError::Invalid(format!(
                    "{}: invalid DateTime {:?}",
                    at(&format!("meterValue[{j}].timestamp")),
                    mv.timestamp
                ))
            })?;
            bounds::instant(&at(&format!("meterValue[{j}].timestamp")), ts)
                .map_err(IngestError::Invalid)?;
            let mut reading = MeterReading {
                country_code: evse
                    .country_code
                    .clone()
                    .unwrap_or_else(|| default_cc.to_owned()),
                party_id: evse
                    .party_id
                    .clone()
                    .unwrap_or_else(|| default_pid.to_owned()),
                evse_uid: evse.evse_uid.clone(),
                session_id: evse.session_id.clone(),
                ts,
                energy_wh: None,
                power_w: None,
                soc_permille: None,
                car_phases: None,
            };
            // Per-phase currents of this meter value (A), by phase index.
            let mut phase_current: [Option<f64>; 3] = [None; 3];
            for (k, sv) in mv.sampled_value.iter().enumerate() {
                let field = at(&format!("meterValue[{j}].sampledValue[{k}]"));
                let value: f64 = sv
                    .value
                    .trim()
                    .parse()
                    .ok()
                    .filter(|v: &f64| v.is_finite())
                    .ok_or_else(|| {
                        IngestError::Invalid(format!("{field}.value: not a decimal number"))
                    })?;
                let unit = sv.unit.as_deref();
                let bounded = |factor: f64, range, unit: &str| {
                    bounds::scaled_within(&format!("{field}.value"), value, factor, range, unit)
                        .map_err(IngestError::Invalid)
                };
                match sv
                    .measurand
                    .as_deref()
                    .unwrap_or("Energy.Active.Import.Register")
                {
                    "Energy.Active.Import.Register" => {
                        reading.energy_wh = Some(match unit {
                            None | Some("Wh") => bounded(1.0, &bounds::METER_REGISTER_WH, "Wh")?,
                            Some("kWh") => bounded(1_000.0, &bounds::METER_REGISTER_WH, "kWh")?,
                            Some(u) => return Err(bad_unit(&field, u)),
                        })
                    }
                    "Power.Active.Import" => {
                        reading.power_w = Some(match unit {
                            None | Some("W") => bounded(1.0, &bounds::POWER_W, "W")?,
                            Some("kW") => bounded(1_000.0, &bounds::POWER_W, "kW")?,
                            Some(u) => return Err(bad_unit(&field, u)),
                        })
                    }
                    "SoC" => {
                        if !(0.0..=100.0).contains(&value) {
                            return Err(IngestError::Invalid(format!(
                                "{field}.value: SoC must be within 0..100 %"
                            )));
                        }
                        reading.soc_permille = Some((value * 10.0).round() as i64);
                    }
                    "Current.Import" => {
                        if !matches!(unit, None | Some("A")) {
                            return Err(bad_unit(&field, unit.unwrap_or_default()));
                        }
                        bounded(1.0, &bounds::CURRENT_A, "A")?;
                        let phase = match sv.phase.as_deref().map(|p| p.get(..2).unwrap_or(p)) {
                            Some("L1") => Some(0),
                            Some("L2") => Some(1),
                            Some("L3") => Some(2),
                            _ => None,
                        };
                        if let Some(k) = phase {
                            phase_current[k] = Some(value);
                        }
                    }
                    _ => {}
                }
            }
            if phase_current.iter().filter(|c| c.is_some()).count() >= 2 {
                let in_use = phase_current
                    .iter()
                    .filter(|c| c.is_some_and(|a| a > PHASE_IN_USE_A))
                    .count();
                reading.car_phases = (in_use > 0).then_some(in_use as i64);
            }
            out.push(reading);
        }
    }
    Ok(out)
}

fn bad_unit(field: &str, unit: &str) -> IngestError {
    IngestError::Invalid(format!("{field}.unit: unsupported unit {unit:?}"))
}

/// Validates and stores a batch in one transaction; returns the readings stored.
#[tracing::instrument(skip_all)]
pub async fn ingest(
    db: &Db,
    body: serde_json::Value,
    cpo: &Party,
) -> IngestResult<Vec<meter::MeterReading>> {
    let readings = readings(body, Actor::Cpo(cpo), &cpo.country_code, &cpo.party_id)?;
    let mut tx = db.begin().await?;
    meter::insert_batch(&mut tx, &readings).await?;
    tx.commit().await?;
    Ok(readings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_measurands_and_units() {
        let r = readings(
            json!({"meter_values": [{"evse_uid": "E1", "meterValue": [{
            "timestamp": "2024-05-01T10:00:00Z",
            "sampledValue": [
                {"value": "12.5", "unit": "kWh"},
                {"measurand": "Power.Active.Import", "value": "7.2", "unit": "kW"},
                {"measurand": "SoC", "value": "54.5", "unit": "Percent"},
                {"measurand": "Voltage", "value": "230", "unit": "V"}
            ]}]}]}),
            Actor::Operator,
            "NL",
            "EXA",
        )
        .unwrap();
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].energy_wh, Some(12_500));
        assert_eq!(r[0].power_w, Some(7_200));
        assert_eq!(r[0].soc_permille, Some(545));
        assert_eq!(r[0].country_code, "NL");
    }

    #[test]
    fn per_phase_currents_count_the_phases_the_car_draws_on() {
        let phases = |currents: serde_json::Value| {
            readings(
                json!({"meter_values": [{"evse_uid": "E1", "meterValue": [{
                    "timestamp": "2024-05-01T10:00:00Z", "sampledValue": currents}]}]}),
                Actor::Operator,
                "NL",
                "EXA",
            )
            .map(|r| r[0].car_phases)
        };
        let current = |phase: &str, a: &str| json!({"measurand": "Current.Import", "phase": phase, "value": a, "unit": "A"});
        // A single-phase car on a three-phase point (on the point's L2).
        let single = json!([
            current("L1", "0.2"),
            current("L2", "15.8"),
            current("L3", "0")
        ]);
        assert_eq!(phases(single).unwrap(), Some(1));
        let three = json!([
            current("L1-N", "16"),
            current("L2-N", "15.9"),
            current("L3-N", "16")
        ]);
        assert_eq!(phases(three).unwrap(), Some(3));
        // One phase alone says nothing about the others; nor does a current without a phase.
        assert_eq!(phases(json!([current("L1", "16")])).unwrap(), None);
        let no_phase = json!([{"measurand": "Current.Import", "value": "16", "unit": "A"}]);
        assert_eq!(phases(no_phase).unwrap(), None);
        // A car drawing nothing yet is not a zero-phase car.
        let idle = json!([current("L1", "0"), current("L2", "0"), current("L3", "0")]);
        assert_eq!(phases(idle).unwrap(), None);
        // No meter makes a negative current or one in kV.
        let err = phases(json!([current("L1", "-3"), current("L2", "0")])).unwrap_err();
        assert!(err.to_string().contains("sampledValue[0].value"), "{err}");
        let err = phases(
            json!([{"measurand": "Current.Import", "phase": "L1", "value": "3",
            "unit": "kV"}]),
        )
        .unwrap_err();
        assert!(err.to_string().contains("unit"), "{err}");
    }

    #[test]
    fn errors_name_the_field() {
        let err = readings(
            json!({"meter_values": [{"evse_uid": "E1", "meterValue": [{
                "timestamp": "2024-05-01T10:00:00Z",
                "sampledValue": [{"measurand": "SoC", "value": "abc"}]}]}]}),
            Actor::Operator,
            "NL",
            "EXA",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "meter_values[0].meterValue[0].sampledValue[0].value: not a decimal number"
        );
    }
}
