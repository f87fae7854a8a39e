//! Electron definitions: the static description `#[electron]` generates for each task function
//! (name, options, the type-erased body), the arguments a body receives, and the errors a body
//! can end with.
//!
//! This module owns what a single task *is*; it does not schedule, retry or time anything (the
//! dispatcher does) and does not know where a task runs (executors do). It sits below the graph
//! model: a sublattice's body builds a graph, which travels through here as an opaque
//! [`SubGraph`] that only the graph model opens.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::error::{ErrorKind, NodeError};
use crate::value::{Output, Value};

/// The future an `async fn` electron's body becomes.
pub type TaskFuture = Pin<Box<dyn Future<Output = Result<Output, TaskError>> + Send + 'static>>;

/// How an electron's body runs.
#[derive(Clone, Copy)]
pub enum Body {
    /// A plain function: runs on a worker thread, never on the async runtime.
    Sync(fn(&mut Args) -> Result<Output, TaskError>),
    /// An `async fn`: runs on the async runtime.
    Async(fn(&mut Args) -> Result<TaskFuture, TaskError>),
    /// A sublattice: builds a child graph from its inputs at run time.
    Sublattice(fn(&mut Args) -> Result<SubGraph, TaskError>),
}

/// The graph a sublattice's body built, opaque at this layer (the graph model makes and opens
/// it: `covalent::__private::sublattice` and the dispatcher).
pub struct SubGraph(pub(crate) Box<dyn std::any::Any + Send>);

impl fmt::Debug for SubGraph {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubGraph")
    }
}

/// A function run before or after an electron's body (`call_before` / `call_after`).
#[derive(Clone, Copy)]
pub struct Hook {
    /// The path the user wrote, for messages.
    pub name: &'static str,
    /// Runs the hook; an `Err` fails the node.
    pub run: fn() -> Result<(), String>,
}

/// The static description of one `#[electron]` function.
pub struct ElectronDef {
    /// Display name (the `name` option, or the function's name).
    pub name: &'static str,
    /// Stable registration name: `module::path::function`.
    pub path: &'static str,
    /// Parameter names, in order (edge labels).
    pub params: &'static [&'static str],
    /// A digest of the function's source as written: a changed body is a changed electron
    /// (redispatch does not reuse its old outputs).
    pub digest: &'static str,
    /// The type of `fn(params) -> output`, so a replacement electron can be checked.
    pub signature: fn() -> std::any::TypeId,
    /// `retries` option: extra attempts after a failure.
    pub retries: Option<u32>,
    /// `time_limit` option, per attempt.
    pub time_limit: Option<Duration>,
    /// `deps_bash` option: shell commands run before the body, where it runs.
    pub deps_bash: &'static [&'static str],
    /// `call_before` option.
    pub call_before: &'static [Hook],
    /// `call_after` option.
    pub call_after: &'static [Hook],
    /// `files` option: transfers before and after the body, where it runs.
    pub files: &'static [crate::files::Transfer],
    /// Whether the body names `File` or `task_dir` (it then always runs in a files scope).
    pub uses_files: bool,
    /// `pool` option: the concurrency pool (`[pools]` in the configuration) it runs in.
    pub pool: Option<&'static str>,
    /// `cpus`, `memory`, `gpus`, `resources` options: what it needs while it runs.
    pub needs: crate::resources::Needs,
    /// The body.
    pub body: Body,
}

impl ElectronDef {
    pub(crate) fn has_hooks(&self) -> bool {
        !self.deps_bash.is_empty()
            || !self.call_before.is_empty()
            || !self.call_after.is_empty()
            || !self.files.is_empty()
    }
}

impl fmt::Debug for ElectronDef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ElectronDef")
            .field("name", &self.name)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// Registration of an electron by its stable name, collected with `inventory` so a worker
/// process can find the function to run.
pub struct ElectronEntry(pub &'static ElectronDef);

inventory::collect!(ElectronEntry);

/// Looks an electron up by its stable registration name (`module::path::function`).
pub fn find_electron(path: &str) -> Option<&'static ElectronDef> {
    inventory::iter::<ElectronEntry>
        .into_iter()
        .map(|e| e.0)
        .find(|d| d.path == path)
}

/// The inputs of one node, in parameter order.
pub struct Args {
    pub(crate) values: Vec<Output>,
}

impl Args {
    pub(crate) fn new(values: Vec<Output>) -> Self {
        Args { values }
    }

    /// Number of inputs.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether there are no inputs.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// Input `i` as a `T` (a clone of the upstream output).
    pub fn take<T: Value>(&mut self, i: usize) -> Result<T, TaskError> {
        match self.values.get(i) {
            Some(v) => v.get::<T>().map_err(TaskError::Input),
            None => Err(TaskError::Input(format!(
                "argument {i} is missing ({} given)",
                self.values.len()
            ))),
        }
    }

    /// Input `i` as the shared output.
    pub fn output(&self, i: usize) -> Option<&Output> {
        self.values.get(i)
    }

    /// JSON of every input, in order; `Err` names the first input that would not read back as
    /// it is (see [`Output::check`]).
    pub fn to_json(&self) -> Result<Vec<serde_json::Value>, String> {
        self.values
            .iter()
            .enumerate()
            .map(|(i, v)| {
                v.to_json().map_err(|e| {
                    format!(
                        "input {i} (a `{}`) cannot be sent as JSON faithfully, {e}",
                        v.type_name()
                    )
                })
            })
            .collect()
    }
}

/// Why an electron's body did not produce a value.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum TaskError {
    /// The body returned `Err`.
    #[error("{0}")]
    Failed(String),
    /// The body panicked.
    #[error("panicked: {0}")]
    Panicked(String),
    /// An input could not be read as the parameter's type.
    #[error("bad input: {0}")]
    Input(String),
    /// A `deps_bash` command or a `call_before`/`call_after` hook failed.
    #[error("{0}")]
    Hook(String),
    /// A file transfer before or after the body failed.
    #[error("{0}")]
    Transfer(String),
}

impl TaskError {
    /// The kind of failure this is.
    pub fn kind(&self) -> ErrorKind {
        match self {
            TaskError::Failed(_) => ErrorKind::User,
            TaskError::Panicked(_) => ErrorKind::Panic,
            TaskError::Input(_) => ErrorKind::BadInput,
            TaskError::Hook(_) => ErrorKind::Hook,
            TaskError::Transfer(_) => ErrorKind::Transfer,
        }
    }
}

impl From<TaskError> for NodeError {
    fn from(e: TaskError) -> Self {
        NodeError::new(e.kind(), e.to_string())
    }
}
