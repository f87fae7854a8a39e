//! [`Task`]: one attempt of one electron call as an executor receives it: the electron, its
//! inputs, and ways to run it here (blocking or async) with hooks and panic capture.
//!
//! This module owns the task type; where it runs is the executor's choice.

use std::fmt;

use crate::electron::{Args, Body, ElectronDef, TaskError};

use super::error::ExecutorError;
use crate::invoke;
use crate::value::Output;

/// One attempt of one electron call, handed to an executor's `run`.
pub struct Task {
    pub(crate) def: &'static ElectronDef,
    pub(crate) args: Args,
    /// The files side of running it in this process (set by the dispatcher when the electron
    /// has transfers or the program uses files): its scope and where its transfer records go.
    pub(crate) files: Option<InProcessFiles>,
}

/// The files side of a task run in this process.
pub(crate) struct InProcessFiles {
    pub(crate) scope: crate::files::Scope,
    pub(crate) sink: std::sync::Arc<std::sync::Mutex<Vec<crate::files::TransferRecord>>>,
}

impl fmt::Debug for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Task")
            .field("electron", &self.def.path)
            .field("inputs", &self.args.len())
            .finish()
    }
}

impl Task {
    /// The electron's display name.
    pub fn electron_name(&self) -> &'static str {
        self.def.name
    }
    /// The electron's stable registration name (`module::path::function`).
    pub fn electron_path(&self) -> &'static str {
        self.def.path
    }
    /// The inputs as JSON, in parameter order; a [`ExecutorError::Serialization`] when one
    /// would not read back as it is (a NaN, an integer wider than 64 bits, a map key that is
    /// not a string, ...), naming the electron, the input and the offending part.
    pub fn inputs_json(&self) -> Result<Vec<serde_json::Value>, ExecutorError> {
        self.args.to_json().map_err(|e| {
            ExecutorError::Serialization(format!(
                "electron `{}` cannot run outside this process: its {e}",
                self.def.name
            ))
        })
    }
    /// Whether the electron is an `async fn`.
    pub fn is_async(&self) -> bool {
        matches!(self.def.body, Body::Async(_))
    }

    /// Runs the electron here, blocking this thread: `deps_bash`, `call_before`, the body,
    /// `call_after`. An async body is driven to completion on the current runtime handle.
    /// A panic becomes [`TaskError::Panicked`].
    pub fn call_blocking(mut self) -> Result<Output, TaskError> {
        match self.files.take() {
            Some(files) => {
                let (r, scope) = crate::files::enter(files.scope, || self.call_here());
                files.sink.lock().unwrap().extend(scope.records);
                r
            }
            None => self.call_here(),
        }
    }

    fn call_here(mut self) -> Result<Output, TaskError> {
        invoke::run_before_hooks(self.def)?;
        let out = match self.def.body {
            Body::Sync(f) => invoke::catch(|| f(&mut self.args)).map_err(invoke::classify),
            Body::Async(f) => {
                let fut = invoke::catch(|| f(&mut self.args))?;
                let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                    TaskError::Failed("an async electron needs a tokio runtime to run on".into())
                })?;
                handle
                    .block_on(invoke::catch_future(fut))
                    .map_err(invoke::classify)
            }
            Body::Sublattice(_) => Err(TaskError::Failed(
                "a sublattice runs on the dispatcher, not through an executor".into(),
            )),
        }?;
        invoke::run_after_hooks(self.def)?;
        Ok(out)
    }

    /// Runs the electron without blocking the async runtime: a sync body (and its hooks) on a
    /// blocking thread, an async body here.
    pub async fn call(mut self) -> Result<Output, TaskError> {
        match self.def.body {
            Body::Async(f) if !self.def.has_hooks() => match self.files.take() {
                Some(files) => {
                    let mut args = self.args;
                    let (r, scope) = crate::files::Scoped::new(files.scope, async move {
                        let fut = invoke::catch(|| f(&mut args))?;
                        invoke::catch_future(fut).await.map_err(invoke::classify)
                    })
                    .await;
                    files.sink.lock().unwrap().extend(scope.records);
                    r
                }
                None => {
                    let fut = invoke::catch(|| f(&mut self.args))?;
                    invoke::catch_future(fut).await
                }
            },
            _ => tokio::task::spawn_blocking(move || self.call_blocking())
                .await
                .map_err(|e| TaskError::Panicked(invoke::join_error_message(e)))?,
        }
    }
}
