//! The wall clock as every crate reads it: milliseconds since the Unix epoch, the unit of
//! event timestamps, append times, erasure times and backup recovery points.
//!
//! The one impure function of this crate, kept here so that the conversion (and what a clock
//! set before 1970 gives) is written once.

/// The current time in milliseconds since the Unix epoch; 0 for a clock set before it.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// The clock a node's rules read (licence windows, campaigns): the system clock, or for tests
/// a manual one that only moves when told. Cheap to clone; clones share the manual time.
#[derive(Clone, Debug, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    /// The wall clock ([`now_ms`]).
    pub fn system() -> Clock {
        Clock(None)
    }

    /// A clock that reads `start` until [`Clock::set`] or [`Clock::advance`] moves it.
    pub fn manual(start: i64) -> Clock {
        Clock(Some(std::sync::Arc::new(start.into())))
    }

    pub fn now_ms(&self) -> i64 {
        match &self.0 {
            None => now_ms(),
            Some(time) => time.load(std::sync::atomic::Ordering::Acquire),
        }
    }

    /// Sets a manual clock; no effect on the system clock.
    pub fn set(&self, ms: i64) {
        if let Some(time) = &self.0 {
            time.store(ms, std::sync::atomic::Ordering::Release);
        }
    }

    /// Moves a manual clock by `ms`; no effect on the system clock.
    pub fn advance(&self, ms: i64) {
        if let Some(time) = &self.0 {
            time.fetch_add(ms, std::sync::atomic::Ordering::AcqRel);
        }
    }
}
