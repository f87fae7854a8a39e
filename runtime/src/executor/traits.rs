//! The executor interfaces: [`Executor`] (async, Covalent's `AsyncBaseExecutor`),
//! [`BlockingExecutor`] (Covalent's `BaseExecutor`) and the [`Blocking`] adapter that runs the
//! blocking one on blocking threads.
//!
//! This module owns the traits; enforcing time limits and retries around them is the
//! dispatcher's job.

use std::sync::Arc;

use serde::Serialize;

use super::context::{JobHandle, TaskContext};
use super::error::ExecutorError;
use super::options::{BaseOptions, DEFAULT_BASE, ToDict};
use super::task::Task;
use crate::value::Output;

/// The async executor interface (Covalent's `AsyncBaseExecutor`).
///
/// `setup` → `run` → `teardown` are called for every attempt of every node; `cancel` when the
/// task's cancellation is requested or its time limit passes. The runtime enforces `time_limit`
/// and `retries` around `run`, so an executor only runs the task.
#[async_trait::async_trait]
pub trait Executor: ToDict + std::any::Any + Send + Sync + 'static {
    /// The short name (the registered plugin name, e.g. `"local"`).
    fn short_name(&self) -> &str;

    /// The base options.
    fn base(&self) -> &BaseOptions {
        &DEFAULT_BASE
    }

    /// Prepares to run a task (create directories, open connections).
    async fn setup(&self, _ctx: &TaskContext) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Runs the task and returns its output.
    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError>;

    /// Cleans up after a task.
    async fn teardown(&self, _ctx: &TaskContext) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Cancels the running task identified by `job_handle`; returns whether it was cancelled.
    async fn cancel(
        &self,
        _ctx: &TaskContext,
        _job_handle: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        Ok(false)
    }

    /// Where an attempt started by an earlier process stands, from the job handle it recorded
    /// (a resume asks this of every attempt its crashed dispatcher left RUNNING): still
    /// running, ended with its result where [`Executor::reattach`] can fetch it, or gone (never
    /// started, ended without a result, or cleaned up), in which case the node runs anew.
    ///
    /// A handle recorded before the backend answered (a Slurm job name without its id, a
    /// container name, a remote work directory) is reconciled here through that name. The
    /// default, for executors whose tasks live in the dispatcher's process, is `Gone`.
    async fn probe(&self, _job_handle: &JobHandle) -> Result<Probe, ExecutorError> {
        Ok(Probe::Gone)
    }

    /// Follows an attempt started by an earlier process to its end, as `run` would have:
    /// waits while it runs, then returns its output (or its failure), records its streams
    /// through `ctx` and cleans up after it. Called only after [`Executor::probe`] said
    /// `Running` or `Finished`; the runtime bounds it with the node's time limit and cancels
    /// it through [`Executor::cancel`] with the same handle.
    async fn reattach(
        &self,
        _job_handle: &JobHandle,
        _ctx: &TaskContext,
    ) -> Result<Output, ExecutorError> {
        Err(cannot_reattach(self.short_name()))
    }

    /// A limit on how many nodes of this executor run at once, shared by whoever holds the
    /// same semaphore (e.g. every executor submitting to one cluster with the same
    /// `max_jobs`). A node waits for a permit before it starts and holds it until it has
    /// ended, retries included; while it waits it stays PENDING. `None` (the default): no
    /// limit beyond the executor's own.
    fn in_flight_limit(&self) -> Option<Arc<tokio::sync::Semaphore>> {
        None
    }

    /// The ledger that admits this instance's nodes by their declared needs (`cpus`,
    /// `memory`, `gpus`, named `resources`): a node waits (PENDING) until its needs fit what
    /// is free, and is given its share ([`crate::resources::Assignment`]). `None` (the
    /// default): needs are not admitted here (an engine such as Slurm does it, or nothing).
    fn resource_ledger(&self) -> Option<Arc<crate::resources::Ledger>> {
        None
    }

    #[doc(hidden)]
    /// Whether sync electrons on this executor may run directly on the runtime's worker pool.
    fn runs_inline(&self) -> bool {
        false
    }
}

