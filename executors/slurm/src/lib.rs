//! The `slurm` executor: runs each covalent task as a Slurm batch job, on this host (a login
//! node) or through SSH to one.
//!
//! ```no_run
//! use covalent::prelude::*;
//! use covalent_slurm as _; // links the plugin, so `executor = "slurm"` is known
//!
//! #[electron(executor = "slurm", time_limit = "10m")]
//! fn heavy(x: u64) -> u64 { x * 2 }
//!
//! #[lattice]
//! fn flow() -> u64 { heavy(21) }
//!
//! fn main() {
//!     let r = covalent::dispatch_sync(flow()).unwrap();
//!     assert_eq!(r.value(), Some(&42));
//! }
//! ```
//!
//! How a task runs: the program's own binary is staged once per content hash as
//! `<workdir>/bin/covalent-worker-<hash>` (copied there, or shipped over SSH), the task
//! envelope goes to a
//! directory of its own, `<workdir>/<job name>/`, and a batch script (the `#SBATCH` lines of
//! the options, `env`, `prerun`, the worker directly or through `srun`, `postrun`) is
//! submitted from there with `sbatch --parsable`. Tasks of a dispatch ready together with the
//! same script go out as one job array instead (`array`, the default; see the `array`
//! module's docs), each in `<workdir>/<array name>/<index>/`. The job id (an array element's:
//! `<array>_<index>`) is the node's job handle. One `squeue` at a time watches every job
//! submitted to the same place, at most one per `poll_interval` and backing off to
//! `max_poll_interval` while nothing changes; `max_jobs` keeps further tasks PENDING in the
//! dispatcher ([`Executor::in_flight_limit`]). When the job has ended its
//! result, stdout and stderr are read back and the directory is removed (`cleanup`). A job
//! that failed, ran out of time or was cancelled ends its node that way, with the job's stderr;
//! its final state comes from `sacct` (or `scontrol show job` when accounting is off).
//!
//! The node's `time_limit` becomes `--time` (whole minutes, rounded up) and is enforced by
//! the runtime as well (Slurm checks limits only every 30 s or so); time-outs and cancellation
//! `scancel` the job and wait for it to end. Over SSH (`covalent-remote`, shared with the `ssh`
//! executor, whose option names the `ssh` table uses) every command goes through one shared
//! OpenSSH connection (`ControlMaster`) with strict host-key checking, and every remote step
//! has a time limit (`command_timeout`).
//!
//! A job outlives its dispatcher. Its handle (job name, directory, then job id) is recorded
//! before `sbatch` runs, so a resumed dispatch follows it ([`Executor::probe`]: the job's state
//! in `squeue`, or its result in its directory; a handle without an id is found by
//! `squeue --name`) instead of submitting it again, and `covalent cancel` of a dispatch whose
//! dispatcher died `scancel`s it.
//!
//! With `allocation` set, tasks run on persistent workers inside allocations the executor
//! holds instead (see [`AllocationOptions`] and the `alloc` module's docs): one `sbatch` per
//! allocation, one `srun` per worker, task after task over the step's stdin and stdout.
//!
//! Register the plugin by linking the crate: `use covalent_slurm as _;` anywhere in the
//! program, or call [`link`] once.

#![deny(unsafe_code)]

mod alloc;
mod array;
mod host;
mod job;
mod poll;
mod script;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use covalent::executor::worker::{
    ResultEnvelope, TaskEnvelope, adopt_value_file, value_download_path,
};
use covalent::executor::{
    BaseOptions, Executor, ExecutorError, JobHandle, Output, Probe, Task, TaskContext,
};
use serde::{Deserialize, Serialize};

pub use alloc::AllocationOptions;
pub use covalent_remote::SshOptions;
use covalent_remote::{Input, Retry, shell_quote};
use host::Host;
pub use host::{SlurmCalls, slurm_calls};
use job::{Handle, Leftover, Submit};
use poll::{Poller, Record, Seen};

/// Links this crate into a program, so the `slurm` plugin is registered (as
/// `use covalent_slurm as _;` does).
#[inline(never)]
pub fn link() {}

