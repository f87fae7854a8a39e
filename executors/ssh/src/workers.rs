//! Persistent remote workers (`reuse_workers = true`): the program's binary, shipped once,
//! started on the host in serving mode over one SSH session's stdin and stdout, and handed
//! task after task, so a task costs one request and one reply on an open channel instead of a
//! remote process start.
//!
//! A host has at most `max_workers` of them (default: the connection's `max_sessions` − 2,
//! since each worker's pipe is a session of the shared connection); tasks beyond wait for one
//! to be free. A worker is checked out for one task at a time and given back after its reply.
//! One that dies mid-task (a crash, its session dropped) fails only that task, as "worker
//! lost", with what the task had printed; a task's time limit or cancel kills its worker (the
//! ssh process here, and the worker there by pid). A worker whose session closes (the
//! dispatcher exited or was killed) sees its stdin end and stops, with the task it runs; the
//! shell that started it then removes its directory.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use covalent::executor::serve::{ServingWorker, StderrCapture};
use covalent::executor::worker::TaskEnvelope;
use covalent::executor::worker::{
    SERVE_ENV, SERVE_STREAMS_DIR_ENV, ServeRequest, signal_name, with_stderr_tail,
};
use covalent::executor::{ExecutorError, Output, TaskContext};
use covalent_remote::{Session, SessionHold, shell_quote};

use crate::SshExecutor;
use crate::remote::Failure;

/// One worker on the host.
struct Worker {
    serving: ServingWorker,
    /// Its pid there.
    pid: u32,
    /// Its directory there (absolute).
    dir: String,
    /// What the ssh process (and the shell that ran the worker) said on stderr.
    stderr: StderrCapture,
    _hold: SessionHold,
}

/// The workers of one host, binary and set of options.
struct Pool {
    idle: Mutex<Vec<Worker>>,
    /// A place per worker that may run.
    slots: Arc<tokio::sync::Semaphore>,
}

static POOLS: LazyLock<Mutex<HashMap<String, Arc<Pool>>>> = LazyLock::new(Default::default);

static SEQ: AtomicU64 = AtomicU64::new(0);

impl SshExecutor {
    /// Workers per host at most.
    pub(crate) fn worker_cap(&self) -> u32 {
        self.max_workers
            .unwrap_or(self.ssh.max_sessions.saturating_sub(2))
            .max(1)
    }

    fn pool(&self, s: &Session, bin: &str) -> Arc<Pool> {
        let key = serde_json::to_string(&(
            s.control_path(),
            bin,
            &self.remote_workdir,
            &self.env,
            &self.pre_launch,
            self.worker_cap(),
        ))
        .unwrap_or_default();
        POOLS
            .lock()
            .unwrap()
            .entry(key)
            .or_insert_with(|| {
                let pool = Arc::new(Pool {
                    idle: Mutex::new(Vec::new()),
                    slots: Arc::new(tokio::sync::Semaphore::new(self.worker_cap() as usize)),
                });
                // Idle workers hold sessions: they go when another session needs the room.
                let weak = Arc::downgrade(&pool);
                s.when_crowded(move || {
                    if let Some(p) = weak.upgrade() {
                        let idle: Vec<Worker> = std::mem::take(&mut *p.idle.lock().unwrap());
                        drop(idle);
                    }
                });
                pool
            })
            .clone()
    }
}

/// The script that starts a worker in a directory of its own under `remote_workdir`, and
/// removes the directory when the worker ends.
fn start_script(ex: &SshExecutor, bin: &str) -> String {
    let dir = format!(
        "{}/workers/{}-{}-{}",
        ex.remote_workdir.trim_end_matches('/'),
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis())
            .unwrap_or(0)
    );
    let mut s = crate::remote::binary_line(bin);
    s += &format!(
        "mkdir -p {d}/values && cd {d} || exit 1\nd=$PWD\n",
        d = shell_quote(&dir)
    );
    s += &crate::remote::launch_lines(ex);
    // A worker that ended otherwise than by its request pipe closing leaves what its task
    // wrote to stderr in its scratch file: passed on to ssh's stderr, so the dispatcher
    // shows it with the lost worker.
    s += &format!(
        "{SERVE_ENV}=1 {SERVE_STREAMS_DIR_ENV}=\"$d\" \"$bin\"\nst=$?\n[ $st = 0 ] || cat \"$d\"/worker-*.err >&2 2>/dev/null\ncd / && rm -rf \"$d\"\nexit $st\n"
    );
    s
}

