//! The clock evflex runs on: the wall clock in production, a simulated one in tests and the
//! demo. Both drive the same code.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

/// A source of "now" in Unix seconds.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now (Unix seconds).
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct WallClock;

impl Clock for WallClock {
    fn now(&self) -> i64 {
        super::unix_now()
    }
}

/// A clock that moves only when told to.
#[derive(Debug, Clone)]
pub struct SimClock(Arc<AtomicI64>);

impl SimClock {
    /// A simulated clock showing `unix_s`.
    pub fn new(unix_s: i64) -> Self {
        Self(Arc::new(AtomicI64::new(unix_s)))
    }

    /// Sets the time.
    pub fn set(&self, unix_s: i64) {
        self.0.store(unix_s, Ordering::SeqCst);
    }

    /// Moves the time forward by `seconds`.
    pub fn advance(&self, seconds: i64) {
        self.0.fetch_add(seconds, Ordering::SeqCst);
    }
}

impl Clock for SimClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn simulated_clock_moves_only_when_told() {
        let c = SimClock::new(1_000);
        assert_eq!(c.now(), 1_000);
        c.advance(900);
        assert_eq!(c.now(), 1_900);
        c.set(5);
        assert_eq!(c.clone().now(), 5);
        assert!(WallClock.now() > 1_600_000_000);
    }
}