/// The blocking executor interface (Covalent's `BaseExecutor`): like [`Executor`], but its
/// methods block. The runtime calls them on a blocking thread.
pub trait BlockingExecutor: ToDict + Send + Sync + 'static {
    /// The short name.
    fn short_name(&self) -> &str;

    /// The base options.
    fn base(&self) -> &BaseOptions {
        &DEFAULT_BASE
    }

    /// Prepares to run a task.
    fn setup(&self, _ctx: &TaskContext) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Runs the task (typically `task.call_blocking()`, measured or wrapped).
    fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError>;

    /// Cleans up after a task.
    fn teardown(&self, _ctx: &TaskContext) -> Result<(), ExecutorError> {
        Ok(())
    }

    /// Cancels a running task.
    fn cancel(
        &self,
        _ctx: &TaskContext,
        _job_handle: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        Ok(false)
    }

    /// Where an attempt started by an earlier process stands (see [`Executor::probe`]).
    fn probe(&self, _job_handle: &JobHandle) -> Result<Probe, ExecutorError> {
        Ok(Probe::Gone)
    }

    /// Follows an attempt started by an earlier process to its end (see
    /// [`Executor::reattach`]).
    fn reattach(
        &self,
        _job_handle: &JobHandle,
        _ctx: &TaskContext,
    ) -> Result<Output, ExecutorError> {
        Err(cannot_reattach(self.short_name()))
    }
}

/// The default `reattach`'s error: this executor's tasks live and die in the dispatcher's
/// process (its `probe` says `Gone`, so a resume never calls it).
fn cannot_reattach(executor: &str) -> ExecutorError {
    ExecutorError::Failed(format!(
        "the `{executor}` executor cannot re-attach to a task started by another process"
    ))
}

/// Where an attempt started by an earlier process stands ([`Executor::probe`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Probe {
    /// It still runs: a resume waits for it ([`Executor::reattach`]).
    Running,
    /// It ended and its result is there to fetch ([`Executor::reattach`] returns it at once).
    Finished,
    /// Nothing of it is left to follow: a resume runs the node anew.
    Gone,
}

/// Adapts a [`BlockingExecutor`] onto [`Executor`]: every call runs on a blocking thread.
pub struct Blocking<E>(pub Arc<E>);

impl<E: BlockingExecutor> Blocking<E> {
    /// Wraps a blocking executor.
    pub fn new(e: E) -> Self {
        Blocking(Arc::new(e))
    }
}

impl<E: BlockingExecutor> Serialize for Blocking<E> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_dict().serialize(s)
    }
}

async fn blocking<E, R>(
    e: &Arc<E>,
    ctx: &TaskContext,
    f: impl FnOnce(&E, &TaskContext) -> Result<R, ExecutorError> + Send + 'static,
) -> Result<R, ExecutorError>
where
    E: BlockingExecutor,
    R: Send + 'static,
{
    let e = e.clone();
    let ctx = ctx.clone();
    tokio::task::spawn_blocking(move || f(&e, &ctx))
        .await
        .map_err(|j| {
            ExecutorError::Failed(format!(
                "executor panicked: {}",
                crate::invoke::join_error_message(j)
            ))
        })?
}

#[async_trait::async_trait]
impl<E: BlockingExecutor> Executor for Blocking<E> {
    fn short_name(&self) -> &str {
        self.0.short_name()
    }
    fn base(&self) -> &BaseOptions {
        self.0.base()
    }
    async fn setup(&self, ctx: &TaskContext) -> Result<(), ExecutorError> {
        blocking(&self.0, ctx, |e, c| e.setup(c)).await
    }
    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        blocking(&self.0, ctx, move |e, c| e.run(task, c)).await
    }
    async fn teardown(&self, ctx: &TaskContext) -> Result<(), ExecutorError> {
        blocking(&self.0, ctx, |e, c| e.teardown(c)).await
    }
    async fn cancel(
        &self,
        ctx: &TaskContext,
        h: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        let h = h.cloned();
        blocking(&self.0, ctx, move |e, c| e.cancel(c, h.as_ref())).await
    }
    async fn probe(&self, h: &JobHandle) -> Result<Probe, ExecutorError> {
        let (e, h) = (self.0.clone(), h.clone());
        tokio::task::spawn_blocking(move || e.probe(&h))
            .await
            .map_err(|j| {
                ExecutorError::Failed(format!(
                    "executor panicked: {}",
                    crate::invoke::join_error_message(j)
                ))
            })?
    }
    async fn reattach(&self, h: &JobHandle, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let h = h.clone();
        blocking(&self.0, ctx, move |e, c| e.reattach(&h, c)).await
    }
}
