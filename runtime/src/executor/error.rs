//! [`ExecutorError`]: why an executor could not produce a node's value, and its kind.
//!
//! This module owns the executor API's error type and its mapping onto
//! [`NodeError`]; deciding on retries is the dispatcher's (it reads the kind).

use std::time::Duration;

use crate::electron::TaskError;
use crate::error::{ErrorKind, NodeError};

/// Why an executor could not produce a node's value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecutorError {
    /// The electron itself failed (returned `Err`, panicked, a hook failed).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The executor failed to run the task.
    #[error("{0}")]
    Failed(String),
    /// The process, job or host running the task went away without a result.
    #[error("{0}")]
    WorkerLost(String),
    /// The executor lost touch with a task that may still be running (say where, and that
    /// `covalent resume` or `covalent cancel` will find it through its job handle).
    #[error("{0}")]
    LostContact(String),
    /// An input or the output could not be (de)serialized on its way to or from the task.
    #[error("{0}")]
    Serialization(String),
    /// The attempt exceeded its time limit.
    #[error("timed out after {} (time_limit)", humantime::format_duration(*.0))]
    TimedOut(Duration),
    /// Cancellation was requested.
    #[error("cancelled")]
    Cancelled,
    /// No executor of that name is registered.
    #[error("unknown executor `{name}`; registered executors: {}", .registered.join(", "))]
    Unknown {
        /// The name asked for.
        name: String,
        /// Every registered name.
        registered: Vec<String>,
    },
    /// A plugin's constructor rejected its configuration.
    #[error("cannot create executor `{name}`: {reason}")]
    Config {
        /// The plugin name.
        name: String,
        /// What is wrong, naming the file, line and key where known.
        reason: String,
    },
}

impl ExecutorError {
    /// The kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            ExecutorError::Task(t) => t.kind(),
            ExecutorError::Failed(_) => ErrorKind::Executor,
            ExecutorError::WorkerLost(_) => ErrorKind::WorkerLost,
            ExecutorError::LostContact(_) => ErrorKind::LostContact,
            ExecutorError::Serialization(_) => ErrorKind::Serialization,
            ExecutorError::TimedOut(_) => ErrorKind::TimedOut,
            ExecutorError::Cancelled => ErrorKind::Cancelled,
            ExecutorError::Unknown { .. } | ExecutorError::Config { .. } => ErrorKind::Config,
        }
    }

    /// Whether another attempt may succeed (`retries` applies): see [`ErrorKind::is_retryable`].
    pub fn is_retryable(&self) -> bool {
        self.kind().is_retryable()
    }
}

impl From<ExecutorError> for NodeError {
    fn from(e: ExecutorError) -> Self {
        NodeError::new(e.kind(), e.to_string())
    }
}
