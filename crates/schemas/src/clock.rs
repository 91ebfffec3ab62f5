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
