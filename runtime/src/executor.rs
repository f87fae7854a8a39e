//! The executor interface: where and how a node runs.
//!
//! [`Executor`] is the async interface (Covalent's `AsyncBaseExecutor`): `setup`, `run`,
//! `teardown` and `cancel`, with the base options every executor has ([`BaseOptions`]) and
//! `to_dict`/`from_dict` through serde. [`BlockingExecutor`] is the blocking flavour (Covalent's
//! `BaseExecutor`); the runtime runs it on a blocking thread through [`Blocking`]. A running task
//! talks to the runtime through its [`TaskContext`].
//!
//! This module owns the interface and the task/context types; choosing, retrying and timing
//! executors is the dispatcher's job, finding them by name the registry's.

use std::borrow::Cow;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::dispatcher::{CancelState, panic_message};
use crate::electron::{Args, Body, ElectronDef, TaskError};
use crate::value::Output;

/// Options every executor has (Covalent's base executor options).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BaseOptions {
    /// File the task's stdout is appended to after each run.
    pub log_stdout: Option<PathBuf>,
    /// File the task's stderr is appended to after each run.
    pub log_stderr: Option<PathBuf>,
    /// Directory for the executor's own files (created when used).
    pub cache_dir: Option<PathBuf>,
    /// Default time limit per attempt for nodes on this executor (an electron's own
    /// `time_limit` wins). In config files: `"30s"`, `"5m"` or a number of seconds.
    #[serde(with = "crate::config::duration_opt")]
    pub time_limit: Option<Duration>,
    /// Default number of retries for nodes on this executor (an electron's own `retries` wins).
    pub retries: Option<u32>,
}

impl BaseOptions {
    /// The cache directory: the configured one, or the user's cache dir + `covalent`.
    pub fn cache_dir(&self) -> PathBuf {
        self.cache_dir.clone().unwrap_or_else(|| {
            dirs::cache_dir()
                .unwrap_or_else(std::env::temp_dir)
                .join("covalent")
        })
    }
}

static DEFAULT_BASE: LazyLock<BaseOptions> = LazyLock::new(BaseOptions::default);

/// Appends a task's streams to the files named by `log_stdout` / `log_stderr` (parent
/// directories are created), as Covalent's `write_streams_to_file` does.
pub fn write_streams_to_file(
    stdout: &str,
    stderr: &str,
    base: &BaseOptions,
) -> std::io::Result<()> {
    for (text, path) in [(stdout, &base.log_stdout), (stderr, &base.log_stderr)] {
        if let Some(path) = path {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?;
            f.write_all(text.as_bytes())?;
        }
    }
    Ok(())
}

/// Serialization of an executor's configuration (`to_dict`), implemented for every
/// `Serialize` type.
pub trait ToDict {
    /// The executor's attributes as JSON (what the result and the store record).
    fn to_dict(&self) -> serde_json::Value;
}

impl<T: Serialize> ToDict for T {
    fn to_dict(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_else(|e| serde_json::Value::String(e.to_string()))
    }
}

/// Rebuilds an executor from the dictionary [`ToDict::to_dict`] produced (`from_dict`).
/// Missing keys take their defaults; a wrong or unknown key is an error that names it.
pub fn from_dict<E>(dict: serde_json::Value) -> Result<E, ExecutorError>
where
    E: DeserializeOwned + Serialize + Default,
{
    crate::registry::deserialize_options(dict)
        .map_err(|e| ExecutorError::Failed(format!("invalid executor options: {e}")))
}

/// Why an executor could not produce a node's value.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ExecutorError {
    /// The electron itself failed (returned `Err`, panicked, a hook failed).
    #[error(transparent)]
    Task(#[from] TaskError),
    /// The executor failed to run the task.
    #[error("{0}")]
    Failed(String),
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
    /// Whether another attempt may succeed (`retries` applies).
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            ExecutorError::Task(_) | ExecutorError::Failed(_) | ExecutorError::TimedOut(_)
        )
    }
}

/// An opaque handle an executor records for a running job (a pid, a Slurm job id, a container
/// id) so the job can be cancelled or re-attached.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobHandle(pub serde_json::Value);

/// Where a task runs: ids and the results directory (Covalent's `get_dispatch_context`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DispatchContext {
    /// The dispatch id.
    pub dispatch_id: Uuid,
    /// The node id within its lattice.
    pub node_id: usize,
    /// The directory for this dispatch's files.
    pub results_dir: PathBuf,
}

