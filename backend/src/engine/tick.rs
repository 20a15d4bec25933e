//! The 15-minute tick: snapshot each group, solve all groups in parallel (bounded by cores),
//! store each group's schedule, set-points, flexibility and its `status_commit` chain work in
//! one transaction, then send the set-points.
//!
//! Per-group failures (bad data, solver error, a failed commit) are logged with the group and
//! the reason and do not affect other groups; a failed group writes nothing for the timestep
//! and keeps its last valid schedule (the CPO keeps the profile it last received). A group that
//! already has a schedule for the timestep is skipped, so a tick can be re-run safely.
//!
//! # Replicas
//!
//! Several `evflex serve` replicas on one PostgreSQL database all run the same tick. Each group
//! is ticked inside one transaction that first locks the group's lease row
//! (`SELECT … FOR UPDATE SKIP LOCKED`, see [`crate::store::leases`]) and keeps it through the
//! snapshot, the solve and the writes until `COMMIT`:
//!
//! - a group whose lease another replica holds is skipped at once ([`SkipReason::Held`]); once
//!   this replica's own groups are done, those groups are tried once more, so a group whose
//!   holder died mid-tick (its transaction aborted, its lock released) is taken over;
//! - a group already committed for the timestep is skipped ([`SkipReason::Committed`], naming
//!   the replica that committed it);
//! - the `schedules` primary key stays the last guard: a second insert of (group, timestep) is a
//!   no-op and the group is reported as committed.
//!
//! So every (group, timestep) is solved and committed by exactly one replica, and the replicas
//! share the solving work. A group holds one database connection from its lease to its commit;
//! lease transactions are bounded by the solve slots (cores), so they never take the whole pool
//! (size the pool above the core count). On SQLite (one process, single writer) there are no row
//! locks: the group is read and solved without a transaction and the lease degenerates to the
//! commit transaction, as before.
//!
//! # Without a chain (`--no-chain`)
//!
//! The `status_commit` chain work (SC2) is enqueued only when a chain is configured. Nothing
//! drains the outbox without one, so a service that never has a chain would otherwise grow
//! `chain_outbox` by one row per group per quarter hour (96 per group and day) for nothing. A
//! configured chain that is unreachable is different: its commits are enqueued and form a
//! backlog the writer drains once the chain answers. Hence `evflex audit`/`verify` and the
//! audit API cover only ticks run with a chain configured; ticks run with `--no-chain` are
//! stored (`schedules`) but never committed on chain, and starting later with a chain does not
//! backfill them (their member statuses are not kept anywhere else).

use super::snapshot::{self, Control, GroupSnapshot};
use crate::app::AppState;
use crate::domain::{format_rfc3339, step_start};
use crate::store::leases::{self, Lease};
use crate::store::outbox;
use crate::store::schedules::{self, ScheduleRecord, SetpointRecord};
use crate::store::{Backend, Conn, StoreError, Tx, groups, sessions};
use evflex_chain::work::{ChainWork, MemberSnapshot, StatusCommitWork};
use evflex_schedule::{Schedule, SolveStatus, hash};
use serde::Serialize;
use std::collections::HashSet;
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
    /// Not ticked by this replica: a schedule for this timestep was already stored, or another
    /// replica holds the group's lease (see [`GroupReport::skip`]).
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
    /// Why the group was skipped (`Some` exactly when `outcome` is `Skipped`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skip: Option<SkipReason>,
}

/// Why a tick skipped a group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum SkipReason {
    /// Another transaction holds the group's lease: another replica (or another tick of this
    /// one) is solving the group right now.
    Held,
    /// The schedule of this (group, timestep) is already committed.
    Committed {
        /// The replica that committed it, when the group's lease still records it (`None` when
        /// a later timestep was committed since).
        by: Option<String>,
    },
}

