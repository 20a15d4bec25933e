//! Event re-plans (issue 15): a group is planned again as soon as something that changes its
//! plan happens, not only at the next quarter hour.
//!
//! # What a re-plan is
//!
//! The quarter-hour tick stays the committed timestep: it plans revision 0 of each group's
//! timestep. An event re-plan plans the *next revision* of the current timestep: the same
//! snapshot, solve, plan and commit as the tick (`tick::plan_group`), under the same group lease,
//! with its own schedule row, set-points and `status_commit` chain work (its on-chain
//! commitment names the revision, so every set of set-points sent is covered by one). A re-plan
//! made before the timestep's tick ran is that timestep's revision 0, and the tick then finds it
//! committed. Its first step is partly past: each guaranteed vehicle's energy is padded by what
//! its full power would deliver in that past part (`snapshot::pad_elapsed`), as admission does.
//! Only the set-points that change are sent (`setpoints::unchanged`), and they are sent at once.
//!
//! # Events
//!
//! Handlers call [`request`] (or [`request_for_evse`]) after their own data is committed and
//! before they answer, so an acknowledged event is durable: a session starts, changes or stops
//! (OCPI Sessions PUT/PATCH), a CDR arrives, an EVSE changes status, a charging request is
//! decided or cancelled, a group's capacity or topology changes, a forecast arrives.
//! [`request`] records the event in `replan_requests` (one row per group, `store::replans`)
//! and wakes this replica's worker.
//!
//! # Coalescing, replicas and crashes
//!
//! - A burst coalesces twice: in the database (one row per group, its `seq` counting events) and
//!   in the worker, which waits [`crate::config::EngineConfig::replan_debounce_ms`] after a wake
//!   before it plans. Fifty arrivals in one second on one group give one or two re-plans.
//! - Every replica runs the worker ([`run`]); it also polls the table every
//!   `replan_poll_ms`, so an event recorded by a replica that died is planned by another one.
//!   The group lease (`SELECT … FOR UPDATE SKIP LOCKED`) makes one replica plan a group at a
//!   time; the others skip it. A re-plan deletes the group's row in its commit only if no
//!   event came in meanwhile (`seq` unchanged), so an event that arrives while another replica
//!   solves the group is planned by a further re-plan: none is lost.
//! - A process killed mid-re-plan commits nothing: its lease is released with its transaction,
//!   the row stays, and the next poll of any replica (or its own restart) plans the group.
//!
//! The tick clears a group's waiting events the same way, since its snapshot covers them.

use super::report::{GroupOutcome, GroupReport, SkipReason};
use super::tick::{Ticked, Trigger, plan_group};
use super::{Engine, setpoints};
use crate::domain::{TIME_STEP_S, timestep_of};
use crate::store::{StoreResult, groups, leases, replans};
use serde::Serialize;
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// What one round of re-plans did ([`run_pending`]).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReplanReport {
    /// The timestep re-planned.
    pub timestep: u64,
    /// One line per group that had events waiting.
    pub groups: Vec<GroupReport>,
    /// The set-point delivery right after.
    pub delivery: setpoints::DeliveryReport,
    /// Wall time of the round (ms).
    pub duration_ms: f64,
}

impl ReplanReport {
    /// Groups re-planned and stored in this round.
    pub fn solved(&self) -> usize {
        self.groups
            .iter()
            .filter(|g| matches!(g.outcome, GroupOutcome::Solved { .. }))
            .count()
    }
}

/// Records an event that changes `group_id`'s plan, and wakes the worker. Call it after the
/// event's own data is committed.
pub async fn request(engine: &Engine, group_id: i64, reason: &str) -> StoreResult<()> {
    let mut conn = engine.db.conn().await?;
    replans::request(&mut conn, group_id, reason, engine.clock.now()).await?;
    drop(conn);
    metrics::counter!("evflex_replan_events_total", "reason" => reason.to_owned()).increment(1);
    engine.replan_wake.notify_one();
    Ok(())
}