pub(crate) struct CtxInner {
    pub dispatch_id: Uuid,
    pub node_id: usize,
    pub node_name: &'static str,
    pub attempt: u32,
    pub results_dir: PathBuf,
    pub cancel: Arc<CancelState>,
    pub job_handle: Mutex<Option<JobHandle>>,
    pub streams: Mutex<Option<(String, String)>>,
}

/// The runtime's side of one attempt of one task, handed to every executor call.
#[derive(Clone)]
pub struct TaskContext {
    pub(crate) inner: Arc<CtxInner>,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("dispatch_id", &self.inner.dispatch_id)
            .field("node_id", &self.inner.node_id)
            .field("attempt", &self.inner.attempt)
            .finish()
    }
}

impl TaskContext {
    /// Dispatch id, node id and results directory.
    pub fn get_dispatch_context(&self) -> DispatchContext {
        DispatchContext {
            dispatch_id: self.inner.dispatch_id,
            node_id: self.inner.node_id,
            results_dir: self.inner.results_dir.clone(),
        }
    }
    /// The dispatch id.
    pub fn dispatch_id(&self) -> Uuid {
        self.inner.dispatch_id
    }
    /// The node id.
    pub fn node_id(&self) -> usize {
        self.inner.node_id
    }
    /// The node's display name.
    pub fn node_name(&self) -> &str {
        self.inner.node_name
    }
    /// The attempt number, from 1.
    pub fn attempt(&self) -> u32 {
        self.inner.attempt
    }
    /// The dispatch's results directory (created on first call).
    pub fn results_dir(&self) -> std::io::Result<&Path> {
        std::fs::create_dir_all(&self.inner.results_dir)?;
        Ok(&self.inner.results_dir)
    }
    /// Records the job handle of the running task, so it can be cancelled.
    pub fn set_job_handle(&self, handle: impl Serialize) {
        let v = serde_json::to_value(handle).unwrap_or(serde_json::Value::Null);
        *self.inner.job_handle.lock().unwrap() = Some(JobHandle(v));
    }
    /// The job handle recorded so far.
    pub fn job_handle(&self) -> Option<JobHandle> {
        self.inner.job_handle.lock().unwrap().clone()
    }
    /// Whether cancellation of this task (or its whole dispatch) was requested.
    pub fn get_cancel_requested(&self) -> bool {
        self.inner.cancel.is_requested(self.inner.node_id)
    }
    /// Completes when cancellation of this task is requested.
    pub async fn cancelled(&self) {
        self.inner.cancel.wait(self.inner.node_id).await
    }
    /// Records the task's stdout and stderr (shown in the result, appended to `log_stdout` /
    /// `log_stderr`).
    pub fn record_streams(&self, stdout: impl Into<String>, stderr: impl Into<String>) {
        *self.inner.streams.lock().unwrap() = Some((stdout.into(), stderr.into()));
    }
}

/// One attempt of one electron call, handed to an executor's `run`.
pub struct Task {
    pub(crate) def: &'static ElectronDef,
    pub(crate) args: Args,
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
    /// The inputs as JSON, in parameter order.
    pub fn inputs_json(&self) -> Vec<serde_json::Value> {
        self.args.to_json()
    }
    /// Whether the electron is an `async fn`.
    pub fn is_async(&self) -> bool {
        matches!(self.def.body, Body::Async(_))
    }

    /// Runs the electron here, blocking this thread: `deps_bash`, `call_before`, the body,
    /// `call_after`. An async body is driven to completion on the current runtime handle.
    /// A panic becomes [`TaskError::Panicked`].
    pub fn call_blocking(mut self) -> Result<Output, TaskError> {
        crate::dispatcher::run_before_hooks(self.def)?;
        let out = match self.def.body {
            Body::Sync(f) => crate::dispatcher::catch(|| f(&mut self.args)),
            Body::Async(f) => {
                let fut = crate::dispatcher::catch(|| f(&mut self.args))?;
                let handle = tokio::runtime::Handle::try_current().map_err(|_| {
                    TaskError::Failed("an async electron needs a tokio runtime to run on".into())
                })?;
                handle.block_on(crate::dispatcher::catch_future(fut))
            }
            Body::Sublattice(_) => Err(TaskError::Failed(
                "a sublattice runs on the dispatcher, not through an executor".into(),
            )),
        }?;
        crate::dispatcher::run_after_hooks(self.def)?;
        Ok(out)
    }

    /// Runs the electron without blocking the async runtime: a sync body (and its hooks) on a
    /// blocking thread, an async body here.
    pub async fn call(mut self) -> Result<Output, TaskError> {
        match self.def.body {
            Body::Async(f) if !self.def.has_hooks() => {
                let fut = crate::dispatcher::catch(|| f(&mut self.args))?;
                crate::dispatcher::catch_future(fut).await
            }
            _ => tokio::task::spawn_blocking(move || self.call_blocking())
                .await
                .map_err(|e| TaskError::Panicked(panic_message_join(e)))?,
        }
    }
}

