//! Node and dispatch statuses (Covalent's, plus NOT_RUN and REUSED). Owns names and the
//! terminal/non-terminal split; nothing else.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The state of a node or a dispatch.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
#[repr(u8)]
pub enum Status {
    /// Not scheduled yet (waiting for inputs).
    #[default]
    New = 0,
    /// Inputs ready, waiting for its executor.
    Pending = 1,
    /// Running.
    Running = 2,
    /// Finished with a value.
    Completed = 3,
    /// Finished with an error.
    Failed = 4,
    /// Cancelled on request.
    Cancelled = 5,
    /// Never ran because an upstream node failed or was cancelled.
    NotRun = 6,
    /// Value taken from an earlier dispatch.
    Reused = 7,
    /// The process running it died before it ended (dispatches and their running nodes).
    Interrupted = 8,
}

impl Status {
    pub(crate) fn from_u8(v: u8) -> Status {
        match v {
            0 => Status::New,
            1 => Status::Pending,
            2 => Status::Running,
            3 => Status::Completed,
            4 => Status::Failed,
            5 => Status::Cancelled,
            6 => Status::NotRun,
            7 => Status::Reused,
            _ => Status::Interrupted,
        }
    }

    /// Whether nothing more will happen to it.
    pub fn is_terminal(self) -> bool {
        !matches!(self, Status::New | Status::Pending | Status::Running)
    }

    /// The upper-case name (`COMPLETED`).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::New => "NEW",
            Status::Pending => "PENDING",
            Status::Running => "RUNNING",
            Status::Completed => "COMPLETED",
            Status::Failed => "FAILED",
            Status::Cancelled => "CANCELLED",
            Status::NotRun => "NOT_RUN",
            Status::Reused => "REUSED",
            Status::Interrupted => "INTERRUPTED",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for Status {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let all = [
            Status::New,
            Status::Pending,
            Status::Running,
            Status::Completed,
            Status::Failed,
            Status::Cancelled,
            Status::NotRun,
            Status::Reused,
            Status::Interrupted,
        ];
        all.into_iter()
            .find(|st| st.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                let names: Vec<&str> = all.iter().map(|s| s.as_str()).collect();
                format!(
                    "unknown status `{s}`; expected one of: {}",
                    names.join(", ")
                )
            })
    }
}
