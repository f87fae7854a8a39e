//! The built-in `process` executor: each task in a child process (the same binary, in worker
//! mode), with its stdout and stderr captured per node, killed with its whole process group on
//! time-out or cancellation, and a crash (abort, segfault, `exit(3)`) reported with the signal
//! or exit code and the end of its stderr.
//!
//! Each task has a directory named after its attempt under the dispatch's results directory
//! (envelope, result, stdout, stderr), removed once read. A worker dies with its dispatcher
//! (`COVALENT_WORKER_PARENT`), so after a crash a task is either finished (its result is in its
//! directory, which a resume collects: [`Executor::reattach`]) or gone (a resume runs it again).
//!
//! This module owns starting, watching and killing children; the envelopes are `worker.rs`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use tokio::sync::Semaphore;

use super::child::{describe_exit, kill_group, process_start, with_stderr_tail};
use super::worker::{
    PARENT_ENV, RESULT_ENV, ResultEnvelope, TASK_ENV, TaskEnvelope, current_binary,
};
use crate::executor::{BaseOptions, Executor, ExecutorError, JobHandle, Probe, Task, TaskContext};
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
    /// Keep worker processes and hand them task after task (at most `max_concurrency` of
    /// them) instead of starting one per task: a trivial task then costs two pipe messages
    /// rather than a process start. The trade-off: what a task leaves in its process (statics,
    /// `OnceLock`s, leaked memory, threads, changed environment or working directory) is there
    /// for the tasks after it; a crash, a time-out or a cancel still ends only that worker
    /// (and fails only its task), and a new one is started for the next.
    pub reuse_workers: bool,
    /// What its tasks share, admitted by their declared needs (`cpus`, `memory`, `gpus`,
    /// `resources`; default: this machine's); a task's GPUs are its `CUDA_VISIBLE_DEVICES`.
    #[serde(flatten)]
    pub capacity: crate::resources::CapacityOptions,
    #[serde(skip)]
    limiter: Arc<OnceLock<Semaphore>>,
}

impl ProcessExecutor {
    /// A process executor with default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same, keeping its worker processes for task after task
    /// ([`ProcessExecutor::reuse_workers`]).
    pub fn reusing_workers(mut self) -> Self {
        self.reuse_workers = true;
        self
    }

    /// Most tasks running at once.
    fn concurrency(&self) -> usize {
        self.max_concurrency
            .unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map(|n| n.get())
                    .unwrap_or(2)
            })
            .max(1)
    }

    fn limiter(&self) -> &Semaphore {
        self.limiter
            .get_or_init(|| Semaphore::new(self.concurrency()))
    }
}

/// A task's directory: its envelope, result and streams. Named after the attempt under the
/// dispatch's results directory, so a resumed dispatch finds what a task left there after its
/// dispatcher died; removed once read.
struct Scratch(PathBuf);

impl Scratch {
    fn new(task: &Task, ctx: &TaskContext) -> std::io::Result<Scratch> {
        let name = super::worker::attempt_name(task, ctx);
        let dir = match ctx.results_dir() {
            Ok(d) => d.join("process").join(&name),
            Err(_) => std::env::temp_dir().join(name),
        };
        std::fs::create_dir_all(&dir)?;
        Ok(Scratch(dir))
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        remove_task_dir(&self.0);
    }
}

/// Removes a task's directory, and the dispatch's `process/` and results directories when
/// that leaves them empty.
fn remove_task_dir(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    if let Some(process) = dir.parent().filter(|p| p.ends_with("process"))
        && std::fs::remove_dir(process).is_ok()
        && let Some(results) = process.parent()
    {
        let _ = std::fs::remove_dir(results);
    }
}

/// The job handle of a task: its process (id and start time, so a reused pid is not taken
/// for it) and its directory.
#[derive(Debug, Serialize, Deserialize)]
struct Handle {
    pid: u32,
    pgid: u32,
    #[serde(default)]
    start: Option<i64>,
    #[serde(default)]
    dir: Option<PathBuf>,
    /// A reusable worker ran it (its answer went to the dispatcher's pipe, not to a file).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pooled: bool,
}

impl Handle {
    fn of(h: &JobHandle) -> Option<Handle> {
        serde_json::from_value(h.0.clone()).ok()
    }

    /// Whether the task's process still runs (the same process: its start time matches).
    fn alive(&self) -> bool {
        self.pid > 0 && process_start(self.pid).is_some_and(|s| Some(s) == self.start)
    }
}

