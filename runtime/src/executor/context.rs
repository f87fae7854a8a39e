//! The runtime's side of one attempt, handed to every executor call ([`TaskContext`]): ids,
//! the results directory, the cancellation token, and where the executor records the job
//! handle and the task's streams.
//!
//! This module owns the context types; it does not run tasks.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::cancel::CancelState;

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
    /// What the node was admitted with (its declared needs), if anything.
    pub assignment: Option<crate::resources::Assignment>,
    /// The attempt's file transfers so far (the dispatcher puts them on the node after it).
    pub transfers: Arc<Mutex<Vec<crate::files::TransferRecord>>>,
    /// Set (by the `local` executor) when the attempt's body runs on a thread of its own that
    /// outlives the attempt if the attempt is given up.
    pub body_thread: Mutex<Option<Arc<BodyThread>>>,
    /// Told of each job handle as it is set (the dispatcher puts it on the node at once, so the
    /// store has it while the task runs).
    pub on_handle: Option<HandleSink>,
}

/// Where a job handle goes the moment an executor sets it.
pub(crate) type HandleSink = Box<dyn Fn(&JobHandle) + Send + Sync>;

/// A thread running an electron's body for one attempt: whether it is still running, and the
/// flag that tells the body ([`crate::cancelled`]) that its attempt was given up.
#[derive(Default)]
pub(crate) struct BodyThread {
    running: std::sync::atomic::AtomicBool,
    pub(crate) given_up: Arc<std::sync::atomic::AtomicBool>,
    ended: tokio::sync::Notify,
}

impl BodyThread {
    pub(crate) fn started() -> Arc<BodyThread> {
        let t = Arc::new(BodyThread::default());
        t.running.store(true, std::sync::atomic::Ordering::Release);
        t
    }
    pub(crate) fn ended(&self) {
        self.running
            .store(false, std::sync::atomic::Ordering::Release);
        self.ended.notify_waiters();
    }
    /// Whether the body still runs after waiting up to `grace` for it to return.
    pub(crate) async fn still_running_after(&self, grace: std::time::Duration) -> bool {
        let ended = self.ended.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if !self.running.load(std::sync::atomic::Ordering::Acquire) {
            return false;
        }
        tokio::time::timeout(grace, ended).await.is_err()
            && self.running.load(std::sync::atomic::Ordering::Acquire)
    }
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
    /// The context of an attempt of another process's dispatch (a maintenance process
    /// cancelling what a dead dispatcher left running).
    pub(crate) fn elsewhere(
        dispatch_id: Uuid,
        node_id: usize,
        name: &str,
        results_dir: &Path,
    ) -> Self {
        TaskContext {
            inner: Arc::new(CtxInner {
                dispatch_id,
                node_id,
                node_name: Box::leak(name.to_string().into_boxed_str()),
                attempt: 1,
                results_dir: results_dir.to_path_buf(),
                cancel: Arc::new(CancelState::new(None)),
                job_handle: Mutex::new(None),
                streams: Mutex::new(None),
                transfers: Default::default(),
                assignment: None,
                body_thread: Mutex::new(None),
                on_handle: None,
            }),
        }
    }

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
    /// Records the job handle of the running task, so it can be cancelled: call it as soon as
    /// the backend returns one (a pid, a job id, a container name). The node carries it from
    /// then on, and a recorded dispatch has it in the store within one write batch (25 ms),
    /// while the node is still RUNNING.
    pub fn set_job_handle(&self, handle: impl Serialize) {
        let h = JobHandle(serde_json::to_value(handle).unwrap_or(serde_json::Value::Null));
        if let Some(tell) = &self.inner.on_handle {
            tell(&h);
        }
        *self.inner.job_handle.lock().unwrap() = Some(h);
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
    /// What the node was given of its executor's capacity by its declared needs (`cpus`,
    /// `memory`, `gpus`, `resources`), when the executor admits nodes by them: hand it on to
    /// the task (the `process` executor sets `CUDA_VISIBLE_DEVICES` and
    /// [`covalent::assigned`](crate::assigned) from it).
    pub fn assignment(&self) -> Option<&crate::resources::Assignment> {
        self.inner.assignment.as_ref()
    }
    /// Records a file transfer of this attempt (shown with the node: `covalent show`, the
    /// record JSON, the UI). Transfers made where the task runs come back in its result
    /// envelope; [`files::receive`](crate::executor::files::receive) records those.
    pub fn record_transfer(&self, mut record: crate::files::TransferRecord) {
        if record.attempt == 0 {
            record.attempt = self.inner.attempt;
        }
        self.inner.transfers.lock().unwrap().push(record);
    }
    /// Records the task's stdout and stderr (shown in the result, appended to `log_stdout` /
    /// `log_stderr`).
    pub fn record_streams(&self, stdout: impl Into<String>, stderr: impl Into<String>) {
        *self.inner.streams.lock().unwrap() = Some((stdout.into(), stderr.into()));
    }
}
