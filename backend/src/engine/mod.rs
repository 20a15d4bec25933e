//! The 15-minute engine: the clock, group snapshots, the tick (solve, persist, enqueue chain
//! work, send set-points) and admission control.
//!
//! "Run one step" entry points: [`run_tick`] for a timestep and
//! [`setpoints::deliver_pending`] for set-point delivery. [`run_wall_clock`] calls `run_tick`
//! at every quarter hour; tests and the demo call it with a simulated clock.

pub mod admission;
pub mod clock;
pub mod setpoints;
pub mod snapshot;
pub mod tick;

pub use clock::{Clock, SimClock, WallClock};
pub use tick::{GroupOutcome, GroupReport, TickReport, run_tick};

use crate::app::AppState;
use crate::domain::{TIME_STEP_S, timestep_of};
use std::time::Duration;

/// Seconds from `now` until the next quarter-hour boundary (never 0).
pub fn seconds_to_next_step(now: i64) -> i64 {
    let step = i64::from(TIME_STEP_S);
    step - now.rem_euclid(step)
}

/// Runs a tick for the current quarter hour at once (catching up after a restart; idempotent),
/// then one at every quarter hour of `state.clock`, until `shutdown` resolves.
pub async fn run_wall_clock(state: AppState, shutdown: impl std::future::Future<Output = ()>) {
    tokio::pin!(shutdown);
    loop {
        let now = state.clock.now();
        run_tick(&state, timestep_of(now, TIME_STEP_S)).await;
        let wait = seconds_to_next_step(state.clock.now());
        tokio::select! {
            _ = &mut shutdown => return,
            _ = tokio::time::sleep(Duration::from_secs(wait as u64)) => {}
        }
    }
}

/// Test hook: groups whose tick fails at the commit boundary (after solving and writing, before
/// `COMMIT`), standing in for a process killed there. Empty in production.
#[derive(Debug, Default)]
pub struct Faults {
    fail_before_commit: std::sync::Mutex<std::collections::HashSet<i64>>,
}

impl Faults {
    /// Makes (or stops making) `group_id`'s tick fail at the commit boundary.
    pub fn set_fail_before_commit(&self, group_id: i64, fail: bool) {
        let mut set = self
            .fail_before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if fail {
            set.insert(group_id);
        } else {
            set.remove(&group_id);
        }
    }

    /// Whether `group_id`'s tick must fail at the commit boundary.
    pub fn fails_before_commit(&self, group_id: i64) -> bool {
        self.fail_before_commit
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&group_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_step_is_the_next_quarter_hour() {
        assert_eq!(seconds_to_next_step(0), 900);
        assert_eq!(seconds_to_next_step(899), 1);
        assert_eq!(seconds_to_next_step(900), 900);
        assert_eq!(seconds_to_next_step(1_000), 800);
    }
}
