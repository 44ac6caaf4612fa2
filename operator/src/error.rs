//! The operator's error type. A bad spec is not an error: it becomes a condition with a reason.
//! Errors are what kept a reconcile from finishing (the API server refused or was unreachable);
//! they are retried with back-off and reported as Warning events and metrics.

/// Why a reconcile did not finish.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading an object the resource refers to failed.
    #[error("reading {what}")]
    Read {
        /// What was being read.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Server-side apply of a desired object failed.
    #[error("applying {what}")]
    Apply {
        /// The object being applied.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Deleting an object a previous pass made failed.
    #[error("pruning {what}")]
    Prune {
        /// The object being deleted.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// Writing the resource's status failed.
    #[error("updating the status of {what}")]
    Status {
        /// The resource whose status was written.
        what: String,
        /// The API error.
        #[source]
        source: kube::Error,
    },
    /// A desired object could not be turned into JSON.
    #[error("serializing {what}")]
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

    /// Whether retrying cannot help until someone changes the spec or what it names: the API
    /// server refused the request itself (invalid, forbidden, malformed), or a hub's key is
    /// unusable. Such errors back off to minutes instead of retrying every few seconds.
    pub fn needs_a_change(&self) -> bool {
        match self {
            Error::Read { source, .. }
            | Error::Apply { source, .. }
            | Error::Prune { source, .. }
            | Error::Status { source, .. } => matches!(
                source,
                kube::Error::Api(status) if matches!(status.code, 400 | 403 | 405 | 406 | 413 | 415 | 422)
            ),
            Error::Serialize { .. } | Error::HubKey { .. } => true,
            Error::Publish { .. } => false,
        }
    }

    /// The error with its whole chain of causes, for events, conditions and logs: this error's
    /// summary, then each cause after `: `. Its `Display` is the summary alone (what was being
    /// done, to which object), so anything shown to a person goes through here.
    pub fn chain(&self) -> String {
        chain(self)
    }
}

/// Any error with its whole chain of causes, each after `: `, a client error among them in the
/// API server's own words ([`api_message`]), which ends the walk: how an error whose `Display`
/// is its summary alone is told to a person.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = String::new();
    let mut next = Some(error);
    while let Some(cause) = next {
        if !text.is_empty() {
            text.push_str(": ");
        }
        // A client error is told in the API server's own words (see [`api_message`]); its own
        // causes would repeat it as a dump of the response, so the walk ends there.
        if let Some(client) = cause.downcast_ref::<kube::Error>() {
            text.push_str(&api_message(client));
            break;
        }
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

/// What the API server said about a failed request, in its own words: its message, which names
/// the object and the field it refused (`ResourceQuota "govdc-quota" is invalid:
/// spec.hard[requests.cpu]: Invalid value: "-1": must be greater than or equal to 0`), else its
/// reason and code. Any other client error (no answer at all) as it displays itself. Never the
/// `Debug` dump that `kube::Error`'s own `Display` appends.
pub fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if !status.message.is_empty() => status.message.clone(),
        kube::Error::Api(status) if !status.reason.is_empty() => {
            format!("{} (HTTP {})", status.reason, status.code)
        }
        kube::Error::Api(status) => format!("the API server answered HTTP {}", status.code),
        other => other.to_string(),
    }
}

/// Result of a reconcile step.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;
    use kube::core::response::{StatusCause, StatusDetails};

    fn refused(code: u16, reason: &str, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(
            Status::failure(message, reason)
                .with_code(code)
                .with_details(StatusDetails {
                    name: "govdc-quota".into(),
                    group: String::new(),
                    kind: "resourcequotas".into(),
                    uid: String::new(),
                    causes: vec![StatusCause {
                        reason: "FieldValueInvalid".into(),
                        message: "Invalid value: \"-1\": must be greater than or equal to 0".into(),
                        field: "spec.hard[requests.cpu]".into(),
                    }],
                    retry_after_seconds: 0,
                }),
        ))
    }

    const INVALID: &str = "ResourceQuota \"govdc-quota\" is invalid: spec.hard[requests.cpu]: Invalid value: \"-1\": must be greater than or equal to 0";

    #[test]
    fn an_api_refusal_reads_as_the_api_servers_own_message() {
        let error = Error::Apply {
            what: "ResourceQuota t-prod/govdc-quota".into(),
            source: refused(422, "Invalid", INVALID),
        };
        assert_eq!(
            error.chain(),
            format!("applying ResourceQuota t-prod/govdc-quota: {INVALID}")
        );
        for dump in ["Status {", "ApiError", "Some(", "StatusDetails", "causes"] {
            assert!(!error.chain().contains(dump), "{dump} in {}", error.chain());
            assert!(!error.to_string().contains(dump), "{dump} in {error}");
        }
    }

    #[test]
    fn the_message_is_the_summary_and_the_chain_adds_the_api_servers_words() {
        let error = Error::Status {
            what: "DepartmentCloud t-prod".into(),
            source: refused(422, "Invalid", INVALID),
        };
        assert_eq!(
            error.to_string(),
            "updating the status of DepartmentCloud t-prod"
        );
        assert_eq!(
            error.chain(),
            format!("updating the status of DepartmentCloud t-prod: {INVALID}")
        );
    }

    #[test]
    fn a_client_error_without_an_answer_ends_the_chain_as_it_displays_itself() {
        let error = Error::Read {
            what: "Namespace t-prod".into(),
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert_eq!(
            error.chain(),
            format!(
                "reading Namespace t-prod: {}",
                kube::Error::LinesCodecMaxLineLengthExceeded
            )
        );
    }

    #[test]
    fn a_serde_cause_follows_the_message_once() {
        let cause = serde_json::from_str::<u8>("\"x\"").expect_err("not a number");
        let cause_text = cause.to_string();
        let error = Error::Serialize {
            what: "ConfigMap t-prod/settings".into(),
            source: cause,
        };
        assert_eq!(error.to_string(), "serializing ConfigMap t-prod/settings");
        assert_eq!(
            error.chain(),
            format!("serializing ConfigMap t-prod/settings: {cause_text}")
        );
    }

    #[test]
    fn an_error_without_a_cause_is_its_message() {
        let error = Error::HubKey {
            what: "ExchangeNode t-prod/hub".into(),
            reason: "the key is 3 bytes, not 32".into(),
        };
        assert_eq!(
            error.chain(),
            "the signing key of ExchangeNode t-prod/hub: the key is 3 bytes, not 32"
        );
        assert_eq!(error.chain(), error.to_string());
    }

    #[test]
    fn a_refusal_without_a_message_gives_its_reason_and_code() {
        let error = refused(403, "Forbidden", "");
        assert_eq!(api_message(&error), "Forbidden (HTTP 403)");
    }

    #[test]
    fn refusals_need_a_change_and_outages_do_not() {
        let apply = |code, reason| Error::Apply {
            what: "x".into(),
            source: refused(code, reason, "m"),
        };
        assert!(apply(422, "Invalid").needs_a_change());
        assert!(apply(403, "Forbidden").needs_a_change());
        assert!(apply(400, "BadRequest").needs_a_change());
        assert!(!apply(409, "Conflict").needs_a_change());
        assert!(!apply(500, "InternalError").needs_a_change());
        assert!(!apply(429, "TooManyRequests").needs_a_change());
        let unreachable = Error::Read {
            what: "x".into(),
            source: kube::Error::LinesCodecMaxLineLengthExceeded,
        };
        assert!(!unreachable.needs_a_change());
    }
}
