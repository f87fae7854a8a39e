//! Allocation mode: tasks run on persistent workers inside allocations this executor holds,
//! instead of one batch job each.
//!
//! An allocation is a batch job of its own (`covalent-alloc-<key>`) whose script only waits:
//! it holds the nodes, CPUs and walltime the options ask for, and ends by itself when the
//! dispatcher stops touching its heartbeat file (two minutes without one: a dispatcher killed
//! with `kill -9` leaves nothing burning allocation hours for long), at its walltime, or when it
//! is released (`scancel`) after `idle_timeout` without tasks or when the program exits. It is
//! requested when a task is ready and none of the held ones can take it, up to
//! `max_allocations`; one already running under the same name (a program that ran before with
//! the same options) is taken over instead of submitting another.
//!
//! A worker is the program's own binary in serving mode (`COVALENT_WORKER_SERVE`), started as a
//! job step from the submit host: `srun --jobid=<allocation> --exact -N1 -n1 -c <cpus>` (through
//! the login node's SSH connection when the executor submits over SSH). Requests go down the
//! step's stdin and replies come back on its stdout, both forwarded by Slurm: no listener of
//! ours. A worker serves one task at a time, task after task; each task's stdout and stderr come
//! back inside its reply. Slurm still places, accounts and kills: a task's time limit or cancel
//! cancels its worker's step (`scancel <job>.<step>`), and a worker that dies fails only its
//! task (as a lost worker) and is replaced by the next task that needs one.
//!
//! A task whose time limit is longer than what is left of an allocation's walltime (less a
//! minute) is not sent there: it goes to another allocation, or waits (PENDING to the user)
//! for one to be requested or freed. Step launches in flight are bounded (`max_step_launches`),
//! as many concurrent `srun`s make Slurm refuse steps for a while.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::{Duration, Instant};

use covalent::executor::serve::{ServingWorker, StderrCapture};
use covalent::executor::worker::{
    SERVE_ENV, SERVE_STREAMS_DIR_ENV, ServeRequest, TaskEnvelope, adopt_value_file, signal_name,
    value_download_path, with_stderr_tail,
};
use covalent::executor::{ExecutorError, Output, Task, TaskContext};
use covalent_remote::{Input, shell_quote};
use serde::{Deserialize, Serialize};

use crate::host::Host;
use crate::{SlurmExecutor, failed};

/// Allocation mode's options (`[executors.slurm.allocation]`); the executor's `partition`,
/// `account`, `qos`, `gres`, `mem` and `extra` apply to each allocation's batch job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AllocationOptions {
    /// Nodes of each allocation (`--nodes`).
    pub nodes: u32,
    /// Workers per node (`--ntasks-per-node`): tasks running at once on a node.
    pub workers_per_node: u32,
    /// Worker steps in one allocation at most (default: `nodes × workers_per_node`; fewer
    /// leaves room in the allocation for steps of your own).
    pub max_workers: Option<u32>,
    /// CPUs of each worker (`--cpus-per-task`, and the step's `--cpus-per-task`).
    pub cpus_per_worker: u32,
    /// Memory of each worker step (`srun --mem`), for clusters that track memory.
    pub mem_per_worker: Option<String>,
    /// Walltime of each allocation (`--time`, Slurm format).
    pub time: String,
    /// An allocation without tasks for this long is released.
    #[serde(with = "covalent::executor::serde_duration")]
    pub idle_timeout: Duration,
    /// Allocations held at once at most.
    pub max_allocations: u32,
    /// `srun` step launches in flight at once at most.
    pub max_step_launches: u32,
}

impl AllocationOptions {
    /// The worker steps one allocation runs at once.
    pub(crate) fn workers(&self) -> u32 {
        let all = self.nodes.max(1) * self.workers_per_node.max(1);
        self.max_workers.map_or(all, |m| m.clamp(1, all))
    }
}