async fn start(ex: &SshExecutor, s: &Session, bin: &str) -> Result<Worker, Failure> {
    s.ensure_master(ex.step_timeout())
        .await
        .map_err(Failure::before_start)?;
    let hold = s.hold().await;
    let (stderr, file) = StderrCapture::new()
        .map_err(|e| ExecutorError::Failed(format!("cannot capture ssh's stderr: {e}")))?;
    let mut cmd = s.std_command(&start_script(ex, bin));
    cmd.stderr(file);
    let serving = ServingWorker::start(cmd).map_err(|e| {
        ExecutorError::Failed(format!(
            "cannot run `ssh` (is OpenSSH's client installed?): {e}"
        ))
    })?;
    let hello = tokio::time::timeout(ex.step_timeout(), serving.hello()).await;
    let said = || stderr.text();
    let hello = match hello {
        Ok(Ok(h)) => h,
        Ok(Err(how)) => {
            let text = said();
            if let Some(e) = s.classify(Some(255), &text).filter(|_| how.contains("255")) {
                return Err(Failure::before_start(e));
            }
            return Err(ExecutorError::Failed(with_stderr_tail(
                format!("the worker on {} did not start: ssh {how}", s.target()),
                &text,
            ))
            .into());
        }
        Err(_) => {
            let text = said();
            return Err(ExecutorError::Failed(with_stderr_tail(
                format!(
                    "the worker on {} did not start within {:?} (command_timeout)",
                    s.target(),
                    ex.step_timeout()
                ),
                &text,
            ))
            .into());
        }
    };
    Ok(Worker {
        serving,
        pid: hello.pid,
        dir: hello
            .cwd
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        stderr,
        _hold: hold,
    })
}

