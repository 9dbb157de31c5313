//! What can go wrong in an export, and how each case reaches the client.

use std::io;
use std::path::PathBuf;

use crate::error::DaemonError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The target directory cannot be used as asked (exists with files, not a directory…).
    #[error("{}: {reason}", dir.display())]
    Target { dir: PathBuf, reason: String },
    /// Writing the target failed (permissions, disk full…).
    #[error("writing {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Reading the database failed.
    #[error("reading {store}: {source}")]
    Read {
        store: String,
        #[source]
        source: StorageError,
    },
    /// A record the database returned cannot be written as LightRAG's JSON layout.
    #[error("{store}: record {id:?}: {reason}")]
    Record {
        store: String,
        id: String,
        reason: String,
    },
}

impl ExportError {
    pub(crate) fn write(path: impl Into<PathBuf>, source: io::Error) -> ExportError {
        ExportError::Write {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn read(store: &str, source: StorageError) -> ExportError {
        ExportError::Read {
            store: store.to_owned(),
            source,
        }
    }
}

/// A bad target is the caller's to fix (exit 6), a failed write is the target's (exit 3), a
/// lost server is exit 2; anything else the database returned is an internal error.
impl From<ExportError> for DaemonError {
    fn from(e: ExportError) -> DaemonError {
        let message = e.to_string();
        match e {
            ExportError::Target { .. } => DaemonError::Invalid(message),
            ExportError::Write { .. } => DaemonError::Target(message),
            ExportError::Read {
                source: StorageError::Unreachable(_),
                ..
            } => DaemonError::Unreachable(message),
            ExportError::Read { .. } | ExportError::Record { .. } => {
                DaemonError::io("export", io::Error::other(message))
            }
        }
    }
}