impl Default for AllocationOptions {
    fn default() -> Self {
        AllocationOptions {
            nodes: 1,
            workers_per_node: 1,
            max_workers: None,
            cpus_per_worker: 1,
            mem_per_worker: None,
            time: "1:00:00".into(),
            idle_timeout: Duration::from_secs(60),
            max_allocations: 1,
            max_step_launches: 4,
        }
    }
}

/// The job handle of a task run in allocation mode.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct StepHandle {
    /// The allocation's job id.
    pub allocation: String,
    /// The worker's step (`<job>.<step>`), once it has said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    /// The compute node the worker runs on.
    #[serde(default)]
    pub node: String,
    /// The worker's pid there.
    #[serde(default)]
    pub pid: u32,
    /// The submit host (`this host` or the login node).
    pub host: String,
}

impl StepHandle {
    pub(crate) fn of(job: &covalent::executor::JobHandle) -> Option<StepHandle> {
        job.0.get("allocation")?;
        serde_json::from_value(job.0.clone()).ok()
    }
}

/// A worker step, idle or serving one task.
struct StepWorker {
    serving: ServingWorker,
    /// `<job>.<step>`.
    step: String,
    node: String,
    pid: u32,
    /// What `srun` (and ssh) said on stderr.
    stderr: StderrCapture,
    /// The worker's scratch stream files (on the submit host's file system).
    streams: Option<(PathBuf, PathBuf)>,
    /// The allocation's directory as the worker sees it (absolute).
    dir: PathBuf,
    /// Over SSH: the worker's place among the login node connection's sessions.
    _hold: Option<covalent_remote::SessionHold>,
}

/// One held allocation.
struct Alloc {
    id: String,
    /// Its directory on the submit host's file system (shared with the compute nodes).
    dir: String,
    ends_at: Instant,
    slots: usize,
    /// Workers serving a task, or being started.
    busy: usize,
    idle: Vec<StepWorker>,
    last_used: Instant,
}

impl Alloc {
    fn left(&self) -> Duration {
        self.ends_at.saturating_duration_since(Instant::now())
    }
}

/// The allocations of one set of options.
struct Pool {
    host: Host,
    /// `scancel` as a shell word.
    scancel: String,
    state: Mutex<Vec<Alloc>>,
    /// Allocations being requested.
    requesting: Mutex<usize>,
    changed: tokio::sync::Notify,
    launches: tokio::sync::Semaphore,
}

/// Every pool of this process, by options.
static POOLS: LazyLock<Mutex<HashMap<String, Arc<Pool>>>> = LazyLock::new(Default::default);

/// Time a worker step is given to start and say where it runs.
const STEP_START: Duration = Duration::from_secs(120);
/// Margin between a task's time limit and what is left of an allocation.
const WALLTIME_MARGIN: Duration = Duration::from_secs(60);
/// How often the heartbeat is touched.
const TICK: Duration = Duration::from_secs(15);

/// At exit, every allocation of this process is released (`scancel`, started and left to
/// finish on its own).
extern "C" fn release_all() {
    let Ok(pools) = POOLS.try_lock() else { return };
    for pool in pools.values() {
        if let Ok(allocs) = pool.state.try_lock() {
            for a in allocs.iter() {
                pool.host
                    .fire_and_forget(&format!("{} {}", pool.scancel, a.id));
            }
        }
    }
}

impl SlurmExecutor {
    /// What makes two executors' allocations interchangeable.
    pub(crate) fn allocation_key(&self) -> String {
        let key = serde_json::to_string(&(
            &self.ssh,
            &self.slurm_path,
            &self.workdir,
            &self.partition,
            &self.account,
            &self.qos,
            &self.gres,
            &self.mem,
            &self.extra,
            &self.env,
            &self.allocation,
        ))
        .unwrap_or_default();
        blake3::hash(key.as_bytes()).to_hex()[..12].to_string()
    }

