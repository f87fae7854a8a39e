//! Why a node failed: [`NodeError`], a [`ErrorKind`] plus a readable message, used from the
//! executor API through the dispatcher, the store and the record to the CLI and the UI.
//!
//! This module owns the kinds, their names in records and which kinds another attempt may
//! cure. It does not produce errors (electrons, executors and the dispatcher do) and does not
//! format reports.

use std::fmt;

use serde::{Deserialize, Serialize};

/// What kind of failure ended a node or an attempt. Retry decisions and reports read the kind,
/// never the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorKind {
    /// The electron returned `Err`.
    User,
    /// The electron panicked.
    Panic,
    /// A `deps_bash` command or a `call_before`/`call_after` hook failed.
    Hook,
    /// The attempt ran past its `time_limit`.
    TimedOut,
    /// Cancellation was requested.
    Cancelled,
    /// An input or the output could not be (de)serialized (e.g. on the way to or from a
    /// worker).
    Serialization,
    /// An input could not be read as the parameter's type.
    BadInput,
    /// The executor failed to run the task (could not start it, lost track of it, ...).
    Executor,
    /// The executor is unknown or its configuration is invalid.
    Config,
    /// The process, job or host running the task went away without a result.
    WorkerLost,
    /// A node this one depends on failed (a sublattice whose inner nodes failed).
    UpstreamFailed,
    /// The dispatcher lost touch with a task that may still be running (an SSH link down for
    /// good): not retried, so no second copy runs beside it; `covalent resume` follows it and
    /// `covalent cancel` stops it through its recorded job handle.
    LostContact,
    /// A file transfer before or after the task failed (a missing source, a refused
    /// destination, a checksum mismatch, a transfer cut short); retried.
    Transfer,
}

impl ErrorKind {
    /// Every kind, in declaration order.
    pub const ALL: [ErrorKind; 13] = [
        ErrorKind::User,
        ErrorKind::Panic,
        ErrorKind::Hook,
        ErrorKind::TimedOut,
        ErrorKind::Cancelled,
        ErrorKind::Serialization,
        ErrorKind::BadInput,
        ErrorKind::Executor,
        ErrorKind::Config,
        ErrorKind::WorkerLost,
        ErrorKind::UpstreamFailed,
        ErrorKind::LostContact,
        ErrorKind::Transfer,
    ];

    /// The name used in records, the CLI and the UI (`"timed_out"`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::User => "user",
            ErrorKind::Panic => "panic",
            ErrorKind::Hook => "hook",
            ErrorKind::TimedOut => "timed_out",
            ErrorKind::Cancelled => "cancelled",
            ErrorKind::Serialization => "serialization",
            ErrorKind::BadInput => "bad_input",
            ErrorKind::Executor => "executor",
            ErrorKind::Config => "config",
            ErrorKind::WorkerLost => "worker_lost",
            ErrorKind::UpstreamFailed => "upstream_failed",
            ErrorKind::LostContact => "lost_contact",
            ErrorKind::Transfer => "transfer",
        }
    }

    /// The kind named `s` (as [`ErrorKind::as_str`] writes it).
    pub fn parse(s: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether another attempt may succeed, so `retries` applies. Failures that the same inputs
    /// and the same configuration reproduce (bad input, serialization, configuration),
    /// cancellation and lost contact (the task may still run) are final.
    pub fn is_retryable(self) -> bool {
        matches!(
            self,
            ErrorKind::User
                | ErrorKind::Panic
                | ErrorKind::Hook
                | ErrorKind::TimedOut
                | ErrorKind::Executor
                | ErrorKind::WorkerLost
                | ErrorKind::Transfer
        )
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a node (or one attempt of it) failed: a kind and a readable message.
///
/// `Display` is the message alone, as reports and `covalent show` print it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeError {
    kind: ErrorKind,
    message: String,
}

impl NodeError {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        NodeError {
            kind,
            message: message.into(),
        }
    }

    /// The kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The readable message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the failure was a cancellation.
    pub fn is_cancelled(&self) -> bool {
        self.kind == ErrorKind::Cancelled
    }
}

impl fmt::Display for NodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for NodeError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for k in ErrorKind::ALL {
            assert_eq!(ErrorKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_value(k).unwrap();
            assert_eq!(json, serde_json::Value::from(k.as_str()));
        }
        assert_eq!(ErrorKind::parse("nonsense"), None);
    }

    #[test]
    fn deterministic_failures_are_final() {
        assert!(!ErrorKind::BadInput.is_retryable());
        assert!(!ErrorKind::Cancelled.is_retryable());
        assert!(!ErrorKind::Config.is_retryable());
        assert!(ErrorKind::TimedOut.is_retryable());
        assert!(ErrorKind::WorkerLost.is_retryable());
    }
}
