//! The 15-minute tick: snapshot each group, solve all groups in parallel (bounded by cores),
//! store each group's schedule, set-points, flexibility and its `status_commit` chain work in
//! one transaction, then send the set-points.
//!
//! One group's tick (`tick_group`) is four steps: claim the group (`Claim`), read its inputs,
//! solve, then `commit` the rows that the pure [`super::plan::plan`] derives from the solved
//! schedule, in the group's transaction. A previous schedule that cannot be decoded is logged
//! at error level and counted (`evflex_tick_corrupt_schedules_total`), and the group is planned
//! without it.
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
//! lease transactions are bounded by the plan slots (`--parallel-plans`: three per core, at most
//! half the pool), so they never take the whole pool. On SQLite (one process, single writer) there are no row
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

use super::plan::{self, Plan, Step};
use super::report::{GroupOutcome, GroupReport, SkipReason, TickReport};
use super::snapshot::{self, GroupSnapshot};
use super::{Engine, TickError};
use crate::store::leases::{self, Lease};
use crate::store::outbox;
use crate::store::schedules::{self, ScheduleRecord, SetpointKind, SetpointRecord};
use crate::store::{Backend, Conn, StoreError, Tx, groups, replans, sessions};
use evflex_chain::work::ChainWork;
use evflex_schedule::{GroupInputs, Schedule, SolveOptions};
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;
use tokio::task::JoinSet;
use tracing::Instrument;