    fn pool(&self, host: &Host) -> Arc<Pool> {
        static AT_EXIT: std::sync::Once = std::sync::Once::new();
        AT_EXIT.call_once(|| {
            // SAFETY: registers a plain `extern "C" fn` taking nothing; it only try-locks and
            // starts `scancel` processes.
            #[allow(unsafe_code)]
            unsafe {
                libc::atexit(release_all);
            }
        });
        let opts = self.allocation.clone().unwrap_or_default();
        let key = self.allocation_key();
        let mut pools = POOLS.lock().unwrap();
        if let Some(p) = pools.get(&key) {
            return p.clone();
        }
        let pool = Arc::new(Pool {
            host: host.clone(),
            scancel: self.slurm_cmd("scancel"),
            state: Mutex::new(Vec::new()),
            requesting: Mutex::new(0),
            changed: tokio::sync::Notify::new(),
            launches: tokio::sync::Semaphore::new(opts.max_step_launches.max(1) as usize),
        });
        pools.insert(key, pool.clone());
        let watched = Arc::downgrade(&pool);
        let idle_timeout = opts.idle_timeout;
        // Idle allocations are looked for twice per idle timeout (at least every 15 s).
        let every = (idle_timeout / 2).clamp(Duration::from_millis(500), TICK);
        let _ = std::thread::Builder::new()
            .name("covalent-slurm-allocations".into())
            .spawn(move || {
                let mut touched = Instant::now();
                while let Some(pool) = watched.upgrade() {
                    let beat = touched.elapsed() >= TICK;
                    if beat {
                        touched = Instant::now();
                    }
                    pool.tick(idle_timeout, beat);
                    drop(pool);
                    std::thread::sleep(every);
                }
            });
        pool
    }
}

impl Pool {
    /// Touches the heartbeats, releases allocations idle for `idle_timeout`, forgets ended
    /// ones.
    fn tick(&self, idle_timeout: Duration, beat: bool) {
        let mut released = Vec::new();
        {
            let mut allocs = self.state.lock().unwrap();
            allocs.retain_mut(|a| {
                let idle = a.busy == 0 && a.last_used.elapsed() >= idle_timeout;
                if idle || a.left().is_zero() {
                    released.push(a.id.clone());
                    return false;
                }
                true
            });
            if beat {
                for a in allocs.iter() {
                    self.touch(&a.dir);
                }
            }
        }
        for id in released {
            self.host.fire_and_forget(&format!("{} {id}", self.scancel));
        }
        self.changed.notify_waiters();
    }

    /// Gives up allocation `id` (no longer running; `scancel`ed to be sure) and wakes the tasks
    /// waiting for a slot.
    fn forget(&self, id: &str) {
        self.state.lock().unwrap().retain(|a| a.id != id);
        self.host.fire_and_forget(&format!("{} {id}", self.scancel));
        self.changed.notify_waiters();
    }

    fn touch(&self, dir: &str) {
        let hb = format!("{dir}/heartbeat");
        if self.host.is_remote() {
            self.host
                .fire_and_forget(&format!("touch {}", shell_quote(&hb)));
        } else {
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(&hb)
                .and_then(|f| f.set_modified(std::time::SystemTime::now()));
        }
    }
}

/// The batch script of an allocation: it waits while the dispatcher's heartbeat is fresh.
fn holder_script(ex: &SlurmExecutor, o: &AllocationOptions, name: &str) -> Result<String, String> {
    let mut s = String::from("#!/bin/sh\n");
    let mut sbatch = |flag: &str, v: &str| -> Result<(), String> {
        if v.contains('\n') || v.contains('\r') {
            return Err(format!("{flag} must be one line, found {v:?}"));
        }
        s.push_str(&format!("#SBATCH --{flag}={v}\n"));
        Ok(())
    };
    sbatch("job-name", name)?;
    sbatch("output", "allocation.out")?;
    sbatch("nodes", &o.nodes.max(1).to_string())?;
    sbatch("ntasks-per-node", &o.workers_per_node.max(1).to_string())?;
    sbatch("cpus-per-task", &o.cpus_per_worker.max(1).to_string())?;
    sbatch("time", &o.time)?;
    crate::script::site_lines(ex, &mut s)?;
    s.push_str(
        "hb=\"$PWD/heartbeat\"\n\
         touch \"$hb\"\n\
         while :; do\n\
         \x20 sleep 15\n\
         \x20 last=$(stat -c %Y \"$hb\" 2>/dev/null || echo 0)\n\
         \x20 [ $(( $(date +%s) - last )) -lt 120 ] || exit 0\n\
         done\n",
    );
    Ok(s)
}

