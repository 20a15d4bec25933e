//! Why one group's tick failed ([`TickError`]). A failed group writes nothing for the timestep;
//! its error's text is the `reason` of its [`super::GroupOutcome::Failed`] line.

use crate::store::StoreError;
use std::error::Error;

/// Why one group's tick failed.
#[derive(Debug, thiserror::Error)]
pub enum TickError {
    /// The store failed (reading the snapshot, claiming the lease, a write).
    #[error("database: {}", chain(.0))]
    Store(#[from] StoreError),
    /// The group was deleted between listing the groups and reading it.
    #[error("group disappeared")]
    GroupGone,
    /// The solve slots were closed (the service is stopping).
    #[error("solve slots: {0}")]
    Slots(#[from] tokio::sync::AcquireError),
    /// The blocking solver task panicked or was cancelled.
    #[error("solver task: {0}")]
    SolverTask(#[from] tokio::task::JoinError),
    /// The optimiser rejected the inputs (bad data in the store) or failed.
    #[error("solver: {0}")]
    Solve(#[from] evflex_schedule::ScheduleError),
    /// A row of the plan could not be encoded as JSON.
    #[error("encoding the {what}: {source}")]
    Encode {
        /// Which value (`inputs`, `schedule`, `members`, `charging profile`).
        what: &'static str,
        /// The encoder's error.
        source: serde_json::Error,
    },
    /// A stored schedule cannot be decoded. The tick does not fail on it: it logs it at error
    /// level, counts it (`evflex_tick_corrupt_schedules_total`) and plans without the previous
    /// schedule (see [`super::plan::previous_schedule`]).
    #[error(
        "stored schedule of group {group_id} at timestep {timestep} cannot be decoded: {source}"
    )]
    CorruptSchedule {
        /// The group.
        group_id: i64,
        /// The stored schedule's timestep.
        timestep: i64,
        /// The decoder's error.
        source: serde_json::Error,
    },
    /// `COMMIT` failed; the group's writes are rolled back.
    #[error("commit: {0}")]
    Commit(#[source] sqlx::Error),
    /// Test hook: the group was made to fail at the commit boundary
    /// ([`super::Faults::set_fail_before_commit`]).
    #[error("injected fault at the commit boundary")]
    InjectedFault,
}

/// `err` and its causes, joined by `": "` (a [`StoreError`] alone says only "database error").
fn chain(err: &dyn Error) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_errors_name_their_cause() {
        let e = TickError::from(StoreError::Db(sqlx::Error::PoolTimedOut));
        assert_eq!(
            e.to_string(),
            format!("database: database error: {}", sqlx::Error::PoolTimedOut)
        );
    }
}
