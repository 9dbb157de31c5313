//! Shared harnesses for the end-to-end tests.

pub mod daemon;
pub mod fixtures;
pub mod pg;