/// Runs `task` on a worker of an allocation (see the module docs).
pub(crate) async fn run(
    ex: &SlurmExecutor,
    task: Task,
    ctx: &TaskContext,
) -> Result<Output, ExecutorError> {
    let opts = ex.allocation.clone().unwrap_or_default();
    let host = ex.host()?;
    let pool = ex.pool(&host);
    let need = covalent::executor::find_electron(task.electron_path())
        .and_then(|d| d.time_limit)
        .or(ex.base.time_limit);
    let walltime = crate::script::parse_slurm_time(&opts.time).ok_or_else(|| {
        crate::config(format!(
            "allocation.time `{}` is not a Slurm time (minutes, MM:SS, H:MM:SS, D-H:MM:SS)",
            opts.time
        ))
    })?;
    if let Some(n) = need
        && n + WALLTIME_MARGIN > walltime
    {
        return Err(crate::config(format!(
            "the task's time limit ({n:?}) does not fit in an allocation of {} (less a minute's margin): raise allocation.time",
            opts.time
        )));
    }
    let mut envelope = TaskEnvelope::away(&task, ctx, host.authority())?;
    // A slot, and its worker; tried again on another allocation when the one given turns out
    // to run no more (cancelled from outside, ended, its node gone).
    let mut tries = 0;
    let (alloc_id, dir, worker, mut out) = loop {
        tries += 1;
        let (alloc_id, dir, worker) = checkout(ex, &opts, &host, &pool, need, walltime).await?;
        let out = CheckedOut {
            pool: pool.clone(),
            alloc: alloc_id.clone(),
            worker: None,
            returned: false,
        };
        let worker = match worker {
            Some(w) => w,
            None => {
                let _permit = pool.launches.acquire().await;
                match launch(ex, &opts, &host, &alloc_id, &dir).await {
                    Ok(w) => w,
                    Err(e) => {
                        let state = host
                            .sh(
                                &format!("{} -h -j {alloc_id} -o %T", ex.slurm_cmd("squeue")),
                                Input::None,
                                ex.command_timeout,
                            )
                            .await
                            .map(|r| r.stdout_text().trim().to_string());
                        if tries < 3 && state.is_ok_and(|s| s != "RUNNING") {
                            drop(out);
                            pool.forget(&alloc_id);
                            continue;
                        }
                        return Err(e);
                    }
                }
            }
        };
        break (alloc_id, dir, worker, out);
    };
    ctx.set_job_handle(StepHandle {
        allocation: alloc_id.clone(),
        step: Some(worker.step.clone()),
        node: worker.node.clone(),
        pid: worker.pid,
        host: host.label(),
    });
    let values = format!("{dir}/values");
    // The task runs in a directory of the worker's, emptied for each task; the files of this
    // machine it needs go there first.
    let task_dir = format!("{}/task", worker.dir.display());
    envelope.files.dir = Some(task_dir.clone());
    envelope.files.fresh_dir = true;
    let access = host.task_dir(&task_dir, ex.command_timeout);
    let worker_dir = worker.dir.join("values");
    let out_worker = out.worker.insert(worker);
    if let Err(e) = envelope.send_files(&*access, ctx).await {
        out.give_back();
        return Err(e);
    }
    let request = ServeRequest {
        task: envelope,
        dir: worker_dir,
    };
    // Dropped while waiting (a time limit, a cancel): `out` cancels the step.
    let reply = match out_worker.serving.request(&request).await {
        Ok(r) => r,
        Err(how) => {
            // What the task printed before the worker went, then srun's own words.
            let (task_out, task_err) = match &out_worker.streams {
                Some((o, e)) => (
                    read_there(&host, o, ex).await,
                    read_there(&host, e, ex).await,
                ),
                None => (String::new(), String::new()),
            };
            let srun = out_worker.stderr.text();
            ctx.record_streams(task_out, task_err.clone());
            return Err(ExecutorError::WorkerLost(with_stderr_tail(
                format!(
                    "the worker step {} on {} {}",
                    out_worker.step,
                    out_worker.node,
                    as_task_exit(&how)
                ),
                &format!("{task_err}{srun}"),
            )));
        }
    };
    if let Some((o, e)) = &reply.streams {
        ctx.record_streams(o.clone(), e.clone());
    }
    let received = reply.result.receive_files(&*access, ctx).await;
    let output = match reply.result.output_file().cloned() {
        None => reply.result.into_output(),
        Some(file) if host.is_remote() => {
            let tmp = value_download_path(ctx)?;
            let limit = ex.command_timeout + Duration::from_secs(file.n / 1_000_000);
            match host.download(&values, &file.name(), &tmp, limit).await {
                Ok(_) => adopt_value_file(&tmp, &file, ctx),
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    Err(failed(format!(
                        "reading back the task's output ({} bytes): {e}",
                        file.n
                    )))
                }
            }
            .inspect(|_| {
                host.fire_and_forget(&format!(
                    "rm -f {}",
                    shell_quote(&format!("{values}/{}", file.name()))
                ))
            })
        }
        Some(_) => reply.result.into_output_in(Path::new(&values), ctx),
    };
    out.give_back();
    received?;
    output
}