/// A worker checked out for one task: given back after a reply, else killed (there by pid,
/// and here with its ssh process).
struct CheckedOut {
    pool: Arc<Pool>,
    session: Session,
    worker: Option<Worker>,
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl CheckedOut {
    fn give_back(&mut self) {
        if let Some(w) = self.worker.take() {
            self.pool.idle.lock().unwrap().push(w);
        }
    }
}

impl Drop for CheckedOut {
    fn drop(&mut self) {
        if let Some(w) = self.worker.take() {
            self.session
                .fire_and_forget(&kill_script(i64::from(w.pid), &w.dir));
        }
    }
}

/// Kills the worker of pid `pid` there, if that process is still the worker of directory `dir`
/// (its environment names it: a pid reused since is left alone).
fn kill_script(pid: i64, dir: &str) -> String {
    format!(
        "p={pid}; tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qxF {} && kill -9 $p; true",
        shell_quote(&format!("{SERVE_STREAMS_DIR_ENV}={dir}"))
    )
}

/// The remote shell passes a worker killed by signal N on as its exit code 128+N, which ssh
/// reports as its own: said as the signal.
fn as_worker_exit(how: &str) -> String {
    match how
        .strip_prefix("exited with code ")
        .and_then(|c| c.trim().parse::<i32>().ok())
    {
        Some(code) if code > 128 && code < 255 => {
            format!("was killed by {}", signal_name(code - 128))
        }
        _ => how.to_string(),
    }
}

/// Runs `task` on a persistent worker of the host (see the module docs).
pub(crate) async fn run(
    ex: &SshExecutor,
    envelope: &TaskEnvelope,
    ctx: &TaskContext,
) -> Result<Output, Failure> {
    let s = ex.session().map_err(Failure::before_start)?;
    let bin = ex.ensure_binary(&s).await.map_err(Failure::before_start)?;
    let envelope = envelope.clone();
    let pool = ex.pool(&s, &bin);
    let slot = pool
        .slots
        .clone()
        .acquire_owned()
        .await
        .map_err(|_| ExecutorError::Failed("the worker pool is closed".into()))?;
    let idle = {
        let mut idle = pool.idle.lock().unwrap();
        // A worker that ended while idle (its session dropped) is not handed a task.
        idle.retain(|w| w.serving.is_alive());
        idle.pop()
    };
    let worker = match idle {
        Some(w) => w,
        None => start(ex, &s, &bin).await?,
    };
    run_on(ex, &s, pool, worker, slot, envelope, ctx)
        .await
        .map_err(Failure::Other)
}

async fn run_on(
    ex: &SshExecutor,
    s: &Session,
    pool: Arc<Pool>,
    worker: Worker,
    slot: tokio::sync::OwnedSemaphorePermit,
    envelope: TaskEnvelope,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    ctx.set_job_handle(serde_json::json!({
        "host": s.label(), "worker": worker.pid, "workdir": worker.dir,
    }));
    let mut out = CheckedOut {
        pool,
        session: s.clone(),
        worker: Some(worker),
        _slot: slot,
    };
    let worker_dir = out.worker.as_ref().expect("just set").dir.clone();
    // The task runs in a directory of the worker's, emptied for each task.
    let task_dir = format!("{worker_dir}/task");
    let mut envelope = envelope;
    envelope.files.dir = Some(task_dir.clone());
    envelope.files.fresh_dir = true;
    let envelope = match ex.envelope_for_host(&envelope, s, &task_dir, ctx).await {
        Ok(e) => e,
        Err(e) => {
            out.give_back();
            return Err(e);
        }
    };
    let request = ServeRequest {
        task: envelope,
        dir: PathBuf::from(format!("{worker_dir}/values")),
    };
    let w = out.worker.as_ref().expect("just set");
    // Dropped while waiting (a time limit, a cancel): `out` kills the worker.
    let reply = match w.serving.request(&request).await {
        Ok(r) => r,
        Err(how) => {
            // The task's stderr, passed on by the shell that ran the worker (after ssh's
            // own words, if the session itself was lost).
            let said = w.stderr.text();
            ctx.record_streams(String::new(), said.clone());
            let lost = format!(
                "the persistent worker (pid {}) on {} {}",
                w.pid,
                s.target(),
                as_worker_exit(&how)
            );
            return Err(ExecutorError::WorkerLost(with_stderr_tail(lost, &said)));
        }
    };
    if let Some((o, e)) = &reply.streams {
        ctx.record_streams(o.clone(), e.clone());
    }
    let received = reply
        .result
        .receive_files(&ex.task_dir(s, &task_dir), ctx)
        .await;
    let output = match reply.result.output_file().cloned() {
        None => reply.result.into_output(),
        Some(file) => {
            let path = format!("{}/values/{}", w.dir, file.name());
            let got = crate::remote::download_output(ex, s, ctx, &path, &file).await;
            s.fire_and_forget(&format!("rm -f {}", shell_quote(&path)));
            got
        }
    };
    out.give_back();
    received?;
    output
}

/// Whether a job handle is a persistent worker's.
pub(crate) fn is_worker_handle(job: &serde_json::Value) -> bool {
    job.get("worker").is_some()
}

/// Stops the worker a handle names (a task of a dispatcher that is gone: its worker went with
/// its session, but is killed for sure) and says whether one was named.
pub(crate) async fn kill(ex: &SshExecutor, job: &serde_json::Value) -> Result<bool, ExecutorError> {
    let (Some(pid), Some(dir)) = (
        job.get("worker")
            .and_then(|p| p.as_i64())
            .filter(|p| *p > 1),
        job.get("workdir").and_then(|d| d.as_str()),
    ) else {
        return Ok(false);
    };
    let s = ex.session()?;
    ex.call(&s, &kill_script(pid, dir)).await?;
    Ok(true)
}
