//! Typed errors that cross the socket, and the exit codes `hragctl` maps them to.

use serde::{Deserialize, Serialize};

/// Exit codes of `hragctl` (PRODUCT §7, §9). The first six are the original plan's; the rest
/// are hrag's own and stay above them so scripts written for the plan keep working.
pub mod exit {
    pub const OK: i32 = 0;
    /// The named database is not in the registry.
    pub const NOT_FOUND: i32 = 1;
    /// `backend status`: backend unreachable; `migrate`: the source failed.
    pub const UNREACHABLE: i32 = 2;
    pub const SOURCE_ERROR: i32 = 2;
    pub const TARGET_ERROR: i32 = 3;
    pub const VERIFICATION_FAILED: i32 = 4;
    /// A long job stopped early with its checkpoint saved.
    pub const INTERRUPTED: i32 = 5;
    /// Bad arguments or input the daemon refused (invalid name, conflicting state…).
    pub const INVALID: i32 = 6;
    /// The daemon does not implement this request yet.
    pub const NOT_SUPPORTED: i32 = 7;
    /// A fault inside the daemon; its log says more.
    pub const INTERNAL: i32 = 8;
    /// The daemon is not running or its socket cannot be reached (sysexits' EX_UNAVAILABLE).
    pub const DAEMON_UNAVAILABLE: i32 = 69;
    /// The daemon answered something this client cannot understand (sysexits' EX_PROTOCOL).
    pub const PROTOCOL: i32 = 76;
    /// The daemon refused this client (peer credentials); sysexits' EX_NOPERM.
    pub const PERMISSION_DENIED: i32 = 77;
}

/// What went wrong, in the categories a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    NotFound,
    BackendUnreachable,
    SourceError,
    TargetError,
    VerificationFailed,
    Interrupted,
    InvalidRequest,
    Conflict,
    NotSupported,
    PermissionDenied,
    Internal,
    VersionMismatch,
}

impl ErrorKind {
    /// The exit code `hragctl` returns for this error.
    pub fn exit_code(self) -> i32 {
        match self {
            ErrorKind::NotFound => exit::NOT_FOUND,
            ErrorKind::BackendUnreachable => exit::UNREACHABLE,
            ErrorKind::SourceError => exit::SOURCE_ERROR,
            ErrorKind::TargetError => exit::TARGET_ERROR,
            ErrorKind::VerificationFailed => exit::VERIFICATION_FAILED,
            ErrorKind::Interrupted => exit::INTERRUPTED,
            ErrorKind::InvalidRequest | ErrorKind::Conflict => exit::INVALID,
            ErrorKind::NotSupported => exit::NOT_SUPPORTED,
            ErrorKind::PermissionDenied => exit::PERMISSION_DENIED,
            ErrorKind::Internal => exit::INTERNAL,
            ErrorKind::VersionMismatch => exit::PROTOCOL,
        }
    }
}

/// An error answer: its kind and a sentence for a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(test, derive(proptest_derive::Arbitrary))]
pub struct ErrorBody {
    pub kind: ErrorKind,
    pub message: String,
}

impl ErrorBody {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ErrorBody {
            kind,
            message: message.into(),
        }
    }
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorBody {}
