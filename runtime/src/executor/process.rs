//! The built-in `process` executor: each task in a child process (the same binary, in worker
//! mode), with its stdout and stderr captured per node, killed with its whole process group on
//! time-out or cancellation, and a crash (abort, segfault, `exit(3)`) reported with the signal
//! or exit code and the end of its stderr.
//!
//! This module owns starting, watching and killing children; the envelopes are `worker.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::sync::Semaphore;

use super::child::{describe_exit, kill_group, with_stderr_tail};
use super::worker::{
    PARENT_ENV, RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, current_binary,
};
use crate::executor::{BaseOptions, Executor, ExecutorError, JobHandle, Task, TaskContext};
use crate::value::Output;

/// Runs each task in a child process.
///
/// Options (`[executors.process]`): the [`BaseOptions`], `max_concurrency` (tasks running at
/// once; default: the number of cores), `env` (extra environment variables), `workdir` (the
/// children's working directory).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ProcessExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// Most tasks running at once (default: the number of cores).
    pub max_concurrency: Option<usize>,
    /// Extra environment variables for the children.
    pub env: BTreeMap<String, String>,
    /// Working directory of the children (default: the current one).
    pub workdir: Option<PathBuf>,
    #[serde(skip)]
    limiter: Arc<OnceLock<Semaphore>>,
}

impl ProcessExecutor {
    /// A process executor with default options.
    pub fn new() -> Self {
        Self::default()
    }

    fn limiter(&self) -> &Semaphore {
        self.limiter.get_or_init(|| {
            let n = self.max_concurrency.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            });
            Semaphore::new(n.max(1))
        })
    }
}

static SCRATCH: AtomicU64 = AtomicU64::new(0);

/// A scratch directory for one task's envelopes, removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> std::io::Result<Scratch> {
        let dir = std::env::temp_dir().join(format!(
            "covalent-task-{}-{}",
            std::process::id(),
            SCRATCH.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[async_trait::async_trait]
impl Executor for ProcessExecutor {
    fn short_name(&self) -> &str {
        "process"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let _permit = self
            .limiter()
            .acquire()
            .await
            .map_err(|e| ExecutorError::Failed(e.to_string()))?;
        let scratch = Scratch::new()
            .map_err(|e| ExecutorError::Failed(format!("cannot make a scratch dir: {e}")))?;
        let (task_file, result_file) = (scratch.0.join("task.json"), scratch.0.join("result.json"));
        TaskEnvelope::of(&task, ctx)?
            .write(&task_file)
            .map_err(|e| ExecutorError::Failed(format!("cannot write the task envelope: {e}")))?;
        let binary = current_binary().map_err(|e| {
            ExecutorError::Failed(format!("cannot find this program's binary: {e}"))
        })?;
        let mut cmd = tokio::process::Command::new(&binary);
        cmd.env(TASK_ENV, &task_file)
            .env(RESULT_ENV, &result_file)
            .env(PARENT_ENV, std::process::id().to_string())
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        let mut child = cmd.spawn().map_err(|e| {
            ExecutorError::Failed(format!("cannot start a worker ({}): {e}", binary.display()))
        })?;
        let pid = child.id().unwrap_or(0);
        ctx.set_job_handle(serde_json::json!({ "pid": pid, "pgid": pid }));
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let read = |pipe: Option<tokio::process::ChildStdout>| async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        let read_err = |pipe: Option<tokio::process::ChildStderr>| async move {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf).await;
            }
            String::from_utf8_lossy(&buf).into_owned()
        };
        let (out, err, status) =
            tokio::join!(read(stdout.take()), read_err(stderr.take()), child.wait());
        ctx.record_streams(out, err.clone());
        let status =
            status.map_err(|e| ExecutorError::Failed(format!("waiting for the worker: {e}")))?;
        match ResultEnvelope::read(&result_file) {
            Ok(r) => r.into_output(),
            Err(_) => Err(ExecutorError::WorkerLost(with_stderr_tail(
                format!("the task's process {}", describe_exit(status)),
                &err,
            ))),
        }
    }

    async fn cancel(
        &self,
        _ctx: &TaskContext,
        job: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        let pgid = job
            .and_then(|h| h.0.get("pgid"))
            .and_then(|p| p.as_i64())
            .unwrap_or(0);
        Ok(kill_group(pgid))
    }
}

crate::register_executor!("process", ProcessExecutor);