/// `srun` reports a task killed by signal N as its own exit code 128+N: said as the signal.
fn as_task_exit(how: &str) -> String {
    match how
        .strip_prefix("exited with code ")
        .and_then(|c| c.trim().parse::<i32>().ok())
    {
        Some(code) if code > 128 => format!("was killed by {}", signal_name(code - 128)),
        _ => how.to_string(),
    }
}

/// A file on the submit host (read over SSH when the executor submits through one), removed
/// after; empty if it cannot be read.
async fn read_there(host: &Host, path: &Path, ex: &SlurmExecutor) -> String {
    let p = path.display().to_string();
    if !host.is_remote() {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let _ = std::fs::remove_file(path);
        return text;
    }
    let q = shell_quote(&p);
    match host
        .sh(
            &format!("cat {q}; rm -f {q}"),
            Input::None,
            ex.command_timeout,
        )
        .await
    {
        Ok(r) => r.stdout_text(),
        Err(_) => String::new(),
    }
}

/// A worker checked out of its allocation for one task: given back after a reply, else (the
/// task failed its worker, or its attempt was given up) its step is cancelled and its slot is
/// free for a new worker.
struct CheckedOut {
    pool: Arc<Pool>,
    alloc: String,
    worker: Option<StepWorker>,
    returned: bool,
}

impl CheckedOut {
    fn give_back(&mut self) {
        self.returned = true;
        let w = self.worker.take();
        self.release(w);
    }

    fn release(&self, worker: Option<StepWorker>) {
        let mut allocs = self.pool.state.lock().unwrap();
        if let Some(a) = allocs.iter_mut().find(|a| a.id == self.alloc) {
            a.busy = a.busy.saturating_sub(1);
            a.last_used = Instant::now();
            if let Some(w) = worker {
                a.idle.push(w);
            }
        }
        drop(allocs);
        // One slot is free: one waiting task is woken (waking them all would cost every
        // completion as many wake-ups as tasks wait; 10,000 waiting made that quadratic).
        self.pool.changed.notify_one();
    }
}

impl Drop for CheckedOut {
    fn drop(&mut self) {
        if self.returned {
            return;
        }
        if let Some(w) = self.worker.take() {
            self.pool
                .host
                .fire_and_forget(&format!("{} {}", self.pool.scancel, w.step));
        }
        self.release(None);
    }
}

