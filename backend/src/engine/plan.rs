//! The pure half of a group's tick: from the group's snapshot, its solved schedule and the
//! set-points of its previous timestep to every row the tick writes ([`Plan`]): the schedule
//! record, each session's flexibility, the set-points for the CPO and the `status_commit` chain
//! work. No IO, no clock, like [`crate::billing::bill_for_session`]: [`super::tick`] reads the
//! inputs, solves, calls [`plan`] and commits the result in the group's transaction.
//!
//! Set-points: every controlled vehicle (opted in) gets its schedule row as an OCPI charging
//! profile. An uncontrolled vehicle (not opted in) gets one only where the schedule curtails it,
//! and, when it was curtailed at the previous timestep and no longer is, a clear set-point
//! (`profile` null): delivery sends the CPO OCPI's ClearProfile (`DELETE`), so the charge point
//! returns to its own default rather than to a limit evflex made up (see
//! [`uncontrolled_setpoint`]).
//!
//! A charge point that takes amps (a group with an electrical model, `CpWiring` unit `A`) gets
//! its profile in A per phase with `min_charging_rate` (OCPI `charging_rate_unit` `"A"`); the
//! stored `power_w` of the set-point stays the first step's power in W.

use super::TickError;
use super::report::GroupOutcome;
use super::snapshot::{GroupSnapshot, VehicleInfo};
use crate::domain::{format_rfc3339, step_start};
use crate::store::schedules::{ScheduleRecord, SetpointRecord};
use evflex_chain::work::{MemberSnapshot, StatusCommitWork};
use evflex_schedule::{GroupInputs, Mode, Schedule, SolveOptions, VehicleClass, hash};
use std::collections::HashSet;

/// Which (group, timestep, revision) a plan is for, and when it is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Step {
    /// The group.
    pub group_id: i64,
    /// The absolute timestep planned (Unix seconds / 900).
    pub timestep: u64,
    /// 0 for the tick's plan, 1, 2, … for the event re-plans within the timestep.
    pub revision: i64,
    /// Now (Unix seconds): the rows' creation time.
    pub now: i64,
}

/// One session's flexibility in the schedule (the basis of its FLEX reward).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flexibility {
    /// Session row id.
    pub session_row: i64,
    /// Energy shifted against the uncontrolled case (Wh).
    pub shifted_wh: i64,
    /// What the shift is worth (micro-EUR).
    pub value_micro_eur: i64,
}

/// Every row one group's tick writes, in the order [`super::tick`] commits them.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Which (group, timestep), and when.
    pub step: Step,
    /// The schedule row (its primary key (group, timestep, revision) guards against a second
    /// commit).
    pub schedule: ScheduleRecord,
    /// Flexibility per scheduled session.
    pub flexibility: Vec<Flexibility>,
    /// Set-points queued for the CPOs.
    pub setpoints: Vec<SetpointRecord>,
    /// The group's member statuses and hashes, for the StatusLedger (chain work).
    pub status_commit: StatusCommitWork,
    /// The group's report line once committed (always [`GroupOutcome::Solved`]).
    pub outcome: GroupOutcome,
}

