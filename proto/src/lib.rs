//! Wire types and framing shared by `hragd` and `hragctl`.
//!
//! Everything that crosses the control socket is defined here and nowhere else: the [`Hello`]
//! handshake, one [`Request`] enum, one [`Response`] enum, [`ProgressEvent`]s for long jobs and
//! typed [`ErrorBody`]s whose [`ErrorKind`] carries the exit code `hragctl` returns. Domain types
//! stay in the daemon and are converted at its edge, so refactoring the daemon never breaks the
//! wire. This crate does no I/O beyond reading and writing frames on a stream it is handed.

mod error;
mod frame;
mod message;
pub mod paths;

pub use error::{ErrorBody, ErrorKind, exit};
pub use frame::{Channel, FrameError, MAX_FRAME_BYTES, decode, encode};
pub use message::*;

/// Version of the message enums below. Bumped on every change to any wire type; a client and a
/// daemon only talk when their ranges overlap (see [`Hello`]).
pub const PROTOCOL_VERSION: u32 = 4;

#[cfg(test)]
mod tests;
