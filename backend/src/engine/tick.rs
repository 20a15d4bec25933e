//! The 15-minute tick: snapshot each group, solve all groups in parallel (bounded by cores),
//! store each group's schedule, set-points, flexibility and its `status_commit` chain work in
//! one transaction, then send the set-points.
//!
//! Per-group failures (bad data, solver error, a failed commit) are logged with the group and
//! the reason and do not affect other groups; a failed group writes nothing for the timestep
//! and keeps its last valid schedule (the CPO keeps the profile it last received). A group that
//! already has a schedule for the timestep is skipped, so a tick can be re-run safely.

use super::snapshot::{self, Control, GroupSnapshot};
use crate::app::AppState;
use crate::domain::{format_rfc3339, step_start};
use crate::store::outbox::{self, MemberStatus, StatusCommitPayload};
use crate::store::schedules::{self, ScheduleRecord, SetpointRecord};
use crate::store::{groups, sessions};
use evflex_schedule::{Schedule, SolveStatus, hash};
use serde::Serialize;
use std::time::Instant;
use tokio::task::JoinSet;

/// What happened to one group in a tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GroupOutcome {
    /// Solved and stored.
    Solved {
        /// Solve status.
        status: SolveStatus,
        /// Vehicles in the group.
        vehicles: usize,
        /// Set-points queued for the CPO.
        setpoints: usize,
        /// Inputs hash (`0x`-hex).
        inputs_hash: String,
        /// Schedule hash (`0x`-hex).
        schedule_hash: String,
        /// Time in the solver (ms).
        solve_ms: f64,
    },
    /// A schedule for this timestep was already stored.
    Skipped,
    /// The group failed; nothing was stored for it.
    Failed {
        /// Why.
        reason: String,
    },
}

/// One group's line in a tick report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupReport {
    /// Group id.
    pub group_id: i64,
    /// Outcome.
    #[serde(flatten)]
    pub outcome: GroupOutcome,
}

/// The result of one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickReport {
    /// The timestep ticked.
    pub timestep: u64,
    /// Every group, by id.
    pub groups: Vec<GroupReport>,
    /// Set-point delivery after the commit.
    pub delivery: super::setpoints::DeliveryReport,
    /// Wall time of the tick (ms).
    pub duration_ms: f64,
}

impl TickReport {
    /// Groups solved and stored in this tick.
    pub fn solved(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| matches!(g.outcome, GroupOutcome::Solved { .. }))
            .count()
    }

    /// Groups that failed in this tick.
    pub fn failed(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| matches!(g.outcome, GroupOutcome::Failed { .. }))
            .count()
    }
}

/// Runs one tick for absolute `timestep` (Unix seconds / 900): the "run one step" entry point
/// used by the wall-clock loop, the tests and the demo's simulated clock.
#[tracing::instrument(skip_all, fields(timestep))]
pub async fn run_tick(state: &AppState, timestep: u64) -> TickReport {
    let started = Instant::now();
    let group_ids = match state.db.conn().await {
        Ok(mut conn) => groups::list_ids(&mut conn).await,
        Err(e) => Err(e),
    };
    let group_ids = match group_ids {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = ?e, "tick: cannot list groups");
            Vec::new()
        }
    };
    let mut set = JoinSet::new();
    for group_id in group_ids {
        let state = state.clone();
        set.spawn(async move {
            let outcome = match tick_group(&state, group_id, timestep).await {
                Ok(outcome) => outcome,
                Err(reason) => {
                    tracing::warn!(group_id, timestep, %reason, "tick: group failed");
                    GroupOutcome::Failed { reason }
                }
            };
            GroupReport { group_id, outcome }
        });
    }
    let mut reports = Vec::new();
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok(report) => reports.push(report),
            Err(e) => tracing::error!(error = %e, "tick: group task panicked"),
        }
    }
    reports.sort_by_key(|r| r.group_id);
    for r in &reports {
        let outcome = match r.outcome {
            GroupOutcome::Solved { .. } => "solved",
            GroupOutcome::Skipped => "skipped",
            GroupOutcome::Failed { .. } => "failed",
        };
        metrics::counter!("evflex_tick_groups_total", "outcome" => outcome).increment(1);
    }
    let delivery = super::setpoints::deliver_pending(state).await;
    let elapsed = started.elapsed();
    metrics::histogram!("evflex_tick_duration_seconds").record(elapsed.as_secs_f64());
    metrics::counter!("evflex_ticks_total").increment(1);
    let report = TickReport {
        timestep,
        groups: reports,
        delivery,
        duration_ms: elapsed.as_secs_f64() * 1e3,
    };
    tracing::info!(
        timestep,
        solved = report.solved(),
        failed = report.failed(),
        duration_ms = report.duration_ms,
        "tick done"
    );
    report
}