/// The result of one tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickReport {
    /// The timestep ticked.
    pub timestep: u64,
    /// The replica that ran the tick ([`crate::engine::replica_id`]).
    pub replica: String,
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

    /// Groups skipped because another replica held their lease (it was solving them).
    pub fn held_elsewhere(&self) -> Vec<i64> {
        self.groups
            .iter()
            .filter(|g| g.skip == Some(SkipReason::Held))
            .map(|g| g.group_id)
            .collect()
    }

    /// Groups skipped because another replica had committed them for this timestep.
    pub fn committed_elsewhere(&self) -> Vec<i64> {
        self.groups
            .iter()
            .filter(|g| match &g.skip {
                Some(SkipReason::Committed { by: Some(by) }) => *by != self.replica,
                _ => false,
            })
            .map(|g| g.group_id)
            .collect()
    }
}

/// Runs one tick for absolute `timestep` (Unix seconds / 900): the "run one step" entry point
/// used by the wall-clock loop, the tests and the demo's simulated clock.
#[tracing::instrument(skip_all, fields(timestep))]
pub async fn run_tick(state: &AppState, timestep: u64) -> TickReport {
    let started = Instant::now();
    let group_ids = match list_groups(state).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = ?e, "tick: cannot list groups");
            Vec::new()
        }
    };
    let mut reports = tick_groups(state, group_ids, timestep).await;
    // Groups another replica held: try once more now that this replica's own work is done. A
    // holder that died mid-tick has released its lock, and the group is taken over here.
    let held: Vec<i64> = reports
        .iter()
        .filter(|r| r.skip == Some(SkipReason::Held))
        .map(|r| r.group_id)
        .collect();
    if !held.is_empty() {
        for retried in tick_groups(state, held, timestep).await {
            if let Some(r) = reports.iter_mut().find(|r| r.group_id == retried.group_id) {
                *r = retried;
            }
        }
    }
    for r in &reports {
        let outcome = match (&r.outcome, &r.skip) {
            (GroupOutcome::Solved { .. }, _) => "solved",
            (GroupOutcome::Skipped, Some(SkipReason::Held)) => "held",
            (GroupOutcome::Skipped, _) => "skipped",
            (GroupOutcome::Failed { .. }, _) => "failed",
        };
        metrics::counter!("evflex_tick_groups_total", "outcome" => outcome).increment(1);
    }
    let delivery = super::setpoints::deliver_pending(state).await;
    let elapsed = started.elapsed();
    metrics::histogram!("evflex_tick_duration_seconds").record(elapsed.as_secs_f64());
    metrics::counter!("evflex_ticks_total").increment(1);
    let report = TickReport {
        timestep,
        replica: state.replica.to_string(),
        groups: reports,
        delivery,
        duration_ms: elapsed.as_secs_f64() * 1e3,
    };
    tracing::info!(
        timestep,
        solved = report.solved(),
        failed = report.failed(),
        held_elsewhere = ?report.held_elsewhere(),
        committed_elsewhere = ?report.committed_elsewhere(),
        replica = %report.replica,
        duration_ms = report.duration_ms,
        "tick done"
    );
    state.events.tick(&report);
    report
}

/// Lists the groups to tick and makes sure each has its lease row (in autocommit, before any
/// lease transaction).
async fn list_groups(state: &AppState) -> Result<Vec<i64>, StoreError> {
    let mut conn = state.db.conn().await?;
    let ids = groups::list_ids(&mut conn).await?;
    leases::ensure_all(&mut conn).await?;
    Ok(ids)
}

