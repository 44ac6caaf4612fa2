//! The operator's error type. A bad spec is not an error: it becomes a condition with a reason.
//! Errors are what kept a reconcile from finishing (the API server refused or was unreachable);
//! they are retried with back-off and reported as Warning events and metrics.

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object the resource refers to failed.
    #[error("reading {what}: {source}")]
    Read {
        /// What was being read.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Server-side apply of a desired object failed.
    #[error("applying {what}: {source}")]
    Apply {
        /// The object being applied.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting an object a previous pass made failed.
    #[error("pruning {what}: {source}")]
    Prune {
        /// The object being deleted.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the resource's status failed.
    #[error("updating the status of {what}: {source}")]
    Status {
        /// The resource whose status was written.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A desired object could not be turned into JSON.
    #[error("serializing {what}: {source}")]
    Serialize {
        /// What was serialized.
        what: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },
    /// A dataset version could not be made or unpublished (local files, or the portal
    /// refused).
    #[error("publishing {what}: {reason}")]
    Publish {
        /// The dataset.
        what: String,
        /// What went wrong.
        reason: String,
    },
    /// A hub node's signing key is unusable (someone shortened or emptied its Secret).
    #[error("the signing key of {what}: {reason}")]
    HubKey {
        /// The node whose key it is.
        what: String,
        /// Why the key could not be made or used.
        reason: String,
    },
}

impl Error {
    /// The CamelCase reason used in events and as the metric label.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Read { .. } => "ReadFailed",
            Error::Apply { .. } => "ApplyFailed",
            Error::Prune { .. } => "PruneFailed",
            Error::Status { .. } => "StatusUpdateFailed",
            Error::Serialize { .. } => "SerializeFailed",
            Error::HubKey { .. } => "HubKeyInvalid",
            Error::Publish { .. } => "PublishFailed",
        }
    }

    /// The error with its whole chain of causes, for events and conditions.
    pub fn chain(&self) -> String {
        let mut text = self.to_string();
        let mut source = std::error::Error::source(self);
        while let Some(cause) = source {
            let cause_text = cause.to_string();
            if !text.contains(&cause_text) {
                text.push_str(": ");
                text.push_str(&cause_text);
            }
            source = cause.source();
        }
        text
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;
