//! The data Marquee is fed with outside production: shared by the binary (`demo`, `generate`,
//! `import`, `eval`), the benchmarks and the tests.
//!
//! - [`synthetic`]: the deterministic synthetic catalogue and viewer stream, with its ground
//!   truth of taste clusters.
//! - [`movielens`]: readers for the MovieLens layouts (ml-latest-small CSV, ml-100k, ml-1m and
//!   ml-10m `.dat`), as catalogue items and rating events.
//! - [`error`]: this crate's error type.

pub mod error;
pub mod movielens;
pub mod synthetic;

pub use error::{Error, Result};
