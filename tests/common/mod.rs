//! Kept for test files that still say `mod common;` (`common::run(&[...])`, `common::fork`,
//! ...): the kit moved to the `shmproc-testkit` crate; new files use it directly.
#![allow(dead_code, unused_imports)]
pub use shmproc_testkit::*;
