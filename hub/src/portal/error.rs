//! What the portal's operations refuse or fail with, by what a caller can do about it. The
//! portal decides these in its own terms; the gRPC edge turns one into a status in one place
//! (`From<PortalError> for Status` in `service::portal`), and the website reads
//! [`PortalError::report`].

use crate::store::StorageError;

/// A portal operation's refusal or failure.
#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    /// No such dataset or application on this portal: NOT_FOUND.
    #[error("{0}")]
    NotFound(String),
    /// The request is wrong as it stands and is refused again until changed: INVALID_ARGUMENT.
    #[error("{0}")]
    Invalid(String),
    /// The request does not fit what the portal holds now (a version not newer than the
    /// current one, a decided application, an open dataset asked for a token):
    /// FAILED_PRECONDITION.
    #[error("{0}")]
    Precondition(String),
    /// Another call holds or changed the same dataset meanwhile; the same call may succeed when
    /// tried again: ABORTED.
    #[error("{0}")]
    Conflict(String),
    /// The node's storage (its database or its files) failed: RESOURCE_EXHAUSTED when the disk
    /// is full, else INTERNAL, as every storage error.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// Something else on this node failed (a blocking task, an encoder, the kernel's random
    /// source): INTERNAL.
    #[error("{what}")]
    Internal {
        /// What was being done.
        what: String,
        /// What failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// A status the portal received rather than decided, passed on unchanged: the hub's store
    /// reports its jobs' failures as one (it is a `Store<Status>`, so a refusal decided inside
    /// a write job also comes back this way, made by the same conversion), and so does the
    /// request's stream.
    #[error("{}", .0.message())]
    Received(tonic::Status),
}

impl PortalError {
    /// A failure of something other than storage while doing `what`.
    pub fn internal(
        what: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> PortalError {
        PortalError::Internal {
            what: what.into(),
            source: source.into(),
        }
    }

    /// The error with its cause, on one line: what a caller is told (the status's message at
    /// the gRPC edge, the cause a web page logs).
    pub fn report(&self) -> String {
        match self {
            PortalError::Storage(e) => e.report(),
            PortalError::Internal { source, .. } => format!("{self}: {source}"),
            PortalError::NotFound(_)
            | PortalError::Invalid(_)
            | PortalError::Precondition(_)
            | PortalError::Conflict(_)
            | PortalError::Received(_) => self.to_string(),
        }
    }
}

impl From<tonic::Status> for PortalError {
    fn from(status: tonic::Status) -> PortalError {
        PortalError::Received(status)
    }
}
