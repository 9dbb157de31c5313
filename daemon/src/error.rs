//! The daemon's error type and its mapping onto the wire's typed errors.

use hrag_proto::{ErrorBody, ErrorKind};

use crate::registry::RegistryError;
use crate::supervisor::SupervisorError;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Registry(#[from] RegistryError),
    #[error(transparent)]
    Supervisor(#[from] SupervisorError),
    #[error("{0}")]
    Invalid(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// The database exists but cannot do this now (starting, in error, no store).
    #[error("{0}")]
    NotReady(String),
    /// Another hragd already serves this socket or data.
    #[error("{0}")]
    AlreadyRunning(String),
    /// The request conflicts with the database's state (e.g. it holds data).
    #[error("{0}")]
    Conflict(String),
    /// A backend server cannot be reached (refused, timed out).
    #[error("{0}")]
    Unreachable(String),
    /// A backend server answers but cannot be used as asked (credentials, database, pgvector).
    #[error("{0}")]
    Target(String),
    #[error(transparent)]
    Migrate(#[from] crate::migrate::MigrateError),
    /// A typed error produced elsewhere (a background job), passed through as it is.
    #[error("{}", .0.message)]
    Remote(ErrorBody),
}

impl DaemonError {
    pub fn io(what: impl Into<String>, source: std::io::Error) -> DaemonError {
        DaemonError::Io {
            what: what.into(),
            source,
        }
    }

    pub fn kind(&self) -> ErrorKind {
        match self {
            DaemonError::Registry(RegistryError::NotFound(_)) => ErrorKind::NotFound,
            DaemonError::Registry(RegistryError::Exists(_)) => ErrorKind::Conflict,
            DaemonError::Registry(RegistryError::Invalid { .. })
            | DaemonError::Registry(RegistryError::Malformed { .. })
            | DaemonError::Invalid(_) => ErrorKind::InvalidRequest,
            DaemonError::AlreadyRunning(_)
            | DaemonError::NotReady(_)
            | DaemonError::Conflict(_) => ErrorKind::Conflict,
            DaemonError::Unreachable(_) => ErrorKind::BackendUnreachable,
            DaemonError::Target(_) => ErrorKind::TargetError,
            DaemonError::Migrate(e) => e.kind(),
            DaemonError::Remote(b) => b.kind,
            DaemonError::Registry(RegistryError::Io { .. })
            | DaemonError::Supervisor(_)
            | DaemonError::Io { .. } => ErrorKind::Internal,
        }
    }

    pub fn to_body(&self) -> ErrorBody {
        if let DaemonError::Remote(b) = self {
            return b.clone();
        }
        ErrorBody::new(self.kind(), self.to_string())
    }
}