/// Runs each task as a Slurm batch job. Options (`[executors.slurm]` in `covalent.toml`, or
/// the fields):
///
/// | option | default | meaning |
/// |---|---|---|
/// | `ssh` | none: submit on this host | a login node to submit through: `{ hostname, username, port, ssh_key_file, ssh_config, known_hosts, strict_host_key_checking, connect_timeout, options }` ([`SshOptions`], the `ssh` executor's names; the old `host`, `user`, `key` still work, with a deprecation warning) |
/// | `partition`, `account`, `qos`, `mem`, `gres` | none | `#SBATCH --partition=...` etc. |
/// | `cpus_per_task` | none | `#SBATCH --cpus-per-task=N` |
/// | `time` | none | `--time` (Slurm format) for nodes without a `time_limit` |
/// | `extra` | `[]` | more `#SBATCH` lines, e.g. `"--constraint=a100"` |
/// | `use_srun`, `srun_options` | `false`, `[]` | run the worker as `srun OPTIONS BINARY` |
/// | `prerun`, `postrun` | `[]` | shell lines run in the job before / after the worker |
/// | `env` | `{}` | environment variables for the job |
/// | `workdir` | `<cache_dir>/slurm` here, `.cache/covalent/slurm` over SSH | where binaries and task directories go (relative: to the login home) |
/// | `slurm_path` | the `PATH` | the directory of `sbatch`, `squeue`, `sacct`, `scontrol`, `scancel` |
/// | `poll_interval` | `250ms` | the shortest time between two `squeue` (one for every job submitted to the same place, whatever their number) |
/// | `max_poll_interval` | `5s` | the longest: the gap doubles once ten squeues in a row saw no job change state |
/// | `command_timeout` | `30s` | time limit of each Slurm command and remote step |
/// | `cleanup` | `true` | remove each task's directory once it is read back |
/// | `allocation` | none | allocation mode: hold allocations and run tasks on persistent worker steps in them ([`AllocationOptions`]) |
/// | `array` | `true` | job-per-task mode: tasks ready together with the same script go out as one job array (one `sbatch`), split at the cluster's `MaxArraySize` |
/// | `array_window` | `20ms` | how long an array's first task waits for others to join |
/// | `max_array_size` | the cluster's `MaxArraySize` | elements of one array at most |
/// | `max_jobs` | none | jobs (array elements included) submitted and not ended at once, for every slurm executor with this limit submitting to the same place; the other tasks wait PENDING |
///
/// plus the [`BaseOptions`] (`time_limit`, `retries`, `log_stdout`, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(default)]
pub struct SlurmExecutor {
    /// Base options.
    #[serde(flatten)]
    pub base: BaseOptions,
    /// Submit through this login node instead of on this host.
    pub ssh: Option<SshOptions>,
    /// `--partition`.
    pub partition: Option<String>,
    /// `--time` (Slurm format: `30`, `1:00:00`, `1-00:00:00`) for nodes without a `time_limit`.
    pub time: Option<String>,
    /// `--cpus-per-task`.
    pub cpus_per_task: Option<u32>,
    /// `--mem`, e.g. `"8G"`.
    pub mem: Option<String>,
    /// `--gres`, e.g. `"gpu:1"`.
    pub gres: Option<String>,
    /// `--account`.
    pub account: Option<String>,
    /// `--qos`.
    pub qos: Option<String>,
    /// More `#SBATCH` lines (with or without the `#SBATCH` prefix).
    pub extra: Vec<String>,
    /// Run the worker through `srun` (a job step) instead of directly in the batch script.
    pub use_srun: bool,
    /// Options of that `srun`.
    pub srun_options: Vec<String>,
    /// Shell lines run in the job before the worker.
    pub prerun: Vec<String>,
    /// Shell lines run in the job after the worker (its exit status is the job's).
    pub postrun: Vec<String>,
    /// Environment variables for the job.
    pub env: BTreeMap<String, String>,
    /// Where binaries and task directories go.
    pub workdir: Option<String>,
    /// Directory of the Slurm commands (default: found on `PATH`).
    pub slurm_path: Option<String>,
    /// The shortest time between two `squeue`.
    #[serde(with = "covalent::executor::serde_duration")]
    pub poll_interval: Duration,
    /// The longest time between two `squeue`, reached by doubling once ten in a row saw no job
    /// change state.
    #[serde(with = "covalent::executor::serde_duration")]
    pub max_poll_interval: Duration,
    /// Time limit of each Slurm command and remote step.
    #[serde(with = "covalent::executor::serde_duration")]
    pub command_timeout: Duration,
    /// Remove each task's directory once its result is read back.
    pub cleanup: bool,
    /// Allocation mode: hold allocations and run the tasks on persistent workers in them
    /// instead of one batch job each (see [`AllocationOptions`]).
    pub allocation: Option<AllocationOptions>,
    /// Job-per-task mode: send tasks that are ready together with the same script as one job
    /// array.
    pub array: bool,
    /// How long the first task of an array waits for others to join it.
    #[serde(with = "covalent::executor::serde_duration")]
    pub array_window: Duration,
    /// Elements of one array at most (below the cluster's `MaxArraySize`, which is always
    /// respected).
    pub max_array_size: Option<u32>,
    /// Jobs (array elements included) submitted and not ended at once at most, for every
    /// slurm executor with this limit submitting to the same place; further tasks wait in
    /// the dispatcher as PENDING.
    pub max_jobs: Option<u32>,
}

