//! A migration's failures, one per exit code of PRODUCT §7.

use hrag_proto::ErrorKind;

use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The JSON source cannot be read, or changed since the checkpoint (exit 2).
    #[error("{0}")]
    Source(String),
    /// The Postgres target cannot be used or failed (exit 3).
    #[error("{0}")]
    Target(String),
    /// The target is reachable no longer; the checkpoint is saved (exit 5 after retries).
    #[error("{0}")]
    Unreachable(String),
    /// The copy differs from the source (exit 4).
    #[error("{0}")]
    Verification(String),
    /// Stopped before the end (daemon shutdown); the checkpoint is saved (exit 5).
    #[error("{0}")]
    Interrupted(String),
    /// The request itself cannot be carried out (exit 6).
    #[error("{0}")]
    Invalid(String),
}

impl MigrateError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            MigrateError::Source(_) => ErrorKind::SourceError,
            MigrateError::Target(_) => ErrorKind::TargetError,
            MigrateError::Verification(_) => ErrorKind::VerificationFailed,
            MigrateError::Unreachable(_) | MigrateError::Interrupted(_) => ErrorKind::Interrupted,
            MigrateError::Invalid(_) => ErrorKind::InvalidRequest,
        }
    }

    /// A source-side storage error.
    pub fn source(e: StorageError) -> MigrateError {
        MigrateError::Source(e.to_string())
    }

    /// A target-side storage error; a lost connection is retryable.
    pub fn target(e: StorageError) -> MigrateError {
        match e {
            StorageError::Unreachable(m) => MigrateError::Unreachable(m),
            other => MigrateError::Target(other.to_string()),
        }
    }

    pub fn is_retryable(&self) -> bool {
        matches!(self, MigrateError::Unreachable(_))
    }
}