/// Takes a slot of an allocation that can run a task needing `need` (an idle worker, or room
/// for a new one), requesting an allocation when none can and `max_allocations` allows;
/// otherwise waits for one to free up.
async fn checkout(
    ex: &SlurmExecutor,
    opts: &AllocationOptions,
    host: &Host,
    pool: &Arc<Pool>,
    need: Option<Duration>,
    walltime: Duration,
) -> Result<(String, String, Option<StepWorker>), ExecutorError> {
    loop {
        let changed = pool.changed.notified();
        tokio::pin!(changed);
        changed.as_mut().enable();
        // Decided under the locks, acted on after them (no lock is held across an await).
        let request: (bool, bool) = {
            let mut allocs = pool.state.lock().unwrap();
            let fits = |a: &Alloc| need.is_none_or(|n| a.left() > n + WALLTIME_MARGIN);
            for a in allocs.iter_mut() {
                // Workers whose step ended while idle (cancelled from outside) free their slot.
                a.idle.retain(|w| w.serving.is_alive());
            }
            if let Some(a) = allocs
                .iter_mut()
                .find(|a| fits(a) && (!a.idle.is_empty() || a.busy + a.idle.len() < a.slots))
            {
                a.busy += 1;
                return Ok((a.id.clone(), a.dir.clone(), a.idle.pop()));
            }
            let mut requesting = pool.requesting.lock().unwrap();
            let room = allocs.len() + *requesting < opts.max_allocations.max(1) as usize;
            if room {
                *requesting += 1;
            }
            // A free slot this task cannot use (too little walltime left there): the wake-up
            // goes on to another waiting task.
            let passed = allocs
                .iter()
                .any(|a| !a.idle.is_empty() || a.busy + a.idle.len() < a.slots);
            (room, passed)
        };
        if !request.0 {
            if request.1 {
                pool.changed.notify_one();
                let _ = tokio::time::timeout(ex.poll_interval, changed).await;
            } else {
                changed.await;
            }
            continue;
        }
        let got = request_allocation(ex, opts, host, pool, walltime).await;
        *pool.requesting.lock().unwrap() -= 1;
        pool.changed.notify_waiters();
        got?;
    }
}

/// Requests an allocation (or takes over one already running under its name) and waits until
/// it runs.
async fn request_allocation(
    ex: &SlurmExecutor,
    opts: &AllocationOptions,
    host: &Host,
    pool: &Arc<Pool>,
    walltime: Duration,
) -> Result<(), ExecutorError> {
    let t = ex.command_timeout;
    let name = format!("covalent-alloc-{}", ex.allocation_key());
    let root = ex.root(host)?;
    let dir = format!("{root}/{name}");
    let held: Vec<String> = pool
        .state
        .lock()
        .unwrap()
        .iter()
        .map(|a| a.id.clone())
        .collect();
    let squeue = ex.slurm_cmd("squeue");
    // One left running by an earlier run of the program with these options.
    let out = host
        .sh(
            &format!(
                "{squeue} -h -t RUNNING --me --name={} -o '%i %L'",
                shell_quote(&name)
            ),
            Input::None,
            t,
        )
        .await
        .map_err(|e| failed(format!("squeue --name={name}: {e}")))?;
    let running = out.stdout_text();
    let adopt = running.lines().find_map(|l| {
        let (id, left) = l.trim().split_once(' ')?;
        (!held.iter().any(|h| h == id)).then(|| {
            Some((
                id.to_string(),
                crate::script::parse_slurm_time(left.trim())?,
            ))
        })?
    });
    let (id, left) = match adopt {
        Some(found) => {
            pool.touch(&dir);
            found
        }
        None => {
            let script = holder_script(ex, opts, &name).map_err(crate::config)?;
            host.put(&format!("{dir}/values"), ".keep", Vec::new(), t)
                .await
                .map_err(failed)?;
            pool.touch(&dir);
            let id = match ex.submit(host, &dir, script, "").await {
                Ok(id) => id,
                Err(crate::job::Submit::Refused(m) | crate::job::Submit::Unknown(m)) => {
                    return Err(failed(m));
                }
            };
            let left = wait_running(ex, host, &id, walltime).await?;
            (id, left)
        }
    };
    let slots = opts.workers() as usize;
    pool.state.lock().unwrap().push(Alloc {
        id,
        dir,
        ends_at: Instant::now() + left,
        slots,
        busy: 0,
        idle: Vec::new(),
        last_used: Instant::now(),
    });
    Ok(())
}