/// [`request`] for the group of an EVSE, if it has one; the group, or `None`.
pub async fn request_for_evse(
    engine: &Engine,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
    reason: &str,
) -> StoreResult<Option<i64>> {
    let group = {
        let mut conn = engine.db.conn().await?;
        groups::group_of_evse(&mut conn, country_code, party_id, evse_uid).await?
    };
    if let Some(g) = group {
        request(engine, g, reason).await?;
    }
    Ok(group)
}

/// Like [`request`], but a failure is only logged: for handlers whose own write succeeded and
/// must still answer. The event is then planned by the next tick.
pub async fn request_or_log(engine: &Engine, group_id: i64, reason: &str) {
    if let Err(e) = request(engine, group_id, reason).await {
        tracing::warn!(group_id, reason, error = %e, "re-plan: event not recorded; the next tick plans it");
    }
}

/// Like [`request_for_evse`], but a failure is only logged (see [`request_or_log`]).
pub async fn request_for_evse_or_log(
    engine: &Engine,
    country_code: &str,
    party_id: &str,
    evse_uid: &str,
    reason: &str,
) {
    if let Err(e) = request_for_evse(engine, country_code, party_id, evse_uid, reason).await {
        tracing::warn!(evse_uid, reason, error = %e, "re-plan: event not recorded; the next tick plans it");
    }
}

/// Re-plans every group with events waiting, in parallel (bounded by the solve slots), then
/// sends the new set-points: the "run one step" of event re-planning (the worker's round; tests
/// and the operator route call it directly).
#[tracing::instrument(skip_all)]
pub async fn run_pending(engine: &Engine) -> ReplanReport {
    let started = Instant::now();
    let timestep = timestep_of(engine.clock.now(), TIME_STEP_S);
    // A set-point whose wait at the CPO has ended goes out, or is an event of its group when
    // plans have moved on since it was made (`setpoints::end_waits`).
    setpoints::end_waits(engine).await;
    let waiting = match waiting(engine).await {
        Ok(w) => w,
        Err(e) => {
            tracing::error!(error = %e, "re-plan: cannot read waiting events");
            return ReplanReport {
                timestep,
                ..ReplanReport::default()
            };
        }
    };
    let mut set = JoinSet::new();
    for group_id in waiting {
        let engine = engine.clone();
        set.spawn(async move {
            let planned = plan_group(&engine, group_id, timestep, Trigger::Event).await;
            // Its set-points go out at once, not after the other groups of the round.
            let delivery = match planned {
                Ok(Ticked::Solved(_)) => setpoints::deliver_pending_of(&engine, group_id).await,
                _ => setpoints::DeliveryReport::default(),
            };
            (group_id, planned, delivery)
        });
    }
    let mut groups = Vec::new();
    let mut delivery = setpoints::DeliveryReport::default();
    while let Some(joined) = set.join_next().await {
        let Ok((group_id, planned, delivered)) = joined else {
            tracing::error!("re-plan: group task panicked");
            continue;
        };
        let (outcome, skip) = match planned {
            Ok(Ticked::Solved(outcome)) => (outcome, None),
            Ok(Ticked::Skipped(reason)) => (GroupOutcome::Skipped, Some(reason)),
            Err(super::TickError::GroupGone) => {
                // The group was deleted after the event: nothing left to plan.
                forget(engine, group_id).await;
                (GroupOutcome::Skipped, Some(SkipReason::NothingWaiting))
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::warn!(group_id, timestep, %reason, "re-plan: group failed");
                (GroupOutcome::Failed { reason }, None)
            }
        };
        let label = match &outcome {
            GroupOutcome::Solved { .. } => "solved",
            GroupOutcome::Skipped => "skipped",
            GroupOutcome::Failed { .. } => "failed",
        };
        metrics::counter!("evflex_replans_total", "outcome" => label).increment(1);
        groups.push(GroupReport {
            group_id,
            outcome,
            skip,
        });
        delivery.add(&delivered);
    }
    groups.sort_by_key(|g| g.group_id);
    let elapsed = started.elapsed();
    metrics::histogram!("evflex_replan_round_seconds").record(elapsed.as_secs_f64());
    let solved: Vec<i64> = groups
        .iter()
        .filter(|g| matches!(g.outcome, GroupOutcome::Solved { .. }))
        .map(|g| g.group_id)
        .collect();
    if !solved.is_empty() {
        tracing::info!(timestep, groups = ?solved, sent = delivery.sent, duration_ms = elapsed.as_secs_f64() * 1e3, "re-planned");
        engine.events.tick(timestep, solved);
    }
    ReplanReport {
        timestep,
        groups,
        delivery,
        duration_ms: elapsed.as_secs_f64() * 1e3,
    }
}