/// The job of `squeue -r --name=... -o %i` output that is the task's: for an array's task
/// (`index`), its element or the plain job its array of one went out as.
fn pick_job(text: &str, index: Option<u32>) -> Option<String> {
    let mut ids = text.split_whitespace();
    match index {
        None => ids.next().map(str::to_string),
        Some(i) => {
            let element = format!("_{i}");
            ids.find(|id| id.ends_with(&element) || !id.contains('_'))
                .map(str::to_string)
        }
    }
}

/// The in-flight limits: one semaphore per place and limit.
fn limit_for(key: String, n: u32) -> Arc<tokio::sync::Semaphore> {
    static ALL: LazyLock<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>> =
        LazyLock::new(Default::default);
    ALL.lock()
        .unwrap()
        .entry(format!("{key}\n{n}"))
        .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(n.max(1) as usize)))
        .clone()
}

/// The job watcher of a submission place (this host or a login node, and the Slurm commands'
/// directory), shared by every executor submitting there: one squeue per poll for all their
/// jobs.
fn poller_for(place: String) -> Arc<Poller> {
    static ALL: LazyLock<Mutex<HashMap<String, Arc<Poller>>>> = LazyLock::new(Default::default);
    ALL.lock().unwrap().entry(place).or_default().clone()
}

impl Default for SlurmExecutor {
    fn default() -> Self {
        SlurmExecutor {
            base: BaseOptions::default(),
            ssh: None,
            partition: None,
            time: None,
            cpus_per_task: None,
            mem: None,
            gres: None,
            account: None,
            qos: None,
            extra: Vec::new(),
            use_srun: false,
            srun_options: Vec::new(),
            prerun: Vec::new(),
            postrun: Vec::new(),
            env: BTreeMap::new(),
            workdir: None,
            slurm_path: None,
            poll_interval: Duration::from_millis(250),
            max_poll_interval: Duration::from_secs(5),
            command_timeout: Duration::from_secs(30),
            cleanup: true,
            allocation: None,
            array: true,
            array_window: array::DEFAULT_WINDOW,
            max_array_size: None,
            max_jobs: None,
        }
    }
}

fn failed(msg: impl Into<String>) -> ExecutorError {
    ExecutorError::Failed(msg.into())
}

fn config(reason: impl Into<String>) -> ExecutorError {
    ExecutorError::Config {
        name: "slurm".into(),
        reason: reason.into(),
    }
}

impl SlurmExecutor {
    /// A Slurm executor with default options, submitting on this host.
    pub fn new() -> Self {
        Self::default()
    }

    /// Submits through a login node over SSH.
    pub fn through_ssh(mut self, ssh: SshOptions) -> Self {
        self.ssh = Some(ssh);
        self
    }

    /// `--partition`.
    pub fn with_partition(mut self, partition: impl Into<String>) -> Self {
        self.partition = Some(partition.into());
        self
    }