fn hex32(bytes: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// Snapshot, solve, commit for one group. `Err` carries the reason for the log.
async fn tick_group(
    state: &AppState,
    group_id: i64,
    timestep: u64,
) -> Result<GroupOutcome, String> {
    let db_err = |e: crate::store::StoreError| format!("database: {e:?}");
    let (snap, previous): (GroupSnapshot, Option<Schedule>) = {
        let mut conn = state.db.conn().await.map_err(db_err)?;
        if schedules::exists(&mut conn, group_id, timestep as i64)
            .await
            .map_err(db_err)?
        {
            return Ok(GroupOutcome::Skipped);
        }
        let group = groups::get(&mut conn, group_id)
            .await
            .map_err(db_err)?
            .ok_or_else(|| "group disappeared".to_owned())?;
        let snap = snapshot::snapshot(&mut conn, &state.engine, &group, timestep)
            .await
            .map_err(db_err)?;
        let previous = schedules::latest_before(&mut conn, group_id, timestep as i64)
            .await
            .map_err(db_err)?
            .and_then(|s| serde_json::from_value::<Schedule>(s.schedule).ok());
        (snap, previous)
    };

    let opts = state.engine.solve_options();
    let schedule = {
        let _permit = state
            .solve_slots
            .acquire()
            .await
            .map_err(|e| e.to_string())?;
        let inputs = snap.inputs.clone();
        let opts = opts.clone();
        let started = Instant::now();
        let result = tokio::task::spawn_blocking(move || {
            evflex_schedule::solve(&inputs, &opts, previous.as_ref())
        })
        .await
        .map_err(|e| format!("solver task: {e}"))?;
        metrics::histogram!("evflex_solver_seconds").record(started.elapsed().as_secs_f64());
        result.map_err(|e| format!("solver: {e}"))?
    };

    let inputs_hash = hex32(&hash::inputs_hash(&snap.inputs));
    let schedule_hash = hex32(&hash::schedule_hash(&schedule));
    let algorithm_version = hex32(&hash::algorithm_version(&opts));
    let now = state.clock.now();
    let t0 = step_start(timestep, snap.inputs.time_step_s);
    let row_of = |vehicle_id: &str| {
        schedule
            .vehicle_ids
            .iter()
            .position(|v| v == vehicle_id)
            .map(|i| &schedule.power_w[i])
    };

    let mut tx = state.db.begin().await.map_err(db_err)?;
    let record = ScheduleRecord {
        group_id,
        timestep: timestep as i64,
        time_step_s: i64::from(snap.inputs.time_step_s),
        status: serde_json::to_value(schedule.status)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        algorithm_version: algorithm_version.clone(),
        inputs: serde_json::to_value(&snap.inputs).map_err(|e| e.to_string())?,
        schedule: serde_json::to_value(&schedule).map_err(|e| e.to_string())?,
        members: serde_json::to_value(&snap.vehicles).map_err(|e| e.to_string())?,
        capacity_w: snap.inputs.capacity_w.first().copied().unwrap_or(0),
        planned_load_w: schedule.grid_import_w.first().copied().unwrap_or(0),
        measured_load_w: snap.measured_load_w,
        pv_w: snap.inputs.pv_w.first().copied().unwrap_or(0),
        created_at: now,
    };
    if !schedules::insert(&mut tx, &record).await.map_err(db_err)? {
        return Ok(GroupOutcome::Skipped);
    }

    let mut setpoints = 0;
    for v in &snap.vehicles {
        let Some(row) = row_of(&v.vehicle_id) else {
            continue;
        };
        if let Some(i) = schedule
            .vehicle_ids
            .iter()
            .position(|id| id == &v.vehicle_id)
            && let Some(f) = schedule.flexibility.get(i)
        {
            sessions::set_flexibility(&mut tx, v.session_row, f.shifted_wh, f.value_micro_eur)
                .await
                .map_err(db_err)?;
        }
        if v.control == Control::Uncontrolled {
            continue;
        }
        let min_rate = (opts.mode == evflex_schedule::Mode::Milp).then_some(v.min_power_w);
        let profile = evflex_schedule::profile::ocpi_charging_profile(
            row,
            snap.inputs.time_step_s,
            &format_rfc3339(t0),
            min_rate,
        );
        let sp = SetpointRecord {
            group_id,
            timestep: timestep as i64,
            session_row: v.session_row,
            session_id: v.session_id.clone(),
            owner_party: v.owner_party,
            power_w: row.first().copied().unwrap_or(0),
            profile: serde_json::to_value(&profile).map_err(|e| e.to_string())?,
        };
        schedules::insert_setpoint(&mut tx, &sp, now)
            .await
            .map_err(db_err)?;
        setpoints += 1;
    }

    let members = snap
        .members
        .iter()
        .map(|m| {
            let vehicle = snap.vehicles.iter().find(|v| v.evse_uid == m.evse_uid);
            MemberStatus {
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
                    .filter(|v| v.control != Control::Uncontrolled)
                    .map_or(0, |v| (v.departure_ts - t0).max(0)),
            }
        })
        .collect();
    let payload = StatusCommitPayload {
        group_id,
        timestep: timestep as i64,
        time_step_s: i64::from(snap.inputs.time_step_s),
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        algorithm_version,
        members,
    };
    let key = format!("status_commit:{group_id}:{timestep}");
    outbox::enqueue(&mut tx, outbox::kind::STATUS_COMMIT, &key, &payload, now)
        .await
        .map_err(db_err)?;

    if state.faults.fails_before_commit(group_id) {
        // Dropping `tx` rolls everything of this group back, as a crash here would.
        return Err("injected fault at the commit boundary".to_owned());
    }
    tx.commit().await.map_err(|e| format!("commit: {e}"))?;
    metrics::counter!("evflex_groups_solved_total").increment(1);
    Ok(GroupOutcome::Solved {
        status: schedule.status,
        vehicles: snap.vehicles.len(),
        setpoints,
        inputs_hash,
        schedule_hash,
        solve_ms: schedule.solve_ms,
    })
}