/// Runs one tick for absolute `timestep` (Unix seconds / 900): the "run one step" entry point
/// used by the wall-clock loop, the tests and the demo's simulated clock.
#[tracing::instrument(skip_all, fields(timestep))]
pub async fn run_tick(engine: &Engine, timestep: u64) -> TickReport {
    let started = Instant::now();
    let group_ids = match list_groups(engine).await {
        Ok(ids) => ids,
        Err(e) => {
            tracing::error!(error = ?e, "tick: cannot list groups");
            Vec::new()
        }
    };
    let mut reports = tick_groups(engine, group_ids, timestep).await;
    // Groups another replica held: try once more now that this replica's own work is done. A
    // holder that died mid-tick has released its lock, and the group is taken over here.
    let held: Vec<i64> = reports
        .iter()
        .filter(|r| r.skip == Some(SkipReason::Held))
        .map(|r| r.group_id)
        .collect();
    if !held.is_empty() {
        for retried in tick_groups(engine, held, timestep).await {
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
    let delivery = super::setpoints::deliver_pending(engine).await;
    let tokens = super::tokens::push_pending(engine).await;
    let elapsed = started.elapsed();
    metrics::histogram!("evflex_tick_duration_seconds").record(elapsed.as_secs_f64());
    metrics::counter!("evflex_ticks_total").increment(1);
    let report = TickReport {
        timestep,
        replica: engine.replica.to_string(),
        groups: reports,
        delivery,
        tokens,
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
    engine.events.tick(
        report.timestep,
        report
            .groups
            .iter()
            .filter(|g| matches!(g.outcome, GroupOutcome::Solved { .. }))
            .map(|g| g.group_id),
    );
    report
}

/// Lists the groups to tick and makes sure each has its lease row (in autocommit, before any
/// lease transaction).
async fn list_groups(engine: &Engine) -> Result<Vec<i64>, StoreError> {
    let mut conn = engine.db.conn().await?;
    let ids = groups::list_ids(&mut conn).await?;
    leases::ensure_all(&mut conn).await?;
    Ok(ids)
}

/// Ticks `group_ids` in parallel; the reports sorted by group id.
async fn tick_groups(engine: &Engine, group_ids: Vec<i64>, timestep: u64) -> Vec<GroupReport> {
    let mut set = JoinSet::new();
    for group_id in group_ids {
        let engine = engine.clone();
        set.spawn(async move {
            let (outcome, skip) = match tick_group(&engine, group_id, timestep).await {
                Ok(Ticked::Solved(outcome)) => (outcome, None),
                Ok(Ticked::Skipped(reason)) => (GroupOutcome::Skipped, Some(reason)),
                Err(e) => {
                    let reason = e.to_string();
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

/// What [`plan_group`] did (its `Err` is a failure, reported with its text).
pub(super) enum Ticked {
    Solved(GroupOutcome),
    Skipped(SkipReason),
}

/// Why a group is planned: the quarter-hour tick (revision 0 of the timestep, once), or events
/// waiting for it (`engine::replan`: the next revision of the timestep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Trigger {
    /// The timestep's tick.
    Tick,
    /// Events recorded in `replan_requests`.
    Event,
}

/// The tick of one group.
async fn tick_group(engine: &Engine, group_id: i64, timestep: u64) -> Result<Ticked, TickError> {
    plan_group(engine, group_id, timestep, Trigger::Tick).await
}

/// Claim, read, solve, plan, commit for one group.
///
/// PostgreSQL: one transaction from the lease to the commit (see the module docs). SQLite: the
/// snapshot and the solve run outside any transaction (its single connection must stay free for
/// ingestion while the solver runs) and the commit transaction is the lease.
#[tracing::instrument(level = "debug", skip_all, fields(group_id))]
pub(super) async fn plan_group(
    engine: &Engine,
    group_id: i64,
    timestep: u64,
    trigger: Trigger,
) -> Result<Ticked, TickError> {
    let Some(mut claim) = Claim::take(engine, group_id)
        .instrument(tracing::debug_span!("claim"))
        .await?
    else {
        return Ok(Ticked::Skipped(SkipReason::Held));
    };
    let inputs = match claim
        .read_inputs(engine, group_id, timestep, trigger)
        .await?
    {
        Read::Inputs(inputs) => inputs,
        Read::Skip(skip) => return Ok(Ticked::Skipped(skip)),
    };
    let opts = engine.solve_options();
    let mut inputs = inputs;
    let mut schedule = claim.solve(engine, &inputs, &opts).await?;
    // The arrival reserve yields to accepted guarantees: a plan that leaves one short with the
    // reserve is made again without it, and kept when that leaves less short. (A charge point
    // freed in a capacity cut raised the reserve and broke guarantees admitted before it.)
    let short = accepted_shortfall_wh(&inputs.snapshot.inputs, &schedule);
    if short > evflex_schedule::ENERGY_TOLERANCE_WH {
        let mut without = inputs.snapshot.clone();
        if without.give_back_reserve() {
            let with = std::mem::replace(&mut inputs.snapshot, without);
            let again = claim.solve(engine, &inputs, &opts).await?;
            if accepted_shortfall_wh(&inputs.snapshot.inputs, &again) < short {
                tracing::info!(
                    group = group_id,
                    short_wh = short,
                    reserve_w = with.reserve_w,
                    "tick: the arrival reserve yields to accepted guarantees"
                );
                schedule = again;
            } else {
                inputs.snapshot = with;
            }
        }
    }
    let step = Step {
        group_id,
        timestep,
        revision: inputs.revision,
        now: engine.clock.now(),
    };
    let plan = plan::plan(
        &inputs.snapshot,
        &schedule,
        &inputs.previous_setpoints,
        &opts,
        step,
    )?;
    let tx = claim.transaction(engine, group_id).await?;
    match commit(engine, tx, &plan, inputs.replan_seq).await? {
        Committed::Stored => {
            metrics::counter!("evflex_groups_solved_total").increment(1);
            Ok(Ticked::Solved(plan.outcome))
        }
        Committed::Already(skip) => Ok(Ticked::Skipped(skip)),
    }
}

/// The energy (Wh) `schedule` leaves the accepted vehicles of `inputs` short by departure.
fn accepted_shortfall_wh(inputs: &GroupInputs, schedule: &Schedule) -> i64 {
    schedule
        .vehicle_ids
        .iter()
        .zip(&schedule.unmet_wh)
        .filter(|(id, _)| {
            inputs
                .vehicles
                .iter()
                .any(|v| v.id == **id && v.class == evflex_schedule::VehicleClass::Guaranteed)
        })
        .map(|(_, unmet)| (*unmet).max(0))
        .sum()
}

/// This replica's claim on one group for one tick.
///
/// PostgreSQL: a plan slot, then a transaction holding the group's lease row lock, both kept
/// until the commit; the slot is taken first so open lease transactions (and the connections
/// they hold) never outnumber the plan slots. SQLite: nothing until the commit, whose
/// transaction is the lease. On both, a solve slot only around the solve: a re-plan mostly
/// waits on the database, and holding a core's slot through its reads and its commit left the
/// cores idle (a burst over 250 groups: p99 2.2 s with the solve slots held, 1.8 s without).
struct Claim {
    tx: Option<Tx>,
    /// The plan slot (PostgreSQL), released when the claim is dropped after the commit.
    _plan_slot: Option<OwnedSemaphorePermit>,
}

/// What a claimed group's reads found.
enum Read {
    /// The inputs to plan from (boxed: the snapshot is large).
    Inputs(Box<Inputs>),
    /// Nothing to plan: the tick's (group, timestep) is already committed, or no event waits.
    Skip(SkipReason),
}

/// A group's inputs for one timestep.
struct Inputs {
    /// The revision this plan will be.
    revision: i64,
    /// The `seq` of the group's waiting re-plan request when it was read: the commit clears the
    /// request if no event came in since (`store::replans`).
    replan_seq: Option<i64>,
    snapshot: GroupSnapshot,
    /// The last valid schedule before this plan (the optimiser's previous plan).
    previous: Option<Schedule>,
    /// The set-points of the last stored schedule before this one.
    previous_setpoints: Vec<SetpointRecord>,
}

impl Claim {
    /// Claims `group_id`; `None` when another transaction holds its lease (PostgreSQL only).
    async fn take(engine: &Engine, group_id: i64) -> Result<Option<Claim>, TickError> {
        if engine.db.backend() != Backend::Postgres {
            return Ok(Some(Claim {
                tx: None,
                _plan_slot: None,
            }));
        }
        let slot = engine.plan_slots.clone().acquire_owned().await?;
        let mut tx = engine.db.begin().await?;
        if leases::try_claim(&mut tx, Backend::Postgres, group_id)
            .await?
            .is_none()
        {
            return Ok(None);
        }
        Ok(Some(Claim {
            tx: Some(tx),
            _plan_slot: Some(slot),
        }))
    }

    /// Reads the group's inputs in the lease transaction (PostgreSQL) or on a connection of its
    /// own (SQLite).
    async fn read_inputs(
        &mut self,
        engine: &Engine,
        group_id: i64,
        timestep: u64,
        trigger: Trigger,
    ) -> Result<Read, TickError> {
        match &mut self.tx {
            Some(tx) => read_inputs(engine, tx, group_id, timestep, trigger).await,
            None => {
                let mut conn = engine.db.conn().await?;
                read_inputs(engine, &mut conn, group_id, timestep, trigger).await
            }
        }
    }

    /// Solves the group in a solve slot taken for the solve alone.
    async fn solve(
        &mut self,
        engine: &Engine,
        inputs: &Inputs,
        opts: &SolveOptions,
    ) -> Result<Schedule, TickError> {
        let _solving = engine.solve_slots.clone().acquire_owned().await?;
        solve(
            inputs.snapshot.inputs.clone(),
            opts.clone(),
            inputs.previous.clone(),
        )
        .await
    }

    /// The transaction to commit in: the lease transaction (PostgreSQL), or a new one that
    /// reads the lease row (SQLite: the transaction itself is the lease).
    async fn transaction(&mut self, engine: &Engine, group_id: i64) -> Result<Tx, TickError> {
        if let Some(tx) = self.tx.take() {
            return Ok(tx);
        }
        let mut tx = engine.db.begin().await?;
        leases::try_claim(&mut tx, engine.db.backend(), group_id).await?;
        Ok(tx)
    }
}

/// The replica that committed (group, `timestep`), as the lease records it.
fn committed_by(lease: Option<Lease>, timestep: i64) -> SkipReason {
    SkipReason::Committed {
        by: lease
            .filter(|l| l.timestep == timestep && !l.holder.is_empty())
            .map(|l| l.holder),
    }
}

/// The group's snapshot, its last valid schedule and the set-points of its last stored
/// schedule, or why it is skipped.
///
/// The tick plans revision 0 of `timestep`, and skips a timestep already committed. An event
/// re-plan plans the timestep's next revision (revision 0 when the tick has not run yet), and
/// skips a group with no event waiting. Either clears the group's waiting events when it
/// commits: the snapshot, read after them, covers them.
#[tracing::instrument(level = "debug", skip_all)]
async fn read_inputs(
    engine: &Engine,
    conn: &mut Conn,
    group_id: i64,
    timestep: u64,
    trigger: Trigger,
) -> Result<Read, TickError> {
    let ts = timestep as i64;
    let waiting = replans::get(conn, group_id).await?;
    let last_revision = schedules::last_revision(conn, group_id, ts).await?;
    let revision = match (trigger, last_revision) {
        (Trigger::Tick, Some(_)) => {
            let lease = leases::get(conn, group_id).await?;
            return Ok(Read::Skip(committed_by(lease, ts)));
        }
        (Trigger::Tick, None) => 0,
        (Trigger::Event, _) if waiting.is_none() => {
            return Ok(Read::Skip(SkipReason::NothingWaiting));
        }
        (Trigger::Event, last) => last.map_or(0, |r| r + 1),
    };
    let group = groups::get(conn, group_id)
        .await?
        .ok_or(TickError::GroupGone)?;
    let mut snapshot =
        snapshot::snapshot(conn, &engine.config, &group, timestep, engine.clock.now()).await?;
    let (previous, previous_timestep, previous_setpoints) =
        match schedules::latest_before(conn, group_id, ts + 1).await? {
            Some(last) => {
                let setpoints =
                    schedules::setpoints_of(conn, group_id, last.timestep, last.revision).await?;
                let previous = previous_or_log(&last);
                (
                    previous,
                    last.timestep,
                    setpoints.into_iter().map(|s| s.record).collect(),
                )
            }
            None => (None, ts, Vec::new()),
        };
    if revision > 0 {
        // A re-plan within the timestep: the part of its first step already past cannot be
        // used (as in admission).
        let elapsed_s =
            engine.clock.now() - crate::domain::step_start(timestep, snapshot.inputs.time_step_s);
        let planned = previous
            .as_ref()
            .map(|p| snapshot::planned_in_step(p, previous_timestep, ts))
            .unwrap_or_default();
        snapshot::pad_elapsed(&mut snapshot.inputs, elapsed_s, &planned);
    }
    Ok(Read::Inputs(Box::new(Inputs {
        revision,
        replan_seq: waiting.map(|w| w.seq),
        snapshot,
        previous,
        previous_setpoints,
    })))
}

/// The schedule `last` holds, or `None` (logged at error level and counted in
/// `evflex_tick_corrupt_schedules_total`) when it does not decode: the group is then planned
/// from scratch rather than stuck on the corrupt row.
fn previous_or_log(last: &ScheduleRecord) -> Option<Schedule> {
    match plan::previous_schedule(last) {
        Ok(schedule) => Some(schedule),
        Err(e) => {
            tracing::error!(error = %e, "tick: planning without the previous schedule");
            metrics::counter!("evflex_tick_corrupt_schedules_total").increment(1);
            None
        }
    }
}

/// Runs the optimiser on a blocking thread.
#[tracing::instrument(level = "debug", skip_all)]
async fn solve(
    inputs: GroupInputs,
    opts: SolveOptions,
    previous: Option<Schedule>,
) -> Result<Schedule, TickError> {
    let started = Instant::now();
    let result = tokio::task::spawn_blocking(move || {
        evflex_schedule::solve(&inputs, &opts, previous.as_ref())
    })
    .await?;
    metrics::histogram!("evflex_solver_seconds").record(started.elapsed().as_secs_f64());
    Ok(result?)
}

/// What [`commit`] did.
enum Committed {
    /// The plan is stored.
    Stored,
    /// Another tick stored (group, timestep) first; nothing was written.
    Already(SkipReason),
}

/// Writes `plan` in the group's transaction `tx` and commits it: the schedule row first (its
/// primary key is the last guard against a second commit of (group, timestep, revision)), then
/// the flexibility, the set-points, the chain work, the lease record and the clearing of the
/// events the plan covers (`replan_seq`, see [`crate::store::replans`]).
#[tracing::instrument(level = "debug", skip_all)]
async fn commit(
    engine: &Engine,
    mut tx: Tx,
    plan: &Plan,
    replan_seq: Option<i64>,
) -> Result<Committed, TickError> {
    let Step {
        group_id,
        timestep,
        now,
        ..
    } = plan.step;
    let ts = timestep as i64;
    if !schedules::insert(&mut tx, &plan.schedule).await? {
        let lease = leases::get(&mut tx, group_id).await?;
        return Ok(Committed::Already(committed_by(lease, ts)));
    }
    let flexibility: Vec<(i64, i64, i64)> = plan
        .flexibility
        .iter()
        .map(|f| (f.session_row, f.shifted_wh, f.value_micro_eur))
        .collect();
    sessions::set_flexibilities(&mut tx, &flexibility).await?;
    // Only changes are sent (`setpoints`, module docs): a profile that says what the one in
    // force says is recorded as `unchanged`.
    let rows: Vec<i64> = plan
        .setpoints
        .iter()
        .filter(|sp| !sp.profile.is_null())
        .map(|sp| sp.session_row)
        .collect();
    let in_force = schedules::profiles_in_force(&mut tx, &rows).await?;
    let setpoints: Vec<(&SetpointRecord, SetpointKind)> = plan
        .setpoints
        .iter()
        .map(|sp| {
            let same = !sp.profile.is_null()
                && in_force
                    .get(&sp.session_row)
                    .is_some_and(|p| super::setpoints::unchanged(p, &sp.profile));
            let kind = if same {
                SetpointKind::Unchanged
            } else {
                SetpointKind::Pending
            };
            (sp, kind)
        })
        .collect();
    schedules::insert_setpoints(&mut tx, &setpoints, now).await?;
    enqueue_chain_work(engine, &mut tx, plan).await?;
    leases::record(&mut tx, group_id, &engine.replica, ts, now).await?;
    if let Some(seq) = replan_seq {
        replans::clear(&mut tx, group_id, seq).await?;
    }
    if engine.faults.fails_before_commit(group_id) {
        // Dropping `tx` rolls everything of this group back, as a crash here would.
        return Err(TickError::InjectedFault);
    }
    tx.commit().await.map_err(TickError::Commit)?;
    Ok(Committed::Stored)
}

/// The group's chain work for the timestep, in its transaction: the `status_commit` (SC2),
/// enqueued as the "no chain configured" policy of `evflex_chain::work` says (only with a
/// chain: no unbounded backlog without one). The tick's one place that enqueues chain work.
async fn enqueue_chain_work(
    engine: &Engine,
    conn: &mut Conn,
    plan: &Plan,
) -> Result<(), TickError> {
    let work = ChainWork::StatusCommit(plan.status_commit.clone());
    if !work.wanted(engine.chain.is_some()) {
        return Ok(());
    }
    let Step {
        group_id,
        timestep,
        revision,
        now,
    } = plan.step;
    let key = match revision {
        0 => format!("status_commit:{group_id}:{timestep}"),
        r => format!("status_commit:{group_id}:{timestep}:r{r}"),
    };
    outbox::enqueue(conn, &key, &work, now).await?;
    Ok(())
}