    /// This host or the login node, and the Slurm commands' directory.
    fn place(&self) -> String {
        serde_json::to_string(&(&self.ssh, &self.slurm_path)).unwrap_or_default()
    }

    fn poller(&self) -> Arc<Poller> {
        poller_for(self.place())
    }

    fn host(&self) -> Result<Host, ExecutorError> {
        match &self.ssh {
            None => Ok(Host::local()),
            Some(o) => Host::ssh(o).map_err(config),
        }
    }

    /// `sbatch` etc. as a shell word: on `PATH`, or in `slurm_path`.
    fn slurm_cmd(&self, name: &str) -> String {
        format!("{}{name}", self.slurm_prefix())
    }

    fn slurm_prefix(&self) -> String {
        match &self.slurm_path {
            Some(dir) => shell_quote(&format!("{}/", dir.trim_end_matches('/'))),
            None => String::new(),
        }
    }

    /// The directory binaries and task directories go in, as the host sees it.
    fn root(&self, host: &Host) -> Result<String, ExecutorError> {
        if let Some(w) = &self.workdir {
            if host.is_remote() || Path::new(w).is_absolute() {
                return Ok(w.trim_end_matches('/').to_string());
            }
            let cwd = std::env::current_dir()
                .map_err(|e| failed(format!("cannot resolve workdir {w}: {e}")))?;
            return Ok(cwd.join(w).display().to_string());
        }
        Ok(if host.is_remote() {
            ".cache/covalent/slurm".to_string()
        } else {
            self.base.cache_dir().join("slurm").display().to_string()
        })
    }

    /// Reads back what an ended job left in its directory (removed after, with `cleanup`):
    /// its result, else the error of how it ended; its stdout and stderr go to `ctx`.
    async fn finish(
        &self,
        host: &Host,
        id: &str,
        dir: &str,
        seen: &Seen,
        slurm_limit: Option<Duration>,
        ctx: &TaskContext,
    ) -> Result<Output, ExecutorError> {
        let t = self.command_timeout;
        let files = host
            .fetch(
                dir,
                &["result.json", "stdout", "stderr", "worker.status"],
                self.cleanup,
                t,
            )
            .await
            .map_err(|e| failed(format!("reading back Slurm job {id}: {e}")))?;
        let mut files = files.into_iter();
        let result = files.next().flatten();
        let text =
            |b: Option<Vec<u8>>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
        let stdout = text(files.next().flatten());
        let stderr = text(files.next().flatten());
        let worker_status = files.next().flatten().map(|b| text(Some(b)));
        ctx.record_streams(stdout, stderr.clone());
        if let Some(bytes) = result {
            let envelope = ResultEnvelope::parse(&bytes)?;
            let received = envelope.receive_files(&*host.task_dir(dir, t), ctx).await;
            if !envelope.fetch.is_empty() && self.cleanup && envelope.output_file().is_none() {
                // Kept for the files brought home above: gone now.
                host.remove(dir, t).await;
            }
            received?;
            let Some(file) = envelope.output_file().cloned() else {
                return envelope.into_output();
            };
            // A large output in a file of its own: brought over whole (streamed; given at
            // least a second per megabyte on top of the command time limit), checked, and
            // made the node's value without being read; then the directory goes.
            let out = if host.is_remote() {
                let tmp = value_download_path(ctx)?;
                let limit = t + Duration::from_secs(file.n / 1_000_000);
                match host.download(dir, &file.name(), &tmp, limit).await {
                    Ok(_) => adopt_value_file(&tmp, &file, ctx),
                    Err(e) => {
                        let _ = std::fs::remove_file(&tmp);
                        Err(failed(format!(
                            "reading back the output of Slurm job {id} ({} bytes): {e}",
                            file.n
                        )))
                    }
                }
            } else {
                envelope.into_output_in(Path::new(dir), ctx)
            };
            if self.cleanup {
                host.remove(dir, t).await;
            }
            return out;
        }
        let record = match seen {
            Seen::State(s) if s == "COMPLETED" => Record {
                state: s.clone(),
                exit_code: None,
            },
            _ => {
                let fallback = Record {
                    state: match seen {
                        Seen::State(s) => s.clone(),
                        _ => String::new(),
                    },
                    exit_code: None,
                };
                poll::final_record(host, &self.slurm_prefix(), id, t)
                    .await
                    .ok()
                    .flatten()
                    .unwrap_or(fallback)
            }
        };
        Err(self.job_error(id, &record, worker_status.as_deref(), &stderr, slurm_limit))
    }