/// Polls the allocation until it runs (every poll interval for 5 s, then backing off to 2 s
/// while it waits in the queue); returns what is left of its walltime.
async fn wait_running(
    ex: &SlurmExecutor,
    host: &Host,
    id: &str,
    walltime: Duration,
) -> Result<Duration, ExecutorError> {
    let mut wait = ex.poll_interval;
    let started = Instant::now();
    loop {
        let out = host
            .sh(
                &format!("{} -h -j {id} -o '%T %L %r'", ex.slurm_cmd("squeue")),
                Input::None,
                ex.command_timeout,
            )
            .await
            .map_err(|e| failed(format!("squeue -j {id}: {e}")))?;
        let text = out.stdout_text();
        let mut words = text.split_whitespace();
        match words.next() {
            Some("RUNNING") => {
                // `UNLIMITED`, `NOT_SET`: as asked.
                let left = words
                    .next()
                    .and_then(crate::script::parse_slurm_time)
                    .unwrap_or(walltime);
                return Ok(left);
            }
            Some("PENDING" | "CONFIGURING") => {}
            Some(state) => {
                return Err(failed(format!(
                    "the allocation (job {id}) is {state}: {}",
                    words.collect::<Vec<_>>().join(" ")
                )));
            }
            None => {
                return Err(failed(format!(
                    "the allocation (job {id}) ended before it ran: see `sacct -j {id}`"
                )));
            }
        }
        tokio::time::sleep(wait).await;
        // Every poll interval while the allocation may start any moment, then backing off
        // while it waits in a queue.
        if started.elapsed() > Duration::from_secs(5) {
            wait = (wait * 2).min(Duration::from_secs(2));
        }
    }
}

/// Starts a worker step in allocation `id` and waits for it to say where it runs.
async fn launch(
    ex: &SlurmExecutor,
    opts: &AllocationOptions,
    host: &Host,
    id: &str,
    dir: &str,
) -> Result<StepWorker, ExecutorError> {
    let root = ex.root(host)?;
    let binary = ex.stage_binary(host, &root).await?;
    let mut srun = vec![
        ex.slurm_cmd("srun"),
        format!("--jobid={id}"),
        "--exact".into(),
        "--nodes=1".into(),
        "--ntasks=1".into(),
        format!("--cpus-per-task={}", opts.cpus_per_worker.max(1)),
        "--job-name=covalent-worker".into(),
        "--quiet".into(),
    ];
    if let Some(m) = &opts.mem_per_worker {
        srun.push(shell_quote(&format!("--mem={m}")));
    }
    srun.push(crate::script::script_path(&binary));
    // Absolute, as the shell sees it after `cd`: the worker's own working directory may
    // change with what its tasks do.
    let mut env = format!("{SERVE_ENV}=1 {SERVE_STREAMS_DIR_ENV}=\"$PWD/streams\"");
    for (k, v) in &ex.env {
        env.push_str(&format!(" {}={}", k, shell_quote(v)));
    }
    let script = format!(
        "cd {} && exec env {env} {}",
        shell_quote(dir),
        srun.join(" ")
    );
    let (stderr_capture, stderr) =
        StderrCapture::new().map_err(|e| failed(format!("cannot capture srun's stderr: {e}")))?;
    // Over SSH the worker's pipe is a long-lived session of the login node's connection.
    let hold = match host.session() {
        Some(s) => {
            s.ensure_master(ex.command_timeout).await.map_err(|e| {
                failed(format!(
                    "cannot start a worker step through the login node: {e}"
                ))
            })?;
            Some(s.hold().await)
        }
        None => None,
    };
    let mut cmd = match host.session() {
        Some(s) => s.std_command(&script),
        None => {
            let mut c = std::process::Command::new("sh");
            c.arg("-c").arg(&script);
            c
        }
    };
    cmd.stderr(stderr);
    crate::host::count_calls(&script);
    let serving = ServingWorker::start(cmd)
        .map_err(|e| failed(format!("cannot start `srun` for a worker step: {e}")))?;
    let hello = tokio::time::timeout(STEP_START.max(ex.command_timeout), serving.hello()).await;
    let stderr_text = || stderr_capture.text();
    let hello = match hello {
        Ok(Ok(h)) => h,
        Ok(Err(how)) => {
            return Err(failed(with_stderr_tail(
                format!("the worker step in allocation {id} did not start: `srun` {how}"),
                &stderr_text(),
            )));
        }
        Err(_) => {
            let text = stderr_text();
            return Err(failed(with_stderr_tail(
                format!(
                    "the worker step in allocation {id} did not start within {:?}",
                    STEP_START.max(ex.command_timeout)
                ),
                &text,
            )));
        }
    };
    let step = match (&hello.slurm_job, &hello.slurm_step) {
        (Some(j), Some(s)) => format!("{j}.{s}"),
        _ => format!("{id}.?"),
    };
    Ok(StepWorker {
        serving,
        step,
        node: hello.host,
        pid: hello.pid,
        stderr: stderr_capture,
        streams: hello.streams,
        dir: hello.cwd.unwrap_or_else(|| PathBuf::from(dir)),
        _hold: hold,
    })
}

