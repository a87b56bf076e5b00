//! The time commands decide with: the system's clock, which tests may move forward.
//!
//! The domain reads no clock; whatever a decision needs of the time ("is this invitation's
//! link still valid?") is the command service's `clock().now()`, put into the command. Tests
//! move it with [`Clock::advance`] instead of waiting a week or writing into tables behind the
//! service's back. Nothing in the service moves it: in a running service it is the system
//! clock.
//!
//! Only decisions read it. What the database records (`recorded_at`, `created_at`) is the
//! database's clock, as before.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

/// The system clock plus an offset (zero unless a test moved it). Clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    offset_ms: Arc<AtomicI64>,
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        Utc::now() + Duration::milliseconds(self.offset_ms.load(Ordering::Relaxed))
    }

    /// Moves this clock (and its clones) forward by `by` (for tests).
    pub fn advance(&self, by: Duration) {
        self.offset_ms.fetch_add(by.num_milliseconds(), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_runs_ahead_for_every_clone() {
        let clock = Clock::default();
        let clone = clock.clone();
        clock.advance(Duration::days(8));
        let ahead = clone.now() - Utc::now();
        assert!(ahead > Duration::days(8) - Duration::seconds(5) && ahead <= Duration::days(8), "{ahead}");
    }
}
