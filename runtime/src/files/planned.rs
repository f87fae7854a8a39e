//! The transfers of one task as resolved for it ([`Planned`]): absolute URIs outside the task's
//! directory, the order and which side moves each file. Plain data, shared by the option's
//! meaning (`transfer.rs`), the scope a task runs in (`scope.rs`) and task envelopes.

use serde::{Deserialize, Serialize};

/// When a transfer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Order {
    /// Before the task: from a URI into the task's directory.
    Before,
    /// After the task: from the task's directory to a URI.
    After,
}

/// Which side moves a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum By {
    /// Where the task runs (the worker, or this process for the `local` executor).
    Task,
    /// The dispatcher, through its executor (a file of the dispatching machine for a task
    /// elsewhere).
    Dispatcher,
}

/// A transfer resolved for one task: absolute URIs outside the task's directory, and who
/// moves it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Planned {
    /// Before or after.
    pub order: Order,
    /// The source (a URI, or a path in the task's directory after the task).
    pub from: String,
    /// The destination (a path in the task's directory before the task, or a URI).
    pub to: String,
    /// Who moves it.
    pub by: By,
}
