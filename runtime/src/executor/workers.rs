//! Reusable worker processes for the `process` executor (`reuse_workers = true`): the
//! program's binary started once in serving mode ([`SERVE_ENV`]) and handed task after task
//! over its stdin and stdout, so a task costs two pipe messages instead of a process start.
//!
//! A worker is checked out of its pool for one task at a time. When the task ends with a
//! reply, the worker goes back to the pool (at most `max_concurrency` idle ones are kept per
//! set of options); when it dies instead (a crash, an abort), the task fails as "worker lost"
//! and the worker is discarded; when the task's attempt is given up (a time limit, a cancel) the
//! worker's whole process group is killed. Idle workers end with the dispatcher (they watch it
//! like every local worker). Each worker has a small directory of its own (its stream files,
//! and a large output's file on its way) under the system's temporary directory, removed with
//! it.
//!
//! The pipes are [`ServingWorker`]'s (one thread of ours per worker, so a worker is not tied
//! to the async runtime of the dispatch that started it).

use std::collections::HashMap;
use std::io::{Read, Seek};
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{LazyLock, Mutex};

use super::child::{kill_group, process_start, with_stderr_tail};
use super::serve::ServingWorker;
use super::worker::{
    PARENT_ENV, SERVE_ENV, SERVE_STDOUT_ENV, ServeRequest, TaskEnvelope, current_binary,
};
use crate::executor::{ExecutorError, Task, TaskContext};
use crate::value::Output;

/// A stream file is emptied once it passes this size between two tasks.
const STREAM_FILE_MAX: u64 = 4 << 20;

/// A running serving worker of the pool. Dropping it kills its process group and removes its
/// directory.
pub(crate) struct Worker {
    serving: ServingWorker,
    start: Option<i64>,
    dir: PathBuf,
    stdout: std::fs::File,
    stderr: std::fs::File,
    /// Where the stream files end (what the last task wrote up to).
    ends: (u64, u64),
}

