//! The time the alert manager reads for repeat intervals, silences and
//! history: the wall clock in `weir serve`, a hand-moved one in `weir test`.

use std::sync::atomic::{AtomicI64, Ordering};

/// Microseconds since the Unix epoch.
pub trait Clock: Send + Sync {
    fn now_us(&self) -> i64;
}

/// The system's wall clock.
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_us(&self) -> i64 {
        chrono::Utc::now().timestamp_micros()
    }
}

/// A clock that only moves when told to.
#[derive(Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(us: i64) -> ManualClock {
        ManualClock(AtomicI64::new(us))
    }

    pub fn set(&self, us: i64) {
        self.0.store(us, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_us(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}