fn panic_message_join(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(p) => panic_message(&p),
        Err(e) => e.to_string(),
    }
}

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
            ExecutorError::Failed(format!("executor panicked: {}", panic_message_join(j)))
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
}

static INSTANCES: AtomicU64 = AtomicU64::new(1);

/// A shared executor instance. Cloning shares the instance; every electron that names the
/// same `ExecutorRef` (or the same registered name) runs on the same instance.
///
/// ```
/// use std::sync::LazyLock;
/// use covalent::{ExecutorRef, LocalExecutor};
///
/// static SHARED: LazyLock<ExecutorRef> = LazyLock::new(|| ExecutorRef::new(LocalExecutor::default()));
/// // #[electron(executor = &SHARED)] on several electrons
/// assert_eq!(SHARED.instance_id(), SHARED.clone().instance_id());
/// ```
#[derive(Clone)]
pub struct ExecutorRef {
    pub(crate) exec: Arc<dyn Executor>,
    instance: u64,
}

impl fmt::Debug for ExecutorRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}#{}", self.exec.short_name(), self.instance)
    }
}

impl ExecutorRef {
    /// Shares an async executor.
    pub fn new<E: Executor>(e: E) -> Self {
        ExecutorRef {
            exec: Arc::new(e),
            instance: INSTANCES.fetch_add(1, Ordering::Relaxed),
        }
    }
    /// Shares a blocking executor.
    pub fn blocking<E: BlockingExecutor>(e: E) -> Self {
        Self::new(Blocking::new(e))
    }
    /// A process-unique number for this instance.
    pub fn instance_id(&self) -> u64 {
        self.instance
    }
    /// The executor's short name.
    pub fn short_name(&self) -> &str {
        self.exec.short_name()
    }
    /// The executor's `to_dict()`.
    pub fn to_dict(&self) -> serde_json::Value {
        self.exec.to_dict()
    }
    /// The executor.
    pub fn executor(&self) -> &dyn Executor {
        &*self.exec
    }
    /// The executor as its concrete type (for a blocking one, `Blocking<E>`).
    pub fn downcast_ref<E: Executor>(&self) -> Option<&E> {
        let any: &dyn std::any::Any = &*self.exec;
        any.downcast_ref::<E>()
    }
}

/// An executor chosen at a call site: a registered name or an instance.
#[derive(Clone, Debug)]
pub enum ExecutorSel {
    /// A registered plugin name; options come from its defaults and `covalent.toml`.
    Named(Cow<'static, str>),
    /// A given instance.
    Instance(ExecutorRef),
}

impl ExecutorSel {
    pub(crate) fn same(&self, other: &ExecutorSel) -> bool {
        match (self, other) {
            (ExecutorSel::Named(a), ExecutorSel::Named(b)) => a == b,
            (ExecutorSel::Instance(a), ExecutorSel::Instance(b)) => a.instance == b.instance,
            _ => false,
        }
    }
}

#[doc(hidden)]
pub mod marker {
    pub struct Async;
    pub struct Blocking;
    pub struct Other;
}

/// What the `executor = ...` option accepts: a registered name (`"local"`), an
/// [`ExecutorRef`] (shared instance), or an executor value (a new instance per call).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not an executor",
    label = "expected an executor name, an `ExecutorRef`, or a value implementing `Executor` or `BlockingExecutor`"
)]
pub trait IntoExecutor<M> {
    /// The selection.
    fn into_executor(self) -> ExecutorSel;
}

impl<E: Executor> IntoExecutor<marker::Async> for E {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(ExecutorRef::new(self))
    }
}
impl<E: BlockingExecutor> IntoExecutor<marker::Blocking> for E {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(ExecutorRef::blocking(self))
    }
}
impl IntoExecutor<marker::Other> for &'static str {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Named(Cow::Borrowed(self))
    }
}
impl IntoExecutor<marker::Other> for String {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Named(Cow::Owned(self))
    }
}
impl IntoExecutor<marker::Other> for ExecutorRef {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(self)
    }
}
impl IntoExecutor<marker::Other> for &ExecutorRef {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance(self.clone())
    }
}
impl IntoExecutor<marker::Other> for &LazyLock<ExecutorRef> {
    fn into_executor(self) -> ExecutorSel {
        ExecutorSel::Instance((**self).clone())
    }
}
impl IntoExecutor<marker::Other> for ExecutorSel {
    fn into_executor(self) -> ExecutorSel {
        self
    }
}