impl Drop for Worker {
    fn drop(&mut self) {
        kill_group(i64::from(self.serving.pid()));
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Idle workers, by the options they were started with.
static IDLE: LazyLock<Mutex<HashMap<String, Vec<Worker>>>> = LazyLock::new(Default::default);

static SEQ: AtomicU64 = AtomicU64::new(0);

/// What the workers of an executor are started with, and how many of them to keep idle.
pub(crate) struct PoolOptions<'a> {
    pub env: &'a std::collections::BTreeMap<String, String>,
    pub workdir: Option<&'a std::path::Path>,
    pub keep: usize,
}

/// What distinguishes the workers of two executors (their environment and working directory).
fn pool_key(ex: &PoolOptions<'_>) -> String {
    serde_json::to_string(&(ex.env, ex.workdir)).unwrap_or_default()
}

/// At exit, the idle workers are stopped and their directories removed (a dispatcher killed
/// before it can is outlived by its workers for at most 50 ms: they watch it, and remove their
/// directories themselves).
extern "C" fn stop_idle_workers() {
    if let Ok(mut idle) = IDLE.try_lock() {
        idle.clear();
    }
}

fn spawn(ex: &PoolOptions<'_>) -> Result<Worker, ExecutorError> {
    static AT_EXIT: std::sync::Once = std::sync::Once::new();
    AT_EXIT.call_once(|| {
        // SAFETY: registers a plain `extern "C" fn` taking nothing; it only try-locks a
        // mutex and drops what it holds.
        unsafe {
            libc::atexit(stop_idle_workers);
        }
    });
    let failed = |what: &str, e: std::io::Error| {
        ExecutorError::Failed(format!("cannot start a reusable worker ({what}): {e}"))
    };
    let dir = std::env::temp_dir().join(format!(
        "covalent-worker-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).map_err(|e| failed("its directory", e))?;
    let open = |name: &str| {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .read(true)
            .open(dir.join(name))
            .map_err(|e| failed(name, e))
    };
    let (stdout, stderr) = (open("stdout")?, open("stderr")?);
    let binary = current_binary().map_err(|e| failed("this program's binary", e))?;
    let mut cmd = Command::new(&binary);
    cmd.env(SERVE_ENV, "1")
        .env(SERVE_STDOUT_ENV, dir.join("stdout"))
        .env(PARENT_ENV, std::process::id().to_string())
        .envs(ex.env)
        .stderr(stderr.try_clone().map_err(|e| failed("stderr", e))?);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    if let Some(w) = ex.workdir {
        cmd.current_dir(w);
    }
    let serving =
        ServingWorker::start(cmd).map_err(|e| failed(&binary.display().to_string(), e))?;
    let pid = serving.pid();
    Ok(Worker {
        serving,
        start: process_start(pid),
        dir,
        stdout,
        stderr,
        ends: (0, 0),
    })
}

/// Bytes `[range.0, range.1)` of a stream file, as text.
fn read_range(f: &mut std::fs::File, range: (u64, u64)) -> String {
    let (a, b) = range;
    if b <= a {
        return String::new();
    }
    let mut buf = vec![0; (b - a) as usize];
    let read = f
        .seek(std::io::SeekFrom::Start(a))
        .and_then(|_| f.read_exact(&mut buf));
    match read {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => String::new(),
    }
}

fn size(f: &std::fs::File) -> u64 {
    f.metadata().map(|m| m.len()).unwrap_or(0)
}

/// Runs `task` on a reusable worker (taken from the pool, or started), telling `started` the
/// worker's pid and start time (its job handle) before the task is sent.
pub(crate) async fn run(
    ex: &PoolOptions<'_>,
    task: Task,
    ctx: &TaskContext,
    started: impl FnOnce(u32, Option<i64>),
) -> Result<Output, ExecutorError> {
    let envelope = TaskEnvelope::of(&task, ctx)?;
    let key = pool_key(ex);
    let idle = IDLE.lock().unwrap().get_mut(&key).and_then(|list| {
        // A worker that ended while idle (killed from outside) is dropped, not handed a task.
        list.retain(|w| w.serving.is_alive());
        list.pop()
    });
    let mut worker = match idle {
        Some(w) => w,
        None => spawn(ex)?,
    };
    started(worker.serving.pid(), worker.start);
    let request = ServeRequest {
        task: envelope,
        dir: worker.dir.clone(),
    };
    let from = worker.ends;
    // Dropped while waiting (a time limit, a cancel): `worker` goes, and its process group
    // with it.
    let reply = match worker.serving.request(&request).await {
        Ok(reply) => reply,
        Err(how) => {
            let to = (size(&worker.stdout), size(&worker.stderr));
            let out = read_range(&mut worker.stdout, (from.0, to.0));
            let err = read_range(&mut worker.stderr, (from.1, to.1));
            ctx.record_streams(out, err.clone());
            return Err(ExecutorError::WorkerLost(with_stderr_tail(
                format!("the task's worker process {how}"),
                &err,
            )));
        }
    };
    let (out, err) = match &reply.streams {
        Some((out, err)) => (out.clone(), err.clone()),
        None => (
            read_range(&mut worker.stdout, reply.stdout),
            read_range(&mut worker.stderr, reply.stderr),
        ),
    };
    ctx.record_streams(out, err);
    reply.result.record_transfers(ctx);
    let output = reply.result.into_output_in(&worker.dir, ctx);
    worker.ends = (reply.stdout.1, reply.stderr.1);
    if worker.ends.0 > STREAM_FILE_MAX || worker.ends.1 > STREAM_FILE_MAX {
        for f in [&worker.stdout, &worker.stderr] {
            let _ = f.set_len(0);
        }
        worker.ends = (0, 0);
    }
    let keep = ex.keep;
    let mut idle = IDLE.lock().unwrap();
    let list = idle.entry(key).or_default();
    if list.len() < keep {
        list.push(worker);
    }
    output
}
