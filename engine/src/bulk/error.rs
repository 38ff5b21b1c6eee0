//! Why an export failed: one error type for every part of the client, each variant saying
//! what the user can do about it.

use std::time::Duration;

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkError {
    /// The server refused a request for good (a 4xx other than 429, a failed job); the
    /// reason quotes its OperationOutcome.
    #[error("{what}: {reason}")]
    Refused {
        /// The request.
        what: String,
        /// Status and the server's words.
        reason: String,
    },
    /// A request that no retry can help could not be sent: a URL of a scheme other than
    /// http and https, a redirect loop.
    #[error("{what}: {reason}")]
    Unsendable {
        /// The request.
        what: String,
        /// Why.
        reason: String,
    },
    /// Transient failures went on past the retry policy.
    #[error("{what}: gave up after {attempts} tries; the last: {last}")]
    GaveUp {
        /// The request.
        what: String,
        /// Tries made.
        attempts: u32,
        /// The last failure.
        last: String,
    },
    /// Authorisation failed (discovery, the token endpoint, the assertion).
    #[error("authorisation: {0}")]
    Auth(String),
    /// The client's private key is unusable.
    #[error("{path}: {reason}")]
    Key {
        /// The key file.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The export ran past its deadline; the job was deleted on the server.
    #[error("the export did not finish within its deadline of {0:?}; the job was deleted on the server")]
    Deadline(Duration),
    /// Interrupted (Ctrl-C); the job was deleted on the server.
    #[error("interrupted; the export job was deleted on the server")]
    Cancelled,
    /// Some files could not be downloaded; the others are saved and a new run resumes.
    #[error("{failed} of {total} files could not be downloaded ({saved} saved; running the export again resumes):\n  {details}")]
    Files {
        /// Files that failed.
        failed: usize,
        /// Files of the manifest.
        total: usize,
        /// Files saved.
        saved: usize,
        /// One line per failed file.
        details: String,
    },
    /// The server no longer has some files of the export (404 or 410: they expired). Only a
    /// new job brings them back, so what the folder held of this one was discarded.
    #[error("the server no longer has {expired} of the export's {total} files (expired); the files saved were discarded, and running the export again starts a new export:\n  {details}")]
    Expired {
        /// Files the server no longer has.
        expired: usize,
        /// Files of the manifest.
        total: usize,
        /// One line per failed file (the expired ones and any other failure).
        details: String,
    },
    /// A local file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Something else not as the IG says, or a usage error.
    #[error("{0}")]
    Invalid(String),
}

impl BulkError {
    pub(crate) fn io(path: impl std::fmt::Display, source: std::io::Error) -> BulkError {
        BulkError::Io { path: path.to_string(), source }
    }

    pub(crate) fn auth(reason: String) -> BulkError {
        BulkError::Auth(reason)
    }
}