/// What a task left in its directory: its result, else why it has none, and its streams.
fn collect(dir: &Path, ctx: &TaskContext, exit: &str) -> Result<Output, ExecutorError> {
    let read = |name: &str| {
        String::from_utf8_lossy(&std::fs::read(dir.join(name)).unwrap_or_default()).into_owned()
    };
    let (out, err) = (read("stdout"), read("stderr"));
    ctx.record_streams(out, err.clone());
    match ResultEnvelope::read(&dir.join("result.json")) {
        Ok(r) => {
            r.record_transfers(ctx);
            r.into_output_in(dir, ctx)
        }
        Err(_) => Err(ExecutorError::WorkerLost(with_stderr_tail(
            format!("the task's process {exit}"),
            &err,
        ))),
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

    fn resource_ledger(&self) -> Option<Arc<crate::resources::Ledger>> {
        Some(self.capacity.ledger())
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let _permit = self
            .limiter()
            .acquire()
            .await
            .map_err(|e| ExecutorError::Failed(e.to_string()))?;
        if self.reuse_workers {
            let pool = super::workers::PoolOptions {
                env: &self.env,
                workdir: self.workdir.as_deref(),
                keep: self.concurrency(),
            };
            return super::workers::run(&pool, task, ctx, |pid, start| {
                ctx.set_job_handle(Handle {
                    pid,
                    pgid: pid,
                    start,
                    dir: None,
                    pooled: true,
                })
            })
            .await;
        }
        let scratch = Scratch::new(&task, ctx)
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
            .stdout(stream_file(&scratch.0.join("stdout"))?)
            .stderr(stream_file(&scratch.0.join("stderr"))?)
            .kill_on_drop(true)
            .process_group(0);
        if let Some(dir) = &self.workdir {
            cmd.current_dir(dir);
        }
        if let Some(a) = ctx.assignment() {
            // Its GPUs are the ones it sees (CUDA and the libraries that follow it).
            if !a.gpus.is_empty() {
                let ids: Vec<String> = a.gpus.iter().map(u32::to_string).collect();
                cmd.env("CUDA_VISIBLE_DEVICES", ids.join(","));
            }
        }
        // Recorded before the launch (the dispatch is then in the store before its task
        // exists), and again with the process once it is there.
        ctx.set_job_handle(Handle {
            pid: 0,
            pgid: 0,
            start: None,
            dir: Some(scratch.0.clone()),
            pooled: false,
        });
        let mut child = cmd.spawn().map_err(|e| {
            ExecutorError::Failed(format!("cannot start a worker ({}): {e}", binary.display()))
        })?;
        let pid = child.id().unwrap_or(0);
        ctx.set_job_handle(Handle {
            pid,
            pgid: pid,
            start: process_start(pid),
            dir: Some(scratch.0.clone()),
            pooled: false,
        });
        let status = child
            .wait()
            .await
            .map_err(|e| ExecutorError::Failed(format!("waiting for the worker: {e}")))?;
        collect(&scratch.0, ctx, &describe_exit(status))
    }

    async fn probe(&self, job: &JobHandle) -> Result<Probe, ExecutorError> {
        let Some(h) = Handle::of(job) else {
            return Ok(Probe::Gone);
        };
        if h.pooled {
            // Its answer was to go to the dispatcher that is gone; the worker follows it
            // within 50 ms (it watches it). Let it end, so the task is never run twice at
            // once, then the task is to run again.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
            while h.alive() && std::time::Instant::now() < deadline {
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
            if h.alive() {
                kill_group(i64::from(h.pgid));
            }
            return Ok(Probe::Gone);
        }
        let has_result = || {
            h.dir
                .as_ref()
                .is_some_and(|d| d.join("result.json").is_file())
        };
        // A worker ends with the dispatcher it watches (within 50 ms of its death), writing
        // its result first if it had one: a worker still alive when asked is let end first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
        while h.alive() && !has_result() && std::time::Instant::now() < deadline {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        Ok(if has_result() {
            Probe::Finished
        } else if h.alive() {
            Probe::Running
        } else {
            if let Some(d) = &h.dir {
                remove_task_dir(d);
            }
            Probe::Gone
        })
    }

    async fn reattach(&self, job: &JobHandle, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let h = Handle::of(job)
            .ok_or_else(|| ExecutorError::Failed(format!("not a process job handle: {}", job.0)))?;
        let Some(dir) = h.dir.clone() else {
            return Err(ExecutorError::WorkerLost(
                "the task's process was started by an older version, which kept no directory to read its result from".into(),
            ));
        };
        // Not our child: watch it until it ends (its result is written before it exits).
        while h.alive() && !dir.join("result.json").is_file() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        while h.alive() {
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        let r = collect(&dir, ctx, "ended while no dispatcher watched it");
        remove_task_dir(&dir);
        r
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

/// A file a task's stream goes to.
fn stream_file(path: &Path) -> Result<std::fs::File, ExecutorError> {
    std::fs::File::create(path)
        .map_err(|e| ExecutorError::Failed(format!("cannot create {}: {e}", path.display())))
}

crate::register_executor!("process", ProcessExecutor);