/// The rows to write for `schedule`, solved from `snap` with `opts`. `previous_setpoints` are
/// the set-points of the group's previous stored timestep (they tell which uncontrolled
/// sessions were curtailed there).
pub fn plan(
    snap: &GroupSnapshot,
    schedule: &Schedule,
    previous_setpoints: &[SetpointRecord],
    opts: &SolveOptions,
    step: Step,
) -> Result<Plan, TickError> {
    let Step {
        group_id,
        timestep,
        revision,
        now,
    } = step;
    let inputs_hash = hash::to_hex(&hash::inputs_hash(&snap.inputs));
    let schedule_hash = hash::to_hex(&hash::schedule_hash(schedule));
    let params_hash = hash::to_hex(&hash::params_hash(opts));
    let time_step_s = snap.inputs.time_step_s;
    let t0 = step_start(timestep, time_step_s);
    let index_of = |vehicle_id: &str| schedule.vehicle_ids.iter().position(|v| v == vehicle_id);
    let row_of = |vehicle_id: &str| index_of(vehicle_id).and_then(|i| schedule.power_w.get(i));

    let curtailed_before: HashSet<i64> = previous_setpoints
        .iter()
        .filter(|s| limits_below_max(&s.profile, &snap.inputs, s.session_row, &snap.vehicles))
        .map(|s| s.session_row)
        .collect();
    let mut flexibility = Vec::new();
    let mut setpoints = Vec::new();
    let mut profiled: Vec<(&VehicleInfo, Vec<i64>, Option<i64>)> = Vec::new();
    for v in &snap.vehicles {
        let Some(i) = index_of(&v.vehicle_id) else {
            continue;
        };
        let Some(row) = schedule.power_w.get(i) else {
            continue;
        };
        if let Some(f) = schedule.flexibility.get(i) {
            flexibility.push(Flexibility {
                session_row: v.session_row,
                shifted_wh: f.shifted_wh,
                value_micro_eur: f.value_micro_eur,
            });
        }
        let (limits, min_rate) = if v.class == VehicleClass::Uncontrolled {
            let curtailed = curtailed_before.contains(&v.session_row);
            match uncontrolled_setpoint(&snap.inputs, &v.vehicle_id, row, curtailed) {
                Some(UncontrolledSetpoint::Limit(limits)) => (limits, None),
                Some(UncontrolledSetpoint::Clear { max_power_w }) => {
                    setpoints.push(SetpointRecord {
                        group_id,
                        timestep: timestep as i64,
                        revision,
                        session_row: v.session_row,
                        session_id: v.session_id.clone(),
                        owner_party: v.owner_party,
                        power_w: max_power_w,
                        profile: serde_json::Value::Null,
                    });
                    continue;
                }
                None => continue,
            }
        } else {
            let min_rate = (opts.mode == Mode::Milp).then_some(v.min_power_w);
            (row.clone(), min_rate)
        };
        profiled.push((v, limits, min_rate));
    }
    // Charge points that take amps get their limits in A (issue 12): the rows as sent, in each
    // charge point's unit, from the tree the schedule was solved with.
    let in_units = match &snap.inputs.topology {
        Some(_) => {
            let mut sent = schedule.clone();
            for (v, limits, _) in &profiled {
                if let Some(i) = index_of(&v.vehicle_id) {
                    sent.power_w[i] = limits.clone();
                }
            }
            evflex_schedule::set_points(&snap.inputs, &sent)?
        }
        None => Vec::new(),
    };
    for (v, limits, min_rate) in profiled {
        let start = format_rfc3339(t0);
        let profile = match in_units.iter().find(|sp| sp.vehicle_id == v.vehicle_id) {
            Some(sp) if sp.unit == evflex_schedule::RateUnit::Amps => {
                evflex_schedule::profile::ocpi_profile_for(sp, time_step_s, &start)
            }
            _ => evflex_schedule::profile::ocpi_charging_profile(
                &limits,
                time_step_s,
                &start,
                min_rate,
            ),
        };
        setpoints.push(SetpointRecord {
            group_id,
            timestep: timestep as i64,
            revision,
            session_row: v.session_row,
            session_id: v.session_id.clone(),
            owner_party: v.owner_party,
            power_w: limits.first().copied().unwrap_or(0),
            profile: encode("charging profile", &profile)?,
        });
    }
    // In the snapshot's vehicle order, clears and profiles alike.
    setpoints.sort_by_key(|sp| {
        snap.vehicles
            .iter()
            .position(|v| v.session_row == sp.session_row)
    });

    let members = snap
        .members
        .iter()
        .map(|m| {
            let vehicle = snap.vehicles.iter().find(|v| v.evse_uid == m.evse_uid);
            MemberSnapshot {
                evse_uid: m.evse_uid.clone(),
                status: m.status.clone(),
                session_id: vehicle.map(|v| v.session_id.clone()),
                setpoint_w: vehicle
                    .and_then(|v| row_of(&v.vehicle_id))
                    .and_then(|r| r.first().copied())
                    .unwrap_or(0),
                measured_w: m.measured_w,
                energy_left_wh: vehicle.map_or(0, |v| v.energy_left_wh),
                time_left_s: vehicle
                    .filter(|v| v.class != VehicleClass::Uncontrolled)
                    .map_or(0, |v| (v.departure_ts - t0).max(0)),
            }
        })
        .collect();
    let record = ScheduleRecord {
        group_id,
        timestep: timestep as i64,
        revision,
        time_step_s: i64::from(time_step_s),
        status: serde_json::to_value(schedule.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        params_hash: params_hash.clone(),
        inputs: encode("inputs", &snap.inputs)?,
        schedule: encode("schedule", schedule)?,
        members: encode("members", &snap.vehicles)?,
        capacity_w: snap.group_capacity_w,
        planned_load_w: schedule.grid_import_w.first().copied().unwrap_or(0),
        measured_load_w: snap.measured_load_w,
        pv_w: snap.inputs.pv_w.first().copied().unwrap_or(0),
        reserve_w: snap.reserve_w,
        created_at: now,
    };
    let status_commit = StatusCommitWork {
        group_id,
        timestep: timestep as i64,
        revision,
        time_step_s: i64::from(time_step_s),
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        params_hash,
        members,
    };
    let outcome = GroupOutcome::Solved {
        revision,
        status: schedule.status,
        vehicles: snap.vehicles.len(),
        setpoints: setpoints.len(),
        inputs_hash,
        schedule_hash,
        solve_ms: schedule.solve_ms,
    };
    Ok(Plan {
        step,
        schedule: record,
        flexibility,
        setpoints,
        status_commit,
        outcome,
    })
}

/// The schedule a stored record holds, to plan the next timestep from. A record whose
/// schedule does not decode is a [`TickError::CorruptSchedule`] naming it; the tick logs it at
/// error level and plans from scratch, as the optimiser does for a group's first timestep.
pub fn previous_schedule(record: &ScheduleRecord) -> Result<Schedule, TickError> {
    serde_json::from_value(record.schedule.clone()).map_err(|source| TickError::CorruptSchedule {
        group_id: record.group_id,
        timestep: record.timestep,
        source,
    })
}

fn encode<T: serde::Serialize + ?Sized>(
    what: &'static str,
    value: &T,
) -> Result<serde_json::Value, TickError> {
    serde_json::to_value(value).map_err(|source| TickError::Encode { what, source })
}

/// What an uncontrolled vehicle is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UncontrolledSetpoint {
    /// A profile with these limits (W per step).
    Limit(Vec<i64>),
    /// Clear the profile evflex set before (OCPI ClearProfile); it may draw its maximum again.
    Clear {
        /// Its maximum power (W).
        max_power_w: i64,
    },
}