    /// Sends the files of this machine the task needs into its job directory `dir`; the
    /// envelope to write there.
    async fn send_files(
        &self,
        host: &Host,
        dir: &str,
        mut envelope: TaskEnvelope,
        ctx: &TaskContext,
    ) -> Result<Vec<u8>, ExecutorError> {
        envelope
            .send_files(&*host.task_dir(dir, self.command_timeout), ctx)
            .await?;
        Ok(envelope.to_json().into_bytes())
    }

    /// The id of the job named `name` (the attempt's name, or its array's), if Slurm knows
    /// one: for an array's task, its element (`<array>_<index>`, or the plain job an array
    /// of one went out as).
    async fn find_by_name(
        &self,
        host: &Host,
        name: &str,
        index: Option<u32>,
    ) -> Result<Option<String>, ExecutorError> {
        let out = host
            .sh(
                &format!(
                    "{} -h -r -t all --name={} -o %i",
                    self.slurm_cmd("squeue"),
                    shell_quote(name)
                ),
                Input::None,
                self.command_timeout,
            )
            .await
            .map_err(|e| failed(format!("squeue --name={name}: {e}")))?;
        Ok(pick_job(&out.stdout_text(), index))
    }

    /// Puts this program's binary in `<root>/bin/` (once per content hash, process and place)
    /// and returns its path there.
    async fn stage_binary(&self, host: &Host, root: &str) -> Result<String, ExecutorError> {
        let dir = format!("{root}/bin");
        match host.session() {
            None => covalent_remote::stage_binary_locally(&dir).await,
            Some(s) => {
                s.stage_binary(&dir, self.command_timeout, Retry::NONE)
                    .await
            }
        }
        .map_err(|e| failed(format!("staging the worker binary: {e}")))
    }
}

#[covalent::executor::async_trait]
impl Executor for SlurmExecutor {
    fn short_name(&self) -> &str {
        "slurm"
    }

    fn base(&self) -> &BaseOptions {
        &self.base
    }

    fn in_flight_limit(&self) -> Option<Arc<tokio::sync::Semaphore>> {
        match &self.allocation {
            // As many tasks as the allocations have workers (over SSH, as the login node's
            // connection has room for their pipes): the rest wait PENDING.
            Some(a) => {
                let mut n = a.max_allocations.max(1) * a.workers();
                if let Some(ssh) = &self.ssh {
                    n = n.min(ssh.max_sessions.saturating_sub(2).max(1));
                }
                Some(limit_for(
                    format!("allocation {}", self.allocation_key()),
                    n,
                ))
            }
            None => self
                .max_jobs
                .map(|n| limit_for(format!("jobs {}", self.place()), n)),
        }
    }