/// Plans every waiting event and sends the set-points, here and now, until none is waiting
/// (another replica's worker may hold a group meanwhile: then this waits for it), for at most
/// `timeout`. For callers that read the profiles right after (the simulated clock's tick).
pub async fn settle(engine: &Engine, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        // Each round ends the waits that are over first (`setpoints::end_waits`).
        run_pending(engine).await;
        let left = match waiting(engine).await {
            Ok(w) => w.len(),
            Err(e) => {
                tracing::warn!(error = %e, "re-plan: cannot read waiting events");
                return;
            }
        };
        if left == 0 || Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A worker's round may have committed and still be sending: send what is pending.
    setpoints::deliver_pending(engine).await;
}

/// The tick of a simulated clock, whose caller reads the profiles as soon as this returns:
/// first the re-plans its events caused (the worker may still be planning them), then the
/// tick, then the re-plans the tick's own delivery caused (a CPO refusing a profile re-plans
/// its group at once, with that charge point at its full draw), so the step is planned from
/// every event of it, as the worker would within a second on a real clock.
pub async fn tick_settled(engine: &Engine, timestep: u64) -> super::TickReport {
    const SETTLE: Duration = Duration::from_secs(30);
    settle(engine, SETTLE).await;
    let report = super::run_tick(engine, timestep).await;
    settle(engine, SETTLE).await;
    report
}

/// Groups with events waiting, with their lease rows made sure of (a group created since the
/// last tick has none yet).
async fn waiting(engine: &Engine) -> StoreResult<Vec<i64>> {
    let mut conn = engine.db.conn().await?;
    let waiting = replans::waiting(&mut conn, 10_000).await?;
    if !waiting.is_empty() {
        leases::ensure_all(&mut conn).await?;
    }
    Ok(waiting.into_iter().map(|w| w.group_id).collect())
}

/// Drops the events of a group that no longer exists.
async fn forget(engine: &Engine, group_id: i64) {
    let result = async {
        let mut conn = engine.db.conn().await?;
        if let Some(w) = replans::get(&mut conn, group_id).await? {
            replans::clear(&mut conn, group_id, w.seq).await?;
        }
        StoreResult::Ok(())
    }
    .await;
    if let Err(e) = result {
        tracing::warn!(group_id, error = %e, "re-plan: cannot drop the events of a deleted group");
    }
}

/// The re-plan worker: every replica runs it until `shutdown`. It wakes on [`request`] (this
/// replica's events) or every `replan_poll_ms` (other replicas' events, and events a dead
/// replica left), waits `replan_debounce_ms` so a burst coalesces, and runs [`run_pending`]
/// while rounds still plan something.
pub async fn run(engine: Engine, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    let poll = Duration::from_millis(engine.config.replan_poll_ms.max(10));
    let debounce = Duration::from_millis(engine.config.replan_debounce_ms);
    loop {
        tokio::select! {
            _ = &mut shutdown => return,
            _ = engine.replan_wake.notified() => {}
            _ = tokio::time::sleep(poll) => {}
        }
        if !debounce.is_zero() {
            tokio::time::sleep(debounce).await;
        }
        // Another round while one plans something and events are left (they came in during
        // it); a round that plans nothing waits for the next wake or poll.
        loop {
            let report = run_pending(&engine).await;
            if report.solved() == 0 {
                break;
            }
        }
    }
}
