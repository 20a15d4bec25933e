//! What a tick reports: one line per group ([`GroupReport`]: solved, skipped and why, or
//! failed and why) and the tick's totals ([`TickReport`]). Their JSON is the operator route's
//! answer (`POST /api/v1/operator/tick`) and what the simulator reads.

use evflex_schedule::SolveStatus;
use serde::Serialize;

/// What happened to one group in a tick.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum GroupOutcome {
    /// Solved and stored.
    Solved {
        /// The schedule's revision within the timestep: 0 for the tick's, 1, 2, … for the
        /// event re-plans (`engine::replan`).
        revision: i64,
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
    /// An event re-plan found no event waiting for the group: another replica (or the tick)
    /// planned it since the event came in.
    NothingWaiting,
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
    /// Users' tokens pushed to CPOs after the delivery.
    pub tokens: super::tokens::TokenPushReport,
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