    async fn run(&self, task: Task, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        if self.allocation.is_some() {
            return alloc::run(self, task, ctx).await;
        }
        let host = self.host()?;
        let t = self.command_timeout;
        // The node's time limit (the electron's own, else this executor's) becomes --time.
        let limit = covalent::executor::find_electron(task.electron_path())
            .and_then(|d| d.time_limit)
            .or(self.base.time_limit);
        let time = limit
            .map(script::slurm_minutes)
            .or_else(|| self.time.clone());
        let slurm_limit = time.as_deref().and_then(script::parse_slurm_time);
        let root = self.root(&host)?;
        let binary = self.stage_binary(&host, &root).await?;
        let binary = script::script_path(&binary);
        let needs = covalent::executor::find_electron(task.electron_path())
            .map(|d| d.needs)
            .unwrap_or_default();
        let spec = |name: &'_ str, array: bool| {
            let job = script::JobSpec {
                name,
                time: time.clone(),
                binary: &binary,
                array,
                needs,
            };
            script::render(self, &job)
        };
        let envelope = TaskEnvelope::away(&task, ctx, host.authority())?;
        let poller = self.poller();
        // Kept to the end: the last task of an array removes the array's directory.
        let mut _membership = None;
        let (mut handle, id) = if self.array {
            // Tasks ready together with the same script go out as one job array.
            let key = format!(
                "{}\n{}",
                ctx.dispatch_id(),
                spec("covalent-array", false).map_err(config)?
            );
            let attempt = covalent::executor::worker::attempt_name(&task, ctx);
            let mut m = array::join(self, &host, &root, &key, &attempt, |name| {
                Ok(array::Scripts {
                    array: spec(name, true)?,
                    plain: spec(name, false)?,
                })
            })
            .await?;
            let dir = format!("{}/{}", m.batch.dir, m.index);
            let handle = Handle {
                job_id: None,
                job_name: m.batch.name.clone(),
                dir: dir.clone(),
                host: host.label(),
                array_index: Some(m.index),
            };
            ctx.set_job_handle(&handle);
            let envelope = match self.send_files(&host, &dir, envelope, ctx).await {
                Ok(e) => e,
                Err(e) => {
                    host.remove(&dir, t).await;
                    return Err(e);
                }
            };
            if let Err(e) = host.put(&dir, "task.json", envelope, t).await {
                host.remove(&dir, t).await;
                return Err(failed(e));
            }
            m.batch.ready(m.index);
            let submitted = m.batch.submitted().await;
            let Some(id) = array::Batch::element(&submitted, m.index) else {
                host.remove(&dir, t).await;
                return Err(array::not_submitted(&submitted));
            };
            m.keep();
            _membership = Some(m);
            (handle, id)
        } else {
            let name = covalent::executor::worker::attempt_name(&task, ctx);
            let dir = format!("{root}/{name}");
            let script = spec(&name, false).map_err(config)?;
            let handle = Handle {
                job_id: None,
                job_name: name.clone(),
                dir: dir.clone(),
                host: host.label(),
                array_index: None,
            };
            ctx.set_job_handle(&handle);
            let envelope = match self.send_files(&host, &dir, envelope, ctx).await {
                Ok(e) => e,
                Err(e) => {
                    host.remove(&dir, t).await;
                    return Err(e);
                }
            };
            if let Err(e) = host.put(&dir, "task.json", envelope, t).await {
                host.remove(&dir, t).await;
                return Err(failed(e));
            }
            let mut leftover = Leftover {
                host: host.clone(),
                poller: poller.clone(),
                scancel: self.slurm_cmd("scancel"),
                job: None,
                name: name.clone(),
                armed: true,
            };
            let id = match self.submit(&host, &dir, script, "").await {
                Ok(id) => id,
                Err(Submit::Refused(msg)) => {
                    leftover.disarm();
                    host.remove(&dir, t).await;
                    return Err(failed(msg));
                }
                Err(Submit::Unknown(msg)) => return Err(failed(msg)), // `leftover` cancels by name
            };
            leftover.disarm();
            (handle, id)
        };
        let dir = handle.dir.clone();
        handle.job_id = Some(id.clone());
        ctx.set_job_handle(&handle);
        poller.watch(&id, self.cadence());
        let mut leftover = Leftover {
            host: host.clone(),
            poller: poller.clone(),
            scancel: self.slurm_cmd("scancel"),
            job: Some(id.clone()),
            name: handle.job_name.clone(),
            armed: true,
        };

        let seen = match self.wait_for_end(&host, &id).await {
            Ok(seen) => seen,
            Err(e) => {
                leftover.disarm();
                let _ = self.scancel_and_wait(&host, &id, Some(&id)).await;
                host.remove(&dir, t).await;
                return Err(e);
            }
        };
        leftover.disarm();
        drop(leftover);