/// The set-point of an uncontrolled session (a user who did not opt in), `None` for none. Such
/// a car charges as fast as possible, but an accepted guarantee outranks it
/// (`backend/schedule/DESIGN.md`): where the schedule curtails it, it gets a profile with its
/// planned power in the curtailed steps and its maximum elsewhere
/// ([`evflex_schedule::profile::uncontrolled_limits`]); a car curtailed at the previous
/// timestep and no longer curtailed gets its profile cleared. Cars that are never curtailed get
/// nothing.
pub fn uncontrolled_setpoint(
    inputs: &GroupInputs,
    vehicle_id: &str,
    row: &[i64],
    curtailed_before: bool,
) -> Option<UncontrolledSetpoint> {
    let vehicle = inputs.vehicles.iter().find(|x| x.id == vehicle_id)?;
    match evflex_schedule::profile::uncontrolled_limits(vehicle, row, inputs.time_step_s) {
        Some(limits) => Some(UncontrolledSetpoint::Limit(limits)),
        None if curtailed_before => Some(UncontrolledSetpoint::Clear {
            max_power_w: vehicle.max_power_w,
        }),
        None => None,
    }
}

/// Whether a stored OCPI profile of an uncontrolled session limits it below its maximum power
/// in some period.
fn limits_below_max(
    profile: &serde_json::Value,
    inputs: &GroupInputs,
    session_row: i64,
    vehicles: &[VehicleInfo],
) -> bool {
    let Some(max_w) = vehicles
        .iter()
        .find(|v| v.session_row == session_row && v.class == VehicleClass::Uncontrolled)
        .and_then(|v| inputs.vehicles.iter().find(|x| x.id == v.vehicle_id))
        .map(|x| x.max_power_w)
    else {
        return false;
    };
    profile["charging_profile_period"]
        .as_array()
        .is_some_and(|periods| {
            periods
                .iter()
                .any(|p| p["limit"].as_f64().is_some_and(|l| l < max_w as f64))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::snapshot::MemberInfo;
    use evflex_schedule::{SolveStatus, Vehicle};

    const TS: u64 = 2_000_000;
    const NOW: i64 = TS as i64 * 900 + 30;
    const STEP: Step = Step {
        group_id: 7,
        timestep: TS,
        revision: 0,
        now: NOW,
    };

    fn vehicle(id: &str, energy_wh: i64, opted_in: bool) -> Vehicle {
        Vehicle {
            id: id.to_owned(),
            arrival: 0,
            departure: 4,
            max_power_w: 11_000,
            min_power_w: 1_380,
            energy_requested_wh: energy_wh,
            battery_capacity_wh: None,
            energy_on_arrival_wh: None,
            class: VehicleClass::from_flags(opted_in, opted_in),
            efficiency_permille: 1000,
            taper_knee_permille: None,
            energy_wanted_wh: None,
        }
    }

    fn info(id: &str, row: i64, class: VehicleClass) -> VehicleInfo {
        VehicleInfo {
            vehicle_id: id.to_owned(),
            session_row: row,
            session_id: format!("S{row}"),
            evse_uid: format!("E{row}"),
            owner_party: Some(1),
            class,
            departure_ts: TS as i64 * 900 + 3_600,
            energy_left_wh: 5_000,
            min_power_w: 1_380,
        }
    }

    fn member(uid: &str) -> MemberInfo {
        MemberInfo {
            evse_uid: uid.to_owned(),
            status: "CHARGING".to_owned(),
            rated_power_w: 11_000,
            measured_w: 3_000,
        }
    }

    /// A guaranteed vehicle `G`, an uncontrolled vehicle `U` curtailed in step 0 and an
    /// uncontrolled vehicle `F` that is never curtailed, on EVSEs E1..E3; E4 is empty.
    fn snapshot() -> GroupSnapshot {
        GroupSnapshot {
            inputs: GroupInputs {
                group_id: 7,
                start_timestep: TS,
                time_step_s: 900,
                horizon: 4,
                capacity_w: vec![30_000; 4],
                other_load_w: vec![0; 4],
                pv_w: vec![0; 4],
                price_micro_eur_per_kwh: vec![250_000; 4],
                battery: None,
                vehicles: vec![
                    vehicle("G", 5_000, true),
                    vehicle("U", 20_000, false),
                    vehicle("F", 2_750, false),
                ],
                topology: None,
            },
            members: ["E1", "E2", "E3", "E4"].map(member).to_vec(),
            vehicles: vec![
                info("G", 1, VehicleClass::Guaranteed),
                info("U", 2, VehicleClass::Uncontrolled),
                info("F", 3, VehicleClass::Uncontrolled),
            ],
            measured_load_w: 9_000,
            fixed: Vec::new(),
            group_capacity_w: 30_000,
            reserve_w: 0,
            unreserved: None,
        }
    }

    fn schedule() -> Schedule {
        let flex = |id: &str, wh| evflex_schedule::Flexibility {
            vehicle_id: id.to_owned(),
            shifted_wh: wh,
            value_micro_eur: wh * 10,
        };
        Schedule {
            mode: Mode::Lp,
            status: SolveStatus::Optimal,
            mip_gap: 0.0,
            vehicle_ids: vec!["G".into(), "U".into(), "F".into()],
            power_w: vec![
                vec![5_000; 4],
                vec![4_000, 11_000, 11_000, 11_000],
                vec![11_000, 0, 0, 0],
            ],
            battery_w: vec![0; 4],
            delivered_wh: vec![5_000, 9_250, 2_750],
            unmet_wh: vec![0; 3],
            grid_import_w: vec![20_000, 16_000, 16_000, 16_000],
            peak_w: 20_000,
            cost_micro_eur: 1,
            objective: 1.0,
            capacity_dual: vec![0.0; 4],
            capacity_binding: vec![false; 4],
            flexibility: vec![flex("G", 100), flex("U", 0), flex("F", 0)],
            build_ms: 1.0,
            solve_ms: 2.5,
            fallback_reason: None,
        }
    }

    fn rows(setpoints: &[SetpointRecord]) -> Vec<(i64, i64)> {
        setpoints
            .iter()
            .map(|s| (s.session_row, s.power_w))
            .collect()
    }

    #[test]
    fn profiles_go_to_controlled_and_curtailed_vehicles_only() {
        let (snap, schedule) = (snapshot(), schedule());
        let plan = plan(&snap, &schedule, &[], &SolveOptions::default(), STEP).unwrap();
        assert_eq!(rows(&plan.setpoints), vec![(1, 5_000), (2, 4_000)]);
        assert!(
            plan.setpoints
                .iter()
                .all(|s| s.group_id == 7 && s.timestep == TS as i64)
        );
        assert_eq!(
            plan.flexibility,
            vec![
                Flexibility {
                    session_row: 1,
                    shifted_wh: 100,
                    value_micro_eur: 1_000
                },
                Flexibility {
                    session_row: 2,
                    shifted_wh: 0,
                    value_micro_eur: 0
                },
                Flexibility {
                    session_row: 3,
                    shifted_wh: 0,
                    value_micro_eur: 0
                },
            ]
        );
        let GroupOutcome::Solved {
            setpoints,
            vehicles,
            inputs_hash,
            schedule_hash,
            ..
        } = &plan.outcome
        else {
            panic!("{:?}", plan.outcome);
        };
        assert_eq!((*setpoints, *vehicles), (2, 3));
        assert_eq!(*inputs_hash, plan.schedule.inputs_hash);
        assert_eq!(*schedule_hash, plan.status_commit.schedule_hash);
        assert_eq!(plan.schedule.status, "optimal");
        assert_eq!(
            (plan.schedule.planned_load_w, plan.schedule.created_at),
            (20_000, NOW)
        );
        // Member statuses: the set-point is the schedule's step 0; an empty EVSE shows zeros;
        // only controlled vehicles report their time left.
        let m = &plan.status_commit.members;
        assert_eq!(m.len(), 4);
        assert_eq!((m[0].setpoint_w, m[0].time_left_s), (5_000, 3_600));
        assert_eq!((m[1].setpoint_w, m[1].time_left_s), (4_000, 0));
        assert_eq!((m[3].session_id.as_deref(), m[3].setpoint_w), (None, 0));
        // Pure: the same inputs give the same plan.
        let again = super::plan(&snap, &schedule, &[], &SolveOptions::default(), STEP).unwrap();
        assert_eq!(again, plan);
    }

    #[test]
    fn a_vehicle_curtailed_at_the_previous_timestep_gets_its_profile_cleared() {
        let curtailed = evflex_schedule::profile::ocpi_charging_profile(
            &[4_000; 4],
            900,
            "2027-01-01T00:00:00Z",
            None,
        );
        let previous = SetpointRecord {
            group_id: 7,
            timestep: TS as i64 - 1,
            revision: 0,
            session_row: 3,
            session_id: "S3".to_owned(),
            owner_party: Some(1),
            power_w: 4_000,
            profile: serde_json::to_value(&curtailed).unwrap(),
        };
        let plan = plan(
            &snapshot(),
            &schedule(),
            &[previous],
            &SolveOptions::default(),
            STEP,
        )
        .unwrap();
        assert_eq!(
            rows(&plan.setpoints),
            vec![(1, 5_000), (2, 4_000), (3, 11_000)]
        );
        assert!(
            plan.setpoints[2].profile.is_null(),
            "a ClearProfile, not a made-up limit"
        );
    }

    #[test]
    fn milp_profiles_carry_the_minimum_rate() {
        let opts = SolveOptions {
            mode: Mode::Milp,
            ..SolveOptions::default()
        };
        let plan = plan(&snapshot(), &schedule(), &[], &opts, STEP).unwrap();
        let min_rate = |row: usize| {
            plan.setpoints[row]
                .profile
                .get("min_charging_rate")
                .cloned()
        };
        assert!(min_rate(0).is_some_and(|r| !r.is_null()));
        assert!(min_rate(1).is_none_or(|r| r.is_null()));
    }

    #[test]
    fn a_corrupt_previous_schedule_is_reported_not_dropped() {
        let good = plan(
            &snapshot(),
            &schedule(),
            &[],
            &SolveOptions::default(),
            STEP,
        )
        .unwrap()
        .schedule;
        assert_eq!(previous_schedule(&good).unwrap(), schedule());
        let corrupt = ScheduleRecord {
            schedule: serde_json::json!({"power_w": "not a schedule"}),
            ..good
        };
        let err = previous_schedule(&corrupt).unwrap_err();
        assert!(
            matches!(
                err,
                TickError::CorruptSchedule { group_id: 7, timestep, .. } if timestep == TS as i64
            ),
            "{err:?}"
        );
        assert!(err.to_string().starts_with(&format!(
            "stored schedule of group 7 at timestep {TS} cannot be decoded"
        )));
    }
}