/// Ticks `group_ids` in parallel; the reports sorted by group id.
async fn tick_groups(state: &AppState, group_ids: Vec<i64>, timestep: u64) -> Vec<GroupReport> {
    let mut set = JoinSet::new();
    for group_id in group_ids {
        let state = state.clone();
        set.spawn(async move {
            let (outcome, skip) = match tick_group(&state, group_id, timestep).await {
                Ok(Ticked::Solved(outcome)) => (outcome, None),
                Ok(Ticked::Skipped(reason)) => (GroupOutcome::Skipped, Some(reason)),
                Err(reason) => {
                    tracing::warn!(group_id, timestep, %reason, "tick: group failed");
                    (GroupOutcome::Failed { reason }, None)
                }
            };
            GroupReport {
                group_id,
                outcome,
                skip,
            }
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
    reports
}

fn hex32(bytes: &[u8; 32]) -> String {
    format!("0x{}", hex::encode(bytes))
}

/// What [`tick_group`] did (its `Err` is a failure with the reason for the log).
enum Ticked {
    Solved(GroupOutcome),
    Skipped(SkipReason),
}

/// The replica that committed (group, `timestep`), as the lease records it.
fn committed_by(lease: Option<Lease>, timestep: i64) -> SkipReason {
    SkipReason::Committed {
        by: lease
            .filter(|l| l.timestep == timestep && !l.holder.is_empty())
            .map(|l| l.holder),
    }
}

/// The group's snapshot and last valid schedule, or why it is skipped (already committed).
async fn read_inputs(
    state: &AppState,
    conn: &mut Conn,
    group_id: i64,
    timestep: u64,
) -> Result<Result<(GroupSnapshot, Option<Schedule>), SkipReason>, String> {
    let db_err = |e: StoreError| format!("database: {e:?}");
    let ts = timestep as i64;
    if schedules::exists(conn, group_id, ts)
        .await
        .map_err(db_err)?
    {
        let lease = leases::get(conn, group_id).await.map_err(db_err)?;
        return Ok(Err(committed_by(lease, ts)));
    }
    let group = groups::get(conn, group_id)
        .await
        .map_err(db_err)?
        .ok_or_else(|| "group disappeared".to_owned())?;
    let snap = snapshot::snapshot(conn, &state.engine, &group, timestep)
        .await
        .map_err(db_err)?;
    let previous = schedules::latest_before(conn, group_id, ts)
        .await
        .map_err(db_err)?
        .and_then(|s| serde_json::from_value::<Schedule>(s.schedule).ok());
    Ok(Ok((snap, previous)))
}

/// Lease, snapshot, solve, commit for one group. `Err` carries the reason for the log.
///
/// PostgreSQL: one transaction from the lease to the commit (see the module docs). SQLite: the
/// snapshot and the solve run outside any transaction (its single connection must stay free for
/// ingestion while the solver runs) and the commit transaction is the lease.
async fn tick_group(state: &AppState, group_id: i64, timestep: u64) -> Result<Ticked, String> {
    let db_err = |e: StoreError| format!("database: {e:?}");
    let backend = state.db.backend();
    let ts = timestep as i64;
    let slot = || async move {
        state
            .solve_slots
            .acquire()
            .await
            .map_err(|e| format!("solve slots: {e}"))
    };
    // PostgreSQL: the solve slot is taken before the lease, so open lease transactions (and the
    // connections they hold) never outnumber the slots. SQLite: only around the solve.
    let mut permit = None;
    let mut lease_tx: Option<Tx> = None;
    let inputs = if backend == Backend::Postgres {
        permit = Some(slot().await?);
        let tx = lease_tx.insert(state.db.begin().await.map_err(db_err)?);
        if leases::try_claim(tx, backend, group_id)
            .await
            .map_err(db_err)?
            .is_none()
        {
            return Ok(Ticked::Skipped(SkipReason::Held));
        }
        read_inputs(state, tx, group_id, timestep).await
    } else {
        let mut conn = state.db.conn().await.map_err(db_err)?;
        read_inputs(state, &mut conn, group_id, timestep).await
    };
    let (snap, previous) = match inputs? {
        Ok(inputs) => inputs,
        Err(skip) => return Ok(Ticked::Skipped(skip)),
    };

    let opts = state.engine.solve_options();
    let schedule = {
        if permit.is_none() {
            permit = Some(slot().await?);
        }
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
    if lease_tx.is_none() {
        drop(permit.take());
    }

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

    let mut tx = match lease_tx {
        Some(tx) => tx,
        None => {
            let mut tx = state.db.begin().await.map_err(db_err)?;
            // SQLite: a plain read, the transaction itself is the lease.
            leases::try_claim(&mut tx, backend, group_id)
                .await
                .map_err(db_err)?;
            tx
        }
    };
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
        let lease = leases::get(&mut tx, group_id).await.map_err(db_err)?;
        return Ok(Ticked::Skipped(committed_by(lease, ts)));
    }

    // Uncontrolled sessions curtailed at the previous timestep: lifted once when no longer
    // curtailed (see `uncontrolled_setpoint`).
    let curtailed_before: HashSet<i64> =
        match schedules::latest_before(&mut tx, group_id, timestep as i64)
            .await
            .map_err(db_err)?
        {
            Some(p) => schedules::setpoints_of(&mut tx, group_id, p.timestep)
                .await
                .map_err(db_err)?
                .into_iter()
                .filter(|s| {
                    limits_below_max(
                        &s.record.profile,
                        &snap.inputs,
                        s.record.session_row,
                        &snap.vehicles,
                    )
                })
                .map(|s| s.record.session_row)
                .collect(),
            None => HashSet::new(),
        };
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
        let (limits, min_rate) = if v.control == Control::Uncontrolled {
            match uncontrolled_setpoint(
                &snap.inputs,
                &v.vehicle_id,
                row,
                curtailed_before.contains(&v.session_row),
            ) {
                Some(limits) => (limits, None),
                None => continue,
            }
        } else {
            let min_rate = (opts.mode == evflex_schedule::Mode::Milp).then_some(v.min_power_w);
            (row.clone(), min_rate)
        };
        let profile = evflex_schedule::profile::ocpi_charging_profile(
            &limits,
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
            power_w: limits.first().copied().unwrap_or(0),
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
                    .filter(|v| v.control != Control::Uncontrolled)
                    .map_or(0, |v| (v.departure_ts - t0).max(0)),
            }
        })
        .collect();
    let payload = StatusCommitWork {
        group_id,
        timestep: timestep as i64,
        time_step_s: i64::from(snap.inputs.time_step_s),
        inputs_hash: inputs_hash.clone(),
        schedule_hash: schedule_hash.clone(),
        algorithm_version,
        members,
    };
    // Chain work only with a chain (the "no chain configured" policy of `evflex_chain::work`).
    let work = ChainWork::StatusCommit(payload);
    if work.wanted(state.chain.is_some()) {
        let key = format!("status_commit:{group_id}:{timestep}");
        outbox::enqueue(&mut tx, &key, &work, now)
            .await
            .map_err(db_err)?;
    }
    leases::record(&mut tx, group_id, &state.replica, ts, now)
        .await
        .map_err(db_err)?;

    if state.faults.fails_before_commit(group_id) {
        // Dropping `tx` rolls everything of this group back, as a crash here would.
        return Err("injected fault at the commit boundary".to_owned());
    }
    tx.commit().await.map_err(|e| format!("commit: {e}"))?;
    metrics::counter!("evflex_groups_solved_total").increment(1);
    Ok(Ticked::Solved(GroupOutcome::Solved {
        status: schedule.status,
        vehicles: snap.vehicles.len(),
        setpoints,
        inputs_hash,
        schedule_hash,
        solve_ms: schedule.solve_ms,
    }))
}

/// The limits sent to an uncontrolled session (a user who did not opt in), or `None` for no
/// profile. Such a car charges as fast as possible, but an accepted guarantee outranks it
/// (`backend/schedule/DESIGN.md`): where the schedule curtails it, it gets a profile with the
/// planned power in the curtailed steps and its maximum elsewhere
/// ([`evflex_schedule::profile::uncontrolled_limits`]); a car curtailed at the previous
/// timestep and no longer curtailed gets one profile at its maximum, lifting the limit. Cars
/// that are never curtailed get no profile.
fn uncontrolled_setpoint(
    inputs: &evflex_schedule::GroupInputs,
    vehicle_id: &str,
    row: &[i64],
    curtailed_before: bool,
) -> Option<Vec<i64>> {
    let vehicle = inputs.vehicles.iter().find(|x| x.id == vehicle_id)?;
    match evflex_schedule::profile::uncontrolled_limits(vehicle, row, inputs.time_step_s) {
        Some(limits) => Some(limits),
        None if curtailed_before => Some(vec![vehicle.max_power_w; row.len()]),
        None => None,
    }
}

/// Whether a stored OCPI profile of an uncontrolled session limits it below its maximum power
/// in some period.
fn limits_below_max(
    profile: &serde_json::Value,
    inputs: &evflex_schedule::GroupInputs,
    session_row: i64,
    vehicles: &[snapshot::VehicleInfo],
) -> bool {
    let Some(max_w) = vehicles
        .iter()
        .find(|v| v.session_row == session_row && v.control == Control::Uncontrolled)
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