        self.finish(&host, &id, &dir, &seen, slurm_limit, ctx).await
    }

    async fn probe(&self, job: &JobHandle) -> Result<Probe, ExecutorError> {
        if let Some(step) = alloc::StepHandle::of(job) {
            // Its answer was to come down the pipe of a dispatcher that is gone: its step is
            // cancelled (never left running beside a new attempt) and the task runs again.
            alloc::cancel_step(self, &step).await?;
            return Ok(Probe::Gone);
        }
        let Some(handle) = Handle::of(job) else {
            return Ok(Probe::Gone);
        };
        let host = self.host()?;
        let t = self.command_timeout;
        // A crash between sbatch and its answer left only the job's name: find it by that.
        let id = match &handle.job_id {
            Some(id) => Some(id.clone()),
            None => {
                self.find_by_name(&host, &handle.job_name, handle.array_index)
                    .await?
            }
        };
        let has_result = host.has(&handle.dir, "result.json", t).await.map_err(|e| {
            failed(format!(
                "looking for the result of {}: {e}",
                handle.job_name
            ))
        })?;
        if has_result {
            return Ok(Probe::Finished);
        }
        if let Some(id) = &id {
            let out = host
                .sh(
                    &format!("{} -h -t all -j {id} -o %T", self.slurm_cmd("squeue")),
                    Input::None,
                    t,
                )
                .await
                .map_err(|e| failed(format!("squeue -j {id}: {e}")))?;
            let state = poll::state_word(&out.stdout_text());
            if out.ok() && !state.is_empty() && !poll::is_final(&state) {
                return Ok(Probe::Running);
            }
        }
        // Ended without a result, or never submitted: nothing to follow.
        if self.cleanup {
            host.remove(&handle.dir, t).await;
            if handle.array_index.is_some()
                && let Some((parent, _)) = handle.dir.rsplit_once('/')
            {
                host.remove_if_empty(parent, t).await;
            }
        }
        Ok(Probe::Gone)
    }

    async fn reattach(&self, job: &JobHandle, ctx: &TaskContext) -> Result<Output, ExecutorError> {
        let mut handle =
            Handle::of(job).ok_or_else(|| failed(format!("not a Slurm job handle: {}", job.0)))?;
        let host = self.host()?;
        let id = match &handle.job_id {
            Some(id) => Some(id.clone()),
            None => {
                self.find_by_name(&host, &handle.job_name, handle.array_index)
                    .await?
            }
        };
        let Some(id) = id else {
            // Never submitted, yet its result is there: a job whose id was lost and that
            // Slurm has already forgotten.
            return self
                .finish(&host, "(unknown)", &handle.dir, &Seen::Gone, None, ctx)
                .await;
        };
        if handle.job_id.is_none() {
            handle.job_id = Some(id.clone());
            ctx.set_job_handle(&handle);
        }
        let poller = self.poller();
        poller.watch(&id, self.cadence());
        let mut leftover = Leftover {
            host: host.clone(),
            poller: poller.clone(),
            scancel: self.slurm_cmd("scancel"),
            job: Some(id.clone()),
            name: handle.job_name.clone(),
            armed: true,
        };
        let seen = self.wait_for_end(&host, &id).await;
        leftover.disarm();
        drop(leftover);
        let seen = seen?;
        let out = self.finish(&host, &id, &handle.dir, &seen, None, ctx).await;
        if handle.array_index.is_some() && self.cleanup {
            // No other task of this process holds the array: its directory goes once empty.
            if let Some((parent, _)) = handle.dir.rsplit_once('/') {
                host.remove_if_empty(parent, self.command_timeout).await;
            }
        }
        out
    }

    async fn cancel(
        &self,
        ctx: &TaskContext,
        job: Option<&JobHandle>,
    ) -> Result<bool, ExecutorError> {
        if let Some(step) = job.and_then(alloc::StepHandle::of) {
            return alloc::cancel_step(self, &step).await;
        }
        let Some(handle) = job.and_then(Handle::of) else {
            return Ok(false);
        };
        let host = self.host()?;
        let target = match &handle.job_id {
            Some(id) => id.clone(),
            None => format!("--name={}", shell_quote(&handle.job_name)),
        };
        let cancelled = self
            .scancel_and_wait(&host, &target, handle.job_id.as_deref())
            .await?;
        // Keep what the job printed before it was stopped.
        if let Ok(files) = host
            .fetch(
                &handle.dir,
                &["stdout", "stderr"],
                self.cleanup,
                self.command_timeout,
            )
            .await
        {
            let mut files = files.into_iter();
            let text =
                |b: Option<Vec<u8>>| String::from_utf8_lossy(&b.unwrap_or_default()).into_owned();
            let (out, err) = (text(files.next().flatten()), text(files.next().flatten()));
            if !out.is_empty() || !err.is_empty() {
                ctx.record_streams(out, err);
            }
        }
        if handle.array_index.is_some()
            && self.cleanup
            && let Some((parent, _)) = handle.dir.rsplit_once('/')
        {
            // The array's directory goes with its last task.
            host.remove_if_empty(parent, self.command_timeout).await;
        }
        Ok(cancelled)
    }
}