/// Cancels a task's worker step (a task of a dispatcher that is gone, or one cancelled from
/// another process) and waits until Slurm says it has ended (at most the command time limit).
pub(crate) async fn cancel_step(ex: &SlurmExecutor, h: &StepHandle) -> Result<bool, ExecutorError> {
    let Some(step) = h.step.as_deref().filter(|s| !s.ends_with(".?")) else {
        return Ok(false);
    };
    let host = ex.host()?;
    let t = ex.command_timeout;
    let out = host
        .sh(
            &format!("{} {step}", ex.slurm_cmd("scancel")),
            Input::None,
            t,
        )
        .await
        .map_err(|e| failed(format!("scancel {step}: {e}")))?;
    let deadline = Instant::now() + t;
    while Instant::now() < deadline {
        let q = host
            .sh(
                &format!("{} -h -s -j {} -o %i", ex.slurm_cmd("squeue"), h.allocation),
                Input::None,
                t,
            )
            .await
            .map_err(|e| failed(format!("squeue -s -j {}: {e}", h.allocation)))?;
        if !q.stdout_text().split_whitespace().any(|s| s == step) {
            break;
        }
        tokio::time::sleep(ex.poll_interval).await;
    }
    Ok(out.ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_holder_script_asks_for_the_allocation_and_waits_on_the_heartbeat() {
        let ex = SlurmExecutor {
            partition: Some("debug".into()),
            extra: vec!["--constraint=a100".into()],
            ..Default::default()
        };
        let o = AllocationOptions {
            nodes: 2,
            workers_per_node: 4,
            cpus_per_worker: 2,
            time: "2:00:00".into(),
            ..Default::default()
        };
        let s = holder_script(&ex, &o, "covalent-alloc-x").unwrap();
        for line in [
            "#SBATCH --job-name=covalent-alloc-x",
            "#SBATCH --nodes=2",
            "#SBATCH --ntasks-per-node=4",
            "#SBATCH --cpus-per-task=2",
            "#SBATCH --time=2:00:00",
            "#SBATCH --partition=debug",
            "#SBATCH --constraint=a100",
            "-lt 120 ] || exit 0",
        ] {
            assert!(s.contains(line), "{line} in\n{s}");
        }
        let bad = AllocationOptions {
            time: "1:00\n#SBATCH --x".into(),
            ..Default::default()
        };
        assert!(holder_script(&ex, &bad, "n").is_err());
    }
}