covalent::register_executor!("slurm", SlurmExecutor);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_configuration_is_valid() {
        let text = r#"
[executors.slurm]
ssh = { hostname = "login.cluster.example", username = "me", ssh_key_file = "~/.ssh/id_ed25519" }
partition = "gpu"
cpus_per_task = 4
mem = "16G"
gres = "gpu:1"
account = "proj42"
qos = "normal"
extra = ["--constraint=a100"]
use_srun = false
prerun = ["module load cuda"]
postrun = []
env = { OMP_NUM_THREADS = "4" }
workdir = ".cache/covalent/slurm"
slurm_path = "/opt/slurm/bin"
poll_interval = "250ms"
max_poll_interval = "5s"
command_timeout = "30s"
cleanup = true
array = true
array_window = "20ms"
max_array_size = 1000
max_jobs = 200

[executors.slurm.allocation]
nodes = 1
workers_per_node = 2
cpus_per_worker = 1
mem_per_worker = "4G"
time = "1:00:00"
idle_timeout = "60s"
max_workers = 2
max_allocations = 1
max_step_launches = 4
"#;
        let config = covalent::Config::parse(text, Path::new("README.md")).unwrap();
        let e = config.executor("slurm").unwrap();
        let e = e.downcast_ref::<SlurmExecutor>().expect("a slurm executor");
        assert_eq!(e.max_jobs, Some(200));
        assert_eq!(e.max_array_size, Some(1000));
        assert_eq!(e.allocation.as_ref().unwrap().max_workers, Some(2));
    }

    #[test]
    fn an_array_task_finds_its_own_element_by_name() {
        assert_eq!(pick_job("41\n", None).as_deref(), Some("41"));
        assert_eq!(
            pick_job("40_0\n40_1\n40_2\n", Some(1)).as_deref(),
            Some("40_1")
        );
        assert_eq!(pick_job("40_0\n40_2\n", Some(1)), None);
        assert_eq!(pick_job("43\n", Some(0)).as_deref(), Some("43"));
        assert_eq!(pick_job("", None), None);
    }

    #[test]
    fn options_round_trip_and_reject_unknown_keys() {
        let e: SlurmExecutor = covalent::executor::from_dict(serde_json::json!({
            "partition": "debug",
            "poll_interval": "1s",
            "ssh": { "hostname": "login", "username": "me", "port": 2222, "ssh_key_file": "k" },
            "time_limit": "5m",
        }))
        .unwrap();
        assert_eq!(e.partition.as_deref(), Some("debug"));
        assert_eq!(e.poll_interval, Duration::from_secs(1));
        let ssh = e.ssh.as_ref().unwrap();
        assert!(ssh.strict_host_key_checking, "strict by default");
        assert_eq!(ssh.label(), "me@login:2222");
        let again: SlurmExecutor =
            covalent::executor::from_dict(covalent::executor::ToDict::to_dict(&e)).unwrap();
        assert_eq!(again.ssh, e.ssh);
        // The first names of the `ssh` table still work (with a deprecation warning).
        let old: SlurmExecutor = covalent::executor::from_dict(serde_json::json!({
            "ssh": { "host": "login", "user": "me", "port": 2222, "key": "k" },
        }))
        .unwrap();
        assert_eq!(old.ssh, e.ssh);
        let err =
            covalent::executor::from_dict::<SlurmExecutor>(serde_json::json!({ "partiton": "x" }))
                .err()
                .unwrap()
                .to_string();
        assert!(err.contains("unknown key `partiton`"), "{err}");
        let err = covalent::executor::from_dict::<SlurmExecutor>(
            serde_json::json!({ "ssh": { "hots": "x" } }),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(err.contains("hots"), "{err}");
    }
}

#[cfg(test)]
covalent_test_support::isolated_home!();
